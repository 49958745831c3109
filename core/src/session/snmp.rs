//! kcp-go's SNMP counter set (kcp-go-session.md §9), per session or summed over a listener,
//! with the CSV layout of kcptun's `--snmplog` (kcptun.md §10).
use crate::kcp::KcpStats;

/// The 24 kcp-go counters, in kcp-go `Header()` order.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Snmp {
    /// `BytesSent`: application bytes accepted by write.
    pub bytes_sent: u64,
    /// `BytesReceived`: application bytes returned by read.
    pub bytes_received: u64,
    /// `MaxConn`: most sessions alive at once.
    pub max_conn: u64,
    /// `ActiveOpens`: client sessions created.
    pub active_opens: u64,
    /// `PassiveOpens`: listener sessions created.
    pub passive_opens: u64,
    /// `CurrEstab`: sessions alive now.
    pub curr_estab: u64,
    /// `InErrs`: datagrams from an unexpected source, or FEC-tagged and too short.
    pub in_errs: u64,
    /// `InCsumErrors`: CRC (or AEAD tag / replay) failures after decryption.
    pub in_csum_errors: u64,
    /// `KCPInErrors`: datagrams KCP input rejected.
    pub kcp_in_errors: u64,
    /// `InPkts`: datagrams reaching KCP input.
    pub in_pkts: u64,
    /// `OutPkts`: datagrams sent.
    pub out_pkts: u64,
    /// `InSegs`: KCP segments parsed.
    pub in_segs: u64,
    /// `OutSegs`: KCP segments encoded.
    pub out_segs: u64,
    /// `InBytes`: bytes reaching KCP input (after the crypto header).
    pub in_bytes: u64,
    /// `OutBytes`: bytes sent.
    pub out_bytes: u64,
    /// `RetransSegs`: all retransmissions.
    pub retrans_segs: u64,
    /// `FastRetransSegs`.
    pub fast_retrans_segs: u64,
    /// `EarlyRetransSegs`.
    pub early_retrans_segs: u64,
    /// `LostSegs`: retransmissions after an RTO.
    pub lost_segs: u64,
    /// `RepeatSegs`: duplicate or out-of-window PUSH segments.
    pub repeat_segs: u64,
    /// `FECParityShards`: parity datagrams received.
    pub fec_parity_shards: u64,
    /// `FECErrs`: recovered shards with an invalid size field.
    pub fec_errs: u64,
    /// `FECRecovered`: recovered packets accepted by KCP.
    pub fec_recovered: u64,
    /// `FECShortShards`: data shards evicted before their group resolved.
    pub fec_short_shards: u64,
}

/// kcp-go's counter names in `Header()` order.
pub const SNMP_HEADER: [&str; 24] = [
    "BytesSent",
    "BytesReceived",
    "MaxConn",
    "ActiveOpens",
    "PassiveOpens",
    "CurrEstab",
    "InErrs",
    "InCsumErrors",
    "KCPInErrors",
    "InPkts",
    "OutPkts",
    "InSegs",
    "OutSegs",
    "InBytes",
    "OutBytes",
    "RetransSegs",
    "FastRetransSegs",
    "EarlyRetransSegs",
    "LostSegs",
    "RepeatSegs",
    "FECParityShards",
    "FECErrs",
    "FECRecovered",
    "FECShortShards",
];

impl Snmp {
    /// The values in [`SNMP_HEADER`] order.
    pub fn values(&self) -> [u64; 24] {
        [
            self.bytes_sent,
            self.bytes_received,
            self.max_conn,
            self.active_opens,
            self.passive_opens,
            self.curr_estab,
            self.in_errs,
            self.in_csum_errors,
            self.kcp_in_errors,
            self.in_pkts,
            self.out_pkts,
            self.in_segs,
            self.out_segs,
            self.in_bytes,
            self.out_bytes,
            self.retrans_segs,
            self.fast_retrans_segs,
            self.early_retrans_segs,
            self.lost_segs,
            self.repeat_segs,
            self.fec_parity_shards,
            self.fec_errs,
            self.fec_recovered,
            self.fec_short_shards,
        ]
    }

    /// kcptun's `--snmplog` header line: `Unix` then the 24 names.
    pub fn csv_header() -> String {
        let mut s = String::from("Unix");
        for n in SNMP_HEADER {
            s.push(',');
            s.push_str(n);
        }
        s
    }

    /// One `--snmplog` row; `unix_secs` is supplied by the caller (core reads no clock).
    pub fn csv_row(&self, unix_secs: u64) -> String {
        let mut s = unix_secs.to_string();
        for v in self.values() {
            s.push(',');
            s.push_str(&v.to_string());
        }
        s
    }

    /// Adds the KCP-level counters of one control block.
    pub fn add_kcp(&mut self, k: &KcpStats) {
        self.in_segs += k.in_segs;
        self.out_segs += k.out_segs;
        self.retrans_segs += k.retrans_segs;
        self.fast_retrans_segs += k.fast_retrans_segs;
        self.early_retrans_segs += k.early_retrans_segs;
        self.lost_segs += k.lost_segs;
        self.repeat_segs += k.repeat_segs;
        self.kcp_in_errors += k.kcp_in_errors;
        self.bytes_sent += k.bytes_sent;
        self.bytes_received += k.bytes_received;
    }

    /// Field-wise sum (for totals over many sessions). `max_conn` takes the maximum.
    pub fn merge(&mut self, o: &Snmp) {
        let mut a = self.values();
        let b = o.values();
        for (x, y) in a.iter_mut().zip(b) {
            *x += y;
        }
        let max_conn = self.max_conn.max(o.max_conn);
        *self = Snmp::from_values(a);
        self.max_conn = max_conn;
    }

    fn from_values(v: [u64; 24]) -> Snmp {
        Snmp {
            bytes_sent: v[0],
            bytes_received: v[1],
            max_conn: v[2],
            active_opens: v[3],
            passive_opens: v[4],
            curr_estab: v[5],
            in_errs: v[6],
            in_csum_errors: v[7],
            kcp_in_errors: v[8],
            in_pkts: v[9],
            out_pkts: v[10],
            in_segs: v[11],
            out_segs: v[12],
            in_bytes: v[13],
            out_bytes: v[14],
            retrans_segs: v[15],
            fast_retrans_segs: v[16],
            early_retrans_segs: v[17],
            lost_segs: v[18],
            repeat_segs: v[19],
            fec_parity_shards: v[20],
            fec_errs: v[21],
            fec_recovered: v[22],
            fec_short_shards: v[23],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_matches_kcptun_layout() {
        let h = Snmp::csv_header();
        assert!(h.starts_with("Unix,BytesSent,BytesReceived,MaxConn,"));
        assert!(h.ends_with(",FECParityShards,FECErrs,FECRecovered,FECShortShards"));
        let s = Snmp {
            out_pkts: 7,
            fec_short_shards: 2,
            ..Snmp::default()
        };
        let row = s.csv_row(1700000000);
        assert_eq!(row.split(',').count(), 25);
        assert!(row.starts_with("1700000000,0,0,0,0,0,0,0,0,0,0,7,"));
        let mut t = s;
        t.merge(&s);
        assert_eq!(t.out_pkts, 14);
    }
}
