//! Whether a node's allocations fit the inventory the repair leaves it: pure, from the facts.
//!
//! After the repair a node's provider has `{CUSTOM_X: total 1, reserved 0, max_unit 1}` only.
//! The repair shrinks the allocations of the instances Nova places on the node and of Nova's
//! migration records to `{CUSTOM_X: 1}`; any other consumer keeps what it holds. Every consumer
//! whose allocation would then not fit (a class the inventory no longer has, or a second unit of
//! the custom class) blocks the node, named with what it is and the command that shows it.

use std::collections::BTreeMap;

use serde::Serialize;

use super::plan::{fmt_resources, ConsumerFact, InstanceFact, NodeFact, ProviderFact};

/// What a consumer of a node's provider is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ConsumerKind {
    /// An instance Nova places on this node (`instances.node`).
    Instance,
    /// A migration record (`migrations.uuid`) of some instance.
    Migration,
    /// A live instance Nova places on another node, or on none.
    InstanceElsewhere,
    /// Neither a live instance nor a migration record in any cell steward reads.
    Unknown,
}

impl ConsumerKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ConsumerKind::Instance => "instance on this node",
            ConsumerKind::Migration => "migration record",
            ConsumerKind::InstanceElsewhere => "instance elsewhere",
            ConsumerKind::Unknown => "unknown to Nova",
        }
    }

    /// Whether the repair moves this consumer's allocation to the custom class.
    fn shrunk(self) -> bool {
        matches!(self, ConsumerKind::Instance | ConsumerKind::Migration)
    }
}

/// A consumer that keeps a node from being repaired.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Blocker {
    pub consumer: String,
    pub kind: ConsumerKind,
    /// What Nova knows of it, in a sentence.
    pub what: String,
    /// What it holds on the node now.
    pub holds: BTreeMap<String, i64>,
    /// What it would hold after the repair.
    pub holds_after: BTreeMap<String, i64>,
    /// Why it does not fit.
    pub reason: String,
    /// The command that shows it.
    pub command: String,
}

/// The kind of `consumer` on `node`, and a sentence on it.
pub fn kind_of(
    consumer: &str,
    node: &NodeFact,
    instances: &[&InstanceFact],
    consumers: &BTreeMap<String, ConsumerFact>,
) -> (ConsumerKind, String) {
    if instances.iter().any(|i| i.uuid == consumer) {
        let held = if node.instance_uuid.as_deref() == Some(consumer) {
            "the instance Ironic's node holds"
        } else {
            match &node.instance_uuid {
                Some(_) => "Ironic's node holds another instance",
                None => "Ironic's node holds no instance",
            }
        };
        return (
            ConsumerKind::Instance,
            format!("instance {consumer} on node {} ({held})", node.uuid),
        );
    }
    match consumers.get(consumer) {
        Some(ConsumerFact::Instance { node: n, host }) => (
            ConsumerKind::InstanceElsewhere,
            format!(
                "instance {consumer}, which Nova places on node {} (host {})",
                n.as_deref().unwrap_or("none"),
                host.as_deref().unwrap_or("none")
            ),
        ),
        Some(ConsumerFact::Migration {
            instance,
            source_node,
            dest_node,
            status,
        }) => (
            ConsumerKind::Migration,
            format!(
                "migration {consumer} of instance {instance} ({} -> {}, status {})",
                source_node.as_deref().unwrap_or("?"),
                dest_node.as_deref().unwrap_or("?"),
                status.as_deref().unwrap_or("?")
            ),
        ),
        None => (
            ConsumerKind::Unknown,
            format!("consumer {consumer}, neither a live instance nor a migration in Nova"),
        ),
    }
}

/// The order in which consumers claim the node's one unit: the instance Ironic's node holds,
/// then instances on the node, then migrations, then the rest.
fn priority(consumer: &str, kind: ConsumerKind, node: &NodeFact) -> (u8, ConsumerKind) {
    let first = node.instance_uuid.as_deref() == Some(consumer);
    (u8::from(!first), kind)
}

/// Every consumer that would not fit the node's inventory after the repair of `class`.
pub fn blockers(
    node: &NodeFact,
    class: &str,
    provider: &ProviderFact,
    instances: &[&InstanceFact],
    consumers: &BTreeMap<String, ConsumerFact>,
) -> Vec<Blocker> {
    let mut claims: Vec<(String, ConsumerKind, String, &BTreeMap<String, i64>)> = provider
        .allocations
        .iter()
        .map(|(c, held)| {
            let (kind, what) = kind_of(c, node, instances, consumers);
            (c.clone(), kind, what, held)
        })
        .collect();
    claims.sort_by(|a, b| {
        priority(&a.0, a.1, node)
            .cmp(&priority(&b.0, b.1, node))
            .then(a.0.cmp(&b.0))
    });
    // The inventory after the repair: the custom class, one unit, reserved 0.
    let mut free = 1i64;
    let mut out = Vec::new();
    for (consumer, kind, what, held) in claims {
        let after: BTreeMap<String, i64> = if kind.shrunk() {
            [(class.to_string(), 1)].into_iter().collect()
        } else {
            held.clone()
        };
        let foreign: Vec<String> = after
            .iter()
            .filter(|(rc, n)| rc.as_str() != class && **n > 0)
            .map(|(rc, n)| format!("{rc}={n}"))
            .collect();
        let wants = after.get(class).copied().unwrap_or(0);
        let reason = if !foreign.is_empty() {
            format!(
                "it would still hold {} (steward only moves the allocations of instances on \
                 this node and of migration records), which the node's inventory will not have",
                foreign.join(",")
            )
        } else if wants > free {
            format!(
                "it would hold {class}={wants}, but after the repair the node has {class} total 1 \
                 and {} of it is already taken",
                1 - free
            )
        } else {
            free -= wants;
            continue;
        };
        out.push(Blocker {
            command: format!("openstack resource provider allocation show {consumer}"),
            consumer,
            kind,
            what,
            holds: held.clone(),
            holds_after: after,
            reason,
        });
    }
    out
}

/// Notes on consumers that are not instances on the node but do not block it.
pub fn consumer_notes(
    provider: &ProviderFact,
    instances: &[&InstanceFact],
    consumers: &BTreeMap<String, ConsumerFact>,
) -> Vec<String> {
    provider
        .allocations
        .iter()
        .filter(|(c, _)| !instances.iter().any(|i| &i.uuid == *c))
        .map(|(c, held)| {
            let what = match consumers.get(c) {
                Some(ConsumerFact::Migration { instance, .. }) => {
                    format!("migration record of instance {instance}")
                }
                Some(ConsumerFact::Instance { .. }) => "an instance on another node".to_string(),
                None => "unknown to Nova".to_string(),
            };
            format!(
                "consumer {c} ({what}) holds {} on the node",
                fmt_resources(held)
            )
        })
        .collect()
}
