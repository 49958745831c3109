//! kcptun's compression: the snappy **framing format** over the whole session byte stream,
//! one independent stream per direction (kcptun.md §7), as a stream transform between the
//! session and the multiplexer: `Stack<Session, Snappy<Smux>>` is kcptun's default stack.
//!
//! Wire: the stream identifier chunk (`ff 06 00 00 "sNaPpY"`) once at the start, then one or
//! more data chunks per frame the layer above writes (golang/snappy's writer is flushed after
//! every smux frame, so each frame starts a chunk): `type u8 · length u24 LE · masked CRC-32C
//! of the uncompressed data u32 LE · data`. Type 0x00 is a snappy block, 0x01 the data
//! as it is (chosen when compressing saves less than an eighth), 0x80–0xfe skippable,
//! 0x02–0x7f reserved (an error, as in the Go reader). At most 65 536 uncompressed bytes per
//! chunk.
//!
//! The transform copies an uncompressed chunk's bytes once (lower stream → the application's
//! buffer); a compressed chunk is decompressed into a 64 KiB block first. Every buffer is
//! bounded by one chunk: a peer cannot make it hold more.
use std::time::Instant;

use crate::driver::{ByteStream, BytesMut, StreamError, StreamEvent, StreamId};
use crate::stack::{Lower, StreamLayer};

/// The stream identifier chunk that opens each direction (kcptun.md §7).
pub const STREAM_IDENTIFIER: [u8; 10] =
    [0xff, 0x06, 0x00, 0x00, b's', b'N', b'a', b'P', b'p', b'Y'];
/// Largest uncompressed payload of one chunk.
pub const MAX_BLOCK: usize = 65_536;
/// Chunk header: type and 24-bit length.
const CHUNK_HEADER: usize = 4;
/// The masked CRC before a data chunk's data.
const CRC_LEN: usize = 4;
const CHUNK_COMPRESSED: u8 = 0x00;
const CHUNK_UNCOMPRESSED: u8 = 0x01;
const CHUNK_STREAM_ID: u8 = 0xff;
/// Bytes read from the lower stream per call.
const READ_CHUNK: usize = 16 * 1024;

/// Why the snappy stream from the peer cannot be decoded: the connection ends (bytes after
/// a bad chunk cannot be trusted).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SnappyError {
    /// The first chunk is not the stream identifier.
    #[error("the peer's stream does not start with the snappy stream identifier: is --nocomp set on one side only?")]
    MissingIdentifier,
    /// A reserved chunk type (0x02–0x7f).
    #[error("unsupported snappy chunk type {0:#04x}: is --nocomp set on one side only?")]
    ReservedChunk(u8),
    /// A data chunk longer than a 64 KiB block can need, or a malformed stream identifier.
    #[error("snappy chunk of {0} bytes is too long: the stream is corrupt")]
    ChunkTooLong(usize),
    /// The block does not decompress, or to more than 64 KiB.
    #[error("snappy block does not decompress: the stream is corrupt")]
    Corrupt,
    /// The checksum does not match the data.
    #[error("snappy chunk checksum mismatch: the stream is corrupt")]
    Checksum,
}

/// The masked CRC-32C the framing format stores (kcptun.md §7).
pub fn masked_crc(data: &[u8]) -> u32 {
    let c = crc32c::crc32c(data);
    (c.rotate_right(15)).wrapping_add(0xa282_ead8)
}

/// The writing half: frames of the layer above become chunks.
pub struct Encoder {
    raw: snap::raw::Encoder,
    /// The frame's parts joined (the block compressor needs one slice).
    joined: Vec<u8>,
    /// A compressed block.
    block: Vec<u8>,
    /// The stream identifier was written.
    started: bool,
}

impl std::fmt::Debug for Encoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Encoder")
            .field("started", &self.started)
            .finish_non_exhaustive()
    }
}

impl Default for Encoder {
    fn default() -> Self {
        Encoder {
            raw: snap::raw::Encoder::new(),
            joined: Vec::new(),
            block: Vec::new(),
            started: false,
        }
    }
}

impl Encoder {
    /// Appends the chunks of one frame (the concatenation of `parts`) to `out`: the stream
    /// identifier first if this is the stream's first frame.
    pub fn encode(&mut self, parts: &[&[u8]], out: &mut Vec<u8>) {
        if !self.started {
            self.started = true;
            out.extend_from_slice(&STREAM_IDENTIFIER);
        }
        self.joined.clear();
        for p in parts {
            self.joined.extend_from_slice(p);
        }
        let joined = std::mem::take(&mut self.joined);
        for block in joined.chunks(MAX_BLOCK) {
            self.encode_block(block, out);
        }
        self.joined = joined;
    }

