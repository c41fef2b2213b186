//! Leader election on a real three-node Galera cluster on loopback (`scripts/galera-private.sh`;
//! `STEWARD_TEST_GALERA_URLS`, three URLs separated by commas, or a private cluster this test
//! starts): replicas on different nodes race for the lease and exactly one wins each round
//! (Galera certifies the conditional UPDATE cluster-wide); a deposed leader's late journal write
//! through its own node is refused by the epoch; migrations apply without GET_LOCK; and the
//! control: GET_LOCK, the old election, grants the same lock on two nodes at once (or is
//! refused outright with error 1235 on builds with MDEV-30473).

//! Leader election on a real three-node Galera cluster on loopback, which this test starts
//! (`scripts/galera-private.sh`) and stops. In order, on the one cluster:
//! - the control: GET_LOCK, the old election, grants the same lock on two nodes at once (or is
//!   refused with error 1235 on builds with MDEV-30473): it cannot elect on Galera;
//! - replicas on different nodes race for the lease and exactly one wins each round (Galera
//!   certifies the conditional UPDATE); a deposed leader's late write through its own node is
//!   refused by the epoch; migrations apply without GET_LOCK;
//! - three `steward serve` replicas in auto mode, one per node, carry a live migration while
//!   the leader is killed -9, the next is stopped (SIGSTOP) past its lease and let go on, and
//!   the next one's Galera node is killed: one holder at a time, each takeover within the lease
//!   plus one cycle, Nova asked to migrate once, the action closed along the journal's one path.

mod openstack_support;
mod rebalance_support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sqlx::{Connection, Row};
use steward::store::journal::{ActionState, JournalError, NewAction, NewPlan, Patch};
use steward::store::lease::Fence;
use steward::store::DatabaseUrl;
use steward::store::Store;

/// The private cluster: three nodes' URLs and datadirs; every node is killed on drop.
struct Cluster {
    dir: tempfile::TempDir,
    urls: Vec<String>,
}

impl Cluster {
    fn start() -> Cluster {
        let dir = tempfile::Builder::new()
            .prefix("steward-galera-")
            .tempdir()
            .unwrap();
        let out = Command::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/scripts/galera-private.sh"
        ))
        .arg(dir.path())
        .output()
        .expect("scripts/galera-private.sh runs");
        let cluster = Cluster {
            urls: String::from_utf8_lossy(&out.stdout)
                .lines()
                .map(str::to_string)
                .collect(),
            dir,
        };
        assert!(
            out.status.success() && cluster.urls.len() == 3,
            "the private Galera cluster did not start: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        cluster
    }

    fn pid(&self, node: usize) -> Option<i32> {
        std::fs::read_to_string(self.dir.path().join(format!("node{}/mysqld.pid", node + 1)))
            .ok()
            .and_then(|p| p.trim().parse().ok())
    }

    /// Kill node `node` (0-based) at once, as a crashed host would.
    fn kill_node(&self, node: usize) {
        if let Some(pid) = self.pid(node) {
            signal(pid, "KILL");
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for n in 0..3 {
            self.kill_node(n);
        }
    }
}

