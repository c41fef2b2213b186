//! Whether each instance's flavor, request spec and allocation agree: pure, from the facts.
//!
//! Nova asks Placement for what `scheduler_utils.resources_from_flavor` derives from the flavor
//! (VCPU, MEMORY_MB and DISK_GB from the sizes, `resources:<RC>=<N>` extra specs overriding or
//! adding, zeros dropped; `hw:cpu_policy=dedicated` turns VCPU into PCPU). An instance agrees
//! when its embedded flavor (`cur`) and its request spec's flavor ask for the same resources and
//! its allocation on its node (or, mid-move, a migration record's of it) holds exactly that.

use std::collections::BTreeMap;

use super::plan::{fmt_resources, ConsumerFact, Copy, EmbeddedFlavor, Facts, FlavorSizes};

/// What Nova asks Placement for, for one flavor.
pub fn requested(
    sizes: &FlavorSizes,
    extra_specs: &BTreeMap<String, String>,
) -> BTreeMap<String, i64> {
    let swap_gb = (sizes.swap_mb + 1023) / 1024;
    let mut r: BTreeMap<String, i64> = [
        ("VCPU".to_string(), sizes.vcpus),
        ("MEMORY_MB".to_string(), sizes.memory_mb),
        (
            "DISK_GB".to_string(),
            sizes.root_gb + sizes.ephemeral_gb + swap_gb,
        ),
    ]
    .into_iter()
    .collect();
    let mut explicit_cpu = false;
    for (k, v) in extra_specs {
        let Some(rc) = k.strip_prefix("resources:") else {
            continue;
        };
        let Ok(n) = v.trim().parse::<i64>() else {
            continue;
        };
        explicit_cpu |= rc == "VCPU" || rc == "PCPU";
        r.insert(rc.to_string(), n);
    }
    let dedicated = extra_specs.get("hw:cpu_policy").map(|p| p.trim()) == Some("dedicated");
    if dedicated && !explicit_cpu {
        if let Some(v) = r.remove("VCPU") {
            r.insert("PCPU".to_string(), v);
        }
    }
    r.retain(|_, n| *n > 0);
    r
}

fn asks(f: &EmbeddedFlavor) -> Option<BTreeMap<String, i64>> {
    f.sizes.as_ref().map(|s| requested(s, &f.extra_specs))
}

/// One line per instance (on the selected nodes) whose copies and allocation disagree.
pub fn disagreements(facts: &Facts) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for i in &facts.instances {
        let Ok(flavors) = &i.flavors else { continue };
        let Some(provider) = facts.providers.get(&i.node) else {
            continue;
        };
        let Some(cur) = flavors.iter().find(|f| f.copy == Copy::Cur).and_then(asks) else {
            continue;
        };
        let object = format!("instance {}", i.uuid);
        if let Some(rs) = flavors
            .iter()
            .find(|f| f.copy == Copy::RequestSpec)
            .and_then(asks)
        {
            if rs != cur {
                out.push((
                    object.clone(),
                    format!(
                        "its request spec asks for {} but its embedded flavor for {}",
                        fmt_resources(&rs),
                        fmt_resources(&cur)
                    ),
                ));
            }
        }
        let held = provider.allocations.get(&i.uuid).or_else(|| {
            // Mid-move the node's allocation belongs to a migration record of the instance.
            provider.allocations.iter().find_map(|(c, r)| {
                matches!(facts.consumers.get(c),
                    Some(ConsumerFact::Migration { instance, .. }) if *instance == i.uuid)
                .then_some(r)
            })
        });
        match held {
            Some(held) if *held == cur => {}
            Some(held) => out.push((
                object,
                format!(
                    "its embedded flavor asks for {} but it holds {} on node {}",
                    fmt_resources(&cur),
                    fmt_resources(held),
                    i.node
                ),
            )),
            None => out.push((
                object,
                format!(
                    "it holds nothing on node {} while its embedded flavor asks for {} (`nova-manage \
                     placement heal_allocations --instance {}`)",
                    i.node,
                    fmt_resources(&cur),
                    i.uuid
                ),
            )),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn specs(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    const GOLD: FlavorSizes = FlavorSizes {
        vcpus: 64,
        memory_mb: 131072,
        root_gb: 371,
        ephemeral_gb: 0,
        swap_mb: 0,
    };

    /// Nova's three shapes (PEERS.md): legacy, custom key only, custom key plus zeros.
    #[test]
    fn asks_what_nova_asks() {
        let legacy = requested(&GOLD, &BTreeMap::new());
        assert_eq!(
            fmt_resources(&legacy),
            "DISK_GB=371,MEMORY_MB=131072,VCPU=64"
        );
        let half = requested(&GOLD, &specs(&[("resources:CUSTOM_GOLD", "1")]));
        assert_eq!(half.len(), 4);
        let done = requested(&GOLD, &super::super::plan::target_specs("CUSTOM_GOLD"));
        assert_eq!(fmt_resources(&done), "CUSTOM_GOLD=1");
        let swap = FlavorSizes {
            swap_mb: 1025,
            ephemeral_gb: 10,
            ..GOLD
        };
        assert_eq!(requested(&swap, &BTreeMap::new())["DISK_GB"], 371 + 10 + 2);
        let pinned = requested(&GOLD, &specs(&[("hw:cpu_policy", "dedicated")]));
        assert_eq!(pinned.get("PCPU"), Some(&64));
        assert!(!pinned.contains_key("VCPU"));
    }
}
