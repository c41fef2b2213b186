//! An admin's cross-AZ grant: one move of one VM may leave its AZ, into the AZ the grant names,
//! for one scheduling request; every other move stays in its AZ. Bad grants are refused with
//! the field named; a revoked or used grant moves nothing.

mod common;

use actix_web::test;
use common::app::{state, ADMIN, READER, TELEMETRY};
use serde_json::{json, Value};

const VM: &str = "0b6d3c1e-5a7f-4f0e-9d61-2f4f8d0c7a01";

/// A live migration of VM from `src` (az1), candidates in az1 and az2.
fn move_body(operation: &str) -> Value {
    json!({
        "operation": operation,
        "instance": {"uuid": VM, "current_host": "src", "current_az": "az1"},
        "hosts": [
            {"host": "a2", "az": "az1", "vcpus_total": 64, "vcpus_used": 8},
            {"host": "b1", "az": "az2", "vcpus_total": 64, "vcpus_used": 8},
        ],
    })
}

/// `(status, JSON body)` of one request to `app` with `token`.
macro_rules! call {
    ($app:expr, $method:expr, $uri:expr, $token:expr, $body:expr $(,)?) => {{
        let mut r = match $method {
            "GET" => test::TestRequest::get(),
            _ => test::TestRequest::post(),
        }
        .uri(&$uri)
        .insert_header(("Authorization", format!("Bearer {}", $token)));
        let body: Option<Value> = $body;
        if let Some(b) = body {
            r = r.set_json(b);
        }
        let resp = test::call_service(&$app, r.to_request()).await;
        let status = resp.status().as_u16();
        let bytes = test::read_body(resp).await;
        (
            status,
            serde_json::from_slice::<Value>(&bytes).unwrap_or(Value::Null),
        )
    }};
}

/// The hosts a filter answer allowed.
fn allowed(answer: &Value) -> Vec<String> {
    answer["allowed"]
        .as_array()
        .unwrap_or_else(|| panic!("no allowed hosts in {answer}"))
        .iter()
        .map(|h| h["host"].as_str().unwrap().to_string())
        .collect()
}

#[actix_web::test]
async fn a_grant_lets_one_move_into_its_az_and_no_other() {
    let (_dir, st) = state("").await;
    let app = test::init_service(steward::api::app(st)).await;
    // The control: without a grant the move stays in az1.
    let (s, a) = call!(
        app,
        "POST",
        "/v1/filter",
        READER,
        Some(move_body("live_migrate")),
    );
    assert_eq!(s, 200, "{a}");
    assert_eq!(allowed(&a), ["a2"]);
    // A reader cannot grant.
    let grant = json!({"to_az": "az2", "reason": "pinned to az1 by stock Nova; back home"});
    let (s, _) = call!(
        app,
        "POST",
        &format!("/v1/vms/{VM}/cross-az"),
        READER,
        Some(grant.clone()),
    );
    assert_eq!(s, 403);
    let (s, g) = call!(
        app,
        "POST",
        &format!("/v1/vms/{VM}/cross-az"),
        ADMIN,
        Some(grant),
    );
    assert_eq!(s, 201, "{g}");
    assert_eq!(
        (g["state"].as_str(), g["to_az"].as_str()),
        (Some("open"), Some("az2"))
    );
    // A boot of the same uuid (a rebuild too) leaves the grant alone.
    for op in ["boot", "rebuild"] {
        let mut boot = move_body(op);
        boot["instance"]["current_az"] = Value::Null;
        boot["instance"]["current_host"] = Value::Null;
        let (s, a) = call!(app, "POST", "/v1/filter", READER, Some(boot));
        assert_eq!(s, 200, "{a}");
    }
    // The move under the grant goes to az2, and az2 only.
    let (s, a) = call!(
        app,
        "POST",
        "/v1/filter",
        READER,
        Some(move_body("live_migrate")),
    );
    assert_eq!(s, 200, "{a}");
    assert_eq!(allowed(&a), ["b1"]);
    let (_, list) = call!(app, "GET", "/v1/cross-az-grants", ADMIN, None);
    assert_eq!(list["grants"][0]["state"], "used", "{list}");
    assert!(list["grants"][0]["used_at"].is_number());
    // One request: the next move stays in its AZ again.
    let (_, a) = call!(
        app,
        "POST",
        "/v1/filter",
        READER,
        Some(move_body("migrate")),
    );
    assert_eq!(allowed(&a), ["a2"]);
    // The list is the admin's: a reader is refused.
    let (s, _) = call!(app, "GET", "/v1/cross-az-grants", READER, None);
    assert_eq!(s, 403);
}

#[actix_web::test]
async fn a_revoked_grant_moves_nothing_and_cannot_be_revoked_twice() {
    let (_dir, st) = state("").await;
    let app = test::init_service(steward::api::app(st)).await;
    let grant = json!({"to_az": "az2", "reason": "draining az1", "ttl_seconds": 600});
    let (_, g) = call!(
        app,
        "POST",
        &format!("/v1/vms/{VM}/cross-az"),
        ADMIN,
        Some(grant),
    );
    let id = g["id"].as_str().unwrap().to_string();
    let uri = format!("/v1/cross-az-grants/{id}/revoke");
    let (s, r) = call!(app, "POST", &uri, ADMIN, None);
    assert_eq!((s, r["state"].as_str()), (200, Some("revoked")), "{r}");
    let (s, again) = call!(app, "POST", &uri, ADMIN, None);
    assert_eq!(s, 409, "{again}");
    assert!(
        again["error"]["message"]
            .as_str()
            .unwrap()
            .contains("already revoked"),
        "{again}"
    );
    let (_, a) = call!(
        app,
        "POST",
        "/v1/filter",
        READER,
        Some(move_body("live_migrate")),
    );
    assert_eq!(allowed(&a), ["a2"]);
    let (s, _) = call!(
        app,
        "POST",
        "/v1/cross-az-grants/not-an-id/revoke",
        ADMIN,
        None,
    );
    assert_eq!(s, 404);
}

