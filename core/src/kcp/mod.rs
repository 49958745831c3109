//! KCP ARQ, byte-compatible with kcp-go 5.6.1 (`../shared/spec/kcp.md`).
//!
//! [`Kcp`] has two faces:
//! - kcp-go's primitives — [`Kcp::send`], [`Kcp::recv`], [`Kcp::input`], [`Kcp::flush`],
//!   [`Kcp::pop_output`] — with kcp-go's exact semantics, replayed against golden vectors;
//! - the uniform driver API ([`Machine`]) with exact deadlines: `poll_timeout()` is `None`
//!   while nothing is queued, unacknowledged, waiting to be ACKed or probing, so an idle
//!   session costs nothing, while what goes on the wire is what kcp-go's interval timer
//!   would send (kcp.md §11.2).
#[cfg(test)]
mod ack_bound_tests;
mod arena;
#[cfg(test)]
mod chunk_tests;
mod config;
mod cwnd;
mod flush;
mod input;
mod payload;
mod queue;
mod resend_heap;
mod rto;
pub mod segment;
mod stats;
#[cfg(test)]
mod tests;

use std::collections::VecDeque;
use std::time::Instant;

pub use config::{ConfigError, KcpConfig, KcpFlavor, MODE_NAMES};
pub use cwnd::Cwnd;
pub use queue::WHOLE_SEGMENT;
pub use rto::RttEstimator;
pub use stats::KcpStats;

use payload::Payload;

use crate::driver::{read_chunk_with, ByteStream, Bytes, BytesMut, Machine, StreamError, Transmit};
use crate::time::{timediff, WireClock};

/// `IKCP_ASK_SEND`: a WASK is due.
const ASK_SEND: u32 = 1;
/// `IKCP_ASK_TELL`: a WINS is due.
const ASK_TELL: u32 = 2;
/// `IKCP_PROBE_INIT`.
const PROBE_INIT: u32 = 7000;
/// `IKCP_PROBE_LIMIT`.
const PROBE_LIMIT: u32 = 120_000;
/// kcp-go refuses messages of more than 255 fragments (kcp.md §4).
const MAX_FRAGMENTS: usize = 255;
/// ikcp.c's `IKCP_WND_RCV`: its receive-window floor, and the fragment count from which
/// `ikcp_send` refuses a message.
const IKCP_WND_RCV: u32 = 128;
/// Largest message, in segments, a KCP session takes in message mode: ikcp's receive
/// window floor minus one, the most an ikcp peer can reassemble (kcp.md §4).
pub const MAX_MESSAGE_FRAGMENTS: usize = IKCP_WND_RCV as usize - 1;

/// kcp-go's `mtuLimit`: the largest datagram any kcp-go peer sends (kcp-go-session.md §1).
pub const MTU_LIMIT: usize = 1500;

/// One segment held in a queue.
#[derive(Debug, Default)]
struct Seg {
    frg: u8,
    ts: u32,
    sn: u32,
    rto: u32,
    xmit: u32,
    /// Transmissions that went unanswered: the first one and each retransmission on
    /// timeout, not fast or early retransmissions (those answer ACKs of later segments,
    /// proof that the peer is there). What the dead-link rule counts (see
    /// [`KcpEvent::DeadLink`]).
    unanswered: u32,
    resendts: u32,
    fastack: u32,
    acked: bool,
    data: Payload,
}

/// Application events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KcpEvent {
    /// Data is ready for [`Kcp::recv`].
    Readable,
    /// [`Kcp::write`] would accept data again.
    Writable,
    /// A segment went unacknowledged through `dead_link` transmissions that were its first
    /// send and retransmissions on timeout (kcp.md §8.3). kcp-go only sets a state flag;
    /// tether reports it once so the caller can close the session.
    ///
    /// Fast and early retransmissions do not count, unlike kcp-go's `xmit ≥ dead_link`:
    /// they are sent because the peer acknowledged later segments, so it is alive. Counted,
    /// a burst of ACKs behind one lost segment (a receiver with quick recovery ACKs every
    /// segment after a gap at once, and every `Write` flushes) took a segment to 20 sends
    /// within 5 ms and closed a healthy tunnel session. A peer that vanished sends no ACK,
    /// so it is declared dead exactly as before.
    DeadLink,
    /// Everything written so far has been acknowledged (the send buffer emptied after
    /// writes): a pending `flush()` completes, a dropped stream may close. Reported once per
    /// emptying, so drivers never poll [`Kcp::all_acked`].
    Acknowledged,
    /// The machine is closed ([`Kcp::close`]): the final event, exactly once.
    Closed(KcpCloseReason),
}

