//! The JSON line each client role of a bench peer prints on success, the same for
//! `tests/go/kcppeer` and `tether bench-peer`: `bench-peer` writes these records and
//! `tether bench` reads them back from either peer. Fields appear in kcppeer's order; floats
//! are rounded to kcppeer's 6 decimals. Fields a reader does not know are ignored.
use serde::{Deserialize, Serialize};

use crate::rounded::rounded;

/// What every client reports about its own process.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Resources {
    /// User + system CPU of the whole client process.
    #[serde(serialize_with = "rounded::<6, _>")]
    pub cpu_seconds: f64,
    /// The client's peak RSS (VmHWM).
    pub max_rss_kb: u64,
}

/// `--role bulk`: the bytes sent and echoed back, and how long that took.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BulkRecord {
    /// Bytes written.
    pub sent: u64,
    /// Bytes read back.
    pub received: u64,
    /// SHA-256 of the bytes written, hex.
    pub sha256_sent: String,
    /// SHA-256 of the bytes read back, hex.
    pub sha256_received: String,
    /// From the hello's answer to the last byte read back.
    #[serde(serialize_with = "rounded::<6, _>")]
    pub seconds: f64,
    /// The client's CPU and memory.
    #[serde(flatten)]
    pub resources: Resources,
}

/// `--role rtt`: echo round-trip times of `count` messages of `size` bytes, one at a time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RttRecord {
    /// Messages echoed.
    pub count: u64,
    /// Bytes per message.
    pub size: u64,
    /// Fastest round trip, µs.
    pub min_us: u64,
    /// Median round trip (nearest rank), µs.
    pub p50_us: u64,
    /// 90th percentile, µs.
    pub p90_us: u64,
    /// 99th percentile, µs.
    pub p99_us: u64,
    /// Slowest round trip, µs.
    pub max_us: u64,
    /// Mean round trip (integer division), µs.
    pub mean_us: u64,
    /// Wall time of all the echoes.
    #[serde(serialize_with = "rounded::<6, _>")]
    pub seconds: f64,
    /// The client's CPU and memory.
    #[serde(flatten)]
    pub resources: Resources,
}

/// `--role idle`: `sessions` dialled, held open without traffic for `hold_seconds`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IdleRecord {
    /// Sessions asked for.
    pub sessions: u64,
    /// Sessions whose hello was answered.
    pub established: u64,
    /// Dialling and the hellos, all sessions.
    #[serde(serialize_with = "rounded::<6, _>")]
    pub setup_seconds: f64,
    /// How long the sessions were held.
    #[serde(serialize_with = "rounded::<6, _>")]
    pub hold_seconds: f64,
    /// The client's CPU and memory (at the end).
    #[serde(flatten)]
    pub resources: Resources,
    /// The client's CPU during the hold.
    #[serde(serialize_with = "rounded::<6, _>")]
    pub hold_cpu_seconds: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Lines as tests/go/kcppeer prints them (`printJSON`: `%.6f` floats, `%v` integers).
    const GO_BULK: &str = r#"{"sent":4194304,"received":4194304,"sha256_sent":"ab12","sha256_received":"ab12","seconds":0.512345,"cpu_seconds":0.420000,"max_rss_kb":12345}"#;
    const GO_RTT: &str = r#"{"count":1000,"size":64,"min_us":40,"p50_us":63,"p90_us":80,"p99_us":135,"max_us":900,"mean_us":70,"seconds":0.070000,"cpu_seconds":0.050000,"max_rss_kb":9000}"#;
    const GO_IDLE: &str = r#"{"sessions":100,"established":100,"setup_seconds":0.250000,"hold_seconds":10.000123,"cpu_seconds":1.230000,"max_rss_kb":50000,"hold_cpu_seconds":0.010000}"#;

    fn round_trip<T>(line: &str) -> T
    where
        T: Serialize + for<'de> Deserialize<'de> + PartialEq + std::fmt::Debug,
    {
        let record: T = serde_json::from_str(line).expect("parses kcppeer's line");
        let again = serde_json::to_string(&record).unwrap();
        let back: T = serde_json::from_str(&again).unwrap();
        assert_eq!(back, record, "{again}");
        // Same fields in the same order as kcppeer's (only float formatting may differ).
        // The lines are flat and their values hold no `,` or `:`.
        let keys = |s: &str| -> Vec<String> {
            s.trim_matches(|c| c == '{' || c == '}')
                .split(',')
                .map(|kv| kv.split(':').next().unwrap_or_default().to_string())
                .collect()
        };
        assert_eq!(keys(&again), keys(line));
        record
    }

    #[test]
    fn kcppeer_lines_round_trip() {
        let b: BulkRecord = round_trip(GO_BULK);
        assert_eq!((b.sent, b.seconds), (4_194_304, 0.512345));
        assert_eq!(b.resources.max_rss_kb, 12345);
        let r: RttRecord = round_trip(GO_RTT);
        assert_eq!((r.p50_us, r.p99_us, r.mean_us), (63, 135, 70));
        let i: IdleRecord = round_trip(GO_IDLE);
        assert_eq!((i.established, i.hold_cpu_seconds), (100, 0.01));
        assert_eq!(i.resources.cpu_seconds, 1.23);
    }

    #[test]
    fn our_lines_keep_kcppeers_order_and_six_decimals() {
        let line = serde_json::to_string(&IdleRecord {
            sessions: 2,
            established: 2,
            setup_seconds: 0.123_456_789,
            hold_seconds: 1.0,
            resources: Resources {
                cpu_seconds: 0.5,
                max_rss_kb: 7,
            },
            hold_cpu_seconds: 0.0,
        })
        .unwrap();
        assert_eq!(
            line,
            r#"{"sessions":2,"established":2,"setup_seconds":0.123457,"hold_seconds":1.0,"cpu_seconds":0.5,"max_rss_kb":7,"hold_cpu_seconds":0.0}"#
        );
    }

    #[test]
    fn missing_fields_are_an_error_and_unknown_ones_ignored() {
        assert!(serde_json::from_str::<RttRecord>(r#"{"count":1}"#).is_err());
        let with_extra = GO_BULK.replace('}', r#","extra":"x"}"#);
        assert!(serde_json::from_str::<BulkRecord>(&with_extra).is_ok());
    }
}
