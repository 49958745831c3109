//! Table-driven SM4 (GB/T 32907-2016), for kcp-go's `sm4` cipher (kcp-go-session.md §3.1).
//!
//! The RustCrypto `sm4` 0.5 crate applies the S-box byte by byte and then the linear
//! transform `L` (four rotations) on every round. Here, as in the usual fast software SM4,
//! the S-box and `L` are folded into four 256-entry `u32` tables computed at compile time
//! (`T[j][x] = L(S(x) << 8(3-j))`), so a round is four loads and XORs.
//!
//! Exposed through the `cipher` 0.4 traits, so `Cfb<Sm4>` in [`super::crypt`] runs it.

use cipher::consts::U16;
use cipher::{BlockCipher, Key, KeyInit, KeySizeUser};

/// The SM4 S-box (GB/T 32907-2016 §6.2).
#[rustfmt::skip]
const SBOX: [u8; 256] = [
    0xd6, 0x90, 0xe9, 0xfe, 0xcc, 0xe1, 0x3d, 0xb7, 0x16, 0xb6, 0x14, 0xc2, 0x28, 0xfb, 0x2c, 0x05,
    0x2b, 0x67, 0x9a, 0x76, 0x2a, 0xbe, 0x04, 0xc3, 0xaa, 0x44, 0x13, 0x26, 0x49, 0x86, 0x06, 0x99,
    0x9c, 0x42, 0x50, 0xf4, 0x91, 0xef, 0x98, 0x7a, 0x33, 0x54, 0x0b, 0x43, 0xed, 0xcf, 0xac, 0x62,
    0xe4, 0xb3, 0x1c, 0xa9, 0xc9, 0x08, 0xe8, 0x95, 0x80, 0xdf, 0x94, 0xfa, 0x75, 0x8f, 0x3f, 0xa6,
    0x47, 0x07, 0xa7, 0xfc, 0xf3, 0x73, 0x17, 0xba, 0x83, 0x59, 0x3c, 0x19, 0xe6, 0x85, 0x4f, 0xa8,
    0x68, 0x6b, 0x81, 0xb2, 0x71, 0x64, 0xda, 0x8b, 0xf8, 0xeb, 0x0f, 0x4b, 0x70, 0x56, 0x9d, 0x35,
    0x1e, 0x24, 0x0e, 0x5e, 0x63, 0x58, 0xd1, 0xa2, 0x25, 0x22, 0x7c, 0x3b, 0x01, 0x21, 0x78, 0x87,
    0xd4, 0x00, 0x46, 0x57, 0x9f, 0xd3, 0x27, 0x52, 0x4c, 0x36, 0x02, 0xe7, 0xa0, 0xc4, 0xc8, 0x9e,
    0xea, 0xbf, 0x8a, 0xd2, 0x40, 0xc7, 0x38, 0xb5, 0xa3, 0xf7, 0xf2, 0xce, 0xf9, 0x61, 0x15, 0xa1,
    0xe0, 0xae, 0x5d, 0xa4, 0x9b, 0x34, 0x1a, 0x55, 0xad, 0x93, 0x32, 0x30, 0xf5, 0x8c, 0xb1, 0xe3,
    0x1d, 0xf6, 0xe2, 0x2e, 0x82, 0x66, 0xca, 0x60, 0xc0, 0x29, 0x23, 0xab, 0x0d, 0x53, 0x4e, 0x6f,
    0xd5, 0xdb, 0x37, 0x45, 0xde, 0xfd, 0x8e, 0x2f, 0x03, 0xff, 0x6a, 0x72, 0x6d, 0x6c, 0x5b, 0x51,
    0x8d, 0x1b, 0xaf, 0x92, 0xbb, 0xdd, 0xbc, 0x7f, 0x11, 0xd9, 0x5c, 0x41, 0x1f, 0x10, 0x5a, 0xd8,
    0x0a, 0xc1, 0x31, 0x88, 0xa5, 0xcd, 0x7b, 0xbd, 0x2d, 0x74, 0xd0, 0x12, 0xb8, 0xe5, 0xb4, 0xb0,
    0x89, 0x69, 0x97, 0x4a, 0x0c, 0x96, 0x77, 0x7e, 0x65, 0xb9, 0xf1, 0x09, 0xc5, 0x6e, 0xc6, 0x84,
    0x18, 0xf0, 0x7d, 0xec, 0x3a, 0xdc, 0x4d, 0x20, 0x79, 0xee, 0x5f, 0x3e, 0xd7, 0xcb, 0x39, 0x48,
];

