//! The bulk data path of a `tether cat` transfer in process, without sockets or threads:
//! what the sender's and the receiver's session code costs per byte in user space (issue 15
//! item 8). The kernel's copies and the scheduler are left out, so a change to the session,
//! FEC or KCP code shows here even when an end-to-end run (`scripts/cat-throughput.sh`)
//! cannot tell it from noise.
//!
//! `cargo bench -p tether-core --features sim --bench bulk`
//!
//! One 8 MiB transfer (`tether cat`'s settings: fast3, windows 8192, MTU 1350, stream mode,
//! FEC 10/3, `--crypt none`) between a client [`Session`] and a [`Listener`] is recorded once,
//! step by step: the client writes 64 KiB chunks while it accepts them and sends, the
//! listener takes the datagrams, the reader drains every chunk, the listener's ACKs go back;
//! a step that moves nothing advances the clock to the next deadline. Each side is then
//! replayed alone against the other side's recorded datagrams, making the same calls in the
//! same order (the machines are deterministic, so the replay is the recorded transfer):
//!
//! - `bulk/send`: the client's writes, flushes, FEC encoding and sealing, fed the ACKs;
//! - `bulk/receive`: the listener's demux, CRC check, FEC decoding, KCP input and the
//!   reader's chunks, fed the client's datagrams (each copied into a receive buffer first,
//!   as a socket would, and opened in place).
//!
//! Throughput is the 8 MiB of payload per replay.
// The bench is a driver, like a runtime: it owns the clock.
#![allow(clippy::disallowed_methods)]

use std::hint::black_box;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use tether_core::driver::Machine;
use tether_core::kcp::KcpConfig;
use tether_core::rng::seeded;
use tether_core::session::listener::{Listener, ListenerConfig};
use tether_core::session::{Session, SessionConfig};

const BYTES: usize = 8 << 20;
const CHUNK: usize = 64 * 1024;

/// The configuration, derived once (kcptun's key derivation is PBKDF2 with 4096 rounds:
/// deriving it per replay would be a sixth of what is measured).
fn cfg() -> &'static SessionConfig {
    static CFG: std::sync::OnceLock<SessionConfig> = std::sync::OnceLock::new();
    CFG.get_or_init(derive_cfg)
}

fn derive_cfg() -> SessionConfig {
    let kcp = KcpConfig::fast3()
        .with_windows(8192, 8192)
        .with_mtu(1350)
        .with_stream(true);
    SessionConfig::kcptun(kcp, "none", "it's a secrect", 10, 3)
}

fn client_addr() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 40000))
}

/// One step of the recorded transfer.
#[derive(Default)]
struct Step {
    /// Clock of the step.
    now: Option<Instant>,
    /// The step began by advancing the clock to `now` (timers fire).
    tick: bool,
    /// Client → listener datagrams.
    up: Vec<Vec<u8>>,
    /// Listener → client datagrams.
    down: Vec<Vec<u8>>,
}

/// The client side of a step: writes while accepted, then its datagrams.
fn client_sends(c: &mut Session, now: Instant, data: &Bytes, written: &mut usize) -> Vec<Vec<u8>> {
    while *written < data.len() {
        let end = (*written + CHUNK).min(data.len());
        match c.write_chunk(data.slice(*written..end)) {
            Ok(n) if n > 0 => *written += n,
            _ => break,
        }
    }
    let mut out = Vec::new();
    let mut buf = Vec::new();
    while c.poll_transmit(now, &mut buf).is_some() {
        out.push(std::mem::take(&mut buf));
    }
    out
}

/// The listener side of a step after its input: accept, drain the reader, the ACKs.
fn listener_answers(l: &mut Listener, now: Instant, got: &mut usize) -> Vec<Vec<u8>> {
    while l.accept().is_some() {}
    while let Some(ev) = l.poll_event() {
        let _ = black_box(ev);
    }
    for id in l.ids().collect::<Vec<_>>() {
        if let Some(s) = l.session_mut(id) {
            while let Ok(chunk) = s.read_chunk(usize::MAX) {
                *got += chunk.len();
                black_box(chunk);
            }
        }
    }
    let mut out = Vec::new();
    let mut buf = Vec::new();
    while l.poll_transmit(now, &mut buf).is_some() {
        out.push(std::mem::take(&mut buf));
    }
    out
}