    /// One chunk: compressed unless that saves less than an eighth (golang/snappy's rule).
    fn encode_block(&mut self, block: &[u8], out: &mut Vec<u8>) {
        let crc = masked_crc(block).to_le_bytes();
        self.block
            .resize(snap::raw::max_compress_len(block.len()), 0);
        let compressed = self.raw.compress(block, &mut self.block).ok();
        let (kind, body) = match compressed {
            Some(n) if n < block.len() - block.len() / 8 => {
                (CHUNK_COMPRESSED, self.block.get(..n).unwrap_or_default())
            }
            _ => (CHUNK_UNCOMPRESSED, block),
        };
        let len = (CRC_LEN + body.len()) as u32;
        let l = len.to_le_bytes();
        out.extend_from_slice(&[kind, l[0], l[1], l[2]]);
        out.extend_from_slice(&crc);
        out.extend_from_slice(body);
    }
}

/// The reading half: chunks from the lower stream become the bytes the layer above reads.
pub struct Decoder {
    raw: snap::raw::Decoder,
    /// Compressed bytes read from the lower stream; `input[at..]` not decoded yet.
    input: Vec<u8>,
    at: usize,
    /// Bytes of the current uncompressed chunk still to hand out, at `input[at..at + raw]`.
    raw_left: usize,
    /// A decompressed block; `block[block_at..]` not read yet.
    block: Vec<u8>,
    block_at: usize,
    /// Bytes of a skippable chunk still to drop.
    skip: usize,
    /// The stream identifier was seen.
    started: bool,
}

impl std::fmt::Debug for Decoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decoder")
            .field("buffered", &(self.input.len() - self.at))
            .field("block", &(self.block.len() - self.block_at))
            .finish_non_exhaustive()
    }
}

/// A chunk's header, decoded.
struct ChunkHead {
    kind: u8,
    len: usize,
}

impl Default for Decoder {
    fn default() -> Self {
        Decoder {
            raw: snap::raw::Decoder::new(),
            input: Vec::new(),
            at: 0,
            raw_left: 0,
            block: Vec::new(),
            block_at: 0,
            skip: 0,
            started: false,
        }
    }
}

impl Decoder {
    /// Bytes held (compressed input and a decompressed block).
    pub fn buffered(&self) -> usize {
        self.input.len() - self.at + self.block.len() - self.block_at
    }

    /// Appends bytes received from the peer.
    pub fn feed(&mut self, data: &[u8]) {
        self.compact();
        self.input.extend_from_slice(data);
    }

    #[deny(clippy::indexing_slicing, clippy::unwrap_used, clippy::expect_used)]
    fn peek_head(&self) -> Option<ChunkHead> {
        let h = self.input.get(self.at..self.at + CHUNK_HEADER)?;
        let (&kind, l) = h.split_first()?;
        let len = l
            .iter()
            .rev()
            .fold(0usize, |acc, &b| acc << 8 | usize::from(b));
        Some(ChunkHead { kind, len })
    }

    /// Copies decoded bytes into `buf`; `Ok(0)` when more input is needed.
    #[deny(clippy::indexing_slicing, clippy::unwrap_used, clippy::expect_used)]
    pub fn read(&mut self, buf: &mut [u8]) -> Result<usize, SnappyError> {
        loop {
            if let Some(n) = self.copy_out(buf) {
                return Ok(n);
            }
            if !self.decode_next()? {
                return Ok(0);
            }
        }
    }

    /// Hands out pending bytes (of a raw chunk or a block); `None` when none wait.
    #[deny(clippy::indexing_slicing, clippy::unwrap_used, clippy::expect_used)]
    fn copy_out(&mut self, buf: &mut [u8]) -> Option<usize> {
        if self.raw_left > 0 {
            let n = self.raw_left.min(buf.len());
            let src = self.input.get(self.at..self.at + n)?;
            buf.get_mut(..n)?.copy_from_slice(src);
            self.at += n;
            self.raw_left -= n;
            return Some(n);
        }
        if self.block_at < self.block.len() {
            let src = self.block.get(self.block_at..)?;
            let n = src.len().min(buf.len());
            buf.get_mut(..n)?.copy_from_slice(src.get(..n)?);
            self.block_at += n;
            return Some(n);
        }
        None
    }

