//! The owned-chunk stream API scenario (`read_chunk`/`write_chunk`), written once for the
//! async runtimes against the shared [`StreamHandle`], and as a [`Streams`] state machine
//! for the mio flavour (whose application API is the stack's own `Streams::read_chunk`/
//! `write_chunk`, `tests/tests/runtimes.rs`):
//!
//! over one KCP session carrying smux (xtaci v2: its FIN ends a stream), the client opens a
//! stream and writes [`chunks`]: shared slices of one payload, tiny ones (1 byte and up) between
//! large ones (one larger than the 1 MiB send buffer), and empty ones; then half-closes it.
//! The server echoes every received chunk as it is until the end of the stream (`None`),
//! then half-closes too. The client reads the echo chunk by chunk, each at most the `max` it
//! asked for, to its end (`None`, twice), and it must be the payload exactly; a write after
//! its half-close fails (`BrokenPipe`).
use std::collections::VecDeque;
use std::future::poll_fn;
use std::io;
use std::ops::Deref;

use tether_core::driver::{Bytes, BytesMut, StreamError, StreamId, Streams};
use tether_runtime_mio::handle::{ConnectionHandle, ListenerHandle, RuntimeStream, StreamHandle};

use crate::scenarios::{payload, Config};
use crate::scenarios_tcp_mux::{join_all, smux_upper, StreamsApp};

/// The sizes of the client's chunks, in order: tiny, empty, around the hub's copy threshold
/// (4 KiB) and the 64 KiB block, and past the 1 MiB send buffer.
pub fn chunk_sizes() -> Vec<usize> {
    let large = [4095, 4096, 4097, 65_536, 65_537, 300_000, (1 << 20) + 5];
    let mut sizes = Vec::new();
    for (i, big) in large.into_iter().enumerate() {
        sizes.extend((0..30).map(|k| 1 + (k * 7 + i) % 61));
        sizes.push(0);
        sizes.push(big);
    }
    sizes.extend([1, 2, 3]);
    sizes
}

/// The payload of the scenario and its chunks: slices of it, not copies.
pub fn chunks() -> (Bytes, Vec<Bytes>) {
    let sizes = chunk_sizes();
    let all = Bytes::from(payload(sizes.iter().sum(), 4242));
    let mut at = 0;
    let parts = sizes
        .into_iter()
        .map(|n| {
            at += n;
            all.slice(at - n..at)
        })
        .collect();
    (all, parts)
}

/// The `max` of the client's `k`-th read: small and large in turn.
pub fn read_max(k: usize) -> usize {
    [1, 100, 5000, 1 << 20, usize::MAX][k % 5]
}

/// The received chunks must be `all` exactly.
pub fn check_echo(all: &[u8], back: &[Bytes]) -> io::Result<()> {
    let got: Vec<u8> = back.iter().flat_map(|c| c.iter().copied()).collect();
    if got != all {
        return Err(io::Error::other(format!(
            "the chunk echo carried {} bytes, not the {} sent (or other bytes)",
            got.len(),
            all.len()
        )));
    }
    Ok(())
}

/// The client's side on a runtime's stream handle.
async fn send_and_check(s: &StreamHandle) -> io::Result<()> {
    let (all, parts) = chunks();
    let mut back = Vec::new();
    join_all(vec![
        Box::pin(async {
            for c in parts {
                s.write_chunk(c).await?;
            }
            poll_fn(|cx| s.poll_shutdown(cx)).await?;
            match s.write_chunk(Bytes::from_static(b"late")).await {
                Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
                other => Err(io::Error::other(format!(
                    "write_chunk after shutdown: {other:?}, not BrokenPipe"
                ))),
            }
        }),
        Box::pin(async {
            for k in 0.. {
                let max = read_max(k);
                let Some(c) = s.read_chunk(max).await? else {
                    break;
                };
                if c.is_empty() || c.len() > max {
                    return Err(io::Error::other(format!(
                        "read_chunk({max}) gave {} bytes",
                        c.len()
                    )));
                }
                back.push(c);
            }
            match s.read_chunk(10).await? {
                None => Ok(()),
                Some(_) => Err(io::Error::other("a chunk after the end of the stream")),
            }
        }),
    ])
    .await?;
    check_echo(&all, &back)
}

/// The server's side: every chunk back as it is, to the end, then the half-close.
async fn echo_chunks(s: &StreamHandle) -> io::Result<()> {
    while let Some(c) = s.read_chunk(usize::MAX).await? {
        s.write_chunk(c).await?;
    }
    poll_fn(|cx| s.poll_shutdown(cx)).await?;
    poll_fn(|cx| s.poll_flush(cx)).await
}

