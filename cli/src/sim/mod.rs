//! `tether sim`: a KCP transfer between two in-memory peers over a simulated link, reporting
//! what a kcptun user wants to know before choosing settings.
use std::io::Write as _;
use std::time::Instant;

use tether_core::kcp::MODE_NAMES;
use tether_core::sim::transfer::{run_transfer, TransferReport};

mod args;
mod json;
mod text;

pub use args::SimArgs;

/// Runs `tether sim`; returns the process exit code.
pub fn run(args: &SimArgs) -> i32 {
    let start = Instant::now();
    let modes: Vec<&str> = if args.compare_modes {
        MODE_NAMES.to_vec()
    } else {
        vec![args.mode.as_str()]
    };
    let reports: Vec<(&str, TransferReport)> = modes
        .iter()
        .map(|m| (*m, run_transfer(&args.transfer(m), start)))
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
    let ok = reports
        .iter()
        .all(|(_, r)| r.completed && r.sha256_sent == r.sha256_received);
    if ok {
        0
    } else {
        1
    }
}
