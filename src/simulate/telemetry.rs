//! What steward learns of the twin, as it would from Prometheus (PURE).
//!
//! Nothing of the generator (curves, base, peak, spread, noise) reaches steward: it sees
//! - per-VM load and steal as Prometheus serves them: each scrape (every
//!   `scrape_interval_seconds`) holds the average over the `rate_window_seconds` before it;
//!   steward reads the latest scrape at least `lag_seconds` old; a share `gap_share` of
//!   scrapes is lost (steward then reads an older one, or none);
//! - hour-of-week role profiles built by the service's own rollup (`telemetry::rollup`, as
//!   the Prometheus adapter feeds it: the p95 of each VM's load within each hour, over every
//!   VM of the role) from `warmup_weeks` of history before the run and what the run adds,
//!   recomputed every `rollup_every_hours`. A role whose VMs boot mid-run has no history; a
//!   VM without a role (`roleless_share`) adds to no profile; a VM adds from its boot until
//!   it is deleted (a series has no value outside a VM's life).
//!
//! Host-steal profiles are not learned: the steal a host showed under another placement says
//! little of the one being simulated, so steward reads host steal only as it happens.

use std::collections::HashMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::model::{WeeklyProfile, WeeklyProfiles};
use crate::telemetry::rollup::weekly_p95;

use super::workload::Rng;

/// The `[telemetry]` section of a scenario.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TelemetrySpec {
    /// Weeks of history Prometheus holds before the run starts (0: none).
    pub warmup_weeks: u32,
    /// Weeks the rollup reads back (the service's `[prometheus] history_weeks`).
    pub history_weeks: u32,
    pub scrape_interval_seconds: f64,
    pub rate_window_seconds: f64,
    pub lag_seconds: f64,
    /// Share of scrapes lost (0..1).
    pub gap_share: f64,
    /// How often the profiles are recomputed (the service's `rollup_interval_hours`).
    pub rollup_every_hours: f64,
}

impl Default for TelemetrySpec {
    fn default() -> Self {
        TelemetrySpec {
            warmup_weeks: 2,
            history_weeks: 4,
            scrape_interval_seconds: 30.0,
            rate_window_seconds: 300.0,
            lag_seconds: 60.0,
            gap_share: 0.02,
            rollup_every_hours: 6.0,
        }
    }
}

impl TelemetrySpec {
    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        for (k, v) in [
            ("scrape_interval_seconds", self.scrape_interval_seconds),
            ("rate_window_seconds", self.rate_window_seconds),
            ("rollup_every_hours", self.rollup_every_hours),
        ] {
            if !(v.is_finite() && v > 0.0) {
                p.push(format!("telemetry.{k}: must be a positive number, got {v}"));
            }
        }
        if !(self.lag_seconds.is_finite() && self.lag_seconds >= 0.0) {
            p.push(format!(
                "telemetry.lag_seconds: must be a number >= 0, got {}",
                self.lag_seconds
            ));
        }
        if !(0.0..1.0).contains(&self.gap_share) {
            p.push(format!(
                "telemetry.gap_share: must be in [0, 1), got {}",
                self.gap_share
            ));
        }
        if self.warmup_weeks > 8 || !(1..=8).contains(&self.history_weeks) {
            p.push(format!(
                "telemetry: warmup_weeks must be in 0..=8 and history_weeks in 1..=8, got {} and {}",
                self.warmup_weeks, self.history_weeks
            ));
        }
        p
    }
}

/// A per-step series of one subject: `value(j)` for step `j` (negative: before the run).
/// Steps a subject did not exist in are `None`.
pub trait Series {
    fn value(&self, j: i64) -> Option<f64>;
}

impl<F: Fn(i64) -> Option<f64>> Series for F {
    fn value(&self, j: i64) -> Option<f64> {
        self(j)
    }
}

/// The clock of the twin: step `j` covers `[start + j * step, start + (j + 1) * step)`.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    pub start: f64,
    pub step: f64,
}

impl Clock {
    fn step_of(&self, t: f64) -> i64 {
        ((t - self.start) / self.step).floor() as i64
    }
}

