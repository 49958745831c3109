//! Bulk transfers between two in-memory peers, driven through the byte-stream interface:
//! what `tether sim`, the property tests and the benches run.
//!
//! [`run_streams`] drives any two machines whose application side is [`Streams`] over any
//! [`Medium`]: the sender opens the plan's streams and writes seeded payload on each, the
//! receiver accepts them and reads, and the report holds per-stream digests, chunk latencies
//! and a digest of every byte put on the wire. A single-stream machine (KCP, a kcp-go
//! session, later goscon) takes part through [`Sole`], as [`StreamId::SOLE`]; a multiplexer
//! (smux) through its own stream ids. [`run_transfer`] and [`run_session_transfer`] are the
//! KCP entry points over a datagram [`Link`](super::Link).
use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use rand_core::RngCore;
use sha2::{Digest, Sha256};

pub use super::peer::{Sole, StreamPeer, Tap};
use super::{LinkConfig, Medium, Pair};
use crate::driver::{StreamError, StreamId, Streams};
use crate::kcp::{Kcp, KcpConfig, KcpStats};
use crate::rng::seeded;
use crate::session::Session;

/// Mixed into the plan's seed for the payload, so payload and media draw different streams.
const PAYLOAD_SALT: u64 = 0x0070_6179_6c6f_6164;

/// A KCP transfer: what to send, and over what datagram links.
#[derive(Debug, Clone)]
pub struct TransferConfig {
    /// Payload bytes sent from `a` to `b`.
    pub bytes: u64,
    /// KCP settings of both peers.
    pub kcp: KcpConfig,
    /// Link from sender to receiver.
    pub link_ab: LinkConfig,
    /// Link from receiver back to sender (ACKs).
    pub link_ba: LinkConfig,
    /// Seed of the links and of the payload.
    pub seed: u64,
    /// Give up after this much virtual time.
    pub time_limit: Duration,
}

impl TransferConfig {
    /// `bytes` over the same link both ways, with an hour of virtual time to finish.
    pub fn symmetric(bytes: u64, kcp: KcpConfig, link: LinkConfig, seed: u64) -> Self {
        TransferConfig {
            bytes,
            kcp,
            link_ab: link.clone(),
            link_ba: link,
            seed,
            time_limit: Duration::from_secs(3600),
        }
    }
}

/// The outcome of a transfer ([`run_streams`], [`run_transfer`]).
#[derive(Debug, Clone)]
pub struct TransferReport {
    /// Whether every byte arrived within the time limit.
    pub completed: bool,
    /// Virtual time until the last byte was read by the receiver.
    pub elapsed: Duration,
    /// Payload bytes delivered.
    pub delivered: u64,
    /// Bytes the sender put on the wire (datagrams before loss).
    pub wire_bytes_ab: u64,
    /// Bytes the receiver put on the wire.
    pub wire_bytes_ba: u64,
    /// Datagrams sent by the sender.
    pub datagrams_ab: u64,
    /// Datagrams sent by the receiver.
    pub datagrams_ba: u64,
    /// Sender's KCP counters (zero when the sender has none: [`StreamPeer::kcp_stats`]).
    pub sender: KcpStats,
    /// Receiver's KCP counters (zero when it has none).
    pub receiver: KcpStats,
    /// Write-to-read latency of each chunk, sorted ascending.
    pub latencies: Vec<Duration>,
    /// SHA-256 of the payload sent: the stream's own digest when there is one stream, else
    /// the SHA-256 of the streams' digests in id order.
    pub sha256_sent: [u8; 32],
    /// SHA-256 of what the receiver read, combined like `sha256_sent`.
    pub sha256_received: [u8; 32],
    /// SHA-256 over every datagram both peers emitted, in order: equal across runs with the
    /// same inputs (the determinism check).
    pub wire_digest: [u8; 32],
    /// Each stream's tally, in id order.
    pub streams: Vec<StreamTally>,
    /// `(virtual time since the start, payload bytes read so far on all streams)` at every
    /// step where the receiver read something; empty unless asked for
    /// ([`run_transfer_recorded`]). Recording changes nothing on the wire.
    pub timeline: Vec<(Duration, u64)>,
}

