//! kcp-go's session layer (kcp-go-session.md): packet crypto, CRC, FEC, listener demux.
pub mod aead;
pub mod autotune;
pub mod crypt;
pub mod fec;
pub mod key;
mod session;
pub mod snmp;

pub use session::{CryptMode, Session, SessionConfig, SessionInputError};

#[cfg(test)]
mod tests;
