//! `steward simulate` on the SHIPPED scenario: steward as deployed plus the rebalancer never
//! crosses an AZ, stays inside the byte budget, never moves a VM twice within its cooldown nor
//! in a forbidden window. Budget and cooldown are checked from the list of moves in the
//! output, not from the twin's own verdicts. How the steal figures compare with Nova's is
//! measured (README), not promised here.

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_steward");

fn scenario_path() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("etc/scenarios/diurnal.toml")
}

fn simulate(args: &[&str]) -> std::process::Output {
    Command::new(BIN)
        .env_remove("STEWARD_CONFIG")
        .arg("simulate")
        .args(args)
        .output()
        .expect("steward runs")
}

/// `steward simulate ARGS -f json`, which must succeed, as JSON.
fn simulate_json(args: &[&str]) -> Value {
    let out = simulate(&[args, &["-f", "json"]].concat());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn strategy<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["strategies"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["strategy"] == name)
        .unwrap_or_else(|| panic!("strategy {name} in the report"))
}

/// The rebalance settings of the shipped scenario, read from the file itself.
fn shipped_rebalance() -> toml::Value {
    let text = std::fs::read_to_string(scenario_path()).unwrap();
    let doc: toml::Value = toml::from_str(&text).unwrap();
    doc["rebalance"].clone()
}

fn number(v: &toml::Value) -> f64 {
    v.as_float()
        .or_else(|| v.as_integer().map(|i| i as f64))
        .unwrap()
}

#[test]
fn the_shipped_scenario_keeps_az_budget_cooldown_and_windows() {
    let path = scenario_path();
    let report = simulate_json(&["--scenario", path.to_str().unwrap()]);
    let nova = strategy(&report, "nova-default");
    let groups = strategy(&report, "nova-groups");
    let deployed = strategy(&report, "steward-deployed");
    let rebalance = strategy(&report, "steward-deployed-rebalance");

    // 1. Nova's default suffers steal on this workload (or the comparison says nothing), and
    //    the rebalancer does work.
    let nova_p95 = nova["steal_p95"].as_f64().unwrap();
    assert!(nova_p95 > 0.05, "Nova's default suffers steal: {nova_p95}");
    let moves = rebalance["moves"].as_array().unwrap();
    assert!(!moves.is_empty(), "the rebalancer moved VMs");
    assert_eq!(
        rebalance["migrations"].as_u64().unwrap(),
        moves.len() as u64
    );

    // 2. Zero AZ violations, and every move inside its AZ.
    for s in [nova, groups, deployed, rebalance] {
        assert_eq!(s["az_violations"], 0, "{}", s["strategy"]);
        assert_eq!(s["unplaced"], 0, "{}", s["strategy"]);
    }
    for m in moves {
        let az = m["az"].as_str().unwrap();
        for host in [&m["from_host"], &m["to_host"]] {
            assert!(
                host.as_str().unwrap().starts_with(&format!("{az}-")),
                "move {m} stays in {az}"
            );
        }
    }

    // 3. Bytes moved within the budget: per AZ, over every interval between two starts, at
    //    most the bucket's size plus the hourly rate times the interval.
    let cfg = shipped_rebalance();
    let rate = number(&cfg["budget_gib_per_az_per_hour"]);
    let burst = cfg.get("budget_burst_gib").map(number).unwrap_or(rate);
    let mut per_az: HashMap<&str, Vec<(f64, f64)>> = HashMap::new();
    for m in moves {
        per_az
            .entry(m["az"].as_str().unwrap())
            .or_default()
            .push((m["at_hours"].as_f64().unwrap(), m["gib"].as_f64().unwrap()));
    }
    for (az, starts) in &per_az {
        for i in 0..starts.len() {
            let mut sum = 0.0;
            for s in &starts[i..] {
                sum += s.1;
                let allowed = burst + rate * (s.0 - starts[i].0);
                assert!(
                    sum <= allowed + 1e-6,
                    "{az}: {sum} GiB from hour {} to {}, budget allows {allowed}",
                    starts[i].0,
                    s.0
                );
            }
        }
    }
    assert_eq!(rebalance["budget_respected"], true);

    // 4. No VM moved twice within its cooldown.
    let cooldown = number(&cfg["cooldown_hours"]);
    let mut last: HashMap<&str, f64> = HashMap::new();
    for m in moves {
        let vm = m["vm"].as_str().unwrap();
        let at = m["at_hours"].as_f64().unwrap();
        if let Some(prev) = last.insert(vm, at) {
            assert!(
                at - prev >= cooldown,
                "{vm} moved at {prev} h and again at {at} h"
            );
        }
    }
    assert_eq!(rebalance["cooldown_respected"], true);

    // And no move started in a forbidden window (11:00-14:00 UTC in the shipped scenario).
    for m in moves {
        let hour = m["at_hours"].as_f64().unwrap() % 24.0;
        assert!(!(11.0..14.0).contains(&hour), "move at {hour} h: {m}");
    }
}

