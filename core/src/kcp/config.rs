//! KCP knobs and the kcptun presets (kcp.md §3, §12, §13).

/// Whose KCP the control block behaves as where kcp-go 5.6.1 and skywind3000's ikcp.c 1.7
/// differ in ways a C peer can see (kcp.md §14; the README's differences table).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KcpFlavor {
    /// kcp-go 5.6.1, byte for byte (the golden vectors of tests/vectors/kcp).
    #[default]
    KcpGo,
    /// skywind3000's ikcp.c 1.7 (as PyPI kcp 0.1.6 vendors it), reproducing its transcripts
    /// byte for byte (tests/vectors/ikcp): receive window at least 128 (`ikcp_wndsize`) and
    /// the peer's assumed 128 until it speaks; messages of 128 fragments or more refused
    /// (`ikcp_send` -2), an empty message sent as one empty segment; every queued ACK
    /// written; no flush from input; per-ACK RTT samples with ikcp's estimator; acked
    /// segments unlinked at once; fastack once per datagram against the largest acked sn;
    /// first send, timeout, fast retransmit in that order (first-send slack `rx_rto >> 3`
    /// without nodelay, backoff `rto += max(rto, rx_rto)` or `rto / 2`, fast retransmit at
    /// most 5 transmissions, no early retransmit). Only `ikcp_recv`'s C return codes differ.
    Ikcp,
}

/// Configuration of one KCP control block. Field names follow kcp-go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KcpConfig {
    /// `nodelay`: minimum RTO 30 ms instead of 100, gentler timeout backoff.
    pub nodelay: bool,
    /// Flush interval in ms, clamped to 10..=5000 (kcp.md §13).
    pub interval: u32,
    /// Fast-retransmit threshold on the fastack count; 0 turns it off.
    pub resend: u32,
    /// `nc`: ignore the congestion window.
    pub nocwnd: bool,
    /// Send window, in segments.
    pub snd_wnd: u32,
    /// Receive window, in segments.
    pub rcv_wnd: u32,
    /// Largest datagram, header space included (50..=1500 for kcp-go sessions).
    pub mtu: u32,
    /// Bytes reserved at the front of each datagram for the session layer (crypto 20, FEC 8).
    pub reserved: u32,
    /// Stream mode: coalesce writes, never fragment.
    pub stream: bool,
    /// Acknowledge every received datagram at once instead of on the next interval.
    pub ack_nodelay: bool,
    /// Unanswered sends of one segment (its first and its retransmissions on timeout; see
    /// [`KcpEvent::DeadLink`](super::KcpEvent::DeadLink)) after which the link is reported
    /// dead.
    pub dead_link: u32,
    /// Loss recovery without waiting for the next interval (tether's own policy, off by
    /// default for kcp-go's timing): a receiver acknowledges at once when a segment arrives
    /// out of order, and a sender flushes at once when ACKs bring a segment to the fast
    /// retransmit threshold (`resend`). The wire format is unchanged; only when datagrams
    /// leave differs. With kcptun's `fast` interval of 30 ms, a loss otherwise waits up to
    /// two intervals for its ACKs and the retransmission, and the RTO usually fires first.
    /// Ignored with [`KcpFlavor::Ikcp`], which never flushes from input.
    pub quick_recovery: bool,
    /// Send queued ACKs once `mtu / 24` of them are waiting (a datagram's worth) rather
    /// than at the next flush, as kcp-go does after 5.6.1 (kcp.md §16). On by default: with
    /// a window of thousands of segments, a sender that hears of delivered data only once
    /// per interval spends its window and waits, then sends the next one in a burst a
    /// socket buffer may not hold (one-way bulk through `tether cat` on loopback: 1.3× the
    /// throughput at the same CPU). The wire format is the same; a bulk receiver sends one
    /// ACK datagram per `mtu / 24` segments instead of one per interval. Off reproduces
    /// kcp-go 5.6.1's timing exactly (the golden vectors). Ignored with
    /// [`KcpFlavor::Ikcp`], which never flushes from input.
    pub ack_when_full: bool,
    /// kcp-go's or ikcp's behaviour where they differ visibly to the peer.
    pub flavor: KcpFlavor,
}

impl Default for KcpConfig {
    /// kcp-go's `NewKCP` defaults (kcp.md §3).
    fn default() -> Self {
        KcpConfig {
            nodelay: false,
            interval: 100,
            resend: 0,
            nocwnd: false,
            snd_wnd: 32,
            rcv_wnd: 32,
            mtu: 1400,
            reserved: 0,
            stream: false,
            ack_nodelay: false,
            dead_link: 20,
            quick_recovery: false,
            ack_when_full: true,
            flavor: KcpFlavor::KcpGo,
        }
    }
}

