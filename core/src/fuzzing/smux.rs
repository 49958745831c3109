//! smux targets: header decoding per dialect, and two smux sessions over an in-memory byte
//! pipe driven by a script of application calls, deliveries in arbitrary chunks, time jumps
//! and hostile bytes injected into either direction.
use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::script::{pattern_bytes, write_len, Script, StreamCheck};
use crate::driver::{Machine, StreamId, Streams};
use crate::smux::frame::{Cmd, SeedHeader, Upd, XtaciHeader};
use crate::smux::{Dialect, Smux, SmuxConfig};
use crate::stack::{Side, Stack};
use crate::stream_link::{StreamLink, StreamLinkConfig};

/// Decodes a run of headers of the selected dialect (first byte: 0 = seed, 1 = v1, 2 = v2),
/// skipping PSH payloads as a session would: no panic, and every decoded header encodes back
/// to the same bytes.
pub fn smux_frame_decode(data: &[u8]) {
    let Some((&sel, mut rest)) = data.split_first() else {
        return;
    };
    match sel % 3 {
        0 => {
            while let Ok(h) = SeedHeader::decode(rest) {
                assert_eq!(rest.get(..SeedHeader::SIZE), Some(&h.to_bytes()[..]));
                let payload = if h.cmd == Cmd::Psh {
                    h.length as usize
                } else {
                    0
                };
                let Some(tail) = rest.get(SeedHeader::SIZE.saturating_add(payload)..) else {
                    return;
                };
                rest = tail;
            }
        }
        version => {
            while let Ok(h) = XtaciHeader::decode(rest, version) {
                assert_eq!(rest.get(..XtaciHeader::SIZE), Some(&h.to_bytes()[..]));
                let payload = match h.cmd {
                    Cmd::Psh => usize::from(h.length),
                    Cmd::Upd => {
                        let body = rest.get(XtaciHeader::SIZE..).unwrap_or_default();
                        if let Ok(u) = Upd::decode(body) {
                            assert_eq!(body.get(..Upd::SIZE), Some(&u.to_bytes()[..]));
                        }
                        Upd::SIZE
                    }
                    _ => 0,
                };
                let Some(tail) = rest.get(XtaciHeader::SIZE + payload..) else {
                    return;
                };
                rest = tail;
            }
        }
    }
}

/// Small bounds, so a script reaches them.
fn config(sel: u8) -> SmuxConfig {
    let mut c = match sel % 3 {
        0 => SmuxConfig::seed(),
        1 => SmuxConfig::xtaci(1),
        _ => SmuxConfig::xtaci(2),
    };
    c.accept_backlog = 4;
    c.max_streams = 16;
    if c.dialect != Dialect::Seed {
        c.max_receive_buffer = 64 * 1024;
        c.max_stream_buffer = 16 * 1024;
        c.max_frame_size = 4096;
        c.keepalive_interval = Some(Duration::from_secs(1));
        c.keepalive_timeout = Duration::from_secs(3);
    }
    c
}

/// Streams bound: live streams at most `max_streams`; buffered bytes within what the config
/// allows (every stream's window or send queue, the session bucket, and one frame of slack
/// per stream).
fn assert_bounded(s: &Stack<StreamLink, Smux>, c: &SmuxConfig) {
    let smux = s.upper();
    assert!(
        smux.live_streams() <= c.max_streams + c.accept_backlog,
        "{} live streams past the bound",
        smux.live_streams()
    );
    let per_stream = c.max_stream_buffer.max(512 * 1024) + 2 * 65_536;
    let bound = c.max_receive_buffer + (c.max_streams + c.accept_backlog) * per_stream;
    assert!(
        smux.buffered() <= bound,
        "{} bytes buffered past the bound {bound}",
        smux.buffered()
    );
}

/// One end: its stack, the streams the application holds, what it wrote and read on each.
struct End {
    s: Stack<StreamLink, Smux>,
    held: Vec<StreamId>,
    written: Vec<u64>,
    read: Vec<StreamCheck>,
    /// Bytes it sent, not yet delivered to the other end.
    out: VecDeque<u8>,
}

impl End {
    fn new(c: &SmuxConfig, side: Side) -> End {
        let link = StreamLinkConfig {
            recv_buffer: 32 * 1024,
            send_buffer: 32 * 1024,
        };
        End {
            s: Stack::new(StreamLink::new(link), Smux::new(c.clone(), side)),
            held: Vec::new(),
            written: Vec::new(),
            read: Vec::new(),
            out: VecDeque::new(),
        }
    }

