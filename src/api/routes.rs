//! Route handlers: parse, call the core or an adapter, render. No policy lives here.

use std::collections::BTreeMap;

use actix_web::{web, HttpMessage, HttpRequest, HttpResponse};
use futures_util::StreamExt;

use super::errors::ApiError;
use super::schema::*;
use super::{AppState, RequestId};
use crate::model::{hour_of_week_name, HostFacts, SchedulingRequest, WeeklyProfile};
use crate::scoring::{self, Profile};
use crate::telemetry;
use crate::unix_now;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/healthz", web::get().to(healthz))
        .route("/metrics", web::get().to(metrics))
        .route("/openapi.json", web::get().to(openapi))
        .route("/v1/filter", web::post().to(filter))
        .route("/v1/weigh", web::post().to(weigh))
        .route("/v1/profiles", web::get().to(profiles))
        .route("/v1/hosts", web::get().to(hosts))
        .route("/v1/hosts/{name}", web::get().to(host))
        .route("/v1/vms/{uuid}", web::get().to(vm))
        .route("/v1/telemetry", web::post().to(push_telemetry));
}

fn request_id(req: &HttpRequest) -> String {
    req.extensions()
        .get::<RequestId>()
        .map(|r| r.0.clone())
        .unwrap_or_default()
}

/// Read the body up to the configured limit, answering 413 past it without reading the rest.
pub(super) async fn read_body(
    mut payload: web::Payload,
    limit: usize,
) -> Result<web::Bytes, ApiError> {
    let too_large = || {
        ApiError::too_large(format!(
            "the request body is larger than [server] max_body_bytes = {limit}"
        ))
    };
    let mut body = web::BytesMut::new();
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

/// Parse a callout and pick its profile.
async fn callout(
    state: &AppState,
    payload: web::Payload,
) -> Result<(SchedulingRequest, &Profile), ApiError> {
    let body = read_body(payload, state.max_body_bytes).await?;
    let req: CalloutRequest = parse_json(&body)?;
    let req = req.into_model(state.max_hosts)?;
    let profile = state
        .profiles
        .select(&req.instance.flavor.extra_specs, &req.instance.hints)
        .map_err(ApiError::unknown_profile)?;
    Ok((req, profile))
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
}

#[utoipa::path(post, path = "/v1/filter", request_body = CalloutRequest,
    params(("weigh" = Option<bool>, Query, description = "also answer the allowed hosts' weights (one round trip per scheduling request)")),
    responses((status = 200, body = FilterResponse), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 413, body = ErrorBody)))]
pub async fn filter(
    req: HttpRequest,
    payload: web::Payload,
    query: web::Query<FilterQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (sreq, profile) = callout(&state, payload).await?;
    let view = state.cluster.snapshot();
    let now = unix_now();
    let (out, host_weights) = if query.weigh {
        let (out, w) = scoring::filter_and_weigh(&sreq, profile, &view, &state.opts, now);
        (out, Some(w))
    } else {
        (
            scoring::filter(&sreq, profile, &view, &state.opts, now),
            None,
        )
    };
    let mut allowed = Vec::with_capacity(sreq.hosts.len());
    let mut rejected = Vec::new();
    let mut weights = host_weights
        .as_ref()
        .map(|_| Vec::with_capacity(sreq.hosts.len()));
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
                    host: h.host,
                    nodename: h.nodename,
                })
            }
            Some(r) => {
                state
                    .metrics
                    .rejections
                    .with_label_values(&[r.plugin])
                    .inc();
                rejected.push(RejectedHost {
                    host: h.host,
                    nodename: h.nodename,
                    plugin: r.plugin.to_string(),
                    reason: r.reason,
                })
            }
        }
    }
    let degraded = !out.degraded_reasons.is_empty();
    record(&state, "filter", allowed.len() + rejected.len(), degraded);
    let rid = request_id(&req);
    tracing::info!(
        request_id = %rid, instance = %sreq.instance.uuid, operation = sreq.operation.as_str(),
        profile = %profile.name, allowed = allowed.len(), rejected = rejected.len(), degraded,
        "filter"
    );
    Ok(HttpResponse::Ok().json(FilterResponse {
        request_id: rid,
        profile: profile.name.clone(),
        role: out.role,
        degraded,
        degraded_reasons: out.degraded_reasons,
        allowed,
        rejected,
        weights,
    }))
}

