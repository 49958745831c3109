//! tether's authenticated packet mode: **not kcp-go-compatible**, for tether-to-tether links.
//!
//! kcp-go's CFB ciphers authenticate nothing (a CRC32 under a malleable stream cipher, and
//! the nonce is not even covered). This mode seals each datagram with an AEAD and rejects
//! replays:
//!
//! ```text
//! nonce[12] (random per datagram) · sealed( counter u64 LE · FEC header? · KCP … ) · tag[16]
//! ```
//!
//! The 8-byte counter is the sender's datagram number; the receiver keeps a sliding replay
//! window of [`REPLAY_WINDOW`] counters. Random 96-bit nonces are safe for far more datagrams
//! than a session sends under one key, without coordinating counters between the two
//! directions (which share the key, as kcptun's configuration does).
use aes_gcm::aead::AeadInPlace;
use aes_gcm::{Aes128Gcm, KeyInit, Nonce};
use chacha20poly1305::ChaCha20Poly1305;
use rand_core::RngCore;

/// AEAD nonce bytes at the front of every datagram.
pub const AEAD_NONCE: usize = 12;
/// Replay counter bytes, sealed, right after the nonce.
pub const AEAD_COUNTER: usize = 8;
/// Header bytes before the FEC/KCP payload.
pub const AEAD_HEADER: usize = AEAD_NONCE + AEAD_COUNTER;
/// Authentication tag bytes at the end of every datagram.
pub const AEAD_TAG: usize = 16;
/// Counters older than the highest seen by this many are rejected as replays.
pub const REPLAY_WINDOW: u64 = 1024;

/// The AEAD algorithms of the authenticated mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AeadKind {
    /// AES-128-GCM, key = the first 16 bytes of the derived key.
    Aes128Gcm,
    /// ChaCha20-Poly1305, key = the 32-byte derived key.
    ChaCha20Poly1305,
}

impl AeadKind {
    /// The `--crypt` name (`aes-128-gcm`, `chacha20-poly1305`).
    pub fn name(self) -> &'static str {
        match self {
            AeadKind::Aes128Gcm => "aes-128-gcm",
            AeadKind::ChaCha20Poly1305 => "chacha20-poly1305",
        }
    }
    /// Parses a `--crypt` name.
    pub fn from_name(s: &str) -> Option<AeadKind> {
        match s {
            "aes-128-gcm" => Some(AeadKind::Aes128Gcm),
            "chacha20-poly1305" => Some(AeadKind::ChaCha20Poly1305),
            _ => None,
        }
    }
}

/// Why a sealed datagram was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AeadError {
    /// Shorter than nonce + counter + tag.
    #[error("datagram of {0} bytes is too short for the authenticated mode")]
    TooShort(usize),
    /// The tag did not verify: tampered, or a different key or mode.
    #[error("authentication failed: the datagram was tampered with, or the peer uses a different --key or --crypt")]
    BadTag,
    /// The counter was already seen, or is too old for the window.
    #[error("replayed datagram (counter {0}) rejected")]
    Replay(u64),
}

enum Cipher {
    Gcm(Box<Aes128Gcm>),
    ChaCha(Box<ChaCha20Poly1305>),
}

/// One AEAD context plus this side's send counter.
pub struct AeadCrypt {
    kind: AeadKind,
    cipher: Cipher,
    send_counter: u64,
}

impl std::fmt::Debug for AeadCrypt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AeadCrypt")
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

impl AeadCrypt {
    /// A context for `kind` keyed from the 32-byte derived key (as kcptun derives it).
    pub fn new(kind: AeadKind, pass: &[u8; 32]) -> Self {
        let cipher = match kind {
            AeadKind::Aes128Gcm => Cipher::Gcm(Box::new(
                Aes128Gcm::new_from_slice(&pass[..16]).expect("16-byte key"),
            )),
            AeadKind::ChaCha20Poly1305 => Cipher::ChaCha(Box::new(
                ChaCha20Poly1305::new_from_slice(pass).expect("32-byte key"),
            )),
        };
        AeadCrypt {
            kind,
            cipher,
            send_counter: 0,
        }
    }

    /// The algorithm.
    pub fn kind(&self) -> AeadKind {
        self.kind
    }

    /// Seals `pkt` in place: `pkt` holds [`AEAD_HEADER`] bytes of header space, then the
    /// payload; the tag is appended.
    pub fn seal(&mut self, pkt: &mut Vec<u8>, rng: &mut dyn RngCore) {
        debug_assert!(pkt.len() >= AEAD_HEADER, "caller reserves the AEAD header");
        let mut nonce = [0u8; AEAD_NONCE];
        rng.fill_bytes(&mut nonce);
        pkt[..AEAD_NONCE].copy_from_slice(&nonce);
        pkt[AEAD_NONCE..AEAD_HEADER].copy_from_slice(&self.send_counter.to_le_bytes());
        self.send_counter += 1;
        let n = Nonce::from_slice(&nonce);
        let body = &mut pkt[AEAD_NONCE..];
        let tag = match &self.cipher {
            Cipher::Gcm(c) => c.encrypt_in_place_detached(n, &[], body),
            Cipher::ChaCha(c) => c.encrypt_in_place_detached(n, &[], body),
        }
        .expect("payload within AEAD limits");
        pkt.extend_from_slice(&tag);
    }

