//! A listener with `Config::reuseport(2)` runs two sockets on one port: the kernel spreads
//! clients over both (each socket loop serves its own sessions), and `accept` hands out
//! sessions from both. Complements `scenarios::reuseport_clients`, which checks the data.
use std::io;

use tether_tests::scenarios::{base_config, payload};

/// Clients from distinct source ports: with 24 of them, the chance that the kernel's
/// 4-tuple hash puts all on one of two sockets is 2 in 2^24.
const CLIENTS: usize = 24;

#[test]
fn tokio_listener_spreads_peers_over_its_sockets() {
    use tether_runtime_tokio::{KcpListener, KcpStream};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let per_socket = rt.block_on(async {
        let cfg = base_config().clone().reuseport(2);
        let listener = KcpListener::bind("127.0.0.1:0", cfg).await?;
        let addr = listener.local_addr();
        let mut clients = tokio::task::JoinSet::new();
        for i in 0..CLIENTS {
            clients.spawn(async move {
                let mut c = KcpStream::connect(addr, base_config().clone()).await?;
                let data = payload(16 << 10, 3000 + i as u64);
                c.write_all(&data).await?;
                let mut got = vec![0u8; data.len()];
                c.read_exact(&mut got).await?;
                assert!(got == data, "client {i}: echoed bytes differ");
                io::Result::Ok(())
            });
        }
        for _ in 0..CLIENTS {
            let (mut s, _) = listener.accept().await?;
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 << 10];
                while let Ok(n) = s.read(&mut buf).await {
                    if n == 0 || s.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            });
        }
        while let Some(r) = clients.join_next().await {
            r.map_err(io::Error::other)??;
        }
        io::Result::Ok(listener.driver_stats_per_socket())
    });
    let per_socket = per_socket.expect("echo through a two-socket listener");
    assert_both_sockets_served(&per_socket);
}

#[test]
fn smol_listener_spreads_peers_over_its_sockets() {
    use futures_lite::{AsyncReadExt, AsyncWriteExt};
    use tether_runtime_smol::{KcpListener, KcpStream};
    let per_socket = smol::block_on(async {
        let cfg = base_config().clone().reuseport(2);
        let listener = KcpListener::bind("127.0.0.1:0", cfg).await?;
        let addr = listener.local_addr();
        let ex = smol::Executor::new();
        let clients: Vec<_> = (0..CLIENTS)
            .map(|i| {
                ex.spawn(async move {
                    let mut c = KcpStream::connect(addr, base_config().clone()).await?;
                    let data = payload(16 << 10, 4000 + i as u64);
                    c.write_all(&data).await?;
                    let mut got = vec![0u8; data.len()];
                    c.read_exact(&mut got).await?;
                    assert!(got == data, "client {i}: echoed bytes differ");
                    io::Result::Ok(())
                })
            })
            .collect();
        ex.run(async {
            for _ in 0..CLIENTS {
                let (mut s, _) = listener.accept().await?;
                ex.spawn(async move {
                    let mut buf = vec![0u8; 64 << 10];
                    while let Ok(n) = s.read(&mut buf).await {
                        if n == 0 || s.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                })
                .detach();
            }
            for c in clients {
                c.await?;
            }
            io::Result::Ok(())
        })
        .await?;
        io::Result::Ok(listener.driver_stats_per_socket())
    });
    let per_socket = per_socket.expect("echo through a two-socket listener");
    assert_both_sockets_served(&per_socket);
}

/// Both sockets of the port received datagrams: the kernel spread the clients.
fn assert_both_sockets_served(per_socket: &[tether_runtime_tokio::DriverStats]) {
    assert_eq!(per_socket.len(), 2, "one entry per socket");
    for (i, s) in per_socket.iter().enumerate() {
        assert!(
            s.datagrams_in > 0,
            "socket {i} received nothing: the port is not shared ({per_socket:?})"
        );
    }
}

/// `reuseport(0)` is refused with a message naming the fix.
#[test]
fn zero_sockets_is_refused() {
    let err = base_config().clone().reuseport(0).validate().unwrap_err();
    assert!(err.to_string().contains("use 1 or more"), "{err}");
}
