//! Salsa20/20 (Bernstein, "The Salsa20 family of stream ciphers", 2008) with a 256-bit key
//! and 64-bit nonce, four blocks at a time, for kcp-go's `salsa20` cipher
//! (kcp-go-session.md §3.3).
//!
//! The RustCrypto `salsa20` 0.10 crate computes one 64-byte block at a time in scalar
//! code; Go's x/crypto/salsa20 uses SSE2 assembly that runs four blocks side by side.
//! Here the state is sixteen `[u32; 4]` lane arrays, lane `j` being block `counter + j`, so
//! every quarter-round step is the same operation on four independent words: plain Rust
//! (no `unsafe`, no intrinsics) that LLVM turns into 128-bit SIMD on any x86_64 (SSE2) or
//! aarch64 (NEON) target.

/// Four copies of one state word, one per block.
type Lanes = [u32; 4];

/// Bytes of keystream one [`Salsa20::keystream4`] call produces.
const CHUNK: usize = 4 * 64;

/// "expand 32-byte k", the constants at state words 0, 5, 10, 15.
const SIGMA: [u32; 4] = [0x6170_7865, 0x3320_646e, 0x7962_2d32, 0x6b20_6574];

/// `t ^ (a + b) <<< n`, lane by lane.
#[inline(always)]
fn step(t: Lanes, a: Lanes, b: Lanes, n: u32) -> Lanes {
    let mut out = t;
    for i in 0..4 {
        let s = a[i].wrapping_add(b[i]);
        out[i] ^= s << n;
        out[i] ^= s >> (32 - n);
    }
    out
}

/// The quarter-round on state words `a, b, c, d` (paper §3).
#[inline(always)]
fn quarter(x: &mut [Lanes; 16], a: usize, b: usize, c: usize, d: usize) {
    x[b] = step(x[b], x[a], x[d], 7);
    x[c] = step(x[c], x[b], x[a], 9);
    x[d] = step(x[d], x[c], x[b], 13);
    x[a] = step(x[a], x[d], x[c], 18);
}

/// A column round then a row round (paper §3, §4).
#[inline(always)]
fn double_round(x: &mut [Lanes; 16]) {
    quarter(x, 0, 4, 8, 12);
    quarter(x, 5, 9, 13, 1);
    quarter(x, 10, 14, 2, 6);
    quarter(x, 15, 3, 7, 11);
    quarter(x, 0, 1, 2, 3);
    quarter(x, 5, 6, 7, 4);
    quarter(x, 10, 11, 8, 9);
    quarter(x, 15, 12, 13, 14);
}

/// Salsa20/20 keyed with a 32-byte key.
#[derive(Clone)]
pub struct Salsa20 {
    /// The input state with a zero nonce and counter (words 6..10).
    state: [u32; 16],
}

impl Salsa20 {
    /// Keys the cipher (key words at state 1..5 and 11..15, little-endian).
    pub fn new(key: &[u8; 32]) -> Self {
        let k = |i: usize| u32::from_le_bytes([key[i], key[i + 1], key[i + 2], key[i + 3]]);
        let mut state = [0u32; 16];
        state[0] = SIGMA[0];
        state[5] = SIGMA[1];
        state[10] = SIGMA[2];
        state[15] = SIGMA[3];
        for i in 0..4 {
            state[1 + i] = k(4 * i);
            state[11 + i] = k(16 + 4 * i);
        }
        Salsa20 { state }
    }

    /// XORs `buf` with the keystream for `nonce`, starting at block 0.
    pub fn apply_keystream(&self, nonce: &[u8; 8], buf: &mut [u8]) {
        self.apply_keystream_from(nonce, 0, buf);
    }

    /// XORs `buf` with the keystream for `nonce`, starting at block `counter`.
    fn apply_keystream_from(&self, nonce: &[u8; 8], counter: u64, buf: &mut [u8]) {
        let mut input = self.state;
        input[6] = u32::from_le_bytes([nonce[0], nonce[1], nonce[2], nonce[3]]);
        input[7] = u32::from_le_bytes([nonce[4], nonce[5], nonce[6], nonce[7]]);
        let mut ks = [0u8; CHUNK];
        let mut block = counter;
        for chunk in buf.chunks_mut(CHUNK) {
            keystream4(&input, block, &mut ks);
            for (b, k) in chunk.iter_mut().zip(ks.iter()) {
                *b ^= k;
            }
            block = block.wrapping_add(4);
        }
    }
}

