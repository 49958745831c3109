//! Transcripts of skywind3000's ikcp.c (PyPI kcp 0.1.6), recorded by
//! `tests/ikcp/ikcpvectors.c` (via `tests/ikcp/regen.sh`) from the inputs of the kcp-go golden
//! scenarios plus ikcp-only ones, replayed against tether's KCP. With
//! `KcpFlavor::Ikcp` tether must reproduce ikcp byte for byte (every datagram, every send and
//! input return code) in exactly the scenarios listed in [`REPRODUCED`]; the others must
//! diverge, for the reason [`DIFFERS`] gives. Scenarios ikcp cannot express are listed in
//! `tests/vectors/ikcp/unsupported.list`.
use std::path::{Path, PathBuf};

use tether_core::kcp::{KcpConfig, KcpFlavor};
use tether_tests::ikcp::require_ikcp;
use tether_tests::kcp_replay::{config_of, replay, IKCP};
use tether_tests::vectors::{load_dir, Scenario};

fn vector_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("vectors/ikcp")
}

/// Scenarios tether's ikcp flavour reproduces byte for byte.
const REPRODUCED: &[&str] = &[
    "ack_batching",
    "bad_input",
    "clock_wrap",
    "cwnd_growth",
    "early_retransmit",
    "fast_retransmit",
    "ikcp_limits",
    "push_one",
    "rcv_window_reopen",
    "send_errors",
    "timeout_retransmit",
    "timeout_retransmit_nodelay",
];

/// Scenarios it does not, with the ikcp rule responsible (README: kcp-go vs ikcp).
const DIFFERS: &[(&str, &str)] = &[
    (
        "fragment",
        "ikcp_recv's codes: -2 for an incomplete message, -3 for a short buffer (C API, not wire)",
    ),
    (
        "stream_merge",
        "ikcp_recv's code -3 for a short buffer (C API, not wire)",
    ),
];

fn ikcp_config(sc: &Scenario) -> KcpConfig {
    KcpConfig {
        flavor: KcpFlavor::Ikcp,
        ..config_of(sc)
    }
}

#[test]
fn ikcp_vectors_replay_with_the_ikcp_flavour() {
    let scenarios = load_dir(vector_dir());
    let mut wrong = Vec::new();
    for sc in &scenarios {
        let r = replay(sc, ikcp_config(sc), &IKCP);
        let expected = REPRODUCED.contains(&sc.name.as_str());
        assert!(
            expected || DIFFERS.iter().any(|(n, _)| *n == sc.name),
            "`{}` is in neither REPRODUCED nor DIFFERS",
            sc.name
        );
        eprintln!(
            "{:40} {}",
            sc.name,
            if r.is_ok() { "reproduced" } else { "differs" }
        );
        match (expected, r) {
            (true, Err(e)) => wrong.push(format!("`{}` must be reproduced:\n{e}", sc.name)),
            (false, Ok(())) => wrong.push(format!(
                "`{}` is now reproduced: move it to REPRODUCED",
                sc.name
            )),
            (false, Err(e)) => {
                eprintln!("  {}", e.lines().take(6).collect::<Vec<_>>().join("\n  "))
            }
            (true, Ok(())) => {}
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n\n"));
}

/// The ikcp flavour matters: kcp-go's flavour reproduces none of ikcp's transcripts (every wnd
/// field, the 128-fragment limit, ACK pruning, retransmission timing all show).
#[test]
fn the_kcp_go_flavour_differs_where_a_c_peer_sees_it() {
    let scenarios = load_dir(vector_dir());
    assert!(scenarios.len() >= 14, "tests/vectors/ikcp is incomplete");
    for sc in &scenarios {
        assert!(
            replay(sc, config_of(sc), &IKCP).is_err(),
            "`{}`: kcp-go's flavour unexpectedly reproduces ikcp",
            sc.name
        );
    }
}

/// `tests/ikcp/regen.sh` (cc + ikcp.c from PyPI kcp 0.1.6) re-records the checked-in
/// transcripts identically.
#[test]
fn ikcp_vectors_regenerate_identically() {
    if !require_ikcp() {
        return;
    }
    let root = tether_tests::go::workspace_root();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let dir =
        std::env::temp_dir().join(format!("tether-ikcpvectors-{}-{nanos}", std::process::id()));
    let out = std::process::Command::new("bash")
        .arg(root.join("tests/ikcp/regen.sh"))
        .arg(&dir)
        .output()
        .expect("run tests/ikcp/regen.sh");
    assert!(
        out.status.success(),
        "tests/ikcp/regen.sh failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let read = |d: &Path| -> Vec<(String, String)> {
        let mut v: Vec<(String, String)> = std::fs::read_dir(d)
            .unwrap_or_else(|e| panic!("reading {}: {e}", d.display()))
            .map(|e| e.expect("entry").path())
            .map(|p| {
                let text = std::fs::read_to_string(&p).expect("read");
                (p.file_name().unwrap().to_string_lossy().into_owned(), text)
            })
            .collect();
        v.sort();
        v
    };
    let fresh = read(&dir);
    let _ = std::fs::remove_dir_all(&dir);
    let checked_in = read(&vector_dir());
    let names = |v: &[(String, String)]| v.iter().map(|x| x.0.clone()).collect::<Vec<_>>();
    assert_eq!(names(&fresh), names(&checked_in), "run tests/ikcp/regen.sh");
    for ((name, a), (_, b)) in fresh.iter().zip(&checked_in) {
        assert!(
            a == b,
            "tests/vectors/ikcp/{name} is stale: run tests/ikcp/regen.sh"
        );
    }
}
