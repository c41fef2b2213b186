//! The `steward` command: `serve`, `config check`, `db upgrade`, `db status`, `rebalance ...`,
//! `simulate`, `repair ...`, `openapi`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

use steward::api::{self, AppState};
use steward::cluster::ClusterHandle;
use steward::config::ClusterSource;
use steward::config::{self, ConfigProblem, LogFormat, Validated};
use steward::jobs::{Jobs, NovaSource};
use steward::openstack;
use steward::store::Store;
use steward::telemetry::prometheus::Prometheus;

#[derive(Parser)]
#[command(
    name = "steward",
    version,
    about = "Nova Steward: steal-aware, AZ-correct scheduling help for OpenStack Nova"
)]
struct Cli {
    /// Configuration file (TOML). Without one, built-in defaults apply: loopback listener,
    /// SQLite state file in the working directory, no authentication.
    #[arg(long, short = 'c', env = "STEWARD_CONFIG", global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP service (the Nova callout, telemetry push, metrics).
    Serve,
    /// Configuration tools.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Steward's own database.
    Db {
        #[command(subcommand)]
        command: DbCommand,
    },
    /// The digital twin: compare Nova's default placement, steward's placement and steward's
    /// placement plus the rebalancer on one synthetic workload (etc/scenarios/*.toml).
    Simulate {
        /// The scenario file, e.g. etc/scenarios/diurnal.toml.
        #[arg(long, short = 's')]
        scenario: PathBuf,
        /// Simulated hours (overrides the scenario's `hours`).
        #[arg(long)]
        hours: Option<f64>,
        /// Seed of the workload's randomness (overrides the scenario's `seed`).
        #[arg(long)]
        seed: Option<u64>,
        #[arg(long, short = 'f', value_enum, default_value = "table")]
        format: Format,
    },
    /// Print the HTTP API's OpenAPI document (what GET /openapi.json serves), or its Markdown
    /// reference: `steward openapi -f markdown > docs/api.md`.
    Openapi {
        #[arg(long, short = 'f', value_enum, default_value = "json")]
        format: DocFormat,
    },
    /// Move legacy Ironic nodes and their instances to custom resource classes (plan first).
    Repair {
        #[command(subcommand)]
        command: Option<RepairCommand>,
        #[command(flatten)]
        selection: RepairSelection,
        #[arg(long, short = 'f', value_enum, default_value = "table", global = true)]
        format: Format,
        /// Print on stderr where the wall time went: waiting on Placement, Ironic, the Nova
        /// API, Keystone, Nova's databases and the journal, and steward's own share.
        #[arg(long, global = true)]
        timings: bool,
    },
    /// Host-failure recovery: suspected hosts, fencing, evacuation, release.
    Evacuate {
        #[command(subcommand)]
        command: steward::recover::cli::Command,
    },
    /// The rebalancer's journal and execution.
    Rebalance {
        #[command(subcommand)]
        command: RebalanceCommand,
    },
}

