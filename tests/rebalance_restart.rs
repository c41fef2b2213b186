//! Kill -9 the `steward rebalance run-once` binary while an action is draining and while it is
//! migrating, start it again, and check that the action resumes from the journal, ends closed
//! and rejoined (uncordoned, out of Consul maintenance), and that Nova was asked once.
//! Nova's compute side, Kubernetes and Consul are wiremock in this process; the journal is read
//! from the same SQLite file the binary writes, to know when to kill.
//! Also the planner's cycle end to end: telemetry sustained over `min_samples` runs of
//! `run-once` (and through `POST /v1/telemetry` with `serve`'s loop) becomes an approved plan in
//! auto mode and a move carried to `done`, the planner reading the fake Nova's listings and
//! Placement's room; and `serve` in dry-run mode journals a dry-run plan and moves nothing.

mod openstack_support;
mod rebalance_support;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use openstack_support::{clouds_yaml, mount_keystone, secure_yaml, TOKEN_1};
use rebalance_support::*;
use steward::store::journal::{ActionRow, ActionState};
use steward::store::DatabaseUrl;
use steward::store::Store;
use wiremock::MockServer;

const BIN: &str = env!("CARGO_BIN_EXE_steward");

struct Cloud {
    /// The journal's URL (SQLite file, or a MariaDB database of its own).
    db_url: String,
    mysql_db: Option<(String, String)>,
    nova: MockServer,
    k8s: MockServer,
    consul: MockServer,
    fake: FakeCompute,
    dir: tempfile::TempDir,
}

fn mysql_server() -> String {
    std::env::var("STEWARD_TEST_MYSQL_URL").unwrap_or_else(|_| "mysql://root@127.0.0.1:3306".into())
}

async fn mysql_admin(server: &str) -> sqlx::MySqlConnection {
    use sqlx::Connection;
    sqlx::MySqlConnection::connect(&format!("{server}/mysql"))
        .await
        .unwrap_or_else(|e| panic!("MariaDB at {server} is needed ({e}); run ./scripts/test or set STEWARD_TEST_MYSQL_URL"))
}

impl Cloud {
    async fn drop_db(&self) {
        if let Some((server, name)) = &self.mysql_db {
            let mut c = mysql_admin(server).await;
            sqlx::query(&format!("DROP DATABASE {name}"))
                .execute(&mut c)
                .await
                .unwrap();
        }
    }
}

async fn cloud(script: Script, k8s_refusals: u64) -> Cloud {
    cloud_on(script, k8s_refusals, None).await
}

/// The journal on SQLite (`mariadb` None) or in a database of its own on the MariaDB server at
/// `mariadb`.
async fn cloud_on(script: Script, k8s_refusals: u64, mariadb: Option<String>) -> Cloud {
    let nova = MockServer::start().await;
    mount_keystone(&nova, &[TOKEN_1]).await;
    let fake = FakeCompute::new(script);
    mount_compute(&nova, &fake).await;
    let k8s = MockServer::start().await;
    mount_kubernetes(&k8s, k8s_refusals).await;
    let consul = MockServer::start().await;
    mount_consul(&consul).await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (db_url, mysql_db) = if let Some(server) = mariadb {
        let name = format!("steward_test_{}", uuid::Uuid::new_v4().simple());
        let mut c = mysql_admin(&server).await;
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut c)
            .await
            .unwrap();
        (format!("{server}/{name}"), Some((server, name)))
    } else {
        (
            format!("sqlite://{}?mode=rwc", d.join("state.sqlite").display()),
            None,
        )
    };
    std::fs::write(d.join("clouds.yaml"), clouds_yaml(&nova.uri())).unwrap();
    std::fs::write(d.join("secure.yaml"), secure_yaml()).unwrap();
    std::fs::write(
        d.join("steward.toml"),
        format!(
            "[database]\nurl = \"{}\"\nauto_upgrade = true\n\
             [openstack]\ncloud = \"steward\"\n\
             [rebalance]\nmode = \"auto\"\n\
             [rebalance.execution]\npoll_seconds = 0.1\nlease_seconds = 1.0\nrejoin_retry_seconds = 0.1\n\
             [rebalance.hooks.kubernetes]\napi_url = \"{}\"\nevict_retry_seconds = 0.1\ndrain_timeout_seconds = 120\n\
             [rebalance.hooks.consul]\nagent_url = \"{}\"\n",
            db_url,
            k8s.uri(),
            consul.uri()
        ),
    )
    .unwrap();
    std::fs::write(
        d.join("plan.json"),
        serde_json::to_string(&plan_json()).unwrap(),
    )
    .unwrap();
    Cloud {
        db_url,
        mysql_db,
        nova,
        k8s,
        consul,
        fake,
        dir,
    }
}

