//! Which cloud to talk to and how to log in: `clouds.yaml` + `secure.yaml` + `OS_*` variables,
//! resolved as openstacksdk and the `openstack` CLI do. [`resolve`] is pure; [`load`] reads files.
//!
//! The rules, as read in openstacksdk's `openstack/config/loader.py` (4.x):
//! - `clouds.{yaml,yml,json}` is the first that exists of `$OS_CLIENT_CONFIG_FILE`, `./`,
//!   `~/.config/openstack/`, `/etc/openstack/`; `secure.*` is searched the same way
//!   (`$OS_CLIENT_SECURE_FILE` first) and deep-merged over it, so passwords can live apart.
//! - The cloud is the one named by the caller, else `$OS_CLOUD`, else the cloud built from
//!   `OS_*` variables (named `envvars`, or `$OS_CLOUD_NAME`), else the only cloud in the file.
//! - `OS_<KEY>` sets `<key>` (lower-cased). On a named cloud the variables override the file key
//!   by key, as the `openstack` CLI does (its options default to the variables).
//! - Legacy spellings are mapped (`tenant_*` -> `project_*`, `auth_token` -> `token`,
//!   `endpoint_type` -> `interface`, `auth_plugin` -> `auth_type`, dashes -> underscores), and
//!   `domain_id`/`domain_name` fill the user and project domains of a project-scoped login.
//!
//! Deliberate differences, each because steward is a long-running service, not a shell tool:
//! a file that exists but does not parse is an error (openstacksdk skips it and may pick another
//! cloud); `$OS_CLIENT_CONFIG_FILE` naming a missing file is an error; only login variables
//! (`OS_AUTH_URL`, `OS_USERNAME`, `OS_TOKEN`, ... see [`ENV_CLOUD_TRIGGERS`]) make an `envvars`
//! cloud, so a stray `OS_PLACEMENT_CONFIG_DIR` in a service's environment cannot hide clouds.yaml.
//! Vendor profiles (`profile:`) and Keystone v2 are refused with a message.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_yaml::{Mapping, Value};
use url::Url;

use super::Secret;

/// The name of the cloud built from `OS_*` variables (openstacksdk's default).
pub const ENV_CLOUD_NAME: &str = "envvars";

/// Variables that only select or locate a cloud; alone they build no `envvars` cloud.
const SELECTORS: [&str; 5] = [
    "OS_CLOUD",
    "OS_CLOUD_NAME",
    "OS_REGION_NAME",
    "OS_CLIENT_CONFIG_FILE",
    "OS_CLIENT_SECURE_FILE",
];

/// Variables that say "log in this way": any of them (set, non-empty) builds the `envvars` cloud
/// when no cloud is named.
pub const ENV_CLOUD_TRIGGERS: [&str; 20] = [
    "OS_AUTH_URL",
    "OS_AUTH_TYPE",
    "OS_USERNAME",
    "OS_USER_ID",
    "OS_PASSWORD",
    "OS_TOKEN",
    "OS_AUTH_TOKEN",
    "OS_ENDPOINT",
    "OS_APPLICATION_CREDENTIAL_ID",
    "OS_APPLICATION_CREDENTIAL_NAME",
    "OS_APPLICATION_CREDENTIAL_SECRET",
    "OS_PROJECT_NAME",
    "OS_PROJECT_ID",
    "OS_TENANT_NAME",
    "OS_TENANT_ID",
    "OS_USER_DOMAIN_NAME",
    "OS_USER_DOMAIN_ID",
    "OS_PROJECT_DOMAIN_NAME",
    "OS_PROJECT_DOMAIN_ID",
    "OS_SYSTEM_SCOPE",
];

/// Options of the Keystone auth plugins: they belong in the `auth:` block. Found at the top level
/// (where `OS_*` variables land), they move into it and win, as in openstacksdk.
const AUTH_KEYS: [&str; 21] = [
    "auth_url",
    "username",
    "user_id",
    "password",
    "user_domain_name",
    "user_domain_id",
    "project_name",
    "project_id",
    "project_domain_name",
    "project_domain_id",
    "domain_name",
    "domain_id",
    "default_domain_name",
    "default_domain_id",
    "application_credential_id",
    "application_credential_name",
    "application_credential_secret",
    "token",
    "endpoint",
    "system_scope",
    "trust_id",
];

const AUTH_TYPES: &str =
    "password, v3password, v3applicationcredential, applicationcredential, token, v3token, admin_token";

/// Which endpoint of a service to use from the catalog.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Interface {
    #[default]
    Public,
    Internal,
    Admin,
}

impl Interface {
    /// Accepts Keystone v3 names and the v2 spellings (`internalURL`) openrc files still carry.
    pub fn parse(s: &str) -> Option<Interface> {
        match s.trim().to_ascii_lowercase().as_str() {
            "public" | "publicurl" => Some(Interface::Public),
            "internal" | "internalurl" => Some(Interface::Internal),
            "admin" | "adminurl" => Some(Interface::Admin),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Interface::Public => "public",
            Interface::Internal => "internal",
            Interface::Admin => "admin",
        }
    }
}

