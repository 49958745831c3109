//! Two machines joined by a [`Medium`] in each direction, driven in virtual time.
//!
//! [`Pair::step`] follows the documented call order: drain both machines' output into their
//! outgoing media (while [`Machine::has_transmit`]), hand everything due at `now` to the
//! peer, drain events, and only when nothing moved at `now` jump the clock to the earliest
//! deadline anywhere. Time never advances while work is pending at the current instant, and
//! a machine's `handle_timeout` is only ever called at or after its own `poll_timeout`.
//!
//! The medium is a datagram [`Link`] by default ([`Pair::new`]) or a byte [`Pipe`]
//! ([`Pair::over_pipe`]). A pipe that is full pushes back: the pair holds what the machine
//! transmitted but the pipe did not take, and polls the machine again only once it is gone,
//! as a runtime does with a socket that would block. Over a [`Connection`] the pair can break
//! both directions at once and bring them back, on call ([`Pair::disconnect`],
//! [`Pair::reconnect`]) or at scripted instants ([`Pair::script_outage`]), telling both
//! machines through [`Transport`].
use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::driver::{Machine, Transport};
use crate::rng::{child_seed, seeded};

use super::link::{Link, LinkConfig};
use super::medium::{Connection, Medium};
use super::pipe::{Pipe, PipeConfig};

/// Default for [`Pair::max_steps`]: enough for hours of virtual KCP traffic.
pub const DEFAULT_MAX_STEPS: u64 = 50_000_000;

/// Default for [`Pair::max_steps_per_instant`].
pub const DEFAULT_MAX_STEPS_PER_INSTANT: u64 = 1_000_000;

/// Upper bound on datagrams one machine may emit in a single flush before the pair calls it
/// a livelock (a `poll_transmit` that never returns `None`).
const MAX_TRANSMITS_PER_FLUSH: u64 = 1 << 22;

/// Counters of a [`Pair`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PairStats {
    /// Datagrams (or stream chunks) `a` emitted, before the medium.
    pub datagrams_a_to_b: u64,
    /// Bytes `a` emitted.
    pub bytes_a_to_b: u64,
    /// Datagrams (or stream chunks) `b` emitted.
    pub datagrams_b_to_a: u64,
    /// Bytes `b` emitted.
    pub bytes_b_to_a: u64,
    /// Datagrams (or stream chunks) handed to `a.handle_input`.
    pub delivered_to_a: u64,
    /// Datagrams (or stream chunks) handed to `b.handle_input`.
    pub delivered_to_b: u64,
    /// `Err` verdicts from `a.handle_input` (counted, never fatal).
    pub input_errors_a: u64,
    /// `Err` verdicts from `b.handle_input`.
    pub input_errors_b: u64,
    /// Calls of `a.handle_timeout`.
    pub timeouts_a: u64,
    /// Calls of `b.handle_timeout`.
    pub timeouts_b: u64,
    /// Calls of [`Pair::step`] (including those made by the `drive*` methods).
    pub steps: u64,
    /// Times the connection broke ([`Pair::disconnect`]).
    pub disconnects: u64,
    /// Times a new connection came up ([`Pair::reconnect`]).
    pub reconnects: u64,
}

/// What one step did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Progress {
    /// Datagrams moved at the current instant.
    Moved,
    /// Time jumped to the next deadline (timers fired, or a link delivery became due).
    Advanced,
    /// Nothing pending anywhere.
    Idle,
    /// The next deadline lies beyond the caller's limit; the clock stopped at the limit.
    Limit,
}

/// Output a machine transmitted that its medium has not taken yet (a full pipe).
#[derive(Debug, Default)]
struct Held {
    bytes: Vec<u8>,
    from: usize,
}

impl Held {
    fn is_empty(&self) -> bool {
        self.from >= self.bytes.len()
    }

    /// Keeps `rest` (the held output is empty when this is called).
    fn hold(&mut self, rest: &[u8]) {
        self.bytes.clear();
        self.bytes.extend_from_slice(rest);
        self.from = 0;
    }

