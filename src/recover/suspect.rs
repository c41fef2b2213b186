//! Which hypervisors look dead, and why. PURE: observations and `now` in, findings out.
//!
//! Two witnesses are mandatory and must agree: Nova's compute service is down (read as Nova's
//! own `is_up` reads it: the last heartbeat, `updated_at`, is more than `service_down_time`
//! seconds away from now, or the service is forced down; and Nova's answer says `down` too)
//! AND the host's telemetry has stopped (its newest sample is older than
//! `telemetry_max_age_seconds`). Optional witnesses (a Consul node check, the BMC's power
//! state, a Kubernetes node's `Ready` condition) then confirm or contradict: one that says the
//! host is alive vetoes the suspicion, and `min_confirmations` of them must say it is dead.
//! A host is never suspected on one witness alone, nor on a witness that could not be read.

use serde::{Deserialize, Serialize};

/// What one optional witness says about a host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// The witness sees the host dead (serfHealth critical, power off, node NotReady).
    Dead,
    /// The witness sees the host alive: the suspicion is vetoed.
    Alive,
    /// The witness could not tell (not reachable, no such node, power on but maybe hung).
    Unknown,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Dead => "dead",
            Verdict::Alive => "alive",
            Verdict::Unknown => "unknown",
        }
    }
}

/// Nova's compute service as `GET /os-services?binary=nova-compute` shows it.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct ServiceFacts {
    /// The service's id (a UUID from microversion 2.53 on): what `PUT /os-services/{id}` takes.
    pub id: String,
    pub host: String,
    /// `enabled` or `disabled`.
    pub status: String,
    /// Nova's own reading of the heartbeat: `up` or `down`.
    pub state: String,
    /// Unix seconds of the last heartbeat (`updated_at`), when Nova shows one.
    pub updated_at: Option<f64>,
    pub forced_down: bool,
    pub disabled_reason: Option<String>,
}

/// One optional witness's answer.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct WitnessReport {
    /// `consul`, `bmc` or `kubernetes`.
    pub witness: String,
    pub verdict: Verdict,
    /// What it answered, in words (the check's output, the power state, the condition).
    pub detail: String,
    /// Unix seconds the witness's fact dates from (when it was read, or the condition's
    /// last transition when the witness gives one).
    pub observed_at: f64,
}

/// Everything known about one compute host at `now`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct HostObservation {
    pub host: String,
    pub az: Option<String>,
    pub service: Option<ServiceFacts>,
    /// Unix seconds of the host's newest telemetry sample; `None` when it never sent one.
    pub telemetry_at: Option<f64>,
    pub witnesses: Vec<WitnessReport>,
}

/// The thresholds detection reads.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Thresholds {
    /// Nova's `[DEFAULT] service_down_time` (seconds): set it to what nova.conf says.
    pub service_down_time: f64,
    pub telemetry_max_age_seconds: f64,
    /// Optional witnesses that must say `dead` (0: the two mandatory ones suffice).
    pub min_confirmations: usize,
    /// Suspect a host whose service an operator disabled (maintenance)? Off by default.
    pub include_disabled: bool,
}

/// One piece of evidence and how old it is.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct Evidence {
    /// `nova_service`, `telemetry`, or an optional witness's name.
    pub witness: String,
    pub verdict: Verdict,
    pub detail: String,
    /// Seconds since the fact it rests on (the last heartbeat, the newest sample, the read).
    pub age_seconds: Option<f64>,
}

/// A host steward believes dead, with everything that says so.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct Suspicion {
    pub host: String,
    pub az: Option<String>,
    pub service_id: String,
    pub evidence: Vec<Evidence>,
    /// Seconds for which both mandatory witnesses have agreed the host is silent: the time
    /// since the later of its last heartbeat and its newest sample.
    pub silent_seconds: f64,
}

/// Detection's answer for one host.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(tag = "finding", rename_all = "snake_case")]
pub enum Finding {
    Suspected(Suspicion),
    /// Not suspected; `reason` says which witness keeps it off the list.
    Clear {
        host: String,
        reason: String,
        evidence: Vec<Evidence>,
    },
}

