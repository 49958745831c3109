//! The session machine: the streams, the application calls, and the [`StreamLayer`] glue.
//! The receive path is in `receive.rs`, the write scheduler in `scheduler.rs`.
#![deny(clippy::indexing_slicing, clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::convert::Infallible;
use std::time::Instant;

use crate::chunks::ChunkQueue;
use crate::driver::{Bytes, BytesMut, StreamError, StreamEvent, StreamId, LINGER_TIMEOUT};
use crate::stack::{Lower, Side, StreamLayer};

use super::config::{Dialect, SmuxConfig};
use super::decode::HeaderReader;
use super::error::SmuxError;
use super::flow::{SendFlow, Update, INITIAL_PEER_WINDOW};
use super::frame::Cmd;
use super::ids::{SeedIds, XtaciIds};
use super::keepalive::Keepalive;
use super::receive::RxState;
use super::scheduler::Control;
use super::stats::SmuxStats;
use super::stream::{Linger, Stream};

/// The id allocator of the dialect.
#[derive(Debug)]
pub(super) enum Ids {
    Xtaci(XtaciIds),
    Seed(SeedIds),
}

/// An smux session of either dialect, as the upper layer of a
/// [`Stack`](crate::stack::Stack): over a KCP session (`Stack<Session, Smux>`) or a TCP
/// connection (`Stack<StreamLink, Smux>`). See the [module docs](super).
///
/// ```
/// use std::time::Instant;
/// use tether_core::driver::{Machine, Streams};
/// use tether_core::smux::{Smux, SmuxConfig};
/// use tether_core::stack::{Side, Stack};
/// use tether_core::stream_link::StreamLink;
///
/// let now = Instant::now(); // the caller owns the clock
/// let mut a = Stack::new(StreamLink::default(), Smux::new(SmuxConfig::xtaci(2), Side::Client));
/// let id = a.open_stream().unwrap();
/// a.write(id, b"ping").unwrap();
/// let mut wire = Vec::new();
/// while a.has_transmit() {
///     a.poll_transmit(now, &mut wire);
/// }
/// // SYN then PSH for stream 3 (smux-xtaci.md §2)
/// assert_eq!(&wire[..8], &[2, 0, 0, 0, 3, 0, 0, 0]);
/// assert_eq!(&wire[8..], &[2, 2, 4, 0, 3, 0, 0, 0, b'p', b'i', b'n', b'g']);
/// ```
#[derive(Debug)]
pub struct Smux {
    pub(super) config: SmuxConfig,
    /// Streams by application handle.
    pub(super) streams: BTreeMap<StreamId, Stream>,
    /// Wire id → handle, for streams the wire still names.
    pub(super) wire: BTreeMap<u32, StreamId>,
    /// Seed ids whose FIN we sent (or a refused SYN's) with no stream left: freed by the
    /// peer's answering FIN (smux-seed.md §6 rule 1).
    pub(super) wait_fin: BTreeSet<u32>,
    pub(super) ids: Ids,
    /// The seed's handle generation (stale handles do not reach a reused id).
    next_gen: u16,
    /// Streams the peer opened, not yet accepted.
    pub(super) incoming: VecDeque<StreamId>,
    pub(super) rx: RxState,
    pub(super) header: HeaderReader,
    pub(super) upd: [u8; 8],
    pub(super) upd_have: usize,
    pub(super) scratch: Vec<u8>,
    pub(super) ctrl: Control,
    /// Room a lower stream without owned buffers (a KCP session) reads payloads into.
    pub(super) rx_room: BytesMut,
    /// The chunks of the PSH being written (kept for their allocation).
    pub(super) frame_body: Vec<Bytes>,
    /// Streams with a frame to send, served round-robin.
    pub(super) ready: VecDeque<StreamId>,
    pub(super) keepalive: Keepalive,
    /// Streams the application dropped that still flush.
    pub(super) lingering: BTreeSet<StreamId>,
    /// Streams with frames written since the lower stream's last acknowledgement.
    pub(super) unacked: BTreeSet<StreamId>,
    pub(super) events: VecDeque<StreamEvent<SmuxError>>,
    pub(super) stats: SmuxStats,
    /// Bytes in receive buffers.
    pub(super) rx_buffered: usize,
    /// Bytes in send queues.
    pub(super) tx_buffered: usize,
    pub(super) failed: bool,
}

