//! What a [`Pair`](super::Pair) carries bytes over: one direction of a path.
//!
//! Two media exist: the datagram [`Link`] (loss, reordering, duplication, a drop-tail queue)
//! and the byte [`Pipe`](super::Pipe) (ordered, lossless, re-chunked, back-pressured, and a
//! connection that can break and come back, as TCP under goscon or smux). The pair drives
//! both the same way: what a machine transmits goes in with [`Medium::send`], what is due
//! comes out with [`Medium::poll_deliver`], and [`Medium::poll_timeout`] says when the next
//! delivery is due.
use std::fmt::Debug;
use std::time::Instant;

use super::link::{Link, LinkStats};

/// One direction of a simulated path, as a sans-IO element.
pub trait Medium {
    /// Counters of this medium.
    type Stats: Debug + Copy;

    /// Offers what the sending machine transmitted at `now`; returns how many bytes were
    /// taken. A datagram medium takes every datagram whole (delivered or dropped); a byte
    /// medium takes what fits its buffer, and the rest waits with the sender (back-pressure).
    fn send(&mut self, now: Instant, data: &[u8]) -> usize;

    /// Appends the next delivery due at or before `now` (a datagram, or a chunk of the byte
    /// stream) to `buf` and returns its length; `None` when nothing is due.
    fn poll_deliver(&mut self, now: Instant, buf: &mut Vec<u8>) -> Option<usize>;

    /// When the next delivery is due; `None` when nothing is in transit (an idle medium
    /// costs no steps).
    fn poll_timeout(&self) -> Option<Instant>;

    /// The counters so far.
    fn stats(&self) -> Self::Stats;
}

/// A medium that is a connection: it can break (everything in transit is lost, writes go
/// nowhere) and come back (bytes flow again on the new connection). The
/// [`Pair`](super::Pair) breaks both directions at once and tells both machines through
/// [`Transport`](crate::driver::Transport).
pub trait Connection: Medium {
    /// The connection breaks at `now`: bytes in transit are lost.
    fn disconnect(&mut self, now: Instant);

    /// A new connection is up at `now`.
    fn reconnect(&mut self, now: Instant);

    /// Whether the connection is up.
    fn is_connected(&self) -> bool;
}

impl Medium for Link {
    type Stats = LinkStats;

    fn send(&mut self, now: Instant, data: &[u8]) -> usize {
        // A datagram is taken whole: the link delivers it or drops it and counts why.
        self.handle_input(now, data);
        data.len()
    }

    fn poll_deliver(&mut self, now: Instant, buf: &mut Vec<u8>) -> Option<usize> {
        self.poll_transmit(now, buf)
    }

    fn poll_timeout(&self) -> Option<Instant> {
        Link::poll_timeout(self)
    }

    fn stats(&self) -> LinkStats {
        Link::stats(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::{test_start, LinkConfig};
    use std::time::Duration;

    #[test]
    fn a_link_takes_every_datagram_whole_even_when_it_drops_it() {
        let start = test_start();
        let config = LinkConfig::perfect()
            .with_delay(Duration::from_millis(3))
            .with_max_in_flight(1);
        let mut link = Link::new(config, 1);
        assert_eq!(Medium::send(&mut link, start, b"kept"), 4);
        assert_eq!(Medium::send(&mut link, start, b"dropped"), 7);
        assert_eq!(Medium::stats(&link).queue_dropped, 1);
        let due = Medium::poll_timeout(&link).unwrap();
        assert_eq!(due, start + Duration::from_millis(3));
        let mut buf = Vec::new();
        assert_eq!(link.poll_deliver(start, &mut buf), None, "not due yet");
        assert_eq!(link.poll_deliver(due, &mut buf), Some(4));
        assert_eq!(buf, b"kept");
        assert_eq!(Medium::poll_timeout(&link), None);
    }
}
