//! The body of the socket loop every runtime runs: batched reads into the core listener with
//! one `now` per batch, timers, moving bytes between the hub and the sessions, and batched
//! writes that stop at `WouldBlock` (no unbounded side queue). Runtimes add only readiness
//! and a timer.
use std::collections::VecDeque;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::Instant;

use tether_core::driver::{
    DatagramConn, DatagramEndpoint, EndpointEvent, Messages, StreamEvent, StreamId, Streams,
};
use tether_core::session::snmp::Snmp;
use tether_core::session::{CloseReason, Listener, SessionId};
use tether_core::stack::Plain;

use crate::hub::{Gone, Hub, HubState, StreamBuf, StreamKey};
use crate::pump;
use crate::udp::{self, RecvBatch};

/// Datagram batches read per readiness event before other work gets a turn.
const MAX_BATCHES_PER_WAKE: usize = 64;
/// Un-accepted sessions at which reading pauses so the application can accept.
const ACCEPT_PRESSURE: usize = 32;
/// Datagrams queued for one `send_batch` round.
const MAX_PENDING: usize = 256;
/// How stale the hub's SNMP snapshot may get while the endpoint is active (summing the
/// counters walks every session, so it is not done on every wake-up).
pub const SNMP_REFRESH: std::time::Duration = std::time::Duration::from_millis(100);

/// Counters of the loop itself (the idle-cost test reads them).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DriverStats {
    /// Loop iterations (wake-ups).
    pub wakeups: u64,
    /// Datagrams received.
    pub datagrams_in: u64,
    /// Datagrams sent.
    pub datagrams_out: u64,
    /// `recvmmsg`/`sendmmsg` calls.
    pub syscalls: u64,
}

impl DriverStats {
    /// Adds `other`'s counters (a listener with several socket loops reports their sum).
    pub fn merge(&mut self, other: &DriverStats) {
        self.wakeups += other.wakeups;
        self.datagrams_in += other.datagrams_in;
        self.datagrams_out += other.datagrams_out;
        self.syscalls += other.syscalls;
    }
}

/// What one [`read_datagrams`] call did.
#[derive(Debug)]
pub struct ReadOutcome {
    /// `Err(WouldBlock)` once the socket is drained; `Ok` when a fairness bound stopped the
    /// reading early (more may be waiting); other errors are fatal to the endpoint.
    pub result: io::Result<()>,
    /// Datagrams handed to the listener.
    pub datagrams: u64,
    /// `recvmmsg` calls made.
    pub syscalls: u64,
}

/// A [`DatagramEndpoint`] the runtimes' socket loops drive: its connections are keyed by
/// [`SessionId`] (the hub's connection key; another endpoint numbers its connections with
/// [`SessionId::new`]), its per-peer machines are [`DatagramConn`]s, its close reasons say
/// what the application's stream error is ([`Gone`]), and its counters fill the hub's SNMP
/// snapshot. The KCP `Listener<U>` is one for every upper layer `U`.
pub trait LoopEndpoint:
    DatagramEndpoint<ConnId = SessionId, Conn: DatagramConn, Reason: Into<Gone>, Counters: Into<Snmp>>
{
}

impl<E> LoopEndpoint for E where
    E: DatagramEndpoint<
        ConnId = SessionId,
        Conn: DatagramConn,
        Reason: Into<Gone>,
        Counters: Into<Snmp>,
    >
{
}

/// A KCP close reason as the application's stream error: a dead link is its own error (the
/// core listener closes dead links itself, policy in core).
impl From<CloseReason> for Gone {
    fn from(r: CloseReason) -> Gone {
        match r {
            CloseReason::DeadLink => Gone::DeadLink,
            r => Gone::Closed(r),
        }
    }
}

/// Reads batches into `listener` with one `now`, until the socket is drained, a fairness
/// bound is hit, or new sessions pile up so the application should accept them first (a
/// burst would otherwise overflow the backlog, as kcp-go's 128). Shared by every runtime.
pub fn read_datagrams<E: DatagramEndpoint>(
    sock: &UdpSocket,
    listener: &mut E,
    now: Instant,
) -> ReadOutcome {
    // One receive batch per thread, not per endpoint: 5 000 client endpoints would otherwise
    // hold 64 KiB each. Nothing awaits while it is borrowed.
    thread_local! {
        static BATCH: std::cell::RefCell<RecvBatch> = std::cell::RefCell::new(RecvBatch::default());
    }
    BATCH.with(|b| read_into(sock, &mut b.borrow_mut(), listener, now))
}

