//! `tether smux client`: K streams at once on one session, N bytes each, every echo checked
//! (the payload scheme of `tests/go/smuxpeer`, so tether and Go do the same work per byte).
use std::io;
use std::time::{Duration, Instant};

use tether_core::smux::SmuxConfig;
use tokio::task::JoinSet;

use super::transport::Conn;
use super::ClientArgs;
use crate::bench::smux_payload::Pool;

/// Runs `--runs` sessions; `Ok(false)` on a mismatch.
pub async fn run(args: &ClientArgs) -> io::Result<bool> {
    let smux = args.session.smux().map_err(io::Error::other)?;
    let timeout = Duration::from_secs(args.timeout);
    for run in 0..args.runs {
        let start = Instant::now();
        let matched = tokio::time::timeout(timeout, one_run(args, smux.clone()))
            .await
            .map_err(|_| {
                io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("run {run} took longer than --timeout {}", args.timeout),
                )
            })??;
        let secs = start.elapsed().as_secs_f64();
        let mbps = (args.streams as f64 * args.bytes as f64) / secs / 1e6;
        println!(
            "{} streams x {} bytes match={matched} {mbps:.2} MB/s",
            args.streams, args.bytes
        );
        if !matched {
            return Ok(false);
        }
    }
    Ok(true)
}

/// One session: every stream opened before any byte is sent.
async fn one_run(args: &ClientArgs, smux: SmuxConfig) -> io::Result<bool> {
    let conn = Conn::connect(&args.remote, &args.session, smux).await?;
    let pool = Pool::random();
    let mut streams = Vec::with_capacity(args.streams);
    for _ in 0..args.streams {
        streams.push(conn.open_stream().await?);
    }
    let mut tasks = JoinSet::new();
    for (i, s) in streams.into_iter().enumerate() {
        tasks.spawn(exchange(s, pool.clone(), i, args.bytes));
    }
    let mut all = true;
    while let Some(r) = tasks.join_next().await {
        all &= r.map_err(io::Error::other)??;
    }
    Ok(all)
}

/// Sends `n` bytes of the pool (shared slices, not copied) while reading and checking the
/// echo (in the received chunks, not copied); the stream is dropped (closed) only after the
/// whole echo arrived (xtaci 1.5.16 has no half-close).
async fn exchange(
    stream: tether_runtime_tokio::KcpStream,
    pool: Pool,
    i: usize,
    n: u64,
) -> io::Result<bool> {
    let off = pool.offset(i);
    let (_, matched) = tokio::try_join!(
        pool.send_chunks(&stream, off, n),
        pool.check_chunks(&stream, off, n)
    )?;
    Ok(matched)
}
