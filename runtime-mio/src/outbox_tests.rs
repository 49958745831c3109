//! The send side when the socket pushes back: [`Outbox`] keeps what the socket did not take,
//! in order and byte for byte (compaction), drops and counts what it refused, and the
//! transfer still completes.
//!
//! A tiny `SO_SNDBUF` cannot produce `WouldBlock` on loopback (Linux's loopback device
//! releases a datagram's send-buffer charge as it is queued, so 20 000 sends of 1 400 bytes
//! with an 8 KiB buffer never block), so the socket here is a scripted one behind
//! [`Outbox::flush_with`], with [`udp::send_batch`]'s contract.
use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::Outbox;
use crate::config::Config;
use crate::udp::SendReport;

/// Datagrams the scripted socket accepted, refused, and what it checked along the way.
#[derive(Default)]
struct Script {
    /// Take everything from now on (the socket drained).
    drain: bool,
    calls: u64,
    /// Datagrams taken in all.
    taken: u64,
    accepted: Vec<Vec<u8>>,
    refused: u64,
    /// Partial sends (0 < n < offered): the Outbox had to compact.
    partial: u64,
    /// Calls that took nothing (`WouldBlock` on the first datagram).
    blocked: u64,
    /// Distinct datagrams offered (the Outbox's carried-over ones counted once).
    offered: u64,
    /// What the next call must start with: the first datagram not taken last time.
    expect_first: Option<Vec<u8>>,
    carried: usize,
}

impl Script {
    /// Takes a scripted number of datagrams: calls cycle through "all", "a prefix", "none"
    /// (the socket is full), and "refuse the first" (an error for one datagram; the rest of
    /// the batch goes on, as `udp::send_batch` does).
    fn send(&mut self, items: &[(SocketAddr, &[u8])]) -> SendReport {
        self.calls += 1;
        if let Some(first) = self.expect_first.take() {
            assert_eq!(
                items[0].1,
                &first[..],
                "call {}: the Outbox must resume with the first datagram not sent",
                self.calls
            );
        }
        self.offered += (items.len() - self.carried) as u64;
        let take = match self.calls % 4 {
            _ if self.drain => items.len(),
            0 => items.len(),
            1 => (items.len() / 3).max(1).min(items.len()),
            2 => 0,
            _ => {
                self.refused += 1;
                self.taken += (items.len() - 1) as u64;
                self.accepted
                    .extend(items[1..].iter().map(|(_, d)| d.to_vec()));
                self.carried = 0;
                return SendReport {
                    sent: items.len() - 1,
                    errors: 1,
                    first_error: Some(io::Error::from(io::ErrorKind::PermissionDenied)),
                };
            }
        };
        if take == 0 {
            self.blocked += 1;
        } else if take < items.len() {
            self.partial += 1;
        }
        self.taken += take as u64;
        self.accepted
            .extend(items[..take].iter().map(|(_, d)| d.to_vec()));
        self.carried = items.len() - take;
        if let Some((_, d)) = items.get(take) {
            self.expect_first = Some(d.to_vec());
        }
        SendReport {
            sent: take,
            ..SendReport::default()
        }
    }
}

#[test]
fn a_full_socket_keeps_order_and_every_datagram_is_sent_or_counted() {
    let cfg = Config::default()
        .raw()
        .fec(0, 0)
        .mode("fast3")
        .windows(1024, 1024);
    let server_addr: SocketAddr = "127.0.0.1:9".parse().unwrap();
    let client_addr: SocketAddr = "127.0.0.1:10".parse().unwrap();
    let mut client = cfg.listener(false);
    let mut server = cfg.listener(true);
    let t0 = Instant::now();
    let id = client.connect(t0, server_addr);
    let data: Vec<u8> = (0..2_000_000u32).map(|i| (i * 7 + i / 255) as u8).collect();
    let mut written = 0;
    let mut script = Script::default();
    let (mut outbox, mut back) = (Outbox::default(), Vec::new());
    let (mut sent, mut errors, mut blocked_reports) = (0u64, 0u64, 0u64);
    let mut got = Vec::new();
    let mut sid = None;
    let mut buf = vec![0u8; 64 << 10];
    let mut now = t0;
    while got.len() < data.len() {
        assert!(now < t0 + Duration::from_secs(600), "transfer stalled");
        if written < data.len() {
            if let Some(s) = client.session_mut(id) {
                let end = (written + (64 << 10)).min(data.len());
                if let Ok(n) = s.write(&data[written..end]) {
                    written += n;
                }
            }
        }
        client.handle_timeout(now);
        let r = outbox.flush_with(&mut client, now, |items| script.send(items));
        sent += r.sent;
        errors += r.errors;
        blocked_reports += u64::from(r.blocked);
        for d in script.accepted.drain(..) {
            let _ = server.handle_datagram(now, client_addr, &d);
        }
        server.handle_timeout(now);
        if sid.is_none() {
            sid = server.accept();
        }
        if let Some(s) = sid.and_then(|s| server.session_mut(s)) {
            while let Ok(n) = s.read(&mut buf) {
                got.extend_from_slice(&buf[..n]);
            }
        }
        while let Some((_, t)) = server.poll_transmit(now, &mut back) {
            let _ = client.handle_datagram(now, server_addr, &back[..t.len]);
            back.clear();
        }
        now += Duration::from_millis(5);
    }
    assert!(got == data, "the stream arrived intact");
    assert!(
        script.blocked > 0 && blocked_reports > 0,
        "WouldBlock was hit"
    );
    assert!(script.partial > 0, "partial sends made the Outbox compact");
    assert!(
        script.refused > 0 && errors == script.refused,
        "refusals are counted"
    );
    // The socket drains: what the Outbox still holds goes out, and then nothing is left.
    script.drain = true;
    let r = outbox.flush_with(&mut client, now, |items| script.send(items));
    sent += r.sent;
    assert!(outbox.is_empty() && script.carried == 0);
    assert_eq!(sent, script.taken, "the report counts what the socket took");
    assert_eq!(
        script.offered,
        sent + errors,
        "every datagram the Outbox took from the listener was sent or counted as dropped"
    );
}
