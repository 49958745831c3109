//! Session rules, one test each, over `Stack<StreamLink, Smux>` with bytes shuttled by hand:
//! golden transcripts of both dialects, ids, flow control, refusals, keepalive, the seed's
//! close handshake, generations and id recycling.
use std::time::{Duration, Instant};

use super::*;
use crate::driver::{Bytes, Machine, StreamError, StreamEvent, StreamId, Streams};
use crate::sim::test_start;
use crate::stack::{Side, Stack, StackClose};
use crate::stream_link::{LinkCloseReason, StreamLink, StreamLinkConfig};

type S = Stack<StreamLink, Smux>;
type Ev = StreamEvent<StackClose<LinkCloseReason, SmuxError>>;

fn stack(cfg: &SmuxConfig, side: Side) -> S {
    let link = StreamLink::new(StreamLinkConfig {
        recv_buffer: 16 << 20,
        send_buffer: 16 << 20,
    });
    Stack::new(link, Smux::new(cfg.clone(), side))
}

fn hex(s: &str) -> Vec<u8> {
    let s: String = s.split_whitespace().collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn to_hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Everything `s` transmits now.
fn out(s: &mut S, now: Instant) -> Vec<u8> {
    let mut all = Vec::new();
    let mut buf = Vec::new();
    while s.has_transmit() {
        buf.clear();
        if s.poll_transmit(now, &mut buf).is_none() {
            break;
        }
        all.extend_from_slice(&buf);
    }
    all
}

/// Moves bytes both ways until neither side has anything to send.
fn exchange(a: &mut S, b: &mut S, now: Instant) {
    for _ in 0..10_000 {
        let ab = out(a, now);
        let ba = out(b, now);
        if ab.is_empty() && ba.is_empty() {
            return;
        }
        let _ = b.handle_input(now, &ab);
        let _ = a.handle_input(now, &ba);
    }
    panic!("exchange never settled");
}

fn events(s: &mut S) -> Vec<Ev> {
    std::iter::from_fn(|| s.poll_event()).collect()
}

fn closed(evs: &[Ev]) -> Option<SmuxError> {
    evs.iter().find_map(|e| match e {
        StreamEvent::Closed(StackClose::Upper(r)) => Some(*r),
        _ => None,
    })
}

fn read_all(s: &mut S, id: StreamId) -> (Vec<u8>, StreamError) {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(id, &mut buf) {
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) => return (got, e),
        }
    }
}

/// Writes `data[*sent..]` until the stream refuses more.
fn write_while_taken(s: &mut S, id: StreamId, data: &[u8], sent: &mut usize) {
    while *sent < data.len() {
        match s.write(id, &data[*sent..]) {
            Ok(n) => *sent += n,
            Err(_) => break,
        }
    }
}

