//! tether's authenticated packet mode: **not kcp-go-compatible**, for tether-to-tether links.
//! This module holds the primitives (key derivation, sealing, the replay window); the
//! handshake that uses them, and why it defeats reflection and replay, is in
//! [`super::handshake`].
//!
//! kcp-go's CFB ciphers authenticate nothing (a CRC32 under a malleable stream cipher, and
//! the nonce is not even covered). This mode seals every datagram with an AEAD. Two shapes:
//!
//! ```text
//! hello: type u8 (0xC1 client, 0xC2 server) · nonce[12] random
//!        · sealed( conv u32 LE · client random[16] · server random[16] ) · tag[16]
//!        key: the master key of the sender's direction, AD: the type byte
//! data:  type u8 (0xD0) · counter u64 LE
//!        · sealed( FEC header? · KCP … ) · tag[16]
//!        key: the session key of the sender's direction, nonce: 0⁴ · counter LE,
//!        AD: type byte · counter
//! ```
//!
//! Every key is derived with HKDF-SHA256 from the 32-byte `--key` material and a label that
//! names its direction (client→server or server→client), so nothing one side seals opens
//! on the same side. Session keys also bind both hello randoms and the conv. A data counter is
//! the AEAD nonce under a key used by one session and one direction only, so it never
//! repeats; a sender that reaches `u64::MAX` stops ([`AeadError::CounterExhausted`]).
#![deny(clippy::indexing_slicing, clippy::unwrap_used, clippy::expect_used)]
use aes_gcm::aead::AeadInPlace;
use aes_gcm::{Aes128Gcm, KeyInit, Nonce};
use chacha20poly1305::ChaCha20Poly1305;
use hkdf::Hkdf;
use rand_core::RngCore;
use sha2::Sha256;

use crate::wire::Reader;

/// AEAD nonce bytes (random in hellos; derived from the counter in data datagrams).
pub const AEAD_NONCE: usize = 12;
/// Datagram type byte at the front of every datagram.
pub const AEAD_TYPE: usize = 1;
/// Data counter bytes, in clear after the type byte (authenticated as the nonce).
pub const AEAD_COUNTER: usize = 8;
/// Header bytes of a data datagram before the FEC/KCP payload.
pub const AEAD_HEADER: usize = AEAD_TYPE + AEAD_COUNTER;
/// Authentication tag bytes at the end of every datagram.
pub const AEAD_TAG: usize = 16;
/// Counters older than the highest seen by this many are rejected as replays.
pub const REPLAY_WINDOW: u64 = 1024;
/// Bytes of each hello random.
pub const HELLO_RANDOM: usize = 16;
/// Sealed body of a hello: conv, client random, server random.
const HELLO_BODY: usize = 4 + 2 * HELLO_RANDOM;
/// Wire size of both hellos (equal: a server never answers with more than it received).
pub const HELLO_LEN: usize = AEAD_TYPE + AEAD_NONCE + HELLO_BODY + AEAD_TAG;

/// Type byte of a client hello.
pub const TYPE_CLIENT_HELLO: u8 = 0xC1;
/// Type byte of a server hello.
pub const TYPE_SERVER_HELLO: u8 = 0xC2;
/// Type byte of a data datagram.
pub const TYPE_DATA: u8 = 0xD0;

/// HKDF salt of the master (hello) keys: names the protocol version.
const MASTER_SALT: &[u8] = b"tether aead v2";

/// The AEAD algorithms of the authenticated mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AeadKind {
    /// AES-128-GCM, key = the first 16 bytes of each derived key.
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

/// Why a sealed datagram was rejected, or could not be sealed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AeadError {
    /// Shorter than its header + tag.
    #[error("datagram of {0} bytes is too short for the authenticated mode")]
    TooShort(usize),
    /// The tag did not verify: tampered, reflected, from an old session, or a different key
    /// or mode.
    #[error("authentication failed: the datagram was tampered with, replayed from another session, or the peer uses a different --key or --crypt")]
    BadTag,
    /// The counter was already seen, or is too old for the window.
    #[error("replayed datagram (counter {0}) rejected")]
    Replay(u64),
    /// An unknown type byte, or a datagram this side does not expect in its role/state.
    #[error("unexpected authenticated-mode datagram of type {0:#04x} (is the peer a tether of the same version?)")]
    Unexpected(u8),
    /// This direction's counter reached `u64::MAX`: the session must end (open a new one).
    #[error("the session's datagram counter is exhausted; reconnect to continue")]
    CounterExhausted,
}

