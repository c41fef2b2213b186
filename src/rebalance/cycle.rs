//! One planning cycle (NOT pure: reads and writes steward's store): load the planner's state,
//! record the cluster view into the detector's history, detect, gather the journal's in-flight
//! actions and finished moves, plan, journal the plan, save the state. Run by the elected
//! leader only, before it executes (`serve`'s loop and `steward rebalance run-once`).
//!
//! The state (`rebalance_detector`) is JSON: row `planner` holds the candidates of the last
//! cycle (hysteresis) and the byte budget per AZ; rows `planner/history/N` hold the per-VM
//! samples within the detection window, [`VMS_PER_DOCUMENT`] VMs each; all are replaced in one
//! transaction. It is what lets a cron-driven `run-once`, a fresh process each time, sustain
//! detection over `window_seconds` and `min_samples`.
//!
//! Modes: `auto` journals the plan approved at once; `approve` journals it proposed (an admin
//! approves it); `dry-run` journals it too, as a `dry-run` plan the journal refuses to approve.
//! A plan with no action and no skipped candidate (other than one skipped because its move is
//! already in flight or awaiting approval) is not journaled: an empty plan every cycle is
//! noise; the cycle's outcome still says how many candidates there were. The byte budget
//! a plan spends is kept in `auto` and `approve` mode (a proposed plan reserves its bytes; a
//! cancelled one does not refund them, the bucket refills at its rate); a dry-run plan spends
//! nothing.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::{Deserialize, Serialize};

use crate::metrics::Metrics;
use crate::model::{ClusterView, Host};
use crate::openstack::nova::{Hypervisor, Server};
use crate::openstack::placement::{Placement, ProviderRoom};
use crate::scoring::{Options, Profile};
use crate::store::journal::{ActionState, JournalError, PlanRow, PlanState};
use crate::store::{Store, StoreError};

use super::detect::{detect, DetectState, History};
use super::execute::{journal_plan, planner_inputs};
use super::leader::Leadership;
use super::plan::{plan, PlanInput, VmSize};
use super::{BudgetState, InFlight, Limit, Mode, Plan, RebalanceSettings};

/// The row of `rebalance_detector` the planner keeps its state in.
pub const STATE_NAME: &str = "planner";

/// Who approves a plan made in `auto` mode, as the journal records it.
pub const AUTO_APPROVER: &str = "steward (auto mode)";

/// What the planner keeps between cycles.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct PlannerState {
    pub history: History,
    pub detect: DetectState,
    pub budget: BudgetState,
}

/// What one cycle plans over. The caller takes the view snapshot and gathers the compute
/// nodes' room and the VMs' sizes (see [`hosts_and_sizes`]).
#[derive(Debug, Clone, Copy)]
pub struct CycleInput<'a> {
    pub view: &'a ClusterView,
    pub hosts: &'a [Host],
    /// Hosts that are never a destination, with why ([`closed_hosts`]).
    pub closed: &'a HashMap<String, &'static str>,
    pub sizes: &'a HashMap<String, VmSize>,
    /// Server names by uuid, for the journal (an action shows its VM's uuid when missing).
    pub names: &'a HashMap<String, String>,
    /// `[rebalance] profile`, from the profile set.
    pub profile: &'a Profile,
    pub opts: &'a Options,
    pub cfg: &'a RebalanceSettings,
    /// Unix seconds.
    pub now: f64,
    /// The leadership the plan is journaled under (none for a one-shot outside the election).
    pub fence: Option<&'a Leadership>,
}

/// What one cycle did.
#[derive(Debug, Clone)]
pub struct CycleOutcome {
    /// Candidates detected this cycle.
    pub candidates: usize,
    /// The plan as computed.
    pub plan: Plan,
    /// The plan as journaled; `None` when it had nothing new (see the module's comment).
    pub journaled: Option<PlanRow>,
}

#[derive(Debug, thiserror::Error)]
pub enum CycleError {
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Nova(String),
    #[error("{0}")]
    Placement(String),
    #[error("{0}")]
    Config(String),
    /// The leadership was lost before the cycle finished (another replica plans next).
    #[error("{0}")]
    Leadership(String),
}

/// VMs per stored history document: each stays a few MiB (about 350 bytes per VM), well under
/// MySQL's `max_allowed_packet`, however large the cloud.
pub const VMS_PER_DOCUMENT: usize = 5_000;

/// The state's first document (`planner`): what is not per VM.
#[derive(Debug, Default, Deserialize, Serialize)]
struct StoredHead {
    #[serde(default)]
    detect: DetectState,
    #[serde(default)]
    budget: BudgetState,
}

