//! `steward evacuate plan|run-once|release|list|show|approve`, and `serve`'s recovery loop.
//! Tables by default, JSON with `-f json`.
//!
//! | command  | 0 | 1 | 3 | 4 | 5 |
//! |----------|---|---|---|---|---|
//! | plan     | no host suspected | could not read Nova or the journal | hosts suspected (see the table) | | a partition guard holds |
//! | run-once | nothing left under way | an error | incidents left open (approval, deferred VMs) | another replica leads | a partition guard holds |
//! | release  | released | could not (Nova, the hook) | refused (no incident, or still open) | | |
//! | list, show, approve | done | an error | refused (unknown id, not awaiting approval) | | |

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use super::execute::{lead, Recovery, RecoveryError, RoundReport};
use super::report::IncidentDto;
use super::suspect::Finding;
use super::witness::Witnesses;
use super::Mode;
use crate::config::{Settings, Validated};
use crate::metrics::Metrics;
use crate::store::recovery::IncidentRow;
use crate::store::Store;
use crate::unix_now;

pub const EXIT_FAILED: u8 = 1;
pub const EXIT_OPEN: u8 = 3;
pub const EXIT_NOT_LEADER: u8 = 4;
pub const EXIT_GUARD: u8 = 5;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Format {
    #[default]
    Table,
    Json,
}

#[derive(Debug, Clone, clap::Subcommand)]
pub enum Command {
    /// Read the witnesses and show which hosts are suspected, why, and what recovery would
    /// do (guards, cool-downs). Writes nothing.
    Plan {
        #[arg(long, short = 'f', value_enum, default_value = "table")]
        format: Format,
    },
    /// Rounds as the leader until nothing is under way: open incidents for suspected hosts
    /// (not in dry-run), fence, force down, evacuate. For cron or by hand.
    RunOnce {
        /// Stop after this long; what is under way resumes on the next run.
        #[arg(long)]
        max_seconds: Option<f64>,
        #[arg(long, short = 'f', value_enum, default_value = "table")]
        format: Format,
    },
    /// Put a recovered host back in service: run the rejoin hook, then unforce its compute
    /// service (`forced_down: false`).
    Release {
        host: String,
        #[arg(long, short = 'f', value_enum, default_value = "table")]
        format: Format,
    },
    /// The journal's incidents, newest first (as GET /v1/recovery/evacuations).
    List {
        #[arg(long, short = 'f', value_enum, default_value = "table")]
        format: Format,
    },
    /// One incident with its VMs and events.
    Show {
        id: String,
        #[arg(long, short = 'f', value_enum, default_value = "json")]
        format: Format,
    },
    /// Approve a suspected incident (mode approve): fencing and evacuation go ahead.
    Approve { id: String },
}

/// Recovery over the configured cloud, fencing hook and witnesses.
pub fn build(settings: &Settings, store: &Store, metrics: Metrics) -> anyhow::Result<Recovery> {
    let s = &settings.recovery;
    let fence =
        super::execute::fence_hook(s).map_err(|e| anyhow::anyhow!("[recovery.fence]: {e}"))?;
    let witnesses = Witnesses::from_settings(&s.witnesses)
        .map_err(|e| anyhow::anyhow!("[recovery.witnesses]: {e}"))?;
    Ok(Recovery::new(
        store.clone(),
        Arc::new(crate::openstack::nova_client(
            settings.openstack.cloud.as_deref(),
        )?),
        fence,
        witnesses,
        s.clone(),
        settings.roles.metadata_key.clone(),
        metrics,
    ))
}

async fn open_store(v: &Validated) -> Result<Store, String> {
    let db = &v.settings.database;
    let store = Store::connect(&db.url, db.max_connections.max(2))
        .await
        .map_err(|e| e.to_string())?;
    let schema = if db.auto_upgrade {
        store.upgrade().await.map(|_| ())
    } else {
        store.check_current().await
    };
    schema.map_err(|e| e.to_string())?;
    Ok(store)
}

pub async fn run(v: &Validated, command: Command) -> ExitCode {
    let store = match open_store(v).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("steward: {e}");
            return ExitCode::from(EXIT_FAILED);
        }
    };
    let code = match command {
        Command::List { format } => list(&store, format).await,
        Command::Show { id, format } => show(&store, &id, format).await,
        Command::Approve { id } => {
            match store
                .approve_incident(&id, "steward evacuate approve (command line)", unix_now())
                .await
            {
                Ok(i) => {
                    println!("incident {} (host {}) approved", i.id, i.host);
                    ExitCode::SUCCESS
                }
                Err(e) => refused(&e.to_string()),
            }
        }
        other => match build(&v.settings, &store, Metrics::new()) {
            Ok(r) => act(v, &store, &r, other).await,
            Err(e) => {
                eprintln!("steward: {e:#}");
                ExitCode::from(EXIT_FAILED)
            }
        },
    };
    store.close().await;
    code
}

