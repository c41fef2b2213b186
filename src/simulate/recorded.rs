//! A recorded cloud as a twin scenario (PURE): hosts and VMs as Nova lists them, each VM's
//! CPU demand per step as Prometheus recorded it, replayed instead of generated curves.
//!
//! `build` takes plain facts (the adapter in `cli::recorded` fetches them) and decides what
//! the replay can use: a host with no size or no AZ, a server on a host Nova does not list,
//! a VM with no CPU series are left out, each named in the scenario's `notes`.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::{Deserialize, Serialize};

use super::workload::Curve;
use super::{HostSpec, RoleSpec, Scenario};

/// Nova's `initial_cpu_allocation_ratio` and `initial_ram_allocation_ratio`: what a host
/// whose Placement inventory could not be read is taken to have.
pub const NOVA_CPU_RATIO: f64 = 16.0;
pub const NOVA_RAM_RATIO: f64 = 1.5;

/// The role of VMs that have none (no metadata key, no server group): steward and Nova's
/// groups do not know it, and it counts in no role's stacking.
pub const NO_ROLE: &str = "(no role)";

/// The recorded part of a scenario: it replaces `azs` x `hosts_per_az` and the roles'
/// generated VMs.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Recorded {
    pub hosts: Vec<RecordedHost>,
    pub vms: Vec<RecordedVm>,
    /// What the recording left out or filled in, one line each.
    #[serde(default)]
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RecordedHost {
    pub name: String,
    pub az: String,
    pub spec: HostSpec,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RecordedVm {
    pub uuid: String,
    #[serde(default)]
    pub name: String,
    /// None: no role known (the metadata key and server group both absent).
    pub role: Option<String>,
    /// The AZ of the host it runs on now.
    pub az: String,
    /// Where Nova has it now (each strategy places it again from the first step).
    pub host: String,
    pub flavor: String,
    pub vcpus: f64,
    pub memory_mb: f64,
    pub disk_gb: f64,
    /// The first step with a sample: the VM boots there.
    pub first_step: u64,
    /// Cores demanded at each step of the run (0 before `first_step`).
    pub demand: Vec<f64>,
}

/// A hypervisor as the adapter read it (Nova, allocation ratios from Placement).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HostFact {
    pub name: String,
    pub az: Option<String>,
    pub vcpus: Option<f64>,
    pub memory_mb: Option<f64>,
    pub disk_gb: Option<f64>,
    pub cpu_allocation_ratio: Option<f64>,
    pub ram_allocation_ratio: Option<f64>,
}

/// A server as the adapter read it from Nova (role by steward's own rules).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct VmFact {
    pub uuid: String,
    pub name: String,
    pub host: Option<String>,
    pub role: Option<String>,
    pub flavor: Option<String>,
    pub vcpus: f64,
    pub memory_mb: f64,
    pub disk_gb: f64,
}

/// The recorded window: `steps` points from `start`, `step_seconds` apart.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Window {
    pub start: f64,
    pub step_seconds: f64,
    pub steps: u64,
}

/// Everything `build` reads.
#[derive(Debug, Clone, Default)]
pub struct Facts {
    pub hosts: Vec<HostFact>,
    pub vms: Vec<VmFact>,
    /// Per VM uuid, its CPU use in cores: (unix seconds, value).
    pub series: HashMap<String, Vec<(f64, f64)>>,
}

/// The service's settings the replay runs with (as in steward.toml).
#[derive(Debug, Clone)]
pub struct Settings {
    pub placement_profile: String,
    pub profiles: BTreeMap<String, crate::scoring::ProfileSpec>,
    pub rebalance: crate::rebalance::RebalanceSettings,
    pub history_weeks: u32,
}

/// At most this many notes of one kind are listed; the rest are counted.
const LISTED: usize = 20;

/// Notes of one kind: the first `LISTED` named, the rest counted.
#[derive(Default)]
struct Kind {
    lines: Vec<String>,
    count: usize,
}

impl Kind {
    fn add(&mut self, line: String) {
        self.count += 1;
        if self.lines.len() < LISTED {
            self.lines.push(line);
        }
    }

    fn drain_into(self, notes: &mut Vec<String>, what: &str) {
        notes.extend(self.lines);
        if self.count > LISTED {
            notes.push(format!("... and {} more {what}", self.count - LISTED));
        }
    }
}