impl fmt::Display for Interface {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DomainRef {
    Id(String),
    Name(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserRef {
    Id(String),
    Name { name: String, domain: DomainRef },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProjectRef {
    Id(String),
    Name { name: String, domain: DomainRef },
}

/// What a token is scoped to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    Unscoped,
    Project(ProjectRef),
    Domain(DomainRef),
    /// `system_scope: all`.
    System(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApplicationCredentialRef {
    Id(String),
    /// A name is unique per user only, so the user comes with it.
    Name {
        name: String,
        user: UserRef,
    },
}

/// How to obtain a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Auth {
    /// Keystone v3 `password` method (`password`, `v3password`).
    Password {
        auth_url: Url,
        user: UserRef,
        password: Secret,
        scope: Scope,
    },
    /// Keystone v3 `application_credential` method; the credential carries its own scope.
    ApplicationCredential {
        auth_url: Url,
        credential: ApplicationCredentialRef,
        secret: Secret,
    },
    /// Keystone v3 `token` method: exchange a token for a (re)scoped one with a catalog.
    Token {
        auth_url: Url,
        token: Secret,
        scope: Scope,
    },
    /// A fixed token sent as is, with no Keystone (`admin_token`, or `token` without `auth_url`):
    /// for noauth peers. Endpoints come from `endpoint` or `<service>_endpoint_override`.
    Static {
        token: Secret,
        endpoint: Option<Url>,
    },
}

impl Auth {
    pub fn auth_url(&self) -> Option<&Url> {
        match self {
            Auth::Password { auth_url, .. }
            | Auth::ApplicationCredential { auth_url, .. }
            | Auth::Token { auth_url, .. } => Some(auth_url),
            Auth::Static { .. } => None,
        }
    }
}

/// One resolved cloud: everything a [`super::Session`] needs.
#[derive(Debug, Clone, PartialEq)]
pub struct CloudConfig {
    pub name: String,
    /// The files it came from (clouds, then secure); empty for a cloud made of `OS_*` variables.
    pub files: Vec<PathBuf>,
    /// As configured (`password`, `v3applicationcredential`, ...), for messages.
    pub auth_type: String,
    pub auth: Auth,
    pub region_name: Option<String>,
    pub interface: Interface,
    /// `<service>_interface`, keyed by service type with `_` for `-`.
    pub service_interfaces: BTreeMap<String, Interface>,
    /// `<service>_endpoint_override` (or the older `<service>_endpoint`), keyed as above.
    pub endpoint_overrides: BTreeMap<String, Url>,
    pub cacert: Option<PathBuf>,
    pub insecure: bool,
    pub api_timeout: Option<Duration>,
}

fn service_key(service_type: &str) -> String {
    service_type.replace('-', "_")
}

impl CloudConfig {
    pub fn endpoint_override(&self, service_type: &str) -> Option<&Url> {
        self.endpoint_overrides.get(&service_key(service_type))
    }

    pub fn interface_for(&self, service_type: &str) -> Interface {
        self.service_interfaces
            .get(&service_key(service_type))
            .copied()
            .unwrap_or(self.interface)
    }

    /// "cloud \"prod\" (/etc/openstack/clouds.yaml)": how messages name this cloud.
    pub fn describe(&self) -> String {
        describe(&self.name, &self.files)
    }
}

fn describe(name: &str, files: &[PathBuf]) -> String {
    if files.is_empty() {
        format!("cloud {name:?} (from OS_* variables)")
    } else {
        let f: Vec<String> = files.iter().map(|p| p.display().to_string()).collect();
        format!("cloud {name:?} ({})", f.join(" + "))
    }
}

/// A cloud that cannot be used as configured. Names the cloud, the file(s) and the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{}: {message}", describe_opt(.cloud, .files), .key.as_ref().map(|k| format!(" key {k}")).unwrap_or_default())]
pub struct CloudError {
    pub cloud: Option<String>,
    pub files: Vec<PathBuf>,
    pub key: Option<String>,
    pub message: String,
}

fn describe_opt(cloud: &Option<String>, files: &[PathBuf]) -> String {
    match cloud {
        Some(c) => describe(c, files),
        None if files.is_empty() => "OpenStack client configuration".into(),
        None => {
            let f: Vec<String> = files.iter().map(|p| p.display().to_string()).collect();
            f.join(" + ")
        }
    }
}

/// A configuration file's path and text, read by the caller (tests pass literals).
#[derive(Debug, Clone)]
pub struct ConfigText {
    pub path: PathBuf,
    pub text: String,
}

impl ConfigText {
    pub fn new(path: impl Into<PathBuf>, text: impl Into<String>) -> Self {
        ConfigText {
            path: path.into(),
            text: text.into(),
        }
    }
}

/// Resolve one cloud from the environment and the texts of `clouds.yaml` and `secure.yaml`.
/// `requested` is the caller's choice (`--os-cloud`); `None` defers to `OS_CLOUD` and the rules
/// in the module documentation.
pub fn resolve(
    requested: Option<&str>,
    env: &[(String, String)],
    clouds: Option<&ConfigText>,
    secure: Option<&ConfigText>,
) -> Result<CloudConfig, CloudError> {
    // Empty variables count as unset, as for the CLI, whose option parser drops '' values.
    let env: BTreeMap<&str, &str> = env
        .iter()
        .filter(|(k, v)| k.starts_with("OS_") && !v.is_empty())
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let mut files = Vec::new();
    let mut tree = Mapping::new();
    if let Some(c) = clouds {
        files.push(c.path.clone());
        tree = parse_file(c)?;
    }
    if let Some(s) = secure {
        let secure_tree = parse_file(s)?;
        files.push(s.path.clone());
        merge(&mut tree, secure_tree);
    }
    let file_clouds: Mapping = match tree.get("clouds") {
        None | Some(Value::Null) => Mapping::new(),
        Some(Value::Mapping(m)) => m.clone(),
        Some(_) => {
            return Err(CloudError {
                cloud: None,
                files,
                key: Some("clouds".into()),
                message: "must be a mapping of cloud names to their settings".into(),
            })
        }
    };
    let names: Vec<String> = file_clouds.keys().map(scalar_key).collect();
    let env_cloud_name = env
        .get("OS_CLOUD_NAME")
        .copied()
        .unwrap_or(ENV_CLOUD_NAME)
        .to_string();
    let env_has_login = ENV_CLOUD_TRIGGERS.iter().any(|k| env.contains_key(k));
    if env_has_login && names.contains(&env_cloud_name) {
        return Err(CloudError {
            cloud: Some(env_cloud_name.clone()),
            files,
            key: None,
            message: format!(
                "the file defines a cloud named {env_cloud_name:?}, which is also the name of the \
                 cloud made of OS_* variables; rename the file's cloud or set OS_CLOUD_NAME"
            ),
        });
    }

    let name = choose_cloud(
        requested,
        &env,
        &names,
        &env_cloud_name,
        env_has_login,
        &files,
    )?;
    let from_env_only = name == env_cloud_name && env_has_login && !names.contains(&name);
    // Defaults (auth_type password, interface public) apply in `build`, not here, so that a
    // legacy spelling in the file (endpoint_type) is not outranked by a default.
    let cloud_files = if from_env_only { Vec::new() } else { files };
    let err = |key: Option<&str>, message: String| CloudError {
        cloud: Some(name.clone()),
        files: cloud_files.clone(),
        key: key.map(str::to_string),
        message,
    };
    let (mut top, mut auth) = if from_env_only {
        (Mapping::new(), Mapping::new())
    } else {
        file_entry(&file_clouds, &name, &names, cloud_files.is_empty(), &err)?
    };
    apply_region(&env, &mut top, &mut auth, &err)?;
    apply_env(&env, &mut top);
    let mut top = legacy_names(top);
    let mut auth = legacy_names(auth);
    // Top-level values win over `auth:` ones: that is where variables and options land.
    for key in AUTH_KEYS {
        if let Some(v) = top.remove(key) {
            if !v.is_null() {
                auth.insert(key.into(), v);
            }
        }
    }
    handle_domain(&mut auth);

    build(&name, cloud_files, &top, &auth)
}

/// The cloud's name: the caller's, `OS_CLOUD`, the `OS_*` cloud, or the file's only cloud.
fn choose_cloud(
    requested: Option<&str>,
    env: &BTreeMap<&str, &str>,
    names: &[String],
    env_cloud_name: &str,
    env_has_login: bool,
    files: &[PathBuf],
) -> Result<String, CloudError> {
    let requested = requested.filter(|r| !r.is_empty());
    Ok(match requested.or(env.get("OS_CLOUD").copied()) {
        Some(n) => n.to_string(),
        None if env_has_login => env_cloud_name.to_string(),
        None if names.len() == 1 => names[0].clone(),
        None if names.is_empty() => {
            return Err(CloudError {
                cloud: None,
                files: files.to_vec(),
                key: None,
                message:
                    "no cloud is configured: write a clouds.yaml (or set OS_CLIENT_CONFIG_FILE) \
                          and name a cloud with OS_CLOUD, or set OS_AUTH_URL and the other OS_* \
                          login variables"
                        .into(),
            })
        }
        None => {
            return Err(CloudError {
                cloud: None,
                files: files.to_vec(),
                key: None,
                message: format!(
                    "defines {} clouds ({}); name one with OS_CLOUD or the --os-cloud option",
                    names.len(),
                    names.join(", ")
                ),
            })
        }
    })
}

/// The file's entry for cloud `name`: its top-level settings and its `auth:` block.
fn file_entry(
    file_clouds: &Mapping,
    name: &str,
    names: &[String],
    no_files: bool,
    err: &dyn Fn(Option<&str>, String) -> CloudError,
) -> Result<(Mapping, Mapping), CloudError> {
    let mut auth = Mapping::new();
    let mut top = Mapping::new();
    {
        let Some(entry) = file_clouds.get(name) else {
            let message = if no_files {
                "no clouds.yaml was found, so no cloud has this name; write one or set \
                 OS_CLIENT_CONFIG_FILE"
                    .to_string()
            } else {
                format!(
                    "no cloud of this name in the file; it defines: {}",
                    if names.is_empty() {
                        "nothing".to_string()
                    } else {
                        names.join(", ")
                    }
                )
            };
            return Err(err(None, message));
        };
        let entry = match normalize(entry.clone()) {
            Value::Mapping(m) => m,
            Value::Null => Mapping::new(),
            _ => {
                return Err(err(
                    None,
                    "must be a mapping of settings (auth, region_name, ...)".into(),
                ))
            }
        };
        for (k, v) in entry {
            let k = scalar_key(&k);
            match (k.as_str(), v) {
                ("auth", Value::Mapping(m)) => auth = m,
                ("auth", Value::Null) => {}
                ("auth", _) => {
                    return Err(err(
                        Some("auth"),
                        "must be a mapping (auth_url, username, ...)".into(),
                    ))
                }
                ("profile" | "cloud", _) => {
                    return Err(err(
                        Some(&k),
                        "vendor profiles are not supported; copy the profile's settings \
                         (auth_url, region_name, ...) into this cloud"
                            .into(),
                    ))
                }
                (_, v) => {
                    top.insert(k.into(), v);
                }
            }
        }
    }
    Ok((top, auth))
}

/// Regions: `regions:` lists names or {name, values}; the chosen one's values apply below the
/// variables. OS_REGION_NAME picks among them.
fn apply_region(
    env: &BTreeMap<&str, &str>,
    top: &mut Mapping,
    auth: &mut Mapping,
    err: &dyn Fn(Option<&str>, String) -> CloudError,
) -> Result<(), CloudError> {
    let wanted_region = env
        .get("OS_REGION_NAME")
        .map(|s| s.to_string())
        .or_else(|| top.get("region_name").and_then(scalar));
    if let Some(regions) = top.remove("regions") {
        let list = match regions {
            Value::Sequence(s) => s,
            Value::String(s) => s.split(',').map(|r| Value::from(r.trim())).collect(),
            _ => {
                return Err(err(
                    Some("regions"),
                    "must be a list of region names".into(),
                ))
            }
        };
        let mut choices = Vec::new();
        for r in list {
            match r {
                Value::Mapping(m) => {
                    let Some(rname) = m.get("name").and_then(scalar) else {
                        return Err(err(Some("regions"), "an entry has no name".into()));
                    };
                    let values = match m.get("values") {
                        Some(Value::Mapping(v)) => v.clone(),
                        _ => Mapping::new(),
                    };
                    choices.push((rname, values));
                }
                other => match scalar(&other) {
                    Some(s) => choices.push((s, Mapping::new())),
                    None => return Err(err(Some("regions"), "an entry is not a name".into())),
                },
            }
        }
        let chosen = match &wanted_region {
            Some(w) => choices.iter().find(|(n, _)| n == w).cloned().ok_or_else(|| {
                err(
                    Some("region_name"),
                    format!(
                        "{w:?} is not one of the cloud's regions ({}); region names are case sensitive",
                        choices.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>().join(", ")
                    ),
                )
            })?,
            None => match choices.first() {
                Some(c) => c.clone(),
                None => (String::new(), Mapping::new()),
            },
        };
        if !chosen.0.is_empty() {
            top.insert("region_name".into(), chosen.0.clone().into());
        }
        for (k, v) in normalize_mapping(chosen.1) {
            if scalar_key(&k) == "auth" {
                if let Value::Mapping(m) = v {
                    merge(auth, m);
                }
            } else {
                top.insert(k, v);
            }
        }
    }
    Ok(())
}

/// `OS_*` variables override key by key (the CLI's option defaults); unknown keys are inert.
fn apply_env(env: &BTreeMap<&str, &str>, top: &mut Mapping) {
    for (k, v) in env {
        if SELECTORS.contains(k) && *k != "OS_REGION_NAME" {
            continue;
        }
        if k.starts_with("OS_TEST") || k.starts_with("OS_STD") || k.starts_with("OS_LOG") {
            continue;
        }
        let key = k["OS_".len()..].to_ascii_lowercase();
        top.insert(key.into(), (*v).into());
    }
}

/// Keys with dashes get underscores; openstacksdk's `normalize_keys`.
fn normalize(v: Value) -> Value {
    match v {
        Value::Mapping(m) => Value::Mapping(normalize_mapping(m)),
        other => other,
    }
}

fn normalize_mapping(m: Mapping) -> Mapping {
    m.into_iter()
        .map(|(k, v)| (Value::from(scalar_key(&k).replace('-', "_")), normalize(v)))
        .collect()
}

fn legacy_names(m: Mapping) -> Mapping {
    let mut out = Mapping::new();
    // Old spellings first, so a current spelling in the same block wins.
    let mut entries: Vec<(String, Value)> = m
        .into_iter()
        .map(|(k, v)| (scalar_key(&k).replace('-', "_"), v))
        .collect();
    let rename = |k: &str| -> Option<String> {
        Some(match k {
            "tenant_name" => "project_name".into(),
            "tenant_id" => "project_id".into(),
            "auth_token" => "token".into(),
            "auth_plugin" => "auth_type".into(),
            "endpoint_type" => "interface".into(),
            _ => match k.strip_suffix("_endpoint_type") {
                Some(svc) => format!("{svc}_interface"),
                None => return None,
            },
        })
    };
    entries.sort_by_key(|(k, _)| rename(k).is_none());
    for (k, v) in entries {
        let k = rename(&k).unwrap_or(k);
        out.insert(k.into(), v);
    }
    out
}

/// `domain_id`/`domain_name` on a project-scoped login fill the user and project domains
/// (openstacksdk's `_handle_domain_id`); without a project they scope the token to the domain.
fn handle_domain(auth: &mut Mapping) {
    let project_scoped = auth.contains_key("project_id") || auth.contains_key("project_name");
    if !project_scoped {
        return;
    }
    for (general, specific) in [
        ("domain_id", ["user_domain_id", "project_domain_id"]),
        ("domain_name", ["user_domain_name", "project_domain_name"]),
    ] {
        if let Some(v) = auth.remove(general) {
            for s in specific {
                if !auth.contains_key(s) {
                    auth.insert(s.into(), v.clone());
                }
            }
        }
    }
}

fn parse_file(file: &ConfigText) -> Result<Mapping, CloudError> {
    let fail = |message: String| CloudError {
        cloud: None,
        files: vec![file.path.clone()],
        key: None,
        message,
    };
    // JSON is YAML, so one parser reads clouds.yaml and clouds.json alike.
    let value: Value = serde_yaml::from_str(&file.text).map_err(|e| {
        // serde_yaml's messages give a position, never the text, so no secret leaks here.
        fail(format!(
            "is not valid YAML ({e}); fix the file or point OS_CLIENT_CONFIG_FILE elsewhere"
        ))
    })?;
    // Keys are normalised per cloud later, never here: cloud names keep their dashes.
    match value {
        Value::Mapping(m) => Ok(m),
        Value::Null => Ok(Mapping::new()),
        _ => Err(fail(
            "is not a mapping; it should start with `clouds:`".into(),
        )),
    }
}

/// Deep merge, `over` winning (openstacksdk's `merge_clouds`).
fn merge(base: &mut Mapping, over: Mapping) {
    for (k, v) in over {
        match (base.get_mut(&k), v) {
            (Some(Value::Mapping(b)), Value::Mapping(o)) => merge(b, o),
            (_, v) => {
                base.insert(k, v);
            }
        }
    }
}

fn scalar_key(k: &Value) -> String {
    scalar(k).unwrap_or_else(|| format!("{k:?}"))
}

/// Strings, numbers and booleans as text (openstacksdk stringifies numbers too).
fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Tagged(t) => scalar(&t.value),
        _ => None,
    }
}

/// The resolved cloud's settings, read key by key; every error names the cloud, its files and
/// the key.
struct Reader<'a> {
    name: &'a str,
    files: &'a [PathBuf],
    top: &'a Mapping,
    auth: &'a Mapping,
}

impl Reader<'_> {
    fn err(&self, key: &str, message: String) -> CloudError {
        CloudError {
            cloud: Some(self.name.to_string()),
            files: self.files.to_vec(),
            key: Some(key.to_string()),
            message,
        }
    }

