//! The authenticated mode's per-session handshake: why a reflected or replayed datagram can
//! never reach an application. (Wire shapes and key derivation: [`super::aead`].)
//!
//! ```text
//! client                                              server
//!   ClientHello{conv, client random}  ── master c2s ──▶  picks a fresh server random,
//!                                                        derives the session keys, keeps a
//!                                                        half-open session (bounded by the
//!                                                        listener's backlog, expires after
//!                                                        accept_timeout)
//!   derives the session keys  ◀── master s2c ──  ServerHello{conv, client random, server random}
//!   first data datagram (KCP data, or an empty
//!   confirm when nothing is queued)  ── session c2s ──▶  proof: the client knows the server
//!                                                        random; only now is KCP input fed,
//!                                                        the session announced and allowed
//!                                                        to send data
//! ```
//!
//! - **Directions.** Every key is derived with a direction label (`hello c2s`, `data s2c`,
//!   …), so a datagram sealed by one side never opens on the same side: a reflected datagram
//!   fails authentication.
//! - **Replay of a recorded session.** A recorded ClientHello replayed later makes the server
//!   choose a new server random, hence new session keys: none of the recorded data datagrams
//!   (sealed under the old session's keys) authenticate, and no KCP data is delivered before
//!   a datagram under the new keys arrives, which only the holder of the `--key` who saw the
//!   new ServerHello can produce. Within a session the [`ReplayWindow`] rejects duplicates.
//! - **No amplification.** Both hellos are [`HELLO_LEN`](super::aead::HELLO_LEN) bytes and the server sends one
//!   ServerHello per ClientHello received; it sends nothing else before the proof.
//! - **Loss.** The client retransmits its hello (and then its confirm, until anything under
//!   the session keys arrives from the server) with exponential back-off; the server answers
//!   each copy of the same hello with the same ServerHello.
//! - **Cost.** One extra round trip at session start; KCP writes made meanwhile are held by
//!   KCP's own bounded send queue and flushed once the keys exist.
//! - **Not covered.** Anyone holding the `--key` can open sessions (it is a shared secret,
//!   not an identity); traffic sizes and timing are visible; a spoofer who replays a recorded
//!   hello from a client's address replaces that address's *half-open* session (one per
//!   address), which delays that client's handshake until its next retransmission, but never
//!   touches an established session; the server random is only as good as the RNG injected
//!   into the listener (the runtimes seed a ChaCha20 CSPRNG from the OS).
#![deny(clippy::indexing_slicing, clippy::unwrap_used, clippy::expect_used)]
use std::time::{Duration, Instant};

use rand_core::RngCore;

use super::aead::{
    AeadError, AeadKind, Hello, MasterKeys, ReplayWindow, Role, SessionKeys, HELLO_RANDOM,
    TYPE_CLIENT_HELLO, TYPE_DATA, TYPE_SERVER_HELLO,
};

/// First hello retransmission delay; doubled on each retry up to [`HELLO_RTO_MAX`].
const HELLO_RTO: Duration = Duration::from_millis(300);
/// Largest hello retransmission delay.
const HELLO_RTO_MAX: Duration = Duration::from_secs(4);

/// What an authenticated datagram turned out to be.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Opened {
    /// KCP/FEC payload at this range: feed it to KCP.
    Data(std::ops::Range<usize>),
    /// A handshake datagram, fully handled.
    Control,
}

/// The authenticated mode of one session: its handshake state and keys.
pub(super) struct AeadChannel {
    role: Role,
    pass: [u8; 32],
    master: MasterKeys,
    conv: u32,
    hello: Option<Hello>,
    keys: Option<SessionKeys>,
    replay: ReplayWindow,
    /// Client: any datagram under the session keys arrived. Server: the client proved the
    /// server random (an authenticated data datagram arrived).
    proven: bool,
    /// A control datagram to send at the next pump (hello, server hello or confirm).
    want_send: bool,
    retransmit_at: Option<Instant>,
    rto: Duration,
    exhausted: bool,
}

