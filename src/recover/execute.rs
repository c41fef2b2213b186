//! Recovery's executor: one round reads the witnesses, applies the plan, and carries every
//! open incident as far as it goes through its journaled lifecycle
//! suspected → fencing → fenced → forced_down → evacuating → done | failed | blocked
//! (or cleared, when the host came back before anything was done to it).
//!
//! Rules it keeps:
//! - every transition is written to the journal *before* the side effect it announces
//!   (`fencing` before the fencing hook, `fenced` before `forced_down: true`, each VM's
//!   `evacuating` before its `evacuate` action);
//! - nothing is forced down or evacuated unless the fencing hook reported success: a fencing
//!   hook that fails or times out closes the incident `blocked` and pages;
//! - a resumed VM in `evacuating` is evacuated again only when Nova shows no sign of the first
//!   request (the server still on the dead host with no task, and no evacuation migration
//!   recorded since the journal entry), so no VM is evacuated twice;
//! - a VM Nova cannot place in its AZ (NoValidHost) is closed `blocked` with Nova's reason;
//!   steward never names a host, so it never moves a VM to another AZ;
//! - as the leader ([`lead`]), every journal write is fenced by the lease epoch and no side
//!   effect (fencing hook, force-down, evacuation) starts once the lease may have run out: a
//!   replica that was paused past its lease and wakes up writes nothing and acts on nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use super::plan::{self, HostHistory, HostPlan, InFlightEvacuation, PendingVm};
use super::suspect::{self, Finding, HostObservation, ServiceFacts};
use super::witness::Witnesses;
use super::{Mode, RecoverySettings};
use crate::metrics::Metrics;
use crate::openstack::nova::{parse_nova_time, ComputeService, Nova, ServerState};
use crate::rebalance::execute::ride_out;
use crate::rebalance::hooks::{Hook, HookContext, HookError};
use crate::rebalance::leader::Leadership;
use crate::store::journal::JournalError;
use crate::store::recovery::{IncidentRow, IncidentState, NewIncident, NewVm, Set, VmRow, VmState};
use crate::store::Store;
use crate::unix_now;

#[derive(Debug, thiserror::Error)]
pub enum RecoveryError {
    #[error(transparent)]
    Journal(#[from] JournalError),
    /// Nova could not be asked: the incident stays where it is and the next round resumes it.
    #[error("{0}")]
    Nova(String),
    /// The operator asked for something the journal does not allow.
    #[error("{0}")]
    Refused(String),
}

/// What one round read from Nova and the witnesses.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Observed {
    pub findings: Vec<Finding>,
    /// Compute hosts per AZ (every nova-compute service, up or down).
    pub hosts_per_az: BTreeMap<String, usize>,
    /// Hosts per AZ that can take an evacuation (up, enabled, not forced down).
    pub free_targets_per_az: BTreeMap<String, usize>,
    #[serde(skip)]
    pub services: Vec<ComputeService>,
}

/// What one round decided and did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RoundReport {
    pub at: f64,
    pub mode: String,
    pub observed: Observed,
    pub plan: HostPlan,
    /// Incidents opened this round (ids).
    pub opened: Vec<String>,
    /// Each open or just-closed incident: (id, host, state).
    pub incidents: Vec<(String, String, String)>,
    /// VMs not started this round, and why.
    pub deferred: Vec<plan::Deferred>,
    pub errors: Vec<String>,
    /// VMs with an evacuation under way after the round (across every incident).
    pub in_flight: usize,
}

impl RoundReport {
    /// Is anything under way that another round would carry on?
    pub fn busy(&self) -> bool {
        self.in_flight > 0
            || self.incidents.iter().any(|(_, _, s)| {
                matches!(
                    IncidentState::parse(s),
                    Some(
                        IncidentState::Fencing | IncidentState::Fenced | IncidentState::ForcedDown
                    )
                )
            })
    }

    /// Incidents the round left with work to do (not final, not waiting for approval).
    pub fn unfinished(&self) -> usize {
        self.incidents
            .iter()
            .filter(|(_, _, s)| IncidentState::parse(s).is_some_and(|s| !s.is_final()))
            .count()
    }
}

pub struct Recovery {
    store: Store,
    nova: Arc<Nova>,
    fence: Option<Arc<dyn Hook>>,
    witnesses: Witnesses,
    settings: RecoverySettings,
    /// `[roles] metadata_key`: where a VM's role is read, for the priority order.
    role_key: String,
    metrics: Metrics,
    /// The leadership the running round journals under (set by [`lead`]); none outside it
    /// (the CLI's plan and an admin's approve or release write unfenced).
    leadership: arc_swap::ArcSwapOption<Leadership>,
}