    fn get(&self, m: &Mapping, block: &str, key: &str) -> Result<Option<String>, CloudError> {
        match m.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => match scalar(v) {
                Some(s) if s.is_empty() => Ok(None),
                Some(s) => Ok(Some(s)),
                None => Err(self.err(
                    &format!("{block}{key}"),
                    "must be a single value, not a list or mapping".into(),
                )),
            },
        }
    }

    fn top_s(&self, key: &str) -> Result<Option<String>, CloudError> {
        self.get(self.top, "", key)
    }

    fn auth_s(&self, key: &str) -> Result<Option<String>, CloudError> {
        self.get(self.auth, "auth.", key)
    }

    fn secret(&self, key: &str) -> Result<Option<Secret>, CloudError> {
        Ok(self.auth_s(key)?.map(Secret::new))
    }

    fn bool_of(&self, key: &str) -> Result<Option<bool>, CloudError> {
        match self.top_s(key)? {
            None => Ok(None),
            Some(s) => match s.to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" | "on" => Ok(Some(true)),
                "false" | "0" | "no" | "off" => Ok(Some(false)),
                _ => Err(self.err(key, format!("{s:?} is not true or false"))),
            },
        }
    }

    fn url_of(&self, key: &str, value: &str) -> Result<Url, CloudError> {
        match Url::parse(value) {
            // A URL's Debug output shows its user info; credentials belong in their own keys.
            Ok(u) if u.password().is_some() || !u.username().is_empty() => Err(self.err(
                key,
                "must not carry user:password@; put credentials in auth.username and \
                 auth.password"
                    .into(),
            )),
            Ok(u) if u.scheme() == "http" || u.scheme() == "https" => Ok(u),
            Ok(_) => Err(self.err(key, format!("{value:?} is not an http(s) URL"))),
            Err(e) => Err(self.err(key, format!("{value:?} is not a URL ({e})"))),
        }
    }

    fn auth_url(&self) -> Result<Url, CloudError> {
        match self.auth_s("auth_url")? {
            Some(u) => self.url_of("auth.auth_url", &u),
            None => Err(self.err(
                "auth.auth_url",
                "is missing; set it to Keystone's URL (e.g. https://keystone.example:5000/v3) \
                 or set OS_AUTH_URL"
                    .into(),
            )),
        }
    }

    fn domain(&self, id_key: &str, name_key: &str) -> Result<Option<DomainRef>, CloudError> {
        let s = |k: &str| self.auth_s(k);
        Ok(match (s(id_key)?, s(name_key)?) {
            (Some(id), _) => Some(DomainRef::Id(id)),
            (None, Some(n)) => Some(DomainRef::Name(n)),
            (None, None) => match (s("default_domain_id")?, s("default_domain_name")?) {
                (Some(id), _) => Some(DomainRef::Id(id)),
                (None, Some(n)) => Some(DomainRef::Name(n)),
                (None, None) => None,
            },
        })
    }

    fn user(&self, required: bool) -> Result<Option<UserRef>, CloudError> {
        if let Some(id) = self.auth_s("user_id")? {
            return Ok(Some(UserRef::Id(id)));
        }
        match self.auth_s("username")? {
            Some(n) => match self.domain("user_domain_id", "user_domain_name")? {
                Some(d) => Ok(Some(UserRef::Name { name: n, domain: d })),
                None => Err(self.err(
                    "auth.user_domain_name",
                    format!(
                        "is missing: user {n:?} is given by name, and Keystone needs its domain; \
                         set user_domain_name (often \"Default\") or OS_USER_DOMAIN_NAME"
                    ),
                )),
            },
            None if required => Err(self.err(
                "auth.username",
                "is missing; set username (or user_id), or OS_USERNAME".into(),
            )),
            None => Ok(None),
        }
    }

    fn scope(&self) -> Result<Scope, CloudError> {
        if let Some(id) = self.auth_s("project_id")? {
            return Ok(Scope::Project(ProjectRef::Id(id)));
        }
        if let Some(n) = self.auth_s("project_name")? {
            return match self.domain("project_domain_id", "project_domain_name")? {
                Some(d) => Ok(Scope::Project(ProjectRef::Name { name: n, domain: d })),
                None => Err(self.err(
                    "auth.project_domain_name",
                    format!(
                        "is missing: project {n:?} is given by name, and Keystone needs its \
                         domain; set project_domain_name (often \"Default\") or \
                         OS_PROJECT_DOMAIN_NAME"
                    ),
                )),
            };
        }
        if let Some(id) = self.auth_s("domain_id")? {
            return Ok(Scope::Domain(DomainRef::Id(id)));
        }
        if let Some(n) = self.auth_s("domain_name")? {
            return Ok(Scope::Domain(DomainRef::Name(n)));
        }
        if let Some(s) = self.auth_s("system_scope")? {
            return Ok(Scope::System(s));
        }
        Ok(Scope::Unscoped)
    }
}

