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
//! Owned buffers: beside the slice-based calls, each contract has an owned-buffer twin with a
//! copying default ([`Machine::handle_input_bytes`], [`Machine::poll_transmit_bytes`],
//! [`ByteStream::read_chunk`] / [`ByteStream::write_chunk`] /
//! [`ByteStream::write_frame_bytes`], [`Streams::read_chunk`] / [`Streams::write_chunk`]).
//! A machine that keeps bytes in [`Bytes`] chunks (a `StreamLink`, smux) hands them
//! through without copying, so over TCP a payload byte is copied only between the
//! application's buffer and the runtime's; every other machine keeps working unchanged.
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
use std::time::{Duration, Instant};

pub use bytes::{Bytes, BytesMut};

/// How long a dropped stream (or a listener session closed with `close_when_acked`)
/// lingers for its bytes to be acknowledged before the connection closes anyway: 30 s,
/// kcptun's and smux's scale for a stuck peer. A peer silent that long is gone; with data in
/// flight the dead-link rule (kcp.md §8.3) usually ends it first, so this bound matters for
/// a peer that keeps its window shut. Policy in core, the same on every runtime.
pub const LINGER_TIMEOUT: Duration = Duration::from_secs(30);

/// Largest piece the copying defaults of the owned-buffer calls ([`ByteStream::read_chunk`],
/// [`Streams::read_chunk`]) read at once: the size of the room block they read into.
pub const CHUNK_MAX: usize = 64 * 1024;

/// A read shorter than this is handed out as a copy of its own, leaving the room block to
/// the next read: a short slice would keep the whole block alive.
const ROOM_SLICE_MIN: usize = 16 * 1024;

/// The copying default of every `read_chunk`: `read` into the caller's `room` (initialised
/// scratch, refilled to [`CHUNK_MAX`] bytes of zeroes when less than `max` or 16 KiB is left,
/// in place when no earlier chunk still shares it) and the bytes read split off it as the
/// chunk. One copy, as a `read` into the caller's buffer would be, and no allocation per
/// read; owned-buffer machines (a [`StreamLink`](crate::stream_link), smux) hand out slices
/// of what they hold instead and leave `room` alone.
pub fn read_chunk_with(
    max: usize,
    room: &mut BytesMut,
    read: impl FnOnce(&mut [u8]) -> Result<usize, StreamError>,
) -> Result<Bytes, StreamError> {
    let want = max.clamp(1, CHUNK_MAX);
    if room.len() < want.min(ROOM_SLICE_MIN) {
        room.clear();
        room.reserve(CHUNK_MAX);
        room.resize(CHUNK_MAX, 0);
    }
    let n = want.min(room.len());
    let got = read(room.get_mut(..n).unwrap_or_default())?.min(n);
    if got < ROOM_SLICE_MIN {
        return Ok(Bytes::copy_from_slice(room.get(..got).unwrap_or_default()));
    }
    Ok(room.split_to(got).freeze())
}

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

    /// Whether the machine takes more input now. A byte-stream driver (a TCP loop, the
    /// simulator's pipe) stops reading while this is false, so the transport's own window
    /// pushes back on the peer; datagram machines always take input (they drop and count).
    fn wants_input(&self) -> bool {
        true
    }

    /// [`Machine::handle_input`] on an owned chunk (a byte-stream driver's socket read): a
    /// machine that keeps received bytes (a [`StreamLink`](crate::stream_link)) keeps the
    /// chunk itself instead of a copy. By default the chunk is read as a slice.
    fn handle_input_bytes(&mut self, now: Instant, data: Bytes) -> Result<(), Self::InputError> {
        self.handle_input(now, &data)
    }

    /// [`Machine::poll_transmit`] as owned pieces appended to `out` (a byte-stream driver
    /// writes them with one gathered `writev`, so frames queued as header + payload are
    /// never joined). `Transmit::len` is the bytes appended over all pieces. By default one
    /// piece, the bytes `poll_transmit` wrote.
    fn poll_transmit_bytes(&mut self, now: Instant, out: &mut Vec<Bytes>) -> Option<Transmit> {
        let mut buf = Vec::new();
        let t = self.poll_transmit(now, &mut buf)?;
        out.push(Bytes::from(buf));
        Some(t)
    }
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
///
/// ```
/// use std::time::Instant;
/// use tether_core::driver::{ByteStream, Machine, StreamError};
/// use tether_core::kcp::{Kcp, KcpConfig};
///
/// let now = Instant::now(); // the caller owns the clock
/// let cfg = KcpConfig::fast3().with_stream(true);
/// let (mut a, mut b) = (Kcp::new(1, cfg.clone(), now), Kcp::new(1, cfg, now));
/// let mut got = [0u8; 16];
/// assert_eq!(b.read(&mut got), Err(StreamError::Blocked)); // nothing yet: not a fault
/// ByteStream::write(&mut a, b"hello").unwrap();
/// let mut buf = Vec::new();
/// while a.has_transmit() {
///     let Some(t) = a.poll_transmit(now, &mut buf) else { break };
///     b.handle_input(now, &buf[..t.len]).unwrap();
///     buf.clear();
/// }
/// let n = b.read(&mut got).unwrap();
/// assert_eq!(&got[..n], b"hello");
/// assert!(!ByteStream::all_acked(&a), "the ACK has not reached a yet");
/// assert_eq!(a.finish(), Err(StreamError::Unsupported)); // KCP has no FIN
/// ```
pub trait ByteStream {
    /// Queues some of `data`; `Err(Blocked)` means nothing was taken: wait for
    /// [`StreamEvent::Writable`].
    fn write(&mut self, data: &[u8]) -> Result<usize, StreamError>;

