//! `tether netem`: a userspace UDP impairment proxy built on the simulator's [`Link`] model,
//! for impairing real sockets where the kernel has no netem.
//!
//! Clients send to `--listen`; for each distinct client address the proxy opens its own
//! upstream socket toward `--forward` (so the server sees one address per client, like a
//! NAT), and impairs both directions with their own seeded link. The mapping table, links
//! and counters are sans-IO ([`tether_core::sim::netem`]); this module owns the sockets and
//! the clock.
//!
//! One task runs everything: wait until a socket is readable or the earliest link deadline,
//! read every readable socket until `WouldBlock` (bounded per batch) with one `now` for the
//! batch, feed the links, send what is due. A send that would block is dropped and counted:
//! the only queues are the links' own bounded ones.
//!
//! [`Link`]: tether_core::sim::Link
use std::io::{self, Write as _};
use std::time::Instant;

mod args;
mod proxy;
mod report;
mod signals;
mod socket;

pub use args::NetemArgs;
pub use proxy::{send_outcome, Proxy};
use report::format_report;
use signals::Signals;

/// Runs `tether netem`; returns the process exit code.
pub fn run(args: &NetemArgs) -> i32 {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("netem: cannot start the runtime: {e}");
            return 1;
        }
    };
    rt.block_on(serve(args))
}

async fn serve(args: &NetemArgs) -> i32 {
    let (mut proxy, mut signals) = match start(args) {
        Ok(started) => started,
        Err(msg) => {
            eprintln!("netem: {msg}");
            return 1;
        }
    };
    let started = Instant::now();
    // A --duration too long for an Instant means no stop.
    let stop = args.duration.and_then(|d| started.checked_add(d));
    let why = proxy.run(stop, Some(&mut signals)).await;
    eprint!(
        "{}",
        format_report(&proxy.report(), started.elapsed(), Some(why))
    );
    0
}

/// Binds the proxy, installs the signal handlers and prints the readiness line
/// (`netem listening on <addr> forwarding to <addr>`) that scripts and tests wait for.
fn start(args: &NetemArgs) -> Result<(Proxy, Signals), String> {
    let proxy = Proxy::bind(args.listen, args.forward, args.engine_config(), args.quiet)
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    let signals = Signals::new().map_err(|e| format!("cannot install signal handlers: {e}"))?;
    let local = proxy.local_addr().map_err(|e| e.to_string())?;
    let mut out = io::stdout().lock();
    writeln!(
        out,
        "netem listening on {local} forwarding to {}",
        args.forward
    )
    .and_then(|()| out.flush())
    .map_err(|e| format!("cannot write the readiness line: {e}"))?;
    Ok((proxy, signals))
}