fn positive(v: Option<f64>) -> Option<f64> {
    v.filter(|v| v.is_finite() && *v > 0.0)
}

/// The hosts the replay can use, with notes on the others.
fn hosts(facts: &[HostFact], notes: &mut Vec<String>) -> Vec<RecordedHost> {
    let mut skipped = Kind::default();
    let mut default_ratio = Kind::default();
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for h in facts {
        if !seen.insert(h.name.as_str()) {
            skipped.add(format!(
                "host {}: listed twice by Nova; the first kept",
                h.name
            ));
            continue;
        }
        let Some(az) = h.az.clone().filter(|a| !a.trim().is_empty()) else {
            skipped.add(format!(
                "host {}: in no AZ; left out (unknown is not anywhere: put it in an AZ aggregate)",
                h.name
            ));
            continue;
        };
        let (Some(pcpus), Some(memory_mb)) = (positive(h.vcpus), positive(h.memory_mb)) else {
            skipped.add(format!(
                "host {}: Nova reports no vCPUs or RAM (a bare-metal node, or a compute not \
                 reporting); left out",
                h.name
            ));
            continue;
        };
        let (cpu, ram) = (
            positive(h.cpu_allocation_ratio),
            positive(h.ram_allocation_ratio),
        );
        if cpu.is_none() || ram.is_none() {
            default_ratio.add(format!(
                "host {}: no allocation ratio from Placement; Nova's defaults taken \
                 (cpu {NOVA_CPU_RATIO}, ram {NOVA_RAM_RATIO})",
                h.name
            ));
        }
        out.push(RecordedHost {
            name: h.name.clone(),
            az,
            spec: HostSpec {
                pcpus,
                memory_mb,
                disk_gb: positive(h.disk_gb).unwrap_or(0.0),
                cpu_allocation_ratio: cpu.unwrap_or(NOVA_CPU_RATIO),
                ram_allocation_ratio: ram.unwrap_or(NOVA_RAM_RATIO),
            },
        });
    }
    skipped.drain_into(notes, "hosts left out");
    default_ratio.drain_into(notes, "hosts with Nova's default ratios");
    out
}

/// A VM's demand per step from its samples: each sample at its nearest step; a step without
/// one repeats the step before (Prometheus' own lookback does the same); values above the
/// VM's vCPUs are cut to them (load counts waiting tasks too). None: no usable sample.
fn demand(samples: &[(f64, f64)], w: Window, vcpus: f64) -> Option<(u64, Vec<f64>, usize)> {
    let mut at: Vec<Option<f64>> = vec![None; w.steps as usize];
    let mut cut = 0;
    for &(t, v) in samples {
        if !(t.is_finite() && v.is_finite() && v >= 0.0) {
            continue;
        }
        let k = ((t - w.start) / w.step_seconds).round();
        if k < 0.0 || k >= w.steps as f64 {
            continue;
        }
        if v > vcpus {
            cut += 1;
        }
        at[k as usize] = Some(v.min(vcpus));
    }
    let first = at.iter().position(Option::is_some)?;
    let mut last = 0.0;
    let demand = at
        .iter()
        .enumerate()
        .map(|(k, v)| {
            if k < first {
                return 0.0;
            }
            last = v.unwrap_or(last);
            last
        })
        .collect();
    Some((first as u64, demand, cut))
}