impl Finding {
    pub fn host(&self) -> &str {
        match self {
            Finding::Suspected(s) => &s.host,
            Finding::Clear { host, .. } => host,
        }
    }

    pub fn suspicion(&self) -> Option<&Suspicion> {
        match self {
            Finding::Suspected(s) => Some(s),
            Finding::Clear { .. } => None,
        }
    }

    /// Not suspected, but one of the two mandatory witnesses (Nova's heartbeat, steward's
    /// telemetry) already calls the host dead: on its way to a suspicion, or cut from half the
    /// control plane. Nothing is done to it; the partition guards count it, because the hosts
    /// of one partition do not fall silent to both witnesses in the same round (Nova's
    /// heartbeats are `report_interval` apart).
    pub fn half_dead(&self) -> bool {
        match self {
            Finding::Suspected(_) => false,
            Finding::Clear { evidence, .. } => {
                let dead = |w: &str| {
                    evidence
                        .iter()
                        .any(|e| e.witness == w && e.verdict == Verdict::Dead)
                };
                dead("nova_service") != dead("telemetry")
            }
        }
    }
}

/// Nova's `is_up` for the DB service group driver: the heartbeat is at most
/// `service_down_time` seconds away from now (either way: a clock ahead counts as up), and
/// the service is not forced down. `None` when Nova showed no heartbeat time.
pub fn nova_is_up(s: &ServiceFacts, service_down_time: f64, now: f64) -> Option<bool> {
    if s.forced_down {
        return Some(false);
    }
    s.updated_at.map(|at| (now - at).abs() <= service_down_time)
}

fn age(now: f64, at: f64) -> Option<f64> {
    (at.is_finite() && at > 0.0).then(|| (now - at).max(0.0))
}

/// The Nova witness: dead only when steward's reading of the heartbeat and Nova's own
/// `state` agree (a disagreement means the clocks or `service_down_time` differ: not dead).
fn nova_evidence(obs: &HostObservation, t: &Thresholds, now: f64) -> Evidence {
    let Some(s) = &obs.service else {
        return Evidence {
            witness: "nova_service".into(),
            verdict: Verdict::Unknown,
            detail: format!("Nova lists no nova-compute service on host {}", obs.host),
            age_seconds: None,
        };
    };
    let ours = nova_is_up(s, t.service_down_time, now);
    let nova_says_down = s.state == "down";
    let heartbeat = match s.updated_at.and_then(|at| age(now, at)) {
        Some(a) => format!("last heartbeat {a:.0} s ago"),
        None => "no heartbeat time shown".into(),
    };
    let forced = if s.forced_down { ", forced down" } else { "" };
    let (verdict, why) = match (ours, nova_says_down) {
        (Some(false), true) => (Verdict::Dead, "down"),
        (Some(true), false) => (Verdict::Alive, "up"),
        (None, true) => (Verdict::Dead, "down (Nova's reading; no heartbeat time)"),
        (None, false) => (Verdict::Alive, "up (Nova's reading; no heartbeat time)"),
        (Some(true), true) => (
            Verdict::Unknown,
            "down by Nova's reading but up by steward's: check that [recovery] \
             service_down_time matches nova.conf and that the clocks agree",
        ),
        (Some(false), false) => (
            Verdict::Unknown,
            "up by Nova's reading but down by steward's: check that [recovery] \
             service_down_time matches nova.conf and that the clocks agree",
        ),
    };
    Evidence {
        witness: "nova_service".into(),
        verdict,
        detail: format!(
            "nova-compute {} on {} is {why}: {heartbeat} (service_down_time {:.0} s){forced}",
            s.id, s.host, t.service_down_time
        ),
        age_seconds: s.updated_at.and_then(|at| age(now, at)),
    }
}

