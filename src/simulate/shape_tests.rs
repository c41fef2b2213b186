//! The cloud's shape beyond one host size and one kind of day: host kinds, weekends, and
//! noise that persists, is shared within a role and bursts. Every bound below is wide and
//! deterministic (fixed seeds), and a scenario without the keys keeps today's demand.

use super::workload::{self, is_weekend, NoiseShape, Rng};
use super::*;

const DIURNAL: &str = include_str!("../../etc/scenarios/diurnal.toml");

/// One AZ, one big host, one role of `count` VMs: a web curve from 0.3 to 0.7 per vCPU with
/// noise 0.05 and no spread, each of those keys replaced where `keys` gives it.
fn scenario(count: u32, keys: &str) -> Scenario {
    let defaults = "curve = \"web\"\nbase = 0.3\npeak = 0.7\nnoise = 0.05\nspread = 0.0";
    let given = |line: &str| {
        let key = line.split('=').next().unwrap_or("").trim();
        keys.lines()
            .any(|l| l.split('=').next().unwrap_or("").trim() == key)
    };
    let role: Vec<&str> = defaults
        .lines()
        .filter(|l| !given(l))
        .chain(keys.lines())
        .collect();
    let text = format!(
        r#"
name = "t"
azs = ["az1"]
hosts_per_az = 1
[telemetry]
warmup_weeks = 1
gap_share = 0.0
[host]
pcpus = 512
memory_mb = 4194304
disk_gb = 100000
[[roles]]
name = "web"
count = {count}
vcpus = 4
memory_mb = 4096
{}
"#,
        role.join("\n")
    );
    Scenario::parse(&text).unwrap_or_else(|e| panic!("{e:?}"))
}

/// Demand per vCPU of VM `vm` (intensity 1) at step `j`.
fn per_vcpu(scn: &Scenario, vm: usize, j: i64) -> f64 {
    generated(scn, 0, 1.0, vm, j) / scn.roles[0].vcpus
}

fn mean(xs: &[f64]) -> f64 {
    xs.iter().sum::<f64>() / xs.len() as f64
}

fn correlation(a: &[f64], b: &[f64]) -> f64 {
    let (ma, mb) = (mean(a), mean(b));
    let cov: f64 = a.iter().zip(b).map(|(x, y)| (x - ma) * (y - mb)).sum();
    let va: f64 = a.iter().map(|x| (x - ma).powi(2)).sum();
    let vb: f64 = b.iter().map(|y| (y - mb).powi(2)).sum();
    cov / (va * vb).sqrt()
}

fn variance(a: &[f64]) -> f64 {
    let m = mean(a);
    a.iter().map(|x| (x - m).powi(2)).sum::<f64>() / a.len() as f64
}

// ---- defaults: the demand of a scenario without the new keys ----

/// The formula every shipped scenario's figures come from, written out on its own.
fn todays_formula(scn: &Scenario, role: usize, intensity: f64, vm: usize, j: i64) -> f64 {
    let r = &scn.roles[role];
    let t = scn.start_unix + j as f64 * scn.step_minutes * 60.0;
    let hour = (t / 3600.0).rem_euclid(24.0);
    let level = r.base + (r.peak - r.base).max(0.0) * r.curve.shape(hour);
    let noise = if j >= 0 {
        Rng::keyed(scn.seed, 2 + vm as u64, j as u64).normal()
    } else {
        Rng::keyed(scn.seed ^ 0x3A2F, 2 + vm as u64, j.unsigned_abs()).normal()
    };
    (level * intensity + r.noise * noise).clamp(0.0, 1.0) * r.vcpus
}

#[test]
fn a_scenario_without_the_new_keys_demands_what_it_did() {
    let scn = Scenario::parse(DIURNAL).unwrap();
    let vms = twin::vms_of(&scn);
    // Two weeks of warm-up and the run, on weekends too, bit for bit.
    for (i, v) in vms.iter().enumerate().step_by(7) {
        for j in (-4100..600).step_by(37) {
            let got = generated(&scn, v.role, v.intensity, i, j);
            let want = todays_formula(&scn, v.role, v.intensity, i, j);
            assert_eq!(got.to_bits(), want.to_bits(), "vm {i} step {j}");
        }
    }
    // Two values pinned from the report before host kinds, weekends and shaped noise.
    let work = Workload::new(&scn);
    assert_eq!(
        work.demand[0][0], 0.718_986_092_109_884_3,
        "vm_demand[0][0]"
    );
    assert_eq!(
        work.demand[100][17], 2.029_729_558_883_254_5,
        "vm_demand[100][17]"
    );
    // ... and the scenario as run is written back without them.
    let json = serde_json::to_string(&scn).unwrap();
    for key in ["\"host_kinds", "\"weekend_factor", "\"noise_", "\"burst_"] {
        assert!(!json.contains(key), "{key} in {json}");
    }
}

