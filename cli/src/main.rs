//! `tether`: KCP/kcptun tools built on tether-core.
#![forbid(unsafe_code)]

mod bench_cmd;
mod bench_reuseport;
mod cat_cmd;
mod demo_live;
mod kcp_flags;
mod link_flags;
mod netem_cmd;
mod sim_cmd;
mod units;

use clap::{Parser, Subcommand};

/// tether: deterministic, sans-IO reliable UDP (KCP, kcp-go compatible) and friends.
#[derive(Debug, Parser)]
#[command(name = "tether", version, about)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Simulate a KCP transfer between two in-memory peers over an impaired link.
    Sim(Box<sim_cmd::SimArgs>),
    /// A userspace UDP impairment proxy: loss, delay, jitter, reordering, duplication,
    /// corruption and a rate limit between real sockets, per client and direction.
    Netem(Box<netem_cmd::NetemArgs>),
    /// netcat for KCP: stdin to the peer, the peer to stdout (kcptun's flags and key handling).
    Cat(Box<cat_cmd::CatArgs>),
    /// A short tour: compares the kcptun modes over a lossy simulated link.
    Demo,
    /// tether vs kcp-go side by side on loopback: bulk throughput, CPU per GiB, 64-byte echo
    /// RTT, idle sessions' CPU and RSS (builds the Go peer tests/go/kcppeer).
    Bench(Box<bench_cmd::BenchArgs>),
    /// Several bulk clients at once against one listener: tether with one socket task, tether
    /// with one per core (SO_REUSEPORT) and kcp-go, aggregate throughput side by side.
    BenchReuseport(Box<bench_reuseport::ReuseportArgs>),
    /// The Rust twin of tests/go/kcppeer (roles echo, bulk, rtt, idle), driven by `bench`.
    #[command(hide = true)]
    BenchPeer(Box<bench_cmd::PeerArgs>),
}

fn main() {
    let cli = Cli::parse();
    let code = match cli.cmd {
        Cmd::Sim(args) => sim_cmd::run(&args),
        Cmd::Netem(args) => netem_cmd::run(&args),
        Cmd::Cat(args) => cat_cmd::run(&args),
        Cmd::Demo => demo(),
        Cmd::Bench(args) => bench_cmd::run(&args),
        Cmd::BenchReuseport(args) => bench_reuseport::run(&args),
        Cmd::BenchPeer(args) => bench_cmd::run_peer(&args),
    };
    std::process::exit(code);
}

/// `tether demo`: what tether does, in one screen, with no network needed: the kcptun modes
/// compared in the simulator, then a real KCP session over loopback UDP.
fn demo() -> i32 {
    println!("tether demo 1/2: 4 MiB through KCP between two in-memory peers, 10% loss each way,");
    println!("80 ms RTT, 20 Mbit/s bottleneck, kcptun client windows; all modes (same seed => same numbers).\n");
    let args = Cli::parse_from([
        "tether",
        "sim",
        "--bytes",
        "4MiB",
        "--loss",
        "10%",
        "--rtt",
        "80ms",
        "--jitter",
        "5ms",
        "--rate",
        "20mbit",
        "--sndwnd",
        "128",
        "--rcvwnd",
        "512",
        "--seed",
        "7",
        "--compare-modes",
    ]);
    let code = match args.cmd {
        Cmd::Sim(a) => sim_cmd::run(&a),
        _ => 1,
    };
    if code != 0 {
        return code;
    }
    println!("\ntether demo 2/2: a real KCP session over loopback UDP (tokio runtime, kcp-go wire format):");
    println!("crypt aes, FEC 10/3, mode fast3, windows 1024, 64 MiB echoed back and verified.\n");
    demo_live::run()
}
