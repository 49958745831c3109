//! `tether sim --json`: one object with the settings and a run per mode.
use serde::Serialize;
use tether_core::sim::transfer::TransferReport;

use super::args::SimArgs;
use crate::rounded::rounded;

/// The `--json` object.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SimJson<'a> {
    /// `--bytes`.
    pub bytes: u64,
    /// `--seed`.
    pub seed: u64,
    /// `--sndwnd`.
    pub sndwnd: u32,
    /// `--rcvwnd`.
    pub rcvwnd: u32,
    /// `--mtu`.
    pub mtu: u32,
    /// One per mode run.
    pub runs: Vec<RunJson<'a>>,
}

/// One transfer's figures.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunJson<'a> {
    /// The kcptun mode.
    pub mode: &'a str,
    /// Whether every byte arrived within `--time-limit`.
    pub completed: bool,
    /// Simulated time taken.
    #[serde(serialize_with = "rounded::<3, _>")]
    pub elapsed_ms: f64,
    /// Payload bits per simulated second.
    pub goodput_bps: u64,
    /// Payload bytes delivered.
    pub delivered_bytes: u64,
    /// Segments sent again, for any reason.
    pub retrans_segs: u64,
    /// Retransmissions after an RTO.
    pub lost_segs: u64,
    /// Fast retransmissions.
    pub fast_retrans_segs: u64,
    /// Early retransmissions.
    pub early_retrans_segs: u64,
    /// Data segments sent.
    pub out_segs: u64,
    /// Wire bytes beyond the payload, as a fraction of it.
    #[serde(serialize_with = "rounded::<6, _>")]
    pub overhead: f64,
    /// Datagrams sender → receiver.
    pub datagrams_forward: u64,
    /// Datagrams receiver → sender.
    pub datagrams_back: u64,
    /// Wire bytes sender → receiver.
    pub wire_bytes_forward: u64,
    /// Wire bytes receiver → sender.
    pub wire_bytes_back: u64,
    /// Median write-to-read latency of a chunk.
    #[serde(serialize_with = "rounded::<3, _>")]
    pub latency_p50_ms: f64,
    /// 99th percentile latency.
    #[serde(serialize_with = "rounded::<3, _>")]
    pub latency_p99_ms: f64,
    /// Largest latency.
    #[serde(serialize_with = "rounded::<3, _>")]
    pub latency_max_ms: f64,
    /// SHA-256 of the payload written, hex.
    pub sha256_sent: String,
    /// SHA-256 of the payload read, hex.
    pub sha256_received: String,
    /// Whether the two digests are equal.
    #[serde(rename = "match")]
    pub matches: bool,
}

impl<'a> RunJson<'a> {
    /// The figures of the run of `mode`.
    pub fn new(mode: &'a str, r: &TransferReport) -> Self {
        let ms = |d: std::time::Duration| d.as_secs_f64() * 1e3;
        Self {
            mode,
            completed: r.completed,
            elapsed_ms: ms(r.elapsed),
            goodput_bps: r.goodput_bps().round() as u64,
            delivered_bytes: r.delivered,
            retrans_segs: r.sender.retrans_segs,
            lost_segs: r.sender.lost_segs,
            fast_retrans_segs: r.sender.fast_retrans_segs,
            early_retrans_segs: r.sender.early_retrans_segs,
            out_segs: r.sender.out_segs,
            overhead: r.overhead(),
            datagrams_forward: r.datagrams_ab,
            datagrams_back: r.datagrams_ba,
            wire_bytes_forward: r.wire_bytes_ab,
            wire_bytes_back: r.wire_bytes_ba,
            latency_p50_ms: ms(r.latency_quantile(0.5)),
            latency_p99_ms: ms(r.latency_quantile(0.99)),
            latency_max_ms: ms(r.latency_quantile(1.0)),
            sha256_sent: hex::encode(r.sha256_sent),
            sha256_received: hex::encode(r.sha256_received),
            matches: r.sha256_sent == r.sha256_received,
        }
    }
}

/// The `--json` line of `reports`, one per mode.
pub fn json(args: &SimArgs, reports: &[(&str, TransferReport)]) -> serde_json::Result<String> {
    let out = SimJson {
        bytes: args.bytes,
        seed: args.seed,
        sndwnd: args.sndwnd,
        rcvwnd: args.rcvwnd,
        mtu: args.mtu,
        runs: reports.iter().map(|(m, r)| RunJson::new(m, r)).collect(),
    };
    serde_json::to_string(&out)
}
