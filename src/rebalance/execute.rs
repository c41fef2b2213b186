//! The executor: carries each approved action through its journaled lifecycle
//! planned → approved → draining → migrating → rejoining → done | failed | aborted.
//!
//! Rules it keeps:
//! - every transition is written to the journal *before* the side effect it announces
//!   (`draining` before the drain hooks, `migrating` before `os-migrateLive`, an abort mark
//!   before the abort call, `rejoining` before the rejoin hooks);
//! - an action is only ever closed from `rejoining`, after every rejoin hook succeeded, so no
//!   node is left drained: a drain failure, a refused or failed migration and an abort all go
//!   through `rejoining`; a rejoin that keeps failing leaves the action in `rejoining` for the
//!   next cycle;
//! - after a restart each unfinished action resumes from its state (hooks are idempotent; a
//!   `migrating` action first asks Nova whether its request already went through);
//! - a migration is never declared over while Nova still runs it: past the completion timeout
//!   it is aborted through the API and polled until Nova has put the server back.

use std::sync::Arc;
use std::time::Duration;

use super::settings::ExecutionSettings;
use crate::metrics::Metrics;
use crate::openstack::nova::{InstanceAction, MigrationRecord, Nova, ServerState};
use crate::rebalance::hooks::{Hook, HookContext};
use crate::rebalance::leader::{Leader, Leadership};
use crate::store::journal::{ActionRow, ActionState, JournalError, NewAction, NewPlan, Patch};
use crate::store::{Store, StoreError};
use crate::unix_now;

const GIB: f64 = 1024.0 * 1024.0 * 1024.0;

/// How long a journal read or write waits out steward's database being unreachable (a MariaDB
/// restart, a Galera failover) before the action is left where it is for the next cycle.
const JOURNAL_OUTAGE_SECONDS: f64 = 60.0;

/// Run `op` (a journal read or write) again while the database is out of reach, with a
/// doubling pause, for at most [`JOURNAL_OUTAGE_SECONDS`]; any other error, or the outage
/// outlasting the window, is returned.
pub(crate) async fn ride_out<T, F, Fut>(what: &str, mut op: F) -> Result<T, JournalError>
where
    F: FnMut(bool) -> Fut,
    Fut: std::future::Future<Output = Result<T, JournalError>>,
{
    let started = std::time::Instant::now();
    let mut pause = Duration::from_millis(200);
    let mut again = false;
    loop {
        match op(again).await {
            Err(JournalError::Store(e))
                if e.is_connection_lost()
                    && started.elapsed().as_secs_f64() < JOURNAL_OUTAGE_SECONDS =>
            {
                tracing::warn!(error = %e, what, pause_ms = pause.as_millis() as u64,
                    "steward's database is out of reach; trying again");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(5));
                again = true;
            }
            Err(JournalError::Store(e)) if e.is_connection_lost() => {
                return Err(JournalError::Store(crate::store::StoreError::Unreachable {
                    seconds: started.elapsed().as_secs_f64(),
                    source: Box::new(e),
                }))
            }
            r => return r,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error(transparent)]
    Journal(#[from] JournalError),
    /// Nova could not be asked (transport, 5xx on a read): the action stays where it is and
    /// the next cycle resumes it.
    #[error("action {action} (server {vm}): {message}")]
    Nova {
        action: String,
        vm: String,
        message: String,
    },
    /// Rejoin hooks still failing after every attempt: the action stays in `rejoining`.
    #[error("action {action} (server {vm}) is still rejoining: {message}")]
    RejoinPending {
        action: String,
        vm: String,
        message: String,
    },
}

/// What one cycle did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CycleReport {
    /// Each action the cycle touched, with the state it was left in.
    pub actions: Vec<(String, String, ActionState)>,
    /// Errors that left an action unfinished (it resumes next cycle).
    pub errors: Vec<String>,
    /// True when the cycle's time budget ran out with actions still running.
    pub out_of_time: bool,
}

impl CycleReport {
    pub fn unfinished(&self) -> usize {
        self.actions.iter().filter(|a| !a.2.is_final()).count()
    }
}

pub struct Executor {
    store: Store,
    nova: Arc<Nova>,
    hooks: Vec<Arc<dyn Hook>>,
    settings: ExecutionSettings,
    metrics: Metrics,
    /// The leadership the running cycle journals under (set by [`lead_and_run_after`]);
    /// `None` when the executor runs alone (tests, `run-once` without election).
    fence: arc_swap::ArcSwapOption<Leadership>,
}

impl Executor {
    pub fn new(
        store: Store,
        nova: Arc<Nova>,
        hooks: Vec<Arc<dyn Hook>>,
        settings: ExecutionSettings,
        metrics: Metrics,
    ) -> Self {
        Executor {
            store,
            nova,
            hooks,
            settings,
            metrics,
            fence: arc_swap::ArcSwapOption::empty(),
        }
    }

    /// Seconds Nova's own completion timeout allows this action, plus the margin.
    pub fn completion_timeout(&self, a: &ActionRow) -> f64 {
        completion_timeout(&self.settings, a)
    }

    /// The leadership the running cycle works under (`None` outside [`lead_and_run_after`]);
    /// the planner journals its plan under it.
    pub fn leadership(&self) -> Option<Arc<Leadership>> {
        self.fence.load_full()
    }

