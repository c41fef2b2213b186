//! The rebalancer's journal in steward's store: plans, actions and their transitions, each
//! leader's transition fenced by its lease epoch (`store::lease`). Moves rows only; which
//! transition is allowed is `rebalance::execute`'s.

use sqlx::any::AnyRow;
use sqlx::Row;

use super::lease::{check_fence, fence_refusal, is_write_conflict, Fence};
use super::{Store, StoreError};

/// Where one action stands. The order of the lifecycle:
/// planned → approved → draining → migrating → rejoining → done | failed | aborted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ActionState {
    Planned,
    Approved,
    Draining,
    Migrating,
    Rejoining,
    Done,
    Failed,
    Aborted,
}

impl ActionState {
    pub const ALL: [ActionState; 8] = [
        ActionState::Planned,
        ActionState::Approved,
        ActionState::Draining,
        ActionState::Migrating,
        ActionState::Rejoining,
        ActionState::Done,
        ActionState::Failed,
        ActionState::Aborted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ActionState::Planned => "planned",
            ActionState::Approved => "approved",
            ActionState::Draining => "draining",
            ActionState::Migrating => "migrating",
            ActionState::Rejoining => "rejoining",
            ActionState::Done => "done",
            ActionState::Failed => "failed",
            ActionState::Aborted => "aborted",
        }
    }

    pub fn parse(s: &str) -> Option<ActionState> {
        ActionState::ALL.into_iter().find(|a| a.as_str() == s)
    }

    /// Closed for good: nothing is left to do and no node is drained.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            ActionState::Done | ActionState::Failed | ActionState::Aborted
        )
    }

    /// Started and not closed: the executor owes it more work, also after a restart.
    pub fn is_in_flight(self) -> bool {
        matches!(
            self,
            ActionState::Draining | ActionState::Migrating | ActionState::Rejoining
        )
    }
}

impl std::fmt::Display for ActionState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A plan's decision state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlanState {
    /// Written by the planner; in `approve` mode it waits for an admin.
    Proposed,
    Approved,
    Cancelled,
}

