//! An admin's way to move one VM into another AZ, for one request, logged: steward keeps every
//! moving VM in its own AZ, and Nova (microversion 2.68 and later) has no force. Admin only:
//! `POST /v1/vms/{uuid}/cross-az` grants the VM's next move into `to_az`;
//! `GET /v1/cross-az-grants` lists grants; `POST /v1/cross-az-grants/{id}/revoke` revokes an
//! open one. The callout ([`apply`]) takes the VM's open grant on its first move request and
//! binds that request to the grant's AZ instead of the VM's own (`same_az` then keeps it
//! there); the grant is used up whether or not Nova completes the move. A VM pinned to an AZ at
//! boot is pinned by Nova itself: a grant does not undo Nova's pin.
//!
//! The callout never waits on the store for a VM without a grant: each replica keeps the set
//! of VMs with an open grant ([`OpenGrants`], read without a lock), filled by its own grants
//! at once and from the store every [`REFRESH_SECONDS`] (another replica's grants), and reads
//! the store only to take a grant of a VM in that set.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::errors::ApiError;
use super::routes::{journal_error, limit_of, read_body, request_id, ListQuery};
use super::schema::{parse_json, ErrorBody};
use super::AppState;
use crate::model::{Operation, SchedulingRequest};
use crate::store::cross_az::CrossAzGrant;
use crate::store::Store;
use crate::unix_now;

/// How often each replica reloads the VMs with an open grant (another replica's grants take
/// effect here within this).
pub const REFRESH_SECONDS: f64 = 2.0;

/// The VMs with an open grant, as this replica knows them; read without a lock.
#[derive(Debug, Default)]
pub struct OpenGrants(arc_swap::ArcSwap<HashSet<String>>);

impl OpenGrants {
    pub fn contains(&self, vm: &str) -> bool {
        self.0.load().contains(vm)
    }

    fn add(&self, vm: &str) {
        self.0.rcu(|set| {
            let mut set = HashSet::clone(set);
            set.insert(vm.to_string());
            set
        });
    }

    fn remove(&self, vm: &str) {
        self.0.rcu(|set| {
            let mut set = HashSet::clone(set);
            set.remove(vm);
            set
        });
    }

    /// Reload the set from the store (the refresh loop's step; a failed read keeps the set).
    pub async fn reload(&self, store: &Store) {
        match store.open_cross_az_vms(unix_now()).await {
            Ok(vms) => self.0.store(Arc::new(vms.into_iter().collect())),
            Err(e) => {
                tracing::warn!(error = %e, "cannot reload the open cross-AZ grants; keeping the last set")
            }
        }
    }

    /// `serve`'s loop: reload every [`REFRESH_SECONDS`].
    pub fn spawn_refresh(self: Arc<Self>, store: Store) {
        tokio::spawn(async move {
            loop {
                self.reload(&store).await;
                tokio::time::sleep(Duration::from_secs_f64(REFRESH_SECONDS)).await;
            }
        });
    }
}

/// How long a grant waits for its move unless the admin says otherwise.
pub const DEFAULT_TTL_SECONDS: f64 = 900.0;
const MAX_TTL_SECONDS: f64 = 86_400.0;

/// What an admin grants: the AZ the VM's next move may go to, why, and for how long.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CrossAzGrantBody {
    /// The AZ the next move of the VM is bound to.
    pub to_az: String,
    /// Why (kept with the grant and logged when a move uses it).
    pub reason: String,
    /// How long the grant waits for the move, 60 to 86400 seconds (default 900).
    #[serde(default)]
    pub ttl_seconds: Option<f64>,
}