#[actix_web::test]
async fn a_new_grant_replaces_the_open_one() {
    let (_dir, st) = state("").await;
    let app = test::init_service(steward::api::app(st)).await;
    for to in ["az3", "az2"] {
        let body = json!({"to_az": to, "reason": "maintenance"});
        let (s, _) = call!(
            app,
            "POST",
            &format!("/v1/vms/{VM}/cross-az"),
            ADMIN,
            Some(body),
        );
        assert_eq!(s, 201);
    }
    let (_, list) = call!(app, "GET", "/v1/cross-az-grants", ADMIN, None);
    let states: Vec<(&str, &str)> = list["grants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| (g["to_az"].as_str().unwrap(), g["state"].as_str().unwrap()))
        .collect();
    assert_eq!(states.len(), 2, "{list}");
    assert!(
        states.contains(&("az2", "open")) && states.contains(&("az3", "revoked")),
        "{states:?}"
    );
    let (_, a) = call!(
        app,
        "POST",
        "/v1/filter",
        READER,
        Some(move_body("live_migrate")),
    );
    assert_eq!(allowed(&a), ["b1"]);
}

#[actix_web::test]
async fn bad_grants_name_the_field_and_write_nothing() {
    let (_dir, st) = state("").await;
    let app = test::init_service(steward::api::app(st)).await;
    // Steward knows az1 and az2 from a telemetry push: az9 is no AZ of this cloud.
    let push = json!({"hosts": [{"host": "a2", "az": "az1", "steal": 0.01},
                                {"host": "b1", "az": "az2", "steal": 0.01}]});
    let (s, p) = call!(app, "POST", "/v1/telemetry", TELEMETRY, Some(push));
    assert_eq!(s, 202, "{p}");
    let uri = format!("/v1/vms/{VM}/cross-az");
    for (body, field, says) in [
        (json!({"to_az": "az9", "reason": "x"}), "to_az", "az1, az2"),
        (json!({"to_az": "", "reason": "x"}), "to_az", "name the AZ"),
        (json!({"to_az": "az2", "reason": "  "}), "reason", "why"),
        (json!({"to_az": "az2"}), "reason", "reason"),
        (
            json!({"to_az": "az2", "reason": "x", "ttl_seconds": 5}),
            "ttl_seconds",
            "60 to 86400",
        ),
        (
            json!({"to_az": "az2", "reason": "x", "force": true}),
            "force",
            "force",
        ),
    ] {
        let (s, e) = call!(app, "POST", &uri, ADMIN, Some(body.clone()));
        assert_eq!(s, 400, "{body} -> {e}");
        let text = e.to_string();
        assert!(text.contains(field) && text.contains(says), "{body} -> {e}");
    }
    let (s, e) = call!(
        app,
        "POST",
        "/v1/vms/not-a-uuid/cross-az",
        ADMIN,
        Some(json!({"to_az": "az2", "reason": "x"})),
    );
    assert_eq!(s, 400, "{e}");
    let (_, list) = call!(app, "GET", "/v1/cross-az-grants", ADMIN, None);
    assert_eq!(list["grants"], json!([]));
    // The control: a good one is taken.
    let (s, _) = call!(
        app,
        "POST",
        &uri,
        ADMIN,
        Some(json!({"to_az": "az2", "reason": "x"})),
    );
    assert_eq!(s, 201);
}

/// The callout reads the store only for a VM with an open grant: a grant another replica wrote
/// takes effect here once the open set is reloaded (serve does so every 2 s), and with the
/// store closed a move of a VM without a grant is answered as before.
#[actix_web::test]
async fn a_move_without_a_grant_never_reads_the_store() {
    let (_dir, st) = state("").await;
    let (store, open) = (st.store.clone(), st.open_grants.clone());
    let app = test::init_service(steward::api::app(st)).await;
    // Another replica grants the VM a move into az2.
    store
        .grant_cross_az(
            VM,
            "az2",
            "admin (replica b)",
            "rack move",
            steward::unix_now(),
            600.0,
        )
        .await
        .unwrap();
    let (_, a) = call!(
        app,
        "POST",
        "/v1/filter",
        READER,
        Some(move_body("live_migrate"))
    );
    assert_eq!(allowed(&a), ["a2"], "not known here before the reload");
    open.reload(&store).await;
    assert!(open.contains(VM));
    let (_, a) = call!(
        app,
        "POST",
        "/v1/filter",
        READER,
        Some(move_body("live_migrate"))
    );
    assert_eq!(allowed(&a), ["b1"]);
    assert!(!open.contains(VM), "used: out of the open set");
    // No grant, no store: the callout still answers, the VM kept in its AZ.
    store.close().await;
    let (s, a) = call!(
        app,
        "POST",
        "/v1/filter",
        READER,
        Some(move_body("migrate"))
    );
    assert_eq!(s, 200, "{a}");
    assert_eq!(allowed(&a), ["a2"]);
}
