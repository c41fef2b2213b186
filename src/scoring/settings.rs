//! `[roles]` and `[scheduling]`: which metadata key names a VM's role, and the profile used
//! when a request names none (`[profiles]` are `profile::ProfileSpec`s).

use serde::Deserialize;

use crate::settings::{ConfigProblem, Problems, Section};

#[derive(Debug, Clone, Deserialize, PartialEq)]
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

#[derive(Debug, Clone, Deserialize, PartialEq)]
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

impl Section for RoleSettings {
    fn validate(&self, key_prefix: &str) -> Vec<ConfigProblem> {
        let mut p = Problems::new(key_prefix);
        if self.metadata_key.trim().is_empty() {
            p.add("metadata_key", "must not be empty");
        }
        p.into_vec()
    }
}

/// `default_profile` is checked where the profiles are built (`ProfileSet::build`).
impl Section for SchedulingSettings {
    fn validate(&self, _key_prefix: &str) -> Vec<ConfigProblem> {
        Vec::new()
    }
}

/// `[profiles]` are checked as the profile set is built (`ProfileSet::build`), which names
/// each bad plugin and parameter by its key.
impl Section for std::collections::BTreeMap<String, super::ProfileSpec> {
    fn validate(&self, _key_prefix: &str) -> Vec<ConfigProblem> {
        Vec::new()
    }
}