fn data(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

// ---- configuration --------------------------------------------------------------------

#[test]
fn defaults_and_validation_name_the_field() {
    let x = SmuxConfig::xtaci(1);
    assert_eq!(x.dialect, Dialect::V1);
    assert_eq!(x.keepalive_interval, Some(Duration::from_secs(10)));
    assert_eq!(x.max_frame_size, 32_768);
    assert_eq!(x.max_receive_buffer, 4 << 20);
    assert!(x.validate().is_ok());
    assert_eq!(SmuxConfig::xtaci(2).dialect, Dialect::V2);
    let s = SmuxConfig::seed();
    assert_eq!((s.max_frame_size, s.max_stream_buffer), (65_536, 524_288));
    assert!(s.keepalive_interval.is_none() && s.validate().is_ok());
    let bad = SmuxConfig {
        max_frame_size: 65_536,
        ..SmuxConfig::xtaci(1)
    };
    assert_eq!(bad.validate().unwrap_err().field, "max_frame_size");
    let bad = SmuxConfig {
        keepalive_timeout: Duration::from_secs(1),
        ..SmuxConfig::xtaci(1)
    };
    assert_eq!(bad.validate().unwrap_err().field, "keepalive_timeout");
    let bad = SmuxConfig {
        max_stream_buffer: 8 << 20,
        ..SmuxConfig::xtaci(2)
    };
    let e = bad.validate().unwrap_err();
    assert_eq!(e.field, "max_stream_buffer");
    assert!(e.to_string().contains("max_stream_buffer"));
    let seed_ka = SmuxConfig {
        keepalive_interval: Some(Duration::from_secs(10)),
        ..SmuxConfig::seed()
    };
    assert_eq!(seed_ka.validate().unwrap_err().field, "keepalive_interval");
    assert_eq!(
        Smux::new(seed_ka, Side::Client).config().keepalive_interval,
        None
    );
    // new() clamps instead of panicking
    let m = Smux::new(bad, Side::Client);
    assert!(m.config().validate().is_ok());
}

// ---- golden transcripts -----------------------------------------------------------------

/// smux-xtaci.md §2's frames: SYN, PSH, FIN for stream 3; the server's UPD on its first read
/// (v2, §4.2) goes before its data.
#[test]
fn golden_xtaci_transcripts() {
    for v in [1u8, 2] {
        let t = test_start();
        let cfg = SmuxConfig::xtaci(v);
        let (mut a, mut b) = (stack(&cfg, Side::Client), stack(&cfg, Side::Server));
        let id = a.open_stream().unwrap();
        assert_eq!(id, StreamId(3));
        assert_eq!(a.write(id, b"ping"), Ok(4));
        a.finish(id).unwrap();
        let wire = out(&mut a, t);
        let vv = format!("{v:02x}");
        assert_eq!(
            to_hex(&wire),
            to_hex(&hex(&format!(
                "{vv}00 0000 03000000  {vv}02 0400 03000000 70696e67  {vv}01 0000 03000000"
            )))
        );
        b.handle_input(t, &wire).unwrap();
        let sid = b.accept_stream().unwrap();
        assert_eq!(sid, StreamId(3));
        assert_eq!(
            read_all(&mut b, sid),
            (b"ping".to_vec(), StreamError::Finished)
        );
        assert_eq!(
            b.write(sid, b"pong"),
            Ok(4),
            "half-closed: the echo still goes"
        );
        b.close_stream(sid);
        let back = out(&mut b, t);
        let want = if v == 2 {
            "02 04 0800 03000000 04000000 00000100  02 02 0400 03000000 706f6e67  02 01 0000 03000000"
        } else {
            "01 02 0400 03000000 706f6e67  01 01 0000 03000000"
        };
        assert_eq!(to_hex(&back), to_hex(&hex(want)), "v{v}");
        assert!(events(&mut b).contains(&StreamEvent::StreamClosed(sid)));
        assert_eq!(b.upper().live_streams(), 0);
        a.handle_input(t, &back).unwrap();
        assert_eq!(
            read_all(&mut a, id),
            (b"pong".to_vec(), StreamError::Finished)
        );
    }
}

/// smux-seed.md §10's frames: SYN, PSH "ping", FIN for id 1, the passive side's answering
/// FIN, a CFM of 262144, and a VRM answer.
#[test]
fn golden_seed_transcript() {
    let t = test_start();
    let cfg = SmuxConfig::seed();
    let (mut a, mut b) = (stack(&cfg, Side::Client), stack(&cfg, Side::Server));
    let id = a.open_stream().unwrap();
    assert_eq!(id, StreamId(1), "generation 0, id 1");
    a.write(id, b"ping").unwrap();
    let wire = out(&mut a, t);
    assert_eq!(
        to_hex(&wire),
        to_hex(&hex("00 0100 00000000  02 0100 04000000 70696e67"))
    );
    b.handle_input(t, &wire).unwrap();
    let sid = b.accept_stream().unwrap();
    assert_eq!(read_all(&mut b, sid).0, b"ping");
    a.close_stream(id);
    let fin = out(&mut a, t);
    assert_eq!(to_hex(&fin), to_hex(&hex("01 0100 00000000")));
    b.handle_input(t, &fin).unwrap();
    assert_eq!(to_hex(&out(&mut b, t)), to_hex(&hex("01 0100 00000000")));
    assert_eq!(read_all(&mut b, sid).1, StreamError::Finished);
    assert_eq!(b.write(sid, b"x"), Err(StreamError::Closed));
    assert_eq!(b.upper().seed_ids_used(), 1, "the passive side freed id 1");
    a.handle_input(t, &hex("01 0100 00000000")).unwrap();
    assert_eq!(a.upper().seed_ids_used(), 1, "the active side freed id 1");
    // VRM probe answered with the buggy verify_code (§7.1)
    b.handle_input(t, &hex("04 3412 DDCCBBAA")).unwrap();
    assert_eq!(to_hex(&out(&mut b, t)), "042034ccbbddaa");
    // CFM after 262144 bytes read
    let id = a.open_stream().unwrap();
    assert_eq!(id, StreamId(2 | 1 << 16), "round-robin: id 2, generation 1");
    let big = data(300_000, 1);
    let mut sent = 0;
    while sent < big.len() {
        sent += a.write(id, &big[sent..]).unwrap();
    }
    b.handle_input(t, &out(&mut a, t)).unwrap();
    let sid = b.accept_stream().unwrap();
    let mut buf = vec![0u8; 262_144];
    assert_eq!(b.read(sid, &mut buf), Ok(262_144));
    assert_eq!(to_hex(&out(&mut b, t)), to_hex(&hex("03 0200 00000400")));
}

#[test]
fn probe_request_and_check() {
    let p = probe::Probe::new(0x1234, 0xAABB_CCDD);
    assert_eq!(to_hex(&p.request()), "043412ddccbbaa");
    assert_eq!(p.check(&hex("04 2034 CCBBDDAA")[..6]), None);
    assert_eq!(p.check(&hex("04 2034 CCBBDDAA")), Some(true));
    assert_eq!(p.check(&hex("04 2134 CCBBDDAA")), Some(false));
    assert_eq!(p.check(&hex("05 0000 00000000")), Some(false));
    // A tether seed session answers the probe.
    let t = test_start();
    let mut s = stack(&SmuxConfig::seed(), Side::Server);
    let p = probe::Probe::new(0xFFFF, 0x0102_0304);
    s.handle_input(t, &p.request()).unwrap();
    assert_eq!(p.check(&out(&mut s, t)), Some(true));
}

// ---- xtaci rules ------------------------------------------------------------------------

#[test]
fn xtaci_ids_are_odd_from_3_and_even_from_2_and_opens_stop_at_the_wrap() {
    let cfg = SmuxConfig::xtaci(1);
    let mut c = stack(&cfg, Side::Client);
    let mut s = stack(&cfg, Side::Server);
    let c_ids: Vec<u32> = (0..3).map(|_| c.open_stream().unwrap().0).collect();
    let s_ids: Vec<u32> = (0..3).map(|_| s.open_stream().unwrap().0).collect();
    assert_eq!((c_ids, s_ids), (vec![3, 5, 7], vec![2, 4, 6]));
    let mut m = Smux::new(cfg, Side::Client);
    m.set_next_xtaci_id(u32::MAX - 4);
    let mut c = Stack::new(StreamLink::default(), m);
    assert_eq!(c.open_stream(), Ok(StreamId(u32::MAX - 2)));
    assert_eq!(c.open_stream(), Ok(StreamId(u32::MAX)));
    assert_eq!(c.open_stream(), Err(StreamError::Closed), "ErrGoAway");
}

#[test]
fn version_mismatch_and_unknown_cmd_end_the_session_once() {
    let t = test_start();
    for (input, want) in [
        (
            hex("02 00 0000 03000000"),
            SmuxError::Frame(frame::FrameError::Version { got: 2, want: 1 }),
        ),
        (
            hex("01 07 0000 03000000"),
            SmuxError::Frame(frame::FrameError::UnknownCmd(7)),
        ),
    ] {
        let mut s = stack(&SmuxConfig::xtaci(1), Side::Server);
        s.handle_input(t, &input).unwrap();
        let evs = events(&mut s);
        assert_eq!(closed(&evs), Some(want));
        assert_eq!(
            evs.iter()
                .filter(|e| matches!(e, StreamEvent::Closed(_)))
                .count(),
            1
        );
        assert_eq!(s.upper().stats().protocol_errors, 1);
    }
    let mut s = stack(&SmuxConfig::seed(), Side::Server);
    s.handle_input(t, &hex("05 0000 00000000")).unwrap(); // [HEAD]'s PIN
    assert_eq!(
        closed(&events(&mut s)),
        Some(SmuxError::Frame(frame::FrameError::UnknownCmd(5)))
    );
}

#[test]
fn psh_for_unknown_streams_is_discarded_and_duplicate_syn_ignored() {
    let t = test_start();
    let mut s = stack(&SmuxConfig::xtaci(1), Side::Server);
    let mut input = hex("01 02 0500 09000000");
    input.extend_from_slice(b"junk!");
    input.extend(hex(
        "01 00 0000 03000000 01 00 0000 03000000 01 02 0200 03000000",
    ));
    input.extend_from_slice(b"ok");
    input.extend(hex(
        "01 01 0000 77000000 01 04 0000 05000000 0000000000000000",
    ));
    // cut into 1-byte chunks: the decoder is incremental
    for b in &input {
        s.handle_input(t, std::slice::from_ref(b)).unwrap();
    }
    let st = s.upper().stats();
    assert_eq!(st.bytes_discarded, 5);
    assert_eq!(st.frames_unknown_stream, 3, "PSH 9, FIN 0x77, UPD 5");
    assert_eq!(st.streams_accepted, 1);
    assert_eq!(s.accept_stream(), Some(StreamId(3)));
    assert_eq!(s.accept_stream(), None, "the duplicate SYN was ignored");
    assert_eq!(read_all(&mut s, StreamId(3)).0, b"ok");
    assert!(closed(&events(&mut s)).is_none());
}

#[test]
fn a_full_backlog_or_max_streams_refuses_with_fin_without_stalling() {
    let t = test_start();
    let cfg = SmuxConfig {
        accept_backlog: 2,
        max_streams: 3,
        ..SmuxConfig::xtaci(1)
    };
    let mut s = stack(&cfg, Side::Server);
    let mut input = Vec::new();
    for sid in [3u32, 5, 7] {
        input.extend(hex(&format!("01 00 0000 {:02x}000000", sid)));
    }
    s.handle_input(t, &input).unwrap();
    assert_eq!(to_hex(&out(&mut s, t)), "0101000007000000", "SYN 7 refused");
    assert_eq!(s.accept_stream(), Some(StreamId(3)));
    assert_eq!(s.accept_stream(), Some(StreamId(5)));
    s.handle_input(t, &hex("01 00 0000 09000000 01 00 0000 0b000000"))
        .unwrap();
    // 9 fits the backlog (3 live), 11 hits max_streams
    assert_eq!(to_hex(&out(&mut s, t)), "010100000b000000");
    assert_eq!(s.upper().stats().streams_refused, 2);
    assert_eq!(s.upper().live_streams(), 3);
    // the session still works
    s.handle_input(t, &hex("01 02 0100 03000000 41")).unwrap();
    assert_eq!(read_all(&mut s, StreamId(3)).0, b"A");
}

/// v2: a writer stops at the initial 262144-byte window until the reader's UPD; a UPD
/// claiming more than was sent is `ErrConsumed`, a protocol error.
#[test]
fn v2_window_blocks_the_writer_until_upd_and_err_consumed_is_fatal() {
    let t = test_start();
    let cfg = SmuxConfig::xtaci(2);
    let (mut a, mut b) = (stack(&cfg, Side::Client), stack(&cfg, Side::Server));
    let id = a.open_stream().unwrap();
    let big = data(1 << 20, 3);
    let mut sent = 0;
    while let Ok(n) = a.write(id, &big[sent..]) {
        sent += n;
    }
    assert_eq!(
        sent,
        262_144 + 65_536,
        "window in flight + the send queue bound"
    );
    let wire = out(&mut a, t);
    assert_eq!(a.upper().stats().bytes_out, 262_144);
    b.handle_input(t, &wire).unwrap();
    let sid = b.accept_stream().unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 16384];
    for _ in 0..200 {
        while let Ok(n) = b.read(sid, &mut buf) {
            got.extend_from_slice(&buf[..n]);
        }
        exchange(&mut a, &mut b, t);
        write_while_taken(&mut a, id, &big, &mut sent);
    }
    assert_eq!(got, big);
    assert!(events(&mut a).contains(&StreamEvent::Writable(id)));
    // ErrConsumed
    let mut c = stack(&cfg, Side::Client);
    let id = c.open_stream().unwrap();
    c.write(id, b"abc").unwrap();
    out(&mut c, t);
    c.handle_input(t, &hex("02 04 0800 03000000 04000000 00000100"))
        .unwrap();
    assert_eq!(closed(&events(&mut c)), Some(SmuxError::Consumed(3)));
}

