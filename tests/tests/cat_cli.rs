//! `tether cat` as a user runs it: file transfer between two `tether cat` processes, against
//! a kcp-go peer configured with the same kcptun words, and a prompt exit when stdout closes.
use std::io::{Read, Write};
use std::net::UdpSocket;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use tether_tests::peer::{go_peer_available, pattern, GoPeer};
use tether_tests::tether_bin::tether_bin;

const LIMIT: Duration = Duration::from_secs(60);

fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits for `child` with a bound; returns its exit status.
fn wait_bounded(child: &mut std::process::Child, limit: Duration) -> std::process::ExitStatus {
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
    let port = free_udp_port().to_string();
    let addr = format!("127.0.0.1:{port}");
    let words = ["--crypt", "salsa20", "--key", "cat test", "--mode", "fast3"];
    let mut server = Command::new(tether_bin())
        .args(["cat", "-q", "--listen", &addr])
        .args(words)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let data = pattern(3, 3 << 20);
    let mut client = Command::new(tether_bin())
        .args(["cat", "-q", "--connect", &addr])
        .args(words)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = client.stdin.take().unwrap();
    let d2 = data.clone();
    let feeder = std::thread::spawn(move || stdin.write_all(&d2));
    let mut out = server.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut v = Vec::new();
        out.read_to_end(&mut v).map(|_| v)
    });
    feeder.join().unwrap().unwrap();
    assert!(
        wait_bounded(&mut client, LIMIT).success(),
        "client exit status"
    );
    assert!(
        wait_bounded(&mut server, LIMIT).success(),
        "server exit status"
    );
    let got = reader.join().unwrap().unwrap();
    assert_eq!(
        Sha256::digest(&got),
        Sha256::digest(&data),
        "{} of {} bytes",
        got.len(),
        data.len()
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
