//! One direction of a byte-stream connection (TCP as the application sees it), as a sans-IO
//! element beside the datagram [`Link`](super::Link).
//!
//! A [`Pipe`] never loses, duplicates or reorders a byte while the connection is up, but it
//! owes the reader nothing about boundaries: what comes out is the written byte stream cut
//! into seeded random chunks that split one write or join several. On the way:
//!
//! 1. the buffer ([`PipeConfig::buffer_bytes`]) bounds the bytes written but not yet
//!    delivered, as a TCP socket's send buffer holds every byte until the peer has it; a
//!    write that does not fit is taken in part or not at all (back-pressure);
//! 2. the bottleneck ([`PipeConfig::rate_bps`]) clocks the bytes out segment by segment
//!    ([`SEGMENT_BYTES`]), so a large write arrives progressively;
//! 3. each segment arrives [`PipeConfig::delay`] after it left the bottleneck;
//! 4. arrived bytes are handed out in chunks of 1 to [`PipeConfig::max_chunk`] bytes.
//!
//! The connection can break ([`Connection::disconnect`]): every byte in transit is lost and
//! writes go nowhere until [`Connection::reconnect`] brings a fresh connection up.
use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::rng::{seeded, RngCore, SimRng};

use super::link::{later, serialisation_time};
use super::medium::{Connection, Medium};

/// Default of [`PipeConfig::buffer_bytes`]: a typical TCP send buffer.
pub const DEFAULT_PIPE_BUFFER: usize = 256 * 1024;

/// Granularity of the bottleneck: bytes leave it (and arrive) one segment at a time, the size
/// of a TCP segment on Ethernet with timestamps.
pub const SEGMENT_BYTES: usize = 1448;

/// Behaviour of one pipe direction. Fields are public; the `with_*` helpers chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PipeConfig {
    /// One-way delay of every byte after it left the bottleneck.
    pub delay: Duration,
    /// Bottleneck rate in bits per second; 0 means unlimited.
    pub rate_bps: u64,
    /// Bytes written but not yet delivered that the pipe holds at most; a write beyond it is
    /// taken in part or refused (at least 1).
    pub buffer_bytes: usize,
    /// Largest chunk handed to the reader; each chunk's length is drawn from `1..=max_chunk`.
    /// `usize::MAX` hands out everything that has arrived as one chunk (no re-chunking).
    pub max_chunk: usize,
}

impl Default for PipeConfig {
    fn default() -> Self {
        Self::perfect()
    }
}

impl PipeConfig {
    /// No delay, no rate limit, a [`DEFAULT_PIPE_BUFFER`] buffer, no re-chunking.
    pub fn perfect() -> Self {
        Self {
            delay: Duration::ZERO,
            rate_bps: 0,
            buffer_bytes: DEFAULT_PIPE_BUFFER,
            max_chunk: usize::MAX,
        }
    }

    /// One-way delay.
    pub fn with_delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    /// Bottleneck rate in bits per second (0: unlimited).
    pub fn with_rate(mut self, rate_bps: u64) -> Self {
        self.rate_bps = rate_bps;
        self
    }

    /// Bound on bytes written but not yet delivered.
    pub fn with_buffer(mut self, bytes: usize) -> Self {
        self.buffer_bytes = bytes;
        self
    }

    /// Chunks of `1..=max` bytes for the reader.
    pub fn with_max_chunk(mut self, max: usize) -> Self {
        self.max_chunk = max;
        self
    }
}

/// Counters of one pipe direction.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PipeStats {
    /// Bytes taken from the writer while connected.
    pub written: u64,
    /// Bytes handed to the reader.
    pub delivered: u64,
    /// Chunks handed to the reader.
    pub chunks: u64,
    /// Writes taken only in part or not at all because the buffer was full.
    pub refused: u64,
    /// Bytes in transit when the connection broke.
    pub lost: u64,
    /// Bytes written while the connection was down (they go nowhere).
    pub discarded: u64,
    /// Times the connection broke.
    pub disconnects: u64,
    /// Times a new connection came up.
    pub reconnects: u64,
}

