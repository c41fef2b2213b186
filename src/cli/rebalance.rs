//! `steward rebalance ...`: the journal from the command line, and the cron cycle.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Subcommand;
use serde::Deserialize;

use super::{runtime, Format};
use crate::api::schema::RebalanceActionDto;
use crate::config::Validated;
use crate::rebalance::service::{self, RunOnceError};
use crate::rebalance::Mode as RebalanceMode;
use crate::store::journal::{ActionRow, NewAction, NewPlan};
use crate::store::Store;
use crate::unix_now;

/// `steward rebalance ...`.
#[derive(Subcommand)]
pub enum Command {
    /// One execution cycle, for cron: become the leader (or exit 4 if another replica leads),
    /// resume unfinished actions and run approved ones. Exit 0 when every action it touched is
    /// closed, 3 when some are still under way (the next run resumes them), 1 on an error.
    RunOnce {
        /// Stop after this long, leaving running actions in the journal for the next run.
        #[arg(long)]
        max_seconds: Option<f64>,
        #[arg(long, short = 'f', value_enum, default_value = "table")]
        format: Format,
    },
    /// Write a plan from a JSON file into the journal (`{"actions": [{"vm", "vm_name",
    /// "source", "target", "az", "ram_mb", "disk_gb", "block_migration", "reason"}], "summary": {}}`).
    ImportPlan {
        file: PathBuf,
        /// Approve it at once (as the approve route would).
        #[arg(long)]
        approve: bool,
        #[arg(long, short = 'f', value_enum, default_value = "table")]
        format: Format,
    },
    /// Approve a proposed plan (as POST /v1/rebalance/plans/{id}/approve).
    Approve { plan: String },
    /// Cancel a plan's actions not yet started (as POST /v1/rebalance/plans/{id}/cancel).
    Cancel { plan: String },
    /// Send one os-migrateLive through steward's Nova client, outside the journal (a probe for
    /// tests against a real Nova API: it prints Nova's answer). Not for operators.
    #[command(hide = true)]
    DebugLiveMigrate { server: String, host: String },
    /// The journal's actions (as GET /v1/migrations).
    List {
        #[arg(long, short = 'f', value_enum, default_value = "table")]
        format: Format,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PlanFile {
    actions: Vec<ActionFile>,
    #[serde(default)]
    summary: serde_json::Value,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ActionFile {
    vm: String,
    #[serde(default)]
    vm_name: String,
    source: String,
    target: String,
    az: String,
    ram_mb: i64,
    #[serde(default)]
    disk_gb: i64,
    #[serde(default)]
    block_migration: bool,
    #[serde(default)]
    reason: String,
}

/// Run one `steward rebalance` command against the journal.
pub fn run(v: Validated, command: Command) -> ExitCode {
    runtime().block_on(async move {
        let db = &v.settings.database;
        let store = match Store::connect(&db.url, db.max_connections.max(2)).await {
            Ok(s) => s,
            Err(e) => {
                eprintln!("steward: {e}");
                return ExitCode::from(1);
            }
        };
        let schema = if db.auto_upgrade {
            store.upgrade().await.map(|_| ())
        } else {
            store.check_current().await
        };
        if let Err(e) = schema {
            eprintln!("steward: {e}");
            return ExitCode::from(1);
        }
        let code = match command {
            Command::RunOnce {
                max_seconds,
                format,
            } => run_once(&v, &store, max_seconds, format).await,
            Command::ImportPlan {
                file,
                approve,
                format,
            } => import_plan(&v, &store, &file, approve, format).await,
            Command::Approve { plan } => decide(&store, &plan, true).await,
            Command::Cancel { plan } => decide(&store, &plan, false).await,
            Command::List { format } => list(&store, format).await,
            Command::DebugLiveMigrate { server, host } => {
                debug_live_migrate(&v, &server, &host).await
            }
        };
        store.close().await;
        code
    })
}

/// An action as GET /v1/migrations shows it.
fn action_json(a: &ActionRow) -> serde_json::Value {
    serde_json::to_value(RebalanceActionDto::from(a.clone())).unwrap_or_default()
}

fn print_actions(actions: &[ActionRow], format: Format) {
    match format {
        Format::Json => {
            let doc: Vec<_> = actions.iter().map(action_json).collect();
            println!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
        }
        Format::Table => {
            println!(
                "{:<36}  {:<36}  {:<16}  {:<16}  {:<10}  error",
                "action", "vm", "source", "target", "state"
            );
            for a in actions {
                println!(
                    "{:<36}  {:<36}  {:<16}  {:<16}  {:<10}  {}",
                    a.id,
                    a.vm,
                    a.source,
                    a.target,
                    a.state.as_str(),
                    a.error.as_deref().unwrap_or("")
                );
            }
        }
    }
}

async fn import_plan(
    v: &Validated,
    store: &Store,
    file: &Path,
    approve: bool,
    format: Format,
) -> ExitCode {
    let mode = v.settings.rebalance.mode;
    if approve && mode == RebalanceMode::DryRun {
        eprintln!("steward: [rebalance] mode is dry-run, so plans are never approved; set mode = \"approve\" or \"auto\"");
        return ExitCode::from(1);
    }
    let text = match std::fs::read_to_string(file) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("steward: cannot read plan file {}: {e}", file.display());
            return ExitCode::from(1);
        }
    };
    let parsed: PlanFile =
        match serde_path_to_error::deserialize(&mut serde_json::Deserializer::from_str(&text)) {
            Ok(p) => p,
            Err(e) => {
                eprintln!(
                    "steward: plan file {}: at {}: {}",
                    file.display(),
                    e.path(),
                    e.inner()
                );
                return ExitCode::from(1);
            }
        };
    for (i, a) in parsed.actions.iter().enumerate() {
        if uuid::Uuid::parse_str(&a.vm).is_err() {
            eprintln!(
                "steward: plan file {}: actions[{i}].vm {:?} is not a server UUID",
                file.display(),
                a.vm
            );
            return ExitCode::from(1);
        }
        if a.source.is_empty() || a.target.is_empty() || a.source == a.target {
            eprintln!(
                "steward: plan file {}: actions[{i}] (server {}) needs a source and a different target host",
                file.display(),
                a.vm
            );
            return ExitCode::from(1);
        }
    }
    let plan = NewPlan {
        id: uuid::Uuid::new_v4().to_string(),
        created_at: unix_now(),
        mode: mode.as_str().into(),
        summary: parsed.summary.to_string(),
        actions: parsed
            .actions
            .into_iter()
            .map(|a| NewAction {
                vm_name: if a.vm_name.is_empty() {
                    a.vm.clone()
                } else {
                    a.vm_name
                },
                vm: a.vm,
                source: a.source,
                target: a.target,
                az: a.az,
                ram_mb: a.ram_mb,
                disk_gb: a.disk_gb,
                block_migration: a.block_migration,
                reason: a.reason,
            })
            .collect(),
    };
    let who = approve.then_some("steward rebalance import-plan --approve");
    match store.insert_plan(&plan, who, None).await {
        Ok(p) => {
            match format {
                Format::Json => println!(
                    "{}",
                    serde_json::json!({"plan": p.id, "state": p.state.as_str(),
                        "actions": p.actions.iter().map(action_json).collect::<Vec<_>>()})
                ),
                Format::Table => {
                    println!("plan {} ({})", p.id, p.state.as_str());
                    print_actions(&p.actions, format);
                }
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("steward: {e}");
            ExitCode::from(1)
        }
    }
}

async fn decide(store: &Store, plan: &str, approve: bool) -> ExitCode {
    match store
        .decide_plan(
            plan,
            approve,
            "steward rebalance (command line)",
            unix_now(),
        )
        .await
    {
        Ok(p) => {
            println!("plan {} is {}", p.id, p.state.as_str());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("steward: {e}");
            ExitCode::from(1)
        }
    }
}

async fn list(store: &Store, format: Format) -> ExitCode {
    match store.actions(&[], 100_000).await {
        Ok(a) => {
            print_actions(&a, format);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("steward: {e}");
            ExitCode::from(1)
        }
    }
}

async fn debug_live_migrate(v: &Validated, server: &str, host: &str) -> ExitCode {
    let nova = match service::nova(v) {
        Ok(n) => n,
        Err(e) => {
            eprintln!("steward: {e:#}");
            return ExitCode::from(1);
        }
    };
    match nova.live_migrate(server, host).await {
        Ok(rid) => {
            println!(
                "accepted: os-migrateLive of server {server} to {host} [request {}]",
                rid.unwrap_or_default()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("steward: {e}");
            ExitCode::from(1)
        }
    }
}

async fn run_once(
    v: &Validated,
    store: &Store,
    max_seconds: Option<f64>,
    format: Format,
) -> ExitCode {
    let budget = match max_seconds {
        None => None,
        Some(s) if s.is_finite() && s > 0.0 => Some(std::time::Duration::from_secs_f64(s)),
        Some(s) => {
            eprintln!("steward: --max-seconds {s} must be a positive number of seconds");
            return ExitCode::from(1);
        }
    };
    let (planned, report) = match service::run_once(v, store, budget).await {
        Ok(r) => (r.planned, r.report),
        Err(RunOnceError::NotLeader) => {
            println!("another steward replica leads the rebalancer; nothing done");
            return ExitCode::from(4);
        }
        Err(RunOnceError::Failed(e)) => {
            eprintln!("steward: {e}");
            return ExitCode::from(1);
        }
    };
    let plan_doc = service::plan_summary(&planned);
    match format {
        Format::Json => println!(
            "{}",
            serde_json::json!({
                "plan": plan_doc,
                "actions": report.actions.iter().map(|(id, vm, s)| serde_json::json!({"id": id, "vm": vm, "state": s.as_str()})).collect::<Vec<_>>(),
                "errors": report.errors,
                "out_of_time": report.out_of_time,
                "unfinished": report.unfinished(),
            })
        ),
        Format::Table => {
            if let Ok(o) = &planned {
                match &o.journaled {
                    Some(p) => println!(
                        "plan {} ({}, {}): {} candidate(s), {} action(s), {} skipped",
                        p.id,
                        p.mode,
                        p.state.as_str(),
                        o.candidates,
                        o.plan.actions.len(),
                        o.plan.skipped.len()
                    ),
                    None => println!("{} candidate(s), no new plan", o.candidates),
                }
            }
            for (id, vm, s) in &report.actions {
                println!("{id}  {vm}  {s}");
            }
            for e in &report.errors {
                eprintln!("steward: {e}");
            }
            println!(
                "{} action(s), {} unfinished{}",
                report.actions.len(),
                report.unfinished(),
                if report.out_of_time {
                    " (stopped at --max-seconds; the next run resumes)"
                } else {
                    ""
                }
            );
        }
    }
    if report.unfinished() > 0 {
        ExitCode::from(3)
    } else if report.errors.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
