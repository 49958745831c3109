//! `tether bench-tunnel` end to end with tiny settings: one run of 1.5 s per measurement,
//! one and 4 streams, on loopback and through `tether netem`, tether against Debian's kcptun.
//! Checks the shape of the table and of the `--json` file and that both implementations
//! moved bytes; no speed is asserted (the figures are the bench's output, not a test's).
//! In CI (`CI=true`) a missing kcptun fails the test, it never skips.
use std::process::{Command, Output, Stdio};

use tether_tests::tether_bin::tether_bin;
use tether_tests::tunnel::require_kcptun;

fn bench_tunnel(args: &[&str]) -> Output {
    Command::new(tether_bin())
        .arg("bench-tunnel")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run tether bench-tunnel")
}

#[test]
fn both_implementations_move_bytes_on_both_links_and_the_report_has_every_case() {
    if !require_kcptun() {
        return;
    }
    let json_path = std::env::temp_dir().join(format!("bench-tunnel-{}.json", std::process::id()));
    let out = bench_tunnel(&[
        "--runs",
        "1",
        "--seconds",
        "1.5",
        "--streams",
        "4",
        "--json",
        json_path.to_str().expect("utf-8 temp path"),
    ]);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{}\n{stdout}\n{stderr}", out.status);

    let header =
        "| case | implementation | MB/s | MB/s per run | client CPU s/GiB | server CPU s/GiB |";
    assert!(stdout.contains(header), "{stdout}");
    for case in [
        "loopback, 1 stream",
        "loopback, 4 streams",
        "netem, 1 stream",
        "netem, 4 streams",
    ] {
        for imp in ["tether", "kcptun"] {
            let row = format!("| {case} | {imp} | ");
            assert_eq!(stdout.matches(&row).count(), 1, "{row:?} in\n{stdout}");
        }
    }
    assert!(
        !stdout.contains("PASS") && !stdout.contains("FAIL"),
        "{stdout}"
    );

    let text = std::fs::read_to_string(&json_path).expect("the --json file");
    let _ = std::fs::remove_file(&json_path);
    let v: serde_json::Value = serde_json::from_str(&text).expect("JSON");
    assert_eq!(v["runs"], 1);
    assert_eq!(v["netem_loss_percent"], 1.0);
    assert_eq!(v["netem_rtt_ms"], 40.0);
    let cases = v["cases"].as_array().expect("cases");
    let shape: Vec<(String, u64)> = cases
        .iter()
        .map(|c| {
            (
                c["link"].as_str().unwrap_or("?").to_string(),
                c["streams"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    let want = [("loopback", 1), ("loopback", 4), ("netem", 1), ("netem", 4)];
    assert_eq!(shape, want.map(|(l, s)| (l.to_string(), s)), "{text}");
    for imp in ["tether", "kcptun"] {
        let mut bytes = 0;
        for c in cases {
            let runs = c[imp]["runs"].as_array().expect("runs");
            assert_eq!(runs.len(), 1, "{text}");
            for key in [
                "seconds",
                "client_cpu_seconds",
                "server_cpu_seconds",
                "longest_stall_seconds",
            ] {
                assert!(runs[0][key].is_number(), "{imp} {key} in {text}");
            }
            bytes += runs[0]["bytes"].as_u64().expect("bytes");
        }
        // Per implementation, not per case: kcptun sometimes stalls for seconds when
        // connections open at once, longer than one of these short measurements.
        assert!(bytes > 0, "{imp} moved no byte: {text}");
    }
    for c in cases {
        for key in [
            "mb_per_s",
            "client_cpu_s_per_gib",
            "server_cpu_s_per_gib",
            "cpu_s_per_gib",
        ] {
            assert!(c["ratios"].get(key).is_some(), "ratio {key} in {text}");
        }
    }
}

#[test]
fn without_kcptun_it_says_how_to_get_it_and_exits_2() {
    let out = bench_tunnel(&["--kcptun-client", "/nonexistent/kcptun-client"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("/nonexistent/kcptun-client does not exist")
            && stderr.contains("apt-get install kcptun"),
        "{stderr}"
    );
}