/// Load the planner's state: the head row `planner` and the history rows `planner/history/N`.
/// A document that no longer parses (written by another version) is reported and replaced
/// by a fresh state: detection starts over, nothing else is lost.
pub async fn load_state(store: &Store) -> Result<PlannerState, StoreError> {
    let docs = store.load_detector_set(STATE_NAME).await?;
    let mut state = PlannerState::default();
    for (name, text) in docs {
        let parsed = if name == STATE_NAME {
            serde_json::from_str::<StoredHead>(&text).map(|h| {
                state.detect = h.detect;
                state.budget = h.budget;
            })
        } else {
            serde_json::from_str::<History>(&text).map(|h| state.history.vms.extend(h.vms))
        };
        if let Err(e) = parsed {
            tracing::warn!(
                error = %e,
                "the rebalancer's stored detector state (table rebalance_detector, row {name}) does not parse; detection starts over"
            );
            return Ok(PlannerState::default());
        }
    }
    Ok(state)
}

/// Save the planner's state, replacing what was stored, in one transaction.
pub async fn save_state(store: &Store, state: &PlannerState, now: f64) -> Result<(), StoreError> {
    let head = StoredHead {
        detect: state.detect.clone(),
        budget: state.budget.clone(),
    };
    let mut docs = vec![(
        STATE_NAME.to_string(),
        serde_json::to_string(&head).unwrap_or_else(|_| "{}".into()),
    )];
    let mut vms: Vec<(&String, &super::detect::Series)> = state.history.vms.iter().collect();
    vms.sort_by(|a, b| a.0.cmp(b.0));
    for (i, chunk) in vms.chunks(VMS_PER_DOCUMENT).enumerate() {
        let part = History {
            vms: chunk
                .iter()
                .map(|(k, v)| ((*k).clone(), (*v).clone()))
                .collect(),
        };
        docs.push((
            format!("{STATE_NAME}/history/{i}"),
            serde_json::to_string(&part).unwrap_or_else(|_| "{}".into()),
        ));
    }
    store.replace_detector_set(STATE_NAME, &docs, now).await
}

/// Forget the planner's state (detection starts over).
pub async fn reset_state(store: &Store) -> Result<(), StoreError> {
    store.replace_detector_set(STATE_NAME, &[], 0.0).await
}

/// Moves the planner must count as unfinished: the executor's in-flight ones (approved and
/// under way) plus the actions of proposed plans awaiting an admin (not dry-run plans, which
/// are never run), so a VM waiting for approval is not planned again every cycle.
async fn unfinished_moves(
    store: &Store,
    since: f64,
) -> Result<(Vec<InFlight>, Vec<super::MoveRecord>), JournalError> {
    let (mut in_flight, moves) = planner_inputs(store, since).await?;
    let pending = store.actions(&[ActionState::Planned], 1_000_000).await?;
    let mut plan_counts: HashMap<String, bool> = HashMap::new();
    let seen: HashSet<String> = in_flight.iter().map(|a| a.vm.clone()).collect();
    for a in pending {
        let awaiting = match plan_counts.get(&a.plan_id) {
            Some(c) => *c,
            None => {
                let c = store
                    .plan(&a.plan_id)
                    .await?
                    .is_some_and(|p| p.state == PlanState::Proposed && p.mode != "dry-run");
                plan_counts.insert(a.plan_id.clone(), c);
                c
            }
        };
        if awaiting && !seen.contains(&a.vm) {
            in_flight.push(InFlight {
                vm: a.vm,
                source_host: a.source,
                target_host: a.target,
                az: a.az,
            });
        }
    }
    Ok((in_flight, moves))
}

