//! `tether sim` as a user runs it: the same seed gives byte-identical output, and the
//! reported hashes match.
use std::process::Command;

use tether_tests::tether_bin::tether_bin;

fn sim(args: &[&str]) -> String {
    let out = Command::new(tether_bin())
        .arg("sim")
        .args(args)
        .output()
        .expect("run tether sim");
    assert!(
        out.status.success(),
        "tether sim {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

#[test]
fn same_seed_same_output() {
    let args = [
        "--bytes", "512KiB", "--loss", "10%", "--rtt", "80ms", "--jitter", "10ms", "--rate",
        "20mbit", "--mode", "fast2", "--sndwnd", "256", "--rcvwnd", "256", "--seed", "7", "--json",
    ];
    let a = sim(&args);
    let b = sim(&args);
    assert_eq!(a, b, "same seed must give identical output");
    assert!(a.contains("\"match\":true"), "{a}");
    assert!(a.contains("\"completed\":true"), "{a}");
    let mut other = args;
    other[15] = "8";
    assert_ne!(sim(&other), a, "another seed gives another run");
}

#[test]
fn compare_modes_prints_every_preset() {
    let t = sim(&[
        "--bytes",
        "256KiB",
        "--loss",
        "5%",
        "--rtt",
        "40ms",
        "--seed",
        "3",
        "--compare-modes",
    ]);
    for mode in ["normal", "fast", "fast2", "fast3"] {
        assert!(
            t.lines()
                .any(|l| l.starts_with(mode) && l.trim_end().ends_with("ok")),
            "{mode} row missing:\n{t}"
        );
    }
}
