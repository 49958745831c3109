//! One direction of an impaired network path, as a sans-IO element.
//!
//! A [`Link`] takes datagrams in ([`Link::handle_input`]), holds them for their simulated
//! transit time and hands them out once due ([`Link::poll_transmit`]); [`Link::poll_timeout`]
//! tells the driver when the next one is due. Every random choice comes from a [`SimRng`]
//! seeded at construction, so one seed and one input schedule always give the same output.
//!
//! The stages a datagram passes, in order:
//! 1. the in-flight bound ([`LinkConfig::max_in_flight`]): drop when the link already holds
//!    that many datagrams;
//! 2. the bottleneck ([`LinkConfig::rate_bps`], [`LinkConfig::queue_bytes`]): a drop-tail
//!    queue serialised at the configured rate;
//! 3. loss ([`Loss`]), after the bottleneck, as on a lossy radio hop behind a router;
//! 4. duplication, then per copy corruption (one flipped bit) and propagation delay with
//!    jitter; a copy picked for reordering gets extra delay so later datagrams overtake it.
use std::cmp::Ordering;
use std::collections::{BinaryHeap, VecDeque};
use std::time::{Duration, Instant};

use crate::rng::{seeded, RngCore, SimRng};

/// Upper bound on spare buffers kept for reuse, so one burst does not pin memory forever.
const MAX_FREE_BUFFERS: usize = 4096;

/// Default bound on datagrams held by one link (see [`LinkConfig::max_in_flight`]).
pub const DEFAULT_MAX_IN_FLIGHT: usize = 1 << 16;

/// How datagrams are lost.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Loss {
    /// Nothing is lost.
    None,
    /// Each datagram is lost independently with this probability.
    Bernoulli(f64),
    /// Two-state Markov (Gilbert–Elliott) loss: long good stretches, bursts of loss while bad.
    /// Before each datagram the state moves good→bad with probability `p` or bad→good with
    /// probability `r`; the datagram is then lost with the current state's probability.
    /// The mean sojourn in the bad state is `1 / r` datagrams.
    GilbertElliott {
        /// Probability of moving from good to bad, per datagram.
        p: f64,
        /// Probability of moving from bad to good, per datagram.
        r: f64,
        /// Loss probability while good.
        loss_good: f64,
        /// Loss probability while bad.
        loss_bad: f64,
    },
}

/// Impairments of one link direction. Fields are public; the `with_*` helpers chain.
#[derive(Debug, Clone, PartialEq)]
pub struct LinkConfig {
    /// Loss model.
    pub loss: Loss,
    /// Fixed one-way propagation delay.
    pub delay: Duration,
    /// Uniform jitter: each datagram's delay is `delay ± jitter` (never below zero). Arrival
    /// order is kept (a datagram never arrives before one sent earlier) unless it is picked
    /// for reordering.
    pub jitter: Duration,
    /// Probability that a datagram is held back by [`LinkConfig::reorder_delay`] extra, so
    /// datagrams sent after it can overtake it.
    pub reorder: f64,
    /// Extra delay given to a datagram picked for reordering.
    pub reorder_delay: Duration,
    /// Probability that a datagram is delivered twice.
    pub duplicate: f64,
    /// Probability that one random bit of a delivered copy is flipped.
    pub corrupt: f64,
    /// Bottleneck rate in bits per second; 0 means unlimited (no serialisation delay, no queue).
    pub rate_bps: u64,
    /// Bound of the bottleneck queue in bytes, counting datagrams not yet fully serialised
    /// (including the one on the wire); a datagram that would exceed it is dropped (drop-tail).
    /// Only used when `rate_bps > 0`.
    pub queue_bytes: usize,
    /// Bound on datagrams held by the link at once; further datagrams are dropped.
    pub max_in_flight: usize,
}

impl Default for LinkConfig {
    fn default() -> Self {
        Self::perfect()
    }
}

/// Names accepted by [`LinkConfig::preset`].
pub const PRESET_NAMES: &[&str] = &[
    "perfect",
    "lan",
    "wifi_lossy",
    "cellular",
    "satellite",
    "congested",
    "kcptun_10pct_loss",
];

impl LinkConfig {
    /// No loss, no delay, no rate limit, no bound: every datagram is due the instant it enters.
    pub fn perfect() -> Self {
        Self {
            loss: Loss::None,
            delay: Duration::ZERO,
            jitter: Duration::ZERO,
            reorder: 0.0,
            reorder_delay: Duration::ZERO,
            duplicate: 0.0,
            corrupt: 0.0,
            rate_bps: 0,
            queue_bytes: 0,
            max_in_flight: usize::MAX,
        }
    }

