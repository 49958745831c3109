//! `tether cat --proto kcp-raw` ⇄ skywind3000's C ikcp (PyPI `kcp` 0.1.6's `ikcp.c`, driven
//! by `tests/py/ikcppeer.py`) over loopback UDP: both directions, message and stream
//! framing, 4 MiB, sha256 compared; directly, through `tether netem` at 5 % loss, and with
//! MTUs that differ (1200 vs 1400 both ways). Cases run in parallel.
//!
//! In CI (`CI=true`) a missing python3 or `kcp` module fails these tests; never skips them.
use std::io::{Read, Write};
use std::net::{SocketAddr, UdpSocket};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use tether_tests::ikcp::{require_ikcp, IkcpPeer};
use tether_tests::peer::{json_field, pattern};
use tether_tests::tether_bin::{tether_bin, Netem};

const BYTES: usize = 4 << 20;
const LIMIT: Duration = Duration::from_secs(120);

#[derive(Debug, Clone, Copy, PartialEq)]
enum Dir {
    /// `tether cat --connect` → ikcp sink server.
    TetherToIkcp,
    /// ikcp source client → `tether cat --listen`.
    IkcpToTether,
}

#[derive(Debug, Clone, Copy)]
struct Case {
    dir: Dir,
    message: bool,
    lossy: bool,
    tether_mtu: u32,
    ikcp_mtu: u32,
    /// `--kcp-flavor ikcp` on the tether side.
    ikcp_flavor: bool,
}

