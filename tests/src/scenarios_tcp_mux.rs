//! The TCP-carried multiplexer scenario (`Stack<StreamLink, ToyMux>` over loopback TCP),
//! written once for the async runtimes against the shared [`ConnectionHandle`] (their
//! `AsyncRead`/`AsyncWrite` delegate to the same `poll_read`/`poll_write`/`poll_shutdown`);
//! the mio flavour runs the same steps on its own `mio::Poll` (`tests/tests/runtimes.rs`).
//!
//! 1. two streams each way (the client opens two, the server opens two), each carrying
//!    1 MiB that the other side echoes: the opener writes, then half-closes; the echo side
//!    reads to the end of the stream (`Ok(0)`), half-closes in turn; the opener reads the
//!    echo to its end and compares it byte for byte;
//! 2. a refused open: the client's toy mux allows [`CLIENT_STREAMS`] streams, the next
//!    `open_stream` fails with `ConnectionRefused`;
//! 3. a connection close ends the streams: the server closes the connection while a stream
//!    is open; the client's read on it fails (`ConnectionReset`), and its `accept_stream`
//!    and `open_stream` fail.
//!
//! Step 1 is generic over the multiplexer: [`smux_streams_both_ways`] runs it with the real
//! smux ([`smux_upper`]) over TCP and over a KCP session, as [`run`] and
//! [`kcp_streams_both_ways`] do with the toy.
use std::collections::VecDeque;
use std::future::{poll_fn, Future};
use std::io;
use std::ops::Deref;
use std::pin::Pin;
use std::task::Poll;

use tether_core::driver::{StreamError, StreamId, Streams};
use tether_core::sim::toy_mux::ToyMux;
use tether_core::smux::{Smux, SmuxConfig};
use tether_core::stack::{Side, Stack, StreamLayer};
use tether_core::stream_link::StreamLink;
use tether_runtime_mio::handle::{
    ConnectionHandle, ListenerHandle, RuntimeStream, SendLayer, StreamHandle,
};
use tether_runtime_mio::tcp_conn::{TcpListenerHandle, TcpMachine};

use crate::scenarios::{payload, Config};

/// Bytes each stream carries each way in step 1.
pub const STREAM_BYTES: usize = 1 << 20;
/// Streams each side opens in step 1.
pub const STREAMS_EACH_WAY: usize = 2;
/// Streams the client's toy mux allows (step 1's, and one for step 3).
pub const CLIENT_STREAMS: usize = STREAMS_EACH_WAY + 1;

/// How the streams of step 1 run over TCP: 1 MiB each, flushed too (over TCP
/// "acknowledged" is "handed to the socket").
pub const TCP_PLAN: Plan = Plan {
    bytes: STREAM_BYTES,
    flush: true,
};

/// The real smux for either side, in xtaci's v2 dialect (its FIN half-closes a stream, so
/// step 1's ends work): the upper-layer factory of [`smux_streams_both_ways`].
pub fn smux_upper() -> impl Fn(Side) -> Smux + Clone + Send + Sync + 'static {
    let cfg = SmuxConfig::xtaci(2);
    move |side| Smux::new(cfg.clone(), side)
}

/// A TCP connection's machine for `side`: the multiplexer `upper` makes, on a `StreamLink`.
pub fn tcp_machine<U: StreamLayer>(upper: &impl Fn(Side) -> U, side: Side) -> Stack<StreamLink, U> {
    Stack::new(StreamLink::default(), upper(side))
}

/// The client's machine: a toy mux on a `StreamLink`, limited to [`CLIENT_STREAMS`].
pub fn client_machine() -> Stack<StreamLink, ToyMux> {
    Stack::new(
        StreamLink::default(),
        ToyMux::client().with_stream_limit(CLIENT_STREAMS),
    )
}

/// The server's machine, one per accepted connection (the listener's factory).
pub fn server_machine() -> Stack<StreamLink, ToyMux> {
    Stack::new(StreamLink::default(), ToyMux::server())
}

