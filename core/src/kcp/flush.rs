//! kcp-go `flush` (kcp.md §8): ACKs, window probes, new data and retransmissions, packed into
//! datagrams of at most `mtu` bytes.
use std::collections::VecDeque;
use std::time::Instant;

use super::cwnd::FlushOutcome;
use super::segment::{Cmd, Header, OVERHEAD};
use super::{Kcp, KcpFlavor, Seg, ASK_SEND, ASK_TELL, PROBE_INIT, PROBE_LIMIT};
use crate::time::timediff;
use crate::wire::Writer;

/// Retransmissions of one flush, by cause.
#[derive(Default)]
struct Resends {
    lost: u64,
    fast: u64,
    early: u64,
}

impl Kcp {
    /// Pops the next datagram produced by a flush, appending it to `buf`. Returns its length.
    pub fn pop_output(&mut self, buf: &mut Vec<u8>) -> Option<usize> {
        let d = self.out.pop_front()?;
        buf.extend_from_slice(&d);
        let n = d.len();
        self.give_buf(d);
        Some(n)
    }

    /// Pops the next datagram produced by a flush as an owned buffer, without copying it
    /// (the session layer seals it in place). Hand the buffer back with [`Kcp::recycle`].
    pub fn pop_output_owned(&mut self) -> Option<Vec<u8>> {
        self.out.pop_front()
    }

    /// Takes back a buffer from [`Kcp::pop_output_owned`] for the next datagram (bounded
    /// like KCP's own pool).
    pub fn recycle(&mut self, b: Vec<u8>) {
        self.give_buf(b);
    }

    /// An empty buffer from KCP's pool, with room for a datagram of `mtu` bytes: the
    /// session layer's parity datagrams borrow from it when its own pool runs dry, rather
    /// than allocating (the buffers come back through [`Kcp::recycle`]).
    pub fn spare_buf(&mut self) -> Vec<u8> {
        let mut b = self.take_buf();
        b.clear();
        b
    }

    /// Datagrams waiting for [`Kcp::pop_output`].
    pub fn queued_output(&self) -> usize {
        self.out.len()
    }

    /// kcp-go `flush(ackOnly)`: writes ACKs, probes and due data into datagrams (read them with
    /// [`Kcp::pop_output`]) and returns kcp-go's delay until the next flush, in ms.
    pub fn flush(&mut self, now: Instant, ack_only: bool) -> u32 {
        let current = self.clock.ms(now);
        let mut tmpl = Header {
            conv: self.conv,
            cmd: Cmd::Ack as u8,
            wnd: self.wnd_unused(),
            una: self.rcv_nxt,
            ..Header::default()
        };
        self.write_acks(&mut tmpl);
        if ack_only {
            self.emit_rest();
            return self.cfg.interval;
        }
        self.update_probe(current);
        self.write_probes(&mut tmpl);
        let cwnd_eff = self.effective_window();
        let new_segs = self.move_to_snd_buf(cwnd_eff);
        let resent = if self.cfg.resend > 0 {
            self.cfg.resend
        } else {
            u32::MAX
        };
        let (resends, minrto) = self.write_data(current, &tmpl, new_segs, resent);
        self.emit_rest();
        self.count_resends(&resends);
        if !self.cfg.nocwnd {
            self.cw.after_flush(FlushOutcome {
                fast_or_early: resends.fast + resends.early,
                lost: resends.lost,
                inflight: self.snd_nxt.wrapping_sub(self.snd_una),
                cwnd_eff,
                resent,
                mss: self.mss,
            });
        }
        minrto
    }

    /// kcp.md §8.1: ACKs in arrival order, keeping only those still out of order plus the
    /// last one.
    fn write_acks(&mut self, tmpl: &mut Header) {
        let acks = std::mem::take(&mut self.acklist);
        let last = acks.len().wrapping_sub(1);
        for (i, &(sn, ts)) in acks.iter().enumerate() {
            self.make_space(OVERHEAD);
            // ikcp.c writes every entry.
            if timediff(sn, self.rcv_nxt) >= 0 || i == last || self.cfg.flavor == KcpFlavor::Ikcp {
                tmpl.sn = sn;
                tmpl.ts = ts;
                self.write_header(tmpl);
            }
        }
        let mut acks = acks;
        acks.clear();
        self.acklist = acks;
    }

