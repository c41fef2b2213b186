//! Named scheduling profiles: plugins composed with weights, as kube-scheduler profiles.
//! Built from configuration (`[profiles.NAME.plugins.PLUGIN]` tables) on top of built-ins.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use super::plugins;
use super::Plugin;

/// The profiles every steward has. Configuration is layered over them key by key (built-ins,
/// then the file, then `STEWARD__PROFILES__...` variables); `enabled = false` drops a plugin.
pub const BUILTIN_PROFILES_TOML: &str = r#"
[profiles.default]
description = "Balanced: stay in the AZ, avoid steal, spread by free capacity, soft role cap"
[profiles.default.plugins.same_az]
[profiles.default.plugins.steal]
weight = 2.0
[profiles.default.plugins.capacity_spread]
weight = 1.0
[profiles.default.plugins.role_spread]
weight = 1.0
max_per_host = 3
mode = "soft"

[profiles.web]
description = "Latency-sensitive services: steal-averse, spread across hosts and AZs"
[profiles.web.plugins.same_az]
[profiles.web.plugins.steal]
weight = 4.0
saturation = 0.15
[profiles.web.plugins.role_spread]
weight = 2.0
max_per_host = 2
mode = "hard"
[profiles.web.plugins.az_spread]
weight = 2.0
max_skew = 1
when_unsatisfiable = "ScheduleAnyway"
[profiles.web.plugins.capacity_spread]
weight = 1.0

[profiles.batch]
description = "Throughput work: pack hosts to keep others free, tolerate some steal"
[profiles.batch.plugins.same_az]
[profiles.batch.plugins.capacity_pack]
weight = 2.0
[profiles.batch.plugins.steal]
weight = 0.5
saturation = 0.5
"#;

/// A profile as configured: a description and one parameter table per plugin.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ProfileSpec {
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub plugins: BTreeMap<String, serde_json::Value>,
}

/// The built-in profile specs.
pub fn builtin_profiles() -> BTreeMap<String, ProfileSpec> {
    #[derive(Deserialize)]
    struct Doc {
        profiles: BTreeMap<String, ProfileSpec>,
    }
    toml::from_str::<Doc>(BUILTIN_PROFILES_TOML)
        .expect("built-in profiles are valid TOML")
        .profiles
}

#[derive(Debug)]
pub struct WeightedPlugin {
    pub plugin: Box<dyn Plugin>,
    pub weight: f64,
    /// The parameters as configured (without `weight`), to show operators.
    pub params: serde_json::Value,
}

#[derive(Debug)]
pub struct Profile {
    pub name: String,
    pub description: String,
    /// In filter order (see `plugins::NAMES`).
    pub plugins: Vec<WeightedPlugin>,
}

/// A profile setting that cannot be used, named by its config key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfileError {
    pub key: String,
    pub message: String,
}

impl fmt::Display for ProfileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

impl Profile {
    pub fn build(name: &str, spec: &ProfileSpec) -> Result<Profile, Vec<ProfileError>> {
        let mut errors = Vec::new();
        let mut plugins = Vec::new();
        for (plugin_name, table) in &spec.plugins {
            let key = format!("profiles.{name}.plugins.{plugin_name}");
            let mut params = match table {
                serde_json::Value::Object(m) => m.clone(),
                serde_json::Value::Null => Default::default(),
                other => {
                    errors.push(ProfileError {
                        key,
                        message: format!("must be a table of parameters, got {other}"),
                    });
                    continue;
                }
            };
            match params.remove("enabled").map(|v| flag(&v)) {
                None | Some(Ok(true)) => {}
                Some(Ok(false)) => continue,
                Some(Err(message)) => {
                    errors.push(ProfileError {
                        key: format!("{key}.enabled"),
                        message,
                    });
                    continue;
                }
            }
            let weight = match params.remove("weight") {
                None => Ok(1.0),
                Some(v) => weight_of(&v),
            };
            let weight = match weight {
                Ok(w) => w,
                Err(message) => {
                    errors.push(ProfileError {
                        key: format!("{key}.weight"),
                        message,
                    });
                    continue;
                }
            };
            let params = serde_json::Value::Object(params);
            match plugins::build(plugin_name, params.clone()) {
                Ok(plugin) => plugins.push(WeightedPlugin {
                    plugin,
                    weight,
                    params,
                }),
                Err(message) => errors.push(ProfileError { key, message }),
            }
        }
        if spec.plugins.is_empty() {
            errors.push(ProfileError {
                key: format!("profiles.{name}.plugins"),
                message: format!(
                    "a profile needs at least one plugin; known plugins: {}",
                    plugins::NAMES.join(", ")
                ),
            });
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        let rank = |p: &WeightedPlugin| plugins::NAMES.iter().position(|n| *n == p.plugin.name());
        plugins.sort_by_key(rank);
        Ok(Profile {
            name: name.to_string(),
            description: spec.description.clone().unwrap_or_default(),
            plugins,
        })
    }
}

fn flag(v: &serde_json::Value) -> Result<bool, String> {
    match v {
        serde_json::Value::Bool(b) => Ok(*b),
        serde_json::Value::String(s) if s == "true" => Ok(true),
        serde_json::Value::String(s) if s == "false" => Ok(false),
        _ => Err(format!("must be true or false, got {v}")),
    }
}

fn weight_of(v: &serde_json::Value) -> Result<f64, String> {
    // Environment overrides arrive as strings.
    let w = match v {
        serde_json::Value::Number(n) => n.as_f64(),
        serde_json::Value::String(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    };
    match w {
        Some(w) if w.is_finite() && w >= 0.0 => Ok(w),
        _ => Err(format!("must be a finite number >= 0, got {v}")),
    }
}

/// Every profile by name, and which one a request gets when it names none.
#[derive(Debug)]
pub struct ProfileSet {
    pub profiles: BTreeMap<String, Profile>,
    pub default: String,
}

impl ProfileSet {
    /// Build every profile; `default` must name one of them.
    pub fn build(
        specs: &BTreeMap<String, ProfileSpec>,
        default: &str,
    ) -> Result<ProfileSet, Vec<ProfileError>> {
        let mut errors = Vec::new();
        let mut profiles = BTreeMap::new();
        for (name, spec) in specs {
            match Profile::build(name, spec) {
                Ok(p) => {
                    profiles.insert(name.clone(), p);
                }
                Err(mut e) => errors.append(&mut e),
            }
        }
        if !specs.contains_key(default) {
            errors.push(ProfileError {
                key: "scheduling.default_profile".into(),
                message: format!(
                    "names profile {default:?}, which does not exist; profiles: {}",
                    specs.keys().cloned().collect::<Vec<_>>().join(", ")
                ),
            });
        }
        if errors.is_empty() {
            Ok(ProfileSet {
                profiles,
                default: default.to_string(),
            })
        } else {
            Err(errors)
        }
    }

    /// The profile a request asks for: flavor extra spec `steward:profile`, else scheduler hint
    /// `steward_profile`, else the default. `Err` names the unknown profile.
    pub fn select(
        &self,
        extra_specs: &BTreeMap<String, String>,
        hints: &BTreeMap<String, String>,
    ) -> Result<&Profile, String> {
        let name = extra_specs
            .get("steward:profile")
            .or_else(|| hints.get("steward_profile"))
            .map(|s| s.trim())
            .filter(|s| !s.is_empty())
            .unwrap_or(&self.default);
        self.profiles.get(name).ok_or_else(|| {
            format!(
                "profile {name:?} does not exist; profiles: {}",
                self.profiles.keys().cloned().collect::<Vec<_>>().join(", ")
            )
        })
    }
}
