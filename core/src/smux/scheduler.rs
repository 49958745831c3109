//! The fair write scheduler: control frames (SYN, UPD, CFM, NOP, refusals, FIN answers, VRM
//! answers) go first; then data, round-robin over the streams with something to send, one
//! frame per stream per turn, so a busy stream cannot starve another (smux 1.5.16's shaper
//! heap only approximates this, smux-xtaci.md §7). A stream's FIN is a data-class frame sent
//! once its queue is empty, so it never overtakes its own PSH frames.
#![deny(clippy::indexing_slicing, clippy::unwrap_used, clippy::expect_used)]

use crate::driver::{Bytes, StreamError, StreamEvent, StreamId};
use crate::stack::Lower;

use super::config::Dialect;
use super::decode::encode;
use super::frame::Cmd;
use super::session::Smux;
use super::stream::Stream;

/// Encoded control frames waiting for the lower stream, in order.
#[derive(Debug, Default)]
pub(crate) struct Control {
    bytes: Vec<u8>,
    frames: u64,
}

impl Control {
    /// Appends one frame (header and a payload of at most 8 bytes).
    pub fn push(&mut self, dialect: Dialect, cmd: Cmd, sid: u32, length: u32, payload: &[u8]) {
        let mut head = [0u8; 8];
        self.bytes
            .extend_from_slice(encode(dialect, cmd, sid, length, &mut head));
        self.bytes.extend_from_slice(payload);
        self.frames += 1;
    }

    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }
}

/// What a stream's turn produced.
enum Turn {
    /// A frame went out.
    Sent,
    /// The lower stream takes nothing now.
    Blocked,
    /// The stream has nothing it may send (empty, or its window is shut).
    Idle,
}

impl Smux {
    /// Writes control frames, then data round-robin, until the lower stream pushes back.
    pub(super) fn send(&mut self, lower: &mut Lower<'_>) {
        while self.flush_control(lower) {
            let Some(h) = self.ready.pop_front() else {
                return;
            };
            match self.turn(lower, h) {
                Turn::Sent => {
                    if let Some(s) = self.streams.get_mut(&h) {
                        s.ready = false;
                    }
                    self.make_ready(h);
                }
                Turn::Blocked => {
                    self.ready.push_front(h);
                    return;
                }
                Turn::Idle => {
                    if let Some(s) = self.streams.get_mut(&h) {
                        s.ready = false;
                    }
                }
            }
        }
    }

    /// Writes every queued control frame; `false` when the lower stream refused them.
    pub(super) fn flush_control(&mut self, lower: &mut Lower<'_>) -> bool {
        if self.ctrl.is_empty() {
            return true;
        }
        if lower.write_frame(&[&self.ctrl.bytes]).is_err() {
            return false;
        }
        self.stats.frames_out += std::mem::take(&mut self.ctrl.frames);
        self.ctrl.bytes.clear();
        true
    }

    /// Puts a stream in the round-robin if it has a frame it may send.
    pub(super) fn make_ready(&mut self, h: StreamId) {
        let Some(s) = self.streams.get_mut(&h) else {
            return;
        };
        if !s.ready && !self.failed && sendable(s) {
            s.ready = true;
            self.ready.push_back(h);
        }
    }

