//! kcp-go 5.6.1 packet encryption (kcp-go-session.md §3) and the 20-byte nonce + CRC32
//! header in front of every datagram (kcp-go-session.md §1, §2).
//!
//! ```
//! use tether_core::session::crypt::{CipherKind, PacketCrypt, CRYPT_HEADER};
//! use tether_core::session::key::kcptun_key;
//! // Real code injects an OS-seeded RNG; a seeded one keeps this example deterministic.
//! let mut rng = tether_core::rng::seeded(7);
//! let (kind, known) = CipherKind::from_kcptun_name("aes-128");
//! assert!(known);
//! let crypt = PacketCrypt::new(kind, &kcptun_key("it's a secrect"));
//!
//! let mut datagram = vec![0u8; CRYPT_HEADER];
//! datagram.extend_from_slice(b"kcp segments");
//! crypt.seal(&mut datagram, &mut rng);
//! assert_eq!(crypt.open(&mut datagram).unwrap(), b"kcp segments");
//! ```
#![deny(clippy::indexing_slicing, clippy::unwrap_used, clippy::expect_used)]

use core::fmt;

use super::des::TdesEde3;
use super::salsa::Salsa20;
use super::sm4::Sm4;
use super::twofish::Twofish;
use aes::{Aes128, Aes192, Aes256};
use blowfish::Blowfish;
use cast5::Cast5;
use cfb_mode::{BufDecryptor, BufEncryptor};
use cipher::consts::{U16, U8};
use cipher::{Block, BlockCipher, BlockEncrypt, Key, KeyInit, KeySizeUser};
use rand_core::RngCore;
use sha1::Sha1;

/// Size of the random nonce at the start of every datagram (kcp-go-session.md §1).
pub const NONCE_SIZE: usize = 16;

/// Size of the CRC32 that follows the nonce (kcp-go-session.md §1).
pub const CRC_SIZE: usize = 4;

/// Total crypto header: nonce + CRC32 (kcp-go-session.md §1).
pub const CRYPT_HEADER: usize = NONCE_SIZE + CRC_SIZE;

/// The fixed CFB IV shared by every block cipher (kcp-go-session.md §3.2).
const CFB_IV: [u8; 16] = [
    0xa7, 0x73, 0x4f, 0x9c, 0x12, 0xac, 0x1b, 0x01, 0xa4, 0x15, 0xf2, 0xc1, 0xfc, 0x78, 0xe6, 0x6b,
];

/// Salt for the simple-XOR pad (kcp-go-session.md §3.4).
const XOR_SALT: &[u8] = b"sH3CIVoF#rWLtJo6";

/// PBKDF2 iterations for the simple-XOR pad (kcp-go-session.md §3.4).
const XOR_ITERATIONS: u32 = 32;

/// Length of the simple-XOR pad, kcp-go's `mtuLimit` (kcp-go-session.md §3.4).
const XOR_PAD_LEN: usize = 1500;

/// Bytes of the datagram Salsa20 uses as its nonce (kcp-go-session.md §3.3).
const SALSA20_NONCE: usize = 8;

/// The packet ciphers kcptun 20210922 offers (kcp-go-session.md §3.1, kcptun.md §3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CipherKind {
    /// `aes`: AES-256-CFB with the whole 32-byte pass (kcptun's default).
    Aes256,
    /// `aes-128`: AES-128-CFB with pass[0..16].
    Aes128,
    /// `aes-192`: AES-192-CFB with pass[0..24].
    Aes192,
    /// `salsa20`: Salsa20/20 keyed with the pass; the first 8 datagram bytes are the nonce.
    Salsa20,
    /// `blowfish`: Blowfish-CFB64 with the whole 32-byte pass.
    Blowfish,
    /// `twofish`: Twofish-256-CFB with the whole pass.
    Twofish,
    /// `cast5`: CAST-128-CFB64 with pass[0..16].
    Cast5,
    /// `3des`: 3DES-EDE3-CFB64 with pass[0..24].
    TripleDes,
    /// `tea`: TEA with 16 rounds (8 cycles), CFB64, pass[0..16].
    Tea,
    /// `xtea`: standard XTEA (32 cycles), CFB64, pass[0..16].
    Xtea,
    /// `sm4`: SM4-CFB with pass[0..16].
    Sm4,
    /// `xor`: XOR with a 1500-byte PBKDF2 pad derived from the pass.
    Xor,
    /// `none`: identity; the 20-byte nonce + CRC header is still sent, in clear.
    None,
}

