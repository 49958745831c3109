//! Building the Go peers (`tests/go/kcppeer`, `tests/go/smuxpeer`) offline, as tests/src/go.rs does.
use std::path::{Path, PathBuf};
use std::process::Command;

use super::BenchError;

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("cli has a parent")
        .to_path_buf()
}

fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from) {
        Some(d) if d.is_absolute() => d,
        Some(d) => workspace_root().join(d),
        None => workspace_root().join("target"),
    }
}

/// tests/src/go.rs's environment: offline GOPATH mode against Debian's kcp-go sources.
fn go_command() -> Command {
    let gopath = std::env::var_os("TETHER_GOPATH").unwrap_or_else(|| "/usr/share/gocode".into());
    let mut c = Command::new("go");
    c.env("GO111MODULE", "off")
        .env("GOPATH", &gopath)
        .env("GOPROXY", "off")
        .env("GOFLAGS", "")
        .env("GOTOOLCHAIN", "local");
    if std::env::var_os("GOCACHE").is_none() {
        c.env("GOCACHE", target_dir().join("go-cache"));
    }
    c
}

/// Builds tests/go/kcppeer into <target>/go-bin/kcppeer.
pub fn build_kcppeer() -> Result<PathBuf, BenchError> {
    build_go_peer("kcppeer")
}

/// Builds tests/go/<name> into <target>/go-bin/<name> (`--<name> PATH` names a prebuilt one).
pub fn build_go_peer(name: &str) -> Result<PathBuf, BenchError> {
    check_go(name)?;
    let src = workspace_root().join("tests/go").join(name);
    if !src.is_dir() {
        return Err(BenchError::NoPeer(format!(
            "no Go peer sources at {}; pass --{name} PATH",
            src.display()
        )));
    }
    let bindir = target_dir().join("go-bin");
    std::fs::create_dir_all(&bindir)
        .map_err(|e| BenchError::Failed(format!("creating {}: {e}", bindir.display())))?;
    let out = bindir.join(name);
    let tmp = bindir.join(format!(".{name}.{}.tmp", std::process::id()));
    go_build(&src, &tmp)?;
    std::fs::rename(&tmp, &out).map_err(|e| {
        BenchError::Failed(format!(
            "moving {} to {}: {e}",
            tmp.display(),
            out.display()
        ))
    })?;
    Ok(out)
}

/// Whether `go` runs at all (`name`: the peer, for the flag that names a prebuilt one).
fn check_go(name: &str) -> Result<(), BenchError> {
    match go_command().arg("version").output() {
        Err(e) => Err(BenchError::NoPeer(format!(
            "`go` cannot be run ({e}); run scripts/install-deps.sh (Debian's golang-go, kcp-go and smux), or pass --{name} PATH"
        ))),
        Ok(o) if !o.status.success() => Err(BenchError::NoPeer(format!(
            "`go version` failed: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        ))),
        Ok(_) => Ok(()),
    }
}

/// `go build -o out` in `src` (`out` removed again on failure).
fn go_build(src: &Path, out: &Path) -> Result<(), BenchError> {
    let o = go_command()
        .current_dir(src)
        .arg("build")
        .arg("-o")
        .arg(out)
        .arg(".")
        .output()
        .map_err(|e| BenchError::NoPeer(format!("cannot run `go build`: {e}")))?;
    if o.status.success() {
        return Ok(());
    }
    let _ = std::fs::remove_file(out);
    Err(BenchError::NoPeer(format!(
        "`go build` of {} failed ({}; are golang-github-xtaci-kcp-dev and golang-github-xtaci-smux-dev installed?):\n{}{}",
        src.display(),
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )))
}
