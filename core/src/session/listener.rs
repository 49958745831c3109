//! The listener: many sessions behind one socket's worth of datagrams, keyed by remote
//! address (kcp-go-session.md §6), shaped like quinn's `Endpoint` but simpler.
//!
//! Bounds a peer cannot push past: at most `backlog` sessions waiting for [`Listener::accept`]
//! (kcp-go: 128; beyond it the datagram is dropped), at most `max_sessions` in all, and
//! un-accepted sessions expire after `accept_timeout`.
//!
//! In the authenticated mode (`session::handshake`) a server session starts half-open: it
//! exists from the client's hello, counts against the backlog, expires after
//! `accept_timeout`, but is announced (`ListenerEvent::Incoming`), replaces an older
//! session of its address, and delivers KCP data only once the client proved the session keys.
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rand_core::RngCore;

use super::aead::{MasterKeys, Role, TYPE_CLIENT_HELLO};
use super::session::{peek_conv, unauthenticated, Crypt};
use super::snmp::Snmp;
use super::CryptMode;
use super::{Session, SessionConfig, SessionInputError};
use crate::driver::{
    DatagramConn, DatagramEndpoint, DatagramTransmit, EndpointEvent, Machine, Messages,
    StreamError, StreamEvent, Transmit, LINGER_TIMEOUT,
};
use crate::kcp::KcpCloseReason;
use crate::rng::{seeded, SimRng};
use crate::stack::{Plain, Side, Stack, StackClose, StreamLayer};

/// Stale timer-heap entries tolerated beyond two per live session before compaction.
pub const TIMER_SLACK: usize = 16;

/// A session owned by a [`Listener`]. Stale ids (of closed sessions) are never reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId {
    idx: u32,
    gen: u32,
}

impl SessionId {
    /// An id made of a slot `index` and that slot's `generation` (bumped each time the slot
    /// is reused, so a stale id never names the slot's next occupant). The KCP listener
    /// makes its own; another [`DatagramEndpoint`] (penet's, a test's) numbers its
    /// connections with it too, so every endpoint shares the runtimes' connection key.
    ///
    /// ```
    /// use tether_core::session::SessionId;
    /// assert_ne!(SessionId::new(3, 0), SessionId::new(3, 1)); // a reused slot: a new id
    /// ```
    pub const fn new(index: u32, generation: u32) -> SessionId {
        SessionId {
            idx: index,
            gen: generation,
        }
    }
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
    /// The conv of sessions opened with [`Listener::connect`]; `None` draws a random one, as
    /// kcp-go's `Dial` (kcp-go-session.md §7). Raw-KCP peers such as ikcp servers often
    /// expect a conv agreed out of band.
    pub client_conv: Option<u32>,
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
            client_conv: None,
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
    /// Authenticated mode: the session's datagram counter reached `u64::MAX`; a new session
    /// must be opened to continue.
    CounterExhausted,
    /// A segment was sent `dead_link` times without an acknowledgement (kcp.md §8.3): the
    /// peer vanished. Policy in core: every runtime closes such a session alike.
    DeadLink,
    /// The per-peer upper layer (a multiplexer) ended the connection: the peer broke its
    /// framing.
    Protocol,
}

/// Listener events, oldest first, in the shared vocabulary: `Incoming(id)` when a session
/// waits in the backlog, `Conn(id, ev)` for its stream events (a plain session's are
/// `Readable`/`Writable`/`Acknowledged` of [`StreamId::SOLE`](crate::driver::StreamId::SOLE)), and
/// `Conn(id, StreamEvent::Closed(reason))` as the final event of that id, exactly once.
pub type ListenerEvent = EndpointEvent<SessionId, StreamEvent<CloseReason>>;

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
    /// Datagrams above kcp-go's 1 500-byte `mtuLimit` (kcp-go-session.md §1): no kcp-go peer
    /// sends one, and taking them would let a peer park 64 KiB per window slot.
    pub dropped_oversize: u64,
}

struct Slot<U: StreamLayer> {
    gen: u32,
    addr: SocketAddr,
    /// The per-peer stack: the session at the bottom (demux, AEAD, conv), `U` above it.
    conn: Stack<Session, U>,
    accepted: bool,
    created: Instant,
    last_rx: Instant,
    scheduled: Option<Instant>,
    dirty: bool,
    closing: Option<CloseReason>,
    /// Whether the application was told (`Incoming`, or `connect`); half-open
    /// authenticated-mode sessions are not, and leave without a `Closed` event.
    announced: bool,
    /// When an idle session gives its buffers back, if it stays idle until then.
    release_at: Option<Instant>,
    /// The session's buffers were given back and it has been idle since.
    released: bool,
    /// [`Listener::close_when_acked`]: close once everything is acknowledged, or at this
    /// instant.
    linger_until: Option<Instant>,
}