fn telemetry_evidence(obs: &HostObservation, t: &Thresholds, now: f64) -> Evidence {
    match obs.telemetry_at.and_then(|at| age(now, at)) {
        None => Evidence {
            witness: "telemetry".into(),
            verdict: Verdict::Unknown,
            detail: format!(
                "steward never received telemetry from {}, so it cannot tell that it stopped",
                obs.host
            ),
            age_seconds: None,
        },
        Some(a) if a > t.telemetry_max_age_seconds => Evidence {
            witness: "telemetry".into(),
            verdict: Verdict::Dead,
            detail: format!(
                "newest sample {a:.0} s old (stopped: older than {:.0} s)",
                t.telemetry_max_age_seconds
            ),
            age_seconds: Some(a),
        },
        Some(a) => Evidence {
            witness: "telemetry".into(),
            verdict: Verdict::Alive,
            detail: format!(
                "newest sample {a:.0} s old (fresh: within {:.0} s)",
                t.telemetry_max_age_seconds
            ),
            age_seconds: Some(a),
        },
    }
}

/// Assess one host.
pub fn assess(obs: &HostObservation, t: &Thresholds, now: f64) -> Finding {
    let mut evidence = vec![nova_evidence(obs, t, now), telemetry_evidence(obs, t, now)];
    evidence.extend(obs.witnesses.iter().map(|w| Evidence {
        witness: w.witness.clone(),
        verdict: w.verdict,
        detail: w.detail.clone(),
        age_seconds: age(now, w.observed_at),
    }));
    let clear = |reason: String, evidence: Vec<Evidence>| Finding::Clear {
        host: obs.host.clone(),
        reason,
        evidence,
    };
    let Some(service) = &obs.service else {
        return clear(evidence[0].detail.clone(), evidence);
    };
    if service.status == "disabled" && !service.forced_down && !t.include_disabled {
        return clear(
            format!(
                "an operator disabled nova-compute on {} ({}); set [recovery] include_disabled \
                 to recover disabled hosts too",
                obs.host,
                service
                    .disabled_reason
                    .as_deref()
                    .unwrap_or("no reason given")
            ),
            evidence,
        );
    }
    for e in &evidence[..2] {
        if e.verdict != Verdict::Dead {
            return clear(format!("{}: {}", e.witness, e.detail), evidence);
        }
    }
    if let Some(alive) = evidence[2..].iter().find(|e| e.verdict == Verdict::Alive) {
        return clear(
            format!(
                "witness {} sees the host alive ({}): the host may only have lost Nova's \
                 message bus or its telemetry path",
                alive.witness, alive.detail
            ),
            evidence,
        );
    }
    let confirmations = evidence[2..]
        .iter()
        .filter(|e| e.verdict == Verdict::Dead)
        .count();
    if confirmations < t.min_confirmations {
        return clear(
            format!(
                "{confirmations} optional witness(es) confirm, [recovery] min_confirmations \
                 asks for {}",
                t.min_confirmations
            ),
            evidence,
        );
    }
    let silent_seconds = evidence[0]
        .age_seconds
        .unwrap_or(f64::INFINITY)
        .min(evidence[1].age_seconds.unwrap_or(f64::INFINITY));
    Finding::Suspected(Suspicion {
        host: obs.host.clone(),
        az: obs.az.clone(),
        service_id: service.id.clone(),
        evidence,
        silent_seconds: if silent_seconds.is_finite() {
            silent_seconds
        } else {
            0.0
        },
    })
}

