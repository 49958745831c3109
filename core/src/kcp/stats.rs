//! Counters of one KCP control block, named after kcp-go's SNMP fields (kcp-go `snmp.go`).

/// Per-session KCP counters. Each field's doc names its kcp-go SNMP column.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KcpStats {
    /// `InSegs`: segments accepted by input.
    pub in_segs: u64,
    /// `OutSegs`: segments written by flush.
    pub out_segs: u64,
    /// `RetransSegs`: all retransmissions (lost + fast + early).
    pub retrans_segs: u64,
    /// `FastRetransSegs`: fast retransmissions (fastack ≥ resend).
    pub fast_retrans_segs: u64,
    /// `EarlyRetransSegs`: kcp-go's early retransmissions.
    pub early_retrans_segs: u64,
    /// `LostSegs`: retransmissions after an RTO expired.
    pub lost_segs: u64,
    /// `RepeatSegs`: duplicate, old or out-of-window PUSH segments.
    pub repeat_segs: u64,
    /// `KCPInErrors`: datagrams input rejected (bad conv, length or command).
    pub kcp_in_errors: u64,
    /// Datagrams emitted (`OutPkts` at the session layer).
    pub out_pkts: u64,
    /// Bytes emitted, headers and reserved space included (`OutBytes`).
    pub out_bytes: u64,
    /// Datagrams given to input (`InPkts`).
    pub in_pkts: u64,
    /// Bytes given to input (`InBytes`).
    pub in_bytes: u64,
    /// `BytesSent`: application bytes accepted by `write`/`send`.
    pub bytes_sent: u64,
    /// `BytesReceived`: application bytes returned by `recv`.
    pub bytes_received: u64,
}
