//! The flags of `tether sim` and the transfer and link they describe.
use std::fmt::Write as _;
use std::time::Duration;

use clap::Args;
use tether_core::kcp::{KcpConfig, MODE_NAMES};
use tether_core::sim::transfer::TransferConfig;
use tether_core::sim::LinkConfig;

use super::text::{fmt_bytes, fmt_dur};
use crate::link_flags::LinkFlags;
use crate::units::{parse_duration, parse_size};

/// Flags of `tether sim`.
#[derive(Debug, Args, Clone, PartialEq)]
pub struct SimArgs {
    /// Payload to transfer (B, KiB, MiB, GiB, KB, MB, GB).
    #[arg(long, default_value = "8MiB", value_parser = parse_size)]
    pub bytes: u64,
    #[command(flatten)]
    pub impair: LinkFlags,
    /// Round-trip time (split evenly between the directions).
    #[arg(long, value_parser = parse_duration)]
    pub rtt: Option<Duration>,
    /// kcptun mode: normal, fast, fast2, fast3.
    #[arg(long, default_value = "fast", value_parser = parse_mode)]
    pub mode: String,
    /// Send window (segments); kcptun's client default.
    #[arg(long, default_value_t = 128)]
    pub sndwnd: u32,
    /// Receive window (segments); kcptun's client default.
    #[arg(long, default_value_t = 512)]
    pub rcvwnd: u32,
    /// MTU; kcptun's default.
    #[arg(long, default_value_t = 1350)]
    pub mtu: u32,
    /// Bytes reserved per datagram for crypto (20) and FEC (8) headers, as kcptun would.
    #[arg(long, default_value_t = 20)]
    pub reserved: u32,
    /// Flush ACKs immediately (kcptun --acknodelay).
    #[arg(long)]
    pub acknodelay: bool,
    /// Seed of the simulated link and payload. Same seed ⇒ identical output.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Give up after this much simulated time.
    #[arg(long, default_value = "1h", value_parser = parse_duration)]
    pub time_limit: Duration,
    /// Run all four modes side by side.
    #[arg(long)]
    pub compare_modes: bool,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// Also draw throughput over simulated time and the chunk-latency CDF (one line per
    /// mode with --compare-modes) to this SVG file.
    #[arg(long, value_name = "FILE.svg")]
    pub plot: Option<std::path::PathBuf>,
}

fn parse_mode(s: &str) -> Result<String, String> {
    if KcpConfig::mode(s).is_some() {
        Ok(s.to_string())
    } else {
        Err(format!(
            "unknown mode `{s}`: choose one of {}",
            MODE_NAMES.join(", ")
        ))
    }
}

impl SimArgs {
    fn link(&self) -> LinkConfig {
        self.impair.link(self.rtt.map(|r| r / 2))
    }

    pub fn transfer(&self, mode: &str) -> TransferConfig {
        let mut kcp = KcpConfig::mode(mode).unwrap_or_else(KcpConfig::fast);
        kcp.snd_wnd = self.sndwnd;
        kcp.rcv_wnd = self.rcvwnd;
        kcp.mtu = self.mtu;
        kcp.reserved = self.reserved;
        kcp.stream = true;
        kcp.ack_nodelay = self.acknodelay;
        TransferConfig {
            bytes: self.bytes,
            kcp,
            link_ab: self.link(),
            link_ba: self.link(),
            seed: self.seed,
            time_limit: self.time_limit,
        }
    }

    pub fn describe(&self) -> String {
        let mut s = format!("{} over", fmt_bytes(self.bytes));
        if let Some(p) = &self.impair.preset {
            let _ = write!(s, " preset {p} with");
        }
        let _ = write!(
            s,
            " loss {}",
            self.impair
                .loss
                .map_or("0%".into(), |p| format!("{:.1}%", p * 100.0))
        );
        if let Some(p) = self.impair.burst_loss {
            let _ = write!(
                s,
                " (bursty {:.1}%, bursts of ~{})",
                p * 100.0,
                self.impair.burst_len
            );
        }
        let _ = write!(s, ", rtt {}", fmt_dur(self.rtt.unwrap_or_default()));
        if let Some(j) = self.impair.jitter {
            let _ = write!(s, " ±{}", fmt_dur(j));
        }
        match self.impair.rate {
            Some(r) if r > 0 => {
                let _ = write!(s, ", rate {:.1} Mbit/s", r as f64 / 1e6);
            }
            _ => s.push_str(", rate unlimited"),
        }
        let _ = write!(
            s,
            "; wnd {}/{}, mtu {}, seed {}",
            self.sndwnd, self.rcvwnd, self.mtu, self.seed
        );
        s
    }
}
