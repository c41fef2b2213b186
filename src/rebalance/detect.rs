//! Detection (PURE): which VMs suffer CPU steal while they are busy, sustained over a window,
//! with hysteresis; ranked by severity. Time is an input; no I/O, no clock.
//!
//! A VM enters when its mean load5 per vCPU over the window is at least `load_enter` AND its
//! mean steal is at least `steal_enter`, with at least `min_samples` samples in the window.
//! It stays a candidate until either mean falls below its exit threshold (`load_exit`,
//! `steal_exit`). Steal without high load is reported, never acted on. Severity is
//! `steal * load_per_vcpu`: the CPU time the VM wants and does not get.

use std::collections::{BTreeMap, HashMap, VecDeque};

use serde::{Deserialize, Serialize};

use crate::model::ClusterView;

use super::{RebalanceSettings, StealReport};

/// One telemetry sample of a VM.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize, Serialize)]
pub struct Sample {
    /// Unix seconds of the measurement.
    pub at: f64,
    pub load5: f64,
    pub steal: f64,
}

/// A VM's recent samples, all taken on `host` (a move starts a new series).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct Series {
    pub host: Option<String>,
    pub vcpus: Option<f64>,
    pub samples: VecDeque<Sample>,
}

/// Per-VM sample history built from successive cluster views. Pure data: the caller records
/// each published view into it and keeps it between cycles.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct History {
    pub vms: HashMap<String, Series>,
}

impl History {
    /// Add every VM's latest sample from a view (once per `observed_at`), start a new series
    /// for a VM whose host changed, and forget samples older than `keep_seconds` before `now`
    /// and VMs that left the view. A VM with a load but no steal of its own (a pusher that
    /// reports steal per hypervisor only) takes its host's steal when that sample is at most
    /// `keep_seconds` apart from the VM's.
    pub fn record(&mut self, view: &ClusterView, now: f64, keep_seconds: f64) {
        self.vms.retain(|uuid, _| view.vms.contains_key(uuid));
        for (uuid, facts) in view.vms.iter() {
            let series = match self.vms.get_mut(uuid) {
                Some(s) => s,
                None => self.vms.entry(uuid.to_string()).or_default(),
            };
            if series.host != facts.host {
                series.samples.clear();
                series.host = facts.host.clone();
            }
            if facts.vcpus.is_some() {
                series.vcpus = facts.vcpus;
            }
            let host_steal = || {
                let h = view.hosts.get(facts.host.as_deref()?)?;
                ((h.observed_at - facts.observed_at).abs() <= keep_seconds)
                    .then_some(h.steal)
                    .flatten()
            };
            if let (Some(load5), Some(steal)) = (facts.load5, facts.steal.or_else(host_steal)) {
                let newer = series
                    .samples
                    .back()
                    .is_none_or(|s| facts.observed_at > s.at);
                if newer && load5.is_finite() && steal.is_finite() {
                    series.samples.push_back(Sample {
                        at: facts.observed_at,
                        load5,
                        steal,
                    });
                }
            }
            while series
                .samples
                .front()
                .is_some_and(|s| s.at < now - keep_seconds)
            {
                series.samples.pop_front();
            }
        }
    }
}

/// Candidates as of the last cycle: VM uuid -> unix seconds it became one. Small: the
/// executor may store it so that hysteresis survives a restart.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct DetectState {
    pub candidates: BTreeMap<String, f64>,
}

/// A VM that suffers steal under load: what the planner works on.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct Candidate {
    pub vm: String,
    pub host: Option<String>,
    pub vcpus: f64,
    /// Means over the window.
    pub load_per_vcpu: f64,
    pub steal: f64,
    pub severity: f64,
    /// Unix seconds it became a candidate.
    pub since: f64,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct Detection {
    /// Worst first (severity descending, then uuid for a stable order).
    pub candidates: Vec<Candidate>,
    pub steal_only: Vec<StealReport>,
    /// To pass back as `previous` next cycle.
    pub state: DetectState,
}

/// Means of load per vCPU and steal over `[now - window, now]`, if there are enough samples.
fn window_means(series: &Series, cfg: &RebalanceSettings, now: f64) -> Option<(f64, f64, f64)> {
    let vcpus = series.vcpus.filter(|v| *v > 0.0)?;
    let from = now - cfg.window_seconds;
    let (mut n, mut load, mut steal) = (0usize, 0.0, 0.0);
    for s in series.samples.iter().rev() {
        if s.at < from {
            break;
        }
        if s.at > now {
            continue;
        }
        n += 1;
        load += s.load5;
        steal += s.steal;
    }
    (n >= cfg.min_samples.max(1)).then(|| (vcpus, load / n as f64 / vcpus, steal / n as f64))
}

