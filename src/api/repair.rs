//! The inventory repair through the API, admin only: `POST /v1/repair/plans` (what
//! `steward repair plan` prints, as JSON), `POST /v1/repair/runs` (starts an apply in the
//! background, 202 with its run id) and `GET /v1/repair/runs/{id}` (progress and per-node
//! result from the journal) and `POST /v1/repair/runs/{id}/rollback` (puts back what the run
//! wrote, as `steward repair rollback`). The same core as the CLI; no policy here.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Serialize;
use serde_json::json;

use super::errors::ApiError;
use super::routes::read_body;
use super::schema::{
    parse_repair_rollback, parse_repair_run_selection, parse_repair_selection, ErrorBody,
    RepairNothingToDo, RepairPlanDto, RepairRollbackBody, RepairRunDto, RepairRunStarted,
    RepairSelection,
};
use super::AppState;
use crate::repair::apply::{self, ApplyOptions};
use crate::repair::facts::{cell_names, gather};
use crate::repair::plan::{self, Plan, Selection};
use crate::repair::{Clients, RepairError};

fn selection_of(body: &RepairSelection) -> Selection {
    Selection {
        nodes: body.nodes.clone(),
        resource_class: body.resource_class.clone(),
        cell: body.cell.clone(),
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
) -> Result<RepairSelection, ApiError> {
    let body = read_body(req, payload, state.max_body_bytes).await?;
    parse_repair_selection(&body)
}

async fn planned(state: &AppState, sel: &RepairSelection) -> Result<(Clients, Plan), ApiError> {
    let clients = crate::repair::connect(&state.settings, sel.cell.as_deref())
        .await
        .map_err(api_error)?;
    let s = selection_of(sel);
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

/// Plan the inventory repair of the selected Ironic nodes: per node what is wrong and the
/// ordered steps that fix it (what `steward repair plan -f json` prints). Changes nothing. Admin.
#[utoipa::path(post, path = "/v1/repair/plans", request_body(content = RepairSelection, description = "which nodes; an empty body plans every node"),
    responses((status = 200, body = RepairPlanDto), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 503, body = ErrorBody, description = "Ironic, Placement or a Nova database cannot be reached")))]
pub async fn create_plan(
    req: HttpRequest,
    state: web::Data<AppState>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let sel = selection(&state, &req, payload).await?;
    let (clients, p) = planned(&state, &sel).await?;
    clients.db.close().await;
    Ok(HttpResponse::Ok().json(p))
}

/// Apply the inventory repair to the selected nodes in the background (or finish an
/// interrupted run under its id); follow it with `GET /v1/repair/runs/{id}`. Admin.
#[utoipa::path(post, path = "/v1/repair/runs", request_body = RepairSelection,
    responses((status = 202, body = RepairRunStarted, headers(("Location" = String, description = "the run: /v1/repair/runs/{id}"))),
              (status = 200, body = RepairNothingToDo),
              (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody),
              (status = 503, body = ErrorBody, description = "Ironic, Placement, a Nova database or the journal cannot be reached")))]
pub async fn create_run(
    req: HttpRequest,
    state: web::Data<AppState>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let body = read_body(&req, payload, state.max_body_bytes).await?;
    let sel = parse_repair_run_selection(&body)?;
    let (clients, p) = planned(&state, &sel).await?;
    let unfinished = state
        .store
        .repair_unfinished_run()
        .await
        .map_err(|e| ApiError::unavailable(e.to_string()))?;
    if p.is_empty() && unfinished.is_none() {
        clients.db.close().await;
        return Ok(HttpResponse::Ok().json(RepairNothingToDo {
            nothing_to_do: true,
            nodes: p.nodes.len(),
        }));
    }
    let selection_text = serde_json::to_string(&selection_of(&sel)).unwrap_or_default();
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
        .json(RepairRunStarted {
            run_id,
            resumed,
            status: "running".into(),
            nodes,
        }))
}

/// A repair run's progress (journaled writes) and, once finished, its per-node result. Admin.
#[utoipa::path(get, path = "/v1/repair/runs/{id}",
    params(("id" = String, Path, description = "the run id (`repair-<uuid>`)")),
    responses((status = 200, body = RepairRunDto), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 503, body = ErrorBody)))]
pub async fn get_run(
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    let unavailable = |e: crate::store::StoreError| ApiError::unavailable(e.to_string());
    let Some(run) = crate::repair::status::run_state(&state.store, &id)
        .await
        .map_err(unavailable)?
    else {
        return Err(ApiError::not_found(format!(
            "no repair run {id}; POST /v1/repair/runs starts one"
        )));
    };
    Ok(HttpResponse::Ok().json(RepairRunDto {
        id: run.id,
        status: run.status,
        started_at: run.started_at,
        finished_at: run.finished_at,
        writes: run.writes,
        nodes_touched: run.nodes_touched,
        result: run.result,
    }))
}

/// One object a rollback put back (or could not).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RepairRollbackItem {
    pub object: String,
    pub action: String,
    /// The node the write belonged to (`-`: run-wide, a class or a flavor).
    pub node: String,
    /// `restored`, `restored_specs_only`, `unchanged`, `kept` (outside the rollback's scope, or
    /// Placement without `placement`) or `failed`.
    pub result: String,
    /// Why an object was kept or failed; on a restored flavor, a note when its rows in
    /// `nova_api.flavor_extra_specs` keep new timestamps (no grant, or an older journal).
    pub message: Option<String>,
}

/// The answer of a rollback: `rolled_back`, or `failed` with the count of objects that failed.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RepairRollbackDto {
    pub run_id: String,
    pub status: String,
    pub failed: usize,
    pub items: Vec<RepairRollbackItem>,
}

