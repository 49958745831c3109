//! A bulk KCP transfer between two in-memory peers over a simulated link: what `tether sim`,
//! the property tests and the benches run.
use std::collections::VecDeque;
use std::time::{Duration, Instant};

use rand_core::RngCore;
use sha2::{Digest, Sha256};

use super::{LinkConfig, Pair};
use crate::driver::{Machine, Transmit};
use crate::kcp::{Kcp, KcpConfig, KcpStats};
use crate::rng::seeded;

/// What to transfer, and over what.
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

/// The outcome of [`run_transfer`].
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
    /// Sender's KCP counters.
    pub sender: KcpStats,
    /// Receiver's KCP counters.
    pub receiver: KcpStats,
    /// Write-to-read latency of each chunk, sorted ascending.
    pub latencies: Vec<Duration>,
    /// SHA-256 of the payload sent.
    pub sha256_sent: [u8; 32],
    /// SHA-256 of what the receiver read.
    pub sha256_received: [u8; 32],
    /// SHA-256 over every datagram both peers emitted, in order: equal across runs with the
    /// same inputs (the determinism check).
    pub wire_digest: [u8; 32],
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

/// Wraps a machine and hashes every datagram it emits (the determinism fingerprint).
pub struct Tap<M> {
    /// The wrapped machine.
    pub inner: M,
    hash: Sha256,
}

impl<M> Tap<M> {
    /// Wraps `inner`.
    pub fn new(inner: M) -> Self {
        Tap {
            inner,
            hash: Sha256::new(),
        }
    }
    /// SHA-256 over every datagram emitted so far.
    pub fn digest(&self) -> [u8; 32] {
        self.hash.clone().finalize().into()
    }
}

impl<M: Machine> Machine for Tap<M> {
    type Event = M::Event;
    type InputError = M::InputError;
    fn handle_input(&mut self, now: Instant, data: &[u8]) -> Result<(), M::InputError> {
        self.inner.handle_input(now, data)
    }
    fn poll_transmit(&mut self, now: Instant, buf: &mut Vec<u8>) -> Option<Transmit> {
        let start = buf.len();
        let t = self.inner.poll_transmit(now, buf)?;
        self.hash.update((t.len as u32).to_le_bytes());
        self.hash.update(&buf[start..]);
        Some(t)
    }
    fn has_transmit(&self) -> bool {
        self.inner.has_transmit()
    }
    fn poll_timeout(&self) -> Option<Instant> {
        self.inner.poll_timeout()
    }
    fn handle_timeout(&mut self, now: Instant) {
        self.inner.handle_timeout(now)
    }
    fn poll_event(&mut self) -> Option<M::Event> {
        self.inner.poll_event()
    }
}

/// A reliable byte stream the transfer harness can drive: KCP alone, or a whole session.
pub trait StreamEndpoint: Machine {
    /// Largest useful write.
    fn chunk_size(&self) -> usize;
    /// Whether a write would be accepted now.
    fn can_write(&self) -> bool;
    /// Queues bytes; `false` when nothing was accepted.
    fn write(&mut self, data: &[u8]) -> bool;
    /// Reads stream bytes; `None` when nothing is ready.
    fn read(&mut self, buf: &mut [u8]) -> Option<usize>;
    /// KCP counters.
    fn kcp_stats(&self) -> KcpStats;
}

impl StreamEndpoint for Kcp {
    fn chunk_size(&self) -> usize {
        self.mss()
    }
    fn can_write(&self) -> bool {
        Kcp::can_write(self)
    }
    fn write(&mut self, data: &[u8]) -> bool {
        Kcp::write(self, data).is_ok()
    }
    fn read(&mut self, buf: &mut [u8]) -> Option<usize> {
        self.recv_stream(buf).ok()
    }
    fn kcp_stats(&self) -> KcpStats {
        self.stats()
    }
}

impl StreamEndpoint for crate::session::Session {
    fn chunk_size(&self) -> usize {
        self.kcp().mss()
    }
    fn can_write(&self) -> bool {
        crate::session::Session::can_write(self)
    }
    fn write(&mut self, data: &[u8]) -> bool {
        crate::session::Session::write(self, data).is_ok()
    }
    fn read(&mut self, buf: &mut [u8]) -> Option<usize> {
        crate::session::Session::read(self, buf).ok()
    }
    fn kcp_stats(&self) -> KcpStats {
        self.kcp().stats()
    }
}

impl<M: StreamEndpoint> StreamEndpoint for Tap<M> {
    fn chunk_size(&self) -> usize {
        self.inner.chunk_size()
    }
    fn can_write(&self) -> bool {
        self.inner.can_write()
    }
    fn write(&mut self, data: &[u8]) -> bool {
        self.inner.write(data)
    }
    fn read(&mut self, buf: &mut [u8]) -> Option<usize> {
        self.inner.read(buf)
    }
    fn kcp_stats(&self) -> KcpStats {
        self.inner.kcp_stats()
    }
}

