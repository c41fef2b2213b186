//! The bodies of the commands (`config check`, `db`, `simulate`, `openapi`; `rebalance ...` in
//! `rebalance.rs`) and what every command shares: the output format, the runtime, loading the
//! configuration. `main.rs` parses the arguments and calls one function per command; `serve`
//! is `crate::serve`, `repair ...` is `repair::cli`. The composition root: it may use any
//! subsystem, and none uses it.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::ValueEnum;

pub mod rebalance;
pub mod recorded;

use crate::api;
use crate::config::{self, ConfigProblem, Validated};
use crate::store::Store;

/// How a command prints: a table for people, JSON for scripts.
#[derive(Clone, Copy, ValueEnum)]
pub enum Format {
    Table,
    Json,
}

/// What `steward openapi` prints.
#[derive(Clone, Copy, ValueEnum)]
pub enum DocFormat {
    Json,
    Markdown,
}

pub fn print_problems(problems: &[ConfigProblem]) {
    eprintln!(
        "steward: the configuration has {} problem(s):",
        problems.len()
    );
    for p in problems {
        eprintln!("  {p}");
    }
}

/// Load the configuration (refusing to run on any problem), start logging, run.
pub fn with_config(path: Option<PathBuf>, run: impl FnOnce(Validated) -> ExitCode) -> ExitCode {
    match config::load(path.as_deref()) {
        Ok(v) => {
            let _flush_on_exit = crate::logging::init(&v.settings.logging);
            run(v)
        }
        Err(problems) => {
            print_problems(&problems);
            eprintln!("steward: refusing to start; fix the keys above (`steward config check` lists them)");
            ExitCode::from(1)
        }
    }
}