impl CipherKind {
    /// Every cipher, in kcp-go-session.md §3.1's table order.
    pub const ALL: [CipherKind; 13] = [
        CipherKind::Aes256,
        CipherKind::Aes128,
        CipherKind::Aes192,
        CipherKind::Salsa20,
        CipherKind::Blowfish,
        CipherKind::Twofish,
        CipherKind::Cast5,
        CipherKind::TripleDes,
        CipherKind::Tea,
        CipherKind::Xtea,
        CipherKind::Sm4,
        CipherKind::Xor,
        CipherKind::None,
    ];

    /// Maps a kcptun `--crypt` name to a cipher. Like kcptun, an unknown name selects
    /// AES-256 (`aes`); the flag says whether `name` was a known one (kcptun.md §3).
    pub fn from_kcptun_name(name: &str) -> (CipherKind, bool) {
        match Self::ALL.iter().find(|k| k.name() == name) {
            Some(&kind) => (kind, true),
            None => (CipherKind::Aes256, false),
        }
    }

    /// kcptun's `--crypt` name for this cipher (kcptun.md §3).
    pub fn name(self) -> &'static str {
        match self {
            CipherKind::Aes256 => "aes",
            CipherKind::Aes128 => "aes-128",
            CipherKind::Aes192 => "aes-192",
            CipherKind::Salsa20 => "salsa20",
            CipherKind::Blowfish => "blowfish",
            CipherKind::Twofish => "twofish",
            CipherKind::Cast5 => "cast5",
            CipherKind::TripleDes => "3des",
            CipherKind::Tea => "tea",
            CipherKind::Xtea => "xtea",
            CipherKind::Sm4 => "sm4",
            CipherKind::Xor => "xor",
            CipherKind::None => "none",
        }
    }

    /// How many leading bytes of the 32-byte pass this cipher is keyed with
    /// (kcp-go-session.md §3.1). `none` uses no key and returns 0.
    pub fn key_len(self) -> usize {
        match self {
            CipherKind::Aes128
            | CipherKind::Cast5
            | CipherKind::Tea
            | CipherKind::Xtea
            | CipherKind::Sm4 => 16,
            CipherKind::Aes192 | CipherKind::TripleDes => 24,
            CipherKind::Aes256
            | CipherKind::Salsa20
            | CipherKind::Blowfish
            | CipherKind::Twofish
            | CipherKind::Xor => 32,
            CipherKind::None => 0,
        }
    }
}

impl fmt::Display for CipherKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why [`PacketCrypt::open`] rejected a datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CryptError {
    /// The datagram cannot hold the 20-byte nonce + CRC header (kcp-go-session.md §2.2).
    #[error("datagram of {len} bytes is shorter than the {CRYPT_HEADER}-byte crypto header")]
    TooShort {
        /// Length of the rejected datagram.
        len: usize,
    },
    /// The decrypted CRC32 does not match the payload (kcp-go-session.md §2.2).
    #[error(
        "packet checksum mismatch (header says {expected:#010x}, payload gives {actual:#010x}): \
         check that both sides use the same --crypt and --key"
    )]
    BadChecksum {
        /// CRC32 carried in the decrypted header.
        expected: u32,
        /// CRC32 computed over the decrypted payload.
        actual: u32,
    },
}

/// One direction-agnostic keystream transform over a whole datagram.
trait Transform: Send + Sync {
    /// Encrypts `buf` in place.
    fn encrypt(&self, buf: &mut [u8]);
    /// Decrypts `buf` in place.
    fn decrypt(&self, buf: &mut [u8]);
}

/// A kcp-go session's packet cipher, keyed once and reused for every datagram.
pub struct PacketCrypt {
    kind: CipherKind,
    engine: Box<dyn Transform>,
}

impl fmt::Debug for PacketCrypt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print key material.
        f.debug_struct("PacketCrypt")
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

impl PacketCrypt {
    /// Keys `kind` from kcptun's 32-byte `pass` (see [`crate::session::key::kcptun_key`]),
    /// slicing it as kcp-go-session.md §3.1's table says. All key schedules (and the XOR
    /// pad) are computed here, once.
    pub fn new(kind: CipherKind, pass: &[u8; 32]) -> Self {
        // key_len() is at most 32: the whole pass is never reached as a fallback.
        let key = pass.get(..kind.key_len()).unwrap_or(pass);
        let engine: Box<dyn Transform> = match kind {
            CipherKind::Aes256 => Box::new(Cfb::<Aes256>::new(key)),
            CipherKind::Aes128 => Box::new(Cfb::<Aes128>::new(key)),
            CipherKind::Aes192 => Box::new(Cfb::<Aes192>::new(key)),
            CipherKind::Salsa20 => Box::new(Salsa20Packet {
                key: Salsa20::new(pass),
            }),
            CipherKind::Blowfish => Box::new(Cfb::<Blowfish>::new(key)),
            CipherKind::Twofish => Box::new(Cfb::<Twofish>::new(key)),
            CipherKind::Cast5 => Box::new(Cfb::<Cast5>::new(key)),
            CipherKind::TripleDes => Box::new(Cfb::<TdesEde3>::new(key)),
            CipherKind::Tea => Box::new(Cfb::<Tea>::new(key)),
            CipherKind::Xtea => Box::new(Cfb::<Xtea>::new(key)),
            CipherKind::Sm4 => Box::new(Cfb::<Sm4>::new(key)),
            CipherKind::Xor => Box::new(XorPad::new(pass)),
            CipherKind::None => Box::new(Identity),
        };
        PacketCrypt { kind, engine }
    }

