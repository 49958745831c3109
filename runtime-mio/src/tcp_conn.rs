//! TCP connections carrying a multiplexer, through the same hub and handles as KCP: one
//! socket loop per connection, generic over the runtime and over the machine
//! ([`TcpMachine`]: any `Stack<StreamLink, U>`), so the application gets the same
//! [`ConnectionHandle`] (`open_stream`, `accept_stream`, streams with the runtime's
//! read/write traits) for a TCP-carried multiplexer as for a KCP one.
//!
//! * dial: [`ConnectionHandle::connect_tcp`] (a non-blocking connect, then the loop);
//! * listen: [`TcpListenerHandle::bind`] with a factory of machines, then
//!   [`TcpListenerHandle::accept_connection`]: every accepted connection gets its own loop
//!   and a fresh machine from the factory, e.g.
//!   `|| Stack::new(StreamLink::default(), ToyMux::server())`.
//!
//! The loop's discipline is the UDP loop's ([`crate::socket_loop`]): one `now` per pass,
//! the machine's output drained while [`Machine::has_transmit`] and written until the
//! socket is full (then it waits for writability, at most [`OUT_MAX`] bytes outside the
//! machine), one timer at the machine's deadline, the application woken once per pass. For
//! TCP besides: the socket is not read while [`Machine::wants_input`] is false (TCP's own
//! window then pushes back on the peer), a read of 0 bytes is the peer's FIN
//! ([`Transport::handle_eof`]), a socket error is [`Transport::handle_disconnect`], and
//! once the machine reports `Closed` its last bytes are written and the socket is closed.
use std::fmt::Debug;
use std::future::poll_fn;
use std::io;
use std::marker::PhantomData;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::{Arc, OnceLock};
use std::task::Poll;
use std::time::Instant;

use tether_core::driver::{Machine, StreamEvent, StreamId, Streams, Transport};
use tether_core::session::SessionId;
use tether_core::stack::{Stack, StackClose};
use tether_core::stream_link::{LinkCloseReason, StreamLink};

use crate::blocks::QuietTrim;
use crate::handle::{resolve, ConnectionHandle, RuntimeStream, SendLayer};
use crate::hub::{Gone, Hub, HubState, StreamKey};
use crate::pump::{self, ConnVerdict};
use crate::runtime::{Runtime, SocketIo};
use crate::tcp_loop::SocketSide;

#[cfg(doc)]
use crate::tcp_loop::OUT_MAX;

/// What a TCP connection loop carries: a machine whose input and output are the TCP byte
/// stream, with streams for the application and a connection to lose (in practice a
/// `Stack<StreamLink, U>` for a multiplexer `U`, which implements it).
pub trait TcpMachine:
    Machine<Event = StreamEvent<Self::Reason>> + Streams + Transport + Send + 'static
{
    /// Why the connection closed.
    type Reason: Debug + Send;

    /// Closes the connection now: what was already written still goes out, then the one
    /// `Closed` event follows.
    fn close(&mut self);

    /// Whether the loop should shut the socket's write side down (this side finished the
    /// whole byte stream and every byte was handed out).
    fn wants_shutdown(&self) -> bool;

    /// Runs the work application calls left due, without handing out output
    /// ([`Stack::drain_work`]).
    fn drain_work(&mut self, now: Instant);
}

impl<U: SendLayer> TcpMachine for Stack<StreamLink, U> {
    type Reason = StackClose<LinkCloseReason, U::Reason>;

    fn close(&mut self) {
        Stack::close(self);
    }

    fn wants_shutdown(&self) -> bool {
        self.lower().wants_shutdown()
    }

    fn drain_work(&mut self, now: Instant) {
        Stack::drain_work(self, now);
    }
}

/// The key of a TCP connection in its loop's own hub. A `SessionId` (the hub's connection
/// key) has no public constructor, since it names a KCP listener's session: the id of one
/// detached raw KCP session, made once per process, serves as the tag. Every TCP
/// connection has a hub of its own, so the tag never meets another connection.
pub(crate) fn conn_tag() -> SessionId {
    static TAG: OnceLock<SessionId> = OnceLock::new();
    *TAG.get_or_init(|| {
        use tether_core::session::{Listener, ListenerConfig};
        let mut detached = Listener::new(
            ListenerConfig::new(raw_session()),
            Box::new(tether_core::rng::seeded(0)),
        );
        detached.connect(Instant::now(), SocketAddr::from(([127, 0, 0, 1], 9)))
    })
}

