//! Frame headers of both smux dialects: xtaci/smux's 8-byte header (smux-xtaci.md §1–2) and
//! the seed's 7-byte header (smux-seed.md §1–2), plus the seed's `verifyCode` (§7.1).
//!
//! Decoding never panics: a header is parsed from at least its fixed size, and a command the
//! dialect does not know is an error value (the session ends with a protocol error).
#![deny(clippy::indexing_slicing, clippy::unwrap_used, clippy::expect_used)]

use crate::wire::{Reader, Writer};

/// A frame command. The numeric values differ per dialect ([`Cmd::xtaci`], [`Cmd::seed`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Cmd {
    /// Open a stream (both dialects, value 0).
    Syn,
    /// Close a stream (both dialects, value 1).
    Fin,
    /// Data (both dialects, value 2).
    Psh,
    /// Keepalive (xtaci 3; no payload, sid 0).
    Nop,
    /// Window update (xtaci v2, 4): 8 bytes `consumed u32 LE · window u32 LE`.
    Upd,
    /// Flow-control credit (seed 3): `length` = bytes the peer's application read.
    Cfm,
    /// "Are you smux?" probe and answer (seed 4): `id`/`length` carry the challenge.
    Vrm,
}

impl Cmd {
    /// The xtaci command for a wire value (smux-xtaci.md §2): `None` for > 4.
    pub fn xtaci(v: u8) -> Option<Cmd> {
        Some(match v {
            0 => Cmd::Syn,
            1 => Cmd::Fin,
            2 => Cmd::Psh,
            3 => Cmd::Nop,
            4 => Cmd::Upd,
            _ => return None,
        })
    }

    /// The seed command for a wire value (smux-seed.md §2): `None` for > 4 (\[HEAD\]'s PIN, 5,
    /// is not part of the seed dialect).
    pub fn seed(v: u8) -> Option<Cmd> {
        Some(match v {
            0 => Cmd::Syn,
            1 => Cmd::Fin,
            2 => Cmd::Psh,
            3 => Cmd::Cfm,
            4 => Cmd::Vrm,
            _ => return None,
        })
    }

    /// The xtaci wire value; `None` for seed-only commands.
    pub fn xtaci_value(self) -> Option<u8> {
        Some(match self {
            Cmd::Syn => 0,
            Cmd::Fin => 1,
            Cmd::Psh => 2,
            Cmd::Nop => 3,
            Cmd::Upd => 4,
            Cmd::Cfm | Cmd::Vrm => return None,
        })
    }

    /// The seed wire value; `None` for xtaci-only commands.
    pub fn seed_value(self) -> Option<u8> {
        Some(match self {
            Cmd::Syn => 0,
            Cmd::Fin => 1,
            Cmd::Psh => 2,
            Cmd::Cfm => 3,
            Cmd::Vrm => 4,
            Cmd::Nop | Cmd::Upd => return None,
        })
    }
}

/// Why a frame header was refused: each is a protocol violation that ends the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The xtaci version byte differs from the session's (smux-xtaci.md §2).
    #[error("smux version {got} from the peer, this session speaks {want}: set the same --smuxver on both ends")]
    Version {
        /// The version byte received.
        got: u8,
        /// The session's version.
        want: u8,
    },
    /// A command value the dialect does not have.
    #[error("unknown smux command {0}: the peer speaks another smux dialect or version")]
    UnknownCmd(u8),
    /// Fewer bytes than a header (only when the caller asked to decode a short buffer).
    #[error("truncated smux frame header: read more bytes before decoding")]
    Truncated,
}

/// An xtaci/smux frame header (smux-xtaci.md §1): `ver u8 · cmd u8 · length u16 LE · sid u32
/// LE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct XtaciHeader {
    /// Protocol version: 1 or 2.
    pub version: u8,
    /// Command.
    pub cmd: Cmd,
    /// Payload length (for UPD the receiver reads 8 bytes whatever this says, §2).
    pub length: u16,
    /// Stream id (0 for NOP).
    pub sid: u32,
}

impl XtaciHeader {
    /// Header size.
    pub const SIZE: usize = 8;

    /// Decodes the first [`XtaciHeader::SIZE`] bytes of `buf`, checking the version against
    /// `want_version` and the command against the xtaci set.
    pub fn decode(buf: &[u8], want_version: u8) -> Result<XtaciHeader, FrameError> {
        let mut r = Reader::new(buf);
        let (Ok(version), Ok(cmd), Ok(length), Ok(sid)) = (r.u8(), r.u8(), r.u16_le(), r.u32_le())
        else {
            return Err(FrameError::Truncated);
        };
        if version != want_version {
            return Err(FrameError::Version {
                got: version,
                want: want_version,
            });
        }
        let cmd = Cmd::xtaci(cmd).ok_or(FrameError::UnknownCmd(cmd))?;
        Ok(XtaciHeader {
            version,
            cmd,
            length,
            sid,
        })
    }

