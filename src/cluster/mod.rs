//! The cluster view, published as an immutable snapshot: readers take the newest `Arc` without
//! a lock and never wait for a refresh; writers build a new view and swap it in whole.

pub mod access;
pub mod inventory;
pub mod settings;

use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::lane::Lane;
use crate::model::{ClusterView, ViewChanges};

#[derive(Debug)]
pub struct ClusterHandle {
    current: ArcSwap<ClusterView>,
    /// Serialises writers only (pushes, refreshes); readers never touch it.
    writer: tokio::sync::Mutex<()>,
}

impl ClusterHandle {
    pub fn new(view: ClusterView) -> Self {
        view.role_index();
        ClusterHandle {
            current: ArcSwap::from_pointee(view),
            writer: tokio::sync::Mutex::new(()),
        }
    }

    /// The newest snapshot; lock-free.
    pub fn snapshot(&self) -> Arc<ClusterView> {
        self.current.load_full()
    }

    /// Build the next view from the current one and publish it. A slow `change` delays only
    /// other writers, never a reader.
    pub async fn update<R>(&self, change: impl FnOnce(&mut ClusterView) -> R) -> R {
        let _guard = self.writer.lock().await;
        let mut next = ClusterView::clone(&self.current.load());
        let out = change(&mut next);
        next.role_index(); // built here, not on the first scoring request
        self.current.store(Arc::new(next));
        out
    }

    /// [`update`](Self::update) for a writer that reports every VM placement and host AZ it
    /// changed (telemetry pushes): the maps are shared with the current view but for what `change`
    /// touched, and the role index is the current one with those changes, so a push costs
    /// what it carries, not the size of the cloud.
    pub async fn update_tracked<R, F>(&self, lane: &Lane, change: F) -> R
    where
        R: Send + 'static,
        F: FnOnce(&mut ClusterView) -> (R, ViewChanges) + Send + 'static,
    {
        let _guard = self.writer.lock().await;
        let current = self.current.load_full();
        // The copy, the change and the index run on the lane; the swap here, under the lock.
        let (next, out) = lane
            .run(move || {
                let mut next = ClusterView::clone(&current);
                let (out, changes) = change(&mut next);
                let index = current.role_index().with_changes(&changes, &next);
                next.set_role_index(index);
                (next, out)
            })
            .await;
        // The old view usually goes with this swap; what only it held is freed on the lane.
        let old = self.current.swap(Arc::new(next));
        lane.spawn(move || drop(old));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{HostFacts, VmFacts};
    use crate::telemetry::{merge_tracked, HostSample, VmSample};
    use proptest::prelude::*;

    fn view(hosts: usize, vms: usize) -> ClusterView {
        let mut v = ClusterView::default();
        for h in 0..hosts {
            let facts = HostFacts {
                az: Some(format!("az{}", h % 3)),
                observed_at: 1.0,
                ..Default::default()
            };
            v.hosts.insert(format!("cmp-{h}"), facts);
        }
        for i in 0..vms {
            let facts = VmFacts {
                host: Some(format!("cmp-{}", i % hosts)),
                role: (i % 4 != 0).then(|| format!("role-{}", i % 5)),
                project_id: Some(format!("p{}", i % 7)),
                observed_at: 1.0,
                ..Default::default()
            };
            v.vms.insert(format!("vm-{i}"), facts);
        }
        v
    }

    fn push(handle: &ClusterHandle, hosts: &[HostSample], vms: &[VmSample]) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let (hosts, vms) = (hosts.to_vec(), vms.to_vec());
        let lane = Lane::start("test-lane", 0);
        rt.block_on(handle.update_tracked(&lane, move |v| ((), merge_tracked(v, &hosts, &vms))));
    }

    #[test]
    fn a_push_shares_every_entry_it_does_not_carry() {
        let handle = ClusterHandle::new(view(50, 20_000));
        let before = handle.snapshot();
        let sample = VmSample {
            uuid: "vm-7".into(),
            facts: VmFacts {
                host: Some("cmp-9".into()),
                steal: Some(0.2),
                observed_at: 2.0,
                ..Default::default()
            },
        };
        push(&handle, &[], &[sample]);
        let after = handle.snapshot();
        assert_eq!(after.vms["vm-7"].host.as_deref(), Some("cmp-9"));
        assert_eq!(
            before.vms["vm-7"].host.as_deref(),
            Some("cmp-7"),
            "the old view is untouched"
        );
        // Untouched VMs are shared, not copied: only the few entries that sit in the trie
        // nodes on the changed key's path are (a bound that does not grow with the view).
        let copied = (0..20_000)
            .filter(|i| *i != 7)
            .map(|i| format!("vm-{i}"))
            .filter(|k| {
                let (a, b) = (&before.vms[k], &after.vms[k]);
                a.host.as_ref().unwrap().as_ptr() != b.host.as_ref().unwrap().as_ptr()
            })
            .count();
        assert!(copied <= 64, "a push of one VM copied {copied} other VMs");
        assert_eq!(*after.role_index(), after.rebuilt_role_index());
    }

    fn sample_strategy() -> impl Strategy<Value = (bool, usize, Option<usize>, Option<usize>, f64)>
    {
        (
            any::<bool>(),
            0..40usize,
            proptest::option::of(0..12usize),
            proptest::option::of(0..4usize),
            0.0..10.0f64,
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// Whatever pushes arrive (new VMs, moves, role changes, older samples, new hosts,
        /// hosts moved between AZs), the
        /// index kept by the pushes' changes is the index a rebuild gives.
        #[test]
        fn the_index_kept_by_pushes_is_the_rebuilt_index(
            pushes in proptest::collection::vec(proptest::collection::vec(sample_strategy(), 1..8), 1..12)
        ) {
            let handle = ClusterHandle::new(view(8, 30));
            for push_samples in pushes {
                let mut hosts = Vec::new();
                let mut vms = Vec::new();
                for (is_host, n, host, role, at) in push_samples {
                    if is_host {
                        // A host sample's AZ: none (kept), or one of three (new or moved).
                        let az = role.map(|a| format!("az{}", a % 3));
                        hosts.push(HostSample { host: format!("cmp-{}", n % 12), facts: HostFacts { az, observed_at: at, ..Default::default() } });
                    } else {
                        vms.push(VmSample { uuid: format!("vm-{n}"), facts: VmFacts {
                            host: host.map(|h| format!("cmp-{h}")),
                            role: role.map(|r| format!("role-{r}")),
                            observed_at: at,
                            ..Default::default()
                        }});
                    }
                }
                push(&handle, &hosts, &vms);
                let v = handle.snapshot();
                prop_assert_eq!(v.role_index(), &v.rebuilt_role_index());
            }
        }
    }
}
