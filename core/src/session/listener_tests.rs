//! Listener behaviour: demux, backlog bound, expiry, conv replacement, garbage input.
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use proptest::prelude::*;

use super::crypt::CipherKind;
use super::listener::{CloseReason, Listener, ListenerConfig, ListenerEvent};
use super::{CryptMode, Session, SessionConfig};
use crate::driver::{Machine, StreamEvent};
use crate::kcp::KcpConfig;
use crate::rng::seeded;
use crate::sim::test_start;

fn cfg(d: usize, p: usize) -> SessionConfig {
    SessionConfig {
        kcp: KcpConfig::fast3()
            .with_windows(128, 128)
            .with_mtu(1350)
            .with_stream(true),
        crypt: CryptMode::Block(CipherKind::Aes128),
        key: super::key::kcptun_key("k"),
        data_shards: d,
        parity_shards: p,
    }
}

fn addr(i: usize) -> SocketAddr {
    SocketAddr::from(([10, 0, (i >> 8) as u8, i as u8], 4000 + (i % 1000) as u16))
}

/// Clients and a listener wired back to back in virtual time; the server side echoes.
struct World {
    now: std::time::Instant,
    listener: Listener,
    clients: Vec<(SocketAddr, Session)>,
    buf: Vec<u8>,
    /// Feed through `handle_datagram_mut`/`handle_input_mut` (decryption in place).
    in_place: bool,
    /// Every datagram the listener sent, in order.
    wire: Vec<u8>,
}

impl World {
    fn new(n: usize, c: &SessionConfig) -> World {
        let now = test_start();
        let clients = (0..n)
            .map(|i| (addr(i), Session::dial(c, now, Box::new(seeded(i as u64)))))
            .collect();
        let listener = Listener::new(ListenerConfig::new(c.clone()), Box::new(seeded(99)));
        World {
            now,
            listener,
            clients,
            buf: Vec::new(),
            in_place: false,
            wire: Vec::new(),
        }
    }

    /// One round: move every datagram, echo what the server read; false when idle.
    fn step(&mut self) -> bool {
        let mut moved = false;
        let index: HashMap<SocketAddr, usize> = self
            .clients
            .iter()
            .enumerate()
            .map(|(i, (a, _))| (*a, i))
            .collect();
        for (a, s) in self.clients.iter_mut() {
            while s.poll_transmit(self.now, &mut self.buf).is_some() {
                if self.in_place {
                    let _ = self
                        .listener
                        .handle_datagram_mut(self.now, *a, &mut self.buf);
                } else {
                    let _ = self.listener.handle_datagram(self.now, *a, &self.buf);
                }
                self.buf.clear();
                moved = true;
            }
        }
        while let Some(id) = self.listener.accept() {
            let _ = id;
        }
        while let Some(ev) = self.listener.poll_event() {
            if let ListenerEvent::Conn(id, _) = ev {
                let mut tmp = [0u8; 4096];
                while let Some(s) = self.listener.session_mut(id) {
                    match s.read(&mut tmp) {
                        Ok(n) => {
                            let _ = s.write(&tmp[..n]);
                        }
                        Err(_) => break,
                    }
                }
            }
        }
        while let Some((to, _)) = self.listener.poll_transmit(self.now, &mut self.buf) {
            self.wire.extend_from_slice(&self.buf);
            if let Some(&i) = index.get(&to) {
                let c = &mut self.clients[i].1;
                let _ = if self.in_place {
                    c.handle_input_mut(self.now, &mut self.buf)
                } else {
                    c.handle_input(self.now, &self.buf)
                };
            }
            self.buf.clear();
            moved = true;
        }
        if moved {
            return true;
        }
        let next = self
            .clients
            .iter()
            .filter_map(|(_, s)| s.poll_timeout())
            .chain(self.listener.poll_timeout())
            .min();
        let Some(t) = next else { return false };
        self.now = self.now.max(t);
        self.listener.handle_timeout(self.now);
        for (_, s) in self.clients.iter_mut() {
            s.handle_timeout(self.now);
        }
        true
    }
}

