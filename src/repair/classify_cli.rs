//! `steward repair classify --rules FILE [--apply]`: gathers the hardware facts of the selected
//! nodes (Ironic's properties and capabilities, the inspection inventory), classifies them
//! ([`super::classify`]) and, with `--apply`, sets the classes through Ironic and the flavors'
//! extra specs through Nova, journaled as a repair run (rollback as for any run).

use std::collections::BTreeSet;
use std::process::ExitCode;

use serde_json::json;

use crate::config::Validated;

use super::apply::{self, ApplyOptions};
use super::classify::{classify, ClassifyPlan, FlavorUse, Hardware, Rules, Verdict};
use super::cli::{fail, print_json, Output, EXIT_FAILED, EXIT_NOTHING_TO_DO, EXIT_PROBLEMS};
use super::facts::{gather, Clients};
use super::plan::{Copy, NodePlan, NodeStatus, Plan, Selection};
use super::RepairError;

/// Read the rules file; a problem names the file.
fn rules(path: &std::path::Path) -> Result<Rules, RepairError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        RepairError::Input(format!(
            "cannot read the rules file {}: {e}",
            path.display()
        ))
    })?;
    Rules::parse(&text).map_err(|e| RepairError::Input(format!("{}: {e}", path.display())))
}

/// The facts classify needs: each selected node's hardware, and the flavors with the nodes
/// that select them (their instances' flavors, and flavors whose sizes are the node's, as
/// Nova's exact-match filters chose legacy bare-metal nodes).
async fn facts(
    c: &Clients,
    selection: &Selection,
) -> Result<(Vec<Hardware>, Vec<FlavorUse>), RepairError> {
    let f = gather(c, selection).await?;
    let mut hardware = Vec::new();
    for n in &f.nodes {
        let (_, properties) = c.ironic.node_properties(&n.uuid).await?;
        let inventory = c.ironic.inspection_inventory(&n.uuid).await?;
        hardware.push(Hardware {
            uuid: n.uuid.clone(),
            name: n.name.clone(),
            resource_class: n.resource_class.clone(),
            provision_state: n.provision_state.clone(),
            instance_uuid: n.instance_uuid.clone(),
            properties,
            inventory,
        });
    }
    let sizes = c.nova.flavors().await?;
    let uses = sizes
        .into_iter()
        .map(|fl| {
            let mut nodes: BTreeSet<String> = f
                .instances
                .iter()
                .filter(|i| {
                    i.flavors.iter().flatten().any(|e| {
                        e.copy == Copy::Cur && e.flavorid.as_deref() == Some(fl.id.as_str())
                    })
                })
                .map(|i| i.node.clone())
                .collect();
            for hw in &hardware {
                let p = |k: &str| {
                    hw.properties.get(k).and_then(|v| {
                        v.as_i64()
                            .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
                    })
                };
                let exact = p("cpus") == Some(fl.vcpus)
                    && p("memory_mb") == Some(fl.ram)
                    && p("local_gb") == Some(fl.disk);
                if exact {
                    nodes.insert(hw.uuid.clone());
                }
            }
            FlavorUse {
                id: fl.id,
                name: fl.name,
                extra_specs: fl.extra_specs,
                nodes,
            }
        })
        .collect();
    Ok((hardware, uses))
}

