//! Putting back what a run wrote, from the journal's before-images: a whole run, the nodes a
//! selection names (`--node`, `--resource-class`, `--cell`), or, inside `apply`, the writes of
//! one node whose later write failed (so that node is as it was before the run).
//!
//! Restoring is a compare-and-swap where Nova's rows are concerned (the row's `updated_at` put
//! back too, so a full rollback is byte-equal), and idempotent: an object already as it was is
//! `unchanged`. A flavor's extra specs go back through Nova's API, then their rows' timestamps
//! through Nova's API database, guarded by the values just restored.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde_json::Value;

use crate::novadb::Stamp;
use crate::openstack::ironic::NodeFilter;
use crate::openstack::placement::{is_concurrent_update, ConsumerOwner, Inventory};
use crate::store::{JournalEntry, Store};

use super::facts::{cell_names, check_cell, node_facts, Clients};
use super::plan::Selection;
use super::rows::NovaRow;
use super::steps::{consumer_type, parse_flavor_specs_image, parse_row_image};
use super::RepairError;

/// The journal actions that write Placement (inventories and allocations).
pub const PLACEMENT_ACTIONS: [&str; 3] = [
    "add_custom_inventory",
    "set_custom_only_inventory",
    "shrink_allocation",
];

/// What the consequence of restoring Nova's flavors without Placement is, for the refusal and
/// for `--flavors-only`'s help.
pub const FLAVORS_ONLY_CONSEQUENCE: &str = "the instances' embedded flavors and request specs \
     would ask Placement for VCPU, MEMORY_MB and DISK_GB again while their allocations and their \
     nodes' inventories stay custom-class only: `steward repair verify` reports every such \
     instance, and a rebuild, a move or `nova-manage placement heal_allocations` of it fails or \
     re-allocates until `steward repair apply` runs again or the rollback is repeated with \
     --placement";

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RollbackItem {
    pub object: String,
    pub action: String,
    /// The node the write belonged to (`-` for a run-wide write: a class, a flavor).
    pub node: String,
    /// `restored`, `restored_specs_only` (Nova changed it since; only extra specs put back),
    /// `unchanged`, `kept` (not in the rollback's scope) or `failed`.
    pub result: String,
    pub message: Option<String>,
}

/// What a rollback covers.
#[derive(Debug, Clone, Default)]
pub struct RollbackOptions {
    /// Inventories and allocations too.
    pub placement: bool,
    /// Restore Nova's copies even though Placement stays repaired (the operator asked for
    /// exactly that, knowing [`FLAVORS_ONLY_CONSEQUENCE`]).
    pub flavors_only: bool,
    /// Only the nodes this selects; run-wide writes (classes, flavors) are then kept.
    pub scope: Selection,
}

impl RollbackOptions {
    fn scoped(&self) -> bool {
        !self.scope.nodes.is_empty()
            || self.scope.resource_class.is_some()
            || self.scope.cell.is_some()
    }
}

/// One object's writes in a run: its first before-image (its state before the run) and its
/// last after-image (what the run left, or meant to: a killed run leaves `pending` entries
/// whose write may have happened, so every entry counts).
struct Written<'a> {
    action: String,
    object: String,
    node: String,
    before: &'a JournalEntry,
    after: &'a JournalEntry,
    entries: Vec<&'a JournalEntry>,
}

impl Written<'_> {
    /// Mark every journal entry of the object `state` (`restored`, `undone`), keeping what
    /// each entry says it left.
    async fn mark(&self, store: &Store, state: &str) -> Result<(), RepairError> {
        for e in &self.entries {
            store
                .repair_journal_mark(
                    &e.entry,
                    state,
                    e.after_image.as_deref(),
                    e.message.as_deref(),
                )
                .await?;
        }
        Ok(())
    }
}

/// The objects `journal` wrote, in the order first written; entries already undone inside
/// `apply` are left out (their object is as it was).
fn written(journal: &[JournalEntry]) -> Vec<Written<'_>> {
    let mut order: Vec<(String, String)> = Vec::new();
    let mut by_key: BTreeMap<(String, String), Vec<&JournalEntry>> = BTreeMap::new();
    for e in journal
        .iter()
        .filter(|e| e.before_image.is_some() && e.state != "undone")
    {
        let key = (e.action.clone(), e.object.clone());
        if !by_key.contains_key(&key) {
            order.push(key.clone());
        }
        by_key.entry(key).or_default().push(e);
    }
    order
        .into_iter()
        .filter_map(|key| {
            let entries = by_key.remove(&key)?;
            let before = *entries.first()?;
            let after = *entries.iter().rev().find(|e| e.after_image.is_some())?;
            Some(Written {
                action: key.0,
                object: key.1,
                node: before.node.clone(),
                before,
                after,
                entries,
            })
        })
        .collect()
}