/// Four keystream blocks, `counter .. counter + 4`, into `out`.
fn keystream4(input: &[u32; 16], counter: u64, out: &mut [u8; CHUNK]) {
    let mut init = [[0u32; 4]; 16];
    for (lanes, &w) in init.iter_mut().zip(input.iter()) {
        *lanes = [w; 4];
    }
    let blocks: [u64; 4] = core::array::from_fn(|j| counter.wrapping_add(j as u64));
    init[8] = blocks.map(|c| c as u32);
    init[9] = blocks.map(|c| (c >> 32) as u32);
    let mut x = init;
    // Fully unrolled: one basic block from the input to the sums, which lets the SLP
    // vectorizer turn each lane array into one SIMD register.
    double_round(&mut x);
    double_round(&mut x);
    double_round(&mut x);
    double_round(&mut x);
    double_round(&mut x);
    double_round(&mut x);
    double_round(&mut x);
    double_round(&mut x);
    double_round(&mut x);
    double_round(&mut x);
    // Lane-major sums first (contiguous, so they vectorize), then the transpose into
    // block order.
    let mut sum = [[0u32; 4]; 16];
    for (sw, (xw, iw)) in sum.iter_mut().zip(x.iter().zip(init.iter())) {
        for j in 0..4 {
            sw[j] = xw[j].wrapping_add(iw[j]);
        }
    }
    for (w, sw) in sum.iter().enumerate() {
        for (j, v) in sw.iter().enumerate() {
            out[64 * j + 4 * w..64 * j + 4 * w + 4].copy_from_slice(&v.to_le_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cipher::{KeyIvInit, StreamCipher, StreamCipherSeek};
    use rand_chacha::rand_core::{RngCore, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    fn keystream(key: &[u8; 32], nonce: &[u8; 8], len: usize) -> String {
        let mut buf = vec![0u8; len];
        Salsa20::new(key).apply_keystream(nonce, &mut buf);
        hex::encode(buf)
    }

    // eSTREAM salsa20/verified.test-vectors (256-bit key), Set 1 vector 0: key 80 00..00,
    // IV 0, stream[0..63].
    #[test]
    fn estream_set1_vector0() {
        let mut key = [0u8; 32];
        key[0] = 0x80;
        assert_eq!(
            keystream(&key, &[0; 8], 64),
            "e3be8fdd8beca2e3ea8ef9475b29a6e7003951e1097a5c38d23b7a5fad9f6844\
             b22c97559e2723c7cbbd3fe4fc8d9a0744652a83e72a9c461876af4d7ef1a117"
        );
    }

    // eSTREAM (256-bit key), Set 2... IV-set vector: key 0, IV 80 00..00, stream[0..63].
    #[test]
    fn estream_iv_vector0() {
        let mut iv = [0u8; 8];
        iv[0] = 0x80;
        assert_eq!(
            keystream(&[0; 32], &iv, 64),
            "2aba3dc45b4947007b14c851cd694456b303ad59a465662803006705673d6c3e\
             29f1d3510dfc0405463c03414e0e07e359f1f1816c68b2434a19d3eee0464873"
        );
    }

    // Four blocks at once: key 01..20, IV 0301040105090206, stream[0..255].
    #[test]
    fn four_block_vector() {
        let key: [u8; 32] = core::array::from_fn(|i| i as u8 + 1);
        let iv = [0x03, 0x01, 0x04, 0x01, 0x05, 0x09, 0x02, 0x06];
        assert_eq!(
            keystream(&key, &iv, 256),
            "6ebcbdbf76fccc64ab05542bee8a67cbc28fa2e141fbefbb3a2f9b221909c8d7\
             d4295258cb539770dd24d7ac3443769ffa27a50e60644264dc8b6b612683372e\
             085d0a12bf240b189ce2b78289862b56fdc9fcffc33bef9325a2e81b98fb3fb9\
             aa04cf434615ceffeb985c1cb08d8440e90b1d56ddeaea16d9e15affff1f698c\
             483c7a466af1fe062574adfd2b06a62b4d98440719ea776385c470349a7ed696\
             9583463ed5d26b8fefccb205da0f5bfa98c77812fe756b09eacc282aa42f4baf\
             a79633189046e2b20f35b3e0e54aa3b929e23c0f47dc7bcd4f928b2a9764be7d\
             4b8a50f980a50b35ad8087375e0c556ecbe6a7161e8653ce9391e1e6710ed4f1"
        );
    }

    // The RustCrypto crate agrees on random keys, nonces, data and lengths.
    #[test]
    fn matches_rustcrypto_salsa20() {
        let mut rng = ChaCha8Rng::seed_from_u64(0x5a15a);
        for len in (0..=600).chain([1392, 1492, 4096]) {
            let mut key = [0u8; 32];
            let mut nonce = [0u8; 8];
            rng.fill_bytes(&mut key);
            rng.fill_bytes(&mut nonce);
            let mut ours = vec![0u8; len];
            rng.fill_bytes(&mut ours);
            let mut theirs = ours.clone();
            Salsa20::new(&key).apply_keystream(&nonce, &mut ours);
            salsa20::Salsa20::new(&key.into(), &nonce.into()).apply_keystream(&mut theirs);
            assert_eq!(ours, theirs, "len {len}");
        }
    }

    // The 64-bit block counter carries from word 8 into word 9 as in the crate.
    #[test]
    fn counter_carries_into_the_high_word() {
        let key = [7u8; 32];
        let nonce = [9u8; 8];
        let start = u64::from(u32::MAX) - 2;
        let mut ours = vec![0u8; 8 * 64];
        Salsa20::new(&key).apply_keystream_from(&nonce, start, &mut ours);
        let mut theirs = vec![0u8; 8 * 64];
        let mut c = salsa20::Salsa20::new(&key.into(), &nonce.into());
        c.seek(start * 64);
        c.apply_keystream(&mut theirs);
        assert_eq!(ours, theirs);
    }
}