/// Find the candidates of this cycle.
pub fn detect(
    history: &History,
    previous: &DetectState,
    cfg: &RebalanceSettings,
    now: f64,
) -> Detection {
    let mut out = Detection::default();
    for (uuid, series) in &history.vms {
        let Some((vcpus, load, steal)) = window_means(series, cfg, now) else {
            continue;
        };
        let was = previous.candidates.get(uuid).copied();
        let is_candidate = match was {
            Some(_) => load >= cfg.load_exit && steal >= cfg.steal_exit,
            None => load >= cfg.load_enter && steal >= cfg.steal_enter,
        };
        if is_candidate {
            let since = was.unwrap_or(now);
            out.state.candidates.insert(uuid.clone(), since);
            out.candidates.push(Candidate {
                vm: uuid.clone(),
                host: series.host.clone(),
                vcpus,
                load_per_vcpu: load,
                steal,
                severity: steal * load,
                since,
            });
        } else if steal >= cfg.steal_enter {
            out.steal_only.push(StealReport {
                vm: uuid.clone(),
                host: series.host.clone(),
                steal,
                load_per_vcpu: load,
            });
        }
    }
    out.candidates.sort_by(|a, b| {
        b.severity
            .total_cmp(&a.severity)
            .then_with(|| a.vm.cmp(&b.vm))
    });
    out.steal_only
        .sort_by(|a, b| b.steal.total_cmp(&a.steal).then_with(|| a.vm.cmp(&b.vm)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(host: &str, samples: &[(f64, f64, f64)]) -> Series {
        Series {
            host: Some(host.into()),
            vcpus: Some(4.0),
            samples: samples
                .iter()
                .map(|&(at, load5, steal)| Sample { at, load5, steal })
                .collect(),
        }
    }

    fn history(entries: &[(&str, Series)]) -> History {
        History {
            vms: entries
                .iter()
                .map(|(k, s)| (k.to_string(), s.clone()))
                .collect(),
        }
    }

    fn cfg() -> RebalanceSettings {
        RebalanceSettings {
            window_seconds: 600.0,
            min_samples: 3,
            load_enter: 0.7,
            load_exit: 0.5,
            steal_enter: 0.10,
            steal_exit: 0.05,
            ..Default::default()
        }
    }

    /// Three samples at `now - 400, -200, 0` with this load per vCPU (4 vCPUs) and steal.
    fn flat(load_per_vcpu: f64, steal: f64, now: f64) -> Vec<(f64, f64, f64)> {
        [400.0, 200.0, 0.0]
            .iter()
            .map(|d| (now - d, load_per_vcpu * 4.0, steal))
            .collect()
    }

    #[test]
    fn busy_and_stolen_enters_and_ranks_by_severity() {
        let now = 10_000.0;
        let h = history(&[
            ("a", series("h1", &flat(0.8, 0.12, now))),
            ("b", series("h1", &flat(1.5, 0.30, now))),
            ("c", series("h2", &flat(0.2, 0.01, now))),
        ]);
        let d = detect(&h, &DetectState::default(), &cfg(), now);
        let ids: Vec<&str> = d.candidates.iter().map(|c| c.vm.as_str()).collect();
        assert_eq!(ids, ["b", "a"]);
        assert!((d.candidates[0].severity - 0.45).abs() < 1e-9);
        assert_eq!(d.state.candidates.get("a"), Some(&now));
    }

    #[test]
    fn hysteresis_keeps_a_candidate_until_below_exit() {
        let now = 10_000.0;
        // Between the exit and enter thresholds.
        let h = history(&[("a", series("h1", &flat(0.6, 0.08, now)))]);
        let fresh = detect(&h, &DetectState::default(), &cfg(), now);
        assert!(fresh.candidates.is_empty(), "not busy enough to enter");
        let mut prev = DetectState::default();
        prev.candidates.insert("a".into(), 5_000.0);
        let kept = detect(&h, &prev, &cfg(), now);
        assert_eq!(kept.candidates.len(), 1, "stays until below exit");
        assert_eq!(kept.candidates[0].since, 5_000.0, "keeps when it entered");
        // Load below exit: leaves.
        let h = history(&[("a", series("h1", &flat(0.45, 0.08, now)))]);
        assert!(detect(&h, &prev, &cfg(), now).candidates.is_empty());
        // Steal below exit: leaves.
        let h = history(&[("a", series("h1", &flat(0.9, 0.04, now)))]);
        let gone = detect(&h, &prev, &cfg(), now);
        assert!(gone.candidates.is_empty());
        assert!(gone.state.candidates.is_empty());
    }

    #[test]
    fn steal_without_load_is_reported_not_a_candidate() {
        let now = 10_000.0;
        let h = history(&[("idle", series("h1", &flat(0.1, 0.40, now)))]);
        let d = detect(&h, &DetectState::default(), &cfg(), now);
        assert!(d.candidates.is_empty());
        assert_eq!(d.steal_only.len(), 1);
        assert_eq!(d.steal_only[0].vm, "idle");
        assert!((d.steal_only[0].steal - 0.40).abs() < 1e-9);
    }

    #[test]
    fn a_spike_is_not_sustained() {
        let now = 10_000.0;
        // One hot sample among calm ones: the window's mean stays low.
        let h = history(&[(
            "a",
            series(
                "h1",
                &[
                    (now - 400.0, 0.4, 0.0),
                    (now - 200.0, 0.4, 0.0),
                    (now, 4.0, 0.5),
                ],
            ),
        )]);
        assert!(detect(&h, &DetectState::default(), &cfg(), now)
            .candidates
            .is_empty());
        // Too few samples in the window (older ones fall outside it).
        let h = history(&[(
            "a",
            series("h1", &[(now - 5_000.0, 4.0, 0.3), (now, 4.0, 0.3)]),
        )]);
        assert!(detect(&h, &DetectState::default(), &cfg(), now)
            .candidates
            .is_empty());
    }

    #[test]
    fn record_takes_each_sample_once_and_restarts_after_a_move() {
        use crate::model::VmFacts;
        let mut view = ClusterView::default();
        let facts = |host: &str, at: f64| VmFacts {
            host: Some(host.into()),
            vcpus: Some(2.0),
            load5: Some(1.8),
            steal: Some(0.2),
            observed_at: at,
            ..Default::default()
        };
        view.vms.insert("a".into(), facts("h1", 100.0));
        let mut h = History::default();
        h.record(&view, 100.0, 3600.0);
        h.record(&view, 160.0, 3600.0);
        assert_eq!(h.vms["a"].samples.len(), 1, "same observed_at twice");
        view.vms.insert("a".into(), facts("h1", 200.0));
        h.record(&view, 200.0, 3600.0);
        assert_eq!(h.vms["a"].samples.len(), 2);
        view.vms.insert("a".into(), facts("h2", 300.0));
        h.record(&view, 300.0, 3600.0);
        assert_eq!(
            h.vms["a"].samples.len(),
            1,
            "a new host starts a new series"
        );
        h.record(&view, 300.0 + 7200.0, 3600.0);
        assert!(h.vms["a"].samples.is_empty(), "old samples are forgotten");
        view.vms.clear();
        h.record(&view, 10_000.0, 3600.0);
        assert!(h.vms.is_empty());
    }

    #[test]
    fn a_vm_without_its_own_steal_takes_its_hosts() {
        use crate::model::{HostFacts, VmFacts};
        let mut view = ClusterView::default();
        view.hosts.insert(
            "h1".into(),
            HostFacts {
                steal: Some(0.25),
                observed_at: 100.0,
                ..Default::default()
            },
        );
        view.vms.insert(
            "a".into(),
            VmFacts {
                host: Some("h1".into()),
                vcpus: Some(2.0),
                load5: Some(1.8),
                observed_at: 110.0,
                ..Default::default()
            },
        );
        let mut h = History::default();
        h.record(&view, 110.0, 600.0);
        assert_eq!(h.vms["a"].samples[0].steal, 0.25);
        // A host sample far older than the VM's is not the VM's steal.
        view.hosts.get_mut("h1").unwrap().observed_at = -10_000.0;
        view.vms.get_mut("a").unwrap().observed_at = 200.0;
        h.record(&view, 200.0, 600.0);
        assert_eq!(h.vms["a"].samples.len(), 1);
    }
}
