//! The generic hooks as an operator configures them: an exec hook's argv and an HTTP hook's URL,
//! headers and body filled from templates; failures name the hook, the server and the cause.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use steward::rebalance::hooks::exec::Exec;
use steward::rebalance::hooks::http::Http;
use steward::rebalance::hooks::settings::{ExecHookSettings, HttpHookSettings};
use steward::rebalance::hooks::{Hook, HookContext};
use wiremock::matchers::{body_string, header, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn ctx() -> HookContext {
    HookContext {
        action: "5b0c7f5e-1111-4222-8333-944445555666".into(),
        vm: "8d2f6c1e-3b7a-4c55-9f0e-2a1b3c4d5e6f".into(),
        vm_name: "web-1".into(),
        source: "cmp-1".into(),
        target: "cmp-2".into(),
        az: "az1".into(),
        metadata: [("lb_pool".to_string(), "shop-web".to_string())].into(),
    }
}

#[tokio::test]
async fn an_exec_hook_runs_its_templated_argv_and_reports_a_failure_with_stderr() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("calls");
    let hook = Exec::new(&ExecHookSettings {
        name: "lb-pool".into(),
        drain: vec![
            "sh".into(),
            "-c".into(),
            format!("echo drain \"$0\" \"$1\" \"$2\" >> {}", out.display()),
            "{vm_name}".into(),
            "{source}->{target}".into(),
            "{meta:lb_pool}".into(),
        ],
        rejoin: vec![
            "sh".into(),
            "-c".into(),
            "echo 'pool shop-web is locked' >&2; exit 3".into(),
        ],
        timeout_seconds: 10.0,
    });
    hook.drain(&ctx()).await.unwrap();
    assert_eq!(
        std::fs::read_to_string(&out).unwrap(),
        "drain web-1 cmp-1->cmp-2 shop-web\n"
    );
    let e = hook.rejoin(&ctx()).await.unwrap_err().0;
    assert!(e.contains("\"lb-pool\"") && e.contains("rejoin"), "{e}");
    assert!(e.contains("8d2f6c1e-3b7a-4c55-9f0e-2a1b3c4d5e6f"), "{e}");
    assert!(
        e.contains("pool shop-web is locked") && e.contains("exit status: 3"),
        "{e}"
    );
}

#[tokio::test]
async fn an_exec_hook_past_its_timeout_is_killed() {
    let hook = Exec::new(&ExecHookSettings {
        name: "slow".into(),
        drain: vec!["sleep".into(), "30".into()],
        rejoin: vec![],
        timeout_seconds: 0.3,
    });
    let started = std::time::Instant::now();
    let e = hook.drain(&ctx()).await.unwrap_err().0;
    assert!(started.elapsed().as_secs() < 5);
    assert!(e.contains("killed") && e.contains("timeout_seconds"), "{e}");
    // No rejoin argv: nothing to run, success.
    hook.rejoin(&ctx()).await.unwrap();
}

#[tokio::test]
async fn an_http_hook_sends_its_templates_and_names_a_refusal() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/silence"))
        .and(query_param("host", "web-1"))
        .and(header("x-reason", "move to cmp-2"))
        .and(body_string(
            r#"{"vm": "8d2f6c1e-3b7a-4c55-9f0e-2a1b3c4d5e6f", "az": "az1"}"#,
        ))
        .respond_with(ResponseTemplate::new(204))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/unsilence"))
        .respond_with(ResponseTemplate::new(503).set_body_string("maintenance window closed"))
        .mount(&server)
        .await;
    let hook = Http::new(&HttpHookSettings {
        name: "pager".into(),
        method: "POST".into(),
        drain_url: format!("{}/silence?host={{vm_name}}", server.uri()),
        rejoin_url: format!("{}/unsilence?host={{vm_name}}&token=s3cret", server.uri()),
        body: r#"{"vm": "{vm}", "az": "{az}"}"#.into(),
        headers: BTreeMap::from([("X-Reason".to_string(), "move to {target}".to_string())]),
        timeout_seconds: 5.0,
    })
    .unwrap();
    hook.drain(&ctx()).await.unwrap();
    let e = hook.rejoin(&ctx()).await.unwrap_err().0;
    assert!(
        e.contains("\"pager\"") && e.contains("503") && e.contains("maintenance window closed"),
        "{e}"
    );
    assert!(!e.contains("s3cret"), "the query may hold a secret: {e}");
}