    /// The cipher this instance runs.
    pub fn kind(&self) -> CipherKind {
        self.kind
    }

    /// Encrypts a whole datagram in place, nonce and CRC included (kcp-go-session.md §3).
    ///
    /// Salsa20 leaves the first 8 bytes in clear (they are its nonce, §3.3); a datagram
    /// shorter than that is left unchanged (kcp-go never produces one). XOR only covers the
    /// first 1500 bytes (§3.4).
    pub fn encrypt(&self, pkt: &mut [u8]) {
        self.engine.encrypt(pkt);
    }

    /// Decrypts a whole datagram in place; the inverse of [`PacketCrypt::encrypt`].
    pub fn decrypt(&self, pkt: &mut [u8]) {
        self.engine.decrypt(pkt);
    }

    /// Finishes an outgoing datagram whose first [`CRYPT_HEADER`] bytes were reserved:
    /// fills the nonce from `rng`, stores CRC32 of `pkt[20..]` little-endian at 16..20,
    /// then encrypts the whole datagram (kcp-go-session.md §2.1 step 3, §3.5).
    ///
    /// # Panics
    /// If `pkt` is shorter than [`CRYPT_HEADER`] (the caller forgot to reserve the header).
    pub fn seal<R: RngCore + ?Sized>(&self, pkt: &mut [u8], rng: &mut R) {
        let Some((header, payload)) = pkt.split_first_chunk_mut::<CRYPT_HEADER>() else {
            panic!("seal: datagram must start with a reserved {CRYPT_HEADER}-byte crypto header");
        };
        let mut nonce = [0u8; NONCE_SIZE];
        rng.fill_bytes(&mut nonce);
        let crc = crc32fast::hash(payload).to_le_bytes();
        let fields = nonce.into_iter().chain(crc);
        header.iter_mut().zip(fields).for_each(|(d, s)| *d = s);
        self.encrypt(pkt);
    }

    /// Decrypts an incoming datagram in place, checks its CRC32 and returns the payload
    /// after the 20-byte header (kcp-go-session.md §2.2 step 2). On error the buffer holds
    /// the (useless) decrypted bytes.
    pub fn open<'a>(&self, pkt: &'a mut [u8]) -> Result<&'a mut [u8], CryptError> {
        if pkt.len() < CRYPT_HEADER {
            return Err(CryptError::TooShort { len: pkt.len() });
        }
        self.decrypt(pkt);
        let len = pkt.len();
        let (header, payload) = pkt
            .split_first_chunk_mut::<CRYPT_HEADER>()
            .ok_or(CryptError::TooShort { len })?;
        let expected = read_crc(header);
        let actual = crc32fast::hash(payload);
        if expected != actual {
            return Err(CryptError::BadChecksum { expected, actual });
        }
        Ok(payload)
    }
}

/// The little-endian CRC32 stored at 16..20 (kcp-go-session.md §1).
fn read_crc(header: &[u8; CRYPT_HEADER]) -> u32 {
    let [.., c0, c1, c2, c3] = *header;
    u32::from_le_bytes([c0, c1, c2, c3])
}

/// Full-block CFB with kcp-go's fixed IV (kcp-go-session.md §3.2). The key schedule and
/// the first keystream block `K0 = E(IV)` are computed once; each datagram restarts the
/// chain from `K0` by borrowing the cipher (no per-packet key setup or copy).
struct Cfb<C: BlockCipher + BlockEncrypt> {
    cipher: C,
    k0: Block<C>,
}

impl<C: BlockCipher + BlockEncrypt + KeyInit> Cfb<C> {
    /// Keys the cipher. The §3.1 slice lengths are valid for every cipher used here.
    #[expect(
        clippy::expect_used,
        clippy::indexing_slicing,
        reason = "key setup with constant lengths (§3.1 key slices, 8- or 16-byte blocks), never received bytes"
    )]
    fn new(key: &[u8]) -> Self {
        let cipher = C::new_from_slice(key).expect("kcp-go-session.md §3.1 key slice length");
        // kcp-go-session.md §3.2: 8-byte ciphers use the first 8 bytes of the IV.
        let mut k0 = Block::<C>::clone_from_slice(&CFB_IV[..C::block_size()]);
        cipher.encrypt_block(&mut k0);
        Cfb { cipher, k0 }
    }
}