/// One direction of a byte-stream connection, as a sans-IO element (see the module docs).
/// Every random choice (chunk lengths) comes from the seed given to [`Pipe::new`].
#[derive(Debug)]
pub struct Pipe {
    config: PipeConfig,
    rng: SimRng,
    stats: PipeStats,
    /// Bytes taken and not yet delivered, in order (at most `buffer_bytes`).
    bytes: VecDeque<u8>,
    /// `(stream offset just past a segment, arrival time)` of segments not yet arrived, in
    /// arrival order.
    marks: VecDeque<(u64, Instant)>,
    /// Stream offset through which bytes have arrived.
    arrived: u64,
    /// When the arrived bytes not yet handed out arrived.
    arrived_at: Option<Instant>,
    /// Stream offset through which bytes were handed out.
    delivered: u64,
    /// When the bottleneck finishes clocking out everything taken so far.
    busy_until: Option<Instant>,
    connected: bool,
}

impl Pipe {
    /// A connected pipe with `config` whose random choices derive from `seed`.
    pub fn new(config: PipeConfig, seed: u64) -> Self {
        Self {
            config,
            rng: seeded(seed),
            stats: PipeStats::default(),
            bytes: VecDeque::new(),
            marks: VecDeque::new(),
            arrived: 0,
            arrived_at: None,
            delivered: 0,
            busy_until: None,
            connected: true,
        }
    }

    /// The current configuration.
    pub fn config(&self) -> &PipeConfig {
        &self.config
    }

    /// Replaces the configuration. Bytes already in transit keep their arrival times, and
    /// arrival order is kept even if the delay shrinks.
    pub fn set_config(&mut self, config: PipeConfig) {
        self.config = config;
    }

    /// The counters so far.
    pub fn stats(&self) -> PipeStats {
        self.stats
    }

    /// Bytes written and not yet delivered.
    pub fn in_flight(&self) -> usize {
        self.bytes.len()
    }

    /// How many bytes a write would be taken now.
    pub fn room(&self) -> usize {
        self.config
            .buffer_bytes
            .max(1)
            .saturating_sub(self.bytes.len())
    }

    /// Clocks `len` bytes through the bottleneck; returns when they have left it.
    fn serialise(&mut self, now: Instant, len: usize) -> Instant {
        if self.config.rate_bps == 0 {
            return now;
        }
        let start = self.busy_until.map_or(now, |b| b.max(now));
        let done = later(start, serialisation_time(len, self.config.rate_bps));
        self.busy_until = Some(done);
        done
    }

    /// Records that the stream up to `end` arrives at `at` (never before earlier bytes).
    fn push_mark(&mut self, end: u64, at: Instant) {
        let at = self.marks.back().map_or(at, |&(_, last)| last.max(at));
        match self.marks.back_mut() {
            // Segments arriving together are one mark: marks stay few without a rate limit.
            Some((last_end, last_at)) if *last_at == at => *last_end = end,
            _ => self.marks.push_back((end, at)),
        }
    }

    /// Moves every segment that has arrived by `now` into the deliverable range.
    fn arrive(&mut self, now: Instant) {
        while let Some(&(end, at)) = self.marks.front() {
            if at > now {
                break;
            }
            self.marks.pop_front();
            self.arrived = end;
            self.arrived_at = Some(at);
        }
    }

    /// The length of the next chunk handed out, when `avail` bytes have arrived.
    fn chunk_len(&mut self, avail: usize) -> usize {
        if self.config.max_chunk == usize::MAX {
            return avail;
        }
        let max = self.config.max_chunk.max(1) as u64;
        let drawn = 1 + self.rng.next_u64() % max;
        usize::try_from(drawn).map_or(avail, |n| n.min(avail))
    }
}

impl Medium for Pipe {
    type Stats = PipeStats;

