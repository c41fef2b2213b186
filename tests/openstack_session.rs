//! The Keystone session against wiremock serving recorded Keystone, Nova and Placement answers:
//! the login bodies Keystone expects, token reuse and renewal, the catalog, the headers every
//! call carries, and errors that explain themselves without showing a secret.

mod openstack_support;

use std::time::Duration;

use openstack_support::*;
use serde_json::{json, Value};
use steward::openstack::cloud::{resolve, ConfigText};
use steward::openstack::session::{tokens_url, Catalog};
use steward::openstack::{Error, Interface, Microversion, SessionOptions};
use wiremock::matchers::{header as has_header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const AGGREGATES: &str = "/v2.1/os-aggregates";

async fn mount_aggregates(server: &MockServer) {
    Mock::given(method("GET"))
        .and(path(AGGREGATES))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(fixture("nova-2.87-aggregates", &server.uri())),
        )
        .mount(server)
        .await;
}

async fn get_aggregates(s: &steward::openstack::Session) -> Result<Value, Error> {
    s.get_json(
        "compute",
        Some(&Microversion::compute("2.87")),
        "os-aggregates",
        &[],
    )
    .await
}

#[tokio::test]
async fn a_password_login_sends_exactly_what_keystone_expects() {
    let server = MockServer::start().await;
    mount_keystone(&server, &[TOKEN_1]).await;
    mount_aggregates(&server).await;
    let s = session(cloud(&server.uri(), "steward", &[]));
    get_aggregates(&s).await.unwrap();

    let logins = requests_to(&server, "/v3/auth/tokens").await;
    assert_eq!(logins.len(), 1);
    // The body the real Keystone 30 accepted when the fixtures were recorded.
    assert_eq!(
        json(&logins[0]),
        json!({"auth": {
            "identity": {"methods": ["password"], "password": {"user": {
                "name": USERNAME, "domain": {"name": "Default"}, "password": PASSWORD}}},
            "scope": {"project": {"name": "admin", "domain": {"name": "Default"}}}
        }})
    );
    assert_eq!(header(&logins[0], "content-type"), Some("application/json"));
    // The token from X-Subject-Token is what the next call carries.
    let calls = requests_to(&server, AGGREGATES).await;
    assert_eq!(header(&calls[0], "x-auth-token"), Some(TOKEN_1));
}

#[tokio::test]
async fn an_application_credential_login_sends_exactly_what_keystone_expects() {
    let server = MockServer::start().await;
    mount_keystone(&server, &[TOKEN_1]).await;
    mount_aggregates(&server).await;
    let s = session(cloud(&server.uri(), "steward-appcred", &[]));
    get_aggregates(&s).await.unwrap();
    let logins = requests_to(&server, "/v3/auth/tokens").await;
    // No scope: an application credential carries its own.
    assert_eq!(
        json(&logins[0]),
        json!({"auth": {"identity": {
            "methods": ["application_credential"],
            "application_credential": {"id": APP_CRED_ID, "secret": APP_CRED_SECRET}
        }}})
    );
}

#[tokio::test]
async fn one_token_serves_many_calls_until_it_nears_expiry() {
    let server = MockServer::start().await;
    mount_keystone(&server, &[TOKEN_1]).await;
    mount_aggregates(&server).await;
    let s = session(cloud(&server.uri(), "steward", &[]));
    for _ in 0..3 {
        get_aggregates(&s).await.unwrap();
    }
    // Concurrent callers share one login too.
    let (a, b, c) = tokio::join!(get_aggregates(&s), get_aggregates(&s), get_aggregates(&s));
    a.unwrap();
    b.unwrap();
    c.unwrap();
    assert_eq!(requests_to(&server, "/v3/auth/tokens").await.len(), 1);
    assert_eq!(s.logins(), 1);
}