/// The `bytes` of stream `k` opened by the client (`server` false) or by the server.
pub fn stream_payload(server: bool, k: usize, bytes: usize) -> Vec<u8> {
    payload(bytes, 900 + k as u64 + if server { 50 } else { 0 })
}

type Task<'a> = Pin<Box<dyn Future<Output = io::Result<()>> + 'a>>;

/// Runs every task to its end on the calling task; the first error ends them all.
pub async fn join_all(mut tasks: Vec<Task<'_>>) -> io::Result<()> {
    poll_fn(|cx| {
        let mut i = 0;
        while i < tasks.len() {
            match tasks[i].as_mut().poll(cx) {
                Poll::Ready(Ok(())) => drop(tasks.swap_remove(i)),
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => i += 1,
            }
        }
        if tasks.is_empty() {
            Poll::Ready(Ok(()))
        } else {
            Poll::Pending
        }
    })
    .await
}

/// Writes all of `data` into `s`.
async fn write_all(s: &StreamHandle, mut data: &[u8]) -> io::Result<()> {
    while !data.is_empty() {
        let n = poll_fn(|cx| s.poll_write(cx, data)).await?;
        data = &data[n..];
    }
    Ok(())
}

/// Reads `s` to its end (`Ok(0)`).
async fn read_to_end(s: &StreamHandle) -> io::Result<Vec<u8>> {
    let mut got = Vec::new();
    let mut buf = vec![0u8; 64 << 10];
    loop {
        match poll_fn(|cx| s.poll_read(cx, &mut buf)).await? {
            0 => return Ok(got),
            n => got.extend_from_slice(&buf[..n]),
        }
    }
}

/// How the streams of step 1 run.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    /// Bytes each stream carries each way.
    pub bytes: usize,
    /// After each half-close, also wait until the peer acknowledged everything
    /// (`poll_flush`).
    pub flush: bool,
}

/// Half-closes `s`, then (with `plan.flush`) waits for the acknowledgements.
async fn finish(s: &StreamHandle, plan: Plan) -> io::Result<()> {
    poll_fn(|cx| s.poll_shutdown(cx)).await?;
    if plan.flush {
        poll_fn(|cx| s.poll_flush(cx)).await?;
    }
    Ok(())
}

/// Writes `data`, half-closes, and reads the echo to its end: it must be `data` exactly.
async fn send_and_check(s: &StreamHandle, data: Vec<u8>, plan: Plan) -> io::Result<()> {
    let mut back = Vec::new();
    join_all(vec![
        Box::pin(async {
            write_all(s, &data).await?;
            finish(s, plan).await
        }),
        Box::pin(async {
            back = read_to_end(s).await?;
            Ok(())
        }),
    ])
    .await?;
    if back != data {
        return Err(io::Error::other(format!(
            "a stream echoed {} bytes, not its own {}",
            back.len(),
            data.len()
        )));
    }
    Ok(())
}

/// Echoes `s` until the peer finished it, then finishes it too.
async fn echo_to_end(s: &StreamHandle, plan: Plan) -> io::Result<()> {
    let mut buf = vec![0u8; 64 << 10];
    loop {
        match poll_fn(|cx| s.poll_read(cx, &mut buf)).await? {
            0 => return finish(s, plan).await,
            n => write_all(s, &buf[..n]).await?,
        }
    }
}

