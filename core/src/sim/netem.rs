//! The sans-IO core of `tether netem`, the userspace UDP impairment proxy: the
//! client-mapping table and the per-client, per-direction [`Link`]s, driven with explicit
//! instants. The CLI owns the sockets and the clock; this module owns every decision.
//!
//! Each distinct client address gets a [`Slot`] (the runtime opens one upstream socket per
//! slot, so the server sees one address per client, as behind a NAT) and two links: `up`
//! (client → server) and `down` (server → client). Their seeds are drawn, up then down, from
//! one [`rng`](crate::rng) stream seeded with [`EngineConfig::seed`] as clients are admitted,
//! so one seed and one arrival order always impair the same datagrams. A client is forgotten
//! once it has been idle (no datagram either way) for [`EngineConfig::idle_timeout`] and
//! nothing of it is in flight; at most [`EngineConfig::max_clients`] are held, and datagrams
//! of further clients are refused (counted) until one expires.
//!
//! Costs: [`Engine::poll_timeout`] scans every client, and a full drain through
//! [`Engine::poll_transmit`] scans every client once plus one step per datagram, so a loop
//! iteration is O(clients) with clients bounded by `max_clients`.
//!
//! ```
//! use std::net::SocketAddr;
//! use std::time::{Duration, Instant};
//! use tether_core::sim::netem::{Dir, Engine, EngineConfig};
//! use tether_core::sim::LinkConfig;
//!
//! let link = LinkConfig::perfect().with_delay(Duration::from_millis(10));
//! let mut netem = Engine::new(EngineConfig::symmetric(link));
//! let now = Instant::now(); // the runtime's clock; the engine never reads one
//! let client: SocketAddr = "127.0.0.1:5000".parse().unwrap();
//! let slot = netem.admit(now, client).expect("room for a client");
//! netem.handle_input(now, slot, Dir::Up, b"hello");
//! let due = netem.poll_timeout().unwrap();
//! let mut buf = Vec::new();
//! let t = netem.poll_transmit(due, &mut buf).unwrap();
//! assert_eq!((t.slot, t.dir, &buf[..t.len]), (slot, Dir::Up, &b"hello"[..]));
//! ```
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::rng::{child_seed, seeded, SimRng};
use crate::sim::{Link, LinkConfig, LinkStats};

/// Index of a client in the table; reused after the client expires.
pub type Slot = usize;

/// Direction of a datagram through the proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dir {
    /// Client → server (received on the listening socket, sent from the client's upstream
    /// socket).
    Up,
    /// Server → client (received on an upstream socket, sent from the listening socket).
    Down,
}

impl Dir {
    /// Both directions, `Up` first.
    pub const ALL: [Dir; 2] = [Dir::Up, Dir::Down];

    /// `client->server` or `server->client`.
    pub fn describe(self) -> &'static str {
        match self {
            Dir::Up => "client->server",
            Dir::Down => "server->client",
        }
    }
}

/// What the engine is built from.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Impairments client → server.
    pub up: LinkConfig,
    /// Impairments server → client.
    pub down: LinkConfig,
    /// Root seed of every link.
    pub seed: u64,
    /// A client idle this long (no datagram either way, nothing in flight) is forgotten.
    pub idle_timeout: Duration,
    /// Bound on clients held at once.
    pub max_clients: usize,
}

impl EngineConfig {
    /// `link` both ways, seed 1, clients forgotten after 60 s idle, at most 4096 of them
    /// (`tether netem`'s defaults); adjust the fields from there.
    pub fn symmetric(link: LinkConfig) -> Self {
        Self {
            up: link.clone(),
            down: link,
            seed: 1,
            idle_timeout: Duration::from_secs(60),
            max_clients: 4096,
        }
    }
}

/// Counters of one direction, over every client that ever was.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DirReport {
    /// The links' own counters, summed.
    pub link: LinkStats,
    /// Datagrams the link delivered but the socket refused (`WouldBlock`): dropped.
    pub send_dropped: u64,
    /// Datagrams the link delivered whose send failed otherwise (e.g. ICMP unreachable).
    pub send_errors: u64,
    /// Receive errors other than `WouldBlock` on the sockets feeding this direction.
    pub recv_errors: u64,
}

/// Everything the proxy counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Report {
    /// Client → server.
    pub up: DirReport,
    /// Server → client.
    pub down: DirReport,
    /// Clients ever admitted.
    pub clients_admitted: u64,
    /// Clients held now.
    pub clients_active: u64,
    /// Clients forgotten after idling.
    pub clients_expired: u64,
    /// Datagrams from new clients dropped because the table was full (or their upstream
    /// socket could not be opened).
    pub refused: u64,
    /// Datagram copies still in transit in the links.
    pub in_flight: u64,
}

