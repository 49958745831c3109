//! `tether cat`: netcat for KCP. stdin → peer, peer → stdout, with kcptun's flags.
//!
//! KCP has no FIN, so the end of a stream is inferred, by this rule:
//! - While our stdin is open, or bytes we sent are not yet acknowledged, we never exit on
//!   silence, and we send a keepalive (a KCP window probe, which every KCP peer answers)
//!   every `--linger`/8, so a peer running the same rule knows we are still there during a
//!   pause or a retransmission back-off.
//! - Once our stdin hit EOF and the peer acknowledged every byte, we exit 0 when the peer
//!   has been quiet for `--linger`: no datagram at all from it (data, ACK, retransmission or
//!   probe) and no byte written to stdout for that long, and nothing received is left
//!   unwritten.
//! - Anything else ends with a non-zero exit and the reason: the peer stopped acknowledging
//!   (dead link), `--idle-timeout` passed without a datagram, or the endpoint failed. A
//!   closed stdout (EPIPE) ends the command at once.
//!
//! `--listen` without `--keep-open` serves exactly one session: the endpoint holds at most
//! one, so datagrams from any other address are dropped before a byte of theirs is
//! acknowledged (their senders never see an ACK and fail instead of exiting 0).
use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};
use tether_core::kcp::KcpFlavor;
use tether_runtime_tokio::{Bytes, KcpListener, KcpStream};
use tokio::io::AsyncWriteExt;

use crate::cat_stdio::{StdinReader, StdoutWriter, CHUNK};
use crate::kcp_flags::KcpFlags;
use crate::units::parse_duration;

/// Protocols `tether cat` speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Proto {
    /// KCP with kcp-go's session layer (crypto + FEC), as kcptun uses it.
    Kcp,
    /// Raw KCP as skywind3000's C ikcp and its ports speak it (and kcp-go with a nil
    /// BlockCrypt and no FEC): bare 24-byte segments in UDP, no crypto, no FEC. --crypt,
    /// --key, --datashard and --parityshard are ignored.
    KcpRaw,
}

/// `--kcp-flavor`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Flavor {
    /// kcp-go 5.6.1.
    KcpGo,
    /// skywind3000's ikcp.c 1.7.
    Ikcp,
}

/// Flags of `tether cat`.
#[derive(Debug, Clone, Args)]
pub struct CatArgs {
    /// Protocol.
    #[arg(long, value_enum, default_value = "kcp")]
    pub proto: Proto,
    /// Listen on this UDP address (serve one session, then exit).
    #[arg(long, conflicts_with = "connect", required_unless_present = "connect")]
    pub listen: Option<SocketAddr>,
    /// Connect to this UDP address.
    #[arg(long)]
    pub connect: Option<String>,
    /// With --listen: serve sessions until killed.
    #[arg(long, requires = "listen")]
    pub keep_open: bool,
    /// With --listen --keep-open: sockets on the listening port (SO_REUSEPORT), each with its
    /// own task and sessions, so the server uses that many cores; the kernel spreads peers
    /// over them by address. Default: the number of cores (1 without --keep-open).
    #[arg(long, requires = "keep_open")]
    pub reuseport: Option<usize>,
    /// With --listen: echo each session's bytes back instead of using stdin/stdout.
    #[arg(long, requires = "listen")]
    pub echo: bool,
    /// After stdin's EOF and all our data acknowledged, exit once the peer sent no datagram
    /// (and no output was written) for this long. Also sets the keepalive period (1/8 of it).
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    pub linger: Duration,
    /// Give up on a peer that stops acknowledging after this long without progress.
    #[arg(long, value_parser = parse_duration)]
    pub idle_timeout: Option<Duration>,
    /// With --connect: the KCP conversation id. Default: random, as kcp-go's Dial, so a
    /// restarted client is a new conversation to the listener; set it when the peer creates
    /// its KCP object with a fixed conv (common in raw-KCP servers). A listener takes each
    /// session's conv from that address's first datagram.
    #[arg(long, requires = "connect")]
    pub conv: Option<u32>,
    /// Message mode: each chunk read from stdin (up to 64 KiB) is sent as one KCP message
    /// (ikcp's default mode; at most 127 segments each, cut otherwise). Default: stream mode.
    #[arg(long)]
    pub message: bool,
    /// Whose KCP behaviour to reproduce where kcp-go and C ikcp differ on the wire: kcp-go
    /// (default; byte-identical to kcp-go 5.6.1) or ikcp (skywind3000's ikcp.c: receive
    /// window at least 128, every ACK written, its RTO estimator, back-off and
    /// fast-retransmit rules).
    #[arg(long, value_enum, default_value = "kcp-go")]
    pub kcp_flavor: Flavor,
    /// Don't print the settings line to stderr.
    #[arg(long, short)]
    pub quiet: bool,
    #[command(flatten)]
    pub kcp: KcpFlags,
}