#[tokio::test]
async fn a_token_within_a_minute_of_expiry_is_renewed_before_use() {
    let server = MockServer::start().await;
    // Keystone issues tokens that expire in 30 s: inside the one-minute margin.
    mount_keystone_expiring(&server, &[TOKEN_1, TOKEN_2], Duration::from_secs(30)).await;
    mount_aggregates(&server).await;
    let s = session(cloud(&server.uri(), "steward", &[]));
    get_aggregates(&s).await.unwrap();
    get_aggregates(&s).await.unwrap();
    assert_eq!(s.logins(), 2, "the second call logged in again");
    let calls = requests_to(&server, AGGREGATES).await;
    assert_eq!(header(&calls[0], "x-auth-token"), Some(TOKEN_1));
    assert_eq!(header(&calls[1], "x-auth-token"), Some(TOKEN_2));

    // The margin is an option: with none, a 30-second token is still good.
    let server = MockServer::start().await;
    mount_keystone_expiring(&server, &[TOKEN_1], Duration::from_secs(30)).await;
    mount_aggregates(&server).await;
    let s = session_with(
        cloud(&server.uri(), "steward", &[]),
        SessionOptions {
            renew_before_expiry: Duration::ZERO,
            ..SessionOptions::default()
        },
    );
    get_aggregates(&s).await.unwrap();
    get_aggregates(&s).await.unwrap();
    assert_eq!(s.logins(), 1);
}

#[tokio::test]
async fn a_401_logs_in_again_once_and_the_retry_succeeds() {
    let server = MockServer::start().await;
    mount_keystone(&server, &[TOKEN_1, TOKEN_2]).await;
    // The first token was revoked early: Nova refuses it, as it answers a bad token.
    Mock::given(method("GET"))
        .and(path(AGGREGATES))
        .and(has_header("x-auth-token", TOKEN_1))
        .respond_with(
            ResponseTemplate::new(401)
                .set_body_json(fixture("nova-error-401-bad-token", &server.uri())),
        )
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(AGGREGATES))
        .and(has_header("x-auth-token", TOKEN_2))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(fixture("nova-2.87-aggregates", &server.uri())),
        )
        .mount(&server)
        .await;
    let s = session(cloud(&server.uri(), "steward", &[]));
    let body = get_aggregates(&s).await.unwrap();
    assert_eq!(body["aggregates"].as_array().unwrap().len(), 3);
    assert_eq!(s.logins(), 2);
    assert_eq!(requests_to(&server, AGGREGATES).await.len(), 2);
    // The renewed token stays in use.
    get_aggregates(&s).await.unwrap();
    assert_eq!(s.logins(), 2);
}

#[tokio::test]
async fn a_second_401_is_an_error_that_says_what_to_check() {
    let server = MockServer::start().await;
    mount_keystone(&server, &[TOKEN_1, TOKEN_2]).await;
    Mock::given(method("GET"))
        .and(path(AGGREGATES))
        .respond_with(
            ResponseTemplate::new(401)
                .set_body_json(fixture("nova-error-401-bad-token", &server.uri())),
        )
        .mount(&server)
        .await;
    let s = session(cloud(&server.uri(), "steward", &[]));
    let err = get_aggregates(&s).await.unwrap_err();
    assert!(matches!(err, Error::Unauthorized { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("401"), "{text}");
    assert!(
        text.contains(&format!("{}{AGGREGATES}", server.uri())),
        "{text}"
    );
    assert!(
        text.contains("The request you have made requires authentication."),
        "Nova's own message: {text}"
    );
    assert!(text.contains("just issued"), "{text}");
    assert!(text.contains("cloud \"steward\""), "{text}");
    for secret in [TOKEN_1, TOKEN_2, PASSWORD] {
        assert!(!text.contains(secret), "{text}");
        assert!(!format!("{err:?}").contains(secret));
    }
    // Exactly one retry: two service calls, two logins.
    assert_eq!(requests_to(&server, AGGREGATES).await.len(), 2);
    assert_eq!(s.logins(), 2);
}

#[tokio::test]
async fn keystone_refusing_the_password_names_the_cloud_and_hides_the_password() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v3/auth/tokens"))
        .respond_with(
            ResponseTemplate::new(401)
                .set_body_json(fixture("keystone-error-401-wrong-password", &server.uri())),
        )
        .mount(&server)
        .await;
    let s = session(cloud(&server.uri(), "steward", &[]));
    let err = get_aggregates(&s).await.unwrap_err();
    let text = err.to_string();
    assert!(text.contains("refused the password credentials"), "{text}");
    assert!(text.contains("cloud \"steward\""), "{text}");
    assert!(text.contains("/v3/auth/tokens"), "{text}");
    assert!(!text.contains(PASSWORD), "{text}");
    assert!(!format!("{err:?}").contains(PASSWORD));
}

#[tokio::test]
async fn an_answer_without_x_subject_token_is_explained() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v3/auth/tokens"))
        .respond_with(
            ResponseTemplate::new(201)
                .set_body_json(token_body(&server.uri(), Duration::from_secs(3600))),
        )
        .mount(&server)
        .await;
    let s = session(cloud(&server.uri(), "steward", &[]));
    let err = get_aggregates(&s).await.unwrap_err();
    assert!(err.to_string().contains("X-Subject-Token"), "{err}");
}

