//! Anti-amplification (issue 13 item 4): a session a listener created for an unknown address
//! sends at most as many bytes to that address as it received from it (1x, where QUIC allows
//! 3x), until the peer is *verified*: it acknowledged one of our PUSH segments, which it can
//! only do if it receives at that address. A spoofed source therefore cannot make the
//! listener send a victim more than the spoofer sent itself.
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
    /// Datagram bytes sent to the peer while it was unverified.
    pub sent: u64,
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

    /// Whether a datagram of `n` bytes may leave now.
    pub(super) fn may_send(&self, n: usize) -> bool {
        self.verified || self.sent + n as u64 <= self.received
    }

    /// A datagram of `n` bytes left.
    pub(super) fn on_sent(&mut self, n: usize) {
        if !self.verified {
            self.sent += n as u64;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unverified_budget_is_what_was_received() {
        let mut a = Amplification::unverified();
        assert!(!a.may_send(1));
        a.on_received(100);
        assert!(a.may_send(100));
        assert!(!a.may_send(101));
        a.on_sent(60);
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
