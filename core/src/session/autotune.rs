//! kcp-go 5.6.1's receive-side FEC autotune (kcp-go-session.md §4.4): a 258-entry ring of
//! `(is_data, seqid)` samples from which the decoder measures the sender's data and parity
//! run lengths when the seqid/type pattern stops matching its own configuration.
//!
//! The period search reproduces kcp-go's exactly, corner cases included (it returns 0 or −1
//! when it finds no complete run; only results in `1..256` are acted on by the decoder).
#![deny(clippy::indexing_slicing, clippy::unwrap_used, clippy::expect_used)]

/// Ring size: kcp-go's `maxAutoTuneSamples` (kcp-go-session.md §4.4).
pub const MAX_AUTOTUNE_SAMPLES: usize = 258;

/// One sample: the shard kind and its FEC seqid.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Pulse {
    bit: bool,
    seq: u32,
}

/// Slot count as a `u32`, for the seqid arithmetic.
const SAMPLES: u32 = MAX_AUTOTUNE_SAMPLES as u32;
/// Packed sample: the slot was written.
const SET: u32 = 1 << 31;
/// Packed sample: a data shard.
const DATA: u32 = 1 << 30;

/// The sample ring; all entries start as `(parity, seqid 0)` like kcp-go's zero value.
///
/// A sample in slot `seq mod 258` is stored in 4 bytes rather than 8: the slot gives
/// `seq mod 258`, so `seq / 258` (< 2^24) plus the kind and a written flag rebuild it
/// exactly. Boxed, so a session holds 1 KB on the heap instead of 2 KB inline.
#[derive(Debug, Clone)]
pub struct AutoTune {
    pulses: Box<[u32; MAX_AUTOTUNE_SAMPLES]>,
}

impl Default for AutoTune {
    fn default() -> Self {
        Self::new()
    }
}

impl AutoTune {
    /// An empty ring.
    pub fn new() -> Self {
        Self {
            pulses: Box::new([0; MAX_AUTOTUNE_SAMPLES]),
        }
    }

    /// Records one FEC datagram: `bit` is true for a data shard. The slot is `seq mod 258`
    /// (kcp-go-session.md §4.4).
    pub fn sample(&mut self, bit: bool, seq: u32) {
        let slot = (seq % SAMPLES) as usize;
        if let Some(p) = self.pulses.get_mut(slot) {
            let kind = if bit { DATA } else { 0 };
            *p = SET | kind | (seq / SAMPLES);
        }
    }

    /// The sample in `slot` (kcp-go's zero value if never written).
    fn pulse(&self, slot: usize) -> Pulse {
        let packed = self.pulses.get(slot).copied().unwrap_or(0);
        if packed & SET == 0 {
            return Pulse::default();
        }
        Pulse {
            bit: packed & DATA != 0,
            seq: (packed & (DATA - 1)) * SAMPLES + slot as u32,
        }
    }

    /// The length of the first complete run of `bit` samples, scanning the ring in index
    /// order as kcp-go's `FindPeriod` does: −1 on a seqid gap inside the run, 0 or a
    /// negative number when no run closes (kcp-go-session.md §4.4).
    pub fn find_period(&self, bit: bool) -> i32 {
        let left = self.left_edge(bit);
        match self.right_edge(bit, left) {
            Some(right) => right as i32 - left as i32,
            None => -1,
        }
    }

    /// Index of the first rising edge into `bit` with consecutive seqids, else 0.
    fn left_edge(&self, bit: bool) -> usize {
        let mut last = self.pulse(0);
        for idx in 1..MAX_AUTOTUNE_SAMPLES {
            let p = self.pulse(idx);
            if last.bit != bit && p.bit == bit && last.seq.wrapping_add(1) == p.seq {
                return idx;
            }
            last = p;
        }
        0
    }

    /// Index of the edge leaving `bit` after `left`: `Some(0)` when the ring ends first,
    /// `None` when seqids stop being consecutive.
    fn right_edge(&self, bit: bool, left: usize) -> Option<usize> {
        let mut last = self.pulse(left);
        for idx in left + 1..MAX_AUTOTUNE_SAMPLES {
            let p = self.pulse(idx);
            if last.seq.wrapping_add(1) != p.seq {
                return None;
            }
            if last.bit == bit && p.bit != bit {
                return Some(idx);
            }
            last = p;
        }
        Some(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(tune: &mut AutoTune, d: u32, p: u32, upto: u32) {
        for seq in 0..upto {
            tune.sample(seq % (d + p) < d, seq);
        }
    }

    #[test]
    fn finds_sender_periods() {
        for (d, p) in [(10, 3), (3, 2), (1, 1), (20, 5)] {
            let mut t = AutoTune::new();
            feed(&mut t, d, p, 3 * (d + p));
            assert_eq!(t.find_period(true), d as i32, "data period {d},{p}");
            assert_eq!(t.find_period(false), p as i32, "parity period {d},{p}");
        }
    }

    /// The packed ring gives back exactly what was sampled, whatever the seqid.
    #[test]
    fn packing_round_trips() {
        let mut t = AutoTune::new();
        for seq in [
            0,
            1,
            257,
            258,
            259,
            1 << 24,
            u32::MAX - 258,
            u32::MAX - 1,
            u32::MAX,
        ] {
            for bit in [false, true] {
                t.sample(bit, seq);
                let slot = (seq % SAMPLES) as usize;
                assert_eq!(t.pulse(slot), Pulse { bit, seq }, "seq {seq} bit {bit}");
            }
        }
        assert_eq!(AutoTune::new().pulse(5), Pulse::default());
    }

    #[test]
    fn empty_ring_finds_nothing() {
        let t = AutoTune::new();
        assert!(t.find_period(true) <= 0);
        assert!(t.find_period(false) <= 0);
    }
}
