//! The TCP socket loop, written once for every async runtime (issue 15 item 4; a first cut):
//! one connected TCP stream carrying a byte-stream machine (`Machine + ByteStream` from
//! `tether_core::driver`: goscon, smux on TCP, a toy framing in the tests), and its
//! application side, one byte stream ([`TcpStreamHandle`]). Same discipline as the UDP loop
//! ([`crate::socket_loop`]): read until `WouldBlock` with one `now` per pass, drain the
//! machine's output while [`Machine::has_transmit`] and write it until the socket is full
//! (then wait for writability: at most [`OUT_MAX`] bytes wait outside the machine), one
//! timer at the machine's deadline, and the application woken once per pass.
//!
//! The mio flavour, for the application's own `mio::Poll`, is
//! `tcp_endpoint::TcpEndpoint` (feature `mio`). Several streams per connection (a
//! multiplexer stack over a `StreamLink`), through the hub and the same connection handle as
//! KCP, and a TCP listener: [`crate::tcp_conn`], which shares this loop's socket side
//! ([`SocketSide`]).
use std::collections::VecDeque;
use std::io::{self, IoSlice, Write};
use std::net::{Shutdown, TcpStream};
use std::os::fd::AsFd;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use bytes::{Buf, Bytes, BytesMut};
use tether_core::driver::{ByteStream, Machine};

use crate::blocks::BlockPool;
use crate::runtime::{Alarm, Runtime, SocketIo};
use crate::uninit_read::read_uninit;

/// Bytes of one socket read buffer: reads fill it front to back, each read's bytes handed
/// to the machine as a slice of it ([`Machine::handle_input_bytes`]).
const READ_CHUNK: usize = 64 * 1024;
/// Below this much room left in the read buffer, the next read gets a fresh one.
const MIN_READ: usize = 16 * 1024;
/// Pieces per gathered write (`writev`).
const MAX_IOV: usize = 64;
/// Reads per readiness event before other work gets a turn.
const MAX_READS_PER_WAKE: usize = 16;
/// Machine output drained but not yet accepted by the socket.
pub const OUT_MAX: usize = 256 * 1024;
/// Bytes the application may queue, and bytes held for it, per direction.
pub const APP_BUFFER: usize = 1 << 20;

/// Starts a socket loop on `R` for `machine` over the connected `sock`; the application
/// reads and writes through the returned handle.
pub fn spawn<R, M>(machine: M, sock: TcpStream) -> io::Result<TcpStreamHandle>
where
    R: Runtime,
    M: Machine + ByteStream + Send + 'static,
{
    sock.set_nonblocking(true)?;
    sock.set_nodelay(true)?;
    let sock = R::register_tcp(sock)?;
    let pipe = Arc::new(Pipe::default());
    R::spawn("tether-tcp", run::<R, M>(machine, sock, Arc::clone(&pipe)))?;
    Ok(TcpStreamHandle { pipe })
}

/// The application's handle to one TCP-carried byte stream.
#[derive(Debug)]
pub struct TcpStreamHandle {
    pipe: Arc<Pipe>,
}

impl TcpStreamHandle {
    /// Reads received bytes into `buf`; `Ok(0)` once the peer closed and all was read.
    pub fn poll_read(&self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        let mut st = self.pipe.lock();
        if !st.recv.is_empty() {
            let was_full = st.recv.len() >= APP_BUFFER;
            let n = buf.len().min(st.recv.len());
            for (d, s) in buf.iter_mut().zip(st.recv.drain(..n)) {
                *d = s;
            }
            if was_full {
                st.wake_loop();
            }
            return Poll::Ready(Ok(n));
        }
        if st.eof {
            return Poll::Ready(Ok(0));
        }
        if let Some(kind) = st.gone {
            return Poll::Ready(Err(gone_error(kind)));
        }
        st.read_waker = Some(cx.waker().clone());
        Poll::Pending
    }

    /// Queues some of `data` for the machine.
    pub fn poll_write(&self, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        let mut st = self.pipe.lock();
        if let Some(kind) = st.gone.or(st.eof.then_some(io::ErrorKind::BrokenPipe)) {
            return Poll::Ready(Err(gone_error(kind)));
        }
        let room = APP_BUFFER.saturating_sub(st.send.len());
        if room == 0 {
            st.write_waker = Some(cx.waker().clone());
            return Poll::Pending;
        }
        let n = room.min(data.len());
        st.send.extend(&data[..n]);
        st.delivered = false;
        st.wake_loop();
        Poll::Ready(Ok(n))
    }

