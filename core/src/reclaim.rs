//! Reusing byte blocks whose slices are all gone: the block pools of the owned-buffer data
//! path (KCP's receive arena, the runtime's socket and hub blocks) keep handles to blocks
//! they split slices off, and write a block again in place once no slice shares it
//! (issue 15 item 8), instead of allocating (and faulting in) a fresh one.
use std::collections::VecDeque;

use bytes::BytesMut;

/// Takes the oldest block of `used` that no slice shares any more, reclaimed in place with
/// room for `want` bytes (`None` if there is none), and drops the free blocks beyond
/// `keep_free` others (back to the allocator). Shared blocks stay tracked.
pub fn take_free_block(
    used: &mut VecDeque<BytesMut>,
    want: usize,
    keep_free: usize,
) -> Option<BytesMut> {
    let mut found = None;
    let mut free = 0;
    used.retain_mut(|b| {
        // `try_reclaim` succeeds (in place) only when nothing else shares the block.
        if !b.try_reclaim(want) {
            return true;
        }
        if found.is_none() {
            found = Some(std::mem::take(b));
            return false;
        }
        free += 1;
        free <= keep_free
    });
    found
}
