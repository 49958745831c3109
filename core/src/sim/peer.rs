//! The peers the transfer harness drives: [`StreamPeer`] (a machine with [`Streams`]),
//! [`Sole`] (a single-stream machine seen as [`StreamId::SOLE`]) and [`Tap`] (hashes every
//! datagram a machine emits, the determinism fingerprint).
use std::time::Instant;

use sha2::{Digest, Sha256};

use crate::driver::{ByteStream, Machine, StreamError, StreamId, Streams, Transmit, Transport};
use crate::kcp::{Kcp, KcpStats};
use crate::session::Session;
use crate::stack::{Stack, StreamLayer};

/// Wraps a machine and hashes every datagram it emits (the determinism fingerprint).
pub struct Tap<M> {
    /// The wrapped machine.
    pub inner: M,
    hash: Sha256,
}

impl<M> Tap<M> {
    /// Wraps `inner`.
    pub fn new(inner: M) -> Self {
        Tap {
            inner,
            hash: Sha256::new(),
        }
    }
    /// SHA-256 over every datagram emitted so far.
    pub fn digest(&self) -> [u8; 32] {
        self.hash.clone().finalize().into()
    }
}

impl<M: Machine> Machine for Tap<M> {
    type Event = M::Event;
    type InputError = M::InputError;
    fn handle_input(&mut self, now: Instant, data: &[u8]) -> Result<(), M::InputError> {
        self.inner.handle_input(now, data)
    }
    fn poll_transmit(&mut self, now: Instant, buf: &mut Vec<u8>) -> Option<Transmit> {
        let start = buf.len();
        let t = self.inner.poll_transmit(now, buf)?;
        self.hash.update((t.len as u32).to_le_bytes());
        self.hash.update(&buf[start..]);
        Some(t)
    }
    fn has_transmit(&self) -> bool {
        self.inner.has_transmit()
    }
    fn poll_timeout(&self) -> Option<Instant> {
        self.inner.poll_timeout()
    }
    fn handle_timeout(&mut self, now: Instant) {
        self.inner.handle_timeout(now)
    }
    fn poll_event(&mut self) -> Option<M::Event> {
        self.inner.poll_event()
    }
    fn wants_input(&self) -> bool {
        self.inner.wants_input()
    }
}

/// What the harness drives: a machine whose application side is [`Streams`]. A
/// single-stream machine takes part through [`Sole`].
pub trait StreamPeer: Machine + Streams {
    /// The KCP counters, for peers that run KCP (the optional hook behind
    /// [`TransferReport::sender`](super::transfer::TransferReport::sender)); `None` by default.
    fn kcp_stats(&self) -> Option<KcpStats> {
        None
    }
}

/// A single-stream machine ([`ByteStream`]) seen through [`Streams`]: its one stream is
/// [`StreamId::SOLE`], opened by either side and accepted once by the other.
pub struct Sole<M> {
    /// The wrapped machine.
    pub inner: M,
    /// Whether the stream was opened or accepted already.
    taken: bool,
}

impl<M> Sole<M> {
    /// Wraps `inner`.
    pub fn new(inner: M) -> Self {
        Sole {
            inner,
            taken: false,
        }
    }

    /// `Ok` for the one stream, `Unknown` for any other id.
    fn check(id: StreamId) -> Result<(), StreamError> {
        if id == StreamId::SOLE {
            Ok(())
        } else {
            Err(StreamError::Unknown(id))
        }
    }
}

impl<M: Machine> Machine for Sole<M> {
    type Event = M::Event;
    type InputError = M::InputError;
    fn handle_input(&mut self, now: Instant, data: &[u8]) -> Result<(), M::InputError> {
        self.inner.handle_input(now, data)
    }
    fn poll_transmit(&mut self, now: Instant, buf: &mut Vec<u8>) -> Option<Transmit> {
        self.inner.poll_transmit(now, buf)
    }
    fn has_transmit(&self) -> bool {
        self.inner.has_transmit()
    }
    fn poll_timeout(&self) -> Option<Instant> {
        self.inner.poll_timeout()
    }
    fn handle_timeout(&mut self, now: Instant) {
        self.inner.handle_timeout(now)
    }
    fn poll_event(&mut self) -> Option<M::Event> {
        self.inner.poll_event()
    }
    fn wants_input(&self) -> bool {
        self.inner.wants_input()
    }
}