#[test]
fn many_clients_echo_through_one_listener() {
    for (d, p) in [(0, 0), (10, 3)] {
        let mut w = World::new(200, &cfg(d, p));
        for (i, (_, s)) in w.clients.iter_mut().enumerate() {
            s.write(format!("hello from client {i}").as_bytes())
                .unwrap();
        }
        let mut got: Vec<Vec<u8>> = vec![Vec::new(); 200];
        for _ in 0..100_000 {
            if !w.step() {
                break;
            }
            for (i, (_, s)) in w.clients.iter_mut().enumerate() {
                let mut tmp = [0u8; 256];
                while let Ok(n) = s.read(&mut tmp) {
                    got[i].extend_from_slice(&tmp[..n]);
                }
            }
        }
        for (i, g) in got.iter().enumerate() {
            assert_eq!(
                g,
                format!("hello from client {i}").as_bytes(),
                "client {i} fec {d}/{p}"
            );
        }
        assert_eq!(w.listener.len(), 200);
        let snmp = w.listener.snmp();
        assert_eq!(snmp.passive_opens, 200);
        assert_eq!(snmp.curr_estab, 200);
        // Everything acknowledged: the listener arms no timer at all.
        assert_eq!(w.listener.poll_timeout(), None);
    }
}

#[test]
fn decrypting_in_place_changes_nothing_on_the_wire() {
    let modes = [
        CryptMode::Raw,
        CryptMode::Block(CipherKind::None),
        CryptMode::Block(CipherKind::Aes128),
        CryptMode::Aead(super::aead::AeadKind::ChaCha20Poly1305),
    ];
    for mode in modes {
        for (d, p) in [(0, 0), (10, 3)] {
            let c = SessionConfig {
                crypt: mode,
                ..cfg(d, p)
            };
            let run = |in_place: bool| {
                let mut w = World::new(3, &c);
                w.in_place = in_place;
                for (i, (_, s)) in w.clients.iter_mut().enumerate() {
                    s.write(&vec![i as u8; 20_000]).unwrap();
                }
                let mut got = vec![0usize; 3];
                for _ in 0..100_000 {
                    if !w.step() {
                        break;
                    }
                    for (i, (_, s)) in w.clients.iter_mut().enumerate() {
                        let mut tmp = [0u8; 4096];
                        while let Ok(n) = s.read(&mut tmp) {
                            assert!(tmp[..n].iter().all(|&b| b == i as u8));
                            got[i] += n;
                        }
                    }
                }
                (got, w.wire, w.listener.snmp())
            };
            let (copied, in_place) = (run(false), run(true));
            assert_eq!(
                copied.0,
                vec![20_000; 3],
                "{mode:?} fec {d}/{p}: echo incomplete"
            );
            assert_eq!(copied, in_place, "{mode:?} fec {d}/{p}");
        }
    }
}

/// First datagram of a fresh client session to `addr`.
fn first_datagram(c: &SessionConfig, seed: u64) -> Vec<u8> {
    let mut s = Session::dial(c, test_start(), Box::new(seeded(seed)));
    s.write(b"hi").unwrap();
    let mut buf = Vec::new();
    s.poll_transmit(test_start(), &mut buf).unwrap();
    buf
}