#[derive(Debug, serde::Deserialize)]
pub struct WeighQuery {
    #[serde(default)]
    explain: bool,
}

#[utoipa::path(post, path = "/v1/weigh", request_body = CalloutRequest,
    params(("explain" = Option<bool>, Query, description = "add each plugin's score and weight per host")),
    responses((status = 200, body = WeighResponse), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 413, body = ErrorBody)))]
pub async fn weigh(
    req: HttpRequest,
    payload: web::Payload,
    query: web::Query<WeighQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (sreq, profile) = callout(&state, payload).await?;
    let view = state.cluster.snapshot();
    let out = scoring::weigh(
        &sreq,
        profile,
        &view,
        &state.opts,
        unix_now(),
        query.explain,
    );
    let mut explain = out.explain.map(Vec::into_iter);
    let weights: Vec<HostWeight> = sreq
        .hosts
        .into_iter()
        .zip(out.weights)
        .map(|(h, weight)| HostWeight {
            host: h.host,
            nodename: h.nodename,
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
    Ok(HttpResponse::Ok().json(WeighResponse {
        request_id: rid,
        profile: profile.name.clone(),
        role: out.role,
        degraded,
        degraded_reasons: out.degraded_reasons,
        weights,
    }))
}

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
        .map(|(u, _)| u.clone())
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

#[utoipa::path(get, path = "/v1/vms/{uuid}", params(("uuid" = String, Path, description = "Nova instance uuid")),
    responses((status = 200, body = VmInfo), (status = 404, body = ErrorBody)))]
pub async fn vm(
    uuid: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let view = state.cluster.snapshot();
    let v = view.vms.get(uuid.as_str()).ok_or_else(|| {
        ApiError::not_found(format!(
            "steward knows no VM {uuid}; it learns VMs from Nova's server list and from telemetry"
        ))
    })?;
    let (observed_at, age_seconds, fresh) = age_of(&state, v.observed_at, unix_now());
    Ok(HttpResponse::Ok().json(VmInfo {
        uuid: uuid.into_inner(),
        host: v.host.clone(),
        az: v.az.clone(),
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

#[utoipa::path(post, path = "/v1/telemetry", request_body = TelemetryPush,
    responses((status = 202, body = TelemetryAccepted), (status = 400, body = ErrorBody),
              (status = 503, body = ErrorBody)))]
pub async fn push_telemetry(
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let body = read_body(payload, state.max_body_bytes).await?;
    let push: TelemetryPush = parse_json(&body)?;
    let now = unix_now();
    let (hosts, vms) = push.into_samples(now)?;
    // Durable first: what was accepted survives a restart.
    state
        .store
        .save_telemetry(&hosts, &vms, now)
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "cannot save pushed telemetry");
            ApiError::unavailable(format!(
                "steward's database refused the samples ({e}); nothing was applied, push again"
            ))
        })?;
    let (n_hosts, n_vms) = state
        .cluster
        .update(|view| {
            telemetry::merge(view, &hosts, &vms);
            (view.hosts.len(), view.vms.len())
        })
        .await;
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

#[utoipa::path(get, path = "/healthz", responses((status = 200, body = Health)))]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(Health {
        status: "ok".into(),
        version: env!("CARGO_PKG_VERSION").into(),
    })
}

#[utoipa::path(get, path = "/metrics", responses((status = 200, description = "Prometheus text format")))]
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(state.metrics.render())
}

#[utoipa::path(get, path = "/openapi.json", responses((status = 200, description = "this document")))]
pub async fn openapi() -> HttpResponse {
    HttpResponse::Ok().json(super::openapi::document())
}