    /// Offers the held bytes to `medium` again; returns how many it took.
    fn offer<M: Medium>(&mut self, medium: &mut M, now: Instant) -> usize {
        let Some(rest) = self.bytes.get(self.from..).filter(|r| !r.is_empty()) else {
            return 0;
        };
        let n = medium.send(now, rest);
        self.from += n;
        if self.is_empty() {
            self.clear();
        }
        n
    }

    /// Forgets the held bytes (the connection they were written to broke).
    fn clear(&mut self) {
        self.bytes.clear();
        self.from = 0;
    }
}

/// An action of the pair's script (a disconnect or a reconnect) and when it runs.
struct Scripted<A: Machine, B: Machine, M: Medium> {
    at: Instant,
    action: fn(&mut Pair<A, B, M>),
}

/// Two machines `a` and `b`, a medium each way (a datagram [`Link`] unless said otherwise),
/// and a virtual clock.
///
/// Each [`Pair::step`] drains both machines' output into their media, delivers what is due
/// at `now`, and collects events; only when nothing moved does the clock jump to the earliest
/// deadline, firing the scripted actions and the timers due there (never earlier than a
/// machine asked for).
pub struct Pair<A: Machine, B: Machine, M: Medium = Link> {
    /// The first machine.
    pub a: A,
    /// The second machine.
    pub b: B,
    /// The current virtual time.
    pub now: Instant,
    /// The medium carrying `a`'s output to `b`.
    pub a_to_b: M,
    /// The medium carrying `b`'s output to `a`.
    pub b_to_a: M,
    /// Events `a` produced so far, in order.
    pub events_a: Vec<A::Event>,
    /// Events `b` produced so far, in order.
    pub events_b: Vec<B::Event>,
    /// Counters.
    pub stats: PairStats,
    /// Step budget of [`Pair::drive`], [`Pair::drive_until`] and [`Pair::drive_for`]; running
    /// out panics (printing the seed), which catches machines that never go idle.
    pub max_steps: u64,
    /// Steps allowed without the clock moving; more panics as a livelock (for example a
    /// machine whose `poll_timeout` stays at or before `now` after `handle_timeout`).
    pub max_steps_per_instant: u64,
    start: Instant,
    seed: u64,
    steps_at_instant: u64,
    buf: Vec<u8>,
    held_ab: Held,
    held_ba: Held,
    script: VecDeque<Scripted<A, B, M>>,
}

impl<A: Machine, B: Machine, M: Medium> std::fmt::Debug for Pair<A, B, M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Machines and events need not be Debug; the clock, seed and counters tell the story.
        f.debug_struct("Pair")
            .field("elapsed", &self.elapsed())
            .field("seed", &self.seed)
            .field("stats", &self.stats)
            .field("a_to_b", &self.a_to_b.stats())
            .field("b_to_a", &self.b_to_a.stats())
            .finish_non_exhaustive()
    }
}

impl<A: Machine, B: Machine> Pair<A, B, Link> {
    /// Joins `a` and `b` by datagram links at virtual time `start`; each link's randomness is
    /// a child of `seed`.
    pub fn new(
        a: A,
        b: B,
        start: Instant,
        link_ab: LinkConfig,
        link_ba: LinkConfig,
        seed: u64,
    ) -> Self {
        let mut rng = seeded(seed);
        let a_to_b = Link::new(link_ab, child_seed(&mut rng));
        let b_to_a = Link::new(link_ba, child_seed(&mut rng));
        Self::with_media(a, b, start, a_to_b, b_to_a, seed)
    }
}

