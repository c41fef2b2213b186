//! Executing a repair plan: global steps first (custom classes, flavors), then node by node with
//! bounded concurrency. Every write to Nova's data or Placement is journaled with its
//! before-image BEFORE it is made; each step re-reads what it changes right before writing
//! (generations, current JSON), so a step that already happened is a no-op and a run killed
//! anywhere finishes when started again. Also `rollback` from the journal.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde_json::{json, Value};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::novadb::{FlavorPrimitive, InstanceFlavors, RequestSpecPrimitive};
use crate::openstack::placement::{
    is_concurrent_update, is_inventory_in_use, ConsumerOwner, Inventory,
};
use crate::peerclock::{Peer, Timings};
use crate::store::{JournalEntry, Store};

use super::facts::Clients;
use super::plan::{NodePlan, Plan, Step};
use super::RepairError;

/// What to do after a run-wide step (a resource class, a flavor) failed for another reason than
/// an outage.
const GLOBAL_HINT: &str = "no node was started and the journal holds every write made so far; \
     fix what the error names, then run `steward repair apply` with the same selection to finish \
     (or `steward repair rollback RUN_ID` to undo it)";

/// How a run goes.
#[derive(Debug, Clone)]
pub struct ApplyOptions {
    /// Attempts of one write that keeps losing races (`placement.concurrent_update`, a flavor
    /// row changed between read and write).
    pub max_attempts: u32,
    /// Show a progress bar on stderr.
    pub progress: bool,
    /// Where `steward_repair_runs_total` is counted (the server's registry; a one-shot CLI
    /// run has none and leaves its record in the journal's `repair_run`).
    pub metrics: Option<crate::metrics::Metrics>,
}

/// What happened to one node.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NodeResult {
    pub node: String,
    /// `repaired`, `failed`, `skipped` or `clean`.
    pub result: String,
    pub steps_done: usize,
    pub error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunReport {
    pub run_id: String,
    /// True when the run picked up a run that had been interrupted.
    pub resumed: bool,
    pub ok: bool,
    pub global_error: Option<String>,
    pub nodes: Vec<NodeResult>,
    /// Where the wall time went, from connecting to the peers (so gathering the facts and
    /// planning included) to the end of the last node: time waited on each peer, as the union
    /// of the intervals with a call outstanding, and steward's own share.
    pub timings: Option<Timings>,
}

/// One executor shared by the node tasks.
struct Exec {
    clients: Clients,
    store: Store,
    run_id: String,
    max_attempts: u32,
}

fn now() -> f64 {
    crate::unix_now()
}

fn to_json_bytes(v: &impl Serialize) -> Vec<u8> {
    serde_json::to_vec(v).unwrap_or_default()
}

/// Run `plan`: under a new run id, or under the id of an interrupted run (status `running`)
/// so that one rollback covers everything the two did.
pub async fn apply(
    clients: Clients,
    store: Store,
    plan: &Plan,
    selection: &str,
    options: &ApplyOptions,
) -> Result<RunReport, RepairError> {
    let journal = clients.clock.start(Peer::Journal);
    let (run_id, resumed) = begin(&store, selection).await?;
    drop(journal);
    apply_run(clients, store, plan, run_id, resumed, options).await
}

/// The run to write under: the interrupted one (status `running`), else a new one.
pub async fn begin(store: &Store, selection: &str) -> Result<(String, bool), RepairError> {
    Ok(match store.repair_unfinished_run().await? {
        Some(run) => (run.id, true),
        None => {
            let id = format!("repair-{}", uuid::Uuid::new_v4());
            store.repair_run_start(&id, now(), selection).await?;
            (id, false)
        }
    })
}

