//! Table-driven Twofish (Schneier et al., "Twofish: A 128-Bit Block Cipher", 1998), the
//! same construction as golang.org/x/crypto/twofish, which kcp-go's `twofish` cipher uses.
//!
//! The RustCrypto `twofish` 0.7 crate evaluates the key-dependent S-boxes and the MDS
//! multiply bit by bit for every block (`gf_mult` loops in `g`), ~2.5 MB/s for kcp-go's
//! CFB. Here, as in Go and the paper's "full keying" option (§4.3, §7.2), key setup folds
//! the q-permutations, the key bytes `S` and the MDS columns into four 256-entry `u32`
//! tables, so a round is 8 table lookups, and a block costs ~16 × 8 loads.
//!
//! Exposed through the `cipher` 0.4 traits, so `Cfb<Twofish>` in [`super::crypt`] can run it
//! unchanged. Keys of 16, 24 and 32 bytes are accepted (`new_from_slice`); kcp-go uses 32.

use cipher::consts::{U16, U32};
use cipher::{BlockCipher, InvalidLength, Key, KeyInit, KeySizeUser};

/// MDS polynomial x^8 + x^6 + x^5 + x^3 + 1 (paper §4.2), without the x^8 term.
const MDS_POLY: u8 = 0x69;
/// RS polynomial x^8 + x^6 + x^3 + x^2 + 1 (paper §4.3), without the x^8 term.
const RS_POLY: u8 = 0x4d;

/// The RS matrix that derives the S-box key words from the key (paper §4.3).
const RS: [[u8; 8]; 4] = [
    [0x01, 0xa4, 0x55, 0x87, 0x5a, 0x58, 0xdb, 0x9e],
    [0xa4, 0x56, 0x82, 0xf3, 0x1e, 0xc6, 0x68, 0xe5],
    [0x02, 0xa1, 0xfc, 0xc1, 0x47, 0xae, 0x3d, 0x19],
    [0xa4, 0x55, 0x87, 0x5a, 0x58, 0xdb, 0x9e, 0x03],
];

/// The 4-bit t-boxes of q0 and q1 (paper §4.3.5).
const QT: [[[u8; 16]; 4]; 2] = [
    [
        [8, 1, 7, 13, 6, 15, 3, 2, 0, 11, 5, 9, 14, 12, 10, 4],
        [14, 12, 11, 8, 1, 2, 3, 5, 15, 4, 10, 6, 7, 0, 9, 13],
        [11, 10, 5, 14, 6, 13, 9, 0, 12, 8, 15, 3, 2, 4, 7, 1],
        [13, 7, 15, 4, 1, 2, 6, 14, 9, 11, 3, 0, 8, 5, 12, 10],
    ],
    [
        [2, 8, 11, 13, 15, 7, 6, 14, 3, 1, 9, 4, 0, 10, 12, 5],
        [1, 14, 2, 11, 4, 12, 3, 7, 6, 13, 10, 5, 15, 9, 0, 8],
        [4, 12, 7, 5, 1, 6, 9, 10, 0, 14, 13, 8, 2, 11, 3, 15],
        [11, 9, 5, 1, 12, 3, 13, 14, 6, 4, 7, 15, 2, 0, 8, 10],
    ],
];

/// 4-bit rotate right by one.
const fn ror4(x: u8) -> u8 {
    ((x >> 1) | (x << 3)) & 15
}

/// One q-permutation byte, from its t-boxes (paper §4.3.5).
const fn q_byte(t: &[[u8; 16]; 4], x: u8) -> u8 {
    let (a0, b0) = (x >> 4, x & 15);
    let a1 = a0 ^ b0;
    let b1 = (a0 ^ ror4(b0) ^ (a0 << 3)) & 15;
    let (a2, b2) = (t[0][a1 as usize], t[1][b1 as usize]);
    let a3 = a2 ^ b2;
    let b3 = (a2 ^ ror4(b2) ^ (a2 << 3)) & 15;
    let (a4, b4) = (t[2][a3 as usize], t[3][b3 as usize]);
    (b4 << 4) | a4
}

/// q0 and q1 as full 256-byte permutations, computed at compile time.
const Q: [[u8; 256]; 2] = {
    let mut q = [[0u8; 256]; 2];
    let mut i = 0;
    while i < 256 {
        q[0][i] = q_byte(&QT[0], i as u8);
        q[1][i] = q_byte(&QT[1], i as u8);
        i += 1;
    }
    q
};