    /// kcp.md §8.2: zero-window probe timers.
    fn update_probe(&mut self, current: u32) {
        if self.rmt_wnd != 0 {
            self.ts_probe = 0;
            self.probe_wait = 0;
            return;
        }
        if self.probe_wait == 0 {
            self.probe_wait = PROBE_INIT;
            self.ts_probe = current.wrapping_add(self.probe_wait);
        } else if timediff(current, self.ts_probe) >= 0 {
            self.probe_wait = self.probe_wait.max(PROBE_INIT);
            self.probe_wait += self.probe_wait / 2;
            self.probe_wait = self.probe_wait.min(PROBE_LIMIT);
            self.ts_probe = current.wrapping_add(self.probe_wait);
            self.probe |= ASK_SEND;
        }
    }

    /// WASK then WINS; their sn/ts are whatever the last written ACK left in the template.
    fn write_probes(&mut self, tmpl: &mut Header) {
        if self.probe & ASK_SEND != 0 {
            tmpl.cmd = Cmd::Wask as u8;
            self.make_space(OVERHEAD);
            self.write_header(tmpl);
        }
        if self.probe & ASK_TELL != 0 {
            tmpl.cmd = Cmd::Wins as u8;
            self.make_space(OVERHEAD);
            self.write_header(tmpl);
        }
        self.probe = 0;
    }

    /// kcp.md §5: assigns sequence numbers to queued segments while the window allows.
    fn move_to_snd_buf(&mut self, cwnd_eff: u32) -> usize {
        let mut n = 0;
        while timediff(self.snd_nxt, self.snd_una.wrapping_add(cwnd_eff)) < 0 {
            let Some(mut seg) = self.snd_queue.pop_front() else {
                break;
            };
            seg.sn = self.snd_nxt;
            self.snd_nxt = self.snd_nxt.wrapping_add(1);
            self.snd_buf.push_back(seg);
            n += 1;
        }
        n
    }

    /// kcp.md §8.3: first transmissions and retransmissions in kcp-go's decision order.
    /// Also records the earliest pending retransmission and whether any fastack is pending,
    /// which the driver uses to sleep exactly until the next useful flush.
    fn write_data(
        &mut self,
        current: u32,
        tmpl: &Header,
        new_segs: usize,
        resent: u32,
    ) -> (Resends, u32) {
        let mut rs = Resends::default();
        let mut minrto = self.cfg.interval as i32;
        let rx_rto = self.rtt.rto;
        let nodelay = self.cfg.nodelay;
        let ikcp = self.cfg.flavor == KcpFlavor::Ikcp;
        let mut bufs = std::mem::take(&mut self.snd_buf);
        if !self.resend_heap.fresh(current) {
            self.resend_heap.rebuild(&bufs, current);
        }
        // Segments sent before this flush are visited only when one of them may matter.
        let skip = if self.sent_segments_idle(current) {
            bufs.len().saturating_sub(new_segs)
        } else {
            0
        };
        #[cfg(test)]
        PARTIAL_PASSES.with(|n| n.set(n.get() + u64::from(skip > 0)));
        let mut earliest: Option<u32> = None;
        let mut fastack_pending = false;
        for seg in bufs.iter_mut().skip(skip) {
            if seg.acked {
                continue;
            }
            let send = if ikcp {
                decide_ikcp(seg, current, rx_rto, resent, nodelay, &mut rs)
            } else {
                decide_kcp_go(seg, current, rx_rto, new_segs, resent, nodelay, &mut rs)
            };
            if send {
                self.write_segment(seg, current, tmpl);
            }
            fastack_pending |= seg.fastack > 0;
            earliest = Some(match earliest {
                Some(e) if timediff(e, seg.resendts) <= 0 => e,
                _ => seg.resendts,
            });
            let d = timediff(seg.resendts, current);
            if d > 0 && d < minrto {
                minrto = d;
            }
        }
        self.earliest_resend = self.earliest_after_pass(&bufs, skip > 0, earliest, current);
        self.snd_buf = bufs;
        self.fastack_pending = fastack_pending;
        (rs, minrto as u32)
    }

