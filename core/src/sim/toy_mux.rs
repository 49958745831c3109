//! A toy stream multiplexer for tests: many streams over one byte stream, through the
//! [`StreamLayer`] contract, so a multiplexed stack can be exercised before smux exists.
//!
//! Wire format: frames `[stream id: u32 BE][len: u16 BE][len bytes]`. A stream opens with
//! its first frame (no handshake, no flow control beyond the lower stream's window: a
//! reader that stops reading one stream stalls all of them, as the toy it is). A frame of
//! length zero is the sender's FIN: it finished the stream ([`Streams::finish`]), and the
//! reader gets [`StreamError::Finished`] once it drained the stream. The client opens odd
//! ids, the server even ones. When the lower stream ends (a TCP peer's FIN under a
//! [`StreamLink`]), the toy ends the connection: [`ToyMuxError::LowerEnded`].
//!
//! [`Streams::finish`]: crate::driver::Streams::finish
//! [`StreamLink`]: crate::stream_link::StreamLink
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::convert::Infallible;
use std::time::Instant;

use crate::driver::{StreamError, StreamEvent, StreamId};
use crate::stack::{Lower, StreamLayer};

/// Frame header: stream id and payload length.
const HEADER: usize = 6;
/// Largest payload per frame.
pub const MAX_FRAME: usize = 16 * 1024;
/// Received bytes buffered per stream before the mux stops reading the lower stream (the
/// lower stream's receive window then pushes back on the peer).
pub const RECV_CAP: usize = 64 * 1024;

/// Why the toy mux ended the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ToyMuxError {
    /// A data frame for a stream the peer had already finished (after its FIN).
    DataAfterFin,
    /// The lower byte stream ended (the peer closed the connection).
    LowerEnded,
}

#[derive(Debug, Default)]
struct ToyStream {
    recv: VecDeque<u8>,
    /// `Readable` was reported and the application has not drained the stream since.
    readable_signalled: bool,
    /// A write was refused: report `Writable` when the lower stream takes bytes again.
    want_writable: bool,
    /// Bytes were written since the last `Acknowledged`.
    unacked: bool,
    /// This side sent its FIN: no more writes.
    fin_sent: bool,
    /// The peer's FIN arrived: `Finished` once `recv` is drained.
    peer_fin: bool,
}

/// The toy multiplexer (see the module docs).
#[derive(Debug)]
pub struct ToyMux {
    streams: BTreeMap<StreamId, ToyStream>,
    next_id: u32,
    incoming: VecDeque<StreamId>,
    /// Received bytes not yet cut into frames (less than one frame).
    inbuf: Vec<u8>,
    events: VecDeque<StreamEvent<ToyMuxError>>,
    failed: bool,
    /// Streams the application dropped (their frames, if any arrive, are discarded).
    dropped: BTreeSet<StreamId>,
    /// Streams this side may still open (`None`: no limit).
    opens_left: Option<usize>,
}

impl ToyMux {
    /// The client side (opens odd stream ids).
    pub fn client() -> Self {
        ToyMux::with_first_id(1)
    }

    /// The server side (opens even stream ids).
    pub fn server() -> Self {
        ToyMux::with_first_id(2)
    }

    fn with_first_id(first: u32) -> Self {
        ToyMux {
            streams: BTreeMap::new(),
            next_id: first,
            incoming: VecDeque::new(),
            inbuf: Vec::new(),
            events: VecDeque::new(),
            failed: false,
            dropped: BTreeSet::new(),
            opens_left: None,
        }
    }

    /// Refuses (with [`StreamError::Closed`]) every `open_stream` after the first `n`, the
    /// way a multiplexer refuses new streams once its connection is going away: lets tests
    /// see a refused open.
    pub fn with_stream_limit(mut self, n: usize) -> Self {
        self.opens_left = Some(n);
        self
    }

    /// Ends the connection with `why` (one `Closed`; nothing is read after it).
    fn fail(&mut self, why: ToyMuxError) {
        if !self.failed {
            self.failed = true;
            self.events.push_back(StreamEvent::Closed(why));
        }
        self.inbuf.clear();
    }

    /// Whether some stream's receive buffer is full (stop reading the lower stream).
    fn saturated(&self) -> bool {
        self.streams.values().any(|s| s.recv.len() >= RECV_CAP)
    }

