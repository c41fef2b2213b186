//! Placement reads against wiremock serving answers recorded from the real Placement 16 at 1.39:
//! providers, inventories, usages and aggregates with their generations, and Placement's errors.

mod openstack_support;

use openstack_support::*;
use steward::openstack::placement::Placement;
use steward::openstack::Error;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const A1: &str = "1585b77a-485d-54b5-92e1-dff2909358ad";

async fn placement(server: &MockServer) -> Placement {
    mount_keystone(server, &[TOKEN_1]).await;
    Placement::new(session(cloud(&server.uri(), "steward", &[])))
}

async fn serve(server: &MockServer, p: &str, status: u16, fixture_name: &str) {
    Mock::given(method("GET"))
        .and(path(p))
        .respond_with(
            ResponseTemplate::new(status).set_body_json(fixture(fixture_name, &server.uri())),
        )
        .mount(server)
        .await;
}

/// A provider's recorded inventories and usages, the two reads of its room.
async fn serve_room(server: &MockServer, rp: &str) {
    serve(
        server,
        &format!("{rp}/inventories"),
        200,
        "placement-1.39-inventories",
    )
    .await;
    serve(
        server,
        &format!("{rp}/usages"),
        200,
        "placement-1.39-usages",
    )
    .await;
}

#[tokio::test]
async fn providers_and_their_inventories_usages_and_aggregates() {
    let server = MockServer::start().await;
    let rp = format!("/resource_providers/{A1}");
    serve(
        &server,
        "/resource_providers",
        200,
        "placement-1.39-resource-providers",
    )
    .await;
    serve(&server, &rp, 200, "placement-1.39-resource-provider").await;
    serve_room(&server, &rp).await;
    serve(
        &server,
        &format!("{rp}/aggregates"),
        200,
        "placement-1.39-aggregates",
    )
    .await;
    let pl = placement(&server).await;

    let providers = pl.resource_providers().await.unwrap();
    let names: Vec<&str> = providers.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["cmp-a1", "cmp-a2", "cmp-b1"]);
    assert_eq!(providers[0].uuid, A1);
    assert_eq!(providers[0].generation, 4);
    assert_eq!(providers[0].parent_provider_uuid, None);
    assert_eq!(providers[0].root_provider_uuid.as_deref(), Some(A1));
    assert_eq!(pl.resource_provider(A1).await.unwrap(), providers[0]);

    let inv = pl.inventories(A1).await.unwrap();
    assert_eq!(inv.generation, 4);
    let vcpu = &inv.inventories["VCPU"];
    assert_eq!(
        (vcpu.total, vcpu.reserved, vcpu.allocation_ratio),
        (64, 0, 4.0)
    );
    assert_eq!(vcpu.max_unit, 2_147_483_647);
    assert_eq!(inv.inventories["MEMORY_MB"].reserved, 512);
    assert_eq!(inv.inventories["DISK_GB"].total, 2000);

    let usages = pl.usages(A1).await.unwrap();
    assert_eq!(usages.generation, 4);
    assert_eq!(usages.usages["VCPU"], 10);
    assert_eq!(usages.usages["MEMORY_MB"], 20_480);

    let aggs = pl.aggregates(A1).await.unwrap();
    assert_eq!(aggs.generation, 4);
    assert_eq!(aggs.aggregates, ["c97833bb-b445-4a3d-895f-9f9dbbee1857"]);

    let calls = server.received_requests().await.unwrap();
    let placement_calls: Vec<_> = calls
        .iter()
        .filter(|r| r.url.path().starts_with("/resource_providers"))
        .collect();
    assert_eq!(placement_calls.len(), 5);
    for r in placement_calls {
        assert_eq!(header(r, "openstack-api-version"), Some("placement 1.39"));
        assert_eq!(header(r, "x-auth-token"), Some(TOKEN_1));
    }
}

#[tokio::test]
async fn placement_errors_keep_their_code() {
    let server = MockServer::start().await;
    let missing = "dc03e7b5-07cc-4d79-b3bd-bd454ef98127";
    serve(
        &server,
        &format!("/resource_providers/{missing}"),
        404,
        "placement-error-404-provider-not-found",
    )
    .await;
    serve(
        &server,
        &format!("/resource_providers/{A1}/inventories"),
        409,
        "placement-error-409-generation-conflict",
    )
    .await;
    let pl = placement(&server).await;

    let err = pl.resource_provider(missing).await.unwrap_err();
    assert_eq!(err.status(), Some(404));
    assert_eq!(err.code(), Some("placement.undefined_code"));
    assert!(
        err.to_string()
            .contains(&format!("No resource provider with uuid {missing} found")),
        "{err}"
    );

    // A 409 carries Placement's code, which callers branch on (retry on a generation conflict).
    let err = pl.inventories(A1).await.unwrap_err();
    assert_eq!(err.status(), Some(409));
    assert_eq!(err.code(), Some("placement.concurrent_update"));
    let text = err.to_string();
    assert!(
        text.contains("answered 409 (placement.concurrent_update)"),
        "{text}"
    );
    // Placement's "\n\n" and trailing blanks are folded into one line.
    assert!(
        text.contains("request. resource provider generation conflict"),
        "{text}"
    );
    assert!(!text.contains('\n'), "{text}");
}

#[tokio::test]
async fn a_provider_argument_that_is_not_a_uuid_is_refused_before_any_call() {
    let server = MockServer::start().await;
    let pl = placement(&server).await;
    for bad in ["cmp-a1", "../allocations", ""] {
        let err = pl.inventories(bad).await.unwrap_err();
        assert!(matches!(err, Error::Argument(_)), "{err:?}");
        assert!(
            err.to_string().contains("not a resource provider UUID"),
            "{err}"
        );
    }
    assert!(server.received_requests().await.unwrap().is_empty());
}

