//! Conversions between the API's [`Instant`]s and each protocol's wire clock.
use std::time::{Duration, Instant};

/// A session's millisecond wire clock: wrapping `u32` milliseconds since an epoch `Instant`
/// chosen by the caller (KCP's `ts`, penet's timestamp).
#[derive(Debug, Clone, Copy)]
pub struct WireClock {
    epoch: Instant,
}

impl WireClock {
    /// A clock whose millisecond 0 is `epoch`.
    pub fn new(epoch: Instant) -> Self {
        Self { epoch }
    }

    /// Wrapping milliseconds since the epoch (0 for instants before it).
    pub fn ms(&self, now: Instant) -> u32 {
        let d = now.saturating_duration_since(self.epoch);
        // Truncation to u32 is the wire format's wrap (kcp.md conventions).
        d.as_millis() as u32
    }

    /// The instant of wire millisecond `ms`, taken as the first instant at or after `now`
    /// whose millisecond count is `ms` (wrap-aware, within ±24 days of `now`).
    pub fn instant_at(&self, now: Instant, ms: u32) -> Instant {
        let cur = self.ms(now);
        let diff = ms.wrapping_sub(cur) as i32;
        if diff <= 0 {
            return now;
        }
        let base = now.saturating_duration_since(self.epoch);
        let base_ms = Duration::from_millis(base.as_millis() as u64);
        self.epoch + base_ms + Duration::from_millis(diff as u64)
    }
}

/// Wrapping signed difference `a - b` of two u32 sequence numbers or timestamps (kcp.md conventions).
#[inline]
pub fn timediff(a: u32, b: u32) -> i32 {
    a.wrapping_sub(b) as i32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instant_round_trips() {
        let epoch = crate::sim::test_start();
        let c = WireClock::new(epoch);
        let now = epoch + Duration::from_micros(10_500);
        assert_eq!(c.ms(now), 10);
        let at = c.instant_at(now, 40);
        assert_eq!(c.ms(at), 40);
        assert!(at > now);
        assert_eq!(c.instant_at(now, 5), now);
        assert_eq!(timediff(1, u32::MAX), 2);
    }
}
