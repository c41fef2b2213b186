//! Host-failure recovery's journal (migration 0008): incidents, their VMs and every
//! transition. Moves rows only, each under a guard on the state it leaves (nothing is written
//! when someone else moved the row first) and, for the leader's writes, under its lease epoch
//! (nothing is written once another replica leads); which transition is allowed is
//! `recover::execute`'s.

use sqlx::any::AnyRow;
use sqlx::Row;

use super::journal::{hold, opt_text, state_filter, text, JournalError};
use super::lease::Fence;
use super::Store;

/// Where an incident (one dead host) stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum IncidentState {
    /// Journaled; in `approve` mode it waits for an admin.
    Suspected,
    /// Written before the fencing hook runs.
    Fencing,
    /// The fencing hook reported success; written before the service is forced down.
    Fenced,
    /// Nova holds the service forced down; written before the first evacuation.
    ForcedDown,
    Evacuating,
    /// Every VM is ACTIVE (or as it was) on another host of its AZ.
    Done,
    /// Some VM could not be evacuated (each VM row says why).
    Failed,
    /// Fencing failed or timed out: nothing was forced down or evacuated.
    Blocked,
    /// The host came back before anything was done to it.
    Cleared,
}

impl IncidentState {
    pub const ALL: [IncidentState; 9] = [
        IncidentState::Suspected,
        IncidentState::Fencing,
        IncidentState::Fenced,
        IncidentState::ForcedDown,
        IncidentState::Evacuating,
        IncidentState::Done,
        IncidentState::Failed,
        IncidentState::Blocked,
        IncidentState::Cleared,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            IncidentState::Suspected => "suspected",
            IncidentState::Fencing => "fencing",
            IncidentState::Fenced => "fenced",
            IncidentState::ForcedDown => "forced_down",
            IncidentState::Evacuating => "evacuating",
            IncidentState::Done => "done",
            IncidentState::Failed => "failed",
            IncidentState::Blocked => "blocked",
            IncidentState::Cleared => "cleared",
        }
    }

    pub fn parse(s: &str) -> Option<IncidentState> {
        IncidentState::ALL.into_iter().find(|a| a.as_str() == s)
    }

    pub fn is_final(self) -> bool {
        matches!(
            self,
            IncidentState::Done
                | IncidentState::Failed
                | IncidentState::Blocked
                | IncidentState::Cleared
        )
    }
}

impl std::fmt::Display for IncidentState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where one VM's evacuation stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum VmState {
    Pending,
    /// Written before `evacuate` is sent.
    Evacuating,
    Done,
    Failed,
    /// Nova could not place it in its AZ (NoValidHost), or its state does not allow it.
    Blocked,
}

impl VmState {
    pub const ALL: [VmState; 5] = [
        VmState::Pending,
        VmState::Evacuating,
        VmState::Done,
        VmState::Failed,
        VmState::Blocked,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            VmState::Pending => "pending",
            VmState::Evacuating => "evacuating",
            VmState::Done => "done",
            VmState::Failed => "failed",
            VmState::Blocked => "blocked",
        }
    }

    pub fn parse(s: &str) -> Option<VmState> {
        VmState::ALL.into_iter().find(|a| a.as_str() == s)
    }

    pub fn is_final(self) -> bool {
        matches!(self, VmState::Done | VmState::Failed | VmState::Blocked)
    }
}