/// The fencing hook from `[recovery.fence]`, built on the rebalancer's exec and HTTP hooks:
/// their `drain` step fences, `rejoin` runs on release.
pub fn fence_hook(s: &RecoverySettings) -> Result<Option<Arc<dyn Hook>>, HookError> {
    use crate::rebalance::hooks::settings::{ExecHookSettings, HttpHookSettings};
    use crate::rebalance::hooks::{exec::Exec, http::Http};
    if let Some(e) = &s.fence.exec {
        return Ok(Some(Arc::new(Exec::new(&ExecHookSettings {
            name: "fence-exec".into(),
            drain: e.fence.clone(),
            rejoin: e.rejoin.clone(),
            timeout_seconds: e.timeout_seconds,
        }))));
    }
    if let Some(h) = &s.fence.http {
        return Ok(Some(Arc::new(Http::new(&HttpHookSettings {
            name: "fence-http".into(),
            method: h.method.clone(),
            drain_url: h.fence_url.clone(),
            rejoin_url: h.rejoin_url.clone(),
            body: h.body.clone(),
            headers: h.headers.clone(),
            timeout_seconds: h.timeout_seconds,
        })?)));
    }
    Ok(None)
}

fn service_facts(s: &ComputeService) -> ServiceFacts {
    ServiceFacts {
        id: s.id.clone(),
        host: s.host.clone(),
        status: s.status.clone(),
        state: s.state.clone(),
        updated_at: s.updated_at.as_deref().and_then(parse_nova_time),
        forced_down: s.forced_down,
        disabled_reason: s.disabled_reason.clone(),
    }
}

fn hook_context(i: &IncidentRow) -> HookContext {
    HookContext {
        action: i.id.clone(),
        vm: i.host.clone(),
        vm_name: i.host.clone(),
        source: i.host.clone(),
        target: String::new(),
        az: i.az.clone(),
        metadata: BTreeMap::new(),
    }
}

impl Recovery {
    pub fn new(
        store: Store,
        nova: Arc<Nova>,
        fence: Option<Arc<dyn Hook>>,
        witnesses: Witnesses,
        settings: RecoverySettings,
        role_key: String,
        metrics: Metrics,
    ) -> Recovery {
        Recovery {
            store,
            nova,
            fence,
            witnesses,
            settings,
            role_key,
            metrics,
            leadership: arc_swap::ArcSwapOption::empty(),
        }
    }

    /// The leadership the next writes run under ([`lead`] sets it for a round, renewed, and
    /// clears it after): each journal write is fenced by its epoch, and no side effect starts
    /// once it may have run out.
    pub fn set_leadership(&self, leadership: Option<Leadership>) {
        self.leadership.store(leadership.map(Arc::new));
    }

    /// Refuse to start a side effect once the leadership this round runs under may have run
    /// out (by this process's own clock): another replica may lead by now.
    fn still_leading(&self, what: &str) -> Result<Option<Arc<Leadership>>, RecoveryError> {
        let fence = self.leadership.load_full();
        match &fence {
            Some(f) if !f.is_current() => {
                Err(RecoveryError::Journal(JournalError::Fenced(format!(
                    "{what} was not started: {}",
                    crate::store::lease::fence_refusal(f)
                ))))
            }
            _ => Ok(fence),
        }
    }

    pub fn settings(&self) -> &RecoverySettings {
        &self.settings
    }

    /// Read Nova's compute services, steward's telemetry ages and (for hosts the two
    /// mandatory witnesses call dead) the optional witnesses; assess every host.
    pub async fn observe(&self, now: f64) -> Result<Observed, RecoveryError> {
        let services = self.nova.compute_services().await.map_err(|e| {
            RecoveryError::Nova(format!("cannot list Nova's compute services: {e}"))
        })?;
        let view = self
            .store
            .load_view()
            .await
            .map_err(|e| RecoveryError::Journal(e.into()))?;
        let t = self.settings.thresholds();
        let mut out = Observed::default();
        let mut observations = Vec::with_capacity(services.len());
        for s in &services {
            let az = s.zone.clone().filter(|z| !z.is_empty());
            if let Some(az) = &az {
                *out.hosts_per_az.entry(az.clone()).or_default() += 1;
                let facts = service_facts(s);
                if s.status == "enabled"
                    && suspect::nova_is_up(&facts, t.service_down_time, now) == Some(true)
                    && s.state == "up"
                {
                    *out.free_targets_per_az.entry(az.clone()).or_default() += 1;
                }
            }
            let telemetry_at = view
                .hosts
                .get(&s.host)
                .map(|h| h.observed_at)
                .filter(|at| *at > 0.0);
            let mut obs = HostObservation {
                host: s.host.clone(),
                az,
                service: Some(service_facts(s)),
                telemetry_at,
                witnesses: Vec::new(),
            };
            // The optional witnesses are asked only about hosts already suspect, so a large
            // cloud costs them nothing while it is healthy.
            let mandatory_only = suspect::Thresholds {
                min_confirmations: 0,
                ..t
            };
            if !self.witnesses.is_empty()
                && suspect::assess(&obs, &mandatory_only, now)
                    .suspicion()
                    .is_some()
            {
                obs.witnesses = self.witnesses.ask(&s.host, now).await;
            }
            observations.push(obs);
        }
        out.findings = suspect::assess_all(&observations, &t, now);
        out.services = services;
        self.metrics.recovery.last_round.set(now);
        Ok(out)
    }

