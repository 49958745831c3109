//! The application's handles, the same on every async runtime: a listener that accepts from
//! its socket loops, and a stream handle with `poll_read`/`poll_write`/`poll_flush`/
//! `poll_shutdown` for the runtime crates' `AsyncRead`/`AsyncWrite` impls to delegate to.
//! Binding, host resolution and the spawning of socket loops happen here, once.
use std::future::poll_fn;
use std::io;
use std::marker::PhantomData;
use std::net::{SocketAddr, ToSocketAddrs, UdpSocket};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use tether_core::driver::{Bytes, StreamId};
use tether_core::session::snmp::Snmp;
use tether_core::session::SessionId;
use tether_core::stack::{Side, StreamLayer};

use crate::config::Config;
use crate::driver::{Driver, DriverStats, LoopEndpoint};
use crate::hub::{Hub, StreamKey};
use crate::runtime::Runtime;
use crate::socket_loop;

/// A runtime crate's stream type: built from a [`StreamHandle`], it names the runtime its
/// socket loops run on (so `ListenerHandle<KcpStream>` is that crate's `KcpListener`).
pub trait RuntimeStream: From<StreamHandle> {
    /// The runtime the listener's socket loops are spawned on.
    type Runtime: Runtime;
}

/// Accepts KCP sessions on one UDP port (kcp-go `ListenWithOptions`), from one socket loop
/// or, with [`Config::reuseport`], from several sockets sharing the port.
#[derive(Debug)]
pub struct ListenerHandle<S> {
    hubs: Vec<Arc<Hub>>,
    local: SocketAddr,
    /// Which loop's queue `accept` looks at first, rotated so none is starved.
    next: AtomicUsize,
    stream: PhantomData<fn() -> S>,
}

/// One KCP session as a byte stream (kcp-go `UDPSession`): a handle to its socket loop's
/// buffers.
#[derive(Debug)]
pub struct StreamHandle {
    hub: Arc<Hub>,
    id: StreamKey,
    peer: SocketAddr,
}

/// The first address `addr` names. A host name is looked up by a blocking call on the
/// calling task, on every runtime alike (kcp-go's `DialWithOptions` resolves the same way);
/// a `SocketAddr` or an IP literal never blocks.
pub fn resolve(addr: impl ToSocketAddrs) -> io::Result<SocketAddr> {
    addr.to_socket_addrs()?
        .next()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no address to use"))
}

/// The unspecified address of `peer`'s family, port 0: where a client socket binds.
fn wildcard_for(peer: SocketAddr) -> SocketAddr {
    let ip: std::net::IpAddr = if peer.is_ipv4() {
        std::net::Ipv4Addr::UNSPECIFIED.into()
    } else {
        std::net::Ipv6Addr::UNSPECIFIED.into()
    };
    SocketAddr::new(ip, 0)
}

/// A bound, non-blocking UDP socket with `cfg`'s buffers, GRO and DSCP; with `reuseport`,
/// `SO_REUSEPORT` is set before the bind so further sockets can share the port.
fn bind_udp(addr: SocketAddr, cfg: &Config, reuseport: bool) -> io::Result<UdpSocket> {
    let sock = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::DGRAM,
        Some(socket2::Protocol::UDP),
    )?;
    if reuseport {
        sock.set_reuse_port(true)?;
    }
    sock.bind(&addr.into())?;
    sock.set_nonblocking(true)?;
    let sock: UdpSocket = sock.into();
    cfg.configure_socket(&sock);
    Ok(sock)
}

/// An upper layer a socket loop can own on another thread (every multiplexer the runtimes
/// take).
pub trait SendLayer: StreamLayer<Reason: Send> + Send + 'static {}
impl<U: StreamLayer<Reason: Send> + Send + 'static> SendLayer for U {}

/// A datagram endpoint a socket loop can own on another thread: the KCP listener with any
/// [`SendLayer`], or another protocol's endpoint ([`ListenerHandle::bind_endpoint`],
/// [`StreamHandle::connect_endpoint`]).
pub trait SendEndpoint: LoopEndpoint + Send + 'static {}
impl<E: LoopEndpoint + Send + 'static> SendEndpoint for E {}

/// Registers `sock` with `R` and spawns a socket loop for `driver` on it.
fn start<R: Runtime, E: SendEndpoint>(driver: Driver<E>, sock: UdpSocket) -> io::Result<()> {
    let sock = R::register(sock)?;
    R::spawn("tether-kcp", socket_loop::run::<R, _>(driver, sock))
}