/// v1 has no window: reading the lower stream pauses once `max_receive_buffer` bytes wait
/// (the session bucket, §5), and resumes when the application reads.
#[test]
fn v1_bucket_pauses_reading_at_max_receive_buffer() {
    let t = test_start();
    let cfg = SmuxConfig {
        max_receive_buffer: 100_000,
        max_stream_buffer: 65_536,
        ..SmuxConfig::xtaci(1)
    };
    let (mut a, mut b) = (stack(&cfg, Side::Client), stack(&cfg, Side::Server));
    let id = a.open_stream().unwrap();
    let big = data(300_000, 9);
    let mut sent = 0;
    let mut got = Vec::new();
    for _ in 0..100 {
        write_while_taken(&mut a, id, &big, &mut sent);
        let w = out(&mut a, t);
        b.handle_input(t, &w).unwrap();
        assert!(
            b.upper().buffered() < 100_000 + 32_768,
            "bounded by the bucket + a frame"
        );
        if let Some(sid) = b.accept_stream() {
            assert_eq!(sid, id);
        }
        if b.lower().unread() > 0 {
            // paused: the lower stream holds the rest; a read resumes it
            let mut buf = [0u8; 50_000];
            if let Ok(n) = b.read(id, &mut buf) {
                got.extend_from_slice(&buf[..n]);
            }
            out(&mut b, t);
        } else {
            got.extend(read_all(&mut b, id).0);
        }
        if got.len() == big.len() {
            break;
        }
    }
    assert_eq!(got, big);
}

