//! Route handlers: parse, call the core or an adapter, render. No policy lives here.

use std::collections::BTreeMap;
use std::sync::Arc;

use actix_web::{web, HttpMessage, HttpRequest, HttpResponse};
use futures_util::StreamExt;

use super::errors::ApiError;
use super::schema::*;
use super::{AppState, RequestId};
use crate::model::{hour_of_week_name, ClusterView, HostFacts, SchedulingRequest, WeeklyProfile};
use crate::scoring::{self, Profile};
use crate::store::telemetry_writer::Push;
use crate::telemetry;
use crate::unix_now;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.app_data(web::QueryConfig::default().error_handler(query_error));
}

/// A query string that does not parse (`?weigh=maybe`, `?limit=1e99`) is the caller's
/// mistake: a 400 with steward's error body, naming the query, as every other refusal.
fn query_error(err: actix_web::error::QueryPayloadError, req: &HttpRequest) -> actix_web::Error {
    ApiError::bad_request(
        format!(
            "the query string {:?} does not fit {} {} ({err}); /openapi.json lists its parameters",
            req.query_string(),
            req.method(),
            req.path()
        ),
        None,
    )
    .into()
}

pub(super) fn request_id(req: &HttpRequest) -> String {
    req.extensions()
        .get::<RequestId>()
        .map(|r| r.0.clone())
        .unwrap_or_default()
}

/// Read the body up to the configured limit, answering 413 past it without reading the rest.
/// A `Content-Length` over the limit is refused before any byte is read; one within it sizes
/// the buffer once (a 1,000-host callout is about 430 KB).
pub(super) async fn read_body(
    req: &HttpRequest,
    mut payload: web::Payload,
    limit: usize,
) -> Result<web::Bytes, ApiError> {
    let too_large = || {
        ApiError::too_large(format!(
            "the request body is larger than [server] max_body_bytes = {limit}"
        ))
    };
    let announced = req
        .headers()
        .get(actix_web::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if announced.is_some_and(|n| n > limit) {
        return Err(too_large());
    }
    let mut body = web::BytesMut::with_capacity(announced.unwrap_or(0));
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| {
            ApiError::bad_request(format!("cannot read the request body: {e}"), None)
        })?;
        if body.len() + chunk.len() > limit {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// A callout ready to score: the request (with the recent grants of its role added), its
/// profile, the cluster view and the time it is scored against.
struct Callout<'a> {
    sreq: SchedulingRequest,
    profile: &'a Profile,
    /// Whether the hosts it sent in full were kept for reference (the caller asked with
    /// `X-Steward-Host-Cache` and the cache is on).
    kept: bool,
    view: Arc<ClusterView>,
    now: f64,
}

/// Parse a callout, pick its profile, take the cluster view, add to the request the recent
/// grants of its role and bind a move to an admin's cross-AZ grant: what the filter and the
/// weigher both start from.
async fn callout<'a>(
    state: &'a AppState,
    req: &HttpRequest,
    payload: web::Payload,
) -> Result<Callout<'a>, ApiError> {
    let (mut sreq, profile, kept) = parse_and_profile(state, req, payload).await?;
    let view = state.cluster.snapshot();
    let now = unix_now();
    let key = &state.opts.role_metadata_key;
    state.recent.apply(&mut sreq, &view, key, now);
    super::cross_az::apply(state, req, &mut sreq).await;
    Ok(Callout {
        sreq,
        profile,
        kept,
        view,
        now,
    })
}

/// Parse a callout and pick its profile. The third value: whether the hosts it sent in full
/// were kept for reference.
async fn parse_and_profile<'a>(
    state: &'a AppState,
    req: &HttpRequest,
    payload: web::Payload,
) -> Result<(SchedulingRequest, &'a Profile, bool), ApiError> {
    let body = read_body(req, payload, state.max_body_bytes).await?;
    let keep =
        state.host_cache.capacity() > 0 && req.headers().contains_key(super::HOST_CACHE_HEADER);
    let parsed = parse_callout(&body, state.max_hosts, Some(&state.host_cache), keep)?;
    let by_reference = parsed.by_reference as u64;
    let req = parsed.request;
    let m = &state.metrics.callout_hosts;
    m.with_label_values(&["reference"]).inc_by(by_reference);
    m.with_label_values(&["full"])
        .inc_by(req.hosts.len() as u64 - by_reference);
    let profile = state
        .profiles
        .select(&req.instance.flavor.extra_specs, &req.instance.hints)
        .map_err(|m| ApiError::unknown_profile(m, profile_field(&req.instance)))?;
    Ok((req, profile, keep))
}

