//! Why a session ended: the one final `Closed` reason of a [`Smux`](super::Smux).
use std::time::Duration;

use super::frame::FrameError;

/// A session-ending error: a protocol violation by the peer, a keepalive timeout, or the
/// end of the lower stream. A single stream's trouble never ends the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SmuxError {
    /// A bad header: version mismatch or unknown command (smux-xtaci.md §2, smux-seed.md §2).
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// A seed PSH longer than 65536 bytes (smux-seed.md §4: upstream would crash).
    #[error(
        "smux PSH of {0} bytes exceeds the 65536-byte seed frame: the peer is not a seed smux"
    )]
    OversizePush(u32),
    /// The peer sent more on a stream than the window allows, by more than one frame.
    #[error("stream {sid}: the peer buffered {buffered} bytes past the {window}-byte window: it ignores flow control")]
    WindowExceeded {
        /// The stream's wire id.
        sid: u32,
        /// Bytes buffered once the frame was counted.
        buffered: usize,
        /// The window the peer had to honour.
        window: usize,
    },
    /// A v2 UPD claimed more bytes consumed than were sent (`ErrConsumed`, smux-xtaci.md §4.2).
    #[error(
        "stream {0}: the peer's UPD claims more bytes consumed than were sent: its smux is broken"
    )]
    Consumed(u32),
    /// A seed CFM credited more than was outstanding (smux-seed.md §4: upstream wraps).
    #[error("stream {sid}: CFM credit {credit} exceeds the {outstanding} bytes outstanding: the peer's smux is broken")]
    CfmOverflow {
        /// The stream's wire id.
        sid: u32,
        /// The credit received.
        credit: u32,
        /// Bytes sent and not confirmed.
        outstanding: u32,
    },
    /// No frame arrived for a whole keepalive timeout (smux-xtaci.md §8).
    #[error("no smux frame from the peer for {0:?}: the peer is gone (raise keepalive_timeout if the path is that slow)")]
    KeepaliveTimeout(Duration),
    /// The lower stream ended (the peer closed its connection).
    #[error("the peer closed the connection under the smux session")]
    PeerClosed,
}