/// `steward-deployed` weighs steward as the shipped nova.conf snippet does.
#[test]
fn steward_deployed_uses_the_shipped_snippets_multiplier() {
    let snippet = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("etc/nova.conf.steward-snippet"),
    )
    .unwrap();
    let section = &snippet[snippet.find("[steward]").expect("a [steward] section")..];
    let shipped: f64 = section
        .lines()
        .find_map(|l| l.trim().strip_prefix("weight_multiplier = "))
        .expect("[steward] weight_multiplier")
        .trim()
        .parse()
        .unwrap();
    let path = scenario_path();
    let out = simulate(&[
        "--scenario",
        path.to_str().unwrap(),
        "--hours",
        "1",
        "-f",
        "json",
    ]);
    assert!(out.status.success());
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        report["scenario_as_run"]["steward_weight_multiplier"].as_f64(),
        Some(shipped)
    );
}

#[test]
fn runs_are_reproducible_and_the_seed_changes_the_workload() {
    let path = scenario_path();
    let p = path.to_str().unwrap();
    let run = |seed: &str| {
        let out = simulate(&[
            "--scenario",
            p,
            "--hours",
            "12",
            "--seed",
            seed,
            "-f",
            "json",
        ]);
        assert!(out.status.success());
        out.stdout
    };
    let a = run("7");
    assert_eq!(a, run("7"));
    assert_ne!(a, run("8"));
    let report: Value = serde_json::from_slice(&a).unwrap();
    assert_eq!(report["hours"], 12.0);
    assert_eq!(report["seed"], 7);
}

#[test]
fn the_table_is_the_default_output() {
    let path = scenario_path();
    let out = simulate(&["--scenario", path.to_str().unwrap(), "--hours", "2"]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("| Strategy "), "{text}");
    for s in [
        "nova-default",
        "nova-groups",
        "steward-deployed",
        "steward-deployed-rebalance",
        "steward-placement",
    ] {
        assert!(text.contains(&format!("| {s} ")), "{text}");
    }
}