impl std::fmt::Debug for AeadChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AeadChannel")
            .field("role", &self.role)
            .field("proven", &self.proven)
            .finish_non_exhaustive()
    }
}

impl AeadChannel {
    /// A client channel sends its hello at the first pump; a server waits for one.
    pub(super) fn new(kind: AeadKind, pass: &[u8; 32], conv: u32, role: Role) -> Self {
        AeadChannel {
            role,
            pass: *pass,
            master: MasterKeys::new(kind, pass),
            conv,
            hello: None,
            keys: None,
            replay: ReplayWindow::default(),
            proven: false,
            want_send: role == Role::Client,
            retransmit_at: None,
            rto: HELLO_RTO,
            exhausted: false,
        }
    }

    /// Whether KCP output may go out: keys exist and, on a server, the client proved them.
    pub(super) fn can_send_data(&self) -> bool {
        self.keys.is_some() && (self.role == Role::Client || self.proven) && !self.exhausted
    }

    /// Whether the peer proved knowledge of this session's keys.
    pub(super) fn is_proven(&self) -> bool {
        self.proven
    }

    /// Whether this side's counter ran out (the session must close).
    pub(super) fn is_exhausted(&self) -> bool {
        self.exhausted
    }

    /// Test hook: jumps the send counter.
    #[cfg(test)]
    pub(super) fn set_send_counter(&mut self, c: u64) {
        if let Some(k) = &mut self.keys {
            k.set_send_counter(c);
        }
    }

    /// The handshake retransmission deadline, if one is armed.
    pub(super) fn poll_timeout(&self) -> Option<Instant> {
        self.retransmit_at
    }

    /// Whether a control datagram waits for the next pump.
    pub(super) fn wants_send(&self) -> bool {
        self.want_send
    }

    /// Fires the retransmission timer.
    pub(super) fn handle_timeout(&mut self, now: Instant) {
        if matches!(self.retransmit_at, Some(t) if now >= t) {
            self.retransmit_at = None;
            self.want_send = true;
        }
    }

    /// The next control datagram (into `out`), if one is due.
    pub(super) fn poll_control(
        &mut self,
        now: Instant,
        out: &mut Vec<u8>,
        rng: &mut dyn RngCore,
    ) -> bool {
        if !self.want_send {
            return false;
        }
        self.want_send = false;
        out.clear();
        match (self.role, &mut self.keys) {
            (Role::Client, None) => {
                let h = *self.hello.get_or_insert_with(|| {
                    let mut client_random = [0u8; HELLO_RANDOM];
                    rng.fill_bytes(&mut client_random);
                    Hello {
                        conv: self.conv,
                        client_random,
                        server_random: [0; HELLO_RANDOM],
                    }
                });
                self.master.seal_hello(TYPE_CLIENT_HELLO, &h, out, rng);
                self.arm(now);
            }
            (Role::Client, Some(keys)) => {
                // The confirm: an empty data datagram proving the session keys.
                out.resize(super::aead::AEAD_HEADER, 0);
                if keys.seal(out).is_err() {
                    self.exhausted = true;
                    return false;
                }
                if !self.proven {
                    self.arm(now);
                }
            }
            (Role::Server, Some(keys)) if self.proven => {
                // Answer to a confirm: tells the client its proof arrived.
                out.resize(super::aead::AEAD_HEADER, 0);
                if keys.seal(out).is_err() {
                    self.exhausted = true;
                    return false;
                }
            }
            (Role::Server, _) => {
                let Some(h) = self.hello else { return false };
                self.master.seal_hello(TYPE_SERVER_HELLO, &h, out, rng);
            }
        }
        true
    }

    fn arm(&mut self, now: Instant) {
        self.retransmit_at = Some(now + self.rto);
        self.rto = (self.rto * 2).min(HELLO_RTO_MAX);
    }