    /// A switched LAN: 0.5 ms one way, 50 µs jitter, 1 Gbit/s, no loss.
    pub fn lan() -> Self {
        Self::perfect()
            .with_delay(Duration::from_micros(500))
            .with_jitter(Duration::from_micros(50))
            .with_rate(1_000_000_000, 512 * 1024)
            .with_max_in_flight(DEFAULT_MAX_IN_FLIGHT)
    }

    /// Busy Wi-Fi: 5 ms ± 3 ms, bursty loss (about 2.5 % on average), some reordering and
    /// duplication from link-layer retries, 30 Mbit/s.
    pub fn wifi_lossy() -> Self {
        Self::perfect()
            .with_gilbert_elliott(0.02, 0.4, 0.002, 0.5)
            .with_delay(Duration::from_millis(5))
            .with_jitter(Duration::from_millis(3))
            .with_reorder(0.01, Duration::from_millis(8))
            .with_duplicate(0.002)
            .with_rate(30_000_000, 256 * 1024)
            .with_max_in_flight(DEFAULT_MAX_IN_FLIGHT)
    }

    /// A mobile network: 40 ms ± 15 ms, rare loss bursts, 10 Mbit/s behind a deep
    /// (bufferbloated) queue.
    pub fn cellular() -> Self {
        Self::perfect()
            .with_gilbert_elliott(0.005, 0.2, 0.001, 0.3)
            .with_delay(Duration::from_millis(40))
            .with_jitter(Duration::from_millis(15))
            .with_reorder(0.005, Duration::from_millis(30))
            .with_rate(10_000_000, 1024 * 1024)
            .with_max_in_flight(DEFAULT_MAX_IN_FLIGHT)
    }

    /// A geostationary satellite hop: 300 ms one way, 0.5 % loss, 20 Mbit/s.
    pub fn satellite() -> Self {
        Self::perfect()
            .with_loss(0.005)
            .with_delay(Duration::from_millis(300))
            .with_jitter(Duration::from_millis(10))
            .with_rate(20_000_000, 1024 * 1024)
            .with_max_in_flight(DEFAULT_MAX_IN_FLIGHT)
    }

    /// A congested path: 20 ms ± 5 ms, 1 % random loss, 2 Mbit/s with a short (32 KiB)
    /// drop-tail queue that overflows under load.
    pub fn congested() -> Self {
        Self::perfect()
            .with_loss(0.01)
            .with_delay(Duration::from_millis(20))
            .with_jitter(Duration::from_millis(5))
            .with_rate(2_000_000, 32 * 1024)
            .with_max_in_flight(DEFAULT_MAX_IN_FLIGHT)
    }

    /// The path kcptun is typically deployed over: 10 % independent loss, 50 ms ± 5 ms one way
    /// (100 ms RTT), no rate limit.
    pub fn kcptun_10pct_loss() -> Self {
        Self::perfect()
            .with_loss(0.10)
            .with_delay(Duration::from_millis(50))
            .with_jitter(Duration::from_millis(5))
            .with_max_in_flight(DEFAULT_MAX_IN_FLIGHT)
    }

    /// The preset called `name` (one of [`PRESET_NAMES`]; `-` may stand for `_`).
    pub fn preset(name: &str) -> Option<Self> {
        let config = match name.replace('-', "_").as_str() {
            "perfect" => Self::perfect(),
            "lan" => Self::lan(),
            "wifi_lossy" => Self::wifi_lossy(),
            "cellular" => Self::cellular(),
            "satellite" => Self::satellite(),
            "congested" => Self::congested(),
            "kcptun_10pct_loss" => Self::kcptun_10pct_loss(),
            _ => return None,
        };
        Some(config)
    }

    /// Independent loss with probability `p`.
    pub fn with_loss(mut self, p: f64) -> Self {
        self.loss = Loss::Bernoulli(p);
        self
    }

    /// Gilbert–Elliott loss (see [`Loss::GilbertElliott`]).
    pub fn with_gilbert_elliott(mut self, p: f64, r: f64, loss_good: f64, loss_bad: f64) -> Self {
        self.loss = Loss::GilbertElliott {
            p,
            r,
            loss_good,
            loss_bad,
        };
        self
    }

    /// Fixed one-way delay.
    pub fn with_delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    /// Uniform jitter of ± `jitter`.
    pub fn with_jitter(mut self, jitter: Duration) -> Self {
        self.jitter = jitter;
        self
    }

    /// Reordering: probability `p` that a datagram is held back by `extra`.
    pub fn with_reorder(mut self, p: f64, extra: Duration) -> Self {
        self.reorder = p;
        self.reorder_delay = extra;
        self
    }

