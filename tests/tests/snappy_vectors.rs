//! tether's snappy framing (core/src/snappy.rs) against golang/snappy, the writer and reader
//! kcptun 20210922 uses (kcptun.md §7), both ways: Go's stream decodes to the frames in
//! tether, tether's stream decodes in Go, and for kcptun's frame shapes the two writers
//! produce the same bytes.
use std::io::Write;
use std::process::{Command, Stdio};

use tether_core::rng::{seeded, RngCore};
use tether_core::snappy::{Decoder, Encoder};
use tether_tests::go::{build_go, require_peer};

/// Frames as smux over kcptun writes them: headers alone, data frames of every size class,
/// compressible and not, and one larger than a snappy block.
fn frames() -> Vec<Vec<u8>> {
    let mut rng = seeded(17);
    let mut random = |n: usize| {
        let mut v = vec![0u8; n];
        rng.fill_bytes(&mut v);
        v
    };
    let text: Vec<u8> = b"GET /index.html HTTP/1.1\r\nHost: example.com\r\n\r\n"
        .iter()
        .copied()
        .cycle()
        .take(70_000)
        .collect();
    let mut psh = vec![1, 2, 0x00, 0x80, 3, 0, 0, 0];
    psh.extend(&text[..32 * 1024]);
    vec![
        hex::decode("0100000003000000").unwrap(), // SYN sid 3
        vec![b'a'; 100],
        vec![1, 3, 0, 0, 0, 0, 0, 0], // NOP
        psh,
        random(1300),
        random(16),
        random(17),
        random(70_000),
        text[..65_536].to_vec(),
        text[..65_537].to_vec(),
    ]
}

/// Runs the Go program with `input` on stdin; its stdout, trimmed.
fn run_go(mode: &str, input: &str) -> String {
    let bin = build_go("snappyvectors");
    let mut child = Command::new(bin)
        .arg(mode)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start snappyvectors");
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_owned();
    let feeder = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let out = child.wait_with_output().expect("snappyvectors output");
    feeder.join().unwrap().expect("write to snappyvectors");
    assert!(
        out.status.success(),
        "snappyvectors {mode} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

fn tether_encode(frames: &[Vec<u8>]) -> Vec<u8> {
    let mut enc = Encoder::default();
    let mut out = Vec::new();
    for f in frames {
        enc.encode(&[f], &mut out);
    }
    out
}

fn tether_decode(stream: &[u8]) -> Vec<u8> {
    let mut dec = Decoder::default();
    dec.feed(stream);
    let mut got = Vec::new();
    let mut buf = vec![0u8; 4096];
    loop {
        let n = dec.read(&mut buf).expect("tether decodes Go's stream");
        if n == 0 {
            return got;
        }
        got.extend_from_slice(&buf[..n]);
    }
}

#[test]
fn go_stream_decodes_in_tether_and_matches_byte_for_byte() {
    if !require_peer("golang/snappy (tests/go/snappyvectors)") {
        return;
    }
    let frames = frames();
    let lines: String = frames.iter().map(|f| hex::encode(f) + "\n").collect();
    let go = hex::decode(run_go("encode", &lines)).unwrap();
    assert_eq!(tether_decode(&go), frames.concat());
    let ours = tether_encode(&frames);
    if let Some(i) = ours.iter().zip(&go).position(|(a, b)| a != b) {
        panic!("tether's snappy stream differs from golang/snappy's at byte {i}");
    }
    assert_eq!(ours.len(), go.len());
}

#[test]
fn tether_stream_decodes_in_go() {
    if !require_peer("golang/snappy (tests/go/snappyvectors)") {
        return;
    }
    let frames = frames();
    let ours = tether_encode(&frames);
    let plain = hex::decode(run_go("decode", &hex::encode(ours))).unwrap();
    assert_eq!(plain, frames.concat());
}