#[test]
fn keepalive_sends_nops_and_times_out_a_silent_peer() {
    let t = test_start();
    let mut s = stack(&SmuxConfig::xtaci(1), Side::Client);
    out(&mut s, t);
    assert_eq!(s.poll_timeout(), Some(t + Duration::from_secs(10)));
    s.handle_timeout(t + Duration::from_secs(10));
    assert_eq!(to_hex(&out(&mut s, t)), "0103000000000000");
    s.handle_timeout(t + Duration::from_secs(20));
    // a frame from the peer before the 30 s check keeps it alive
    s.handle_input(t + Duration::from_secs(25), &hex("01 03 0000 00000000"))
        .unwrap();
    s.handle_timeout(t + Duration::from_secs(30));
    assert!(closed(&events(&mut s)).is_none());
    let mut now = t + Duration::from_secs(30);
    while !s.is_closed() {
        now = s.poll_timeout().unwrap();
        s.handle_timeout(now);
        out(&mut s, now);
    }
    assert_eq!(
        now,
        t + Duration::from_secs(60),
        "a full silent timeout period"
    );
    assert_eq!(
        closed(&events(&mut s)),
        Some(SmuxError::KeepaliveTimeout(Duration::from_secs(30)))
    );
    assert_eq!(s.upper().stats().keepalives_sent, 6);
    // the seed arms no timer at all
    let mut seed = stack(&SmuxConfig::seed(), Side::Client);
    out(&mut seed, t);
    assert_eq!(seed.poll_timeout(), None);
}

