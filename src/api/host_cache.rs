//! The hosts of earlier callouts, by reference (docs/callout.md, "Host references").
//!
//! A Nova scheduler sends the same 1,000 host entries with every request and few change from
//! one request to the next. Steward keeps each entry it accepted, checked, under the first 16
//! bytes of the SHA-256 of its JSON text as sent; a later request may name an unchanged host
//! by that reference instead of sending it again. Steward computes the digest itself from the
//! bytes it received, so a caller can only ever reference what it (or another caller) sent:
//! nobody can plant facts under a reference of someone else's entry.
//!
//! Bounded by `[server] host_cache_entries`, in two generations: when the newer fills to half
//! the bound, it becomes the older and the older is dropped; a hit in the older moves the entry
//! to the newer. Hosts still referenced stay; hosts gone from the cloud age out.

use std::sync::{Arc, Mutex};

use foldhash::HashMap;

use sha2::{Digest as _, Sha256};

use crate::model::Host;

/// A host reference: the first 16 bytes of the SHA-256 of a host entry's JSON text.
pub type HostDigest = [u8; 16];

/// The reference of a host entry's JSON text, exactly as sent.
pub fn host_ref(entry_json: &[u8]) -> HostDigest {
    let full = Sha256::digest(entry_json);
    let mut out = [0u8; 16];
    out.copy_from_slice(&full[..16]);
    out
}

/// A reference's wire form: 32 hex digits. None for anything else.
pub fn parse_ref(text: &str) -> Option<HostDigest> {
    let bytes = text.as_bytes();
    if bytes.len() != 32 {
        return None;
    }
    let mut out = [0u8; 16];
    for (i, pair) in bytes.chunks_exact(2).enumerate() {
        let hi = (pair[0] as char).to_digit(16)?;
        let lo = (pair[1] as char).to_digit(16)?;
        out[i] = (hi * 16 + lo) as u8;
    }
    Some(out)
}

/// A reference as the wire writes it: 32 lowercase hex digits.
pub fn format_ref(r: &HostDigest) -> String {
    r.iter().map(|b| format!("{b:02x}")).collect()
}

#[derive(Default)]
struct Generations {
    newer: HashMap<HostDigest, Arc<Host>>,
    older: HashMap<HostDigest, Arc<Host>>,
}

/// Checked host entries by reference, shared by all workers.
pub struct HostCache {
    capacity: usize,
    inner: Mutex<Generations>,
}

impl HostCache {
    /// A cache of at most `capacity` entries; 0 keeps nothing (every reference is unknown).
    pub fn new(capacity: usize) -> Self {
        HostCache {
            capacity,
            inner: Mutex::new(Generations::default()),
        }
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    fn half(&self) -> usize {
        self.capacity.div_ceil(2)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Generations> {
        // A worker that panicked while holding the lock left whole maps behind (every change
        // is one insert or one swap): keep serving from them.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The hosts of `refs`, in order, or the positions (in `refs`) of those not held.
    pub fn resolve(&self, refs: &[HostDigest]) -> Result<Vec<Arc<Host>>, Vec<usize>> {
        let mut g = self.lock();
        let mut hosts = Vec::with_capacity(refs.len());
        let mut unknown = Vec::new();
        for (i, r) in refs.iter().enumerate() {
            if let Some(h) = g.newer.get(r) {
                hosts.push(h.clone());
                continue;
            }
            match g.older.remove(r) {
                Some(h) => {
                    hosts.push(h.clone());
                    self.put(&mut g, *r, h);
                }
                None => unknown.push(i),
            }
        }
        if unknown.is_empty() {
            Ok(hosts)
        } else {
            Err(unknown)
        }
    }

    /// Keep `entries` (checked hosts under the references of their JSON text).
    pub fn store(&self, entries: impl IntoIterator<Item = (HostDigest, Arc<Host>)>) {
        if self.capacity == 0 {
            return;
        }
        let mut g = self.lock();
        for (r, h) in entries {
            self.put(&mut g, r, h);
        }
    }

    fn put(&self, g: &mut Generations, r: HostDigest, h: Arc<Host>) {
        if g.newer.contains_key(&r) {
            // The same text: the same checked host.
            return;
        }
        g.older.remove(&r);
        if g.newer.len() >= self.half() {
            g.older = std::mem::take(&mut g.newer);
        }
        g.newer.insert(r, h);
    }

    /// Entries held now (both generations; an entry is in one of them).
    pub fn len(&self) -> usize {
        let g = self.lock();
        g.newer.len() + g.older.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(name: &str) -> Arc<Host> {
        Arc::new(Host {
            host: name.into(),
            nodename: name.into(),
            ..Host::default()
        })
    }

    #[test]
    fn a_reference_is_the_sha256_prefix_of_the_exact_bytes() {
        // sha256("abc") = ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad
        assert_eq!(
            format_ref(&host_ref(b"abc")),
            "ba7816bf8f01cfea414140de5dae2223"
        );
        assert_ne!(host_ref(br#"{"host":"a"}"#), host_ref(br#"{"host": "a"}"#));
        let r = host_ref(b"x");
        assert_eq!(parse_ref(&format_ref(&r)), Some(r));
        assert_eq!(
            parse_ref(&format_ref(&r).to_uppercase()),
            Some(r),
            "hex case is not significant"
        );
        for bad in [
            "",
            "abc",
            &"g".repeat(32),
            &"a".repeat(31),
            &"a".repeat(33),
            "é",
        ] {
            assert_eq!(parse_ref(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn resolves_in_order_and_names_the_unknown_positions() {
        let c = HostCache::new(10);
        c.store([(host_ref(b"a"), host("a")), (host_ref(b"b"), host("b"))]);
        let got = c.resolve(&[host_ref(b"b"), host_ref(b"a")]).unwrap();
        assert_eq!(got, vec![host("b"), host("a")]);
        assert_eq!(
            c.resolve(&[host_ref(b"a"), host_ref(b"x"), host_ref(b"y")]),
            Err(vec![1, 2])
        );
    }

    #[test]
    fn stays_within_its_bound_and_keeps_what_is_used() {
        let c = HostCache::new(4);
        let refs: Vec<HostDigest> = (0..6).map(|i| host_ref(&[i])).collect();
        for (i, r) in refs.iter().enumerate().take(4) {
            c.store([(*r, host(&i.to_string()))]);
        }
        assert!(c.len() <= 4, "{} entries", c.len());
        // 0 and 1 went to the older generation when 2 arrived; using 0 brings it back.
        assert!(c.resolve(&[refs[0]]).is_ok());
        c.store([(refs[4], host("4")), (refs[5], host("5"))]);
        assert!(c.len() <= 4, "{} entries", c.len());
        assert!(c.resolve(&[refs[5]]).is_ok());
        assert!(c.resolve(&[refs[1]]).is_err(), "1 was never used again");
    }

    #[test]
    fn capacity_zero_keeps_nothing() {
        let c = HostCache::new(0);
        c.store([(host_ref(b"a"), host("a"))]);
        assert!(c.is_empty());
        assert_eq!(c.resolve(&[host_ref(b"a")]), Err(vec![0]));
    }
}