fn new_client(t0: Instant) -> Session {
    Session::dial(cfg(), t0, Box::new(seeded(1)))
}

fn new_listener() -> Listener {
    Listener::new(ListenerConfig::new(cfg().clone()), Box::new(seeded(2)))
}

fn advance(now: Instant, c: &Session, l: &Listener) -> Option<Instant> {
    c.poll_timeout()
        .into_iter()
        .chain(l.poll_timeout())
        .min()
        .map(|t| t.max(now))
}

/// Runs the transfer once, both sides together, and records every step.
fn record(t0: Instant, data: &Bytes) -> Vec<Step> {
    let (mut c, mut l) = (new_client(t0), new_listener());
    let (mut now, mut written, mut got) = (t0, 0, 0);
    let mut steps = Vec::new();
    let mut tick = false;
    while got < data.len() {
        let up = client_sends(&mut c, now, data, &mut written);
        for d in &up {
            let mut rx = d.clone();
            let _ = l.handle_datagram_mut(now, client_addr(), &mut rx);
        }
        let down = listener_answers(&mut l, now, &mut got);
        for d in &down {
            let _ = c.handle_input(now, d);
        }
        let moved = !up.is_empty() || !down.is_empty();
        steps.push(Step {
            now: Some(now),
            tick,
            up,
            down,
        });
        tick = false;
        if !moved {
            now = advance(now, &c, &l).expect("a stalled transfer has a deadline");
            c.handle_timeout(now);
            l.handle_timeout(now);
            tick = true;
        }
        assert!(now < t0 + Duration::from_secs(60), "transfer stalled");
    }
    steps
}

/// The client alone, fed the recorded ACKs.
fn replay_send(t0: Instant, data: &Bytes, steps: &[Step]) -> usize {
    let mut c = new_client(t0);
    let mut written = 0;
    let mut sent = 0;
    for s in steps {
        let now = s.now.unwrap_or(t0);
        if s.tick {
            c.handle_timeout(now);
        }
        sent += client_sends(&mut c, now, data, &mut written).len();
        for d in &s.down {
            let _ = c.handle_input(now, d);
        }
    }
    sent
}

/// The listener alone, fed the recorded client datagrams.
fn replay_receive(steps: &[Step], rx: &mut Vec<u8>) -> usize {
    let mut l = new_listener();
    let mut got = 0;
    for s in steps {
        let now = s.now.expect("recorded");
        if s.tick {
            l.handle_timeout(now);
        }
        for d in &s.up {
            rx.clear();
            rx.extend_from_slice(d);
            let _ = l.handle_datagram_mut(now, client_addr(), rx);
        }
        black_box(listener_answers(&mut l, now, &mut got));
    }
    got
}

fn bulk(c: &mut Criterion) {
    let t0 = Instant::now();
    let data = Bytes::from((0..BYTES).map(|i| (i * 7 % 251) as u8).collect::<Vec<u8>>());
    let steps = record(t0, &data);
    let mut g = c.benchmark_group("bulk");
    g.throughput(Throughput::Bytes(BYTES as u64));
    g.sample_size(20);
    g.bench_function("send", |b| {
        b.iter(|| black_box(replay_send(t0, &data, &steps)));
    });
    let mut rx = Vec::with_capacity(2048);
    g.bench_function("receive", |b| {
        b.iter_batched(
            || (),
            |()| assert_eq!(replay_receive(&steps, &mut rx), BYTES),
            BatchSize::PerIteration,
        );
    });
    g.finish();
}

criterion_group!(benches, bulk);
criterion_main!(benches);