    fn hold(&mut self, id: StreamId) {
        self.held.push(id);
        self.written.push(0);
        self.read.push(StreamCheck::default());
    }

    fn flush(&mut self, now: Instant) {
        let mut buf = Vec::new();
        while self.s.has_transmit() {
            buf.clear();
            if self.s.poll_transmit(now, &mut buf).is_none() {
                break;
            }
            self.out.extend(&buf);
        }
        // Events are not needed: accept ops take opened streams from the machine's backlog.
        while self.s.poll_event().is_some() {}
    }

    fn write(&mut self, i: usize, len: usize) {
        let Some(&id) = self.held.get(i) else { return };
        let off = self.written[i];
        if let Ok(n) = self.s.write(id, pattern_bytes(off, len)) {
            self.written[i] += n as u64;
        }
    }

    fn read(&mut self, i: usize, strict: bool) {
        let Some(&id) = self.held.get(i) else { return };
        let mut buf = [0u8; 4096];
        // Until blocked, finished, or gone.
        while let Ok(n) = self.s.read(id, &mut buf) {
            self.read[i].check(&buf[..n], strict);
        }
    }
}

/// Delivers up to `n` bytes of `from`'s output to `to`, respecting `wants_input`.
fn deliver(from: &mut End, to: &mut End, now: Instant, n: usize) {
    let mut chunk = Vec::new();
    while chunk.len() < n && to.s.wants_input() {
        let take = (n - chunk.len()).min(from.out.len()).min(4096);
        if take == 0 {
            break;
        }
        chunk.clear();
        chunk.extend(from.out.drain(..take));
        let _ = to.s.handle_input(now, &chunk);
    }
}

/// Two sessions of one dialect (first byte) over a byte pipe, a client and a server, driven
/// by the script; bytes read are checked against what was written while no hostile byte
/// was injected; bounds hold throughout.
pub fn smux_session(start: Instant, data: &[u8]) {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let c = config(sel);
    let mut script = Script::new(rest);
    let mut ends = [End::new(&c, Side::Client), End::new(&c, Side::Server)];
    let mut now = start;
    // Hostile bytes break the framing: from then on stream contents are not checked.
    let mut strict = true;
    while let Some(op) = script.next() {
        let side = usize::from(op >> 7);
        let [a, b] = &mut ends;
        let (me, other) = if side == 0 { (a, b) } else { (b, a) };
        match op & 0x7F {
            0..=19 => deliver(other, me, now, usize::from(script.u16())),
            20..=29 => {
                if let Ok(id) = me.s.open_stream() {
                    me.hold(id);
                }
            }
            30..=34 => {
                while let Some(id) = me.s.accept_stream() {
                    me.hold(id);
                }
            }
            35..=69 => {
                let i = usize::from(script.byte());
                let len = write_len(script.byte());
                me.write(i % me.held.len().max(1), len);
            }
            70..=94 => {
                let i = usize::from(script.byte());
                me.read(i % me.held.len().max(1), strict);
            }
            95..=99 => {
                if let Some(&id) = me
                    .held
                    .get(usize::from(script.byte()) % me.held.len().max(1))
                {
                    let _ = me.s.finish(id);
                }
            }
            100..=104 => {
                let i = usize::from(script.byte()) % me.held.len().max(1);
                if i < me.held.len() {
                    let id = me.held.remove(i);
                    me.written.remove(i);
                    me.read.remove(i);
                    me.s.close_stream(id);
                }
            }
            105..=114 => {
                now += Duration::from_millis(u64::from(script.u16()));
                for e in ends.iter_mut() {
                    e.s.handle_timeout(now);
                }
            }
            115..=121 => {
                // Hostile bytes straight into this end's input.
                strict = false;
                let junk = script.datagram();
                if me.s.wants_input() {
                    let _ = me.s.handle_input(now, junk);
                }
            }
            _ => {
                // Hostile bytes appended to the other end's output towards this one.
                strict = false;
                other.out.extend(script.datagram());
            }
        }
        for e in ends.iter_mut() {
            e.flush(now);
            assert_bounded(&e.s, &c);
        }
    }
}