    /// Reads received bytes into `buf`; `Err(Blocked)` means nothing yet: wait for
    /// [`StreamEvent::Readable`]. `Err(Finished)` is the end of the stream.
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, StreamError>;

    /// Queues one frame given in parts (a header and its payload) without joining them:
    /// returns how many bytes of the parts, in order, were taken (a layer that frames or
    /// compresses whole writes, such as snappy, takes all or nothing). `Err(Blocked)` means
    /// nothing was taken. By default the parts are written in turn.
    fn write_parts(&mut self, parts: &[&[u8]]) -> Result<usize, StreamError> {
        let mut taken = 0;
        for part in parts.iter().filter(|p| !p.is_empty()) {
            match self.write(part) {
                Ok(n) => {
                    taken += n;
                    if n < part.len() {
                        break;
                    }
                }
                Err(e) if taken == 0 => return Err(e),
                Err(_) => break,
            }
        }
        Ok(taken)
    }

    /// Whether a write could take bytes now. `false` promises a [`StreamEvent::Writable`]
    /// once one can, as a refused write does, so a layer that prepares a frame at a cost
    /// (snappy compresses and checksums it) asks first instead of preparing it in vain
    /// while the window is full. By default `true`: the write itself decides.
    fn poll_writable(&mut self) -> bool {
        true
    }

    /// Half-close: no more writes; the peer reads everything queued, then `Finished`.
    fn finish(&mut self) -> Result<(), StreamError>;

    /// Whether every byte written so far has been acknowledged by the peer (what
    /// `flush()` waits for, and what a dropped stream lingers for).
    fn all_acked(&self) -> bool;

    /// [`ByteStream::read`] as an owned chunk of at most `max` bytes (never empty on
    /// `Ok`): a machine that holds received bytes in owned buffers hands out a slice of
    /// them, no copy. By default `read` into the caller's `room` ([`read_chunk_with`]).
    fn read_chunk(&mut self, max: usize, room: &mut BytesMut) -> Result<Bytes, StreamError> {
        if max == 0 {
            return Err(StreamError::Blocked);
        }
        read_chunk_with(max, room, |b| self.read(b))
    }

    /// [`ByteStream::write`] of an owned chunk: a machine that queues bytes keeps (a slice
    /// of) the chunk instead of a copy. Returns how many leading bytes were taken. By
    /// default `write`.
    fn write_chunk(&mut self, data: Bytes) -> Result<usize, StreamError> {
        self.write(&data)
    }