/// How long a session must stay idle before it gives its buffers back (issue 13 item 5).
/// Releasing at once would make back-to-back exchanges (a request, its answer, quiet for
/// microseconds, again) free and rebuild their buffers every round trip, about 4 µs per
/// side; sessions quiet for longer pay one timer wake-up (or 4 µs per exchange), under
/// 0.05 % of a core. Short, so a burst of new sessions is small again within milliseconds.
pub const IDLE_RELEASE_DELAY: Duration = Duration::from_millis(20);

/// How a listener finds the session of a datagram.
enum Demux {
    /// kcp-go modes: one listener-wide crypto opens every datagram, then the conv routes it
    /// (kcp-go-session.md §6).
    Compat(Crypt),
    /// Authenticated mode: keys are per session; only hellos open with the listener's
    /// master keys (to learn the conv of a new session).
    Aead(Box<MasterKeys>),
}

/// Many kcp-go sessions behind one UDP socket, each the bottom of a per-peer stack
/// `Stack<Session, U>` ([`Plain`] by default: the session's byte stream as the sole stream;
/// a multiplexer for many streams per peer). One timer heap covers every layer of every
/// connection, since a stack's deadline is the minimum of its layers'.
pub struct Listener<U: StreamLayer = Plain> {
    new_upper: Box<dyn Fn(Side) -> U + Send + Sync>,
    cfg: ListenerConfig,
    demux: Demux,
    rng: SimRng,
    nonce_seed: Box<dyn RngCore + Send>,
    slots: Vec<Option<Slot<U>>>,
    gens: Vec<u32>,
    free: Vec<u32>,
    by_addr: HashMap<SocketAddr, u32>,
    /// Authenticated mode: half-open sessions (hello answered, no proof yet) by address.
    half_open: HashMap<SocketAddr, u32>,
    backlog: VecDeque<SessionId>,
    timers: BinaryHeap<Reverse<(Instant, u32, u32)>>,
    dirty: VecDeque<u32>,
    events: VecDeque<ListenerEvent>,
    scratch: Vec<u8>,
    snmp: Snmp,
    closed_snmp: Snmp,
    stats: ListenerStats,
}

impl<U: StreamLayer> std::fmt::Debug for Listener<U> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Listener")
            .field("sessions", &self.by_addr.len())
            .finish_non_exhaustive()
    }
}

impl Listener<Plain> {
    /// A listener of plain sessions. `rng` seeds every session's nonce generator (a CSPRNG
    /// in production).
    pub fn new(cfg: ListenerConfig, rng: Box<dyn RngCore + Send>) -> Self {
        Listener::with_upper(cfg, rng, |_| Plain::default())
    }
}

impl<U: StreamLayer> Listener<U> {
    /// A listener whose sessions each carry the upper layer `new_upper` makes (called with
    /// the side of the session: [`Side::Server`] for accepted ones, [`Side::Client`] for
    /// [`Listener::connect`]).
    pub fn with_upper(
        cfg: ListenerConfig,
        mut rng: Box<dyn RngCore + Send>,
        new_upper: impl Fn(Side) -> U + Send + Sync + 'static,
    ) -> Self {
        let seed = rng.next_u64();
        Listener {
            new_upper: Box::new(new_upper),
            demux: match cfg.session.crypt {
                CryptMode::Aead(k) => Demux::Aead(Box::new(MasterKeys::new(k, &cfg.session.key))),
                m => Demux::Compat(Crypt::new(m, &cfg.session.key, 0, Role::Server)),
            },
            cfg,
            rng: seeded(seed),
            nonce_seed: rng,
            slots: Vec::new(),
            gens: Vec::new(),
            free: Vec::new(),
            by_addr: HashMap::new(),
            half_open: HashMap::new(),
            backlog: VecDeque::new(),
            timers: BinaryHeap::new(),
            dirty: VecDeque::new(),
            events: VecDeque::new(),
            scratch: Vec::new(),
            snmp: Snmp::default(),
            closed_snmp: Snmp::default(),
            stats: ListenerStats::default(),
        }
    }