/// Why a [`Kcp`] machine (or a session built on it) closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KcpCloseReason {
    /// The application closed it.
    Local,
    /// A segment reached the dead-link retransmission count (kcp.md §8.3) and the owner's
    /// policy closed the connection (the listener does; see `session::CloseReason`).
    DeadLink,
}

/// kcp-go `Send` failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// Empty buffers are refused (kcp-go returns -1).
    #[error("cannot send an empty buffer")]
    Empty,
    /// The message needs more than 255 fragments (kcp-go returns -2).
    #[error("message of {0} bytes needs more than 255 fragments: use stream mode or send smaller messages")]
    TooLarge(usize),
}

impl SendError {
    /// kcp-go's return code.
    pub fn code(&self) -> i32 {
        match self {
            SendError::Empty => -1,
            SendError::TooLarge(_) => -2,
        }
    }
}

/// Why [`Kcp::write`] accepted nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WriteError {
    /// The send window is full; wait for [`KcpEvent::Writable`].
    #[error("send window full: wait for the Writable event")]
    Blocked,
    /// An empty write.
    #[error("cannot write an empty buffer")]
    Empty,
    /// A message that needs more than 255 fragments (kcp-go `Send` returns -2).
    #[error("message of {0} bytes needs more than 255 fragments: send smaller messages or use stream mode")]
    TooLarge(usize),
    /// The machine was closed ([`Kcp::close`]): open a new session to send more.
    #[error("the KCP session is closed: open a new session to send more")]
    Closed,
}

/// kcp-go `Recv` failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecvError {
    /// Nothing to read yet (kcp-go -1); wait for [`KcpEvent::Readable`].
    #[error("nothing to read yet: wait for the Readable event")]
    WouldBlock,
    /// The next message is larger than the buffer (kcp-go -2).
    #[error("the next message has {needed} bytes: pass a buffer at least that large")]
    BufferTooSmall {
        /// Size of the next message.
        needed: usize,
    },
}

impl RecvError {
    /// kcp-go's return code.
    pub fn code(&self) -> i32 {
        match self {
            RecvError::WouldBlock => -1,
            RecvError::BufferTooSmall { .. } => -2,
        }
    }
}

/// Why a datagram was rejected by [`Kcp::input`]. Segments before the bad one stay processed
/// (kcp.md §6, §15).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InputError {
    /// Shorter than one 24-byte header (kcp-go -1).
    #[error("datagram of {0} bytes is shorter than a KCP header (24 bytes)")]
    TooShort(usize),
    /// A segment for another conversation (kcp-go -1).
    #[error("conv {got:#010x} does not match this session's conv {want:#010x}: is the peer configured with the same --key and --crypt?")]
    ConvMismatch {
        /// conv in the segment.
        got: u32,
        /// This session's conv.
        want: u32,
    },
    /// A segment's `len` runs past the datagram (kcp-go -2).
    #[error("segment length runs past the end of the datagram: corrupted or not KCP")]
    Truncated,
    /// Unknown command byte (kcp-go -3).
    #[error("unknown KCP command {0}: corrupted or not KCP")]
    BadCommand(u8),
    /// A datagram above `max(mtu, 1500)` bytes: kcp-go reads into 1 500-byte buffers
    /// (kcp-go-session.md §1, `mtuLimit`), so no kcp-go peer sends one. Dropped whole so a
    /// peer cannot park 64 KiB per receive-window slot.
    #[error("datagram of {len} bytes is larger than the {max}-byte limit: the peer's --mtu must be at most 1500")]
    TooLarge {
        /// Datagram size.
        len: usize,
        /// The limit.
        max: usize,
    },
}

