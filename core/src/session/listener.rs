//! The listener: many sessions behind one socket's worth of datagrams, keyed by remote
//! address (kcp-go-session.md §6), shaped like quinn's `Endpoint` but simpler.
//!
//! Bounds a peer cannot push past: at most `backlog` sessions waiting for [`Listener::accept`]
//! (kcp-go: 128; beyond it the datagram is dropped), at most `max_sessions` in all, and
//! un-accepted sessions expire after `accept_timeout`.
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rand_core::RngCore;

use super::session::{peek_conv, Crypt};
use super::snmp::Snmp;
use super::{Session, SessionConfig, SessionInputError};
use crate::driver::{Machine, Transmit};
use crate::kcp::KcpEvent;
use crate::rng::{seeded, SimRng};

/// Stale timer-heap entries tolerated beyond two per live session before compaction.
pub const TIMER_SLACK: usize = 16;

/// A session owned by a [`Listener`]. Stale ids (of closed sessions) are never reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SessionId {
    idx: u32,
    gen: u32,
}

/// Listener knobs.
#[derive(Debug, Clone)]
pub struct ListenerConfig {
    /// Settings of every session (applied before its first datagram is processed, so the
    /// kcp-go start-up stall of kcp-go-session.md's appendix cannot happen).
    pub session: SessionConfig,
    /// Sessions waiting for `accept` (kcp-go's backlog is 128).
    pub backlog: usize,
    /// Sessions alive at once.
    pub max_sessions: usize,
    /// An un-accepted session is dropped after this long.
    pub accept_timeout: Duration,
    /// Close a session that received nothing for this long (`None`: never, as kcp-go).
    pub idle_timeout: Option<Duration>,
    /// Whether datagrams from unknown addresses create sessions (a server). A client
    /// endpoint turns this off: kcp-go clients drop datagrams from other sources (`InErrs`).
    pub accept_incoming: bool,
}

impl ListenerConfig {
    /// kcp-go's bounds around `session`.
    pub fn new(session: SessionConfig) -> Self {
        ListenerConfig {
            session,
            backlog: 128,
            max_sessions: 65_536,
            accept_timeout: Duration::from_secs(30),
            idle_timeout: None,
            accept_incoming: true,
        }
    }
}

/// Why a session left the listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// The application closed it.
    Local,
    /// The same address started a new conversation (new conv, sn 0; kcp-go-session.md §6).
    Replaced,
    /// Not accepted within `accept_timeout`.
    AcceptTimeout,
    /// Nothing received within `idle_timeout`.
    IdleTimeout,
}

/// Listener events, oldest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListenerEvent {
    /// A new session is waiting in the backlog.
    Incoming(SessionId),
    /// An event of one session.
    Session(SessionId, KcpEvent),
    /// A session is gone (final event for that id).
    Closed(SessionId, CloseReason),
}

/// Listener-level drops, beyond the per-session SNMP counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ListenerStats {
    /// Datagrams dropped because the backlog or the session table was full.
    pub dropped_backlog_full: u64,
    /// Datagrams from a known address with a different conv and sn ≠ 0.
    pub dropped_conv_mismatch: u64,
    /// Datagrams that failed decryption or CRC before a session was found.
    pub dropped_unprotect: u64,
    /// Parity or runt datagrams from an unknown address.
    pub dropped_unknown: u64,
}

struct Slot {
    gen: u32,
    addr: SocketAddr,
    session: Session,
    accepted: bool,
    created: Instant,
    last_rx: Instant,
    scheduled: Option<Instant>,
    dirty: bool,
    closing: Option<CloseReason>,
}

/// Many kcp-go sessions behind one UDP socket.
pub struct Listener {
    cfg: ListenerConfig,
    crypt: Crypt,
    rng: SimRng,
    nonce_seed: Box<dyn RngCore + Send>,
    slots: Vec<Option<Slot>>,
    gens: Vec<u32>,
    free: Vec<u32>,
    by_addr: HashMap<SocketAddr, u32>,
    backlog: VecDeque<SessionId>,
    timers: BinaryHeap<Reverse<(Instant, u32, u32)>>,
    dirty: VecDeque<u32>,
    events: VecDeque<ListenerEvent>,
    scratch: Vec<u8>,
    last_now: Option<Instant>,
    snmp: Snmp,
    closed_snmp: Snmp,
    stats: ListenerStats,
}