#[tokio::test]
async fn many_providers_inventories_and_usages_come_back_each_with_its_own_answer() {
    let server = MockServer::start().await;
    // Twelve compute nodes: Placement knows the even ones; the odd ones have no provider.
    let uuids: Vec<String> = (0..12)
        .map(|i| format!("1585b77a-485d-54b5-92e1-dff2909358{i:02}"))
        .collect();
    for (i, u) in uuids.iter().enumerate() {
        let rp = format!("/resource_providers/{u}");
        if i % 2 == 0 {
            serve_room(&server, &rp).await;
        } else {
            serve(
                &server,
                &format!("{rp}/inventories"),
                404,
                "placement-error-404-provider-not-found",
            )
            .await;
        }
    }
    let pl = placement(&server).await;
    let got = pl.inventories_and_usages_of(&uuids, 4).await;
    let order: Vec<&String> = got.iter().map(|(u, _)| u).collect();
    assert_eq!(
        order,
        uuids.iter().collect::<Vec<_>>(),
        "in the order asked"
    );
    for (i, (u, read)) in got.iter().enumerate() {
        match read {
            Ok(room) if i % 2 == 0 => {
                assert_eq!(room.inventories.inventories["VCPU"].allocation_ratio, 4.0);
                assert_eq!(room.inventories.inventories["MEMORY_MB"].reserved, 512);
                assert_eq!(room.usages.usages["MEMORY_MB"], 20_480);
            }
            Err(e) if i % 2 == 1 => assert_eq!(e.status(), Some(404), "{u}: {e}"),
            other => panic!("{u}: {other:?}"),
        }
    }
    // A missing provider costs one call; a known one two.
    let calls = server.received_requests().await.unwrap();
    let placement_calls: Vec<_> = calls
        .iter()
        .filter(|r| r.url.path().starts_with("/resource_providers"))
        .collect();
    assert_eq!(placement_calls.len(), 6 * 2 + 6);
    for r in placement_calls {
        assert_eq!(header(r, "openstack-api-version"), Some("placement 1.39"));
    }
}

/// Placement's error body (`json_error_formatter`, the shape of the recorded 409) for a 503, as
/// Placement or the load balancer in front of it answers while it restarts.
fn unavailable() -> serde_json::Value {
    serde_json::json!({"errors": [{
        "status": 503,
        "title": "Service Unavailable",
        "detail": "The server is currently unavailable. Please try again at a later time.",
        "code": "placement.undefined_code",
        "request_id": "req-5f0c7c55-9d8e-4c1e-a0a1-503503503503"
    }]})
}

#[tokio::test]
async fn a_503_is_asked_again_after_its_retry_after_then_answers() {
    let server = MockServer::start().await;
    let p = format!("/resource_providers/{A1}/inventories");
    Mock::given(method("GET"))
        .and(path(p.as_str()))
        .respond_with(
            ResponseTemplate::new(503)
                .insert_header("Retry-After", "1")
                .set_body_json(unavailable()),
        )
        .up_to_n_times(2)
        .with_priority(1)
        .mount(&server)
        .await;
    serve(&server, &p, 200, "placement-1.39-inventories").await;
    let pl = placement(&server).await;
    let started = std::time::Instant::now();
    let inv = pl.inventories(A1).await.unwrap();
    assert!(!inv.inventories.is_empty());
    assert_eq!(requests_to(&server, &p).await.len(), 3);
    // Retry-After: 1, twice: steward waited as asked before each retry.
    assert!(started.elapsed() >= std::time::Duration::from_secs(2));
}

#[tokio::test]
async fn a_503_that_lasts_is_returned_after_the_bounded_retries_even_for_a_write() {
    let server = MockServer::start().await;
    let p = format!("/resource_providers/{A1}/inventories");
    Mock::given(method("PUT"))
        .and(path(p.as_str()))
        .respond_with(
            ResponseTemplate::new(503)
                .insert_header("Retry-After", "0")
                .set_body_json(unavailable()),
        )
        .mount(&server)
        .await;
    let pl = placement(&server).await;
    let err = pl
        .set_inventories(A1, 7, &Default::default())
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(503));
    let text = err.to_string();
    assert!(text.contains("answered 503"), "{text}");
    assert!(text.contains("still unavailable after 3 retries"), "{text}");
    // A 503 was not carried out: the write went again, 1 + 3 times.
    assert_eq!(requests_to(&server, &p).await.len(), 4);
}

#[tokio::test]
async fn a_500_is_not_asked_again() {
    let server = MockServer::start().await;
    let p = format!("/resource_providers/{A1}/inventories");
    Mock::given(method("PUT"))
        .and(path(p.as_str()))
        .respond_with(ResponseTemplate::new(500).set_body_json(serde_json::json!({"errors": [{
            "status": 500, "title": "Internal Server Error",
            "detail": "The server has either erred or is incapable of performing the requested operation.",
            "code": "placement.undefined_code",
            "request_id": "req-0c2f6e42-1b1e-4a51-9c53-500500500500"}]})))
        .mount(&server)
        .await;
    let pl = placement(&server).await;
    let err = pl
        .set_inventories(A1, 7, &Default::default())
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(500));
    // A 500 may hide a write that happened: it is the caller's to read again.
    assert_eq!(requests_to(&server, &p).await.len(), 1);
}
