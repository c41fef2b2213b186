//! Who is calling, and may they call this route: the caller is identified from its token
//! (static table or Keystone), then authorized against the role the matched route declares
//! where it is registered (`api::table`), never against the raw request path.

use std::sync::Arc;

use actix_web::body::BoxBody;
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::header;
use actix_web::middleware::Next;
use actix_web::{web, FromRequest, HttpMessage, HttpRequest, ResponseError};

use super::errors::ApiError;
use super::settings::{AuthStrategy, Roles};
use super::table::{Need, Verb};
use super::AppState;
use crate::openstack::keystone::{TokenInfo, Validation};
use crate::openstack::Secret;

/// How much of the cloud a caller may see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Every project and every hypervisor: static tokens, `noauth`, Keystone's `admin`, and a
    /// system-scoped Keystone token (Nova's system reader).
    Cloud,
    /// One project's servers, and nothing of hypervisors: a project-scoped Keystone token.
    Project(String),
    /// No project and not the system: a domain-scoped or unscoped Keystone token.
    Nothing,
}

/// The caller of this request, put in its extensions by [`authorize`] once the route allowed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub roles: Roles,
    pub scope: Scope,
}

impl Caller {
    fn cloud(roles: Roles) -> Caller {
        Caller {
            roles,
            scope: Scope::Cloud,
        }
    }

    /// What a Keystone token gives: its roles ([`Roles::from_keystone`]) and its scope. An
    /// `admin` sees the cloud whatever the token's scope (Nova's `context_is_admin`);
    /// `reader`/`member` see the cloud only on a system-scoped token, else their project.
    pub fn from_keystone(info: &TokenInfo) -> Caller {
        let roles = Roles::from_keystone(info.roles.iter().map(String::as_str));
        let scope = if roles.admin || info.system_scoped {
            Scope::Cloud
        } else {
            match &info.project_id {
                Some(p) => Scope::Project(p.clone()),
                None => Scope::Nothing,
            }
        };
        Caller { roles, scope }
    }

    /// May this caller call a route that needs `need`?
    pub fn allows(&self, need: Need) -> bool {
        let r = &self.roles;
        match need {
            Need::Public => true,
            Need::Reader => r.reader,
            Need::CloudReader => r.admin || (r.reader && self.scope == Scope::Cloud),
            Need::Telemetry => r.telemetry,
            Need::Admin => r.admin,
        }
    }

    /// May this caller see a VM of `project` (None: a VM whose project steward does not know)?
    pub fn sees_project(&self, project: Option<&str>) -> bool {
        match &self.scope {
            Scope::Cloud => true,
            Scope::Project(p) => project == Some(p.as_str()),
            Scope::Nothing => false,
        }
    }

    /// May this caller learn which hypervisor runs something (Nova: admin only)?
    pub fn sees_hosts(&self) -> bool {
        self.allows(Need::CloudReader)
    }
}

