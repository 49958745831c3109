//! Session targets: one datagram at a fresh session, and a scripted exchange between two
//! sessions through a hostile link (loss, duplication, corruption, replay, reordering,
//! forged and oversized datagrams, time jumps).
use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::script::{pattern_bytes, write_len, Fate, Script, StreamCheck};
use super::setup::{setup, Setup};
use crate::driver::Machine;
use crate::kcp::segment::OVERHEAD;
use crate::rng::seeded;
use crate::session::fec::{FEC_HEADER_SIZE_PLUS2, TYPE_DATA};
use crate::session::Session;

/// Datagrams one direction of the link holds; beyond it the oldest is lost.
const LINK_QUEUE: usize = 128;
/// Datagrams kept for replays.
const HISTORY: usize = 32;
/// The conversation both ends use.
const CONV: u32 = 0x0102_0304;

/// Decodes one arbitrary datagram (after the selector byte) at a fresh session of the
/// selected setting, as it is and, where the mode allows, sealed as a peer would send it:
/// no panic, no growth past bounds.
pub fn session_packet(start: Instant, data: &[u8]) {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let setup = setup(sel);
    let mut s = Session::new(CONV, &setup.cfg, start, Box::new(seeded(1)));
    let _ = s.handle_input(start, rest);
    if let Some(sealed) = setup.seal(rest) {
        let _ = s.handle_input(start, &sealed);
    }
    let mut out = Vec::new();
    while s.poll_transmit(start, &mut out).is_some() {
        out.clear();
    }
    while s.poll_event().is_some() {}
    assert!(s.kcp().debug_bounds_ok());
}

/// One end of the fuzzed exchange.
struct End {
    s: Session,
    /// Datagrams it sent, waiting on the link towards the other end.
    out: VecDeque<Vec<u8>>,
    written: u64,
    read: StreamCheck,
    /// Writes and reads alternate between the copying calls and the owned-chunk ones
    /// (`write_chunk`, `read_chunk`), which must give the same bytes on the wire and out.
    turns: u64,
}

impl End {
    /// The client side dials (`Session::client`: it starts the authenticated mode's
    /// handshake); the server side answers (`Session::new`).
    fn new(setup: &Setup, now: Instant, seed: u64, client: bool) -> Self {
        let rng = Box::new(seeded(seed));
        let s = if client {
            Session::client(CONV, &setup.cfg, now, rng)
        } else {
            Session::new(CONV, &setup.cfg, now, rng)
        };
        End {
            s,
            out: VecDeque::new(),
            written: 0,
            read: StreamCheck::default(),
            turns: 0,
        }
    }

    fn write(&mut self, n: usize) {
        self.turns += 1;
        let data = pattern_bytes(self.written, n);
        let r = if self.turns.is_multiple_of(2) {
            self.s.write_chunk(bytes::Bytes::copy_from_slice(data))
        } else {
            self.s.write(data)
        };
        if let Ok(k) = r {
            self.written += k as u64;
        }
    }

    fn read_all(&mut self, strict: bool) {
        self.turns += 1;
        if self.turns.is_multiple_of(2) {
            while let Ok(c) = self.s.read_chunk(4096) {
                assert!(
                    !c.is_empty() && c.len() <= 4096,
                    "read_chunk broke its bounds"
                );
                self.read.check(&c, strict);
            }
            return;
        }
        let mut buf = [0u8; 4096];
        while let Ok(n) = self.s.read(&mut buf) {
            if n == 0 {
                break;
            }
            self.read.check(&buf[..n], strict);
        }
    }

    /// Moves everything the session wants to send onto the link and drains its events.
    fn drain(&mut self, now: Instant) {
        let mut buf = Vec::new();
        while self.s.poll_transmit(now, &mut buf).is_some() {
            if self.out.len() == LINK_QUEUE {
                self.out.pop_front();
            }
            self.out.push_back(std::mem::take(&mut buf));
        }
        assert!(!self.s.has_transmit(), "has_transmit after a full drain");
        while self.s.poll_event().is_some() {}
        assert!(
            self.s.kcp().debug_bounds_ok(),
            "a KCP buffer grew past its bound"
        );
    }

    fn fire(&mut self, now: Instant) {
        if self.s.poll_timeout().is_some_and(|t| t <= now) {
            self.s.handle_timeout(now);
            self.drain(now);
            if let Some(t) = self.s.poll_timeout() {
                assert!(
                    t > now,
                    "deadline not after handle_timeout and a full drain"
                );
            }
        }
    }
}

