//! The tunnel leg: target, `tether server`, the netem proxy and `tether client`, all tasks
//! of this process on loopback, kcptun's default settings (aes, mode fast, FEC 10/3,
//! snappy, smux v1) but for the mode and the client's windows, which the demo's flags set:
//!
//! ```text
//! workload ─TCP─> client ─UDP─> netem proxy ─UDP─> server ─TCP─> target
//! ```
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tether_core::session::snmp::Snmp;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use super::args::DemoArgs;
use super::tcp_leg::drops;
use super::workload::{self, LegResult, Received};
use crate::netem::Proxy;
use crate::tunnel::in_process::{client_flags, server_flags, spawn_client, spawn_server};

/// Bound on the probe and the upload (a safety net: the tunnel normally finishes long before).
const SAFETY_LIMIT: Duration = Duration::from_secs(300);

/// What the tunnel leg measured.
#[derive(Debug, Clone)]
pub struct TunnelReport {
    /// Throughput, latency, verification.
    pub leg: LegResult,
    /// kcp-go's counters of the client and the server, summed.
    pub snmp: Snmp,
    /// Datagrams the netem engine dropped toward the server and back.
    pub drops: (u64, u64),
}

/// Runs the leg; `received` is the target's counter (the progress bar reads it).
pub async fn run(args: &DemoArgs, received: Arc<Received>) -> Result<TunnelReport, String> {
    let target = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| format!("cannot listen for the target: {e}"))?;
    let target_addr = target.local_addr().map_err(|e| e.to_string())?;
    let target = tokio::spawn(workload::target(target, Arc::clone(&received)));

    let target_arg = target_addr.to_string();
    let mode = args.mode.as_str();
    let flags = server_flags(&[
        "-l",
        "127.0.0.1:0",
        "-t",
        &target_arg,
        "--mode",
        mode,
        "--quiet",
    ])
    .map_err(|e| e.to_string())?;
    let server = spawn_server(&flags)
        .await
        .map_err(|e| format!("tether server: {e}"))?;

    let (proxy_addr, stop_proxy, proxy) = start_proxy(args, server.local_addr())
        .map_err(|e| format!("cannot start the netem proxy: {e}"))?;

    let remote = proxy_addr.to_string();
    let (snd, rcv) = (args.sndwnd.to_string(), args.rcvwnd.to_string());
    let flags = client_flags(&[
        "-l",
        "127.0.0.1:0",
        "-r",
        &remote,
        "--mode",
        mode,
        "--sndwnd",
        &snd,
        "--rcvwnd",
        &rcv,
        "--quiet",
    ])
    .map_err(|e| e.to_string())?;
    let client = spawn_client(&flags)
        .await
        .map_err(|e| format!("tether client: {e}"))?;
    let entry = client.local_addr();

    let measured = measure(args, entry, received).await;
    let snmp = {
        let mut s = client.snmp();
        s.merge(&server.snmp());
        s
    };
    let _ = client.stop().await;
    let _ = server.stop().await;
    let _ = stop_proxy.send(());
    let report = proxy.await.map_err(|e| e.to_string())?;
    target.abort();
    Ok(TunnelReport {
        leg: measured.map_err(|e| format!("through the tunnel: {e}"))?,
        snmp,
        drops: drops(&report),
    })
}

/// Probe, then upload, through the client's TCP address.
async fn measure(
    args: &DemoArgs,
    entry: SocketAddr,
    received: Arc<Received>,
) -> io::Result<LegResult> {
    let latencies = tokio::time::timeout(SAFETY_LIMIT, workload::probe(entry))
        .await
        .map_err(|_| io::Error::other("the small requests did not finish"))??;
    let limit = Some(SAFETY_LIMIT);
    let mut leg = workload::bulk(
        entry,
        args.leg.bytes,
        args.leg.seed,
        limit,
        received,
        &|_| Ok(()),
    )
    .await?;
    leg.latencies = latencies;
    Ok(leg)
}

type ProxyTask = tokio::task::JoinHandle<tether_core::sim::netem::Report>;

/// `tether netem` in front of the server, as a task; its address, its stop and its counters.
fn start_proxy(
    args: &DemoArgs,
    server: SocketAddr,
) -> io::Result<(SocketAddr, oneshot::Sender<()>, ProxyTask)> {
    let listen = SocketAddr::from(([127, 0, 0, 1], 0));
    let server = SocketAddr::from(([127, 0, 0, 1], server.port()));
    let config = args.leg.engine_config();
    let mut proxy = Proxy::bind(listen, server, config, true)?;
    let addr = proxy.local_addr()?;
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        // Proxy::run is cancel-safe: racing it against the stop leaves the counters whole.
        tokio::select! {
            _ = proxy.run(None::<Instant>, None) => {}
            _ = stopped => {}
        }
        proxy.report()
    });
    Ok((addr, stop, task))
}
