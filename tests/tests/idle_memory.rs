//! An established, idle session (aes + FEC 10/3, the `tether bench` idle setting) costs at
//! most 8 KiB on the server beyond the first one (issue 13 item 5). Bytes are counted by a
//! counting global allocator (live bytes: allocated minus freed), not by sampling RSS:
//! `(live with N sessions - live with 1 session) / (N - 1)`.
//!
//! Two servers are measured, each with N sessions that exchanged a one-byte hello and its
//! echo and then went idle (everything acknowledged, buffers given back after the
//! listener's `IDLE_RELEASE_DELAY`, no timer armed):
//! - the core `Listener` on its own, driven in simulated time;
//! - the tokio runtime's listener over loopback (driver, hub, stream buffers, socket task),
//!   with one application task that holds the accepted streams.
//!
//! The clients are core `Session`s driven by the test and dropped once their session is
//! idle, so only server-side memory is left in the count.
use std::alloc::{GlobalAlloc, Layout, System};
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use tether_core::driver::{Machine, StreamEvent, StreamId};
use tether_core::kcp::KcpConfig;
use tether_core::rng::seeded;
use tether_core::session::{Listener, ListenerConfig, ListenerEvent, Session, SessionConfig};
use tether_runtime_tokio::{Config, KcpListener, KcpStream};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

struct Counting;

/// Bytes currently allocated (allocated minus freed) by the whole process.
static LIVE: AtomicI64 = AtomicI64::new(0);

// SAFETY: every call is forwarded unchanged to the system allocator; the only addition is a
// relaxed counter update, which cannot affect the allocation's validity.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as our caller's: `layout` has non-zero size.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            LIVE.fetch_add(layout.size() as i64, Ordering::Relaxed);
        }
        p
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as `alloc`.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            LIVE.fetch_add(layout.size() as i64, Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as i64, Ordering::Relaxed);
        // SAFETY: `ptr` came from `System` with this `layout` (via the methods above).
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees about `ptr`, `layout`, `new_size`.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            LIVE.fetch_add(new_size as i64 - layout.size() as i64, Ordering::Relaxed);
        }
        p
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Sessions measured per server.
const N: usize = 200;
/// The bound of issue 13 item 5, bytes per idle session beyond the first.
const BUDGET: i64 = 8 * 1024;
/// What each client sends and gets back (the bench's hello).
const HELLO: &[u8] = b"h";

/// Both tests read the one process-wide counter: never run them at the same time.
static SERIAL: Mutex<()> = Mutex::new(());

fn live() -> i64 {
    LIVE.load(Ordering::SeqCst)
}

/// `tether bench`'s idle setting: `--crypt aes --datashard 10 --parityshard 3 --mode fast
/// --sndwnd 1024 --rcvwnd 1024 --mtu 1350` (PBKDF2 runs once).
fn session_config() -> SessionConfig {
    static CFG: OnceLock<SessionConfig> = OnceLock::new();
    CFG.get_or_init(|| {
        let kcp = KcpConfig::fast()
            .with_windows(1024, 1024)
            .with_mtu(1350)
            .with_stream(true);
        SessionConfig::kcptun(kcp, "aes", "idle memory", 10, 3)
    })
    .clone()
}

fn per_session(one: i64, all: i64) -> i64 {
    (all - one) / (N as i64 - 1)
}

/// The core listener with its clients, in simulated time.
struct CoreBench {
    server: Listener,
    now: Instant,
    buf: Vec<u8>,
    rbuf: Vec<u8>,
}

impl CoreBench {
    fn client_addr(i: usize) -> SocketAddr {
        SocketAddr::from(([10, 0, (i / 250) as u8, (i % 250) as u8 + 1], 4000))
    }

    /// Server side of the bench's echo app: accept, and echo whatever is readable.
    fn serve(&mut self) {
        while let Some(ev) = self.server.poll_event() {
            match ev {
                ListenerEvent::Incoming(_) => {
                    self.server.accept();
                }
                ListenerEvent::Conn(id, StreamEvent::Readable(StreamId::SOLE)) => {
                    let s = self.server.session_mut(id).expect("live session");
                    while let Ok(n) = s.read(&mut self.rbuf) {
                        s.write(&self.rbuf[..n]).expect("echo fits the window");
                    }
                }
                _ => {}
            }
        }
    }

