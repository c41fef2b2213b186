//! The pure core of the inventory repair: facts about Ironic nodes, their Placement providers,
//! the instances on them and the bare-metal flavors in; per node what is wrong and the ordered
//! steps that fix it out. No I/O, no clock; the orchestrator (`repair::apply`) gathers facts
//! and executes steps.
//!
//! The order of a node's steps is the one that never meets `placement.inventory.inuse`: Nova's
//! copies of the flavor first (so a heal or a move asks for the custom class only), then the
//! custom class is added to the inventory if missing, each allocation shrunk to it, and only
//! then the standard classes leave the inventory.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

/// The standard classes a legacy Ironic node reports and its instances consume.
pub const STANDARD_CLASSES: [&str; 3] = ["VCPU", "MEMORY_MB", "DISK_GB"];

/// Nova's `nova.utils.normalize_rc_name`: each run of characters outside `[0-9A-Za-z]` becomes
/// one `_`, then upper case (after the replacement: Nova bug 1762789), then `CUSTOM_` in front,
/// always (`CUSTOM_X` becomes `CUSTOM_CUSTOM_X`, exactly as Nova's Ironic driver names it).
pub fn normalize_rc_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 7);
    out.push_str("CUSTOM_");
    let mut in_run = false;
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_uppercase());
            in_run = false;
        } else if !in_run {
            out.push('_');
            in_run = true;
        }
    }
    out
}

/// The extra specs a bare-metal flavor of `class` carries once repaired: the custom class
/// once, the standard classes zeroed, so Nova asks Placement for `{class: 1}` only.
pub fn target_specs(class: &str) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    m.insert(format!("resources:{class}"), "1".to_string());
    for rc in STANDARD_CLASSES {
        m.insert(format!("resources:{rc}"), "0".to_string());
    }
    m
}

/// The keys of `target` that `specs` lacks or holds with another value.
pub fn missing_specs(
    specs: &BTreeMap<String, String>,
    target: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    target
        .iter()
        .filter(|(k, v)| specs.get(*k).map(|s| s.trim()) != Some(v.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// A custom class other than `class` that `specs` asks for (a flavor of another node class).
fn other_custom_class(specs: &BTreeMap<String, String>, class: &str) -> Option<String> {
    specs.iter().find_map(|(k, v)| {
        let rc = k.strip_prefix("resources:")?;
        (rc.starts_with("CUSTOM_") && rc != class && v.trim() != "0").then(|| rc.to_string())
    })
}

// -- facts ------------------------------------------------------------------------------------

/// An Ironic node.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NodeFact {
    pub uuid: String,
    pub name: Option<String>,
    /// Ironic's `resource_class`, as the operator set it (not normalised).
    pub resource_class: Option<String>,
    pub instance_uuid: Option<String>,
    pub maintenance: bool,
    pub provision_state: Option<String>,
    /// The cell whose `compute_nodes` holds this node, when known.
    pub cell: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InventoryFact {
    pub total: i64,
    pub reserved: i64,
    pub max_unit: i64,
}

/// A node's resource provider in Placement (same uuid as the node).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProviderFact {
    pub uuid: String,
    pub generation: i64,
    pub inventories: BTreeMap<String, InventoryFact>,
    pub usages: BTreeMap<String, i64>,
    /// Consumer uuid -> its resources on this provider (instances and migrations).
    pub allocations: BTreeMap<String, BTreeMap<String, i64>>,
}

/// Which copy of a flavor Nova keeps for an instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Copy {
    /// `instance_extra.flavor` `cur`.
    Cur,
    /// `old` (a resize in flight).
    Old,
    /// `new` (a resize in flight).
    New,
    /// `request_specs.spec` in the API database.
    RequestSpec,
}

/// One embedded flavor as steward read it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EmbeddedFlavor {
    pub copy: Copy,
    pub flavorid: Option<String>,
    pub name: Option<String>,
    pub extra_specs: BTreeMap<String, String>,
    /// The sizes Nova derives the standard classes from (None when the JSON lacks them).
    pub sizes: Option<FlavorSizes>,
}

/// A flavor's sizes as Nova stores them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct FlavorSizes {
    pub vcpus: i64,
    pub memory_mb: i64,
    pub root_gb: i64,
    pub ephemeral_gb: i64,
    pub swap_mb: i64,
}

