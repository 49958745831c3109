//! The authenticated mode against a hostile network (issue 13 item 1) and conv replacement
//! on client endpoints (item 2): reflection, replay of a recorded session, counter
//! exhaustion, handshake under loss, replacement and `last_rx` only after authentication.
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::aead::AeadKind;
use super::crypt::CipherKind;
use super::listener::{CloseReason, Listener, ListenerConfig, ListenerEvent};
use super::{CryptMode, Session, SessionConfig};
use crate::driver::{Machine, StreamEvent};
use crate::kcp::KcpConfig;
use crate::rng::seeded;
use crate::sim::test_start;

fn cfg(crypt: CryptMode) -> SessionConfig {
    SessionConfig {
        kcp: KcpConfig::fast3()
            .with_windows(128, 128)
            .with_mtu(1350)
            .with_stream(true),
        crypt,
        key: super::key::kcptun_key("k"),
        data_shards: 0,
        parity_shards: 0,
    }
}

const CHACHA: CryptMode = CryptMode::Aead(AeadKind::ChaCha20Poly1305);

fn addr(i: u8) -> SocketAddr {
    SocketAddr::from(([10, 0, 0, i], 4000 + i as u16))
}

fn payload(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 + i / 251) as u8).collect()
}

/// A client `Session` talking to a server `Listener` over a perfect link, in virtual time.
struct Link {
    now: Instant,
    client: Session,
    server: Listener,
    client_addr: SocketAddr,
    /// Every datagram the client sent, in order.
    recorded: Vec<Vec<u8>>,
    /// Every datagram the server sent, in order.
    server_sent: Vec<Vec<u8>>,
    received: Vec<u8>,
}

impl Link {
    fn new(c: &SessionConfig, seed: u64) -> Link {
        let now = test_start();
        Link {
            now,
            client: Session::dial(c, now, Box::new(seeded(seed))),
            server: Listener::new(ListenerConfig::new(c.clone()), Box::new(seeded(seed + 100))),
            client_addr: addr(1),
            recorded: Vec::new(),
            server_sent: Vec::new(),
            received: Vec::new(),
        }
    }

    /// Moves datagrams and reads what the server's application gets; false when idle.
    fn step(&mut self) -> bool {
        let mut buf = Vec::new();
        let mut moved = false;
        while self.client.poll_transmit(self.now, &mut buf).is_some() {
            self.recorded.push(buf.clone());
            let _ = self
                .server
                .handle_datagram(self.now, self.client_addr, &buf);
            buf.clear();
            moved = true;
        }
        read_all(&mut self.server, &mut self.received);
        while let Some((to, _)) = self.server.poll_transmit(self.now, &mut buf) {
            assert_eq!(to, self.client_addr);
            self.server_sent.push(buf.clone());
            let _ = self.client.handle_input(self.now, &buf);
            buf.clear();
            moved = true;
        }
        if moved {
            return true;
        }
        let next = [self.client.poll_timeout(), self.server.poll_timeout()]
            .into_iter()
            .flatten()
            .min();
        let Some(t) = next else { return false };
        if t > self.now + Duration::from_secs(5) {
            return false; // only idle timers left (the tests control those)
        }
        self.now = self.now.max(t);
        self.client.handle_timeout(self.now);
        self.server.handle_timeout(self.now);
        true
    }

    /// Sends `data` from the client and runs until the server's application has read it.
    fn transfer(&mut self, data: &[u8]) {
        let mut off = 0;
        for _ in 0..1_000_000 {
            while off < data.len() && self.client.can_write() {
                let n = (data.len() - off).min(4096);
                self.client.write(&data[off..off + n]).unwrap();
                off += n;
            }
            if self.received.len() >= data.len() || !self.step() {
                break;
            }
        }
        assert_eq!(self.received, data, "transfer incomplete or corrupted");
        // Let the final acknowledgements settle (a second at most: idle timers stay armed).
        let until = self.now + Duration::from_secs(1);
        for _ in 0..1000 {
            if !self.step() || self.now > until {
                break;
            }
        }
    }
}

