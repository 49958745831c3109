//! `tether bench-yamux-peer`: a peer built on the `yamux` crate (the multiplexer Rust users
//! would otherwise pick) with `tether smux`'s command line over TCP, so `tether bench-smux`
//! and the interop tests drive it exactly like `tether smux` and the Go `smuxpeer`:
//!
//! - `echo-server -l ADDR`: prints `listening <addr>` on stdout, then echoes every stream of
//!   every connection until the peer closes it, then closes it; runs until killed.
//! - `client -r ADDR --streams K --bytes N [--runs R] [--timeout SECS]`: per run, one new
//!   connection with K streams opened at once, N bytes sent on each while the echo is read
//!   and compared; prints `K streams x N bytes match=true X MB/s` per run (X = K·N / seconds
//!   / 1e6); exit 1 on a mismatch, an error or a timeout.
//!
//! The payload is [`Pool`]'s, the scheme of `tests/go/smuxpeer`.
//!
//! `--plain` drops the multiplexer: one TCP connection per stream, echoed by a plain
//! read/write loop on the same runtime. `tether bench-smux` runs it as the floor every
//! multiplexer pays on top of its own work (the kernel's loopback TCP for the same bytes).
use std::future::poll_fn;
use std::io::{self, Write};
use std::time::{Duration, Instant};

use clap::{Args, Subcommand};
use futures::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_util::compat::{TokioAsyncReadCompatExt, TokioAsyncWriteCompatExt};
use yamux::{Connection, Mode, Stream};

use super::peer::runtime;
use super::smux_payload::{Pool, CHUNK};
use crate::units::parse_size;

/// Flags of `tether bench-yamux-peer`.
#[derive(Debug, Clone, Args)]
pub struct YamuxPeerArgs {
    #[command(subcommand)]
    pub role: YamuxRole,
    /// tokio worker threads (1: a current-thread runtime).
    #[arg(long, default_value_t = 1, global = true)]
    pub threads: usize,
    /// Only `tcp` (yamux has no KCP binding here); accepted for `tether smux`'s command line.
    #[arg(long, default_value = "tcp", value_parser = ["tcp"], global = true)]
    pub transport: String,
    /// No multiplexer: one TCP connection per stream (the floor of `tether bench-smux`).
    #[arg(long, global = true)]
    pub plain: bool,
}

/// The two roles of `tether smux`.
#[derive(Debug, Clone, Subcommand)]
pub enum YamuxRole {
    /// Echo every stream until the peer closes it; runs until killed.
    EchoServer {
        /// TCP address to listen on (127.0.0.1:0 picks a port).
        #[arg(short = 'l', long = "listen")]
        listen: String,
        /// Do not log connections.
        #[arg(long)]
        quiet: bool,
    },
    /// K streams at once per run, N bytes echoed on each, checked.
    Client(ClientArgs),
}

/// Flags of the client role.
#[derive(Debug, Clone, Args)]
pub struct ClientArgs {
    /// The echo server's TCP address.
    #[arg(short = 'r', long = "remote")]
    pub remote: String,
    /// Streams opened at once per run.
    #[arg(long, default_value_t = 1)]
    pub streams: usize,
    /// Bytes sent (and echoed) per stream.
    #[arg(long, default_value = "1MiB", value_parser = parse_size)]
    pub bytes: u64,
    /// Runs, each on a new connection.
    #[arg(long, default_value_t = 1)]
    pub runs: usize,
    /// Seconds one run may take.
    #[arg(long, default_value_t = 60.0)]
    pub timeout: f64,
}

/// Runs `tether bench-yamux-peer`; returns the exit code.
pub fn run_yamux_peer(args: &YamuxPeerArgs) -> i32 {
    let rt = match runtime(args.threads) {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("tether bench-yamux-peer: cannot start the runtime: {e}");
            return 1;
        }
    };
    let r = match &args.role {
        YamuxRole::EchoServer { listen, quiet } => rt.block_on(serve(listen, *quiet, args.plain)),
        YamuxRole::Client(c) => rt.block_on(client(c, args.plain)),
    };
    match r {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("tether bench-yamux-peer: {e}");
            1
        }
    }
}

/// yamux's defaults (256 KiB initial stream windows, auto-tuned; 16 KiB frames).
fn config() -> yamux::Config {
    yamux::Config::default()
}

async fn serve(listen: &str, quiet: bool, plain: bool) -> Result<(), String> {
    let l = TcpListener::bind(listen)
        .await
        .map_err(|e| format!("listen {listen}: {e}"))?;
    let local = l.local_addr().map_err(|e| e.to_string())?;
    {
        let mut out = io::stdout().lock();
        let _ = writeln!(out, "listening {local}");
        let _ = out.flush();
    }
    loop {
        let (tcp, peer) = l.accept().await.map_err(|e| format!("accept: {e}"))?;
        let _ = tcp.set_nodelay(true);
        if plain {
            tokio::spawn(echo_plain(tcp));
            continue;
        }
        tokio::spawn(async move {
            let r = serve_connection(tcp).await;
            if !quiet {
                eprintln!("tether bench-yamux-peer: connection from {peer} ended: {r:?}");
            }
        });
    }
}

/// Drives one connection, spawning an echo task per inbound stream.
async fn serve_connection(tcp: TcpStream) -> Result<(), yamux::ConnectionError> {
    let mut conn = Connection::new(tcp.compat(), config(), Mode::Server);
    while let Some(s) = poll_fn(|cx| conn.poll_next_inbound(cx)).await {
        tokio::spawn(echo(s?));
    }
    Ok(())
}