    /// Run every approved and unfinished action, in-flight ones first, at most `max_parallel`
    /// at once, for at most `budget` (then the running ones stop where they are, exactly as on
    /// a crash, and the next cycle resumes them).
    ///
    /// With `start_new` false (dry-run mode) only actions already under way are carried on: a
    /// mode switch never leaves a node drained.
    pub async fn run_cycle(
        self: &Arc<Self>,
        budget: Option<Duration>,
        start_new: bool,
    ) -> CycleReport {
        let mut report = CycleReport::default();
        let mut states = vec![
            ActionState::Draining,
            ActionState::Migrating,
            ActionState::Rejoining,
        ];
        if start_new {
            states.push(ActionState::Approved);
        }
        let mut todo = match self.store.actions(&states, 100_000).await {
            Ok(t) => t,
            Err(e) => {
                report.errors.push(format!("cannot read the journal: {e}"));
                return report;
            }
        };
        todo.sort_by_key(|a| (a.state == ActionState::Approved, a.created_at as i64, a.seq));
        let ids: Vec<(String, String)> =
            todo.iter().map(|a| (a.id.clone(), a.vm.clone())).collect();
        let gate = Arc::new(tokio::sync::Semaphore::new(
            self.settings.max_parallel.max(1),
        ));
        let mut set = tokio::task::JoinSet::new();
        for a in todo {
            let this = Arc::clone(self);
            let gate = Arc::clone(&gate);
            set.spawn(async move {
                let _slot = gate.acquire_owned().await;
                let r = this.run_action(&a.id).await;
                (a.id, r)
            });
        }
        let drain_all = async {
            while let Some(joined) = set.join_next().await {
                match joined {
                    Ok((_, Ok(_))) => {}
                    Ok((id, Err(e))) => {
                        tracing::warn!(action = %id, error = %e, "action left unfinished");
                        report.errors.push(e.to_string());
                    }
                    Err(e) => report.errors.push(format!("an action task ended: {e}")),
                }
            }
        };
        match budget {
            Some(b) => {
                if tokio::time::timeout(b, drain_all).await.is_err() {
                    report.out_of_time = true;
                }
            }
            None => drain_all.await,
        }
        set.abort_all();
        while set.join_next().await.is_some() {}
        for (id, vm) in ids {
            if let Ok(Some(a)) = self.store.action(&id).await {
                report.actions.push((id, vm, a.state));
            }
        }
        self.publish_gauges().await;
        report
    }

    /// Current actions by state, for `/metrics`.
    pub async fn publish_gauges(&self) {
        if let Ok(all) = self.store.actions(&[], 1_000_000).await {
            for s in ActionState::ALL {
                let n = all.iter().filter(|a| a.state == s).count();
                self.metrics
                    .rebalance_actions
                    .with_label_values(&[s.as_str()])
                    .set(n as i64);
            }
        }
    }

    /// Carry one action as far as it goes: to a final state, or to where it must wait.
    pub async fn run_action(&self, id: &str) -> Result<ActionState, ExecError> {
        loop {
            let a = ride_out("reading the action", |_| self.store.action(id))
                .await?
                .ok_or_else(|| JournalError::NotFound(format!("no rebalance action {id}")))?;
            match a.state {
                ActionState::Planned => return Ok(a.state),
                s if s.is_final() => return Ok(s),
                ActionState::Approved => self.start(&a).await?,
                ActionState::Draining => self.drain(&a).await?,
                ActionState::Migrating => self.migrate(&a).await?,
                ActionState::Rejoining => self.rejoin(&a).await?,
                _ => return Ok(a.state),
            }
        }
    }

    fn nova_error(&self, a: &ActionRow, message: String) -> ExecError {
        ExecError::Nova {
            action: a.id.clone(),
            vm: a.vm.clone(),
            message,
        }
    }

    async fn move_to(
        &self,
        a: &ActionRow,
        to: ActionState,
        patch: Patch,
        detail: &str,
    ) -> Result<ActionRow, ExecError> {
        let patch = &patch;
        let mut fence = self.fence.load_full();
        let mut tries = 0;
        let row = loop {
            tries += 1;
            if fence.as_ref().is_some_and(|f| !f.is_current()) {
                fence = self.renewed_since(a, fence).await?;
            }
            match self
                .write_transition(a, to, patch, detail, fence.as_deref())
                .await
            {
                // The lease ran out while the database was away: go on only once this replica
                // renewed it at the same epoch (no one else took over meanwhile).
                Err(ExecError::Journal(JournalError::Fenced(_)))
                    if fence.is_some() && tries < 3 =>
                {
                    fence = self.renewed_since(a, fence).await?;
                }
                r => break r?,
            }
        };
        // The side effect this transition announces comes next: not from a process whose lease
        // may have passed on meanwhile (it was stopped, or the write waited out an outage)
        // unless it has been renewed since.
        if fence.as_ref().is_some_and(|f| !f.is_current()) {
            self.renewed_since(a, fence).await?;
        }
        if a.state != to {
            tracing::info!(action = %a.id, vm = %a.vm, from = %a.state, to = %to, detail, "rebalance action");
        }
        Ok(row)
    }

    /// One transition through the journal, fenced by `fence`, riding out a database outage.
    async fn write_transition(
        &self,
        a: &ActionRow,
        to: ActionState,
        patch: &Patch,
        detail: &str,
        fence: Option<&Leadership>,
    ) -> Result<ActionRow, ExecError> {
        Ok(ride_out("writing a transition", |again| async move {
            // The journal says why this entry came late.
            let detail = if again {
                let sep = if detail.is_empty() { "" } else { "; " };
                format!(
                    "{detail}{sep}written once steward's database was back (it was out of reach)"
                )
            } else {
                detail.to_string()
            };
            match self
                .store
                .transition_fenced(&a.id, a.state, to, patch, &detail, unix_now(), fence)
                .await
            {
                // The before-state guard refused a retry: the first attempt may have been
                // written with its answer lost. It was if the action is where it went.
                Err(JournalError::Conflict(msg)) if again && a.state != to => {
                    match self.store.action(&a.id).await? {
                        Some(row) if row.state == to => Ok(row),
                        _ => Err(JournalError::Conflict(msg)),
                    }
                }
                r => r,
            }
        })
        .await?)
    }