impl InputError {
    /// kcp-go's return code.
    pub fn code(&self) -> i32 {
        match self {
            InputError::TooShort(_)
            | InputError::ConvMismatch { .. }
            | InputError::TooLarge { .. } => -1,
            InputError::Truncated => -2,
            InputError::BadCommand(_) => -3,
        }
    }
}

/// One KCP control block.
#[derive(Debug)]
pub struct Kcp {
    conv: u32,
    cfg: KcpConfig,
    mss: u32,
    clock: WireClock,

    snd_una: u32,
    snd_nxt: u32,
    rcv_nxt: u32,
    rmt_wnd: u32,
    cw: Cwnd,
    rtt: RttEstimator,
    probe: u32,
    ts_probe: u32,
    probe_wait: u32,

    snd_queue: VecDeque<Seg>,
    snd_buf: VecDeque<Seg>,
    rcv_buf: VecDeque<Seg>,
    rcv_queue: VecDeque<Seg>,
    acklist: Vec<(u32, u32)>,

    /// Datagrams produced by flush, waiting for `pop_output`.
    out: VecDeque<Vec<u8>>,
    /// The datagram being filled by the current flush.
    obuf: Vec<u8>,
    /// Recycled datagram and segment buffers: steady state allocates nothing per segment.
    pool: Vec<Vec<u8>>,
    /// Blocks in-order received payloads are copied into.
    arena: arena::RecvArena,

    // Driver state (kcp.md §11.2 made event-driven).
    next_flush: Option<u32>,
    flush_pending: bool,
    last_now: Instant,
    earliest_resend: Option<u32>,
    /// Every segment in flight with its retransmission time, for partial flush passes.
    resend_heap: resend_heap::ResendHeap,
    fastack_pending: bool,
    /// A segment arrived out of order in this input (quick_recovery: ACK at once).
    ack_now: bool,
    /// ACKs brought a segment to the fast retransmit threshold (quick_recovery: flush now).
    resend_now: bool,
    readable_signalled: bool,
    want_writable: bool,
    dead: bool,
    dead_signalled: bool,
    /// Data was written since the last [`KcpEvent::Acknowledged`].
    ack_pending: bool,
    /// [`Kcp::close`] was called: one last flush, then nothing.
    closed: bool,
    /// The peer acknowledged one of our PUSH segments (anti-amplification's proof that it
    /// receives at its address).
    peer_acked: bool,
    events: VecDeque<KcpEvent>,
    stats: KcpStats,
}

