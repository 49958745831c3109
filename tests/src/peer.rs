//! A real kcp-go 5.6.1 peer (`tests/go/kcppeer`) for live interop tests and side-by-side
//! benchmarks: [`GoPeer::server`] spawns a server and learns its port from the readiness
//! line, [`GoPeer::run_client`] runs a client role to completion and returns its JSON line,
//! [`json_field`] reads a field out of it. The flags, roles and output formats are documented
//! at the top of `tests/go/kcppeer/main.go`.
//!
//! Gate a test with [`go_peer_available`] first (the [`crate::go::require_peer`] semantics:
//! skip locally, panic under `CI=true` when Go or Debian's kcp-go is missing):
//!
//! ```no_run
//! use tether_tests::peer::{go_peer_available, json_field, GoPeer};
//! if !go_peer_available() {
//!     return;
//! }
//! let server = GoPeer::server(&["-crypt", "aes", "-mode", "fast3"]);
//! let addr = server.addr().to_string();
//! let out = GoPeer::run_client(&["-connect", &addr, "-role", "bulk", "-bytes", "1048576", "-mode", "fast3"]);
//! assert_eq!(json_field(&out, "sha256_sent"), json_field(&out, "sha256_received"));
//! ```
use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::{mpsc, Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Bound on waiting for a server's `listening <addr>` line.
pub const READY_LIMIT: Duration = Duration::from_secs(20);

/// Hard bound on a client run, on top of the peer's own `-timeout` (60 s by default).
pub const CLIENT_LIMIT: Duration = Duration::from_secs(600);

/// How much of a peer's stderr is kept for diagnostics (the tail).
const STDERR_KEEP: usize = 64 * 1024;

/// True when the Go peer can be built (Go and Debian's kcp-go are installed). Otherwise
/// returns `false` so the caller skips the test, or panics when `CI=true`
/// (see [`crate::go::require_peer`]).
pub fn go_peer_available() -> bool {
    crate::go::require_peer("kcp-go")
}

/// The `kcppeer` binary, built once per test process with [`crate::go::build_go`].
pub fn binary() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| crate::go::build_go("kcppeer")).clone()
}

/// A running `kcppeer` process, killed (and reaped) on drop.
///
/// The process is started with `-parentwatch` and a piped stdin, so it also exits by itself
/// if the test process dies without running destructors.
pub struct GoPeer {
    child: Child,
    addr: Option<SocketAddr>,
    _stdin: Option<ChildStdin>,
    stderr: Arc<Mutex<String>>,
}

/// Drains `r` into `sink`, keeping at most [`STDERR_KEEP`] bytes (the tail).
fn drain_into(mut r: impl Read + Send + 'static, sink: Arc<Mutex<String>>) {
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        loop {
            match r.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    let mut s = sink.lock().unwrap_or_else(|e| e.into_inner());
                    s.push_str(&String::from_utf8_lossy(&buf[..n]));
                    if s.len() > 2 * STDERR_KEEP {
                        let mut cut = s.len() - STDERR_KEEP;
                        while !s.is_char_boundary(cut) {
                            cut += 1;
                        }
                        s.drain(..cut);
                    }
                }
            }
        }
    });
}

