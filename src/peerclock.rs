//! Where a run's wall time goes: how long steward waited on each peer (Placement, Ironic, the
//! Nova API, Keystone, Nova's databases, its own journal) while calls run concurrently.
//!
//! Summing per-call durations overstates waiting once calls overlap (8 concurrent 10 ms calls
//! are 80 ms of "waiting" in 10 ms of wall time), so the clock keeps the time spent in every
//! combination of outstanding peers: the union for any set of peers is then exact (the time in
//! which at least one of them had a call outstanding), and `wall - union(all)` is the time in
//! which steward waited on nobody, i.e. its own work and scheduling. Adapters (the OpenStack
//! session, `novadb`, the repair journal) hold a [`Wait`] guard around each call; the cost is one
//! short mutex section per call start and end.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;

/// Who a call waits on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Peer {
    Placement,
    /// Nova's API and cell databases (sqlx).
    NovaDb,
    /// Steward's own database: the repair journal.
    Journal,
    Ironic,
    NovaApi,
    Keystone,
    /// A service type steward has no name for here.
    Other,
}

const PEERS: [Peer; 7] = [
    Peer::Placement,
    Peer::NovaDb,
    Peer::Journal,
    Peer::Ironic,
    Peer::NovaApi,
    Peer::Keystone,
    Peer::Other,
];

impl Peer {
    pub fn name(self) -> &'static str {
        match self {
            Peer::Placement => "placement",
            Peer::NovaDb => "nova_db",
            Peer::Journal => "journal",
            Peer::Ironic => "ironic",
            Peer::NovaApi => "nova_api",
            Peer::Keystone => "keystone",
            Peer::Other => "other",
        }
    }

    /// The peer behind a catalog service type.
    pub fn of_service(service_type: &str) -> Peer {
        match service_type {
            "placement" => Peer::Placement,
            "baremetal" => Peer::Ironic,
            "compute" => Peer::NovaApi,
            "identity" => Peer::Keystone,
            _ => Peer::Other,
        }
    }

    fn bit(self) -> usize {
        1 << (self as usize)
    }
}

/// The peers of the repair's target ("steward is not the bottleneck"): Placement and the
/// databases (Nova's and the journal).
pub const PLACEMENT_AND_DATABASES: [Peer; 3] = [Peer::Placement, Peer::NovaDb, Peer::Journal];

const MASKS: usize = 1 << PEERS.len();

#[derive(Debug)]
struct State {
    /// Calls outstanding per peer.
    outstanding: [u32; PEERS.len()],
    /// Bitmask of the peers with a call outstanding since `changed`.
    mask: usize,
    changed: Instant,
    /// Nanoseconds spent with exactly this set of peers outstanding.
    in_mask: [u128; MASKS],
    calls: [u64; PEERS.len()],
    /// Nanoseconds summed over calls (overlapping calls each count).
    sum: [u128; PEERS.len()],
}

/// One run's clock; cheap to share.
#[derive(Debug)]
pub struct PeerClock {
    started: Instant,
    state: Mutex<State>,
}

impl Default for PeerClock {
    fn default() -> Self {
        PeerClock::new()
    }
}

impl PeerClock {
    pub fn new() -> PeerClock {
        let now = Instant::now();
        PeerClock {
            started: now,
            state: Mutex::new(State {
                outstanding: [0; PEERS.len()],
                mask: 0,
                changed: now,
                in_mask: [0; MASKS],
                calls: [0; PEERS.len()],
                sum: [0; PEERS.len()],
            }),
        }
    }

    /// Start a call to `peer`; it ends when the guard drops (also on an early return or `?`).
    pub fn start(self: &Arc<Self>, peer: Peer) -> Wait {
        let now = Instant::now();
        if let Ok(mut s) = self.state.lock() {
            s.advance(now);
            s.outstanding[peer as usize] += 1;
            s.mask |= peer.bit();
        }
        Wait {
            clock: self.clone(),
            peer,
            started: now,
        }
    }

    fn end(&self, peer: Peer, started: Instant) {
        let now = Instant::now();
        if let Ok(mut s) = self.state.lock() {
            s.advance(now);
            let i = peer as usize;
            s.outstanding[i] = s.outstanding[i].saturating_sub(1);
            if s.outstanding[i] == 0 {
                s.mask &= !peer.bit();
            }
            s.calls[i] += 1;
            s.sum[i] += now.duration_since(started).as_nanos();
        }
    }

