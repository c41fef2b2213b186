//! Validation of callers' Keystone tokens (`GET /v3/auth/tokens` with `X-Subject-Token`), made
//! with steward's own service session, and the bounded cache of the answers.
//!
//! The cache is pure (time is an argument): an answer is kept for the configured time, never
//! past the token's own `expires_at`, and the table holds a bounded number of tokens. Tokens are
//! held in memory only, as keys; nothing here prints one.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::Method;
use serde::Deserialize;
use time::OffsetDateTime;

use super::session::{expires_at, Session, TokenAnswer};
use super::{Error, Result, Secret};

/// What Keystone says of a valid token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenInfo {
    /// Role names, implied roles included (Keystone expands them into the token).
    pub roles: Vec<String>,
    pub user_id: String,
    pub project_id: Option<String>,
    /// `None`: Keystone gave no expiry (it always does for v3 tokens).
    pub expires_at: Option<OffsetDateTime>,
}

/// Keystone's verdict on a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Validation {
    Valid(TokenInfo),
    /// Unknown, expired or revoked (Keystone answers 404 for all three).
    Invalid,
}

/// Validations of answers kept for a bounded time, in a bounded table.
pub struct TokenCache {
    ttl: Duration,
    capacity: usize,
    entries: HashMap<String, Entry>,
}

/// Counts only: the keys are callers' tokens.
impl fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenCache")
            .field("ttl", &self.ttl)
            .field("capacity", &self.capacity)
            .field("entries", &self.entries.len())
            .finish()
    }
}

#[derive(Debug, Clone)]
struct Entry {
    validation: Validation,
    until: OffsetDateTime,
}

