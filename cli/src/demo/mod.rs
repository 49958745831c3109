//! `tether demo`: the tunnel tour, then the kcptun modes in the simulator.
//!
//! Part 1 runs the real `tether server` and `tether client` in this process on loopback,
//! their UDP link impaired by the in-process netem (3 % loss each way and 60 ms RTT by
//! default), pushes a verified upload and small requests through the tunnel
//! ([`tunnel_leg`]), and does the same over plain kernel TCP through the same impairment in
//! a namespace of its own ([`tcp_leg`]), both at once, with a progress bar each. Then the
//! table ([`table`]) and, with `--plot`, the figure. Part 2 is `tether sim
//! --compare-modes` on a lossier simulated link.
use std::io::IsTerminal as _;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::link_flags::LinkFlags;
use crate::plot::{self, Axes, Series};
use crate::sim::{self, fmt_bytes, fmt_dur, SimArgs};

/// `println!` that ignores a closed stdout (`tether demo | head`): never a panic.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

mod args;
mod nat;
mod netns;
mod table;
mod tcp_leg;
mod tunnel_leg;
mod workload;

pub use args::{DemoArgs, TcpLegArgs};
pub use tcp_leg::child as run_tcp_leg;

/// Runs `tether demo`; returns the exit code.
pub fn run(args: &DemoArgs) -> i32 {
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("tether demo: cannot start the runtime: {e}");
            return 1;
        }
    };
    let code = rt.block_on(tour(args));
    rt.shutdown_timeout(Duration::from_millis(200));
    if code != 0 {
        return code;
    }
    say!("\ntether demo 2/2: 4 MiB through KCP between two in-memory peers, 10% loss each way,");
    say!("80 ms RTT, 20 Mbit/s bottleneck, kcptun client windows; all modes (same seed => same numbers).\n");
    sim::run(&sim_args())
}

/// Part 1; the exit code.
async fn tour(args: &DemoArgs) -> i32 {
    say!(
        "tether demo 1/2: {} through a kcptun-compatible tunnel (tether client -> tether server, \
         aes, mode {}, FEC 10/3, snappy, smux v1, client windows {}/{})",
        fmt_bytes(args.leg.bytes),
        args.mode,
        args.sndwnd,
        args.rcvwnd
    );
    let link = format!(
        "{:.1}% loss each way, {} RTT, seed {}",
        args.leg.loss * 100.0,
        fmt_dur(args.leg.rtt),
        args.leg.seed
    );
    if args.no_tcp {
        say!("through an impaired link: {link}.\n");
    } else {
        say!(
            "and over plain TCP, each through the same impaired link: {link} (plain TCP stops \
             after {}).\n",
            fmt_dur(args.tcp_time_limit)
        );
    }
    let bars = Bars::new(args);
    let received = Arc::new(workload::Received::default());
    let ticker = {
        let (bar, received) = (bars.tunnel.clone(), Arc::clone(&received));
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(100));
            loop {
                tick.tick().await;
                advance(&bar, received.bytes.load(Ordering::Acquire));
            }
        })
    };
    let tcp = (!args.no_tcp).then(|| {
        let (a, bar) = (args.clone(), bars.tcp.clone());
        tokio::spawn(async move { tcp_leg::run(&a, bar).await })
    });
    let tunnel = tunnel_leg::run(args, received).await;
    ticker.abort();
    bars.tunnel.finish();
    let tcp = match tcp {
        Some(task) => Some(task.await.unwrap_or_else(|e| Err(e.to_string()))),
        None => None,
    };
    bars.tcp.finish();
    let tunnel = match tunnel {
        Ok(t) => t,
        Err(e) => {
            eprintln!("tether demo: the tunnel leg failed: {e}");
            return 1;
        }
    };
    say!("{}", table::render(&tunnel, tcp.as_ref()));
    if let Some(path) = &args.plot {
        let mut series = vec![leg_series("tunnel", &tunnel.leg)];
        if let Some(Ok(t)) = &tcp {
            series.push(leg_series("plain TCP", &t.leg));
        }
        let axes = Axes {
            title: &format!(
                "tether demo: {:.1}% loss each way, {} RTT",
                args.leg.loss * 100.0,
                fmt_dur(args.leg.rtt)
            ),
            time: "seconds since the upload started",
            latency: "64-byte requests",
        };
        if let Err(e) = plot::write_svg(path, axes, &series) {
            eprintln!("tether demo: {e}");
            return 1;
        }
        say!("\nplot written to {}", path.display());
    }
    let ok = tunnel.leg.verified && !matches!(&tcp, Some(Ok(t)) if !t.leg.verified);
    if ok {
        0
    } else {
        1
    }
}

/// Moves `bar` to `bytes`; its clock starts with the upload's first bytes (the probe
/// before it moves none).
pub fn advance(bar: &ProgressBar, bytes: u64) {
    if bar.position() == 0 && bytes > 0 {
        bar.reset_elapsed();
        bar.reset_eta();
    }
    bar.set_position(bytes);
}

fn leg_series(label: &str, leg: &workload::LegResult) -> Series {
    Series {
        label: label.into(),
        throughput: plot::rates(&leg.samples),
        latency_ms: leg.latencies.iter().map(|s| s * 1e3).collect(),
    }
}

/// The two progress bars (hidden with `--quiet` or when stdout is not a terminal).
struct Bars {
    tunnel: ProgressBar,
    tcp: ProgressBar,
}

impl Bars {
    fn new(args: &DemoArgs) -> Bars {
        let shown = !args.quiet && std::io::stdout().is_terminal();
        if !shown {
            return Bars {
                tunnel: ProgressBar::hidden(),
                tcp: ProgressBar::hidden(),
            };
        }
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stdout());
        let style = ProgressStyle::with_template(
            "{prefix:>10} [{bar:40}] {bytes:>10}/{total_bytes} {bytes_per_sec:>12} {elapsed:>4}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
        let bar = |name: &str| {
            let b = multi.add(ProgressBar::new(args.leg.bytes));
            b.set_style(style.clone());
            b.set_prefix(name.to_string());
            b
        };
        let tunnel = bar("tunnel");
        let tcp = if args.no_tcp {
            ProgressBar::hidden()
        } else {
            bar("plain TCP")
        };
        Bars { tunnel, tcp }
    }
}

/// Part two: `tether sim --bytes 4MiB --loss 10% --rtt 80ms --jitter 5ms --rate 20mbit
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
        plot: None,
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