/// Runs `tether cat`; returns the exit code.
pub fn run(args: &CatArgs) -> i32 {
    let sockets = listen_sockets(args);
    let mut builder = if sockets > 1 {
        // One worker per socket task, so N tasks run on N cores.
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(sockets);
        b
    } else {
        tokio::runtime::Builder::new_current_thread()
    };
    let rt = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("tether cat: cannot start the runtime: {e}");
            return 1;
        }
    };
    let code = match rt.block_on(cat(args)) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("tether cat: {e}");
            1
        }
    };
    // The stdin thread may still be parked in a read (stdout closed before stdin): nothing
    // waits for it, the process ends with `run`'s caller.
    rt.shutdown_background();
    code
}

async fn cat(args: &CatArgs) -> io::Result<()> {
    let mut cfg = args
        .kcp
        .config()
        .idle_timeout(args.idle_timeout)
        .conv(args.conv)
        .message_mode(args.message)
        .flavor(match args.kcp_flavor {
            Flavor::KcpGo => KcpFlavor::KcpGo,
            Flavor::Ikcp => KcpFlavor::Ikcp,
        });
    if args.proto == Proto::KcpRaw {
        cfg = cfg.raw_kcp();
    }
    if !args.quiet {
        eprintln!("tether cat: {}", describe(args));
    }
    if let Some(addr) = &args.connect {
        let stream = KcpStream::connect(addr.as_str(), cfg).await?;
        return pipe_stdio(stream, args.linger).await;
    }
    let listen = args.listen.expect("clap: --listen or --connect");
    // One session unless --keep-open: the core drops datagrams from any other address while
    // it is alive, so no byte of a second sender is ever acknowledged (and then lost).
    let cfg = if args.keep_open {
        cfg.reuseport(listen_sockets(args))
    } else {
        cfg.max_sessions(1)
    };
    let listener = KcpListener::bind(listen, cfg).await?;
    match listen_sockets(args) {
        1 => eprintln!("tether cat: listening on {}", listener.local_addr()),
        n => eprintln!(
            "tether cat: listening on {} with {n} sockets (SO_REUSEPORT)",
            listener.local_addr()
        ),
    }
    loop {
        let (stream, peer) = listener.accept().await?;
        if !args.quiet {
            eprintln!("tether cat: session from {peer}");
        }
        if args.echo {
            let task = echo(stream);
            if args.keep_open {
                tokio::spawn(task);
                continue;
            }
            return task.await;
        }
        pipe_stdio(stream, args.linger).await?;
        if !args.keep_open {
            return Ok(());
        }
    }
}

/// Sockets the listener runs: `--reuseport`, else one per core with `--keep-open`, else 1
/// (a one-session listener has a single socket).
fn listen_sockets(args: &CatArgs) -> usize {
    if args.listen.is_none() || !args.keep_open {
        return 1;
    }
    args.reuseport.unwrap_or_else(|| {
        std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
    })
}

/// The settings line: kcptun's, or the raw-KCP subset.
fn describe(args: &CatArgs) -> String {
    let framing = if args.message { "message" } else { "stream" };
    match args.proto {
        Proto::Kcp if args.message => format!("{}, framing: message", args.kcp.describe()),
        Proto::Kcp => args.kcp.describe(),
        Proto::KcpRaw => {
            let k = &args.kcp;
            let conv = args
                .conv
                .map_or_else(|| "random".to_string(), |c| c.to_string());
            format!(
                "proto: kcp-raw (no crypto, no FEC), conv: {conv}, framing: {framing}, flavor: {:?}, mode: {}, mtu: {}, sndwnd: {}, rcvwnd: {}, acknodelay: {}",
                args.kcp_flavor, k.mode, k.mtu, k.sndwnd, k.rcvwnd, k.acknodelay
            )
        }
    }
}

/// Sends each received chunk back as it is (not copied), until the stream ends.
async fn echo(s: KcpStream) -> io::Result<()> {
    while let Some(c) = s.read_chunk(usize::MAX).await? {
        s.write_chunk(c).await?;
    }
    Ok(())
}

/// The keepalive period for a `--linger`: eight probes per linger, so a peer only sees a
/// whole linger of silence if eight in a row are lost.
fn keepalive_period(linger: Duration) -> Duration {
    (linger / 8).max(Duration::from_millis(10))
}

