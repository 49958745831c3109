//! `tether sim`: a KCP transfer between two in-memory peers over a simulated link, reporting
//! what a kcptun user wants to know before choosing settings.
use std::fmt::Write as _;
use std::io::Write as _;
use std::time::{Duration, Instant};

use clap::Args;
use tether_core::kcp::{KcpConfig, MODE_NAMES};
use tether_core::sim::transfer::{run_transfer, TransferConfig, TransferReport};
use tether_core::sim::LinkConfig;

use crate::link_flags::LinkFlags;

use crate::units::{parse_duration, parse_size};

/// Flags of `tether sim`.
#[derive(Debug, Args, Clone)]
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

    fn transfer(&self, mode: &str) -> TransferConfig {
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

    fn describe(&self) -> String {
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

/// Runs `tether sim`; returns the process exit code.
pub fn run(args: &SimArgs) -> i32 {
    let start = Instant::now();
    let modes: Vec<&str> = if args.compare_modes {
        MODE_NAMES.to_vec()
    } else {
        vec![args.mode.as_str()]
    };
    let reports: Vec<(&str, TransferReport)> = modes
        .iter()
        .map(|m| (*m, run_transfer(&args.transfer(m), start)))
        .collect();
    let out = if args.json {
        json(args, &reports)
    } else if args.compare_modes {
        table(args, &reports)
    } else {
        text(args, reports[0].0, &reports[0].1)
    };
    // A closed stdout (e.g. `| head`) is not an error worth a panic.
    let _ = writeln!(std::io::stdout(), "{out}");
    let ok = reports
        .iter()
        .all(|(_, r)| r.completed && r.sha256_sent == r.sha256_received);
    if ok {
        0
    } else {
        1
    }
}

fn fmt_bytes(b: u64) -> String {
    if b >= 1 << 30 {
        format!("{:.2} GiB", b as f64 / (1u64 << 30) as f64)
    } else if b >= 1 << 20 {
        format!("{:.2} MiB", b as f64 / (1u64 << 20) as f64)
    } else if b >= 1 << 10 {
        format!("{:.2} KiB", b as f64 / 1024.0)
    } else {
        format!("{b} B")
    }
}

fn fmt_dur(d: Duration) -> String {
    if d >= Duration::from_secs(10) {
        format!("{:.1} s", d.as_secs_f64())
    } else if d >= Duration::from_secs(1) {
        format!("{:.3} s", d.as_secs_f64())
    } else {
        format!("{} ms", d.as_millis())
    }
}

fn data_segments(r: &TransferReport) -> u64 {
    r.sender.out_segs
}

fn retrans_pct(r: &TransferReport) -> f64 {
    let d = data_segments(r);
    if d == 0 {
        0.0
    } else {
        r.sender.retrans_segs as f64 * 100.0 / d as f64
    }
}

fn text(args: &SimArgs, mode: &str, r: &TransferReport) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "tether sim: {}, mode {mode}", args.describe());
    let verdict = if r.completed {
        "yes"
    } else {
        "NO (time limit reached)"
    };
    let _ = writeln!(
        s,
        "  completed        {verdict} after {} of simulated time",
        fmt_dur(r.elapsed)
    );
    let _ = writeln!(
        s,
        "  goodput          {:.2} Mbit/s ({}/s)",
        r.goodput_bps() / 1e6,
        fmt_bytes((r.goodput_bps() / 8.0) as u64)
    );
    let _ = writeln!(
        s,
        "  retransmitted    {} segments ({:.1}% of {} sent): {} after RTO, {} fast, {} early",
        r.sender.retrans_segs,
        retrans_pct(r),
        r.sender.out_segs,
        r.sender.lost_segs,
        r.sender.fast_retrans_segs,
        r.sender.early_retrans_segs
    );
    let _ = writeln!(
        s,
        "  wire overhead    {:.1}% ({} datagrams / {} forward, {} datagrams / {} back)",
        r.overhead() * 100.0,
        r.datagrams_ab,
        fmt_bytes(r.wire_bytes_ab),
        r.datagrams_ba,
        fmt_bytes(r.wire_bytes_ba)
    );
    let _ = writeln!(
        s,
        "  latency          p50 {} / p99 {} / max {} (write to read, per {}-byte chunk)",
        fmt_dur(r.latency_quantile(0.5)),
        fmt_dur(r.latency_quantile(0.99)),
        fmt_dur(r.latency_quantile(1.0)),
        args.mtu - 24 - args.reserved
    );
    let _ = writeln!(s, "  sha256 sent      {}", hex::encode(r.sha256_sent));
    let m = if r.sha256_sent == r.sha256_received {
        "match"
    } else {
        "MISMATCH"
    };
    let _ = write!(
        s,
        "  sha256 received  {} ({m})",
        hex::encode(r.sha256_received)
    );
    s
}

