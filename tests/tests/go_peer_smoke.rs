//! Smoke tests of the kcp-go peer (`tests/go/kcppeer`, driven by `tether_tests::peer`):
//! a Go client and a Go server, kcptun-configured (crypt aes, FEC 10/3, mode fast3), move
//! 4 MiB full duplex over loopback, directly and through `tether netem` (5% loss, 30 ms
//! one-way delay), and the echoed bytes must hash like the sent ones.
//!
//! The `tether` binary is found next to this test's executable (`target/<profile>/tether`)
//! and built with `cargo build -p tether-cli` first, as in `netem_cli.rs`; set
//! `TETHER_BIN=/path/to/tether` to use another one.
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, OnceLock};
use std::time::{Duration, Instant};

use tether_tests::peer::{go_peer_available, json_f64, json_field, json_u64, GoPeer};

/// Bound on building the `tether` binary.
const BUILD_LIMIT: Duration = Duration::from_secs(600);
/// Bound on waiting for netem's readiness line.
const READY_LIMIT: Duration = Duration::from_secs(20);
/// 4 MiB.
const BULK_BYTES: &str = "4194304";
/// kcptun settings shared by both peers.
const KCPTUN: &[&str] = &[
    "-crypt",
    "aes",
    "-datashard",
    "10",
    "-parityshard",
    "3",
    "-mode",
    "fast3",
];

/// The `tether` binary, built once per test process.
fn tether_bin() -> PathBuf {
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
    let mut child = cmd.spawn().expect("spawn cargo build");
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("wait for cargo build") {
            assert!(
                status.success() || bin.exists(),
                "cargo build -p tether-cli failed: {status}"
            );
            return;
        }
        if start.elapsed() > BUILD_LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            assert!(bin.exists(), "cargo build -p tether-cli timed out");
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A running `tether netem`, killed on drop.
struct Netem {
    child: Child,
    listen: SocketAddr,
}

impl Netem {
    /// Spawns `tether netem --listen 127.0.0.1:0 --forward <forward> <extra...>` and waits
    /// for `netem listening on <addr> forwarding to <addr>`.
    fn spawn(forward: SocketAddr, extra: &[&str]) -> Self {
        let mut child = Command::new(tether_bin())
            .args(["netem", "--listen", "127.0.0.1:0", "--forward"])
            .arg(forward.to_string())
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn tether netem");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut line = String::new();
            let _ = reader.read_line(&mut line);
            let _ = tx.send(line);
            let _ = std::io::copy(&mut reader, &mut std::io::sink());
        });
        let mut netem = Netem {
            child,
            listen: "0.0.0.0:0".parse().unwrap(),
        };
        let line = rx
            .recv_timeout(READY_LIMIT)
            .expect("no readiness line from tether netem");
        let (listen, fwd) = line
            .trim_end()
            .strip_prefix("netem listening on ")
            .and_then(|rest| rest.split_once(" forwarding to "))
            .unwrap_or_else(|| panic!("unexpected readiness line {line:?}"));
        netem.listen = listen.parse().expect("listen address");
        assert_eq!(fwd.parse::<SocketAddr>().unwrap(), forward);
        netem
    }
}

impl Drop for Netem {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs the bulk client against `to`, checks the digests, and returns the client's output.
fn bulk(label: &str, to: SocketAddr, extra: &[&str]) -> String {
    let to = to.to_string();
    let mut args = vec![
        "-connect",
        to.as_str(),
        "-role",
        "bulk",
        "-bytes",
        BULK_BYTES,
    ];
    args.extend_from_slice(KCPTUN);
    args.extend_from_slice(extra);
    let start = Instant::now();
    let out = GoPeer::run_client(&args);
    let wall = start.elapsed();
    println!(
        "{label}: wall {:.3} s (process), transfer {:.3} s (after the hello): {}",
        wall.as_secs_f64(),
        json_f64(&out, "seconds").unwrap_or(f64::NAN),
        out.trim()
    );
    assert_eq!(json_u64(&out, "sent"), Some(4 << 20), "{out}");
    assert_eq!(json_u64(&out, "received"), Some(4 << 20), "{out}");
    let sent = json_field(&out, "sha256_sent").expect("sha256_sent");
    assert_eq!(sent.len(), 64, "{out}");
    assert_eq!(json_field(&out, "sha256_received"), Some(sent), "{out}");
    out
}

#[test]
fn go_client_and_go_server_move_4mib_over_loopback() {
    if !go_peer_available() {
        return;
    }
    let server = GoPeer::server(KCPTUN);
    bulk("loopback", server.addr(), &[]);
}

#[test]
fn go_client_and_go_server_move_4mib_through_netem_with_loss_and_delay() {
    if !go_peer_available() {
        return;
    }
    let server = GoPeer::server(KCPTUN);
    let netem = Netem::spawn(
        server.addr(),
        &["--loss", "5%", "--delay", "30ms", "--seed", "1", "--quiet"],
    );
    bulk(
        "netem 5% loss, 30 ms delay",
        netem.listen,
        &["-timeout", "120s"],
    );
    drop(netem);
}
