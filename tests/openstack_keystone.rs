//! Validation of callers' tokens with steward's own session (`GET /v3/auth/tokens` with
//! `X-Subject-Token`), against wiremock serving Keystone's recorded token body: the verdicts,
//! the cache in front of Keystone, and errors that never show the caller's token.

mod openstack_support;

use std::time::Duration;

use openstack_support::*;
use steward::openstack::keystone::{CachedValidator, Keystone, Validation};
use steward::openstack::Secret;
use wiremock::matchers::{header as has_header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const CALLER: &str = "gAAAAABcaller-token-never-printed";

async fn keystone_validating(server: &MockServer, answer: ResponseTemplate) {
    mount_keystone(server, &[TOKEN_1]).await;
    Mock::given(method("GET"))
        .and(path("/v3/auth/tokens"))
        .and(has_header("x-subject-token", CALLER))
        .respond_with(answer)
        .mount(server)
        .await;
}

fn keystone(server: &MockServer) -> Keystone {
    Keystone::new(session(cloud(&server.uri(), "steward", &[])))
}

#[tokio::test]
async fn a_valid_token_gives_its_roles_user_project_and_expiry() {
    let server = MockServer::start().await;
    let body = token_body(&server.uri(), Duration::from_secs(600));
    keystone_validating(&server, ResponseTemplate::new(200).set_body_json(&body)).await;
    let v = keystone(&server)
        .validate(&Secret::new(CALLER))
        .await
        .unwrap();
    let Validation::Valid(info) = v else {
        panic!("expected a valid token, got {v:?}")
    };
    // The recorded token of `steward` in project admin: admin implies member implies reader.
    assert_eq!(info.roles, ["manager", "reader", "member", "admin"]);
    assert_eq!(info.user_id, "e7d418f8107743f1bd791743e8d42f1c");
    assert_eq!(
        info.project_id.as_deref(),
        Some("09f2c3c531d14c8f89ff9a26401a5389")
    );
    let left = info.expires_at.unwrap() - time::OffsetDateTime::now_utc();
    assert!(left.whole_seconds() > 590 && left.whole_seconds() <= 600);
    // Steward asked with its own token, the caller's in X-Subject-Token.
    let asks = requests_to(&server, "/v3/auth/tokens").await;
    let get = asks.iter().find(|r| r.method.as_str() == "GET").unwrap();
    assert_eq!(header(get, "x-auth-token"), Some(TOKEN_1));
    assert_eq!(header(get, "x-subject-token"), Some(CALLER));
}

#[tokio::test]
async fn keystones_404_is_an_invalid_token_not_an_error() {
    let server = MockServer::start().await;
    let body = serde_json::json!({"error": {"code": 404, "title": "Not Found",
        "message": format!("Could not find token: {CALLER}.")}});
    keystone_validating(&server, ResponseTemplate::new(404).set_body_json(body)).await;
    let v = keystone(&server)
        .validate(&Secret::new(CALLER))
        .await
        .unwrap();
    assert_eq!(v, Validation::Invalid);
}

#[tokio::test]
async fn an_error_that_echoes_the_callers_token_does_not_show_it() {
    let server = MockServer::start().await;
    let body = serde_json::json!({"error": {"code": 500, "title": "Internal Server Error",
        "message": format!("token {CALLER} broke the backend")}});
    keystone_validating(&server, ResponseTemplate::new(500).set_body_json(body)).await;
    let err = keystone(&server)
        .validate(&Secret::new(CALLER))
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(text.contains("answered 500"), "{text}");
    assert!(text.contains("token *** broke the backend"), "{text}");
    assert!(!text.contains(CALLER) && !format!("{err:?}").contains(CALLER));
}

#[tokio::test]
async fn keystone_unreachable_is_a_transport_error() {
    // wiremock pools its servers (a dropped one still listens): take a port nobody serves.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let base = format!("http://127.0.0.1:{port}");
    let err = Keystone::new(session(cloud(&base, "steward", &[])))
        .validate(&Secret::new(CALLER))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), "transport", "{err}");
    assert!(!err.to_string().contains(CALLER));
}

#[tokio::test]
async fn the_cache_asks_keystone_once_per_token_within_its_time() {
    let server = MockServer::start().await;
    let body = token_body(&server.uri(), Duration::from_secs(600));
    keystone_validating(&server, ResponseTemplate::new(200).set_body_json(&body)).await;
    let v = CachedValidator::new(keystone(&server), Duration::from_secs(60), 100);
    for _ in 0..5 {
        assert!(matches!(
            v.validate(&Secret::new(CALLER)).await.unwrap(),
            Validation::Valid(_)
        ));
    }
    let gets = requests_to(&server, "/v3/auth/tokens")
        .await
        .into_iter()
        .filter(|r| r.method.as_str() == "GET")
        .count();
    assert_eq!(gets, 1);

    // No cache: every request asks.
    let uncached = CachedValidator::new(keystone(&server), Duration::ZERO, 100);
    for _ in 0..3 {
        uncached.validate(&Secret::new(CALLER)).await.unwrap();
    }
    let gets = requests_to(&server, "/v3/auth/tokens")
        .await
        .into_iter()
        .filter(|r| r.method.as_str() == "GET")
        .count();
    assert_eq!(gets, 4);
}

#[tokio::test]
async fn a_steward_user_without_the_service_role_is_told_what_to_grant() {
    let server = MockServer::start().await;
    // Keystone 30's answer when the policy identity:validate_token refuses the caller.
    let body = serde_json::json!({"error": {"code": 403, "title": "Forbidden",
        "message": "You are not authorized to perform the requested action: identity:validate_token."}});
    keystone_validating(&server, ResponseTemplate::new(403).set_body_json(body)).await;
    let err = keystone(&server)
        .validate(&Secret::new(CALLER))
        .await
        .unwrap_err();
    let text = err.to_string();
    assert_eq!(err.kind(), "unauthorized");
    assert!(text.contains("identity:validate_token"), "{text}");
    assert!(text.contains("service role"), "{text}");
    assert!(!text.contains(CALLER));
}
