//! Behavioural tests of the KCP machine in the seeded simulator (kcp.md §6–§11).
use std::time::{Duration, Instant};

use proptest::prelude::*;

use super::segment::{self, Cmd, Header};
use super::*;
use crate::sim::transfer::{run_transfer, TransferConfig};
use crate::sim::{test_start, LinkConfig, Pair, SeedGuard};
use crate::wire::Writer;

fn transfer(bytes: u64, kcp: KcpConfig, link: LinkConfig, seed: u64) -> TransferConfig {
    TransferConfig::symmetric(bytes, kcp, link, seed)
}

fn mode(i: usize) -> KcpConfig {
    let m = [
        KcpConfig::normal(),
        KcpConfig::fast(),
        KcpConfig::fast2(),
        KcpConfig::fast3(),
        KcpConfig::default(),
    ];
    m[i % m.len()]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, .. ProptestConfig::default() })]

    /// Every byte delivered exactly once, in order, for loss 0–30 %, reordering, duplication
    /// and every preset, in stream and message mode, in kcp-go's and ikcp's flavour.
    #[test]
    fn delivers_exactly_once_in_order(
        seed in any::<u64>(),
        loss in 0.0f64..0.30,
        reorder in 0.0f64..0.2,
        dup in 0.0f64..0.2,
        m in 0usize..5,
        stream in any::<bool>(),
        ikcp in any::<bool>(),
        bytes in 1u64..150_000,
    ) {
        let _g = SeedGuard::new(seed);
        let link = LinkConfig::perfect()
            .with_delay(Duration::from_millis(15))
            .with_jitter(Duration::from_millis(3))
            .with_loss(loss)
            .with_reorder(reorder, Duration::from_millis(10))
            .with_duplicate(dup);
        let mut kcp = mode(m).with_windows(128, 128).with_stream(stream);
        if ikcp {
            kcp.flavor = KcpFlavor::Ikcp;
        }
        let r = run_transfer(&transfer(bytes, kcp, link, seed), test_start());
        prop_assert!(r.completed, "transfer did not complete: {r:?}");
        prop_assert_eq!(r.delivered, bytes);
        prop_assert_eq!(r.sha256_sent, r.sha256_received);
    }

    /// Same seed and inputs ⇒ the same bytes on the wire, whatever the wall clock does.
    #[test]
    fn deterministic(seed in any::<u64>(), m in 0usize..4) {
        let link = LinkConfig::perfect().with_delay(Duration::from_millis(20)).with_loss(0.1).with_jitter(Duration::from_millis(5));
        let cfg = transfer(40_000, mode(m), link, seed);
        let r1 = run_transfer(&cfg, test_start());
        let r2 = run_transfer(&cfg, test_start() + Duration::from_secs(1234));
        prop_assert_eq!(r1.wire_digest, r2.wire_digest);
        prop_assert_eq!(r1.elapsed, r2.elapsed);
    }

    /// Arbitrary datagrams (conv forced to ours) never panic and never grow a buffer past its
    /// bound; the deadline contract holds throughout.
    #[test]
    fn arbitrary_input_is_bounded(ops in proptest::collection::vec(any::<u8>(), 0..4000)) {
        crate::fuzzing::kcp_machine(test_start(), &ops);
    }
}

#[test]
fn different_seeds_differ() {
    let link = LinkConfig::perfect()
        .with_delay(Duration::from_millis(20))
        .with_loss(0.1);
    let a = run_transfer(
        &transfer(40_000, KcpConfig::fast(), link.clone(), 1),
        test_start(),
    );
    let b = run_transfer(&transfer(40_000, KcpConfig::fast(), link, 2), test_start());
    assert_ne!(a.wire_digest, b.wire_digest);
}

/// A machine wrapper that checks the driver contracts on every call.
struct Checked(Kcp);

