//! The earliest retransmission time of the segments in flight, kept as they are sent and
//! acknowledged, so that a flush with thousands of segments in flight need not walk them all
//! to find it (`Kcp::write_data`'s partial passes).
//!
//! A min-heap of `(resendts, sn)` entries with lazy deletion: an entry is pushed at every
//! send, and one whose segment has since been acknowledged, removed or sent again is dropped
//! when it reaches the top. A pass over every segment rebuilds the heap from scratch, and so
//! does any growth past twice the segments in flight, so its size stays bounded.
use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};

use super::Seg;

/// Heap keys are `resendts - epoch` (wrapping): in order as long as every live `resendts`
/// lies within 2^31 ms after the epoch. A rebuild puts the epoch 2^30 ms before the wire
/// time, and [`ResendHeap::fresh`] asks for one before 2^30 more ms have passed.
const EPOCH_LEAD: u32 = 1 << 30;

/// One heap entry: the key in the high half and the sn in the low half, so the `u64`s order
/// as the `(key, sn)` pairs do. One 8-byte store per push rather than two 4-byte ones: the
/// heap's sift-up reads the new entry straight back, and a load that spans two pending
/// stores cannot be forwarded, so it waited for the store buffer (the payload copy just
/// before) to drain. `cargo bench --bench bulk`: `bulk/send` 2 % faster.
fn entry(key: u32, sn: u32) -> Reverse<u64> {
    Reverse((u64::from(key) << 32) | u64::from(sn))
}

/// See the module documentation.
#[derive(Debug, Default)]
pub(super) struct ResendHeap {
    heap: BinaryHeap<Reverse<u64>>,
    epoch: u32,
}

impl ResendHeap {
    /// Starts over from the segments in `snd_buf` at wire time `current`.
    pub(super) fn rebuild(&mut self, snd_buf: &VecDeque<Seg>, current: u32) {
        self.epoch = current.wrapping_sub(EPOCH_LEAD);
        let mut entries = std::mem::take(&mut self.heap).into_vec();
        entries.clear();
        let epoch = self.epoch;
        entries.extend(
            snd_buf
                .iter()
                .filter(|s| !s.acked && s.xmit > 0)
                .map(|s| entry(s.resendts.wrapping_sub(epoch), s.sn)),
        );
        self.heap = BinaryHeap::from(entries);
    }

    /// Whether the keys are still in order at wire time `current` (else rebuild first).
    pub(super) fn fresh(&self, current: u32) -> bool {
        current.wrapping_sub(self.epoch) < 2 * EPOCH_LEAD
    }

    /// Records that segment `sn` was sent and is due again at `resendts`.
    pub(super) fn push(&mut self, resendts: u32, sn: u32) {
        self.heap.push(entry(resendts.wrapping_sub(self.epoch), sn));
    }

    /// Entries held, stale ones included.
    pub(super) fn len(&self) -> usize {
        self.heap.len()
    }

    /// Whether stale entries have piled up past twice the `in_flight` segments.
    pub(super) fn oversized(&self, in_flight: usize) -> bool {
        self.heap.len() > 2 * in_flight + 64
    }

    /// The earliest `resendts` of a segment still in flight and unacknowledged in
    /// `snd_buf` (which holds every sn from `snd_una` on, in order), dropping stale entries.
    pub(super) fn earliest(&mut self, snd_buf: &VecDeque<Seg>, snd_una: u32) -> Option<u32> {
        while let Some(&Reverse(e)) = self.heap.peek() {
            let (key, sn) = ((e >> 32) as u32, e as u32);
            let resendts = key.wrapping_add(self.epoch);
            let live = snd_buf
                .get(sn.wrapping_sub(snd_una) as usize)
                .is_some_and(|s| s.sn == sn && !s.acked && s.xmit > 0 && s.resendts == resendts);
            if live {
                return Some(resendts);
            }
            self.heap.pop();
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::time::timediff;

    fn seg(sn: u32, resendts: u32) -> Seg {
        Seg {
            sn,
            resendts,
            xmit: 1,
            ..Seg::default()
        }
    }

    /// The earliest live `resendts` by brute force, wrap-aware as KCP compares times.
    fn brute(buf: &VecDeque<Seg>) -> Option<u32> {
        buf.iter()
            .filter(|s| !s.acked && s.xmit > 0)
            .map(|s| s.resendts)
            .reduce(|a, b| if timediff(a, b) <= 0 { a } else { b })
    }

    proptest! {
        /// Sends, resends, ACKs and removals in any order, across the u32 wrap of the wire
        /// clock: the heap's answer is always the brute-force minimum, and its size stays
        /// bounded by the rebuilds.
        #[test]
        fn earliest_matches_a_scan(
            start in prop_oneof![Just(u32::MAX - 5_000), any::<u32>()],
            ops in prop::collection::vec((0u8..4, 0u32..64, 1u32..3_000), 1..300),
        ) {
            let mut h = ResendHeap::default();
            let (mut buf, mut una, mut now) = (VecDeque::new(), 7u32, start);
            h.rebuild(&buf, now);
            for (op, i, d) in ops {
                now = now.wrapping_add(d / 10);
                if !h.fresh(now) {
                    h.rebuild(&buf, now);
                }
                let idx = i as usize % buf.len().max(1);
                match op {
                    // A new segment, sent at once.
                    0 => {
                        let sn = una.wrapping_add(buf.len() as u32);
                        buf.push_back(seg(sn, now.wrapping_add(d)));
                        h.push(now.wrapping_add(d), sn);
                    }
                    // A resend: later or earlier than before.
                    1 => if let Some(s) = buf.get_mut(idx) {
                        s.resendts = now.wrapping_add(d);
                        h.push(s.resendts, s.sn);
                    },
                    // Selectively acknowledged.
                    2 => if let Some(s) = buf.get_mut(idx) {
                        s.acked = true;
                    },
                    // Cumulatively acknowledged up to here.
                    _ => for _ in 0..=idx.min(buf.len().saturating_sub(1)) {
                        if buf.pop_front().is_some() {
                            una = una.wrapping_add(1);
                        }
                    },
                }
                prop_assert_eq!(h.earliest(&buf, una), brute(&buf));
                if h.oversized(buf.len()) {
                    h.rebuild(&buf, now);
                }
                prop_assert!(h.heap.len() <= 2 * buf.len() + 64 + 1);
            }
        }
    }
}
