//! Golden vectors of kcp-go 5.6.1's segment output (tests/vectors/kcp/*.txt, written by
//! tests/go/kcpvectors via tests/go/regen.sh), replayed against tether's KCP: every emitted
//! datagram and every return value must match byte for byte (kcp.md §4–§13).

use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tether_core::kcp::{Kcp, KcpConfig};
use tether_tests::go;
use tether_tests::vectors::{self, describe_datagram, load_dir, short_hex, Op, Scenario};

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

fn config_of(sc: &Scenario) -> KcpConfig {
    KcpConfig {
        nodelay: sc.nodelay != 0,
        interval: sc.interval,
        resend: sc.resend,
        nocwnd: sc.nc != 0,
        snd_wnd: sc.snd_wnd,
        rcv_wnd: sc.rcv_wnd,
        mtu: sc.mtu,
        reserved: sc.reserved,
        stream: sc.stream,
        ack_nodelay: false,
        dead_link: 20,
    }
}

/// A datagram side by side: hex (abbreviated) and decoded headers.
fn show(label: &str, d: &[u8], reserved: usize) -> String {
    format!(
        "  {label}: {}\n    {}",
        short_hex(d),
        describe_datagram(d, reserved)
    )
}

/// First differing byte offset of two datagrams, with the field it falls in.
fn first_diff(exp: &[u8], act: &[u8], reserved: usize) -> String {
    let i = exp
        .iter()
        .zip(act)
        .position(|(a, b)| a != b)
        .unwrap_or(exp.len().min(act.len()));
    if i < reserved {
        return format!("first difference at byte {i} (reserved prefix)");
    }
    // Walk the expected segments to name the field.
    let mut off = reserved;
    let (hs, _) = vectors::decode_segments(exp, reserved);
    for (k, h) in hs.iter().enumerate() {
        let end = off + 24 + h.len as usize;
        if i < end {
            let rel = i - off;
            let field = match rel {
                0..=3 => "conv",
                4 => "cmd",
                5 => "frg",
                6..=7 => "wnd",
                8..=11 => "ts",
                12..=15 => "sn",
                16..=19 => "una",
                20..=23 => "len",
                _ => "data",
            };
            return format!("first difference at byte {i}: segment #{k}, field {field}");
        }
        off = end;
    }
    format!(
        "first difference at byte {i} (lengths {} vs {})",
        exp.len(),
        act.len()
    )
}

/// Replays one scenario; `Err` describes the first divergence.
fn replay(sc: &Scenario) -> Result<(), String> {
    let start = Instant::now();
    let mut clock_ms: u64 = 0;
    let reserved = sc.reserved as usize;
    let mut kcp = Kcp::new(sc.conv, config_of(sc), start);
    // Datagrams our KCP emitted for the latest op that the transcript has not consumed yet.
    let mut pending: VecDeque<Vec<u8>> = VecDeque::new();
    let mut last_op: Option<usize> = None;

    let fail = |i: usize, what: String| -> String {
        let op = &sc.ops[i];
        format!(
            "scenario `{}` ({}), op #{i} at {}:\n  op: {op}\n{what}",
            sc.name,
            sc.purpose,
            sc.location(i)
        )
    };
    let drain = |kcp: &mut Kcp, pending: &mut VecDeque<Vec<u8>>| {
        let mut buf = Vec::new();
        while kcp.pop_output(&mut buf).is_some() {
            pending.push_back(std::mem::take(&mut buf));
        }
    };

    for (i, op) in sc.ops.iter().enumerate() {
        let now = start + Duration::from_millis(clock_ms);
        if !matches!(op, Op::Out { .. }) {
            // Everything the previous op emitted must have been matched by `out` lines.
            if let Some(extra) = pending.front() {
                let prev = last_op.unwrap_or(i);
                let mut msg = format!(
                    "  tether emitted {} more datagram(s) than kcp-go after op #{prev} ({}):\n",
                    pending.len(),
                    sc.ops[prev]
                );
                msg += &show("unexpected", extra, reserved);
                return Err(fail(prev, msg));
            }
            last_op = Some(i);
        }
        match op {
            Op::Send { data, ret } => {
                let got = match kcp.send(data) {
                    Ok(_) => 0,
                    Err(e) => e.code(),
                };
                if got != *ret {
                    return Err(fail(
                        i,
                        format!("  send returned {got}, kcp-go returned {ret}"),
                    ));
                }
            }
            Op::Input {
                data,
                regular,
                ack_nodelay,
                ret,
            } => {
                let got = match kcp.input(now, data, *regular, *ack_nodelay) {
                    Ok(()) => 0,
                    Err(e) => e.code(),
                };
                if got != *ret {
                    return Err(fail(
                        i,
                        format!(
                            "  input returned {got}, kcp-go returned {ret}\n  datagram: {}",
                            describe_datagram(data, 0)
                        ),
                    ));
                }
            }
            Op::Flush { ret } | Op::FlushAck { ret } => {
                let ack_only = matches!(op, Op::FlushAck { .. });
                let got = kcp.flush(now, ack_only);
                if got != *ret {
                    return Err(fail(
                        i,
                        format!("  flush returned {got}, kcp-go returned {ret}"),
                    ));
                }
            }
            Op::Advance { ms } => clock_ms += ms,
            Op::Recv { cap, ret, data } => {
                let mut buf = vec![0u8; *cap];
                let (got, got_data) = match kcp.recv(&mut buf) {
                    Ok(n) => (n as i32, buf[..n].to_vec()),
                    Err(e) => (e.code(), Vec::new()),
                };
                if got != *ret || got_data != *data {
                    return Err(fail(
                        i,
                        format!(
                            "  recv returned {got} data={}\n  kcp-go returned {ret} data={}",
                            short_hex(&got_data),
                            short_hex(data)
                        ),
                    ));
                }
            }
            Op::Out { data: expected } => match pending.pop_front() {
                None => {
                    let prev = last_op.unwrap_or(0);
                    return Err(fail(
                        i,
                        format!(
                            "  kcp-go emitted a datagram after op #{prev} ({}) that tether did not:\n{}",
                            sc.ops[prev],
                            show("expected", expected, reserved)
                        ),
                    ));
                }
                Some(actual) if actual != *expected => {
                    return Err(fail(
                        i,
                        format!(
                            "  datagram differs ({}):\n{}\n{}",
                            first_diff(expected, &actual, reserved),
                            show("expected (kcp-go)", expected, reserved),
                            show("actual (tether)", &actual, reserved)
                        ),
                    ));
                }
                Some(_) => {}
            },
        }
        if !matches!(op, Op::Out { .. }) {
            drain(&mut kcp, &mut pending);
        }
    }
    if let Some(extra) = pending.front() {
        let prev = last_op.unwrap_or(0);
        return Err(fail(
            prev,
            format!(
                "  tether emitted {} more datagram(s) than kcp-go after the last op:\n{}",
                pending.len(),
                show("unexpected", extra, reserved)
            ),
        ));
    }
    Ok(())
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