fn read_into<E: DatagramEndpoint>(
    sock: &UdpSocket,
    batch: &mut RecvBatch,
    listener: &mut E,
    now: Instant,
) -> ReadOutcome {
    let mut out = ReadOutcome {
        result: Ok(()),
        datagrams: 0,
        syscalls: 0,
    };
    for _ in 0..MAX_BATCHES_PER_WAKE {
        out.syscalls += 1;
        match udp::recv_batch(sock, batch) {
            Ok(_) => {
                for (from, d) in batch.iter_mut() {
                    out.datagrams += 1;
                    if let Err(e) = listener.handle_datagram_mut(now, from, d) {
                        tracing::trace!(%from, "dropped datagram: {e:?}");
                    }
                }
                if listener.backlog_len() >= ACCEPT_PRESSURE {
                    return out;
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::ConnectionRefused | io::ErrorKind::Interrupted
                ) =>
            {
                continue
            }
            Err(e) => {
                out.result = Err(e);
                return out;
            }
        }
    }
    out
}

/// What one [`Outbox::flush`] did.
#[derive(Debug, Default, Clone, Copy)]
pub struct FlushReport {
    /// `sendmmsg` calls made.
    pub syscalls: u64,
    /// Datagrams the socket accepted.
    pub sent: u64,
    /// Datagrams the kernel refused (dropped and counted: one bad peer must not wedge the
    /// queue).
    pub errors: u64,
    /// The socket is full: the rest waits for writability.
    pub blocked: bool,
}

/// Datagrams drained from a listener and not yet accepted by the socket, in order, and
/// bounded (256 datagrams); the rest stays inside the sessions, bounded by their windows.
/// Shared by the driver and the mio endpoint.
///
/// Each datagram has a buffer of its own: the outbox offers an empty one to
/// `poll_transmit`, and a session hands its sealed datagram over by swapping buffers
/// (`Session::poll_transmit`), so a datagram reaches `sendmmsg` without a copy (issue 15
/// item 8). Sent buffers are offered again, so buffers circulate between the sessions'
/// pools and this one.
#[derive(Debug, Default)]
pub struct Outbox {
    pending: VecDeque<(SocketAddr, Vec<u8>)>,
    /// Emptied buffers for the next datagrams (at most [`MAX_PENDING`]).
    spare: Vec<Vec<u8>>,
}

impl Outbox {
    /// Whether nothing waits for the socket.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// Drains `listener` and sends until everything went out or the socket is full.
    pub fn flush<E: DatagramEndpoint>(
        &mut self,
        listener: &mut E,
        sock: &UdpSocket,
        now: Instant,
    ) -> FlushReport {
        self.flush_with(listener, now, |items| udp::send_batch(sock, items))
    }

    /// [`Outbox::flush`] through `send`, which has [`udp::send_batch`]'s contract (a
    /// [`udp::SendReport`]: datagrams sent, refused anywhere in the batch, and the socket
    /// full once fewer than all were consumed). Tests pass a socket that blocks and refuses
    /// on demand.
    pub fn flush_with<E: DatagramEndpoint>(
        &mut self,
        listener: &mut E,
        now: Instant,
        mut send: impl FnMut(&[(SocketAddr, &[u8])]) -> udp::SendReport,
    ) -> FlushReport {
        let mut r = FlushReport::default();
        loop {
            self.fill(listener, now);
            if self.pending.is_empty() {
                return r;
            }
            let items: Vec<(SocketAddr, &[u8])> =
                self.pending.iter().map(|(a, d)| (*a, &d[..])).collect();
            r.syscalls += 1;
            let sent = send(&items);
            r.sent += sent.sent as u64;
            r.errors += sent.errors as u64;
            if let Some(e) = &sent.first_error {
                tracing::debug!("dropped {} outgoing datagram(s): {e}", sent.errors);
            }
            let done = sent.consumed().min(self.pending.len());
            let blocked = done < self.pending.len();
            for (_, mut d) in self.pending.drain(..done) {
                if self.spare.len() < MAX_PENDING {
                    d.clear();
                    self.spare.push(d);
                }
            }
            if blocked {
                r.blocked = true;
                return r;
            }
        }
    }

    /// Takes datagrams from `listener` until [`MAX_PENDING`] wait or it has none.
    fn fill<E: DatagramEndpoint>(&mut self, listener: &mut E, now: Instant) {
        while self.pending.len() < MAX_PENDING {
            let mut d = self.spare.pop().unwrap_or_default();
            let Some(t) = listener.poll_transmit(now, &mut d) else {
                self.spare.push(d);
                return;
            };
            self.pending.push_back((t.to, d));
        }
    }
}

/// One endpoint's protocol state plus its I/O scratch space, generic over the endpoint
/// ([`LoopEndpoint`]: the KCP `Listener<U>` with [`Plain`] sessions, one byte stream each, or
/// a multiplexer's stacks, many streams per session, keyed in the hub by (connection,
/// stream); or another protocol's endpoint).
pub struct Driver<E: LoopEndpoint = Listener<Plain>> {
    /// The core listener (server) or client endpoint.
    pub listener: E,
    /// The application side.
    pub hub: Arc<Hub>,
    /// Whether incoming sessions are handed to `accept()`.
    pub server: bool,
    outbox: Outbox,
    /// Loop counters.
    pub stats: DriverStats,
    /// The socket refused datagrams (`WouldBlock`): output waits for writability.
    blocked: bool,
    snmp_at: Option<Instant>,
    /// A pass skipped the SNMP refresh (one ran less than [`SNMP_REFRESH`] before): one more
    /// is due then, or a burst shorter than that would leave the counters where its first
    /// pass saw them until the next traffic (kcptun's `--snmplog` rows stayed at zero after
    /// a whole transfer).
    snmp_stale: bool,
}

impl<E: LoopEndpoint> Driver<E> {
    /// A driver for `listener`, talking to the application through `hub`. The first one
    /// installs the GFNI parity kernel for the process where the CPU has it
    /// ([`crate::gfni::install`]).
    pub fn new(listener: E, hub: Arc<Hub>, server: bool) -> Self {
        crate::gfni::install();
        Driver {
            listener,
            hub,
            server,
            outbox: Outbox::default(),
            stats: DriverStats::default(),
            blocked: false,
            snmp_at: None,
            snmp_stale: false,
        }
    }

    /// Reads datagrams until `WouldBlock` (returned as the error, so readiness-based runtimes
    /// can clear their flag) or until a fairness bound (then `Ok`).
    pub fn recv(&mut self, sock: &UdpSocket, now: Instant) -> io::Result<()> {
        let r = read_datagrams(sock, &mut self.listener, now);
        self.stats.syscalls += r.syscalls;
        self.stats.datagrams_in += r.datagrams;
        r.result
    }

    /// Reads what is waiting without being told the socket is readable (`WouldBlock` is
    /// `Ok`). A runtime whose loop is due again at once calls it: a loop that never waits
    /// never lets its reactor report readability, and ACKs would then pile up unread while
    /// the sessions retransmit towards a dead link (seen with CPU-heavy passes, e.g. debug
    /// builds encrypting a whole window per pass).
    pub fn recv_pending(&mut self, sock: &UdpSocket, now: Instant) -> io::Result<()> {
        match self.recv(sock, now) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(()),
            r => r,
        }
    }

    /// Whether the loop must run again without waiting: a timer is due, or sessions have
    /// output and the socket can take it (while it is full, writability wakes the loop).
    pub fn due(&self, now: Instant) -> bool {
        (!self.blocked && self.listener.has_transmit()) || self.deadline().is_some_and(|d| d <= now)
    }

    /// Fires due timers.
    pub fn timeout(&mut self, now: Instant) {
        // Unconditional: cheap when nothing is due, and no "pending output" deadline can
        // hide a due timer.
        self.listener.handle_timeout(now);
    }

    /// The next timer deadline (`None`: nothing scheduled, sleep until I/O or the app).
    /// Pending output is not a deadline (the core's `has_transmit`, see [`Driver::due`]), so
    /// a full socket never makes the loop spin. Besides the endpoint's timers: an SNMP
    /// refresh a pass skipped ([`SNMP_REFRESH`] after the last one; once, then idle again).
    pub fn deadline(&self) -> Option<Instant> {
        let snmp = self
            .snmp_at
            .filter(|_| self.snmp_stale)
            .map(|t| t + SNMP_REFRESH);
        match (self.listener.poll_timeout(), snmp) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// One loop iteration after waking: timers, hub ⇄ sessions, datagrams out. Returns
    /// `Err(WouldBlock)` when the socket is full and datagrams wait for writability.
    pub fn process(&mut self, sock: &UdpSocket, now: Instant) -> io::Result<()> {
        self.stats.wakeups += 1;
        self.timeout(now);
        self.sync(now);
        let r = self.transmit(sock, now);
        self.sync(now);
        self.refresh_snmp(now);
        r
    }

    /// Copies the counters to the hub, at most every [`SNMP_REFRESH`]; a pass that skips it
    /// makes one due at the end of the period ([`Driver::deadline`]), so the hub catches up
    /// with the last traffic once and an idle loop then sleeps.
    fn refresh_snmp(&mut self, now: Instant) {
        let due = self
            .snmp_at
            .is_none_or(|t| now.saturating_duration_since(t) >= SNMP_REFRESH);
        self.snmp_stale = !due;
        if due {
            self.snmp_at = Some(now);
            let snmp = self.listener.counters().into();
            self.hub.lock().snmp = snmp;
        }
    }

    /// Whether the application is behind on `accept()`: the runtime should yield to it.
    pub fn accept_pending(&self) -> bool {
        self.server && !self.hub.lock().accept_queue.is_empty()
    }

    /// Whether the endpoint can stop: no handles left and no sessions left.
    pub fn finished(&self) -> bool {
        Arc::strong_count(&self.hub) == 1 && self.listener.is_empty() && self.outbox.is_empty()
    }

    /// Moves bytes between the hub and the sessions, and turns listener events into stream
    /// state. A session is pumped when it reports an event (readable, writable, everything
    /// acknowledged) or the application touched its stream; nothing is polled per pass.
    pub fn sync(&mut self, now: Instant) {
        let hub = Arc::clone(&self.hub);
        let mut st = hub.lock();
        st.driver_stats = self.stats;
        while let Some(ev) = self.listener.poll_event() {
            match ev {
                EndpointEvent::Incoming(_) => {}
                // The core endpoint closes dead links itself (policy in core).
                EndpointEvent::Conn(id, StreamEvent::Closed(r)) => st.conn_gone(id, r.into()),
                // The peer opened a stream: it waits for the connection's accept_stream().
                EndpointEvent::Conn(id, StreamEvent::Opened(sid)) => {
                    // The hub's queue is the accept queue: the stack's own is drained.
                    if let Some(conn) = self.listener.conn_mut(id) {
                        while conn.accept_stream().is_some() {}
                    }
                    st.push_opened(id, sid);
                    self.pump(&mut st, (id, sid));
                }
                // Readable, writable: move that stream's bytes.
                EndpointEvent::Conn(
                    id,
                    StreamEvent::Readable(sid) | StreamEvent::Writable(sid),
                ) => self.pump(&mut st, (id, sid)),
                // Acknowledged: that stream, and the connection's others still waiting.
                EndpointEvent::Conn(id, StreamEvent::Acknowledged(sid)) => {
                    self.pump(&mut st, (id, sid));
                    for key in pump::also_acknowledged(&st, id, sid) {
                        self.pump(&mut st, key);
                    }
                }
                // The stack closed one stream: what arrived is moved, then it ends.
                EndpointEvent::Conn(id, StreamEvent::StreamClosed(sid)) => {
                    self.pump(&mut st, (id, sid));
                    st.stream_closed((id, sid));
                }
            }
        }
        if self.server && !st.listener_dropped && st.accept_wanted && st.accept_queue.is_empty() {
            // One session per pending accept() call: the others stay in the core listener's
            // backlog, bounded by it and expired after its accept_timeout, exactly as with the
            // mio Endpoint, whose application calls Listener::accept itself.
            if let Some(id) = self.listener.accept() {
                st.accept_wanted = false;
                st.push_accept(id);
                let key = (id, StreamId::SOLE);
                let peer = self.listener.remote(id);
                if let Some(s) = st.streams.get_mut(&key) {
                    s.peer = peer;
                }
                if let Some(q) = st.conns.get_mut(&id) {
                    q.peer = peer;
                }
                self.pump(&mut st, key);
            }
        }
        for key in st.take_dirty() {
            self.pump(&mut st, key);
        }
        for id in std::mem::take(&mut st.conn_work) {
            self.serve_conn(&mut st, id, now);
        }
    }

    /// Moves one stream's bytes: app → stack while it accepts, stack → app while the app
    /// buffer has room (the stack's receive window is the back-pressure). Stream mode goes
    /// through the stack's [`Streams`]; KCP message mode keeps its message boundaries on
    /// the session at the bottom.
    fn pump(&mut self, st: &mut HubState, key: StreamKey) {
        let (id, sid) = key;
        let Some(s) = st.streams.get_mut(&key) else {
            return;
        };
        let heard = self.listener.last_received(id);
        let Some(conn) = self.listener.conn_mut(id) else {
            // The session closed before the handle was dropped: nobody needs the entry.
            if s.dropped {
                st.forget_stream(key);
            }
            return;
        };
        s.set_last_received(heard);
        if std::mem::take(&mut s.keepalive) {
            conn.send_keepalive();
        }
        // Message mode is a single-stream connection's (a multiplexer's streams are never
        // SOLE).
        let messages = if sid == StreamId::SOLE {
            conn.messages()
        } else {
            None
        };
        let progressed = if let Some(m) = messages {
            let moved = pump_messages(s, m) | pump::fill_recv(s, |buf| m.read_message(buf));
            // KCP has no FIN: a shutdown settles as `Unsupported` (it waits for the ACKs).
            moved | pump::finish_if_asked(s, conn, sid)
        } else {
            pump::exchange(s, conn, sid)
        };
        // Re-read when the stack reports `Acknowledged` (the listener's event pumps this
        // stream).
        let acked = Streams::all_acked(conn, sid);
        if pump::settle(st, key, progressed, acked) {
            self.close_dropped(id, sid);
        }
    }

    /// Serves connection `id`'s handle: opens the streams it asked for, and closes the
    /// connection once the handle and all its streams are dropped (the core lingers until
    /// everything is acknowledged).
    fn serve_conn(&mut self, st: &mut HubState, id: SessionId, now: Instant) {
        let peer = self.listener.remote(id);
        match pump::serve_conn(st, id, peer, self.listener.conn_mut(id)) {
            pump::ConnVerdict::Keep => {}
            pump::ConnVerdict::CloseNow => self.listener.close(id),
            pump::ConnVerdict::CloseWhenAcked => self.listener.close_when_acked(now, id),
        }
    }

    /// Opens a client connection to `addr` whose streams the application opens and accepts
    /// through its connection handle.
    pub fn connect_conn(&mut self, now: Instant, addr: SocketAddr) -> SessionId {
        let id = self.listener.connect(now, addr);
        self.hub.lock().conns.entry(id).or_default().held = true;
        id
    }

    /// The application dropped stream `sid` of connection `id` and all its bytes are in the
    /// stack: the stack closes it once they are acknowledged.
    fn close_dropped(&mut self, id: SessionId, sid: StreamId) {
        if let Some(conn) = self.listener.conn_mut(id) {
            conn.close_stream(sid);
        }
    }

    /// Drains the listener's datagrams and sends until the socket is full, then returns
    /// `Err(WouldBlock)` so the runtime waits for writability.
    pub fn transmit(&mut self, sock: &UdpSocket, now: Instant) -> io::Result<()> {
        let r = self.outbox.flush(&mut self.listener, sock, now);
        self.stats.syscalls += r.syscalls;
        self.stats.datagrams_out += r.sent;
        self.blocked = r.blocked;
        if r.blocked {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        Ok(())
    }

    /// Opens a client session to `addr` and registers its stream.
    pub fn connect(&mut self, now: Instant, addr: SocketAddr) -> SessionId {
        let id = self.listener.connect(now, addr);
        let mut buf = StreamBuf::default();
        buf.peer = Some(addr);
        self.hub.lock().streams.insert((id, StreamId::SOLE), buf);
        id
    }
}

/// Message mode: each app write becomes one message (KCP: ikcp's `ikcp_send`). A longer
/// write is cut into messages of [`Messages::max_message`] (KCP: [`MAX_MESSAGE_FRAGMENTS`]
/// segments; ikcp refuses to send, and cannot reassemble, a message of 128 fragments or
/// more, kcp.md §4).
fn pump_messages(s: &mut StreamBuf, sess: &mut dyn Messages) -> bool {
    let mut progressed = false;
    let max = sess.max_message().max(1);
    while let Some(&len) = s.writes.front() {
        let piece = len.min(max);
        let data = s.send.front_contiguous(piece);
        match sess.write_message(data) {
            Ok(_) => {
                s.send.consume(piece);
                if piece == len {
                    s.writes.pop_front();
                } else if let Some(front) = s.writes.front_mut() {
                    *front -= piece;
                }
                progressed = true;
            }
            Err(_) => break,
        }
    }
    progressed
}

pub use tether_core::session::listener::MAX_MESSAGE_FRAGMENTS;

#[cfg(test)]
#[path = "outbox_tests.rs"]
mod outbox_tests;

#[cfg(test)]
#[path = "driver_tests.rs"]
mod driver_tests;
