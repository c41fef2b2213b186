//! The HTTP face (actix-web): routes, request ids, authentication, metrics and errors.
//! Thin: it parses, calls the scoring core or an adapter, and renders; it holds no policy.

pub mod errors;
pub mod host_cache;
pub mod openapi;
pub mod openapi_markdown;
pub mod recent;
mod recovery;
mod repair;
mod routes;
pub mod schema;
pub mod settings;

use std::sync::Arc;
use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::{from_fn, Next};
use actix_web::{web, App, HttpMessage, HttpServer, ResponseError};

use crate::cluster::ClusterHandle;
use crate::config::Validated;
use crate::metrics::Metrics;
use crate::openstack::keystone::{CachedValidator, Validation};
use crate::openstack::Secret;
use crate::scoring::{Options, ProfileSet};
use crate::store::Store;
use errors::ApiError;
use settings::{AuthStrategy, Roles, TokenTable};

pub const REQUEST_ID_HEADER: &str = "x-openstack-request-id";
/// On a callout's 200: this steward keeps host entries for reference (docs/callout.md).
pub const HOST_CACHE_HEADER: &str = "x-steward-host-cache";

/// Everything a handler may use; cheap to clone into every worker.
#[derive(Clone)]
pub struct AppState {
    pub profiles: Arc<ProfileSet>,
    pub opts: Arc<Options>,
    pub cluster: Arc<ClusterHandle>,
    pub store: Store,
    pub metrics: Metrics,
    /// Static tokens: required by `static`, optional beside `keystone`, none with `noauth`.
    pub tokens: Option<Arc<TokenTable>>,
    pub auth: AuthStrategy,
    /// The Keystone validator, with `auth = keystone` ([`AppState::with_keystone`]).
    pub keystone: Option<Arc<CachedValidator>>,
    pub max_body_bytes: usize,
    pub max_hosts: usize,
    /// Hosts of earlier callouts, for callers that send unchanged ones by reference.
    pub host_cache: Arc<host_cache::HostCache>,
    /// What steward has just allowed, until the cluster view confirms it (role caps).
    pub recent: Arc<recent::RecentGrants>,
    /// What the repair routes connect with (`[openstack]`, `[repair]`).
    pub settings: Arc<crate::config::Settings>,
}

impl AppState {
    pub fn new(v: Validated, store: Store, cluster: ClusterHandle) -> Self {
        let metrics = Metrics::new();
        let view = cluster.snapshot();
        metrics.cluster_hosts.set(view.hosts.len() as i64);
        metrics.cluster_vms.set(view.vms.len() as i64);
        AppState {
            opts: Arc::new(v.scoring_options()),
            profiles: Arc::new(v.profiles),
            cluster: Arc::new(cluster),
            store,
            metrics,
            tokens: v.tokens.map(Arc::new),
            auth: v.settings.auth.strategy,
            keystone: None,
            max_body_bytes: v.settings.server.max_body_bytes,
            max_hosts: v.settings.server.max_hosts,
            host_cache: Arc::new(host_cache::HostCache::new(
                v.settings.server.host_cache_entries,
            )),
            recent: Arc::new(recent::RecentGrants::new()),
            settings: Arc::new(v.settings),
        }
    }
}

impl AppState {
    /// Validate callers' tokens with Keystone (`[auth] strategy = "keystone"`).
    pub fn with_keystone(mut self, validator: Arc<CachedValidator>) -> Self {
        self.keystone = Some(validator);
        self
    }
}

/// The request id of this request (Nova's, or one steward made).
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

fn valid_request_id(s: &str) -> bool {
    s.len() <= 64
        && s.starts_with("req-")
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// What a route needs: `None` for the health check only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Need {
    Reader,
    Telemetry,
    Admin,
}

impl Need {
    fn allows(self, r: &Roles) -> bool {
        match self {
            Need::Reader => r.reader,
            Need::Telemetry => r.telemetry,
            Need::Admin => r.admin,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Need::Reader => "reader",
            Need::Telemetry => "telemetry",
            Need::Admin => "admin",
        }
    }
}