/// One planning cycle: record, detect, plan, journal, save (see the module's comment).
pub async fn plan_cycle(
    store: &Store,
    input: &CycleInput<'_>,
    metrics: Option<&Metrics>,
) -> Result<CycleOutcome, CycleError> {
    let cfg = input.cfg;
    let now = input.now;
    let mut state = load_state(store).await?;
    state.history.record(input.view, now, cfg.window_seconds);
    let detection = detect(&state.history, &state.detect, cfg, now);
    if let Some(m) = metrics {
        m.rebalance_candidates
            .set(i64::try_from(detection.candidates.len()).unwrap_or(i64::MAX));
    }
    let since = now - cfg.cooldown_hours.max(cfg.no_return_hours) * 3600.0;
    let (in_flight, moves) = unfinished_moves(store, since).await?;
    let planned = plan(
        &PlanInput {
            view: input.view,
            hosts: input.hosts,
            closed: input.closed,
            sizes: input.sizes,
            detection: &detection,
            in_flight: &in_flight,
            history: &moves,
            budget: &state.budget,
            now,
        },
        input.profile,
        input.opts,
        cfg,
    );
    // A candidate skipped only because its move is already under way is not news.
    let news =
        !planned.actions.is_empty() || planned.skipped.iter().any(|s| s.limit != Limit::InFlight);
    let journaled = if !news {
        None
    } else {
        let mut np = journal_plan(&planned, uuid::Uuid::new_v4().to_string());
        for a in &mut np.actions {
            if let Some(name) = input.names.get(&a.vm).filter(|n| !n.is_empty()) {
                a.vm_name.clone_from(name);
            }
        }
        let approver = (cfg.mode == Mode::Auto).then_some(AUTO_APPROVER);
        let row = store.insert_plan(&np, approver, input.fence).await?;
        tracing::info!(
            plan = %row.id,
            mode = cfg.mode.as_str(),
            actions = planned.actions.len(),
            skipped = planned.skipped.len(),
            "rebalance plan journaled"
        );
        Some(row)
    };
    let candidates = detection.candidates.len();
    state.detect = detection.state;
    if cfg.mode != Mode::DryRun {
        state.budget = planned.budget.clone();
    }
    save_state(store, &state, now).await?;
    Ok(CycleOutcome {
        candidates,
        plan: planned,
        journaled,
    })
}

/// Providers the planner reads from Placement at a time.
pub const PLACEMENT_READS_IN_FLIGHT: usize = 8;

/// Placement's room on one resource class of one provider.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClassRoom {
    /// `total - reserved`.
    pub usable: f64,
    pub allocation_ratio: f64,
    /// What is allocated (the provider's usage of the class).
    pub used: f64,
}

impl ClassRoom {
    /// Placement's capacity: `(total - reserved) * allocation_ratio`; an allocation fits when
    /// `used + amount <= capacity` (placement/objects/allocation.py, `_check_capacity_exceeded`).
    pub fn capacity(&self) -> f64 {
        self.usable * self.allocation_ratio
    }
}

/// What Placement says about one compute node's resource provider: a class it has no
/// inventory of is `None` (unknown room, never free).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct NodeRoom {
    pub vcpu: Option<ClassRoom>,
    pub memory_mb: Option<ClassRoom>,
    pub disk_gb: Option<ClassRoom>,
}

impl NodeRoom {
    /// A provider's inventories and usages as the planner counts them (a class with no usage
    /// row has nothing allocated, as Placement's own usage query counts it).
    pub fn from_placement(p: &ProviderRoom) -> NodeRoom {
        let class = |rc: &str| {
            p.inventories.inventories.get(rc).map(|inv| ClassRoom {
                usable: (inv.total - inv.reserved) as f64,
                allocation_ratio: inv.allocation_ratio,
                used: p.usages.usages.get(rc).copied().unwrap_or(0) as f64,
            })
        };
        NodeRoom {
            vcpu: class("VCPU"),
            memory_mb: class("MEMORY_MB"),
            disk_gb: class("DISK_GB"),
        }
    }
}

/// One class's room summed over a host's nodes; unknown if any node's is.
#[derive(Debug, Clone, Copy)]
struct RoomSum {
    usable: f64,
    capacity: f64,
    used: f64,
    /// The nodes' common ratio; `None` once two nodes differ.
    ratio: Option<f64>,
    known: bool,
}

impl RoomSum {
    fn new() -> Self {
        RoomSum {
            usable: 0.0,
            capacity: 0.0,
            used: 0.0,
            ratio: None,
            known: true,
        }
    }

    fn add(&mut self, first: bool, room: Option<ClassRoom>) {
        let Some(r) = room else {
            self.known = false;
            return;
        };
        self.ratio = if first {
            Some(r.allocation_ratio)
        } else {
            self.ratio
                .filter(|q| (q - r.allocation_ratio).abs() <= f64::EPSILON * q.abs().max(1.0))
        };
        self.usable += r.usable;
        self.capacity += r.capacity();
        self.used += r.used;
    }

    /// `(total, ratio, used)` such that `total * ratio - used` is the summed capacity left:
    /// the usable total and the common ratio, or the capacity itself at ratio 1.0 when the
    /// nodes' ratios differ.
    fn figures(&self) -> Option<(f64, f64, f64)> {
        if !self.known {
            return None;
        }
        Some(match self.ratio {
            Some(r) => (self.usable, r, self.used),
            None => (self.capacity, 1.0, self.used),
        })
    }
}