/// The average of a series over `[a, b)`; None if the subject did not exist all along.
pub fn window_average(s: &impl Series, clock: Clock, a: f64, b: f64) -> Option<f64> {
    let mut sum = 0.0;
    for j in clock.step_of(a)..=clock.step_of(b - 1e-6) {
        let lo = (clock.start + j as f64 * clock.step).max(a);
        let hi = (clock.start + (j + 1) as f64 * clock.step).min(b);
        if hi > lo {
            sum += s.value(j)? * (hi - lo);
        }
    }
    Some(sum / (b - a))
}

/// The reading steward has at `t` of a subject's series (`key` draws its lost scrapes):
/// (when it was scraped, the value), or None.
pub fn observe(
    spec: &TelemetrySpec,
    clock: Clock,
    seed: u64,
    key: u64,
    s: &impl Series,
    t: f64,
) -> Option<(f64, f64)> {
    let interval = spec.scrape_interval_seconds;
    let latest = ((t - spec.lag_seconds) / interval).floor();
    // Look back at most a few scrapes: past that the reading is stale anyway.
    for back in 0..8 {
        let n = latest - f64::from(back);
        let at = n * interval;
        if Rng::keyed(seed, 0x005C_4A9E ^ key, n as i64 as u64).uniform() < spec.gap_share {
            continue;
        }
        return window_average(s, clock, at - spec.rate_window_seconds, at).map(|v| (at, v));
    }
    None
}

/// The role profiles steward holds over time: `(from when, profiles)`, oldest first.
pub struct ProfileTimeline {
    pub at: Vec<(f64, Arc<WeeklyProfiles>)>,
}

impl ProfileTimeline {
    /// The profiles in force at `t` (empty before the first rollup).
    pub fn at(&self, t: f64) -> Arc<WeeklyProfiles> {
        self.at
            .iter()
            .rev()
            .find(|(from, _)| *from <= t)
            .map(|(_, p)| Arc::clone(p))
            .unwrap_or_default()
    }
}

/// A VM's place in the profiles: its role as steward knows it (None: no role) and its series.
pub struct Subject<'a, S: Series> {
    pub role: Option<&'a str>,
    pub series: S,
}

/// The hourly p95 of one VM's readings, at 5-minute points within each hour, as the adapter's
/// `quantile_over_time(0.95, (...)[1h:5m])` gives it; `(mid-hour time, value)`.
fn hourly_p95(
    spec: &TelemetrySpec,
    clock: Clock,
    seed: u64,
    key: u64,
    s: &impl Series,
    hour_start: f64,
) -> Option<(f64, f64)> {
    let mut points: Vec<f64> = (1..=12)
        .filter_map(|i| {
            let t = hour_start + f64::from(i) * 300.0 + spec.lag_seconds;
            observe(spec, clock, seed, key, s, t).map(|(_, v)| v)
        })
        .collect();
    points.sort_by(f64::total_cmp);
    crate::model::nearest_rank(&points, 0.95).map(|v| (hour_start + 1800.0, v))
}

