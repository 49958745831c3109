//! kcp-go 5.6.1 forward error correction (kcp-go-session.md §4): Reed–Solomon parity over
//! groups of `data_shards` datagrams, with the 6-byte FEC header (`seqid u32 LE`,
//! `type u16 LE`) and, on data shards, the 2-byte size field (kcp-go-session.md §1).
//!
//! [`FecEncoder`] stamps each outgoing datagram and emits the parity datagrams when a group
//! completes; [`FecDecoder`] collects received shards and rebuilds lost data datagrams,
//! learning the sender's shard counts on the way ([`super::autotune`]).
//!
//! ```
//! use tether_core::session::fec::{recovered_payload, FecDecoder, FecEncoder};
//! let mut enc = FecEncoder::new(2, 1, 0).unwrap();
//! let mut dec = FecDecoder::new(2, 1).unwrap();
//! let (mut data, mut parity) = (Vec::new(), Vec::new());
//! for kcp in [&b"first"[..], b"second"] {
//!     let mut dgram = vec![0u8; 8]; // FEC header space in front of the KCP bytes
//!     dgram.extend_from_slice(kcp);
//!     enc.encode(&mut dgram, |p| parity.push(p.to_vec())).unwrap();
//!     data.push(dgram);
//! }
//! // Lose data datagram 0: data 1 plus the parity rebuild it.
//! assert!(dec.decode(0, &data[1]).unwrap().is_empty());
//! let rec = dec.decode(0, &parity[0]).unwrap();
//! assert_eq!(recovered_payload(rec.get(0).unwrap()), Some(&b"first"[..]));
//! ```
#![deny(clippy::indexing_slicing, clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use reed_solomon_erasure::galois_8::ReedSolomon;

use super::autotune::AutoTune;
use crate::wire::Reader;

/// FEC header: seqid (4) + type (2) (kcp-go-session.md §1).
pub const FEC_HEADER_SIZE: usize = 6;
/// FEC header plus the data shard's 2-byte size field (kcp-go-session.md §1).
pub const FEC_HEADER_SIZE_PLUS2: usize = FEC_HEADER_SIZE + 2;
/// Type of a data shard (kcp-go-session.md §1).
pub const TYPE_DATA: u16 = 0xF1;
/// Type of a parity shard (kcp-go-session.md §1).
pub const TYPE_PARITY: u16 = 0xF2;
/// Incomplete groups' shards are dropped after this many ms (kcp-go-session.md §4.3 step 8).
pub const FEC_EXPIRE_MS: u32 = 60_000;
/// The decoder keeps at most this many groups' worth of shards (kcp-go-session.md §4.3).
pub const RX_FEC_MULTI: usize = 3;
/// Largest datagram kcp-go handles, `mtuLimit` (kcp-go-session.md §1).
pub const MTU_LIMIT: usize = 1500;
/// GF(2^8) Reed–Solomon allows at most 256 shards per group (kcp-go-session.md §4.5).
pub const MAX_TOTAL_SHARDS: usize = 256;

/// Why an FEC operation was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FecError {
    /// The shard counts cannot form a Reed–Solomon code.
    #[error("invalid FEC shard counts data={data} parity={parity}: both must be at least 1 and their sum at most 256 (kcptun default 10/3)")]
    InvalidShards {
        /// Requested data shards.
        data: usize,
        /// Requested parity shards.
        parity: usize,
    },
    /// The FEC header offset leaves no room in a datagram.
    #[error("FEC header offset {offset} is too large: use 20 with the crypto header, 0 without")]
    InvalidOffset {
        /// The requested offset.
        offset: usize,
    },
    /// The datagram cannot hold the FEC header.
    #[error("datagram of {len} bytes is shorter than the {min} bytes of header space FEC needs: reserve the crypto + 8-byte FEC header in front of the KCP bytes")]
    TooShort {
        /// Datagram length.
        len: usize,
        /// Minimum length.
        min: usize,
    },
    /// The datagram exceeds kcp-go's `mtuLimit`.
    #[error("datagram of {len} bytes exceeds kcp-go's {max}-byte limit: lower the MTU")]
    TooLong {
        /// Datagram length.
        len: usize,
        /// Maximum length.
        max: usize,
    },
    /// The type field is not an FEC type.
    #[error("FEC type {0:#06x} is neither data (0x00f1) nor parity (0x00f2): hand non-FEC datagrams straight to KCP")]
    NotFec(u16),
}

/// The conditions under which `ReedSolomon::new` succeeds (kcp-go-session.md §4.5), checked
/// without building the codec: codecs are built on first use (see [`Codec`]).
fn check_counts(data: usize, parity: usize) -> Result<(), FecError> {
    if data == 0 || parity == 0 || data + parity > MAX_TOTAL_SHARDS {
        return Err(FecError::InvalidShards { data, parity });
    }
    Ok(())
}

/// Codecs for this many shard-count pairs are kept for the whole process (see
/// [`shared_codec`]); a hostile peer that makes autotune cycle through more only evicts.
const SHARED_CODECS: usize = 8;

/// A codec and its `(data, parity)` shard counts.
type SharedCodec = ((usize, usize), Arc<ReedSolomon>);

/// The most recently used codecs, most recent last.
static SHARED: Mutex<Vec<SharedCodec>> = Mutex::new(Vec::new());

/// The codec for `data` + `parity` shards, shared by every session of the process.
///
/// A `reed_solomon_erasure::ReedSolomon` costs about 10 KB (its encoding matrix, and a
/// 254-entry decode-matrix cache allocated up front) and 10–20 µs to build; it is immutable
/// apart from that cache, which has its own mutex. Sharing it keeps an idle session at a
/// few KiB without rebuilding a codec each time an interactive session wakes up. The
/// output only depends on the shard counts, so sharing cannot change a byte on the wire.
fn shared_codec(data: usize, parity: usize) -> Option<Arc<ReedSolomon>> {
    let mut cache = SHARED.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(i) = cache.iter().position(|(k, _)| *k == (data, parity)) {
        let entry = cache.remove(i);
        let codec = Arc::clone(&entry.1);
        cache.push(entry);
        return Some(codec);
    }
    let codec = Arc::new(ReedSolomon::new(data, parity).ok()?);
    if cache.len() >= SHARED_CODECS {
        cache.remove(0);
    }
    cache.push(((data, parity), Arc::clone(&codec)));
    Some(codec)
}

/// A session's handle on its Reed–Solomon codec: taken on first use, let go when the
/// session goes idle (the codec itself stays in [`shared_codec`]'s cache).
#[derive(Default)]
struct Codec(Option<Arc<ReedSolomon>>);

impl Codec {
    /// The codec for `data` + `parity` shards.
    fn get(&mut self, data: usize, parity: usize) -> Option<&ReedSolomon> {
        if self.0.is_none() {
            self.0 = shared_codec(data, parity);
        }
        self.0.as_deref()
    }

    fn release(&mut self) {
        self.0 = None;
    }
}

