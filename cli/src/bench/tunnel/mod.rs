//! `tether bench-tunnel`: the kcptun-compatible tunnel (`tether client`/`tether server`)
//! against Debian's kcptun (`kcptun-client`/`kcptun-server`), side by side in one run (issue
//! 17, "Measure").
//!
//! For each case (link: loopback or through `tether netem`; one or `--streams` TCP
//! connections) and each run, each implementation gets a fresh server, netem and client
//! ([`ends`]), the bench process uploads incompressible bytes through it to its own TCP sink
//! ([`load`]) for `--seconds` (or `--bytes`), and reads both tunnel processes' CPU from
//! `/proc`. The implementations take turns within a case, alternating who goes first, so a
//! drifting machine load hits both alike. [`table`] pools the runs and prints the figures
//! and the ratios tether / kcptun; the targets live in the README, not in the binary.
use std::time::{Duration, Instant};

use super::procfs::{loadavg, proc_cpu_seconds};
use super::smux_payload::Pool;
use super::BenchError;

mod args;
mod ends;
mod load;
mod table;

pub use args::TunnelBenchArgs;

use args::Link;
use ends::{Impl, Programs, Setup, Tunnel};
use load::{Load, Sink};
use table::{Case, Figures, Report, Sample};

/// Bound on a `--bytes` measurement.
const BYTES_LIMIT: Duration = Duration::from_secs(600);

/// Runs `tether bench-tunnel`; returns the exit code (2: kcptun is not installed).
pub fn run_tunnel_bench(args: &TunnelBenchArgs) -> i32 {
    BenchError::exit("bench-tunnel", bench(args))
}

fn bench(args: &TunnelBenchArgs) -> Result<(), BenchError> {
    let programs = Programs::find(args)?;
    if cfg!(debug_assertions) {
        eprintln!("tether bench-tunnel: WARNING: this is a debug build of tether; build with --release for meaningful numbers");
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| BenchError::Failed(format!("cannot start the runtime: {e}")))?;
    let bench = Bench {
        programs,
        args,
        rt: rt.handle().clone(),
        pool: Pool::random(),
    };
    let report = bench.all()?;
    print!("{}", report.markdown());
    if let Some(path) = &args.json {
        let json = report
            .json()
            .map_err(|e| BenchError::Failed(format!("JSON: {e}")))?;
        std::fs::write(path, json + "\n")
            .map_err(|e| BenchError::Failed(format!("writing {}: {e}", path.display())))?;
    }
    Ok(())
}

/// What every measurement shares.
struct Bench<'a> {
    programs: Programs,
    args: &'a TunnelBenchArgs,
    rt: tokio::runtime::Handle,
    pool: Pool,
}

