//! The meeting point of application stream handles and the socket loop that owns the
//! protocol state (used by the tokio and smol adapters through [`crate::handle`]). Streams
//! are keyed by (connection, stream): a plain KCP session has its one
//! [`StreamId::SOLE`], a multiplexed stack as many as it opens or accepts. The mutex guards
//! byte buffers, queues and wakers only: the stacks stay owned by the driver, which never
//! blocks on the app.
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::io;
use std::sync::{Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use tether_core::driver::{StreamError, StreamId};
use tether_core::session::{CloseReason, SessionId};

use tether_core::chunks::ChunkQueue;
use tether_core::driver::Bytes;

use crate::blocks::BlockPool;

/// One stream of one connection: the hub's key. A plain KCP session has one stream,
/// [`StreamId::SOLE`]; a multiplexed stack has as many as it opened or accepted.
pub type StreamKey = (SessionId, StreamId);

/// Bytes the application may queue for sending before `poll_write` waits for KCP.
pub const SEND_BUFFER: usize = 1 << 20;
/// Bytes read from KCP and held for the application before KCP's window closes.
pub const RECV_BUFFER: usize = 1 << 20;
/// Chunks given to [`Hub::poll_write_chunk`] shorter than this are copied into the send
/// queue's block instead of queued on their own: the driver hands the stack one chunk at a
/// time, and a multiplexer frames each as at least one frame (smux: an 8-byte header and
/// a KCP segment's worth of work per chunk), so a stream of tiny chunks would cost far more
/// below than the copy of a few KiB does here.
pub const COPY_CHUNKS_BELOW: usize = 4 * 1024;
/// Received chunks shorter than this are copied into the receive queue's block instead of
/// queued on their own ([`StreamBuf::push_received`]): below a KCP segment's usual size a
/// chunk costs more in queue entries and per-chunk reads than its copy. A whole segment
/// (KCP hands them out as slices of its receive blocks) is queued as it is, so a reader
/// that takes chunks ([`Hub::poll_read_chunks`]) gets the received bytes without a copy.
pub const MERGE_RECEIVED_BELOW: usize = 512;

/// Why a stream can no longer carry data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gone {
    /// A segment was retransmitted `dead_link` times: the peer vanished.
    DeadLink,
    /// The listener closed the session.
    Closed(CloseReason),
    /// The endpoint (socket task) stopped.
    EndpointGone,
    /// The protocol closed this one stream (`StreamEvent::StreamClosed`: a reset, or the
    /// peer closed it); the connection's other streams go on.
    StreamReset,
    /// The connection closed (locally, by the peer, or on a protocol error) and this stream
    /// had not reached its end.
    ConnectionClosed,
    /// The connection's socket failed with this error.
    Io(io::ErrorKind),
}

impl Gone {
    fn error(self) -> io::Error {
        match self {
            Gone::DeadLink => io::Error::new(
                io::ErrorKind::TimedOut,
                "peer stopped acknowledging (dead link)",
            ),
            Gone::Closed(CloseReason::IdleTimeout) => {
                io::Error::new(io::ErrorKind::TimedOut, "session idle timeout")
            }
            Gone::Closed(r) => io::Error::new(
                io::ErrorKind::ConnectionReset,
                format!("session closed: {r:?}"),
            ),
            Gone::EndpointGone => io::Error::new(
                io::ErrorKind::BrokenPipe,
                "the KCP endpoint task has stopped",
            ),
            Gone::StreamReset => io::Error::new(
                io::ErrorKind::ConnectionReset,
                "the stream was closed by the protocol (reset by the peer): open a new one",
            ),
            Gone::ConnectionClosed => io::Error::new(
                io::ErrorKind::ConnectionReset,
                "the connection carrying this stream closed",
            ),
            Gone::Io(kind) => io::Error::new(kind, "the connection's socket failed"),
        }
    }
}

/// Where the application's half-close of a stream (`poll_shutdown`) stands.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub enum Shutdown {
    /// Not asked for.
    #[default]
    Open,
    /// Asked for: the driver calls `Streams::finish` once every queued byte is in the stack.
    Requested,
    /// The stack finished the stream (or it was already finished): no more writes.
    Done,
    /// The protocol has no half-close (KCP): shutdown only waits for the acknowledgements,
    /// as a flush does.
    Unsupported,
}