impl Report {
    /// The counters of `dir`.
    pub fn dir(&self, dir: Dir) -> &DirReport {
        match dir {
            Dir::Up => &self.up,
            Dir::Down => &self.down,
        }
    }
}

/// A datagram due for sending; its bytes are in the buffer given to
/// [`Engine::poll_transmit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transmit {
    /// The client it belongs to.
    pub slot: Slot,
    /// `Up`: send from the slot's upstream socket to the server; `Down`: send from the
    /// listening socket to [`Engine::addr`] of the slot.
    pub dir: Dir,
    /// Its length.
    pub len: usize,
}

/// The outcome of a send, as the runtime reports it with [`Engine::record_send`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendOutcome {
    /// Handed to the kernel.
    Sent,
    /// The socket buffer was full (`WouldBlock`): dropped, as a full queue would.
    WouldBlock,
    /// Any other error.
    Failed,
}

#[derive(Debug)]
struct Client {
    addr: SocketAddr,
    index: u64,
    last_seen: Instant,
    up: Link,
    down: Link,
}

impl Client {
    fn link(&mut self, dir: Dir) -> &mut Link {
        match dir {
            Dir::Up => &mut self.up,
            Dir::Down => &mut self.down,
        }
    }

    /// When this client next needs attention: its earliest due datagram, or its expiry when
    /// nothing is in flight (`None`: an idle timeout too large for an `Instant`, never).
    fn deadline(&self, idle: Duration) -> Option<Instant> {
        match (self.up.poll_timeout(), self.down.poll_timeout()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (Some(a), None) | (None, Some(a)) => Some(a),
            (None, None) => self.expiry(idle),
        }
    }

    /// When this client expires if it stays silent (`None`: never).
    fn expiry(&self, idle: Duration) -> Option<Instant> {
        self.last_seen.checked_add(idle)
    }
}

/// The client table and its links. See the module docs.
#[derive(Debug)]
pub struct Engine {
    config: EngineConfig,
    slots: Vec<Option<Client>>,
    free: Vec<Slot>,
    by_addr: HashMap<SocketAddr, Slot>,
    /// Counters of expired clients' links, per direction.
    retired: [LinkStats; 2],
    report: Report,
    /// Where the current [`Engine::poll_transmit`] drain has got to.
    cursor: Slot,
    /// The source of every link's seed, drawn in admission order.
    seeds: SimRng,
}

impl Engine {
    /// An empty table.
    pub fn new(config: EngineConfig) -> Self {
        Self {
            slots: Vec::new(),
            free: Vec::new(),
            by_addr: HashMap::new(),
            retired: [LinkStats::default(); 2],
            report: Report::default(),
            cursor: 0,
            seeds: seeded(config.seed),
            config,
        }
    }

    /// The slot of the client at `addr`, if it is held.
    pub fn lookup(&self, addr: SocketAddr) -> Option<Slot> {
        self.by_addr.get(&addr).copied()
    }

    /// Admits a new client at `addr` (which must not be held already) and returns its slot,
    /// or `None` (counted as refused) when the table is full.
    pub fn admit(&mut self, now: Instant, addr: SocketAddr) -> Option<Slot> {
        debug_assert!(self.lookup(addr).is_none(), "{addr} is already held");
        if self.by_addr.len() >= self.config.max_clients {
            self.report.refused += 1;
            return None;
        }
        let index = self.report.clients_admitted;
        self.report.clients_admitted += 1;
        let (up_seed, down_seed) = (child_seed(&mut self.seeds), child_seed(&mut self.seeds));
        let client = Client {
            addr,
            index,
            last_seen: now,
            up: Link::new(self.config.up.clone(), up_seed),
            down: Link::new(self.config.down.clone(), down_seed),
        };
        let slot = match self.free.pop() {
            Some(slot) => {
                self.slots[slot] = Some(client);
                slot
            }
            None => {
                self.slots.push(Some(client));
                self.slots.len() - 1
            }
        };
        self.by_addr.insert(addr, slot);
        Some(slot)
    }

    /// Forgets a just-admitted client whose upstream socket could not be opened; its
    /// datagram counts as refused.
    pub fn abandon(&mut self, slot: Slot) {
        if self.remove(slot).is_some() {
            self.report.refused += 1;
        }
    }