/// stdin → stream and stream → stdout, ending by the rule in the module docs. stdin and
/// stdout each have a thread of their own (see [`crate::cat_stdio`]).
async fn pipe_stdio(stream: KcpStream, linger: Duration) -> io::Result<()> {
    let mut stdin = StdinReader::spawn()?;
    let upload = async {
        // Each read of stdin is queued as it is: no copy into the stream's buffer.
        while let Some(chunk) = stdin.next().await {
            stream.write_chunk(chunk?).await?;
        }
        (&stream).flush().await // resolves once every byte is acknowledged
    };
    tokio::pin!(upload);
    let mut upload_done = false;
    let mut out = StdoutWriter::spawn()?;
    // Received chunks wait in `batch` while stdout is busy (a full pipe, or the writer
    // thread of a file or terminal still writing) and the batch holds less than a
    // [`CHUNK`]: each hand-over to a thread costs two wake-ups, and one per socket-loop pass
    // (often a few KiB) cost more than the write (issue 15 item 8). An idle stdout gets
    // chunks at once. The chunks are the stream's own, written with `writev`.
    let mut batch = out.batch();
    let mut batched = 0;
    let mut last_output = Instant::now();
    let mut quiet = Quiet::new();
    // The first tick comes one period in: a probe before the first data would only add a
    // datagram (and make a sender's first datagram a WASK instead of its data).
    let period = keepalive_period(linger);
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            r = &mut upload, if !upload_done => {
                r.map_err(|e| with_context(e, "sending stdin"))?;
                upload_done = true;
            }
            r = stream.read_chunk(CHUNK - batched), if out.can_write() && batched < CHUNK => {
                let c = match r {
                    Ok(None) => Err(io::Error::other("the KCP stream ended unexpectedly")),
                    Ok(Some(c)) => Ok(c),
                    Err(e) => Err(with_context(e, "receiving")),
                };
                let c = match c {
                    Ok(c) => c,
                    Err(e) => {
                        // What arrived before still reaches stdout.
                        hand_over(&mut out, &mut batch, &mut batched)?;
                        out.drain().await;
                        return Err(e);
                    }
                };
                batched += c.len();
                batch.push(c);
                batched += take_ready_chunks(&stream, &mut batch, CHUNK.saturating_sub(batched));
                if out.is_idle() || batched >= CHUNK {
                    hand_over(&mut out, &mut batch, &mut batched)?;
                }
            }
            r = out.written(), if !out.is_idle() => {
                match r {
                    Err(e) if e.kind() == io::ErrorKind::BrokenPipe => return Ok(()),
                    r => r?,
                }
                last_output = Instant::now();
                if out.is_idle() {
                    hand_over(&mut out, &mut batch, &mut batched)?;
                }
            }
            _ = tick.tick() => {
                if !upload_done {
                    // stdin open or bytes unacknowledged: never end on silence; show we're here.
                    stream.send_keepalive();
                    continue;
                }
                let nothing_new = quiet.observe(stream.last_received().await);
                let all_written = stream.unread() == 0
                    && batch.is_empty()
                    && out.is_idle()
                    && last_output.elapsed() >= linger;
                if nothing_new && all_written && quiet.for_at_least(linger) {
                    return Ok(());
                }
            }
        }
    }
}

/// Appends to `batch` the chunks the stream already holds, up to `max` bytes, without
/// waiting; returns their bytes. Taking them all at once (as one `read` into a buffer did)
/// keeps the hand-overs to the stdout thread, and the loop's turns, to one per arrival
/// rather than one per chunk. The end of the stream or an error is left for the next
/// `read_chunk` to report (the next turn registers the task's waker again).
fn take_ready_chunks(stream: &KcpStream, batch: &mut Vec<Bytes>, max: usize) -> usize {
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match stream.poll_read_chunks(&mut cx, max, batch) {
        std::task::Poll::Ready(Ok(n)) if max > 0 => n,
        _ => 0,
    }
}

/// Queues the chunks waiting in `batch` for stdout (nothing when there are none) and puts
/// an empty batch in its place.
fn hand_over(
    out: &mut StdoutWriter,
    batch: &mut Vec<Bytes>,
    batched: &mut usize,
) -> io::Result<()> {
    if batch.is_empty() {
        return Ok(());
    }
    let full = std::mem::replace(batch, out.batch());
    *batched = 0;
    out.write(full)
}

/// Silence from the peer, timed on our own clock: the runtime stamps datagrams with the time
/// its read pass began, which can lag behind (a long pass, a busy thread), so the moment we
/// see the stamp change is what counts, not the stamp itself.
struct Quiet {
    heard: Option<Instant>,
    since: Instant,
}

impl Quiet {
    fn new() -> Self {
        Quiet {
            heard: None,
            since: Instant::now(),
        }
    }

    /// Records the session's latest "last received" answer; true if nothing new arrived.
    fn observe(&mut self, heard: Option<Instant>) -> bool {
        if heard != self.heard {
            self.heard = heard;
            self.since = Instant::now();
            return false;
        }
        true
    }

    /// Whether no datagram arrived for `d`, as far as our observations go.
    fn for_at_least(&self, d: Duration) -> bool {
        self.since.elapsed() >= d
    }
}

/// `e` with what `tether cat` was doing, keeping its kind.
fn with_context(e: io::Error, doing: &str) -> io::Error {
    io::Error::new(e.kind(), format!("{doing}: {e}"))
}