/// An instance on a node, live (deleted instances are never facts).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InstanceFact {
    pub uuid: String,
    pub node: String,
    pub cell: String,
    pub vm_state: Option<String>,
    pub task_state: Option<String>,
    /// Its embedded flavors (cur, old, new) and request spec flavor, or why they cannot be read.
    pub flavors: Result<Vec<EmbeddedFlavor>, String>,
}

/// A flavor in the API database, as the Nova API shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FlavorFact {
    pub id: String,
    pub name: String,
    pub extra_specs: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Facts {
    pub nodes: Vec<NodeFact>,
    pub providers: BTreeMap<String, ProviderFact>,
    pub instances: Vec<InstanceFact>,
    pub flavors: Vec<FlavorFact>,
    /// What Nova's databases know of the providers' consumers that are not instances on the
    /// selected nodes (by consumer uuid); a consumer absent here is unknown to Nova.
    pub consumers: BTreeMap<String, ConsumerFact>,
}

/// A Placement consumer as Nova's databases know it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ConsumerFact {
    /// A live instance, with the node and host Nova records for it.
    Instance {
        node: Option<String>,
        host: Option<String>,
    },
    /// A migration record of `instance`.
    Migration {
        instance: String,
        source_node: Option<String>,
        dest_node: Option<String>,
        status: Option<String>,
    },
}

/// Which nodes the operator asked about. Empty lists and `None` select everything.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Selection {
    pub nodes: Vec<String>,
    /// Ironic's class (`baremetal-gold`) or its custom name (`CUSTOM_BAREMETAL_GOLD`).
    pub resource_class: Option<String>,
    /// Cell name or uuid.
    pub cell: Option<String>,
}

impl Selection {
    pub fn matches(&self, node: &NodeFact, cell_names: &BTreeMap<String, String>) -> bool {
        if !self.nodes.is_empty()
            && !self
                .nodes
                .iter()
                .any(|n| n == &node.uuid || Some(n) == node.name.as_ref())
        {
            return false;
        }
        if let Some(rc) = &self.resource_class {
            let theirs = node.resource_class.as_deref().unwrap_or("");
            if rc != theirs && *rc != normalize_rc_name(theirs) {
                return false;
            }
        }
        if let Some(cell) = &self.cell {
            let Some(node_cell) = &node.cell else {
                return false;
            };
            let name = cell_names.get(node_cell);
            if cell != node_cell && Some(cell) != name {
                return false;
            }
        }
        true
    }
}

// -- the plan ---------------------------------------------------------------------------------

/// One step, in the order it runs. Steps name targets, not generations: the executor reads
/// the current generation right before each write.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Step {
    EnsureResourceClass {
        class: String,
    },
    SetFlavorExtraSpecs {
        flavor_id: String,
        flavor_name: String,
        specs: BTreeMap<String, String>,
    },
    RewriteInstanceFlavor {
        instance: String,
        cell: String,
        copies: Vec<Copy>,
        specs: BTreeMap<String, String>,
    },
    RewriteRequestSpec {
        instance: String,
        specs: BTreeMap<String, String>,
    },
    /// Add the custom class (total 1, reserved 0) beside the standard ones, so allocations can
    /// move onto it.
    AddCustomInventory {
        provider: String,
        class: String,
    },
    ShrinkAllocation {
        consumer: String,
        provider: String,
        class: String,
        from: BTreeMap<String, i64>,
    },
    /// The inventory becomes `{class: total 1, max_unit 1, reserved 0}` only.
    SetCustomOnlyInventory {
        provider: String,
        class: String,
    },
    CheckUsage {
        provider: String,
        class: String,
        expected: i64,
    },
    /// `steward repair classify`: Ironic's `resource_class` of a node that has none.
    SetNodeResourceClass {
        node: String,
        class: String,
    },
}