enum Cipher {
    Gcm(Box<Aes128Gcm>),
    ChaCha(Box<ChaCha20Poly1305>),
}

/// One AEAD key of one direction.
pub struct DirKey {
    cipher: Cipher,
}

impl std::fmt::Debug for DirKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DirKey").finish_non_exhaustive()
    }
}

/// HKDF-SHA256 of the `--key` material with `salt` and `info`.
#[expect(
    clippy::expect_used,
    reason = "key setup, never sees received bytes: HKDF-SHA256 yields up to 8160 bytes, 32 are asked"
)]
fn derive(pass: &[u8; 32], salt: &[u8], info: &[&[u8]]) -> [u8; 32] {
    let hk = Hkdf::<Sha256>::new(Some(salt), pass);
    let mut out = [0u8; 32];
    hk.expand_multi_info(info, &mut out)
        .expect("32 bytes is a valid HKDF-SHA256 length");
    out
}

impl DirKey {
    fn new(kind: AeadKind, key: &[u8; 32]) -> Self {
        let cipher = match kind {
            AeadKind::Aes128Gcm => {
                // AES-128-GCM keys with the first 16 bytes (see AeadKind::Aes128Gcm).
                let mut k16 = [0u8; 16];
                k16.iter_mut().zip(key).for_each(|(d, s)| *d = *s);
                Cipher::Gcm(Box::new(Aes128Gcm::new(&k16.into())))
            }
            AeadKind::ChaCha20Poly1305 => {
                Cipher::ChaCha(Box::new(ChaCha20Poly1305::new(key.into())))
            }
        };
        DirKey { cipher }
    }

    #[expect(
        clippy::expect_used,
        reason = "send path, never sees received bytes: a datagram is far below the AEADs' 64 GiB limit"
    )]
    fn seal(&self, nonce: &[u8; AEAD_NONCE], ad: &[u8], body: &mut [u8]) -> [u8; AEAD_TAG] {
        let n = Nonce::from_slice(nonce);
        let tag = match &self.cipher {
            Cipher::Gcm(c) => c.encrypt_in_place_detached(n, ad, body),
            Cipher::ChaCha(c) => c.encrypt_in_place_detached(n, ad, body),
        }
        .expect("payload within AEAD limits");
        tag.into()
    }

    fn open(
        &self,
        nonce: &[u8; AEAD_NONCE],
        ad: &[u8],
        body: &mut [u8],
        tag: &[u8; AEAD_TAG],
    ) -> Result<(), AeadError> {
        let n = nonce.into();
        let t = tag.into();
        match &self.cipher {
            Cipher::Gcm(c) => c.decrypt_in_place_detached(n, ad, body, t),
            Cipher::ChaCha(c) => c.decrypt_in_place_detached(n, ad, body, t),
        }
        .map_err(|_| AeadError::BadTag)
    }
}

/// The long-lived hello keys, one per direction, derived from the `--key` material.
#[derive(Debug)]
pub struct MasterKeys {
    kind: AeadKind,
    c2s: DirKey,
    s2c: DirKey,
}

/// What a hello carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hello {
    /// The conversation the client opens.
    pub conv: u32,
    /// The client's fresh random.
    pub client_random: [u8; HELLO_RANDOM],
    /// The server's fresh random (zero in a client hello).
    pub server_random: [u8; HELLO_RANDOM],
}

impl MasterKeys {
    /// The hello keys of `kind` for the 32-byte `--key` material.
    pub fn new(kind: AeadKind, pass: &[u8; 32]) -> Self {
        MasterKeys {
            kind,
            c2s: DirKey::new(kind, &derive(pass, MASTER_SALT, &[b"hello c2s"])),
            s2c: DirKey::new(kind, &derive(pass, MASTER_SALT, &[b"hello s2c"])),
        }
    }

    /// The algorithm.
    pub fn kind(&self) -> AeadKind {
        self.kind
    }

    fn hello_key(&self, ty: u8) -> Option<&DirKey> {
        match ty {
            TYPE_CLIENT_HELLO => Some(&self.c2s),
            TYPE_SERVER_HELLO => Some(&self.s2c),
            _ => None,
        }
    }

