//! A toy TCP-style protocol over the byte pipe: length-prefixed messages echoed back, over
//! random chunking, delay, a rate limit with back-pressure and a broken connection that the
//! toy survives by sending again what was not echoed.
use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::driver::{Machine, Transmit, Transport};
use crate::rng::{seeded, RngCore};
use crate::sim::{test_start, Pair, PipeConfig, SeedGuard};

/// Largest chunk the toy hands out per `poll_transmit`.
const TRANSMIT_BYTES: usize = 1000;

/// What the toy reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EchoEvent {
    Disconnected(Instant),
    Reconnected(Instant),
}

/// The client's side: messages to send and what came back.
struct Client {
    messages: Vec<Vec<u8>>,
    /// Messages the timer released so far.
    released: usize,
    gap: Duration,
    next: Option<Instant>,
    echoed: Vec<Vec<u8>>,
}

/// Length-prefixed (u16, big endian) messages over a byte stream. The server echoes every
/// message; the client releases one message per `gap` and, after a reconnect, sends again
/// every released message not yet echoed (the echoes come back in order, so that is the
/// tail from `echoed.len()`).
struct Echo {
    client: Option<Client>,
    out: VecDeque<u8>,
    inbuf: Vec<u8>,
    connected: bool,
    events: VecDeque<EchoEvent>,
}

impl Echo {
    fn server() -> Self {
        Echo {
            client: None,
            out: VecDeque::new(),
            inbuf: Vec::new(),
            connected: true,
            events: VecDeque::new(),
        }
    }

    /// A client of `count` messages of 1..=3000 seeded bytes, one every `gap` from `start`.
    fn client(start: Instant, count: usize, gap: Duration, seed: u64) -> Self {
        let mut rng = seeded(seed);
        let messages = (0..count)
            .map(|_| {
                let mut m = vec![0; 1 + (rng.next_u32() % 3000) as usize];
                rng.fill_bytes(&mut m);
                m
            })
            .collect();
        Echo {
            client: Some(Client {
                messages,
                released: 0,
                gap,
                next: Some(start),
                echoed: Vec::new(),
            }),
            ..Echo::server()
        }
    }

    fn queue(&mut self, message: &[u8]) {
        let len = u16::try_from(message.len()).expect("toy messages fit a u16");
        self.out.extend(len.to_be_bytes());
        self.out.extend(message);
    }

    fn echoed(&self) -> &[Vec<u8>] {
        self.client.as_ref().map_or(&[], |c| &c.echoed)
    }

    /// Takes every whole message off the front of `inbuf`.
    fn parse(&mut self) {
        let mut at = 0;
        while let Some(&[hi, lo]) = self.inbuf.get(at..at + 2) {
            let len = usize::from(u16::from_be_bytes([hi, lo]));
            let Some(message) = self.inbuf.get(at + 2..at + 2 + len) else {
                break;
            };
            let message = message.to_vec();
            at += 2 + len;
            match &mut self.client {
                Some(c) => c.echoed.push(message),
                None => self.queue(&message),
            }
        }
        self.inbuf.drain(..at);
    }
}

impl Machine for Echo {
    type Event = EchoEvent;
    type InputError = &'static str;

    fn handle_input(&mut self, _now: Instant, data: &[u8]) -> Result<(), &'static str> {
        if data.is_empty() {
            return Err("a byte stream never delivers empty chunks");
        }
        self.inbuf.extend_from_slice(data);
        self.parse();
        Ok(())
    }

    fn poll_transmit(&mut self, _now: Instant, buf: &mut Vec<u8>) -> Option<Transmit> {
        if !self.connected || self.out.is_empty() {
            return None;
        }
        let n = self.out.len().min(TRANSMIT_BYTES);
        buf.extend(self.out.drain(..n));
        Some(Transmit { len: n })
    }

    fn has_transmit(&self) -> bool {
        self.connected && !self.out.is_empty()
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.client.as_ref().and_then(|c| c.next)
    }

    fn handle_timeout(&mut self, now: Instant) {
        let Some(c) = &mut self.client else { return };
        let Some(due) = c.next.filter(|&t| t <= now) else {
            return;
        };
        let message = c.messages[c.released].clone();
        c.released += 1;
        c.next = (c.released < c.messages.len()).then(|| due + c.gap);
        if self.connected {
            self.queue(&message);
        }
    }

    fn poll_event(&mut self) -> Option<EchoEvent> {
        self.events.pop_front()
    }
}