/// The cheapest KCP session settings (raw, no FEC): the detached tag session's, and tests'.
pub(crate) fn raw_session() -> tether_core::session::SessionConfig {
    tether_core::session::SessionConfig {
        kcp: tether_core::kcp::KcpConfig::fast3(),
        crypt: tether_core::session::CryptMode::Raw,
        key: [0; 32],
        data_shards: 0,
        parity_shards: 0,
    }
}

/// One TCP connection's protocol state and its side of the hub.
struct TcpConn<M> {
    m: M,
    hub: Arc<Hub>,
    id: SessionId,
    peer: SocketAddr,
    /// The machine reported `Closed`.
    closed: bool,
    /// The handle and every stream were dropped: close once the output is out of the
    /// machine.
    close_when_flushed: bool,
    /// The socket failed with this error (the `Closed` that follows is reported with it).
    io_error: Option<io::ErrorKind>,
}

impl<M: TcpMachine> TcpConn<M> {
    /// Turns the machine's events into stream state and serves the application's calls:
    /// the TCP twin of the UDP driver's `sync`, for one connection.
    fn sync(&mut self) {
        let hub = Arc::clone(&self.hub);
        let mut st = hub.lock();
        while let Some(ev) = self.m.poll_event() {
            match ev {
                StreamEvent::Opened(sid) => {
                    // The hub's queue is the accept queue: the stack's own is drained.
                    while self.m.accept_stream().is_some() {}
                    st.push_opened(self.id, sid);
                    self.pump(&mut st, (self.id, sid));
                }
                StreamEvent::Readable(sid) | StreamEvent::Writable(sid) => {
                    self.pump(&mut st, (self.id, sid))
                }
                StreamEvent::Acknowledged(sid) => {
                    self.pump(&mut st, (self.id, sid));
                    for key in pump::also_acknowledged(&st, self.id, sid) {
                        self.pump(&mut st, key);
                    }
                }
                StreamEvent::StreamClosed(sid) => {
                    self.pump(&mut st, (self.id, sid));
                    st.stream_closed((self.id, sid));
                }
                StreamEvent::Closed(why) => {
                    tracing::debug!("TCP connection to {} closed: {why:?}", self.peer);
                    self.closed = true;
                    // What the streams received (and their FINs) reaches the hub first.
                    let range = (self.id, StreamId(0))..=(self.id, StreamId(u32::MAX));
                    let keys: Vec<StreamKey> = st.streams.range(range).map(|(k, _)| *k).collect();
                    for key in keys {
                        self.pump(&mut st, key);
                    }
                    let gone = self.io_error.map_or(Gone::ConnectionClosed, Gone::Io);
                    st.conn_gone(self.id, gone);
                }
            }
        }
        for key in st.take_dirty() {
            self.pump(&mut st, key);
        }
        if std::mem::take(&mut st.conn_work).is_empty() {
            return;
        }
        let conn = (!self.closed).then_some(&mut self.m);
        match pump::serve_conn(&mut st, self.id, Some(self.peer), conn) {
            ConnVerdict::Keep => {}
            ConnVerdict::CloseNow => self.m.close(),
            ConnVerdict::CloseWhenAcked => self.close_when_flushed = true,
        }
    }

    /// Moves one stream's bytes (shared with the UDP driver, [`pump`]).
    fn pump(&mut self, st: &mut HubState, key: StreamKey) {
        let Some(s) = st.streams.get_mut(&key) else {
            return;
        };
        // KCP's probes and receive times have no TCP meaning: answer, do nothing.
        s.keepalive = false;
        s.set_last_received(None);
        let progressed = pump::exchange(s, &mut self.m, key.1);
        let acked = self.m.all_acked(key.1);
        if pump::settle(st, key, progressed, acked) {
            self.m.close_stream(key.1);
        }
    }

    /// The socket failed: the machine loses its connection, and its `Closed` carries `e`.
    fn fail(&mut self, now: Instant, e: &io::Error) {
        tracing::debug!("TCP connection to {} failed: {e}", self.peer);
        self.io_error.get_or_insert(e.kind());
        self.m.handle_disconnect(now);
        self.sync();
    }
}