impl Smux {
    /// A session for `side` (xtaci numbers streams by it). Never panics: an out-of-range
    /// field is clamped ([`SmuxConfig::validate`] reports it first).
    pub fn new(config: SmuxConfig, side: Side) -> Smux {
        let config = config.clamped();
        let ids = match config.dialect {
            Dialect::Seed => Ids::Seed(SeedIds::new()),
            _ => Ids::Xtaci(XtaciIds::new(side)),
        };
        Smux {
            keepalive: Keepalive::new(config.keepalive_interval, config.keepalive_timeout),
            config,
            streams: BTreeMap::new(),
            wire: BTreeMap::new(),
            wait_fin: BTreeSet::new(),
            ids,
            next_gen: 0,
            incoming: VecDeque::new(),
            rx: RxState::Header,
            header: HeaderReader::default(),
            upd: [0; 8],
            upd_have: 0,
            scratch: Vec::new(),
            ctrl: Control::default(),
            frame_body: Vec::new(),
            rx_room: BytesMut::new(),
            ready: VecDeque::new(),
            lingering: BTreeSet::new(),
            unacked: BTreeSet::new(),
            events: VecDeque::new(),
            stats: SmuxStats::default(),
            rx_buffered: 0,
            tx_buffered: 0,
            failed: false,
        }
    }

    /// The configuration in force (after clamping).
    pub fn config(&self) -> &SmuxConfig {
        &self.config
    }

    /// The counters.
    pub fn stats(&self) -> SmuxStats {
        self.stats
    }

    /// Streams the session holds (open, lingering, or waiting to be accepted).
    pub fn live_streams(&self) -> usize {
        self.streams.len()
    }

    /// Bytes held in receive buffers, send queues and the control queue.
    pub fn buffered(&self) -> usize {
        self.rx_buffered + self.tx_buffered + self.ctrl.len()
    }

    /// Seed: ids in use in the shared bitmap (the reserved 0 included); xtaci: 0.
    pub fn seed_ids_used(&self) -> usize {
        match &self.ids {
            Ids::Seed(s) => s.used(),
            Ids::Xtaci(_) => 0,
        }
    }

    /// Moves the xtaci id counter (tests of the wrap rule).
    #[cfg(test)]
    pub(crate) fn set_next_xtaci_id(&mut self, next: u32) {
        if let Ids::Xtaci(x) = &mut self.ids {
            x.set_next(next);
        }
    }

    pub(super) fn is_seed(&self) -> bool {
        self.config.dialect == Dialect::Seed
    }

    /// Ends the session with `why` (once).
    pub(super) fn fail(&mut self, why: SmuxError) {
        if !self.failed {
            self.failed = true;
            if !matches!(why, SmuxError::KeepaliveTimeout(_) | SmuxError::PeerClosed) {
                self.stats.protocol_errors += 1;
            }
            self.ready.clear();
            self.events.push_back(StreamEvent::Closed(why));
        }
    }

    /// A fresh handle for wire id `sid`: the sid itself for xtaci, generation << 16 | id for
    /// the seed.
    fn new_handle(&mut self, sid: u32) -> StreamId {
        if !self.is_seed() {
            return StreamId(sid);
        }
        loop {
            let h = StreamId(u32::from(self.next_gen) << 16 | (sid & 0xFFFF));
            self.next_gen = self.next_gen.wrapping_add(1);
            if !self.streams.contains_key(&h) {
                return h;
            }
        }
    }

    /// The send window a new stream starts with.
    fn initial_flow(&self) -> SendFlow {
        match self.config.dialect {
            Dialect::V1 => SendFlow::Unlimited,
            Dialect::V2 => SendFlow::Upd {
                written: 0,
                consumed: 0,
                window: INITIAL_PEER_WINDOW,
            },
            Dialect::Seed => SendFlow::Cfm {
                waiting: 0,
                window: u32::try_from(self.config.max_stream_buffer).unwrap_or(u32::MAX),
            },
        }
    }

    /// Creates a stream for wire id `sid` and maps the wire id to it.
    pub(super) fn create_stream(&mut self, sid: u32) -> StreamId {
        let h = self.new_handle(sid);
        let s = Stream::new(h, sid, self.initial_flow());
        self.streams.insert(h, s);
        self.wire.insert(sid, h);
        h
    }