/// One stream of a transfer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamTally {
    /// The stream, as the sender numbered it.
    pub id: StreamId,
    /// Payload bytes the receiver read on it.
    pub delivered: u64,
    /// SHA-256 of the payload written on it.
    pub sha256_sent: [u8; 32],
    /// SHA-256 of what the receiver read on it.
    pub sha256_received: [u8; 32],
}

impl TransferReport {
    /// Payload bits per second of virtual time.
    pub fn goodput_bps(&self) -> f64 {
        let s = self.elapsed.as_secs_f64();
        if s > 0.0 {
            self.delivered as f64 * 8.0 / s
        } else {
            0.0
        }
    }
    /// Wire bytes in both directions per payload byte, minus one (0.05 = 5 % overhead).
    pub fn overhead(&self) -> f64 {
        if self.delivered == 0 {
            return 0.0;
        }
        (self.wire_bytes_ab + self.wire_bytes_ba) as f64 / self.delivered as f64 - 1.0
    }
    /// The `q`-quantile (0..=1) of chunk latency.
    pub fn latency_quantile(&self, q: f64) -> Duration {
        if self.latencies.is_empty() {
            return Duration::ZERO;
        }
        let idx = ((self.latencies.len() - 1) as f64 * q).round() as usize;
        self.latencies[idx.min(self.latencies.len() - 1)]
    }
}

/// What [`run_streams`] sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamPlan {
    /// Streams the sender opens (1 for a single-stream machine).
    pub streams: u32,
    /// Payload bytes written on each stream.
    pub bytes: u64,
    /// Largest single write (KCP: its MSS, one segment per write).
    pub chunk: usize,
    /// Seed of the payload (the media draw from the pair's own seed).
    pub seed: u64,
    /// Give up after this much virtual time.
    pub time_limit: Duration,
}

/// Sender-side bookkeeping of one stream: its payload and when each chunk was written.
struct Source {
    id: StreamId,
    rng: crate::rng::SimRng,
    remaining: u64,
    written: u64,
    hash: Sha256,
    /// The chunk being written, and how much of it the stream took.
    chunk: Vec<u8>,
    taken: usize,
    /// `(offset just past the chunk, write time)`.
    marks: VecDeque<(u64, Instant)>,
}

/// Why a write or read stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flow {
    /// Bytes moved: try again.
    Moved,
    /// Nothing to do now (blocked, or everything written).
    Wait,
    /// The stream failed: the transfer cannot complete.
    Failed,
}

impl Source {
    fn new(id: StreamId, index: u32, plan: &StreamPlan) -> Self {
        // Stream 0 draws exactly what the KCP harness always drew (its wire digests hold).
        let salt = u64::from(index).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        Source {
            id,
            rng: seeded(plan.seed ^ PAYLOAD_SALT ^ salt),
            remaining: plan.bytes,
            written: 0,
            hash: Sha256::new(),
            chunk: Vec::new(),
            taken: 0,
            marks: VecDeque::new(),
        }
    }

    /// Writes (the rest of) one chunk, drawing the next one when the last was taken whole.
    fn write_chunk(&mut self, peer: &mut impl Streams, chunk: usize, now: Instant) -> Flow {
        if self.taken == self.chunk.len() {
            if self.remaining == 0 {
                return Flow::Wait;
            }
            let n = (chunk.max(1) as u64).min(self.remaining) as usize;
            self.chunk.resize(n, 0);
            self.rng.fill_bytes(&mut self.chunk);
            self.hash.update(&self.chunk);
            self.remaining -= n as u64;
            self.taken = 0;
        }
        let rest = self.chunk.get(self.taken..).unwrap_or_default();
        match peer.write(self.id, rest) {
            Ok(0) | Err(StreamError::Blocked) => Flow::Wait,
            Ok(n) => {
                self.taken += n;
                self.written += n as u64;
                if self.taken == self.chunk.len() {
                    self.marks.push_back((self.written, now));
                }
                Flow::Moved
            }
            Err(_) => Flow::Failed,
        }
    }
}