    /// [`ByteStream::write_parts`] of a header and an owned payload in pieces (one frame).
    /// By default `write_parts`.
    fn write_frame_bytes(&mut self, head: &[u8], body: &[Bytes]) -> Result<usize, StreamError> {
        match body {
            [] => self.write_parts(&[head]),
            [a] => self.write_parts(&[head, a]),
            [a, b] => self.write_parts(&[head, a, b]),
            _ => {
                let parts: Vec<&[u8]> = std::iter::once(head)
                    .chain(body.iter().map(|b| &b[..]))
                    .collect();
                self.write_parts(&parts)
            }
        }
    }
}

/// The streams of one connection, as a runtime's hub sees them: single-stream machines and
/// multiplexers alike.
///
/// A runtime's hub keys its application buffers by (connection, [`StreamId`]) and moves
/// bytes only through these calls, so the same code serves a plain session
/// (`Stack<Session, Plain>`, one stream) and a multiplexer stack:
///
/// ```
/// use tether_core::driver::{StreamError, StreamId, Streams};
///
/// /// Moves what the application queued into `conn`, and what arrived into `sink`.
/// fn pump(conn: &mut impl Streams, id: StreamId, queued: &mut Vec<u8>, sink: &mut Vec<u8>) {
///     while !queued.is_empty() {
///         match conn.write(id, queued) {
///             Ok(n) => drop(queued.drain(..n)),
///             Err(_) => break, // Blocked: resume on StreamEvent::Writable(id)
///         }
///     }
///     let mut buf = [0u8; 4096];
///     loop {
///         match conn.read(id, &mut buf) {
///             Ok(n) => sink.extend_from_slice(&buf[..n]),
///             Err(StreamError::Blocked) => break, // resume on StreamEvent::Readable(id)
///             Err(_) => break,                    // finished or gone
///         }
///     }
/// }
/// # use std::time::Instant;
/// # use tether_core::driver::Machine;
/// # use tether_core::kcp::KcpConfig;
/// # use tether_core::rng::seeded;
/// # use tether_core::session::{CryptMode, Session, SessionConfig};
/// # use tether_core::stack::{Plain, Stack};
/// # let cfg = SessionConfig { kcp: KcpConfig::fast3().with_stream(true), crypt: CryptMode::Raw,
/// #     key: [0; 32], data_shards: 0, parity_shards: 0 };
/// # let now = Instant::now();
/// let mut conn = Stack::new(Session::client(7, &cfg, now, Box::new(seeded(1))), Plain::default());
/// let id = conn.open_stream().unwrap();
/// let (mut queued, mut sink) = (b"hello".to_vec(), Vec::new());
/// pump(&mut conn, id, &mut queued, &mut sink);
/// assert!(queued.is_empty() && conn.has_transmit());
/// ```
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

    /// [`ByteStream::read_chunk`] on one stream: a multiplexer that keeps received payloads
    /// as owned chunks hands them out without a copy. By default `read` into `room`.
    fn read_chunk(
        &mut self,
        id: StreamId,
        max: usize,
        room: &mut BytesMut,
    ) -> Result<Bytes, StreamError> {
        if max == 0 {
            return Err(StreamError::Blocked);
        }
        read_chunk_with(max, room, |b| self.read(id, b))
    }

    /// [`ByteStream::write_chunk`] on one stream. By default `write`.
    fn write_chunk(&mut self, id: StreamId, data: Bytes) -> Result<usize, StreamError> {
        self.write(id, &data)
    }
}

/// The connection under a machine that runs over a byte stream (goscon, or smux over TCP):
/// whoever drives the machine (a runtime's TCP loop, or `Pair` in `core::sim`, which can break
/// a simulated connection on call or at scripted instants) tells it when the connection
/// breaks and when a new one is up. Datagram machines need no such hook: a datagram path has
/// no connection to lose.
///
/// ```
/// use std::time::Instant;
/// use tether_core::driver::Transport;
///
/// /// Keeps every unacknowledged message and sends it again on the next connection.
/// struct Resuming { unacked: Vec<Vec<u8>>, out: Vec<u8>, up: bool }
///
/// impl Transport for Resuming {
///     fn handle_disconnect(&mut self, _now: Instant) {
///         self.up = false;
///         self.out.clear(); // queued for the old connection: gone with it
///     }
///     fn handle_reconnect(&mut self, _now: Instant) {
///         self.up = true;
///         for m in &self.unacked {
///             self.out.extend_from_slice(m);
///         }
///     }
/// }
///
/// let now = Instant::now(); // a runtime's clock; core never reads one
/// let mut m = Resuming { unacked: vec![b"hi".to_vec()], out: b"h".to_vec(), up: true };
/// m.handle_disconnect(now);
/// m.handle_reconnect(now);
/// assert_eq!(m.out, b"hi");
/// ```
pub trait Transport {
    /// The connection broke at `now`: every byte in flight either way is lost, and what the
    /// machine transmits goes nowhere until [`Transport::handle_reconnect`]. A protocol that
    /// resumes (goscon) keeps its state for the next connection; others end with `Closed`.
    fn handle_disconnect(&mut self, now: Instant);

