//! `Session` = packet crypto + FEC + KCP, one datagram machine per remote peer
//! (kcp-go-session.md §2), with the uniform driver API.
use std::collections::VecDeque;
use std::time::Instant;

use rand_core::RngCore;

use super::aead::{AeadCrypt, AeadError, AeadKind, ReplayWindow, AEAD_HEADER, AEAD_TAG};
use super::crypt::{CipherKind, CryptError, PacketCrypt, CRYPT_HEADER};
use super::fec::{
    recovered_payload, FecDecoder, FecEncoder, FecError, FEC_HEADER_SIZE_PLUS2, MAX_TOTAL_SHARDS,
    TYPE_DATA, TYPE_PARITY,
};
use super::key::kcptun_key;
use super::snmp::Snmp;
use crate::driver::{Machine, Transmit};
use crate::kcp::{Kcp, KcpConfig, KcpEvent, RecvError, WriteError};

/// How datagrams are protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CryptMode {
    /// kcp-go with `block = nil`: no crypto header at all (kcptun 20210922 never uses it).
    Raw,
    /// kcp-go's nonce + CRC32 header and one of its 13 ciphers (`none` still sends the header).
    Block(CipherKind),
    /// tether's authenticated mode (AEAD + replay window). **Not kcp-go-compatible.**
    Aead(AeadKind),
}

impl CryptMode {
    /// Maps a kcptun `--crypt` name: the 13 kcp-go names, the two AEAD names, and, as kcptun
    /// does, AES-256 for anything else (the bool says whether the name was known).
    pub fn from_kcptun_name(name: &str) -> (CryptMode, bool) {
        if let Some(k) = AeadKind::from_name(name) {
            return (CryptMode::Aead(k), true);
        }
        let (k, known) = CipherKind::from_kcptun_name(name);
        (CryptMode::Block(k), known)
    }

    /// Header bytes in front of the FEC/KCP payload.
    pub fn header(self) -> usize {
        match self {
            CryptMode::Raw => 0,
            CryptMode::Block(_) => CRYPT_HEADER,
            CryptMode::Aead(_) => AEAD_HEADER,
        }
    }

    /// Bytes after the payload (the AEAD tag).
    pub fn trailer(self) -> usize {
        match self {
            CryptMode::Aead(_) => AEAD_TAG,
            _ => 0,
        }
    }
}

/// Everything a session needs besides the conv, the clock and the RNG.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// KCP knobs. `mtu` is the largest datagram on the wire, all headers included;
    /// `reserved` is computed from the crypto and FEC settings.
    pub kcp: KcpConfig,
    /// Packet protection.
    pub crypt: CryptMode,
    /// The 32-byte key (kcptun derives it with [`kcptun_key`]).
    pub key: [u8; 32],
    /// FEC data shards (0 = off).
    pub data_shards: usize,
    /// FEC parity shards (0 = off).
    pub parity_shards: usize,
}

impl SessionConfig {
    /// kcptun's words: `--crypt NAME --key PASSWORD --datashard D --parityshard P`.
    pub fn kcptun(
        kcp: KcpConfig,
        crypt: &str,
        key: &str,
        data_shards: usize,
        parity_shards: usize,
    ) -> Self {
        SessionConfig {
            kcp,
            crypt: CryptMode::from_kcptun_name(crypt).0,
            key: kcptun_key(key),
            data_shards,
            parity_shards,
        }
    }

    /// Whether FEC is on (both shard counts above zero, as kcp-go requires).
    pub fn fec(&self) -> bool {
        self.data_shards > 0 && self.parity_shards > 0
    }

    /// Checks what kcp-go would silently turn into "no FEC" or reject, with a message saying
    /// what to change; then the KCP knobs as they will be used (header space reserved).
    /// `0/0` is FEC off, as in kcptun.
    pub fn validate(&self) -> Result<(), SessionConfigError> {
        let (data, parity) = (self.data_shards, self.parity_shards);
        if (data == 0) != (parity == 0) {
            // kcp-go-session.md §4: FEC is on only when both are above 0.
            return Err(SessionConfigError::FecHalfOff { data, parity });
        }
        if data + parity > MAX_TOTAL_SHARDS {
            return Err(SessionConfigError::FecTooManyShards { data, parity });
        }
        self.effective_kcp().validate()?;
        Ok(())
    }

    /// The KCP config actually used: header space reserved, MTU reduced by the AEAD tag.
    pub fn effective_kcp(&self) -> KcpConfig {
        let mut k = self.kcp;
        let fec = if self.fec() { FEC_HEADER_SIZE_PLUS2 } else { 0 };
        k.reserved = (self.crypt.header() + fec) as u32;
        k.mtu = k.mtu.saturating_sub(self.crypt.trailer() as u32);
        k
    }
}

