//! Every route steward serves, each with the role it needs, declared where it is registered:
//! `configure` builds one actix resource per path from this table, wrapped in
//! `auth::authorize` with that path's rules, and `openapi` writes the same roles into the
//! document (`x-steward-role`). A route not in this table does not exist.

use std::sync::Arc;

use actix_web::body::BoxBody;
use actix_web::dev::ServiceRequest;
use actix_web::http::Method;
use actix_web::middleware::{from_fn, Next};
use actix_web::{web, Route};

use super::auth::{self, RouteRule};
use super::{cross_az, recovery, repair, routes};

/// What a route needs of its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// No token (the health check only).
    Public,
    /// Any reader, a project's included: what is not any project's (profiles, this document)
    /// or what the handler narrows to the caller's project (a VM).
    Reader,
    /// A reader of the whole cloud: what Nova shows to admins only (hypervisors, where each
    /// server runs, every project's moves) and the scheduler callout.
    CloudReader,
    /// Telemetry pushers.
    Telemetry,
    /// Writes to Nova's data or steward's plans.
    Admin,
}

impl Need {
    /// The name operators see in errors and in the OpenAPI document (`x-steward-role`).
    pub fn name(self) -> &'static str {
        match self {
            Need::Public => "none",
            Need::Reader => "reader",
            Need::CloudReader => "cloud_reader",
            Need::Telemetry => "telemetry",
            Need::Admin => "admin",
        }
    }

    /// How a Keystone caller gets the role, for a 403's message.
    pub fn scope_note(self) -> &'static str {
        match self {
            Need::CloudReader => {
                " (admin, a static reader token, or reader on a system-scoped Keystone token: openstack --os-system-scope all token issue)"
            }
            Need::Reader => " (reader or member on a project, or any steward role)",
            Need::Telemetry => " (service on Keystone, or a static telemetry token)",
            _ => "",
        }
    }
}

/// The methods steward's routes use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    Get,
    Post,
}

impl Verb {
    pub fn method(self) -> Method {
        match self {
            Verb::Get => Method::GET,
            Verb::Post => Method::POST,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Verb::Get => "GET",
            Verb::Post => "POST",
        }
    }
}

/// One route: its path pattern (as in the OpenAPI document), method, role and handler.
pub struct RouteDecl {
    pub path: &'static str,
    pub verb: Verb,
    pub need: Need,
    pub handler: fn() -> Route,
}

const fn decl(path: &'static str, verb: Verb, need: Need, handler: fn() -> Route) -> RouteDecl {
    RouteDecl {
        path,
        verb,
        need,
        handler,
    }
}

use Need::*;
use Verb::*;

/// Every route. Paths of one resource are listed together.
pub static ROUTES: &[RouteDecl] = &[
    decl("/healthz", Get, Public, || web::route().to(routes::healthz)),
    decl("/metrics", Get, CloudReader, || {
        web::route().to(routes::metrics)
    }),
    decl("/openapi.json", Get, Reader, || {
        web::route().to(routes::openapi)
    }),
    decl("/v1/filter", Post, CloudReader, || {
        web::route().to(routes::filter)
    }),
    decl("/v1/weigh", Post, CloudReader, || {
        web::route().to(routes::weigh)
    }),
    decl("/v1/profiles", Get, Reader, || {
        web::route().to(routes::profiles)
    }),
    decl("/v1/hosts", Get, CloudReader, || {
        web::route().to(routes::hosts)
    }),
    decl("/v1/hosts/{name}", Get, CloudReader, || {
        web::route().to(routes::host)
    }),
    decl("/v1/vms/{uuid}", Get, Reader, || {
        web::route().to(routes::vm)
    }),
    // Lets one move of a VM leave its AZ: a write that overrides the AZ rule.
    decl("/v1/vms/{uuid}/cross-az", Post, Admin, || {
        web::route().to(cross_az::grant)
    }),
    decl("/v1/cross-az-grants", Get, Admin, || {
        web::route().to(cross_az::list)
    }),
    decl("/v1/cross-az-grants/{id}/revoke", Post, Admin, || {
        web::route().to(cross_az::revoke)
    }),
    decl("/v1/telemetry", Post, Telemetry, || {
        web::route().to(routes::push_telemetry)
    }),
    decl("/v1/rebalance/plans", Get, CloudReader, || {
        web::route().to(routes::rebalance_plans)
    }),
    decl("/v1/rebalance/plans/{id}/approve", Post, Admin, || {
        web::route().to(routes::approve_plan)
    }),
    decl("/v1/rebalance/plans/{id}/cancel", Post, Admin, || {
        web::route().to(routes::cancel_plan)
    }),
    decl("/v1/migrations", Get, CloudReader, || {
        web::route().to(routes::migrations)
    }),
    decl("/v1/repair/plans", Post, Admin, || {
        web::route().to(repair::create_plan)
    }),
    decl("/v1/repair/runs", Post, Admin, || {
        web::route().to(repair::create_run)
    }),
    decl("/v1/repair/runs/{id}", Get, Admin, || {
        web::route().to(repair::get_run)
    }),
    decl("/v1/repair/runs/{id}/rollback", Post, Admin, || {
        web::route().to(repair::rollback_run)
    }),
    // Recovery shows and drives fencing and evacuation of every project's servers.
    decl("/v1/recovery/evacuations", Get, Admin, || {
        web::route().to(recovery::list)
    }),
    decl("/v1/recovery/evacuations/{id}", Get, Admin, || {
        web::route().to(recovery::show)
    }),
    decl("/v1/recovery/evacuations/{id}/approve", Post, Admin, || {
        web::route().to(recovery::approve)
    }),
    decl("/v1/recovery/hosts/{host}/release", Post, Admin, || {
        web::route().to(recovery::release)
    }),
];

/// The role a documented route needs (`None`: no such route).
pub fn need_of(path: &str, method: &Method) -> Option<Need> {
    ROUTES
        .iter()
        .find(|d| d.path == path && d.verb.method() == *method)
        .map(|d| d.need)
}

/// One actix resource per path, its routes, and its rules in front of them.
pub fn configure(cfg: &mut web::ServiceConfig) {
    let mut paths: Vec<&'static str> = ROUTES.iter().map(|d| d.path).collect();
    paths.dedup();
    for path in paths {
        let decls = ROUTES.iter().filter(|d| d.path == path);
        let rule = Arc::new(RouteRule {
            path,
            methods: decls.clone().map(|d| (d.verb, d.need)).collect(),
        });
        let mut resource = web::resource(path);
        for d in decls {
            resource = resource.route((d.handler)().method(d.verb.method()));
        }
        cfg.service(
            resource.wrap(from_fn(move |req: ServiceRequest, next: Next<BoxBody>| {
                auth::authorize(Arc::clone(&rule), req, next)
            })),
        );
    }
}