/// A dropped stream flushes its queue for at most LINGER_TIMEOUT, then sends its FIN anyway.
#[test]
fn close_stream_lingers_then_fins() {
    let t = test_start();
    let cfg = SmuxConfig {
        keepalive_interval: None,
        ..SmuxConfig::xtaci(2)
    };
    let mut a = stack(&cfg, Side::Client);
    let id = a.open_stream().unwrap();
    let big = data(400_000, 1);
    let n = a.write(id, &big).unwrap() + a.write(id, &big[300_000..]).unwrap_or(0);
    assert!(n > 262_144);
    out(&mut a, t);
    a.close_stream(id);
    assert!(!a.all_acked(id));
    out(&mut a, t);
    let deadline = a.poll_timeout().unwrap();
    assert_eq!(deadline, t + crate::driver::LINGER_TIMEOUT);
    a.handle_timeout(deadline);
    assert_eq!(to_hex(&out(&mut a, deadline)), "0201000003000000");
    assert!(events(&mut a).contains(&StreamEvent::StreamClosed(id)));
    assert_eq!((a.upper().live_streams(), a.upper().buffered()), (0, 0));
    assert_eq!(a.upper().stats().streams_reset, 1);
    assert_eq!(a.poll_timeout(), None);
    assert_eq!(a.write(id, b"x"), Err(StreamError::Unknown(id)));
}

/// Control frames go first, then one data frame per stream in turn.
#[test]
fn the_scheduler_is_round_robin() {
    let t = test_start();
    let cfg = SmuxConfig {
        max_frame_size: 1000,
        ..SmuxConfig::xtaci(1)
    };
    let link = StreamLink::new(StreamLinkConfig {
        recv_buffer: 1 << 20,
        send_buffer: 100,
    });
    let mut a = Stack::new(link, Smux::new(cfg, Side::Client));
    let x = a.open_stream().unwrap();
    let y = a.open_stream().unwrap();
    // the lower stream takes 100 bytes: x's first frame goes straight in (part held by the
    // stack), the rest of x queues
    a.write(x, &[1; 5000]).unwrap();
    a.write(y, &[2; 2000]).unwrap();
    let mut wire = Vec::new();
    for _ in 0..100 {
        wire.extend(out(&mut a, t));
    }
    assert_eq!(wire.len(), 16 + 7000 + 8 * 7, "{}", to_hex(&wire[..40]));
    let mut order = Vec::new();
    let mut at = 0;
    while at + 8 <= wire.len() {
        let len = u16::from_le_bytes([wire[at + 2], wire[at + 3]]) as usize;
        if wire[at + 1] == 2 {
            order.push(wire[at + 4]);
        }
        at += 8 + len;
    }
    assert_eq!(order, [3, 3, 5, 3, 5, 3, 3], "x's direct frame, then turns");
}

// ---- seed rules -------------------------------------------------------------------------

#[test]
fn seed_protocol_errors_oversize_psh_cfm_overflow_window_exceeded() {
    let t = test_start();
    let mut s = stack(&SmuxConfig::seed(), Side::Server);
    s.handle_input(t, &hex("00 0100 00000000 02 0100 01000100"))
        .unwrap();
    assert_eq!(
        closed(&events(&mut s)),
        Some(SmuxError::OversizePush(65_537))
    );

    let mut s = stack(&SmuxConfig::seed(), Side::Client);
    let id = s.open_stream().unwrap();
    s.write(id, &[0; 100]).unwrap();
    out(&mut s, t);
    s.handle_input(t, &hex("03 0100 65000000")).unwrap();
    assert_eq!(
        closed(&events(&mut s)),
        Some(SmuxError::CfmOverflow {
            sid: 1,
            credit: 101,
            outstanding: 100
        })
    );

    let mut s = stack(&SmuxConfig::seed(), Side::Server);
    s.handle_input(t, &hex("00 0100 00000000")).unwrap();
    let frame = {
        let mut f = hex("02 0100 00000100");
        f.extend(vec![7u8; 65_536]);
        f
    };
    for _ in 0..9 {
        s.handle_input(t, &frame).unwrap();
    }
    assert!(
        closed(&events(&mut s)).is_none(),
        "window + one frame is tolerated"
    );
    s.handle_input(t, &frame).unwrap();
    assert!(matches!(
        closed(&events(&mut s)),
        Some(SmuxError::WindowExceeded { sid: 1, .. })
    ));
}

