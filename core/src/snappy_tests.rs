//! The snappy framing: kcptun.md §7's golden bytes, round trips through the codec in
//! arbitrary chunkings, corruption verdicts, and a multiplexer running through the
//! transform over simulated TCP pipes.
use std::time::Duration;

use proptest::prelude::*;

use super::*;
use crate::driver::{Machine, Streams};
use crate::fuzzing::snappy::decode;
use crate::sim::toy_mux::{two_streams_over, ToyMux};
use crate::sim::{test_start, Pair, PipeConfig};
use crate::stack::{Stack, StackClose};
use crate::stream_link::{StreamLink, StreamLinkConfig};

fn unhex(s: &str) -> Vec<u8> {
    hex::decode(s.split_whitespace().collect::<String>()).unwrap()
}

#[test]
fn kcptun_golden_bytes() {
    // kcptun.md §7: an 8-byte smux v1 SYN for stream 3 as the first write, then 100 × 'a'.
    let mut enc = Encoder::default();
    let mut out = Vec::new();
    enc.encode(&[&unhex("01000000"), &unhex("03000000")], &mut out);
    assert_eq!(
        out,
        unhex("ff060000734e61507059 010c0000 4439ac2f 0100000003000000")
    );
    out.clear();
    enc.encode(&[&[b'a'; 100]], &mut out);
    assert_eq!(out, unhex("000d0000 1fa8b5fd 640061fe01008a0100"));
}

#[test]
fn corruption_is_a_verdict() {
    let mut enc = Encoder::default();
    let mut wire = Vec::new();
    enc.encode(&[b"0123456789"], &mut wire); // short: an uncompressed chunk
                                             // Not starting with the identifier (a --nocomp peer talking smux).
    assert_eq!(
        decode(&unhex("0100000003000000"), 64, 64),
        Err(SnappyError::MissingIdentifier)
    );
    let mut bad = wire.clone();
    *bad.last_mut().unwrap() ^= 1;
    assert_eq!(decode(&bad, 64, 64), Err(SnappyError::Checksum));
    let mut reserved = STREAM_IDENTIFIER.to_vec();
    reserved.extend([0x02, 0, 0, 0]);
    assert_eq!(
        decode(&reserved, 64, 64),
        Err(SnappyError::ReservedChunk(2))
    );
    let mut long = STREAM_IDENTIFIER.to_vec();
    long.extend([0x01, 0xff, 0xff, 0xff]);
    assert_eq!(
        decode(&long, 64, 64),
        Err(SnappyError::ChunkTooLong(0xff_ffff))
    );
    // A skippable chunk (16 MiB announced) streams by without being buffered.
    let mut skip = STREAM_IDENTIFIER.to_vec();
    skip.extend([0x80, 0x00, 0x01, 0x00]);
    skip.extend(vec![7u8; 256]);
    let mut tail = Vec::new();
    let mut enc = Encoder::default();
    enc.encode(&[b"after"], &mut tail);
    skip.extend(&tail[STREAM_IDENTIFIER.len()..]);
    assert_eq!(decode(&skip, 100, 64).unwrap(), b"after");
}

proptest! {
    #[test]
    fn round_trips_in_any_chunking(
        frames in proptest::collection::vec(
            prop_oneof![
                proptest::collection::vec(any::<u8>(), 0..3000),
                (1usize..70_000).prop_map(|n| vec![b'z'; n]),
            ],
            1..6,
        ),
        step in 1usize..5000,
        read in 1usize..3000,
    ) {
        let mut enc = Encoder::default();
        let mut wire = Vec::new();
        for f in &frames {
            enc.encode(&[f], &mut wire);
        }
        let want: Vec<u8> = frames.concat();
        prop_assert_eq!(decode(&wire, step, read).unwrap(), want);
    }

    #[test]
    fn decoder_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..600), step in 1usize..64) {
        let mut wire = STREAM_IDENTIFIER.to_vec();
        wire.extend(bytes);
        let _ = decode(&wire, step, 17);
    }
}

/// Two ToyMux streams through the snappy transform over simulated TCP pipes, with a slow
/// reader: every byte delivered, and the wire carries less than the payload (compressible).
#[test]
fn toy_mux_through_snappy_over_pipes() {
    let start = test_start();
    let link = StreamLinkConfig {
        recv_buffer: 8192,
        send_buffer: 8192,
    };
    let a = Stack::new(StreamLink::new(link), Snappy::new(ToyMux::client()));
    let b = Stack::new(StreamLink::new(link), Snappy::new(ToyMux::server()));
    let pipe = PipeConfig::perfect()
        .with_delay(Duration::from_millis(2))
        .with_buffer(16 * 1024)
        .with_max_chunk(1000);
    let mut pair = Pair::over_pipe(a, b, start, pipe.clone(), pipe, 11);
    let data: Vec<u8> = (0..300_000u32).map(|i| (i / 64 % 7) as u8).collect();
    let (got, _) = two_streams_over(&mut pair, &data, 700);
    for g in &got {
        assert!(g == &data, "delivered {} of {} bytes", g.len(), data.len());
    }
    let wire = pair.stats.bytes_a_to_b;
    assert!(
        wire < 2 * data.len() as u64 / 4,
        "{wire} bytes on the wire for 2 x {} payload",
        data.len()
    );
}