/// Put back what run `run_id` wrote, newest write first, as `options` says. Refused (bad
/// input) when the run is unknown, when the scope selects none of the run's nodes, or when
/// Nova's copies would be restored while Placement stays repaired and the operator did not
/// ask for exactly that.
pub async fn rollback(
    clients: &Clients,
    store: &Store,
    run_id: &str,
    options: &RollbackOptions,
) -> Result<Vec<RollbackItem>, RepairError> {
    if store.repair_run(run_id).await?.is_none() {
        return Err(RepairError::Input(format!(
            "no repair run {run_id}; pass the run id `steward repair apply` printed (`steward \
             repair status` lists them)"
        )));
    }
    let journal = store.repair_journal(run_id).await?;
    let objects = written(&journal);
    let nodes: BTreeSet<String> = objects
        .iter()
        .map(|w| w.node.clone())
        .filter(|n| n != "-")
        .collect();
    let in_scope = scope_nodes(clients, &nodes, options).await?;
    refuse_disagreement(&objects, &in_scope, options)?;
    let mut out = Vec::new();
    for w in objects.iter().rev() {
        let mut item = RollbackItem {
            object: w.object.clone(),
            action: w.action.clone(),
            node: w.node.clone(),
            result: "kept".into(),
            message: None,
        };
        let selected = match &in_scope {
            Some(set) => set.contains(&w.node),
            None => true,
        };
        let placement = PLACEMENT_ACTIONS.contains(&w.action.as_str());
        if !selected {
            item.message = Some(if w.node == "-" {
                "run-wide write (a class or a flavor): a scoped rollback keeps it".into()
            } else {
                "node not in the rollback's selection".into()
            });
        } else if placement && !options.placement {
            item.message = Some("Placement write: kept without --placement".into());
        } else {
            match restore(clients, w.before, w.after).await {
                Ok(r) => {
                    item.result = r.result.to_string();
                    item.message = r.note;
                    w.mark(store, "restored").await?;
                }
                Err(e) => {
                    item.result = "failed".into();
                    item.message = Some(e.to_string());
                }
            }
        }
        out.push(item);
    }
    let complete = in_scope.is_none() && (options.placement || !has_placement(&objects));
    if out.iter().all(|i| i.result != "failed") {
        // A scoped or flavors-only rollback leaves part of the run in place.
        let status = if complete {
            "rolled_back"
        } else {
            "partly_rolled_back"
        };
        store
            .repair_run_finish(
                run_id,
                status,
                crate::unix_now(),
                &serde_json::to_string(&out)?,
            )
            .await?;
    }
    Ok(out)
}

