//! The invariants of ARCHITECTURE.md that a reading of the source can check.

use std::path::{Path, PathBuf};

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let p = entry.unwrap().path();
        if p.is_dir() {
            out.extend(rust_files(&p));
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
    out
}

fn src(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src").join(rel)
}

/// (file, line) of every line that contains one of `needles`.
fn offenders(files: &[PathBuf], needles: &[&str]) -> Vec<String> {
    let mut found = Vec::new();
    for f in files {
        for (n, line) in std::fs::read_to_string(f).unwrap().lines().enumerate() {
            if line.trim_start().starts_with("//") {
                continue;
            }
            for needle in needles {
                if line.contains(needle) {
                    found.push(format!("{}:{}: {}", f.display(), n + 1, line.trim()));
                }
            }
        }
    }
    found
}

/// What a pure core must not touch: adapters, I/O, the clock, locks.
const IMPURE: [&str; 15] = [
    "crate::api",
    "crate::store",
    "crate::cluster",
    "crate::telemetry",
    "crate::config",
    "std::fs",
    "std::net",
    "std::io",
    "tokio",
    "reqwest",
    "sqlx",
    "SystemTime",
    "Instant::now",
    "Mutex",
    "RwLock",
];

#[test]
fn scoring_imports_no_adapter_and_does_no_io() {
    let files = rust_files(&src("scoring"));
    assert!(files.len() >= 9, "the scoring sources were found");
    let bad = offenders(&files, &IMPURE);
    assert!(
        bad.is_empty(),
        "the scoring core must stay pure:\n{}",
        bad.join("\n")
    );
}

#[test]
fn rebalance_detect_and_plan_are_pure() {
    let files = vec![src("rebalance/detect.rs"), src("rebalance/plan.rs")];
    let mut needles = IMPURE.to_vec();
    // The executor and its hooks sit beside them and do I/O: the planner never calls them.
    needles.extend([
        "execute::",
        "hooks::",
        "cycle::",
        "crate::openstack",
        "unix_now",
    ]);
    let bad = offenders(&files, &needles);
    assert!(
        bad.is_empty(),
        "rebalance::{{detect,plan}} must stay pure:\n{}",
        bad.join("\n")
    );
}

#[test]
fn the_simulator_is_pure_and_uses_the_service_code() {
    let files = rust_files(&src("simulate"));
    assert!(files.len() >= 3, "the simulate sources were found");
    let mut needles = IMPURE.to_vec();
    needles.extend(["crate::openstack", "unix_now"]);
    let bad = offenders(&files, &needles);
    assert!(
        bad.is_empty(),
        "the simulator must stay pure (main.rs reads the scenario file):\n{}",
        bad.join("\n")
    );
    // The twin decides with the service's own code, not a copy of it.
    let text: String = files
        .iter()
        .map(|f| std::fs::read_to_string(f).unwrap())
        .collect();
    for used in [
        "scoring::filter_and_weigh",
        "rebalance::detect::",
        "rebalance::plan::",
    ] {
        assert!(text.contains(used), "the simulator uses {used}");
    }
}

#[test]
fn only_api_knows_the_wire_format() {
    let files = vec![src("model.rs")]
        .into_iter()
        .chain(rust_files(&src("scoring")))
        .chain(rust_files(&src("cluster")))
        .collect::<Vec<_>>();
    let bad = offenders(
        &files,
        &[
            "serde::Serialize",
            "derive(Serialize",
            "serde_json::to_",
            "utoipa",
        ],
    );
    assert!(
        bad.is_empty(),
        "wire format outside api:\n{}",
        bad.join("\n")
    );
}