/// Binds `addr` for a listener: one socket, or with [`Config::reuseport`] that many sharing
/// the port. Returns the bound address and the sockets.
fn bind_sockets(addr: SocketAddr, cfg: &Config) -> io::Result<(SocketAddr, Vec<UdpSocket>)> {
    let shared = cfg.reuseport > 1;
    let first = bind_udp(addr, cfg, shared)?;
    // With port 0 the first socket picked the port: the others join it there.
    let local = first.local_addr()?;
    let mut socks = vec![first];
    for _ in 1..cfg.reuseport {
        socks.push(bind_udp(local, cfg, true)?);
    }
    Ok((local, socks))
}

/// Starts one server socket loop per socket, each with the endpoint `make` builds and a hub
/// of its own (`multiplexed`: accepted connections carry streams opened and accepted on a
/// [`ConnectionHandle`]; otherwise each is one stream).
fn spawn_loops<R: Runtime, E: SendEndpoint>(
    socks: Vec<UdpSocket>,
    multiplexed: bool,
    mut make: impl FnMut() -> E,
) -> io::Result<Vec<Arc<Hub>>> {
    let mut hubs = Vec::with_capacity(socks.len());
    for sock in socks {
        let hub = Arc::new(Hub::default());
        hub.lock().multiplexed = multiplexed;
        start::<R, _>(Driver::new(make(), Arc::clone(&hub), true), sock)?;
        hubs.push(hub);
    }
    Ok(hubs)
}

impl<S: RuntimeStream> ListenerHandle<S> {
    /// Binds the UDP port and starts its socket loops ([`Config::reuseport`] of them, each
    /// with its own socket, sessions and driver; the kernel spreads peers over the sockets
    /// by address).
    pub async fn bind(addr: impl ToSocketAddrs, cfg: Config) -> io::Result<Self> {
        Self::bind_stacks::<tether_core::stack::Plain>(addr, cfg, None).await
    }

    /// Binds like [`ListenerHandle::bind`], for sessions that each carry the multiplexer
    /// `upper` makes (called with [`Side::Server`]): take them with
    /// [`ListenerHandle::accept_connection`], then open and accept streams on each.
    pub async fn bind_with<U: SendLayer>(
        addr: impl ToSocketAddrs,
        cfg: Config,
        upper: impl Fn(Side) -> U + Send + Sync + 'static,
    ) -> io::Result<Self> {
        Self::bind_stacks(addr, cfg, Some(Arc::new(upper))).await
    }

    /// Binds the UDP port like [`ListenerHandle::bind`] with another protocol's endpoint
    /// (`make` builds one per socket, ready to accept peers): a [`LoopEndpoint`] whose
    /// connections each carry one stream, taken with [`ListenerHandle::accept`]. The same
    /// socket loop as KCP's runs it (batched reads and writes, accept pressure, linger).
    pub async fn bind_endpoint<E: SendEndpoint>(
        addr: impl ToSocketAddrs,
        cfg: Config,
        make: impl FnMut() -> E,
    ) -> io::Result<Self> {
        cfg.validate()?;
        let (local, socks) = bind_sockets(resolve(addr)?, &cfg)?;
        let hubs = spawn_loops::<S::Runtime, _>(socks, false, make)?;
        Ok(Self::from_hubs(hubs, local))
    }

    /// Binds with plain sessions (`upper` `None`) or multiplexed stacks.
    async fn bind_stacks<U: SendLayer>(
        addr: impl ToSocketAddrs,
        cfg: Config,
        upper: Option<Arc<dyn Fn(Side) -> U + Send + Sync>>,
    ) -> io::Result<Self> {
        cfg.validate()?;
        let (local, socks) = bind_sockets(resolve(addr)?, &cfg)?;
        let hubs = match upper {
            None => spawn_loops::<S::Runtime, _>(socks, false, || cfg.listener(true))?,
            Some(upper) => spawn_loops::<S::Runtime, _>(socks, true, || {
                let upper = Arc::clone(&upper);
                cfg.listener_with(true, move |side| upper(side))
            })?,
        };
        Ok(Self::from_hubs(hubs, local))
    }

    fn from_hubs(hubs: Vec<Arc<Hub>>, local: SocketAddr) -> Self {
        ListenerHandle {
            hubs,
            local,
            next: AtomicUsize::new(0),
            stream: PhantomData,
        }
    }

