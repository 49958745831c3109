//! Salsa20/20 keystream for kcp-go's `salsa20` packet cipher (kcp-go-session.md §3.3),
//! computing four 64-byte blocks at once: lane `j` of each `u32x4` holds state word `i` of
//! block `n + j`, so the rounds need only adds, xors and rotates (SSE2 through `wide`, whose
//! safe API keeps this crate free of `unsafe`). RustCrypto's `salsa20` is scalar; kcp-go's
//! is SSE2 assembly, about twice as fast.
use wide::u32x4;

/// "expand 32-byte k".
const SIGMA: [u32; 4] = [0x6170_7865, 0x3320_646e, 0x7962_2d32, 0x6b20_6574];

/// A Salsa20/20 key, ready to produce keystreams for any 8-byte nonce.
#[derive(Clone)]
pub(super) struct Salsa20 {
    key: [u32; 8],
}

fn le32(b: &[u8]) -> u32 {
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

#[inline(always)]
fn rotl(x: u32x4, n: u32) -> u32x4 {
    (x << n) | (x >> (32 - n))
}

/// One quarter-round step, `a ^= rotl(b + c, n)`, on two independent groups of four
/// blocks at once (twice the instruction-level parallelism of one group).
macro_rules! step {
    ($x:ident, $a:literal, $b:literal, $c:literal, $n:literal) => {
        $x.0[$a] ^= rotl($x.0[$b] + $x.0[$c], $n);
        $x.1[$a] ^= rotl($x.1[$b] + $x.1[$c], $n);
    };
}

/// The 20 rounds of Salsa20 (10 column + row double rounds) on eight blocks.
#[inline(always)]
fn rounds(x: &mut ([u32x4; 16], [u32x4; 16])) {
    for _ in 0..10 {
        // Column round.
        step!(x, 4, 0, 12, 7);
        step!(x, 8, 4, 0, 9);
        step!(x, 12, 8, 4, 13);
        step!(x, 0, 12, 8, 18);
        step!(x, 9, 5, 1, 7);
        step!(x, 13, 9, 5, 9);
        step!(x, 1, 13, 9, 13);
        step!(x, 5, 1, 13, 18);
        step!(x, 14, 10, 6, 7);
        step!(x, 2, 14, 10, 9);
        step!(x, 6, 2, 14, 13);
        step!(x, 10, 6, 2, 18);
        step!(x, 3, 15, 11, 7);
        step!(x, 7, 3, 15, 9);
        step!(x, 11, 7, 3, 13);
        step!(x, 15, 11, 7, 18);
        // Row round.
        step!(x, 1, 0, 3, 7);
        step!(x, 2, 1, 0, 9);
        step!(x, 3, 2, 1, 13);
        step!(x, 0, 3, 2, 18);
        step!(x, 6, 5, 4, 7);
        step!(x, 7, 6, 5, 9);
        step!(x, 4, 7, 6, 13);
        step!(x, 5, 4, 7, 18);
        step!(x, 11, 10, 9, 7);
        step!(x, 8, 11, 10, 9);
        step!(x, 9, 8, 11, 13);
        step!(x, 10, 9, 8, 18);
        step!(x, 12, 15, 14, 7);
        step!(x, 13, 12, 15, 9);
        step!(x, 14, 13, 12, 13);
        step!(x, 15, 14, 13, 18);
    }
}

impl Salsa20 {
    /// A key (kcp-go uses the whole 32-byte pass).
    pub(super) fn new(key: &[u8; 32]) -> Self {
        let mut k = [0u32; 8];
        for (w, c) in k.iter_mut().zip(key.chunks_exact(4)) {
            *w = le32(c);
        }
        Salsa20 { key: k }
    }

    /// The input state of blocks `counter .. counter + 4`, one block per lane.
    fn state(&self, nonce: [u32; 2], counter: u64) -> [u32x4; 16] {
        let k = &self.key;
        let s = u32x4::splat;
        let ctr: [u64; 4] = [counter, counter + 1, counter + 2, counter + 3];
        let lo = u32x4::new(ctr.map(|c| c as u32));
        let hi = u32x4::new(ctr.map(|c| (c >> 32) as u32));
        [
            s(SIGMA[0]),
            s(k[0]),
            s(k[1]),
            s(k[2]),
            s(k[3]),
            s(SIGMA[1]),
            s(nonce[0]),
            s(nonce[1]),
            lo,
            hi,
            s(SIGMA[2]),
            s(k[4]),
            s(k[5]),
            s(k[6]),
            s(k[7]),
            s(SIGMA[3]),
        ]
    }

    /// XORs `data` with the keystream of `nonce`, starting at block 0 (Salsa20 is its own
    /// inverse).
    pub(super) fn apply(&self, nonce: &[u8; 8], data: &mut [u8]) {
        let n = [le32(&nonce[..4]), le32(&nonce[4..])];
        let mut counter = 0u64;
        for chunk in data.chunks_mut(512) {
            let input = (self.state(n, counter), self.state(n, counter + 4));
            let mut x = input;
            rounds(&mut x);
            // Block j of a group is lane j of every word: lay the keystream out in order, then
            // XOR it in one pass the compiler vectorizes.
            let mut ks = [0u8; 512];
            for (g, (out, inp)) in [(&x.0, &input.0), (&x.1, &input.1)].into_iter().enumerate() {
                for (i, w) in out
                    .iter()
                    .zip(inp.iter())
                    .map(|(a, b)| (*a + *b).to_array())
                    .enumerate()
                {
                    for (j, v) in w.iter().enumerate() {
                        let at = g * 256 + j * 64 + i * 4;
                        ks[at..at + 4].copy_from_slice(&v.to_le_bytes());
                    }
                }
            }
            for (d, k) in chunk.iter_mut().zip(ks.iter()) {
                *d ^= k;
            }
            counter += 8;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_core::RngCore;
    use salsa20::cipher::{KeyIvInit, StreamCipher};

    /// eSTREAM Salsa20/20 256-bit set 1, vector 0 (key 80 00.., IV 0): first 64 bytes.
    #[test]
    fn estream_set1_vector0() {
        let mut key = [0u8; 32];
        key[0] = 0x80;
        let mut buf = [0u8; 64];
        Salsa20::new(&key).apply(&[0; 8], &mut buf);
        assert_eq!(
            hex::encode(buf),
            "e3be8fdd8beca2e3ea8ef9475b29a6e7003951e1097a5c38d23b7a5fad9f6844\
             b22c97559e2723c7cbbd3fe4fc8d9a0744652a83e72a9c461876af4d7ef1a117"
        );
    }

    /// Same bytes as RustCrypto's scalar `salsa20` for random keys, nonces and lengths.
    #[test]
    fn matches_the_rustcrypto_crate() {
        let mut rng = crate::rng::seeded(20);
        for len in [0usize, 1, 7, 63, 64, 65, 255, 256, 257, 1392, 1500, 4000] {
            let mut key = [0u8; 32];
            let mut nonce = [0u8; 8];
            rng.fill_bytes(&mut key);
            rng.fill_bytes(&mut nonce);
            let mut data = vec![0u8; len];
            rng.fill_bytes(&mut data);
            let mut want = data.clone();
            salsa20::Salsa20::new((&key).into(), (&nonce).into()).apply_keystream(&mut want);
            Salsa20::new(&key).apply(&nonce, &mut data);
            assert_eq!(data, want, "length {len}");
        }
    }
}