/// Which q each h-function stage applies to byte column 0..4, from the innermost (the
/// stage applied to the input first, only with 256-bit keys) to the outermost (paper
/// §4.3.2, Figure 2). Row `j` is byte column `j`.
const Q_ORDER: [[usize; 5]; 4] = [
    [1, 1, 0, 0, 1],
    [0, 1, 1, 0, 0],
    [0, 0, 0, 1, 1],
    [1, 0, 1, 1, 0],
];

/// Multiplication in GF(2^8) modulo x^8 + `poly`.
const fn gf_mul(mut a: u8, mut b: u8, poly: u8) -> u8 {
    let mut r = 0u8;
    while a != 0 {
        if a & 1 != 0 {
            r ^= b;
        }
        a >>= 1;
        b = if b & 0x80 != 0 {
            (b << 1) ^ poly
        } else {
            b << 1
        };
    }
    r
}

/// Column `col` of the MDS matrix times `x`, as a little-endian word (paper §4.2).
fn mds_column(x: u8, col: usize) -> u32 {
    let m1 = x;
    let m5b = gf_mul(x, 0x5b, MDS_POLY);
    let mef = gf_mul(x, 0xef, MDS_POLY);
    let bytes = match col {
        0 => [m1, m5b, mef, mef],
        1 => [mef, mef, m5b, m1],
        2 => [m5b, mef, m1, mef],
        _ => [m5b, m1, mef, m5b],
    };
    u32::from_le_bytes(bytes)
}

/// The h function's byte path for column `col`: the q-stages interleaved with XORs of
/// `words[k-1] .. words[0]` (byte `col` of each), `k = words.len()` (2, 3 or 4).
fn h_byte(x: u8, col: usize, words: &[[u8; 4]]) -> u8 {
    let k = words.len();
    let mut y = x;
    // Stages 5 - k .. 5: the innermost ones only exist for longer keys.
    for (stage, w) in (4 - k..4).zip(words.iter().rev()) {
        y = Q[Q_ORDER[col][stage]][y as usize] ^ w[col];
    }
    Q[Q_ORDER[col][4]][y as usize]
}

/// The h function (paper §4.3.2): `MDS · (q-stages(x bytes) ^ words)`.
fn h(x: u32, words: &[[u8; 4]]) -> u32 {
    let b = x.to_le_bytes();
    (0..4).fold(0, |acc, col| {
        acc ^ mds_column(h_byte(b[col], col, words), col)
    })
}

/// Twofish with fully keyed S-box tables.
#[derive(Clone)]
pub struct Twofish {
    /// `s[col][x] = MDS_col · q-path(x)` with the S-box key folded in (the g function's
    /// four byte lanes).
    s: Box<[[u32; 256]; 4]>,
    /// The 40 expanded subkeys K0..K39.
    k: [u32; 40],
}

impl Twofish {
    /// Key schedule (paper §4.3) for a 16-, 24- or 32-byte key.
    fn with_key(key: &[u8]) -> Result<Self, InvalidLength> {
        let k = match key.len() {
            16 | 24 | 32 => key.len() / 8,
            _ => return Err(InvalidLength),
        };
        // Me (even words) and Mo (odd words), each word as 4 little-endian bytes.
        let mut me = [[0u8; 4]; 4];
        let mut mo = [[0u8; 4]; 4];
        for i in 0..k {
            me[i].copy_from_slice(&key[8 * i..8 * i + 4]);
            mo[i].copy_from_slice(&key[8 * i + 4..8 * i + 8]);
        }
        // S-box key words S_i = RS · key[8i..8i+8], used in reverse order (S_{k-1} first).
        let mut sk = [[0u8; 4]; 4];
        for i in 0..k {
            for (row, rs_row) in RS.iter().enumerate() {
                sk[k - 1 - i][row] = rs_row
                    .iter()
                    .zip(&key[8 * i..8 * i + 8])
                    .fold(0, |acc, (&r, &kb)| acc ^ gf_mul(kb, r, RS_POLY));
            }
        }
        let mut sub = [0u32; 40];
        for i in 0..20u32 {
            let rho = 0x0101_0101u32;
            let a = h(2 * i * rho, &me[..k]);
            let b = h((2 * i + 1) * rho, &mo[..k]).rotate_left(8);
            sub[2 * i as usize] = a.wrapping_add(b);
            sub[2 * i as usize + 1] = a.wrapping_add(b.wrapping_mul(2)).rotate_left(9);
        }
        let mut s = Box::new([[0u32; 256]; 4]);
        for (col, table) in s.iter_mut().enumerate() {
            for (x, e) in table.iter_mut().enumerate() {
                *e = mds_column(h_byte(x as u8, col, &sk[..k]), col);
            }
        }
        Ok(Twofish { s, k: sub })
    }

