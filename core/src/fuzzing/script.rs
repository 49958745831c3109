//! Reading a fuzz input as a script: op bytes and their arguments, with every read total
//! (a missing byte reads as 0), so any input is a valid script.
use std::sync::OnceLock;

/// A cursor over the fuzz input.
#[derive(Debug)]
pub(crate) struct Script<'a> {
    rest: &'a [u8],
}

impl<'a> Script<'a> {
    pub(crate) fn new(data: &'a [u8]) -> Self {
        Script { rest: data }
    }

    /// The next byte, or `None` at the end.
    pub(crate) fn next(&mut self) -> Option<u8> {
        let (&b, tail) = self.rest.split_first()?;
        self.rest = tail;
        Some(b)
    }

    /// The next byte (0 at the end).
    pub(crate) fn byte(&mut self) -> u8 {
        self.next().unwrap_or(0)
    }

    /// The next two bytes, little-endian (missing bytes are 0).
    pub(crate) fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.byte(), self.byte()])
    }

    /// Up to `n` bytes.
    pub(crate) fn take(&mut self, n: usize) -> &'a [u8] {
        let (head, tail) = self.rest.split_at(n.min(self.rest.len()));
        self.rest = tail;
        head
    }

    /// A datagram: a little-endian u16 length, then that many bytes (fewer at the end).
    pub(crate) fn datagram(&mut self) -> &'a [u8] {
        let n = usize::from(self.u16());
        self.take(n)
    }
}

/// The period of the written stream ([`pattern_bytes`]): a prime, so no segment or fragment size lines up with it.
const PERIOD: usize = 65_521;
/// The longest run of stream bytes one call asks for (a 64 KiB segment's payload).
const MAX_RUN: usize = 1 << 16;

/// The stream bytes at offsets `0 .. PERIOD + MAX_RUN`, built once: with coverage
/// instrumentation a per-byte loop costs a hook call per byte, which dominated the scripted
/// targets' profile; a slice of this table is one `memcpy`.
fn table() -> &'static [u8] {
    static TABLE: OnceLock<Vec<u8>> = OnceLock::new();
    TABLE.get_or_init(|| {
        // Entry i is the byte of offset i mod PERIOD, so a run that starts before the period
        // wraps continues exactly as a run that starts after it (the reader and the writer
        // may cut the stream at different places).
        (0..PERIOD + MAX_RUN)
            .map(|i| {
                let o = (i % PERIOD) as u64;
                (o ^ (o >> 8).wrapping_mul(7) ^ (o >> 16).wrapping_mul(13)) as u8
            })
            .collect()
    })
}

/// `n` bytes (at most 64 KiB) of the stream every fuzz target writes, from `offset` on.
/// Each byte is a function of its offset only, so a reader can check what it got without
/// knowing which writer it came from (a replayed or re-addressed datagram still carries the
/// right bytes for its offset). Periodic with a prime period of 65 521 bytes, so bytes
/// delivered at a wrong offset are caught unless the offsets differ by a multiple of it.
pub(crate) fn pattern_bytes(offset: u64, n: usize) -> &'static [u8] {
    let start = (offset % PERIOD as u64) as usize;
    &table()[start..start + n.min(MAX_RUN)]
}

/// How many bytes a write op writes, from its argument byte: mostly up to 893 bytes (one
/// segment at the large MTU, a few at the small one), and for the top 32 values 193 bytes to
/// 6 KiB (many segments; a message of more fragments than the window at either MTU). Every
/// datagram a session sends is encrypted, so bytes written are what an input costs: most
/// writes are small, the large ones stay reachable.
pub(crate) fn write_len(b: u8) -> usize {
    let b = usize::from(b);
    if b < 0xE0 {
        b * 4 + 1
    } else {
        (b - 0xDF) * 192 + 1
    }
}

/// Checks bytes read from a stream against [`pattern_bytes`].
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct StreamCheck {
    /// Bytes read so far.
    pub(crate) offset: u64,
}

impl StreamCheck {
    /// Asserts that `data` continues the stream (when `strict`: only authenticated modes
    /// can promise it, a forged datagram can carry anything otherwise).
    pub(crate) fn check(&mut self, data: &[u8], strict: bool) {
        if strict {
            let want = pattern_bytes(self.offset, data.len());
            if data != want {
                let i = data.iter().zip(want).position(|(a, b)| a != b);
                let at = self.offset + i.unwrap_or(0) as u64;
                panic!("stream byte {at} differs from what was written");
            }
        }
        self.offset += data.len() as u64;
    }
}

/// Where a queued datagram goes next, from one mutation byte: delivered as it is (most
/// often), dropped, duplicated, corrupted, truncated, or sent from another address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fate {
    Deliver,
    Drop,
    Duplicate,
    /// Flip the bits of `mask` in the byte at this position (modulo the length).
    Corrupt(u8, u8),
    Truncate,
    /// Deliver it from another source address (NAT rebinding, or an attacker's replay).
    Readdress,
}

impl Fate {
    pub(crate) fn read(s: &mut Script<'_>) -> Fate {
        match s.byte() % 10 {
            0..=3 => Fate::Deliver,
            4 => Fate::Drop,
            5 => Fate::Duplicate,
            6 => Fate::Corrupt(s.byte(), s.byte() | 1),
            7 => Fate::Truncate,
            8 => Fate::Readdress,
            _ => Fate::Deliver,
        }
    }

    /// The datagrams to deliver for `d` (zero, one or two copies, possibly altered).
    pub(crate) fn apply(self, mut d: Vec<u8>) -> Vec<Vec<u8>> {
        match self {
            Fate::Deliver | Fate::Readdress => vec![d],
            Fate::Drop => Vec::new(),
            Fate::Duplicate => vec![d.clone(), d],
            Fate::Corrupt(at, mask) => {
                if !d.is_empty() {
                    let i = at as usize % d.len();
                    d[i] ^= mask;
                }
                vec![d]
            }
            Fate::Truncate => {
                d.truncate(d.len() / 2);
                vec![d]
            }
        }
    }
}
