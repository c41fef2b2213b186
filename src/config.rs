//! Settings from a TOML file and `STEWARD__SECTION__KEY` environment variables, validated as a
//! whole at start: every problem is reported with its key, and steward refuses to start on any.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::scoring::{Options, ProfileSet, ProfileSpec};
use crate::telemetry::prometheus::PrometheusSettings;

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8790";
pub const ENV_PREFIX: &str = "STEWARD";

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ServerSettings {
    /// Address and port of the HTTP listener.
    pub listen: String,
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// Most candidate hosts accepted in one filter or weigh request.
    pub max_hosts: usize,
    /// HTTP worker threads (default: one per core).
    pub workers: Option<usize>,
}

impl Default for ServerSettings {
    fn default() -> Self {
        ServerSettings {
            listen: DEFAULT_LISTEN.into(),
            max_body_bytes: 16 * 1024 * 1024,
            max_hosts: 20_000,
            workers: None,
        }
    }
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum AuthStrategy {
    /// No authentication: accepted only on a loopback listener.
    #[default]
    Noauth,
    /// Bearer tokens from `token_file`, each with its roles.
    Static,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct AuthSettings {
    pub strategy: AuthStrategy,
    /// One token a line: `<token> <role>[,<role>...]`; roles are reader, telemetry, admin.
    pub token_file: Option<PathBuf>,
}

/// A database URL that never shows its password when printed or logged.
#[derive(Clone, Deserialize, Serialize, PartialEq)]
#[serde(transparent)]
pub struct DatabaseUrl(pub String);

impl DatabaseUrl {
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn redacted(&self) -> String {
        redact_url(&self.0)
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.redacted())
    }
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

/// `mysql://user:secret@host/db` -> `mysql://user:***@host/db`.
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_string();
    };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    match (authority.rfind('@'), authority.find(':')) {
        (Some(at), Some(colon)) if colon < at => format!(
            "{}{}:***{}",
            &url[..scheme_end + 3],
            &authority[..colon],
            &rest[at..]
        ),
        _ => url.to_string(),
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseSettings {
    /// `sqlite://PATH?mode=rwc` (embedded default) or `mysql://USER:PASSWORD@HOST/DB`.
    pub url: DatabaseUrl,
    /// Apply pending schema migrations at start (`steward db upgrade` does it by hand).
    pub auto_upgrade: bool,
    pub max_connections: u32,
}

impl Default for DatabaseSettings {
    fn default() -> Self {
        DatabaseSettings {
            url: DatabaseUrl("sqlite://steward.sqlite?mode=rwc".into()),
            auto_upgrade: true,
            max_connections: 5,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TelemetrySettings {
    /// A sample older than this is unknown, never zero.
    pub max_age_seconds: f64,
}

impl Default for TelemetrySettings {
    fn default() -> Self {
        TelemetrySettings {
            max_age_seconds: 300.0,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RoleSettings {
    /// The server-metadata key that names a running VM's role.
    pub metadata_key: String,
}

impl Default for RoleSettings {
    fn default() -> Self {
        RoleSettings {
            metadata_key: "role".into(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SchedulingSettings {
    pub default_profile: String,
}

impl Default for SchedulingSettings {
    fn default() -> Self {
        SchedulingSettings {
            default_profile: "default".into(),
        }
    }
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum ClusterSource {
    /// Hosts and VMs are known from pushed telemetry only.
    #[default]
    None,
    /// Hosts, AZs, VMs, roles and flavors are read from Nova's API every `refresh_seconds`.
    Nova,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterSettings {
    pub source: ClusterSource,
    pub refresh_seconds: f64,
    /// Nova's `[DEFAULT] default_availability_zone`: the AZ of hosts in no AZ aggregate.
    pub default_availability_zone: String,
    /// Items per page when listing servers and hypervisors.
    pub page_size: u32,
}

impl Default for ClusterSettings {
    fn default() -> Self {
        ClusterSettings {
            source: ClusterSource::None,
            refresh_seconds: 60.0,
            default_availability_zone: "nova".into(),
            page_size: 1000,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct OpenStackSettings {
    /// The cloud in clouds.yaml (as `--os-cloud`); unset: `OS_CLOUD`, else `OS_*` variables.
    pub cloud: Option<String>,
}

/// `[repair]`: how `steward repair` reaches Nova's databases and how hard it pushes.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RepairSettings {
    /// Nova's API database, `mysql://USER:PASSWORD@HOST/nova_api` (request specs, cell mappings).
    pub api_database: Option<DatabaseUrl>,
    /// Cell name or uuid -> `mysql://...`; by default each cell's URL is read from the API
    /// database's `cell_mappings` (`mysql+pymysql://` taken as `mysql://`).
    pub cell_databases: BTreeMap<String, DatabaseUrl>,
    /// Nodes repaired at once.
    pub concurrency: usize,
    /// Attempts of one write that keeps losing races (`placement.concurrent_update`).
    pub max_attempts: u32,
}

impl Default for RepairSettings {
    fn default() -> Self {
        RepairSettings {
            api_database: None,
            cell_databases: BTreeMap::new(),
            concurrency: 4,
            max_attempts: 5,
        }
    }
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LoggingSettings {
    pub format: LogFormat,
    /// A tracing filter, e.g. `info` or `steward=debug,actix_web=info`.
    pub level: String,
}

impl Default for LoggingSettings {
    fn default() -> Self {
        LoggingSettings {
            format: LogFormat::Text,
            level: "info".into(),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Settings {
    pub server: ServerSettings,
    pub auth: AuthSettings,
    pub database: DatabaseSettings,
    pub telemetry: TelemetrySettings,
    pub roles: RoleSettings,
    pub scheduling: SchedulingSettings,
    pub profiles: BTreeMap<String, ProfileSpec>,
    pub logging: LoggingSettings,
    pub prometheus: PrometheusSettings,
    pub cluster: ClusterSettings,
    pub openstack: OpenStackSettings,
    pub repair: RepairSettings,
}

const SECTIONS: [&str; 12] = [
    "server",
    "auth",
    "database",
    "telemetry",
    "roles",
    "scheduling",
    "profiles",
    "logging",
    "prometheus",
    "cluster",
    "openstack",
    "repair",
];

/// One thing wrong with the configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConfigProblem {
    pub key: String,
    pub message: String,
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

fn problem(key: impl Into<String>, message: impl Into<String>) -> ConfigProblem {
    ConfigProblem {
        key: key.into(),
        message: message.into(),
    }
}

/// Roles a caller may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Roles {
    pub reader: bool,
    pub telemetry: bool,
    pub admin: bool,
}

impl Roles {
    pub const ALL: Roles = Roles {
        reader: true,
        telemetry: true,
        admin: true,
    };

    pub fn parse(list: &str) -> Result<Roles, String> {
        let mut r = Roles::default();
        for role in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            match role {
                "reader" => r.reader = true,
                "telemetry" => r.telemetry = true,
                "admin" => r = Roles::ALL,
                other => {
                    return Err(format!(
                        "unknown role {other:?}; roles are reader, telemetry, admin"
                    ))
                }
            }
        }
        if r == Roles::default() {
            return Err("no role given; roles are reader, telemetry, admin".into());
        }
        Ok(r)
    }
}

/// The static tokens, held as bytes for constant-time comparison.
#[derive(Clone, Default)]
pub struct TokenTable {
    entries: Vec<(Vec<u8>, Roles)>,
}

impl fmt::Debug for TokenTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TokenTable({} tokens)", self.entries.len())
    }
}

impl TokenTable {
    pub fn parse(text: &str, origin: &str) -> Result<TokenTable, Vec<ConfigProblem>> {
        let mut entries = Vec::new();
        let mut problems = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut parts = line.split_whitespace();
            let token = parts.next().unwrap_or_default();
            let roles = parts.next().unwrap_or_default();
            let at = format!("auth.token_file ({origin} line {})", n + 1);
            if parts.next().is_some() {
                problems.push(problem(at, "expected `<token> <role>[,<role>]`"));
                continue;
            }
            if token.len() < 16 {
                problems.push(problem(at, "token shorter than 16 characters"));
                continue;
            }
            match Roles::parse(roles) {
                Ok(r) => entries.push((token.as_bytes().to_vec(), r)),
                Err(e) => problems.push(problem(at, e)),
            }
        }
        if entries.is_empty() && problems.is_empty() {
            problems.push(problem(
                "auth.token_file",
                format!("{origin} holds no token; add a line `<token> reader`"),
            ));
        }
        if problems.is_empty() {
            Ok(TokenTable { entries })
        } else {
            Err(problems)
        }
    }

    /// The roles of a presented token. Compares against every entry in constant time so the
    /// answer's timing tells nothing about how much of a token matched.
    pub fn roles_of(&self, presented: &[u8]) -> Option<Roles> {
        use subtle::ConstantTimeEq;
        let mut found = None;
        for (token, roles) in &self.entries {
            if bool::from(token.as_slice().ct_eq(presented)) {
                found = Some(*roles);
            }
        }
        found
    }
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
    let cfg = builder
        .build()
        .map_err(|e| vec![problem("--config", e.to_string())])?;
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
    let settings = Settings {
        server: section(&cfg, "server", &mut problems),
        auth: section(&cfg, "auth", &mut problems),
        database: section(&cfg, "database", &mut problems),
        telemetry: section(&cfg, "telemetry", &mut problems),
        roles: section(&cfg, "roles", &mut problems),
        scheduling: section(&cfg, "scheduling", &mut problems),
        profiles: section(&cfg, "profiles", &mut problems),
        logging: section(&cfg, "logging", &mut problems),
        prometheus: section(&cfg, "prometheus", &mut problems),
        cluster: section(&cfg, "cluster", &mut problems),
        openstack: section(&cfg, "openstack", &mut problems),
        repair: section(&cfg, "repair", &mut problems),
    };
    let validated = validate(settings, path, &mut problems);
    match validated {
        Some(v) if problems.is_empty() => Ok(v),
        _ => Err(problems),
    }
}

fn section<T: DeserializeOwned + Default>(
    cfg: &config::Config,
    name: &str,
    problems: &mut Vec<ConfigProblem>,
) -> T {
    let value = match cfg.get::<serde_json::Value>(name) {
        Ok(v) => v,
        Err(config::ConfigError::NotFound(_)) => return T::default(),
        Err(e) => {
            problems.push(problem(name, e.to_string()));
            return T::default();
        }
    };
    // Through serde_path_to_error so that the problem names the key, not just the section.
    match serde_path_to_error::deserialize::<_, T>(value) {
        Ok(v) => v,
        Err(e) => {
            let path = e.path().to_string();
            let key = if path == "." {
                name.to_string()
            } else {
                format!("{name}.{path}")
            };
            problems.push(problem(key, e.into_inner().to_string()));
            T::default()
        }
    }
}

fn validate(
    settings: Settings,
    path: Option<&Path>,
    problems: &mut Vec<ConfigProblem>,
) -> Option<Validated> {
    let listen: Option<SocketAddr> = match settings.server.listen.parse() {
        Ok(a) => Some(a),
        Err(_) => {
            problems.push(problem(
                "server.listen",
                format!(
                    "{:?} is not an address and port, e.g. {DEFAULT_LISTEN}",
                    settings.server.listen
                ),
            ));
            None
        }
    };
    if settings.server.max_hosts == 0 {
        problems.push(problem("server.max_hosts", "must be at least 1"));
    }
    if settings.server.max_body_bytes < 1024 {
        problems.push(problem(
            "server.max_body_bytes",
            "must be at least 1024 bytes",
        ));
    }
    if settings.server.workers == Some(0) {
        problems.push(problem("server.workers", "must be at least 1"));
    }
    let tokens = match settings.auth.strategy {
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
            None
        }
        AuthStrategy::Static => match &settings.auth.token_file {
            None => {
                problems.push(problem(
                    "auth.token_file",
                    "strategy static needs a token file (lines `<token> <role>[,<role>]`)",
                ));
                None
            }
            Some(file) => {
                let file = resolve_relative(file, path);
                match std::fs::read_to_string(&file) {
                    Ok(text) => match TokenTable::parse(&text, &file.display().to_string()) {
                        Ok(t) => Some(t),
                        Err(mut p) => {
                            problems.append(&mut p);
                            None
                        }
                    },
                    Err(e) => {
                        problems.push(problem(
                            "auth.token_file",
                            format!("cannot read {}: {e}", file.display()),
                        ));
                        None
                    }
                }
            }
        },
    };
    let url = settings.database.url.expose();
    if !(url.starts_with("sqlite:") || url.starts_with("mysql://") || url.starts_with("mariadb://"))
    {
        problems.push(problem(
            "database.url",
            format!(
                "{} is neither sqlite:// nor mysql:// (mariadb:// is accepted too)",
                settings.database.url
            ),
        ));
    }
    if settings.database.max_connections == 0 {
        problems.push(problem("database.max_connections", "must be at least 1"));
    }
    let age = settings.telemetry.max_age_seconds;
    if !(age.is_finite() && age > 0.0) {
        problems.push(problem(
            "telemetry.max_age_seconds",
            format!("must be a positive number of seconds, got {age}"),
        ));
    }
    if settings.roles.metadata_key.trim().is_empty() {
        problems.push(problem("roles.metadata_key", "must not be empty"));
    }
    let prom = &settings.prometheus;
    if let Some(url) = &prom.url {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            problems.push(problem(
                "prometheus.url",
                format!("{url:?} is not an http:// or https:// URL"),
            ));
        }
    }
    for (key, v, min) in [
        ("prometheus.timeout_seconds", prom.timeout_seconds, 0.1),
        ("prometheus.interval_seconds", prom.interval_seconds, 1.0),
        (
            "prometheus.rollup_interval_hours",
            prom.rollup_interval_hours,
            0.1,
        ),
    ] {
        if !(v.is_finite() && v >= min) {
            problems.push(problem(key, format!("must be at least {min}, got {v}")));
        }
    }
    if !(1..=8).contains(&prom.history_weeks) {
        problems.push(problem(
            "prometheus.history_weeks",
            format!(
                "must be 1 to 8 (Prometheus must keep that much: --storage.tsdb.retention.time), got {}",
                prom.history_weeks
            ),
        ));
    }
    if let Some(f) = &prom.bearer_token_file {
        if let Err(e) = std::fs::metadata(resolve_relative(f, path)) {
            problems.push(problem(
                "prometheus.bearer_token_file",
                format!("cannot read {}: {e}", f.display()),
            ));
        }
    }
    let c = &settings.cluster;
    if !(c.refresh_seconds.is_finite() && c.refresh_seconds >= 1.0) {
        problems.push(problem(
            "cluster.refresh_seconds",
            format!("must be at least 1, got {}", c.refresh_seconds),
        ));
    }
    if c.page_size == 0 {
        problems.push(problem("cluster.page_size", "must be at least 1"));
    }
    if c.default_availability_zone.trim().is_empty() {
        problems.push(problem(
            "cluster.default_availability_zone",
            "must name Nova's default AZ (nova.conf [DEFAULT] default_availability_zone)",
        ));
    }
    if c.source == ClusterSource::Nova {
        if let Err(e) = crate::openstack::cloud::load(settings.openstack.cloud.as_deref()) {
            problems.push(problem("openstack.cloud", e.to_string()));
        }
    }
    let r = &settings.repair;
    if r.concurrency == 0 || r.concurrency > 64 {
        problems.push(problem(
            "repair.concurrency",
            format!("must be 1 to 64, got {}", r.concurrency),
        ));
    }
    if r.max_attempts == 0 {
        problems.push(problem("repair.max_attempts", "must be at least 1"));
    }
    for (key, url) in r
        .api_database
        .iter()
        .map(|u| ("repair.api_database".to_string(), u))
        .chain(
            r.cell_databases
                .iter()
                .map(|(k, u)| (format!("repair.cell_databases.{k}"), u)),
        )
    {
        if !(url.expose().starts_with("mysql://") || url.expose().starts_with("mariadb://")) {
            problems.push(problem(
                &key,
                format!(
                    "{} is not a mysql:// URL (Nova's databases are MySQL/MariaDB)",
                    url.redacted()
                ),
            ));
        }
    }
    if let Err(e) = tracing_subscriber::EnvFilter::try_new(&settings.logging.level) {
        problems.push(problem("logging.level", e.to_string()));
    }
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

/// A relative token file is relative to the config file, as operators expect.
fn resolve_relative(file: &Path, config_path: Option<&Path>) -> PathBuf {
    match config_path.and_then(Path::parent) {
        Some(dir) if file.is_relative() => dir.join(file),
        _ => file.to_path_buf(),
    }
}