#[test]
fn a_bad_scenario_names_the_key_and_a_missing_one_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    let text = std::fs::read_to_string(scenario_path())
        .unwrap()
        .replace("hosts_per_az = 8", "hosts_per_az = 0")
        .replace("max_concurrent_per_az = 2", "max_concurrent_per_az = 0");
    std::fs::write(&bad, text).unwrap();
    let out = simulate(&["--scenario", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("hosts_per_az"), "{err}");
    assert!(err.contains("rebalance.max_concurrent_per_az"), "{err}");

    let out = simulate(&["--scenario", "/nonexistent/scenario.toml"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("/nonexistent/scenario.toml"), "{err}");

    let out = simulate(&[
        "--scenario",
        scenario_path().to_str().unwrap(),
        "--hours=-3",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("hours"));
}

/// `--from-prometheus` reads the configuration's Prometheus and cloud: without them it says
/// which key to set, and it refuses scenario options it would not use.
#[test]
fn from_prometheus_names_what_is_missing_and_refuses_scenario_options() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        Command::new(BIN)
            .arg("simulate")
            .args(args)
            .current_dir(dir.path())
            .env_remove("STEWARD__PROMETHEUS__URL")
            .env_remove("STEWARD_CONFIG")
            .output()
            .unwrap()
    };
    let out = run(&["--from-prometheus", "--since", "1d"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("[prometheus] url"), "{err}");
    let out = run(&["--from-prometheus", "--since", "40d"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("at most 28"), "{err}");
    for args in [
        &["--from-prometheus", "--seeds", "1..3"][..],
        &["--from-prometheus", "--scenario", "x.toml"][..],
        &["--since", "1d", "--scenario", "x.toml"][..],
        &[][..],
    ] {
        let out = run(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
    }
}

/// `--seeds A..B`: every seed's figure is the one a single run of that seed gives, and the
/// spread is its min, median and max.
#[test]
fn seeds_give_each_figures_spread_over_single_runs() {
    let path = scenario_path();
    let p = path.to_str().unwrap();
    let summary = simulate_json(&["--scenario", p, "--hours", "6", "--seeds", "3..5"]);
    assert_eq!(summary["seeds"], serde_json::json!([3, 4, 5]));
    let mut singles = Vec::new();
    for seed in ["3", "4", "5"] {
        let out = simulate(&[
            "--scenario",
            p,
            "--hours",
            "6",
            "--seed",
            seed,
            "-f",
            "json",
        ]);
        assert!(out.status.success());
        singles.push(serde_json::from_slice::<Value>(&out.stdout).unwrap());
    }
    for s in summary["strategies"].as_array().unwrap() {
        let name = s["strategy"].as_str().unwrap();
        for key in ["steal_p95", "fair_steal_p95", "unserved", "unserved_limit"] {
            let f = &s["figures"][key];
            let per: Vec<f64> = f["per_seed"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap())
                .collect();
            let single: Vec<f64> = singles
                .iter()
                .map(|r| strategy(r, name)[key].as_f64().unwrap())
                .collect();
            assert_eq!(per, single, "{name} {key}");
            let mut sorted = single.clone();
            sorted.sort_by(f64::total_cmp);
            assert_eq!(f["min"].as_f64(), Some(sorted[0]), "{name} {key}");
            assert_eq!(f["median"].as_f64(), Some(sorted[1]), "{name} {key}");
            assert_eq!(f["max"].as_f64(), Some(sorted[2]), "{name} {key}");
        }
    }
    let table = simulate(&["--scenario", p, "--hours", "2", "--seeds", "1..2"]);
    let text = String::from_utf8(table.stdout).unwrap();
    assert!(text.contains("min / median / max"), "{text}");
    let bad = simulate(&["--scenario", p, "--seeds", "5..1"]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--seeds"));
}

/// The rebalancer settles: over two weeks of a workload that repeats, after the first day no
/// VM moves twice within a week nor back to a host it left within a week; and every move
/// stays in its AZ, outside the forbidden window, inside the byte budget. Over several seeds,
/// from the JSON's moves.
#[test]
fn over_two_weeks_the_rebalancer_settles_on_every_seed() {
    let dir = tempfile::tempdir().unwrap();
    let small = dir.path().join("small.toml");
    let mut text = std::fs::read_to_string(scenario_path()).unwrap();
    for (a, b) in [
        ("hosts_per_az = 8", "hosts_per_az = 4"),
        ("count = 150", "count = 75"),
        ("count = 45", "count = 22"),
        ("count = 30", "count = 15"),
        ("count = 24", "count = 12"),
    ] {
        assert!(text.contains(a), "{a}");
        text = text.replace(a, b);
    }
    std::fs::write(&small, text).unwrap();
    let cfg = shipped_rebalance();
    let week = 168.0;
    assert!(number(&cfg["cooldown_hours"]) >= week && number(&cfg["no_return_hours"]) >= week);
    let rate = number(&cfg["budget_gib_per_az_per_hour"]);
    let burst = cfg.get("budget_burst_gib").map(number).unwrap_or(rate);
    let setting = |key: &str, default: f64| cfg.get(key).map(number).unwrap_or(default);
    let (gib_per_second, cores) = (
        setting("copy_gib_per_second", 1.0),
        setting("copy_cpu_cores", 1.0),
    );
    let mut moved = 0;
    for seed in ["1", "2"] {
        let report = simulate_json(&[
            "--scenario",
            small.to_str().unwrap(),
            "--hours",
            "336",
            "--seed",
            seed,
        ]);
        let s = strategy(&report, "steward-deployed-rebalance");
        let moves = s["moves"].as_array().unwrap();
        moved += moves.len();
        // (vm) -> [(at, from, to)]
        let mut per_vm: HashMap<&str, Vec<(f64, &str, &str)>> = HashMap::new();
        let mut per_az: HashMap<&str, Vec<(f64, f64)>> = HashMap::new();
        for m in moves {
            let at = m["at_hours"].as_f64().unwrap();
            let (from, to) = (
                m["from_host"].as_str().unwrap(),
                m["to_host"].as_str().unwrap(),
            );
            let az = m["az"].as_str().unwrap();
            assert!(from.starts_with(&format!("{az}-")) && to.starts_with(&format!("{az}-")));
            assert!(!(11.0..14.0).contains(&(at % 24.0)), "move at {at} h");
            // Every move was predicted to give back more CPU than its copy takes.
            let gain = m["predicted_gain_core_seconds"].as_f64().unwrap();
            let cost = m["copy_cost_core_seconds"].as_f64().unwrap();
            let gib = m["gib"].as_f64().unwrap();
            assert!(
                (cost - gib / gib_per_second * 2.0 * cores).abs() < 1e-6,
                "{m}"
            );
            assert!(gain > cost && cost > 0.0, "seed {seed}: {m}");
            per_vm
                .entry(m["vm"].as_str().unwrap())
                .or_default()
                .push((at, from, to));
            per_az
                .entry(az)
                .or_default()
                .push((at, m["gib"].as_f64().unwrap()));
        }
        for (vm, ms) in &per_vm {
            for (i, later) in ms.iter().enumerate() {
                for earlier in &ms[..i] {
                    if earlier.0 < 24.0 {
                        continue;
                    }
                    assert!(
                        later.0 - earlier.0 >= week,
                        "seed {seed}: {vm} moved at {} and {} h",
                        earlier.0,
                        later.0
                    );
                    assert!(
                        !(later.2 == earlier.1 && later.0 - earlier.0 < week),
                        "seed {seed}: {vm} back on {}",
                        later.2
                    );
                }
            }
        }
        for (az, starts) in &per_az {
            for i in 0..starts.len() {
                let mut sum = 0.0;
                for s in &starts[i..] {
                    sum += s.1;
                    assert!(
                        sum <= burst + rate * (s.0 - starts[i].0) + 1e-6,
                        "seed {seed} {az}"
                    );
                }
            }
        }
    }
    assert!(
        moved > 0,
        "the rebalancer moved VMs, so the rule was put to the test"
    );
}

/// A living cloud from the command line: the shipped scenario with web VMs that arrive and
/// are deleted. Each VM's `depart_step` in the JSON is where its departure is in every
/// strategy's events, nothing of a VM happens after it, and a bad key is named.
#[test]
fn a_living_cloud_departs_each_vm_at_its_step_in_every_strategy() {
    let dir = tempfile::tempdir().unwrap();
    let living = dir.path().join("living.toml");
    let text = std::fs::read_to_string(scenario_path()).unwrap();
    let web = "spread = 0.4\n";
    assert!(text.contains(web));
    let text = text.replacen(
        web,
        "spread = 0.4\narrivals_per_hour = 4\nlifetime_hours = 6\n",
        1,
    );
    std::fs::write(&living, &text).unwrap();
    let report = simulate_json(&["--scenario", living.to_str().unwrap(), "--hours", "12"]);
    let vms = report["vms"].as_array().unwrap();
    let depart: Vec<Option<u64>> = vms.iter().map(|v| v["depart_step"].as_u64()).collect();
    assert!(vms.iter().any(|v| v["boot_step"].as_u64() > Some(0)));
    assert!(depart.iter().any(Option::is_some));
    for s in report["strategies"].as_array().unwrap() {
        let name = s["strategy"].as_str().unwrap();
        let mut left: HashMap<u64, u64> = HashMap::new();
        for e in s["trace"]["events"].as_array().unwrap() {
            let vm = e["vm"].as_u64().unwrap();
            assert!(!left.contains_key(&vm), "{name}: {e} after VM {vm} left");
            match e["event"].as_str().unwrap() {
                "departure" => {
                    let step = e["step"].as_u64().unwrap();
                    assert_eq!(Some(step), depart[vm as usize], "{name}: {e}");
                    left.insert(vm, step);
                }
                "boot" => {
                    let d = depart[vm as usize];
                    assert!(d.is_none_or(|d| d > e["step"].as_u64().unwrap()));
                }
                _ => {}
            }
        }
        let booted = s["trace"]["events"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| {
                e["event"] == "boot" && depart[e["vm"].as_u64().unwrap() as usize].is_some()
            })
            .count();
        assert_eq!(
            left.len(),
            booted,
            "{name}: every VM that ran and is deleted departs"
        );
    }

    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        text.replace("lifetime_hours = 6", "lifetime_hours = -6"),
    )
    .unwrap();
    let out = simulate(&["--scenario", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("roles[0] (web).lifetime_hours"), "{err}");
}