/// A [`SessionConfig`] that cannot work as the user meant it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SessionConfigError {
    /// One shard count is 0 and the other is not.
    #[error(
        "FEC needs both --datashard and --parityshard above 0 (got {data}/{parity}; kcp-go would \
         silently run without FEC): use --datashard 0 --parityshard 0 to turn FEC off, or e.g. \
         --datashard 10 --parityshard 3"
    )]
    FecHalfOff {
        /// Requested data shards.
        data: usize,
        /// Requested parity shards.
        parity: usize,
    },
    /// More shards per group than Reed–Solomon over GF(2^8) has.
    #[error(
        "FEC groups of --datashard {data} + --parityshard {parity} shards exceed the 256 that \
         Reed-Solomon over GF(2^8) allows (kcp-go would silently run without FEC): use a sum \
         of at most 256, e.g. --datashard 10 --parityshard 3, or --datashard 0 --parityshard 0 \
         for no FEC"
    )]
    FecTooManyShards {
        /// Requested data shards.
        data: usize,
        /// Requested parity shards.
        parity: usize,
    },
    /// A KCP knob kcp-go would reject.
    #[error(transparent)]
    Kcp(#[from] crate::kcp::ConfigError),
}

/// Why a datagram was dropped by [`Session::handle_input`]. Never fatal to the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SessionInputError {
    /// kcp-go CRC mismatch or short datagram.
    #[error(transparent)]
    Crypt(#[from] CryptError),
    /// AEAD tag or replay failure.
    #[error(transparent)]
    Aead(#[from] AeadError),
    /// Fewer than 24 bytes after the crypto header.
    #[error("datagram of {0} bytes after the crypto header is too short for KCP")]
    TooShort(usize),
    /// An FEC-tagged datagram shorter than its FEC header.
    #[error("FEC datagram of {0} bytes is shorter than its 8-byte header")]
    FecTooShort(usize),
    /// The FEC decoder refused the shard.
    #[error(transparent)]
    Fec(#[from] FecError),
    /// KCP rejected the packet.
    #[error(transparent)]
    Kcp(#[from] crate::kcp::InputError),
}

/// The crypto layer of one session or listener.
pub(super) enum Crypt {
    Raw,
    Block(PacketCrypt),
    Aead(Box<AeadCrypt>),
}

impl Crypt {
    pub(super) fn new(mode: CryptMode, key: &[u8; 32]) -> Crypt {
        match mode {
            CryptMode::Raw => Crypt::Raw,
            CryptMode::Block(k) => Crypt::Block(PacketCrypt::new(k, key)),
            CryptMode::Aead(k) => Crypt::Aead(Box::new(AeadCrypt::new(k, key))),
        }
    }

    fn seal(&mut self, d: &mut Vec<u8>, rng: &mut dyn RngCore) {
        match self {
            Crypt::Raw => {}
            Crypt::Block(c) => c.seal(d, rng),
            Crypt::Aead(c) => c.seal(d, rng),
        }
    }

    /// Decrypts and checks a datagram in place (kcp-go-session.md §2.2 step 2). Returns the
    /// payload range and, in AEAD mode, the replay counter the owner must check.
    pub(super) fn open(
        &self,
        buf: &mut [u8],
    ) -> Result<(std::ops::Range<usize>, Option<u64>), SessionInputError> {
        let total = buf.len();
        match self {
            Crypt::Raw => Ok((0..total, None)),
            Crypt::Block(c) => {
                let n = c.open(buf)?.len();
                Ok((total - n..total, None))
            }
            Crypt::Aead(c) => {
                let (ctr, r) = c.open(buf)?;
                Ok((r, Some(ctr)))
            }
        }
    }
}

/// Where the conv of an unprotected payload sits (kcp-go-session.md §6 step 2): returns
/// `(conv, sn)` or `None` for parity and runts.
pub(super) fn peek_conv(payload: &[u8]) -> Option<(u32, u32)> {
    let le32 = |b: &[u8], at: usize| {
        b.get(at..at + 4)
            .map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
    };
    let kind = payload
        .get(4..6)
        .map(|s| u16::from_le_bytes([s[0], s[1]]))?;
    match kind {
        TYPE_PARITY => None,
        TYPE_DATA if payload.len() >= FEC_HEADER_SIZE_PLUS2 + 24 => {
            Some((le32(payload, 8)?, le32(payload, 8 + 12)?))
        }
        TYPE_DATA => None,
        _ => Some((le32(payload, 0)?, le32(payload, 12)?)),
    }
}

/// One kcp-go session.
pub struct Session {
    kcp: Kcp,
    mode: CryptMode,
    crypt: Crypt,
    replay: ReplayWindow,
    enc: Option<FecEncoder>,
    dec: Option<FecDecoder>,
    rng: Box<dyn RngCore + Send>,
    out: VecDeque<Vec<u8>>,
    pool: Vec<Vec<u8>>,
    parity: Vec<Vec<u8>>,
    scratch: Vec<u8>,
    snmp: Snmp,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("conv", &self.kcp.conv())
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

/// Most pooled buffers kept for reuse.
const POOL_LIMIT: usize = 256;

impl Session {
    /// A session for conversation `conv`. `rng` supplies the per-datagram nonces (a CSPRNG in
    /// production; seeded in tests).
    pub fn new(conv: u32, cfg: &SessionConfig, now: Instant, rng: Box<dyn RngCore + Send>) -> Self {
        let crypt = Crypt::new(cfg.crypt, &cfg.key);
        let fec_offset = cfg.crypt.header();
        let (enc, dec) = if cfg.fec() {
            (
                FecEncoder::new(cfg.data_shards, cfg.parity_shards, fec_offset).ok(),
                FecDecoder::new(cfg.data_shards, cfg.parity_shards).ok(),
            )
        } else {
            (None, None)
        };
        Session {
            kcp: Kcp::new(conv, cfg.effective_kcp(), now),
            mode: cfg.crypt,
            crypt,
            replay: ReplayWindow::default(),
            enc,
            dec,
            rng,
            out: VecDeque::new(),
            pool: Vec::new(),
            parity: Vec::new(),
            scratch: Vec::new(),
            snmp: Snmp::default(),
        }
    }

    /// A client session: the conv comes from the injected RNG, read as kcp-go does (4 random
    /// bytes, little-endian; kcp-go-session.md §7).
    pub fn dial(cfg: &SessionConfig, now: Instant, mut rng: Box<dyn RngCore + Send>) -> Self {
        let mut b = [0u8; 4];
        rng.fill_bytes(&mut b);
        let mut s = Session::new(u32::from_le_bytes(b), cfg, now, rng);
        s.snmp.active_opens += 1;
        s
    }

    /// The conversation id.
    pub fn conv(&self) -> u32 {
        self.kcp.conv()
    }
    /// The KCP control block (read-only).
    pub fn kcp(&self) -> &Kcp {
        &self.kcp
    }
    /// The packet protection in use.
    pub fn crypt_mode(&self) -> CryptMode {
        self.mode
    }
    /// kcp-go's `Write`: see [`Kcp::write`].
    pub fn write(&mut self, data: &[u8]) -> Result<usize, WriteError> {
        self.kcp.write(data)
    }
    /// Whether [`Session::write`] would accept data.
    pub fn can_write(&self) -> bool {
        self.kcp.can_write()
    }
    /// Reads stream bytes (kcp-go's `Read`).
    pub fn read(&mut self, buf: &mut [u8]) -> Result<usize, RecvError> {
        self.kcp.recv_stream(buf)
    }
    /// Reads one message (message mode).
    pub fn recv(&mut self, buf: &mut [u8]) -> Result<usize, RecvError> {
        self.kcp.recv(buf)
    }

    /// All 24 kcp-go counters for this session.
    pub fn snmp(&self) -> Snmp {
        let mut s = self.snmp;
        s.add_kcp(&self.kcp.stats());
        if let Some(d) = &self.dec {
            let f = d.stats();
            s.fec_parity_shards += f.fec_parity_shards;
            s.fec_short_shards += f.fec_short_shards;
        }
        s
    }

    /// Session-level counters the listener maintains (opens, source errors).
    pub(super) fn snmp_mut(&mut self) -> &mut Snmp {
        &mut self.snmp
    }

    fn take_buf(&mut self) -> Vec<u8> {
        self.pool.pop().unwrap_or_default()
    }

    fn give_buf(&mut self, mut b: Vec<u8>) {
        if self.pool.len() < POOL_LIMIT {
            b.clear();
            self.pool.push(b);
        }
    }

    /// Turns KCP's output (header space reserved) into protected datagrams: FEC stamp and
    /// parity, then nonce + CRC + encryption (kcp-go-session.md §2.1).
    fn pump(&mut self, now: Instant) {
        loop {
            let mut d = self.take_buf();
            if self.kcp.poll_transmit(now, &mut d).is_none() {
                self.give_buf(d);
                return;
            }
            self.fec_encode(&mut d);
            self.protect_and_queue(d);
            let parity = std::mem::take(&mut self.parity);
            for p in parity {
                self.protect_and_queue(p);
            }
        }
    }

    fn fec_encode(&mut self, d: &mut [u8]) {
        let Session {
            enc, parity, pool, ..
        } = self;
        if let Some(enc) = enc {
            let _ = enc.encode(d, |p| {
                let mut v = pool.pop().unwrap_or_default();
                v.clear();
                v.extend_from_slice(p);
                parity.push(v);
            });
        }
    }

    fn protect_and_queue(&mut self, mut d: Vec<u8>) {
        self.crypt.seal(&mut d, &mut *self.rng);
        self.snmp.out_pkts += 1;
        self.snmp.out_bytes += d.len() as u64;
        self.out.push_back(d);
    }

    /// Removes the crypto layer of `scratch` in place; returns the range of the FEC/KCP
    /// payload. Failures are counted as `InCsumErrors`.
    fn unprotect(&mut self) -> Result<std::ops::Range<usize>, SessionInputError> {
        let (range, ctr) = self.crypt.open(&mut self.scratch).inspect_err(|e| {
            if !matches!(
                e,
                SessionInputError::Crypt(CryptError::TooShort { .. })
                    | SessionInputError::Aead(AeadError::TooShort(_))
            ) {
                self.snmp.in_csum_errors += 1;
            }
        })?;
        self.check_replay(ctr)?;
        Ok(range)
    }

    fn check_replay(&mut self, ctr: Option<u64>) -> Result<(), SessionInputError> {
        match ctr {
            Some(c) if !self.replay.accept(c) => {
                self.snmp.in_csum_errors += 1;
                Err(AeadError::Replay(c).into())
            }
            _ => Ok(()),
        }
    }

    /// Input of a payload the listener already unprotected (with the AEAD counter, if any).
    pub(super) fn handle_opened(
        &mut self,
        now: Instant,
        payload: &[u8],
        ctr: Option<u64>,
    ) -> Result<(), SessionInputError> {
        let r = self.check_replay(ctr).and_then(|()| {
            self.scratch.clear();
            self.scratch.extend_from_slice(payload);
            self.kcp_input(now, 0..payload.len())
        });
        self.pump(now);
        r
    }

    /// kcp-go `kcpInput` (kcp-go-session.md §2.2 step 5) on an unprotected payload.
    fn kcp_input(
        &mut self,
        now: Instant,
        range: std::ops::Range<usize>,
    ) -> Result<(), SessionInputError> {
        let payload = &self.scratch[range];
        if payload.len() < 24 {
            return Err(SessionInputError::TooShort(payload.len()));
        }
        self.snmp.in_pkts += 1;
        self.snmp.in_bytes += payload.len() as u64;
        let kind = u16::from_le_bytes([payload[4], payload[5]]);
        if kind != TYPE_DATA && kind != TYPE_PARITY {
            return Ok(self.kcp.handle_packet(now, payload, true)?);
        }
        if payload.len() < FEC_HEADER_SIZE_PLUS2 {
            self.snmp.in_errs += 1;
            return Err(SessionInputError::FecTooShort(payload.len()));
        }
        let Session { kcp, dec, snmp, .. } = self;
        // kcp-go-session.md §2.2: a session without FEC still decodes FEC datagrams, starting
        // from (1,1) and letting autotune learn the sender's shard counts.
        let dec = dec.get_or_insert_with(|| FecDecoder::new(1, 1).expect("1/1 is a valid code"));
        let now_ms = kcp.wire_ms(now);
        let recovered = dec.decode(now_ms, payload)?;
        let mut result = Ok(());
        if kind == TYPE_DATA {
            result = kcp
                .handle_packet(now, &payload[FEC_HEADER_SIZE_PLUS2..], true)
                .map_err(Into::into);
        }
        for r in recovered.iter() {
            match recovered_payload(r) {
                Some(p) => {
                    if kcp.handle_packet(now, p, false).is_ok() {
                        snmp.fec_recovered += 1;
                    }
                }
                None => snmp.fec_errs += 1,
            }
        }
        result
    }
}

impl Machine for Session {
    type Event = KcpEvent;
    type InputError = SessionInputError;

    fn handle_input(&mut self, now: Instant, data: &[u8]) -> Result<(), SessionInputError> {
        let mut scratch = std::mem::take(&mut self.scratch);
        scratch.clear();
        scratch.extend_from_slice(data);
        self.scratch = scratch;
        let r = self
            .unprotect()
            .and_then(|range| self.kcp_input(now, range));
        self.pump(now);
        r
    }

    fn poll_transmit(&mut self, now: Instant, buf: &mut Vec<u8>) -> Option<Transmit> {
        if self.out.is_empty() {
            self.pump(now);
        }
        let d = self.out.pop_front()?;
        buf.extend_from_slice(&d);
        let len = d.len();
        self.give_buf(d);
        Some(Transmit { len })
    }

    fn poll_timeout(&self) -> Option<Instant> {
        if !self.out.is_empty() {
            return Some(self.kcp.last_input_time());
        }
        self.kcp.poll_timeout()
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.kcp.handle_timeout(now);
        self.pump(now);
    }

    fn poll_event(&mut self) -> Option<KcpEvent> {
        self.kcp.poll_event()
    }
}
