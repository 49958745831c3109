//! Issue 13 item 4, against the real binary: one datagram from each of 20 000 source ports at
//! `tether cat --listen --keep-open --echo` (`--crypt none`, FEC 10/3 as cat's default).
//!
//! - RSS grows by at most [`PER_SESSION`] bytes per half-open session (a session opened by one
//!   datagram; counted here by the replies: each new session answers our WASK with a WINS of
//!   the same size, a control segment answering ours one for one; data beyond what it
//!   received would be held by the anti-amplification rule). Datagrams that find the accept
//!   backlog full open no session at all.
//! - Once idle and accept timeouts have passed, the sessions are gone: a second flood of the
//!   same size reuses their memory instead of adding as much again.
use std::net::{SocketAddr, UdpSocket};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tether_core::kcp::segment::{Cmd, Header};
use tether_core::rng::{seeded, SimRng};
use tether_core::session::crypt::{CipherKind, PacketCrypt, CRYPT_HEADER};
use tether_core::session::fec::{FEC_HEADER_SIZE_PLUS2, TYPE_DATA};
use tether_core::session::key::kcptun_key;
use tether_core::wire::Writer;
use tether_tests::tether_bin::{tether_bin, KillOnDrop};

/// Source ports per flood.
const PORTS: usize = 20_000;
/// Sockets open at once (each sends one datagram, reads its reply, and is closed).
const BATCH: usize = 500;
/// The stated bound: RSS per half-open session (cat's defaults with `--crypt none`: FEC 10/3,
/// windows 1024; one tokio task and stream buffers for those cat accepted). Measured: about
/// 3.4 KiB.
const PER_SESSION: u64 = 16 * 1024;
/// Sessions expire after this (both `--idle-timeout` and `--accept-timeout`).
const EXPIRY: Duration = Duration::from_secs(2);

fn rss_bytes(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    let kb: u64 = s
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmRSS line");
    kb * 1024
}

/// A kcp-go `--crypt none --datashard 10 --parityshard 3` datagram holding one WASK (window
/// probe) for `conv`: the smallest datagram that opens a session; its answer (a WINS) is
/// exactly as large.
fn wask(conv: u32, crypt: &PacketCrypt, rng: &mut SimRng) -> Vec<u8> {
    let mut d = vec![0u8; CRYPT_HEADER];
    // kcp-go-session.md §1: FEC data shard header (seqid, type, size incl. the size field).
    d.extend_from_slice(&conv.to_le_bytes());
    d.extend_from_slice(&TYPE_DATA.to_le_bytes());
    d.extend_from_slice(&(2u16 + 24).to_le_bytes());
    Header {
        conv,
        cmd: Cmd::Wask as u8,
        wnd: 1024,
        ..Header::default()
    }
    .encode(&mut Writer::new(&mut d));
    crypt.seal(&mut d, rng);
    d
}

/// Sends one datagram from each of `PORTS` fresh source ports; returns how many got an answer
/// (sessions created) and the largest answer.
fn flood(to: SocketAddr, seed: u64) -> (usize, usize) {
    let mut rng = seeded(seed);
    // The key does not matter for `none`; derive it once (PBKDF2 is slow in debug builds).
    let crypt = PacketCrypt::new(CipherKind::None, &kcptun_key("it's a secrect"));
    let (mut answered, mut largest) = (0, 0);
    let mut buf = [0u8; 2048];
    for batch in 0..PORTS / BATCH {
        let socks: Vec<UdpSocket> = (0..BATCH)
            .map(|i| {
                let s = UdpSocket::bind("127.0.0.1:0").expect("bind");
                let d = wask((batch * BATCH + i) as u32 + 1, &crypt, &mut rng);
                s.send_to(&d, to).expect("send");
                s
            })
            .collect();
        let deadline = Instant::now() + Duration::from_millis(150);
        for s in &socks {
            let left = deadline.saturating_duration_since(Instant::now());
            s.set_read_timeout(Some(left.max(Duration::from_millis(1))))
                .expect("timeout");
            if let Ok(n) = s.recv(&mut buf) {
                answered += 1;
                largest = largest.max(n);
            }
        }
    }
    (answered, largest)
}

#[test]
fn twenty_thousand_half_open_sessions_are_bounded_and_expire() {
    let port = UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .expect("free port")
        .port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
    let expiry = format!("{}ms", EXPIRY.as_millis());
    let server = KillOnDrop(
        Command::new(tether_bin())
            .args([
                "cat",
                "-q",
                "--listen",
                &addr.to_string(),
                "--keep-open",
                "--echo",
            ])
            .args(["--crypt", "none", "--idle-timeout", &expiry])
            .args(["--accept-timeout", &expiry])
            // One socket task (cat's default is one per core): the bound is one listener's,
            // and with several threads the second flood's reuse would measure how the
            // allocator's per-thread arenas hand freed memory around, not tether.
            .args(["--reuseport", "1"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn tether"),
    );
    let pid = server.0.id();
    std::thread::sleep(Duration::from_millis(500));
    let before = rss_bytes(pid);
    let t = Instant::now();
    let (sessions, largest) = flood(addr, 1);
    let after = rss_bytes(pid);
    let grown = after.saturating_sub(before);
    println!(
        "first flood: {sessions} sessions in {:?}, RSS {before} -> {after} (+{} B/session)",
        t.elapsed(),
        grown / sessions.max(1) as u64
    );
    // Datagrams that find the backlog full open no session (kcp-go's 128-slot backlog): fewer
    // than PORTS sessions is the bound at work, but enough must exist to measure.
    assert!(sessions >= 1000, "only {sessions} sessions answered");
    assert!(
        largest <= CRYPT_HEADER + FEC_HEADER_SIZE_PLUS2 + 24,
        "an unverified session answered {largest} bytes to a 52-byte datagram"
    );
    assert!(
        grown <= PER_SESSION * sessions as u64,
        "RSS grew {grown} bytes for {sessions} half-open sessions: more than {PER_SESSION} each"
    );

    // Idle and accept timeouts close them; a second flood reuses their memory.
    std::thread::sleep(EXPIRY * 3);
    let settled = rss_bytes(pid);
    let (again, _) = flood(addr, 2);
    let second = rss_bytes(pid);
    println!("after expiry: RSS {settled}; second flood: {again} sessions, RSS {second}");
    assert!(
        again >= 1000,
        "only {again} sessions answered the second flood"
    );
    // Per session, the second flood may grow RSS by at most half of what the first did
    // (sessions that never expired would cost as much again; allocator fragmentation and a
    // flood that happens to open more sessions than the first make a fixed bound flaky: one
    // CI run saw +15 MB for 11 844 sessions after +44 MB for 10 562).
    let per_first = grown / sessions.max(1) as u64;
    let allowed = per_first * again as u64 / 2;
    assert!(
        second.saturating_sub(after) <= allowed,
        "RSS {second} after the second flood vs {after} after the first ({again} vs {sessions} \
         sessions, at most {allowed} more allowed): sessions did not expire"
    );
}
