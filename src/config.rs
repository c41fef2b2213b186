//! Settings from the built-in profiles, a TOML file and `STEWARD__SECTION__KEY` environment
//! variables, layered in that order and validated as a whole at start: every problem of every
//! section is reported with its key, and steward refuses to start on any.
//!
//! This file only layers the sources and asks each section to check itself. A section belongs
//! to its subsystem, which defines its type and its validation next to its code.
//! How to add a section `[foo]`:
//! 1. In the subsystem, a `FooSettings` with `#[derive(Deserialize)]`,
//!    `#[serde(deny_unknown_fields, default)]` and a `Default` (the embedded default), and
//!    `impl crate::settings::Section for FooSettings`: `validate(&self, key_prefix)` returns every
//!    problem of its own keys as `ConfigProblem`s named `<key_prefix>.<key>` (use
//!    `settings::Problems`), `resolve_files` makes its relative files relative to the config.
//! 2. One line `foo: crate::sub::settings::FooSettings,` in the `sections!` list below (import
//!    the type from the file that defines it, never through a re-export, so no cycle appears).
//! 3. A check that needs two sections goes in [`cross_checks`]; what is built from the settings
//!    (a token table, the profile set) in [`build`].
//!    Keys are read one by one: a key of the wrong type is one problem, the others still apply.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::api::settings::{AuthStrategy, TokenTable};
use crate::cluster::settings::ClusterSource;
use crate::scoring::{Options, ProfileSet};
pub use crate::settings::ConfigProblem;
use crate::settings::{problem, Section};

pub const ENV_PREFIX: &str = "STEWARD";

