//! smux in the simulator: many streams byte-exact over simulated TCP pipes and over a lossy
//! KCP link, a stalled reader that never blocks the other streams, the echo lifecycle
//! (finish, echo, close) leaving nothing behind, and idle sessions kept alive by NOPs.
use std::time::Duration;

use super::*;
use crate::driver::{StreamError, StreamEvent, StreamId, Streams};
use crate::kcp::KcpConfig;
use crate::rng::seeded;
use crate::session::{CryptMode, Session, SessionConfig};
use crate::sim::transfer::{run_streams, StreamPlan, Tap};
use crate::sim::{test_start, LinkConfig, Pair, Pipe, PipeConfig};
use crate::stack::{Side, Stack};
use crate::stream_link::StreamLink;

type Tcp = Stack<StreamLink, Smux>;

fn dialects() -> [SmuxConfig; 3] {
    [
        SmuxConfig::xtaci(1),
        SmuxConfig::xtaci(2),
        SmuxConfig::seed(),
    ]
}

fn tcp_pair(cfg: &SmuxConfig, pipe: PipeConfig, seed: u64) -> Pair<Tap<Tcp>, Tap<Tcp>, Pipe> {
    let a = Stack::new(StreamLink::default(), Smux::new(cfg.clone(), Side::Client));
    let b = Stack::new(StreamLink::default(), Smux::new(cfg.clone(), Side::Server));
    Pair::over_pipe(
        Tap::new(a),
        Tap::new(b),
        test_start(),
        pipe.clone(),
        pipe,
        seed,
    )
}

fn pipe() -> PipeConfig {
    PipeConfig::perfect()
        .with_delay(Duration::from_millis(5))
        .with_rate(200_000_000)
        .with_max_chunk(3000)
}

/// 1 000 streams at once over one TCP-like pipe, re-chunked at random: every byte of every
/// stream arrives once and in order, and the run is deterministic (one test per dialect, so
/// they run in parallel).
fn many_streams_byte_exact_over_pipes(cfg: &SmuxConfig) {
    let run = |seed| {
        let mut p = tcp_pair(cfg, pipe(), seed);
        let plan = StreamPlan {
            streams: 1_000,
            bytes: 3_000,
            chunk: 1_500,
            seed,
            time_limit: Duration::from_secs(60),
        };
        let r = run_streams(&mut p, &plan);
        assert!(r.completed, "{:?} {r:?}", cfg.dialect);
        for s in &r.streams {
            assert_eq!(s.sha256_sent, s.sha256_received, "{:?}", cfg.dialect);
        }
        assert_eq!(p.a.inner.upper().live_streams(), 1_000);
        r.wire_digest
    };
    assert_eq!(run(7), run(7), "deterministic");
    assert_ne!(run(7), run(8), "another seed, another interleaving");
}

#[test]
fn many_v1_streams_byte_exact_over_pipes() {
    many_streams_byte_exact_over_pipes(&SmuxConfig::xtaci(1));
}

#[test]
fn many_v2_streams_byte_exact_over_pipes() {
    many_streams_byte_exact_over_pipes(&SmuxConfig::xtaci(2));
}

#[test]
fn many_seed_streams_byte_exact_over_pipes() {
    many_streams_byte_exact_over_pipes(&SmuxConfig::seed());
}

/// Eight streams over a lossy, reordering KCP session (`Stack<Session, Smux>`).
#[test]
fn streams_over_a_lossy_kcp_session() {
    let cfg = SessionConfig {
        kcp: KcpConfig::fast3().with_windows(256, 256).with_stream(true),
        crypt: CryptMode::Raw,
        key: [0; 32],
        data_shards: 0,
        parity_shards: 0,
    };
    let link = LinkConfig::perfect()
        .with_delay(Duration::from_millis(10))
        .with_loss(0.03)
        .with_reorder(0.02, Duration::from_millis(5));
    for smux in dialects() {
        let t = test_start();
        let a = Stack::new(
            Session::client(3, &cfg, t, Box::new(seeded(1))),
            Smux::new(smux.clone(), Side::Client),
        );
        let b = Stack::new(
            Session::new(3, &cfg, t, Box::new(seeded(2))),
            Smux::new(smux.clone(), Side::Server),
        );
        let mut p = Pair::new(Tap::new(a), Tap::new(b), t, link.clone(), link.clone(), 5);
        let plan = StreamPlan {
            streams: 8,
            bytes: 60_000,
            chunk: 4_000,
            seed: 5,
            time_limit: Duration::from_secs(300),
        };
        let r = run_streams(&mut p, &plan);
        assert!(r.completed, "{:?} {r:?}", smux.dialect);
        assert!(r.streams.iter().all(|s| s.sha256_sent == s.sha256_received));
        assert!(r.sender.retrans_segs > 0, "KCP repaired loss");
    }
}