impl Machine for Checked {
    type Event = KcpEvent;
    type InputError = InputError;
    fn handle_input(&mut self, now: Instant, data: &[u8]) -> Result<(), InputError> {
        self.0.handle_input(now, data)
    }
    fn poll_transmit(&mut self, now: Instant, buf: &mut Vec<u8>) -> Option<Transmit> {
        let t = self.0.poll_transmit(now, buf)?;
        assert!(
            t.len <= self.0.config().mtu as usize,
            "datagram larger than the MTU"
        );
        Some(t)
    }
    fn has_transmit(&self) -> bool {
        self.0.has_transmit()
    }
    fn poll_timeout(&self) -> Option<Instant> {
        self.0.poll_timeout()
    }
    fn handle_timeout(&mut self, now: Instant) {
        self.0.handle_timeout(now);
        if let Some(next) = self.0.poll_timeout() {
            assert!(
                next > now,
                "deadline {next:?} not after handle_timeout({now:?})"
            );
        }
    }
    fn poll_event(&mut self) -> Option<KcpEvent> {
        self.0.poll_event()
    }
}

fn checked_pair(cfg: KcpConfig, link: LinkConfig, seed: u64) -> Pair<Checked, Checked> {
    let start = test_start();
    let a = Checked(Kcp::new(7, cfg, start));
    let b = Checked(Kcp::new(7, cfg, start));
    Pair::new(a, b, start, link.clone(), link, seed)
}

fn read_all(k: &mut Kcp, into: &mut Vec<u8>) {
    let mut buf = [0u8; 4096];
    while let Ok(n) = k.recv_stream(&mut buf) {
        into.extend_from_slice(&buf[..n]);
    }
}

#[test]
fn deadline_contract_and_idle_is_none() {
    for seed in 0..20u64 {
        let _g = SeedGuard::new(seed);
        let link = LinkConfig::perfect()
            .with_delay(Duration::from_millis(10))
            .with_loss(0.2);
        let mut p = checked_pair(KcpConfig::fast().with_stream(true), link, seed);
        let data: Vec<u8> = (0..30_000u32).map(|i| i as u8).collect();
        let mut sent = 0;
        let mut got = Vec::new();
        let limit = p.now + Duration::from_secs(600);
        while got.len() < data.len() && p.now < limit {
            while sent < data.len() && p.a.0.can_write() {
                let n = (data.len() - sent).min(1000);
                p.a.0.write(&data[sent..sent + n]).unwrap();
                sent += n;
            }
            read_all(&mut p.b.0, &mut got);
            p.step();
        }
        assert_eq!(got, data);
        // Drain to quiescence: all ACKed, nothing pending ⇒ no timers at all.
        p.drive();
        assert_eq!(
            p.a.poll_timeout(),
            None,
            "sender must arm no timer when idle"
        );
        assert_eq!(
            p.b.poll_timeout(),
            None,
            "receiver must arm no timer when idle"
        );
        assert!(p.a.0.all_acked());
    }
}

#[test]
fn fresh_session_is_idle() {
    let k = Kcp::new(1, KcpConfig::fast3(), test_start());
    assert_eq!(k.poll_timeout(), None);
}

#[test]
fn idle_hour_costs_no_wakeups() {
    let link = LinkConfig::perfect().with_delay(Duration::from_millis(10));
    let mut p = checked_pair(KcpConfig::fast3(), link, 1);
    p.a.0.write(b"ping").unwrap();
    p.drive();
    let before = p.stats;
    p.drive_for(Duration::from_secs(3600));
    assert_eq!(p.stats.timeouts_a, before.timeouts_a);
    assert_eq!(p.stats.timeouts_b, before.timeouts_b);
    assert_eq!(p.stats.datagrams_a_to_b, before.datagrams_a_to_b);
}

/// kcp.md §8.3: a peer that vanishes makes a segment reach dead_link retransmissions; the
/// machine reports it once.
#[test]
fn dead_link_is_reported_once() {
    let link = LinkConfig::perfect().with_loss(1.0);
    let mut p = checked_pair(KcpConfig::fast3(), link, 3);
    p.a.0.write(b"into the void").unwrap();
    p.drive_for(Duration::from_secs(600));
    let dead = p
        .events_a
        .iter()
        .filter(|e| **e == KcpEvent::DeadLink)
        .count();
    assert_eq!(dead, 1);
    assert!(p.a.0.is_dead());
}