fn has_placement(objects: &[Written<'_>]) -> bool {
    objects
        .iter()
        .any(|w| PLACEMENT_ACTIONS.contains(&w.action.as_str()))
}

/// The run's nodes the scope selects (None: no scope, everything). A scope that selects none
/// of them is refused, naming the nodes the run wrote.
async fn scope_nodes(
    clients: &Clients,
    run_nodes: &BTreeSet<String>,
    options: &RollbackOptions,
) -> Result<Option<BTreeSet<String>>, RepairError> {
    if !options.scoped() {
        return Ok(None);
    }
    let s = &options.scope;
    let names = cell_names(&clients.db);
    check_cell(&names, s.cell.as_deref())?;
    let node_cells = clients.db.node_cells().await?;
    let facts = node_facts(
        clients.ironic.nodes(&NodeFilter::default()).await?,
        &node_cells,
    );
    for wanted in &s.nodes {
        if !facts
            .iter()
            .any(|n| &n.uuid == wanted || n.name.as_ref() == Some(wanted))
            && !run_nodes.contains(wanted)
        {
            return Err(RepairError::Input(format!(
                "Ironic has no node {wanted}; pass a node uuid or name the run wrote: {}",
                list(run_nodes)
            )));
        }
    }
    let selected: BTreeSet<String> = run_nodes
        .iter()
        .filter(|uuid| match facts.iter().find(|n| &n.uuid == *uuid) {
            Some(n) => s.matches(n, &names),
            // A node Ironic no longer has: only `--node UUID` names it.
            None => s.nodes.contains(uuid) && s.resource_class.is_none() && s.cell.is_none(),
        })
        .cloned()
        .collect();
    if selected.is_empty() {
        return Err(RepairError::Input(format!(
            "the selection matches none of the nodes this run wrote ({}); nothing would be \
             rolled back",
            list(run_nodes)
        )));
    }
    Ok(Some(selected))
}

fn list(nodes: &BTreeSet<String>) -> String {
    if nodes.is_empty() {
        return "none".into();
    }
    nodes.iter().cloned().collect::<Vec<_>>().join(", ")
}

/// Refuse to restore Nova's copies of a node (or the run's flavors) while its Placement writes
/// stay, unless the operator asked for exactly that.
fn refuse_disagreement(
    objects: &[Written<'_>],
    in_scope: &Option<BTreeSet<String>>,
    options: &RollbackOptions,
) -> Result<(), RepairError> {
    if options.placement || options.flavors_only {
        return Ok(());
    }
    let selected = |n: &str| in_scope.as_ref().is_none_or(|s| s.contains(n));
    let nodes: BTreeSet<&str> = objects
        .iter()
        .filter(|w| PLACEMENT_ACTIONS.contains(&w.action.as_str()) && selected(&w.node))
        .map(|w| w.node.as_str())
        .collect();
    if nodes.is_empty() {
        return Ok(());
    }
    Err(RepairError::Input(format!(
        "refused: this run also changed Placement for node(s) {}; restoring Nova's flavors \
         without Placement would leave them disagreeing: {FLAVORS_ONLY_CONSEQUENCE}. Pass \
         --placement to restore both (what you want in almost every case), or --flavors-only if \
         you want exactly that",
        nodes.into_iter().collect::<Vec<_>>().join(", ")
    )))
}

/// Inside `apply`: put back, newest first, what run `run_id` wrote on `node`, stopping at the
/// first object that cannot be restored (what is left then is a state the forward order also
/// passes through). Returns how many objects were restored and the error that stopped it.
pub async fn undo_node(
    clients: &Clients,
    store: &Store,
    run_id: &str,
    node: &str,
) -> Result<(usize, Option<String>), RepairError> {
    let journal = store.repair_journal(run_id).await?;
    let mine: Vec<JournalEntry> = journal.into_iter().filter(|e| e.node == node).collect();
    let objects = written(&mine);
    let mut undone = 0;
    for w in objects.iter().rev() {
        match restore(clients, w.before, w.after).await {
            Ok(_) => {
                w.mark(store, "undone").await?;
                undone += 1;
            }
            Err(e) => return Ok((undone, Some(format!("{} {}: {e}", w.action, w.object)))),
        }
    }
    Ok((undone, None))
}

fn text(image: &Option<Vec<u8>>) -> Result<String, RepairError> {
    image
        .as_ref()
        .and_then(|b| String::from_utf8(b.clone()).ok())
        .ok_or_else(|| RepairError::Data("the journal entry has no readable image".into()))
}

/// A Nova row's before-image: its text and what `updated_at` to put back.
fn row_before(entry: &JournalEntry) -> Result<(String, Stamp), RepairError> {
    let (text, stamp) = entry
        .before_image
        .as_deref()
        .and_then(parse_row_image)
        .ok_or_else(|| RepairError::Data("the journal entry has no readable image".into()))?;
    Ok((text, stamp.map_or(Stamp::Now, Stamp::Exactly)))
}

pub fn object_id(object: &str) -> &str {
    object.split_once(' ').map_or(object, |(_, id)| id)
}

/// How one object was put back: its result (`restored`, `restored_specs_only`, `unchanged`)
/// and, when part of it could not be, a note for the rollback's output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Restored {
    pub result: &'static str,
    pub note: Option<String>,
}

impl Restored {
    fn noted(result: &'static str, note: String) -> Self {
        Restored {
            result,
            note: Some(note),
        }
    }
}

impl From<&'static str> for Restored {
    fn from(result: &'static str) -> Self {
        Restored { result, note: None }
    }
}