    /// Appends the header to `out`. A seed-only command (never built by the xtaci session) is
    /// written as NOP's value so the encoder stays total.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let mut w = Writer::new(out);
        w.u8(self.version);
        w.u8(self.cmd.xtaci_value().unwrap_or(3));
        w.u16_le(self.length);
        w.u32_le(self.sid);
    }

    /// The header as an array (for vectored writes: header and payload without a copy).
    pub fn to_bytes(&self) -> [u8; XtaciHeader::SIZE] {
        let mut v = Vec::with_capacity(XtaciHeader::SIZE);
        self.encode(&mut v);
        let mut out = [0u8; XtaciHeader::SIZE];
        for (d, s) in out.iter_mut().zip(v) {
            *d = s;
        }
        out
    }
}

/// The payload of an xtaci v2 UPD frame (smux-xtaci.md §4.2): 8 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Upd {
    /// Bytes the peer's application has read on the stream (wrapping u32).
    pub consumed: u32,
    /// The peer's receive window (its MaxStreamBuffer).
    pub window: u32,
}

impl Upd {
    /// Payload size.
    pub const SIZE: usize = 8;

    /// Decodes the 8-byte payload.
    pub fn decode(buf: &[u8]) -> Result<Upd, FrameError> {
        let mut r = Reader::new(buf);
        match (r.u32_le(), r.u32_le()) {
            (Ok(consumed), Ok(window)) => Ok(Upd { consumed, window }),
            _ => Err(FrameError::Truncated),
        }
    }

    /// The 8-byte payload.
    pub fn to_bytes(&self) -> [u8; Upd::SIZE] {
        let c = self.consumed.to_le_bytes();
        let w = self.window.to_le_bytes();
        [c[0], c[1], c[2], c[3], w[0], w[1], w[2], w[3]]
    }
}

/// A seed-dialect frame header (smux-seed.md §1): `cmd u8 · id u16 LE · length u32 LE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeedHeader {
    /// Command.
    pub cmd: Cmd,
    /// Stream id (a random challenge for VRM).
    pub id: u16,
    /// PSH: payload size; CFM: credited bytes; VRM: the second challenge word; else 0.
    pub length: u32,
}

impl SeedHeader {
    /// Header size.
    pub const SIZE: usize = 7;

    /// Decodes the first [`SeedHeader::SIZE`] bytes of `buf`.
    pub fn decode(buf: &[u8]) -> Result<SeedHeader, FrameError> {
        let mut r = Reader::new(buf);
        let (Ok(cmd), Ok(id), Ok(length)) = (r.u8(), r.u16_le(), r.u32_le()) else {
            return Err(FrameError::Truncated);
        };
        let cmd = Cmd::seed(cmd).ok_or(FrameError::UnknownCmd(cmd))?;
        Ok(SeedHeader { cmd, id, length })
    }

    /// Appends the header to `out` (an xtaci-only command is written as VRM's value, never
    /// built by the seed session).
    pub fn encode(&self, out: &mut Vec<u8>) {
        let mut w = Writer::new(out);
        w.u8(self.cmd.seed_value().unwrap_or(4));
        w.u16_le(self.id);
        w.u32_le(self.length);
    }

    /// The header as an array.
    pub fn to_bytes(&self) -> [u8; SeedHeader::SIZE] {
        let id = self.id.to_le_bytes();
        let len = self.length.to_le_bytes();
        let cmd = self.cmd.seed_value().unwrap_or(4);
        [cmd, id[0], id[1], len[0], len[1], len[2], len[3]]
    }
}

/// The seed's `verifyCode` exactly as upstream computes it (smux-seed.md §7.1), bug included:
/// the top nibble of `v1` is lost and the answer's low nibble is always 0; `v2`'s bytes
/// B1 B2 B3 B4 become B1 B4 B2 B3.
pub fn verify_code(v1: u16, v2: u32) -> (u16, u32) {
    let out1 = ((v1 & 0x00FF) << 8) | ((v1 & 0x0F00) >> 4);
    let out2 = (v2 & 0xFF00_0000)
        | ((v2 & 0x00FF_0000) >> 8)
        | ((v2 & 0x0000_FF00) >> 8)
        | ((v2 & 0x0000_00FF) << 16);
    (out1, out2)
}

#[cfg(test)]
#[path = "frame_tests.rs"]
mod tests;