/// Fast and early retransmissions do not count towards the dead link (`KcpEvent::DeadLink`):
/// a segment lost again and again while the peer acknowledges every later one (quick
/// recovery ACKs each at once; each write flushes, as kcp-go's `Write`) is sent far more
/// than `dead_link` times within a few milliseconds, yet the peer is there: the link is
/// not reported dead, and once the segment gets through everything arrives. Counting them
/// closed a healthy tunnel session (the `interop_kcptun` stall with the creation flush).
#[test]
fn fast_retransmissions_never_declare_a_live_link_dead() {
    let t0 = test_start();
    let cfg = KcpConfig::fast()
        .with_windows(128, 512)
        .with_quick_recovery(true);
    let (mut a, mut b) = (Kcp::new(1, cfg, t0), Kcp::new(1, cfg, t0));
    let first_push = |d: &[u8]| {
        let h = Header::decode(&mut crate::wire::Reader::new(d)).unwrap();
        h.cmd == Cmd::Push as u8 && h.sn == 0
    };
    let mut sent = Vec::new();
    let mut held_back = Vec::new();
    let mut out = Vec::new();
    for round in 0..80u32 {
        let now = t0 + Duration::from_micros(500 * u64::from(round));
        let chunk = vec![round as u8; 1376];
        a.write(&chunk).unwrap();
        sent.extend_from_slice(&chunk);
        while a.poll_transmit(now, &mut out).is_some() {
            if first_push(&out) {
                held_back.push(std::mem::take(&mut out)); // lost, every time
            } else {
                b.handle_input(now, &out).unwrap();
            }
            out.clear();
        }
        while b.poll_transmit(now, &mut out).is_some() {
            a.handle_input(now, &out).unwrap();
            out.clear();
        }
    }
    assert!(held_back.len() > 25, "sn 0 sent {} times", held_back.len());
    assert!(!a.is_dead());
    assert!(std::iter::from_fn(|| a.poll_event()).all(|e| e != KcpEvent::DeadLink));
    let now = t0 + Duration::from_millis(40);
    b.handle_input(now, &held_back[0]).unwrap();
    let mut got = Vec::new();
    read_all(&mut b, &mut got);
    assert_eq!(got, sent);
}

fn segment(conv: u32, cmd: Cmd, frg: u8, wnd: u16, sn: u32, una: u32, data: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    let h = Header {
        conv,
        cmd: cmd as u8,
        frg,
        wnd,
        ts: 0,
        sn,
        una,
        len: data.len() as u32,
    };
    h.encode(&mut Writer::new(&mut v));
    v.extend_from_slice(data);
    v
}

/// Fragment-count abuse: segments claiming frg 255 fill the window but can never complete a
/// message; memory stays at rcv_wnd segments and nothing is delivered.
#[test]
fn fragment_abuse_is_bounded() {
    let now = test_start();
    let mut k = Kcp::new(9, KcpConfig::default().with_windows(32, 32), now);
    for sn in 0..10_000u32 {
        let _ = k.handle_input(now, &segment(9, Cmd::Push, 255, 32, sn, 0, &[1; 100]));
        assert!(k.debug_bounds_ok());
    }
    assert_eq!(k.peek_size(), None);
    assert!(k.recv(&mut [0u8; 100_000]).is_err());
}

/// Window abuse: a peer advertising a zero window gets probed with WASK after 7 s and at
/// growing intervals (kcp.md §8.2), and a WINS reopens the flow.
#[test]
fn zero_window_is_probed_then_reopened() {
    let t0 = test_start();
    let mut k = Kcp::new(5, KcpConfig::fast().with_windows(32, 32), t0);
    k.write(b"x").unwrap();
    let mut out = Vec::new();
    while k.poll_transmit(t0, &mut out).is_some() {}
    // Peer acks sn 0 and says its window is zero.
    let _ = k.handle_input(t0, &segment(5, Cmd::Ack, 0, 0, 0, 1, &[]));
    k.write(b"y").unwrap_err();
    let mut wasks = Vec::new();
    let mut now = t0;
    while now < t0 + Duration::from_secs(40) {
        let Some(t) = k.poll_timeout() else { break };
        now = t;
        k.handle_timeout(now);
        out.clear();
        while k.poll_transmit(now, &mut out).is_some() {
            for seg in segment::segments(&out).flatten() {
                if seg.0.cmd == Cmd::Wask as u8 {
                    wasks.push(now.duration_since(t0).as_millis() as u64);
                }
            }
            out.clear();
        }
    }
    assert!(wasks.len() >= 2, "expected repeated probes, got {wasks:?}");
    assert!(
        wasks[0] >= 7000 && wasks[0] < 7100,
        "first probe after ~7 s: {wasks:?}"
    );
    let gap = wasks[1] - wasks[0];
    assert!(
        (10_500..10_600).contains(&gap),
        "second probe 10.5 s later: {wasks:?}"
    );
    let _ = k.handle_input(now, &segment(5, Cmd::Wins, 0, 32, 0, 1, &[]));
    assert!(k.write(b"z").is_ok());
}

