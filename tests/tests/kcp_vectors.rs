//! Golden vectors of kcp-go 5.6.1's segment output (tests/vectors/kcp/*.txt, written by
//! tests/go/kcpvectors via tests/go/regen.sh), replayed against tether's KCP: every emitted
//! datagram and every return value must match byte for byte (kcp.md §4–§13).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use tether_tests::go;
use tether_tests::kcp_replay;
use tether_tests::vectors::{load_dir, Scenario};

fn vector_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("vectors/kcp")
}

/// Scenarios the vector set must contain (the brief's list; more are welcome).
const REQUIRED: &[&str] = &[
    "push_one",
    "fragment",
    "stream_merge",
    "ack_batching",
    "window_probe",
    "rcv_window_reopen",
    "timeout_retransmit",
    "timeout_retransmit_nodelay",
    "fast_retransmit",
    "early_retransmit",
    "rtt_rto",
    "cwnd_growth",
    "fast3_reserved",
    "input_flushes",
    "bad_input",
];

fn replay(sc: &Scenario) -> Result<(), String> {
    kcp_replay::replay(sc, kcp_replay::config_of(sc), &kcp_replay::KCP_GO)
}

#[test]
fn kcp_vectors_replay() {
    let scenarios = load_dir(vector_dir());
    let names: Vec<&str> = scenarios.iter().map(|s| s.name.as_str()).collect();
    for r in REQUIRED {
        assert!(
            names.contains(r),
            "vector {r}.txt is missing from {} (run tests/go/regen.sh)",
            vector_dir().display()
        );
    }
    let mut failures = Vec::new();
    let mut ops = 0;
    for sc in &scenarios {
        ops += sc.ops.len();
        // A panic inside our KCP is a failure of that scenario, not of the whole run.
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| replay(sc)));
        match r {
            Ok(Ok(())) => eprintln!("ok      {}", sc.name),
            Ok(Err(msg)) => {
                eprintln!("MISMATCH {}", sc.name);
                failures.push(msg);
            }
            Err(p) => {
                let msg = p
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                eprintln!("PANIC   {}", sc.name);
                failures.push(format!("scenario `{}`: tether panicked: {msg}", sc.name));
            }
        }
    }
    if !failures.is_empty() {
        let mut report = format!(
            "{} of {} kcp-go vector scenarios diverge ({} ops in total):\n",
            failures.len(),
            scenarios.len(),
            ops
        );
        for f in &failures {
            let _ = writeln!(report, "\n{f}");
        }
        panic!("{report}");
    }
}

/// A unique scratch directory under the system temp dir (removed by the caller).
fn scratch_dir(tag: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let d = std::env::temp_dir().join(format!("tether-{tag}-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap_or_else(|e| panic!("creating {}: {e}", d.display()));
    d
}

fn read_txt_files(dir: &Path) -> BTreeMap<String, String> {
    std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "txt"))
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            let text = std::fs::read_to_string(&p)
                .unwrap_or_else(|e| panic!("reading {}: {e}", p.display()));
            (name, text)
        })
        .collect()
}

#[test]
fn vectors_regenerate_identically() {
    if !go::require_peer(
        "the Go toolchain with Debian's kcp-go 5.6.1 (to regenerate the KCP vectors)",
    ) {
        return;
    }
    let bin = go::build_go("kcpvectors");
    let dir = scratch_dir("kcpvectors");
    let out = std::process::Command::new(&bin)
        .arg(&dir)
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", bin.display()));
    assert!(
        out.status.success(),
        "{} failed ({}): {}",
        bin.display(),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let fresh = read_txt_files(&dir);
    let _ = std::fs::remove_dir_all(&dir);
    let checked_in = read_txt_files(&vector_dir());
    let fresh_names: Vec<_> = fresh.keys().collect();
    let old_names: Vec<_> = checked_in.keys().collect();
    assert_eq!(
        fresh_names, old_names,
        "the dumper's scenario set differs from tests/vectors/kcp: run tests/go/regen.sh"
    );
    for (name, text) in &fresh {
        let old = &checked_in[name];
        if text != old {
            let line = text
                .lines()
                .zip(old.lines())
                .position(|(a, b)| a != b)
                .unwrap_or(text.lines().count().min(old.lines().count()));
            panic!(
                "tests/vectors/kcp/{name} is stale: first difference at line {} (run tests/go/regen.sh and review the diff)\n  fresh:      {}\n  checked in: {}",
                line + 1,
                text.lines().nth(line).map(|l| l.chars().take(200).collect::<String>()).unwrap_or_default(),
                old.lines().nth(line).map(|l| l.chars().take(200).collect::<String>()).unwrap_or_default(),
            );
        }
    }
}
