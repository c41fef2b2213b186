//! The calls the inventory repair makes, against wiremock serving answers shaped exactly like the
//! real Ironic 39 and Placement 16 (recorded with curl from the harness's peers): Ironic node
//! paging by marker under its own microversion header and its double-encoded errors; Placement
//! writes with generations and the 409 codes the executor tells apart.

mod openstack_support;

use std::collections::BTreeMap;

use openstack_support::*;
use serde_json::json;
use steward::openstack::ironic::{Ironic, NodeFilter};
use steward::openstack::placement::{
    is_concurrent_update, is_inventory_in_use, ConsumerOwner, Inventory, Placement,
};
use steward::openstack::Error;
use wiremock::matchers::{method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

const N1: &str = "d9d2f6d1-aad4-4c43-ba13-8f64d612d50a";
const N2: &str = "e0a8c7b2-1f3d-4c5e-9a7b-6d5c4b3a2f10";
const RP: &str = "3e11afc1-5bb1-442a-84f0-445f47e52f84";

async fn ironic(server: &MockServer) -> Ironic {
    mount_keystone(server, &[TOKEN_1]).await;
    let mut c = cloud(&server.uri(), "steward", &[]);
    c.endpoint_overrides.insert(
        "baremetal".into(),
        url::Url::parse(&format!("{}/baremetal", server.uri())).unwrap(),
    );
    Ironic::new(session(c)).with_page_size(1)
}

fn node(uuid: &str, rc: Option<&str>, base: &str) -> serde_json::Value {
    json!({"uuid": uuid, "resource_class": rc,
           "instance_uuid": "11111111-2222-3333-4444-555555555555", "maintenance": false,
           "provision_state": "active", "name": "gold-1",
           "links": [{"href": format!("{base}/v1/nodes/{uuid}"), "rel": "self"},
                     {"href": format!("{base}/nodes/{uuid}"), "rel": "bookmark"}]})
}

#[tokio::test]
async fn ironic_nodes_page_by_marker_with_ironics_own_header() {
    let server = MockServer::start().await;
    let ir = ironic(&server).await;
    let base = server.uri();
    // Ironic's next link names its own idea of its host: only the marker is used.
    Mock::given(method("GET"))
        .and(path("/baremetal/v1/nodes"))
        .and(query_param("marker", N1))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"nodes": [node(N2, None, &base)]})),
        )
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/baremetal/v1/nodes"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "nodes": [node(N1, Some("GOLD"), &base)],
            "next": format!("http://ironic.internal:6385/v1/nodes?sort_key=id&sort_dir=asc&fields=uuid,resource_class&limit=1&marker={N1}")
        })))
        .mount(&server)
        .await;
    let nodes = ir.nodes(&NodeFilter::default()).await.unwrap();
    assert_eq!(
        nodes
            .iter()
            .map(|n| (n.uuid.as_str(), n.resource_class.as_deref()))
            .collect::<Vec<_>>(),
        [(N1, Some("GOLD")), (N2, None)]
    );
    let asked = requests_to(&server, "/baremetal/v1/nodes").await;
    assert_eq!(asked.len(), 2);
    for r in &asked {
        assert_eq!(
            header(r, "x-openstack-ironic-api-version"),
            Some(steward::openstack::ironic::MICROVERSION)
        );
        assert!(header(r, "openstack-api-version").is_none());
        assert!(r.url.query().unwrap().contains("fields=uuid"));
    }
}

