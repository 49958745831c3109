//! The bidirectional copy between a local connection (TCP or unix) and a tunnel stream.
//!
//! Unlike kcptun 20210922, which closes both sides as soon as either direction ends
//! (kcptun.md §6.3), a half-close is carried through: the end of one direction becomes a
//! smux FIN (or a TCP `shutdown(Write)`) on the other side, and the other direction keeps
//! flowing. An error in either direction ends both at once. Both sides are closed when both
//! directions are done.
use std::io;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};

/// Bytes per read: a few smux frames, a TCP window's worth of small writes.
const CHUNK: usize = 64 * 1024;

/// What a finished pipe moved.
#[derive(Debug, Default, Clone, Copy)]
pub struct Moved {
    /// From the local connection into the tunnel.
    pub up: u64,
    /// From the tunnel to the local connection.
    pub down: u64,
}

/// Which side failed, and why.
#[derive(Debug, thiserror::Error)]
pub enum PipeError {
    /// Reading from or writing to the local connection failed.
    #[error("local connection: {0}")]
    Local(io::Error),
    /// Reading from or writing to the tunnel stream failed (the stream was reset, or its
    /// session ended).
    #[error("tunnel stream: {0}")]
    Tunnel(io::Error),
}

/// kcptun's "stream closed" line (with the byte counts; dropped by `--quiet` unless the
/// pipe failed).
pub fn log_end(from: &str, to: &str, result: &Result<Moved, PipeError>, quiet: bool) {
    match result {
        Ok(m) if !quiet => tracing::info!(
            "stream closed in: {from} out: {to} (local to tunnel {} B, tunnel to local {} B)",
            m.up,
            m.down
        ),
        Ok(_) => {}
        Err(e) => tracing::warn!("stream closed in: {from} out: {to}: {e}"),
    }
}

/// Copies `local` ⇄ `tunnel` until both directions end (or one fails), then closes both
/// (by dropping them).
pub async fn pipe<L, T>(local: L, tunnel: T) -> Result<Moved, PipeError>
where
    L: AsyncRead + AsyncWrite,
    T: AsyncRead + AsyncWrite,
{
    let (lr, lw) = tokio::io::split(local);
    let (tr, tw) = tokio::io::split(tunnel);
    let up = one_way(lr, tw, PipeError::Local, PipeError::Tunnel);
    let down = one_way(tr, lw, PipeError::Tunnel, PipeError::Local);
    // try_join: the first error drops the other direction at once (both sides close).
    let (up, down) = tokio::try_join!(up, down)?;
    Ok(Moved { up, down })
}

/// Copies `from` to `to` until `from` ends, then half-closes `to` (smux FIN or TCP FIN).
async fn one_way<R, W>(
    from: R,
    to: W,
    read_err: fn(io::Error) -> PipeError,
    write_err: fn(io::Error) -> PipeError,
) -> Result<u64, PipeError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut from = BufReader::with_capacity(CHUNK, from);
    let mut to = to;
    let mut n = 0u64;
    loop {
        let chunk = from.fill_buf().await.map_err(read_err)?;
        if chunk.is_empty() {
            break;
        }
        let len = chunk.len();
        to.write_all(chunk).await.map_err(write_err)?;
        from.consume(len);
        n += len as u64;
    }
    to.shutdown().await.map_err(write_err)?;
    Ok(n)
}