/// Every rollup of the run: the warm-up's history first, then every `rollup_every_hours`.
pub fn learn<S: Series>(
    spec: &TelemetrySpec,
    clock: Clock,
    seed: u64,
    subjects: &[Subject<S>],
    run_seconds: f64,
) -> ProfileTimeline {
    let first_hour = clock.start - f64::from(spec.warmup_weeks) * 7.0 * 86400.0;
    let hours = ((clock.start + run_seconds - first_hour) / 3600.0).floor() as i64;
    // Hourly p95 per role, hour by hour, then rolled up at each rollup time.
    let mut samples: Vec<(f64, &str, f64)> = Vec::new();
    let mut timeline = Vec::new();
    let every = spec.rollup_every_hours * 3600.0;
    let mut next_rollup = clock.start;
    let window = f64::from(spec.history_weeks) * 7.0 * 86400.0;
    for h in 0..=hours {
        let hour_start = first_hour + h as f64 * 3600.0;
        while next_rollup <= hour_start && next_rollup < clock.start + run_seconds {
            let mut per_role: HashMap<&str, Vec<(f64, f64)>> = HashMap::new();
            for &(t, role, v) in samples.iter().filter(|s| s.0 >= next_rollup - window) {
                per_role.entry(role).or_default().push((t, v));
            }
            let weeks = spec.history_weeks;
            let role_demand: HashMap<String, WeeklyProfile> = per_role
                .into_iter()
                .map(|(r, s)| (r.to_string(), weekly_p95(&s, weeks, next_rollup)))
                .collect();
            timeline.push((
                next_rollup,
                Arc::new(WeeklyProfiles {
                    host_steal: HashMap::new(),
                    role_demand,
                }),
            ));
            next_rollup += every;
        }
        if hour_start + 3600.0 + spec.lag_seconds > clock.start + run_seconds {
            break;
        }
        for (i, sub) in subjects.iter().enumerate() {
            let Some(role) = sub.role else { continue };
            if let Some((t, v)) = hourly_p95(spec, clock, seed, i as u64, &sub.series, hour_start) {
                samples.push((t, role, v));
            }
        }
    }
    ProfileTimeline { at: timeline }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLOCK: Clock = Clock {
        start: 1_795_392_000.0,
        step: 300.0,
    };

    #[test]
    fn a_reading_is_the_rate_window_before_a_lagged_scrape() {
        let spec = TelemetrySpec {
            gap_share: 0.0,
            ..Default::default()
        };
        // 1.0 in step 0, 3.0 in step 1, nothing before the run.
        let s = |j: i64| match j {
            0 => Some(1.0),
            1 => Some(3.0),
            j if j > 1 => Some(0.0),
            _ => None,
        };
        let t = CLOCK.start + 420.0; // latest scrape at +360 (lag 60): window [60, 360)
        let (at, v) = observe(&spec, CLOCK, 1, 1, &s, t).unwrap();
        assert_eq!(at, CLOCK.start + 360.0);
        assert!(
            (v - (240.0 * 1.0 + 60.0 * 3.0) / 300.0).abs() < 1e-12,
            "{v}"
        );
        // before the VM existed long enough: no reading
        assert_eq!(observe(&spec, CLOCK, 1, 1, &s, CLOCK.start + 200.0), None);
    }

    #[test]
    fn lost_scrapes_fall_back_to_older_ones() {
        let spec = TelemetrySpec {
            gap_share: 0.5,
            ..Default::default()
        };
        let s = |_: i64| Some(1.0);
        let mut older = 0;
        for k in 0..200 {
            let t = CLOCK.start + 3600.0 + f64::from(k) * 30.0;
            // All 8 scrapes looked back at lost (1 in 256): no reading.
            let Some((at, _)) = observe(&spec, CLOCK, 9, 3, &s, t) else {
                continue;
            };
            if at < ((t - 60.0) / 30.0).floor() * 30.0 {
                older += 1;
            }
        }
        assert!((60..140).contains(&older), "{older} of 200 lost");
    }

    #[test]
    fn profiles_come_from_history_and_a_role_without_history_has_none() {
        let spec = TelemetrySpec {
            warmup_weeks: 1,
            gap_share: 0.0,
            ..Default::default()
        };
        // "web" busy (2.0) from 20:00 to 21:00 every day, else 0.5; "new" exists from step 0.
        let web = |j: i64| {
            let hour = (CLOCK.start + j as f64 * CLOCK.step) / 3600.0;
            Some(
                if hour.rem_euclid(24.0) >= 20.0 && hour.rem_euclid(24.0) < 21.0 {
                    2.0
                } else {
                    0.5
                },
            )
        };
        let fresh = |j: i64| (j >= 0).then_some(1.0);
        type Boxed = Box<dyn Fn(i64) -> Option<f64>>;
        let subjects: Vec<Subject<Boxed>> = vec![
            Subject {
                role: Some("web"),
                series: Box::new(web),
            },
            Subject {
                role: Some("new"),
                series: Box::new(fresh),
            },
            Subject {
                role: None,
                series: Box::new(web),
            },
        ];
        let tl = learn(&spec, CLOCK, 1, &subjects, 12.0 * 3600.0);
        let first = tl.at(CLOCK.start);
        let p = &first.role_demand["web"];
        assert_eq!(p.at(20), Some(2.0), "Monday 20:00");
        assert_eq!(p.at(24 + 3), Some(0.5));
        assert!(!first.role_demand.contains_key("new"), "no history yet");
        assert_eq!(
            first.role_demand.len(),
            1,
            "a VM without a role adds nothing"
        );
        let later = tl.at(CLOCK.start + 7.0 * 3600.0);
        assert!(later.role_demand.contains_key("new"), "learned in the run");
    }
}