    /// Waits for the next session, from whichever socket loop has one.
    pub async fn accept(&self) -> io::Result<(S, SocketAddr)> {
        let (hub, id) = poll_fn(|cx| self.poll_accept(cx)).await.ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::BrokenPipe,
                "the KCP listener task has stopped",
            )
        })?;
        let id = (id, StreamId::SOLE);
        let peer = hub.lock().streams.get(&id).and_then(|s| s.peer);
        let peer = peer.unwrap_or(self.local);
        Ok((S::from(StreamHandle { hub, id, peer }), peer))
    }

    /// Waits for the next connection of a listener made by [`ListenerHandle::bind_with`].
    pub async fn accept_connection(&self) -> io::Result<ConnectionHandle<S>> {
        let (hub, id) = poll_fn(|cx| self.poll_accept(cx)).await.ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::BrokenPipe,
                "the KCP listener task has stopped",
            )
        })?;
        Ok(ConnectionHandle::new(hub, id, self.local))
    }
}

/// One session carrying a multiplexed stack (`Stack<Session, U>`): streams are opened with
/// [`ConnectionHandle::open_stream`] and the peer's taken with
/// [`ConnectionHandle::accept_stream`]; each is a runtime stream (`S`, the runtime crate's
/// `KcpStream`) with the same `poll_read`/`poll_write` as a plain session's. The connection
/// closes once this handle and all its streams are dropped and everything is acknowledged.
#[derive(Debug)]
pub struct ConnectionHandle<S> {
    hub: Arc<Hub>,
    id: SessionId,
    peer: SocketAddr,
    stream: PhantomData<fn() -> S>,
}

impl<S: RuntimeStream> ConnectionHandle<S> {
    /// A handle to connection `id` of `hub` (a TCP connection loop's).
    pub(crate) fn from_parts(hub: Arc<Hub>, id: SessionId, peer: SocketAddr) -> Self {
        ConnectionHandle {
            hub,
            id,
            peer,
            stream: PhantomData,
        }
    }

    fn new(hub: Arc<Hub>, id: SessionId, fallback: SocketAddr) -> Self {
        let peer = hub.lock().conns.get(&id).and_then(|q| q.peer);
        ConnectionHandle {
            hub,
            id,
            peer: peer.unwrap_or(fallback),
            stream: PhantomData,
        }
    }

    /// Dials `addr` from a fresh UDP socket with a session carrying the multiplexer `upper`
    /// makes (called with [`Side::Client`]). No packet is sent until a stream writes.
    pub async fn connect_with<U: SendLayer>(
        addr: impl ToSocketAddrs,
        cfg: Config,
        upper: impl Fn(Side) -> U + Send + Sync + 'static,
    ) -> io::Result<Self> {
        cfg.validate()?;
        let peer = resolve(addr)?;
        let sock = bind_udp(wildcard_for(peer), &cfg, false)?;
        let hub = Arc::new(Hub::default());
        hub.lock().multiplexed = true;
        let mut driver = Driver::new(cfg.listener_with(false, upper), Arc::clone(&hub), false);
        let id = driver.connect_conn(Instant::now(), peer);
        start::<S::Runtime, _>(driver, sock)?;
        Ok(ConnectionHandle {
            hub,
            id,
            peer,
            stream: PhantomData,
        })
    }

    /// The remote address.
    pub fn peer_addr(&self) -> SocketAddr {
        self.peer
    }

    /// Whether the connection can carry no more streams: it closed (the peer, a dead link,
    /// smux's keepalive timeout, [`ConnectionHandle::close`]) or its socket loop stopped.
    /// A pool (kcptun's `--conn`) replaces such a connection.
    pub fn is_closed(&self) -> bool {
        let st = self.hub.lock();
        st.endpoint_gone || st.conns.get(&self.id).is_none_or(|q| q.gone.is_some())
    }

    /// kcp-go's 24 counters of the socket loop carrying this connection: a dialled
    /// connection's own session ([`ConnectionHandle::connect_with`] gives each its socket);
    /// for an accepted one, every session of its listener socket. Refreshed as
    /// [`ListenerHandle::snmp`] is.
    pub fn snmp(&self) -> Snmp {
        self.hub.lock().snmp
    }

    /// Opens a new stream on this connection.
    pub async fn open_stream(&self) -> io::Result<S> {
        self.hub.request_open(self.id);
        let sid = poll_fn(|cx| self.hub.poll_opened(self.id, cx)).await?;
        Ok(self.stream(sid))
    }