    /// Ready once the machine took every byte and reports it delivered
    /// ([`ByteStream::all_acked`]).
    pub fn poll_flush(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut st = self.pipe.lock();
        if st.send.is_empty() && st.delivered {
            return Poll::Ready(Ok(()));
        }
        if let Some(kind) = st.gone {
            return Poll::Ready(Err(gone_error(kind)));
        }
        st.write_waker = Some(cx.waker().clone());
        st.wake_loop();
        Poll::Pending
    }
}

impl Drop for TcpStreamHandle {
    /// The loop delivers what was written, then shuts the connection down.
    fn drop(&mut self) {
        let mut st = self.pipe.lock();
        st.dropped = true;
        st.read_waker = None;
        st.write_waker = None;
        st.wake_loop();
    }
}

fn gone_error(kind: io::ErrorKind) -> io::Error {
    io::Error::new(kind, "the TCP connection's socket loop has stopped")
}

/// Buffers and wakers between the application and the loop.
#[derive(Debug, Default)]
struct Pipe {
    state: Mutex<PipeState>,
}

#[derive(Debug, Default)]
struct PipeState {
    /// Written by the application, not yet taken by the machine.
    send: VecDeque<u8>,
    /// Read from the machine, not yet read by the application.
    recv: VecDeque<u8>,
    /// Everything written was taken and delivered (set by the loop).
    delivered: bool,
    /// The peer closed and everything it sent is in `recv`.
    eof: bool,
    /// The loop stopped (an error, or it finished).
    gone: Option<io::ErrorKind>,
    /// The application dropped its handle.
    dropped: bool,
    wake_pending: bool,
    read_waker: Option<Waker>,
    write_waker: Option<Waker>,
    loop_waker: Option<Waker>,
}

impl PipeState {
    fn wake_loop(&mut self) {
        self.wake_pending = true;
        if let Some(w) = self.loop_waker.take() {
            w.wake();
        }
    }

    fn wake_app(&mut self) {
        for w in [self.read_waker.take(), self.write_waker.take()]
            .into_iter()
            .flatten()
        {
            w.wake();
        }
    }
}

impl Pipe {
    fn lock(&self) -> MutexGuard<'_, PipeState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Loop side: true (and cleared) if the application asked for attention; otherwise
    /// keeps `w` to be woken when it does.
    fn loop_should_wake(&self, w: &Waker) -> bool {
        let mut st = self.lock();
        if std::mem::take(&mut st.wake_pending) {
            return true;
        }
        st.loop_waker = Some(w.clone());
        false
    }

    /// Whether the application's receive buffer has room (else the socket is not read:
    /// TCP's window is the back-pressure).
    fn has_room(&self) -> bool {
        self.lock().recv.len() < APP_BUFFER
    }

    /// Application bytes → machine, machine bytes → application, one lock. Returns whether
    /// the application is gone and everything it wrote was delivered.
    fn exchange<M: ByteStream>(&self, m: &mut M, peer_closed: bool) -> bool {
        let mut st = self.lock();
        let mut progressed = false;
        while !st.send.is_empty() {
            let (a, _) = st.send.as_slices();
            match m.write(a) {
                Ok(n) if n > 0 => {
                    st.send.drain(..n);
                    progressed = true;
                }
                _ => break,
            }
        }
        let mut tmp = [0u8; 16 * 1024];
        let mut drained = true;
        while st.recv.len() < APP_BUFFER {
            match m.read(&mut tmp) {
                Ok(n) if n > 0 => {
                    st.recv.extend(&tmp[..n]);
                    progressed = true;
                }
                _ => break,
            }
            drained = st.recv.len() < APP_BUFFER;
        }
        if peer_closed && drained && !st.eof {
            st.eof = true;
            progressed = true;
        }
        let delivered = st.send.is_empty() && m.all_acked();
        if delivered != st.delivered {
            st.delivered = delivered;
            progressed = true;
        }
        if progressed {
            st.wake_app();
        }
        st.dropped && delivered
    }

