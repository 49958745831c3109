//! The listener target: a server listener and up to three client endpoints (listeners with
//! `accept_incoming = false`) exchanging datagrams through a hostile link, plus forged and
//! spoofed datagrams from other addresses.
use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::script::{pattern_bytes, write_len, Fate, Script, StreamCheck};
use super::setup::{setup, Setup};
use crate::driver::StreamEvent;
use crate::rng::seeded;
use crate::session::{Listener, ListenerConfig, ListenerEvent, SessionId};

/// Datagrams one direction of the link holds; beyond it the oldest is lost.
const LINK_QUEUE: usize = 128;
/// The server's bounds: small, so an input reaches them.
const BACKLOG: usize = 4;
const MAX_SESSIONS: usize = 12;
/// Client endpoints.
const CLIENTS: usize = 3;

fn server_addr() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 4000))
}

/// Client `i`'s address (`i < CLIENTS`), or one of a few other sources.
fn addr(i: u8) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 2 + i % 8], 5000 + u16::from(i % 8)))
}

/// One endpoint plus what the script knows about its sessions.
struct Node {
    l: Listener,
    me: SocketAddr,
    /// Sessions the application holds (accepted or connected), oldest first.
    held: Vec<SessionId>,
    written: HashMap<SessionId, u64>,
    read: HashMap<SessionId, StreamCheck>,
    /// Connections that reported their final `Closed` (ids are never reused).
    closed: HashSet<SessionId>,
}

impl Node {
    fn new(setup: &Setup, me: SocketAddr, server: bool, idle: bool, seed: u64) -> Self {
        let mut lc = ListenerConfig::new(setup.cfg.clone());
        lc.backlog = BACKLOG;
        lc.max_sessions = MAX_SESSIONS;
        lc.accept_timeout = Duration::from_secs(2);
        lc.idle_timeout = idle.then_some(Duration::from_secs(5));
        lc.accept_incoming = server;
        Node {
            l: Listener::new(lc, Box::new(seeded(seed))),
            me,
            held: Vec::new(),
            written: HashMap::new(),
            read: HashMap::new(),
            closed: HashSet::new(),
        }
    }

    fn pick(&self, b: u8) -> Option<SessionId> {
        (!self.held.is_empty()).then(|| self.held[usize::from(b) % self.held.len()])
    }

    fn write(&mut self, id: SessionId, n: usize) {
        let off = self.written.get(&id).copied().unwrap_or(0);
        if let Some(s) = self.l.session_mut(id) {
            if let Ok(k) = s.write(pattern_bytes(off, n)) {
                self.written.insert(id, off + k as u64);
            }
        }
    }

    fn read_all(&mut self, strict: bool) {
        let mut buf = [0u8; 4096];
        for &id in &self.held {
            let Some(s) = self.l.session_mut(id) else {
                continue;
            };
            let check = self.read.entry(id).or_default();
            while let Ok(n) = s.read(&mut buf) {
                if n == 0 {
                    break;
                }
                check.check(&buf[..n], strict);
            }
        }
    }

    /// Puts what the endpoint sends on the link, drains its events, checks its bounds.
    fn drain(&mut self, now: Instant, link: &mut VecDeque<(SocketAddr, SocketAddr, Vec<u8>)>) {
        let mut buf = Vec::new();
        while let Some((to, _)) = self.l.poll_transmit(now, &mut buf) {
            if link.len() == LINK_QUEUE {
                link.pop_front();
            }
            link.push_back((self.me, to, std::mem::take(&mut buf)));
        }
        assert!(!self.l.has_transmit(), "has_transmit after a full drain");
        while let Some(ev) = self.l.poll_event() {
            let (ListenerEvent::Incoming(id) | ListenerEvent::Conn(id, _)) = ev;
            // The driver contract: `Closed` is final, exactly once per connection.
            assert!(!self.closed.contains(&id), "an event after Closed: {ev:?}");
            if let ListenerEvent::Conn(id, StreamEvent::Closed(_)) = ev {
                self.closed.insert(id);
                self.held.retain(|h| *h != id);
                self.written.remove(&id);
                self.read.remove(&id);
            }
        }
        assert!(
            self.l.len() <= MAX_SESSIONS,
            "session table past max_sessions"
        );
        assert!(self.l.backlog_len() <= BACKLOG, "backlog past its bound");
        assert!(self.l.debug_bounds_ok(), "timer heap past its bound");
        for id in self.l.ids() {
            let s = self.l.session(id).expect("listed session");
            assert!(
                s.kcp().debug_bounds_ok(),
                "a KCP buffer grew past its bound"
            );
        }
    }

    fn fire(&mut self, now: Instant, link: &mut VecDeque<(SocketAddr, SocketAddr, Vec<u8>)>) {
        if self.l.poll_timeout().is_some_and(|t| t <= now) {
            self.l.handle_timeout(now);
            self.drain(now, link);
            if let Some(t) = self.l.poll_timeout() {
                assert!(
                    t > now,
                    "deadline not after handle_timeout and a full drain"
                );
            }
        }
    }
}

