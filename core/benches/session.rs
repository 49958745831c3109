//! Session-layer throughput: every kcp-go cipher and FEC 10/3, for comparison with kcp-go
//! 5.6.1's own Go benchmarks (`tests/go/sessionbench`; `scripts/bench-session.sh` runs both
//! and prints the ratios).
//!
//! `cargo bench -p tether-core --bench session`
//!
//! - `crypt/<kcptun name>`: encrypt then decrypt one 1400-byte packet, in place; throughput
//!   2800 bytes per iteration, like kcp-go's `benchCrypt` (`SetBytes(len*2)`). Keyed with
//!   kcptun's default key, sliced per cipher (kcp-go-session.md §3.1).
//! - `fec/encode`: [`FecEncoder`] 10/3, offset 0 (no crypto header), one 1400-byte datagram
//!   (8 bytes of FEC header space, then payload) per iteration; parity is emitted every
//!   10th. Throughput 1400 bytes per iteration, like kcp-go's `BenchmarkFECEncode`.
//! - `fec/decode`: [`FecDecoder`] 10/3 fed kcp-go's `BenchmarkFECDecode` stream: iteration
//!   `i` is shard `i` (data if `i % 13 < 10`, else parity) unless a 1-in-13 random loss drops
//!   it. Throughput 1400 bytes per iteration (dropped ones included, as in kcp-go).
//!
//! Unlike kcp-go's loops, datagram buffers are reused rather than allocated per iteration:
//! tether's API takes borrowed slices, so that is what a runtime does.
// No clock of ours here (criterion times the loops), so no clippy::disallowed_methods allow.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tether_core::session::crypt::{CipherKind, PacketCrypt};
use tether_core::session::fec::{FecDecoder, FecEncoder, TYPE_DATA, TYPE_PARITY};
use tether_core::session::key::{kcptun_key, KCPTUN_DEFAULT_KEY};

/// Packet size for every path.
const PKT: usize = 1400;
/// FEC group shape.
const DATA: usize = 10;
const PARITY: usize = 3;

fn crypt(c: &mut Criterion) {
    let pass = kcptun_key(KCPTUN_DEFAULT_KEY);
    let mut g = c.benchmark_group("crypt");
    g.sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1));
    g.throughput(Throughput::Bytes(2 * PKT as u64));
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    for kind in CipherKind::ALL {
        let crypt = PacketCrypt::new(kind, &pass);
        let mut buf = vec![0u8; PKT];
        rng.fill_bytes(&mut buf);
        g.bench_function(BenchmarkId::from_parameter(kind.name()), |b| {
            b.iter(|| {
                crypt.encrypt(black_box(&mut buf));
                crypt.decrypt(black_box(&mut buf));
            })
        });
    }
    g.finish();
}

fn fec(c: &mut Criterion) {
    let mut g = c.benchmark_group("fec");
    g.sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(2));
    g.throughput(Throughput::Bytes(PKT as u64));

    let mut enc = FecEncoder::new(DATA, PARITY, 0).expect("10/3 is valid");
    let mut pkt = vec![0u8; PKT];
    g.bench_function("encode", |b| {
        b.iter(|| {
            let mut parity = 0usize;
            enc.encode(black_box(&mut pkt), |p| parity += black_box(p).len())
                .expect("1400-byte datagram");
            parity
        })
    });

    let mut dec = FecDecoder::new(DATA, PARITY).expect("10/3 is valid");
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let mut shard = vec![0u8; PKT];
    let mut i: u32 = 0;
    g.bench_function("decode", |b| {
        b.iter(|| {
            let seq = i;
            i = i.wrapping_add(1);
            if rng.next_u64() % (DATA + PARITY) as u64 == 0 {
                return 0; // random loss, as kcp-go's BenchmarkFECDecode
            }
            let kind = if seq as usize % (DATA + PARITY) >= DATA {
                TYPE_PARITY
            } else {
                TYPE_DATA
            };
            shard[..4].copy_from_slice(&seq.to_le_bytes());
            shard[4..6].copy_from_slice(&kind.to_le_bytes());
            dec.decode(0, black_box(&shard))
                .map(|r| r.len())
                .unwrap_or(0)
        })
    });
    g.finish();
}

criterion_group!(benches, crypt, fec);
criterion_main!(benches);