    fn stop(&self, kind: io::ErrorKind) {
        let mut st = self.lock();
        st.gone.get_or_insert(kind);
        st.wake_app();
    }
}

/// Marks the stream gone however the loop ends (error, finish, panic).
struct StopOnDrop(Arc<Pipe>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.stop(io::ErrorKind::BrokenPipe);
    }
}

async fn run<R: Runtime, M: Machine + ByteStream>(mut m: M, sock: R::Tcp, pipe: Arc<Pipe>) {
    let _stop = StopOnDrop(Arc::clone(&pipe));
    if let Err(e) = run_loop::<R, M>(&mut m, &sock, &pipe).await {
        tracing::warn!("TCP connection stopped: {e}");
        pipe.stop(e.kind());
    }
}

async fn run_loop<R: Runtime, M: Machine + ByteStream>(
    m: &mut M,
    sock: &R::Tcp,
    pipe: &Pipe,
) -> io::Result<()> {
    let mut io = SocketSide::<R>::default();
    loop {
        let now = Instant::now();
        if m.poll_timeout().is_some_and(|t| t <= now) {
            m.handle_timeout(now);
        }
        // Events only say what the exchange below finds anyway (readable, writable).
        while m.poll_event().is_some() {}
        let done = pipe.exchange(m, io.peer_closed);
        io.out.fill(m, now);
        let blocked = io.out.write(sock.socket())?;
        // The peer's close ends the connection (no half-close yet) once the application
        // has seen the end of the stream.
        let peer_done = io.peer_closed && pipe.lock().eof;
        if (done || peer_done) && io.out.is_empty() && !m.has_transmit() {
            let _ = sock.socket().shutdown(Shutdown::Write);
            return Ok(());
        }
        io.alarm.set(m.poll_timeout());
        let reading = pipe.has_room() && !io.peer_closed;
        io.wait(sock, m, reading, blocked, |w| pipe.loop_should_wake(w))
            .await?;
    }
}

/// A TCP loop's socket side (this loop's and [`crate::tcp_conn`]'s): the read buffer, the
/// machine's output waiting for the socket, whether the peer finished, and the one timer.
pub(crate) struct SocketSide<R: Runtime> {
    pub(crate) buf: ReadBuf,
    /// Machine output the socket has not taken yet.
    pub(crate) out: Output,
    /// A read returned 0: the peer finished its side.
    pub(crate) peer_closed: bool,
    /// The loop's one timer (set at the machine's deadline before each wait).
    pub(crate) alarm: Alarm<R>,
}

impl<R: Runtime> Default for SocketSide<R> {
    fn default() -> Self {
        SocketSide {
            buf: ReadBuf::default(),
            out: Output::default(),
            peer_closed: false,
            alarm: Alarm::default(),
        }
    }
}

impl<R: Runtime> SocketSide<R> {
    /// Waits for the next thing to do, biased: input first (while `reading`, read into
    /// `m`), then output (while `blocked`, written as the socket takes it), then the
    /// application (`app`: whether it asked for attention; it keeps the waker otherwise),
    /// then the timer. Errors are the socket's.
    pub(crate) async fn wait<M: Machine>(
        &mut self,
        sock: &R::Tcp,
        m: &mut M,
        reading: bool,
        blocked: bool,
        mut app: impl FnMut(&Waker) -> bool,
    ) -> io::Result<()> {
        let SocketSide {
            buf,
            out,
            peer_closed,
            alarm,
        } = self;
        std::future::poll_fn(|cx| {
            let now = Instant::now();
            if reading {
                let mut read = |s: &TcpStream| read_into(s, buf, m, now, peer_closed);
                if let Poll::Ready(r) = sock.poll_read_with(cx, &mut read) {
                    return Poll::Ready(r);
                }
            }
            if blocked {
                let mut write = |s: &TcpStream| match out.write(s)? {
                    true => Err(io::ErrorKind::WouldBlock.into()),
                    false => Ok(()),
                };
                if let Poll::Ready(r) = sock.poll_write_with(cx, &mut write) {
                    return Poll::Ready(r);
                }
            }
            if app(cx.waker()) {
                return Poll::Ready(Ok(()));
            }
            alarm.poll(cx).map(Ok)
        })
        .await
    }
}

