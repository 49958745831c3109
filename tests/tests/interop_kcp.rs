//! Live interop with kcp-go 5.6.1 (Debian's package, through our `tests/go/kcppeer`) over
//! real loopback sockets: Rust client ⇄ Go server and Go client ⇄ Rust server, for
//! crypt {none, aes, aes-128, salsa20, blowfish, tea, xor, sm4} × FEC {0/0, 10/3} × mode
//! {normal, fast3}, 4 MiB each way (full duplex through an echo), sha256 compared; and the
//! same again through `tether netem` at 5 % loss and 30 ms one-way delay.
//!
//! In CI (`CI=true`) a missing Go toolchain or kcp-go fails these tests; it never skips them.
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use tether_runtime_tokio::{Config, KcpListener, KcpStream};
use tether_tests::peer::{go_peer_available, json_field, pattern, GoPeer};
use tether_tests::tether_bin::Netem;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const KEY: &str = "tether interop";
const CRYPTS: [&str; 8] = [
    "none", "aes", "aes-128", "salsa20", "blowfish", "tea", "xor", "sm4",
];
const FECS: [(usize, usize); 2] = [(0, 0), (10, 3)];
const MODES: [&str; 2] = ["normal", "fast3"];
const BYTES: usize = 4 << 20;
const LIMIT: Duration = Duration::from_secs(120);

/// One cell of the matrix.
#[derive(Debug, Clone, Copy)]
struct Case {
    crypt: &'static str,
    fec: (usize, usize),
    mode: &'static str,
}

fn cases() -> Vec<Case> {
    let mut v = Vec::new();
    for crypt in CRYPTS {
        for fec in FECS {
            for mode in MODES {
                v.push(Case { crypt, fec, mode });
            }
        }
    }
    v
}

impl Case {
    fn rust(&self) -> Config {
        Config::default()
            .crypt(self.crypt, KEY)
            .fec(self.fec.0, self.fec.1)
            .mode(self.mode)
            .windows(1024, 1024)
            .mtu(1350)
    }

    fn go(&self) -> Vec<String> {
        [
            "-crypt",
            self.crypt,
            "-key",
            KEY,
            "-datashard",
            &self.fec.0.to_string(),
            "-parityshard",
            &self.fec.1.to_string(),
            "-mode",
            self.mode,
            "-sndwnd",
            "1024",
            "-rcvwnd",
            "1024",
            "-mtu",
            "1350",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// Rust client, full duplex through the echo at `to`: hello, then 4 MiB out and back.
async fn rust_bulk(to: SocketAddr, cfg: Config) -> Result<(), String> {
    let mut s = KcpStream::connect(to, cfg)
        .await
        .map_err(|e| e.to_string())?;
    // kcp-go applies windows after Accept: a hello first avoids its 7 s start-up stall.
    s.write_all(b"h").await.map_err(|e| e.to_string())?;
    let mut h = [0u8; 1];
    s.read_exact(&mut h)
        .await
        .map_err(|e| format!("hello: {e}"))?;
    let data = pattern(7, BYTES);
    let want = Sha256::digest(&data);
    let (mut r, mut w) = tokio::io::split(s);
    let writer = tokio::spawn(async move { w.write_all(&data).await.map(|_| w) });
    let mut got = vec![0u8; BYTES];
    r.read_exact(&mut got)
        .await
        .map_err(|e| format!("reading the echo: {e}"))?;
    writer
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    if Sha256::digest(&got) != want {
        return Err("echoed bytes differ from the sent ones".into());
    }
    Ok(())
}

/// A Rust echo server on its own runtime thread; returns its address.
fn rust_echo_server(rt: &tokio::runtime::Runtime, cfg: Config) -> SocketAddr {
    let listener = rt
        .block_on(KcpListener::bind("127.0.0.1:0", cfg))
        .expect("bind");
    let addr = listener.local_addr();
    rt.spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 * 1024];
                while let Ok(n) = s.read(&mut buf).await {
                    if n == 0 || s.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    addr
}

fn netem_args() -> &'static [&'static str] {
    &["--loss", "5%", "--delay", "30ms", "--seed", "1", "--quiet"]
}

/// Rust client ⇄ Go echo server for every case; `impaired` puts netem in between.
fn rust_client_go_server(impaired: bool) {
    if !go_peer_available() {
        return;
    }
    let rt = runtime();
    let mut failures = Vec::new();
    for case in cases() {
        let go = case.go();
        let args: Vec<&str> = go.iter().map(String::as_str).collect();
        let server = GoPeer::server(&args);
        let netem = impaired.then(|| Netem::spawn(server.addr(), netem_args()));
        let to = netem.as_ref().map_or(server.addr(), |n| n.listen);
        let t = Instant::now();
        let r =
            rt.block_on(async { tokio::time::timeout(LIMIT, rust_bulk(to, case.rust())).await });
        let verdict = match r {
            Ok(Ok(())) => "ok".to_string(),
            Ok(Err(e)) => e,
            Err(_) => format!("timed out after {LIMIT:?}"),
        };
        println!(
            "rust client -> go server {case:?} impaired={impaired}: {verdict} in {:?}",
            t.elapsed()
        );
        if verdict != "ok" {
            failures.push(format!("{case:?}: {verdict}\n{}", server.stderr()));
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Go client ⇄ Rust echo server for every case.
fn go_client_rust_server(impaired: bool) {
    if !go_peer_available() {
        return;
    }
    let rt = runtime();
    let mut failures = Vec::new();
    for case in cases() {
        let addr = rust_echo_server(&rt, case.rust());
        let netem = impaired.then(|| Netem::spawn(addr, netem_args()));
        let to = netem.as_ref().map_or(addr, |n| n.listen).to_string();
        let mut args: Vec<String> = case.go();
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
        let t = Instant::now();
        let verdict = match GoPeer::try_run_client(&args) {
            Ok(out) => {
                let sent = json_field(&out, "sha256_sent");
                if sent.is_some() && sent == json_field(&out, "sha256_received") {
                    "ok".to_string()
                } else {
                    format!("digests differ: {out}")
                }
            }
            Err(e) => e,
        };
        println!(
            "go client -> rust server {case:?} impaired={impaired}: {verdict} in {:?}",
            t.elapsed()
        );
        if verdict != "ok" {
            failures.push(format!("{case:?}: {verdict}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn rust_client_to_go_server_loopback() {
    rust_client_go_server(false);
}

#[test]
fn go_client_to_rust_server_loopback() {
    go_client_rust_server(false);
}

#[test]
fn rust_client_to_go_server_through_netem() {
    rust_client_go_server(true);
}

#[test]
fn go_client_to_rust_server_through_netem() {
    go_client_rust_server(true);
}
