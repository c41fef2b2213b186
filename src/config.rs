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
/// Bound of `[server] host_cache_entries`.
pub const MAX_HOST_CACHE_ENTRIES: usize = 1_000_000;

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
    /// Host entries of earlier callouts kept for callers that send unchanged hosts by
    /// reference (docs/callout.md, "Host references"); 0 keeps none.
    pub host_cache_entries: usize,
}

impl Default for ServerSettings {
    fn default() -> Self {
        ServerSettings {
            listen: DEFAULT_LISTEN.into(),
            max_body_bytes: 16 * 1024 * 1024,
            max_hosts: 20_000,
            workers: None,
            host_cache_entries: 20_000,
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
    /// Keystone tokens (`X-Auth-Token`), validated with steward's own `[openstack] cloud`.
    Keystone,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AuthSettings {
    pub strategy: AuthStrategy,
    /// One token a line: `<token> <role>[,<role>...]`; roles are reader, telemetry, admin.
    /// Required by static; optional beside keystone (for the Nova shim and pushers).
    pub token_file: Option<PathBuf>,
    /// keystone: how long a validation is reused (never past the token's expiry); 0: never.
    pub cache_seconds: f64,
    /// keystone: the most validations kept at once.
    pub cache_size: usize,
}

impl Default for AuthSettings {
    fn default() -> Self {
        AuthSettings {
            strategy: AuthStrategy::default(),
            token_file: None,
            cache_seconds: 60.0,
            cache_size: 10_000,
        }
    }
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

/// `[rebalance.execution]`: how approved actions are carried out.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ExecutionSettings {
    /// Nova's `[libvirt] live_migration_completion_timeout`: seconds per GiB copied (RAM, plus
    /// disk for block migrations). Past it (plus the margin) steward aborts the migration.
    pub completion_timeout_seconds_per_gib: f64,
    pub completion_timeout_margin_seconds: f64,
    /// How often a running migration is polled (`GET /servers/{id}/migrations`).
    pub poll_seconds: f64,
    /// Actions one cycle carries out at once (the planner's own limits apply first).
    pub max_parallel: usize,
    /// How often `serve` runs an execution cycle when the mode is `approve` or `auto`.
    pub cycle_seconds: f64,
    /// The SQLite leader lease's length (MySQL/MariaDB hold `GET_LOCK` for the connection's life).
    pub lease_seconds: f64,
    /// Rejoin hooks are tried this many times within one cycle before the action is left in
    /// `rejoining` for the next cycle (it is never closed with a node still drained).
    pub rejoin_attempts: u32,
    pub rejoin_retry_seconds: f64,
}

impl Default for ExecutionSettings {
    fn default() -> Self {
        ExecutionSettings {
            completion_timeout_seconds_per_gib: 800.0,
            completion_timeout_margin_seconds: 60.0,
            poll_seconds: 5.0,
            max_parallel: 4,
            cycle_seconds: 300.0,
            lease_seconds: 60.0,
            rejoin_attempts: 5,
            rejoin_retry_seconds: 10.0,
        }
    }
}

/// `[rebalance.hooks]`: what takes a VM's workload out before its migration and puts it back.
/// Drain hooks run in this order (kubernetes, consul, exec, http); rejoin hooks in reverse.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct HooksSettings {
    pub kubernetes: Option<KubernetesHookSettings>,
    pub consul: Option<ConsulHookSettings>,
    pub exec: Vec<ExecHookSettings>,
    pub http: Vec<HttpHookSettings>,
}

/// Which Kubernetes node or Consul node a VM is: `name` (the server's name) or
/// `metadata:<key>` (a server metadata key; a VM without it is refused before any drain).
pub fn parse_node_from(s: &str) -> Result<Option<String>, String> {
    match s {
        "name" => Ok(None),
        _ => match s.strip_prefix("metadata:") {
            Some(k) if !k.trim().is_empty() => Ok(Some(k.to_string())),
            _ => Err(format!(
                "{s:?} is not a node mapping; use \"name\" or \"metadata:<key>\""
            )),
        },
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct KubernetesHookSettings {
    /// The API server, e.g. `https://k8s.example.net:6443`.
    pub api_url: String,
    /// A file holding a bearer token (a service account allowed to patch nodes and evict pods).
    pub token_file: Option<PathBuf>,
    /// PEM CA bundle of the API server.
    pub ca_file: Option<PathBuf>,
    pub node_from: String,
    /// After a 429 (a PodDisruptionBudget says not now), ask again this much later.
    pub evict_retry_seconds: f64,
    /// Give up the drain (and fail the action, after uncordoning) past this.
    pub drain_timeout_seconds: f64,
    pub request_timeout_seconds: f64,
}

impl Default for KubernetesHookSettings {
    fn default() -> Self {
        KubernetesHookSettings {
            api_url: String::new(),
            token_file: None,
            ca_file: None,
            node_from: "name".into(),
            evict_retry_seconds: 5.0,
            drain_timeout_seconds: 600.0,
            request_timeout_seconds: 30.0,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ConsulHookSettings {
    /// The Consul agent of the VM (a template: `{node}` is the mapped node name).
    pub agent_url: String,
    pub token_file: Option<PathBuf>,
    pub node_from: String,
    /// The maintenance reason Consul shows (a template).
    pub reason: String,
    pub request_timeout_seconds: f64,
}

impl Default for ConsulHookSettings {
    fn default() -> Self {
        ConsulHookSettings {
            agent_url: "http://{node}:8500".into(),
            token_file: None,
            node_from: "name".into(),
            reason: "steward: live migration of {vm} from {source} to {target}".into(),
            request_timeout_seconds: 30.0,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ExecHookSettings {
    pub name: String,
    /// argv templates; empty: nothing to run at that step.
    pub drain: Vec<String>,
    pub rejoin: Vec<String>,
    pub timeout_seconds: f64,
}

impl Default for ExecHookSettings {
    fn default() -> Self {
        ExecHookSettings {
            name: "exec".into(),
            drain: Vec::new(),
            rejoin: Vec::new(),
            timeout_seconds: 120.0,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct HttpHookSettings {
    pub name: String,
    pub method: String,
    /// URL templates (values are percent-encoded); empty: nothing to call at that step.
    pub drain_url: String,
    pub rejoin_url: String,
    /// Body template (values inserted as they are); empty: no body.
    pub body: String,
    pub headers: BTreeMap<String, String>,
    pub timeout_seconds: f64,
}

impl Default for HttpHookSettings {
    fn default() -> Self {
        HttpHookSettings {
            name: "http".into(),
            method: "POST".into(),
            drain_url: String::new(),
            rejoin_url: String::new(),
            body: String::new(),
            headers: BTreeMap::new(),
            timeout_seconds: 30.0,
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
    pub rebalance: crate::rebalance::RebalanceSettings,
    pub repair: RepairSettings,
    pub recovery: crate::recover::RecoverySettings,
}

const SECTIONS: [&str; 14] = [
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
    "rebalance",
    "repair",
    "recovery",
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

    /// What a Keystone token's roles allow: `reader` and `member` read and score, `service`
    /// pushes telemetry (the pushers' service users), `admin` does everything. Other roles
    /// give nothing.
    pub fn from_keystone<'a>(names: impl IntoIterator<Item = &'a str>) -> Roles {
        let mut r = Roles::default();
        for name in names {
            match name {
                "admin" => r = Roles::ALL,
                "reader" | "member" => r.reader = true,
                "service" => r.telemetry = true,
                _ => {}
            }
        }
        r
    }

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
        rebalance: section(&cfg, "rebalance", &mut problems),
        repair: section(&cfg, "repair", &mut problems),
        recovery: section(&cfg, "recovery", &mut problems),
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
    mut settings: Settings,
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
    if settings.server.host_cache_entries > MAX_HOST_CACHE_ENTRIES {
        problems.push(problem(
            "server.host_cache_entries",
            format!(
                "{} is more than {MAX_HOST_CACHE_ENTRIES} (each entry holds one host's facts, about half a KB); twice your compute nodes is enough",
                settings.server.host_cache_entries
            ),
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
        AuthStrategy::Keystone => {
            if let Err(e) = crate::openstack::cloud::load(settings.openstack.cloud.as_deref()) {
                problems.push(problem(
                    "openstack.cloud",
                    format!(
                        "auth strategy keystone validates tokens with steward's own cloud: {e}"
                    ),
                ));
            }
            let secs = settings.auth.cache_seconds;
            if !(secs.is_finite() && (0.0..=3600.0).contains(&secs)) {
                problems.push(problem(
                    "auth.cache_seconds",
                    format!("must be 0 to 3600 seconds, got {secs}"),
                ));
            }
            if settings.auth.cache_size == 0 {
                problems.push(problem("auth.cache_size", "must be at least 1"));
            }
            // Static tokens beside Keystone's: the Nova shim and telemetry pushers keep theirs.
            settings
                .auth
                .token_file
                .as_ref()
                .and_then(|file| read_token_table(file, path, problems))
        }
        AuthStrategy::Static => match &settings.auth.token_file {
            None => {
                problems.push(problem(
                    "auth.token_file",
                    "strategy static needs a token file (lines `<token> <role>[,<role>]`)",
                ));
                None
            }
            Some(file) => read_token_table(file, path, problems),
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
    validate_rebalance(&mut settings.rebalance, path, problems);
    problems.extend(settings.recovery.validate());
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
    for (key, message) in settings.rebalance.validate() {
        problems.push(problem(key, message));
    }
    if !settings.profiles.contains_key(&settings.rebalance.profile) {
        problems.push(problem(
            "rebalance.profile",
            format!(
                "names profile {:?}, which does not exist; profiles: {}",
                settings.rebalance.profile,
                settings
                    .profiles
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
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

fn read_token_table(
    file: &Path,
    config_path: Option<&Path>,
    problems: &mut Vec<ConfigProblem>,
) -> Option<TokenTable> {
    let file = resolve_relative(file, config_path);
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

/// `[rebalance]`: every number in range, every hook complete; relative files resolved.
fn validate_rebalance(
    r: &mut crate::rebalance::RebalanceSettings,
    path: Option<&Path>,
    problems: &mut Vec<ConfigProblem>,
) {
    let e = &r.execution;
    for (key, value, min) in [
        (
            "completion_timeout_seconds_per_gib",
            e.completion_timeout_seconds_per_gib,
            0.001,
        ),
        (
            "completion_timeout_margin_seconds",
            e.completion_timeout_margin_seconds,
            0.0,
        ),
        ("poll_seconds", e.poll_seconds, 0.01),
        ("cycle_seconds", e.cycle_seconds, 0.01),
        ("lease_seconds", e.lease_seconds, 0.5),
        ("rejoin_retry_seconds", e.rejoin_retry_seconds, 0.0),
    ] {
        if !(value.is_finite() && value >= min) {
            problems.push(problem(
                format!("rebalance.execution.{key}"),
                format!("must be a number of at least {min}, got {value}"),
            ));
        }
    }
    if e.max_parallel == 0 {
        problems.push(problem(
            "rebalance.execution.max_parallel",
            "must be at least 1",
        ));
    }
    if e.rejoin_attempts == 0 {
        problems.push(problem(
            "rebalance.execution.rejoin_attempts",
            "must be at least 1: the rejoin hooks always run",
        ));
    }
    if let Some(k) = r.hooks.kubernetes.as_mut() {
        if url::Url::parse(&k.api_url).is_err() {
            problems.push(problem(
                "rebalance.hooks.kubernetes.api_url",
                format!(
                    "{:?} is not a URL; name the API server, e.g. https://k8s.example.net:6443",
                    k.api_url
                ),
            ));
        }
        if let Err(m) = parse_node_from(&k.node_from) {
            problems.push(problem("rebalance.hooks.kubernetes.node_from", m));
        }
        for (key, v) in [
            ("evict_retry_seconds", k.evict_retry_seconds),
            ("drain_timeout_seconds", k.drain_timeout_seconds),
            ("request_timeout_seconds", k.request_timeout_seconds),
        ] {
            if !(v.is_finite() && v > 0.0) {
                problems.push(problem(
                    format!("rebalance.hooks.kubernetes.{key}"),
                    format!("must be a positive number, got {v}"),
                ));
            }
        }
        k.token_file = k.token_file.as_deref().map(|f| resolve_relative(f, path));
        k.ca_file = k.ca_file.as_deref().map(|f| resolve_relative(f, path));
    }
    if let Some(c) = r.hooks.consul.as_mut() {
        if c.agent_url.trim().is_empty() {
            problems.push(problem(
                "rebalance.hooks.consul.agent_url",
                "must name the VM's Consul agent, e.g. http://{node}:8500",
            ));
        }
        if let Err(m) = parse_node_from(&c.node_from) {
            problems.push(problem("rebalance.hooks.consul.node_from", m));
        }
        if !(c.request_timeout_seconds.is_finite() && c.request_timeout_seconds > 0.0) {
            problems.push(problem(
                "rebalance.hooks.consul.request_timeout_seconds",
                "must be a positive number",
            ));
        }
        c.token_file = c.token_file.as_deref().map(|f| resolve_relative(f, path));
    }
    let mut names = std::collections::HashSet::new();
    for (i, h) in r.hooks.exec.iter().enumerate() {
        if h.drain.is_empty() && h.rejoin.is_empty() {
            problems.push(problem(
                format!("rebalance.hooks.exec[{i}]"),
                format!(
                    "hook {:?} has neither drain nor rejoin; give at least one argv",
                    h.name
                ),
            ));
        }
        if !(h.timeout_seconds.is_finite() && h.timeout_seconds > 0.0) {
            problems.push(problem(
                format!("rebalance.hooks.exec[{i}].timeout_seconds"),
                "must be a positive number",
            ));
        }
        if !names.insert(h.name.clone()) {
            problems.push(problem(
                format!("rebalance.hooks.exec[{i}].name"),
                format!("hook name {:?} is used twice; names label metrics", h.name),
            ));
        }
    }
    for (i, h) in r.hooks.http.iter().enumerate() {
        if h.drain_url.is_empty() && h.rejoin_url.is_empty() {
            problems.push(problem(
                format!("rebalance.hooks.http[{i}]"),
                format!("hook {:?} has neither drain_url nor rejoin_url", h.name),
            ));
        }
        if h.method.is_empty() || !h.method.bytes().all(|b| b.is_ascii_uppercase()) {
            problems.push(problem(
                format!("rebalance.hooks.http[{i}].method"),
                format!("{:?} is not an HTTP method (GET, POST, PUT, ...)", h.method),
            ));
        }
        if !(h.timeout_seconds.is_finite() && h.timeout_seconds > 0.0) {
            problems.push(problem(
                format!("rebalance.hooks.http[{i}].timeout_seconds"),
                "must be a positive number",
            ));
        }
        if !names.insert(h.name.clone()) {
            problems.push(problem(
                format!("rebalance.hooks.http[{i}].name"),
                format!("hook name {:?} is used twice; names label metrics", h.name),
            ));
        }
    }
}

/// A relative token file is relative to the config file, as operators expect.
fn resolve_relative(file: &Path, config_path: Option<&Path>) -> PathBuf {
    match config_path.and_then(Path::parent) {
        Some(dir) if file.is_relative() => dir.join(file),
        _ => file.to_path_buf(),
    }
}