    /// Opens a sealed datagram in place; returns its replay counter and the range of the
    /// payload (after the header, before the tag). The caller checks the counter against its
    /// [`ReplayWindow`] (one per session; a listener opens datagrams before it knows which
    /// session they belong to).
    pub fn open(&self, pkt: &mut [u8]) -> Result<(u64, std::ops::Range<usize>), AeadError> {
        let len = pkt.len();
        if len < AEAD_HEADER + AEAD_TAG {
            return Err(AeadError::TooShort(len));
        }
        let (head, tag) = pkt.split_at_mut(len - AEAD_TAG);
        let (nonce, body) = head.split_at_mut(AEAD_NONCE);
        let n = Nonce::from_slice(nonce);
        let t = aes_gcm::Tag::from_slice(tag);
        let ok = match &self.cipher {
            Cipher::Gcm(c) => c.decrypt_in_place_detached(n, &[], body, t),
            Cipher::ChaCha(c) => c.decrypt_in_place_detached(n, &[], body, t),
        };
        ok.map_err(|_| AeadError::BadTag)?;
        let mut ctr = [0u8; AEAD_COUNTER];
        ctr.copy_from_slice(&body[..AEAD_COUNTER]);
        Ok((u64::from_le_bytes(ctr), AEAD_HEADER..len - AEAD_TAG))
    }
}

/// Sliding window over the highest counter seen (RFC 4303-style anti-replay).
#[derive(Debug, Default, Clone)]
pub struct ReplayWindow {
    /// Highest counter accepted + 1 (0 = none yet).
    top: u64,
    bits: [u64; (REPLAY_WINDOW / 64) as usize],
}

impl ReplayWindow {
    /// Records `counter`; false if it was already seen or is older than the window.
    pub fn accept(&mut self, counter: u64) -> bool {
        if counter >= self.top {
            let shift = counter + 1 - self.top;
            self.slide(shift);
            self.top = counter + 1;
            self.set(counter);
            return true;
        }
        if self.top - counter > REPLAY_WINDOW {
            return false;
        }
        if self.get(counter) {
            return false;
        }
        self.set(counter);
        true
    }

    fn slot(counter: u64) -> (usize, u64) {
        let i = counter % REPLAY_WINDOW;
        ((i / 64) as usize, 1u64 << (i % 64))
    }

    fn get(&self, counter: u64) -> bool {
        let (w, b) = Self::slot(counter);
        self.bits[w] & b != 0
    }

    fn set(&mut self, counter: u64) {
        let (w, b) = Self::slot(counter);
        self.bits[w] |= b;
    }

    /// Clears the slots of the counters that fall out of the window as `top` advances.
    fn slide(&mut self, shift: u64) {
        if shift >= REPLAY_WINDOW {
            self.bits = Default::default();
            return;
        }
        for c in self.top..self.top + shift {
            let (w, b) = Self::slot(c);
            self.bits[w] &= !b;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::seeded;

    #[test]
    fn seal_open_tamper_replay() {
        for kind in [AeadKind::Aes128Gcm, AeadKind::ChaCha20Poly1305] {
            let key = [7u8; 32];
            let mut tx = AeadCrypt::new(kind, &key);
            let rx = AeadCrypt::new(kind, &key);
            let mut window = ReplayWindow::default();
            let mut open = |p: &mut [u8]| -> Result<Vec<u8>, AeadError> {
                let (ctr, r) = rx.open(p)?;
                if !window.accept(ctr) {
                    return Err(AeadError::Replay(ctr));
                }
                Ok(p[r].to_vec())
            };
            let mut rng = seeded(1);
            let mut pkt = vec![0u8; AEAD_HEADER];
            pkt.extend_from_slice(b"hello kcp");
            tx.seal(&mut pkt, &mut rng);
            assert_eq!(pkt.len(), AEAD_HEADER + 9 + AEAD_TAG);
            let replay = pkt.clone();
            assert_eq!(open(&mut pkt).unwrap(), b"hello kcp");
            let mut again = replay.clone();
            assert_eq!(open(&mut again), Err(AeadError::Replay(0)));
            for i in 0..replay.len() {
                let mut bad = replay.clone();
                bad[i] ^= 0x40;
                assert_eq!(
                    open(&mut bad),
                    Err(AeadError::BadTag),
                    "flip at {i} accepted"
                );
            }
            let other = AeadCrypt::new(kind, &[8u8; 32]);
            let mut p2 = replay.clone();
            assert_eq!(other.open(&mut p2).map(|_| ()), Err(AeadError::BadTag));
        }
    }

    #[test]
    fn replay_window_semantics() {
        let mut w = ReplayWindow::default();
        assert!(w.accept(5));
        assert!(w.accept(3));
        assert!(!w.accept(3));
        assert!(w.accept(2000));
        assert!(!w.accept(5), "fell out of the window");
        assert!(w.accept(1999));
        assert!(!w.accept(1999));
        assert!(w.accept(2000 - 1023));
        assert!(!w.accept(2000 - 1025));
    }
}
