//! `tether cat --proto kcp-raw` flags as a user runs them: `--conv` and `--message` on the
//! wire (a plain UDP socket plays the peer), and `--mtu` above kcp-go's 1500 refused.
use std::net::UdpSocket;
use std::process::{Command, Stdio};
use std::time::Duration;

use tether_tests::tether_bin::tether_bin;

/// The first datagram of `tether cat --proto kcp-raw --connect` with the given extra flags and
/// stdin; the process is killed afterwards.
fn first_datagram(extra: &[&str], stdin: &[u8]) -> Vec<u8> {
    let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
    peer.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut cat = Command::new(tether_bin())
        .args(["cat", "-q", "--proto", "kcp-raw", "--connect"])
        .arg(peer.local_addr().unwrap().to_string())
        .args(extra)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut i = cat.stdin.take().unwrap();
        i.write_all(stdin).unwrap();
    }
    let mut buf = vec![0u8; 2048];
    let r = peer.recv_from(&mut buf);
    let _ = cat.kill();
    let _ = cat.wait();
    let (n, _) = r.expect("a datagram from tether cat");
    buf.truncate(n);
    buf
}

#[test]
fn conv_flag_is_the_wire_conv_and_segments_are_bare() {
    let d = first_datagram(&["--conv", "4242"], b"hi");
    assert_eq!(d.len(), 24 + 2, "one bare segment: {d:02x?}");
    assert_eq!(u32::from_le_bytes([d[0], d[1], d[2], d[3]]), 4242);
    assert_eq!(d[4], 81, "PUSH");
    assert_eq!(&d[24..], b"hi");
}

#[test]
fn message_flag_sends_one_fragmented_message() {
    // 3000 bytes at --mtu 1000 (mss 976): frg 3, 2, 1, 0 in the first datagram's segment.
    let data = vec![7u8; 3000];
    let d = first_datagram(&["--conv", "1", "--message", "--mtu", "1000"], &data);
    assert_eq!(d[4], 81);
    assert_eq!(
        d[5],
        3,
        "the first fragment counts down from 3: {:02x?}",
        &d[..24]
    );
}

#[test]
fn mtu_above_1500_is_refused() {
    let o = Command::new(tether_bin())
        .args(["cat", "-q", "--proto", "kcp-raw", "--mtu", "1501"])
        .args(["--connect", "127.0.0.1:9"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("1500"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}