    /// Bytes a stream's send queue holds at most (writes block beyond it).
    pub(super) fn send_cap(&self) -> usize {
        self.config
            .max_stream_buffer
            .max(self.config.max_frame_size)
    }

    /// Reports `Readable` once until the application drains the stream.
    pub(super) fn signal_readable(&mut self, h: StreamId) {
        if let Some(s) = self.streams.get_mut(&h) {
            if !s.readable_signalled && !s.app_closed() {
                s.readable_signalled = true;
                self.events.push_back(StreamEvent::Readable(h));
            }
        }
    }

    /// Forgets a stream the application dropped: its id goes back (seed: once the FIN
    /// handshake completes) and `StreamClosed` is reported.
    pub(super) fn forget(&mut self, h: StreamId) {
        let Some(mut s) = self.streams.remove(&h) else {
            return;
        };
        self.rx_buffered -= s.discard_recv();
        self.tx_buffered -= s.send.len();
        if s.wired {
            self.wire.remove(&s.sid);
            if let Ids::Seed(ids) = &mut self.ids {
                if s.fin_sent {
                    self.wait_fin.insert(s.sid); // freed by the peer's answering FIN
                } else {
                    ids.clear(u16::try_from(s.sid).unwrap_or_default());
                }
            }
        }
        self.lingering.remove(&h);
        self.unacked.remove(&h);
        self.events.push_back(StreamEvent::StreamClosed(h));
    }

    /// Queues the v2 UPD or seed CFM a read produced.
    fn queue_update(&mut self, sid: u32, update: Update) {
        self.stats.window_updates_sent += 1;
        match update {
            Update::Upd { consumed, window } => {
                let mut payload = [0u8; 8];
                for (d, s) in payload.iter_mut().zip(
                    consumed
                        .to_le_bytes()
                        .into_iter()
                        .chain(window.to_le_bytes()),
                ) {
                    *d = s;
                }
                self.ctrl
                    .push(self.config.dialect, Cmd::Upd, sid, 8, &payload);
            }
            Update::Cfm(credit) => self
                .ctrl
                .push(self.config.dialect, Cmd::Cfm, sid, credit, &[]),
        }
    }

    /// Starts the linger clocks of streams dropped since the last pump; `None` when none.
    fn start_lingers(&mut self, now: Instant) {
        for h in &self.lingering {
            if let Some(s) = self.streams.get_mut(h) {
                if s.linger == Linger::Requested {
                    s.linger = Linger::Until(now.checked_add(LINGER_TIMEOUT).unwrap_or(now));
                }
            }
        }
    }

    /// Streams whose linger ran out: their queue is dropped and only the FIN is left.
    fn expire_lingers(&mut self, now: Instant) {
        let due: Vec<StreamId> = self
            .lingering
            .iter()
            .filter(|h| {
                self.streams
                    .get(h)
                    .is_some_and(|s| matches!(s.linger, Linger::Until(t) if t <= now))
            })
            .copied()
            .collect();
        for h in due {
            if let Some(s) = self.streams.get_mut(&h) {
                s.linger = Linger::Expired;
                self.tx_buffered -= s.send.len();
                if !s.send.is_empty() {
                    self.stats.streams_reset += 1;
                }
                s.send.clear();
                s.send.release();
            }
            self.make_ready(h);
        }
    }
}