/// One stream's buffers and wakers.
#[derive(Debug, Default)]
pub struct StreamBuf {
    /// Bytes written by the app, not yet accepted by KCP: copied once into owned chunks,
    /// which a multiplexer then frames without copying them again.
    pub send: ChunkQueue,
    /// Lengths of the app's writes still in `send`, oldest first: the message boundaries the
    /// driver keeps in KCP message mode (it clears them in stream mode).
    pub writes: VecDeque<usize>,
    /// Bytes read from KCP, not yet read by the app: owned chunks as the stack handed them
    /// out (a multiplexer's payloads, not copied), copied once into the app's buffer.
    pub recv: ChunkQueue,
    /// Whether KCP still holds unacknowledged data (set by the driver).
    pub unacked: bool,
    /// Set once the stream can no longer carry data.
    pub gone: Option<Gone>,
    /// The peer finished the stream and everything it sent is in `recv`: reads return
    /// `Ok(0)` once `recv` is drained.
    pub eof: bool,
    /// The application's half-close.
    pub shutdown: Shutdown,
    /// The remote address.
    pub peer: Option<std::net::SocketAddr>,
    /// The app dropped its handle: close once everything is acknowledged.
    pub dropped: bool,
    /// The app asked for a keepalive probe (taken by the driver).
    pub keepalive: bool,
    /// When the session last received a datagram, as of the driver's last pump.
    last_rx: Option<Instant>,
    rx_query: RxQuery,
    rx_waker: Option<Waker>,
    read_waker: Option<Waker>,
    write_waker: Option<Waker>,
    in_dirty: bool,
}

/// Where a [`Hub::poll_last_received`] call stands.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum RxQuery {
    #[default]
    Idle,
    /// Waiting for the driver to refresh `last_rx`.
    Asked,
    /// The driver refreshed it since the question.
    Answered,
}

impl StreamBuf {
    /// Gives back the capacity of the empty byte buffers, so an idle session's stream costs
    /// only its struct (issue 13 item 5). Called where a buffer drains: the next read or
    /// write allocates again, one allocation per burst rather than a held 1 MiB.
    pub(crate) fn release_buffers(&mut self, blocks: &mut BlockPool) {
        if let Some(b) = self.send.take_tail() {
            blocks.recycle(b);
        }
        self.send.release();
        self.recv.release();
    }

    /// Driver side: queues a chunk the stack handed out for the application. A short one
    /// (below [`MERGE_RECEIVED_BELOW`]) is copied into the queue's block, so tiny segments
    /// do not become tiny chunks.
    pub fn push_received(&mut self, chunk: Bytes) {
        if chunk.len() < MERGE_RECEIVED_BELOW {
            self.recv.extend_from_slice(&chunk);
        } else {
            self.recv.push(chunk);
        }
    }

    /// Wakes whoever waits on this stream.
    pub fn wake(&mut self) {
        if let Some(w) = self.read_waker.take() {
            w.wake();
        }
        if let Some(w) = self.write_waker.take() {
            w.wake();
        }
        if let Some(w) = self.rx_waker.take() {
            w.wake();
        }
    }

    /// Driver side: the session's last-received time, answering a pending question.
    pub fn set_last_received(&mut self, t: Option<Instant>) {
        self.last_rx = t;
        if self.rx_query == RxQuery::Asked {
            self.rx_query = RxQuery::Answered;
            if let Some(w) = self.rx_waker.take() {
                w.wake();
            }
        }
    }
}

/// Hub state behind the mutex.
#[derive(Debug, Default)]
pub struct HubState {
    /// Streams by connection and stream id (ordered, so a connection's streams are one
    /// range: closing a connection touches only its own).
    pub streams: BTreeMap<StreamKey, StreamBuf>,
    /// Per connection: streams the peer opened, waiting for `accept_stream()`, and the
    /// application's `open_stream()` requests.
    pub conns: HashMap<SessionId, ConnQueue>,
    /// The connections carry multiplexed stacks: an accepted session has no sole stream, its
    /// streams come from `open_stream()`/`accept_stream()` on its connection handle.
    pub multiplexed: bool,
    /// Connections whose handle asked the driver for something (open a stream, close).
    pub conn_work: Vec<SessionId>,
    /// Sessions handed over for a pending `accept()` call (at most one at a time: the rest
    /// wait in the core listener's backlog, where its bound and `accept_timeout` apply).
    pub accept_queue: VecDeque<SessionId>,
    /// An `accept()` call is waiting: the driver may take one session from the backlog.
    pub accept_wanted: bool,
    /// Streams the app touched since the driver last looked.
    pub dirty: Vec<StreamKey>,
    /// The endpoint task stopped (socket error or shutdown).
    pub endpoint_gone: bool,
    /// The listener handle was dropped: accept no more sessions.
    pub listener_dropped: bool,
    /// The driver's loop counters, refreshed on every iteration.
    pub driver_stats: crate::driver::DriverStats,
    /// kcp-go's 24 counters summed over the endpoint's sessions, refreshed at most every
    /// [`crate::driver::SNMP_REFRESH`] while the endpoint is active.
    pub snmp: tether_core::session::snmp::Snmp,
    /// Blocks the application's writes are copied into, reused once sent.
    pub(crate) blocks: BlockPool,
    wake_pending: bool,
    accept_waker: Option<Waker>,
    driver_waker: Option<Waker>,
}

