//! A single-threaded KCP endpoint for the application's own [`mio::Poll`]: no task, no hub,
//! no mutex. The [`Endpoint`] owns a non-blocking UDP socket and the core
//! [`Listener`] (it is a [`UdpEndpoint`], which runs any other protocol's
//! [`DatagramEndpoint`] the same way); it is a [`mio::event::Source`], so the application registers it
//! with [`Endpoint::INTEREST`] and calls exactly one method per wake-up,
//! [`Endpoint::process`], then sleeps until the next event or [`Endpoint::next_deadline`].
//!
//! ```no_run
//! use std::time::Instant;
//! use mio::{Events, Poll, Token};
//! use tether_runtime_mio::config::Config;
//! use tether_runtime_mio::endpoint::Endpoint;
//! # fn main() -> std::io::Result<()> {
//! let mut poll = Poll::new()?;
//! let mut events = Events::with_capacity(64);
//! let mut ep = Endpoint::bind("127.0.0.1:0".parse().unwrap(), &Config::default(), true)?;
//! poll.registry().register(&mut ep, Token(0), Endpoint::INTEREST)?;
//! loop {
//!     let timeout = ep.next_deadline().map(|d| d.saturating_duration_since(Instant::now()));
//!     poll.poll(&mut events, timeout)?;
//!     ep.process(Instant::now())?;
//!     while let Some(ev) = ep.poll_event() {
//!         // accept(), read(), write(), close() as the events say.
//!         # let _ = ev;
//!     }
//! }
//! # }
//! ```
//!
//! Contract with the application:
//! * call [`Endpoint::process`] after every wake-up (any event on the endpoint's token, or
//!   the timeout), and after app calls if the loop sleeps with
//!   [`Endpoint::next_deadline`] (which turns zero when app calls left output to send);
//! * drain [`Endpoint::poll_event`] every wake-up: events queue until taken;
//! * take [`EndpointEvent::Incoming`] sessions with [`Endpoint::accept`] (a server), or
//!   they expire after the listener's accept timeout;
//! * read after [`KcpEvent::Readable`] until
//!   [`RecvError::WouldBlock`], write until [`WriteError::Blocked`] and
//!   resume after [`KcpEvent::Writable`]; a dead link closes the session by itself
//!   (`ListenerEvent::Conn(id, StreamEvent::Closed(CloseReason::DeadLink))`, the core's policy on every
//!   runtime); [`KcpEvent::Acknowledged`] says everything written was acknowledged, and
//!   [`Endpoint::close_when_acked`] closes a session once it is.
use std::fmt;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::time::Instant;

use mio::event::Source;
use mio::Interest;
use tether_core::driver::{DatagramEndpoint, EndpointEvent, StreamEvent};
use tether_core::kcp::{RecvError, WriteError};
use tether_core::session::snmp::Snmp;
use tether_core::session::{Listener, Session, SessionId};
use tether_core::stack::{Plain, Side, StreamLayer};

use crate::config::Config;
use crate::driver::{read_datagrams, Outbox};

#[cfg(doc)]
use tether_core::kcp::KcpEvent;

/// Why a session call failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionError<E> {
    /// The id names no live session: it was closed (locally, replaced by a new conversation
    /// from the same address, or expired), or never existed.
    Closed,
    /// The session refused the call ([`WriteError`] or [`RecvError`]).
    Kcp(E),
}

impl<E> From<E> for SessionError<E> {
    fn from(e: E) -> Self {
        SessionError::Kcp(e)
    }
}

impl<E: fmt::Display> fmt::Display for SessionError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SessionError::Closed => f.write_str("the KCP session is closed"),
            SessionError::Kcp(e) => e.fmt(f),
        }
    }
}

impl<E: fmt::Debug + fmt::Display> std::error::Error for SessionError<E> {}

/// Counters of the endpoint's I/O.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EndpointStats {
    /// Calls of [`Endpoint::process`].
    pub wakeups: u64,
    /// Datagrams received.
    pub datagrams_in: u64,
    /// Datagrams sent.
    pub datagrams_out: u64,
    /// Datagrams the kernel refused (not `WouldBlock`) and that were dropped; KCP
    /// retransmits them like any lost datagram.
    pub send_errors: u64,
    /// `recvmmsg`/`sendmmsg` calls.
    pub syscalls: u64,
    /// Times the socket was full and datagrams waited for a writable event.
    pub blocked: u64,
}

