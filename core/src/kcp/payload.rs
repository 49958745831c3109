//! A segment's payload: a pooled buffer of KCP's own, or a slice of a chunk the
//! application handed over ([`Kcp::write_chunk`](super::Kcp::write_chunk), issue 15 item 8).
use std::ops::Deref;

use bytes::{Buf, Bytes};

/// The bytes one segment carries. Received segments and copied writes own a buffer from
/// KCP's pool (it goes back there when the segment is done); chunk-backed segments share
/// the application's chunk, so queueing them copies nothing. Either way flush copies the
/// bytes once, into the datagram.
#[derive(Debug)]
pub(super) enum Payload {
    /// A buffer of KCP's pool.
    Owned(Vec<u8>),
    /// A slice of an application chunk.
    Shared(Bytes),
}

impl Default for Payload {
    fn default() -> Self {
        Payload::Owned(Vec::new())
    }
}

impl Deref for Payload {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            Payload::Owned(v) => v,
            Payload::Shared(b) => b,
        }
    }
}

impl Payload {
    /// Drops the first `n` bytes (a stream read that took part of the segment).
    pub(super) fn advance(&mut self, n: usize) {
        match self {
            Payload::Owned(v) => drop(v.drain(..n.min(v.len()))),
            Payload::Shared(b) => b.advance(n.min(b.len())),
        }
    }

    /// The bytes as a chunk of their own: an owned buffer becomes the chunk, no copy.
    pub(super) fn into_bytes(self) -> Bytes {
        match self {
            Payload::Owned(v) => Bytes::from(v),
            Payload::Shared(b) => b,
        }
    }

    /// The pooled buffer to recycle, if the payload owns one.
    pub(super) fn into_buf(self) -> Option<Vec<u8>> {
        match self {
            Payload::Owned(v) => Some(v),
            Payload::Shared(_) => None,
        }
    }
}