impl Transport for Echo {
    fn handle_disconnect(&mut self, now: Instant) {
        self.connected = false;
        // What was queued for the old connection, and a half-read message, are gone with it.
        self.out.clear();
        self.inbuf.clear();
        self.events.push_back(EchoEvent::Disconnected(now));
    }

    fn handle_reconnect(&mut self, now: Instant) {
        self.connected = true;
        self.events.push_back(EchoEvent::Reconnected(now));
        let Some(c) = &self.client else { return };
        let resend: Vec<Vec<u8>> = c.messages[c.echoed.len()..c.released].to_vec();
        for m in &resend {
            self.queue(m);
        }
    }
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// 2 Mbit/s, 20 ms one way, an 8 KiB buffer, chunks of 1..=113 bytes.
fn tcp_like() -> PipeConfig {
    PipeConfig::perfect()
        .with_delay(ms(20))
        .with_rate(2_000_000)
        .with_buffer(8 * 1024)
        .with_max_chunk(113)
}

/// 200 messages, 5 ms apart, over [`tcp_like`], the connection down from 400 ms to 550 ms.
fn echo_run(seed: u64) -> Pair<Echo, Echo, crate::sim::Pipe> {
    let start = test_start();
    let client = Echo::client(start, 200, ms(5), seed);
    let mut pair = Pair::over_pipe(client, Echo::server(), start, tcp_like(), tcp_like(), seed);
    pair.script_outage(start + ms(400), ms(150));
    pair.drive();
    pair
}

#[test]
fn the_toy_survives_a_reconnect_with_every_byte_exact() {
    let guard = SeedGuard::new(crate::sim::seed_from_env(21));
    let pair = echo_run(guard.seed());
    let start = pair.now - pair.elapsed();
    let want = Echo::client(start, 200, ms(5), guard.seed());
    let want = &want.client.as_ref().unwrap().messages;
    assert_eq!(pair.a.echoed().len(), want.len());
    assert!(
        pair.a.echoed() == &want[..],
        "every echo exact and in order"
    );
    assert_eq!((pair.stats.disconnects, pair.stats.reconnects), (1, 1));
    let (down, up) = (start + ms(400), start + ms(550));
    let seen = vec![EchoEvent::Disconnected(down), EchoEvent::Reconnected(up)];
    assert_eq!(pair.events_a, seen);
    assert_eq!(pair.events_b, seen);
    let (ab, ba) = (pair.a_to_b.stats(), pair.b_to_a.stats());
    assert!(ab.lost + ba.lost > 0, "the outage cut bytes in transit");
    assert!(ab.refused > 0, "the writer met back-pressure: {ab:?}");
    assert!(ab.chunks > 600, "re-chunked: {ab:?}");
    assert!(pair.is_connected());
    assert_eq!(pair.next_deadline(), None, "idle at the end");
}

#[test]
fn pipe_runs_are_deterministic_per_seed() {
    let a = echo_run(5);
    let b = echo_run(5);
    assert_eq!(a.elapsed(), b.elapsed());
    assert_eq!(a.stats, b.stats);
    assert_eq!(a.a_to_b.stats(), b.a_to_b.stats());
    assert_ne!(echo_run(6).a_to_b.stats(), a.a_to_b.stats());
}

#[test]
fn on_call_disconnect_drops_held_output_and_a_reconnect_lets_bytes_flow() {
    let start = test_start();
    // A 1-byte buffer at 8 kbit/s: almost everything the client sends waits with the pair.
    let slow = PipeConfig::perfect().with_rate(8_000).with_buffer(1);
    let client = Echo::client(start, 1, ms(5), 3);
    let mut pair = Pair::over_pipe(client, Echo::server(), start, slow, tcp_like(), 3);
    pair.drive_for(ms(10));
    assert!(
        pair.a_to_b.stats().refused > 0,
        "held back by the full pipe"
    );
    pair.disconnect();
    pair.disconnect();
    assert!(!pair.is_connected());
    assert_eq!(pair.stats.disconnects, 1, "a second disconnect is a no-op");
    pair.drive_for(ms(100));
    assert!(
        pair.a.echoed().is_empty(),
        "nothing crosses a broken connection"
    );
    assert_eq!(pair.a_to_b.in_flight(), 0);
    pair.a_to_b.set_config(tcp_like());
    pair.reconnect();
    pair.drive();
    assert_eq!(pair.a.echoed().len(), 1, "sent again on the new connection");
    assert_eq!(pair.events_b.len(), 2, "the server heard both");
}