impl PlanState {
    pub fn as_str(self) -> &'static str {
        match self {
            PlanState::Proposed => "proposed",
            PlanState::Approved => "approved",
            PlanState::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<PlanState> {
        [
            PlanState::Proposed,
            PlanState::Approved,
            PlanState::Cancelled,
        ]
        .into_iter()
        .find(|p| p.as_str() == s)
    }
}

/// One live migration the planner chose, as the journal keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct NewAction {
    pub vm: String,
    pub vm_name: String,
    pub source: String,
    pub target: String,
    pub az: String,
    pub ram_mb: i64,
    pub disk_gb: i64,
    /// Whether the disk is copied (local disk, not volume-backed): counts in the timeout.
    pub block_migration: bool,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct NewPlan {
    pub id: String,
    pub created_at: f64,
    /// The mode the plan was made in (`dry-run`, `approve`, `auto`).
    pub mode: String,
    /// The planner's own summary, as JSON text.
    pub summary: String,
    pub actions: Vec<NewAction>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ActionRow {
    pub id: String,
    pub plan_id: String,
    pub seq: i64,
    pub vm: String,
    pub vm_name: String,
    pub source: String,
    pub target: String,
    pub az: String,
    pub ram_mb: i64,
    pub disk_gb: i64,
    pub block_migration: bool,
    pub reason: String,
    pub state: ActionState,
    pub outcome: Option<ActionState>,
    pub before_image: Option<String>,
    pub accepted_at: Option<f64>,
    pub migration_id: Option<String>,
    pub abort_requested_at: Option<f64>,
    pub bytes_moved: i64,
    pub error: Option<String>,
    pub created_at: f64,
    pub updated_at: f64,
    pub finished_at: Option<f64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PlanRow {
    pub id: String,
    pub created_at: f64,
    pub state: PlanState,
    pub mode: String,
    pub summary: String,
    pub decided_by: Option<String>,
    pub decided_at: Option<f64>,
    pub actions: Vec<ActionRow>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct EventRow {
    pub action_id: String,
    pub at: f64,
    pub from: String,
    pub to: String,
    pub detail: String,
    /// The leader's lease epoch the transition was written under (`None`: not by a leader,
    /// e.g. an admin's decision or a write before epochs were kept).
    pub epoch: Option<i64>,
}

/// Columns a transition may set besides the state. `None` leaves a column as it is.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Patch {
    pub outcome: Option<ActionState>,
    pub before_image: Option<String>,
    pub accepted_at: Option<f64>,
    pub migration_id: Option<String>,
    pub abort_requested_at: Option<f64>,
    pub bytes_moved: Option<i64>,
    pub error: Option<String>,
    pub finished_at: Option<f64>,
}

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("{0}")]
    NotFound(String),
    /// Someone else moved the row first (another replica, an admin): nothing was written.
    #[error("{0}")]
    Conflict(String),
    /// The writer's leadership has passed on (a higher epoch) or run out: nothing was written.
    #[error("{0}")]
    Fenced(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for JournalError {
    fn from(e: sqlx::Error) -> Self {
        JournalError::Store(StoreError::Sql(e))
    }
}

/// One transition's arguments, as [`Store::transition_fenced`] tries it.
struct Step<'a> {
    id: &'a str,
    from: ActionState,
    to: ActionState,
    patch: &'a Patch,
    detail: &'a str,
    now: f64,
}

const PLAN_COLUMNS: &str = "id, created_at, state, mode, summary, decided_by, decided_at";
const ACTION_COLUMNS: &str = "id, plan_id, seq, vm, vm_name, source, target, az, ram_mb, \
    disk_gb, block_migration, reason, state, outcome, before_image, accepted_at, migration_id, \
    abort_requested_at, bytes_moved, error, created_at, updated_at, finished_at";

impl Store {
    /// Write a plan and its actions: `planned`, or `approved` at once when `approve` is set
    /// (auto mode). A dry-run plan is written too, so the API can show it; it is never run.
    /// With `fence` (the leader's planning cycle), nothing is written unless it still holds the
    /// lease at its epoch: a deposed leader journals no plan.
    pub async fn insert_plan(
        &self,
        plan: &NewPlan,
        approve_as: Option<&str>,
        fence: Option<&Fence>,
    ) -> Result<PlanRow, JournalError> {
        let (plan_state, action_state) = match approve_as {
            Some(_) => (PlanState::Approved, ActionState::Approved),
            None => (PlanState::Proposed, ActionState::Planned),
        };
        let tx = self.pool.begin().await?;
        let mut tx = hold(tx, fence, plan.created_at, || {
            format!(
                "plan {} ({} action(s)) was not journaled",
                plan.id,
                plan.actions.len()
            )
        })
        .await?;
        sqlx::query(
            "INSERT INTO rebalance_plan (id, created_at, state, mode, summary, decided_by, decided_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(plan.id.clone())
        .bind(plan.created_at)
        .bind(plan_state.as_str())
        .bind(plan.mode.clone())
        .bind(plan.summary.clone())
        .bind(approve_as.map(str::to_string))
        .bind(approve_as.map(|_| plan.created_at))
        .execute(&mut *tx)
        .await?;
        for (seq, a) in plan.actions.iter().enumerate() {
            let id = uuid::Uuid::new_v4().to_string();
            sqlx::query(
                "INSERT INTO rebalance_action (id, plan_id, seq, vm, vm_name, source, target, az, \
                 ram_mb, disk_gb, block_migration, reason, state, bytes_moved, created_at, updated_at) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?)",
            )
            .bind(id.clone())
            .bind(plan.id.clone())
            .bind(seq as i64)
            .bind(a.vm.clone())
            .bind(a.vm_name.clone())
            .bind(a.source.clone())
            .bind(a.target.clone())
            .bind(a.az.clone())
            .bind(a.ram_mb)
            .bind(a.disk_gb)
            .bind(i64::from(a.block_migration))
            .bind(a.reason.clone())
            .bind(action_state.as_str())
            .bind(plan.created_at)
            .bind(plan.created_at)
            .execute(&mut *tx)
            .await?;
            insert_event(
                &mut tx,
                &id,
                plan.created_at,
                "new",
                action_state.as_str(),
                &match approve_as {
                    Some(who) => format!("planned and approved by {who}"),
                    None => "planned".to_string(),
                },
                None,
            )
            .await?;
        }
        tx.commit().await?;
        self.plan(&plan.id)
            .await?
            .ok_or_else(|| JournalError::NotFound(format!("plan {} vanished", plan.id)))
    }

    /// The newest plans first, each with its actions.
    pub async fn plans(&self, limit: i64) -> Result<Vec<PlanRow>, JournalError> {
        let rows = sqlx::query(&format!(
            "SELECT {PLAN_COLUMNS} FROM rebalance_plan ORDER BY created_at DESC, id LIMIT ?"
        ))
        .bind(limit.max(0))
        .fetch_all(&self.pool)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            out.push(self.with_actions(plan_row(&r)?).await?);
        }
        Ok(out)
    }

    pub async fn plan(&self, id: &str) -> Result<Option<PlanRow>, JournalError> {
        match self
            .row_by_id("rebalance_plan", PLAN_COLUMNS, id, plan_row)
            .await?
        {
            Some(p) => Ok(Some(self.with_actions(p).await?)),
            None => Ok(None),
        }
    }

    /// A plan row with its actions read.
    async fn with_actions(&self, mut p: PlanRow) -> Result<PlanRow, JournalError> {
        p.actions = self.actions_of(&p.id).await?;
        Ok(p)
    }

    async fn actions_of(&self, plan: &str) -> Result<Vec<ActionRow>, JournalError> {
        let rows = sqlx::query(&format!(
            "SELECT {ACTION_COLUMNS} FROM rebalance_action WHERE plan_id = ? ORDER BY seq"
        ))
        .bind(plan.to_string())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(action_row).collect()
    }

    pub async fn action(&self, id: &str) -> Result<Option<ActionRow>, JournalError> {
        self.row_by_id("rebalance_action", ACTION_COLUMNS, id, action_row)
            .await
    }

    /// `SELECT <columns> FROM <table> WHERE id = ?`, read by `row`: the one read of a journal
    /// row by its id.
    pub(super) async fn row_by_id<T>(
        &self,
        table: &str,
        columns: &str,
        id: &str,
        row: fn(&AnyRow) -> Result<T, JournalError>,
    ) -> Result<Option<T>, JournalError> {
        let found = sqlx::query(&format!("SELECT {columns} FROM {table} WHERE id = ?"))
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?;
        found.as_ref().map(row).transpose()
    }

    /// Actions in any of `states` (all when empty), oldest first, at most `limit`.
    pub async fn actions(
        &self,
        states: &[ActionState],
        limit: i64,
    ) -> Result<Vec<ActionRow>, JournalError> {
        let filter = state_filter(states.len());
        let sql = format!(
            "SELECT {ACTION_COLUMNS} FROM rebalance_action {filter} \
             ORDER BY created_at, plan_id, seq LIMIT ?"
        );
        let mut q = sqlx::query(&sql);
        for s in states {
            q = q.bind(s.as_str());
        }
        let rows = q.bind(limit.max(0)).fetch_all(&self.pool).await?;
        rows.iter().map(action_row).collect()
    }

    /// Every transition of one action, in order.
    pub async fn events(&self, action: &str) -> Result<Vec<EventRow>, JournalError> {
        let rows = sqlx::query(
            "SELECT action_id, at, from_state, to_state, detail, epoch FROM rebalance_event \
             WHERE action_id = ? ORDER BY id",
        )
        .bind(action.to_string())
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(EventRow {
                    action_id: r.try_get("action_id")?,
                    at: r.try_get("at")?,
                    from: r.try_get("from_state")?,
                    to: r.try_get("to_state")?,
                    detail: text(r, "detail")?,
                    epoch: r.try_get("epoch")?,
                })
            })
            .collect()
    }