#[test]
fn backlog_bounds_half_open_sessions_and_they_expire() {
    let c = cfg(0, 0);
    let now = test_start();
    let mut l = Listener::new(ListenerConfig::new(c.clone()), Box::new(seeded(1)));
    for i in 0..1000 {
        let _ = l.handle_datagram(now, addr(i), &first_datagram(&c, i as u64));
    }
    assert_eq!(
        l.len(),
        128,
        "only the backlog's worth of un-accepted sessions exist"
    );
    assert_eq!(l.stats().dropped_backlog_full, 872);
    let mut buf = Vec::new();
    while l.poll_transmit(now, &mut buf).is_some() {
        buf.clear();
    }
    // Nobody accepts: after the accept timeout they are all gone.
    let mut t = now;
    while let Some(d) = l.poll_timeout() {
        t = t.max(d);
        l.handle_timeout(t);
        while l.poll_transmit(t, &mut buf).is_some() {
            buf.clear();
        }
        if t > now + Duration::from_secs(120) {
            break;
        }
    }
    assert_eq!(l.len(), 0);
    let closed = std::iter::from_fn(|| l.poll_event())
        .filter(|e| {
            matches!(
                e,
                ListenerEvent::Conn(_, StreamEvent::Closed(CloseReason::AcceptTimeout))
            )
        })
        .count();
    assert_eq!(closed, 128);
    assert_eq!(l.poll_timeout(), None);
}

/// `max_sessions: 1` (`tether cat --listen`): a second address gets no session, so nothing
/// of its datagrams is acknowledged; `last_received` follows the served peer's datagrams.
#[test]
fn one_session_listener_ignores_other_addresses_and_tracks_the_last_datagram() {
    let c = cfg(0, 0);
    let t0 = test_start();
    let mut lc = ListenerConfig::new(c.clone());
    lc.max_sessions = 1;
    let mut l = Listener::new(lc, Box::new(seeded(1)));
    l.handle_datagram(t0, addr(1), &first_datagram(&c, 1))
        .unwrap();
    let id = l.accept().expect("the first address is served");
    assert_eq!(l.last_received(id), Some(t0));
    let t1 = t0 + Duration::from_millis(700);
    l.handle_datagram(t1, addr(2), &first_datagram(&c, 2))
        .unwrap();
    assert_eq!(l.len(), 1, "no session for a second address");
    assert_eq!(l.stats().dropped_backlog_full, 1);
    let mut buf = Vec::new();
    while let Some((to, _)) = l.poll_transmit(t1, &mut buf) {
        assert_eq!(
            to,
            addr(1),
            "nothing is sent (no ACK) to the refused address"
        );
        buf.clear();
    }
    // A retransmission of the same datagram still counts as hearing from the peer.
    l.handle_datagram(t1, addr(1), &first_datagram(&c, 1))
        .unwrap();
    assert_eq!(l.last_received(id), Some(t1));
}

#[test]
fn new_conv_with_sn_zero_replaces_and_other_convs_are_dropped() {
    let c = cfg(0, 0);
    let now = test_start();
    let mut l = Listener::new(ListenerConfig::new(c.clone()), Box::new(seeded(1)));
    l.handle_datagram(now, addr(1), &first_datagram(&c, 1))
        .unwrap();
    let first = l.accept().unwrap();
    // Same address, new conversation starting at sn 0: the peer restarted.
    l.handle_datagram(now, addr(1), &first_datagram(&c, 2))
        .unwrap();
    let second = l.accept().unwrap();
    assert_ne!(first, second);
    assert!(l.session(first).is_none());
    assert!(std::iter::from_fn(|| l.poll_event())
        .any(|e| e == ListenerEvent::Conn(first, StreamEvent::Closed(CloseReason::Replaced))));
    // A different conv with sn != 0 is dropped.
    let mut s = Session::dial(&c, now, Box::new(seeded(3)));
    for _ in 0..3 {
        s.write(&[0u8; 2000]).unwrap();
    }
    let mut buf = Vec::new();
    let mut last = Vec::new();
    while s.poll_transmit(now, &mut buf).is_some() {
        last = std::mem::take(&mut buf);
    }
    l.handle_datagram(now, addr(1), &last).unwrap();
    assert_eq!(l.stats().dropped_conv_mismatch, 1);
    assert!(l.session(second).is_some());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, .. ProptestConfig::default() })]
    /// Arbitrary (address, datagram) pairs never panic and never exceed the session bound.
    #[test]
    fn garbage_is_dropped_and_bounded(pkts in proptest::collection::vec((0usize..300, proptest::collection::vec(any::<u8>(), 0..200)), 0..300)) {
        for mode in [CryptMode::Raw, CryptMode::Block(CipherKind::None)] {
            let mut c = cfg(10, 3);
            c.crypt = mode;
            let now = test_start();
            let mut lc = ListenerConfig::new(c);
            lc.backlog = 16;
            let mut l = Listener::new(lc, Box::new(seeded(1)));
            for (a, d) in &pkts {
                let _ = l.handle_datagram(now, addr(*a), d);
                prop_assert!(l.len() <= 16);
            }
            let mut buf = Vec::new();
            while l.poll_transmit(now, &mut buf).is_some() {
                buf.clear();
            }
        }
    }
}