    /// Closes the connection now: every stream of it ends (reads return what arrived, then
    /// an error, unless the stream had reached its end), `accept_stream` and `open_stream`
    /// fail. Without this call the connection closes once this handle and all its streams
    /// are dropped and everything is acknowledged.
    pub fn close(&self) {
        self.hub.close_connection(self.id);
    }

    /// Waits for the next stream the peer opened on this connection.
    pub async fn accept_stream(&self) -> io::Result<S> {
        let sid = poll_fn(|cx| self.hub.poll_accept_stream(self.id, cx)).await?;
        Ok(self.stream(sid))
    }

    fn stream(&self, sid: StreamId) -> S {
        S::from(StreamHandle {
            hub: Arc::clone(&self.hub),
            id: (self.id, sid),
            peer: self.peer,
        })
    }
}

impl<S> Drop for ConnectionHandle<S> {
    fn drop(&mut self) {
        self.hub.drop_connection(self.id);
    }
}

impl<S> ListenerHandle<S> {
    /// `None` once every socket loop stopped.
    fn poll_accept(&self, cx: &mut Context<'_>) -> Poll<Option<(Arc<Hub>, SessionId)>> {
        let n = self.hubs.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let mut live = false;
        for i in 0..n {
            let hub = &self.hubs[(start + i) % n];
            match hub.poll_accept(cx) {
                Poll::Ready(Some(id)) => return Poll::Ready(Some((Arc::clone(hub), id))),
                Poll::Ready(None) => {}
                Poll::Pending => live = true,
            }
        }
        if live {
            Poll::Pending
        } else {
            Poll::Ready(None)
        }
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// kcp-go's 24 SNMP counters summed over this listener's sessions (kcptun's `--snmplog`
    /// columns; `Snmp::csv_row`). Refreshed at most every 100 ms while the endpoint is busy.
    pub fn snmp(&self) -> Snmp {
        let mut sum = Snmp::default();
        for hub in &self.hubs {
            sum.merge(&hub.lock().snmp);
        }
        sum
    }

    /// Each socket loop's counters, one entry per socket ([`Config::reuseport`]): how the
    /// kernel spread the peers.
    pub fn driver_stats_per_socket(&self) -> Vec<DriverStats> {
        self.hubs.iter().map(|h| h.lock().driver_stats).collect()
    }

    /// The socket loops' counters (wake-ups, datagrams, system calls), summed.
    pub fn driver_stats(&self) -> DriverStats {
        let mut sum = DriverStats::default();
        for hub in &self.hubs {
            sum.merge(&hub.lock().driver_stats);
        }
        sum
    }
}

impl<S> Drop for ListenerHandle<S> {
    fn drop(&mut self) {
        for hub in &self.hubs {
            hub.drop_listener();
        }
    }
}

impl StreamHandle {
    /// Dials `addr` from a fresh UDP socket (kcp-go `DialWithOptions`) with a socket loop on
    /// `R`. No packet is sent until the first write: KCP has no handshake.
    pub async fn connect<R: Runtime>(addr: impl ToSocketAddrs, cfg: Config) -> io::Result<Self> {
        cfg.validate()?;
        let client = cfg.listener(false);
        Self::connect_endpoint::<R, _>(addr, cfg, client).await
    }

    /// Dials `addr` from a fresh UDP socket with another protocol's client `endpoint` (a
    /// [`LoopEndpoint`] whose connections carry one stream), run by the same socket loop as
    /// KCP's on `R`: the endpoint's `connect` opens the connection.
    pub async fn connect_endpoint<R: Runtime, E: SendEndpoint>(
        addr: impl ToSocketAddrs,
        cfg: Config,
        endpoint: E,
    ) -> io::Result<Self> {
        cfg.validate()?;
        let peer = resolve(addr)?;
        let sock = bind_udp(wildcard_for(peer), &cfg, false)?;
        let hub = Arc::new(Hub::default());
        let mut driver = Driver::new(endpoint, Arc::clone(&hub), false);
        let id = (driver.connect(Instant::now(), peer), StreamId::SOLE);
        start::<R, _>(driver, sock)?;
        Ok(StreamHandle { hub, id, peer })
    }

    /// The remote address.
    pub fn peer_addr(&self) -> SocketAddr {
        self.peer
    }

