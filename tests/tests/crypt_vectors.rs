//! Golden vectors from the real kcp-go 5.6.1 BlockCrypt (tests/vectors/crypt.txt, written by
//! tests/go/cryptvectors) checked against tether's `PacketCrypt` and `kcptun_key`
//! (kcp-go-session.md §3, kcptun.md §2).

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use tether_tests::vectors::first_difference;

use tether_core::session::crypt::{CipherKind, PacketCrypt};
use tether_core::session::key::kcptun_key;
use tether_tests::go::{build_go, require_peer};

/// The checked-in vector file.
fn vector_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("vectors/crypt.txt")
}

/// `kdf key=<str> pass=<hex>`.
struct Kdf {
    key: String,
    pass: [u8; 32],
}

/// `cipher=<name> key=<hex> pt=<hex> ct=<hex>`.
struct Vector {
    kind: CipherKind,
    key: Vec<u8>,
    pt: Vec<u8>,
    ct: Vec<u8>,
}

fn parse_kdf(rest: &str) -> Kdf {
    let (key, pass) = rest.rsplit_once(" pass=").expect("kdf line without pass=");
    let key = key.strip_prefix("key=").expect("kdf line without key=");
    let pass = hex::decode(pass).expect("pass hex");
    Kdf {
        key: key.to_owned(),
        pass: pass.try_into().expect("pass is 32 bytes"),
    }
}

/// The hex value of `name=` among the space-separated fields of a cipher line.
fn field(line: &str, name: &str) -> Vec<u8> {
    let prefix = format!("{name}=");
    let value = line
        .split(' ')
        .find_map(|f| f.strip_prefix(prefix.as_str()))
        .unwrap_or_else(|| panic!("no {name}= in {line}"));
    hex::decode(value).unwrap_or_else(|e| panic!("{name}= in {line}: {e}"))
}

fn parse_vector(line: &str) -> Vector {
    let name = line
        .split(' ')
        .next()
        .and_then(|f| f.strip_prefix("cipher="))
        .expect("cipher= first");
    let (kind, known) = CipherKind::from_kcptun_name(name);
    assert!(known, "unknown cipher {name}");
    Vector {
        kind,
        key: field(line, "key"),
        pt: field(line, "pt"),
        ct: field(line, "ct"),
    }
}

/// Reads the vector file into its kdf and cipher lines.
fn load() -> (Vec<Kdf>, Vec<Vector>) {
    let text = std::fs::read_to_string(vector_path()).expect("read tests/vectors/crypt.txt");
    let (mut kdfs, mut vectors) = (Vec::new(), Vec::new());
    for line in text
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        if let Some(rest) = line.strip_prefix("kdf ") {
            kdfs.push(parse_kdf(rest));
        } else {
            vectors.push(parse_vector(line));
        }
    }
    (kdfs, vectors)
}

/// The kdf pass this vector was keyed from: its key must be the kcp-go-session.md §3.1
/// slice (a prefix of the right length) of one of them. `none` takes no key.
fn pass_for(v: &Vector, kdfs: &[Kdf]) -> [u8; 32] {
    assert_eq!(v.key.len(), v.kind.key_len(), "{} key slice length", v.kind);
    kdfs.iter()
        .map(|k| k.pass)
        .find(|p| p.starts_with(&v.key))
        .unwrap_or_else(|| panic!("{} key is not a prefix of any kdf pass", v.kind))
}

// kcptun.md §2
#[test]
fn kdf_lines_match_kcptun_key() {
    let (kdfs, _) = load();
    assert!(kdfs.len() >= 2, "expected kdf lines");
    for kdf in &kdfs {
        assert_eq!(kcptun_key(&kdf.key), kdf.pass, "kdf key={:?}", kdf.key);
    }
}

// kcp-go-session.md §3
#[test]
fn cipher_lines_match_packet_crypt() {
    let (kdfs, vectors) = load();
    let mut seen = HashSet::new();
    for v in &vectors {
        let crypt = PacketCrypt::new(v.kind, &pass_for(v, &kdfs));
        let mut buf = v.pt.clone();
        crypt.encrypt(&mut buf);
        assert_eq!(
            hex::encode(&buf),
            hex::encode(&v.ct),
            "{} len {}",
            v.kind,
            v.pt.len()
        );
        crypt.decrypt(&mut buf);
        assert_eq!(buf, v.pt, "{} decrypt len {}", v.kind, v.pt.len());
        seen.insert(v.kind);
    }
    assert_eq!(
        seen.len(),
        CipherKind::ALL.len(),
        "every cipher has vectors"
    );
    assert!(vectors.len() >= 250, "only {} vectors", vectors.len());
}

/// The checked-in file must be exactly what the dumper prints today. Without Go (or
/// Debian's kcp-go) this skips, except under CI=true, where it fails (`require_peer`).
#[test]
fn vector_file_is_what_the_go_dumper_prints() {
    if !require_peer("kcp-go 5.6.1 (Go toolchain) for tests/go/cryptvectors") {
        return;
    }
    let out = Command::new(build_go("cryptvectors"))
        .output()
        .expect("run cryptvectors");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got = String::from_utf8(out.stdout).expect("utf-8 output");
    let want = std::fs::read_to_string(vector_path()).expect("read crypt.txt");
    assert!(
        got == want,
        "tests/vectors/crypt.txt is stale; regenerate it (see tests/go/cryptvectors/main.go). First difference at {}",
        first_difference(&got, &want)
    );
}