    /// A new connection is up at `now`: transmitted bytes flow again, starting a fresh byte
    /// stream (a resume protocol's handshake is its first output here).
    fn handle_reconnect(&mut self, now: Instant);

    /// The peer finished its side of the connection at `now` (TCP's FIN): no more input
    /// will arrive, but what arrived is still read and output still flows. By default the
    /// same as a broken connection, for protocols without a half-close.
    fn handle_eof(&mut self, now: Instant) {
        self.handle_disconnect(now);
    }
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
///
/// A runtime's whole socket loop, generic over the endpoint (here a KCP client and server
/// exchanging datagrams in memory):
///
/// ```
/// use std::net::SocketAddr;
/// use std::time::{Duration, Instant};
/// use tether_core::driver::{DatagramEndpoint, EndpointEvent, StreamId, Streams};
/// use tether_core::kcp::KcpConfig;
/// use tether_core::rng::seeded;
/// use tether_core::session::{CryptMode, Listener, ListenerConfig, SessionConfig};
///
/// /// Drains `from`'s datagrams into `to` (a socket would `sendmmsg` them).
/// fn deliver<A: DatagramEndpoint, B: DatagramEndpoint>(now: Instant, from: &mut A, at: SocketAddr, to: &mut B) {
///     let mut buf = Vec::new();
///     while from.has_transmit() {
///         let Some(t) = from.poll_transmit(now, &mut buf) else { break };
///         let _ = to.handle_datagram(now, at, &buf[..t.len]); // Err: dropped and counted
///         buf.clear();
///     }
/// }
///
/// let session = SessionConfig { kcp: KcpConfig::fast3().with_stream(true), crypt: CryptMode::Raw,
///     key: [0; 32], data_shards: 0, parity_shards: 0 };
/// let (server_addr, client_addr): (SocketAddr, SocketAddr) =
///     ("10.0.0.1:4000".parse().unwrap(), "10.0.0.2:5000".parse().unwrap());
/// let now = Instant::now(); // the caller owns the clock
/// let mut server = Listener::new(ListenerConfig::new(session.clone()), Box::new(seeded(1)));
/// let mut client_cfg = ListenerConfig::new(session);
/// client_cfg.accept_incoming = false;
/// let mut client = Listener::new(client_cfg, Box::new(seeded(2)));
///
/// let id = DatagramEndpoint::connect(&mut client, now, server_addr);
/// client.conn_mut(id).unwrap().write(StreamId::SOLE, b"hello").unwrap();
/// deliver(now, &mut client, client_addr, &mut server);
///
/// let mut incoming = None;
/// while let Some(ev) = DatagramEndpoint::poll_event(&mut server) {
///     if let EndpointEvent::Incoming(c) = ev {
///         incoming = Some(c);
///     }
/// }
/// assert!(incoming.is_some());
/// assert_eq!(DatagramEndpoint::backlog_len(&server), 1); // accept pressure: read no more
/// let conn = DatagramEndpoint::accept(&mut server).unwrap();
/// assert_eq!(server.remote(conn), Some(client_addr));
/// assert_eq!(DatagramEndpoint::last_received(&server, conn), Some(now));
/// let mut got = [0u8; 16];
/// let n = server.conn_mut(conn).unwrap().read(StreamId::SOLE, &mut got).unwrap();
/// assert_eq!(&got[..n], b"hello");
///
/// // The application dropped the client's handles: it lingers until "hello" is
/// // acknowledged, then closes; the socket loop ends once the endpoint is empty.
/// DatagramEndpoint::close_when_acked(&mut client, now, id);
/// assert!(!DatagramEndpoint::is_empty(&client), "hello is not acknowledged yet");
/// DatagramEndpoint::handle_timeout(&mut server, now + Duration::from_millis(50)); // ACK due
/// deliver(now, &mut server, server_addr, &mut client);
/// DatagramEndpoint::handle_timeout(&mut client, now);
/// while DatagramEndpoint::poll_event(&mut client).is_some() {}
/// assert!(DatagramEndpoint::is_empty(&client));
/// assert_eq!(DatagramEndpoint::counters(&client).bytes_sent, 5);
/// ```
pub trait DatagramEndpoint {
    /// Connection handle (never reused after the connection closed).
    type ConnId: Copy + Eq + Hash + Debug;
    /// The per-peer machine, reachable for application calls through
    /// [`DatagramEndpoint::conn_mut`].
    type Conn;
    /// Why a connection closed: the payload of its final [`StreamEvent::Closed`]. Every
    /// endpoint reports the shared [`StreamEvent`] vocabulary, so one runtime hub serves all.
    type Reason;
    /// Per-datagram verdict (dropped and counted).
    type InputError: Debug;
    /// A snapshot of the endpoint's counters ([`DatagramEndpoint::counters`]); the KCP
    /// listener's are kcp-go's 24 SNMP counters.
    type Counters;