    /// Cuts complete frames out of `inbuf` into their streams (a decoder: panic-free by
    /// construction).
    #[deny(clippy::indexing_slicing, clippy::unwrap_used, clippy::expect_used)]
    fn deframe(&mut self) {
        let mut at = 0;
        while let Some(&head) = self
            .inbuf
            .get(at..at + HEADER)
            .and_then(|h| <&[u8; HEADER]>::try_from(h).ok())
        {
            let [i0, i1, i2, i3, l0, l1] = head;
            let id = StreamId(u32::from_be_bytes([i0, i1, i2, i3]));
            let len = usize::from(u16::from_be_bytes([l0, l1]));
            let Some(payload) = self.inbuf.get(at + HEADER..at + HEADER + len) else {
                break;
            };
            at += HEADER + len;
            if self.dropped.contains(&id) {
                continue;
            }
            let s = self.streams.entry(id).or_insert_with(|| {
                self.incoming.push_back(id);
                self.events.push_back(StreamEvent::Opened(id));
                ToyStream::default()
            });
            if s.peer_fin && len > 0 {
                self.fail(ToyMuxError::DataAfterFin);
                return;
            }
            // A zero-length frame is the peer's FIN (module docs).
            s.peer_fin |= len == 0;
            s.recv.extend(payload);
            if !s.readable_signalled {
                s.readable_signalled = true;
                self.events.push_back(StreamEvent::Readable(id));
            }
        }
        self.inbuf.drain(..at);
    }
}

impl StreamLayer for ToyMux {
    type Reason = ToyMuxError;

    fn pump(&mut self, _now: Instant, lower: &mut Lower<'_>) {
        let mut tmp = [0u8; 4096];
        while !self.failed && !self.saturated() {
            match lower.read(&mut tmp) {
                Ok(n) => {
                    self.inbuf
                        .extend_from_slice(tmp.get(..n).unwrap_or_default());
                    self.deframe();
                }
                Err(StreamError::Finished) => self.fail(ToyMuxError::LowerEnded),
                Err(_) => break,
            }
        }
    }

    fn on_lower_event(&mut self, ev: StreamEvent<Infallible>, _lower: &mut Lower<'_>) {
        match ev {
            StreamEvent::Writable(_) => {
                for (id, s) in self.streams.iter_mut() {
                    if std::mem::take(&mut s.want_writable) {
                        self.events.push_back(StreamEvent::Writable(*id));
                    }
                }
            }
            StreamEvent::Acknowledged(_) => {
                for (id, s) in self.streams.iter_mut() {
                    if std::mem::take(&mut s.unacked) {
                        self.events.push_back(StreamEvent::Acknowledged(*id));
                    }
                }
            }
            // Readable: the pump that follows reads (drain step 3).
            _ => {}
        }
    }

    fn poll_timeout(&self) -> Option<Instant> {
        None
    }