    /// One frame of stream `h`: a PSH from its queue, or its FIN once the queue is empty.
    fn turn(&mut self, lower: &mut Lower<'_>, h: StreamId) -> Turn {
        let max_frame = self.config.max_frame_size;
        let dialect = self.config.dialect;
        let Some(s) = self.streams.get_mut(&h) else {
            return Turn::Idle;
        };
        if !s.send.is_empty() {
            let n = s.send.len().min(max_frame).min(s.send_flow.window());
            if n == 0 {
                return Turn::Idle; // the window is shut: a UPD / CFM brings it back
            }
            let mut head = [0u8; 8];
            let head = encode(dialect, Cmd::Psh, s.sid, n as u32, &mut head);
            // The payload as the queue's chunks hold it: no copy, even across chunks.
            let mut body = std::mem::take(&mut self.frame_body);
            s.send.take_chunks(n, &mut body);
            let r = lower.write_frame_bytes(head, &body);
            if r.is_err() {
                s.send.unpop_chunks(&mut body);
            }
            body.clear();
            self.frame_body = body;
            if r.is_err() {
                return Turn::Blocked;
            }
            self.tx_buffered -= n;
            self.sent_psh(h, n);
            self.wake_writer(h);
            return Turn::Sent;
        }
        if s.fin_due && !s.fin_sent {
            let mut head = [0u8; 8];
            let head = encode(dialect, Cmd::Fin, s.sid, 0, &mut head);
            if lower.write_frame(&[head]).is_err() {
                return Turn::Blocked;
            }
            s.fin_sent = true;
            // Acknowledged like data: a flush after the FIN waits for it.
            s.unacked = true;
            self.unacked.insert(h);
            self.stats.frames_out += 1;
            if s.app_closed() {
                self.forget(h);
            }
            return Turn::Sent;
        }
        Turn::Idle
    }

    /// Bookkeeping of a PSH of `n` bytes written for stream `h`.
    fn sent_psh(&mut self, h: StreamId, n: usize) {
        self.stats.frames_out += 1;
        self.stats.bytes_out += n as u64;
        if let Some(s) = self.streams.get_mut(&h) {
            s.send_flow.sent(n);
            s.unacked = true;
            self.unacked.insert(h);
        }
    }

    /// Reports `Writable` to a writer that was refused, once its queue has room.
    fn wake_writer(&mut self, h: StreamId) {
        let cap = self.send_cap();
        if let Some(s) = self.streams.get_mut(&h) {
            if s.want_writable && s.send.len() < cap {
                s.want_writable = false;
                self.events.push_back(StreamEvent::Writable(h));
            }
        }
    }

    /// Writes `data` on `h` straight into the lower stream, frame by frame, while its window
    /// and the lower stream allow; returns the bytes written.
    pub(super) fn write_direct(
        &mut self,
        lower: &mut Lower<'_>,
        h: StreamId,
        data: &[u8],
    ) -> usize {
        self.frames_direct(
            h,
            data.len(),
            |lower, head, from, to| {
                lower.write_frame(&[head, data.get(from..to).unwrap_or_default()])
            },
            lower,
        )
    }

    /// [`Smux::write_direct`] of an owned chunk: each frame's payload is a slice of it.
    pub(super) fn write_direct_bytes(
        &mut self,
        lower: &mut Lower<'_>,
        h: StreamId,
        data: Bytes,
    ) -> usize {
        self.frames_direct(
            h,
            data.len(),
            |lower, head, from, to| lower.write_frame_bytes(head, &[data.slice(from..to)]),
            lower,
        )
    }

    /// Frames `len` bytes on `h` while its window and the lower stream allow: `write`
    /// writes one frame (its header and the payload range); returns the bytes written.
    fn frames_direct(
        &mut self,
        h: StreamId,
        len: usize,
        mut write: impl FnMut(&mut Lower<'_>, &[u8], usize, usize) -> Result<(), StreamError>,
        lower: &mut Lower<'_>,
    ) -> usize {
        let max_frame = self.config.max_frame_size;
        let dialect = self.config.dialect;
        let mut done = 0;
        while done < len {
            let Some(s) = self.streams.get(&h) else {
                break;
            };
            let n = (len - done).min(max_frame).min(s.send_flow.window());
            if n == 0 {
                break;
            }
            let mut head = [0u8; 8];
            let head = encode(dialect, Cmd::Psh, s.sid, n as u32, &mut head);
            if write(lower, head, done, done + n).is_err() {
                break;
            }
            self.sent_psh(h, n);
            done += n;
        }
        done
    }

    /// Wakes writers after a window update, and schedules the stream.
    pub(super) fn window_opened(&mut self, h: StreamId) {
        self.make_ready(h);
    }
}

/// Whether a stream has a frame it may send now.
fn sendable(s: &Stream) -> bool {
    if s.send.is_empty() {
        s.fin_due && !s.fin_sent
    } else {
        s.send_flow.window() > 0
    }
}
