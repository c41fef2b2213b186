//! Authorization is decided on the route actix matched, never on how the path was spelled.
//!
//! Walks every route of the OpenAPI document with every kind of caller (none, an unknown
//! token, the Nova shim's reader token, a telemetry pusher, an admin) and with spellings of
//! its path (percent-encoded letters, `%2F` for a slash, double slashes, a trailing slash,
//! `.` and `..` segments, other case) and expects exactly the declared answer. The oracle is
//! this file's own: the table of roles below, and a matcher that says which route (if any) a
//! spelling names (letters decoded, `%2F` never a separator, no dot-segment folding, case
//! kept), which is what actix's router does. A spelling that names a route gets that route's
//! answer for that caller; one that names none is 401 without a known token, else 404.

mod common;

use std::collections::BTreeSet;

use actix_web::http::Method;
use actix_web::test;
use common::app::{state, ADMIN, READER, TELEMETRY};
use serde_json::Value;

/// Every route and the role it needs: the contract, written apart from `src/api/table.rs`.
const EXPECTED: &[(&str, &str, &str)] = &[
    ("GET", "/healthz", "none"),
    ("GET", "/metrics", "cloud_reader"),
    ("GET", "/openapi.json", "reader"),
    ("POST", "/v1/filter", "cloud_reader"),
    ("POST", "/v1/weigh", "cloud_reader"),
    ("GET", "/v1/profiles", "reader"),
    ("GET", "/v1/hosts", "cloud_reader"),
    ("GET", "/v1/hosts/{name}", "cloud_reader"),
    ("GET", "/v1/vms/{uuid}", "reader"),
    ("POST", "/v1/telemetry", "telemetry"),
    ("GET", "/v1/rebalance/plans", "cloud_reader"),
    ("POST", "/v1/rebalance/plans/{id}/approve", "admin"),
    ("POST", "/v1/rebalance/plans/{id}/cancel", "admin"),
    ("GET", "/v1/migrations", "cloud_reader"),
    ("POST", "/v1/repair/plans", "admin"),
    ("POST", "/v1/repair/runs", "admin"),
    ("GET", "/v1/repair/runs/{id}", "admin"),
    ("POST", "/v1/repair/runs/{id}/rollback", "admin"),
    ("GET", "/v1/recovery/evacuations", "admin"),
    ("GET", "/v1/recovery/evacuations/{id}", "admin"),
    ("POST", "/v1/recovery/evacuations/{id}/approve", "admin"),
    ("POST", "/v1/recovery/hosts/{host}/release", "admin"),
    ("POST", "/v1/vms/{uuid}/cross-az", "admin"),
    ("GET", "/v1/cross-az-grants", "admin"),
    ("POST", "/v1/cross-az-grants/{id}/revoke", "admin"),
];

#[derive(Debug, Clone, Copy, PartialEq)]
enum Who {
    Nobody,
    Unknown,
    /// The Nova shim's static reader token: a reader of the whole cloud.
    Shim,
    Telemetry,
    Admin,
}

const EVERYONE: [Who; 5] = [
    Who::Nobody,
    Who::Unknown,
    Who::Shim,
    Who::Telemetry,
    Who::Admin,
];

impl Who {
    fn token(self) -> Option<&'static str> {
        match self {
            Who::Nobody => None,
            Who::Unknown => Some("not-a-token-steward-knows-0123456789"),
            Who::Shim => Some(READER),
            Who::Telemetry => Some(TELEMETRY),
            Who::Admin => Some(ADMIN),
        }
    }

    fn identified(self) -> bool {
        !matches!(self, Who::Nobody | Who::Unknown)
    }

    fn may(self, role: &str) -> bool {
        matches!(
            (self, role),
            (_, "none")
                | (Who::Admin, _)
                | (Who::Shim, "reader" | "cloud_reader")
                | (Who::Telemetry, "telemetry")
        )
    }
}