impl HubState {
    fn wake_driver(&mut self) {
        self.wake_pending = true;
        if let Some(w) = self.driver_waker.take() {
            w.wake();
        }
    }

    fn mark_dirty(&mut self, key: StreamKey) {
        if let Some(s) = self.streams.get_mut(&key) {
            if !s.in_dirty {
                s.in_dirty = true;
                self.dirty.push(key);
            }
        }
        self.wake_driver();
    }

    /// Takes the dirty list (driver side).
    pub fn take_dirty(&mut self) -> Vec<StreamKey> {
        let d = std::mem::take(&mut self.dirty);
        for id in &d {
            if let Some(s) = self.streams.get_mut(id) {
                s.in_dirty = false;
            }
        }
        d
    }

    /// Queues an accepted session and wakes `accept()`.
    pub fn push_accept(&mut self, id: SessionId) {
        if self.multiplexed {
            self.conns.entry(id).or_default().held = true;
        } else {
            self.streams.entry((id, StreamId::SOLE)).or_default();
        }
        self.accept_queue.push_back(id);
        if let Some(w) = self.accept_waker.take() {
            w.wake();
        }
    }

    /// Driver side: true (and cleared) if the app asked for attention since the last call;
    /// otherwise stores `w` to be woken when it does.
    pub fn driver_should_wake(&mut self, w: &Waker) -> bool {
        if std::mem::take(&mut self.wake_pending) {
            return true;
        }
        match &self.driver_waker {
            Some(old) if old.will_wake(w) => {}
            _ => self.driver_waker = Some(w.clone()),
        }
        false
    }

    /// Driver side: the peer opened stream `sid` on connection `id`; queues it for
    /// `accept_stream()` (a stream the application already holds is left alone).
    pub fn push_opened(&mut self, id: SessionId, sid: StreamId) {
        if self.streams.contains_key(&(id, sid)) {
            return;
        }
        self.streams.insert((id, sid), StreamBuf::default());
        let q = self.conns.entry(id).or_default();
        q.opened.push_back(sid);
        q.waker.wake_all();
    }

    /// Driver side: forgets a stream the application dropped; if its connection's handle is
    /// dropped too, the driver looks at the connection again (it may close now).
    pub fn forget_stream(&mut self, key: StreamKey) {
        self.streams.remove(&key);
        if self.conns.get(&key.0).is_some_and(|q| q.dropped) {
            self.conn_work.push(key.0);
        }
    }

    /// Driver side: the protocol closed stream `key` (`StreamEvent::StreamClosed`, after the
    /// driver moved what was left of it into the hub): the application's reads drain what
    /// arrived, then end (`Ok(0)` after the peer's FIN, else a `ConnectionReset` error), and
    /// writes fail. A stream the application dropped is forgotten.
    pub fn stream_closed(&mut self, key: StreamKey) {
        let Some(s) = self.streams.get_mut(&key) else {
            return;
        };
        if s.dropped {
            self.forget_stream(key);
            return;
        }
        s.gone.get_or_insert(Gone::StreamReset);
        s.wake();
    }

    /// Driver side: connection `id` can carry no more data; every stream of it learns why,
    /// and the streams the application already dropped are forgotten.
    pub fn conn_gone(&mut self, id: SessionId, why: Gone) {
        let range = (id, StreamId(0))..=(id, StreamId(u32::MAX));
        let mut forget = Vec::new();
        for (k, s) in self.streams.range_mut(range) {
            s.gone.get_or_insert(why);
            s.wake();
            if s.dropped {
                forget.push(*k);
            }
        }
        for k in forget {
            self.streams.remove(&k);
        }
        if let Some(mut q) = self.conns.remove(&id) {
            for sid in q.opened.drain(..) {
                self.streams.remove(&(id, sid));
            }
            q.wake();
            // A connection handle learns the end from `gone`; nobody else needs the entry.
            if q.held && !q.dropped {
                q.gone = Some(why);
                self.conns.insert(id, q);
            }
        }
    }

    /// Marks every stream gone (the endpoint stopped).
    pub fn shut_down(&mut self) {
        self.endpoint_gone = true;
        for s in self.streams.values_mut() {
            s.gone.get_or_insert(Gone::EndpointGone);
            s.wake();
        }
        for q in self.conns.values_mut() {
            q.wake();
        }
        if let Some(w) = self.accept_waker.take() {
            w.wake();
        }
    }
}

