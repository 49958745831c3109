//! 10 000 established, idle sessions on one tokio listener cost (almost) nothing: the socket
//! task does not wake at all while they sit idle for 10 s, and the process uses < 1 % of a
//! core. (kcp-go wakes every `interval` per session: 10 000 × 100 wake-ups per second at
//! fast3.)
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tether_core::driver::Machine;
use tether_core::rng::seeded;
use tether_core::session::Session;
use tether_runtime_tokio::{Config, KcpListener};

const SESSIONS: usize = 10_000;

fn cfg() -> Config {
    // PBKDF2 (4096 rounds) runs once, not once per session.
    static CFG: std::sync::OnceLock<Config> = std::sync::OnceLock::new();
    CFG.get_or_init(|| {
        Config::default()
            .crypt("aes", "idle")
            .mode("fast3")
            .windows(128, 128)
    })
    .clone()
}

/// CPU seconds (user + system) this process has used.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("/proc/self/stat");
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')').expect("comm") + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap();
    ticks / 100.0
}

/// Opens one session from a fresh address: one message, then go away (the server side is
/// established, ACKs once, and then has nothing outstanding).
fn establish(server: SocketAddr, i: usize, now: Instant, cfg: &Config) {
    let ip = [
        127,
        1 + (i / 50_000) as u8,
        ((i / 250) % 250) as u8 + 1,
        (i % 250) as u8 + 1,
    ];
    let sock = UdpSocket::bind((std::net::Ipv4Addr::from(ip), 0)).expect("bind a client address");
    let mut s = Session::dial(&cfg.session, now, Box::new(seeded(i as u64)));
    s.write(b"hi").unwrap();
    let mut buf = Vec::new();
    while s.poll_transmit(now, &mut buf).is_some() {
        sock.send_to(&buf, server).unwrap();
        buf.clear();
    }
}

#[test]
fn ten_thousand_idle_sessions_cost_no_wakeups() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let listener = rt
        .block_on(KcpListener::bind("127.0.0.1:0", cfg()))
        .unwrap();
    let addr = listener.local_addr();
    let accepted = Arc::new(AtomicUsize::new(0));
    let listener = Arc::new(listener);
    let (l2, count) = (listener.clone(), accepted.clone());
    rt.spawn(async move {
        let mut held = Vec::with_capacity(SESSIONS);
        while let Ok((s, _)) = l2.accept().await {
            held.push(s);
            count.store(held.len(), Ordering::SeqCst);
        }
    });
    let start = Instant::now();
    let cfg = cfg();
    // In rounds smaller than the accept backlog (128, as kcp-go), waiting for each round to be
    // accepted: a burst beyond the backlog is dropped by design.
    for round in (0..SESSIONS).step_by(100) {
        for i in round..(round + 100).min(SESSIONS) {
            establish(addr, i, Instant::now(), &cfg);
        }
        let want = (round + 100).min(SESSIONS);
        let t = Instant::now();
        while accepted.load(Ordering::SeqCst) < want {
            assert!(
                t.elapsed() < Duration::from_secs(20),
                "sessions not accepted: {} of {want}",
                accepted.load(Ordering::SeqCst)
            );
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    assert_eq!(accepted.load(Ordering::SeqCst), SESSIONS);
    println!("{SESSIONS} sessions established in {:?}", start.elapsed());
    // Let the last ACK flushes settle, then measure 10 s of idleness.
    std::thread::sleep(Duration::from_millis(500));
    let before = listener.driver_stats();
    let cpu0 = cpu_seconds();
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_secs(10));
    let cpu = cpu_seconds() - cpu0;
    let wall = t0.elapsed().as_secs_f64();
    let after = listener.driver_stats();
    let wakeups = after.wakeups - before.wakeups;
    println!(
        "idle for {wall:.1} s: {wakeups} wake-ups, {:.3} CPU s ({:.2} % of a core)",
        cpu,
        cpu / wall * 100.0
    );
    assert_eq!(wakeups, 0, "idle sessions must not wake the socket task");
    assert!(
        cpu / wall < 0.01,
        "idle CPU {:.2} % of a core",
        cpu / wall * 100.0
    );
}