/// `steward config check`: every problem of every section, and what `serve` would refuse.
pub fn config_check(path: Option<PathBuf>, format: Format, online: bool) -> ExitCode {
    let vars: Vec<(String, String)> = std::env::vars().collect();
    let result = config::check_from(path.as_deref(), &vars);
    // What steward's user may read of Nova, tried (`--online`, on a valid configuration).
    let reads = match (&result, online) {
        (Ok(v), true) => Some(online_reads(v)),
        _ => None,
    };
    // Which leader election runs: a lease row everywhere; it says whether Galera certifies it.
    let election = result.as_ref().ok().map(|v| {
        runtime().block_on(crate::rebalance::leader::describe_at(
            &v.settings.database.url,
            v.settings.rebalance.execution.lease_seconds,
        ))
    });
    match format {
        Format::Json => {
            let problems = result.as_ref().err().cloned().unwrap_or_default();
            let unknown_az = result
                .as_ref()
                .ok()
                .map(|v| v.settings.scheduling.unknown_az.as_str());
            let doc = serde_json::json!({"valid": result.is_ok(), "problems": problems,
                "leader_election": election, "unknown_az": unknown_az,
                "nova_reads": reads.as_ref().map(|r| match r {
                    Ok(a) => a.iter().map(|x| serde_json::json!({"read": x.read,
                        "policy": x.policy, "result": x.result, "detail": x.detail}))
                        .collect::<Vec<_>>().into(),
                    Err(e) => serde_json::json!({"error": e}),
                })});
            println!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
        }
        Format::Table => match &result {
            Ok(v) => println!(
                "configuration is valid: listener {}, auth {:?}, database {}, profiles {} (default {}), \
                 a move of unknown AZ: {}",
                v.listen,
                v.settings.auth.strategy,
                v.settings.database.url,
                v.profiles.profiles.keys().cloned().collect::<Vec<_>>().join(", "),
                v.profiles.default,
                v.settings.scheduling.unknown_az.describe()
            ),
            Err(problems) => print_problems(problems),
        },
    }
    if let (Format::Table, Some(e)) = (format, &election) {
        println!("leader election: {e}");
    }
    if let (Format::Table, Some(r)) = (format, &reads) {
        print_reads(r);
    }
    let reads_ok = reads
        .as_ref()
        .is_none_or(|r| r.as_ref().is_ok_and(|a| a.iter().all(|x| x.is_ok())));
    if result.is_ok() && reads_ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// Every read of Nova the cluster view makes, tried as `[openstack] cloud`'s user; `Err` when
/// there is no cloud to try.
fn online_reads(v: &Validated) -> Result<Vec<crate::cluster::access::Access>, String> {
    let nova = crate::rebalance::service::nova(v).map_err(|e| format!("{e:#}"))?;
    Ok(runtime().block_on(crate::cluster::access::probe(&nova)))
}

fn print_reads(r: &Result<Vec<crate::cluster::access::Access>, String>) {
    match r {
        Err(e) => println!("nova reads: not tried: {e}"),
        Ok(all) => {
            println!("nova reads (the cluster view's, as [openstack] cloud's user):");
            for a in all {
                println!("  {:<9} {} ({}): {}", a.result, a.read, a.policy, a.detail);
            }
        }
    }
}

/// The runtime of the commands that are not `serve` (which runs actix's own).
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

/// `steward db upgrade` (`upgrade`) and `steward db status`.
pub fn db(v: Validated, upgrade: bool) -> ExitCode {
    runtime().block_on(async {
        let store = match Store::connect(&v.settings.database.url, 1).await {
            Ok(s) => s,
            Err(e) => {
                eprintln!("steward: {e}");
                return ExitCode::from(1);
            }
        };
        let result = if upgrade {
            store.upgrade().await
        } else {
            store.status().await
        };
        store.close().await;
        match result {
            Ok(s) => {
                println!(
                    "database {}: {} migration(s) applied, {} pending",
                    v.settings.database.url,
                    s.applied.len(),
                    s.pending.len()
                );
                for (version, description) in &s.pending {
                    println!("  pending {version} {description}");
                }
                if s.pending.is_empty() {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::from(3)
                }
            }
            Err(e) => {
                eprintln!("steward: {e}");
                ExitCode::from(1)
            }
        }
    })
}

pub fn simulate(
    path: &std::path::Path,
    hours: Option<f64>,
    seed: Option<u64>,
    seeds: Option<&str>,
    format: Format,
) -> ExitCode {
    use crate::simulate::{self, Scenario};
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            eprintln!(
                "steward: cannot read scenario {}: {e}; scenarios ship in etc/scenarios/",
                path.display()
            );
            return ExitCode::from(1);
        }
    };
    let mut scenario = match Scenario::parse(&text) {
        Ok(s) => s,
        Err(problems) => {
            eprintln!(
                "steward: scenario {} has {} problem(s):",
                path.display(),
                problems.len()
            );
            for p in problems {
                eprintln!("  {p}");
            }
            return ExitCode::from(1);
        }
    };
    if let Some(h) = hours {
        scenario.hours = h;
    }
    if let Some(s) = seed {
        scenario.seed = s;
    }
    let problems = scenario.problems();
    if !problems.is_empty() {
        for p in problems {
            eprintln!("steward: {p} (--hours/--seed)");
        }
        return ExitCode::from(1);
    }
    if let Some(seeds) = seeds {
        let seeds = match simulate::parse_seeds(seeds) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("steward: {e}");
                return ExitCode::from(1);
            }
        };
        return match simulate::simulate_seeds(&scenario, &seeds) {
            Ok(report) => print_report(format, &report, simulate::report::render_seeds),
            Err(e) => {
                eprintln!("steward: scenario {}: {e}", path.display());
                ExitCode::from(1)
            }
        };
    }
    match simulate::simulate(&scenario) {
        Ok(report) => print_report(format, &report, simulate::report::render),
        Err(e) => {
            eprintln!("steward: scenario {}: {e}", path.display());
            ExitCode::from(1)
        }
    }
}

/// A report as a table or as JSON (compact: the per-step data is large).
fn print_report<T: serde::Serialize>(
    format: Format,
    report: &T,
    table: fn(&T) -> String,
) -> ExitCode {
    match format {
        Format::Table => print!("{}", table(report)),
        Format::Json => match serde_json::to_string(report) {
            Ok(j) => println!("{j}"),
            Err(e) => {
                eprintln!("steward: {e}");
                return ExitCode::from(1);
            }
        },
    }
    ExitCode::SUCCESS
}

/// Needs no configuration: the document is the code's.
pub fn openapi(format: DocFormat) -> ExitCode {
    let doc = match serde_json::to_value(api::openapi::document()) {
        Ok(doc) => doc,
        Err(e) => {
            eprintln!("steward: cannot encode the OpenAPI document: {e}");
            return ExitCode::from(1);
        }
    };
    match format {
        DocFormat::Json => println!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default()),
        DocFormat::Markdown => print!("{}", api::openapi_markdown::render(&doc)),
    }
    ExitCode::SUCCESS
}