/// Server names and metadata a tenant may set, each a way to break out of where it lands.
fn hostile_values() -> Vec<String> {
    vec![
        r#"web", "admin": true, "x": "1"#.into(),
        "line one\nline two\r\nX-Injected: yes".into(),
        "$(touch /tmp/steward-hook-pwned) `id` ; rm -rf / #".into(),
        "100% %2F%00 %s %n {vm} {meta:k}".into(),
        "a/b?c=d&e#f ../..\\".into(),
        "сервер-名前-🚀 ümlaut".into(),
        "x".repeat(8_000),
    ]
}

fn hostile_ctx(value: &str) -> HookContext {
    HookContext {
        vm_name: value.to_string(),
        metadata: [("lb_pool".to_string(), value.to_string())].into(),
        ..ctx()
    }
}

#[tokio::test]
async fn an_exec_hook_passes_hostile_values_as_exact_argv_elements() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("argv");
    for value in hostile_values() {
        let hook = Exec::new(&ExecHookSettings {
            name: "argv".into(),
            // The script is the operator's and fixed; the values are only ever "$1", "$2".
            drain: vec![
                "sh".into(),
                "-c".into(),
                format!("printf '%s\\0' \"$@\" > {}", out.display()),
                "sh".into(),
                "{vm_name}".into(),
                "pool={meta:lb_pool}".into(),
            ],
            rejoin: vec![],
            timeout_seconds: 10.0,
        });
        hook.drain(&hostile_ctx(&value)).await.unwrap();
        let got = std::fs::read(&out).unwrap();
        let args: Vec<&[u8]> = got.split(|b| *b == 0).filter(|a| !a.is_empty()).collect();
        assert_eq!(
            args,
            vec![value.as_bytes(), format!("pool={value}").as_bytes()],
            "value {value:?}"
        );
    }
    assert!(!std::path::Path::new("/tmp/steward-hook-pwned").exists());
}

#[tokio::test]
async fn an_http_hook_escapes_hostile_values_for_the_url_the_headers_and_the_json_body() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(204))
        .mount(&server)
        .await;
    let hook = Http::new(&HttpHookSettings {
        name: "orchestrator".into(),
        method: "POST".into(),
        drain_url: format!(
            "{}/nodes/{{vm_name}}/drain?pool={{meta:lb_pool}}",
            server.uri()
        ),
        rejoin_url: String::new(),
        body: r#"{"node": "{vm_name}", "pool": "{meta:lb_pool}", "admin": false}"#.into(),
        headers: BTreeMap::from([("X-Node".to_string(), "node {vm_name}".to_string())]),
        timeout_seconds: 5.0,
    })
    .unwrap();
    for value in hostile_values() {
        hook.drain(&hostile_ctx(&value))
            .await
            .unwrap_or_else(|e| panic!("value {value:?}: {e}"));
        let req = server.received_requests().await.unwrap().pop().unwrap();
        // URL: one path segment and one query value, each decoding to the exact value.
        let segs: Vec<_> = req.url.path_segments().unwrap().collect();
        assert_eq!(segs.len(), 3, "value {value:?} split the path: {}", req.url);
        let seg = percent_decode(segs[1]);
        assert_eq!(seg, value, "path segment of {}", req.url);
        let pools: Vec<_> = req.url.query_pairs().filter(|(k, _)| k == "pool").collect();
        assert_eq!(pools.len(), 1, "{}", req.url);
        assert_eq!(pools[0].1, value.as_str());
        assert!(
            req.url.query_pairs().all(|(k, _)| k == "pool"),
            "{}",
            req.url
        );
        // Body: JSON, the values as strings, nothing added.
        let body: serde_json::Value = serde_json::from_slice(&req.body)
            .unwrap_or_else(|e| panic!("value {value:?}: body is not JSON ({e})"));
        assert_eq!(
            body,
            serde_json::json!({"node": value, "pool": value, "admin": false})
        );
        assert_eq!(req.headers.get("content-type").unwrap(), "application/json");
        // Header: one header, percent-encoded, no line break reached the wire.
        let h: Vec<_> = req.headers.get_all("x-node").iter().collect();
        assert_eq!(h.len(), 1);
        assert_eq!(
            percent_decode(h[0].to_str().unwrap()),
            format!("node {value}")
        );
        assert!(req.headers.get("x-injected").is_none());
    }
}

#[tokio::test]
async fn an_http_hook_refuses_a_body_template_with_a_field_outside_a_json_string() {
    let e = Http::new(&HttpHookSettings {
        name: "raw".into(),
        method: "POST".into(),
        drain_url: "http://127.0.0.1:9/x".into(),
        rejoin_url: String::new(),
        body: r#"{"size": {meta:size}}"#.into(),
        headers: BTreeMap::new(),
        timeout_seconds: 5.0,
    })
    .err()
    .expect("a field outside quotes in a JSON body must be refused");
    assert!(
        e.0.contains("\"raw\"") && e.0.contains("{meta:size}"),
        "{e}"
    );
}

