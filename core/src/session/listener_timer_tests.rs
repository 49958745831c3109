//! The listener's timer heap and expiry arithmetic: bounded under traffic, no overflow.
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::listener::{Listener, ListenerConfig};
use super::{CryptMode, Session, SessionConfig};
use crate::driver::Machine;
use crate::kcp::KcpConfig;
use crate::rng::seeded;
use crate::sim::test_start;

fn cfg() -> SessionConfig {
    SessionConfig {
        kcp: KcpConfig::fast3(),
        crypt: CryptMode::Raw,
        key: [1; 32],
        data_shards: 0,
        parity_shards: 0,
    }
}

fn client_addr(i: usize) -> SocketAddr {
    SocketAddr::from(([10, 0, 0, 1 + i as u8], 4000))
}

/// Moves datagrams both ways, reads and accepts on the server, and fires every timer due up
/// to `until`; returns the time reached.
fn pump(now: Instant, until: Instant, l: &mut Listener, clients: &mut [Session]) -> Instant {
    let mut now = now;
    let mut buf = Vec::new();
    loop {
        let mut moved = false;
        for (i, c) in clients.iter_mut().enumerate() {
            while c.poll_transmit(now, &mut buf).is_some() {
                let _ = l.handle_datagram(now, client_addr(i), &buf);
                buf.clear();
                moved = true;
            }
        }
        // Reading marks a session for draining, so read before draining the listener.
        while l.accept().is_some() {}
        while l.poll_event().is_some() {}
        let ids: Vec<_> = l.ids().collect();
        for id in ids {
            let mut tmp = [0u8; 256];
            while let Some(Ok(n)) = l.session_mut(id).map(|s| s.read(&mut tmp)) {
                if n == 0 {
                    break;
                }
            }
        }
        while let Some((to, _)) = l.poll_transmit(now, &mut buf) {
            if let Some(i) = (0..clients.len()).find(|&i| client_addr(i) == to) {
                let _ = clients[i].handle_input(now, &buf);
            }
            buf.clear();
            moved = true;
        }
        if moved {
            continue;
        }
        let next = clients
            .iter()
            .filter_map(|c| c.poll_timeout())
            .chain(l.poll_timeout())
            .min();
        match next {
            Some(t) if t <= until => {
                now = now.max(t);
                for c in clients.iter_mut() {
                    if c.poll_timeout().is_some_and(|t| t <= now) {
                        c.handle_timeout(now);
                    }
                }
                l.handle_timeout(now);
            }
            _ => return until.max(now),
        }
    }
}

#[test]
fn timer_heap_stays_bounded_under_constant_traffic_with_idle_timeout() {
    // Request/response traffic: every exchange ends with the session idle (deadline
    // last_rx + idle), the next one re-arms KCP's timer: each switch pushed a heap entry that
    // stayed, stale, until its far-away deadline.
    let mut lc = ListenerConfig::new(cfg());
    lc.idle_timeout = Some(Duration::from_secs(3600));
    let mut l = Listener::new(lc, Box::new(seeded(1)));
    let mut now = test_start();
    let mut clients: Vec<Session> = (0..4)
        .map(|i| Session::dial(&cfg(), now, Box::new(seeded(10 + i))))
        .collect();
    let mut worst = 0;
    for _round in 0..500 {
        for c in clients.iter_mut() {
            c.write(b"ping").unwrap();
        }
        now = pump(now, now + Duration::from_millis(200), &mut l, &mut clients);
        worst = worst.max(l.timer_entries());
        assert!(
            l.timer_entries() <= 2 * l.len() + 16,
            "{} timer entries for {} sessions",
            l.timer_entries(),
            l.len()
        );
    }
    assert_eq!(l.len(), 4);
    assert!(worst > 0, "the traffic never armed a timer");
}

#[test]
fn duration_max_timeouts_mean_never_and_do_not_panic() {
    let mut lc = ListenerConfig::new(cfg());
    lc.accept_timeout = Duration::MAX;
    lc.idle_timeout = Some(Duration::MAX);
    let mut l = Listener::new(lc, Box::new(seeded(1)));
    let start = test_start();
    let mut clients = vec![Session::dial(&cfg(), start, Box::new(seeded(2)))];
    clients[0].write(b"hello").unwrap();
    let now = pump(start, start + Duration::from_secs(5), &mut l, &mut clients);
    assert_eq!(l.len(), 1);
    // Far in the future, still nothing expires.
    let later = now + Duration::from_secs(10 * 365 * 24 * 3600);
    l.handle_timeout(later);
    assert_eq!(l.len(), 1);
    assert!(l.poll_event().is_none());
}
