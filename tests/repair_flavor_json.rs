//! The flavor JSON rewrite of the inventory repair keeps every field steward does not own:
//! Nova's embedded flavors (`instance_extra.flavor`) and request specs, with any fields, any
//! values, `old`/`new` absent, null or present, round-trip with only `extra_specs` changed.

use std::collections::BTreeMap;

use proptest::prelude::*;
use serde_json::{json, Map, Value};
use steward::novadb::{InstanceFlavors, RequestSpecPrimitive};
use steward::repair::plan::target_specs;

/// The `cur` flavor exactly as Nova 34's objects wrote it (PEERS.md).
const NOVA_WROTE: &str = r#"{"cur": {"nova_object.name": "Flavor", "nova_object.namespace": "nova", "nova_object.version": "1.2",
 "nova_object.data": {"id": 1, "name": "m1.gold", "memory_mb": 2048, "vcpus": 2, "root_gb": 10,
   "ephemeral_gb": 0, "flavorid": "gold", "swap": 0, "rxtx_factor": 1.0, "vcpu_weight": 0,
   "disabled": false, "is_public": true,
   "extra_specs": {"resources:CUSTOM_GOLD": "1", "hw:cpu_policy": "dedicated"},
   "projects": [], "description": null, "created_at": "2026-11-22T10:09:22Z",
   "updated_at": null, "deleted_at": null, "deleted": false}},
 "old": null, "new": null}"#;

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        (-1e9f64..1e9).prop_map(|f| json!(f)),
        "[ -~]{0,12}".prop_map(Value::String),
    ]
}

fn value() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-z_.]{1,10}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Field names steward owns or the wrapper types read, kept out of the random extras.
fn free_key() -> impl Strategy<Value = String> {
    "[a-z_.]{1,14}".prop_filter("not a field steward reads", |k| {
        !matches!(
            k.as_str(),
            "extra_specs" | "nova_object.data" | "cur" | "old" | "new" | "flavor"
        )
    })
}

fn extras() -> impl Strategy<Value = Map<String, Value>> {
    prop::collection::btree_map(free_key(), value(), 0..6).prop_map(|m| m.into_iter().collect())
}

fn flavor() -> impl Strategy<Value = Value> {
    (
        extras(),
        extras(),
        prop::option::of(prop::collection::btree_map(
            "[a-z:_A-Z]{1,16}",
            "[0-9a-z]{0,4}",
            0..5,
        )),
    )
        .prop_map(|(outer, mut data, specs)| {
            if let Some(s) = specs {
                data.insert("extra_specs".into(), json!(s));
            }
            let mut o = outer;
            o.insert("nova_object.data".into(), Value::Object(data));
            Value::Object(o)
        })
}

/// absent, null, or a flavor.
fn slot() -> impl Strategy<Value = Option<Value>> {
    prop_oneof![Just(None), Just(Some(Value::Null)), flavor().prop_map(Some)]
}

/// Drop `extra_specs` from every flavor in a document, for comparing what steward must keep.
fn without_specs(mut v: Value) -> Value {
    fn strip(f: &mut Value) {
        if let Some(d) = f.get_mut("nova_object.data").and_then(Value::as_object_mut) {
            d.remove("extra_specs");
        }
    }
    if let Some(o) = v.as_object_mut() {
        for k in ["cur", "old", "new"] {
            if let Some(f) = o.get_mut(k) {
                strip(f);
            }
        }
        if let Some(f) = o
            .get_mut("nova_object.data")
            .and_then(|d| d.get_mut("flavor"))
        {
            strip(f);
        }
    }
    v
}