fn steward(dir: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(BIN);
    c.current_dir(dir)
        .env_remove("STEWARD_CONFIG")
        .env_remove("OS_CLOUD")
        .env("OS_CLIENT_CONFIG_FILE", dir.join("clouds.yaml"))
        .env("OS_CLIENT_SECURE_FILE", dir.join("secure.yaml"))
        .env("STEWARD_LOG", "steward=info")
        .arg("--config")
        .arg(dir.join("steward.toml"))
        .args(args);
    c
}

fn import(dir: &Path) {
    let out = steward(dir, &["rebalance", "import-plan", "plan.json", "--approve"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "import-plan: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

async fn store(c: &Cloud) -> Store {
    Store::connect(&DatabaseUrl(c.db_url.clone()), 1)
        .await
        .unwrap()
}

async fn the_action(store: &Store) -> ActionRow {
    let all = store.actions(&[], 10).await.unwrap();
    assert_eq!(all.len(), 1, "{all:?}");
    all.into_iter().next().unwrap()
}

/// Wait (up to 60 s) until `ready` holds for the journal's action and the mocks.
async fn wait_for<F, Fut>(child: &mut Child, what: &str, ready: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    while !ready().await {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("steward ended ({status}) before {what}");
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn kill9(mut child: Child) {
    // Child::kill is SIGKILL on Unix: no destructor, no step-down, no last journal write.
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert!(!status.success(), "{status}");
}

/// Run run-once to its end; a dead holder's SQLite lease runs out after lease_seconds (exit 4
/// until then).
async fn run_to_end(dir: &Path) -> std::process::Output {
    run_to_end_counting(dir).await.0
}

/// As [`run_to_end`], with how many runs found another leader first.
async fn run_to_end_counting(dir: &Path) -> (std::process::Output, usize) {
    let started = Instant::now();
    let mut led_elsewhere = 0;
    loop {
        let out = steward(dir, &["rebalance", "run-once"]).output().unwrap();
        if out.status.code() != Some(4) || started.elapsed() > Duration::from_secs(20) {
            return (out, led_elsewhere);
        }
        led_elsewhere += 1;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_while_draining_then_restart_resumes_and_rejoins() {
    // A PodDisruptionBudget refuses every eviction: the drain stays in progress.
    let c = cloud(Script::default(), u64::MAX).await;
    let dir = c.dir.path();
    import(dir);
    let s = store(&c).await;
    let mut child = steward(dir, &["rebalance", "run-once"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for(&mut child, "draining with evictions refused", || async {
        let a = the_action(&s).await;
        let refused = calls(&c.k8s)
            .await
            .iter()
            .filter(|l| l.ends_with("/eviction"))
            .count();
        a.state == ActionState::Draining && refused >= 2
    })
    .await;
    kill9(child);
    assert_eq!(the_action(&s).await.state, ActionState::Draining);
    assert_eq!(c.fake.migrate_requests(), 0);

    // The budget allows the eviction now.
    c.k8s.reset().await;
    mount_kubernetes(&c.k8s, 0).await;
    let out = run_to_end(dir).await;
    assert!(
        out.status.success(),
        "run-once after the kill: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let a = the_action(&s).await;
    assert_eq!(a.state, ActionState::Done, "{a:?}");
    assert!(a.finished_at.is_some());
    assert_eq!(c.fake.migrate_requests(), 1);
    let k8s = calls(&c.k8s).await;
    assert_eq!(
        k8s.last().map(String::as_str),
        Some("PATCH /api/v1/nodes/web-1"),
        "{k8s:?}"
    );
    let uncordon = c
        .k8s
        .received_requests()
        .await
        .unwrap()
        .iter()
        .rev()
        .find(|r| r.method.as_str() == "PATCH")
        .map(|r| serde_json::from_slice::<serde_json::Value>(&r.body).unwrap())
        .unwrap();
    assert_eq!(uncordon["spec"]["unschedulable"], false);
    assert_eq!(
        calls(&c.consul).await.last().map(String::as_str),
        Some("PUT /v1/agent/maintenance?enable=false")
    );
    assert_eq!(transitions(&s, &a.id).await, DONE_PATH);
    s.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_while_migrating_then_restart_polls_without_asking_nova_again() {
    kill_9_while_migrating(false).await;
}

/// On MariaDB the leader holds GET_LOCK: the server frees it as the killed process's
/// connection drops, so the restarted run leads at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_while_migrating_on_mariadb_frees_the_leader_lock_and_resumes() {
    kill_9_while_migrating(true).await;
}

async fn kill_9_while_migrating(mariadb: bool) {
    // The migration runs until the test lets it complete.
    let c = cloud_on(
        Script {
            completes_after: None,
            ..Default::default()
        },
        0,
        mariadb.then(mysql_server),
    )
    .await;
    let dir = c.dir.path();
    import(dir);
    let s = store(&c).await;
    let mut child = steward(dir, &["rebalance", "run-once"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for(&mut child, "migrating with Nova polled", || async {
        let a = the_action(&s).await;
        a.state == ActionState::Migrating
            && a.accepted_at.is_some()
            && a.migration_id.is_some()
            && c.fake.state.lock().unwrap().polls >= 2
    })
    .await;
    kill9(child);
    let before = the_action(&s).await;
    assert_eq!(before.state, ActionState::Migrating);
    assert!(before.bytes_moved > 0, "progress was journaled: {before:?}");
    let consul_before = calls(&c.consul).await;
    assert_eq!(
        consul_before.len(),
        1,
        "still in maintenance: {consul_before:?}"
    );

    // Nova finishes the migration on the next poll.
    c.fake.set_script(Script {
        completes_after: Some(0),
        ..Default::default()
    });
    let (out, led_elsewhere) = run_to_end_counting(dir).await;
    if mariadb {
        assert_eq!(
            led_elsewhere, 0,
            "the killed leader's GET_LOCK was freed with its connection"
        );
    }
    assert!(
        out.status.success(),
        "run-once after the kill: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let a = the_action(&s).await;
    assert_eq!(a.state, ActionState::Done, "{a:?}");
    assert_eq!(c.fake.migrate_requests(), 1, "os-migrateLive was sent once");
    assert_eq!(a.bytes_moved, before.bytes_moved);
    assert_eq!(
        calls(&c.consul).await.last().map(String::as_str),
        Some("PUT /v1/agent/maintenance?enable=false")
    );
    assert_eq!(
        calls(&c.k8s).await.last().map(String::as_str),
        Some("PATCH /api/v1/nodes/web-1")
    );
    let _ = &c.nova;
    s.close().await;
    c.drop_db().await;
}

/// Push one round of telemetry into the journal's database, as `POST /v1/telemetry` stores
/// it: the VM busy (load5 1.8 on 2 vCPUs) and stolen (30 %) on cmp-1; cmp-2, in the same AZ
/// (Nova's aggregate), has no steal.
async fn push_noisy(s: &Store) {
    let now = steward::unix_now();
    s.save_telemetry(
        &[
            host_sample(SOURCE, 0.30, 0.95, now),
            host_sample(TARGET, 0.0, 0.2, now),
        ],
        &[noisy_vm_sample(now)],
        now,
    )
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_once_in_auto_mode_plans_from_sustained_telemetry_and_moves_the_vm() {
    let c = cloud(Script::default(), 0).await;
    let dir = c.dir.path();
    let s = store(&c).await;
    s.upgrade().await.unwrap();
    // [rebalance] min_samples is 3 by default: two runs see too few samples.
    for run in 1..=3 {
        push_noisy(&s).await;
        // Samples are told apart by their time.
        tokio::time::sleep(Duration::from_millis(20)).await;
        let out = steward(dir, &["rebalance", "run-once", "-f", "json"])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(
            out.status.success(),
            "run {run}: {text}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
        let actions = s.actions(&[], 10).await.unwrap();
        if run < 3 {
            assert_eq!(doc["plan"]["candidates"], 0, "run {run}: {doc}");
            assert!(doc["plan"]["id"].is_null(), "run {run}: {doc}");
            assert!(actions.is_empty(), "run {run}: {actions:?}");
            assert_eq!(c.fake.migrate_requests(), 0);
        } else {
            assert_eq!(doc["plan"]["candidates"], 1, "{doc}");
            assert_eq!(doc["plan"]["state"], "approved", "{doc}");
            assert_eq!(doc["plan"]["actions"][0]["target_host"], TARGET, "{doc}");
            let a = the_action(&s).await;
            assert_eq!(a.state, ActionState::Done, "{a:?}");
            assert_eq!((a.source.as_str(), a.target.as_str()), (SOURCE, TARGET));
            assert_eq!(a.vm_name, NODE, "the server's name from Nova's listing");
            assert_eq!(c.fake.migrate_requests(), 1);
        }
    }
    // The VM now runs on cmp-2: the next run plans nothing and asks Nova nothing more.
    let out = steward(dir, &["rebalance", "run-once"]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(c.fake.migrate_requests(), 1);
    assert_eq!(s.plans(10).await.unwrap().len(), 1);
}

/// Kills the service when the test ends, whatever happens.
struct Service(Child);

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

const ADMIN: &str = "admin-token-0123456789abcdef";

/// `serve` over the cloud in `mode`, planning and executing every 0.2 s; answers on the
/// returned port once `/healthz` does. `ADMIN` is an admin token.
async fn serve(c: &Cloud, mode: &str) -> (Service, u16) {
    let dir = c.dir.path();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    std::fs::write(dir.join("tokens"), format!("{ADMIN} admin\n")).unwrap();
    let toml = std::fs::read_to_string(dir.join("steward.toml"))
        .unwrap()
        .replace(
            "[rebalance]\nmode = \"auto\"\n",
            &format!("[rebalance]\nmode = \"{mode}\"\ninterval_seconds = 0.2\n"),
        )
        .replace(
            "[rebalance.execution]\n",
            "[rebalance.execution]\ncycle_seconds = 0.2\n",
        );
    std::fs::write(
        dir.join("steward.toml"),
        format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\n\
             [auth]\nstrategy = \"static\"\ntoken_file = \"tokens\"\n{toml}"
        ),
    )
    .unwrap();
    let service = Service(
        steward(dir, &["serve"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let http = reqwest::Client::new();
    let started = Instant::now();
    while !http
        .get(format!("http://127.0.0.1:{port}/healthz"))
        .send()
        .await
        .is_ok_and(|r| r.status() == 200)
    {
        assert!(started.elapsed() < Duration::from_secs(30), "no /healthz");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    (service, port)
}

/// Push one round of telemetry the way a telemetry agent does: the VM busy and stolen on
/// cmp-1, cmp-2 quiet.
async fn post_noisy(http: &reqwest::Client, port: u16) {
    let now = steward::unix_now();
    let body = serde_json::json!({
        "hosts": [
            {"host": SOURCE, "steal": 0.30, "load5": 30.4, "cpu_use": 0.95, "vcpus": 32, "observed_at": now},
            {"host": TARGET, "steal": 0.0, "load5": 6.4, "cpu_use": 0.2, "vcpus": 32, "observed_at": now},
        ],
        "vms": [{"uuid": VM, "host": SOURCE, "steal": 0.30, "load5": 1.8, "vcpus": 2, "observed_at": now}],
    });
    let r = http
        .post(format!("http://127.0.0.1:{port}/v1/telemetry"))
        .bearer_auth(ADMIN)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202, "{}", r.text().await.unwrap_or_default());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_in_auto_mode_plans_from_pushed_telemetry_and_moves_the_vm() {
    let c = cloud(Script::default(), 0).await;
    let (_service, port) = serve(&c, "auto").await;
    let http = reqwest::Client::new();
    let url = |p: &str| format!("http://127.0.0.1:{port}{p}");
    let s = store(&c).await;
    // Pushed until the window holds min_samples (3) samples and the loop has planned and
    // carried out the move.
    let started = Instant::now();
    let mut pushes = 0;
    loop {
        post_noisy(&http, port).await;
        pushes += 1;
        let actions = s.actions(&[], 10).await.unwrap();
        if actions.iter().any(|a| a.state == ActionState::Done) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no move done after {pushes} pushes: {actions:?}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert!(
        pushes >= 3,
        "a move after {pushes} push(es): the window was not sustained"
    );
    let plans = s.plans(10).await.unwrap();
    assert_eq!(plans.len(), 1, "{plans:?}");
    assert_eq!(plans[0].mode, "auto");
    let a = the_action(&s).await;
    assert_eq!((a.source.as_str(), a.target.as_str()), (SOURCE, TARGET));
    assert_eq!(c.fake.migrate_requests(), 1);
    let metrics = http
        .get(url("/metrics"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("steward_rebalance_actions_total{state=\"done\"} 1"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_in_dry_run_mode_journals_a_dry_run_plan_and_migrates_nothing() {
    let c = cloud(Script::default(), 0).await;
    let (_service, port) = serve(&c, "dry-run").await;
    let http = reqwest::Client::new();
    let started = Instant::now();
    let mut pushes = 0;
    let plans = loop {
        post_noisy(&http, port).await;
        pushes += 1;
        let r = http
            .get(format!("http://127.0.0.1:{port}/v1/rebalance/plans"))
            .bearer_auth(ADMIN)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let body: serde_json::Value = r.json().await.unwrap();
        if body["plans"].as_array().is_some_and(|p| !p.is_empty()) {
            break body["plans"].clone();
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no dry-run plan after {pushes} pushes: {body}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert!(
        pushes >= 3,
        "a plan after {pushes} push(es): the window was not sustained"
    );
    let plan = &plans[0];
    assert_eq!(plan["mode"], "dry-run", "{plan}");
    assert_eq!(plan["state"], "proposed", "{plan}");
    let action = &plan["actions"][0];
    assert_eq!(action["vm"], VM, "{plan}");
    assert_eq!(
        (&action["source"], &action["target"]),
        (&SOURCE.into(), &TARGET.into())
    );
    assert_eq!(action["state"], "planned", "{plan}");
    // Several more cycles of the loop: still nothing started.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(c.fake.migrate_requests(), 0, "no os-migrateLive in dry-run");
    let nova = calls(&c.nova).await;
    assert!(
        !nova.iter().any(|l| l.starts_with("POST /v2.1/servers/")),
        "{nova:?}"
    );
    assert!(
        nova.iter()
            .any(|l| l.starts_with("GET /resource_providers/") && l.ends_with("/usages")),
        "the planner read Placement's room: {nova:?}"
    );
    assert!(calls(&c.k8s).await.is_empty(), "no drain in dry-run");
    let s = store(&c).await;
    assert!(s
        .actions(&[], 10)
        .await
        .unwrap()
        .iter()
        .all(|a| a.state == ActionState::Planned));
}

/// A MariaDB server of one test's own (scripts/mariadb-private.sh: its own datadir, socket and
/// free port), which the test stops and starts again: the shared server other tests use is
/// never restarted.
struct PrivateMariaDb {
    dir: tempfile::TempDir,
    url: String,
    port: String,
}

impl PrivateMariaDb {
    fn start() -> PrivateMariaDb {
        // Under the system's temporary folder: mariadbd runs as `mysql`.
        let dir = tempfile::Builder::new()
            .prefix("steward-mariadb-")
            .tempdir()
            .unwrap();
        let url = Self::run_script(dir.path(), None);
        let port = url.rsplit(':').next().unwrap().to_string();
        PrivateMariaDb { dir, url, port }
    }

    fn run_script(dir: &Path, port: Option<&str>) -> String {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/mariadb-private.sh");
        // Files, not pipes: the server started in the background keeps the script's streams.
        let out_path = dir.join("start.out");
        let mut c = Command::new("bash");
        c.arg(&script).arg(dir);
        if let Some(p) = port {
            c.arg(p);
        }
        let status = c
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&out_path).unwrap())
            .stderr(std::fs::File::create(dir.join("start.err")).unwrap())
            .status()
            .unwrap();
        let out = std::fs::read_to_string(&out_path).unwrap();
        assert!(
            status.success() && !out.trim().is_empty(),
            "{} {} failed: {}; see {}/error.log",
            script.display(),
            dir.display(),
            std::fs::read_to_string(dir.join("start.err")).unwrap_or_default(),
            dir.display()
        );
        out.trim().lines().last().unwrap().to_string()
    }

    fn pid(&self) -> Option<String> {
        std::fs::read_to_string(self.dir.path().join("mysqld.pid"))
            .ok()
            .map(|p| p.trim().to_string())
            .filter(|p| !p.is_empty())
    }

    /// SIGTERM (a clean shutdown: every client connection is cut) and wait until it is gone.
    fn stop(&self) {
        let Some(pid) = self.pid() else { return };
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let started = Instant::now();
        while Command::new("kill")
            .args(["-0", &pid])
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
        {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "mariadbd {pid} did not stop"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Start it again on the same port and datadir.
    fn start_again(&self) {
        let url = Self::run_script(self.dir.path(), Some(&self.port));
        assert_eq!(url, self.url);
    }
}

impl Drop for PrivateMariaDb {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The journal's MariaDB server restarts (shut down, down for two seconds, up again on the same
/// port) while an action is migrating: the run rides through (journal writes wait for the
/// server, the leader takes its lock again), the action ends closed and rejoined, the move was
/// asked of Nova once, nothing is left drained, and the run's log says what happened.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_restarted_while_migrating_the_action_still_ends_rejoined() {
    let db = PrivateMariaDb::start();
    // Slow progress: the migration reports bytes on every poll, so journal writes are due
    // while the server is down.
    let c = cloud_on(
        Script {
            completes_after: None,
            bytes_per_poll: 1 << 20,
            ..Default::default()
        },
        0,
        Some(db.url.clone()),
    )
    .await;
    let dir = c.dir.path();
    import(dir);
    let s = store(&c).await;
    let mut child = steward(dir, &["rebalance", "run-once"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for(&mut child, "migrating with Nova polled", || async {
        let a = the_action(&s).await;
        a.state == ActionState::Migrating
            && a.migration_id.is_some()
            && c.fake.state.lock().unwrap().polls >= 2
    })
    .await;

    db.stop();
    std::thread::sleep(Duration::from_secs(2));
    db.start_again();
    // Nova finishes the migration on the next poll.
    c.fake.set_script(Script {
        completes_after: Some(0),
        ..Default::default()
    });
    let first = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    let first_text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&first.stdout),
        String::from_utf8_lossy(&first.stderr)
    );
    // The run rode the restart through: journal writes waited for the server, the leader took
    // its GET_LOCK again.
    assert!(first.status.success(), "run-once: {first_text}");
    let s = store(&c).await;
    let a = the_action(&s).await;
    assert_eq!(a.state, ActionState::Done, "{a:?}\n{first_text}");
    assert!(a.finished_at.is_some());
    assert_eq!(c.fake.migrate_requests(), 1, "os-migrateLive was sent once");
    assert_eq!(
        calls(&c.consul).await.last().map(String::as_str),
        Some("PUT /v1/agent/maintenance?enable=false")
    );
    assert_eq!(
        calls(&c.k8s).await.last().map(String::as_str),
        Some("PATCH /api/v1/nodes/web-1")
    );
    assert_eq!(transitions(&s, &a.id).await, DONE_PATH, "{first_text}");
    // What happened is in the run's log: the database went away and the leader led again.
    for said in [
        "steward's database is out of reach",
        "this replica leads again",
    ] {
        assert!(first_text.contains(said), "{said:?} not in: {first_text}");
    }
    s.close().await;
    c.drop_db().await;
}
