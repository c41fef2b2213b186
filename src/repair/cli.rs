//! `steward repair plan|apply|verify|rollback`: selection from flags, tables or JSON out, exit
//! codes in the style of `nova-manage placement heal_allocations` / `audit`.
//!
//! | command  | 0 | 1 | 3 | 4 | 127 |
//! |----------|---|---|---|---|-----|
//! | plan     | planned (anything or nothing to do) | could not gather facts | | | bad input |
//! | apply    | every selected node repaired | a node or step failed | | nothing to do | bad input |
//! | verify   | clean | could not gather facts | problems found | | bad input |
//! | rollback | restored | something could not be restored | | | bad input (unknown run) |

use std::process::ExitCode;

use serde_json::json;

use crate::config::Validated;
use crate::peerclock::{Peer, Timings};
use crate::store::Store;

use super::apply::{self, ApplyOptions};
use super::facts::{cell_names, gather};
use super::plan::{self, NodeStatus, Plan, Selection, Step};
use super::RepairError;

pub const EXIT_FAILED: u8 = 1;
pub const EXIT_PROBLEMS: u8 = 3;
pub const EXIT_NOTHING_TO_DO: u8 = 4;
pub const EXIT_BAD_INPUT: u8 = 127;

/// What the operator asked.
#[derive(Debug, Clone)]
pub enum Command {
    Plan(Selection),
    Apply {
        selection: Selection,
        all: bool,
        progress: bool,
    },
    Verify(Selection),
    Rollback {
        run_id: String,
        placement: bool,
    },
}

/// How results are printed.
#[derive(Debug, Clone, Copy, Default)]
pub struct Output {
    /// JSON on stdout (with a `timings` object) instead of a table.
    pub json: bool,
    /// Where the wall time went, as a table on stderr.
    pub timings: bool,
}

fn fail(e: &RepairError) -> ExitCode {
    eprintln!("steward: {e}");
    ExitCode::from(match e {
        RepairError::Input(_) => EXIT_BAD_INPUT,
        _ => EXIT_FAILED,
    })
}

pub async fn run(v: &Validated, command: Command, output: Output) -> ExitCode {
    let json_out = output.json;
    let cell = match &command {
        Command::Plan(s) | Command::Verify(s) => s.cell.clone(),
        Command::Apply { selection, .. } => selection.cell.clone(),
        Command::Rollback { .. } => None,
    };
    if let Command::Apply { selection, all, .. } = &command {
        let selected = !selection.nodes.is_empty()
            || selection.resource_class.is_some()
            || selection.cell.is_some();
        if selected == *all {
            return fail(&RepairError::Input(
                "repair apply needs a selection: --node UUID (repeatable), --resource-class, \
                 --cell, or --all for every node (not both); run `steward repair plan` first"
                    .into(),
            ));
        }
    }
    let clients = match super::connect(&v.settings, cell.as_deref()).await {
        Ok(c) => c,
        Err(RepairError::NovaDb(crate::novadb::NovaDbError::UnknownCell(c, known))) => {
            return fail(&RepairError::Input(format!("no cell {c}; cells: {known}")))
        }
        Err(e) => return fail(&e),
    };
    let code = match command {
        Command::Plan(selection) => match planned(&clients, &selection).await {
            Ok(p) => {
                let timings = clients.clock.timings();
                print_plan(&p, json_out.then_some(&timings));
                if output.timings {
                    eprint!("{}", timings.table());
                }
                ExitCode::SUCCESS
            }
            Err(e) => fail(&e),
        },
        Command::Verify(selection) => match planned(&clients, &selection).await {
            Ok(p) => {
                if output.timings {
                    eprint!("{}", clients.clock.timings().table());
                }
                let problems = plan::problems(&p);
                if json_out {
                    let doc = json!({
                        "clean": problems.is_empty(),
                        "problems": problems.iter().map(|(o, m)| json!({"object": o, "problem": m})).collect::<Vec<_>>(),
                        "nodes": p.nodes.len(),
                    });
                    println!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
                } else if problems.is_empty() {
                    println!("{} node(s) checked: Placement, Nova's flavors and both Nova databases agree with the custom-class target", p.nodes.len());
                } else {
                    println!("{:<38} PROBLEM", "OBJECT");
                    for (o, m) in &problems {
                        println!("{o:<38} {m}");
                    }
                }
                if problems.is_empty() {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::from(EXIT_PROBLEMS)
                }
            }
            Err(e) => fail(&e),
        },
        Command::Apply {
            selection,
            progress,
            ..
        } => {
            let journal = clients.clock.start(Peer::Journal);
            let store = match store(v).await {
                Ok(s) => s,
                Err(e) => return fail(&e),
            };
            drop(journal);
            let p = match planned(&clients, &selection).await {
                Ok(p) => p,
                Err(e) => return fail(&e),
            };
            let journal = clients.clock.start(Peer::Journal);
            let resumable = matches!(store.repair_unfinished_run().await, Ok(Some(_)));
            drop(journal);
            if p.is_empty() && !resumable {
                if json_out {
                    println!("{}", json!({"nothing_to_do": true, "nodes": p.nodes.len()}));
                } else {
                    println!(
                        "nothing to do: {} node(s) already use their custom class only ({} skipped)",
                        p.nodes.len(),
                        p.count(NodeStatus::Skipped)
                    );
                }
                store.close().await;
                return ExitCode::from(EXIT_NOTHING_TO_DO);
            }
            let selection_text = serde_json::to_string(&selection).unwrap_or_default();
            let options = ApplyOptions {
                max_attempts: v.settings.repair.max_attempts,
                progress,
                metrics: None,
            };
            let result = apply::apply(
                clients.clone(),
                store.clone(),
                &p,
                &selection_text,
                &options,
            )
            .await;
            store.close().await;
            match result {
                Ok(report) => {
                    if let (true, Some(t)) = (output.timings, &report.timings) {
                        eprint!("{}", t.table());
                    }
                    if json_out {
                        println!(
                            "{}",
                            serde_json::to_string_pretty(&report).unwrap_or_default()
                        );
                    } else {
                        println!(
                            "run {}{}: {}",
                            report.run_id,
                            if report.resumed { " (resumed)" } else { "" },
                            if report.ok { "ok" } else { "FAILED" }
                        );
                        if let Some(e) = &report.global_error {
                            println!("  before any node: {e}");
                        }
                        println!("{:<38} {:<11} {:>5} ERROR", "NODE", "RESULT", "STEPS");
                        for n in &report.nodes {
                            println!(
                                "{:<38} {:<11} {:>5} {}",
                                n.node,
                                n.result,
                                n.steps_done,
                                n.error.as_deref().unwrap_or("")
                            );
                        }
                    }
                    if report.ok {
                        ExitCode::SUCCESS
                    } else {
                        ExitCode::from(EXIT_FAILED)
                    }
                }
                Err(e) => fail(&e),
            }
        }
        Command::Rollback { run_id, placement } => {
            let store = match store(v).await {
                Ok(s) => s,
                Err(e) => return fail(&e),
            };
            let result = apply::rollback(&clients, &store, &run_id, placement).await;
            store.close().await;
            match result {
                Ok(items) => {
                    if json_out {
                        println!(
                            "{}",
                            serde_json::to_string_pretty(&items).unwrap_or_default()
                        );
                    } else {
                        println!("{:<28} {:<48} {:<20} MESSAGE", "ACTION", "OBJECT", "RESULT");
                        for i in &items {
                            println!(
                                "{:<28} {:<48} {:<20} {}",
                                i.action,
                                i.object,
                                i.result,
                                i.message.as_deref().unwrap_or("")
                            );
                        }
                    }
                    if items.iter().all(|i| i.result != "failed") {
                        ExitCode::SUCCESS
                    } else {
                        ExitCode::from(EXIT_FAILED)
                    }
                }
                Err(e) => fail(&e),
            }
        }
    };
    clients.db.close().await;
    code
}