    /// Where the time went from the clock's creation until now (calls still outstanding count
    /// up to now).
    pub fn timings(&self) -> Timings {
        let now = Instant::now();
        let wall = now.duration_since(self.started);
        let Ok(mut s) = self.state.lock() else {
            return Timings::empty(wall);
        };
        s.advance(now);
        let union = |peers: &[Peer]| -> Duration {
            let set = peers.iter().fold(0, |m, p| m | p.bit());
            let ns: u128 = (1..MASKS)
                .filter(|m| m & set != 0)
                .map(|m| s.in_mask[m])
                .sum();
            Duration::from_nanos(u64::try_from(ns).unwrap_or(u64::MAX))
        };
        let waiting = union(&PEERS);
        let pad = union(&PLACEMENT_AND_DATABASES);
        let peers = PEERS
            .iter()
            .filter(|p| s.calls[**p as usize] > 0 || s.outstanding[**p as usize] > 0)
            .map(|p| {
                let i = *p as usize;
                (
                    p.name().to_string(),
                    PeerTimings {
                        calls: s.calls[i],
                        sum_s: secs(u64::try_from(s.sum[i]).unwrap_or(u64::MAX)),
                        union_s: union(&[*p]).as_secs_f64(),
                    },
                )
            })
            .collect();
        Timings {
            wall_s: wall.as_secs_f64(),
            waiting_s: waiting.as_secs_f64(),
            waiting_share: share(waiting, wall),
            placement_and_databases_s: pad.as_secs_f64(),
            placement_and_databases_share: share(pad, wall),
            steward_s: wall.saturating_sub(waiting).as_secs_f64(),
            peers,
        }
    }
}

impl State {
    fn advance(&mut self, now: Instant) {
        let dt = now.saturating_duration_since(self.changed).as_nanos();
        self.in_mask[self.mask] += dt;
        self.changed = now;
    }
}

fn secs(ns: u64) -> f64 {
    Duration::from_nanos(ns).as_secs_f64()
}

fn share(part: Duration, whole: Duration) -> f64 {
    if whole.is_zero() {
        0.0
    } else {
        (part.as_secs_f64() / whole.as_secs_f64()).clamp(0.0, 1.0)
    }
}

/// A call in flight; ends on drop.
#[derive(Debug)]
pub struct Wait {
    clock: Arc<PeerClock>,
    peer: Peer,
    started: Instant,
}

impl Drop for Wait {
    fn drop(&mut self) {
        self.clock.end(self.peer, self.started);
    }
}

/// Start a call on an optional clock (adapters built without one account nothing).
pub fn wait(clock: &Option<Arc<PeerClock>>, peer: Peer) -> Option<Wait> {
    clock.as_ref().map(|c| c.start(peer))
}

/// One peer's share of a run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PeerTimings {
    /// Calls finished.
    pub calls: u64,
    /// Seconds summed over calls; exceeds wall time when calls overlap.
    pub sum_s: f64,
    /// Seconds in which at least one call to this peer was outstanding.
    pub union_s: f64,
}

/// Where a run's wall time went (see the module doc).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Timings {
    pub wall_s: f64,
    /// Seconds in which at least one call to any peer was outstanding.
    pub waiting_s: f64,
    /// `waiting_s / wall_s`.
    pub waiting_share: f64,
    /// Seconds in which a call to Placement, a Nova database or the journal was outstanding.
    pub placement_and_databases_s: f64,
    pub placement_and_databases_share: f64,
    /// Seconds in which steward waited on nobody: its own work (`wall_s - waiting_s`).
    pub steward_s: f64,
    /// By peer (`placement`, `nova_db`, `journal`, `ironic`, `nova_api`, `keystone`): only the
    /// peers called.
    pub peers: BTreeMap<String, PeerTimings>,
}

impl Timings {
    fn empty(wall: Duration) -> Timings {
        Timings {
            wall_s: wall.as_secs_f64(),
            waiting_s: 0.0,
            waiting_share: 0.0,
            placement_and_databases_s: 0.0,
            placement_and_databases_share: 0.0,
            steward_s: wall.as_secs_f64(),
            peers: BTreeMap::new(),
        }
    }