/// `write_message` sends one message as fragments with `frg` counting down, which a
/// message-mode receiver delivers whole (ikcp's `ikcp_send`, kcp.md §4); `write` sends
/// `mss`-sized messages with frg 0, as kcp-go's session layer.
#[test]
fn write_message_is_one_fragmented_message() {
    let now = test_start();
    let cfg = KcpConfig::fast3().with_windows(256, 256);
    let (mut a, mut b) = (Kcp::new(7, cfg, now), Kcp::new(7, cfg, now));
    let msg: Vec<u8> = (0..3000u32).map(|i| i as u8).collect();
    assert_eq!(a.write_message(&msg), Ok(3000));
    let mut frgs = Vec::new();
    let mut buf = Vec::new();
    while let Some(t) = a.poll_transmit(now, &mut buf) {
        let d = &buf[buf.len() - t.len..];
        frgs.extend(segment::segments(d).map(|r| r.expect("segment").0.frg));
        b.handle_input(now, d).expect("input");
        buf.clear();
    }
    assert_eq!(frgs, [2, 1, 0]);
    let mut out = vec![0u8; 4000];
    assert_eq!(b.recv(&mut out), Ok(3000));
    assert_eq!(out[..3000], msg[..]);
    let huge = vec![0u8; 256 * a.mss()];
    assert_eq!(
        a.write_message(&huge),
        Err(WriteError::TooLarge(huge.len()))
    );
}

/// Every WASK/WINS command in `out`, in order.
fn probes(out: &[u8]) -> Vec<u8> {
    segment::segments(out)
        .flatten()
        .map(|s| s.0.cmd)
        .filter(|&c| c == Cmd::Wask as u8 || c == Cmd::Wins as u8)
        .collect()
}

/// A keepalive is one WASK in the next flush; the peer answers with a WINS, and neither side's
/// stream changes (what `tether cat` sends while it has nothing to say).
#[test]
fn keepalive_is_a_probe_the_peer_answers() {
    let t0 = test_start();
    let cfg = KcpConfig::fast3().with_windows(32, 32);
    let (mut a, mut b) = (Kcp::new(7, cfg, t0), Kcp::new(7, cfg, t0));
    a.send_keepalive();
    assert!(a.has_transmit(), "the probe is output due at once");
    assert_eq!(a.poll_timeout(), None, "pending output is not a deadline");
    let mut out = Vec::new();
    let mut from_a = Vec::new();
    while a.poll_transmit(t0, &mut out).is_some() {
        from_a.push(std::mem::take(&mut out));
    }
    assert_eq!(from_a.len(), 1);
    assert_eq!(probes(&from_a[0]), [Cmd::Wask as u8]);
    b.handle_input(t0, &from_a[0]).unwrap();
    let answer_at = b.poll_timeout().expect("b schedules its answer");
    b.handle_timeout(answer_at);
    let mut answer = Vec::new();
    while b.poll_transmit(answer_at, &mut out).is_some() {
        answer.extend(probes(&out));
        out.clear();
    }
    assert_eq!(answer, [Cmd::Wins as u8]);
    assert_eq!(b.peek_size(), None, "no stream bytes");
    assert!(a.all_acked() && b.all_acked());
    // Nothing else is pending: both go back to sleep.
    assert_eq!(b.poll_timeout(), None);
}