    fn send(&mut self, now: Instant, data: &[u8]) -> usize {
        if !self.connected {
            // A write on a broken connection goes nowhere; the machine was told.
            self.stats.discarded += data.len() as u64;
            return data.len();
        }
        let n = data.len().min(self.room());
        if n < data.len() {
            self.stats.refused += 1;
        }
        let Some(taken) = data.get(..n).filter(|t| !t.is_empty()) else {
            return 0;
        };
        let mut end = self.delivered + self.bytes.len() as u64;
        self.bytes.extend(taken);
        for segment in taken.chunks(SEGMENT_BYTES) {
            let left = self.serialise(now, segment.len());
            end += segment.len() as u64;
            self.push_mark(end, later(left, self.config.delay));
        }
        self.stats.written += n as u64;
        n
    }

    fn poll_deliver(&mut self, now: Instant, buf: &mut Vec<u8>) -> Option<usize> {
        self.arrive(now);
        let avail = usize::try_from(self.arrived - self.delivered).unwrap_or(usize::MAX);
        if avail == 0 {
            return None;
        }
        let n = self.chunk_len(avail);
        buf.extend(self.bytes.drain(..n));
        self.delivered += n as u64;
        self.stats.delivered += n as u64;
        self.stats.chunks += 1;
        Some(n)
    }

    fn poll_timeout(&self) -> Option<Instant> {
        if self.arrived > self.delivered {
            return self.arrived_at;
        }
        self.marks.front().map(|&(_, at)| at)
    }

    fn stats(&self) -> PipeStats {
        Pipe::stats(self)
    }
}

impl Connection for Pipe {
    fn disconnect(&mut self, _now: Instant) {
        if !self.connected {
            return;
        }
        self.connected = false;
        self.stats.disconnects += 1;
        self.stats.lost += self.bytes.len() as u64;
        // The next connection is a new byte stream: offsets start again.
        self.bytes.clear();
        self.marks.clear();
        self.arrived = 0;
        self.arrived_at = None;
        self.delivered = 0;
        self.busy_until = None;
    }

    fn reconnect(&mut self, _now: Instant) {
        if !self.connected {
            self.connected = true;
            self.stats.reconnects += 1;
        }
    }

    fn is_connected(&self) -> bool {
        self.connected
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::test_start;

    type Delivered = Vec<(Instant, Vec<u8>)>;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// Hands out every chunk due up to `limit`, at its own arrival time, checking the
    /// `poll_timeout` contract on the way.
    fn drain_until(pipe: &mut Pipe, limit: Instant, out: &mut Delivered) {
        while let Some(at) = pipe.poll_timeout() {
            if at > limit {
                break;
            }
            let mut buf = Vec::new();
            while let Some(n) = pipe.poll_deliver(at, &mut buf) {
                assert!(n > 0);
                out.push((at, buf.split_off(0)));
            }
            if let Some(next) = pipe.poll_timeout() {
                assert!(next > at, "poll_timeout must move past a drained instant");
            }
        }
    }

    /// `n` writes of varied lengths carrying a counting byte pattern.
    fn writes(start: Instant, n: usize, gap: Duration) -> Vec<(Instant, Vec<u8>)> {
        let mut next = 0u8;
        (0..n)
            .map(|i| {
                let len = 1 + (i * 37) % 300;
                let data = (0..len)
                    .map(|_| {
                        next = next.wrapping_add(1);
                        next
                    })
                    .collect();
                (start + gap * i as u32, data)
            })
            .collect()
    }

    /// Feeds every write (all must fit) and drains everything.
    fn run(pipe: &mut Pipe, inputs: &[(Instant, Vec<u8>)]) -> Delivered {
        let mut out = Vec::new();
        let mut last = test_start();
        for (t, data) in inputs {
            drain_until(pipe, *t, &mut out);
            assert_eq!(pipe.send(*t, data), data.len(), "the buffer holds it");
            last = *t;
        }
        drain_until(pipe, last + Duration::from_secs(1 << 30), &mut out);
        assert_eq!(pipe.poll_timeout(), None, "idle once drained");
        out
    }

    fn concat<'a>(parts: impl IntoIterator<Item = &'a Vec<u8>>) -> Vec<u8> {
        parts.into_iter().flatten().copied().collect()
    }

