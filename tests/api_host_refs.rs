//! Host references (docs/callout.md): a host sent in full once may be named by the SHA-256
//! prefix of its JSON text; steward computes that digest from the bytes it received, keeps the
//! checked host, and answers 409 for a reference it does not hold.

mod common;

use actix_web::dev::ServiceResponse;
use actix_web::test;
use common::app::{state, READER};
use serde_json::Value;
use steward::api::host_cache::{format_ref, host_ref};

const HEAD: &str = r#"{"operation":"live_migrate","instance":{"uuid":"0b6d3c1e-5a7f-4f0e-9d61-2f4f8d0c7a01","current_host":"src","current_az":"az1"},"hosts":["#;

/// The body with these entries, each exactly as given.
fn body(entries: &[&str]) -> Vec<u8> {
    format!("{HEAD}{}]}}", entries.join(",")).into_bytes()
}

/// The reference of an entry's JSON text.
fn refer(entry: &str) -> String {
    format!("\"{}\"", format_ref(&host_ref(entry.as_bytes())))
}

const A: &str = r#"{"host":"cmp-a","az":"az1","vcpus_total":64,"vcpus_used":8}"#;
const B: &str = r#"{"host":"cmp-b","az":"az2","vcpus_total":64,"vcpus_used":8}"#;

struct Answer {
    status: u16,
    cache_header: Option<String>,
    json: Value,
}

/// A callout from a caller that sends references (it asks steward to keep its hosts).
fn req(url: &str, payload: Vec<u8>) -> test::TestRequest {
    plain_req(url, payload).insert_header(("X-Steward-Host-Cache", "1"))
}

/// A callout from a caller that always sends hosts in full.
fn plain_req(url: &str, payload: Vec<u8>) -> test::TestRequest {
    test::TestRequest::post()
        .uri(url)
        .insert_header(("Authorization", format!("Bearer {READER}")))
        .set_payload(payload)
}

async fn answer<B: actix_web::body::MessageBody>(resp: ServiceResponse<B>) -> Answer {
    let status = resp.status().as_u16();
    let cache_header = resp
        .headers()
        .get("x-steward-host-cache")
        .map(|v| v.to_str().unwrap().to_string());
    let json = serde_json::from_slice(&test::read_body(resp).await).unwrap();
    Answer {
        status,
        cache_header,
        json,
    }
}

/// POST `body` to `url` of the app as the reader.
macro_rules! post {
    ($app:expr, $url:expr, $body:expr) => {
        answer(test::call_service($app, req($url, $body).to_request()).await).await
    };
}