impl<M: ByteStream> Streams for Sole<M> {
    fn open_stream(&mut self) -> Result<StreamId, StreamError> {
        // The one stream exists as long as the connection: opening it again is the same one.
        self.taken = true;
        Ok(StreamId::SOLE)
    }
    fn accept_stream(&mut self) -> Option<StreamId> {
        (!std::mem::replace(&mut self.taken, true)).then_some(StreamId::SOLE)
    }
    fn write(&mut self, id: StreamId, data: &[u8]) -> Result<usize, StreamError> {
        Self::check(id)?;
        self.inner.write(data)
    }
    fn read(&mut self, id: StreamId, buf: &mut [u8]) -> Result<usize, StreamError> {
        Self::check(id)?;
        self.inner.read(buf)
    }
    fn finish(&mut self, id: StreamId) -> Result<(), StreamError> {
        Self::check(id)?;
        self.inner.finish()
    }
    fn close_stream(&mut self, _id: StreamId) {
        // The stream is the connection's: it ends when the machine closes.
    }
    fn all_acked(&self, id: StreamId) -> bool {
        id == StreamId::SOLE && self.inner.all_acked()
    }
}

impl<M: Transport> Transport for Sole<M> {
    fn handle_disconnect(&mut self, now: Instant) {
        self.inner.handle_disconnect(now)
    }
    fn handle_reconnect(&mut self, now: Instant) {
        self.inner.handle_reconnect(now)
    }
    fn handle_eof(&mut self, now: Instant) {
        self.inner.handle_eof(now)
    }
}

impl StreamPeer for Sole<Kcp> {
    fn kcp_stats(&self) -> Option<KcpStats> {
        Some(self.inner.stats())
    }
}

impl StreamPeer for Sole<Session> {
    fn kcp_stats(&self) -> Option<KcpStats> {
        Some(self.inner.kcp().stats())
    }
}

/// A composed stack over a kcp-go session (e.g. `Stack<Session, ToyMux>`, later smux): its
/// streams run through the same harness as a bare session's, with the session's counters.
impl<U: StreamLayer> StreamPeer for Stack<Session, U> {
    fn kcp_stats(&self) -> Option<KcpStats> {
        Some(self.lower().kcp().stats())
    }
}

/// A composed stack over a byte transport (e.g. smux over TCP, `Stack<StreamLink, U>`,
/// driven over [`Pipe`](super::Pipe)s).
impl<U: StreamLayer> StreamPeer for Stack<crate::stream_link::StreamLink, U> {}

impl<M: Streams> Streams for Tap<M> {
    fn open_stream(&mut self) -> Result<StreamId, StreamError> {
        self.inner.open_stream()
    }
    fn accept_stream(&mut self) -> Option<StreamId> {
        self.inner.accept_stream()
    }
    fn write(&mut self, id: StreamId, data: &[u8]) -> Result<usize, StreamError> {
        self.inner.write(id, data)
    }
    fn read(&mut self, id: StreamId, buf: &mut [u8]) -> Result<usize, StreamError> {
        self.inner.read(id, buf)
    }
    fn finish(&mut self, id: StreamId) -> Result<(), StreamError> {
        self.inner.finish(id)
    }
    fn close_stream(&mut self, id: StreamId) {
        self.inner.close_stream(id)
    }
    fn all_acked(&self, id: StreamId) -> bool {
        self.inner.all_acked(id)
    }
}

impl<M: StreamPeer> StreamPeer for Tap<M> {
    fn kcp_stats(&self) -> Option<KcpStats> {
        self.inner.kcp_stats()
    }
}

impl<M: Transport> Transport for Tap<M> {
    fn handle_disconnect(&mut self, now: Instant) {
        self.inner.handle_disconnect(now)
    }
    fn handle_reconnect(&mut self, now: Instant) {
        self.inner.handle_reconnect(now)
    }
    fn handle_eof(&mut self, now: Instant) {
        self.inner.handle_eof(now)
    }
}
