//! The runtimes' UDP socket loop is generic over the datagram endpoint (issue 15 item 4): a
//! non-KCP endpoint (`tether_core::sim::toy_datagram`, go-back-N, one stream per peer, a
//! HELLO/WELCOME handshake) carries a stream over real loopback UDP through the same loop
//! the KCP listener runs on, on tokio and smol (`ListenerHandle::bind_endpoint`,
//! `StreamHandle::connect_endpoint`), and through the mio `UdpEndpoint`. The bytes must
//! arrive exactly, in order.
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use tether_runtime_mio::config::Config;
use tether_runtime_mio::core::driver::{
    DatagramEndpoint, EndpointEvent, StreamError, StreamEvent, StreamId, Streams,
};
use tether_runtime_mio::core::sim::toy_datagram::ToyEndpoint;
use tether_runtime_mio::handle::StreamHandle;

/// Bytes sent each way: several windows of the toy (32 chunks of 1 KiB) and its buffers.
const BYTES: usize = 1 << 20;
const LIMIT: Duration = Duration::from_secs(60);

fn payload() -> Vec<u8> {
    (0..BYTES).map(|i| (i * 31 + i / 251) as u8).collect()
}

/// The transfer on an async runtime: the client writes [`BYTES`] and flushes (every byte
/// acknowledged), the server reads them and echoes a quarter back. `$spawn` runs a future in
/// the background and `$join` waits for its output; the runtime's `AsyncReadExt` and
/// `AsyncWriteExt` must be in scope.
macro_rules! toy_transfer {
    ($rt:ident, $spawn:expr, $join:expr) => {{
        let listener = $rt::KcpListener::bind_endpoint("127.0.0.1:0", Config::default(), || {
            ToyEndpoint::new(true)
        })
        .await
        .unwrap();
        let addr = listener.local_addr();
        let client = StreamHandle::connect_endpoint::<$rt::Rt, _>(
            addr,
            Config::default(),
            ToyEndpoint::new(false),
        )
        .await
        .unwrap();
        let mut client = $rt::KcpStream::from(client);
        let sent = payload();
        let writer = {
            let sent = sent.clone();
            $spawn(async move {
                client.write_all(&sent).await.unwrap();
                client.flush().await.unwrap(); // every byte acknowledged
                client
            })
        };
        let (mut server, peer) = listener.accept().await.unwrap();
        assert_eq!(peer.ip(), addr.ip());
        let mut got = vec![0u8; BYTES];
        server.read_exact(&mut got).await.unwrap();
        assert!(got == sent, "the toy stream's bytes differ");
        // The echo direction: the server writes, the client reads.
        server.write_all(&got[..BYTES / 4]).await.unwrap();
        let mut client = $join(writer).await;
        let mut back = vec![0u8; BYTES / 4];
        client.read_exact(&mut back).await.unwrap();
        assert!(back[..] == sent[..BYTES / 4], "the echoed bytes differ");
    }};
}

mod tokio_rt {
    pub use tether_runtime_tokio::{KcpListener, KcpStream, Tokio as Rt};
}

mod smol_rt {
    pub use tether_runtime_smol::{KcpListener, KcpStream, Smol as Rt};
}

#[test]
fn toy_endpoint_on_tokio() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let join = |h: tokio::task::JoinHandle<_>| async { h.await.unwrap() };
        let run = async { toy_transfer!(tokio_rt, tokio::spawn, join) };
        tokio::time::timeout(LIMIT, run)
            .await
            .expect("the toy transfer timed out");
    });
}

#[test]
fn toy_endpoint_on_smol() {
    use futures_lite::{AsyncReadExt, AsyncWriteExt};
    smol::block_on(async {
        let join = |t| t;
        let run = async { toy_transfer!(smol_rt, smol::spawn, join) };
        let timeout = async {
            smol::Timer::after(LIMIT).await;
            panic!("the toy transfer timed out");
        };
        futures_lite::future::or(run, timeout).await;
    });
}

#[test]
fn toy_endpoint_on_mio() {
    use mio::{Events, Poll, Token};
    use tether_runtime_mio::endpoint::{UdpEndpoint, INTEREST};

    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let cfg = Config::default();
    let open = |server| {
        let sock = UdpSocket::bind(any).unwrap();
        UdpEndpoint::from_endpoint(sock, &cfg, ToyEndpoint::new(server)).unwrap()
    };
    let (mut server, mut client) = (open(true), open(false));
    let mut poll = Poll::new().unwrap();
    poll.registry()
        .register(&mut server, Token(0), INTEREST)
        .unwrap();
    poll.registry()
        .register(&mut client, Token(1), INTEREST)
        .unwrap();
    let mut events = Events::with_capacity(16);

    let sent = payload();
    let id = client.connect(Instant::now(), server.local_addr().unwrap());
    let (mut written, mut got, mut conn) = (0, Vec::with_capacity(BYTES), None);
    let mut buf = vec![0u8; 64 * 1024];
    let start = Instant::now();
    while got.len() < BYTES {
        assert!(start.elapsed() < LIMIT, "the toy transfer timed out");
        // The client writes what the toy's send buffer takes.
        while written < BYTES {
            match client
                .conn_mut(id)
                .unwrap()
                .write(StreamId::SOLE, &sent[written..])
            {
                Ok(n) => written += n,
                Err(StreamError::Blocked) => break,
                Err(e) => panic!("write: {e}"),
            }
        }
        let deadlines = [server.next_deadline(), client.next_deadline()];
        let next = deadlines.into_iter().flatten().min();
        let timeout = next.map(|d| d.saturating_duration_since(Instant::now()));
        poll.poll(&mut events, timeout.or(Some(Duration::from_millis(100))))
            .unwrap();
        let now = Instant::now();
        server.process(now).unwrap();
        client.process(now).unwrap();
        while let Some(ev) = server.poll_event() {
            match ev {
                EndpointEvent::Incoming(_) => conn = conn.or(server.accept()),
                EndpointEvent::Conn(_, StreamEvent::Closed(r)) => panic!("closed: {r:?}"),
                EndpointEvent::Conn(..) => {}
            }
        }
        while client.poll_event().is_some() {}
        let Some(c) = conn else { continue };
        loop {
            match server.conn_mut(c).unwrap().read(StreamId::SOLE, &mut buf) {
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(StreamError::Blocked) => break,
                Err(e) => panic!("read: {e}"),
            }
        }
    }
    assert!(got == sent, "the toy stream's bytes differ");
    assert!(DatagramEndpoint::counters(server.endpoint()).in_pkts > 0);
    // The application is done: the client lingers until acknowledged, then it is empty.
    client.close_when_acked(Instant::now(), id);
    while !DatagramEndpoint::is_empty(client.endpoint()) {
        assert!(start.elapsed() < LIMIT, "the client never closed");
        poll.poll(&mut events, Some(Duration::from_millis(10)))
            .unwrap();
        let now = Instant::now();
        server.process(now).unwrap();
        client.process(now).unwrap();
    }
    assert!(matches!(
        client.poll_event(),
        Some(EndpointEvent::Conn(c, StreamEvent::Closed(_))) if c == id
    ));
}