#[tokio::test]
async fn every_call_carries_token_user_agent_request_id_and_microversion() {
    let server = MockServer::start().await;
    mount_keystone(&server, &[TOKEN_1]).await;
    mount_aggregates(&server).await;
    Mock::given(method("GET"))
        .and(path("/resource_providers"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(fixture("placement-1.39-resource-providers", &server.uri())),
        )
        .mount(&server)
        .await;
    let s = session(cloud(&server.uri(), "steward", &[]));
    get_aggregates(&s).await.unwrap();
    let _: Value = s
        .get_json(
            "placement",
            Some(&Microversion::placement("1.39")),
            "resource_providers",
            &[],
        )
        .await
        .unwrap();

    let nova = &requests_to(&server, AGGREGATES).await[0];
    assert_eq!(header(nova, "x-auth-token"), Some(TOKEN_1));
    assert_eq!(
        header(nova, "user-agent"),
        Some(concat!("nova-steward/", env!("CARGO_PKG_VERSION")))
    );
    assert_eq!(header(nova, "openstack-api-version"), Some("compute 2.87"));
    assert_eq!(header(nova, "x-openstack-nova-api-version"), Some("2.87"));
    assert_eq!(header(nova, "accept"), Some("application/json"));
    let placement = &requests_to(&server, "/resource_providers").await[0];
    assert_eq!(
        header(placement, "openstack-api-version"),
        Some("placement 1.39")
    );
    assert_eq!(header(placement, "x-openstack-nova-api-version"), None);

    // A new request id per call, in the form Nova adopts as its global request id.
    let ids: Vec<&str> = [nova, placement]
        .iter()
        .map(|r| header(r, "x-openstack-request-id").unwrap())
        .collect();
    assert_ne!(ids[0], ids[1]);
    for id in ids {
        let uuid = id.strip_prefix("req-").expect("req- prefix");
        let parsed = uuid::Uuid::parse_str(uuid).unwrap();
        assert_eq!(parsed.get_version_num(), 4, "{id}");
    }
}

#[tokio::test]
async fn the_catalog_is_read_by_interface_and_region() {
    let server = MockServer::start().await;
    let base = server.uri();
    // The recorded catalog, with Nova's internal endpoint and a second region moved elsewhere.
    let mut body = token_body(&base, Duration::from_secs(3600));
    for svc in body["token"]["catalog"].as_array_mut().unwrap() {
        if svc["type"] == "compute" {
            for ep in svc["endpoints"].as_array_mut().unwrap() {
                if ep["interface"] == "internal" {
                    ep["url"] = json!(format!("{base}/internal/v2.1"));
                }
            }
            let mut two = svc["endpoints"][0].clone();
            two["region"] = json!("RegionTwo");
            two["region_id"] = json!("RegionTwo");
            two["url"] = json!(format!("{base}/two/v2.1"));
            svc["endpoints"].as_array_mut().unwrap().push(two);
        }
    }
    Mock::given(method("POST"))
        .and(path("/v3/auth/tokens"))
        .respond_with(
            ResponseTemplate::new(201)
                .insert_header("X-Subject-Token", TOKEN_1)
                .set_body_json(body),
        )
        .mount(&server)
        .await;
    let at = |vars: &[(&str, &str)]| session(cloud(&base, "steward", vars));
    assert_eq!(
        at(&[]).endpoint("compute").await.unwrap().as_str(),
        format!("{base}/v2.1")
    );
    assert_eq!(
        at(&[("OS_INTERFACE", "internal")])
            .endpoint("compute")
            .await
            .unwrap()
            .as_str(),
        format!("{base}/internal/v2.1")
    );
    assert_eq!(
        at(&[("OS_REGION_NAME", "RegionTwo")])
            .endpoint("compute")
            .await
            .unwrap()
            .as_str(),
        format!("{base}/two/v2.1")
    );
    // An override beats the catalog.
    assert_eq!(
        at(&[(
            "OS_PLACEMENT_ENDPOINT_OVERRIDE",
            "http://placement.local:8778"
        )])
        .endpoint("placement")
        .await
        .unwrap()
        .as_str(),
        "http://placement.local:8778/"
    );

    // A service the catalog lacks: the message says what is missing and what is there.
    let err = at(&[]).endpoint("baremetal").await.unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, Error::Endpoint { .. }), "{err:?}");
    assert!(
        text.contains("no public endpoint of service type \"baremetal\" in region \"RegionOne\""),
        "{text}"
    );
    assert!(text.contains("compute (admin in RegionOne"), "{text}");
    assert!(text.contains("placement ("), "{text}");
    assert!(text.contains("baremetal_endpoint_override"), "{text}");
    let err = at(&[("OS_REGION_NAME", "RegionThree")])
        .endpoint("compute")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("RegionThree"), "{err}");
}