/// The KCP bytes inside a recovered datagram: `r[2..sz]` where `sz` is its size field, or
/// `None` when `sz < 2` or `sz > r.len()` (kcp-go counts that as `FECErrs`;
/// kcp-go-session.md §2.2 step 5).
pub fn recovered_payload(r: &[u8]) -> Option<&[u8]> {
    let sz = usize::from(Reader::new(r).u16_le().ok()?);
    if sz < 2 {
        return None;
    }
    r.get(2..sz)
}

/// One parity datagram of the group being encoded, seen by the Reed–Solomon codec as
/// `buf[start..end]`: the payload region of the data datagram folded in last.
#[derive(Debug, Clone)]
struct Window {
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

impl Window {
    /// Room for the largest datagram at once, so a busy encoder never reallocates (a
    /// no-op once the buffer has it).
    fn reserve_full(&mut self) {
        let len = self.buf.len();
        self.buf.reserve_exact(MTU_LIMIT.saturating_sub(len));
    }
}

impl AsRef<[u8]> for Window {
    fn as_ref(&self) -> &[u8] {
        self.buf.get(self.start..self.end).unwrap_or_default()
    }
}

impl AsMut<[u8]> for Window {
    fn as_mut(&mut self) -> &mut [u8] {
        self.buf.get_mut(self.start..self.end).unwrap_or_default()
    }
}

/// Sender side: stamps data datagrams and makes parity datagrams (kcp-go-session.md §4.1,
/// §4.2). Shard buffers (`data + parity` × 1500 bytes) and the codec are allocated on first
/// use and reused; [`FecEncoder::release_idle`] gives them back.
pub struct FecEncoder {
    data_shards: usize,
    parity_shards: usize,
    paws: u32,
    next: u32,
    shard_count: usize,
    max_size: usize,
    header_offset: usize,
    payload_offset: usize,
    /// The current group's parity datagrams so far. Reed–Solomon parity is a sum over the
    /// zero-padded data shards, so each data datagram is folded in as it is stamped, while
    /// it is still in cache, and no copy of it is kept; a shard's zero padding adds
    /// nothing, so each is folded in over its own length (kcp-go-session.md §4.2: the same
    /// bytes as encoding the padded group at its end). Each buffer is as long as the
    /// group's longest datagram so far, zero before the payload offset. Empty until the
    /// first datagram (and after [`FecEncoder::release_idle`] with no group pending).
    parity: Vec<Window>,
    /// The codec refused a shard of the current group: the group gets no parity.
    group_failed: bool,
    codec: Codec,
    /// The code's coefficients, parity row by row (`parity_shards` × `data_shards`), read
    /// off the codec once for an installed [`galois`](super::galois) kernel.
    coefficients: Vec<u8>,
    /// The kernel installed when the encoder was made (`None`: the codec computes parity).
    kernel: Option<&'static dyn super::galois::GaloisKernel>,
}

impl core::fmt::Debug for FecEncoder {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("FecEncoder")
            .field("data_shards", &self.data_shards)
            .field("parity_shards", &self.parity_shards)
            .field("next", &self.next)
            .field("shard_count", &self.shard_count)
            .field("header_offset", &self.header_offset)
            .finish_non_exhaustive()
    }
}

impl FecEncoder {
    /// An encoder for groups of `data_shards` data + `parity_shards` parity datagrams.
    /// `offset` is where the FEC header starts in each datagram: 20 with the crypto header,
    /// 0 without (kcp-go-session.md §4.2).
    pub fn new(data_shards: usize, parity_shards: usize, offset: usize) -> Result<Self, FecError> {
        check_counts(data_shards, parity_shards)?;
        if offset + FEC_HEADER_SIZE_PLUS2 > MTU_LIMIT {
            return Err(FecError::InvalidOffset { offset });
        }
        let n = data_shards + parity_shards;
        let payload_offset = offset + FEC_HEADER_SIZE;
        Ok(Self {
            data_shards,
            parity_shards,
            // kcp-go-session.md §4.1: paws = floor(0xFFFFFFFF / N) · N
            paws: u32::MAX / n as u32 * n as u32,
            next: 0,
            shard_count: 0,
            max_size: 0,
            header_offset: offset,
            payload_offset,
            parity: Vec::new(),
            group_failed: false,
            codec: Codec::default(),
            coefficients: Vec::new(),
            kernel: super::galois::installed(),
        })
    }

    /// The encoder with `kernel` computing its parity instead of the process's installed
    /// one ([`galois::install_kernel`](super::galois::install_kernel)) or the codec: for
    /// tests that compare kernels on the same datagrams.
    pub fn with_kernel(mut self, kernel: &'static dyn super::galois::GaloisKernel) -> Self {
        self.kernel = Some(kernel);
        self
    }

    /// Data shards per group.
    pub fn data_shards(&self) -> usize {
        self.data_shards
    }

    /// Parity shards per group.
    pub fn parity_shards(&self) -> usize {
        self.parity_shards
    }

    /// Where the FEC header starts in each datagram.
    pub fn header_offset(&self) -> usize {
        self.header_offset
    }

    /// The seqid the next datagram (data or parity) will take.
    pub fn next_seqid(&self) -> u32 {
        self.next
    }

    /// Sets the next seqid (tests and vectors; kcp-go always starts at 0). Keep it a
    /// multiple of `data + parity` at a group start, or the peer will mis-group shards.
    pub fn set_next_seqid(&mut self, next: u32) {
        self.next = next;
    }

    /// Data datagrams collected towards the current group.
    pub fn pending(&self) -> usize {
        self.shard_count
    }

    /// Gives back the memory an idle sender does not need: the codec, and the parity
    /// buffers unless a group is pending (then they hold its partial parity,
    /// kcp-go-session.md §4.2, and are kept at their exact length). The next datagram
    /// allocates again.
    pub fn release_idle(&mut self) {
        self.codec.release();
        if self.shard_count == 0 {
            self.parity = Vec::new();
            return;
        }
        for p in self.parity.iter_mut() {
            p.buf.shrink_to_fit();
        }
    }

    /// Stamps `pkt` as a data shard (seqid, type 0xF1 at `offset`, size at `offset + 6`)
    /// and, if it completes a group, calls `emit` once per parity datagram in parity
    /// order. Returns how many parity datagrams were emitted.
    ///
    /// `pkt` is the whole datagram: `offset` bytes of crypto header space, 8 bytes of FEC
    /// header space, then the KCP bytes. Each parity datagram is as long as the group's
    /// longest data datagram and starts with `offset` zero bytes for the crypto layer; it
    /// is only valid during the call (kcp-go-session.md §2.1 step 2, §4.2). `emit` may
    /// take the buffer itself, leaving another in its place (the session swaps in an empty
    /// one from its pool instead of copying the datagram): the encoder starts each group
    /// from cleared buffers.
    pub fn encode(
        &mut self,
        pkt: &mut [u8],
        emit: impl FnMut(&mut Vec<u8>),
    ) -> Result<usize, FecError> {
        self.check_len(pkt.len())?;
        let seqid = self.next;
        self.next = self.next.wrapping_add(1); // kcp-go-session.md §4.1: data never wraps at paws
        self.stamp_data(pkt, seqid);
        self.fold_in(pkt);
        self.shard_count += 1;
        self.max_size = self.max_size.max(pkt.len());
        if self.shard_count < self.data_shards {
            return Ok(0);
        }
        Ok(self.finish_group(emit))
    }