/// Accepts every waiting session and reads everything it delivers into `out`.
fn read_all(l: &mut Listener, out: &mut Vec<u8>) {
    while l.accept().is_some() {}
    let ids: Vec<_> = l.ids().collect();
    let mut tmp = [0u8; 8192];
    for id in ids {
        while let Some(s) = l.session_mut(id) {
            match s.read(&mut tmp) {
                Ok(n) => out.extend_from_slice(&tmp[..n]),
                Err(_) => break,
            }
        }
    }
}

/// Issue 13 item 1: a datagram the server sent, fed back to the server, must not
/// authenticate (before the fix both directions shared one key and counters started at 0).
#[test]
fn reflected_server_datagrams_fail_authentication() {
    for kind in [AeadKind::ChaCha20Poly1305, AeadKind::Aes128Gcm] {
        let c = cfg(CryptMode::Aead(kind));
        let mut l = Link::new(&c, 1);
        // Server writes too, so it sends data datagrams, not only ACKs.
        l.transfer(&payload(200_000));
        let id = l.server.ids().next().expect("server session");
        l.server
            .session_mut(id)
            .unwrap()
            .write(&payload(300_000))
            .unwrap();
        for _ in 0..10_000 {
            if !l.step() {
                break;
            }
        }
        let before = l.server.snmp().in_pkts;
        let sent = l.server_sent.clone();
        assert!(sent.len() >= 20, "{} server datagrams", sent.len());
        let mut accepted = 0;
        for d in &sent {
            if l.server.handle_datagram(l.now, l.client_addr, d).is_ok() {
                accepted += 1;
            }
        }
        assert_eq!(accepted, 0, "{kind:?}: reflected datagrams authenticated");
        assert_eq!(l.server.snmp().in_pkts, before);
        assert!(l.server.session(id).is_some(), "the session survives");
    }
}

/// The same through a bare server `Session` (the reproduction).
#[test]
fn reflected_datagrams_fail_on_a_bare_session() {
    let c = cfg(CHACHA);
    let now = test_start();
    let mut client = Session::dial(&c, now, Box::new(seeded(5)));
    let mut server = Session::new(client.conv(), &c, now, Box::new(seeded(6)));
    let data = payload(100_000);
    let mut got = Vec::new();
    let mut server_sent = Vec::new();
    let mut t = now;
    let mut off = 0;
    let mut buf = Vec::new();
    for _ in 0..100_000 {
        while off < data.len() && client.can_write() {
            let n = (data.len() - off).min(4096);
            client.write(&data[off..off + n]).unwrap();
            off += n;
        }
        let mut moved = false;
        while client.poll_transmit(t, &mut buf).is_some() {
            let _ = server.handle_input(t, &buf);
            buf.clear();
            moved = true;
        }
        let mut tmp = [0u8; 8192];
        while let Ok(n) = server.read(&mut tmp) {
            got.extend_from_slice(&tmp[..n]);
            let _ = server.write(&tmp[..n]);
        }
        while server.poll_transmit(t, &mut buf).is_some() {
            server_sent.push(buf.clone());
            let _ = client.handle_input(t, &buf);
            buf.clear();
            moved = true;
        }
        while client.read(&mut tmp).is_ok() {}
        if got.len() >= data.len() && !moved {
            break;
        }
        if !moved {
            let Some(next) = [client.poll_timeout(), server.poll_timeout()]
                .into_iter()
                .flatten()
                .min()
            else {
                break;
            };
            t = t.max(next);
            client.handle_timeout(t);
            server.handle_timeout(t);
        }
    }
    assert_eq!(got, data);
    let accepted = server_sent
        .iter()
        .rev()
        .take(200)
        .filter(|d| server.handle_input(t, d).is_ok())
        .count();
    assert_eq!(accepted, 0, "a server session accepted its own datagrams");
}

