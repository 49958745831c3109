//! A byte queue of owned chunks: what the data path keeps instead of byte rings, so a
//! payload received or written once travels between layers as a shared slice
//! ([`Bytes`]), not as a copy (issue 16, Measure; issue 15 item 8).
//!
//! Bytes are the queued chunks in order, then a *tail* ([`BytesMut`]) that collects small
//! pieces and copied-in writes: headers, control frames and a writer's small writes do not
//! become one chunk each. The queue counts its bytes ([`ChunkQueue::len`]); whoever bounds
//! a buffer bounds that count, exactly as with a byte ring.
#![deny(clippy::indexing_slicing, clippy::unwrap_used, clippy::expect_used)]

use std::collections::VecDeque;
use std::fmt;

use bytes::{Buf, Bytes, BytesMut};

/// Chunks shorter than this are copied into the tail instead of queued on their own (a
/// chunk per 8-byte header would cost more to queue and to gather than to copy).
pub const COALESCE_BELOW: usize = 1024;

/// Capacity the tail starts with when a copied-in write needs a fresh one.
const TAIL_BLOCK: usize = 64 * 1024;

/// A FIFO of bytes held as owned chunks (see the module docs).
#[derive(Default)]
pub struct ChunkQueue {
    chunks: VecDeque<Bytes>,
    /// Bytes after the last chunk.
    tail: BytesMut,
    /// `tail` is an allocated block (handed back by [`ChunkQueue::take_tail`]).
    tail_owned: bool,
    len: usize,
}

impl fmt::Debug for ChunkQueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChunkQueue")
            .field("len", &self.len)
            .field("chunks", &self.chunks.len())
            .finish()
    }
}

impl ChunkQueue {
    /// Bytes queued.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no byte is queued.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes of storage the tail holds (the chunks are shared, not counted).
    pub fn tail_capacity(&self) -> usize {
        self.tail.capacity()
    }

    /// Moves the tail's bytes into a chunk of their own (keeping its spare capacity).
    fn seal(&mut self) {
        if !self.tail.is_empty() {
            self.chunks.push_back(self.tail.split().freeze());
        }
    }

    /// Appends an owned chunk (a short one is copied into the tail).
    pub fn push(&mut self, chunk: Bytes) {
        if chunk.len() < COALESCE_BELOW {
            self.extend_from_slice(&chunk);
            return;
        }
        self.seal();
        self.len += chunk.len();
        self.chunks.push_back(chunk);
    }

    /// Puts `chunk` back in front (bytes taken with [`ChunkQueue::take_bytes`] that could not
    /// be used after all).
    pub fn push_front(&mut self, chunk: Bytes) {
        if !chunk.is_empty() {
            self.len += chunk.len();
            self.chunks.push_front(chunk);
        }
    }

    /// Appends a copy of `data` (one copy: into the tail, which grows by whole blocks, never
    /// by moving what it holds).
    pub fn extend_from_slice(&mut self, data: &[u8]) {
        self.extend_from_slice_with(data, |_, n| BytesMut::with_capacity(n.max(TAIL_BLOCK)));
    }

    /// [`ChunkQueue::extend_from_slice`] with the caller's blocks: when the tail has no room,
    /// `swap(old, n)` gets the used tail (`None` if it was never one of `swap`'s, e.g. a
    /// pool's to track) and returns an empty block with room for at least `n` bytes.
    pub fn extend_from_slice_with(
        &mut self,
        data: &[u8],
        swap: impl FnOnce(Option<BytesMut>, usize) -> BytesMut,
    ) {
        if data.is_empty() {
            return;
        }
        if self.tail.capacity() - self.tail.len() < data.len() {
            self.seal();
            let old = std::mem::take(&mut self.tail);
            self.tail = swap(self.tail_owned.then_some(old), data.len());
            self.tail_owned = true;
        }
        self.tail.extend_from_slice(data);
        self.len += data.len();
    }

