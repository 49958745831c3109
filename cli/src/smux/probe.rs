//! `tether smux probe`: the seed dialect's "are you smux?" question (smux-seed.md §7) on a
//! fresh TCP connection, before any session exists on this side.
use std::io;
use std::time::{SystemTime, UNIX_EPOCH};

use tether_core::rng::seeded;
use tether_core::rng::RngCore;
use tether_core::smux::probe::Probe;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::ProbeArgs;

/// Prints `is_smux=true|false`; `Ok(false)` when the peer did not answer as smux (a timeout,
/// a close or a wrong answer), `Err` only when the connection could not be made.
pub async fn run(args: &ProbeArgs) -> io::Result<bool> {
    let mut sock = TcpStream::connect(args.remote.as_str()).await?;
    // The challenge only has to differ between probes: the clock is a fine seed here.
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let mut rng = seeded(nanos);
    let probe = Probe::new((rng.next_u32() % 65_535) as u16, rng.next_u32());
    let answered = tokio::time::timeout(args.timeout, async {
        sock.write_all(&probe.request()).await?;
        let mut answer = [0u8; 7];
        sock.read_exact(&mut answer).await?;
        io::Result::Ok(probe.check(&answer) == Some(true))
    })
    .await;
    let is_smux = matches!(answered, Ok(Ok(true)));
    println!("is_smux={is_smux}");
    Ok(is_smux)
}