impl<A: Machine, B: Machine> Pair<A, B, Pipe> {
    /// Joins `a` and `b` by a byte-stream connection (a [`Pipe`] each way) at virtual time
    /// `start`; each pipe's randomness is a child of `seed`.
    ///
    /// While a pipe is full the pair holds the machine's output and does not poll it, so the
    /// machine must keep its deadline a timer (driver contract): one whose `poll_timeout`
    /// stays at `now` while its output waits is reported as a livelock.
    pub fn over_pipe(
        a: A,
        b: B,
        start: Instant,
        pipe_ab: PipeConfig,
        pipe_ba: PipeConfig,
        seed: u64,
    ) -> Self {
        let mut rng = seeded(seed);
        let a_to_b = Pipe::new(pipe_ab, child_seed(&mut rng));
        let b_to_a = Pipe::new(pipe_ba, child_seed(&mut rng));
        Self::with_media(a, b, start, a_to_b, b_to_a, seed)
    }
}

impl<A: Machine, B: Machine, M: Medium> Pair<A, B, M> {
    /// Joins `a` and `b` by the given media at virtual time `start`; `seed` is the one the
    /// media were built from (printed when the run fails).
    pub fn with_media(a: A, b: B, start: Instant, a_to_b: M, b_to_a: M, seed: u64) -> Self {
        Self {
            a,
            b,
            now: start,
            a_to_b,
            b_to_a,
            events_a: Vec::new(),
            events_b: Vec::new(),
            stats: PairStats::default(),
            max_steps: DEFAULT_MAX_STEPS,
            max_steps_per_instant: DEFAULT_MAX_STEPS_PER_INSTANT,
            start,
            seed,
            steps_at_instant: 0,
            buf: Vec::new(),
            held_ab: Held::default(),
            held_ba: Held::default(),
            script: VecDeque::new(),
        }
    }

    /// The seed the media were derived from.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// Virtual time since `start`.
    pub fn elapsed(&self) -> Duration {
        self.now.saturating_duration_since(self.start)
    }