/// Receiver-side bookkeeping of one stream.
struct Sink {
    read: u64,
    hash: Sha256,
}

impl Sink {
    /// Reads everything the stream has; `false` when the stream failed.
    fn drain(&mut self, peer: &mut impl Streams, id: StreamId, buf: &mut [u8]) -> bool {
        loop {
            match peer.read(id, buf) {
                Ok(0) | Err(StreamError::Blocked | StreamError::Finished) => return true,
                Ok(n) => {
                    self.hash.update(buf.get(..n).unwrap_or_default());
                    self.read += n as u64;
                }
                Err(_) => return false,
            }
        }
    }
}

/// Both ends of a running transfer.
struct Run {
    sources: Vec<Source>,
    /// Index of each stream's source (a multiplexer may carry thousands).
    by_id: BTreeMap<StreamId, usize>,
    sinks: BTreeMap<StreamId, Sink>,
    buf: Vec<u8>,
    latencies: Vec<Duration>,
    failed: bool,
    /// `Some` when the timeline is recorded: the run's start and the samples so far.
    timeline: Option<(Instant, Vec<(Duration, u64)>)>,
}

impl Run {
    /// Writes on every stream, one chunk per stream per round, until all are blocked or done.
    fn fill(&mut self, peer: &mut impl Streams, chunk: usize, now: Instant) {
        loop {
            let mut moved = false;
            for src in &mut self.sources {
                match src.write_chunk(peer, chunk, now) {
                    Flow::Moved => moved = true,
                    Flow::Wait => {}
                    Flow::Failed => self.failed = true,
                }
            }
            if !moved || self.failed {
                return;
            }
        }
    }

    /// Accepts new streams, reads every stream, and times the chunks now fully read.
    fn drain(&mut self, peer: &mut impl Streams, now: Instant) {
        while let Some(id) = peer.accept_stream() {
            self.sinks.entry(id).or_insert_with(|| Sink {
                read: 0,
                hash: Sha256::new(),
            });
        }
        for (&id, sink) in &mut self.sinks {
            self.failed |= !sink.drain(peer, id, &mut self.buf);
            let Some(src) = self.by_id.get(&id).and_then(|&i| self.sources.get_mut(i)) else {
                continue;
            };
            while let Some(&(end, at)) = src.marks.front() {
                if end > sink.read {
                    break;
                }
                self.latencies.push(now.saturating_duration_since(at));
                src.marks.pop_front();
            }
        }
        if let Some((start, samples)) = &mut self.timeline {
            let total: u64 = self.sinks.values().map(|s| s.read).sum();
            if samples.last().map_or(total > 0, |&(_, last)| total > last) {
                samples.push((now.saturating_duration_since(*start), total));
            }
        }
    }

    /// Bytes the receiver read on `id`.
    fn read(&self, id: StreamId) -> u64 {
        self.sinks.get(&id).map_or(0, |s| s.read)
    }

    fn done(&self, bytes: u64) -> bool {
        self.sources.iter().all(|s| self.read(s.id) >= bytes)
    }
}

/// Runs `plan` on `pair` from its current instant: `pair.a` opens the streams and writes,
/// `pair.b` accepts and reads. Deterministic: the same machines, media and plan give the
/// same report (and the same `wire_digest`).
///
/// # Panics
/// When `pair.a` refuses to open a stream, or hands out one id twice (a single-stream
/// machine with `plan.streams > 1`): the plan does not fit the machine.
pub fn run_streams<A, B, M>(pair: &mut Pair<Tap<A>, Tap<B>, M>, plan: &StreamPlan) -> TransferReport
where
    A: StreamPeer,
    B: StreamPeer,
    M: Medium,
{
    run_streams_with(pair, plan, false)
}

