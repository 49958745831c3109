//! The flags of `tether bench`.
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use crate::units::{parse_duration, parse_size};

/// Flags of `tether bench`.
#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    /// The kcp-go peer binary (default: build tests/go/kcppeer into <target>/go-bin/kcppeer).
    #[arg(long)]
    pub kcppeer: Option<PathBuf>,
    /// Bulk transfer: bytes each way through the echo server.
    #[arg(long, default_value = "256MiB", value_parser = parse_size)]
    pub bytes: u64,
    /// Number of 64-byte echoes for the RTT percentiles.
    #[arg(long, default_value_t = 2000)]
    pub rtt_count: usize,
    /// Idle sessions held open at once.
    #[arg(long, default_value_t = 5000)]
    pub idle_sessions: usize,
    /// How long the idle sessions are held.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub hold: Duration,
    /// Print one JSON object with every number instead of the markdown tables.
    #[arg(long)]
    pub json: bool,
    /// tokio worker threads of tether's peers (1: a current-thread runtime).
    #[arg(long, default_value_t = 1, hide = true)]
    pub threads: usize,
}
