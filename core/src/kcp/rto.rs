//! RTT/RTO estimator, kcp-go's variant (kcp.md §9).

/// Largest RTO (`IKCP_RTO_MAX`).
pub const RTO_MAX: u32 = 60_000;
/// Initial RTO (`IKCP_RTO_DEF`).
pub const RTO_DEF: u32 = 200;
/// Minimum RTO without nodelay (`IKCP_RTO_MIN`).
pub const RTO_MIN: u32 = 100;
/// Minimum RTO with nodelay (`IKCP_RTO_NDL`).
pub const RTO_NDL: u32 = 30;

/// Smoothed RTT, variance and the resulting retransmission timeout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RttEstimator {
    /// Smoothed RTT (ms).
    pub srtt: i32,
    /// RTT variance (ms).
    pub rttvar: i32,
    /// Current retransmission timeout (ms).
    pub rto: u32,
    /// Lower bound of `rto`.
    pub min_rto: u32,
}

impl RttEstimator {
    /// A fresh estimator; `nodelay` selects the 30 ms floor.
    pub fn new(nodelay: bool) -> Self {
        RttEstimator {
            srtt: 0,
            rttvar: 0,
            rto: RTO_DEF,
            min_rto: if nodelay { RTO_NDL } else { RTO_MIN },
        }
    }

    /// Feeds one RTT sample. kcp.md §9: the low-sample test uses the already updated srtt.
    pub fn update(&mut self, rtt: i32, interval: u32) {
        if self.srtt == 0 {
            self.srtt = rtt;
            self.rttvar = rtt >> 1;
        } else {
            let mut delta = rtt.wrapping_sub(self.srtt);
            self.srtt = self.srtt.wrapping_add(delta >> 3);
            delta = delta.wrapping_abs();
            if rtt < self.srtt.wrapping_sub(self.rttvar) {
                self.rttvar = self
                    .rttvar
                    .wrapping_add(delta.wrapping_sub(self.rttvar) >> 5);
            } else {
                self.rttvar = self
                    .rttvar
                    .wrapping_add(delta.wrapping_sub(self.rttvar) >> 2);
            }
        }
        let rto =
            (self.srtt as u32).wrapping_add(interval.max((self.rttvar as u32).wrapping_shl(2)));
        self.rto = rto.clamp(self.min_rto, RTO_MAX);
    }
}

impl RttEstimator {
    /// ikcp.c's `ikcp_update_ack` (kcp.md §9): `rttval = (3·rttval + |Δ|) / 4`,
    /// `srtt = (7·srtt + rtt) / 8` (at least 1), C integer division.
    pub fn update_ikcp(&mut self, rtt: i32, interval: u32) {
        if self.srtt == 0 {
            self.srtt = rtt;
            self.rttvar = rtt / 2;
        } else {
            let delta = (i64::from(rtt) - i64::from(self.srtt)).abs();
            self.rttvar = ((3 * i64::from(self.rttvar) + delta) / 4) as i32;
            self.srtt = ((7 * i64::from(self.srtt) + i64::from(rtt)) / 8).max(1) as i32;
        }
        let rto = (i64::from(self.srtt) + i64::from(interval).max(4 * i64::from(self.rttvar)))
            .clamp(0, i64::from(u32::MAX)) as u32;
        self.rto = rto.clamp(self.min_rto, RTO_MAX);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_and_following_samples() {
        let mut e = RttEstimator::new(false);
        e.update(100, 30);
        assert_eq!((e.srtt, e.rttvar, e.rto), (100, 50, 300));
        e.update(80, 30);
        // delta -20: srtt 100 + (-20>>3 = -3) = 97; 80 < 97-50? no -> rttvar += (20-50)>>2 = -8 -> 42
        assert_eq!((e.srtt, e.rttvar, e.rto), (97, 42, 97 + 168));
        let mut n = RttEstimator::new(true);
        n.update(1, 10);
        assert_eq!(n.rto, RTO_NDL);
    }
}