    /// Feeds one datagram received from `from`.
    fn handle_datagram(
        &mut self,
        now: Instant,
        from: SocketAddr,
        data: &[u8],
    ) -> Result<(), Self::InputError>;

    /// [`DatagramEndpoint::handle_datagram`] on bytes the endpoint may overwrite (a socket
    /// loop's receive buffer): an endpoint that decrypts in place does it there instead of
    /// in a copy. The bytes are garbage afterwards. By default the same as
    /// `handle_datagram`.
    fn handle_datagram_mut(
        &mut self,
        now: Instant,
        from: SocketAddr,
        data: &mut [u8],
    ) -> Result<(), Self::InputError> {
        self.handle_datagram(now, from, data)
    }

    /// Appends the next datagram to `buf`.
    fn poll_transmit(&mut self, now: Instant, buf: &mut Vec<u8>) -> Option<DatagramTransmit>;

    /// Whether [`DatagramEndpoint::poll_transmit`] has output now.
    fn has_transmit(&self) -> bool;

    /// The earliest timer of every connection (one timer heap per endpoint).
    fn poll_timeout(&self) -> Option<Instant>;

    /// Fires every timer due at `now`.
    fn handle_timeout(&mut self, now: Instant);

    /// Pops the next event.
    fn poll_event(&mut self) -> Option<EndpointEvent<Self::ConnId, StreamEvent<Self::Reason>>>;

    /// Takes the next connection from the accept backlog (bounded; un-accepted connections
    /// expire after the endpoint's accept timeout).
    fn accept(&mut self) -> Option<Self::ConnId>;

    /// Connections waiting in the accept backlog. A socket loop stops reading a burst once
    /// this grows (accept pressure), so the application accepts before the backlog
    /// overflows and new peers are dropped.
    fn backlog_len(&self) -> usize;

    /// Whether no connection is alive, lingering ones included: a socket loop whose
    /// application dropped every handle stops once this holds.
    fn is_empty(&self) -> bool;

    /// Opens a connection to `to`.
    fn connect(&mut self, now: Instant, to: SocketAddr) -> Self::ConnId;

    /// Closes a connection now (its final `Closed` event follows).
    fn close(&mut self, id: Self::ConnId);

    /// Closes a connection once everything written on it is acknowledged, or [`LINGER_TIMEOUT`]
    /// after `now` if the peer never acknowledges (its final `Closed` event follows): what a
    /// runtime does when the application dropped the connection and all its streams. Policy
    /// in core, the same on every runtime.
    fn close_when_acked(&mut self, now: Instant, id: Self::ConnId);

    /// When connection `id` last received a datagram (data, acknowledgement or probe
    /// alike; its start if none came yet), `None` for an unknown id: the application's
    /// liveness check on protocols without a close handshake.
    fn last_received(&self, id: Self::ConnId) -> Option<Instant>;

