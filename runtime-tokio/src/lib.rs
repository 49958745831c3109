//! tokio adapter for tether-core: kcp-go-compatible KCP sessions as
//! `tokio::io::AsyncRead + AsyncWrite` streams.
//!
//! One task per UDP socket owns the core [`Listener`](tether_core::session::Listener); it reads
//! until `WouldBlock` with one `now` per batch, drains datagrams into `sendmmsg` batches,
//! waits for writability instead of queueing without bound, and arms a single timer at the
//! core's deadline (none at all when every session is idle). Streams talk to it through a
//! hub of byte buffers; no lock is held around protocol state. The loop and the handles are
//! the shared runtime base's ([`tether_runtime_mio::socket_loop`],
//! [`tether_runtime_mio::handle`]); this crate is the tokio glue.
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
//! A multiplexer (`StreamLayer`, e.g. smux) runs over KCP with [`KcpConnection::connect_with`]
//! and [`KcpListener::bind_with`], and over TCP with [`TcpConnection::connect_tcp`] and
//! [`TcpMuxListener::bind`] (a `Stack<StreamLink, U>` per connection): either way the
//! application opens and accepts [`KcpStream`]s on a connection handle, reads to `Ok(0)`
//! after the peer's half-close, and half-closes with `shutdown()`:
//!
//! ```no_run
//! # use tether_runtime_mio::handle::SendLayer;
//! # async fn demo<U: SendLayer>(client: U, server: fn() -> U) -> std::io::Result<()> {
//! use tether_core::stack::Stack;
//! use tether_core::stream_link::StreamLink;
//! use tether_runtime_tokio::{TcpConnection, TcpMuxListener};
//! use tokio::io::{AsyncReadExt, AsyncWriteExt};
//! let listener =
//!     TcpMuxListener::bind("127.0.0.1:0", move || Stack::new(StreamLink::default(), server()))
//!         .await?;
//! let conn =
//!     TcpConnection::connect_tcp(listener.local_addr(), Stack::new(StreamLink::default(), client))
//!         .await?;
//! let mut s = conn.open_stream().await?;
//! s.write_all(b"hello").await?;
//! s.shutdown().await?; // the peer reads "hello", then the end of the stream
//! let peer = listener.accept_connection().await?;
//! let mut got = Vec::new();
//! peer.accept_stream().await?.read_to_end(&mut got).await?;
//! # Ok(()) }
//! ```
//!
//! A listener with [`Config::reuseport`] `n` runs `n` tasks on its port; they use `n` cores
//! on a multi-threaded tokio runtime. Addresses are `std::net::ToSocketAddrs`: a host name
//! is resolved by a blocking lookup on the calling task (as on every tether runtime), so
//! pass a `SocketAddr` (or resolve first with `tokio::net::lookup_host`) where that matters.
//! Deadlines are tokio's: wrap any call in `tokio::time::timeout`.
//!
//! Besides `AsyncRead`/`AsyncWrite` (which copy each byte in and out of the stream's
//! buffers), a stream takes and gives owned chunks without copying them:
//! `stream.read_chunk(max).await` returns the next received [`Bytes`] (`None` at the end of
//! the stream) and `stream.write_chunk(bytes).await` queues a chunk whole once there is
//! room (the same methods on every tether runtime).
#![warn(missing_docs)]

use std::future::Future;
use std::io;
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsRawFd;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Instant;

use tether_runtime_mio::runtime::{Runtime, SocketIo};
use tokio::io::unix::{AsyncFd, AsyncFdReadyGuard};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

pub use tether_runtime_mio::config::Config;
/// The owned chunk type of `KcpStream::read_chunk`/`write_chunk` (the `bytes` crate's).
pub use tether_runtime_mio::core::driver::Bytes;
pub use tether_runtime_mio::driver::DriverStats;

tether_runtime_mio::kcp_stream_types!(Tokio);

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
        self.0.poll_write(cx, data)
    }
    /// Ready once every written byte has been acknowledged by the peer.
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.0.poll_flush(cx)
    }
    /// Half-closes the stream (the peer reads to the end, then EOF), ready once the
    /// protocol took the FIN; on a plain KCP session (no FIN) it waits until everything is
    /// acknowledged.
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.0.poll_shutdown(cx)
    }
}

