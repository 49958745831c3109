//! The lower layer for a reliable, ordered byte transport (a TCP connection, the simulator's
//! [`Pipe`](crate::sim::Pipe)): what a [`Stack`](crate::stack::Stack) stands on when its
//! multiplexer (smux) or resume protocol (goscon) runs over TCP instead of a KCP session.
//!
//! A [`StreamLink`] is a [`Machine`] whose input is a chunk of the received byte stream and
//! whose output is a chunk of bytes to send, and a [`ByteStream`] for the layer above. It
//! holds two bounded buffers and nothing else:
//! - received bytes wait in the receive buffer until the upper layer reads them;
//!   [`Machine::wants_input`] turns false once it holds [`StreamLinkConfig::recv_buffer`]
//!   bytes, and the driver stops reading its socket (TCP's own window is then the
//!   back-pressure on the peer). Input beyond twice that bound (a driver that ignored
//!   `wants_input`) is refused and ends the connection: the byte stream has a hole.
//! - bytes the upper layer wrote wait in the send buffer (at most
//!   [`StreamLinkConfig::send_buffer`]; a write beyond it is `Blocked` until
//!   `poll_transmit` drained some, then `Writable` follows). `poll_transmit` hands the whole
//!   buffer out at once, swapping it into an empty caller buffer instead of copying.
//!
//! "Acknowledged" means handed to the driver: TCP acknowledges in the kernel, out of sight.
//! The peer's end of stream ([`Transport::handle_eof`]) makes reads return
//! [`StreamError::Finished`] once the received bytes are drained; [`ByteStream::finish`]
//! asks the driver to shut its write side down once everything was handed out
//! ([`StreamLink::wants_shutdown`]). A broken connection ([`Transport::handle_disconnect`])
//! or a local close ends the link with one [`StreamEvent::Closed`].
use std::collections::VecDeque;
use std::time::Instant;

use crate::driver::{ByteStream, Machine, StreamError, StreamEvent, StreamId, Transmit, Transport};
use crate::stack::LowerLayer;

/// Buffer bounds of a [`StreamLink`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamLinkConfig {
    /// Received bytes held for the upper layer before the driver stops reading (1 MiB).
    pub recv_buffer: usize,
    /// Bytes the upper layer may queue before writes block (1 MiB).
    pub send_buffer: usize,
}

impl Default for StreamLinkConfig {
    fn default() -> Self {
        StreamLinkConfig {
            recv_buffer: 1 << 20,
            send_buffer: 1 << 20,
        }
    }
}

/// Why a [`StreamLink`] closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkCloseReason {
    /// Closed on this side (the application, or the layer above).
    Local,
    /// The transport broke (a reset, an error, a simulated disconnect).
    Disconnected,
    /// The driver pushed input past twice the receive bound: bytes were lost.
    Overrun,
}

/// Why one input chunk was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LinkInputError {
    /// The link is closed: the chunk was dropped.
    #[error("input after the link closed was dropped: stop reading once Closed is reported")]
    Closed,
    /// The receive buffer is past twice its bound: the link closed.
    #[error(
        "input overran the receive buffer: drivers must stop reading while wants_input() is false"
    )]
    Overrun,
}

/// A reliable byte transport as a lower layer (see the module docs).
///
/// ```
/// use std::time::Instant;
/// use tether_core::driver::{ByteStream, Machine, StreamError, Transport};
/// use tether_core::stream_link::{StreamLink, StreamLinkConfig};
///
/// let now = Instant::now(); // the caller owns the clock
/// let (mut a, mut b) = (StreamLink::new(StreamLinkConfig::default()), StreamLink::default());
/// a.write(b"hello").unwrap();
/// let mut wire = Vec::new();
/// while a.has_transmit() {
///     a.poll_transmit(now, &mut wire); // a TCP loop would write this to its socket
/// }
/// b.handle_input(now, &wire).unwrap();
/// b.handle_eof(now); // the peer shut its write side down
/// let mut got = [0u8; 8];
/// assert_eq!(b.read(&mut got), Ok(5));
/// assert_eq!(b.read(&mut got), Err(StreamError::Finished));
/// ```
#[derive(Debug, Default)]
pub struct StreamLink {
    config: StreamLinkConfig,
    /// Received bytes; `rx[rx_at..]` are unread.
    rx: Vec<u8>,
    rx_at: usize,
    /// Bytes to send.
    tx: Vec<u8>,
    events: VecDeque<StreamEvent<LinkCloseReason>>,
    /// A write was refused: report `Writable` once `tx` drained.
    want_writable: bool,
    /// Bytes were written since the last `Acknowledged`.
    unacked: bool,
    /// `Readable` was reported and not consumed by a read yet.
    readable_signalled: bool,
    /// The peer finished its side.
    eof: bool,
    /// This side finished (shut the write side down once `tx` is out).
    finished: bool,
    /// `Closed` was reported.
    closed: bool,
}

impl StreamLink {
    /// A link with the given buffer bounds.
    pub fn new(config: StreamLinkConfig) -> Self {
        StreamLink {
            config,
            ..StreamLink::default()
        }
    }

    /// The buffer bounds.
    pub fn config(&self) -> &StreamLinkConfig {
        &self.config
    }

    /// Received bytes not read by the upper layer yet.
    pub fn unread(&self) -> usize {
        self.rx.len() - self.rx_at
    }

    /// Whether the peer finished its side (end of stream once the received bytes are read).
    pub fn peer_finished(&self) -> bool {
        self.eof
    }

    /// Whether the driver should shut its socket's write side down now: this side finished
    /// and every byte was handed out.
    pub fn wants_shutdown(&self) -> bool {
        self.finished && self.tx.is_empty()
    }

