//! The four queues: user data in (`send`), in order out (`recv`), and the buffer pool
//! (kcp.md §4, §7).
use std::collections::VecDeque;

use bytes::{Buf, Bytes};

use super::{
    Kcp, KcpFlavor, Payload, RecvError, Seg, SendError, ASK_TELL, IKCP_WND_RCV, MAX_FRAGMENTS,
};

/// Segments of at least this many bytes leave [`Kcp::read_chunk`] as they are (a full
/// segment at any MTU kcp-go allows; a smaller one is worth a copy to save a chunk).
pub const WHOLE_SEGMENT: usize = 512;

/// Largest buffer [`Kcp::read_chunk`] gathers small segments into.
const GATHER_MAX: usize = 64 * 1024;

impl Kcp {
    /// A cleared buffer from the pool, with room for a whole datagram: segments and
    /// datagrams then fill it without reallocating, and it stays small enough for the pool
    /// when it comes back (a buffer grown by doubling past `max_datagram` would be freed and
    /// allocated anew for every segment).
    pub(super) fn take_buf(&mut self) -> Vec<u8> {
        let mut b = self.pool.pop().unwrap_or_default();
        let mtu = self.cfg.mtu as usize;
        if b.capacity() < mtu {
            b.reserve_exact(mtu);
        }
        b
    }

    /// Returns a buffer to the pool. Bounded in count (so a burst does not pin memory forever)
    /// and in capacity: a buffer grown past one datagram is given back to the allocator, and
    /// one too small for a datagram (the empty payload a selectively acked segment leaves
    /// behind, an empty buffer swapped in by a caller) is not kept, since taking it would
    /// allocate anyway (under loss those made the pool allocate for most segments).
    pub(super) fn give_buf(&mut self, mut b: Vec<u8>) {
        let limit = (self.cfg.snd_wnd + self.cfg.rcv_wnd) as usize + 64;
        let fits = (self.cfg.mtu as usize..=self.max_datagram()).contains(&b.capacity());
        if self.pool.len() < limit && fits {
            b.clear();
            self.pool.push(b);
        }
    }

    /// A finished segment's payload: its buffer back to the pool, or its share of an
    /// application chunk released.
    pub(super) fn give_payload(&mut self, p: Payload) {
        if let Some(b) = p.into_buf() {
            self.give_buf(b);
        }
    }

    /// Whether the control block is idle: nothing queued, in flight, unacknowledged,
    /// unread, out of order, waiting to be ACKed or sent, and no probe or flush pending.
    pub fn is_idle(&self) -> bool {
        self.snd_queue.is_empty()
            && self.snd_buf.is_empty()
            && self.rcv_buf.is_empty()
            && self.rcv_queue.is_empty()
            && self.acklist.is_empty()
            && self.out.is_empty()
            && self.events.is_empty()
            && self.probe == 0
            && !self.flush_pending
    }

    /// Gives back the memory of an idle control block ([`Kcp::is_idle`]): the buffer pool,
    /// the queues' capacity and the datagram being built beyond its reserved header space.
    /// Does nothing while the block is busy. The next send or input allocates again; a
    /// session that stays busy keeps its pool and allocates nothing per segment.
    pub fn release_idle(&mut self) {
        if !self.is_idle() {
            return;
        }
        self.pool = Vec::new();
        self.arena = super::arena::RecvArena::default();
        self.snd_queue = VecDeque::new();
        self.snd_buf = VecDeque::new();
        self.rcv_buf = VecDeque::new();
        self.rcv_queue = VecDeque::new();
        self.acklist = Vec::new();
        self.out = VecDeque::new();
        self.events = VecDeque::new();
        self.obuf.shrink_to_fit();
    }

    fn new_seg(&mut self, data: &[u8], frg: u8) -> Seg {
        let mut buf = self.take_buf();
        buf.extend_from_slice(data);
        Seg {
            frg,
            data: Payload::Owned(buf),
            ..Seg::default()
        }
    }

    /// Stream mode (kcp.md §4): tops up the last queued segment, if it is short of `mss`,
    /// with the front of `data`. Returns how many bytes it took. A segment sharing an
    /// application chunk becomes a pooled copy first (at most one segment per write).
    fn merge_into_last(&mut self, data: &[u8]) -> usize {
        let mss = self.mss as usize;
        let room = match self.snd_queue.back() {
            Some(last) if last.data.len() < mss => mss - last.data.len(),
            _ => return 0,
        };
        let extend = room.min(data.len());
        let Some(mut last) = self.snd_queue.pop_back() else {
            return 0;
        };
        let mut buf = match std::mem::take(&mut last.data) {
            Payload::Owned(v) => v,
            Payload::Shared(b) => {
                let mut v = self.take_buf();
                v.extend_from_slice(&b);
                v
            }
        };
        buf.extend_from_slice(&data[..extend]);
        last.data = Payload::Owned(buf);
        self.snd_queue.push_back(last);
        extend
    }

