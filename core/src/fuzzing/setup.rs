//! The session settings a fuzz input picks with its first byte, built once per process.
//!
//! Measured (release, `Session::new`): the key schedules of the ciphers used here cost under
//! 1 µs, a Reed–Solomon 10/3 session about 80 µs (two codecs), xor's PBKDF2 pad far more (so
//! xor, a plain XOR with a fixed pad, is left to the unit tests, as are the slow software
//! ciphers: encrypting what a script writes dominated the session targets' profile). The old targets' ~530
//! inputs/s came from building twelve sessions per input. Each input now builds only the
//! sessions it uses, for one setting; settings and block-cipher sealers are made once.
use std::sync::OnceLock;

use crate::kcp::KcpConfig;
use crate::session::aead::AeadKind;
use crate::session::crypt::{CipherKind, PacketCrypt, CRYPT_HEADER};
use crate::session::{CryptMode, SessionConfig};

/// The packet protections a selector byte picks from (its low three bits).
pub(crate) const MODES: [CryptMode; 8] = [
    CryptMode::Raw,
    CryptMode::Block(CipherKind::None),
    CryptMode::Block(CipherKind::Aes128),
    CryptMode::Block(CipherKind::Salsa20),
    CryptMode::Block(CipherKind::Tea),
    CryptMode::Block(CipherKind::Aes256),
    CryptMode::Aead(AeadKind::ChaCha20Poly1305),
    CryptMode::Aead(AeadKind::Aes128Gcm),
];

/// FEC shard counts (bits 3–4): off half of the time, and small codes (a 10/3 code costs
/// 80 µs per session to build, 3/2 a few µs; the code paths are the same).
const FEC: [(usize, usize); 4] = [(0, 0), (0, 0), (3, 2), (2, 1)];

/// The shared key of every fuzzed session.
pub(crate) const KEY: [u8; 32] = [3; 32];

/// One selectable setting.
pub(crate) struct Setup {
    /// The session settings.
    pub(crate) cfg: SessionConfig,
    /// A peer's block cipher (`Block` modes), so an input can send well-formed datagrams
    /// whose payload it chooses; `None` in raw and AEAD modes.
    sealer: Option<PacketCrypt>,
}

impl Setup {
    /// Whether forged datagrams are rejected (what a reader may then assume).
    pub(crate) fn authenticated(&self) -> bool {
        matches!(self.cfg.crypt, CryptMode::Aead(_))
    }

    /// `payload` as a peer would put it on the wire (nonce and CRC for block ciphers,
    /// nothing for raw); `None` in AEAD mode, where only a keyed session can seal.
    pub(crate) fn seal(&self, payload: &[u8]) -> Option<Vec<u8>> {
        match (&self.sealer, self.cfg.crypt) {
            (Some(c), _) => {
                let mut d = vec![0u8; CRYPT_HEADER];
                d.extend_from_slice(payload);
                c.seal(&mut d, &mut crate::rng::seeded(payload.len() as u64));
                Some(d)
            }
            (None, CryptMode::Raw) => Some(payload.to_vec()),
            (None, _) => None,
        }
    }
}

/// The setting for selector byte `sel`: bits 0–2 the protection, 3–4 FEC, bit 5 stream
/// mode, bit 6 a small MTU (more fragments), bit 7 fast3 instead of fast.
pub(crate) fn setup(sel: u8) -> &'static Setup {
    static ALL: OnceLock<Vec<Setup>> = OnceLock::new();
    let all = ALL.get_or_init(|| {
        (0..=255u8)
            .map(|sel| {
                let crypt = MODES[usize::from(sel & 7)];
                let (data_shards, parity_shards) = FEC[usize::from((sel >> 3) & 3)];
                let base = if sel & 0x80 != 0 {
                    KcpConfig::fast3()
                } else {
                    KcpConfig::fast()
                };
                // Small windows: a script fills them with a few writes, and a time step
                // retransmits (and encrypts) at most four segments. Every datagram is
                // encrypted, so datagrams per input are what an input costs: windows of 4
                // instead of 8 sent 1.4× fewer and ran 1.5–2× faster on the same corpus;
                // full windows, probes and over-long messages (more fragments than the
                // window) stay reachable at both MTUs.
                let kcp = base
                    .with_windows(4, 4)
                    .with_stream(sel & 0x20 != 0)
                    .with_mtu(if sel & 0x40 != 0 { 300 } else { 1400 });
                let sealer = match crypt {
                    CryptMode::Block(k) => Some(PacketCrypt::new(k, &KEY)),
                    _ => None,
                };
                Setup {
                    cfg: SessionConfig {
                        kcp,
                        crypt,
                        key: KEY,
                        data_shards,
                        parity_shards,
                    },
                    sealer,
                }
            })
            .collect()
    });
    &all[usize::from(sel)]
}
