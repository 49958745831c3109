//! The client roles of `tether bench-peer`: bulk, rtt and idle, each ending in one JSON line.
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::Instant;

use sha2::{Digest, Sha256};
use tether_runtime_tokio::{Config, KcpStream};
use tokio::io::{AsyncReadExt, AsyncWriteExt, ReadHalf, WriteHalf};

use super::args::PeerArgs;
use super::pattern::Pattern;
use super::{fail, PeerError, CHUNK, PROG_RECV, PROG_SENT};
use crate::bench::procfs::{proc_cpu_seconds, proc_status_kb};
use crate::bench::records::{BulkRecord, IdleRecord, Resources, RttRecord};

/// The byte each session starts with; the server echoes it.
const HELLO: u8 = b'h';

/// Runs `role` against `--connect` and returns its JSON line.
pub async fn client(args: &PeerArgs, cfg: Config, role: &str) -> Result<String, PeerError> {
    let addr_s = args
        .connect
        .as_deref()
        .expect("clap: --listen or --connect");
    let addr = tokio::net::lookup_host(addr_s)
        .await
        .map_err(|e| fail(format!("resolve {addr_s}: {e}")))?
        .next()
        .ok_or_else(|| fail(format!("{addr_s}: no address")))?;
    let line = match role {
        "bulk" => serde_json::to_string(&bulk(args, cfg, addr).await?),
        "rtt" => serde_json::to_string(&rtt(args, cfg, addr).await?),
        _ => serde_json::to_string(&idle(args, cfg, addr).await?),
    };
    line.map_err(fail)
}

/// This process's CPU so far and peak RSS.
fn resources() -> Resources {
    Resources {
        cpu_seconds: proc_cpu_seconds("self"),
        max_rss_kb: proc_status_kb("self", "VmHWM").unwrap_or(0),
    }
}

async fn dial(addr: SocketAddr, cfg: Config) -> Result<KcpStream, PeerError> {
    KcpStream::connect(addr, cfg).await.map_err(|e| {
        let hint = if e.raw_os_error() == Some(24) {
            " (raise `ulimit -n`: every session has its own UDP socket)"
        } else {
            ""
        };
        fail(format!("dial {addr}: {e}{hint}"))
    })
}

async fn hello(s: &mut KcpStream) -> io::Result<()> {
    s.write_all(&[HELLO]).await?;
    let mut b = [0u8; 1];
    s.read_exact(&mut b).await?;
    if b[0] != HELLO {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("hello: got byte {:#x} back, want {HELLO:#x}", b[0]),
        ));
    }
    PROG_RECV.fetch_add(1, Ordering::Relaxed);
    Ok(())
}

async fn bulk(args: &PeerArgs, cfg: Config, addr: SocketAddr) -> Result<BulkRecord, PeerError> {
    let mut s = dial(addr, cfg).await?;
    hello(&mut s)
        .await
        .map_err(|e| fail(format!("hello: {e}")))?;
    let n = args.bytes;
    let start = Instant::now();
    let (mut rx, mut tx) = tokio::io::split(s);
    let (w, r) = tokio::join!(send_pattern(&mut tx, args.seed, n), receive(&mut rx, n));
    let secs = start.elapsed().as_secs_f64();
    let (hr, got) = r.map_err(|e| fail(format!("bulk: {e}")))?;
    let hs = w.map_err(|e| fail(format!("bulk: write: {e}")))?;
    let (sent, recv) = (hex::encode(hs.finalize()), hex::encode(hr.finalize()));
    if sent != recv {
        return Err(fail("bulk: the echoed bytes differ from the sent ones"));
    }
    Ok(BulkRecord {
        sent: n,
        received: got,
        sha256_sent: sent,
        sha256_received: recv,
        seconds: secs,
        resources: resources(),
    })
}

/// Writes `n` bytes of the pattern seeded with `seed`; their digest.
async fn send_pattern(tx: &mut WriteHalf<KcpStream>, seed: u64, n: u64) -> io::Result<Sha256> {
    let mut p = Pattern::new(seed);
    let mut h = Sha256::new();
    let mut buf = vec![0u8; CHUNK];
    let mut done = 0u64;
    while done < n {
        let k = (n - done).min(CHUNK as u64) as usize;
        p.fill(&mut buf[..k]);
        h.update(&buf[..k]);
        tx.write_all(&buf[..k]).await?;
        done += k as u64;
        PROG_SENT.fetch_add(k as u64, Ordering::Relaxed);
    }
    Ok(h)
}