    /// Decodes the next whole chunk, if one is buffered: `Ok(false)` when more input is
    /// needed.
    #[deny(clippy::indexing_slicing, clippy::unwrap_used, clippy::expect_used)]
    fn decode_next(&mut self) -> Result<bool, SnappyError> {
        if self.skip > 0 {
            let n = self.skip.min(self.input.len() - self.at);
            self.at += n;
            self.skip -= n;
            if self.skip > 0 {
                return Ok(false);
            }
        }
        let Some(head) = self.peek_head() else {
            return Ok(false);
        };
        check_head(&head, self.started)?;
        if (0x80..=0xfe).contains(&head.kind) {
            // Skippable: dropped as it streams by, never buffered whole.
            self.at += CHUNK_HEADER;
            self.skip = head.len;
            return Ok(true);
        }
        let Some(body) = self
            .input
            .get(self.at + CHUNK_HEADER..self.at + CHUNK_HEADER + head.len)
        else {
            return Ok(false);
        };
        match head.kind {
            CHUNK_STREAM_ID => {
                if body != STREAM_IDENTIFIER.get(CHUNK_HEADER..).unwrap_or_default() {
                    return Err(SnappyError::MissingIdentifier);
                }
                self.started = true;
                self.at += CHUNK_HEADER + head.len;
            }
            CHUNK_UNCOMPRESSED => {
                let (crc, data) = body.split_at_checked(CRC_LEN).ok_or(SnappyError::Corrupt)?;
                if crc != masked_crc(data).to_le_bytes() {
                    return Err(SnappyError::Checksum);
                }
                self.at += CHUNK_HEADER + CRC_LEN;
                self.raw_left = data.len();
            }
            _ => {
                let (crc, data) = body.split_at_checked(CRC_LEN).ok_or(SnappyError::Corrupt)?;
                let n = snap::raw::decompress_len(data).map_err(|_| SnappyError::Corrupt)?;
                if n > MAX_BLOCK {
                    return Err(SnappyError::Corrupt);
                }
                self.block.resize(n, 0);
                let got = self
                    .raw
                    .decompress(data, &mut self.block)
                    .map_err(|_| SnappyError::Corrupt)?;
                self.block.truncate(got);
                if crc != masked_crc(&self.block).to_le_bytes() {
                    return Err(SnappyError::Checksum);
                }
                self.block_at = 0;
                self.at += CHUNK_HEADER + head.len;
            }
        }
        Ok(true)
    }

    /// Drops decoded input from the front once it is most of the buffer.
    fn compact(&mut self) {
        if self.at == self.input.len() {
            self.input.clear();
            self.at = 0;
        } else if self.at > self.input.len() / 2 {
            self.input.drain(..self.at);
            self.at = 0;
        }
    }
}

/// Largest chunk (header included) a decoder must buffer whole: a compressed 64 KiB block
/// and its CRC.
pub(crate) fn max_chunk_len() -> usize {
    CHUNK_HEADER + CRC_LEN + snap::raw::max_compress_len(MAX_BLOCK)
}

/// The chunk-level rules: the identifier first, no reserved types, lengths a block allows.
fn check_head(head: &ChunkHead, started: bool) -> Result<(), SnappyError> {
    if !started && head.kind != CHUNK_STREAM_ID {
        return Err(SnappyError::MissingIdentifier);
    }
    match head.kind {
        0x02..=0x7f => Err(SnappyError::ReservedChunk(head.kind)),
        CHUNK_STREAM_ID if head.len != STREAM_IDENTIFIER.len() - CHUNK_HEADER => {
            Err(SnappyError::ChunkTooLong(head.len))
        }
        CHUNK_COMPRESSED if head.len > max_chunk_len() - CHUNK_HEADER => {
            Err(SnappyError::ChunkTooLong(head.len))
        }
        CHUNK_UNCOMPRESSED if head.len > CRC_LEN + MAX_BLOCK => {
            Err(SnappyError::ChunkTooLong(head.len))
        }
        _ => Ok(()),
    }
}

/// Why a [`Snappy`] stack closed: the layer above ended it, or the peer's snappy stream was
/// corrupt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnappyClose<R> {
    /// The layer above (smux) ended the connection.
    Upper(R),
    /// The peer's snappy stream cannot be decoded.
    Corrupt(SnappyError),
}