/// The VMs the replay can use (on a kept host, with a series), with notes on the others.
fn vms(
    facts: &Facts,
    hosts: &[RecordedHost],
    w: Window,
    notes: &mut Vec<String>,
) -> Vec<RecordedVm> {
    let az_of: HashMap<&str, &str> = hosts
        .iter()
        .map(|h| (h.name.as_str(), h.az.as_str()))
        .collect();
    let mut not_running = Kind::default();
    let mut no_host = Kind::default();
    let mut no_size = Kind::default();
    let mut no_series = Kind::default();
    let mut cut_vms = Kind::default();
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for v in &facts.vms {
        if !seen.insert(v.uuid.as_str()) {
            continue;
        }
        let Some(host) = v.host.as_deref().filter(|h| !h.is_empty()) else {
            not_running.add(format!(
                "VM {} ({}): on no host (not running); left out",
                v.uuid, v.name
            ));
            continue;
        };
        let Some(az) = az_of.get(host) else {
            no_host.add(format!(
                "VM {} ({}): on host {host}, which is not among the hosts above \
                 (Nova's hypervisor list lacks it, or it was left out); left out",
                v.uuid, v.name
            ));
            continue;
        };
        let (Some(vcpus), Some(memory_mb)) = (positive(Some(v.vcpus)), positive(Some(v.memory_mb)))
        else {
            no_size.add(format!(
                "VM {} ({}): its flavor has no vCPUs or RAM; left out",
                v.uuid, v.name
            ));
            continue;
        };
        let samples = facts.series.get(&v.uuid).map_or(&[][..], Vec::as_slice);
        let Some((first_step, demand, cut)) = demand(samples, w, vcpus) else {
            no_series.add(format!(
                "VM {} ({}): no CPU series in the window (no sample labelled with its uuid); \
                 left out of the replay",
                v.uuid, v.name
            ));
            continue;
        };
        if cut > 0 {
            cut_vms.add(format!(
                "VM {} ({}): {cut} sample(s) above its {vcpus} vCPUs, read as {vcpus}",
                v.uuid, v.name
            ));
        }
        out.push(RecordedVm {
            uuid: v.uuid.clone(),
            name: v.name.clone(),
            role: v.role.clone().filter(|r| !r.trim().is_empty()),
            az: az.to_string(),
            host: host.to_string(),
            flavor: v.flavor.clone().unwrap_or_default(),
            vcpus,
            memory_mb,
            disk_gb: positive(Some(v.disk_gb)).unwrap_or(0.0),
            first_step,
            demand,
        });
    }
    let kinds: [(Kind, &str); 5] = [
        (not_running, "VMs on no host"),
        (no_host, "VMs on unknown hosts"),
        (no_size, "VMs without a size"),
        (no_series, "VMs without a CPU series"),
        (cut_vms, "VMs with samples above their vCPUs"),
    ];
    for (kind, what) in kinds {
        kind.drain_into(notes, what);
    }
    let unknown = facts
        .series
        .keys()
        .filter(|u| !seen.contains(u.as_str()))
        .count();
    if unknown > 0 {
        notes.push(format!(
            "{unknown} CPU series of VMs Nova does not list now (deleted during the window) \
             are left out"
        ));
    }
    out
}

/// One role per role name the VMs carry (and `NO_ROLE` for those without): their sizes are
/// the VMs' own, so a role here only names and groups.
fn roles(vms: &[RecordedVm]) -> Vec<RoleSpec> {
    let mut biggest: BTreeMap<&str, (f64, f64)> = BTreeMap::new();
    for v in vms {
        let e = biggest
            .entry(v.role.as_deref().unwrap_or(NO_ROLE))
            .or_insert((0.0, 0.0));
        *e = (e.0.max(v.vcpus), e.1.max(v.memory_mb));
    }
    biggest
        .into_iter()
        .map(|(name, (vcpus, memory_mb))| RoleSpec {
            name: name.to_string(),
            count: 0,
            vcpus,
            memory_mb,
            disk_gb: 0.0,
            block_migration: true,
            curve: Curve::Flat,
            base: 0.0,
            peak: 0.0,
            noise: 0.0,
            spread: 0.0,
            boot_at_hours: 0.0,
            arrivals_per_hour: 0.0,
            lifetime_hours: None,
            weekend_factor: 1.0,
            noise_correlation: 0.0,
            noise_minutes: None,
            bursts_per_day: 0.0,
            burst_minutes: 0.0,
            burst_height: 0.0,
            burst_correlation: 0.0,
        })
        .collect()
}