    /// The journal's memory per host, for the host plan.
    async fn history(
        &self,
    ) -> Result<(BTreeMap<String, HostHistory>, Vec<IncidentRow>), RecoveryError> {
        let all = self.store.incidents(&[], 1_000_000).await?;
        let mut out: BTreeMap<String, HostHistory> = BTreeMap::new();
        for i in &all {
            let h = out.entry(i.host.clone()).or_default();
            if i.released_at.is_none() && i.state != IncidentState::Cleared {
                h.unreleased = true;
            }
            if let Some(at) = i.finished_at {
                h.last_closed_at = Some(h.last_closed_at.map_or(at, |b: f64| b.max(at)));
            }
        }
        Ok((out, all))
    }

    /// Detection and the host plan only: what `steward evacuate plan` prints. Writes nothing.
    pub async fn plan(&self, now: f64) -> Result<RoundReport, RecoveryError> {
        let observed = self.observe(now).await?;
        let (history, open) = self.history().await?;
        let suspicions: Vec<_> = observed
            .findings
            .iter()
            .filter_map(|f| f.suspicion().cloned())
            .collect();
        let failing: Vec<plan::Failing> = observed
            .findings
            .iter()
            .filter(|f| f.half_dead())
            .filter_map(|f| observed.services.iter().find(|s| s.host == f.host()))
            // A host an operator disabled (maintenance) may be down on purpose.
            .filter(|s| s.status == "enabled" || s.forced_down || self.settings.include_disabled)
            .map(|s| plan::Failing {
                host: s.host.clone(),
                az: s.zone.clone().filter(|z| !z.is_empty()),
            })
            .collect();
        let plan = plan::plan_hosts(
            &suspicions,
            &failing,
            &observed.hosts_per_az,
            &history,
            &self.settings.host_limits(),
            now,
        );
        self.publish_detection(&suspicions, &plan);
        let incidents = open
            .iter()
            .filter(|i| !i.state.is_final())
            .map(|i| (i.id.clone(), i.host.clone(), i.state.to_string()))
            .collect();
        Ok(RoundReport {
            at: now,
            mode: self.settings.mode.as_str().into(),
            observed,
            plan,
            incidents,
            ..Default::default()
        })
    }

    fn publish_detection(&self, suspicions: &[suspect::Suspicion], plan: &HostPlan) {
        let m = &self.metrics.recovery;
        m.suspected_hosts.set(suspicions.len() as i64);
        m.guard.reset();
        m.guard.with_label_values(&["cloud"]).set(0);
        for g in &plan.guards {
            m.guard.with_label_values(&[g.scope.as_str()]).set(1);
            tracing::error!(scope = %g.scope, suspected = g.suspected, hosts = g.hosts, "{}", g.detail);
        }
    }

    /// One round: detect, plan, open incidents (unless dry-run) and carry every open one as
    /// far as it goes without waiting. Call it as the leader.
    pub async fn round(&self, now: f64) -> RoundReport {
        let mut report = match self.plan(now).await {
            Ok(r) => r,
            Err(e) => {
                return RoundReport {
                    at: now,
                    mode: self.settings.mode.as_str().into(),
                    errors: vec![e.to_string()],
                    ..Default::default()
                }
            }
        };
        if self.settings.mode != Mode::DryRun {
            for s in report.plan.open.clone() {
                match self.open(&s, &report.observed, now).await {
                    Ok(i) => report.opened.push(i.id),
                    Err(e) => report.errors.push(e.to_string()),
                }
            }
        }
        let open = match self
            .store
            .incidents(
                &IncidentState::ALL
                    .into_iter()
                    .filter(|s| !s.is_final())
                    .collect::<Vec<_>>(),
                1_000_000,
            )
            .await
        {
            Ok(o) => o,
            Err(e) => {
                report
                    .errors
                    .push(format!("cannot read the recovery journal: {e}"));
                return report;
            }
        };
        report.incidents.clear();
        for i in open {
            let r = self.drive(&i, &report, now).await;
            match r {
                Ok((state, deferred)) => {
                    report.deferred.extend(deferred);
                    report
                        .incidents
                        .push((i.id.clone(), i.host.clone(), state.to_string()));
                }
                Err(e) => {
                    tracing::warn!(incident = %i.id, host = %i.host, error = %e, "recovery incident left where it is");
                    report
                        .errors
                        .push(format!("incident {} (host {}): {e}", i.id, i.host));
                    report
                        .incidents
                        .push((i.id.clone(), i.host.clone(), i.state.to_string()));
                }
            }
        }
        report.in_flight = self
            .store
            .recovery_vms_in(&[VmState::Evacuating])
            .await
            .map(|v| v.len())
            .unwrap_or(0);
        self.publish_gauges().await;
        report
    }

    /// Incidents and VMs by state, for `/metrics`.
    pub async fn publish_gauges(&self) {
        let m = &self.metrics.recovery;
        if let Ok(all) = self.store.incidents(&[], 1_000_000).await {
            for s in IncidentState::ALL {
                let n = all.iter().filter(|i| i.state == s).count();
                m.incidents.with_label_values(&[s.as_str()]).set(n as i64);
            }
        }
        if let Ok(vms) = self.store.recovery_vms_in(&VmState::ALL).await {
            for s in VmState::ALL {
                let n = vms.iter().filter(|v| v.state == s).count();
                m.vms.with_label_values(&[s.as_str()]).set(n as i64);
            }
        }
    }