    /// The multiplexer's id for this stream (smux: odd when the client opened it); a plain
    /// session's sole stream has [`StreamId::SOLE`]'s.
    pub fn stream_id(&self) -> u32 {
        self.id.1 .0
    }

    /// Sends a keepalive: a KCP window probe (WASK) that the peer, kcp-go included, answers
    /// with a WINS. KCP itself has no keepalive; this lets an application that has nothing to
    /// send show that it is still there (see [`StreamHandle::last_received`]).
    pub fn send_keepalive(&self) {
        self.hub.send_keepalive(self.id);
    }

    /// When this session last received a datagram from the peer: data, ACK, retransmission
    /// or probe alike (the session's start if none came yet). Asks the socket loop, so the
    /// answer is fresh. KCP has no FIN: "the peer has been quiet for a while" is the only
    /// end-of-stream signal a raw KCP application gets.
    pub async fn last_received(&self) -> Option<Instant> {
        poll_fn(|cx| self.hub.poll_last_received(self.id, cx)).await
    }

    /// Bytes received and waiting to be read. Right after [`StreamHandle::last_received`]
    /// this includes everything KCP had ready for the application (up to the 1 MiB buffer).
    pub fn unread(&self) -> usize {
        self.hub.unread(self.id)
    }

    /// Reads received bytes into `buf` (`AsyncRead`).
    pub fn poll_read(&self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        self.hub.poll_read(self.id, cx, buf)
    }

    /// Queues `data` for sending (`AsyncWrite`).
    pub fn poll_write(&self, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        self.hub.poll_write(self.id, cx, data)
    }

    /// Takes received bytes as an owned chunk, without copying them (quinn's
    /// `RecvStream::read_chunk`): at most `max` bytes (at least 1), `None` at the end of
    /// the stream. See [`StreamHandle::read_chunk`].
    pub fn poll_read_chunk(
        &self,
        cx: &mut Context<'_>,
        max: usize,
    ) -> Poll<io::Result<Option<Bytes>>> {
        self.hub.poll_read_chunk(self.id, cx, max)
    }

    /// Appends every received chunk, up to `max` bytes in all, to `out` under one lock;
    /// `Ok(0)` at the end of the stream. See [`StreamHandle::read_chunks`].
    pub fn poll_read_chunks(
        &self,
        cx: &mut Context<'_>,
        max: usize,
        out: &mut Vec<Bytes>,
    ) -> Poll<io::Result<usize>> {
        self.hub.poll_read_chunks(self.id, cx, max, out)
    }

    /// Queues `chunk` whole, without copying it, once the send buffer has room; takes it
    /// (leaves it empty) when ready. See [`StreamHandle::write_chunk`].
    pub fn poll_write_chunk(
        &self,
        cx: &mut Context<'_>,
        chunk: &mut Bytes,
    ) -> Poll<io::Result<()>> {
        self.hub.poll_write_chunk(self.id, cx, chunk)
    }

    /// The next received bytes as an owned chunk, at most `max` of them (at least 1), or
    /// `None` at the end of the stream (where `read` returns 0). The chunk is the bytes as
    /// the protocol stack received them, not a copy: the zero-copy counterpart of
    /// `AsyncRead`. Fails as a read does (the stream was reset, the connection closed).
    /// Works on every runtime (`KcpStream` derefs to this handle).
    pub async fn read_chunk(&self, max: usize) -> io::Result<Option<Bytes>> {
        poll_fn(|cx| self.poll_read_chunk(cx, max)).await
    }

    /// Waits for received bytes and appends every chunk already there, up to `max` bytes in
    /// all (at least 1), to `out`, without copying them; returns their length, `0` at the
    /// end of the stream. The batch form of [`StreamHandle::read_chunk`] for a reader that
    /// writes many chunks at once (one `writev`), as quinn's `read_chunks`.
    pub async fn read_chunks(&self, max: usize, out: &mut Vec<Bytes>) -> io::Result<usize> {
        poll_fn(|cx| self.poll_read_chunks(cx, max, out)).await
    }

    /// Sends `chunk` without copying it: waits until the send buffer has room, then queues
    /// the chunk whole (the buffer may pass its 1 MiB bound by this one chunk). One call is
    /// one write: in KCP message mode, one message. Chunks under
    /// [`COPY_CHUNKS_BELOW`](crate::hub::COPY_CHUNKS_BELOW) bytes are copied and merged
    /// with their neighbours (a frame per tiny chunk would cost more). Fails as a write
    /// does, and after [`StreamHandle::poll_shutdown`] (`BrokenPipe`).
    pub async fn write_chunk(&self, chunk: Bytes) -> io::Result<()> {
        let mut chunk = chunk;
        poll_fn(|cx| self.poll_write_chunk(cx, &mut chunk)).await
    }

