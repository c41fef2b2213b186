//! The HTTP face (actix-web): routes, request ids, authentication, metrics and errors.
//! Thin: it parses, calls the scoring core or an adapter, and renders; it holds no policy.

pub mod errors;
pub mod openapi;
mod repair;
mod routes;
pub mod schema;

use std::sync::Arc;
use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::{from_fn, Next};
use actix_web::{web, App, HttpMessage, HttpServer, ResponseError};

use crate::cluster::ClusterHandle;
use crate::config::{Roles, TokenTable, Validated};
use crate::metrics::Metrics;
use crate::scoring::{Options, ProfileSet};
use crate::store::Store;
use errors::ApiError;

pub const REQUEST_ID_HEADER: &str = "x-openstack-request-id";

/// Everything a handler may use; cheap to clone into every worker.
#[derive(Clone)]
pub struct AppState {
    pub profiles: Arc<ProfileSet>,
    pub opts: Arc<Options>,
    pub cluster: Arc<ClusterHandle>,
    pub store: Store,
    pub metrics: Metrics,
    /// `None` means noauth (loopback only, enforced by config validation).
    pub tokens: Option<Arc<TokenTable>>,
    pub max_body_bytes: usize,
    pub max_hosts: usize,
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
            max_body_bytes: v.settings.server.max_body_bytes,
            max_hosts: v.settings.server.max_hosts,
            settings: Arc::new(v.settings),
        }
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

/// Which role a route needs; `None` for the health check only.
fn required_role(method: &str, path: &str) -> Option<fn(&Roles) -> bool> {
    match (method, path) {
        (_, "/healthz") => None,
        ("POST", "/v1/telemetry") => Some(|r| r.telemetry),
        (_, p) if p.starts_with("/v1/repair") => Some(|r| r.admin),
        _ => Some(|r| r.reader),
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
    if let (Some(tokens), Some(allowed)) = (
        state.tokens.as_ref(),
        required_role(req.method().as_str(), req.path()),
    ) {
        let denial = match presented_token(&req) {
            None => Some(ApiError::unauthorized(
                "no token: send `Authorization: Bearer <token>` or `X-Auth-Token` (see [auth] token_file)",
            )),
            Some(t) => match tokens.roles_of(t) {
                None => Some(ApiError::unauthorized(
                    "the token is not known to steward; check the token file of the caller and of [auth] token_file",
                )),
                Some(roles) if !allowed(&roles) => Some(ApiError::forbidden(format!(
                    "this token's roles do not allow {} {}",
                    req.method(),
                    req.path()
                ))),
                Some(_) => None,
            },
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
