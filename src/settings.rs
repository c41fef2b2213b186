//! What every configuration section shares: a [`ConfigProblem`] names one bad key,
//! [`Section`] is the contract each subsystem's settings type keeps, and [`DatabaseUrl`] a URL
//! that never prints its password. A leaf: it imports nothing of the crate, so any subsystem
//! may use it without depending on `config`.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// One thing wrong with the configuration: the key (`server.listen`,
/// `rebalance.hooks.exec[0].name`) and what is wrong and what to do.
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

pub fn problem(key: impl Into<String>, message: impl Into<String>) -> ConfigProblem {
    ConfigProblem {
        key: key.into(),
        message: message.into(),
    }
}

/// A `[section]` of the configuration, owned by its subsystem and defined next to its code.
/// `config` deserializes it key by key (a bad key is one problem, the others still apply), calls
/// [`Section::resolve_files`] and then [`Section::validate`], and collects every problem.
pub trait Section: DeserializeOwned + Default {
    /// Every problem of the section's own keys, each named `<key_prefix>.<key>`; never stops at
    /// the first. Checks that need another section live in `config::cross_checks`.
    fn validate(&self, key_prefix: &str) -> Vec<ConfigProblem>;

    /// Make relative file names relative to the configuration file's directory.
    fn resolve_files(&mut self, _config_dir: &Path) {}
}

/// Collects a section's problems under its key prefix.
pub struct Problems<'a> {
    prefix: &'a str,
    pub list: Vec<ConfigProblem>,
}

impl<'a> Problems<'a> {
    pub fn new(prefix: &'a str) -> Self {
        Problems {
            prefix,
            list: Vec::new(),
        }
    }

    /// A problem with `<prefix>.<key>`.
    pub fn add(&mut self, key: &str, message: impl Into<String>) {
        let key = if key.is_empty() {
            self.prefix.to_string()
        } else if self.prefix.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.prefix)
        };
        self.list.push(problem(key, message));
    }

    /// `value` must be a finite number of at least `min`.
    pub fn at_least(&mut self, key: &str, value: f64, min: f64) {
        if !(value.is_finite() && value >= min) {
            self.add(key, format!("must be at least {min}, got {value}"));
        }
    }

    /// `value` must be a finite number above 0.
    pub fn positive(&mut self, key: &str, value: f64) {
        if !(value.is_finite() && value > 0.0) {
            self.add(key, format!("must be a positive number, got {value}"));
        }
    }

    /// A count that must not be 0.
    pub fn nonzero(&mut self, key: &str, value: u64) {
        if value == 0 {
            self.add(key, "must be at least 1");
        }
    }

    pub fn into_vec(self) -> Vec<ConfigProblem> {
        self.list
    }
}

/// A relative file is relative to the config file, as operators expect.
pub fn resolve_relative(file: &Path, config_dir: &Path) -> PathBuf {
    if file.is_relative() {
        config_dir.join(file)
    } else {
        file.to_path_buf()
    }
}

/// [`resolve_relative`] on an optional file, in place.
pub fn resolve_in_place(file: &mut Option<PathBuf>, config_dir: &Path) {
    if let Some(f) = file.as_mut() {
        *f = resolve_relative(f, config_dir);
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
