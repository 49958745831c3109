//! The receive path: frames are decoded incrementally from the lower stream and payloads
//! kept in their stream's queue as the lower stream hands them out (slices of a
//! `StreamLink`'s input, not copies). Reading never stops because one stream's
//! reader is slow: per-stream bytes are bounded by the window (a peer past it by more than
//! a frame is a protocol error); only the session-wide bound (xtaci's bucket, §5; the seed's
//! memory cap) or a flood of control answers the peer does not read pauses it.
#![deny(clippy::indexing_slicing, clippy::unwrap_used, clippy::expect_used)]

use crate::driver::{StreamError, StreamEvent, StreamId};
use crate::stack::Lower;

use super::config::Dialect;
use super::decode::Header;
use super::error::SmuxError;
use super::flow::INITIAL_PEER_WINDOW;
use super::frame::{verify_code, Cmd, Upd};
use super::session::{Ids, Smux};

/// Control answers queued (bytes) before the session stops reading: a peer that floods
/// SYNs or probes without reading the answers is pushed back through the lower stream.
const CONTROL_CAP: usize = 64 * 1024;
/// The least a windowed session (v2, seed) buffers before it stops reading (see
/// `Smux::receive_cap`).
pub(crate) const WINDOWED_SESSION_CAP: usize = 64 << 20;
/// Scratch buffer for discarded payloads.
const SCRATCH: usize = 16 * 1024;

/// Where the decoder stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RxState {
    /// Assembling a header.
    Header,
    /// Reading `left` payload bytes into a stream.
    Payload { handle: StreamId, left: usize },
    /// Reading and dropping `left` payload bytes.
    Discard { left: usize },
    /// Reading an UPD's 8 bytes (whatever its length said, §2).
    Upd { sid: u32 },
}

impl Smux {
    /// Whether reading the lower stream is paused (back-pressure, never one slow stream).
    pub(super) fn receive_paused(&self) -> bool {
        self.rx_buffered >= self.receive_cap() || self.ctrl.len() >= CONTROL_CAP
    }

    /// Buffered bytes at which reading pauses. v1 has no per-stream flow control, so its
    /// session bucket (§5) is the back-pressure. In v2 and the seed the windows bound every
    /// stream, and pausing at the bucket can cut the session off from the window updates its
    /// blocked writers wait for: `tether smux` v2 echoing 16 streams × 64 MiB with kcptun's
    /// 4 MiB bucket and 2 MiB windows hung about one run in two. There the cap only bounds
    /// memory, at no less than [`WINDOWED_SESSION_CAP`].
    fn receive_cap(&self) -> usize {
        match self.config.dialect {
            Dialect::V1 => self.config.max_receive_buffer,
            Dialect::V2 | Dialect::Seed => self.config.max_receive_buffer.max(WINDOWED_SESSION_CAP),
        }
    }

    /// Reads and handles frames while the lower stream has bytes and nothing pauses it.
    pub(super) fn receive(&mut self, lower: &mut Lower<'_>) {
        while !self.failed && !self.receive_paused() {
            let r = match self.rx {
                RxState::Header => self.read_header(lower),
                RxState::Payload { handle, left } => self.read_payload(lower, handle, left),
                RxState::Discard { left } => self.read_discard(lower, left),
                RxState::Upd { sid } => self.read_upd(lower, sid),
            };
            match r {
                Ok(true) => {}
                Ok(false) => return,
                Err(e) => {
                    self.lower_ended(e);
                    return;
                }
            }
        }
    }

    /// `Ok(false)`: no more bytes now.
    fn read_header(&mut self, lower: &mut Lower<'_>) -> Result<bool, StreamError> {
        match self.header.read(self.config.dialect, |b| lower.read(b))? {
            None => Ok(false),
            Some(Ok(h)) => {
                self.on_header(h);
                Ok(true)
            }
            Some(Err(e)) => {
                self.fail(e.into());
                Ok(false)
            }
        }
    }

    fn read_payload(
        &mut self,
        lower: &mut Lower<'_>,
        h: StreamId,
        left: usize,
    ) -> Result<bool, StreamError> {
        let Some(s) = self.streams.get_mut(&h).filter(|s| !s.app_closed()) else {
            self.rx = RxState::Discard { left };
            return Ok(true);
        };
        // The payload is kept as the lower stream hands it out (a slice of its buffer when
        // it keeps owned ones): one copy fewer than reading it into a buffer of ours.
        let n = match lower.read_chunk(left, &mut self.rx_room) {
            Ok(c) if c.is_empty() => return Ok(false),
            Ok(c) => {
                let n = c.len().min(left);
                s.recv.push(c.slice(..n));
                n
            }
            Err(StreamError::Blocked) => return Ok(false),
            Err(e) => return Err(e),
        };
        self.rx_buffered += n;
        self.stats.bytes_in += n as u64;
        let left = left - n;
        self.rx = if left == 0 {
            RxState::Header
        } else {
            RxState::Payload { handle: h, left }
        };
        self.signal_readable(h);
        Ok(true)
    }

