//! Requests at and past the size limits: 413 naming the limit, never a 5xx or a hang.

mod common;

use actix_web::test;
use common::app::{state, READER};
use serde_json::{json, Value};

fn body(hosts: usize) -> Vec<u8> {
    let hosts: Vec<Value> = (0..hosts)
        .map(|i| json!({"host": format!("h{i}"), "az": format!("az{}", i % 3), "vcpus_total": 64, "vcpus_used": i % 64}))
        .collect();
    serde_json::to_vec(&json!({"operation": "boot", "instance": {"uuid": "6a1c3f6e-2d0b-4c4e-9a57-0e1f2a3b4c5d", "scheduler_hints": {"steward_role": "web"}}, "hosts": hosts})).unwrap()
}

async fn post(extra: &str, url: &str, payload: Vec<u8>) -> (u16, Value) {
    let (_dir, st) = state(extra).await;
    let app = test::init_service(steward::api::app(st)).await;
    let req = test::TestRequest::post()
        .uri(url)
        .insert_header(("Authorization", format!("Bearer {READER}")))
        .set_payload(payload)
        .to_request();
    let resp = test::call_service(&app, req).await;
    let status = resp.status().as_u16();
    (
        status,
        serde_json::from_slice(&test::read_body(resp).await).unwrap(),
    )
}

#[actix_web::test]
async fn a_hundred_thousand_hosts_are_refused_by_max_hosts() {
    let (status, answer) = post("", "/v1/filter", body(100_000)).await;
    assert_eq!(status, 413, "{answer}");
    assert_eq!(answer["error"]["code"], "steward.too_large");
    let msg = answer["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("100000 candidate hosts") && msg.contains("max_hosts = 20000"),
        "{msg}"
    );
}

#[actix_web::test]
async fn max_hosts_is_configurable() {
    let (status, _) = post("[server]\nmax_hosts = 100\n", "/v1/weigh", body(101)).await;
    assert_eq!(status, 413);
    let (status, answer) = post("[server]\nmax_hosts = 100\n", "/v1/weigh", body(100)).await;
    assert_eq!(status, 200, "{answer}");
}

#[actix_web::test]
async fn an_oversized_body_is_refused_before_it_is_parsed() {
    let (status, answer) = post(
        "[server]\nmax_body_bytes = 65536\n",
        "/v1/filter",
        body(5_000),
    )
    .await;
    assert_eq!(status, 413, "{answer}");
    assert!(answer["error"]["message"]
        .as_str()
        .unwrap()
        .contains("max_body_bytes = 65536"));
    let (status, _) = post(
        "[server]\nmax_body_bytes = 65536\n",
        "/v1/telemetry",
        vec![b' '; 70_000],
    )
    .await;
    assert_eq!(
        status, 403,
        "a reader may not push: refused before the body is read"
    );
}

#[actix_web::test]
async fn ten_thousand_hosts_get_an_answer_each() {
    let (status, answer) = post("", "/v1/weigh", body(10_000)).await;
    assert_eq!(status, 200);
    assert_eq!(answer["weights"].as_array().unwrap().len(), 10_000);
    let (status, answer) = post("", "/v1/filter", body(10_000)).await;
    assert_eq!(status, 200);
    assert_eq!(answer["allowed"].as_array().unwrap().len(), 10_000);
}

#[actix_web::test]
async fn a_content_length_past_the_limit_is_refused_unread() {
    let (_dir, st) = state("[server]\nmax_body_bytes = 65536\n").await;
    let app = test::init_service(steward::api::app(st)).await;
    // The header alone decides: the few bytes behind it are never read.
    let req = test::TestRequest::post()
        .uri("/v1/filter")
        .insert_header(("Authorization", format!("Bearer {READER}")))
        .insert_header(("Content-Length", "10000000"))
        .to_request();
    let resp = test::call_service(&app, req).await;
    assert_eq!(resp.status().as_u16(), 413);
    let answer: Value = serde_json::from_slice(&test::read_body(resp).await).unwrap();
    assert!(answer["error"]["message"]
        .as_str()
        .unwrap()
        .contains("max_body_bytes = 65536"));
}
