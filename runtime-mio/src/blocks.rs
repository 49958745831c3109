//! A pool of 64 KiB byte blocks for the owned-buffer data path (socket reads, the hub's
//! copies of application writes): a block is split into slices that travel through the
//! stack; once every slice is dropped the block is written again in place. Allocating a
//! fresh block instead costs page faults and zeroing for every 64 KiB moved (the allocator
//! hands freed blocks back to the system and faults them in again).
use std::collections::VecDeque;

use bytes::BytesMut;

/// Bytes of one block.
pub(crate) const BLOCK: usize = 64 * 1024;
/// Used blocks tracked: the ones slices still hold (tracking them costs no memory, the
/// slices keep them alive anyway) and at most [`FREE_BLOCKS`] free ones.
const TRACKED_BLOCKS: usize = 256;
/// Free blocks kept (the memory a quiet pool holds).
const FREE_BLOCKS: usize = 4;

/// Used blocks, some still shared with slices (see the module docs).
#[derive(Debug, Default)]
pub(crate) struct BlockPool {
    spares: VecDeque<BytesMut>,
}

impl BlockPool {
    /// Tracks a used block (a handle to it whose own view may be empty).
    pub(crate) fn recycle(&mut self, mut used: BytesMut) {
        used.clear();
        self.spares.push_back(used);
        while self.spares.len() > TRACKED_BLOCKS {
            self.spares.pop_front();
        }
    }

    /// An empty block with room for at least `min` bytes (at least [`BLOCK`]): a free used
    /// one, or a fresh one. Keeps at most [`FREE_BLOCKS`] other free ones.
    pub(crate) fn get(&mut self, min: usize) -> BytesMut {
        let want = min.max(BLOCK);
        let mut found = None;
        let mut free = 0;
        self.spares.retain_mut(|b| {
            // `try_reclaim` succeeds (in place) only when nothing else shares the block.
            if !b.try_reclaim(want) {
                return true;
            }
            if found.is_none() {
                found = Some(std::mem::take(b));
                return false;
            }
            free += 1;
            free <= FREE_BLOCKS
        });
        found.unwrap_or_else(|| BytesMut::with_capacity(want))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A block whose slices were all dropped is handed out again, not reallocated.
    #[test]
    fn free_blocks_are_reused() {
        let mut pool = BlockPool::default();
        let mut a = pool.get(0);
        a.resize(BLOCK, 0);
        let first = a.as_ptr();
        let held = a.split_to(BLOCK).freeze(); // filled to the end
        pool.recycle(a);
        let b = pool.get(0);
        assert_ne!(b.as_ptr(), first, "the first block is still held");
        drop(held);
        let c = pool.get(0);
        assert_eq!(c.as_ptr(), first, "the first block is free again: reused");
        drop(b);
    }
}
