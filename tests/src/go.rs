//! Building our Go peers (`tests/go/<name>`) OFFLINE, in GOPATH mode, against Debian's
//! packaged Go sources (`/usr/share/gocode`, e.g. `golang-github-xtaci-kcp-dev` for kcp-go
//! 5.6.1), and deciding whether a test that needs them runs, skips or fails.
//!
//! Environment used for every `go` invocation:
//! `GO111MODULE=off GOPATH=/usr/share/gocode GOPROXY=off GOFLAGS= GOTOOLCHAIN=local`, and
//! `GOCACHE=<target>/go-cache` unless `GOCACHE` is already set. Set `TETHER_GOPATH` to use
//! another GOPATH holding the same sources.
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

/// Debian's GOPATH with the packaged Go sources.
pub const DEBIAN_GOPATH: &str = "/usr/share/gocode";

/// The GOPATH used for builds: `TETHER_GOPATH` if set, else [`DEBIAN_GOPATH`].
pub fn gopath() -> PathBuf {
    std::env::var_os("TETHER_GOPATH")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEBIAN_GOPATH))
}

/// The workspace root (parent of this crate's directory).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests crate has a parent")
        .to_path_buf()
}

/// Cargo's target directory (`CARGO_TARGET_DIR` if set, else `<root>/target`).
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(d) => {
            let d = PathBuf::from(d);
            if d.is_absolute() {
                d
            } else {
                workspace_root().join(d)
            }
        }
        None => workspace_root().join("target"),
    }
}

/// True when `CI=true`: missing peers are then failures, not skips.
pub fn in_ci() -> bool {
    std::env::var("CI").map(|v| v == "true").unwrap_or(false)
}

fn go_command() -> Command {
    let mut c = Command::new("go");
    c.env("GO111MODULE", "off")
        .env("GOPATH", gopath())
        .env("GOPROXY", "off")
        .env("GOFLAGS", "")
        .env("GOTOOLCHAIN", "local");
    if std::env::var_os("GOCACHE").is_none() {
        c.env("GOCACHE", target_dir().join("go-cache"));
    }
    c
}

/// Why the Go environment is unusable, or `None` when `go` runs and kcp-go's sources exist.
pub fn go_env_problem() -> Option<String> {
    match go_command().arg("version").output() {
        Err(e) => {
            return Some(format!(
                "`go` cannot be run ({e}): install Debian's golang-go"
            ))
        }
        Ok(o) if !o.status.success() => {
            return Some(format!(
                "`go version` failed ({}): {}",
                o.status,
                String::from_utf8_lossy(&o.stderr).trim()
            ))
        }
        Ok(_) => {}
    }
    let kcp = gopath().join("src/github.com/xtaci/kcp-go/kcp.go");
    if !kcp.is_file() {
        return Some(format!(
            "kcp-go sources not found at {}: install golang-github-xtaci-kcp-dev",
            kcp.display()
        ));
    }
    None
}

/// True when `go` runs and Debian's kcp-go sources are installed.
pub fn go_env_ok() -> bool {
    go_env_problem().is_none()
}

/// Gate for tests that need an external peer: `true` when `available`. Otherwise, with
/// `CI=true` it panics (a CI job must never silently skip); elsewhere it prints why the test
/// is skipped and returns `false`.
pub fn require(available: bool, what: &str, why_missing: &str) -> bool {
    if available {
        return true;
    }
    if in_ci() {
        panic!("CI=true but {what} is not available: {why_missing}");
    }
    eprintln!(
        "SKIPPED: {what} is not available ({why_missing}); set CI=true to make this an error"
    );
    false
}

/// Gate for tests that need the Go toolchain and Debian's kcp-go (see [`go_env_ok`]);
/// `what` names the peer for the message. Returns `false` (caller returns early, the test is
/// skipped) only when `CI` is not `true`; panics with the reason when `CI=true`.
pub fn require_peer(what: &str) -> bool {
    match go_env_problem() {
        None => true,
        Some(why) => require(false, what, &why),
    }
}

static BUILD_LOCK: Mutex<()> = Mutex::new(());

/// Builds `tests/go/<program_dir_name>` into `<target>/go-bin/<program_dir_name>` and returns
/// the binary's path. Panics with go's output if the build fails.
pub fn build_go(program_dir_name: &str) -> PathBuf {
    let _guard = BUILD_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let src = workspace_root().join("tests/go").join(program_dir_name);
    assert!(src.is_dir(), "no Go program at {}", src.display());
    let bindir = target_dir().join("go-bin");
    std::fs::create_dir_all(&bindir)
        .unwrap_or_else(|e| panic!("creating {}: {e}", bindir.display()));
    let out = bindir.join(program_dir_name);
    // Build to a private name and rename, so concurrent test binaries never run a half-written file.
    let tmp = bindir.join(format!(".{program_dir_name}.{}.tmp", std::process::id()));
    let o = go_command()
        .current_dir(&src)
        .arg("build")
        .arg("-o")
        .arg(&tmp)
        .arg(".")
        .output()
        .unwrap_or_else(|e| panic!("cannot run `go build` for {}: {e}", src.display()));
    if !o.status.success() {
        let _ = std::fs::remove_file(&tmp);
        panic!(
            "`go build` of {} failed ({}):\n{}{}",
            src.display(),
            o.status,
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
    }
    std::fs::rename(&tmp, &out)
        .unwrap_or_else(|e| panic!("moving {} to {}: {e}", tmp.display(), out.display()));
    out
}