/// Declares the sections once: the [`Settings`] struct, [`SECTIONS`] and the per-section steps.
macro_rules! sections {
    ($($(#[$doc:meta])* $name:ident: $ty:ty,)*) => {
        /// Every section of the configuration, each as its subsystem defines it.
        #[derive(Debug, Clone, Default, PartialEq)]
        pub struct Settings {
            $($(#[$doc])* pub $name: $ty,)*
        }

        /// The sections' names, as the file spells them.
        pub const SECTIONS: &[&str] = &[$(stringify!($name)),*];

        impl Settings {
            fn read(cfg: &config::Config, problems: &mut Vec<ConfigProblem>) -> Settings {
                Settings { $($name: section(cfg, stringify!($name), problems),)* }
            }

            fn resolve_files(&mut self, config_dir: &Path) {
                $(Section::resolve_files(&mut self.$name, config_dir);)*
            }

            /// Every section's own problems, in the order of the list.
            pub fn validate(&self) -> Vec<ConfigProblem> {
                let mut problems = Vec::new();
                $(problems.extend(Section::validate(&self.$name, stringify!($name)));)*
                problems
            }
        }
    };
}

sections! {
    server: crate::api::settings::ServerSettings,
    auth: crate::api::settings::AuthSettings,
    database: crate::store::settings::DatabaseSettings,
    telemetry: crate::telemetry::settings::TelemetrySettings,
    roles: crate::scoring::settings::RoleSettings,
    scheduling: crate::scoring::settings::SchedulingSettings,
    profiles: BTreeMap<String, crate::scoring::ProfileSpec>,
    logging: crate::logging::LoggingSettings,
    prometheus: crate::telemetry::prometheus::PrometheusSettings,
    cluster: crate::cluster::settings::ClusterSettings,
    openstack: crate::openstack::settings::OpenStackSettings,
    rebalance: crate::rebalance::settings::RebalanceSettings,
    repair: crate::repair::settings::RepairSettings,
    recovery: crate::recover::settings::RecoverySettings,
}

/// Settings that passed validation, with what was built from them.
#[derive(Debug)]
pub struct Validated {
    pub settings: Settings,
    pub listen: SocketAddr,
    pub profiles: ProfileSet,
    pub tokens: Option<TokenTable>,
}

impl Validated {
    pub fn scoring_options(&self) -> Options {
        Options {
            role_metadata_key: self.settings.roles.metadata_key.clone(),
            max_age_seconds: self.settings.telemetry.max_age_seconds,
            unknown_az_fail_open: self.settings.scheduling.unknown_az
                == crate::scoring::settings::UnknownAz::FailOpen,
        }
    }
}

/// Read the file (if any) and the environment; report every problem found.
pub fn load(path: Option<&Path>) -> Result<Validated, Vec<ConfigProblem>> {
    let vars: Vec<(String, String)> = std::env::vars().collect();
    load_from(path, &vars)
}

/// As [`load`], with the environment given (tests set variables without touching the process).
pub fn load_from(
    path: Option<&Path>,
    env: &[(String, String)],
) -> Result<Validated, Vec<ConfigProblem>> {
    load_with(path, env, |_| Vec::new())
}

/// What `steward config check` reports: [`load_from`]'s problems plus what `serve` would
/// refuse at start (a database it cannot open or create, a listener it cannot bind).
pub fn check_from(
    path: Option<&Path>,
    env: &[(String, String)],
) -> Result<Validated, Vec<ConfigProblem>> {
    load_with(path, env, |s| {
        let mut problems = s.database.check_openable("database");
        problems.extend(s.server.check_bindable("server"));
        problems
    })
}

fn load_with(
    path: Option<&Path>,
    env: &[(String, String)],
    more: impl Fn(&Settings) -> Vec<ConfigProblem>,
) -> Result<Validated, Vec<ConfigProblem>> {
    let (settings, mut problems) = read(path, env)?;
    problems.extend(settings.validate());
    problems.extend(cross_checks(&settings));
    problems.extend(more(&settings));
    let built = build(settings, &mut problems);
    match built {
        Some(v) if problems.is_empty() => Ok(v),
        _ => Err(problems),
    }
}

/// The layered settings, each key that deserializes applied, relative files resolved, and the
/// problems met on the way (unknown sections and keys, wrong types). `Err` only when the
/// sources cannot be read at all.
pub fn read(
    path: Option<&Path>,
    env: &[(String, String)],
) -> Result<(Settings, Vec<ConfigProblem>), Vec<ConfigProblem>> {
    let cfg = layers(path, env)?;
    let mut problems = Vec::new();
    if let Ok(table) = cfg
        .clone()
        .try_deserialize::<BTreeMap<String, config::Value>>()
    {
        for key in table.keys() {
            if !SECTIONS.contains(&key.as_str()) {
                problems.push(problem(
                    key.clone(),
                    format!("unknown section; sections are {}", SECTIONS.join(", ")),
                ));
            }
        }
    }
    let mut settings = Settings::read(&cfg, &mut problems);
    if let Some(dir) = path.and_then(Path::parent) {
        settings.resolve_files(dir);
    }
    Ok((settings, problems))
}

/// The sources, lowest first: the built-in profiles, the file, the environment.
fn layers(
    path: Option<&Path>,
    env: &[(String, String)],
) -> Result<config::Config, Vec<ConfigProblem>> {
    let mut builder = config::Config::builder().add_source(config::File::from_str(
        crate::scoring::BUILTIN_PROFILES_TOML,
        config::FileFormat::Toml,
    ));
    if let Some(p) = path {
        if !p.is_file() {
            return Err(vec![problem(
                "--config",
                format!(
                    "{} does not exist or is not a file; copy etc/steward.toml.sample there",
                    p.display()
                ),
            )]);
        }
        builder = builder.add_source(config::File::from(p).format(config::FileFormat::Toml));
    }
    let env_map: std::collections::HashMap<String, String> = env
        .iter()
        .filter(|(k, _)| k.starts_with(&format!("{ENV_PREFIX}__")))
        .cloned()
        .collect();
    builder = builder.add_source(
        config::Environment::with_prefix(ENV_PREFIX)
            .prefix_separator("__")
            .separator("__")
            .try_parsing(true)
            .source(Some(env_map)),
    );
    builder
        .build()
        .map_err(|e| vec![problem("--config", e.to_string())])
}

/// One section, key by key: a key that does not deserialize (wrong type, unknown name) is one
/// problem and is left at its default; the section's other keys still apply.
fn section<T: DeserializeOwned + Default>(
    cfg: &config::Config,
    name: &str,
    problems: &mut Vec<ConfigProblem>,
) -> T {
    let value = match cfg.get::<Value>(name) {
        Ok(v) => v,
        Err(config::ConfigError::NotFound(_)) => return T::default(),
        Err(e) => {
            problems.push(problem(name, e.to_string()));
            return T::default();
        }
    };
    let Value::Object(table) = value else {
        return deserialize_or_report(value, name, problems).unwrap_or_default();
    };
    let mut kept = Value::Object(Map::new());
    keep_good_keys::<T>(&mut kept, &mut Vec::new(), table, name, problems);
    serde_json::from_value(kept).unwrap_or_default()
}

/// Adds each key of `table` (found at `at` inside the section) to `kept` when the section still
/// deserializes with it; a table that does not is tried key by key, a value is reported.
fn keep_good_keys<T: DeserializeOwned>(
    kept: &mut Value,
    at: &mut Vec<String>,
    table: Map<String, Value>,
    name: &str,
    problems: &mut Vec<ConfigProblem>,
) {
    for (key, value) in table {
        let mut trial = kept.clone();
        at.push(key);
        insert_at(&mut trial, at, value.clone());
        match (serde_json::from_value::<T>(trial.clone()), value) {
            (Ok(_), _) => *kept = trial,
            (Err(_), Value::Object(inner)) => keep_good_keys::<T>(kept, at, inner, name, problems),
            (Err(_), _) => {
                let _ = deserialize_or_report::<T>(trial, name, problems);
            }
        }
        at.pop();
    }
}

fn insert_at(root: &mut Value, path: &[String], value: Value) {
    let mut here = root;
    for key in &path[..path.len() - 1] {
        here = here
            .as_object_mut()
            .expect("only tables are descended")
            .entry(key.clone())
            .or_insert_with(|| Value::Object(Map::new()));
    }
    if let Some(table) = here.as_object_mut() {
        table.insert(path[path.len() - 1].clone(), value);
    }
}

/// Through serde_path_to_error so that the problem names the key, not just the section.
fn deserialize_or_report<T: DeserializeOwned>(
    value: Value,
    name: &str,
    problems: &mut Vec<ConfigProblem>,
) -> Option<T> {
    match serde_path_to_error::deserialize::<_, T>(value) {
        Ok(v) => Some(v),
        Err(e) => {
            let path = e.path().to_string();
            let key = if path == "." {
                name.to_string()
            } else {
                format!("{name}.{path}")
            };
            problems.push(problem(key, e.into_inner().to_string()));
            None
        }
    }
}

/// What needs two sections: noauth only on loopback, a cloud for keystone auth and for a Nova
/// cluster source, the rebalancer's profile among the profiles.
pub fn cross_checks(settings: &Settings) -> Vec<ConfigProblem> {
    let mut problems = Vec::new();
    let listen = settings.server.listen_addr().ok();
    match settings.auth.strategy {
        AuthStrategy::Noauth => {
            if let Some(addr) = listen.filter(|a| !a.ip().is_loopback()) {
                problems.push(problem(
                    "auth.strategy",
                    format!(
                        "noauth is accepted only on a loopback listener, and server.listen is {addr}; \
                         set strategy = \"static\" with a token_file, or listen on 127.0.0.1"
                    ),
                ));
            }
        }
        AuthStrategy::Keystone => {
            if let Err(e) = crate::openstack::cloud::load(settings.openstack.cloud.as_deref()) {
                problems.push(problem(
                    "openstack.cloud",
                    format!(
                        "auth strategy keystone validates tokens with steward's own cloud: {e}"
                    ),
                ));
            }
        }
        AuthStrategy::Static => {}
    }
    if settings.cluster.source == ClusterSource::Nova {
        if let Err(e) = crate::openstack::cloud::load(settings.openstack.cloud.as_deref()) {
            problems.push(problem("openstack.cloud", e.to_string()));
        }
    }
    let rebalance = &settings.rebalance;
    if !settings.profiles.contains_key(&rebalance.profile) {
        problems.push(problem(
            "rebalance.profile",
            format!(
                "names profile {:?}, which does not exist; profiles: {}",
                rebalance.profile,
                settings
                    .profiles
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    }
    problems
}

/// What is built from the settings: the listener's address, the token table and the profile
/// set, each adding its problems; `None` when any cannot be built.
fn build(settings: Settings, problems: &mut Vec<ConfigProblem>) -> Option<Validated> {
    let listen = settings.server.listen_addr().ok();
    let tokens = settings.auth.tokens().unwrap_or_else(|mut p| {
        problems.append(&mut p);
        None
    });
    let profiles = match ProfileSet::build(&settings.profiles, &settings.scheduling.default_profile)
    {
        Ok(p) => Some(p),
        Err(errors) => {
            problems.extend(errors.into_iter().map(|e| problem(e.key, e.message)));
            None
        }
    };
    Some(Validated {
        listen: listen?,
        profiles: profiles?,
        tokens,
        settings,
    })
}