#[derive(Subcommand)]
enum RebalanceCommand {
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

/// Which Ironic nodes a repair looks at.
#[derive(clap::Args, Clone, Default)]
struct RepairSelection {
    /// An Ironic node uuid or name (repeatable).
    #[arg(long = "node", global = true)]
    nodes: Vec<String>,
    /// Ironic's resource class (`baremetal-gold`) or its custom name (`CUSTOM_BAREMETAL_GOLD`).
    #[arg(long, global = true)]
    resource_class: Option<String>,
    /// A cell name or uuid: only nodes whose compute node is in it.
    #[arg(long, global = true)]
    cell: Option<String>,
    /// Every node (required by `apply` when nothing else selects).
    #[arg(long, global = true)]
    all: bool,
}

impl RepairSelection {
    fn selection(&self) -> steward::repair::plan::Selection {
        steward::repair::plan::Selection {
            nodes: self.nodes.clone(),
            resource_class: self.resource_class.clone(),
            cell: self.cell.clone(),
        }
    }
}

#[derive(Subcommand)]
enum RepairCommand {
    /// Show per node what is wrong and the ordered steps that fix it; changes nothing (default).
    Plan,
    /// Execute the plan: journaled, node by node; exit 0 repaired, 1 failed, 4 nothing to do.
    Apply {
        /// No progress bar on stderr.
        #[arg(long)]
        no_progress: bool,
    },
    /// Check that Placement and Nova agree with the target; exit 0 clean, 3 problems found.
    Verify,
    /// Put back the embedded flavors, request specs and flavor extra specs run RUN_ID changed.
    Rollback {
        run_id: String,
        /// Also restore the nodes' inventories and the allocations.
        #[arg(long)]
        placement: bool,
    },
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Validate the configuration; list every problem with its key; exit 1 if any.
    Check {
        #[arg(long, short = 'f', value_enum, default_value = "table")]
        format: Format,
    },
}

#[derive(Subcommand)]
enum DbCommand {
    /// Apply pending schema migrations (safe to run again).
    Upgrade,
    /// Show applied and pending migrations; exit 3 if any are pending.
    Status,
}

#[derive(Clone, Copy, ValueEnum)]
enum DocFormat {
    Json,
    Markdown,
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Table,
    Json,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Config {
            command: ConfigCommand::Check { format },
        } => config_check(cli.config, format),
        Command::Serve => with_config(cli.config, serve),
        Command::Db {
            command: DbCommand::Upgrade,
        } => with_config(cli.config, |v| db(v, true)),
        Command::Db {
            command: DbCommand::Status,
        } => with_config(cli.config, |v| db(v, false)),
        Command::Rebalance { command } => with_config(cli.config, |v| rebalance::run(v, command)),
        Command::Evacuate { command } => with_config(cli.config, |v| {
            runtime().block_on(steward::recover::cli::run(&v, command))
        }),
        Command::Openapi { format } => openapi(format),
        Command::Simulate {
            scenario,
            hours,
            seed,
            format,
        } => simulate(&scenario, hours, seed, format),
        Command::Repair {
            command,
            selection,
            format,
            timings,
        } => with_config(cli.config, |v| {
            repair(v, command, selection, format, timings)
        }),
    }
}

