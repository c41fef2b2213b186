//! Nova reads against wiremock serving answers recorded from the real Nova 34 API at 2.87:
//! paging by marker and by offset, the fields steward reads, and servers that never stop paging.

mod openstack_support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use openstack_support::*;
use serde_json::json;
use steward::openstack::nova::{ListOptions, Nova};
use steward::openstack::Error;
use wiremock::matchers::{method, path, query_param, query_param_is_missing};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

async fn nova(server: &MockServer, page_size: u32, max_pages: usize) -> Nova {
    mount_keystone(server, &[TOKEN_1]).await;
    Nova::new(session(cloud(&server.uri(), "steward", &[]))).with_list_options(ListOptions {
        page_size,
        max_pages,
    })
}

fn ok(server: &MockServer, name: &str) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(fixture(name, &server.uri()))
}

/// The recorded servers/detail pages at limit=2: markers taken from the recorded next links.
async fn mount_server_pages(server: &MockServer) {
    let p = "/v2.1/servers/detail";
    Mock::given(method("GET"))
        .and(path(p))
        .and(query_param_is_missing("marker"))
        .respond_with(ok(server, "nova-2.87-servers-detail-page1"))
        .mount(server)
        .await;
    Mock::given(method("GET"))
        .and(path(p))
        .and(query_param(
            "marker",
            "36aea67f-f37a-4c97-93de-dff80ace3571",
        ))
        .respond_with(ok(server, "nova-2.87-servers-detail-page2"))
        .mount(server)
        .await;
    Mock::given(method("GET"))
        .and(path(p))
        .and(query_param(
            "marker",
            "af59bffd-91dc-4107-a9d5-dfb3f50ee194",
        ))
        .respond_with(ok(server, "nova-2.87-servers-detail-page3"))
        .mount(server)
        .await;
}

#[tokio::test]
async fn servers_are_read_over_three_pages_following_the_markers() {
    let server = MockServer::start().await;
    mount_server_pages(&server).await;
    let servers = nova(&server, 2, 100).await.servers().await.unwrap();
    let names: Vec<&str> = servers.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["batch-1", "web-3", "web-1", "db-1", "web-2"]);

    let calls = requests_to(&server, "/v2.1/servers/detail").await;
    assert_eq!(calls.len(), 3);
    let markers: Vec<Option<String>> = calls
        .iter()
        .map(|r| {
            r.url
                .query_pairs()
                .find(|(k, _)| k == "marker")
                .map(|(_, v)| v.into_owned())
        })
        .collect();
    assert_eq!(
        markers,
        [
            None,
            Some("36aea67f-f37a-4c97-93de-dff80ace3571".into()),
            Some("af59bffd-91dc-4107-a9d5-dfb3f50ee194".into())
        ]
    );
    for r in &calls {
        let q: Vec<(String, String)> = r.url.query_pairs().into_owned().collect();
        assert!(q.contains(&("all_tenants".into(), "1".into())), "{q:?}");
        assert!(q.contains(&("limit".into(), "2".into())), "{q:?}");
        assert_eq!(header(r, "openstack-api-version"), Some("compute 2.87"));
        assert_eq!(header(r, "x-openstack-nova-api-version"), Some("2.87"));
    }

    // The fields steward reads, as Nova showed them.
    let web3 = &servers[1];
    assert_eq!(web3.id, "36aea67f-f37a-4c97-93de-dff80ace3571");
    assert_eq!(web3.status, "ACTIVE");
    assert_eq!(
        web3.tenant_id.as_deref(),
        Some("e5c4f0a1b2c34d5e8f9a0b1c2d3e4f50")
    );
    assert_eq!(web3.host.as_deref(), Some("cmp-b1"));
    assert_eq!(web3.hypervisor_hostname.as_deref(), Some("cmp-b1"));
    assert_eq!(web3.availability_zone.as_deref(), Some("az2"));
    assert_eq!(web3.metadata["role"], "web");
    assert_eq!(web3.flavor.original_name.as_deref(), Some("web.large"));
    assert_eq!(
        (web3.flavor.vcpus, web3.flavor.ram, web3.flavor.disk),
        (8, 16384, 80)
    );
    assert_eq!(web3.flavor.extra_specs["hw:cpu_policy"], "dedicated");
    assert_eq!(servers[3].metadata["owner"], "dba");
}