/// "Has output" is explicit: a write makes `has_transmit` true and leaves `poll_timeout`
/// alone (never `now`), and draining the output clears it.
#[test]
fn pending_output_is_has_transmit_not_a_deadline() {
    let t0 = test_start();
    let mut a = Kcp::new(7, KcpConfig::fast3(), t0);
    // kcp-go's flush at creation is pending output too; with nothing to say it sends nothing.
    assert!(a.has_transmit(), "the creation flush");
    let mut out = Vec::new();
    assert!(a.poll_transmit(t0, &mut out).is_none());
    assert!(!a.has_transmit() && out.is_empty());
    assert_eq!(a.poll_timeout(), None, "idle after it");
    a.write(b"hello").unwrap();
    assert!(a.has_transmit());
    assert_eq!(
        a.poll_timeout(),
        None,
        "no timer was armed by the write itself"
    );
    while a.poll_transmit(t0, &mut out).is_some() {}
    assert!(!out.is_empty());
    assert!(!a.has_transmit(), "drained");
    assert!(
        a.poll_timeout().is_some_and(|t| t > t0),
        "the retransmission timer"
    );
}

/// Everything written becomes acknowledged: one `Acknowledged` event per time the send
/// buffer empties after writes (runtimes wait on it instead of polling `all_acked`).
#[test]
fn acknowledged_is_reported_when_the_send_buffer_empties() {
    let link = LinkConfig::perfect()
        .with_delay(Duration::from_millis(10))
        .with_loss(0.2);
    let mut p = checked_pair(KcpConfig::fast3().with_stream(true), link, 5);
    p.drive();
    assert!(
        !p.events_a.contains(&KcpEvent::Acknowledged),
        "nothing written, nothing to report"
    );
    for round in 1..=3 {
        p.a.0.write(&vec![round as u8; 20_000]).unwrap();
        let mut got = Vec::new();
        while p.step() {
            read_all(&mut p.b.0, &mut got); // b reads, or its window closes
        }
        assert_eq!(got.len(), 20_000);
        assert!(p.a.0.all_acked());
        let acks = p
            .events_a
            .iter()
            .filter(|e| **e == KcpEvent::Acknowledged)
            .count();
        assert_eq!(acks, round, "one Acknowledged per emptied send buffer");
        assert!(
            !p.events_b.contains(&KcpEvent::Acknowledged),
            "b wrote nothing"
        );
    }
}

/// `close()` ends the machine with exactly one `Closed(Local)` as its final event: it sends
/// its last flush, then takes no input, arms no timer and refuses writes.
#[test]
fn close_reports_closed_once_and_goes_quiet() {
    let link = LinkConfig::perfect().with_delay(Duration::from_millis(10));
    let mut p = checked_pair(KcpConfig::fast3(), link, 1);
    p.a.0.write(b"last words").unwrap();
    p.a.0.close();
    p.a.0.close();
    assert!(p.a.has_transmit(), "kcp-go's final flush");
    p.drive();
    let mut got = Vec::new();
    read_all(&mut p.b.0, &mut got);
    assert_eq!(got, b"last words", "the final flush carried the data");
    let closed: Vec<_> = p
        .events_a
        .iter()
        .filter(|e| matches!(e, KcpEvent::Closed(_)))
        .collect();
    assert_eq!(closed, [&KcpEvent::Closed(KcpCloseReason::Local)]);
    assert_eq!(
        p.events_a.last(),
        Some(&KcpEvent::Closed(KcpCloseReason::Local))
    );
    assert_eq!(p.a.poll_timeout(), None);
    assert_eq!(p.a.0.write(b"more"), Err(WriteError::Closed));
    assert_eq!(
        ByteStream::write(&mut p.a.0, b"more"),
        Err(StreamError::Closed)
    );
    p.b.0.write(b"answer").unwrap();
    // b retransmits to the closed side (nothing acknowledges): a stays silent.
    let sent = p.stats.datagrams_a_to_b;
    p.drive_for(Duration::from_secs(5));
    assert_eq!(p.stats.datagrams_a_to_b, sent);
    assert_eq!(
        p.events_a.last(),
        Some(&KcpEvent::Closed(KcpCloseReason::Local))
    );
}

