//! Gathering the repair's facts: Ironic nodes, their Placement providers, the instances on
//! them with their embedded flavors and request specs, and Nova's flavors. I/O only; what the
//! facts mean is `plan`'s business.

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::novadb::{ConsumerRow, InstanceFlavors, NovaDb, RequestSpecPrimitive};
use crate::openstack::ironic::{Ironic, NodeFilter};
use crate::openstack::nova::Nova;
use crate::openstack::placement::Placement;
use crate::peerclock::PeerClock;

use super::plan::{
    ConsumerFact, Copy, EmbeddedFlavor, Facts, FlavorFact, FlavorSizes, InstanceFact,
    InventoryFact, NodeFact, ProviderFact, Selection,
};
use super::RepairError;

/// The clients a repair works through.
#[derive(Debug, Clone)]
pub struct Clients {
    pub ironic: Ironic,
    pub placement: Placement,
    pub nova: Nova,
    pub db: NovaDb,
    pub concurrency: usize,
    /// The time every call above (and the journal's) waited, since `connect`.
    pub clock: Arc<PeerClock>,
}

/// Cell uuid -> name, for messages and `--cell NAME`.
pub fn cell_names(db: &NovaDb) -> BTreeMap<String, String> {
    db.cells()
        .iter()
        .map(|c| (c.uuid.clone(), c.name.clone()))
        .collect()
}

/// Everything `plan` needs about the selected nodes. A `--node` that Ironic does not know is
/// bad input ([`RepairError::Input`]).
pub async fn gather(c: &Clients, selection: &Selection) -> Result<Facts, RepairError> {
    let all = c.ironic.nodes(&NodeFilter::default()).await?;
    for wanted in &selection.nodes {
        if !all
            .iter()
            .any(|n| &n.uuid == wanted || n.name.as_ref() == Some(wanted))
        {
            return Err(RepairError::Input(format!(
                "Ironic has no node {wanted}; pass a node uuid or name from `openstack baremetal \
                 node list`"
            )));
        }
    }
    let node_cells = c.db.node_cells().await?;
    let names = cell_names(&c.db);
    check_cell(&names, selection.cell.as_deref())?;
    let nodes: Vec<NodeFact> = node_facts(all, &node_cells)
        .into_iter()
        .filter(|n| selection.matches(n, &names))
        .collect();

    let providers = providers(c, &nodes).await?;
    let uuids: Vec<String> = nodes.iter().map(|n| n.uuid.clone()).collect();
    let rows = c.db.instances_on_nodes(&uuids).await?;
    let instance_uuids: Vec<String> = rows.iter().map(|r| r.uuid.clone()).collect();
    let specs = c.db.request_specs(&instance_uuids).await?;
    let instances = rows
        .into_iter()
        .map(|r| {
            let flavors = embedded(&r.uuid, r.flavor.as_deref(), specs.get(&r.uuid));
            InstanceFact {
                uuid: r.uuid,
                node: r.node,
                cell: r.cell,
                vm_state: r.vm_state,
                task_state: r.task_state,
                flavors,
            }
        })
        .collect();
    let flavors = c
        .nova
        .flavors()
        .await?
        .into_iter()
        .map(|f| FlavorFact {
            id: f.id,
            name: f.name,
            extra_specs: f.extra_specs,
        })
        .collect();
    let consumers = consumers(c, &providers, &instance_uuids).await?;
    Ok(Facts {
        nodes,
        providers,
        instances,
        flavors,
        consumers,
    })
}

/// What Nova knows of every consumer on the providers that is not an instance on them.
async fn consumers(
    c: &Clients,
    providers: &BTreeMap<String, ProviderFact>,
    instances: &[String],
) -> Result<BTreeMap<String, ConsumerFact>, RepairError> {
    let strangers: Vec<String> = providers
        .values()
        .flat_map(|p| p.allocations.keys())
        .filter(|c| !instances.contains(c))
        .cloned()
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    if strangers.is_empty() {
        return Ok(BTreeMap::new());
    }
    Ok(c.db
        .consumers(&strangers)
        .await?
        .into_iter()
        .map(|(uuid, row)| {
            let fact = match row {
                ConsumerRow::Instance { node, host } => ConsumerFact::Instance { node, host },
                ConsumerRow::Migration {
                    instance,
                    source_node,
                    dest_node,
                    status,
                    ..
                } => ConsumerFact::Migration {
                    instance,
                    source_node,
                    dest_node,
                    status,
                },
            };
            (uuid, fact)
        })
        .collect())
}

/// A flavor's sizes from Nova's serialised object.
fn sizes(f: &crate::novadb::FlavorPrimitive) -> Option<FlavorSizes> {
    let n = |k: &str| f.data.other.get(k).and_then(serde_json::Value::as_i64);
    Some(FlavorSizes {
        vcpus: n("vcpus")?,
        memory_mb: n("memory_mb")?,
        root_gb: n("root_gb")?,
        ephemeral_gb: n("ephemeral_gb").unwrap_or(0),
        swap_mb: n("swap").unwrap_or(0),
    })
}

