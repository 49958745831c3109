//! The flags of `tether bench-smux`.
use std::path::PathBuf;

use clap::{Args, ValueEnum};

use super::impls::Impl;
use crate::units::parse_size;

/// What carries the sessions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Transport {
    /// TCP loopback (every implementation).
    Tcp,
    /// A KCP session (kcptun's way; tether and Go smux only, yamux has no KCP binding).
    Kcp,
}

impl Transport {
    /// The `--transport` value of the peers.
    pub fn name(self) -> &'static str {
        match self {
            Transport::Tcp => "tcp",
            Transport::Kcp => "kcp",
        }
    }
}

/// Flags of `tether bench-smux`.
#[derive(Debug, Clone, Args)]
pub struct SmuxBenchArgs {
    /// What carries the sessions.
    #[arg(long, value_enum, default_value_t = Transport::Tcp)]
    pub transport: Transport,
    /// Bytes through the echo in the one-stream cell (default: 4GiB over TCP, 512MiB over
    /// KCP).
    #[arg(long, value_parser = parse_size)]
    pub single_bytes: Option<u64>,
    /// Streams of the many-streams cell.
    #[arg(long, default_value_t = 16)]
    pub streams: usize,
    /// Bytes per stream in the many-streams cell (default: 256MiB over TCP, 32MiB over KCP).
    #[arg(long, value_parser = parse_size)]
    pub multi_bytes: Option<u64>,
    /// Runs per cell, each on a new session (their throughput is pooled).
    #[arg(long, default_value_t = 1)]
    pub runs: usize,
    /// Only these implementations (comma-separated; default: all that fit the transport).
    #[arg(long, value_enum, value_delimiter = ',')]
    pub only: Vec<Impl>,
    /// Seconds a client run may take before it counts as failed.
    #[arg(long, default_value_t = 600)]
    pub timeout: u64,
    /// The tether binary whose `smux` subcommand makes the tether rows (default: this one).
    #[arg(long)]
    pub tether: Option<PathBuf>,
    /// The Go smux peer binary (default: build tests/go/smuxpeer into <target>/go-bin/).
    #[arg(long)]
    pub smuxpeer: Option<PathBuf>,
}

impl SmuxBenchArgs {
    /// Bytes per stream of the one-stream cell.
    pub fn single_bytes(&self) -> u64 {
        self.single_bytes.unwrap_or(match self.transport {
            Transport::Tcp => 4 << 30,
            Transport::Kcp => 512 << 20,
        })
    }

    /// Bytes per stream of the many-streams cell.
    pub fn multi_bytes(&self) -> u64 {
        self.multi_bytes.unwrap_or(match self.transport {
            Transport::Tcp => 256 << 20,
            Transport::Kcp => 32 << 20,
        })
    }
}
