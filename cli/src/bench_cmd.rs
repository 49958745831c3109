//! `tether bench`: tether vs kcp-go side by side on loopback (bulk throughput, CPU per GiB,
//! 64-byte echo RTT, idle sessions' CPU and RSS), and `tether bench-peer`, the Rust twin of
//! the Go peer `tests/go/kcppeer` (same roles, flags and JSON lines) that it drives.
//!
//! Both peers are separate processes, measured the same way: a client's own JSON reports its
//! CPU (`cpu_seconds`: user+system of the whole process) and peak RSS (`max_rss_kb`); the
//! server's CPU is the delta of `/proc/<pid>/stat` utime+stime around the client's run, its
//! RSS is `/proc/<pid>/status` VmRSS.
use std::collections::{BTreeMap, VecDeque};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Args;
use sha2::{Digest, Sha256};
use tether_runtime_tokio::{Config, KcpListener, KcpStream};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::kcp_flags::KcpFlags;
use crate::units::{parse_duration, parse_size};

const HELLO: u8 = b'h';
const CHUNK: usize = 64 * 1024;
/// Linux `USER_HZ`: /proc/<pid>/stat counts CPU time in 1/100 s.
const TICKS_PER_SEC: f64 = 100.0;

// ------------------------------------------------------------------ /proc helpers

/// utime+stime of `/proc/<pid>/stat` in ticks (`pid` may be `self`).
fn proc_cpu_ticks(pid: &str) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may contain spaces: fields after the last ')' start at 3.
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = f.get(11)?.parse().ok()?;
    let stime: u64 = f.get(12)?.parse().ok()?;
    Some(utime + stime)
}

fn proc_cpu_seconds(pid: &str) -> f64 {
    proc_cpu_ticks(pid).unwrap_or(0) as f64 / TICKS_PER_SEC
}

/// A `kB` line of `/proc/<pid>/status` (`VmRSS`, `VmHWM`).
fn proc_status_kb(pid: &str, key: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|l| {
        let v = l.strip_prefix(key)?.strip_prefix(':')?;
        v.split_whitespace().next()?.parse().ok()
    })
}

// ------------------------------------------------------------------ payload pattern

/// kcppeer's xorshift64 byte stream (tests/src/peer.rs `pattern`).
struct Pattern {
    x: u64,
    buf: [u8; 8],
    n: usize,
}

impl Pattern {
    fn new(seed: u64) -> Pattern {
        let x = if seed == 0 {
            0x9E37_79B9_7F4A_7C15
        } else {
            seed
        };
        Pattern {
            x,
            buf: [0; 8],
            n: 0,
        }
    }

    fn step(&mut self) -> [u8; 8] {
        self.x ^= self.x << 13;
        self.x ^= self.x >> 7;
        self.x ^= self.x << 17;
        self.x.to_le_bytes()
    }

    fn fill(&mut self, mut out: &mut [u8]) {
        while self.n > 0 && !out.is_empty() {
            out[0] = self.buf[8 - self.n];
            self.n -= 1;
            out = &mut out[1..];
        }
        let mut chunks = out.chunks_exact_mut(8);
        for c in &mut chunks {
            c.copy_from_slice(&self.step());
        }
        let tail = chunks.into_remainder();
        if !tail.is_empty() {
            self.buf = self.step();
            self.n = 8;
            for b in tail {
                *b = self.buf[8 - self.n];
                self.n -= 1;
            }
        }
    }
}

// ------------------------------------------------------------------ tether bench-peer

/// Flags of `tether bench-peer` (kcppeer's names; kcptun's KCP flags).
#[derive(Debug, Clone, Args)]
pub struct PeerArgs {
    /// Server: UDP address to listen on (127.0.0.1:0 picks a port).
    #[arg(long, conflicts_with = "connect", required_unless_present = "connect")]
    pub listen: Option<SocketAddr>,
    /// Client: UDP address of the server.
    #[arg(long)]
    pub connect: Option<String>,
    /// Server: echo (default). Client: bulk, rtt, idle.
    #[arg(long)]
    pub role: Option<String>,
    /// bulk: bytes each way.
    #[arg(long, default_value = "4194304", value_parser = parse_size)]
    pub bytes: u64,
    /// Seed of the xorshift64 payload pattern.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// rtt: number of messages.
    #[arg(long, default_value_t = 1000)]
    pub count: usize,
    /// rtt: message size.
    #[arg(long, default_value_t = 64)]
    pub size: usize,
    /// idle: number of sessions.
    #[arg(long, default_value_t = 100)]
    pub sessions: usize,
    /// idle: how long to hold the sessions.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub hold: Duration,
    /// Overall deadline (client: exit 3; server: exit 0); 0 = none.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Exit when stdin reaches EOF (the parent died).
    #[arg(long)]
    pub parentwatch: bool,
    /// Server: do not log sessions.
    #[arg(long)]
    pub quiet: bool,
    /// tokio worker threads (1: a current-thread runtime, as `tether cat`).
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    #[command(flatten)]
    pub kcp: KcpFlags,
}

static PROG_SENT: AtomicU64 = AtomicU64::new(0);
static PROG_RECV: AtomicU64 = AtomicU64::new(0);

/// A client failure: exit code and message.
type Fail = (i32, String);

fn fail(e: impl std::fmt::Display) -> Fail {
    (1, e.to_string())
}

