//! smol / async-std adapter for tether-core: kcp-go-compatible KCP sessions as
//! `futures_io::AsyncRead + AsyncWrite` streams, built on `async-io` only.
//!
//! One socket loop per UDP socket owns the core [`Listener`](tether_core::session::Listener);
//! it reads until `WouldBlock` with one `now` per batch, drains datagrams into `sendmmsg`
//! batches, waits for writability instead of queueing without bound, and arms a single
//! [`async_io::Timer`] at the core's deadline (none at all when every session is idle).
//! Streams talk to it through a hub of byte buffers; no lock is held around protocol
//! state. The loop and the handles are the shared runtime base's
//! ([`tether_runtime_mio::socket_loop`], [`tether_runtime_mio::handle`]); this crate is the
//! async-io glue.
//!
//! # Where the socket loop runs
//!
//! Each endpoint ([`KcpListener::bind`] or [`KcpStream::connect`]) starts one OS thread named
//! `tether-kcp` that runs the loop under [`async_io::block_on`] (a listener with
//! [`Config::reuseport`] `n` starts `n`). Readiness and timers come from async-io's global
//! reactor, the same one smol and async-std use, so the loop needs no executor at all: the
//! crate works unchanged under smol, async-std, `futures::executor` or any other executor,
//! never touches an executor's global, and keeps working if the application's executor is
//! shut down. A dedicated thread also means the protocol work never competes with
//! application tasks for executor threads (when it is idle, `async_io::block_on` lets that
//! thread drive the reactor itself, so no extra hop is paid). The thread exits once every
//! handle is dropped and every session has been closed, exactly when the tokio adapter's
//! task would.
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
//! the calling task (as on every tether runtime), so pass a `SocketAddr` (or resolve first,
//! e.g. with `async-net`) where that matters. Deadlines are the caller's: race any call
//! against an [`async_io::Timer`], e.g. with `futures_lite::future::or`.
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
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Instant;

use async_io::{Async, Timer};
use tether_runtime_mio::runtime::{Runtime, SocketIo};

pub use tether_runtime_mio::config::Config;
/// The owned chunk type of `KcpStream::read_chunk`/`write_chunk` (the `bytes` crate's).
pub use tether_runtime_mio::core::driver::Bytes;
pub use tether_runtime_mio::driver::DriverStats;

tether_runtime_mio::kcp_stream_types!(Smol);

impl futures_io::AsyncRead for KcpStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        self.0.poll_read(cx, buf)
    }
}

impl futures_io::AsyncWrite for KcpStream {
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
    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.0.poll_shutdown(cx)
    }
}

/// async-io as the socket loop's [`Runtime`]: `Async` readiness, `Timer`, and one OS thread
/// per socket loop under [`async_io::block_on`] (see the crate docs).
#[derive(Debug, Clone, Copy)]
pub struct Smol;

impl Runtime for Smol {
    type Socket = SmolIo<UdpSocket>;
    type Tcp = SmolIo<TcpStream>;
    type TcpListener = SmolIo<TcpListener>;
    type Timer = Timer;

    fn register(sock: UdpSocket) -> io::Result<Self::Socket> {
        Async::new(sock).map(SmolIo)
    }
    fn register_tcp(sock: TcpStream) -> io::Result<Self::Tcp> {
        Async::new(sock).map(SmolIo)
    }
    fn register_tcp_listener(sock: TcpListener) -> io::Result<Self::TcpListener> {
        Async::new(sock).map(SmolIo)
    }
    fn timer(at: Instant) -> Timer {
        Timer::at(at)
    }
    fn reset(timer: &mut Timer, at: Instant) {
        timer.set_at(at);
    }
    fn poll_timer(timer: &mut Timer, cx: &mut Context<'_>) -> Poll<()> {
        Pin::new(timer).poll(cx).map(drop)
    }
    fn yield_now() -> impl Future<Output = ()> + Send {
        futures_lite::future::yield_now()
    }
    fn spawn(name: &str, fut: impl Future<Output = ()> + Send + 'static) -> io::Result<()> {
        std::thread::Builder::new()
            .name(name.into())
            .spawn(move || async_io::block_on(fut))
            .map(drop)
    }
}

/// A socket (`UdpSocket` or `TcpStream`) registered with async-io's reactor.
#[derive(Debug)]
pub struct SmolIo<S>(Async<S>);

/// Runs `io` on `sock` once the readiness poll is ready; `WouldBlock` (the socket is drained
/// or full) ends a batch normally, and async-io keeps no readiness to clear.
fn once_ready<S>(
    ready: Poll<io::Result<()>>,
    sock: &S,
    io: &mut dyn FnMut(&S) -> io::Result<()>,
) -> Poll<io::Result<()>> {
    ready!(ready)?;
    Poll::Ready(match io(sock) {
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(()),
        r => r,
    })
}

impl<S: Send + Sync + 'static> SocketIo<S> for SmolIo<S> {
    fn socket(&self) -> &S {
        self.0.get_ref()
    }
    fn poll_read_with(
        &self,
        cx: &mut Context<'_>,
        io: &mut dyn FnMut(&S) -> io::Result<()>,
    ) -> Poll<io::Result<()>> {
        once_ready(self.0.poll_readable(cx), self.0.get_ref(), io)
    }
    fn poll_write_with(
        &self,
        cx: &mut Context<'_>,
        io: &mut dyn FnMut(&S) -> io::Result<()>,
    ) -> Poll<io::Result<()>> {
        once_ready(self.0.poll_writable(cx), self.0.get_ref(), io)
    }
}
