//! Stack behaviour in the simulator: a plain session as a stack, the drain and deadline
//! contracts, dead link, and linger-until-acknowledged.
use std::time::Duration;

use super::*;
use crate::driver::{Machine, StreamEvent, StreamId, Streams};
use crate::kcp::KcpConfig;
use crate::rng::seeded;
use crate::session::{CryptMode, Session, SessionConfig};
use crate::sim::{test_start, LinkConfig, Pair};

type PlainStack = Stack<Session, Plain>;
type Close = StackClose<KcpCloseReason, Infallible>;

fn cfg(rcv_wnd: u32) -> SessionConfig {
    SessionConfig {
        kcp: KcpConfig::fast3()
            .with_windows(64, rcv_wnd)
            .with_stream(true),
        crypt: CryptMode::Raw,
        key: [0; 32],
        data_shards: 0,
        parity_shards: 0,
    }
}

fn pair(link: LinkConfig, c: &SessionConfig, seed: u64) -> Pair<PlainStack, PlainStack> {
    let t = test_start();
    let a = Stack::new(
        Session::client(9, c, t, Box::new(seeded(1))),
        Plain::default(),
    );
    let b = Stack::new(Session::new(9, c, t, Box::new(seeded(2))), Plain::default());
    Pair::new(a, b, t, link.clone(), link, seed)
}

fn read_all(s: &mut PlainStack, into: &mut Vec<u8>) {
    let mut buf = [0u8; 4096];
    while let Ok(n) = s.read(StreamId::SOLE, &mut buf) {
        into.extend_from_slice(&buf[..n]);
    }
}

fn closes<E: PartialEq + Copy>(events: &[StreamEvent<E>]) -> Vec<E> {
    events
        .iter()
        .filter_map(|e| match e {
            StreamEvent::Closed(r) => Some(*r),
            _ => None,
        })
        .collect()
}

fn data(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 % 251) as u8).collect()
}

/// A plain session through the stack delivers exactly, reports Acknowledged, and goes idle
/// (no deadline, no output) once done.
#[test]
fn plain_stack_delivers_and_goes_idle() {
    let link = LinkConfig::perfect()
        .with_delay(Duration::from_millis(15))
        .with_loss(0.1);
    let mut p = pair(link, &cfg(128), 3);
    let want = data(100_000);
    assert_eq!(p.a.open_stream(), Ok(StreamId::SOLE));
    assert_eq!(p.b.accept_stream(), Some(StreamId::SOLE));
    assert_eq!(
        p.b.accept_stream(),
        None,
        "the sole stream is accepted once"
    );
    let (mut sent, mut got) = (0, Vec::new());
    while got.len() < want.len() {
        while sent < want.len() {
            let end = (sent + 8192).min(want.len());
            match p.a.write(StreamId::SOLE, &want[sent..end]) {
                Ok(n) => sent += n,
                Err(StreamError::Blocked) => break,
                Err(e) => panic!("{e}"),
            }
        }
        read_all(&mut p.b, &mut got);
        assert!(p.step(), "stalled at {} of {}", got.len(), want.len());
    }
    assert_eq!(got, want);
    p.drive();
    assert!(p.a.all_acked(StreamId::SOLE));
    assert!(p
        .events_a
        .contains(&StreamEvent::Acknowledged(StreamId::SOLE)));
    assert!(p.events_a.contains(&StreamEvent::Writable(StreamId::SOLE)));
    assert!(p.events_b.contains(&StreamEvent::Readable(StreamId::SOLE)));
    assert_eq!(p.a.poll_timeout(), None);
    assert!(!p.a.has_transmit() && !p.b.has_transmit());
    assert!(closes(&p.events_a).is_empty());
}