/// Where the request named its profile, as `ProfileSet::select` reads it: the flavor's extra
/// spec first, then the scheduler hint.
fn profile_field(instance: &crate::model::Instance) -> &'static str {
    let named = |v: Option<&String>| v.is_some_and(|s| !s.trim().is_empty());
    if !named(instance.flavor.extra_specs.get("steward:profile"))
        && named(instance.hints.get("steward_profile"))
    {
        "instance.scheduler_hints.steward_profile"
    } else {
        "instance.flavor.extra_specs.steward:profile"
    }
}

/// A callout's 200. When its hosts were `kept`, `X-Steward-Host-Cache` (the cache's size)
/// tells the caller that those it sent in full may be named by reference from now on
/// (docs/callout.md).
fn callout_ok(state: &AppState, kept: bool) -> actix_web::HttpResponseBuilder {
    let mut ok = HttpResponse::Ok();
    if kept {
        let capacity = state.host_cache.capacity().to_string();
        ok.insert_header((super::HOST_CACHE_HEADER, capacity));
    }
    ok
}

fn record(state: &AppState, route: &str, hosts: usize, degraded: bool) {
    state
        .metrics
        .hosts_per_request
        .with_label_values(&[route])
        .observe(hosts as f64);
    if degraded {
        state.metrics.degraded.with_label_values(&[route]).inc();
    }
}

#[derive(Debug, serde::Deserialize)]
pub struct FilterQuery {
    #[serde(default)]
    weigh: bool,
    #[serde(default)]
    compact: bool,
}

/// The Nova callout's filter: which candidate hosts may take the instance, each rejection with
/// its plugin and reason (reader role). `?weigh=true` adds the allowed hosts' weights.
#[utoipa::path(post, path = "/v1/filter", request_body = CalloutRequest,
    params(("weigh" = Option<bool>, Query, description = "also answer the allowed hosts' weights (one round trip per scheduling request)"),
           ("X-Steward-Host-Cache" = Option<String>, Header, description = "present (any value): keep the hosts sent in full for reference by later requests (docs/callout.md, \"Host references\")"),
           ("compact" = Option<bool>, Query, description = "answer hosts by their index in the request and weights as a plain array (CompactFilterResponse): what the Nova shim asks for")),
    responses((status = 200, body = FilterAnswer, description = "hosts by name (FilterResponse), or by index with `compact=true` (CompactFilterResponse)",
               headers(("X-Steward-Host-Cache" = u64, description = "this steward keeps host entries (this many): the hosts sent in full may be named by reference from now on"))),
              (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 409, body = ErrorBody, description = "steward.unknown_host_refs: a host reference this steward does not hold; send those hosts in full"),
              (status = 413, body = ErrorBody)))]
pub async fn filter(
    req: HttpRequest,
    payload: web::Payload,
    query: web::Query<FilterQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let Callout {
        sreq,
        profile,
        kept,
        view,
        now,
    } = callout(&state, &req, payload).await?;
    let (out, host_weights) = if query.weigh {
        let (out, w) = scoring::filter_and_weigh(&sreq, profile, &view, &state.opts, now);
        (out, Some(w))
    } else {
        (
            scoring::filter(&sreq, profile, &view, &state.opts, now),
            None,
        )
    };
    let degraded = !out.degraded_reasons.is_empty();
    let rid = request_id(&req);
    let allowed_count = out.rejections.iter().filter(|r| r.is_none()).count();
    let rejected_count = out.rejections.len() - allowed_count;
    record(&state, "filter", out.rejections.len(), degraded);
    tracing::info!(
        request_id = %rid, instance = %sreq.instance.uuid, operation = sreq.operation.as_str(),
        profile = %profile.name, allowed = allowed_count, rejected = rejected_count, degraded,
        "filter"
    );
    let mut rejected = Vec::with_capacity(rejected_count);
    if query.compact {
        let mut allowed_indexes = Vec::with_capacity(allowed_count);
        for (i, (h, r)) in sreq.hosts.into_iter().zip(out.rejections).enumerate() {
            match r {
                None => allowed_indexes.push(i),
                Some(r) => rejected.push(rejected_host(&state, Some(i), &h, r)),
            }
        }
        let weights = host_weights.map(|hw| allowed_indexes.iter().map(|&i| hw[i]).collect());
        return Ok(
            callout_ok(&state, kept).json(FilterAnswer::Compact(CompactFilterResponse {
                request_id: rid,
                profile: profile.name.clone(),
                role: out.role,
                degraded,
                degraded_reasons: out.degraded_reasons,
                allowed_indexes,
                rejected,
                weights,
            })),
        );
    }
    let mut allowed = Vec::with_capacity(allowed_count);
    let mut weights = host_weights
        .as_ref()
        .map(|_| Vec::with_capacity(allowed_count));
    for (i, (h, r)) in sreq.hosts.into_iter().zip(out.rejections).enumerate() {
        match r {
            None => {
                if let (Some(ws), Some(hw)) = (weights.as_mut(), host_weights.as_ref()) {
                    ws.push(HostWeight {
                        host: h.host.clone(),
                        nodename: h.nodename.clone(),
                        weight: hw[i],
                        explain: None,
                    });
                }
                allowed.push(HostRef {
                    host: h.host.clone(),
                    nodename: h.nodename.clone(),
                })
            }
            Some(r) => rejected.push(rejected_host(&state, None, &h, r)),
        }
    }
    Ok(
        callout_ok(&state, kept).json(FilterAnswer::Named(FilterResponse {
            request_id: rid,
            profile: profile.name.clone(),
            role: out.role,
            degraded,
            degraded_reasons: out.degraded_reasons,
            allowed,
            rejected,
            weights,
        })),
    )
}