#[test]
fn adapters_import_no_orchestrator() {
    let files: Vec<PathBuf> = ["store", "telemetry", "cluster"]
        .iter()
        .flat_map(|d| rust_files(&src(d)))
        .collect();
    let bad = offenders(&files, &["crate::api"]);
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

#[test]
fn only_openstack_speaks_http_to_openstack_services() {
    let openstack = src("openstack");
    let files: Vec<PathBuf> = rust_files(&src(""))
        .into_iter()
        .filter(|f| !f.starts_with(&openstack))
        .collect();
    let bad = offenders(&files, &["X-Subject-Token", "OpenStack-API-Version"]);
    assert!(
        bad.is_empty(),
        "HTTP to OpenStack outside src/openstack:\n{}",
        bad.join("\n")
    );
    // The other HTTP clients are the Prometheus source, the rebalance hooks (Kubernetes,
    // Consul, generic HTTP) and recovery's witnesses (Consul, a BMC, Kubernetes), none of which
    // is an OpenStack service.
    let prometheus = src("telemetry/prometheus.rs");
    let hooks = src("rebalance/hooks");
    let witnesses = src("recover/witness.rs");
    let clients: Vec<PathBuf> = files
        .into_iter()
        .filter(|f| *f != prometheus && *f != witnesses && !f.starts_with(&hooks))
        .collect();
    let bad = offenders(&clients, &["reqwest"]);
    assert!(
        bad.is_empty(),
        "an HTTP client outside src/openstack and the Prometheus source:\n{}",
        bad.join("\n")
    );
}

#[test]
fn openstack_is_an_adapter_with_its_own_wire_types() {
    let files = rust_files(&src("openstack"));
    assert!(files.len() >= 5, "the openstack sources were found");
    // It maps no model type and knows no orchestrator: `cluster` maps its types onto the model.
    let bad = offenders(
        &files,
        &[
            "crate::model",
            "crate::scoring",
            "crate::cluster",
            "crate::api",
            "crate::store",
            "crate::telemetry",
        ],
    );
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

#[test]
fn the_planning_cycle_orchestrates_and_reads_no_clock() {
    // rebalance::cycle gathers (store; Nova and Placement through `openstack`) and calls the pure
    // detect and plan: no HTTP or SQL of its own, and `now` is its caller's.
    let files = vec![src("rebalance/cycle.rs")];
    let bad = offenders(
        &files,
        &[
            "reqwest",
            "crate::api",
            "sqlx",
            "UPDATE ",
            "INSERT ",
            "SystemTime",
            "Instant::now",
            "unix_now",
        ],
    );
    assert!(bad.is_empty(), "{}", bad.join("\n"));
    let text = std::fs::read_to_string(src("rebalance/cycle.rs")).unwrap();
    for used in ["detect(", "plan(", "journal_plan(", "insert_plan("] {
        assert!(text.contains(used), "the cycle uses {used}");
    }
}

#[test]
fn the_rebalance_executor_reaches_nova_only_through_openstack() {
    // The executor orchestrates: Nova through `openstack::nova`, orchestrators through hooks,
    // the journal through `store`. It speaks no HTTP itself and writes no SQL.
    let files = vec![src("rebalance/execute.rs"), src("rebalance/leader.rs")];
    let bad = offenders(&files, &["reqwest", "crate::api", "UPDATE ", "INSERT "]);
    assert!(bad.is_empty(), "{}", bad.join("\n"));
    let hooks = rust_files(&src("rebalance/hooks"));
    assert!(hooks.len() >= 5, "one file per hook");
    let bad = offenders(&hooks, &["crate::store", "crate::api", "crate::openstack"]);
    assert!(
        bad.is_empty(),
        "hooks hold no state and know no OpenStack:\n{}",
        bad.join("\n")
    );
}

#[test]
fn repair_plan_is_pure() {
    let files = vec![src("repair/plan.rs")];
    let mut needles = IMPURE.to_vec();
    needles.extend(["crate::novadb", "crate::openstack", "unix_now"]);
    let bad = offenders(&files, &needles);
    assert!(
        bad.is_empty(),
        "repair::plan must stay pure (facts in, steps out):\n{}",
        bad.join("\n")
    );
}

#[test]
fn novadb_is_an_adapter() {
    let files = rust_files(&src("novadb"));
    assert!(files.len() >= 2, "the novadb sources were found");
    let bad = offenders(
        &files,
        &[
            "crate::repair",
            "crate::api",
            "crate::scoring",
            "crate::cluster",
            "crate::store",
        ],
    );
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}
