//! One measurement run: a server and its clients for one implementation and setting, and
//! the figures taken from their JSON lines and `/proc`.
//!
//! Both peers are measured the same way: a client's own JSON reports its CPU
//! (`cpu_seconds`: user+system of the whole process) and peak RSS (`max_rss_kb`); the
//! server's CPU is the delta of `/proc/<pid>/stat` utime+stime around the client's run, its
//! RSS is `/proc/<pid>/status` VmRSS.
use std::time::{Duration, Instant};

use serde::Serialize;

use super::args::BenchArgs;
use super::peers::Peers;
use super::procfs::{proc_cpu_seconds, proc_status_kb};
use super::records::{BulkRecord, IdleRecord, RttRecord};
use super::settings::{Impl, Setting};
use crate::rounded::rounded;

/// Bulk and RTT figures of one implementation in one setting (JSON: one `settings[]` side).
#[derive(Debug, Default, Clone, PartialEq, Serialize)]
pub struct SettingResult {
    /// Bulk throughput, MB/s each way.
    #[serde(serialize_with = "rounded::<3, _>")]
    pub mb_per_s: f64,
    /// Duration of the bulk transfer.
    #[serde(serialize_with = "rounded::<6, _>")]
    pub bulk_seconds: f64,
    /// The bulk client's CPU.
    #[serde(serialize_with = "rounded::<2, _>")]
    pub client_cpu_seconds: f64,
    /// The echo server's CPU during the bulk transfer.
    #[serde(serialize_with = "rounded::<2, _>")]
    pub server_cpu_seconds: f64,
    /// Both peers' CPU per GiB sent each way.
    #[serde(serialize_with = "rounded::<4, _>")]
    pub cpu_seconds_per_gib: f64,
    /// Median 64-byte echo RTT, µs.
    pub rtt_p50_us: u64,
    /// 99th percentile echo RTT, µs.
    pub rtt_p99_us: u64,
    /// Mean echo RTT, µs.
    pub rtt_mean_us: u64,
}

/// Idle-session figures of one implementation (JSON: one `idle` side).
#[derive(Debug, Default, Clone, PartialEq, Serialize)]
pub struct IdleResult {
    /// Dialling and the hellos, all sessions.
    #[serde(serialize_with = "rounded::<3, _>")]
    pub setup_seconds: f64,
    /// How long the client held the sessions.
    #[serde(serialize_with = "rounded::<3, _>")]
    pub hold_seconds: f64,
    /// The server's CPU over the hold.
    #[serde(serialize_with = "rounded::<2, _>")]
    pub server_hold_cpu_seconds: f64,
    /// The client's CPU over the hold.
    #[serde(serialize_with = "rounded::<2, _>")]
    pub client_hold_cpu_seconds: f64,
    /// Server + client CPU over the hold, in % of one core.
    #[serde(serialize_with = "rounded::<3, _>")]
    pub core_percent: f64,
    /// The server's VmRSS at the end of the hold.
    pub server_rss_kb: u64,
    /// The server's VmRSS once listening, before the first session.
    pub server_rss_base_kb: u64,
    /// The server's RSS delta per session, KiB.
    #[serde(serialize_with = "rounded::<2, _>")]
    pub server_kib_per_session: f64,
    /// The client's peak RSS.
    pub client_max_rss_kb: u64,
}

/// The bulk transfer, then the RTT echoes, against one fresh echo server.
pub fn run_setting(
    peers: &Peers,
    imp: Impl,
    s: &Setting,
    args: &BenchArgs,
) -> Result<SettingResult, String> {
    let (server, addr) = peers.server(imp, s)?;
    let spid = server.pid();
    // At least 1 MiB/s, plus a minute.
    let bulk_timeout = Duration::from_secs(60 + args.bytes / (1 << 20));
    let s0 = proc_cpu_seconds(&spid);
    let extra = ["--bytes".into(), args.bytes.to_string()];
    let mut c = peers.client(imp, s, addr, "bulk", &extra, bulk_timeout)?;
    let bulk: BulkRecord = c.finish(bulk_timeout.saturating_add(Duration::from_secs(15)))?;
    let server_cpu = proc_cpu_seconds(&spid) - s0;

    let rtt_timeout = Duration::from_secs(60 + args.rtt_count as u64 / 20);
    let extra = [
        "--count".to_string(),
        args.rtt_count.to_string(),
        "--size".into(),
        "64".into(),
    ];
    let mut c = peers.client(imp, s, addr, "rtt", &extra, rtt_timeout)?;
    let rtt: RttRecord = c.finish(rtt_timeout.saturating_add(Duration::from_secs(15)))?;
    drop(server);
    Ok(setting_result(args.bytes, &bulk, server_cpu, &rtt))
}