/// Reads and the scoring callout need `reader`, the telemetry push `telemetry`, every other
/// write (repair, rebalance) `admin`: a new write route is admin-only unless listed here.
fn required_role(method: &str, path: &str) -> Option<Need> {
    match (method, path) {
        (_, "/healthz") => None,
        // The inventory repair writes to Nova's data: every repair route, reads too, is admin's.
        (_, p) if p.starts_with("/v1/repair") => Some(Need::Admin),
        // Recovery shows and drives fencing and evacuation of every project's servers.
        (_, p) if p.starts_with("/v1/recovery") => Some(Need::Admin),
        ("GET" | "HEAD" | "OPTIONS", _) => Some(Need::Reader),
        ("POST", "/v1/filter" | "/v1/weigh") => Some(Need::Reader),
        ("POST", "/v1/telemetry") => Some(Need::Telemetry),
        _ => Some(Need::Admin),
    }
}

/// The roles of a Keystone token, or why the request is refused. Never puts the token in a
/// message or a log line.
async fn keystone_roles(state: &AppState, presented: Option<&[u8]>) -> Result<Roles, ApiError> {
    let Some(validator) = state.keystone.as_ref() else {
        return Err(ApiError::unavailable(
            "[auth] strategy is keystone but steward has no Keystone session; check [openstack] cloud",
        ));
    };
    let Some(raw) = presented else {
        return Err(ApiError::unauthorized(
            "no token: send a Keystone token in `X-Auth-Token` (openstack token issue)",
        ));
    };
    let Some(token) = std::str::from_utf8(raw)
        .ok()
        .map(str::trim)
        .filter(|t| !t.is_empty() && t.len() <= 8192)
    else {
        return Err(ApiError::unauthorized(
            "the X-Auth-Token header is not a Keystone token; get one with `openstack token issue`",
        ));
    };
    match validator.validate(&Secret::new(token)).await {
        Ok(Validation::Valid(info)) => Ok(Roles::from_keystone(info.roles.iter().map(String::as_str))),
        Ok(Validation::Invalid) => Err(ApiError::unauthorized(
            "Keystone does not accept this token (unknown, expired or revoked); get a new one with `openstack token issue`",
        )),
        Err(e) => {
            state
                .metrics
                .source_errors
                .with_label_values(&["keystone", e.kind()])
                .inc();
            tracing::warn!(error = %e, kind = e.kind(), "cannot validate a token with Keystone");
            Err(ApiError::unavailable(format!(
                "cannot validate the token with Keystone now; try again later ({e})"
            )))
        }
    }
}

fn presented_token(req: &ServiceRequest) -> Option<&[u8]> {
    let h = req.headers();
    if let Some(v) = h.get("x-auth-token") {
        return Some(v.as_bytes());
    }
    let auth = h.get("authorization")?.as_bytes();
    auth.strip_prefix(b"Bearer ")
        .or_else(|| auth.strip_prefix(b"bearer "))
}