    /// The earliest retransmission time after a pass that found `walked` among the segments
    /// it visited: a partial pass saw only the new segments, and the heap knows the rest;
    /// after a full pass both must agree (checked in debug builds). Rebuilds the heap once
    /// stale entries pile up.
    fn earliest_after_pass(
        &mut self,
        bufs: &VecDeque<Seg>,
        partial: bool,
        walked: Option<u32>,
        current: u32,
    ) -> Option<u32> {
        let from_heap = (partial || cfg!(debug_assertions))
            .then(|| self.resend_heap.earliest(bufs, self.snd_una));
        let earliest = match from_heap {
            Some(h) if partial => h,
            Some(h) => {
                debug_assert_eq!(h, walked, "resend heap out of step with snd_buf");
                walked
            }
            None => walked,
        };
        if self.resend_heap.oversized(bufs.len()) {
            self.resend_heap.rebuild(bufs, current);
        }
        earliest
    }

    /// Sends `seg` (taken out of `snd_buf`) in the datagram being built, and records when it
    /// is due again.
    fn write_segment(&mut self, seg: &mut Seg, current: u32, tmpl: &Header) {
        seg.xmit += 1;
        seg.ts = current;
        let h = Header {
            conv: self.conv,
            cmd: Cmd::Push as u8,
            frg: seg.frg,
            wnd: tmpl.wnd,
            ts: current,
            sn: seg.sn,
            una: tmpl.una,
            len: seg.data.len() as u32,
        };
        self.make_space(OVERHEAD + seg.data.len());
        self.write_header(&h);
        self.obuf.extend_from_slice(&seg.data);
        if seg.unanswered >= self.cfg.dead_link {
            self.dead = true;
        }
        self.resend_heap.push(seg.resendts, seg.sn);
    }

    /// Whether no segment sent before this flush can go out in it or bring kcp-go's next
    /// flush nearer than one interval: none has a fastack (so no fast or early
    /// retransmission), and the earliest retransmission time found by the last pass is at
    /// least an interval away (ACKs since can only have removed segments, so it is a lower
    /// bound). Then the pass over `snd_buf` visits only this flush's new segments, and the
    /// resend heap supplies the earliest retransmission time: the flush sends, counts and
    /// returns exactly what a pass over every segment would (`kcp::tests::
    /// partial_flush_passes_send_what_full_passes_send`). With thousands of segments in
    /// flight and ACKs arriving every `mtu / 24` segments (`ack_when_full`), a bulk sender
    /// flushes on every ACK that slides its window (kcp.md §6 step 4); a whole pass each
    /// time is what those flushes would otherwise cost.
    fn sent_segments_idle(&self, current: u32) -> bool {
        #[cfg(test)]
        if FULL_PASSES.with(std::cell::Cell::get) {
            return false;
        }
        !self.fastack_pending
            && self
                .earliest_resend
                .is_none_or(|e| timediff(e, current) >= self.cfg.interval as i32)
    }

    fn count_resends(&mut self, rs: &Resends) {
        let s = &mut self.stats;
        s.lost_segs += rs.lost;
        s.fast_retrans_segs += rs.fast;
        s.early_retrans_segs += rs.early;
        s.retrans_segs += rs.lost + rs.fast + rs.early;
    }

    fn write_header(&mut self, h: &Header) {
        h.encode(&mut Writer::new(&mut self.obuf));
        self.stats.out_segs += 1;
    }

    /// Starts a fresh datagram with the reserved header space zeroed.
    pub(super) fn reset_obuf(&mut self) {
        let mut b = self.take_buf();
        b.resize(self.cfg.reserved as usize, 0);
        self.obuf = b;
    }