/// The planner's compute nodes and VM sizes: a host per compute service from Nova's
/// hypervisors (microversion 2.87), in the AZ the view gives it; its room from Placement's
/// providers (`rooms`, by provider uuid: the hypervisor id since 2.53), summed over its nodes,
/// laid out so that the planner's `total * ratio - used` is Placement's
/// `(total - reserved) * allocation_ratio - used`: `*_total` is `total - reserved`, `*_used` the
/// usage, `memory_mb_free` `total - reserved - used`, and `disk_gb_free` the disk capacity left
/// (the planner applies no disk ratio). A node missing from `rooms` (no provider, or its read
/// failed), or with no inventory of a class, makes that room unknown for its host: its used and
/// free figures stay `None` and the planner refuses it as a target; Nova's totals then remain,
/// for the steal model only. A VM's size comes from its embedded flavor; one with local disk
/// (root or ephemeral) is counted as a block migration for the byte budget.
pub fn hosts_and_sizes(
    hypervisors: &[Hypervisor],
    servers: &[Server],
    view: &ClusterView,
    rooms: &HashMap<String, NodeRoom>,
) -> (Vec<Host>, HashMap<String, VmSize>) {
    let mut hosts: BTreeMap<String, Host> = BTreeMap::new();
    let mut sums: HashMap<String, [RoomSum; 3]> = HashMap::new();
    for hv in hypervisors {
        if hv
            .hypervisor_type
            .as_deref()
            .is_some_and(|t| t.eq_ignore_ascii_case("ironic"))
        {
            continue;
        }
        let name = host_of(hv);
        let h = hosts.entry(name.clone()).or_insert_with(|| Host {
            host: name.clone(),
            nodename: hv.hypervisor_hostname.clone(),
            uuid: Some(hv.id.clone()),
            az: view.hosts.get(&name).and_then(|f| f.az.clone()),
            hypervisor_type: hv.hypervisor_type.clone(),
            ..Default::default()
        });
        let add = |slot: &mut Option<f64>, v: Option<i64>| {
            if let Some(v) = v {
                *slot = Some(slot.unwrap_or(0.0) + v as f64);
            }
        };
        add(&mut h.vcpus_total, hv.vcpus);
        add(&mut h.memory_mb_total, hv.memory_mb);
        add(&mut h.disk_gb_total, hv.local_gb);
        let first = !sums.contains_key(&name);
        let sum = sums
            .entry(name)
            .or_insert([RoomSum::new(), RoomSum::new(), RoomSum::new()]);
        let room = rooms.get(&hv.id).copied().unwrap_or_default();
        sum[0].add(first, room.vcpu);
        sum[1].add(first, room.memory_mb);
        sum[2].add(first, room.disk_gb);
    }
    for (name, h) in &mut hosts {
        let Some([vcpu, memory, disk]) = sums.get(name) else {
            continue;
        };
        if let Some((total, ratio, used)) = vcpu.figures() {
            h.vcpus_total = Some(total);
            h.cpu_allocation_ratio = Some(ratio);
            h.vcpus_used = Some(used);
        }
        if let Some((total, ratio, used)) = memory.figures() {
            h.memory_mb_total = Some(total);
            h.ram_allocation_ratio = Some(ratio);
            h.memory_mb_free = Some(total - used);
        }
        if let Some((total, ratio, used)) = disk.figures() {
            h.disk_gb_total = Some(total);
            h.disk_gb_free = Some(total * ratio - used);
        }
    }
    let mut sizes = HashMap::new();
    for s in servers {
        if let Some(h) = s.host.as_ref().and_then(|h| hosts.get_mut(h)) {
            h.instance_uuids.push(s.id.clone());
        }
        let local_disk = s.flavor.disk.max(0) + s.flavor.ephemeral.max(0);
        sizes.insert(
            s.id.clone(),
            VmSize {
                vcpus: s.flavor.vcpus.max(0) as f64,
                memory_mb: s.flavor.ram.max(0) as f64,
                disk_gb: local_disk as f64,
                block_migration: local_disk > 0,
            },
        );
    }
    (hosts.into_values().collect(), sizes)
}

/// The compute host a hypervisor belongs to: its service's host (what servers show as
/// `OS-EXT-SRV-ATTR:host`), else its node name.
fn host_of(hv: &Hypervisor) -> String {
    hv.service
        .as_ref()
        .and_then(|s| s.host.clone())
        .unwrap_or_else(|| hv.hypervisor_hostname.clone())
}