    /// The earliest deadline of either machine, medium or scripted action, if any.
    pub fn next_deadline(&self) -> Option<Instant> {
        [
            self.a.poll_timeout(),
            self.b.poll_timeout(),
            // A machine that takes no input now (its receive buffer is full) holds the
            // medium's deliveries back: they are not a deadline until it does.
            self.a_to_b.poll_timeout().filter(|_| self.b.wants_input()),
            self.b_to_a.poll_timeout().filter(|_| self.a.wants_input()),
            self.script.front().map(|s| s.at),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// One step: move datagrams at `now`, or if none moved, jump to the earliest deadline and
    /// fire the timers due there. Returns `false` when nothing is pending anywhere.
    pub fn step(&mut self) -> bool {
        self.step_within(None) != Progress::Idle
    }

    /// Steps until fully idle, panicking (with the seed) after [`Pair::max_steps`].
    pub fn drive(&mut self) {
        self.drive_bounded(self.max_steps);
    }

    /// Steps until fully idle, panicking (with the seed) after `max_steps` steps.
    pub fn drive_bounded(&mut self, max_steps: u64) {
        for _ in 0..max_steps {
            if !self.step() {
                return;
            }
        }
        self.livelock(&format!("still busy after {max_steps} steps"));
    }

    /// Steps until `pred` holds, everything is idle, or the next event lies beyond `deadline`
    /// (the clock then stops at `deadline`). Returns `pred`'s final verdict.
    pub fn drive_until(
        &mut self,
        deadline: Instant,
        mut pred: impl FnMut(&mut A, &mut B) -> bool,
    ) -> bool {
        for _ in 0..self.max_steps {
            if pred(&mut self.a, &mut self.b) {
                return true;
            }
            if matches!(
                self.step_within(Some(deadline)),
                Progress::Idle | Progress::Limit
            ) {
                return pred(&mut self.a, &mut self.b);
            }
        }
        self.livelock(&format!("drive_until: {} steps", self.max_steps));
    }

    /// Runs for `d` of virtual time; afterwards `now` is exactly `d` later, even if the pair
    /// went idle earlier.
    pub fn drive_for(&mut self, d: Duration) {
        let deadline = self.now.checked_add(d).unwrap_or(self.now);
        self.drive_until(deadline, |_, _| false);
        self.now = self.now.max(deadline);
    }

    /// The step itself; a `limit` keeps the clock from jumping past it.
    fn step_within(&mut self, limit: Option<Instant>) -> Progress {
        self.stats.steps += 1;
        self.count_instant_step();
        let moved = self.exchange();
        self.collect_events();
        if moved {
            return Progress::Moved;
        }
        let Some(next) = self.next_deadline() else {
            return Progress::Idle;
        };
        if let Some(limit) = limit.filter(|&l| next > l) {
            self.advance_to(limit);
            return Progress::Limit;
        }
        self.advance_to(next);
        self.run_script();
        self.fire_timers();
        self.collect_events();
        Progress::Advanced
    }

    /// Moves the clock forward (never back) and resets the livelock counter when it moves.
    fn advance_to(&mut self, t: Instant) {
        if t > self.now {
            self.now = t;
            self.steps_at_instant = 0;
        }
    }

    /// Panics when the clock has been stuck for too many steps.
    fn count_instant_step(&mut self) {
        self.steps_at_instant += 1;
        if self.steps_at_instant > self.max_steps_per_instant {
            let msg = format!(
                "{} steps without the clock moving",
                self.max_steps_per_instant
            );
            self.livelock(&msg);
        }
    }

    /// Flushes both machines into their media and delivers what is due; true if anything
    /// moved.
    fn exchange(&mut self) -> bool {
        let now = self.now;
        let seed = self.seed;
        let s = &mut self.stats;
        let sent_a = flush(
            &mut self.a,
            &mut self.a_to_b,
            &mut self.held_ab,
            now,
            &mut self.buf,
            seed,
        );
        s.datagrams_a_to_b += sent_a.transmits;
        s.bytes_a_to_b += sent_a.bytes;
        let sent_b = flush(
            &mut self.b,
            &mut self.b_to_a,
            &mut self.held_ba,
            now,
            &mut self.buf,
            seed,
        );
        s.datagrams_b_to_a += sent_b.transmits;
        s.bytes_b_to_a += sent_b.bytes;
        let to_b = deliver(&mut self.a_to_b, &mut self.b, now, &mut self.buf);
        s.delivered_to_b += to_b.0;
        s.input_errors_b += to_b.1;
        let to_a = deliver(&mut self.b_to_a, &mut self.a, now, &mut self.buf);
        s.delivered_to_a += to_a.0;
        s.input_errors_a += to_a.1;
        sent_a.moved() || sent_b.moved() || to_b.0 + to_a.0 > 0
    }

    /// Runs the scripted actions whose time has come, in order.
    fn run_script(&mut self) {
        while self.script.front().is_some_and(|s| s.at <= self.now) {
            if let Some(s) = self.script.pop_front() {
                (s.action)(self);
            }
        }
    }

    /// Schedules `action` at `at`, after any action already scheduled for the same instant.
    fn schedule(&mut self, at: Instant, action: fn(&mut Self)) {
        let i = self.script.partition_point(|s| s.at <= at);
        self.script.insert(i, Scripted { at, action });
    }

    /// Fires the timers of machines whose deadline has come; never earlier.
    fn fire_timers(&mut self) {
        let now = self.now;
        if self.a.poll_timeout().is_some_and(|t| t <= now) {
            self.a.handle_timeout(now);
            self.stats.timeouts_a += 1;
        }
        if self.b.poll_timeout().is_some_and(|t| t <= now) {
            self.b.handle_timeout(now);
            self.stats.timeouts_b += 1;
        }
    }

    /// Moves both machines' pending events into `events_a` / `events_b`.
    fn collect_events(&mut self) {
        while let Some(e) = self.a.poll_event() {
            self.events_a.push(e);
        }
        while let Some(e) = self.b.poll_event() {
            self.events_b.push(e);
        }
    }

    /// Reports a livelock with everything needed to reproduce it.
    fn livelock(&self, what: &str) -> ! {
        panic!(
            "tether sim livelock: {what} at t+{:?} (seed {seed}; rerun with TETHER_SIM_SEED={seed}); {:?}",
            self.elapsed(),
            self,
            seed = self.seed,
        )
    }
}

impl<A, B, M> Pair<A, B, M>
where
    A: Machine + Transport,
    B: Machine + Transport,
    M: Connection,
{
    /// Whether the connection is up in both directions.
    pub fn is_connected(&self) -> bool {
        self.a_to_b.is_connected() && self.b_to_a.is_connected()
    }

    /// Breaks the connection now: both directions lose what is in transit (and what the
    /// pair held for a full pipe), then both machines hear
    /// [`Transport::handle_disconnect`]. Does nothing while already down.
    pub fn disconnect(&mut self) {
        if !self.a_to_b.is_connected() && !self.b_to_a.is_connected() {
            return;
        }
        let now = self.now;
        self.a_to_b.disconnect(now);
        self.b_to_a.disconnect(now);
        self.held_ab.clear();
        self.held_ba.clear();
        self.stats.disconnects += 1;
        self.a.handle_disconnect(now);
        self.b.handle_disconnect(now);
        self.collect_events();
    }

    /// Brings a new connection up now, then both machines hear
    /// [`Transport::handle_reconnect`]. Does nothing while already up.
    pub fn reconnect(&mut self) {
        if self.is_connected() {
            return;
        }
        let now = self.now;
        self.a_to_b.reconnect(now);
        self.b_to_a.reconnect(now);
        self.stats.reconnects += 1;
        self.a.handle_reconnect(now);
        self.b.handle_reconnect(now);
        self.collect_events();
    }

    /// Scripts an outage: the connection breaks at `at` and a new one comes up `lasts`
    /// later ([`Pair::disconnect`], [`Pair::reconnect`], run at those virtual instants).
    pub fn script_outage(&mut self, at: Instant, lasts: Duration) {
        self.schedule(at, Self::disconnect);
        self.schedule(at.checked_add(lasts).unwrap_or(at), Self::reconnect);
    }
}

/// What one flush moved.
#[derive(Debug, Clone, Copy, Default)]
struct Flushed {
    /// Transmits polled from the machine.
    transmits: u64,
    /// Their bytes.
    bytes: u64,
    /// Held bytes the medium took this time.
    unheld: usize,
}

impl Flushed {
    fn moved(&self) -> bool {
        self.transmits > 0 || self.unheld > 0
    }
}

/// Drains `m`'s output into `medium` while it has some ([`Machine::has_transmit`]); what a
/// full medium does not take is held, and `m` is not polled again until it is gone.
fn flush<X: Machine, M: Medium>(
    m: &mut X,
    medium: &mut M,
    held: &mut Held,
    now: Instant,
    buf: &mut Vec<u8>,
    seed: u64,
) -> Flushed {
    let mut f = Flushed {
        unheld: held.offer(medium, now),
        ..Flushed::default()
    };
    if !held.is_empty() {
        return f;
    }
    while m.has_transmit() {
        buf.clear();
        let Some(t) = m.poll_transmit(now, buf) else {
            // The driver contract: drained means `has_transmit` is false, so a driver that
            // drains "while has_transmit" (a composed stack, a runtime) never spins.
            assert!(
                !m.has_transmit(),
                "has_transmit still true after poll_transmit returned None (seed {seed})"
            );
            break;
        };
        // Catch a machine that misreports what it appended, instead of forwarding garbage.
        assert_eq!(
            t.len,
            buf.len(),
            "poll_transmit's len must match the bytes it appended"
        );
        f.transmits += 1;
        f.bytes += buf.len() as u64;
        let taken = medium.send(now, buf);
        if let Some(rest) = buf.get(taken..).filter(|r| !r.is_empty()) {
            held.hold(rest);
            break;
        }
        assert!(
            f.transmits <= MAX_TRANSMITS_PER_FLUSH,
            "tether sim livelock: has_transmit never went false (seed {seed}; rerun with TETHER_SIM_SEED={seed})"
        );
    }
    f
}

/// Hands everything due on `medium` to `m`; returns (deliveries, input errors).
fn deliver<X: Machine, M: Medium>(
    medium: &mut M,
    m: &mut X,
    now: Instant,
    buf: &mut Vec<u8>,
) -> (u64, u64) {
    let (mut count, mut errors) = (0u64, 0u64);
    // A byte-stream machine with a full receive buffer says so (`wants_input`): what the
    // medium holds waits there, and the medium's own bound pushes back on the sender.
    while m.wants_input() {
        buf.clear();
        if medium.poll_deliver(now, buf).is_none() {
            return (count, errors);
        }
        count += 1;
        // An Err is a verdict on that one datagram (DESIGN §3): count it and carry on.
        errors += u64::from(m.handle_input(now, buf).is_err());
    }
    (count, errors)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::driver::Transmit;
    use crate::sim::test_start;
    use std::collections::VecDeque;

    const PING: u8 = 0;
    const PONG: u8 = 1;

    /// What the toy reports.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum ToyEvent {
        Pinged(u32),
        Pong(u32),
    }

    /// A toy echo machine: sends `count` pings `interval` apart from `first`, answers every
    /// ping with a pong, and reports both. It panics if its timer fires early, which is
    /// stricter than the trait's contract and checks that `Pair` never does that.
    struct Toy {
        interval: Duration,
        next: Option<Instant>,
        sent: u32,
        count: u32,
        outbox: VecDeque<[u8; 5]>,
        events: VecDeque<ToyEvent>,
    }

    impl Toy {
        fn new(first: Instant, interval: Duration, count: u32) -> Self {
            Self {
                interval,
                next: (count > 0).then_some(first),
                sent: 0,
                count,
                outbox: VecDeque::new(),
                events: VecDeque::new(),
            }
        }

        fn echo(start: Instant) -> Self {
            Self::new(start, Duration::ZERO, 0)
        }
    }

    /// The indices of the pongs among `events`.
    fn pongs(events: &[ToyEvent]) -> Vec<u32> {
        events
            .iter()
            .filter_map(|e| match e {
                ToyEvent::Pong(i) => Some(*i),
                ToyEvent::Pinged(_) => None,
            })
            .collect()
    }

    fn frame(kind: u8, i: u32) -> [u8; 5] {
        let [b0, b1, b2, b3] = i.to_be_bytes();
        [kind, b0, b1, b2, b3]
    }

    impl Machine for Toy {
        type Event = ToyEvent;
        type InputError = &'static str;

        fn handle_input(&mut self, _now: Instant, data: &[u8]) -> Result<(), &'static str> {
            let [kind, b0, b1, b2, b3] = <[u8; 5]>::try_from(data).map_err(|_| "bad length")?;
            let i = u32::from_be_bytes([b0, b1, b2, b3]);
            match kind {
                PING => {
                    self.events.push_back(ToyEvent::Pinged(i));
                    self.outbox.push_back(frame(PONG, i));
                }
                PONG => self.events.push_back(ToyEvent::Pong(i)),
                _ => return Err("unknown kind"),
            }
            Ok(())
        }

        fn poll_transmit(&mut self, _now: Instant, buf: &mut Vec<u8>) -> Option<Transmit> {
            let f = self.outbox.pop_front()?;
            buf.extend_from_slice(&f);
            Some(Transmit { len: f.len() })
        }

        fn has_transmit(&self) -> bool {
            !self.outbox.is_empty()
        }

        fn poll_timeout(&self) -> Option<Instant> {
            self.next
        }

        fn handle_timeout(&mut self, now: Instant) {
            let due = self.next.expect("handle_timeout without a deadline");
            assert!(now >= due, "handle_timeout called before the deadline");
            self.outbox.push_back(frame(PING, self.sent));
            self.sent += 1;
            self.next = (self.sent < self.count).then(|| due + self.interval);
        }

        fn poll_event(&mut self) -> Option<ToyEvent> {
            self.events.pop_front()
        }
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn delayed(d: Duration) -> LinkConfig {
        LinkConfig::perfect().with_delay(d)
    }

    fn pinger_pair(start: Instant, count: u32, link: LinkConfig, seed: u64) -> Pair<Toy, Toy> {
        let a = Toy::new(start, ms(100), count);
        Pair::new(a, Toy::echo(start), start, link.clone(), link, seed)
    }

    #[test]
    fn pings_are_echoed_over_a_perfect_link() {
        let start = test_start();
        let mut pair = pinger_pair(start, 10, delayed(ms(10)), 1);
        pair.drive();
        assert_eq!(pongs(&pair.events_a), (0..10).collect::<Vec<_>>());
        assert_eq!(pair.events_b.len(), 10);
        // The last ping leaves at 900 ms and its pong is back 20 ms later.
        assert_eq!(pair.now, start + ms(920));
        let s = pair.stats;
        assert_eq!((s.datagrams_a_to_b, s.bytes_a_to_b), (10, 50));
        assert_eq!((s.datagrams_b_to_a, s.bytes_b_to_a), (10, 50));
        assert_eq!((s.delivered_to_a, s.delivered_to_b), (10, 10));
        assert_eq!((s.input_errors_a, s.input_errors_b), (0, 0));
        assert_eq!((s.timeouts_a, s.timeouts_b), (10, 0));
        assert!(!pair.step(), "idle");
        assert_eq!(pair.next_deadline(), None);
    }

    #[test]
    fn idle_pair_does_not_step() {
        let start = test_start();
        let mut pair = Pair::new(
            Toy::echo(start),
            Toy::echo(start),
            start,
            LinkConfig::perfect(),
            LinkConfig::perfect(),
            2,
        );
        assert!(!pair.step());
        assert_eq!(pair.now, start);
    }

    #[test]
    fn drive_until_stops_when_the_predicate_holds() {
        let start = test_start();
        let mut pair = pinger_pair(start, 10, delayed(ms(10)), 3);
        let got = pair.drive_until(start + Duration::from_secs(60), |a, _| a.sent >= 3);
        assert!(got);
        assert_eq!(pair.now, start + ms(200), "the third ping fires at 200 ms");
    }

    #[test]
    fn drive_until_gives_up_at_the_deadline() {
        let start = test_start();
        let mut pair = pinger_pair(start, 10, delayed(ms(10)), 4);
        assert!(!pair.drive_until(start + ms(50), |a, _| a.sent >= 3));
        assert_eq!(pair.now, start + ms(50), "the clock stops at the deadline");
    }

    #[test]
    fn drive_for_advances_exactly() {
        let start = test_start();
        let mut pair = pinger_pair(start, 10, delayed(ms(10)), 5);
        pair.drive_for(ms(250));
        assert_eq!(pair.now, start + ms(250));
        assert_eq!(pongs(&pair.events_a), vec![0, 1, 2]);
        pair.drive_for(Duration::from_secs(10));
        assert_eq!(
            pair.now,
            start + ms(10_250),
            "time moves even after going idle"
        );
        assert_eq!(pair.events_a.len(), 10);
    }

    #[test]
    fn timers_interleave_and_never_fire_early() {
        let start = test_start();
        // Both sides ping, on different grids; Toy panics if a timer fires early.
        let a = Toy::new(start, ms(7), 100);
        let b = Toy::new(start + ms(3), ms(11), 100);
        let link = delayed(ms(2)).with_jitter(ms(1));
        let mut pair = Pair::new(a, b, start, link.clone(), link, 6);
        pair.drive();
        assert_eq!(pair.stats.timeouts_a, 100);
        assert_eq!(pair.stats.timeouts_b, 100);
        assert_eq!(pongs(&pair.events_a).len(), 100);
        assert_eq!(pongs(&pair.events_b).len(), 100);
    }

    /// A machine that sends one malformed datagram, then one ping.
    struct Rude(Toy, bool);

    impl Machine for Rude {
        type Event = ToyEvent;
        type InputError = &'static str;

        fn handle_input(&mut self, now: Instant, data: &[u8]) -> Result<(), &'static str> {
            self.0.handle_input(now, data)
        }

        fn poll_transmit(&mut self, now: Instant, buf: &mut Vec<u8>) -> Option<Transmit> {
            if std::mem::take(&mut self.1) {
                buf.extend_from_slice(b"??");
                return Some(Transmit { len: 2 });
            }
            self.0.poll_transmit(now, buf)
        }

        fn has_transmit(&self) -> bool {
            self.1 || self.0.has_transmit()
        }

        fn poll_timeout(&self) -> Option<Instant> {
            self.0.poll_timeout()
        }

        fn handle_timeout(&mut self, now: Instant) {
            self.0.handle_timeout(now);
        }

        fn poll_event(&mut self) -> Option<ToyEvent> {
            self.0.poll_event()
        }
    }

