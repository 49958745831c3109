//! The ACK list stays bounded when a datagram turns bad after some PUSH segments (found by
//! the `session_sequence` fuzz target: the early error return skipped the forced ACK flush).
use super::{Kcp, KcpConfig};
use crate::driver::Machine;
use crate::sim::test_start;

/// `n` empty PUSH segments with sn 0 (each is acknowledged, duplicate or not), then a
/// segment with an unknown command.
fn pushes_then_garbage(conv: u32, n: usize) -> Vec<u8> {
    let mut d = Vec::new();
    for _ in 0..n {
        d.extend_from_slice(&conv.to_le_bytes());
        d.extend_from_slice(&[81, 0, 32, 0]); // PUSH, frg 0, wnd 32
        d.extend_from_slice(&[0; 16]); // ts, sn, una, len = 0
    }
    d.extend_from_slice(&conv.to_le_bytes());
    d.extend_from_slice(&[99, 0, 32, 0]);
    d.extend_from_slice(&[0; 16]);
    d
}

#[test]
fn acks_of_a_datagram_that_turns_bad_still_count_against_the_bound() {
    let cfg = KcpConfig::fast().with_windows(8, 8);
    let now = test_start();
    let mut k = Kcp::new(7, cfg, now);
    for _ in 0..3 {
        assert!(k.handle_input(now, &pushes_then_garbage(7, 60)).is_err());
        let mut out = Vec::new();
        while k.poll_transmit(now, &mut out).is_some() {
            out.clear();
        }
        assert!(k.debug_bounds_ok(), "ACK list grew past its bound");
    }
}