    fn read_discard(&mut self, lower: &mut Lower<'_>, left: usize) -> Result<bool, StreamError> {
        if self.scratch.is_empty() {
            self.scratch = vec![0; SCRATCH];
        }
        let buf = self
            .scratch
            .get_mut(..left.min(SCRATCH))
            .unwrap_or_default();
        let n = match lower.read(buf) {
            Ok(0) | Err(StreamError::Blocked) => return Ok(false),
            Ok(n) => n,
            Err(e) => return Err(e),
        };
        self.stats.bytes_discarded += n as u64;
        let left = left - n;
        self.rx = if left == 0 {
            RxState::Header
        } else {
            RxState::Discard { left }
        };
        Ok(true)
    }

    fn read_upd(&mut self, lower: &mut Lower<'_>, sid: u32) -> Result<bool, StreamError> {
        while self.upd_have < Upd::SIZE {
            let Some(dst) = self.upd.get_mut(self.upd_have..) else {
                break;
            };
            match lower.read(dst) {
                Ok(0) | Err(StreamError::Blocked) => return Ok(false),
                Ok(n) => self.upd_have += n,
                Err(e) => return Err(e),
            }
        }
        self.upd_have = 0;
        self.rx = RxState::Header;
        if let Ok(u) = Upd::decode(&self.upd) {
            self.on_upd(sid, u);
        }
        Ok(true)
    }

    /// The lower stream ended (the peer closed the connection) or was closed.
    fn lower_ended(&mut self, e: StreamError) {
        if e != StreamError::Finished {
            return; // closed under us: the stack reports the lower layer's Closed
        }
        let handles: Vec<StreamId> = self.streams.keys().copied().collect();
        for h in handles {
            if let Some(s) = self.streams.get_mut(&h) {
                s.fin_recv = true;
            }
            self.signal_readable(h);
        }
        self.fail(SmuxError::PeerClosed);
    }

    fn on_header(&mut self, h: Header) {
        self.stats.frames_in += 1;
        self.keepalive.seen = true;
        match h.cmd {
            Cmd::Syn => self.on_syn(h.sid),
            Cmd::Fin => self.on_fin(h.sid),
            Cmd::Psh => self.on_psh(h.sid, h.length),
            Cmd::Nop => {}
            Cmd::Upd => self.rx = RxState::Upd { sid: h.sid },
            Cmd::Cfm => self.on_cfm(h.sid, h.length),
            Cmd::Vrm => {
                // smux-seed.md §7: answered at any time, nothing else touched.
                let (e1, e2) = verify_code(u16::try_from(h.sid).unwrap_or_default(), h.length);
                self.stats.probes_answered += 1;
                self.ctrl
                    .push(self.config.dialect, Cmd::Vrm, u32::from(e1), e2, &[]);
            }
        }
    }

    /// A peer's SYN: a new stream, a duplicate (ignored), a simultaneous open of the same
    /// seed id (the two streams join, smux-seed.md §3.1), or a refusal (FIN) when the backlog
    /// or `max_streams` is full; the session never stalls on it.
    fn on_syn(&mut self, sid: u32) {
        if self.wire.contains_key(&sid) || self.wait_fin.contains(&sid) {
            return;
        }
        if self.incoming.len() >= self.config.accept_backlog
            || self.streams.len() >= self.config.max_streams
        {
            self.stats.streams_refused += 1;
            self.ctrl.push(self.config.dialect, Cmd::Fin, sid, 0, &[]);
            if let Ids::Seed(ids) = &mut self.ids {
                // Held until the peer answers our FIN, as after any close we start.
                ids.set(u16::try_from(sid).unwrap_or_default());
                self.wait_fin.insert(sid);
            }
            return;
        }
        if let Ids::Seed(ids) = &mut self.ids {
            ids.set(u16::try_from(sid).unwrap_or_default());
        }
        let h = self.create_stream(sid);
        self.incoming.push_back(h);
        self.stats.streams_accepted += 1;
        self.events.push_back(StreamEvent::Opened(h));
    }