/// A peer that does not speak snappy (a `--nocomp` kcptun): the connection closes once,
/// with the corruption as its reason.
#[test]
fn plain_bytes_from_the_peer_close_the_connection() {
    let now = test_start();
    let mut s = Stack::new(StreamLink::default(), Snappy::new(ToyMux::server()));
    s.handle_input(now, &unhex("0100000003000000")).unwrap();
    let evs: Vec<_> = std::iter::from_fn(|| s.poll_event()).collect();
    assert!(
        evs.contains(&StreamEvent::Closed(StackClose::Upper(
            SnappyClose::Corrupt(SnappyError::MissingIdentifier)
        ))),
        "{evs:?}"
    );
}

/// `--nocomp`: the same stack type, bytes untouched on the wire.
#[test]
fn passthrough_leaves_the_bytes_alone() {
    let now = test_start();
    let mut a = Stack::new(StreamLink::default(), Snappy::passthrough(ToyMux::client()));
    assert!(!a.upper().is_enabled());
    let id = a.open_stream().unwrap();
    a.write(id, b"plain").unwrap();
    let mut wire = Vec::new();
    while a.has_transmit() {
        a.poll_transmit(now, &mut wire);
    }
    assert!(wire.ends_with(b"plain"), "{wire:?}");
    assert!(!wire.starts_with(&STREAM_IDENTIFIER));
}

/// The kcptun stack as one machine per side — `Stack<Session, Snappy<Smux>>` with kcptun's
/// defaults (aes with a pbkdf2 key, FEC 10/3, mode fast, smux v1) — between two in-memory
/// peers over a lossy, reordering link: 64 streams at once, every byte of every stream
/// delivered once and in order, and the run bit-for-bit the same for a seed (issue 17).
#[test]
fn kcptun_stack_64_streams_over_a_lossy_link() {
    use crate::kcp::KcpConfig;
    use crate::rng::seeded;
    use crate::session::key::kcptun_key;
    use crate::session::{CryptMode, Session, SessionConfig};
    use crate::sim::transfer::{run_streams, StreamPlan, Tap};
    use crate::sim::LinkConfig;
    use crate::smux::{Smux, SmuxConfig};
    use crate::stack::Side;

    let cfg = SessionConfig {
        kcp: KcpConfig::fast()
            .with_windows(1024, 1024)
            .with_mtu(1350)
            .with_stream(true)
            .with_quick_recovery(true),
        crypt: CryptMode::from_kcptun_name("aes").0,
        key: kcptun_key("it's a secrect"),
        data_shards: 10,
        parity_shards: 3,
    };
    let link = LinkConfig::perfect()
        .with_delay(Duration::from_millis(20))
        .with_loss(0.03)
        .with_reorder(0.01, Duration::from_millis(5));
    let run = |seed: u64| {
        let t = test_start();
        let a = Stack::new(
            Session::client(9, &cfg, t, Box::new(seeded(seed))),
            Snappy::new(Smux::new(SmuxConfig::xtaci(1), Side::Client)),
        );
        let b = Stack::new(
            Session::new(9, &cfg, t, Box::new(seeded(seed + 1))),
            Snappy::new(Smux::new(SmuxConfig::xtaci(1), Side::Server)),
        );
        let mut p = Pair::new(
            Tap::new(a),
            Tap::new(b),
            t,
            link.clone(),
            link.clone(),
            seed,
        );
        let plan = StreamPlan {
            streams: 64,
            bytes: 32_000,
            chunk: 4_000,
            seed,
            time_limit: Duration::from_secs(300),
        };
        let r = run_streams(&mut p, &plan);
        assert!(r.completed, "{r:?}");
        assert_eq!(r.streams.len(), 64);
        assert!(r.streams.iter().all(|s| s.sha256_sent == s.sha256_received));
        assert!(r.sender.retrans_segs > 0, "KCP repaired loss");
        r.wire_digest
    };
    assert_eq!(run(21), run(21), "same seed, same bytes on the wire");
    assert_ne!(run(21), run(22), "another seed, another run");
}