/// One side of step 1: opens [`STREAMS_EACH_WAY`] streams of `plan.bytes` and checks their
/// echoes, and echoes the [`STREAMS_EACH_WAY`] streams the peer opens.
async fn both_ways<S>(conn: &ConnectionHandle<S>, server: bool, plan: Plan) -> io::Result<()>
where
    S: RuntimeStream + Deref<Target = StreamHandle>,
{
    let mut tasks: Vec<Task<'_>> = Vec::new();
    for k in 0..STREAMS_EACH_WAY {
        let s = conn.open_stream().await?;
        tasks.push(Box::pin(async move {
            send_and_check(&s, stream_payload(server, k, plan.bytes), plan).await
        }));
    }
    for _ in 0..STREAMS_EACH_WAY {
        tasks.push(Box::pin(async {
            let s = conn.accept_stream().await?;
            echo_to_end(&s, plan).await
        }));
    }
    join_all(tasks).await
}

/// Step 1 between two connections of any transport: each side opens [`STREAMS_EACH_WAY`]
/// streams, writes and half-closes them, and reads the echo to its end; each side echoes
/// the peer's streams to their end, then half-closes them.
pub async fn streams_both_ways<S>(
    client: &ConnectionHandle<S>,
    server: &ConnectionHandle<S>,
    plan: Plan,
) -> io::Result<()>
where
    S: RuntimeStream + Deref<Target = StreamHandle>,
{
    join_all(vec![
        Box::pin(both_ways(client, false, plan)),
        Box::pin(both_ways(server, true, plan)),
    ])
    .await
}

/// The streams of [`kcp_streams_both_ways`]: 256 KiB each (KCP in a debug build is slower
/// than loopback TCP), flushed after each half-close.
pub const KCP_PLAN: Plan = Plan {
    bytes: 256 << 10,
    flush: true,
};

/// Step 1 over one KCP session carrying the multiplexer `upper` makes, on the runtime of
/// `S` (call it there): a listener and a client of such sessions on loopback, the same
/// per-stream ends as over TCP. KCP has no handshake, so the server's connection is
/// accepted while the client's streams start.
pub async fn kcp_streams_both_ways<S, U: SendLayer>(
    cfg: &Config,
    upper: impl Fn(Side) -> U + Clone + Send + Sync + 'static,
) -> io::Result<()>
where
    S: RuntimeStream + Deref<Target = StreamHandle>,
{
    let listener =
        ListenerHandle::<S>::bind_with("127.0.0.1:0", cfg.clone(), upper.clone()).await?;
    let addr = listener.local_addr();
    let client = ConnectionHandle::<S>::connect_with(addr, cfg.clone(), upper).await?;
    // The server's connection outlives its side of the exchange: closed while the client
    // still flushes, its session would go, and the listener would answer the client's next
    // retransmission from a new session (KCP has no handshake), whose ACK does not advance
    // the client's `una`: that flush would never complete.
    let (mut server, plan) = (None, KCP_PLAN);
    join_all(vec![
        Box::pin(both_ways(&client, false, plan)),
        Box::pin(async {
            let conn = listener.accept_connection().await?;
            both_ways(&conn, true, plan).await?;
            server = Some(conn);
            Ok(())
        }),
    ])
    .await?;
    drop(server);
    Ok(())
}

/// Fails unless `r` is an error of `kind`.
fn expect_kind<T>(what: &str, r: io::Result<T>, kind: io::ErrorKind) -> io::Result<()> {
    match r {
        Err(e) if e.kind() == kind => Ok(()),
        Err(e) => Err(io::Error::other(format!(
            "{what}: {kind:?} expected, got {e}"
        ))),
        Ok(_) => Err(io::Error::other(format!(
            "{what}: {kind:?} expected, got Ok"
        ))),
    }
}

/// A loopback TCP connection on the runtime of `S`: a listener whose connections carry
/// `server()`, dialled by a connection carrying `client`; returns the client's end and the
/// server's (accepted connections outlive the listener).
pub async fn tcp_pair<S, M: TcpMachine>(
    client: M,
    server: impl Fn() -> M + Send + Sync + 'static,
) -> io::Result<(ConnectionHandle<S>, ConnectionHandle<S>)>
where
    S: RuntimeStream + Deref<Target = StreamHandle>,
{
    let listener = TcpListenerHandle::<S>::bind("127.0.0.1:0", server).await?;
    let client = ConnectionHandle::<S>::connect_tcp(listener.local_addr(), client).await?;
    Ok((client, listener.accept_connection().await?))
}