#[utoipa::path(post, path = "/v1/repair/runs/{id}/rollback",
    params(("id" = String, Path, description = "the run id (`repair-<uuid>`)")),
    request_body(content = RepairRollbackBody, description = "`{}` or `{\"placement\": true}`"),
    responses((status = 200, body = RepairRollbackDto), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody, description = "the run is still running"),
              (status = 503, body = ErrorBody)))]
pub async fn rollback_run(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    let body = read_body(&req, payload, state.max_body_bytes).await?;
    let opts = parse_repair_rollback(&body)?;
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
    let options = apply::RollbackOptions {
        placement: opts.placement,
        flavors_only: opts.flavors_only,
        scope: Selection {
            nodes: opts.nodes.clone(),
            resource_class: opts.resource_class.clone(),
            cell: opts.cell.clone(),
        },
    };
    let result = apply::rollback(&clients, &state.store, &id, &options).await;
    clients.db.close().await;
    let items = result.map_err(api_error)?;
    let failed = items.iter().filter(|i| i.result == "failed").count();
    Ok(HttpResponse::Ok().json(RepairRollbackDto {
        run_id: id,
        status: if failed == 0 { "rolled_back" } else { "failed" }.into(),
        failed,
        items: items
            .into_iter()
            .map(|i| RepairRollbackItem {
                object: i.object,
                action: i.action,
                node: i.node,
                result: i.result,
                message: i.message,
            })
            .collect(),
    }))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::repair::plan::{Copy, NodePlan, NodeStatus, Step};

    fn every_step() -> Vec<Step> {
        let specs: BTreeMap<String, String> = [("resources:CUSTOM_GOLD".into(), "1".into())].into();
        vec![
            Step::EnsureResourceClass {
                class: "CUSTOM_GOLD".into(),
            },
            Step::SetFlavorExtraSpecs {
                flavor_id: "7".into(),
                flavor_name: "bm.gold".into(),
                specs: specs.clone(),
            },
            Step::RewriteInstanceFlavor {
                instance: "i-1".into(),
                cell: "c-1".into(),
                copies: vec![Copy::Cur, Copy::Old, Copy::New, Copy::RequestSpec],
                specs: specs.clone(),
            },
            Step::RewriteRequestSpec {
                instance: "i-1".into(),
                specs,
            },
            Step::AddCustomInventory {
                provider: "n-1".into(),
                class: "CUSTOM_GOLD".into(),
            },
            Step::ShrinkAllocation {
                consumer: "m-1".into(),
                provider: "n-1".into(),
                class: "CUSTOM_GOLD".into(),
                from: [("VCPU".into(), 64), ("CUSTOM_GOLD".into(), 1)].into(),
            },
            Step::SetCustomOnlyInventory {
                provider: "n-1".into(),
                class: "CUSTOM_GOLD".into(),
            },
            Step::CheckUsage {
                provider: "n-1".into(),
                class: "CUSTOM_GOLD".into(),
                expected: 1,
            },
            Step::SetNodeResourceClass {
                node: "n-1".into(),
                class: "baremetal-gold".into(),
            },
        ]
    }

    /// The OpenAPI document describes the plan through `RepairPlanDto`: a plan holding every
    /// step kind and node status must read into it with no unknown field and write back the
    /// same JSON, so a new step field or action cannot leave the reference behind.
    #[test]
    fn the_documented_plan_schema_is_the_plan_on_the_wire() {
        let steps = every_step();
        let actions: Vec<&str> = steps.iter().map(Step::action).collect();
        let node = |status, steps: Vec<Step>| NodePlan {
            node: "n-1".into(),
            name: Some("gold-1".into()),
            class: Some("CUSTOM_GOLD".into()),
            status,
            problems: vec!["VCPU inventory beside CUSTOM_GOLD".into()],
            notes: vec!["in maintenance".into()],
            blockers: if status == NodeStatus::Blocked {
                vec![crate::repair::capacity::Blocker {
                    consumer: "s-1".into(),
                    kind: crate::repair::capacity::ConsumerKind::Unknown,
                    what: "consumer s-1, unknown to Nova".into(),
                    holds: [("CUSTOM_GOLD".into(), 1)].into(),
                    holds_after: [("CUSTOM_GOLD".into(), 1)].into(),
                    reason: "it would hold CUSTOM_GOLD=1".into(),
                    command: "openstack resource provider allocation show s-1".into(),
                }]
            } else {
                vec![]
            },
            steps,
        };
        let p = Plan {
            global: steps[..2].to_vec(),
            nodes: vec![
                node(NodeStatus::NeedsRepair, steps[2..].to_vec()),
                node(NodeStatus::Clean, vec![]),
                node(NodeStatus::Skipped, vec![]),
                node(NodeStatus::Blocked, vec![]),
            ],
        };
        let wire = serde_json::to_value(&p).unwrap();
        let dto: RepairPlanDto = serde_json::from_value(wire.clone())
            .unwrap_or_else(|e| panic!("the plan does not fit RepairPlanDto: {e}\n{wire:#}"));
        assert_eq!(serde_json::to_value(&dto).unwrap(), wire);
        // Every action and status is named in the schema's descriptions.
        let doc = serde_json::to_string(&crate::api::openapi::document()).unwrap();
        for a in actions.iter().chain(&[
            "clean",
            "needs_repair",
            "skipped",
            "blocked",
            "instance_elsewhere",
        ]) {
            assert!(doc.contains(a), "the OpenAPI document does not name {a}");
        }
    }
}