/// Both sides open id 1 at once: each SYN meets a live stream and is ignored, so the two
/// streams join and neither accept returns them (smux-seed.md §3.1).
#[test]
fn seed_simultaneous_open_joins_the_streams() {
    let t = test_start();
    let cfg = SmuxConfig::seed();
    let (mut a, mut b) = (stack(&cfg, Side::Client), stack(&cfg, Side::Server));
    let x = a.open_stream().unwrap();
    let y = b.open_stream().unwrap();
    assert_eq!((x, y), (StreamId(1), StreamId(1)));
    a.write(x, b"from a").unwrap();
    b.write(y, b"from b").unwrap();
    exchange(&mut a, &mut b, t);
    assert_eq!((a.accept_stream(), b.accept_stream()), (None, None));
    assert_eq!(read_all(&mut a, x).0, b"from b");
    assert_eq!(read_all(&mut b, y).0, b"from a");
    // both close at once: each FIN meets rule 1, neither answers, both free id 1
    a.close_stream(x);
    b.close_stream(y);
    exchange(&mut a, &mut b, t);
    assert_eq!(
        (a.upper().seed_ids_used(), b.upper().seed_ids_used()),
        (1, 1)
    );
    assert_eq!(a.upper().stats().frames_out, 3, "SYN, PSH, FIN: no answer");
}

/// A stale handle (same wire id, older generation) is `Unknown`: it cannot close the
/// stream that reuses its id.
#[test]
fn seed_stale_handles_do_not_reach_a_reused_id() {
    let t = test_start();
    let cfg = SmuxConfig::seed();
    let (mut a, mut b) = (stack(&cfg, Side::Client), stack(&cfg, Side::Server));
    // b's streams on id 1, twice: the first closed by the peer while b still holds it
    let x = a.open_stream().unwrap();
    exchange(&mut a, &mut b, t);
    let old = b.accept_stream().unwrap();
    a.close_stream(x);
    exchange(&mut a, &mut b, t);
    // a's allocator moves on round-robin; force id 1 again from b's side instead
    for _ in 0..65_534 {
        let h = a.open_stream().unwrap();
        a.close_stream(h);
        exchange(&mut a, &mut b, t);
        if let Some(h) = b.accept_stream() {
            b.close_stream(h);
        }
    }
    let reuse = a.open_stream().unwrap();
    assert_eq!(reuse.0 & 0xFFFF, 1, "the allocator wrapped back to id 1");
    exchange(&mut a, &mut b, t);
    let new = b.accept_stream().unwrap();
    assert_eq!(new.0 & 0xFFFF, 1);
    assert_ne!(new, old);
    assert_eq!(read_all(&mut b, old).1, StreamError::Finished);
    b.close_stream(old); // stale: the old stream only
    assert_eq!(
        out(&mut b, t),
        Vec::<u8>::new(),
        "no FIN for the new stream"
    );
    a.write(reuse, b"still open").unwrap();
    exchange(&mut a, &mut b, t);
    assert_eq!(read_all(&mut b, new).0, b"still open");
    assert_eq!(
        b.write(StreamId(old.0), b"x"),
        Err(StreamError::Unknown(old))
    );
}

/// 100 000 open/close cycles: ids come back after each FIN handshake on both sides.
#[test]
fn seed_ids_recycle_over_100k_cycles() {
    let t = test_start();
    let cfg = SmuxConfig::seed();
    let (mut a, mut b) = (stack(&cfg, Side::Client), stack(&cfg, Side::Server));
    for i in 0..100_000u32 {
        let (opener, closer) = if i % 2 == 0 {
            (&mut a, &mut b)
        } else {
            (&mut b, &mut a)
        };
        let h = opener.open_stream().unwrap();
        opener.write(h, b"x").unwrap();
        opener.close_stream(h);
        let w = out(opener, t);
        closer.handle_input(t, &w).unwrap();
        let got = closer.accept_stream().unwrap();
        let w = out(closer, t); // the answering FIN
        opener.handle_input(t, &w).unwrap();
        assert_eq!(
            read_all(closer, got),
            (b"x".to_vec(), StreamError::Finished)
        );
        closer.close_stream(got);
        assert_eq!(out(closer, t), Vec::<u8>::new());
    }
    for s in [&a, &b] {
        assert_eq!(s.upper().seed_ids_used(), 1);
        assert_eq!((s.upper().live_streams(), s.upper().buffered()), (0, 0));
    }
}

/// A SYN flood beyond `max_streams`, and 65 535 streams, keep memory within the config.
#[test]
fn syn_flood_stays_within_max_streams() {
    let t = test_start();
    for cfg in [SmuxConfig::xtaci(1), SmuxConfig::seed()] {
        let mut s = stack(&cfg, Side::Server);
        let mut input = Vec::new();
        for sid in 1..=70_000u32 {
            if cfg.dialect == Dialect::Seed {
                let id = (sid % 65_536) as u16;
                input.extend([0u8]);
                input.extend(id.to_le_bytes());
                input.extend([0u8; 4]);
            } else {
                input.extend(hex("01 00 0000"));
                input.extend(sid.to_le_bytes());
            }
            if input.len() > 60_000 {
                s.handle_input(t, &input).unwrap();
                input.clear();
                out(&mut s, t);
                while s.accept_stream().is_some() {}
            }
        }
        s.handle_input(t, &input).unwrap();
        out(&mut s, t);
        let m = s.upper();
        assert!(m.live_streams() <= cfg.max_streams, "{:?}", cfg.dialect);
        assert!(m.buffered() <= 64 * 1024, "{}", m.buffered());
        assert!(m.stats().streams_refused > 0);
        assert!(closed(&events(&mut s)).is_none());
    }
}