/// Step 1 with the real smux ([`smux_upper`]) on the runtime of `S` (call it there): first
/// over loopback TCP (`Stack<StreamLink, Smux>`, [`TCP_PLAN`]), then over one KCP session
/// (`Stack<Session, Smux>`, [`KCP_PLAN`]).
pub async fn smux_streams_both_ways<S>(cfg: &Config) -> io::Result<()>
where
    S: RuntimeStream + Deref<Target = StreamHandle>,
{
    let upper = smux_upper();
    let server = {
        let upper = upper.clone();
        move || tcp_machine(&upper, Side::Server)
    };
    let (client, server) = tcp_pair::<S, _>(tcp_machine(&upper, Side::Client), server).await?;
    streams_both_ways(&client, &server, TCP_PLAN)
        .await
        .map_err(|e| io::Error::new(e.kind(), format!("smux over TCP: {e}")))?;
    kcp_streams_both_ways::<S, _>(cfg, upper)
        .await
        .map_err(|e| io::Error::new(e.kind(), format!("smux over KCP: {e}")))
}

/// The whole scenario (module docs) on the runtime of `S` (call it there): a TCP listener of
/// [`server_machine`]s on loopback and a client dialled with [`client_machine`].
pub async fn run<S>() -> io::Result<()>
where
    S: RuntimeStream + Deref<Target = StreamHandle>,
{
    let (client, server) = tcp_pair::<S, _>(client_machine(), server_machine).await?;
    // 1. both ways, concurrently on both sides
    streams_both_ways(&client, &server, TCP_PLAN).await?;
    // 2. + 3. the client's last allowed stream, then a refusal
    let last = client.open_stream().await?;
    expect_kind(
        "open_stream beyond the toy's limit",
        client.open_stream().await,
        io::ErrorKind::ConnectionRefused,
    )?;
    write_all(&last, b"ping").await?;
    let theirs = server.accept_stream().await?;
    let mut four = [0u8; 4];
    let mut got = 0;
    while got < 4 {
        got += poll_fn(|cx| theirs.poll_read(cx, &mut four[got..])).await?;
    }
    if &four != b"ping" {
        return Err(io::Error::other("the last stream carried the wrong bytes"));
    }
    server.close();
    let mut one = [0u8; 1];
    expect_kind(
        "the client's read after the server closed the connection",
        poll_fn(|cx| last.poll_read(cx, &mut one)).await,
        io::ErrorKind::ConnectionReset,
    )?;
    if client.accept_stream().await.is_ok() {
        return Err(io::Error::other("accept_stream after the close succeeded"));
    }
    if client.open_stream().await.is_ok() {
        return Err(io::Error::other("open_stream after the close succeeded"));
    }
    expect_kind(
        "the server's read after its own close",
        poll_fn(|cx| theirs.poll_read(cx, &mut one)).await,
        io::ErrorKind::ConnectionReset,
    )
}

/// One stream this side opened in step 1, driven through `Streams` directly.
#[derive(Debug)]
struct Sent {
    id: StreamId,
    data: Vec<u8>,
    sent: usize,
    finished: bool,
    back: Vec<u8>,
    eof: bool,
}

/// One stream the peer opened in step 1, echoed through `Streams` directly.
#[derive(Debug)]
struct Echoed {
    id: StreamId,
    queue: VecDeque<u8>,
    eof: bool,
    finished: bool,
}

/// Step 1's application on one side over a machine's [`Streams`] directly (the mio
/// flavour, which has no hub): the same streams, bytes and ends as [`run`]'s.
#[derive(Debug)]
pub struct StreamsSide {
    sent: Vec<Sent>,
    echoed: Vec<Echoed>,
}