    #[test]
    fn bytes_arrive_in_order_exactly_once_in_arbitrary_chunks() {
        let start = test_start();
        let config = PipeConfig::perfect().with_delay(ms(5)).with_max_chunk(97);
        let mut pipe = Pipe::new(config, 1);
        let inputs = writes(start, 500, Duration::ZERO);
        let out = run(&mut pipe, &inputs);
        assert_eq!(
            concat(out.iter().map(|(_, d)| d)),
            concat(inputs.iter().map(|(_, d)| d))
        );
        let lens: std::collections::BTreeSet<usize> = out.iter().map(|(_, d)| d.len()).collect();
        assert!(lens.len() > 50, "chunk lengths vary: {lens:?}");
        assert!(lens.iter().all(|&n| (1..=97).contains(&n)));
        let s = pipe.stats();
        assert_eq!(s.written, s.delivered);
        assert_eq!(s.chunks, out.len() as u64);
    }

    #[test]
    fn chunks_join_writes() {
        let start = test_start();
        let mut pipe = Pipe::new(PipeConfig::perfect().with_max_chunk(10_000), 2);
        // 100 writes before the reader looks: far fewer reads see them all.
        let inputs: Vec<Vec<u8>> = (0..100u8).map(|i| vec![i; 3]).collect();
        for data in &inputs {
            assert_eq!(pipe.send(start, data), 3);
        }
        let mut out = Vec::new();
        drain_until(&mut pipe, start, &mut out);
        assert!(out.len() < 10, "{} chunks for 100 writes", out.len());
        assert_eq!(concat(out.iter().map(|(_, d)| d)), concat(&inputs));
    }

    #[test]
    fn without_a_rate_limit_every_byte_takes_exactly_the_delay() {
        let start = test_start();
        let mut pipe = Pipe::new(PipeConfig::perfect().with_delay(ms(20)), 3);
        let inputs = writes(start, 100, ms(1));
        let out = run(&mut pipe, &inputs);
        assert_eq!(
            out.len(),
            100,
            "max_chunk usize::MAX: one chunk per arrival"
        );
        for ((sent_at, sent), (got_at, got)) in inputs.iter().zip(&out) {
            assert_eq!((got_at, got), (&(*sent_at + ms(20)), sent));
        }
    }

    #[test]
    fn the_rate_limit_clocks_bytes_out_progressively() {
        let start = test_start();
        // 1 Mbit/s: 125 000 bytes take one second to leave, then 10 ms of delay.
        let config = PipeConfig::perfect()
            .with_rate(1_000_000)
            .with_delay(ms(10))
            .with_buffer(200_000);
        let mut pipe = Pipe::new(config, 4);
        let out = run(&mut pipe, &[(start, vec![7; 125_000])]);
        let first = out.first().unwrap();
        assert_eq!(
            first.1.len(),
            SEGMENT_BYTES,
            "the first segment arrives alone"
        );
        assert_eq!(first.0, start + Duration::from_nanos(11_584_000) + ms(10));
        assert_eq!(out.last().unwrap().0, start + ms(1_010));
        assert_eq!(out.iter().map(|(_, d)| d.len()).sum::<usize>(), 125_000);
    }

    #[test]
    fn a_full_buffer_pushes_back_until_bytes_are_delivered() {
        let start = test_start();
        let config = PipeConfig::perfect().with_delay(ms(10)).with_buffer(1000);
        let mut pipe = Pipe::new(config, 5);
        assert_eq!(pipe.send(start, &[1; 600]), 600);
        assert_eq!(pipe.room(), 400);
        assert_eq!(pipe.send(start, &[2; 600]), 400, "taken in part");
        assert_eq!(pipe.send(start + ms(1), &[3; 10]), 0, "refused while full");
        assert_eq!(pipe.stats().refused, 2);
        let mut buf = Vec::new();
        assert_eq!(pipe.poll_deliver(start + ms(9), &mut buf), None);
        assert_eq!(pipe.poll_deliver(start + ms(10), &mut buf), Some(1000));
        assert_eq!(pipe.room(), 1000, "delivery frees the buffer");
        assert_eq!(pipe.send(start + ms(10), &[3; 10]), 10);
    }

