//! Building the kcp-go peer `tests/go/kcppeer` offline, as tests/src/go.rs does.
use std::path::{Path, PathBuf};
use std::process::Command;

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

/// Builds tests/go/kcppeer into <target>/go-bin/kcppeer. `Err((2, _))`: no usable Go.
pub fn build_kcppeer() -> Result<PathBuf, (i32, String)> {
    match go_command().arg("version").output() {
        Err(e) => {
            return Err((
                2,
                format!("`go` cannot be run ({e}); install Debian's golang-go and golang-github-xtaci-kcp-dev, or pass --kcppeer PATH"),
            ))
        }
        Ok(o) if !o.status.success() => {
            return Err((2, format!("`go version` failed: {}", String::from_utf8_lossy(&o.stderr).trim())))
        }
        Ok(_) => {}
    }
    let src = workspace_root().join("tests/go/kcppeer");
    if !src.is_dir() {
        return Err((
            2,
            format!(
                "no Go peer sources at {}; pass --kcppeer PATH",
                src.display()
            ),
        ));
    }
    let bindir = target_dir().join("go-bin");
    std::fs::create_dir_all(&bindir)
        .map_err(|e| (1, format!("creating {}: {e}", bindir.display())))?;
    let out = bindir.join("kcppeer");
    let tmp = bindir.join(format!(".kcppeer.{}.tmp", std::process::id()));
    let o = go_command()
        .current_dir(&src)
        .arg("build")
        .arg("-o")
        .arg(&tmp)
        .arg(".")
        .output()
        .map_err(|e| (2, format!("cannot run `go build`: {e}")))?;
    if !o.status.success() {
        let _ = std::fs::remove_file(&tmp);
        return Err((
            2,
            format!(
                "`go build` of {} failed ({}; is golang-github-xtaci-kcp-dev installed?):\n{}{}",
                src.display(),
                o.status,
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            ),
        ));
    }
    std::fs::rename(&tmp, &out).map_err(|e| {
        (
            1,
            format!("moving {} to {}: {e}", tmp.display(), out.display()),
        )
    })?;
    Ok(out)
}
