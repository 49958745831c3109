//! One scenario suite for every runtime adapter: echo, bulk both directions, 1000 concurrent
//! sessions, close/expiry, a vanishing peer, a dead link, a dropped stream that lingers until
//! acknowledged and a peer that only reads, written once against
//! [`Rt`], a small blocking facade each runtime implements (see `tests/tests/runtimes.rs`).
//!
//! Every wait is bounded: facade calls take a limit and fail with [`deadline_error`] (kind
//! `Other`, so it is never mistaken for a runtime's own `TimedOut`) when it passes.
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
pub use tether_runtime_mio::config::Config;

/// Bound on one facade call unless a scenario says otherwise.
pub const LIMIT: Duration = Duration::from_secs(30);

/// A runtime as the scenarios see it: blocking calls with deadlines. Dropping a
/// [`Rt::Conn`] makes the client go silent (KCP has no FIN); dropping a [`Rt::Server`] shuts
/// the server down (its socket and sessions go away).
pub trait Rt {
    /// Name used in timing lines.
    const NAME: &'static str;
    /// A running echo server.
    type Server: EchoServer;
    /// One client session.
    type Conn;

    /// Starts a server on `127.0.0.1:0` that echoes every session's bytes back.
    fn echo_server(cfg: &Config) -> io::Result<Self::Server>;
    /// Starts a server on `127.0.0.1:0` that only reads: it never writes a byte back, so
    /// nothing but KCP's own ACKs travels towards the client.
    fn sink_server(cfg: &Config) -> io::Result<Self::Server>;
    /// Dials `addr` from a fresh client socket.
    fn connect(addr: SocketAddr, cfg: &Config) -> io::Result<Self::Conn>;
    /// Hands all of `data` to the session (not necessarily acknowledged yet).
    fn write_all(conn: &mut Self::Conn, data: &[u8], limit: Duration) -> io::Result<()>;
    /// Fills `buf` from the session.
    fn read_exact(conn: &mut Self::Conn, buf: &mut [u8], limit: Duration) -> io::Result<()>;
    /// Waits until the peer acknowledged every written byte.
    fn flush(conn: &mut Self::Conn, limit: Duration) -> io::Result<()>;
    /// Writes `data` while concurrently reading `data.len()` bytes; returns what was read.
    fn duplex(conn: &mut Self::Conn, data: &[u8], limit: Duration) -> io::Result<Vec<u8>>;
    /// Opens one session per message, all at once, sends each message and reads as many
    /// bytes back on the same session; returns the replies in order.
    fn echo_many(
        addr: SocketAddr,
        cfg: &Config,
        msgs: &[Vec<u8>],
        limit: Duration,
    ) -> io::Result<Vec<Vec<u8>>>;
    /// Starts a server whose sessions carry [`toy_mux`] stacks and echo every stream, dials
    /// it with one such session, opens one stream per message, writes each and reads as
    /// many bytes back on the same stream; returns the replies in order.
    fn mux_echo(cfg: &Config, msgs: &[Vec<u8>], limit: Duration) -> io::Result<Vec<Vec<u8>>>;
    /// Runs [`crate::scenarios_tcp_mux`] (a toy multiplexer over loopback TCP: streams
    /// both ways echoing 1 MiB each to a per-stream end, a refused open, a connection
    /// close ending the streams) on this runtime; `Err` says which step failed.
    fn tcp_mux(limit: Duration) -> io::Result<()>;
    /// Runs [`crate::scenarios_tcp_mux`]'s streams both ways (each written, half-closed,
    /// echoed to its end and half-closed back) over one KCP session carrying the toy mux.
    fn mux_ends(cfg: &Config, limit: Duration) -> io::Result<()>;
    /// Runs the same streams both ways with the real smux (xtaci v2,
    /// [`crate::scenarios_tcp_mux::smux_upper`]): over loopback TCP, then over one KCP
    /// session; `Err` says which carrier failed.
    fn smux_ends(cfg: &Config, limit: Duration) -> io::Result<()>;
    /// Runs [`crate::scenarios_chunks`] (the owned-chunk API: many tiny and large chunks
    /// echoed as they are over one smux stream on KCP, the end of the stream as `None`, a
    /// write after the half-close refused) on this runtime.
    fn chunk_roundtrip(cfg: &Config, limit: Duration) -> io::Result<()>;
}