/// The scenario of a recorded cloud; Err names why nothing can be replayed.
pub fn build(facts: &Facts, w: Window, settings: &Settings) -> Result<Scenario, String> {
    if !(w.start.is_finite() && w.step_seconds.is_finite() && w.step_seconds > 0.0) || w.steps == 0
    {
        return Err(format!(
            "the window must have at least one step, got {} steps of {} s",
            w.steps, w.step_seconds
        ));
    }
    let mut notes = Vec::new();
    let hosts = hosts(&facts.hosts, &mut notes);
    if hosts.is_empty() {
        return Err(format!(
            "no hypervisor to replay on: Nova listed {} host(s), none with an AZ and a size{}",
            facts.hosts.len(),
            notes
                .first()
                .map(|n| format!(" (e.g. {n})"))
                .unwrap_or_default()
        ));
    }
    let vms = vms(facts, &hosts, w, &mut notes);
    if vms.is_empty() {
        return Err(format!(
            "no VM to replay: Nova listed {} server(s) and Prometheus had CPU series for {} \
             uuid(s), and none is both on a known host and recorded in the window; check \
             [prometheus.queries] vm_load5 and [prometheus] vm_label, and the window",
            facts.vms.len(),
            facts.series.len()
        ));
    }
    let azs: Vec<String> = hosts
        .iter()
        .map(|h| h.az.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let hours = w.steps as f64 * w.step_seconds / 3600.0;
    let description = format!(
        "recorded from Prometheus and Nova: {} hosts, {} VMs, {} steps of {} s from unix {}",
        hosts.len(),
        vms.len(),
        w.steps,
        w.step_seconds,
        w.start
    );
    let roles = roles(&vms);
    let scn = Scenario {
        name: "recorded".into(),
        description,
        seed: 42,
        hours,
        step_minutes: w.step_seconds / 60.0,
        start_unix: w.start,
        azs,
        hosts_per_az: Some(1),
        host: Some(hosts[0].spec.clone()),
        host_kinds: Vec::new(),
        roles,
        placement_profile: settings.placement_profile.clone(),
        profiles: settings.profiles.clone(),
        // The link and the copy's CPU are what the operator told steward they are (its
        // `[rebalance]` copy-cost keys, set to the computes' live_migration_bandwidth), as a
        // synthetic scenario's copy-cost keys default to its link.
        migration_gib_per_second: settings.rebalance.copy_gib_per_second,
        migration: super::migration::MigrationSpec {
            cpu_cores: settings.rebalance.copy_cpu_cores,
            ..Default::default()
        },
        rebalance: settings.rebalance.clone(),
        steward_weight_multiplier: 1.0,
        recommended_weight_multiplier: None,
        roleless_share: 0.0,
        // No history before the window: steward learns its role profiles from the window.
        telemetry: super::telemetry::TelemetrySpec {
            warmup_weeks: 0,
            history_weeks: settings.history_weeks.clamp(1, 8),
            ..Default::default()
        },
        recorded: Some(Recorded { hosts, vms, notes }),
    };
    let problems = scn.problems();
    if problems.is_empty() {
        Ok(scn)
    } else {
        Err(problems.join("; "))
    }
}

/// `7d`, `36h`, `90m`, `600s`, `2w` or a number of seconds; positive.
pub fn parse_duration(text: &str) -> Result<f64, String> {
    let t = text.trim();
    let (num, unit) = t.split_at(t.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(t.len()));
    let scale = match unit {
        "" | "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        "d" => 86400.0,
        "w" => 7.0 * 86400.0,
        _ => f64::NAN,
    };
    match num.trim().parse::<f64>() {
        Ok(n) if n.is_finite() && n > 0.0 && scale.is_finite() => Ok(n * scale),
        _ => Err(format!(
            "{text:?} is not a duration: give e.g. 7d, 36h, 90m, 300s or 2w"
        )),
    }
}

/// Unix seconds, or an RFC 3339 time (`2026-11-30T00:00:00Z`).
pub fn parse_time(text: &str) -> Result<f64, String> {
    let t = text.trim();
    if let Ok(n) = t.parse::<f64>() {
        if n.is_finite() && n >= 0.0 {
            return Ok(n);
        }
    }
    time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339)
        .map(|d| d.unix_timestamp() as f64)
        .map_err(|_| {
            format!(
                "{text:?} is not a time: give unix seconds or RFC 3339, e.g. 2026-11-30T00:00:00Z"
            )
        })
}

/// The longest window a replay takes (the twin's `hours` bound).
pub const MAX_WINDOW_SECONDS: f64 = 28.0 * 86400.0;