#[actix_web::test]
async fn a_host_sent_once_can_be_named_by_reference_with_the_same_answer() {
    let (_dir, st) = state("").await;
    let app = test::init_service(steward::api::app(st)).await;
    let full = post!(&app, "/v1/filter", body(&[A, B]));
    assert_eq!(full.status, 200, "{}", full.json);
    assert_eq!(full.cache_header.as_deref(), Some("20000"));
    // cmp-b is in az2: a move of an az1 instance may not go there.
    assert_eq!(full.json["rejected"][0]["host"], "cmp-b");

    for entries in [[refer(A), refer(B)], [refer(A), B.to_string()]] {
        let entries: Vec<&str> = entries.iter().map(String::as_str).collect();
        let again = post!(&app, "/v1/filter", body(&entries));
        assert_eq!(again.status, 200, "{}", again.json);
        for key in ["allowed", "rejected", "profile", "degraded"] {
            assert_eq!(again.json[key], full.json[key], "{key}");
        }
    }
    let weighed = post!(&app, "/v1/weigh", body(&[&refer(B), &refer(A)]));
    assert_eq!(weighed.status, 200, "{}", weighed.json);
    let names: Vec<&str> = weighed.json["weights"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["host"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["cmp-b", "cmp-a"],
        "referenced hosts keep their order"
    );

    let req = test::TestRequest::get()
        .uri("/metrics")
        .insert_header(("Authorization", format!("Bearer {READER}")))
        .to_request();
    let text = String::from_utf8(test::call_and_read_body(&app, req).await.to_vec()).unwrap();
    // Sent: A, B in full; then A, B by reference; A by reference, B in full; B, A by reference.
    assert!(
        text.contains("steward_callout_hosts_total{sent=\"full\"} 3"),
        "{text}"
    );
    assert!(
        text.contains("steward_callout_hosts_total{sent=\"reference\"} 5"),
        "{text}"
    );
}

#[actix_web::test]
async fn an_unknown_reference_is_a_409_naming_the_entry() {
    let (_dir, st) = state("").await;
    let app = test::init_service(steward::api::app(st)).await;
    let unknown = refer(r#"{"host":"cmp-x"}"#);
    let a = post!(&app, "/v1/weigh", body(&[A, &unknown, &unknown]));
    assert_eq!(a.status, 409, "{}", a.json);
    assert_eq!(a.json["error"]["code"], "steward.unknown_host_refs");
    assert_eq!(a.json["error"]["field"], "hosts[1]");
    let msg = a.json["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("2 of the 2 host references") && msg.contains("send those hosts in full"),
        "{msg}"
    );
    assert_eq!(a.cache_header, None, "only a 200 tells what steward keeps");
}

#[actix_web::test]
async fn a_reference_names_the_exact_bytes_steward_received() {
    let (_dir, st) = state("").await;
    let app = test::init_service(steward::api::app(st)).await;
    let spaced = r#"{"host": "cmp-a", "az": "az1", "vcpus_total": 64, "vcpus_used": 8}"#;
    assert_eq!(post!(&app, "/v1/filter", body(&[spaced])).status, 200);
    // The same host, other bytes: not what was sent, so not known. Nobody can make a
    // reference stand for facts other than the text it is the digest of.
    assert_eq!(post!(&app, "/v1/filter", body(&[&refer(A)])).status, 409);
    assert_eq!(
        post!(&app, "/v1/filter", body(&[&refer(spaced)])).status,
        200
    );
}

#[actix_web::test]
async fn a_refused_request_keeps_none_of_its_hosts() {
    let (_dir, st) = state("").await;
    let app = test::init_service(steward::api::app(st)).await;
    let bad = r#"{"host":"cmp-c","vcpus_total":-1}"#;
    let a = post!(&app, "/v1/filter", body(&[A, bad]));
    assert_eq!(a.status, 400, "{}", a.json);
    assert_eq!(a.json["error"]["field"], "hosts[1].vcpus_total");
    assert_eq!(post!(&app, "/v1/filter", body(&[&refer(A)])).status, 409);
}

#[actix_web::test]
async fn checks_across_hosts_see_referenced_ones() {
    let (_dir, st) = state("").await;
    let app = test::init_service(steward::api::app(st)).await;
    assert_eq!(post!(&app, "/v1/filter", body(&[A])).status, 200);
    let twice = post!(&app, "/v1/filter", body(&[&refer(A), A]));
    assert_eq!(twice.status, 400, "{}", twice.json);
    assert_eq!(twice.json["error"]["field"], "hosts[1].host");
    let other_az = r#"{"host":"cmp-a","nodename":"n2","az":"az3"}"#;
    let split = post!(&app, "/v1/filter", body(&[&refer(A), other_az]));
    assert_eq!(split.status, 400, "{}", split.json);
    assert_eq!(split.json["error"]["field"], "hosts[1].az");
}

#[actix_web::test]
async fn what_is_not_a_host_or_a_reference_is_a_400_naming_it() {
    let (_dir, st) = state("").await;
    let app = test::init_service(steward::api::app(st)).await;
    for (entry, says) in [
        ("\"cmp-a\"", "is not a host reference"),
        (
            &format!("\"{}\"", "ab".repeat(15)),
            "is not a host reference",
        ),
        (
            &format!("\"{}\"", "zz".repeat(16)),
            "is not a host reference",
        ),
        (
            &format!("\"\\u0061{}\"", "a".repeat(31)),
            "is not a host reference",
        ),
        ("42", "expected a host object or a host reference"),
        ("null", "expected a host object or a host reference"),
        ("[]", "expected a host object or a host reference"),
    ] {
        let a = post!(&app, "/v1/filter", body(&[A, entry]));
        assert_eq!(a.status, 400, "{entry}: {}", a.json);
        assert_eq!(a.json["error"]["field"], "hosts[1]", "{entry}");
        let msg = a.json["error"]["message"].as_str().unwrap();
        assert!(msg.contains(says), "{entry}: {msg}");
    }
}

#[actix_web::test]
async fn with_no_host_cache_nothing_is_kept_or_announced() {
    let (_dir, st) = state("[server]\nhost_cache_entries = 0\n").await;
    let app = test::init_service(steward::api::app(st)).await;
    let a = post!(&app, "/v1/filter", body(&[A]));
    assert_eq!(a.status, 200);
    assert_eq!(a.cache_header, None);
    let again = post!(&app, "/v1/filter", body(&[&refer(A)]));
    assert_eq!(again.status, 409, "{}", again.json);
    assert!(again.json["error"]["message"]
        .as_str()
        .unwrap()
        .contains("host_cache_entries = 0"));
}

#[actix_web::test]
async fn a_caller_that_does_not_ask_has_nothing_kept_or_announced() {
    let (_dir, st) = state("").await;
    let app = test::init_service(steward::api::app(st)).await;
    let a =
        answer(test::call_service(&app, plain_req("/v1/filter", body(&[A])).to_request()).await)
            .await;
    assert_eq!(a.status, 200, "{}", a.json);
    assert_eq!(a.cache_header, None);
    assert_eq!(post!(&app, "/v1/filter", body(&[&refer(A)])).status, 409);
}
