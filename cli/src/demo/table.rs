//! The tour's result table: one row per leg, then what the columns mean.
use std::fmt::Write as _;

use super::tcp_leg::TcpReport;
use super::tunnel_leg::TunnelReport;
use super::workload::{LegResult, PROBES, PROBE_CONNS, PROBE_SIZE};
use crate::sim::{fmt_bytes, fmt_dur};

/// One row's cells besides the leg's own measurements.
struct Row<'a> {
    name: &'a str,
    leg: &'a LegResult,
    retrans: String,
    fec: String,
    drops: (u64, u64),
}

/// The table, its notes and the one-line verdict; `tcp` is the plain-TCP row or why it is
/// missing (`None`: skipped by `--no-tcp`).
pub fn render(tunnel: &TunnelReport, tcp: Option<&Result<TcpReport, String>>) -> String {
    let s = &tunnel.snmp;
    let mut rows = vec![Row {
        name: "tunnel",
        leg: &tunnel.leg,
        retrans: s.retrans_segs.to_string(),
        fec: s.fec_recovered.to_string(),
        drops: tunnel.drops,
    }];
    if let Some(Ok(t)) = tcp {
        rows.push(Row {
            name: "plain TCP",
            leg: &t.leg,
            retrans: t.retrans_segs.map_or("?".into(), |n| n.to_string()),
            fec: "-".into(),
            drops: t.drops,
        });
    }
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<10} {:>10} {:>8} {:>13} {:>8} {:>8} {:>8} {:>9} {:>13}  data",
        "leg", "moved", "time", "throughput", "p50", "p99", "retrans", "FEC fixed", "netem drops",
    );
    for r in &rows {
        let _ = writeln!(
            out,
            "{:<10} {:>10} {:>8} {:>8.2} Mb/s {:>8} {:>8} {:>8} {:>9} {:>13}  {}",
            r.name,
            fmt_bytes(r.leg.bytes),
            fmt_dur(std::time::Duration::from_secs_f64(r.leg.secs)),
            r.leg.mbit_per_s(),
            latency(r.leg, 0.5),
            latency(r.leg, 0.99),
            r.retrans,
            r.fec,
            format!("{} / {}", r.drops.0, r.drops.1),
            data(r.leg),
        );
    }
    if let Some(Err(why)) = tcp {
        let _ = writeln!(out, "plain TCP  (no row) {why}");
    }
    let _ = writeln!(
        out,
        "\n  p50/p99   round trip of a {PROBE_SIZE}-byte request, {PROBES} requests over \
         {PROBE_CONNS} connections, before the upload"
    );
    let _ = writeln!(
        out,
        "  retrans   tunnel: KCP RetransSegs of client + server ({} fast, {} after a timeout, \
         {} early); plain TCP: the kernel's Tcp RetransSegs",
        s.fast_retrans_segs, s.lost_segs, s.early_retrans_segs
    );
    if let Some(Ok(t)) = tcp {
        let _ = writeln!(
            out,
            "  plain TCP the kernel's TCP in a network namespace, congestion control {}",
            t.congestion
        );
    }
    let _ = writeln!(
        out,
        "  FEC fixed datagrams rebuilt from parity shards (FECRecovered) instead of resent"
    );
    let _ = writeln!(
        out,
        "  drops     datagrams (tunnel) or IP packets (TCP) the link lost toward the target / back"
    );
    if let Some(Ok(t)) = tcp {
        let _ = write!(out, "\n{}", verdict(&tunnel.leg, &t.leg));
    }
    out.trim_end().to_string()
}

fn latency(leg: &LegResult, q: f64) -> String {
    leg.latency(q).map_or("-".into(), |s| {
        fmt_dur(std::time::Duration::from_secs_f64(s))
    })
}

fn data(leg: &LegResult) -> String {
    let checked = if leg.verified {
        "verified"
    } else {
        "CORRUPTED"
    };
    if leg.completed {
        checked.into()
    } else {
        format!("{checked} (stopped at the time limit)")
    }
}

/// One sentence a newcomer can take away.
fn verdict(tunnel: &LegResult, tcp: &LegResult) -> String {
    let speed = tunnel.mbit_per_s() / tcp.mbit_per_s().max(1e-9);
    let mut s = format!(
        "Through the same lossy link the tunnel moved data {speed:.1}x as fast as plain TCP"
    );
    if let (Some(a), Some(b)) = (tunnel.latency(0.99), tcp.latency(0.99)) {
        let _ = write!(
            s,
            ", and 99% of small requests took at most {} (plain TCP: {})",
            fmt_dur(std::time::Duration::from_secs_f64(a)),
            fmt_dur(std::time::Duration::from_secs_f64(b))
        );
    }
    s.push('.');
    s
}
