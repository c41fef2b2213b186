//! Hour-of-week rollups: time series in, one p95 per hour of the week out. Pure; the
//! Prometheus adapter feeds it and the store keeps what it returns.

use crate::model::{hour_of_week, nearest_rank, WeeklyProfile, HOURS_PER_WEEK};

/// The nearest-rank p95 of the samples falling in each hour of the week. Hours without a
/// sample are NaN (no data, which is not zero). Non-finite values are ignored.
pub fn weekly_p95(samples: &[(f64, f64)], weeks: u32, computed_at: f64) -> WeeklyProfile {
    let mut buckets: Vec<Vec<f64>> = vec![Vec::new(); HOURS_PER_WEEK];
    for &(t, v) in samples {
        if t.is_finite() && v.is_finite() {
            buckets[hour_of_week(t)].push(v);
        }
    }
    let values = buckets
        .into_iter()
        .map(|mut b| {
            b.sort_by(f64::total_cmp);
            nearest_rank(&b, 0.95).unwrap_or(f64::NAN)
        })
        .collect();
    WeeklyProfile {
        values,
        weeks,
        computed_at,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MONDAY_0H: f64 = 1_795_392_000.0; // 2026-11-23 00:00 UTC, a Monday

    #[test]
    fn the_reference_monday_is_hour_zero() {
        assert_eq!(hour_of_week(MONDAY_0H), 0);
        assert_eq!(hour_of_week(MONDAY_0H + 20.0 * 3600.0 + 59.0), 20);
        assert_eq!(hour_of_week(MONDAY_0H - 1.0), 167, "Sunday 23:59");
        assert_eq!(hour_of_week(0.0), 72, "the epoch was a Thursday");
    }

    #[test]
    fn a_daily_peak_shows_in_every_day_of_the_profile() {
        let mut samples = Vec::new();
        for minute in 0..(28 * 24 * 60) {
            let t = MONDAY_0H + f64::from(minute) * 60.0;
            let hour = (minute / 60) % 24;
            samples.push((t, if hour == 20 { 0.30 } else { 0.02 }));
        }
        let p = weekly_p95(&samples, 4, 0.0);
        for day in 0..7 {
            assert_eq!(p.at(day * 24 + 20), Some(0.30));
            assert_eq!(p.at(day * 24 + 19), Some(0.02));
        }
    }

    #[test]
    fn p95_ignores_a_rare_spike_and_hours_without_data_are_unknown() {
        let mut samples: Vec<(f64, f64)> = (0..100)
            .map(|i| (MONDAY_0H + f64::from(i) * 30.0, f64::from(i) / 100.0))
            .collect();
        samples.push((MONDAY_0H + 1.0, f64::NAN));
        let p = weekly_p95(&samples, 1, 0.0);
        assert_eq!(p.at(0), Some(0.94), "rank 95 of 0.00..0.99");
        assert_eq!(p.at(1), None);
    }
}