    /// Seals KCP output in place (header space reserved); fails once the counter is spent.
    pub(super) fn seal_data(&mut self, pkt: &mut Vec<u8>) -> Result<(), AeadError> {
        let Some(keys) = &mut self.keys else {
            return Err(AeadError::Unexpected(TYPE_DATA));
        };
        keys.seal(pkt).inspect_err(|_| self.exhausted = true)
    }

    /// Authenticates and handles one datagram in place.
    pub(super) fn open(
        &mut self,
        pkt: &mut [u8],
        rng: &mut dyn RngCore,
    ) -> Result<Opened, AeadError> {
        let Some(&ty) = pkt.first() else {
            return Err(AeadError::TooShort(0));
        };
        if ty != TYPE_DATA {
            return self.open_hello(ty, pkt, rng);
        }
        let keys = self.keys.as_ref().ok_or(AeadError::Unexpected(ty))?;
        let (ctr, range) = keys.open(pkt)?;
        if !self.replay.accept(ctr) {
            return Err(AeadError::Replay(ctr));
        }
        self.proven = true;
        if self.role == Role::Client {
            self.retransmit_at = None;
        }
        if range.is_empty() {
            // A confirm (client) or its answer (server): the server answers each confirm,
            // one for one, so a client whose first proof was its confirm learns it arrived.
            if self.role == Role::Server {
                self.want_send = true;
            }
            return Ok(Opened::Control);
        }
        Ok(Opened::Data(range))
    }

    /// Handles a datagram whose type byte `first` is not [`TYPE_DATA`].
    fn open_hello(
        &mut self,
        first: u8,
        pkt: &[u8],
        rng: &mut dyn RngCore,
    ) -> Result<Opened, AeadError> {
        let (ty, h) = self
            .master
            .open_hello(pkt)?
            .ok_or(AeadError::Unexpected(first))?;
        match (self.role, ty) {
            (Role::Server, TYPE_CLIENT_HELLO) if h.conv == self.conv => match self.hello {
                None => {
                    let mut server_random = [0u8; HELLO_RANDOM];
                    rng.fill_bytes(&mut server_random);
                    let h = Hello { server_random, ..h };
                    self.hello = Some(h);
                    self.keys = Some(SessionKeys::derive(
                        self.master.kind(),
                        &self.pass,
                        &h,
                        Role::Server,
                    ));
                    self.want_send = true;
                    Ok(Opened::Control)
                }
                // A retransmitted hello: the same answer (the server random stays).
                Some(mine) if mine.client_random == h.client_random && !self.proven => {
                    self.want_send = true;
                    Ok(Opened::Control)
                }
                // An old hello replayed, or a duplicate after the proof: nothing to do.
                Some(_) => Err(AeadError::Replay(0)),
            },
            (Role::Client, TYPE_SERVER_HELLO) => {
                let mine = self.hello.ok_or(AeadError::Unexpected(ty))?;
                if h.conv != self.conv || h.client_random != mine.client_random {
                    // Not an answer to this session's hello (an old one replayed).
                    return Err(AeadError::Replay(0));
                }
                match &self.hello_keys_for(&h) {
                    Some(same) if !same => return Err(AeadError::Replay(0)),
                    Some(_) => {}
                    None => {
                        self.hello = Some(h);
                        self.keys = Some(SessionKeys::derive(
                            self.master.kind(),
                            &self.pass,
                            &h,
                            Role::Client,
                        ));
                        self.rto = HELLO_RTO;
                    }
                }
                if !self.proven {
                    // Confirm now; KCP data queued meanwhile follows in the same pump.
                    self.want_send = true;
                }
                Ok(Opened::Control)
            }
            _ => Err(AeadError::Unexpected(ty)),
        }
    }

    /// Client: `None` before keys exist, else whether `h` carries the server random in use.
    fn hello_keys_for(&self, h: &Hello) -> Option<bool> {
        self.keys.as_ref()?;
        Some(
            self.hello
                .is_some_and(|m| m.server_random == h.server_random),
        )
    }
}