    /// Move one action from `from` to `to` (which may equal `from` to record progress), with
    /// its event, in one transaction. Fails with [`JournalError::Conflict`] and writes nothing
    /// when the action is no longer in `from`.
    pub async fn transition(
        &self,
        id: &str,
        from: ActionState,
        to: ActionState,
        patch: &Patch,
        detail: &str,
        now: f64,
    ) -> Result<ActionRow, JournalError> {
        self.transition_fenced(id, from, to, patch, detail, now, None)
            .await
    }

    /// As [`Store::transition`], for a leader: with `fence`, the same transaction first checks
    /// (and touches) the lease row, and the transition is refused with
    /// [`JournalError::Fenced`], nothing written, unless `fence` still holds the lease at its
    /// epoch, unexpired at `now`. A write that loses Galera's certification is tried again.
    #[allow(clippy::too_many_arguments)]
    pub async fn transition_fenced(
        &self,
        id: &str,
        from: ActionState,
        to: ActionState,
        patch: &Patch,
        detail: &str,
        now: f64,
        fence: Option<&Fence>,
    ) -> Result<ActionRow, JournalError> {
        let step = Step {
            id,
            from,
            to,
            patch,
            detail,
            now,
        };
        let mut attempt = 1;
        loop {
            match self.transition_once(&step, fence).await {
                Err(JournalError::Store(StoreError::Sql(e)))
                    if is_write_conflict(&e) && attempt < 3 =>
                {
                    tracing::debug!(action = id, error = %e, "journal write lost a write conflict; trying again");
                    attempt += 1;
                }
                r => return r,
            }
        }
    }