/// A rejected host of a filter answer, counted by the plugin that rejected it.
fn rejected_host(
    state: &AppState,
    index: Option<usize>,
    h: &crate::model::Host,
    r: scoring::Rejection,
) -> RejectedHost {
    state
        .metrics
        .rejections
        .with_label_values(&[r.plugin])
        .inc();
    RejectedHost {
        index,
        host: h.host.clone(),
        nodename: h.nodename.clone(),
        plugin: r.plugin.to_string(),
        reason: r.reason,
    }
}

#[derive(Debug, serde::Deserialize)]
pub struct WeighQuery {
    #[serde(default)]
    explain: bool,
}

/// The Nova callout's weigher: a raw weight per candidate host under the request's profile
/// (reader role; Nova normalises). `?explain=true` adds each plugin's score.
#[utoipa::path(post, path = "/v1/weigh", request_body = CalloutRequest,
    params(("explain" = Option<bool>, Query, description = "add each plugin's score and weight per host"),
           ("X-Steward-Host-Cache" = Option<String>, Header, description = "present (any value): keep the hosts sent in full for reference by later requests (docs/callout.md, \"Host references\")")),
    responses((status = 200, body = WeighResponse,
               headers(("X-Steward-Host-Cache" = u64, description = "this steward keeps host entries (this many): the hosts sent in full may be named by reference from now on"))),
              (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 409, body = ErrorBody, description = "steward.unknown_host_refs: a host reference this steward does not hold; send those hosts in full"),
              (status = 413, body = ErrorBody)))]
pub async fn weigh(
    req: HttpRequest,
    payload: web::Payload,
    query: web::Query<WeighQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let Callout {
        sreq,
        profile,
        kept,
        view,
        now,
    } = callout(&state, &req, payload).await?;
    let out = scoring::weigh(&sreq, profile, &view, &state.opts, now, query.explain);
    let mut explain = out.explain.map(Vec::into_iter);
    let weights: Vec<HostWeight> = sreq
        .hosts
        .into_iter()
        .zip(out.weights)
        .map(|(h, weight)| HostWeight {
            host: h.host.clone(),
            nodename: h.nodename.clone(),
            weight,
            explain: explain.as_mut().and_then(Iterator::next).map(|parts| {
                parts
                    .into_iter()
                    .map(|p| {
                        (
                            p.plugin.to_string(),
                            ExplainPart {
                                score: p.score,
                                weight: p.weight,
                                note: p.note,
                            },
                        )
                    })
                    .collect::<BTreeMap<_, _>>()
            }),
        })
        .collect();
    let degraded = !out.degraded_reasons.is_empty();
    record(&state, "weigh", weights.len(), degraded);
    let rid = request_id(&req);
    tracing::info!(
        request_id = %rid, instance = %sreq.instance.uuid, operation = sreq.operation.as_str(),
        profile = %profile.name, hosts = weights.len(), degraded, "weigh"
    );
    Ok(callout_ok(&state, kept).json(WeighResponse {
        request_id: rid,
        profile: profile.name.clone(),
        role: out.role,
        degraded,
        degraded_reasons: out.degraded_reasons,
        weights,
    }))
}