/// One UDP socket with its KCP sessions, driven by the application's `mio::Poll`. With an
/// upper layer `U` (a multiplexer, [`Endpoint::bind_with`]) each session is a
/// `Stack<Session, U>` whose streams the application drives through
/// [`Endpoint::conn_mut`] and `tether_core::driver::Streams`.
pub type Endpoint<U = Plain> = UdpEndpoint<Listener<U>>;

/// The interest to register a [`UdpEndpoint`] with: readable for datagrams, writable to
/// resume sending after the socket was full.
pub const INTEREST: Interest = Interest::READABLE.add(Interest::WRITABLE);

/// One UDP socket with any [`DatagramEndpoint`] (the KCP listener as [`Endpoint`], or
/// another protocol's, [`UdpEndpoint::from_endpoint`]), driven by the application's
/// `mio::Poll` with the runtimes' batched reads and writes: the same contract as
/// [`Endpoint`], the application's calls going to [`UdpEndpoint::conn_mut`].
pub struct UdpEndpoint<E> {
    /// The socket the endpoint reads and writes (batched system calls need a std socket).
    sock: UdpSocket,
    /// A second descriptor of the same socket, for registration with mio: readiness belongs
    /// to the socket, not to a descriptor (mio's `SourceFd` needs its `os-ext` feature).
    reg: mio::net::UdpSocket,
    listener: E,
    /// Datagrams taken from the listener and not yet sent, in order.
    outbox: Outbox,
    /// The socket said `WouldBlock`: the rest goes out on the next writable wake-up.
    blocked: bool,
    /// The last read stopped at the fairness bound, not at `WouldBlock`.
    more_to_read: bool,
    /// An app call since the last `process` may have produced output.
    app_dirty: bool,
    /// The `now` of the last `process` (or of `bind`).
    now: Instant,
    stats: EndpointStats,
}

impl<E: DatagramEndpoint> fmt::Debug for UdpEndpoint<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UdpEndpoint")
            .field("local", &self.sock.local_addr().ok())
            .field("empty", &self.listener.is_empty())
            .field("outbox_empty", &self.outbox.is_empty())
            .field("blocked", &self.blocked)
            .finish_non_exhaustive()
    }
}

impl Endpoint {
    /// The interest to register the endpoint with: readable for datagrams, writable to
    /// resume sending after the socket was full.
    pub const INTEREST: Interest = INTEREST;

    /// Binds a non-blocking UDP socket to `addr` with `cfg`'s socket buffers and DSCP. A
    /// `server` accepts sessions from unknown addresses; a client endpoint only talks to the
    /// addresses it [`connect`](Endpoint::connect)s to (kcp-go drops the rest).
    pub fn bind(addr: SocketAddr, cfg: &Config, server: bool) -> io::Result<Endpoint> {
        Endpoint::bind_with(addr, cfg, server, |_| Plain::default())
    }

    /// Wraps an already bound socket (made non-blocking here), e.g. one inherited or bound
    /// with special options.
    pub fn from_std(sock: UdpSocket, cfg: &Config, server: bool) -> io::Result<Endpoint> {
        Endpoint::from_std_with(sock, cfg, server, |_| Plain::default())
    }
}

impl<U: StreamLayer> Endpoint<U> {
    /// [`Endpoint::bind`] for sessions that each carry the upper layer `upper` makes.
    pub fn bind_with(
        addr: SocketAddr,
        cfg: &Config,
        server: bool,
        upper: impl Fn(Side) -> U + Send + Sync + 'static,
    ) -> io::Result<Self> {
        cfg.validate()?;
        let sock = UdpSocket::bind(addr)?;
        Endpoint::from_std_with(sock, cfg, server, upper)
    }

    /// [`Endpoint::from_std`] for sessions that each carry the upper layer `upper` makes.
    pub fn from_std_with(
        sock: UdpSocket,
        cfg: &Config,
        server: bool,
        upper: impl Fn(Side) -> U + Send + Sync + 'static,
    ) -> io::Result<Self> {
        cfg.validate()?;
        let listener = cfg.listener_with(server, upper);
        UdpEndpoint::from_endpoint(sock, cfg, listener)
    }

    /// The session an application call acts on (marking the endpoint for a `process` pass),
    /// or `Closed`.
    fn app_session<X>(&mut self, id: SessionId) -> Result<&mut Session, SessionError<X>> {
        self.app_dirty = true;
        self.listener.session_mut(id).ok_or(SessionError::Closed)
    }