impl Kcp {
    /// A control block for conversation `conv`. `now` becomes wire millisecond 0.
    ///
    /// The config is used as given; call [`KcpConfig::validate`] first to reject values kcp-go
    /// would refuse (an invalid MTU is raised to 50 here rather than panicking).
    pub fn new(conv: u32, mut cfg: KcpConfig, now: Instant) -> Self {
        cfg.mtu = cfg.mtu.max(50);
        cfg.reserved = cfg.reserved.min(cfg.mtu - segment::OVERHEAD as u32 - 1);
        cfg.snd_wnd = cfg.snd_wnd.max(1);
        cfg.rcv_wnd = cfg.rcv_wnd.clamp(1, u16::MAX as u32);
        let ikcp = cfg.flavor == KcpFlavor::Ikcp;
        if ikcp {
            // ikcp.c ikcp_wndsize: rcv_wnd never below IKCP_WND_RCV.
            cfg.rcv_wnd = cfg.rcv_wnd.max(IKCP_WND_RCV);
        }
        cfg.interval = cfg.clamped_interval();
        let mut k = Kcp {
            conv,
            cfg,
            mss: cfg.mss(),
            clock: WireClock::new(now),
            snd_una: 0,
            snd_nxt: 0,
            rcv_nxt: 0,
            // kcp.md §3: kcp-go starts rmt_wnd at its default receive window (32), ikcp at 128.
            rmt_wnd: if ikcp {
                IKCP_WND_RCV
            } else {
                KcpConfig::default().rcv_wnd
            },
            cw: Cwnd::default(),
            rtt: RttEstimator::new(cfg.nodelay),
            probe: 0,
            ts_probe: 0,
            probe_wait: 0,
            snd_queue: VecDeque::new(),
            snd_buf: VecDeque::new(),
            rcv_buf: VecDeque::new(),
            rcv_queue: VecDeque::new(),
            acklist: Vec::new(),
            out: VecDeque::new(),
            obuf: Vec::new(),
            pool: Vec::new(),
            arena: arena::RecvArena::default(),
            next_flush: None,
            // kcp-go-session.md §8 (Timer): kcp-go flushes once at session creation. A
            // listener feeds the creating datagram before any flush runs, so this flush
            // acknowledges it at once and tells the client the real receive window (kcp-go
            // clients assume 32 segments until they hear it): without it that ACK waited one
            // interval, a 10–12 ms stall at the start of every bulk transfer. (Landed once
            // and reverted: its timing made the dead-link false positive that
            // `KcpEvent::DeadLink` describes common in tunnel tests; fixed since.)
            flush_pending: !ikcp,
            last_now: now,
            earliest_resend: None,
            resend_heap: resend_heap::ResendHeap::default(),
            fastack_pending: false,
            ack_now: false,
            resend_now: false,
            readable_signalled: false,
            want_writable: false,
            dead: false,
            dead_signalled: false,
            ack_pending: false,
            closed: false,
            peer_acked: false,
            events: VecDeque::new(),
            stats: KcpStats::default(),
        };
        k.reset_obuf();
        k
    }

    /// The conversation id.
    pub fn conv(&self) -> u32 {
        self.conv
    }
    /// The configuration in force.
    pub fn config(&self) -> &KcpConfig {
        &self.cfg
    }
    /// Maximum payload bytes per segment.
    pub fn mss(&self) -> usize {
        self.mss as usize
    }
    /// The largest datagram [`Kcp::input`] takes: our own MTU or kcp-go's 1 500-byte
    /// `mtuLimit`, whichever is larger (a peer's MTU may exceed ours).
    pub fn max_datagram(&self) -> usize {
        (self.cfg.mtu as usize).max(MTU_LIMIT)
    }
    /// Counters.
    pub fn stats(&self) -> KcpStats {
        self.stats
    }
    /// The RTT estimator's state (srtt, rttvar, rto).
    pub fn rtt(&self) -> RttEstimator {
        self.rtt
    }
    /// The congestion-window state.
    pub fn cwnd(&self) -> Cwnd {
        self.cw
    }
    /// The peer's last advertised receive window.
    pub fn remote_window(&self) -> u32 {
        self.rmt_wnd
    }
    /// Segments queued or in flight (kcp-go `WaitSnd`).
    pub fn wait_snd(&self) -> usize {
        self.snd_buf.len() + self.snd_queue.len()
    }
    /// Whether a segment reached the dead-link count ([`KcpEvent::DeadLink`]).
    pub fn is_dead(&self) -> bool {
        self.dead
    }
    /// Whether [`Kcp::write`] would accept data now (kcp-go's `WriteBuffers` test).
    pub fn can_write(&self) -> bool {
        let w = self.wait_snd();
        w < self.cfg.snd_wnd as usize && w < self.rmt_wnd as usize
    }
    /// Whether a write could take bytes now; when not (a full window), a
    /// [`KcpEvent::Writable`] follows once it can, as after a refused write. A closed
    /// machine answers `true`: its writes report the closing.
    pub fn poll_writable(&mut self) -> bool {
        if self.closed || self.can_write() {
            return true;
        }
        self.want_writable = true;
        false
    }
    /// Whether the peer ever acknowledged a PUSH segment we sent (by ACK or `una`).
    pub fn peer_acked_data(&self) -> bool {
        self.peer_acked
    }
    /// Whether everything written has been acknowledged.
    pub fn all_acked(&self) -> bool {
        self.wait_snd() == 0
    }

