//! kcp-go `Input` (kcp.md §6).
#![deny(clippy::indexing_slicing, clippy::unwrap_used, clippy::expect_used)]
use std::time::Instant;

use bytes::Bytes;

use super::segment::{Cmd, Header, OVERHEAD};
use super::{InputError, Kcp, KcpFlavor, Payload, Seg, ASK_TELL};
use crate::time::timediff;
use crate::wire::Reader;

/// One datagram for [`Kcp::input_from`].
pub(super) struct Received<'a> {
    /// The KCP bytes (no reserved header).
    pub(super) data: &'a [u8],
    /// A shared buffer `data` lies in: a PUSH segment that is next in order keeps a slice of
    /// it as its payload instead of a copy in the receive arena.
    pub(super) owner: Option<&'a Bytes>,
    /// False for a datagram rebuilt by FEC (see [`Kcp::input`]).
    pub(super) regular: bool,
    /// ACK at once instead of at the next flush.
    pub(super) ack_nodelay: bool,
}

impl Kcp {
    /// kcp-go `Input(data, regular, ackNoDelay)`: processes every segment of one datagram.
    ///
    /// `regular` is false for datagrams rebuilt by FEC: they update neither the remote window
    /// nor the RTT. On an error, segments before the bad one stay processed and the
    /// after-loop steps (RTT, cwnd, flush) are skipped, as in kcp-go (kcp.md §15).
    pub fn input(
        &mut self,
        now: Instant,
        data: &[u8],
        regular: bool,
        ack_nodelay: bool,
    ) -> Result<(), InputError> {
        let rx = Received {
            data,
            owner: None,
            regular,
            ack_nodelay,
        };
        self.input_from(now, rx)
    }

    /// [`Kcp::input`] of `rx`, whose `owner` lets an in-order payload be a slice, not a copy.
    pub(super) fn input_from(&mut self, now: Instant, rx: Received<'_>) -> Result<(), InputError> {
        self.stats.in_pkts += 1;
        self.stats.in_bytes += rx.data.len() as u64;
        let r = self.input_segments(now, rx);
        if r.is_err() {
            self.stats.kcp_in_errors += 1;
            // A datagram that turns bad after some PUSH segments returns early, as kcp-go's
            // Input does, skipping the flushes at its end; the ACKs it queued still count
            // against the bound (found by fuzzing: the list grew past it between flushes).
            if self.acklist.len() > self.ack_limit() {
                self.flush(now, true);
            }
        }
        r
    }

    fn input_segments(&mut self, now: Instant, rx: Received<'_>) -> Result<(), InputError> {
        let Received {
            data,
            owner,
            regular,
            ack_nodelay,
        } = rx;
        if data.len() < OVERHEAD {
            return Err(InputError::TooShort(data.len()));
        }
        if data.len() > self.max_datagram() {
            return Err(InputError::TooLarge {
                len: data.len(),
                max: self.max_datagram(),
            });
        }
        let prev_una = self.snd_una;
        let ikcp = self.cfg.flavor == KcpFlavor::Ikcp;
        let mut maxack: Option<u32> = None;
        let mut latest_ack_ts = None;
        let mut window_slides = false;
        let mut r = Reader::new(data);
        while r.remaining() >= OVERHEAD {
            let h = Header::decode(&mut r).map_err(|_| InputError::Truncated)?;
            if h.conv != self.conv {
                return Err(InputError::ConvMismatch {
                    got: h.conv,
                    want: self.conv,
                });
            }
            let payload = r.take(h.len as usize).map_err(|_| InputError::Truncated)?;
            let cmd = Cmd::from_u8(h.cmd).ok_or(InputError::BadCommand(h.cmd))?;
            // kcp.md §6 step 2: wnd and una of every segment, whatever its kind.
            if regular {
                self.rmt_wnd = h.wnd as u32;
            }
            if self.parse_una(h.una) > 0 {
                window_slides = true;
            }
            if ikcp {
                self.pop_acked_front();
            }
            self.shrink_buf();
            match cmd {
                Cmd::Ack if ikcp => {
                    // ikcp.c: one RTT sample per ACK, the segment unlinked at once, fastack
                    // once per datagram against the largest acked sn.
                    let rtt = timediff(self.clock.ms(now), h.ts);
                    if rtt >= 0 {
                        self.rtt.update_ikcp(rtt, self.cfg.interval);
                    }
                    self.parse_ack(h.sn);
                    self.pop_acked_front();
                    self.shrink_buf();
                    maxack = match maxack {
                        Some(m) if timediff(h.sn, m) <= 0 => Some(m),
                        _ => Some(h.sn),
                    };
                }
                Cmd::Ack => {
                    self.parse_ack(h.sn);
                    self.parse_fastack(h.sn, h.ts);
                    latest_ack_ts = Some(h.ts);
                }
                Cmd::Push => self.on_push(&h, payload, owner, regular),
                Cmd::Wask => self.probe |= ASK_TELL,
                Cmd::Wins => {}
            }
            self.stats.in_segs += 1;
        }
        if ikcp {
            if let Some(m) = maxack {
                self.parse_fastack_ikcp(m);
            }
            // ikcp.c grows cwnd whatever nocwnd says (unused when nocwnd is set).
            if timediff(self.snd_una, prev_una) > 0 {
                self.cw.on_una_advanced(self.mss, self.rmt_wnd);
            }
            // ikcp.c never flushes from ikcp_input: the caller's next ikcp_update does (so
            // quick_recovery does not apply to this flavour).
            self.ack_now = false;
            if self.acklist.len() > self.ack_limit() {
                self.flush(now, true);
            }
            return Ok(());
        }
        self.after_input(now, prev_una, latest_ack_ts, regular);
        let ack_now = std::mem::take(&mut self.ack_now);
        if window_slides || std::mem::take(&mut self.resend_now) {
            self.flush_and_schedule(now);
        } else if (ack_nodelay || ack_now) && !self.acklist.is_empty() {
            self.flush(now, true);
        } else if self.acklist.len() > self.ack_limit() || self.acks_fill_datagram() {
            // Bound the ACK list a peer can grow between flushes; and, as kcp-go after 5.6.1,
            // send ACKs once they fill a datagram (kcp.md §16).
            self.flush(now, true);
        }
        Ok(())
    }