    /// Sessions alive (half-open authenticated-mode sessions included).
    pub fn len(&self) -> usize {
        self.by_addr.len() + self.half_open.len()
    }
    /// Whether no session is alive.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
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
            s.merge(&slot.conn.lower().snmp());
        }
        s.curr_estab = self.by_addr.len() as u64;
        s
    }

    /// Takes the oldest session waiting in the backlog.
    pub fn accept(&mut self) -> Option<SessionId> {
        while let Some(id) = self.backlog.pop_front() {
            if let Some(slot) = self.slot_mut(id) {
                slot.accepted = true;
                // The accept deadline no longer applies: reschedule, and drop the stale heap
                // entry if it is next, so an idle listener never wakes for it.
                self.reschedule(id.idx);
                self.drop_stale_timers();
                return Some(id);
            }
        }
        None
    }

    /// Pops heap entries at the top that no longer match their session's deadline, so
    /// [`Listener::poll_timeout`] reports only a deadline that does something.
    fn drop_stale_timers(&mut self) {
        while let Some(&Reverse((t, idx, gen))) = self.timers.peek() {
            let live = matches!(self.slots.get(idx as usize), Some(Some(s)) if s.gen == gen && s.scheduled == Some(t) && s.closing.is_none());
            if live {
                return;
            }
            self.timers.pop();
        }
    }

    /// The session, for reads and writes. Marks it for output draining and rescheduling.
    pub fn session_mut(&mut self, id: SessionId) -> Option<&mut Session> {
        self.mark_dirty(id.idx);
        self.slot_mut(id).map(|s| s.conn.lower_mut())
    }

    /// The whole per-peer stack (its [`crate::driver::Streams`] for the application). Marks
    /// it for output draining and rescheduling.
    pub fn conn_mut(&mut self, id: SessionId) -> Option<&mut Stack<Session, U>> {
        self.mark_dirty(id.idx);
        self.slot_mut(id).map(|s| &mut s.conn)
    }

    /// Ids of every live session (unordered).
    pub fn ids(&self) -> impl Iterator<Item = SessionId> + '_ {
        self.slots.iter().enumerate().filter_map(|(i, s)| {
            s.as_ref()
                .filter(|s| s.closing.is_none() && s.announced)
                .map(|s| SessionId {
                    idx: i as u32,
                    gen: s.gen,
                })
        })
    }

    /// The session, read-only.
    pub fn session(&self, id: SessionId) -> Option<&Session> {
        self.slot(id).map(|s| s.conn.lower())
    }

    /// The remote address of a session.
    pub fn remote(&self, id: SessionId) -> Option<SocketAddr> {
        self.slot(id).map(|s| s.addr)
    }

    /// When the session last received a datagram (any: data, ACK, retransmission, probe),
    /// or when it was created if none came yet: the clock `idle_timeout` runs on.
    pub fn last_received(&self, id: SessionId) -> Option<Instant> {
        self.slot(id).map(|s| s.last_rx)
    }

    /// Closes a session: kcp-go flushes once more and forgets it; nothing tells the peer
    /// (KCP has no FIN; kcp-go-session.md §8). Its last datagrams still go out.
    pub fn close(&mut self, id: SessionId) {
        // A stale id must not close the slot's next occupant.
        if self.slot(id).is_some() {
            self.begin_close(id.idx, CloseReason::Local);
        }
    }

    /// Closes a session once everything written on it is acknowledged (the application
    /// dropped its stream), or after [`LINGER_TIMEOUT`] from `now` if the peer never
    /// acknowledges; then [`CloseReason::Local`]. Policy in core, the same on every runtime.
    pub fn close_when_acked(&mut self, now: Instant, id: SessionId) {
        let Some(slot) = self.slot_mut(id) else {
            return;
        };
        if slot.conn.lower().kcp().all_acked() {
            self.begin_close(id.idx, CloseReason::Local);
            return;
        }
        if slot.linger_until.is_none() {
            slot.linger_until = Some(now.checked_add(LINGER_TIMEOUT).unwrap_or(now));
            self.reschedule(id.idx);
        }
    }

    fn slot(&self, id: SessionId) -> Option<&Slot<U>> {
        self.slots
            .get(id.idx as usize)?
            .as_ref()
            .filter(|s| s.gen == id.gen && s.closing.is_none() && s.announced)
    }

    fn slot_mut(&mut self, id: SessionId) -> Option<&mut Slot<U>> {
        self.slots
            .get_mut(id.idx as usize)?
            .as_mut()
            .filter(|s| s.gen == id.gen && s.closing.is_none() && s.announced)
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
    #[deny(clippy::indexing_slicing, clippy::unwrap_used, clippy::expect_used)]
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        from: SocketAddr,
        data: &[u8],
    ) -> Result<(), SessionInputError> {
        self.check_size(data.len())?;
        let mut buf = std::mem::take(&mut self.scratch);
        buf.clear();
        buf.extend_from_slice(data);
        let r = self.route(now, from, &mut buf);
        self.scratch = buf;
        r
    }

    /// [`Listener::handle_datagram`] without the copy: the kcp-go modes decrypt `data` in
    /// place (the bytes are garbage afterwards; DESIGN.md §3). The authenticated mode still
    /// works on a copy, since a datagram may be tried under two sessions' keys.
    #[deny(clippy::indexing_slicing, clippy::unwrap_used, clippy::expect_used)]
    pub fn handle_datagram_mut(
        &mut self,
        now: Instant,
        from: SocketAddr,
        data: &mut [u8],
    ) -> Result<(), SessionInputError> {
        if matches!(self.demux, Demux::Aead(_)) {
            return self.handle_datagram(now, from, data);
        }
        self.check_size(data.len())?;
        self.route(now, from, data)
    }

    /// Drops (and counts) a datagram larger than any session takes, before any work.
    fn check_size(&mut self, len: usize) -> Result<(), SessionInputError> {
        let max = self.cfg.session.max_datagram();
        if len > max {
            self.stats.dropped_oversize += 1;
            self.snmp.in_errs += 1;
            return Err(SessionInputError::TooLarge { len, max });
        }
        Ok(())
    }

    #[deny(clippy::indexing_slicing, clippy::unwrap_used, clippy::expect_used)]
    fn route(
        &mut self,
        now: Instant,
        from: SocketAddr,
        buf: &mut [u8],
    ) -> Result<(), SessionInputError> {
        let crypt = match &mut self.demux {
            Demux::Aead(_) => return self.route_aead(now, from, buf),
            Demux::Compat(c) => c,
        };
        let wire_len = buf.len();
        // kcp-go modes: the CRC (our only check) passes before anything else happens.
        let opened = crypt.open(buf, &mut self.rng).inspect_err(|_| {
            self.stats.dropped_unprotect += 1;
            self.snmp.in_csum_errors += 1;
        })?;
        let super::handshake::Opened::Data(range) = opened else {
            return Ok(());
        };
        let payload = buf.get(range).unwrap_or_default();
        if payload.len() < 24 {
            self.stats.dropped_unknown += 1;
            return Err(SessionInputError::TooShort(payload.len()));
        }
        let conv = peek_conv(payload);
        if let Some(&idx) = self.by_addr.get(&from) {
            let same = match (conv, self.slots.get(idx as usize).and_then(|s| s.as_ref())) {
                (None, _) => true,
                (Some((c, _)), Some(slot)) => c == slot.conn.lower().conv(),
                _ => true,
            };
            if same {
                return self.feed(idx, now, payload, wire_len);
            }
            match conv {
                // kcp-go-session.md §6 step 3: the peer restarted. A client endpoint has no
                // peer that could restart into it: another conv from its server's address is
                // a spoofer's, and must not kill the session (issue 13 item 2).
                Some((_, 0)) if self.cfg.accept_incoming => {
                    self.begin_close(idx, CloseReason::Replaced)
                }
                Some((_, 0)) => {
                    self.snmp.in_errs += 1;
                    return Ok(());
                }
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
        let idx = self.create(now, from, conv, Role::Server, true);
        self.require_verification(idx);
        self.feed(idx, now, payload, wire_len)
    }

    /// Issue 13 item 4: never send an unknown address more than it sent us.
    fn require_verification(&mut self, idx: u32) {
        if let Some(Some(slot)) = self.slots.get_mut(idx as usize) {
            slot.conn.lower_mut().require_verification();
        }
    }

    #[deny(clippy::indexing_slicing, clippy::unwrap_used, clippy::expect_used)]
    fn feed(
        &mut self,
        idx: u32,
        now: Instant,
        payload: &[u8],
        wire_len: usize,
    ) -> Result<(), SessionInputError> {
        let Some(Some(slot)) = self.slots.get_mut(idx as usize) else {
            return Ok(());
        };
        let r = slot
            .conn
            .lower_input(now, |s| s.handle_opened(now, payload, wire_len));
        self.after_input(idx, now, &r);
        r
    }

    /// Authenticated mode: the session of `from` (or its half-open successor) opens the
    /// datagram itself; a valid hello for a new conv starts a half-open session. Nothing
    /// that fails authentication changes any state (issue 13 item 1).
    #[deny(clippy::indexing_slicing, clippy::unwrap_used, clippy::expect_used)]
    fn route_aead(
        &mut self,
        now: Instant,
        from: SocketAddr,
        buf: &mut [u8],
    ) -> Result<(), SessionInputError> {
        let Demux::Aead(master) = &self.demux else {
            return Ok(());
        };
        // A client hello names its conv: route it to the session of that conv only.
        let hello_conv = match buf.first() {
            Some(&TYPE_CLIENT_HELLO) => match master.open_hello(buf) {
                Ok(Some((_, h))) => Some(h.conv),
                Ok(None) | Err(_) => {
                    self.stats.dropped_unprotect += 1;
                    self.snmp.in_csum_errors += 1;
                    return Err(super::aead::AeadError::BadTag.into());
                }
            },
            _ => None,
        };
        let conv_of = |l: &Listener<U>, idx: u32| {
            l.slots
                .get(idx as usize)
                .and_then(|s| s.as_ref())
                .map(|s| s.conn.lower().conv())
        };
        let mut last_err = None;
        let mut known_conv = false;
        let candidates = [
            self.by_addr.get(&from).copied(),
            self.half_open.get(&from).copied(),
        ];
        for idx in candidates.into_iter().flatten() {
            if hello_conv.is_some_and(|c| Some(c) != conv_of(self, idx)) {
                continue;
            }
            known_conv = true;
            match self.feed_raw(idx, now, buf) {
                Err(e) if unauthenticated(&e) => last_err = Some(e),
                r => return r,
            }
        }
        let conv = match hello_conv {
            // A late or replayed hello of a conv this address already has: nothing new.
            Some(c) if !known_conv => c,
            // Data under no key we hold: a reflection, a replay, or garbage.
            _ => {
                if let Some(e) = last_err {
                    return Err(e);
                }
                self.stats.dropped_unknown += 1;
                return Ok(());
            }
        };
        if !self.cfg.accept_incoming {
            // kcp-go-session.md §2.2 step 1: a client only hears its server.
            self.snmp.in_errs += 1;
            return Ok(());
        }
        // A new (possibly replayed) hello: at most one half-open session per address, all of
        // them counted against the backlog; the live session of the address stays until the
        // newcomer proves itself.
        if let Some(old) = self.half_open.get(&from).copied() {
            self.begin_close(old, CloseReason::Replaced);
        }
        let waiting = self.backlog.len() + self.half_open.len();
        if waiting >= self.cfg.backlog || self.len() >= self.cfg.max_sessions {
            self.stats.dropped_backlog_full += 1;
            return Ok(());
        }
        let idx = self.create(now, from, conv, Role::Server, false);
        self.require_verification(idx);
        self.feed_raw(idx, now, buf)
    }

    /// Hands a whole datagram to a session (authenticated mode).
    #[deny(clippy::indexing_slicing, clippy::unwrap_used, clippy::expect_used)]
    fn feed_raw(&mut self, idx: u32, now: Instant, buf: &[u8]) -> Result<(), SessionInputError> {
        let Some(Some(slot)) = self.slots.get_mut(idx as usize) else {
            return Ok(());
        };
        let r = slot.conn.handle_input(now, buf);
        if !slot.announced && slot.conn.lower().is_verified() {
            self.promote(idx);
        }
        self.after_input(idx, now, &r);
        r
    }

    /// A half-open session whose client proved the keys: it replaces the session of its
    /// address (kcp-go-session.md §6's restart rule, applied only after authentication) and
    /// is announced.
    fn promote(&mut self, idx: u32) {
        let Some(Some(slot)) = self.slots.get_mut(idx as usize) else {
            return;
        };
        slot.announced = true;
        let (addr, id) = (slot.addr, SessionId { idx, gen: slot.gen });
        if self.half_open.get(&addr) == Some(&idx) {
            self.half_open.remove(&addr);
        }
        if let Some(old) = self.by_addr.insert(addr, idx) {
            if old != idx {
                // Keep the old slot from removing the new mapping when it closes.
                self.by_addr.insert(addr, old);
                self.begin_close(old, CloseReason::Replaced);
                self.by_addr.insert(addr, idx);
            }
        }
        self.backlog.push_back(id);
        self.events.push_back(EndpointEvent::Incoming(id));
    }

    /// Bookkeeping after a session took a datagram: only an authenticated datagram counts as
    /// a sign of life (`idle_timeout`).
    fn after_input(&mut self, idx: u32, now: Instant, r: &Result<(), SessionInputError>) {
        if let Some(Some(slot)) = self.slots.get_mut(idx as usize) {
            if !matches!(r, Err(e) if unauthenticated(e)) {
                slot.last_rx = now;
            }
        }
        self.collect_events(idx);
        self.mark_dirty(idx);
    }

    /// Opens a client session to `addr` (kcp-go `Dial`): the conv comes from the injected RNG
    /// (kcp-go-session.md §7). Nothing is sent until the application writes. The session is
    /// already accepted; an existing session to `addr` is replaced.
    pub fn connect(&mut self, now: Instant, addr: SocketAddr) -> SessionId {
        if let Some(&old) = self.by_addr.get(&addr) {
            self.begin_close(old, CloseReason::Replaced);
        }
        let conv = self.cfg.client_conv.unwrap_or_else(|| {
            let mut b = [0u8; 4];
            self.nonce_seed.fill_bytes(&mut b);
            u32::from_le_bytes(b)
        });
        let idx = self.create(now, addr, conv, Role::Client, true);
        self.mark_dirty(idx); // the authenticated mode's hello goes out at once
        let slot = self.slots[idx as usize].as_mut().expect("just created");
        slot.accepted = true;
        let snmp = slot.conn.lower_mut().snmp_mut();
        snmp.passive_opens -= 1;
        snmp.active_opens += 1;
        let id = SessionId { idx, gen: slot.gen };
        self.backlog.retain(|b| *b != id);
        self.events.retain(|e| *e != EndpointEvent::Incoming(id));
        id
    }

    /// A new session in a free slot; `announce` puts it in the backlog at once (otherwise
    /// it is a half-open authenticated-mode session, see [`Listener::promote`]).
    fn create(
        &mut self,
        now: Instant,
        addr: SocketAddr,
        conv: u32,
        role: Role,
        announce: bool,
    ) -> u32 {
        let idx = self.free.pop().unwrap_or_else(|| {
            self.slots.push(None);
            self.gens.push(0);
            (self.slots.len() - 1) as u32
        });
        let gen = self.gens[idx as usize].wrapping_add(1);
        self.gens[idx as usize] = gen;
        // 256 bits from the injected CSPRNG (hello randoms come from this generator).
        let mut seed = [0u8; 32];
        self.nonce_seed.fill_bytes(&mut seed);
        for (s, r) in seed.iter_mut().zip(self.rng.next_u64().to_le_bytes()) {
            *s ^= r;
        }
        let rng = Box::new(<SimRng as rand_core::SeedableRng>::from_seed(seed));
        let mut session = Session::with_role(conv, &self.cfg.session, now, rng, role);
        session.snmp_mut().passive_opens += 1;
        let side = match role {
            Role::Client => Side::Client,
            Role::Server => Side::Server,
        };
        let conn = Stack::new(session, (self.new_upper)(side));
        self.slots[idx as usize] = Some(Slot {
            gen,
            addr,
            conn,
            accepted: false,
            created: now,
            last_rx: now,
            scheduled: None,
            release_at: None,
            released: false,
            linger_until: None,
            dirty: false,
            closing: None,
            announced: announce,
        });
        if !announce {
            self.half_open.insert(addr, idx);
            self.mark_dirty(idx);
            return idx;
        }
        self.by_addr.insert(addr, idx);
        let id = SessionId { idx, gen };
        self.backlog.push_back(id);
        self.events.push_back(EndpointEvent::Incoming(id));
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
        if self.half_open.get(&slot.addr) == Some(&idx) {
            self.half_open.remove(&slot.addr);
        }
        self.backlog.retain(|b| *b != id);
        if slot.announced {
            self.events
                .push_back(EndpointEvent::Conn(id, StreamEvent::Closed(reason)));
        }
        // Drained by poll_transmit (kcp-go's final flush), then freed.
        self.mark_dirty(idx);
    }

    fn free_slot(&mut self, idx: u32) {
        if let Some(slot) = self.slots.get_mut(idx as usize).and_then(Option::take) {
            let mut s = slot.conn.lower().snmp();
            s.curr_estab = 0;
            self.closed_snmp.merge(&s);
            self.free.push(idx);
            self.compact_timers_if_stale();
        }
    }

    /// Moves a connection's events to the listener's queue, applying the policies that are
    /// the same on every runtime: a dead link closes the session (`DeadLink`; the stack
    /// closes it), and a lingering session closes once acknowledged. The stack's own
    /// `Closed` becomes the listener's, with the listener's reason.
    fn collect_events(&mut self, idx: u32) {
        let Some(id) = self.id_of(idx) else { return };
        let mut close = None;
        if let Some(Some(slot)) = self.slots.get_mut(idx as usize) {
            while let Some(ev) = slot.conn.poll_event() {
                let ev = match ev {
                    StreamEvent::Closed(why) => {
                        close = close.or(Some(close_reason(&why)));
                        continue;
                    }
                    StreamEvent::Opened(s) => StreamEvent::Opened(s),
                    StreamEvent::Readable(s) => StreamEvent::Readable(s),
                    StreamEvent::Writable(s) => StreamEvent::Writable(s),
                    StreamEvent::Acknowledged(s) => {
                        if slot.linger_until.is_some() {
                            close = close.or(Some(CloseReason::Local));
                        }
                        StreamEvent::Acknowledged(s)
                    }
                    StreamEvent::StreamClosed(s) => StreamEvent::StreamClosed(s),
                };
                self.events.push_back(EndpointEvent::Conn(id, ev));
            }
        }
        if let Some(reason) = close {
            self.begin_close(idx, reason);
        }
    }

    /// The session's own deadline combined with its expiry deadlines.
    fn deadline(&self, slot: &Slot<U>) -> Option<Instant> {
        let mut d = slot.conn.poll_timeout();
        let mut add = |t: Instant| d = Some(d.map_or(t, |x| x.min(t)));
        if let Some(t) = self.accept_deadline(slot) {
            add(t);
        }
        if let Some(t) = self.idle_deadline(slot) {
            add(t);
        }
        if let Some(t) = slot.release_at {
            add(t);
        }
        if let Some(t) = slot.linger_until {
            add(t);
        }
        d
    }

    /// When an un-accepted session expires; `None` when accepted, or when `accept_timeout` is
    /// too large for an `Instant` (e.g. `Duration::MAX`: never).
    fn accept_deadline(&self, slot: &Slot<U>) -> Option<Instant> {
        if slot.accepted {
            return None;
        }
        slot.created.checked_add(self.cfg.accept_timeout)
    }

    /// When a silent session expires; `None` without `idle_timeout` or when it is too large
    /// for an `Instant` (never).
    fn idle_deadline(&self, slot: &Slot<U>) -> Option<Instant> {
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
            if let Some(t) = slot.conn.poll_transmit(now, buf) {
                return Some((slot.addr, t));
            }
            slot.dirty = false;
            self.dirty.pop_front();
            if slot.closing.is_none() && slot.conn.lower().is_exhausted() {
                self.begin_close(idx, CloseReason::CounterExhausted);
                continue;
            }
            if slot.closing.is_some() {
                self.free_slot(idx);
            } else {
                self.collect_events(idx);
                self.note_idle(idx, now);
                self.reschedule(idx);
            }
        }
        self.drop_stale_timers();
        None
    }

    /// After a session's output was drained: an idle session is due to give its buffers
    /// back [`IDLE_RELEASE_DELAY`] from now (issue 13 item 5: an idle session costs a few
    /// KiB, not the ~48 KiB of FEC codecs and buffers a busy one holds); a busy one is not.
    fn note_idle(&mut self, idx: u32, now: Instant) {
        if let Some(Some(slot)) = self.slots.get_mut(idx as usize) {
            if !slot_idle(slot) {
                slot.release_at = None;
                slot.released = false;
            } else if !slot.released && slot.release_at.is_none() {
                slot.release_at = now.checked_add(IDLE_RELEASE_DELAY);
            }
        }
    }

    /// The earliest deadline of any session (`None`: every session is idle).
    /// Pending output is [`Listener::has_transmit`], never reported here.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.peek().map(|Reverse((t, _, _))| *t)
    }

    /// Whether [`Listener::poll_transmit`] has work now: a session took input, fired a
    /// timer or was touched by the application, and its output was not drained yet (the
    /// drain also reschedules it, so drivers drain while this holds, before sleeping).
    pub fn has_transmit(&self) -> bool {
        !self.dirty.is_empty()
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
        self.drop_stale_timers();
    }

    fn fire(&mut self, idx: u32, now: Instant) {
        let Some(Some(slot)) = self.slots.get(idx as usize) else {
            return;
        };
        let accept_expired = self.accept_deadline(slot).is_some_and(|t| now >= t);
        let idle_expired = self.idle_deadline(slot).is_some_and(|t| now >= t);
        let linger_expired = slot.linger_until.is_some_and(|t| now >= t);
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
        if linger_expired {
            self.begin_close(idx, CloseReason::Local);
            return;
        }
        if slot.release_at.is_some_and(|t| now >= t) {
            slot.release_at = None;
            if slot_idle(slot) {
                // Idle: no KCP timer is due and nothing is to be sent.
                slot.conn.lower_mut().release_idle();
                slot.released = true;
                self.reschedule(idx);
                return;
            }
        }
        slot.conn.handle_timeout(now);
        self.collect_events(idx);
        self.mark_dirty(idx);
    }

    /// Pops the next listener event.
    pub fn poll_event(&mut self) -> Option<ListenerEvent> {
        self.events.pop_front()
    }
}