/// Starts the loop for `machine` on the registered, connected `sock` and returns the
/// application's handle.
fn start<R: Runtime, S: RuntimeStream, M: TcpMachine>(
    sock: R::Tcp,
    peer: SocketAddr,
    machine: M,
) -> io::Result<ConnectionHandle<S>> {
    let hub = Arc::new(Hub::default());
    let id = conn_tag();
    {
        let mut st = hub.lock();
        st.multiplexed = true;
        let q = st.conns.entry(id).or_default();
        q.held = true;
        q.peer = Some(peer);
    }
    let conn = TcpConn {
        m: machine,
        hub: Arc::clone(&hub),
        id,
        peer,
        closed: false,
        close_when_flushed: false,
        io_error: None,
    };
    R::spawn("tether-tcp", run::<R, M>(conn, sock))?;
    Ok(ConnectionHandle::from_parts(hub, id, peer))
}

/// Makes an accepted or connected stream ready for the loop (non-blocking, Nagle off) and
/// registers it.
fn register<R: Runtime>(sock: TcpStream) -> io::Result<R::Tcp> {
    sock.set_nonblocking(true)?;
    sock.set_nodelay(true)?;
    R::register_tcp(sock)
}

/// A non-blocking connect to `peer`, registered with `R`, complete once writable.
async fn connect_socket<R: Runtime>(peer: SocketAddr) -> io::Result<R::Tcp> {
    let sock = socket2::Socket::new(
        socket2::Domain::for_address(peer),
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )?;
    sock.set_nonblocking(true)?;
    match sock.connect(&peer.into()) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
        Err(e) => return Err(e),
    }
    let tcp = register::<R>(sock.into())?;
    loop {
        poll_fn(|cx| tcp.poll_write_with(cx, &mut |_| Ok(()))).await?;
        if let Some(e) = tcp.socket().take_error()? {
            return Err(e);
        }
        match tcp.socket().peer_addr() {
            Ok(_) => return Ok(tcp),
            Err(e) if e.kind() == io::ErrorKind::NotConnected => R::yield_now().await,
            Err(e) => return Err(e),
        }
    }
}

impl<S: RuntimeStream> ConnectionHandle<S> {
    /// Dials `addr` over TCP (a non-blocking connect; a host name is resolved by a blocking
    /// lookup, as everywhere in tether) and runs `machine` on the connection, e.g.
    /// `Stack::new(StreamLink::default(), mux)`: open and accept its streams on the
    /// returned handle, exactly as on a KCP connection.
    pub async fn connect_tcp<M: TcpMachine>(
        addr: impl ToSocketAddrs,
        machine: M,
    ) -> io::Result<Self> {
        let peer = resolve(addr)?;
        let sock = connect_socket::<S::Runtime>(peer).await?;
        start::<S::Runtime, S, M>(sock, peer, machine)
    }
}

/// Makes a connection handle for one accepted TCP stream (the factory's machine on it).
type Spawner<S> = dyn Fn(TcpStream, SocketAddr) -> io::Result<ConnectionHandle<S>> + Send + Sync;

/// Accepts TCP connections on one port, each carrying a fresh machine from the factory
/// given to [`TcpListenerHandle::bind`] (a multiplexer stack over a `StreamLink`), each run
/// by its own socket loop. Dropping the listener closes the port; accepted connections go
/// on.
pub struct TcpListenerHandle<S: RuntimeStream> {
    sock: <S::Runtime as Runtime>::TcpListener,
    local: SocketAddr,
    spawn: Box<Spawner<S>>,
    stream: PhantomData<fn() -> S>,
}

impl<S: RuntimeStream> Debug for TcpListenerHandle<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TcpListenerHandle")
            .field("local", &self.local)
            .finish_non_exhaustive()
    }
}

