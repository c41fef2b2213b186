//! The cluster view from Nova, against wiremock answering with the recorded real Nova 34
//! payloads (tests/fixtures/openstack): membership lands in the view and drives scoring;
//! deleted servers disappear; a listing cut short keeps the last view; Nova answering 409 or
//! 500 keeps the last view; an expired token is renewed once.

mod common;
#[path = "openstack_support/mod.rs"]
mod openstack_support;

use std::sync::Arc;
use std::time::Duration;

use openstack_support::*;
use serde_json::{json, Value};
use steward::jobs::{Jobs, NovaSource};
use steward::model::Operation;
use steward::openstack::nova::Nova;
use steward::scoring::{filter, Options};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const NOW: f64 = 1_795_410_000.0;

/// Every recorded page of a listing merged into one answer without `next` links.
fn merged(key: &str, pages: &[&str], base: &str) -> Value {
    let items: Vec<Value> = pages
        .iter()
        .flat_map(|p| {
            fixture(p, base)[key]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .collect();
    json!({ key: items })
}

fn hypervisors(base: &str) -> Value {
    let mut all = merged(
        "hypervisors",
        &[
            "nova-2.87-hypervisors-detail-limit1-page1",
            "nova-2.87-hypervisors-detail-limit1-page2",
            "nova-2.87-hypervisors-detail-limit1-page3",
        ],
        base,
    );
    // A fourth hypervisor in no AZ aggregate: Nova puts it in its default AZ.
    let mut extra = all["hypervisors"][0].clone();
    extra["id"] = json!("5f0c1a52-0000-4000-8000-00000000c1c1");
    extra["hypervisor_hostname"] = json!("cmp-c1");
    extra["service"]["host"] = json!("cmp-c1");
    all["hypervisors"].as_array_mut().unwrap().push(extra);
    all
}

fn servers(base: &str, drop: Option<&str>) -> Value {
    let mut all = merged(
        "servers",
        &[
            "nova-2.87-servers-detail-page1",
            "nova-2.87-servers-detail-page2",
            "nova-2.87-servers-detail-page3",
        ],
        base,
    );
    for s in all["servers"].as_array_mut().unwrap() {
        // This one has no role in its metadata: its server group (web-tier) names it.
        if s["id"].as_str().unwrap().starts_with("d10d6a8c") {
            s["metadata"] = json!({});
        }
    }
    if let Some(prefix) = drop {
        all["servers"]
            .as_array_mut()
            .unwrap()
            .retain(|s| !s["id"].as_str().unwrap().starts_with(prefix));
    }
    all
}

async fn mount(server: &MockServer, p: &str, body: Value) {
    Mock::given(method("GET"))
        .and(path(p))
        .respond_with(ResponseTemplate::new(200).set_body_json(body))
        .with_priority(5)
        .mount(server)
        .await;
}

/// A mock Keystone + Nova with the recorded cloud, and steward's jobs reading it.
async fn cloud() -> (MockServer, tempfile::TempDir, Jobs, steward::api::AppState) {
    let server = MockServer::start().await;
    let base = server.uri();
    mount_keystone(&server, &[TOKEN_1, TOKEN_2]).await;
    mount(&server, "/v2.1/os-hypervisors/detail", hypervisors(&base)).await;
    mount(
        &server,
        "/v2.1/os-aggregates",
        fixture("nova-2.87-aggregates", &base),
    )
    .await;
    mount(&server, "/v2.1/servers/detail", servers(&base, None)).await;
    mount(
        &server,
        "/v2.1/os-server-groups",
        fixture("nova-2.87-server-groups-all-projects", &base),
    )
    .await;
    let (dir, state) = common::app::state("").await;
    let nova = Nova::new(session(openstack_support::cloud(&base, "steward", &[])));
    let jobs = Jobs {
        prometheus: None,
        nova: Some(NovaSource {
            nova: Arc::new(nova),
            role_key: "role".into(),
            default_az: "nova".into(),
            every: Duration::from_secs(60),
        }),
        store: state.store.clone(),
        cluster: state.cluster.clone(),
        metrics: state.metrics.clone(),
    };
    (server, dir, jobs, state)
}

#[tokio::test]
async fn nova_membership_lands_in_the_view() {
    let (_server, _d, jobs, _state) = cloud().await;
    assert_eq!(jobs.refresh_nova(NOW).await.unwrap(), (4, 5));
    let view = jobs.cluster.snapshot();
    let az = |h: &str| view.hosts[h].az.clone().unwrap();
    assert_eq!(
        (az("cmp-a1"), az("cmp-a2"), az("cmp-b1")),
        ("az1".into(), "az1".into(), "az2".into())
    );
    assert_eq!(
        az("cmp-c1"),
        "nova",
        "a host in no AZ aggregate is in Nova's default AZ"
    );
    assert_eq!(view.hosts["cmp-a1"].vcpus, Some(64.0));
    let vm = |prefix: &str| {
        view.vms
            .iter()
            .find(|(u, _)| u.starts_with(prefix))
            .unwrap()
            .1
            .clone()
    };
    let db = vm("af59bffd");
    assert_eq!(
        (db.host.as_deref(), db.role.as_deref()),
        (Some("cmp-a1"), Some("db"))
    );
    assert_eq!(db.az.as_deref(), Some("az1"));
    assert!(db.project_id.is_some() && db.flavor.is_some());
    assert_eq!(
        vm("d10d6a8c").role.as_deref(),
        Some("web-tier"),
        "the server group names the role"
    );
    assert_eq!(view.role_index().hosts_of("web").unwrap()["cmp-b1"], 1);
}

#[tokio::test]
async fn the_scoring_path_uses_the_view_a_move_stays_in_its_az() {
    let (_server, _d, jobs, _state) = cloud().await;
    jobs.refresh_nova(NOW).await.unwrap();
    let view = jobs.cluster.snapshot();
    let uuid = view
        .vms
        .keys()
        .find(|u| u.starts_with("af59bffd"))
        .unwrap()
        .to_string();
    // The shim knows nothing but the instance uuid: steward finds its host (cmp-a1, az1).
    let mut req = common::request(
        Operation::Move,
        None,
        vec![
            common::host("cmp-a2", Some("az1")),
            common::host("cmp-b1", Some("az2")),
        ],
    );
    req.instance.uuid = uuid;
    let p = common::profile("[plugins.same_az]\n");
    let out = filter(&req, &p, &view, &Options::default(), NOW);
    assert!(out.rejections[0].is_none());
    assert_eq!(out.rejections[1].as_ref().unwrap().plugin, "same_az");
    assert!(out.degraded_reasons.is_empty());
}

#[tokio::test]
async fn a_deleted_server_leaves_the_view_and_telemetry_stays() {
    let (server, _d, jobs, _state) = cloud().await;
    jobs.refresh_nova(NOW).await.unwrap();
    jobs.cluster
        .update(|v| v.hosts.get_mut("cmp-a1").unwrap().steal = Some(0.12))
        .await;
    mount_servers_once(&server, servers(&server.uri(), Some("af59bffd"))).await;
    assert_eq!(jobs.refresh_nova(NOW + 60.0).await.unwrap().1, 4);
    let view = jobs.cluster.snapshot();
    assert!(!view.vms.keys().any(|u| u.starts_with("af59bffd")));
    assert_eq!(view.hosts["cmp-a1"].steal, Some(0.12));
    assert!(
        view.role_index().hosts_of("db").is_none(),
        "the index follows the view"
    );
}

async fn mount_servers_once(server: &MockServer, body: Value) {
    Mock::given(method("GET"))
        .and(path("/v2.1/servers/detail"))
        .respond_with(ResponseTemplate::new(200).set_body_json(body))
        .with_priority(1)
        .mount(server)
        .await;
}

#[tokio::test]
async fn paging_cut_short_keeps_the_last_view() {
    let (server, _d, jobs, state) = cloud().await;
    jobs.refresh_nova(NOW).await.unwrap();
    let before = jobs.cluster.snapshot();
    // Page one points at a next page that fails.
    let mut page1 = fixture("nova-2.87-servers-detail-page1", &server.uri());
    page1["servers"].as_array_mut().unwrap().truncate(1);
    Mock::given(method("GET"))
        .and(path("/v2.1/servers/detail"))
        .and(wiremock::matchers::query_param_is_missing("marker"))
        .respond_with(ResponseTemplate::new(200).set_body_json(page1))
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v2.1/servers/detail"))
        .and(wiremock::matchers::query_param(
            "marker",
            "36aea67f-f37a-4c97-93de-dff80ace3571",
        ))
        .respond_with(ResponseTemplate::new(503).set_body_string("upstream connect error"))
        .with_priority(1)
        .mount(&server)
        .await;
    let err = jobs.refresh_nova(NOW + 60.0).await.unwrap_err();
    assert_eq!(err.kind(), "status", "{err}");
    assert_eq!(
        *jobs.cluster.snapshot(),
        *before,
        "nothing of the half listing is published"
    );
    assert!(state
        .metrics
        .render()
        .contains("steward_source_errors_total{kind=\"status\",source=\"nova\"} 1"));
}

/// Nova's error body as its API sends it (`{"<kind>": {"code": N, "message": ...}}`).
/// Wait until the server has received no new request for 200 ms.
async fn settle_requests(server: &MockServer) {
    let mut seen = usize::MAX;
    loop {
        let now = server.received_requests().await.map_or(0, |r| r.len());
        if now == seen {
            return;
        }
        seen = now;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn nova_fault(code: u16, kind: &str, message: &str) -> ResponseTemplate {
    ResponseTemplate::new(code)
        .insert_header("content-type", "application/json")
        .set_body_json(json!({kind: {"code": code, "message": message}}))
}

/// Issue 7, faults: the Nova API answering 500 (its database away) and then 409 on the
/// listings of the cluster refresh. Each failed refresh publishes nothing, keeps the last good
/// view for scoring, names Nova and the status in its error, and is counted in /metrics by
/// source and kind; once Nova answers again the next refresh publishes as before.
#[tokio::test]
async fn nova_answering_500_or_409_keeps_the_last_view_until_it_answers_again() {
    let (server, _d, jobs, state) = cloud().await;
    assert_eq!(jobs.refresh_nova(NOW).await.unwrap(), (4, 5));
    let before = jobs.cluster.snapshot();
    let faults = [
        (
            "/v2.1/os-hypervisors/detail",
            nova_fault(
                500,
                "computeFault",
                "Unexpected API Error. Please report this at http://bugs.launchpad.net/nova/ \
                 and attach the Nova API log if possible.\n\
                 <class 'oslo_db.exception.DBConnectionError'>",
            ),
            "500",
        ),
        (
            "/v2.1/servers/detail",
            nova_fault(
                409,
                "conflictingRequest",
                "There was a conflict when trying to complete your request.",
            ),
            "409",
        ),
    ];
    for (n, (route, answer, status)) in faults.into_iter().enumerate() {
        // A listing the previous refresh dropped in flight (when another one failed) may still
        // reach the server: let those land before the fault is mounted, or they would use it.
        settle_requests(&server).await;
        // Once: the refresh asks each listing once (one page of up to 1,000).
        Mock::given(method("GET"))
            .and(path(route))
            .respond_with(answer)
            .up_to_n_times(1)
            .with_priority(1)
            .mount(&server)
            .await;
        let err = jobs
            .refresh_nova(NOW + 60.0 * (n as f64 + 1.0))
            .await
            .unwrap_err();
        let text = err.to_string();
        assert_eq!(err.kind(), "status", "{text}");
        assert!(
            text.contains(status) && text.contains(route),
            "the error names the call and the status: {text}"
        );
        assert_eq!(
            *jobs.cluster.snapshot(),
            *before,
            "a failed refresh ({status} on {route}) publishes nothing"
        );
        // The scoring path still sees the last good membership.
        assert_eq!(
            jobs.cluster.snapshot().hosts["cmp-b1"].az.as_deref(),
            Some("az2")
        );
        let counted = format!(
            "steward_source_errors_total{{kind=\"status\",source=\"nova\"}} {}",
            n + 1
        );
        assert!(
            state.metrics.render().contains(&counted),
            "expected {counted} in /metrics"
        );
    }
    // Nova answers again: the next refresh publishes the same membership.
    assert_eq!(jobs.refresh_nova(NOW + 300.0).await.unwrap(), (4, 5));
    assert_eq!(
        jobs.cluster.snapshot().hosts.keys().collect::<Vec<_>>(),
        before.hosts.keys().collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn an_expired_token_is_renewed_once() {
    let (server, _d, jobs, _state) = cloud().await;
    Mock::given(method("GET"))
        .and(path("/v2.1/os-aggregates"))
        .respond_with(
            ResponseTemplate::new(401)
                .set_body_json(fixture("nova-error-401-bad-token", &server.uri())),
        )
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    assert_eq!(jobs.refresh_nova(NOW).await.unwrap(), (4, 5));
    assert_eq!(jobs.nova.as_ref().unwrap().nova.session().logins(), 2);
}

/// Nova's policy refuses steward's user one listing (a reader without the overrides of
/// etc/keystone/nova-policy.steward.yaml): the refresh error is counted as `forbidden`,
/// `steward_source_forbidden` names the rule, and `/healthz` (no token) says `degraded` with
/// the rule and what to grant, not Nova's URL. Once Nova answers, both clear. The control: a
/// 500 is an outage, not a standing problem, and leaves /healthz `ok`.
#[tokio::test]
async fn a_refresh_refused_by_policy_names_the_rule_on_metrics_and_healthz() {
    let (server, _d, jobs, state) = cloud().await;
    let app = actix_web::test::init_service(steward::api::app(state.clone())).await;
    let health = || async {
        let req = actix_web::test::TestRequest::get()
            .uri("/healthz")
            .to_request();
        let v: Value = actix_web::test::call_and_read_body_json(&app, req).await;
        v
    };
    let refuse = |answer: ResponseTemplate| {
        Mock::given(method("GET"))
            .and(path("/v2.1/os-hypervisors/detail"))
            .respond_with(answer)
            .up_to_n_times(1)
            .with_priority(1)
    };
    refuse(nova_fault(500, "computeFault", "Unexpected API Error."))
        .mount(&server)
        .await;
    jobs.refresh_nova(NOW).await.unwrap_err();
    assert_eq!(
        health().await["status"],
        "ok",
        "an outage is no standing problem"
    );
    let rule = "os_compute_api:os-hypervisors:list-detail";
    settle_requests(&server).await;
    refuse(nova_fault(
        403,
        "forbidden",
        &format!("Policy doesn't allow {rule} to be performed."),
    ))
    .mount(&server)
    .await;
    let err = jobs.refresh_nova(NOW + 60.0).await.unwrap_err();
    assert!(err.to_string().contains("403"), "{err}");
    let metrics = state.metrics.render();
    for line in [
        format!("steward_source_forbidden{{policy=\"{rule}\",source=\"nova\"}} 1"),
        "steward_source_errors_total{kind=\"forbidden\",source=\"nova\"} 1".to_string(),
    ] {
        assert!(metrics.contains(&line), "expected {line} in /metrics");
    }
    let h = health().await;
    assert_eq!(h["status"], "degraded", "{h}");
    assert_eq!(h["problems"][0]["job"], "nova_refresh", "{h}");
    let detail = h["problems"][0]["detail"].as_str().unwrap();
    assert!(
        detail.contains(rule)
            && detail.contains("nova-policy.steward.yaml")
            && detail.contains("steward_reader"),
        "{detail}"
    );
    assert!(
        !detail.contains(&server.uri()),
        "/healthz shows no URL: {detail}"
    );
    // Nova answers again: the problem and the gauge clear.
    jobs.refresh_nova(NOW + 120.0).await.unwrap();
    let h = health().await;
    assert_eq!(
        (h["status"].as_str(), h["problems"].as_array().map(Vec::len)),
        (Some("ok"), Some(0)),
        "{h}"
    );
    assert!(!state.metrics.render().contains("steward_source_forbidden{"));
}

#[test]
fn each_read_of_the_view_maps_to_the_nova_policy_that_guards_it() {
    use steward::openstack::nova::read_policy;
    for (url, rule) in [
        (
            "http://nova/v2.1/os-hypervisors/detail?limit=1000",
            Some("os_compute_api:os-hypervisors:list-detail"),
        ),
        (
            "http://nova/v2.1/servers/detail?all_tenants=1",
            Some("os_compute_api:servers:detail:get_all_tenants"),
        ),
        (
            "http://nova/v2.1/os-aggregates",
            Some("os_compute_api:os-aggregates:index"),
        ),
        (
            "http://nova/v2.1/os-server-groups?all_projects=True",
            Some("os_compute_api:os-server-groups:index:all_projects"),
        ),
        ("http://nova/v2.1/flavors/detail", None),
    ] {
        assert_eq!(read_policy(url), rule, "{url}");
    }
}

/// `steward config check --online`'s probe: every read the refresh makes, tried once; the one
/// Nova's policy refuses names its rule and what to grant; the others say how many items.
#[tokio::test]
async fn the_online_check_names_each_read_and_the_rule_nova_refuses() {
    let (server, _d, jobs, _state) = cloud().await;
    let nova = &jobs.nova.as_ref().unwrap().nova;
    let all = steward::cluster::access::probe(nova).await;
    assert!(all.iter().all(|a| a.is_ok()), "{all:?}");
    assert_eq!(all[0].detail, "4 item(s)");
    Mock::given(method("GET"))
        .and(path("/v2.1/servers/detail"))
        .respond_with(nova_fault(
            403,
            "forbidden",
            "Policy doesn't allow os_compute_api:servers:detail:get_all_tenants to be performed.",
        ))
        .with_priority(1)
        .mount(&server)
        .await;
    let all = steward::cluster::access::probe(nova).await;
    let results: Vec<&str> = all.iter().map(|a| a.result).collect();
    assert_eq!(results, ["ok", "forbidden", "ok", "ok"]);
    assert!(
        all[1]
            .detail
            .contains("os_compute_api:servers:detail:get_all_tenants")
            && all[1].detail.contains("steward_reader"),
        "{}",
        all[1].detail
    );
}
