//! tokio adapter for tether-core: kcp-go-compatible KCP sessions as
//! `tokio::io::AsyncRead + AsyncWrite` streams.
//!
//! One task per UDP socket owns the core [`Listener`](tether_core::session::Listener); it reads
//! until `WouldBlock` with one `now` per batch, drains datagrams into `sendmmsg` batches,
//! waits for writability instead of queueing without bound, and arms a single timer at the
//! core's deadline (none at all when every session is idle). Streams talk to it through a
//! [`Hub`] of byte buffers; no lock is held around protocol state.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use tether_runtime_tokio::{Config, KcpListener, KcpStream};
//! use tokio::io::{AsyncReadExt, AsyncWriteExt};
//! let cfg = Config::default().crypt("aes", "secret").mode("fast3");
//! let listener = KcpListener::bind("127.0.0.1:0", cfg.clone()).await?;
//! let mut client = KcpStream::connect(listener.local_addr(), cfg).await?;
//! client.write_all(b"hello").await?;
//! let (mut server, _peer) = listener.accept().await?;
//! let mut buf = [0u8; 5];
//! server.read_exact(&mut buf).await?;
//! # Ok(()) }
//! ```
//!
//! Deadlines are tokio's: wrap any call in `tokio::time::timeout`.
#![warn(missing_docs)]

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use tether_core::session::SessionId;
use tether_runtime_mio::driver::Driver;
use tether_runtime_mio::hub::Hub;
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::ToSocketAddrs;

pub use tether_runtime_mio::config::Config;
pub use tether_runtime_mio::driver::DriverStats;

/// Accepts KCP sessions on one UDP socket (kcp-go `ListenWithOptions`).
#[derive(Debug)]
pub struct KcpListener {
    hub: Arc<Hub>,
    local: SocketAddr,
}

/// One KCP session as a byte stream (kcp-go `UDPSession`).
#[derive(Debug)]
pub struct KcpStream {
    hub: Arc<Hub>,
    id: SessionId,
    peer: SocketAddr,
}

async fn bind_socket(
    addr: impl ToSocketAddrs,
    cfg: &Config,
) -> io::Result<AsyncFd<std::net::UdpSocket>> {
    let tokio_sock = tokio::net::UdpSocket::bind(addr).await?;
    let std_sock = tokio_sock.into_std()?;
    std_sock.set_nonblocking(true)?;
    cfg.configure_socket(&std_sock);
    // SAFETY: a std `UdpSocket` owns its descriptor: it stays open, referring to the same
    // socket, until the socket is dropped, which happens only when the `AsyncFd` is dropped;
    // `as_raw_fd` always returns that descriptor.
    unsafe { AsyncFd::register(std_sock) }.map_err(|e| io::Error::other(e.to_string()))
}

impl KcpListener {
    /// Binds a UDP socket and starts its task on the current tokio runtime.
    pub async fn bind(addr: impl ToSocketAddrs, cfg: Config) -> io::Result<KcpListener> {
        cfg.validate()?;
        let sock = bind_socket(addr, &cfg).await?;
        let local = sock.get_ref().local_addr()?;
        let hub = Arc::new(Hub::default());
        let driver = Driver::new(cfg.listener(true), Arc::clone(&hub), true);
        tokio::spawn(run(driver, sock));
        Ok(KcpListener { hub, local })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// kcp-go's 24 SNMP counters summed over this listener's sessions (kcptun's `--snmplog`
    /// columns; `Snmp::csv_row`). Refreshed at most every 100 ms while the endpoint is busy.
    pub fn snmp(&self) -> tether_core::session::snmp::Snmp {
        self.hub.lock().snmp
    }

    /// The socket task's loop counters (wake-ups, datagrams, system calls).
    pub fn driver_stats(&self) -> DriverStats {
        self.hub.lock().driver_stats
    }

    /// Waits for the next session.
    pub async fn accept(&self) -> io::Result<(KcpStream, SocketAddr)> {
        let (id, peer) = self.hub.accept(self.local).await?;
        Ok((
            KcpStream {
                hub: Arc::clone(&self.hub),
                id,
                peer,
            },
            peer,
        ))
    }
}

impl KcpStream {
    /// Dials `addr` from a fresh UDP socket (kcp-go `DialWithOptions`). No packet is sent
    /// until the first write: KCP has no handshake.
    pub async fn connect(addr: impl ToSocketAddrs, cfg: Config) -> io::Result<KcpStream> {
        cfg.validate()?;
        let peer = tokio::net::lookup_host(addr).await?.next().ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidInput, "no address to connect to")
        })?;
        let local: SocketAddr = if peer.is_ipv4() {
            "0.0.0.0:0"
        } else {
            "[::]:0"
        }
        .parse()
        .expect("literal");
        let sock = bind_socket(local, &cfg).await?;
        let hub = Arc::new(Hub::default());
        let mut driver = Driver::new(cfg.listener(false), Arc::clone(&hub), false);
        let id = driver.connect(Instant::now(), peer);
        tokio::spawn(run(driver, sock));
        Ok(KcpStream { hub, id, peer })
    }

    /// The remote address.
    pub fn peer_addr(&self) -> SocketAddr {
        self.peer
    }

    /// Sends a keepalive: a KCP window probe (WASK) that the peer, kcp-go included, answers
    /// with a WINS. KCP itself has no keepalive; this lets an application that has nothing to
    /// send show that it is still there (see [`KcpStream::last_received`]).
    pub fn send_keepalive(&self) {
        self.hub.send_keepalive(self.id);
    }

    /// When this session last received a datagram from the peer: data, ACK, retransmission
    /// or probe alike (the session's start if none came yet). Asks the socket task, so the
    /// answer is fresh. KCP has no FIN: "the peer has been quiet for a while" is the only
    /// end-of-stream signal a raw KCP application gets.
    pub async fn last_received(&self) -> Option<Instant> {
        std::future::poll_fn(|cx| self.hub.poll_last_received(self.id, cx)).await
    }

    /// Bytes received and waiting to be read. Right after [`KcpStream::last_received`] this
    /// includes everything KCP had ready for the application (up to the 1 MiB buffer).
    pub fn unread(&self) -> usize {
        self.hub.unread(self.id)
    }
}