    #[test]
    fn a_disconnect_loses_what_is_in_transit_and_a_reconnect_starts_afresh() {
        let start = test_start();
        let mut pipe = Pipe::new(PipeConfig::perfect().with_delay(ms(10)), 6);
        pipe.send(start, b"old bytes");
        pipe.disconnect(start + ms(5));
        assert!(!pipe.is_connected());
        assert_eq!(pipe.poll_timeout(), None, "nothing left in transit");
        assert_eq!(
            pipe.send(start + ms(6), b"into the void"),
            13,
            "taken and discarded"
        );
        pipe.disconnect(start + ms(7));
        pipe.reconnect(start + ms(8));
        pipe.send(start + ms(8), b"new");
        let mut buf = Vec::new();
        assert_eq!(pipe.poll_deliver(start + ms(18), &mut buf), Some(3));
        assert_eq!(buf, b"new");
        let s = pipe.stats();
        assert_eq!((s.lost, s.discarded), (9, 13));
        assert_eq!((s.disconnects, s.reconnects), (1, 1), "repeats are no-ops");
        assert_eq!((s.written, s.delivered), (12, 3));
    }

    fn chunking(seed: u64) -> Vec<usize> {
        let start = test_start();
        let mut pipe = Pipe::new(PipeConfig::perfect().with_max_chunk(64), seed);
        let out = run(&mut pipe, &writes(start, 200, Duration::ZERO));
        out.iter().map(|(_, d)| d.len()).collect()
    }

    #[test]
    fn chunking_is_deterministic_per_seed() {
        assert_eq!(chunking(7), chunking(7));
        assert_ne!(chunking(7), chunking(8));
    }

    #[test]
    fn an_idle_pipe_has_no_deadline() {
        let start = test_start();
        let mut pipe = Pipe::new(PipeConfig::perfect(), 9);
        assert_eq!(pipe.poll_timeout(), None);
        assert_eq!(pipe.send(start, b""), 0);
        assert_eq!(pipe.poll_timeout(), None);
        let mut buf = Vec::new();
        assert_eq!(pipe.poll_deliver(start, &mut buf), None);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 64, .. Default::default() })]

        /// Whatever the delay, rate, buffer and chunking, a writer that offers again what was
        /// refused gets every byte through, in order, and the pipe goes idle.
        #[test]
        fn every_byte_arrives_in_order(
            seed in proptest::prelude::any::<u64>(),
            delay_ms in 0u64..50,
            rate in proptest::prop_oneof![proptest::strategy::Just(0u64), 10_000u64..10_000_000],
            buffer in 1usize..5000,
            max_chunk in proptest::prop_oneof![proptest::strategy::Just(usize::MAX), 1usize..2000],
            lens in proptest::collection::vec(0usize..3000, 1..60),
        ) {
            let start = test_start();
            let config = PipeConfig::perfect()
                .with_delay(ms(delay_ms))
                .with_rate(rate)
                .with_buffer(buffer)
                .with_max_chunk(max_chunk);
            let mut pipe = Pipe::new(config, seed);
            let sent: Vec<u8> = (0..lens.iter().sum::<usize>()).map(|i| (i % 251) as u8).collect();
            let mut now = start;
            let mut out = Vec::new();
            let mut offset = 0;
            for len in lens {
                let mut rest = &sent[offset..offset + len];
                offset += len;
                while !rest.is_empty() {
                    let n = pipe.send(now, rest);
                    rest = &rest[n..];
                    if n == 0 {
                        // Full: wait for the next delivery, which frees room.
                        now = pipe.poll_timeout().expect("a full pipe has a delivery due");
                        drain_until(&mut pipe, now, &mut out);
                    }
                }
            }
            drain_until(&mut pipe, now + Duration::from_secs(1 << 20), &mut out);
            proptest::prop_assert_eq!(concat(out.iter().map(|(_, d)| d)), sent);
            proptest::prop_assert_eq!(pipe.poll_timeout(), None);
            proptest::prop_assert!(out.iter().all(|(_, d)| d.len() <= max_chunk));
        }
    }
}
