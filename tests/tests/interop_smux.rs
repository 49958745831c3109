//! Live smux interop over loopback: Go's xtaci/smux 1.5.16 (Debian's
//! `golang-github-xtaci-smux-dev`, through our `tests/go/smuxpeer`) against `tether smux`, v1
//! and v2, both directions (Go server ← tether client, tether server ← Go client), over TCP and
//! over a KCP session (kcp-go + smux on the Go side, kcptun's settings); plus Go ↔ Go and
//! yamux ↔ yamux (`tether bench-yamux-peer`) sanity rows, and the two plain-TCP floor peers
//! of `tether bench-smux` (no multiplexer: one connection per stream). Every case: 16 streams
//! opened at once on one session, 4 MiB echoed on each, checked byte for byte by the client,
//! which prints `16 streams x 4194304 bytes match=true X MB/s` and exits 0. `tether smux` also runs
//! against itself in every dialect (v1, v2, seed) over both transports.
//!
//! All peers share `tether smux`'s command line (issue 16, item 5), documented at the top of
//! `tests/go/smuxpeer/main.go`; an echo server prints `listening <ip:port>` as its first
//! stdout line.
//!
//! In CI (`CI=true`) a missing Go toolchain, kcp-go or smux fails these tests; it never skips.
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{mpsc, OnceLock};
use std::time::{Duration, Instant};

use tether_tests::go::{build_go, gopath, require, require_peer, target_dir};
use tether_tests::tether_bin::{tether_bin, KillOnDrop};

const STREAMS: usize = 16;
const BYTES: u64 = 4 << 20;
/// The client's own `--timeout` (seconds); the harness kills it a little later.
const CLIENT_TIMEOUT: u64 = 60;
/// Bound on a server's `listening` line.
const READY_LIMIT: Duration = Duration::from_secs(20);

/// kcptun's session settings for the KCP rows: its default cipher and FEC, fast3, large
/// windows (both sides pass the same flags, as kcptun requires).
const KCP_FLAGS: [&str; 16] = [
    "--crypt",
    "aes",
    "--key",
    "tether smux interop",
    "--mode",
    "fast3",
    "--mtu",
    "1350",
    "--sndwnd",
    "1024",
    "--rcvwnd",
    "1024",
    "--datashard",
    "10",
    "--parityshard",
    "3",
];

/// Who runs one side of a case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Peer {
    /// `tests/go/smuxpeer` (xtaci/smux 1.5.16).
    Go,
    /// `tether smux` (the lead's subcommand, issue 16 item 5).
    Tether,
    /// `tether bench-yamux-peer` (the yamux crate; TCP only, no dialect).
    Yamux,
    /// `tether bench-yamux-peer --plain`: no multiplexer, one TCP connection per stream (the
    /// floor row of `tether bench-smux`).
    Plain,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Transport {
    Tcp,
    Kcp,
}

/// The Go peer, built once per test process; `None` (test skipped) when Go, kcp-go or smux
/// is missing outside CI; a panic in CI.
fn smuxpeer() -> Option<PathBuf> {
    let smux = gopath().join("src/github.com/xtaci/smux/session.go");
    let ok = require_peer("xtaci/smux + kcp-go")
        && require(
            smux.is_file(),
            "xtaci/smux",
            "install Debian's golang-github-xtaci-smux-dev (scripts/install-deps.sh)",
        );
    if !ok {
        return None;
    }
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    Some(BIN.get_or_init(|| build_go("smuxpeer")).clone())
}

/// `peer`'s `role` command with the dialect and transport flags.
fn command(peer: Peer, role: &str, dialect: Option<&str>, t: Transport) -> Command {
    let mut c = match peer {
        Peer::Go => Command::new(smuxpeer().expect("checked by the case")),
        Peer::Tether => {
            let mut c = Command::new(tether_bin());
            c.arg("smux");
            c
        }
        Peer::Yamux | Peer::Plain => {
            let mut c = Command::new(tether_bin());
            c.arg("bench-yamux-peer");
            if peer == Peer::Plain {
                c.arg("--plain");
            }
            c
        }
    };
    c.arg(role);
    if let Some(d) = dialect {
        c.args(["--dialect", d]);
    }
    match t {
        Transport::Tcp => c.args(["--transport", "tcp"]),
        Transport::Kcp => c.args(["--transport", "kcp"]).args(KCP_FLAGS),
    };
    c
}

/// A file for a process's stderr, read back when the case fails.
fn log_file(what: &str) -> (PathBuf, File) {
    static SEQ: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = target_dir().join("interop-smux");
    std::fs::create_dir_all(&dir).expect("log directory");
    let path = dir.join(format!("{what}-{}-{n}.log", std::process::id()));
    let f = File::create(&path).expect("log file");
    (path, f)
}

fn read_log(path: &PathBuf) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// Starts `peer`'s echo server on an ephemeral loopback port; the process and its address.
fn start_server(peer: Peer, dialect: Option<&str>, t: Transport) -> (KillOnDrop, String, PathBuf) {
    let (log, err) = log_file("server");
    let mut cmd = command(peer, "echo-server", dialect, t);
    cmd.args(["-l", "127.0.0.1:0"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(err);
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("spawning {cmd:?}: {e}"));
    let stdout = child.stdout.take().expect("piped stdout");
    let server = KillOnDrop(child);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut r = BufReader::new(stdout);
        let mut line = String::new();
        let _ = r.read_line(&mut line);
        let _ = tx.send(line);
        let _ = std::io::copy(&mut r, &mut std::io::sink());
    });
    let line = rx.recv_timeout(READY_LIMIT).unwrap_or_default();
    let Some(addr) = line.trim_end().strip_prefix("listening ") else {
        panic!(
            "{peer:?} echo server printed {line:?}, not `listening <addr>`; stderr:\n{}",
            read_log(&log)
        );
    };
    (server, addr.to_string(), log)
}