impl std::fmt::Display for VmState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct NewIncident {
    pub host: String,
    pub az: String,
    pub service_id: String,
    pub mode: String,
    /// The suspicion (JSON).
    pub evidence: String,
    /// The compute service before steward touched it (JSON).
    pub service_before: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct IncidentRow {
    pub id: String,
    pub host: String,
    pub az: String,
    pub service_id: String,
    pub state: IncidentState,
    pub mode: String,
    pub evidence: String,
    pub service_before: Option<String>,
    pub approved_by: Option<String>,
    pub approved_at: Option<f64>,
    pub error: Option<String>,
    pub created_at: f64,
    pub updated_at: f64,
    pub finished_at: Option<f64>,
    pub released_by: Option<String>,
    pub released_at: Option<f64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct NewVm {
    pub vm: String,
    pub vm_name: String,
    pub az: String,
    pub role: Option<String>,
    pub flavor: Option<String>,
    pub before_image: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct VmRow {
    pub id: String,
    pub incident_id: String,
    pub seq: i64,
    pub vm: String,
    pub vm_name: String,
    pub az: String,
    pub role: Option<String>,
    pub flavor: Option<String>,
    pub state: VmState,
    pub before_image: String,
    pub accepted_at: Option<f64>,
    pub request_id: Option<String>,
    pub target: Option<String>,
    pub error: Option<String>,
    pub created_at: f64,
    pub updated_at: f64,
    pub finished_at: Option<f64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RecoveryEvent {
    pub incident_id: String,
    /// The VM row, or empty for the host's own transitions.
    pub vm_row: String,
    pub at: f64,
    pub from: String,
    pub to: String,
    pub detail: String,
}

/// A column value a transition sets.
#[derive(Debug, Clone, PartialEq)]
pub enum Set {
    Text(&'static str, String),
    Number(&'static str, f64),
}

const INCIDENT_COLUMNS: &str = "id, host, az, service_id, state, mode, evidence, service_before, \
    approved_by, approved_at, error, created_at, updated_at, finished_at, released_by, released_at";
const VM_COLUMNS: &str =
    "id, incident_id, seq, vm, vm_name, az, role, flavor, state, before_image, \
    accepted_at, request_id, target, error, created_at, updated_at, finished_at";

impl Store {
    /// Journal a new incident in `suspected` (approved at once when `approved_by` is given).
    pub async fn open_incident(
        &self,
        i: &NewIncident,
        approved_by: Option<&str>,
        now: f64,
        fence: Option<&Fence>,
    ) -> Result<IncidentRow, JournalError> {
        let id = uuid::Uuid::new_v4().to_string();
        let tx = self.pool.begin().await?;
        let mut tx = hold(tx, fence, now, || {
            format!("no incident was opened for host {}", i.host)
        })
        .await?;
        sqlx::query(
            "INSERT INTO recovery_incident (id, host, az, service_id, state, mode, evidence, \
             service_before, approved_by, approved_at, created_at, updated_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(id.clone())
        .bind(i.host.clone())
        .bind(i.az.clone())
        .bind(i.service_id.clone())
        .bind(IncidentState::Suspected.as_str())
        .bind(i.mode.clone())
        .bind(i.evidence.clone())
        .bind(i.service_before.clone())
        .bind(approved_by.map(str::to_string))
        .bind(approved_by.map(|_| now))
        .bind(now)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        let detail = match approved_by {
            Some(who) => format!("host {} suspected dead; approved by {who}", i.host),
            None => format!(
                "host {} suspected dead; waiting for an admin's approval",
                i.host
            ),
        };
        event(&mut tx, &id, "", now, "new", "suspected", &detail).await?;
        tx.commit().await?;
        self.incident(&id)
            .await?
            .ok_or_else(|| JournalError::NotFound(format!("incident {id} vanished")))
    }

    pub async fn incident(&self, id: &str) -> Result<Option<IncidentRow>, JournalError> {
        self.row_by_id("recovery_incident", INCIDENT_COLUMNS, id, incident_row)
            .await
    }

    /// The incident as a commit left it.
    async fn incident_after(&self, id: &str) -> Result<IncidentRow, JournalError> {
        self.incident(id)
            .await?
            .ok_or_else(|| JournalError::NotFound(format!("no recovery incident {id}")))
    }

    /// Incidents in any of `states` (all when empty), newest first, at most `limit`.
    pub async fn incidents(
        &self,
        states: &[IncidentState],
        limit: i64,
    ) -> Result<Vec<IncidentRow>, JournalError> {
        let filter = state_filter(states.len());
        let sql = format!(
            "SELECT {INCIDENT_COLUMNS} FROM recovery_incident {filter} \
             ORDER BY created_at DESC, id LIMIT ?"
        );
        let mut q = sqlx::query(&sql);
        for s in states {
            q = q.bind(s.as_str());
        }
        let rows = q.bind(limit.max(0)).fetch_all(&self.pool).await?;
        rows.iter().map(incident_row).collect()
    }

    /// Move an incident from `from` to `to` with its event, in one transaction; a
    /// [`JournalError::Conflict`] and nothing written when it is no longer in `from`, a
    /// [`JournalError::Fenced`] and nothing written when `fence` no longer holds the lease.
    #[allow(clippy::too_many_arguments)]
    pub async fn incident_transition(
        &self,
        id: &str,
        from: IncidentState,
        to: IncidentState,
        sets: &[Set],
        detail: &str,
        now: f64,
        fence: Option<&Fence>,
    ) -> Result<IncidentRow, JournalError> {
        let mut tx = self.move_incident(id, from, to, sets, now, fence).await?;
        event(&mut tx, id, "", now, from.as_str(), to.as_str(), detail).await?;
        tx.commit().await?;
        self.incident_after(id).await
    }

    /// In a new transaction, a leader's guarded move of an incident from `from` to `to`
    /// (setting `sets`): refused, nothing written, when `fence` no longer holds the lease or
    /// the incident is no longer in `from`. The caller writes the rest and commits.
    async fn move_incident(
        &self,
        id: &str,
        from: IncidentState,
        to: IncidentState,
        sets: &[Set],
        now: f64,
        fence: Option<&Fence>,
    ) -> Result<sqlx::Transaction<'static, sqlx::Any>, JournalError> {
        let guard = Guarded {
            table: "recovery_incident",
            kind: "incident",
            id,
            from: from.as_str(),
            to: to.as_str(),
            sets,
        };
        self.begin_guarded(&guard, now, fence, || {
            format!("incident {id} was not moved from {from} to {to}")
        })
        .await
    }

    /// A new transaction holding `fence` (when given) with `guard`'s UPDATE done in it.
    async fn begin_guarded(
        &self,
        guard: &Guarded<'_>,
        now: f64,
        fence: Option<&Fence>,
        what: impl FnOnce() -> String,
    ) -> Result<sqlx::Transaction<'static, sqlx::Any>, JournalError> {
        let tx = self.pool.begin().await?;
        let mut tx = hold(tx, fence, now, what).await?;
        guarded_update(&mut tx, guard, now)
            .await?
            .then_some(())
            .ok_or_else(|| conflict(guard.kind, guard.id, guard.from))?;
        Ok(tx)
    }

    /// forced_down → evacuating, writing every VM to evacuate (pending) in the same
    /// transaction, so a restart finds either none of them or all.
    pub async fn start_evacuating(
        &self,
        id: &str,
        vms: &[NewVm],
        detail: &str,
        now: f64,
        fence: Option<&Fence>,
    ) -> Result<IncidentRow, JournalError> {
        let (from, to) = (IncidentState::ForcedDown, IncidentState::Evacuating);
        let mut tx = self.move_incident(id, from, to, &[], now, fence).await?;
        for (seq, v) in vms.iter().enumerate() {
            let row = uuid::Uuid::new_v4().to_string();
            sqlx::query(
                "INSERT INTO recovery_vm (id, incident_id, seq, vm, vm_name, az, role, flavor, \
                 state, before_image, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(row.clone())
            .bind(id.to_string())
            .bind(seq as i64)
            .bind(v.vm.clone())
            .bind(v.vm_name.clone())
            .bind(v.az.clone())
            .bind(v.role.clone())
            .bind(v.flavor.clone())
            .bind(VmState::Pending.as_str())
            .bind(v.before_image.clone())
            .bind(now)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            let d = format!("server {} ({}) to evacuate", v.vm, v.vm_name);
            event(&mut tx, id, &row, now, "new", "pending", &d).await?;
        }
        event(&mut tx, id, "", now, from.as_str(), to.as_str(), detail).await?;
        tx.commit().await?;
        self.incident_after(id).await
    }

    pub async fn incident_vms(&self, incident: &str) -> Result<Vec<VmRow>, JournalError> {
        let rows = sqlx::query(&format!(
            "SELECT {VM_COLUMNS} FROM recovery_vm WHERE incident_id = ? ORDER BY seq"
        ))
        .bind(incident.to_string())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(vm_row).collect()
    }

    pub async fn recovery_vm(&self, id: &str) -> Result<Option<VmRow>, JournalError> {
        self.row_by_id("recovery_vm", VM_COLUMNS, id, vm_row).await
    }

    /// Every VM row in any of `states` (all when empty), oldest first.
    pub async fn recovery_vms_in(&self, states: &[VmState]) -> Result<Vec<VmRow>, JournalError> {
        let sql = format!(
            "SELECT {VM_COLUMNS} FROM recovery_vm {} ORDER BY created_at, seq",
            state_filter(states.len())
        );
        let mut q = sqlx::query(&sql);
        for s in states {
            q = q.bind(s.as_str());
        }
        let rows = q.fetch_all(&self.pool).await?;
        rows.iter().map(vm_row).collect()
    }

    /// Unix seconds each of these servers was last evacuated (closed `done`), if ever.
    pub async fn last_evacuations(
        &self,
        vms: &[String],
    ) -> Result<std::collections::BTreeMap<String, f64>, JournalError> {
        let mut out = std::collections::BTreeMap::new();
        for chunk in vms.chunks(500) {
            let sql = format!(
                "SELECT vm, MAX(finished_at) AS at FROM recovery_vm WHERE state = 'done' \
                 AND vm IN ({}) GROUP BY vm",
                vec!["?"; chunk.len()].join(", ")
            );
            let mut q = sqlx::query(&sql);
            for v in chunk {
                q = q.bind(v.clone());
            }
            for r in q.fetch_all(&self.pool).await? {
                if let Some(at) = r.try_get::<Option<f64>, _>("at")? {
                    out.insert(r.try_get("vm")?, at);
                }
            }
        }
        Ok(out)
    }

    pub async fn vm_transition(
        &self,
        row: &VmRow,
        to: VmState,
        sets: &[Set],
        detail: &str,
        now: f64,
        fence: Option<&Fence>,
    ) -> Result<VmRow, JournalError> {
        let guard = Guarded {
            table: "recovery_vm",
            kind: "VM row",
            id: &row.id,
            from: row.state.as_str(),
            to: to.as_str(),
            sets,
        };
        let mut tx = self
            .begin_guarded(&guard, now, fence, || {
                format!(
                    "server {} (row {}) was not moved from {} to {to}",
                    row.vm, row.id, row.state
                )
            })
            .await?;
        event(
            &mut tx,
            &row.incident_id,
            &row.id,
            now,
            row.state.as_str(),
            to.as_str(),
            detail,
        )
        .await?;
        tx.commit().await?;
        self.recovery_vm(&row.id)
            .await?
            .ok_or_else(|| JournalError::NotFound(format!("no recovery VM row {}", row.id)))
    }

    pub async fn recovery_events(
        &self,
        incident: &str,
    ) -> Result<Vec<RecoveryEvent>, JournalError> {
        let rows = sqlx::query(
            "SELECT incident_id, vm_row, at, from_state, to_state, detail FROM recovery_event \
             WHERE incident_id = ? ORDER BY id",
        )
        .bind(incident.to_string())
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(RecoveryEvent {
                    incident_id: r.try_get("incident_id")?,
                    vm_row: r.try_get("vm_row")?,
                    at: r.try_get("at")?,
                    from: r.try_get("from_state")?,
                    to: r.try_get("to_state")?,
                    detail: text(r, "detail")?,
                })
            })
            .collect()
    }

    /// An admin approves a `suspected` incident (approve mode).
    pub async fn approve_incident(
        &self,
        id: &str,
        who: &str,
        now: f64,
    ) -> Result<IncidentRow, JournalError> {
        let Some(i) = self.incident(id).await? else {
            return Err(JournalError::NotFound(format!(
                "no recovery incident {id}; GET /v1/recovery/evacuations lists them"
            )));
        };
        if i.state != IncidentState::Suspected || i.approved_at.is_some() {
            return Err(JournalError::Conflict(format!(
                "incident {id} (host {}) is {}{}; only a suspected incident waiting for approval \
                 can be approved",
                i.host,
                i.state,
                if i.approved_at.is_some() {
                    " and already approved"
                } else {
                    ""
                }
            )));
        }
        let sets = [
            Set::Text("approved_by", who.to_string()),
            Set::Number("approved_at", now),
        ];
        self.incident_transition(
            id,
            IncidentState::Suspected,
            IncidentState::Suspected,
            &sets,
            &format!("approved by {who}"),
            now,
            None,
        )
        .await
    }

    /// Mark a closed incident released (the host's service is no longer forced down).
    pub async fn mark_released(
        &self,
        i: &IncidentRow,
        who: &str,
        detail: &str,
        now: f64,
    ) -> Result<IncidentRow, JournalError> {
        let sets = [
            Set::Text("released_by", who.to_string()),
            Set::Number("released_at", now),
        ];
        self.incident_transition(&i.id, i.state, i.state, &sets, detail, now, None)
            .await
    }
}

fn conflict(what: &str, id: &str, from: &str) -> JournalError {
    JournalError::Conflict(format!(
        "recovery {what} {id} is no longer {from}; another replica or an admin moved it"
    ))
}

/// One row's move from the state it is in to another, with the columns it sets.
struct Guarded<'a> {
    table: &'static str,
    /// What the row is, for a conflict's message (`incident`, `VM row`).
    kind: &'static str,
    id: &'a str,
    from: &'a str,
    to: &'a str,
    sets: &'a [Set],
}

/// `UPDATE ... WHERE id = ? AND state = <from>`; false when no row was in `from`.
async fn guarded_update(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    guard: &Guarded<'_>,
    now: f64,
) -> Result<bool, sqlx::Error> {
    let Guarded {
        table,
        id,
        from,
        to,
        sets,
        ..
    } = *guard;
    let mut cols = vec!["state = ?".to_string(), "updated_at = ?".to_string()];
    cols.extend(sets.iter().map(|s| match s {
        Set::Text(c, _) | Set::Number(c, _) => format!("{c} = ?"),
    }));
    let sql = format!(
        "UPDATE {table} SET {} WHERE id = ? AND state = ?",
        cols.join(", ")
    );
    let mut q = sqlx::query(&sql).bind(to.to_string()).bind(now);
    for s in sets {
        q = match s {
            Set::Text(_, v) => q.bind(v.clone()),
            Set::Number(_, v) => q.bind(*v),
        };
    }
    let done = q
        .bind(id.to_string())
        .bind(from.to_string())
        .execute(&mut **tx)
        .await?;
    Ok(done.rows_affected() == 1)
}

async fn event(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    incident: &str,
    vm_row: &str,
    at: f64,
    from: &str,
    to: &str,
    detail: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO recovery_event (incident_id, vm_row, at, from_state, to_state, detail) \
         VALUES (?, ?, ?, ?, ?, ?)",
    )
    .bind(incident.to_string())
    .bind(vm_row.to_string())
    .bind(at)
    .bind(from.to_string())
    .bind(to.to_string())
    .bind(detail.to_string())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

fn bad_state(what: &str, id: &str, s: &str) -> JournalError {
    JournalError::Store(super::StoreError::Sql(sqlx::Error::Decode(
        format!("{what} {id}: unknown state {s:?}").into(),
    )))
}

fn incident_row(r: &AnyRow) -> Result<IncidentRow, JournalError> {
    let id: String = r.try_get("id")?;
    let state: String = r.try_get("state")?;
    Ok(IncidentRow {
        state: IncidentState::parse(&state).ok_or_else(|| bad_state("incident", &id, &state))?,
        host: r.try_get("host")?,
        az: r.try_get("az")?,
        service_id: r.try_get("service_id")?,
        mode: r.try_get("mode")?,
        evidence: text(r, "evidence")?,
        service_before: opt_text(r, "service_before")?,
        approved_by: r.try_get("approved_by")?,
        approved_at: r.try_get("approved_at")?,
        error: opt_text(r, "error")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
        finished_at: r.try_get("finished_at")?,
        released_by: r.try_get("released_by")?,
        released_at: r.try_get("released_at")?,
        id,
    })
}

fn vm_row(r: &AnyRow) -> Result<VmRow, JournalError> {
    let id: String = r.try_get("id")?;
    let state: String = r.try_get("state")?;
    Ok(VmRow {
        state: VmState::parse(&state).ok_or_else(|| bad_state("VM row", &id, &state))?,
        incident_id: r.try_get("incident_id")?,
        seq: r.try_get("seq")?,
        vm: r.try_get("vm")?,
        vm_name: r.try_get("vm_name")?,
        az: r.try_get("az")?,
        role: r.try_get("role")?,
        flavor: r.try_get("flavor")?,
        before_image: text(r, "before_image")?,
        accepted_at: r.try_get("accepted_at")?,
        request_id: r.try_get("request_id")?,
        target: r.try_get("target")?,
        error: opt_text(r, "error")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
        finished_at: r.try_get("finished_at")?,
        id,
    })
}
