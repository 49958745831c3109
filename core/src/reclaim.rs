//! Reusing byte blocks whose slices are all gone: the block pools of the owned-buffer data
//! path (KCP's receive arena, the runtime's socket and hub blocks) keep handles to blocks
//! they split slices off, and write a block again in place once no slice shares it
//! (issue 15 item 8), instead of allocating (and faulting in) a fresh one.
use std::collections::VecDeque;

use bytes::BytesMut;

/// Takes a block of `used` that no slice shares any more, looking at no more than `checks`
/// blocks, oldest first, and moving each still-shared one to the back. Blocks come free
/// roughly in the order they were filled, so the oldest is the likeliest; the bounded look
/// keeps a take cheap however many blocks slices still hold (scanning them all on every
/// take cost 7 % of a 16-stream smux echo server).
fn take_oldest_free_block(
    used: &mut VecDeque<BytesMut>,
    want: usize,
    checks: usize,
) -> Option<BytesMut> {
    for _ in 0..checks.min(used.len()) {
        let mut b = used.pop_front()?;
        // `try_reclaim` succeeds (in place) only when nothing else shares the block (or
        // the handle's own view already has the room: then no slice overlaps it either).
        if b.try_reclaim(want) {
            return Some(b);
        }
        used.push_back(b);
    }
    None
}

/// Blocks handed out to be filled and split, tracked so that each is written again once
/// its slices are gone: the filled ones in the order they were filled, and those found
/// free on a stack, the one found last on top.
///
/// Why a stack: blocks come free in about the order they were filled, so the free block
/// found last is the one a reader finished last, whose bytes are likeliest still in the
/// CPU's cache. Taking the oldest free block instead made a pool cycle through every block
/// it ever grew to (a `tether cat` receiver's arena: 256 blocks, 16 MiB, far past the L2
/// cache), so each block was written cold; a stack keeps the blocks in use down to what is
/// in flight, and the rest lie untouched at its bottom until the pool is trimmed.
#[derive(Debug, Default)]
pub struct BlockReuse {
    /// Blocks handed out and given back, oldest first; slices may still share them.
    filled: VecDeque<BytesMut>,
    /// Blocks no slice shares, the one found last at the back.
    free: VecDeque<BytesMut>,
}

impl BlockReuse {
    /// Tracks a block whose view is used up (its slices may live on), keeping at most
    /// `max` blocks in all: past that the coldest free block goes, then the oldest filled
    /// one (a block still shared is then freed by its last slice).
    pub fn give_back(&mut self, block: BytesMut, max: usize) {
        self.filled.push_back(block);
        while self.len() > max {
            if self.free.pop_front().is_none() {
                self.filled.pop_front();
            }
        }
    }

    /// A block with room for `want` bytes that no slice shares: the front of the filled
    /// blocks that came free (up to `checks` of them) go onto the free stack and its top is
    /// taken; with none free there, up to `checks` filled blocks are looked at oldest
    /// first, moving shared ones to the back (`take_oldest_free_block`, so a block a
    /// reader holds on to does not hide the ones behind it). `None`: allocate.
    pub fn take(&mut self, want: usize, checks: usize) -> Option<BytesMut> {
        for _ in 0..checks {
            let Some(front) = self.filled.front_mut() else {
                break;
            };
            if !front.try_reclaim(want) {
                break;
            }
            self.free.extend(self.filled.pop_front());
        }
        while let Some(mut b) = self.free.pop_back() {
            // Found free for a smaller `want` maybe: reclaimed in place, or dropped.
            if b.try_reclaim(want) {
                return Some(b);
            }
        }
        take_oldest_free_block(&mut self.filled, want, checks)
    }

    /// Blocks tracked, filled and free.
    pub fn len(&self) -> usize {
        self.filled.len() + self.free.len()
    }

    /// Whether no block is tracked.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Gives every free block back to the allocator, tracking only those slices still
    /// share (a quiet pool holds none).
    pub fn trim(&mut self, block: usize) {
        self.free = VecDeque::new();
        self.filled.retain_mut(|b| !b.try_reclaim(block));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Shared blocks move to the back; the first free one within the look is taken.
    #[test]
    fn the_oldest_free_block_within_the_look_is_taken() {
        let mut used = VecDeque::new();
        let mut slices = Vec::new();
        for i in 0..4u8 {
            let mut b = BytesMut::with_capacity(64);
            b.extend_from_slice(&[i; 64]);
            let s = b.split().freeze();
            if i < 2 {
                slices.push(s); // blocks 0 and 1 stay shared
            }
            used.push_back(b);
        }
        assert!(
            take_oldest_free_block(&mut used, 64, 2).is_none(),
            "only 0 and 1 seen"
        );
        assert_eq!(used.len(), 4, "both moved to the back, still tracked");
        let got = take_oldest_free_block(&mut used, 64, 2);
        assert!(got.is_some_and(|b| b.capacity() >= 64), "block 2 is free");
        assert_eq!(used.len(), 3);
        drop(slices);
        assert!(
            take_oldest_free_block(&mut used, 64, 1).is_some(),
            "block 3 next"
        );
    }

    /// The free block found last is taken first; shared blocks keep their place in the fill
    /// order while free ones stand in front of them, and the bound drops free ones first.
    #[test]
    fn the_block_freed_last_is_taken_first() {
        let mut pool = BlockReuse::default();
        let mut slices = Vec::new();
        let mut addrs = Vec::new();
        for i in 0..4u8 {
            let mut b = BytesMut::with_capacity(64);
            b.extend_from_slice(&[i; 64]);
            addrs.push(b.as_ptr());
            slices.push(b.split().freeze());
            pool.give_back(b, 8);
        }
        assert!(pool.take(64, 8).is_none(), "all shared");
        slices.truncate(2); // blocks 2 and 3 free, behind shared 0 and 1
        let b = pool.take(64, 8).expect("past the shared ones");
        assert_eq!(
            b.as_ptr(),
            addrs[2],
            "oldest first when none is free up front"
        );
        pool.give_back(b, 8);
        drop(slices); // all free now
        let b = pool.take(64, 8).expect("free");
        assert_eq!(pool.free.len(), 3, "the free ones at the front stacked up");
        // The rotation left the fill order 3, 0, 1, 2: the last found (2) is taken first.
        assert_eq!(b.as_ptr(), addrs[2]);
        pool.give_back(b, 3);
        assert_eq!(pool.len(), 3, "bounded: a free block went first");
        assert_eq!(pool.filled.len(), 1);
        pool.trim(64);
        assert!(pool.is_empty(), "trimmed: no block shared, none kept");
    }
}
