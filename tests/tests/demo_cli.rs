//! `tether demo` and `tether sim --plot` as a user runs them: the tour's table has its
//! tunnel row (and, where namespaces and TUN work, the plain-TCP row; always in CI), the
//! upload is verified, and the figures are well-formed SVG with one line per run.
use std::path::PathBuf;
use std::process::Command;

use tether_tests::tether_bin::tether_bin;

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tether-demo-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir.join(name)
}

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// The SVG text, checked to be one whole `<svg>` document.
fn svg(path: &PathBuf) -> String {
    let text = std::fs::read_to_string(path).expect("the plot was written");
    let t = text.trim();
    assert!(
        t.starts_with("<svg") && t.ends_with("</svg>"),
        "not an SVG document: {}",
        &t[..t.len().min(200)]
    );
    assert_eq!(t.matches("<svg").count(), 1);
    text
}

#[test]
fn demo_tour_prints_both_rows_verifies_and_plots() {
    let plot = scratch("x.svg");
    let out = Command::new(tether_bin())
        .args([
            "demo",
            "--bytes",
            "4MiB",
            "--tcp-time-limit",
            "5s",
            "--plot",
        ])
        .arg(&plot)
        .output()
        .expect("run tether demo");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "tether demo failed:\n{stdout}\n{stderr}"
    );
    let row = |name: &str| {
        stdout
            .lines()
            .find(|l| l.starts_with(name) && l.contains("Mb/s"))
            .map(str::to_owned)
    };
    let tunnel = row("tunnel ").unwrap_or_else(|| panic!("no tunnel row:\n{stdout}"));
    assert!(tunnel.contains("4.00 MiB"), "{tunnel}");
    assert!(tunnel.trim_end().ends_with("verified"), "{tunnel}");
    let tcp = row("plain TCP ");
    match &tcp {
        Some(line) => assert!(line.contains("verified"), "{line}"),
        None => {
            assert!(
                !in_ci(),
                "CI has namespaces and TUN: the plain-TCP row must be there:\n{stdout}\n{stderr}"
            );
            assert!(
                stdout.contains("plain TCP  (no row)"),
                "a missing TCP row says why:\n{stdout}"
            );
        }
    }
    // Part 2: the simulator's mode comparison follows the tour.
    for mode in ["normal", "fast", "fast2", "fast3"] {
        assert!(
            stdout
                .lines()
                .any(|l| l.starts_with(mode) && l.trim_end().ends_with("ok")),
            "{mode} row missing:\n{stdout}"
        );
    }
    let svg = svg(&plot);
    assert!(svg.contains("\ntunnel\n"), "tunnel line");
    if tcp.is_some() {
        assert!(svg.contains("plain TCP"), "plain-TCP line");
    }
}

#[test]
fn sim_compare_modes_plots_one_line_per_mode() {
    let plot = scratch("modes.svg");
    let out = Command::new(tether_bin())
        .args([
            "sim",
            "--bytes",
            "256KiB",
            "--loss",
            "5%",
            "--rtt",
            "40ms",
            "--seed",
            "3",
            "--compare-modes",
            "--plot",
        ])
        .arg(&plot)
        .output()
        .expect("run tether sim");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let svg = svg(&plot);
    for mode in ["normal", "fast", "fast2", "fast3"] {
        // Each mode is in both panels' legends.
        let label = format!("\nmode {mode}\n");
        assert_eq!(svg.matches(&label).count(), 2, "{mode}: {label:?}");
    }
    // Four modes, two panels: a line and a legend swatch each, one colour per mode (the
    // axes are drawn 1 px wide).
    let lines: Vec<&str> = svg
        .lines()
        .filter(|l| l.starts_with("<polyline") && l.contains("stroke-width=\"2\""))
        .collect();
    assert_eq!(lines.len(), 16, "{lines:?}");
    let colour = |l: &&str| l.split("stroke=\"").nth(1).map(|c| c[..7].to_owned());
    let colours: std::collections::BTreeSet<_> = lines.iter().filter_map(colour).collect();
    assert_eq!(colours.len(), 4, "{colours:?}");
}