    /// Seals a hello of type `ty` ([`TYPE_CLIENT_HELLO`] or [`TYPE_SERVER_HELLO`]) into `out`
    /// (cleared first): [`HELLO_LEN`] bytes. Any other `ty` leaves `out` empty.
    pub fn seal_hello(&self, ty: u8, h: &Hello, out: &mut Vec<u8>, rng: &mut dyn RngCore) {
        out.clear();
        let Some(key) = self.hello_key(ty) else {
            debug_assert!(false, "seal_hello with type {ty:#04x}");
            return;
        };
        let mut nonce = [0u8; AEAD_NONCE];
        rng.fill_bytes(&mut nonce);
        let mut body = [0u8; HELLO_BODY];
        let fields = h.conv.to_le_bytes().into_iter();
        let fields = fields.chain(h.client_random).chain(h.server_random);
        body.iter_mut().zip(fields).for_each(|(d, s)| *d = s);
        let tag = key.seal(&nonce, &[ty], &mut body);
        out.push(ty);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&body);
        out.extend_from_slice(&tag);
    }

    /// Opens a hello (any type) without changing `pkt`; `Ok(None)` if it is not a hello.
    pub fn open_hello(&self, pkt: &[u8]) -> Result<Option<(u8, Hello)>, AeadError> {
        let Some(&ty) = pkt.first() else {
            return Err(AeadError::TooShort(0));
        };
        let Some(key) = self.hello_key(ty) else {
            return Ok(None);
        };
        if pkt.len() != HELLO_LEN {
            return Err(AeadError::TooShort(pkt.len()));
        }
        let short = |_| AeadError::TooShort(pkt.len());
        let mut r = Reader::new(pkt);
        r.u8().map_err(short)?;
        let nonce = r.array::<AEAD_NONCE>().map_err(short)?;
        let mut body = r.array::<HELLO_BODY>().map_err(short)?;
        let tag = r.array::<AEAD_TAG>().map_err(short)?;
        key.open(&nonce, &[ty], &mut body, &tag)?;
        let mut r = Reader::new(&body);
        let h = Hello {
            conv: r.u32_le().map_err(short)?,
            client_random: r.array().map_err(short)?,
            server_random: r.array().map_err(short)?,
        };
        Ok(Some((ty, h)))
    }
}

/// Which side of a session this is: the direction labels of its keys depend on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Sends the client hello (kcp-go `Dial`).
    Client,
    /// Answers it (a listener's session).
    Server,
}

/// The two data keys of one session, per direction, with this side's send counter.
pub struct SessionKeys {
    tx: DirKey,
    rx: DirKey,
    send_counter: u64,
}

impl std::fmt::Debug for SessionKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionKeys")
            .field("send_counter", &self.send_counter)
            .finish_non_exhaustive()
    }
}

impl SessionKeys {
    /// Derives the data keys of the session `h` (both randoms set) for `role`.
    pub fn derive(kind: AeadKind, pass: &[u8; 32], h: &Hello, role: Role) -> Self {
        let salt = [h.client_random, h.server_random].concat();
        let conv = h.conv.to_le_bytes();
        let c2s = DirKey::new(kind, &derive(pass, &salt, &[b"data c2s", &conv]));
        let s2c = DirKey::new(kind, &derive(pass, &salt, &[b"data s2c", &conv]));
        let (tx, rx) = match role {
            Role::Client => (c2s, s2c),
            Role::Server => (s2c, c2s),
        };
        SessionKeys {
            tx,
            rx,
            send_counter: 0,
        }
    }

    /// The next counter this side will send.
    pub fn send_counter(&self) -> u64 {
        self.send_counter
    }

    /// Test hook: jumps the send counter (counter exhaustion tests).
    #[cfg(test)]
    pub(crate) fn set_send_counter(&mut self, c: u64) {
        self.send_counter = c;
    }

    /// Seals a data datagram in place: `pkt` holds [`AEAD_HEADER`] bytes of header space,
    /// then the payload; the tag is appended. Fails once the counter is exhausted (the last
    /// counter, `u64::MAX`, is never used, so the check cannot overflow), or when `pkt` is
    /// shorter than the header space.
    pub fn seal(&mut self, pkt: &mut Vec<u8>) -> Result<(), AeadError> {
        if self.send_counter == u64::MAX {
            return Err(AeadError::CounterExhausted);
        }
        let len = pkt.len();
        let Some((head, body)) = pkt.split_first_chunk_mut::<AEAD_HEADER>() else {
            debug_assert!(false, "caller reserves the AEAD header");
            return Err(AeadError::TooShort(len));
        };
        let ctr = self.send_counter;
        self.send_counter += 1;
        let [c0, c1, c2, c3, c4, c5, c6, c7] = ctr.to_le_bytes();
        *head = [TYPE_DATA, c0, c1, c2, c3, c4, c5, c6, c7];
        let tag = self.tx.seal(&data_nonce(ctr), head, body);
        pkt.extend_from_slice(&tag);
        Ok(())
    }