    /// The `now` of the most recent call that carried one.
    pub fn last_input_time(&self) -> Instant {
        self.last_now
    }

    /// The wire clock value of `now`.
    pub fn wire_ms(&self, now: Instant) -> u32 {
        self.clock.ms(now)
    }

    /// kcp-go's session-layer write (`UDPSession.WriteBuffers`): accepts the whole buffer when
    /// the send queue is below both windows, cutting it into `mss`-sized sends, and asks for an
    /// immediate flush (done by the next [`Machine::poll_transmit`]).
    pub fn write(&mut self, data: &[u8]) -> Result<usize, WriteError> {
        self.check_writable(data)?;
        for chunk in data.chunks(self.mss as usize) {
            // A chunk of at most mss bytes is one fragment: send cannot fail.
            let _ = self.send(chunk);
        }
        self.flush_pending = true;
        self.ack_pending = true;
        Ok(data.len())
    }

    /// [`Kcp::write`] of an owned chunk: the same acceptance and segments, but the
    /// segments keep slices of `data` instead of copies (issue 15 item 8); only a piece
    /// topping up a short queued segment, or shorter than [`WHOLE_SEGMENT`], is copied.
    pub fn write_chunk(&mut self, data: Bytes) -> Result<usize, WriteError> {
        self.check_writable(&data)?;
        let n = data.len();
        self.send_chunk(data);
        self.flush_pending = true;
        self.ack_pending = true;
        Ok(n)
    }

    /// Why a write of `data` would take nothing (closed, empty, window full); a refusal for a
    /// full window asks for a [`KcpEvent::Writable`].
    fn check_writable(&mut self, data: &[u8]) -> Result<(), WriteError> {
        if self.closed {
            return Err(WriteError::Closed);
        }
        if data.is_empty() {
            return Err(WriteError::Empty);
        }
        if !self.can_write() {
            self.want_writable = true;
            return Err(WriteError::Blocked);
        }
        Ok(())
    }

    /// Closes the machine (kcp-go's `Close`: one last flush, then the session is forgotten;
    /// KCP has no FIN, so nothing tells the peer, kcp-go-session.md §8). Queued output and
    /// pending ACKs go out with the next [`Machine::poll_transmit`]; afterwards input is
    /// ignored, no timer is armed and writes fail with [`WriteError::Closed`]. Reports
    /// [`KcpEvent::Closed`] once, as the final event.
    pub fn close(&mut self) {
        self.close_with(KcpCloseReason::Local);
    }

    /// [`Kcp::close`] with the owner's reason (a listener closing a dead link).
    pub fn close_with(&mut self, reason: KcpCloseReason) {
        if self.closed {
            return;
        }
        self.closed = true;
        self.flush_pending = true;
        self.next_flush = None;
        self.events.push_back(KcpEvent::Closed(reason));
    }

    /// Whether [`Kcp::close`] was called.
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// ikcp's `ikcp_send` as the application call: `data` becomes **one** KCP message, cut
    /// into fragments whose `frg` counts down (kcp.md §4), so a message-mode peer (ikcp,
    /// kcp-go's `Recv`) receives it whole. [`Kcp::write`] instead cuts the buffer into
    /// independent `mss`-sized sends, as kcp-go's session layer does. In stream mode the two
    /// are the same. Accepted when the send queue is below both windows, like `write`.
    pub fn write_message(&mut self, data: &[u8]) -> Result<usize, WriteError> {
        self.check_writable(data)?;
        let n = self.send(data).map_err(|e| match e {
            SendError::Empty => WriteError::Empty,
            SendError::TooLarge(n) => WriteError::TooLarge(n),
        })?;
        self.flush_pending = true;
        self.ack_pending = true;
        Ok(n)
    }

    /// Asks for a window probe (WASK) in the next flush, which the peer answers with a WINS
    /// (kcp.md §8.2). KCP has no keepalive; a probe is the one segment every KCP peer,
    /// kcp-go included, accepts and answers without touching the stream, so an application
    /// can show it is alive (and hear back) while it has nothing to send.
    pub fn send_keepalive(&mut self) {
        self.probe |= ASK_SEND;
        self.flush_pending = true;
    }