/// The seed's key promise, and v2's while peers honour windows: a stream whose reader
/// never reads holds at most its window, and another stream on the session still moves
/// megabytes.
#[test]
fn a_stalled_stream_never_blocks_the_others() {
    for cfg in [SmuxConfig::xtaci(2), SmuxConfig::seed()] {
        let mut p = tcp_pair(&cfg, pipe(), 11);
        let stalled = p.a.open_stream().unwrap();
        let flowing = p.a.open_stream().unwrap();
        let payload: Vec<u8> = (0..4 << 20).map(|i: u32| (i % 251) as u8).collect();
        let (mut sent, mut got) = ([0usize; 2], Vec::new());
        let mut ids = Vec::new();
        let mut buf = vec![0u8; 65_536];
        let limit = p.now + Duration::from_secs(120);
        while got.len() < payload.len() {
            for (k, id) in [stalled, flowing].into_iter().enumerate() {
                while sent[k] < payload.len() {
                    match p.a.write(id, &payload[sent[k]..]) {
                        Ok(n) => sent[k] += n,
                        Err(_) => break,
                    }
                }
            }
            while let Some(id) = p.b.accept_stream() {
                ids.push(id);
            }
            if let Some(&id) = ids.get(1) {
                while let Ok(n) = p.b.read(id, &mut buf) {
                    got.extend_from_slice(&buf[..n]);
                }
            }
            let window = cfg.max_stream_buffer.max(262_144) + 65_536;
            assert!(p.b.inner.upper().buffered() <= window, "{:?}", cfg.dialect);
            if got.len() == payload.len() {
                break;
            }
            assert!(
                p.step() && p.now < limit,
                "{:?} stalled: got {} sent {sent:?} a {:?} b {:?}",
                cfg.dialect,
                got.len(),
                p.a.inner.upper().stats(),
                p.b.inner.upper().stats(),
            );
        }
        assert_eq!(got, payload, "{:?}", cfg.dialect);
        assert!(
            sent[0] < payload.len(),
            "the stalled stream is held by its window"
        );
    }
}

/// What `tether smux echo-server` and `client` do: K streams, each written, finished,
/// echoed until the peer's FIN, closed; both sessions end with no stream, no buffered byte
/// and (seed) every id back in the bitmap.
#[test]
fn echo_lifecycle_leaves_nothing_behind() {
    for cfg in dialects() {
        let mut p = tcp_pair(&cfg, pipe(), 3);
        let k = 20;
        let msg: Vec<u8> = (0..50_000u32).map(|i| (i % 253) as u8).collect();
        let ids: Vec<StreamId> = (0..k).map(|_| p.a.open_stream().unwrap()).collect();
        let mut sent = vec![0usize; k];
        let mut back = vec![Vec::new(); k];
        let mut done = vec![false; k];
        let mut server: Vec<(StreamId, Vec<u8>, bool)> = Vec::new();
        let mut buf = vec![0u8; 16_384];
        let limit = p.now + Duration::from_secs(120);
        while !(done.iter().all(|d| *d) && server.len() == k && server.iter().all(|s| s.2)) {
            for i in 0..k {
                while sent[i] < msg.len() {
                    match p.a.write(ids[i], &msg[sent[i]..]) {
                        Ok(n) => sent[i] += n,
                        Err(_) => break,
                    }
                }
                if cfg.dialect != Dialect::Seed && sent[i] == msg.len() && !done[i] {
                    p.a.finish(ids[i]).unwrap();
                }
                loop {
                    match p.a.read(ids[i], &mut buf) {
                        Ok(n) => back[i].extend_from_slice(&buf[..n]),
                        Err(StreamError::Finished) if !done[i] => {
                            done[i] = true;
                            p.a.close_stream(ids[i]);
                            break;
                        }
                        Err(_) => break,
                    }
                }
                // the seed has no half-close: the client closes once the echo is complete
                if cfg.dialect == Dialect::Seed && back[i].len() == msg.len() && !done[i] {
                    done[i] = true;
                    p.a.close_stream(ids[i]);
                }
            }
            while let Some(id) = p.b.accept_stream() {
                server.push((id, Vec::new(), false));
            }
            for (id, q, closed) in server.iter_mut().filter(|s| !s.2) {
                loop {
                    match p.b.read(*id, &mut buf) {
                        Ok(n) => q.extend_from_slice(&buf[..n]),
                        Err(StreamError::Finished) => {
                            // echo what is left, then close (xtaci: FIN after the echo)
                            while !q.is_empty() {
                                match p.b.write(*id, q) {
                                    Ok(n) => drop(q.drain(..n)),
                                    Err(_) => break,
                                }
                            }
                            if q.is_empty() || cfg.dialect == Dialect::Seed {
                                p.b.close_stream(*id);
                                *closed = true;
                            }
                            break;
                        }
                        Err(_) => break,
                    }
                }
                while !q.is_empty() && !*closed {
                    match p.b.write(*id, q) {
                        Ok(n) => drop(q.drain(..n)),
                        Err(_) => break,
                    }
                }
            }
            assert!(p.step() && p.now < limit, "{:?} stalled", cfg.dialect);
        }
        p.drive_for(Duration::from_secs(1));
        assert!(back.iter().all(|b| *b == msg), "{:?}", cfg.dialect);
        for m in [p.a.inner.upper(), p.b.inner.upper()] {
            assert_eq!(
                (m.live_streams(), m.buffered()),
                (0, 0),
                "{:?} {m:?}",
                cfg.dialect
            );
            if cfg.dialect == Dialect::Seed {
                assert_eq!(m.seed_ids_used(), 1);
            }
        }
        let stream_closed = p
            .events_a
            .iter()
            .filter(|e| matches!(e, StreamEvent::StreamClosed(_)))
            .count();
        assert_eq!(stream_closed, k, "{:?}", cfg.dialect);
        assert!(!p
            .events_a
            .iter()
            .any(|e| matches!(e, StreamEvent::Closed(_))));
    }
}