    /// Adds data shard number `shard_count` of the group to the parity: each parity buffer
    /// grows (zero-filled) to the datagram's length, then the codec adds the shard's
    /// contribution over its payload region.
    fn fold_in(&mut self, pkt: &[u8]) {
        let start = self.payload_offset;
        if self.parity.len() != self.parity_shards {
            self.parity.resize_with(self.parity_shards, || Window {
                buf: Vec::new(),
                start,
                end: start,
            });
        }
        let first = self.shard_count == 0;
        for p in self.parity.iter_mut() {
            if first {
                p.buf.clear(); // a new group: zero from scratch
            }
            if p.buf.len() < pkt.len() {
                // Only a buffer too small for this datagram grows (to the largest at once):
                // the session hands in recycled datagram buffers, which already fit, and
                // growing each of them to the limit cost a reallocation per parity shard.
                if p.buf.capacity() < pkt.len() {
                    p.reserve_full();
                }
                p.buf.resize(pkt.len(), 0);
            }
            p.end = pkt.len();
        }
        if first {
            self.group_failed = false;
        }
        let data = pkt.get(start..).unwrap_or_default();
        let folded = match self.kernel {
            Some(kernel) => self.fold_with(kernel, data),
            None => match self.codec.get(self.data_shards, self.parity_shards) {
                Some(codec) => codec
                    .encode_single_sep(self.shard_count, data, &mut self.parity[..])
                    .is_ok(),
                None => false,
            },
        };
        self.group_failed |= !folded;
    }

    /// [`FecEncoder::fold_in`]'s codec step through an installed kernel: parity row `r`
    /// gets `c[r][shard] · data` (written for the group's first shard, added after it),
    /// what `encode_single_sep` computes.
    fn fold_with(&mut self, kernel: &dyn super::galois::GaloisKernel, data: &[u8]) -> bool {
        if self.coefficients.is_empty() {
            let Some(c) = self
                .codec
                .get(self.data_shards, self.parity_shards)
                .and_then(|codec| coefficients(codec, self.data_shards, self.parity_shards))
            else {
                return false;
            };
            self.coefficients = c;
            self.codec.release(); // the coefficients are all this encoder needs of it
        }
        let (k, d) = (self.shard_count, self.data_shards);
        for (r, p) in self.parity.iter_mut().enumerate() {
            let (Some(&c), out) = (self.coefficients.get(r * d + k), p.as_mut()) else {
                return false;
            };
            if out.len() != data.len() {
                return false;
            }
            if k == 0 {
                kernel.mul(c, data, out);
            } else {
                kernel.mul_xor(c, data, out);
            }
        }
        true
    }

    fn check_len(&self, len: usize) -> Result<(), FecError> {
        let min = self.payload_offset + 2;
        if len < min {
            return Err(FecError::TooShort { len, min });
        }
        if len > MTU_LIMIT {
            return Err(FecError::TooLong {
                len,
                max: MTU_LIMIT,
            });
        }
        Ok(())
    }

    /// kcp-go-session.md §1: seqid, type 0xF1, size = bytes from the size field to the end.
    fn stamp_data(&self, pkt: &mut [u8], seqid: u32) {
        let size = (pkt.len() - self.payload_offset) as u16;
        write_header(pkt, self.header_offset, seqid, TYPE_DATA);
        if let Some(s) = pkt.get_mut(self.payload_offset..self.payload_offset + 2) {
            s.copy_from_slice(&size.to_le_bytes());
        }
    }

    /// kcp-go-session.md §4.2: the parity of the zero-padded group is complete; stamp and
    /// emit the parity datagrams.
    fn finish_group(&mut self, mut emit: impl FnMut(&mut Vec<u8>)) -> usize {
        let max = self.max_size;
        self.shard_count = 0;
        self.max_size = 0;
        if self.group_failed {
            return 0; // as kcp-go: no parity if the codec refuses (equal lengths make it unreachable)
        }
        let mut next = self.next;
        for p in self.parity.iter_mut() {
            p.buf.resize(max, 0);
            write_header(&mut p.buf, self.header_offset, next, TYPE_PARITY);
            next = next.wrapping_add(1) % self.paws; // kcp-go-session.md §4.1: wrap at parity only
            emit(&mut p.buf);
        }
        self.next = next;
        self.parity_shards
    }
}

/// The code's parity coefficients, row by row: encoding a one-byte shard of value 1 at data
/// position `j` (zeros elsewhere) leaves `c[r][j]` in parity row `r`.
fn coefficients(codec: &ReedSolomon, data: usize, parity: usize) -> Option<Vec<u8>> {
    let mut c = vec![0u8; data * parity];
    for j in 0..data {
        let mut rows = vec![[0u8; 1]; parity];
        codec.encode_single_sep(j, &[1u8], &mut rows).ok()?;
        for (r, row) in rows.iter().enumerate() {
            *c.get_mut(r * data + j)? = row[0];
        }
    }
    Some(c)
}

/// Writes `seqid` and `kind` (u32 LE, u16 LE) at `offset` (kcp-go-session.md §1).
fn write_header(buf: &mut [u8], offset: usize, seqid: u32, kind: u16) {
    let header = buf
        .get_mut(offset..)
        .and_then(<[u8]>::first_chunk_mut::<FEC_HEADER_SIZE>);
    if let Some(h) = header {
        let [s0, s1, s2, s3] = seqid.to_le_bytes();
        let [k0, k1] = kind.to_le_bytes();
        *h = [s0, s1, s2, s3, k0, k1];
    }
}

/// kcp-go's FEC SNMP counters (kcp-go-session.md §9). The decoder maintains
/// `fec_parity_shards` and `fec_short_shards`; the session layer adds `fec_recovered` (a
/// recovered datagram KCP accepted) and `fec_errs` (one [`recovered_payload`] rejected).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FecStats {
    /// `FECRecovered`: recovered packets KCP accepted.
    pub fec_recovered: u64,
    /// `FECErrs`: recovered packets with an invalid size field.
    pub fec_errs: u64,
    /// `FECShortShards`: data shards evicted by the rx limit before their group resolved.
    pub fec_short_shards: u64,
    /// `FECParityShards`: parity shards received.
    pub fec_parity_shards: u64,
}

/// One received shard waiting in `rx` (kcp-go-session.md §4.3).
#[derive(Debug)]
struct RxShard {
    seqid: u32,
    is_data: bool,
    ts: u32,
    /// The bytes after the 6-byte FEC header.
    data: ShardBytes,
}

/// A stored shard's bytes: a copy in a pooled buffer, or the caller's own copy
/// ([`FecDecoder::decode_stored`]: a next-in-order data shard that KCP's receive arena holds,
/// so the payload KCP hands to the reader and this copy are one).
#[derive(Debug)]
enum ShardBytes {
    Pooled(Vec<u8>),
    Shared(Bytes),
}

impl core::ops::Deref for ShardBytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            ShardBytes::Pooled(v) => v,
            ShardBytes::Shared(b) => b,
        }
    }
}

