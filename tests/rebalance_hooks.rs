//! The generic hooks as an operator configures them: an exec hook's argv and an HTTP hook's URL,
//! headers and body filled from templates; failures name the hook, the server and the cause.

use std::collections::BTreeMap;

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