/// Whether a connection is idle: its session has nothing queued, in flight or unread, and
/// the stack above it has nothing to do.
fn slot_idle<U: StreamLayer>(slot: &Slot<U>) -> bool {
    slot.conn.lower().is_idle()
        && !slot.conn.has_transmit()
        && slot.conn.upper().poll_timeout().is_none()
}

/// The listener's reason for a stack's own close.
fn close_reason<R>(why: &StackClose<KcpCloseReason, R>) -> CloseReason {
    match why {
        StackClose::Lower(KcpCloseReason::DeadLink) => CloseReason::DeadLink,
        StackClose::Lower(KcpCloseReason::Local) => CloseReason::Local,
        StackClose::Upper(_) => CloseReason::Protocol,
    }
}

/// The KCP listener as the shared many-peers contract (see [`DatagramEndpoint`]).
impl<U: StreamLayer> DatagramEndpoint for Listener<U> {
    type ConnId = SessionId;
    type Conn = Stack<Session, U>;
    type Reason = CloseReason;
    type InputError = SessionInputError;
    type Counters = Snmp;

    fn handle_datagram(
        &mut self,
        now: Instant,
        from: SocketAddr,
        data: &[u8],
    ) -> Result<(), SessionInputError> {
        Listener::handle_datagram(self, now, from, data)
    }

