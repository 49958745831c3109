//! `Session` = packet crypto + FEC + KCP, one datagram machine per remote peer
//! (kcp-go-session.md §2), with the uniform driver API.
use std::collections::VecDeque;
use std::time::Instant;

use rand_core::RngCore;

use super::aead::{AeadError, AeadKind, Role, AEAD_HEADER, AEAD_TAG};
use super::amplification::{control_bytes, Amplification};
use super::crypt::{CipherKind, CryptError, PacketCrypt, CRYPT_HEADER};
use super::fec::{
    recovered_payload, FecDecoder, FecEncoder, FecError, FEC_HEADER_SIZE, FEC_HEADER_SIZE_PLUS2,
    MAX_TOTAL_SHARDS, TYPE_DATA, TYPE_PARITY,
};
use super::handshake::{AeadChannel, Opened};
use super::key::kcptun_key;
use super::snmp::Snmp;
use crate::driver::{ByteStream, Bytes, BytesMut, Machine, StreamError, Transmit};
use crate::kcp::{Kcp, KcpConfig, KcpEvent, RecvError, WriteError, MTU_LIMIT};
use crate::wire::Reader;

/// How datagrams are protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CryptMode {
    /// kcp-go with `block = nil`: no crypto header at all (kcptun 20210922 never uses it).
    Raw,
    /// kcp-go's nonce + CRC32 header and one of its 13 ciphers (`none` still sends the header).
    Block(CipherKind),
    /// tether's authenticated mode (handshake, per-session per-direction AEAD keys, replay
    /// window; see `session::handshake`). **Not kcp-go-compatible.**
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

    /// Whether a cipher uses the key (all but `none` and the raw mode).
    pub fn uses_key(self) -> bool {
        !matches!(self, CryptMode::Raw | CryptMode::Block(CipherKind::None))
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
    ///
    /// For `none` the key is left all zero, since no cipher reads it: change `crypt`
    /// afterwards only together with `key`.
    pub fn kcptun(
        kcp: KcpConfig,
        crypt: &str,
        key: &str,
        data_shards: usize,
        parity_shards: usize,
    ) -> Self {
        let crypt = CryptMode::from_kcptun_name(crypt).0;
        SessionConfig {
            kcp,
            crypt,
            // `none` and the raw mode have no cipher to key: no PBKDF2 for them.
            key: if crypt.uses_key() {
                kcptun_key(key)
            } else {
                [0; 32]
            },
            data_shards,
            parity_shards,
        }
    }

    /// Whether FEC is on (both shard counts above zero, as kcp-go requires).
    pub fn fec(&self) -> bool {
        self.data_shards > 0 && self.parity_shards > 0
    }

    /// The largest datagram a session takes: kcp-go's 1 500-byte `mtuLimit`
    /// (kcp-go-session.md §1), or our own `mtu` if larger. Not our MSS: a peer's `--mtu` may
    /// exceed ours.
    pub fn max_datagram(&self) -> usize {
        (self.kcp.mtu as usize).max(MTU_LIMIT)
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
    /// Larger than [`SessionConfig::max_datagram`]: dropped before any copy (counted as
    /// `InErrs`).
    #[error("datagram of {len} bytes is larger than the {max}-byte limit: the peer's --mtu must be at most 1500")]
    TooLarge {
        /// Datagram size.
        len: usize,
        /// The limit.
        max: usize,
    },
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

/// The crypto layer of one session (or, for the kcp-go modes, of a listener).
pub(super) enum Crypt {
    Raw,
    Block(PacketCrypt),
    Aead(Box<AeadChannel>),
}

impl Crypt {
    /// The crypto of a session for `conv` on the `role` side (the role matters only to the
    /// authenticated mode).
    pub(super) fn new(mode: CryptMode, key: &[u8; 32], conv: u32, role: Role) -> Crypt {
        match mode {
            CryptMode::Raw => Crypt::Raw,
            CryptMode::Block(k) => Crypt::Block(PacketCrypt::new(k, key)),
            CryptMode::Aead(k) => Crypt::Aead(Box::new(AeadChannel::new(k, key, conv, role))),
        }
    }

    /// Protects one datagram in place; only the authenticated mode can fail (counter spent).
    fn seal(&mut self, d: &mut Vec<u8>, rng: &mut dyn RngCore) -> Result<(), AeadError> {
        match self {
            Crypt::Raw => Ok(()),
            Crypt::Block(c) => {
                c.seal(d, rng);
                Ok(())
            }
            Crypt::Aead(c) => c.seal_data(d),
        }
    }

    /// Decrypts and checks a datagram in place (kcp-go-session.md §2.2 step 2); in the
    /// authenticated mode also runs the handshake and the replay check.
    #[deny(clippy::indexing_slicing, clippy::unwrap_used, clippy::expect_used)]
    pub(super) fn open(
        &mut self,
        buf: &mut [u8],
        rng: &mut dyn RngCore,
    ) -> Result<Opened, SessionInputError> {
        let total = buf.len();
        match self {
            Crypt::Raw => Ok(Opened::Data(0..total)),
            Crypt::Block(c) => {
                let n = c.open(buf)?.len();
                Ok(Opened::Data(total - n..total))
            }
            Crypt::Aead(c) => Ok(c.open(buf, rng)?),
        }
    }
}

/// Whether a [`Session::handle_input`] error means the datagram did not authenticate (failed
/// CRC/tag, replay, unexpected handshake datagram): such datagrams must not refresh any
/// liveness state.
pub(super) fn unauthenticated(e: &SessionInputError) -> bool {
    matches!(e, SessionInputError::Crypt(_) | SessionInputError::Aead(_))
}

/// Where the conv of an unprotected payload sits (kcp-go-session.md §6 step 2): returns
/// `(conv, sn)` or `None` for parity and runts.
#[deny(clippy::indexing_slicing, clippy::unwrap_used, clippy::expect_used)]
pub(super) fn peek_conv(payload: &[u8]) -> Option<(u32, u32)> {
    let le32 = |at: usize| Reader::new(payload.get(at..)?).u32_le().ok();
    let kind = Reader::new(payload.get(4..)?).u16_le().ok()?;
    match kind {
        TYPE_PARITY => None,
        TYPE_DATA if payload.len() >= FEC_HEADER_SIZE_PLUS2 + 24 => Some((le32(8)?, le32(8 + 12)?)),
        TYPE_DATA => None,
        _ => Some((le32(0)?, le32(12)?)),
    }
}

/// One kcp-go session.
pub struct Session {
    kcp: Kcp,
    mode: CryptMode,
    crypt: Crypt,
    enc: Option<FecEncoder>,
    dec: Option<FecDecoder>,
    rng: Box<dyn RngCore + Send>,
    /// Protected datagrams, each with its cost against an unverified peer's budget (its
    /// bytes minus its control segments; 0 for a control-only datagram).
    out: VecDeque<(Vec<u8>, usize)>,
    pool: Vec<Vec<u8>>,
    parity: Vec<Vec<u8>>,
    scratch: Vec<u8>,
    max_datagram: usize,
    amp: Amplification,
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

/// Buffers the session keeps for its own parity and control datagrams before sent buffers
/// go back to KCP (whose datagrams are moved into the session, not copied).
const SESSION_POOL_RESERVE: usize = 32;

impl Session {
    /// A server-side session for conversation `conv` (in the authenticated mode it answers
    /// the client's hello). `rng` supplies the per-datagram nonces and hello randoms (a CSPRNG
    /// in production; seeded in tests).
    pub fn new(conv: u32, cfg: &SessionConfig, now: Instant, rng: Box<dyn RngCore + Send>) -> Self {
        Session::with_role(conv, cfg, now, rng, Role::Server)
    }

    /// A client-side session for conversation `conv` (in the authenticated mode it sends the
    /// hello). [`Session::dial`] draws the conv from the RNG.
    pub fn client(
        conv: u32,
        cfg: &SessionConfig,
        now: Instant,
        rng: Box<dyn RngCore + Send>,
    ) -> Self {
        Session::with_role(conv, cfg, now, rng, Role::Client)
    }

    pub(super) fn with_role(
        conv: u32,
        cfg: &SessionConfig,
        now: Instant,
        rng: Box<dyn RngCore + Send>,
        role: Role,
    ) -> Self {
        let crypt = Crypt::new(cfg.crypt, &cfg.key, conv, role);
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
            enc,
            dec,
            rng,
            out: VecDeque::new(),
            pool: Vec::new(),
            parity: Vec::new(),
            scratch: Vec::new(),
            max_datagram: cfg.max_datagram(),
            amp: Amplification::verified(),
            snmp: Snmp::default(),
        }
    }

    /// A client session: the conv comes from the injected RNG, read as kcp-go does (4 random
    /// bytes, little-endian; kcp-go-session.md §7).
    pub fn dial(cfg: &SessionConfig, now: Instant, mut rng: Box<dyn RngCore + Send>) -> Self {
        let mut b = [0u8; 4];
        rng.fill_bytes(&mut b);
        let mut s = Session::client(u32::from_le_bytes(b), cfg, now, rng);
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
    /// [`Session::write`] of an owned chunk, queued without a copy ([`Kcp::write_chunk`]).
    pub fn write_chunk(&mut self, data: Bytes) -> Result<usize, WriteError> {
        self.kcp.write_chunk(data)
    }
    /// Writes `data` as one KCP message ([`Kcp::write_message`]; for message-mode peers such
    /// as ikcp).
    pub fn write_message(&mut self, data: &[u8]) -> Result<usize, WriteError> {
        self.kcp.write_message(data)
    }

    /// Closes the session: see [`Kcp::close`] (one last flush, then [`KcpEvent::Closed`]
    /// as the final event; input is ignored and no timer is armed afterwards).
    pub fn close(&mut self) {
        self.kcp.close();
    }
    /// [`Session::close`] with the owner's reason (a listener closing a dead link).
    pub fn close_with(&mut self, reason: crate::kcp::KcpCloseReason) {
        self.kcp.close_with(reason);
    }
    /// Whether the session was closed.
    pub fn is_closed(&self) -> bool {
        self.kcp.is_closed()
    }

    /// A window probe the peer answers: see [`Kcp::send_keepalive`].
    pub fn send_keepalive(&mut self) {
        self.kcp.send_keepalive();
    }
    /// Whether [`Session::write`] would accept data.
    pub fn can_write(&self) -> bool {
        self.kcp.can_write()
    }
    /// Reads stream bytes as an owned chunk, a whole received segment when it fits (see
    /// [`Kcp::read_chunk`]).
    pub fn read_chunk(&mut self, max: usize) -> Result<Bytes, RecvError> {
        self.kcp.read_chunk(max)
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

    /// Authenticated mode: whether the peer proved this session's keys (always true in the
    /// kcp-go modes). A listener announces a server session only once this holds.
    pub fn is_verified(&self) -> bool {
        match &self.crypt {
            Crypt::Aead(c) => c.is_proven(),
            _ => true,
        }
    }

    /// Authenticated mode: whether this side's datagram counter is spent. The session sends
    /// nothing more and must be closed ([`super::CloseReason::CounterExhausted`]).
    pub fn is_exhausted(&self) -> bool {
        matches!(&self.crypt, Crypt::Aead(c) if c.is_exhausted())
    }

    /// Test hook: jumps the authenticated mode's send counter.
    #[cfg(test)]
    pub(crate) fn set_send_counter(&mut self, c: u64) {
        if let Crypt::Aead(ch) = &mut self.crypt {
            ch.set_send_counter(c);
        }
    }

    /// Whether the session is idle: no datagram waiting to be sent and KCP idle (nothing
    /// queued, unacknowledged or unread; see [`Kcp::is_idle`]).
    pub fn is_idle(&self) -> bool {
        self.out.is_empty() && self.kcp.is_idle()
    }

    /// Gives back the memory an idle session does not need (issue 13 item 5): KCP's pool
    /// and queues, the FEC codecs and shard buffers (see [`FecEncoder::release_idle`] and
    /// [`FecDecoder::release_idle`] for the state that stays), and the datagram pool and
    /// scratch space. Does nothing while the session is busy; the next datagram or write
    /// allocates again.
    pub fn release_idle(&mut self) {
        if !self.is_idle() {
            return;
        }
        self.kcp.release_idle();
        if let Some(enc) = &mut self.enc {
            enc.release_idle();
        }
        if let Some(dec) = &mut self.dec {
            dec.release_idle();
        }
        self.out = VecDeque::new();
        self.pool = Vec::new();
        self.parity = Vec::new();
        self.scratch = Vec::new();
    }

    /// The anti-amplification state: whether the peer is verified, and the bytes counted
    /// while it was not.
    pub fn amplification(&self) -> Amplification {
        self.amp
    }

    /// Limits what this session sends to what it received until the peer acknowledges a
    /// PUSH segment of ours (a listener does this for sessions opened by unknown addresses).
    pub(super) fn require_verification(&mut self) {
        self.amp = Amplification::unverified();
    }

    /// Verifies the peer once it acknowledged our data.
    fn check_verified(&mut self) {
        // The peer acknowledged our data, or (authenticated mode) proved it saw our hello:
        // either way it receives at its address.
        let proven = matches!(&self.crypt, Crypt::Aead(c) if c.is_proven());
        if !self.amp.verified && (proven || self.kcp.peer_acked_data()) {
            self.amp.verify();
        }
    }

    /// Whether the next queued datagram may leave now (anti-amplification).
    fn front_sendable(&self) -> bool {
        self.out
            .front()
            .is_some_and(|(_, cost)| self.amp.may_send(*cost))
    }

    /// Session-level counters the listener maintains (opens, source errors).
    pub(super) fn snmp_mut(&mut self) -> &mut Snmp {
        &mut self.snmp
    }

    /// Pools a buffer for reuse; one grown past a datagram goes back to the allocator.
    fn give_buf(&mut self, mut b: Vec<u8>) {
        if self.pool.len() < POOL_LIMIT && b.capacity() <= self.max_datagram {
            b.clear();
            self.pool.push(b);
        }
    }

    /// A sent datagram's buffer: kept for parity and control datagrams while the session's
    /// pool is short, otherwise back to KCP for its next datagram.
    fn return_buf(&mut self, b: Vec<u8>) {
        if self.pool.len() < SESSION_POOL_RESERVE {
            self.give_buf(b);
        } else {
            self.kcp.recycle(b);
        }
    }

    /// Turns KCP's output (header space reserved) into protected datagrams: FEC stamp and
    /// parity, then nonce + CRC + encryption (kcp-go-session.md §2.1).
    fn pump(&mut self, now: Instant) {
        if let Crypt::Aead(ch) = &mut self.crypt {
            let mut d = self.pool.pop().unwrap_or_default();
            while ch.poll_control(now, &mut d, &mut *self.rng) {
                self.snmp.out_pkts += 1;
                self.snmp.out_bytes += d.len() as u64;
                // A hello answers a hello of the same size: full cost, so an unverified
                // address never gets more back than it sent (anti-amplification).
                let cost = d.len();
                self.out.push_back((std::mem::take(&mut d), cost));
            }
            self.pool.push(d);
            if !ch.can_send_data() {
                // Nothing of KCP's leaves before the handshake (and, on a server, the
                // client's proof); KCP keeps the writes in its bounded send queue.
                return;
            }
        }
        // KCP's datagram buffer is moved, not copied: FEC stamps and the crypto seal it in
        // place, and `poll_transmit` copies it once into the caller's buffer.
        while let Some(mut d) = self.kcp.poll_datagram(now) {
            let reserved = self.kcp.config().reserved as usize;
            let control = control_bytes(d.get(reserved..).unwrap_or(&[]));
            self.fec_encode(&mut d);
            self.protect_and_queue(d, control);
            // Drained, not consumed: the vector's storage serves the next group too.
            let mut parity = std::mem::take(&mut self.parity);
            for p in parity.drain(..) {
                self.protect_and_queue(p, Some(0));
            }
            self.parity = parity;
        }
    }

    fn fec_encode(&mut self, d: &mut [u8]) {
        let Session {
            enc,
            parity,
            pool,
            kcp,
            ..
        } = self;
        if let Some(enc) = enc {
            let _ = enc.encode(d, |p| {
                // The parity datagram's buffer is taken, not copied; the encoder keeps an
                // empty one from the pool for its next group. A flush of hundreds of
                // datagrams empties the session's small pool: KCP's, where the sent
                // buffers gather, lends one then (allocating parity buffers there, and
                // freeing them when the pools overflowed, was half a bulk sender's page
                // faults).
                let mut v = pool.pop().unwrap_or_else(|| kcp.spare_buf());
                v.clear();
                std::mem::swap(p, &mut v);
                parity.push(v);
            });
        }
    }

    /// `control`: bytes of ACK/WASK/WINS segments in a datagram that also carries data, or
    /// `None` for a control-only datagram.
    fn protect_and_queue(&mut self, mut d: Vec<u8>, control: Option<usize>) {
        if !self.amp.may_hold(self.out.len()) {
            self.give_buf(d);
            return;
        }
        if self.crypt.seal(&mut d, &mut *self.rng).is_err() {
            // Counter spent: drop; the owner sees `is_exhausted` and closes the session.
            self.give_buf(d);
            return;
        }
        self.snmp.out_pkts += 1;
        self.snmp.out_bytes += d.len() as u64;
        let cost = control.map_or(0, |c| d.len().saturating_sub(c).max(1));
        self.out.push_back((d, cost));
    }

    /// Removes the crypto layer of `buf` in place; returns what it held. Failures are
    /// counted as `InCsumErrors`.
    #[deny(clippy::indexing_slicing, clippy::unwrap_used, clippy::expect_used)]
    fn unprotect(&mut self, buf: &mut [u8]) -> Result<Opened, SessionInputError> {
        self.crypt.open(buf, &mut *self.rng).inspect_err(|e| {
            if !matches!(
                e,
                SessionInputError::Crypt(CryptError::TooShort { .. })
                    | SessionInputError::Aead(AeadError::TooShort(_))
            ) {
                self.snmp.in_csum_errors += 1;
            }
        })
    }

    /// [`Machine::handle_input`] on bytes the session may overwrite: decrypts `data` where it
    /// is instead of in a copy (DESIGN.md §3); `data` is garbage afterwards.
    #[deny(clippy::indexing_slicing, clippy::unwrap_used, clippy::expect_used)]
    pub fn handle_input_mut(
        &mut self,
        now: Instant,
        data: &mut [u8],
    ) -> Result<(), SessionInputError> {
        if self.kcp.is_closed() {
            return Ok(()); // forgotten, as kcp-go's closed session
        }
        self.check_input_size(data.len())?;
        self.input_in_place(now, data)
    }

    /// Drops (and counts) a datagram larger than [`SessionConfig::max_datagram`].
    fn check_input_size(&mut self, len: usize) -> Result<(), SessionInputError> {
        if len > self.max_datagram {
            self.snmp.in_errs += 1;
            return Err(SessionInputError::TooLarge {
                len,
                max: self.max_datagram,
            });
        }
        Ok(())
    }

    /// Opens `data` in place and feeds what it held to KCP (kcp-go-session.md §2.2).
    #[deny(clippy::indexing_slicing, clippy::unwrap_used, clippy::expect_used)]
    fn input_in_place(&mut self, now: Instant, data: &mut [u8]) -> Result<(), SessionInputError> {
        self.amp.on_received(data.len());
        let r = self.unprotect(data).and_then(|opened| match opened {
            Opened::Data(range) => self.kcp_input(now, data.get(range).unwrap_or_default()),
            Opened::Control => Ok(()),
        });
        self.check_verified();
        self.pump(now);
        r
    }

    /// Input of a payload the listener already unprotected (kcp-go modes only). `wire_len` is
    /// the size of the datagram as received (anti-amplification budget).
    #[deny(clippy::indexing_slicing, clippy::unwrap_used, clippy::expect_used)]
    pub(super) fn handle_opened(
        &mut self,
        now: Instant,
        payload: &[u8],
        wire_len: usize,
    ) -> Result<(), SessionInputError> {
        self.amp.on_received(wire_len);
        let r = self.kcp_input(now, payload);
        self.check_verified();
        self.pump(now);
        r
    }

    /// kcp-go `kcpInput` (kcp-go-session.md §2.2 step 5) on an unprotected payload.
    #[deny(clippy::indexing_slicing, clippy::unwrap_used, clippy::expect_used)]
    fn kcp_input(&mut self, now: Instant, payload: &[u8]) -> Result<(), SessionInputError> {
        if payload.len() < 24 {
            return Err(SessionInputError::TooShort(payload.len()));
        }
        self.snmp.in_pkts += 1;
        self.snmp.in_bytes += payload.len() as u64;
        let mut header = Reader::new(payload);
        let kind = header
            .take(4)
            .and_then(|_| header.u16_le())
            .unwrap_or_default();
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
        let dec = match dec {
            Some(dec) => dec,
            slot @ None => slot.insert(FecDecoder::new(1, 1)?),
        };
        let now_ms = kcp.wire_ms(now);
        // A data shard holding the next segment in order is copied once, into KCP's
        // receive arena: the decoder keeps that copy and KCP's payload is a slice of it
        // (before, each was a copy of its own).
        // What the decoder stores starts with the 2-byte size field before the KCP bytes.
        const SIZE_FIELD: usize = FEC_HEADER_SIZE_PLUS2 - FEC_HEADER_SIZE;
        let stored = match kind {
            TYPE_DATA => payload
                .get(FEC_HEADER_SIZE..)
                .and_then(|d| kcp.copy_if_next_in_order(d, SIZE_FIELD)),
            _ => None,
        };
        let recovered = dec.decode_stored(now_ms, payload, stored.clone())?;
        let mut result = Ok(());
        if kind == TYPE_DATA {
            result = match stored {
                Some(s) => kcp.handle_shared(now, &s, SIZE_FIELD, true),
                None => kcp.handle_packet(
                    now,
                    payload.get(FEC_HEADER_SIZE_PLUS2..).unwrap_or_default(),
                    true,
                ),
            }
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

    #[deny(clippy::indexing_slicing, clippy::unwrap_used, clippy::expect_used)]
    fn handle_input(&mut self, now: Instant, data: &[u8]) -> Result<(), SessionInputError> {
        if self.kcp.is_closed() {
            return Ok(()); // forgotten, as kcp-go's closed session
        }
        self.check_input_size(data.len())?;
        let mut scratch = std::mem::take(&mut self.scratch);
        scratch.clear();
        scratch.extend_from_slice(data);
        let r = self.input_in_place(now, &mut scratch);
        self.scratch = scratch;
        r
    }

    fn poll_transmit(&mut self, now: Instant, buf: &mut Vec<u8>) -> Option<Transmit> {
        if self.out.is_empty() {
            self.pump(now);
        }
        if !self.front_sendable() {
            // Held until more bytes arrive or the peer is verified.
            return None;
        }
        let (mut d, cost) = self.out.pop_front()?;
        let len = d.len();
        if buf.is_empty() {
            // Appending to nothing is taking the sealed datagram's buffer: the caller (the
            // socket loop's outbox, which offers one empty buffer per datagram) sends it
            // without a copy, and its empty buffer replaces this one in the pool.
            std::mem::swap(buf, &mut d);
        } else {
            buf.extend_from_slice(&d);
        }
        self.amp.on_sent(len, cost);
        self.return_buf(d);
        Some(Transmit { len })
    }

    fn has_transmit(&self) -> bool {
        let (handshake, data_allowed) = match &self.crypt {
            Crypt::Aead(ch) => (ch.wants_send(), ch.can_send_data()),
            _ => (false, true),
        };
        // KCP's pending flush counts only once its datagrams may leave (before the handshake
        // completes, `pump` keeps them in KCP), so a driver draining while this holds never
        // spins on a `poll_transmit` that returns `None`.
        self.front_sendable()
            || (self.out.is_empty() && (handshake || (data_allowed && self.kcp.has_transmit())))
    }

    fn poll_timeout(&self) -> Option<Instant> {
        // Output ready to leave (or held by anti-amplification until more input) is
        // `has_transmit`'s business, never a deadline (driver.rs contract).
        if self.kcp.is_closed() {
            return None;
        }
        if let Crypt::Aead(ch) = &self.crypt {
            if !ch.can_send_data() {
                // KCP's timers wait for the handshake (its output could not leave anyway).
                return ch.poll_timeout();
            }
            return [ch.poll_timeout(), self.kcp.poll_timeout()]
                .into_iter()
                .flatten()
                .min();
        }
        self.kcp.poll_timeout()
    }

    fn handle_timeout(&mut self, now: Instant) {
        if self.kcp.is_closed() {
            return;
        }
        if let Crypt::Aead(ch) = &mut self.crypt {
            ch.handle_timeout(now);
            if !ch.can_send_data() {
                self.pump(now);
                return;
            }
        }
        self.kcp.handle_timeout(now);
        self.pump(now);
    }

    fn poll_event(&mut self) -> Option<KcpEvent> {
        self.kcp.poll_event()
    }
}

/// A kcp-go session as the application's byte stream (stream mode; see [`Kcp`]'s impl).
impl ByteStream for Session {
    fn write(&mut self, data: &[u8]) -> Result<usize, StreamError> {
        ByteStream::write(&mut self.kcp, data)
    }

    fn write_chunk(&mut self, data: Bytes) -> Result<usize, StreamError> {
        ByteStream::write_chunk(&mut self.kcp, data)
    }

    fn read(&mut self, buf: &mut [u8]) -> Result<usize, StreamError> {
        ByteStream::read(&mut self.kcp, buf)
    }

    fn poll_writable(&mut self) -> bool {
        self.kcp.poll_writable()
    }

    fn read_chunk(&mut self, max: usize, room: &mut BytesMut) -> Result<Bytes, StreamError> {
        ByteStream::read_chunk(&mut self.kcp, max, room)
    }

    fn finish(&mut self) -> Result<(), StreamError> {
        Err(StreamError::Unsupported)
    }

    fn all_acked(&self) -> bool {
        self.kcp.all_acked()
    }
}
