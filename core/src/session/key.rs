//! kcptun's key derivation (kcptun.md §2): the 32-byte `pass` that every cipher of
//! kcp-go-session.md §3.1 slices its key from.

use sha1::Sha1;

/// kcptun's PBKDF2 salt (kcptun.md §2).
pub const KCPTUN_SALT: &[u8] = b"kcp-go";

/// kcptun's PBKDF2 iteration count (kcptun.md §2).
pub const KCPTUN_ITERATIONS: u32 = 4096;

/// kcptun's default `--key` (sic, kcptun.md §2).
pub const KCPTUN_DEFAULT_KEY: &str = "it's a secrect";

/// Derives kcptun's 32-byte `pass` from a `--key` string:
/// PBKDF2-HMAC-SHA1(key as UTF-8, salt `kcp-go`, 4096 iterations, 32 bytes) (kcptun.md §2).
///
/// This is deliberately slow (4096 HMAC iterations, ≈ 0.7 ms); call it once per
/// configuration. The default key's `pass` is a constant (checked against the derivation by
/// `default_key_vector`), so configurations built from defaults derive nothing.
pub fn kcptun_key(key: &str) -> [u8; 32] {
    if key == KCPTUN_DEFAULT_KEY {
        return DEFAULT_PASS;
    }
    pbkdf2::pbkdf2_hmac_array::<Sha1, 32>(key.as_bytes(), KCPTUN_SALT, KCPTUN_ITERATIONS)
}

/// `kcptun_key(KCPTUN_DEFAULT_KEY)` (kcp-go-session.md §3.6).
const DEFAULT_PASS: [u8; 32] = [
    0x25, 0xd7, 0xd7, 0xbd, 0x51, 0x05, 0x07, 0x42, 0xd8, 0xd7, 0x91, 0xf2, 0xb6, 0x53, 0xc6, 0xc8,
    0xb2, 0x36, 0x6b, 0x7e, 0x25, 0xa1, 0x24, 0xcf, 0x7a, 0x2e, 0x12, 0xea, 0xf4, 0xff, 0xa4, 0x44,
];

#[cfg(test)]
mod tests {
    use super::*;

    // kcp-go-session.md §3.6 / kcptun.md §2; the constant is what the derivation gives.
    #[test]
    fn default_key_vector() {
        let derived = pbkdf2::pbkdf2_hmac_array::<Sha1, 32>(
            KCPTUN_DEFAULT_KEY.as_bytes(),
            KCPTUN_SALT,
            KCPTUN_ITERATIONS,
        );
        assert_eq!(derived, DEFAULT_PASS);
        assert_eq!(
            hex::encode(kcptun_key(KCPTUN_DEFAULT_KEY)),
            "25d7d7bd51050742d8d791f2b653c6c8b2366b7e25a124cf7a2e12eaf4ffa444"
        );
    }

    // kcp-go-session.md §3.6
    #[test]
    fn test_key_vector() {
        assert_eq!(
            hex::encode(kcptun_key("test")),
            "fc0327c66699e5622be3b108e336991375ba429750939d57003dc89d9fed8859"
        );
    }
}