/// Reads `n` bytes; their digest and count (an early end of stream is an error).
async fn receive(rx: &mut ReadHalf<KcpStream>, n: u64) -> io::Result<(Sha256, u64)> {
    let mut h = Sha256::new();
    let mut buf = vec![0u8; CHUNK];
    let mut got = 0u64;
    while got < n {
        let k = (n - got).min(CHUNK as u64) as usize;
        let m = rx.read(&mut buf[..k]).await?;
        if m == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("read after {got} of {n} bytes: end of stream"),
            ));
        }
        h.update(&buf[..m]);
        got += m as u64;
        PROG_RECV.fetch_add(m as u64, Ordering::Relaxed);
    }
    Ok((h, got))
}

/// Nearest rank, as kcppeer.
fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((p * sorted.len() as f64 + 0.999999) as usize).saturating_sub(1);
    sorted[i.min(sorted.len() - 1)]
}

async fn rtt(args: &PeerArgs, cfg: Config, addr: SocketAddr) -> Result<RttRecord, PeerError> {
    if args.count == 0 || args.size == 0 {
        return Err(PeerError::Usage(
            "rtt: --count and --size must be positive".into(),
        ));
    }
    let mut s = dial(addr, cfg).await?;
    hello(&mut s)
        .await
        .map_err(|e| fail(format!("hello: {e}")))?;
    let mut p = Pattern::new(args.seed);
    let (mut msg, mut back) = (vec![0u8; args.size], vec![0u8; args.size]);
    let mut rtts = Vec::with_capacity(args.count);
    let start = Instant::now();
    for i in 0..args.count {
        p.fill(&mut msg);
        let t0 = Instant::now();
        s.write_all(&msg)
            .await
            .map_err(|e| fail(format!("rtt: write {i}: {e}")))?;
        s.read_exact(&mut back)
            .await
            .map_err(|e| fail(format!("rtt: read {i}: {e}")))?;
        let us = t0.elapsed().as_micros() as u64;
        if back != msg {
            return Err(fail(format!("rtt: echo {i} differs from the message")));
        }
        rtts.push(us);
        PROG_SENT.fetch_add(args.size as u64, Ordering::Relaxed);
        PROG_RECV.fetch_add(args.size as u64, Ordering::Relaxed);
    }
    let secs = start.elapsed().as_secs_f64();
    let sum: u64 = rtts.iter().sum();
    rtts.sort_unstable();
    Ok(RttRecord {
        count: args.count as u64,
        size: args.size as u64,
        min_us: rtts[0],
        p50_us: percentile(&rtts, 0.50),
        p90_us: percentile(&rtts, 0.90),
        p99_us: percentile(&rtts, 0.99),
        max_us: rtts[rtts.len() - 1],
        mean_us: sum / rtts.len() as u64,
        seconds: secs,
        resources: resources(),
    })
}

async fn idle(args: &PeerArgs, cfg: Config, addr: SocketAddr) -> Result<IdleRecord, PeerError> {
    if args.sessions == 0 {
        return Err(PeerError::Usage("idle: --sessions must be positive".into()));
    }
    let start = Instant::now();
    let mut streams = Vec::with_capacity(args.sessions);
    for _ in 0..args.sessions {
        streams.push(dial(addr, cfg.clone()).await?);
    }
    // The hellos concurrently (one at a time would cost N RTTs).
    let mut set = tokio::task::JoinSet::new();
    for mut s in streams {
        set.spawn(async move { hello(&mut s).await.map(|()| s) });
    }
    let mut held = Vec::with_capacity(args.sessions);
    while let Some(r) = set.join_next().await {
        let s = r
            .map_err(|e| fail(format!("idle: hello task: {e}")))?
            .map_err(|e| fail(format!("idle: hello: {e}")))?;
        held.push(s);
    }
    let setup = start.elapsed().as_secs_f64();
    eprintln!("holding {} sessions", held.len());
    let (hold_start, cpu0) = (Instant::now(), proc_cpu_seconds("self"));
    tokio::time::sleep(args.hold).await;
    let (hold, hold_cpu) = (
        hold_start.elapsed().as_secs_f64(),
        proc_cpu_seconds("self") - cpu0,
    );
    let established = held.len() as u64;
    drop(held);
    Ok(IdleRecord {
        sessions: args.sessions as u64,
        established,
        setup_seconds: setup,
        hold_seconds: hold,
        resources: resources(),
        hold_cpu_seconds: hold_cpu,
    })
}