fn refused(msg: &str) -> ExitCode {
    eprintln!("steward: {msg}");
    ExitCode::from(EXIT_OPEN)
}

async fn act(v: &Validated, store: &Store, r: &Recovery, command: Command) -> ExitCode {
    match command {
        Command::Plan { format } => match r.plan(unix_now()).await {
            Ok(report) => {
                print_round(&report, format);
                round_code(&report, true)
            }
            Err(e) => {
                eprintln!("steward: {e}");
                ExitCode::from(EXIT_FAILED)
            }
        },
        Command::RunOnce {
            max_seconds,
            format,
        } => {
            if v.settings.recovery.mode == Mode::DryRun {
                eprintln!("steward: [recovery] mode is dry-run: incidents are shown, never acted on (set mode = \"approve\" or \"auto\")");
            }
            let holder = crate::rebalance::leader::holder_id();
            let budget = max_seconds.map(Duration::from_secs_f64);
            let ttl = v.settings.recovery.lease_seconds;
            match lead(
                store,
                &holder,
                ttl,
                &Metrics::new(),
                r,
                r.run_until_settled(budget),
            )
            .await
            {
                Ok(Some(report)) => {
                    print_round(&report, format);
                    round_code(&report, false)
                }
                Ok(None) => {
                    println!("another steward replica leads recovery; nothing done");
                    ExitCode::from(EXIT_NOT_LEADER)
                }
                Err(e) => {
                    eprintln!("steward: {e}");
                    ExitCode::from(EXIT_FAILED)
                }
            }
        }
        Command::Release { host, format } => {
            match r
                .release(&host, "steward evacuate release (command line)")
                .await
            {
                Ok(i) => {
                    match format {
                        Format::Json => println!("{}", incident_json(&i)),
                        Format::Table => println!(
                            "host {host} released: nova-compute {} is no longer forced down (incident {})",
                            i.service_id, i.id
                        ),
                    }
                    ExitCode::SUCCESS
                }
                Err(RecoveryError::Refused(m)) => refused(&m),
                Err(e) => {
                    eprintln!("steward: {e}");
                    ExitCode::from(EXIT_FAILED)
                }
            }
        }
        _ => ExitCode::from(EXIT_FAILED),
    }
}

fn round_code(r: &RoundReport, plan_only: bool) -> ExitCode {
    if !r.errors.is_empty() {
        for e in &r.errors {
            eprintln!("steward: {e}");
        }
        return ExitCode::from(EXIT_FAILED);
    }
    if !r.plan.guards.is_empty() {
        return ExitCode::from(EXIT_GUARD);
    }
    let suspected = r.observed.findings.iter().any(|f| f.suspicion().is_some());
    let open = r.incidents.iter().any(|(_, _, s)| {
        crate::store::recovery::IncidentState::parse(s).is_some_and(|s| !s.is_final())
    });
    if (plan_only && suspected) || (!plan_only && open) {
        return ExitCode::from(EXIT_OPEN);
    }
    ExitCode::SUCCESS
}

/// The round as JSON: what `-f json` prints and the API's plan answer.
pub fn round_json(r: &RoundReport) -> serde_json::Value {
    json!({
        "at": r.at,
        "mode": r.mode,
        "findings": r.observed.findings,
        "hosts_per_az": r.observed.hosts_per_az,
        "free_targets_per_az": r.observed.free_targets_per_az,
        "open": r.plan.open.iter().map(|s| &s.host).collect::<Vec<_>>(),
        "held": r.plan.held,
        "guards": r.plan.guards,
        "opened": r.opened,
        "incidents": r.incidents.iter().map(|(id, host, state)| json!({"id": id, "host": host, "state": state})).collect::<Vec<_>>(),
        "deferred": r.deferred,
        "in_flight": r.in_flight,
        "errors": r.errors,
    })
}

