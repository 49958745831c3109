//! KCP targets: segment decoding, and one KCP machine driven by a script.
use std::time::{Duration, Instant};

use crate::driver::Machine;
use crate::kcp::segment::{self, OVERHEAD};
use crate::kcp::{Kcp, KcpConfig};

use super::script::{pattern_bytes, Script};

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
    let mut s = Script::new(data);
    while let Some(op) = s.next() {
        match op % 7 {
            0 | 1 => {
                // A datagram of the given length, with conv forced to ours half of the time so
                // the state machine sees deep input.
                let len = usize::from(s.byte());
                let mut dgram = s.take(len).to_vec();
                if op % 7 == 0 && dgram.len() >= 4 {
                    dgram[..4].copy_from_slice(&1u32.to_le_bytes());
                }
                let _ = k.handle_input(now, &dgram);
            }
            2 => {
                // Copied, or kept as the segments' payload (the owned-buffer path): a slice
                // of a larger buffer, so segments share it.
                let n = usize::from(s.next().unwrap_or(1)) * 7 + 1;
                if op / 7 % 2 == 0 {
                    let _ = k.write(&vec![0xAB; n]);
                } else {
                    let whole = bytes::Bytes::from(vec![0xCD; n + 3]);
                    let _ = k.write_chunk(whole.slice(3..));
                }
            }
            3 => {
                // Copied out, or taken as chunks (segments whole, or from the receive arena).
                if op / 7 % 2 == 0 {
                    let mut buf = [0u8; 512];
                    while k.recv_stream(&mut buf).is_ok() {}
                } else {
                    let max = usize::from(s.byte()) * 16 + 1;
                    while let Ok(c) = k.read_chunk(max) {
                        assert!(
                            !c.is_empty() && c.len() <= max,
                            "read_chunk broke its bounds: {} bytes, max {max}",
                            c.len()
                        );
                    }
                }
            }
            4 => now += Duration::from_millis(u64::from(s.byte()) * 20),
            5 => {
                if let Some(t) = k.poll_timeout() {
                    now = now.max(t);
                    k.handle_timeout(now);
                    if let Some(next) = k.poll_timeout() {
                        assert!(next > now, "deadline not after handle_timeout");
                    }
                }
            }
            _ => {
                // One segment of up to 64 KiB: header from the script (conv ours), payload
                // generated, so short inputs reach the largest segments.
                let mut d = [0u8; OVERHEAD];
                let t = s.take(OVERHEAD);
                d[..t.len()].copy_from_slice(t);
                d[..4].copy_from_slice(&1u32.to_le_bytes());
                let len = s.u16();
                d[20..24].copy_from_slice(&u32::from(len).to_le_bytes());
                let mut dgram = d.to_vec();
                dgram.extend_from_slice(pattern_bytes(0, usize::from(len)));
                let _ = k.handle_input(now, &dgram);
            }
        }
        out.clear();
        while k.poll_transmit(now, &mut out).is_some() {
            assert!(out.len() <= 200);
            out.clear();
        }
        assert!(!k.has_transmit(), "has_transmit after a full drain");
        while k.poll_event().is_some() {}
        assert!(k.debug_bounds_ok(), "a KCP buffer grew past its bound");
    }
}
