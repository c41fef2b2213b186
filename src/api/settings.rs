//! `[server]` and `[auth]`: the HTTP listener's settings, who may call, and the static token
//! table; each section validates its own keys (`config` checks noauth against the listener).

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::settings::{problem, resolve_in_place, ConfigProblem, Problems, Section};

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8790";
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
    /// How many nice steps (0..=19) below the HTTP workers the thread that parses telemetry
    /// pushes and merges them into the cluster view runs, so callouts get the cores first; 0
    /// runs it at the workers' priority.
    pub telemetry_nice: i32,
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
            telemetry_nice: 10,
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

impl ServerSettings {
    /// The listener's address, or the problem with `server.listen`.
    pub fn listen_addr(&self) -> Result<SocketAddr, String> {
        self.listen.parse().map_err(|_| {
            format!(
                "{:?} is not an address and port, e.g. {DEFAULT_LISTEN}",
                self.listen
            )
        })
    }
}

impl ServerSettings {
    /// What `serve` would meet binding the listener: the address in use or not this host's.
    /// Binds and releases at once.
    pub fn check_bindable(&self, key_prefix: &str) -> Vec<ConfigProblem> {
        let mut p = Problems::new(key_prefix);
        if let Ok(addr) = self.listen_addr() {
            if let Err(e) = std::net::TcpListener::bind(addr) {
                p.add(
                    "listen",
                    format!("cannot listen on {addr}: {e}; is another service (or a running steward) on it?"),
                );
            }
        }
        p.into_vec()
    }
}

impl Section for ServerSettings {
    fn validate(&self, key_prefix: &str) -> Vec<ConfigProblem> {
        let mut p = Problems::new(key_prefix);
        if let Err(m) = self.listen_addr() {
            p.add("listen", m);
        }
        if self.max_hosts == 0 {
            p.add("max_hosts", "must be at least 1");
        }
        if self.max_body_bytes < 1024 {
            p.add("max_body_bytes", "must be at least 1024 bytes");
        }
        if self.host_cache_entries > MAX_HOST_CACHE_ENTRIES {
            p.add(
                "host_cache_entries",
                format!(
                    "{} is more than {MAX_HOST_CACHE_ENTRIES} (each entry holds one host's facts, about half a KB); twice your compute nodes is enough",
                    self.host_cache_entries
                ),
            );
        }
        if self.workers == Some(0) {
            p.add("workers", "must be at least 1");
        }
        if !(0..=19).contains(&self.telemetry_nice) {
            p.add(
                "telemetry_nice",
                format!(
                    "{} is not a step steward can take: use 0 (the workers' priority) to 19 (the lowest priority)",
                    self.telemetry_nice
                ),
            );
        }
        p.into_vec()
    }
}

impl Section for AuthSettings {
    fn validate(&self, key_prefix: &str) -> Vec<ConfigProblem> {
        let mut p = Problems::new(key_prefix);
        match self.strategy {
            AuthStrategy::Noauth => {}
            AuthStrategy::Keystone => {
                let secs = self.cache_seconds;
                if !(secs.is_finite() && (0.0..=3600.0).contains(&secs)) {
                    p.add(
                        "cache_seconds",
                        format!("must be 0 to 3600 seconds, got {secs}"),
                    );
                }
                if self.cache_size == 0 {
                    p.add("cache_size", "must be at least 1");
                }
            }
            AuthStrategy::Static => {
                if self.token_file.is_none() {
                    p.add(
                        "token_file",
                        "strategy static needs a token file (lines `<token> <role>[,<role>]`)",
                    );
                }
            }
        }
        p.into_vec()
    }

    fn resolve_files(&mut self, config_dir: &Path) {
        resolve_in_place(&mut self.token_file, config_dir);
    }
}

impl AuthSettings {
    /// The static token table: read from `token_file` with `static`, and beside `keystone`
    /// (the Nova shim and telemetry pushers keep theirs); none with `noauth`.
    pub fn tokens(&self) -> Result<Option<TokenTable>, Vec<ConfigProblem>> {
        let file = match (self.strategy, &self.token_file) {
            (AuthStrategy::Noauth, _) | (_, None) => return Ok(None),
            (_, Some(file)) => file,
        };
        let text = std::fs::read_to_string(file).map_err(|e| {
            vec![problem(
                "auth.token_file",
                format!("cannot read {}: {e}", file.display()),
            )]
        })?;
        TokenTable::parse(&text, &file.display().to_string()).map(Some)
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

    /// What a Keystone token's roles allow: `reader` and `member` read (how much of the cloud
    /// depends on the token's scope: `api::auth::Caller::from_keystone`), `service` pushes
    /// telemetry (the pushers' service users), `admin` does everything. Other roles give
    /// nothing.
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
