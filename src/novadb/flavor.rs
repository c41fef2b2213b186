//! Nova's serialised flavors as typed JSON: `instance_extra.flavor` (`cur`, `old`, `new`) and the
//! flavor inside `request_specs.spec`. Steward owns only `extra_specs`; every other field, known
//! or not, is carried through untouched (flattened into `other`), so a rewrite changes nothing
//! Nova wrote but the keys steward sets.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

/// A `Flavor` as `obj_to_primitive()` writes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FlavorPrimitive {
    #[serde(rename = "nova_object.data")]
    pub data: FlavorData,
    /// `nova_object.name`, `.namespace`, `.version`, `.changes`, ...
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FlavorData {
    /// Absent when the flavor was serialised without its extra specs loaded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extra_specs: Option<BTreeMap<String, Value>>,
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

impl FlavorPrimitive {
    /// The flavor's user-facing id (`flavorid`), when it has one.
    pub fn flavorid(&self) -> Option<String> {
        match self.data.other.get("flavorid") {
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Number(n)) => Some(n.to_string()),
            _ => None,
        }
    }

    pub fn name(&self) -> Option<&str> {
        self.data.other.get("name").and_then(Value::as_str)
    }

    /// Extra specs as strings (Nova's type); a non-string value keeps its JSON text.
    pub fn extra_specs(&self) -> BTreeMap<String, String> {
        self.data
            .extra_specs
            .iter()
            .flatten()
            .map(|(k, v)| {
                let v = match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                (k.clone(), v)
            })
            .collect()
    }

    /// Set `specs` (key -> value) in the extra specs, creating them if absent. True if anything
    /// changed.
    pub fn set_extra_specs(&mut self, specs: &BTreeMap<String, String>) -> bool {
        let current = self.data.extra_specs.get_or_insert_with(BTreeMap::new);
        let mut changed = false;
        for (k, v) in specs {
            let want = Value::String(v.clone());
            if current.get(k) != Some(&want) {
                current.insert(k.clone(), want);
                changed = true;
            }
        }
        changed
    }

    /// Put back exactly the extra specs of `before` (rollback of one flavor).
    pub fn restore_extra_specs(&mut self, before: &FlavorPrimitive) {
        self.data.extra_specs = before.data.extra_specs.clone();
    }
}

/// Deserialize a field that is present (possibly `null`) as `Some(..)`, so that absent and
/// `null` stay different on the way back out.
fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// `instance_extra.flavor`: `{"cur": Flavor, "old": Flavor|null, "new": Flavor|null}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InstanceFlavors {
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub cur: Option<Option<FlavorPrimitive>>,
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub old: Option<Option<FlavorPrimitive>>,
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub new: Option<Option<FlavorPrimitive>>,
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

impl InstanceFlavors {
    pub fn parse(text: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(text)
    }

    pub fn to_text(&self) -> String {
        // Serialising maps of strings and JSON values cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    pub fn cur(&self) -> Option<&FlavorPrimitive> {
        self.cur.as_ref().and_then(Option::as_ref)
    }

    /// `cur`, then `old` and `new` when present (a resize in flight).
    pub fn all_mut(&mut self) -> impl Iterator<Item = &mut FlavorPrimitive> {
        [&mut self.cur, &mut self.old, &mut self.new]
            .into_iter()
            .filter_map(|s| s.as_mut().and_then(Option::as_mut))
    }

    pub fn all(&self) -> impl Iterator<Item = &FlavorPrimitive> {
        [&self.cur, &self.old, &self.new]
            .into_iter()
            .filter_map(|s| s.as_ref().and_then(Option::as_ref))
    }
}

/// `request_specs.spec`: a `RequestSpec` primitive whose data holds a `flavor`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequestSpecPrimitive {
    #[serde(rename = "nova_object.data")]
    pub data: RequestSpecData,
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequestSpecData {
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub flavor: Option<Option<FlavorPrimitive>>,
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

impl RequestSpecPrimitive {
    pub fn parse(text: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(text)
    }

    pub fn to_text(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    pub fn flavor(&self) -> Option<&FlavorPrimitive> {
        self.data.flavor.as_ref().and_then(Option::as_ref)
    }

    pub fn flavor_mut(&mut self) -> Option<&mut FlavorPrimitive> {
        self.data.flavor.as_mut().and_then(Option::as_mut)
    }
}