    #[test]
    fn input_errors_are_counted_not_fatal() {
        let start = test_start();
        let a = Rude(Toy::new(start, ms(100), 1), true);
        let link = LinkConfig::perfect();
        let mut pair = Pair::new(a, Toy::echo(start), start, link.clone(), link, 7);
        pair.drive();
        assert_eq!(pair.stats.input_errors_b, 1);
        assert_eq!(pair.stats.input_errors_a, 0);
        assert_eq!(pair.events_a, vec![ToyEvent::Pong(0)]);
    }

    fn lossy_run(seed: u64) -> (Vec<ToyEvent>, Duration, PairStats) {
        let start = test_start();
        let mut pair = pinger_pair(start, 1000, LinkConfig::kcptun_10pct_loss(), seed);
        pair.drive();
        let elapsed = pair.elapsed();
        (pair.events_a, elapsed, pair.stats)
    }

    #[test]
    fn lossy_runs_are_deterministic_per_seed() {
        let (events, _, stats) = lossy_run(8);
        // Both directions lose 10 %: about 81 % of pings come back.
        assert!((760..=860).contains(&events.len()), "{}", events.len());
        assert_eq!(stats.datagrams_a_to_b, 1000);
        let again = lossy_run(8);
        assert_eq!(again.0, events);
        assert_eq!(again.1, lossy_run(8).1);
        assert_eq!(again.2, stats);
        assert_ne!(lossy_run(9).0, events);
    }

