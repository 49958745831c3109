//! The echo server role of `tether bench-peer`.
use std::io::{self, Write};
use std::net::SocketAddr;
use std::time::Duration;

use tether_runtime_tokio::{Config, KcpListener, KcpStream};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::args::PeerArgs;
use super::CHUNK;

/// Listens on `listen`, prints `listening <addr>` and echoes every session.
pub async fn serve(args: &PeerArgs, cfg: Config, listen: SocketAddr) -> io::Result<()> {
    let listener = KcpListener::bind(listen, cfg.reuseport(args.reuseport)).await?;
    {
        let mut out = io::stdout().lock();
        writeln!(out, "listening {}", listener.local_addr())?;
        out.flush()?;
    }
    loop {
        let (s, peer) = listener.accept().await?;
        if !args.quiet {
            eprintln!("tether bench-peer: session from {peer}");
        }
        tokio::spawn(async move {
            if let Err(e) = echo(s).await {
                eprintln!("tether bench-peer: session from {peer}: {e}");
            }
        });
    }
}

/// Reads up to this much without the 64 KiB buffer (the hello, the RTT echoes).
const SMALL_READ: usize = 512;
/// A session whose bytes stopped flowing for this long gives its 64 KiB buffer back.
const ECHO_BUFFER_IDLE: Duration = Duration::from_secs(1);

/// Echoes every byte. The 64 KiB buffer exists only while a bulk transfer flows, so an idle
/// session's RSS is the library's, not a touched 64 KiB `calloc` per session (kcp-go's echo
/// buffer is never written beyond its first page, so it costs no RSS either).
async fn echo(mut s: KcpStream) -> io::Result<()> {
    let mut small = [0u8; SMALL_READ];
    let mut big: Vec<u8> = Vec::new();
    loop {
        if big.is_empty() {
            let n = s.read(&mut small).await?;
            if n == 0 {
                return Ok(());
            }
            s.write_all(&small[..n]).await?;
            if n == SMALL_READ {
                big = vec![0u8; CHUNK];
            }
            continue;
        }
        let n = match tokio::time::timeout(ECHO_BUFFER_IDLE, s.read(&mut big)).await {
            Ok(r) => r?,
            Err(_quiet) => {
                big = Vec::new();
                continue;
            }
        };
        if n == 0 {
            return Ok(());
        }
        s.write_all(&big[..n]).await?;
    }
}