/// The figures of a bulk run of `bytes` each way and an RTT run.
fn setting_result(
    bytes: u64,
    bulk: &BulkRecord,
    server_cpu: f64,
    rtt: &RttRecord,
) -> SettingResult {
    let (secs, client_cpu) = (bulk.seconds, bulk.resources.cpu_seconds);
    SettingResult {
        mb_per_s: bytes as f64 / secs / 1e6,
        bulk_seconds: secs,
        client_cpu_seconds: client_cpu,
        server_cpu_seconds: server_cpu,
        cpu_seconds_per_gib: (client_cpu + server_cpu) / (bytes as f64 / (1u64 << 30) as f64),
        rtt_p50_us: rtt.p50_us,
        rtt_p99_us: rtt.p99_us,
        rtt_mean_us: rtt.mean_us,
    }
}

/// The server's CPU and RSS sampled while the client holds `--idle-sessions` open.
struct ServerSample {
    /// CPU over the sampled window.
    cpu: f64,
    /// Length of the sampled window.
    elapsed: f64,
    rss_base_kb: u64,
    rss_kb: u64,
}

/// `--idle-sessions` held for `--hold` against one fresh echo server.
pub fn run_idle(
    peers: &Peers,
    imp: Impl,
    s: &Setting,
    args: &BenchArgs,
) -> Result<IdleResult, String> {
    let (server, addr) = peers.server(imp, s)?;
    let spid = server.pid();
    let rss_base_kb = proc_status_kb(&spid, "VmRSS").unwrap_or(0);
    let setup_bound = Duration::from_secs(60 + args.idle_sessions as u64 / 50);
    let timeout = setup_bound
        .saturating_add(args.hold)
        .saturating_add(Duration::from_secs(30));
    let extra = [
        "--sessions".to_string(),
        args.idle_sessions.to_string(),
        "--hold".into(),
        format!("{}ms", args.hold.as_millis()),
    ];
    let mut c = peers.client(imp, s, addr, "idle", &extra, timeout)?;
    c.await_stderr("holding ", setup_bound)?;
    // Sample the server over the client's hold (it starts just before its `holding` line).
    let (t0, s0) = (Instant::now(), proc_cpu_seconds(&spid));
    std::thread::sleep(args.hold.saturating_sub(Duration::from_millis(100)));
    let sample = ServerSample {
        cpu: proc_cpu_seconds(&spid) - s0,
        elapsed: t0.elapsed().as_secs_f64(),
        rss_base_kb,
        rss_kb: proc_status_kb(&spid, "VmRSS").unwrap_or(0),
    };
    let idle: IdleRecord = c.finish(timeout)?;
    if idle.established < args.idle_sessions as u64 {
        return Err(format!(
            "{}: only {} of {} sessions established",
            c.name, idle.established, args.idle_sessions
        ));
    }
    drop(server);
    Ok(idle_result(args.idle_sessions, &idle, &sample))
}

/// The figures of an idle run of `sessions`.
fn idle_result(sessions: usize, idle: &IdleRecord, server: &ServerSample) -> IdleResult {
    let hold = idle.hold_seconds;
    // Scaled from the sampled window to the client's hold.
    let server_hold_cpu = server.cpu * hold / server.elapsed.max(1e-9);
    let client_hold_cpu = idle.hold_cpu_seconds;
    IdleResult {
        setup_seconds: idle.setup_seconds,
        hold_seconds: hold,
        server_hold_cpu_seconds: server_hold_cpu,
        client_hold_cpu_seconds: client_hold_cpu,
        core_percent: 100.0 * (server_hold_cpu + client_hold_cpu) / hold.max(1e-9),
        server_rss_kb: server.rss_kb,
        server_rss_base_kb: server.rss_base_kb,
        server_kib_per_session: (server.rss_kb as f64 - server.rss_base_kb as f64)
            / sessions.max(1) as f64,
        client_max_rss_kb: idle.resources.max_rss_kb,
    }
}
