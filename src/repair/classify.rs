//! Resource classes from hardware facts: pure. Rules (TOML) match on an Ironic node's
//! `properties`, its capabilities (`properties.capabilities`, `k:v,k:v`) and its inspection
//! inventory; each gives a class. Per node without a class: the class, the rule that matched and
//! the facts behind it, or the node listed when no rule or more than one matches (never
//! guessed). Then the flavors that select those nodes get the class's extra specs.
//!
//! ```toml
//! [[rule]]
//! name = "gold"
//! class = "baremetal-gold"
//! [rule.match]
//! "properties.cpu_arch" = "x86_64"
//! "capabilities.boot_mode" = "uefi"
//! "inventory.system_vendor.manufacturer" = "Dell Inc."
//! "inventory.cpu.model_name" = { contains = "Gold 6248" }
//! "inventory.memory.physical_mb" = { min = 100000, max = 200000 }
//! "inventory.disks.#" = 2                       # `#`: how many items a list has
//! ```

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::plan::{missing_specs, normalize_rc_name, target_specs, Step};

/// How one fact is matched.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum Matcher {
    /// A table: every given test must hold (tried first: a table is also a TOML value).
    Test(Test),
    /// Equal (numbers, strings and booleans compared by their text).
    Equals(toml::Value),
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Test {
    pub contains: Option<String>,
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub one_of: Option<Vec<toml::Value>>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    pub name: String,
    /// Ironic's class to set (`baremetal-gold`; Nova names it `CUSTOM_BAREMETAL_GOLD`).
    pub class: String,
    #[serde(rename = "match")]
    pub matches: BTreeMap<String, Matcher>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rules {
    #[serde(rename = "rule", default)]
    pub rules: Vec<Rule>,
}

impl Rules {
    /// Parse and check a rules file; every problem names the rule and the key.
    pub fn parse(text: &str) -> Result<Rules, String> {
        let rules: Rules = toml::from_str(text).map_err(|e| format!("rules: {e}"))?;
        if rules.rules.is_empty() {
            return Err("rules: no [[rule]]; each has name, class and [rule.match]".into());
        }
        let mut names = BTreeSet::new();
        for r in &rules.rules {
            if !names.insert(&r.name) {
                return Err(format!("rules: two rules are named {:?}", r.name));
            }
            if r.class.trim().is_empty() || r.class.len() > 80 {
                return Err(format!(
                    "rule {:?}: class must be 1 to 80 characters (Ironic's limit)",
                    r.name
                ));
            }
            if r.matches.is_empty() {
                return Err(format!("rule {:?}: [rule.match] is empty", r.name));
            }
            for key in r.matches.keys() {
                let root = key.split('.').next().unwrap_or("");
                if !matches!(root, "properties" | "capabilities" | "inventory")
                    || !key.contains('.')
                {
                    return Err(format!(
                        "rule {:?}: match key {key:?} must start with properties., \
                         capabilities. or inventory.",
                        r.name
                    ));
                }
            }
        }
        Ok(rules)
    }
}

/// What steward knows of one node's hardware.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Hardware {
    pub uuid: String,
    pub name: Option<String>,
    pub resource_class: Option<String>,
    pub provision_state: Option<String>,
    pub instance_uuid: Option<String>,
    /// Ironic's `properties`.
    pub properties: Value,
    /// The inspection inventory (`GET /v1/nodes/{id}/inventory`'s `inventory`), if any.
    pub inventory: Option<Value>,
}

/// `properties.capabilities` (`"boot_mode:uefi,raid:1"`) as a map.
fn capabilities(properties: &Value) -> BTreeMap<String, Value> {
    let text = properties
        .get("capabilities")
        .and_then(Value::as_str)
        .unwrap_or("");
    text.split(',')
        .filter_map(|kv| kv.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), Value::String(v.trim().to_string())))
        .collect()
}

