//! What both legs of `tether demo` run (through the tunnel, and over plain TCP): a target
//! that takes a bulk upload and answers small requests, the bulk sender, and the
//! small-request probe. Every connection starts with one byte naming its kind, so one target
//! address serves both (the tunnel server has one `-t`).
//!
//! - Bulk: the sender writes `bytes` of the bench peers' seeded xorshift stream ([`Pattern`],
//!   incompressible, so snappy cannot shrink it) and half-closes; the target hashes what it
//!   reads and answers with the SHA-256, which the sender compares with its own. When the time limit comes first, the
//!   target's byte count and hash of the prefix so far are taken instead, and the prefix is
//!   checked against the regenerated payload.
//! - Probe: [`PROBE_CONNS`] connections, each doing request/response rounds of
//!   [`PROBE_SIZE`] bytes one after the other, [`PROBES`] in all, on an otherwise idle path
//!   (before the bulk upload): the latency a small interactive request sees on this link,
//!   loss included. Connection set-up is not timed.
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

use crate::bench::Pattern;

/// Small requests timed by the probe.
pub const PROBES: usize = 200;
/// Bytes of one request and of its response.
pub const PROBE_SIZE: usize = 64;
/// Probe connections running side by side (each times its requests one after the other).
pub const PROBE_CONNS: usize = 4;
/// How often the throughput is sampled.
pub const SAMPLE_EVERY: Duration = Duration::from_millis(250);

const KIND_BULK: u8 = b'B';
const KIND_PROBE: u8 = b'P';
const CHUNK: usize = 64 * 1024;

/// What one leg measured.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct LegResult {
    /// Payload bytes the target read.
    pub bytes: u64,
    /// Seconds from the bulk connection's start to the target's last byte.
    pub secs: f64,
    /// Whether every byte was sent before the time limit.
    pub completed: bool,
    /// Whether what the target read is byte-exact (the whole payload, or the prefix that got
    /// through before the time limit).
    pub verified: bool,
    /// `(seconds since the bulk start, bytes read by the target)`, every [`SAMPLE_EVERY`].
    pub samples: Vec<(f64, u64)>,
    /// Round-trip time of each small request, in seconds, sorted.
    pub latencies: Vec<f64>,
}

impl LegResult {
    /// Payload megabits per second.
    pub fn mbit_per_s(&self) -> f64 {
        if self.secs > 0.0 {
            self.bytes as f64 * 8.0 / self.secs / 1e6
        } else {
            0.0
        }
    }

    /// The `q`-quantile (0..=1) of the small-request latency, in seconds.
    pub fn latency(&self, q: f64) -> Option<f64> {
        let n = self.latencies.len();
        let i = ((n.checked_sub(1)?) as f64 * q).round() as usize;
        self.latencies.get(i.min(n - 1)).copied()
    }
}

/// The payload: `seed`'s [`Pattern`] stream.
pub struct Payload(Pattern);

impl Payload {
    /// The payload of `seed`, from its first byte.
    pub fn new(seed: u64) -> Self {
        Payload(Pattern::new(seed ^ 0x6465_6d6f))
    }

    /// The next `buf.len()` bytes.
    pub fn fill(&mut self, buf: &mut [u8]) {
        self.0.fill(buf);
    }

    /// SHA-256 of the first `n` bytes of `seed`'s payload.
    pub fn digest_of_prefix(seed: u64, n: u64) -> [u8; 32] {
        let mut p = Payload::new(seed);
        let mut h = Sha256::new();
        let mut buf = vec![0; CHUNK];
        let mut left = n;
        while left > 0 {
            let k = (CHUNK as u64).min(left) as usize;
            p.fill(&mut buf[..k]);
            h.update(&buf[..k]);
            left -= k as u64;
        }
        h.finalize().into()
    }
}

/// The target's view of the bulk upload, shared with the sampler and the progress bar.
#[derive(Debug, Default)]
pub struct Received {
    /// Bytes read so far.
    pub bytes: AtomicU64,
    /// The hash of what was read so far (cloned to take a prefix digest).
    hash: Mutex<Option<Sha256>>,
}

impl Received {
    /// `(bytes, SHA-256)` of what the target has read so far.
    pub fn snapshot(&self) -> (u64, [u8; 32]) {
        let hash = self.hash.lock().unwrap_or_else(|e| e.into_inner());
        let n = self.bytes.load(Ordering::Acquire);
        let digest = hash.clone().unwrap_or_default().finalize().into();
        (n, digest)
    }
}

/// Serves the target on `listener` forever (run it as a task and abort it).
pub async fn target(listener: TcpListener, received: Arc<Received>) {
    while let Ok((tcp, _)) = listener.accept().await {
        let _ = tcp.set_nodelay(true);
        tokio::spawn(serve(tcp, Arc::clone(&received)));
    }
}

