//! A complete single-threaded mio event loop: an echo server endpoint and a client endpoint
//! registered in the same `mio::Poll`, the client sending 1 MiB through the server and
//! checking every echoed byte.
//!
//! ```text
//! cargo run --release -p tether-runtime-mio --example echo_loop [MiB] [mode]
//! ```
use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mio::{Events, Poll, Token};
use tether_core::driver::{StreamEvent, StreamId};
use tether_core::kcp::{RecvError, WriteError};
use tether_core::session::{ListenerEvent, SessionId};
use tether_runtime_mio::config::Config;
use tether_runtime_mio::endpoint::{Endpoint, EndpointStats, SessionError};

const SERVER: Token = Token(0);
const CLIENT: Token = Token(1);
/// Bytes handed to one `write` call.
const CHUNK: usize = 64 * 1024;
/// Echo bytes the server holds per session before it stops reading (KCP's receive window
/// then pushes back on the client).
const ECHO_BUFFER: usize = 256 * 1024;

/// What one run measured.
#[derive(Debug)]
pub struct Report {
    /// Bytes sent and verified after the echo.
    pub bytes: usize,
    /// From the first write to the last verified byte.
    pub elapsed: Duration,
    /// Poll wake-ups.
    pub iterations: u64,
    /// The server endpoint's I/O counters.
    pub server: EndpointStats,
    /// The client endpoint's I/O counters.
    pub client: EndpointStats,
    /// Segments retransmitted by both sides (kcp-go `RetransSegs`).
    pub retrans: u64,
}

/// One echo session on the server: bytes read and not yet written back, and which
/// direction the session last said could make progress.
struct Echo {
    buf: VecDeque<u8>,
    readable: bool,
    writable: bool,
}

/// Deterministic test data (xorshift64*).
pub fn payload(len: usize) -> Vec<u8> {
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 56) as u8
        })
        .collect()
}

fn timed_out(what: String) -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, what)
}

/// Runs the echo transfer of `total` bytes in one thread and one `mio::Poll`, giving up
/// after `limit`.
pub fn run(cfg: &Config, total: usize, limit: Duration) -> io::Result<Report> {
    let any: SocketAddr = "127.0.0.1:0".parse().expect("literal");
    let mut poll = Poll::new()?;
    let mut events = Events::with_capacity(64);
    let mut server = Endpoint::bind(any, cfg, true)?;
    let mut client = Endpoint::bind(any, cfg, false)?;
    poll.registry()
        .register(&mut server, SERVER, Endpoint::INTEREST)?;
    poll.registry()
        .register(&mut client, CLIENT, Endpoint::INTEREST)?;

    let data = payload(total);
    let start = Instant::now();
    let give_up = start + limit;
    let conn = client.connect(start, server.local_addr()?);
    let mut echoes: HashMap<SessionId, Echo> = HashMap::new();
    let (mut sent, mut received) = (0usize, 0usize);
    let (mut c_readable, mut c_writable) = (false, true);
    let mut buf = vec![0u8; CHUNK];
    let mut iterations = 0u64;

    while received < total {
        // Sleep until an event or the earlier endpoint deadline.
        let now = Instant::now();
        if now >= give_up {
            return Err(timed_out(format!(
                "echo loop: {received} of {total} bytes back after {limit:?} (sent {sent})"
            )));
        }
        let deadline = [server.next_deadline(), client.next_deadline()]
            .into_iter()
            .flatten()
            .fold(give_up, Instant::min);
        poll.poll(&mut events, Some(deadline.saturating_duration_since(now)))?;
        iterations += 1;

        // The one call per endpoint and wake-up (cheap when it had no event).
        let now = Instant::now();
        server.process(now)?;
        client.process(now)?;

        // Server: accept, then echo whatever arrives.
        while let Some(ev) = server.poll_event() {
            match ev {
                ListenerEvent::Incoming(_) => {
                    while let Some(id) = server.accept() {
                        echoes.insert(
                            id,
                            Echo {
                                buf: VecDeque::new(),
                                readable: true,
                                writable: true,
                            },
                        );
                    }
                }
                ListenerEvent::Conn(id, StreamEvent::Readable(StreamId::SOLE)) => {
                    if let Some(e) = echoes.get_mut(&id) {
                        e.readable = true;
                    }
                }
                ListenerEvent::Conn(id, StreamEvent::Writable(StreamId::SOLE)) => {
                    if let Some(e) = echoes.get_mut(&id) {
                        e.writable = true;
                    }
                }
                // A dead link is closed by the listener itself (`Closed(DeadLink)`).
                ListenerEvent::Conn(id, StreamEvent::Closed(_)) => {
                    echoes.remove(&id);
                }
                ListenerEvent::Conn(_, _) => {}
            }
        }
        for (&id, e) in echoes.iter_mut() {
            echo(&mut server, id, e, &mut buf);
        }

        // Client: events, then write what the window takes and verify what came back.
        while let Some(ev) = client.poll_event() {
            match ev {
                ListenerEvent::Conn(_, StreamEvent::Readable(StreamId::SOLE)) => c_readable = true,
                ListenerEvent::Conn(_, StreamEvent::Writable(StreamId::SOLE)) => c_writable = true,
                ListenerEvent::Conn(_, StreamEvent::Closed(_)) => {
                    return Err(io::Error::new(
                        io::ErrorKind::ConnectionReset,
                        format!("client session lost: {ev:?}"),
                    ))
                }
                ListenerEvent::Conn(_, _) | ListenerEvent::Incoming(_) => {}
            }
        }
        while c_writable && sent < total {
            let end = total.min(sent + CHUNK);
            match client.write(conn, &data[sent..end]) {
                Ok(n) => sent += n,
                Err(SessionError::Kcp(WriteError::Blocked)) => c_writable = false,
                Err(e) => return Err(io::Error::other(format!("client write: {e}"))),
            }
        }
        while c_readable {
            match client.read(conn, &mut buf) {
                Ok(n) => {
                    if received + n > total || buf[..n] != data[received..received + n] {
                        return Err(io::Error::new(
                            io::ErrorKind::InvalidData,
                            format!("echo differs within bytes {received}..{}", received + n),
                        ));
                    }
                    received += n;
                }
                Err(SessionError::Kcp(RecvError::WouldBlock)) => c_readable = false,
                Err(e) => return Err(io::Error::other(format!("client read: {e}"))),
            }
        }
    }

    let elapsed = start.elapsed();
    let retrans = server.snmp().retrans_segs + client.snmp().retrans_segs;
    Ok(Report {
        bytes: received,
        elapsed,
        iterations,
        server: server.stats(),
        client: client.stats(),
        retrans,
    })
}