/// Runs `peer`'s client against `addr` to its end (bounded); its stdout, or why it failed.
fn run_client(
    peer: Peer,
    dialect: Option<&str>,
    t: Transport,
    addr: &str,
) -> Result<String, String> {
    let (log, err) = log_file("client");
    let mut cmd = command(peer, "client", dialect, t);
    cmd.args(["-r", addr])
        .args(["--streams", &STREAMS.to_string()])
        .args(["--bytes", &BYTES.to_string()])
        .args(["--timeout", &CLIENT_TIMEOUT.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(err);
    let child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("spawning {cmd:?}: {e}"));
    let mut client = KillOnDrop(child);
    let limit = Duration::from_secs(CLIENT_TIMEOUT + 15);
    let start = Instant::now();
    let status = loop {
        if let Some(st) = client.0.try_wait().expect("wait for the client") {
            break st;
        }
        if start.elapsed() > limit {
            return Err(format!(
                "the {peer:?} client did not finish within {limit:?}; stderr:\n{}",
                read_log(&log)
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut out = String::new();
    if let Some(mut s) = client.0.stdout.take() {
        let _ = s.read_to_string(&mut out);
    }
    if !status.success() {
        return Err(format!(
            "the {peer:?} client failed ({status}); stdout {out:?}; stderr:\n{}",
            read_log(&log)
        ));
    }
    Ok(out)
}

/// One case: `server`'s echo server, `client`'s client, the echo checked.
fn echo_case(server: Peer, client: Peer, dialect: Option<&str>, t: Transport) {
    if (server == Peer::Go || client == Peer::Go) && smuxpeer().is_none() {
        return;
    }
    let (srv, addr, srv_log) = start_server(server, dialect, t);
    let out = run_client(client, dialect, t, &addr).unwrap_or_else(|e| {
        panic!(
            "{client:?} client → {server:?} server ({dialect:?}, {t:?}): {e}\nserver stderr:\n{}",
            read_log(&srv_log)
        )
    });
    drop(srv);
    let lines: Vec<&str> = out.lines().collect();
    let want = format!("{STREAMS} streams x {BYTES} bytes match=true ");
    assert!(
        lines.len() == 1 && lines[0].starts_with(&want) && lines[0].ends_with(" MB/s"),
        "{client:?} client → {server:?} server ({dialect:?}, {t:?}): expected one line \
         `{want}X MB/s`, got {out:?}"
    );
    eprintln!(
        "{client:?} client → {server:?} server ({dialect:?}, {t:?}): {}",
        lines[0]
    );
}

/// Declares one test per row `name: SERVER <- CLIENT, DIALECT, TRANSPORT;`, each with the
/// attributes in the leading `[…]`.
macro_rules! echo_rows {
    ([$($attr:meta),*] $name:ident: $server:ident <- $client:ident, $dialect:expr, $t:ident; $($rest:tt)*) => {
        #[test]
        $(#[$attr])*
        fn $name() {
            echo_case(Peer::$server, Peer::$client, $dialect, Transport::$t);
        }
        echo_rows!([$($attr),*] $($rest)*);
    };
    ([$($attr:meta),*]) => {};
}

// ---------------------------------------------------------------- the peers with themselves (sanity)

echo_rows! { []
    go_to_go_v1_tcp: Go <- Go, Some("v1"), Tcp;
    go_to_go_v2_tcp: Go <- Go, Some("v2"), Tcp;
    go_to_go_v1_kcp: Go <- Go, Some("v1"), Kcp;
    go_to_go_v2_kcp: Go <- Go, Some("v2"), Kcp;
    yamux_to_yamux_tcp: Yamux <- Yamux, None, Tcp;
    // The floor rows of `tether bench-smux`: plain TCP, one connection per stream.
    go_plain_tcp: Go <- Go, Some("raw"), Tcp;
    rust_plain_tcp: Plain <- Plain, None, Tcp;
}

// ---------------------------------------------------------------- tether with Go, and with itself

echo_rows! { []
    go_server_tether_client_v1_tcp: Go <- Tether, Some("v1"), Tcp;
    go_server_tether_client_v2_tcp: Go <- Tether, Some("v2"), Tcp;
    tether_server_go_client_v1_tcp: Tether <- Go, Some("v1"), Tcp;
    tether_server_go_client_v2_tcp: Tether <- Go, Some("v2"), Tcp;
    go_server_tether_client_v1_kcp: Go <- Tether, Some("v1"), Kcp;
    go_server_tether_client_v2_kcp: Go <- Tether, Some("v2"), Kcp;
    tether_server_go_client_v1_kcp: Tether <- Go, Some("v1"), Kcp;
    tether_server_go_client_v2_kcp: Tether <- Go, Some("v2"), Kcp;
    tether_to_tether_v1_tcp: Tether <- Tether, Some("v1"), Tcp;
    tether_to_tether_v2_tcp: Tether <- Tether, Some("v2"), Tcp;
    tether_to_tether_seed_tcp: Tether <- Tether, Some("seed"), Tcp;
    tether_to_tether_v1_kcp: Tether <- Tether, Some("v1"), Kcp;
    tether_to_tether_v2_kcp: Tether <- Tether, Some("v2"), Kcp;
    tether_to_tether_seed_kcp: Tether <- Tether, Some("seed"), Kcp;
}
