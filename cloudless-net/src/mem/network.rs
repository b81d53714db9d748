//! The shared state of an in-memory network: endpoints, connections, partitions, faults.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use cloudless_core::ids::NodeId;
use cloudless_core::transport::{ByteStream, Inbound, PeerIdentity, TransportError};
use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{Rng, SeedableRng};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::config::{FaultConfig, MemConfig, MemConfigError};
use super::link::{InFlight, run_link};
use super::transport::MemTransport;

/// An accepted byte stream waiting in an endpoint's accept queue.
pub(super) type Accepted = (PeerIdentity, Box<dyn ByteStream>);

/// Counters of what happened to frames, for tests and diagnostics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MemStats {
    /// Frames accepted by `send`.
    pub sent: u64,
    /// Frames lost to the drop probability.
    pub dropped: u64,
    /// Frames lost to a partition (at send or while in flight) or a closed connection.
    pub cut: u64,
    /// Frames placed in the receiver's inbox.
    pub delivered: u64,
}

/// An in-memory network. Cheap to clone; all clones control the same network.
#[derive(Clone)]
pub struct MemNetwork {
    pub(super) inner: Arc<NetInner>,
}

pub(super) struct NetInner {
    pub(super) config: MemConfig,
    state: Mutex<NetState>,
}

/// One registered endpoint.
pub(super) struct Slot {
    pub(super) identity: PeerIdentity,
    pub(super) inbox: mpsc::Sender<Inbound>,
    pub(super) accept: mpsc::Sender<Accepted>,
    pub(super) dial_out_only: bool,
    pub(super) generation: u64,
}

struct LinkSlot {
    tx: mpsc::Sender<InFlight>,
    last_at: Instant,
    seq: u64,
}

struct NetState {
    rng: ChaCha8Rng,
    faults: FaultConfig,
    link_faults: BTreeMap<(NodeId, NodeId), FaultConfig>,
    endpoints: BTreeMap<NodeId, Slot>,
    connections: BTreeSet<(NodeId, NodeId)>,
    blocked: BTreeSet<(NodeId, NodeId)>,
    cut_at: BTreeMap<(NodeId, NodeId), u64>,
    epoch: u64,
    links: BTreeMap<(NodeId, NodeId), LinkSlot>,
    stats: MemStats,
    generations: u64,
}

/// The unordered pair key for connections and partitions.
fn pair(a: NodeId, b: NodeId) -> (NodeId, NodeId) {
    if a <= b { (a, b) } else { (b, a) }
}

/// True with probability `p`, from one draw of `rng`; never panics on any `p`.
fn chance(rng: &mut ChaCha8Rng, p: f64) -> bool {
    if p <= 0.0 {
        return false;
    }
    let unit = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
    unit < p
}

fn jitter(rng: &mut ChaCha8Rng, max: Duration) -> Duration {
    let nanos = u64::try_from(max.as_nanos()).unwrap_or(u64::MAX);
    if nanos == 0 {
        return Duration::ZERO;
    }
    Duration::from_nanos(rng.next_u64() % nanos.saturating_add(1))
}

impl MemNetwork {
    /// A perfect network (no faults, default sizes) whose fault decisions derive from `seed`.
    pub fn new(seed: u64) -> Self {
        Self::build(seed, MemConfig::default())
    }

    /// A network with the given sizes.
    pub fn with_config(seed: u64, config: MemConfig) -> Result<Self, MemConfigError> {
        config.validate()?;
        Ok(Self::build(seed, config))
    }

    fn build(seed: u64, config: MemConfig) -> Self {
        let state = NetState {
            rng: ChaCha8Rng::seed_from_u64(seed),
            faults: FaultConfig::none(),
            link_faults: BTreeMap::new(),
            endpoints: BTreeMap::new(),
            connections: BTreeSet::new(),
            blocked: BTreeSet::new(),
            cut_at: BTreeMap::new(),
            epoch: 0,
            links: BTreeMap::new(),
            stats: MemStats::default(),
            generations: 0,
        };
        Self {
            inner: Arc::new(NetInner {
                config,
                state: Mutex::new(state),
            }),
        }
    }