    /// Opens session `i`, exchanges the hello and its echo, and runs the clock until both
    /// sides are idle (nothing queued, everything acknowledged, no timer armed).
    fn establish(&mut self, i: usize) {
        let addr = Self::client_addr(i);
        let mut client = Session::dial(&session_config(), self.now, Box::new(seeded(i as u64)));
        client.write(HELLO).unwrap();
        let mut echoed = 0;
        for _ in 0..10_000 {
            let mut moved = false;
            while client.poll_transmit(self.now, &mut self.buf).is_some() {
                let _ = self.server.handle_datagram(self.now, addr, &self.buf);
                self.buf.clear();
                moved = true;
            }
            self.serve();
            while let Some((to, _)) = self.server.poll_transmit(self.now, &mut self.buf) {
                assert_eq!(to, addr);
                let _ = client.handle_input(self.now, &self.buf);
                self.buf.clear();
                moved = true;
            }
            while let Ok(n) = client.read(&mut self.rbuf) {
                echoed += n;
            }
            if moved {
                continue;
            }
            let next = [self.server.poll_timeout(), client.poll_timeout()]
                .into_iter()
                .flatten()
                .min();
            let Some(t) = next else {
                assert_eq!(echoed, HELLO.len(), "session {i}: the echo came back");
                assert!(client.kcp().all_acked());
                return;
            };
            self.now = self.now.max(t);
            self.server.handle_timeout(self.now);
            client.handle_timeout(self.now);
        }
        panic!("session {i} did not go idle");
    }
}

#[test]
fn idle_session_costs_at_most_8_kib_in_the_core_listener() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let cfg = ListenerConfig::new(session_config());
    let mut b = CoreBench {
        server: Listener::new(cfg, Box::new(seeded(1))),
        now: Instant::now(),
        buf: Vec::with_capacity(2048),
        rbuf: vec![0; 64 * 1024],
    };
    b.establish(0);
    let one = live();
    for i in 1..N {
        b.establish(i);
    }
    let all = live();
    assert_eq!(b.server.len(), N);
    let per = per_session(one, all);
    println!("core listener: {per} bytes per idle session ({one} live with 1, {all} with {N})");
    assert!(
        per <= BUDGET,
        "an idle session costs {per} bytes in the core listener, more than {BUDGET}"
    );
}

/// A client of the tokio server: a core session on its own loopback socket, driven in real
/// time until its hello is echoed and everything is acknowledged.
fn establish_over_udp(server: SocketAddr, i: usize) {
    let sock = UdpSocket::bind("127.0.0.1:0").expect("bind a client socket");
    sock.set_read_timeout(Some(Duration::from_millis(2)))
        .unwrap();
    let mut client = Session::dial(
        &session_config(),
        Instant::now(),
        Box::new(seeded(i as u64)),
    );
    client.write(HELLO).unwrap();
    let (mut buf, mut rbuf) = (Vec::with_capacity(2048), [0u8; 64]);
    let mut echoed = 0;
    let start = Instant::now();
    loop {
        let now = Instant::now();
        client.handle_timeout(now);
        while client.poll_transmit(now, &mut buf).is_some() {
            sock.send_to(&buf, server).expect("send to the server");
            buf.clear();
        }
        let mut dgram = [0u8; 1500];
        if let Ok((n, _)) = sock.recv_from(&mut dgram) {
            let _ = client.handle_input(Instant::now(), &dgram[..n]);
        }
        while let Ok(n) = client.read(&mut rbuf) {
            echoed += n;
        }
        if echoed == HELLO.len() && client.poll_timeout().is_none() && !client.has_transmit() {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "session {i} did not go idle"
        );
    }
}

/// Waits until the server has answered everything and gone quiet.
fn settle(listener: &KcpListener) {
    let mut last = listener.driver_stats();
    loop {
        std::thread::sleep(Duration::from_millis(150));
        let now = listener.driver_stats();
        if now == last {
            return;
        }
        last = now;
    }
}

#[test]
fn idle_session_costs_at_most_8_kib_in_the_tokio_runtime() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let cfg = Config {
        session: session_config(),
        ..Config::default()
    };
    let listener = Arc::new(rt.block_on(KcpListener::bind("127.0.0.1:0", cfg)).unwrap());
    let addr = listener.local_addr();
    let echoed = Arc::new(AtomicUsize::new(0));
    let (l2, count) = (Arc::clone(&listener), Arc::clone(&echoed));
    // The application: accept, echo the hello, hold the stream.
    rt.spawn(async move {
        let mut held: Vec<KcpStream> = Vec::with_capacity(N);
        while let Ok((mut s, _)) = l2.accept().await {
            let mut b = [0u8; 1];
            if s.read_exact(&mut b).await.is_ok() && s.write_all(&b).await.is_ok() {
                held.push(s);
                count.fetch_add(1, Ordering::SeqCst);
            }
        }
    });
    establish_over_udp(addr, 0);
    settle(&listener);
    let one = live();
    for i in 1..N {
        establish_over_udp(addr, i);
    }
    settle(&listener);
    let all = live();
    assert_eq!(echoed.load(Ordering::SeqCst), N);
    let per = per_session(one, all);
    println!("tokio listener: {per} bytes per idle session ({one} live with 1, {all} with {N})");
    assert!(
        per <= BUDGET,
        "an idle session costs {per} bytes in the tokio runtime, more than {BUDGET}"
    );
}