/// Issue 13 item 1: every client→server datagram of a full session, replayed later into a
/// fresh server from the same and from another address, delivers nothing.
#[test]
fn replayed_session_delivers_nothing() {
    for kind in [AeadKind::ChaCha20Poly1305, AeadKind::Aes128Gcm] {
        let c = cfg(CryptMode::Aead(kind));
        let mut l = Link::new(&c, 2);
        let data = payload(60_000);
        l.transfer(&data);
        let recorded = l.recorded.clone();
        for (from, seed) in [(addr(1), 7), (addr(9), 8)] {
            let mut fresh = Listener::new(ListenerConfig::new(c.clone()), Box::new(seeded(seed)));
            let mut now = l.now + Duration::from_secs(60);
            let mut got = Vec::new();
            let mut buf = Vec::new();
            for d in &recorded {
                let _ = fresh.handle_datagram(now, from, d);
                while fresh.poll_transmit(now, &mut buf).is_some() {
                    buf.clear();
                }
                read_all(&mut fresh, &mut got);
                now += Duration::from_millis(1);
                fresh.handle_timeout(now);
            }
            read_all(&mut fresh, &mut got);
            assert_eq!(
                got.len(),
                0,
                "{kind:?} from {from}: replayed bytes delivered"
            );
        }
        // And replayed into the live server itself: nothing new either.
        let before = l.received.len();
        for d in &recorded {
            let _ = l.server.handle_datagram(l.now, addr(1), d);
        }
        read_all(&mut l.server, &mut l.received);
        assert_eq!(l.received.len(), before);
    }
}

/// Issue 13 item 1: an authenticated-mode session fed only replays from its peer's address
/// still idles out (`last_rx` is refreshed only by datagrams that authenticate).
#[test]
fn replays_do_not_keep_a_session_alive() {
    let c = cfg(CHACHA);
    let mut l = Link::new(&c, 3);
    l.server = {
        let mut lc = ListenerConfig::new(c.clone());
        lc.idle_timeout = Some(Duration::from_secs(10));
        Listener::new(lc, Box::new(seeded(103)))
    };
    l.transfer(&payload(5_000));
    let recorded = l.recorded.clone();
    let start = l.now;
    while let Some(ev) = l.server.poll_event() {
        assert!(
            !matches!(ev, ListenerEvent::Conn(_, StreamEvent::Closed(_))),
            "closed too early"
        );
    }
    assert_eq!(l.server.len(), 1);
    let mut closed = false;
    let mut buf = Vec::new();
    for i in 0..60u64 {
        let now = start + Duration::from_millis(500 * i);
        let d = &recorded[(i as usize) % recorded.len()];
        let _ = l.server.handle_datagram(now, addr(1), d);
        l.server.handle_timeout(now);
        while l.server.poll_transmit(now, &mut buf).is_some() {
            buf.clear();
        }
        while let Some(ev) = l.server.poll_event() {
            if matches!(
                ev,
                ListenerEvent::Conn(_, StreamEvent::Closed(CloseReason::IdleTimeout))
            ) {
                closed = true;
            }
        }
    }
    assert!(closed, "replayed datagrams refreshed last_rx");
}

/// Issue 13 item 1: a replayed first datagram of an old session from the same address
/// (another conv, sn 0 inside) does not replace the live session.
#[test]
fn replayed_old_session_does_not_replace_the_live_one() {
    let c = cfg(CHACHA);
    let mut old = Link::new(&c, 4);
    old.transfer(&payload(3_000));
    let old_first = old.recorded.clone();
    let mut l = Link::new(&c, 5);
    l.transfer(&payload(3_000));
    let id = l.server.ids().next().unwrap();
    for d in &old_first {
        let _ = l.server.handle_datagram(l.now, addr(1), d);
    }
    let mut buf = Vec::new();
    while l.server.poll_transmit(l.now, &mut buf).is_some() {
        buf.clear();
    }
    while let Some(ev) = l.server.poll_event() {
        assert!(
            !matches!(ev, ListenerEvent::Conn(_, StreamEvent::Closed(_))),
            "the live session was closed by a replay: {ev:?}"
        );
    }
    assert!(l.server.session(id).is_some());
    // The live session still works.
    let more = payload(4_000);
    l.received.clear();
    l.transfer(&more);
}