impl<C: BlockCipher + BlockEncrypt + Send + Sync> Transform for Cfb<C> {
    fn encrypt(&self, buf: &mut [u8]) {
        BufEncryptor::<&C>::from_state(&self.cipher, &self.k0, 0).encrypt(buf);
    }

    fn decrypt(&self, buf: &mut [u8]) {
        BufDecryptor::<&C>::from_state(&self.cipher, &self.k0, 0).decrypt(buf);
    }
}

/// Salsa20/20 with the datagram's first 8 bytes as nonce (kcp-go-session.md §3.3).
struct Salsa20Packet {
    key: Salsa20,
}

impl Salsa20Packet {
    /// XORs `buf[8..]` with the keystream; encryption and decryption are the same.
    fn apply(&self, buf: &mut [u8]) {
        let Some((nonce, body)) = buf.split_first_chunk_mut::<SALSA20_NONCE>() else {
            return;
        };
        self.key.apply(nonce, body);
    }
}

impl Transform for Salsa20Packet {
    fn encrypt(&self, buf: &mut [u8]) {
        self.apply(buf);
    }

    fn decrypt(&self, buf: &mut [u8]) {
        self.apply(buf);
    }
}

/// kcp-go's "simple XOR" with a 1500-byte PBKDF2 pad (kcp-go-session.md §3.4).
struct XorPad {
    pad: Box<[u8; XOR_PAD_LEN]>,
}

impl XorPad {
    /// pad = PBKDF2-HMAC-SHA1(pass, "sH3CIVoF#rWLtJo6", 32, 1500) (kcp-go-session.md §3.4).
    fn new(pass: &[u8; 32]) -> Self {
        let mut pad = Box::new([0u8; XOR_PAD_LEN]);
        pbkdf2::pbkdf2_hmac::<Sha1>(pass, XOR_SALT, XOR_ITERATIONS, &mut pad[..]);
        XorPad { pad }
    }

    /// `buf[i] ^= pad[i]` for `i < min(len, 1500)`; bytes past 1500 stay as they are.
    fn apply(&self, buf: &mut [u8]) {
        buf.iter_mut()
            .zip(self.pad.iter())
            .for_each(|(b, p)| *b ^= p);
    }
}

impl Transform for XorPad {
    fn encrypt(&self, buf: &mut [u8]) {
        self.apply(buf);
    }

    fn decrypt(&self, buf: &mut [u8]) {
        self.apply(buf);
    }
}

/// `none`: no transformation (kcp-go-session.md §3.1, §11).
struct Identity;

impl Transform for Identity {
    fn encrypt(&self, _buf: &mut [u8]) {}

    fn decrypt(&self, _buf: &mut [u8]) {}
}

/// The TEA/XTEA key schedule constant.
const TEA_DELTA: u32 = 0x9E37_79B9;

/// kcp-go runs TEA with 16 rounds = 8 cycles (kcp-go-session.md §3.1, §11).
const TEA_CYCLES: u32 = 8;

/// Standard XTEA: 64 rounds = 32 cycles (kcp-go-session.md §3.1).
const XTEA_CYCLES: u32 = 32;

/// Reads a 16-byte key as four big-endian words (kcp-go-session.md §3.1).
fn be_key_words(key: &[u8]) -> [u32; 4] {
    let mut k = [0u32; 4];
    for (w, chunk) in k.iter_mut().zip(key.as_chunks::<4>().0) {
        *w = u32::from_be_bytes(*chunk);
    }
    k
}

/// Splits an 8-byte block into two big-endian words.
fn block_words(b: &[u8; 8]) -> [u32; 2] {
    let [b0, b1, b2, b3, b4, b5, b6, b7] = *b;
    [
        u32::from_be_bytes([b0, b1, b2, b3]),
        u32::from_be_bytes([b4, b5, b6, b7]),
    ]
}

/// Writes two words back as an 8-byte big-endian block.
fn write_block_words(b: &mut [u8; 8], [v0, v1]: [u32; 2]) {
    let [b0, b1, b2, b3] = v0.to_be_bytes();
    let [b4, b5, b6, b7] = v1.to_be_bytes();
    *b = [b0, b1, b2, b3, b4, b5, b6, b7];
}

/// XTEA's key word `k[i & 3]`, selected without indexing.
fn key_word(k: &[u32; 4], i: u32) -> u32 {
    let [k0, k1, k2, k3] = *k;
    match i & 3 {
        0 => k0,
        1 => k1,
        2 => k2,
        _ => k3,
    }
}

