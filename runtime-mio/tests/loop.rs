//! The single-threaded mio endpoint end to end: the echo loop of `examples/echo_loop.rs`
//! (shared, not copied) with a time bound, plus the endpoint's edge cases.
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mio::{Events, Poll, Token};
use tether_core::kcp::WriteError;
use tether_runtime_mio::config::Config;
use tether_runtime_mio::endpoint::{Endpoint, SessionError};

#[path = "../examples/echo_loop.rs"]
mod echo_loop;

const MIB: usize = 1 << 20;
const LIMIT: Duration = Duration::from_secs(30);

fn any() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

#[test]
fn echo_one_mib_with_kcptun_defaults() {
    // AES, FEC 10/3, fast mode, windows 128/512: kcptun's client defaults.
    let r = echo_loop::run(&Config::default(), MIB, LIMIT).unwrap();
    assert_eq!(r.bytes, MIB);
    assert!(r.server.datagrams_in > 0 && r.client.datagrams_in > 0);
    assert_eq!(r.server.send_errors + r.client.send_errors, 0);
}

#[test]
fn echo_one_mib_raw_without_fec() {
    let cfg = Config::default().raw().fec(0, 0).mode("fast3");
    let r = echo_loop::run(&cfg, MIB, LIMIT).unwrap();
    assert_eq!(r.bytes, MIB);
}

#[test]
fn echo_recovers_from_small_socket_buffers() {
    // 64 KiB kernel buffers overflow under full-window bursts: the receiver drops datagrams
    // and KCP retransmits them. (Send-side `WouldBlock` cannot be provoked on loopback, which
    // frees the sender's buffer space at once.)
    let cfg = Config::default().mode("fast3").sockbuf(64 * 1024);
    let r = echo_loop::run(&cfg, MIB, LIMIT).unwrap();
    assert_eq!(r.bytes, MIB);
    println!("{r:?}");
}

#[test]
fn refused_datagrams_are_dropped_not_fatal() {
    // An IPv4 socket cannot send to an IPv6 peer: the kernel refuses every datagram.
    let mut ep = Endpoint::bind(any(), &Config::default(), false).unwrap();
    let id = ep.connect(Instant::now(), "[::1]:9".parse().unwrap());
    ep.write(id, &[7u8; 10_000]).unwrap();
    ep.process(Instant::now()).unwrap();
    let s = ep.stats();
    assert!(s.send_errors > 0, "{s:?}");
    assert_eq!(s.datagrams_out, 0);
    // Nothing is kept for a writable event that would not help.
    assert!(ep.next_deadline().is_some_and(|d| d > Instant::now()));
}

#[test]
fn refused_datagrams_after_the_first_of_a_batch_are_counted() {
    // A good peer first, then one the kernel refuses (port 0: EINVAL): the refusals come
    // after the first datagram of the batch and must still be counted.
    let peer = std::net::UdpSocket::bind(any()).unwrap();
    let mut ep = Endpoint::bind(any(), &Config::default().raw().fec(0, 0), false).unwrap();
    let now = Instant::now();
    let good = ep.connect(now, peer.local_addr().unwrap());
    let bad = ep.connect(now, "127.0.0.1:0".parse().unwrap());
    ep.write(good, &[1u8; 3000]).unwrap();
    ep.write(bad, &[2u8; 3000]).unwrap();
    ep.process(now).unwrap();
    let s = ep.stats();
    assert!(s.datagrams_out >= 3, "{s:?}");
    assert!(
        s.send_errors >= 3,
        "refusals after the first datagram were not counted: {s:?}"
    );
}

#[test]
fn idle_endpoint_sleeps_and_closed_sessions_say_so() {
    let cfg = Config::default();
    let mut poll = Poll::new().unwrap();
    let mut events = Events::with_capacity(8);
    let mut server = Endpoint::bind(any(), &cfg, true).unwrap();
    let mut client = Endpoint::bind(any(), &cfg, false).unwrap();
    poll.registry()
        .register(&mut server, Token(0), Endpoint::INTEREST)
        .unwrap();
    poll.registry()
        .register(&mut client, Token(1), Endpoint::INTEREST)
        .unwrap();

    // Nothing to do: no deadline, and a wake-up (the initial writable edge) changes nothing.
    poll.poll(&mut events, Some(Duration::from_millis(50)))
        .unwrap();
    let now = Instant::now();
    server.process(now).unwrap();
    client.process(now).unwrap();
    assert_eq!(server.next_deadline(), None);
    assert_eq!(client.next_deadline(), None);
    assert!(server.accept().is_none());

    // A connect with no write sends nothing; a write makes the next deadline immediate.
    let id = client.connect(now, server.local_addr().unwrap());
    assert_eq!(client.remote(id), Some(server.local_addr().unwrap()));
    assert!(client.can_write(id));
    assert_eq!(client.write(id, b"hello").unwrap(), 5);
    assert!(client.next_deadline().is_some_and(|d| d <= Instant::now()));
    assert_eq!(
        client.write(id, b""),
        Err(SessionError::Kcp(WriteError::Empty))
    );

    // The server sees the session within a bounded number of wake-ups.
    let give_up = Instant::now() + LIMIT;
    let accepted = loop {
        assert!(Instant::now() < give_up, "no session accepted");
        let t = [server.next_deadline(), client.next_deadline()]
            .into_iter()
            .flatten()
            .min()
            .map_or(Duration::from_millis(100), |d| {
                d.saturating_duration_since(Instant::now())
            });
        poll.poll(&mut events, Some(t)).unwrap();
        let now = Instant::now();
        client.process(now).unwrap();
        server.process(now).unwrap();
        if let Some(s) = server.accept() {
            break s;
        }
    };
    let mut buf = [0u8; 16];
    assert_eq!(server.read(accepted, &mut buf).unwrap(), 5);
    assert_eq!(&buf[..5], b"hello");
    assert_eq!(server.snmp().curr_estab, 1);

    // Closed ids are reported as such, not as a full window or an empty queue.
    client.close(id);
    assert!(!client.can_write(id));
    assert_eq!(client.write(id, b"x"), Err(SessionError::Closed));
    assert_eq!(client.read(id, &mut buf), Err(SessionError::Closed));
    client.process(Instant::now()).unwrap();
    assert!(client.listener().is_empty());
    poll.registry().deregister(&mut client).unwrap();
    poll.registry().deregister(&mut server).unwrap();
}

/// Regression: application calls on a session that never heard back must not starve its
/// retransmission timer (a dirty listener used to report only "output pending now").
#[test]
fn app_calls_do_not_starve_retransmission() {
    let hole = std::net::UdpSocket::bind("127.0.0.1:0").unwrap(); // never answers
    let cfg = Config::default().mode("fast3");
    let mut ep = Endpoint::bind("127.0.0.1:0".parse().unwrap(), &cfg, false).unwrap();
    let id = ep.connect(Instant::now(), hole.local_addr().unwrap());
    ep.write(id, &[1u8; 100]).unwrap();
    let mut buf = [0u8; 1500];
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(2) {
        ep.process(Instant::now()).unwrap();
        while ep.poll_event().is_some() {}
        let _ = ep.read(id, &mut buf); // WouldBlock, but marks the session dirty
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(ep.snmp().retrans_segs > 0, "{:?}", ep.snmp());
}

#[path = "../examples/raw_game_server.rs"]
mod raw_game_server;

/// The raw-KCP game-server example: 16 players, 50 inputs each, every state message back.
#[test]
fn raw_game_server_answers_every_input() {
    let states = raw_game_server::run(16, 50, LIMIT).unwrap();
    assert_eq!(states, 16 * 50);
}
