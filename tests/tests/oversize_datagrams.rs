//! Issue 13 item 3: bytes, not only segments, are bounded. A peer that sends PUSH segments of
//! 65 000 bytes at a session whose application never reads must not grow its memory beyond
//! `rcv_wnd × 1500` bytes plus a constant: kcp-go reads into 1 500-byte buffers
//! (kcp-go-session.md §1, `mtuLimit`), so a larger datagram is dropped and counted.
//!
//! Live heap bytes are measured with a counting allocator (alloc adds, dealloc subtracts).
use std::alloc::{GlobalAlloc, Layout, System};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use tether_core::driver::Machine;
use tether_core::kcp::segment::{Cmd, Header};
use tether_core::kcp::{Kcp, KcpConfig};
use tether_core::rng::seeded;
use tether_core::session::{CryptMode, Listener, ListenerConfig, Session, SessionConfig};
use tether_core::wire::Writer;

struct Counting;

static LIVE: AtomicI64 = AtomicI64::new(0);

// SAFETY: every call is forwarded unchanged to the system allocator; the only addition is a
// relaxed counter update, which cannot affect the allocation's validity.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as i64, Ordering::Relaxed);
        // SAFETY: same contract as our caller's: `layout` has non-zero size.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as i64, Ordering::Relaxed);
        // SAFETY: `ptr` came from `System.alloc` with this `layout` (via `alloc` above).
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(new_size as i64 - layout.size() as i64, Ordering::Relaxed);
        // SAFETY: forwarded with the caller's guarantees about `ptr`, `layout`, `new_size`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// The tests share one global counter: run them one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

const CONV: u32 = 0x0102_0304;
const RCV_WND: u32 = 128;
const SEGMENTS: u32 = 2048;
const DATAGRAM: usize = 65_000;
/// What the session may hold for a peer that floods it: `rcv_wnd × 1500` bytes …
const WINDOW_BYTES: i64 = RCV_WND as i64 * 1500;
/// … plus this constant (queues' spare capacity, ACK list, scratch buffers, pools).
const CONSTANT: i64 = 64 * 1024;

/// One raw KCP datagram: a single PUSH segment of `DATAGRAM` bytes in all.
fn push(sn: u32) -> Vec<u8> {
    let len = DATAGRAM - 24;
    let mut d = Vec::with_capacity(DATAGRAM);
    Header {
        conv: CONV,
        cmd: Cmd::Push as u8,
        frg: 0,
        wnd: 128,
        ts: sn,
        sn,
        una: 0,
        len: len as u32,
    }
    .encode(&mut Writer::new(&mut d));
    d.resize(DATAGRAM, 0xab);
    d
}

fn session_config() -> SessionConfig {
    SessionConfig {
        kcp: KcpConfig::fast().with_windows(128, RCV_WND),
        crypt: CryptMode::Raw,
        key: [0; 32],
        data_shards: 0,
        parity_shards: 0,
    }
}

/// Feeds the flood through `feed` (with `drain` between datagrams, as a driver would), and
/// returns the live heap bytes it left behind.
fn grown_by(mut feed: impl FnMut(Instant, &[u8]), mut drain: impl FnMut(Instant)) -> i64 {
    let flood: Vec<Vec<u8>> = (0..SEGMENTS).map(push).collect();
    let now = Instant::now();
    let before = LIVE.load(Ordering::Relaxed);
    for d in &flood {
        feed(now, d);
        drain(now);
    }
    let grown = LIVE.load(Ordering::Relaxed) - before;
    drop(flood);
    println!("{grown} bytes held after {SEGMENTS} PUSH datagrams of {DATAGRAM} bytes");
    grown
}

fn assert_bounded(grown: i64) {
    assert!(
        grown <= WINDOW_BYTES + CONSTANT,
        "{grown} bytes held: more than rcv_wnd × 1500 + {CONSTANT}"
    );
}

#[test]
fn session_drops_datagrams_above_the_mtu_limit() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let now = Instant::now();
    let mut s = Session::new(CONV, &session_config(), now, Box::new(seeded(1)));
    let mut out = Vec::with_capacity(2048);
    let cell = std::cell::RefCell::new(&mut s);
    let grown = grown_by(
        |now, d| {
            let _ = cell.borrow_mut().handle_input(now, d);
        },
        |now| {
            while cell.borrow_mut().poll_transmit(now, &mut out).is_some() {
                out.clear();
            }
        },
    );
    assert_bounded(grown);
    assert_eq!(
        s.snmp().in_errs,
        SEGMENTS as u64,
        "every oversized datagram is counted"
    );
}

#[test]
fn listener_drops_datagrams_above_the_mtu_limit() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let from: SocketAddr = "192.0.2.1:4000".parse().expect("address");
    let mut l = Listener::new(ListenerConfig::new(session_config()), Box::new(seeded(2)));
    let mut out = Vec::with_capacity(2048);
    let cell = std::cell::RefCell::new(&mut l);
    let grown = grown_by(
        |now, d| {
            let _ = cell.borrow_mut().handle_datagram(now, from, d);
        },
        |now| {
            while cell.borrow_mut().poll_transmit(now, &mut out).is_some() {
                out.clear();
            }
        },
    );
    assert_bounded(grown);
    assert_eq!(l.stats().dropped_oversize, SEGMENTS as u64);
}

#[test]
fn raw_kcp_drops_datagrams_above_the_mtu_limit() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let now = Instant::now();
    let mut k = Kcp::new(CONV, KcpConfig::fast().with_windows(128, RCV_WND), now);
    let mut out = Vec::with_capacity(2048);
    let cell = std::cell::RefCell::new(&mut k);
    let grown = grown_by(
        |now, d| {
            let _ = cell.borrow_mut().handle_input(now, d);
        },
        |now| {
            while cell.borrow_mut().poll_transmit(now, &mut out).is_some() {
                out.clear();
            }
        },
    );
    assert_bounded(grown);
    assert_eq!(k.stats().kcp_in_errors, SEGMENTS as u64);
}

/// A peer whose `--mtu` is larger than ours but at most 1 500 keeps working.
#[test]
fn larger_peer_mtu_up_to_1500_is_accepted() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let now = Instant::now();
    let mut cfg = session_config();
    cfg.kcp = cfg.kcp.with_mtu(576);
    let mut s = Session::new(CONV, &cfg, now, Box::new(seeded(3)));
    let mut d = push(0);
    d.truncate(1500);
    d[20..24].copy_from_slice(&(1500u32 - 24).to_le_bytes());
    s.handle_input(now, &d)
        .expect("a 1500-byte datagram is valid");
    let mut buf = vec![0u8; 2000];
    assert_eq!(s.read(&mut buf), Ok(1476));
}