    async fn open(
        &self,
        s: &suspect::Suspicion,
        observed: &Observed,
        now: f64,
    ) -> Result<IncidentRow, RecoveryError> {
        let service = observed.services.iter().find(|x| x.host == s.host);
        let approved_by = (self.settings.mode == Mode::Auto).then_some("steward (mode auto)");
        let fence = self.leadership.load_full();
        let i = self
            .store
            .open_incident(
                &NewIncident {
                    host: s.host.clone(),
                    az: s.az.clone().unwrap_or_default(),
                    service_id: s.service_id.clone(),
                    mode: self.settings.mode.as_str().into(),
                    evidence: serde_json::to_string(s).unwrap_or_default(),
                    service_before: service
                        .map(|x| serde_json::to_string(x).unwrap_or_default())
                        .unwrap_or_default(),
                },
                approved_by,
                now,
                fence.as_deref(),
            )
            .await?;
        tracing::warn!(incident = %i.id, host = %s.host, az = ?s.az, silent_s = s.silent_seconds, "host suspected dead; recovery incident opened");
        Ok(i)
    }

    async fn move_incident(
        &self,
        i: &IncidentRow,
        to: IncidentState,
        sets: &[Set],
        detail: &str,
    ) -> Result<IncidentRow, RecoveryError> {
        let fence = self.leadership.load_full();
        let row = ride_out("writing a recovery transition", |_| {
            self.store.incident_transition(
                &i.id,
                i.state,
                to,
                sets,
                detail,
                unix_now(),
                fence.as_deref(),
            )
        })
        .await?;
        tracing::info!(incident = %i.id, host = %i.host, from = %i.state, to = %to, detail, "recovery incident");
        Ok(row)
    }

    async fn close_incident(
        &self,
        i: &IncidentRow,
        to: IncidentState,
        why: String,
    ) -> Result<IncidentRow, RecoveryError> {
        let now = unix_now();
        let mut sets = vec![Set::Number("finished_at", now)];
        if to != IncidentState::Done {
            sets.push(Set::Text("error", why.clone()));
        }
        self.move_incident(i, to, &sets, &why).await
    }

    /// Carry one incident as far as it goes this round.
    async fn drive(
        &self,
        i: &IncidentRow,
        round: &RoundReport,
        now: f64,
    ) -> Result<(IncidentState, Vec<plan::Deferred>), RecoveryError> {
        let mut i = i.clone();
        let guarded = round.plan.guarded(&i.az);
        loop {
            let next = match i.state {
                IncidentState::Suspected => {
                    if self.settings.mode == Mode::DryRun && i.approved_at.is_none() {
                        return Ok((i.state, Vec::new()));
                    }
                    let still = round.observed.findings.iter().find(|f| f.host() == i.host);
                    match still {
                        Some(Finding::Clear { reason, .. }) => {
                            let why = format!(
                                "host {} is no longer suspected ({reason}); nothing was done to it",
                                i.host
                            );
                            self.close_incident(&i, IncidentState::Cleared, why).await?
                        }
                        _ if i.approved_at.is_none() || guarded => {
                            return Ok((i.state, Vec::new()))
                        }
                        _ => {
                            let hook = self.fence.as_ref().map(|h| h.name().to_string());
                            let Some(hook) = hook else {
                                let why = format!("no fencing hook is configured ([recovery.fence]); host {} was not fenced and nothing was evacuated", i.host);
                                self.metrics
                                    .recovery
                                    .fence_failures
                                    .with_label_values(&[&i.host])
                                    .inc();
                                return Ok((
                                    self.close_incident(&i, IncidentState::Blocked, why)
                                        .await?
                                        .state,
                                    Vec::new(),
                                ));
                            };
                            self.move_incident(
                                &i,
                                IncidentState::Fencing,
                                &[],
                                &format!("fencing host {} with hook {hook}", i.host),
                            )
                            .await?
                        }
                    }
                }
                IncidentState::Fencing => self.fence(&i).await?,
                IncidentState::Fenced => self.force_down(&i).await?,
                IncidentState::ForcedDown => self.list_vms(&i, now).await?,
                IncidentState::Evacuating => {
                    let (row, deferred) = self.evacuate(&i, round, now).await?;
                    if row.state == IncidentState::Evacuating {
                        return Ok((row.state, deferred));
                    }
                    row
                }
                s => return Ok((s, Vec::new())),
            };
            if next.state == i.state {
                return Ok((next.state, Vec::new()));
            }
            i = next;
        }
    }