/// The scheduling profiles: their plugins, weights and parameters.
#[utoipa::path(get, path = "/v1/profiles", responses((status = 200, body = ProfileList)))]
pub async fn profiles(state: web::Data<AppState>) -> HttpResponse {
    let set = &state.profiles;
    let profiles = set
        .profiles
        .values()
        .map(|p| ProfileInfo {
            name: p.name.clone(),
            description: p.description.clone(),
            default: p.name == set.default,
            plugins: p
                .plugins
                .iter()
                .map(|wp| PluginInfo {
                    name: wp.plugin.name().to_string(),
                    weight: wp.weight,
                    params: wp.params.clone(),
                })
                .collect(),
        })
        .collect();
    HttpResponse::Ok().json(ProfileList { profiles })
}

/// (observed_at, age, fresh) of a measurement; nothing for a subject never measured.
fn age_of(state: &AppState, observed_at: f64, now: f64) -> (Option<f64>, Option<f64>, bool) {
    if observed_at <= 0.0 {
        return (None, None, false);
    }
    let age = (now - observed_at).max(0.0);
    (
        Some(observed_at),
        Some(age),
        age <= state.opts.max_age_seconds,
    )
}

fn host_info(state: &AppState, name: &str, f: &HostFacts, now: f64) -> HostInfo {
    let (observed_at, age_seconds, fresh) = age_of(state, f.observed_at, now);
    HostInfo {
        host: name.to_string(),
        az: f.az.clone(),
        steal: f.steal,
        load5: f.load5,
        cpu_use: f.cpu_use,
        vcpus: f.vcpus,
        observed_at,
        age_seconds,
        fresh,
        source: f.source.as_str().into(),
    }
}

fn weekly_info(p: &WeeklyProfile) -> WeeklyInfo {
    let peak = (0..p.values.len())
        .filter_map(|h| p.at(h).map(|v| (h, v)))
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(h, _)| hour_of_week_name(h));
    WeeklyInfo {
        hours: (0..p.values.len()).map(|h| p.at(h)).collect(),
        weeks: p.weeks,
        computed_at: p.computed_at,
        peak,
    }
}

/// Every hypervisor steward knows, with its AZ, steal and the age of its data.
#[utoipa::path(get, path = "/v1/hosts", responses((status = 200, body = HostList)))]
pub async fn hosts(state: web::Data<AppState>) -> HttpResponse {
    let view = state.cluster.snapshot();
    let now = unix_now();
    let mut hosts: Vec<HostInfo> = view
        .hosts
        .iter()
        .map(|(name, f)| host_info(&state, name, f, now))
        .collect();
    hosts.sort_by(|a, b| a.host.cmp(&b.host));
    HttpResponse::Ok().json(HostList { hosts })
}

/// One hypervisor: what steward knows of it, from where, how old, and its weekly steal profile.
#[utoipa::path(get, path = "/v1/hosts/{name}", params(("name" = String, Path, description = "hypervisor host name")),
    responses((status = 200, body = HostDetail), (status = 404, body = ErrorBody)))]
pub async fn host(
    name: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let view = state.cluster.snapshot();
    let facts = view.hosts.get(name.as_str()).ok_or_else(|| {
        ApiError::not_found(format!(
            "steward knows no hypervisor {:?}; GET /v1/hosts lists those it knows (from telemetry and Nova)",
            name.as_str()
        ))
    })?;
    let mut vms: Vec<String> = view
        .vms
        .iter()
        .filter(|(_, v)| v.host.as_deref() == Some(name.as_str()))
        .map(|(u, _)| u.to_string())
        .collect();
    vms.sort();
    let mut roles = BTreeMap::new();
    for u in &vms {
        if let Some(r) = view.vms[u].role.clone() {
            *roles.entry(r).or_insert(0) += 1;
        }
    }
    Ok(HttpResponse::Ok().json(HostDetail {
        host: host_info(&state, &name, facts, unix_now()),
        roles,
        vms,
        steal_profile: view.weekly.host_steal.get(name.as_str()).map(weekly_info),
    }))
}

