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