/// The window to record: `--start`/`--end` (end defaults to `now`), else `--since` (default
/// 7 days) before `now`, on a grid of `--step` (default 5 minutes, 1 to 60 minutes).
pub fn window(
    now: f64,
    since: Option<&str>,
    start: Option<&str>,
    end: Option<&str>,
    step: Option<&str>,
) -> Result<Window, String> {
    let step = step
        .map_or(Ok(300.0), parse_duration)
        .map_err(|e| format!("--step: {e}"))?;
    if !(60.0..=3600.0).contains(&step) {
        return Err(format!(
            "--step: {step} s is outside 1 to 60 minutes (the twin's step)"
        ));
    }
    let end = end
        .map_or(Ok(now), parse_time)
        .map_err(|e| format!("--end: {e}"))?;
    let end = (end / step).floor() * step;
    let start = match start {
        Some(s) => parse_time(s).map_err(|e| format!("--start: {e}"))?,
        None => {
            end - since
                .map_or(Ok(7.0 * 86400.0), parse_duration)
                .map_err(|e| format!("--since: {e}"))?
        }
    };
    let start = (start / step).ceil() * step;
    if end - start < step {
        return Err(format!(
            "the window from {start} to {end} (unix seconds) holds no whole --step of {step} s: \
             --start must come before --end"
        ));
    }
    if end - start > MAX_WINDOW_SECONDS {
        return Err(format!(
            "the window is {:.1} days; the replay takes at most 28 (shorten --since or --start/--end)",
            (end - start) / 86400.0
        ));
    }
    Ok(Window {
        start,
        step_seconds: step,
        steps: ((end - start) / step).round() as u64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const W: Window = Window {
        start: 1_795_392_000.0,
        step_seconds: 300.0,
        steps: 12,
    };

    fn host(name: &str, az: Option<&str>) -> HostFact {
        HostFact {
            name: name.into(),
            az: az.map(Into::into),
            vcpus: Some(16.0),
            memory_mb: Some(65536.0),
            disk_gb: Some(500.0),
            cpu_allocation_ratio: Some(2.0),
            ram_allocation_ratio: Some(1.0),
        }
    }

    fn vm(uuid: &str, host: Option<&str>, role: Option<&str>) -> VmFact {
        VmFact {
            uuid: uuid.into(),
            name: format!("vm-{uuid}"),
            host: host.map(Into::into),
            role: role.map(Into::into),
            flavor: Some("m1.medium".into()),
            vcpus: 4.0,
            memory_mb: 8192.0,
            disk_gb: 40.0,
        }
    }

    /// A sample every step at `value`, from step `from` on.
    fn flat(value: f64, from: u64) -> Vec<(f64, f64)> {
        (from..W.steps)
            .map(|k| (W.start + k as f64 * W.step_seconds, value))
            .collect()
    }

    fn settings() -> Settings {
        Settings {
            placement_profile: "default".into(),
            profiles: BTreeMap::new(),
            rebalance: Default::default(),
            history_weeks: 4,
        }
    }

    fn cloud() -> Facts {
        Facts {
            hosts: vec![host("cmp-a1", Some("az1")), host("cmp-b1", Some("az2"))],
            vms: vec![
                vm("a", Some("cmp-a1"), Some("web")),
                vm("b", Some("cmp-b1"), None),
            ],
            series: [
                ("a".to_string(), flat(1.5, 0)),
                ("b".to_string(), flat(0.5, 3)),
            ]
            .into(),
        }
    }

    /// A note names both.
    fn noted(r: &Recorded, a: &str, b: &str) -> bool {
        r.notes.iter().any(|n| n.contains(a) && n.contains(b))
    }

    fn recorded(s: &Scenario) -> &Recorded {
        s.recorded.as_ref().unwrap()
    }

    /// The twin copies a recorded cloud's moves at the speed and CPU the operator configured
    /// steward with, not at a figure of the twin's own.
    #[test]
    fn the_link_is_what_the_operator_told_steward() {
        let mut with = settings();
        with.rebalance.copy_gib_per_second = 0.25;
        with.rebalance.copy_cpu_cores = 2.0;
        let s = build(&cloud(), W, &with).unwrap();
        assert_eq!(s.migration_gib_per_second, 0.25);
        assert_eq!(s.migration.cpu_cores, 2.0);
    }

    #[test]
    fn nova_and_the_series_become_hosts_vms_and_demand() {
        let s = build(&cloud(), W, &settings()).unwrap();
        assert_eq!(s.azs, ["az1", "az2"]);
        assert_eq!(s.hours, 1.0);
        let r = recorded(&s);
        assert_eq!(r.hosts.len(), 2);
        assert_eq!(r.hosts[0].spec.cpu_allocation_ratio, 2.0);
        let a = &r.vms[0];
        assert_eq!(
            (a.az.as_str(), a.role.as_deref(), a.first_step),
            ("az1", Some("web"), 0)
        );
        assert_eq!(a.demand, vec![1.5; 12]);
        let b = &r.vms[1];
        assert_eq!((b.role.as_deref(), b.first_step), (None, 3));
        assert_eq!(&b.demand[..4], &[0.0, 0.0, 0.0, 0.5]);
        let names: Vec<&str> = s.roles.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, [NO_ROLE, "web"]);
        assert!(r.notes.is_empty(), "{:?}", r.notes);
    }

    #[test]
    fn a_vm_without_a_series_is_left_out_and_named() {
        let mut f = cloud();
        f.vms.push(vm("silent", Some("cmp-a1"), Some("web")));
        let s = build(&f, W, &settings()).unwrap();
        let r = recorded(&s);
        assert_eq!(r.vms.len(), 2);
        assert!(noted(r, "VM silent", "no CPU series"));
    }

    #[test]
    fn a_server_on_a_host_nova_does_not_list_is_left_out_and_named() {
        let mut f = cloud();
        f.vms.push(vm("lost", Some("cmp-gone"), None));
        f.vms.push(vm("shelved", None, None));
        f.series.insert("lost".into(), flat(1.0, 0));
        let r = build(&f, W, &settings()).unwrap().recorded.unwrap();
        assert_eq!(r.vms.len(), 2);
        assert!(noted(&r, "VM lost", "cmp-gone"));
        assert!(noted(&r, "VM shelved", "no host"));
    }

    #[test]
    fn hosts_without_an_az_or_a_size_are_left_out_with_their_vms() {
        let mut f = cloud();
        f.hosts.push(host("cmp-noaz", None));
        f.hosts.push(HostFact {
            vcpus: Some(0.0),
            ..host("ironic-1", Some("az1"))
        });
        f.vms.push(vm("c", Some("cmp-noaz"), None));
        f.series.insert("c".into(), flat(1.0, 0));
        let r = build(&f, W, &settings()).unwrap().recorded.unwrap();
        let names: Vec<&str> = r.hosts.iter().map(|h| h.name.as_str()).collect();
        assert_eq!(names, ["cmp-a1", "cmp-b1"]);
        assert!(noted(&r, "cmp-noaz", "no AZ"));
        assert!(noted(&r, "ironic-1", "no vCPUs"));
        assert!(r.notes.iter().any(|n| n.contains("VM c")));
    }

    #[test]
    fn bad_samples_are_dropped_gaps_repeat_and_peaks_are_cut_to_the_vcpus() {
        let mut f = cloud();
        let t = |k: f64| W.start + k * W.step_seconds;
        f.series.insert(
            "a".into(),
            vec![
                (t(0.0), 1.0),
                (t(1.0), f64::NAN),
                (t(2.0), -3.0),
                (t(3.0), 9.0),
                (t(5.1), 2.0),
                (t(-1.0), 4.0),
                (t(40.0), 4.0),
                (f64::INFINITY, 1.0),
            ],
        );
        let r = build(&f, W, &settings()).unwrap().recorded.unwrap();
        assert_eq!(&r.vms[0].demand[..7], &[1.0, 1.0, 1.0, 4.0, 4.0, 2.0, 2.0]);
        assert!(r.notes.iter().any(|n| n.contains("above its 4 vCPUs")));
    }

    #[test]
    fn missing_ratios_take_novas_defaults_and_say_so() {
        let mut f = cloud();
        f.hosts[1].cpu_allocation_ratio = None;
        let r = build(&f, W, &settings()).unwrap().recorded.unwrap();
        assert_eq!(r.hosts[1].spec.cpu_allocation_ratio, NOVA_CPU_RATIO);
        assert!(noted(&r, "cmp-b1", "defaults"));
    }

    #[test]
    fn nothing_to_replay_is_an_error_that_says_what_to_check() {
        let mut f = cloud();
        f.series.clear();
        let e = build(&f, W, &settings()).unwrap_err();
        assert!(e.contains("vm_load5"), "{e}");
        let e = build(&Facts::default(), W, &settings()).unwrap_err();
        assert!(e.contains("no hypervisor"), "{e}");
        let e = build(&cloud(), Window { steps: 0, ..W }, &settings()).unwrap_err();
        assert!(e.contains("at least one step"), "{e}");
    }

    #[test]
    fn many_notes_of_one_kind_are_counted_not_listed() {
        let mut f = cloud();
        for i in 0..50 {
            f.vms.push(vm(&format!("s{i}"), Some("cmp-a1"), None));
        }
        let r = build(&f, W, &settings()).unwrap().recorded.unwrap();
        assert_eq!(r.notes.len(), LISTED + 1);
        assert!(r.notes[LISTED].contains("30 more"), "{:?}", r.notes);
    }

    #[test]
    fn the_replay_runs_every_strategy_on_the_recorded_demand() {
        let s = build(&cloud(), W, &settings()).unwrap();
        let report = crate::simulate::simulate(&s).unwrap();
        let names: Vec<&str> = report
            .strategies
            .iter()
            .map(|s| s.strategy.as_str())
            .collect();
        assert!(names.contains(&"nova-default") && names.contains(&"steward-deployed-rebalance"));
        assert_eq!(report.vm_demand.len(), 12);
        assert_eq!(report.vm_demand[5], vec![1.5, 0.5]);
        assert_eq!(report.vm_demand[0], vec![1.5, 0.0]);
        assert_eq!(report.vms[1].boot_step, 3);
        assert!(report
            .strategies
            .iter()
            .all(|s| s.unplaced == 0 && s.az_violations == 0));
    }

    #[test]
    fn a_recorded_scenario_that_does_not_hold_together_is_refused_by_name() {
        let good = build(&cloud(), W, &settings()).unwrap();
        let mut s = good.clone();
        s.recorded.as_mut().unwrap().vms[0].demand.pop();
        assert!(s.problems().iter().any(|p| p.contains("recorded.vms (a)")));
        let mut s = good.clone();
        s.recorded.as_mut().unwrap().vms[1].host = "cmp-a1".into();
        assert!(s.problems().iter().any(|p| p.contains("recorded.vms (b)")));
        let mut s = good.clone();
        s.recorded.as_mut().unwrap().hosts[0].az = "az9".into();
        assert!(s
            .problems()
            .iter()
            .any(|p| p.contains("recorded.hosts (cmp-a1)")));
        let mut s = good;
        s.recorded.as_mut().unwrap().vms[0].role = Some("gone".into());
        s.recorded.as_mut().unwrap().vms[1].demand[5] = f64::NAN;
        assert_eq!(s.problems().len(), 2, "{:?}", s.problems());
    }

    #[test]
    fn windows_are_parsed_aligned_and_bounded() {
        let now = 1_795_392_000.0 + 7.0 * 86400.0 + 100.0;
        let w = window(now, None, None, None, None).unwrap();
        assert_eq!(
            (w.start, w.step_seconds, w.steps),
            (1_795_392_000.0, 300.0, 2016)
        );
        let w = window(now, Some("2h"), None, None, Some("1m")).unwrap();
        assert_eq!(w.steps, 120);
        let w = window(
            0.0,
            None,
            Some("2026-11-23T00:00:00Z"),
            Some("1795395600"),
            None,
        )
        .unwrap();
        assert_eq!((w.start, w.steps), (1_795_392_000.0, 12));
        for (since, start, end, step) in [
            (Some("7x"), None, None, None),
            (None, None, None, Some("10s")),
            (None, None, None, Some("2h")),
            (None, Some("yesterday"), None, None),
            (None, Some("1795395600"), Some("1795392000"), None),
            (Some("29d"), None, None, None),
            (Some("-1d"), None, None, None),
        ] {
            assert!(
                window(now, since, start, end, step).is_err(),
                "{since:?} {start:?} {end:?} {step:?}"
            );
        }
    }
}
