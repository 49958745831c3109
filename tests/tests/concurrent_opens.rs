//! Many tasks opening and accepting streams on one connection at once: every call returns
//! (the hub parks all waiting tasks, not only the last one), over TCP and over KCP.
use std::sync::Arc;
use std::time::Duration;

use tether_core::smux::{Smux, SmuxConfig};
use tether_core::stack::{Side, Stack};
use tether_core::stream_link::StreamLink;
use tether_runtime_tokio::{Config, KcpConnection, KcpListener, TcpConnection, TcpMuxListener};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::task::JoinSet;

const STREAMS: usize = 32;

/// Opens [`STREAMS`] streams from as many tasks at once on `client`, each writing its index,
/// while as many tasks accept on `server` and echo one byte back.
async fn open_and_accept_at_once(client: KcpConnection, server: KcpConnection) {
    let (client, server) = (Arc::new(client), Arc::new(server));
    let mut tasks = JoinSet::new();
    for i in 0..STREAMS {
        let c = Arc::clone(&client);
        tasks.spawn(async move {
            let mut s = c.open_stream().await.expect("open_stream");
            s.write_all(&[i as u8]).await.expect("write");
            let mut b = [0u8; 1];
            s.read_exact(&mut b).await.expect("read echo");
            assert_eq!(b[0], i as u8);
        });
        let srv = Arc::clone(&server);
        tasks.spawn(async move {
            let mut s = srv.accept_stream().await.expect("accept_stream");
            let mut b = [0u8; 1];
            s.read_exact(&mut b).await.expect("read");
            s.write_all(&b).await.expect("echo");
            s.flush().await.expect("flush");
        });
    }
    tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(r) = tasks.join_next().await {
            r.expect("task");
        }
    })
    .await
    .expect("every open and accept returned");
}

fn smux(side: Side) -> Smux {
    Smux::new(SmuxConfig::xtaci(2), side)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_tcp() {
    let l = TcpMuxListener::bind("127.0.0.1:0", || {
        Stack::new(StreamLink::default(), smux(Side::Server))
    })
    .await
    .unwrap();
    let client = TcpConnection::connect_tcp(
        l.local_addr(),
        Stack::new(StreamLink::default(), smux(Side::Client)),
    )
    .await
    .unwrap();
    let server = l.accept_connection().await.unwrap();
    open_and_accept_at_once(client, server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_kcp() {
    let cfg = Config::default().mode("fast3");
    let l = KcpListener::bind_with("127.0.0.1:0", cfg.clone(), smux)
        .await
        .unwrap();
    let client = KcpConnection::connect_with(l.local_addr(), cfg, smux)
        .await
        .unwrap();
    // KCP has no handshake: the server's connection appears with the first stream's bytes.
    let accept = tokio::spawn(async move {
        let server = l.accept_connection().await.unwrap();
        (l, server)
    });
    let c = Arc::new(client);
    let first = {
        let mut s = c.open_stream().await.unwrap();
        s.write_all(b"x").await.unwrap();
        s
    };
    let (_l, server) = accept.await.unwrap();
    let mut s0 = server.accept_stream().await.unwrap();
    let mut b = [0u8; 1];
    s0.read_exact(&mut b).await.unwrap();
    drop((first, s0));
    let client = Arc::try_unwrap(c).expect("one handle");
    open_and_accept_at_once(client, server).await;
}
