//! Host-failure recovery through the API, admin only (reads too: they show fencing and
//! evacuation of every project's servers): `GET /v1/recovery/evacuations` (incidents, newest
//! first), `GET /v1/recovery/evacuations/{id}` (its VMs and events),
//! `POST /v1/recovery/evacuations/{id}/approve` (mode approve) and
//! `POST /v1/recovery/hosts/{host}/release` (rejoin hook, then the service unforced). The
//! same core as `steward evacuate`; no policy here.

use actix_web::{web, HttpMessage, HttpRequest, HttpResponse};

use super::errors::ApiError;
use super::schema::ErrorBody;
use super::{AppState, RequestId};
use crate::recover::execute::RecoveryError;
use crate::recover::report::{self, IncidentDetail, IncidentDto, IncidentList};
use crate::store::journal::JournalError;
use crate::store::recovery::IncidentState;
use crate::unix_now;

#[derive(Debug, serde::Deserialize)]
pub struct Query {
    limit: Option<i64>,
    state: Option<String>,
}

fn journal_error(e: JournalError) -> ApiError {
    match e {
        JournalError::NotFound(m) => ApiError::not_found(m),
        JournalError::Conflict(m) | JournalError::Fenced(m) => ApiError::conflict(m),
        JournalError::Store(e) => {
            tracing::error!(error = %e, "recovery journal");
            ApiError::unavailable(format!(
                "steward's database did not answer ({e}); try again"
            ))
        }
    }
}

fn who(req: &HttpRequest) -> String {
    let id = req
        .extensions()
        .get::<RequestId>()
        .map(|r| r.0.clone())
        .unwrap_or_default();
    format!("admin (request {id})")
}

/// The recovery journal's incidents, newest first: each host steward found dead, its evidence,
/// and where fencing and evacuation stand. Admin.
#[utoipa::path(get, path = "/v1/recovery/evacuations",
    params(("state" = Option<String>, Query, description = "only incidents in this state (suspected, fencing, fenced, forced_down, evacuating, done, failed, blocked, cleared)"),
           ("limit" = Option<i64>, Query, minimum = 1, maximum = 10000, description = "newest first, at most this many (default 100)")),
    responses((status = 200, body = IncidentList), (status = 400, body = ErrorBody)))]
pub async fn list(
    query: web::Query<Query>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let limit = match query.limit {
        None => 100,
        Some(n) if (1..=10_000).contains(&n) => n,
        Some(n) => {
            return Err(ApiError::bad_request(
                format!("limit {n} is out of range; ask for 1 to 10000"),
                Some("limit".into()),
            ))
        }
    };
    let states = match query.state.as_deref() {
        None => Vec::new(),
        Some(s) => vec![IncidentState::parse(s).ok_or_else(|| {
            ApiError::bad_request(
                format!("state {s:?} is not a recovery state; use suspected, fencing, fenced, forced_down, evacuating, done, failed, blocked or cleared"),
                Some("state".into()),
            )
        })?],
    };
    let all = state
        .store
        .incidents(&states, limit)
        .await
        .map_err(journal_error)?;
    Ok(HttpResponse::Ok().json(IncidentList {
        evacuations: all.iter().map(IncidentDto::from).collect(),
    }))
}

fn checked_id(id: &str) -> Result<(), ApiError> {
    uuid::Uuid::parse_str(id).map(|_| ()).map_err(|_| {
        ApiError::not_found(format!(
            "{id:?} is not an incident id; GET /v1/recovery/evacuations lists them"
        ))
    })
}

/// One incident with every VM of its host (where Nova placed it, or why it could not) and every
/// journaled step, each written before it happened. Admin.
#[utoipa::path(get, path = "/v1/recovery/evacuations/{id}",
    params(("id" = String, Path, description = "the incident's id")),
    responses((status = 200, body = IncidentDetail), (status = 404, body = ErrorBody)))]
pub async fn show(
    id: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    checked_id(&id)?;
    match report::detail(&state.store, &id)
        .await
        .map_err(journal_error)?
    {
        Some(d) => Ok(HttpResponse::Ok().json(d)),
        None => Err(ApiError::not_found(format!(
            "no recovery incident {id}; GET /v1/recovery/evacuations lists them"
        ))),
    }
}

/// Approve a suspected incident (`[recovery] mode = "approve"`): the next round fences the host,
/// forces its compute service down and evacuates its VMs. Admin.
#[utoipa::path(post, path = "/v1/recovery/evacuations/{id}/approve",
    params(("id" = String, Path, description = "the incident's id")),
    responses((status = 200, body = IncidentDto), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody)))]
pub async fn approve(
    req: HttpRequest,
    id: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    checked_id(&id)?;
    let by = who(&req);
    let i = state
        .store
        .approve_incident(&id, &by, unix_now())
        .await
        .map_err(journal_error)?;
    tracing::warn!(incident = %i.id, host = %i.host, by = %by, "recovery incident approved");
    Ok(HttpResponse::Ok().json(IncidentDto::from(&i)))
}

/// Put a recovered host back in service: the rejoin hook, then its compute service unforced
/// (`forced_down: false`). Refused while its incident is open. Admin.
#[utoipa::path(post, path = "/v1/recovery/hosts/{host}/release",
    params(("host" = String, Path, description = "the compute host name")),
    responses((status = 200, body = IncidentDto), (status = 409, body = ErrorBody),
              (status = 503, body = ErrorBody)))]
pub async fn release(
    req: HttpRequest,
    host: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let by = who(&req);
    let recovery = crate::recover::cli::build(&state.settings, &state.store, state.metrics.clone())
        // A steward without a cloud is configured that way, not failing: a 409 that says what
        // to configure, not a 5xx that reads as an outage.
        .map_err(|e| {
            ApiError::conflict(format!(
                "recovery has no cloud to act on ({e:#}); configure [openstack] cloud and restart"
            ))
        })?;
    match recovery.release(&host, &by).await {
        Ok(i) => Ok(HttpResponse::Ok().json(IncidentDto::from(&i))),
        Err(RecoveryError::Refused(m)) => Err(ApiError::conflict(m)),
        Err(RecoveryError::Journal(e)) => Err(journal_error(e)),
        Err(e) => Err(ApiError::unavailable(e.to_string())),
    }
}