fn build(
    name: &str,
    files: Vec<PathBuf>,
    top: &Mapping,
    auth: &Mapping,
) -> Result<CloudConfig, CloudError> {
    let r = Reader {
        name,
        files: &files,
        top,
        auth,
    };
    if let Some(v) = r.top_s("identity_api_version")? {
        if v.starts_with('2') {
            return Err(r.err(
                "identity_api_version",
                format!("Keystone v{v} is not supported; use the v3 API (identity_api_version: 3)"),
            ));
        }
    }
    let auth_type = r.top_s("auth_type")?.unwrap_or_else(|| "password".into());
    let auth = match auth_type.as_str() {
        "password" | "v3password" => password_auth(&r)?,
        "v3applicationcredential" | "applicationcredential" => application_credential_auth(&r)?,
        "token" | "v3token" | "admin_token" | "token_endpoint" => token_auth(&r, &auth_type)?,
        other => {
            return Err(r.err(
                "auth_type",
                format!("{other:?} is not supported; use one of {AUTH_TYPES}"),
            ))
        }
    };
    let (interface, service_interfaces, endpoint_overrides) = endpoints(&r)?;
    let region_name = match r.top_s("region_name")? {
        // A comma list is deprecated in openstacksdk; its first region is the default there too.
        Some(reg) => reg
            .split(',')
            .map(str::trim)
            .find(|s| !s.is_empty())
            .map(str::to_string),
        None => None,
    };
    let (cacert, insecure) = tls(&r)?;
    let api_timeout = match r.top_s("api_timeout")? {
        None => None,
        Some(s) => match s.parse::<f64>() {
            Ok(t) if t.is_finite() && t > 0.0 => Some(Duration::from_secs_f64(t)),
            _ => {
                return Err(r.err(
                    "api_timeout",
                    format!("{s:?} is not a positive number of seconds"),
                ))
            }
        },
    };
    Ok(CloudConfig {
        name: name.to_string(),
        files,
        auth_type,
        auth,
        region_name,
        interface,
        service_interfaces,
        endpoint_overrides,
        cacert,
        insecure,
        api_timeout,
    })
}

