//! The four tunnel processes of a measurement (and the `tether netem` between them): who
//! runs them, their command lines, and readiness.
//!
//! Readiness is read from `/proc/net` (the server's UDP port bound, the client's TCP port
//! listening), not from log lines: kcptun-server logs `listening on:` before it binds, and
//! its line repeats the flag, not the bound port.
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::args::TunnelBenchArgs;
use crate::bench::child::Proc;
use crate::bench::procfs::port_bound;
use crate::bench::BenchError;

/// Bound on a process getting ready.
const READY_LIMIT: Duration = Duration::from_secs(20);

/// Who runs both tunnel ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Impl {
    /// `tether client` ↔ `tether server`.
    Tether,
    /// Debian's `kcptun-client` ↔ `kcptun-server` (kcptun 20210922).
    Kcptun,
}

impl Impl {
    /// The name in tables and JSON.
    pub fn name(self) -> &'static str {
        match self {
            Impl::Tether => "tether",
            Impl::Kcptun => "kcptun",
        }
    }
}

/// The binaries.
pub struct Programs {
    /// `tether` (its `client`, `server` and `netem`).
    pub tether: PathBuf,
    /// `kcptun-client`.
    pub kcptun_client: PathBuf,
    /// `kcptun-server`.
    pub kcptun_server: PathBuf,
}

impl Programs {
    /// The binaries the flags name, else this binary and kcptun's on `PATH`; a missing
    /// kcptun is [`BenchError::NoPeer`] (exit 2).
    pub fn find(args: &TunnelBenchArgs) -> Result<Programs, BenchError> {
        let tether = match &args.tether {
            Some(t) => t.clone(),
            None => std::env::current_exe()
                .map_err(|e| BenchError::Failed(format!("cannot find our own binary: {e}")))?,
        };
        Ok(Programs {
            tether,
            kcptun_client: kcptun(args.kcptun_client.as_deref(), "kcptun-client")?,
            kcptun_server: kcptun(args.kcptun_server.as_deref(), "kcptun-server")?,
        })
    }

    /// The command of `role` (`client` or `server`) of `imp`.
    fn end(&self, imp: Impl, role: &str) -> Command {
        match (imp, role) {
            (Impl::Tether, _) => {
                let mut c = Command::new(&self.tether);
                c.arg(role);
                c
            }
            (Impl::Kcptun, "client") => Command::new(&self.kcptun_client),
            (Impl::Kcptun, _) => Command::new(&self.kcptun_server),
        }
    }
}

impl Programs {
    /// Starts `imp`'s `role` listening on `-l listen` with `other` (`-t` target or `-r`
    /// remote) and `common`; waits until its socket is bound (the server's UDP port, the
    /// client's TCP listener).
    fn start_end(
        &self,
        imp: Impl,
        role: &str,
        (listen, other, to): (SocketAddr, &str, SocketAddr),
        common: &[String],
    ) -> Result<Proc, String> {
        let mut cmd = self.end(imp, role);
        cmd.args(["-l", &listen.to_string(), other, &to.to_string()])
            .args(common);
        let mut end = Proc::spawn(format!("{} {role}", imp.name()), cmd)?;
        let (table, what) = if role == "server" {
            ("udp", "bound to UDP")
        } else {
            ("tcp", "listening on TCP")
        };
        end.await_ready(what, READY_LIMIT, || port_bound(table, listen.port()))?;
        Ok(end)
    }
}

/// `flag` if given, else `name` on `PATH`; it must be an existing file.
fn kcptun(flag: Option<&Path>, name: &str) -> Result<PathBuf, BenchError> {
    let found = match flag {
        Some(p) => Some(p.to_path_buf()).filter(|p| p.is_file()),
        None => std::env::var_os("PATH").and_then(|path| {
            std::env::split_paths(&path)
                .map(|d| d.join(name))
                .find(|p| p.is_file())
        }),
    };
    found.ok_or_else(|| {
        let which = flag.map_or_else(
            || format!("{name} is not on PATH"),
            |p| format!("{} does not exist", p.display()),
        );
        BenchError::NoPeer(format!(
            "{which}: tether bench-tunnel compares with Debian's kcptun; install it \
             (`apt-get install kcptun`) or name the binaries with --kcptun-client/--kcptun-server"
        ))
    })
}

/// How the ends are set up in one measurement.
pub struct Setup<'a> {
    /// Flags of all four ends after the addresses (`--key`, `--quiet`, `--args`).
    pub common: &'a [String],
    /// `tether netem` flags when the link is impaired (`None`: straight over loopback).
    pub netem: Option<Vec<String>>,
}

/// A running tunnel: server, optional netem, client; killed when dropped (client first).
pub struct Tunnel {
    /// The tunnel client.
    pub client: Proc,
    /// The tunnel server.
    pub server: Proc,
    _netem: Option<Proc>,
    /// Where the load generator connects (the client's TCP listener).
    pub local: SocketAddr,
}

impl Tunnel {
    /// Starts `imp`'s server (forwarding to `target`), the netem of `setup` and the client,
    /// each ready before the next starts.
    pub fn start(
        p: &Programs,
        imp: Impl,
        target: SocketAddr,
        setup: &Setup,
    ) -> Result<Tunnel, String> {
        let udp = free_port(true)?;
        let server = p.start_end(imp, "server", (udp, "-t", target), setup.common)?;
        let (netem, remote) = match &setup.netem {
            Some(flags) => {
                let (n, listen) = start_netem(&p.tether, udp, flags)?;
                (Some(n), listen)
            }
            None => (None, udp),
        };
        let local = free_port(false)?;
        let client = p.start_end(imp, "client", (local, "-r", remote), setup.common)?;
        Ok(Tunnel {
            client,
            server,
            _netem: netem,
            local,
        })
    }

    /// The last lines of both ends' stderr, for a failed measurement.
    pub fn failed(&self, what: &str) -> String {
        format!(
            "{what}\n  {}\n  {}",
            self.client.failed("log"),
            self.server.failed("log")
        )
    }
}

/// `tether netem --listen 127.0.0.1:0 --forward <to> <flags>`, and the address it listens
/// on (from its readiness line `netem listening on <addr> forwarding to <addr>`).
fn start_netem(
    tether: &Path,
    to: SocketAddr,
    flags: &[String],
) -> Result<(Proc, SocketAddr), String> {
    let mut cmd = Command::new(tether);
    cmd.args([
        "netem",
        "--listen",
        "127.0.0.1:0",
        "--forward",
        &to.to_string(),
    ])
    .args(flags);
    let mut netem = Proc::spawn("tether netem".into(), cmd)?;
    let line = netem.stdout_line(READY_LIMIT)?;
    let listen = line
        .strip_prefix("netem listening on ")
        .and_then(|r| r.split_whitespace().next())
        .and_then(|a| a.parse().ok())
        .ok_or_else(|| netem.failed(&format!("printed {line:?}, not its readiness line")))?;
    Ok((netem, listen))
}

/// A free loopback port (bound then released; the OS rarely hands it out again at once).
fn free_port(udp: bool) -> Result<SocketAddr, String> {
    let a = if udp {
        UdpSocket::bind("127.0.0.1:0").and_then(|s| s.local_addr())
    } else {
        TcpListener::bind("127.0.0.1:0").and_then(|s| s.local_addr())
    };
    a.map_err(|e| format!("no free loopback port: {e}"))
}
