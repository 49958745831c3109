//! skywind3000's C ikcp as a live peer: `tests/py/ikcppeer.py` drives the `ikcp.c` that PyPI's
//! `kcp` 0.1.6 vendors (`pip install kcp==0.1.6`, done by `scripts/install-deps.sh`). The
//! flags, roles and output lines are documented at the top of that script.
//!
//! Gate a test with [`require_ikcp`] first: it skips locally and panics under `CI=true`
//! when python3 or the module is missing (the [`crate::go::require`] rule).
use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

/// The PyPI package and version whose `ikcp.c` the peer runs.
pub const KCP_PYPI: &str = "kcp==0.1.6";

/// Bound on waiting for a server's `listening <addr>` line.
const READY_LIMIT: Duration = Duration::from_secs(20);

/// The Python interpreter: `TETHER_PYTHON` if set, else `python3` from `PATH`.
pub fn python() -> PathBuf {
    std::env::var_os("TETHER_PYTHON").map_or_else(|| PathBuf::from("python3"), PathBuf::from)
}

/// `tests/py/ikcppeer.py`.
pub fn script() -> PathBuf {
    crate::go::workspace_root().join("tests/py/ikcppeer.py")
}

/// Why the ikcp peer cannot run, or `None` when python3 imports `kcp` 0.1.6.
pub fn ikcp_problem() -> Option<String> {
    let check = "import kcp, sys; sys.exit(0 if kcp.__version__ == '0.1.6' else 3)";
    match Command::new(python()).args(["-c", check]).output() {
        Err(e) => Some(format!("{} cannot be run ({e})", python().display())),
        Ok(o) if o.status.code() == Some(3) => Some(format!(
            "the python `kcp` module is not version 0.1.6: pip install {KCP_PYPI}"
        )),
        Ok(o) if !o.status.success() => Some(format!(
            "python cannot import `kcp` ({}): run scripts/install-deps.sh or pip install {KCP_PYPI}",
            String::from_utf8_lossy(&o.stderr).trim()
        )),
        Ok(_) => None,
    }
}

/// `true` when the ikcp peer can run; otherwise skips (returns `false`) or, with `CI=true`,
/// panics with the reason.
pub fn require_ikcp() -> bool {
    match ikcp_problem() {
        None => true,
        Some(why) => crate::go::require(false, "the C ikcp peer (python kcp 0.1.6)", &why),
    }
}

/// A running `ikcppeer.py`, killed on drop; stdout lines and stderr are collected.
pub struct IkcpPeer {
    child: Child,
    addr: Option<SocketAddr>,
    lines: mpsc::Receiver<String>,
    stderr: Arc<Mutex<String>>,
}

impl IkcpPeer {
    fn spawn(args: &[&str]) -> IkcpPeer {
        let mut child = Command::new(python())
            .arg(script())
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {} {}: {e}", python().display(), script().display()));
        let (tx, lines) = mpsc::channel();
        let out = child.stdout.take().expect("stdout");
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut err = child.stderr.take().expect("stderr");
        let sink = Arc::clone(&stderr);
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = err.read_to_string(&mut s);
            sink.lock().unwrap_or_else(|e| e.into_inner()).push_str(&s);
        });
        IkcpPeer {
            child,
            addr: None,
            lines,
            stderr,
        }
    }

    /// Starts a server (`--listen 127.0.0.1:0` plus `args`) and waits for its address.
    pub fn server(args: &[&str]) -> IkcpPeer {
        let mut all = vec!["--listen", "127.0.0.1:0"];
        all.extend_from_slice(args);
        let mut p = IkcpPeer::spawn(&all);
        let line = p.lines.recv_timeout(READY_LIMIT).unwrap_or_else(|_| {
            panic!(
                "ikcppeer server printed no `listening` line: {}",
                p.stderr()
            )
        });
        let addr = line
            .strip_prefix("listening ")
            .unwrap_or_else(|| panic!("unexpected readiness line {line:?}"));
        p.addr = Some(addr.parse().expect("listening address"));
        p
    }

    /// Starts a client (`--connect addr` plus `args`).
    pub fn client(addr: SocketAddr, args: &[&str]) -> IkcpPeer {
        let addr = addr.to_string();
        let mut all = vec!["--connect", addr.as_str()];
        all.extend_from_slice(args);
        IkcpPeer::spawn(&all)
    }

    /// The server's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr.expect("a server has an address")
    }

    /// The next stdout line (the JSON result), waiting at most `limit`.
    pub fn result(&mut self, limit: Duration) -> Result<String, String> {
        self.lines
            .recv_timeout(limit)
            .map_err(|_| format!("no result line within {limit:?}; stderr: {}", self.stderr()))
    }

    /// Waits at most `limit` for the process to exit 0.
    pub fn wait(&mut self, limit: Duration) -> Result<(), String> {
        let t = Instant::now();
        loop {
            if let Some(s) = self.child.try_wait().map_err(|e| e.to_string())? {
                return if s.success() {
                    Ok(())
                } else {
                    Err(format!("ikcppeer exited with {s}: {}", self.stderr()))
                };
            }
            if t.elapsed() > limit {
                return Err(format!("ikcppeer still running after {limit:?}"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// What the peer wrote to stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

impl Drop for IkcpPeer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