/// The system parameter FK (GB/T 32907-2016 §7.3).
const FK: [u32; 4] = [0xa3b1_bac6, 0x56aa_3350, 0x677d_9197, 0xb270_22dc];

/// The fixed parameters CK: byte `j` of `CK[i]` is `(4i + j) * 7 mod 256` (§7.3).
const CK: [u32; 32] = {
    let mut ck = [0u32; 32];
    let mut i = 0;
    while i < 32 {
        let mut j = 0;
        while j < 4 {
            ck[i] = (ck[i] << 8) | (((4 * i + j) * 7) & 0xff) as u32;
            j += 1;
        }
        i += 1;
    }
    ck
};

/// The round function's linear transform `L` (§6.2).
const fn l_round(b: u32) -> u32 {
    b ^ b.rotate_left(2) ^ b.rotate_left(10) ^ b.rotate_left(18) ^ b.rotate_left(24)
}

/// The key schedule's linear transform `L'` (§7.3).
const fn l_key(b: u32) -> u32 {
    b ^ b.rotate_left(13) ^ b.rotate_left(23)
}

/// `T[j][x] = L(S(x) << (24 - 8j))`: the S-box on byte `j` (big-endian) and `L`, folded.
const T: [[u32; 256]; 4] = {
    let mut t = [[0u32; 256]; 4];
    let mut x = 0;
    while x < 256 {
        let s = SBOX[x] as u32;
        let mut j = 0;
        while j < 4 {
            t[j][x] = l_round(s << (24 - 8 * j));
            j += 1;
        }
        x += 1;
    }
    t
};

/// The nonlinear transform τ: the S-box on each byte.
fn tau(x: u32) -> u32 {
    let b = x.to_be_bytes();
    u32::from_be_bytes([
        SBOX[b[0] as usize],
        SBOX[b[1] as usize],
        SBOX[b[2] as usize],
        SBOX[b[3] as usize],
    ])
}

/// The round transform `T(x) = L(τ(x))`, by table.
#[inline(always)]
fn t_round(x: u32) -> u32 {
    let b = x.to_be_bytes();
    T[0][b[0] as usize] ^ T[1][b[1] as usize] ^ T[2][b[2] as usize] ^ T[3][b[3] as usize]
}

/// The 32 rounds over `x`, round keys in the order given; returns the reversed output
/// words (§6.1, §6.3).
#[inline(always)]
fn rounds<'a>(mut x: [u32; 4], rk: impl Iterator<Item = &'a [u32]>) -> [u32; 4] {
    for k in rk {
        x[0] ^= t_round(x[1] ^ x[2] ^ x[3] ^ k[0]);
        x[1] ^= t_round(x[2] ^ x[3] ^ x[0] ^ k[1]);
        x[2] ^= t_round(x[3] ^ x[0] ^ x[1] ^ k[2]);
        x[3] ^= t_round(x[0] ^ x[1] ^ x[2] ^ k[3]);
    }
    [x[3], x[2], x[1], x[0]]
}

/// SM4 with its 32 round keys.
#[derive(Clone)]
pub struct Sm4 {
    rk: [u32; 32],
}

impl Sm4 {
    /// Encrypts one block given as four big-endian words.
    fn encrypt_words(&self, x: [u32; 4]) -> [u32; 4] {
        rounds(x, self.rk.chunks_exact(4))
    }

