//! The flags of `tether bench-tunnel`.
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};

use crate::units::{parse_duration, parse_prob, parse_size};

/// The path between the tunnel client and the tunnel server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Link {
    /// Straight over loopback.
    Loopback,
    /// Through a `tether netem` child (`--loss` each way, `--rtt`).
    Netem,
}

impl Link {
    /// The name in tables and JSON.
    pub fn name(self) -> &'static str {
        match self {
            Link::Loopback => "loopback",
            Link::Netem => "netem",
        }
    }
}

/// Flags of `tether bench-tunnel`.
#[derive(Debug, Clone, Args)]
pub struct TunnelBenchArgs {
    /// How long each measurement pushes data (one implementation, one case, one run); a bare
    /// number is seconds.
    #[arg(long, default_value = "10", value_parser = parse_seconds)]
    pub seconds: Duration,
    /// Instead of a duration: push this many bytes per measurement (split over the streams)
    /// and time how long the target takes to receive them (`--seconds` then bounds it).
    #[arg(long, value_parser = parse_size)]
    pub bytes: Option<u64>,
    /// Runs per case; the implementations take turns within each run.
    #[arg(long, default_value_t = 2)]
    pub runs: usize,
    /// Concurrent TCP connections of the many-streams case (the other case has one).
    #[arg(long, default_value_t = 16)]
    pub streams: usize,
    /// Which links to measure (comma-separated).
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = [Link::Loopback, Link::Netem])]
    pub links: Vec<Link>,
    /// Random loss in each direction of the netem link.
    #[arg(long, default_value = "1%", value_parser = parse_prob)]
    pub loss: f64,
    /// Round-trip time the netem link adds (half of it each way).
    #[arg(long, default_value = "40ms", value_parser = parse_duration)]
    pub rtt: Duration,
    /// `--key` of both ends of both implementations.
    #[arg(long, default_value = "tether bench-tunnel")]
    pub key: String,
    /// More flags for all four tunnel ends, kcptun's spelling (e.g. "--crypt none --nocomp").
    #[arg(long, allow_hyphen_values = true, default_value = "")]
    pub args: String,
    /// Also write every figure as one JSON object to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Debian's kcptun client binary (default: `kcptun-client` on PATH).
    #[arg(long)]
    pub kcptun_client: Option<PathBuf>,
    /// Debian's kcptun server binary (default: `kcptun-server` on PATH).
    #[arg(long)]
    pub kcptun_server: Option<PathBuf>,
    /// The tether binary of the tether ends and of netem (default: this one).
    #[arg(long)]
    pub tether: Option<PathBuf>,
}

/// `10` (seconds), `2.5`, or with a unit as `parse_duration` takes them (`1500ms`).
fn parse_seconds(s: &str) -> Result<Duration, String> {
    match s.trim().parse::<f64>() {
        Ok(v) => Duration::try_from_secs_f64(v).map_err(|_| format!("`{s}` is not a duration")),
        Err(_) => parse_duration(s),
    }
}

impl TunnelBenchArgs {
    /// `--args` split into words (no quoting: kcptun's flag values have no spaces, except a
    /// `--key`, which has its own flag).
    pub fn extra_args(&self) -> Vec<String> {
        self.args.split_whitespace().map(String::from).collect()
    }

    /// The stream counts of the cases: one, then `--streams`.
    pub fn stream_counts(&self) -> Vec<usize> {
        let mut v = vec![1];
        if self.streams > 1 {
            v.push(self.streams);
        }
        v
    }
}