/// `auth_type: password`: a user (by id, or name and domain), its password, a scope.
fn password_auth(r: &Reader) -> Result<Auth, CloudError> {
    let Some(password) = r.secret("password")? else {
        let hint = if r.auth_s("application_credential_secret")?.is_some() {
            " (an application credential secret is set: use auth_type \
                 v3applicationcredential)"
        } else {
            ""
        };
        return Err(r.err(
            "auth.password",
            format!(
                "is missing; put it in secure.yaml beside clouds.yaml or set OS_PASSWORD{hint}"
            ),
        ));
    };
    let auth_url = r.auth_url()?;
    // `r.user(true)` reports a missing user itself; `None` cannot come back from it.
    let Some(user) = r.user(true)? else {
        return Err(r.err("auth.username", "is missing".into()));
    };
    Ok(Auth::Password {
        auth_url,
        user,
        password,
        scope: r.scope()?,
    })
}

/// `auth_type: v3applicationcredential`: the credential (by id, or name and user) and its secret.
fn application_credential_auth(r: &Reader) -> Result<Auth, CloudError> {
    let Some(secret) = r.secret("application_credential_secret")? else {
        return Err(r.err(
            "auth.application_credential_secret",
            "is missing; put it in secure.yaml or set OS_APPLICATION_CREDENTIAL_SECRET".into(),
        ));
    };
    let credential = match (
        r.auth_s("application_credential_id")?,
        r.auth_s("application_credential_name")?,
    ) {
        (Some(id), _) => ApplicationCredentialRef::Id(id),
        (None, Some(n)) => match r.user(false)? {
            Some(u) => ApplicationCredentialRef::Name { name: n, user: u },
            None => {
                return Err(r.err(
                    "auth.username",
                    format!(
                        "is missing: application credential {n:?} is given by name, \
                             which is unique per user only; set user_id, or username and \
                             user_domain_name (or use application_credential_id)"
                    ),
                ))
            }
        },
        (None, None) => {
            return Err(r.err(
                "auth.application_credential_id",
                "is missing; set application_credential_id (or _name with the user), \
                     or OS_APPLICATION_CREDENTIAL_ID"
                    .into(),
            ))
        }
    };
    Ok(Auth::ApplicationCredential {
        auth_url: r.auth_url()?,
        credential,
        secret,
    })
}