/// `read_chunk` hands full segments over as they are and gathers small ones, and the bytes
/// are those `recv_stream` would read, counted the same way.
#[test]
fn read_chunk_hands_segments_over_and_gathers_small_ones() {
    let now = test_start();
    let cfg = KcpConfig::fast3().with_windows(64, 64);
    let feed = |k: &mut Kcp, sizes: &[usize]| {
        let mut sent = Vec::new();
        for (sn, &len) in sizes.iter().enumerate() {
            let data: Vec<u8> = (0..len).map(|i| (i * 7 + sn) as u8).collect();
            let seg = segment(7, Cmd::Push, 0, 64, sn as u32, 0, &data);
            k.handle_input(now, &seg).expect("input");
            sent.extend_from_slice(&data);
        }
        sent
    };
    let mss = Kcp::new(7, cfg, now).mss();
    let sizes = [mss, mss, 10, 20, 30, mss, 600, 100];
    let mut k = Kcp::new(7, cfg, now);
    let sent = feed(&mut k, &sizes);
    let mut chunks = Vec::new();
    while let Ok(c) = k.read_chunk(64 * 1024) {
        assert!(!c.is_empty());
        chunks.push(c);
    }
    let lens: Vec<usize> = chunks.iter().map(|c| c.len()).collect();
    // Two whole segments, the three small ones gathered with everything after them that
    // fits (a copy reads across segments), as recv_stream does.
    assert_eq!(lens, [mss, mss, 10 + 20 + 30 + mss + 600 + 100]);
    assert_eq!(chunks.concat(), sent);
    assert_eq!(k.stats().bytes_received, sent.len() as u64);

    // A chunk never exceeds `max`: a segment larger than it is read in pieces.
    let mut k = Kcp::new(7, cfg, now);
    let sent = feed(&mut k, &[mss, 700]);
    let mut got = Vec::new();
    while let Ok(c) = k.read_chunk(300) {
        assert!(c.len() <= 300);
        got.extend_from_slice(&c);
    }
    assert_eq!(got, sent);
    assert_eq!(k.read_chunk(300), Err(RecvError::WouldBlock));
    assert_eq!(k.read_chunk(0), Err(RecvError::WouldBlock));
}

/// Found by the `kcp_machine` fuzz target: a peer's zero-length PUSH segments (kcp-go never
/// sends one) are consumed without ever surfacing as an empty read, which a caller would take
/// for the end of the stream; data behind them still arrives.
#[test]
fn empty_segments_never_read_as_empty() {
    let now = test_start();
    let cfg = KcpConfig::fast3().with_windows(64, 64);
    for chunks in [false, true] {
        let mut k = Kcp::new(7, cfg, now);
        for sn in 0..3 {
            k.handle_input(now, &segment(7, Cmd::Push, 0, 64, sn, 0, &[]))
                .expect("input");
        }
        let mut buf = [0u8; 64];
        let r = if chunks {
            k.read_chunk(64).map(|c| c.len())
        } else {
            k.recv_stream(&mut buf)
        };
        assert_eq!(r, Err(RecvError::WouldBlock), "chunks={chunks}");
        k.handle_input(now, &segment(7, Cmd::Push, 0, 64, 3, 0, &[]))
            .expect("input");
        k.handle_input(now, &segment(7, Cmd::Push, 0, 64, 4, 0, b"after"))
            .expect("input");
        let got = if chunks {
            k.read_chunk(64).expect("data").to_vec()
        } else {
            let n = k.recv_stream(&mut buf).expect("data");
            buf[..n].to_vec()
        };
        assert_eq!(got, b"after", "chunks={chunks}");
    }
}

/// A layer that asks `poll_writable` before preparing a frame (snappy) gets the same
/// `Writable` a refused write would have earned.
#[test]
fn poll_writable_false_promises_writable() {
    let link = LinkConfig::perfect().with_delay(Duration::from_millis(10));
    let mut p = checked_pair(KcpConfig::fast3().with_windows(4, 4), link, 2);
    let chunk = vec![1u8; 1000];
    while ByteStream::poll_writable(&mut p.a.0) {
        ByteStream::write(&mut p.a.0, &chunk).unwrap();
    }
    assert!(!p.a.0.can_write());
    p.events_a.clear();
    let mut got = Vec::new();
    for _ in 0..100 {
        p.drive_for(Duration::from_millis(10));
        read_all(&mut p.b.0, &mut got);
        if p.events_a.contains(&KcpEvent::Writable) {
            break;
        }
    }
    assert!(
        p.events_a.contains(&KcpEvent::Writable),
        "no Writable within 1 s of virtual time"
    );
    assert!(ByteStream::poll_writable(&mut p.a.0));
}