/// The deadline is the minimum of the layers' (here the lower's retransmission timer and
/// the upper's linger deadline), and pending output is never a deadline.
#[test]
fn deadline_is_the_minimum_of_the_layers() {
    let t = test_start();
    let c = cfg(128);
    let mut s: PlainStack = Stack::new(
        Session::client(9, &c, t, Box::new(seeded(1))),
        Plain::default(),
    );
    assert_eq!(s.poll_timeout(), None);
    s.write(StreamId::SOLE, b"x").unwrap();
    assert!(s.has_transmit());
    assert_eq!(s.poll_timeout(), None, "output is not a deadline");
    let mut buf = Vec::new();
    while s.poll_transmit(t, &mut buf).is_some() {}
    assert!(!s.has_transmit());
    let rto = s.poll_timeout().expect("retransmission timer");
    assert_eq!(Some(rto), s.lower().poll_timeout());
    s.close_stream(StreamId::SOLE);
    while s.poll_transmit(t, &mut buf).is_some() {}
    assert_eq!(s.upper().poll_timeout(), Some(t + LINGER_TIMEOUT));
    assert_eq!(s.poll_timeout(), Some(rto.min(t + LINGER_TIMEOUT)));
}

/// Policy: a dead link closes the connection with `DeadLink`, exactly once, as the final
/// event; the stack then stays silent.
#[test]
fn dead_link_closes_the_stack_once() {
    let mut p = pair(LinkConfig::perfect().with_loss(1.0), &cfg(128), 4);
    p.a.write(StreamId::SOLE, b"into the void").unwrap();
    p.drive_for(Duration::from_secs(600));
    assert_eq!(
        closes(&p.events_a),
        [Close::Lower(KcpCloseReason::DeadLink)]
    );
    assert!(matches!(p.events_a.last(), Some(StreamEvent::Closed(_))));
    assert_eq!(p.a.poll_timeout(), None);
    assert_eq!(p.a.write(StreamId::SOLE, b"more"), Err(StreamError::Closed));
}

/// Policy: a dropped stream lingers until everything written is acknowledged, then the
/// connection closes; the peer receives every byte.
#[test]
fn dropped_stream_lingers_until_acknowledged() {
    let link = LinkConfig::perfect()
        .with_delay(Duration::from_millis(20))
        .with_loss(0.2);
    let mut p = pair(link, &cfg(128), 5);
    let want = data(30_000);
    p.a.write(StreamId::SOLE, &want).unwrap();
    p.a.close_stream(StreamId::SOLE);
    let mut got = Vec::new();
    let limit = p.now + Duration::from_secs(60);
    while p.now < limit && closes(&p.events_a).is_empty() {
        read_all(&mut p.b, &mut got);
        if !p.step() {
            break; // the final flush may send nothing: closing can be the last step
        }
    }
    read_all(&mut p.b, &mut got);
    assert_eq!(got, want, "every byte arrived before the close");
    assert_eq!(closes(&p.events_a), [Close::Lower(KcpCloseReason::Local)]);
    assert!(
        p.a.lower().kcp().all_acked(),
        "closed only once acknowledged"
    );
    assert!(
        p.now < test_start() + LINGER_TIMEOUT,
        "not by the linger timeout"
    );
}

/// Policy: a dropped stream whose bytes are never acknowledged (the peer never reads, so
/// its window stays shut and no dead link is detected) closes at the linger timeout.
#[test]
fn linger_is_bounded() {
    let link = LinkConfig::perfect().with_delay(Duration::from_millis(20));
    let mut p = pair(link, &cfg(16), 6);
    let mut sent = 0;
    while let Ok(n) = p.a.write(StreamId::SOLE, &data(4096)) {
        sent += n;
        p.drive_for(Duration::from_millis(200));
    }
    assert!(sent > 0);
    p.a.close_stream(StreamId::SOLE);
    p.drive_for(LINGER_TIMEOUT - Duration::from_secs(1));
    assert!(closes(&p.events_a).is_empty(), "still lingering");
    p.drive_for(Duration::from_secs(2));
    assert_eq!(closes(&p.events_a), [Close::Lower(KcpCloseReason::Local)]);
    assert!(!p.a.lower().kcp().all_acked());
}