/// Put one object back as `before` found it; `after` holds what the run left.
pub async fn restore(
    c: &Clients,
    before: &JournalEntry,
    after: &JournalEntry,
) -> Result<Restored, RepairError> {
    let id = object_id(&before.object);
    let result = match before.action.as_str() {
        "rewrite_instance_flavor" => restore_instance_flavor(c, id, before, after).await,
        "rewrite_request_spec" => restore_request_spec(c, id, before, after).await,
        "set_flavor_extra_specs" => return restore_flavor_extra_specs(c, id, before).await,
        "add_custom_inventory" | "set_custom_only_inventory" => {
            restore_inventory(c, id, before).await
        }
        "shrink_allocation" => restore_allocation(c, id, before).await,
        "set_node_resource_class" => restore_node_class(c, id).await,
        other => Err(RepairError::Data(format!(
            "journal action {other} cannot be rolled back"
        ))),
    };
    result.map(Restored::from)
}

async fn restore_instance_flavor(
    c: &Clients,
    id: &str,
    before: &JournalEntry,
    after: &JournalEntry,
) -> Result<&'static str, RepairError> {
    let cell = instance_cell(c, id).await?;
    let row = NovaRow::Flavor {
        cell: &cell,
        instance: id,
    };
    restore_row(c, row, before, after).await
}

async fn restore_request_spec(
    c: &Clients,
    id: &str,
    before: &JournalEntry,
    after: &JournalEntry,
) -> Result<&'static str, RepairError> {
    restore_row(c, NovaRow::RequestSpec { instance: id }, before, after).await
}

/// A row of Nova's as `before` found it, `updated_at` included, if it still holds what the run
/// left; if Nova wrote it since (a resize), only the extra specs are put back and Nova's newer
/// `updated_at` stays.
async fn restore_row(
    c: &Clients,
    row: NovaRow<'_>,
    before: &JournalEntry,
    after: &JournalEntry,
) -> Result<&'static str, RepairError> {
    let (old, stamp) = row_before(before)?;
    let left = text(&after.after_image)?;
    let Some(current) = row.read(&c.db).await? else {
        return Err(RepairError::Gone(format!("{} is gone", row.describe())));
    };
    if current.text == old {
        return Ok("unchanged");
    }
    let (new, result, stamp) = if current.text == left {
        (old, "restored", stamp)
    } else {
        let new = row.restore_specs(&current.text, &old)?;
        (new, "restored_specs_only", Stamp::Now)
    };
    if row.swap(&c.db, &current.text, &new, &stamp).await? {
        Ok(result)
    } else {
        Err(RepairError::Gone(format!(
            "{} changed during the rollback; run it again",
            row.describe()
        )))
    }
}

/// A flavor's extra specs as `before` found them: the values through Nova's API (which
/// validates them), then the rows' `created_at` and `updated_at` put back in
/// `nova_api.flavor_extra_specs`, in one transaction guarded by the values just restored. A
/// before-image without the rows (an older journal, or no access to that table) restores the
/// values alone, and the note says the rows keep new timestamps.
async fn restore_flavor_extra_specs(
    c: &Clients,
    id: &str,
    before: &JournalEntry,
) -> Result<Restored, RepairError> {
    let img = before
        .before_image
        .as_deref()
        .and_then(parse_flavor_specs_image)
        .ok_or_else(|| RepairError::Data("the journal entry has no readable image".into()))?;
    let mut set = BTreeMap::new();
    for (k, v) in &img.extra_specs {
        match v {
            Some(s) => {
                set.insert(k.clone(), s.clone());
            }
            None => match c.nova.delete_flavor_extra_spec(id, k).await {
                Ok(()) => {}
                Err(e) if e.status() == Some(404) => {}
                Err(e) => return Err(e.into()),
            },
        }
    }
    if !set.is_empty() {
        c.nova.set_flavor_extra_specs(id, &set).await?;
    }
    let Some(rows) = &img.rows else {
        return Ok(Restored::noted(
            "restored",
            kept_timestamps(id, "the journal holds no before-image of them"),
        ));
    };
    match c
        .db
        .restamp_flavor_extra_specs(id, &img.extra_specs, rows)
        .await
    {
        Ok(true) => Ok("restored".into()),
        Ok(false) => Err(RepairError::Gone(format!(
            "flavor {id}'s extra specs changed during the rollback (their values are back, their \
             timestamps not yet); run it again"
        ))),
        Err(e) if e.is_no_access() => Ok(Restored::noted(
            "restored",
            kept_timestamps(id, &format!("steward may not write them: {e}")),
        )),
        Err(e) => Err(e.into()),
    }
}