    /// g(x) with the key-dependent S-boxes (paper §4.3.2).
    #[inline(always)]
    fn g0(&self, x: u32) -> u32 {
        let s = &*self.s;
        s[0][(x & 0xff) as usize]
            ^ s[1][((x >> 8) & 0xff) as usize]
            ^ s[2][((x >> 16) & 0xff) as usize]
            ^ s[3][(x >> 24) as usize]
    }

    /// g(x <<< 8).
    #[inline(always)]
    fn g1(&self, x: u32) -> u32 {
        let s = &*self.s;
        s[0][(x >> 24) as usize]
            ^ s[1][(x & 0xff) as usize]
            ^ s[2][((x >> 8) & 0xff) as usize]
            ^ s[3][((x >> 16) & 0xff) as usize]
    }

    /// Encrypts one 16-byte block.
    fn encrypt16(&self, inp: &[u8; 16]) -> [u8; 16] {
        let w = words(inp);
        let k = &self.k;
        let (mut a, mut b, mut c, mut d) = (w[0] ^ k[0], w[1] ^ k[1], w[2] ^ k[2], w[3] ^ k[3]);
        for r in 0..8 {
            let rk = &k[8 + 4 * r..12 + 4 * r];
            let t0 = self.g0(a);
            let t1 = self.g1(b);
            c = (c ^ t0.wrapping_add(t1).wrapping_add(rk[0])).rotate_right(1);
            d = d.rotate_left(1) ^ t0.wrapping_add(t1.wrapping_mul(2)).wrapping_add(rk[1]);
            let t0 = self.g0(c);
            let t1 = self.g1(d);
            a = (a ^ t0.wrapping_add(t1).wrapping_add(rk[2])).rotate_right(1);
            b = b.rotate_left(1) ^ t0.wrapping_add(t1.wrapping_mul(2)).wrapping_add(rk[3]);
        }
        unwords([c ^ k[4], d ^ k[5], a ^ k[6], b ^ k[7]])
    }

    /// Decrypts one 16-byte block.
    fn decrypt16(&self, inp: &[u8; 16]) -> [u8; 16] {
        let w = words(inp);
        let k = &self.k;
        let (mut c, mut d, mut a, mut b) = (w[0] ^ k[4], w[1] ^ k[5], w[2] ^ k[6], w[3] ^ k[7]);
        for r in (0..8).rev() {
            let rk = &k[8 + 4 * r..12 + 4 * r];
            let t0 = self.g0(c);
            let t1 = self.g1(d);
            a = a.rotate_left(1) ^ t0.wrapping_add(t1).wrapping_add(rk[2]);
            b = (b ^ t0.wrapping_add(t1.wrapping_mul(2)).wrapping_add(rk[3])).rotate_right(1);
            let t0 = self.g0(a);
            let t1 = self.g1(b);
            c = c.rotate_left(1) ^ t0.wrapping_add(t1).wrapping_add(rk[0]);
            d = (d ^ t0.wrapping_add(t1.wrapping_mul(2)).wrapping_add(rk[1])).rotate_right(1);
        }
        unwords([a ^ k[0], b ^ k[1], c ^ k[2], d ^ k[3]])
    }
}

/// Four little-endian words of a block.
fn words(b: &[u8; 16]) -> [u32; 4] {
    let mut w = [0u32; 4];
    for (w, c) in w.iter_mut().zip(b.chunks_exact(4)) {
        *w = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
    }
    w
}

/// A block from four little-endian words.
fn unwords(w: [u32; 4]) -> [u8; 16] {
    let mut b = [0u8; 16];
    for (c, w) in b.chunks_exact_mut(4).zip(w) {
        c.copy_from_slice(&w.to_le_bytes());
    }
    b
}

impl KeySizeUser for Twofish {
    type KeySize = U32;
}

impl KeyInit for Twofish {
    fn new(key: &Key<Self>) -> Self {
        Self::with_key(key).unwrap_or_else(|_| unreachable!("32 is a Twofish key size"))
    }

    fn new_from_slice(key: &[u8]) -> Result<Self, InvalidLength> {
        Self::with_key(key)
    }
}

impl BlockCipher for Twofish {}

cipher::impl_simple_block_encdec!(
    Twofish, U16, c, block,
    encrypt: {
        let out = c.encrypt16(&(*block.get_in()).into());
        block.get_out().copy_from_slice(&out);
    }
    decrypt: {
        let out = c.decrypt16(&(*block.get_in()).into());
        block.get_out().copy_from_slice(&out);
    }
);

#[cfg(test)]
mod tests {
    use super::*;
    use cipher::{Block, BlockDecrypt, BlockEncrypt};