    /// Creates (or re-creates, dropping the old incarnation's connections) the endpoint of
    /// `identity.node`.
    pub fn endpoint(&self, identity: PeerIdentity) -> MemTransport {
        let c = &self.inner.config;
        let (inbox_tx, inbox_rx) = mpsc::channel(c.inbox_capacity);
        let (accept_tx, accept_rx) = mpsc::channel(c.stream_capacity);
        let generation = {
            let mut s = self.inner.lock();
            s.generations += 1;
            let generation = s.generations;
            s.forget(identity.node);
            let slot = Slot {
                identity: identity.clone(),
                inbox: inbox_tx,
                accept: accept_tx,
                dial_out_only: false,
                generation,
            };
            s.endpoints.insert(identity.node, slot);
            generation
        };
        MemTransport::new(
            Arc::clone(&self.inner),
            identity,
            generation,
            inbox_rx,
            accept_rx,
        )
    }

    /// Marks `node` as reachable only through connections it opens (an agent behind NAT).
    pub fn set_dial_out_only(&self, node: NodeId, dial_out_only: bool) {
        if let Some(slot) = self.inner.lock().endpoints.get_mut(&node) {
            slot.dial_out_only = dial_out_only;
        }
    }

    /// Sets the faults of every link without its own setting.
    pub fn set_faults(&self, faults: FaultConfig) -> Result<(), MemConfigError> {
        faults.validate()?;
        self.inner.lock().faults = faults;
        Ok(())
    }

    /// Sets the faults of the directed link `from → to`.
    pub fn set_link_faults(
        &self,
        from: NodeId,
        to: NodeId,
        faults: FaultConfig,
    ) -> Result<(), MemConfigError> {
        faults.validate()?;
        self.inner.lock().link_faults.insert((from, to), faults);
        Ok(())
    }

    /// Cuts every node of `side_a` off from every node of `side_b`, both directions. Messages
    /// already in flight between the sides are lost; connections stay (they time out, as on a
    /// real network) but carry nothing until [`heal`](Self::heal).
    pub fn partition(&self, side_a: &[NodeId], side_b: &[NodeId]) {
        let mut s = self.inner.lock();
        s.epoch += 1;
        let epoch = s.epoch;
        for &a in side_a {
            for &b in side_b {
                if a != b {
                    s.blocked.insert(pair(a, b));
                    s.cut_at.insert(pair(a, b), epoch);
                }
            }
        }
    }

    /// Removes every partition.
    pub fn heal(&self) {
        let mut s = self.inner.lock();
        s.epoch += 1;
        s.blocked.clear();
    }

    /// Closes the connection between `a` and `b` (both sides then get `NotConnected`).
    pub fn disconnect(&self, a: NodeId, b: NodeId) {
        let mut s = self.inner.lock();
        s.connections.remove(&pair(a, b));
        s.epoch += 1;
        let epoch = s.epoch;
        s.cut_at.insert(pair(a, b), epoch);
    }

    /// True while `a` and `b` have a connection.
    pub fn is_connected(&self, a: NodeId, b: NodeId) -> bool {
        self.inner.lock().connections.contains(&pair(a, b))
    }

    /// Counters so far.
    pub fn stats(&self) -> MemStats {
        self.inner.lock().stats
    }
}

impl NetInner {
    fn lock(&self) -> MutexGuard<'_, NetState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Opens a connection from `from` to the endpoint `to`, returning its identity.
    pub(super) fn connect(
        &self,
        from: NodeId,
        to: NodeId,
        addr: &str,
    ) -> Result<PeerIdentity, TransportError> {
        let mut s = self.lock();
        let unreachable = |reason: &str| TransportError::Unreachable {
            addr: addr.to_owned(),
            reason: reason.to_owned(),
        };
        let slot = s
            .endpoints
            .get(&to)
            .ok_or_else(|| unreachable("no such endpoint"))?;
        let identity = slot.identity.clone();
        let already = s.connections.contains(&pair(from, to));
        if slot.dial_out_only && !already {
            return Err(unreachable(
                "endpoint accepts no inbound connections (behind NAT)",
            ));
        }
        if s.blocked.contains(&pair(from, to)) {
            return Err(unreachable("partitioned"));
        }
        s.connections.insert(pair(from, to));
        Ok(identity)
    }

