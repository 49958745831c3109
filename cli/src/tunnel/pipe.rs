//! The bidirectional copy between a local connection (TCP or unix) and a tunnel stream.
//!
//! Unlike kcptun 20210922, which closes both sides as soon as either direction ends
//! (kcptun.md §6.3), a half-close is carried through: the end of one direction becomes a
//! smux FIN (or a TCP `shutdown(Write)`) on the other side, and the other direction keeps
//! flowing. An error in either direction ends both at once. Both sides are closed when both
//! directions are done.
use std::io;

use tether_runtime_mio::core::driver::BytesMut;
use tether_runtime_tokio::KcpStream;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

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
/// (by dropping them). The tunnel side moves owned chunks: what is read from `local` lands
/// in a block's uninitialised spare room (tokio's `read_buf`) and is queued on the stream as
/// it is (`write_chunk`), and the stream's received chunks (`read_chunk`) are written to
/// `local` from where they arrived: no copy in user space either way.
pub async fn pipe<L>(local: L, tunnel: KcpStream) -> Result<Moved, PipeError>
where
    L: AsyncRead + AsyncWrite,
{
    let (lr, lw) = tokio::io::split(local);
    let up = local_to_tunnel(lr, &tunnel);
    let down = tunnel_to_local(&tunnel, lw);
    // try_join: the first error drops the other direction at once (both sides close).
    let (up, down) = tokio::try_join!(up, down)?;
    Ok(Moved { up, down })
}

/// Copies `from` into the tunnel until `from` ends, then half-closes the stream (smux FIN).
async fn local_to_tunnel<R>(mut from: R, to: &KcpStream) -> Result<u64, PipeError>
where
    R: AsyncRead + Unpin,
{
    let mut block = BytesMut::new();
    let mut n = 0u64;
    loop {
        // In place once the stream let go of the block's earlier chunks, else a fresh one.
        block.reserve(CHUNK);
        let len = from.read_buf(&mut block).await.map_err(PipeError::Local)?;
        if len == 0 {
            break;
        }
        to.write_chunk(block.split().freeze())
            .await
            .map_err(PipeError::Tunnel)?;
        n += len as u64;
    }
    (&mut &*to).shutdown().await.map_err(PipeError::Tunnel)?;
    Ok(n)
}

/// Copies the tunnel stream into `to` until the stream ends, then half-closes `to` (TCP
/// FIN).
async fn tunnel_to_local<W>(from: &KcpStream, mut to: W) -> Result<u64, PipeError>
where
    W: AsyncWrite + Unpin,
{
    let mut n = 0u64;
    while let Some(c) = from.read_chunk(CHUNK).await.map_err(PipeError::Tunnel)? {
        to.write_all(&c).await.map_err(PipeError::Local)?;
        n += c.len() as u64;
    }
    to.shutdown().await.map_err(PipeError::Local)?;
    Ok(n)
}