#[tokio::test]
async fn hypervisors_are_read_with_their_sizes_until_an_empty_page() {
    let server = MockServer::start().await;
    let p = "/v2.1/os-hypervisors/detail";
    for (marker, page) in [
        (None, 1),
        (Some("1585b77a-485d-54b5-92e1-dff2909358ad"), 2),
        (Some("ba055b2d-a981-5768-94ea-56edc09ef34e"), 3),
        (Some("19793933-a7e1-5d36-99a2-fd80dddb4228"), 4),
    ] {
        let m = Mock::given(method("GET")).and(path(p));
        let m = match marker {
            None => m.and(query_param_is_missing("marker")),
            Some(k) => m.and(query_param("marker", k)),
        };
        m.respond_with(ok(
            &server,
            &format!("nova-2.87-hypervisors-detail-limit1-page{page}"),
        ))
        .mount(&server)
        .await;
    }
    let hyps = nova(&server, 1, 100).await.hypervisors().await.unwrap();
    let names: Vec<&str> = hyps
        .iter()
        .map(|h| h.hypervisor_hostname.as_str())
        .collect();
    assert_eq!(names, ["cmp-a1", "cmp-a2", "cmp-b1"]);
    let a1 = &hyps[0];
    assert_eq!(a1.id, "1585b77a-485d-54b5-92e1-dff2909358ad");
    assert_eq!(
        (a1.vcpus, a1.memory_mb, a1.local_gb),
        (Some(64), Some(262_144), Some(2000))
    );
    assert_eq!(
        (a1.vcpus_used, a1.memory_mb_used, a1.local_gb_used),
        (Some(10), Some(20_480), Some(100))
    );
    assert_eq!(a1.state.as_deref(), Some("up"));
    assert_eq!(a1.service.as_ref().unwrap().host.as_deref(), Some("cmp-a1"));
    let b1 = &hyps[2];
    assert_eq!(b1.status.as_deref(), Some("disabled"));
    assert_eq!(
        b1.service.as_ref().unwrap().disabled_reason.as_deref(),
        Some("maintenance: DIMM swap")
    );
    assert_eq!(requests_to(&server, p).await.len(), 4);
}

/// Answers every page with the same recorded page 1, whose next link names the same marker.
#[tokio::test]
async fn a_server_that_repeats_its_marker_is_stopped() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v2.1/servers/detail"))
        .respond_with(ok(&server, "nova-2.87-servers-detail-page1"))
        .mount(&server)
        .await;
    let err = nova(&server, 2, 100).await.servers().await.unwrap_err();
    assert!(matches!(err, Error::Paging { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains("marker 36aea67f-f37a-4c97-93de-dff80ace3571 came back twice"),
        "{text}"
    );
    assert!(text.contains("/v2.1/servers/detail"), "{text}");
    assert_eq!(requests_to(&server, "/v2.1/servers/detail").await.len(), 2);
}

/// A new marker every time, forever: only the page limit can stop it.
struct Endless(AtomicUsize);

impl Respond for Endless {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        let n = self.0.fetch_add(1, Ordering::SeqCst);
        let base = format!("{}://{}", req.url.scheme(), req.url.authority());
        ResponseTemplate::new(200).set_body_json(json!({
            "servers": [{"id": format!("server-{n}"), "name": format!("s{n}"), "status": "ACTIVE",
                         "flavor": {"vcpus": 1, "ram": 512, "disk": 1}}],
            "servers_links": [{"rel": "next",
                "href": format!("{base}/v2.1/servers/detail?all_tenants=1&limit=1&marker=server-{n}")}]
        }))
    }
}

#[tokio::test]
async fn a_server_that_pages_forever_is_stopped_at_the_page_limit() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v2.1/servers/detail"))
        .respond_with(Endless(AtomicUsize::new(0)))
        .mount(&server)
        .await;
    let err = nova(&server, 1, 5).await.servers().await.unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, Error::Paging { .. }), "{err:?}");
    assert!(text.contains("servers/detail"), "{text}");
    assert!(text.contains("still paging after 5 pages of 1"), "{text}");
    assert!(text.contains("max_pages"), "{text}");
    assert_eq!(requests_to(&server, "/v2.1/servers/detail").await.len(), 5);
}

#[tokio::test]
async fn a_next_link_to_another_host_is_not_followed_there() {
    let server = MockServer::start().await;
    // Nova behind a proxy links to its internal name; the token must not go there.
    Mock::given(method("GET"))
        .and(path("/v2.1/servers/detail"))
        .and(query_param_is_missing("marker"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "servers": [{"id": "a", "name": "a", "status": "ACTIVE", "flavor": {}}],
            "servers_links": [{"rel": "next",
                "href": "http://nova-api.internal:8774/v2.1/servers/detail?limit=1&marker=a"}]
        })))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v2.1/servers/detail"))
        .and(query_param("marker", "a"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"servers": []})))
        .mount(&server)
        .await;
    let servers = nova(&server, 1, 10).await.servers().await.unwrap();
    assert_eq!(servers.len(), 1);
    assert_eq!(requests_to(&server, "/v2.1/servers/detail").await.len(), 2);
}