/// The scenario (module docs) on the runtime of `S` (call it there).
pub async fn kcp_chunk_roundtrip<S>(cfg: &Config) -> io::Result<()>
where
    S: RuntimeStream + Deref<Target = StreamHandle>,
{
    let upper = smux_upper();
    let listener =
        ListenerHandle::<S>::bind_with("127.0.0.1:0", cfg.clone(), upper.clone()).await?;
    let client =
        ConnectionHandle::<S>::connect_with(listener.local_addr(), cfg.clone(), upper).await?;
    // The server's connection outlives its echo (see `kcp_streams_both_ways`).
    let mut server = None;
    join_all(vec![
        Box::pin(async {
            let s = client.open_stream().await?;
            send_and_check(&s).await
        }),
        Box::pin(async {
            let conn = listener.accept_connection().await?;
            let s = conn.accept_stream().await?;
            echo_chunks(&s).await?;
            server = Some(conn);
            Ok(())
        }),
    ])
    .await?;
    drop(server);
    Ok(())
}

/// The client's side over a machine's [`Streams`] (the mio flavour).
#[derive(Debug)]
pub struct ChunkClient {
    id: StreamId,
    all: Bytes,
    queue: VecDeque<Bytes>,
    finished: bool,
    late_refused: bool,
    back: Vec<Bytes>,
    reads: usize,
    eof: bool,
    bad: Option<String>,
}

impl ChunkClient {
    /// Opens the stream on `m`.
    pub fn open(m: &mut impl Streams) -> io::Result<Self> {
        let id = m
            .open_stream()
            .map_err(|e| io::Error::other(format!("open_stream: {e}")))?;
        let (all, parts) = chunks();
        Ok(ChunkClient {
            id,
            all,
            queue: parts.into(),
            finished: false,
            late_refused: false,
            back: Vec::new(),
            reads: 0,
            eof: false,
            bad: None,
        })
    }
}

impl StreamsApp for ChunkClient {
    /// Moves whatever can move now: writes, the half-close, reads.
    fn step(&mut self, m: &mut impl Streams) {
        write_queue(m, self.id, &mut self.queue);
        if self.queue.is_empty() && !self.finished {
            self.finished = m.finish(self.id).is_ok();
            self.late_refused =
                self.finished && m.write_chunk(self.id, Bytes::from_static(b"late")).is_err();
        }
        let mut room = BytesMut::new();
        while !self.eof {
            let max = read_max(self.reads);
            match m.read_chunk(self.id, max, &mut room) {
                Ok(c) => {
                    if c.is_empty() || c.len() > max {
                        self.bad = Some(format!("read_chunk({max}) gave {} bytes", c.len()));
                    }
                    self.reads += 1;
                    self.back.push(c);
                }
                Err(StreamError::Finished) => self.eof = true,
                Err(_) => break,
            }
        }
    }

    /// Whether the echo reached its end.
    fn done(&self) -> bool {
        self.eof
    }

    /// The echo is the payload exactly, each read within its bound, and the late write
    /// was refused.
    fn check(&self) -> io::Result<()> {
        if let Some(bad) = &self.bad {
            return Err(io::Error::other(bad.clone()));
        }
        if !self.late_refused {
            return Err(io::Error::other("a write after finish was taken"));
        }
        check_echo(&self.all, &self.back)
    }
}

/// The server's side over a machine's [`Streams`] (the mio flavour): echoes the stream the
/// peer opens, chunk by chunk, then finishes it.
#[derive(Debug, Default)]
pub struct ChunkEcho {
    id: Option<StreamId>,
    queue: VecDeque<Bytes>,
    eof: bool,
    finished: bool,
}

impl StreamsApp for ChunkEcho {
    /// Moves whatever can move now: the accept, reads, writes, the half-close.
    fn step(&mut self, m: &mut impl Streams) {
        self.id = self.id.or_else(|| m.accept_stream());
        let Some(id) = self.id else { return };
        let mut room = BytesMut::new();
        while !self.eof {
            match m.read_chunk(id, usize::MAX, &mut room) {
                Ok(c) => self.queue.push_back(c),
                Err(StreamError::Finished) => self.eof = true,
                Err(_) => break,
            }
        }
        write_queue(m, id, &mut self.queue);
        if self.eof && self.queue.is_empty() && !self.finished {
            self.finished = m.finish(id).is_ok();
        }
    }

    /// Whether the echo is finished.
    fn done(&self) -> bool {
        self.finished
    }

    /// Nothing to check on the echo side (the client compares).
    fn check(&self) -> io::Result<()> {
        Ok(())
    }
}

/// Writes queued chunks into stream `id` as far as it takes them (the rest of a partly
/// taken chunk stays in front).
fn write_queue(m: &mut impl Streams, id: StreamId, queue: &mut VecDeque<Bytes>) {
    while let Some(c) = queue.front_mut() {
        if c.is_empty() {
            queue.pop_front();
            continue;
        }
        match m.write_chunk(id, c.clone()) {
            Ok(n) if n == c.len() => drop(queue.pop_front()),
            Ok(n) if n > 0 => *c = c.slice(n..),
            _ => break,
        }
    }
}
