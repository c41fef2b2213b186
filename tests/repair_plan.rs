//! The repair planner over facts shaped like the real peers' answers: what is wrong per node
//! and the order of the steps that fix it (never one that meets placement.inventory.inuse).

use std::collections::BTreeMap;

use proptest::prelude::*;
use steward::repair::agree::disagreements;
use steward::repair::capacity::ConsumerKind;
use steward::repair::plan::{
    normalize_rc_name, plan, ConsumerFact, Copy, EmbeddedFlavor, Facts, FlavorFact, FlavorSizes,
    InstanceFact, InventoryFact, NodeFact, NodeStatus, ProviderFact, Selection, Step,
};

const GOLD: &str = "3e11afc1-5bb1-442a-84f0-445f47e52f84";
const INST: &str = "2ee3e369-0cdf-498d-b2b5-fef93d3d66e9";
const CELL1: &str = "c1c1c1c1-0000-4000-8000-000000000001";

fn specs(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn inv(total: i64) -> InventoryFact {
    InventoryFact {
        total,
        reserved: 0,
        max_unit: total,
    }
}

fn node(uuid: &str, rc: Option<&str>) -> NodeFact {
    NodeFact {
        uuid: uuid.into(),
        name: Some("bm-gold-1".into()),
        resource_class: rc.map(Into::into),
        instance_uuid: None,
        maintenance: false,
        provision_state: Some("active".into()),
        cell: Some(CELL1.into()),
    }
}

/// The StackHPC case: legacy inventory beside CUSTOM_GOLD, an instance using all four.
fn stackhpc() -> Facts {
    let legacy = specs(&[("resources:CUSTOM_GOLD", "1")]);
    let all4: BTreeMap<String, i64> = [
        ("VCPU", 64),
        ("MEMORY_MB", 131072),
        ("DISK_GB", 371),
        ("CUSTOM_GOLD", 1),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), *v))
    .collect();
    let flavor = |copy| EmbeddedFlavor {
        copy,
        flavorid: Some("bm.gold".into()),
        name: Some("bm.gold".into()),
        extra_specs: legacy.clone(),
        sizes: Some(FlavorSizes {
            vcpus: 64,
            memory_mb: 131072,
            root_gb: 371,
            ..FlavorSizes::default()
        }),
    };
    Facts {
        nodes: vec![node(GOLD, Some("GOLD"))],
        providers: [(
            GOLD.to_string(),
            ProviderFact {
                uuid: GOLD.into(),
                generation: 3,
                inventories: [
                    ("VCPU".to_string(), inv(64)),
                    ("MEMORY_MB".to_string(), inv(131072)),
                    ("DISK_GB".to_string(), inv(371)),
                    ("CUSTOM_GOLD".to_string(), inv(1)),
                ]
                .into_iter()
                .collect(),
                usages: all4.clone(),
                allocations: [(INST.to_string(), all4)].into_iter().collect(),
            },
        )]
        .into_iter()
        .collect(),
        instances: vec![InstanceFact {
            uuid: INST.into(),
            node: GOLD.into(),
            cell: CELL1.into(),
            vm_state: Some("active".into()),
            task_state: None,
            flavors: Ok(vec![flavor(Copy::Cur), flavor(Copy::RequestSpec)]),
        }],
        flavors: vec![
            FlavorFact {
                id: "bm.gold".into(),
                name: "bm.gold".into(),
                extra_specs: legacy.clone(),
            },
            FlavorFact {
                id: "m1.small".into(),
                name: "m1.small".into(),
                extra_specs: BTreeMap::new(),
            },
        ],
        consumers: BTreeMap::new(),
    }
}

fn actions(steps: &[Step]) -> Vec<&'static str> {
    steps.iter().map(Step::action).collect()
}

/// The facts after every step of `p` went through, as the executor leaves them.
fn applied(mut facts: Facts) -> Facts {
    let target = |class: &str| steward::repair::plan::target_specs(class);
    for n in facts.nodes.clone() {
        let Some(rc) = n.resource_class.filter(|r| !r.is_empty()) else {
            continue;
        };
        let class = normalize_rc_name(&rc);
        if let Some(p) = facts.providers.get_mut(&n.uuid) {
            p.inventories = [(class.clone(), inv(1))].into_iter().collect();
            for a in p.allocations.values_mut() {
                *a = [(class.clone(), 1)].into_iter().collect();
            }
            p.usages = [(class.clone(), p.allocations.len() as i64)]
                .into_iter()
                .collect();
        }
        for i in facts.instances.iter_mut().filter(|i| i.node == n.uuid) {
            if let Ok(fl) = &mut i.flavors {
                for f in fl {
                    f.extra_specs.extend(target(&class));
                }
            }
        }
        for f in &mut facts.flavors {
            if f.extra_specs.contains_key(&format!("resources:{class}")) {
                f.extra_specs.extend(target(&class));
            }
        }
    }
    facts
}