/// Handlers read the caller [`authorize`] identified. A request that reached a handler without
/// one (it cannot) is treated as a caller who may see nothing.
impl FromRequest for Caller {
    type Error = actix_web::Error;
    type Future = std::future::Ready<Result<Caller, actix_web::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let caller = req.extensions().get::<Caller>().cloned();
        std::future::ready(Ok(caller.unwrap_or(Caller {
            roles: Roles::default(),
            scope: Scope::Nothing,
        })))
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

/// The caller of a Keystone token, or why the request is refused. Never puts the token in a
/// message or a log line.
async fn keystone_caller(state: &AppState, presented: Option<&[u8]>) -> Result<Caller, ApiError> {
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
        Ok(Validation::Valid(info)) => Ok(Caller::from_keystone(&info)),
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

/// Who sent this request, whatever route it is for: 401 (or 503 when Keystone cannot say).
async fn identify(state: &AppState, req: &ServiceRequest) -> Result<Caller, ApiError> {
    let presented = presented_token(req);
    match state.auth {
        AuthStrategy::Noauth => Ok(Caller::cloud(Roles::ALL)),
        AuthStrategy::Keystone => {
            // A static token (the Nova shim's) first: constant time, no call to Keystone.
            let known = state
                .tokens
                .as_ref()
                .zip(presented)
                .and_then(|(tokens, t)| tokens.roles_of(t));
            match known {
                Some(roles) => Ok(Caller::cloud(roles)),
                None => keystone_caller(state, presented).await,
            }
        }
        AuthStrategy::Static => match (state.tokens.as_ref(), presented) {
            (None, _) => Err(ApiError::unavailable(
                "[auth] strategy is static but no token table is loaded; check [auth] token_file",
            )),
            (_, None) => Err(ApiError::unauthorized(
                "no token: send `Authorization: Bearer <token>` or `X-Auth-Token` (see [auth] token_file)",
            )),
            (Some(tokens), Some(t)) => tokens.roles_of(t).map(Caller::cloud).ok_or_else(|| {
                ApiError::unauthorized(
                    "the token is not known to steward; check the token file of the caller and of [auth] token_file",
                )
            }),
        },
    }
}

fn state_of(req: &ServiceRequest) -> web::Data<AppState> {
    req.app_data::<web::Data<AppState>>()
        .expect("AppState is registered")
        .clone()
}

fn refuse(req: ServiceRequest, err: ApiError) -> ServiceResponse<BoxBody> {
    tracing::warn!(
        path = req.path(),
        route = req.match_pattern().as_deref().unwrap_or("unmatched"),
        status = err.status.as_u16(),
        "request refused"
    );
    let resp = err.error_response();
    req.into_response(resp)
}

/// What one registered path answers to: each method with the role it needs.
#[derive(Debug)]
pub struct RouteRule {
    pub path: &'static str,
    pub methods: Vec<(Verb, Need)>,
}

impl RouteRule {
    fn allow_header(&self) -> String {
        let mut names: Vec<&str> = self.methods.iter().map(|(v, _)| v.as_str()).collect();
        names.dedup();
        names.join(", ")
    }
}

/// The middleware of one matched resource: the method the route has (else 405 with `Allow`),
/// then the caller (401), then the role the route declares (403). Runs only once actix has
/// matched the resource, so what decides is the route, never the spelling of the path.
pub async fn authorize(
    rule: Arc<RouteRule>,
    req: ServiceRequest,
    next: Next<BoxBody>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let need = rule
        .methods
        .iter()
        .find(|(v, _)| v.method() == req.method())
        .map(|(_, n)| *n);
    let public = rule.methods.iter().all(|(_, n)| *n == Need::Public);
    if need.map_or(!public, |n| n != Need::Public) {
        let state = state_of(&req);
        let caller = match identify(&state, &req).await {
            Ok(c) => c,
            Err(e) => return Ok(refuse(req, e)),
        };
        if let Some(need) = need.filter(|n| !caller.allows(*n)) {
            let err = ApiError::forbidden(format!(
                "this token's roles do not allow {} {}; it needs the {} role{}",
                req.method(),
                rule.path,
                need.name(),
                need.scope_note()
            ));
            return Ok(refuse(req, err));
        }
        req.extensions_mut().insert(caller);
    }
    if need.is_none() {
        // Said to every caller of a public route, and to identified callers of the others.
        let allow = rule.allow_header();
        let err = ApiError::method_not_allowed(format!(
            "{} {} is not a route; {} answers {allow} (GET /openapi.json lists the routes)",
            req.method(),
            rule.path,
            rule.path
        ));
        let mut resp = err.error_response();
        if let Ok(v) = header::HeaderValue::from_str(&allow) {
            resp.headers_mut().insert(header::ALLOW, v);
        }
        return Ok(req.into_response(resp));
    }
    Ok(next.call(req).await?.map_into_boxed_body())
}

/// Every path no route matches: 404 to an identified caller, 401 to anyone else, so the
/// routes cannot be probed without a token.
pub async fn unmatched(req: ServiceRequest) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let state = state_of(&req);
    if let Err(e) = identify(&state, &req).await {
        return Ok(refuse(req, e));
    }
    let err = ApiError::not_found("no such route; GET /openapi.json lists the routes");
    let resp = err.error_response();
    Ok(req.into_response(resp))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(roles: &[&str], project: Option<&str>, system: bool) -> Caller {
        Caller::from_keystone(&TokenInfo {
            roles: roles.iter().map(|r| r.to_string()).collect(),
            user_id: "u".into(),
            project_id: project.map(Into::into),
            system_scoped: system,
            expires_at: None,
        })
    }

    #[test]
    fn a_project_member_reads_its_project_and_no_hypervisor() {
        let c = token(&["member", "reader"], Some("p1"), false);
        assert!(c.allows(Need::Reader));
        assert!(
            !c.allows(Need::CloudReader),
            "hypervisors are admin-only in Nova"
        );
        assert!(!c.allows(Need::Telemetry) && !c.allows(Need::Admin));
        assert!(c.sees_project(Some("p1")));
        assert!(!c.sees_project(Some("p2")));
        assert!(
            !c.sees_project(None),
            "a VM of unknown project is nobody's to show"
        );
        assert!(!c.sees_hosts());
    }

    #[test]
    fn a_system_reader_sees_the_cloud_but_writes_nothing() {
        let c = token(&["reader"], None, true);
        assert!(c.allows(Need::CloudReader) && c.sees_hosts());
        assert!(c.sees_project(Some("p2")) && c.sees_project(None));
        assert!(!c.allows(Need::Admin) && !c.allows(Need::Telemetry));
    }

    #[test]
    fn admin_on_a_project_is_nova_admin_and_sees_the_cloud() {
        let c = token(&["admin", "member", "reader"], Some("admin"), false);
        assert!(c.allows(Need::Admin) && c.sees_hosts() && c.sees_project(Some("other")));
    }

    #[test]
    fn a_domain_scoped_reader_sees_no_vm_and_a_service_user_pushes_only() {
        let c = token(&["reader"], None, false);
        assert_eq!(c.scope, Scope::Nothing);
        assert!(c.allows(Need::Reader) && !c.sees_project(Some("p1")) && !c.sees_hosts());
        let s = token(&["service"], Some("service"), false);
        assert!(s.allows(Need::Telemetry) && !s.allows(Need::Reader) && !s.sees_hosts());
    }

    #[test]
    fn a_role_with_no_meaning_to_steward_gives_nothing_even_system_scoped() {
        let c = token(&["auditor"], None, true);
        for need in [
            Need::Reader,
            Need::CloudReader,
            Need::Telemetry,
            Need::Admin,
        ] {
            assert!(!c.allows(need), "{need:?}");
        }
        assert!(c.allows(Need::Public));
    }
}