/// TEA encryption with `cycles` cycles (2 rounds each), as in kcp-go-session.md §3.1.
fn tea_encrypt(k: &[u32; 4], [mut v0, mut v1]: [u32; 2], cycles: u32) -> [u32; 2] {
    let mut sum = 0u32;
    for _ in 0..cycles {
        sum = sum.wrapping_add(TEA_DELTA);
        v0 = v0.wrapping_add(tea_mix(v1, sum, k[0], k[1]));
        v1 = v1.wrapping_add(tea_mix(v0, sum, k[2], k[3]));
    }
    [v0, v1]
}

/// TEA decryption, the inverse of [`tea_encrypt`].
fn tea_decrypt(k: &[u32; 4], [mut v0, mut v1]: [u32; 2], cycles: u32) -> [u32; 2] {
    let mut sum = TEA_DELTA.wrapping_mul(cycles);
    for _ in 0..cycles {
        v1 = v1.wrapping_sub(tea_mix(v0, sum, k[2], k[3]));
        v0 = v0.wrapping_sub(tea_mix(v1, sum, k[0], k[1]));
        sum = sum.wrapping_sub(TEA_DELTA);
    }
    [v0, v1]
}

/// TEA's round function `((v<<4)+a) ^ (v+sum) ^ ((v>>5)+b)`.
fn tea_mix(v: u32, sum: u32, a: u32, b: u32) -> u32 {
    (v << 4).wrapping_add(a) ^ v.wrapping_add(sum) ^ (v >> 5).wrapping_add(b)
}

/// XTEA encryption with `cycles` cycles (standard: 32). The reference form, kept for the
/// known-answer tests; [`Xtea`] runs the precomputed [`XteaKeys`] instead.
#[cfg(test)]
fn xtea_encrypt(k: &[u32; 4], [mut v0, mut v1]: [u32; 2], cycles: u32) -> [u32; 2] {
    let mut sum = 0u32;
    for _ in 0..cycles {
        v0 = v0.wrapping_add(xtea_mix(v1) ^ sum.wrapping_add(k[(sum & 3) as usize]));
        sum = sum.wrapping_add(TEA_DELTA);
        v1 = v1.wrapping_add(xtea_mix(v0) ^ sum.wrapping_add(k[((sum >> 11) & 3) as usize]));
    }
    [v0, v1]
}

/// XTEA decryption, the inverse of [`xtea_encrypt`].
#[cfg(test)]
fn xtea_decrypt(k: &[u32; 4], [mut v0, mut v1]: [u32; 2], cycles: u32) -> [u32; 2] {
    let mut sum = TEA_DELTA.wrapping_mul(cycles);
    for _ in 0..cycles {
        v1 = v1.wrapping_sub(xtea_mix(v0) ^ sum.wrapping_add(k[((sum >> 11) & 3) as usize]));
        sum = sum.wrapping_sub(TEA_DELTA);
        v0 = v0.wrapping_sub(xtea_mix(v1) ^ sum.wrapping_add(k[(sum & 3) as usize]));
    }
    [v0, v1]
}

/// Standard XTEA's 64 per-round values `sum + k[..]`, computed once at key setup as
/// x/crypto/xtea does (its `table`): round pair `i` uses `[i][0]` for `v0` and `[i][1]` for
/// `v1`. A round is then `v += mix(w) ^ t[j]`, with no key indexing or sum update.
type XteaKeys = [[u32; 2]; XTEA_CYCLES as usize];

/// Precomputes [`XteaKeys`] from the four key words.
fn xtea_schedule(k: &[u32; 4]) -> XteaKeys {
    let mut t = [[0u32; 2]; XTEA_CYCLES as usize];
    let mut sum = 0u32;
    for [t0, t1] in t.iter_mut() {
        *t0 = sum.wrapping_add(key_word(k, sum));
        sum = sum.wrapping_add(TEA_DELTA);
        *t1 = sum.wrapping_add(key_word(k, sum >> 11));
    }
    t
}

/// XTEA encryption with a precomputed schedule (same result as [`xtea_encrypt`]).
fn xtea_encrypt_fast(t: &XteaKeys, [mut v0, mut v1]: [u32; 2]) -> [u32; 2] {
    for &[t0, t1] in t {
        v0 = v0.wrapping_add(xtea_mix(v1) ^ t0);
        v1 = v1.wrapping_add(xtea_mix(v0) ^ t1);
    }
    [v0, v1]
}

/// XTEA decryption with a precomputed schedule, the inverse of [`xtea_encrypt_fast`].
fn xtea_decrypt_fast(t: &XteaKeys, [mut v0, mut v1]: [u32; 2]) -> [u32; 2] {
    for &[t0, t1] in t.iter().rev() {
        v1 = v1.wrapping_sub(xtea_mix(v0) ^ t1);
        v0 = v0.wrapping_sub(xtea_mix(v1) ^ t0);
    }
    [v0, v1]
}