/// Datagrams rebuilt by one [`FecDecoder::decode`] call, each starting with its 2-byte size
/// field and zero-padded to the group's longest shard (parse with [`recovered_payload`]).
#[derive(Debug, Clone, Copy)]
pub struct Recovered<'a> {
    bufs: &'a [Vec<u8>],
}

impl<'a> Recovered<'a> {
    /// Number of recovered datagrams.
    pub fn len(&self) -> usize {
        self.bufs.len()
    }

    /// True when nothing was recovered.
    pub fn is_empty(&self) -> bool {
        self.bufs.is_empty()
    }

    /// The `i`-th recovered datagram, in data-shard order.
    pub fn get(&self, i: usize) -> Option<&'a [u8]> {
        self.bufs.get(i).map(Vec::as_slice)
    }

    /// The recovered datagrams, in data-shard order.
    pub fn iter(&self) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.bufs.iter().map(Vec::as_slice)
    }
}

/// Receiver side (kcp-go-session.md §4.3, §4.4). Holds at most `3 · (data + parity)`
/// shards of at most 1500 bytes; with the 256-shard cap that is under 1.2 MB however a
/// peer behaves. Work buffers and the codec are allocated on first use;
/// [`FecDecoder::release_idle`] gives them back.
pub struct FecDecoder {
    data_shards: usize,
    parity_shards: usize,
    shard_size: usize,
    rxlimit: usize,
    rx: Vec<RxShard>,
    /// Entries of `rx` kept as slices of KCP's receive arena ([`ShardBytes::Shared`]).
    shared: usize,
    pool: Vec<Vec<u8>>,
    work: Vec<(Vec<u8>, bool)>,
    out: Vec<Vec<u8>>,
    n_out: usize,
    codec: Codec,
    autotune: AutoTune,
    stats: FecStats,
}

impl core::fmt::Debug for FecDecoder {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("FecDecoder")
            .field("data_shards", &self.data_shards)
            .field("parity_shards", &self.parity_shards)
            .field("rx", &self.rx.len())
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

/// The group window found around a newly inserted shard (kcp-go-session.md §4.3 step 3).
#[derive(Debug, Default)]
struct Group {
    first: usize,
    numshard: usize,
    num_data: usize,
    maxlen: usize,
}

impl FecDecoder {
    /// A decoder expecting groups of `data_shards` + `parity_shards`. kcp-go creates one
    /// with (1, 1) when FEC datagrams arrive at a session without FEC; autotune then learns
    /// the sender's counts (kcp-go-session.md §2.2 step 5).
    pub fn new(data_shards: usize, parity_shards: usize) -> Result<Self, FecError> {
        check_counts(data_shards, parity_shards)?;
        let n = data_shards + parity_shards;
        Ok(Self {
            data_shards,
            parity_shards,
            shard_size: n,
            rxlimit: RX_FEC_MULTI * n,
            rx: Vec::new(),
            shared: 0,
            pool: Vec::new(),
            work: Vec::new(),
            out: Vec::new(),
            n_out: 0,
            codec: Codec::default(),
            autotune: AutoTune::new(),
            stats: FecStats::default(),
        })
    }

    /// Data shards per group (changes when autotune fires).
    pub fn data_shards(&self) -> usize {
        self.data_shards
    }

    /// Parity shards per group (changes when autotune fires).
    pub fn parity_shards(&self) -> usize {
        self.parity_shards
    }

    /// The counters.
    pub fn stats(&self) -> &FecStats {
        &self.stats
    }

    /// The counters, for the session layer to add `fec_recovered` / `fec_errs`.
    pub fn stats_mut(&mut self) -> &mut FecStats {
        &mut self.stats
    }

    /// Shards waiting for their group, in rx order: `(seqid, is_data)`.
    pub fn pending(&self) -> impl Iterator<Item = (u32, bool)> + '_ {
        self.rx.iter().map(|e| (e.seqid, e.is_data))
    }

    /// Number of shards waiting for their group.
    pub fn pending_len(&self) -> usize {
        self.rx.len()
    }

    /// Gives back the memory an idle receiver does not need: the codec, the work, output
    /// and pool buffers, and the shards of every group but the newest. What must persist
    /// stays: the counts autotune learned, its sample ring, the counters, and the newest
    /// group's shards (at their exact length), so a group that spans a quiet moment of
    /// interactive traffic can still be rebuilt. Older groups resolved or were abandoned:
    /// on an idle session (everything received in order and acknowledged) a datagram they
    /// could still rebuild is one KCP already has. kcp-go drops them too, after 60 s
    /// (kcp-go-session.md §4.3 step 8).
    pub fn release_idle(&mut self) {
        self.codec.release();
        self.pool = Vec::new();
        self.work = Vec::new();
        self.out = Vec::new();
        self.n_out = 0;
        if let Some(newest) = self.rx.last().map(|e| e.seqid) {
            let begin = newest.wrapping_sub(newest % self.shard_size as u32);
            self.rx.retain(|e| itimediff(e.seqid, begin) >= 0);
        }
        for e in self.rx.iter_mut() {
            // A shard kept as a slice of KCP's receive arena would pin a whole block of it
            // while the session idles: it gets a compact copy of its own instead.
            e.data = ShardBytes::Pooled(e.data.to_vec());
        }
        self.shared = 0;
        self.rx.shrink_to_fit();
    }