impl AsyncRead for KcpStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut &*self).poll_read(cx, buf)
    }
}

impl AsyncWrite for KcpStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut &*self).poll_write(cx, data)
    }
    /// Ready once every written byte has been acknowledged by the peer.
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut &*self).poll_flush(cx)
    }
    /// KCP has no FIN: shutdown waits until everything is acknowledged.
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut &*self).poll_shutdown(cx)
    }
}

/// Reads and writes through a shared reference (as `&std::net::TcpStream` does): the stream
/// is a handle to the socket task's buffers, so one task can read, write and call
/// [`KcpStream::send_keepalive`] at once.
impl AsyncRead for &KcpStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let dst = buf.initialize_unfilled();
        match self.hub.poll_read(self.id, cx, dst) {
            Poll::Ready(Ok(n)) => {
                buf.advance(n);
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl AsyncWrite for &KcpStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.hub.poll_write(self.id, cx, data)
    }
    /// Ready once every written byte has been acknowledged by the peer.
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.hub.poll_flush(self.id, cx)
    }
    /// KCP has no FIN: shutdown waits until everything is acknowledged.
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.hub.poll_flush(self.id, cx)
    }
}

impl Drop for KcpStream {
    fn drop(&mut self) {
        self.hub.drop_stream(self.id);
    }
}

impl Drop for KcpListener {
    fn drop(&mut self) {
        self.hub.drop_listener();
    }
}

/// Resolves when the application touched the hub.
struct HubWake<'a>(&'a Hub);

impl Future for HubWake<'_> {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0.driver_should_wake(cx.waker()) {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

/// The socket task.
async fn run(mut driver: Driver, sock: AsyncFd<std::net::UdpSocket>) {
    let hub = Arc::clone(&driver.hub);
    // However the loop ends (error, finish, panic), streams learn the endpoint is gone.
    let _shutdown = ShutdownOnDrop(Arc::clone(&hub));
    let result: io::Result<()> = async {
        loop {
            let now = Instant::now();
            let blocked = match driver.process(sock.get_ref(), now) {
                Ok(()) => false,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => true,
                Err(e) => return Err(e),
            };
            if driver.finished() {
                return Ok(());
            }
            if driver.accept_pending() {
                // Let the accepting task run before reading more.
                tokio::task::yield_now().await;
            }
            if !blocked && driver.due(Instant::now()) {
                // Due again at once: yield (tokio polls its I/O and timers before resuming a
                // yielded task) and read what came in, so a busy loop never starves input.
                tokio::task::yield_now().await;
                driver.recv_pending(sock.get_ref(), Instant::now())?;
                continue;
            }
            let deadline = driver.deadline().map(tokio::time::Instant::from_std);
            tokio::select! {
                biased;
                r = sock.readable() => {
                    let mut guard = r?;
                    let now = Instant::now();
                    match guard.try_io(|s| driver.recv(s.get_ref(), now)) {
                        Ok(r) => r?,
                        Err(_would_block) => {}
                    }
                }
                r = sock.writable(), if blocked => {
                    let mut guard = r?;
                    let now = Instant::now();
                    match guard.try_io(|s| driver.transmit(s.get_ref(), now)) {
                        Ok(r) => r?,
                        Err(_would_block) => {}
                    }
                }
                _ = HubWake(&hub) => {}
                _ = async { tokio::time::sleep_until(deadline.expect("guarded")).await }, if deadline.is_some() => {}
            }
        }
    }
    .await;
    if let Err(e) = result {
        tracing::warn!("KCP endpoint stopped: {e}");
    }
}

struct ShutdownOnDrop(Arc<Hub>);

impl Drop for ShutdownOnDrop {
    fn drop(&mut self) {
        self.0.lock().shut_down();
    }
}
