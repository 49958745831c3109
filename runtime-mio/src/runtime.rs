//! The runtime trait the shared socket loops ([`crate::socket_loop`] for UDP,
//! [`crate::tcp_loop`] for TCP) are written against, as quinn's `Runtime`/`AsyncUdpSocket`:
//! readiness of a socket, one sleep-until timer, a yield and a spawn. `tether-runtime-tokio`
//! and `tether-runtime-smol` implement it over `tokio::io::unix::AsyncFd` and
//! `async_io::Async`; nothing else differs between them.
use std::future::Future;
use std::io;
use std::net::{TcpStream, UdpSocket};
use std::task::{Context, Poll};
use std::time::Instant;

/// One non-blocking socket `S` (a `UdpSocket` or a `TcpStream`) registered with a runtime's
/// reactor.
pub trait SocketIo<S>: Send + Sync + 'static {
    /// The socket itself (non-blocking), for the batched calls in [`crate::udp`] or plain
    /// reads and writes.
    fn socket(&self) -> &S;

    /// Waits until the socket is readable, then runs `io` on it once. When `io` returns
    /// `WouldBlock` (the socket is drained) that is the normal end of a batch: the runtime
    /// forgets the readiness it had cached and answers `Ok`. Other errors are returned.
    fn poll_read_with(
        &self,
        cx: &mut Context<'_>,
        io: &mut dyn FnMut(&S) -> io::Result<()>,
    ) -> Poll<io::Result<()>>;

    /// [`SocketIo::poll_read_with`] for writability (`io` stops at a full socket with
    /// `WouldBlock`).
    fn poll_write_with(
        &self,
        cx: &mut Context<'_>,
        io: &mut dyn FnMut(&S) -> io::Result<()>,
    ) -> Poll<io::Result<()>>;
}

/// What the socket loops need from an async runtime. Implemented by a unit type per runtime.
pub trait Runtime: Send + Sync + 'static {
    /// A UDP socket registered with this runtime's reactor.
    type Socket: SocketIo<UdpSocket>;
    /// A TCP stream registered with this runtime's reactor.
    type Tcp: SocketIo<TcpStream>;
    /// A one-shot timer that can be re-armed.
    type Timer: Send + Unpin + 'static;

    /// Registers a bound, non-blocking socket with the reactor (called from the task or
    /// thread that will run the loop's runtime, e.g. inside a tokio runtime).
    fn register(sock: UdpSocket) -> io::Result<Self::Socket>;
    /// Registers a connected, non-blocking TCP stream with the reactor.
    fn register_tcp(sock: TcpStream) -> io::Result<Self::Tcp>;
    /// A timer that fires at `at`.
    fn timer(at: Instant) -> Self::Timer;
    /// Re-arms `timer` to fire at `at` (also after it fired).
    fn reset(timer: &mut Self::Timer, at: Instant);
    /// `Ready` once the timer's instant has passed.
    fn poll_timer(timer: &mut Self::Timer, cx: &mut Context<'_>) -> Poll<()>;
    /// Gives other tasks and the reactor a turn before the loop goes on.
    fn yield_now() -> impl Future<Output = ()> + Send;
    /// Runs a socket loop in the background until it returns.
    fn spawn(name: &str, fut: impl Future<Output = ()> + Send + 'static) -> io::Result<()>;
}
