use std::time::Duration;

use tether_runtime_tokio::{Config, KcpListener, KcpStream};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test]
async fn echo_one_mib() {
    let cfg = Config::default()
        .crypt("aes", "k")
        .mode("fast3")
        .windows(1024, 1024);
    let listener = KcpListener::bind("127.0.0.1:0", cfg.clone()).await.unwrap();
    let addr = listener.local_addr();
    tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let mut buf = vec![0u8; 65536];
        loop {
            let n = s.read(&mut buf).await.unwrap();
            s.write_all(&buf[..n]).await.unwrap();
        }
    });
    let mut c = KcpStream::connect(addr, cfg).await.unwrap();
    let data: Vec<u8> = (0..1u32 << 20).map(|i| (i * 7) as u8).collect();
    let (mut r, mut w) = tokio::io::split(c);
    let d2 = data.clone();
    let writer = tokio::spawn(async move {
        w.write_all(&d2).await.unwrap();
        w.flush().await.unwrap();
        w
    });
    let mut got = vec![0u8; data.len()];
    tokio::time::timeout(Duration::from_secs(20), r.read_exact(&mut got))
        .await
        .unwrap()
        .unwrap();
    assert!(got == data);
    let w = writer.await.unwrap();
    c = r.unsplit(w);
    drop(c);
}

/// The authenticated mode (hello handshake, per-session keys) over real loopback sockets:
/// 256 KiB echoed exactly, for both AEADs.
#[tokio::test]
async fn echo_in_authenticated_mode() {
    for crypt in ["chacha20-poly1305", "aes-128-gcm"] {
        let cfg = Config::default().crypt(crypt, "k").mode("fast3");
        let listener = KcpListener::bind("127.0.0.1:0", cfg.clone()).await.unwrap();
        let addr = listener.local_addr();
        let server = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = vec![0u8; 65536];
            loop {
                let n = s.read(&mut buf).await.unwrap();
                if n == 0 {
                    break;
                }
                s.write_all(&buf[..n]).await.unwrap();
            }
        });
        let c = KcpStream::connect(addr, cfg).await.unwrap();
        let data: Vec<u8> = (0..256u32 << 10)
            .map(|i| (i * 13 + i / 256) as u8)
            .collect();
        let (mut r, mut w) = tokio::io::split(c);
        let d2 = data.clone();
        let writer = tokio::spawn(async move {
            w.write_all(&d2).await.unwrap();
            w
        });
        let mut got = vec![0u8; data.len()];
        tokio::time::timeout(Duration::from_secs(20), r.read_exact(&mut got))
            .await
            .expect("echo timed out")
            .unwrap();
        assert!(got == data, "{crypt}: echo differs");
        drop(writer.await.unwrap());
        server.abort();
    }
}
