//! Steady-state KCP transfer allocates O(1) per window, not per segment: buffers for
//! segments and datagrams are recycled through the control block's pool (and, for a
//! session, through the session's pool and the runtime's outbox).
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::time::{Duration, Instant};

use tether_core::driver::{ByteStream, Bytes, Machine};
use tether_core::kcp::{Kcp, KcpConfig};
use tether_core::rng::seeded;
use tether_core::session::crypt::CipherKind;
use tether_core::session::{CryptMode, Session, SessionConfig};

struct Counting;

thread_local! {
    /// Allocations made by this thread (the tests run in parallel threads).
    static ALLOCS: Cell<u64> = const { Cell::new(0) };
}

fn allocs() -> u64 {
    ALLOCS.with(Cell::get)
}

fn count_one() {
    // `try_with`: allocations while the thread's locals are torn down are not counted.
    let _ = ALLOCS.try_with(|c| c.set(c.get() + 1));
}

// SAFETY: every call is forwarded unchanged to the system allocator; the only addition is a
// thread-local counter increment (no allocation), which cannot affect the allocation's
// validity.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count_one();
        // SAFETY: same contract as our caller's: `layout` has non-zero size.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System.alloc` with this `layout` (via `alloc` above).
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count_one();
        // SAFETY: forwarded with the caller's guarantees about `ptr`, `layout`, `new_size`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

struct Peers {
    a: Kcp,
    b: Kcp,
    now: Instant,
    /// Every `drop_every`-th datagram a → b is lost (0: none).
    drop_every: u64,
    sent: u64,
    /// b reads with `read_chunk` instead of copying out with `recv_stream`.
    read_chunks: bool,
    buf: Vec<u8>,
    rbuf: Vec<u8>,
    chunk: Vec<u8>,
}

impl Peers {
    /// Moves `total` bytes a → b back to back; returns segments the sender emitted.
    fn transfer(&mut self, total: usize) {
        let (mut sent, mut got) = (0, 0);
        while got < total {
            while sent < total && self.a.can_write() {
                let n = self.chunk.len().min(total - sent);
                sent += self.a.write(&self.chunk[..n]).unwrap_or(0);
            }
            let mut moved = false;
            while self.a.poll_transmit(self.now, &mut self.buf).is_some() {
                self.sent += 1;
                if self.drop_every == 0 || !self.sent.is_multiple_of(self.drop_every) {
                    let _ = self.b.handle_input(self.now, &self.buf);
                }
                self.buf.clear();
                moved = true;
            }
            if self.read_chunks {
                // Owned chunks, as the runtime reads: each dropped at once.
                while let Ok(c) = self.b.read_chunk(64 * 1024) {
                    got += c.len();
                }
            } else {
                while let Ok(n) = self.b.recv_stream(&mut self.rbuf) {
                    got += n;
                }
            }
            while self.b.poll_transmit(self.now, &mut self.buf).is_some() {
                let _ = self.a.handle_input(self.now, &self.buf);
                self.buf.clear();
                moved = true;
            }
            if !moved {
                advance_to_next_timer(&mut self.now, &mut self.a, &mut self.b);
            }
        }
    }
}

/// Nothing moved: jumps to the earlier of the two machines' deadlines (1 ms on when neither
/// has one) and fires their timers.
fn advance_to_next_timer<M: Machine>(now: &mut Instant, a: &mut M, b: &mut M) {
    let t = [a.poll_timeout(), b.poll_timeout()]
        .into_iter()
        .flatten()
        .min();
    *now = t.unwrap_or(*now + Duration::from_millis(1)).max(*now);
    a.handle_timeout(*now);
    b.handle_timeout(*now);
}

/// Two KCP peers in stream mode; every `drop_every`-th datagram a → b is lost (0: none).
/// With losses the receiver ACKs once per interval (`ack_when_full` off), so the count
/// measures the parked segments alone: with ACKs leaving every `mtu / 24`, the sender also
/// flushes more often and sends more stream-mode tail segments that are not full, which
/// `read_chunk` gathers with a copy (488 allocations for 256 losses instead of 173).
fn kcp_peers(drop_every: u64) -> Peers {
    let cfg = KcpConfig::fast3()
        .with_windows(256, 256)
        .with_stream(true)
        .with_ack_when_full(drop_every == 0);
    let now = Instant::now();
    Peers {
        a: Kcp::new(1, cfg, now),
        b: Kcp::new(1, cfg, now),
        now,
        drop_every,
        sent: 0,
        read_chunks: drop_every > 0,
        buf: Vec::with_capacity(2048),
        rbuf: vec![0; 64 * 1024],
        chunk: vec![7; 8192],
    }
}

