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
//!   buffer out at once.
//!
//! Both buffers are [`ChunkQueue`]s of owned chunks: a driver that reads its socket into
//! owned buffers hands them in with [`Machine::handle_input_bytes`] and the layer above
//! takes its payloads out as slices ([`ByteStream::read_chunk`]); payloads written as
//! [`ByteStream::write_frame_bytes`] go out as they are, gathered by
//! [`Machine::poll_transmit_bytes`] (a TCP loop's `writev`). Between the socket and the
//! layer above, a payload byte is then never copied.
//!
//! "Acknowledged" means handed to the driver: TCP acknowledges in the kernel, out of sight.
//! The peer's end of stream ([`Transport::handle_eof`]) makes reads return
//! [`StreamError::Finished`] once the received bytes are drained; [`ByteStream::finish`]
//! asks the driver to shut its write side down once everything was handed out
//! ([`StreamLink::wants_shutdown`]). A broken connection ([`Transport::handle_disconnect`])
//! or a local close ends the link with one [`StreamEvent::Closed`].
use std::collections::VecDeque;
use std::time::Instant;

use bytes::{Bytes, BytesMut};

use crate::chunks::ChunkQueue;
use crate::driver::{ByteStream, Machine, StreamError, StreamEvent, StreamId, Transmit, Transport};
use crate::stack::LowerLayer;

/// A slice handed out by [`ByteStream::read_chunk`] shorter than this is copied instead: a
/// slice keeps its whole socket read buffer (64 KiB in the TCP loops) alive, so a reader
/// that holds many short slices (a peer sending tiny frames to a stalled stream) would hold
/// many buffers for few counted bytes. With this bound a held slice pins at most 4 times
/// its length.
pub const SLICE_MIN: usize = 16 * 1024;

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
    /// Received bytes not read yet.
    rx: ChunkQueue,
    /// Bytes to send.
    tx: ChunkQueue,
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
        self.rx.len()
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

    /// Input checks: `Err` for input after the close or past twice the receive bound.
    fn admit(&mut self, len: usize) -> Result<(), LinkInputError> {
        if self.closed {
            return Err(LinkInputError::Closed);
        }
        if self.unread() + len > self.config.recv_buffer.saturating_mul(2) {
            self.close_with(LinkCloseReason::Overrun);
            return Err(LinkInputError::Overrun);
        }
        Ok(())
    }

    /// `Writable` and `Acknowledged` once the send buffer was handed out.
    fn handed_out(&mut self) {
        if std::mem::take(&mut self.want_writable) && !self.closed && !self.finished {
            self.events.push_back(StreamEvent::Writable(StreamId::SOLE));
        }
        if std::mem::take(&mut self.unacked) {
            self.events
                .push_back(StreamEvent::Acknowledged(StreamId::SOLE));
        }
    }

    /// Room in the send buffer: `Err(Closed)` after a close or finish, `Err(Blocked)` (and
    /// `Writable` promised) when full and `want` is not 0.
    fn send_room(&mut self, want: usize) -> Result<usize, StreamError> {
        if self.closed || self.finished {
            return Err(StreamError::Closed);
        }
        let room = self.config.send_buffer.saturating_sub(self.tx.len());
        if room == 0 && want > 0 {
            self.want_writable = true;
            return Err(StreamError::Blocked);
        }
        Ok(room.min(want))
    }

    /// What a read finds when nothing is buffered.
    fn empty_read(&mut self) -> StreamError {
        self.readable_signalled = false;
        if self.eof {
            StreamError::Finished
        } else if self.closed {
            StreamError::Closed
        } else {
            StreamError::Blocked
        }
    }
}

impl Machine for StreamLink {
    type Event = StreamEvent<LinkCloseReason>;
    type InputError = LinkInputError;

    fn handle_input(&mut self, _now: Instant, data: &[u8]) -> Result<(), LinkInputError> {
        self.admit(data.len())?;
        if !data.is_empty() {
            self.rx.extend_from_slice(data);
            self.signal_readable();
        }
        Ok(())
    }

    /// Keeps the chunk itself: the layer above reads slices of it.
    fn handle_input_bytes(&mut self, _now: Instant, data: Bytes) -> Result<(), LinkInputError> {
        self.admit(data.len())?;
        if !data.is_empty() {
            self.rx.push(data);
            self.signal_readable();
        }
        Ok(())
    }

    fn poll_transmit(&mut self, _now: Instant, buf: &mut Vec<u8>) -> Option<Transmit> {
        if self.tx.is_empty() {
            return None;
        }
        let len = self.tx.len();
        self.tx.drain_copy(buf);
        self.handed_out();
        Some(Transmit { len })
    }

    /// The queued chunks themselves, headers and payloads apart, for a gathered write.
    fn poll_transmit_bytes(&mut self, _now: Instant, out: &mut Vec<Bytes>) -> Option<Transmit> {
        if self.tx.is_empty() {
            return None;
        }
        let len = self.tx.len();
        self.tx.drain_into(out);
        self.handed_out();
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
        let n = self.send_room(data.len())?;
        self.tx.extend_from_slice(data.get(..n).unwrap_or_default());
        self.unacked |= n > 0;
        Ok(n)
    }

    fn read(&mut self, buf: &mut [u8]) -> Result<usize, StreamError> {
        if self.rx.is_empty() {
            return Err(self.empty_read());
        }
        let n = self.rx.read_into(buf);
        if self.rx.is_empty() {
            self.readable_signalled = false;
        }
        Ok(n)
    }

    /// A slice of the received chunks (a copy when shorter than [`SLICE_MIN`]).
    fn read_chunk(&mut self, max: usize, _room: &mut BytesMut) -> Result<Bytes, StreamError> {
        if self.rx.is_empty() {
            return Err(self.empty_read());
        }
        let n = max.min(self.rx.front().len());
        let chunk = if n < SLICE_MIN {
            let c = Bytes::copy_from_slice(self.rx.front().get(..n).unwrap_or_default());
            self.rx.consume(n);
            c
        } else {
            self.rx.pop_chunk(n).unwrap_or_default()
        };
        if self.rx.is_empty() {
            self.readable_signalled = false;
        }
        if chunk.is_empty() {
            return Err(StreamError::Blocked);
        }
        Ok(chunk)
    }

    /// The payload is queued as it is (as much of the frame as the send buffer has room
    /// for, as [`ByteStream::write_parts`]).
    fn write_frame_bytes(&mut self, head: &[u8], body: &[Bytes]) -> Result<usize, StreamError> {
        let total = head.len() + body.iter().map(Bytes::len).sum::<usize>();
        let n = self.send_room(total)?;
        let h = n.min(head.len());
        self.tx.extend_from_slice(head.get(..h).unwrap_or_default());
        let mut left = n - h;
        for b in body {
            if left == 0 {
                break;
            }
            let k = left.min(b.len());
            self.tx.push(if k == b.len() {
                b.clone()
            } else {
                b.slice(..k)
            });
            left -= k;
        }
        self.unacked |= n > 0;
        Ok(n)
    }

    fn write_chunk(&mut self, data: Bytes) -> Result<usize, StreamError> {
        self.write_frame_bytes(&[], &[data])
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