    /// Duplication probability.
    pub fn with_duplicate(mut self, p: f64) -> Self {
        self.duplicate = p;
        self
    }

    /// Corruption probability (one flipped bit).
    pub fn with_corrupt(mut self, p: f64) -> Self {
        self.corrupt = p;
        self
    }

    /// Bottleneck of `rate_bps` bits per second with a drop-tail queue of `queue_bytes`.
    pub fn with_rate(mut self, rate_bps: u64, queue_bytes: usize) -> Self {
        self.rate_bps = rate_bps;
        self.queue_bytes = queue_bytes;
        self
    }

    /// Bound on datagrams held at once.
    pub fn with_max_in_flight(mut self, n: usize) -> Self {
        self.max_in_flight = n;
        self
    }
}

/// Counters of one link. `lost`, `queue_dropped` and `delivered` count datagrams that took
/// that fate; duplicates count once in `duplicated` and again in `delivered`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LinkStats {
    /// Datagrams that entered the link.
    pub sent: u64,
    /// Datagram copies handed out by [`Link::poll_transmit`].
    pub delivered: u64,
    /// Datagrams dropped by the loss model.
    pub lost: u64,
    /// Extra copies created by duplication.
    pub duplicated: u64,
    /// Copies with a flipped bit.
    pub corrupted: u64,
    /// Copies held back for reordering.
    pub reordered: u64,
    /// Datagrams (or duplicate copies) dropped because the queue or in-flight bound was full.
    pub queue_dropped: u64,
    /// Bytes that entered the link.
    pub bytes_in: u64,
    /// Bytes handed out.
    pub bytes_out: u64,
}

impl LinkStats {
    /// Adds `other`'s counters to these, e.g. to total many links (the netem proxy's clients,
    /// past and present). Saturates rather than wrapping.
    pub fn merge(&mut self, other: &LinkStats) {
        // Destructured so a new counter cannot be forgotten here.
        let LinkStats {
            sent,
            delivered,
            lost,
            duplicated,
            corrupted,
            reordered,
            queue_dropped,
            bytes_in,
            bytes_out,
        } = *other;
        self.sent = self.sent.saturating_add(sent);
        self.delivered = self.delivered.saturating_add(delivered);
        self.lost = self.lost.saturating_add(lost);
        self.duplicated = self.duplicated.saturating_add(duplicated);
        self.corrupted = self.corrupted.saturating_add(corrupted);
        self.reordered = self.reordered.saturating_add(reordered);
        self.queue_dropped = self.queue_dropped.saturating_add(queue_dropped);
        self.bytes_in = self.bytes_in.saturating_add(bytes_in);
        self.bytes_out = self.bytes_out.saturating_add(bytes_out);
    }
}

/// A datagram in transit, ordered by delivery time and then entry order so ties are
/// deterministic.
#[derive(Debug)]
struct InFlight {
    at: Instant,
    seq: u64,
    data: Vec<u8>,
}