    fn enc(c: &Twofish, pt: &[u8]) -> Vec<u8> {
        let mut b = Block::<Twofish>::clone_from_slice(pt);
        c.encrypt_block(&mut b);
        b.to_vec()
    }

    fn dec(c: &Twofish, ct: &[u8]) -> Vec<u8> {
        let mut b = Block::<Twofish>::clone_from_slice(ct);
        c.decrypt_block(&mut b);
        b.to_vec()
    }

    fn h(s: &str) -> Vec<u8> {
        hex::decode(s).unwrap()
    }

    /// (key, plaintext, ciphertext): the Twofish paper's ecb_ival.txt (zero plaintext,
    /// 128/192/256-bit keys) and ECB_TBL.TXT entries, as x/crypto/twofish's tests use them.
    const VECTORS: [(&str, &str, &str); 6] = [
        (
            "00000000000000000000000000000000",
            "00000000000000000000000000000000",
            "9f589f5cf6122c32b6bfec2f2ae8c35a",
        ),
        (
            "0123456789abcdeffedcba98765432100011223344556677",
            "00000000000000000000000000000000",
            "cfd1d2e5a9be9cdf501f13b892bd2248",
        ),
        (
            "0123456789abcdeffedcba987654321000112233445566778899aabbccddeeff",
            "00000000000000000000000000000000",
            "37527be0052334b89f0cfccae87cfa20",
        ),
        (
            "9f589f5cf6122c32b6bfec2f2ae8c35a",
            "d491db16e7b1c39e86cb086b789f5419",
            "019f9809de1711858faac3a3ba20fbc3",
        ),
        (
            "88b2b2706b105e36b446bb6d731a1e88efa71f788965bd44",
            "39da69d6ba4997d585b6dc073ca341b2",
            "182b02d81497ea45f9daacdc29193a65",
        ),
        (
            "d43bb7556ea32e46f2a282b7d45b4e0d57ff739d4dc92c1bd7fc01700cc8216f",
            "90afe91bb288544f2c32dc239b2635e6",
            "6cb4561c40bf0a9705931cb6d408e7fa",
        ),
    ];

    #[test]
    fn official_vectors() {
        for (key, pt, ct) in VECTORS {
            let c = Twofish::new_from_slice(&h(key)).unwrap();
            assert_eq!(hex::encode(enc(&c, &h(pt))), ct, "key {key}");
            assert_eq!(hex::encode(dec(&c, &h(ct))), pt, "key {key}");
        }
    }

    /// ECB_TBL.TXT's chained test, I = 1..49 for 128/192/256-bit keys: step n encrypts
    /// CT(n-1) under KEY(n) = (CT(n-2) || KEY(n-1)) truncated, from all-zero key and block.
    /// The paper lists the 49th ciphertexts.
    #[test]
    fn ecb_tbl_chains() {
        for (len, last) in [
            (16, "5d9d4eeffa9151575524f115815a12e0"),
            (24, "e75449212beef9f4a390bd860a640941"),
            (32, "37fe26ff1cf66175f5ddf4c33b97a205"),
        ] {
            let mut key = vec![0u8; len];
            let mut ct = [0u8; 16];
            for _ in 0..49 {
                let c = Twofish::new_from_slice(&key).unwrap();
                let next: [u8; 16] = enc(&c, &ct).try_into().unwrap();
                assert_eq!(dec(&c, &next), ct);
                let mut k2 = ct.to_vec();
                k2.extend_from_slice(&key);
                key = k2[..len].to_vec();
                ct = next;
            }
            assert_eq!(hex::encode(ct), last, "{len}-byte key");
        }
    }

    #[test]
    fn rejects_bad_key_lengths() {
        for len in [0, 8, 15, 17, 31, 33] {
            assert!(Twofish::new_from_slice(&vec![0; len]).is_err(), "{len}");
        }
    }

    /// Same output as the RustCrypto crate for pseudo-random keys and blocks, every length.
    #[test]
    fn matches_rustcrypto() {
        let mut x = 0x1234_5678_9abc_def0u64;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        };
        for len in [16, 24, 32] {
            for _ in 0..20 {
                let key: Vec<u8> = (0..len).map(|_| next()).collect();
                let ours = Twofish::new_from_slice(&key).unwrap();
                let theirs = ::twofish::Twofish::new_from_slice(&key).unwrap();
                for _ in 0..8 {
                    let pt: Vec<u8> = (0..16).map(|_| next()).collect();
                    let mut b = Block::<::twofish::Twofish>::clone_from_slice(&pt);
                    theirs.encrypt_block(&mut b);
                    assert_eq!(enc(&ours, &pt), b.to_vec());
                    assert_eq!(dec(&ours, &b), pt);
                }
            }
        }
    }
}
