//! Moving one stream's bytes between the hub and a connection's [`Streams`]: the part of a
//! socket loop's pass that the UDP driver ([`crate::driver`]) and the TCP connection loop
//! ([`crate::tcp_conn`]) share, so a stream ends, half-closes and lingers the same way over
//! KCP and over TCP.
use std::net::SocketAddr;

use std::cell::RefCell;

use tether_core::driver::{read_chunk_with, Bytes, BytesMut, StreamError, StreamId, Streams};
use tether_core::session::SessionId;

use crate::hub::{HubState, Shutdown, StreamBuf, StreamKey, RECV_BUFFER};

/// Application bytes → stream `sid`, the half-close once they are all in, and received
/// bytes → the application (stream mode). Returns whether anything moved.
pub(crate) fn exchange<C: Streams + ?Sized>(
    s: &mut StreamBuf,
    conn: &mut C,
    sid: StreamId,
) -> bool {
    s.writes.clear();
    let mut progressed = write_stream(s, conn, sid);
    progressed |= finish_if_asked(s, conn, sid);
    progressed | fill_recv_chunks(s, |max| with_room(|room| conn.read_chunk(sid, max, room)))
}

thread_local! {
    /// The room a stack without owned buffers (a KCP session) reads into
    /// ([`read_chunk_with`]): one block per socket-loop thread, refilled in place once the
    /// chunks split off it are gone, so a read costs neither an allocation nor zeroing.
    static ROOM: RefCell<BytesMut> = RefCell::new(BytesMut::new());
}

/// Runs `f` with this thread's read room.
fn with_room<T>(f: impl FnOnce(&mut BytesMut) -> T) -> T {
    ROOM.with(|r| f(&mut r.borrow_mut()))
}

/// App bytes → stream `sid` of the stack in owned chunks of up to 64 KiB (kcp-go's
/// `Write`), as much of each as the stack takes: a stack that queues chunks (smux) keeps
/// them without a copy.
fn write_stream<C: Streams + ?Sized>(s: &mut StreamBuf, conn: &mut C, sid: StreamId) -> bool {
    let mut progressed = false;
    while let Some(chunk) = s.send.pop_chunk(64 * 1024) {
        match conn.write_chunk(sid, chunk.clone()) {
            Ok(k) if k > 0 => {
                progressed = true;
                // The rest is offered again at once: the stack's `Blocked` on it is what
                // promises the `Writable` that resumes this stream.
                if k < chunk.len() {
                    s.send.push_front(chunk.slice(k..));
                }
            }
            _ => {
                s.send.push_front(chunk);
                break;
            }
        }
    }
    progressed
}

/// The application's `poll_shutdown`, once every byte it queued is in the stack:
/// `Streams::finish`. `Blocked` is retried on the next pump (the stream's `Writable`).
pub(crate) fn finish_if_asked<C: Streams + ?Sized>(
    s: &mut StreamBuf,
    conn: &mut C,
    sid: StreamId,
) -> bool {
    if s.shutdown != Shutdown::Requested || !s.send.is_empty() {
        return false;
    }
    s.shutdown = match conn.finish(sid) {
        Ok(()) => Shutdown::Done,
        Err(StreamError::Blocked) => return false,
        Err(StreamError::Unsupported) => Shutdown::Unsupported,
        // Already finished, closed or gone: nothing more can be written either way.
        Err(_) => Shutdown::Done,
    };
    true
}

/// Received bytes → the application's buffer while it has room; the stack's `Finished`
/// marks the end of the stream (everything before it is in the buffer). `read` is a read
/// into a buffer (in KCP message mode, the session's read of one message); see
/// [`fill_recv_chunks`].
pub(crate) fn fill_recv(
    s: &mut StreamBuf,
    mut read: impl FnMut(&mut [u8]) -> Result<usize, StreamError>,
) -> bool {
    fill_recv_chunks(s, |max| {
        with_room(|room| read_chunk_with(max, room, &mut read))
    })
}

