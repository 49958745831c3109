//! KCP throughput and idle cost, in memory (issue: foundation "Measure").
//!
//! `cargo bench -p tether-core --features sim --bench kcp`
//!
//! - `lossless/64MiB`: two KCP peers joined back to back (no link model), fast3, windows 1024,
//!   MTU 1400, stream mode; MB/s of payload on one core.
//! - `loss5/64MiB`: the same through the simulator at 5 % loss each way, 10 ms one-way delay.
//! - `idle/100k`: 100 000 established, idle sessions: what it costs to ask each for its
//!   deadline (all `None`) — the per-tick work an event loop does for idle sessions.
// The bench is a driver, like a runtime: it owns the clock.
#![allow(clippy::disallowed_methods)]

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use tether_core::driver::Machine;
use tether_core::kcp::{Kcp, KcpConfig};
use tether_core::sim::transfer::{run_transfer, TransferConfig};
use tether_core::sim::LinkConfig;

const BYTES: usize = 64 << 20;

fn cfg() -> KcpConfig {
    KcpConfig::fast3()
        .with_windows(1024, 1024)
        .with_mtu(1400)
        .with_stream(true)
}

/// Moves `total` bytes from a to b with no link model: every datagram is delivered at once.
fn back_to_back(total: usize) -> usize {
    let start = Instant::now();
    let mut now = start;
    let mut a = Kcp::new(1, cfg(), start);
    let mut b = Kcp::new(1, cfg(), start);
    let chunk = vec![0x5a; 16 * 1024];
    let mut rbuf = vec![0; 64 * 1024];
    let mut buf = Vec::with_capacity(2048);
    let (mut sent, mut got) = (0, 0);
    while got < total {
        while sent < total && a.can_write() {
            let n = chunk.len().min(total - sent);
            sent += a.write(&chunk[..n]).unwrap_or(0);
        }
        let mut moved = false;
        while a.poll_transmit(now, &mut buf).is_some() {
            let _ = b.handle_input(now, &buf);
            buf.clear();
            moved = true;
        }
        while let Ok(n) = b.recv_stream(&mut rbuf) {
            got += n;
        }
        while b.poll_transmit(now, &mut buf).is_some() {
            let _ = a.handle_input(now, &buf);
            buf.clear();
            moved = true;
        }
        if !moved {
            // Nothing in flight at this instant: jump to the next deadline (ACK timer).
            let t = [a.poll_timeout(), b.poll_timeout()]
                .into_iter()
                .flatten()
                .min();
            now = t.unwrap_or(now + Duration::from_millis(1)).max(now);
            a.handle_timeout(now);
            b.handle_timeout(now);
        }
    }
    got
}

fn throughput(c: &mut Criterion) {
    let mut g = c.benchmark_group("kcp");
    g.sample_size(10).measurement_time(Duration::from_secs(20));
    g.throughput(Throughput::Bytes(BYTES as u64));
    g.bench_function(BenchmarkId::new("lossless", "64MiB"), |bch| {
        bch.iter(|| back_to_back(BYTES))
    });
    let lossy = TransferConfig {
        bytes: BYTES as u64,
        kcp: cfg(),
        link_ab: LinkConfig::perfect()
            .with_delay(Duration::from_millis(10))
            .with_loss(0.05),
        link_ba: LinkConfig::perfect()
            .with_delay(Duration::from_millis(10))
            .with_loss(0.05),
        seed: 5,
        time_limit: Duration::from_secs(3600),
    };
    g.bench_function(BenchmarkId::new("loss5", "64MiB"), |bch| {
        bch.iter(|| assert!(run_transfer(&lossy, Instant::now()).completed))
    });
    g.finish();
}

fn idle(c: &mut Criterion) {
    let start = Instant::now();
    let mut sessions: Vec<Kcp> = (0..100_000)
        .map(|i| Kcp::new(i, KcpConfig::fast3(), start))
        .collect();
    // Establish each: one message each way, then let everything settle.
    let mut buf = Vec::new();
    for s in sessions.iter_mut() {
        s.write(b"hello").unwrap();
        while s.poll_transmit(start, &mut buf).is_some() {}
        buf.clear();
        let mut ack = Vec::new();
        let conv = s.conv();
        ack.extend_from_slice(&conv.to_le_bytes());
        ack.extend_from_slice(&[82, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0]);
        let _ = s.handle_input(start, &ack);
        while s.poll_transmit(start, &mut buf).is_some() {}
        buf.clear();
    }
    assert!(
        sessions.iter().all(|s| s.poll_timeout().is_none()),
        "established idle sessions must arm no timer"
    );
    let mut g = c.benchmark_group("idle");
    g.throughput(Throughput::Elements(sessions.len() as u64));
    g.bench_function("100k_sessions_deadline_scan", |bch| {
        bch.iter(|| {
            sessions
                .iter()
                .filter(|s| s.poll_timeout().is_some())
                .count()
        })
    });
    g.finish();
}

criterion_group!(benches, throughput, idle);
criterion_main!(benches);