/// `Acknowledged(id)` once a stream's frames left through the lower stream; `all_acked`
/// follows.
#[test]
fn acknowledged_after_the_lower_stream_takes_the_frames() {
    let t = test_start();
    let mut a = stack(&SmuxConfig::xtaci(1), Side::Client);
    let id = a.open_stream().unwrap();
    a.write(id, b"hello").unwrap();
    assert!(!a.all_acked(id));
    out(&mut a, t);
    assert!(a.all_acked(id));
    assert!(events(&mut a).contains(&StreamEvent::Acknowledged(id)));
}

/// Acknowledgement is per stream: once a stream's frames were acknowledged, frames other
/// streams write later (here a SYN, which no stream's acknowledgement covers) do not make it
/// unacknowledged again. When they did, a runtime that settled the stream after such a frame
/// went out never heard of it again and its flush waited forever
/// (`tests/tests/concurrent_opens.rs`, `over_kcp`, about 1 run in 10).
#[test]
fn a_streams_acknowledgement_does_not_wait_for_other_streams_control_frames() {
    let t = test_start();
    let mut a = stack(&SmuxConfig::xtaci(2), Side::Client);
    let x = a.open_stream().unwrap();
    a.write(x, b"hello").unwrap();
    out(&mut a, t);
    assert!(a.all_acked(x));
    assert!(events(&mut a).contains(&StreamEvent::Acknowledged(x)));
    let y = a.open_stream().unwrap();
    a.handle_timeout(t); // the SYN goes down into the lower stream
    assert!(
        !crate::driver::ByteStream::all_acked(a.lower()),
        "the SYN is in flight"
    );
    assert!(a.all_acked(x), "x's own frames are all acknowledged");
    a.write(x, b"more").unwrap();
    assert!(!a.all_acked(x), "new bytes are not");
    out(&mut a, t);
    assert!(a.all_acked(x) && a.all_acked(y));
}

/// The lower stream's end (the peer closed TCP, as the seed's `Session.Close` does without
/// FINs): readers drain, then see the end; the session reports `PeerClosed` once.
#[test]
fn the_lower_streams_end_finishes_every_stream() {
    use crate::driver::Transport;
    let t = test_start();
    let mut s = stack(&SmuxConfig::seed(), Side::Server);
    s.handle_input(t, &hex("00 0500 00000000 02 0500 02000000 6869"))
        .unwrap();
    s.handle_eof(t);
    let id = s.accept_stream().unwrap();
    assert_eq!(
        read_all(&mut s, id),
        (b"hi".to_vec(), StreamError::Finished)
    );
    assert_eq!(closed(&events(&mut s)), Some(SmuxError::PeerClosed));
    assert_eq!(s.upper().stats().protocol_errors, 0);
}

/// PSH frames are at most `max_frame_size`, and a stream's FIN waits behind its queued data
/// even while the v2 window holds that data back.
#[test]
fn frames_are_cut_at_max_frame_size_and_fin_follows_the_data() {
    let t = test_start();
    let cfg = SmuxConfig::xtaci(2);
    let (mut a, mut b) = (stack(&cfg, Side::Client), stack(&cfg, Side::Server));
    let id = a.open_stream().unwrap();
    let big = data(300_000, 5);
    let mut sent = 0;
    while let Ok(n) = a.write(id, &big[sent..]) {
        sent += n;
        if sent == big.len() {
            break;
        }
    }
    assert_eq!(
        sent, 300_000,
        "window in flight + the send queue hold it all"
    );
    a.finish(id).unwrap();
    assert_eq!(a.write(id, b"x"), Err(StreamError::Closed));
    let wire = out(&mut a, t);
    let mut at = 0;
    let mut frames = Vec::new();
    while at + 8 <= wire.len() {
        let len = u16::from_le_bytes([wire[at + 2], wire[at + 3]]) as usize;
        frames.push((wire[at + 1], len));
        at += 8 + len;
    }
    // SYN, then 8 frames of 32768 = the 262144 initial window; no FIN yet
    assert_eq!(frames.len(), 9);
    assert!(frames[1..].iter().all(|&f| f == (2, 32_768)));
    assert!(!a.all_acked(id));
    b.handle_input(t, &wire).unwrap();
    let sid = b.accept_stream().unwrap();
    let mut got = Vec::new();
    let mut fin = None;
    for _ in 0..50 {
        let (g, e) = read_all(&mut b, sid);
        got.extend(g);
        if e == StreamError::Finished {
            fin = Some(got.len());
            break;
        }
        exchange(&mut a, &mut b, t);
    }
    assert_eq!(fin, Some(sent), "FIN after every byte");
    assert_eq!(got, big[..sent]);
}

mod robustness {
    use proptest::prelude::*;

    use super::*;