impl StreamsSide {
    /// Opens this side's [`STREAMS_EACH_WAY`] streams of `bytes` on `m`.
    pub fn open(m: &mut impl Streams, server: bool, bytes: usize) -> io::Result<Self> {
        let mut sent = Vec::new();
        for k in 0..STREAMS_EACH_WAY {
            let id = m
                .open_stream()
                .map_err(|e| io::Error::other(format!("open_stream: {e}")))?;
            sent.push(Sent {
                id,
                data: stream_payload(server, k, bytes),
                sent: 0,
                finished: false,
                back: Vec::new(),
                eof: false,
            });
        }
        Ok(StreamsSide {
            sent,
            echoed: Vec::new(),
        })
    }

    /// Moves whatever can move now: accepts, writes, finishes, reads, echoes.
    pub fn step(&mut self, m: &mut impl Streams) {
        while let Some(id) = m.accept_stream() {
            self.echoed.push(Echoed {
                id,
                queue: VecDeque::new(),
                eof: false,
                finished: false,
            });
        }
        let mut buf = vec![0u8; 64 << 10];
        for s in &mut self.sent {
            while let Some(rest) = s.data.get(s.sent..).filter(|r| !r.is_empty()) {
                match m.write(s.id, rest) {
                    Ok(n) if n > 0 => s.sent += n,
                    _ => break,
                }
            }
            if s.sent == s.data.len() && !s.finished {
                s.finished = m.finish(s.id).is_ok();
            }
            s.eof |= read_available(m, s.id, &mut buf, &mut s.back);
        }
        for e in &mut self.echoed {
            let mut got = Vec::new();
            e.eof |= read_available(m, e.id, &mut buf, &mut got);
            e.queue.extend(got);
            while !e.queue.is_empty() {
                match m.write(e.id, e.queue.make_contiguous()) {
                    Ok(n) if n > 0 => drop(e.queue.drain(..n)),
                    _ => break,
                }
            }
            if e.eof && e.queue.is_empty() && !e.finished {
                e.finished = m.finish(e.id).is_ok();
            }
        }
    }

    /// Whether every stream reached its end both ways.
    pub fn done(&self) -> bool {
        self.sent.iter().all(|s| s.eof)
            && self.echoed.len() == STREAMS_EACH_WAY
            && self.echoed.iter().all(|e| e.finished)
    }

    /// Every echo is its stream's bytes exactly.
    pub fn check(&self) -> io::Result<()> {
        for s in &self.sent {
            if s.back != s.data {
                return Err(io::Error::other(format!(
                    "stream {:?} echoed {} bytes, not its own {}",
                    s.id,
                    s.back.len(),
                    s.data.len()
                )));
            }
        }
        Ok(())
    }
}

/// One side's application over a machine's [`Streams`] directly (the mio flavour, which
/// has no hub), stepped by the caller's event loop.
pub trait StreamsApp {
    /// Moves whatever can move now.
    fn step(&mut self, m: &mut impl Streams);
    /// Whether this side is done.
    fn done(&self) -> bool;
    /// Whether what this side received is right.
    fn check(&self) -> io::Result<()>;
}

impl StreamsApp for StreamsSide {
    fn step(&mut self, m: &mut impl Streams) {
        StreamsSide::step(self, m);
    }
    fn done(&self) -> bool {
        StreamsSide::done(self)
    }
    fn check(&self) -> io::Result<()> {
        StreamsSide::check(self)
    }
}

/// Reads what stream `id` has into `out`; `true` at its end (`Finished`).
fn read_available(m: &mut impl Streams, id: StreamId, buf: &mut [u8], out: &mut Vec<u8>) -> bool {
    loop {
        match m.read(id, buf) {
            Ok(n) if n > 0 => out.extend_from_slice(&buf[..n]),
            Err(StreamError::Finished) => return true,
            _ => return false,
        }
    }
}
