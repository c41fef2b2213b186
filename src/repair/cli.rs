//! `steward repair plan|apply|verify|rollback|status`: selection from flags, tables or JSON
//! out, exit codes in the style of `nova-manage placement heal_allocations` / `audit` (each
//! outcome its own number, documented):
//!
//! | command  | 0 | 1 | 2 | 3 | 4 | 5 | 127 |
//! |----------|---|---|---|---|---|---|-----|
//! | plan     | planned, nothing blocked | could not gather facts | a node is blocked | | | | bad input |
//! | apply    | done: every node that needed it repaired | a node or step failed | blocked: nothing failed, a node is blocked | | nothing to do | | bad input |
//! | verify   | clean | could not gather facts | | broken nodes found | | only unclassified nodes | bad input |
//! | rollback | restored | something could not be restored | | | | | bad input, or refused |
//! | status   | shown | the journal cannot be read | | | | | no such run |
//! | classify | every selected node without a class classified (with --apply: written) | a peer cannot be read, or a write failed | | nodes no rule or two rules match (listed) | --apply: nothing to write | | bad input (rules file) |

use std::process::ExitCode;

use serde_json::json;

use crate::config::Validated;
use crate::peerclock::{Peer, Timings};
use crate::store::Store;

use super::apply::{self, ApplyOptions, RollbackOptions, RunReport};
use super::facts::{cell_names, gather};
use super::plan::{self, Facts, NodeStatus, Plan, Selection, Step};
use super::RepairError;

