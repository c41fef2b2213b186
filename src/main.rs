//! The `steward` command: `serve`, `config check`, `db upgrade`, `db status`, `repair`.

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
    /// Move legacy Ironic nodes and their instances to custom resource classes (plan first).
    Repair {
        #[command(subcommand)]
        command: Option<RepairCommand>,
        #[command(flatten)]
        selection: RepairSelection,
        #[arg(long, short = 'f', value_enum, default_value = "table", global = true)]
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
        Command::Repair {
            command,
            selection,
            format,
        } => with_config(cli.config, |v| repair(v, command, selection, format)),
    }
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
        matches!(format, Format::Json),
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
        let state = AppState::new(v, store.clone(), ClusterHandle::new(view));
        Jobs {
            prometheus,
            nova,
            store: store.clone(),
            cluster: state.cluster.clone(),
            metrics: state.metrics.clone(),
        }
        .spawn();
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