/// [`run_streams`], recording [`TransferReport::timeline`] when `record`.
fn run_streams_with<A, B, M>(
    pair: &mut Pair<Tap<A>, Tap<B>, M>,
    plan: &StreamPlan,
    record: bool,
) -> TransferReport
where
    A: StreamPeer,
    B: StreamPeer,
    M: Medium,
{
    let start = pair.now;
    let mut run = Run {
        sources: Vec::new(),
        by_id: BTreeMap::new(),
        sinks: BTreeMap::new(),
        buf: vec![0; 64 * 1024],
        latencies: Vec::new(),
        failed: false,
        timeline: record.then(|| (start, Vec::new())),
    };
    for index in 0..plan.streams {
        let id = pair
            .a
            .open_stream()
            .unwrap_or_else(|e| panic!("run_streams: opening stream {index} failed: {e}"));
        assert!(
            !run.by_id.contains_key(&id),
            "run_streams: {id:?} opened twice; a single-stream machine carries one stream"
        );
        run.by_id.insert(id, run.sources.len());
        run.sources.push(Source::new(id, index, plan));
    }
    // A limit too far for an Instant (e.g. Duration::MAX) means no limit.
    let limit = start.checked_add(plan.time_limit);
    let mut done_at = None;
    loop {
        run.fill(&mut pair.a, plan.chunk, pair.now);
        run.drain(&mut pair.b, pair.now);
        if run.done(plan.bytes) {
            done_at = Some(pair.now);
            break;
        }
        if run.failed || limit.is_some_and(|l| pair.now > l) || !pair.step() {
            break;
        }
    }
    report(pair, run, start, done_at)
}

/// The report of a finished (or abandoned) run.
fn report<A, B, M>(
    pair: &Pair<Tap<A>, Tap<B>, M>,
    mut run: Run,
    start: Instant,
    done_at: Option<Instant>,
) -> TransferReport
where
    A: StreamPeer,
    B: StreamPeer,
    M: Medium,
{
    let end = done_at.unwrap_or(pair.now);
    run.latencies.sort_unstable();
    let mut streams: Vec<StreamTally> = std::mem::take(&mut run.sources)
        .into_iter()
        .map(|src| {
            let sink = run.sinks.remove(&src.id);
            StreamTally {
                id: src.id,
                delivered: sink.as_ref().map_or(0, |s| s.read),
                sha256_sent: src.hash.finalize().into(),
                sha256_received: sink.map_or(Sha256::new(), |s| s.hash).finalize().into(),
            }
        })
        .collect();
    streams.sort_by_key(|t| t.id);
    let st = pair.stats;
    TransferReport {
        completed: done_at.is_some(),
        elapsed: end.saturating_duration_since(start),
        delivered: streams.iter().map(|t| t.delivered).sum(),
        wire_bytes_ab: st.bytes_a_to_b,
        wire_bytes_ba: st.bytes_b_to_a,
        datagrams_ab: st.datagrams_a_to_b,
        datagrams_ba: st.datagrams_b_to_a,
        sender: pair.a.kcp_stats().unwrap_or_default(),
        receiver: pair.b.kcp_stats().unwrap_or_default(),
        latencies: std::mem::take(&mut run.latencies),
        timeline: run.timeline.take().map(|(_, t)| t).unwrap_or_default(),
        sha256_sent: combined(streams.iter().map(|t| t.sha256_sent)),
        sha256_received: combined(streams.iter().map(|t| t.sha256_received)),
        wire_digest: {
            let mut h = Sha256::new();
            h.update(pair.a.digest());
            h.update(pair.b.digest());
            h.finalize().into()
        },
        streams,
    }
}