impl Bench<'_> {
    /// Every case, every run, both implementations.
    fn all(&self) -> Result<Report, BenchError> {
        let args = self.args;
        let loadavg_before = loadavg();
        let started = Instant::now();
        let mut cases = Vec::new();
        for &link in &args.links {
            for streams in args.stream_counts() {
                cases.push(self.case(link, streams).map_err(BenchError::Failed)?);
            }
        }
        Ok(Report {
            command: command_line(),
            seconds: args.seconds.as_secs_f64(),
            bytes: args.bytes,
            runs: args.runs,
            netem_loss_percent: args.loss * 100.0,
            netem_rtt_ms: args.rtt.as_secs_f64() * 1e3,
            args: args.args.clone(),
            cpus: std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get),
            loadavg_before,
            loadavg_after: loadavg(),
            wall_seconds: started.elapsed().as_secs_f64(),
            cases,
        })
    }

    /// Both implementations in one case, `--runs` times each, taking turns.
    fn case(&self, link: Link, streams: usize) -> Result<Case, String> {
        let (mut tether, mut kcptun) = (Vec::new(), Vec::new());
        for run in 0..self.args.runs {
            let order = if run % 2 == 0 {
                [Impl::Tether, Impl::Kcptun]
            } else {
                [Impl::Kcptun, Impl::Tether]
            };
            for imp in order {
                eprint!(
                    "tether bench-tunnel: [{}, {streams} stream(s), run {}/{}] {} ↔ {}: ",
                    link.name(),
                    run + 1,
                    self.args.runs,
                    imp.name(),
                    imp.name()
                );
                let s = self.measure(imp, link, streams, run as u64 + 1)?;
                eprintln!(
                    "{:.1} MB/s, client {:.2} s CPU, server {:.2} s CPU",
                    s.mb_per_s, s.client_cpu_seconds, s.server_cpu_seconds
                );
                match imp {
                    Impl::Tether => tether.push(s),
                    Impl::Kcptun => kcptun.push(s),
                }
            }
        }
        Ok(Case::new(
            link,
            streams,
            Figures::pool(tether),
            Figures::pool(kcptun),
        ))
    }

    /// The flags of all four ends, and of netem for `link`.
    fn setup(&self, link: Link, seed: u64) -> (Vec<String>, Option<Vec<String>>) {
        let mut common = vec!["--key".to_string(), self.args.key.clone(), "--quiet".into()];
        common.extend(self.args.extra_args());
        let netem = (link == Link::Netem).then(|| {
            let one_way = self.args.rtt / 2;
            vec![
                "--loss".to_string(),
                self.args.loss.to_string(),
                "--delay".into(),
                format!("{}us", one_way.as_micros()),
                "--seed".into(),
                seed.to_string(),
                "--quiet".into(),
            ]
        });
        (common, netem)
    }

    /// One measurement: fresh sink and tunnel, the load until the time or the bytes are
    /// done, both tunnel processes' CPU over it.
    fn measure(&self, imp: Impl, link: Link, streams: usize, seed: u64) -> Result<Sample, String> {
        let sink = Sink::start(&self.rt).map_err(|e| format!("TCP target: {e}"))?;
        let (common, netem) = self.setup(link, seed);
        let setup = Setup {
            common: &common,
            netem,
        };
        let tunnel = Tunnel::start(&self.programs, imp, sink.addr, &setup)?;
        let (cpid, spid) = (tunnel.client.pid(), tunnel.server.pid());
        let per_stream = self.args.bytes.map(|b| b.div_ceil(streams as u64));
        let goal = per_stream.map(|p| p * streams as u64);
        let limit = if goal.is_some() {
            BYTES_LIMIT
        } else {
            self.args.seconds
        };
        let (c0, s0) = (proc_cpu_seconds(&cpid), proc_cpu_seconds(&spid));
        let t0 = Instant::now();
        let load = Load::start(&self.rt, tunnel.local, streams, per_stream, &self.pool);
        let mut stall = Stall::new(t0);
        loop {
            std::thread::sleep(Duration::from_millis(5));
            let got = sink.received();
            stall.saw(got);
            if goal.is_some_and(|g| got >= g) || t0.elapsed() >= limit {
                break;
            }
            if let Some(e) = load.first_error() {
                return Err(tunnel.failed(&format!("{} tunnel: {e}", imp.name())));
            }
            if tunnel.client.exited() || tunnel.server.exited() {
                return Err(tunnel.failed(&format!("{} tunnel end exited", imp.name())));
            }
        }
        let seconds = t0.elapsed().as_secs_f64();
        let bytes = sink.received();
        let (c1, s1) = (proc_cpu_seconds(&cpid), proc_cpu_seconds(&spid));
        stall.saw(bytes);
        drop(load);
        if goal.is_some_and(|g| bytes < g) {
            return Err(tunnel.failed(&format!(
                "{} tunnel: only {bytes} of {} bytes within {limit:?}",
                imp.name(),
                goal.unwrap_or(0)
            )));
        }
        let mut sample = Sample::new(bytes, seconds, c1 - c0, s1 - s0);
        sample.longest_stall_seconds = stall.longest.as_secs_f64();
        sample.longest_stall_from_seconds = stall.longest_from.as_secs_f64();
        Ok(sample)
    }
}

/// The longest time the target's byte count stood still (from the first connect on):
/// kcptun 20210922 sometimes sits for seconds with 16 streams opened at once, which the
/// throughput alone would hide.
struct Stall {
    t0: Instant,
    last_count: u64,
    since: Instant,
    longest: Duration,
    /// When the longest stall began, from `t0`.
    longest_from: Duration,
}

impl Stall {
    fn new(t0: Instant) -> Stall {
        Stall {
            t0,
            last_count: 0,
            since: t0,
            longest: Duration::ZERO,
            longest_from: Duration::ZERO,
        }
    }

    /// The target has `count` bytes now.
    fn saw(&mut self, count: u64) {
        let now = Instant::now();
        if count != self.last_count {
            self.last_count = count;
            self.since = now;
        }
        if now - self.since > self.longest {
            self.longest = now - self.since;
            self.longest_from = self.since - self.t0;
        }
    }
}

/// This process's command line, as typed (arguments with spaces quoted).
fn command_line() -> String {
    std::env::args()
        .enumerate()
        .map(|(i, a)| {
            let a = if i == 0 { "tether".to_string() } else { a };
            if a.is_empty() || a.contains(char::is_whitespace) {
                format!("'{a}'")
            } else {
                a
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}