async fn authenticate(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<actix_web::body::BoxBody>, actix_web::Error> {
    let state = req
        .app_data::<web::Data<AppState>>()
        .expect("AppState is registered")
        .clone();
    let need = required_role(req.method().as_str(), req.path());
    let roles: Option<Result<Roles, ApiError>> = match (state.auth, need) {
        (_, None) | (AuthStrategy::Noauth, _) => None,
        (AuthStrategy::Keystone, Some(_)) => {
            let presented = presented_token(&req);
            // A static token (the Nova shim's) first: constant time, no call to Keystone.
            let known = state
                .tokens
                .as_ref()
                .zip(presented)
                .and_then(|(tokens, t)| tokens.roles_of(t));
            Some(match known {
                Some(roles) => Ok(roles),
                None => keystone_roles(&state, presented).await,
            })
        }
        (AuthStrategy::Static, Some(_)) => Some(match (state.tokens.as_ref(), presented_token(&req)) {
            (None, _) => Err(ApiError::unavailable(
                "[auth] strategy is static but no token table is loaded; check [auth] token_file",
            )),
            (_, None) => Err(ApiError::unauthorized(
                "no token: send `Authorization: Bearer <token>` or `X-Auth-Token` (see [auth] token_file)",
            )),
            (Some(tokens), Some(t)) => tokens.roles_of(t).ok_or_else(|| {
                ApiError::unauthorized(
                    "the token is not known to steward; check the token file of the caller and of [auth] token_file",
                )
            }),
        }),
    };
    if let (Some(roles), Some(need)) = (roles, need) {
        let denial = match roles {
            Err(e) => Some(e),
            Ok(r) if !need.allows(&r) => Some(ApiError::forbidden(format!(
                "this token's roles do not allow {} {}; it needs the {} role",
                req.method(),
                req.path(),
                need.name()
            ))),
            Ok(_) => None,
        };
        if let Some(err) = denial {
            tracing::warn!(
                path = req.path(),
                status = err.status.as_u16(),
                "request refused"
            );
            let resp = err.error_response();
            return Ok(req.into_response(resp));
        }
    }
    Ok(next.call(req).await?.map_into_boxed_body())
}

/// Request id in and out, one log line and the route metrics for every request.
async fn observe(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let rid = req
        .headers()
        .get(REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| valid_request_id(v))
        .map(str::to_string)
        .unwrap_or_else(|| format!("req-{}", uuid::Uuid::new_v4()));
    req.extensions_mut().insert(RequestId(rid.clone()));
    let method = req.method().to_string();
    let route = req.match_pattern().unwrap_or_else(|| "unmatched".into());
    let metrics = req
        .app_data::<web::Data<AppState>>()
        .map(|s| s.metrics.clone());
    let mut res = next.call(req).await?;
    let status = res.status().as_u16();
    let elapsed = started.elapsed();
    if let Some(m) = metrics {
        m.latency
            .with_label_values(&[&route, &method])
            .observe(elapsed.as_secs_f64());
        m.requests
            .with_label_values(&[&route, &method, &status.to_string()])
            .inc();
    }
    if let Ok(v) = HeaderValue::from_str(&rid) {
        res.headers_mut()
            .insert(HeaderName::from_static(REQUEST_ID_HEADER), v);
    }
    let micros = elapsed.as_micros() as u64;
    // The callout handlers log their own summary line; a second one per request is noise.
    if status < 400 && (route == "/v1/filter" || route == "/v1/weigh") {
        tracing::debug!(request_id = %rid, method = %method, route = %route, status, micros, "request");
    } else {
        tracing::info!(request_id = %rid, method = %method, route = %route, status, micros, "request");
    }
    Ok(res)
}

/// Register the routes and middleware on an app (used by `serve` and by the tests).
pub fn configure(cfg: &mut web::ServiceConfig) {
    routes::configure(cfg);
    repair::configure(cfg);
    recovery::configure(cfg);
}

pub fn app(
    state: AppState,
) -> App<
    impl actix_web::dev::ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    App::new()
        .app_data(web::Data::new(state))
        .wrap(from_fn(authenticate))
        .wrap(from_fn(observe))
        .configure(configure)
        .default_service(web::to(|| async {
            ApiError::not_found("no such route; GET /openapi.json lists the routes")
                .error_response()
        }))
}

/// Serve until SIGTERM or SIGINT (graceful: in-flight requests finish).
pub async fn serve(
    state: AppState,
    listen: std::net::SocketAddr,
    workers: usize,
) -> std::io::Result<()> {
    let server = HttpServer::new(move || app(state.clone()))
        .workers(workers)
        .backlog(1024)
        .bind(listen)?;
    tracing::info!(%listen, workers, "steward is listening");
    server.run().await
}