#[test]
fn catalog_lookup_without_a_region_takes_the_first_match() {
    let body = fixture("keystone-token-password-project-scoped", "http://h");
    let catalog: Catalog = serde_json::from_value(body["token"]["catalog"].clone()).unwrap();
    assert_eq!(
        catalog
            .endpoint("placement", Interface::Admin, None)
            .unwrap(),
        "http://h"
    );
    assert_eq!(
        catalog
            .endpoint("identity", Interface::Public, Some("RegionOne"))
            .unwrap(),
        "http://h/v3/"
    );
    let empty = Catalog::default();
    let err = empty
        .endpoint("compute", Interface::Public, None)
        .unwrap_err();
    assert!(err.contains("unscoped"), "{err}");
}

#[test]
fn the_tokens_url_is_built_from_a_root_or_a_versioned_auth_url() {
    for (given, wanted) in [
        ("http://k:5000", "http://k:5000/v3/auth/tokens"),
        ("http://k:5000/", "http://k:5000/v3/auth/tokens"),
        ("http://k:5000/v3", "http://k:5000/v3/auth/tokens"),
        ("http://k:5000/v3/", "http://k:5000/v3/auth/tokens"),
        (
            "https://cloud/identity/v3",
            "https://cloud/identity/v3/auth/tokens",
        ),
        (
            "https://cloud/identity",
            "https://cloud/identity/v3/auth/tokens",
        ),
    ] {
        let u = url::Url::parse(given).unwrap();
        assert_eq!(tokens_url(&u).as_str(), wanted, "{given}");
    }
}

#[tokio::test]
async fn a_static_token_needs_no_keystone_and_is_never_renewed() {
    let server = MockServer::start().await;
    let base = server.uri();
    let yaml = format!(
        "clouds:\n  noauth:\n    auth_type: admin_token\n    auth:\n      token: admin\n      \
         endpoint: {base}/v2.1\n    placement_endpoint_override: {base}/\n"
    );
    let c = resolve(
        Some("noauth"),
        &[],
        Some(&ConfigText::new("clouds.yaml", yaml)),
        None,
    )
    .unwrap();
    mount_aggregates(&server).await;
    let s = session(c);
    get_aggregates(&s).await.unwrap();
    let calls = requests_to(&server, AGGREGATES).await;
    assert_eq!(header(&calls[0], "x-auth-token"), Some("admin"));
    assert!(requests_to(&server, "/v3/auth/tokens").await.is_empty());
    assert_eq!(s.logins(), 0);

    // A refused static token cannot be renewed: one call, a clear error.
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(
            ResponseTemplate::new(401)
                .set_body_json(fixture("nova-error-401-bad-token", &server.uri())),
        )
        .mount(&server)
        .await;
    let yaml = format!(
        "clouds:\n  noauth:\n    auth_type: admin_token\n    auth:\n      token: static-tok-0001\n      \
         endpoint: {}/v2.1\n",
        server.uri()
    );
    let c = resolve(
        Some("noauth"),
        &[],
        Some(&ConfigText::new("clouds.yaml", yaml)),
        None,
    )
    .unwrap();
    let s = session(c);
    let err = get_aggregates(&s).await.unwrap_err();
    assert!(err.to_string().contains("static token"), "{err}");
    assert!(!err.to_string().contains("static-tok-0001"), "{err}");
    assert_eq!(server.received_requests().await.unwrap().len(), 1);
}

