//! Leader election through steward's database, so that one replica executes: a lease row
//! (`store::lease`) taken by conditional UPDATE when free or run out, renewed while leading,
//! with an epoch raised at every change of holder. The same mechanism on every backend:
//! SQLite, MySQL, MariaDB and Galera, where the UPDATE is certified cluster-wide (Galera
//! refuses `GET_LOCK` under wsrep, and older builds keep it local to one node).
//!
//! Whoever journals on the leader's behalf takes its [`Leadership`] (the fence) and passes it
//! to `Store::transition_fenced`: a deposed leader's late write is refused there, in the
//! write's own transaction, and [`Leadership::is_current`] tells it, by its own monotonic
//! clock, to start no side effect once its lease may have run out.

use std::time::{Duration, Instant};

use crate::store::lease::Fence;
use crate::store::{Store, StoreError};
use crate::unix_now;

/// The rebalancer's lease; recovery and any other single-runner job share it, so one replica
/// does all of them.
pub const NAME: &str = "steward-rebalance";

/// A leader's claim: its lease name, holder and epoch (the fencing token).
pub type Leadership = Fence;

/// The lease this process holds. Renew it at least every `ttl / 3`.
#[derive(Debug)]
pub struct Leader {
    store: Store,
    fence: Fence,
    ttl: f64,
}

/// Who this process is, for the lease row and the logs.
pub fn holder_id() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown-host".into());
    format!(
        "{host}:{}:{}",
        std::process::id(),
        uuid::Uuid::new_v4().simple()
    )
}

/// The part of the lease this process may use: a little less than `ttl` from `since`, so a
/// stopped process gives up before the lease can pass on.
fn valid_until(since: Instant, ttl: f64) -> Instant {
    since + Duration::from_secs_f64(ttl * 0.9)
}

/// Become the leader if no one else is; `None` when another replica leads.
pub async fn try_lead(store: &Store, holder: &str, ttl: f64) -> Result<Option<Leader>, StoreError> {
    let asked = Instant::now();
    let Some(epoch) = store.take_lease(NAME, holder, unix_now(), ttl).await? else {
        return Ok(None);
    };
    tracing::info!(holder, epoch, "this replica leads the rebalancer");
    Ok(Some(Leader {
        store: store.clone(),
        fence: Fence {
            name: NAME.into(),
            holder: holder.to_string(),
            epoch,
            valid_until: valid_until(asked, ttl),
        },
        ttl,
    }))
}

impl Leader {
    /// The claim to hand to whoever journals for this leader (fresh after each renewal).
    pub fn leadership(&self) -> Leadership {
        self.fence.clone()
    }

    pub fn epoch(&self) -> i64 {
        self.fence.epoch
    }

    /// Extend the lease; false once another replica has it (or it ran out and was taken).
    pub async fn renew(&mut self) -> Result<bool, StoreError> {
        let asked = Instant::now();
        let held = self
            .store
            .renew_lease(&self.fence, unix_now(), self.ttl)
            .await?;
        if held {
            self.fence.valid_until = valid_until(asked, self.ttl);
        }
        Ok(held)
    }

    /// Step down, so another replica need not wait for the lease to run out.
    pub async fn release(self) {
        if let Err(e) = self.store.release_lease(&self.fence).await {
            tracing::warn!(error = %e, "could not step down as rebalance leader; the lease runs out on its own");
        }
    }
}

/// Which election runs, for `config check` and the startup log.
pub async fn describe(store: &Store, ttl: f64) -> Result<String, StoreError> {
    let db = if store.wsrep_on().await? {
        "Galera (wsrep_on=ON): the lease row is certified cluster-wide"
    } else {
        match store.backend() {
            crate::store::Backend::MySql => "MySQL/MariaDB",
            crate::store::Backend::Sqlite => "SQLite",
        }
    };
    Ok(format!(
        "lease row {NAME:?} in steward's database ({db}); {ttl} s lease, epoch-fenced journal"
    ))
}

/// [`describe`] for `config check`: connects to `url` for a moment; when the database cannot
/// be reached now, says so (the election is the lease row whatever the backend).
pub async fn describe_at(url: &crate::store::DatabaseUrl, ttl: f64) -> String {
    let probe = async {
        let store = Store::connect(url, 1).await?;
        let d = describe(&store, ttl).await;
        store.close().await;
        d
    };
    match tokio::time::timeout(Duration::from_secs(5), probe).await {
        Ok(Ok(d)) => d,
        Ok(Err(e)) => format!("lease row {NAME:?} in steward's database (not checked now: {e})"),
        Err(_) => format!(
            "lease row {NAME:?} in steward's database (not checked now: no answer within 5 s)"
        ),
    }
}