impl Smux {
    /// A write of `len` bytes on `id`: when nothing else waits, `direct(self, lower)`
    /// writes straight into the lower stream and returns how many bytes it wrote; of the
    /// rest, what fits under the stream's cap is queued by `enqueue(queue, from, to)`.
    fn write_with(
        &mut self,
        lower: &mut Lower<'_>,
        id: StreamId,
        len: usize,
        direct: impl FnOnce(&mut Smux, &mut Lower<'_>) -> usize,
        enqueue: impl FnOnce(&mut ChunkQueue, usize, usize),
    ) -> Result<usize, StreamError> {
        let s = self.streams.get(&id).ok_or(StreamError::Unknown(id))?;
        if self.failed || !s.writable() {
            return Err(StreamError::Closed);
        }
        if len == 0 {
            return Ok(0);
        }
        let go_direct = s.send.is_empty() && self.ready.is_empty() && self.flush_control(lower);
        let mut done = if go_direct { direct(self, lower) } else { 0 };
        let cap = self.send_cap();
        let Some(s) = self.streams.get_mut(&id) else {
            return Err(StreamError::Unknown(id));
        };
        let n = cap.saturating_sub(s.send.len()).min(len - done);
        if n > 0 {
            enqueue(&mut s.send, done, done + n);
        }
        self.tx_buffered += n;
        done += n;
        if n > 0 {
            self.make_ready(id);
        }
        if done == 0 {
            if let Some(s) = self.streams.get_mut(&id) {
                s.want_writable = true;
            }
            return Err(StreamError::Blocked);
        }
        Ok(done)
    }

    /// A read on `id`: `take` moves bytes out of the stream's receive queue and says how
    /// many; window updates follow as for any read.
    fn read_with<T>(
        &mut self,
        id: StreamId,
        take: impl FnOnce(&mut ChunkQueue) -> (usize, T),
    ) -> Result<T, StreamError> {
        let failed = self.failed;
        let s = self.streams.get_mut(&id).ok_or(StreamError::Unknown(id))?;
        if s.app_closed() {
            return Err(StreamError::Closed);
        }
        if s.recv.is_empty() {
            s.readable_signalled = false;
            return Err(if s.fin_recv {
                StreamError::Finished
            } else if failed {
                StreamError::Closed
            } else {
                StreamError::Blocked
            });
        }
        let (n, out) = take(&mut s.recv);
        self.rx_buffered -= n;
        if n == 0 || !s.wired || failed {
            return Ok(out);
        }
        let (v2, window) = (
            self.config.dialect == Dialect::V2,
            self.config.max_stream_buffer,
        );
        let sid = s.sid;
        let update = match self.config.dialect {
            Dialect::V1 => None,
            _ => s.recv_flow.on_read(n, v2, window),
        };
        if let Some(u) = update {
            self.queue_update(sid, u);
        }
        Ok(out)
    }
}

impl StreamLayer for Smux {
    type Reason = SmuxError;

    fn pump(&mut self, now: Instant, lower: &mut Lower<'_>) {
        self.keepalive.arm(now);
        self.start_lingers(now);
        self.send(lower);
        self.receive(lower);
        self.send(lower);
    }

    fn on_lower_event(&mut self, ev: StreamEvent<Infallible>, _lower: &mut Lower<'_>) {
        if let StreamEvent::Acknowledged(_) = ev {
            let done: Vec<StreamId> = self
                .unacked
                .iter()
                .filter(|h| self.streams.get(h).is_none_or(|s| s.flushed()))
                .copied()
                .collect();
            for h in done {
                self.unacked.remove(&h);
                if let Some(s) = self.streams.get_mut(&h) {
                    s.unacked = false;
                    if !s.app_closed() {
                        self.events.push_back(StreamEvent::Acknowledged(h));
                    }
                }
            }
        }
        // Readable and Writable: the pump that follows (drain step 3) reads and writes.
    }

    fn poll_timeout(&self) -> Option<Instant> {
        if self.failed {
            return None;
        }
        let linger = self
            .lingering
            .iter()
            .filter_map(|h| match self.streams.get(h)?.linger {
                Linger::Until(t) => Some(t),
                _ => None,
            })
            .min();
        [self.keepalive.deadline(), linger]
            .into_iter()
            .flatten()
            .min()
    }

    fn handle_timeout(&mut self, now: Instant, _lower: &mut Lower<'_>) {
        if self.failed {
            return;
        }
        let tick = self.keepalive.fire(now, self.receive_paused());
        if tick.send_nop {
            self.stats.keepalives_sent += 1;
            self.ctrl.push(self.config.dialect, Cmd::Nop, 0, 0, &[]);
        }
        if tick.timed_out {
            self.fail(SmuxError::KeepaliveTimeout(self.keepalive.timeout()));
            return;
        }
        self.expire_lingers(now);
    }

    fn poll_event(&mut self) -> Option<StreamEvent<SmuxError>> {
        self.events.pop_front()
    }

