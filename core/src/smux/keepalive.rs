//! xtaci's keepalive (smux-xtaci.md §8): a NOP every interval; the session closes when a
//! whole timeout period passed with no inbound frame, unless reading was paused by
//! back-pressure. The seed has none (smux-seed.md §8): no timer at all.
use std::time::{Duration, Instant};

/// What a keepalive tick asks for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Tick {
    pub send_nop: bool,
    pub timed_out: bool,
}

#[derive(Debug)]
pub(crate) struct Keepalive {
    interval: Option<Duration>,
    timeout: Duration,
    next_nop: Option<Instant>,
    next_check: Option<Instant>,
    /// A frame arrived since the last check.
    pub seen: bool,
}

impl Keepalive {
    pub fn new(interval: Option<Duration>, timeout: Duration) -> Self {
        Keepalive {
            interval,
            timeout,
            next_nop: None,
            next_check: None,
            seen: false,
        }
    }

    /// Starts the clocks at the session's first instant (the constructor has no `now`).
    pub fn arm(&mut self, now: Instant) {
        if let (Some(i), None) = (self.interval, self.next_nop) {
            self.next_nop = now.checked_add(i);
            self.next_check = now.checked_add(self.timeout);
        }
    }

    pub fn deadline(&self) -> Option<Instant> {
        [self.next_nop, self.next_check].into_iter().flatten().min()
    }

    /// Fires what is due at `now`; `paused`: reading is held back by back-pressure.
    pub fn fire(&mut self, now: Instant, paused: bool) -> Tick {
        let mut tick = Tick::default();
        let Some(interval) = self.interval else {
            return tick;
        };
        if self.next_nop.is_some_and(|t| t <= now) {
            tick.send_nop = true;
            self.next_nop = now.checked_add(interval);
        }
        if self.next_check.is_some_and(|t| t <= now) {
            tick.timed_out = !self.seen && !paused;
            self.seen = false;
            self.next_check = now.checked_add(self.timeout);
        }
        tick
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }
}
