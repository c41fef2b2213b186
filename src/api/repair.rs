//! The inventory repair through the API, admin only: `POST /v1/repair/plans` (what
//! `steward repair plan` prints, as JSON), `POST /v1/repair/runs` (starts an apply in the
//! background, 202 with its run id) and `GET /v1/repair/runs/{id}` (progress and per-node
//! result from the journal) and `POST /v1/repair/runs/{id}/rollback` (puts back what the run
//! wrote, as `steward repair rollback`). The same core as the CLI; no policy here.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Value};

use super::errors::ApiError;
use super::routes::read_body;
use super::schema::parse_json;
use super::AppState;
use crate::repair::apply::{self, ApplyOptions};
use crate::repair::facts::{cell_names, gather};
use crate::repair::plan::{self, Plan, Selection};
use crate::repair::{Clients, RepairError};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/v1/repair/plans", web::post().to(create_plan))
        .route("/v1/repair/runs", web::post().to(create_run))
        .route("/v1/repair/runs/{id}", web::get().to(get_run))
        .route(
            "/v1/repair/runs/{id}/rollback",
            web::post().to(rollback_run),
        );
}

/// Which nodes: as the CLI's flags.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct SelectionBody {
    #[serde(default)]
    nodes: Vec<String>,
    #[serde(default)]
    resource_class: Option<String>,
    #[serde(default)]
    cell: Option<String>,
    #[serde(default)]
    all: bool,
}

impl SelectionBody {
    fn selection(&self) -> Selection {
        Selection {
            nodes: self.nodes.clone(),
            resource_class: self.resource_class.clone(),
            cell: self.cell.clone(),
        }
    }
}

fn api_error(e: RepairError) -> ApiError {
    match e {
        RepairError::Input(m) => ApiError::bad_request(m, None),
        RepairError::NovaDb(crate::novadb::NovaDbError::UnknownCell(c, known)) => {
            ApiError::bad_request(format!("no cell {c}; cells: {known}"), Some("cell".into()))
        }
        other => ApiError::unavailable(other.to_string()),
    }
}

async fn selection(
    state: &AppState,
    req: &HttpRequest,
    payload: web::Payload,
) -> Result<SelectionBody, ApiError> {
    let body = read_body(req, payload, state.max_body_bytes).await?;
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(SelectionBody::default());
    }
    parse_json(&body)
}

async fn planned(state: &AppState, sel: &SelectionBody) -> Result<(Clients, Plan), ApiError> {
    let clients = crate::repair::connect(&state.settings, sel.cell.as_deref())
        .await
        .map_err(api_error)?;
    let s = sel.selection();
    match gather(&clients, &s).await {
        Ok(facts) => {
            let p = plan::plan(&facts, &s, &cell_names(&clients.db));
            Ok((clients, p))
        }
        Err(e) => {
            clients.db.close().await;
            Err(api_error(e))
        }
    }
}

async fn create_plan(
    req: HttpRequest,
    state: web::Data<AppState>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let sel = selection(&state, &req, payload).await?;
    let (clients, p) = planned(&state, &sel).await?;
    clients.db.close().await;
    Ok(HttpResponse::Ok().json(p))
}