    /// fencing → fenced once the hook reported success; → blocked (and a page) when it failed
    /// or timed out.
    async fn fence(&self, i: &IncidentRow) -> Result<IncidentRow, RecoveryError> {
        let Some(hook) = &self.fence else {
            let why = format!(
                "no fencing hook is configured; host {} stays as it is",
                i.host
            );
            return self.close_incident(i, IncidentState::Blocked, why).await;
        };
        self.still_leading(&format!("fencing host {}", i.host))?;
        match hook.drain(&hook_context(i)).await {
            Ok(()) => {
                self.move_incident(
                    i,
                    IncidentState::Fenced,
                    &[],
                    &format!(
                        "fencing hook {} reported host {} fenced; forcing its compute service down",
                        hook.name(),
                        i.host
                    ),
                )
                .await
            }
            Err(e) => {
                self.metrics
                    .recovery
                    .fence_failures
                    .with_label_values(&[&i.host])
                    .inc();
                let why = format!(
                    "fencing host {} failed: {e}; nothing was forced down or evacuated. Fence it by \
                     hand (power it off), then `steward evacuate release {}` lets steward try again",
                    i.host, i.host
                );
                tracing::error!(incident = %i.id, host = %i.host, "{why}");
                self.close_incident(i, IncidentState::Blocked, why).await
            }
        }
    }

    /// fenced → forced_down: `PUT /os-services/{id}` `forced_down: true` (idempotent).
    async fn force_down(&self, i: &IncidentRow) -> Result<IncidentRow, RecoveryError> {
        self.still_leading(&format!("forcing down nova-compute of host {}", i.host))?;
        let saved = self
            .nova
            .set_forced_down(&i.service_id, true)
            .await
            .map_err(|e| {
                RecoveryError::Nova(format!(
                    "cannot force down nova-compute {} of host {}: {e}; the next round tries again",
                    i.service_id, i.host
                ))
            })?;
        if !saved.forced_down {
            return Err(RecoveryError::Nova(format!(
                "Nova answered the force-down of {} (host {}) with forced_down false",
                i.service_id, i.host
            )));
        }
        self.move_incident(
            i,
            IncidentState::ForcedDown,
            &[],
            &format!(
                "Nova holds nova-compute {} of host {} forced down",
                i.service_id, i.host
            ),
        )
        .await
    }

    /// forced_down → evacuating, with every server on the host journaled (pending) in the
    /// same transaction.
    async fn list_vms(&self, i: &IncidentRow, _now: f64) -> Result<IncidentRow, RecoveryError> {
        let servers = self.nova.servers_on_host(&i.host).await.map_err(|e| {
            RecoveryError::Nova(format!("cannot list the servers of host {}: {e}", i.host))
        })?;
        let vms: Vec<NewVm> = servers
            .iter()
            .map(|s| NewVm {
                vm: s.id.clone(),
                vm_name: s.name.clone(),
                az: s
                    .availability_zone
                    .clone()
                    .filter(|a| !a.is_empty())
                    .unwrap_or_else(|| i.az.clone()),
                role: s.metadata.get(&self.role_key).cloned(),
                flavor: s.flavor.original_name.clone(),
                before_image: serde_json::json!({
                    "id": s.id, "name": s.name, "status": s.status,
                    "OS-EXT-SRV-ATTR:host": s.host,
                    "OS-EXT-AZ:availability_zone": s.availability_zone,
                    "metadata": s.metadata, "flavor": s.flavor.original_name,
                    "tenant_id": s.tenant_id,
                })
                .to_string(),
            })
            .collect();
        let now = unix_now();
        let detail = format!("{} server(s) on host {} to evacuate", vms.len(), i.host);
        let fence = self.leadership.load_full();
        let row = ride_out("journaling the VMs to evacuate", |_| {
            self.store
                .start_evacuating(&i.id, &vms, &detail, now, fence.as_deref())
        })
        .await?;
        Ok(row)
    }