/// Issue 13 item 2: a client endpoint never closes its session because a datagram with
/// another conv and sn 0 arrived from the server's address (an off-path spoofer).
#[test]
fn client_endpoint_ignores_foreign_conv_with_sn_zero() {
    let c = cfg(CryptMode::Block(CipherKind::Aes128));
    let now = test_start();
    let mut lc = ListenerConfig::new(c.clone());
    lc.accept_incoming = false;
    let mut ep = Listener::new(lc, Box::new(seeded(1)));
    let server = addr(2);
    let id = ep.connect(now, server);
    ep.session_mut(id).unwrap().write(b"hello").unwrap();
    let mut buf = Vec::new();
    while ep.poll_transmit(now, &mut buf).is_some() {
        buf.clear();
    }
    // A datagram of another conversation at sn 0, spoofed from the server's address.
    let mut spoof = Session::dial(&c, now, Box::new(seeded(77)));
    spoof.write(b"evil").unwrap();
    spoof.poll_transmit(now, &mut buf).unwrap();
    let _ = ep.handle_datagram(now, server, &buf);
    while let Some(ev) = ep.poll_event() {
        assert!(
            !matches!(ev, ListenerEvent::Conn(_, StreamEvent::Closed(_))),
            "client session closed by a spoofed datagram: {ev:?}"
        );
    }
    assert!(ep.session(id).is_some());
    assert_eq!(ep.len(), 1);
    assert_eq!(ep.snmp().in_errs, 1);
}

/// Issue 13 item 1: the handshake survives loss (hello, server hello and confirm
/// retransmitted) and the transfer is exact, on the simulator's lossy link.
#[test]
fn handshake_and_transfer_under_loss() {
    use crate::sim::transfer::{run_session_transfer, TransferConfig};
    use crate::sim::LinkConfig;
    for (kind, seed) in [
        (AeadKind::ChaCha20Poly1305, 1),
        (AeadKind::Aes128Gcm, 2),
        (AeadKind::ChaCha20Poly1305, 3),
    ] {
        let c = cfg(CryptMode::Aead(kind));
        let link = LinkConfig::perfect()
            .with_delay(Duration::from_millis(30))
            .with_loss(0.3);
        let t = TransferConfig {
            bytes: 100_000,
            kcp: c.kcp,
            link_ab: link.clone(),
            link_ba: link,
            seed,
            time_limit: Duration::from_secs(3600),
        };
        let r = run_session_transfer(&t, &c, test_start());
        assert!(r.completed, "{kind:?} seed {seed}: incomplete");
        assert_eq!(r.sha256_sent, r.sha256_received);
    }
}

/// Every handshake datagram lost a few times in a row: the client's back-off retransmits
/// until the session is up, and nothing is delivered twice.
#[test]
fn hello_retransmission_after_repeated_loss() {
    let c = cfg(CHACHA);
    let now = test_start();
    let mut client = Session::dial(&c, now, Box::new(seeded(11)));
    let mut server = Session::new(client.conv(), &c, now, Box::new(seeded(12)));
    client.write(b"first words").unwrap();
    let (mut t, mut buf, mut got) = (now, Vec::new(), Vec::new());
    // Drop the first 3 client datagrams (hellos) and the first 2 server ones (server hellos).
    let (mut c_drop, mut s_drop) = (3, 2);
    let mut c_sent = 0;
    for _ in 0..10_000 {
        let mut moved = false;
        while client.poll_transmit(t, &mut buf).is_some() {
            c_sent += 1;
            if c_drop > 0 {
                c_drop -= 1;
            } else {
                let _ = server.handle_input(t, &buf);
            }
            buf.clear();
            moved = true;
        }
        while server.poll_transmit(t, &mut buf).is_some() {
            if s_drop > 0 {
                s_drop -= 1;
            } else {
                let _ = client.handle_input(t, &buf);
            }
            buf.clear();
            moved = true;
        }
        let mut tmp = [0u8; 64];
        while let Ok(n) = server.read(&mut tmp) {
            got.extend_from_slice(&tmp[..n]);
        }
        if !moved {
            let Some(next) = [client.poll_timeout(), server.poll_timeout()]
                .into_iter()
                .flatten()
                .min()
            else {
                break;
            };
            t = t.max(next);
            client.handle_timeout(t);
            server.handle_timeout(t);
        }
    }
    assert_eq!(got, b"first words");
    assert!(c_sent >= 6, "hello retransmitted ({c_sent} datagrams)");
    assert!(t - now < Duration::from_secs(30), "took {:?}", t - now);
    assert!(client.is_verified() && server.is_verified());
    assert_eq!(client.poll_timeout(), None, "nothing left armed once idle");
}