    /// Application events, oldest first.
    pub fn poll_event(&mut self) -> Option<KcpEvent> {
        self.events.pop_front()
    }

    fn push_event_checks(&mut self) {
        if self.closed {
            return;
        }
        if self.ack_pending && self.wait_snd() == 0 {
            self.ack_pending = false;
            self.events.push_back(KcpEvent::Acknowledged);
        }
        if !self.readable_signalled && self.peek_size().is_some() {
            self.readable_signalled = true;
            self.events.push_back(KcpEvent::Readable);
        }
        if self.want_writable && self.can_write() {
            self.want_writable = false;
            self.events.push_back(KcpEvent::Writable);
        }
        if self.dead && !self.dead_signalled {
            self.dead_signalled = true;
            self.events.push_back(KcpEvent::DeadLink);
        }
    }

    /// Input of one KCP packet (no reserved bytes) with the driver's bookkeeping: kcp-go's
    /// `Input` with the configured ack-nodelay, then timer arming and events. The session layer
    /// calls this with `regular = false` for FEC-recovered packets.
    #[deny(clippy::indexing_slicing, clippy::unwrap_used, clippy::expect_used)]
    pub fn handle_packet(
        &mut self,
        now: Instant,
        data: &[u8],
        regular: bool,
    ) -> Result<(), InputError> {
        self.handle_packet_from(now, data, None, regular)
    }

    fn handle_packet_from(
        &mut self,
        now: Instant,
        data: &[u8],
        owner: Option<&Bytes>,
        regular: bool,
    ) -> Result<(), InputError> {
        if self.closed {
            // Forgotten, as kcp-go's closed session: nothing more is processed.
            return Ok(());
        }
        self.last_now = now;
        let rx = input::Received {
            data,
            owner,
            regular,
            ack_nodelay: self.cfg.ack_nodelay,
        };
        let r = self.input_from(now, rx);
        self.arm_interval_if_busy(self.clock.ms(now));
        self.push_event_checks();
        r
    }

    /// [`Kcp::handle_packet`] on `data[skip..]`, bytes that already live in a shared buffer
    /// (one from [`Kcp::copy_if_next_in_order`]): a PUSH segment that is next in order keeps
    /// a slice of `data` as its payload instead of a copy in the receive arena.
    ///
    /// `data` is borrowed whole and handed down, not sliced or cloned first: each `Bytes`
    /// clone, slice or drop is an atomic reference-count update. A next-in-order segment
    /// costs six (arena split, the FEC decoder's handle, the payload slice, three drops)
    /// instead of ten; `cargo bench --bench bulk`: `bulk/receive` 3 % faster.
    pub fn handle_shared(
        &mut self,
        now: Instant,
        data: &Bytes,
        skip: usize,
        regular: bool,
    ) -> Result<(), InputError> {
        let packet = data.get(skip..).unwrap_or_default();
        self.handle_packet_from(now, packet, Some(data), regular)
    }

    /// If `datagram[skip..]` is exactly one PUSH segment of this conversation that is next
    /// in order (one [`Kcp::handle_packet`] would queue for the reader at once), a copy of
    /// the whole of `datagram` in the receive arena, to pass on to
    /// [`Kcp::handle_shared`]; otherwise `None`. The FEC layer, which keeps a copy of each
    /// data shard anyway, stores it here so that one copy serves both (issue 15 item 8).
    /// Only next-in-order segments land in the arena, so its blocks stay as dense as when
    /// KCP copies the payloads itself (see `arena.rs`).
    pub fn copy_if_next_in_order(&mut self, datagram: &[u8], skip: usize) -> Option<Bytes> {
        let kcp = datagram.get(skip..)?;
        let h = segment::Header::decode(&mut crate::wire::Reader::new(kcp)).ok()?;
        let next = h.conv == self.conv
            && h.cmd == segment::Cmd::Push as u8
            && kcp.len().checked_sub(segment::OVERHEAD) == Some(h.len as usize)
            && self.goes_straight_to_reader(h.sn)
            && !self.closed;
        next.then(|| self.arena.copy(datagram, self.max_datagram()))
    }

