//! Entry points for `fuzz/` targets and for the stable corpus-replay test
//! (`tests/tests/fuzz_corpus.rs`). Each target is one call into here, so the fuzzers and CI
//! exercise exactly the same code.
use std::time::{Duration, Instant};

use crate::driver::Machine;
use crate::kcp::{segment, Kcp, KcpConfig};

/// Decodes every segment header of an arbitrary datagram.
pub fn kcp_segment_decode(data: &[u8]) {
    for (h, payload) in segment::segments(data).flatten() {
        assert_eq!(h.len as usize, payload.len());
    }
}

/// Drives a KCP machine with an arbitrary sequence of operations decoded from `data`:
/// each step is an op byte followed by its argument bytes. Checks the driver invariants and
/// that no buffer grows past its bound. `start` is the origin of virtual time (any instant:
/// behaviour depends only on differences).
pub fn kcp_machine(start: Instant, data: &[u8]) {
    let cfg = KcpConfig {
        rcv_wnd: 16,
        snd_wnd: 16,
        mtu: 200,
        ..KcpConfig::fast()
    };
    let mut k = Kcp::new(1, cfg, start);
    let mut now = start;
    let mut out = Vec::new();
    let mut rest = data;
    while let Some((&op, tail)) = rest.split_first() {
        rest = tail;
        match op % 6 {
            0 | 1 => {
                // A datagram of the given length, with conv forced to ours half of the time so
                // the state machine sees deep input.
                let len = rest.first().copied().unwrap_or(0) as usize;
                let take = len.min(rest.len().saturating_sub(1));
                let mut dgram = rest.get(1..1 + take).unwrap_or(&[]).to_vec();
                rest = rest.get(1 + take..).unwrap_or(&[]);
                if op % 6 == 0 && dgram.len() >= 4 {
                    dgram[..4].copy_from_slice(&1u32.to_le_bytes());
                }
                let _ = k.handle_input(now, &dgram);
            }
            2 => {
                let n = rest.first().copied().unwrap_or(1) as usize * 7 + 1;
                rest = rest.get(1..).unwrap_or(&[]);
                let _ = k.write(&vec![0xAB; n]);
            }
            3 => {
                let mut buf = [0u8; 512];
                while k.recv_stream(&mut buf).is_ok() {}
            }
            4 => {
                let ms = rest.first().copied().unwrap_or(0) as u64 * 20;
                rest = rest.get(1..).unwrap_or(&[]);
                now += Duration::from_millis(ms);
            }
            _ => {
                if let Some(t) = k.poll_timeout() {
                    now = now.max(t);
                    k.handle_timeout(now);
                    if let Some(next) = k.poll_timeout() {
                        assert!(next > now, "deadline not after handle_timeout");
                    }
                }
            }
        }
        out.clear();
        while k.poll_transmit(now, &mut out).is_some() {
            assert!(out.len() <= 200);
            out.clear();
        }
        while k.poll_event().is_some() {}
        assert!(k.debug_bounds_ok(), "a KCP buffer grew past its bound");
    }
}