    /// The leadership once renewed after `stale` ran out: the same epoch, current again. Waits
    /// for the renewal while the leader still tries; refuses (the action stops where it is, for the next
    /// leader) when the lease passed on or was not renewed in time.
    async fn renewed_since(
        &self,
        a: &ActionRow,
        stale: Option<Arc<Leadership>>,
    ) -> Result<Option<Arc<Leadership>>, ExecError> {
        let Some(stale) = stale else { return Ok(None) };
        let started = std::time::Instant::now();
        // The leader's own loop renews (riding out an outage of steward's database for up to
        // JOURNAL_OUTAGE_SECONDS) or gives the cycle up, which drops this wait with it.
        let patience = JOURNAL_OUTAGE_SECONDS + self.settings.lease_seconds;
        while started.elapsed().as_secs_f64() < patience {
            match self.fence.load_full() {
                Some(f)
                    if f.epoch == stale.epoch
                        && f.is_current()
                        && f.valid_until > stale.valid_until =>
                {
                    return Ok(Some(f))
                }
                Some(f) if f.epoch == stale.epoch => {}
                _ => break,
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(fenced(a, &stale))
    }

    /// A failed step: → rejoining with the outcome `failed` and `msg` as the error; the rejoin
    /// hooks then put the workload back.
    async fn fail_and_rejoin(&self, a: &ActionRow, msg: String) -> Result<ActionRow, ExecError> {
        let detail = format!("{msg}; rejoining");
        self.move_to(
            a,
            ActionState::Rejoining,
            Patch {
                outcome: Some(ActionState::Failed),
                error: Some(msg),
                ..Default::default()
            },
            &detail,
        )
        .await
    }

    /// approved → draining, with the server's before-image; or → aborted when the plan no
    /// longer fits the server (moved, not ACTIVE, deleted): nothing was drained yet.
    async fn start(&self, a: &ActionRow) -> Result<(), ExecError> {
        let server = match self.nova.server(&a.vm).await {
            Ok(s) => s,
            Err(e) if e.status() == Some(404) => {
                self.close_unstarted(a, format!("server {} no longer exists in Nova", a.vm))
                    .await?;
                return Ok(());
            }
            Err(e) => return Err(self.nova_error(a, format!("cannot read the server: {e}"))),
        };
        let stale = if server.host.as_deref() != Some(a.source.as_str()) {
            Some(format!(
                "server {} is on {} now, not on {} where the plan found it; the next plan will \
                 look again",
                a.vm,
                server.host.as_deref().unwrap_or("no host"),
                a.source
            ))
        } else if server.status != "ACTIVE" {
            Some(format!(
                "server {} is {}, and a live migration needs it ACTIVE",
                a.vm, server.status
            ))
        } else {
            None
        };
        if let Some(why) = stale {
            self.close_unstarted(a, why).await?;
            return Ok(());
        }
        let image = serde_json::to_string(&server).unwrap_or_default();
        let hooks: Vec<&str> = self.hooks.iter().map(|h| h.name()).collect();
        self.move_to(
            a,
            ActionState::Draining,
            Patch {
                before_image: Some(image),
                ..Default::default()
            },
            &format!("draining (hooks: {})", list_or_none(&hooks)),
        )
        .await?;
        Ok(())
    }

    async fn close_unstarted(&self, a: &ActionRow, why: String) -> Result<(), ExecError> {
        let now = unix_now();
        self.move_to(
            a,
            ActionState::Aborted,
            Patch {
                error: Some(why.clone()),
                finished_at: Some(now),
                outcome: Some(ActionState::Aborted),
                ..Default::default()
            },
            &why,
        )
        .await?;
        self.count_final(ActionState::Aborted, 0);
        Ok(())
    }

    fn context(&self, a: &ActionRow) -> HookContext {
        let image: Option<ServerState> = a
            .before_image
            .as_deref()
            .and_then(|t| serde_json::from_str(t).ok());
        HookContext {
            action: a.id.clone(),
            vm: a.vm.clone(),
            vm_name: image
                .as_ref()
                .map(|s| s.name.clone())
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| a.vm_name.clone()),
            source: a.source.clone(),
            target: a.target.clone(),
            az: a.az.clone(),
            metadata: image.map(|s| s.metadata).unwrap_or_default(),
        }
    }

    /// draining: run every drain hook in order (again, after a restart: they are idempotent);
    /// → migrating, or → rejoining with outcome failed at the first hook that fails.
    async fn drain(&self, a: &ActionRow) -> Result<(), ExecError> {
        let ctx = self.context(a);
        for h in &self.hooks {
            if let Err(e) = h.drain(&ctx).await {
                self.metrics
                    .rebalance_hook_failures
                    .with_label_values(&[h.name()])
                    .inc();
                let msg = format!("drain hook {} failed: {e}", h.name());
                self.fail_and_rejoin(a, msg).await?;
                return Ok(());
            }
        }
        self.move_to(
            a,
            ActionState::Migrating,
            Patch::default(),
            &format!(
                "drained; asking Nova to live-migrate to {} (block_migration auto)",
                a.target
            ),
        )
        .await?;
        Ok(())
    }

    /// migrating: ask Nova once (unless it already took the request), poll the server's
    /// migration, abort past the timeout; → rejoining with the outcome.
    async fn migrate(&self, a: &ActionRow) -> Result<(), ExecError> {
        let mut a = a.clone();
        if a.accepted_at.is_none() {
            // After a crash the request may have gone out unrecorded: look before asking.
            let server = self
                .nova
                .server(&a.vm)
                .await
                .map_err(|e| self.nova_error(&a, format!("cannot read the server: {e}")))?;
            if let Some((outcome, why)) = finished(&a, &server, false) {
                if outcome == ActionState::Done {
                    return self.finish_migration(&a, outcome, why, true).await;
                }
            }
            if is_migrating(&server) {
                a = self
                    .accepted(
                        &a,
                        "Nova is already migrating the server (request sent before a restart)",
                    )
                    .await?;
            } else {
                match self.nova.live_migrate(&a.vm, &a.target).await {
                    Ok(rid) => {
                        a = self
                            .accepted(
                                &a,
                                &format!(
                                    "Nova accepted os-migrateLive to {}{}",
                                    a.target,
                                    rid.map(|r| format!(" [request {r}]")).unwrap_or_default()
                                ),
                            )
                            .await?;
                    }
                    Err(e) => {
                        // A 5xx or a lost answer may still have started the migration.
                        let refused = matches!(e.status(), Some(s) if s < 500);
                        let started = if refused {
                            false
                        } else {
                            self.nova
                                .server(&a.vm)
                                .await
                                .map(|s| is_migrating(&s))
                                .unwrap_or(false)
                        };
                        if started {
                            a = self
                                .accepted(
                                    &a,
                                    &format!("os-migrateLive answered an error but the server is migrating: {e}"),
                                )
                                .await?;
                        } else {
                            let msg = format!(
                                "Nova refused the live migration of server {} to {}: {e}",
                                a.vm, a.target
                            );
                            self.fail_and_rejoin(&a, msg).await?;
                            return Ok(());
                        }
                    }
                }
            }
        }
        self.poll(a).await
    }

    /// → migrating, with the time Nova took the request: however steward learnt that it did.
    async fn accepted(&self, a: &ActionRow, detail: &str) -> Result<ActionRow, ExecError> {
        let patch = Patch {
            accepted_at: Some(unix_now()),
            ..Default::default()
        };
        self.move_to(a, ActionState::Migrating, patch, detail).await
    }

    async fn poll(&self, mut a: ActionRow) -> Result<(), ExecError> {
        let poll = Duration::from_secs_f64(self.settings.poll_seconds);
        let timeout = self.completion_timeout(&a);
        loop {
            let now = unix_now();
            let accepted = a.accepted_at.unwrap_or(now);
            let migrations = match self.nova.server_migrations(&a.vm).await {
                Ok(m) => m,
                Err(e) => {
                    tracing::warn!(action = %a.id, vm = %a.vm, error = %e, "cannot poll the migration; trying again");
                    tokio::time::sleep(poll).await;
                    continue;
                }
            };
            if let Some(m) = migrations.first() {
                let bytes = (m.processed_bytes().min(i64::MAX as u64) as i64).max(a.bytes_moved);
                let new_id = a.migration_id.as_deref() != Some(m.id.as_str());
                if new_id || bytes != a.bytes_moved {
                    let detail = if new_id {
                        format!("Nova migration {} is {}", m.id, m.status)
                    } else {
                        String::new()
                    };
                    a = self
                        .move_to(
                            &a,
                            ActionState::Migrating,
                            Patch {
                                migration_id: Some(m.id.clone()),
                                bytes_moved: Some(bytes),
                                ..Default::default()
                            },
                            &detail,
                        )
                        .await?;
                }
                if now - accepted > timeout {
                    if a.abort_requested_at.is_none() {
                        a = self
                            .move_to(
                                &a,
                                ActionState::Migrating,
                                Patch {
                                    abort_requested_at: Some(now),
                                    ..Default::default()
                                },
                                &format!(
                                    "migration {} still {} after {:.0} s, past the completion \
                                     timeout of {:.0} s: aborting it",
                                    m.id,
                                    m.status,
                                    now - accepted,
                                    timeout
                                ),
                            )
                            .await?;
                    }
                    // Asked again on every poll until Nova ends it (a queued migration can
                    // refuse an abort for a moment).
                    if let Err(e) = self.nova.abort_migration(&a.vm, &m.id).await {
                        tracing::warn!(action = %a.id, vm = %a.vm, migration = %m.id, error = %e, "abort refused; asking again");
                    }
                }
            } else {
                match self.nova.server(&a.vm).await {
                    Ok(server) => {
                        if let Some((outcome, why)) =
                            finished(&a, &server, a.abort_requested_at.is_some())
                        {
                            return self.finish_migration(&a, outcome, why, true).await;
                        }
                    }
                    Err(e) if e.status() == Some(404) => {
                        let why = format!(
                            "server {} was deleted while it migrated; nothing is left to move",
                            a.vm
                        );
                        return self
                            .finish_migration(&a, ActionState::Failed, why, false)
                            .await;
                    }
                    Err(e) => {
                        tracing::warn!(action = %a.id, vm = %a.vm, error = %e, "cannot read the server; trying again")
                    }
                }
            }
            tokio::time::sleep(poll).await;
        }
    }

    /// The migration is over: → rejoining with its outcome, and what Nova says about it
    /// (`ask_nova`: its migration record, and for a failure the events it marked failed).
    async fn finish_migration(
        &self,
        a: &ActionRow,
        outcome: ActionState,
        why: String,
        ask_nova: bool,
    ) -> Result<(), ExecError> {
        let account = if ask_nova {
            Some(self.nova_account(a, outcome).await)
        } else {
            None
        };
        let why = explain(&why, outcome, account.as_ref(), &a.source);
        let migration_id = account
            .and_then(|n| n.migration)
            .map(|(id, _)| id)
            .or_else(|| a.migration_id.clone());
        let mut bytes = a.bytes_moved;
        if outcome == ActionState::Done && bytes == 0 {
            // The compute host reported no progress (a fast move): count what had to move.
            let disk = if a.block_migration { a.disk_gb } else { 0 };
            bytes = a
                .ram_mb
                .saturating_mul(1 << 20)
                .saturating_add(disk.saturating_mul(1 << 30));
        }
        self.move_to(
            a,
            ActionState::Rejoining,
            Patch {
                outcome: Some(outcome),
                bytes_moved: Some(bytes),
                migration_id,
                error: (outcome != ActionState::Done).then(|| why.clone()),
                ..Default::default()
            },
            &format!("{why}; rejoining"),
        )
        .await?;
        Ok(())
    }

    /// Nova's own account of how the migration ended: its live-migration record (the one the
    /// poll saw, else the newest since the request) and, for a failure, the events of the
    /// request's instance action that Nova marked failed. Best effort: a read that fails is
    /// left out (and logged), the outcome stands.
    async fn nova_account(&self, a: &ActionRow, outcome: ActionState) -> NovaAccount {
        let migration = match self.nova.live_migrations(&a.vm).await {
            Ok(all) => pick_migration(a, &all).map(|m| (m.id.clone(), m.status.clone())),
            Err(e) => {
                tracing::warn!(action = %a.id, vm = %a.vm, error = %e, "cannot read Nova's migration record; the journal goes without it");
                None
            }
        };
        let errors = if outcome == ActionState::Failed {
            match self
                .nova
                .newest_instance_action(&a.vm, "live-migration")
                .await
            {
                Ok(Some(action)) => failed_events(a, &action),
                Ok(None) => Vec::new(),
                Err(e) => {
                    tracing::warn!(action = %a.id, vm = %a.vm, error = %e, "cannot read Nova's instance action; the journal goes without its events");
                    Vec::new()
                }
            }
        } else {
            Vec::new()
        };
        NovaAccount { migration, errors }
    }

    /// rejoining: every rejoin hook, in reverse order, all of them even when one fails; the
    /// action closes only once all succeed.
    async fn rejoin(&self, a: &ActionRow) -> Result<(), ExecError> {
        let ctx = self.context(a);
        let attempts = self.settings.rejoin_attempts.max(1);
        let mut a = a.clone();
        for attempt in 1..=attempts {
            let mut failures = Vec::new();
            for h in self.hooks.iter().rev() {
                if let Err(e) = h.rejoin(&ctx).await {
                    self.metrics
                        .rebalance_hook_failures
                        .with_label_values(&[h.name()])
                        .inc();
                    failures.push(format!("rejoin hook {} failed: {e}", h.name()));
                }
            }
            if failures.is_empty() {
                let outcome = a.outcome.unwrap_or(ActionState::Failed);
                self.move_to(
                    &a,
                    outcome,
                    Patch {
                        finished_at: Some(unix_now()),
                        ..Default::default()
                    },
                    "rejoined",
                )
                .await?;
                self.count_final(outcome, a.bytes_moved);
                return Ok(());
            }
            let msg = failures.join("; ");
            a = self
                .move_to(
                    &a,
                    ActionState::Rejoining,
                    Patch::default(),
                    &format!("rejoin attempt {attempt} of {attempts}: {msg}"),
                )
                .await?;
            if attempt == attempts {
                return Err(ExecError::RejoinPending {
                    action: a.id.clone(),
                    vm: a.vm.clone(),
                    message: format!("{msg}; the next cycle tries again"),
                });
            }
            tokio::time::sleep(Duration::from_secs_f64(self.settings.rejoin_retry_seconds)).await;
        }
        Ok(())
    }

    fn count_final(&self, state: ActionState, bytes: i64) {
        self.metrics
            .rebalance_actions_total
            .with_label_values(&[state.as_str()])
            .inc();
        self.metrics
            .rebalance_bytes_moved
            .inc_by(u64::try_from(bytes).unwrap_or(0));
    }
}

/// One cycle as the leader: take the leadership (or return `None` when another replica has
/// it), run the cycle while renewing it, step down. Losing the leadership mid-cycle stops the
/// cycle where it is, as a crash would; the new leader resumes from the journal.
pub async fn lead_and_run(
    executor: &Arc<Executor>,
    store: &Store,
    holder: &str,
    budget: Option<Duration>,
    start_new: bool,
) -> Result<Option<CycleReport>, crate::store::StoreError> {
    Ok(
        lead_and_run_after(executor, store, holder, budget, start_new, async {})
            .await?
            .map(|(_, report)| report),
    )
}

/// As [`lead_and_run`], with `first` (the planner's cycle) run as the leader before the
/// execution cycle, so only the elected replica plans and a plan approved at once is carried
/// out in the same cycle. The leadership is renewed while both run. Its output comes back
/// beside the cycle's report (`None` when the leadership was lost before it finished).
pub async fn lead_and_run_after<T>(
    executor: &Arc<Executor>,
    store: &Store,
    holder: &str,
    budget: Option<Duration>,
    start_new: bool,
    first: impl std::future::Future<Output = T>,
) -> Result<Option<(Option<T>, CycleReport)>, crate::store::StoreError> {
    let ttl = executor.settings.lease_seconds;
    let Some(mut leader) = crate::rebalance::leader::try_lead(store, holder, ttl).await? else {
        executor.metrics.rebalance_leader.set(0);
        return Ok(None);
    };
    executor.metrics.rebalance_leader.set(1);
    executor.fence.store(Some(Arc::new(leader.leadership())));
    let renew_every = Duration::from_secs_f64((ttl / 3.0).max(0.1));
    let mut lost = false;
    let mut before = None;
    let report = {
        let cycle = async {
            let b = first.await;
            (b, executor.run_cycle(budget, start_new).await)
        };
        tokio::pin!(cycle);
        loop {
            tokio::select! {
                (b, r) = &mut cycle => {
                    before = Some(b);
                    break r;
                }
                _ = tokio::time::sleep(renew_every) => {
                    // The cycle is driven while the renewal waits: a cycle in the middle of a
                    // journal write holds a connection the renewal may need (SQLite's pool has
                    // one), and a renewal that waited on it unpolled would wait forever.
                    let held = {
                        let renewal = renew(&mut leader, renew_every, ttl);
                        tokio::pin!(renewal);
                        tokio::select! {
                            held = &mut renewal => held,
                            (b, r) = &mut cycle => {
                                before = Some(b);
                                break r;
                            }
                        }
                    };
                    if !held {
                        tracing::warn!(epoch = leader.epoch(), "lost the rebalance leadership mid-cycle; stopping here");
                        lost = true;
                        break CycleReport { out_of_time: true, ..Default::default() };
                    }
                    executor.fence.store(Some(Arc::new(leader.leadership())));
                }
            }
        }
    };
    // Whatever this cycle left running was dropped with it: journal nothing more as leader.
    executor.fence.store(None);
    if !lost {
        leader.release().await;
    }
    executor.metrics.rebalance_leader.set(0);
    Ok(Some((before, report)))
}

/// One renewal of the leadership during a cycle: false when it is lost. A database that does
/// not answer within a renewal period is as good as gone (the pool waits for it in silence).
async fn renew(leader: &mut Leader, renew_every: Duration, ttl: f64) -> bool {
    let renewed = tokio::time::timeout(renew_every, leader.renew()).await;
    match renewed.unwrap_or(Err(StoreError::Sql(sqlx::Error::PoolTimedOut))) {
        Ok(held) => held,
        // The database went away: renew once it is back. The actions under way go on
        // meanwhile, their journal writes waiting out the outage (`ride_out`) and refused if
        // the lease passed on.
        Err(e) if e.is_connection_lost() => renew_after_outage(leader, ttl).await,
        Err(e) => {
            tracing::warn!(error = %e, "could not renew the rebalance leadership");
            false
        }
    }
}

/// Renew the leadership once steward's database is back, trying for at most
/// [`JOURNAL_OUTAGE_SECONDS`]; false when another replica took it meanwhile or the database
/// stayed away.
async fn renew_after_outage(leader: &mut Leader, ttl: f64) -> bool {
    tracing::warn!(
        "steward's database is out of reach; the rebalance leader renews once it is back"
    );
    let started = std::time::Instant::now();
    let mut pause = Duration::from_millis(200);
    while started.elapsed().as_secs_f64() < JOURNAL_OUTAGE_SECONDS {
        tokio::time::sleep(pause).await;
        let renewed = tokio::time::timeout(Duration::from_secs_f64(ttl), leader.renew()).await;
        match renewed.unwrap_or(Err(StoreError::Sql(sqlx::Error::PoolTimedOut))) {
            Ok(true) => {
                tracing::warn!(
                    waited_s = started.elapsed().as_secs_f64(),
                    "steward's database is back and this replica leads again; the cycle goes on"
                );
                return true;
            }
            Ok(false) => {
                tracing::warn!("steward's database is back but another replica leads now");
                return false;
            }
            Err(e) => {
                tracing::debug!(error = %e, "steward's database still out of reach");
                pause = (pause * 2).min(Duration::from_secs(5));
            }
        }
    }
    tracing::warn!(
        "steward's database stayed out of reach for {JOURNAL_OUTAGE_SECONDS:.0} s; stopping \
         the cycle, the next one resumes from the journal"
    );
    false
}

/// A stale leader's refusal to go on with `a`.
fn fenced(a: &ActionRow, f: &Leadership) -> ExecError {
    ExecError::Journal(JournalError::Fenced(format!(
        "action {} (server {}) stops here: {}",
        a.id,
        a.vm,
        crate::store::lease::fence_refusal(f)
    )))
}

/// Nova's completion timeout for this action: seconds per GiB of what is copied (RAM, plus
/// the disk for a block migration; at least one GiB), plus the margin.
pub fn completion_timeout(s: &ExecutionSettings, a: &ActionRow) -> f64 {
    let disk = if a.block_migration { a.disk_gb } else { 0 };
    let gib = (a.ram_mb.max(0) as f64 * 1024.0 * 1024.0 + disk.max(0) as f64 * GIB) / GIB;
    s.completion_timeout_seconds_per_gib * gib.max(1.0) + s.completion_timeout_margin_seconds
}

fn is_migrating(s: &ServerState) -> bool {
    s.status == "MIGRATING" || s.task_state.as_deref() == Some("migrating")
}

/// The migration's outcome once Nova lists no migration in progress; `None` while the server
/// still shows it migrating.
fn finished(
    a: &ActionRow,
    s: &ServerState,
    abort_requested: bool,
) -> Option<(ActionState, String)> {
    if is_migrating(s) {
        return None;
    }
    let host = s.host.as_deref().unwrap_or("no host");
    if host == a.target && s.status == "ACTIVE" {
        return Some((
            ActionState::Done,
            format!("server {} is ACTIVE on {}", a.vm, a.target),
        ));
    }
    if host == a.source && abort_requested {
        return Some((
            ActionState::Aborted,
            format!(
                "migration aborted past its completion timeout; server {} is {} on {}",
                a.vm, s.status, a.source
            ),
        ));
    }
    Some((
        ActionState::Failed,
        format!(
            "Nova ended the migration with server {} {} on {host} (wanted {})",
            a.vm, s.status, a.target
        ),
    ))
}

/// Steward's and Nova's clocks may differ by this much when a record of Nova's is matched to
/// the time steward sent its request.
const CLOCK_SLACK_SECONDS: f64 = 60.0;

/// What Nova says about how a migration ended.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NovaAccount {
    /// Nova's migration record: its id and status (`completed`, `error`, `failed`, ...).
    pub migration: Option<(String, String)>,
    /// `event: details` of each event of the request that Nova marked failed, in its order.
    pub errors: Vec<String>,
}