/// The snappy framing as a stream transform under the layer `U` (see the module docs).
#[derive(Debug)]
pub struct Snappy<U> {
    inner: U,
    enc: Encoder,
    dec: Decoder,
    /// Compressed output of the frame being written (reused).
    out: Vec<u8>,
    /// Bytes of an inner frame the transform refused after taking its start: never used
    /// (frames are taken whole), but `Lower` needs a place.
    inner_pending: Vec<u8>,
    /// Scratch the lower stream's copying `read_chunk` reads into (a KCP session hands
    /// whole segments over instead), so no read attempt zeroes a fresh buffer.
    room: BytesMut,
    /// The inner layer asked for the connection to close.
    inner_close: bool,
    /// The peer's stream was corrupt: reported once as the final event.
    failed: Option<SnappyError>,
    failure_reported: bool,
    /// Off (`--nocomp`): the inner layer talks to the lower stream directly.
    enabled: bool,
}

impl<U> Snappy<U> {
    /// Compresses what `inner` writes and decompresses what it reads.
    pub fn new(inner: U) -> Self {
        Snappy {
            inner,
            enc: Encoder::default(),
            dec: Decoder::default(),
            out: Vec::new(),
            inner_pending: Vec::new(),
            room: BytesMut::new(),
            inner_close: false,
            failed: None,
            failure_reported: false,
            enabled: true,
        }
    }

    /// The transform switched off (kcptun's `--nocomp`): bytes pass through untouched, so a
    /// stack type serves both settings.
    pub fn passthrough(inner: U) -> Self {
        Snappy {
            enabled: false,
            ..Snappy::new(inner)
        }
    }

    /// Whether the transform compresses (false for [`Snappy::passthrough`]).
    pub fn is_enabled(&self) -> bool {
        self.enabled
    }

    /// The layer above.
    pub fn inner(&self) -> &U {
        &self.inner
    }

    /// Bytes the transform holds (decoder input and a decompressed block).
    pub fn buffered(&self) -> usize {
        self.dec.buffered()
    }
}

/// The lower stream as the inner layer sees it: writes compressed, reads decompressed.
struct SnappyIo<'l, 'a> {
    lower: &'l mut Lower<'a>,
    enc: &'l mut Encoder,
    dec: &'l mut Decoder,
    out: &'l mut Vec<u8>,
    room: &'l mut BytesMut,
    failed: &'l mut Option<SnappyError>,
}

impl ByteStream for SnappyIo<'_, '_> {
    fn write(&mut self, data: &[u8]) -> Result<usize, StreamError> {
        self.write_parts(&[data])
    }

    /// A frame is compressed as one unit and taken whole, or not at all.
    fn write_parts(&mut self, parts: &[&[u8]]) -> Result<usize, StreamError> {
        if self.failed.is_some() {
            return Err(StreamError::Closed);
        }
        // Compressing and checksumming a frame the full window would refuse is wasted
        // (a sender behind a 128-segment window retried it on every ACK).
        if !self.lower.poll_writable() {
            return Err(StreamError::Blocked);
        }
        let total: usize = parts.iter().map(|p| p.len()).sum();
        self.out.clear();
        let started = self.enc.started;
        self.enc.encode(parts, self.out);
        match self.lower.write_frame(&[self.out]) {
            Ok(()) => Ok(total),
            Err(e) => {
                // Not taken: the identifier goes with the next attempt.
                self.enc.started = started;
                Err(e)
            }
        }
    }

    fn read(&mut self, buf: &mut [u8]) -> Result<usize, StreamError> {
        if self.failed.is_some() {
            return Err(StreamError::Closed);
        }
        loop {
            match self.dec.read(buf) {
                Ok(0) if !buf.is_empty() => {}
                Ok(n) => return Ok(n),
                Err(e) => return Err(self.fail(e)),
            }
            // Nothing decoded: take more of the lower stream (zeroing a fresh 16 KiB on
            // every attempt cost the tunnel client ~8 % when nothing had arrived).
            self.dec.compact();
            let chunk = self.lower.read_chunk(READ_CHUNK, self.room)?;
            if chunk.is_empty() {
                return Err(StreamError::Blocked);
            }
            self.dec.input.extend_from_slice(&chunk);
        }
    }