fn percent_decode(s: &str) -> String {
    url::Url::parse(&format!("http://x/?v={}", s.replace('+', "%2B")))
        .unwrap()
        .query_pairs()
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap()
}

/// Instants at which the refresh job asked its source.
#[derive(Clone, Default)]
struct Polls(std::sync::Arc<std::sync::Mutex<Vec<std::time::Instant>>>);

impl wiremock::Respond for Polls {
    fn respond(&self, _: &wiremock::Request) -> ResponseTemplate {
        self.0.lock().unwrap().push(std::time::Instant::now());
        ResponseTemplate::new(200).set_body_json(serde_json::json!(
            {"status": "success", "data": {"resultType": "vector", "result": []}}
        ))
    }
}

/// The exec hook shares the runtime with the jobs that keep the view current: a hook whose
/// grandchild hangs on to stderr past the timeout must neither stall them nor outlive it.
#[actix_web::test]
async fn a_hung_hooks_grandchild_holding_stderr_neither_delays_the_refresh_nor_survives() {
    let prom = MockServer::start().await;
    let polls = Polls::default();
    Mock::given(method("GET"))
        .and(path("/api/v1/query"))
        .respond_with(polls.clone())
        .mount(&prom)
        .await;
    let (_dir, state) = common::app::state("").await;
    let jobs = steward::jobs::Jobs {
        prometheus: steward::telemetry::prometheus::Prometheus::new(
            &steward::telemetry::prometheus::PrometheusSettings {
                url: Some(prom.uri()),
                timeout_seconds: 5.0,
                interval_seconds: 0.1,
                ..Default::default()
            },
        )
        .unwrap(),
        nova: None,
        store: state.store.clone(),
        cluster: state.cluster.clone(),
        metrics: state.metrics.clone(),
    };
    jobs.spawn();

    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("grandchild");
    // The grandchild inherits stderr and sleeps well past the timeout; its parent either
    // gives up at once or hangs too.
    let cases = [
        ("echo 'gave up' >&2; exit 3", "exit status: 3"),
        ("sleep 6", "killed"),
    ];
    actix_web::rt::time::sleep(Duration::from_millis(400)).await;
    let started = std::time::Instant::now();
    for (then, expect) in cases {
        let hook = Exec::new(&ExecHookSettings {
            name: "hung".into(),
            drain: vec![
                "sh".into(),
                "-c".into(),
                format!("sleep 6 & echo $! > {}; {then}", pidfile.display()),
            ],
            rejoin: vec![],
            timeout_seconds: 0.5,
        });
        let one = std::time::Instant::now();
        let e = hook.drain(&ctx()).await.unwrap_err().0;
        let took = one.elapsed();
        assert!(e.contains(expect), "{e}");
        assert!(took < Duration::from_secs(3), "the hook took {took:?}: {e}");
        assert_grandchild_gone(&pidfile);
    }
    actix_web::rt::time::sleep(Duration::from_millis(600)).await;

    // The refresh kept its pace through the hook: no gap near the hook's length.
    let seen = polls.0.lock().unwrap().clone();
    let during: Vec<_> = seen
        .iter()
        .filter(|t| **t >= started - Duration::from_millis(300))
        .collect();
    assert!(
        during.len() >= 3,
        "{} polls after the hook started",
        during.len()
    );
    let gap = during
        .windows(2)
        .map(|w| w[1].duration_since(*w[0]))
        .max()
        .unwrap();
    assert!(
        gap < Duration::from_millis(900),
        "the refresh stalled for {gap:?}"
    );
}

/// The process whose pid `pidfile` holds has ended (gone, or a zombie awaiting its reaper).
fn assert_grandchild_gone(pidfile: &std::path::Path) {
    let pid = std::fs::read_to_string(pidfile).unwrap();
    // SIGKILL is delivered at once, but the dying process may take a moment to show it.
    let mut state = None;
    for _ in 0..50 {
        let stat =
            std::fs::read_to_string(format!("/proc/{}/stat", pid.trim())).unwrap_or_default();
        state = stat
            .rsplit(')')
            .next()
            .and_then(|s| s.split_whitespace().next())
            .map(str::to_string);
        if matches!(state.as_deref(), None | Some("Z") | Some("X")) {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("grandchild {} still runs (state {state:?})", pid.trim());
}
