//! kcp-go's session layer (kcp-go-session.md): packet crypto, CRC, FEC, listener demux.
pub mod aead;
pub mod amplification;
pub mod autotune;
pub mod crypt;
mod des;
pub mod fec;
pub mod galois;
pub mod handshake;
pub mod key;
pub mod listener;
// The file is named for what it holds (the Session machine), as DESIGN.md's layout has it.
mod salsa;
#[allow(clippy::module_inception)]
mod session;
mod sm4;
pub mod snmp;
mod twofish;

pub use listener::{
    CloseReason, Listener, ListenerConfig, ListenerEvent, ListenerStats, SessionId,
};
pub use session::{CryptMode, Session, SessionConfig, SessionConfigError, SessionInputError};

#[cfg(test)]
mod aead_tests;
#[cfg(test)]
mod config_tests;
#[cfg(test)]
mod listener_tests;
#[cfg(test)]
mod listener_timer_tests;
#[cfg(test)]
mod tests;
