//! Table-driven Triple DES (EDE3, FIPS 46-3 / NIST SP 800-67), for kcp-go's `3des` cipher
//! (kcp-go-session.md §3.1), built the way Go's crypto/des is.
//!
//! The RustCrypto `des` 0.8 crate computes the E expansion, the S-boxes and the P
//! permutation with bit operations on every round, and runs the initial and final
//! permutations three times per EDE block. Here, as in Go:
//!
//! - the S-boxes and P are folded into eight 64-entry `u32` tables ([`FEISTEL_BOX`],
//!   Go's `feistelBox`), computed at compile time from the FIPS tables, so a round is
//!   eight loads and XORs;
//! - E needs no work: the halves are kept rotated left by one bit, which puts the eight
//!   6-bit E groups at byte boundaries of the half and of the half rotated by 4, and each
//!   round key is stored pre-split into the matching two words ([`RoundKey`]);
//! - a 3DES block runs IP once, the 48 rounds, and FP once (the FP of one DES and the IP
//!   of the next cancel).
//!
//! Exposed through the `cipher` 0.4 traits, so `Cfb<TdesEde3>` in [`super::crypt`] runs it.

use cipher::consts::{U24, U8};
use cipher::{BlockCipher, Key, KeyInit, KeySizeUser};

/// Permuted choice 1: the 56 key bits kept, as 1-based input positions (FIPS 46-3).
#[rustfmt::skip]
const PC1: [u8; 56] = [
    57, 49, 41, 33, 25, 17, 9, 1, 58, 50, 42, 34, 26, 18,
    10, 2, 59, 51, 43, 35, 27, 19, 11, 3, 60, 52, 44, 36,
    63, 55, 47, 39, 31, 23, 15, 7, 62, 54, 46, 38, 30, 22,
    14, 6, 61, 53, 45, 37, 29, 21, 13, 5, 28, 20, 12, 4,
];

/// Permuted choice 2: the 48 round-key bits from C‖D (FIPS 46-3).
#[rustfmt::skip]
const PC2: [u8; 48] = [
    14, 17, 11, 24, 1, 5, 3, 28, 15, 6, 21, 10,
    23, 19, 12, 4, 26, 8, 16, 7, 27, 20, 13, 2,
    41, 52, 31, 37, 47, 55, 30, 40, 51, 45, 33, 48,
    44, 49, 39, 56, 34, 53, 46, 42, 50, 36, 29, 32,
];

/// Left shifts of C and D before each round's key (FIPS 46-3).
const SHIFTS: [u32; 16] = [1, 1, 2, 2, 2, 2, 2, 2, 1, 2, 2, 2, 2, 2, 2, 1];

/// The permutation P applied to the S-box outputs (FIPS 46-3).
#[rustfmt::skip]
const P: [u8; 32] = [
    16, 7, 20, 21, 29, 12, 28, 17, 1, 15, 23, 26, 5, 18, 31, 10,
    2, 8, 24, 14, 32, 27, 3, 9, 19, 13, 30, 6, 22, 11, 4, 25,
];

/// The initial permutation IP (FIPS 46-3); FP is its inverse. Only the tests use the
/// table: [`ip`] and [`fp`] compute it with delta swaps.
#[cfg(test)]
#[rustfmt::skip]
const IP: [u8; 64] = [
    58, 50, 42, 34, 26, 18, 10, 2, 60, 52, 44, 36, 28, 20, 12, 4,
    62, 54, 46, 38, 30, 22, 14, 6, 64, 56, 48, 40, 32, 24, 16, 8,
    57, 49, 41, 33, 25, 17, 9, 1, 59, 51, 43, 35, 27, 19, 11, 3,
    61, 53, 45, 37, 29, 21, 13, 5, 63, 55, 47, 39, 31, 23, 15, 7,
];