/// Runs `tether bench-peer`; returns the exit code.
pub fn run_peer(args: &PeerArgs) -> i32 {
    let role = args.role.clone().unwrap_or_default();
    let server = args.listen.is_some();
    let known = if server {
        matches!(role.as_str(), "" | "echo")
    } else {
        matches!(role.as_str(), "bulk" | "rtt" | "idle")
    };
    if !known {
        let want = if server { "echo" } else { "bulk, rtt or idle" };
        eprintln!("tether bench-peer: unknown role {role:?} (want {want})");
        return 2;
    }
    let rt = if args.threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(args.threads)
            .enable_all()
            .build()
    };
    let rt = match rt {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("tether bench-peer: cannot start the runtime: {e}");
            return 1;
        }
    };
    if args.parentwatch {
        std::thread::spawn(|| {
            let _ = io::copy(&mut io::stdin(), &mut io::sink());
            std::process::exit(0);
        });
    }
    let cfg = args.kcp.config(); // PBKDF2 once; sessions clone it
    if let Err(e) = cfg.validate() {
        eprintln!("tether bench-peer: {e}");
        return 2;
    }
    let timeout = (!args.timeout.is_zero()).then_some(args.timeout);
    if let Some(listen) = args.listen {
        let r = rt.block_on(async {
            match timeout {
                Some(t) => tokio::time::timeout(t, serve(args, cfg, listen))
                    .await
                    .unwrap_or(Ok(())),
                None => serve(args, cfg, listen).await,
            }
        });
        return match r {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("tether bench-peer: {e}");
                1
            }
        };
    }
    let r = rt.block_on(async {
        let work = client(args, cfg, &role);
        match timeout {
            Some(t) => tokio::time::timeout(t, work).await.unwrap_or_else(|_| {
                Err((
                    3,
                    format!(
                        "--timeout {t:?} reached in role {role}: sent {}, received {} bytes",
                        PROG_SENT.load(Ordering::Relaxed),
                        PROG_RECV.load(Ordering::Relaxed)
                    ),
                ))
            }),
            None => work.await,
        }
    });
    match r {
        Ok(json) => {
            let mut out = io::stdout().lock();
            let _ = writeln!(out, "{json}");
            let _ = out.flush();
            0
        }
        Err((code, msg)) => {
            eprintln!("tether bench-peer: {msg}");
            code
        }
    }
}

async fn serve(args: &PeerArgs, cfg: Config, listen: SocketAddr) -> io::Result<()> {
    let listener = KcpListener::bind(listen, cfg).await?;
    {
        let mut out = io::stdout().lock();
        writeln!(out, "listening {}", listener.local_addr())?;
        out.flush()?;
    }
    loop {
        let (s, peer) = listener.accept().await?;
        if !args.quiet {
            eprintln!("tether bench-peer: session from {peer}");
        }
        tokio::spawn(async move {
            if let Err(e) = echo(s).await {
                eprintln!("tether bench-peer: session from {peer}: {e}");
            }
        });
    }
}

/// Reads up to this much without the 64 KiB buffer (the hello, the RTT echoes).
const SMALL_READ: usize = 512;
/// A session whose bytes stopped flowing for this long gives its 64 KiB buffer back.
const ECHO_BUFFER_IDLE: Duration = Duration::from_secs(1);

/// Echoes every byte. The 64 KiB buffer exists only while a bulk transfer flows, so an idle
/// session's RSS is the library's, not a touched 64 KiB `calloc` per session (kcp-go's echo
/// buffer is never written beyond its first page, so it costs no RSS either).
async fn echo(mut s: KcpStream) -> io::Result<()> {
    let mut small = [0u8; SMALL_READ];
    let mut big: Vec<u8> = Vec::new();
    loop {
        if big.is_empty() {
            let n = s.read(&mut small).await?;
            if n == 0 {
                return Ok(());
            }
            s.write_all(&small[..n]).await?;
            if n == SMALL_READ {
                big = vec![0u8; CHUNK];
            }
            continue;
        }
        let n = match tokio::time::timeout(ECHO_BUFFER_IDLE, s.read(&mut big)).await {
            Ok(r) => r?,
            Err(_quiet) => {
                big = Vec::new();
                continue;
            }
        };
        if n == 0 {
            return Ok(());
        }
        s.write_all(&big[..n]).await?;
    }
}

/// kcppeer's JSON line: integers as they are, floats with 6 decimals, strings quoted.
enum J {
    I(u64),
    F(f64),
    S(String),
}

fn json_line(fields: &[(&str, J)]) -> String {
    let body: Vec<String> = fields
        .iter()
        .map(|(k, v)| match v {
            J::I(i) => format!("\"{k}\":{i}"),
            J::F(f) => format!("\"{k}\":{f:.6}"),
            J::S(s) => format!("\"{k}\":\"{s}\""),
        })
        .collect();
    format!("{{{}}}", body.join(","))
}

fn resources() -> [(&'static str, J); 2] {
    [
        ("cpu_seconds", J::F(proc_cpu_seconds("self"))),
        (
            "max_rss_kb",
            J::I(proc_status_kb("self", "VmHWM").unwrap_or(0)),
        ),
    ]
}

async fn client(args: &PeerArgs, cfg: Config, role: &str) -> Result<String, Fail> {
    let addr_s = args
        .connect
        .as_deref()
        .expect("clap: --listen or --connect");
    let addr = tokio::net::lookup_host(addr_s)
        .await
        .map_err(|e| fail(format!("resolve {addr_s}: {e}")))?
        .next()
        .ok_or_else(|| fail(format!("{addr_s}: no address")))?;
    match role {
        "bulk" => bulk(args, cfg, addr).await,
        "rtt" => rtt(args, cfg, addr).await,
        _ => idle(args, cfg, addr).await,
    }
}

async fn dial(addr: SocketAddr, cfg: Config) -> Result<KcpStream, Fail> {
    KcpStream::connect(addr, cfg).await.map_err(|e| {
        let hint = if e.raw_os_error() == Some(24) {
            " (raise `ulimit -n`: every session has its own UDP socket)"
        } else {
            ""
        };
        fail(format!("dial {addr}: {e}{hint}"))
    })
}

async fn hello(s: &mut KcpStream) -> io::Result<()> {
    s.write_all(&[HELLO]).await?;
    let mut b = [0u8; 1];
    s.read_exact(&mut b).await?;
    if b[0] != HELLO {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("hello: got byte {:#x} back, want {HELLO:#x}", b[0]),
        ));
    }
    PROG_RECV.fetch_add(1, Ordering::Relaxed);
    Ok(())
}

