//! The runtime trait the shared socket loops ([`crate::socket_loop`] for UDP,
//! [`crate::tcp_loop`] for TCP) are written against, as quinn's `Runtime`/`AsyncUdpSocket`:
//! readiness of a socket, one sleep-until timer, a yield and a spawn. `tether-runtime-tokio`
//! and `tether-runtime-smol` implement it over `tokio::io::unix::AsyncFd` and
//! `async_io::Async`; nothing else differs between them.
use std::future::Future;
use std::io;
use std::net::{TcpListener, TcpStream, UdpSocket};
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
    /// A TCP listener registered with this runtime's reactor (readable: a connection waits
    /// for `accept`).
    type TcpListener: SocketIo<TcpListener>;
    /// A one-shot timer that can be re-armed.
    type Timer: Send + Unpin + 'static;

    /// Registers a bound, non-blocking socket with the reactor (called from the task or
    /// thread that will run the loop's runtime, e.g. inside a tokio runtime).
    fn register(sock: UdpSocket) -> io::Result<Self::Socket>;
    /// Registers a connected, non-blocking TCP stream with the reactor.
    fn register_tcp(sock: TcpStream) -> io::Result<Self::Tcp>;
    /// Registers a bound, non-blocking TCP listener with the reactor.
    fn register_tcp_listener(sock: TcpListener) -> io::Result<Self::TcpListener>;
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

/// A socket loop's one timer: re-armed only when the deadline moves, and never polled once
/// spent (some runtimes' timers stay ready after firing, which would spin the loop).
pub struct Alarm<R: Runtime> {
    timer: Option<R::Timer>,
    /// The instant the timer is set for; `None` while it is spent or unused.
    armed: Option<Instant>,
}

impl<R: Runtime> Default for Alarm<R> {
    fn default() -> Self {
        Alarm {
            timer: None,
            armed: None,
        }
    }
}

impl<R: Runtime> Alarm<R> {
    /// Sets the alarm for `deadline` (`None`: no alarm).
    pub fn set(&mut self, deadline: Option<Instant>) {
        if deadline == self.armed {
            return;
        }
        if let Some(at) = deadline {
            match self.timer.as_mut() {
                Some(t) => R::reset(t, at),
                None => self.timer = Some(R::timer(at)),
            }
        }
        self.armed = deadline;
    }

    /// `Ready` once when the deadline passed; the alarm is then spent until the next `set`.
    pub fn poll(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let live = self.timer.as_mut().filter(|_| self.armed.is_some());
        match live.map(|t| R::poll_timer(t, cx)) {
            Some(Poll::Ready(())) => {
                self.armed = None;
                Poll::Ready(())
            }
            _ => Poll::Pending,
        }
    }
}