/// The eight S-boxes, `S[s][row][column]` as printed in FIPS 46-3.
#[rustfmt::skip]
const S: [[[u8; 16]; 4]; 8] = [
    [
        [14, 4, 13, 1, 2, 15, 11, 8, 3, 10, 6, 12, 5, 9, 0, 7],
        [0, 15, 7, 4, 14, 2, 13, 1, 10, 6, 12, 11, 9, 5, 3, 8],
        [4, 1, 14, 8, 13, 6, 2, 11, 15, 12, 9, 7, 3, 10, 5, 0],
        [15, 12, 8, 2, 4, 9, 1, 7, 5, 11, 3, 14, 10, 0, 6, 13],
    ],
    [
        [15, 1, 8, 14, 6, 11, 3, 4, 9, 7, 2, 13, 12, 0, 5, 10],
        [3, 13, 4, 7, 15, 2, 8, 14, 12, 0, 1, 10, 6, 9, 11, 5],
        [0, 14, 7, 11, 10, 4, 13, 1, 5, 8, 12, 6, 9, 3, 2, 15],
        [13, 8, 10, 1, 3, 15, 4, 2, 11, 6, 7, 12, 0, 5, 14, 9],
    ],
    [
        [10, 0, 9, 14, 6, 3, 15, 5, 1, 13, 12, 7, 11, 4, 2, 8],
        [13, 7, 0, 9, 3, 4, 6, 10, 2, 8, 5, 14, 12, 11, 15, 1],
        [13, 6, 4, 9, 8, 15, 3, 0, 11, 1, 2, 12, 5, 10, 14, 7],
        [1, 10, 13, 0, 6, 9, 8, 7, 4, 15, 14, 3, 11, 5, 2, 12],
    ],
    [
        [7, 13, 14, 3, 0, 6, 9, 10, 1, 2, 8, 5, 11, 12, 4, 15],
        [13, 8, 11, 5, 6, 15, 0, 3, 4, 7, 2, 12, 1, 10, 14, 9],
        [10, 6, 9, 0, 12, 11, 7, 13, 15, 1, 3, 14, 5, 2, 8, 4],
        [3, 15, 0, 6, 10, 1, 13, 8, 9, 4, 5, 11, 12, 7, 2, 14],
    ],
    [
        [2, 12, 4, 1, 7, 10, 11, 6, 8, 5, 3, 15, 13, 0, 14, 9],
        [14, 11, 2, 12, 4, 7, 13, 1, 5, 0, 15, 10, 3, 9, 8, 6],
        [4, 2, 1, 11, 10, 13, 7, 8, 15, 9, 12, 5, 6, 3, 0, 14],
        [11, 8, 12, 7, 1, 14, 2, 13, 6, 15, 0, 9, 10, 4, 5, 3],
    ],
    [
        [12, 1, 10, 15, 9, 2, 6, 8, 0, 13, 3, 4, 14, 7, 5, 11],
        [10, 15, 4, 2, 7, 12, 9, 5, 6, 1, 13, 14, 0, 11, 3, 8],
        [9, 14, 15, 5, 2, 8, 12, 3, 7, 0, 4, 10, 1, 13, 11, 6],
        [4, 3, 2, 12, 9, 5, 15, 10, 11, 14, 1, 7, 6, 0, 8, 13],
    ],
    [
        [4, 11, 2, 14, 15, 0, 8, 13, 3, 12, 9, 7, 5, 10, 6, 1],
        [13, 0, 11, 7, 4, 9, 1, 10, 14, 3, 5, 12, 2, 15, 8, 6],
        [1, 4, 11, 13, 12, 3, 7, 14, 10, 15, 6, 8, 0, 5, 9, 2],
        [6, 11, 13, 8, 1, 4, 10, 7, 9, 5, 0, 15, 14, 2, 3, 12],
    ],
    [
        [13, 2, 8, 4, 6, 15, 11, 1, 10, 9, 3, 14, 5, 0, 12, 7],
        [1, 15, 13, 8, 10, 3, 7, 4, 12, 5, 6, 11, 0, 14, 9, 2],
        [7, 11, 4, 1, 9, 12, 14, 2, 0, 6, 10, 13, 15, 3, 5, 8],
        [2, 1, 14, 7, 4, 10, 8, 13, 15, 12, 9, 0, 3, 5, 6, 11],
    ],
];