#[tokio::test]
async fn service_errors_carry_status_message_code_and_request_id() {
    let server = MockServer::start().await;
    mount_keystone(&server, &[TOKEN_1]).await;
    Mock::given(method("GET"))
        .and(path("/v2.1/servers/42d7d28a-cc07-4f10-9b9e-c601a2f70410"))
        .respond_with(
            ResponseTemplate::new(404)
                .insert_header(
                    "x-openstack-request-id",
                    "req-1a872d32-086b-49c9-b402-5ea5b6999a8b",
                )
                .set_body_json(fixture("nova-error-404-server-not-found", &server.uri())),
        )
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v2.1/servers/detail"))
        .respond_with(ResponseTemplate::new(406).set_body_json(fixture(
            "nova-error-406-microversion-too-high",
            &server.uri(),
        )))
        .mount(&server)
        .await;
    let s = session(cloud(&server.uri(), "steward", &[]));
    let mv = Microversion::compute("2.87");
    let err = s
        .get_json::<Value>(
            "compute",
            Some(&mv),
            "servers/42d7d28a-cc07-4f10-9b9e-c601a2f70410",
            &[],
        )
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(404));
    assert_eq!(
        err.to_string(),
        format!(
            "GET {}/v2.1/servers/42d7d28a-cc07-4f10-9b9e-c601a2f70410 answered 404: Instance \
             42d7d28a-cc07-4f10-9b9e-c601a2f70410 could not be found. [request \
             req-1a872d32-086b-49c9-b402-5ea5b6999a8b]",
            server.uri()
        )
    );
    let err = s
        .get_json::<Value>(
            "compute",
            Some(&Microversion::compute("2.999")),
            "servers/detail",
            &[("all_tenants", "1".into())],
        )
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains(
            "406: Version 2.999 is not supported by the API. Minimum is 2.1 and maximum is 2.104."
        ),
        "{err}"
    );
    assert!(
        err.to_string().contains("servers/detail?all_tenants=1"),
        "{err}"
    );
}

#[tokio::test]
async fn a_service_that_echoes_a_secret_does_not_leak_it() {
    let server = MockServer::start().await;
    mount_keystone(&server, &[TOKEN_1]).await;
    Mock::given(method("GET"))
        .and(path(AGGREGATES))
        .respond_with(ResponseTemplate::new(500).set_body_json(json!({
            "computeFault": {"code": 500, "message": format!(
                "Unexpected error for token {TOKEN_1} (password {PASSWORD})")}
        })))
        .mount(&server)
        .await;
    let s = session(cloud(&server.uri(), "steward", &[]));
    let err = get_aggregates(&s).await.unwrap_err();
    let text = format!("{err} {err:?} {s:?}");
    assert!(text.contains("Unexpected error for token ***"), "{text}");
    assert!(!text.contains(TOKEN_1), "{text}");
    assert!(!text.contains(PASSWORD), "{text}");
}

#[tokio::test]
async fn an_unreachable_service_and_a_slow_one_are_named() {
    // Nothing listens on port 9 of loopback.
    let c = resolve(
        None,
        &env(&[
            ("OS_AUTH_TYPE", "admin_token"),
            ("OS_TOKEN", "admin"),
            ("OS_ENDPOINT", "http://127.0.0.1:9/v2.1"),
        ]),
        None,
        None,
    )
    .unwrap();
    let err = get_aggregates(&session(c)).await.unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, Error::Transport { .. }), "{err:?}");
    assert!(
        text.contains("GET http://127.0.0.1:9/v2.1/os-aggregates"),
        "{text}"
    );
    assert!(text.contains("cannot connect"), "{text}");

    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(5)))
        .mount(&server)
        .await;
    let c = resolve(
        None,
        &env(&[
            ("OS_AUTH_TYPE", "admin_token"),
            ("OS_TOKEN", "admin"),
            ("OS_ENDPOINT", &format!("{}/v2.1", server.uri())),
        ]),
        None,
        None,
    )
    .unwrap();
    let s = session_with(
        c,
        SessionOptions {
            timeout: Duration::from_millis(300),
            ..SessionOptions::default()
        },
    );
    let err = get_aggregates(&s).await.unwrap_err();
    assert!(err.to_string().contains("no answer within 300ms"), "{err}");
}

