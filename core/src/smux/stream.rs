//! One stream's state: its receive buffer and send queue (owned chunks: a payload read
//! from the lower stream is kept, not copied; a written chunk is framed as it is), its flow-control counters and
//! where it stands in the close handshake.
#![deny(clippy::indexing_slicing, clippy::unwrap_used, clippy::expect_used)]

use std::time::Instant;

use crate::chunks::ChunkQueue;
use crate::driver::StreamId;

use super::flow::{RecvFlow, SendFlow};

/// Where a stream's application handle stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Linger {
    /// The application holds the stream.
    Held,
    /// Dropped; the linger clock starts at the next pump (which knows `now`).
    Requested,
    /// Dropped: flush until this instant, then FIN regardless.
    Until(Instant),
    /// The linger ran out: the queue was dropped, only the FIN is left.
    Expired,
}

/// One stream (see the module docs).
#[derive(Debug)]
pub(crate) struct Stream {
    /// The application's handle (seed: generation << 16 | id).
    pub handle: StreamId,
    /// The wire id (xtaci sid, seed u16 id).
    pub sid: u32,
    /// Whether the wire id still maps to this stream (seed: false after the FIN handshake).
    pub wired: bool,
    pub recv: ChunkQueue,
    pub send: ChunkQueue,
    pub send_flow: SendFlow,
    pub recv_flow: RecvFlow,
    /// The peer's FIN arrived: reads end once `recv` is drained.
    pub fin_recv: bool,
    /// The application finished (or closed): a FIN follows the queued data.
    pub fin_due: bool,
    /// Our FIN was written (seed: also set when the peer's FIN was answered).
    pub fin_sent: bool,
    /// The seed peer closed first: writes fail from now on.
    pub peer_gone: bool,
    pub linger: Linger,
    /// The stream is in the scheduler's round-robin.
    pub ready: bool,
    pub readable_signalled: bool,
    pub want_writable: bool,
    /// Frames were written since the last `Acknowledged`.
    pub unacked: bool,
}

impl Stream {
    pub fn new(handle: StreamId, sid: u32, send_flow: SendFlow) -> Stream {
        Stream {
            handle,
            sid,
            wired: true,
            recv: ChunkQueue::default(),
            send: ChunkQueue::default(),
            send_flow,
            recv_flow: RecvFlow::default(),
            fin_recv: false,
            fin_due: false,
            fin_sent: false,
            peer_gone: false,
            linger: Linger::Held,
            ready: false,
            readable_signalled: false,
            want_writable: false,
            unacked: false,
        }
    }

    /// Whether the application dropped the stream.
    pub fn app_closed(&self) -> bool {
        self.linger != Linger::Held
    }

    /// Whether nothing written waits in the stream (its FIN included).
    pub fn flushed(&self) -> bool {
        self.send.is_empty() && (!self.fin_due || self.fin_sent)
    }

    /// Drops the unread bytes (the application closed the stream); returns how many.
    pub fn discard_recv(&mut self) -> usize {
        let n = self.recv.len();
        self.recv = ChunkQueue::default();
        n
    }

    /// Whether the application may still write.
    pub fn writable(&self) -> bool {
        !self.fin_due && !self.fin_sent && !self.peer_gone && !self.app_closed()
    }
}