// ---- host kinds ----

const KINDS: &str = r#"
[[host_kinds]]
count_per_az = 1
pcpus = 48
memory_mb = 524288
disk_gb = 8000
[[host_kinds]]
count_per_az = 3
pcpus = 24
memory_mb = 262144
disk_gb = 4000
cpu_allocation_ratio = 2.0
"#;

fn mixed(rest: &str) -> String {
    let text = DIURNAL.replace("hosts_per_az = 8\n", "").replace(
        "[host]\npcpus = 24\nmemory_mb = 262144\ndisk_gb = 4000\n\
         cpu_allocation_ratio = 4.0\nram_allocation_ratio = 1.0\n",
        KINDS,
    );
    assert!(text.contains("\n[[host_kinds]]\n") && !text.contains("\n[host]\n"));
    format!("{text}{rest}")
}

#[test]
fn kinds_are_interleaved_evenly_in_the_order_listed() {
    assert_eq!(twin::interleave(&[1, 3]), vec![1, 0, 1, 1]);
    assert_eq!(twin::interleave(&[3, 1]), vec![0, 0, 1, 0]);
    assert_eq!(twin::interleave(&[2, 2]), vec![0, 1, 0, 1]);
    assert_eq!(twin::interleave(&[4]), vec![0; 4]);
    assert_eq!(twin::interleave(&[2, 4, 2]).len(), 8);
}

#[test]
fn every_az_has_each_kinds_count_with_its_own_size() {
    let scn = Scenario::parse(&mixed("")).unwrap_or_else(|e| panic!("{e:?}"));
    let hosts = twin::hosts_of(&scn);
    assert_eq!(hosts.len(), 3 * 4);
    for az in ["az1", "az2", "az3"] {
        let of_az: Vec<_> = hosts.iter().filter(|h| h.az == az).collect();
        let pcpus: Vec<f64> = of_az.iter().map(|h| h.spec.pcpus).collect();
        assert_eq!(pcpus, vec![24.0, 48.0, 24.0, 24.0], "{az}");
        let names: Vec<&str> = of_az.iter().map(|h| h.name.as_str()).collect();
        let want: Vec<String> = (1..=4).map(|i| format!("{az}-cmp{i:03}")).collect();
        assert_eq!(names, want);
        assert!(of_az
            .iter()
            .filter(|h| h.spec.pcpus == 24.0)
            .all(|h| h.spec.cpu_allocation_ratio == 2.0 && h.spec.memory_mb == 262144.0));
    }
}

#[test]
fn the_report_carries_each_hosts_size_and_capacity_and_nova_prefers_the_big_one() {
    let mut scn = Scenario::parse(&mixed("")).unwrap();
    scn.hours = 1.0;
    scn.telemetry.warmup_weeks = 0;
    let report = simulate(&scn).unwrap();
    let hosts = serde_json::to_value(&report.hosts).unwrap();
    assert_eq!(hosts.as_array().unwrap().len(), 12);
    for i in 0..12 {
        // Each AZ: small, big, small, small.
        let (pcpus, memory_mb, ratio) = if i % 4 == 1 {
            (48.0, 524288.0, 4.0)
        } else {
            (24.0, 262144.0, 2.0)
        };
        assert_eq!(hosts[i]["pcpus"], pcpus, "host {i}");
        assert_eq!(hosts[i]["memory_mb"], memory_mb, "host {i}");
        assert_eq!(hosts[i]["cpu_allocation_ratio"], ratio, "host {i}");
    }
    for s in &report.strategies {
        // Every host's capacity in the trace is its own cores (no migration without rebalance).
        if !s.strategy.ends_with("rebalance") {
            let caps: Vec<f64> = report.hosts.iter().map(|h| h.spec.pcpus).collect();
            assert_eq!(s.trace.host_capacity[0], caps, "{}", s.strategy);
        }
    }
    // Nova's RAM, CPU and disk weighers normalise over the candidates (minval 0): the big host
    // (second in its AZ) has the most of all three, so the first boot in each AZ lands there,
    // where a tie would have taken the first host.
    let nova = &report.strategies[0];
    assert_eq!(nova.strategy, "nova-default");
    let mut first_in_az = BTreeMap::new();
    for e in &nova.trace.events {
        if let Event::Boot { vm, host, .. } = e {
            first_in_az
                .entry(report.vms[*vm].az.clone())
                .or_insert(*host);
        }
    }
    assert_eq!(first_in_az.len(), 3);
    for (az, h) in first_in_az {
        assert_eq!(h % 4, 1, "{az}: {}", report.hosts[h].name);
    }
}