/// This action's migration among the server's live migrations (oldest first): the one the
/// poll saw, else the newest Nova created since it accepted the request. A fast migration (or
/// one refused before it ran) is never listed in progress, so only this names it.
pub fn pick_migration<'m>(
    a: &ActionRow,
    all: &'m [MigrationRecord],
) -> Option<&'m MigrationRecord> {
    if let Some(seen) = a
        .migration_id
        .as_deref()
        .and_then(|id| all.iter().find(|m| m.id == id))
    {
        return Some(seen);
    }
    let since = a.accepted_at.map(|t| t - CLOCK_SLACK_SECONDS);
    all.iter()
        .rfind(|m| since_request(since, m.created_at.as_deref()))
}

/// Was a record of Nova's (created at `at`) made after the request (`since`, slack included)?
/// Unknown times are taken as after.
fn since_request(since: Option<f64>, at: Option<&str>) -> bool {
    match (since, at.and_then(crate::openstack::nova::parse_nova_time)) {
        (Some(since), Some(at)) => at >= since,
        _ => true,
    }
}

/// The failed events of the request's instance action, as `event: details` (the first line
/// of Nova's message, at most 300 characters); none when the action predates the request.
pub fn failed_events(a: &ActionRow, action: &InstanceAction) -> Vec<String> {
    let since = a.accepted_at.map(|t| t - CLOCK_SLACK_SECONDS);
    if !since_request(since, action.start_time.as_deref()) {
        return Vec::new();
    }
    action
        .events
        .iter()
        .filter(|e| e.result.as_deref() == Some("Error"))
        .map(|e| {
            let details = e
                .details
                .as_deref()
                .and_then(|d| d.lines().map(str::trim).find(|l| !l.is_empty()))
                .map(|d| d.chars().take(300).collect::<String>());
            match details {
                Some(d) => format!("{}: {d}", e.event),
                None => e.event.clone(),
            }
        })
        .collect()
}

