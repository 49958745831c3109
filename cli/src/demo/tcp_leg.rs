//! The plain-TCP leg: the same upload and probe over kernel TCP, through the same netem
//! engine, settings and seed as the tunnel's UDP link.
//!
//! The UDP proxy cannot impair TCP and the kernel here may have no netem, so the leg runs in
//! a child process (`tether demo-tcp-leg`) that enters a fresh network namespace while still
//! single-threaded ([`netns`]), brings up a TUN device, and relays every IP packet the
//! kernel routes into it through the engine, rewritten by the double NAT of [`nat`] so that
//! both directions of the connection cross the impaired path. The child prints `progress
//! BYTES` lines and one `result JSON` line on stdout; the parent reads them.
use std::io::{self, Write as _};
use std::net::SocketAddr;
use std::pin::pin;
use std::process::Stdio;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use indicatif::ProgressBar;
use serde::{Deserialize, Serialize};
use tether_core::sim::netem::{Dir, Engine, Report, Slot};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tun_rs::{AsyncDevice, DeviceBuilder};

use super::args::{DemoArgs, TcpLegArgs};
use super::nat::{self, Way};
use super::netns::{self, NamespaceError};
use super::workload::{self, LegResult, Received};
use crate::netem::send_outcome;

/// The child's exit code when the namespace or the TUN device is not available.
const UNAVAILABLE: i32 = 3;
/// Largest IP packet read from the TUN.
const MAX_PACKET: usize = 65_535;
/// The TUN's MTU (Ethernet's, as a real path would have).
const MTU: u16 = 1500;
/// Beyond the time limit, how long the parent waits for the child (set-up, probe, report).
const CHILD_GRACE: Duration = Duration::from_secs(30);

/// What the plain-TCP leg measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TcpReport {
    /// Throughput, latency, verification.
    pub leg: LegResult,
    /// The namespace's kernel TCP retransmissions (`/proc/net/snmp` Tcp RetransSegs).
    pub retrans_segs: Option<u64>,
    /// Packets the netem engine dropped toward the target and back.
    pub drops: (u64, u64),
    /// The congestion control the namespace's TCP used.
    pub congestion: String,
}

/// Runs the leg in a child process, moving `bar` with its progress; `Err` says why there is
/// no TCP row (one line, with what to do about it).
pub async fn run(args: &DemoArgs, bar: ProgressBar) -> Result<TcpReport, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find the tether binary: {e}"))?;
    let mut child = tokio::process::Command::new(exe)
        .args(args.tcp_leg_args())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot start `tether demo-tcp-leg`: {e}"))?;
    let (Some(stdout), Some(mut stderr)) = (child.stdout.take(), child.stderr.take()) else {
        return Err("`tether demo-tcp-leg` has no pipes".into());
    };
    let errors = tokio::spawn(async move {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text).await;
        text
    });
    let read = async {
        let mut lines = BufReader::new(stdout).lines();
        let mut result = None;
        while let Ok(Some(line)) = lines.next_line().await {
            if let Some(n) = line.strip_prefix("progress ") {
                super::advance(&bar, n.trim().parse().unwrap_or(0));
            } else if let Some(json) = line.strip_prefix("result ") {
                result = serde_json::from_str::<TcpReport>(json).ok();
            }
        }
        result
    };
    let limit = args.tcp_time_limit + CHILD_GRACE;
    let result = tokio::time::timeout(limit, read).await;
    let _ = child.start_kill();
    let status = child.wait().await.ok();
    let why = errors.await.unwrap_or_default();
    let why = why.lines().last().unwrap_or("").trim().to_string();
    match result {
        Ok(Some(report)) => Ok(report),
        Err(_) => Err(format!(
            "the plain-TCP leg did not finish within {} s and was stopped",
            limit.as_secs()
        )),
        Ok(None) if !why.is_empty() => Err(why),
        Ok(None) => Err(format!(
            "`tether demo-tcp-leg` ended without a result ({})",
            status.map_or("no status".into(), |s| s.to_string())
        )),
    }
}

/// `tether demo-tcp-leg`: enters the namespace first (still single-threaded), then runs the
/// leg on a current-thread runtime; the process exit code.
pub fn child(args: &TcpLegArgs) -> i32 {
    if let Err(e) = netns::enter() {
        eprintln!("plain-TCP leg unavailable: {e}");
        return UNAVAILABLE;
    }
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("plain-TCP leg: cannot start the runtime: {e}");
            return 1;
        }
    };
    match rt.block_on(leg(args)) {
        Ok(report) => match serde_json::to_string(&report) {
            Ok(json) => {
                let _ = writeln!(io::stdout(), "result {json}");
                0
            }
            Err(e) => {
                eprintln!("plain-TCP leg: {e}");
                1
            }
        },
        Err(LegError::Unavailable(e)) => {
            eprintln!("plain-TCP leg unavailable: {e}");
            UNAVAILABLE
        }
        Err(LegError::Io(e)) => {
            eprintln!("plain-TCP leg failed: {e}");
            1
        }
    }
}