/// A `--cell` that names no cell is bad input, naming the cells there are.
pub fn check_cell(names: &BTreeMap<String, String>, cell: Option<&str>) -> Result<(), RepairError> {
    let Some(cell) = cell else { return Ok(()) };
    if names.iter().any(|(u, n)| u == cell || n == cell) {
        return Ok(());
    }
    Err(RepairError::Input(format!(
        "no cell {cell} among {}; pass a cell name or uuid from `nova-manage cell_v2 list_cells`",
        names.values().cloned().collect::<Vec<_>>().join(", ")
    )))
}

/// Ironic's nodes as the planner's facts, each with the cell that holds its compute node.
pub fn node_facts(
    nodes: Vec<crate::openstack::ironic::Node>,
    node_cells: &BTreeMap<String, String>,
) -> Vec<NodeFact> {
    nodes
        .into_iter()
        .map(|n| NodeFact {
            cell: node_cells.get(&n.uuid).cloned(),
            uuid: n.uuid,
            name: n.name,
            resource_class: n.resource_class,
            instance_uuid: n.instance_uuid,
            maintenance: n.maintenance,
            provision_state: n.provision_state,
        })
        .collect()
}

/// The flavors Nova keeps for one instance, read through the typed JSON.
pub fn embedded(
    instance: &str,
    flavor: Option<&str>,
    spec: Option<&String>,
) -> Result<Vec<EmbeddedFlavor>, String> {
    let mut out = Vec::new();
    let Some(text) = flavor else {
        return Err(format!(
            "instance {instance} has no instance_extra.flavor row"
        ));
    };
    let parsed = InstanceFlavors::parse(text)
        .map_err(|e| format!("instance_extra.flavor is not Nova's flavor JSON ({e})"))?;
    if parsed.cur().is_none() {
        return Err("instance_extra.flavor has no cur flavor".into());
    }
    for (copy, slot) in [
        (Copy::Cur, &parsed.cur),
        (Copy::Old, &parsed.old),
        (Copy::New, &parsed.new),
    ] {
        if let Some(Some(f)) = slot {
            out.push(EmbeddedFlavor {
                copy,
                flavorid: f.flavorid(),
                name: f.name().map(str::to_string),
                extra_specs: f.extra_specs(),
                sizes: sizes(f),
            });
        }
    }
    if let Some(spec) = spec {
        let rs = RequestSpecPrimitive::parse(spec)
            .map_err(|e| format!("request_specs.spec is not a RequestSpec ({e})"))?;
        if let Some(f) = rs.flavor() {
            out.push(EmbeddedFlavor {
                copy: Copy::RequestSpec,
                flavorid: f.flavorid(),
                name: f.name().map(str::to_string),
                extra_specs: f.extra_specs(),
                sizes: sizes(f),
            });
        }
    }
    Ok(out)
}

async fn providers(
    c: &Clients,
    nodes: &[NodeFact],
) -> Result<BTreeMap<String, ProviderFact>, RepairError> {
    let gate = Arc::new(Semaphore::new(c.concurrency.max(1)));
    let mut set = JoinSet::new();
    for n in nodes {
        let placement = c.placement.clone();
        let uuid = n.uuid.clone();
        let gate = gate.clone();
        set.spawn(async move {
            let _permit = gate.acquire_owned().await;
            provider(&placement, &uuid).await
        });
    }
    let mut out = BTreeMap::new();
    while let Some(done) = set.join_next().await {
        let got = done.map_err(|e| RepairError::Internal(e.to_string()))??;
        if let Some(p) = got {
            out.insert(p.uuid.clone(), p);
        }
    }
    Ok(out)
}

/// One provider's facts; `None` when Placement has no provider of that uuid.
pub async fn provider(
    placement: &Placement,
    uuid: &str,
) -> Result<Option<ProviderFact>, RepairError> {
    let inv = match placement.inventories(uuid).await {
        Ok(i) => i,
        Err(e) if e.status() == Some(404) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let usages = placement.usages(uuid).await?;
    let allocs = placement.provider_allocations(uuid).await?;
    Ok(Some(ProviderFact {
        uuid: uuid.to_string(),
        generation: inv.generation,
        inventories: inv
            .inventories
            .into_iter()
            .map(|(rc, i)| {
                (
                    rc,
                    InventoryFact {
                        total: i.total,
                        reserved: i.reserved,
                        max_unit: i.max_unit,
                    },
                )
            })
            .collect(),
        usages: usages.usages,
        allocations: allocs
            .allocations
            .into_iter()
            .map(|(consumer, r)| (consumer, r.resources))
            .collect(),
    }))
}