    /// A flush as kcp-go's timer, `Write` and `Input` run it, plus rescheduling.
    fn flush_and_schedule(&mut self, now: Instant) {
        let ms = self.clock.ms(now);
        let ret = self.flush(now, false);
        self.next_flush = if self.closed {
            None // the final flush: no timer after it
        } else {
            self.deadline_after_flush(ms, ret)
        };
        self.push_event_checks();
    }

    /// Nothing to send, acknowledge or probe, and no timer needed (kcp.md §11.2: kcp-go's
    /// periodic flush would emit nothing in this state).
    fn quiet(&self) -> bool {
        self.quiet_except_probe() && self.rmt_wnd != 0
    }

    /// As [`Kcp::quiet`], but the peer's window may be closed: then only the probe timer
    /// (kcp.md §8.2) and retransmission timers can make a flush emit anything.
    fn quiet_except_probe(&self) -> bool {
        self.acklist.is_empty()
            && self.probe == 0
            && !self.fastack_pending
            && (self.snd_queue.is_empty() || self.window_full())
    }

    fn window_full(&self) -> bool {
        let wnd = self.effective_window();
        timediff(self.snd_nxt, self.snd_una.wrapping_add(wnd)) >= 0
    }

    fn effective_window(&self) -> u32 {
        let wnd = self.cfg.snd_wnd.min(self.rmt_wnd);
        if self.cfg.nocwnd {
            wnd
        } else {
            wnd.min(self.cw.cwnd)
        }
    }

    /// After a flush at wire time `ms` that returned `ret`: kcp-go would flush again after
    /// `ret` ms. When that flush (and those after it) could only emit something once a
    /// retransmission timer expires, jump straight to that expiry; when nothing at all is
    /// pending, arm no timer.
    fn deadline_after_flush(&self, ms: u32, ret: u32) -> Option<u32> {
        if !self.quiet_except_probe() {
            return Some(ms.wrapping_add(ret));
        }
        let probe = (self.rmt_wnd == 0).then_some(self.ts_probe);
        match (self.earliest_resend, probe) {
            (Some(a), Some(b)) => Some(if timediff(a, b) <= 0 { a } else { b }),
            (a, b) => a.or(b),
        }
    }

    /// After input or an application call changed state without a flush: make sure a flush is
    /// due within one interval when kcp-go's timer would find work.
    fn arm_interval_if_busy(&mut self, ms: u32) {
        if self.quiet() && !self.flush_pending {
            return;
        }
        let tick = ms.wrapping_add(self.cfg.interval);
        self.next_flush = Some(match self.next_flush {
            Some(t) if timediff(t, tick) <= 0 => t,
            _ => tick,
        });
    }
}

impl Machine for Kcp {
    type Event = KcpEvent;
    type InputError = InputError;

    #[deny(clippy::indexing_slicing, clippy::unwrap_used, clippy::expect_used)]
    fn handle_input(&mut self, now: Instant, data: &[u8]) -> Result<(), InputError> {
        // As a standalone machine, KCP's datagrams carry `reserved` opaque leading bytes (the
        // session layer's header space, zero here): skip them symmetrically.
        let data = data.get(self.cfg.reserved as usize..).unwrap_or(&[]);
        self.handle_packet(now, data, true)
    }

    fn poll_transmit(&mut self, now: Instant, buf: &mut Vec<u8>) -> Option<Transmit> {
        self.flush_if_pending(now);
        self.pop_output(buf).map(|len| Transmit { len })
    }

    fn has_transmit(&self) -> bool {
        self.flush_pending || self.queued_output() > 0
    }

    fn poll_timeout(&self) -> Option<Instant> {
        // A pending flush is output (`has_transmit`), not a deadline (driver.rs contract).
        self.next_flush
            .map(|ms| self.clock.instant_at(self.last_now, ms))
    }