/// An idle session gives its buffers back `IDLE_RELEASE_DELAY` after it went idle, on one
/// timer that is not re-armed, and works as before afterwards (issue 13 item 5; the bytes
/// themselves are counted in tests/tests/idle_memory.rs).
#[test]
fn idle_release_fires_once_and_the_session_keeps_working() {
    use super::listener::IDLE_RELEASE_DELAY;
    let mut w = World::new(1, &cfg(10, 3));
    for round in 0..3 {
        w.clients[0].1.write(b"ping").unwrap();
        let (mut got, mut armed) = (Vec::new(), false);
        for _ in 0..10_000 {
            if got == b"ping" && w.clients[0].1.poll_timeout().is_none() {
                // Everything exchanged and acknowledged: only the release timer is left.
                if let Some(t) = w.listener.poll_timeout() {
                    armed |= t > w.now && t <= w.now + IDLE_RELEASE_DELAY;
                }
            }
            if !w.step() {
                break;
            }
            let mut tmp = [0u8; 64];
            while let Ok(n) = w.clients[0].1.read(&mut tmp) {
                got.extend_from_slice(&tmp[..n]);
            }
        }
        assert_eq!(got, b"ping", "round {round}");
        assert!(armed, "round {round}: release timer armed once idle");
        assert_eq!(
            w.listener.poll_timeout(),
            None,
            "round {round}: not re-armed"
        );
    }
}

/// Drives `l` alone (its peer silent or spoofed) until `until`; returns the bytes it sent.
fn run_alone(l: &mut Listener, from: std::time::Instant, until: std::time::Instant) -> usize {
    let mut buf = Vec::new();
    let mut sent = 0;
    let mut t = from;
    loop {
        while let Some((_, tx)) = l.poll_transmit(t, &mut buf) {
            sent += tx.len;
            buf.clear();
        }
        match l.poll_timeout() {
            Some(d) if d <= until => {
                t = t.max(d);
                l.handle_timeout(t);
            }
            _ => return sent,
        }
    }
}

/// Issue 13 item 4: a spoofed datagram makes the listener send the victim no more bytes than
/// the spoofer sent, whatever the application writes back.
#[test]
fn unverified_sessions_send_no_more_than_they_received() {
    for (d, p) in [(0, 0), (10, 3)] {
        let c = cfg(d, p);
        let now = test_start();
        let mut l = Listener::new(ListenerConfig::new(c.clone()), Box::new(seeded(5)));
        let first = first_datagram(&c, 7);
        l.handle_datagram(now, addr(1), &first).unwrap();
        let id = l.accept().unwrap();
        l.session_mut(id)
            .unwrap()
            .write(&vec![7u8; 100_000])
            .unwrap();
        let sent = run_alone(&mut l, now, now + Duration::from_secs(60));
        assert!(
            sent <= first.len(),
            "fec {d}/{p}: sent {sent} bytes to an address that sent {}",
            first.len()
        );
        if let Some(s) = l.session(id) {
            let a = s.amplification();
            assert!(!a.verified);
            assert!(a.sent <= a.received, "{a:?}");
        }
    }
}