    /// Feeds one FEC datagram (the bytes after the crypto header, starting at the FEC
    /// header) received at `now_ms` (any wrapping u32 millisecond clock). Returns the data
    /// datagrams it let us rebuild, valid until the next call. The caller still hands a
    /// data shard's own KCP bytes (`shard[8..]`) to KCP itself (kcp-go-session.md §2.2
    /// step 5, §4.3).
    pub fn decode(&mut self, now_ms: u32, shard: &[u8]) -> Result<Recovered<'_>, FecError> {
        self.decode_stored(now_ms, shard, None)
    }

    /// [`FecDecoder::decode`], where `stored`, when given, already holds a copy of
    /// `shard[6..]` (the bytes after the FEC header) that the decoder may keep instead of
    /// copying them again.
    pub fn decode_stored(
        &mut self,
        now_ms: u32,
        shard: &[u8],
        stored: Option<Bytes>,
    ) -> Result<Recovered<'_>, FecError> {
        self.recycle_outputs();
        let (seqid, is_data) = parse_shard(shard)?;
        if !is_data {
            self.stats.fec_parity_shards += 1;
        }
        self.autotune.sample(is_data, seqid); // §4.3 step 1
        self.maybe_retune(seqid, is_data);
        let Some(idx) = self.insert(now_ms, seqid, is_data, shard, stored) else {
            return Ok(Recovered { bufs: &[] }); // §4.3 step 2: duplicate
        };
        self.try_group(seqid, idx);
        self.compact_older_groups(seqid);
        self.enforce_limit();
        self.expire(now_ms);
        Ok(Recovered {
            bufs: self.out.get(..self.n_out).unwrap_or_default(),
        })
    }

    fn recycle_outputs(&mut self) {
        self.n_out = 0;
    }

    /// kcp-go-session.md §4.4: on a type the current counts do not predict, measure the
    /// sender's periods and switch to them (rx is kept).
    fn maybe_retune(&mut self, seqid: u32, is_data: bool) {
        let expect_data = (seqid as usize) % self.shard_size < self.data_shards;
        if expect_data == is_data {
            return;
        }
        let ds = self.autotune.find_period(true);
        let ps = self.autotune.find_period(false);
        if !(0 < ds && ds < 256 && 0 < ps && ps < 256) {
            return;
        }
        let (ds, ps) = (ds as usize, ps as usize);
        if ds == self.data_shards && ps == self.parity_shards {
            return;
        }
        // kcp-go 5.6.1 half-applies a failed rebuild (D+P > 256) and later indexes out of
        // range; we keep the working configuration instead.
        if check_counts(ds, ps).is_err() {
            return;
        }
        self.codec.release(); // rebuilt for the new counts on first use
        self.data_shards = ds;
        self.parity_shards = ps;
        self.shard_size = ds + ps;
        self.rxlimit = RX_FEC_MULTI * self.shard_size;
    }

    /// kcp-go-session.md §4.3 step 2: sorted insert (wrapping compare, scanning from the
    /// tail); `None` for a duplicate seqid.
    fn insert(
        &mut self,
        now_ms: u32,
        seqid: u32,
        is_data: bool,
        shard: &[u8],
        stored: Option<Bytes>,
    ) -> Option<usize> {
        let mut idx = 0;
        for (i, e) in self.rx.iter().enumerate().rev() {
            if e.seqid == seqid {
                return None;
            }
            if itimediff(seqid, e.seqid) > 0 {
                idx = i + 1;
                break;
            }
        }
        let after_header = shard.get(FEC_HEADER_SIZE..).unwrap_or_default();
        let data = match stored {
            Some(b) => {
                debug_assert_eq!(&b[..], after_header, "decode_stored: not the shard's bytes");
                self.shared += 1;
                ShardBytes::Shared(b)
            }
            None => self.pooled_copy(after_header),
        };
        let entry = RxShard {
            seqid,
            is_data,
            ts: now_ms,
            data,
        };
        self.rx.insert(idx, entry);
        Some(idx)
    }

    /// kcp-go-session.md §4.3 steps 3–6, scanning the same window of rx as kcp-go.
    fn try_group(&mut self, seqid: u32, idx: usize) {
        let n = self.shard_size;
        let pos = (seqid as usize) % n;
        let begin = seqid.wrapping_sub(pos as u32);
        let end = begin.wrapping_add(n as u32 - 1);
        let search_begin = idx.saturating_sub(pos);
        let search_end = (search_begin + n - 1).min(self.rx.len() - 1);
        if search_end + 1 - search_begin < self.data_shards {
            return;
        }
        let g = self.count_group(search_begin, search_end, begin, end);
        if g.num_data == self.data_shards {
            self.free_range(g.first, g.numshard); // step 4
        } else if g.numshard >= self.data_shards {
            // Only a reconstruction needs the shards copied into the codec's work buffers.
            self.load_group(search_begin, search_end, begin, end);
            self.reconstruct(g.maxlen); // step 5
            self.free_range(g.first, g.numshard);
        }
    }

    /// The shards of the group `begin..=end` among `rx[from..=to]`, with their index in `rx`.
    fn group_shards(
        &self,
        from: usize,
        to: usize,
        begin: u32,
        end: u32,
    ) -> impl Iterator<Item = (usize, &RxShard)> {
        self.rx
            .iter()
            .enumerate()
            .take(to + 1)
            .skip(from)
            .take_while(move |(_, e)| itimediff(e.seqid, end) <= 0)
            .filter(move |(_, e)| itimediff(e.seqid, begin) >= 0)
    }

    /// Counts the group's shards (no copy: a complete group is just freed).
    fn count_group(&self, from: usize, to: usize, begin: u32, end: u32) -> Group {
        let mut g = Group::default();
        for (i, e) in self.group_shards(from, to, begin, end) {
            if g.numshard == 0 {
                g.first = i;
            }
            g.numshard += 1;
            g.num_data += usize::from(e.is_data);
            g.maxlen = g.maxlen.max(e.data.len());
        }
        g
    }

    /// Loads the group's shards into the work buffers (marking which are present).
    fn load_group(&mut self, from: usize, to: usize, begin: u32, end: u32) {
        let n = self.shard_size;
        let mut work = std::mem::take(&mut self.work);
        work.resize_with(n, || (Vec::new(), false));
        for w in work.iter_mut() {
            w.1 = false;
        }
        for (_, e) in self.group_shards(from, to, begin, end) {
            if let Some(w) = work.get_mut((e.seqid as usize) % n) {
                w.0.clear();
                w.0.extend_from_slice(&e.data);
                w.1 = true;
            }
        }
        self.work = work;
    }

    /// Zero-pads the present shards, rebuilds the missing data shards and queues them as
    /// outputs (kcp-go-session.md §4.3 step 5).
    fn reconstruct(&mut self, maxlen: usize) {
        let d = self.data_shards;
        for (k, w) in self.work.iter_mut().enumerate() {
            if w.1 || k < d {
                w.0.resize(maxlen, 0);
            }
        }
        let rebuilt = match self.codec.get(self.data_shards, self.parity_shards) {
            Some(codec) => codec.reconstruct_data(&mut self.work[..]).is_ok(),
            None => false,
        };
        if !rebuilt {
            return;
        }
        for k in 0..d {
            if self.work.get(k).is_some_and(|(_, present)| !present) {
                self.push_output(k);
            }
        }
    }

    fn push_output(&mut self, k: usize) {
        if self.out.len() == self.n_out {
            self.out.push(Vec::new());
        }
        if let (Some(o), Some(w)) = (self.out.get_mut(self.n_out), self.work.get(k)) {
            o.clear();
            o.extend_from_slice(&w.0);
            self.n_out += 1;
        }
    }

    /// Removes `count` entries from `first`, keeping their buffers for reuse.
    fn free_range(&mut self, first: usize, count: usize) {
        let end = (first + count).min(self.rx.len());
        let start = first.min(end);
        for e in self.rx.drain(start..end) {
            match e.data {
                ShardBytes::Pooled(v) => self.pool.push(v),
                ShardBytes::Shared(_) => self.shared = self.shared.saturating_sub(1),
            }
        }
    }

    /// Bounds what shards kept as arena slices pin: a group that completes is freed at once
    /// (the usual case), but one that stays incomplete would keep its slices, and so whole
    /// 64 KiB blocks of the arena, for as long as its entries stay in `rx` (up to `rxlimit`
    /// of them, each in a different block). Once more shards are shared than one group
    /// holds, those before the group of `seqid` get compact copies of their own.
    fn compact_older_groups(&mut self, seqid: u32) {
        if self.shared <= self.shard_size {
            return;
        }
        let begin = seqid.wrapping_sub(seqid % self.shard_size as u32);
        let mut rx = std::mem::take(&mut self.rx);
        for e in rx.iter_mut() {
            if matches!(e.data, ShardBytes::Shared(_)) && itimediff(e.seqid, begin) < 0 {
                e.data = self.pooled_copy(&e.data);
                self.shared = self.shared.saturating_sub(1);
            }
        }
        self.rx = rx;
    }

    /// A copy of `bytes` in a buffer of the pool.
    fn pooled_copy(&mut self, bytes: &[u8]) -> ShardBytes {
        let mut v = self.pool.pop().unwrap_or_default();
        v.clear();
        v.extend_from_slice(bytes);
        ShardBytes::Pooled(v)
    }

    /// kcp-go-session.md §4.3 step 7: drop the head once rx exceeds `rxlimit`.
    fn enforce_limit(&mut self) {
        if self.rx.len() > self.rxlimit {
            if self.rx.first().is_some_and(|e| e.is_data) {
                self.stats.fec_short_shards += 1;
            }
            self.free_range(0, 1);
        }
    }

    /// kcp-go-session.md §4.3 step 8: drop expired entries from the head.
    fn expire(&mut self, now_ms: u32) {
        let expired = self
            .rx
            .iter()
            .take_while(|e| itimediff(now_ms, e.ts) > FEC_EXPIRE_MS as i32)
            .count();
        self.free_range(0, expired);
    }
}

