//! smol / async-std adapter for tether-core: kcp-go-compatible KCP sessions as
//! `futures_io::AsyncRead + AsyncWrite` streams, built on `async-io` only.
//!
//! One socket loop per UDP socket owns the core [`Listener`](tether_core::session::Listener);
//! it reads until `WouldBlock` with one `now` per batch, drains datagrams into `sendmmsg`
//! batches, waits for writability instead of queueing without bound, and arms a single
//! [`async_io::Timer`] at the core's deadline (none at all when every session is idle).
//! Streams talk to it through a [`Hub`] of byte buffers; no lock is held around protocol
//! state.
//!
//! # Where the socket loop runs
//!
//! Each endpoint ([`KcpListener::bind`] or [`KcpStream::connect`]) starts one OS thread named
//! `tether-kcp` that runs the loop under [`async_io::block_on`]. Readiness and timers come
//! from async-io's global reactor, the same one smol and async-std use, so the loop needs no
//! executor at all: the crate works unchanged under smol, async-std, `futures::executor` or
//! any other executor, never touches an executor's global, and keeps working if the
//! application's executor is shut down. A dedicated thread also means the protocol work
//! never competes with application tasks for executor threads (when it is idle,
//! `async_io::block_on` lets that thread drive the reactor itself, so no extra hop is paid).
//! The thread exits once every handle is dropped and every session has been closed, exactly
//! when the tokio adapter's task would.
//!
//! ```no_run
//! # fn main() -> std::io::Result<()> { smol::block_on(async {
//! use futures_lite::{AsyncReadExt, AsyncWriteExt};
//! use tether_runtime_smol::{Config, KcpListener, KcpStream};
//! let cfg = Config::default().crypt("aes", "secret").mode("fast3");
//! let listener = KcpListener::bind("127.0.0.1:0", cfg.clone()).await?;
//! let mut client = KcpStream::connect(listener.local_addr(), cfg).await?;
//! client.write_all(b"hello").await?;
//! let (mut server, _peer) = listener.accept().await?;
//! let mut buf = [0u8; 5];
//! server.read_exact(&mut buf).await?;
//! # Ok(()) }) }
//! ```
//!
//! Addresses are `std::net::ToSocketAddrs`: a host name is resolved by a blocking lookup on
//! the calling task, so pass a `SocketAddr` (or resolve first, e.g. with `async-net`) where
//! that matters. Deadlines are the caller's: race any call against an
//! [`async_io::Timer`], e.g. with `futures_lite::future::or`.
#![warn(missing_docs)]

use std::future::Future;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs, UdpSocket};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use async_io::{Async, Timer};
use futures_lite::future;
use tether_core::session::SessionId;
use tether_runtime_mio::driver::Driver;
use tether_runtime_mio::hub::Hub;

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

fn bind_socket(addr: impl ToSocketAddrs, cfg: &Config) -> io::Result<Async<UdpSocket>> {
    let sock = UdpSocket::bind(addr)?;
    cfg.configure_socket(&sock);
    // Sets the socket non-blocking and registers it with async-io's reactor.
    Async::new(sock)
}

/// Starts the socket loop on its own thread (see the crate docs).
fn spawn(driver: Driver, sock: Async<UdpSocket>) -> io::Result<()> {
    std::thread::Builder::new()
        .name("tether-kcp".into())
        .spawn(move || async_io::block_on(run(driver, sock)))
        .map(drop)
}

impl KcpListener {
    /// Binds a UDP socket and starts its socket loop.
    pub async fn bind(addr: impl ToSocketAddrs, cfg: Config) -> io::Result<KcpListener> {
        cfg.validate()?;
        let sock = bind_socket(addr, &cfg)?;
        let local = sock.get_ref().local_addr()?;
        let hub = Arc::new(Hub::default());
        let driver = Driver::new(cfg.listener(true), Arc::clone(&hub), true);
        spawn(driver, sock)?;
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
        let peer = addr.to_socket_addrs()?.next().ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidInput, "no address to connect to")
        })?;
        let local: SocketAddr = if peer.is_ipv4() {
            "0.0.0.0:0"
        } else {
            "[::]:0"
        }
        .parse()
        .expect("literal");
        let sock = bind_socket(local, &cfg)?;
        let hub = Arc::new(Hub::default());
        let mut driver = Driver::new(cfg.listener(false), Arc::clone(&hub), false);
        let id = driver.connect(Instant::now(), peer);
        spawn(driver, sock)?;
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

impl futures_io::AsyncRead for KcpStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        self.hub.poll_read(self.id, cx, buf)
    }
}

impl futures_io::AsyncWrite for KcpStream {
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
    /// KCP has no FIN: close waits until everything is acknowledged.
    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
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

/// Marks every stream gone when the loop ends, however it ends (error, finish or panic), so
/// no application task waits forever.
struct ShutDownOnExit(Arc<Hub>);

impl Drop for ShutDownOnExit {
    fn drop(&mut self) {
        self.0.lock().shut_down();
    }
}

/// What woke the loop.
enum Wake {
    Readable(io::Result<()>),
    Writable(io::Result<()>),
    Hub,
    Timer,
}

/// The socket loop (same shape as the tokio adapter's task).
async fn run(mut driver: Driver, sock: Async<UdpSocket>) {
    let _exit = ShutDownOnExit(Arc::clone(&driver.hub));
    if let Err(e) = run_loop(&mut driver, &sock).await {
        tracing::warn!("KCP endpoint stopped: {e}");
    }
}

async fn run_loop(driver: &mut Driver, sock: &Async<UdpSocket>) -> io::Result<()> {
    let hub = Arc::clone(&driver.hub);
    // One timer, re-armed only when the core's deadline moves.
    let mut timer = Timer::never();
    let mut armed: Option<Instant> = None;
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
        if !blocked && driver.due(Instant::now()) {
            // Due again at once: read what came in (a loop that never waits never hears
            // about readability), then give the executor a turn.
            driver.recv_pending(sock.get_ref(), Instant::now())?;
            future::yield_now().await;
            continue;
        }
        let deadline = driver.deadline();
        if deadline != armed {
            timer = deadline.map_or_else(Timer::never, Timer::at);
            armed = deadline;
        }
        // Biased like the tokio `select!`: `or` polls its left side first.
        let readable = async { Wake::Readable(sock.readable().await) };
        let writable = async {
            if blocked {
                Wake::Writable(sock.writable().await)
            } else {
                future::pending().await
            }
        };
        let app = async {
            HubWake(&hub).await;
            Wake::Hub
        };
        let tick = async {
            (&mut timer).await;
            Wake::Timer
        };
        let woke = future::or(future::or(readable, writable), future::or(app, tick)).await;
        match woke {
            Wake::Readable(r) => {
                r?;
                // Reads until drained; `WouldBlock` is the normal end of a batch.
                match driver.recv(sock.get_ref(), Instant::now()) {
                    Err(e) if e.kind() != io::ErrorKind::WouldBlock => return Err(e),
                    _ => {}
                }
            }
            Wake::Writable(r) => {
                r?;
                match driver.transmit(sock.get_ref(), Instant::now()) {
                    Err(e) if e.kind() != io::ErrorKind::WouldBlock => return Err(e),
                    _ => {}
                }
            }
            Wake::Hub => {}
            // The timer is spent: arm a fresh one next round even if the deadline is equal.
            Wake::Timer => armed = None,
        }
    }
}