/// Assess every host, in host name order.
pub fn assess_all(observations: &[HostObservation], t: &Thresholds, now: f64) -> Vec<Finding> {
    let mut out: Vec<Finding> = observations.iter().map(|o| assess(o, t, now)).collect();
    out.sort_by(|a, b| a.host().cmp(b.host()));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: f64 = 1_800_000_000.0;

    fn t() -> Thresholds {
        Thresholds {
            service_down_time: 60.0,
            telemetry_max_age_seconds: 120.0,
            min_confirmations: 0,
            include_disabled: false,
        }
    }

    fn dead_host() -> HostObservation {
        HostObservation {
            host: "cmp-1".into(),
            az: Some("az1".into()),
            service: Some(ServiceFacts {
                id: "5b1c2f9e-0000-4000-8000-000000000001".into(),
                host: "cmp-1".into(),
                status: "enabled".into(),
                state: "down".into(),
                updated_at: Some(NOW - 300.0),
                forced_down: false,
                disabled_reason: None,
            }),
            telemetry_at: Some(NOW - 400.0),
            witnesses: Vec::new(),
        }
    }

    #[test]
    fn both_mandatory_witnesses_dead_is_a_suspicion_with_ages() {
        let f = assess(&dead_host(), &t(), NOW);
        let s = f.suspicion().expect("suspected");
        assert_eq!(s.silent_seconds, 300.0);
        assert_eq!(s.evidence[0].age_seconds, Some(300.0));
        assert_eq!(s.evidence[1].age_seconds, Some(400.0));
        assert!(
            s.evidence[0].detail.contains("300 s ago"),
            "{:?}",
            s.evidence
        );
    }

    #[test]
    fn one_mandatory_witness_alone_is_never_enough() {
        let mut fresh = dead_host();
        fresh.telemetry_at = Some(NOW - 10.0);
        assert!(assess(&fresh, &t(), NOW).suspicion().is_none());
        let mut never = dead_host();
        never.telemetry_at = None;
        assert!(assess(&never, &t(), NOW).suspicion().is_none());
        let mut up = dead_host();
        let s = up.service.as_mut().unwrap();
        s.updated_at = Some(NOW - 30.0);
        s.state = "up".into();
        assert!(assess(&up, &t(), NOW).suspicion().is_none());
    }

    #[test]
    fn heartbeat_read_as_nova_reads_it() {
        let mut s = dead_host().service.unwrap();
        // Exactly at service_down_time is still up (Nova: abs(elapsed) <= service_down_time).
        s.updated_at = Some(NOW - 60.0);
        assert_eq!(nova_is_up(&s, 60.0, NOW), Some(true));
        s.updated_at = Some(NOW - 60.5);
        assert_eq!(nova_is_up(&s, 60.0, NOW), Some(false));
        // A heartbeat from a clock ahead of ours counts, as in Nova, within the window.
        s.updated_at = Some(NOW + 30.0);
        assert_eq!(nova_is_up(&s, 60.0, NOW), Some(true));
        s.forced_down = true;
        assert_eq!(nova_is_up(&s, 60.0, NOW), Some(false));
    }

    #[test]
    fn steward_and_nova_disagreeing_on_the_heartbeat_is_not_dead() {
        let mut h = dead_host();
        // Nova says down, but by steward's clock and service_down_time the heartbeat is recent.
        h.service.as_mut().unwrap().updated_at = Some(NOW - 20.0);
        match assess(&h, &t(), NOW) {
            Finding::Clear { reason, .. } => {
                assert!(reason.contains("service_down_time"), "{reason}")
            }
            f => panic!("{f:?}"),
        }
    }

    #[test]
    fn an_alive_witness_vetoes_and_confirmations_are_counted() {
        let mut h = dead_host();
        h.witnesses.push(WitnessReport {
            witness: "consul".into(),
            verdict: Verdict::Alive,
            detail: "serfHealth passing".into(),
            observed_at: NOW - 1.0,
        });
        assert!(assess(&h, &t(), NOW).suspicion().is_none());
        h.witnesses[0].verdict = Verdict::Unknown;
        let strict = Thresholds {
            min_confirmations: 1,
            ..t()
        };
        assert!(assess(&h, &strict, NOW).suspicion().is_none());
        h.witnesses.push(WitnessReport {
            witness: "bmc".into(),
            verdict: Verdict::Dead,
            detail: "PowerState Off".into(),
            observed_at: NOW - 2.0,
        });
        let s = assess(&h, &strict, NOW);
        let s = s.suspicion().expect("confirmed by the BMC");
        assert_eq!(s.evidence.len(), 4);
        assert_eq!(s.evidence[3].age_seconds, Some(2.0));
    }

    #[test]
    fn a_disabled_service_is_an_operators_maintenance() {
        let mut h = dead_host();
        h.service.as_mut().unwrap().status = "disabled".into();
        assert!(assess(&h, &t(), NOW).suspicion().is_none());
        let all = Thresholds {
            include_disabled: true,
            ..t()
        };
        assert!(assess(&h, &all, NOW).suspicion().is_some());
    }
}
