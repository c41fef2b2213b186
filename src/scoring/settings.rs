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
    /// A move whose current AZ neither Nova's scheduler nor steward can tell.
    pub unknown_az: UnknownAz,
}

impl Default for SchedulingSettings {
    fn default() -> Self {
        SchedulingSettings {
            default_profile: "default".into(),
            unknown_az: UnknownAz::FailClosed,
        }
    }
}

/// What `same_az` does with a move whose current AZ cannot be told.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum UnknownAz {
    /// Refuse every host, each with a reason naming it and what to configure.
    #[default]
    FailClosed,
    /// Allow every AZ and mark the answer degraded.
    FailOpen,
}

impl UnknownAz {
    pub fn as_str(self) -> &'static str {
        match self {
            UnknownAz::FailClosed => "fail_closed",
            UnknownAz::FailOpen => "fail_open",
        }
    }

    /// What `steward config check` says a move of unknown AZ gets.
    pub fn describe(self) -> &'static str {
        match self {
            UnknownAz::FailClosed => "refused (scheduling.unknown_az = fail_closed)",
            UnknownAz::FailOpen => "allowed anywhere, degraded (scheduling.unknown_az = fail_open)",
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