/// `auth_type: token` (exchanged for a scoped token when an auth_url is given) or a static
/// token with an endpoint (`admin_token`, `token_endpoint`).
fn token_auth(r: &Reader, auth_type: &str) -> Result<Auth, CloudError> {
    let Some(token) = r.secret("token")? else {
        return Err(r.err("auth.token", "is missing; set token, or OS_TOKEN".into()));
    };
    let exchange = matches!(auth_type, "token" | "v3token")
        && r.auth_s("auth_url")?.is_some()
        && r.auth_s("endpoint")?.is_none();
    if exchange {
        Ok(Auth::Token {
            auth_url: r.auth_url()?,
            token,
            scope: r.scope()?,
        })
    } else {
        let endpoint = match r.auth_s("endpoint")? {
            Some(e) => Some(r.url_of("auth.endpoint", &e)?),
            None => None,
        };
        Ok(Auth::Static { token, endpoint })
    }
}

type Endpoints = (
    Interface,
    BTreeMap<String, Interface>,
    BTreeMap<String, Url>,
);

/// The interface, per-service interfaces and endpoint overrides.
fn endpoints(r: &Reader) -> Result<Endpoints, CloudError> {
    let interface = match r.top_s("interface")? {
        None => Interface::Public,
        Some(s) => Interface::parse(&s).ok_or_else(|| {
            r.err(
                "interface",
                format!("{s:?} is not public, internal or admin"),
            )
        })?,
    };
    let mut service_interfaces = BTreeMap::new();
    let mut endpoint_overrides = BTreeMap::new();
    let keys: BTreeSet<String> = r.top.keys().map(scalar_key).collect();
    for key in &keys {
        if let Some(svc) = key.strip_suffix("_interface") {
            if let Some(s) = r.top_s(key)? {
                let i = Interface::parse(&s)
                    .ok_or_else(|| r.err(key, format!("{s:?} is not public, internal or admin")))?;
                service_interfaces.insert(svc.to_string(), i);
            }
        }
    }
    // The older `<service>_endpoint` first, so `<service>_endpoint_override` wins.
    for suffix in ["_endpoint", "_endpoint_override"] {
        for key in &keys {
            if let Some(svc) = key.strip_suffix(suffix) {
                if svc.is_empty() || svc == "auth" {
                    continue;
                }
                if let Some(s) = r.top_s(key)? {
                    endpoint_overrides.insert(svc.to_string(), r.url_of(key, &s)?);
                }
            }
        }
    }
    Ok((interface, service_interfaces, endpoint_overrides))
}