/// The journal's words for how a migration ended: `why` (the server as Nova left it), then
/// Nova's migration record and, for a failure, the events Nova marked failed, or where to look
/// when Nova said nothing more. `account` is `None` when Nova was not asked.
pub fn explain(
    why: &str,
    outcome: ActionState,
    account: Option<&NovaAccount>,
    source: &str,
) -> String {
    let Some(account) = account else {
        return why.to_string();
    };
    let mut out = why.to_string();
    if let Some((id, status)) = &account.migration {
        out.push_str(&format!("; Nova migration {id} is {status}"));
    }
    if outcome == ActionState::Failed {
        if account.errors.is_empty() {
            out.push_str(&format!(
                "; nova-conductor's log and nova-compute's on {source} say why"
            ));
        } else {
            out.push_str(&format!("; Nova says: {}", account.errors.join("; ")));
        }
    }
    out
}

fn list_or_none(names: &[&str]) -> String {
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}

/// A planner's [`Plan`](crate::rebalance::Plan) as the journal keeps it: one action per move,
/// the rest (skipped candidates, steal-only reports, the budget) as the plan's summary.
pub fn journal_plan(plan: &crate::rebalance::Plan, id: String) -> NewPlan {
    let summary = serde_json::json!({
        "skipped": plan.skipped,
        "steal_only": plan.steal_only,
        "budget": plan.budget,
    });
    NewPlan {
        id,
        created_at: plan.generated_at,
        mode: plan.mode.as_str().into(),
        summary: summary.to_string(),
        actions: plan
            .actions
            .iter()
            .map(|a| NewAction {
                vm: a.vm.clone(),
                vm_name: a.vm.clone(),
                source: a.source_host.clone(),
                target: a.target_host.clone(),
                az: a.az.clone(),
                ram_mb: a.memory_mb.round() as i64,
                disk_gb: a.disk_gb.round() as i64,
                block_migration: a.block_migration,
                reason: a.reason.clone(),
            })
            .collect(),
    }
}