impl TokenCache {
    /// `ttl` zero: nothing is cached. `capacity` is the most tokens held (at least 1).
    pub fn new(ttl: Duration, capacity: usize) -> Self {
        TokenCache {
            ttl,
            capacity: capacity.max(1),
            entries: HashMap::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The cached verdict on `token` at `now`, if one is still good. A valid token whose
    /// `expires_at` has passed is invalid, whatever the cache time left.
    pub fn get(&self, token: &str, now: OffsetDateTime) -> Option<Validation> {
        let e = self.entries.get(token)?;
        if now >= e.until {
            return None;
        }
        match &e.validation {
            Validation::Valid(info) if info.expires_at.is_some_and(|at| now >= at) => {
                Some(Validation::Invalid)
            }
            v => Some(v.clone()),
        }
    }

    /// Keep Keystone's verdict on `token`, given at `now`, until `now + ttl` or the token's
    /// expiry, whichever comes first. When the table is full, expired entries go first, then
    /// the entries nearest their end.
    pub fn insert(&mut self, token: &str, validation: Validation, now: OffsetDateTime) {
        if self.ttl.is_zero() {
            return;
        }
        let mut until = now + self.ttl;
        if let Validation::Valid(TokenInfo {
            expires_at: Some(at),
            ..
        }) = &validation
        {
            until = until.min(*at);
        }
        if until <= now {
            return;
        }
        if !self.entries.contains_key(token) && self.entries.len() >= self.capacity {
            self.entries.retain(|_, e| e.until > now);
            if self.entries.len() >= self.capacity {
                let mut ends: Vec<OffsetDateTime> =
                    self.entries.values().map(|e| e.until).collect();
                ends.sort_unstable();
                // Drop at least a tenth, so a full table is not swept on every insert.
                let drop = (self.capacity / 10).max(1).min(ends.len());
                let cut = ends[drop - 1];
                let mut left = drop;
                self.entries.retain(|_, e| {
                    if left > 0 && e.until <= cut {
                        left -= 1;
                        false
                    } else {
                        true
                    }
                });
            }
        }
        self.entries
            .insert(token.to_string(), Entry { validation, until });
    }
}

/// Keystone's identity API as seen by steward's own service session.
#[derive(Debug, Clone)]
pub struct Keystone {
    session: Arc<Session>,
}

impl Keystone {
    pub fn new(session: Arc<Session>) -> Self {
        Keystone { session }
    }

    pub fn session(&self) -> &Arc<Session> {
        &self.session
    }

    /// Ask Keystone about `token` (`GET /v3/auth/tokens`). Steward's own token needs the
    /// `service` role or a system reader (Keystone's `identity:validate_token` policy).
    /// Errors are failures to get a verdict (Keystone unreachable, steward's own credentials
    /// refused); they never carry the token.
    pub async fn validate(&self, token: &Secret) -> Result<Validation> {
        let reply = self
            .session
            .request_with(
                Method::GET,
                "identity",
                None,
                "auth/tokens",
                &[],
                None,
                &[("X-Subject-Token", token)],
            )
            .await;
        let reply = match reply {
            Ok(r) => r,
            Err(Error::Status(e)) if e.status == 404 => return Ok(Validation::Invalid),
            Err(Error::Status(e)) if e.status == 403 => {
                return Err(Error::Unauthorized {
                    service: "identity".into(),
                    url: e.url.clone(),
                    message: format!(
                        "Keystone does not let {} validate tokens ({}): give steward's user the \
                         service role (openstack role add --user <user> --project service service)",
                        self.session.cloud().describe(),
                        e.message
                    ),
                })
            }
            Err(e) => return Err(e),
        };
        #[derive(Deserialize)]
        struct TokenBody {
            #[serde(default)]
            expires_at: Option<String>,
            #[serde(default)]
            roles: Vec<Role>,
            user: Named,
            #[serde(default)]
            project: Option<Named>,
        }
        #[derive(Deserialize)]
        struct Role {
            name: String,
        }
        #[derive(Deserialize)]
        struct Named {
            id: String,
        }
        let body: TokenAnswer<TokenBody> = reply.json()?;
        let expires_at = expires_at(body.token.expires_at.as_deref(), "GET", &reply.url)?;
        Ok(Validation::Valid(TokenInfo {
            roles: body.token.roles.into_iter().map(|r| r.name).collect(),
            user_id: body.token.user.id,
            project_id: body.token.project.map(|p| p.id),
            expires_at,
        }))
    }
}

/// A validator with its cache: what steward's authentication asks once per request.
#[derive(Debug)]
pub struct CachedValidator {
    keystone: Keystone,
    cache: Mutex<TokenCache>,
}

impl CachedValidator {
    pub fn new(keystone: Keystone, ttl: Duration, capacity: usize) -> Self {
        CachedValidator {
            keystone,
            cache: Mutex::new(TokenCache::new(ttl, capacity)),
        }
    }

    /// The verdict on `token`: from the cache while it holds, else from Keystone (and cached).
    /// The lock is held only to read or write the table, never across the call to Keystone.
    pub async fn validate(&self, token: &Secret) -> Result<Validation> {
        let now = OffsetDateTime::now_utc();
        if let Some(v) = self.lock().get(token.expose(), now) {
            return Ok(v);
        }
        let v = self.keystone.validate(token).await?;
        self.lock()
            .insert(token.expose(), v.clone(), OffsetDateTime::now_utc());
        Ok(v)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, TokenCache> {
        // A panic while holding the lock leaves a table of plain data: still usable.
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: i64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_800_000_000 + s).unwrap()
    }

    fn valid(expires: Option<i64>) -> Validation {
        Validation::Valid(TokenInfo {
            roles: vec!["reader".into()],
            user_id: "u".into(),
            project_id: Some("p".into()),
            expires_at: expires.map(at),
        })
    }

    #[test]
    fn a_verdict_is_kept_for_the_ttl_and_not_a_second_longer() {
        let mut c = TokenCache::new(Duration::from_secs(60), 10);
        c.insert("tok", valid(Some(3600)), at(0));
        assert_eq!(c.get("tok", at(0)), Some(valid(Some(3600))));
        assert_eq!(c.get("tok", at(59)), Some(valid(Some(3600))));
        assert_eq!(
            c.get("tok", at(60)),
            None,
            "past the ttl: ask Keystone again"
        );
        assert_eq!(c.get("other", at(1)), None);
    }

    #[test]
    fn a_token_expiring_before_the_ttl_is_kept_only_until_its_expiry() {
        let mut c = TokenCache::new(Duration::from_secs(60), 10);
        c.insert("tok", valid(Some(5)), at(0));
        assert_eq!(c.get("tok", at(4)), Some(valid(Some(5))));
        assert_eq!(c.get("tok", at(5)), None);
        assert_eq!(c.get("tok", at(30)), None);
    }

    #[test]
    fn an_entry_read_after_its_tokens_expiry_is_invalid_never_valid() {
        // Keystone's clock ahead of ours, or an entry written with a stale `now`.
        let mut c = TokenCache::new(Duration::from_secs(60), 10);
        c.insert("tok", valid(Some(10)), at(-100));
        // until = min(-40, 10) = -40: gone at 0 anyway.
        assert_eq!(c.get("tok", at(0)), None);
        let mut c = TokenCache::new(Duration::from_secs(60), 10);
        c.entries.insert(
            "tok".into(),
            Entry {
                validation: valid(Some(10)),
                until: at(100),
            },
        );
        assert_eq!(c.get("tok", at(10)), Some(Validation::Invalid));
    }

    #[test]
    fn an_already_expired_token_and_a_zero_ttl_are_not_cached() {
        let mut c = TokenCache::new(Duration::from_secs(60), 10);
        c.insert("old", valid(Some(-1)), at(0));
        assert!(c.is_empty());
        let mut c = TokenCache::new(Duration::ZERO, 10);
        c.insert("tok", valid(Some(3600)), at(0));
        assert!(c.is_empty());
        assert_eq!(c.get("tok", at(0)), None);
    }

    #[test]
    fn an_invalid_verdict_is_cached_for_the_ttl() {
        let mut c = TokenCache::new(Duration::from_secs(30), 10);
        c.insert("bad", Validation::Invalid, at(0));
        assert_eq!(c.get("bad", at(29)), Some(Validation::Invalid));
        assert_eq!(c.get("bad", at(30)), None);
    }

    #[test]
    fn a_token_without_expiry_is_kept_for_the_ttl() {
        let mut c = TokenCache::new(Duration::from_secs(60), 10);
        c.insert("tok", valid(None), at(0));
        assert_eq!(c.get("tok", at(59)), Some(valid(None)));
        assert_eq!(c.get("tok", at(60)), None);
    }

    #[test]
    fn the_table_never_grows_past_its_capacity() {
        let mut c = TokenCache::new(Duration::from_secs(60), 20);
        for i in 0..1000 {
            c.insert(&format!("tok-{i}"), valid(Some(3600)), at(i / 10));
            assert!(c.len() <= 20, "{} entries after {i} inserts", c.len());
        }
        // The newest survive; the oldest went first.
        assert!(c.get("tok-999", at(59)).is_some());
        assert!(c.get("tok-0", at(59)).is_none());
    }

    #[test]
    fn a_full_table_drops_expired_entries_before_live_ones() {
        let mut c = TokenCache::new(Duration::from_secs(60), 3);
        c.insert("short", valid(Some(5)), at(0));
        c.insert("a", valid(Some(3600)), at(0));
        c.insert("b", valid(Some(3600)), at(0));
        c.insert("c", valid(Some(3600)), at(10));
        assert_eq!(c.len(), 3);
        assert!(c.get("short", at(10)).is_none());
        for t in ["a", "b", "c"] {
            assert!(c.get(t, at(10)).is_some(), "{t} dropped");
        }
    }

    #[test]
    fn the_cache_never_prints_a_token() {
        let mut c = TokenCache::new(Duration::from_secs(60), 10);
        c.insert("gAAAAAB-secret-token", valid(Some(3600)), at(0));
        let shown = format!("{c:?}");
        assert!(!shown.contains("secret-token"), "{shown}");
        assert!(shown.contains("entries: 1"), "{shown}");
    }

    #[test]
    fn renewing_an_entry_in_a_full_table_drops_nothing() {
        let mut c = TokenCache::new(Duration::from_secs(60), 2);
        c.insert("a", valid(Some(3600)), at(0));
        c.insert("b", valid(Some(3600)), at(0));
        c.insert("a", valid(Some(3600)), at(30));
        assert_eq!(c.len(), 2);
        assert!(c.get("a", at(80)).is_some());
        assert!(c.get("b", at(30)).is_some());
    }
}
