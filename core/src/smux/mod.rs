//! smux: many byte streams over one reliable byte stream, in two dialects chosen by config.
//!
//! - **xtaci** (`github.com/xtaci/smux` 1.5.16, as kcptun 20210922 uses it; smux-xtaci.md):
//!   8-byte header, versions 1 and 2 (v2 adds UPD window updates), keepalive NOPs.
//! - **seed** (`github.com/yddeng/smux`, seed 001; smux-seed.md): 7-byte header, u16 ids from a
//!   shared bitmap, CFM-confirmed 512 KiB windows, the VRM "is this smux?" probe.
//!
//! The session is a [`StreamLayer`](crate::stack::StreamLayer), so one implementation runs
//! over a KCP session (`Stack<Session, Smux>`, the kcptun tunnel) and over TCP
//! (`Stack<StreamLink, Smux>`).
//!
//! What it does beyond upstream, on the same wire:
//! - a fair scheduler: control frames first, then one data frame per stream in turn;
//! - a full accept backlog or `max_streams` refuses the SYN with a FIN instead of stalling
//!   the whole session;
//! - the receive path never stops because one stream's reader is slow (windows bound each
//!   stream; a peer ignoring them is a protocol error);
//! - seed: handles carry a generation (`StreamId = generation << 16 | id`), so a stale
//!   handle cannot touch a reused id; ids are allocated round-robin; the passive closer frees
//!   its id; a CFM larger than what is outstanding and a PSH over 64 KiB are protocol errors.
//!
//! Stream handles: xtaci's `StreamId` is the wire sid; the seed's carries the generation.
//! `finish` sends a FIN after the queued data and keeps reading (half-close);
//! `close_stream` drops the unread bytes, flushes what was written for at most
//! [`LINGER_TIMEOUT`](crate::driver::LINGER_TIMEOUT), sends the FIN and reports
//! `StreamClosed`.
mod config;
mod decode;
mod error;
mod flow;
pub mod frame;
mod ids;
mod keepalive;
pub mod probe;
mod receive;
mod scheduler;
mod session;
mod stats;
mod stream;

pub use config::{Dialect, SmuxConfig, SmuxConfigError};
pub use error::SmuxError;
pub use session::Smux;
pub use stats::SmuxStats;

#[cfg(test)]
#[path = "session_tests.rs"]
mod session_tests;

#[cfg(test)]
#[path = "sim_tests.rs"]
mod sim_tests;