/// One connection's queue of streams the peer opened (for `accept_stream()`).
#[derive(Debug, Default)]
pub struct ConnQueue {
    /// Streams opened by the peer, not yet accepted, oldest first.
    pub opened: VecDeque<StreamId>,
    /// Set once the connection can carry no more data.
    pub gone: Option<Gone>,
    /// `open_stream()` calls the driver has not served yet.
    pub opens: usize,
    /// Streams the driver opened for `open_stream()` calls, not yet taken.
    pub local: VecDeque<StreamId>,
    /// The stack refused to open a stream, and why.
    pub refused: Option<StreamError>,
    /// The connection handle asked for the connection to close now.
    pub close_requested: bool,
    /// A connection handle holds this connection (accepted or dialled).
    pub held: bool,
    /// The connection handle was dropped: close once its streams are gone.
    pub dropped: bool,
    /// The remote address.
    pub peer: Option<std::net::SocketAddr>,
    /// Tasks waiting in `accept_stream()` (several may wait at once on one connection).
    waker: Waiters,
    /// Tasks waiting in `open_stream()`.
    open_waker: Waiters,
}

/// The tasks parked on one connection-level wait: every one is woken (each re-polls and
/// takes its answer or parks again), so concurrent callers never lose a wake-up.
#[derive(Debug, Default)]
pub struct Waiters(Vec<Waker>);

impl Waiters {
    /// Parks `w` (once: a task that polls again does not pile up copies).
    fn park(&mut self, w: &Waker) {
        if !self.0.iter().any(|x| x.will_wake(w)) {
            self.0.push(w.clone());
        }
    }

    /// Wakes every parked task.
    fn wake_all(&mut self) {
        for w in self.0.drain(..) {
            w.wake();
        }
    }

    /// Forgets the parked tasks (their handle is gone).
    fn clear(&mut self) {
        self.0.clear();
    }
}

impl ConnQueue {
    fn wake(&mut self) {
        self.waker.wake_all();
        self.open_waker.wake_all();
    }

    /// Driver side: `open_stream()` got stream `sid`, or the stack refused it.
    pub fn opened_local(&mut self, sid: Result<StreamId, StreamError>) {
        match sid {
            Ok(sid) => self.local.push_back(sid),
            Err(e) => self.refused = Some(e),
        }
        self.open_waker.wake_all();
    }
}

/// Copies `data` into `s`'s send queue, in blocks of the pool (whose slices then travel down
/// without another copy).
fn copy_into_send(s: &mut StreamBuf, blocks: &mut BlockPool, data: &[u8]) {
    s.send.extend_from_slice_with(data, |used, need| {
        if let Some(b) = used {
            blocks.recycle(b);
        }
        blocks.get(need)
    });
}

/// Shared between the driver task and every stream handle.
#[derive(Debug, Default)]
pub struct Hub {
    state: Mutex<HubState>,
}

impl Hub {
    /// Locks the state (poisoning is ignored: the state stays consistent per operation).
    pub fn lock(&self) -> MutexGuard<'_, HubState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Driver side: see [`HubState::driver_should_wake`].
    pub fn driver_should_wake(&self, w: &Waker) -> bool {
        self.lock().driver_should_wake(w)
    }

    /// The listener handle was dropped.
    pub fn drop_listener(&self) {
        let mut st = self.lock();
        st.listener_dropped = true;
        st.wake_driver();
    }

    /// `AsyncRead::poll_read`.
    pub fn poll_read(
        &self,
        key: StreamKey,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_take(key, cx, 0, |recv| {
            (!recv.is_empty()).then(|| recv.read_into(buf))
        })
    }

    /// Takes received bytes without copying them: the oldest received chunk, or its first
    /// `max` bytes (`max` is at least 1); `None` at the end of the stream (where
    /// [`Hub::poll_read`] returns `Ok(0)`). Same waking, back-pressure and buffer release as
    /// `poll_read`.
    pub fn poll_read_chunk(
        &self,
        key: StreamKey,
        cx: &mut Context<'_>,
        max: usize,
    ) -> Poll<io::Result<Option<Bytes>>> {
        self.poll_take(key, cx, None, |recv| recv.pop_chunk(max.max(1)).map(Some))
    }

    /// Takes every received chunk up to `max` bytes in all (at least one byte) under one
    /// lock, appending them to `out` without copying; `Ok(0)` at the end of the stream (when
    /// nothing was taken). A reader that gathers many segment-sized chunks per wake-up (a
    /// `writev` to a pipe) pays one lock per batch, not one per chunk.
    pub fn poll_read_chunks(
        &self,
        key: StreamKey,
        cx: &mut Context<'_>,
        max: usize,
        out: &mut Vec<Bytes>,
    ) -> Poll<io::Result<usize>> {
        self.poll_take(key, cx, 0, |recv| {
            let mut taken = 0;
            while taken < max.max(1) {
                let Some(c) = recv.pop_chunk(max.max(1) - taken) else {
                    break;
                };
                taken += c.len();
                out.push(c);
            }
            (taken > 0).then_some(taken)
        })
    }