    /// Applies the fault model to one frame; returns the link to put it on, if it survives.
    pub(super) fn admit(
        self: &Arc<Self>,
        from: &PeerIdentity,
        to: NodeId,
        frame: Bytes,
    ) -> Result<Option<(mpsc::Sender<InFlight>, InFlight)>, TransportError> {
        let mut s = self.lock();
        let generation = match s.endpoints.get(&to) {
            Some(slot) if s.connections.contains(&pair(from.node, to)) => slot.generation,
            _ => return Err(TransportError::NotConnected(to)),
        };
        s.stats.sent += 1;
        if s.blocked.contains(&pair(from.node, to)) {
            s.stats.cut += 1;
            return Ok(None);
        }
        let f = s
            .link_faults
            .get(&(from.node, to))
            .copied()
            .unwrap_or(s.faults);
        if chance(&mut s.rng, f.drop_probability) {
            s.stats.dropped += 1;
            return Ok(None);
        }
        let now = Instant::now();
        let mut at = now + f.delay + jitter(&mut s.rng, f.jitter);
        let reordered = chance(&mut s.rng, f.reorder_probability);
        let epoch = s.epoch;
        let capacity = self.config.link_capacity;
        let link = s.links.entry((from.node, to)).or_insert_with(|| {
            let (tx, rx) = mpsc::channel(capacity);
            tokio::spawn(run_link(Arc::downgrade(self), from.clone(), to, rx));
            LinkSlot {
                tx,
                last_at: now,
                seq: 0,
            }
        });
        if reordered {
            at += f.reorder_delay;
        } else {
            // Without reordering a link is FIFO: never deliver before an earlier message.
            at = at.max(link.last_at);
            link.last_at = at;
        }
        link.seq += 1;
        let msg = InFlight {
            at,
            seq: link.seq,
            epoch,
            generation,
            frame,
        };
        Ok(Some((link.tx.clone(), msg)))
    }

    /// At delivery time: the receiver's inbox, if the message may still be delivered.
    pub(super) fn deliverable(
        &self,
        from: NodeId,
        to: NodeId,
        m: &InFlight,
    ) -> Option<mpsc::Sender<Inbound>> {
        let mut s = self.lock();
        let key = pair(from, to);
        let cut = s.blocked.contains(&key)
            || s.cut_at.get(&key).is_some_and(|&e| e > m.epoch)
            || !s.connections.contains(&key);
        let inbox = s
            .endpoints
            .get(&to)
            .filter(|slot| slot.generation == m.generation);
        match inbox {
            Some(slot) if !cut => Some(slot.inbox.clone()),
            _ => {
                s.stats.cut += 1;
                None
            }
        }
    }

    pub(super) fn count_delivered(&self) {
        self.lock().stats.delivered += 1;
    }

    /// Checks `from` may reach `to` now and returns `to`'s stream accept queue and identity.
    pub(super) fn stream_target(
        &self,
        from: NodeId,
        to: NodeId,
    ) -> Result<mpsc::Sender<Accepted>, TransportError> {
        let s = self.lock();
        let key = pair(from, to);
        match s.endpoints.get(&to) {
            Some(slot) if s.connections.contains(&key) => {
                if s.blocked.contains(&key) {
                    return Err(TransportError::ConnectionLost("partitioned".to_owned()));
                }
                Ok(slot.accept.clone())
            }
            _ => Err(TransportError::NotConnected(to)),
        }
    }

    /// Identities of the peers `node` has a connection with.
    pub(super) fn peers_of(&self, node: NodeId) -> Vec<PeerIdentity> {
        let s = self.lock();
        s.connections
            .iter()
            .filter_map(|&(a, b)| {
                if a == node {
                    Some(b)
                } else if b == node {
                    Some(a)
                } else {
                    None
                }
            })
            .filter_map(|p| s.endpoints.get(&p).map(|slot| slot.identity.clone()))
            .collect()
    }

    /// Removes an endpoint incarnation (its transport was dropped).
    pub(super) fn remove(&self, node: NodeId, generation: u64) {
        let mut s = self.lock();
        if s.endpoints
            .get(&node)
            .is_some_and(|slot| slot.generation == generation)
        {
            s.endpoints.remove(&node);
            s.forget(node);
        }
    }
}

impl NetState {
    /// Drops every connection and link of `node`.
    fn forget(&mut self, node: NodeId) {
        self.connections.retain(|&(a, b)| a != node && b != node);
        self.links.retain(|&(a, b), _| a != node && b != node);
    }
}