    fn open_stream(&mut self, _lower: &mut Lower<'_>) -> Result<StreamId, StreamError> {
        if self.failed || self.streams.len() >= self.config.max_streams {
            return Err(StreamError::Closed);
        }
        let sid = match &mut self.ids {
            Ids::Xtaci(x) => {
                let wire = &self.wire;
                x.alloc(|id| wire.contains_key(&id))
            }
            Ids::Seed(s) => s.alloc().map(u32::from),
        };
        // xtaci: the id space wrapped (`ErrGoAway`); seed: all 65535 ids are in use.
        let sid = sid.ok_or(StreamError::Closed)?;
        let h = self.create_stream(sid);
        self.ctrl.push(self.config.dialect, Cmd::Syn, sid, 0, &[]);
        self.stats.streams_opened += 1;
        Ok(h)
    }

    fn accept_stream(&mut self) -> Option<StreamId> {
        while let Some(h) = self.incoming.pop_front() {
            if self.streams.contains_key(&h) {
                return Some(h);
            }
        }
        None
    }

    fn write(
        &mut self,
        lower: &mut Lower<'_>,
        id: StreamId,
        data: &[u8],
    ) -> Result<usize, StreamError> {
        // Straight into the lower stream (no copy here), the rest queued (one copy).
        self.write_with(
            lower,
            id,
            data.len(),
            |this, lower| this.write_direct(lower, id, data),
            |q, from, to| q.extend_from_slice(data.get(from..to).unwrap_or_default()),
        )
    }

    fn write_chunk(
        &mut self,
        lower: &mut Lower<'_>,
        id: StreamId,
        data: Bytes,
    ) -> Result<usize, StreamError> {
        // The rest is queued as a slice of the chunk: no copy either way.
        let direct = data.clone();
        self.write_with(
            lower,
            id,
            data.len(),
            |this, lower| this.write_direct_bytes(lower, id, direct),
            |q, from, to| q.push(data.slice(from..to)),
        )
    }

    fn read(
        &mut self,
        _lower: &mut Lower<'_>,
        id: StreamId,
        buf: &mut [u8],
    ) -> Result<usize, StreamError> {
        self.read_with(id, |q| {
            let n = q.read_into(buf);
            (n, n)
        })
    }

    fn read_chunk(
        &mut self,
        _lower: &mut Lower<'_>,
        id: StreamId,
        max: usize,
        _room: &mut BytesMut,
    ) -> Result<Bytes, StreamError> {
        self.read_with(id, |q| {
            let c = q.pop_chunk(max).unwrap_or_default();
            (c.len(), c)
        })
    }

    fn finish(&mut self, _lower: &mut Lower<'_>, id: StreamId) -> Result<(), StreamError> {
        let s = self.streams.get_mut(&id).ok_or(StreamError::Unknown(id))?;
        if s.fin_due || s.fin_sent {
            return if s.peer_gone {
                Err(StreamError::Closed)
            } else {
                Ok(())
            };
        }
        if self.failed {
            return Err(StreamError::Closed);
        }
        s.fin_due = true;
        self.make_ready(id);
        Ok(())
    }

    fn close_stream(&mut self, _lower: &mut Lower<'_>, id: StreamId) {
        let Some(s) = self.streams.get_mut(&id) else {
            return;
        };
        if s.app_closed() {
            return;
        }
        s.linger = Linger::Requested;
        s.fin_due = true;
        self.rx_buffered -= s.discard_recv();
        let done = s.fin_sent || self.failed;
        self.lingering.insert(id);
        if done {
            self.forget(id);
        } else {
            self.make_ready(id);
        }
    }

    fn flushed(&self, id: StreamId) -> bool {
        self.streams.get(&id).is_none_or(|s| s.flushed())
    }

    /// Per stream: flushed, and no frame written since the lower stream last reported
    /// everything acknowledged (`on_lower_event` clears the mark), whatever other streams
    /// have in flight. Asking for the whole lower stream instead hung flushes: a runtime
    /// settles a stream after its `Acknowledged`, a window update written in between made
    /// the answer false, and no later event named the stream again
    /// (`concurrent_opens::over_kcp`, about 1 run in 10). An `Acknowledged` read after new
    /// frames went down clears their streams' marks too, so a flush may return while its
    /// last frames are in flight (as a TCP flush does); skipping such events instead could
    /// leave a flush waiting until the lower stream empties once more (it reports only once
    /// per emptying).
    fn acked(&self, id: StreamId, _lower_acked: bool) -> bool {
        self.streams
            .get(&id)
            .is_none_or(|s| s.flushed() && !s.unacked)
    }
}
