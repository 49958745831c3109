//! Composition: a stack of machines is itself a machine.
//!
//! A [`Stack`] puts an upper stream layer ([`StreamLayer`]: a multiplexer such as smux, a
//! transform such as snappy, or [`Plain`], the identity) on a lower datagram machine that
//! carries one byte stream ([`LowerLayer`]: a KCP [`Session`] or a
//! bare [`Kcp`]). The stack's input is the lower machine's datagrams, its output the lower
//! machine's datagrams, and the application sees the upper layer's [`Streams`].
//!
//! ```text
//!   application ── Streams (open/accept/read/write/finish/close_stream per StreamId)
//!        │
//!   upper layer (U)   Plain │ ToyMux │ smux │ snappy → smux …      StreamLayer
//!        │  bytes written into / read from the lower stream (Lower)
//!   lower layer (L)   Session (crypto + FEC + KCP) │ Kcp          LowerLayer = Machine + ByteStream
//!        │  datagrams
//!   driver (Pair, listener, runtime socket loop)
//! ```
//!
//! Drain order, fixed (str0m's `poll_output` discipline), run after every input, timer and
//! application call, before the lower machine's datagrams are handed out:
//! 1. the lower machine's events (readable, writable, acknowledged, dead link, closed) are
//!    handed to the upper layer;
//! 2. bytes the upper layer produced that the lower stream did not take yet (at most one
//!    frame, kept by the stack, never dropped) are written into the lower stream;
//! 3. the upper layer pumps: it reads what the lower stream delivered and writes what it
//!    has queued, while the lower stream accepts;
//! 4. the upper layer's events are queued for the application;
//! 5. [`Machine::poll_transmit`] hands out the lower machine's datagrams.
//!
//! The stack's deadline is the minimum of its layers'; "has output" is explicit (work
//! queued by steps 1–4, or the lower machine's own output). A connection ends with one
//! [`StreamEvent::Closed`], whichever layer ended it.
use std::collections::VecDeque;
use std::convert::Infallible;
use std::fmt::Debug;
use std::time::Instant;

use crate::driver::{
    read_chunk_with, ByteStream, Bytes, BytesMut, Machine, StreamError, StreamEvent, StreamId,
    Streams, Transmit, Transport,
};
use crate::kcp::{Kcp, KcpCloseReason, KcpEvent};
use crate::session::Session;

pub use crate::driver::LINGER_TIMEOUT;

/// The lower machine of a stack: datagrams in and out, one byte stream carried.
pub trait LowerLayer: Machine + ByteStream {
    /// Why the connection closed.
    type Reason: Clone + Debug;

    /// Translates one of the machine's events into the shared vocabulary (for the sole
    /// stream). `None` for events the stack handles itself (a dead link).
    fn stream_event(ev: &Self::Event) -> Option<StreamEvent<Self::Reason>>;

    /// Whether `ev` reports a dead link (kcp.md §8.3): the stack closes the connection.
    fn is_dead_link(ev: &Self::Event) -> bool;

    /// Closes the connection; its `Closed` event follows. `dead_link` says why.
    fn close_connection(&mut self, dead_link: bool);
}

fn kcp_stream_event(ev: &KcpEvent) -> Option<StreamEvent<KcpCloseReason>> {
    Some(match *ev {
        KcpEvent::Readable => StreamEvent::Readable(StreamId::SOLE),
        KcpEvent::Writable => StreamEvent::Writable(StreamId::SOLE),
        KcpEvent::Acknowledged => StreamEvent::Acknowledged(StreamId::SOLE),
        KcpEvent::Closed(r) => StreamEvent::Closed(r),
        KcpEvent::DeadLink => return None,
    })
}

fn close_reason(dead_link: bool) -> KcpCloseReason {
    if dead_link {
        KcpCloseReason::DeadLink
    } else {
        KcpCloseReason::Local
    }
}

