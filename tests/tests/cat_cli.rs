//! `tether cat` as a user runs it: file transfer between two `tether cat` processes, against
//! a kcp-go peer configured with the same kcptun words, a prompt exit when stdout closes, a
//! one-session listener refusing a second sender, and a paused sender on a lossy, slow link.
use std::io::{Read, Write};
use std::net::UdpSocket;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use tether_tests::peer::{go_peer_available, pattern, GoPeer};
use tether_tests::tether_bin::{tether_bin, Netem};

const LIMIT: Duration = Duration::from_secs(60);

fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits for `child` with a bound; returns its exit status.
fn wait_bounded(child: &mut Child, limit: Duration) -> ExitStatus {
    let t = Instant::now();
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        if t.elapsed() > limit {
            let _ = child.kill();
            panic!("tether cat did not exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn two_cats_move_a_file_and_exit_zero() {
    let addr = format!("127.0.0.1:{}", free_udp_port());
    let words = ["--crypt", "salsa20", "--key", "cat test", "--mode", "fast3"];
    let (mut server, (out, _), server_err) = receiver(&addr, &words);
    std::thread::sleep(Duration::from_millis(300));
    let data = pattern(3, 3 << 20);
    let d2 = data.clone();
    let (mut client, client_err) = sender(&addr, &words, move |w| {
        let _ = w.write_all(&d2);
    });
    let server_status = wait_bounded(&mut server, LIMIT);
    let got = out.join().unwrap();
    let server_err = text(server_err);
    if !server_status.success() || got != data {
        let _ = client.kill();
    }
    assert!(
        server_status.success(),
        "server: {server_status}: {server_err}"
    );
    assert_eq!(
        Sha256::digest(&got),
        Sha256::digest(&data),
        "{} of {} bytes",
        got.len(),
        data.len()
    );
    let client_status = wait_bounded(&mut client, LIMIT);
    assert!(
        client_status.success(),
        "client: {client_status}: {}",
        text(client_err)
    );
}

#[test]
fn cat_and_kcp_go_agree_with_the_same_words() {
    if !go_peer_available() {
        return;
    }
    for (crypt, ds, ps) in [
        ("aes", "10", "3"),
        ("tea", "0", "0"),
        ("bogus-name-means-aes", "10", "3"),
    ] {
        // kcppeer maps an unknown crypt name to AES-256 exactly as kcptun does; so do we.
        let go_crypt = if crypt.starts_with("bogus") {
            "aes"
        } else {
            crypt
        };
        let server = GoPeer::server(&[
            "-crypt",
            go_crypt,
            "-key",
            "same words",
            "-datashard",
            ds,
            "-parityshard",
            ps,
        ]);
        let mut data = b"h".to_vec(); // kcppeer's hello convention (echoed like the rest)
        data.extend(pattern(5, 200_000));
        let mut cat = Command::new(tether_bin())
            .args(["cat", "-q", "--connect", &server.addr().to_string()])
            .args([
                "--crypt",
                crypt,
                "--key",
                "same words",
                "--datashard",
                ds,
                "--parityshard",
                ps,
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut stdin = cat.stdin.take().unwrap();
        let d2 = data.clone();
        let feeder = std::thread::spawn(move || stdin.write_all(&d2));
        let mut out = cat.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            let mut v = Vec::new();
            out.read_to_end(&mut v).map(|_| v)
        });
        feeder.join().unwrap().unwrap();
        assert!(wait_bounded(&mut cat, LIMIT).success());
        let got = reader.join().unwrap().unwrap();
        assert_eq!(got.len(), data.len(), "crypt {crypt}: echo length");
        assert!(got == data, "crypt {crypt}: echoed bytes differ");
    }
}

#[test]
fn closed_stdout_ends_cat_promptly() {
    if !go_peer_available() {
        return;
    }
    // The Go server streams 1 GiB after the hello; our stdout reader goes away at once.
    let server = GoPeer::server(&["-role", "source", "-bytes", "1073741824"]);
    let mut cat = Command::new(tether_bin())
        .args(["cat", "-q", "--connect", &server.addr().to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = cat.stdin.take().unwrap();
    stdin.write_all(b"h").unwrap();
    let mut out = cat.stdout.take().unwrap();
    let mut first = [0u8; 4096];
    out.read_exact(&mut first).expect("some data arrives");
    drop(out);
    let t = Instant::now();
    let status = wait_bounded(&mut cat, Duration::from_secs(10));
    println!("exited {status} {:?} after stdout closed", t.elapsed());
    assert!(t.elapsed() < Duration::from_secs(5));
    drop(stdin);
}

/// Reads a child's pipe to the end on a thread, publishing how many bytes came so far.
fn collect<R: Read + Send + 'static>(mut r: R) -> (JoinHandle<Vec<u8>>, Arc<AtomicUsize>) {
    let progress = Arc::new(AtomicUsize::new(0));
    let p = Arc::clone(&progress);
    let t = std::thread::spawn(move || {
        let mut v = Vec::new();
        let mut buf = vec![0u8; 64 << 10];
        while let Ok(n @ 1..) = r.read(&mut buf) {
            v.extend_from_slice(&buf[..n]);
            p.store(v.len(), Ordering::SeqCst);
        }
        v
    });
    (t, progress)
}

/// A `tether cat --connect` whose stdin is fed by `feed` on a thread (stdin closes when it
/// returns); stdout is discarded, stderr collected.
fn sender(
    addr: &str,
    extra: &[&str],
    feed: impl FnOnce(&mut std::process::ChildStdin) + Send + 'static,
) -> (Child, JoinHandle<Vec<u8>>) {
    let mut child = Command::new(tether_bin())
        .args(["cat", "-q", "--connect", addr])
        .args(extra)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    std::thread::spawn(move || feed(&mut stdin));
    let (err, _) = collect(child.stderr.take().unwrap());
    (child, err)
}

/// A running `tether cat --listen` with stdin at EOF: stdout (and its progress) and stderr.
type Receiver = (
    Child,
    (JoinHandle<Vec<u8>>, Arc<AtomicUsize>),
    JoinHandle<Vec<u8>>,
);

/// A `tether cat --listen` with stdin at EOF; its stdout and stderr are collected.
fn receiver(addr: &str, extra: &[&str]) -> Receiver {
    let mut child = Command::new(tether_bin())
        .args(["cat", "-q", "--listen", addr])
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = collect(child.stdout.take().unwrap());
    let (err, _) = collect(child.stderr.take().unwrap());
    (child, out, err)
}

fn text(v: JoinHandle<Vec<u8>>) -> String {
    String::from_utf8_lossy(&v.join().unwrap()).into_owned()
}

/// Two senders at once to a `--listen` without `--keep-open`: exactly one session is served.
/// The other sender's bytes are never acknowledged, so it cannot exit 0 believing they were
/// delivered: it fails (here through its `--idle-timeout`) and says why.
#[test]
fn a_one_session_listener_refuses_a_second_sender() {
    let addr = format!("127.0.0.1:{}", free_udp_port());
    let words = ["--mode", "fast3"];
    let (mut server, (out, _), server_err) = receiver(&addr, &words);
    std::thread::sleep(Duration::from_millis(300));
    let data = [pattern(11, 500_000), pattern(12, 500_000)];
    let mut senders: Vec<(Child, JoinHandle<Vec<u8>>)> = data
        .iter()
        .map(|d| {
            let d = d.clone();
            sender(
                &addr,
                &["--mode", "fast3", "--idle-timeout", "4s"],
                move |w| {
                    let _ = w.write_all(&d);
                },
            )
        })
        .collect();
    let statuses: Vec<ExitStatus> = senders
        .iter_mut()
        .map(|(c, _)| wait_bounded(c, LIMIT))
        .collect();
    let errs: Vec<String> = senders.into_iter().map(|(_, e)| text(e)).collect();
    let server_status = wait_bounded(&mut server, LIMIT);
    let got = out.join().unwrap();
    let server_err = text(server_err);
    assert!(
        server_status.success(),
        "server: {server_status}\n{server_err}"
    );
    let winner = data
        .iter()
        .position(|d| *d == got)
        .unwrap_or_else(|| panic!("the output ({} bytes) is neither sender's data", got.len()));
    let loser = 1 - winner;
    assert!(
        statuses[winner].success(),
        "served sender: {}\n{}",
        statuses[winner],
        errs[winner]
    );
    assert!(
        !statuses[loser].success(),
        "the refused sender exited 0 although none of its bytes was written"
    );
    assert!(
        errs[loser].contains("idle timeout"),
        "the refused sender says why: {:?}",
        errs[loser]
    );
}

/// Through `tether netem --loss 30% --delay 200ms`: the sender writes 1 MiB, pauses 2 s once
/// the receiver has written it all, then writes another MiB (from the receiver's side, the
/// link is silent except for what the sender's `tether cat` sends on its own). Neither the
/// pause nor retransmission back-offs end the receiver early:
/// its output is the 2 MiB, exact, and both exit 0 (a receiver that gives up must exit
/// non-zero and say why; it must never exit 0 with a short output).
#[test]
fn a_pause_on_a_lossy_link_does_not_truncate_the_output() {
    let addr = format!("127.0.0.1:{}", free_udp_port());
    let words = ["--mode", "fast3"];
    let (mut server, (out, progress), server_err) = receiver(&addr, &words);
    let netem = Netem::spawn(
        addr.parse().unwrap(),
        &[
            "--loss", "30%", "--delay", "200ms", "--seed", "13", "--quiet",
        ],
    );
    let data = pattern(13, 2 << 20);
    let d2 = data.clone();
    let started = Instant::now();
    let (mut client, client_err) = sender(&netem.listen.to_string(), &words, move |w| {
        let (a, b) = d2.split_at(1 << 20);
        let _ = w.write_all(a);
        let give_up = Instant::now() + Duration::from_secs(60);
        while progress.load(Ordering::SeqCst) < a.len() && Instant::now() < give_up {
            std::thread::sleep(Duration::from_millis(10));
        }
        std::thread::sleep(Duration::from_secs(2));
        let _ = w.write_all(b);
    });
    let limit = Duration::from_secs(120);
    let server_status = wait_bounded(&mut server, limit);
    let got = out.join().unwrap();
    let server_err = text(server_err);
    println!(
        "receiver {server_status} with {} bytes after {:.1?}",
        got.len(),
        started.elapsed()
    );
    if !server_status.success() || got != data {
        let _ = client.kill(); // it may retry for minutes towards a receiver that is gone
    }
    assert!(
        !server_status.success() || got == data,
        "the receiver exited 0 with {} of {} bytes",
        got.len(),
        data.len()
    );
    assert!(
        server_status.success(),
        "receiver: {server_status}: {server_err}"
    );
    let client_status = wait_bounded(&mut client, limit);
    let client_err = text(client_err);
    assert!(
        client_status.success(),
        "sender: {client_status}: {client_err}"
    );
    drop(netem);
}
