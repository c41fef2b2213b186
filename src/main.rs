//! The `steward` command: parses the arguments and calls one library function per command
//! (`serve`, `config check`, `db upgrade`, `db status`, `rebalance ...`, `simulate`,
//! `repair ...`, `openapi`).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use steward::cli::{self, with_config, DocFormat, Format};
use steward::config::Validated;

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
    /// The digital twin: compare Nova's default weighing (alone and with server groups) with
    /// steward as deployed beside it, with and without the rebalancer, on one synthetic
    /// workload (etc/scenarios/*.toml), or on the configured cloud's recorded history
    /// (--from-prometheus).
    Simulate {
        /// The scenario file, e.g. etc/scenarios/diurnal.toml.
        #[arg(long, short = 's', required_unless_present = "from_prometheus")]
        scenario: Option<PathBuf>,
        /// Simulated hours (overrides the scenario's `hours`).
        #[arg(long)]
        hours: Option<f64>,
        /// Seed of the workload's randomness (overrides the scenario's `seed`).
        #[arg(long)]
        seed: Option<u64>,
        /// Run every seed of `A..B` (inclusive) and print min, median and max of each figure.
        #[arg(long, conflicts_with = "seed")]
        seeds: Option<String>,
        #[arg(long, short = 'f', value_enum, default_value = "table")]
        format: Format,
        #[command(flatten)]
        recorded: cli::recorded::RecordedArgs,
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
    /// The rebalancer's journal and execution.
    Rebalance {
        #[command(subcommand)]
        command: steward::cli::rebalance::Command,
    },
    /// Host-failure recovery: suspected hosts, fencing, evacuation, release.
    Evacuate {
        #[command(subcommand)]
        command: steward::recover::cli::Command,
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
    /// Execute the plan: journaled, node by node; exit 0 done, 1 failed, 2 blocked, 4 nothing
    /// to do.
    Apply {
        /// No progress bar on stderr.
        #[arg(long)]
        no_progress: bool,
    },
    /// Check that Placement and Nova agree with the target and every instance's flavor, request
    /// spec and allocation agree; exit 0 clean, 3 broken nodes, 5 only unclassified nodes.
    Verify,
    /// Put back what run RUN_ID wrote (only the nodes --node, --resource-class or --cell select,
    /// if given); refused when Nova's flavors would disagree with Placement afterwards.
    Rollback {
        run_id: String,
        /// Also restore the nodes' inventories and the allocations (needed whenever the run
        /// changed Placement).
        #[arg(long)]
        placement: bool,
        /// Restore Nova's flavor copies only, although the run also changed Placement: the
        /// instances then ask for VCPU, MEMORY_MB and DISK_GB while their allocations and nodes
        /// stay custom-class only (verify reports them; a move, rebuild or heal of them fails or
        /// re-allocates until apply runs again).
        #[arg(long, conflicts_with = "placement")]
        flavors_only: bool,
    },
    /// The repair runs (newest first), or one run's state: status, writes by journal state,
    /// per-node results.
    Status { run_id: Option<String> },
    /// Give nodes without a resource class one from hardware facts (rules in TOML matching
    /// Ironic properties, capabilities and the inspection inventory); exit 0 all classified,
    /// 3 nodes no rule or two rules match (listed, not guessed), 4 nothing to write.
    Classify {
        /// The rules file.
        #[arg(long)]
        rules: PathBuf,
        /// Set the classes through Ironic and the flavors' extra specs (journaled as a run).
        #[arg(long)]
        apply: bool,
    },
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Validate the configuration; list every problem with its key; exit 1 if any.
    Check {
        #[arg(long, short = 'f', value_enum, default_value = "table")]
        format: Format,
        /// Also try, as [openstack] cloud's user, every read of Nova the cluster view makes,
        /// and say which Nova policy refuses which (exit 1 if any fails).
        #[arg(long)]
        online: bool,
    },
}

#[derive(Subcommand)]
enum DbCommand {
    /// Apply pending schema migrations (safe to run again).
    Upgrade,
    /// Show applied and pending migrations; exit 3 if any are pending.
    Status,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Config {
            command: ConfigCommand::Check { format, online },
        } => cli::config_check(cli.config, format, online),
        Command::Serve => with_config(cli.config, steward::serve::serve),
        Command::Db {
            command: DbCommand::Upgrade,
        } => with_config(cli.config, |v| cli::db(v, true)),
        Command::Db {
            command: DbCommand::Status,
        } => with_config(cli.config, |v| cli::db(v, false)),
        Command::Rebalance { command } => {
            with_config(cli.config, |v| steward::cli::rebalance::run(v, command))
        }
        Command::Evacuate { command } => with_config(cli.config, |v| {
            cli::runtime().block_on(steward::recover::cli::run(&v, command))
        }),
        Command::Openapi { format } => cli::openapi(format),
        Command::Simulate {
            recorded, format, ..
        } if recorded.from_prometheus => {
            with_config(cli.config, |v| cli::recorded::run(&v, &recorded, format))
        }
        Command::Simulate {
            scenario,
            hours,
            seed,
            seeds,
            format,
            ..
        } => cli::simulate(
            &scenario.unwrap_or_default(),
            hours,
            seed,
            seeds.as_deref(),
            format,
        ),
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
        RepairCommand::Rollback {
            run_id,
            placement,
            flavors_only,
        } => C::Rollback {
            run_id,
            options: steward::repair::apply::RollbackOptions {
                placement,
                flavors_only,
                scope: s,
            },
        },
        RepairCommand::Status { run_id } => C::Status(run_id),
        RepairCommand::Classify { rules, apply } => C::Classify {
            rules,
            selection: s,
            apply,
        },
    };
    cli::runtime().block_on(steward::repair::cli::run(
        &v,
        command,
        steward::repair::cli::Output {
            json: matches!(format, Format::Json),
            timings,
        },
    ))
}