#[test]
fn the_stackhpc_node_gets_every_step_in_the_safe_order() {
    let p = plan(&stackhpc(), &Selection::default(), &BTreeMap::new());
    assert_eq!(
        actions(&p.global),
        ["ensure_resource_class", "set_flavor_extra_specs"]
    );
    let Step::SetFlavorExtraSpecs {
        flavor_id, specs, ..
    } = &p.global[1]
    else {
        panic!("a flavor step")
    };
    assert_eq!(flavor_id, "bm.gold");
    assert_eq!(
        specs.keys().collect::<Vec<_>>(),
        ["resources:DISK_GB", "resources:MEMORY_MB", "resources:VCPU"]
    );
    let n = &p.nodes[0];
    assert_eq!(n.status, NodeStatus::NeedsRepair);
    assert_eq!(n.class.as_deref(), Some("CUSTOM_GOLD"));
    assert_eq!(
        actions(&n.steps),
        [
            "rewrite_instance_flavor",
            "rewrite_request_spec",
            "shrink_allocation",
            "set_custom_only_inventory",
            "check_usage"
        ]
    );
    assert!(matches!(
        n.steps.last(),
        Some(Step::CheckUsage { expected: 1, .. })
    ));
}

#[test]
fn a_repaired_cloud_plans_nothing() {
    let p = plan(
        &applied(stackhpc()),
        &Selection::default(),
        &BTreeMap::new(),
    );
    assert!(p.is_empty(), "{p:#?}");
    assert_eq!(p.nodes[0].status, NodeStatus::Clean);
}

#[test]
fn a_node_without_a_class_is_skipped_with_its_uuid_and_what_to_do() {
    let mut f = stackhpc();
    f.nodes[0].resource_class = Some(" ".into());
    let p = plan(&f, &Selection::default(), &BTreeMap::new());
    let n = &p.nodes[0];
    assert_eq!(n.status, NodeStatus::Skipped);
    assert!(n.steps.is_empty());
    assert!(n.problems[0].contains(GOLD));
    assert!(n.problems[0].contains("--resource-class"));
    assert!(p.global.is_empty(), "nothing changes for a skipped node");
}

#[test]
fn a_node_with_no_custom_inventory_gets_it_before_allocations_move() {
    let mut f = stackhpc();
    let p0 = f.providers.get_mut(GOLD).unwrap();
    p0.inventories.remove("CUSTOM_GOLD");
    for a in p0.allocations.values_mut() {
        a.remove("CUSTOM_GOLD");
    }
    let p = plan(&f, &Selection::default(), &BTreeMap::new());
    assert_eq!(
        actions(&p.nodes[0].steps)[2..],
        [
            "add_custom_inventory",
            "shrink_allocation",
            "set_custom_only_inventory",
            "check_usage"
        ]
    );
}

const STRANGER: &str = "a1b2c3d4-0000-4000-8000-00000000beef";

/// Today's case from the field: the node's instance was booted from a flavor without the
/// custom class (VCPU, MEMORY_MB, DISK_GB only) and a consumer Nova does not know holds
/// CUSTOM_GOLD=1. After the repair both would hold CUSTOM_GOLD=1 against a total of 1.
#[test]
fn a_stranger_on_the_custom_class_blocks_the_node_and_is_named() {
    let mut f = stackhpc();
    let p0 = f.providers.get_mut(GOLD).unwrap();
    p0.allocations.get_mut(INST).unwrap().remove("CUSTOM_GOLD");
    p0.allocations
        .insert(STRANGER.into(), [("CUSTOM_GOLD".to_string(), 1)].into());
    f.nodes[0].instance_uuid = Some(INST.into());
    let p = plan(&f, &Selection::default(), &BTreeMap::new());
    let n = &p.nodes[0];
    assert_eq!(n.status, NodeStatus::Blocked);
    assert!(n.steps.is_empty(), "nothing of a blocked node is written");
    assert_eq!(n.blockers.len(), 1);
    let b = &n.blockers[0];
    assert_eq!(b.consumer, STRANGER);
    assert_eq!(b.kind, ConsumerKind::Unknown);
    assert_eq!(
        b.command,
        format!("openstack resource provider allocation show {STRANGER}")
    );
    assert!(n.problems[0].contains(STRANGER), "{:?}", n.problems);
    // Its class's flavors are not repaired on its account either.
    assert!(p.global.is_empty(), "{:?}", p.global);
    // Control: without the stranger the same node is repaired.
    let mut ok = stackhpc();
    ok.nodes[0].instance_uuid = Some(INST.into());
    let n = &plan(&ok, &Selection::default(), &BTreeMap::new()).nodes[0];
    assert_eq!(n.status, NodeStatus::NeedsRepair);
}

