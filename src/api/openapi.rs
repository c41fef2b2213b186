//! The OpenAPI document served at `/openapi.json`, generated from the handlers and schema types.

use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

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
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "Nova Steward", description = "Steal-aware, AZ-correct scheduling help for OpenStack Nova"),
    paths(routes::filter, routes::weigh, routes::profiles, routes::hosts, routes::host, routes::vm, routes::push_telemetry,
          routes::healthz, routes::metrics, routes::openapi,
          routes::rebalance_plans, routes::approve_plan, routes::cancel_plan, routes::migrations,
          repair::create_plan, repair::create_run, repair::get_run, repair::rollback_run),
    components(schemas(CalloutRequest, InstanceDto, HostDto, FlavorDto, ServerGroupDto, OperationDto,
                       FilterAnswer, FilterResponse, CompactFilterResponse, WeighResponse, HostRef, RejectedHost, HostWeight, ExplainPart,
                       TelemetryPush, HostSampleDto, VmSampleDto, TelemetryAccepted, Accepted,
                       ProfileList, ProfileInfo, PluginInfo, HostList, HostInfo, HostDetail, WeeklyInfo, VmInfo, Health,
                       ErrorBody, ErrorDetail,
                       RebalancePlanList, RebalancePlanDto, RebalanceActionDto, MigrationList,
                       RepairSelection, RepairPlanDto, RepairNodePlanDto, RepairStepDto,
                       RepairRunStarted, RepairNothingToDo, RepairRunDto,
                       super::repair::RepairRollbackBody, super::repair::RepairRollbackItem,
                       super::repair::RepairRollbackDto)),
    modifiers(&Security),
    security(("bearer" = []), ("x_auth_token" = []))
)]
pub struct ApiDoc;

pub fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}