/// Moves one echo session's bytes: back out while KCP takes them, in while the echo buffer
/// has room. Every step either makes progress or clears a flag, so it ends.
fn echo(server: &mut Endpoint, id: SessionId, e: &mut Echo, buf: &mut [u8]) {
    loop {
        let mut progressed = false;
        if e.writable && !e.buf.is_empty() {
            let (front, _) = e.buf.as_slices();
            let n = front.len().min(CHUNK);
            match server.write(id, &front[..n]) {
                Ok(n) => {
                    e.buf.drain(..n);
                    progressed = true;
                }
                Err(SessionError::Kcp(WriteError::Blocked)) => e.writable = false,
                Err(_) => return,
            }
        }
        if e.readable && e.buf.len() < ECHO_BUFFER {
            match server.read(id, buf) {
                Ok(n) => {
                    e.buf.extend(&buf[..n]);
                    progressed = true;
                }
                Err(SessionError::Kcp(RecvError::WouldBlock)) => e.readable = false,
                Err(_) => return,
            }
        }
        if !progressed {
            return;
        }
    }
}

#[allow(dead_code)] // The integration test includes this file for `run` only.
fn main() -> io::Result<()> {
    let mut args = std::env::args().skip(1);
    let mib: usize = args
        .next()
        .map_or(Ok(1), |a| a.parse())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("MiB argument: {e}")))?;
    let mode = args.next().unwrap_or_else(|| "fast3".to_string());
    let cfg = Config::default().mode(&mode).windows(1024, 1024);
    let r = run(&cfg, mib << 20, Duration::from_secs(60))?;
    let secs = r.elapsed.as_secs_f64();
    println!(
        "echoed and verified {} bytes in {:.3} s: {:.1} MiB/s each way ({} wake-ups; server {} in / {} out datagrams, client {} in / {} out; {} socket-full waits; {} retransmitted segments)",
        r.bytes,
        secs,
        r.bytes as f64 / secs / f64::from(1u32 << 20),
        r.iterations,
        r.server.datagrams_in,
        r.server.datagrams_out,
        r.client.datagrams_in,
        r.client.datagrams_out,
        r.server.blocked + r.client.blocked,
        r.retrans,
    );
    Ok(())
}