    /// One peer frame of either dialect, mostly well-formed: small ids, any command value
    /// (unknown ones included), lengths around the interesting bounds.
    fn frame(seed: bool) -> impl Strategy<Value = Vec<u8>> {
        (
            0u8..7,
            0u32..8,
            prop_oneof![0u32..64, Just(8), Just(65_536), Just(70_000)],
            any::<u8>(),
        )
            .prop_map(move |(cmd, sid, len, fill)| {
                let mut f = Vec::new();
                if seed {
                    f.push(cmd);
                    f.extend((sid as u16).to_le_bytes());
                    f.extend(len.to_le_bytes());
                } else {
                    f.extend([1, cmd]);
                    f.extend((len.min(65_535) as u16).to_le_bytes());
                    f.extend(sid.to_le_bytes());
                }
                let payload = if cmd == 2 {
                    len.min(2_000)
                } else if cmd == 4 {
                    8
                } else {
                    0
                };
                f.extend(std::iter::repeat_n(fill, payload as usize));
                f
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        /// Arbitrary frame sequences, cut anywhere, with the application reading, writing
        /// and closing in between: no panic, and the buffers stay within the config.
        #[test]
        fn arbitrary_peers_never_panic_or_overflow(
            dialect in 0u8..3,
            frames in proptest::collection::vec(frame(false), 1..60),
            cut in 1usize..300,
            ops in proptest::collection::vec(0u8..5, 60),
        ) {
            let t = test_start();
            let seed = dialect == 0;
            let cfg = if seed { SmuxConfig::seed() } else { SmuxConfig::xtaci(dialect) };
            let cfg = SmuxConfig { accept_backlog: 4, max_streams: 6, ..cfg };
            let mut s = stack(&cfg, Side::Server);
            let frames: Vec<Vec<u8>> = if seed {
                // re-encode the same choices in the seed's header layout
                frames.into_iter().map(|f| {
                    let len = u16::from_le_bytes([f[2], f[3]]) as u32;
                    let mut g = vec![f[1], f[4], f[5]];
                    g.extend(len.to_le_bytes());
                    g.extend_from_slice(&f[8..]);
                    g
                }).collect()
            } else {
                frames.into_iter().map(|mut f| { f[0] = dialect; f }).collect()
            };
            let bytes: Vec<u8> = frames.concat();
            let mut held = Vec::new();
            for (i, chunk) in bytes.chunks(cut).enumerate() {
                let _ = s.handle_input(t, chunk);
                while let Some(id) = s.accept_stream() {
                    held.push(id);
                }
                let mut buf = [0u8; 512];
                for &id in &held {
                    match ops[i % ops.len()] {
                        0 => { let _ = s.read(id, &mut buf); }
                        1 => { let _ = s.write(id, &[7; 700]); }
                        2 => { let _ = s.finish(id); }
                        3 => s.close_stream(id),
                        _ => {}
                    }
                }
                out(&mut s, t);
                let m = s.upper();
                prop_assert!(m.live_streams() <= cfg.max_streams);
                prop_assert!(m.buffered() <= cfg.max_receive_buffer + 70_000);
            }
            if let Some(d) = s.poll_timeout() {
                s.handle_timeout(d);
                out(&mut s, d);
            }
        }
    }
}

/// The owned-buffer path end to end in core: a chunk written on a stream goes out as frames
/// whose payloads are slices of it, and the receiving session hands the application slices
/// of the bytes its link was given, with the same wire bytes as copying writes produce.
#[test]
fn owned_chunks_cross_a_session_without_copies() {
    let now = test_start();
    let cfg = SmuxConfig::xtaci(2);
    let (mut a, mut b) = (stack(&cfg, Side::Client), stack(&cfg, Side::Server));
    let mut copying = stack(&cfg, Side::Client);
    let id = a.open_stream().unwrap();
    assert_eq!(copying.open_stream(), Ok(id));
    let payload = Bytes::from(data(40_000, 3));
    assert_eq!(a.write_chunk(id, payload.clone()), Ok(40_000));
    assert_eq!(copying.write(id, &payload), Ok(40_000));
    let mut pieces = Vec::new();
    while a.has_transmit() {
        if a.poll_transmit_bytes(now, &mut pieces).is_none() {
            break;
        }
    }
    let from = payload.as_ptr_range();
    assert!(
        pieces.iter().any(|p| from.contains(&p.as_ptr())),
        "a payload piece is a slice of the written chunk"
    );
    let wire = Bytes::from(pieces.concat());
    assert_eq!(&wire[..], &out(&mut copying, now)[..], "same wire bytes");
    b.handle_input_bytes(now, wire.clone()).unwrap();
    assert_eq!(b.accept_stream(), Some(id));
    let mut room = crate::driver::BytesMut::new();
    let first = b.read_chunk(id, usize::MAX, &mut room).unwrap();
    assert!(
        wire.as_ptr_range().contains(&first.as_ptr()),
        "a slice of the input"
    );
    let mut got = first.to_vec();
    while let Ok(c) = b.read_chunk(id, usize::MAX, &mut room) {
        got.extend_from_slice(&c);
    }
    assert_eq!(got, &payload[..]);
}