#[tokio::test]
async fn the_cloud_api_timeout_sets_the_session_timeout() {
    let c = resolve(
        None,
        &env(&[
            ("OS_AUTH_TYPE", "admin_token"),
            ("OS_TOKEN", "admin"),
            ("OS_API_TIMEOUT", "7.5"),
        ]),
        None,
        None,
    )
    .unwrap();
    assert_eq!(
        SessionOptions::for_cloud(&c).timeout,
        Duration::from_millis(7500)
    );
}

#[test]
fn urls_in_messages_lose_credentials() {
    let u = url::Url::parse("https://user:pw@keystone.example/v3/x?token=abc&limit=2").unwrap();
    assert_eq!(
        steward::openstack::redact_url(&u),
        "https://keystone.example/v3/x?token=***&limit=2"
    );
}

/// A server that closes the first `drops` connections after reading the request (as a server
/// whose keep-alive ran out does), then answers `body` with 200.
fn flaky_server(
    drops: usize,
    body: &'static str,
) -> (u16, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = seen.clone();
    std::thread::spawn(move || {
        for (i, stream) in listener.incoming().enumerate() {
            let Ok(mut stream) = stream else { continue };
            let mut buf = [0u8; 8192];
            let _ = stream.read(&mut buf);
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            if i < drops {
                drop(stream); // no answer at all
                continue;
            }
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    (port, seen)
}

fn static_cloud(port: u16) -> steward::openstack::CloudConfig {
    resolve(
        None,
        &env(&[
            ("OS_AUTH_TYPE", "admin_token"),
            ("OS_TOKEN", "admin"),
            ("OS_ENDPOINT", &format!("http://127.0.0.1:{port}/v2.1")),
        ]),
        None,
        None,
    )
    .unwrap()
}

#[tokio::test]
async fn a_read_cut_off_before_its_answer_is_sent_again_once() {
    let (port, seen) = flaky_server(1, r#"{"aggregates": []}"#);
    let s = session(static_cloud(port));
    get_aggregates(&s).await.unwrap();
    assert_eq!(seen.load(std::sync::atomic::Ordering::SeqCst), 2);
    // Cut off twice: the second failure is the caller's.
    let (port, seen) = flaky_server(2, r#"{"aggregates": []}"#);
    let err = get_aggregates(&session(static_cloud(port)))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Transport { .. }), "{err:?}");
    assert_eq!(seen.load(std::sync::atomic::Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_write_cut_off_is_never_sent_again() {
    let (port, seen) = flaky_server(1, "{}");
    let s = session(static_cloud(port));
    let err = s
        .request(
            reqwest::Method::POST,
            "compute",
            None,
            "/os-aggregates",
            &[],
            Some(&serde_json::json!({"aggregate": {"name": "x"}})),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Transport { .. }), "{err:?}");
    assert_eq!(
        seen.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "it may have been applied"
    );
}

#[test]
fn the_wait_before_a_503_retry_follows_retry_after_within_bounds() {
    let o = SessionOptions::default();
    assert_eq!(o.wait_after_503(1, Some("2")), Duration::from_secs(2));
    assert_eq!(o.wait_after_503(1, Some(" 0 ")), Duration::ZERO);
    // A Retry-After longer than the cap waits the cap.
    assert_eq!(o.wait_after_503(1, Some("3600")), o.retry_max_wait);
    // Without one (or with an HTTP-date), a doubling backoff.
    assert_eq!(o.wait_after_503(1, None), Duration::from_millis(500));
    assert_eq!(o.wait_after_503(2, None), Duration::from_secs(1));
    assert_eq!(
        o.wait_after_503(3, Some("Wed, 21 Oct 2026 07:28:00 GMT")),
        Duration::from_secs(2)
    );
    assert_eq!(o.wait_after_503(40, None), o.retry_max_wait);
}