/// A real client gets everything: the echo of its 2-byte request is held until its
/// retransmission doubles the budget, the client acknowledges that small PUSH (verified), and
/// a 100 kB reply then flows at full speed. Before verification the listener never sent more
/// than it received; nothing is lost while held.
#[test]
fn held_output_is_released_and_verification_unlocks_the_rest() {
    for (d, p) in [(0, 0), (10, 3)] {
        let c = cfg(d, p);
        let mut w = World::new(1, &c);
        w.clients[0].1.write(b"hi").unwrap();
        let reply: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let mut got = Vec::new();
        let mut written = false;
        for _ in 0..50_000 {
            if !w.step() {
                break;
            }
            let id = w.listener.ids().next();
            if let Some(id) = id {
                let a = w.listener.session(id).unwrap().amplification();
                assert!(a.verified || a.sent <= a.received, "fec {d}/{p}: {a:?}");
                if !written && w.listener.session_mut(id).unwrap().write(&reply).is_ok() {
                    written = true;
                }
            }
            let mut tmp = [0u8; 4096];
            while let Ok(n) = w.clients[0].1.read(&mut tmp) {
                got.extend_from_slice(&tmp[..n]);
            }
        }
        let id = w.listener.ids().next().unwrap();
        let a = w.listener.session(id).unwrap().amplification();
        assert!(a.verified, "fec {d}/{p}: {a:?}");
        let mut want = b"hi".to_vec();
        want.extend_from_slice(&reply);
        assert_eq!(got.len(), want.len(), "fec {d}/{p}");
        assert_eq!(got, want, "fec {d}/{p}");
    }
}

/// Held output leaves as soon as the peer sends more bytes.
#[test]
fn more_input_releases_held_output() {
    let c = cfg(0, 0);
    let now = test_start();
    let mut l = Listener::new(ListenerConfig::new(c.clone()), Box::new(seeded(6)));
    let mut client = Session::dial(&c, now, Box::new(seeded(8)));
    client.write(b"hi").unwrap();
    let mut buf = Vec::new();
    client.poll_transmit(now, &mut buf).unwrap();
    l.handle_datagram(now, addr(3), &buf).unwrap();
    let id = l.accept().unwrap();
    l.session_mut(id).unwrap().write(&[5u8; 3000]).unwrap();
    let before = run_alone(&mut l, now, now);
    assert!(before <= buf.len(), "{before} > {}", buf.len());
    // The same address sends 4 000 more bytes: held datagrams may now go, up to that much.
    client.write(&[6u8; 4000]).unwrap();
    let mut more = 0;
    let mut d = Vec::new();
    while client.poll_transmit(now, &mut d).is_some() {
        more += d.len();
        l.handle_datagram(now, addr(3), &d).unwrap();
        d.clear();
    }
    let after = run_alone(&mut l, now, now);
    assert!(after > 0, "nothing released");
    assert!(before + after <= buf.len() + more);
}

/// Client sessions chose their peer: they are verified from the start.
#[test]
fn client_sessions_are_verified() {
    let c = cfg(0, 0);
    let now = test_start();
    let mut cl = ListenerConfig::new(c.clone());
    cl.accept_incoming = false;
    let mut l = Listener::new(cl, Box::new(seeded(3)));
    let id = l.connect(now, addr(2));
    l.session_mut(id).unwrap().write(&[9u8; 10_000]).unwrap();
    let sent = run_alone(&mut l, now, now);
    assert!(sent >= 10_000, "sent {sent}");
    assert!(l.session(id).unwrap().amplification().verified);
}