    /// evacuating: look at each VM under way, start the next ones the plan allows, and close
    /// the incident once every VM is final.
    async fn evacuate(
        &self,
        i: &IncidentRow,
        round: &RoundReport,
        now: f64,
    ) -> Result<(IncidentRow, Vec<plan::Deferred>), RecoveryError> {
        for row in self.store.incident_vms(&i.id).await? {
            if row.state == VmState::Evacuating {
                self.check(i, &row).await?;
            }
        }
        let rows = self.store.incident_vms(&i.id).await?;
        let pending: Vec<&VmRow> = rows
            .iter()
            .filter(|r| r.state == VmState::Pending)
            .collect();
        let mut deferred = Vec::new();
        if !pending.is_empty() {
            let in_flight: Vec<InFlightEvacuation> = self
                .store
                .recovery_vms_in(&[VmState::Evacuating])
                .await?
                .into_iter()
                .map(|r| InFlightEvacuation {
                    az: r.az,
                    target: r.target,
                })
                .collect();
            let names: Vec<String> = pending.iter().map(|r| r.vm.clone()).collect();
            let last = self.store.last_evacuations(&names).await?;
            let candidates: Vec<PendingVm> = pending
                .iter()
                .map(|r| PendingVm {
                    id: r.id.clone(),
                    vm: r.vm.clone(),
                    name: r.vm_name.clone(),
                    az: r.az.clone(),
                    role: r.role.clone(),
                    flavor: r.flavor.clone(),
                    metadata: serde_json::from_str::<serde_json::Value>(&r.before_image)
                        .ok()
                        .and_then(|v| serde_json::from_value(v["metadata"].clone()).ok())
                        .unwrap_or_default(),
                    last_evacuated_at: last.get(&r.vm).copied(),
                })
                .collect();
            let guarded: BTreeSet<String> = round
                .plan
                .guards
                .iter()
                .map(|g| g.scope.strip_prefix("az:").unwrap_or("*").to_string())
                .collect();
            let p = plan::plan_vms(
                &candidates,
                &in_flight,
                &round.observed.free_targets_per_az,
                &guarded,
                &self.settings.vm_limits(),
                &self.settings.priority,
                now,
            );
            for id in &p.start {
                if let Some(row) = pending.iter().find(|r| &r.id == id) {
                    self.start(i, row).await?;
                }
            }
            deferred = p.deferred;
        }
        let rows = self.store.incident_vms(&i.id).await?;
        if rows.iter().all(|r| r.state.is_final()) {
            let bad: Vec<String> = rows
                .iter()
                .filter(|r| r.state != VmState::Done)
                .map(|r| {
                    format!(
                        "{} ({}): {}",
                        r.vm,
                        r.state,
                        r.error.as_deref().unwrap_or("")
                    )
                })
                .collect();
            let row = if bad.is_empty() {
                let why = format!(
                    "every server of host {} ({}) is on another host of AZ {}",
                    i.host,
                    rows.len(),
                    i.az
                );
                self.close_incident(i, IncidentState::Done, why).await?
            } else {
                let why = format!(
                    "{} of {} server(s) of host {} were not evacuated: {}",
                    bad.len(),
                    rows.len(),
                    i.host,
                    bad.join("; ")
                );
                self.close_incident(i, IncidentState::Failed, why).await?
            };
            return Ok((row, deferred));
        }
        Ok((
            self.store
                .incident(&i.id)
                .await?
                .unwrap_or_else(|| i.clone()),
            deferred,
        ))
    }

    async fn move_vm(
        &self,
        row: &VmRow,
        to: VmState,
        sets: &[Set],
        detail: &str,
    ) -> Result<VmRow, RecoveryError> {
        let fence = self.leadership.load_full();
        let r = ride_out("writing a recovery VM transition", |_| {
            self.store
                .vm_transition(row, to, sets, detail, unix_now(), fence.as_deref())
        })
        .await?;
        if to.is_final() {
            self.metrics
                .recovery
                .evacuations
                .with_label_values(&[to.as_str()])
                .inc();
        }
        tracing::info!(vm = %row.vm, from = %row.state, to = %to, detail, "recovery evacuation");
        Ok(r)
    }

    async fn close_vm(
        &self,
        row: &VmRow,
        to: VmState,
        why: String,
        target: Option<String>,
    ) -> Result<VmRow, RecoveryError> {
        let mut sets = vec![Set::Number("finished_at", unix_now())];
        if to != VmState::Done {
            sets.push(Set::Text("error", why.clone()));
        }
        if let Some(t) = target {
            sets.push(Set::Text("target", t));
        }
        self.move_vm(row, to, &sets, &why).await
    }

    /// pending → evacuating (journaled first), then `evacuate` without a host.
    async fn start(&self, i: &IncidentRow, row: &VmRow) -> Result<(), RecoveryError> {
        let row = self
            .move_vm(
                row,
                VmState::Evacuating,
                &[],
                &format!("evacuating server {} from host {} through Nova's scheduler (no host named; AZ {})", row.vm, i.host, row.az),
            )
            .await?;
        self.send(i, &row).await
    }

    /// Send `evacuate` for a row already in `evacuating`; record Nova's acceptance.
    async fn send(&self, i: &IncidentRow, row: &VmRow) -> Result<(), RecoveryError> {
        self.still_leading(&format!("evacuating server {}", row.vm))?;
        match self.nova.evacuate(&row.vm).await {
            Ok(request) => {
                let mut sets = vec![Set::Number("accepted_at", unix_now())];
                if let Some(r) = &request {
                    sets.push(Set::Text("request_id", r.clone()));
                }
                let detail = format!("Nova accepted the evacuation{}", request.map(|r| format!(" (request {r})")).unwrap_or_default());
                self.move_vm(row, VmState::Evacuating, &sets, &detail).await?;
                Ok(())
            }
            Err(e) if e.status() == Some(404) => {
                self.close_vm(row, VmState::Failed, format!("server {} no longer exists in Nova", row.vm), None).await?;
                Ok(())
            }
            Err(e) if matches!(e.status(), Some(400 | 409)) => {
                let why = format!("Nova refused to evacuate server {} from host {}: {e}", row.vm, i.host);
                self.close_vm(row, VmState::Blocked, why, None).await?;
                Ok(())
            }
            Err(e) => Err(RecoveryError::Nova(format!(
                "evacuating server {}: {e}; the next round looks whether Nova got it before asking again",
                row.vm
            ))),
        }
    }

