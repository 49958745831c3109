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
pub mod frame;