/// Echoes a yamux stream until the peer's close (EOF), then closes it.
async fn echo(s: Stream) -> io::Result<()> {
    let (r, w) = s.split();
    echo_halves(r, w).await
}

/// Echoes one TCP connection (`--plain`) until EOF, then shuts its sending side down.
async fn echo_plain(tcp: TcpStream) -> io::Result<()> {
    let (r, w) = tcp.into_split();
    echo_halves(r.compat(), w.compat_write()).await
}

/// Copies `r` to `w` in [`CHUNK`] reads until EOF, then closes `w`.
async fn echo_halves(
    mut r: impl futures::io::AsyncRead + Unpin,
    mut w: impl futures::io::AsyncWrite + Unpin,
) -> io::Result<()> {
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = r.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        w.write_all(&buf[..n]).await?;
    }
    w.close().await
}

async fn client(args: &ClientArgs, plain: bool) -> Result<(), String> {
    if args.streams == 0 || args.runs == 0 {
        return Err("--streams and --runs must be at least 1".into());
    }
    let limit = Duration::try_from_secs_f64(args.timeout)
        .map_err(|e| format!("--timeout {}: {e}", args.timeout))?;
    for run in 1..=args.runs {
        let once = async {
            if plain {
                run_plain(args).await
            } else {
                run_once(args).await
            }
        };
        let (secs, matched) = tokio::time::timeout(limit, once)
            .await
            .map_err(|_| format!("run {run}: not finished within --timeout {limit:?}"))?
            .map_err(|e| format!("run {run}: {e}"))?;
        let total = args.streams as f64 * args.bytes as f64;
        println!(
            "{} streams x {} bytes match={matched} {:.2} MB/s",
            args.streams,
            args.bytes,
            total / secs / 1e6
        );
        let _ = io::stdout().flush();
        if !matched {
            return Err(format!("run {run}: an echo differs from what was sent"));
        }
    }
    Ok(())
}

/// One connection of `--streams` streams: the seconds it took and whether every echo matched.
async fn run_once(args: &ClientArgs) -> Result<(f64, bool), String> {
    let pool = Pool::random();
    let start = Instant::now();
    let tcp = TcpStream::connect(&args.remote)
        .await
        .map_err(|e| format!("connect {}: {e}", args.remote))?;
    let _ = tcp.set_nodelay(true);
    let mut conn = Connection::new(tcp.compat(), config(), Mode::Client);
    let mut streams = Vec::with_capacity(args.streams);
    for _ in 0..args.streams {
        let s = poll_fn(|cx| conn.poll_new_outbound(cx))
            .await
            .map_err(|e| format!("open stream: {e}"))?;
        streams.push(s);
    }
    // The connection makes progress only while polled; the client takes no inbound streams.
    // Once every stream is done, it closes the connection (a GoAway, then the socket).
    let (done, closing) = tokio::sync::oneshot::channel::<()>();
    let driver = tokio::spawn(async move {
        let inbound = async {
            while let Some(s) = poll_fn(|cx| conn.poll_next_inbound(cx)).await {
                drop(s);
            }
        };
        tokio::select! {
            () = inbound => {}
            _ = closing => {
                let _ = poll_fn(|cx| conn.poll_close(cx)).await;
            }
        }
    });
    let mut tasks = JoinSet::new();
    for (i, s) in streams.into_iter().enumerate() {
        let (pool, n) = (pool.clone(), args.bytes);
        tasks.spawn(async move { exchange(s, pool, i, n).await });
    }
    let mut matched = true;
    while let Some(r) = tasks.join_next().await {
        matched &= r.map_err(|e| format!("stream task: {e}"))??;
    }
    let secs = start.elapsed().as_secs_f64();
    let _ = done.send(());
    let _ = driver.await;
    Ok((secs, matched))
}

/// `--plain`: one TCP connection per stream, each exchanged like a stream.
async fn run_plain(args: &ClientArgs) -> Result<(f64, bool), String> {
    let pool = Pool::random();
    let start = Instant::now();
    let mut tasks = JoinSet::new();
    for i in 0..args.streams {
        let tcp = TcpStream::connect(&args.remote)
            .await
            .map_err(|e| format!("connect {}: {e}", args.remote))?;
        let _ = tcp.set_nodelay(true);
        let (pool, n) = (pool.clone(), args.bytes);
        tasks.spawn(async move {
            let (r, w) = tcp.into_split();
            let (mut r, mut w) = (r.compat(), w.compat_write());
            let off = pool.offset(i);
            let (sent, matched) =
                tokio::join!(pool.send(&mut w, off, n), pool.check(&mut r, off, n));
            sent.map_err(|e| format!("connection {i}: write: {e}"))?;
            matched.map_err(|e| format!("connection {i}: read: {e}"))
        });
    }
    let mut matched = true;
    while let Some(r) = tasks.join_next().await {
        matched &= r.map_err(|e| format!("connection task: {e}"))??;
    }
    Ok((start.elapsed().as_secs_f64(), matched))
}

/// Sends `n` bytes of `pool` on stream number `i` while reading and checking the echo;
/// closes the stream once the whole echo is in.
async fn exchange(s: Stream, pool: Pool, i: usize, n: u64) -> Result<bool, String> {
    let id = s.id();
    let (mut r, mut w) = s.split();
    let off = pool.offset(i);
    let (sent, matched) = tokio::join!(pool.send(&mut w, off, n), pool.check(&mut r, off, n));
    sent.map_err(|e| format!("stream {id}: write: {e}"))?;
    let matched = matched.map_err(|e| format!("stream {id}: read: {e}"))?;
    w.close()
        .await
        .map_err(|e| format!("stream {id}: close: {e}"))?;
    Ok(matched)
}
