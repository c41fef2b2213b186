//! The `steward` binary as an operator runs it: config check, db upgrade/status, serve.

use std::io::Read;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_steward");
const TOKEN: &str = "admin-token-0123456789abcdef";

fn steward(dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new(BIN)
        .current_dir(dir)
        .env_remove("STEWARD_CONFIG")
        .args(args)
        .output()
        .expect("steward runs")
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn config(dir: &Path, port: u16) -> std::path::PathBuf {
    std::fs::write(dir.join("tokens"), format!("{TOKEN} admin\n")).unwrap();
    let p = dir.join("steward.toml");
    std::fs::write(
        &p,
        format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\n[auth]\nstrategy = \"static\"\ntoken_file = \"tokens\"\n[database]\nurl = \"sqlite://{}?mode=rwc\"\nauto_upgrade = false\n",
            dir.join("state.sqlite").display()
        ),
    )
    .unwrap();
    p
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn serve(dir: &Path, cfg: &Path, port: u16) -> Server {
    let child = Command::new(BIN)
        .current_dir(dir)
        .args(["--config", cfg.to_str().unwrap(), "serve"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut server = Server(child);
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if reqwest::blocking::get(format!("http://127.0.0.1:{port}/healthz"))
            .is_ok_and(|r| r.status() == 200)
        {
            return server;
        }
        if let Ok(Some(status)) = server.0.try_wait() {
            let mut err = String::new();
            server
                .0
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut err)
                .unwrap();
            panic!("steward exited with {status}: {err}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("steward did not answer /healthz within 30 s");
}

#[test]
fn config_check_lists_problems_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("bad.toml"),
        "[server]\nlisten = \"0.0.0.0:x\"\n[auth]\nstrategy = \"static\"\n",
    )
    .unwrap();
    let out = steward(dir.path(), &["--config", "bad.toml", "config", "check"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("server.listen:") && err.contains("auth.token_file:"),
        "{err}"
    );
    let out = steward(
        dir.path(),
        &["--config", "bad.toml", "config", "check", "-f", "json"],
    );
    assert_eq!(out.status.code(), Some(1));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["valid"], false);
    assert_eq!(doc["problems"].as_array().unwrap().len(), 2);
    let out = steward(dir.path(), &["config", "check"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn config_check_says_what_a_move_of_unknown_az_gets() {
    let dir = tempfile::tempdir().unwrap();
    let out = steward(dir.path(), &["config", "check"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("a move of unknown AZ: refused (scheduling.unknown_az = fail_closed)"),
        "{text}"
    );
    std::fs::write(
        dir.path().join("open.toml"),
        "[scheduling]\nunknown_az = \"fail_open\"\n",
    )
    .unwrap();
    let out = steward(dir.path(), &["--config", "open.toml", "config", "check"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("scheduling.unknown_az = fail_open"), "{text}");
    let out = steward(
        dir.path(),
        &["--config", "open.toml", "config", "check", "-f", "json"],
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["unknown_az"], "fail_open");
}

#[test]
fn serve_refuses_an_invalid_config() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .current_dir(dir.path())
        .env("STEWARD__SERVER__LISTEN", "0.0.0.0:8790")
        .args(["serve"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("auth.strategy") && err.contains("refusing to start"),
        "{err}"
    );
}

#[test]
fn db_status_upgrade_and_a_service_that_refuses_an_old_schema() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let cfg = config(dir.path(), port);
    let c = cfg.to_str().unwrap();
    let out = steward(dir.path(), &["--config", c, "db", "status"]);
    assert_eq!(out.status.code(), Some(3), "pending migrations");
    assert!(String::from_utf8_lossy(&out.stdout).contains("pending 1 telemetry"));
    // auto_upgrade = false: serve will not run on an old schema.
    let out = Command::new(BIN)
        .args(["--config", c, "serve"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("run `steward db upgrade`"));
    let out = steward(dir.path(), &["--config", c, "db", "upgrade"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // As many as sql/sqlite holds (each engineer's branch adds its own).
    let migrations = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/sql/sqlite"))
        .unwrap()
        .count();
    assert!(String::from_utf8_lossy(&out.stdout)
        .contains(&format!("{migrations} migration(s) applied, 0 pending")));
    assert_eq!(
        steward(dir.path(), &["--config", c, "db", "status"])
            .status
            .code(),
        Some(0)
    );
}

#[test]
fn pushed_telemetry_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let cfg = config(dir.path(), port);
    assert!(steward(
        dir.path(),
        &["--config", cfg.to_str().unwrap(), "db", "upgrade"]
    )
    .status
    .success());
    let client = reqwest::blocking::Client::new();
    let url = |p: &str| format!("http://127.0.0.1:{port}{p}");
    {
        let _s = serve(dir.path(), &cfg, port);
        let r = client
            .post(url("/v1/telemetry"))
            .bearer_auth(TOKEN)
            .body(r#"{"hosts":[{"host":"cmp-1","az":"az1","steal":0.07}]}"#)
            .send()
            .unwrap();
        assert_eq!(r.status(), 202);
    }
    let _s = serve(dir.path(), &cfg, port);
    let hosts: serde_json::Value = client
        .get(url("/v1/hosts"))
        .bearer_auth(TOKEN)
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(hosts["hosts"][0]["host"], "cmp-1");
    assert_eq!(hosts["hosts"][0]["az"], "az1");
    assert_eq!(hosts["hosts"][0]["steal"], 0.07);
}

#[test]
fn config_check_online_without_a_cloud_says_nothing_was_tried_and_fails() {
    let dir = tempfile::tempdir().unwrap();
    let out = steward(dir.path(), &["config", "check", "--online"]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("nova reads: not tried") && text.contains("no cloud is configured"),
        "{text}"
    );
    let out = steward(dir.path(), &["config", "check", "--online", "-f", "json"]);
    assert_eq!(out.status.code(), Some(1));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["valid"], true);
    assert!(doc["nova_reads"]["error"]
        .as_str()
        .unwrap()
        .contains("no cloud is configured"));
    // The control: without --online nothing is tried and a valid configuration passes.
    let out = steward(dir.path(), &["config", "check", "-f", "json"]);
    assert!(out.status.success());
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(doc["nova_reads"].is_null());
}