    fn handle_datagram_mut(
        &mut self,
        now: Instant,
        from: SocketAddr,
        data: &mut [u8],
    ) -> Result<(), SessionInputError> {
        Listener::handle_datagram_mut(self, now, from, data)
    }

    fn poll_transmit(&mut self, now: Instant, buf: &mut Vec<u8>) -> Option<DatagramTransmit> {
        Listener::poll_transmit(self, now, buf).map(|(to, t)| DatagramTransmit {
            to,
            len: t.len,
            segment_size: None,
        })
    }

    fn has_transmit(&self) -> bool {
        Listener::has_transmit(self)
    }

    fn poll_timeout(&self) -> Option<Instant> {
        Listener::poll_timeout(self)
    }

    fn handle_timeout(&mut self, now: Instant) {
        Listener::handle_timeout(self, now)
    }

    fn poll_event(&mut self) -> Option<ListenerEvent> {
        Listener::poll_event(self)
    }

    fn accept(&mut self) -> Option<SessionId> {
        Listener::accept(self)
    }

    fn connect(&mut self, now: Instant, to: SocketAddr) -> SessionId {
        Listener::connect(self, now, to)
    }

    fn close(&mut self, id: SessionId) {
        Listener::close(self, id)
    }

    fn conn_mut(&mut self, id: SessionId) -> Option<&mut Stack<Session, U>> {
        Listener::conn_mut(self, id)
    }