/// Both KCP machines (a bare [`Kcp`] and a kcp-go [`Session`]) speak [`KcpEvent`] and close
/// with [`KcpCloseReason`]: one implementation for the two.
macro_rules! kcp_lower_layer {
    ($($t:ty),*) => {$(
        impl LowerLayer for $t {
            type Reason = KcpCloseReason;
            fn stream_event(ev: &KcpEvent) -> Option<StreamEvent<KcpCloseReason>> {
                kcp_stream_event(ev)
            }
            fn is_dead_link(ev: &KcpEvent) -> bool {
                *ev == KcpEvent::DeadLink
            }
            fn close_connection(&mut self, dead_link: bool) {
                self.close_with(close_reason(dead_link));
            }
        }
    )*};
}

kcp_lower_layer!(Session, Kcp);

/// The lower byte stream as an upper layer sees it: writes never lose bytes (what the lower
/// stream did not take of a frame is kept by the stack and written first next time), and the
/// layer may ask for the connection to close.
pub struct Lower<'a> {
    stream: &'a mut dyn ByteStream,
    pending: &'a mut Vec<u8>,
    close: &'a mut bool,
}

impl<'a> Lower<'a> {
    /// A lower stream for an upper layer: `stream` is what it writes into and reads from,
    /// `pending` keeps what `stream` refused of a frame it started taking, `close` records a
    /// close request. A transform layer (snappy) builds one over its own stream to host the
    /// layer above it.
    pub fn new(
        stream: &'a mut dyn ByteStream,
        pending: &'a mut Vec<u8>,
        close: &'a mut bool,
    ) -> Self {
        Lower {
            stream,
            pending,
            close,
        }
    }
}

impl Lower<'_> {
    /// Writes one frame given in parts (e.g. header and payload, without copying them
    /// together). `Err(Blocked)`: nothing was taken, wait for the lower stream's `Writable`.
    /// Once any byte is taken the whole frame is: what the lower stream refuses stays in the
    /// stack (bounded by one frame) and goes first on the next pump.
    pub fn write_frame(&mut self, parts: &[&[u8]]) -> Result<(), StreamError> {
        if !self.pending.is_empty() {
            return Err(StreamError::Blocked);
        }
        let total: usize = parts.iter().map(|p| p.len()).sum();
        if total == 0 {
            return Ok(());
        }
        let taken = self.stream.write_parts(parts)?;
        self.keep_refused(parts, taken)
    }

    /// [`Lower::write_frame`] of a header and an owned payload: a lower stream that queues
    /// owned chunks (a [`StreamLink`](crate::stream_link::StreamLink)) keeps the payload
    /// without copying it.
    pub fn write_frame_bytes(&mut self, head: &[u8], body: &[Bytes]) -> Result<(), StreamError> {
        if !self.pending.is_empty() {
            return Err(StreamError::Blocked);
        }
        let total = head.len() + body.iter().map(Bytes::len).sum::<usize>();
        if total == 0 {
            return Ok(());
        }
        let taken = self.stream.write_frame_bytes(head, body)?;
        if taken == total {
            return Ok(()); // the usual case: no refused rest to keep
        }
        let parts: Vec<&[u8]> = std::iter::once(head)
            .chain(body.iter().map(|b| &b[..]))
            .collect();
        self.keep_refused(&parts, taken)
    }

    /// After the lower stream took `taken` bytes of a frame: `Blocked` if none, else what
    /// it refused stays in the stack (bounded by one frame).
    fn keep_refused(&mut self, parts: &[&[u8]], taken: usize) -> Result<(), StreamError> {
        let mut skip = match taken {
            0 => return Err(StreamError::Blocked),
            n => n,
        };
        for part in parts {
            if skip >= part.len() {
                skip -= part.len();
                continue;
            }
            self.pending
                .extend_from_slice(part.get(skip..).unwrap_or_default());
            skip = 0;
        }
        Ok(())
    }

    /// Whether a frame written now could be taken (nothing refused is waiting and the lower
    /// stream has room); `false` promises a `Writable` lower event, or a drain of the refused
    /// bytes on the stack's next pass. See [`ByteStream::poll_writable`].
    pub fn poll_writable(&mut self) -> bool {
        self.pending.is_empty() && self.stream.poll_writable()
    }

    /// Reads what the lower stream delivered.
    pub fn read(&mut self, buf: &mut [u8]) -> Result<usize, StreamError> {
        self.stream.read(buf)
    }

    /// Reads what the lower stream delivered as an owned chunk of at most `max` bytes
    /// ([`ByteStream::read_chunk`]: a slice of its buffers when it keeps owned ones).
    pub fn read_chunk(&mut self, max: usize, room: &mut BytesMut) -> Result<Bytes, StreamError> {
        self.stream.read_chunk(max, room)
    }

    /// Whether every byte written into the lower stream was taken and acknowledged.
    pub fn all_acked(&self) -> bool {
        self.pending.is_empty() && self.stream.all_acked()
    }

    /// Asks the stack to close the connection (e.g. the last stream is gone).
    pub fn close_connection(&mut self) {
        *self.close = true;
    }
}