#[test]
fn a_migration_record_alone_is_shrunk_beside_an_instance_it_blocks() {
    let mut f = stackhpc();
    let p0 = f.providers.get_mut(GOLD).unwrap();
    let held = p0.allocations.remove(INST).unwrap();
    p0.allocations.insert(STRANGER.into(), held.clone());
    f.consumers.insert(
        STRANGER.into(),
        ConsumerFact::Migration {
            instance: INST.into(),
            source_node: Some(GOLD.into()),
            dest_node: Some("elsewhere".into()),
            status: Some("post-migrating".into()),
        },
    );
    // The migration holds the node alone (mid-resize): shrunk like an instance's.
    let p = plan(&f, &Selection::default(), &BTreeMap::new());
    let n = &p.nodes[0];
    assert_eq!(n.status, NodeStatus::NeedsRepair, "{:?}", n.problems);
    let shrinks: Vec<_> = n
        .steps
        .iter()
        .filter_map(|s| match s {
            Step::ShrinkAllocation { consumer, .. } => Some(consumer.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(shrinks, [STRANGER]);
    assert!(n.notes.iter().any(|s| s.contains("migration record")));
    // Beside the instance's own allocation it would be a second unit: blocked, named as a
    // migration record.
    f.providers
        .get_mut(GOLD)
        .unwrap()
        .allocations
        .insert(INST.into(), held);
    f.nodes[0].instance_uuid = Some(INST.into());
    let n = &plan(&f, &Selection::default(), &BTreeMap::new()).nodes[0];
    assert_eq!(n.status, NodeStatus::Blocked);
    assert_eq!(n.blockers.len(), 1);
    assert_eq!(n.blockers[0].consumer, STRANGER);
    assert_eq!(n.blockers[0].kind, ConsumerKind::Migration);
    assert!(n.blockers[0].what.contains(INST));
}

#[test]
fn two_instances_on_one_node_block_it_naming_the_one_ironic_does_not_hold() {
    let mut f = stackhpc();
    let second = "5e5e5e5e-0000-4000-8000-000000000002";
    let mut other = f.instances[0].clone();
    other.uuid = second.into();
    f.instances.push(other);
    let p0 = f.providers.get_mut(GOLD).unwrap();
    let held = p0.allocations[INST].clone();
    p0.allocations.insert(second.into(), held);
    f.nodes[0].instance_uuid = Some(INST.into());
    let n = &plan(&f, &Selection::default(), &BTreeMap::new()).nodes[0];
    assert_eq!(n.status, NodeStatus::Blocked);
    assert_eq!(n.blockers.len(), 1);
    assert_eq!(n.blockers[0].consumer, second);
    assert_eq!(n.blockers[0].kind, ConsumerKind::Instance);
    assert!(n.blockers[0].what.contains("holds another instance"));
}

#[test]
fn an_instance_elsewhere_holding_standard_classes_blocks() {
    let mut f = stackhpc();
    f.providers
        .get_mut(GOLD)
        .unwrap()
        .allocations
        .insert(STRANGER.into(), [("VCPU".to_string(), 2)].into());
    f.consumers.insert(
        STRANGER.into(),
        ConsumerFact::Instance {
            node: Some("another-node".into()),
            host: Some("cmp-7".into()),
        },
    );
    let n = &plan(&f, &Selection::default(), &BTreeMap::new()).nodes[0];
    assert_eq!(n.status, NodeStatus::Blocked);
    assert_eq!(n.blockers[0].kind, ConsumerKind::InstanceElsewhere);
    assert!(n.blockers[0].reason.contains("VCPU=2"));
    assert!(n.blockers[0].what.contains("another-node"));
}

/// verify's agreement check: before the repair (half-migrated flavor, all four held) and after
/// it (custom only on both sides) the instance agrees; a flavor rewritten without its
/// allocation, or the reverse, does not.
#[test]
fn flavor_request_spec_and_allocation_agreement() {
    let f = stackhpc();
    assert_eq!(disagreements(&f), vec![]);
    let done = applied(stackhpc());
    assert_eq!(disagreements(&done), vec![]);
    // The flavor copies rewritten, the allocation not (what a half-repaired node looked like).
    let mut half = stackhpc();
    if let Ok(flavors) = &mut half.instances[0].flavors {
        for fl in flavors.iter_mut() {
            fl.extra_specs = steward::repair::plan::target_specs("CUSTOM_GOLD");
        }
    }
    let found = disagreements(&half);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].0, format!("instance {INST}"));
    assert!(found[0].1.contains("asks for CUSTOM_GOLD=1"), "{found:?}");
    // Only the request spec rewritten.
    let mut spec_only = stackhpc();
    if let Ok(flavors) = &mut spec_only.instances[0].flavors {
        flavors[1].extra_specs = steward::repair::plan::target_specs("CUSTOM_GOLD");
    }
    let found = disagreements(&spec_only);
    assert!(
        found.iter().any(|(_, m)| m.contains("request spec")),
        "{found:?}"
    );
}

#[test]
fn unreadable_flavor_json_skips_the_node() {
    let mut f = stackhpc();
    f.instances[0].flavors = Err("instance_extra.flavor is not Nova's flavor JSON".into());
    let p = plan(&f, &Selection::default(), &BTreeMap::new());
    assert_eq!(p.nodes[0].status, NodeStatus::Skipped);
    assert!(p.nodes[0].problems[0].contains(INST));
}

#[test]
fn a_flavor_of_another_class_skips_the_node() {
    let mut f = stackhpc();
    if let Ok(fl) = &mut f.instances[0].flavors {
        fl[0].extra_specs = specs(&[("resources:CUSTOM_SILVER", "1")]);
    }
    let p = plan(&f, &Selection::default(), &BTreeMap::new());
    assert_eq!(p.nodes[0].status, NodeStatus::Skipped);
    assert!(p.nodes[0].problems[0].contains("CUSTOM_SILVER"));
}

#[test]
fn maintenance_is_noted_not_skipped() {
    let mut f = stackhpc();
    f.nodes[0].maintenance = true;
    let p = plan(&f, &Selection::default(), &BTreeMap::new());
    assert_eq!(p.nodes[0].status, NodeStatus::NeedsRepair);
    assert!(p.nodes[0].notes[0].contains("maintenance"));
}

#[test]
fn selection_by_node_class_and_cell() {
    let f = stackhpc();
    let cells: BTreeMap<String, String> = [(CELL1.to_string(), "cell1".to_string())]
        .into_iter()
        .collect();
    let count = |s: Selection| plan(&f, &s, &cells).nodes.len();
    assert_eq!(count(Selection::default()), 1);
    for s in [
        Selection {
            resource_class: Some("GOLD".into()),
            ..Default::default()
        },
        Selection {
            resource_class: Some("CUSTOM_GOLD".into()),
            ..Default::default()
        },
        Selection {
            cell: Some("cell1".into()),
            ..Default::default()
        },
        Selection {
            nodes: vec!["bm-gold-1".into()],
            ..Default::default()
        },
    ] {
        assert_eq!(count(s.clone()), 1, "{s:?}");
    }
    for s in [
        Selection {
            resource_class: Some("SILVER".into()),
            ..Default::default()
        },
        Selection {
            cell: Some("cell2".into()),
            ..Default::default()
        },
        Selection {
            nodes: vec![INST.into()],
            ..Default::default()
        },
    ] {
        assert_eq!(count(s.clone()), 0, "{s:?}");
    }
}

proptest! {
    /// Nova's rule: the name is always CUSTOM_ + [A-Z0-9_], each non-alphanumeric run one `_`.
    #[test]
    fn normalized_names_are_placement_names(name in "\\PC{1,40}") {
        let n = normalize_rc_name(&name);
        let rest = n.strip_prefix("CUSTOM_").unwrap();
        prop_assert!(!rest.is_empty());
        prop_assert!(rest.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_'));
        prop_assert!(!rest.contains("__"));
    }

    /// Any node: planning after applying the plan finds nothing to do.
    #[test]
    fn planning_again_after_apply_finds_nothing(
        maintenance in any::<bool>(), custom in any::<bool>(), instance in any::<bool>()
    ) {
        let mut f = stackhpc();
        f.nodes[0].maintenance = maintenance;
        if !custom {
            let p0 = f.providers.get_mut(GOLD).unwrap();
            p0.inventories.remove("CUSTOM_GOLD");
            for a in p0.allocations.values_mut() { a.remove("CUSTOM_GOLD"); }
        }
        if !instance {
            f.instances.clear();
            f.providers.get_mut(GOLD).unwrap().allocations.clear();
        }
        let before = plan(&f, &Selection::default(), &BTreeMap::new());
        prop_assert!(!before.is_empty());
        let after = plan(&applied(f), &Selection::default(), &BTreeMap::new());
        prop_assert!(after.is_empty(), "{:#?}", after);
    }
}

#[test]
fn a_node_nova_never_reported_is_clean_unless_instances_name_it() {
    let mut f = stackhpc();
    f.providers.clear();
    let p = plan(&f, &Selection::default(), &BTreeMap::new());
    assert_eq!(p.nodes[0].status, NodeStatus::Skipped);
    assert!(p.nodes[0].problems[0].contains("no resource provider"));
    f.instances.clear();
    let p = plan(&f, &Selection::default(), &BTreeMap::new());
    assert_eq!(p.nodes[0].status, NodeStatus::Clean);
    assert!(p.nodes[0].steps.is_empty());
    assert!(p.nodes[0].notes[0].contains("no resource provider"));
}