/// The fact a match key names, if the node has it.
pub fn fact(hw: &Hardware, key: &str) -> Option<Value> {
    let mut parts = key.split('.');
    let root = parts.next()?;
    let mut cur: Value = match root {
        "properties" => hw.properties.clone(),
        "capabilities" => Value::Object(capabilities(&hw.properties).into_iter().collect()),
        "inventory" => hw.inventory.clone()?,
        _ => return None,
    };
    for p in parts {
        cur = match (&cur, p) {
            (Value::Array(a), "#") => Value::from(a.len()),
            (Value::Array(a), i) => a.get(i.parse::<usize>().ok()?)?.clone(),
            (Value::Object(m), k) => m.get(k)?.clone(),
            _ => return None,
        };
    }
    Some(cur)
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn toml_text(v: &toml::Value) -> String {
    match v {
        toml::Value::String(s) => s.clone(),
        toml::Value::Integer(i) => i.to_string(),
        toml::Value::Float(f) => f.to_string(),
        toml::Value::Boolean(b) => b.to_string(),
        other => other.to_string(),
    }
}

fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// Whether `value` passes `m`.
pub fn passes(m: &Matcher, value: &Value) -> bool {
    match m {
        Matcher::Equals(want) => {
            let (a, b) = (text(value), toml_text(want));
            a == b || matches!((number(value), b.parse::<f64>()), (Some(x), Ok(y)) if x == y)
        }
        Matcher::Test(t) => {
            let n = number(value);
            t.contains
                .as_ref()
                .is_none_or(|c| text(value).contains(c.as_str()))
                && t.min.is_none_or(|min| n.is_some_and(|x| x >= min))
                && t.max.is_none_or(|max| n.is_some_and(|x| x <= max))
                && t.one_of.as_ref().is_none_or(|list| {
                    list.iter()
                        .any(|w| passes(&Matcher::Equals(w.clone()), value))
                })
        }
    }
}

/// The facts behind a rule's match (key -> value), or None when it does not match.
fn matched(rule: &Rule, hw: &Hardware) -> Option<BTreeMap<String, Value>> {
    let mut facts = BTreeMap::new();
    for (key, m) in &rule.matches {
        let v = fact(hw, key)?;
        if !passes(m, &v) {
            return None;
        }
        facts.insert(key.clone(), v);
    }
    Some(facts)
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// One rule matched: the node gets its class.
    Classified,
    /// The node has a class already; `class` is what a rule would give (if any).
    HasClass,
    /// No rule matched.
    Unmatched,
    /// More than one rule matched: listed, not guessed.
    Ambiguous,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NodeClass {
    pub node: String,
    pub name: Option<String>,
    pub provision_state: Option<String>,
    pub verdict: Verdict,
    /// Ironic's class to set (or the one a rule would give a classified node).
    pub class: Option<String>,
    /// The rules that matched.
    pub rules: Vec<String>,
    /// The facts behind the match (key -> value), for the one rule that matched.
    pub facts: BTreeMap<String, Value>,
    pub note: Option<String>,
}

/// A flavor as the Nova API shows it, with the instances booted from it on which nodes.
#[derive(Debug, Clone, PartialEq)]
pub struct FlavorUse {
    pub id: String,
    pub name: String,
    pub extra_specs: BTreeMap<String, String>,
    /// Nodes whose instances were booted from it.
    pub nodes: BTreeSet<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ClassifyPlan {
    pub nodes: Vec<NodeClass>,
    /// In order: the node classes set through Ironic, then the flavors' extra specs.
    pub steps: Vec<Step>,
    /// Flavors that select nodes of more than one class: not written.
    pub conflicts: Vec<String>,
}

impl ClassifyPlan {
    pub fn count(&self, v: &Verdict) -> usize {
        self.nodes.iter().filter(|n| &n.verdict == v).count()
    }
}

/// Classify every node of `hardware`; write steps for the classified ones.
pub fn classify(rules: &Rules, hardware: &[Hardware], flavors: &[FlavorUse]) -> ClassifyPlan {
    let mut plan = ClassifyPlan::default();
    for hw in hardware {
        let hits: Vec<(&Rule, BTreeMap<String, Value>)> = rules
            .rules
            .iter()
            .filter_map(|r| matched(r, hw).map(|f| (r, f)))
            .collect();
        plan.nodes.push(node_class(hw, hits));
    }
    let classes: BTreeMap<&str, &str> = plan
        .nodes
        .iter()
        .filter(|n| n.verdict == Verdict::Classified)
        .filter_map(|n| Some((n.node.as_str(), n.class.as_deref()?)))
        .collect();
    for (node, class) in &classes {
        plan.steps.push(Step::SetNodeResourceClass {
            node: node.to_string(),
            class: class.to_string(),
        });
    }
    for f in flavors {
        let wanted: BTreeSet<&str> = f
            .nodes
            .iter()
            .filter_map(|n| classes.get(n.as_str()).copied())
            .collect();
        match wanted.len() {
            0 => {}
            1 => {
                let class = normalize_rc_name(wanted.iter().next().copied().unwrap_or(""));
                let missing = missing_specs(&f.extra_specs, &target_specs(&class));
                if !missing.is_empty() {
                    plan.steps.push(Step::SetFlavorExtraSpecs {
                        flavor_id: f.id.clone(),
                        flavor_name: f.name.clone(),
                        specs: missing,
                    });
                }
            }
            _ => plan.conflicts.push(format!(
                "flavor {} ({}) selects nodes of classes {}: not written; split the flavor",
                f.id,
                f.name,
                wanted.into_iter().collect::<Vec<_>>().join(", ")
            )),
        }
    }
    plan
}

fn node_class(hw: &Hardware, hits: Vec<(&Rule, BTreeMap<String, Value>)>) -> NodeClass {
    let has = hw
        .resource_class
        .as_deref()
        .is_some_and(|c| !c.trim().is_empty());
    let mut n = NodeClass {
        node: hw.uuid.clone(),
        name: hw.name.clone(),
        provision_state: hw.provision_state.clone(),
        verdict: Verdict::Unmatched,
        class: None,
        rules: hits.iter().map(|(r, _)| r.name.clone()).collect(),
        facts: BTreeMap::new(),
        note: None,
    };
    if has {
        n.verdict = Verdict::HasClass;
        n.class = hw.resource_class.clone();
        if let [(r, _)] = hits.as_slice() {
            if Some(&r.class) != hw.resource_class.as_ref() {
                n.note = Some(format!(
                    "rule {} gives {}; left as is (Ironic refuses to change a class outside \
                     enroll, inspecting, inspect wait, manageable and available)",
                    r.name, r.class
                ));
            }
        }
        return n;
    }
    match hits.len() {
        0 => {
            n.note = Some("no rule matches: add one, or set the class by hand".into());
        }
        1 => {
            let (r, facts) = hits.into_iter().next().unwrap_or_else(|| unreachable!());
            n.verdict = Verdict::Classified;
            n.class = Some(r.class.clone());
            n.facts = facts;
            if hw.provision_state.as_deref() == Some("active") {
                n.note = Some(
                    "active: Ironic lets a node without a class get one in any state; Nova's \
                     Ironic driver then reports the custom class and `steward repair apply` \
                     moves the instance onto it"
                        .into(),
                );
            }
        }
        _ => {
            n.verdict = Verdict::Ambiguous;
            n.note = Some(format!(
                "{} rules match ({}): not guessed; make the rules exclusive",
                n.rules.len(),
                n.rules.join(", ")
            ));
        }
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const RULES: &str = r#"
[[rule]]
name = "gold"
class = "baremetal-gold"
[rule.match]
"properties.cpu_arch" = "x86_64"
"capabilities.boot_mode" = "uefi"
"inventory.cpu.model_name" = { contains = "Gold" }
"inventory.memory.physical_mb" = { min = 100000 }
"inventory.disks.#" = 2

[[rule]]
name = "big-memory"
class = "baremetal-big"
[rule.match]
"properties.memory_mb" = { min = 500000 }
"#;

    fn hw(uuid: &str, memory: i64, model: &str, class: Option<&str>) -> Hardware {
        Hardware {
            uuid: uuid.into(),
            name: None,
            resource_class: class.map(Into::into),
            provision_state: Some("active".into()),
            instance_uuid: None,
            properties: json!({"cpu_arch": "x86_64", "memory_mb": memory,
                               "capabilities": "boot_mode:uefi,raid:1"}),
            inventory: Some(json!({"cpu": {"model_name": model},
                                   "memory": {"physical_mb": memory},
                                   "disks": [{"size": 1}, {"size": 2}]})),
        }
    }

    #[test]
    fn one_rule_classifies_two_are_listed_none_is_listed() {
        let rules = Rules::parse(RULES).unwrap();
        let nodes = [
            hw("a", 131072, "Xeon Gold 6248", None),
            hw("b", 786432, "Xeon Gold 6248", None),
            hw("c", 131072, "EPYC 7543", None),
            hw("d", 131072, "Xeon Gold 6248", Some("silver")),
        ];
        let flavors = [FlavorUse {
            id: "7".into(),
            name: "bm.gold".into(),
            extra_specs: BTreeMap::new(),
            nodes: ["a".to_string()].into(),
        }];
        let p = classify(&rules, &nodes, &flavors);
        let v: Vec<&Verdict> = p.nodes.iter().map(|n| &n.verdict).collect();
        assert_eq!(
            v,
            [
                &Verdict::Classified,
                &Verdict::Ambiguous,
                &Verdict::Unmatched,
                &Verdict::HasClass
            ]
        );
        assert_eq!(p.nodes[0].class.as_deref(), Some("baremetal-gold"));
        assert_eq!(p.nodes[0].facts["inventory.disks.#"], json!(2));
        assert_eq!(p.nodes[1].rules, ["gold", "big-memory"]);
        assert!(p.nodes[3].note.as_deref().unwrap().contains("left as is"));
        assert_eq!(
            p.steps,
            [
                Step::SetNodeResourceClass {
                    node: "a".into(),
                    class: "baremetal-gold".into()
                },
                Step::SetFlavorExtraSpecs {
                    flavor_id: "7".into(),
                    flavor_name: "bm.gold".into(),
                    specs: target_specs("CUSTOM_BAREMETAL_GOLD"),
                }
            ]
        );
    }

    #[test]
    fn bad_rules_name_the_rule_and_key() {
        assert!(Rules::parse("").unwrap_err().contains("no [[rule]]"));
        let e = Rules::parse("[[rule]]\nname = \"x\"\nclass = \"c\"\n[rule.match]\n\"cpu\" = 1\n")
            .unwrap_err();
        assert!(e.contains("\"x\"") && e.contains("\"cpu\""), "{e}");
    }
}
