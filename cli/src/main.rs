//! `tether`: KCP/kcptun tools built on tether-core.
#![forbid(unsafe_code)]

mod bench;
mod cat_cmd;
#[cfg(target_os = "linux")]
mod cat_pipe;
mod cat_stdio;
mod demo;
mod kcp_flags;
mod link_flags;
mod netem;
mod plot;
mod rounded;
mod sim;
mod smux;
mod tunnel;
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
    Sim(Box<sim::SimArgs>),
    /// A userspace UDP impairment proxy: loss, delay, jitter, reordering, duplication,
    /// corruption and a rate limit between real sockets, per client and direction.
    Netem(Box<netem::NetemArgs>),
    /// netcat for KCP: stdin to the peer, the peer to stdout (kcptun's flags and key handling).
    Cat(Box<cat_cmd::CatArgs>),
    /// kcptun-compatible tunnel client: accepts TCP on -l and carries each connection as a
    /// smux stream over KCP to `tether server` or kcptun-server at -r (kcptun 20210922's
    /// flags, defaults and -c config.json keys).
    Client(Box<tunnel::ClientFlags>),
    /// kcptun-compatible tunnel server: accepts KCP sessions on -l from `tether client` or
    /// kcptun-client and connects each stream to -t (TCP host:port or a unix socket).
    Server(Box<tunnel::ServerFlags>),
    /// The tour: a tether client and server in this process push a verified upload and
    /// small requests through a lossy link (3% loss, 60 ms RTT), next to plain TCP over the
    /// same link; then the kcptun modes compared in the simulator.
    Demo(Box<demo::DemoArgs>),
    /// The plain-TCP leg of `tether demo`, in a network namespace of its own.
    #[command(hide = true)]
    DemoTcpLeg(Box<demo::TcpLegArgs>),
    /// smux test and benchmark tool: an echo server, a checking client (K streams x N
    /// bytes) and the seed dialect's VRM probe, over TCP or KCP, dialects v1, v2 and seed.
    Smux(Box<smux::SmuxArgs>),
    /// tether vs kcp-go side by side on loopback: bulk throughput, CPU per GiB, 64-byte echo
    /// RTT, idle sessions' CPU and RSS (builds the Go peer tests/go/kcppeer).
    Bench(Box<bench::BenchArgs>),
    /// Several bulk clients at once against one listener: tether with one socket task, tether
    /// with one per core (SO_REUSEPORT) and kcp-go, aggregate throughput side by side.
    BenchReuseport(Box<bench::ReuseportArgs>),
    /// Multiplexers side by side over loopback: tether smux v1/v2 vs Go's xtaci/smux v1/v2
    /// vs the yamux crate, 1 and 16 streams, throughput and CPU per GiB (builds the Go peer
    /// tests/go/smuxpeer).
    BenchSmux(Box<bench::SmuxBenchArgs>),
    /// The tunnel side by side: tether client/server vs Debian's kcptun-client/server, one
    /// and 16 TCP streams, on loopback and through netem (1 % loss, 40 ms RTT): throughput
    /// and CPU per GiB of each end.
    BenchTunnel(Box<bench::TunnelBenchArgs>),
    /// A yamux peer with `tether smux`'s echo-server/client command line, driven by
    /// `bench-smux`.
    #[command(hide = true)]
    BenchYamuxPeer(Box<bench::YamuxPeerArgs>),
    /// The Rust twin of tests/go/kcppeer (roles echo, bulk, rtt, idle), driven by `bench`.
    #[command(hide = true)]
    BenchPeer(Box<bench::PeerArgs>),
}

fn main() {
    let cli = Cli::parse_from(tunnel::go_style_args(std::env::args_os()));
    let code = match cli.cmd {
        Cmd::Sim(args) => sim::run(&args),
        Cmd::Netem(args) => netem::run(&args),
        Cmd::Cat(args) => cat_cmd::run(&args),
        Cmd::Client(args) => tunnel::run_client(&args),
        Cmd::Server(args) => tunnel::run_server(&args),
        Cmd::Demo(args) => demo::run(&args),
        Cmd::DemoTcpLeg(args) => demo::run_tcp_leg(&args),
        Cmd::Smux(args) => smux::run(&args),
        Cmd::Bench(args) => bench::run(&args),
        Cmd::BenchReuseport(args) => bench::run_reuseport(&args),
        Cmd::BenchPeer(args) => bench::run_peer(&args),
        Cmd::BenchSmux(args) => bench::run_smux_bench(&args),
        Cmd::BenchTunnel(args) => bench::run_tunnel_bench(&args),
        Cmd::BenchYamuxPeer(args) => bench::run_yamux_peer(&args),
    };
    std::process::exit(code);
}