    fn remove(&mut self, slot: Slot) -> Option<Client> {
        let client = self.slots.get_mut(slot)?.take()?;
        self.by_addr.remove(&client.addr);
        self.retired[0].merge(&client.up.stats());
        self.retired[1].merge(&client.down.stats());
        self.free.push(slot);
        Some(client)
    }

    /// The address of the client in `slot`.
    pub fn addr(&self, slot: Slot) -> Option<SocketAddr> {
        Some(self.slots.get(slot)?.as_ref()?.addr)
    }

    /// The admission index of the client in `slot` (0 for the first client ever).
    pub fn client_index(&self, slot: Slot) -> Option<u64> {
        Some(self.slots.get(slot)?.as_ref()?.index)
    }

    /// A datagram `dir` arrived at `now` for the client in `slot`: into its link. Ignored
    /// when the slot is empty.
    pub fn handle_input(&mut self, now: Instant, slot: Slot, dir: Dir, data: &[u8]) {
        if let Some(Some(client)) = self.slots.get_mut(slot) {
            client.last_seen = now;
            client.link(dir).handle_input(now, data);
        }
    }

    /// Puts the next datagram due at `now` in `buf` (cleared first). Call until `None` to
    /// drain everything due; the scan restarts from the first client after `None`.
    pub fn poll_transmit(&mut self, now: Instant, buf: &mut Vec<u8>) -> Option<Transmit> {
        buf.clear();
        while self.cursor < self.slots.len() {
            let slot = self.cursor;
            if let Some(client) = &mut self.slots[slot] {
                let up = client.up.poll_timeout().filter(|&t| t <= now);
                let down = client.down.poll_timeout().filter(|&t| t <= now);
                let dir = match (up, down) {
                    (Some(u), Some(d)) if d < u => Some(Dir::Down),
                    (Some(_), _) => Some(Dir::Up),
                    (None, Some(_)) => Some(Dir::Down),
                    (None, None) => None,
                };
                if let Some(dir) = dir {
                    if let Some(len) = client.link(dir).poll_transmit(now, buf) {
                        return Some(Transmit { slot, dir, len });
                    }
                }
            }
            self.cursor += 1;
        }
        self.cursor = 0;
        None
    }

    /// The runtime's account of sending a [`Transmit`].
    pub fn record_send(&mut self, dir: Dir, outcome: SendOutcome) {
        let r = self.dir_mut(dir);
        match outcome {
            SendOutcome::Sent => {}
            SendOutcome::WouldBlock => r.send_dropped += 1,
            SendOutcome::Failed => r.send_errors += 1,
        }
    }

    /// A receive error (other than `WouldBlock`) on a socket feeding `dir`.
    pub fn record_recv_error(&mut self, dir: Dir) {
        self.dir_mut(dir).recv_errors += 1;
    }

    fn dir_mut(&mut self, dir: Dir) -> &mut DirReport {
        match dir {
            Dir::Up => &mut self.report.up,
            Dir::Down => &mut self.report.down,
        }
    }

