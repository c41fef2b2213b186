//! The journal's incidents as the CLI (`-f json`) and the API show them: one shape for both,
//! documented in the OpenAPI document.

use serde::Serialize;
use utoipa::ToSchema;

use crate::store::journal::JournalError;
use crate::store::recovery::{IncidentRow, RecoveryEvent, VmRow};
use crate::store::Store;

/// One recovery incident: a host steward found dead, and what was done about it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct IncidentDto {
    pub id: String,
    pub host: String,
    pub az: String,
    /// The nova-compute service id (`PUT /os-services/{id}`).
    pub service_id: String,
    /// suspected, fencing, fenced, forced_down, evacuating, done, failed, blocked, cleared.
    pub state: String,
    /// The mode the incident was opened in (approve, auto).
    pub mode: String,
    /// The suspicion: every witness's evidence with its age.
    #[schema(value_type = Object)]
    pub evidence: serde_json::Value,
    pub approved_by: Option<String>,
    pub approved_at: Option<f64>,
    pub error: Option<String>,
    pub created_at: f64,
    pub updated_at: f64,
    pub finished_at: Option<f64>,
    /// Who put the host back in service (`steward evacuate release`), and when.
    pub released_by: Option<String>,
    pub released_at: Option<f64>,
}

/// One VM of an incident.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct EvacuationDto {
    pub id: String,
    /// The server's uuid.
    pub vm: String,
    pub name: String,
    pub az: String,
    pub role: Option<String>,
    pub flavor: Option<String>,
    /// pending, evacuating, done, failed, blocked.
    pub state: String,
    /// The host Nova's scheduler chose.
    pub target: Option<String>,
    pub error: Option<String>,
    /// Nova's request id of the evacuate action.
    pub request_id: Option<String>,
    pub accepted_at: Option<f64>,
    pub finished_at: Option<f64>,
}

/// One transition, written before the step it announces.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RecoveryEventDto {
    /// The VM row the event is about; absent for the host's own transitions.
    pub vm_row: Option<String>,
    pub at: f64,
    pub from: String,
    pub to: String,
    pub detail: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct IncidentDetail {
    #[serde(flatten)]
    pub incident: IncidentDto,
    pub vms: Vec<EvacuationDto>,
    pub events: Vec<RecoveryEventDto>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct IncidentList {
    pub evacuations: Vec<IncidentDto>,
}

impl From<&IncidentRow> for IncidentDto {
    fn from(i: &IncidentRow) -> Self {
        IncidentDto {
            id: i.id.clone(),
            host: i.host.clone(),
            az: i.az.clone(),
            service_id: i.service_id.clone(),
            state: i.state.as_str().into(),
            mode: i.mode.clone(),
            evidence: serde_json::from_str(&i.evidence).unwrap_or(serde_json::Value::Null),
            approved_by: i.approved_by.clone(),
            approved_at: i.approved_at,
            error: i.error.clone(),
            created_at: i.created_at,
            updated_at: i.updated_at,
            finished_at: i.finished_at,
            released_by: i.released_by.clone(),
            released_at: i.released_at,
        }
    }
}

impl From<&VmRow> for EvacuationDto {
    fn from(v: &VmRow) -> Self {
        EvacuationDto {
            id: v.id.clone(),
            vm: v.vm.clone(),
            name: v.vm_name.clone(),
            az: v.az.clone(),
            role: v.role.clone(),
            flavor: v.flavor.clone(),
            state: v.state.as_str().into(),
            target: v.target.clone(),
            error: v.error.clone(),
            request_id: v.request_id.clone(),
            accepted_at: v.accepted_at,
            finished_at: v.finished_at,
        }
    }
}

impl From<&RecoveryEvent> for RecoveryEventDto {
    fn from(e: &RecoveryEvent) -> Self {
        RecoveryEventDto {
            vm_row: (!e.vm_row.is_empty()).then(|| e.vm_row.clone()),
            at: e.at,
            from: e.from.clone(),
            to: e.to.clone(),
            detail: e.detail.clone(),
        }
    }
}

/// One incident with its VMs and events; `None` when there is no such incident.
pub async fn detail(store: &Store, id: &str) -> Result<Option<IncidentDetail>, JournalError> {
    let Some(i) = store.incident(id).await? else {
        return Ok(None);
    };
    let vms = store.incident_vms(id).await?;
    let events = store.recovery_events(id).await?;
    Ok(Some(IncidentDetail {
        incident: (&i).into(),
        vms: vms.iter().map(Into::into).collect(),
        events: events.iter().map(Into::into).collect(),
    }))
}
