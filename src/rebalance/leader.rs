//! Leader election through steward's database, so that one replica executes: `GET_LOCK` on
//! MySQL/MariaDB (held by one connection; the server frees it when that connection dies, a
//! kill -9 included), a lease row with an expiry on SQLite (renewed while leading; a dead
//! holder's lease runs out after `lease_seconds`).

use sqlx::pool::PoolConnection;
use sqlx::{Any, Row};

use crate::store::{Backend, Store, StoreError};
use crate::unix_now;

/// The lock's name; on MySQL it is server-wide, so the database's name is part of it.
const NAME: &str = "steward-rebalance";

pub enum Leader {
    MySql {
        conn: PoolConnection<Any>,
        lock: String,
    },
    Sqlite {
        store: Store,
        holder: String,
        ttl: f64,
    },
}

impl std::fmt::Debug for Leader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Leader::MySql { lock, .. } => write!(f, "Leader(GET_LOCK {lock})"),
            Leader::Sqlite { holder, .. } => write!(f, "Leader(lease {holder})"),
        }
    }
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

/// Become the leader if no one else is; `None` when another replica leads.
pub async fn try_lead(store: &Store, holder: &str, ttl: f64) -> Result<Option<Leader>, StoreError> {
    match store.backend() {
        Backend::MySql => {
            let mut conn = store.pool().acquire().await?;
            let db: Option<String> = sqlx::query("SELECT DATABASE() AS db")
                .fetch_one(&mut *conn)
                .await?
                .try_get("db")?;
            // MySQL caps lock names at 64 characters.
            let lock: String = format!("{NAME}:{}", db.unwrap_or_default())
                .chars()
                .take(64)
                .collect();
            let got: i64 = sqlx::query("SELECT CAST(COALESCE(GET_LOCK(?, 0), 0) AS SIGNED) AS got")
                .bind(lock.clone())
                .fetch_one(&mut *conn)
                .await?
                .try_get("got")?;
            Ok((got == 1).then_some(Leader::MySql { conn, lock }))
        }
        Backend::Sqlite => {
            let held = store.acquire_lease(NAME, holder, unix_now(), ttl).await?;
            Ok(held.then(|| Leader::Sqlite {
                store: store.clone(),
                holder: holder.to_string(),
                ttl,
            }))
        }
    }
}

impl Leader {
    /// Renew (SQLite) or check (MySQL) the leadership; false once it is lost.
    pub async fn renew(&mut self) -> Result<bool, StoreError> {
        match self {
            Leader::MySql { conn, lock } => {
                let mine: i64 = sqlx::query(
                    "SELECT CAST(COALESCE(IS_USED_LOCK(?) = CONNECTION_ID(), 0) AS SIGNED) AS mine",
                )
                .bind(lock.clone())
                .fetch_one(&mut **conn)
                .await?
                .try_get("mine")?;
                Ok(mine == 1)
            }
            Leader::Sqlite { store, holder, ttl } => {
                store.acquire_lease(NAME, holder, unix_now(), *ttl).await
            }
        }
    }

    /// Step down, so another replica need not wait for the lease to run out.
    pub async fn release(self) {
        let r = match self {
            Leader::MySql { mut conn, lock } => sqlx::query("SELECT RELEASE_LOCK(?)")
                .bind(lock)
                .execute(&mut *conn)
                .await
                .map(|_| ())
                .map_err(StoreError::from),
            Leader::Sqlite { store, holder, .. } => store.release_lease(NAME, &holder).await,
        };
        if let Err(e) = r {
            tracing::warn!(error = %e, "could not step down as rebalance leader; the lock ends with the lease or the connection");
        }
    }
}
