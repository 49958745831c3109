//! Session configuration of both dialects: defaults (smux-xtaci.md §6, smux-seed.md §9) and
//! the checks of xtaci's `VerifyConfig`, with messages naming the field to fix.
use std::time::Duration;

/// Which smux is spoken on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dialect {
    /// xtaci/smux version 1: no per-stream flow control (smux-xtaci.md §4.1).
    V1,
    /// xtaci/smux version 2: UPD window updates (smux-xtaci.md §4.2).
    V2,
    /// The seed (yddeng/smux): 7-byte header, CFM windows, VRM probe (smux-seed.md).
    Seed,
}

impl Dialect {
    /// Whether this is one of xtaci's versions.
    pub fn is_xtaci(self) -> bool {
        !matches!(self, Dialect::Seed)
    }

    /// The xtaci version byte (1 or 2); 0 for the seed, which has none.
    pub fn version(self) -> u8 {
        match self {
            Dialect::V1 => 1,
            Dialect::V2 => 2,
            Dialect::Seed => 0,
        }
    }

    /// Largest PSH payload the dialect's length field carries.
    pub fn frame_limit(self) -> usize {
        match self {
            Dialect::Seed => SEED_FRAME,
            _ => usize::from(u16::MAX),
        }
    }
}

/// The seed's frame size and stream window (smux-seed.md §4, §9).
const SEED_FRAME: usize = 65_536;
const SEED_WINDOW: usize = 524_288;
/// xtaci's `MaxStreamBuffer` cap (smux-xtaci.md §6).
const MAX_I32: usize = 0x7FFF_FFFF;

/// A session's settings. Build with [`SmuxConfig::xtaci`] or [`SmuxConfig::seed`] and adjust
/// fields; [`SmuxConfig::validate`] reports the first bad field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmuxConfig {
    /// The wire dialect.
    pub dialect: Dialect,
    /// xtaci: a NOP every interval (10 s); `None` sends no NOPs and never times out (seed).
    pub keepalive_interval: Option<Duration>,
    /// Close after a full period with no inbound frame, unless back-pressured (xtaci 30 s).
    pub keepalive_timeout: Duration,
    /// Largest PSH payload sent: xtaci 32768 (1..=65535), seed 65536.
    pub max_frame_size: usize,
    /// xtaci: the session bucket (4 MiB), reading pauses while this much is buffered; seed:
    /// a session-wide cap on buffered received bytes (64 MiB).
    pub max_receive_buffer: usize,
    /// xtaci v2: the window advertised in UPD (65536; kcptun uses 2 MiB); seed: the stream
    /// window (512 KiB). Also bounds each stream's send queue.
    pub max_stream_buffer: usize,
    /// Streams the peer opened and the application has not accepted yet (1024).
    pub accept_backlog: usize,
    /// Live streams per session (65535); beyond it a peer's SYN is refused with a FIN.
    pub max_streams: usize,
}

/// A configuration field out of range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("smux config: {field} {problem}")]
pub struct SmuxConfigError {
    /// The field to fix.
    pub field: &'static str,
    /// What is wrong with it.
    pub problem: &'static str,
}

impl SmuxConfig {
    /// smux 1.5.16's defaults (smux-xtaci.md §6): version 1 gives [`Dialect::V1`], any other
    /// value [`Dialect::V2`].
    pub fn xtaci(version: u8) -> SmuxConfig {
        SmuxConfig {
            dialect: if version == 1 {
                Dialect::V1
            } else {
                Dialect::V2
            },
            keepalive_interval: Some(Duration::from_secs(10)),
            keepalive_timeout: Duration::from_secs(30),
            max_frame_size: 32_768,
            max_receive_buffer: 4 << 20,
            max_stream_buffer: 65_536,
            accept_backlog: 1024,
            max_streams: 65_535,
        }
    }

    /// The seed's defaults (smux-seed.md §9): no keepalive, 64 KiB frames, 512 KiB windows.
    pub fn seed() -> SmuxConfig {
        SmuxConfig {
            dialect: Dialect::Seed,
            keepalive_interval: None,
            keepalive_timeout: Duration::from_secs(30),
            max_frame_size: SEED_FRAME,
            max_receive_buffer: 64 << 20,
            max_stream_buffer: SEED_WINDOW,
            accept_backlog: 1024,
            max_streams: 65_535,
        }
    }

    /// `VerifyConfig`'s rules (smux-xtaci.md §6), and their seed counterparts.
    pub fn validate(&self) -> Result<(), SmuxConfigError> {
        let bad = |field, problem| Err(SmuxConfigError { field, problem });
        if let Some(interval) = self.keepalive_interval {
            if self.dialect == Dialect::Seed {
                // smux-seed.md §8: the seed has no keepalive frame ([HEAD]'s PIN kills it).
                return bad("keepalive_interval", "must be None for the seed dialect");
            }
            if interval.is_zero() {
                return bad(
                    "keepalive_interval",
                    "must be positive (or None to disable)",
                );
            }
            if self.keepalive_timeout < interval {
                return bad("keepalive_timeout", "must be at least keepalive_interval");
            }
        }
        if self.max_frame_size == 0 || self.max_frame_size > self.dialect.frame_limit() {
            return bad(
                "max_frame_size",
                "must be 1..=65535 (xtaci) or 1..=65536 (seed)",
            );
        }
        if self.max_receive_buffer == 0 {
            return bad("max_receive_buffer", "must be positive");
        }
        if self.max_stream_buffer == 0 || self.max_stream_buffer > MAX_I32 {
            return bad("max_stream_buffer", "must be 1..=2147483647");
        }
        if self.max_stream_buffer > self.max_receive_buffer {
            return bad("max_stream_buffer", "must not exceed max_receive_buffer");
        }
        if self.accept_backlog == 0 {
            return bad("accept_backlog", "must be positive");
        }
        if self.max_streams == 0 {
            return bad("max_streams", "must be positive");
        }
        Ok(())
    }

    /// The nearest valid configuration (what [`Smux::new`](super::Smux::new) runs with).
    pub(crate) fn clamped(mut self) -> SmuxConfig {
        if self.dialect == Dialect::Seed || self.keepalive_interval.is_some_and(|i| i.is_zero()) {
            self.keepalive_interval = None;
        }
        if let Some(i) = self.keepalive_interval {
            self.keepalive_timeout = self.keepalive_timeout.max(i);
        }
        self.max_frame_size = self.max_frame_size.clamp(1, self.dialect.frame_limit());
        self.max_stream_buffer = self.max_stream_buffer.clamp(1, MAX_I32);
        self.max_receive_buffer = self.max_receive_buffer.max(self.max_stream_buffer);
        self.accept_backlog = self.accept_backlog.max(1);
        self.max_streams = self.max_streams.max(1);
        self
    }
}