/// The CA bundle and whether TLS is verified: `insecure`, `cacert`, and `verify` (false, true,
/// or a CA bundle path: requests' convention, kept by openstacksdk).
fn tls(r: &Reader) -> Result<(Option<PathBuf>, bool), CloudError> {
    let insecure_flag = r.bool_of("insecure")?;
    let mut cacert = r.top_s("cacert")?.map(PathBuf::from);
    let verify = match r.top_s("verify")? {
        None => None,
        Some(v) => match v.to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Some(true),
            "false" | "0" | "no" | "off" => Some(false),
            _ => {
                if cacert.is_none() {
                    cacert = Some(PathBuf::from(v));
                }
                Some(true)
            }
        },
    };
    Ok((
        cacert,
        insecure_flag.unwrap_or(false) || verify == Some(false),
    ))
}

/// Where `clouds.*` and `secure.*` are looked for, in order (openstacksdk's search path).
pub fn search_paths(
    env: &[(String, String)],
    cwd: &Path,
    home: Option<&Path>,
) -> (Vec<PathBuf>, Vec<PathBuf>) {
    let var = |k: &str| {
        env.iter()
            .find(|(n, v)| n == k && !v.is_empty())
            .map(|(_, v)| PathBuf::from(v))
    };
    let mut dirs = vec![cwd.to_path_buf()];
    if let Some(x) = var("XDG_CONFIG_HOME") {
        dirs.push(x.join("openstack"));
    }
    if let Some(h) = home {
        let d = h.join(".config").join("openstack");
        if !dirs.contains(&d) {
            dirs.push(d);
        }
    }
    dirs.push(PathBuf::from("/etc/openstack"));
    let files = |stem: &str, first: Option<PathBuf>| {
        let mut out: Vec<PathBuf> = first.into_iter().collect();
        for d in &dirs {
            for ext in ["yaml", "yml", "json"] {
                out.push(d.join(format!("{stem}.{ext}")));
            }
        }
        out
    };
    (
        files("clouds", var("OS_CLIENT_CONFIG_FILE")),
        files("secure", var("OS_CLIENT_SECURE_FILE")),
    )
}