/// XTEA's round function `((v<<4) ^ (v>>5)) + v`.
fn xtea_mix(v: u32) -> u32 {
    ((v << 4) ^ (v >> 5)).wrapping_add(v)
}

/// TEA with kcp-go's 16 rounds, exposed through the `cipher` traits so [`Cfb`] can run it.
#[derive(Clone)]
struct Tea {
    k: [u32; 4],
}

impl KeySizeUser for Tea {
    type KeySize = U16;
}

impl KeyInit for Tea {
    fn new(key: &Key<Self>) -> Self {
        Tea {
            k: be_key_words(key),
        }
    }
}

impl BlockCipher for Tea {}

cipher::impl_simple_block_encdec!(
    Tea, U8, c, block,
    encrypt: {
        let v = tea_encrypt(&c.k, block_words(block.get_in().as_ref()), TEA_CYCLES);
        write_block_words(block.get_out().as_mut(), v);
    }
    decrypt: {
        let v = tea_decrypt(&c.k, block_words(block.get_in().as_ref()), TEA_CYCLES);
        write_block_words(block.get_out().as_mut(), v);
    }
);

/// Standard XTEA with its round values precomputed ([`XteaKeys`]), exposed through the
/// `cipher` traits so [`Cfb`] can run it.
#[derive(Clone)]
struct Xtea {
    t: XteaKeys,
}

impl KeySizeUser for Xtea {
    type KeySize = U16;
}

impl KeyInit for Xtea {
    fn new(key: &Key<Self>) -> Self {
        Xtea {
            t: xtea_schedule(&be_key_words(key)),
        }
    }
}

impl BlockCipher for Xtea {}

