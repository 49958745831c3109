//! A pool of 64 KiB byte blocks for the owned-buffer data path (socket reads, the hub's
//! copies of application writes): a block is split into slices that travel through the
//! stack; once every slice is dropped the block is written again in place. Allocating a
//! fresh block instead costs page faults and zeroing for every 64 KiB moved (the allocator
//! hands freed blocks back to the system and faults them in again). Public for readers of
//! other descriptors (`tether cat`'s stdin), with [`crate::uninit_read::read_uninit`].
use bytes::BytesMut;
use tether_core::reclaim::BlockReuse;

/// Bytes of one block.
pub const BLOCK: usize = 64 * 1024;
/// Used blocks tracked: the ones slices still hold (tracking them costs no memory, the
/// slices keep them alive anyway) and the free ones waiting to be written again (at most
/// 32 MiB of blocks: what a busy smux connection with 16 streams or a KCP send window has in
/// flight). [`BlockPool::trim`] gives the free ones back once quiet.
const TRACKED_BLOCKS: usize = 512;
/// Blocks [`BlockPool::get`] looks at before it allocates a fresh one ([`BlockReuse::take`]).
const CHECKS: usize = 8;

/// Used blocks, some still shared with slices (see the module docs).
#[derive(Debug, Default)]
pub struct BlockPool {
    spares: BlockReuse,
    /// Blocks handed out so far (a caller sees from it whether the pool was used lately).
    gets: u64,
}

impl BlockPool {
    /// Tracks a used block (a handle to it whose own view may be empty).
    pub fn recycle(&mut self, mut used: BytesMut) {
        used.clear();
        self.spares.give_back(used, TRACKED_BLOCKS);
    }

    /// An empty block with room for at least `min` bytes (at least [`BLOCK`]): the free
    /// one found last ([`BlockReuse::take`] says why), or a fresh one. Free blocks stay in the
    /// pool while it is busy (up to [`TRACKED_BLOCKS`] in all): freeing them to the
    /// allocator between bursts made glibc return them to the system and fault them in
    /// again (13–58 k page faults per GiB over TCP smux, up to 19 % of the CPU).
    pub fn get(&mut self, min: usize) -> BytesMut {
        let want = min.max(BLOCK);
        self.gets += 1;
        self.spares
            .take(want, CHECKS)
            .unwrap_or_else(|| BytesMut::with_capacity(want))
    }

    /// Blocks handed out so far.
    pub(crate) fn gets(&self) -> u64 {
        self.gets
    }

    /// Gives the free blocks back (a quiet connection holds none), tracking the rest.
    pub(crate) fn trim(&mut self) {
        self.spares.trim(BLOCK);
    }
}

/// Trims pools that were not used for a while: a connection's loop calls
/// [`QuietTrim::check`] on every pass with the pools' [`BlockPool::gets`] and trims them
/// when it says so.
#[derive(Debug, Default)]
pub(crate) struct QuietTrim {
    gets: u64,
    since: Option<std::time::Instant>,
}

/// How long the pools must go unused before their free blocks go back.
const QUIET: std::time::Duration = std::time::Duration::from_secs(1);

impl QuietTrim {
    /// Whether to trim now: `gets` (the pools' total) has not moved for [`QUIET`].
    pub(crate) fn check(&mut self, gets: u64, now: std::time::Instant) -> bool {
        if gets != self.gets || self.since.is_none() {
            self.gets = gets;
            self.since = Some(now);
            return false;
        }
        if self.since.is_some_and(|t| now.duration_since(t) >= QUIET) {
            self.since = None; // once per quiet spell
            return true;
        }
        false
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
        pool.recycle(c);
        pool.trim();
        assert!(pool.spares.is_empty(), "trimmed: no free block kept");
        pool.recycle(b);
        assert_eq!(pool.spares.len(), 1);
    }

    /// A trim comes once the pools went unused for a second, once per quiet spell.
    #[test]
    fn quiet_pools_are_trimmed_once() {
        let t0 = std::time::Instant::now();
        let mut q = QuietTrim::default();
        assert!(!q.check(5, t0));
        assert!(!q.check(5, t0 + QUIET / 2));
        assert!(!q.check(6, t0 + QUIET), "used again: the clock restarts");
        assert!(q.check(6, t0 + QUIET * 2));
        assert!(!q.check(6, t0 + QUIET * 3), "once");
    }
}