/// A server listener and [`CLIENTS`] client endpoints of the setting the first byte selects
/// (idle expiry on when its bit 3 is set, as the FEC choice's low bit), driven by the rest
/// of the input: connects, accepts, writes, reads, closes, link deliveries with a fate each,
/// spoofed and forged datagrams at both sides, and time steps. Checks the listener's bounds
/// (sessions, backlog, each session's KCP buffers), that deadlines move past `now`, and, in
/// the authenticated modes, that every byte read is the byte written at that offset.
pub fn listener(start: Instant, data: &[u8]) {
    run_listener(start, data);
}

/// Stream bytes the server's accepted sessions read in all, in [`listener`] (the harness's
/// own tests check that scripts reach accept and delivery in every mode).
pub(crate) fn run_listener(start: Instant, data: &[u8]) -> u64 {
    let mut s = Script::new(data);
    let sel = s.byte();
    let setup = setup(sel);
    let strict = setup.authenticated();
    let idle = sel & 0x08 != 0;
    let mut server = Node::new(setup, server_addr(), true, idle, 1);
    let mut clients: Vec<Node> = (0..CLIENTS as u8)
        .map(|i| Node::new(setup, addr(i), false, idle, 10 + u64::from(i)))
        .collect();
    // (from, to, datagram) in flight towards the server, and towards the clients.
    let mut up = VecDeque::new();
    let mut down = VecDeque::new();
    let mut now = start;
    while let Some(op) = s.next() {
        let c = usize::from(s.byte()) % CLIENTS;
        match op % 14 {
            0 => {
                let id = clients[c].l.connect(now, server_addr());
                clients[c].held.retain(|h| *h != id);
                clients[c].held.push(id);
            }
            1 => {
                let n = write_len(s.byte());
                if let Some(id) = clients[c].pick(s.byte()) {
                    clients[c].write(id, n);
                }
            }
            2 => {
                if let Some(id) = server.l.accept() {
                    server.held.push(id);
                }
            }
            3 => {
                let n = write_len(s.byte());
                if let Some(id) = server.pick(s.byte()) {
                    server.write(id, n);
                }
            }
            4 => {
                server.read_all(strict);
                for cl in &mut clients {
                    cl.read_all(strict);
                }
            }
            5 => {
                if let Some(id) = server.pick(s.byte()) {
                    server.l.close(id);
                }
            }
            6 => {
                if let Some(id) = clients[c].pick(s.byte()) {
                    clients[c].l.close(id);
                }
            }
            7 => {
                let fate = Fate::read(&mut s);
                let other = s.byte();
                if let Some((from, _, d)) = up.pop_front() {
                    let from = if fate == Fate::Readdress {
                        addr(other)
                    } else {
                        from
                    };
                    // In place, as a socket loop feeds its receive buffers.
                    for mut d in fate.apply(d) {
                        let _ = server.l.handle_datagram_mut(now, from, &mut d);
                    }
                }
            }
            8 => {
                let fate = Fate::read(&mut s);
                let other = s.byte();
                if let Some((from, to, d)) = down.pop_front() {
                    let from = if fate == Fate::Readdress {
                        addr(other)
                    } else {
                        from
                    };
                    if let Some(cl) = clients.iter_mut().find(|n| n.me == to) {
                        for mut d in fate.apply(d) {
                            let _ = cl.l.handle_datagram_mut(now, from, &mut d);
                        }
                    }
                }
            }
            9 => {
                let from = addr(s.byte());
                let _ = server.l.handle_datagram(now, from, s.datagram());
            }
            10 => {
                let from = addr(s.byte());
                if let Some(d) = setup.seal(s.datagram()) {
                    let _ = server.l.handle_datagram(now, from, &d);
                }
            }
            11 => {
                // At a client, as if from its server (an off-path spoofer) or another source.
                let from = if s.byte() & 1 == 0 {
                    server_addr()
                } else {
                    addr(s.byte())
                };
                if let Some(d) = setup.seal(s.datagram()) {
                    let _ = clients[c].l.handle_datagram(now, from, &d);
                }
            }
            12 => now += Duration::from_millis(u64::from(s.u16()) * 4),
            _ => {
                let next = std::iter::once(&server)
                    .chain(&clients)
                    .filter_map(|n| n.l.poll_timeout())
                    .min();
                if let Some(t) = next {
                    now = now.max(t);
                }
            }
        }
        server.drain(now, &mut down);
        for cl in &mut clients {
            cl.drain(now, &mut up);
        }
        server.fire(now, &mut down);
        for cl in &mut clients {
            cl.fire(now, &mut up);
        }
    }
    server.read_all(strict);
    server.read.values().map(|c| c.offset).sum()
}