    /// The read calls' shared shape, under one lock: `take` takes from the stream's
    /// received bytes (`None`: nothing there); then the stream's buffers are released and
    /// the driver told once there is room again. With nothing taken: `end` at the end of
    /// the stream (or for a stream that is gone from the hub), the error of a reset stream,
    /// or `Pending` until bytes arrive.
    fn poll_take<T>(
        &self,
        key: StreamKey,
        cx: &mut Context<'_>,
        end: T,
        take: impl FnOnce(&mut ChunkQueue) -> Option<T>,
    ) -> Poll<io::Result<T>> {
        let mut guard = self.lock();
        let st = &mut *guard;
        let Some(s) = st.streams.get_mut(&key) else {
            return Poll::Ready(Ok(end));
        };
        let was_full = s.recv.len() >= RECV_BUFFER;
        if let Some(got) = take(&mut s.recv) {
            s.release_buffers(&mut st.blocks);
            if was_full || s.recv.len() < RECV_BUFFER / 2 {
                st.mark_dirty(key);
            }
            return Poll::Ready(Ok(got));
        }
        if s.eof {
            return Poll::Ready(Ok(end));
        }
        if let Some(g) = s.gone {
            return Poll::Ready(Err(g.error()));
        }
        s.read_waker = Some(cx.waker().clone());
        Poll::Pending
    }

    /// `AsyncWrite::poll_write`.
    pub fn poll_write(
        &self,
        key: StreamKey,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_queue_send(key, cx, |s, blocks, room| {
            let n = room.min(data.len());
            // One copy, into a block of the pool that then travels down without another.
            copy_into_send(s, blocks, &data[..n]);
            s.writes.push_back(n);
            n
        })
    }

    /// Queues `chunk` for sending without copying it (one write: one KCP message in message
    /// mode), and takes it (leaving `chunk` empty). It is accepted whole as soon as the send
    /// queue has any room, so the queue may pass [`SEND_BUFFER`] by at most one chunk: the
    /// chunk's memory is the application's already, and splitting it would only make a
    /// message-mode write two messages. A chunk shorter than [`COPY_CHUNKS_BELOW`] is copied
    /// into the queue's block (why: see there); an empty one queues nothing. Fails as
    /// [`Hub::poll_write`] does (stream gone, or written after shutdown).
    pub fn poll_write_chunk(
        &self,
        key: StreamKey,
        cx: &mut Context<'_>,
        chunk: &mut Bytes,
    ) -> Poll<io::Result<()>> {
        self.poll_queue_send(key, cx, |s, blocks, _room| {
            let chunk = std::mem::take(chunk);
            if chunk.is_empty() {
                return;
            }
            s.writes.push_back(chunk.len());
            if chunk.len() < COPY_CHUNKS_BELOW {
                copy_into_send(s, blocks, &chunk);
            } else {
                s.send.push(chunk);
            }
        })
    }

