//! Reusing byte blocks whose slices are all gone: the block pools of the owned-buffer data
//! path (KCP's receive arena, the runtime's socket and hub blocks) keep handles to blocks
//! they split slices off, and write a block again in place once no slice shares it
//! (issue 15 item 8), instead of allocating (and faulting in) a fresh one.
use std::collections::VecDeque;

use bytes::BytesMut;

/// Takes the oldest block of `used` that no slice shares any more, reclaimed in place with
/// room for `want` bytes (`None` if there is none), and drops free blocks beyond
/// `keep_free(shared)` others (back to the allocator), where `shared` is how many tracked
/// blocks slices still hold: a pool can keep as many free blocks as a burst just had in
/// flight, so the next burst reuses them instead of faulting fresh ones in. Shared blocks
/// stay tracked.
pub fn take_free_block(
    used: &mut VecDeque<BytesMut>,
    want: usize,
    keep_free: impl FnOnce(usize) -> usize,
) -> Option<BytesMut> {
    let mut found = None;
    let (mut free, mut shared) = (0usize, 0usize);
    used.retain_mut(|b| {
        // `try_reclaim` succeeds (in place) only when nothing else shares the block.
        if !b.try_reclaim(want) {
            shared += 1;
        } else if found.is_none() {
            found = Some(std::mem::take(b));
            return false;
        } else {
            free += 1;
        }
        true
    });
    let limit = keep_free(shared);
    if free > limit {
        let mut kept = 0;
        used.retain_mut(|b| {
            if !b.try_reclaim(want) {
                return true;
            }
            kept += 1;
            kept <= limit
        });
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The first free block is taken; free ones beyond the caller's limit (given the number
    /// of shared ones) are dropped; shared ones stay.
    #[test]
    fn takes_one_free_block_and_keeps_what_the_caller_allows() {
        let mut used = VecDeque::new();
        let mut slices = Vec::new();
        for i in 0..6 {
            let mut b = BytesMut::with_capacity(64);
            b.extend_from_slice(&[i as u8; 64]);
            let s = b.split().freeze();
            if i % 2 == 0 {
                slices.push(s); // blocks 0, 2, 4 stay shared
            }
            used.push_back(b);
        }
        let mut seen = None;
        let got = take_free_block(&mut used, 64, |shared| {
            seen = Some(shared);
            1
        });
        assert!(got.is_some_and(|b| b.capacity() >= 64));
        assert_eq!(seen, Some(3));
        assert_eq!(
            used.len(),
            4,
            "3 shared + 1 free kept (of 2 left after taking one)"
        );
        drop(slices);
        let got = take_free_block(&mut used, 64, |shared| shared);
        assert!(got.is_some());
        assert_eq!(used.len(), 0, "nothing shared: no free block kept");
    }
}