/// The upper layer of the multiplexed scenario: core's toy echo multiplexer
/// (`tether_core::sim::toy_mux`), client or server side.
pub fn toy_mux(side: tether_core::stack::Side) -> tether_core::sim::toy_mux::ToyMux {
    use tether_core::sim::toy_mux::ToyMux;
    match side {
        tether_core::stack::Side::Client => ToyMux::client(),
        tether_core::stack::Side::Server => ToyMux::server(),
    }
}

/// The client side of [`Rt::mux_echo`] on the async runtimes (their `KcpConnection`): one
/// stream per message, each written whole, then each read back whole, through the shared
/// stream handle's `poll_write`/`poll_read` (the runtimes' `AsyncWrite`/`AsyncRead`
/// delegate to them).
pub async fn mux_client<S>(
    conn: &tether_runtime_mio::handle::ConnectionHandle<S>,
    msgs: &[Vec<u8>],
) -> io::Result<Vec<Vec<u8>>>
where
    S: tether_runtime_mio::handle::RuntimeStream
        + std::ops::Deref<Target = tether_runtime_mio::handle::StreamHandle>,
{
    use std::future::poll_fn;
    let mut streams = Vec::new();
    for _ in msgs {
        streams.push(conn.open_stream().await?);
    }
    for (s, m) in streams.iter().zip(msgs) {
        let mut sent = 0;
        while sent < m.len() {
            sent += poll_fn(|cx| s.poll_write(cx, &m[sent..])).await?;
        }
    }
    let mut out = Vec::new();
    for (s, m) in streams.iter().zip(msgs) {
        let mut back = vec![0u8; m.len()];
        let mut got = 0;
        while got < back.len() {
            let n = poll_fn(|cx| s.poll_read(cx, &mut back[got..])).await?;
            if n == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            got += n;
        }
        out.push(back);
    }
    Ok(out)
}

/// Two streams over one KCP session (`Stack<Session, ToyMux>`), through the runtime's
/// connection-level contracts (the client opens, the server accepts): each stream echoes
/// exactly its own bytes (issue 15, "done when").
pub fn mux_echo<R: Rt>() {
    let start = Instant::now();
    let cfg = base_config().clone().stream_mode(true);
    let msgs = [payload(40_000, 71), payload(25_000, 72)];
    let got = R::mux_echo(&cfg, &msgs, LIMIT).expect("two streams echo over one session");
    assert_eq!(got.len(), msgs.len());
    for (i, (g, w)) in got.iter().zip(&msgs).enumerate() {
        assert!(g == w, "stream {i}: {} bytes back, not its own", g.len());
    }
    report(R::NAME, "mux_echo", start.elapsed());
}

/// The TCP-carried toy multiplexer ([`crate::scenarios_tcp_mux`]): 2 streams each way
/// echoing 1 MiB byte for byte to a per-stream end of stream, a refused open, and a
/// connection close that ends the streams.
pub fn tcp_mux<R: Rt>() {
    let start = Instant::now();
    R::tcp_mux(Duration::from_secs(60)).expect("the TCP mux scenario");
    report(R::NAME, "tcp_mux", start.elapsed());
}

/// Per-stream ends over KCP: two toy-mux streams each way over one session, each half-closed
/// by its opener, echoed to its end (`Ok(0)`) and half-closed back, byte for byte, then
/// flushed (the hub's `poll_shutdown` → `Streams::finish`, end of stream, and `poll_flush`
/// on a multiplexed session, the same as over TCP).
pub fn mux_ends<R: Rt>() {
    let start = Instant::now();
    let cfg = base_config().clone().stream_mode(true);
    R::mux_ends(&cfg, Duration::from_secs(60)).expect("per-stream ends over KCP");
    report(R::NAME, "mux_ends", start.elapsed());
}

/// Per-stream ends with the real smux (xtaci v2): two streams each way, each half-closed
/// by its opener (a FIN), echoed to its end and half-closed back, byte for byte, over
/// loopback TCP (`Stack<StreamLink, Smux>`) and over one KCP session (`Stack<Session,
/// Smux>`).
pub fn smux_ends<R: Rt>() {
    let start = Instant::now();
    let cfg = base_config().clone().stream_mode(true);
    R::smux_ends(&cfg, Duration::from_secs(90)).expect("smux per-stream ends over TCP and KCP");
    report(R::NAME, "smux_ends", start.elapsed());
}