    /// A write on stream `key`: fails once the stream is gone or this side finished it,
    /// waits while the send queue is full, else `queue` queues bytes (given the stream, the
    /// pool and the room left) and the driver is asked to look at the stream.
    fn poll_queue_send<T>(
        &self,
        key: StreamKey,
        cx: &mut Context<'_>,
        queue: impl FnOnce(&mut StreamBuf, &mut BlockPool, usize) -> T,
    ) -> Poll<io::Result<T>> {
        let mut guard = self.lock();
        let st = &mut *guard;
        let Some(s) = st.streams.get_mut(&key) else {
            return Poll::Ready(Err(Gone::EndpointGone.error()));
        };
        if let Some(g) = s.gone {
            return Poll::Ready(Err(g.error()));
        }
        if s.shutdown == Shutdown::Done {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "write after shutdown: this side finished the stream",
            )));
        }
        let room = SEND_BUFFER.saturating_sub(s.send.len());
        if room == 0 {
            s.write_waker = Some(cx.waker().clone());
            return Poll::Pending;
        }
        let r = queue(s, &mut st.blocks, room);
        s.unacked = true;
        st.mark_dirty(key);
        Poll::Ready(Ok(r))
    }

    /// `AsyncWrite::poll_flush`: ready once KCP accepted and the peer acknowledged every byte.
    pub fn poll_flush(&self, key: StreamKey, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_write_side(key, cx, |s| s.send.is_empty() && !s.unacked)
    }

    /// `AsyncWrite::poll_shutdown` (`poll_close`): half-closes the stream once every queued
    /// byte is in the stack (`Streams::finish`: the peer reads to the end, then `Ok(0)`),
    /// and is ready once the stack took the FIN, as a TCP `shutdown(2)` is (bytes and FIN
    /// are then the protocol's to deliver; [`Hub::poll_flush`] still waits for their
    /// acknowledgement). On a protocol without a half-close (KCP) it waits for the
    /// acknowledgements, as `poll_flush` (the behaviour before half-closes existed).
    pub fn poll_shutdown(&self, key: StreamKey, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_write_side(key, cx, |s| {
            if s.shutdown == Shutdown::Open {
                s.shutdown = Shutdown::Requested;
            }
            let flushed = s.send.is_empty() && !s.unacked;
            match s.shutdown {
                Shutdown::Done => s.send.is_empty(),
                Shutdown::Unsupported => flushed,
                Shutdown::Requested | Shutdown::Open => s.gone.is_some() && flushed,
            }
        })
    }

    /// A wait on a stream's write side: ready once `done` says so (a stream already
    /// forgotten is done), failed once the stream is gone, else parked with the driver asked
    /// to look at the stream.
    fn poll_write_side(
        &self,
        key: StreamKey,
        cx: &mut Context<'_>,
        done: impl FnOnce(&mut StreamBuf) -> bool,
    ) -> Poll<io::Result<()>> {
        let mut st = self.lock();
        let Some(s) = st.streams.get_mut(&key) else {
            return Poll::Ready(Ok(()));
        };
        if done(s) {
            return Poll::Ready(Ok(()));
        }
        if let Some(g) = s.gone {
            return Poll::Ready(Err(g.error()));
        }
        s.write_waker = Some(cx.waker().clone());
        st.mark_dirty(key);
        Poll::Pending
    }

    /// Asks the driver to close connection `id` now: every stream of it ends.
    pub fn close_connection(&self, id: SessionId) {
        let mut st = self.lock();
        if let Some(q) = st.conns.get_mut(&id) {
            q.close_requested = true;
        }
        st.conn_work.push(id);
        st.wake_driver();
    }

    /// Asks the driver to send a keepalive probe on this stream's session.
    pub fn send_keepalive(&self, key: StreamKey) {
        let mut st = self.lock();
        if let Some(s) = st.streams.get_mut(&key) {
            s.keepalive = true;
        }
        st.mark_dirty(key);
    }

    /// When the session last received a datagram from its peer (any datagram), fresh from
    /// the driver: the first call asks, and the answer comes after the driver's next pass.
    /// A stream that can no longer carry data answers at once with the last known time.
    pub fn poll_last_received(
        &self,
        key: StreamKey,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Instant>> {
        let mut st = self.lock();
        let Some(s) = st.streams.get_mut(&key) else {
            return Poll::Ready(None);
        };
        if s.gone.is_some() {
            s.rx_query = RxQuery::Idle;
            return Poll::Ready(s.last_rx);
        }
        match s.rx_query {
            RxQuery::Answered => {
                s.rx_query = RxQuery::Idle;
                Poll::Ready(s.last_rx)
            }
            RxQuery::Asked => {
                s.rx_waker = Some(cx.waker().clone());
                Poll::Pending
            }
            RxQuery::Idle => {
                s.rx_query = RxQuery::Asked;
                s.rx_waker = Some(cx.waker().clone());
                st.mark_dirty(key);
                Poll::Pending
            }
        }
    }

    /// Bytes received and held for the application, not read yet. Right after a
    /// [`Hub::poll_last_received`] answer this includes what KCP had ready then (the
    /// driver's pass moved it here), up to [`RECV_BUFFER`].
    pub fn unread(&self, key: StreamKey) -> usize {
        self.lock().streams.get(&key).map_or(0, |s| s.recv.len())
    }

    /// The handle was dropped: the driver closes the session once all is acknowledged.
    pub fn drop_stream(&self, key: StreamKey) {
        let mut st = self.lock();
        if let Some(s) = st.streams.get_mut(&key) {
            s.dropped = true;
            s.read_waker = None;
            s.write_waker = None;
            s.rx_waker = None;
        }
        st.mark_dirty(key);
    }

    /// `accept_stream()` on connection `id`: the next stream the peer opened.
    pub fn poll_accept_stream(
        &self,
        id: SessionId,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<StreamId>> {
        self.poll_conn(id, cx, |q| {
            let r = q.opened.pop_front().map(Ok);
            (r, &mut q.waker)
        })
    }

    /// `open_stream()` on connection `id`, first step: asks the driver for a stream (taken
    /// with [`Hub::poll_opened`]).
    pub fn request_open(&self, id: SessionId) {
        let mut st = self.lock();
        if let Some(q) = st.conns.get_mut(&id) {
            q.opens += 1;
            st.conn_work.push(id);
        }
        st.wake_driver();
    }

    /// `open_stream()`, second step: a stream the driver opened on connection `id`.
    pub fn poll_opened(&self, id: SessionId, cx: &mut Context<'_>) -> Poll<io::Result<StreamId>> {
        self.poll_conn(id, cx, |q| {
            let r = match q.local.pop_front() {
                Some(sid) => Some(Ok(sid)),
                None => q.refused.take().map(|e| {
                    Err(io::Error::new(
                        io::ErrorKind::ConnectionRefused,
                        format!("the connection refused a new stream: {e}"),
                    ))
                }),
            };
            (r, &mut q.open_waker)
        })
    }

    /// A connection-level wait: `take` answers from the connection's queue (and names the
    /// waker slot to park in); otherwise the connection's or the endpoint's end answers.
    fn poll_conn(
        &self,
        id: SessionId,
        cx: &mut Context<'_>,
        take: impl FnOnce(&mut ConnQueue) -> (Option<io::Result<StreamId>>, &mut Waiters),
    ) -> Poll<io::Result<StreamId>> {
        let mut st = self.lock();
        let endpoint_gone = st.endpoint_gone;
        let Some(q) = st.conns.get_mut(&id) else {
            return Poll::Ready(Err(Gone::EndpointGone.error()));
        };
        let gone = q.gone.or(endpoint_gone.then_some(Gone::EndpointGone));
        let (answer, waker) = take(q);
        if let Some(r) = answer {
            return Poll::Ready(r);
        }
        if let Some(g) = gone {
            return Poll::Ready(Err(g.error()));
        }
        waker.park(cx.waker());
        Poll::Pending
    }

    /// The connection handle was dropped: the driver closes the connection once its stream
    /// handles are dropped too and everything is acknowledged.
    pub fn drop_connection(&self, id: SessionId) {
        let mut st = self.lock();
        if let Some(q) = st.conns.get_mut(&id) {
            q.dropped = true;
            q.waker.clear();
            q.open_waker.clear();
        }
        st.conn_work.push(id);
        st.wake_driver();
    }

    /// `accept()`: the next incoming session, or `None` once the endpoint stopped.
    pub fn poll_accept(&self, cx: &mut Context<'_>) -> Poll<Option<SessionId>> {
        let mut st = self.lock();
        if let Some(id) = st.accept_queue.pop_front() {
            return Poll::Ready(Some(id));
        }
        if st.endpoint_gone {
            return Poll::Ready(None);
        }
        st.accept_waker = Some(cx.waker().clone());
        if !st.accept_wanted {
            // Only now does a session leave the listener's backlog (issue 13 item 4).
            st.accept_wanted = true;
            st.wake_driver();
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    /// Drained stream buffers give their capacity back (issue 13 item 5: an idle stream
    /// costs only its struct, not up to 2 MiB of buffers from its last burst).
    #[test]
    fn drained_buffers_hold_no_capacity() {
        let mut listener = crate::config::Config::default().listener(false);
        let id = listener.connect(Instant::now(), "127.0.0.1:9".parse().unwrap());
        let hub = Hub::default();
        let key = (id, StreamId::SOLE);
        hub.lock().streams.insert(key, StreamBuf::default());
        let mut cx = Context::from_waker(Waker::noop());
        let data = vec![7u8; 100_000];
        assert!(matches!(
            hub.poll_write(key, &mut cx, &data),
            Poll::Ready(Ok(100_000))
        ));
        hub.lock()
            .streams
            .get_mut(&key)
            .unwrap()
            .recv
            .extend_from_slice(&data[..50_000]);
        let mut buf = vec![0u8; 64 * 1024];
        let mut got = 0;
        while got < 50_000 {
            match hub.poll_read(key, &mut cx, &mut buf) {
                Poll::Ready(Ok(n)) => got += n,
                other => panic!("read: {other:?}"),
            }
        }
        let mut st = hub.lock();
        let s = st.streams.get_mut(&key).unwrap();
        assert_eq!(s.recv.tail_capacity(), 0, "read to empty: recv released");
        assert!(s.send.tail_capacity() >= 100_000);
        s.send.clear();
        s.release_buffers(&mut BlockPool::default());
        assert_eq!(s.send.tail_capacity(), 0, "sent to empty: send released");
    }
    /// A hub with one stream, for the chunk tests.
    fn hub_with_stream() -> (Hub, StreamKey) {
        let mut listener = crate::config::Config::default().listener(false);
        let id = listener.connect(Instant::now(), "127.0.0.1:9".parse().unwrap());
        let hub = Hub::default();
        let key = (id, StreamId::SOLE);
        hub.lock().streams.insert(key, StreamBuf::default());
        (hub, key)
    }

    /// A chunk is queued whole (not copied) as long as the send queue has any room, even
    /// past `SEND_BUFFER` by that one chunk; a full queue makes the writer wait; each chunk
    /// is one write (a message boundary); a small chunk is copied into the queue's block.
    #[test]
    fn write_chunk_bounds_and_boundaries() {
        let (hub, key) = hub_with_stream();
        let mut cx = Context::from_waker(Waker::noop());
        let big = Bytes::from(vec![1u8; SEND_BUFFER - 10]);
        let mut c = big.clone();
        assert!(matches!(
            hub.poll_write_chunk(key, &mut cx, &mut c),
            Poll::Ready(Ok(()))
        ));
        assert!(c.is_empty(), "taken");
        assert_eq!(
            hub.lock().streams[&key].send.front().as_ptr(),
            big.as_ptr(),
            "queued, not copied"
        );
        let mut over = Bytes::from(vec![2u8; 64 * 1024]);
        assert!(hub.poll_write_chunk(key, &mut cx, &mut over).is_ready());
        let mut small = Bytes::from_static(b"tiny");
        assert!(
            hub.poll_write_chunk(key, &mut cx, &mut small).is_pending(),
            "full: waits"
        );
        assert_eq!(small.len(), 4, "a waiting chunk stays the caller's");
        {
            let mut st = hub.lock();
            let s = st.streams.get_mut(&key).unwrap();
            assert_eq!(s.send.len(), SEND_BUFFER - 10 + 64 * 1024);
            assert_eq!(
                s.writes.iter().copied().collect::<Vec<_>>(),
                [SEND_BUFFER - 10, 64 * 1024]
            );
            s.send.clear();
            s.writes.clear();
        }
        assert!(hub.poll_write_chunk(key, &mut cx, &mut small).is_ready());
        let mut empty = Bytes::new();
        assert!(hub.poll_write_chunk(key, &mut cx, &mut empty).is_ready());
        let st = hub.lock();
        let s = &st.streams[&key];
        assert_eq!(s.writes.iter().copied().collect::<Vec<_>>(), [4]);
        assert_eq!(s.send.front(), b"tiny");
        assert_ne!(
            s.send.front().as_ptr(),
            b"tiny".as_ptr(),
            "a small chunk is copied"
        );
    }

    /// `poll_read_chunk` hands out the received chunks themselves, at most `max` bytes each,
    /// then `None` at the end of the stream; writes after shutdown fail.
    #[test]
    fn read_chunk_takes_received_chunks_then_none() {
        let (hub, key) = hub_with_stream();
        let mut cx = Context::from_waker(Waker::noop());
        assert!(hub.poll_read_chunk(key, &mut cx, 10).is_pending());
        let got = Bytes::from(vec![5u8; 10_000]);
        hub.lock()
            .streams
            .get_mut(&key)
            .unwrap()
            .recv
            .push(got.clone());
        let Poll::Ready(Ok(Some(a))) = hub.poll_read_chunk(key, &mut cx, 4_000) else {
            panic!("a chunk")
        };
        assert_eq!((a.len(), a.as_ptr()), (4_000, got.as_ptr()), "not copied");
        let Poll::Ready(Ok(Some(b))) = hub.poll_read_chunk(key, &mut cx, usize::MAX) else {
            panic!("the rest")
        };
        assert_eq!(b.len(), 6_000);
        {
            let mut st = hub.lock();
            let s = st.streams.get_mut(&key).unwrap();
            s.eof = true;
            s.shutdown = Shutdown::Done;
        }
        assert!(matches!(
            hub.poll_read_chunk(key, &mut cx, 1),
            Poll::Ready(Ok(None))
        ));
        let mut c = Bytes::from_static(b"late");
        let Poll::Ready(Err(e)) = hub.poll_write_chunk(key, &mut cx, &mut c) else {
            panic!("write after shutdown")
        };
        assert_eq!(e.kind(), io::ErrorKind::BrokenPipe);
    }

    /// Tiny received chunks come out merged; segment-sized ones (a KCP session's reads) come
    /// out as they went in, and `poll_read_chunks` takes them all under one lock.
    #[test]
    fn tiny_received_chunks_are_merged_segments_are_not() {
        let (hub, key) = hub_with_stream();
        let mut cx = Context::from_waker(Waker::noop());
        let segs: Vec<Bytes> = (0..40u8).map(|k| Bytes::from(vec![k; 1400])).collect();
        {
            let mut st = hub.lock();
            let s = st.streams.get_mut(&key).unwrap();
            for k in 0..10u8 {
                s.push_received(Bytes::from(vec![k; 50]));
            }
            for c in &segs {
                s.push_received(c.clone());
            }
        }
        let Poll::Ready(Ok(Some(a))) = hub.poll_read_chunk(key, &mut cx, usize::MAX) else {
            panic!("a chunk")
        };
        assert_eq!(a.len(), 10 * 50, "one merged chunk");
        assert!(a
            .chunks(50)
            .enumerate()
            .all(|(k, c)| c == vec![k as u8; 50]));
        let mut out = Vec::new();
        let got = hub.poll_read_chunks(key, &mut cx, 30 * 1400 + 7, &mut out);
        assert!(matches!(got, Poll::Ready(Ok(n)) if n == 30 * 1400 + 7));
        assert_eq!(out.len(), 31, "30 whole segments and the head of the next");
        assert!(out
            .iter()
            .zip(&segs)
            .take(30)
            .all(|(o, s)| o.as_ptr() == s.as_ptr()));
        let Poll::Ready(Ok(Some(rest))) = hub.poll_read_chunk(key, &mut cx, usize::MAX) else {
            panic!("the rest of segment 30")
        };
        assert_eq!(
            rest.len(),
            1400 - 7,
            "not copied, the rest of the split segment"
        );
    }
}