/// The socket read buffer: reads land in owned memory that the machine keeps slices of
/// (a `StreamLink` queues them, smux hands its payloads up as they are), so the bytes are
/// not copied again between the socket and the application's buffer.
#[derive(Debug, Default)]
pub(crate) struct ReadBuf {
    /// Room for the next reads: an empty view whose spare capacity (not zeroed: see
    /// [`read_uninit`]) the next read fills; what earlier reads filled was split off.
    block: BytesMut,
    /// Used blocks, reused once nothing holds a slice of them.
    pool: BlockPool,
    /// `block` is an allocated block (the default one is empty).
    allocated: bool,
}

impl ReadBuf {
    /// One read from `fd` into the block's spare room (a fresh block once less than
    /// [`MIN_READ`] is left), the bytes read as a chunk of their own.
    fn read(&mut self, fd: impl AsFd) -> io::Result<Bytes> {
        if self.block.capacity() < MIN_READ {
            let used = std::mem::take(&mut self.block);
            // Tracked even when a read filled it to the end (no capacity left in this
            // handle): it still names the block, which the pool gets back whole.
            if std::mem::replace(&mut self.allocated, true) {
                self.pool.recycle(used);
            }
            self.block = self.pool.get(READ_CHUNK);
        }
        let room = self.block.capacity();
        read_uninit(fd, &mut self.block, room)?;
        Ok(self.block.split().freeze())
    }

    /// The pool of used blocks.
    pub(crate) fn pool(&mut self) -> &mut BlockPool {
        &mut self.pool
    }
}

/// Reads up to [`MAX_READS_PER_WAKE`] chunks into the machine: `Err(WouldBlock)` once
/// drained, `Ok` at the peer's close (`peer_closed` set), at the bound (more may wait) or
/// once the machine wants no more input ([`Machine::wants_input`]: the socket is left
/// unread, so TCP's window pushes back on the peer).
pub(crate) fn read_into<M: Machine>(
    r: impl AsFd,
    buf: &mut ReadBuf,
    m: &mut M,
    now: Instant,
    peer_closed: &mut bool,
) -> io::Result<()> {
    for _ in 0..MAX_READS_PER_WAKE {
        if !m.wants_input() {
            return Ok(());
        }
        match buf.read(&r) {
            Ok(c) if c.is_empty() => {
                *peer_closed = true;
                return Ok(());
            }
            Ok(c) => {
                if let Err(e) = m.handle_input_bytes(now, c) {
                    tracing::debug!("dropped TCP input: {e:?}");
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Machine output waiting for the socket, bounded by [`OUT_MAX`]: owned pieces (headers
/// and payloads apart) written with gathered writes, never joined into one buffer.
#[derive(Debug, Default)]
pub(crate) struct Output {
    chunks: VecDeque<Bytes>,
    len: usize,
    scratch: Vec<Bytes>,
}

impl Output {
    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Drains the machine while it has output and the buffer has room.
    pub(crate) fn fill<M: Machine>(&mut self, m: &mut M, now: Instant) {
        while self.len < OUT_MAX && m.has_transmit() {
            let Some(t) = m.poll_transmit_bytes(now, &mut self.scratch) else {
                break;
            };
            self.len += t.len;
            self.chunks
                .extend(self.scratch.drain(..).filter(|c| !c.is_empty()));
        }
    }

    /// Writes until done (`Ok(false)`) or the socket is full (`Ok(true)`).
    pub(crate) fn write(&mut self, mut w: impl Write) -> io::Result<bool> {
        while !self.chunks.is_empty() {
            let mut iov = [IoSlice::new(&[]); MAX_IOV];
            let mut k = 0;
            for (slot, c) in iov.iter_mut().zip(&self.chunks) {
                *slot = IoSlice::new(c);
                k += 1;
            }
            match w.write_vectored(&iov[..k]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => self.consume(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(true),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(false)
    }

    /// Drops the first `n` bytes written.
    fn consume(&mut self, mut n: usize) {
        self.len -= n.min(self.len);
        while n > 0 {
            let Some(c) = self.chunks.front_mut() else {
                return;
            };
            if c.len() <= n {
                n -= c.len();
                self.chunks.pop_front();
            } else {
                c.advance(n);
                n = 0;
            }
        }
    }
}