async fn serve(mut tcp: TcpStream, received: Arc<Received>) -> io::Result<()> {
    match tcp.read_u8().await? {
        KIND_BULK => {
            let mut buf = vec![0; CHUNK];
            *received.hash.lock().unwrap_or_else(|e| e.into_inner()) = Some(Sha256::new());
            loop {
                let n = tcp.read(&mut buf).await?;
                if n == 0 {
                    break;
                }
                let mut hash = received.hash.lock().unwrap_or_else(|e| e.into_inner());
                if let Some(h) = hash.as_mut() {
                    h.update(&buf[..n]);
                }
                received.bytes.fetch_add(n as u64, Ordering::Release);
            }
            let (_, digest) = received.snapshot();
            tcp.write_all(&digest).await?;
            tcp.shutdown().await
        }
        KIND_PROBE => {
            let mut buf = [0u8; PROBE_SIZE];
            loop {
                match tcp.read_exact(&mut buf).await {
                    Ok(_) => tcp.write_all(&buf).await?,
                    Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(()),
                    Err(e) => return Err(e),
                }
            }
        }
        other => Err(io::Error::other(format!("unknown connection kind {other}"))),
    }
}

/// Times [`PROBES`] small requests through `addr` (see the module doc); sorted seconds.
pub async fn probe(addr: SocketAddr) -> io::Result<Vec<f64>> {
    let mut tasks = tokio::task::JoinSet::new();
    // PROBES is a multiple of PROBE_CONNS (checked below, at compile time).
    const _: () = assert!(PROBES.is_multiple_of(PROBE_CONNS));
    for _ in 0..PROBE_CONNS {
        tasks.spawn(probe_conn(addr, PROBES / PROBE_CONNS));
    }
    let mut all = Vec::with_capacity(PROBES);
    while let Some(r) = tasks.join_next().await {
        all.extend(r.map_err(io::Error::other)??);
    }
    all.sort_by(f64::total_cmp);
    Ok(all)
}

async fn probe_conn(addr: SocketAddr, rounds: usize) -> io::Result<Vec<f64>> {
    let mut tcp = TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    tcp.write_all(&[KIND_PROBE]).await?;
    let mut times = Vec::with_capacity(rounds);
    let mut buf = [0u8; PROBE_SIZE];
    for i in 0..rounds {
        buf.fill(i as u8);
        let start = Instant::now();
        tcp.write_all(&buf).await?;
        tcp.read_exact(&mut buf).await?;
        times.push(start.elapsed().as_secs_f64());
    }
    Ok(times)
}

/// How the bulk connection is set up: called on it once connected, before any payload.
pub type Setup<'a> = &'a (dyn Fn(&TcpStream) -> io::Result<()> + Sync);

/// Uploads `bytes` of `seed`'s payload through `addr` to the target sharing `received`,
/// giving up at `limit` (if any). Fills everything of [`LegResult`] but the latencies.
pub async fn bulk(
    addr: SocketAddr,
    bytes: u64,
    seed: u64,
    limit: Option<Duration>,
    received: Arc<Received>,
    setup: Setup<'_>,
) -> io::Result<LegResult> {
    let start = Instant::now();
    let (stop_sampling, stopped) = oneshot::channel();
    let samples = tokio::spawn(sample(Arc::clone(&received), start, stopped));
    let upload = upload(addr, bytes, seed, setup);
    let outcome = match limit {
        Some(l) => tokio::time::timeout(l, upload).await.ok(),
        None => Some(upload.await),
    };
    let secs = start.elapsed().as_secs_f64();
    let _ = stop_sampling.send(());
    let mut samples = samples.await.unwrap_or_default();
    let (n, digest) = received.snapshot();
    samples.push((secs, n));
    let mut result = LegResult {
        bytes: n,
        secs,
        samples,
        ..LegResult::default()
    };
    match outcome {
        Some(Ok(verified)) => {
            result.completed = true;
            result.verified = verified && n == bytes;
        }
        Some(Err(e)) => return Err(e),
        // Stopped by the time limit: check the prefix that got through.
        None => result.verified = digest == Payload::digest_of_prefix(seed, n),
    }
    Ok(result)
}

/// Sends the payload; whether the target's digest matches the sender's.
async fn upload(addr: SocketAddr, bytes: u64, seed: u64, setup: Setup<'_>) -> io::Result<bool> {
    let mut tcp = TcpStream::connect(addr).await?;
    setup(&tcp)?;
    tcp.write_all(&[KIND_BULK]).await?;
    let mut payload = Payload::new(seed);
    let mut hash = Sha256::new();
    let mut buf = vec![0; CHUNK];
    let mut left = bytes;
    while left > 0 {
        let k = (CHUNK as u64).min(left) as usize;
        payload.fill(&mut buf[..k]);
        hash.update(&buf[..k]);
        tcp.write_all(&buf[..k]).await?;
        left -= k as u64;
    }
    tcp.shutdown().await?;
    let mut theirs = [0u8; 32];
    tcp.read_exact(&mut theirs).await?;
    Ok(theirs == <[u8; 32]>::from(hash.finalize()))
}

/// Samples the target's byte count every [`SAMPLE_EVERY`] until `stop`.
async fn sample(
    received: Arc<Received>,
    start: Instant,
    mut stop: oneshot::Receiver<()>,
) -> Vec<(f64, u64)> {
    let mut out = vec![(0.0, 0)];
    let mut tick = tokio::time::interval(SAMPLE_EVERY);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = &mut stop => return out,
        }
        out.push((
            start.elapsed().as_secs_f64(),
            received.bytes.load(Ordering::Acquire),
        ));
    }
}