    /// Most ACKs held between flushes before an ACK-only flush is forced.
    fn ack_limit(&self) -> usize {
        2 * self.cfg.rcv_wnd as usize + self.cfg.mtu as usize / OVERHEAD
    }

    /// [`KcpConfig::ack_when_full`](super::KcpConfig::ack_when_full) and a datagram's worth
    /// of ACKs (`mtu / 24`) queued.
    fn acks_fill_datagram(&self) -> bool {
        self.cfg.ack_when_full && self.acklist.len() >= self.cfg.mtu as usize / OVERHEAD
    }

    /// RTT sample from the last ACK, and cwnd growth (kcp.md §6 step 4, §10.1).
    fn after_input(&mut self, now: Instant, prev_una: u32, latest: Option<u32>, regular: bool) {
        if let (Some(ts), true) = (latest, regular) {
            let rtt = timediff(self.clock.ms(now), ts);
            if rtt >= 0 {
                self.rtt.update(rtt, self.cfg.interval);
            }
        }
        if !self.cfg.nocwnd && timediff(self.snd_una, prev_una) > 0 {
            self.cw.on_una_advanced(self.mss, self.rmt_wnd);
        }
    }

    fn on_push(&mut self, h: &Header, payload: &[u8], owner: Option<&Bytes>, regular: bool) {
        let mut repeat = true;
        // kcp.md §15: ACK everything up to the window's end, old duplicates included.
        if timediff(h.sn, self.rcv_nxt.wrapping_add(self.cfg.rcv_wnd)) < 0 {
            self.acklist.push((h.sn, h.ts));
            // A gap before this segment: its ACKs tell the sender at once (quick_recovery).
            self.ack_now |= self.cfg.quick_recovery && timediff(h.sn, self.rcv_nxt) > 0;
            if timediff(h.sn, self.rcv_nxt) >= 0 {
                repeat = self.parse_data(h, payload, owner);
            }
        }
        if regular && repeat {
            self.stats.repeat_segs += 1;
        }
    }

    /// Inserts an in-window segment into `rcv_buf` in sn order; returns true for a duplicate.
    fn parse_data(&mut self, h: &Header, payload: &[u8], owner: Option<&Bytes>) -> bool {
        let sn = h.sn;
        if self.goes_straight_to_reader(sn) {
            // The next segment in order with nothing waiting before it: where inserting it
            // and `move_ready_to_queue` would put it, without touching `rcv_buf`.
            // In order: a slice of the arena's block (arena.rs says why only these), or of
            // the datagram itself when it already lives in one (`handle_shared`).
            let data = match owner {
                Some(owner) if within(owner, payload) => owner.slice_ref(payload),
                _ => self.arena.copy(payload, self.max_datagram()),
            };
            self.rcv_queue
                .push_back(received_seg(h, Payload::Shared(data)));
            self.rcv_nxt = self.rcv_nxt.wrapping_add(1);
            return false;
        }
        let mut insert_at = 0;
        let mut repeat = false;
        for (i, seg) in self.rcv_buf.iter().enumerate().rev() {
            if seg.sn == sn {
                repeat = true;
                break;
            }
            if timediff(sn, seg.sn) > 0 {
                insert_at = i + 1;
                break;
            }
        }
        if !repeat {
            // Parked (or placed) out of order: a pooled buffer of its own.
            let mut buf = self.take_buf();
            buf.extend_from_slice(payload);
            let seg = received_seg(h, Payload::Owned(buf));
            if insert_at == self.rcv_buf.len() {
                self.rcv_buf.push_back(seg);
            } else {
                self.rcv_buf.insert(insert_at, seg);
            }
        }
        self.move_ready_to_queue();
        repeat
    }