#[test]
fn steady_state_allocates_per_window_not_per_segment() {
    let mut p = kcp_peers(0);
    p.transfer(4 << 20); // warm up: queues and pools reach their working size
    let segs_before = p.a.stats().out_segs;
    let before = allocs();
    p.transfer(32 << 20);
    let allocs = allocs() - before;
    let segs = p.a.stats().out_segs - segs_before;
    let windows = segs / 256;
    println!("{allocs} allocations for {segs} segments ({windows} windows)");
    assert!(segs > 20_000);
    assert!(
        allocs <= windows,
        "{allocs} allocations for {segs} segments: more than one per window"
    );
}

/// With a datagram lost now and then, the segments parked behind each gap go back to the
/// receiver's pool once the gap fills (they are copied into the receive arena then): handed
/// to the reader instead, each parked segment was an allocation.
#[test]
fn lossy_steady_state_recycles_parked_segments() {
    let mut p = kcp_peers(97);
    p.transfer(4 << 20);
    let (sent_before, before) = (p.sent, allocs());
    p.transfer(32 << 20);
    let allocs = allocs() - before;
    let lost = (p.sent - sent_before) / p.drop_every;
    println!("{allocs} allocations with {lost} datagrams lost");
    assert!(lost > 200);
    assert!(
        allocs < lost,
        "{allocs} allocations for {lost} losses: the segments parked behind them allocate"
    );
}

/// One direction's datagrams between two sessions, moved the way the runtime's outbox
/// moves them: at most 256 per round, each sealed datagram's buffer swapped for an empty
/// one (`poll_transmit` into an empty buffer), and sent buffers offered again.
#[derive(Default)]
struct Outbox {
    spare: Vec<Vec<u8>>,
    pending: Vec<Vec<u8>>,
}

impl Outbox {
    /// Drains `from` into `to`; whether anything moved.
    fn carry(&mut self, from: &mut Session, to: &mut Session, now: Instant) -> bool {
        let mut moved = false;
        loop {
            while self.pending.len() < 256 {
                let mut d = self.spare.pop().unwrap_or_default();
                if from.poll_transmit(now, &mut d).is_none() {
                    self.spare.push(d);
                    break;
                }
                self.pending.push(d);
            }
            if self.pending.is_empty() {
                return moved;
            }
            moved = true;
            for mut d in self.pending.drain(..) {
                let _ = to.handle_input(now, &d);
                if self.spare.len() < 256 {
                    d.clear();
                    self.spare.push(d);
                }
            }
        }
    }
}

struct SessionPeers {
    a: Session,
    b: Session,
    a_out: Outbox,
    b_out: Outbox,
    now: Instant,
    chunk: Bytes,
    rbuf: Vec<u8>,
}

impl SessionPeers {
    /// Moves `total` bytes a → b back to back.
    fn transfer(&mut self, total: usize) {
        let (mut sent, mut got) = (0, 0);
        while got < total {
            while sent < total {
                let n = self.chunk.len().min(total - sent);
                match ByteStream::write_chunk(&mut self.a, self.chunk.slice(..n)) {
                    Ok(n) => sent += n,
                    Err(_) => break,
                }
            }
            let mut moved = self.a_out.carry(&mut self.a, &mut self.b, self.now);
            while let Ok(n) = ByteStream::read(&mut self.b, &mut self.rbuf) {
                got += n;
            }
            moved |= self.b_out.carry(&mut self.b, &mut self.a, self.now);
            if !moved {
                advance_to_next_timer(&mut self.now, &mut self.a, &mut self.b);
            }
        }
    }
}

/// A kcptun-style session (FEC 10/3, `none` cipher with its nonce + CRC header) allocates
/// per window as well: a flush's parity datagrams borrow buffers that sent datagrams left
/// in KCP's pool instead of allocating their own (which the pools then freed again).
#[test]
fn fec_session_steady_state_allocates_per_window_not_per_segment() {
    const WND: u32 = 1024;
    let cfg = SessionConfig {
        kcp: KcpConfig::fast3().with_windows(WND, WND).with_stream(true),
        crypt: CryptMode::Block(CipherKind::None),
        key: [7; 32],
        data_shards: 10,
        parity_shards: 3,
    };
    let now = Instant::now();
    let mut p = SessionPeers {
        a: Session::new(1, &cfg, now, Box::new(seeded(1))),
        b: Session::new(1, &cfg, now, Box::new(seeded(2))),
        a_out: Outbox::default(),
        b_out: Outbox::default(),
        now,
        chunk: Bytes::from(vec![7u8; 64 * 1024]),
        rbuf: vec![0u8; 256 * 1024],
    };
    p.transfer(16 << 20); // warm up: pools reach their working size
    let segs_before = p.a.kcp().stats().out_segs;
    let before = allocs();
    p.transfer(64 << 20);
    let allocs = allocs() - before;
    let segs = p.a.kcp().stats().out_segs - segs_before;
    let windows = segs / u64::from(WND);
    println!("{allocs} allocations for {segs} segments ({windows} windows)");
    assert!(segs > 40_000);
    assert!(
        allocs <= windows,
        "{allocs} allocations for {segs} segments: more than one per window"
    );
}
