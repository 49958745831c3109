//! The contracts every protocol machine, endpoint and stack in tether honours.
//!
//! Three shapes, one driver discipline:
//!
//! - [`Machine`]: one connection's protocol state (KCP, a kcp-go session, later smux, snappy,
//!   penet, goscon). Its input is one datagram, or one chunk of an inbound byte stream.
//! - [`DatagramEndpoint`]: many peers behind one socket (the KCP listener, later penet's).
//!   It demultiplexes by source address and owns one per-peer machine per connection.
//! - [`ByteStream`] / [`Streams`]: what the application reads and writes. A plain KCP
//!   session is one byte stream; a multiplexer (smux) carries many, each with a
//!   [`StreamId`]. Runtimes and the simulator move application bytes only through these.
//!
//! A *stack* (datagram session → stream transform such as snappy → multiplexer) is itself a
//! [`Machine`]: its deadline is the minimum of its layers', it is drained in a fixed order
//! (str0m's `poll_output`), and it reports one [`Closed`](StackEvent::Closed) at the end.
//!
//! Call order (quinn's, adopted as-is): after any `handle_*` call or application mutator,
//! drain `poll_transmit` (while [`Machine::has_transmit`]), then read `poll_timeout`, then
//! drain `poll_event`.
//!
//! Contracts every machine honours (and is property-tested for in `core::sim`):
//! - same inputs at the same `now` values give the same transmitted bytes, bit for bit;
//! - "has output" is explicit ([`Machine::has_transmit`]); a deadline is a timer, never a
//!   stand-in for pending output, so a composed stack can never spin on `deadline == now`;
//! - after `handle_timeout(t)`, `poll_timeout()` is `None` or strictly later than `t`;
//! - `poll_timeout()` is `None` when the machine is idle: an idle machine costs no CPU;
//! - `handle_timeout` called early, or twice, does nothing harmful;
//! - `handle_input` never panics; an `Err` is a verdict on that one input (it was dropped and
//!   counted), never on its own a reason to tear the machine down;
//! - a connection ends with exactly one `Closed(reason)` event, after which it emits nothing.
use std::fmt::Debug;
use std::hash::Hash;
use std::net::SocketAddr;
use std::time::Instant;

/// Metadata of one datagram (or stream chunk) written by [`Machine::poll_transmit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transmit {
    /// Number of bytes appended to the caller's buffer.
    pub len: usize,
}

/// The calls that let one generic loop (simulator, fuzz harness, runtimes) drive any
/// protocol machine.
pub trait Machine {
    /// Application-visible events.
    type Event;
    /// Per-input verdict of [`Machine::handle_input`].
    type InputError: Debug;

    /// Feeds one datagram (or one chunk of an inbound byte stream).
    fn handle_input(&mut self, now: Instant, data: &[u8]) -> Result<(), Self::InputError>;

    /// Appends one datagram (or one chunk of outbound stream bytes) to `buf` and describes
    /// it, or returns `None` when nothing is due.
    fn poll_transmit(&mut self, now: Instant, buf: &mut Vec<u8>) -> Option<Transmit>;

    /// Whether [`Machine::poll_transmit`] has something to hand out now (output produced by
    /// input, an application call or a timer, and not held back, e.g. by anti-amplification).
    /// Drivers drain output while this is true; it is never encoded as a deadline.
    fn has_transmit(&self) -> bool;

    /// The next absolute timer deadline; `None` means nothing happens until new input or an
    /// application call.
    fn poll_timeout(&self) -> Option<Instant>;

    /// Fires whatever is due at `now`.
    fn handle_timeout(&mut self, now: Instant);

    /// Pops the next application event.
    fn poll_event(&mut self) -> Option<Self::Event>;
}

/// One stream inside a connection. A machine with a single byte stream (KCP, a kcp-go
/// session, goscon) uses [`StreamId::SOLE`]; multiplexers number theirs as their wire
/// format does (smux: odd ids from the client, even from the server).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StreamId(pub u32);

impl StreamId {
    /// The only stream of a single-stream machine.
    pub const SOLE: StreamId = StreamId(0);
}

/// Why a byte-stream call did not move bytes. "Try again later" is [`StreamError::Blocked`],
/// a value, not a fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StreamError {
    /// Nothing to read yet, or the send window is full: wait for the stream's
    /// [`StreamEvent::Readable`] or [`StreamEvent::Writable`].
    #[error("would block: wait for the stream's Readable or Writable event")]
    Blocked,
    /// The peer finished its side: every byte it sent has been read (end of stream).
    #[error("the peer finished this stream: no more bytes will arrive")]
    Finished,
    /// This side already finished or closed the stream: open a new stream to send more.
    #[error("the stream is closed on this side: open a new stream to send more")]
    Closed,
    /// No such stream (never opened, or closed and forgotten).
    #[error("unknown stream {0:?}: it was never opened or is already closed")]
    Unknown(StreamId),
    /// The protocol has no half-close (KCP has no FIN): close the whole connection instead.
    #[error("this protocol has no half-close: close the connection instead")]
    Unsupported,
}

/// The byte stream of a single-stream machine, as the application sees it.
pub trait ByteStream {
    /// Queues some of `data`; `Err(Blocked)` means nothing was taken: wait for
    /// [`StreamEvent::Writable`].
    fn write(&mut self, data: &[u8]) -> Result<usize, StreamError>;

