//! `tether sim`'s human-readable output: one run in detail, or the modes side by side.
use std::fmt::Write as _;
use std::time::Duration;

use tether_core::sim::transfer::TransferReport;

use super::args::SimArgs;

pub fn fmt_bytes(b: u64) -> String {
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

pub fn fmt_dur(d: Duration) -> String {
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

pub fn text(args: &SimArgs, mode: &str, r: &TransferReport) -> String {
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

pub fn table(args: &SimArgs, reports: &[(&str, TransferReport)]) -> String {
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