    /// A VM in `evacuating`: finished, still under way, refused, or (only when Nova shows no
    /// sign of the first request) sent again.
    async fn check(&self, i: &IncidentRow, row: &VmRow) -> Result<(), RecoveryError> {
        let server = match self.nova.server(&row.vm).await {
            Ok(s) => s,
            Err(e) if e.status() == Some(404) => {
                self.close_vm(
                    row,
                    VmState::Failed,
                    format!("server {} was deleted during its evacuation", row.vm),
                    None,
                )
                .await?;
                return Ok(());
            }
            Err(e) => {
                return Err(RecoveryError::Nova(format!(
                    "cannot read server {}: {e}",
                    row.vm
                )))
            }
        };
        match verdict(
            i,
            row,
            &server,
            self.settings.evacuation_timeout_seconds,
            unix_now(),
        ) {
            Check::Wait => Ok(()),
            Check::Close(state, why, target) => {
                self.close_vm(row, state, why, target).await?;
                Ok(())
            }
            Check::Unsure => {
                // Sent or not? Nova records an evacuation migration as soon as the API takes it.
                let migrations = self.nova.evacuations(&row.vm).await.map_err(|e| {
                    RecoveryError::Nova(format!(
                        "cannot read the migrations of server {}: {e}",
                        row.vm
                    ))
                })?;
                // A minute's margin for the clocks of steward and Nova's database.
                let since = row.updated_at - 60.0;
                let ours = migrations.iter().rev().find(|m| {
                    m.created_at
                        .as_deref()
                        .and_then(parse_nova_time)
                        .is_some_and(|at| at >= since)
                });
                match ours {
                    Some(m) if m.status == "error" || m.status == "failed" => {
                        let why = format!(
                            "Nova's evacuation {} of server {} ended {}; the server is {} on {}",
                            m.id,
                            row.vm,
                            m.status,
                            server.status,
                            server.host.as_deref().unwrap_or("no host")
                        );
                        self.close_vm(row, VmState::Failed, why, None).await?;
                        Ok(())
                    }
                    Some(m) => {
                        let detail = format!("Nova already has evacuation {} ({}) of this server; not sending it again", m.id, m.status);
                        self.move_vm(
                            row,
                            VmState::Evacuating,
                            &[Set::Number("accepted_at", unix_now())],
                            &detail,
                        )
                        .await?;
                        Ok(())
                    }
                    None => {
                        tracing::warn!(vm = %row.vm, "no sign in Nova of the evacuation journaled before the restart; sending it");
                        self.send(i, row).await
                    }
                }
            }
        }
    }

    /// `steward evacuate release HOST`: the rejoin hook, then `forced_down: false`, then the
    /// journal says so. Only a host whose incident is closed can be released.
    pub async fn release(&self, host: &str, who: &str) -> Result<IncidentRow, RecoveryError> {
        let all = self.store.incidents(&[], 1_000_000).await?;
        let mine: Vec<&IncidentRow> = all.iter().filter(|i| i.host == host).collect();
        let Some(i) = mine
            .iter()
            .find(|i| i.released_at.is_none() && i.state != IncidentState::Cleared)
        else {
            return Err(RecoveryError::Refused(format!(
                "host {host} has no recovery incident awaiting release; `steward evacuate list` shows the incidents (steward only releases what it forced down)"
            )));
        };
        if !i.state.is_final() {
            return Err(RecoveryError::Refused(format!(
                "incident {} of host {host} is still {}; release it once it is done, failed or blocked",
                i.id, i.state
            )));
        }
        if let Some(hook) = &self.fence {
            hook.rejoin(&hook_context(i)).await.map_err(|e| {
                RecoveryError::Refused(format!(
                    "the rejoin hook of host {host} failed: {e}; the service stays forced down"
                ))
            })?;
        }
        let forced = matches!(i.state, IncidentState::Done | IncidentState::Failed);
        if forced || self.nova_forced(&i.service_id).await? {
            self.nova
                .set_forced_down(&i.service_id, false)
                .await
                .map_err(|e| {
                    RecoveryError::Nova(format!(
                        "cannot unforce nova-compute {} of host {host}: {e}; try again",
                        i.service_id
                    ))
                })?;
        }
        let detail = format!(
            "released by {who}: nova-compute {} of host {host} is no longer forced down",
            i.service_id
        );
        let row = ride_out("journaling a release", |_| {
            self.store.mark_released(i, who, &detail, unix_now())
        })
        .await?;
        tracing::warn!(incident = %i.id, host, by = who, "host released back into service");
        Ok(row)
    }

    async fn nova_forced(&self, service_id: &str) -> Result<bool, RecoveryError> {
        let services = self.nova.compute_services().await.map_err(|e| {
            RecoveryError::Nova(format!("cannot list Nova's compute services: {e}"))
        })?;
        Ok(services.iter().any(|s| s.id == service_id && s.forced_down))
    }