/// Resolve a cloud from this process's environment and the files on disk.
pub fn load(requested: Option<&str>) -> Result<CloudConfig, CloudError> {
    let env: Vec<(String, String)> = std::env::vars().collect();
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    let home = env
        .iter()
        .find(|(k, _)| k == "HOME")
        .map(|(_, v)| PathBuf::from(v));
    load_with(requested, &env, &cwd, home.as_deref())
}

/// As [`load`], with the environment and directories given.
pub fn load_with(
    requested: Option<&str>,
    env: &[(String, String)],
    cwd: &Path,
    home: Option<&Path>,
) -> Result<CloudConfig, CloudError> {
    let (clouds_paths, secure_paths) = search_paths(env, cwd, home);
    for (var, paths) in [
        ("OS_CLIENT_CONFIG_FILE", &clouds_paths),
        ("OS_CLIENT_SECURE_FILE", &secure_paths),
    ] {
        let named = env.iter().any(|(k, v)| k == var && !v.is_empty());
        // When the variable is set, search_paths puts its file first.
        match paths.first() {
            Some(first) if named && !first.is_file() => {
                return Err(CloudError {
                    cloud: None,
                    files: vec![first.clone()],
                    key: Some(var.into()),
                    message: format!("{var} names a file that does not exist; fix or unset it"),
                })
            }
            _ => {}
        }
    }
    let clouds = read_first(&clouds_paths)?;
    let secure = read_first(&secure_paths)?;
    resolve(requested, env, clouds.as_ref(), secure.as_ref())
}

fn read_first(paths: &[PathBuf]) -> Result<Option<ConfigText>, CloudError> {
    for p in paths {
        if !p.is_file() {
            continue;
        }
        match std::fs::read_to_string(p) {
            Ok(text) => return Ok(Some(ConfigText::new(p.clone(), text))),
            // As openstacksdk: a file this user may not read is passed over for the next one.
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                tracing::warn!(file = %p.display(), "cannot read (permission denied); trying the next location");
            }
            Err(e) => {
                return Err(CloudError {
                    cloud: None,
                    files: vec![p.clone()],
                    key: None,
                    message: format!("cannot be read: {e}"),
                })
            }
        }
    }
    Ok(None)
}
