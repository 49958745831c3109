//! The flags of `tether bench-peer` (kcppeer's names; kcptun's KCP flags).
use std::net::SocketAddr;
use std::time::Duration;

use clap::Args;

use crate::kcp_flags::KcpFlags;
use crate::units::{parse_duration, parse_size};

/// Flags of `tether bench-peer` (kcppeer's names; kcptun's KCP flags).
#[derive(Debug, Clone, Args)]
pub struct PeerArgs {
    /// Server: UDP address to listen on (127.0.0.1:0 picks a port).
    #[arg(long, conflicts_with = "connect", required_unless_present = "connect")]
    pub listen: Option<SocketAddr>,
    /// Client: UDP address of the server.
    #[arg(long)]
    pub connect: Option<String>,
    /// Server: echo (default). Client: bulk, rtt, idle.
    #[arg(long)]
    pub role: Option<String>,
    /// bulk: bytes each way.
    #[arg(long, default_value = "4194304", value_parser = parse_size)]
    pub bytes: u64,
    /// Seed of the xorshift64 payload pattern.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// rtt: number of messages.
    #[arg(long, default_value_t = 1000)]
    pub count: usize,
    /// rtt: message size.
    #[arg(long, default_value_t = 64)]
    pub size: usize,
    /// idle: number of sessions.
    #[arg(long, default_value_t = 100)]
    pub sessions: usize,
    /// idle: how long to hold the sessions.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub hold: Duration,
    /// Overall deadline (client: exit 3; server: exit 0); 0 = none.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Exit when stdin reaches EOF (the parent died).
    #[arg(long)]
    pub parentwatch: bool,
    /// Server: do not log sessions.
    #[arg(long)]
    pub quiet: bool,
    /// Server: sockets on the port (SO_REUSEPORT), each with its own socket task.
    #[arg(long, default_value_t = 1)]
    pub reuseport: usize,
    /// tokio worker threads (1: a current-thread runtime, as `tether cat`).
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    #[command(flatten)]
    pub kcp: KcpFlags,
}