/// The owned-chunk API (`read_chunk`/`write_chunk`): tiny, empty and large chunks (one past
/// the send buffer) echoed as they are over one smux stream on KCP, each read within its
/// bound, the end as `None`, a write after the half-close refused.
pub fn chunk_roundtrip<R: Rt>() {
    let start = Instant::now();
    let cfg = base_config().clone().stream_mode(true);
    R::chunk_roundtrip(&cfg, Duration::from_secs(60)).expect("owned-chunk roundtrip");
    report(R::NAME, "chunk_roundtrip", start.elapsed());
}

/// A running echo server.
pub trait EchoServer {
    /// Where it listens.
    fn addr(&self) -> SocketAddr;
    /// The next server-side session that ended: `Ok(bytes echoed)` on a clean end, or the
    /// error its read or write returned. `None` if none ended within `limit`.
    fn next_end(&self, limit: Duration) -> Option<io::Result<usize>>;
    /// Bytes the server's sessions have read so far, all sessions together.
    fn received(&self) -> u64;
}

/// The error of a facade call that did not finish within `limit`.
pub fn deadline_error(what: &str, limit: Duration) -> io::Error {
    io::Error::other(format!(
        "facade deadline: {what} did not finish within {limit:?}"
    ))
}

/// AES, FEC 10/3, fast3, windows 1024/1024. PBKDF2 runs once per process; callers clone.
pub fn base_config() -> &'static Config {
    static CFG: OnceLock<Config> = OnceLock::new();
    CFG.get_or_init(|| {
        Config::default()
            .crypt("aes", "tether scenarios")
            .mode("fast3")
            .windows(1024, 1024)
    })
}

/// [`base_config`] with a 1 s idle timeout (the key is not derived again).
pub fn idle_config() -> &'static Config {
    static CFG: OnceLock<Config> = OnceLock::new();
    CFG.get_or_init(|| {
        base_config()
            .clone()
            .idle_timeout(Some(Duration::from_secs(1)))
    })
}

/// Deterministic test bytes (xorshift64*), different for every `seed`.
pub fn payload(len: usize, seed: u64) -> Vec<u8> {
    let mut x = 0x9E37_79B9_7F4A_7C15u64 ^ seed.wrapping_mul(0xA24B_AED4_963E_E407);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 56) as u8
        })
        .collect()
}

fn report(rt: &str, scenario: &str, took: Duration) {
    eprintln!("[{rt}] {scenario}: {:.3} s", took.as_secs_f64());
}

/// 64 KiB written, then read back from the echo server, byte for byte.
pub fn echo<R: Rt>() {
    let start = Instant::now();
    let cfg = base_config();
    let server = R::echo_server(cfg).expect("echo server");
    let mut c = R::connect(server.addr(), cfg).expect("connect");
    let data = payload(64 << 10, 1);
    R::write_all(&mut c, &data, LIMIT).expect("write 64 KiB");
    let mut got = vec![0u8; data.len()];
    R::read_exact(&mut c, &mut got, LIMIT).expect("read 64 KiB back");
    assert!(got == data, "echoed bytes differ");
    R::flush(&mut c, LIMIT).expect("flush");
    report(R::NAME, "echo", start.elapsed());
}

/// 4 MiB written while the echo comes back (full duplex), compared by SHA-256.
pub fn bulk_both_directions<R: Rt>() {
    let start = Instant::now();
    let cfg = base_config();
    let server = R::echo_server(cfg).expect("echo server");
    let mut c = R::connect(server.addr(), cfg).expect("connect");
    let data = payload(4 << 20, 2);
    let got = R::duplex(&mut c, &data, Duration::from_secs(60)).expect("4 MiB duplex");
    assert_eq!(got.len(), data.len());
    assert_eq!(
        Sha256::digest(&got),
        Sha256::digest(&data),
        "echoed bytes differ"
    );
    R::flush(&mut c, LIMIT).expect("flush");
    assert!(
        server.next_end(Duration::ZERO).is_none(),
        "no server session may end during the transfer"
    );
    report(R::NAME, "bulk_both_directions", start.elapsed());
}