/// A KCP segment header of the script's choosing (conv forced to ours) announcing and
/// carrying `len` bytes, up to 64 KiB: how an input reaches oversized segments without
/// spelling out their payload.
fn big_segment(s: &mut Script<'_>, fec: bool) -> Vec<u8> {
    let mut head = [0u8; OVERHEAD];
    let t = s.take(OVERHEAD);
    head[..t.len()].copy_from_slice(t);
    head[..4].copy_from_slice(&CONV.to_le_bytes());
    let len = s.u16();
    head[20..24].copy_from_slice(&u32::from(len).to_le_bytes());
    let mut d = Vec::with_capacity(OVERHEAD + usize::from(len) + FEC_HEADER_SIZE_PLUS2);
    if fec {
        // An FEC data shard: seqid, type, size (kcp-go-session.md §4.2).
        d.extend_from_slice(&u32::from(s.byte()).to_le_bytes());
        d.extend_from_slice(&TYPE_DATA.to_le_bytes());
        let size = (OVERHEAD + usize::from(len) + 2).min(usize::from(u16::MAX)) as u16;
        d.extend_from_slice(&size.to_le_bytes());
    }
    d.extend_from_slice(&head);
    d.extend_from_slice(pattern_bytes(0, usize::from(len)));
    d
}

/// Two sessions of the setting the first byte selects (client `a`, server `b`), driven by
/// the rest of the input as a script of ops: writes, reads, link deliveries with a fate each
/// (FEC groups lose shards, datagrams are duplicated, corrupted, truncated, reordered or
/// replayed from history), forged, sealed and 64 KiB datagrams at `b`, and time steps.
/// Checks KCP's bounds, that deadlines move past `now` after `handle_timeout`, and, in the
/// authenticated modes, that every byte read is the byte written at that stream offset.
pub fn session_sequence(start: Instant, data: &[u8]) {
    run_sequence(start, data);
}

/// Stream bytes each end of [`session_sequence`] read (the harness's own tests check that
/// scripts reach delivery in every mode).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Delivered {
    pub(crate) by_client: u64,
    pub(crate) by_server: u64,
}

pub(crate) fn run_sequence(start: Instant, data: &[u8]) -> Delivered {
    let mut s = Script::new(data);
    let setup = setup(s.byte());
    let strict = setup.authenticated();
    let mut a = End::new(setup, start, 1, true);
    let mut b = End::new(setup, start, 2, false);
    let mut history: VecDeque<Vec<u8>> = VecDeque::new();
    let mut now = start;
    while let Some(op) = s.next() {
        match op % 12 {
            0 => a.write(write_len(s.byte())),
            1 => b.write(write_len(s.byte())),
            2 => {
                let fate = Fate::read(&mut s);
                if let Some(d) = a.out.pop_front() {
                    if history.len() == HISTORY {
                        history.pop_front();
                    }
                    history.push_back(d.clone());
                    for d in fate.apply(d) {
                        let _ = b.s.handle_input(now, &d);
                    }
                }
            }
            3 => {
                let fate = Fate::read(&mut s);
                if let Some(d) = b.out.pop_front() {
                    for d in fate.apply(d) {
                        let _ = a.s.handle_input(now, &d);
                    }
                }
            }
            4 => {
                let i = usize::from(s.byte());
                if !history.is_empty() {
                    let d = history[i % history.len()].clone();
                    let _ = b.s.handle_input(now, &d);
                }
            }
            5 => {
                let _ = b.s.handle_input(now, s.datagram());
            }
            6 => {
                if let Some(d) = setup.seal(s.datagram()) {
                    let _ = b.s.handle_input(now, &d);
                }
            }
            7 => {
                let fec = s.byte() & 1 != 0;
                if let Some(d) = setup.seal(&big_segment(&mut s, fec)) {
                    let _ = b.s.handle_input(now, &d);
                }
            }
            8 => now += Duration::from_millis(u64::from(s.byte()) * 8),
            9 => {
                let next = [a.s.poll_timeout(), b.s.poll_timeout()]
                    .into_iter()
                    .flatten()
                    .min();
                if let Some(t) = next {
                    now = now.max(t);
                }
            }
            10 => {
                a.read_all(strict);
                b.read_all(strict);
            }
            _ => {
                if let Some(d) = a.out.pop_front() {
                    a.out.push_back(d);
                }
            }
        }
        a.drain(now);
        b.drain(now);
        a.fire(now);
        b.fire(now);
    }
    a.read_all(strict);
    b.read_all(strict);
    Delivered {
        by_client: a.read.offset,
        by_server: b.read.offset,
    }
}