/// The kcp-go interop stall: with the ACK of a request already sent on its own, the echo of
/// the request (exactly as large) must still go out; the client, acknowledged, sends nothing
/// more to grow the budget.
#[test]
fn echo_after_a_lone_ack_is_not_held() {
    let mut c = cfg(0, 0);
    c.kcp.ack_nodelay = true;
    let now = test_start();
    let mut l = Listener::new(ListenerConfig::new(c.clone()), Box::new(seeded(4)));
    let first = first_datagram(&c, 9);
    l.handle_datagram(now, addr(4), &first).unwrap();
    let id = l.accept().unwrap();
    let ack = run_alone(&mut l, now, now);
    assert!(ack > 0, "the ACK went out first");
    l.session_mut(id).unwrap().write(b"hi").unwrap();
    let echo = run_alone(&mut l, now, now);
    assert!(echo >= first.len(), "echo held: {echo} bytes sent");
    let a = l.session(id).unwrap().amplification();
    assert!(a.sent <= a.received, "{a:?}");
}

/// "Has output" is explicit on the listener: an application write marks output pending
/// (`has_transmit`) without turning the timer deadline into `now`, and draining clears it.
#[test]
fn pending_output_is_has_transmit_not_a_deadline() {
    let c = cfg(0, 0);
    let now = test_start();
    let mut l = Listener::new(ListenerConfig::new(c.clone()), Box::new(seeded(1)));
    // A client session: verified, so anti-amplification holds nothing back.
    let id = l.connect(now, addr(0));
    let mut buf = Vec::new();
    l.session_mut(id).unwrap().write(b"hello").unwrap();
    while l.poll_transmit(now, &mut buf).is_some() {}
    assert!(!l.has_transmit());
    let before = l.poll_timeout();
    let later = now + Duration::from_millis(3);
    l.handle_timeout(later);
    while l.poll_transmit(later, &mut buf).is_some() {}
    l.session_mut(id).unwrap().write(b"answer").unwrap();
    assert!(l.has_transmit());
    assert!(
        l.poll_timeout().is_none_or(|t| t > later),
        "pending output is not a deadline at now (was {before:?})"
    );
    buf.clear();
    while l.poll_transmit(later, &mut buf).is_some() {}
    assert!(!buf.is_empty());
    assert!(!l.has_transmit());
}

/// A client session to the listener's peer address `addr(0)`, and its id on the listener
/// (accepted, one exchange done, so both sides are verified).
fn connected(w: &mut World) -> super::SessionId {
    w.clients[0].1.write(b"hi").unwrap();
    for _ in 0..1000 {
        if !w.step() {
            break;
        }
    }
    let id = w.listener.ids().next().expect("the session");
    let mut tmp = [0u8; 16];
    while w.clients[0].1.read(&mut tmp).is_ok() {}
    id
}

fn listener_events(l: &mut Listener) -> Vec<ListenerEvent> {
    std::iter::from_fn(|| l.poll_event()).collect()
}

/// Policy in core: a dead link closes the session with `CloseReason::DeadLink`, exactly once,
/// as the final event (every runtime then behaves alike).
#[test]
fn dead_link_closes_the_session() {
    let mut w = World::new(1, &cfg(0, 0));
    let id = connected(&mut w);
    listener_events(&mut w.listener);
    // The client vanishes: the listener's data is never acknowledged.
    w.listener
        .session_mut(id)
        .unwrap()
        .write(b"anyone?")
        .unwrap();
    let now = w.now;
    run_alone(&mut w.listener, now, now + Duration::from_secs(600));
    let evs = listener_events(&mut w.listener);
    let closed: Vec<_> = evs
        .iter()
        .filter(|e| matches!(e, ListenerEvent::Conn(_, StreamEvent::Closed(_))))
        .collect();
    assert_eq!(
        closed,
        [&ListenerEvent::Conn(
            id,
            StreamEvent::Closed(CloseReason::DeadLink)
        )]
    );
    assert_eq!(
        evs.last(),
        Some(&ListenerEvent::Conn(
            id,
            StreamEvent::Closed(CloseReason::DeadLink)
        ))
    );
    assert!(w.listener.is_empty());
    assert_eq!(w.listener.poll_timeout(), None);
}