    async fn transition_once(
        &self,
        step: &Step<'_>,
        fence: Option<&Fence>,
    ) -> Result<ActionRow, JournalError> {
        let Step {
            id,
            from,
            to,
            patch,
            detail,
            now,
        } = *step;
        let mut sets = vec!["state = ?".to_string(), "updated_at = ?".to_string()];
        for (set, col) in [
            (patch.outcome.is_some(), "outcome"),
            (patch.before_image.is_some(), "before_image"),
            (patch.accepted_at.is_some(), "accepted_at"),
            (patch.migration_id.is_some(), "migration_id"),
            (patch.abort_requested_at.is_some(), "abort_requested_at"),
            (patch.bytes_moved.is_some(), "bytes_moved"),
            (patch.error.is_some(), "error"),
            (patch.finished_at.is_some(), "finished_at"),
        ] {
            if set {
                sets.push(format!("{col} = ?"));
            }
        }
        let sql = format!(
            "UPDATE rebalance_action SET {} WHERE id = ? AND state = ?",
            sets.join(", ")
        );
        let mut q = sqlx::query(&sql).bind(to.as_str()).bind(now);
        if let Some(v) = patch.outcome {
            q = q.bind(v.as_str());
        }
        if let Some(v) = &patch.before_image {
            q = q.bind(v.clone());
        }
        if let Some(v) = patch.accepted_at {
            q = q.bind(v);
        }
        if let Some(v) = &patch.migration_id {
            q = q.bind(v.clone());
        }
        if let Some(v) = patch.abort_requested_at {
            q = q.bind(v);
        }
        if let Some(v) = patch.bytes_moved {
            q = q.bind(v);
        }
        if let Some(v) = &patch.error {
            q = q.bind(v.clone());
        }
        if let Some(v) = patch.finished_at {
            q = q.bind(v);
        }
        let tx = self.pool.begin().await?;
        let mut tx = hold(tx, fence, now, || {
            format!("action {id} was not moved from {from} to {to}")
        })
        .await?;
        let done = q
            .bind(id.to_string())
            .bind(from.as_str())
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            tx.rollback().await?;
            return Err(match self.action(id).await? {
                None => JournalError::NotFound(format!("no rebalance action {id}")),
                Some(a) => JournalError::Conflict(format!(
                    "action {id} (VM {}) is {}, not {from}; it was moved by someone else",
                    a.vm, a.state
                )),
            });
        }
        if from != to || !detail.is_empty() {
            let epoch = fence.map(|f| f.epoch);
            insert_event(&mut tx, id, now, from.as_str(), to.as_str(), detail, epoch).await?;
        }
        tx.commit().await?;
        self.action(id)
            .await?
            .ok_or_else(|| JournalError::NotFound(format!("no rebalance action {id}")))
    }

    /// An admin's decision on a proposed plan: approve its planned actions, or cancel the ones
    /// not started (they close as `aborted`; started ones run on, their rejoin included).
    pub async fn decide_plan(
        &self,
        id: &str,
        approve: bool,
        who: &str,
        now: f64,
    ) -> Result<PlanRow, JournalError> {
        let Some(plan) = self.plan(id).await? else {
            return Err(JournalError::NotFound(format!(
                "no rebalance plan {id}; GET /v1/rebalance/plans lists them"
            )));
        };
        let (allowed, new_state) = if approve {
            (plan.state == PlanState::Proposed, PlanState::Approved)
        } else {
            (plan.state != PlanState::Cancelled, PlanState::Cancelled)
        };
        if !allowed {
            return Err(JournalError::Conflict(format!(
                "plan {id} is {}; only a proposed plan can be approved and a cancelled one stays cancelled",
                plan.state.as_str()
            )));
        }
        if approve && plan.mode == "dry-run" {
            return Err(JournalError::Conflict(format!(
                "plan {id} was made in dry-run mode and is never executed; set [rebalance] mode = \"approve\" and let the next cycle plan again"
            )));
        }
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query(
            "UPDATE rebalance_plan SET state = ?, decided_by = ?, decided_at = ? WHERE id = ? AND state = ?",
        )
        .bind(new_state.as_str())
        .bind(who.to_string())
        .bind(now)
        .bind(id.to_string())
        .bind(plan.state.as_str())
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            tx.rollback().await?;
            return Err(JournalError::Conflict(format!(
                "plan {id} changed while it was being decided; read it again"
            )));
        }
        let movable: &[ActionState] = if approve {
            &[ActionState::Planned]
        } else {
            &[ActionState::Planned, ActionState::Approved]
        };
        for a in plan.actions.iter().filter(|a| movable.contains(&a.state)) {
            let (to, detail) = if approve {
                (ActionState::Approved, format!("approved by {who}"))
            } else {
                (ActionState::Aborted, format!("plan cancelled by {who}"))
            };
            let mut q = sqlx::query(
                "UPDATE rebalance_action SET state = ?, updated_at = ?, finished_at = ? \
                 WHERE id = ? AND state = ?",
            )
            .bind(to.as_str())
            .bind(now);
            q = q.bind(if to.is_final() { Some(now) } else { None });
            let moved = q
                .bind(a.id.clone())
                .bind(a.state.as_str())
                .execute(&mut *tx)
                .await?;
            if moved.rows_affected() == 1 {
                insert_event(
                    &mut tx,
                    &a.id,
                    now,
                    a.state.as_str(),
                    to.as_str(),
                    &detail,
                    None,
                )
                .await?;
            }
        }
        tx.commit().await?;
        self.plan(id)
            .await?
            .ok_or_else(|| JournalError::NotFound(format!("no rebalance plan {id}")))
    }
}