/// Applies a FIPS-style bit table: output bit `i` (1-based from the most significant of
/// `table.len()` bits) is input bit `table[i]` (1-based from the most significant of
/// `in_bits`).
const fn permute(x: u64, in_bits: u32, table: &[u8]) -> u64 {
    let mut out = 0u64;
    let mut i = 0;
    while i < table.len() {
        out = (out << 1) | ((x >> (in_bits - table[i] as u32)) & 1);
        i += 1;
    }
    out
}

/// `FEISTEL_BOX[s][x]`: S-box `s` on the 6-bit group `x` (bits b1..b6, b1 most
/// significant: row b1b6, column b2..b5), placed at its nibble, through P, rotated left by
/// one (the halves are kept rotated; Go's `feistelBox`).
const FEISTEL_BOX: [[u32; 64]; 8] = {
    let mut fb = [[0u32; 64]; 8];
    let mut s = 0;
    while s < 8 {
        let mut x = 0;
        while x < 64 {
            let row = ((x >> 4) & 2) | (x & 1);
            let col = (x >> 1) & 15;
            let nibble = (S[s][row][col] as u64) << (28 - 4 * s);
            fb[s][x] = (permute(nibble, 32, &P) as u32).rotate_left(1);
            x += 1;
        }
        s += 1;
    }
    fb
};

/// One round key, split for the rotated half `r` (see the module docs): `odd` holds the
/// 6-bit key groups 7, 5, 3, 1 at bytes 0..4 (XORed with `r`), `even` groups 6, 4, 2, 0
/// (XORed with `r` rotated right by 4).
#[derive(Clone, Copy, Default)]
struct RoundKey {
    odd: u32,
    even: u32,
}

/// The 16 round keys of one DES key, in encryption order.
fn key_schedule(key: u64) -> [RoundKey; 16] {
    let cd = permute(key, 64, &PC1);
    let (mut c, mut d) = ((cd >> 28) as u32, (cd & 0x0fff_ffff) as u32);
    let rot28 = |x: u32, n: u32| ((x << n) | (x >> (28 - n))) & 0x0fff_ffff;
    let mut keys = [RoundKey::default(); 16];
    for (rk, &shift) in keys.iter_mut().zip(&SHIFTS) {
        c = rot28(c, shift);
        d = rot28(d, shift);
        let k = permute((u64::from(c) << 28) | u64::from(d), 56, &PC2);
        // Group g is bits 42 - 6g .. 48 - 6g of the 48-bit key.
        let group = |g: u32| ((k >> (42 - 6 * g)) & 0x3f) as u32;
        rk.odd = group(7) | group(5) << 8 | group(3) << 16 | group(1) << 24;
        rk.even = group(6) | group(4) << 8 | group(2) << 16 | group(0) << 24;
    }
    keys
}

/// The cipher function f(R, K), on and into rotated halves.
#[inline(always)]
fn f(r: u32, k: RoundKey) -> u32 {
    let fb = &FEISTEL_BOX;
    let t = r ^ k.odd;
    let u = r.rotate_right(4) ^ k.even;
    // Two independent halves, so the loads and XORs overlap.
    let odd = (fb[7][(t & 0x3f) as usize] ^ fb[5][((t >> 8) & 0x3f) as usize])
        ^ (fb[3][((t >> 16) & 0x3f) as usize] ^ fb[1][((t >> 24) & 0x3f) as usize]);
    let even = (fb[6][(u & 0x3f) as usize] ^ fb[4][((u >> 8) & 0x3f) as usize])
        ^ (fb[2][((u >> 16) & 0x3f) as usize] ^ fb[0][((u >> 24) & 0x3f) as usize]);
    odd ^ even
}