/// Issue 13 item 1: a send counter at `u64::MAX` closes the session with a typed reason
/// (never an overflow, never a reused nonce).
#[test]
fn counter_exhaustion_closes_the_session() {
    let c = cfg(CHACHA);
    let mut l = Link::new(&c, 6);
    l.transfer(&payload(2_000));
    let id = l.server.ids().next().unwrap();
    let s = l.server.session_mut(id).unwrap();
    s.set_send_counter(u64::MAX - 2);
    s.write(&payload(20_000)).unwrap();
    let mut closed = None;
    for _ in 0..100 {
        l.step();
        while let Some(ev) = l.server.poll_event() {
            if let ListenerEvent::Conn(i, StreamEvent::Closed(r)) = ev {
                closed = Some((i, r));
            }
        }
        if closed.is_some() {
            break;
        }
    }
    assert_eq!(closed, Some((id, CloseReason::CounterExhausted)));
    assert!(l.server.session(id).is_none());
    // A bare session: stops sending, reports it, no panic.
    let now = test_start();
    let mut client = Session::dial(&c, now, Box::new(seeded(1)));
    let mut server = Session::new(client.conv(), &c, now, Box::new(seeded(2)));
    let mut buf = Vec::new();
    client.poll_transmit(now, &mut buf).unwrap();
    server.handle_input(now, &buf).unwrap();
    buf.clear();
    server.poll_transmit(now, &mut buf).unwrap();
    client.handle_input(now, &buf).unwrap();
    buf.clear();
    client.poll_transmit(now, &mut buf).unwrap(); // the confirm, counter 0
    server.handle_input(now, &buf).unwrap();
    assert!(server.is_verified());
    client.set_send_counter(u64::MAX);
    client.write(b"x").unwrap();
    buf.clear();
    assert!(client.poll_transmit(now, &mut buf).is_none());
    assert!(client.is_exhausted());
}