#[tokio::test]
async fn server_groups_are_read_by_offset_with_policy_rules_and_members() {
    let server = MockServer::start().await;
    let p = "/v2.1/os-server-groups";
    for (offset, body) in [
        ("0", Some("nova-2.87-server-groups-limit1-offset0")),
        ("1", Some("nova-2.87-server-groups-limit1-offset1")),
        ("2", None),
    ] {
        let reply = match body {
            Some(name) => ok(&server, name),
            None => ResponseTemplate::new(200).set_body_json(json!({"server_groups": []})),
        };
        Mock::given(method("GET"))
            .and(path(p))
            .and(query_param("all_projects", "True"))
            .and(query_param("limit", "1"))
            .and(query_param("offset", offset))
            .respond_with(reply)
            .mount(&server)
            .await;
    }
    let groups = nova(&server, 1, 10).await.server_groups().await.unwrap();
    assert_eq!(groups.len(), 2);
    let web = &groups[0];
    assert_eq!(web.name, "web-tier");
    assert_eq!(web.policy(), Some("anti-affinity"));
    assert_eq!(web.rules["max_server_per_host"], json!(1));
    assert_eq!(web.members.len(), 3);
    assert_eq!(groups[1].policy(), Some("soft-anti-affinity"));
    assert_eq!(requests_to(&server, p).await.len(), 3);
}

#[tokio::test]
async fn server_groups_fit_in_one_page_when_the_page_is_large() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v2.1/os-server-groups"))
        .respond_with(ok(&server, "nova-2.87-server-groups-all-projects"))
        .mount(&server)
        .await;
    let groups = nova(&server, 1000, 10).await.server_groups().await.unwrap();
    assert_eq!(groups.len(), 2);
    assert_eq!(
        requests_to(&server, "/v2.1/os-server-groups").await.len(),
        1
    );
}

#[tokio::test]
async fn a_server_that_ignores_the_offset_is_stopped() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v2.1/os-server-groups"))
        .respond_with(ok(&server, "nova-2.87-server-groups-limit1-offset0"))
        .mount(&server)
        .await;
    let err = nova(&server, 1, 100)
        .await
        .server_groups()
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Paging { .. }), "{err:?}");
    assert!(
        err.to_string()
            .contains("server group 83877147-8795-4b08-b135-df3de62a29d7 came back"),
        "{err}"
    );
}

#[tokio::test]
async fn aggregates_carry_zone_hosts_and_metadata() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v2.1/os-aggregates"))
        .respond_with(ok(&server, "nova-2.87-aggregates"))
        .mount(&server)
        .await;
    let aggs = nova(&server, 1000, 10).await.aggregates().await.unwrap();
    assert_eq!(aggs.len(), 3);
    assert_eq!(aggs[0].name, "az1");
    assert_eq!(aggs[0].id, "1");
    assert_eq!(aggs[0].availability_zone.as_deref(), Some("az1"));
    assert_eq!(aggs[0].hosts, ["cmp-a1", "cmp-a2"]);
    assert_eq!(aggs[0].metadata["availability_zone"], "az1");
    assert_eq!(aggs[2].name, "gpu");
    assert_eq!(aggs[2].availability_zone, None);
    assert_eq!(aggs[2].metadata["gpu"], "a100");
}

#[tokio::test]
async fn a_malformed_answer_names_the_field() {
    let server = MockServer::start().await;
    let mut page = fixture("nova-2.87-servers-detail-page3", &server.uri());
    page["servers"][0]["flavor"]["vcpus"] = json!("eight");
    Mock::given(method("GET"))
        .and(path("/v2.1/servers/detail"))
        .respond_with(ResponseTemplate::new(200).set_body_json(page))
        .mount(&server)
        .await;
    let err = nova(&server, 2, 10).await.servers().await.unwrap_err();
    assert!(matches!(err, Error::Decode { .. }), "{err:?}");
    assert!(err.to_string().contains("servers[0].flavor.vcpus"), "{err}");

    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v2.1/os-aggregates"))
        .respond_with(ResponseTemplate::new(200).set_body_string("<html>proxy error</html>"))
        .mount(&server)
        .await;
    let err = nova(&server, 2, 10).await.aggregates().await.unwrap_err();
    assert!(matches!(err, Error::Decode { .. }), "{err:?}");
    assert!(err.to_string().contains("os-aggregates"), "{err}");
}

#[tokio::test]
async fn nova_clients_share_one_session_and_one_login() {
    let server = MockServer::start().await;
    mount_server_pages(&server).await;
    Mock::given(method("GET"))
        .and(path("/v2.1/os-aggregates"))
        .respond_with(ok(&server, "nova-2.87-aggregates"))
        .mount(&server)
        .await;
    let n = nova(&server, 2, 10).await;
    let s = Arc::clone(n.session());
    let (a, b) = tokio::join!(n.servers(), n.aggregates());
    a.unwrap();
    b.unwrap();
    assert_eq!(s.logins(), 1);
}