/// One VM: host, AZ, role, project, flavor and telemetry, with their age. A project-scoped
/// caller sees its own project's VMs only (another's is 404, as in Nova) and never the host;
/// the AZ is the VM's, else its host's.
#[utoipa::path(get, path = "/v1/vms/{uuid}", params(("uuid" = String, Path, description = "Nova instance uuid")),
    responses((status = 200, body = VmInfo), (status = 404, body = ErrorBody)))]
pub async fn vm(
    uuid: web::Path<String>,
    caller: super::auth::Caller,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let view = state.cluster.snapshot();
    let v = view
        .vms
        .get(uuid.as_str())
        .filter(|v| caller.sees_project(v.project_id.as_deref()))
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "steward knows no VM {uuid} you may see; it learns VMs from Nova's server list and from telemetry"
            ))
        })?;
    let (observed_at, age_seconds, fresh) = age_of(&state, v.observed_at, unix_now());
    let az = v.az.clone().or_else(|| {
        v.host
            .as_deref()
            .and_then(|h| view.host_az(h))
            .map(str::to_string)
    });
    Ok(HttpResponse::Ok().json(VmInfo {
        uuid: uuid.into_inner(),
        host: v.host.clone().filter(|_| caller.sees_hosts()),
        az,
        role: v.role.clone(),
        project_id: v.project_id.clone(),
        flavor: v.flavor.clone(),
        steal: v.steal,
        load5: v.load5,
        vcpus: v.vcpus,
        observed_at,
        age_seconds,
        fresh,
        source: v.source.as_str().into(),
        role_demand_profile: v
            .role
            .as_ref()
            .and_then(|r| view.weekly.role_demand.get(r))
            .map(weekly_info),
    }))
}

/// Push steal and load samples of hosts and VMs (telemetry role); stored before they are used.
#[utoipa::path(post, path = "/v1/telemetry", request_body = TelemetryPush,
    responses((status = 202, body = TelemetryAccepted), (status = 400, body = ErrorBody),
              (status = 503, body = ErrorBody)))]
pub async fn push_telemetry(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let body = read_body(&req, payload, state.max_body_bytes).await?;
    let now = unix_now();
    // Parsing and merging run on the telemetry lane, below the callouts' priority.
    let lane = &state.telemetry_lane;
    let (hosts, vms) = lane.run(move || parse_telemetry(&body, now)).await?;
    // Durable first: what was accepted survives a restart.
    let push = Arc::new(Push { hosts, vms, now });
    state
        .telemetry_writer
        .save(push.clone())
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "cannot save pushed telemetry");
            ApiError::unavailable(format!(
                "steward's database refused the samples ({e}); nothing was applied, push again"
            ))
        })?;
    let merged = push.clone();
    let (n_hosts, n_vms) = state
        .cluster
        .update_tracked(lane, move |view| {
            let changes = telemetry::merge_tracked(view, &merged.hosts, &merged.vms);
            ((view.hosts.len(), view.vms.len()), changes)
        })
        .await;
    let (hosts, vms) = (&push.hosts, &push.vms);
    let m = &state.metrics;
    m.telemetry_samples
        .with_label_values(&["host"])
        .inc_by(hosts.len() as u64);
    m.telemetry_samples
        .with_label_values(&["vm"])
        .inc_by(vms.len() as u64);
    m.cluster_hosts.set(n_hosts as i64);
    m.cluster_vms.set(n_vms as i64);
    Ok(HttpResponse::Accepted().json(TelemetryAccepted {
        accepted: Accepted {
            hosts: hosts.len(),
            vms: vms.len(),
        },
    }))
}

/// Liveness and readiness: 200 once steward serves (the only route without a token), with any
/// standing problem of its jobs (status `degraded`: steward still answers).
#[utoipa::path(get, path = "/healthz", security(()), responses((status = 200, body = Health)))]
pub async fn healthz(state: web::Data<AppState>) -> HttpResponse {
    let problems: Vec<HealthProblem> = state
        .metrics
        .problems
        .list()
        .into_iter()
        .map(|(job, detail)| HealthProblem { job, detail })
        .collect();
    HttpResponse::Ok().json(Health {
        status: if problems.is_empty() {
            "ok"
        } else {
            "degraded"
        }
        .into(),
        version: env!("CARGO_PKG_VERSION").into(),
        problems,
    })
}

/// Steward's own Prometheus metrics (reader role; see docs/operations.md).
#[utoipa::path(get, path = "/metrics", responses((status = 200, description = "Prometheus text format")))]
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(state.metrics.render())
}

