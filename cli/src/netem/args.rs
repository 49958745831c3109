//! The flags of `tether netem` and the engine configuration they describe.
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

use clap::Args;
use tether_core::sim::netem::EngineConfig;
use tether_core::sim::LinkConfig;

use crate::link_flags::LinkFlags;
use crate::units::parse_duration;

/// Flags of `tether netem`.
#[derive(Debug, Args, Clone)]
pub struct NetemArgs {
    /// Address clients send to (`127.0.0.1:0` picks a free port; see the readiness line).
    #[arg(long, value_parser = parse_addr)]
    pub listen: SocketAddr,
    /// Address of the server datagrams are forwarded to.
    #[arg(long, value_parser = parse_addr)]
    pub forward: SocketAddr,
    #[command(flatten)]
    pub impair: LinkFlags,
    /// One-way delay added in each direction (so the RTT grows by twice this).
    #[arg(long, value_parser = parse_duration)]
    pub delay: Option<Duration>,
    /// Bound on datagrams held by one link (per client and direction); more are dropped.
    #[arg(long, default_value_t = 8192)]
    pub max_in_flight: usize,
    /// Seed of every link (each client and direction derives its own from it).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Stop after this long (e.g. 30s); default: until Ctrl-C / SIGTERM.
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Forget a client mapping after this long without traffic either way.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub idle_timeout: Duration,
    /// Bound on client mappings; datagrams of further clients are dropped until one expires.
    #[arg(long, default_value_t = 4096)]
    pub max_clients: usize,
    /// Do not log clients coming and going (the readiness line and counters still print).
    #[arg(long)]
    pub quiet: bool,
}

fn parse_addr(s: &str) -> Result<SocketAddr, String> {
    s.to_socket_addrs()
        .map_err(|e| format!("`{s}`: {e}"))?
        .next()
        .ok_or_else(|| format!("`{s}` resolves to no address"))
}

impl NetemArgs {
    /// The impairments of one direction (both directions get the same configuration and
    /// different seeds).
    pub fn link(&self) -> LinkConfig {
        self.impair
            .link(self.delay)
            .with_max_in_flight(self.max_in_flight.max(1))
    }

    /// The engine configuration these flags describe.
    pub fn engine_config(&self) -> EngineConfig {
        EngineConfig {
            up: self.link(),
            down: self.link(),
            seed: self.seed,
            idle_timeout: self.idle_timeout,
            max_clients: self.max_clients.max(1),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Wrap {
        #[command(flatten)]
        args: NetemArgs,
    }

    #[test]
    fn flags_build_the_link() {
        let w = Wrap::parse_from([
            "netem",
            "--listen",
            "127.0.0.1:0",
            "--forward",
            "127.0.0.1:4000",
            "--loss",
            "5%",
            "--delay",
            "20ms",
            "--jitter",
            "5ms",
            "--reorder",
            "1%",
            "--dup",
            "1%",
            "--rate",
            "50mbit",
            "--queue",
            "128KiB",
            "--corrupt",
            "0.1%",
            "--seed",
            "9",
            "--duration",
            "30s",
        ]);
        let l = w.args.link();
        let expected = LinkConfig::perfect()
            .with_loss(0.05)
            .with_delay(Duration::from_millis(20))
            .with_jitter(Duration::from_millis(5))
            .with_reorder(0.01, Duration::from_millis(10))
            .with_duplicate(0.01)
            .with_corrupt(0.001)
            .with_rate(50_000_000, 128 * 1024)
            .with_max_in_flight(8192);
        assert_eq!(l, expected);
        assert_eq!(w.args.seed, 9);
        assert_eq!(w.args.duration, Some(Duration::from_secs(30)));
        assert_eq!(w.args.engine_config().max_clients, 4096);

        let w = Wrap::parse_from([
            "netem",
            "--listen",
            "127.0.0.1:0",
            "--forward",
            "127.0.0.1:4000",
            "--preset",
            "satellite",
            "--burst-loss",
            "5%",
            "--burst-len",
            "4",
        ]);
        let l = w.args.link();
        assert_eq!(l.delay, Duration::from_millis(300), "preset kept");
        assert!(matches!(
            l.loss,
            tether_core::sim::Loss::GilbertElliott { r, .. } if r == 0.25
        ));
        assert!(Wrap::try_parse_from([
            "netem",
            "--listen",
            "127.0.0.1:0",
            "--forward",
            "127.0.0.1:1",
            "--preset",
            "moon"
        ])
        .is_err());
    }
}