impl Case {
    fn framing(&self) -> &'static str {
        if self.message {
            "message"
        } else {
            "stream"
        }
    }

    fn ikcp_args(&self) -> Vec<String> {
        [
            "--framing",
            self.framing(),
            "--mtu",
            &self.ikcp_mtu.to_string(),
            "--bytes",
            &BYTES.to_string(),
            "--nodelay",
            "1",
            "--interval",
            "10",
            "--resend",
            "2",
            "--nc",
            "1",
            "--sndwnd",
            "1024",
            "--rcvwnd",
            "1024",
            "--timeout",
            "120",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    }

    fn tether_args(&self) -> Vec<String> {
        let mut v: Vec<String> = [
            "cat",
            "-q",
            "--proto",
            "kcp-raw",
            "--mode",
            "fast3",
            "--mtu",
            &self.tether_mtu.to_string(),
            "--linger",
            "3s",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        if self.message {
            v.push("--message".into());
        }
        if self.ikcp_flavor {
            v.extend(["--kcp-flavor".into(), "ikcp".into()]);
        }
        v
    }
}

fn netem(to: SocketAddr, lossy: bool) -> Option<Netem> {
    lossy.then(|| {
        Netem::spawn(
            to,
            &["--loss", "5%", "--delay", "10ms", "--seed", "5", "--quiet"],
        )
    })
}

fn wait_exit(child: &mut std::process::Child, limit: Duration) -> Result<(), String> {
    let t = Instant::now();
    loop {
        if let Some(s) = child.try_wait().map_err(|e| e.to_string())? {
            return if s.success() {
                Ok(())
            } else {
                Err(format!("tether cat exited with {s}"))
            };
        }
        if t.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("tether cat still running after {limit:?}"));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// tether cat reads `data` from stdin and sends it to an ikcp sink.
fn tether_to_ikcp(case: Case) -> Result<(), String> {
    let args = case.ikcp_args();
    let mut peer_args: Vec<&str> = args.iter().map(String::as_str).collect();
    peer_args.extend(["--role", "sink", "--linger", "2"]);
    let mut peer = IkcpPeer::server(&peer_args);
    let net = netem(peer.addr(), case.lossy);
    let to = net.as_ref().map_or(peer.addr(), |n| n.listen);
    let data = pattern(11, BYTES);
    let mut cat = Command::new(tether_bin())
        .args(case.tether_args())
        .args(["--connect", &to.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    let mut stdin = cat.stdin.take().expect("stdin");
    let want = hex::encode(Sha256::digest(&data));
    let writer = std::thread::spawn(move || stdin.write_all(&data));
    let line = peer.result(LIMIT)?;
    let got = json_field(&line, "sha256_received");
    if got.as_deref() != Some(want.as_str()) {
        return Err(format!("ikcp received {line}, want sha256 {want}"));
    }
    writer
        .join()
        .map_err(|_| "stdin writer panicked".to_string())?
        .map_err(|e| format!("writing tether cat's stdin: {e}"))?;
    let r = wait_exit(&mut cat, LIMIT);
    let mut err = String::new();
    if let Some(mut e) = cat.stderr.take() {
        let _ = e.read_to_string(&mut err);
    }
    r.map_err(|e| format!("{e}: {err}"))?;
    peer.wait(Duration::from_secs(20))
}

/// An ikcp source sends pattern bytes to `tether cat --listen`, whose stdout is compared.
fn ikcp_to_tether(case: Case) -> Result<(), String> {
    let port = UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map_err(|e| e.to_string())?
        .port();
    let listen: SocketAddr = format!("127.0.0.1:{port}").parse().expect("address");
    let mut cat = Command::new(tether_bin())
        .args(case.tether_args())
        .args(["--listen", &listen.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    let mut stdout = cat.stdout.take().expect("stdout");
    let reader = std::thread::spawn(move || {
        let mut out = Vec::new();
        stdout.read_to_end(&mut out).map(|_| out)
    });
    std::thread::sleep(Duration::from_millis(300));
    let net = netem(listen, case.lossy);
    let to = net.as_ref().map_or(listen, |n| n.listen);
    let args = case.ikcp_args();
    let mut peer_args: Vec<&str> = args.iter().map(String::as_str).collect();
    peer_args.extend(["--role", "source", "--conv", "3735928559"]);
    let mut peer = IkcpPeer::client(to, &peer_args);
    let line = peer.result(LIMIT)?;
    peer.wait(Duration::from_secs(20))?;
    let r = wait_exit(&mut cat, LIMIT);
    let mut err = String::new();
    if let Some(mut e) = cat.stderr.take() {
        let _ = e.read_to_string(&mut err);
    }
    r.map_err(|e| format!("{e}: {err}"))?;
    let out = reader
        .join()
        .map_err(|_| "stdout reader panicked".to_string())?
        .map_err(|e| e.to_string())?;
    let got = hex::encode(Sha256::digest(&out));
    match json_field(&line, "sha256_sent") {
        Some(sent) if sent == got => Ok(()),
        _ => Err(format!(
            "tether cat wrote {} bytes with sha256 {got}; ikcp reported {line}",
            out.len()
        )),
    }
}

/// Runs every case in its own thread; fails with all failures listed.
fn run_all(cases: Vec<Case>) {
    if !require_ikcp() {
        return;
    }
    // Build the binary once before the threads race for it.
    let _ = tether_bin();
    tether_tests::cases::run_parallel(cases, |case: Case| match case.dir {
        Dir::TetherToIkcp => tether_to_ikcp(case),
        Dir::IkcpToTether => ikcp_to_tether(case),
    });
}

fn matrix(lossy: bool) -> Vec<Case> {
    let mut v = Vec::new();
    for dir in [Dir::TetherToIkcp, Dir::IkcpToTether] {
        for message in [false, true] {
            v.push(Case {
                dir,
                message,
                lossy,
                tether_mtu: 1400,
                ikcp_mtu: 1400,
                ikcp_flavor: false,
            });
        }
    }
    v
}

#[test]
fn ikcp_both_directions_stream_and_message_direct() {
    run_all(matrix(false));
}

#[test]
fn ikcp_both_directions_stream_and_message_through_netem_5pct_loss() {
    run_all(matrix(true));
}

/// MTU 1200 against 1400 both ways, with tether's `--kcp-flavor ikcp`.
#[test]
fn ikcp_with_a_different_mtu_both_ways() {
    let mut v = Vec::new();
    for dir in [Dir::TetherToIkcp, Dir::IkcpToTether] {
        for (tether_mtu, ikcp_mtu) in [(1200, 1400), (1400, 1200)] {
            v.push(Case {
                dir,
                message: dir == Dir::TetherToIkcp,
                lossy: false,
                tether_mtu,
                ikcp_mtu,
                ikcp_flavor: true,
            });
        }
    }
    run_all(v);
}