pub const EXIT_FAILED: u8 = 1;
pub const EXIT_BLOCKED: u8 = 2;
pub const EXIT_PROBLEMS: u8 = 3;
pub const EXIT_NOTHING_TO_DO: u8 = 4;
pub const EXIT_UNCLASSIFIED: u8 = 5;
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
        options: RollbackOptions,
    },
    /// One run (`Some`), or the list of runs.
    Status(Option<String>),
    /// Classes from hardware facts: the plan, or with `apply` the writes.
    Classify {
        rules: std::path::PathBuf,
        selection: Selection,
        apply: bool,
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

pub(super) fn fail(e: &RepairError) -> ExitCode {
    eprintln!("steward: {e}");
    ExitCode::from(match e {
        RepairError::Input(_) => EXIT_BAD_INPUT,
        _ => EXIT_FAILED,
    })
}

pub(super) fn print_json(v: &impl serde::Serialize) {
    println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
}

/// The cell a command's selection names, if any (the only cell steward then connects to).
fn cell_of(command: &Command) -> Option<String> {
    match command {
        Command::Plan(s) | Command::Verify(s) => s.cell.clone(),
        Command::Apply { selection, .. } | Command::Classify { selection, .. } => {
            selection.cell.clone()
        }
        Command::Rollback { .. } | Command::Status(_) => None,
    }
}

fn check_apply_selection(command: &Command) -> Result<(), RepairError> {
    let Command::Apply { selection, all, .. } = command else {
        return Ok(());
    };
    let selected = !selection.nodes.is_empty()
        || selection.resource_class.is_some()
        || selection.cell.is_some();
    if selected == *all {
        return Err(RepairError::Input(
            "repair apply needs a selection: --node UUID (repeatable), --resource-class, \
             --cell, or --all for every node (not both); run `steward repair plan` first"
                .into(),
        ));
    }
    Ok(())
}

pub async fn run(v: &Validated, command: Command, output: Output) -> ExitCode {
    if let Err(e) = check_apply_selection(&command) {
        return fail(&e);
    }
    if let Command::Status(run) = &command {
        return status(v, run.as_deref(), output).await;
    }
    let clients = match super::connect(&v.settings, cell_of(&command).as_deref()).await {
        Ok(c) => c,
        Err(RepairError::NovaDb(crate::novadb::NovaDbError::UnknownCell(c, known))) => {
            return fail(&RepairError::Input(format!("no cell {c}; cells: {known}")))
        }
        Err(e) => return fail(&e),
    };
    let code = match command {
        Command::Plan(selection) => plan_command(&clients, &selection, output).await,
        Command::Verify(selection) => verify(&clients, &selection, output).await,
        Command::Apply {
            selection,
            progress,
            ..
        } => apply_command(v, &clients, &selection, progress, output).await,
        Command::Rollback { run_id, options } => {
            rollback(v, &clients, &run_id, &options, output).await
        }
        Command::Classify {
            rules,
            selection,
            apply,
        } => super::classify_cli::run(v, &clients, &rules, &selection, apply, output).await,
        Command::Status(_) => ExitCode::SUCCESS,
    };
    clients.db.close().await;
    code
}

async fn plan_command(clients: &super::Clients, selection: &Selection, output: Output) -> ExitCode {
    match planned(clients, selection).await {
        Ok((_, p)) => {
            let timings = clients.clock.timings();
            print_plan(&p, output.json.then_some(&timings));
            if output.timings {
                eprint!("{}", timings.table());
            }
            if p.count(NodeStatus::Blocked) > 0 {
                ExitCode::from(EXIT_BLOCKED)
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(e) => fail(&e),
    }
}

/// The nodes verify lists apart: no resource class at all (`steward repair classify` gives
/// them one), as (uuid, name, provision state).
fn unclassified(facts: &Facts, p: &Plan) -> Vec<(String, Option<String>, Option<String>)> {
    p.nodes
        .iter()
        .filter(|n| n.status == NodeStatus::Skipped && n.class.is_none())
        .map(|n| {
            let state = facts
                .nodes
                .iter()
                .find(|f| f.uuid == n.node)
                .and_then(|f| f.provision_state.clone());
            (n.node.clone(), n.name.clone(), state)
        })
        .collect()
}

async fn verify(clients: &super::Clients, selection: &Selection, output: Output) -> ExitCode {
    let (facts, p) = match planned(clients, selection).await {
        Ok(x) => x,
        Err(e) => return fail(&e),
    };
    if output.timings {
        eprint!("{}", clients.clock.timings().table());
    }
    let loose = unclassified(&facts, &p);
    let mut problems: Vec<(String, String)> = plan::problems(&p)
        .into_iter()
        .filter(|(o, _)| !loose.iter().any(|(n, _, _)| n == o))
        .collect();
    problems.extend(super::agree::disagreements(&facts));
    if output.json {
        print_json(&json!({
            "clean": problems.is_empty() && loose.is_empty(),
            "problems": problems.iter().map(|(o, m)| json!({"object": o, "problem": m})).collect::<Vec<_>>(),
            "unclassified": loose.iter().map(|(n, name, state)| json!({"node": n, "name": name, "provision_state": state})).collect::<Vec<_>>(),
            "nodes": p.nodes.len(),
        }));
    } else {
        print_verify(&p, &problems, &loose);
    }
    if !problems.is_empty() {
        ExitCode::from(EXIT_PROBLEMS)
    } else if !loose.is_empty() {
        ExitCode::from(EXIT_UNCLASSIFIED)
    } else {
        ExitCode::SUCCESS
    }
}

fn print_verify(
    p: &Plan,
    problems: &[(String, String)],
    loose: &[(String, Option<String>, Option<String>)],
) {
    if problems.is_empty() {
        println!(
            "{} node(s) checked: Placement, Nova's flavors and both Nova databases agree with the \
             custom-class target, and every instance's flavor, request spec and allocation agree",
            p.nodes.len() - loose.len()
        );
    } else {
        println!("{:<44} PROBLEM", "OBJECT");
        for (o, m) in problems {
            println!("{o:<44} {m}");
        }
    }
    if !loose.is_empty() {
        println!(
            "\n{} node(s) have no resource class (not broken, not checked): give them one with \
             `steward repair classify --rules FILE`",
            loose.len()
        );
        println!("{:<38} {:<24} PROVISION_STATE", "NODE", "NAME");
        for (n, name, state) in loose {
            println!(
                "{n:<38} {:<24} {}",
                name.as_deref().unwrap_or("-"),
                state.as_deref().unwrap_or("-")
            );
        }
    }
}

async fn apply_command(
    v: &Validated,
    clients: &super::Clients,
    selection: &Selection,
    progress: bool,
    output: Output,
) -> ExitCode {
    let journal = clients.clock.start(Peer::Journal);
    let store = match store(v).await {
        Ok(s) => s,
        Err(e) => return fail(&e),
    };
    drop(journal);
    let p = match planned(clients, selection).await {
        Ok((_, p)) => p,
        Err(e) => return fail(&e),
    };
    let journal = clients.clock.start(Peer::Journal);
    let resumable = matches!(store.repair_unfinished_run().await, Ok(Some(_)));
    drop(journal);
    if p.is_empty() && !resumable {
        store.close().await;
        return nothing_to_do(&p, output.json);
    }
    let selection_text = serde_json::to_string(selection).unwrap_or_default();
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
            print_report(&report, output.json);
            ExitCode::from(match report.status.as_str() {
                "ok" => 0,
                "blocked" => EXIT_BLOCKED,
                _ => EXIT_FAILED,
            })
        }
        Err(e) => fail(&e),
    }
}

/// Nothing to write: exit 4, or 2 when what is left is blocked.
fn nothing_to_do(p: &Plan, json_out: bool) -> ExitCode {
    let blocked = p.count(NodeStatus::Blocked);
    if json_out {
        println!(
            "{}",
            json!({"nothing_to_do": true, "nodes": p.nodes.len(), "blocked": blocked})
        );
    } else {
        println!(
            "nothing to do: {} node(s) already use their custom class only ({} skipped, {} \
             blocked)",
            p.nodes.len() - p.count(NodeStatus::Skipped) - blocked,
            p.count(NodeStatus::Skipped),
            blocked
        );
    }
    ExitCode::from(if blocked > 0 {
        EXIT_BLOCKED
    } else {
        EXIT_NOTHING_TO_DO
    })
}

fn print_report(report: &RunReport, json_out: bool) {
    if json_out {
        print_json(report);
        return;
    }
    println!(
        "run {}{}: {}",
        report.run_id,
        if report.resumed { " (resumed)" } else { "" },
        report.status
    );
    if report.settled > 0 {
        println!(
            "  {} journal entr(ies) the interrupted run left pending were settled",
            report.settled
        );
    }
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

async fn rollback(
    v: &Validated,
    clients: &super::Clients,
    run_id: &str,
    options: &RollbackOptions,
    output: Output,
) -> ExitCode {
    let store = match store(v).await {
        Ok(s) => s,
        Err(e) => return fail(&e),
    };
    let result = apply::rollback(clients, &store, run_id, options).await;
    store.close().await;
    let items = match result {
        Ok(items) => items,
        Err(e) => return fail(&e),
    };
    if output.json {
        print_json(&items);
    } else {
        println!(
            "{:<26} {:<48} {:<38} {:<20} MESSAGE",
            "ACTION", "OBJECT", "NODE", "RESULT"
        );
        for i in &items {
            println!(
                "{:<26} {:<48} {:<38} {:<20} {}",
                i.action,
                i.object,
                i.node,
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

async fn status(v: &Validated, run: Option<&str>, output: Output) -> ExitCode {
    let store = match store(v).await {
        Ok(s) => s,
        Err(e) => return fail(&e),
    };
    let code = match run {
        Some(id) => match super::status::run_state(&store, id).await {
            Ok(Some(state)) => {
                print_run(&state, output.json);
                ExitCode::SUCCESS
            }
            Ok(None) => fail(&RepairError::Input(format!(
                "no repair run {id}; `steward repair status` lists the runs"
            ))),
            Err(e) => fail(&e.into()),
        },
        None => match super::status::runs(&store, 100).await {
            Ok(runs) => {
                print_runs(&runs, output.json);
                ExitCode::SUCCESS
            }
            Err(e) => fail(&e.into()),
        },
    };
    store.close().await;
    code
}

fn when(t: Option<f64>) -> String {
    t.and_then(|t| time::OffsetDateTime::from_unix_timestamp(t as i64).ok())
        .and_then(|d| {
            d.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| "-".into())
}

fn writes(w: &std::collections::BTreeMap<String, usize>) -> String {
    if w.is_empty() {
        return "-".into();
    }
    w.iter()
        .map(|(k, n)| format!("{k}={n}"))
        .collect::<Vec<_>>()
        .join(",")
}

fn print_runs(runs: &[super::status::RunState], json_out: bool) {
    if json_out {
        print_json(&runs);
        return;
    }
    println!(
        "{:<44} {:<12} {:<21} {:<21} {:>6} WRITES",
        "RUN", "STATUS", "STARTED", "FINISHED", "NODES"
    );
    for r in runs {
        println!(
            "{:<44} {:<12} {:<21} {:<21} {:>6} {}",
            r.id,
            r.status,
            when(Some(r.started_at)),
            when(r.finished_at),
            r.nodes_touched,
            writes(&r.writes)
        );
    }
}

fn print_run(r: &super::status::RunState, json_out: bool) {
    if json_out {
        print_json(r);
        return;
    }
    println!("run        {}", r.id);
    println!("status     {}", r.status);
    println!("started    {}", when(Some(r.started_at)));
    println!("finished   {}", when(r.finished_at));
    println!("selection  {}", r.selection);
    println!("writes     {}", writes(&r.writes));
    let nodes = r.result.get("nodes").and_then(|n| n.as_array());
    if let Some(nodes) = nodes {
        println!("{:<38} {:<11} {:>5} ERROR", "NODE", "RESULT", "STEPS");
        for n in nodes {
            let s = |k: &str| n.get(k).and_then(|v| v.as_str()).unwrap_or("").to_string();
            println!(
                "{:<38} {:<11} {:>5} {}",
                s("node"),
                s("result"),
                n.get("steps_done").and_then(|v| v.as_u64()).unwrap_or(0),
                s("error")
            );
        }
    }
    if let Some(e) = r.result.get("global_error").and_then(|e| e.as_str()) {
        println!("before any node: {e}");
    }
}

pub(super) async fn store(v: &Validated) -> Result<Store, RepairError> {
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

async fn planned(
    clients: &super::Clients,
    selection: &Selection,
) -> Result<(Facts, Plan), RepairError> {
    let facts = gather(clients, selection).await?;
    let p = plan::plan(&facts, selection, &cell_names(&clients.db));
    Ok((facts, p))
}

/// The plan as a table, or as JSON (`timings`: given for JSON, added as a `timings` key).
fn print_plan(p: &Plan, json_timings: Option<&Timings>) {
    if let Some(timings) = json_timings {
        let mut doc = serde_json::to_value(p).unwrap_or_default();
        if let (Some(map), Ok(t)) = (doc.as_object_mut(), serde_json::to_value(timings)) {
            map.insert("timings".into(), t);
        }
        print_json(&doc);
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
            NodeStatus::Blocked => "blocked",
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
        for b in &n.blockers {
            println!(
                "    blocked by {} ({}): {}; {}; see `{}`",
                b.consumer,
                b.kind.as_str(),
                b.what,
                b.reason,
                b.command
            );
        }
    }
    println!(
        "{} node(s): {} need repair, {} clean, {} skipped, {} blocked; `steward repair apply` \
         changes the ones that need repair",
        p.nodes.len(),
        p.count(NodeStatus::NeedsRepair),
        p.count(NodeStatus::Clean),
        p.count(NodeStatus::Skipped),
        p.count(NodeStatus::Blocked)
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
