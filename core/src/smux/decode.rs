//! The incremental frame-header reader: assembles a header from however the lower stream
//! chunks its bytes and decodes it for the session's dialect. Panic-free by construction.
#![deny(clippy::indexing_slicing, clippy::unwrap_used, clippy::expect_used)]

use crate::driver::StreamError;

use super::config::Dialect;
use super::frame::{Cmd, FrameError, SeedHeader, XtaciHeader};

/// A decoded header of either dialect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Header {
    pub cmd: Cmd,
    /// xtaci sid, or the seed's u16 id (VRM: the first challenge word).
    pub sid: u32,
    /// Payload length (seed CFM: credit; VRM: the second challenge word).
    pub length: u32,
}

/// Bytes of the header being assembled.
#[derive(Debug, Default)]
pub(crate) struct HeaderReader {
    buf: [u8; XtaciHeader::SIZE],
    have: usize,
}

/// Header size of a dialect.
pub(crate) fn header_size(dialect: Dialect) -> usize {
    if dialect.is_xtaci() {
        XtaciHeader::SIZE
    } else {
        SeedHeader::SIZE
    }
}

impl HeaderReader {
    /// Reads through `read` until a header is complete. `Ok(None)`: the lower stream has no
    /// more bytes now; `Err(StreamError)`: it ended or closed.
    pub fn read(
        &mut self,
        dialect: Dialect,
        mut read: impl FnMut(&mut [u8]) -> Result<usize, StreamError>,
    ) -> Result<Option<Result<Header, FrameError>>, StreamError> {
        let size = header_size(dialect);
        while self.have < size {
            let Some(dst) = self.buf.get_mut(self.have..size) else {
                break;
            };
            match read(dst) {
                Ok(0) | Err(StreamError::Blocked) => return Ok(None),
                Ok(n) => self.have += n,
                Err(e) => return Err(e),
            }
        }
        self.have = 0;
        Ok(Some(decode(
            dialect,
            self.buf.get(..size).unwrap_or_default(),
        )))
    }
}

/// Decodes one complete header.
pub(crate) fn decode(dialect: Dialect, buf: &[u8]) -> Result<Header, FrameError> {
    if dialect.is_xtaci() {
        let h = XtaciHeader::decode(buf, dialect.version())?;
        Ok(Header {
            cmd: h.cmd,
            sid: h.sid,
            length: u32::from(h.length),
        })
    } else {
        let h = SeedHeader::decode(buf)?;
        Ok(Header {
            cmd: h.cmd,
            sid: u32::from(h.id),
            length: h.length,
        })
    }
}

/// Encodes a header of the dialect into `out` (cleared first); returns its bytes.
pub(crate) fn encode(
    dialect: Dialect,
    cmd: Cmd,
    sid: u32,
    length: u32,
    out: &mut [u8; 8],
) -> &[u8] {
    if dialect.is_xtaci() {
        let h = XtaciHeader {
            version: dialect.version(),
            cmd,
            length: u16::try_from(length).unwrap_or(u16::MAX),
            sid,
        };
        *out = h.to_bytes();
        out.as_slice()
    } else {
        let h = SeedHeader {
            cmd,
            id: u16::try_from(sid & 0xFFFF).unwrap_or_default(),
            length,
        };
        let b = h.to_bytes();
        for (d, s) in out.iter_mut().zip(b) {
            *d = s;
        }
        out.get(..SeedHeader::SIZE).unwrap_or_default()
    }
}
