//! `[openstack]`: which cloud steward itself uses. Whether that cloud must load depends on
//! other sections (keystone auth, a Nova cluster source): `config` checks it there.

use serde::{Deserialize, Serialize};

use crate::settings::{ConfigProblem, Section};

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct OpenStackSettings {
    /// The cloud in clouds.yaml (as `--os-cloud`); unset: `OS_CLOUD`, else `OS_*` variables.
    pub cloud: Option<String>,
}

impl Section for OpenStackSettings {
    fn validate(&self, _key_prefix: &str) -> Vec<ConfigProblem> {
        Vec::new()
    }
}
