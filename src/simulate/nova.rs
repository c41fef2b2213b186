//! Nova's weighing as nova-scheduler (Nova 34) computes it, for the twin's baselines (PURE).
//!
//! `nova/weights.py`: each weigher's raw weights over the hosts that passed the filters are
//! clamped to the weigher's `minval`/`maxval`, then normalised to 0..1 as
//! `(w - min) / (max - min)`, where `min`/`max` are the weigher's `minval`/`maxval` when set,
//! else the list's own (all equal: all 0); times the weigher's multiplier; summed. Hosts are
//! then sorted by weight, highest first, stably (a tie keeps the filtered order), and with
//! `host_subset_size = 1` and `shuffle_best_same_weighed_hosts = False` (the defaults) the
//! first one is chosen. A single host is not weighed at all.
//!
//! The weighers of `weight_classes = nova.scheduler.weights.all_weighers` that can tell the
//! twin's hosts apart, with their default multipliers:
//! - `RAMWeigher` (1.0, `minval = 0`): the host's free RAM in MB, without the allocation ratio;
//! - `CPUWeigher` (1.0, `minval = 0`): `vcpus_total * cpu_allocation_ratio - vcpus_used`;
//! - `DiskWeigher` (1.0, `minval = 0`): free local disk in MB;
//! - `ServerGroupSoftAntiAffinityWeigher` (1.0, no `minval`): minus the members of the
//!   request's soft-anti-affinity group already on the host (0 without a group).
//!
//! The others give every twin host the same raw weight, so their normalised weight is 0 and
//! they cannot change a pick: `IoOpsWeigher` (no instance is building, resizing or migrating
//! when a boot is weighed: boots are serial), `BuildFailureWeigher` (no build fails),
//! `CrossCellWeigher` (one cell), `HypervisorVersionWeigher` (one version), `PCIWeigher` (no
//! PCI devices), `MetricsWeigher` (no `weight_setting`), `ServerGroupSoftAffinityWeigher`
//! (no soft-affinity group), and `NumInstancesWeigher` and `ImagePropertiesWeigher`
//! (multiplier 0.0).

/// What Nova's weighers read of one host that passed the filters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NovaHost {
    pub free_ram_mb: f64,
    /// `vcpus_total * cpu_allocation_ratio - vcpus_used`.
    pub free_vcpus: f64,
    pub free_disk_mb: f64,
    /// Members of the request's soft-anti-affinity group on the host (0 without a group).
    pub group_members: f64,
}

/// `nova.weights.normalize` after `BaseWeigher.weigh_objects`' clamp to `minval`/`maxval`.
pub fn normalize(raw: &[f64], minval: Option<f64>, maxval: Option<f64>) -> Vec<f64> {
    if raw.is_empty() {
        return Vec::new();
    }
    let clamped: Vec<f64> = raw
        .iter()
        .map(|&w| {
            let w = minval.map_or(w, |m| w.max(m));
            maxval.map_or(w, |m| w.min(m))
        })
        .collect();
    let lo = minval.unwrap_or_else(|| clamped.iter().copied().fold(f64::INFINITY, f64::min));
    let hi = maxval.unwrap_or_else(|| clamped.iter().copied().fold(f64::NEG_INFINITY, f64::max));
    if lo == hi {
        return vec![0.0; clamped.len()];
    }
    clamped.iter().map(|w| (w - lo) / (hi - lo)).collect()
}

/// One weigher: raw weights, its `minval`, its multiplier.
pub struct Weigher<'a> {
    pub raw: &'a [f64],
    pub minval: Option<f64>,
    pub multiplier: f64,
}

/// The handler's sum of normalised weights times multipliers (`get_weighed_objects`).
pub fn combine(n: usize, weighers: &[Weigher]) -> Vec<f64> {
    let mut total = vec![0.0; n];
    if n <= 1 {
        return total;
    }
    for w in weighers {
        for (t, v) in total.iter_mut().zip(normalize(w.raw, w.minval, None)) {
            *t += w.multiplier * v;
        }
    }
    total
}

/// Nova's default weighers over the hosts, plus any extra weighers (e.g. StewardWeigher).
pub fn weigh(hosts: &[NovaHost], groups: bool, extra: &[Weigher]) -> Vec<f64> {
    let ram: Vec<f64> = hosts.iter().map(|h| h.free_ram_mb).collect();
    let cpu: Vec<f64> = hosts.iter().map(|h| h.free_vcpus).collect();
    let disk: Vec<f64> = hosts.iter().map(|h| h.free_disk_mb).collect();
    let anti: Vec<f64> = hosts
        .iter()
        .map(|h| if groups { -h.group_members } else { 0.0 })
        .collect();
    let mut weighers = vec![
        Weigher {
            raw: &ram,
            minval: Some(0.0),
            multiplier: 1.0,
        },
        Weigher {
            raw: &cpu,
            minval: Some(0.0),
            multiplier: 1.0,
        },
        Weigher {
            raw: &disk,
            minval: Some(0.0),
            multiplier: 1.0,
        },
        Weigher {
            raw: &anti,
            minval: None,
            multiplier: 1.0,
        },
    ];
    weighers.extend(extra.iter().map(|w| Weigher {
        raw: w.raw,
        minval: w.minval,
        multiplier: w.multiplier,
    }));
    combine(hosts.len(), &weighers)
}

/// The host `host_subset_size = 1` picks: the first of the highest weight.
pub fn pick(weights: &[f64]) -> Option<usize> {
    let mut best: Option<usize> = None;
    for (i, w) in weights.iter().enumerate() {
        if best.is_none_or(|b| *w > weights[b]) {
            best = Some(i);
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_is_novas() {
        // min-max without bounds; all equal gives zeros
        assert_eq!(normalize(&[2.0, 4.0, 6.0], None, None), vec![0.0, 0.5, 1.0]);
        assert_eq!(normalize(&[3.0, 3.0], None, None), vec![0.0, 0.0]);
        // minval 0: value over max, negatives clamped to 0
        assert_eq!(
            normalize(&[50.0, 100.0, -10.0], Some(0.0), None),
            vec![0.5, 1.0, 0.0]
        );
    }

    fn host(ram: f64, cpu: f64, disk: f64, members: f64) -> NovaHost {
        NovaHost {
            free_ram_mb: ram,
            free_vcpus: cpu,
            free_disk_mb: disk,
            group_members: members,
        }
    }

    #[test]
    fn free_vcpus_can_outvote_free_ram() {
        // host 0 has a bit more RAM, host 1 many more free vCPUs: the sum prefers host 1,
        // which a RAM-only weigher would not.
        let hosts = [host(100.0, 10.0, 100.0, 0.0), host(90.0, 40.0, 100.0, 0.0)];
        let w = weigh(&hosts, false, &[]);
        assert_eq!(pick(&w), Some(1));
        assert!((w[0] - (1.0 + 0.25 + 1.0)).abs() < 1e-12);
    }

    #[test]
    fn soft_anti_affinity_pushes_away_and_ties_keep_the_first() {
        let hosts = [host(100.0, 10.0, 100.0, 2.0), host(100.0, 10.0, 100.0, 0.0)];
        assert_eq!(pick(&weigh(&hosts, false, &[])), Some(0), "tie: first");
        assert_eq!(pick(&weigh(&hosts, true, &[])), Some(1));
        assert_eq!(
            weigh(&hosts[..1], true, &[]),
            vec![0.0],
            "one host: not weighed"
        );
    }
}