    fn handle_timeout(&mut self, _now: Instant, _lower: &mut Lower<'_>) {}

    fn poll_event(&mut self) -> Option<StreamEvent<ToyMuxError>> {
        self.events.pop_front()
    }

    fn open_stream(&mut self, _lower: &mut Lower<'_>) -> Result<StreamId, StreamError> {
        if let Some(left) = self.opens_left.as_mut() {
            *left = left.checked_sub(1).ok_or(StreamError::Closed)?;
        }
        let id = StreamId(self.next_id);
        self.next_id = self.next_id.wrapping_add(2);
        self.streams.insert(id, ToyStream::default());
        Ok(id)
    }

    fn accept_stream(&mut self) -> Option<StreamId> {
        self.incoming.pop_front()
    }

    fn write(
        &mut self,
        lower: &mut Lower<'_>,
        id: StreamId,
        data: &[u8],
    ) -> Result<usize, StreamError> {
        let s = self.streams.get_mut(&id).ok_or(StreamError::Unknown(id))?;
        if s.fin_sent {
            return Err(StreamError::Closed);
        }
        let Some(chunk) = data
            .get(..data.len().min(MAX_FRAME))
            .filter(|c| !c.is_empty())
        else {
            return Ok(0);
        };
        let mut head = [0u8; HEADER];
        head[..4].copy_from_slice(&id.0.to_be_bytes());
        head[4..].copy_from_slice(&(chunk.len() as u16).to_be_bytes());
        match lower.write_frame(&[&head, chunk]) {
            Ok(()) => {
                s.unacked = true;
                Ok(chunk.len())
            }
            Err(StreamError::Blocked) => {
                s.want_writable = true;
                Err(StreamError::Blocked)
            }
            Err(e) => Err(e),
        }
    }

    fn read(
        &mut self,
        _lower: &mut Lower<'_>,
        id: StreamId,
        buf: &mut [u8],
    ) -> Result<usize, StreamError> {
        let s = self.streams.get_mut(&id).ok_or(StreamError::Unknown(id))?;
        if s.recv.is_empty() {
            s.readable_signalled = false;
            return Err(if s.peer_fin {
                StreamError::Finished
            } else {
                StreamError::Blocked
            });
        }
        let n = buf.len().min(s.recv.len());
        for (d, b) in buf.iter_mut().zip(s.recv.drain(..n)) {
            *d = b;
        }
        Ok(n)
    }

    /// Sends the FIN, a zero-length frame (module docs).
    fn finish(&mut self, lower: &mut Lower<'_>, id: StreamId) -> Result<(), StreamError> {
        let s = self.streams.get_mut(&id).ok_or(StreamError::Unknown(id))?;
        if s.fin_sent {
            return Err(StreamError::Closed);
        }
        let mut head = [0u8; HEADER];
        head[..4].copy_from_slice(&id.0.to_be_bytes());
        match lower.write_frame(&[&head]) {
            Ok(()) => {
                s.fin_sent = true;
                s.unacked = true;
                Ok(())
            }
            Err(StreamError::Blocked) => {
                s.want_writable = true;
                Err(StreamError::Blocked)
            }
            Err(e) => Err(e),
        }
    }

    fn close_stream(&mut self, _lower: &mut Lower<'_>, id: StreamId) {
        if self.streams.remove(&id).is_some() {
            self.dropped.insert(id);
        }
    }

    fn flushed(&self, _id: StreamId) -> bool {
        true // frames go straight into the lower stream (or the stack's one-frame rest)
    }
}

/// Test helper: opens two streams on `pair.a`, writes `data` on each and reads them on
/// `pair.b` at most `read_chunk` bytes per stream per step (a slow reader), until both
/// arrived whole or the step budget ran out. Returns what `b` read on each stream and how
/// many streams it accepted.
#[cfg(test)]
pub(crate) fn two_streams_over<A, B, M>(
    pair: &mut crate::sim::Pair<A, B, M>,
    data: &[u8],
    read_chunk: usize,
) -> ([Vec<u8>; 2], usize)
where
    A: crate::driver::Machine + crate::driver::Streams,
    B: crate::driver::Machine + crate::driver::Streams,
    M: crate::sim::Medium,
{
    use crate::driver::Streams;
    let ids = [
        Streams::open_stream(&mut pair.a).expect("open"),
        Streams::open_stream(&mut pair.a).expect("open"),
    ];
    let mut sent = [0usize; 2];
    let mut got: [Vec<u8>; 2] = [Vec::new(), Vec::new()];
    let mut accepted = 0;
    let mut buf = vec![0u8; read_chunk];
    for _ in 0..200_000 {
        for (k, id) in ids.iter().enumerate() {
            if let Ok(n) = Streams::write(&mut pair.a, *id, &data[sent[k]..]) {
                sent[k] += n;
            }
        }
        while Streams::accept_stream(&mut pair.b).is_some() {
            accepted += 1;
        }
        for (k, id) in ids.iter().enumerate() {
            if let Ok(n) = Streams::read(&mut pair.b, *id, &mut buf) {
                got[k].extend_from_slice(&buf[..n]);
            }
        }
        if got.iter().all(|g| g.len() == data.len()) {
            break;
        }
        if !pair.step() {
            pair.drive_for(std::time::Duration::from_millis(1));
        }
    }
    (got, accepted)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::driver::{Machine, Streams};
    use crate::kcp::KcpConfig;
    use crate::rng::seeded;
    use crate::session::{CryptMode, Session, SessionConfig};
    use crate::sim::{test_start, LinkConfig, Pair};
    use crate::stack::Stack;

    type MuxStack = Stack<Session, ToyMux>;

    /// The test application on the server: echoes every stream into itself.
    #[derive(Default)]
    struct Echo {
        /// Bytes read and not yet written back, per stream.
        backlog: BTreeMap<StreamId, VecDeque<u8>>,
    }

    impl Echo {
        fn run(&mut self, s: &mut MuxStack) {
            while let Some(id) = s.accept_stream() {
                self.backlog.entry(id).or_default();
            }
            let mut buf = [0u8; 4096];
            for (&id, q) in self.backlog.iter_mut() {
                while q.len() < RECV_CAP {
                    match s.read(id, &mut buf) {
                        Ok(n) => q.extend(&buf[..n]),
                        Err(_) => break,
                    }
                }
                while !q.is_empty() {
                    let (a, _) = q.as_slices();
                    match s.write(id, a) {
                        Ok(n) => drop(q.drain(..n)),
                        Err(_) => break,
                    }
                }
            }
        }
    }

    /// The listener is generic over the per-peer upper layer: the same demux, AEAD and
    /// timer heap serve `Stack<Session, ToyMux>` connections, driven here only through the
    /// `DatagramEndpoint` contract; two streams of one client echo exactly.
    #[test]
    fn a_listener_of_multiplexed_stacks_echoes_two_streams() {
        use crate::driver::{DatagramEndpoint, EndpointEvent};
        use crate::session::{Listener, ListenerConfig};
        use crate::stack::Side;
        use std::net::SocketAddr;

        let cfg = SessionConfig {
            kcp: KcpConfig::fast3().with_windows(128, 128).with_stream(true),
            crypt: CryptMode::Aead(crate::session::aead::AeadKind::Aes128Gcm),
            key: [9; 32],
            data_shards: 0,
            parity_shards: 0,
        };
        let t = test_start();
        let mut server: Listener<ToyMux> = Listener::with_upper(
            ListenerConfig::new(cfg.clone()),
            Box::new(seeded(1)),
            |side| match side {
                Side::Client => ToyMux::client(),
                Side::Server => ToyMux::server(),
            },
        );
        let me: SocketAddr = "10.0.0.1:4000".parse().unwrap();
        let mut client = Stack::new(
            Session::client(77, &cfg, t, Box::new(seeded(2))),
            ToyMux::client(),
        );
        let ids = [client.open_stream().unwrap(), client.open_stream().unwrap()];
        let want = [pattern(1, 40_000), pattern(3, 25_000)];
        let (mut sent, mut got) = ([0usize; 2], [Vec::new(), Vec::new()]);
        let mut echo: Vec<(crate::session::SessionId, StreamId, VecDeque<u8>)> = Vec::new();
        let mut conns = Vec::new();
        let (mut now, mut buf) = (t, Vec::new());
        for _ in 0..200_000 {
            if got.iter().zip(&want).all(|(g, w)| g.len() == w.len()) {
                break;
            }
            for k in 0..2 {
                while let Some(rest) = want[k].get(sent[k]..).filter(|r| !r.is_empty()) {
                    match client.write(ids[k], rest) {
                        Ok(n) => sent[k] += n,
                        Err(_) => break,
                    }
                }
                let mut tmp = [0u8; 4096];
                while let Ok(n) = client.read(ids[k], &mut tmp) {
                    got[k].extend_from_slice(&tmp[..n]);
                }
            }
            while client.poll_transmit(now, &mut buf).is_some() {
                let _ = DatagramEndpoint::handle_datagram(&mut server, now, me, &buf);
                buf.clear();
            }
            while let Some(ev) = DatagramEndpoint::poll_event(&mut server) {
                if let EndpointEvent::Incoming(_) = ev {
                    conns.extend(DatagramEndpoint::accept(&mut server));
                }
            }
            for &c in &conns {
                let Some(conn) = DatagramEndpoint::conn_mut(&mut server, c) else {
                    continue;
                };
                while let Some(id) = conn.accept_stream() {
                    echo.push((c, id, VecDeque::new()));
                }
                for (_, sid, q) in echo.iter_mut().filter(|e| e.0 == c) {
                    let mut tmp = [0u8; 4096];
                    while let Ok(n) = conn.read(*sid, &mut tmp) {
                        q.extend(&tmp[..n]);
                    }
                    while !q.is_empty() {
                        match conn.write(*sid, q.as_slices().0) {
                            Ok(n) => drop(q.drain(..n)),
                            Err(_) => break,
                        }
                    }
                }
            }
            let mut moved = false;
            while DatagramEndpoint::has_transmit(&server) {
                let Some(tx) = DatagramEndpoint::poll_transmit(&mut server, now, &mut buf) else {
                    break;
                };
                assert_eq!(tx.to, me);
                let _ = client.handle_input(now, &buf);
                buf.clear();
                moved = true;
            }
            if !moved && !client.has_transmit() {
                let next = [
                    client.poll_timeout(),
                    DatagramEndpoint::poll_timeout(&server),
                ]
                .into_iter()
                .flatten()
                .min();
                now = next.expect("a transfer in progress has a timer").max(now);
                client.handle_timeout(now);
                DatagramEndpoint::handle_timeout(&mut server, now);
            }
        }
        assert_eq!(got, want);
        assert_eq!(conns.len(), 1, "one connection, two streams in it");
    }

    /// A zero-length frame is a FIN: the reader drains the stream, then gets `Finished`;
    /// the finished side can no longer write; the peer still writes back (half-close).
    #[test]
    fn a_fin_frame_ends_one_stream_and_leaves_the_other_open() {
        let cfg = SessionConfig {
            kcp: KcpConfig::fast3().with_stream(true),
            crypt: CryptMode::Raw,
            key: [0; 32],
            data_shards: 0,
            parity_shards: 0,
        };
        let t = test_start();
        let a = Stack::new(
            Session::client(3, &cfg, t, Box::new(seeded(1))),
            ToyMux::client().with_stream_limit(2),
        );
        let b = Stack::new(
            Session::new(3, &cfg, t, Box::new(seeded(2))),
            ToyMux::server(),
        );
        let link = LinkConfig::perfect().with_delay(Duration::from_millis(5));
        let mut p = Pair::new(a, b, t, link.clone(), link, 1);
        let (x, y) = (p.a.open_stream().unwrap(), p.a.open_stream().unwrap());
        assert_eq!(
            p.a.open_stream(),
            Err(StreamError::Closed),
            "the limit refuses"
        );
        p.a.write(x, b"abc").unwrap();
        p.a.finish(x).unwrap();
        assert_eq!(p.a.write(x, b"more"), Err(StreamError::Closed));
        assert_eq!(p.a.finish(x), Err(StreamError::Closed));
        p.a.write(y, b"open").unwrap();
        p.drive();
        let mut buf = [0u8; 16];
        assert_eq!(p.b.accept_stream(), Some(x));
        assert_eq!(p.b.accept_stream(), Some(y));
        assert_eq!(p.b.read(x, &mut buf), Ok(3));
        assert_eq!(&buf[..3], b"abc");
        assert_eq!(p.b.read(x, &mut buf), Err(StreamError::Finished));
        assert_eq!(p.b.read(y, &mut buf), Ok(4));
        assert_eq!(p.b.read(y, &mut buf), Err(StreamError::Blocked));
        // Half-close: the server answers on the stream the client finished, then finishes.
        p.b.write(x, b"back").unwrap();
        p.b.finish(x).unwrap();
        p.drive();
        assert_eq!(p.a.read(x, &mut buf), Ok(4));
        assert_eq!(p.a.read(x, &mut buf), Err(StreamError::Finished));
        assert!(!p.a.is_closed() && !p.b.is_closed());
    }

    /// Data after a FIN is a protocol error: the connection ends with `DataAfterFin`.
    #[test]
    fn data_after_a_fin_ends_the_connection() {
        let mut m = ToyMux::server();
        let id = 7u32.to_be_bytes();
        m.inbuf
            .extend_from_slice(&[id[0], id[1], id[2], id[3], 0, 0]);
        m.inbuf
            .extend_from_slice(&[id[0], id[1], id[2], id[3], 0, 1, b'x']);
        m.deframe();
        let events: Vec<_> = std::iter::from_fn(|| m.poll_event()).collect();
        assert_eq!(
            events,
            [
                StreamEvent::Opened(StreamId(7)),
                StreamEvent::Readable(StreamId(7)),
                StreamEvent::Closed(ToyMuxError::DataAfterFin)
            ]
        );
    }

    fn pattern(stream: u8, n: usize) -> Vec<u8> {
        (0..n)
            .map(|i| (i as u8).wrapping_mul(31) ^ stream)
            .collect()
    }

    /// The transfer harness drives a multiplexer stack exactly as it drives a bare session:
    /// two streams of `Stack<Session, ToyMux>` over a lossy link, by stream id, with per-stream
    /// digests and the session's KCP counters.
    #[test]
    fn two_mux_streams_run_through_the_transfer_harness() {
        use crate::sim::transfer::{run_streams, StreamPlan, Tap};
        let cfg = SessionConfig {
            kcp: KcpConfig::fast3().with_windows(128, 128).with_stream(true),
            crypt: CryptMode::Raw,
            key: [0; 32],
            data_shards: 0,
            parity_shards: 0,
        };
        let link = LinkConfig::perfect()
            .with_delay(Duration::from_millis(10))
            .with_loss(0.03);
        let t = test_start();
        let run = |seed: u64| {
            let a = Stack::new(
                Session::client(9, &cfg, t, Box::new(seeded(seed))),
                ToyMux::client(),
            );
            let b = Stack::new(
                Session::new(9, &cfg, t, Box::new(seeded(seed + 1))),
                ToyMux::server(),
            );
            let mut p = Pair::new(
                Tap::new(a),
                Tap::new(b),
                t,
                link.clone(),
                link.clone(),
                seed,
            );
            let plan = StreamPlan {
                streams: 2,
                bytes: 150_000,
                chunk: 1000,
                seed,
                time_limit: Duration::from_secs(120),
            };
            run_streams(&mut p, &plan)
        };
        let r = run(4);
        assert!(r.completed, "{r:?}");
        assert_eq!(r.delivered, 300_000);
        let ids: Vec<StreamId> = r.streams.iter().map(|s| s.id).collect();
        assert_eq!(ids, [StreamId(1), StreamId(3)]);
        for s in &r.streams {
            assert_eq!(s.sha256_sent, s.sha256_received, "{s:?}");
        }
        assert!(
            r.sender.retrans_segs > 0,
            "loss was repaired by KCP: {:?}",
            r.sender
        );
        assert_eq!(run(4).wire_digest, r.wire_digest, "deterministic");
    }

    /// Two streams over one KCP session, `Stack<Session, ToyMux>` on both ends of a lossy,
    /// reordering link: both echo exactly.
    #[test]
    fn two_streams_echo_exactly_over_one_lossy_session() {
        let cfg = SessionConfig {
            kcp: KcpConfig::fast3().with_windows(128, 128).with_stream(true),
            crypt: CryptMode::Aead(crate::session::aead::AeadKind::ChaCha20Poly1305),
            key: [7; 32],
            data_shards: 10,
            parity_shards: 3,
        };
        let link = LinkConfig::perfect()
            .with_delay(Duration::from_millis(20))
            .with_loss(0.05);
        for seed in 0..3 {
            let t = test_start();
            let a = Stack::new(
                Session::client(5, &cfg, t, Box::new(seeded(seed))),
                ToyMux::client(),
            );
            let b = Stack::new(
                Session::new(5, &cfg, t, Box::new(seeded(seed + 100))),
                ToyMux::server(),
            );
            let mut p = Pair::new(a, b, t, link.clone(), link.clone(), seed);
            let ids = [p.a.open_stream().unwrap(), p.a.open_stream().unwrap()];
            assert_eq!(ids, [StreamId(1), StreamId(3)]);
            let want = [pattern(1, 150_000), pattern(3, 90_000)];
            let mut sent = [0usize; 2];
            let mut got = [Vec::new(), Vec::new()];
            let mut echo = Echo::default();
            let limit = p.now + Duration::from_secs(600);
            while got.iter().zip(&want).any(|(g, w)| g.len() < w.len()) {
                for k in 0..2 {
                    while sent[k] < want[k].len() {
                        match p.a.write(ids[k], &want[k][sent[k]..]) {
                            Ok(n) => sent[k] += n,
                            Err(_) => break,
                        }
                    }
                    let mut buf = [0u8; 4096];
                    while let Ok(n) = p.a.read(ids[k], &mut buf) {
                        got[k].extend_from_slice(&buf[..n]);
                    }
                }
                echo.run(&mut p.b);
                assert!(p.step() && p.now < limit, "stalled (seed {seed})");
            }
            assert_eq!(got, want, "seed {seed}");
            let opened: Vec<_> = p
                .events_b
                .iter()
                .filter_map(|e| match e {
                    StreamEvent::Opened(id) => Some(*id),
                    _ => None,
                })
                .collect();
            assert_eq!(opened, ids, "the server saw both streams open, in order");
            p.drive();
            assert!(ids.iter().all(|&id| p.a.all_acked(id)));
            assert!(p.events_a.contains(&StreamEvent::Acknowledged(ids[0])));
            assert!(p.events_a.contains(&StreamEvent::Acknowledged(ids[1])));
            assert!(!p.a.has_transmit() && p.a.poll_timeout().is_none());
        }
    }
}