/// The hosts no live migration may target, from Nova's hypervisors (2.87: each node's compute
/// service `status` and `state`), with the refusal's wording: a service an operator disabled,
/// or one whose heartbeat Nova sees as down. Nova's scheduler (ComputeFilter) and conductor
/// refuse both, only once steward has drained the VM, and would again every cycle. They stay
/// sources: moving a VM off a disabled host is what its operator wants.
pub fn closed_hosts(hypervisors: &[Hypervisor]) -> HashMap<String, &'static str> {
    let mut closed = HashMap::new();
    for hv in hypervisors {
        let why = if hv.status.as_deref() == Some("disabled") {
            "with nova-compute disabled"
        } else if hv.state.as_deref() == Some("down") {
            "with nova-compute down"
        } else {
            continue;
        };
        closed.entry(host_of(hv)).or_insert(why);
    }
    closed
}

/// Placement's answers for the compute nodes (`(provider uuid, node name)`) as rooms by
/// provider uuid. A node whose provider is missing or whose read failed is left out (unknown
/// room; warned about by name). When no node could be read and Placement itself failed (not
/// a missing provider), room is unknown everywhere: that is an outage, and the cycle is
/// skipped rather than planned blind.
pub fn rooms_from_reads(
    nodes: &[(String, String)],
    reads: Vec<(String, crate::openstack::Result<ProviderRoom>)>,
    metrics: Option<&Metrics>,
) -> Result<HashMap<String, NodeRoom>, CycleError> {
    let names: HashMap<&str, &str> = nodes
        .iter()
        .map(|(u, n)| (u.as_str(), n.as_str()))
        .collect();
    let mut rooms = HashMap::new();
    let mut outage: Option<crate::openstack::Error> = None;
    for (uuid, read) in reads {
        let node = names.get(uuid.as_str()).copied().unwrap_or("?");
        match read {
            Ok(p) => {
                rooms.insert(uuid, NodeRoom::from_placement(&p));
            }
            Err(e) => {
                if let Some(m) = metrics {
                    m.source_errors
                        .with_label_values(&["placement", e.kind()])
                        .inc();
                }
                if e.status() == Some(404) {
                    tracing::warn!(
                        node, provider = %uuid, error = %e,
                        "Placement has no resource provider for this compute node; the rebalancer will not move a VM there until nova-compute on it reports to Placement (check `openstack resource provider show {uuid}`)"
                    );
                } else {
                    tracing::warn!(
                        node, provider = %uuid, error = %e,
                        "cannot read this compute node's inventories or usages from Placement; room on it is unknown this cycle and the rebalancer will not move a VM there"
                    );
                    outage.get_or_insert(e);
                }
            }
        }
    }
    match outage {
        Some(e) if rooms.is_empty() => Err(CycleError::Placement(format!(
            "cannot read room on any of {} compute node(s) from Placement ({e}); the planner \
             skips this cycle rather than guess room, check that Placement answers for \
             [openstack] cloud (`openstack resource provider list`)",
            nodes.len()
        ))),
        _ => Ok(rooms),
    }
}

/// What a service's or `run-once`'s planning cycle needs besides the store and the view: the
/// Nova client it lists hypervisors, servers, server groups and aggregates through, the
/// Placement client it reads the compute nodes' room through, and the settings. Gathering is
/// an adapter; the decisions are `detect` and `plan`.
pub struct Planner {
    pub nova: std::sync::Arc<crate::openstack::nova::Nova>,
    pub placement: std::sync::Arc<Placement>,
    pub profiles: std::sync::Arc<crate::scoring::ProfileSet>,
    pub opts: Options,
    pub cfg: RebalanceSettings,
    /// `[roles] metadata_key` and `[cluster] default_availability_zone`, for Nova's membership.
    pub role_key: String,
    pub default_az: String,
    pub metrics: Option<Metrics>,
}