fn simulate(
    path: &std::path::Path,
    hours: Option<f64>,
    seed: Option<u64>,
    format: Format,
) -> ExitCode {
    use steward::simulate::{self, Scenario};
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
    match simulate::simulate(&scenario) {
        Ok(report) => {
            match format {
                Format::Table => print!("{}", simulate::report::render(&report)),
                Format::Json => match serde_json::to_string_pretty(&report) {
                    Ok(j) => println!("{j}"),
                    Err(e) => {
                        eprintln!("steward: {e}");
                        return ExitCode::from(1);
                    }
                },
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("steward: scenario {}: {e}", path.display());
            ExitCode::from(1)
        }
    }
}

/// Needs no configuration: the document is the code's.
fn openapi(format: DocFormat) -> ExitCode {
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

fn print_problems(problems: &[ConfigProblem]) {
    eprintln!(
        "steward: the configuration has {} problem(s):",
        problems.len()
    );
    for p in problems {
        eprintln!("  {p}");
    }
}

fn with_config(path: Option<PathBuf>, run: impl FnOnce(Validated) -> ExitCode) -> ExitCode {
    match config::load(path.as_deref()) {
        Ok(v) => {
            let _flush_on_exit = init_logging(&v);
            run(v)
        }
        Err(problems) => {
            print_problems(&problems);
            eprintln!("steward: refusing to start; fix the keys above (`steward config check` lists them)");
            ExitCode::from(1)
        }
    }
}

fn config_check(path: Option<PathBuf>, format: Format) -> ExitCode {
    let result = config::load(path.as_deref());
    match format {
        Format::Json => {
            let problems = result.as_ref().err().cloned().unwrap_or_default();
            let doc = serde_json::json!({"valid": result.is_ok(), "problems": problems});
            println!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
        }
        Format::Table => match &result {
            Ok(v) => println!(
                "configuration is valid: listener {}, auth {:?}, database {}, profiles {} (default {})",
                v.listen,
                v.settings.auth.strategy,
                v.settings.database.url,
                v.profiles.profiles.keys().cloned().collect::<Vec<_>>().join(", "),
                v.profiles.default
            ),
            Err(problems) => print_problems(problems),
        },
    }
    if result.is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// Log lines go through a writer thread, so a slow reader of stderr (a full pipe, a busy
/// journal) never stalls a scoring request; past 128k waiting lines, lines are dropped rather
/// than wait. The guard flushes on exit and must live as long as the process.
fn init_logging(v: &Validated) -> tracing_appender::non_blocking::WorkerGuard {
    let filter = tracing_subscriber::EnvFilter::try_from_env("STEWARD_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&v.settings.logging.level));
    let (writer, guard) = tracing_appender::non_blocking(std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let _ = match v.settings.logging.format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
    guard
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

fn db(v: Validated, upgrade: bool) -> ExitCode {
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

fn repair(
    v: Validated,
    command: Option<RepairCommand>,
    selection: RepairSelection,
    format: Format,
    timings: bool,
) -> ExitCode {
    use steward::repair::cli::Command as C;
    let s = selection.selection();
    let command = match command.unwrap_or(RepairCommand::Plan) {
        RepairCommand::Plan => C::Plan(s),
        RepairCommand::Apply { no_progress } => C::Apply {
            selection: s,
            all: selection.all,
            progress: !no_progress && std::io::IsTerminal::is_terminal(&std::io::stderr()),
        },
        RepairCommand::Verify => C::Verify(s),
        RepairCommand::Rollback { run_id, placement } => C::Rollback { run_id, placement },
    };
    runtime().block_on(steward::repair::cli::run(
        &v,
        command,
        steward::repair::cli::Output {
            json: matches!(format, Format::Json),
            timings,
        },
    ))
}

/// The Nova client the cluster refresh reads through, when `[cluster] source = "nova"`.
fn nova_source(v: &Validated) -> anyhow::Result<Option<NovaSource>> {
    let c = &v.settings.cluster;
    if c.source != ClusterSource::Nova {
        return Ok(None);
    }
    let cloud = openstack::cloud::load(v.settings.openstack.cloud.as_deref())?;
    tracing::info!(cloud = %cloud.describe(), "cluster view from Nova");
    let options = openstack::session::SessionOptions::for_cloud(&cloud);
    let session = std::sync::Arc::new(openstack::session::Session::new(cloud, options)?);
    let nova =
        openstack::nova::Nova::new(session).with_list_options(openstack::nova::ListOptions {
            page_size: c.page_size,
            ..Default::default()
        });
    Ok(Some(NovaSource {
        nova: std::sync::Arc::new(nova),
        role_key: v.settings.roles.metadata_key.clone(),
        default_az: c.default_availability_zone.clone(),
        every: std::time::Duration::from_secs_f64(c.refresh_seconds),
    }))
}

/// The validator of callers' Keystone tokens, when `[auth] strategy = "keystone"`: steward's
/// own `[openstack] cloud` session asks Keystone, answers are cached `[auth] cache_seconds`.
fn keystone_validator(
    v: &Validated,
) -> anyhow::Result<Option<std::sync::Arc<openstack::keystone::CachedValidator>>> {
    let auth = &v.settings.auth;
    if auth.strategy != config::AuthStrategy::Keystone {
        return Ok(None);
    }
    let cloud = openstack::cloud::load(v.settings.openstack.cloud.as_deref())?;
    tracing::info!(cloud = %cloud.describe(), cache_seconds = auth.cache_seconds, "tokens validated by Keystone");
    let mut options = openstack::session::SessionOptions::for_cloud(&cloud);
    // A caller waits on this answer: a Keystone 503 is passed on at once, not waited out.
    options.retries_on_503 = 0;
    let session = std::sync::Arc::new(openstack::session::Session::new(cloud, options)?);
    Ok(Some(std::sync::Arc::new(
        openstack::keystone::CachedValidator::new(
            openstack::keystone::Keystone::new(session),
            std::time::Duration::from_secs_f64(auth.cache_seconds),
            auth.cache_size,
        ),
    )))
}

fn serve(v: Validated) -> ExitCode {
    let workers = v
        .settings
        .server
        .workers
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
    let result: anyhow::Result<()> = actix_web::rt::System::new().block_on(async move {
        let db = &v.settings.database;
        let store = Store::connect(&db.url, db.max_connections).await?;
        if db.auto_upgrade {
            store.upgrade().await?;
        } else {
            store.check_current().await?;
        }
        let view = store.load_view().await?;
        tracing::info!(
            database = %db.url,
            hosts = view.hosts.len(),
            vms = view.vms.len(),
            auth = ?v.settings.auth.strategy,
            "state loaded"
        );
        let listen = v.listen;
        let prometheus = Prometheus::new(&v.settings.prometheus).map_err(|e| anyhow::anyhow!(e))?;
        let nova = nova_source(&v)?;
        let keystone = keystone_validator(&v)?;
        let v_rebalance = rebalance::LoopSettings::of(&v);
        let mut state = AppState::new(v, store.clone(), ClusterHandle::new(view));
        if let Some(k) = keystone {
            state = state.with_keystone(k);
        }
        Jobs {
            prometheus,
            nova,
            store: store.clone(),
            cluster: state.cluster.clone(),
            metrics: state.metrics.clone(),
        }
        .spawn();
        rebalance::spawn_loop(
            &v_rebalance,
            &store,
            state.metrics.clone(),
            state.profiles.clone(),
            state.cluster.clone(),
        )?;
        steward::recover::cli::spawn_loop(&state.settings, store.clone(), state.metrics.clone())?;
        api::serve(state, listen, workers).await?;
        store.close().await;
        Ok(())
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("steward: {e:#}");
            ExitCode::from(1)
        }
    }
}

mod rebalance {
    //! `steward rebalance ...`: the journal from the command line, and the cron cycle.

    use std::path::Path;
    use std::process::ExitCode;
    use std::sync::Arc;

    use serde::Deserialize;
    use steward::config::Validated;
    use steward::metrics::Metrics;
    use steward::rebalance::cycle::{CycleError, CycleOutcome, Planner};
    use steward::rebalance::execute::{lead_and_run_after, Executor};
    use steward::rebalance::Mode as RebalanceMode;
    use steward::rebalance::{hooks, leader};
    use steward::store::journal::{ActionRow, NewAction, NewPlan};
    use steward::store::Store;
    use steward::{openstack, unix_now};

    use super::{runtime, Format, RebalanceCommand};

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

    pub fn run(v: Validated, command: RebalanceCommand) -> ExitCode {
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
                RebalanceCommand::RunOnce {
                    max_seconds,
                    format,
                } => run_once(&v, &store, max_seconds, format).await,
                RebalanceCommand::ImportPlan {
                    file,
                    approve,
                    format,
                } => import_plan(&v, &store, &file, approve, format).await,
                RebalanceCommand::Approve { plan } => decide(&store, &plan, true).await,
                RebalanceCommand::Cancel { plan } => decide(&store, &plan, false).await,
                RebalanceCommand::List { format } => list(&store, format).await,
                RebalanceCommand::DebugLiveMigrate { server, host } => {
                    debug_live_migrate(&v, &server, &host).await
                }
            };
            store.close().await;
            code
        })
    }

    fn action_json(a: &ActionRow) -> serde_json::Value {
        serde_json::json!({
            "id": a.id, "plan_id": a.plan_id, "vm": a.vm, "vm_name": a.vm_name,
            "source": a.source, "target": a.target, "az": a.az, "state": a.state.as_str(),
            "outcome": a.outcome.map(|o| o.as_str()), "migration_id": a.migration_id,
            "bytes_moved": a.bytes_moved, "error": a.error, "accepted_at": a.accepted_at,
            "abort_requested_at": a.abort_requested_at, "finished_at": a.finished_at,
        })
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
        let parsed: PlanFile = match serde_path_to_error::deserialize(
            &mut serde_json::Deserializer::from_str(&text),
        ) {
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
        match store.insert_plan(&plan, who).await {
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

    /// The executor over the configured cloud and hooks.
    pub fn executor(v: &Validated, store: &Store, metrics: Metrics) -> anyhow::Result<Executor> {
        let nova = Arc::new(nova(v)?);
        let hooks = hooks::from_settings(&v.settings.rebalance.hooks)
            .map_err(|e| anyhow::anyhow!("[rebalance.hooks]: {e}"))?;
        Ok(Executor::new(
            store.clone(),
            nova,
            hooks,
            v.settings.rebalance.execution.clone(),
            metrics,
        ))
    }

    /// The planning part of run-once's JSON: the journaled plan's id, mode and state, the
    /// number of candidates, the actions and skipped candidates (or `null` when planning failed;
    /// the error is among `errors`).
    fn plan_summary(planned: &Result<CycleOutcome, CycleError>) -> serde_json::Value {
        match planned {
            Ok(o) => serde_json::json!({
                "id": o.journaled.as_ref().map(|p| p.id.clone()),
                "state": o.journaled.as_ref().map(|p| p.state.as_str()),
                "mode": o.plan.mode.as_str(),
                "candidates": o.candidates,
                "actions": o.plan.actions,
                "skipped": o.plan.skipped,
            }),
            Err(_) => serde_json::Value::Null,
        }
    }

    async fn debug_live_migrate(v: &Validated, server: &str, host: &str) -> ExitCode {
        let nova = match nova(v) {
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

    fn nova(v: &Validated) -> anyhow::Result<openstack::nova::Nova> {
        let cloud = openstack::cloud::load(v.settings.openstack.cloud.as_deref())?;
        let options = openstack::session::SessionOptions::for_cloud(&cloud);
        let session = Arc::new(openstack::session::Session::new(cloud, options)?);
        Ok(openstack::nova::Nova::new(session))
    }

    /// What the service's execution loop needs from the settings (`AppState` takes the rest).
    pub struct LoopSettings {
        mode: RebalanceMode,
        nova: anyhow::Result<openstack::nova::Nova>,
        hooks: steward::config::HooksSettings,
        execution: steward::config::ExecutionSettings,
        planner: PlannerSettings,
    }

    /// What the planner needs from the settings, besides Nova and the profiles.
    #[derive(Clone)]
    pub struct PlannerSettings {
        opts: steward::scoring::Options,
        cfg: steward::rebalance::RebalanceSettings,
        role_key: String,
        default_az: String,
    }

    impl PlannerSettings {
        fn of(v: &Validated) -> PlannerSettings {
            PlannerSettings {
                opts: v.scoring_options(),
                cfg: v.settings.rebalance.clone(),
                role_key: v.settings.roles.metadata_key.clone(),
                default_az: v.settings.cluster.default_availability_zone.clone(),
            }
        }

        fn planner(
            self,
            nova: openstack::nova::Nova,
            profiles: Arc<steward::scoring::ProfileSet>,
            metrics: Metrics,
        ) -> Planner {
            // Placement through Nova's session: one login, one catalog.
            let placement = openstack::placement::Placement::new(nova.session().clone());
            Planner {
                placement: Arc::new(placement),
                nova: Arc::new(nova),
                profiles,
                opts: self.opts,
                cfg: self.cfg,
                role_key: self.role_key,
                default_az: self.default_az,
                metrics: Some(metrics),
            }
        }
    }

    impl LoopSettings {
        pub fn of(v: &Validated) -> LoopSettings {
            LoopSettings {
                mode: v.settings.rebalance.mode,
                nova: nova(v),
                hooks: v.settings.rebalance.hooks.clone(),
                execution: v.settings.rebalance.execution.clone(),
                planner: PlannerSettings::of(v),
            }
        }
    }

    /// `serve`'s rebalance loop: every `cycle_seconds`, as the leader (one replica at a time),
    /// plan (at most every `[rebalance] interval_seconds`: detect, plan, journal) and then
    /// execute. In `dry-run` it plans and starts nothing (actions already under way are carried
    /// to their end); without a cloud to read, dry-run has no planner and the service runs on.
    pub fn spawn_loop(
        l: &LoopSettings,
        store: &Store,
        metrics: Metrics,
        profiles: Arc<steward::scoring::ProfileSet>,
        cluster: Arc<steward::cluster::ClusterHandle>,
    ) -> anyhow::Result<()> {
        let nova = match &l.nova {
            Ok(n) => n.clone(),
            Err(e) if l.mode == RebalanceMode::DryRun => {
                tracing::warn!(error = %format!("{e:#}"), "[rebalance] dry-run: no cloud to plan from; the rebalancer is off");
                return Ok(());
            }
            Err(e) => anyhow::bail!("[rebalance] mode = {:?} needs Nova: {e:#}", l.mode.as_str()),
        };
        let start_new = l.mode != RebalanceMode::DryRun;
        let planner = l
            .planner
            .clone()
            .planner(nova.clone(), profiles, metrics.clone());
        let plan_every = l.planner.cfg.interval_seconds;
        let hooks = hooks::from_settings(&l.hooks)
            .map_err(|e| anyhow::anyhow!("[rebalance.hooks]: {e}"))?;
        let every = std::time::Duration::from_secs_f64(l.execution.cycle_seconds);
        let executor = Arc::new(Executor::new(
            store.clone(),
            Arc::new(nova),
            hooks,
            l.execution.clone(),
            metrics,
        ));
        let store = store.clone();
        let holder = leader::holder_id();
        tracing::info!(mode = l.mode.as_str(), every_seconds = every.as_secs_f64(), %holder, "rebalance execution loop");
        tokio::spawn(async move {
            let mut next_plan = f64::NEG_INFINITY;
            loop {
                let now = unix_now();
                let first = async {
                    if now < next_plan {
                        return None;
                    }
                    Some(planner.run(&store, &cluster.snapshot(), now).await)
                };
                match lead_and_run_after(&executor, &store, &holder, None, start_new, first).await {
                    Ok(Some((planned, r))) => {
                        if let Some(planned) = planned.flatten() {
                            next_plan = now + plan_every;
                            match planned {
                                Ok(o) => tracing::info!(
                                    candidates = o.candidates,
                                    actions = o.plan.actions.len(),
                                    skipped = o.plan.skipped.len(),
                                    plan = o
                                        .journaled
                                        .as_ref()
                                        .map(|p| p.id.as_str())
                                        .unwrap_or("none"),
                                    "rebalance planning cycle"
                                ),
                                Err(e) => {
                                    tracing::warn!(error = %e, "rebalance planning cycle failed")
                                }
                            }
                        }
                        if !r.actions.is_empty() {
                            tracing::info!(
                                actions = r.actions.len(),
                                unfinished = r.unfinished(),
                                errors = r.errors.len(),
                                "rebalance cycle"
                            );
                        }
                    }
                    Ok(None) => {}
                    Err(e) => tracing::warn!(error = %e, "rebalance cycle could not start"),
                }
                tokio::time::sleep(every).await;
            }
        });
        Ok(())
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
        // Dry-run plans and executes nothing new, but never leaves an action under way behind.
        let start_new = v.settings.rebalance.mode != RebalanceMode::DryRun;
        let metrics = Metrics::new();
        let executor = match executor(v, store, metrics.clone()) {
            Ok(e) => Arc::new(e),
            Err(e) => {
                eprintln!("steward: {e:#}");
                return ExitCode::from(1);
            }
        };
        // The same profiles `config check` validated (ProfileSet is built, not cloned).
        let profiles = match steward::scoring::ProfileSet::build(
            &v.settings.profiles,
            &v.settings.scheduling.default_profile,
        ) {
            Ok(p) => Arc::new(p),
            Err(errors) => {
                for e in errors {
                    eprintln!("steward: {e}");
                }
                return ExitCode::from(1);
            }
        };
        let planner = match nova(v) {
            Ok(n) => PlannerSettings::of(v).planner(n, profiles, metrics),
            Err(e) => {
                eprintln!("steward: {e:#}");
                return ExitCode::from(1);
            }
        };
        // The view as serve keeps it: telemetry from the store, membership from Nova (the
        // planner lays it over). The detector's history comes from the store too.
        let view = match store.load_view().await {
            Ok(v) => v,
            Err(e) => {
                eprintln!("steward: {e}");
                return ExitCode::from(1);
            }
        };
        let holder = leader::holder_id();
        let first = planner.run(store, &view, unix_now());
        let (planned, mut report) =
            match lead_and_run_after(&executor, store, &holder, budget, start_new, first).await {
                Ok(Some(r)) => r,
                Ok(None) => {
                    println!("another steward replica leads the rebalancer; nothing done");
                    return ExitCode::from(4);
                }
                Err(e) => {
                    eprintln!("steward: {e}");
                    return ExitCode::from(1);
                }
            };
        let planned = planned.unwrap_or_else(|| {
            Err(CycleError::Leadership(
                "lost the rebalance leadership while planning; the next run plans again".into(),
            ))
        });
        let plan_doc = plan_summary(&planned);
        if let Err(e) = &planned {
            report.errors.push(e.to_string());
        }
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
}