cipher::impl_simple_block_encdec!(
    Xtea, U8, c, block,
    encrypt: {
        let v = xtea_encrypt_fast(&c.t, block_words(block.get_in().as_ref()));
        write_block_words(block.get_out().as_mut(), v);
    }
    decrypt: {
        let v = xtea_decrypt_fast(&c.t, block_words(block.get_in().as_ref()));
        write_block_words(block.get_out().as_mut(), v);
    }
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::key::{kcptun_key, KCPTUN_DEFAULT_KEY};
    use rand_chacha::rand_core::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    /// kcp-go-session.md §3.6: ciphertexts of bytes 00..2c under kcptun's default key.
    const VECTORS: [(CipherKind, &str); 12] = [
        (CipherKind::Aes256, "86834343335b168ca911bf584a05f9900e1c6fda2c822a981eb60909411c15690afb116b0d6073935dd1a399f9"),
        (CipherKind::Aes128, "ddd7e0a7981ba3e2a7f6d51f2a2663184531e844fe0ddec4d65df15b489c5ba3e15ff1881eaf077a23107a1086"),
        (CipherKind::Aes192, "b9db59f7dd1bce4922855fb7f8f8e261a4937c0d7360349b24871684eb7bca422017d9f232c59cd2e4603e8463"),
        (CipherKind::Salsa20, "00010203040506079aaa6e7faf75365c40a4761a0c7be4446a8a411f62e5954a4ac802ddae0f35e6455e56815a"),
        (CipherKind::Blowfish, "186797305116055ece6531b898c4b2352cc7452301c8434ae21a1256aeb7305fb08d8648ad906dcc13c8fef8f0"),
        (CipherKind::Twofish, "79a0668add94e7387471af7514bb1065027a4425d5bd62db2ba645c8b7f41fe83931f68d4c3ad655e8b3727308"),
        (CipherKind::Cast5, "bb8f8d2209e0131c7d027b3e28d6b45788b9c798dc5b25fc905f95636f61bb1cf570dd159b95dc560e2c33a7ce"),
        (CipherKind::TripleDes, "5dca5d4fac8f6accf083365ae9eb528a24c6879fd6daee12f406f9a17955efec4fa86c417ab7d94fa773772244"),
        (CipherKind::Tea, "fc9c4eb4a8e9502bde3d3c8b0679084d963bc6bfca609b1ba987df5d5e088440024c54fe55fe7a44ffe41b540e"),
        (CipherKind::Xtea, "09256989438dfb5af0f2a323dfd1ac2c9af741cc94cf83fec52a72395260600933396d604d06cba2459225658d"),
        (CipherKind::Sm4, "0340e44fd923bb2259e375a7ab6ee54de9bca063ac2859b4bfd05a8a7ada8cfee0ee39b42f17db450a2e938ba4"),
        (CipherKind::Xor, "0fff8b84a99173765c7011c3f60cb8237bdf1315a6805604d54b25a70367b293d08e441c63be35690d89fadcb2"),
    ];

    fn default_pass() -> [u8; 32] {
        kcptun_key(KCPTUN_DEFAULT_KEY)
    }

    fn all_crypts() -> Vec<PacketCrypt> {
        let pass = default_pass();
        CipherKind::ALL
            .iter()
            .map(|&k| PacketCrypt::new(k, &pass))
            .collect()
    }

    fn plaintext(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 + 3) as u8).collect()
    }

    // kcp-go-session.md §3.6
    #[test]
    fn spec_vectors_encrypt_and_decrypt() {
        let pass = default_pass();
        let pt: Vec<u8> = (0u8..45).collect();
        for (kind, ct_hex) in VECTORS {
            let crypt = PacketCrypt::new(kind, &pass);
            let mut buf = pt.clone();
            crypt.encrypt(&mut buf);
            assert_eq!(hex::encode(&buf), ct_hex, "{kind} encrypt");
            crypt.decrypt(&mut buf);
            assert_eq!(buf, pt, "{kind} decrypt");
        }
    }

    // kcp-go-session.md §3.6: `none` leaves the datagram unchanged.
    #[test]
    fn none_is_identity() {
        let crypt = PacketCrypt::new(CipherKind::None, &default_pass());
        let mut buf: Vec<u8> = (0u8..45).collect();
        crypt.encrypt(&mut buf);
        assert_eq!(buf, (0u8..45).collect::<Vec<_>>());
    }

    // kcp-go-session.md §3.6: CRC32-IEEE check value.
    #[test]
    fn crc32_check_value() {
        assert_eq!(crc32fast::hash(b"abc"), 0x352441c2);
    }

    #[test]
    fn round_trip_every_cipher_and_length() {
        for crypt in all_crypts() {
            for len in (0..=64).chain([1400, 1500, 1501, 2000]) {
                let pt = plaintext(len);
                let mut buf = pt.clone();
                crypt.encrypt(&mut buf);
                crypt.decrypt(&mut buf);
                assert_eq!(buf, pt, "{} len {len}", crypt.kind());
            }
        }
    }

    // CFB has no padding: a short datagram's ciphertext is a prefix of a longer one's.
    #[test]
    fn cfb_is_a_prefix_stream() {
        for crypt in all_crypts() {
            let mut long = plaintext(64);
            crypt.encrypt(&mut long);
            for len in 0..64 {
                let mut short = plaintext(len);
                crypt.encrypt(&mut short);
                let same = if crypt.kind() == CipherKind::Salsa20 && len < 8 {
                    plaintext(len) // no room for the nonce: left unchanged
                } else {
                    long[..len].to_vec()
                };
                assert_eq!(short, same, "{} len {len}", crypt.kind());
            }
        }
    }

    #[test]
    fn seal_open_round_trip() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        for crypt in all_crypts() {
            for payload_len in [0usize, 1, 24, 45, 1380] {
                let payload = plaintext(payload_len);
                let mut pkt = vec![0u8; CRYPT_HEADER];
                pkt.extend_from_slice(&payload);
                crypt.seal(&mut pkt, &mut rng);
                let got = crypt.open(&mut pkt).expect("open");
                assert_eq!(got, &payload[..], "{}", crypt.kind());
            }
        }
    }

    #[test]
    fn seal_uses_fresh_nonces() {
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let crypt = PacketCrypt::new(CipherKind::None, &default_pass());
        let mut a = vec![0u8; CRYPT_HEADER + 4];
        let mut b = a.clone();
        crypt.seal(&mut a, &mut rng);
        crypt.seal(&mut b, &mut rng);
        assert_ne!(a[..NONCE_SIZE], b[..NONCE_SIZE]);
        // kcp-go-session.md §1: CRC32 of [20..) little-endian at 16.
        assert_eq!(
            a[NONCE_SIZE..CRYPT_HEADER],
            crc32fast::hash(&[0; 4]).to_le_bytes()
        );
    }

    /// Whether corrupting byte `i` goes unnoticed. The nonce is not covered by the CRC
    /// (kcp-go-session.md §1); a flip there is only seen if the cipher carries it into the
    /// CRC-covered bytes. CFB garbles the *next* block (§3.2), so with 8-byte blocks a flip
    /// in bytes 0..8 only garbles nonce bytes 8..16. Salsa20's nonce half 0..8 changes the
    /// whole keystream, its other half is plain data (§3.3). XOR and none chain nothing.
    fn unprotected(kind: CipherKind, i: usize) -> bool {
        match kind {
            CipherKind::None | CipherKind::Xor => i < NONCE_SIZE,
            CipherKind::Salsa20 => (SALSA20_NONCE..NONCE_SIZE).contains(&i),
            CipherKind::Blowfish
            | CipherKind::Cast5
            | CipherKind::TripleDes
            | CipherKind::Tea
            | CipherKind::Xtea => i < 8,
            _ => false,
        }
    }

    #[test]
    fn every_flipped_bit_past_the_nonce_is_caught() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        for crypt in all_crypts() {
            let mut pkt = vec![0u8; CRYPT_HEADER];
            pkt.extend_from_slice(&plaintext(45));
            crypt.seal(&mut pkt, &mut rng);
            for bit in 0..pkt.len() * 8 {
                let mut bad = pkt.clone();
                bad[bit / 8] ^= 1 << (bit % 8);
                let res = crypt.open(&mut bad);
                if unprotected(crypt.kind(), bit / 8) {
                    assert!(
                        res.is_ok(),
                        "{} byte {} is not covered",
                        crypt.kind(),
                        bit / 8
                    );
                } else {
                    assert!(
                        matches!(res, Err(CryptError::BadChecksum { .. })),
                        "{} bit {bit} not caught",
                        crypt.kind()
                    );
                }
            }
        }
    }

    #[test]
    fn open_rejects_short_datagrams() {
        let crypt = PacketCrypt::new(CipherKind::Aes256, &default_pass());
        for len in 0..CRYPT_HEADER {
            let mut buf = vec![0u8; len];
            assert_eq!(crypt.open(&mut buf), Err(CryptError::TooShort { len }));
        }
    }

    #[test]
    fn bad_checksum_message_names_the_flags() {
        let msg = CryptError::BadChecksum {
            expected: 1,
            actual: 2,
        }
        .to_string();
        assert!(msg.contains("--crypt") && msg.contains("--key"), "{msg}");
    }

    // kcptun.md §3
    #[test]
    fn kcptun_names() {
        for kind in CipherKind::ALL {
            assert_eq!(CipherKind::from_kcptun_name(kind.name()), (kind, true));
            assert_eq!(kind.to_string(), kind.name());
        }
        assert_eq!(
            CipherKind::from_kcptun_name("aes-256"),
            (CipherKind::Aes256, false)
        );
        assert_eq!(
            CipherKind::from_kcptun_name(""),
            (CipherKind::Aes256, false)
        );
        assert_eq!(
            CipherKind::from_kcptun_name("null"),
            (CipherKind::Aes256, false)
        );
    }

    // x/crypto tea_test.go / ironclad vectors: 64 rounds and kcp-go's 16 rounds.
    #[test]
    fn tea_block_vectors() {
        let zero = [0u32; 4];
        assert_eq!(tea_encrypt(&zero, [0, 0], 32), [0x41ea3a0a, 0x94baa940]);
        assert_eq!(
            tea_encrypt(&zero, [0, 0], TEA_CYCLES),
            [0xed285da1, 0x455b33c1]
        );
        let ones = [u32::MAX; 4];
        let ct = tea_encrypt(&ones, [u32::MAX; 2], 32);
        assert_eq!(ct, [0x319bbefb, 0x016abdb2]);
        assert_eq!(tea_decrypt(&ones, ct, 32), [u32::MAX; 2]);
    }

    // x/crypto xtea_test.go: standard XTEA vectors.
    #[test]
    fn xtea_block_vectors() {
        let k = be_key_words(&(0u8..16).collect::<Vec<_>>());
        let ct = xtea_encrypt(&k, [0x41424344, 0x45464748], XTEA_CYCLES);
        assert_eq!(ct, [0x497df3d0, 0x72612cb5]);
        assert_eq!(xtea_decrypt(&k, ct, XTEA_CYCLES), [0x41424344, 0x45464748]);
        let ct = xtea_encrypt(&[0; 4], [0x41414141; 2], XTEA_CYCLES);
        assert_eq!(ct, [0xed23375a, 0x821a8c2d]);
    }

    // The precomputed schedule matches the reference loop, on random keys and blocks.
    #[test]
    fn xtea_schedule_matches_reference() {
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        for _ in 0..1000 {
            let k = [
                rng.next_u32(),
                rng.next_u32(),
                rng.next_u32(),
                rng.next_u32(),
            ];
            let v = [rng.next_u32(), rng.next_u32()];
            let t = xtea_schedule(&k);
            let ct = xtea_encrypt_fast(&t, v);
            assert_eq!(ct, xtea_encrypt(&k, v, XTEA_CYCLES));
            assert_eq!(xtea_decrypt_fast(&t, ct), v);
        }
        let k = be_key_words(&(0u8..16).collect::<Vec<_>>());
        let ct = xtea_encrypt_fast(&xtea_schedule(&k), [0x41424344, 0x45464748]);
        assert_eq!(ct, [0x497df3d0, 0x72612cb5]);
    }

    #[test]
    fn packet_crypt_is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<PacketCrypt>();
    }

    #[test]
    fn debug_hides_keys() {
        let crypt = PacketCrypt::new(CipherKind::Aes256, &default_pass());
        assert_eq!(format!("{crypt:?}"), "PacketCrypt { kind: Aes256, .. }");
    }
}
