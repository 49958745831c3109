//! One TCP connection carrying a byte-stream machine (`Machine + ByteStream`), for the
//! application's own [`mio::Poll`]: the TCP twin of [`crate::endpoint::Endpoint`], with no
//! task, hub or mutex. Register it with [`TcpEndpoint::INTEREST`], call
//! [`TcpEndpoint::process`] after every wake-up and after application calls, and sleep until
//! the next event or [`TcpEndpoint::next_deadline`]. The application reads and writes the
//! machine directly ([`TcpEndpoint::machine`]).
use std::io;
use std::time::Instant;

use mio::event::Source;
use mio::Interest;
use tether_core::driver::{ByteStream, Machine};

use crate::tcp_loop::{read_into, Output};

/// A connected TCP stream and the machine it carries.
#[derive(Debug)]
pub struct TcpEndpoint<M> {
    sock: mio::net::TcpStream,
    machine: M,
    out: Output,
    buf: Vec<u8>,
    /// The socket was full: the rest goes out on the next writable event.
    blocked: bool,
    /// The last read stopped at the fairness bound, not at `WouldBlock`.
    more_to_read: bool,
    peer_closed: bool,
    /// The `now` of the last `process`.
    now: Instant,
}

impl<M: Machine + ByteStream> TcpEndpoint<M> {
    /// Readable for input, writable to resume after the socket was full.
    pub const INTEREST: Interest = Interest::READABLE.add(Interest::WRITABLE);

    /// Wraps a connected stream (made non-blocking, Nagle off) carrying `machine`.
    pub fn new(sock: std::net::TcpStream, machine: M) -> io::Result<Self> {
        sock.set_nonblocking(true)?;
        sock.set_nodelay(true)?;
        Ok(TcpEndpoint {
            sock: mio::net::TcpStream::from_std(sock),
            machine,
            out: Output::default(),
            buf: vec![0; 64 * 1024],
            blocked: false,
            more_to_read: false,
            peer_closed: false,
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
        self.more_to_read = false;
        if !self.peer_closed {
            let (m, buf, closed) = (&mut self.machine, &mut self.buf, &mut self.peer_closed);
            match read_into(&self.sock, buf, m, now, closed) {
                Ok(()) => self.more_to_read = !self.peer_closed,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
        }
        loop {
            self.out.fill(&mut self.machine, now);
            self.blocked = self.out.write(&self.sock)?;
            if self.blocked || !self.machine.has_transmit() {
                return Ok(());
            }
        }
    }

    /// When to call [`TcpEndpoint::process`] without an event: at once (the last `now`)
    /// while input waits beyond the fairness bound or application calls left output, else
    /// the machine's deadline.
    pub fn next_deadline(&self) -> Option<Instant> {
        let output = !self.blocked && self.machine.has_transmit();
        if self.more_to_read || output {
            return Some(self.now);
        }
        self.machine.poll_timeout()
    }

    /// The machine, for the application's reads and writes ([`ByteStream`]) and events.
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
