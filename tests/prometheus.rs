//! The Prometheus source against wiremock answering in Prometheus' own JSON shapes (see
//! PEERS.md): readings land in the view and the store; unit errors are dropped with their
//! reason; a slow, down, failing or garbled Prometheus keeps the last good data, is counted in
//! /metrics, and never blocks a scoring request.

mod common;

use std::time::Duration;

use serde_json::{json, Value};
use steward::jobs::Jobs;
use steward::model::Source;
use steward::telemetry::prometheus::{Prometheus, PrometheusSettings};
use wiremock::matchers::{method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

const NOW: f64 = 1_795_410_000.0;

fn vector(label: &str, rows: &[(&str, &str)]) -> Value {
    let result: Vec<Value> = rows
        .iter()
        .map(|(name, v)| json!({"metric": {label: name, "job": "libvirt"}, "value": [NOW, v]}))
        .collect();
    json!({"status": "success", "data": {"resultType": "vector", "result": result}})
}

async fn answer(server: &MockServer, query: &str, body: Value) {
    Mock::given(method("GET"))
        .and(path("/api/v1/query"))
        .and(query_param("query", query))
        .respond_with(ResponseTemplate::new(200).set_body_json(body))
        .mount(server)
        .await;
}

/// A Prometheus that knows two hosts and one VM, with one reading in the wrong unit.
async fn healthy() -> MockServer {
    let server = MockServer::start().await;
    let q = steward::telemetry::prometheus::Queries::default();
    answer(
        &server,
        &q.host_steal,
        vector("host", &[("cmp-1", "0.08"), ("cmp-2", "12.5")]),
    )
    .await;
    answer(
        &server,
        &q.host_cpu_use,
        vector("host", &[("cmp-1", "0.61"), ("cmp-2", "0.2")]),
    )
    .await;
    answer(&server, &q.vm_steal, vector("uuid", &[("vm-1", "0.05")])).await;
    answer(
        &server,
        &q.vm_load5,
        vector("instance", &[("10.0.0.1:9100", "3.5")]),
    )
    .await;
    server
}

fn settings(url: &str, timeout: f64) -> PrometheusSettings {
    PrometheusSettings {
        url: Some(url.into()),
        timeout_seconds: timeout,
        ..Default::default()
    }
}

async fn jobs(url: &str, timeout: f64) -> (tempfile::TempDir, Jobs, steward::api::AppState) {
    let (dir, state) = common::app::state("").await;
    let jobs = Jobs {
        prometheus: Prometheus::new(&settings(url, timeout)).unwrap(),
        nova: None,
        store: state.store.clone(),
        cluster: state.cluster.clone(),
        metrics: state.metrics.clone(),
    };
    (dir, jobs, state)
}

#[tokio::test]
async fn a_poll_publishes_readings_and_drops_unit_errors_with_their_reason() {
    let server = healthy().await;
    let (_d, jobs, state) = jobs(&server.uri(), 5.0).await;
    let summary = jobs.poll_prometheus(NOW).await.unwrap();
    assert_eq!((summary.hosts, summary.vms), (2, 1));
    // cmp-2's 12.5 is a unit error; the load series lacks the uuid label.
    assert_eq!(summary.dropped, 2);
    let view = jobs.cluster.snapshot();
    let h1 = &view.hosts["cmp-1"];
    assert_eq!(
        (h1.steal, h1.cpu_use, h1.source),
        (Some(0.08), Some(0.61), Source::Prometheus)
    );
    assert_eq!(h1.observed_at, NOW);
    assert_eq!(
        view.hosts["cmp-2"].steal, None,
        "never the wrong-unit value"
    );
    assert_eq!(view.hosts["cmp-2"].cpu_use, Some(0.2));
    assert_eq!(view.vms["vm-1"].steal, Some(0.05));
    let stored = jobs.store.load_view().await.unwrap();
    assert_eq!(stored.hosts["cmp-1"].steal, Some(0.08));
    assert_eq!(stored.hosts["cmp-1"].source, Source::Prometheus);
    let metrics = state.metrics.render();
    assert!(
        metrics.contains("steward_telemetry_dropped_total{query=\"host_steal\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("steward_telemetry_dropped_total{query=\"vm_load5\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("steward_source_last_success_timestamp_seconds{source=\"prometheus\",task=\"poll\"} 1795410000"));
}

/// Poll a healthy Prometheus, then one that fails as `fault` does: the view keeps the good
/// readings (they go stale by age) and the failure is counted by kind.
async fn keeps_last_good_data(fault: ResponseTemplate, timeout: f64, kind: &str) {
    let good = healthy().await;
    let (_d, mut jobs, state) = jobs(&good.uri(), timeout).await;
    jobs.poll_prometheus(NOW).await.unwrap();
    let bad = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(fault)
        .mount(&bad)
        .await;
    jobs.prometheus = Prometheus::new(&settings(&bad.uri(), timeout)).unwrap();
    let err = jobs.poll_prometheus(NOW + 60.0).await.unwrap_err();
    assert_eq!(err.kind(), kind, "{err}");
    let view = jobs.cluster.snapshot();
    assert_eq!(view.hosts["cmp-1"].steal, Some(0.08));
    assert_eq!(
        view.hosts["cmp-1"].observed_at, NOW,
        "the age keeps growing: stale, not renewed"
    );
    let metrics = state.metrics.render();
    let line = format!("steward_source_errors_total{{kind=\"{kind}\",source=\"prometheus\"}} 1");
    assert!(metrics.contains(&line), "{line} missing from\n{metrics}");
}

#[tokio::test]
async fn a_500_keeps_the_last_good_data() {
    keeps_last_good_data(
        ResponseTemplate::new(500).set_body_string("internal error"),
        5.0,
        "status",
    )
    .await;
}

#[tokio::test]
async fn garbage_keeps_the_last_good_data() {
    keeps_last_good_data(
        ResponseTemplate::new(200).set_body_string("<html>proxy login</html>"),
        5.0,
        "garbage",
    )
    .await;
}

#[tokio::test]
async fn a_slow_prometheus_times_out_and_keeps_the_last_good_data() {
    keeps_last_good_data(
        ResponseTemplate::new(200).set_delay(Duration::from_secs(3)),
        0.3,
        "timeout",
    )
    .await;
}

#[tokio::test]
async fn a_bad_query_is_named() {
    let body = json!({"status": "error", "errorType": "bad_data", "error": "1:5: parse error: unexpected <EOF>"});
    keeps_last_good_data(ResponseTemplate::new(400).set_body_json(body), 5.0, "query").await;
}

#[tokio::test]
async fn prometheus_down_keeps_the_last_good_data() {
    let good = healthy().await;
    let (_d, mut jobs, state) = jobs(&good.uri(), 2.0).await;
    jobs.poll_prometheus(NOW).await.unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    jobs.prometheus = Prometheus::new(&settings(&format!("http://127.0.0.1:{port}"), 2.0)).unwrap();
    let err = jobs.poll_prometheus(NOW + 60.0).await.unwrap_err();
    assert_eq!(err.kind(), "unreachable");
    assert!(
        err.to_string().contains(&format!("127.0.0.1:{port}")),
        "{err}"
    );
    assert_eq!(jobs.cluster.snapshot().hosts["cmp-1"].steal, Some(0.08));
    assert!(state
        .metrics
        .render()
        .contains("steward_source_errors_total{kind=\"unreachable\",source=\"prometheus\"} 1"));
}

#[actix_web::test]
async fn a_scoring_request_is_answered_while_a_refresh_is_held_open() {
    let slow = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(30)))
        .mount(&slow)
        .await;
    let (_d, jobs, state) = jobs(&slow.uri(), 60.0).await;
    let refresh = tokio::spawn(async move { jobs.poll_prometheus(NOW).await });
    let app = actix_web::test::init_service(steward::api::app(state)).await;
    let req = actix_web::test::TestRequest::post()
        .uri("/v1/weigh")
        .insert_header(("Authorization", format!("Bearer {}", common::app::READER)))
        .set_payload(r#"{"operation":"boot","instance":{"uuid":"6a1c3f6e-2d0b-4c4e-9a57-0e1f2a3b4c5d"},"hosts":[{"host":"a"}]}"#)
        .to_request();
    let resp = actix_web::test::call_service(&app, req).await;
    assert_eq!(resp.status(), 200);
    assert!(
        !refresh.is_finished(),
        "the refresh is still held open by the slow Prometheus"
    );
    refresh.abort();
}

#[tokio::test]
async fn a_rollup_publishes_and_stores_hour_of_week_profiles() {
    let server = MockServer::start().await;
    // Two weeks at one point an hour: cmp-a peaks at 20:00 UTC every day.
    let monday = 1_795_392_000.0_f64;
    let end = monday + 14.0 * 86400.0;
    let points = |peak: f64, base: f64| -> Vec<Value> {
        (1..=(14 * 24))
            .map(|h| {
                let t = monday + f64::from(h) * 3600.0;
                // the point at t covers the hour before t
                let hour = (h - 1) % 24;
                json!([t, format!("{}", if hour == 20 { peak } else { base })])
            })
            .collect()
    };
    let matrix = json!({"status": "success", "data": {"resultType": "matrix", "result": [
        {"metric": {"host": "cmp-a"}, "values": points(0.3, 0.02)},
        {"metric": {"host": "cmp-b"}, "values": points(0.05, 0.05)},
        {"metric": {"uuid": "vm-web-1"}, "values": points(3.0, 0.2)}
    ]}});
    Mock::given(method("GET"))
        .and(path("/api/v1/query_range"))
        .respond_with(ResponseTemplate::new(200).set_body_json(matrix))
        .mount(&server)
        .await;
    let (_d, mut jobs, _state) = jobs(&server.uri(), 5.0).await;
    let mut s = settings(&server.uri(), 5.0);
    s.history_weeks = 2;
    jobs.prometheus = Prometheus::new(&s).unwrap();
    jobs.cluster
        .update(|v| {
            v.vms.insert(
                "vm-web-1".into(),
                steward::model::VmFacts {
                    role: Some("web".into()),
                    ..Default::default()
                },
            );
        })
        .await;
    let (hosts, roles) = jobs.rollup(end).await.unwrap();
    assert_eq!((hosts, roles), (2, 1));
    let view = jobs.cluster.snapshot();
    let a = &view.weekly.host_steal["cmp-a"];
    assert_eq!(a.at(20), Some(0.3));
    assert_eq!(a.at(19), Some(0.02));
    assert_eq!(a.at(6 * 24 + 20), Some(0.3), "every day of the week");
    assert_eq!(view.weekly.role_demand["web"].at(20), Some(3.0));
    let stored = jobs.store.load_weekly().await.unwrap();
    assert_eq!(stored.host_steal["cmp-a"].at(20), Some(0.3));
    let requests = server.received_requests().await.unwrap();
    assert_eq!(requests.len(), 4, "one host and one VM query per week");
    let q = requests[0]
        .url
        .query_pairs()
        .find(|(k, _)| k == "query")
        .unwrap()
        .1
        .into_owned();
    assert!(q.starts_with("quantile_over_time(0.95, ("), "{q}");
}
