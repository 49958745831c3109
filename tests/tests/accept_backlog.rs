//! Issue 13 item 4: the tokio and smol runtimes honour the core listener's accept backlog
//! and `accept_timeout`. A session stays in the listener's backlog until the application
//! calls `accept()`; a full backlog drops new sessions (kcp-go's 128-slot channel), and a
//! session nobody accepts expires. Before the fix, the driver accepted every session into
//! the hub on the application's behalf, so neither bound applied.
use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use tether_core::kcp::segment::{Cmd, Header};
use tether_core::wire::Writer;
use tether_runtime_tokio::Config;

const BACKLOG: usize = 4;
const ACCEPT_TIMEOUT: Duration = Duration::from_millis(300);

fn cfg() -> Config {
    Config::default()
        .raw()
        .fec(0, 0)
        .backlog(BACKLOG)
        .accept_timeout(ACCEPT_TIMEOUT)
}

/// One raw KCP PUSH (sn 0, one byte) from a fresh source port: a new session.
fn knock(to: SocketAddr, conv: u32) -> UdpSocket {
    let sock = UdpSocket::bind("127.0.0.1:0").expect("bind client");
    let mut d = Vec::new();
    Header {
        conv,
        cmd: Cmd::Push as u8,
        wnd: 32,
        len: 1,
        ..Header::default()
    }
    .encode(&mut Writer::new(&mut d));
    d.push(b'x');
    sock.send_to(&d, to).expect("send");
    sock
}

/// `n` new sessions, 20 ms apart (so the endpoint task runs between them).
fn knock_many(to: SocketAddr, n: u32) -> Vec<UdpSocket> {
    (0..n)
        .map(|i| {
            std::thread::sleep(Duration::from_millis(20));
            knock(to, 1000 + i)
        })
        .collect()
}

mod tokio_rt {
    use super::*;
    use tether_runtime_tokio::KcpListener;

    async fn accepted_within(l: &KcpListener, limit: Duration) -> usize {
        let mut n = 0;
        while let Ok(Ok(_)) = tokio::time::timeout(limit, l.accept()).await {
            n += 1;
        }
        n
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn backlog_bounds_unaccepted_sessions() {
        let l = KcpListener::bind("127.0.0.1:0", cfg()).await.expect("bind");
        let _clients = knock_many(l.local_addr(), 10);
        tokio::time::sleep(Duration::from_millis(100)).await;
        let n = accepted_within(&l, Duration::from_millis(100)).await;
        assert_eq!(n, BACKLOG, "sessions beyond the backlog must be dropped");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn unaccepted_sessions_expire() {
        let l = KcpListener::bind("127.0.0.1:0", cfg()).await.expect("bind");
        let _clients = knock_many(l.local_addr(), 3);
        tokio::time::sleep(ACCEPT_TIMEOUT * 2).await;
        let n = accepted_within(&l, Duration::from_millis(100)).await;
        assert_eq!(
            n, 0,
            "sessions not accepted within accept_timeout must be gone"
        );
        let _late = knock(l.local_addr(), 7);
        let n = accepted_within(&l, Duration::from_millis(200)).await;
        assert_eq!(n, 1, "a new session after the expiry is accepted");
    }
}

mod smol_rt {
    use super::*;
    use futures_lite::future;
    use smol::Timer;
    use tether_runtime_smol::KcpListener;

    async fn accepted_within(l: &KcpListener, limit: Duration) -> usize {
        let mut n = 0;
        loop {
            let got = future::or(async { l.accept().await.ok().map(|_| ()) }, async {
                Timer::after(limit).await;
                None
            })
            .await;
            if got.is_none() {
                return n;
            }
            n += 1;
        }
    }

    #[test]
    fn backlog_bounds_unaccepted_sessions() {
        smol::block_on(async {
            let l = KcpListener::bind("127.0.0.1:0", cfg()).await.expect("bind");
            let _clients = knock_many(l.local_addr(), 10);
            Timer::after(Duration::from_millis(100)).await;
            let n = accepted_within(&l, Duration::from_millis(100)).await;
            assert_eq!(n, BACKLOG, "sessions beyond the backlog must be dropped");
        });
    }

    #[test]
    fn unaccepted_sessions_expire() {
        smol::block_on(async {
            let l = KcpListener::bind("127.0.0.1:0", cfg()).await.expect("bind");
            let _clients = knock_many(l.local_addr(), 3);
            Timer::after(ACCEPT_TIMEOUT * 2).await;
            let n = accepted_within(&l, Duration::from_millis(100)).await;
            assert_eq!(
                n, 0,
                "sessions not accepted within accept_timeout must be gone"
            );
            let _late = knock(l.local_addr(), 7);
            let n = accepted_within(&l, Duration::from_millis(200)).await;
            assert_eq!(n, 1, "a new session after the expiry is accepted");
        });
    }
}