    /// The endpoint's counters now, summed over its connections (a runtime refreshes its
    /// copy a few times a second, since summing may walk every connection).
    fn counters(&self) -> Self::Counters;

    /// The per-peer machine of `id`.
    fn conn_mut(&mut self, id: Self::ConnId) -> Option<&mut Self::Conn>;

    /// The peer address of `id`.
    fn remote(&self, id: Self::ConnId) -> Option<SocketAddr>;
}

/// What a runtime's socket loop asks of a [`DatagramEndpoint`]'s per-peer machine beyond its
/// [`Streams`]: the two calls of kcp-go's session API that are not byte-stream calls. Both
/// have defaults, so a protocol without them (a toy, penet) implements the trait empty.
///
/// ```
/// use tether_core::driver::{DatagramConn, Messages, StreamError, StreamId, Streams};
///
/// /// One stream in message mode: each write is one message.
/// #[derive(Default)]
/// struct Letters { inbox: Vec<Vec<u8>>, probes: u32 }
///
/// impl Messages for Letters {
///     fn max_message(&self) -> usize { 1024 }
///     fn write_message(&mut self, data: &[u8]) -> Result<usize, StreamError> {
///         self.inbox.push(data.to_vec()); // a loopback: what is sent arrives
///         Ok(data.len())
///     }
///     fn read_message(&mut self, buf: &mut [u8]) -> Result<usize, StreamError> {
///         if self.inbox.is_empty() { return Err(StreamError::Blocked) }
///         let m = self.inbox.remove(0);
///         buf[..m.len()].copy_from_slice(&m);
///         Ok(m.len())
///     }
/// }
/// # impl Streams for Letters {
/// #     fn open_stream(&mut self) -> Result<StreamId, StreamError> { Err(StreamError::Unsupported) }
/// #     fn accept_stream(&mut self) -> Option<StreamId> { None }
/// #     fn write(&mut self, _: StreamId, d: &[u8]) -> Result<usize, StreamError> { self.write_message(d) }
/// #     fn read(&mut self, _: StreamId, b: &mut [u8]) -> Result<usize, StreamError> { self.read_message(b) }
/// #     fn finish(&mut self, _: StreamId) -> Result<(), StreamError> { Err(StreamError::Unsupported) }
/// #     fn close_stream(&mut self, _: StreamId) {}
/// #     fn all_acked(&self, _: StreamId) -> bool { true }
/// # }
///
/// impl DatagramConn for Letters {
///     fn send_keepalive(&mut self) { self.probes += 1 }
///     fn messages(&mut self) -> Option<&mut dyn Messages> { Some(self) }
/// }
///
/// let mut c = Letters::default();
/// let m = c.messages().unwrap();
/// m.write_message(b"one").unwrap();
/// let mut buf = [0u8; 8];
/// assert_eq!(m.read_message(&mut buf), Ok(3)); // whole, never merged with the next
/// c.send_keepalive();
/// assert_eq!(c.probes, 1);
/// ```
pub trait DatagramConn: Streams {
    /// Sends a liveness probe now (the application asked: it has nothing to send but wants
    /// the peer to answer, see [`DatagramEndpoint::last_received`]). By default nothing: a
    /// protocol with a keepalive of its own.
    fn send_keepalive(&mut self) {}

    /// The connection's message interface while it runs in message mode (each application
    /// write is one message on [`StreamId::SOLE`], e.g. KCP without stream mode); `None`,
    /// the default, for a byte stream.
    fn messages(&mut self) -> Option<&mut dyn Messages> {
        None
    }
}

/// Message mode of a single-stream connection: message boundaries survive the trip.
pub trait Messages {
    /// The largest message [`Messages::write_message`] takes (a runtime cuts a longer
    /// application write into messages of this size).
    fn max_message(&self) -> usize;

    /// Queues `data` as one message; `Err(Blocked)` means nothing was taken (window full).
    fn write_message(&mut self, data: &[u8]) -> Result<usize, StreamError>;

    /// Reads one whole received message into `buf`; `Err(Blocked)` when none is ready.
    fn read_message(&mut self, buf: &mut [u8]) -> Result<usize, StreamError>;
}