    /// Reads received bytes into `buf`; `Err(Blocked)` means nothing yet: wait for
    /// [`StreamEvent::Readable`]. `Err(Finished)` is the end of the stream.
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, StreamError>;

    /// Half-close: no more writes; the peer reads everything queued, then `Finished`.
    fn finish(&mut self) -> Result<(), StreamError>;

    /// Whether every byte written so far has been acknowledged by the peer (what
    /// `flush()` waits for, and what a dropped stream lingers for).
    fn all_acked(&self) -> bool;
}

/// The streams of one connection, as a runtime's hub sees them: single-stream machines and
/// multiplexers alike.
pub trait Streams {
    /// Opens an outbound stream.
    fn open_stream(&mut self) -> Result<StreamId, StreamError>;

    /// Takes the next stream the peer opened (announced by [`StreamEvent::Opened`]).
    fn accept_stream(&mut self) -> Option<StreamId>;

    /// [`ByteStream::write`] on one stream.
    fn write(&mut self, id: StreamId, data: &[u8]) -> Result<usize, StreamError>;

    /// [`ByteStream::read`] on one stream.
    fn read(&mut self, id: StreamId, buf: &mut [u8]) -> Result<usize, StreamError>;

    /// [`ByteStream::finish`] on one stream.
    fn finish(&mut self, id: StreamId) -> Result<(), StreamError>;

    /// The application dropped the stream: it lingers until its bytes are acknowledged,
    /// then goes (policy in core, the same on every runtime).
    fn close_stream(&mut self, id: StreamId);

    /// [`ByteStream::all_acked`] on one stream.
    fn all_acked(&self, id: StreamId) -> bool;
}

/// The event vocabulary of connections and stacks, shared so one runtime hub serves every
/// protocol. `R` is the protocol's close reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamEvent<R> {
    /// The peer opened a stream: take it with [`Streams::accept_stream`].
    Opened(StreamId),
    /// Bytes (or the end of the stream) are ready to read.
    Readable(StreamId),
    /// Writes are accepted again.
    Writable(StreamId),
    /// Everything written on the stream has been acknowledged.
    Acknowledged(StreamId),
    /// The stream is gone (reset, or closed and drained); its id is forgotten.
    StreamClosed(StreamId),
    /// The connection is gone: the final event, once.
    Closed(R),
}

/// Alias kept for stacks: a composed stack reports [`StreamEvent`]s of its top layer and a
/// single `Closed` for the whole stack.
pub type StackEvent<R> = StreamEvent<R>;

/// One datagram leaving a [`DatagramEndpoint`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DatagramTransmit {
    /// Destination.
    pub to: SocketAddr,
    /// Bytes appended to the caller's buffer.
    pub len: usize,
    /// When `len` holds several equal-sized datagrams for one destination (GSO), their
    /// size; `None` for a single datagram.
    pub segment_size: Option<usize>,
}

/// Endpoint events: connections arriving, their events, and their end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndpointEvent<C, E> {
    /// A new connection waits in the accept backlog.
    Incoming(C),
    /// An event of one connection.
    Conn(C, E),
}

/// Many peers behind one datagram socket, each served by its own per-peer machine.
pub trait DatagramEndpoint {
    /// Connection handle (never reused after the connection closed).
    type ConnId: Copy + Eq + Hash + Debug;
    /// The per-peer machine, reachable for application calls through
    /// [`DatagramEndpoint::conn_mut`].
    type Conn;
    /// Per-connection events (a [`StreamEvent`] whose `Closed` is final for that id).
    type Event;
    /// Per-datagram verdict (dropped and counted).
    type InputError: Debug;

    /// Feeds one datagram received from `from`.
    fn handle_datagram(
        &mut self,
        now: Instant,
        from: SocketAddr,
        data: &[u8],
    ) -> Result<(), Self::InputError>;

    /// Appends the next datagram to `buf`.
    fn poll_transmit(&mut self, now: Instant, buf: &mut Vec<u8>) -> Option<DatagramTransmit>;

    /// Whether [`DatagramEndpoint::poll_transmit`] has output now.
    fn has_transmit(&self) -> bool;

    /// The earliest timer of every connection (one timer heap per endpoint).
    fn poll_timeout(&self) -> Option<Instant>;

    /// Fires every timer due at `now`.
    fn handle_timeout(&mut self, now: Instant);

    /// Pops the next event.
    fn poll_event(&mut self) -> Option<EndpointEvent<Self::ConnId, Self::Event>>;

    /// Takes the next connection from the accept backlog (bounded; un-accepted connections
    /// expire after the endpoint's accept timeout).
    fn accept(&mut self) -> Option<Self::ConnId>;

    /// Opens a connection to `to`.
    fn connect(&mut self, now: Instant, to: SocketAddr) -> Self::ConnId;

    /// Closes a connection now (its final `Closed` event follows).
    fn close(&mut self, id: Self::ConnId);

    /// The per-peer machine of `id`.
    fn conn_mut(&mut self, id: Self::ConnId) -> Option<&mut Self::Conn>;

    /// The peer address of `id`.
    fn remote(&self, id: Self::ConnId) -> Option<SocketAddr>;
}