    /// [`Kcp::send`] of an owned chunk as [`Kcp::write`] cuts it (`mss`-sized sends, each
    /// one segment with `frg` 0), without copying it: segments share slices of `data`.
    /// Stream mode first tops up a short last segment (a copy of that piece only), and a
    /// piece shorter than [`WHOLE_SEGMENT`] is copied into a pooled buffer, so small
    /// writes neither pin their chunks nor make the next merge copy twice. The segments
    /// are those `write` would queue for the same bytes (the wire is the same).
    pub(super) fn send_chunk(&mut self, mut data: Bytes) {
        let total = data.len();
        if self.cfg.stream {
            let taken = self.merge_into_last(&data);
            data.advance(taken);
        }
        let mss = self.mss as usize;
        while !data.is_empty() {
            let piece = data.split_to(mss.min(data.len()));
            let seg = if piece.len() < WHOLE_SEGMENT {
                self.new_seg(&piece, 0)
            } else {
                Seg {
                    data: Payload::Shared(piece),
                    ..Seg::default()
                }
            };
            self.snd_queue.push_back(seg);
        }
        self.stats.bytes_sent += total as u64;
    }

    /// kcp-go `Send` (kcp.md §4): queue `data`, merging into the last queued segment in
    /// stream mode and fragmenting (`frg` counting down) in message mode. Returns the number of
    /// bytes queued.
    pub fn send(&mut self, mut data: &[u8]) -> Result<usize, SendError> {
        let total = data.len();
        let ikcp = self.cfg.flavor == KcpFlavor::Ikcp;
        if data.is_empty() && !ikcp {
            return Err(SendError::Empty);
        }
        let mss = self.mss as usize;
        if self.cfg.stream {
            data = &data[self.merge_into_last(data)..];
            if data.is_empty() {
                self.stats.bytes_sent += total as u64;
                return Ok(total);
            }
        }
        let count = data.len().div_ceil(mss).max(1);
        // ikcp.c ikcp_send: `count >= IKCP_WND_RCV` is -2; an empty message is one empty
        // segment (the chunks loop below makes none, so push it here).
        if count > MAX_FRAGMENTS || (ikcp && count >= IKCP_WND_RCV as usize) {
            return Err(SendError::TooLarge(total));
        }
        if data.is_empty() {
            let seg = self.new_seg(data, 0);
            self.snd_queue.push_back(seg);
            return Ok(0);
        }
        for (i, chunk) in data.chunks(mss).enumerate() {
            let frg = if self.cfg.stream {
                0
            } else {
                (count - i - 1) as u8
            };
            let seg = self.new_seg(chunk, frg);
            self.snd_queue.push_back(seg);
        }
        self.stats.bytes_sent += total as u64;
        Ok(total)
    }

    /// kcp-go `PeekSize`: the size of the next complete message, if any.
    pub fn peek_size(&self) -> Option<usize> {
        let head = self.rcv_queue.front()?;
        if head.frg == 0 {
            return Some(head.data.len());
        }
        if self.rcv_queue.len() < head.frg as usize + 1 {
            return None;
        }
        let mut len = 0;
        for seg in &self.rcv_queue {
            len += seg.data.len();
            if seg.frg == 0 {
                break;
            }
        }
        Some(len)
    }

    /// kcp-go `Recv` (kcp.md §7): copies the next message into `buf`.
    ///
    /// In stream mode every segment is a message, so one call returns one segment's bytes;
    /// [`Kcp::recv_stream`] fills a buffer across segments.
    pub fn recv(&mut self, buf: &mut [u8]) -> Result<usize, RecvError> {
        let size = self.peek_size().ok_or(RecvError::WouldBlock)?;
        if size > buf.len() {
            return Err(RecvError::BufferTooSmall { needed: size });
        }
        let recover = self.rcv_queue.len() >= self.cfg.rcv_wnd as usize;
        let mut n = 0;
        while let Some(seg) = self.rcv_queue.pop_front() {
            let last = seg.frg == 0;
            buf[n..n + seg.data.len()].copy_from_slice(&seg.data);
            n += seg.data.len();
            self.give_payload(seg.data);
            if last {
                break;
            }
        }
        self.after_recv(recover, n);
        Ok(n)
    }