fn signal(pid: i32, sig: &str) {
    let _ = Command::new("kill")
        .args([format!("-{sig}"), pid.to_string()])
        .stderr(Stdio::null())
        .status();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn galera_leader_election() {
    let cluster = Cluster::start();
    get_lock_cannot_elect_on_galera(&cluster.urls).await;
    one_leader_per_round_and_the_deposed_fenced(&cluster.urls).await;
    three_replicas_fail_over(&cluster).await;
}

/// A fresh database on the cluster, upgraded through node 1; one store per node.
async fn stores(nodes: &[String]) -> (String, Vec<Store>) {
    assert_eq!(nodes.len(), 3, "{nodes:?}");
    let name = format!("steward_galera_{}", uuid::Uuid::new_v4().simple());
    let mut c = sqlx::MySqlConnection::connect(&format!("{}/mysql", nodes[0]))
        .await
        .unwrap();
    let on: String = sqlx::query("SELECT @@wsrep_on AS w")
        .fetch_one(&mut c)
        .await
        .unwrap()
        .try_get::<i64, _>("w")
        .map(|w| w.to_string())
        .unwrap();
    assert_eq!(on, "1", "node 1 is not a Galera node");
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut c)
        .await
        .unwrap();
    let mut stores = Vec::new();
    for n in nodes {
        // Galera applies the CREATE DATABASE on the other nodes a moment later.
        let started = Instant::now();
        let store = loop {
            match Store::connect(&DatabaseUrl(format!("{n}/{name}")), 4).await {
                Ok(s) => break s,
                Err(_) if started.elapsed() < Duration::from_secs(10) => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => panic!("database {name} never reached {n}: {e}"),
            }
        };
        stores.push(store);
    }
    // Through sqlx's own migrator this would fail on GET_LOCK or race; steward's runs unlocked.
    stores[0].upgrade().await.unwrap();
    for (n, s) in stores.iter().enumerate() {
        // The newest migration's column, once applied on every node.
        let started = Instant::now();
        while s.events("none").await.is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "the schema never reached node {}",
                n + 1
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    (name, stores)
}

fn fence(holder: &str, epoch: i64) -> Fence {
    Fence {
        name: steward::rebalance::leader::NAME.into(),
        holder: holder.into(),
        epoch,
        valid_until: Instant::now() + Duration::from_secs(60),
    }
}

async fn one_leader_per_round_and_the_deposed_fenced(nodes: &[String]) {
    let (_db, stores) = stores(nodes).await;
    let name = steward::rebalance::leader::NAME;
    assert!(stores[1].wsrep_on().await.unwrap());
    let said = steward::rebalance::leader::describe(&stores[1], 3.0)
        .await
        .unwrap();
    assert!(
        said.contains("Galera") && said.contains("lease row"),
        "{said}"
    );

    // Rounds: the lease has run out; three replicas, one per node, ask at the same moment.
    let rounds = 40;
    let mut two_leaders = 0;
    let mut no_leader = 0;
    let mut last_epoch = 0;
    for round in 0..rounds {
        let now = 1_000.0 + round as f64 * 100.0;
        let asks = stores.iter().enumerate().map(|(i, s)| {
            let s = s.clone();
            async move { s.take_lease(name, &format!("replica-{i}"), now, 10.0).await }
        });
        let got: Vec<Option<i64>> = futures_util::future::join_all(asks)
            .await
            .into_iter()
            .map(|r| r.unwrap())
            .collect();
        let winners: Vec<i64> = got.iter().flatten().copied().collect();
        match winners.len() {
            1 => {
                assert!(
                    winners[0] > last_epoch,
                    "the epoch rises: {winners:?} after {last_epoch}"
                );
                last_epoch = winners[0];
            }
            0 => no_leader += 1,
            _ => two_leaders += 1,
        }
    }
    eprintln!("galera lease rounds: {rounds}, two leaders: {two_leaders}, no leader: {no_leader}");
    assert_eq!(
        two_leaders, 0,
        "two replicas took the lease in the same round"
    );
    assert!(
        no_leader < rounds / 2,
        "{no_leader} of {rounds} rounds elected nobody"
    );

    // A leader through node 1 journals; it stops; a replica on node 2 takes over; the old one's
    // late write through node 1 is refused by the epoch, and nothing of it is written anywhere.
    let now = 100_000.0;
    let plan = NewPlan {
        id: uuid::Uuid::new_v4().to_string(),
        created_at: now,
        mode: "auto".into(),
        summary: "{}".into(),
        actions: vec![NewAction {
            vm: "8d2f6c1e-3b7a-4c55-9f0e-2a1b3c4d5e6f".into(),
            vm_name: "web-1".into(),
            source: "cmp-1".into(),
            target: "cmp-2".into(),
            az: "az1".into(),
            ram_mb: 1024,
            disk_gb: 10,
            block_migration: false,
            reason: "test".into(),
        }],
    };
    let p = stores[0]
        .insert_plan(&plan, Some("auto"), None)
        .await
        .unwrap();
    let id = p.actions[0].id.clone();
    let old = stores[0]
        .take_lease(name, "old", now, 3.0)
        .await
        .unwrap()
        .unwrap();
    let old = fence("old", old);
    stores[0]
        .transition_fenced(
            &id,
            ActionState::Approved,
            ActionState::Draining,
            &Patch::default(),
            "draining",
            now + 1.0,
            Some(&old),
        )
        .await
        .unwrap();
    // Node 2 may not have applied node 1's last write yet: its first take then loses the
    // certification (nothing taken) and the next one, as a replica's next cycle would, wins.
    let mut new = None;
    for _ in 0..20 {
        new = stores[1]
            .take_lease(name, "new", now + 4.0, 3.0)
            .await
            .unwrap();
        if new.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let new = fence(
        "new",
        new.expect("node 2 sees the run-out lease and takes it"),
    );
    assert_eq!(new.epoch, old.epoch + 1);
    match stores[0]
        .transition_fenced(
            &id,
            ActionState::Draining,
            ActionState::Migrating,
            &Patch::default(),
            "late",
            now + 4.5,
            Some(&old),
        )
        .await
    {
        Err(JournalError::Fenced(m)) => assert!(m.contains("epoch"), "{m}"),
        other => panic!("the deposed leader's write went through on Galera: {other:?}"),
    }
    stores[1]
        .transition_fenced(
            &id,
            ActionState::Draining,
            ActionState::Migrating,
            &Patch::default(),
            "migrating",
            now + 5.0,
            Some(&new),
        )
        .await
        .unwrap();
    // Node 3 shows the current leader's write (once Galera applied it) and none of the late one.
    let started = Instant::now();
    while stores[2].action(&id).await.unwrap().unwrap().state != ActionState::Migrating {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "node 3 never saw the move"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let events = stores[2].events(&id).await.unwrap();
    assert!(events.iter().all(|e| e.detail != "late"), "{events:?}");
}

/// The control: the old election. GET_LOCK on node 1 and on node 2 for the same name either
/// both succeed (the lock is local to one node: two leaders) or are refused (error 1235 under
/// wsrep since MDEV-30473: no leader). Either way it cannot elect on Galera.
async fn get_lock_cannot_elect_on_galera(nodes: &[String]) {
    let lock = format!("steward-rebalance:{}", uuid::Uuid::new_v4().simple());
    let mut answers = Vec::new();
    let mut conns = Vec::new();
    for n in &nodes[..2] {
        let mut c = sqlx::MySqlConnection::connect(&format!("{n}/mysql"))
            .await
            .unwrap();
        let r = sqlx::query("SELECT CAST(COALESCE(GET_LOCK(?, 0), 0) AS SIGNED) AS got")
            .bind(&lock)
            .fetch_one(&mut c)
            .await;
        answers.push(match r {
            Ok(row) => Ok(row.try_get::<i64, _>("got").unwrap()),
            Err(sqlx::Error::Database(d)) => {
                Err(d.code().map(|c| c.to_string()).unwrap_or_default() + " " + d.message())
            }
            Err(e) => panic!("{e}"),
        });
        conns.push(c);
    }
    eprintln!("GET_LOCK on two Galera nodes: {answers:?}");
    let two_leaders = answers.iter().all(|a| a == &Ok(1));
    let refused = answers.iter().all(|a| {
        a.as_ref().is_err_and(|m| {
            m.contains("1235") || m.contains("GET_LOCK in cluster") || m.contains("42000")
        })
    });
    assert!(
        two_leaders || refused,
        "GET_LOCK elected on Galera: {answers:?}"
    );
    // On one node the lock does exclude (so the single-server tests could never see this).
    let mut again = sqlx::MySqlConnection::connect(&format!("{}/mysql", nodes[0]))
        .await
        .unwrap();
    if two_leaders {
        let got: i64 = sqlx::query("SELECT CAST(COALESCE(GET_LOCK(?, 0), 0) AS SIGNED) AS got")
            .bind(&lock)
            .fetch_one(&mut again)
            .await
            .unwrap()
            .try_get("got")
            .unwrap();
        assert_eq!(got, 0, "a second connection on the same node must wait");
    }
}

const LEASE: f64 = 2.0;
const CYCLE: f64 = 0.2;

/// One `steward serve` replica on Galera node `node`, its log in `log`.
struct Replica {
    child: Child,
    node: usize,
    log: PathBuf,
}

impl Drop for Replica {
    fn drop(&mut self) {
        // A stopped replica would not die of SIGKILL's delivery until continued.
        signal(self.child.id() as i32, "CONT");
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

use rebalance_support::steward_command as steward;

/// Write replica `i`'s settings: its own listener, Galera node `node`, auto mode.
fn write_config(dir: &Path, i: usize, db_url: &str) -> String {
    let name = format!("steward-{i}.toml");
    std::fs::write(
        dir.join(&name),
        format!(
            "[server]\nlisten = \"127.0.0.1:{}\"\n\
             [auth]\nstrategy = \"static\"\ntoken_file = \"tokens\"\n\
             [database]\nurl = \"{db_url}\"\nauto_upgrade = false\n\
             [openstack]\ncloud = \"steward\"\n\
             [rebalance]\nmode = \"auto\"\ninterval_seconds = 60\n\
             [rebalance.execution]\npoll_seconds = 0.1\ncycle_seconds = {CYCLE}\n\
             lease_seconds = {LEASE}\nrejoin_retry_seconds = 0.1\n",
            free_port()
        ),
    )
    .unwrap();
    name
}

fn start_replica(dir: &Path, i: usize, node: usize) -> Replica {
    let log = dir.join(format!("replica-{i}-{}.log", uuid::Uuid::new_v4().simple()));
    let child = steward(dir, &format!("steward-{node}.toml"), &["serve"])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    Replica { child, node, log }
}

/// One look at the lease row: when, who (the replica's pid), at which epoch, valid or not.
#[derive(Debug, Clone)]
struct Sample {
    at: Instant,
    pid: Option<u32>,
    epoch: i64,
    valid: bool,
}

/// Read the lease row every 50 ms from the first node that answers.
fn observe(
    stores: Vec<Store>,
) -> (
    std::sync::Arc<std::sync::Mutex<Vec<Sample>>>,
    tokio::task::JoinHandle<()>,
) {
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let out = seen.clone();
    let task = tokio::spawn(async move {
        loop {
            for s in &stores {
                let read = tokio::time::timeout(
                    Duration::from_millis(300),
                    s.lease(steward::rebalance::leader::NAME),
                )
                .await;
                if let Ok(Ok(row)) = read {
                    let (holder, epoch, until) = row.unwrap_or_default();
                    out.lock().unwrap().push(Sample {
                        at: Instant::now(),
                        pid: holder.split(':').nth(1).and_then(|p| p.parse().ok()),
                        epoch,
                        valid: !holder.is_empty() && until >= steward::unix_now(),
                    });
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    (seen, task)
}

/// The newest sample.
fn latest(seen: &std::sync::Mutex<Vec<Sample>>) -> Option<Sample> {
    seen.lock().unwrap().last().cloned()
}

/// Wait until a replica other than `old` holds the lease at an epoch above `epoch`; the
/// seconds it took from `since`.
async fn takeover(
    seen: &std::sync::Mutex<Vec<Sample>>,
    old: u32,
    epoch: i64,
    since: Instant,
) -> (Sample, f64) {
    loop {
        if let Some(s) = latest(seen) {
            if s.valid && s.epoch > epoch && s.pid != Some(old) {
                return (s.clone(), s.at.duration_since(since).as_secs_f64());
            }
        }
        assert!(
            since.elapsed() < Duration::from_secs(60),
            "no new leader 60 s after the fault"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn three_replicas_fail_over(cluster: &Cluster) {
    use rebalance_support::*;
    let nova = wiremock::MockServer::start().await;
    openstack_support::mount_keystone(&nova, &[openstack_support::TOKEN_1]).await;
    // The migration runs until the test lets it complete.
    let fake = FakeCompute::new(Script {
        completes_after: None,
        bytes_per_poll: 1 << 20,
        ..Default::default()
    });
    mount_compute(&nova, &fake).await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("clouds.yaml"),
        openstack_support::clouds_yaml(&nova.uri()),
    )
    .unwrap();
    std::fs::write(d.join("secure.yaml"), openstack_support::secure_yaml()).unwrap();
    std::fs::write(d.join("tokens"), "admin-token-0123456789abcdef admin\n").unwrap();
    std::fs::write(
        d.join("plan.json"),
        serde_json::to_string(&plan_json()).unwrap(),
    )
    .unwrap();
    let (_db, stores) = stores(&cluster.urls).await;
    let db = _db.clone();
    for (n, url) in cluster.urls.iter().enumerate() {
        write_config(d, n, &format!("{url}/{db}"));
    }
    let out = steward(
        d,
        "steward-0.toml",
        &["rebalance", "import-plan", "plan.json", "--approve"],
    )
    .output()
    .unwrap();
    assert!(
        out.status.success(),
        "import-plan: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let id = stores[0].actions(&[], 10).await.unwrap()[0].id.clone();

    let mut replicas: Vec<Replica> = (0..3).map(|n| start_replica(d, n, n)).collect();
    let (seen, watcher) = observe(stores.clone());
    let by_pid = |replicas: &[Replica], pid: Option<u32>| {
        replicas
            .iter()
            .position(|r| Some(r.child.id()) == pid)
            .expect("the holder is a replica")
    };
    // Wait until the leader is migrating and polling Nova.
    let started = Instant::now();
    loop {
        let a = stores[2].action(&id).await.unwrap().unwrap();
        if a.state == ActionState::Migrating && fake.state.lock().unwrap().polls >= 2 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "never migrating: {a:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut takeovers = Vec::new();

    // 1. kill -9 the leader; start a replica in its place.
    let first = latest(&seen).unwrap();
    let l1 = by_pid(&replicas, first.pid);
    let node = replicas[l1].node;
    let _ = replicas[l1].child.kill();
    let fault = Instant::now();
    let (s, took) = takeover(&seen, first.pid.unwrap(), first.epoch, fault).await;
    takeovers.push(("kill -9 the leader", took));
    replicas[l1] = start_replica(d, l1, node);

    // 2. SIGSTOP the new leader past its lease, then let it go on.
    let l2 = by_pid(&replicas, s.pid);
    let stopped_pid = s.pid.unwrap();
    signal(stopped_pid as i32, "STOP");
    let fault = Instant::now();
    let (s, took) = takeover(&seen, stopped_pid, s.epoch, fault).await;
    takeovers.push(("SIGSTOP the leader past its lease", took));
    tokio::time::sleep(Duration::from_secs_f64(2.0 * LEASE).saturating_sub(fault.elapsed())).await;
    signal(stopped_pid as i32, "CONT");
    tokio::time::sleep(Duration::from_secs_f64(LEASE)).await;

    // 3. Kill the current leader's Galera node.
    let l3 = by_pid(&replicas, s.pid);
    cluster.kill_node(replicas[l3].node);
    let fault = Instant::now();
    let (_, took) = takeover(&seen, s.pid.unwrap(), s.epoch, fault).await;
    takeovers.push(("kill the leader's Galera node", took));
    let live = (0..3).find(|n| *n != replicas[l3].node).unwrap();

    // 4. Nova completes the migration; the leader closes the action.
    fake.set_script(Script {
        completes_after: Some(0),
        ..Default::default()
    });
    let started = Instant::now();
    let a = loop {
        let a = stores[live].action(&id).await.unwrap().unwrap();
        if a.state.is_final() {
            break a;
        }
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "never closed: {a:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    watcher.abort();
    let samples = seen.lock().unwrap().clone();

    // The figures.
    let epochs: Vec<i64> = samples.iter().map(|s| s.epoch).collect();
    let changes = epochs.last().unwrap() - epochs.first().unwrap();
    let mut longest = 0.0f64;
    let mut gap_from: Option<Instant> = None;
    for s in &samples {
        match (s.valid, gap_from) {
            (false, None) => gap_from = Some(s.at),
            (true, Some(f)) => {
                longest = longest.max(s.at.duration_since(f).as_secs_f64());
                gap_from = None;
            }
            _ => {}
        }
    }
    let twice = fake.migrate_requests().saturating_sub(1);
    eprintln!(
        "galera failover: leader changes {changes}, longest time without a valid lease {longest:.2} s, \
         takeovers {takeovers:?}, actions executed twice {twice}"
    );

    // One holder per epoch, epochs never going down.
    assert!(epochs.windows(2).all(|w| w[0] <= w[1]), "{epochs:?}");
    let mut holders = std::collections::BTreeMap::new();
    for s in samples.iter().filter(|s| s.valid) {
        let h = holders.entry(s.epoch).or_insert(s.pid);
        assert_eq!(*h, s.pid, "two holders at epoch {}", s.epoch);
    }
    assert!(changes >= 3, "three faults, {changes} leader changes");
    // Each takeover within the lease plus one cycle (and 0.5 s for the 50 ms sampling and the
    // database round trips on a busy machine); a killed Galera node also costs the cluster's
    // own eviction of it (evs.inactive_timeout, 4 s).
    for (fault, took) in &takeovers[..2] {
        assert!(
            *took <= LEASE + CYCLE + 0.5,
            "{fault}: a new leader after {took:.2} s"
        );
    }
    assert!(takeovers[2].1 <= LEASE + CYCLE + 4.0 + 0.5, "{takeovers:?}");
    // Nova was asked to migrate once; the action went its one path, closed and rejoined.
    assert_eq!(
        twice,
        0,
        "os-migrateLive sent {} times",
        fake.migrate_requests()
    );
    assert_eq!(a.state, ActionState::Done, "{a:?}");
    assert_eq!(transitions(&stores[live], &id).await, DONE_PATH);
    // No leader wrote after its successor: the journal's epochs never go down.
    let written: Vec<i64> = stores[live]
        .events(&id)
        .await
        .unwrap()
        .iter()
        .filter_map(|e| e.epoch)
        .collect();
    assert!(
        written.windows(2).all(|w| w[0] <= w[1]),
        "epochs in the journal: {written:?}"
    );
    // The replica that was stopped saw, once let go on, that it no longer led.
    let log = std::fs::read_to_string(&replicas[l2].log).unwrap_or_default();
    assert!(
        log.contains("lost the rebalance leadership") || log.contains("stops here"),
        "the stopped replica's log: {log}"
    );
}
