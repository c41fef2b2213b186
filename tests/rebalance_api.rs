//! The rebalance routes as an operator uses them: readers list plans and migrations, only an
//! admin approves or cancels, and every refusal names the plan and what to do.

mod common;

use actix_web::test;
use common::app::{state, ADMIN, READER};
use serde_json::Value;
use steward::store::journal::{NewAction, NewPlan};

async fn seed_plan(st: &steward::api::AppState, mode: &str) -> String {
    let plan = NewPlan {
        id: uuid::Uuid::new_v4().to_string(),
        created_at: 1_795_000_000.0,
        mode: mode.into(),
        summary: r#"{"candidates": 1, "limits_hit": []}"#.into(),
        actions: vec![NewAction {
            vm: "8d2f6c1e-3b7a-4c55-9f0e-2a1b3c4d5e6f".into(),
            vm_name: "web-1".into(),
            source: "cmp-1".into(),
            target: "cmp-2".into(),
            az: "az1".into(),
            ram_mb: 2048,
            disk_gb: 20,
            block_migration: true,
            reason: "steal 22% with load5/vCPU 1.4 for 30 min".into(),
        }],
    };
    st.store.insert_plan(&plan, None, None).await.unwrap().id
}

/// One request with a bearer token: (status, JSON body or null).
macro_rules! call {
    ($app:expr, $method:expr, $uri:expr, $token:expr) => {{
        let req = match $method {
            "POST" => test::TestRequest::post(),
            _ => test::TestRequest::get(),
        }
        .uri(&$uri)
        .insert_header(("Authorization", format!("Bearer {}", $token)))
        .to_request();
        let resp = test::call_service(&$app, req).await;
        let status = resp.status().as_u16();
        let body = test::read_body(resp).await;
        (
            status,
            serde_json::from_slice::<Value>(&body).unwrap_or(Value::Null),
        )
    }};
}

#[actix_web::test]
async fn plans_are_listed_to_readers_and_decided_by_admins() {
    let (_dir, st) = state("").await;
    let id = seed_plan(&st, "approve").await;
    let app = test::init_service(steward::api::app(st)).await;

    let (status, body) = call!(app, "GET", "/v1/rebalance/plans", READER);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["plans"][0]["id"], id.as_str());
    assert_eq!(body["plans"][0]["state"], "proposed");
    assert_eq!(body["plans"][0]["summary"]["candidates"], 1);
    assert_eq!(body["plans"][0]["actions"][0]["state"], "planned");
    assert_eq!(
        body["plans"][0]["actions"][0]["reason"],
        "steal 22% with load5/vCPU 1.4 for 30 min"
    );

    let approve = format!("/v1/rebalance/plans/{id}/approve");
    let (status, body) = call!(app, "POST", &approve, READER);
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], "steward.forbidden");

    let (status, body) = call!(app, "POST", &approve, ADMIN);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["state"], "approved");
    assert_eq!(body["actions"][0]["state"], "approved");
    assert!(body["decided_by"].as_str().unwrap().starts_with("admin"));

    let (status, body) = call!(app, "POST", &approve, ADMIN);
    assert_eq!(status, 409, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains(&id));

    let (status, body) = call!(app, "GET", "/v1/migrations?state=approved", READER);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["migrations"].as_array().unwrap().len(), 1);
    assert_eq!(
        body["migrations"][0]["vm"],
        "8d2f6c1e-3b7a-4c55-9f0e-2a1b3c4d5e6f"
    );

    let (status, body) = call!(
        app,
        "POST",
        &format!("/v1/rebalance/plans/{id}/cancel"),
        ADMIN
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["state"], "cancelled");
    assert_eq!(body["actions"][0]["state"], "aborted");

    let (status, body) = call!(app, "GET", "/v1/migrations?state=approved", READER);
    assert_eq!(status, 200);
    assert!(body["migrations"].as_array().unwrap().is_empty());
}

#[actix_web::test]
async fn bad_ids_states_and_dry_run_plans_are_refused_with_what_to_do() {
    let (_dir, st) = state("").await;
    let dry = seed_plan(&st, "dry-run").await;
    let app = test::init_service(steward::api::app(st)).await;

    let (status, body) = call!(app, "POST", "/v1/rebalance/plans/not-a-plan/approve", ADMIN);
    assert_eq!(status, 404, "{body}");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("GET /v1/rebalance/plans"));

    let missing = "11111111-2222-4333-8444-555555555555";
    let (status, body) = call!(
        app,
        "POST",
        &format!("/v1/rebalance/plans/{missing}/cancel"),
        ADMIN
    );
    assert_eq!(status, 404, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains(missing));

    let (status, body) = call!(
        app,
        "POST",
        &format!("/v1/rebalance/plans/{dry}/approve"),
        ADMIN
    );
    assert_eq!(status, 409, "{body}");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("dry-run"));

    let (status, body) = call!(app, "GET", "/v1/migrations?state=moving", READER);
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["field"], "state");

    let (status, _) = call!(app, "GET", "/v1/rebalance/plans?limit=0", READER);
    assert_eq!(status, 400);

    let (status, body) = call!(app, "GET", "/openapi.json", READER);
    assert_eq!(status, 200);
    for p in [
        "/v1/rebalance/plans",
        "/v1/rebalance/plans/{id}/approve",
        "/v1/rebalance/plans/{id}/cancel",
        "/v1/migrations",
    ] {
        assert!(body["paths"].get(p).is_some(), "{p} is documented");
    }
}
