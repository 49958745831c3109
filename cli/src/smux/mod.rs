//! `tether smux`: a test and benchmark tool for any smux peer (issue 16): an echo server, a
//! client that checks K concurrent echoed streams, and the seed dialect's VRM probe.
//! Sessions run over TCP or over a kcp-go-compatible KCP session (kcptun's flags).
mod client;
mod probe;
mod server;
mod transport;

use std::time::Duration;

use clap::{Args, Subcommand, ValueEnum};
use tether_core::smux::{SmuxConfig, SmuxConfigError};

use crate::kcp_flags::KcpFlags;

/// `tether smux …`.
#[derive(Debug, Args)]
pub struct SmuxArgs {
    #[command(subcommand)]
    cmd: SmuxCmd,
    /// Runtime worker threads; 0 = one per core. One session is driven by one task, so a
    /// single thread (the default) saves the cross-thread wake-ups of a work-stealing pool.
    #[arg(long, default_value_t = 1, global = true)]
    threads: usize,
}

#[derive(Debug, Subcommand)]
enum SmuxCmd {
    /// Accepts smux sessions and echoes every stream until the peer's FIN, then closes it.
    EchoServer(ServerArgs),
    /// Opens K streams at once on one session, sends N random bytes on each, checks each
    /// echo; one line per run: `K streams x N bytes match=true X MB/s`.
    Client(ClientArgs),
    /// Sends the seed dialect's VRM probe on a fresh TCP connection: `is_smux=true|false`.
    Probe(ProbeArgs),
}

/// The smux dialect on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DialectArg {
    /// yddeng/smux (seed 001): 7-byte header, CFM windows, VRM probe.
    Seed,
    /// xtaci/smux version 1 (kcptun's default).
    V1,
    /// xtaci/smux version 2 (per-stream window updates).
    V2,
}

/// What carries the smux session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TransportArg {
    /// A TCP connection.
    Tcp,
    /// A kcp-go session (kcptun's KCP flags apply).
    Kcp,
}

/// kcptun's smux flags for the xtaci dialects (shared with `tether client`/`server`).
#[derive(Debug, Clone, Args)]
pub struct XtaciFlags {
    /// xtaci: the session's receive buffer (kcptun `--smuxbuf`).
    #[arg(long, default_value_t = 4_194_304)]
    pub smuxbuf: usize,
    /// xtaci v2: the per-stream window (kcptun `--streambuf`).
    #[arg(long, default_value_t = 2_097_152)]
    pub streambuf: usize,
    /// xtaci: seconds between keepalives (kcptun `--keepalive`; the timeout stays 30 s; 0
    /// disables it in `tether smux` only).
    #[arg(long, default_value_t = 10)]
    pub keepalive: u64,
}

impl XtaciFlags {
    /// Sets the buffers and the keepalive interval of an xtaci configuration.
    pub fn apply(&self, c: &mut SmuxConfig) {
        c.max_receive_buffer = self.smuxbuf;
        c.max_stream_buffer = self.streambuf;
        c.keepalive_interval = (self.keepalive > 0).then(|| Duration::from_secs(self.keepalive));
    }
}

/// Flags every smux command shares.
#[derive(Debug, Clone, Args)]
pub struct SessionFlags {
    /// smux dialect.
    #[arg(long, value_enum, default_value = "v1")]
    pub dialect: DialectArg,
    /// What carries the session.
    #[arg(long, value_enum, default_value = "tcp")]
    pub transport: TransportArg,
    /// xtaci's buffers and keepalive (kcptun's names).
    #[command(flatten)]
    pub xtaci: XtaciFlags,
    /// KCP transport settings (kcptun's flags; ignored over TCP).
    #[command(flatten)]
    pub kcp: KcpFlags,
}

impl SessionFlags {
    /// The smux configuration these flags describe.
    pub fn smux(&self) -> Result<SmuxConfig, SmuxConfigError> {
        let mut c = match self.dialect {
            DialectArg::Seed => SmuxConfig::seed(),
            DialectArg::V1 => SmuxConfig::xtaci(1),
            DialectArg::V2 => SmuxConfig::xtaci(2),
        };
        if self.dialect != DialectArg::Seed {
            self.xtaci.apply(&mut c);
        }
        c.validate()?;
        Ok(c)
    }
}

/// `tether smux echo-server`.
#[derive(Debug, Args)]
pub struct ServerArgs {
    /// Address to listen on (TCP or UDP by --transport).
    #[arg(short = 'l', long = "listen")]
    pub listen: String,
    /// Print nothing but errors.
    #[arg(long)]
    pub quiet: bool,
    #[command(flatten)]
    pub session: SessionFlags,
}

/// `tether smux client`.
#[derive(Debug, Args)]
pub struct ClientArgs {
    /// The echo server.
    #[arg(short = 'r', long = "remote")]
    pub remote: String,
    /// Streams opened at once on one session.
    #[arg(long, default_value_t = 16)]
    pub streams: usize,
    /// Bytes sent (and echoed) on each stream (`4MiB`, `100000`).
    #[arg(long, default_value = "4MiB", value_parser = crate::units::parse_size)]
    pub bytes: u64,
    /// Runs, each on a new session.
    #[arg(long, default_value_t = 1)]
    pub runs: usize,
    /// Fail a run that takes longer than this many seconds.
    #[arg(long, default_value_t = 60)]
    pub timeout: u64,
    #[command(flatten)]
    pub session: SessionFlags,
}

/// `tether smux probe`.
#[derive(Debug, Args)]
pub struct ProbeArgs {
    /// The TCP address to probe.
    #[arg(short = 'r', long = "remote")]
    pub remote: String,
    /// How long to wait for the answer.
    #[arg(long, default_value = "3s", value_parser = crate::units::parse_duration)]
    pub timeout: Duration,
}

/// Runs `tether smux`; returns the exit code.
pub fn run(args: &SmuxArgs) -> i32 {
    let mut builder = match args.threads {
        1 => tokio::runtime::Builder::new_current_thread(),
        n => {
            let mut b = tokio::runtime::Builder::new_multi_thread();
            if n > 1 {
                b.worker_threads(n);
            }
            b
        }
    };
    let rt = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("tether smux: cannot start the runtime: {e}");
            return 1;
        }
    };
    let result = rt.block_on(async {
        match &args.cmd {
            SmuxCmd::EchoServer(a) => server::run(a).await,
            SmuxCmd::Client(a) => client::run(a).await,
            SmuxCmd::Probe(a) => probe::run(a).await,
        }
    });
    rt.shutdown_background();
    match result {
        Ok(true) => 0,
        Ok(false) => 1,
        Err(e) => {
            eprintln!("tether smux: {e}");
            1
        }
    }
}
