//! The repair planner (pure) over 2,000 legacy Ironic nodes, each with an instance whose flavor
//! copies lack the custom-class specs and an allocation of all four classes: what `steward
//! repair plan` spends besides waiting on Ironic, Placement and the databases.
//! Run: cargo bench --bench repair_plan

use std::collections::BTreeMap;

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use steward::repair::plan::{
    plan, Copy, EmbeddedFlavor, Facts, FlavorFact, InstanceFact, InventoryFact, NodeFact,
    ProviderFact, Selection,
};

fn facts(nodes: usize) -> Facts {
    let mut f = Facts::default();
    let legacy: BTreeMap<String, String> = [("resources:CUSTOM_GOLD".to_string(), "1".to_string())]
        .into_iter()
        .collect();
    let all4: BTreeMap<String, i64> = [
        ("VCPU", 64),
        ("MEMORY_MB", 131072),
        ("DISK_GB", 371),
        ("CUSTOM_GOLD", 1),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), *v))
    .collect();
    for i in 0..nodes {
        let uuid = format!("{i:08x}-0000-4000-8000-000000000000");
        let inst = format!("{i:08x}-1111-4000-8000-000000000000");
        f.nodes.push(NodeFact {
            uuid: uuid.clone(),
            name: Some(format!("bm-{i}")),
            resource_class: Some("GOLD".into()),
            instance_uuid: Some(inst.clone()),
            maintenance: i % 10 == 0,
            provision_state: Some("active".into()),
            cell: Some("cell1".into()),
        });
        f.providers.insert(
            uuid.clone(),
            ProviderFact {
                uuid: uuid.clone(),
                generation: 1,
                inventories: all4
                    .iter()
                    .map(|(k, v)| {
                        (
                            k.clone(),
                            InventoryFact {
                                total: *v,
                                reserved: 0,
                                max_unit: *v,
                            },
                        )
                    })
                    .collect(),
                usages: all4.clone(),
                allocations: [(inst.clone(), all4.clone())].into_iter().collect(),
            },
        );
        let copy = |c| EmbeddedFlavor {
            copy: c,
            flavorid: Some("bm.gold".into()),
            name: Some("bm.gold".into()),
            extra_specs: legacy.clone(),
            sizes: None,
        };
        f.instances.push(InstanceFact {
            uuid: inst,
            node: uuid,
            cell: "cell1".into(),
            vm_state: Some("active".into()),
            task_state: None,
            flavors: Ok(vec![copy(Copy::Cur), copy(Copy::RequestSpec)]),
        });
    }
    f.flavors.push(FlavorFact {
        id: "bm.gold".into(),
        name: "bm.gold".into(),
        extra_specs: legacy,
    });
    f
}

fn bench(c: &mut Criterion) {
    let f = facts(2000);
    let cells = BTreeMap::new();
    let mut group = c.benchmark_group("repair_plan");
    group.sample_size(20);
    group.bench_function("2000 legacy nodes", |b| {
        b.iter(|| plan(black_box(&f), &Selection::default(), &cells))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