    fn on_fin(&mut self, sid: u32) {
        if self.is_seed() {
            self.on_seed_fin(sid);
            return;
        }
        // xtaci: the reader gets the end after draining; the stream stays until closed.
        let Some(h) = self.wired(sid) else {
            return;
        };
        if let Some(s) = self.streams.get_mut(&h) {
            s.fin_recv = true;
        }
        self.signal_readable(h);
    }

    /// The seed's close handshake (smux-seed.md §6), with the passive side freeing its id too.
    fn on_seed_fin(&mut self, sid: u32) {
        let id = u16::try_from(sid).unwrap_or_default();
        if self.wait_fin.remove(&sid) {
            self.free_seed_id(id); // rule 1: our FIN was answered
            return;
        }
        let Some(h) = self.wired(sid) else {
            return;
        };
        self.wire.remove(&sid);
        self.free_seed_id(id);
        let Some(s) = self.streams.get_mut(&h) else {
            return;
        };
        s.wired = false;
        s.fin_recv = true;
        if !s.fin_sent {
            // Rule 2: the peer closed first. Answer; what we had queued would be dropped there.
            s.fin_sent = true;
            s.fin_due = true;
            s.peer_gone = true;
            self.tx_buffered -= s.send.len();
            s.send.clear();
            self.ctrl.push(Dialect::Seed, Cmd::Fin, sid, 0, &[]);
            if std::mem::take(&mut s.want_writable) && !s.app_closed() {
                self.events.push_back(StreamEvent::Writable(h)); // the write now fails
            }
        }
        if s.app_closed() {
            self.forget(h);
        } else {
            self.signal_readable(h);
        }
    }

    fn free_seed_id(&mut self, id: u16) {
        if let Ids::Seed(ids) = &mut self.ids {
            ids.clear(id);
        }
    }

    fn on_psh(&mut self, sid: u32, length: u32) {
        if length == 0 {
            return;
        }
        if self.is_seed() && length as usize > Dialect::Seed.frame_limit() {
            self.fail(SmuxError::OversizePush(length));
            return;
        }
        let left = length as usize;
        let target = self
            .wire
            .get(&sid)
            .and_then(|h| self.streams.get(h))
            .filter(|s| !s.app_closed() && !s.fin_recv);
        let Some(s) = target else {
            self.stats.frames_unknown_stream += 1;
            self.rx = RxState::Discard { left };
            return;
        };
        if let Some(window) = self.recv_window() {
            let buffered = s.recv.len() + left;
            if buffered > window + self.config.dialect.frame_limit() {
                self.fail(SmuxError::WindowExceeded {
                    sid,
                    buffered,
                    window,
                });
                return;
            }
        }
        self.rx = RxState::Payload {
            handle: s.handle,
            left,
        };
    }

    /// The per-stream window the peer must honour: v2 the larger of what we advertise and
    /// the initial 262144 (a peer may send that much before our first UPD); seed ours; v1
    /// none (the session bucket alone bounds it).
    fn recv_window(&self) -> Option<usize> {
        match self.config.dialect {
            Dialect::V1 => None,
            Dialect::V2 => Some(
                self.config
                    .max_stream_buffer
                    .max(INITIAL_PEER_WINDOW as usize),
            ),
            Dialect::Seed => Some(self.config.max_stream_buffer),
        }
    }

    /// The handle of the stream a wire id names; counts frames for unknown ids.
    fn wired(&mut self, sid: u32) -> Option<StreamId> {
        let h = self.wire.get(&sid).copied();
        if h.is_none() {
            self.stats.frames_unknown_stream += 1;
        }
        h
    }

    fn on_upd(&mut self, sid: u32, u: Upd) {
        let Some(h) = self.wired(sid) else {
            return;
        };
        let ok = self
            .streams
            .get_mut(&h)
            .is_none_or(|s| s.send_flow.update(u.consumed, u.window).is_ok());
        if !ok {
            self.fail(SmuxError::Consumed(sid));
            return;
        }
        self.window_opened(h);
    }

    fn on_cfm(&mut self, sid: u32, credit: u32) {
        let Some(h) = self.wired(sid) else {
            return;
        };
        let Some(s) = self.streams.get_mut(&h) else {
            return;
        };
        if let Err(outstanding) = s.send_flow.confirm(credit) {
            self.fail(SmuxError::CfmOverflow {
                sid,
                credit,
                outstanding,
            });
            return;
        }
        self.window_opened(h);
    }
}