/// The KCP segments of a raw datagram: `(conv, cmd, frg, sn, data)` each.
fn raw_segments(d: &[u8]) -> Vec<(u32, u8, u8, u32, Vec<u8>)> {
    let le = |b: &[u8]| u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
    let mut out = Vec::new();
    let mut rest = d;
    while rest.len() >= 24 {
        let len = le(&rest[20..24]) as usize;
        let end = (24 + len).min(rest.len());
        out.push((
            le(&rest[0..4]),
            rest[4],
            rest[5],
            le(&rest[12..16]),
            rest[24..end].to_vec(),
        ));
        rest = &rest[end..];
    }
    out
}

/// Raw KCP (`Config::raw_kcp`, what C ikcp speaks): a client's first datagram is one bare
/// 24-byte-header PUSH with the configured conv; a listener takes the conv of a hand-made
/// raw PUSH from a new address and answers in kind; then 1 MiB full duplex in message mode
/// through the raw echo server.
pub fn raw_kcp<R: Rt>() {
    let start = Instant::now();
    let raw = base_config().clone().raw_kcp();
    // Client side: what goes on the wire.
    let sniff = UdpSocket::bind("127.0.0.1:0").expect("bind");
    sniff
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let dialer = raw.clone().conv(Some(0x00C0_FFEE));
    let mut c = R::connect(sniff.local_addr().expect("addr"), &dialer).expect("connect");
    R::write_all(&mut c, b"hello", LIMIT).expect("write");
    let mut buf = [0u8; 2048];
    let (n, _) = sniff
        .recv_from(&mut buf)
        .expect("the client's first datagram");
    assert_eq!(
        raw_segments(&buf[..n]),
        vec![(0x00C0_FFEE, 81, 0, 0, b"hello".to_vec())],
        "a raw client sends bare KCP: {:02x?}",
        &buf[..n]
    );
    drop(c);
    // Server side: conv from the first datagram, answers raw.
    let server = R::echo_server(&raw).expect("raw echo server");
    let peer = UdpSocket::bind("127.0.0.1:0").expect("bind");
    peer.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let mut push = Vec::new();
    for v in [
        0xBEEFu32.to_le_bytes().as_slice(),
        &[81, 0],
        &128u16.to_le_bytes(),
    ] {
        push.extend_from_slice(v);
    }
    for v in [0u32, 0, 0, 4] {
        push.extend_from_slice(&v.to_le_bytes()); // ts, sn, una, len
    }
    push.extend_from_slice(b"ping");
    peer.send_to(&push, server.addr()).expect("send");
    let mut seen = Vec::new();
    while !seen.iter().any(|s: &(u32, u8, u8, u32, Vec<u8>)| s.1 == 81) {
        let (n, _) = peer.recv_from(&mut buf).expect("the server's raw answer");
        seen.extend(raw_segments(&buf[..n]));
    }
    assert!(
        seen.iter().all(|s| s.0 == 0xBEEF),
        "every answer carries the peer's conv: {seen:?}"
    );
    assert!(
        seen.contains(&(0xBEEF, 82, 0, 0, Vec::new())),
        "the PUSH is acknowledged: {seen:?}"
    );
    assert!(
        seen.contains(&(0xBEEF, 81, 0, 0, b"ping".to_vec())),
        "the echo is one raw PUSH: {seen:?}"
    );
    // Bulk, message framing, through the raw listener.
    let mut c = R::connect(server.addr(), &raw.clone().message_mode(true)).expect("connect");
    let data = payload(1 << 20, 3);
    let got = R::duplex(&mut c, &data, Duration::from_secs(60)).expect("1 MiB duplex");
    assert!(got == data, "echoed bytes differ");
    R::flush(&mut c, LIMIT).expect("flush");
    report(R::NAME, "raw_kcp", start.elapsed());
}

/// Sessions opened at once in [`thousand_sessions`].
pub const SESSIONS: usize = 1000;