/// Execute `plan` under a run [`begin`] gave.
pub async fn apply_run(
    clients: Clients,
    store: Store,
    plan: &Plan,
    run_id: String,
    resumed: bool,
    options: &ApplyOptions,
) -> Result<RunReport, RepairError> {
    if resumed {
        tracing::info!(run = %run_id, "resuming an interrupted repair run");
    }
    let exec = Arc::new(Exec {
        clients,
        store: store.clone(),
        run_id: run_id.clone(),
        max_attempts: options.max_attempts.max(1),
    });
    let mut report = RunReport {
        run_id: run_id.clone(),
        resumed,
        ok: true,
        global_error: None,
        nodes: Vec::new(),
        timings: None,
    };
    for step in &plan.global {
        if let Err(e) = exec.step("-", step).await {
            report.ok = false;
            let hint = if e.is_outage() {
                super::RESUME_HINT
            } else {
                GLOBAL_HINT
            };
            let object = match step {
                Step::SetFlavorExtraSpecs {
                    flavor_id,
                    flavor_name,
                    ..
                } => format!("flavor {flavor_id} ({flavor_name})"),
                _ => step.object(),
            };
            report.global_error = Some(format!("{} {object}: {e}; {hint}", step.action()));
            break;
        }
    }
    if report.ok {
        report.nodes = run_nodes(&exec, plan, options).await;
        report.ok = report
            .nodes
            .iter()
            .all(|n| n.result != "failed" && n.result != "not_started");
    }
    report.timings = Some(exec.clients.clock.timings());
    let status = if report.ok { "ok" } else { "failed" };
    if let Some(m) = &options.metrics {
        m.repair_runs.with_label_values(&[status]).inc();
    }
    store
        .repair_run_finish(&run_id, status, now(), &serde_json::to_string(&report)?)
        .await?;
    Ok(report)
}

