//! The HTTP face (actix-web): routes, request ids, authentication, metrics and errors.
//! Thin: it parses, calls the scoring core or an adapter, and renders; it holds no policy.

pub mod auth;
pub mod cross_az;
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
pub mod table;

use std::sync::Arc;
use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::{from_fn, Next};
use actix_web::{web, App, HttpMessage, HttpServer};

use crate::cluster::ClusterHandle;
use crate::config::Validated;
use crate::metrics::Metrics;
use crate::openstack::keystone::CachedValidator;
use crate::scoring::{Options, ProfileSet};
use crate::store::telemetry_writer::TelemetryWriter;
use crate::store::Store;
use settings::{AuthStrategy, TokenTable};

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
    /// Commits pushed telemetry, concurrent pushes sharing a commit.
    pub telemetry_writer: TelemetryWriter,
    /// Where a push's CPU work runs: below the callouts' priority (`[server] telemetry_nice`).
    pub telemetry_lane: crate::lane::Lane,
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
    /// The VMs with an open cross-AZ grant, so a move callout reads the store only for those.
    pub open_grants: Arc<cross_az::OpenGrants>,
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
            telemetry_writer: TelemetryWriter::spawn(store.clone()),
            telemetry_lane: crate::lane::Lane::start(
                "steward-telemetry",
                v.settings.server.telemetry_nice,
            ),
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
            open_grants: Arc::default(),
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

/// Register the routes, each behind the role it declares (`table`), on an app.
pub fn configure(cfg: &mut web::ServiceConfig) {
    routes::configure(cfg);
    table::configure(cfg);
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
        .wrap(from_fn(observe))
        .configure(configure)
        .default_service(actix_web::dev::fn_service(auth::unmatched))
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