/// Issue 13 item 1: conv replacement happens only after authentication. A forged hello
/// creates nothing; a genuine restarted client (same address, new conv) replaces the old
/// session only once it completed the handshake.
#[test]
fn conv_replacement_only_after_authentication() {
    let c = cfg(CHACHA);
    let mut l = Link::new(&c, 7);
    l.transfer(&payload(1_000));
    let old = l.server.ids().next().unwrap();
    while l.server.poll_event().is_some() {}
    // A forged hello (right type byte, wrong tag).
    let mut forged = vec![super::aead::TYPE_CLIENT_HELLO];
    forged.resize(super::aead::HELLO_LEN, 0x5a);
    assert!(l.server.handle_datagram(l.now, addr(1), &forged).is_err());
    assert_eq!(l.server.len(), 1);
    assert_eq!(l.server.stats().dropped_unprotect, 1);
    // The client restarts from the same address: its hello alone replaces nothing.
    l.client = Session::dial(&c, l.now, Box::new(seeded(70)));
    let mut buf = Vec::new();
    l.client.poll_transmit(l.now, &mut buf).unwrap();
    l.server.handle_datagram(l.now, addr(1), &buf).unwrap();
    assert!(l.server.session(old).is_some(), "replaced by a bare hello");
    assert_eq!(l.server.len(), 2, "one live + one half-open");
    while let Some(ev) = l.server.poll_event() {
        assert!(!matches!(
            ev,
            ListenerEvent::Conn(_, StreamEvent::Closed(_)) | ListenerEvent::Incoming(_)
        ));
    }
    // Completing the handshake (and a transfer) replaces it.
    let mut replaced = false;
    l.received.clear();
    let data = payload(3_000);
    let mut off = 0;
    for _ in 0..10_000 {
        if off < data.len() {
            l.client.write(&data[..1000.min(data.len())]).unwrap();
            off += 1000;
        }
        while let Some(ev) = l.server.poll_event() {
            replaced |= ev == ListenerEvent::Conn(old, StreamEvent::Closed(CloseReason::Replaced));
        }
        if !l.step() {
            break;
        }
    }
    while let Some(ev) = l.server.poll_event() {
        replaced |= ev == ListenerEvent::Conn(old, StreamEvent::Closed(CloseReason::Replaced));
    }
    assert!(replaced);
    assert_eq!(l.server.len(), 1);
    assert_eq!(
        l.received,
        [&data[..1000], &data[..1000], &data[..1000]].concat()
    );
}

/// Half-open sessions from many sources: bounded by the backlog, never announced, expired
/// by `accept_timeout`; the server never sends a source more bytes than it received.
#[test]
fn half_open_sessions_are_bounded_and_silent() {
    let c = cfg(CHACHA);
    let now = test_start();
    let mut l = Listener::new(ListenerConfig::new(c.clone()), Box::new(seeded(1)));
    let mut buf = Vec::new();
    let (mut rx, mut tx) = (0usize, 0usize);
    for i in 0..1000u32 {
        let mut s = Session::dial(&c, now, Box::new(seeded(i as u64)));
        s.poll_transmit(now, &mut buf).unwrap();
        let from = SocketAddr::from(([10, 1, (i >> 8) as u8, i as u8], 5000));
        rx += buf.len();
        let _ = l.handle_datagram(now, from, &buf);
        let _ = l.handle_datagram(now, from, &buf); // a retransmission
        rx += buf.len();
        buf.clear();
        while l.poll_transmit(now, &mut buf).is_some() {
            tx += buf.len();
            buf.clear();
        }
    }
    assert_eq!(l.len(), 128);
    assert!(tx <= rx, "sent {tx} bytes for {rx} received");
    assert_eq!(l.accept(), None);
    assert_eq!(l.ids().count(), 0);
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
    assert_eq!(
        l.poll_event(),
        None,
        "half-open sessions are never announced"
    );
}

/// Closing a stale id (its slot reused by a newer session) leaves the newer session alone.
#[test]
fn closing_a_stale_id_spares_the_slots_next_session() {
    let c = cfg(CryptMode::Block(CipherKind::Aes128));
    let now = test_start();
    let mut l = Listener::new(ListenerConfig::new(c.clone()), Box::new(seeded(1)));
    let mut buf = Vec::new();
    let open = |l: &mut Listener, seed: u64, from: SocketAddr| {
        let mut s = Session::dial(&c, now, Box::new(seeded(seed)));
        s.write(b"hi").unwrap();
        let mut d = Vec::new();
        s.poll_transmit(now, &mut d).unwrap();
        l.handle_datagram(now, from, &d).unwrap();
        l.accept().unwrap()
    };
    let a = open(&mut l, 1, addr(1));
    l.close(a);
    while l.poll_transmit(now, &mut buf).is_some() {
        buf.clear();
    }
    let b = open(&mut l, 2, addr(2));
    l.close(a);
    assert!(
        l.session(b).is_some(),
        "a stale close closed the slot's new session"
    );
}