proptest! {
    #[test]
    fn instance_flavor_rewrite_keeps_every_other_field(
        cur in flavor(), old in slot(), new in slot(), top in extras()
    ) {
        let mut doc = top;
        doc.insert("cur".into(), cur);
        if let Some(o) = old { doc.insert("old".into(), o); }
        if let Some(n) = new { doc.insert("new".into(), n); }
        let original = Value::Object(doc);
        let text = original.to_string();

        // Untouched: the typed form gives back the same JSON.
        let parsed = InstanceFlavors::parse(&text).unwrap();
        prop_assert_eq!(serde_json::from_str::<Value>(&parsed.to_text()).unwrap(), original.clone());

        // Rewritten: only extra_specs differ, and each present flavor carries the target.
        let target = target_specs("CUSTOM_GOLD");
        let mut rewritten = parsed.clone();
        for f in rewritten.all_mut() {
            f.set_extra_specs(&target);
        }
        let out: Value = serde_json::from_str(&rewritten.to_text()).unwrap();
        prop_assert_eq!(without_specs(out.clone()), without_specs(original.clone()));
        for k in ["cur", "old", "new"] {
            let Some(f) = out.get(k).filter(|f| !f.is_null()) else { continue };
            let specs = &f["nova_object.data"]["extra_specs"];
            let before = original[k]["nova_object.data"].get("extra_specs").cloned()
                .unwrap_or(json!({}));
            for (key, value) in before.as_object().unwrap() {
                if !target.contains_key(key) {
                    prop_assert_eq!(&specs[key], value);
                }
            }
            for (key, value) in &target {
                prop_assert_eq!(&specs[key], &json!(value));
            }
        }
        // Idempotent: a second rewrite changes nothing.
        let mut again = InstanceFlavors::parse(&rewritten.to_text()).unwrap();
        prop_assert!(!again.all_mut().any(|f| f.set_extra_specs(&target)));
    }

    #[test]
    fn request_spec_rewrite_keeps_every_other_field(
        f in flavor(), data in extras(), outer in extras()
    ) {
        let mut d = data;
        d.insert("flavor".into(), f);
        let mut o = outer;
        o.insert("nova_object.data".into(), Value::Object(d));
        let original = Value::Object(o);
        let mut parsed = RequestSpecPrimitive::parse(&original.to_string()).unwrap();
        parsed.flavor_mut().unwrap().set_extra_specs(&target_specs("CUSTOM_X"));
        let out: Value = serde_json::from_str(&parsed.to_text()).unwrap();
        prop_assert_eq!(without_specs(out), without_specs(original));
    }
}

#[test]
fn novas_own_flavor_json_keeps_its_fields_and_gains_the_targets() {
    let parsed = InstanceFlavors::parse(NOVA_WROTE).unwrap();
    let cur = parsed.cur().unwrap();
    assert_eq!(cur.flavorid().as_deref(), Some("gold"));
    assert_eq!(cur.name(), Some("m1.gold"));
    let mut rewritten = parsed.clone();
    for f in rewritten.all_mut() {
        assert!(f.set_extra_specs(&target_specs("CUSTOM_GOLD")));
    }
    let out: Value = serde_json::from_str(&rewritten.to_text()).unwrap();
    let data = &out["cur"]["nova_object.data"];
    assert_eq!(data["rxtx_factor"], json!(1.0));
    assert_eq!(data["description"], Value::Null);
    assert_eq!(data["projects"], json!([]));
    assert_eq!(out["old"], Value::Null);
    let specs: BTreeMap<String, String> =
        serde_json::from_value(data["extra_specs"].clone()).unwrap();
    assert_eq!(specs["hw:cpu_policy"], "dedicated");
    assert_eq!(specs["resources:VCPU"], "0");
    assert_eq!(specs["resources:CUSTOM_GOLD"], "1");
    let original: Value = serde_json::from_str(NOVA_WROTE).unwrap();
    assert_eq!(without_specs(out), without_specs(original));
}

#[test]
fn not_novas_json_is_an_error_not_a_panic() {
    for text in [
        "",
        "[]",
        "{\"cur\": 3}",
        "{\"cur\": {\"nova_object.data\": 1}}",
        "nul",
    ] {
        assert!(InstanceFlavors::parse(text).is_err(), "{text:?}");
    }
    assert!(RequestSpecPrimitive::parse("{}").is_err());
}