async fn store(v: &Validated) -> Result<Store, RepairError> {
    let db = &v.settings.database;
    // Every node task journals before and after each write: with fewer connections than
    // tasks, they queue on the pool (a 2,000-node apply spent a third of its time there).
    let pool = (v.settings.repair.concurrency as u32).clamp(1, 16) + 1;
    let store = Store::connect(&db.url, pool).await?;
    if db.auto_upgrade {
        store.upgrade().await?;
    } else {
        store.check_current().await?;
    }
    Ok(store)
}

async fn planned(clients: &super::Clients, selection: &Selection) -> Result<Plan, RepairError> {
    let facts = gather(clients, selection).await?;
    Ok(plan::plan(&facts, selection, &cell_names(&clients.db)))
}

/// The plan as a table, or as JSON (`timings`: given for JSON, added as a `timings` key).
fn print_plan(p: &Plan, json_timings: Option<&Timings>) {
    if let Some(timings) = json_timings {
        let mut doc = serde_json::to_value(p).unwrap_or_default();
        if let (Some(map), Ok(t)) = (doc.as_object_mut(), serde_json::to_value(timings)) {
            map.insert("timings".into(), t);
        }
        println!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
        return;
    }
    if !p.global.is_empty() {
        println!("before any node:");
        for s in &p.global {
            println!("  {}", describe(s));
        }
    }
    println!(
        "{:<38} {:<24} {:<13} {:>5} PROBLEMS",
        "NODE", "CLASS", "STATUS", "STEPS"
    );
    for n in &p.nodes {
        let status = match n.status {
            NodeStatus::Clean => "clean",
            NodeStatus::NeedsRepair => "needs_repair",
            NodeStatus::Skipped => "skipped",
        };
        println!(
            "{:<38} {:<24} {:<13} {:>5} {}",
            n.node,
            n.class.as_deref().unwrap_or("-"),
            status,
            n.steps.len(),
            n.problems.join("; ")
        );
        for s in &n.steps {
            println!("    {}", describe(s));
        }
    }
    println!(
        "{} node(s): {} need repair, {} clean, {} skipped; `steward repair apply` changes them",
        p.nodes.len(),
        p.count(NodeStatus::NeedsRepair),
        p.count(NodeStatus::Clean),
        p.count(NodeStatus::Skipped)
    );
}

fn describe(s: &Step) -> String {
    let detail = match s {
        Step::SetFlavorExtraSpecs {
            flavor_name, specs, ..
        } => format!(
            "({flavor_name}) {}",
            specs
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(" ")
        ),
        Step::RewriteInstanceFlavor { copies, .. } => format!(
            "copies {}",
            copies
                .iter()
                .map(|c| format!("{c:?}").to_lowercase())
                .collect::<Vec<_>>()
                .join(",")
        ),
        Step::ShrinkAllocation { from, class, .. } => {
            format!("{} -> {class}=1", plan::fmt_resources(from))
        }
        Step::AddCustomInventory { class, .. } | Step::SetCustomOnlyInventory { class, .. } => {
            class.clone()
        }
        Step::CheckUsage {
            class, expected, ..
        } => format!("{class}={expected}"),
        _ => String::new(),
    };
    format!("{:<26} {} {}", s.action(), s.object(), detail)
}