/// 16 rounds with the keys in the given order, on halves `(l, r)`; returns `(L16, R16)`
/// (no final swap).
#[inline(always)]
fn sixteen_rounds((mut l, mut r): (u32, u32), keys: &[RoundKey; 16]) -> (u32, u32) {
    for pair in keys.chunks_exact(2) {
        l ^= f(r, pair[0]);
        r ^= f(l, pair[1]);
    }
    (l, r)
}

/// Swaps the bits of `x` selected by `mask` with those `delta` places higher.
const fn delta_swap(x: u64, delta: u32, mask: u64) -> u64 {
    let t = (x ^ (x >> delta)) & mask;
    x ^ t ^ (t << delta)
}

/// The initial permutation IP, by delta swaps; returns the halves `(L0, R0)` rotated left
/// by one.
fn ip(block: u64) -> (u32, u32) {
    let mut x = block;
    x = delta_swap(x, 9, 0x0055_0055_0055_0055);
    x = delta_swap(x, 18, 0x0000_3333_0000_3333);
    x = delta_swap(x, 36, 0x0000_0000_0f0f_0f0f);
    x = delta_swap(x, 24, 0x0000_0000_ff00_ff00);
    x = delta_swap(x, 24, 0x0000_00ff_0000_00ff);
    (((x >> 32) as u32).rotate_left(1), (x as u32).rotate_left(1))
}

/// The final permutation FP = IP⁻¹ of the pre-output `hi‖lo` given as rotated halves.
fn fp(hi: u32, lo: u32) -> u64 {
    let mut x = (u64::from(hi.rotate_right(1)) << 32) | u64::from(lo.rotate_right(1));
    x = delta_swap(x, 24, 0x0000_00ff_0000_00ff);
    x = delta_swap(x, 24, 0x0000_0000_ff00_ff00);
    x = delta_swap(x, 36, 0x0000_0000_0f0f_0f0f);
    x = delta_swap(x, 18, 0x0000_3333_0000_3333);
    delta_swap(x, 9, 0x0055_0055_0055_0055)
}

/// Triple DES, EDE with three independent keys (keying option 1; kcp-go uses pass[0..24]).
#[derive(Clone)]
pub struct TdesEde3 {
    /// Round keys of K1, K2, K3 in encryption order.
    enc: [[RoundKey; 16]; 3],
    /// The same, reversed (decryption order).
    dec: [[RoundKey; 16]; 3],
}

impl TdesEde3 {
    /// `E_K3(D_K2(E_K1(block)))` with one IP and one FP. Each DES ends by swapping the
    /// halves and the next starts on them, so the swaps are folded into argument order.
    fn encrypt_u64(&self, block: u64) -> u64 {
        let (l, r) = sixteen_rounds(ip(block), &self.enc[0]);
        let (r, l) = sixteen_rounds((r, l), &self.dec[1]);
        let (l, r) = sixteen_rounds((l, r), &self.enc[2]);
        fp(r, l)
    }

    /// `D_K1(E_K2(D_K3(block)))`, the inverse of [`TdesEde3::encrypt_u64`].
    fn decrypt_u64(&self, block: u64) -> u64 {
        let (l, r) = sixteen_rounds(ip(block), &self.dec[2]);
        let (r, l) = sixteen_rounds((r, l), &self.enc[1]);
        let (l, r) = sixteen_rounds((l, r), &self.dec[0]);
        fp(r, l)
    }
}

impl KeySizeUser for TdesEde3 {
    type KeySize = U24;
}

impl KeyInit for TdesEde3 {
    fn new(key: &Key<Self>) -> Self {
        let mut enc = [[RoundKey::default(); 16]; 3];
        let mut dec = enc;
        for ((e, d), k) in enc.iter_mut().zip(dec.iter_mut()).zip(key.chunks_exact(8)) {
            let mut k8 = [0u8; 8];
            k8.copy_from_slice(k);
            *e = key_schedule(u64::from_be_bytes(k8));
            *d = *e;
            d.reverse();
        }
        TdesEde3 { enc, dec }
    }
}