async fn bulk(args: &PeerArgs, cfg: Config, addr: SocketAddr) -> Result<String, Fail> {
    let mut s = dial(addr, cfg).await?;
    hello(&mut s)
        .await
        .map_err(|e| fail(format!("hello: {e}")))?;
    let n = args.bytes;
    let start = Instant::now();
    let (mut rx, mut tx) = tokio::io::split(s);
    let seed = args.seed;
    let writer = async move {
        let mut p = Pattern::new(seed);
        let mut h = Sha256::new();
        let mut buf = vec![0u8; CHUNK];
        let mut done = 0u64;
        while done < n {
            let k = (n - done).min(CHUNK as u64) as usize;
            p.fill(&mut buf[..k]);
            h.update(&buf[..k]);
            tx.write_all(&buf[..k]).await?;
            done += k as u64;
            PROG_SENT.fetch_add(k as u64, Ordering::Relaxed);
        }
        Ok::<_, io::Error>((h, tx))
    };
    let reader = async move {
        let mut h = Sha256::new();
        let mut buf = vec![0u8; CHUNK];
        let mut got = 0u64;
        while got < n {
            let k = (n - got).min(CHUNK as u64) as usize;
            let m = rx.read(&mut buf[..k]).await?;
            if m == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("read after {got} of {n} bytes: end of stream"),
                ));
            }
            h.update(&buf[..m]);
            got += m as u64;
            PROG_RECV.fetch_add(m as u64, Ordering::Relaxed);
        }
        Ok::<_, io::Error>((h, got, rx))
    };
    let (w, r) = tokio::join!(writer, reader);
    let secs = start.elapsed().as_secs_f64();
    let (hr, got, _rx) = r.map_err(|e| fail(format!("bulk: {e}")))?;
    let (hs, _tx) = w.map_err(|e| fail(format!("bulk: write: {e}")))?;
    let (sent, recv) = (hex::encode(hs.finalize()), hex::encode(hr.finalize()));
    if sent != recv {
        return Err(fail("bulk: the echoed bytes differ from the sent ones"));
    }
    let mut f = vec![
        ("sent", J::I(n)),
        ("received", J::I(got)),
        ("sha256_sent", J::S(sent)),
        ("sha256_received", J::S(recv)),
        ("seconds", J::F(secs)),
    ];
    f.extend(resources());
    Ok(json_line(&f))
}

/// Nearest rank, as kcppeer.
fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((p * sorted.len() as f64 + 0.999999) as usize).saturating_sub(1);
    sorted[i.min(sorted.len() - 1)]
}

async fn rtt(args: &PeerArgs, cfg: Config, addr: SocketAddr) -> Result<String, Fail> {
    if args.count == 0 || args.size == 0 {
        return Err((2, "rtt: --count and --size must be positive".into()));
    }
    let mut s = dial(addr, cfg).await?;
    hello(&mut s)
        .await
        .map_err(|e| fail(format!("hello: {e}")))?;
    let mut p = Pattern::new(args.seed);
    let (mut msg, mut back) = (vec![0u8; args.size], vec![0u8; args.size]);
    let mut rtts = Vec::with_capacity(args.count);
    let start = Instant::now();
    for i in 0..args.count {
        p.fill(&mut msg);
        let t0 = Instant::now();
        s.write_all(&msg)
            .await
            .map_err(|e| fail(format!("rtt: write {i}: {e}")))?;
        s.read_exact(&mut back)
            .await
            .map_err(|e| fail(format!("rtt: read {i}: {e}")))?;
        let us = t0.elapsed().as_micros() as u64;
        if back != msg {
            return Err(fail(format!("rtt: echo {i} differs from the message")));
        }
        rtts.push(us);
        PROG_SENT.fetch_add(args.size as u64, Ordering::Relaxed);
        PROG_RECV.fetch_add(args.size as u64, Ordering::Relaxed);
    }
    let secs = start.elapsed().as_secs_f64();
    let sum: u64 = rtts.iter().sum();
    rtts.sort_unstable();
    let mut f = vec![
        ("count", J::I(args.count as u64)),
        ("size", J::I(args.size as u64)),
        ("min_us", J::I(rtts[0])),
        ("p50_us", J::I(percentile(&rtts, 0.50))),
        ("p90_us", J::I(percentile(&rtts, 0.90))),
        ("p99_us", J::I(percentile(&rtts, 0.99))),
        ("max_us", J::I(rtts[rtts.len() - 1])),
        ("mean_us", J::I(sum / rtts.len() as u64)),
        ("seconds", J::F(secs)),
    ];
    f.extend(resources());
    Ok(json_line(&f))
}

