//! `[database]`: steward's own database, and whether `serve` could open it.

use serde::{Deserialize, Serialize};

pub use crate::settings::{redact_url, DatabaseUrl};
use crate::settings::{ConfigProblem, Problems, Section};

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

impl Section for DatabaseSettings {
    fn validate(&self, key_prefix: &str) -> Vec<ConfigProblem> {
        let mut p = Problems::new(key_prefix);
        let url = self.url.expose();
        if !(url.starts_with("sqlite:")
            || url.starts_with("mysql://")
            || url.starts_with("mariadb://"))
        {
            p.add(
                "url",
                format!(
                    "{} is neither sqlite:// nor mysql:// (mariadb:// is accepted too)",
                    self.url
                ),
            );
        }
        if self.max_connections == 0 {
            p.add("max_connections", "must be at least 1");
        }
        p.into_vec()
    }
}

impl DatabaseSettings {
    /// What `serve` would meet opening the database: a URL sqlx cannot parse, a SQLite file
    /// that does not exist without `?mode=rwc`, a directory it cannot be created in, a file it
    /// cannot write. Touches nothing (a probe file is created and removed at once).
    pub fn check_openable(&self, key_prefix: &str) -> Vec<ConfigProblem> {
        let mut p = Problems::new(key_prefix);
        let url = self.url.expose();
        let result = if let Some(rest) = url.strip_prefix("mariadb://") {
            mysql_options(&format!("mysql://{rest}"))
        } else if url.starts_with("mysql://") {
            mysql_options(url)
        } else if url.starts_with("sqlite:") {
            sqlite_openable(url)
        } else {
            Ok(()) // `validate` names the scheme
        };
        if let Err(m) = result {
            p.add("url", format!("{}: {m}", self.url));
        }
        p.into_vec()
    }
}

fn mysql_options(url: &str) -> Result<(), String> {
    use std::str::FromStr;
    sqlx::mysql::MySqlConnectOptions::from_str(url)
        .map(|_| ())
        .map_err(|e| format!("is not a MySQL/MariaDB URL steward can use: {e}"))
}

fn sqlite_openable(url: &str) -> Result<(), String> {
    use std::str::FromStr;
    let options = sqlx::sqlite::SqliteConnectOptions::from_str(url)
        .map_err(|e| format!("is not a SQLite URL steward can use: {e}"))?;
    let file = options.get_filename();
    if file.as_os_str().is_empty() || file.as_os_str() == ":memory:" || url.contains("mode=memory")
    {
        return Ok(());
    }
    let query = url.split_once('?').map_or("", |(_, q)| q);
    let mode = query
        .split('&')
        .find_map(|kv| kv.strip_prefix("mode="))
        .unwrap_or("rw");
    if file.exists() {
        let write = mode != "ro";
        return std::fs::OpenOptions::new()
            .read(true)
            .write(write)
            .open(file)
            .map(|_| ())
            .map_err(|e| {
                format!(
                    "cannot open {} for {}: {e}",
                    file.display(),
                    if write { "writing" } else { "reading" }
                )
            });
    }
    if mode != "rwc" {
        return Err(format!(
            "{} does not exist and the URL does not let steward create it; add ?mode=rwc to the URL, or create the file",
            file.display()
        ));
    }
    let dir = match file.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    if !dir.is_dir() {
        return Err(format!(
            "the directory {} of {} does not exist; create it first",
            dir.display(),
            file.display()
        ));
    }
    let probe = dir.join(format!(".steward-config-check-{}", std::process::id()));
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
    {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
            Ok(())
        }
        Err(e) => Err(format!(
            "cannot create {} in {}: {e}; give steward's user write access to that directory",
            file.display(),
            dir.display()
        )),
    }
}