fn table(args: &SimArgs, reports: &[(&str, TransferReport)]) -> String {
    let mut s = format!("tether sim --compare-modes: {}\n", args.describe());
    let _ = writeln!(
        s,
        "{:<7} {:>10} {:>12} {:>9} {:>9} {:>9} {:>9} {:>6}",
        "mode", "time", "goodput", "retrans", "overhead", "p50", "p99", "sha256"
    );
    for (mode, r) in reports {
        let t = if r.completed {
            fmt_dur(r.elapsed)
        } else {
            "timeout".into()
        };
        let _ = writeln!(
            s,
            "{:<7} {:>10} {:>7.2} Mb/s {:>8.1}% {:>8.1}% {:>9} {:>9} {:>6}",
            mode,
            t,
            r.goodput_bps() / 1e6,
            retrans_pct(r),
            r.overhead() * 100.0,
            fmt_dur(r.latency_quantile(0.5)),
            fmt_dur(r.latency_quantile(0.99)),
            if r.sha256_sent == r.sha256_received {
                "ok"
            } else {
                "BAD"
            }
        );
    }
    s.trim_end().to_string()
}

fn json(args: &SimArgs, reports: &[(&str, TransferReport)]) -> String {
    let runs: Vec<String> = reports
        .iter()
        .map(|(mode, r)| {
            format!(
                concat!(
                    "{{\"mode\":\"{}\",\"completed\":{},\"elapsed_ms\":{:.3},\"goodput_bps\":{:.0},",
                    "\"delivered_bytes\":{},\"retrans_segs\":{},\"lost_segs\":{},\"fast_retrans_segs\":{},",
                    "\"early_retrans_segs\":{},\"out_segs\":{},\"overhead\":{:.6},\"datagrams_forward\":{},",
                    "\"datagrams_back\":{},\"wire_bytes_forward\":{},\"wire_bytes_back\":{},",
                    "\"latency_p50_ms\":{:.3},\"latency_p99_ms\":{:.3},\"latency_max_ms\":{:.3},",
                    "\"sha256_sent\":\"{}\",\"sha256_received\":\"{}\",\"match\":{}}}"
                ),
                mode,
                r.completed,
                r.elapsed.as_secs_f64() * 1e3,
                r.goodput_bps(),
                r.delivered,
                r.sender.retrans_segs,
                r.sender.lost_segs,
                r.sender.fast_retrans_segs,
                r.sender.early_retrans_segs,
                r.sender.out_segs,
                r.overhead(),
                r.datagrams_ab,
                r.datagrams_ba,
                r.wire_bytes_ab,
                r.wire_bytes_ba,
                r.latency_quantile(0.5).as_secs_f64() * 1e3,
                r.latency_quantile(0.99).as_secs_f64() * 1e3,
                r.latency_quantile(1.0).as_secs_f64() * 1e3,
                hex::encode(r.sha256_sent),
                hex::encode(r.sha256_received),
                r.sha256_sent == r.sha256_received
            )
        })
        .collect();
    format!(
        "{{\"bytes\":{},\"seed\":{},\"sndwnd\":{},\"rcvwnd\":{},\"mtu\":{},\"runs\":[{}]}}",
        args.bytes,
        args.seed,
        args.sndwnd,
        args.rcvwnd,
        args.mtu,
        runs.join(",")
    )
}