impl PartialEq for InFlight {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for InFlight {}

impl PartialOrd for InFlight {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for InFlight {
    fn cmp(&self, other: &Self) -> Ordering {
        // Reversed: BinaryHeap is a max-heap and the earliest delivery must come out first.
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

/// One direction of an impaired path, as a sans-IO element.
///
/// Stages, in order: the in-flight bound ([`LinkConfig::max_in_flight`]); the bottleneck, a
/// drop-tail queue serialised at [`LinkConfig::rate_bps`]; loss ([`Loss`]); duplication; then
/// per copy corruption and delay with jitter (or extra delay when picked for reordering).
/// Every random choice comes from the seed given to [`Link::new`].
#[derive(Debug)]
pub struct Link {
    config: LinkConfig,
    rng: SimRng,
    stats: LinkStats,
    heap: BinaryHeap<InFlight>,
    next_seq: u64,
    /// Spare buffers, so steady-state forwarding does not allocate per datagram.
    free: Vec<Vec<u8>>,
    /// Gilbert–Elliott state.
    bad: bool,
    /// When the bottleneck finishes serialising everything accepted so far.
    busy_until: Option<Instant>,
    /// (serialisation end, length) of datagrams still in the bottleneck queue.
    backlog: VecDeque<(Instant, usize)>,
    backlog_bytes: usize,
    /// Latest delivery time of a non-reordered copy: jitter never lets a later datagram
    /// arrive before it.
    fifo_floor: Option<Instant>,
}

impl Link {
    /// A link with `config` whose random choices all derive from `seed`.
    pub fn new(config: LinkConfig, seed: u64) -> Self {
        Self {
            config,
            rng: seeded(seed),
            stats: LinkStats::default(),
            heap: BinaryHeap::new(),
            next_seq: 0,
            free: Vec::new(),
            bad: false,
            busy_until: None,
            backlog: VecDeque::new(),
            backlog_bytes: 0,
            fifo_floor: None,
        }
    }

    /// The current configuration.
    pub fn config(&self) -> &LinkConfig {
        &self.config
    }

    /// Replaces the configuration (e.g. to partition the path mid-test). Datagrams already in
    /// transit keep their delivery times.
    pub fn set_config(&mut self, config: LinkConfig) {
        self.config = config;
    }

    /// The counters so far.
    pub fn stats(&self) -> LinkStats {
        self.stats
    }

    /// Number of datagram copies currently in transit.
    pub fn in_flight(&self) -> usize {
        self.heap.len()
    }

    /// Whether nothing is in transit.
    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }

    /// A datagram enters the link at `now`.
    pub fn handle_input(&mut self, now: Instant, data: &[u8]) {
        self.stats.sent += 1;
        self.stats.bytes_in += data.len() as u64;
        if self.heap.len() >= self.config.max_in_flight {
            self.stats.queue_dropped += 1;
            return;
        }
        let Some(wire_done) = self.serialise(now, data.len()) else {
            self.stats.queue_dropped += 1;
            return;
        };
        if self.lose() {
            self.stats.lost += 1;
            return;
        }
        self.schedule(wire_done, data);
        if self.chance(self.config.duplicate) {
            if self.heap.len() >= self.config.max_in_flight {
                self.stats.queue_dropped += 1;
                return;
            }
            self.stats.duplicated += 1;
            self.schedule(wire_done, data);
        }
    }

    /// Appends the next datagram due at or before `now` to `buf` and returns its length, or
    /// `None` when nothing is due.
    pub fn poll_transmit(&mut self, now: Instant, buf: &mut Vec<u8>) -> Option<usize> {
        if self.heap.peek()?.at > now {
            return None;
        }
        let InFlight { data, .. } = self.heap.pop()?;
        let len = data.len();
        buf.extend_from_slice(&data);
        self.stats.delivered += 1;
        self.stats.bytes_out += len as u64;
        self.recycle(data);
        Some(len)
    }

    /// When the next datagram is due; `None` when the link is empty.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.heap.peek().map(|f| f.at)
    }

    /// Runs the bottleneck: returns when the datagram has left it, or `None` when the
    /// drop-tail queue has no room.
    fn serialise(&mut self, now: Instant, len: usize) -> Option<Instant> {
        if self.config.rate_bps == 0 {
            return Some(now);
        }
        self.drain_backlog(now);
        if self.backlog_bytes.saturating_add(len) > self.config.queue_bytes {
            return None;
        }
        let start = self.busy_until.map_or(now, |b| b.max(now));
        let done = later(start, serialisation_time(len, self.config.rate_bps));
        self.busy_until = Some(done);
        self.backlog.push_back((done, len));
        self.backlog_bytes += len;
        Some(done)
    }

    /// Forgets queued datagrams that have finished serialising by `now`.
    fn drain_backlog(&mut self, now: Instant) {
        while let Some(&(done, len)) = self.backlog.front() {
            if done > now {
                break;
            }
            self.backlog.pop_front();
            self.backlog_bytes -= len;
        }
    }

    /// Draws the loss verdict for one datagram, advancing the Gilbert–Elliott state first.
    fn lose(&mut self) -> bool {
        match self.config.loss {
            Loss::None => false,
            Loss::Bernoulli(p) => self.chance(p),
            Loss::GilbertElliott {
                p,
                r,
                loss_good,
                loss_bad,
            } => {
                let flip = if self.bad { r } else { p };
                if self.chance(flip) {
                    self.bad = !self.bad;
                }
                self.chance(if self.bad { loss_bad } else { loss_good })
            }
        }
    }

    /// Queues one copy of `data` that left the bottleneck at `wire_done`.
    fn schedule(&mut self, wire_done: Instant, data: &[u8]) {
        let mut copy = self.free.pop().unwrap_or_default();
        copy.clear();
        copy.extend_from_slice(data);
        if self.chance(self.config.corrupt) && self.flip_bit(&mut copy) {
            self.stats.corrupted += 1;
        }
        let at = self.delivery_time(wire_done);
        let seq = self.next_seq;
        self.next_seq += 1;
        self.heap.push(InFlight {
            at,
            seq,
            data: copy,
        });
    }