impl std::fmt::Debug for Listener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Listener")
            .field("sessions", &self.by_addr.len())
            .finish_non_exhaustive()
    }
}

impl Listener {
    /// A listener. `rng` seeds every session's nonce generator (a CSPRNG in production).
    pub fn new(cfg: ListenerConfig, mut rng: Box<dyn RngCore + Send>) -> Self {
        let seed = rng.next_u64();
        Listener {
            crypt: Crypt::new(cfg.session.crypt, &cfg.session.key),
            cfg,
            rng: seeded(seed),
            nonce_seed: rng,
            slots: Vec::new(),
            gens: Vec::new(),
            free: Vec::new(),
            by_addr: HashMap::new(),
            backlog: VecDeque::new(),
            timers: BinaryHeap::new(),
            dirty: VecDeque::new(),
            events: VecDeque::new(),
            scratch: Vec::new(),
            last_now: None,
            snmp: Snmp::default(),
            closed_snmp: Snmp::default(),
            stats: ListenerStats::default(),
        }
    }

    /// Sessions alive.
    pub fn len(&self) -> usize {
        self.by_addr.len()
    }
    /// Whether no session is alive.
    pub fn is_empty(&self) -> bool {
        self.by_addr.is_empty()
    }
    /// Sessions waiting for [`Listener::accept`].
    pub fn backlog_len(&self) -> usize {
        self.backlog.len()
    }

    /// Listener-level drop counters.
    pub fn stats(&self) -> ListenerStats {
        self.stats
    }

    /// kcp-go's 24 counters summed over every session, alive or closed.
    pub fn snmp(&self) -> Snmp {
        let mut s = self.snmp;
        s.merge(&self.closed_snmp);
        for slot in self.slots.iter().flatten() {
            s.merge(&slot.session.snmp());
        }
        s.curr_estab = self.by_addr.len() as u64;
        s
    }

    /// Takes the oldest session waiting in the backlog.
    pub fn accept(&mut self) -> Option<SessionId> {
        while let Some(id) = self.backlog.pop_front() {
            if let Some(slot) = self.slot_mut(id) {
                slot.accepted = true;
                return Some(id);
            }
        }
        None
    }

    /// The session, for reads and writes. Marks it for output draining and rescheduling.
    pub fn session_mut(&mut self, id: SessionId) -> Option<&mut Session> {
        self.mark_dirty(id.idx);
        self.slot_mut(id).map(|s| &mut s.session)
    }

