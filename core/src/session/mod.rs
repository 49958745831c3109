//! kcp-go's session layer (kcp-go-session.md): packet crypto, CRC, FEC, listener demux.
pub mod crypt;
pub mod key;