async fn idle(args: &PeerArgs, cfg: Config, addr: SocketAddr) -> Result<String, Fail> {
    if args.sessions == 0 {
        return Err((2, "idle: --sessions must be positive".into()));
    }
    let start = Instant::now();
    let mut streams = Vec::with_capacity(args.sessions);
    for _ in 0..args.sessions {
        streams.push(dial(addr, cfg.clone()).await?);
    }
    // The hellos concurrently (one at a time would cost N RTTs).
    let mut set = tokio::task::JoinSet::new();
    for mut s in streams {
        set.spawn(async move { hello(&mut s).await.map(|()| s) });
    }
    let mut held = Vec::with_capacity(args.sessions);
    while let Some(r) = set.join_next().await {
        let s = r
            .map_err(|e| fail(format!("idle: hello task: {e}")))?
            .map_err(|e| fail(format!("idle: hello: {e}")))?;
        held.push(s);
    }
    let setup = start.elapsed().as_secs_f64();
    eprintln!("holding {} sessions", held.len());
    let (hold_start, cpu0) = (Instant::now(), proc_cpu_seconds("self"));
    tokio::time::sleep(args.hold).await;
    let (hold, hold_cpu) = (
        hold_start.elapsed().as_secs_f64(),
        proc_cpu_seconds("self") - cpu0,
    );
    let established = held.len() as u64;
    drop(held);
    let mut f = vec![
        ("sessions", J::I(args.sessions as u64)),
        ("established", J::I(established)),
        ("setup_seconds", J::F(setup)),
        ("hold_seconds", J::F(hold)),
    ];
    f.extend(resources());
    f.push(("hold_cpu_seconds", J::F(hold_cpu)));
    Ok(json_line(&f))
}

// ------------------------------------------------------------------ tether bench

/// Flags of `tether bench`.
#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    /// The kcp-go peer binary (default: build tests/go/kcppeer into <target>/go-bin/kcppeer).
    #[arg(long)]
    pub kcppeer: Option<PathBuf>,
    /// Bulk transfer: bytes each way through the echo server.
    #[arg(long, default_value = "256MiB", value_parser = parse_size)]
    pub bytes: u64,
    /// Number of 64-byte echoes for the RTT percentiles.
    #[arg(long, default_value_t = 2000)]
    pub rtt_count: usize,
    /// Idle sessions held open at once.
    #[arg(long, default_value_t = 5000)]
    pub idle_sessions: usize,
    /// How long the idle sessions are held.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub hold: Duration,
    /// Print one JSON object with every number instead of the markdown tables.
    #[arg(long)]
    pub json: bool,
    /// tokio worker threads of tether's peers (1: a current-thread runtime).
    #[arg(long, default_value_t = 1, hide = true)]
    pub threads: usize,
}

/// One benchmark setting, applied identically to both peers.
struct Setting {
    name: &'static str,
    crypt: &'static str,
    ds: usize,
    ps: usize,
}

const SETTINGS: [Setting; 2] = [
    Setting {
        name: "none + no FEC",
        crypt: "none",
        ds: 0,
        ps: 0,
    },
    Setting {
        name: "aes + FEC 10/3",
        crypt: "aes",
        ds: 10,
        ps: 3,
    },
];

const COMMON: &str =
    "--mode fast --sndwnd 1024 --rcvwnd 1024 --mtu 1350 (same flags to both peers)";

#[derive(Clone, Copy, PartialEq, Eq)]
enum Impl {
    Tether,
    KcpGo,
}

impl Impl {
    fn name(self) -> &'static str {
        match self {
            Impl::Tether => "tether",
            Impl::KcpGo => "kcp-go",
        }
    }
}

type Json = BTreeMap<String, String>;

/// A flat JSON object's members (numbers and hex strings only, as the peers print them).
fn parse_flat_json(line: &str) -> Option<Json> {
    let inner = line.trim().strip_prefix('{')?.strip_suffix('}')?;
    let mut m = Json::new();
    for part in inner.split(',') {
        let (k, v) = part.split_once(':')?;
        m.insert(
            k.trim().trim_matches('"').to_string(),
            v.trim().trim_matches('"').to_string(),
        );
    }
    Some(m)
}

fn num(j: &Json, k: &str) -> Result<f64, String> {
    j.get(k)
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| format!("the peer's JSON has no number {k:?}: {j:?}"))
}

/// `within` from now, or a century when that is not representable (a `--hold` or
/// timeout of `Duration::MAX` means "no bound", not a panic).
fn deadline_in(within: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(within)
        .unwrap_or_else(|| now + Duration::from_secs(100 * 365 * 24 * 3600))
}

/// A child process, killed and reaped when dropped; its stdout lines arrive on `out`, its
/// stderr lines on `err` (the last ones are also kept for error messages).
struct Proc {
    name: String,
    child: Child,
    _stdin: Option<ChildStdin>,
    out: Receiver<String>,
    err: Receiver<String>,
    err_tail: Arc<Mutex<VecDeque<String>>>,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn line_pump(
    r: impl Read + Send + 'static,
    tail: Option<Arc<Mutex<VecDeque<String>>>>,
) -> Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(r).lines() {
            let Ok(line) = line else { break };
            if let Some(t) = &tail {
                let mut t = t.lock().unwrap_or_else(|e| e.into_inner());
                if t.len() == 20 {
                    t.pop_front();
                }
                t.push_back(line.clone());
            }
            let _ = tx.send(line);
        }
    });
    rx
}

