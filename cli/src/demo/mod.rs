//! `tether demo`: what tether does, in one screen, with no network needed: the kcptun modes
//! compared in the simulator, then a real KCP session over loopback UDP ([`live`]).
use std::time::Duration;

use crate::link_flags::LinkFlags;
use crate::sim::{self, SimArgs};

mod live;

/// Runs `tether demo`; returns the exit code.
pub fn run() -> i32 {
    println!("tether demo 1/2: 4 MiB through KCP between two in-memory peers, 10% loss each way,");
    println!("80 ms RTT, 20 Mbit/s bottleneck, kcptun client windows; all modes (same seed => same numbers).\n");
    let code = sim::run(&sim_args());
    if code != 0 {
        return code;
    }
    println!("\ntether demo 2/2: a real KCP session over loopback UDP (tokio runtime, kcp-go wire format):");
    println!("crypt aes, FEC 10/3, mode fast3, windows 1024, 64 MiB echoed back and verified.\n");
    live::run()
}

/// Part one: `tether sim --bytes 4MiB --loss 10% --rtt 80ms --jitter 5ms --rate 20mbit
/// --sndwnd 128 --rcvwnd 512 --seed 7 --compare-modes`, every other flag at its default.
fn sim_args() -> SimArgs {
    SimArgs {
        bytes: 4 << 20,
        impair: LinkFlags {
            preset: None,
            loss: Some(0.1),
            burst_loss: None,
            burst_len: 4.0,
            jitter: Some(Duration::from_millis(5)),
            reorder: None,
            reorder_delay: None,
            dup: None,
            corrupt: None,
            rate: Some(20_000_000),
            queue: 256 << 10,
        },
        rtt: Some(Duration::from_millis(80)),
        mode: "fast".into(),
        sndwnd: 128,
        rcvwnd: 512,
        mtu: 1350,
        reserved: 20,
        acknodelay: false,
        seed: 7,
        time_limit: Duration::from_secs(3600),
        compare_modes: true,
        json: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Wrap {
        #[command(flatten)]
        args: SimArgs,
    }

    #[test]
    fn demo_runs_the_sim_its_doc_names() {
        let parsed = Wrap::parse_from([
            "sim",
            "--bytes",
            "4MiB",
            "--loss",
            "10%",
            "--rtt",
            "80ms",
            "--jitter",
            "5ms",
            "--rate",
            "20mbit",
            "--sndwnd",
            "128",
            "--rcvwnd",
            "512",
            "--seed",
            "7",
            "--compare-modes",
        ]);
        assert_eq!(sim_args(), parsed.args);
    }
}