impl BlockCipher for TdesEde3 {}

/// A big-endian 8-byte block as a `u64`.
fn load(b: &[u8]) -> u64 {
    let mut x = [0u8; 8];
    x.copy_from_slice(b);
    u64::from_be_bytes(x)
}

cipher::impl_simple_block_encdec!(
    TdesEde3, U8, c, block,
    encrypt: {
        let x = c.encrypt_u64(load(block.get_in()));
        block.get_out().copy_from_slice(&x.to_be_bytes());
    }
    decrypt: {
        let x = c.decrypt_u64(load(block.get_in()));
        block.get_out().copy_from_slice(&x.to_be_bytes());
    }
);

#[cfg(test)]
mod tests {
    use super::*;
    use cipher::{BlockDecrypt, BlockEncrypt};
    use rand_chacha::rand_core::{RngCore, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    fn tdes(k1: &str, k2: &str, k3: &str) -> TdesEde3 {
        let key = hex::decode(format!("{k1}{k2}{k3}")).unwrap();
        TdesEde3::new_from_slice(&key).unwrap()
    }

    fn check(c: &TdesEde3, pt: &str, ct: &str) {
        let mut block = cipher::Block::<TdesEde3>::clone_from_slice(&hex::decode(pt).unwrap());
        c.encrypt_block(&mut block);
        assert_eq!(hex::encode(block), ct, "encrypt {pt}");
        c.decrypt_block(&mut block);
        assert_eq!(hex::encode(block), pt, "decrypt {ct}");
    }

    // The delta-swap IP and FP are the FIPS 46-3 tables.
    #[test]
    fn ip_and_fp_match_the_tables() {
        let mut rng = ChaCha8Rng::seed_from_u64(0x1b);
        for bit in (0..64)
            .map(|b| 1u64 << b)
            .chain((0..200).map(|_| rng.next_u64()))
        {
            let want = permute(bit, 64, &IP);
            let (l, r) = ip(bit);
            let got = (u64::from(l.rotate_right(1)) << 32) | u64::from(r.rotate_right(1));
            assert_eq!(got, want, "IP({bit:#018x})");
            assert_eq!(fp(l, r), bit, "FP(IP({bit:#018x}))");
        }
    }

    // Single DES (K1 = K2 = K3): the classic worked example and the FIPS 81 one.
    #[test]
    fn single_des_vectors() {
        let k = "133457799bbcdff1";
        check(&tdes(k, k, k), "0123456789abcdef", "85e813540f0ab405");
        let k = "0123456789abcdef";
        check(&tdes(k, k, k), "4e6f772069732074", "3fa40e8a984d4815");
    }

    // NIST SP 800-67 Rev. 1, Appendix B: TDEA ECB, "The qufck brown fox jump".
    #[test]
    fn sp800_67_example() {
        let c = tdes("0123456789abcdef", "23456789abcdef01", "456789abcdef0123");
        check(&c, "5468652071756663", "a826fd8ce53b855f");
        check(&c, "6b2062726f776e20", "cce21c8112256fe6");
        check(&c, "666f78206a756d70", "68d5c05dd9b6b900");
    }

    // The RustCrypto crate agrees on random keys and blocks, both directions.
    #[test]
    fn matches_rustcrypto_des() {
        let mut rng = ChaCha8Rng::seed_from_u64(0x3de5);
        for _ in 0..500 {
            let mut key = [0u8; 24];
            let mut pt = [0u8; 8];
            rng.fill_bytes(&mut key);
            rng.fill_bytes(&mut pt);
            let ours = TdesEde3::new(&key.into());
            let theirs = <::des::TdesEde3 as KeyInit>::new(&key.into());
            let (mut a, mut b) = (pt.into(), pt.into());
            ours.encrypt_block(&mut a);
            theirs.encrypt_block(&mut b);
            assert_eq!(a, b);
            ours.decrypt_block(&mut a);
            assert_eq!(a[..], pt);
        }
    }
}
