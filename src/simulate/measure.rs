//! How the twin measures a step (PURE): steal under two models, unserved CPU and its
//! physical limit. Every figure here can be recomputed from the report's per-step data.
//!
//! - Fluid model: a host whose VMs want `D` cores and that has `C` cores gives every VM on
//!   it a steal of `1 - C / D` when `D > C`, else none.
//! - Max-min fair share (CFS-like): every vCPU thread is entitled to an equal share; a VM of
//!   `v` vCPUs wanting `d` cores gets `min(d, v * L)`, where the level `L` is the largest
//!   that keeps the sum within `C` (water-filling). A VM below its fair share loses nothing;
//!   its steal is `1 - got / d`.
//! - Unserved CPU: `max(0, D - C)` per host (both models serve `min(D, C)`). Its physical
//!   limit, per AZ and step, is `max(0, D_az - C_az)`: what no placement inside the AZ can
//!   avoid, as if load were spread perfectly.

/// Steal of every VM of a host under the fluid model.
pub fn fluid_steal(demand: f64, capacity: f64) -> f64 {
    if demand > capacity && demand > 0.0 {
        1.0 - capacity / demand
    } else {
        0.0
    }
}

/// Steal per VM under max-min fair share: `vms` are (vCPUs, demanded cores).
pub fn fair_steal(vms: &[(f64, f64)], capacity: f64) -> Vec<f64> {
    let total: f64 = vms.iter().map(|v| v.1).sum();
    if total <= capacity {
        return vec![0.0; vms.len()];
    }
    // Water-filling over per-vCPU demand, lowest first.
    let mut order: Vec<usize> = (0..vms.len()).collect();
    let per_vcpu = |i: usize| vms[i].1 / vms[i].0.max(f64::MIN_POSITIVE);
    order.sort_by(|&a, &b| per_vcpu(a).total_cmp(&per_vcpu(b)));
    let mut left = capacity;
    let mut weight: f64 = vms.iter().map(|v| v.0).sum();
    let mut level = f64::INFINITY;
    for &i in &order {
        let share = left / weight;
        if per_vcpu(i) <= share {
            left -= vms[i].1;
            weight -= vms[i].0;
        } else {
            level = share;
            break;
        }
    }
    vms.iter()
        .map(|&(v, d)| {
            let got = d.min(v * level);
            if d > 0.0 {
                (1.0 - got / d).max(0.0)
            } else {
                0.0
            }
        })
        .collect()
}

/// Nearest-rank percentile of sorted samples (0 when there are none).
pub fn percentile(sorted: &[f64], q: f64) -> f64 {
    crate::model::nearest_rank(sorted, q).unwrap_or(0.0)
}

/// Median of unsorted values: the middle one, or the mean of the middle two.
pub fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fluid_shares_the_overload() {
        assert_eq!(fluid_steal(10.0, 20.0), 0.0);
        assert!((fluid_steal(40.0, 20.0) - 0.5).abs() < 1e-12);
    }

    #[test]
    fn fair_share_spares_the_quiet_vm() {
        // 4 cores; a quiet 2-vCPU VM wants 0.5, a busy 2-vCPU VM wants 2, another 4-vCPU VM 4:
        // the quiet one loses nothing, the others split what is left per vCPU.
        let s = fair_steal(&[(2.0, 0.5), (2.0, 2.0), (4.0, 4.0)], 4.0);
        assert_eq!(s[0], 0.0);
        // level = 3.5 / 6 per vCPU: the 2-vCPU VM gets 7/6 of 2, the 4-vCPU one 7/3 of 4.
        assert!((s[1] - (1.0 - 7.0 / 12.0)).abs() < 1e-12, "{s:?}");
        assert!((s[2] - (1.0 - 7.0 / 12.0)).abs() < 1e-12, "{s:?}");
        // served = capacity
        let got: f64 = [(2.0, 0.5), (2.0, 2.0), (4.0, 4.0)]
            .iter()
            .zip(&s)
            .map(|(v, s)| v.1 * (1.0 - s))
            .sum();
        assert!((got - 4.0).abs() < 1e-9);
        assert_eq!(fair_steal(&[(2.0, 1.0)], 4.0), vec![0.0]);
    }

    #[test]
    fn percentile_and_median() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 0.95), 95.0);
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
    }
}