    /// Opens a data datagram in place; returns its counter and the payload range. The caller
    /// checks the counter against its [`ReplayWindow`].
    pub fn open(&self, pkt: &mut [u8]) -> Result<(u64, std::ops::Range<usize>), AeadError> {
        let len = pkt.len();
        let (head, rest) = pkt
            .split_first_chunk_mut::<AEAD_HEADER>()
            .ok_or(AeadError::TooShort(len))?;
        let (body, tag) = rest
            .split_last_chunk_mut::<AEAD_TAG>()
            .ok_or(AeadError::TooShort(len))?;
        let [ty, counter @ ..] = *head;
        if ty != TYPE_DATA {
            return Err(AeadError::Unexpected(ty));
        }
        let ctr = u64::from_le_bytes(counter);
        let payload = AEAD_HEADER..AEAD_HEADER + body.len();
        self.rx.open(&data_nonce(ctr), head, body, tag)?;
        Ok((ctr, payload))
    }
}

fn data_nonce(ctr: u64) -> [u8; AEAD_NONCE] {
    let [c0, c1, c2, c3, c4, c5, c6, c7] = ctr.to_le_bytes();
    [0, 0, 0, 0, c0, c1, c2, c3, c4, c5, c6, c7]
}

/// Sliding window over the highest counter seen (RFC 4303-style anti-replay). Accepts a
/// counter above the highest, or one at most [`REPLAY_WINDOW`] − 1 below it not yet seen.
#[derive(Debug, Default, Clone)]
pub struct ReplayWindow {
    /// Highest counter accepted (`None`: none yet). Kept as the value itself, not + 1, so
    /// `u64::MAX` cannot overflow.
    highest: Option<u64>,
    bits: [u64; (REPLAY_WINDOW / 64) as usize],
}