impl GoPeer {
    /// Spawns `kcppeer -listen 127.0.0.1:0 -parentwatch -timeout 0 <args...>` (builds it first)
    /// and waits up to [`READY_LIMIT`] for its `listening <ip:port>` line. `args` come last,
    /// so they may override those defaults (Go's flag package keeps the last value).
    /// Panics if the process fails to start or never reports its address.
    pub fn server(args: &[&str]) -> GoPeer {
        let mut peer = Self::spawn(
            ["-listen", "127.0.0.1:0", "-parentwatch", "-timeout", "0"]
                .iter()
                .chain(args),
        );
        let stdout = peer.child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut line = String::new();
            let _ = reader.read_line(&mut line);
            let _ = tx.send(line);
            // The server prints nothing else; keep draining so it can never block on stdout.
            let _ = std::io::copy(&mut reader, &mut std::io::sink());
        });
        let line = match rx.recv_timeout(READY_LIMIT) {
            Ok(line) => line,
            Err(_) => panic!(
                "kcppeer server {args:?}: no `listening` line within {READY_LIMIT:?}; stderr:\n{}",
                peer.stderr()
            ),
        };
        let addr = line
            .trim_end()
            .strip_prefix("listening ")
            .and_then(|a| a.parse::<SocketAddr>().ok());
        match addr {
            Some(a) if a.port() != 0 => peer.addr = Some(a),
            _ => {
                // Give the process a moment to explain itself on stderr.
                let _ = peer.try_wait_for(Duration::from_millis(500));
                panic!(
                    "kcppeer server {args:?}: unexpected readiness line {line:?}; stderr:\n{}",
                    peer.stderr()
                );
            }
        }
        peer
    }

    fn spawn<'a>(args: impl IntoIterator<Item = &'a &'a str>) -> GoPeer {
        let bin = binary();
        let args: Vec<&str> = args.into_iter().copied().collect();
        let mut child = Command::new(&bin)
            .args(&args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {} {args:?}: {e}", bin.display()));
        let stderr = Arc::new(Mutex::new(String::new()));
        drain_into(child.stderr.take().expect("piped stderr"), stderr.clone());
        let stdin = child.stdin.take();
        GoPeer {
            child,
            addr: None,
            _stdin: stdin,
            stderr,
        }
    }

    /// The server's UDP address (from its readiness line). Panics for a client process.
    pub fn addr(&self) -> SocketAddr {
        self.addr.expect("a kcppeer server has an address")
    }

    /// The process id (for external CPU/RSS sampling).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What the process wrote to stderr so far (the last 64 KiB at least).
    pub fn stderr(&self) -> String {
        self.stderr
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn try_wait_for(&mut self, limit: Duration) -> Option<ExitStatus> {
        let start = Instant::now();
        loop {
            match self.child.try_wait() {
                Ok(Some(st)) => return Some(st),
                Ok(None) if start.elapsed() < limit => {
                    std::thread::sleep(Duration::from_millis(10))
                }
                _ => return None,
            }
        }
    }

    /// Starts a client (`args` must include `-connect ADDR` and `-role ...`) without waiting;
    /// finish it with [`GoPeer::wait_client`]. For benchmarks that sample the process.
    pub fn spawn_client(args: &[&str]) -> GoPeer {
        Self::spawn(args.iter().chain(&["-parentwatch"]))
    }

    /// Waits (at most [`CLIENT_LIMIT`]) for a client from [`GoPeer::spawn_client`] and returns
    /// its stdout, or `Err` with the exit status and stderr when it failed.
    pub fn wait_client(mut self) -> Result<String, String> {
        let mut stdout = self.child.stdout.take().expect("piped stdout");
        let reader = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = stdout.read_to_string(&mut s);
            s
        });
        let status = self.try_wait_for(CLIENT_LIMIT);
        let Some(status) = status else {
            let _ = self.child.kill();
            let _ = self.child.wait();
            return Err(format!(
                "kcppeer client still running after {CLIENT_LIMIT:?}; killed. stderr:\n{}",
                self.stderr()
            ));
        };
        let out = reader.join().unwrap_or_default();
        // stderr is drained by its own thread; give it a moment to see EOF.
        std::thread::sleep(Duration::from_millis(20));
        if status.success() {
            Ok(out)
        } else {
            Err(format!(
                "kcppeer client exited with {status}; stdout: {out:?}; stderr:\n{}",
                self.stderr()
            ))
        }
    }

    /// Runs a client role to completion (`args` must include `-connect ADDR` and
    /// `-role bulk|rtt|idle|source|sink`) and returns its stdout: one JSON line, read it with
    /// [`json_field`]. `Err` carries the exit status and stderr.
    pub fn try_run_client(args: &[&str]) -> Result<String, String> {
        Self::spawn_client(args).wait_client()
    }

    /// [`GoPeer::try_run_client`], panicking (with the peer's stderr) on failure.
    pub fn run_client(args: &[&str]) -> String {
        Self::try_run_client(args).unwrap_or_else(|e| panic!("kcppeer {args:?}: {e}"))
    }
}

impl Drop for GoPeer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The value of `key` in a flat JSON object such as kcppeer's output line: a string value
/// without its quotes (escapes `\"` and `\\` undone), any other value as written (a number,
/// `true`...). `None` when the key is absent.
pub fn json_field(s: &str, key: &str) -> Option<String> {
    let needle = format!("\"{key}\":");
    let at = s.find(&needle)? + needle.len();
    let rest = s[at..].trim_start();
    if let Some(body) = rest.strip_prefix('"') {
        let mut out = String::new();
        let mut chars = body.chars();
        while let Some(c) = chars.next() {
            match c {
                '"' => return Some(out),
                '\\' => out.push(chars.next()?),
                c => out.push(c),
            }
        }
        None
    } else {
        let end = rest.find([',', '}', '\n']).unwrap_or(rest.len());
        Some(rest[..end].trim().to_string())
    }
}

/// [`json_field`] parsed as a number.
pub fn json_f64(s: &str, key: &str) -> Option<f64> {
    json_field(s, key)?.parse().ok()
}

/// [`json_field`] parsed as an unsigned integer.
pub fn json_u64(s: &str, key: &str) -> Option<u64> {
    json_field(s, key)?.parse().ok()
}

/// The first `n` bytes of kcppeer's payload pattern for `seed` (the `-seed` flag): xorshift64
/// (`x ^= x << 13; x ^= x >> 7; x ^= x << 17`) starting at `seed` (0 is replaced by
/// `0x9E3779B97F4A7C15`), each new state emitted as 8 little-endian bytes.
pub fn pattern(seed: u64, n: usize) -> Vec<u8> {
    let mut x = if seed == 0 {
        0x9E37_79B9_7F4A_7C15
    } else {
        seed
    };
    let mut out = Vec::with_capacity(n + 8);
    while out.len() < n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(n);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest, Sha256};

    #[test]
    fn json_fields_are_read_exactly() {
        let s = r#"{"sent":4194304,"received":4194304,"sha256_sent":"ab\"c","sha256_received":"abc","seconds":1.500000}"#;
        assert_eq!(json_field(s, "sent").as_deref(), Some("4194304"));
        assert_eq!(json_field(s, "sha256_sent").as_deref(), Some("ab\"c"));
        assert_eq!(json_field(s, "sha256_received").as_deref(), Some("abc"));
        assert_eq!(json_f64(s, "seconds"), Some(1.5));
        assert_eq!(json_u64(s, "received"), Some(4_194_304));
        assert_eq!(json_field(s, "missing"), None);
    }

    #[test]
    fn pattern_matches_the_go_peer() {
        // sha256 of kcppeer's first 1_000_000 pattern bytes for -seed 1 (its sink/source output).
        let digest = Sha256::digest(pattern(1, 1_000_000));
        assert_eq!(
            hex::encode(digest),
            "b0c9ccec06641e21078b7501559e42dd8d08959bd4fd9cc63ae922867b28d8da"
        );
        assert_eq!(pattern(7, 13), pattern(7, 16)[..13]);
    }
}