/// Ironic's paging faults, each stopped with the URL and what went wrong: a next link whose
/// marker comes back (a service not advancing), a next link without a marker, and a listing
/// past the page limit; a relative next link is followed by its marker like an absolute one.
#[tokio::test]
async fn ironic_paging_faults_are_stopped_and_a_relative_link_is_followed() {
    let base_of = |server: &MockServer| server.uri();
    let page = |nodes: serde_json::Value, next: Option<String>| {
        let mut v = json!({ "nodes": nodes });
        if let Some(n) = next {
            v["next"] = json!(n);
        }
        ResponseTemplate::new(200).set_body_json(v)
    };
    // The same marker again and again.
    let server = MockServer::start().await;
    let ir = ironic(&server).await;
    let b = base_of(&server);
    Mock::given(method("GET"))
        .and(path("/baremetal/v1/nodes"))
        .respond_with(page(
            json!([node(N1, Some("GOLD"), &b)]),
            Some(format!("{b}/v1/nodes?limit=1&marker={N1}")),
        ))
        .mount(&server)
        .await;
    let err = ir.nodes(&NodeFilter::default()).await.unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, Error::Paging { .. }), "{err:?}");
    assert!(
        text.contains(&format!(
            "marker {N1} came back twice: Ironic is not advancing"
        )) && text.contains("/baremetal/v1/nodes"),
        "{text}"
    );
    assert_eq!(requests_to(&server, "/baremetal/v1/nodes").await.len(), 2);
    // A next link without a marker.
    let server = MockServer::start().await;
    let ir = ironic(&server).await;
    let b = base_of(&server);
    Mock::given(method("GET"))
        .and(path("/baremetal/v1/nodes"))
        .respond_with(page(
            json!([node(N1, None, &b)]),
            Some(format!("{b}/v1/nodes?limit=1")),
        ))
        .mount(&server)
        .await;
    let text = ir
        .nodes(&NodeFilter::default())
        .await
        .unwrap_err()
        .to_string();
    assert!(text.contains("next link has no marker"), "{text}");
    // Past the page limit: a new marker on every page.
    let server = MockServer::start().await;
    let ir = ironic(&server).await.with_max_pages(3);
    let b = base_of(&server);
    for (i, n) in [N1, N2, RP].iter().enumerate() {
        let mut m = Mock::given(method("GET")).and(path("/baremetal/v1/nodes"));
        if i > 0 {
            m = m.and(query_param("marker", [N1, N2][i - 1]));
        }
        m.respond_with(page(
            json!([node(n, None, &b)]),
            Some(format!("{b}/v1/nodes?limit=1&marker={n}")),
        ))
        .with_priority(if i == 0 { 5 } else { 1 })
        .mount(&server)
        .await;
    }
    let text = ir
        .nodes(&NodeFilter::default())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        text.contains("still paging after 3 pages of 1 nodes; Ironic keeps sending more"),
        "{text}"
    );
    // The control: a relative next link, then a last page without one, is the whole listing.
    let server = MockServer::start().await;
    let ir = ironic(&server).await;
    let b = base_of(&server);
    Mock::given(method("GET"))
        .and(path("/baremetal/v1/nodes"))
        .and(query_param("marker", N1))
        .respond_with(page(json!([node(N2, None, &b)]), None))
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/baremetal/v1/nodes"))
        .respond_with(page(
            json!([node(N1, Some("GOLD"), &b)]),
            Some(format!("/v1/nodes?limit=1&marker={N1}")),
        ))
        .with_priority(5)
        .mount(&server)
        .await;
    let nodes = ir.nodes(&NodeFilter::default()).await.unwrap();
    assert_eq!(
        nodes.iter().map(|n| n.uuid.as_str()).collect::<Vec<_>>(),
        [N1, N2]
    );
}

#[tokio::test]
async fn ironics_double_encoded_error_is_read() {
    let server = MockServer::start().await;
    let ir = ironic(&server).await;
    Mock::given(method("GET"))
        .and(path("/baremetal/v1/nodes/nope"))
        .respond_with(ResponseTemplate::new(404).set_body_json(json!({
            "error_message": "{\"faultcode\": \"Client\", \"faultstring\": \"Node nope could not be found.\", \"debuginfo\": null}"
        })))
        .mount(&server)
        .await;
    let e = ir.node("nope").await.unwrap_err();
    assert_eq!(e.status(), Some(404));
    assert!(
        e.to_string().contains("Node nope could not be found."),
        "{e}"
    );
    assert!(matches!(ir.node("../x").await, Err(Error::Argument(_))));
}

