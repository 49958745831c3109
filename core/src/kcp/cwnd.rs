//! Congestion window (kcp.md §10). Only consulted when `nocwnd` is off.

/// Floor of `ssthresh` (`IKCP_THRESH_MIN`).
pub const THRESH_MIN: u32 = 2;
/// Initial `ssthresh` (`IKCP_THRESH_INIT`).
pub const THRESH_INIT: u32 = 2;

/// Congestion-window state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cwnd {
    /// Congestion window in segments.
    pub cwnd: u32,
    /// Slow-start threshold.
    pub ssthresh: u32,
    /// Byte accumulator for congestion avoidance.
    pub incr: u32,
}

impl Default for Cwnd {
    fn default() -> Self {
        Cwnd {
            cwnd: 0,
            ssthresh: THRESH_INIT,
            incr: 0,
        }
    }
}

impl Cwnd {
    /// §10.1: growth when `snd_una` advanced during one input.
    pub fn on_una_advanced(&mut self, mss: u32, rmt_wnd: u32) {
        if self.cwnd >= rmt_wnd {
            return;
        }
        if self.cwnd < self.ssthresh {
            self.cwnd += 1;
            self.incr = self.incr.wrapping_add(mss);
        } else {
            if self.incr < mss {
                self.incr = mss;
            }
            self.incr = self
                .incr
                .wrapping_add((mss.wrapping_mul(mss)) / self.incr.max(1) + mss / 16);
            if (self.cwnd + 1).wrapping_mul(mss) <= self.incr {
                self.cwnd = match self.incr.checked_div(mss) {
                    Some(_) => self.incr.div_ceil(mss),
                    None => self.incr.wrapping_sub(1),
                };
            }
        }
        if self.cwnd > rmt_wnd {
            self.cwnd = rmt_wnd;
            self.incr = rmt_wnd.wrapping_mul(mss);
        }
    }

    /// §10.2: reduction at the end of a flush. `resent` is the fast-resend threshold as kcp-go
    /// computes it (0xFFFFFFFF when off, which makes cwnd wrap: a kcp-go quirk kept on purpose).
    pub fn after_flush(&mut self, p: FlushOutcome) {
        if p.fast_or_early > 0 {
            self.ssthresh = (p.inflight / 2).max(THRESH_MIN);
            self.cwnd = self.ssthresh.wrapping_add(p.resent);
            self.incr = self.cwnd.wrapping_mul(p.mss);
        }
        if p.lost > 0 {
            self.ssthresh = (p.cwnd_eff / 2).max(THRESH_MIN);
            self.cwnd = 1;
            self.incr = p.mss;
        }
        if self.cwnd < 1 {
            self.cwnd = 1;
            self.incr = p.mss;
        }
    }
}

/// What one flush did, as the congestion update needs it.
#[derive(Debug, Clone, Copy)]
pub struct FlushOutcome {
    /// Fast plus early retransmissions.
    pub fast_or_early: u64,
    /// Timeout retransmissions.
    pub lost: u64,
    /// `snd_nxt − snd_una`.
    pub inflight: u32,
    /// The effective window used by this flush.
    pub cwnd_eff: u32,
    /// Fast-resend threshold (0xFFFFFFFF when off).
    pub resent: u32,
    /// Segment size.
    pub mss: u32,
}