/// The kcptun `--mode` presets, in the order kcptun documents them.
pub const MODE_NAMES: [&str; 4] = ["normal", "fast", "fast2", "fast3"];

impl KcpConfig {
    fn preset(nodelay: bool, interval: u32) -> Self {
        KcpConfig {
            nodelay,
            interval,
            resend: 2,
            nocwnd: true,
            ..Self::default()
        }
    }
    /// kcptun `normal`: nodelay 0, interval 40, resend 2, nc 1.
    pub fn normal() -> Self {
        Self::preset(false, 40)
    }
    /// kcptun `fast` (kcptun's default): nodelay 0, interval 30, resend 2, nc 1.
    pub fn fast() -> Self {
        Self::preset(false, 30)
    }
    /// kcptun `fast2`: nodelay 1, interval 20, resend 2, nc 1.
    pub fn fast2() -> Self {
        Self::preset(true, 20)
    }
    /// kcptun `fast3`: nodelay 1, interval 10, resend 2, nc 1.
    pub fn fast3() -> Self {
        Self::preset(true, 10)
    }
    /// A preset by its kcptun name (`normal`, `fast`, `fast2`, `fast3`).
    pub fn mode(name: &str) -> Option<Self> {
        match name {
            "normal" => Some(Self::normal()),
            "fast" => Some(Self::fast()),
            "fast2" => Some(Self::fast2()),
            "fast3" => Some(Self::fast3()),
            _ => None,
        }
    }
    /// Sets both windows (values of 0 leave a window unchanged, as kcp-go's `WndSize`).
    pub fn with_windows(mut self, snd: u32, rcv: u32) -> Self {
        if snd > 0 {
            self.snd_wnd = snd;
        }
        if rcv > 0 {
            self.rcv_wnd = rcv;
        }
        self
    }
    /// Sets the MTU.
    pub fn with_mtu(mut self, mtu: u32) -> Self {
        self.mtu = mtu;
        self
    }
    /// Sets [`KcpConfig::quick_recovery`].
    pub fn with_quick_recovery(mut self, on: bool) -> Self {
        self.quick_recovery = on;
        self
    }
    /// Sets [`KcpConfig::ack_when_full`].
    pub fn with_ack_when_full(mut self, on: bool) -> Self {
        self.ack_when_full = on;
        self
    }
    /// Sets stream mode.
    pub fn with_stream(mut self, stream: bool) -> Self {
        self.stream = stream;
        self
    }

    /// Checks the values kcp-go would reject, with a message saying what to change.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.mtu < 50 {
            return Err(ConfigError::MtuTooSmall(self.mtu));
        }
        if self.reserved >= self.mtu - super::segment::OVERHEAD as u32 {
            return Err(ConfigError::ReservedTooLarge {
                reserved: self.reserved,
                mtu: self.mtu,
            });
        }
        if self.snd_wnd == 0 || self.rcv_wnd == 0 {
            return Err(ConfigError::ZeroWindow);
        }
        if self.rcv_wnd > u16::MAX as u32 {
            return Err(ConfigError::WindowTooLarge(self.rcv_wnd));
        }
        Ok(())
    }

    /// Maximum segment payload: `mtu − 24 − reserved` (kcp.md §12).
    pub fn mss(&self) -> u32 {
        self.mtu
            .saturating_sub(super::segment::OVERHEAD as u32 + self.reserved)
    }

    /// The interval as kcp-go's `NoDelay` clamps it.
    pub(crate) fn clamped_interval(&self) -> u32 {
        self.interval.clamp(10, 5000)
    }
}

/// Why a [`KcpConfig`] cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// kcp-go rejects MTUs below 50.
    #[error("mtu {0} is too small: use at least 50 (kcptun's default is 1350)")]
    MtuTooSmall(u32),
    /// The reserved header space leaves no room for a segment.
    #[error("{reserved} reserved bytes leave no room for data in an mtu of {mtu}: raise --mtu")]
    ReservedTooLarge {
        /// Reserved bytes asked for.
        reserved: u32,
        /// The MTU.
        mtu: u32,
    },
    /// A window of zero segments can never send.
    #[error("window sizes must be at least 1 segment: set --sndwnd and --rcvwnd above 0")]
    ZeroWindow,
    /// The receive window travels in a 16-bit field.
    #[error("rcvwnd {0} does not fit the 16-bit wnd field: use at most 65535")]
    WindowTooLarge(u32),
}