impl<S: RuntimeStream> TcpListenerHandle<S> {
    /// Binds `addr` (must run where the runtime can register sockets, e.g. inside a tokio
    /// runtime); every accepted connection carries `factory()`.
    pub async fn bind<M: TcpMachine>(
        addr: impl ToSocketAddrs,
        factory: impl Fn() -> M + Send + Sync + 'static,
    ) -> io::Result<Self> {
        let listener = TcpListener::bind(resolve(addr)?)?;
        listener.set_nonblocking(true)?;
        let local = listener.local_addr()?;
        let sock = S::Runtime::register_tcp_listener(listener)?;
        let spawn = move |sock: TcpStream, peer: SocketAddr| {
            let sock = register::<S::Runtime>(sock)?;
            start::<S::Runtime, S, M>(sock, peer, factory())
        };
        Ok(TcpListenerHandle {
            sock,
            local,
            spawn: Box::new(spawn),
            stream: PhantomData,
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Waits for the next TCP connection and starts its loop.
    pub async fn accept_connection(&self) -> io::Result<ConnectionHandle<S>> {
        let (sock, peer) = poll_fn(|cx| loop {
            let mut got = None;
            let mut accept = |l: &TcpListener| {
                got = Some(l.accept()?);
                Ok(())
            };
            match self.sock.poll_read_with(cx, &mut accept) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                // `None`: the listener was drained (readiness cleared): wait again.
                Poll::Ready(Ok(())) => {
                    if let Some(c) = got {
                        return Poll::Ready(Ok(c));
                    }
                }
            }
        })
        .await?;
        (self.spawn)(sock, peer)
    }
}

/// Marks every stream gone however the loop ends (error, finish, panic).
struct ShutdownOnDrop(Arc<Hub>);

impl Drop for ShutdownOnDrop {
    fn drop(&mut self) {
        self.0.lock().shut_down();
    }
}

async fn run<R: Runtime, M: TcpMachine>(mut conn: TcpConn<M>, sock: R::Tcp) {
    let _shutdown = ShutdownOnDrop(Arc::clone(&conn.hub));
    run_loop::<R, M>(&mut conn, &sock).await;
    let _ = sock.socket().shutdown(Shutdown::Both);
}

/// The loop (module docs); returns once the machine closed and its last bytes went out (or
/// the socket failed).
async fn run_loop<R: Runtime, M: TcpMachine>(conn: &mut TcpConn<M>, sock: &R::Tcp) {
    let hub = Arc::clone(&conn.hub);
    let mut io = SocketSide::<R>::default();
    let (mut eof_told, mut write_shut) = (false, false);
    let mut quiet = QuietTrim::default();
    loop {
        let now = Instant::now();
        if io.peer_closed && !std::mem::replace(&mut eof_told, true) {
            conn.m.handle_eof(now);
        }
        if conn.m.poll_timeout().is_some_and(|t| t <= now) {
            conn.m.handle_timeout(now);
        }
        conn.sync();
        io.out.fill(&mut conn.m, now);
        // Draining output raises events (writable, acknowledged) the application waits on.
        conn.sync();
        if conn.close_when_flushed && !conn.m.has_transmit() && !conn.closed {
            conn.m.close();
            conn.sync();
        }
        let blocked = match io.out.write(sock.socket()) {
            Ok(b) => b,
            Err(e) => {
                conn.fail(now, &e);
                return;
            }
        };
        if conn.closed && (io.out.is_empty() || conn.io_error.is_some()) {
            return;
        }
        if !write_shut && io.out.is_empty() && conn.m.wants_shutdown() {
            write_shut = true;
            let _ = sock.socket().shutdown(Shutdown::Write);
        }
        if !blocked && conn.m.has_transmit() {
            // More output than one buffer: go round again, letting others run first.
            R::yield_now().await;
            continue;
        }
        if !conn.m.wants_input() && conn.m.has_transmit() {
            // The output buffer is full, and the application's reads (the pumps above) may
            // have made room for input the machine has not taken yet: a session paused at its
            // receive bound must resume now, or both ends wait on each other's full windows
            // (smux v1 stalled until a keepalive).
            conn.m.drain_work(now);
            conn.sync();
        }
        // A connection quiet for a while gives its pools' free blocks back.
        let gets = io.buf.pool().gets() + hub.lock().blocks.gets();
        if quiet.check(gets, now) {
            io.buf.pool().trim();
            hub.lock().blocks.trim();
        }
        io.alarm.set(conn.m.poll_timeout());
        let reading = !io.peer_closed && conn.m.wants_input();
        let r = io
            .wait(sock, &mut conn.m, reading, blocked, |w| {
                hub.driver_should_wake(w)
            })
            .await;
        if let Err(e) = r {
            conn.fail(Instant::now(), &e);
            return;
        }
    }
}