    /// Propagation delay with jitter, kept in order unless the copy is picked for reordering.
    fn delivery_time(&mut self, wire_done: Instant) -> Instant {
        let base = later(wire_done, self.jittered_delay());
        if self.chance(self.config.reorder) {
            self.stats.reordered += 1;
            // Held back and outside the FIFO floor, so datagrams sent later may overtake it.
            return later(base, self.config.reorder_delay);
        }
        let at = self.fifo_floor.map_or(base, |floor| floor.max(base));
        self.fifo_floor = Some(at);
        at
    }

    /// `delay` plus a uniform offset in `[-jitter, +jitter]`, floored at zero.
    fn jittered_delay(&mut self) -> Duration {
        let jitter = duration_nanos(self.config.jitter);
        if jitter == 0 {
            return self.config.delay;
        }
        let span = jitter.saturating_mul(2).saturating_add(1);
        let offset = i128::from(self.rng.next_u64() % span) - i128::from(jitter);
        let nanos = (i128::from(duration_nanos(self.config.delay)) + offset).max(0);
        Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
    }

    /// Flips one random bit; returns false for an empty datagram, which has none.
    fn flip_bit(&mut self, data: &mut [u8]) -> bool {
        let bits = (data.len() as u64).saturating_mul(8);
        if bits == 0 {
            return false;
        }
        let bit = self.rng.next_u64() % bits;
        data[(bit / 8) as usize] ^= 1 << (bit % 8);
        true
    }

    /// True with probability `p`. Draws nothing for `p <= 0` (or NaN), so a link without an
    /// impairment leaves the random stream of the others untouched.
    fn chance(&mut self, p: f64) -> bool {
        if p.is_nan() || p <= 0.0 {
            return false;
        }
        if p >= 1.0 {
            return true;
        }
        unit_f64(self.rng.next_u64()) < p
    }