impl Proc {
    fn spawn(name: String, mut cmd: Command) -> Result<Proc, String> {
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("cannot start {name} ({cmd:?}): {e}"))?;
        let err_tail = Arc::new(Mutex::new(VecDeque::new()));
        let out = line_pump(child.stdout.take().expect("piped"), None);
        let err = line_pump(
            child.stderr.take().expect("piped"),
            Some(Arc::clone(&err_tail)),
        );
        Ok(Proc {
            name,
            _stdin: child.stdin.take(),
            child,
            out,
            err,
            err_tail,
        })
    }

    fn pid(&self) -> String {
        self.child.id().to_string()
    }

    fn stderr_tail(&self) -> String {
        let t = self.err_tail.lock().unwrap_or_else(|e| e.into_inner());
        t.iter().cloned().collect::<Vec<_>>().join("\n    ")
    }

    fn failed(&self, what: &str) -> String {
        format!(
            "{} {what}; its stderr:\n    {}",
            self.name,
            self.stderr_tail()
        )
    }

    /// A server's `listening <addr>` line.
    fn listening(&mut self, within: Duration) -> Result<SocketAddr, String> {
        let line = self
            .out
            .recv_timeout(within)
            .map_err(|_| self.failed(&format!("printed no `listening` line within {within:?}")))?;
        line.strip_prefix("listening ")
            .and_then(|a| a.trim().parse().ok())
            .ok_or_else(|| self.failed(&format!("printed {line:?}, not `listening <addr>`")))
    }

    /// Waits for a stderr line starting with `prefix`.
    fn await_stderr(&mut self, prefix: &str, within: Duration) -> Result<(), String> {
        let deadline = deadline_in(within);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.err.recv_timeout(left) {
                Ok(l) if l.starts_with(prefix) => return Ok(()),
                Ok(_) => {}
                Err(RecvTimeoutError::Timeout) => {
                    return Err(self.failed(&format!("printed no `{prefix}` within {within:?}")))
                }
                Err(RecvTimeoutError::Disconnected) => {
                    std::thread::sleep(Duration::from_millis(50));
                    return Err(self.failed(&format!("exited before printing `{prefix}`")));
                }
            }
        }
    }

    /// Waits (bounded) for the client to exit 0 and returns its JSON line.
    fn finish(&mut self, within: Duration) -> Result<Json, String> {
        let deadline = deadline_in(within);
        let status = loop {
            match self.child.try_wait() {
                Ok(Some(st)) => break st,
                Ok(None) if Instant::now() >= deadline => {
                    let _ = self.child.kill();
                    return Err(self.failed(&format!("did not finish within {within:?} (killed)")));
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(10)),
                Err(e) => return Err(format!("waiting for {}: {e}", self.name)),
            }
        };
        let mut json = None;
        while let Ok(line) = self.out.recv_timeout(Duration::from_secs(2)) {
            if line.starts_with('{') {
                json = parse_flat_json(&line);
            }
        }
        std::thread::sleep(Duration::from_millis(20)); // let the stderr pump catch up
        if !status.success() {
            return Err(self.failed(&format!("failed ({status})")));
        }
        json.ok_or_else(|| self.failed("printed no JSON line"))
    }
}

/// Where the two peers come from.
struct Peers {
    go: PathBuf,
    rust: PathBuf,
    threads: usize,
}

impl Peers {
    fn command(&self, imp: Impl, s: &Setting, extra: &[String]) -> Command {
        let mut c = match imp {
            Impl::KcpGo => Command::new(&self.go),
            Impl::Tether => {
                let mut c = Command::new(&self.rust);
                c.arg("bench-peer")
                    .args(["--threads", &self.threads.to_string()]);
                c
            }
        };
        // Go's flag package accepts `--name value` as well as `-name value`.
        c.args(["--crypt", s.crypt, "--key", "it's a secrect"])
            .args([
                "--datashard",
                &s.ds.to_string(),
                "--parityshard",
                &s.ps.to_string(),
            ])
            .args([
                "--mode", "fast", "--sndwnd", "1024", "--rcvwnd", "1024", "--mtu", "1350",
            ])
            .args(extra);
        c
    }

    fn server(&self, imp: Impl, s: &Setting) -> Result<(Proc, SocketAddr), String> {
        let extra: Vec<String> = [
            "--listen",
            "127.0.0.1:0",
            "--role",
            "echo",
            "--quiet",
            "--parentwatch",
            "--timeout",
            "0s",
        ]
        .map(String::from)
        .to_vec();
        let mut p = Proc::spawn(
            format!("the {} echo server", imp.name()),
            self.command(imp, s, &extra),
        )?;
        let addr = p.listening(Duration::from_secs(20))?;
        Ok((p, addr))
    }

    fn client(
        &self,
        imp: Impl,
        s: &Setting,
        addr: SocketAddr,
        role: &str,
        extra: &[String],
        timeout: Duration,
    ) -> Result<Proc, String> {
        let mut args = vec![
            "--connect".to_string(),
            addr.to_string(),
            "--role".into(),
            role.into(),
            "--timeout".into(),
            format!("{}ms", timeout.as_millis()),
        ];
        args.extend_from_slice(extra);
        Proc::spawn(
            format!("the {} {role} client", imp.name()),
            self.command(imp, s, &args),
        )
    }
}

#[derive(Default, Clone)]
struct SettingResult {
    mb_per_s: f64,
    bulk_seconds: f64,
    client_cpu: f64,
    server_cpu: f64,
    cpu_per_gib: f64,
    rtt_p50_us: f64,
    rtt_p99_us: f64,
    rtt_mean_us: f64,
}

#[derive(Default, Clone)]
struct IdleResult {
    setup_seconds: f64,
    hold_seconds: f64,
    server_hold_cpu: f64,
    client_hold_cpu: f64,
    server_rss_kb: f64,
    /// The server's VmRSS once listening, before the first session.
    server_rss_base_kb: f64,
    sessions: usize,
    client_max_rss_kb: f64,
}

impl IdleResult {
    fn core_pct(&self) -> f64 {
        100.0 * (self.server_hold_cpu + self.client_hold_cpu) / self.hold_seconds.max(1e-9)
    }

    /// Server memory per idle session: the RSS delta over the sessions.
    fn kib_per_session(&self) -> f64 {
        (self.server_rss_kb - self.server_rss_base_kb) / self.sessions.max(1) as f64
    }
}