impl Planner {
    /// Gather Nova's membership and sizes and Placement's room on each compute node, lay the
    /// membership over `view` (Nova is the authority on where each VM runs), and run one
    /// [`plan_cycle`].
    pub async fn run(
        &self,
        store: &Store,
        view: &ClusterView,
        now: f64,
        fence: Option<&Leadership>,
    ) -> Result<CycleOutcome, CycleError> {
        let Some(profile) = self.profiles.profiles.get(&self.cfg.profile) else {
            return Err(CycleError::Config(format!(
                "[rebalance] profile {:?} is not a scheduling profile; name one of [profiles] ({})",
                self.cfg.profile,
                self.profiles
                    .profiles
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        };
        let nova_err = |what: &str, e: crate::openstack::Error| {
            CycleError::Nova(format!(
                "cannot list {what} from Nova ({e}); the planner skips this cycle, check [openstack] cloud"
            ))
        };
        let hypervisors = self
            .nova
            .hypervisors()
            .await
            .map_err(|e| nova_err("hypervisors", e))?;
        let servers = self
            .nova
            .servers()
            .await
            .map_err(|e| nova_err("servers", e))?;
        let groups = self
            .nova
            .server_groups()
            .await
            .map_err(|e| nova_err("server groups", e))?;
        let aggregates = self
            .nova
            .aggregates()
            .await
            .map_err(|e| nova_err("aggregates", e))?;
        let inventory = crate::cluster::inventory::build(
            &hypervisors,
            &servers,
            &groups,
            &aggregates,
            &self.role_key,
            &self.default_az,
        );
        // A clone starts without the derived role index, so the membership below counts.
        let mut view = view.clone();
        crate::cluster::inventory::apply(&mut view, &inventory);
        let nodes: Vec<(String, String)> = hypervisors
            .iter()
            .filter(|hv| {
                !hv.hypervisor_type
                    .as_deref()
                    .is_some_and(|t| t.eq_ignore_ascii_case("ironic"))
            })
            .map(|hv| (hv.id.clone(), hv.hypervisor_hostname.clone()))
            .collect();
        let uuids: Vec<String> = nodes.iter().map(|(u, _)| u.clone()).collect();
        let reads = self
            .placement
            .inventories_and_usages_of(&uuids, PLACEMENT_READS_IN_FLIGHT)
            .await;
        let rooms = rooms_from_reads(&nodes, reads, self.metrics.as_ref())?;
        let (hosts, sizes) = hosts_and_sizes(&hypervisors, &servers, &view, &rooms);
        let closed = closed_hosts(&hypervisors);
        let names: HashMap<String, String> = servers
            .iter()
            .map(|s| (s.id.clone(), s.name.clone()))
            .collect();
        plan_cycle(
            store,
            &CycleInput {
                view: &view,
                hosts: &hosts,
                closed: &closed,
                sizes: &sizes,
                names: &names,
                profile,
                opts: &self.opts,
                cfg: &self.cfg,
                now,
                fence,
            },
            self.metrics.as_ref(),
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::HostFacts;

    fn hv(name: &str, host: &str, kind: &str) -> Hypervisor {
        serde_json::from_value(serde_json::json!({
            "id": format!("uuid-{name}"), "hypervisor_hostname": name, "hypervisor_type": kind,
            "service": {"host": host}, "vcpus": 16, "vcpus_used": 4,
            "memory_mb": 65536, "memory_mb_used": 16384, "local_gb": 500, "local_gb_used": 100
        }))
        .unwrap()
    }

    fn server(id: &str, host: &str, disk: i64, ephemeral: i64) -> Server {
        serde_json::from_value(serde_json::json!({
            "id": id, "name": format!("name-{id}"), "OS-EXT-SRV-ATTR:host": host,
            "flavor": {"vcpus": 2, "ram": 4096, "disk": disk, "ephemeral": ephemeral, "swap": ""}
        }))
        .unwrap()
    }

    /// Placement's answer for one provider, in its wire format (1.39).
    fn provider(vcpu: (i64, i64, f64, i64), ram: (i64, i64, f64, i64)) -> ProviderRoom {
        let inv = |(total, reserved, ratio, _): (i64, i64, f64, i64)| {
            serde_json::json!({"total": total, "reserved": reserved, "min_unit": 1,
                "max_unit": total, "step_size": 1, "allocation_ratio": ratio})
        };
        ProviderRoom {
            inventories: serde_json::from_value(serde_json::json!({
                "resource_provider_generation": 3,
                "inventories": {"VCPU": inv(vcpu), "MEMORY_MB": inv(ram),
                    "DISK_GB": inv((1000, 0, 1.0, 0))}
            }))
            .unwrap(),
            usages: serde_json::from_value(serde_json::json!({
                "resource_provider_generation": 3,
                "usages": {"VCPU": vcpu.3, "MEMORY_MB": ram.3, "DISK_GB": 100}
            }))
            .unwrap(),
        }
    }

    fn rooms(of: &[(&str, ProviderRoom)]) -> HashMap<String, NodeRoom> {
        of.iter()
            .map(|(node, p)| (format!("uuid-{node}"), NodeRoom::from_placement(p)))
            .collect()
    }

    /// What the planner's `room` computes from a host's fields.
    fn left(total: Option<f64>, ratio: Option<f64>, used: Option<f64>) -> f64 {
        total.unwrap() * ratio.unwrap() - used.unwrap()
    }

    #[test]
    fn a_disabled_or_down_compute_service_closes_its_host() {
        let node = |name: &str, status: &str, state: &str| -> Hypervisor {
            serde_json::from_value(serde_json::json!({
                "id": format!("uuid-{name}"), "hypervisor_hostname": format!("{name}.node"),
                "hypervisor_type": "fake", "status": status, "state": state,
                "service": {"host": name, "id": "7", "disabled_reason": null}
            }))
            .unwrap()
        };
        let closed = closed_hosts(&[
            node("cmp-1", "enabled", "up"),
            node("cmp-2", "disabled", "up"),
            node("cmp-3", "enabled", "down"),
            node("cmp-4", "disabled", "down"),
        ]);
        assert_eq!(closed.get("cmp-1"), None);
        assert_eq!(closed["cmp-2"], "with nova-compute disabled");
        assert_eq!(closed["cmp-3"], "with nova-compute down");
        assert_eq!(closed["cmp-4"], "with nova-compute disabled");
        assert_eq!(closed.len(), 3, "keyed by the service's host, not the node");
    }

    #[test]
    fn hosts_sum_their_nodes_take_the_views_az_and_skip_ironic() {
        let mut view = ClusterView::default();
        view.hosts.insert(
            "cmp-1".into(),
            HostFacts {
                az: Some("az1".into()),
                ..Default::default()
            },
        );
        let room = provider((16, 0, 1.0, 4), (65536, 0, 1.0, 16384));
        let (hosts, sizes) = hosts_and_sizes(
            &[
                hv("node-a", "cmp-1", "QEMU"),
                hv("node-b", "cmp-1", "QEMU"),
                hv("cmp-2", "cmp-2", "QEMU"),
                hv("bm-1", "ironic-conductor", "ironic"),
            ],
            &[
                server("vm-local", "cmp-1", 20, 10),
                server("vm-volume", "cmp-2", 0, 0),
            ],
            &view,
            &rooms(&[
                ("node-a", room.clone()),
                ("node-b", room.clone()),
                ("cmp-2", room),
            ]),
        );
        let names: Vec<&str> = hosts.iter().map(|h| h.host.as_str()).collect();
        assert_eq!(names, ["cmp-1", "cmp-2"]);
        let h1 = &hosts[0];
        assert_eq!(h1.az.as_deref(), Some("az1"));
        assert_eq!(h1.vcpus_total, Some(32.0));
        assert_eq!(h1.vcpus_used, Some(8.0));
        assert_eq!(h1.cpu_allocation_ratio, Some(1.0));
        assert_eq!(h1.memory_mb_free, Some(2.0 * 49152.0));
        assert_eq!(h1.disk_gb_free, Some(1800.0));
        assert_eq!(h1.instance_uuids, ["vm-local"]);
        assert_eq!(hosts[1].az, None, "an AZ comes from the view only");
        let local = sizes["vm-local"];
        assert_eq!((local.disk_gb, local.block_migration), (30.0, true));
        assert_eq!((local.vcpus, local.memory_mb), (2.0, 4096.0));
        assert!(!sizes["vm-volume"].block_migration);
    }

    #[test]
    fn room_is_placements_capacity_with_reserved_and_ratio() {
        // Nova's hypervisor view: 16 vCPUs (4 used), 64 GiB (16 GiB used): plenty of room.
        // Placement: 2 vCPUs reserved at ratio 4.0 with 50 allocated; 4 GiB reserved at 1.5
        // with 88,000 MB allocated.
        let p = provider((16, 2, 4.0, 50), (65536, 4096, 1.5, 88_000));
        let (hosts, _) = hosts_and_sizes(
            &[hv("cmp-1", "cmp-1", "QEMU")],
            &[],
            &ClusterView::default(),
            &rooms(&[("cmp-1", p)]),
        );
        let h = &hosts[0];
        // (16 - 2) * 4.0 - 50 = 6: Placement's rule, through the fields the planner reads.
        assert_eq!(
            left(h.vcpus_total, h.cpu_allocation_ratio, h.vcpus_used),
            6.0
        );
        // (65536 - 4096) * 1.5 - 88000 = 4160, where `room` reads used as total - free.
        let used = h.memory_mb_total.unwrap() - h.memory_mb_free.unwrap();
        assert_eq!(
            left(h.memory_mb_total, h.ram_allocation_ratio, Some(used)),
            4160.0
        );
        assert_eq!(h.disk_gb_free, Some(900.0));
        // Ratio 1.0 would have left 14 - 50 < 0 vCPUs: the ratio is what gives the room.
        assert!(h.vcpus_total.unwrap() - h.vcpus_used.unwrap() < 0.0);
    }

    #[test]
    fn a_node_placement_does_not_know_leaves_its_host_with_unknown_room() {
        let (hosts, _) = hosts_and_sizes(
            &[
                hv("node-a", "cmp-1", "QEMU"),
                hv("node-b", "cmp-1", "QEMU"),
                hv("cmp-2", "cmp-2", "QEMU"),
            ],
            &[],
            &ClusterView::default(),
            // node-b has no provider (or its read failed); cmp-2 has no MEMORY_MB inventory.
            &{
                let mut r = rooms(&[
                    ("node-a", provider((16, 0, 1.0, 0), (65536, 0, 1.0, 0))),
                    ("cmp-2", provider((16, 0, 1.0, 0), (65536, 0, 1.0, 0))),
                ]);
                r.get_mut("uuid-cmp-2").unwrap().memory_mb = None;
                r
            },
        );
        let h1 = &hosts[0];
        assert_eq!(
            (h1.vcpus_used, h1.memory_mb_free, h1.disk_gb_free),
            (None, None, None),
            "never counted as free: {h1:?}"
        );
        assert_eq!(
            h1.vcpus_total,
            Some(32.0),
            "Nova's cores stay, for the steal model"
        );
        let h2 = &hosts[1];
        assert_eq!(h2.vcpus_used, Some(0.0));
        assert_eq!(h2.memory_mb_free, None);
    }

    #[test]
    fn nodes_with_different_ratios_sum_their_capacities() {
        let (hosts, _) = hosts_and_sizes(
            &[hv("node-a", "cmp-1", "QEMU"), hv("node-b", "cmp-1", "QEMU")],
            &[],
            &ClusterView::default(),
            &rooms(&[
                ("node-a", provider((16, 0, 4.0, 60), (65536, 0, 1.0, 0))),
                ("node-b", provider((16, 0, 1.0, 10), (65536, 0, 1.0, 0))),
            ]),
        );
        let h = &hosts[0];
        // 16 * 4 - 60 + 16 * 1 - 10 = 10.
        assert_eq!(
            left(h.vcpus_total, h.cpu_allocation_ratio, h.vcpus_used),
            10.0
        );
        assert_eq!(h.cpu_allocation_ratio, Some(1.0));
    }

    fn transport(uuid: &str) -> crate::openstack::Error {
        crate::openstack::Error::Transport {
            service: "placement".into(),
            method: "GET".into(),
            url: format!("http://placement.example/resource_providers/{uuid}/inventories"),
            message: "connection refused".into(),
        }
    }

    fn not_found(uuid: &str) -> crate::openstack::Error {
        crate::openstack::Error::Status(Box::new(crate::openstack::StatusError {
            service: "placement".into(),
            method: "GET".into(),
            url: format!("http://placement.example/resource_providers/{uuid}/inventories"),
            status: 404,
            code: Some("placement.undefined_code".into()),
            message: format!("No resource provider with uuid {uuid} found"),
            request_id: None,
        }))
    }

    #[test]
    fn placement_failing_for_every_node_skips_the_cycle_one_node_does_not() {
        let nodes: Vec<(String, String)> = ["u-1", "u-2"]
            .iter()
            .map(|u| (u.to_string(), format!("cmp-{u}")))
            .collect();
        let m = Metrics::new();
        let down = rooms_from_reads(
            &nodes,
            vec![
                ("u-1".into(), Err(transport("u-1"))),
                ("u-2".into(), Err(not_found("u-2"))),
            ],
            Some(&m),
        )
        .unwrap_err();
        let text = down.to_string();
        assert!(matches!(down, CycleError::Placement(_)), "{text}");
        assert!(
            text.contains("from Placement") && text.contains("connection refused"),
            "{text}"
        );
        assert!(text.contains("openstack resource provider list"), "{text}");
        assert_eq!(
            m.source_errors
                .with_label_values(&["placement", "transport"])
                .get(),
            1
        );

        let one = rooms_from_reads(
            &nodes,
            vec![
                ("u-1".into(), Err(transport("u-1"))),
                (
                    "u-2".into(),
                    Ok(provider((16, 0, 1.0, 0), (65536, 0, 1.0, 0))),
                ),
            ],
            None,
        )
        .unwrap();
        assert_eq!(one.keys().collect::<Vec<_>>(), ["u-2"]);

        // Providers missing everywhere is not an outage: every host has unknown room.
        let none = rooms_from_reads(
            &nodes,
            vec![
                ("u-1".into(), Err(not_found("u-1"))),
                ("u-2".into(), Err(not_found("u-2"))),
            ],
            None,
        )
        .unwrap();
        assert!(none.is_empty());
    }
}