    fn handle_timeout(&mut self, now: Instant) {
        if self.closed {
            return; // the final flush is output (`has_transmit`), never a timer
        }
        let ms = self.clock.ms(now);
        self.last_now = now;
        let due = matches!(self.next_flush, Some(t) if timediff(ms, t) >= 0);
        if due || self.flush_pending {
            self.flush_pending = false;
            self.flush_and_schedule(now);
        }
    }

    fn poll_event(&mut self) -> Option<KcpEvent> {
        Kcp::poll_event(self)
    }
}

impl Kcp {
    /// [`Machine::poll_transmit`] without the copy: runs a pending flush, then pops the next
    /// datagram as an owned buffer (give it back with [`Kcp::recycle`]).
    pub fn poll_datagram(&mut self, now: Instant) -> Option<Vec<u8>> {
        self.flush_if_pending(now);
        self.pop_output_owned()
    }

    /// The flush an application call or input asked for (`has_transmit`), run on demand.
    fn flush_if_pending(&mut self, now: Instant) {
        if self.flush_pending {
            self.flush_pending = false;
            self.last_now = now;
            self.flush_and_schedule(now);
        }
    }

    /// Whether every peer-fillable buffer is within its bound (used by fuzzing and tests):
    /// the receive side holds at most `rcv_wnd` segments in each queue, the ACK list stays
    /// below its forced-flush limit, and the resend heap holds at most three entries per
    /// segment the window allows in flight (two after each flush, plus one pass's sends).
    pub fn debug_bounds_ok(&self) -> bool {
        let w = self.cfg.rcv_wnd as usize;
        self.rcv_buf.len() <= w
            && self.rcv_queue.len() <= w
            && self.acklist.len() <= 2 * w + self.cfg.mtu as usize / segment::OVERHEAD + 1
            && self.pool.len() <= (self.cfg.snd_wnd + self.cfg.rcv_wnd) as usize + 64
            && self.resend_heap.len()
                <= 3 * self.cfg.snd_wnd.max(self.snd_buf.len() as u32) as usize + 64
    }
}

/// A refused byte-stream write: writes are cut into segments, so only a full window (or
/// a closed machine) refuses one.
fn stream_error(e: WriteError) -> StreamError {
    match e {
        WriteError::Closed => StreamError::Closed,
        _ => StreamError::Blocked,
    }
}

/// KCP in stream mode as the application's byte stream. KCP has no FIN, so there is no
/// half-close ([`StreamError::Unsupported`]); message-mode users call [`Kcp::recv`] and
/// [`Kcp::write_message`] instead.
impl ByteStream for Kcp {
    fn write(&mut self, data: &[u8]) -> Result<usize, StreamError> {
        if data.is_empty() {
            return Ok(0);
        }
        // Stream-mode writes are cut into segments, so only a full window refuses them.
        Kcp::write(self, data).map_err(stream_error)
    }

    /// The chunk's bytes are queued as slices of it ([`Kcp::write_chunk`]).
    fn write_chunk(&mut self, data: Bytes) -> Result<usize, StreamError> {
        if data.is_empty() {
            return Ok(0);
        }
        Kcp::write_chunk(self, data).map_err(stream_error)
    }

    fn read(&mut self, buf: &mut [u8]) -> Result<usize, StreamError> {
        self.recv_stream(buf).map_err(|_| StreamError::Blocked)
    }

    fn poll_writable(&mut self) -> bool {
        Kcp::poll_writable(self)
    }

    /// A whole received segment becomes the chunk (its buffer, no copy); small segments are
    /// gathered into the caller's `room` with one copy, as `read` would.
    fn read_chunk(&mut self, max: usize, room: &mut BytesMut) -> Result<Bytes, StreamError> {
        if let Some(seg) = self.take_whole_segment(max) {
            return Ok(seg);
        }
        if max == 0 {
            return Err(StreamError::Blocked);
        }
        read_chunk_with(max, room, |b| ByteStream::read(self, b))
    }

    fn finish(&mut self) -> Result<(), StreamError> {
        Err(StreamError::Unsupported)
    }

    fn all_acked(&self) -> bool {
        Kcp::all_acked(self)
    }
}
