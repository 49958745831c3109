//! One stream's state: its receive buffer, its send queue, its flow-control counters and
//! where it stands in the close handshake.
#![deny(clippy::indexing_slicing, clippy::unwrap_used, clippy::expect_used)]

use std::collections::VecDeque;
use std::time::Instant;

use crate::driver::{StreamError, StreamId};

use super::flow::{RecvFlow, SendFlow};

/// Received bytes not read by the application yet: `buf[at..end]`. Payloads are read from
/// the lower stream straight into it (one copy in), and copied out once by `read`. The
/// vector stays initialised up to its high-water mark, so a fill zeroes only new room, not
/// every piece the lower stream hands over.
#[derive(Debug, Default)]
pub(crate) struct RecvBuf {
    buf: Vec<u8>,
    at: usize,
    end: usize,
}

/// Largest piece read from the lower stream into a receive buffer at once.
const FILL_STEP: usize = 64 * 1024;

impl RecvBuf {
    pub fn len(&self) -> usize {
        self.end - self.at
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Reads at most `max` bytes through `read` into the buffer.
    pub fn fill(
        &mut self,
        max: usize,
        read: impl FnOnce(&mut [u8]) -> Result<usize, StreamError>,
    ) -> Result<usize, StreamError> {
        let want = self.end + max.min(FILL_STEP);
        if self.buf.len() < want {
            self.buf.resize(want, 0);
        }
        let r = read(self.buf.get_mut(self.end..want).unwrap_or_default());
        self.end = (self.end + *r.as_ref().unwrap_or(&0)).min(want);
        r
    }

    /// Copies buffered bytes into `out`.
    pub fn read(&mut self, out: &mut [u8]) -> usize {
        let src = self.buf.get(self.at..self.end).unwrap_or_default();
        let n = src.len().min(out.len());
        if let (Some(d), Some(s)) = (out.get_mut(..n), src.get(..n)) {
            d.copy_from_slice(s);
        }
        self.at += n;
        if self.at == self.end {
            self.at = 0;
            self.end = 0;
            if self.buf.len() > 4 * FILL_STEP {
                self.buf = Vec::new(); // an idle stream keeps little memory
            }
        } else if self.at > self.end / 2 {
            self.buf.copy_within(self.at..self.end, 0);
            self.end -= self.at;
            self.at = 0;
        }
        n
    }

    /// Drops everything (the application closed the stream); returns the bytes dropped.
    pub fn discard(&mut self) -> usize {
        let n = self.len();
        *self = RecvBuf::default();
        n
    }
}

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
    pub recv: RecvBuf,
    pub send: VecDeque<u8>,
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
            recv: RecvBuf::default(),
            send: VecDeque::new(),
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

    /// Whether the application may still write.
    pub fn writable(&self) -> bool {
        !self.fin_due && !self.fin_sent && !self.peer_gone && !self.app_closed()
    }
}
