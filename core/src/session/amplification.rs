//! Anti-amplification (issue 13 item 4): a session a listener created for an unknown address
//! sends at most as many bytes to that address as it received from it (1x, where QUIC allows
//! 3x), not counting control segments, until the peer is *verified*: it acknowledged one of
//! our PUSH segments, which it can only do if it receives at that address. A spoofed source
//! therefore cannot make the listener send a victim more data than the spoofer sent itself.
//!
//! A datagram costs its bytes minus its control segments (ACK, WASK, WINS: 24 bytes each);
//! FEC parity costs its full size. Control segments are exempt because each ACK answers one
//! received segment of at least 24 bytes, so they add at most 1x more; counting them would
//! stall kcp-go clients: the echo of a request (ACK + PUSH) would exceed the request by the
//! ACK, be held, and inflate the client's RTT estimate, and a client whose request was
//! acknowledged alone sends nothing more (kcp-go interop `-role bulk` waits for its hello
//! echo).
//!
//! Datagrams over the budget are held in order, not dropped: they leave as soon as more bytes
//! arrive or the peer is verified. At most [`HELD_LIMIT`] are held; further output is
//! discarded and counted, which loses no data because KCP keeps every unacknowledged
//! segment and retransmits it.

/// Most datagrams an unverified session holds back (about 96 KiB at 1 500 bytes each).
pub const HELD_LIMIT: usize = 64;

/// The amplification state of one session.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Amplification {
    /// The peer proved it receives at its address (or we chose the address: clients).
    pub verified: bool,
    /// Datagram bytes received from the peer while it was unverified.
    pub received: u64,
    /// Bytes sent to the peer while it was unverified, control segments excepted
    /// (≤ `received`).
    pub sent: u64,
    /// Control segment bytes (ACK, WASK, WINS) sent while it was unverified.
    pub control_sent: u64,
    /// Datagrams discarded because [`HELD_LIMIT`] were already held (KCP retransmits them).
    pub discarded: u64,
}

impl Amplification {
    /// A session that may send freely (a client, or a standalone session).
    pub fn verified() -> Self {
        Amplification {
            verified: true,
            ..Amplification::default()
        }
    }

    /// A session opened by a datagram from an unknown address.
    pub fn unverified() -> Self {
        Amplification::default()
    }

    /// `n` datagram bytes arrived from the peer.
    pub(super) fn on_received(&mut self, n: usize) {
        if !self.verified {
            self.received += n as u64;
        }
    }

    /// Whether a datagram costing `cost` bytes (0: control only) may leave now.
    pub(super) fn may_send(&self, cost: usize) -> bool {
        self.verified || cost == 0 || self.sent + cost as u64 <= self.received
    }

    /// A datagram of `len` bytes costing `cost` left.
    pub(super) fn on_sent(&mut self, len: usize, cost: usize) {
        if !self.verified {
            self.sent += cost as u64;
            self.control_sent += len.saturating_sub(cost) as u64;
        }
    }

    /// Whether one more datagram may be held when `held` already are.
    pub(super) fn may_hold(&mut self, held: usize) -> bool {
        if self.verified || held < HELD_LIMIT {
            return true;
        }
        self.discarded += 1;
        false
    }

    /// The peer acknowledged data we sent.
    pub(super) fn verify(&mut self) {
        self.verified = true;
    }
}

/// Bytes of control segments in a KCP datagram (without session headers) that also carries
/// a PUSH segment; `None` when it carries none (control only).
pub(super) fn control_bytes(kcp: &[u8]) -> Option<usize> {
    let (mut control, mut push) = (0, false);
    for (h, data) in crate::kcp::segment::segments(kcp).flatten() {
        if h.cmd == crate::kcp::segment::Cmd::Push as u8 {
            push = true;
        } else {
            control += crate::kcp::segment::OVERHEAD + data.len();
        }
    }
    push.then_some(control)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unverified_budget_is_what_was_received() {
        let mut a = Amplification::unverified();
        assert!(!a.may_send(1));
        assert!(a.may_send(0), "control-only datagrams are not held");
        a.on_received(100);
        assert!(a.may_send(100));
        assert!(!a.may_send(101));
        a.on_sent(84, 60);
        a.on_sent(44, 0);
        assert_eq!((a.sent, a.control_sent), (60, 68));
        assert!(a.may_send(40));
        assert!(!a.may_send(41));
        a.verify();
        assert!(a.may_send(1 << 20));
    }

    #[test]
    fn holding_is_bounded() {
        let mut a = Amplification::unverified();
        assert!(a.may_hold(HELD_LIMIT - 1));
        assert!(!a.may_hold(HELD_LIMIT));
        assert_eq!(a.discarded, 1);
    }
}