    /// Takes the tail block when the queue is empty (`None` if it never had one): the
    /// queue then holds no storage, and the caller may recycle the block.
    pub fn take_tail(&mut self) -> Option<BytesMut> {
        if self.len != 0 || !self.tail_owned {
            return None;
        }
        self.tail_owned = false;
        self.chunks = VecDeque::new();
        Some(std::mem::take(&mut self.tail))
    }

    /// The oldest contiguous piece (empty when the queue is).
    pub fn front(&self) -> &[u8] {
        match self.chunks.front() {
            Some(c) => c,
            None => &self.tail,
        }
    }

    /// Takes at most `max` of the oldest bytes as one chunk without copying them (`None`
    /// when empty or `max` is 0): the front piece, or its first `max` bytes.
    pub fn pop_chunk(&mut self, max: usize) -> Option<Bytes> {
        if self.len == 0 || max == 0 {
            return None;
        }
        let out = match self.chunks.front_mut() {
            Some(c) if c.len() <= max => self.chunks.pop_front().unwrap_or_default(),
            Some(c) => c.split_to(max),
            None => {
                let n = max.min(self.tail.len());
                self.tail.split_to(n).freeze()
            }
        };
        self.len -= out.len();
        Some(out)
    }

    /// Takes exactly `n` of the oldest bytes (at most all) as one chunk: without a copy when
    /// the front piece holds them, else gathered into a fresh one.
    pub fn take_bytes(&mut self, n: usize) -> Bytes {
        let n = n.min(self.len);
        if self.front().len() >= n {
            return self.pop_chunk(n).unwrap_or_default();
        }
        let mut out = BytesMut::with_capacity(n);
        while out.len() < n {
            let Some(c) = self.pop_chunk(n - out.len()) else {
                break;
            };
            out.extend_from_slice(&c);
        }
        out.freeze()
    }

    /// Takes exactly `n` of the oldest bytes (at most all) as chunks appended to `out`, none
    /// of them copied.
    pub fn take_chunks(&mut self, mut n: usize, out: &mut Vec<Bytes>) {
        while let Some(c) = self.pop_chunk(n) {
            n -= c.len();
            out.push(c);
        }
    }

    /// Puts chunks taken with [`ChunkQueue::take_chunks`] back in front, in their order.
    pub fn unpop_chunks(&mut self, chunks: &mut Vec<Bytes>) {
        while let Some(c) = chunks.pop() {
            self.push_front(c);
        }
    }

    /// Drops the oldest `n` bytes (at most all of them).
    pub fn consume(&mut self, mut n: usize) {
        n = n.min(self.len);
        self.len -= n;
        while n > 0 {
            match self.chunks.front_mut() {
                Some(c) if c.len() <= n => {
                    n -= c.len();
                    self.chunks.pop_front();
                }
                Some(c) => {
                    c.advance(n);
                    n = 0;
                }
                None => {
                    self.tail.advance(n);
                    n = 0;
                }
            }
        }
    }

    /// Copies the oldest bytes into `out` and drops them; returns how many.
    pub fn read_into(&mut self, out: &mut [u8]) -> usize {
        let mut done = 0;
        while done < out.len() && !self.is_empty() {
            let src = self.front();
            let n = src.len().min(out.len() - done);
            if let (Some(d), Some(s)) = (out.get_mut(done..done + n), src.get(..n)) {
                d.copy_from_slice(s);
            }
            self.consume(n);
            done += n;
        }
        done
    }

    /// The oldest `n` bytes (at most all) as one slice, gathering the first pieces into one
    /// when they are split (a copy, for callers that need whole messages).
    pub fn front_contiguous(&mut self, n: usize) -> &[u8] {
        let n = n.min(self.len);
        if self.front().len() < n {
            let joined = self.take_bytes(n);
            self.len += joined.len();
            self.chunks.push_front(joined);
        }
        self.front().get(..n).unwrap_or_default()
    }