    /// The core listener, for calls the endpoint does not wrap. Output produced through it
    /// goes out on the next [`process`](Endpoint::process), which
    /// [`next_deadline`](Endpoint::next_deadline) makes immediate.
    pub fn listener_mut(&mut self) -> &mut Listener<U> {
        self.app_dirty = true;
        &mut self.listener
    }
}

impl<E: DatagramEndpoint> UdpEndpoint<E> {
    /// Wraps a bound socket (made non-blocking here, with `cfg`'s buffers and DSCP) around
    /// `endpoint`, e.g. another protocol's: its connections are driven through
    /// [`UdpEndpoint::conn_mut`].
    pub fn from_endpoint(sock: UdpSocket, cfg: &Config, endpoint: E) -> io::Result<Self> {
        sock.set_nonblocking(true)?;
        cfg.configure_socket(&sock);
        let reg = mio::net::UdpSocket::from_std(sock.try_clone()?);
        Ok(UdpEndpoint {
            sock,
            reg,
            listener: endpoint,
            outbox: Outbox::default(),
            blocked: false,
            more_to_read: false,
            app_dirty: false,
            now: Instant::now(),
            stats: EndpointStats::default(),
        })
    }

    /// A connection's per-peer machine (for the KCP listener, a session's whole stack), for
    /// its streams (`tether_core::driver::Streams`: open, accept, write, read, close). Its
    /// output goes out on the next [`process`](UdpEndpoint::process).
    pub fn conn_mut(&mut self, id: E::ConnId) -> Option<&mut E::Conn> {
        self.app_dirty = true;
        self.listener.conn_mut(id)
    }

    /// The endpoint, read-only.
    pub fn endpoint(&self) -> &E {
        &self.listener
    }

    /// The endpoint, for calls this type does not wrap. Output produced through it goes out
    /// on the next [`process`](UdpEndpoint::process), which
    /// [`next_deadline`](UdpEndpoint::next_deadline) makes immediate.
    pub fn endpoint_mut(&mut self) -> &mut E {
        self.app_dirty = true;
        &mut self.listener
    }

    /// The one call per wake-up: reads datagrams until `WouldBlock` (or a fairness bound,
    /// after which [`next_deadline`](Endpoint::next_deadline) is immediate), fires due
    /// timers, and sends queued datagrams until the socket is full (the rest waits for the
    /// next writable wake-up, bounded). Call it on any event of the endpoint's token and
    /// when the poll timeout expires; spurious calls are cheap.
    ///
    /// `Err` is a receive failure of the socket other than `WouldBlock`, `Interrupted` or an
    /// ICMP-reported refusal; timers and sending still ran. A datagram the kernel refuses to
    /// send is dropped and counted in [`EndpointStats::send_errors`] instead.
    pub fn process(&mut self, now: Instant) -> io::Result<()> {
        self.now = now;
        self.stats.wakeups += 1;
        self.app_dirty = false;
        let r = self.recv(now);
        // Unconditional: cheap when nothing is due, and a "pending output" deadline must not
        // hide a due timer.
        self.listener.handle_timeout(now);
        self.transmit(now);
        r
    }

    /// When [`process`](Endpoint::process) must run next if no event comes first (`None`:
    /// only an event can make progress). In the past means "poll without sleeping": app
    /// calls left output, or reading stopped at the fairness bound.
    pub fn next_deadline(&self) -> Option<Instant> {
        if self.more_to_read {
            return Some(self.now);
        }
        let t = self.listener.poll_timeout();
        if self.blocked {
            // Output waits for the writable event; timers are pure timers (pending output is
            // the core's `has_transmit`), so they can be honoured exactly.
            return t;
        }
        if self.app_dirty || self.listener.has_transmit() {
            return Some(self.now);
        }
        t
    }

    fn recv(&mut self, now: Instant) -> io::Result<()> {
        let r = read_datagrams(&self.sock, &mut self.listener, now);
        self.stats.syscalls += r.syscalls;
        self.stats.datagrams_in += r.datagrams;
        match r.result {
            Ok(()) => {
                self.more_to_read = true;
                Ok(())
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                self.more_to_read = false;
                Ok(())
            }
            Err(e) => {
                self.more_to_read = false;
                Err(e)
            }
        }
    }

    /// Moves the listener's datagrams out and sends until the socket is full.
    fn transmit(&mut self, now: Instant) {
        let r = self.outbox.flush(&mut self.listener, &self.sock, now);
        self.stats.syscalls += r.syscalls;
        self.stats.datagrams_out += r.sent;
        self.stats.send_errors += r.errors;
        self.stats.blocked += u64::from(r.blocked);
        self.blocked = r.blocked;
    }