/// Decode `%XX` escapes as a router does, except those that would change the path's
/// structure (`%2F`, `%25`, `%2B`, kept as written).
fn decode(segment: &str) -> String {
    let b = segment.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(v) = u8::from_str_radix(&segment[i + 1..i + 3], 16) {
                if !matches!(v, b'/' | b'%' | b'+') {
                    out.push(v);
                    i += 3;
                    continue;
                }
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The template (of `EXPECTED`) a spelled path names, if any.
fn route_of(path: &str) -> Option<&'static str> {
    let got: Vec<String> = path.split('/').map(decode).collect();
    EXPECTED.iter().map(|(_, t, _)| *t).find(|t| {
        let want: Vec<&str> = t.split('/').collect();
        want.len() == got.len()
            && want.iter().zip(&got).all(|(w, g)| {
                if w.starts_with('{') {
                    !g.is_empty()
                } else {
                    *w == g.as_str()
                }
            })
    })
}

fn concrete(template: &str) -> String {
    template
        .replace("{name}", "cmp-1")
        .replace("{uuid}", "6a1c3f6e-2d0b-4c4e-9a57-0e1f2a3b4c5d")
        .replace("{id}", "0b9c8d7e-6f5a-4b3c-8d2e-1f0a9b8c7d6e")
}

/// Spellings of `path`: each literal segment with a percent-encoded letter, each slash as
/// `%2F` and doubled, a trailing slash, `.` and `..` segments, other case.
fn spellings(path: &str) -> Vec<String> {
    let segs: Vec<&str> = path.split('/').collect();
    let mut out = Vec::new();
    for i in 1..segs.len() {
        let s = segs[i];
        let join = |seg: String| {
            let mut v: Vec<String> = segs.iter().map(|s| s.to_string()).collect();
            v[i] = seg;
            v.join("/")
        };
        if let Some(c) = s.chars().find(|c| c.is_ascii_alphabetic()) {
            let at = s.find(c).unwrap();
            out.push(join(format!(
                "{}%{:02X}{}",
                &s[..at],
                c as u8,
                &s[at + 1..]
            )));
            out.push(join(format!(
                "{}%{:02x}{}",
                &s[..at],
                c as u8,
                &s[at + 1..]
            )));
            out.push(join(s.to_uppercase()));
        }
        if i > 1 {
            let head = segs[..i].join("/");
            let tail = segs[i..].join("/");
            out.push(format!("{head}%2F{tail}"));
            out.push(format!("{head}%2f{tail}"));
            out.push(format!("{head}//{tail}"));
            out.push(format!("{head}/./{tail}"));
            out.push(format!("{head}/x/../{tail}"));
        }
    }
    out.push(format!("{path}/"));
    out.push(format!("/{path}"));
    out.push(format!("{path}/."));
    out.push(format!("{path}/.."));
    out.push(format!("{path}%2F"));
    out
}

struct Answer {
    status: u16,
    body: Value,
    allow: Option<String>,
}

fn request(method: Method, path: &str, who: Who) -> test::TestRequest {
    let mut req = test::TestRequest::default()
        .method(method.clone())
        .uri(path);
    if let Some(t) = who.token() {
        req = req.insert_header(("X-Auth-Token", t));
    }
    if method == Method::POST {
        req = req
            .insert_header(("Content-Type", "application/json"))
            .set_payload(r#"{"steward_matrix_probe": true}"#);
    }
    req
}

/// `call!(app, method, path, who)`: the answer of the app to that request.
macro_rules! call {
    ($app:expr, $method:expr, $path:expr, $who:expr) => {
        answer(
            test::call_service($app, request($method, $path, $who).to_request())
                .await
                .map_into_boxed_body(),
        )
        .await
    };
}

async fn answer(resp: actix_web::dev::ServiceResponse) -> Answer {
    let status = resp.status().as_u16();
    let allow = resp
        .headers()
        .get("allow")
        .map(|v| v.to_str().unwrap().to_string());
    let bytes = test::read_body(resp).await;
    Answer {
        status,
        body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        allow,
    }
}

fn is_unmatched_404(a: &Answer) -> bool {
    a.status == 404
        && a.body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("no such route"))
}

#[actix_web::test]
async fn every_route_answers_its_declared_role_however_its_path_is_spelled() {
    let (_dir, st) = state("").await;
    let app = test::init_service(steward::api::app(st)).await;

    // The document lists exactly the routes of the table, each with its role.
    let doc = call!(&app, Method::GET, "/openapi.json", Who::Admin).body;
    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (m, op) in item.as_object().unwrap() {
            let role = op["x-steward-role"].as_str().unwrap_or("(none declared)");
            documented.insert((m.to_uppercase(), path.clone(), role.to_string()));
        }
    }
    let expected: BTreeSet<(String, String, String)> = EXPECTED
        .iter()
        .map(|(m, p, r)| (m.to_string(), p.to_string(), r.to_string()))
        .collect();
    let mut failures = Vec::new();
    for missing in expected.symmetric_difference(&documented) {
        failures.push(format!(
            "route and role in only one of the table and the document: {missing:?}"
        ));
    }
    let mut checked = 0;
    for (m, template, role) in EXPECTED {
        let method = Method::from_bytes(m.as_bytes()).unwrap();
        let path = concrete(template);
        // What the route itself answers each caller, spelled plainly.
        let mut plain = Vec::new();
        for who in EVERYONE {
            let a = call!(&app, method.clone(), &path, who);
            let want_denied = !who.may(role);
            let ok = if want_denied {
                a.status == if who.identified() { 403 } else { 401 }
            } else {
                !matches!(a.status, 401 | 403 | 405) && !is_unmatched_404(&a)
            };
            if !ok {
                failures.push(format!(
                    "{m} {path} as {who:?} (needs {role}): {} {}",
                    a.status, a.body
                ));
            }
            plain.push(a.status);
            checked += 1;
        }
        // Every spelling: the same answer when it names this route, else "no such route".
        for spelled in spellings(&path) {
            let names = route_of(&spelled);
            for (who, plain_status) in EVERYONE.into_iter().zip(&plain) {
                let a = call!(&app, method.clone(), &spelled, who);
                let ok = match names {
                    Some(t) if t == *template => a.status == *plain_status,
                    Some(other) => {
                        let need = EXPECTED.iter().find(|(mm, tt, _)| *tt == other && mm == m);
                        match need {
                            Some((_, _, r)) if !who.may(r) => {
                                a.status == if who.identified() { 403 } else { 401 }
                            }
                            Some(_) => !matches!(a.status, 401 | 403) && !is_unmatched_404(&a),
                            None if !who.identified() && other != "/healthz" => a.status == 401,
                            None => a.status == 405,
                        }
                    }
                    None if who.identified() => is_unmatched_404(&a),
                    None => a.status == 401,
                };
                if !ok {
                    failures.push(format!(
                        "{m} {spelled} (spelling of {path}, names {names:?}) as {who:?}: {} {}",
                        a.status, a.body
                    ));
                }
                checked += 1;
            }
        }
        // A method the path does not answer: 405 with Allow once the caller is known.
        let wrong = if *m == "GET" {
            Method::DELETE
        } else {
            Method::PUT
        };
        for who in EVERYONE {
            let a = call!(&app, wrong.clone(), &path, who);
            let ok = if who.identified() || *role == "none" {
                a.status == 405
                    && a.allow.as_deref() == Some(*m)
                    && a.body["error"]["code"] == "steward.method_not_allowed"
            } else {
                a.status == 401
            };
            if !ok {
                failures.push(format!(
                    "{wrong} {path} as {who:?}: {} allow={:?} {}",
                    a.status, a.allow, a.body
                ));
            }
            checked += 1;
        }
    }
    assert!(checked > 1000, "only {checked} requests made");
    assert!(
        failures.is_empty(),
        "{} of {checked} answers are not the declared ones:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[actix_web::test]
async fn the_oracle_knows_a_spelling_from_another_route() {
    // Controls for the matcher itself, so a lenient oracle cannot pass everything.
    assert_eq!(
        route_of("/v1/%72epair/runs/1"),
        Some("/v1/repair/runs/{id}")
    );
    assert_eq!(route_of("/v1/repair%2Fruns/1"), None);
    assert_eq!(route_of("/v1//repair/runs/1"), None);
    assert_eq!(route_of("/v1/repair/runs/1/"), None);
    assert_eq!(route_of("/V1/repair/runs/1"), None);
    assert_eq!(route_of("/v1/./repair/runs/1"), None);
    assert_eq!(route_of("/v1/hosts/.."), Some("/v1/hosts/{name}"));
    assert_eq!(route_of("/v1/hosts"), Some("/v1/hosts"));
}