#[test]
fn host_forms_are_checked_by_key() {
    let problems = |text: &str| Scenario::parse(text).err().unwrap_or_default().join("\n");
    let both = format!("{}\n{KINDS}", DIURNAL);
    assert!(problems(&both).contains("host_kinds: give the hosts either"));
    let neither = DIURNAL
        .replace("hosts_per_az = 8\n", "")
        .replace("\n[host]\n", "\n[unused]\n");
    let neither = neither
        .split("\n[unused]\n")
        .next()
        .unwrap()
        .to_string()
        + "\n[[roles]]\nname = \"x\"\ncount = 1\nvcpus = 1\nmemory_mb = 1\ncurve = \"flat\"\nbase = 0.1\n";
    assert!(problems(&neither).contains("host: describe the hosts' size"));
    let no_count = DIURNAL.replace("hosts_per_az = 8\n", "");
    assert!(problems(&no_count).contains("hosts_per_az: [host] needs hosts_per_az"));
    let zero = mixed("").replacen("count_per_az = 3", "count_per_az = 0", 1);
    assert!(problems(&zero).contains("host_kinds[1].count_per_az: must be at least 1"));
    let bad = mixed("").replacen("\npcpus = 24\n", "\npcpus = -1\n", 1);
    assert!(problems(&bad).contains("host_kinds[1].pcpus: must be a positive number"));
    let huge = mixed("").replacen("count_per_az = 3", "count_per_az = 4000000000", 1);
    assert!(problems(&huge).contains("at most 10000 hosts per AZ"));
}

// ---- weekends ----

#[test]
fn the_default_start_is_a_monday_and_weekends_are_saturday_and_sunday() {
    let day = 86400.0;
    assert!(!is_weekend(DEFAULT_START));
    assert!(
        !is_weekend(DEFAULT_START + 5.0 * day - 1.0),
        "Friday 23:59:59"
    );
    assert!(is_weekend(DEFAULT_START + 5.0 * day), "Saturday 00:00");
    assert!(
        is_weekend(DEFAULT_START + 7.0 * day - 1.0),
        "Sunday 23:59:59"
    );
    assert!(!is_weekend(DEFAULT_START + 7.0 * day), "Monday");
    assert!(is_weekend(DEFAULT_START - 1.0), "the Sunday before");
    let _no_panic = is_weekend(f64::NAN);
}

#[test]
fn weekends_scale_the_swing_and_weekdays_stay() {
    let quiet = "noise = 0.0";
    let plain = scenario(1, quiet);
    let weekend = scenario(1, &format!("{quiet}\nweekend_factor = 0.25"));
    let steps_per_day = 288;
    let nine = 9 * 12;
    for day in 0..14i64 {
        // The run's two weeks and the warm-up's week before them.
        for d in [day, day - 21] {
            let j = d * steps_per_day + nine;
            let t = plain.start_unix + j as f64 * 300.0;
            let (p, w) = (per_vcpu(&plain, 0, j), per_vcpu(&weekend, 0, j));
            if is_weekend(t) {
                assert!(
                    (w - 0.3 - 0.25 * (p - 0.3)).abs() < 1e-12,
                    "day {d}: {w} vs {p}"
                );
                assert!(p - w > 0.25, "day {d}: the peak is lower");
            } else {
                assert_eq!(w, p, "day {d}: a weekday is as it was");
            }
        }
    }
}