    /// Stream-mode read: fills `buf` from as many segments as fit, keeping a partly read
    /// segment for the next call. Returns `WouldBlock` when nothing is queued.
    pub fn recv_stream(&mut self, buf: &mut [u8]) -> Result<usize, RecvError> {
        if self.rcv_queue.is_empty() {
            return Err(RecvError::WouldBlock);
        }
        let recover = self.rcv_queue.len() >= self.cfg.rcv_wnd as usize;
        let mut n = 0;
        while n < buf.len() {
            let Some(seg) = self.rcv_queue.front_mut() else {
                break;
            };
            let take = seg.data.len().min(buf.len() - n);
            buf[n..n + take].copy_from_slice(&seg.data[..take]);
            n += take;
            if take == seg.data.len() {
                if let Some(seg) = self.rcv_queue.pop_front() {
                    self.give_payload(seg.data);
                }
            } else {
                seg.data.advance(take);
            }
        }
        self.after_recv(recover, n);
        if n == 0 && !buf.is_empty() {
            // Only empty segments were queued (kcp-go never sends one, a hostile peer may):
            // they are consumed, and nothing is readable. `Ok(0)` would read as the end of
            // the stream to a caller.
            return Err(RecvError::WouldBlock);
        }
        Ok(n)
    }

    /// Stream-mode read as an owned chunk of at most `max` bytes (never empty), for a
    /// caller that keeps received bytes as chunks (the hub's owned-buffer path, issue 15
    /// item 8): a segment of at least [`WHOLE_SEGMENT`] bytes (or `max`) that fits is handed
    /// over as it is, its buffer becoming the chunk, so its bytes are copied only into the
    /// application's buffer; smaller segments are gathered into one buffer (one copy, as
    /// [`Kcp::recv_stream`]), so tiny segments do not become tiny chunks. `WouldBlock` when
    /// nothing is queued.
    pub fn read_chunk(&mut self, max: usize) -> Result<Bytes, RecvError> {
        if max == 0 || self.rcv_queue.is_empty() {
            return Err(RecvError::WouldBlock);
        }
        if let Some(seg) = self.take_whole_segment(max) {
            return Ok(seg);
        }
        let mut buf = vec![0u8; max.min(GATHER_MAX)];
        let n = self.recv_stream(&mut buf)?;
        buf.truncate(n);
        Ok(Bytes::from(buf))
    }

    /// The next received segment as a chunk of its own, when it is at least
    /// [`WHOLE_SEGMENT`] bytes (or `max`) and fits in `max`; `None` leaves the queue as it
    /// is (the caller gathers small segments with a copy instead).
    pub(crate) fn take_whole_segment(&mut self, max: usize) -> Option<Bytes> {
        let len = self.rcv_queue.front()?.data.len();
        if max == 0 || len > max || len < WHOLE_SEGMENT.min(max) {
            return None;
        }
        let recover = self.rcv_queue.len() >= self.cfg.rcv_wnd as usize;
        let seg = self.rcv_queue.pop_front()?;
        self.after_recv(recover, len);
        Some(seg.data.into_bytes())
    }

    fn after_recv(&mut self, recover: bool, n: usize) {
        self.stats.bytes_received += n as u64;
        self.move_ready_to_queue();
        // kcp.md §7: tell the peer the window reopened.
        if recover && self.rcv_queue.len() < self.cfg.rcv_wnd as usize {
            self.probe |= ASK_TELL;
            self.flush_pending = true;
        }
        if self.rcv_queue.is_empty() || self.peek_size().is_none() {
            self.readable_signalled = false;
        }
    }

    /// Moves in-order segments from `rcv_buf` to `rcv_queue` while the queue has room.
    pub(super) fn move_ready_to_queue(&mut self) {
        while let Some(seg) = self.rcv_buf.front() {
            if seg.sn != self.rcv_nxt || self.rcv_queue.len() >= self.cfg.rcv_wnd as usize {
                break;
            }
            self.rcv_nxt = self.rcv_nxt.wrapping_add(1);
            if let Some(mut seg) = self.rcv_buf.pop_front() {
                self.move_into_arena(&mut seg);
                self.rcv_queue.push_back(seg);
            }
        }
    }

    /// A parked segment that became next in order moves into the receive arena, and its
    /// pooled buffer goes back to the pool: handed to the reader instead, each one left the
    /// pool for good, so every segment parked behind a lost datagram (thousands at a time
    /// behind a dropped GRO batch) cost an allocation, a free and a page fault or two.
    fn move_into_arena(&mut self, seg: &mut Seg) {
        if let Payload::Owned(buf) = &seg.data {
            let copy = Payload::Shared(self.arena.copy(buf, self.max_datagram()));
            let parked = std::mem::replace(&mut seg.data, copy);
            self.give_payload(parked);
        }
    }

    /// kcp-go `wnd_unused`.
    pub(super) fn wnd_unused(&self) -> u16 {
        let q = self.rcv_queue.len();
        let w = self.cfg.rcv_wnd as usize;
        if q < w {
            (w - q) as u16
        } else {
            0
        }
    }
}
