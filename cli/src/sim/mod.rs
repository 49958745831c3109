//! `tether sim`: a KCP transfer between two in-memory peers over a simulated link, reporting
//! what a kcptun user wants to know before choosing settings.
use std::io::Write as _;
use std::time::Instant;

use tether_core::kcp::MODE_NAMES;
use tether_core::sim::transfer::{run_transfer, run_transfer_recorded, TransferReport};

use crate::plot::{self, Axes, Series};

mod args;
mod json;
mod text;

pub use args::SimArgs;
pub use text::{fmt_bytes, fmt_dur};

/// Runs `tether sim`; returns the process exit code.
pub fn run(args: &SimArgs) -> i32 {
    let start = Instant::now();
    let modes: Vec<&str> = if args.compare_modes {
        MODE_NAMES.to_vec()
    } else {
        vec![args.mode.as_str()]
    };
    // The timeline is recorded only for the plot (it changes nothing else).
    let transfer = if args.plot.is_some() {
        run_transfer_recorded
    } else {
        run_transfer
    };
    let reports: Vec<(&str, TransferReport)> = modes
        .iter()
        .map(|m| (*m, transfer(&args.transfer(m), start)))
        .collect();
    let out = if args.json {
        match json::json(args, &reports) {
            Ok(line) => line,
            Err(e) => {
                eprintln!("tether sim: cannot write the JSON: {e}");
                return 1;
            }
        }
    } else if args.compare_modes {
        text::table(args, &reports)
    } else {
        text::text(args, reports[0].0, &reports[0].1)
    };
    // A closed stdout (e.g. `| head`) is not an error worth a panic.
    let _ = writeln!(std::io::stdout(), "{out}");
    if let Some(path) = &args.plot {
        if let Err(e) = draw(args, path, &reports) {
            eprintln!("tether sim: {e}");
            return 1;
        }
    }
    let ok = reports
        .iter()
        .all(|(_, r)| r.completed && r.sha256_sent == r.sha256_received);
    if ok {
        0
    } else {
        1
    }
}

/// How finely throughput is binned over simulated time: about this many points per run.
const PLOT_POINTS: u32 = 60;

/// `--plot`: each run's delivered bytes, binned over simulated time, and its chunk
/// latencies (write to read, per MSS-sized chunk).
fn draw(
    args: &SimArgs,
    path: &std::path::Path,
    reports: &[(&str, TransferReport)],
) -> Result<(), plot::PlotError> {
    let longest = reports
        .iter()
        .map(|(_, r)| r.elapsed)
        .max()
        .unwrap_or_default();
    let bin = (longest / PLOT_POINTS).max(std::time::Duration::from_millis(1));
    let series: Vec<Series> = reports
        .iter()
        .map(|(mode, r)| Series {
            label: format!("mode {mode}"),
            throughput: plot::rates(&binned(&r.timeline, bin)),
            latency_ms: r.latencies.iter().map(|d| d.as_secs_f64() * 1e3).collect(),
        })
        .collect();
    let title = format!("tether sim: {}", args.describe());
    let axes = Axes {
        title: &title,
        time: "simulated seconds",
        latency: "per chunk, write to read",
    };
    plot::write_svg(path, axes, &series)
}

/// The timeline's cumulative bytes at the end of every `bin`, from 0 to its last sample.
fn binned(timeline: &[(std::time::Duration, u64)], bin: std::time::Duration) -> Vec<(f64, u64)> {
    let mut out = vec![(0.0, 0)];
    let mut edge = bin;
    let mut last = 0;
    for &(t, bytes) in timeline {
        while t > edge {
            out.push((edge.as_secs_f64(), last));
            edge += bin;
        }
        last = bytes;
    }
    // The last bin ends at its edge, not at the last sample: a sliver of a bin would
    // show as a spike.
    if let Some(&(_, bytes)) = timeline.last() {
        out.push((edge.as_secs_f64(), bytes));
    }
    out
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    #[test]
    fn timeline_is_binned_to_cumulative_edges() {
        let ms = Duration::from_millis;
        let t = [(ms(50), 10), (ms(150), 30), (ms(170), 40), (ms(420), 90)];
        assert_eq!(
            super::binned(&t, ms(100)),
            vec![
                (0.0, 0),
                (0.1, 10),
                (0.2, 40),
                (0.3, 40),
                (0.4, 40),
                (0.5, 90)
            ]
        );
        assert_eq!(super::binned(&[], ms(100)), vec![(0.0, 0)]);
    }
}
