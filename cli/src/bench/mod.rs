//! `tether bench`: tether vs kcp-go side by side on loopback (bulk throughput, CPU per GiB,
//! 64-byte echo RTT, idle sessions' CPU and RSS), and `tether bench-peer`, the Rust twin of
//! the Go peer `tests/go/kcppeer` (same roles, flags and JSON lines) that it drives.
//!
//! Both peers are separate processes, started per setting ([`settings`]) by [`peers`],
//! measured by [`measure`] from their JSON lines ([`records`]) and `/proc` ([`procfs`]), and
//! reported by [`report`] as figures and ratios; the targets they are held against live in
//! the README, not in the binary.
//!
//! `tether bench-smux` ([`smux`]) does the same for the multiplexers: `tether smux`, Go's
//! xtaci/smux (`tests/go/smuxpeer`) and the `yamux` crate (`tether bench-yamux-peer`,
//! [`yamux_peer`]), each an echo server and a client process.
//!
//! `tether bench-tunnel` ([`tunnel`]) puts the kcptun-compatible tunnel (`tether client` /
//! `tether server`) next to Debian's kcptun: throughput and CPU per GiB of each end, on
//! loopback and through `tether netem`.
use std::io::{self, Write};
use std::time::Instant;

mod args;
mod child;
mod go_peer;
mod measure;
mod peer;
mod peers;
mod procfs;
mod records;
mod report;
mod reuseport;
mod settings;
mod smux;
pub(crate) mod smux_payload;
mod tunnel;
mod yamux_peer;

pub use args::BenchArgs;
pub(crate) use peer::Pattern;
pub use peer::{run_peer, PeerArgs};
pub use reuseport::{run_reuseport, ReuseportArgs};
pub use smux::{run_smux_bench, SmuxBenchArgs};
pub use tunnel::{run_tunnel_bench, TunnelBenchArgs};
pub use yamux_peer::{run_yamux_peer, YamuxPeerArgs};

use measure::{run_idle, run_setting};
use peers::Peers;
use procfs::loadavg;
use report::{BenchReport, SettingReport, Sides};
use settings::{Impl, SETTINGS};

/// Why `tether bench` stopped.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// No peer to compare with (Go missing or its build failed, kcptun not installed):
    /// exit 2, so scripts can tell "not here" from a failed run.
    #[error("{0}")]
    NoPeer(String),
    /// A peer failed or misbehaved, or the report could not be written: exit 1.
    #[error("{0}")]
    Failed(String),
}

impl BenchError {
    /// The process exit code of this failure.
    pub fn exit_code(&self) -> i32 {
        match self {
            BenchError::NoPeer(_) => 2,
            BenchError::Failed(_) => 1,
        }
    }

    /// The exit code of `result` of `tether <command>`, the error printed.
    pub fn exit(command: &str, result: Result<(), BenchError>) -> i32 {
        match result {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("tether {command}: error: {e}");
                e.exit_code()
            }
        }
    }
}

/// Runs `tether bench`; returns the exit code.
pub fn run(args: &BenchArgs) -> i32 {
    BenchError::exit("bench", bench(args))
}

fn bench(args: &BenchArgs) -> Result<(), BenchError> {
    let peers = peers(args)?;
    let report = measure_all(&peers, args)?;
    if args.json {
        let json = report
            .json()
            .map_err(|e| BenchError::Failed(format!("JSON: {e}")))?;
        println!("{json}");
    } else {
        print!("{}", report.markdown());
        let _ = io::stdout().flush();
    }
    Ok(())
}

/// This binary and the kcp-go peer (built unless `--kcppeer` names one).
fn peers(args: &BenchArgs) -> Result<Peers, BenchError> {
    let rust = std::env::current_exe()
        .map_err(|e| BenchError::Failed(format!("cannot find our own binary: {e}")))?;
    let go = match &args.kcppeer {
        Some(p) => p.clone(),
        None => {
            eprintln!("tether bench: building the kcp-go peer (tests/go/kcppeer)...");
            go_peer::build_kcppeer()?
        }
    };
    if cfg!(debug_assertions) {
        eprintln!("tether bench: WARNING: this is a debug build of tether; build with --release (scripts/bench-kcp.sh) for meaningful numbers");
    }
    Ok(Peers {
        go,
        rust,
        threads: args.threads,
    })
}

/// Every setting for both implementations (kcp-go first), then the idle sessions.
fn measure_all(peers: &Peers, args: &BenchArgs) -> Result<BenchReport, BenchError> {
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let loadavg_before = loadavg();
    let started = Instant::now();
    let mut settings = Vec::new();
    for s in &SETTINGS {
        eprintln!(
            "tether bench: [{}] kcp-go ↔ kcp-go: bulk {} bytes each way, {} × 64-byte echo",
            s.name, args.bytes, args.rtt_count
        );
        let kcp_go = run_setting(peers, Impl::KcpGo, s, args).map_err(BenchError::Failed)?;
        eprintln!("tether bench: [{}] tether ↔ tether", s.name);
        let tether = run_setting(peers, Impl::Tether, s, args).map_err(BenchError::Failed)?;
        settings.push(SettingReport::new(s, Sides { tether, kcp_go }));
    }
    let idle_setting = &SETTINGS[1];
    eprintln!(
        "tether bench: [idle] kcp-go: {} sessions held {:?}",
        args.idle_sessions, args.hold
    );
    let kcp_go = run_idle(peers, Impl::KcpGo, idle_setting, args).map_err(BenchError::Failed)?;
    eprintln!(
        "tether bench: [idle] tether: {} sessions held {:?}",
        args.idle_sessions, args.hold
    );
    let tether = run_idle(peers, Impl::Tether, idle_setting, args).map_err(BenchError::Failed)?;
    Ok(BenchReport {
        bytes: args.bytes,
        rtt_count: args.rtt_count,
        idle_sessions: args.idle_sessions,
        hold_seconds: args.hold.as_secs_f64(),
        cpus,
        loadavg_before,
        loadavg_after: loadavg(),
        settings,
        idle: Sides { tether, kcp_go },
        idle_setting: idle_setting.name,
        wall_seconds: started.elapsed().as_secs_f64(),
    })
}