/// Reads and writes through a shared reference (as `&std::net::TcpStream` does): the stream
/// is a handle to the socket task's buffers, so one task can read, write and call
/// `send_keepalive` at once.
impl AsyncRead for &KcpStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let n = ready!(self.0.poll_read(cx, buf.initialize_unfilled()))?;
        buf.advance(n);
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for &KcpStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.0.poll_write(cx, data)
    }
    /// Ready once every written byte has been acknowledged by the peer.
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.0.poll_flush(cx)
    }
    /// Half-closes the stream (the peer reads to the end, then EOF), ready once the
    /// protocol took the FIN; on a plain KCP session (no FIN) it waits until everything is
    /// acknowledged.
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.0.poll_shutdown(cx)
    }
}

/// tokio as the socket loop's [`Runtime`]: `AsyncFd` readiness, `Sleep`, `yield_now` and
/// `tokio::spawn` (so `bind`/`connect` must run inside a tokio runtime).
#[derive(Debug, Clone, Copy)]
pub struct Tokio;

impl Runtime for Tokio {
    type Socket = TokioIo<UdpSocket>;
    type Tcp = TokioIo<TcpStream>;
    type TcpListener = TokioIo<TcpListener>;
    type Timer = Pin<Box<tokio::time::Sleep>>;

    fn register(sock: UdpSocket) -> io::Result<Self::Socket> {
        register_fd(sock)
    }
    fn register_tcp(sock: TcpStream) -> io::Result<Self::Tcp> {
        register_fd(sock)
    }
    fn register_tcp_listener(sock: TcpListener) -> io::Result<Self::TcpListener> {
        register_fd(sock)
    }
    fn timer(at: Instant) -> Self::Timer {
        Box::pin(tokio::time::sleep_until(at.into()))
    }
    fn reset(timer: &mut Self::Timer, at: Instant) {
        timer.as_mut().reset(at.into());
    }
    fn poll_timer(timer: &mut Self::Timer, cx: &mut Context<'_>) -> Poll<()> {
        timer.as_mut().poll(cx)
    }
    fn yield_now() -> impl Future<Output = ()> + Send {
        tokio::task::yield_now()
    }
    fn spawn(_name: &str, fut: impl Future<Output = ()> + Send + 'static) -> io::Result<()> {
        tokio::spawn(fut);
        Ok(())
    }
}

/// Runs `io` once the readiness poll is ready; `try_io` clears tokio's cached readiness when
/// `io` reports `WouldBlock` (the socket is drained or full), which ends a batch normally.
fn once_ready<S: AsRawFd>(
    ready: Poll<io::Result<AsyncFdReadyGuard<'_, S>>>,
    io: &mut dyn FnMut(&S) -> io::Result<()>,
) -> Poll<io::Result<()>> {
    let mut guard = ready!(ready)?;
    Poll::Ready(guard.try_io(|s| io(s.get_ref())).unwrap_or(Ok(())))
}

/// A socket (`UdpSocket` or `TcpStream`) registered with tokio's reactor.
#[derive(Debug)]
pub struct TokioIo<S: AsRawFd>(AsyncFd<S>);

/// Registers `sock` with tokio's reactor.
fn register_fd<S: AsRawFd + OwnsFd>(sock: S) -> io::Result<TokioIo<S>> {
    // SAFETY: `S` is a std socket that owns its descriptor (`OwnsFd`): it stays open,
    // referring to the same socket, until the socket is dropped, which happens only when
    // the `AsyncFd` is dropped; `as_raw_fd` always returns that descriptor.
    unsafe { AsyncFd::register(sock) }
        .map(TokioIo)
        .map_err(|e| io::Error::other(e.to_string()))
}

/// The std sockets that own their descriptor (the safety condition of [`register_fd`]).
trait OwnsFd {}
impl OwnsFd for UdpSocket {}
impl OwnsFd for TcpStream {}
impl OwnsFd for TcpListener {}

impl<S: AsRawFd + Send + Sync + 'static> SocketIo<S> for TokioIo<S> {
    fn socket(&self) -> &S {
        self.0.get_ref()
    }
    fn poll_read_with(
        &self,
        cx: &mut Context<'_>,
        io: &mut dyn FnMut(&S) -> io::Result<()>,
    ) -> Poll<io::Result<()>> {
        once_ready(self.0.poll_read_ready(cx), io)
    }
    fn poll_write_with(
        &self,
        cx: &mut Context<'_>,
        io: &mut dyn FnMut(&S) -> io::Result<()>,
    ) -> Poll<io::Result<()>> {
        once_ready(self.0.poll_write_ready(cx), io)
    }
}
