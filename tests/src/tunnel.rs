//! Running tunnel ends as a user would (`tether client`/`server`, Debian's
//! `kcptun-client`/`kcptun-server`), a TCP echo target, checked transfers through a tunnel,
//! and the fd count and RSS of a process from `/proc`.
use std::fs::File;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::go::{require, target_dir};
use crate::tether_bin::{tether_bin, KillOnDrop};

/// Bound on a tunnel end's `listening on:` log line.
const READY_LIMIT: Duration = Duration::from_secs(20);

/// Who runs a tunnel end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Impl {
    /// `tether client` / `tether server`.
    Tether,
    /// Debian's `kcptun-client` / `kcptun-server` (kcptun 20210922).
    Kcptun,
}

/// Whether Debian's kcptun binaries are installed; outside CI a missing one skips the
/// caller (returns `false`), in CI (`CI=true`) it fails.
pub fn require_kcptun() -> bool {
    let ok = Path::new("/usr/bin/kcptun-client").is_file()
        && Path::new("/usr/bin/kcptun-server").is_file();
    require(
        ok,
        "Debian's kcptun",
        "install the kcptun package (scripts/install-deps.sh)",
    )
}

/// A free loopback port for `udp` or TCP (bound then released; the OS rarely reuses it at
/// once).
pub fn free_port(udp: bool) -> u16 {
    if udp {
        UdpSocket::bind("127.0.0.1:0")
            .and_then(|s| s.local_addr())
            .expect("udp port")
            .port()
    } else {
        TcpListener::bind("127.0.0.1:0")
            .and_then(|s| s.local_addr())
            .expect("tcp port")
            .port()
    }
}

/// A running tunnel end, killed on drop, with its log file.
#[derive(Debug)]
pub struct End {
    /// The process.
    pub child: KillOnDrop,
    /// Its `--log` file.
    pub log: PathBuf,
    /// Its stdout and stderr (panics, start-up errors).
    pub out: PathBuf,
}

impl End {
    /// The log so far, stdout/stderr included.
    pub fn log_text(&self) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let out = std::fs::read_to_string(&self.out).unwrap_or_default();
        format!("{log}{out}")
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.0.id()
    }

    /// Waits (bounded by `limit`, else panics) for the process to exit; its status.
    pub fn wait_exit(&mut self, limit: Duration) -> std::process::ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(s) = self.child.0.try_wait().expect("try_wait") {
                return s;
            }
            assert!(start.elapsed() < limit, "still running after {limit:?}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits (bounded) until the log holds `needle`; false on timeout.
    pub fn wait_for(&self, needle: &str, limit: Duration) -> bool {
        let start = Instant::now();
        while start.elapsed() < limit {
            if self.log_text().contains(needle) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        false
    }
}

fn log_paths(what: &str) -> (PathBuf, PathBuf) {
    static SEQ: AtomicUsize = AtomicUsize::new(0);
    let n = SEQ.fetch_add(1, Ordering::Relaxed);
    let dir = target_dir().join("interop-kcptun");
    std::fs::create_dir_all(&dir).expect("log directory");
    let stem = format!("{what}-{}-{n}", std::process::id());
    (
        dir.join(format!("{stem}.log")),
        dir.join(format!("{stem}.out")),
    )
}

/// Starts a tunnel end: `role` is `client` (`-l` TCP, `-r` UDP) or `server` (`-l` UDP, `-t`
/// TCP), then `args`; waits for its `listening on:` line.
pub fn start_end(who: Impl, role: &str, args: &[String]) -> End {
    let (log, out) = log_paths(&format!("{who:?}-{role}"));
    let mut cmd = match who {
        Impl::Tether => {
            let mut c = Command::new(tether_bin());
            c.arg(role);
            c
        }
        Impl::Kcptun => Command::new(format!("/usr/bin/kcptun-{role}")),
    };
    let out_file = File::create(&out).expect("output file");
    cmd.args(args)
        .arg("--log")
        .arg(&log)
        .stdin(Stdio::null())
        .stdout(out_file.try_clone().expect("dup"))
        .stderr(out_file);
    let child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("spawning {cmd:?}: {e}"));
    let end = End {
        child: KillOnDrop(child),
        log,
        out,
    };
    assert!(
        end.wait_for("listening on:", READY_LIMIT),
        "{cmd:?} did not start:\n{}",
        end.log_text()
    );
    end
}

/// A TCP echo server on loopback (one thread per connection; echoes until the client's
/// FIN, then half-closes back).
pub fn echo_target() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").expect("echo bind");
    let addr = l.local_addr().expect("echo addr");
    std::thread::spawn(move || {
        for c in l.incoming() {
            let Ok(mut c) = c else { continue };
            std::thread::spawn(move || {
                let mut r = c.try_clone().expect("clone");
                let _ = std::io::copy(&mut r, &mut c);
                let _ = c.shutdown(Shutdown::Write);
            });
        }
    });
    addr
}

/// `n` deterministic pseudo-random bytes for connection `seed`.
pub fn payload(seed: u64, n: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// One connection through the tunnel at `local`: sends `n` bytes while reading the echo,
/// compares sha256 digests. With `half_close` the client shuts its write side after
/// sending and expects the echo then the end of the stream (tether↔tether only: kcptun
/// closes both directions at the first FIN). Errors say what went wrong.
pub fn echo_through(
    local: SocketAddr,
    seed: u64,
    n: usize,
    half_close: bool,
    limit: Duration,
) -> Result<(), String> {
    let mut s = TcpStream::connect(local).map_err(|e| format!("connect {local}: {e}"))?;
    s.set_read_timeout(Some(limit)).map_err(|e| e.to_string())?;
    let data = payload(seed, n);
    let want = Sha256::digest(&data);
    let mut w = s.try_clone().map_err(|e| e.to_string())?;
    let writer = std::thread::spawn(move || -> std::io::Result<()> {
        w.write_all(&data)?;
        if half_close {
            w.shutdown(Shutdown::Write)?;
        }
        Ok(())
    });
    let mut got = vec![0u8; n];
    let mut at = 0;
    let start = Instant::now();
    while at < n {
        match s.read(&mut got[at..]) {
            Ok(0) => return Err(format!("end of stream after {at} of {n} bytes")),
            Ok(k) => at += k,
            Err(e) => return Err(format!("read after {at} of {n} bytes: {e}")),
        }
        if start.elapsed() > limit {
            return Err(format!("only {at} of {n} bytes within {limit:?}"));
        }
    }
    writer
        .join()
        .map_err(|_| "writer panicked".to_string())?
        .map_err(|e| format!("write: {e}"))?;
    if half_close {
        let mut rest = [0u8; 1];
        match s.read(&mut rest) {
            Ok(0) => {}
            other => return Err(format!("expected the end of the stream, got {other:?}")),
        }
    }
    if Sha256::digest(&got) != want {
        return Err("sha256 of the echo differs from what was sent".into());
    }
    Ok(())
}

/// Open file descriptors and resident memory (KiB) of process `pid`.
pub fn fds_and_rss(pid: u32) -> (usize, u64) {
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0);
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    (fds, rss)
}
