//! The `tether` binary for tests that run it as a user would, and a running `tether netem`.
//!
//! The binary is found next to the test's own executable (`target/<profile>/tether`) and
//! built with `cargo build -p tether-cli` first (a no-op when it is fresh); set
//! `TETHER_BIN=/path/to/tether` to use another one. A failed or timed-out build fails the
//! test: a binary left by an earlier build is never used in its place.
use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStderr, Command, Stdio};
use std::sync::{mpsc, OnceLock};
use std::time::{Duration, Instant};

/// Bound on building the binary (a fresh workspace build of the CLI included).
const BUILD_LIMIT: Duration = Duration::from_secs(600);
/// Bound on waiting for a readiness line or for the process to exit.
const PROCESS_LIMIT: Duration = Duration::from_secs(20);

/// A spawned process, killed and reaped when the test ends, however it ends.
#[derive(Debug)]
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The `tether` binary, built once per test process.
pub fn tether_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(path) = std::env::var_os("TETHER_BIN") {
            return PathBuf::from(path);
        }
        // <target>/<profile>/deps/go_peer_smoke-<hash>
        let exe = std::env::current_exe().expect("current_exe");
        let profile_dir = exe
            .parent()
            .and_then(|deps| deps.parent())
            .expect("test executable lives in <target>/<profile>/deps");
        let target_dir = profile_dir.parent().expect("<target>");
        let profile = profile_dir
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("debug")
            .to_string();
        let bin = profile_dir.join(format!("tether{}", std::env::consts::EXE_SUFFIX));
        build_tether(&profile, target_dir, &bin);
        assert!(bin.exists(), "{} was not built", bin.display());
        bin
    })
    .clone()
}

/// `cargo build -p tether-cli` into the same target directory and profile, bounded.
fn build_tether(profile: &str, target_dir: &Path, bin: &Path) {
    let cargo = std::env::var_os("CARGO")
        .or_else(|| option_env!("CARGO").map(Into::into))
        .unwrap_or_else(|| "cargo".into());
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml");
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "--quiet", "-p", "tether-cli", "--bin", "tether"])
        .arg("--manifest-path")
        .arg(&manifest)
        .env("CARGO_TARGET_DIR", target_dir)
        .stdin(Stdio::null());
    if profile != "debug" {
        cmd.args(["--profile", profile]);
    }
    if let Err(e) = run_build(cmd, bin, BUILD_LIMIT) {
        panic!("{e}");
    }
}

/// Runs the build command `cmd` (bounded by `limit`) that should produce `bin`. A failed or
/// timed-out build is an error even when `bin` exists: that file is from an earlier build
/// and would test old code.
fn run_build(mut cmd: Command, bin: &Path, limit: Duration) -> Result<(), String> {
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot start cargo build -p tether-cli: {e}"))?;
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("wait for cargo build") {
            if status.success() {
                return Ok(());
            }
            return Err(format!(
                "cargo build -p tether-cli failed ({status}); {} may be stale, so the test \
                 stops here (fix the build, or set TETHER_BIN to a binary to test)",
                bin.display()
            ));
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!(
                "cargo build -p tether-cli did not finish within {limit:?}; not using {}, \
                 which may be stale (set TETHER_BIN to a binary to test)",
                bin.display()
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A running `tether netem`, killed on drop.
#[derive(Debug)]
pub struct Netem {
    child: Child,
    /// The address clients send to.
    pub listen: SocketAddr,
}

impl Netem {
    /// Spawns `tether netem --listen 127.0.0.1:0 --forward <forward> <extra...>` and waits
    /// for its readiness line.
    pub fn spawn(forward: SocketAddr, extra: &[&str]) -> Self {
        let mut child = Command::new(tether_bin())
            .args(["netem", "--listen", "127.0.0.1:0", "--forward"])
            .arg(forward.to_string())
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn tether netem");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        // Kill the child if the line never comes (the guard's drop does it).
        let mut netem = Netem {
            child,
            listen: "0.0.0.0:0".parse().unwrap(),
        };
        let line = rx
            .recv_timeout(PROCESS_LIMIT)
            .expect("no readiness line from tether netem");
        let rest = line
            .trim_end()
            .strip_prefix("netem listening on ")
            .unwrap_or_else(|| panic!("unexpected readiness line {line:?}"));
        let (listen, fwd) = rest
            .split_once(" forwarding to ")
            .unwrap_or_else(|| panic!("unexpected readiness line {line:?}"));
        netem.listen = listen.parse().expect("listen address");
        assert_ne!(netem.listen.port(), 0, "the actual port is printed");
        assert_eq!(fwd.parse::<SocketAddr>().unwrap(), forward);
        netem
    }

    /// Waits (bounded) for the process to exit by itself and returns its stderr.
    pub fn wait_for_exit(mut self) -> String {
        let mut stderr: ChildStderr = self.child.stderr.take().expect("stderr");
        let reader = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text);
            text
        });
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                assert!(status.success(), "tether netem exited with {status}");
                break;
            }
            assert!(
                start.elapsed() < PROCESS_LIMIT,
                "tether netem did not stop after --duration"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        reader.join().expect("stderr reader")
    }
}

impl Drop for Netem {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A binary left by an earlier build, as `target/debug/tether` is after a good build.
    fn stale_binary() -> PathBuf {
        let path = std::env::temp_dir().join(format!("tether-stale-{}", std::process::id()));
        std::fs::write(&path, b"an old build").unwrap();
        path
    }

    #[test]
    fn a_failed_build_is_an_error_even_with_an_old_binary_present() {
        let bin = stale_binary();
        let err = run_build(Command::new("false"), &bin, BUILD_LIMIT)
            .expect_err("a failed build must not fall back to the old binary");
        assert!(err.contains("failed") && err.contains("stale"), "{err}");
        let _ = std::fs::remove_file(bin);
    }

    #[test]
    fn a_build_that_times_out_is_an_error_even_with_an_old_binary_present() {
        let bin = stale_binary();
        let mut sleep = Command::new("sleep");
        sleep.arg("5");
        let err = run_build(sleep, &bin, Duration::from_millis(200))
            .expect_err("a timed-out build must not fall back to the old binary");
        assert!(err.contains("did not finish"), "{err}");
        let _ = std::fs::remove_file(bin);
    }

    #[test]
    fn a_successful_build_is_used() {
        let bin = stale_binary();
        assert_eq!(run_build(Command::new("true"), &bin, BUILD_LIMIT), Ok(()));
        let _ = std::fs::remove_file(bin);
    }
}
