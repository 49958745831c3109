//! Per-stream flow control: xtaci v2's UPD accounting (smux-xtaci.md §4.2) and the seed's
//! CFM confirmations (smux-seed.md §4); v1 has none (§4.1).
#![deny(clippy::indexing_slicing, clippy::unwrap_used, clippy::expect_used)]

/// Before any UPD a v2 writer assumes this window (`initialPeerWindow`, §4.2).
pub(crate) const INITIAL_PEER_WINDOW: u32 = 262_144;

/// The sending half's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SendFlow {
    /// v1: no window.
    Unlimited,
    /// v2: bytes sent, and the peer's last UPD (u32, wrapping).
    Upd {
        written: u32,
        consumed: u32,
        window: u32,
    },
    /// Seed: bytes sent and not confirmed, against a fixed window.
    Cfm { waiting: u32, window: u32 },
}

impl SendFlow {
    /// Bytes that may be sent now.
    pub fn window(&self) -> usize {
        match *self {
            SendFlow::Unlimited => usize::MAX,
            SendFlow::Upd {
                written,
                consumed,
                window,
            } => {
                let inflight = i64::from(written.wrapping_sub(consumed) as i32);
                usize::try_from(i64::from(window) - inflight.max(0)).unwrap_or(0)
            }
            SendFlow::Cfm { waiting, window } => {
                usize::try_from(window.saturating_sub(waiting)).unwrap_or(0)
            }
        }
    }

    /// `n` bytes were sent in a PSH.
    pub fn sent(&mut self, n: usize) {
        let n = u32::try_from(n).unwrap_or(u32::MAX);
        match self {
            SendFlow::Unlimited => {}
            SendFlow::Upd { written, .. } => *written = written.wrapping_add(n),
            SendFlow::Cfm { waiting, .. } => *waiting = waiting.saturating_add(n),
        }
    }

    /// A v2 UPD: `Err` when the peer claims more consumed than sent (`ErrConsumed`).
    pub fn update(&mut self, upd_consumed: u32, upd_window: u32) -> Result<(), ()> {
        if let SendFlow::Upd {
            written,
            consumed,
            window,
        } = self
        {
            if (written.wrapping_sub(upd_consumed) as i32) < 0 {
                return Err(());
            }
            *consumed = upd_consumed;
            *window = upd_window;
        }
        Ok(())
    }

    /// A seed CFM: `Err(outstanding)` when the credit exceeds what is outstanding.
    pub fn confirm(&mut self, credit: u32) -> Result<(), u32> {
        if let SendFlow::Cfm { waiting, .. } = self {
            if credit > *waiting {
                return Err(*waiting);
            }
            *waiting -= credit;
        }
        Ok(())
    }
}

/// The receiving half's counters: bytes the application read (v2 `numRead`), and read since
/// the last UPD / CFM.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct RecvFlow {
    pub read: u32,
    pub since_update: u32,
}

/// A window update to send after a read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Update {
    /// v2 UPD payload.
    Upd { consumed: u32, window: u32 },
    /// Seed CFM credit.
    Cfm(u32),
}

impl RecvFlow {
    /// The application read `n > 0` bytes. v2 sends an UPD on the first read and whenever
    /// half the window was read since the last one (§4.2); the seed a CFM once 262144 bytes
    /// (half its window) were read (§4). `window` is this side's `max_stream_buffer`.
    pub fn on_read(&mut self, n: usize, v2: bool, window: usize) -> Option<Update> {
        let n = u32::try_from(n).unwrap_or(u32::MAX);
        let window = u32::try_from(window).unwrap_or(u32::MAX);
        self.read = self.read.wrapping_add(n);
        self.since_update = self.since_update.saturating_add(n);
        let half = window / 2;
        if v2 {
            if self.since_update >= half || self.read == n {
                self.since_update = 0;
                return Some(Update::Upd {
                    consumed: self.read,
                    window,
                });
            }
        } else if self.since_update >= half {
            return Some(Update::Cfm(std::mem::take(&mut self.since_update)));
        }
        None
    }
}