async fn run_nodes(exec: &Arc<Exec>, plan: &Plan, options: &ApplyOptions) -> Vec<NodeResult> {
    let work: Vec<&NodePlan> = plan.nodes.iter().filter(|n| !n.steps.is_empty()).collect();
    let bar = if options.progress {
        let b = indicatif::ProgressBar::new(work.len() as u64);
        b.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} repair [{elapsed_precise}] {bar:40} {pos}/{len} nodes, eta {eta} {msg}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        b
    } else {
        indicatif::ProgressBar::hidden()
    };
    let gate = Arc::new(Semaphore::new(exec.clients.concurrency.max(1)));
    // Set by the first node that finds a peer down (Placement 5xx or silent, a Nova database
    // gone): the nodes not started yet are left alone, the run ends failed and the next apply
    // picks them up.
    let halted: Arc<std::sync::Mutex<Option<String>>> = Arc::default();
    let mut set = JoinSet::new();
    for n in &work {
        let exec = exec.clone();
        let node = (*n).clone();
        let gate = gate.clone();
        let halted = halted.clone();
        set.spawn(async move {
            let _permit = gate.acquire_owned().await;
            let why = halted.lock().map(|h| h.clone()).unwrap_or(None);
            if let Some(why) = why {
                return NodeResult {
                    node: node.node.clone(),
                    result: "not_started".into(),
                    steps_done: 0,
                    error: Some(format!(
                        "node {} not started: the run stopped because {why}; {}",
                        node.node,
                        super::RESUME_HINT
                    )),
                };
            }
            let (r, outage) = exec.node(&node).await;
            if outage {
                if let Ok(mut h) = halted.lock() {
                    h.get_or_insert_with(|| {
                        format!("node {} failed with a service unavailable", node.node)
                    });
                }
            }
            r
        });
    }
    let mut out: Vec<NodeResult> = plan
        .nodes
        .iter()
        .filter(|n| n.steps.is_empty())
        .map(|n| NodeResult {
            node: n.node.clone(),
            result: match n.status {
                super::plan::NodeStatus::Skipped => "skipped".into(),
                _ => "clean".into(),
            },
            steps_done: 0,
            error: n.problems.first().cloned(),
        })
        .collect();
    while let Some(done) = set.join_next().await {
        match done {
            Ok(r) => {
                if r.error.is_some() {
                    bar.set_message(format!("node {} failed", r.node));
                }
                out.push(r);
            }
            Err(e) => out.push(NodeResult {
                node: "?".into(),
                result: "failed".into(),
                steps_done: 0,
                error: Some(format!("a node task stopped: {e}")),
            }),
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    out.sort_by(|a, b| a.node.cmp(&b.node));
    out
}

impl Exec {
    /// Run one node's steps; true beside the result when it stopped on an outage.
    async fn node(&self, n: &NodePlan) -> (NodeResult, bool) {
        let mut done = 0;
        for step in &n.steps {
            if let Err(e) = self.step(&n.node, step).await {
                tracing::warn!(node = %n.node, step = step.action(), error = %e, "repair step failed; node stopped");
                let outage = e.is_outage();
                let hint = if outage {
                    format!("; {}", super::RESUME_HINT)
                } else {
                    String::new()
                };
                return (
                    NodeResult {
                        node: n.node.clone(),
                        result: "failed".into(),
                        steps_done: done,
                        error: Some(format!(
                            "node {}: {} {}: {e}{hint}",
                            n.node,
                            step.action(),
                            step.object()
                        )),
                    },
                    outage,
                );
            }
            done += 1;
        }
        (
            NodeResult {
                node: n.node.clone(),
                result: "repaired".into(),
                steps_done: done,
                error: None,
            },
            false,
        )
    }

    /// Journal a write about to happen (what it overwrites, what it writes); returns the
    /// entry's key.
    async fn before(
        &self,
        node: &str,
        step: &Step,
        image: Option<&[u8]>,
        intended: Option<&[u8]>,
    ) -> Result<String, RepairError> {
        let _wait = self.clients.clock.start(Peer::Journal);
        Ok(self
            .store
            .repair_journal_before(
                &self.run_id,
                node,
                step.action(),
                &step.object(),
                image,
                intended,
                now(),
            )
            .await?)
    }

    async fn done(&self, entry: String, after: Option<&[u8]>) -> Result<(), RepairError> {
        let _wait = self.clients.clock.start(Peer::Journal);
        self.store
            .repair_journal_mark(&entry, "done", after, None)
            .await?;
        Ok(())
    }

    /// The write was refused or its answer lost; the entry keeps its intended after-image, as
    /// a lost answer may hide a write that happened.
    async fn failed(&self, entry: String, e: &RepairError) {
        let _wait = self.clients.clock.start(Peer::Journal);
        let _ = self.store.repair_journal_fail(&entry, &e.to_string()).await;
    }

    /// Close the journal entry of a compare-and-swap write of Nova's text: `true` once written,
    /// `false` when the row changed under us (the entry fails; the caller reads again), the
    /// database's error otherwise.
    async fn swapped(
        &self,
        entry: String,
        new: &str,
        swap: Result<bool, crate::novadb::NovaDbError>,
    ) -> Result<bool, RepairError> {
        match swap {
            Ok(true) => self.done(entry, Some(new.as_bytes())).await.map(|()| true),
            Ok(false) => {
                let e = RepairError::Gone("changed under us; reading again".into());
                self.failed(entry, &e).await;
                Ok(false)
            }
            Err(e) => {
                let e = RepairError::from(e);
                self.failed(entry, &e).await;
                Err(e)
            }
        }
    }

    async fn step(&self, node: &str, step: &Step) -> Result<(), RepairError> {
        let c = &self.clients;
        match step {
            Step::EnsureResourceClass { class } => {
                c.placement.ensure_resource_class(class).await?;
                Ok(())
            }
            Step::SetFlavorExtraSpecs {
                flavor_id,
                flavor_name,
                specs,
            } => {
                let mut refused = None;
                for _ in 0..self.max_attempts {
                    let current = c
                        .nova
                        .flavors()
                        .await?
                        .into_iter()
                        .find(|f| &f.id == flavor_id)
                        .ok_or_else(|| {
                            RepairError::Gone(format!(
                                "flavor {flavor_id} ({flavor_name}) no longer exists"
                            ))
                        })?;
                    let before: BTreeMap<&String, Option<&String>> = specs
                        .keys()
                        .map(|k| (k, current.extra_specs.get(k)))
                        .collect();
                    if specs
                        .iter()
                        .all(|(k, v)| current.extra_specs.get(k) == Some(v))
                    {
                        return Ok(());
                    }
                    let entry = self
                        .before(
                            node,
                            step,
                            Some(&to_json_bytes(
                                &json!({"flavor_id": flavor_id, "extra_specs": before}),
                            )),
                            Some(&to_json_bytes(specs)),
                        )
                        .await?;
                    match c.nova.set_flavor_extra_specs(flavor_id, specs).await {
                        Ok(after) => return self.done(entry, Some(&to_json_bytes(&after))).await,
                        // Nova's 409 here is FlavorExtraSpecUpdateCreateFailed: its own
                        // retries lost to concurrent writers. Read again and retry.
                        Err(e) if e.status() == Some(409) => {
                            let e = RepairError::from(e);
                            self.failed(entry, &e).await;
                            refused = Some(e);
                        }
                        Err(e) => {
                            let e = RepairError::from(e);
                            self.failed(entry, &e).await;
                            return Err(e);
                        }
                    }
                }
                Err(RepairError::Data(format!(
                    "{} (refused {} times in a row, [repair] max_attempts: something else keeps \
                     writing flavor {flavor_id}'s extra specs)",
                    refused.map(|e| e.to_string()).unwrap_or_default(),
                    self.max_attempts
                )))
            }
            Step::RewriteInstanceFlavor {
                instance,
                cell,
                specs,
                ..
            } => {
                for _ in 0..self.max_attempts {
                    let Some(current) = c.db.instance_flavor(cell, instance).await? else {
                        return Err(RepairError::Gone(format!(
                            "instance {instance} has no instance_extra row any more (deleted?)"
                        )));
                    };
                    let mut parsed = InstanceFlavors::parse(&current).map_err(|e| {
                        RepairError::Data(format!(
                            "instance {instance}: instance_extra.flavor is not Nova's flavor \
                             JSON ({e})"
                        ))
                    })?;
                    let mut changed = false;
                    for f in parsed.all_mut() {
                        changed |= f.set_extra_specs(specs);
                    }
                    if !changed {
                        return Ok(());
                    }
                    let new = parsed.to_text();
                    let entry = self
                        .before(node, step, Some(current.as_bytes()), Some(new.as_bytes()))
                        .await?;
                    let swap =
                        c.db.swap_instance_flavor(cell, instance, &current, &new)
                            .await;
                    if self.swapped(entry, &new, swap).await? {
                        return Ok(());
                    }
                }
                Err(self.lost_races(&format!("instance {instance}'s flavor")))
            }
            Step::RewriteRequestSpec { instance, specs } => {
                for _ in 0..self.max_attempts {
                    let Some(current) = c.db.request_spec(instance).await? else {
                        return Ok(());
                    };
                    let mut parsed = RequestSpecPrimitive::parse(&current).map_err(|e| {
                        RepairError::Data(format!(
                            "instance {instance}: request_specs.spec is not a RequestSpec ({e})"
                        ))
                    })?;
                    let changed = parsed
                        .flavor_mut()
                        .map(|f| f.set_extra_specs(specs))
                        .unwrap_or(false);
                    if !changed {
                        return Ok(());
                    }
                    let new = parsed.to_text();
                    let entry = self
                        .before(node, step, Some(current.as_bytes()), Some(new.as_bytes()))
                        .await?;
                    let swap = c.db.swap_request_spec(instance, &current, &new).await;
                    if self.swapped(entry, &new, swap).await? {
                        return Ok(());
                    }
                }
                Err(self.lost_races(&format!("instance {instance}'s request spec")))
            }
            Step::AddCustomInventory { provider, class } => {
                self.write_inventory(node, step, provider, |inv| {
                    if inv.contains_key(class) {
                        return None;
                    }
                    let mut new = inv.clone();
                    new.insert(class.clone(), custom_inventory(None));
                    Some(new)
                })
                .await
            }
            Step::SetCustomOnlyInventory { provider, class } => {
                self.write_inventory(node, step, provider, |inv| {
                    if inv.len() == 1 && inv.contains_key(class) {
                        return None;
                    }
                    let mut new = BTreeMap::new();
                    new.insert(class.clone(), custom_inventory(inv.get(class)));
                    Some(new)
                })
                .await
            }
            Step::ShrinkAllocation {
                consumer,
                provider,
                class,
                ..
            } => {
                for _ in 0..self.max_attempts {
                    let current = c.placement.allocations(consumer).await?;
                    let Some(here) = current.allocations.get(provider) else {
                        return Ok(()); // the consumer left the node
                    };
                    let want: BTreeMap<String, i64> = [(class.clone(), 1)].into_iter().collect();
                    if here.resources == want {
                        return Ok(());
                    }
                    let mut new: BTreeMap<String, BTreeMap<String, i64>> = current
                        .allocations
                        .iter()
                        .map(|(rp, r)| (rp.clone(), r.resources.clone()))
                        .collect();
                    new.insert(provider.clone(), want);
                    let owner = ConsumerOwner {
                        project_id: current.project_id.clone().unwrap_or_default(),
                        user_id: current.user_id.clone().unwrap_or_default(),
                        consumer_generation: current.consumer_generation,
                        consumer_type: consumer_type(current.consumer_type.as_deref()),
                    };
                    let before = json!({
                        "allocations": current.allocations.iter().map(|(rp, r)| (rp.clone(), json!({"resources": r.resources}))).collect::<serde_json::Map<String, Value>>(),
                        "project_id": owner.project_id,
                        "user_id": owner.user_id,
                        "consumer_type": owner.consumer_type,
                    });
                    let entry = self
                        .before(
                            node,
                            step,
                            Some(&to_json_bytes(&before)),
                            Some(&to_json_bytes(&json!({"allocations": new}))),
                        )
                        .await?;
                    match c.placement.set_allocations(consumer, &new, &owner).await {
                        Ok(()) => {
                            return self
                                .done(entry, Some(&to_json_bytes(&json!({"allocations": new}))))
                                .await
                        }
                        Err(e) if is_concurrent_update(&e) => {
                            self.failed(entry, &RepairError::from(e)).await;
                        }
                        Err(e) => {
                            let e = RepairError::from(e);
                            self.failed(entry, &e).await;
                            return Err(e);
                        }
                    }
                }
                Err(self.lost_races(&format!("consumer {consumer}'s allocation")))
            }
            Step::CheckUsage {
                provider, class, ..
            } => {
                let usages = c.placement.usages(provider).await?;
                let allocs = c.placement.provider_allocations(provider).await?;
                let expected = allocs.allocations.len() as i64;
                let other: Vec<String> = usages
                    .usages
                    .iter()
                    .filter(|(rc, n)| *rc != class && **n != 0)
                    .map(|(rc, n)| format!("{rc}={n}"))
                    .collect();
                let got = usages.usages.get(class).copied().unwrap_or(0);
                if !other.is_empty() || got != expected {
                    return Err(RepairError::Data(format!(
                        "provider {provider} uses {class}={got} (expected {expected}){}",
                        if other.is_empty() {
                            String::new()
                        } else {
                            format!(" and still {}", other.join(", "))
                        }
                    )));
                }
                Ok(())
            }
        }
    }

    /// Read the provider's inventory, let `change` decide the new one (None: nothing to do),
    /// journal, write with the generation just read; again on `concurrent_update`.
    async fn write_inventory(
        &self,
        node: &str,
        step: &Step,
        provider: &str,
        change: impl Fn(&BTreeMap<String, Inventory>) -> Option<BTreeMap<String, Inventory>>,
    ) -> Result<(), RepairError> {
        let placement = &self.clients.placement;
        for attempt in 0..self.max_attempts {
            let current = placement.inventories(provider).await?;
            let Some(new) = change(&current.inventories) else {
                return Ok(());
            };
            let entry = self
                .before(
                    node,
                    step,
                    Some(&to_json_bytes(&json!({"inventories": current.inventories}))),
                    Some(&to_json_bytes(&json!({"inventories": new}))),
                )
                .await?;
            match placement
                .set_inventories(provider, current.generation, &new)
                .await
            {
                Ok(after) => {
                    return self
                        .done(
                            entry,
                            Some(&to_json_bytes(&json!({"inventories": after.inventories}))),
                        )
                        .await
                }
                Err(e) if is_concurrent_update(&e) => {
                    self.failed(entry, &RepairError::from(e)).await;
                    tokio::time::sleep(Duration::from_millis(50 * u64::from(attempt + 1))).await;
                }
                Err(e) if is_inventory_in_use(&e) => {
                    let e = RepairError::Data(format!(
                        "provider {provider}: Placement refused the inventory because a class \
                         is still allocated (placement.inventory.inuse): a consumer was placed \
                         meanwhile; run the repair again"
                    ));
                    self.failed(entry, &e).await;
                    return Err(e);
                }
                Err(e) => {
                    let e = RepairError::from(e);
                    self.failed(entry, &e).await;
                    return Err(e);
                }
            }
        }
        Err(self.lost_races(&format!("provider {provider}'s inventory")))
    }

    fn lost_races(&self, what: &str) -> RepairError {
        RepairError::Data(format!(
            "{what} changed under steward {} times in a row; something else is writing it. \
             Run the repair again later ([repair] max_attempts)",
            self.max_attempts
        ))
    }
}

/// The custom class's inventory while repairing: Ironic's shape (total 1, max_unit 1) with
/// `reserved: 0`, so an in-use node's allocation fits; nova-compute sets reserved back.
fn custom_inventory(existing: Option<&Inventory>) -> Inventory {
    let mut inv = existing.cloned().unwrap_or(Inventory {
        total: 1,
        reserved: 0,
        min_unit: 1,
        max_unit: 1,
        step_size: 1,
        allocation_ratio: 1.0,
    });
    inv.reserved = 0;
    inv
}

/// Placement 1.38+ wants an upper-case consumer type on a write; an `unknown` consumer (created
/// before 1.38) is written as an instance, which is what Nova's own heal does.
fn consumer_type(t: Option<&str>) -> String {
    match t {
        Some(t)
            if !t.is_empty()
                && t.bytes()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_') =>
        {
            t.to_string()
        }
        _ => "INSTANCE".to_string(),
    }
}

// -- rollback ---------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RollbackItem {
    pub object: String,
    pub action: String,
    /// `restored`, `restored_specs_only` (Nova changed it since; only extra specs put back),
    /// `unchanged` or `failed`.
    pub result: String,
    pub message: Option<String>,
}