#[test]
fn steward_learns_the_weekend_from_the_warm_up() {
    let mut scn = scenario(4, "noise = 0.0\nweekend_factor = 0.25");
    scn.hours = 1.0;
    let work = Workload::new(&scn);
    let profiles = work.profiles.at(scn.start_unix);
    let p = &profiles.role_demand["web"];
    let swing = |day: usize| p.at(day * 24 + 9).unwrap() - p.at(day * 24 + 3).unwrap();
    let (monday, saturday, sunday) = (swing(0), swing(5), swing(6));
    assert!(monday > 0.5, "a weekday's 09:00 peak: {monday}");
    for (name, s) in [("Saturday", saturday), ("Sunday", sunday)] {
        assert!((s / monday - 0.25).abs() < 0.05, "{name}: {s} vs {monday}");
    }
    assert!(
        (swing(2) / monday - 1.0).abs() < 0.02,
        "Wednesday as Monday"
    );
}

// ---- noise: persistence, correlation, variance ----

fn series(shape: NoiseShape, vm: usize, steps: std::ops::Range<i64>) -> Vec<f64> {
    steps.map(|j| workload::noise(7, 0, vm, j, shape)).collect()
}

fn lag1(a: &[f64]) -> f64 {
    correlation(&a[..a.len() - 1], &a[1..])
}

#[test]
fn noise_persists_for_noise_minutes_and_is_white_by_default() {
    let white = NoiseShape {
        knot_steps: 1.0,
        correlation: 0.0,
    };
    let hourly = NoiseShape {
        knot_steps: 12.0,
        ..white
    };
    let w = series(white, 3, -20_000..20_000);
    let h = series(hourly, 3, -20_000..20_000);
    assert!(lag1(&w).abs() < 0.03, "white: {}", lag1(&w));
    assert!(lag1(&h) > 0.9, "an hour at 5-minute steps: {}", lag1(&h));
    // Two hours apart, past the next knot: independent again.
    assert!(correlation(&h[..h.len() - 24], &h[24..]).abs() < 0.1);
    for (name, s) in [("white", &w), ("hourly", &h)] {
        assert!((variance(s) - 1.0).abs() < 0.1, "{name}: {}", variance(s));
    }
    // Every step between knots has the variance, not only the knots.
    let mid: Vec<f64> = h.iter().skip(6).step_by(12).copied().collect();
    assert!(
        (variance(&mid) - 1.0).abs() < 0.15,
        "midway: {}",
        variance(&mid)
    );
}

#[test]
fn a_roles_vms_share_noise_correlation_of_the_variance() {
    for (c, knot_steps) in [(0.0, 1.0), (0.3, 1.0), (0.7, 6.0)] {
        let shape = NoiseShape {
            knot_steps,
            correlation: c,
        };
        let a = series(shape, 0, -30_000..30_000);
        let b = series(shape, 1, -30_000..30_000);
        let r = correlation(&a, &b);
        assert!((r - c).abs() < 0.05, "c {c}: measured {r}");
        for s in [&a, &b] {
            assert!((variance(s) - 1.0).abs() < 0.1, "c {c}: {}", variance(s));
        }
        // Another role's VMs share nothing.
        let other: Vec<f64> = (-30_000..30_000)
            .map(|j| workload::noise(7, 1, 2, j, shape))
            .collect();
        assert!(correlation(&a, &other).abs() < 0.05, "c {c}");
    }
}

#[test]
fn demand_noise_has_the_configured_variance_and_correlation() {
    // A flat role (0.5 per vCPU, far from the clamps): demand's own spread is the noise.
    let scn = scenario(
        2,
        "curve = \"flat\"\nbase = 0.5\nnoise_correlation = 0.5\nnoise_minutes = 30",
    );
    let a: Vec<f64> = (-20_000..20_000).map(|j| per_vcpu(&scn, 0, j)).collect();
    let b: Vec<f64> = (-20_000..20_000).map(|j| per_vcpu(&scn, 1, j)).collect();
    let r = correlation(&a, &b);
    assert!((r - 0.5).abs() < 0.06, "{r}");
    let v = variance(&a) / (0.05 * 0.05);
    assert!((v - 1.0).abs() < 0.1, "variance / noise²: {v}");
    assert!(lag1(&a) > 0.8, "persists: {}", lag1(&a));
}

// ---- bursts ----