    /// Whether the link closed (its `Closed` event was queued).
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// Queues the one `Closed` event.
    fn close_with(&mut self, why: LinkCloseReason) {
        if !self.closed {
            self.closed = true;
            self.events.push_back(StreamEvent::Closed(why));
        }
    }

    fn signal_readable(&mut self) {
        if !self.readable_signalled {
            self.readable_signalled = true;
            self.events.push_back(StreamEvent::Readable(StreamId::SOLE));
        }
    }

    /// Drops read bytes from the front once they are the larger part of the buffer (one
    /// `memmove` per half buffer read, not per read).
    fn compact(&mut self) {
        if self.rx_at == self.rx.len() {
            self.rx.clear();
            self.rx_at = 0;
        } else if self.rx_at > self.rx.len() / 2 {
            self.rx.drain(..self.rx_at);
            self.rx_at = 0;
        }
    }
}

impl Machine for StreamLink {
    type Event = StreamEvent<LinkCloseReason>;
    type InputError = LinkInputError;

    fn handle_input(&mut self, _now: Instant, data: &[u8]) -> Result<(), LinkInputError> {
        if self.closed {
            return Err(LinkInputError::Closed);
        }
        if self.unread() + data.len() > self.config.recv_buffer.saturating_mul(2) {
            self.close_with(LinkCloseReason::Overrun);
            return Err(LinkInputError::Overrun);
        }
        if !data.is_empty() {
            self.rx.extend_from_slice(data);
            self.signal_readable();
        }
        Ok(())
    }

    fn poll_transmit(&mut self, _now: Instant, buf: &mut Vec<u8>) -> Option<Transmit> {
        if self.tx.is_empty() {
            return None;
        }
        let len = self.tx.len();
        if buf.is_empty() {
            std::mem::swap(buf, &mut self.tx);
        } else {
            buf.append(&mut self.tx);
        }
        if std::mem::take(&mut self.want_writable) && !self.closed && !self.finished {
            self.events.push_back(StreamEvent::Writable(StreamId::SOLE));
        }
        if std::mem::take(&mut self.unacked) {
            self.events
                .push_back(StreamEvent::Acknowledged(StreamId::SOLE));
        }
        Some(Transmit { len })
    }

    fn has_transmit(&self) -> bool {
        !self.tx.is_empty()
    }

    fn poll_timeout(&self) -> Option<Instant> {
        None
    }

    fn handle_timeout(&mut self, _now: Instant) {}

    fn poll_event(&mut self) -> Option<Self::Event> {
        self.events.pop_front()
    }

    fn wants_input(&self) -> bool {
        !self.closed && !self.eof && self.unread() < self.config.recv_buffer
    }
}

impl ByteStream for StreamLink {
    fn write(&mut self, data: &[u8]) -> Result<usize, StreamError> {
        if self.closed || self.finished {
            return Err(StreamError::Closed);
        }
        let room = self.config.send_buffer.saturating_sub(self.tx.len());
        let n = room.min(data.len());
        if n == 0 && !data.is_empty() {
            self.want_writable = true;
            return Err(StreamError::Blocked);
        }
        self.tx.extend_from_slice(data.get(..n).unwrap_or_default());
        self.unacked |= n > 0;
        Ok(n)
    }

    fn read(&mut self, buf: &mut [u8]) -> Result<usize, StreamError> {
        let unread = self.rx.get(self.rx_at..).unwrap_or_default();
        if unread.is_empty() {
            self.readable_signalled = false;
            return Err(if self.eof {
                StreamError::Finished
            } else if self.closed {
                StreamError::Closed
            } else {
                StreamError::Blocked
            });
        }
        let n = unread.len().min(buf.len());
        if let (Some(dst), Some(src)) = (buf.get_mut(..n), unread.get(..n)) {
            dst.copy_from_slice(src);
        }
        self.rx_at += n;
        self.compact();
        if self.unread() == 0 {
            self.readable_signalled = false;
        }
        Ok(n)
    }

    fn finish(&mut self) -> Result<(), StreamError> {
        if self.closed {
            return Err(StreamError::Closed);
        }
        self.finished = true;
        Ok(())
    }

    fn all_acked(&self) -> bool {
        self.tx.is_empty()
    }
}

impl Transport for StreamLink {
    fn handle_disconnect(&mut self, _now: Instant) {
        self.tx.clear();
        self.close_with(LinkCloseReason::Disconnected);
    }

    /// A link does not outlive its connection: a new connection needs a new link (a resume
    /// protocol above it carries its state across, not the link).
    fn handle_reconnect(&mut self, _now: Instant) {}

    fn handle_eof(&mut self, _now: Instant) {
        if !self.eof {
            self.eof = true;
            // The upper layer learns of the end through a read returning `Finished`.
            self.readable_signalled = false;
            self.signal_readable();
        }
    }
}

impl LowerLayer for StreamLink {
    type Reason = LinkCloseReason;

    fn stream_event(ev: &Self::Event) -> Option<StreamEvent<LinkCloseReason>> {
        Some(*ev)
    }

    fn is_dead_link(_ev: &Self::Event) -> bool {
        false // a TCP connection has no dead-link rule of its own: it breaks or it does not
    }

    /// Queues `Closed(Local)`; bytes already written are still handed out (the driver
    /// writes them, then closes the socket).
    fn close_connection(&mut self, _dead_link: bool) {
        self.close_with(LinkCloseReason::Local);
    }
}

#[cfg(test)]
#[path = "stream_link_tests.rs"]
mod tests;
