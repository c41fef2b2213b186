//! `[repair]`: how `steward repair` reaches Nova's databases and how hard it pushes.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::settings::DatabaseUrl;
use crate::settings::{ConfigProblem, Problems, Section};

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

impl Section for RepairSettings {
    fn validate(&self, key_prefix: &str) -> Vec<ConfigProblem> {
        let mut p = Problems::new(key_prefix);
        if self.concurrency == 0 || self.concurrency > 64 {
            p.add(
                "concurrency",
                format!("must be 1 to 64, got {}", self.concurrency),
            );
        }
        if self.max_attempts == 0 {
            p.add("max_attempts", "must be at least 1");
        }
        let urls = self
            .api_database
            .iter()
            .map(|u| ("api_database".to_string(), u))
            .chain(
                self.cell_databases
                    .iter()
                    .map(|(k, u)| (format!("cell_databases.{k}"), u)),
            );
        for (key, url) in urls {
            if !(url.expose().starts_with("mysql://") || url.expose().starts_with("mariadb://")) {
                p.add(
                    &key,
                    format!(
                        "{} is not a mysql:// URL (Nova's databases are MySQL/MariaDB)",
                        url.redacted()
                    ),
                );
            }
        }
        p.into_vec()
    }
}