    /// Emits the current datagram first if `need` more bytes would overflow the MTU.
    fn make_space(&mut self, need: usize) {
        if self.obuf.len() + need > self.cfg.mtu as usize {
            self.emit();
        }
    }

    /// Emits whatever the current datagram holds beyond the reserved space.
    fn emit_rest(&mut self) {
        if self.obuf.len() > self.cfg.reserved as usize {
            self.emit();
        }
    }

    fn emit(&mut self) {
        let fresh = {
            let mut b = self.take_buf();
            b.resize(self.cfg.reserved as usize, 0);
            b
        };
        let d = std::mem::replace(&mut self.obuf, fresh);
        self.stats.out_pkts += 1;
        self.stats.out_bytes += d.len() as u64;
        self.out.push_back(d);
    }
}

#[cfg(test)]
thread_local! {
    /// Tests: visit every sent segment on each flush, to compare with the partial passes.
    pub(super) static FULL_PASSES: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    /// Tests: flushes that skipped segments sent earlier.
    pub(super) static PARTIAL_PASSES: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// kcp-go's retransmission decision for one unacked segment (kcp.md §8.3): first
/// transmission, fast, early, timeout; every send resets fastack and re-arms `rto` later.
fn decide_kcp_go(
    seg: &mut Seg,
    current: u32,
    rx_rto: u32,
    new_segs: usize,
    resent: u32,
    nodelay: bool,
    rs: &mut Resends,
) -> bool {
    let send = if seg.xmit == 0 {
        seg.rto = rx_rto;
        seg.unanswered += 1;
        true
    } else if seg.fastack >= resent {
        seg.rto = rx_rto;
        rs.fast += 1;
        true
    } else if seg.fastack > 0 && new_segs == 0 {
        seg.rto = rx_rto;
        rs.early += 1;
        true
    } else if timediff(current, seg.resendts) >= 0 {
        seg.rto += if nodelay { rx_rto / 2 } else { rx_rto };
        seg.unanswered += 1;
        rs.lost += 1;
        true
    } else {
        false
    };
    if send {
        seg.fastack = 0;
        seg.resendts = current.wrapping_add(seg.rto);
    }
    send
}

/// ikcp.c's decision (`ikcp_flush`; kcp.md §8.3 "ikcp differs"): first transmission (with
/// `rx_rto >> 3` extra slack when nodelay is off), then timeout (backoff `rto += max(rto,
/// rx_rto)`, or `rto / 2` with nodelay), then fast retransmit while the segment was sent at
/// most `IKCP_FASTACK_LIMIT` times. No early retransmit; a timeout keeps fastack.
fn decide_ikcp(
    seg: &mut Seg,
    current: u32,
    rx_rto: u32,
    resent: u32,
    nodelay: bool,
    rs: &mut Resends,
) -> bool {
    if seg.xmit == 0 {
        seg.rto = rx_rto;
        seg.unanswered += 1;
        let rtomin = if nodelay { 0 } else { rx_rto >> 3 };
        seg.resendts = current.wrapping_add(seg.rto).wrapping_add(rtomin);
        true
    } else if timediff(current, seg.resendts) >= 0 {
        let step = if nodelay {
            seg.rto / 2
        } else {
            seg.rto.max(rx_rto)
        };
        seg.rto = seg.rto.wrapping_add(step);
        seg.resendts = current.wrapping_add(seg.rto);
        seg.unanswered += 1;
        rs.lost += 1;
        true
    } else if seg.fastack >= resent && seg.xmit <= IKCP_FASTACK_LIMIT {
        seg.fastack = 0;
        seg.resendts = current.wrapping_add(seg.rto);
        rs.fast += 1;
        true
    } else {
        false
    }
}

/// ikcp.c's `IKCP_FASTACK_LIMIT`: no fast retransmit of a segment already sent more often.
const IKCP_FASTACK_LIMIT: u32 = 5;