    fn remote(&self, id: SessionId) -> Option<SocketAddr> {
        Listener::remote(self, id)
    }

    fn backlog_len(&self) -> usize {
        Listener::backlog_len(self)
    }

    fn is_empty(&self) -> bool {
        Listener::is_empty(self)
    }

    fn close_when_acked(&mut self, now: Instant, id: SessionId) {
        Listener::close_when_acked(self, now, id)
    }

    fn last_received(&self, id: SessionId) -> Option<Instant> {
        Listener::last_received(self, id)
    }

    fn counters(&self) -> Snmp {
        Listener::snmp(self)
    }
}

/// Largest message, in segments, a KCP session takes in message mode
/// ([`Messages::max_message`]).
pub use crate::kcp::MAX_MESSAGE_FRAGMENTS;

/// A KCP session's messages (message mode, ikcp's `ikcp_send`/`ikcp_recv`).
impl Messages for Session {
    fn max_message(&self) -> usize {
        self.kcp().mss() * MAX_MESSAGE_FRAGMENTS
    }

    fn write_message(&mut self, data: &[u8]) -> Result<usize, StreamError> {
        Session::write_message(self, data).map_err(|_| StreamError::Blocked)
    }

    fn read_message(&mut self, buf: &mut [u8]) -> Result<usize, StreamError> {
        // An empty message carries nothing for the application: skipped.
        loop {
            match Session::read(self, buf) {
                Ok(0) => continue,
                Ok(n) => return Ok(n),
                Err(_) => return Err(StreamError::Blocked),
            }
        }
    }
}

/// A listener's per-peer stack: keepalive probes and message mode are its KCP session's.
impl<U: StreamLayer> DatagramConn for Stack<Session, U> {
    fn send_keepalive(&mut self) {
        self.lower_mut().send_keepalive();
    }

    fn messages(&mut self) -> Option<&mut dyn Messages> {
        if self.lower().kcp().config().stream {
            return None;
        }
        Some(self.lower_mut())
    }
}