    /// Keeps a delivered buffer for the next datagram, up to a bound.
    fn recycle(&mut self, data: Vec<u8>) {
        if self.free.len() < MAX_FREE_BUFFERS {
            self.free.push(data);
        }
    }
}

/// `t + d`, or `t` if that is not representable (only for absurd configured durations;
/// core never panics on `Instant` overflow).
pub(super) fn later(t: Instant, d: Duration) -> Instant {
    t.checked_add(d).unwrap_or(t)
}

/// Time to clock `len` bytes onto a `rate_bps` wire, rounded up to the nanosecond.
pub(super) fn serialisation_time(len: usize, rate_bps: u64) -> Duration {
    let bits = (len as u128) * 8 * 1_000_000_000;
    let nanos = bits.div_ceil(u128::from(rate_bps));
    Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
}

/// A duration in nanoseconds, saturating at `u64::MAX` (about 584 years).
fn duration_nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// Maps 64 random bits to a uniform `f64` in `[0, 1)` using the top 53 bits (the mantissa).
fn unit_f64(bits: u64) -> f64 {
    (bits >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::test_start;
    use sha2::{Digest, Sha256};

    type Delivered = Vec<(Instant, Vec<u8>)>;

    /// Hands out everything due up to `limit`, at each datagram's own delivery time, and
    /// checks the `poll_timeout` contract on the way.
    fn drain_until(link: &mut Link, limit: Instant, out: &mut Delivered) {
        let mut buf = Vec::new();
        while let Some(at) = link.poll_timeout() {
            if at > limit {
                break;
            }
            while let Some(n) = link.poll_transmit(at, &mut buf) {
                assert_eq!(n, buf.len());
                out.push((at, std::mem::take(&mut buf)));
            }
            if let Some(next) = link.poll_timeout() {
                assert!(next > at, "poll_timeout must move past a drained instant");
            }
        }
    }

    /// Feeds `inputs` (in time order) and returns every delivery.
    fn run(link: &mut Link, inputs: impl IntoIterator<Item = (Instant, Vec<u8>)>) -> Delivered {
        let mut out = Vec::new();
        let mut last = None;
        for (t, data) in inputs {
            drain_until(link, t, &mut out);
            link.handle_input(t, &data);
            last = Some(t);
        }
        if let Some(t) = last {
            drain_until(link, t + Duration::from_secs(1_000_000), &mut out);
        }
        assert!(link.is_empty());
        out
    }

    /// `n` datagrams carrying their index, `gap` apart from `start`.
    fn numbered(start: Instant, n: u32, gap: Duration) -> Vec<(Instant, Vec<u8>)> {
        (0..n)
            .map(|i| (start + gap * i, i.to_be_bytes().to_vec()))
            .collect()
    }

    fn index(data: &[u8]) -> u32 {
        u32::from_be_bytes(data[..4].try_into().unwrap())
    }

    #[test]
    fn perfect_link_delivers_in_order_with_exact_delay() {
        let start = test_start();
        let delay = Duration::from_millis(10);
        let mut link = Link::new(LinkConfig::perfect().with_delay(delay), 1);
        let inputs = numbered(start, 1000, Duration::from_millis(1));
        let out = run(&mut link, inputs.clone());
        assert_eq!(out.len(), inputs.len());
        for ((sent_at, sent), (got_at, got)) in inputs.iter().zip(&out) {
            assert_eq!(sent, got);
            assert_eq!(*got_at, *sent_at + delay);
        }
        let stats = link.stats();
        assert_eq!((stats.sent, stats.delivered, stats.lost), (1000, 1000, 0));
        assert_eq!(stats.bytes_in, 4000);
        assert_eq!(stats.bytes_out, 4000);
    }

    #[test]
    fn poll_timeout_is_none_when_empty_and_later_after_draining() {
        let start = test_start();
        let mut link = Link::new(
            LinkConfig::perfect().with_delay(Duration::from_millis(5)),
            2,
        );
        assert_eq!(link.poll_timeout(), None);
        link.handle_input(start, b"a");
        link.handle_input(start + Duration::from_millis(1), b"b");
        let mut buf = Vec::new();
        assert_eq!(link.poll_transmit(start, &mut buf), None, "not due yet");
        let first = link.poll_timeout().unwrap();
        assert_eq!(first, start + Duration::from_millis(5));
        while link.poll_transmit(first, &mut buf).is_some() {}
        assert_eq!(buf, b"a");
        assert!(link.poll_timeout().unwrap() > first);
        let second = link.poll_timeout().unwrap();
        while link.poll_transmit(second, &mut buf).is_some() {}
        assert_eq!(buf, b"ab", "poll_transmit appends");
        assert_eq!(link.poll_timeout(), None);
    }

    #[test]
    fn bernoulli_loss_rate_is_close_to_configured() {
        let start = test_start();
        let mut link = Link::new(LinkConfig::perfect().with_loss(0.10), 3);
        let out = run(
            &mut link,
            numbered(start, 100_000, Duration::from_micros(10)),
        );
        let stats = link.stats();
        let rate = stats.lost as f64 / stats.sent as f64;
        assert!((0.09..=0.11).contains(&rate), "loss rate {rate}");
        assert_eq!(stats.lost + stats.delivered, stats.sent);
        assert_eq!(out.len() as u64, stats.delivered);
    }

    /// Mean length of runs of consecutive lost indices among `n` sent.
    fn mean_burst(out: &Delivered, n: u32) -> f64 {
        let mut got = vec![false; n as usize];
        for (_, d) in out {
            got[index(d) as usize] = true;
        }
        let (mut bursts, mut lost, mut prev_lost) = (0u32, 0u32, false);
        for g in got {
            if !g {
                lost += 1;
                bursts += u32::from(!prev_lost);
            }
            prev_lost = !g;
        }
        f64::from(lost) / f64::from(bursts.max(1))
    }

    #[test]
    fn gilbert_elliott_loses_in_bursts() {
        let start = test_start();
        let n = 100_000;
        let gap = Duration::from_micros(10);
        let ge = LinkConfig::perfect().with_gilbert_elliott(0.03, 0.3, 0.0, 1.0);
        let mut link = Link::new(ge, 4);
        let bursty = mean_burst(&run(&mut link, numbered(start, n, gap)), n);
        assert!(bursty > 1.5, "mean burst {bursty}");
        // The same average loss, independent: bursts are barely longer than one.
        let rate = link.stats().lost as f64 / f64::from(n);
        let mut link = Link::new(LinkConfig::perfect().with_loss(rate), 4);
        let independent = mean_burst(&run(&mut link, numbered(start, n, gap)), n);
        assert!(independent < 1.3, "mean burst {independent}");
    }

    #[test]
    fn duplication_is_counted_and_delivered() {
        let start = test_start();
        let mut link = Link::new(LinkConfig::perfect().with_duplicate(0.2), 5);
        let out = run(
            &mut link,
            numbered(start, 10_000, Duration::from_micros(10)),
        );
        let stats = link.stats();
        assert!((1_800..=2_200).contains(&stats.duplicated), "{stats:?}");
        assert_eq!(stats.delivered, stats.sent + stats.duplicated);
        assert_eq!(out.len() as u64, stats.delivered);
        let mut twice = 0;
        for pair in out.windows(2) {
            twice += u64::from(pair[0].1 == pair[1].1);
        }
        assert_eq!(
            twice, stats.duplicated,
            "copies arrive back to back in FIFO order"
        );
    }

    #[test]
    fn corruption_flips_exactly_one_bit() {
        let start = test_start();
        let mut link = Link::new(LinkConfig::perfect().with_corrupt(0.3), 6);
        let inputs: Vec<_> = (0..10_000u32)
            .map(|i| (start + Duration::from_micros(u64::from(i)), vec![0u8; 16]))
            .collect();
        let out = run(&mut link, inputs);
        let flipped: Vec<u32> = out
            .iter()
            .map(|(_, d)| d.iter().map(|b| b.count_ones()).sum())
            .collect();
        assert!(flipped.iter().all(|&bits| bits <= 1));
        let corrupted = flipped.iter().filter(|&&bits| bits == 1).count() as u64;
        assert_eq!(corrupted, link.stats().corrupted);
        assert!((2_700..=3_300).contains(&corrupted), "{corrupted}");
    }

    #[test]
    fn empty_datagrams_pass_uncorrupted() {
        let start = test_start();
        let mut link = Link::new(LinkConfig::perfect().with_corrupt(1.0), 7);
        let out = run(&mut link, vec![(start, Vec::new())]);
        assert_eq!(out.len(), 1);
        assert_eq!(link.stats().corrupted, 0);
    }

    fn packets(start: Instant, n: u32, gap: Duration, len: usize) -> Vec<(Instant, Vec<u8>)> {
        (0..n).map(|i| (start + gap * i, vec![0u8; len])).collect()
    }

    /// Deliveries in each whole virtual second after `start`.
    fn per_second(out: &Delivered, start: Instant) -> Vec<usize> {
        let mut counts = Vec::new();
        for (at, _) in out {
            let s = at.duration_since(start).as_secs() as usize;
            counts.resize(counts.len().max(s + 1), 0);
            counts[s] += 1;
        }
        counts
    }

    #[test]
    fn rate_limit_paces_at_line_rate() {
        let start = test_start();
        let config = LinkConfig::perfect().with_rate(1_000_000, 12_500);
        let mut link = Link::new(config, 8);
        // Offered at twice the line rate for 10 s: half goes through, the rest is dropped.
        let out = run(
            &mut link,
            packets(start, 2000, Duration::from_millis(5), 1250),
        );
        let counts = per_second(&out, start);
        for &c in &counts[..10] {
            assert!((99..=101).contains(&c), "{counts:?}");
        }
        let stats = link.stats();
        assert!(stats.queue_dropped > 980, "{stats:?}");
        assert_eq!(stats.delivered + stats.queue_dropped, 2000);
        for pair in out.windows(2) {
            assert!(pair[1].0.duration_since(pair[0].0) >= Duration::from_millis(10));
        }
    }

    #[test]
    fn rate_limit_at_line_rate_drops_nothing() {
        let start = test_start();
        let config = LinkConfig::perfect()
            .with_rate(1_000_000, 12_500)
            .with_delay(Duration::from_millis(20));
        let mut link = Link::new(config, 9);
        let inputs = packets(start, 1000, Duration::from_millis(10), 1250);
        let out = run(&mut link, inputs.clone());
        assert_eq!(out.len(), 1000);
        for ((sent_at, _), (got_at, _)) in inputs.iter().zip(&out) {
            // 10 ms to serialise 10 000 bits at 1 Mbit/s, then 20 ms of propagation.
            assert_eq!(*got_at, *sent_at + Duration::from_millis(30));
        }
    }

    #[test]
    fn burst_beyond_queue_bound_is_dropped_at_the_tail() {
        let start = test_start();
        let mut link = Link::new(LinkConfig::perfect().with_rate(1_000_000, 12_500), 10);
        let mut burst = numbered(start, 100, Duration::ZERO);
        for (_, data) in &mut burst {
            data.resize(1250, 0);
        }
        let out = run(&mut link, burst);
        assert_eq!(link.stats().queue_dropped, 90);
        let got: Vec<u32> = out.iter().map(|(_, d)| index(d)).collect();
        assert_eq!(
            got,
            (0..10).collect::<Vec<_>>(),
            "the head of the burst survives"
        );
    }

    #[test]
    fn max_in_flight_bounds_the_link() {
        let start = test_start();
        let config = LinkConfig::perfect()
            .with_delay(Duration::from_millis(10))
            .with_max_in_flight(5);
        let mut link = Link::new(config, 11);
        let out = run(&mut link, numbered(start, 10, Duration::ZERO));
        assert_eq!(out.len(), 5);
        assert_eq!(link.stats().queue_dropped, 5);
    }

    #[test]
    fn jitter_keeps_order_and_bounds() {
        let start = test_start();
        let config = LinkConfig::perfect()
            .with_delay(Duration::from_millis(10))
            .with_jitter(Duration::from_millis(5));
        let mut link = Link::new(config, 12);
        let inputs = numbered(start, 1000, Duration::from_millis(1));
        let out = run(&mut link, inputs.clone());
        let mut distinct_delays = std::collections::BTreeSet::new();
        for (i, (at, data)) in out.iter().enumerate() {
            assert_eq!(index(data), i as u32, "jitter alone never reorders");
            let delay = at.duration_since(inputs[i].0);
            assert!(delay >= Duration::from_millis(5));
            distinct_delays.insert(delay);
        }
        assert!(distinct_delays.len() > 100, "delays actually vary");
    }

    #[test]
    fn reordered_datagrams_are_overtaken() {
        let start = test_start();
        let config = LinkConfig::perfect()
            .with_delay(Duration::from_millis(10))
            .with_reorder(0.1, Duration::from_millis(20));
        let mut link = Link::new(config, 13);
        let out = run(&mut link, numbered(start, 10_000, Duration::from_millis(1)));
        let reordered = link.stats().reordered;
        assert!((900..=1100).contains(&reordered), "{reordered}");
        let inversions = out
            .windows(2)
            .filter(|w| index(&w[0].1) > index(&w[1].1))
            .count();
        assert!(inversions > 500, "{inversions}");
        assert_eq!(out.len(), 10_000);
    }

    fn digest(out: &Delivered, start: Instant) -> [u8; 32] {
        let mut h = Sha256::new();
        for (at, data) in out {
            h.update(at.duration_since(start).as_nanos().to_be_bytes());
            h.update((data.len() as u64).to_be_bytes());
            h.update(data);
        }
        h.finalize().into()
    }

    fn everything() -> LinkConfig {
        LinkConfig::wifi_lossy()
            .with_corrupt(0.05)
            .with_duplicate(0.05)
            .with_rate(5_000_000, 16 * 1024)
    }

    fn run_seeded(seed: u64, start: Instant) -> [u8; 32] {
        let mut link = Link::new(everything(), seed);
        digest(
            &run(
                &mut link,
                packets(start, 5000, Duration::from_micros(700), 600),
            ),
            start,
        )
    }

    #[test]
    fn same_seed_same_deliveries_different_seed_different() {
        let start = test_start();
        assert_eq!(run_seeded(42, start), run_seeded(42, start));
        assert_ne!(run_seeded(42, start), run_seeded(43, start));
    }

    #[test]
    fn presets_resolve_by_name() {
        for name in PRESET_NAMES {
            assert!(LinkConfig::preset(name).is_some(), "{name}");
        }
        assert_eq!(
            LinkConfig::preset("wifi-lossy"),
            Some(LinkConfig::wifi_lossy())
        );
        assert_eq!(LinkConfig::preset("moon"), None);
        assert_eq!(LinkConfig::default(), LinkConfig::perfect());
    }

    #[test]
    fn presets_forward_traffic() {
        let start = test_start();
        for name in PRESET_NAMES {
            let mut link = Link::new(LinkConfig::preset(name).unwrap(), 14);
            let out = run(
                &mut link,
                packets(start, 2000, Duration::from_millis(10), 1000),
            );
            let stats = link.stats();
            assert!(out.len() > 1500, "{name}: {stats:?}");
            assert_eq!(out.len() as u64, stats.delivered);
        }
    }

    #[test]
    fn steady_state_reuses_buffers() {
        let start = test_start();
        let mut link = Link::new(LinkConfig::perfect(), 15);
        let mut buf = Vec::new();
        for i in 0..1000u32 {
            link.handle_input(start, &i.to_be_bytes());
            buf.clear();
            assert_eq!(link.poll_transmit(start, &mut buf), Some(4));
            assert_eq!(link.free.len(), 1, "one buffer cycles through the link");
        }
    }

    #[test]
    fn merge_adds_every_counter() {
        let a = LinkStats {
            sent: 1,
            delivered: 2,
            lost: 3,
            duplicated: 4,
            corrupted: 5,
            reordered: 6,
            queue_dropped: 7,
            bytes_in: 8,
            bytes_out: 9,
        };
        let mut total = LinkStats::default();
        total.merge(&a);
        assert_eq!(total, a);
        total.merge(&a);
        assert_eq!(
            total,
            LinkStats {
                sent: 2,
                delivered: 4,
                lost: 6,
                duplicated: 8,
                corrupted: 10,
                reordered: 12,
                queue_dropped: 14,
                bytes_in: 16,
                bytes_out: 18,
            }
        );
        let mut full = LinkStats {
            sent: u64::MAX,
            ..LinkStats::default()
        };
        full.merge(&a);
        assert_eq!(full.sent, u64::MAX, "saturates");
    }
}