fn print_round(r: &RoundReport, format: Format) {
    if format == Format::Json {
        println!("{}", round_json(r));
        return;
    }
    println!(
        "mode {}: {} compute host(s) read",
        r.mode,
        r.observed.findings.len()
    );
    println!(
        "{:<24} {:<12} {:<10} {:>8}  why",
        "HOST", "AZ", "FINDING", "SILENT"
    );
    for f in &r.observed.findings {
        match f {
            Finding::Suspected(s) => println!(
                "{:<24} {:<12} {:<10} {:>7.0}s  {}",
                s.host,
                s.az.as_deref().unwrap_or("-"),
                "suspected",
                s.silent_seconds,
                s.evidence
                    .iter()
                    .map(|e| format!("{}: {}", e.witness, e.detail))
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
            Finding::Clear { host, reason, .. } => {
                println!(
                    "{host:<24} {:<12} {:<10} {:>8}  {reason}",
                    "-", "clear", "-"
                )
            }
        }
    }
    for g in &r.plan.guards {
        println!("GUARD {}: {}", g.scope, g.detail);
    }
    for h in &r.plan.held {
        println!("held {}: {}", h.host, h.reason);
    }
    for (id, host, state) in &r.incidents {
        println!("incident {id} host {host}: {state}");
    }
    for d in &r.deferred {
        println!("deferred {}: {}", d.vm, d.reason);
    }
    for e in &r.errors {
        println!("error: {e}");
    }
}

pub fn incident_json(i: &IncidentRow) -> serde_json::Value {
    json!(IncidentDto::from(i))
}

async fn list(store: &Store, format: Format) -> ExitCode {
    match store.incidents(&[], 500).await {
        Ok(all) => {
            match format {
                Format::Json => println!(
                    "{}",
                    json!({"evacuations": all.iter().map(incident_json).collect::<Vec<_>>()})
                ),
                Format::Table => {
                    println!(
                        "{:<36} {:<24} {:<10} {:<12} {:<8} error",
                        "ID", "HOST", "AZ", "STATE", "RELEASED"
                    );
                    for i in &all {
                        println!(
                            "{:<36} {:<24} {:<10} {:<12} {:<8} {}",
                            i.id,
                            i.host,
                            i.az,
                            i.state,
                            if i.released_at.is_some() { "yes" } else { "no" },
                            i.error.as_deref().unwrap_or("")
                        );
                    }
                }
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("steward: {e}");
            ExitCode::from(EXIT_FAILED)
        }
    }
}

async fn show(store: &Store, id: &str, format: Format) -> ExitCode {
    match super::report::detail(store, id).await {
        Ok(Some(d)) => {
            match format {
                Format::Json => println!("{}", json!(d)),
                Format::Table => {
                    let i = &d.incident;
                    println!("incident {} host {} ({}): {}", i.id, i.host, i.az, i.state);
                    for v in &d.vms {
                        println!(
                            "  {} {} {} -> {} {}",
                            v.vm,
                            v.name,
                            v.state,
                            v.target.as_deref().unwrap_or("-"),
                            v.error.as_deref().unwrap_or("")
                        );
                    }
                    for e in &d.events {
                        println!("  {:.0} {} -> {}: {}", e.at, e.from, e.to, e.detail);
                    }
                }
            }
            ExitCode::SUCCESS
        }
        Ok(None) => refused(&format!(
            "no recovery incident {id}; `steward evacuate list` lists them"
        )),
        Err(e) => {
            eprintln!("steward: {e}");
            ExitCode::from(EXIT_FAILED)
        }
    }
}

/// `serve`'s recovery loop: a round every `interval_seconds` (every `poll_seconds` while
/// evacuations are under way), as the leader. Off in dry-run mode without a cloud.
pub fn spawn_loop(settings: &Settings, store: Store, metrics: Metrics) -> anyhow::Result<()> {
    let s = settings.recovery.clone();
    let recovery = match build(settings, &store, metrics.clone()) {
        Ok(r) => Arc::new(r),
        Err(e) if s.mode == Mode::DryRun => {
            tracing::info!(error = %format!("{e:#}"), "[recovery] dry-run: no cloud to watch; recovery is off");
            return Ok(());
        }
        Err(e) => anyhow::bail!("[recovery] mode = {:?} needs Nova: {e:#}", s.mode.as_str()),
    };
    let holder = crate::rebalance::leader::holder_id();
    tracing::info!(mode = s.mode.as_str(), every_seconds = s.interval_seconds, %holder, "recovery loop");
    tokio::spawn(async move {
        loop {
            let r = Arc::clone(&recovery);
            let busy = match lead(
                &store,
                &holder,
                s.lease_seconds,
                &metrics,
                &recovery,
                async move { r.round(unix_now()).await },
            )
            .await
            {
                Ok(Some(report)) => {
                    for e in &report.errors {
                        tracing::warn!(error = %e, "recovery round");
                    }
                    report.busy()
                }
                Ok(None) => false,
                Err(e) => {
                    tracing::warn!(error = %e, "recovery round could not start");
                    false
                }
            };
            let pause = if busy {
                s.poll_seconds
            } else {
                s.interval_seconds
            };
            tokio::time::sleep(Duration::from_secs_f64(pause)).await;
        }
    });
    Ok(())
}
