//! `tether cat --proto kcp-raw` ⇄ kcp-go 5.6.1 in raw mode (a nil `BlockCrypt` and no FEC:
//! bare KCP segments in UDP, `tests/go/kcppeer -raw`) over loopback: both directions, stream
//! and message framing, directly and through `tether netem` at 5 % loss, 4 MiB checked by
//! sha256. Cases run in parallel.
//!
//! In CI (`CI=true`) a missing Go toolchain or kcp-go fails these tests; never skips them.
use std::io::{Read, Write};
use std::net::{SocketAddr, UdpSocket};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use tether_tests::peer::{go_peer_available, json_field, pattern, GoPeer};
use tether_tests::tether_bin::{tether_bin, Netem};

const BYTES: usize = 4 << 20;
const LIMIT: Duration = Duration::from_secs(120);

#[derive(Debug, Clone, Copy)]
struct Case {
    /// `true`: tether cat → kcp-go sink; `false`: kcp-go bulk client → tether cat --echo.
    tether_sends: bool,
    message: bool,
    lossy: bool,
}

impl Case {
    fn go_args(&self) -> Vec<String> {
        let stream = if self.message { "false" } else { "true" };
        [
            "-raw",
            "-mode",
            "fast3",
            "-sndwnd",
            "1024",
            "-rcvwnd",
            "1024",
            "-mtu",
            "1350",
            &format!("-streammode={stream}"),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    }

    fn cat(&self) -> Command {
        let mut c = Command::new(tether_bin());
        c.args(["cat", "-q", "--proto", "kcp-raw", "--mode", "fast3"])
            .args(["--mtu", "1350", "--linger", "3s"]);
        if self.message {
            c.arg("--message");
        }
        c
    }
}

fn netem(to: SocketAddr, lossy: bool) -> Option<Netem> {
    lossy.then(|| {
        Netem::spawn(
            to,
            &["--loss", "5%", "--delay", "10ms", "--seed", "9", "--quiet"],
        )
    })
}

/// `tether cat --connect` sends the hello byte and 4 MiB to a kcp-go sink, which echoes the
/// hello and answers with the 32-byte SHA-256 of the 4 MiB: cat's stdout must be exactly
/// `h` + that digest.
fn tether_to_kcpgo(case: Case) -> Result<(), String> {
    let mut args = case.go_args();
    args.extend(["-role", "sink", "-bytes", &BYTES.to_string()].map(String::from));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let server = GoPeer::server(&args);
    let net = netem(server.addr(), case.lossy);
    let to = net.as_ref().map_or(server.addr(), |n| n.listen);
    let data = pattern(5, BYTES);
    let mut want = b"h".to_vec();
    want.extend_from_slice(&Sha256::digest(&data));
    let mut cat = case
        .cat()
        .args(["--connect", &to.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    let mut stdin = cat.stdin.take().expect("stdin");
    let writer = std::thread::spawn(move || {
        stdin.write_all(b"h")?;
        stdin.write_all(&data)
    });
    let mut stdout = cat.stdout.take().expect("stdout");
    let reader = std::thread::spawn(move || {
        let mut out = Vec::new();
        stdout.read_to_end(&mut out).map(|_| out)
    });
    let status = wait(&mut cat)?;
    let mut err = String::new();
    if let Some(mut e) = cat.stderr.take() {
        let _ = e.read_to_string(&mut err);
    }
    writer
        .join()
        .map_err(|_| "writer panicked".to_string())?
        .map_err(|e| format!("stdin: {e}"))?;
    let out = reader
        .join()
        .map_err(|_| "reader panicked".to_string())?
        .map_err(|e| e.to_string())?;
    if !status.success() {
        return Err(format!("tether cat exited with {status}: {err}"));
    }
    if out != want {
        return Err(format!(
            "cat's stdout {} differs from `h` + sha256 {}; kcp-go stderr:\n{}",
            hex::encode(&out),
            hex::encode(&want),
            server.stderr()
        ));
    }
    Ok(())
}

/// kcp-go's bulk client (hello, then 4 MiB full duplex) against `tether cat --listen --echo`.
fn kcpgo_to_tether(case: Case) -> Result<(), String> {
    let port = UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map_err(|e| e.to_string())?
        .port();
    let listen: SocketAddr = format!("127.0.0.1:{port}").parse().expect("address");
    let mut cat = case
        .cat()
        .args(["--listen", &listen.to_string(), "--echo"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| e.to_string())?;
    std::thread::sleep(Duration::from_millis(300));
    let net = netem(listen, case.lossy);
    let to = net.as_ref().map_or(listen, |n| n.listen).to_string();
    let mut args = case.go_args();
    args.extend(
        [
            "-connect",
            &to,
            "-role",
            "bulk",
            "-bytes",
            &BYTES.to_string(),
            "-timeout",
            "120s",
        ]
        .map(String::from),
    );
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let r = GoPeer::try_run_client(&args);
    let _ = cat.kill();
    let _ = cat.wait();
    let out = r?;
    let sent = json_field(&out, "sha256_sent");
    if sent.is_some() && sent == json_field(&out, "sha256_received") {
        Ok(())
    } else {
        Err(format!("digests differ: {out}"))
    }
}

fn wait(child: &mut std::process::Child) -> Result<std::process::ExitStatus, String> {
    let t = Instant::now();
    loop {
        if let Some(s) = child.try_wait().map_err(|e| e.to_string())? {
            return Ok(s);
        }
        if t.elapsed() > LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("tether cat still running after {LIMIT:?}"));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn run_all(cases: Vec<Case>) {
    if !go_peer_available() {
        return;
    }
    let _ = tether_bin();
    let _ = tether_tests::peer::binary();
    tether_tests::cases::run_parallel(cases, |case: Case| {
        if case.tether_sends {
            tether_to_kcpgo(case)
        } else {
            kcpgo_to_tether(case)
        }
    });
}

#[test]
fn kcpgo_raw_both_directions_stream_and_message() {
    let mut v = Vec::new();
    for tether_sends in [true, false] {
        for message in [false, true] {
            v.push(Case {
                tether_sends,
                message,
                lossy: false,
            });
        }
    }
    run_all(v);
}

#[test]
fn kcpgo_raw_both_directions_through_netem_5pct_loss() {
    run_all(
        [true, false]
            .map(|tether_sends| Case {
                tether_sends,
                message: false,
                lossy: true,
            })
            .to_vec(),
    );
}
