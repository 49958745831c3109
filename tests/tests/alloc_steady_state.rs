//! Steady-state KCP transfer allocates O(1) per window, not per segment: buffers for
//! segments and datagrams are recycled through the control block's pool.
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tether_core::driver::Machine;
use tether_core::kcp::{Kcp, KcpConfig};

struct Counting;

static ALLOCS: AtomicU64 = AtomicU64::new(0);

// SAFETY: every call is forwarded unchanged to the system allocator; the only addition is a
// relaxed counter increment, which cannot affect the allocation's validity.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as our caller's: `layout` has non-zero size.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System.alloc` with this `layout` (via `alloc` above).
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
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
                let _ = self.b.handle_input(self.now, &self.buf);
                self.buf.clear();
                moved = true;
            }
            while let Ok(n) = self.b.recv_stream(&mut self.rbuf) {
                got += n;
            }
            while self.b.poll_transmit(self.now, &mut self.buf).is_some() {
                let _ = self.a.handle_input(self.now, &self.buf);
                self.buf.clear();
                moved = true;
            }
            if !moved {
                let t = [self.a.poll_timeout(), self.b.poll_timeout()]
                    .into_iter()
                    .flatten()
                    .min();
                self.now = t
                    .unwrap_or(self.now + Duration::from_millis(1))
                    .max(self.now);
                self.a.handle_timeout(self.now);
                self.b.handle_timeout(self.now);
            }
        }
    }
}

#[test]
fn steady_state_allocates_per_window_not_per_segment() {
    let cfg = KcpConfig::fast3().with_windows(256, 256).with_stream(true);
    let now = Instant::now();
    let mut p = Peers {
        a: Kcp::new(1, cfg, now),
        b: Kcp::new(1, cfg, now),
        now,
        buf: Vec::with_capacity(2048),
        rbuf: vec![0; 64 * 1024],
        chunk: vec![7; 8192],
    };
    p.transfer(4 << 20); // warm up: queues and pools reach their working size
    let segs_before = p.a.stats().out_segs;
    let before = ALLOCS.load(Ordering::Relaxed);
    p.transfer(32 << 20);
    let allocs = ALLOCS.load(Ordering::Relaxed) - before;
    let segs = p.a.stats().out_segs - segs_before;
    let windows = segs / 256;
    println!("{allocs} allocations for {segs} segments ({windows} windows)");
    assert!(segs > 20_000);
    assert!(
        allocs <= windows,
        "{allocs} allocations for {segs} segments: more than one per window"
    );
}