    #[test]
    fn an_hour_of_virtual_time_is_cheap() {
        let start = test_start();
        let a = Toy::new(start, ms(10), 360_000);
        let link = LinkConfig::cellular();
        let mut pair = Pair::new(a, Toy::echo(start), start, link.clone(), link, 10);
        pair.drive();
        assert!(pair.elapsed() >= Duration::from_secs(3600));
        assert!(pair.events_a.len() > 340_000);
    }

    /// A machine whose deadline never moves: a contract violation the pair must catch.
    struct Stuck(Instant);

    impl Machine for Stuck {
        type Event = ();
        type InputError = ();

        fn handle_input(&mut self, _now: Instant, _data: &[u8]) -> Result<(), ()> {
            Ok(())
        }

        fn poll_transmit(&mut self, _now: Instant, _buf: &mut Vec<u8>) -> Option<Transmit> {
            None
        }

        fn has_transmit(&self) -> bool {
            false
        }

        fn poll_timeout(&self) -> Option<Instant> {
            Some(self.0)
        }

        fn handle_timeout(&mut self, _now: Instant) {}

        fn poll_event(&mut self) -> Option<()> {
            None
        }
    }

    #[test]
    #[should_panic(expected = "TETHER_SIM_SEED=11")]
    fn livelock_panics_with_the_seed() {
        let start = test_start();
        let link = LinkConfig::perfect();
        let mut pair = Pair::new(
            Stuck(start),
            Toy::echo(start),
            start,
            link.clone(),
            link,
            11,
        );
        pair.max_steps_per_instant = 1000;
        pair.drive();
    }

    #[test]
    #[should_panic(expected = "still busy after 500 steps")]
    fn step_budget_catches_machines_that_never_idle() {
        let start = test_start();
        let mut pair = pinger_pair(start, u32::MAX, delayed(ms(1)), 12);
        pair.drive_bounded(500);
    }
}