/// 1000 client sessions to one echo server, each with its own 100-byte message.
pub fn thousand_sessions<R: Rt>() {
    let start = Instant::now();
    let cfg = base_config();
    let server = R::echo_server(cfg).expect("echo server");
    let msgs: Vec<Vec<u8>> = (0..SESSIONS)
        .map(|i| {
            let mut m = format!("session {i:04} ").into_bytes();
            m.extend(payload(100 - m.len(), 1000 + i as u64));
            m
        })
        .collect();
    let got = R::echo_many(server.addr(), cfg, &msgs, Duration::from_secs(60))
        .expect("1000 concurrent echoes");
    assert_eq!(got.len(), msgs.len());
    let wrong: Vec<usize> = (0..SESSIONS).filter(|&i| got[i] != msgs[i]).collect();
    assert!(wrong.is_empty(), "sessions with a wrong echo: {wrong:?}");
    report(R::NAME, "thousand_sessions", start.elapsed());
}

/// Clients (each from its own port) transferring at once in [`reuseport_clients`].
pub const REUSEPORT_CLIENTS: usize = 8;

/// An echo server with `Config::reuseport(2)` (two sockets on one port, each with its own
/// socket loop; the mio `Endpoint` keeps one socket): [`REUSEPORT_CLIENTS`] clients from
/// distinct source ports send 256 KiB each at once, and every byte comes back to the
/// client that sent it.
pub fn reuseport_clients<R: Rt>() {
    let start = Instant::now();
    let cfg = base_config().clone().reuseport(2);
    let server = R::echo_server(&cfg).expect("echo server on two sockets");
    let msgs: Vec<Vec<u8>> = (0..REUSEPORT_CLIENTS)
        .map(|i| payload(256 << 10, 2000 + i as u64))
        .collect();
    let got = R::echo_many(server.addr(), base_config(), &msgs, Duration::from_secs(60))
        .expect("concurrent echoes through a reuseport listener");
    let wrong: Vec<usize> = (0..msgs.len()).filter(|&i| got[i] != msgs[i]).collect();
    assert!(wrong.is_empty(), "clients with a wrong echo: {wrong:?}");
    report(R::NAME, "reuseport_clients", start.elapsed());
}

/// A server with a 1 s idle timeout: a client exchanges once and goes silent; the server's
/// session ends with an idle-timeout error (`TimedOut`) about a second later.
pub fn close_expiry<R: Rt>() {
    let start = Instant::now();
    let server = R::echo_server(idle_config()).expect("echo server");
    let mut c = R::connect(server.addr(), base_config()).expect("connect");
    let msg = payload(1000, 3);
    R::write_all(&mut c, &msg, LIMIT).expect("write");
    let mut got = vec![0u8; msg.len()];
    R::read_exact(&mut c, &mut got, LIMIT).expect("read back");
    assert!(got == msg);
    R::flush(&mut c, LIMIT).expect("flush");
    let silent = Instant::now();
    drop(c);
    let end = server
        .next_end(Duration::from_secs(10))
        .expect("the server session did not end within 10 s of the client going silent");
    let waited = silent.elapsed();
    let err = end.expect_err("an expired session must fail, not end cleanly");
    assert_eq!(err.kind(), io::ErrorKind::TimedOut, "{err}");
    assert!(err.to_string().contains("idle"), "{err}");
    assert!(
        waited >= Duration::from_millis(500) && waited <= Duration::from_secs(5),
        "expired after {waited:?}, idle timeout 1 s"
    );
    eprintln!(
        "[{}] close_expiry: expired {waited:.2?} after the client went silent",
        R::NAME
    );
    report(R::NAME, "close_expiry", start.elapsed());
}