async fn insert_event(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    action: &str,
    at: f64,
    from: &str,
    to: &str,
    detail: &str,
    epoch: Option<i64>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO rebalance_event (action_id, at, from_state, to_state, detail, epoch) \
         VALUES (?, ?, ?, ?, ?, ?)",
    )
    .bind(action.to_string())
    .bind(at)
    .bind(from.to_string())
    .bind(to.to_string())
    .bind(detail.to_string())
    .bind(epoch)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// A leader's write, before its statements: the transaction back while `fence` (when given)
/// holds the lease at `now`; else rolled back and a [`JournalError::Fenced`] that says what
/// was not written (`what`) and why. The one fence check of every journal.
pub(super) async fn hold(
    mut tx: sqlx::Transaction<'static, sqlx::Any>,
    fence: Option<&Fence>,
    now: f64,
    what: impl FnOnce() -> String,
) -> Result<sqlx::Transaction<'static, sqlx::Any>, JournalError> {
    if let Some(f) = fence {
        if !check_fence(&mut tx, f, now).await? {
            tx.rollback().await?;
            return Err(JournalError::Fenced(format!(
                "{}: {}",
                what(),
                fence_refusal(f)
            )));
        }
    }
    Ok(tx)
}

/// `WHERE state IN (?, ...)` for `n` states; nothing (every row) when `n` is 0.
pub(super) fn state_filter(n: usize) -> String {
    if n == 0 {
        String::new()
    } else {
        format!("WHERE state IN ({})", vec!["?"; n].join(", "))
    }
}

