//! One TCP connection carrying a machine, for the application's own [`mio::Poll`]: the TCP
//! twin of [`crate::endpoint::Endpoint`], with no task, hub or mutex. The machine is a
//! byte-stream one (`Machine + ByteStream`: goscon, a toy framing) or a multiplexer stack
//! (`Stack<StreamLink, U>`, a `Machine + Streams`: smux or the toy mux over TCP, whose
//! streams the application opens, accepts, reads, writes and finishes itself); either way a
//! [`Transport`] that hears of the peer's FIN and of a broken connection. Register it with
//! [`TcpEndpoint::INTEREST`], call [`TcpEndpoint::process`] after every wake-up and after
//! application calls, and sleep until the next event or [`TcpEndpoint::next_deadline`].
//! The application reads and writes the machine directly ([`TcpEndpoint::machine`]) and
//! drains its events.
//!
//! The socket is not read while [`Machine::wants_input`] is false (TCP's own window then
//! pushes back on the peer); a read of 0 bytes is [`Transport::handle_eof`]; a socket error
//! is [`Transport::handle_disconnect`] (and `process` returns it).
use std::io;
use std::time::Instant;

use mio::event::Source;
use mio::Interest;
use tether_core::driver::{Machine, Transport};

use crate::tcp_loop::{read_into, Output, ReadBuf};

/// A connected TCP stream and the machine it carries.
#[derive(Debug)]
pub struct TcpEndpoint<M> {
    sock: mio::net::TcpStream,
    machine: M,
    out: Output,
    buf: ReadBuf,
    /// The socket was full: the rest goes out on the next writable event.
    blocked: bool,
    /// The last read stopped at the fairness bound or at a full machine, not at
    /// `WouldBlock`.
    more_to_read: bool,
    peer_closed: bool,
    /// Shut the write side down once the output is written.
    shutdown_when_flushed: bool,
    /// The write side was shut down.
    write_shut: bool,
    /// The `now` of the last `process`.
    now: Instant,
}

impl<M: Machine + Transport> TcpEndpoint<M> {
    /// Readable for input, writable to resume after the socket was full.
    pub const INTEREST: Interest = Interest::READABLE.add(Interest::WRITABLE);

    /// Wraps a connected stream (made non-blocking, Nagle off) carrying `machine`.
    pub fn new(sock: std::net::TcpStream, machine: M) -> io::Result<Self> {
        sock.set_nonblocking(true)?;
        TcpEndpoint::from_mio(mio::net::TcpStream::from_std(sock), machine)
    }

    /// Wraps a connected mio stream (e.g. from `mio::net::TcpListener::accept`; Nagle
    /// off) carrying `machine`.
    pub fn from_mio(sock: mio::net::TcpStream, machine: M) -> io::Result<Self> {
        sock.set_nodelay(true)?;
        Ok(TcpEndpoint {
            sock,
            machine,
            out: Output::default(),
            buf: ReadBuf::default(),
            blocked: false,
            more_to_read: false,
            peer_closed: false,
            shutdown_when_flushed: false,
            write_shut: false,
            now: Instant::now(),
        })
    }

    /// Reads what arrived, fires due timers and writes the machine's output until the
    /// socket is full. Errors are the socket's (the connection is then unusable).
    pub fn process(&mut self, now: Instant) -> io::Result<()> {
        self.now = now;
        if self.machine.poll_timeout().is_some_and(|t| t <= now) {
            self.machine.handle_timeout(now);
        }
        if !self.peer_closed && self.machine.wants_input() {
            self.more_to_read = false;
            let (m, buf, closed) = (&mut self.machine, &mut self.buf, &mut self.peer_closed);
            match read_into(&self.sock, buf, m, now, closed) {
                Ok(()) if self.peer_closed => self.machine.handle_eof(now),
                // Stopped early (the bound, or the machine is full): mio is edge-triggered,
                // so no new event tells of what is left.
                Ok(()) => self.more_to_read = true,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(self.broken(now, e)),
            }
        }
        loop {
            self.out.fill(&mut self.machine, now);
            self.blocked = match self.out.write(&self.sock) {
                Ok(b) => b,
                Err(e) => return Err(self.broken(now, e)),
            };
            if self.blocked || !self.machine.has_transmit() {
                break;
            }
        }
        if self.shutdown_when_flushed && !self.write_shut && self.flushed() {
            self.write_shut = true;
            self.sock.shutdown(std::net::Shutdown::Write)?;
        }
        Ok(())
    }

    /// The socket failed: the machine loses its connection.
    fn broken(&mut self, now: Instant, e: io::Error) -> io::Error {
        self.machine.handle_disconnect(now);
        e
    }

    /// Shuts the socket's write side down once every byte the machine produced is written
    /// (the peer reads to the end, then its FIN): after the machine closed (its `Closed`
    /// event, e.g. after `Stack::close`), or when a `StreamLink` finished
    /// (`StreamLink::wants_shutdown`).
    pub fn shutdown_when_flushed(&mut self) {
        self.shutdown_when_flushed = true;
    }

    /// When to call [`TcpEndpoint::process`] without an event: at once (the last `now`)
    /// while input waits that the machine takes now (left beyond the fairness bound, or
    /// while it was full) or application calls left output, else the machine's deadline.
    pub fn next_deadline(&self) -> Option<Instant> {
        let output = !self.blocked && self.machine.has_transmit();
        let input = self.more_to_read && !self.peer_closed && self.machine.wants_input();
        if input || output {
            return Some(self.now);
        }
        self.machine.poll_timeout()
    }

    /// The machine, for the application's reads and writes
    /// ([`ByteStream`](tether_core::driver::ByteStream) or
    /// [`Streams`](tether_core::driver::Streams)) and events.
    pub fn machine(&mut self) -> &mut M {
        &mut self.machine
    }

    /// Whether the peer closed its side (everything it sent has been handed to the machine).
    pub fn peer_closed(&self) -> bool {
        self.peer_closed
    }

    /// Whether every byte the machine produced has been written to the socket.
    pub fn flushed(&self) -> bool {
        self.out.is_empty() && !self.machine.has_transmit()
    }
}

impl<M> Source for TcpEndpoint<M> {
    delegate_source!(sock);
}