/// This OpenAPI document (docs/api.md is generated from it).
#[utoipa::path(get, path = "/openapi.json", responses((status = 200, description = "this document")))]
pub async fn openapi() -> HttpResponse {
    HttpResponse::Ok().json(super::openapi::document())
}

#[derive(Debug, serde::Deserialize)]
pub struct ListQuery {
    limit: Option<i64>,
    state: Option<String>,
}

pub(super) fn journal_error(e: crate::store::journal::JournalError) -> ApiError {
    use crate::store::journal::JournalError;
    match e {
        JournalError::NotFound(m) => ApiError::not_found(m),
        JournalError::Conflict(m) | JournalError::Fenced(m) => ApiError::conflict(m),
        JournalError::Store(e) => {
            tracing::error!(error = %e, "rebalance journal");
            ApiError::unavailable(format!(
                "steward's database did not answer ({e}); try again"
            ))
        }
    }
}

pub(super) fn limit_of(q: &ListQuery, default: i64) -> Result<i64, ApiError> {
    match q.limit {
        None => Ok(default),
        Some(n) if (1..=10_000).contains(&n) => Ok(n),
        Some(n) => Err(ApiError::bad_request(
            format!("limit {n} is out of range; ask for 1 to 10000"),
            Some("limit".into()),
        )),
    }
}

#[utoipa::path(get, path = "/v1/rebalance/plans",
    params(("limit" = Option<i64>, Query, minimum = 1, maximum = 10000, description = "newest plans first, at most this many (default 50)")),
    responses((status = 200, body = RebalancePlanList), (status = 401, body = ErrorBody)))]
pub async fn rebalance_plans(
    query: web::Query<ListQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let limit = limit_of(&query, 50)?;
    let plans = state.store.plans(limit).await.map_err(journal_error)?;
    Ok(HttpResponse::Ok().json(RebalancePlanList {
        plans: plans.into_iter().map(Into::into).collect(),
    }))
}

async fn decide(
    req: HttpRequest,
    id: web::Path<String>,
    state: web::Data<AppState>,
    approve: bool,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    if uuid::Uuid::parse_str(&id).is_err() {
        return Err(ApiError::not_found(format!(
            "{id:?} is not a plan id; GET /v1/rebalance/plans lists them"
        )));
    }
    let who = format!("admin (request {})", request_id(&req));
    let plan = state
        .store
        .decide_plan(&id, approve, &who, unix_now())
        .await
        .map_err(journal_error)?;
    tracing::info!(plan = %id, approve, by = %who, "rebalance plan decided");
    Ok(HttpResponse::Ok().json(RebalancePlanDto::from(plan)))
}

#[utoipa::path(post, path = "/v1/rebalance/plans/{id}/approve",
    params(("id" = String, Path, description = "the plan's id")),
    responses((status = 200, body = RebalancePlanDto), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn approve_plan(
    req: HttpRequest,
    id: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    decide(req, id, state, true).await
}

#[utoipa::path(post, path = "/v1/rebalance/plans/{id}/cancel",
    params(("id" = String, Path, description = "the plan's id")),
    responses((status = 200, body = RebalancePlanDto), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn cancel_plan(
    req: HttpRequest,
    id: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    decide(req, id, state, false).await
}

#[utoipa::path(get, path = "/v1/migrations",
    params(("state" = Option<String>, Query, description = "only actions in this state (planned, approved, draining, migrating, rejoining, done, failed, aborted)"),
           ("limit" = Option<i64>, Query, minimum = 1, maximum = 10000, description = "at most this many, oldest first (default 500)")),
    responses((status = 200, body = MigrationList), (status = 400, body = ErrorBody)))]
pub async fn migrations(
    query: web::Query<ListQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    use crate::store::journal::ActionState;
    let limit = limit_of(&query, 500)?;
    let states = match query.state.as_deref() {
        None => Vec::new(),
        Some(s) => vec![ActionState::parse(s).ok_or_else(|| {
            ApiError::bad_request(
                format!("state {s:?} is not a rebalance state; use planned, approved, draining, migrating, rejoining, done, failed or aborted"),
                Some("state".into()),
            )
        })?],
    };
    let actions = state
        .store
        .actions(&states, limit)
        .await
        .map_err(journal_error)?;
    Ok(HttpResponse::Ok().json(MigrationList {
        migrations: actions.into_iter().map(Into::into).collect(),
    }))
}