/// Burst starts and the mean height above the rest, for VM `vm` over `days` from day `from`.
fn bursts_of(scn: &Scenario, vm: usize, from: i64, days: i64) -> (usize, f64, Vec<bool>) {
    let steps = from * 288..(from + days) * 288;
    let d: Vec<f64> = steps.map(|j| per_vcpu(scn, vm, j)).collect();
    let on: Vec<bool> = d.iter().map(|x| *x > 0.3 + 0.1).collect();
    let starts = on.windows(2).filter(|w| !w[0] && w[1]).count();
    let lifted: Vec<f64> = d.iter().zip(&on).filter(|p| *p.1).map(|p| *p.0).collect();
    (starts, mean(&lifted) - 0.3, on)
}

fn indicators(on: &[bool]) -> Vec<f64> {
    on.iter().map(|&b| f64::from(u8::from(b))).collect()
}

#[test]
fn bursts_come_at_their_rate_and_height_before_and_during_the_run() {
    // Flat at 0.3 without noise: anything above is a burst.
    let scn = scenario(
        3,
        "curve = \"flat\"\nnoise = 0.0\nbursts_per_day = 4\nburst_minutes = 30\nburst_height = 0.3",
    );
    for vm in 0..3 {
        for from in [-200, 0] {
            let (starts, height, on) = bursts_of(&scn, vm, from, 200);
            let per_day = starts as f64 / 200.0;
            // Bursts that overlap or touch merge, so a little under 4 (3.8 expected).
            assert!(
                (3.2..4.4).contains(&per_day),
                "vm {vm} from {from}: {per_day}"
            );
            assert!((height - 0.3).abs() < 1e-9, "vm {vm}: {height}");
            let share = on.iter().filter(|b| **b).count() as f64 / on.len() as f64;
            assert!(
                (share - 4.0 * 30.0 / 1440.0).abs() < 0.015,
                "vm {vm}: {share}"
            );
        }
    }
    // Each VM bursts on its own.
    let a = indicators(&bursts_of(&scn, 0, 0, 100).2);
    let b = indicators(&bursts_of(&scn, 1, 0, 100).2);
    assert!(correlation(&a, &b).abs() < 0.05, "{}", correlation(&a, &b));
}

#[test]
fn burst_correlation_makes_a_roles_vms_burst_together() {
    let scn = scenario(
        2,
        "curve = \"flat\"\nnoise = 0.0\nbursts_per_day = 4\nburst_minutes = 30\n\
         burst_height = 0.3\nburst_correlation = 0.8",
    );
    let (starts, _, on_a) = bursts_of(&scn, 0, 0, 200);
    let (_, _, on_b) = bursts_of(&scn, 1, 0, 200);
    let r = correlation(&indicators(&on_a), &indicators(&on_b));
    assert!((0.7..0.9).contains(&r), "{r}");
    assert!(
        (3.2..4.4).contains(&(starts as f64 / 200.0)),
        "the rate stays"
    );
}

#[test]
fn shape_keys_are_checked_by_key() {
    let problems = |role: &str| {
        let text = DIURNAL.replacen("spread = 0.4\n", &format!("spread = 0.4\n{role}\n"), 1);
        Scenario::parse(&text).err().unwrap_or_default().join("\n")
    };
    for (role, want) in [
        (
            "weekend_factor = -1",
            "roles[0] (web).weekend_factor: must be a number >= 0",
        ),
        (
            "noise_correlation = 1.5",
            "roles[0] (web).noise_correlation: must be a share",
        ),
        (
            "burst_correlation = nan",
            "roles[0] (web).burst_correlation: must be a share",
        ),
        (
            "noise_minutes = 1",
            "roles[0] (web).noise_minutes: must be at least step_minutes",
        ),
        (
            "bursts_per_day = 2",
            "roles[0] (web).burst_minutes: bursts_per_day > 0 needs",
        ),
        (
            "bursts_per_day = 2",
            "roles[0] (web).burst_height: bursts_per_day > 0 needs",
        ),
        (
            "bursts_per_day = 100\nburst_minutes = 60\nburst_height = 0.2",
            "roles[0] (web).bursts_per_day: at most one burst at a time",
        ),
        (
            "bursts_per_day = -1",
            "roles[0] (web).bursts_per_day: must be a number >= 0",
        ),
    ] {
        let got = problems(role);
        assert!(got.contains(want), "{role}: {got}");
    }
    assert_eq!(
        problems(
            "weekend_factor = 0.4\nnoise_correlation = 0.3\nnoise_minutes = 60\n\
                  bursts_per_day = 2\nburst_minutes = 20\nburst_height = 0.4\n\
                  burst_correlation = 0.5"
        ),
        ""
    );
}