/// One stream's digest as is; several streams' digests hashed together in order.
fn combined(digests: impl ExactSizeIterator<Item = [u8; 32]>) -> [u8; 32] {
    if digests.len() == 1 {
        return digests.last().unwrap_or_default();
    }
    let mut h = Sha256::new();
    for d in digests {
        h.update(d);
    }
    h.finalize().into()
}

/// Runs the transfer in virtual time starting at `start`. Deterministic: the same config
/// gives the same report (and the same `wire_digest`).
pub fn run_transfer(cfg: &TransferConfig, start: Instant) -> TransferReport {
    kcp_transfer(cfg, start, false)
}

/// [`run_transfer`], also recording [`TransferReport::timeline`] (what `tether sim --plot`
/// draws); the same wire, digests and counters.
pub fn run_transfer_recorded(cfg: &TransferConfig, start: Instant) -> TransferReport {
    kcp_transfer(cfg, start, true)
}

fn kcp_transfer(cfg: &TransferConfig, start: Instant, record: bool) -> TransferReport {
    let a = Kcp::new(1, cfg.kcp, start);
    let b = Kcp::new(1, cfg.kcp, start);
    let mss = a.mss();
    run_sole(a, b, mss, cfg, start, record)
}

/// The same transfer between two full kcp-go sessions (crypto + FEC + KCP); `cfg.kcp` is
/// ignored in favour of `session.kcp`. Nonces come from RNGs seeded from `cfg.seed`.
pub fn run_session_transfer(
    cfg: &TransferConfig,
    session: &crate::session::SessionConfig,
    start: Instant,
) -> TransferReport {
    // `a` dials (the authenticated mode's handshake has a client and a server side).
    let a = Session::client(1, session, start, Box::new(seeded(cfg.seed ^ 0xa)));
    let b = Session::new(1, session, start, Box::new(seeded(cfg.seed ^ 0xb)));
    let mss = a.kcp().mss();
    run_sole(a, b, mss, cfg, start, false)
}

/// One stream from `a` to `b` over `cfg`'s links, written `chunk` bytes at a time.
fn run_sole<M>(
    a: M,
    b: M,
    chunk: usize,
    cfg: &TransferConfig,
    start: Instant,
    record: bool,
) -> TransferReport
where
    Sole<M>: StreamPeer,
{
    let mut pair = Pair::new(
        Tap::new(Sole::new(a)),
        Tap::new(Sole::new(b)),
        start,
        cfg.link_ab.clone(),
        cfg.link_ba.clone(),
        cfg.seed,
    );
    let plan = StreamPlan {
        streams: 1,
        bytes: cfg.bytes,
        chunk,
        seed: cfg.seed,
        time_limit: cfg.time_limit,
    };
    run_streams_with(&mut pair, &plan, record)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::test_start;

    #[test]
    fn duration_max_time_limit_means_no_limit() {
        let cfg = TransferConfig {
            bytes: 10_000,
            kcp: KcpConfig::fast(),
            link_ab: LinkConfig::perfect(),
            link_ba: LinkConfig::perfect(),
            seed: 1,
            time_limit: Duration::MAX,
        };
        assert!(run_transfer(&cfg, test_start()).completed);
    }

    #[test]
    fn the_recorded_timeline_changes_nothing_else() {
        let cfg = TransferConfig::symmetric(
            200_000,
            KcpConfig::fast(),
            LinkConfig::perfect()
                .with_loss(0.05)
                .with_delay(Duration::from_millis(20)),
            3,
        );
        let plain = run_transfer(&cfg, test_start());
        let recorded = run_transfer_recorded(&cfg, test_start());
        assert!(plain.timeline.is_empty());
        assert_eq!(plain.wire_digest, recorded.wire_digest);
        assert_eq!(plain.latencies, recorded.latencies);
        let t = &recorded.timeline;
        assert_eq!(t.last().map(|p| p.1), Some(200_000));
        assert!(t.windows(2).all(|w| w[0].0 <= w[1].0 && w[0].1 < w[1].1));
        assert!(t.last().map(|p| p.0) <= Some(recorded.elapsed));
    }
}
