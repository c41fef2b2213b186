//! The cluster view, published as an immutable snapshot: readers take the newest `Arc` without
//! a lock and never wait for a refresh; writers build a new view and swap it in whole.

pub mod inventory;
pub mod settings;

use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::model::ClusterView;

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
}
