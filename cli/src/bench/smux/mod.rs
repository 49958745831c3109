//! `tether bench-smux`: multiplexers side by side on loopback, in one run. For each cell (one
//! stream; `--streams` streams) and each implementation ([`impls::ALL`]: tether smux v1/v2,
//! Go xtaci/smux v1/v2, the yamux crate), an echo server and a client process with `tether
//! smux`'s command line; the client's `K streams x N bytes match=true X MB/s` lines give the
//! throughput, `/proc` gives both processes' CPU. The report ([`table`]) has throughput, CPU
//! seconds per GiB and the ratios tether / Go and tether / yamux; the targets they are held
//! against live in the README, not in the binary.
//!
//! A row that cannot run (no `tether smux` in this binary, no Go) is reported as failed with
//! its reason while the other rows run; the exit code is then 1.
use std::time::Duration;

use super::child::Proc;
use super::go_peer::build_go_peer;
use super::procfs::{loadavg, proc_cpu_seconds};

mod args;
mod impls;
mod table;

pub use args::SmuxBenchArgs;

use args::Transport;
use impls::{probe_tether_smux, Impl, Programs, ALL};
use table::{Cell, Figures};

/// Runs `tether bench-smux`; returns the exit code.
pub fn run_smux_bench(args: &SmuxBenchArgs) -> i32 {
    let programs = match programs(args) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("tether bench-smux: error: {e}");
            return 1;
        }
    };
    let rows: Vec<Impl> = ALL
        .into_iter()
        .filter(|i| args.only.is_empty() || args.only.contains(i))
        .filter(|i| i.supports(args.transport))
        .collect();
    println!("{}", intro(args));
    let mut failed = false;
    for (streams, bytes) in [(1, args.single_bytes()), (args.streams, args.multi_bytes())] {
        let mut cell = Cell::new(streams, bytes);
        for &imp in &rows {
            eprintln!(
                "tether bench-smux: {} ↔ {}: {streams} stream(s) x {bytes} bytes, {} run(s)",
                imp.title(),
                imp.title(),
                args.runs
            );
            let r = measure(&programs, imp, args, streams, bytes);
            if let Err(e) = &r {
                eprintln!("tether bench-smux: {}: {e}", imp.title());
            }
            failed |= r.is_err();
            cell.rows.push((imp, r));
        }
        println!("{}", cell.markdown());
    }
    println!("load average at the end: {}", loadavg());
    i32::from(failed)
}

/// This binary, whether it has `tether smux`, and the Go peer (built unless `--smuxpeer`).
fn programs(args: &SmuxBenchArgs) -> Result<Programs, String> {
    let tether = std::env::current_exe().map_err(|e| format!("cannot find our own binary: {e}"))?;
    let smuxpeer = match &args.smuxpeer {
        Some(p) => Ok(p.clone()),
        None => {
            eprintln!("tether bench-smux: building the Go smux peer (tests/go/smuxpeer)...");
            build_go_peer("smuxpeer").map_err(|e| e.to_string())
        }
    };
    if cfg!(debug_assertions) {
        eprintln!("tether bench-smux: WARNING: this is a debug build of tether; build with --release for meaningful numbers");
    }
    let tether_smux = probe_tether_smux(args.tether.clone().unwrap_or_else(|| tether.clone()));
    Ok(Programs {
        tether,
        tether_smux,
        smuxpeer,
    })
}

fn intro(args: &SmuxBenchArgs) -> String {
    let cpus = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    let over = match args.transport {
        Transport::Tcp => "TCP loopback".to_string(),
        Transport::Kcp => format!("a KCP session on loopback ({})", impls::KCP_FLAGS.join(" ")),
    };
    format!(
        "# Multiplexers side by side over {over}\n\n\
         Each row: an echo server and a client of the same implementation, separate processes. \
         The client opens the streams at once on one new session per run, sends the bytes on \
         each while reading the echo and compares it. MB/s = payload bytes one way / seconds \
         (dial to last echo). CPU = server + client, user + system. {cpus} CPUs; load average \
         {} at the start. Ratios: tether / Go of the same version, tether / yamux.\n",
        loadavg()
    )
}

/// One implementation in one cell.
fn measure(
    p: &Programs,
    imp: Impl,
    args: &SmuxBenchArgs,
    streams: usize,
    bytes: u64,
) -> Result<Figures, String> {
    let t = args.transport;
    let listen = ["-l".to_string(), "127.0.0.1:0".into()];
    let mut server = Proc::spawn(
        format!("the {} echo server", imp.title()),
        p.command(imp, "echo-server", t, &listen)?,
    )?;
    let addr = server.listening(Duration::from_secs(20))?;
    let spid = server.pid();
    let s0 = proc_cpu_seconds(&spid);
    let client_args = [
        "-r".to_string(),
        addr.to_string(),
        "--streams".into(),
        streams.to_string(),
        "--bytes".into(),
        bytes.to_string(),
        "--runs".into(),
        args.runs.to_string(),
        "--timeout".into(),
        args.timeout.to_string(),
    ];
    let mut client = Proc::spawn(
        format!("the {} client", imp.title()),
        p.command(imp, "client", t, &client_args)?,
    )?;
    let bound = Duration::from_secs(args.timeout.saturating_mul(args.runs as u64) + 30);
    let (lines, client_cpu) = client.finish_lines(bound)?;
    let server_cpu = proc_cpu_seconds(&spid) - s0;
    drop(server);
    let mut seconds = 0.0;
    for line in &lines {
        seconds += table::run_seconds(line, streams, bytes)
            .map_err(|e| format!("{}: {e}", client.name))?;
    }
    if lines.len() != args.runs {
        return Err(format!(
            "{} printed {} result lines for {} runs: {lines:?}",
            client.name,
            lines.len(),
            args.runs
        ));
    }
    let payload = (streams as u64 * bytes * args.runs as u64) as f64;
    Ok(Figures::new(payload, seconds, server_cpu + client_cpu))
}