/// Reads the FEC header: `(seqid, is_data)`. Needs the 8 bytes kcp-go requires
/// (kcp-go-session.md §2.2 step 5) and at most [`MTU_LIMIT`].
fn parse_shard(shard: &[u8]) -> Result<(u32, bool), FecError> {
    if shard.len() < FEC_HEADER_SIZE_PLUS2 {
        return Err(FecError::TooShort {
            len: shard.len(),
            min: FEC_HEADER_SIZE_PLUS2,
        });
    }
    if shard.len() > MTU_LIMIT {
        return Err(FecError::TooLong {
            len: shard.len(),
            max: MTU_LIMIT,
        });
    }
    let mut r = Reader::new(shard);
    let too_short = |_| FecError::TooShort {
        len: shard.len(),
        min: FEC_HEADER_SIZE_PLUS2,
    };
    let seqid = r.u32_le().map_err(too_short)?;
    match r.u16_le().map_err(too_short)? {
        TYPE_DATA => Ok((seqid, true)),
        TYPE_PARITY => Ok((seqid, false)),
        other => Err(FecError::NotFec(other)),
    }
}

/// kcp-go's `_itimediff`: the signed distance between two wrapping u32 values.
fn itimediff(later: u32, earlier: u32) -> i32 {
    later.wrapping_sub(earlier) as i32
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Datagram `k` of length `len`: byte i = (i·13 + k) mod 256, header space included.
    fn packet(len: usize, k: usize) -> Vec<u8> {
        (0..len).map(|i| ((i * 13 + k) % 256) as u8).collect()
    }

    /// Encodes `lens.len()` datagrams; returns the wire in order as (datagram, is_parity).
    fn encode_all(enc: &mut FecEncoder, lens: &[usize]) -> Vec<(Vec<u8>, bool)> {
        let mut wire = Vec::new();
        for (k, &len) in lens.iter().enumerate() {
            let mut pkt = packet(len, k);
            let mut parity = Vec::new();
            enc.encode(&mut pkt, |p| parity.push(p.to_vec())).unwrap();
            wire.push((pkt, false));
            wire.extend(parity.into_iter().map(|p| (p, true)));
        }
        wire
    }

    fn seqid(d: &[u8], offset: usize) -> u32 {
        u32::from_le_bytes(d[offset..offset + 4].try_into().unwrap())
    }

    /// Shards handed in as the caller's own copies (`decode_stored`) rebuild exactly what
    /// copied shards rebuild, and the ones left in groups that never complete are
    /// compacted, so no more than one group's worth stays shared.
    #[test]
    fn stored_shards_recover_alike_and_stay_bounded() {
        let (d, p) = (10, 3);
        let mut enc = FecEncoder::new(d, p, 0).unwrap();
        let lens: Vec<usize> = (0..d * 40).map(|k| 8 + 24 + 1 + (k * 37) % 900).collect();
        let wire = encode_all(&mut enc, &lens);
        let (mut plain, mut stored) = (
            FecDecoder::new(d, p).unwrap(),
            FecDecoder::new(d, p).unwrap(),
        );
        let (mut got_plain, mut got_stored) = (Vec::new(), Vec::new());
        for (i, (dgram, parity)) in wire.iter().enumerate() {
            let (group, k) = (i / (d + p), i % (d + p));
            // Even groups lose one data shard (rebuilt); odd ones lose five (never complete).
            let lost = if group % 2 == 0 {
                k == 3
            } else {
                (2..7).contains(&k)
            };
            if lost {
                continue;
            }
            let rec = plain.decode(7, dgram).unwrap();
            got_plain.extend(rec.iter().map(|r| r.to_vec()));
            let own = (!parity).then(|| Bytes::copy_from_slice(&dgram[FEC_HEADER_SIZE..]));
            let rec = stored.decode_stored(7, dgram, own).unwrap();
            got_stored.extend(rec.iter().map(|r| r.to_vec()));
            assert!(stored.shared <= d + p, "{} shards shared", stored.shared);
        }
        assert_eq!(got_plain.len(), 20, "one shard rebuilt per even group");
        assert_eq!(got_plain, got_stored);
        stored.release_idle();
        assert_eq!(stored.shared, 0, "an idle decoder pins no arena block");
    }

    /// Parity through a [`galois`](super::galois) kernel (coefficients read off the codec
    /// once) is byte for byte the codec's own: groups of mixed lengths, a short group after
    /// long ones, for several shard counts.
    #[test]
    fn a_kernel_computes_the_codecs_parity() {
        static REFERENCE: super::super::galois::Reference = super::super::galois::Reference;
        for (d, p) in [(10, 3), (1, 1), (3, 2), (20, 5)] {
            let lens: Vec<usize> = (0..d * 6)
                .map(|k| {
                    if k / d == 3 {
                        40 + k % 7
                    } else {
                        28 + (k * 37) % 1400
                    }
                })
                .collect();
            let mut codec = FecEncoder::new(d, p, 20).unwrap();
            let mut kernel = FecEncoder::new(d, p, 20).unwrap().with_kernel(&REFERENCE);
            assert_eq!(
                encode_all(&mut codec, &lens),
                encode_all(&mut kernel, &lens),
                "({d},{p})"
            );
        }
    }

    /// Feeds one group with the shards in `lost` dropped; checks every lost data shard
    /// comes back with its KCP bytes.
    fn check_loss(d: usize, p: usize, offset: usize, lost: &[usize]) {
        let mut enc = FecEncoder::new(d, p, offset).unwrap();
        let lens: Vec<usize> = (0..d).map(|k| offset + 8 + 1 + (k * 37) % 90).collect();
        let wire = encode_all(&mut enc, &lens);
        assert_eq!(wire.len(), d + p);
        let mut dec = FecDecoder::new(d, p).unwrap();
        let mut got: Vec<Vec<u8>> = Vec::new();
        for (i, (dgram, _)) in wire.iter().enumerate() {
            if lost.contains(&i) {
                continue;
            }
            let rec = dec.decode(7, &dgram[offset..]).unwrap();
            got.extend(rec.iter().map(|r| recovered_payload(r).unwrap().to_vec()));
        }
        let want: Vec<Vec<u8>> = (0..d)
            .filter(|k| lost.contains(k))
            .map(|k| wire[k].0[offset + 8..].to_vec())
            .collect();
        if d > p {
            assert_eq!(got, want, "({d},{p}) offset {offset} lost {lost:?}");
        } else {
            // With d ≤ p, parity arriving after its group resolved forms a "group" of its
            // own and rebuilds data again (kcp-go does the same; KCP drops the duplicate).
            let all: Vec<Vec<u8>> = (0..d).map(|k| wire[k].0[offset + 8..].to_vec()).collect();
            assert!(want.iter().all(|w| got.contains(w)), "lost {lost:?}");
            assert!(got.iter().all(|g| all.contains(g)), "lost {lost:?}");
        }
        // Shards arriving after the group resolved wait in rx (kcp-go-session.md §4.3).
        assert!(dec.pending_len() <= p, "group resolved");
    }

    /// Every subset of `0..n` with at most `max` elements.
    fn subsets(n: usize, max: usize) -> Vec<Vec<usize>> {
        let mut out = vec![vec![]];
        for i in 0..n {
            let more: Vec<Vec<usize>> = out
                .iter()
                .filter(|s| s.len() < max)
                .map(|s| s.iter().copied().chain([i]).collect())
                .collect();
            out.extend(more);
        }
        out
    }

    // kcp-go-session.md §4.2, §4.3
    #[test]
    fn round_trip_recovers_any_parity_sized_loss() {
        for (d, p) in [(10, 3), (1, 1), (3, 2)] {
            for lost in subsets(d + p, p) {
                check_loss(d, p, 20, &lost);
                check_loss(d, p, 0, &lost);
            }
        }
        // (20,5): a spread of 5-loss patterns rather than all 68k.
        for start in 0..25 {
            let lost: Vec<usize> = (0..5).map(|j| (start + j * 6) % 25).collect();
            check_loss(20, 5, 20, &lost);
        }
    }

    // kcp-go-session.md §4.1, §4.2
    #[test]
    fn encoder_layout_matches_spec() {
        let mut enc = FecEncoder::new(3, 2, 20).unwrap();
        let wire = encode_all(&mut enc, &[53, 57, 56]);
        let kinds: Vec<bool> = wire.iter().map(|w| w.1).collect();
        assert_eq!(kinds, [false, false, false, true, true]);
        for (i, (d, _)) in wire.iter().enumerate() {
            assert_eq!(seqid(d, 20), i as u32);
        }
        assert_eq!(&wire[0].0[24..28], &[0xf1, 0, 27, 0]);
        assert_eq!(
            wire[3].0.len(),
            57,
            "parity is as long as the longest data datagram"
        );
        assert_eq!(
            &wire[3].0[..20],
            &[0u8; 20],
            "crypto header space left zero"
        );
        assert_eq!(&wire[4].0[24..26], &[0xf2, 0]);
        // Row 0 of (3,2) is 01 01 01 (§4.5): parity 0 is the XOR of the padded shards.
        for j in 26..57 {
            let x = (0..3).fold(0u8, |a, k| a ^ wire[k].0.get(j).copied().unwrap_or(0));
            assert_eq!(wire[3].0[j], x, "byte {j}");
        }
    }

    // kcp-go-session.md §4.5
    #[test]
    fn parity_matches_spec_shard_vector() {
        let shard = |k: usize| -> Vec<u8> {
            (0..8)
                .map(|j| (((k + 1) * (j + 3) * 29 + 7 * k + 13 * j * j) % 256) as u8)
                .collect()
        };
        let codec = ReedSolomon::new(10, 3).unwrap();
        let mut shards: Vec<Vec<u8>> = (0..13)
            .map(|k| if k < 10 { shard(k) } else { vec![0; 8] })
            .collect();
        codec.encode(&mut shards).unwrap();
        let hexes: Vec<String> = shards[10..]
            .iter()
            .map(|s| s.iter().map(|b| format!("{b:02x}")).collect())
            .collect();
        assert_eq!(
            hexes,
            ["6c03ed9638c88fea", "0e50b324a2f63959", "27a997469b13b414"]
        );
    }

    // kcp-go-session.md §4.1: paws and the wrap at parity
    #[test]
    fn seqid_wraps_at_paws_on_parity() {
        for (d, p) in [(10, 3), (3, 2), (1, 1)] {
            let n = (d + p) as u32;
            let paws = u32::MAX / n * n;
            let mut enc = FecEncoder::new(d, p, 0).unwrap();
            enc.set_next_seqid(paws - 2 * n);
            let wire = encode_all(&mut enc, &vec![30; 4 * d]);
            let ids: Vec<u32> = wire.iter().map(|w| seqid(&w.0, 0)).collect();
            let want: Vec<u32> = (0..2 * n)
                .map(|i| paws - 2 * n + i)
                .chain(0..2 * n)
                .collect();
            assert_eq!(ids, want, "({d},{p})");
            // Lose the first data shard of every group; the decoder rebuilds all four.
            let mut dec = FecDecoder::new(d, p).unwrap();
            let mut rebuilt = 0;
            for (i, (dg, _)) in wire.iter().enumerate() {
                if i % (d + p) != 0 {
                    rebuilt += dec.decode(0, dg).unwrap().len();
                }
            }
            assert_eq!(rebuilt, 4, "({d},{p}) across the wrap");
        }
    }

    #[test]
    fn duplicates_are_ignored() {
        let mut enc = FecEncoder::new(3, 2, 0).unwrap();
        let wire = encode_all(&mut enc, &[20, 21, 22]);
        let mut dec = FecDecoder::new(3, 2).unwrap();
        assert!(dec.decode(0, &wire[1].0).unwrap().is_empty());
        assert!(dec.decode(0, &wire[1].0).unwrap().is_empty());
        assert_eq!(dec.pending_len(), 1);
        assert!(dec.decode(0, &wire[3].0).unwrap().is_empty());
        assert!(dec.decode(0, &wire[3].0).unwrap().is_empty());
        assert_eq!(
            dec.stats().fec_parity_shards,
            2,
            "every parity counts, duplicates too"
        );
        assert_eq!(dec.decode(0, &wire[4].0).unwrap().len(), 2);
        assert_eq!(dec.pending_len(), 0);
    }

    // kcp-go-session.md §4.3 step 8
    #[test]
    fn incomplete_groups_expire_after_60s() {
        let mut enc = FecEncoder::new(3, 2, 0).unwrap();
        let wire = encode_all(&mut enc, &[20; 6]);
        let mut dec = FecDecoder::new(3, 2).unwrap();
        dec.decode(u32::MAX - 10, &wire[0].0).unwrap(); // clock wraps in between
        dec.decode(60_000 - 11, &wire[5].0).unwrap();
        assert_eq!(dec.pending_len(), 2, "exactly 60000 ms old is kept");
        dec.decode(60_000 - 10, &wire[6].0).unwrap();
        assert_eq!(dec.pending().map(|p| p.0).collect::<Vec<_>>(), [5, 6]);
    }

    // kcp-go-session.md §4.3 step 7
    #[test]
    fn rx_is_bounded_and_counts_short_shards() {
        let mut dec = FecDecoder::new(3, 2).unwrap();
        for g in 0..40u32 {
            let mut s = vec![0u8; 10];
            s[..4].copy_from_slice(&(g * 5).to_le_bytes());
            s[4] = 0xf1;
            dec.decode(0, &s).unwrap();
            assert!(dec.pending_len() <= 15);
        }
        assert_eq!(dec.stats().fec_short_shards, 25);
    }

    // kcp-go-session.md §4.4
    #[test]
    fn autotune_learns_sender_counts() {
        let mut enc = FecEncoder::new(10, 3, 0).unwrap();
        let wire = encode_all(&mut enc, &vec![40; 100]);
        let mut dec = FecDecoder::new(1, 1).unwrap();
        let mut rebuilt = 0;
        for (i, (dg, _)) in wire.iter().enumerate() {
            let lost = i >= 39 && i % 13 == 4;
            if !lost {
                rebuilt += dec
                    .decode(0, dg)
                    .unwrap()
                    .iter()
                    .filter(|r| recovered_payload(r).is_some())
                    .count();
            }
        }
        assert_eq!((dec.data_shards(), dec.parity_shards()), (10, 3));
        assert!(rebuilt >= 4, "rebuilt {rebuilt} after tuning");
    }

    #[test]
    fn rejects_bad_input() {
        assert!(FecEncoder::new(0, 3, 0).is_err());
        assert!(FecEncoder::new(200, 57, 0).is_err());
        assert!(FecEncoder::new(3, 2, 1500).is_err());
        assert!(FecDecoder::new(3, 0).is_err());
        let mut enc = FecEncoder::new(3, 2, 20).unwrap();
        let err = enc.encode(&mut [0u8; 27], |_| {}).unwrap_err();
        assert_eq!(err, FecError::TooShort { len: 27, min: 28 });
        assert!(enc.encode(&mut [0u8; 1501], |_| {}).is_err());
        let mut dec = FecDecoder::new(3, 2).unwrap();
        assert!(dec.decode(0, &[0, 0, 0, 0, 0xf1, 0, 2]).is_err());
        assert_eq!(
            dec.decode(0, &[0, 0, 0, 0, 0x51, 0, 2, 0]).unwrap_err(),
            FecError::NotFec(0x51)
        );
        assert_eq!(recovered_payload(&[1, 0, 9]), None);
        assert_eq!(recovered_payload(&[4, 0, 9]), None);
        assert_eq!(recovered_payload(&[3, 0, 9, 0]), Some(&[9u8][..]));
    }

    #[test]
    fn encoder_reuses_its_buffers() {
        let mut enc = FecEncoder::new(10, 3, 20).unwrap();
        assert!(
            enc.parity.is_empty(),
            "nothing allocated before the first datagram"
        );
        encode_all(&mut enc, &[30; 10]);
        let ptrs: Vec<*const u8> = enc.parity.iter().map(|s| s.buf.as_ptr()).collect();
        encode_all(&mut enc, &(0..50).map(|k| 30 + k * 29).collect::<Vec<_>>());
        let after: Vec<*const u8> = enc.parity.iter().map(|s| s.buf.as_ptr()).collect();
        assert_eq!(ptrs, after, "no reallocation while encoding");
    }

    /// An idle encoder keeps only the pending group's partial parity, and the parity it
    /// makes afterwards is the same as without the release (kcp-go-session.md §4.2).
    #[test]
    fn encoder_release_keeps_pending_group_and_parity() {
        let pkts: Vec<Vec<u8>> = (0..23).map(|k| packet(30 + (k * 37) % 200, k)).collect();
        let run = |release_at: &[usize]| {
            let mut enc = FecEncoder::new(10, 3, 20).unwrap();
            let mut wire = Vec::new();
            for (k, p) in pkts.iter().enumerate() {
                if release_at.contains(&k) {
                    enc.release_idle();
                    let kept = if k % 10 == 0 { 0 } else { 3 };
                    assert_eq!(
                        enc.parity.len(),
                        kept,
                        "only a pending group's parity is kept"
                    );
                    assert!(enc.parity.iter().all(|s| s.buf.capacity() == s.buf.len()));
                    assert!(enc.codec.0.is_none());
                }
                let mut d = p.clone();
                let mut parity = Vec::new();
                enc.encode(&mut d, |x| parity.push(x.to_vec())).unwrap();
                wire.push(d);
                wire.extend(parity);
            }
            wire
        };
        assert_eq!(run(&[4, 10, 17]), run(&[]));
    }

    /// An idle decoder drops its buffers and older groups but still rebuilds a loss in the
    /// newest group across the release (kcp-go-session.md §4.3).
    #[test]
    fn decoder_release_keeps_newest_group() {
        let mut enc = FecEncoder::new(3, 2, 0).unwrap();
        let wire = encode_all(&mut enc, &[20, 21, 22, 23, 24, 25]);
        let mut dec = FecDecoder::new(3, 2).unwrap();
        // Group 0: data 0 lost, data 1 + 2 arrive, one parity arrives late and rebuilds it.
        assert!(dec.decode(0, &wire[1].0).unwrap().is_empty());
        assert!(dec.decode(0, &wire[2].0).unwrap().is_empty());
        assert_eq!(dec.decode(0, &wire[3].0).unwrap().len(), 1);
        // Its second parity stays in rx; group 1's first data shard too.
        dec.decode(0, &wire[4].0).unwrap();
        dec.decode(0, &wire[5].0).unwrap();
        assert_eq!(dec.pending_len(), 2);
        dec.release_idle();
        assert_eq!(dec.pending().collect::<Vec<_>>(), [(5, true)]);
        assert!(dec.work.is_empty() && dec.pool.is_empty() && dec.codec.0.is_none());
        // Group 1: data 6 lost; 7 and one parity rebuild it.
        assert!(dec.decode(0, &wire[7].0).unwrap().is_empty());
        let rec = dec.decode(0, &wire[8].0).unwrap();
        assert_eq!(rec.len(), 1);
        assert_eq!(
            recovered_payload(rec.get(0).unwrap()),
            Some(&wire[6].0[8..])
        );
    }

    proptest! {
        #[test]
        fn decoder_never_panics_and_stays_bounded(
            init in (1usize..12, 1usize..6),
            shards in proptest::collection::vec(
                (0u32..80, any::<bool>(), any::<bool>(), 0usize..64, 0u32..200_000, any::<u8>()),
                0..300,
            ),
        ) {
            let mut dec = FecDecoder::new(init.0, init.1).unwrap();
            for (seq, high, data, len, now, fill) in shards {
                let seq = if high { seq.wrapping_sub(40) } else { seq };
                let mut s = vec![fill; len];
                if len >= 6 {
                    s[..4].copy_from_slice(&seq.to_le_bytes());
                    s[4..6].copy_from_slice(&(if data { TYPE_DATA } else { TYPE_PARITY }).to_le_bytes());
                }
                if let Ok(rec) = dec.decode(now, &s) {
                    for r in rec.iter() {
                        prop_assert!(r.len() <= MTU_LIMIT);
                        let _ = recovered_payload(r);
                    }
                }
                prop_assert!(dec.pending_len() <= RX_FEC_MULTI * MAX_TOTAL_SHARDS + 1);
            }
        }
    }
}