pub async fn run(
    v: &Validated,
    clients: &Clients,
    rules_path: &std::path::Path,
    selection: &Selection,
    apply: bool,
    output: Output,
) -> ExitCode {
    let rules = match rules(rules_path) {
        Ok(r) => r,
        Err(e) => return fail(&e),
    };
    let (hardware, flavors) = match facts(clients, selection).await {
        Ok(x) => x,
        Err(e) => return fail(&e),
    };
    let p = classify(&rules, &hardware, &flavors);
    let left = p.count(&Verdict::Unmatched) + p.count(&Verdict::Ambiguous);
    if !apply {
        print_classify(&p, output.json);
        return ExitCode::from(if left > 0 { EXIT_PROBLEMS } else { 0 });
    }
    if p.steps.is_empty() {
        print_classify(&p, output.json);
        return ExitCode::from(if left > 0 {
            EXIT_PROBLEMS
        } else {
            EXIT_NOTHING_TO_DO
        });
    }
    let store = match super::cli::store(v).await {
        Ok(s) => s,
        Err(e) => return fail(&e),
    };
    let options = ApplyOptions {
        max_attempts: v.settings.repair.max_attempts,
        progress: false,
        metrics: None,
    };
    let text = serde_json::to_string(&json!({"classify": rules_path, "selection": selection}))
        .unwrap_or_default();
    let result = apply::apply(
        clients.clone(),
        store.clone(),
        &as_plan(&p),
        &text,
        &options,
    )
    .await;
    store.close().await;
    match result {
        Ok(report) => {
            if output.json {
                print_json(&json!({"classify": p, "run": report}));
            } else {
                print_classify(&p, false);
                println!("run {}: {}", report.run_id, report.status);
                for n in report.nodes.iter().filter(|n| n.error.is_some()) {
                    println!("  {} {}", n.node, n.error.as_deref().unwrap_or(""));
                }
                if let Some(e) = &report.global_error {
                    println!("  before any node: {e}");
                }
            }
            ExitCode::from(if report.status == "failed" {
                EXIT_FAILED
            } else if left > 0 {
                EXIT_PROBLEMS
            } else {
                0
            })
        }
        Err(e) => fail(&e),
    }
}

/// The classification as a repair plan: the flavors first, then one node at a time.
fn as_plan(p: &ClassifyPlan) -> Plan {
    use super::plan::Step;
    let global = p
        .steps
        .iter()
        .filter(|s| matches!(s, Step::SetFlavorExtraSpecs { .. }))
        .cloned()
        .collect();
    let nodes = p
        .steps
        .iter()
        .filter_map(|s| match s {
            Step::SetNodeResourceClass { node, class } => Some(NodePlan {
                node: node.clone(),
                name: None,
                class: Some(class.clone()),
                status: NodeStatus::NeedsRepair,
                problems: vec!["no resource_class".into()],
                notes: Vec::new(),
                blockers: Vec::new(),
                steps: vec![s.clone()],
            }),
            _ => None,
        })
        .collect();
    Plan { global, nodes }
}

fn print_classify(p: &ClassifyPlan, json_out: bool) {
    if json_out {
        print_json(p);
        return;
    }
    println!(
        "{:<38} {:<16} {:<11} {:<22} {:<16} FACTS",
        "NODE", "STATE", "VERDICT", "CLASS", "RULES"
    );
    for n in &p.nodes {
        let verdict = match n.verdict {
            Verdict::Classified => "classified",
            Verdict::HasClass => "has_class",
            Verdict::Unmatched => "unmatched",
            Verdict::Ambiguous => "ambiguous",
        };
        let facts: Vec<String> = n.facts.iter().map(|(k, v)| format!("{k}={v}")).collect();
        println!(
            "{:<38} {:<16} {:<11} {:<22} {:<16} {}{}",
            n.node,
            n.provision_state.as_deref().unwrap_or("-"),
            verdict,
            n.class.as_deref().unwrap_or("-"),
            if n.rules.is_empty() {
                "-".to_string()
            } else {
                n.rules.join(",")
            },
            facts.join(" "),
            n.note
                .as_deref()
                .map(|x| format!(" ({x})"))
                .unwrap_or_default()
        );
    }
    for c in &p.conflicts {
        println!("conflict: {c}");
    }
    for s in &p.steps {
        println!("  {} {}", s.action(), s.object());
    }
    println!(
        "{} classified, {} unmatched, {} ambiguous, {} with a class already; `--apply` writes \
         the classified ones",
        p.count(&Verdict::Classified),
        p.count(&Verdict::Unmatched),
        p.count(&Verdict::Ambiguous),
        p.count(&Verdict::HasClass)
    );
}
