//! The 24-byte KCP segment header (kcp.md §1, §2).
#![deny(clippy::indexing_slicing, clippy::unwrap_used, clippy::expect_used)]
use crate::wire::{DecodeError, Reader, Writer};

/// Header size of every segment (`IKCP_OVERHEAD`).
pub const OVERHEAD: usize = 24;

/// Segment commands (kcp.md §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Cmd {
    /// Data segment (81).
    Push = 81,
    /// Acknowledges one sn, echoing its ts (82).
    Ack = 82,
    /// Window probe: "tell me your window" (83).
    Wask = 83,
    /// Window tell (84).
    Wins = 84,
}

impl Cmd {
    /// Decodes a command byte; `None` for anything outside 81..=84.
    pub fn from_u8(v: u8) -> Option<Cmd> {
        match v {
            81 => Some(Cmd::Push),
            82 => Some(Cmd::Ack),
            83 => Some(Cmd::Wask),
            84 => Some(Cmd::Wins),
            _ => None,
        }
    }
}

/// A decoded segment header. `cmd` is kept raw so that the caller decides what an unknown
/// command means (kcp.md §6: -3 at that segment).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Header {
    /// Conversation id.
    pub conv: u32,
    /// Raw command byte.
    pub cmd: u8,
    /// Fragment counter (message mode).
    pub frg: u8,
    /// Sender's free receive window, in segments.
    pub wnd: u16,
    /// Timestamp (send time, or echoed send time in an ACK).
    pub ts: u32,
    /// Sequence number.
    pub sn: u32,
    /// Sender's `rcv_nxt`: cumulative acknowledgement.
    pub una: u32,
    /// Number of data bytes that follow.
    pub len: u32,
}

impl Header {
    /// Decodes one header from the front of `r`.
    pub fn decode(r: &mut Reader<'_>) -> Result<Header, DecodeError> {
        Ok(Header {
            conv: r.u32_le()?,
            cmd: r.u8()?,
            frg: r.u8()?,
            wnd: r.u16_le()?,
            ts: r.u32_le()?,
            sn: r.u32_le()?,
            una: r.u32_le()?,
            len: r.u32_le()?,
        })
    }

    /// Appends the 24-byte encoding.
    pub fn encode(&self, w: &mut Writer<'_>) {
        // Built on the stack and appended at once: one capacity check per header instead of
        // eight (flush writes one per segment).
        let mut h = [0u8; OVERHEAD];
        let fields: [&[u8]; 8] = [
            &self.conv.to_le_bytes(),
            &[self.cmd],
            &[self.frg],
            &self.wnd.to_le_bytes(),
            &self.ts.to_le_bytes(),
            &self.sn.to_le_bytes(),
            &self.una.to_le_bytes(),
            &self.len.to_le_bytes(),
        ];
        let mut at = 0;
        for f in fields {
            if let Some(dst) = h.get_mut(at..at + f.len()) {
                dst.copy_from_slice(f);
            }
            at += f.len();
        }
        w.bytes(&h);
    }
}

/// Iterates the segments of one datagram: `(header, data)` pairs, stopping with an error at
/// the first segment whose `len` overruns the datagram. Trailing bytes shorter than a header
/// are ignored (kcp.md §1.1).
pub fn segments(datagram: &[u8]) -> impl Iterator<Item = Result<(Header, &[u8]), DecodeError>> {
    let mut r = Reader::new(datagram);
    let mut failed = false;
    std::iter::from_fn(move || {
        if failed || r.remaining() < OVERHEAD {
            return None;
        }
        let item = Header::decode(&mut r).and_then(|h| {
            let data = r.take(h.len as usize)?;
            Ok((h, data))
        });
        failed = item.is_err();
        Some(item)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    // kcp.md §1.2 worked example.
    #[test]
    fn worked_example_round_trips() {
        let h = Header {
            conv: 0x1122_3344,
            cmd: Cmd::Push as u8,
            frg: 0,
            wnd: 512,
            ts: 0x36,
            sn: 0,
            una: 0,
            len: 1,
        };
        let mut buf = Vec::new();
        h.encode(&mut Writer::new(&mut buf));
        buf.push(b'A');
        let want = "44332211510000023600000000000000000000000100000041";
        assert_eq!(hex::encode(&buf), want);
        let segs: Vec<_> = segments(&buf).collect();
        assert_eq!(segs, vec![Ok((h, &b"A"[..]))]);
    }

    #[test]
    fn overrun_stops_iteration() {
        let mut buf = Vec::new();
        Header {
            len: 100,
            ..Default::default()
        }
        .encode(&mut Writer::new(&mut buf));
        let segs: Vec<_> = segments(&buf).collect();
        assert_eq!(segs.len(), 1);
        assert!(segs[0].is_err());
    }
}
