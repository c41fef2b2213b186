//! The `steward` command: `serve`, `config check`, `db upgrade`, `db status`, `simulate`.

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
        Command::Simulate {
            scenario,
            hours,
            seed,
            format,
        } => simulate(&scenario, hours, seed, format),
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
