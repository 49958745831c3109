//! What is benchmarked: the settings applied identically to both peers, and the two
//! implementations.

/// One benchmark setting, applied identically to both peers.
pub struct Setting {
    /// Its title in the report.
    pub name: &'static str,
    /// `--crypt`.
    pub crypt: &'static str,
    /// `--datashard`.
    pub ds: usize,
    /// `--parityshard`.
    pub ps: usize,
}

/// The bulk and RTT settings; the idle run uses the second.
pub const SETTINGS: [Setting; 2] = [
    Setting {
        name: "none + no FEC",
        crypt: "none",
        ds: 0,
        ps: 0,
    },
    Setting {
        name: "aes + FEC 10/3",
        crypt: "aes",
        ds: 10,
        ps: 3,
    },
];

/// The flags both peers get in every setting, as the report states them.
pub const COMMON: &str =
    "--mode fast --sndwnd 1024 --rcvwnd 1024 --mtu 1350 (same flags to both peers)";

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Impl {
    /// `tether bench-peer`.
    Tether,
    /// tests/go/kcppeer.
    KcpGo,
}

impl Impl {
    /// `tether` or `kcp-go`.
    pub fn name(self) -> &'static str {
        match self {
            Impl::Tether => "tether",
            Impl::KcpGo => "kcp-go",
        }
    }
}
