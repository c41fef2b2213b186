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

/// Whether unix time `t` falls on a Saturday or a Sunday (UTC).
pub fn is_weekend(t: f64) -> bool {
    // 1970-01-01 was a Thursday: day 0 is weekday 3 counting from Monday = 0.
    let day = (t / 86400.0).floor() as i64;
    (day.wrapping_add(3)).rem_euclid(7) >= 5
}

// The twin's random streams (`Rng::keyed`'s `stream`), each a different thing to draw:
// - 1 and 4, indexed by VM: its intensity and whether it boots without a role;
// - 2 + vm, indexed by step (or knot) n >= 0: the VM's own noise; the warm-up's (n < 0) is
//   the same stream under `seed ^ 0x3A2F`, indexed by |n| (stream 4 is also VM 2's noise:
//   kept as it is, the shipped scenarios' figures depend on it);
// - 0x005C_4A9E ^ key: the lost scrapes (`telemetry`), key a VM or 1,000,000 + a host;
// - `twin`'s `LIFETIME_STREAM` (0x4C49_4645 << 32) and `ARRIVAL_STREAM` (0x4152_5256 << 32,
//   + role): VMs' lifetimes and roles' arrivals;
// - `ROLE_NOISE`, `BURST_ROLE` and `BURST_VM` (0x7A, 0x7B and 0x7C << 40, + role or VM):
//   apart from all of these.

/// A role's common noise (its wave), indexed by knot.
const ROLE_NOISE: u64 = 0x7A00_0000_0000;
/// A role's bursts, indexed by burst window.
const BURST_ROLE: u64 = 0x7B00_0000_0000;
/// A VM's own bursts, indexed by burst window.
const BURST_VM: u64 = 0x7C00_0000_0000;

/// How a role's noise moves: how long a value lasts and how much of it the role shares.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NoiseShape {
    /// Steps between knots (`noise_minutes / step_minutes`; 1: a fresh value every step).
    pub knot_steps: f64,
    /// Share of the variance common to all VMs of the role (0..1).
    pub correlation: f64,
}

/// The VM's own standard normal draw at knot `n` (negative: before the run).
fn own_draw(seed: u64, vm: usize, n: i64) -> f64 {
    // The run's knots and the warm-up's draw from separate streams.
    if n >= 0 {
        Rng::keyed(seed, 2 + vm as u64, n as u64).normal()
    } else {
        Rng::keyed(seed ^ 0x3A2F, 2 + vm as u64, n.unsigned_abs()).normal()
    }
}

/// The noise at knot `n`: `sqrt(c)` of the role's wave plus `sqrt(1 - c)` of the VM's own,
/// so its variance stays 1 and two VMs of the role correlate by `c`.
fn knot(seed: u64, role: usize, vm: usize, n: i64, c: f64) -> f64 {
    let own = own_draw(seed, vm, n);
    if c <= 0.0 {
        return own;
    }
    let wave = Rng::keyed(seed, ROLE_NOISE + role as u64, n as u64).normal();
    c.sqrt() * wave + (1.0 - c).sqrt() * own
}

/// Standard normal noise of VM `vm` (of role `role`) at step `j`, negative steps included:
/// value noise, keyed draws at knots every `knot_steps` steps, linearly interpolated between
/// them and rescaled so every step's variance is 1 (a plain interpolation dips to half of
/// it midway). A pure function of its arguments, at most four keyed draws.
pub fn noise(seed: u64, role: usize, vm: usize, j: i64, shape: NoiseShape) -> f64 {
    let x = j as f64 / shape.knot_steps;
    let n = x.floor();
    let f = x - n;
    let n = n as i64;
    let a = knot(seed, role, vm, n, shape.correlation);
    if f <= 0.0 {
        return a;
    }
    let b = knot(seed, role, vm, n.saturating_add(1), shape.correlation);
    ((1.0 - f) * a + f * b) / ((1.0 - f) * (1.0 - f) + f * f).sqrt()
}

/// When a role's VMs burst: how often, for how long, and how much they burst together.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bursts {
    pub per_day: f64,
    pub minutes: f64,
    /// Share of burst windows in which the role's VMs follow the role's draw, not their own:
    /// the correlation of two VMs' being in a burst.
    pub correlation: f64,
}

/// When a burst starts in window `w` (`[w, w + 1) x minutes`), minutes since the start.
fn burst_start(seed: u64, role: usize, vm: usize, w: i64, b: &Bursts) -> Option<f64> {
    let own = || Rng::keyed(seed, BURST_VM + vm as u64, w as u64);
    let mut r = if b.correlation > 0.0 {
        let mut together = Rng::keyed(seed, BURST_ROLE + role as u64, w as u64);
        if together.uniform() < b.correlation {
            together
        } else {
            own()
        }
    } else {
        own()
    };
    // One burst at most per window, of probability rate x window: `per_day` a day.
    let p = b.per_day * b.minutes / 1440.0;
    (r.uniform() < p).then(|| (w as f64 + r.uniform()) * b.minutes)
}

/// Whether VM `vm` of role `role` is in a burst `minute` minutes after the start (negative:
/// before it). Bursts last `b.minutes`; each starts at a uniform time in its window of that
/// length, so one from the window before can still run: two windows, at most four draws.
pub fn bursting(seed: u64, role: usize, vm: usize, minute: f64, b: &Bursts) -> bool {
    if !(b.per_day > 0.0 && b.minutes > 0.0) {
        return false;
    }
    let w = (minute / b.minutes).floor() as i64;
    [w.saturating_sub(1), w].into_iter().any(|w| {
        burst_start(seed, role, vm, w, b).is_some_and(|s| s <= minute && minute < s + b.minutes)
    })
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