/// Two idle xtaci sessions stay up on each other's NOPs; the seed arms no timer at all.
#[test]
fn idle_sessions_live_on_keepalives() {
    let mut p = tcp_pair(&SmuxConfig::xtaci(1), pipe(), 1);
    p.drive_for(Duration::from_secs(300));
    assert!(!p
        .events_a
        .iter()
        .any(|e| matches!(e, StreamEvent::Closed(_))));
    assert!(p.a.inner.upper().stats().keepalives_sent >= 29);
    let mut p = tcp_pair(&SmuxConfig::seed(), pipe(), 1);
    p.drive();
    assert_eq!(
        p.next_deadline(),
        None,
        "an idle seed session costs nothing"
    );
}

/// A peer that sends nothing (no keepalive configured on its side) is dropped after a full
/// silent timeout period: between 30 and 60 s with the defaults (smux-xtaci.md §8).
#[test]
fn a_silent_peer_times_out() {
    let quiet = SmuxConfig {
        keepalive_interval: None,
        ..SmuxConfig::xtaci(1)
    };
    let a = Stack::new(StreamLink::default(), Smux::new(quiet, Side::Client));
    let b = Stack::new(
        StreamLink::default(),
        Smux::new(SmuxConfig::xtaci(1), Side::Server),
    );
    let mut p = Pair::over_pipe(Tap::new(a), Tap::new(b), test_start(), pipe(), pipe(), 2);
    p.drive_for(Duration::from_secs(120));
    let at = p.events_b.iter().position(|e| {
        matches!(
            e,
            StreamEvent::Closed(crate::stack::StackClose::Upper(
                SmuxError::KeepaliveTimeout(_)
            ))
        )
    });
    assert!(at.is_some(), "{:?}", p.events_b);
    assert!(p.b.inner.is_closed());
}

/// kcptun's v2 settings (4 MiB bucket, 2 MiB stream windows) under a 16-stream echo whose
/// echoing side writes back before it reads on (64 KiB per stream at most in hand), so more
/// than the bucket can sit unread while UPDs must still get through. (Over real sockets,
/// through the runtime hub, pausing reads at the bucket hung `tether smux` v2 with 16 ×
/// 64 MiB about one run in two; this simulated echo drains too eagerly to reproduce that
/// hang, so it guards the configuration, not that exact interleaving.)
#[test]
fn v2_echo_with_windows_larger_than_the_bucket_never_deadlocks() {
    let mut cfg = SmuxConfig::xtaci(2);
    cfg.max_receive_buffer = 4 << 20;
    cfg.max_stream_buffer = 2 << 20;
    let mut p = tcp_pair(&cfg, pipe(), 5);
    const STREAMS: usize = 16;
    const BYTES: usize = 4 << 20;
    let ids: Vec<StreamId> = (0..STREAMS).map(|_| p.a.open_stream().unwrap()).collect();
    let data: Vec<u8> = (0..BYTES).map(|i| (i % 253) as u8).collect();
    let mut sent = [0usize; STREAMS];
    let mut echoed = [0usize; STREAMS];
    let mut server: Vec<(StreamId, Vec<u8>)> = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    for _ in 0..2_000_000 {
        for (k, id) in ids.iter().enumerate() {
            if let Ok(n) = p.a.write(*id, &data[sent[k]..]) {
                sent[k] += n;
            }
            while let Ok(n) = p.a.read(*id, &mut buf) {
                assert_eq!(&buf[..n], &data[echoed[k]..echoed[k] + n]);
                echoed[k] += n;
            }
        }
        while let Some(id) = p.b.accept_stream() {
            server.push((id, Vec::new()));
        }
        for (id, held) in &mut server {
            // Write back what is in hand first; read on only once it is all written.
            while !held.is_empty() {
                match p.b.write(*id, held) {
                    Ok(n) => drop(held.drain(..n)),
                    Err(_) => break,
                }
            }
            if held.is_empty() {
                if let Ok(n) = p.b.read(*id, &mut buf) {
                    held.extend_from_slice(&buf[..n]);
                }
            }
        }
        if echoed.iter().all(|&e| e == BYTES) {
            return;
        }
        if !p.step() {
            p.drive_for(Duration::from_millis(1));
        }
    }
    panic!(
        "echo stalled: {echoed:?} of {BYTES} per stream echoed after {:?}",
        p.elapsed()
    );
}