/// Sender-side bookkeeping: the payload stream and when each chunk was written.
struct Source {
    rng: crate::rng::SimRng,
    remaining: u64,
    written: u64,
    hash: Sha256,
    chunk: Vec<u8>,
    /// `(offset just past the chunk, write time)`.
    marks: VecDeque<(u64, Instant)>,
}

impl Source {
    fn fill(&mut self, kcp: &mut impl StreamEndpoint, now: Instant) {
        while self.remaining > 0 && kcp.can_write() {
            let n = (kcp.chunk_size() as u64).min(self.remaining) as usize;
            self.chunk.resize(n, 0);
            self.rng.fill_bytes(&mut self.chunk);
            if !kcp.write(&self.chunk) {
                break;
            }
            self.hash.update(&self.chunk);
            self.remaining -= n as u64;
            self.written += n as u64;
            self.marks.push_back((self.written, now));
        }
    }
}

/// Receiver-side bookkeeping.
struct Sink {
    read: u64,
    hash: Sha256,
    buf: Vec<u8>,
    latencies: Vec<Duration>,
}

impl Sink {
    fn drain(&mut self, kcp: &mut impl StreamEndpoint, src: &mut Source, now: Instant) {
        while let Some(n) = kcp.read(&mut self.buf) {
            self.hash.update(&self.buf[..n]);
            self.read += n as u64;
        }
        while let Some(&(end, at)) = src.marks.front() {
            if end > self.read {
                break;
            }
            self.latencies.push(now.saturating_duration_since(at));
            src.marks.pop_front();
        }
    }
}

/// Runs the transfer in virtual time starting at `start`. Deterministic: the same config
/// gives the same report (and the same `wire_digest`).
pub fn run_transfer(cfg: &TransferConfig, start: Instant) -> TransferReport {
    let a = Kcp::new(1, cfg.kcp, start);
    let b = Kcp::new(1, cfg.kcp, start);
    run_transfer_between(a, b, cfg, start)
}

/// The same transfer between two full kcp-go sessions (crypto + FEC + KCP); `cfg.kcp` is
/// ignored in favour of `session.kcp`. Nonces come from RNGs seeded from `cfg.seed`.
pub fn run_session_transfer(
    cfg: &TransferConfig,
    session: &crate::session::SessionConfig,
    start: Instant,
) -> TransferReport {
    use crate::session::Session;
    // `a` dials (the authenticated mode's handshake has a client and a server side).
    let a = Session::client(1, session, start, Box::new(seeded(cfg.seed ^ 0xa)));
    let b = Session::new(1, session, start, Box::new(seeded(cfg.seed ^ 0xb)));
    run_transfer_between(a, b, cfg, start)
}

/// Runs the transfer from `a` to `b`.
pub fn run_transfer_between<M: StreamEndpoint>(
    a: M,
    b: M,
    cfg: &TransferConfig,
    start: Instant,
) -> TransferReport {
    let a = Tap::new(a);
    let b = Tap::new(b);
    let mut pair = Pair::new(
        a,
        b,
        start,
        cfg.link_ab.clone(),
        cfg.link_ba.clone(),
        cfg.seed,
    );
    let mut src = Source {
        rng: seeded(cfg.seed ^ 0x0070_6179_6c6f_6164),
        remaining: cfg.bytes,
        written: 0,
        hash: Sha256::new(),
        chunk: Vec::new(),
        marks: VecDeque::new(),
    };
    let mut sink = Sink {
        read: 0,
        hash: Sha256::new(),
        buf: vec![0; 64 * 1024],
        latencies: Vec::new(),
    };
    // A limit too far for an Instant (e.g. Duration::MAX) means no limit.
    let limit = start.checked_add(cfg.time_limit);
    let mut done_at = None;
    loop {
        src.fill(&mut pair.a.inner, pair.now);
        sink.drain(&mut pair.b.inner, &mut src, pair.now);
        if sink.read >= cfg.bytes {
            done_at = Some(pair.now);
            break;
        }
        if limit.is_some_and(|l| pair.now > l) || !pair.step() {
            break;
        }
    }
    let end = done_at.unwrap_or(pair.now);
    let mut latencies = sink.latencies;
    latencies.sort_unstable();
    let st = pair.stats;
    TransferReport {
        completed: done_at.is_some(),
        elapsed: end.saturating_duration_since(start),
        delivered: sink.read,
        wire_bytes_ab: st.bytes_a_to_b,
        wire_bytes_ba: st.bytes_b_to_a,
        datagrams_ab: st.datagrams_a_to_b,
        datagrams_ba: st.datagrams_b_to_a,
        sender: pair.a.kcp_stats(),
        receiver: pair.b.kcp_stats(),
        latencies,
        sha256_sent: src.hash.finalize().into(),
        sha256_received: sink.hash.finalize().into(),
        wire_digest: {
            let mut h = Sha256::new();
            h.update(pair.a.digest());
            h.update(pair.b.digest());
            h.finalize().into()
        },
    }
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
}
