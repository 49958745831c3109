//! `tether bench-peer`, the Rust twin of the Go peer `tests/go/kcppeer` (same roles, flags
//! and JSON lines), which `tether bench` drives.
use std::io::{self, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tether_runtime_tokio::Config;
use tokio::runtime::Runtime;

mod args;
mod client;
mod pattern;
mod server;

pub use args::PeerArgs;
pub(crate) use pattern::Pattern;

/// Bulk payload chunk size.
const CHUNK: usize = 64 * 1024;

/// Bytes sent so far, for the timeout message.
static PROG_SENT: AtomicU64 = AtomicU64::new(0);
/// Bytes received so far, for the timeout message.
static PROG_RECV: AtomicU64 = AtomicU64::new(0);

/// Why a client role failed; each kind has kcppeer's exit code.
#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    /// The transfer failed (I/O, a wrong echo): exit 1.
    #[error("{0}")]
    Failed(String),
    /// The flags make no run (e.g. `--sessions 0`): exit 2.
    #[error("{0}")]
    Usage(String),
    /// `--timeout` was reached: exit 3.
    #[error("{0}")]
    Timeout(String),
}

impl PeerError {
    /// The process exit code of this failure.
    pub fn exit_code(&self) -> i32 {
        match self {
            PeerError::Failed(_) => 1,
            PeerError::Usage(_) => 2,
            PeerError::Timeout(_) => 3,
        }
    }
}

/// A failed transfer, for `map_err`.
fn fail(e: impl std::fmt::Display) -> PeerError {
    PeerError::Failed(e.to_string())
}

/// Runs `tether bench-peer`; returns the exit code.
pub fn run_peer(args: &PeerArgs) -> i32 {
    let role = args.role.clone().unwrap_or_default();
    if let Err(want) = check_role(args.listen.is_some(), &role) {
        eprintln!("tether bench-peer: unknown role {role:?} (want {want})");
        return 2;
    }
    let rt = match runtime(args.threads) {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("tether bench-peer: cannot start the runtime: {e}");
            return 1;
        }
    };
    if args.parentwatch {
        std::thread::spawn(|| {
            let _ = io::copy(&mut io::stdin(), &mut io::sink());
            std::process::exit(0);
        });
    }
    let cfg = args.kcp.config(); // PBKDF2 once; sessions clone it
    if let Err(e) = cfg.validate() {
        eprintln!("tether bench-peer: {e}");
        return 2;
    }
    let timeout = (!args.timeout.is_zero()).then_some(args.timeout);
    match args.listen {
        Some(listen) => run_server(&rt, args, cfg, listen, timeout),
        None => run_client(&rt, args, cfg, &role, timeout),
    }
}

/// `Err(the roles wanted)` when `role` is not one of the server's or the client's.
fn check_role(server: bool, role: &str) -> Result<(), &'static str> {
    let (known, want) = if server {
        (matches!(role, "" | "echo"), "echo")
    } else {
        (matches!(role, "bulk" | "rtt" | "idle"), "bulk, rtt or idle")
    };
    if known {
        Ok(())
    } else {
        Err(want)
    }
}

/// A current-thread runtime for one thread (as `tether cat`), a multi-thread one otherwise.
pub(super) fn runtime(threads: usize) -> io::Result<Runtime> {
    if threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()
    }
}

/// Echoes until the timeout (exit 0) or an error (exit 1).
fn run_server(
    rt: &Runtime,
    args: &PeerArgs,
    cfg: Config,
    listen: SocketAddr,
    timeout: Option<Duration>,
) -> i32 {
    let r = rt.block_on(async {
        match timeout {
            Some(t) => tokio::time::timeout(t, server::serve(args, cfg, listen))
                .await
                .unwrap_or(Ok(())),
            None => server::serve(args, cfg, listen).await,
        }
    });
    match r {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("tether bench-peer: {e}");
            1
        }
    }
}

/// Runs the client role and prints its JSON line (exit 0), or fails (exit 3 on timeout).
fn run_client(
    rt: &Runtime,
    args: &PeerArgs,
    cfg: Config,
    role: &str,
    timeout: Option<Duration>,
) -> i32 {
    let r = rt.block_on(async {
        let work = client::client(args, cfg, role);
        match timeout {
            Some(t) => tokio::time::timeout(t, work).await.unwrap_or_else(|_| {
                Err(PeerError::Timeout(format!(
                    "--timeout {t:?} reached in role {role}: sent {}, received {} bytes",
                    PROG_SENT.load(Ordering::Relaxed),
                    PROG_RECV.load(Ordering::Relaxed)
                )))
            }),
            None => work.await,
        }
    });
    match r {
        Ok(json) => {
            let mut out = io::stdout().lock();
            let _ = writeln!(out, "{json}");
            let _ = out.flush();
            0
        }
        Err(e) => {
            eprintln!("tether bench-peer: {e}");
            e.exit_code()
        }
    }
}
