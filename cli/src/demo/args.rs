//! The flags of `tether demo` (and of its hidden TCP-leg child), and the impairment both
//! legs share.
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use tether_core::sim::netem::EngineConfig;
use tether_core::sim::LinkConfig;

use crate::units::{parse_duration, parse_prob, parse_size};

/// What both legs share: the payload and the impaired link.
#[derive(Debug, Args, Clone)]
pub struct LegArgs {
    /// Payload pushed through the tunnel (and through plain TCP, until --tcp-time-limit).
    #[arg(long, default_value = "64MiB", value_parser = parse_size)]
    pub bytes: u64,
    /// Random loss in each direction of the impaired link, e.g. 3%.
    #[arg(long, default_value = "3%", value_parser = parse_prob)]
    pub loss: f64,
    /// Round-trip time of the impaired link (split evenly between the directions).
    #[arg(long, default_value = "60ms", value_parser = parse_duration)]
    pub rtt: Duration,
    /// Seed of the impairment (both legs draw the same losses) and of the payload.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

/// Flags of `tether demo`.
#[derive(Debug, Args, Clone)]
pub struct DemoArgs {
    #[command(flatten)]
    pub leg: LegArgs,
    /// kcptun mode of both tunnel ends: normal, fast, fast2, fast3.
    #[arg(long, default_value = "fast")]
    pub mode: String,
    /// The tunnel client's send window (segments). kcptun's client default, 128, held the
    /// demo's 3% / 60 ms link to about 13 Mbit/s; 1024 is the server's default.
    #[arg(long, default_value_t = 1024)]
    pub sndwnd: u32,
    /// The tunnel client's receive window (segments; kcptun's client default is 512).
    #[arg(long, default_value_t = 1024)]
    pub rcvwnd: u32,
    /// Stop the plain-TCP upload after this long and report what got through.
    #[arg(long, default_value = "20s", value_parser = parse_duration)]
    pub tcp_time_limit: Duration,
    /// Congestion control of the plain-TCP sender: cubic is Linux's default (a host may use
    /// another, e.g. bbr, which ignores random loss); any name the kernel allows.
    #[arg(long, default_value = "cubic")]
    pub tcp_congestion: String,
    /// Skip the plain-TCP leg (it needs a network namespace and a TUN device).
    #[arg(long)]
    pub no_tcp: bool,
    /// Also draw throughput over time and the small-request latency CDF to this SVG file.
    #[arg(long, value_name = "FILE.svg")]
    pub plot: Option<PathBuf>,
    /// No progress bars (also when stdout is not a terminal).
    #[arg(long)]
    pub quiet: bool,
}

/// Flags of the hidden `tether demo-tcp-leg` (started by `tether demo`).
#[derive(Debug, Args, Clone)]
pub struct TcpLegArgs {
    #[command(flatten)]
    pub leg: LegArgs,
    /// Stop the upload after this long.
    #[arg(long, value_parser = parse_duration)]
    pub time_limit: Duration,
    /// The sender's TCP congestion control.
    #[arg(long)]
    pub congestion: String,
}

impl DemoArgs {
    /// The child's command line for the same settings.
    pub fn tcp_leg_args(&self) -> Vec<String> {
        let l = &self.leg;
        vec![
            "demo-tcp-leg".into(),
            format!("--bytes={}", l.bytes),
            format!("--loss={}", l.loss),
            format!("--rtt={}us", l.rtt.as_micros()),
            format!("--seed={}", l.seed),
            format!("--time-limit={}ms", self.tcp_time_limit.as_millis()),
            format!("--congestion={}", self.tcp_congestion),
        ]
    }
}

impl LegArgs {
    /// The netem engine of either leg: `loss` each way, `rtt / 2` delay each way. Both legs
    /// admit exactly one client, so both draw the same per-direction seeds.
    pub fn engine_config(&self) -> EngineConfig {
        let link = LinkConfig::perfect()
            .with_loss(self.loss)
            .with_delay(self.rtt / 2)
            .with_max_in_flight(MAX_IN_FLIGHT);
        EngineConfig {
            up: link.clone(),
            down: link,
            seed: self.seed,
            // The demo's one mapping never expires while it runs.
            idle_timeout: Duration::from_secs(3600),
            max_clients: 4,
        }
    }
}

/// Datagrams one direction may hold in flight (as `tether netem`'s default).
const MAX_IN_FLIGHT: usize = 8192;
