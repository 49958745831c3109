//! `tether smux echo-server`: every stream of every session echoed until the peer's FIN.
use std::io::{self, Write};

use tokio::io::AsyncWriteExt;

use super::transport::{Conn, Listener};
use super::ServerArgs;

/// Serves until an accept fails (the listener stopped).
pub async fn run(args: &ServerArgs) -> io::Result<bool> {
    let smux = args.session.smux().map_err(io::Error::other)?;
    let listener = Listener::bind(&args.listen, &args.session, smux).await?;
    // The first stdout line: drivers (bench-smux, the interop tests) wait for it.
    let mut out = io::stdout().lock();
    writeln!(out, "listening {}", listener.local_addr())?;
    out.flush()?;
    drop(out);
    if !args.quiet {
        eprintln!(
            "tether smux: echo server on {} ({:?} over {:?})",
            listener.local_addr(),
            args.session.dialect,
            args.session.transport
        );
    }
    loop {
        let conn = listener.accept().await?;
        tokio::spawn(serve(conn));
    }
}

/// Echoes each stream the peer opens, until the session ends.
async fn serve(conn: Conn) {
    while let Ok(stream) = conn.accept_stream().await {
        tokio::spawn(echo(stream));
    }
}

/// Sends the stream's bytes back as they arrive (the received chunks themselves, not
/// copies) until the peer's FIN, then finishes it.
async fn echo(stream: tether_runtime_tokio::KcpStream) -> io::Result<()> {
    while let Some(c) = stream.read_chunk(usize::MAX).await? {
        stream.write_chunk(c).await?;
    }
    (&stream).shutdown().await
}