fn run_setting(
    peers: &Peers,
    imp: Impl,
    s: &Setting,
    args: &BenchArgs,
) -> Result<SettingResult, String> {
    let (server, addr) = peers.server(imp, s)?;
    let spid = server.pid();
    // At least 1 MiB/s, plus a minute.
    let bulk_timeout = Duration::from_secs(60 + args.bytes / (1 << 20));
    let s0 = proc_cpu_seconds(&spid);
    let mut c = peers.client(
        imp,
        s,
        addr,
        "bulk",
        &["--bytes".into(), args.bytes.to_string()],
        bulk_timeout,
    )?;
    let j = c.finish(bulk_timeout.saturating_add(Duration::from_secs(15)))?;
    let server_cpu = proc_cpu_seconds(&spid) - s0;
    let (secs, client_cpu) = (num(&j, "seconds")?, num(&j, "cpu_seconds")?);
    let mut r = SettingResult {
        mb_per_s: args.bytes as f64 / secs / 1e6,
        bulk_seconds: secs,
        client_cpu,
        server_cpu,
        cpu_per_gib: (client_cpu + server_cpu) / (args.bytes as f64 / (1u64 << 30) as f64),
        ..SettingResult::default()
    };
    let rtt_timeout = Duration::from_secs(60 + args.rtt_count as u64 / 20);
    let extra = [
        "--count".to_string(),
        args.rtt_count.to_string(),
        "--size".into(),
        "64".into(),
    ];
    let mut c = peers.client(imp, s, addr, "rtt", &extra, rtt_timeout)?;
    let j = c.finish(rtt_timeout.saturating_add(Duration::from_secs(15)))?;
    r.rtt_p50_us = num(&j, "p50_us")?;
    r.rtt_p99_us = num(&j, "p99_us")?;
    r.rtt_mean_us = num(&j, "mean_us")?;
    drop(server);
    Ok(r)
}

fn run_idle(peers: &Peers, imp: Impl, s: &Setting, args: &BenchArgs) -> Result<IdleResult, String> {
    let (server, addr) = peers.server(imp, s)?;
    let spid = server.pid();
    let server_rss_base = proc_status_kb(&spid, "VmRSS").unwrap_or(0) as f64;
    let setup_bound = Duration::from_secs(60 + args.idle_sessions as u64 / 50);
    let timeout = setup_bound
        .saturating_add(args.hold)
        .saturating_add(Duration::from_secs(30));
    let extra = [
        "--sessions".to_string(),
        args.idle_sessions.to_string(),
        "--hold".into(),
        format!("{}ms", args.hold.as_millis()),
    ];
    let mut c = peers.client(imp, s, addr, "idle", &extra, timeout)?;
    c.await_stderr("holding ", setup_bound)?;
    // Sample the server over the client's hold (it starts just before its `holding` line).
    let (t0, s0) = (Instant::now(), proc_cpu_seconds(&spid));
    std::thread::sleep(args.hold.saturating_sub(Duration::from_millis(100)));
    let (elapsed, server_cpu) = (t0.elapsed().as_secs_f64(), proc_cpu_seconds(&spid) - s0);
    let server_rss = proc_status_kb(&spid, "VmRSS").unwrap_or(0) as f64;
    let j = c.finish(timeout)?;
    let established = num(&j, "established")?;
    if established < args.idle_sessions as f64 {
        return Err(format!(
            "{}: only {established} of {} sessions established",
            c.name, args.idle_sessions
        ));
    }
    let hold = num(&j, "hold_seconds")?;
    drop(server);
    Ok(IdleResult {
        setup_seconds: num(&j, "setup_seconds")?,
        hold_seconds: hold,
        // Scaled from the sampled window to the client's hold.
        server_hold_cpu: server_cpu * hold / elapsed.max(1e-9),
        client_hold_cpu: num(&j, "hold_cpu_seconds")?,
        server_rss_kb: server_rss,
        server_rss_base_kb: server_rss_base,
        sessions: args.idle_sessions,
        client_max_rss_kb: num(&j, "max_rss_kb")?,
    })
}

// ------------------------------------------------------------------ locating the Go peer

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("cli has a parent")
        .to_path_buf()
}

fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from) {
        Some(d) if d.is_absolute() => d,
        Some(d) => workspace_root().join(d),
        None => workspace_root().join("target"),
    }
}

/// tests/src/go.rs's environment: offline GOPATH mode against Debian's kcp-go sources.
fn go_command() -> Command {
    let gopath = std::env::var_os("TETHER_GOPATH").unwrap_or_else(|| "/usr/share/gocode".into());
    let mut c = Command::new("go");
    c.env("GO111MODULE", "off")
        .env("GOPATH", &gopath)
        .env("GOPROXY", "off")
        .env("GOFLAGS", "")
        .env("GOTOOLCHAIN", "local");
    if std::env::var_os("GOCACHE").is_none() {
        c.env("GOCACHE", target_dir().join("go-cache"));
    }
    c
}

/// Builds tests/go/kcppeer into <target>/go-bin/kcppeer. `Err((2, _))`: no usable Go.
fn build_kcppeer() -> Result<PathBuf, (i32, String)> {
    match go_command().arg("version").output() {
        Err(e) => {
            return Err((
                2,
                format!("`go` cannot be run ({e}); install Debian's golang-go and golang-github-xtaci-kcp-dev, or pass --kcppeer PATH"),
            ))
        }
        Ok(o) if !o.status.success() => {
            return Err((2, format!("`go version` failed: {}", String::from_utf8_lossy(&o.stderr).trim())))
        }
        Ok(_) => {}
    }
    let src = workspace_root().join("tests/go/kcppeer");
    if !src.is_dir() {
        return Err((
            2,
            format!(
                "no Go peer sources at {}; pass --kcppeer PATH",
                src.display()
            ),
        ));
    }
    let bindir = target_dir().join("go-bin");
    std::fs::create_dir_all(&bindir)
        .map_err(|e| (1, format!("creating {}: {e}", bindir.display())))?;
    let out = bindir.join("kcppeer");
    let tmp = bindir.join(format!(".kcppeer.{}.tmp", std::process::id()));
    let o = go_command()
        .current_dir(&src)
        .arg("build")
        .arg("-o")
        .arg(&tmp)
        .arg(".")
        .output()
        .map_err(|e| (2, format!("cannot run `go build`: {e}")))?;
    if !o.status.success() {
        let _ = std::fs::remove_file(&tmp);
        return Err((
            2,
            format!(
                "`go build` of {} failed ({}; is golang-github-xtaci-kcp-dev installed?):\n{}{}",
                src.display(),
                o.status,
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            ),
        ));
    }
    std::fs::rename(&tmp, &out).map_err(|e| {
        (
            1,
            format!("moving {} to {}: {e}", tmp.display(), out.display()),
        )
    })?;
    Ok(out)
}

