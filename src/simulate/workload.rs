//! The twin's workload: daily CPU demand curves per role, per-VM intensity, and noise drawn
//! from a counter-based RNG, so every strategy sees the very same demand at every step.

use serde::{Deserialize, Serialize};

/// The shape of a role's day (UTC hours).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Curve {
    /// Peaks at 09:00, 12:00 and 20:00.
    Web,
    /// Busy at night, centred on 02:00.
    Batch,
    /// The same all day.
    Flat,
}

/// A bump of height 1 at `centre` hours, `width` hours wide, on a 24-hour circle.
fn bump(hour: f64, centre: f64, width: f64) -> f64 {
    let d = (hour - centre).rem_euclid(24.0);
    let d = d.min(24.0 - d);
    (-(d * d) / (2.0 * width * width)).exp()
}

impl Curve {
    /// 0..1: how busy the role is at this hour of the day relative to its peak.
    pub fn shape(self, hour_of_day: f64) -> f64 {
        match self {
            Curve::Web => bump(hour_of_day, 9.0, 1.0)
                .max(bump(hour_of_day, 12.0, 1.0))
                .max(bump(hour_of_day, 20.0, 1.5)),
            Curve::Batch => bump(hour_of_day, 2.0, 2.5),
            Curve::Flat => 0.0,
        }
    }
}

/// SplitMix64: a small, well-mixed generator (no dependency needed for a reproducible twin).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Standard normal (Box-Muller).
    pub fn normal(&mut self) -> f64 {
        let u1 = self.uniform().max(f64::MIN_POSITIVE);
        let u2 = self.uniform();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }

    /// A generator for one (stream, index) pair: the same numbers whatever else was drawn.
    pub fn keyed(seed: u64, stream: u64, index: u64) -> Rng {
        let mut r = Rng::new(seed ^ stream.wrapping_mul(0xA24B_AED4_963E_E407));
        r.0 ^= index.wrapping_mul(0x9FB2_1C65_1E98_DF25);
        r.next_u64();
        r
    }

    /// Fisher-Yates.
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = (self.next_u64() % (i as u64 + 1)) as usize;
            items.swap(i, j);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn web_peaks_at_nine_noon_and_eight_pm() {
        for h in [9.0, 12.0, 20.0] {
            assert!((Curve::Web.shape(h) - 1.0).abs() < 1e-9, "{h}");
        }
        assert!(Curve::Web.shape(4.0) < 0.01);
        assert!(Curve::Batch.shape(2.0) > 0.99);
        assert!(Curve::Batch.shape(14.0) < 0.01);
    }

    #[test]
    fn keyed_streams_are_reproducible_and_distinct() {
        let a: Vec<u64> = (0..3).map(|_| Rng::keyed(7, 1, 2).next_u64()).collect();
        assert!(a.windows(2).all(|w| w[0] == w[1]));
        assert_ne!(
            Rng::keyed(7, 1, 2).next_u64(),
            Rng::keyed(7, 1, 3).next_u64()
        );
        assert_ne!(
            Rng::keyed(7, 1, 2).next_u64(),
            Rng::keyed(8, 1, 2).next_u64()
        );
        let mut r = Rng::new(1);
        let mean: f64 = (0..10_000).map(|_| r.normal()).sum::<f64>() / 10_000.0;
        assert!(mean.abs() < 0.05);
    }
}