/// The client talks to the server through a [`Relay`]; after one exchange the relay stops
/// forwarding and the server shuts down. The client's next flush fails (dead link) within
/// 15 s, and reads fail after it.
pub fn peer_vanishes<R: Rt>() {
    let start = Instant::now();
    let cfg = base_config();
    let server = R::echo_server(cfg).expect("echo server");
    let relay = Relay::start(server.addr()).expect("relay");
    let mut c = R::connect(relay.addr(), cfg).expect("connect");
    let msg = payload(1000, 4);
    R::write_all(&mut c, &msg, LIMIT).expect("write");
    let mut got = vec![0u8; msg.len()];
    R::read_exact(&mut c, &mut got, LIMIT).expect("read back");
    assert!(got == msg);
    R::flush(&mut c, LIMIT).expect("flush");

    relay.cut();
    drop(server);
    let vanished = Instant::now();
    // Buffered writes may still succeed; the flush cannot.
    let _ = R::write_all(&mut c, &msg, Duration::from_secs(5));
    let err = R::flush(&mut c, Duration::from_secs(20)).expect_err("flush to a vanished peer");
    let waited = vanished.elapsed();
    assert_eq!(err.kind(), io::ErrorKind::TimedOut, "{err}");
    assert!(
        waited <= Duration::from_secs(15),
        "dead link noticed after {waited:?}"
    );
    let mut one = [0u8; 1];
    let err = R::read_exact(&mut c, &mut one, Duration::from_secs(2))
        .expect_err("read after the dead link");
    assert_eq!(err.kind(), io::ErrorKind::TimedOut, "{err}");
    let err =
        R::write_all(&mut c, &msg, Duration::from_secs(2)).expect_err("write after the dead link");
    assert_eq!(err.kind(), io::ErrorKind::TimedOut, "{err}");
    eprintln!("[{}] peer_vanishes: dead link after {waited:.2?}", R::NAME);
    report(R::NAME, "peer_vanishes", start.elapsed());
}

/// Sizes written, one after the other, in [`peer_only_reads`].
pub const ONLY_READS_SIZES: [usize; 3] = [1, 1000, 100_000];