    /// When something is next due: a datagram, or a client's expiry.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let idle = self.config.idle_timeout;
        self.slots
            .iter()
            .flatten()
            .filter_map(|c| c.deadline(idle))
            .min()
    }

    /// Forgets every client idle since `idle_timeout` before `now` with nothing in flight,
    /// appending `(slot, addr)` of each to `expired` so the runtime closes its socket.
    pub fn handle_timeout(&mut self, now: Instant, expired: &mut Vec<(Slot, SocketAddr)>) {
        let idle = self.config.idle_timeout;
        for slot in 0..self.slots.len() {
            let due = self.slots[slot].as_ref().is_some_and(|c| {
                c.up.is_empty() && c.down.is_empty() && c.expiry(idle).is_some_and(|t| t <= now)
            });
            if due {
                if let Some(client) = self.remove(slot) {
                    self.report.clients_expired += 1;
                    expired.push((slot, client.addr));
                }
            }
        }
    }

    /// All counters so far, over live and expired clients.
    pub fn report(&self) -> Report {
        let mut report = self.report;
        report.up.link = self.retired[0];
        report.down.link = self.retired[1];
        report.clients_active = self.by_addr.len() as u64;
        report.in_flight = 0;
        for client in self.slots.iter().flatten() {
            report.up.link.merge(&client.up.stats());
            report.down.link.merge(&client.down.stats());
            report.in_flight += (client.up.in_flight() + client.down.in_flight()) as u64;
        }
        report
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::test_start;

    fn config(link: LinkConfig) -> EngineConfig {
        EngineConfig {
            max_clients: 4,
            ..EngineConfig::symmetric(link)
        }
    }

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    fn drain(engine: &mut Engine, now: Instant) -> Vec<(Transmit, Vec<u8>)> {
        let mut out = Vec::new();
        let mut buf = Vec::new();
        while let Some(t) = engine.poll_transmit(now, &mut buf) {
            assert_eq!(t.len, buf.len());
            out.push((t, buf.clone()));
        }
        out
    }

    #[test]
    fn clients_map_to_distinct_slots_and_back() {
        let now = test_start();
        let mut e = Engine::new(config(LinkConfig::perfect()));
        let a = e.admit(now, addr(1)).unwrap();
        let b = e.admit(now, addr(2)).unwrap();
        assert_ne!(a, b);
        assert_eq!(e.lookup(addr(1)), Some(a));
        assert_eq!(e.lookup(addr(2)), Some(b));
        assert_eq!(e.lookup(addr(3)), None);
        assert_eq!(e.addr(b), Some(addr(2)));
        assert_eq!((e.client_index(a), e.client_index(b)), (Some(0), Some(1)));

        e.handle_input(now, a, Dir::Up, b"to server");
        e.handle_input(now, b, Dir::Down, b"to b");
        let out = drain(&mut e, now);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].0.slot, a);
        assert_eq!(out[0].0.dir, Dir::Up);
        assert_eq!(out[0].1, b"to server");
        assert_eq!(out[1].0.slot, b);
        assert_eq!(out[1].0.dir, Dir::Down);
        assert_eq!(out[1].1, b"to b");
        assert!(drain(&mut e, now).is_empty());
    }

    #[test]
    fn table_is_bounded_and_refusals_counted() {
        let now = test_start();
        let mut e = Engine::new(config(LinkConfig::perfect()));
        for port in 1..=4 {
            assert!(e.admit(now, addr(port)).is_some());
        }
        assert_eq!(e.admit(now, addr(5)), None);
        assert_eq!(e.admit(now, addr(6)), None);
        let r = e.report();
        assert_eq!((r.clients_admitted, r.clients_active, r.refused), (4, 4, 2));
        // An abandoned client frees its slot and counts as refused too.
        let slot = e.lookup(addr(4)).unwrap();
        e.abandon(slot);
        assert_eq!(e.admit(now, addr(5)), Some(slot), "slot reused");
        assert_eq!(e.report().refused, 3);
    }

    #[test]
    fn duration_max_idle_timeout_means_never() {
        let start = test_start();
        let mut cfg = config(LinkConfig::perfect());
        cfg.idle_timeout = Duration::MAX;
        let mut e = Engine::new(cfg);
        let a = e.admit(start, addr(1)).unwrap();
        e.handle_input(start, a, Dir::Up, b"x");
        drain(&mut e, start);
        assert_eq!(e.poll_timeout(), None);
        let mut expired = Vec::new();
        e.handle_timeout(start + Duration::from_secs(1 << 40), &mut expired);
        assert!(expired.is_empty());
    }

    #[test]
    fn idle_clients_expire_but_not_while_in_flight() {
        let start = test_start();
        let idle = Duration::from_secs(60);
        let delay = Duration::from_secs(90);
        let mut e = Engine::new(config(LinkConfig::perfect().with_delay(delay)));
        let a = e.admit(start, addr(1)).unwrap();
        let b = e.admit(start, addr(2)).unwrap();
        e.handle_input(start, a, Dir::Up, b"slow");
        let t1 = start + Duration::from_secs(10);
        e.handle_input(t1, b, Dir::Up, b"x");
        let t2 = t1 + Duration::from_secs(1);
        // b keeps talking (downlink traffic refreshes it too).
        e.handle_input(t2, b, Dir::Down, b"y");
        let mut expired = Vec::new();

        // Nothing is due before the first datagram arrives at start + 90 s.
        assert_eq!(e.poll_timeout(), Some(start + delay));
        e.handle_timeout(start + idle, &mut expired);
        assert!(expired.is_empty(), "a is idle but has a datagram in flight");
        assert_eq!(drain(&mut e, start + delay).len(), 1);

        // a is now empty and idle since `start`: expire at once; b expires 60 s after t2 once
        // its datagrams are out.
        e.handle_timeout(start + delay, &mut expired);
        assert_eq!(expired, vec![(a, addr(1))]);
        expired.clear();
        assert_eq!(e.lookup(addr(1)), None);
        assert_eq!(e.poll_timeout(), Some(t1 + delay));
        assert_eq!(drain(&mut e, t2 + delay).len(), 2);
        assert_eq!(e.poll_timeout(), Some(t2 + idle));
        e.handle_timeout(t2 + idle - Duration::from_millis(1), &mut expired);
        assert!(expired.is_empty());
        e.handle_timeout(t2 + idle, &mut expired);
        assert_eq!(expired, vec![(b, addr(2))]);
        assert_eq!(e.poll_timeout(), None);

        let r = e.report();
        assert_eq!((r.clients_active, r.clients_expired), (0, 2));
        assert_eq!(r.up.link.sent, 2, "expired clients' counters are kept");
        assert_eq!(r.up.link.delivered, 2);
        assert_eq!(r.down.link.delivered, 1);
        assert_eq!(r.in_flight, 0);
    }

    #[test]
    fn seeds_follow_admission_order_not_addresses() {
        let run = |ports: [u16; 2]| {
            let now = test_start();
            let mut cfg = config(LinkConfig::perfect().with_loss(0.5));
            cfg.seed = 11;
            let mut e = Engine::new(cfg);
            let slots = ports.map(|p| e.admit(now, addr(p)).unwrap());
            for i in 0..200u32 {
                for slot in slots {
                    for dir in Dir::ALL {
                        e.handle_input(now, slot, dir, &i.to_be_bytes());
                    }
                }
            }
            drain(&mut e, now)
                .into_iter()
                .map(|(t, data)| (t.slot, t.dir, data))
                .collect::<Vec<_>>()
        };
        assert_eq!(run([1, 2]), run([7, 9]));
    }

    /// Losses of 1000 datagrams each way for two clients, as `(slot, dir, index)` triples.
    fn lossy_run(seed: u64) -> Vec<(Slot, Dir, u32)> {
        let now = test_start();
        let mut cfg = config(LinkConfig::perfect().with_loss(0.3));
        cfg.seed = seed;
        let mut e = Engine::new(cfg);
        let slots = [
            e.admit(now, addr(1)).unwrap(),
            e.admit(now, addr(2)).unwrap(),
        ];
        let mut got = Vec::new();
        for i in 0..1000u32 {
            for &slot in &slots {
                for dir in Dir::ALL {
                    e.handle_input(now, slot, dir, &i.to_be_bytes());
                }
            }
            for (t, data) in drain(&mut e, now) {
                got.push((
                    t.slot,
                    t.dir,
                    u32::from_be_bytes(data[..4].try_into().unwrap()),
                ));
            }
        }
        let r = e.report();
        for dir in Dir::ALL {
            let s = r.dir(dir).link;
            assert_eq!(s.sent, 2000);
            assert_eq!(s.delivered + s.lost, s.sent);
            assert!((500..700).contains(&s.lost), "{s:?}");
        }
        got
    }

    #[test]
    fn same_seed_same_impairment_per_client_and_direction() {
        let a = lossy_run(3);
        assert_eq!(a, lossy_run(3));
        assert_ne!(a, lossy_run(4));
        let pick = |slot: Slot, dir: Dir| -> Vec<u32> {
            a.iter()
                .filter(|x| x.0 == slot && x.1 == dir)
                .map(|x| x.2)
                .collect()
        };
        assert_ne!(pick(0, Dir::Up), pick(0, Dir::Down), "directions differ");
        assert_ne!(pick(0, Dir::Up), pick(1, Dir::Up), "clients differ");
    }

    #[test]
    fn send_and_receive_failures_are_counted_per_direction() {
        let mut e = Engine::new(config(LinkConfig::perfect()));
        e.record_send(Dir::Up, SendOutcome::Sent);
        e.record_send(Dir::Up, SendOutcome::WouldBlock);
        e.record_send(Dir::Down, SendOutcome::Failed);
        e.record_recv_error(Dir::Down);
        let r = e.report();
        assert_eq!((r.up.send_dropped, r.up.send_errors), (1, 0));
        assert_eq!((r.down.send_dropped, r.down.send_errors), (0, 1));
        assert_eq!(r.down.recv_errors, 1);
    }

    #[test]
    fn earlier_direction_goes_first_within_a_client() {
        let now = test_start();
        let mut cfg = config(LinkConfig::perfect());
        cfg.up = LinkConfig::perfect().with_delay(Duration::from_millis(10));
        let mut e = Engine::new(cfg);
        let a = e.admit(now, addr(1)).unwrap();
        e.handle_input(now, a, Dir::Up, b"up");
        e.handle_input(now + Duration::from_millis(5), a, Dir::Down, b"down");
        let out = drain(&mut e, now + Duration::from_millis(20));
        let dirs: Vec<Dir> = out.iter().map(|(t, _)| t.dir).collect();
        assert_eq!(dirs, [Dir::Down, Dir::Up]);
    }
}