impl ReplayWindow {
    /// Records `counter`; false if it was already seen or is older than the window.
    pub fn accept(&mut self, counter: u64) -> bool {
        match self.highest {
            Some(h) if counter <= h => {
                if h - counter >= REPLAY_WINDOW || self.get(counter) {
                    return false;
                }
            }
            Some(h) => self.slide(h, counter),
            None => self.bits = Default::default(),
        }
        if self.highest.is_none_or(|h| counter > h) {
            self.highest = Some(counter);
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
        self.bits.get(w).is_some_and(|bits| bits & b != 0)
    }

    fn set(&mut self, counter: u64) {
        let (w, b) = Self::slot(counter);
        if let Some(bits) = self.bits.get_mut(w) {
            *bits |= b;
        }
    }

    /// Clears the slots of the counters `(old, new]` that reuse the slots of counters falling
    /// out of the window.
    fn slide(&mut self, old: u64, new: u64) {
        if new - old >= REPLAY_WINDOW {
            self.bits = Default::default();
            return;
        }
        for c in old + 1..=new {
            let (w, b) = Self::slot(c);
            if let Some(bits) = self.bits.get_mut(w) {
                *bits &= !b;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::seeded;
    use proptest::prelude::*;
    use std::collections::HashSet;

    fn hello(conv: u32) -> Hello {
        Hello {
            conv,
            client_random: [1; HELLO_RANDOM],
            server_random: [2; HELLO_RANDOM],
        }
    }

    #[test]
    fn data_seal_open_tamper_replay_and_direction() {
        for kind in [AeadKind::Aes128Gcm, AeadKind::ChaCha20Poly1305] {
            let key = [7u8; 32];
            let h = hello(9);
            let mut client = SessionKeys::derive(kind, &key, &h, Role::Client);
            let server = SessionKeys::derive(kind, &key, &h, Role::Server);
            let mut window = ReplayWindow::default();
            let mut open = |p: &mut [u8]| -> Result<Vec<u8>, AeadError> {
                let (ctr, r) = server.open(p)?;
                if !window.accept(ctr) {
                    return Err(AeadError::Replay(ctr));
                }
                Ok(p[r].to_vec())
            };
            let mut pkt = vec![0u8; AEAD_HEADER];
            pkt.extend_from_slice(b"hello kcp");
            client.seal(&mut pkt).unwrap();
            assert_eq!(pkt.len(), AEAD_HEADER + 9 + AEAD_TAG);
            let replay = pkt.clone();
            assert_eq!(open(&mut pkt).unwrap(), b"hello kcp");
            let mut again = replay.clone();
            assert_eq!(open(&mut again), Err(AeadError::Replay(0)));
            for i in 1..replay.len() {
                let mut bad = replay.clone();
                bad[i] ^= 0x40;
                assert_eq!(
                    open(&mut bad),
                    Err(AeadError::BadTag),
                    "flip at {i} accepted"
                );
            }
            // The client's own keys do not open what it sent (no reflection).
            let mut own = replay.clone();
            assert_eq!(client.open(&mut own).map(|_| ()), Err(AeadError::BadTag));
            // Another session (other randoms) does not open it (no cross-session replay).
            let mut h2 = h;
            h2.server_random[0] ^= 1;
            let other = SessionKeys::derive(kind, &key, &h2, Role::Server);
            let mut p2 = replay.clone();
            assert_eq!(other.open(&mut p2).map(|_| ()), Err(AeadError::BadTag));
        }
    }

    #[test]
    fn hellos_are_direction_bound() {
        let m = MasterKeys::new(AeadKind::ChaCha20Poly1305, &[5; 32]);
        let mut rng = seeded(1);
        let mut out = Vec::new();
        m.seal_hello(TYPE_CLIENT_HELLO, &hello(3), &mut out, &mut rng);
        assert_eq!(out.len(), HELLO_LEN);
        assert_eq!(
            m.open_hello(&out).unwrap(),
            Some((TYPE_CLIENT_HELLO, hello(3)))
        );
        // The same bytes relabelled as the other direction do not open.
        out[0] = TYPE_SERVER_HELLO;
        assert_eq!(m.open_hello(&out), Err(AeadError::BadTag));
        let other = MasterKeys::new(AeadKind::ChaCha20Poly1305, &[6; 32]);
        out[0] = TYPE_CLIENT_HELLO;
        assert_eq!(other.open_hello(&out), Err(AeadError::BadTag));
    }

    #[test]
    fn counter_exhaustion_is_an_error_not_an_overflow() {
        let h = hello(1);
        let mut k = SessionKeys::derive(AeadKind::Aes128Gcm, &[1; 32], &h, Role::Client);
        k.set_send_counter(u64::MAX - 1);
        let mut pkt = vec![0u8; AEAD_HEADER + 4];
        k.seal(&mut pkt).unwrap();
        let mut pkt = vec![0u8; AEAD_HEADER + 4];
        assert_eq!(k.seal(&mut pkt), Err(AeadError::CounterExhausted));
        assert_eq!(k.seal(&mut pkt), Err(AeadError::CounterExhausted));
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
        assert!(w.accept(u64::MAX));
        assert!(!w.accept(u64::MAX));
        assert!(w.accept(u64::MAX - 1));
        assert!(!w.accept(2000));
    }

    /// Counters that exercise the window edges: small, near a jump, huge, `u64::MAX`.
    fn counter() -> impl Strategy<Value = u64> {
        prop_oneof![
            0u64..3000,
            Just(u64::MAX),
            (u64::MAX - 3000)..=u64::MAX,
            any::<u64>(),
        ]
    }

    proptest! {
        /// Against a model (every accepted counter in a set + the window rule): a duplicate is
        /// never accepted, and every fresh counter within the window always is.
        #[test]
        fn replay_window_matches_model(seq in proptest::collection::vec(counter(), 1..400)) {
            let mut w = ReplayWindow::default();
            let mut seen: HashSet<u64> = HashSet::new();
            let mut highest: Option<u64> = None;
            for c in seq {
                let expect = !seen.contains(&c)
                    && highest.is_none_or(|h| c > h || h - c < REPLAY_WINDOW);
                prop_assert_eq!(w.accept(c), expect, "counter {} after highest {:?}", c, highest);
                if expect {
                    seen.insert(c);
                    highest = Some(highest.map_or(c, |h| h.max(c)));
                }
            }
        }

        /// Interleaved near-sequential counters (the common case) with reordering.
        #[test]
        fn replay_window_reordered(deltas in proptest::collection::vec(-1100i64..1100, 1..400)) {
            let mut w = ReplayWindow::default();
            let mut seen: HashSet<u64> = HashSet::new();
            let mut highest: Option<u64> = None;
            let mut base: u64 = 5000;
            for d in deltas {
                base = base.saturating_add_signed(d / 4);
                let c = base.saturating_add_signed(d);
                let expect = !seen.contains(&c)
                    && highest.is_none_or(|h| c > h || h - c < REPLAY_WINDOW);
                prop_assert_eq!(w.accept(c), expect);
                if expect {
                    seen.insert(c);
                    highest = Some(highest.map_or(c, |h| h.max(c)));
                }
            }
        }
    }
}