    /// Decrypts one block: the same rounds with the round keys reversed (§6.3).
    fn decrypt_words(&self, x: [u32; 4]) -> [u32; 4] {
        let mut rev = self.rk;
        rev.reverse();
        rounds(x, rev.chunks_exact(4))
    }
}

impl KeySizeUser for Sm4 {
    type KeySize = U16;
}

impl KeyInit for Sm4 {
    fn new(key: &Key<Self>) -> Self {
        let mut k = [0u32; 4];
        for (w, (chunk, fk)) in k.iter_mut().zip(key.chunks_exact(4).zip(FK)) {
            *w = u32::from_be_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]) ^ fk;
        }
        let mut rk = [0u32; 32];
        for (i, r) in rk.iter_mut().enumerate() {
            let next = k[0] ^ l_key(tau(k[1] ^ k[2] ^ k[3] ^ CK[i]));
            *r = next;
            k = [k[1], k[2], k[3], next];
        }
        Sm4 { rk }
    }
}

impl BlockCipher for Sm4 {}

/// Big-endian words of a 16-byte block.
fn load(b: &[u8]) -> [u32; 4] {
    let w = |i: usize| u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
    [w(0), w(4), w(8), w(12)]
}

/// Writes four words back big-endian.
fn store(b: &mut [u8], x: [u32; 4]) {
    for (chunk, w) in b.chunks_exact_mut(4).zip(x) {
        chunk.copy_from_slice(&w.to_be_bytes());
    }
}

cipher::impl_simple_block_encdec!(
    Sm4, U16, c, block,
    encrypt: {
        let x = c.encrypt_words(load(block.get_in()));
        store(block.get_out(), x);
    }
    decrypt: {
        let x = c.decrypt_words(load(block.get_in()));
        store(block.get_out(), x);
    }
);

#[cfg(test)]
mod tests {
    use super::*;
    use cipher::{BlockDecrypt, BlockEncrypt};
    use rand_chacha::rand_core::{RngCore, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    const KEY: [u8; 16] = [
        0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef, 0xfe, 0xdc, 0xba, 0x98, 0x76, 0x54, 0x32,
        0x10,
    ];

    // GB/T 32907-2016 Appendix A, example 1: key = plaintext = 0123456789abcdeffedcba9876543210.
    #[test]
    fn gbt_32907_example_1() {
        let c = Sm4::new(&KEY.into());
        let mut block = KEY.into();
        c.encrypt_block(&mut block);
        assert_eq!(hex::encode(block), "681edf34d206965e86b3e94f536e4246");
        c.decrypt_block(&mut block);
        assert_eq!(block[..], KEY);
    }

    // GB/T 32907-2016 Appendix A, example 2: the same key, 1 000 000 encryptions.
    #[test]
    fn gbt_32907_example_2() {
        let c = Sm4::new(&KEY.into());
        let mut x = load(&KEY);
        for _ in 0..1_000_000 {
            x = c.encrypt_words(x);
        }
        let mut out = [0u8; 16];
        store(&mut out, x);
        assert_eq!(hex::encode(out), "595298c7c6fd271f0402f804c33d3f66");
    }

    // The RustCrypto crate agrees on random keys and blocks, both directions.
    #[test]
    fn matches_rustcrypto_sm4() {
        let mut rng = ChaCha8Rng::seed_from_u64(0x534d34);
        for _ in 0..500 {
            let mut key = [0u8; 16];
            let mut pt = [0u8; 16];
            rng.fill_bytes(&mut key);
            rng.fill_bytes(&mut pt);
            let ours = Sm4::new(&key.into());
            let theirs = <::sm4::Sm4 as KeyInit>::new(&key.into());
            let (mut a, mut b) = (pt.into(), pt.into());
            ours.encrypt_block(&mut a);
            theirs.encrypt_block(&mut b);
            assert_eq!(a, b);
            ours.decrypt_block(&mut a);
            assert_eq!(a[..], pt);
        }
    }
}
