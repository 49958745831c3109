//! `tether bench-reuseport`: several bulk clients at once against one echo server, aggregate
//! throughput, for tether with one socket task, tether with one socket task per core
//! (`SO_REUSEPORT`, issue 15 item 7) and kcp-go (whose listener uses every core through
//! goroutines), side by side. Each server gets its own implementation's clients (one process
//! and one UDP socket each, all started together), with `tether bench`'s first setting
//! (no crypto, no FEC).
use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::Args;

use super::child::Proc;
use super::go_peer::build_kcppeer;
use super::peers::Peers;
use super::procfs::{loadavg, proc_cpu_seconds};
use super::records::BulkRecord;
use super::settings::{Impl, Setting, COMMON, SETTINGS};
use super::BenchError;
use crate::units::parse_size;

/// Flags of `tether bench-reuseport`.
#[derive(Debug, Clone, Args)]
pub struct ReuseportArgs {
    /// Concurrent bulk clients.
    #[arg(long, default_value_t = 4)]
    pub clients: usize,
    /// Bytes each client sends through the echo server (and reads back).
    #[arg(long, default_value = "64MiB", value_parser = parse_size)]
    pub bytes: u64,
    /// Socket tasks of the multi-socket tether server (default: the number of cores).
    #[arg(long)]
    pub sockets: Option<usize>,
    /// The kcp-go peer (default: build tests/go/kcppeer).
    #[arg(long)]
    pub kcppeer: Option<PathBuf>,
}

/// One server's run.
struct Row {
    name: String,
    /// Bytes of all clients, one way, over the wall time from the first client's start to
    /// the last one's exit.
    mb_per_s: f64,
    wall_seconds: f64,
    slowest_client_seconds: f64,
    /// The server process's CPU per GB moved one way.
    server_cpu_per_gb: f64,
}

/// Runs `tether bench-reuseport`; returns the exit code.
pub fn run_reuseport(args: &ReuseportArgs) -> i32 {
    BenchError::exit("bench-reuseport", bench(args))
}

fn bench(args: &ReuseportArgs) -> Result<(), BenchError> {
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    let n = args.sockets.unwrap_or(cores);
    let rust = std::env::current_exe()
        .map_err(|e| BenchError::Failed(format!("cannot find our own binary: {e}")))?;
    let go = match &args.kcppeer {
        Some(p) => p.clone(),
        None => build_kcppeer()?,
    };
    // Clients always run on one thread; only the server's runtime grows with its sockets.
    let one = Peers {
        go: go.clone(),
        rust: rust.clone(),
        threads: 1,
    };
    let many = Peers {
        go,
        rust,
        threads: n,
    };
    let s = &SETTINGS[0];
    println!(
        "{} concurrent bulk clients × {} bytes each way; {}: {COMMON}; {cores} cores, load {} at start\n",
        args.clients,
        args.bytes,
        s.name,
        loadavg()
    );
    println!(
        "| server | aggregate MB/s (one way) | server CPU s per GB | wall s | slowest client s |"
    );
    println!("|---|---:|---:|---:|---:|");
    let runs = [
        (&one, Impl::Tether, 1, "tether, 1 socket task".to_string()),
        (
            &many,
            Impl::Tether,
            n,
            format!("tether, {n} socket tasks (SO_REUSEPORT)"),
        ),
        (&one, Impl::KcpGo, 1, "kcp-go (goroutines)".to_string()),
    ];
    for (server_peers, imp, sockets, name) in runs {
        let more = match imp {
            Impl::Tether => vec!["--reuseport".to_string(), sockets.to_string()],
            Impl::KcpGo => Vec::new(),
        };
        let r =
            run_one(server_peers, &one, imp, s, &more, name, args).map_err(BenchError::Failed)?;
        println!(
            "| {} | {:.1} | {:.2} | {:.2} | {:.2} |",
            r.name, r.mb_per_s, r.server_cpu_per_gb, r.wall_seconds, r.slowest_client_seconds
        );
    }
    println!(
        "\nload at the end: {} (the machine is shared: numbers are noisy)",
        loadavg()
    );
    Ok(())
}

/// One server (started by `server_peers` with `more` flags) against `args.clients` bulk
/// clients of the same implementation.
fn run_one(
    server_peers: &Peers,
    clients: &Peers,
    imp: Impl,
    s: &Setting,
    more: &[String],
    name: String,
    args: &ReuseportArgs,
) -> Result<Row, String> {
    let (server, addr) = server_peers.server_with(imp, s, more)?;
    let spid = server.pid();
    let total = args.bytes.saturating_mul(args.clients as u64);
    // At least 1 MiB/s for everything, plus a minute.
    let timeout = Duration::from_secs(60 + total / (1 << 20));
    let cpu0 = proc_cpu_seconds(&spid);
    let start = Instant::now();
    let extra = |seed: usize| {
        let bytes = args.bytes.to_string();
        vec![
            "--bytes".to_string(),
            bytes,
            "--seed".into(),
            seed.to_string(),
        ]
    };
    let mut running: Vec<Proc> = (0..args.clients)
        .map(|i| clients.client(imp, s, addr, "bulk", &extra(i + 1), timeout))
        .collect::<Result<_, _>>()?;
    let mut slowest = 0f64;
    for c in &mut running {
        let r: BulkRecord = c.finish(timeout.saturating_add(Duration::from_secs(15)))?;
        slowest = slowest.max(r.seconds);
    }
    let wall = start.elapsed().as_secs_f64();
    let server_cpu = proc_cpu_seconds(&spid) - cpu0;
    drop(server);
    Ok(Row {
        name,
        mb_per_s: total as f64 / wall / 1e6,
        wall_seconds: wall,
        slowest_client_seconds: slowest,
        server_cpu_per_gb: server_cpu / (total as f64 / 1e9),
    })
}
