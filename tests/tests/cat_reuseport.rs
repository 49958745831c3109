//! `tether cat --listen --keep-open --echo --reuseport 2`: a listener on two sockets of one
//! port (SO_REUSEPORT) on a multi-threaded runtime echoes several clients at once; and
//! `--reuseport 0` is refused with a message saying what to use.
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use tether_runtime_tokio::{Config, KcpStream};
use tether_tests::scenarios::payload;
use tether_tests::tether_bin::{tether_bin, KillOnDrop};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[test]
fn a_two_socket_cat_echoes_concurrent_clients() {
    let mut server = KillOnDrop(
        Command::new(tether_bin())
            .args([
                "cat",
                "-q",
                "--listen",
                "127.0.0.1:0",
                "--keep-open",
                "--echo",
            ])
            .args(["--reuseport", "2", "--crypt", "none"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn tether cat"),
    );
    let mut stderr = BufReader::new(server.0.stderr.take().expect("piped")).lines();
    let line = stderr
        .by_ref()
        .map_while(Result::ok)
        .find(|l| l.contains("listening on"))
        .expect("a listening line");
    // Keep reading: a closed stderr would make the server's next message fail.
    std::thread::spawn(move || stderr.for_each(drop));
    assert!(line.ends_with("with 2 sockets (SO_REUSEPORT)"), "{line}");
    let addr: std::net::SocketAddr = line
        .split_whitespace()
        .nth(4)
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("no address in {line:?}"));
    // cat's defaults with --crypt none: mode fast, FEC 10/3, the kcptun key.
    let cfg = Config::default().crypt("none", "it's a secrect");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(async {
        let mut clients = tokio::task::JoinSet::new();
        for i in 0..6u64 {
            let cfg = cfg.clone();
            clients.spawn(async move {
                let mut c = KcpStream::connect(addr, cfg).await?;
                let data = payload(128 << 10, 5000 + i);
                let mut got = vec![0u8; data.len()];
                let (mut rx, mut tx) = tokio::io::split(&mut c);
                let (w, r) = tokio::join!(tx.write_all(&data), rx.read_exact(&mut got));
                w?;
                r?;
                assert!(got == data, "client {i}: echoed bytes differ");
                std::io::Result::Ok(())
            });
        }
        let all = async {
            while let Some(r) = clients.join_next().await {
                r.expect("client task").expect("client echo");
            }
        };
        tokio::time::timeout(Duration::from_secs(60), all)
            .await
            .expect("six clients echoed within 60 s");
    });
}

#[test]
fn zero_sockets_are_refused() {
    let out = Command::new(tether_bin())
        .args(["cat", "--listen", "127.0.0.1:0", "--keep-open", "--echo"])
        .args(["--reuseport", "0"])
        .stdin(Stdio::null())
        .output()
        .expect("run tether cat");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "exit status {}", out.status);
    assert!(err.contains("use 1 or more"), "{err}");
}