fn decode_err(what: String) -> JournalError {
    JournalError::Store(StoreError::Sql(sqlx::Error::Decode(what.into())))
}

/// A TEXT column: SQLite answers text, MySQL's protocol types TEXT as a BLOB.
pub(super) fn text(r: &AnyRow, col: &str) -> Result<String, sqlx::Error> {
    opt_text(r, col)?.ok_or_else(|| sqlx::Error::Decode(format!("{col} is NULL").into()))
}

pub(super) fn opt_text(r: &AnyRow, col: &str) -> Result<Option<String>, sqlx::Error> {
    match r.try_get::<Option<String>, _>(col) {
        Ok(v) => Ok(v),
        Err(sqlx::Error::ColumnDecode { .. }) => {
            let bytes: Option<Vec<u8>> = r.try_get(col)?;
            bytes
                .map(|b| {
                    String::from_utf8(b)
                        .map_err(|e| sqlx::Error::Decode(format!("{col}: {e}").into()))
                })
                .transpose()
        }
        Err(e) => Err(e),
    }
}

fn plan_row(r: &AnyRow) -> Result<PlanRow, JournalError> {
    let id: String = r.try_get("id")?;
    let state: String = r.try_get("state")?;
    Ok(PlanRow {
        state: PlanState::parse(&state)
            .ok_or_else(|| decode_err(format!("plan {id}: unknown state {state:?}")))?,
        created_at: r.try_get("created_at")?,
        mode: r.try_get("mode")?,
        summary: text(r, "summary")?,
        decided_by: r.try_get("decided_by")?,
        decided_at: r.try_get("decided_at")?,
        actions: Vec::new(),
        id,
    })
}

fn action_row(r: &AnyRow) -> Result<ActionRow, JournalError> {
    let id: String = r.try_get("id")?;
    let state: String = r.try_get("state")?;
    let outcome: Option<String> = r.try_get("outcome")?;
    let parse = |s: &str| {
        ActionState::parse(s).ok_or_else(|| decode_err(format!("action {id}: unknown state {s:?}")))
    };
    Ok(ActionRow {
        state: parse(&state)?,
        outcome: outcome.as_deref().map(parse).transpose()?,
        plan_id: r.try_get("plan_id")?,
        seq: r.try_get("seq")?,
        vm: r.try_get("vm")?,
        vm_name: r.try_get("vm_name")?,
        source: r.try_get("source")?,
        target: r.try_get("target")?,
        az: r.try_get("az")?,
        ram_mb: r.try_get("ram_mb")?,
        disk_gb: r.try_get("disk_gb")?,
        block_migration: r.try_get::<i64, _>("block_migration")? != 0,
        reason: text(r, "reason")?,
        before_image: opt_text(r, "before_image")?,
        accepted_at: r.try_get("accepted_at")?,
        migration_id: r.try_get("migration_id")?,
        abort_requested_at: r.try_get("abort_requested_at")?,
        bytes_moved: r.try_get("bytes_moved")?,
        error: opt_text(r, "error")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
        finished_at: r.try_get("finished_at")?,
        id,
    })
}
