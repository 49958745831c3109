//! `tether netem` as a user runs it: the built binary, spawned with `--listen 127.0.0.1:0`,
//! its readiness line parsed, real datagrams pushed through it to a local echo socket.
//!
//! The binary is found next to this test's own executable (`target/<profile>/tether`) and
//! built with `cargo build -p tether-cli` first (a no-op when it is fresh); set
//! `TETHER_BIN=/path/to/tether` to use another one.
use std::collections::HashSet;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tether_tests::tether_bin::Netem;

struct Echo {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    served: Arc<AtomicU64>,
    thread: Option<JoinHandle<()>>,
}

impl Echo {
    fn start() -> Self {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(20)))
            .unwrap();
        let addr = sock.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let served = Arc::new(AtomicU64::new(0));
        let (s, n) = (stop.clone(), served.clone());
        let thread = std::thread::spawn(move || {
            let mut buf = vec![0u8; 65_535];
            while !s.load(Ordering::Relaxed) {
                if let Ok((len, from)) = sock.recv_from(&mut buf) {
                    n.fetch_add(1, Ordering::Relaxed);
                    let _ = sock.send_to(&buf[..len], from);
                }
            }
        });
        Echo {
            addr,
            stop,
            served,
            thread: Some(thread),
        }
    }
}

impl Drop for Echo {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Sends `n` numbered datagrams through `to` with at most `window` unanswered and returns
/// the distinct numbers echoed back; panics if an echo does not come within 5 s.
fn windowed_echo(to: SocketAddr, n: u32, window: u32) -> HashSet<u32> {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.connect(to).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut got = HashSet::new();
    let mut next = 0u32;
    let mut buf = [0u8; 64];
    while (got.len() as u32) < n {
        while next < n && next - got.len() as u32 <= window {
            sock.send(&next.to_be_bytes()).unwrap();
            next += 1;
        }
        let len = sock
            .recv(&mut buf)
            .unwrap_or_else(|e| panic!("echo {} of {n} missing: {e}", got.len()));
        assert_eq!(len, 4);
        got.insert(u32::from_be_bytes(buf[..4].try_into().unwrap()));
    }
    got
}

#[test]
fn lossless_netem_passes_every_datagram_to_the_server_and_back() {
    let echo = Echo::start();
    let netem = Netem::spawn(echo.addr, &["--loss", "0%", "--seed", "1", "--quiet"]);
    let got = windowed_echo(netem.listen, 500, 32);
    assert_eq!(got, (0..500).collect::<HashSet<u32>>());
    assert_eq!(echo.served.load(Ordering::Relaxed), 500);
    drop(netem);
}

#[test]
fn delay_shows_in_the_round_trip_and_counters_print_on_exit() {
    let echo = Echo::start();
    let netem = Netem::spawn(echo.addr, &["--delay", "30ms", "--duration", "3s"]);
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.connect(netem.listen).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = [0u8; 16];
    for i in 0..10u8 {
        let sent = Instant::now();
        sock.send(&[i]).unwrap();
        let n = sock.recv(&mut buf).expect("echo through netem");
        assert_eq!(&buf[..n], &[i]);
        let rtt = sent.elapsed();
        assert!(rtt >= Duration::from_millis(60), "rtt {rtt:?}");
    }
    let stderr = netem.wait_for_exit();
    assert!(stderr.contains("stopped after"), "{stderr}");
    assert!(
        stderr.contains("client->server: sent=10 delivered=10 lost=0"),
        "{stderr}"
    );
    assert!(
        stderr.contains("server->client: sent=10 delivered=10 lost=0"),
        "{stderr}"
    );
    assert!(
        stderr.contains("netem: client 127.0.0.1:"),
        "not --quiet: clients are logged\n{stderr}"
    );
}
