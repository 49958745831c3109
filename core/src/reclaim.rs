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
/// take cost 7 % of a 16-stream smux echo server). Free blocks stay tracked until taken;
/// the caller bounds the deque and gives free blocks back when quiet.
pub fn take_oldest_free_block(
    used: &mut VecDeque<BytesMut>,
    want: usize,
    checks: usize,
) -> Option<BytesMut> {
    for _ in 0..checks.min(used.len()) {
        let mut b = used.pop_front()?;
        // `try_reclaim` succeeds (in place) only when nothing else shares the block.
        if b.try_reclaim(want) {
            return Some(b);
        }
        used.push_back(b);
    }
    None
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
}
