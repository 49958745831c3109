//! 1 MiB echo through the smol adapter, under smol and under async-std.
use std::future::Future;
use std::time::Duration;

use async_io::Timer;
use futures_lite::{future, AsyncReadExt, AsyncWriteExt};
use tether_runtime_smol::{Config, KcpListener, KcpStream};

/// Fails the test instead of hanging.
async fn deadline<T>(secs: u64, what: &str, f: impl Future<Output = T>) -> T {
    future::or(async { Some(f.await) }, async {
        Timer::after(Duration::from_secs(secs)).await;
        None
    })
    .await
    .unwrap_or_else(|| panic!("{what}: timed out after {secs}s"))
}

fn cfg() -> Config {
    Config::default()
        .crypt("aes", "k")
        .mode("fast3")
        .windows(1024, 1024)
}

/// Echo server body: reads and writes back until the peer goes away.
async fn echo(listener: KcpListener) {
    let (mut s, peer) = listener.accept().await.unwrap();
    assert_eq!(peer, s.peer_addr());
    let mut buf = vec![0u8; 65536];
    loop {
        let n = match s.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if s.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

/// Client body: sends 1 MiB concurrently with reading it back, checks it, flushes.
async fn client(addr: std::net::SocketAddr) {
    let c = KcpStream::connect(addr, cfg()).await.unwrap();
    assert_eq!(c.peer_addr(), addr);
    let data: Vec<u8> = (0..1u32 << 20).map(|i| (i * 7) as u8).collect();
    let (mut r, mut w) = futures_lite::io::split(c);
    let send = async {
        w.write_all(&data).await.unwrap();
        w.flush().await.unwrap();
        // KCP has no FIN: close is a flush (everything acknowledged).
        w.close().await.unwrap();
    };
    let recv = async {
        let mut got = vec![0u8; data.len()];
        r.read_exact(&mut got).await.unwrap();
        got
    };
    let ((), got) = deadline(20, "1 MiB echo", future::zip(send, recv)).await;
    assert!(got == data, "echoed bytes differ");
    drop((r, w));
}

#[test]
fn echo_one_mib_smol() {
    smol::block_on(async {
        let listener = KcpListener::bind("127.0.0.1:0", cfg()).await.unwrap();
        let addr = listener.local_addr();
        let server = smol::spawn(echo(listener));
        client(addr).await;
        drop(server);
    });
}

#[test]
fn echo_one_mib_async_std() {
    async_std::task::block_on(async {
        let listener = KcpListener::bind("127.0.0.1:0", cfg()).await.unwrap();
        let addr = listener.local_addr();
        let server = async_std::task::spawn(echo(listener));
        client(addr).await;
        drop(server);
    });
}

#[test]
fn accept_times_out_cleanly() {
    smol::block_on(async {
        let listener = KcpListener::bind("127.0.0.1:0", cfg()).await.unwrap();
        let r = future::or(async { Some(listener.accept().await) }, async {
            Timer::after(Duration::from_millis(100)).await;
            None
        })
        .await;
        assert!(r.is_none(), "no client, so no session");
    });
}