    /// Takes the oldest connection waiting for the application (after
    /// [`EndpointEvent::Incoming`]).
    pub fn accept(&mut self) -> Option<E::ConnId> {
        self.listener.accept()
    }

    /// Opens a session to `addr` (kcp-go `Dial`), already accepted. Nothing is sent until the
    /// first write: KCP has no handshake. An existing session to `addr` is replaced.
    pub fn connect(&mut self, now: Instant, addr: SocketAddr) -> E::ConnId {
        self.app_dirty = true;
        self.listener.connect(now, addr)
    }

    /// Closes a session: its last datagrams still go out on the next
    /// [`process`](Endpoint::process); nothing tells the peer (KCP has no FIN).
    pub fn close(&mut self, id: E::ConnId) {
        self.app_dirty = true;
        self.listener.close(id);
    }

    /// Closes a session once everything written on it is acknowledged, or after the core's
    /// `LINGER_TIMEOUT` (what the tokio and smol runtimes do when a stream is dropped).
    pub fn close_when_acked(&mut self, now: Instant, id: E::ConnId) {
        self.app_dirty = true;
        self.listener.close_when_acked(now, id);
    }

    /// The next event (new session, readable, writable, acknowledged, closed), oldest first.
    pub fn poll_event(&mut self) -> Option<EndpointEvent<E::ConnId, StreamEvent<E::Reason>>> {
        self.listener.poll_event()
    }

    /// The remote address of a live session.
    pub fn remote(&self, id: E::ConnId) -> Option<SocketAddr> {
        self.listener.remote(id)
    }

    /// The socket's bound address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.sock.local_addr()
    }

    /// The endpoint's I/O counters.
    pub fn stats(&self) -> EndpointStats {
        self.stats
    }
}

impl<U: StreamLayer> Endpoint<U> {
    /// Queues stream bytes: all of `data` or nothing. `Blocked` means the send window is
    /// full: retry after [`KcpEvent::Writable`]. The datagrams go out on the next
    /// [`process`](Endpoint::process).
    pub fn write(&mut self, id: SessionId, data: &[u8]) -> Result<usize, SessionError<WriteError>> {
        let s = self.app_session(id)?;
        Ok(s.write(data)?)
    }

    /// Queues `data` as one KCP message (message mode; ikcp's `ikcp_send`): a message-mode
    /// peer receives it whole. `TooLarge` beyond 255 segments; an ikcp peer reassembles at
    /// most 127 ([`crate::driver::MAX_MESSAGE_FRAGMENTS`]).
    pub fn write_message(
        &mut self,
        id: SessionId,
        data: &[u8],
    ) -> Result<usize, SessionError<WriteError>> {
        let s = self.app_session(id)?;
        Ok(s.write_message(data)?)
    }

    /// Reads one whole message (message mode): `BufferTooSmall` names the size needed.
    pub fn recv_message(
        &mut self,
        id: SessionId,
        buf: &mut [u8],
    ) -> Result<usize, SessionError<RecvError>> {
        let s = self.app_session(id)?;
        Ok(s.recv(buf)?)
    }

    /// Whether [`write`](Endpoint::write) would accept data now (false for closed sessions).
    pub fn can_write(&self, id: SessionId) -> bool {
        self.listener.session(id).is_some_and(|s| s.can_write())
    }

    /// Whether everything written to the session has been acknowledged (true for closed
    /// sessions: nothing more will be).
    pub fn all_acked(&self, id: SessionId) -> bool {
        self.listener
            .session(id)
            .is_none_or(|s| s.kcp().all_acked())
    }

    /// Reads stream bytes. `WouldBlock`: nothing yet, wait for [`KcpEvent::Readable`]
    /// (signalled again only after a read returned `WouldBlock`).
    pub fn read(
        &mut self,
        id: SessionId,
        buf: &mut [u8],
    ) -> Result<usize, SessionError<RecvError>> {
        let s = self.app_session(id)?;
        Ok(s.read(buf)?)
    }

    /// kcp-go's counters summed over every session, alive or closed.
    pub fn snmp(&self) -> Snmp {
        self.listener.snmp()
    }

    /// The core listener, read-only (sessions, listener drop counters).
    pub fn listener(&self) -> &Listener<U> {
        &self.listener
    }
}

impl<E: DatagramEndpoint> Source for UdpEndpoint<E> {
    delegate_source!(reg);
}