/// Put back what run `run_id` changed: embedded flavors, request specs and flavor extra specs
/// always; inventories and allocations only with `placement`. Newest write first.
pub async fn rollback(
    clients: &Clients,
    store: &Store,
    run_id: &str,
    placement: bool,
) -> Result<Vec<RollbackItem>, RepairError> {
    if store.repair_run(run_id).await?.is_none() {
        return Err(RepairError::Input(format!(
            "no repair run {run_id}; pass the run id `steward repair apply` printed"
        )));
    }
    let journal = store.repair_journal(run_id).await?;
    // The first before-image of each object is its state before the run; the last after-image
    // is what the run left (or meant to: a killed run leaves `pending` entries whose write may
    // have happened, so every entry counts; restoring is a compare-and-swap or idempotent).
    let mut first: BTreeMap<(String, String), &JournalEntry> = BTreeMap::new();
    let mut last_after: BTreeMap<(String, String), &JournalEntry> = BTreeMap::new();
    let mut order: Vec<(String, String)> = Vec::new();
    for e in journal.iter().filter(|e| e.before_image.is_some()) {
        let key = (e.action.clone(), e.object.clone());
        if !first.contains_key(&key) {
            order.push(key.clone());
            first.insert(key.clone(), e);
        }
        if e.after_image.is_some() {
            last_after.insert(key, e);
        }
    }
    let mut out = Vec::new();
    for key in order.into_iter().rev() {
        let (Some(before), Some(after)) = (first.get(&key), last_after.get(&key)) else {
            continue;
        };
        let is_placement = matches!(
            key.0.as_str(),
            "add_custom_inventory" | "set_custom_only_inventory" | "shrink_allocation"
        );
        if is_placement && !placement {
            continue;
        }
        let result = restore(clients, before, after).await;
        let (result, message) = match result {
            Ok(r) => (r.to_string(), None),
            Err(e) => ("failed".to_string(), Some(e.to_string())),
        };
        if result != "failed" {
            store
                .repair_journal_mark(
                    &before.entry,
                    "restored",
                    after.after_image.as_deref(),
                    None,
                )
                .await?;
        }
        out.push(RollbackItem {
            object: key.1.clone(),
            action: key.0.clone(),
            result,
            message,
        });
    }
    if out.iter().all(|i| i.result != "failed") {
        store
            .repair_run_finish(run_id, "rolled_back", now(), &serde_json::to_string(&out)?)
            .await?;
    }
    Ok(out)
}