    fn finish(&mut self) -> Result<(), StreamError> {
        Err(StreamError::Unsupported) // the framing has no end marker: the inner layer's FINs do
    }

    fn all_acked(&self) -> bool {
        self.lower.all_acked()
    }
}

impl SnappyIo<'_, '_> {
    /// Records the first corruption and asks for the connection to close.
    fn fail(&mut self, e: SnappyError) -> StreamError {
        self.failed.get_or_insert(e);
        self.lower.close_connection();
        StreamError::Closed
    }
}

impl<U: StreamLayer> Snappy<U> {
    /// Runs `f` with the inner layer and the transformed lower stream.
    fn with_inner<T>(
        &mut self,
        lower: &mut Lower<'_>,
        f: impl FnOnce(&mut U, &mut Lower<'_>) -> T,
    ) -> T {
        if !self.enabled {
            return f(&mut self.inner, lower);
        }
        let mut io = SnappyIo {
            lower,
            enc: &mut self.enc,
            dec: &mut self.dec,
            out: &mut self.out,
            room: &mut self.room,
            failed: &mut self.failed,
        };
        let mut inner_lower = Lower::new(&mut io, &mut self.inner_pending, &mut self.inner_close);
        let r = f(&mut self.inner, &mut inner_lower);
        if std::mem::take(&mut self.inner_close) {
            lower.close_connection();
        }
        r
    }
}

impl<U: StreamLayer> StreamLayer for Snappy<U> {
    type Reason = SnappyClose<U::Reason>;

    fn pump(&mut self, now: Instant, lower: &mut Lower<'_>) {
        // Chunks decoded but not read wait in the decoder while the inner layer holds back
        // (its own buffers full): it reads them on a later pump, which the stack runs after
        // every application call.
        self.with_inner(lower, |u, l| u.pump(now, l));
    }

    fn on_lower_event(&mut self, ev: StreamEvent<std::convert::Infallible>, lower: &mut Lower<'_>) {
        self.with_inner(lower, |u, l| u.on_lower_event(ev, l));
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.inner.poll_timeout()
    }

    fn handle_timeout(&mut self, now: Instant, lower: &mut Lower<'_>) {
        self.with_inner(lower, |u, l| u.handle_timeout(now, l));
    }

    fn poll_event(&mut self) -> Option<StreamEvent<Self::Reason>> {
        if let Some(e) = self.failed.filter(|_| !self.failure_reported) {
            self.failure_reported = true;
            return Some(StreamEvent::Closed(SnappyClose::Corrupt(e)));
        }
        Some(match self.inner.poll_event()? {
            StreamEvent::Opened(i) => StreamEvent::Opened(i),
            StreamEvent::Readable(i) => StreamEvent::Readable(i),
            StreamEvent::Writable(i) => StreamEvent::Writable(i),
            StreamEvent::Acknowledged(i) => StreamEvent::Acknowledged(i),
            StreamEvent::StreamClosed(i) => StreamEvent::StreamClosed(i),
            StreamEvent::Closed(r) => StreamEvent::Closed(SnappyClose::Upper(r)),
        })
    }

    fn open_stream(&mut self, lower: &mut Lower<'_>) -> Result<StreamId, StreamError> {
        self.with_inner(lower, |u, l| u.open_stream(l))
    }

    fn accept_stream(&mut self) -> Option<StreamId> {
        self.inner.accept_stream()
    }

    fn write(
        &mut self,
        lower: &mut Lower<'_>,
        id: StreamId,
        data: &[u8],
    ) -> Result<usize, StreamError> {
        self.with_inner(lower, |u, l| u.write(l, id, data))
    }

    fn read(
        &mut self,
        lower: &mut Lower<'_>,
        id: StreamId,
        buf: &mut [u8],
    ) -> Result<usize, StreamError> {
        self.with_inner(lower, |u, l| u.read(l, id, buf))
    }

    fn finish(&mut self, lower: &mut Lower<'_>, id: StreamId) -> Result<(), StreamError> {
        self.with_inner(lower, |u, l| u.finish(l, id))
    }

    fn close_stream(&mut self, lower: &mut Lower<'_>, id: StreamId) {
        self.with_inner(lower, |u, l| u.close_stream(l, id));
    }

    fn flushed(&self, id: StreamId) -> bool {
        self.inner.flushed(id)
    }
}

#[cfg(test)]
#[path = "snappy_tests.rs"]
mod tests;