/// What the planner needs from the journal each cycle: the moves under way (approved and not
/// closed; they count against concurrency) and the finished ones since `since` (cooldown and
/// no-return), a finished move dated when it started.
pub async fn planner_inputs(
    store: &Store,
    since: f64,
) -> Result<
    (
        Vec<crate::rebalance::InFlight>,
        Vec<crate::rebalance::MoveRecord>,
    ),
    JournalError,
> {
    let open = store
        .actions(
            &[
                ActionState::Approved,
                ActionState::Draining,
                ActionState::Migrating,
                ActionState::Rejoining,
            ],
            1_000_000,
        )
        .await?;
    let in_flight = open
        .into_iter()
        .map(|a| crate::rebalance::InFlight {
            vm: a.vm,
            source_host: a.source,
            target_host: a.target,
            az: a.az,
        })
        .collect();
    let done = store.actions(&[ActionState::Done], 1_000_000).await?;
    let history = done
        .into_iter()
        .filter(|a| a.finished_at.unwrap_or(0.0) >= since)
        .map(|a| crate::rebalance::MoveRecord {
            at: a.accepted_at.unwrap_or(a.updated_at),
            vm: a.vm,
            from_host: a.source,
            to_host: a.target,
        })
        .collect();
    Ok((in_flight, history))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StoreError;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn lost() -> JournalError {
        JournalError::Store(StoreError::Sql(sqlx::Error::Io(std::io::Error::from(
            std::io::ErrorKind::ConnectionRefused,
        ))))
    }

    /// An action Nova accepted at 2026-12-07T12:50:18Z.
    fn accepted_action(migration_id: Option<&str>) -> ActionRow {
        ActionRow {
            id: "a1".into(),
            plan_id: "p1".into(),
            seq: 0,
            vm: "e9218a2c-6a88-454b-9130-531d95ceecd2".into(),
            vm_name: "doomed".into(),
            source: "cmp-4".into(),
            target: "cmp-5".into(),
            az: "az2".into(),
            ram_mb: 512,
            disk_gb: 1,
            block_migration: true,
            reason: String::new(),
            state: ActionState::Migrating,
            outcome: None,
            before_image: None,
            accepted_at: Some(1_796_647_818.0),
            migration_id: migration_id.map(str::to_string),
            abort_requested_at: None,
            bytes_moved: 0,
            error: None,
            created_at: 1_796_647_816.0,
            updated_at: 1_796_647_818.0,
            finished_at: None,
        }
    }

    /// `GET /os-migrations` records at 2.87, as Nova 34 lists them (oldest first here).
    fn records() -> Vec<MigrationRecord> {
        serde_json::from_value(serde_json::json!([
            {"id": 1, "instance_uuid": "e9218a2c-6a88-454b-9130-531d95ceecd2",
             "migration_type": "live-migration", "status": "completed",
             "source_compute": "cmp-3", "dest_compute": "cmp-4",
             "created_at": "2026-12-06T09:00:00.000000"},
            {"id": 2, "instance_uuid": "e9218a2c-6a88-454b-9130-531d95ceecd2",
             "migration_type": "live-migration", "status": "error",
             "source_compute": "cmp-4", "dest_compute": null,
             "created_at": "2026-12-07T12:50:18.000000"}
        ]))
        .unwrap()
    }

    #[test]
    fn the_migration_is_the_one_polled_else_the_newest_since_the_request() {
        let all = records();
        // Never seen in progress (it failed before it ran): the newest since the request.
        assert_eq!(
            pick_migration(&accepted_action(None), &all).unwrap().id,
            "2"
        );
        // Seen while polling: that one, whatever came after.
        assert_eq!(
            pick_migration(&accepted_action(Some("1")), &all)
                .unwrap()
                .id,
            "1"
        );
        // Older than the request (beyond the clocks' slack): not this action's.
        assert_eq!(pick_migration(&accepted_action(None), &all[..1]), None);
    }

    #[test]
    fn a_failure_names_nova_s_migration_and_the_event_nova_marked_failed() {
        let a = accepted_action(None);
        let action: InstanceAction = serde_json::from_value(serde_json::json!({
            "action": "live-migration", "request_id": "req-7731321a-1dd3-431d-9092-31962d4c22a4",
            "start_time": "2026-12-07T12:50:18.000000", "message": "Error",
            "events": [
                {"event": "conductor_live_migrate_instance", "result": "Error",
                 "details": "No valid host was found. There are not enough hosts available.\n"},
                {"event": "compute_check_can_live_migrate_source", "result": "Success",
                 "details": null}
            ]
        }))
        .unwrap();
        let errors = failed_events(&a, &action);
        assert_eq!(
            errors,
            ["conductor_live_migrate_instance: No valid host was found. There are not enough hosts available."]
        );
        let why = "Nova ended the migration with server X ACTIVE on cmp-4 (wanted cmp-5)";
        let account = NovaAccount {
            migration: Some(("2".into(), "error".into())),
            errors,
        };
        let text = explain(why, ActionState::Failed, Some(&account), "cmp-4");
        assert_eq!(
            text,
            format!(
                "{why}; Nova migration 2 is error; Nova says: conductor_live_migrate_instance: \
                 No valid host was found. There are not enough hosts available."
            )
        );
        // Nothing more from Nova: where to look instead.
        let bare = explain(
            why,
            ActionState::Failed,
            Some(&NovaAccount::default()),
            "cmp-4",
        );
        assert!(bare.ends_with("nova-conductor's log and nova-compute's on cmp-4 say why"));
        // Done: the record only; not asked (the server is gone): the words as they were.
        let done = NovaAccount {
            migration: Some(("1".into(), "completed".into())),
            errors: Vec::new(),
        };
        assert_eq!(
            explain(
                "server X is ACTIVE on cmp-5",
                ActionState::Done,
                Some(&done),
                "cmp-4"
            ),
            "server X is ACTIVE on cmp-5; Nova migration 1 is completed"
        );
        assert_eq!(explain(why, ActionState::Failed, None, "cmp-4"), why);
        // An action that predates the request is another request's.
        let old = InstanceAction {
            start_time: Some("2026-12-06T09:00:00.000000".into()),
            ..action
        };
        assert!(failed_events(&a, &old).is_empty());
    }

    #[tokio::test]
    async fn a_journal_call_waits_out_a_lost_connection_and_says_it_went_again() {
        let calls = AtomicUsize::new(0);
        let agains = AtomicUsize::new(0);
        let r = ride_out("test", |again| {
            let n = calls.fetch_add(1, Ordering::SeqCst);
            if again {
                agains.fetch_add(1, Ordering::SeqCst);
            }
            async move {
                if n < 2 {
                    Err(lost())
                } else {
                    Ok(n)
                }
            }
        })
        .await;
        assert_eq!(r.unwrap(), 2);
        assert_eq!(calls.load(Ordering::SeqCst), 3);
        assert_eq!(agains.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn any_other_journal_error_comes_back_at_once() {
        let calls = AtomicUsize::new(0);
        let r: Result<(), _> = ride_out("test", |_| {
            calls.fetch_add(1, Ordering::SeqCst);
            async { Err(JournalError::Conflict("moved by an admin".into())) }
        })
        .await;
        assert!(matches!(r, Err(JournalError::Conflict(_))));
        let r: Result<(), _> = ride_out("test", |_| async {
            Err(JournalError::Store(StoreError::Sql(
                sqlx::Error::RowNotFound,
            )))
        })
        .await;
        assert!(r.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }
}
