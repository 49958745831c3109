//! Blocks that in-order received payloads are copied into (issue 15 item 8): one
//! allocation per block instead of one per segment, and the segment leaves
//! [`Kcp::read_chunk`](super::Kcp::read_chunk) as a slice of it. A block is written again
//! in place once every slice of it is dropped, so a busy session neither allocates nor
//! faults pages in per segment.
//!
//! Only segments that are next in order use it: consecutive bytes fill a block, so the
//! memory a block pins is what the reader holds anyway (plus less than one block). A
//! segment parked out of order keeps a pooled buffer of its own while it waits, so a peer
//! cannot make each parked segment pin a whole block; once the gap before it fills, it is
//! copied in here and its buffer goes back to the pool.
use bytes::{Bytes, BytesMut};

use crate::reclaim::BlockReuse;

/// Largest block.
const BLOCK_MAX: usize = 64 * 1024;
/// Filled blocks tracked for reuse: a fast session's receive window (8192 segments) plus
/// the reader's buffer fit; a block still shared when it drops out is freed by its last
/// slice. Tracking a shared block costs no memory: its slices keep it alive anyway.
///
/// Free blocks stay tracked until taken (a busy session's block count swings with how far
/// its reader lags: giving the blocks of one swing back to the allocator made the next one
/// allocate and fault them in again, 70 % of a `tether cat` receiver's page faults), and
/// all go back when the session is idle ([`Kcp::release_idle`](super::Kcp::release_idle)).
const TRACKED: usize = 256;
/// Tracked blocks looked at per new block (see
/// [`BlockReuse::take`](crate::reclaim::BlockReuse::take)).
const CHECKS: usize = 8;

/// See the module docs.
#[derive(Debug, Default)]
pub(super) struct RecvArena {
    /// The block being filled (its view is the unwritten rest).
    cur: BytesMut,
    /// Filled blocks (each handle's view used up) and the free ones among them.
    used: BlockReuse,
    /// Size of the next fresh block (0: none allocated yet).
    next: usize,
}

impl RecvArena {
    /// A copy of `data` as a slice of the current block. `start` is the size of a first
    /// block (blocks then double up to 64 KiB, so a session that receives little keeps
    /// little).
    pub(super) fn copy(&mut self, data: &[u8], start: usize) -> Bytes {
        if self.cur.capacity() < data.len() {
            self.next_block(data.len(), start);
        }
        self.cur.extend_from_slice(data);
        self.cur.split().freeze()
    }

    /// Moves to the oldest tracked block no slice shares any more (reclaimed in place), or
    /// to a fresh one.
    fn next_block(&mut self, need: usize, start: usize) {
        let first = self.next == 0;
        let size = self.next.max(start).max(need).min(BLOCK_MAX.max(need));
        let found = self.used.take(size, CHECKS);
        let block = found.unwrap_or_else(|| {
            self.next = (size * 2).min(BLOCK_MAX);
            BytesMut::with_capacity(size)
        });
        let full = std::mem::replace(&mut self.cur, block);
        if !first {
            self.used.give_back(full, TRACKED);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Blocks grow from `start` to 64 KiB and are written again once their slices are
    /// gone; one still shared is left alone.
    #[test]
    fn blocks_grow_and_are_reused_once_free() {
        let mut a = RecvArena::default();
        let seg = [7u8; 1000];
        let first = a.copy(&seg, 4000);
        assert_eq!(first[..], seg[..]);
        let kept = first.as_ptr();
        // Fill well past several blocks, dropping every slice but the first.
        let mut blocks = std::collections::HashSet::new();
        for _ in 0..400 {
            let s = a.copy(&seg, 4000);
            blocks.insert(s.as_ptr() as usize & !0xffff);
        }
        let before = a.used.len();
        let mut reused = 0;
        for _ in 0..400 {
            let s = a.copy(&seg, 4000);
            assert_ne!(s.as_ptr(), kept, "a shared block was written again");
            reused += usize::from(blocks.contains(&(s.as_ptr() as usize & !0xffff)));
        }
        assert!(reused > 300, "blocks were not reused ({reused} of 400)");
        assert!(a.used.len() <= before.max(TRACKED));
        assert_eq!(first[..], seg[..]);
    }
}