    /// Ready once every written byte has been acknowledged by the peer.
    pub fn poll_flush(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.hub.poll_flush(self.id, cx)
    }

    /// Half-closes the stream (`AsyncWrite::poll_shutdown`, futures' `poll_close`): once
    /// every written byte is in the protocol, it finishes the stream (`Streams::finish`; the
    /// peer reads to the end, then `Ok(0)`), and is ready once the protocol took the FIN
    /// (as TCP's `shutdown`; [`StreamHandle::poll_flush`] waits for the acknowledgements).
    /// Writes fail after it. KCP has no FIN: on a plain session it only waits until
    /// everything is acknowledged, as `poll_flush`.
    pub fn poll_shutdown(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.hub.poll_shutdown(self.id, cx)
    }
}

impl Drop for StreamHandle {
    /// The session lingers until the peer acknowledged every byte, then closes.
    fn drop(&mut self) {
        self.hub.drop_stream(self.id);
    }
}

/// Defines a runtime crate's `KcpStream` and `KcpListener`: a newtype over
/// [`StreamHandle`] whose `connect` runs its socket loop on `$rt`, with `Deref` to the
/// handle's methods and [`RuntimeStream`], and the listener type that accepts it. The crate
/// adds its runtime's `AsyncRead`/`AsyncWrite` impls, delegating to the handle.
#[macro_export]
macro_rules! kcp_stream_types {
    ($rt:ty) => {
        /// Accepts KCP sessions on one UDP port (kcp-go `ListenWithOptions`): `bind`,
        /// `accept`, `local_addr`, `snmp`, `driver_stats`.
        pub type KcpListener = $crate::handle::ListenerHandle<KcpStream>;

        /// One KCP session carrying a multiplexer (`KcpConnection::connect_with`, or
        /// `KcpListener::bind_with` + `accept_connection`): `open_stream` and
        /// `accept_stream` give [`KcpStream`]s.
        pub type KcpConnection = $crate::handle::ConnectionHandle<KcpStream>;

        /// One TCP connection carrying a multiplexer (`TcpConnection::connect_tcp` with a
        /// `Stack<StreamLink, U>`, or `TcpMuxListener::bind` + `accept_connection`): the
        /// same type and calls as [`KcpConnection`], its streams the same [`KcpStream`]
        /// handles over another transport.
        pub type TcpConnection = $crate::handle::ConnectionHandle<KcpStream>;

        /// Accepts TCP connections, each carrying a fresh multiplexer stack from the
        /// factory given to `bind` (e.g. `|| Stack::new(StreamLink::default(), mux)`):
        /// `bind`, `accept_connection`, `local_addr`.
        pub type TcpMuxListener = $crate::tcp_conn::TcpListenerHandle<KcpStream>;

        /// One KCP session as a byte stream (kcp-go `UDPSession`). Its other methods
        /// (`peer_addr`, `send_keepalive`, `last_received`, `unread`, and the zero-copy
        /// `read_chunk`/`write_chunk` that take and give owned `Bytes`) are
        /// [`StreamHandle`](tether_runtime_mio::handle::StreamHandle)'s.
        #[derive(Debug)]
        pub struct KcpStream($crate::handle::StreamHandle);

        impl KcpStream {
            /// Dials `addr` from a fresh UDP socket (kcp-go `DialWithOptions`). No packet is
            /// sent until the first write: KCP has no handshake.
            pub async fn connect(
                addr: impl ::std::net::ToSocketAddrs,
                cfg: $crate::config::Config,
            ) -> ::std::io::Result<KcpStream> {
                $crate::handle::StreamHandle::connect::<$rt>(addr, cfg)
                    .await
                    .map(KcpStream)
            }
        }

        impl ::std::ops::Deref for KcpStream {
            type Target = $crate::handle::StreamHandle;
            fn deref(&self) -> &$crate::handle::StreamHandle {
                &self.0
            }
        }

        impl ::std::convert::From<$crate::handle::StreamHandle> for KcpStream {
            fn from(h: $crate::handle::StreamHandle) -> Self {
                KcpStream(h)
            }
        }

        impl $crate::handle::RuntimeStream for KcpStream {
            type Runtime = $rt;
        }
    };
}