impl Step {
    pub fn action(&self) -> &'static str {
        match self {
            Step::EnsureResourceClass { .. } => "ensure_resource_class",
            Step::SetFlavorExtraSpecs { .. } => "set_flavor_extra_specs",
            Step::RewriteInstanceFlavor { .. } => "rewrite_instance_flavor",
            Step::RewriteRequestSpec { .. } => "rewrite_request_spec",
            Step::AddCustomInventory { .. } => "add_custom_inventory",
            Step::ShrinkAllocation { .. } => "shrink_allocation",
            Step::SetCustomOnlyInventory { .. } => "set_custom_only_inventory",
            Step::CheckUsage { .. } => "check_usage",
            Step::SetNodeResourceClass { .. } => "set_node_resource_class",
        }
    }

    /// What the step touches, for tables and the journal.
    pub fn object(&self) -> String {
        match self {
            Step::EnsureResourceClass { class } => class.clone(),
            Step::SetFlavorExtraSpecs { flavor_id, .. } => format!("flavor {flavor_id}"),
            Step::RewriteInstanceFlavor { instance, .. } => format!("instance {instance}"),
            Step::RewriteRequestSpec { instance, .. } => format!("request_spec {instance}"),
            Step::AddCustomInventory { provider, .. }
            | Step::SetCustomOnlyInventory { provider, .. }
            | Step::CheckUsage { provider, .. } => format!("provider {provider}"),
            Step::ShrinkAllocation { consumer, .. } => format!("consumer {consumer}"),
            Step::SetNodeResourceClass { node, .. } => format!("node {node}"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeStatus {
    /// Nothing to do.
    Clean,
    NeedsRepair,
    /// Cannot be repaired as it is; `problems` says why. Nothing is changed on it.
    Skipped,
    /// After the repair, the allocations against the node's provider would not fit the
    /// inventory it will have; `blockers` names each consumer in the way. Nothing is written.
    Blocked,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NodePlan {
    pub node: String,
    pub name: Option<String>,
    /// The custom class (`CUSTOM_GOLD`), when the node has a resource class.
    pub class: Option<String>,
    pub status: NodeStatus,
    /// What is wrong, one sentence each (or why the node is skipped).
    pub problems: Vec<String>,
    /// Facts worth knowing that change nothing (maintenance, a migration consumer).
    pub notes: Vec<String>,
    /// The consumers that block the node (empty unless `status` is `blocked`).
    pub blockers: Vec<super::capacity::Blocker>,
    pub steps: Vec<Step>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Plan {
    /// Steps for the whole run, before any node: classes, then flavors.
    pub global: Vec<Step>,
    pub nodes: Vec<NodePlan>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.global.is_empty() && self.nodes.iter().all(|n| n.steps.is_empty())
    }

    pub fn count(&self, status: NodeStatus) -> usize {
        self.nodes.iter().filter(|n| n.status == status).count()
    }
}

/// Per selected node: what is wrong and the ordered steps that fix it.
pub fn plan(facts: &Facts, selection: &Selection, cell_names: &BTreeMap<String, String>) -> Plan {
    let mut by_node: BTreeMap<&str, Vec<&InstanceFact>> = BTreeMap::new();
    for i in &facts.instances {
        by_node.entry(i.node.as_str()).or_default().push(i);
    }
    let nodes: Vec<(NodePlan, Vec<&InstanceFact>)> = facts
        .nodes
        .iter()
        .filter(|node| selection.matches(node, cell_names))
        .map(|node| {
            let instances = by_node.get(node.uuid.as_str()).cloned().unwrap_or_default();
            let p = plan_node(
                node,
                facts.providers.get(&node.uuid),
                &instances,
                &facts.consumers,
            );
            (p, instances)
        })
        .collect();
    let global = global_steps(&facts.flavors, &nodes);
    Plan {
        global,
        nodes: nodes.into_iter().map(|(p, _)| p).collect(),
    }
}

/// Whether a node's plan goes ahead (its class's flavors are repaired with it).
fn goes_ahead(p: &NodePlan) -> bool {
    !matches!(p.status, NodeStatus::Skipped | NodeStatus::Blocked)
}

/// The run-wide steps: the custom classes the run needs, then the bare-metal flavors of every
/// node that goes ahead (those asking for its class, and those its instances were booted from),
/// even when no instance needs it: the next boot must ask for the custom class only.
fn global_steps(flavors: &[FlavorFact], nodes: &[(NodePlan, Vec<&InstanceFact>)]) -> Vec<Step> {
    let mut classes: BTreeSet<String> = BTreeSet::new();
    let mut flavor_ids_by_class: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (p, instances) in nodes.iter().filter(|(p, _)| goes_ahead(p)) {
        let Some(class) = &p.class else { continue };
        let ids = flavor_ids_by_class.entry(class.clone()).or_default();
        for i in instances {
            for f in i.flavors.iter().flatten() {
                ids.extend(f.flavorid.clone());
            }
        }
        if !p.steps.is_empty() {
            classes.insert(class.clone());
        }
    }
    let mut flavor_steps = Vec::new();
    for f in flavors {
        let class = flavor_ids_by_class.iter().find_map(|(class, ids)| {
            let key = format!("resources:{class}");
            let asks = f.extra_specs.get(&key).is_some_and(|v| v.trim() != "0");
            (asks || ids.contains(&f.id)).then_some(class)
        });
        let Some(class) = class else { continue };
        let missing = missing_specs(&f.extra_specs, &target_specs(class));
        if missing.is_empty() {
            continue;
        }
        classes.insert(class.clone());
        flavor_steps.push(Step::SetFlavorExtraSpecs {
            flavor_id: f.id.clone(),
            flavor_name: f.name.clone(),
            specs: missing,
        });
    }
    let mut global: Vec<Step> = classes
        .into_iter()
        .map(|class| Step::EnsureResourceClass { class })
        .collect();
    global.extend(flavor_steps);
    global
}

/// A node plan that does not go ahead, boxed (it is the error side of the planning steps).
type Skip = Box<NodePlan>;

fn node_plan(node: &NodeFact, class: Option<String>, status: NodeStatus) -> NodePlan {
    NodePlan {
        node: node.uuid.clone(),
        name: node.name.clone(),
        class,
        status,
        problems: Vec::new(),
        notes: Vec::new(),
        blockers: Vec::new(),
        steps: Vec::new(),
    }
}

fn skipped(node: &NodeFact, class: Option<String>, problem: String) -> NodePlan {
    let mut p = node_plan(node, class, NodeStatus::Skipped);
    p.problems.push(problem);
    p
}

/// One node: its class, then what its instances' flavors lack, then what Placement lacks, then
/// whether the allocations fit the inventory it will have. Any reason not to go ahead leaves
/// the node with no step at all.
fn plan_node(
    node: &NodeFact,
    provider: Option<&ProviderFact>,
    instances: &[&InstanceFact],
    consumers: &BTreeMap<String, ConsumerFact>,
) -> NodePlan {
    let class = match node_class(node) {
        Ok(class) => class,
        Err(p) => return *p,
    };
    let Some(provider) = provider else {
        return without_provider(node, class, instances);
    };
    let mut p = node_plan(node, Some(class.clone()), NodeStatus::NeedsRepair);
    if node.maintenance {
        p.notes
            .push("node is in maintenance (repaired all the same)".to_string());
    }
    if let Err(skip) = instance_steps(node, &class, instances, &mut p) {
        return *skip;
    }
    if let Err(skip) = placement_steps(node, &class, provider, &mut p) {
        return *skip;
    }
    let blockers = super::capacity::blockers(node, &class, provider, instances, consumers);
    p.notes.extend(super::capacity::consumer_notes(
        provider, instances, consumers,
    ));
    if !blockers.is_empty() {
        return blocked(node, class, provider, blockers, p.notes);
    }
    if !p.steps.is_empty() {
        p.steps.push(Step::CheckUsage {
            provider: provider.uuid.clone(),
            class: class.clone(),
            expected: provider.allocations.len() as i64,
        });
    } else {
        p.status = NodeStatus::Clean;
    }
    p
}

/// The node's custom class, or the plan of a node that has none.
fn node_class(node: &NodeFact) -> Result<String, Skip> {
    let rc = node.resource_class.as_deref().unwrap_or("").trim();
    if rc.is_empty() {
        let p = skipped(
            node,
            None,
            format!(
                "Ironic node {} has no resource_class, so its custom class cannot be named; run \
                 `steward repair classify` with rules, or set one (`openstack baremetal node set \
                 --resource-class CLASS {}`), and plan again",
                node.uuid, node.uuid
            ),
        );
        return Err(Box::new(p));
    }
    Ok(normalize_rc_name(rc))
}

/// A node Placement has no provider for: clean when nothing names it, skipped otherwise.
fn without_provider(node: &NodeFact, class: String, instances: &[&InstanceFact]) -> NodePlan {
    if instances.is_empty() {
        // Not reported by nova-compute (enroll, manageable, ...): nothing of it is in
        // Placement or in Nova's instances, so nothing to repair.
        let mut p = node_plan(node, Some(class), NodeStatus::Clean);
        p.notes.push(format!(
            "no resource provider in Placement (provision state {}): nothing to repair",
            node.provision_state.as_deref().unwrap_or("?")
        ));
        return p;
    }
    skipped(
        node,
        Some(class),
        format!(
            "Placement has no resource provider {} for Ironic node {}, which has instances: \
             nova-compute has not reported the node; check its nova-compute service and plan \
             again",
            node.uuid, node.uuid
        ),
    )
}

/// The rewrites of the instances' embedded flavors, then of their request specs.
fn instance_steps(
    node: &NodeFact,
    class: &str,
    instances: &[&InstanceFact],
    p: &mut NodePlan,
) -> Result<(), Skip> {
    let target = target_specs(class);
    let mut spec_steps = Vec::new();
    for i in instances {
        let flavors = readable_flavors(node, class, i)?;
        let embedded: Vec<Copy> = flavors
            .iter()
            .filter(|f| f.copy != Copy::RequestSpec)
            .filter(|f| !missing_specs(&f.extra_specs, &target).is_empty())
            .map(|f| f.copy)
            .collect();
        if !embedded.is_empty() {
            p.problems.push(format!(
                "instance {} ({}): embedded flavor ({}) lacks {}",
                i.uuid,
                i.vm_state.as_deref().unwrap_or("?"),
                embedded
                    .iter()
                    .map(|c| format!("{c:?}").to_lowercase())
                    .collect::<Vec<_>>()
                    .join(", "),
                target.keys().cloned().collect::<Vec<_>>().join(" ")
            ));
            p.steps.push(Step::RewriteInstanceFlavor {
                instance: i.uuid.clone(),
                cell: i.cell.clone(),
                copies: embedded,
                specs: target.clone(),
            });
        }
        match flavors.iter().find(|f| f.copy == Copy::RequestSpec) {
            Some(rs) if !missing_specs(&rs.extra_specs, &target).is_empty() => {
                p.problems.push(format!(
                    "instance {}: request spec flavor lacks the custom-class specs",
                    i.uuid
                ));
                spec_steps.push(Step::RewriteRequestSpec {
                    instance: i.uuid.clone(),
                    specs: target.clone(),
                });
            }
            Some(_) => {}
            None => p
                .notes
                .push(format!("instance {} has no request spec", i.uuid)),
        }
        p.notes.extend(instance_notes(i, flavors));
    }
    p.steps.extend(spec_steps);
    Ok(())
}

/// An instance's flavors, or the plan of a node skipped because of them (unreadable, or
/// asking for another node class).
fn readable_flavors<'a>(
    node: &NodeFact,
    class: &str,
    i: &'a InstanceFact,
) -> Result<&'a [EmbeddedFlavor], Skip> {
    let flavors = i.flavors.as_ref().map_err(|why| {
        Box::new(skipped(
            node,
            Some(class.to_string()),
            format!(
                "instance {} on node {}: {why}; nothing is changed on this node",
                i.uuid, node.uuid
            ),
        ))
    })?;
    for f in flavors {
        if let Some(other) = other_custom_class(&f.extra_specs, class) {
            return Err(Box::new(skipped(
                node,
                Some(class.to_string()),
                format!(
                    "instance {}'s {:?} flavor {} asks for {other}, but node {} is {class}; fix \
                     the node's resource_class or the flavor first",
                    i.uuid,
                    f.copy,
                    f.name.as_deref().unwrap_or("?"),
                    node.uuid
                ),
            )));
        }
    }
    Ok(flavors)
}

fn instance_notes(i: &InstanceFact, flavors: &[EmbeddedFlavor]) -> Vec<String> {
    let mut notes = Vec::new();
    for f in flavors {
        let policy = f.extra_specs.get("hw:cpu_policy").map(|p| p.trim());
        if matches!(policy, Some("dedicated") | Some("mixed")) {
            notes.push(format!(
                "instance {}'s {:?} flavor sets hw:cpu_policy, so Nova also asks for PCPU; \
                 bare-metal flavors should not carry hw:cpu_policy",
                i.uuid, f.copy
            ));
        }
    }
    if let Some(ts) = &i.task_state {
        notes.push(format!("instance {} has task_state {ts}", i.uuid));
    }
    notes
}

/// Placement's part, in the order that never meets `placement.inventory.inuse`: the custom
/// class beside the standard ones, each allocation shrunk to it, then the custom class alone.
fn placement_steps(
    node: &NodeFact,
    class: &str,
    provider: &ProviderFact,
    p: &mut NodePlan,
) -> Result<(), Skip> {
    let others: Vec<&str> = provider
        .inventories
        .keys()
        .map(String::as_str)
        .filter(|rc| *rc != class && !STANDARD_CLASSES.contains(rc))
        .collect();
    if !others.is_empty() {
        return Err(Box::new(skipped(
            node,
            Some(class.to_string()),
            format!(
                "provider {} has inventory of {} besides {class}; steward only removes VCPU, \
                 MEMORY_MB and DISK_GB, so check the node's resource_class",
                provider.uuid,
                others.join(", ")
            ),
        )));
    }
    let standard: Vec<&str> = STANDARD_CLASSES
        .iter()
        .copied()
        .filter(|rc| provider.inventories.contains_key(*rc))
        .collect();
    let has_custom = provider.inventories.contains_key(class);
    if !has_custom {
        p.problems.push(format!(
            "provider {} has no {class} inventory",
            provider.uuid
        ));
        p.steps.push(Step::AddCustomInventory {
            provider: provider.uuid.clone(),
            class: class.to_string(),
        });
    }
    let want: BTreeMap<String, i64> = [(class.to_string(), 1)].into_iter().collect();
    for (consumer, resources) in &provider.allocations {
        if *resources != want {
            p.problems.push(format!(
                "consumer {consumer} holds {} on the node",
                fmt_resources(resources)
            ));
            p.steps.push(Step::ShrinkAllocation {
                consumer: consumer.clone(),
                provider: provider.uuid.clone(),
                class: class.to_string(),
                from: resources.clone(),
            });
        }
    }
    if !standard.is_empty() {
        p.problems.push(format!(
            "provider {} still has {} inventory",
            provider.uuid,
            standard.join(", ")
        ));
    }
    if !standard.is_empty() || !has_custom {
        p.steps.push(Step::SetCustomOnlyInventory {
            provider: provider.uuid.clone(),
            class: class.to_string(),
        });
    }
    Ok(())
}

/// The plan of a node the allocations block: every blocker named, nothing to write.
fn blocked(
    node: &NodeFact,
    class: String,
    provider: &ProviderFact,
    blockers: Vec<super::capacity::Blocker>,
    notes: Vec<String>,
) -> NodePlan {
    let mut p = node_plan(node, Some(class.clone()), NodeStatus::Blocked);
    p.problems.push(format!(
        "blocked: after the repair provider {} would have {class} total 1 only, and {} \
         consumer(s) would not fit ({}); nothing is written on this node until they are gone \
         or moved",
        provider.uuid,
        blockers.len(),
        blockers
            .iter()
            .map(|b| format!("{} ({})", b.consumer, b.kind.as_str()))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    p.notes = notes;
    p.blockers = blockers;
    p
}

pub fn fmt_resources(r: &BTreeMap<String, i64>) -> String {
    r.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// What `verify` reports: the problems of every node that is not clean.
pub fn problems(plan: &Plan) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for step in &plan.global {
        if let Step::SetFlavorExtraSpecs {
            flavor_id, specs, ..
        } = step
        {
            out.push((
                format!("flavor {flavor_id}"),
                format!(
                    "lacks {}",
                    specs.keys().cloned().collect::<Vec<_>>().join(" ")
                ),
            ));
        }
    }
    for n in &plan.nodes {
        for p in &n.problems {
            out.push((n.node.clone(), p.clone()));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_as_nova_does() {
        assert_eq!(normalize_rc_name("baremetal-gold"), "CUSTOM_BAREMETAL_GOLD");
        assert_eq!(normalize_rc_name("Fußball"), "CUSTOM_FU_BALL");
        assert_eq!(normalize_rc_name("CUSTOM_X"), "CUSTOM_CUSTOM_X");
        assert_eq!(normalize_rc_name("gold"), "CUSTOM_GOLD");
        assert_eq!(normalize_rc_name("a..b  c"), "CUSTOM_A_B_C");
    }
}