#[derive(Debug, thiserror::Error)]
enum LegError {
    #[error(transparent)]
    Unavailable(#[from] NamespaceError),
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// Inside the namespace: TUN and relay, target, probe, upload, counters.
async fn leg(args: &TcpLegArgs) -> Result<TcpReport, LegError> {
    let dev = DeviceBuilder::new()
        .ipv4(nat::HOST, nat::PREFIX, None)
        .mtu(MTU)
        .packet_information(false)
        .build_async()
        .map_err(NamespaceError::Tun)?;
    let mut engine = Engine::new(args.leg.engine_config());
    let peer = SocketAddr::from((nat::HOST, 0));
    let slot = engine
        .admit(Instant::now(), peer)
        .ok_or_else(|| io::Error::other("the netem engine refused its one client"))?;
    let (stop_relay, stopped) = oneshot::channel();
    let relay = tokio::spawn(relay(dev, engine, slot, stopped));

    let listener = TcpListener::bind((nat::HOST, 0)).await?;
    let addr = SocketAddr::from((nat::SERVER_ALIAS, listener.local_addr()?.port()));
    let received = Arc::new(Received::default());
    let target = tokio::spawn(workload::target(listener, Arc::clone(&received)));
    let progress = tokio::spawn(print_progress(Arc::clone(&received)));
    let latencies = tokio::time::timeout(args.time_limit, workload::probe(addr))
        .await
        .unwrap_or_else(|_| Ok(Vec::new()))?;
    // The sender's congestion control is the one that matters (the data flows its way).
    let congestion = std::sync::Mutex::new(String::new());
    let setup = |tcp: &tokio::net::TcpStream| {
        let now = netns::set_tcp_congestion(tcp, &args.congestion).map_err(io::Error::other)?;
        *congestion.lock().unwrap_or_else(|e| e.into_inner()) = now;
        Ok(())
    };
    let limit = Some(args.time_limit);
    let mut leg =
        workload::bulk(addr, args.leg.bytes, args.leg.seed, limit, received, &setup).await?;
    let congestion = congestion.into_inner().unwrap_or_else(|e| e.into_inner());
    leg.latencies = latencies;
    progress.abort();
    target.abort();
    let retrans_segs = netns::tcp_retrans_segs();
    let _ = stop_relay.send(());
    let report = relay.await.map_err(io::Error::other)?;
    Ok(TcpReport {
        leg,
        retrans_segs,
        drops: drops(&report),
        congestion,
    })
}

/// The engine's losses `(toward the target, back)`.
pub fn drops(r: &Report) -> (u64, u64) {
    let d = |dir: Dir| {
        let l = r.dir(dir).link;
        l.lost + l.queue_dropped + r.dir(dir).send_dropped
    };
    (d(Dir::Up), d(Dir::Down))
}

/// Prints the target's byte count every 100 ms for the parent's progress bar.
async fn print_progress(received: Arc<Received>) {
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    loop {
        tick.tick().await;
        let n = received.bytes.load(Ordering::Acquire);
        if writeln!(io::stdout(), "progress {n}").is_err() {
            // The parent is gone.
            return;
        }
    }
}

/// Moves packets TUN → NAT → engine → TUN until `stop`; the engine's counters.
async fn relay(
    dev: AsyncDevice,
    mut engine: Engine,
    slot: Slot,
    mut stop: oneshot::Receiver<()>,
) -> Report {
    let mut buf = vec![0u8; MAX_PACKET];
    let mut out = Vec::with_capacity(MAX_PACKET);
    let mut expired = Vec::new();
    let mut sleep = pin!(tokio::time::sleep(Duration::ZERO));
    loop {
        let now = Instant::now();
        while let Some(t) = engine.poll_transmit(now, &mut out) {
            let sent = dev.try_send(&out[..t.len]);
            engine.record_send(t.dir, send_outcome(sent));
        }
        engine.handle_timeout(now, &mut expired);
        let deadline = engine.poll_timeout();
        if let Some(d) = deadline {
            sleep.as_mut().reset(tokio::time::Instant::from_std(d));
        }
        tokio::select! {
            biased;
            _ = &mut stop => return engine.report(),
            r = dev.recv(&mut buf) => match r {
                Ok(n) => {
                    let packet = &mut buf[..n];
                    let dir = match nat::rewrite(packet) {
                        Some(Way::ToTarget) => Dir::Up,
                        Some(Way::ToClient) => Dir::Down,
                        // Not one of the leg's flows (e.g. IPv6 chatter): dropped unseen.
                        None => continue,
                    };
                    engine.handle_input(Instant::now(), slot, dir, packet);
                }
                Err(_) => engine.record_recv_error(Dir::Up),
            },
            () = &mut sleep, if deadline.is_some() => {}
        }
    }
}
