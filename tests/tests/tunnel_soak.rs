//! A bounded soak of the tether↔tether tunnel: about 200 short TCP connections a second for
//! 20 s (each sends 1 KiB, half-closes, reads the echo and the end of the stream). No
//! connection may fail, and neither process may grow: open file descriptors and resident
//! memory are read from `/proc` after a warm-up and again at the end, once the last streams
//! have closed.
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tether_tests::tunnel::{echo_target, echo_through, fds_and_rss, free_port, start_end, Impl};

const RATE: usize = 200;
const SECS: u64 = 20;
const WORKERS: usize = 8;
const WARMUP: Duration = Duration::from_secs(3);
/// Allowed growth between the warm-up and the end.
const MAX_FD_GROWTH: usize = 8;
const MAX_RSS_GROWTH_KIB: u64 = 16 * 1024;

#[test]
fn two_hundred_connections_a_second_without_failures_or_growth() {
    let target = echo_target();
    let udp = format!("127.0.0.1:{}", free_port(true));
    let local: std::net::SocketAddr = format!("127.0.0.1:{}", free_port(false)).parse().unwrap();
    let s_args = [
        "-l",
        &udp,
        "-t",
        &target.to_string(),
        "--key",
        "soak",
        "--quiet",
    ];
    let server = start_end(Impl::Tether, "server", &s_args.map(String::from));
    let c_args = [
        "-l",
        &local.to_string(),
        "-r",
        &udp,
        "--key",
        "soak",
        "--quiet",
        "--conn",
        "2",
    ];
    let client = start_end(Impl::Tether, "client", &c_args.map(String::from));

    let done = Arc::new(AtomicUsize::new(0));
    let failures = Arc::new(Mutex::new(Vec::<String>::new()));
    let start = Instant::now();
    let per_worker = RATE / WORKERS;
    let period = Duration::from_secs(1) / per_worker as u32;
    let total = per_worker * SECS as usize;
    let workers: Vec<_> = (0..WORKERS)
        .map(|w| {
            let (done, failures) = (Arc::clone(&done), Arc::clone(&failures));
            std::thread::spawn(move || {
                for k in 0..total {
                    let due = start + period * k as u32 + period * w as u32 / WORKERS as u32;
                    if let Some(wait) = due.checked_duration_since(Instant::now()) {
                        std::thread::sleep(wait);
                    }
                    let seed = (w * total + k) as u64;
                    if let Err(e) = echo_through(local, seed, 1024, true, Duration::from_secs(10)) {
                        failures
                            .lock()
                            .unwrap()
                            .push(format!("worker {w} connection {k}: {e}"));
                    }
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    std::thread::sleep(WARMUP);
    let before = (fds_and_rss(client.pid()), fds_and_rss(server.pid()));
    for w in workers {
        w.join().expect("worker");
    }
    let elapsed = start.elapsed();
    // Let the last streams' FINs and the sessions' bookkeeping settle.
    std::thread::sleep(Duration::from_secs(2));
    let after = (fds_and_rss(client.pid()), fds_and_rss(server.pid()));
    let n = done.load(Ordering::Relaxed);
    eprintln!(
        "soak: {n} connections in {elapsed:.1?} ({:.0}/s); client fds/rss KiB {:?} -> {:?}, \
         server {:?} -> {:?}",
        n as f64 / elapsed.as_secs_f64(),
        before.0,
        after.0,
        before.1,
        after.1
    );
    let failures = failures.lock().unwrap();
    assert!(
        failures.is_empty(),
        "{} failed connections, first ones: {:#?}\n--- client log:\n{}\n--- server log:\n{}",
        failures.len(),
        &failures[..failures.len().min(5)],
        client.log_text(),
        server.log_text()
    );
    assert_eq!(n, WORKERS * total);
    assert!(
        elapsed < Duration::from_secs(SECS + 10),
        "the tunnel could not keep up with {RATE} connections/s: {elapsed:?}"
    );
    for (name, (b, a)) in [
        ("client", (before.0, after.0)),
        ("server", (before.1, after.1)),
    ] {
        assert!(
            a.0 <= b.0 + MAX_FD_GROWTH,
            "{name} fds grew {} -> {}",
            b.0,
            a.0
        );
        assert!(
            a.1 <= b.1 + MAX_RSS_GROWTH_KIB,
            "{name} RSS grew {} -> {} KiB",
            b.1,
            a.1
        );
    }
}
