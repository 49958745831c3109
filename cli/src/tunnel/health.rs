//! Never a silent hang: once a second the counters are compared with the last look, and a
//! sustained pattern becomes one clear warning (repeated at most every [`REPEAT`] looks).
//! - Datagrams failing the checksum (kcp-go's `InCsumErrors`): the peer's `--key` or
//!   `--crypt` differs (kcptun.md §11).
//! - A client sending for [`SILENCE`] looks without a single datagram back: the server is
//!   not running there, unreachable, or drops everything it gets (a key mismatch looks the
//!   same from this side).
use std::collections::VecDeque;

use tether_core::session::snmp::Snmp;

/// Looks (seconds) the checksum window spans.
const WINDOW: usize = 5;
/// Checksum failures within the window that count as sustained.
const CSUM_ALARM: u64 = 3;
/// Consecutive looks of sending without receiving that count as "no answer".
const SILENCE: u32 = 5;
/// Looks between two warnings of the same kind.
const REPEAT: u32 = 30;

/// What the counters show.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alarm {
    /// `failed` datagrams from the peer failed the checksum in the last few seconds.
    Checksum {
        /// Failures within the window.
        failed: u64,
    },
    /// Datagrams went out for `secs` seconds and none came back.
    NoAnswer {
        /// Seconds of silence.
        secs: u32,
        /// Datagrams sent meanwhile.
        sent: u64,
    },
}

impl std::fmt::Display for Alarm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Alarm::Checksum { failed } => write!(
                f,
                "packets fail checksum: peer key or crypt differs? ({failed} datagrams in \
                 the last {WINDOW} s failed; --key and --crypt must match on both ends)"
            ),
            Alarm::NoAnswer { secs, sent } => write!(
                f,
                "no answer from the server for {secs} s ({sent} datagrams sent): is it \
                 running and reachable, and do --key, --crypt, --datashard/--parityshard \
                 match on both ends?"
            ),
        }
    }
}

/// The watcher's memory between looks.
#[derive(Debug, Default)]
pub struct Watch {
    last: Snmp,
    csum: VecDeque<u64>,
    silent: u32,
    sent_silent: u64,
    csum_quiet: u32,
    silence_quiet: u32,
}

impl Watch {
    /// One look at the cumulative counters; the alarms to raise now.
    pub fn look(&mut self, now: &Snmp, expect_answers: bool) -> Vec<Alarm> {
        let d = |a: u64, b: u64| a.saturating_sub(b);
        let csum = d(now.in_csum_errors, self.last.in_csum_errors);
        let got = d(now.in_pkts, self.last.in_pkts);
        let sent = d(now.out_pkts, self.last.out_pkts);
        self.last = *now;
        self.csum.push_back(csum);
        if self.csum.len() > WINDOW {
            self.csum.pop_front();
        }
        self.csum_quiet = self.csum_quiet.saturating_sub(1);
        self.silence_quiet = self.silence_quiet.saturating_sub(1);
        let mut alarms = Vec::new();
        let failed: u64 = self.csum.iter().sum();
        if failed >= CSUM_ALARM && self.csum_quiet == 0 {
            self.csum_quiet = REPEAT;
            alarms.push(Alarm::Checksum { failed });
        }
        if got > 0 || sent == 0 {
            self.silent = 0;
            self.sent_silent = 0;
        } else {
            self.silent += 1;
            self.sent_silent += sent;
        }
        if expect_answers && self.silent >= SILENCE && self.silence_quiet == 0 {
            self.silence_quiet = REPEAT;
            alarms.push(Alarm::NoAnswer {
                secs: self.silent,
                sent: self.sent_silent,
            });
        }
        alarms
    }
}

/// Looks once a second at `snapshot` and logs every alarm, forever.
pub async fn run(snapshot: impl Fn() -> Snmp, expect_answers: bool) {
    let mut watch = Watch::default();
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
    loop {
        tick.tick().await;
        for alarm in watch.look(&snapshot(), expect_answers) {
            tracing::warn!("{alarm}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counters(csum: u64, in_pkts: u64, out_pkts: u64) -> Snmp {
        Snmp {
            in_csum_errors: csum,
            in_pkts,
            out_pkts,
            ..Snmp::default()
        }
    }

    #[test]
    fn sustained_checksum_failures_warn_once_then_rest() {
        let mut w = Watch::default();
        assert!(
            w.look(&counters(1, 0, 0), false).is_empty(),
            "one stray datagram"
        );
        let a = w.look(&counters(4, 0, 0), false);
        assert_eq!(a, vec![Alarm::Checksum { failed: 4 }]);
        assert!(a[0].to_string().contains("peer key or crypt differs?"));
        for i in 0..10 {
            assert!(
                w.look(&counters(5 + i, 0, 0), false).is_empty(),
                "rate-limited"
            );
        }
    }

    #[test]
    fn silence_while_sending_is_no_answer_for_a_client_only() {
        let mut client = Watch::default();
        let mut server = Watch::default();
        let mut raised = Vec::new();
        for s in 1..=6 {
            raised.extend(client.look(&counters(0, 0, s * 3), true));
            assert!(server.look(&counters(0, 0, s * 3), false).is_empty());
        }
        assert_eq!(raised, vec![Alarm::NoAnswer { secs: 5, sent: 15 }]);
        // Answers reset the count; an idle client (sends nothing) is not silent.
        let mut w = Watch::default();
        for s in 1..=10 {
            assert!(w.look(&counters(0, s, s), true).is_empty());
        }
        for _ in 0..10 {
            assert!(w.look(&counters(0, 10, 10), true).is_empty());
        }
    }
}