    /// Rounds until nothing is under way (every incident final, waiting for approval, held
    /// by a guard, or with its remaining VMs deferred), or until `budget` runs out:
    /// `steward evacuate run-once`, as the leader.
    pub async fn run_until_settled(&self, budget: Option<Duration>) -> RoundReport {
        let started = std::time::Instant::now();
        loop {
            let report = self.round(unix_now()).await;
            let out_of_time = budget.is_some_and(|b| started.elapsed() >= b);
            if !report.busy() || out_of_time {
                return report;
            }
            tokio::time::sleep(Duration::from_secs_f64(self.settings.poll_seconds)).await;
        }
    }
}

/// What a VM's server shows about its evacuation.
#[derive(Debug, Clone, PartialEq)]
pub enum Check {
    /// Under way.
    Wait,
    /// Over: the state to close in, why, and the host it landed on.
    Close(VmState, String, Option<String>),
    /// Still on the dead host with no task: Nova may never have got the request.
    Unsure,
}

/// Read one server against its journaled evacuation. PURE.
pub fn verdict(i: &IncidentRow, row: &VmRow, s: &ServerState, timeout: f64, now: f64) -> Check {
    let host = s.host.as_deref().unwrap_or("");
    // Any task under way (an evacuation is a rebuild: `rebuilding`, `rebuild_spawning`...).
    let busy = s.task_state.as_deref().is_some_and(|t| !t.is_empty());
    let before_status = serde_json::from_str::<serde_json::Value>(&row.before_image)
        .ok()
        .and_then(|v| v["status"].as_str().map(str::to_string))
        .unwrap_or_else(|| "ACTIVE".into());
    let fault = s
        .fault
        .as_ref()
        .map(|f| f.message.clone())
        .unwrap_or_default();
    if !host.is_empty() && host != i.host {
        if busy {
            return Check::Wait;
        }
        if s.status == "ERROR" {
            return Check::Close(
                VmState::Failed,
                format!(
                    "server {} is ERROR on {host} after its evacuation: {fault}",
                    row.vm
                ),
                Some(host.into()),
            );
        }
        let az = s.availability_zone.as_deref().unwrap_or("");
        if az != row.az {
            return Check::Close(
                VmState::Failed,
                format!(
                    "server {} landed on {host} in AZ {az:?}, not in its AZ {}: check that the \
                     steward shim runs in nova-scheduler",
                    row.vm, row.az
                ),
                Some(host.into()),
            );
        }
        if s.status == before_status || s.status == "ACTIVE" {
            return Check::Close(
                VmState::Done,
                format!("server {} is {} on {host} in AZ {az}", row.vm, s.status),
                Some(host.into()),
            );
        }
        return Check::Wait;
    }
    // Still on the dead host.
    let Some(accepted) = row.accepted_at else {
        return Check::Unsure;
    };
    if !busy && s.status == "ERROR" && before_status != "ERROR" {
        if fault.contains("No valid host") {
            return Check::Close(
                VmState::Blocked,
                format!(
                    "Nova found no host for server {} in AZ {} ({fault}); it stays on {} (ERROR) \
                     and is never moved to another AZ: make room in {} and evacuate it by hand",
                    row.vm, row.az, i.host, row.az
                ),
                None,
            );
        }
        return Check::Close(
            VmState::Failed,
            format!("Nova's evacuation of server {} failed: {fault}", row.vm),
            None,
        );
    }
    if now - accepted > timeout {
        return Check::Close(
            VmState::Failed,
            format!(
                "Nova accepted the evacuation of server {} {:.0} s ago and it is still {} on {}; \
                 [recovery] evacuation_timeout_seconds = {timeout:.0}",
                row.vm,
                now - accepted,
                s.status,
                i.host
            ),
            None,
        );
    }
    Check::Wait
}

/// One round as the leader (the rebalancer's election, shared): `None` when another replica
/// leads. The lease is renewed while `work` runs and `recovery` journals under it (each
/// write fenced by its epoch); losing it stops the work where it is, as a crash would, and
/// the journal resumes it.
pub async fn lead<T>(
    store: &Store,
    holder: &str,
    ttl: f64,
    metrics: &Metrics,
    recovery: &Recovery,
    work: impl std::future::Future<Output = T>,
) -> Result<Option<T>, crate::store::StoreError> {
    let Some(mut leader) = crate::rebalance::leader::try_lead(store, holder, ttl).await? else {
        metrics.recovery.leader.set(0);
        return Ok(None);
    };
    metrics.recovery.leader.set(1);
    recovery.set_leadership(Some(leader.leadership()));
    let renew_every = Duration::from_secs_f64((ttl / 3.0).max(0.1));
    tokio::pin!(work);
    let out = loop {
        tokio::select! {
            r = &mut work => break Some(r),
            _ = tokio::time::sleep(renew_every) => {
                if !matches!(leader.renew().await, Ok(true)) {
                    tracing::warn!(epoch = leader.epoch(), "lost the leadership during a recovery round; stopping here");
                    break None;
                }
                recovery.set_leadership(Some(leader.leadership()));
            }
        }
    };
    recovery.set_leadership(None);
    if out.is_some() {
        leader.release().await;
    }
    metrics.recovery.leader.set(0);
    Ok(out)
}