// ------------------------------------------------------------------ reporting

fn ratio(t: f64, g: f64) -> String {
    if g > 0.0 {
        format!("{:.2}×", t / g)
    } else {
        "n/a".into()
    }
}

fn row(out: &mut String, metric: &str, t: f64, g: f64, prec: usize) {
    out.push_str(&format!(
        "| {metric} | {t:.prec$} | {g:.prec$} | {} |\n",
        ratio(t, g)
    ));
}

const HEADER: &str = "| metric | tether | kcp-go | ratio |\n|---|---:|---:|---:|\n";

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

/// Runs `tether bench`; returns the exit code.
pub fn run(args: &BenchArgs) -> i32 {
    match bench(args) {
        Ok(()) => 0,
        Err((code, msg)) => {
            eprintln!("tether bench: error: {msg}");
            code
        }
    }
}

fn bench(args: &BenchArgs) -> Result<(), (i32, String)> {
    let rust =
        std::env::current_exe().map_err(|e| (1, format!("cannot find our own binary: {e}")))?;
    let go = match &args.kcppeer {
        Some(p) => p.clone(),
        None => {
            eprintln!("tether bench: building the kcp-go peer (tests/go/kcppeer)...");
            build_kcppeer()?
        }
    };
    if cfg!(debug_assertions) {
        eprintln!("tether bench: WARNING: this is a debug build of tether; build with --release (scripts/bench-kcp.sh) for meaningful numbers");
    }
    let peers = Peers {
        go,
        rust,
        threads: args.threads,
    };
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let load_before = loadavg();
    let started = Instant::now();
    let mut results: Vec<(&Setting, SettingResult, SettingResult)> = Vec::new();
    for s in &SETTINGS {
        eprintln!(
            "tether bench: [{}] kcp-go ↔ kcp-go: bulk {} bytes each way, {} × 64-byte echo",
            s.name, args.bytes, args.rtt_count
        );
        let g = run_setting(&peers, Impl::KcpGo, s, args).map_err(|e| (1, e))?;
        eprintln!("tether bench: [{}] tether ↔ tether", s.name);
        let t = run_setting(&peers, Impl::Tether, s, args).map_err(|e| (1, e))?;
        results.push((s, t, g));
    }
    let idle_setting = &SETTINGS[1];
    eprintln!(
        "tether bench: [idle] kcp-go: {} sessions held {:?}",
        args.idle_sessions, args.hold
    );
    let ig = run_idle(&peers, Impl::KcpGo, idle_setting, args).map_err(|e| (1, e))?;
    eprintln!(
        "tether bench: [idle] tether: {} sessions held {:?}",
        args.idle_sessions, args.hold
    );
    let it = run_idle(&peers, Impl::Tether, idle_setting, args).map_err(|e| (1, e))?;
    let load_after = loadavg();
    let wall = started.elapsed().as_secs_f64();

    // Verdicts.
    let mut verdicts = Vec::new();
    for (s, t, g) in &results {
        let tp = t.mb_per_s / g.mb_per_s;
        verdicts.push((
            format!("[{}] throughput ≥ 2× kcp-go", s.name),
            format!("{tp:.2}×"),
            tp >= 2.0,
        ));
        let cpu = t.cpu_per_gib / g.cpu_per_gib;
        verdicts.push((
            format!("[{}] CPU/GiB ≤ 0.5× kcp-go", s.name),
            format!("{cpu:.2}×"),
            cpu <= 0.5,
        ));
    }
    verdicts.push((
        "[idle] CPU ≈ 0 (server+client ≤ 1% of one core over the hold)".into(),
        format!("{:.2}% vs kcp-go {:.2}%", it.core_pct(), ig.core_pct()),
        it.core_pct() <= 1.0,
    ));
    let all_pass = verdicts.iter().all(|v| v.2);

    if args.json {
        let mut o = String::from("{");
        o.push_str(&format!(
            "\"bytes\":{},\"rtt_count\":{},\"idle_sessions\":{},\"hold_seconds\":{:.3},\"cpus\":{cpus},\"loadavg_before\":\"{load_before}\",\"loadavg_after\":\"{load_after}\",\"settings\":[",
            args.bytes, args.rtt_count, args.idle_sessions, args.hold.as_secs_f64()
        ));
        for (i, (s, t, g)) in results.iter().enumerate() {
            if i > 0 {
                o.push(',');
            }
            let one = |r: &SettingResult| {
                format!(
                    "{{\"mb_per_s\":{:.3},\"bulk_seconds\":{:.6},\"client_cpu_seconds\":{:.2},\"server_cpu_seconds\":{:.2},\"cpu_seconds_per_gib\":{:.4},\"rtt_p50_us\":{},\"rtt_p99_us\":{},\"rtt_mean_us\":{}}}",
                    r.mb_per_s, r.bulk_seconds, r.client_cpu, r.server_cpu, r.cpu_per_gib, r.rtt_p50_us, r.rtt_p99_us, r.rtt_mean_us
                )
            };
            o.push_str(&format!(
                "{{\"name\":\"{}\",\"crypt\":\"{}\",\"datashard\":{},\"parityshard\":{},\"tether\":{},\"kcp_go\":{}}}",
                s.name, s.crypt, s.ds, s.ps, one(t), one(g)
            ));
        }
        let idle_json = |r: &IdleResult| {
            format!(
                "{{\"setup_seconds\":{:.3},\"hold_seconds\":{:.3},\"server_hold_cpu_seconds\":{:.2},\"client_hold_cpu_seconds\":{:.2},\"core_percent\":{:.3},\"server_rss_kb\":{},\"server_rss_base_kb\":{},\"server_kib_per_session\":{:.2},\"client_max_rss_kb\":{}}}",
                r.setup_seconds, r.hold_seconds, r.server_hold_cpu, r.client_hold_cpu, r.core_pct(), r.server_rss_kb, r.server_rss_base_kb, r.kib_per_session(), r.client_max_rss_kb
            )
        };
        o.push_str(&format!(
            "],\"idle\":{{\"tether\":{},\"kcp_go\":{}}},\"verdicts\":[",
            idle_json(&it),
            idle_json(&ig)
        ));
        for (i, (what, val, pass)) in verdicts.iter().enumerate() {
            if i > 0 {
                o.push(',');
            }
            o.push_str(&format!(
                "{{\"target\":\"{what}\",\"value\":\"{val}\",\"pass\":{pass}}}"
            ));
        }
        o.push_str(&format!("],\"pass\":{all_pass}}}"));
        println!("{o}");
        return Ok(());
    }

    let mut out = String::new();
    out.push_str(&format!(
        "# tether vs kcp-go 5.6.1 on loopback\n\n\
         Both sides of each pair are the same implementation (tether ↔ tether, kcp-go ↔ kcp-go), \
         separate processes, {COMMON}. Bulk: {} bytes each way, full duplex through an echo server; \
         RTT: {} × 64-byte echoes, one at a time. {cpus} CPUs; load average {load_before} before, \
         {load_after} after ({wall:.0} s). Ratio = tether / kcp-go.\n\n\
         \"none + no FEC\" is kcptun's `--crypt none` with `--datashard 0 --parityshard 0`: no \
         cipher and no FEC, but kcp-go's 16-byte nonce + 4-byte CRC32 header is still sent and \
         checked (kcp-go has no crypt-less mode in kcptun's words).\n\n\
         CPU/GiB = (client CPU + echo server CPU during the run) / GiB sent each way; it includes \
         both peers' payload generation and SHA-256.\n",
        args.bytes, args.rtt_count
    ));
    for (s, t, g) in &results {
        out.push_str(&format!(
            "\n## {} (`--crypt {} --datashard {} --parityshard {}`)\n\n{HEADER}",
            s.name, s.crypt, s.ds, s.ps
        ));
        row(
            &mut out,
            "bulk throughput, MB/s each way (higher is better)",
            t.mb_per_s,
            g.mb_per_s,
            1,
        );
        row(&mut out, "bulk seconds", t.bulk_seconds, g.bulk_seconds, 2);
        row(&mut out, "client CPU s", t.client_cpu, g.client_cpu, 2);
        row(&mut out, "server CPU s", t.server_cpu, g.server_cpu, 2);
        row(
            &mut out,
            "CPU s per GiB (lower is better)",
            t.cpu_per_gib,
            g.cpu_per_gib,
            2,
        );
        row(&mut out, "RTT p50 µs (64 B)", t.rtt_p50_us, g.rtt_p50_us, 0);
        row(&mut out, "RTT p99 µs (64 B)", t.rtt_p99_us, g.rtt_p99_us, 0);
        row(
            &mut out,
            "RTT mean µs (64 B)",
            t.rtt_mean_us,
            g.rtt_mean_us,
            0,
        );
    }
    out.push_str(&format!(
        "\n## {} idle sessions held {:.1} s ({}, each client session on its own UDP socket)\n\n{HEADER}",
        args.idle_sessions,
        args.hold.as_secs_f64(),
        idle_setting.name
    ));
    row(
        &mut out,
        "setup s (dial + hello on all)",
        it.setup_seconds,
        ig.setup_seconds,
        2,
    );
    row(
        &mut out,
        "server CPU s during the hold",
        it.server_hold_cpu,
        ig.server_hold_cpu,
        2,
    );
    row(
        &mut out,
        "client CPU s during the hold",
        it.client_hold_cpu,
        ig.client_hold_cpu,
        2,
    );
    row(
        &mut out,
        "idle CPU, % of one core (server+client)",
        it.core_pct(),
        ig.core_pct(),
        2,
    );
    row(
        &mut out,
        "server RSS MiB (VmRSS, end of hold)",
        it.server_rss_kb / 1024.0,
        ig.server_rss_kb / 1024.0,
        1,
    );
    row(
        &mut out,
        "server KiB per idle session (RSS delta / sessions)",
        it.kib_per_session(),
        ig.kib_per_session(),
        1,
    );
    row(
        &mut out,
        "client peak RSS MiB (max_rss_kb)",
        it.client_max_rss_kb / 1024.0,
        ig.client_max_rss_kb / 1024.0,
        1,
    );
    out.push_str("\n## Verdict\n\n| target | measured | result |\n|---|---|---|\n");
    for (what, val, pass) in &verdicts {
        out.push_str(&format!(
            "| {what} | {val} | {} |\n",
            if *pass { "PASS" } else { "FAIL" }
        ));
    }
    out.push_str(&format!(
        "\nOverall: {}\n",
        if all_pass { "PASS" } else { "FAIL (see above)" }
    ));
    print!("{out}");
    let _ = io::stdout().flush();
    Ok(())
}