fn placement_error(code: &str, detail: &str) -> ResponseTemplate {
    ResponseTemplate::new(409).set_body_json(json!({"errors": [{
        "status": 409, "title": "Conflict", "detail": detail, "code": code,
        "request_id": "req-85e15d70-6b1b-4c10-9c73-8205b1339c29"}]}))
}

fn custom_only() -> BTreeMap<String, Inventory> {
    [(
        "CUSTOM_GOLD".to_string(),
        Inventory {
            total: 1,
            reserved: 0,
            min_unit: 1,
            max_unit: 1,
            step_size: 1,
            allocation_ratio: 1.0,
        },
    )]
    .into_iter()
    .collect()
}

#[tokio::test]
async fn placement_writes_quote_generations_and_name_their_conflicts() {
    let server = MockServer::start().await;
    mount_keystone(&server, &[TOKEN_1]).await;
    let pl = Placement::new(session(cloud(&server.uri(), "steward", &[])));
    let inv_path = format!("/resource_providers/{RP}/inventories");
    Mock::given(method("PUT"))
        .and(path(inv_path.clone()))
        .respond_with(placement_error(
            "placement.concurrent_update",
            "There was a conflict when trying to complete your request.\n\n resource provider generation conflict  ",
        ))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("PUT"))
        .and(path(inv_path.clone()))
        .respond_with(placement_error(
            "placement.inventory.inuse",
            "update conflict: Inventory for 'VCPU' on resource provider '3e11afc1' in use.",
        ))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("PUT"))
        .and(path(inv_path.clone()))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "resource_provider_generation": 8,
            "inventories": {"CUSTOM_GOLD": {"total": 1, "reserved": 0, "min_unit": 1,
                "max_unit": 1, "step_size": 1, "allocation_ratio": 1.0}}})))
        .mount(&server)
        .await;
    let e = pl.set_inventories(RP, 5, &custom_only()).await.unwrap_err();
    assert!(is_concurrent_update(&e) && !is_inventory_in_use(&e), "{e}");
    let e = pl.set_inventories(RP, 6, &custom_only()).await.unwrap_err();
    assert!(is_inventory_in_use(&e) && !is_concurrent_update(&e), "{e}");
    let done = pl.set_inventories(RP, 7, &custom_only()).await.unwrap();
    assert_eq!(done.generation, 8);
    let sent: Vec<_> = requests_to(&server, &inv_path)
        .await
        .iter()
        .map(json)
        .collect();
    assert_eq!(sent[2]["resource_provider_generation"], json!(7));
    assert_eq!(sent[2]["inventories"]["CUSTOM_GOLD"]["reserved"], json!(0));

    let consumer = "2ee3e369-0cdf-498d-b2b5-fef93d3d66e9";
    let alloc_path = format!("/allocations/{consumer}");
    Mock::given(method("PUT"))
        .and(path(alloc_path.clone()))
        .respond_with(ResponseTemplate::new(204))
        .mount(&server)
        .await;
    let mut allocs = BTreeMap::new();
    allocs.insert(
        RP.to_string(),
        [("CUSTOM_GOLD".to_string(), 1)].into_iter().collect(),
    );
    pl.set_allocations(
        consumer,
        &allocs,
        &ConsumerOwner {
            project_id: "e5c4f0a1b2c34d5e8f9a0b1c2d3e4f50".into(),
            user_id: "a1b2c3d4e5f64718293a4b5c6d7e8f90".into(),
            consumer_generation: Some(1),
            consumer_type: "INSTANCE".into(),
        },
    )
    .await
    .unwrap();
    let body = json(&requests_to(&server, &alloc_path).await[0]);
    assert_eq!(body["consumer_generation"], json!(1));
    assert_eq!(body["consumer_type"], json!("INSTANCE"));
    assert_eq!(
        body["allocations"][RP]["resources"],
        json!({"CUSTOM_GOLD": 1})
    );
    assert!(matches!(
        pl.ensure_resource_class("CUSTOM_gold").await,
        Err(Error::Argument(_))
    ));
}