/// The server only reads (it never writes back): after each `write_all` of 1, 1 000 and
/// 100 000 bytes, `flush` returns once the peer acknowledged everything, within 5 s, and the
/// server has read every byte. Nothing but ACKs comes back, so a runtime that refreshes its
/// "unacknowledged" state only when KCP raises an event never sees the flush complete.
pub fn peer_only_reads<R: Rt>() {
    let start = Instant::now();
    let cfg = base_config();
    let server = R::sink_server(cfg).expect("sink server");
    let mut c = R::connect(server.addr(), cfg).expect("connect");
    let mut total = 0u64;
    for (i, &len) in ONLY_READS_SIZES.iter().enumerate() {
        let data = payload(len, 50 + i as u64);
        R::write_all(&mut c, &data, LIMIT).expect("write");
        total += len as u64;
        R::flush(&mut c, Duration::from_secs(5))
            .unwrap_or_else(|e| panic!("flush after writing {len} bytes to a reading peer: {e}"));
        let give_up = Instant::now() + Duration::from_secs(5);
        while server.received() < total && Instant::now() < give_up {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(
            server.received(),
            total,
            "the server read what was acknowledged"
        );
    }
    assert!(
        server.next_end(Duration::ZERO).is_none(),
        "no server session may end"
    );
    report(R::NAME, "peer_only_reads", start.elapsed());
}

/// The peer vanishes with bytes in flight both ways: the relay stops forwarding the
/// server's datagrams, so neither side's data is acknowledged again. The server's session
/// ends with a dead-link error (`TimedOut`) after `dead_link` retransmissions, and the
/// client's read and write fail the same way, within 30 s: the core's policy (the listener
/// closes dead links with `CloseReason::DeadLink`), the same on every runtime.
pub fn dead_link<R: Rt>() {
    let start = Instant::now();
    let cfg = base_config();
    let server = R::echo_server(cfg).expect("echo server");
    let relay = Relay::start(server.addr()).expect("relay");
    let mut c = R::connect(relay.addr(), cfg).expect("connect");
    let msg = payload(1000, 5);
    R::write_all(&mut c, &msg, LIMIT).expect("write");
    let mut got = vec![0u8; msg.len()];
    R::read_exact(&mut c, &mut got, LIMIT).expect("read back");
    assert!(got == msg);
    relay.cut_replies();
    let cut = Instant::now();
    // The server still receives these and echoes them into the void.
    R::write_all(&mut c, &payload(64 << 10, 6), LIMIT).expect("write into the cut");
    let end = server
        .next_end(Duration::from_secs(30))
        .expect("the server session did not end within 30 s of the cut");
    let err = end.expect_err("a dead link must fail the server's session, not end it cleanly");
    assert_eq!(err.kind(), io::ErrorKind::TimedOut, "{err}");
    assert!(err.to_string().contains("dead link"), "{err}");
    let server_waited = cut.elapsed();
    let mut one = [0u8; 1];
    let err = R::read_exact(&mut c, &mut one, Duration::from_secs(30))
        .expect_err("the client's read after the dead link");
    assert_eq!(err.kind(), io::ErrorKind::TimedOut, "{err}");
    let err = R::write_all(&mut c, &msg, Duration::from_secs(5))
        .expect_err("the client's write after the dead link");
    assert_eq!(err.kind(), io::ErrorKind::TimedOut, "{err}");
    eprintln!(
        "[{}] dead_link: server session failed {server_waited:.2?} after the cut",
        R::NAME
    );
    report(R::NAME, "dead_link", start.elapsed());
}

/// Bytes written in [`dropped_stream_lingers`].
pub const LINGER_BYTES: usize = 1 << 20;

/// 1 MiB written and the stream dropped at once: the connection lingers until everything is
/// acknowledged (the core's policy, the same on every runtime), so the peer, which only
/// reads, still receives every byte.
pub fn dropped_stream_lingers<R: Rt>() {
    let start = Instant::now();
    let cfg = base_config();
    let server = R::sink_server(cfg).expect("sink server");
    let mut c = R::connect(server.addr(), cfg).expect("connect");
    R::write_all(&mut c, &payload(LINGER_BYTES, 8), LIMIT).expect("write 1 MiB");
    drop(c);
    let give_up = Instant::now() + LIMIT;
    while (server.received() as usize) < LINGER_BYTES && Instant::now() < give_up {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(
        server.received() as usize,
        LINGER_BYTES,
        "the peer received everything written before the drop"
    );
    report(R::NAME, "dropped_stream_lingers", start.elapsed());
}

/// A UDP relay between one client and one upstream address that can stop forwarding.
#[derive(Debug)]
pub struct Relay {
    addr: SocketAddr,
    forwarding: Arc<AtomicBool>,
    /// Whether the upstream's datagrams still reach the client.
    replies: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Relay {
    /// Listens on `127.0.0.1:0` and forwards to and from `upstream`.
    pub fn start(upstream: SocketAddr) -> io::Result<Relay> {
        let front = UdpSocket::bind("127.0.0.1:0")?;
        let back = UdpSocket::bind("127.0.0.1:0")?;
        back.connect(upstream)?;
        for s in [&front, &back] {
            s.set_read_timeout(Some(Duration::from_millis(20)))?;
        }
        let addr = front.local_addr()?;
        let forwarding = Arc::new(AtomicBool::new(true));
        let replies = Arc::new(AtomicBool::new(true));
        let stop = Arc::new(AtomicBool::new(false));
        let client: Arc<Mutex<Option<SocketAddr>>> = Arc::default();
        let (front2, back2) = (front.try_clone()?, back.try_clone()?);
        let up = {
            let (fwd, stop, client) = (forwarding.clone(), stop.clone(), client.clone());
            std::thread::spawn(move || {
                let mut buf = [0u8; 2048];
                while !stop.load(Ordering::SeqCst) {
                    if let Ok((n, from)) = front.recv_from(&mut buf) {
                        *client.lock().unwrap() = Some(from);
                        if fwd.load(Ordering::SeqCst) {
                            let _ = back.send(&buf[..n]);
                        }
                    }
                }
            })
        };
        let down = {
            let (fwd, stop) = (replies.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut buf = [0u8; 2048];
                while !stop.load(Ordering::SeqCst) {
                    if let Ok(n) = back2.recv(&mut buf) {
                        let to = *client.lock().unwrap();
                        if let (true, Some(to)) = (fwd.load(Ordering::SeqCst), to) {
                            let _ = front2.send_to(&buf[..n], to);
                        }
                    }
                }
            })
        };
        Ok(Relay {
            addr,
            forwarding,
            replies,
            stop,
            threads: vec![up, down],
        })
    }

    /// Where clients send.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Drops every datagram from now on, both ways.
    pub fn cut(&self) {
        self.forwarding.store(false, Ordering::SeqCst);
        self.replies.store(false, Ordering::SeqCst);
    }

    /// Drops the upstream's datagrams from now on; the client's still go through.
    pub fn cut_replies(&self) {
        self.replies.store(false, Ordering::SeqCst);
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}