async fn create_run(
    req: HttpRequest,
    state: web::Data<AppState>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let sel = selection(&state, &req, payload).await?;
    let selected = !sel.nodes.is_empty() || sel.resource_class.is_some() || sel.cell.is_some();
    if selected == sel.all {
        return Err(ApiError::bad_request(
            "a run needs a selection: nodes, resource_class, cell, or all = true (not both)",
            Some("all".into()),
        ));
    }
    let (clients, p) = planned(&state, &sel).await?;
    let unfinished = state
        .store
        .repair_unfinished_run()
        .await
        .map_err(|e| ApiError::unavailable(e.to_string()))?;
    if p.is_empty() && unfinished.is_none() {
        clients.db.close().await;
        return Ok(HttpResponse::Ok().json(json!({"nothing_to_do": true, "nodes": p.nodes.len()})));
    }
    let selection_text = serde_json::to_string(&sel.selection()).unwrap_or_default();
    let (run_id, resumed) = apply::begin(&state.store, &selection_text)
        .await
        .map_err(api_error)?;
    let options = ApplyOptions {
        max_attempts: state.settings.repair.max_attempts,
        progress: false,
        metrics: Some(state.metrics.clone()),
    };
    let store = state.store.clone();
    let id = run_id.clone();
    let nodes = p.nodes.len();
    actix_web::rt::spawn(async move {
        let db = clients.db.clone();
        if let Err(e) =
            apply::apply_run(clients, store.clone(), &p, id.clone(), resumed, &options).await
        {
            tracing::error!(run = %id, error = %e, "repair run stopped");
            let _ = store
                .repair_run_finish(
                    &id,
                    "failed",
                    crate::unix_now(),
                    &json!({"error": e.to_string()}).to_string(),
                )
                .await;
        }
        db.close().await;
    });
    Ok(HttpResponse::Accepted()
        .insert_header(("Location", format!("/v1/repair/runs/{run_id}")))
        .json(json!({"run_id": run_id, "resumed": resumed, "status": "running", "nodes": nodes})))
}

async fn get_run(
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    let unavailable = |e: crate::store::StoreError| ApiError::unavailable(e.to_string());
    let Some(run) = state.store.repair_run(&id).await.map_err(unavailable)? else {
        return Err(ApiError::not_found(format!(
            "no repair run {id}; POST /v1/repair/runs starts one"
        )));
    };
    let journal = state.store.repair_journal(&id).await.map_err(unavailable)?;
    let mut writes = std::collections::BTreeMap::<String, usize>::new();
    let mut nodes_touched = std::collections::BTreeSet::new();
    for e in &journal {
        *writes.entry(e.state.clone()).or_default() += 1;
        if e.node != "-" {
            nodes_touched.insert(e.node.clone());
        }
    }
    let summary: Value = run
        .summary
        .as_deref()
        .and_then(|s| serde_json::from_str(s).ok())
        .unwrap_or(Value::Null);
    Ok(HttpResponse::Ok().json(json!({
        "id": run.id,
        "status": run.status,
        "started_at": run.started_at,
        "finished_at": run.finished_at,
        "writes": writes,
        "nodes_touched": nodes_touched.len(),
        "result": summary,
    })))
}

/// `POST /v1/repair/runs/{id}/rollback`: what `steward repair rollback` does, for the
/// `openstack steward repair rollback` command. Inventories and allocations only with
/// `{"placement": true}`. Refused while the run is still running.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RollbackBody {
    #[serde(default)]
    placement: bool,
}

async fn rollback_run(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    let body = read_body(&req, payload, state.max_body_bytes).await?;
    let opts: RollbackBody = if body.iter().all(u8::is_ascii_whitespace) {
        RollbackBody::default()
    } else {
        parse_json(&body)?
    };
    let unavailable = |e: crate::store::StoreError| ApiError::unavailable(e.to_string());
    let Some(run) = state.store.repair_run(&id).await.map_err(unavailable)? else {
        return Err(ApiError::not_found(format!(
            "no repair run {id}; GET /v1/repair/runs/{{id}} of the id apply answered"
        )));
    };
    if run.status == "running" {
        return Err(ApiError::conflict(format!(
            "repair run {id} is still running; roll it back once it has ended"
        )));
    }
    let clients = crate::repair::connect(&state.settings, None)
        .await
        .map_err(api_error)?;
    let result = apply::rollback(&clients, &state.store, &id, opts.placement).await;
    clients.db.close().await;
    let items = result.map_err(api_error)?;
    let failed = items.iter().filter(|i| i.result == "failed").count();
    Ok(HttpResponse::Ok().json(json!({
        "run_id": id,
        "status": if failed == 0 { "rolled_back" } else { "failed" },
        "failed": failed,
        "items": items,
    })))
}