/// quick_recovery: the same lossy transfer in kcptun's `fast` mode, byte-exact either way,
/// finishes sooner when the receiver acknowledges out-of-order data at once and the sender
/// retransmits as soon as the ACKs say so (here 0.99 s instead of 1.42 s), at the cost of
/// more ACK datagrams. ACKs otherwise wait for the interval as in kcp-go 5.6.1, so that only
/// quick_recovery differs (with `ack_when_full` both finish sooner: 0.90 s and 1.12 s).
#[test]
fn quick_recovery_recovers_losses_sooner() {
    let link = LinkConfig::perfect()
        .with_delay(Duration::from_millis(20))
        .with_loss(0.02);
    let run = |quick: bool| {
        let cfg = KcpConfig::fast()
            .with_windows(128, 512)
            .with_ack_when_full(false)
            .with_quick_recovery(quick);
        let r = run_transfer(&transfer(2 << 20, cfg, link.clone(), 11), test_start());
        assert!(r.completed && r.sha256_sent == r.sha256_received);
        r
    };
    let (slow, quick) = (run(false), run(true));
    assert!(
        quick.elapsed * 4 < slow.elapsed * 3,
        "{:?} vs {:?}",
        quick.elapsed,
        slow.elapsed
    );
    assert!(quick.sender.fast_retrans_segs >= slow.sender.fast_retrans_segs);
    assert!(quick.datagrams_ba > slow.datagrams_ba, "ACKs leave at once");
}

/// Flushes visit only their new segments while none sent earlier can go out or bring the
/// next flush nearer than an interval (`sent_segments_idle`): the wire output is the same,
/// bit for bit, as with a pass over every segment, under loss, reordering and congestion,
/// for both flavours and with the congestion window on.
#[test]
fn partial_flush_passes_send_what_full_passes_send() {
    let lossy = LinkConfig::perfect()
        .with_delay(Duration::from_millis(15))
        .with_loss(0.05);
    let rare_loss = LinkConfig::perfect()
        .with_delay(Duration::from_millis(20))
        .with_loss(0.002);
    let cases = [
        (
            KcpConfig::fast3().with_windows(1024, 1024),
            rare_loss.clone(),
        ),
        (
            KcpConfig::fast().with_windows(2048, 2048),
            rare_loss.with_loss(0.0),
        ),
        (
            KcpConfig::fast3().with_windows(512, 512),
            LinkConfig::kcptun_10pct_loss(),
        ),
        (
            KcpConfig::fast().with_windows(256, 256),
            LinkConfig::wifi_lossy(),
        ),
        (
            KcpConfig::fast2().with_windows(1024, 1024),
            LinkConfig::congested(),
        ),
        (KcpConfig::normal().with_windows(128, 128), lossy.clone()),
        (
            KcpConfig {
                nocwnd: false,
                ..KcpConfig::fast().with_windows(256, 256)
            },
            lossy.clone(),
        ),
        (
            KcpConfig {
                flavor: KcpFlavor::Ikcp,
                ..KcpConfig::fast2().with_windows(256, 256)
            },
            lossy,
        ),
    ];
    let mut partial_passes = 0;
    for (i, (kcp, link)) in cases.into_iter().enumerate() {
        let cfg = transfer(4 << 20, kcp, link, 40 + i as u64);
        let run = |full: bool| {
            flush::FULL_PASSES.with(|f| f.set(full));
            let r = run_transfer(&cfg, test_start());
            flush::FULL_PASSES.with(|f| f.set(false));
            assert!(
                r.completed && r.sha256_sent == r.sha256_received,
                "case {i}"
            );
            r
        };
        let full = run(true);
        let before = flush::PARTIAL_PASSES.with(std::cell::Cell::get);
        let partial = run(false);
        partial_passes += flush::PARTIAL_PASSES.with(std::cell::Cell::get) - before;
        assert_eq!(
            full.wire_digest, partial.wire_digest,
            "case {i}: the wire differs"
        );
        assert_eq!(full.elapsed, partial.elapsed, "case {i}");
        assert_eq!(full.sender.out_segs, partial.sender.out_segs, "case {i}");
    }
    assert!(
        partial_passes > 500,
        "only {partial_passes} partial passes: nothing compared"
    );
}
