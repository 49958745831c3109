//! The implementations `tether bench-smux` compares and how their peers are started: all share
//! `tether smux`'s command line (`echo-server -l ADDR …`, `client -r ADDR --streams K --bytes
//! N …`), so one [`Command`] builder serves them all.
use std::path::PathBuf;
use std::process::{Command, Stdio};

use clap::ValueEnum;

use super::args::Transport;

/// One row of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Impl {
    /// `tether smux --dialect v1`.
    TetherV1,
    /// `tether smux --dialect v2`.
    TetherV2,
    /// Go xtaci/smux 1.5.16, version 1 (`tests/go/smuxpeer`).
    GoV1,
    /// Go xtaci/smux 1.5.16, version 2.
    GoV2,
    /// The yamux crate (`tether bench-yamux-peer`), TCP only.
    Yamux,
    /// No multiplexer: one TCP connection per stream, echoed by a plain read/write loop on
    /// one tokio thread (`tether bench-yamux-peer --plain`), TCP only. The floor: what the
    /// kernel's loopback TCP costs for the same bytes, which every multiplexer pays on top
    /// of its own work.
    RawTcp,
    /// The same in Go (`smuxpeer --dialect raw`): Go's runtime costs on top of the kernel's.
    GoRawTcp,
}

/// Every row, in table order.
pub const ALL: [Impl; 7] = [
    Impl::TetherV1,
    Impl::TetherV2,
    Impl::GoV1,
    Impl::GoV2,
    Impl::Yamux,
    Impl::RawTcp,
    Impl::GoRawTcp,
];

/// kcptun's KCP flags of the `--transport kcp` runs: `tether bench`'s fastest setting (no
/// cipher, no FEC), fast3, 1024-segment windows.
pub const KCP_FLAGS: [&str; 16] = [
    "--crypt",
    "none",
    "--key",
    "it's a secrect",
    "--mode",
    "fast3",
    "--mtu",
    "1350",
    "--sndwnd",
    "1024",
    "--rcvwnd",
    "1024",
    "--datashard",
    "0",
    "--parityshard",
    "0",
];

impl Impl {
    /// The row's title.
    pub fn title(self) -> &'static str {
        match self {
            Impl::TetherV1 => "tether smux v1",
            Impl::TetherV2 => "tether smux v2",
            Impl::GoV1 => "Go xtaci/smux 1.5.16 v1",
            Impl::GoV2 => "Go xtaci/smux 1.5.16 v2",
            Impl::Yamux => "yamux (Rust crate)",
            Impl::RawTcp => "floor: plain TCP, no multiplexer (Rust, tokio)",
            Impl::GoRawTcp => "plain TCP, no multiplexer (Go)",
        }
    }

    /// `--dialect`, for the smux implementations.
    fn dialect(self) -> Option<&'static str> {
        match self {
            Impl::TetherV1 | Impl::GoV1 => Some("v1"),
            Impl::TetherV2 | Impl::GoV2 => Some("v2"),
            Impl::Yamux | Impl::RawTcp => None,
            Impl::GoRawTcp => Some("raw"),
        }
    }

    /// Whether it runs over `t`.
    pub fn supports(self, t: Transport) -> bool {
        t == Transport::Tcp || !matches!(self, Impl::Yamux | Impl::RawTcp | Impl::GoRawTcp)
    }

    /// The Go row of the same dialect (what a tether row is compared with).
    pub fn go_twin(self) -> Option<Impl> {
        match self {
            Impl::TetherV1 => Some(Impl::GoV1),
            Impl::TetherV2 => Some(Impl::GoV2),
            _ => None,
        }
    }

    /// Whether this is a tether row (compared with Go and yamux).
    pub fn is_tether(self) -> bool {
        matches!(self, Impl::TetherV1 | Impl::TetherV2)
    }
}

/// Where the peers come from; a peer that cannot run says why.
pub struct Programs {
    /// This binary (`tether bench-yamux-peer`).
    pub tether: PathBuf,
    /// The binary of the tether rows (`tether smux`), or why there is none.
    pub tether_smux: Result<PathBuf, String>,
    /// The Go smux peer.
    pub smuxpeer: Result<PathBuf, String>,
}

impl Programs {
    /// `role`'s command of `imp` over `t`, with `args` after the shared flags.
    pub fn command(
        &self,
        imp: Impl,
        role: &str,
        t: Transport,
        args: &[String],
    ) -> Result<Command, String> {
        let mut c = match imp {
            Impl::TetherV1 | Impl::TetherV2 => {
                let mut c = Command::new(self.tether_smux.clone()?);
                c.args(["smux", role]);
                c
            }
            Impl::GoV1 | Impl::GoV2 | Impl::GoRawTcp => {
                let mut c = Command::new(self.smuxpeer.clone()?);
                c.arg(role);
                c
            }
            Impl::Yamux | Impl::RawTcp => {
                let mut c = Command::new(&self.tether);
                c.args(["bench-yamux-peer", role]);
                if imp == Impl::RawTcp {
                    c.arg("--plain");
                }
                c
            }
        };
        if let Some(d) = imp.dialect() {
            c.args(["--dialect", d]);
        }
        c.args(["--transport", t.name()]);
        if t == Transport::Kcp {
            c.args(KCP_FLAGS);
        }
        c.args(args);
        Ok(c)
    }
}

/// `tether` when it has the `smux` subcommand (the lead's, issue 16 item 5).
pub fn probe_tether_smux(tether: PathBuf) -> Result<PathBuf, String> {
    let out = Command::new(&tether)
        .args(["smux", "--help"])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", tether.display()))?;
    if out.status.success() {
        Ok(tether)
    } else {
        Err(format!(
            "tether smux not available ({} has no `smux` subcommand)",
            tether.display()
        ))
    }
}