fn text(image: &Option<Vec<u8>>) -> Result<String, RepairError> {
    image
        .as_ref()
        .and_then(|b| String::from_utf8(b.clone()).ok())
        .ok_or_else(|| RepairError::Data("the journal entry has no readable image".into()))
}

fn object_id(object: &str) -> &str {
    object.split_once(' ').map_or(object, |(_, id)| id)
}

async fn restore(
    c: &Clients,
    before: &JournalEntry,
    after: &JournalEntry,
) -> Result<&'static str, RepairError> {
    let id = object_id(&before.object);
    match before.action.as_str() {
        "rewrite_instance_flavor" => {
            let old = text(&before.before_image)?;
            let left = text(&after.after_image)?;
            let cell = instance_cell(c, id).await?;
            let Some(current) = c.db.instance_flavor(&cell, id).await? else {
                return Err(RepairError::Gone(format!("instance {id} is gone")));
            };
            if current == old {
                return Ok("unchanged");
            }
            if current == left {
                if c.db.swap_instance_flavor(&cell, id, &current, &old).await? {
                    return Ok("restored");
                }
                return Err(RepairError::Gone(format!(
                    "instance {id}'s flavor changed during the rollback; run it again"
                )));
            }
            // Nova wrote it since (a resize): put back only the extra specs steward changed.
            let mut now_parsed =
                InstanceFlavors::parse(&current).map_err(|e| RepairError::Data(e.to_string()))?;
            let old_parsed =
                InstanceFlavors::parse(&old).map_err(|e| RepairError::Data(e.to_string()))?;
            restore_slot(&mut now_parsed.cur, &old_parsed.cur);
            restore_slot(&mut now_parsed.old, &old_parsed.old);
            restore_slot(&mut now_parsed.new, &old_parsed.new);
            if c.db
                .swap_instance_flavor(&cell, id, &current, &now_parsed.to_text())
                .await?
            {
                Ok("restored_specs_only")
            } else {
                Err(RepairError::Gone(format!(
                    "instance {id}'s flavor changed during the rollback; run it again"
                )))
            }
        }
        "rewrite_request_spec" => {
            let old = text(&before.before_image)?;
            let left = text(&after.after_image)?;
            let Some(current) = c.db.request_spec(id).await? else {
                return Err(RepairError::Gone(format!("request spec {id} is gone")));
            };
            if current == old {
                return Ok("unchanged");
            }
            let new = if current == left {
                old
            } else {
                let mut now_parsed = RequestSpecPrimitive::parse(&current)
                    .map_err(|e| RepairError::Data(e.to_string()))?;
                let old_parsed = RequestSpecPrimitive::parse(&old)
                    .map_err(|e| RepairError::Data(e.to_string()))?;
                restore_slot(&mut now_parsed.data.flavor, &old_parsed.data.flavor);
                now_parsed.to_text()
            };
            if c.db.swap_request_spec(id, &current, &new).await? {
                Ok(if current == left {
                    "restored"
                } else {
                    "restored_specs_only"
                })
            } else {
                Err(RepairError::Gone(format!(
                    "request spec {id} changed during the rollback; run it again"
                )))
            }
        }
        "set_flavor_extra_specs" => {
            let img: Value = serde_json::from_str(&text(&before.before_image)?)?;
            let specs = img
                .get("extra_specs")
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default();
            let mut set = BTreeMap::new();
            for (k, v) in &specs {
                match v.as_str() {
                    Some(s) => {
                        set.insert(k.clone(), s.to_string());
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
            Ok("restored")
        }
        "add_custom_inventory" | "set_custom_only_inventory" => {
            let img: Value = serde_json::from_str(&text(&before.before_image)?)?;
            let inv: BTreeMap<String, Inventory> =
                serde_json::from_value(img.get("inventories").cloned().unwrap_or(Value::Null))?;
            for _ in 0..5 {
                let current = c.placement.inventories(id).await?;
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
        "shrink_allocation" => {
            let img: Value = serde_json::from_str(&text(&before.before_image)?)?;
            let allocs: BTreeMap<String, BTreeMap<String, i64>> = img
                .get("allocations")
                .and_then(Value::as_object)
                .map(|m| {
                    m.iter()
                        .filter_map(|(rp, v)| {
                            let r = serde_json::from_value(v.get("resources")?.clone()).ok()?;
                            Some((rp.clone(), r))
                        })
                        .collect()
                })
                .unwrap_or_default();
            for _ in 0..5 {
                let current = c.placement.allocations(id).await?;
                let owner = ConsumerOwner {
                    project_id: img
                        .get("project_id")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string(),
                    user_id: img
                        .get("user_id")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string(),
                    consumer_generation: current.consumer_generation,
                    consumer_type: consumer_type(img.get("consumer_type").and_then(Value::as_str)),
                };
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
        other => Err(RepairError::Data(format!(
            "journal action {other} cannot be rolled back"
        ))),
    }
}

fn restore_slot(
    now: &mut Option<Option<FlavorPrimitive>>,
    before: &Option<Option<FlavorPrimitive>>,
) {
    if let (Some(Some(n)), Some(Some(b))) = (now.as_mut(), before.as_ref()) {
        n.restore_extra_specs(b);
    }
}

/// The cell of a live instance, found by asking each cell.
async fn instance_cell(c: &Clients, instance: &str) -> Result<String, RepairError> {
    for cell in c.db.cells() {
        if c.db.instance_flavor(&cell.uuid, instance).await?.is_some() {
            return Ok(cell.uuid.clone());
        }
    }
    Err(RepairError::Gone(format!(
        "instance {instance} is in no cell steward can reach"
    )))
}