    /// Ids of every live session (unordered).
    pub fn ids(&self) -> impl Iterator<Item = SessionId> + '_ {
        self.slots.iter().enumerate().filter_map(|(i, s)| {
            s.as_ref()
                .filter(|s| s.closing.is_none())
                .map(|s| SessionId {
                    idx: i as u32,
                    gen: s.gen,
                })
        })
    }

    /// The session, read-only.
    pub fn session(&self, id: SessionId) -> Option<&Session> {
        self.slot(id).map(|s| &s.session)
    }

    /// The remote address of a session.
    pub fn remote(&self, id: SessionId) -> Option<SocketAddr> {
        self.slot(id).map(|s| s.addr)
    }

    /// Closes a session: kcp-go flushes once more and forgets it; nothing tells the peer
    /// (KCP has no FIN; kcp-go-session.md §8). Its last datagrams still go out.
    pub fn close(&mut self, id: SessionId) {
        self.begin_close(id.idx, CloseReason::Local);
    }

    fn slot(&self, id: SessionId) -> Option<&Slot> {
        self.slots
            .get(id.idx as usize)?
            .as_ref()
            .filter(|s| s.gen == id.gen && s.closing.is_none())
    }

    fn slot_mut(&mut self, id: SessionId) -> Option<&mut Slot> {
        self.slots
            .get_mut(id.idx as usize)?
            .as_mut()
            .filter(|s| s.gen == id.gen && s.closing.is_none())
    }

    fn id_of(&self, idx: u32) -> Option<SessionId> {
        self.slots
            .get(idx as usize)?
            .as_ref()
            .map(|s| SessionId { idx, gen: s.gen })
    }

    fn mark_dirty(&mut self, idx: u32) {
        if let Some(Some(slot)) = self.slots.get_mut(idx as usize) {
            if !slot.dirty {
                slot.dirty = true;
                self.dirty.push_back(idx);
            }
        }
    }

    /// One datagram from `from` (kcp-go-session.md §2.2, §6).
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        from: SocketAddr,
        data: &[u8],
    ) -> Result<(), SessionInputError> {
        self.last_now = Some(now);
        let mut buf = std::mem::take(&mut self.scratch);
        buf.clear();
        buf.extend_from_slice(data);
        let r = self.route(now, from, &mut buf);
        self.scratch = buf;
        r
    }

    fn route(
        &mut self,
        now: Instant,
        from: SocketAddr,
        buf: &mut [u8],
    ) -> Result<(), SessionInputError> {
        let (range, ctr) = self.crypt.open(buf).inspect_err(|_| {
            self.stats.dropped_unprotect += 1;
            self.snmp.in_csum_errors += 1;
        })?;
        let payload = &buf[range];
        if payload.len() < 24 {
            self.stats.dropped_unknown += 1;
            return Err(SessionInputError::TooShort(payload.len()));
        }
        let conv = peek_conv(payload);
        if let Some(&idx) = self.by_addr.get(&from) {
            let same = match (conv, self.slots.get(idx as usize).and_then(|s| s.as_ref())) {
                (None, _) => true,
                (Some((c, _)), Some(slot)) => c == slot.session.conv(),
                _ => true,
            };
            if same {
                return self.feed(idx, now, payload, ctr);
            }
            match conv {
                // kcp-go-session.md §6 step 3: the peer restarted.
                Some((_, 0)) => self.begin_close(idx, CloseReason::Replaced),
                _ => {
                    self.stats.dropped_conv_mismatch += 1;
                    return Ok(());
                }
            }
        }
        let Some((conv, _)) = conv else {
            self.stats.dropped_unknown += 1;
            return Ok(());
        };
        if !self.cfg.accept_incoming {
            // kcp-go-session.md §2.2 step 1: a client only hears its server.
            self.snmp.in_errs += 1;
            return Ok(());
        }
        let waiting = self.backlog.len();
        if waiting >= self.cfg.backlog || self.by_addr.len() >= self.cfg.max_sessions {
            self.stats.dropped_backlog_full += 1;
            return Ok(());
        }
        let idx = self.create(now, from, conv);
        self.feed(idx, now, payload, ctr)
    }

    fn feed(
        &mut self,
        idx: u32,
        now: Instant,
        payload: &[u8],
        ctr: Option<u64>,
    ) -> Result<(), SessionInputError> {
        let Some(Some(slot)) = self.slots.get_mut(idx as usize) else {
            return Ok(());
        };
        slot.last_rx = now;
        let r = slot.session.handle_opened(now, payload, ctr);
        self.collect_events(idx);
        self.mark_dirty(idx);
        r
    }

    /// Opens a client session to `addr` (kcp-go `Dial`): the conv comes from the injected RNG
    /// (kcp-go-session.md §7). Nothing is sent until the application writes. The session is
    /// already accepted; an existing session to `addr` is replaced.
    pub fn connect(&mut self, now: Instant, addr: SocketAddr) -> SessionId {
        self.last_now = Some(now);
        if let Some(&old) = self.by_addr.get(&addr) {
            self.begin_close(old, CloseReason::Replaced);
        }
        let mut b = [0u8; 4];
        self.nonce_seed.fill_bytes(&mut b);
        let idx = self.create(now, addr, u32::from_le_bytes(b));
        let slot = self.slots[idx as usize].as_mut().expect("just created");
        slot.accepted = true;
        let snmp = slot.session.snmp_mut();
        snmp.passive_opens -= 1;
        snmp.active_opens += 1;
        let id = SessionId { idx, gen: slot.gen };
        self.backlog.retain(|b| *b != id);
        self.events.retain(|e| *e != ListenerEvent::Incoming(id));
        id
    }

    fn create(&mut self, now: Instant, addr: SocketAddr, conv: u32) -> u32 {
        let idx = self.free.pop().unwrap_or_else(|| {
            self.slots.push(None);
            self.gens.push(0);
            (self.slots.len() - 1) as u32
        });
        let gen = self.gens[idx as usize].wrapping_add(1);
        self.gens[idx as usize] = gen;
        let rng = Box::new(seeded(self.rng.next_u64() ^ self.nonce_seed.next_u64()));
        let mut session = Session::new(conv, &self.cfg.session, now, rng);
        session.snmp_mut().passive_opens += 1;
        self.slots[idx as usize] = Some(Slot {
            gen,
            addr,
            session,
            accepted: false,
            created: now,
            last_rx: now,
            scheduled: None,
            dirty: false,
            closing: None,
        });
        self.by_addr.insert(addr, idx);
        let id = SessionId { idx, gen };
        self.backlog.push_back(id);
        self.events.push_back(ListenerEvent::Incoming(id));
        let alive = self.by_addr.len() as u64;
        self.snmp.max_conn = self.snmp.max_conn.max(alive);
        idx
    }

    fn begin_close(&mut self, idx: u32, reason: CloseReason) {
        let Some(Some(slot)) = self.slots.get_mut(idx as usize) else {
            return;
        };
        if slot.closing.is_some() {
            return;
        }
        slot.closing = Some(reason);
        let id = SessionId { idx, gen: slot.gen };
        if self.by_addr.get(&slot.addr) == Some(&idx) {
            self.by_addr.remove(&slot.addr);
        }
        self.backlog.retain(|b| *b != id);
        self.events.push_back(ListenerEvent::Closed(id, reason));
        // Drained by poll_transmit (kcp-go's final flush), then freed.
        self.mark_dirty(idx);
    }

    fn free_slot(&mut self, idx: u32) {
        if let Some(slot) = self.slots.get_mut(idx as usize).and_then(Option::take) {
            let mut s = slot.session.snmp();
            s.curr_estab = 0;
            self.closed_snmp.merge(&s);
            self.free.push(idx);
            self.compact_timers_if_stale();
        }
    }

    fn collect_events(&mut self, idx: u32) {
        let Some(id) = self.id_of(idx) else { return };
        if let Some(Some(slot)) = self.slots.get_mut(idx as usize) {
            while let Some(ev) = slot.session.poll_event() {
                self.events.push_back(ListenerEvent::Session(id, ev));
            }
        }
    }

    /// The session's own deadline combined with its expiry deadlines.
    fn deadline(&self, slot: &Slot) -> Option<Instant> {
        let mut d = slot.session.poll_timeout();
        let mut add = |t: Instant| d = Some(d.map_or(t, |x| x.min(t)));
        if let Some(t) = self.accept_deadline(slot) {
            add(t);
        }
        if let Some(t) = self.idle_deadline(slot) {
            add(t);
        }
        d
    }

    /// When an un-accepted session expires; `None` when accepted, or when `accept_timeout` is
    /// too large for an `Instant` (e.g. `Duration::MAX`: never).
    fn accept_deadline(&self, slot: &Slot) -> Option<Instant> {
        if slot.accepted {
            return None;
        }
        slot.created.checked_add(self.cfg.accept_timeout)
    }

    /// When a silent session expires; `None` without `idle_timeout` or when it is too large
    /// for an `Instant` (never).
    fn idle_deadline(&self, slot: &Slot) -> Option<Instant> {
        slot.last_rx.checked_add(self.cfg.idle_timeout?)
    }

    fn reschedule(&mut self, idx: u32) {
        let Some(Some(slot)) = self.slots.get(idx as usize) else {
            return;
        };
        let d = self.deadline(slot);
        let gen = slot.gen;
        if let Some(Some(slot)) = self.slots.get_mut(idx as usize) {
            if slot.scheduled != d {
                slot.scheduled = d;
                if let Some(t) = d {
                    self.timers.push(Reverse((t, idx, gen)));
                    self.compact_timers_if_stale();
                }
            }
        }
    }

    /// A rescheduled session leaves its old entry in the heap (popped and ignored when due).
    /// A session whose deadline keeps moving — constant traffic with `idle_timeout`, where
    /// each exchange alternates KCP's timer and the far idle deadline — would pile them up:
    /// past two per live session, rebuild the heap from the live slots' deadlines
    /// (amortised O(1) per push, since at least half the entries go each time).
    fn compact_timers_if_stale(&mut self) {
        if self.timers.len() <= 2 * self.by_addr.len() + TIMER_SLACK {
            return;
        }
        let live: Vec<_> = self
            .slots
            .iter()
            .enumerate()
            .filter_map(|(idx, s)| {
                let s = s.as_ref().filter(|s| s.closing.is_none())?;
                Some(Reverse((s.scheduled?, idx as u32, s.gen)))
            })
            .collect();
        self.timers = BinaryHeap::from(live);
    }

    /// The next datagram to send and its destination.
    pub fn poll_transmit(
        &mut self,
        now: Instant,
        buf: &mut Vec<u8>,
    ) -> Option<(SocketAddr, Transmit)> {
        while let Some(&idx) = self.dirty.front() {
            let Some(Some(slot)) = self.slots.get_mut(idx as usize) else {
                self.dirty.pop_front();
                continue;
            };
            if let Some(t) = slot.session.poll_transmit(now, buf) {
                return Some((slot.addr, t));
            }
            slot.dirty = false;
            self.dirty.pop_front();
            if slot.closing.is_some() {
                self.free_slot(idx);
            } else {
                self.collect_events(idx);
                self.reschedule(idx);
            }
        }
        None
    }

    /// The earliest deadline of any session (`None`: every session is idle).
    pub fn poll_timeout(&self) -> Option<Instant> {
        let timer = self.timers.peek().map(|Reverse((t, _, _))| *t);
        if !self.dirty.is_empty() {
            // Output is pending "now"; never hide an earlier timer behind it, and never
            // report nothing when the listener has not seen a clock yet.
            return match (self.last_now, timer) {
                (Some(n), Some(t)) => Some(n.min(t)),
                (n, t) => n.or(t),
            };
        }
        timer
    }

    /// Entries in the timer heap, stale ones included (for bound checks in tests and fuzzing).
    pub fn timer_entries(&self) -> usize {
        self.timers.len()
    }

    /// Whether the listener's own buffers are within their bounds: the timer heap holds at
    /// most two entries per live session plus [`TIMER_SLACK`] (stale entries are compacted).
    pub fn debug_bounds_ok(&self) -> bool {
        self.timers.len() <= 2 * self.by_addr.len() + TIMER_SLACK
    }

    /// Fires the timers due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.last_now = Some(now);
        while let Some(&Reverse((t, idx, gen))) = self.timers.peek() {
            if t > now {
                break;
            }
            self.timers.pop();
            let live = matches!(self.slots.get(idx as usize), Some(Some(s)) if s.gen == gen && s.scheduled == Some(t) && s.closing.is_none());
            if live {
                self.fire(idx, now);
            }
        }
    }

    fn fire(&mut self, idx: u32, now: Instant) {
        let Some(Some(slot)) = self.slots.get(idx as usize) else {
            return;
        };
        let accept_expired = self.accept_deadline(slot).is_some_and(|t| now >= t);
        let idle_expired = self.idle_deadline(slot).is_some_and(|t| now >= t);
        let Some(Some(slot)) = self.slots.get_mut(idx as usize) else {
            return;
        };
        slot.scheduled = None;
        if accept_expired {
            self.begin_close(idx, CloseReason::AcceptTimeout);
            return;
        }
        if idle_expired {
            self.begin_close(idx, CloseReason::IdleTimeout);
            return;
        }
        slot.session.handle_timeout(now);
        self.collect_events(idx);
        self.mark_dirty(idx);
    }

    /// Pops the next listener event.
    pub fn poll_event(&mut self) -> Option<ListenerEvent> {
        self.events.pop_front()
    }
}