/// A grant: open until a move uses it, an admin revokes it, or it lapses.
#[derive(Debug, Serialize, ToSchema)]
pub struct CrossAzGrantDto {
    pub id: String,
    pub vm: String,
    pub to_az: String,
    pub granted_by: String,
    pub reason: String,
    /// `open`, `used`, `revoked` or `lapsed`.
    pub state: String,
    pub created_at: f64,
    pub expires_at: f64,
    pub used_at: Option<f64>,
    pub revoked_at: Option<f64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CrossAzGrantList {
    pub grants: Vec<CrossAzGrantDto>,
}

impl CrossAzGrantDto {
    fn of(g: CrossAzGrant, now: f64) -> Self {
        let state = if g.used_at.is_some() {
            "used"
        } else if g.revoked_at.is_some() {
            "revoked"
        } else if g.is_open(now) {
            "open"
        } else {
            "lapsed"
        };
        CrossAzGrantDto {
            state: state.into(),
            id: g.id,
            vm: g.vm,
            to_az: g.to_az,
            granted_by: g.granted_by,
            reason: g.reason,
            created_at: g.created_at,
            expires_at: g.expires_at,
            used_at: g.used_at,
            revoked_at: g.revoked_at,
        }
    }
}

/// Check a grant's body against what steward knows: the AZ must be one of the cloud's (when
/// steward knows any), the reason said, the time within bounds.
fn checked(body: &CrossAzGrantBody, known_azs: &[String]) -> Result<f64, ApiError> {
    let az = body.to_az.trim();
    if az.is_empty() || az.len() > 255 {
        return Err(ApiError::bad_request(
            "to_az must name the AZ the VM may move to (1 to 255 characters)",
            Some("to_az".into()),
        ));
    }
    if !known_azs.is_empty() && !known_azs.iter().any(|k| k == az) {
        return Err(ApiError::bad_request(
            format!(
                "AZ {az:?} is not one steward knows ({}); name one of them",
                known_azs.join(", ")
            ),
            Some("to_az".into()),
        ));
    }
    let reason = body.reason.trim();
    if reason.is_empty() || reason.len() > 1000 {
        return Err(ApiError::bad_request(
            "reason must say why the VM leaves its AZ (1 to 1000 characters); it is logged",
            Some("reason".into()),
        ));
    }
    match body.ttl_seconds {
        None => Ok(DEFAULT_TTL_SECONDS),
        Some(t) if (60.0..=MAX_TTL_SECONDS).contains(&t) => Ok(t),
        Some(t) => Err(ApiError::bad_request(
            format!("ttl_seconds {t} is out of range; give 60 to 86400"),
            Some("ttl_seconds".into()),
        )),
    }
}

/// Grant the VM's next move into another AZ, for that one scheduling request. An open grant
/// of the same VM is replaced. Admin.
#[utoipa::path(post, path = "/v1/vms/{uuid}/cross-az",
    params(("uuid" = String, Path, description = "the server's uuid")),
    request_body = CrossAzGrantBody,
    responses((status = 201, body = CrossAzGrantDto), (status = 400, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn grant(
    req: HttpRequest,
    uuid: web::Path<String>,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let vm = uuid.into_inner();
    if uuid::Uuid::parse_str(&vm).is_err() {
        return Err(ApiError::bad_request(
            format!("{vm:?} is not a server uuid"),
            Some("uuid".into()),
        ));
    }
    let body = read_body(&req, payload, state.max_body_bytes).await?;
    let asked: CrossAzGrantBody = parse_json(&body)?;
    let known: Vec<String> = {
        let view = state.cluster.snapshot();
        let mut azs: Vec<String> = view.hosts.values().filter_map(|h| h.az.clone()).collect();
        azs.sort();
        azs.dedup();
        azs
    };
    let ttl = checked(&asked, &known)?;
    let by = format!("admin (request {})", request_id(&req));
    let now = unix_now();
    let g = state
        .store
        .grant_cross_az(&vm, asked.to_az.trim(), &by, asked.reason.trim(), now, ttl)
        .await
        .map_err(journal_error)?;
    state.open_grants.add(&g.vm);
    tracing::warn!(grant = %g.id, vm = %g.vm, to_az = %g.to_az, by = %g.granted_by,
        reason = %g.reason, ttl_s = ttl, "cross-AZ move granted for the VM's next move");
    Ok(HttpResponse::Created().json(CrossAzGrantDto::of(g, now)))
}

/// Every cross-AZ grant, newest first. Admin.
#[utoipa::path(get, path = "/v1/cross-az-grants",
    params(("limit" = Option<i64>, Query, minimum = 1, maximum = 10000, description = "newest first, at most this many (default 100)")),
    responses((status = 200, body = CrossAzGrantList), (status = 400, body = ErrorBody)))]
pub async fn list(
    query: web::Query<ListQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let limit = limit_of(&query, 100)?;
    let now = unix_now();
    let all = state
        .store
        .cross_az_grants(limit)
        .await
        .map_err(journal_error)?;
    Ok(HttpResponse::Ok().json(CrossAzGrantList {
        grants: all
            .into_iter()
            .map(|g| CrossAzGrantDto::of(g, now))
            .collect(),
    }))
}

/// Revoke an open grant before a move uses it. Admin.
#[utoipa::path(post, path = "/v1/cross-az-grants/{id}/revoke",
    params(("id" = String, Path, description = "the grant's id")),
    responses((status = 200, body = CrossAzGrantDto), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody)))]
pub async fn revoke(
    req: HttpRequest,
    id: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    if uuid::Uuid::parse_str(&id).is_err() {
        return Err(ApiError::not_found(format!(
            "{id:?} is not a grant id; GET /v1/cross-az-grants lists them"
        )));
    }
    let now = unix_now();
    let g = state
        .store
        .revoke_cross_az(&id, now)
        .await
        .map_err(journal_error)?;
    tracing::warn!(grant = %g.id, vm = %g.vm, to_az = %g.to_az, request = %request_id(&req),
        "cross-AZ grant revoked");
    Ok(HttpResponse::Ok().json(CrossAzGrantDto::of(g, now)))
}

/// In a move callout: take the VM's open grant, if any, and bind this request to its AZ. Only
/// a VM in [`OpenGrants`] costs a read of the store. Steward's database out of reach means no
/// grant (the VM stays in its AZ), said in the log.
pub async fn apply(state: &AppState, req: &HttpRequest, sreq: &mut SchedulingRequest) {
    // A rebuild stays on its host: it must not use up the grant meant for a move.
    if !sreq.operation.is_move()
        || sreq.operation == Operation::Rebuild
        || !state.open_grants.contains(&sreq.instance.uuid)
    {
        return;
    }
    let taken = state
        .store
        .take_cross_az(&sreq.instance.uuid, unix_now())
        .await;
    if taken.is_ok() {
        // Used here, or used, revoked or lapsed meanwhile: either way not open any more.
        state.open_grants.remove(&sreq.instance.uuid);
    }
    match taken {
        Ok(Some(g)) => {
            tracing::warn!(grant = %g.id, vm = %g.vm, to_az = %g.to_az, by = %g.granted_by,
                reason = %g.reason, request = %request_id(req),
                "cross-AZ grant used: this move of the VM is bound to AZ {} instead of its own", g.to_az);
            sreq.instance.requested_az = Some(g.to_az);
        }
        Ok(None) => {}
        Err(e) => tracing::warn!(vm = %sreq.instance.uuid, error = %e,
            "cannot read cross-AZ grants; the VM stays in its AZ for this move"),
    }
}
