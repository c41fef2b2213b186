//! The OpenAPI document served at `/openapi.json`, generated from the handlers and schema types.

use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::recovery;
use super::repair;
use super::routes;
use super::schema::*;

struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        components.add_security_scheme(
            "x_auth_token",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-Auth-Token"))),
        );
        document_common_answers(openapi);
    }
}

/// Answers steward gives before any handler runs, said on every route they apply to, so the
/// document lists every status steward can answer (schemathesis checks it, `tox -e schema`):
/// 401 without a known token and 403 without the role (`api::authenticate`), 400 for a query
/// string that does not parse (`routes::query_error`), 413 for a body over
/// `[server] max_body_bytes` (`routes::read_body`).
fn document_common_answers(openapi: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::path::ParameterIn;
    use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
    let error = |what: &str| {
        ResponseBuilder::new()
            .description(what)
            .content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("ErrorBody")))
                    .build(),
            )
            .build()
    };
    for (path, item) in openapi.paths.paths.iter_mut() {
        use actix_web::http::Method;
        let operations = [
            (Method::GET, &mut item.get),
            (Method::PUT, &mut item.put),
            (Method::POST, &mut item.post),
            (Method::DELETE, &mut item.delete),
            (Method::PATCH, &mut item.patch),
        ];
        for (method, op) in operations {
            let Some(op) = op else { continue };
            if let Some(need) = super::table::need_of(path, &method) {
                let ext = op.extensions.get_or_insert_with(Default::default);
                ext.insert("x-steward-role".into(), serde_json::json!(need.name()));
            }
            // `security(())`: no token needed (only /healthz).
            let public = op.security.as_ref().is_some_and(|reqs| {
                reqs.iter()
                    .all(|r| serde_json::to_value(r).is_ok_and(|v| v == serde_json::json!({})))
            });
            let has_query = op
                .parameters
                .iter()
                .flatten()
                .any(|p| matches!(p.parameter_in, ParameterIn::Query));
            let has_body = op.request_body.is_some();
            let responses = &mut op.responses.responses;
            let mut add = |status: &str, what: &str| {
                responses
                    .entry(status.into())
                    .or_insert_with(|| error(what).into());
            };
            if has_query || has_body {
                add(
                    "400",
                    "the query string or the body does not fit this route",
                );
            }
            if !public {
                add(
                    "401",
                    "no token, or one steward (or Keystone) does not know",
                );
                add("403", "the token's roles do not allow this route");
            }
            if has_body {
                add("413", "the body is over [server] max_body_bytes");
            }
        }
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "Nova Steward", description = "Steal-aware, AZ-correct scheduling help for OpenStack Nova"),
    paths(routes::filter, routes::weigh, routes::profiles, routes::hosts, routes::host, routes::vm, routes::push_telemetry,
          routes::healthz, routes::metrics, routes::openapi,
          routes::rebalance_plans, routes::approve_plan, routes::cancel_plan, routes::migrations,
          repair::create_plan, repair::create_run, repair::get_run, repair::rollback_run,
          recovery::list, recovery::show, recovery::approve, recovery::release,
          super::cross_az::grant, super::cross_az::list, super::cross_az::revoke),
    components(schemas(CalloutRequest, HostEntry, HostReference, InstanceDto, HostDto, FlavorDto, ServerGroupDto, SiblingDto, OperationDto,
                       FilterAnswer, FilterResponse, CompactFilterResponse, WeighResponse, HostRef, RejectedHost, HostWeight, ExplainPart,
                       TelemetryPush, HostSampleDto, VmSampleDto, TelemetryAccepted, Accepted,
                       ProfileList, ProfileInfo, PluginInfo, HostList, HostInfo, HostDetail, WeeklyInfo, VmInfo, Health, HealthProblem,
                       ErrorBody, ErrorDetail,
                       RebalancePlanList, RebalancePlanDto, RebalanceActionDto, MigrationList,
                       RepairSelection, RepairPlanDto, RepairNodePlanDto, RepairStepDto,
                       RepairRunStarted, RepairNothingToDo, RepairRunDto,
                       RepairRollbackBody, super::repair::RepairRollbackItem,
                       super::repair::RepairRollbackDto,
                       crate::recover::report::IncidentList, crate::recover::report::IncidentDto,
                       crate::recover::report::IncidentDetail, crate::recover::report::EvacuationDto,
                       crate::recover::report::RecoveryEventDto,
                       super::cross_az::CrossAzGrantBody, super::cross_az::CrossAzGrantDto,
                       super::cross_az::CrossAzGrantList)),
    modifiers(&Security),
    security(("bearer" = []), ("x_auth_token" = []))
)]
pub struct ApiDoc;

pub fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}