/// Policy in core: `close_when_acked` lingers until everything written is acknowledged, then
/// closes (`Local`); the peer receives every byte.
#[test]
fn close_when_acked_lingers_until_acknowledged() {
    let mut w = World::new(1, &cfg(10, 3));
    let id = connected(&mut w);
    let reply: Vec<u8> = (0..50_000u32).map(|i| (i % 253) as u8).collect();
    let n = w.listener.session_mut(id).unwrap().write(&reply).unwrap();
    assert_eq!(n, reply.len());
    w.listener.close_when_acked(w.now, id);
    let mut got = Vec::new();
    let mut closed_at_len = None;
    for _ in 0..100_000 {
        let more = w.step();
        let mut tmp = [0u8; 4096];
        while let Ok(n) = w.clients[0].1.read(&mut tmp) {
            got.extend_from_slice(&tmp[..n]);
        }
        if closed_at_len.is_none() && w.listener.is_empty() {
            closed_at_len = Some(got.len());
        }
        if !more {
            break;
        }
    }
    assert_eq!(got, reply);
    assert!(closed_at_len.is_some(), "closed once acknowledged");
    assert!(w.clients[0].1.kcp().all_acked());
}

/// The linger is bounded: a peer that never acknowledges (and a dead-link count too high to
/// end it first) gets the session closed at `LINGER_TIMEOUT`.
#[test]
fn close_when_acked_is_bounded_by_the_linger_timeout() {
    use crate::stack::LINGER_TIMEOUT;
    let mut c = cfg(0, 0);
    c.kcp.dead_link = 10_000;
    let mut w = World::new(1, &c);
    let id = connected(&mut w);
    listener_events(&mut w.listener);
    w.listener.session_mut(id).unwrap().write(b"lost").unwrap();
    let start = w.now;
    w.listener.close_when_acked(start, id);
    run_alone(
        &mut w.listener,
        start,
        start + LINGER_TIMEOUT - Duration::from_secs(1),
    );
    assert_eq!(w.listener.len(), 1, "still lingering");
    run_alone(
        &mut w.listener,
        start,
        start + LINGER_TIMEOUT + Duration::from_secs(1),
    );
    assert!(w.listener.is_empty());
    assert_eq!(
        listener_events(&mut w.listener),
        [ListenerEvent::Conn(
            id,
            StreamEvent::Closed(CloseReason::Local)
        )]
    );
}

/// kcp-go's flush at session creation: a listener acknowledges the datagram that created a
/// session at once, and that ACK carries the listener's receive window, so a client (which
/// assumes kcp-go's default 32 segments until it hears one) opens its window without waiting
/// one flush interval. Before, the first ACK waited for the interval: a 10–12 ms stall at
/// the start of each bulk transfer.
#[test]
fn the_first_datagram_is_acknowledged_at_once_with_the_real_window() {
    let c = cfg(0, 0);
    let t0 = test_start();
    let mut client = Session::dial(&c, t0, Box::new(seeded(3)));
    client.write(&[7u8; 200_000]).unwrap();
    let mut l = Listener::new(ListenerConfig::new(c.clone()), Box::new(seeded(1)));
    let mut buf = Vec::new();
    let mut sent = 0;
    while client.poll_transmit(t0, &mut buf).is_some() {
        l.handle_datagram(t0, addr(1), &buf).unwrap();
        buf.clear();
        sent += 1;
    }
    assert!(
        sent > 1 && sent <= 32,
        "the client's first burst fills kcp-go's assumed window: {sent}"
    );
    assert_eq!(client.kcp().remote_window(), 32);
    let mut answers = 0;
    while let Some((to, _)) = l.poll_transmit(t0, &mut buf) {
        assert_eq!(to, addr(1));
        client.handle_input(t0, &buf).unwrap();
        buf.clear();
        answers += 1;
    }
    assert!(answers > 0, "an ACK leaves at t0, not one interval later");
    // Flushed right after the creating datagram: 128 less the one segment waiting to be read.
    assert_eq!(client.kcp().remote_window(), 127);
}
