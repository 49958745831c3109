//! Link-impairment flags shared by `tether sim` and `tether netem`: both build the same
//! `tether_core::sim::LinkConfig` for each direction.
use std::time::Duration;

use clap::Args;
use tether_core::sim::{LinkConfig, PRESET_NAMES};

use crate::units::{parse_duration, parse_prob, parse_rate, parse_size};

/// Impairments of one direction (both directions get the same flags and different seeds).
#[derive(Debug, Args, Clone, PartialEq)]
pub struct LinkFlags {
    /// Start from a named link preset; the flags below override it.
    #[arg(long, value_parser = parse_preset)]
    pub preset: Option<String>,
    /// Random loss in each direction (Bernoulli), e.g. 5%.
    #[arg(long, value_parser = parse_prob)]
    pub loss: Option<f64>,
    /// Bursty loss (Gilbert–Elliott) with this mean loss rate and mean burst length --burst-len.
    #[arg(long, value_parser = parse_prob)]
    pub burst_loss: Option<f64>,
    /// Mean length of a loss burst, in datagrams (with --burst-loss).
    #[arg(long, default_value_t = 4.0)]
    pub burst_len: f64,
    /// One-way jitter (uniform ±); never reorders by itself.
    #[arg(long, value_parser = parse_duration)]
    pub jitter: Option<Duration>,
    /// Probability that a datagram is held back by --reorder-delay so later ones overtake it.
    #[arg(long, value_parser = parse_prob)]
    pub reorder: Option<f64>,
    /// Extra delay of a reordered datagram [default: half the one-way delay, at least 10ms].
    #[arg(long, value_parser = parse_duration)]
    pub reorder_delay: Option<Duration>,
    /// Probability that a datagram is duplicated.
    #[arg(long, value_parser = parse_prob)]
    pub dup: Option<f64>,
    /// Probability that a datagram has one bit flipped.
    #[arg(long, value_parser = parse_prob)]
    pub corrupt: Option<f64>,
    /// Bottleneck rate in each direction, e.g. 20mbit; 0 = unlimited.
    #[arg(long, value_parser = parse_rate)]
    pub rate: Option<u64>,
    /// Bottleneck queue size (drop-tail), with --rate.
    #[arg(long, default_value = "256KiB", value_parser = parse_size)]
    pub queue: u64,
}

fn parse_preset(s: &str) -> Result<String, String> {
    LinkConfig::preset(s).map(|_| s.to_string()).ok_or_else(|| {
        format!(
            "unknown preset `{s}`: choose one of {}",
            PRESET_NAMES.join(", ")
        )
    })
}

impl LinkFlags {
    /// The link these flags describe, with `delay` one-way delay (if given).
    pub fn link(&self, delay: Option<Duration>) -> LinkConfig {
        let mut l = self
            .preset
            .as_deref()
            .and_then(LinkConfig::preset)
            .unwrap_or_else(LinkConfig::perfect);
        if let Some(p) = self.loss {
            l = l.with_loss(p);
        }
        if let Some(p) = self.burst_loss {
            // Gilbert–Elliott with a lossless good state and a fully lossy bad state: mean burst
            // length 1/r, stationary loss p/(p+r).
            let r = 1.0 / self.burst_len.max(1.0);
            let pg = if p >= 1.0 { 1.0 } else { p * r / (1.0 - p) };
            l = l.with_gilbert_elliott(pg.min(1.0), r, 0.0, 1.0);
        }
        if let Some(d) = delay {
            l = l.with_delay(d);
        }
        if let Some(j) = self.jitter {
            l = l.with_jitter(j);
        }
        if let Some(p) = self.reorder {
            let extra = self
                .reorder_delay
                .unwrap_or_else(|| (l.delay / 2).max(Duration::from_millis(10)));
            l = l.with_reorder(p, extra);
        }
        if let Some(p) = self.dup {
            l = l.with_duplicate(p);
        }
        if let Some(p) = self.corrupt {
            l = l.with_corrupt(p);
        }
        if let Some(rate) = self.rate {
            l = l.with_rate(rate, self.queue as usize);
        }
        l
    }
}