/// [`fill_recv`] from a stack that hands out owned chunks (`Streams::read_chunk`): a
/// multiplexer's received payloads land in the hub as they are, and are copied once, into
/// the application's buffer (issue 15 item 8).
pub(crate) fn fill_recv_chunks(
    s: &mut StreamBuf,
    mut read: impl FnMut(usize) -> Result<Bytes, StreamError>,
) -> bool {
    if s.eof {
        return false;
    }
    let mut moved = false;
    while s.recv.len() < RECV_BUFFER {
        match read(RECV_BUFFER - s.recv.len()) {
            Ok(c) if c.is_empty() => break,
            Ok(c) => {
                s.push_received(c);
                moved = true;
            }
            Err(StreamError::Finished) => {
                s.eof = true;
                return true;
            }
            Err(_) => break,
        }
    }
    moved
}

/// After a stream's bytes moved: refreshes "unacknowledged" (`all_acked` is the stack's
/// word for the stream), wakes the application when something changed, and forgets a
/// dropped stream whose bytes are all in the stack. Returns `true` for a forgotten stream:
/// the caller then closes it in the stack (`Streams::close_stream`: the core lingers until
/// it is acknowledged, bounded by its `LINGER_TIMEOUT`, the same on every runtime).
pub(crate) fn settle(st: &mut HubState, key: StreamKey, progressed: bool, all_acked: bool) -> bool {
    let HubState {
        streams, blocks, ..
    } = st;
    let Some(s) = streams.get_mut(&key) else {
        return false;
    };
    let unacked = !s.send.is_empty() || !all_acked;
    let changed = unacked != s.unacked;
    s.unacked = unacked;
    if progressed || changed || !s.recv.is_empty() {
        s.wake();
    }
    if s.dropped && s.send.is_empty() {
        st.forget_stream(key);
        return true;
    }
    s.release_buffers(blocks);
    false
}

/// The streams to pump besides `sid` on `Acknowledged(sid)` of connection `id`: every other
/// stream of the connection still waiting for acknowledgements. A stack's per-stream
/// `all_acked` includes its lower machine's (one KCP window for all streams), and a
/// multiplexer reports `Acknowledged` only for streams that wrote since their last one: a
/// stream whose bytes were acknowledged while another stream's were not yet would
/// otherwise never hear of it, and its flush would wait forever. (Empty, so
/// allocation-free, for a plain session's sole stream.)
pub(crate) fn also_acknowledged(st: &HubState, id: SessionId, sid: StreamId) -> Vec<StreamKey> {
    let range = (id, StreamId(0))..=(id, StreamId(u32::MAX));
    let waiting = st
        .streams
        .range(range)
        .filter(|(k, s)| s.unacked && k.1 != sid);
    waiting.map(|(k, _)| *k).collect()
}

/// What a socket loop does with a connection after [`serve_conn`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ConnVerdict {
    /// Nothing to do.
    Keep,
    /// The handle asked for the connection to close now (`ConnectionHandle::close`).
    CloseNow,
    /// The handle and all its streams are dropped: close once everything is acknowledged.
    CloseWhenAcked,
}

/// Serves connection `id`'s handle: opens the streams it asked for (a refusal, or a
/// connection already gone, answers the `open_stream` call with the error), and says
/// whether the connection should close.
pub(crate) fn serve_conn<C: Streams + ?Sized>(
    st: &mut HubState,
    id: SessionId,
    peer: Option<SocketAddr>,
    mut conn: Option<&mut C>,
) -> ConnVerdict {
    let Some(q) = st.conns.get_mut(&id) else {
        return ConnVerdict::Keep;
    };
    let opens = std::mem::take(&mut q.opens);
    let close_now = std::mem::take(&mut q.close_requested);
    for _ in 0..opens {
        let r = match conn.as_deref_mut() {
            Some(c) => c.open_stream(),
            None => Err(StreamError::Closed),
        };
        if let Ok(sid) = r {
            let mut buf = StreamBuf::default();
            buf.peer = peer;
            st.streams.insert((id, sid), buf);
        }
        if let Some(q) = st.conns.get_mut(&id) {
            q.opened_local(r);
        }
    }
    if close_now {
        return ConnVerdict::CloseNow;
    }
    let range = (id, StreamId(0))..=(id, StreamId(u32::MAX));
    let dropped = st.conns.get(&id).is_some_and(|q| q.dropped);
    if dropped && st.streams.range(range).next().is_none() {
        st.conns.remove(&id);
        return ConnVerdict::CloseWhenAcked;
    }
    ConnVerdict::Keep
}

#[cfg(test)]
#[path = "pump_tests.rs"]
mod tests;
