//! Free capacity of a host after the instance lands, shared by `capacity_spread` and
//! `capacity_pack`: the mean of the free vCPU share (allocation ratio applied) and the free
//! RAM share. `None` when the host reports neither (Ironic nodes report zero totals).

use crate::model::{Flavor, Host};

pub fn free_share_after(host: &Host, flavor: &Flavor) -> Option<f64> {
    let mut shares = Vec::with_capacity(2);
    if let (Some(total), Some(used)) = (host.vcpus_total, host.vcpus_used) {
        let capacity = total * host.cpu_allocation_ratio.unwrap_or(1.0);
        if capacity > 0.0 {
            let free = capacity - used - flavor.vcpus.unwrap_or(0.0);
            shares.push((free / capacity).clamp(0.0, 1.0));
        }
    }
    if let (Some(total), Some(free)) = (host.memory_mb_total, host.memory_mb_free) {
        if total > 0.0 {
            let free = free - flavor.memory_mb.unwrap_or(0.0);
            shares.push((free / total).clamp(0.0, 1.0));
        }
    }
    (!shares.is_empty()).then(|| shares.iter().sum::<f64>() / shares.len() as f64)
}