    /// Whether a PUSH numbered `sn` would go straight to the receive queue: it is next in
    /// order, nothing waits before it, and the queue has room.
    pub(super) fn goes_straight_to_reader(&self, sn: u32) -> bool {
        sn == self.rcv_nxt
            && self.rcv_buf.is_empty()
            && self.rcv_queue.len() < self.cfg.rcv_wnd as usize
    }

    /// Drops every segment below `una` from `snd_buf`; returns how many went.
    fn parse_una(&mut self, una: u32) -> usize {
        let mut count = 0;
        while let Some(seg) = self.snd_buf.front() {
            if timediff(una, seg.sn) <= 0 {
                break;
            }
            if let Some(seg) = self.snd_buf.pop_front() {
                self.give_payload(seg.data);
            }
            self.peer_acked = true;
            count += 1;
        }
        count
    }

    fn shrink_buf(&mut self) {
        self.snd_una = self.snd_buf.front().map_or(self.snd_nxt, |s| s.sn);
    }

    /// Whether `sn` is in `[snd_una, snd_nxt)`.
    fn in_flight(&self, sn: u32) -> bool {
        timediff(sn, self.snd_una) >= 0 && timediff(sn, self.snd_nxt) < 0
    }

    /// Marks `sn` acked. `snd_buf` holds every sn from `snd_una` to `snd_nxt` in order, so the
    /// segment is found by index instead of kcp-go's scan.
    fn parse_ack(&mut self, sn: u32) {
        if !self.in_flight(sn) {
            return;
        }
        let idx = sn.wrapping_sub(self.snd_una) as usize;
        if let Some(seg) = self.snd_buf.get_mut(idx) {
            if seg.sn == sn && !seg.acked {
                seg.acked = true;
                self.peer_acked = true;
                let data = std::mem::take(&mut seg.data);
                self.give_payload(data);
            }
        }
    }

    /// ikcp.c unlinks an acked segment at once; with `snd_buf` kept contiguous, dropping the
    /// acked segments at its front gives the same `snd_una` (acked ones further in are skipped
    /// by flush, as ikcp's missing ones are).
    fn pop_acked_front(&mut self) {
        while self.snd_buf.front().is_some_and(|s| s.acked) {
            if let Some(seg) = self.snd_buf.pop_front() {
                self.give_payload(seg.data);
            }
        }
    }

    /// ikcp.c `ikcp_parse_fastack` without `IKCP_FASTACK_CONSERVE`: every unacked segment
    /// before `maxack` gets one more fastack, whatever its ts.
    fn parse_fastack_ikcp(&mut self, maxack: u32) {
        if !self.in_flight(maxack) {
            return;
        }
        let mut bumped = false;
        for seg in self.snd_buf.iter_mut() {
            if timediff(maxack, seg.sn) <= 0 {
                break;
            }
            if !seg.acked {
                seg.fastack += 1;
                bumped = true;
            }
        }
        self.fastack_pending |= bumped;
    }

    /// kcp-go `parse_fastack`: every earlier segment sent no later than the acked one gets one
    /// more fastack (kcp.md §6).
    fn parse_fastack(&mut self, sn: u32, ts: u32) {
        if !self.in_flight(sn) {
            return;
        }
        let mut bumped = false;
        for seg in self.snd_buf.iter_mut() {
            if timediff(sn, seg.sn) <= 0 {
                break;
            }
            if timediff(seg.ts, ts) <= 0 {
                seg.fastack += 1;
                bumped |= !seg.acked;
                self.resend_now |= self.cfg.quick_recovery
                    && !seg.acked
                    && self.cfg.resend > 0
                    && seg.fastack == self.cfg.resend;
            }
        }
        self.fastack_pending |= bumped;
    }
}

/// A received PUSH segment holding `data`.
fn received_seg(h: &Header, data: Payload) -> Seg {
    Seg {
        frg: h.frg,
        ts: h.ts,
        sn: h.sn,
        data,
        ..Seg::default()
    }
}

/// Whether `part` lies inside `whole`'s bytes (`Bytes::slice_ref` requires it).
fn within(whole: &Bytes, part: &[u8]) -> bool {
    let (w, p) = (whole.as_ptr() as usize, part.as_ptr() as usize);
    p >= w && p + part.len() <= w + whole.len()
}