/// An upper layer: its input is what it reads of the lower byte stream, its output what it
/// writes into it (both through [`Lower`], so the identity layer copies nothing), and it
/// exposes [`Streams`]-shaped calls to the application.
pub trait StreamLayer {
    /// Why this layer ended the connection (a framing error, a peer's GOAWAY).
    type Reason: Clone + Debug;

    /// Moves bytes: reads what the lower stream delivered, writes what this layer queued.
    /// Called by the stack after every input, timer and application call (drain step 3).
    fn pump(&mut self, now: Instant, lower: &mut Lower<'_>);

    /// One event of the lower stream (`Readable`, `Writable`, `Acknowledged` of the sole
    /// lower stream; `Acknowledged` is passed only when the stack holds no refused bytes).
    fn on_lower_event(&mut self, ev: StreamEvent<Infallible>, lower: &mut Lower<'_>);

    /// The layer's own timer (keepalives, linger); `None` when it has none.
    fn poll_timeout(&self) -> Option<Instant>;

    /// Fires the layer's timer (early calls do nothing harmful).
    fn handle_timeout(&mut self, now: Instant, lower: &mut Lower<'_>);

    /// The next application event; `Closed` ends the connection.
    fn poll_event(&mut self) -> Option<StreamEvent<Self::Reason>>;

    /// [`Streams::open_stream`].
    fn open_stream(&mut self, lower: &mut Lower<'_>) -> Result<StreamId, StreamError>;
    /// [`Streams::accept_stream`].
    fn accept_stream(&mut self) -> Option<StreamId>;
    /// [`Streams::write`].
    fn write(
        &mut self,
        lower: &mut Lower<'_>,
        id: StreamId,
        data: &[u8],
    ) -> Result<usize, StreamError>;
    /// [`Streams::read`].
    fn read(
        &mut self,
        lower: &mut Lower<'_>,
        id: StreamId,
        buf: &mut [u8],
    ) -> Result<usize, StreamError>;
    /// [`Streams::read_chunk`]; by default `read` into `room`.
    fn read_chunk(
        &mut self,
        lower: &mut Lower<'_>,
        id: StreamId,
        max: usize,
        room: &mut BytesMut,
    ) -> Result<Bytes, StreamError> {
        if max == 0 {
            return Err(StreamError::Blocked);
        }
        read_chunk_with(max, room, |b| self.read(lower, id, b))
    }
    /// [`Streams::write_chunk`]; by default `write`.
    fn write_chunk(
        &mut self,
        lower: &mut Lower<'_>,
        id: StreamId,
        data: Bytes,
    ) -> Result<usize, StreamError> {
        self.write(lower, id, &data)
    }
    /// [`Streams::finish`].
    fn finish(&mut self, lower: &mut Lower<'_>, id: StreamId) -> Result<(), StreamError>;
    /// [`Streams::close_stream`]: linger until acknowledged, at most [`LINGER_TIMEOUT`].
    fn close_stream(&mut self, lower: &mut Lower<'_>, id: StreamId);
    /// Whether nothing written on `id` waits inside this layer (the stack adds the lower
    /// stream's acknowledgements for [`Streams::all_acked`]).
    fn flushed(&self, id: StreamId) -> bool;
    /// Whether everything written on `id` was acknowledged, `lower_acked` saying whether the
    /// lower stream's bytes all are ([`Streams::all_acked`]). By default: flushed here and
    /// acknowledged below. A layer that tracks acknowledgements per stream answers for `id`
    /// alone, so one stream's flush need not wait for another's bytes in flight.
    fn acked(&self, id: StreamId, lower_acked: bool) -> bool {
        self.flushed(id) && lower_acked
    }
}

/// Which end of a connection a layer serves (multiplexers number their streams by it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The side that dialled.
    Client,
    /// The side that accepted.
    Server,
}

/// Why a stack closed: its lower machine ended (closed, dead link) or its upper layer did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StackClose<L, U> {
    /// The lower machine closed (its reason).
    Lower(L),
    /// The upper layer ended the connection (its reason).
    Upper(U),
}

/// A lower datagram machine under an upper stream layer: itself a [`Machine`] (datagrams in
/// and out) and [`Streams`] (the upper layer's). See the module docs for the drain order.
///
/// A plain session as a stack, one byte stream ([`StreamId::SOLE`]) each way:
///
/// ```
/// use std::time::Instant;
/// use tether_core::driver::{Machine, StreamEvent, StreamId, Streams};
/// use tether_core::kcp::KcpConfig;
/// use tether_core::rng::seeded;
/// use tether_core::session::{CryptMode, Session, SessionConfig};
/// use tether_core::stack::{Plain, Stack};
///
/// let cfg = SessionConfig {
///     kcp: KcpConfig::fast3().with_stream(true),
///     crypt: CryptMode::Raw,
///     key: [0; 32],
///     data_shards: 0,
///     parity_shards: 0,
/// };
/// let now = Instant::now(); // the caller owns the clock
/// let mut a = Stack::new(Session::client(7, &cfg, now, Box::new(seeded(1))), Plain::default());
/// let mut b = Stack::new(Session::new(7, &cfg, now, Box::new(seeded(2))), Plain::default());
/// let sole = a.open_stream().unwrap();
/// assert_eq!(sole, StreamId::SOLE);
/// a.write(sole, b"hello").unwrap();
/// let mut buf = Vec::new();
/// while a.has_transmit() {
///     let Some(t) = a.poll_transmit(now, &mut buf) else { break };
///     b.handle_input(now, &buf[..t.len]).unwrap();
///     buf.clear();
/// }
/// assert_eq!(b.poll_event(), Some(StreamEvent::Readable(StreamId::SOLE)));
/// let mut got = [0u8; 16];
/// let n = b.read(StreamId::SOLE, &mut got).unwrap();
/// assert_eq!(&got[..n], b"hello");
/// ```
pub struct Stack<L: LowerLayer, U: StreamLayer> {
    lower: L,
    upper: U,
    /// Bytes of a frame the lower stream refused after taking its start (one frame at most).
    pending: Vec<u8>,
    /// Steps 1–4 of the drain order are due before the next datagram is handed out.
    work: bool,
    /// The upper layer asked for the connection to close.
    close_requested: bool,
    events: VecDeque<StreamEvent<StackClose<L::Reason, U::Reason>>>,
    /// The final `Closed` was queued: nothing else is reported.
    closed: bool,
}

impl<L: LowerLayer + Debug, U: StreamLayer + Debug> Debug for Stack<L, U> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stack")
            .field("lower", &self.lower)
            .field("upper", &self.upper)
            .field("pending", &self.pending.len())
            .field("closed", &self.closed)
            .finish_non_exhaustive()
    }
}

impl<L: LowerLayer, U: StreamLayer> Stack<L, U> {
    /// `upper` on `lower`.
    pub fn new(lower: L, upper: U) -> Self {
        Stack {
            lower,
            upper,
            pending: Vec::new(),
            work: true,
            close_requested: false,
            events: VecDeque::new(),
            closed: false,
        }
    }

    /// The lower machine (its counters, its conv).
    pub fn lower(&self) -> &L {
        &self.lower
    }

    /// The lower machine, mutably (the listener's demux feeds it pre-opened payloads).
    pub fn lower_mut(&mut self) -> &mut L {
        self.work = true;
        &mut self.lower
    }

    /// Runs `f` on the lower machine as an input path (e.g. a listener's demux handing it
    /// an already-opened payload), then drains the stack as after
    /// [`Machine::handle_input`].
    pub fn lower_input<R>(&mut self, now: Instant, f: impl FnOnce(&mut L) -> R) -> R {
        let r = f(&mut self.lower);
        self.drive(now);
        r
    }

    /// The upper layer.
    pub fn upper(&self) -> &U {
        &self.upper
    }

    /// Closes the connection (the lower machine's final flush, then one `Closed`).
    pub fn close(&mut self) {
        self.lower.close_connection(false);
        self.work = true;
    }

    /// Runs drain steps 1–4 (module docs) if an input, timer or application call left them
    /// due, without handing out output: a driver whose output buffer is full still lets the
    /// layers take the input that application reads made room for (a session paused at its
    /// receive bound resumes, and the driver reads its socket again).
    pub fn drain_work(&mut self, now: Instant) {
        if self.work {
            self.drive(now);
        }
    }

    /// Whether the final `Closed` was reported.
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// An application call `f` on the upper layer: marks the stack for a drain (the call
    /// may have produced output).
    fn app_call<T>(&mut self, f: impl FnOnce(&mut U, &mut Lower<'_>) -> T) -> T {
        self.work = true;
        self.with_upper(f)
    }

    /// Runs `f` with the upper layer and the lower stream.
    fn with_upper<T>(&mut self, f: impl FnOnce(&mut U, &mut Lower<'_>) -> T) -> T {
        let mut lower = Lower {
            stream: &mut self.lower,
            pending: &mut self.pending,
            close: &mut self.close_requested,
        };
        f(&mut self.upper, &mut lower)
    }

    /// Drain steps 1–4 (module docs).
    fn drive(&mut self, now: Instant) {
        self.work = false;
        // 1. lower events
        while let Some(ev) = self.lower.poll_event() {
            if L::is_dead_link(&ev) {
                self.lower.close_connection(true);
                continue;
            }
            match L::stream_event(&ev) {
                Some(StreamEvent::Closed(r)) => self.finish_with(StackClose::Lower(r)),
                Some(StreamEvent::Acknowledged(_)) if !self.pending.is_empty() => {
                    // The refused rest is written below and will be acknowledged anew.
                }
                Some(e) => {
                    if let Some(e) = sole_event(e) {
                        self.with_upper(|u, l| u.on_lower_event(e, l));
                    }
                }
                None => {}
            }
        }
        // 2. bytes the lower stream refused earlier
        if !self.pending.is_empty() {
            if let Ok(n) = self.lower.write(&self.pending) {
                self.pending.drain(..n);
            }
        }
        // 3. the upper layer moves bytes
        self.with_upper(|u, l| u.pump(now, l));
        // 4. upper events
        while let Some(ev) = self.upper.poll_event() {
            match ev {
                StreamEvent::Closed(r) => {
                    self.lower.close_connection(false);
                    self.finish_with(StackClose::Upper(r));
                }
                e => {
                    if !self.closed {
                        self.events.push_back(map_close(e));
                    }
                }
            }
        }
        if std::mem::take(&mut self.close_requested) {
            self.lower.close_connection(false);
            // The lower machine's Closed(Local) is taken on the next drain.
            self.work = true;
        }
    }

    /// Queues the one final `Closed`.
    fn finish_with(&mut self, why: StackClose<L::Reason, U::Reason>) {
        if !self.closed {
            self.closed = true;
            self.events.push_back(StreamEvent::Closed(why));
        }
    }
}

/// A lower event without its close reason (only `Closed` carries one, handled apart).
fn sole_event<R>(e: StreamEvent<R>) -> Option<StreamEvent<Infallible>> {
    Some(match e {
        StreamEvent::Opened(i) => StreamEvent::Opened(i),
        StreamEvent::Readable(i) => StreamEvent::Readable(i),
        StreamEvent::Writable(i) => StreamEvent::Writable(i),
        StreamEvent::Acknowledged(i) => StreamEvent::Acknowledged(i),
        StreamEvent::StreamClosed(i) => StreamEvent::StreamClosed(i),
        StreamEvent::Closed(_) => return None,
    })
}

/// An upper event that is not `Closed`, retyped for the stack.
fn map_close<L, U>(e: StreamEvent<U>) -> StreamEvent<StackClose<L, U>> {
    match e {
        StreamEvent::Opened(i) => StreamEvent::Opened(i),
        StreamEvent::Readable(i) => StreamEvent::Readable(i),
        StreamEvent::Writable(i) => StreamEvent::Writable(i),
        StreamEvent::Acknowledged(i) => StreamEvent::Acknowledged(i),
        StreamEvent::StreamClosed(i) => StreamEvent::StreamClosed(i),
        StreamEvent::Closed(r) => StreamEvent::Closed(StackClose::Upper(r)),
    }
}

impl<L: LowerLayer, U: StreamLayer> Machine for Stack<L, U> {
    type Event = StreamEvent<StackClose<L::Reason, U::Reason>>;
    type InputError = L::InputError;

    fn handle_input(&mut self, now: Instant, data: &[u8]) -> Result<(), L::InputError> {
        let r = self.lower.handle_input(now, data);
        self.drive(now);
        r
    }

    fn poll_transmit(&mut self, now: Instant, buf: &mut Vec<u8>) -> Option<Transmit> {
        self.transmit_with(now, |l| l.poll_transmit(now, buf))
    }

    fn handle_input_bytes(&mut self, now: Instant, data: Bytes) -> Result<(), L::InputError> {
        let r = self.lower.handle_input_bytes(now, data);
        self.drive(now);
        r
    }

    fn poll_transmit_bytes(&mut self, now: Instant, out: &mut Vec<Bytes>) -> Option<Transmit> {
        self.transmit_with(now, |l| l.poll_transmit_bytes(now, out))
    }

    fn has_transmit(&self) -> bool {
        self.work || self.lower.has_transmit()
    }

    fn poll_timeout(&self) -> Option<Instant> {
        [self.lower.poll_timeout(), self.upper.poll_timeout()]
            .into_iter()
            .flatten()
            .min()
    }

    fn handle_timeout(&mut self, now: Instant) {
        // Both are harmless when early (the Machine contract), so no per-layer check.
        self.lower.handle_timeout(now);
        self.with_upper(|u, l| u.handle_timeout(now, l));
        self.drive(now);
    }

    fn poll_event(&mut self) -> Option<Self::Event> {
        self.events.pop_front()
    }

    fn wants_input(&self) -> bool {
        self.lower.wants_input()
    }
}

impl<L: LowerLayer, U: StreamLayer> Stack<L, U> {
    /// `poll_transmit` in either form: `take` hands out the lower machine's next output.
    fn transmit_with(
        &mut self,
        now: Instant,
        mut take: impl FnMut(&mut L) -> Option<Transmit>,
    ) -> Option<Transmit> {
        if self.work {
            self.drive(now);
        }
        loop {
            if let Some(t) = take(&mut self.lower) {
                // Handing bytes out can raise lower events (a byte-stream link reports
                // `Writable` here, once its send buffer drained): drain once more before
                // `has_transmit` may turn false, or a queued upper layer would wait for an
                // input that never comes.
                self.work = true;
                return Some(t);
            }
            // A flush can raise events (writable, dead link) and the upper layer may answer
            // them with more bytes: drain again until neither layer has anything, so
            // `has_transmit` is false once this returns `None`.
            self.drive(now);
            if !self.has_transmit() {
                return None;
            }
        }
    }
}

/// A stack over a connection-carried lower layer ([`StreamLink`](crate::stream_link::StreamLink))
/// hears of its connection through the lower layer, then drains as after an input.
impl<L: LowerLayer + Transport, U: StreamLayer> Transport for Stack<L, U> {
    fn handle_disconnect(&mut self, now: Instant) {
        self.lower.handle_disconnect(now);
        self.drive(now);
    }

    fn handle_reconnect(&mut self, now: Instant) {
        self.lower.handle_reconnect(now);
        self.drive(now);
    }

    fn handle_eof(&mut self, now: Instant) {
        self.lower.handle_eof(now);
        self.drive(now);
    }
}

impl<L: LowerLayer, U: StreamLayer> Streams for Stack<L, U> {
    fn open_stream(&mut self) -> Result<StreamId, StreamError> {
        if self.closed {
            return Err(StreamError::Closed);
        }
        self.app_call(|u, l| u.open_stream(l))
    }

    fn accept_stream(&mut self) -> Option<StreamId> {
        self.upper.accept_stream()
    }

    fn write(&mut self, id: StreamId, data: &[u8]) -> Result<usize, StreamError> {
        if self.closed {
            return Err(StreamError::Closed);
        }
        self.app_call(|u, l| u.write(l, id, data))
    }

    fn read(&mut self, id: StreamId, buf: &mut [u8]) -> Result<usize, StreamError> {
        self.app_call(|u, l| u.read(l, id, buf))
    }

    fn read_chunk(
        &mut self,
        id: StreamId,
        max: usize,
        room: &mut BytesMut,
    ) -> Result<Bytes, StreamError> {
        self.app_call(|u, l| u.read_chunk(l, id, max, room))
    }

    fn write_chunk(&mut self, id: StreamId, data: Bytes) -> Result<usize, StreamError> {
        if self.closed {
            return Err(StreamError::Closed);
        }
        self.app_call(|u, l| u.write_chunk(l, id, data))
    }

    fn finish(&mut self, id: StreamId) -> Result<(), StreamError> {
        self.app_call(|u, l| u.finish(l, id))
    }

    fn close_stream(&mut self, id: StreamId) {
        self.app_call(|u, l| u.close_stream(l, id));
    }

    fn all_acked(&self, id: StreamId) -> bool {
        self.pending.is_empty() && self.upper.acked(id, self.lower.all_acked())
    }
}

/// Where a dropped sole stream stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Linger {
    /// The application holds the stream.
    No,
    /// Dropped; the linger clock starts at the next pump (which knows `now`).
    Requested,
    /// Dropped at some instant: close once acknowledged, or at this deadline.
    Until(Instant),
    /// The connection close was requested.
    Done,
}

/// The identity upper layer: the lower byte stream is the connection's one stream,
/// [`StreamId::SOLE`]. Reads and writes go straight to the lower stream (no copy); a listener
/// of plain sessions and a listener of multiplexed stacks are the same code.
///
/// The sole stream exists from the start: [`Streams::open_stream`] returns it, and
/// [`Streams::accept_stream`] returns it once. Dropping it ([`Streams::close_stream`])
/// closes the connection once everything written is acknowledged, or after
/// [`LINGER_TIMEOUT`].
#[derive(Debug)]
pub struct Plain {
    accepted: bool,
    linger: Linger,
    events: VecDeque<StreamEvent<Infallible>>,
}

impl Default for Plain {
    fn default() -> Self {
        Plain {
            accepted: false,
            linger: Linger::No,
            events: VecDeque::new(),
        }
    }
}

impl Plain {
    fn sole(id: StreamId) -> Result<(), StreamError> {
        if id == StreamId::SOLE {
            Ok(())
        } else {
            Err(StreamError::Unknown(id))
        }
    }

    /// Whether a write on `id` may go to the lower stream now: not after the stream was
    /// dropped, and not past bytes the stack still holds (the byte order).
    fn may_write(&self, lower: &Lower<'_>, id: StreamId) -> Result<(), StreamError> {
        Plain::sole(id)?;
        if self.linger != Linger::No {
            return Err(StreamError::Closed);
        }
        if !lower.pending.is_empty() {
            return Err(StreamError::Blocked);
        }
        Ok(())
    }

    /// Closes the connection if the dropped stream is acknowledged or its linger ran out.
    fn check_linger(&mut self, now: Option<Instant>, lower: &mut Lower<'_>) {
        let expired = match (self.linger, now) {
            (Linger::Until(t), Some(now)) => now >= t,
            _ => false,
        };
        let lingering = matches!(self.linger, Linger::Requested | Linger::Until(_));
        if lingering && (expired || lower.all_acked()) {
            self.linger = Linger::Done;
            lower.close_connection();
        }
    }
}

impl StreamLayer for Plain {
    type Reason = Infallible;

    fn pump(&mut self, now: Instant, lower: &mut Lower<'_>) {
        if self.linger == Linger::Requested {
            self.linger = Linger::Until(now + LINGER_TIMEOUT);
        }
        self.check_linger(Some(now), lower);
    }

    fn on_lower_event(&mut self, ev: StreamEvent<Infallible>, lower: &mut Lower<'_>) {
        if matches!(self.linger, Linger::No) {
            self.events.push_back(ev);
        }
        if matches!(ev, StreamEvent::Acknowledged(_)) {
            self.check_linger(None, lower);
        }
    }

    fn poll_timeout(&self) -> Option<Instant> {
        match self.linger {
            Linger::Until(t) => Some(t),
            _ => None,
        }
    }

    fn handle_timeout(&mut self, now: Instant, lower: &mut Lower<'_>) {
        self.check_linger(Some(now), lower);
    }

    fn poll_event(&mut self) -> Option<StreamEvent<Infallible>> {
        self.events.pop_front()
    }

    fn open_stream(&mut self, _lower: &mut Lower<'_>) -> Result<StreamId, StreamError> {
        self.accepted = true;
        Ok(StreamId::SOLE)
    }

    fn accept_stream(&mut self) -> Option<StreamId> {
        (!std::mem::replace(&mut self.accepted, true)).then_some(StreamId::SOLE)
    }

    fn write(
        &mut self,
        lower: &mut Lower<'_>,
        id: StreamId,
        data: &[u8],
    ) -> Result<usize, StreamError> {
        self.may_write(lower, id)?;
        lower.stream.write(data)
    }

    fn read(
        &mut self,
        lower: &mut Lower<'_>,
        id: StreamId,
        buf: &mut [u8],
    ) -> Result<usize, StreamError> {
        Plain::sole(id)?;
        lower.read(buf)
    }

    fn read_chunk(
        &mut self,
        lower: &mut Lower<'_>,
        id: StreamId,
        max: usize,
        room: &mut BytesMut,
    ) -> Result<Bytes, StreamError> {
        Plain::sole(id)?;
        lower.read_chunk(max, room)
    }

    fn write_chunk(
        &mut self,
        lower: &mut Lower<'_>,
        id: StreamId,
        data: Bytes,
    ) -> Result<usize, StreamError> {
        self.may_write(lower, id)?;
        lower.stream.write_chunk(data)
    }

    fn finish(&mut self, lower: &mut Lower<'_>, id: StreamId) -> Result<(), StreamError> {
        Plain::sole(id)?;
        lower.stream.finish()
    }

    fn close_stream(&mut self, _lower: &mut Lower<'_>, id: StreamId) {
        if id == StreamId::SOLE && self.linger == Linger::No {
            self.linger = Linger::Requested;
        }
    }

    fn flushed(&self, _id: StreamId) -> bool {
        true
    }
}

#[cfg(test)]
#[path = "stack_tests.rs"]
mod tests;