    /// A short table for an operator (stderr of `--timings`).
    pub fn table(&self) -> String {
        let mut out = format!(
            "{:<10} {:>7} {:>10} {:>10} {:>7}\n",
            "PEER", "CALLS", "SUM_S", "UNION_S", "SHARE"
        );
        for (name, p) in &self.peers {
            out.push_str(&format!(
                "{:<10} {:>7} {:>10.3} {:>10.3} {:>6.1}%\n",
                name,
                p.calls,
                p.sum_s,
                p.union_s,
                100.0 * p.union_s / self.wall_s.max(f64::MIN_POSITIVE)
            ));
        }
        out.push_str(&format!(
            "wall {:.3}s: waiting on any peer {:.3}s ({:.1}%), on Placement and the databases \
             {:.3}s ({:.1}%), on nobody (steward's own work) {:.3}s\n",
            self.wall_s,
            self.waiting_s,
            100.0 * self.waiting_share,
            self.placement_and_databases_s,
            100.0 * self.placement_and_databases_share,
            self.steward_s
        ));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(clock: &PeerClock, ms: u64) -> Instant {
        clock.started + Duration::from_millis(ms)
    }

    /// Drive the state machine with chosen instants, as start/end would at those times.
    fn event(clock: &PeerClock, now: Instant, peer: Peer, begin: bool) {
        let mut s = clock.state.lock().unwrap();
        s.advance(now);
        let i = peer as usize;
        if begin {
            s.outstanding[i] += 1;
            s.mask |= peer.bit();
        } else {
            s.outstanding[i] -= 1;
            if s.outstanding[i] == 0 {
                s.mask &= !peer.bit();
            }
        }
    }

    /// Two overlapping Placement calls and a database call that overlaps one of them: the
    /// union counts each instant once, per peer and over all.
    #[test]
    fn overlapping_calls_count_once() {
        let c = PeerClock::new();
        event(&c, at(&c, 0), Peer::Placement, true); // placement [0, 30)
        event(&c, at(&c, 10), Peer::Placement, true); // placement [10, 20)
        event(&c, at(&c, 20), Peer::Placement, false);
        event(&c, at(&c, 25), Peer::NovaDb, true); // db [25, 50)
        event(&c, at(&c, 30), Peer::Placement, false);
        event(&c, at(&c, 50), Peer::NovaDb, false);
        event(&c, at(&c, 60), Peer::Ironic, true); // ironic [60, 70)
        event(&c, at(&c, 70), Peer::Ironic, false);
        let s = c.state.lock().unwrap();
        let ms = |m: usize| s.in_mask[m] / 1_000_000;
        assert_eq!(ms(Peer::Placement.bit()), 25);
        assert_eq!(ms(Peer::Placement.bit() | Peer::NovaDb.bit()), 5);
        assert_eq!(ms(Peer::NovaDb.bit()), 20);
        assert_eq!(ms(Peer::Ironic.bit()), 10);
        assert_eq!(ms(0), 10); // [50, 60): nobody
    }

    #[test]
    fn timings_are_consistent() {
        let c = Arc::new(PeerClock::new());
        {
            let _a = c.start(Peer::Placement);
            let _b = c.start(Peer::Placement);
            let _d = c.start(Peer::NovaDb);
            std::thread::sleep(Duration::from_millis(5));
        }
        std::thread::sleep(Duration::from_millis(2));
        let t = c.timings();
        let p = &t.peers["placement"];
        assert_eq!(p.calls, 2);
        assert!(p.sum_s >= 2.0 * p.union_s * 0.99, "{t:?}");
        assert!(t.waiting_s <= t.wall_s);
        assert!(t.placement_and_databases_s <= t.waiting_s + 1e-9);
        assert!(t.steward_s > 0.0);
        assert!(!t.peers.contains_key("ironic"));
        assert!((t.wall_s - t.waiting_s - t.steward_s).abs() < 1e-6);
    }

    #[test]
    fn service_types_name_their_peer() {
        assert_eq!(Peer::of_service("placement"), Peer::Placement);
        assert_eq!(Peer::of_service("baremetal"), Peer::Ironic);
        assert_eq!(Peer::of_service("compute"), Peer::NovaApi);
        assert_eq!(Peer::of_service("identity"), Peer::Keystone);
        assert_eq!(Peer::of_service("image"), Peer::Other);
    }
}