/// The note of a flavor whose extra specs are back but whose rows keep new timestamps.
fn kept_timestamps(id: &str, why: &str) -> String {
    format!(
        "flavor {id}: values restored through Nova's API; their rows in \
         nova_api.flavor_extra_specs keep new created_at/updated_at ({why})"
    )
}

async fn restore_inventory(
    c: &Clients,
    id: &str,
    before: &JournalEntry,
) -> Result<&'static str, RepairError> {
    let img: Value = serde_json::from_str(&text(&before.before_image)?)?;
    let inv: BTreeMap<String, Inventory> =
        serde_json::from_value(img.get("inventories").cloned().unwrap_or(Value::Null))?;
    for _ in 0..5 {
        let current = c.placement.inventories(id).await?;
        if serde_json::to_value(&current.inventories)? == serde_json::to_value(&inv)? {
            return Ok("unchanged");
        }
        match c
            .placement
            .set_inventories(id, current.generation, &inv)
            .await
        {
            Ok(_) => return Ok("restored"),
            Err(e) if is_concurrent_update(&e) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(RepairError::Gone(format!(
        "provider {id} kept changing during the rollback"
    )))
}

/// Take back the class classify gave a node (it had none). Ironic refuses outside enroll,
/// inspecting, inspect wait, manageable and available: an active node keeps it, and the error
/// says so.
async fn restore_node_class(c: &Clients, id: &str) -> Result<&'static str, RepairError> {
    let node = c.ironic.node(id).await?;
    if node
        .resource_class
        .as_deref()
        .is_none_or(|r| r.trim().is_empty())
    {
        return Ok("unchanged");
    }
    c.ironic.set_resource_class(id, None).await.map_err(|e| {
        RepairError::Data(format!(
            "Ironic refused to remove node {id}'s resource_class ({e}); Ironic changes a class \
             only in enroll, inspecting, inspect wait, manageable or available: roll back again \
             once the node is there, or keep the class"
        ))
    })?;
    Ok("restored")
}

async fn restore_allocation(
    c: &Clients,
    id: &str,
    before: &JournalEntry,
) -> Result<&'static str, RepairError> {
    let img: Value = serde_json::from_str(&text(&before.before_image)?)?;
    let allocs = allocations_of(&img);
    for _ in 0..5 {
        let current = c.placement.allocations(id).await?;
        if held(&current) == allocs {
            return Ok("unchanged");
        }
        let owner = owner_from_image(&img, current.consumer_generation);
        match c.placement.set_allocations(id, &allocs, &owner).await {
            Ok(()) => return Ok("restored"),
            Err(e) if is_concurrent_update(&e) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(RepairError::Gone(format!(
        "consumer {id} kept changing during the rollback"
    )))
}

/// What a consumer holds, provider -> resources.
pub fn held(
    a: &crate::openstack::placement::ConsumerAllocations,
) -> BTreeMap<String, BTreeMap<String, i64>> {
    a.allocations
        .iter()
        .map(|(rp, r)| (rp.clone(), r.resources.clone()))
        .collect()
}

/// The owner of a consumer as its journal before-image recorded it, with the consumer
/// generation just read.
pub fn owner_from_image(img: &Value, consumer_generation: Option<i64>) -> ConsumerOwner {
    let field = |k: &str| {
        img.get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    ConsumerOwner {
        project_id: field("project_id"),
        user_id: field("user_id"),
        consumer_generation,
        consumer_type: consumer_type(img.get("consumer_type").and_then(Value::as_str)),
    }
}

/// `{"allocations": {rp: {"resources": {...}}}}` (a before-image) or `{rp: {...}}` (an
/// intended after-image) as provider -> resources.
pub fn allocations_of(img: &Value) -> BTreeMap<String, BTreeMap<String, i64>> {
    img.get("allocations")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(rp, v)| {
                    let r = v.get("resources").unwrap_or(v).clone();
                    Some((rp.clone(), serde_json::from_value(r).ok()?))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The cell of a live instance, found by asking each cell.
pub async fn instance_cell(c: &Clients, instance: &str) -> Result<String, RepairError> {
    for cell in c.db.cells() {
        if c.db.instance_flavor(&cell.uuid, instance).await?.is_some() {
            return Ok(cell.uuid.clone());
        }
    }
    Err(RepairError::Gone(format!(
        "instance {instance} is in no cell steward can reach"
    )))
}