    /// Moves every queued byte into `out` as chunks (the tail's included) and empties the
    /// queue.
    pub fn drain_into(&mut self, out: &mut Vec<Bytes>) {
        self.seal();
        out.extend(self.chunks.drain(..));
        self.len = 0;
    }

    /// Appends every queued byte to `out` (a copy) and empties the queue.
    pub fn drain_copy(&mut self, out: &mut Vec<u8>) {
        for c in &self.chunks {
            out.extend_from_slice(c);
        }
        out.extend_from_slice(&self.tail);
        self.clear();
    }

    /// Empties the queue (the tail keeps its storage).
    pub fn clear(&mut self) {
        self.chunks.clear();
        self.tail.clear();
        self.len = 0;
    }

    /// Gives the tail's storage back when the queue is empty (an idle stream keeps only its
    /// struct).
    pub fn release(&mut self) {
        if self.len == 0 {
            self.chunks = VecDeque::new();
            self.tail = BytesMut::new();
            self.tail_owned = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Random pushes, copies, pops, takes, reads and consumes agree with a `VecDeque` model.
    #[test]
    fn agrees_with_vecdeque() {
        let mut q = ChunkQueue::default();
        let mut m: VecDeque<u8> = VecDeque::new();
        let mut x: u32 = 99;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as usize
        };
        let mut byte = 0u8;
        let mut data = |n: usize| -> Vec<u8> {
            (0..n)
                .map(|_| {
                    byte = byte.wrapping_add(1);
                    byte
                })
                .collect()
        };
        for _ in 0..5_000 {
            match next() % 8 {
                0 => {
                    let d = data(next() % 5_000);
                    m.extend(&d);
                    q.push(Bytes::from(d));
                }
                1 => {
                    let d = data(next() % 3_000);
                    m.extend(&d);
                    q.extend_from_slice(&d);
                }
                2 => {
                    if let Some(c) = q.pop_chunk(next() % 4_000) {
                        let want: Vec<u8> = m.drain(..c.len()).collect();
                        assert_eq!(&c[..], &want[..]);
                    }
                }
                3 if next() % 2 == 0 => {
                    let mut cs = Vec::new();
                    q.take_chunks(next() % 9_000, &mut cs);
                    let c = cs.concat();
                    let want: Vec<u8> = m.drain(..c.len()).collect();
                    assert_eq!(c, want);
                }
                3 => {
                    let c = q.take_bytes(next() % 9_000);
                    let want: Vec<u8> = m.drain(..c.len()).collect();
                    assert_eq!(&c[..], &want[..]);
                }
                4 => {
                    let mut out = vec![0u8; next() % 10_000];
                    let n = q.read_into(&mut out);
                    let want: Vec<u8> = m.drain(..n).collect();
                    assert_eq!(&out[..n], &want[..]);
                }
                5 => {
                    let n = next() % 6_000;
                    let got = q.front_contiguous(n).to_vec();
                    let want: Vec<u8> = m.iter().take(n).copied().collect();
                    assert_eq!(got, want);
                    q.consume(n);
                    m.drain(..n.min(m.len()));
                }
                6 => {
                    let mut out = Vec::new();
                    if next() % 2 == 0 {
                        let mut chunks = Vec::new();
                        q.drain_into(&mut chunks);
                        out = chunks.concat();
                    } else {
                        q.drain_copy(&mut out);
                    }
                    let want: Vec<u8> = m.drain(..).collect();
                    assert_eq!(out, want);
                }
                _ => q.release(),
            }
            assert_eq!(q.len(), m.len());
        }
    }

    #[test]
    fn owned_chunks_are_not_copied() {
        let big = Bytes::from(vec![7u8; 8192]);
        let mut q = ChunkQueue::default();
        q.push(big.clone());
        let out = q.pop_chunk(4096).unwrap();
        assert_eq!(out.as_ptr(), big.as_ptr(), "a slice of the pushed chunk");
        assert_eq!(q.take_bytes(4096).as_ptr(), big[4096..].as_ptr());
        assert!(q.is_empty());
    }
}
