//! `tether netem`: a userspace UDP impairment proxy built on the simulator's [`Link`] model,
//! for impairing real sockets where the kernel has no netem.
//!
//! Clients send to `--listen`; for each distinct client address the proxy opens its own
//! upstream socket toward `--forward` (so the server sees one address per client, like a
//! NAT), and impairs both directions with their own seeded link. The mapping table, links
//! and counters are sans-IO ([`engine`]); this module owns the sockets and the clock.
//!
//! One task runs everything: wait until a socket is readable or the earliest link deadline,
//! read every readable socket until `WouldBlock` (bounded per batch) with one `now` for the
//! batch, feed the links, send what is due. A send that would block is dropped and counted:
//! the only queues are the links' own bounded ones.
//!
//! [`Link`]: tether_core::sim::Link
use std::future::poll_fn;
use std::io::{self, Write as _};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs};
use std::pin::pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use clap::Args;
use tether_core::sim::LinkConfig;

use crate::link_flags::LinkFlags;

use crate::units::parse_duration;

#[path = "netem/engine.rs"]
pub mod engine;

use engine::{Dir, Engine, EngineConfig, Report, SendOutcome, Slot};

/// Largest UDP payload.
const MAX_DATAGRAM: usize = 65_535;

/// Datagrams read from one socket per batch before the others get a turn (the socket stays
/// readable, so the next batch continues with it).
const READ_BATCH: usize = 256;

/// Flags of `tether netem`.
#[derive(Debug, Args, Clone)]
pub struct NetemArgs {
    /// Address clients send to (`127.0.0.1:0` picks a free port; see the readiness line).
    #[arg(long, value_parser = parse_addr)]
    pub listen: SocketAddr,
    /// Address of the server datagrams are forwarded to.
    #[arg(long, value_parser = parse_addr)]
    pub forward: SocketAddr,
    #[command(flatten)]
    pub impair: LinkFlags,
    /// One-way delay added in each direction (so the RTT grows by twice this).
    #[arg(long, value_parser = parse_duration)]
    pub delay: Option<Duration>,
    /// Bound on datagrams held by one link (per client and direction); more are dropped.
    #[arg(long, default_value_t = 8192)]
    pub max_in_flight: usize,
    /// Seed of every link (each client and direction derives its own from it).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Stop after this long (e.g. 30s); default: until Ctrl-C / SIGTERM.
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Forget a client mapping after this long without traffic either way.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub idle_timeout: Duration,
    /// Bound on client mappings; datagrams of further clients are dropped until one expires.
    #[arg(long, default_value_t = 4096)]
    pub max_clients: usize,
    /// Do not log clients coming and going (the readiness line and counters still print).
    #[arg(long)]
    pub quiet: bool,
}

fn parse_addr(s: &str) -> Result<SocketAddr, String> {
    s.to_socket_addrs()
        .map_err(|e| format!("`{s}`: {e}"))?
        .next()
        .ok_or_else(|| format!("`{s}` resolves to no address"))
}

impl NetemArgs {
    /// The impairments of one direction (both directions get the same configuration and
    /// different seeds).
    pub fn link(&self) -> LinkConfig {
        self.impair
            .link(self.delay)
            .with_max_in_flight(self.max_in_flight.max(1))
    }

    /// The engine configuration these flags describe.
    pub fn engine_config(&self) -> EngineConfig {
        EngineConfig {
            up: self.link(),
            down: self.link(),
            seed: self.seed,
            idle_timeout: self.idle_timeout,
            max_clients: self.max_clients.max(1),
        }
    }
}

/// Why [`Proxy::run`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    /// `--duration` elapsed.
    Duration,
    /// A signal asked to stop.
    Signal(&'static str),
}

/// What a signal asks for.
enum SignalEvent {
    Stop(&'static str),
    Report,
}

/// Ctrl-C / SIGTERM (stop) and SIGUSR1 (print the counters).
pub struct Signals {
    #[cfg(unix)]
    int: tokio::signal::unix::Signal,
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
    #[cfg(unix)]
    usr1: tokio::signal::unix::Signal,
}

impl Signals {
    /// Installs the handlers (inside a tokio runtime).
    pub fn new() -> io::Result<Self> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            Ok(Self {
                int: signal(SignalKind::interrupt())?,
                term: signal(SignalKind::terminate())?,
                usr1: signal(SignalKind::user_defined1())?,
            })
        }
        #[cfg(not(unix))]
        {
            Ok(Self {})
        }
    }

    async fn next(&mut self) -> SignalEvent {
        #[cfg(unix)]
        {
            tokio::select! {
                Some(()) = self.int.recv() => SignalEvent::Stop("SIGINT"),
                Some(()) = self.term.recv() => SignalEvent::Stop("SIGTERM"),
                Some(()) = self.usr1.recv() => SignalEvent::Report,
                else => std::future::pending().await,
            }
        }
        #[cfg(not(unix))]
        {
            match tokio::signal::ctrl_c().await {
                Ok(()) => SignalEvent::Stop("Ctrl-C"),
                Err(_) => std::future::pending().await,
            }
        }
    }
}

async fn next_signal(signals: &mut Option<&mut Signals>) -> SignalEvent {
    match signals {
        Some(s) => s.next().await,
        None => std::future::pending().await,
    }
}

/// A non-blocking UDP socket registered with the runtime for read readiness only.
///
/// On Unix, sends and receives are plain non-blocking syscalls on the socket, so a send's
/// `WouldBlock` means the kernel buffer really is full. (tokio's `UdpSocket::try_send` also
/// answers `WouldBlock` until the reactor has first seen a socket writable, which would drop
/// the first datagram of every new client.)
#[cfg(unix)]
struct Sock(tokio::io::unix::AsyncFd<std::net::UdpSocket>);

#[cfg(unix)]
impl Sock {
    // tokio deprecates the safe constructor because an arbitrary `AsRawFd` may hand out a
    // descriptor it does not own (its replacement is `unsafe`, which this crate forbids); a
    // `std::net::UdpSocket` owns its descriptor for its whole life, which is the contract.
    #[allow(deprecated)]
    fn new(sock: std::net::UdpSocket) -> io::Result<Self> {
        sock.set_nonblocking(true)?;
        let fd = tokio::io::unix::AsyncFd::with_interest(sock, tokio::io::Interest::READABLE)?;
        Ok(Self(fd))
    }

    /// Whether the socket has become readable; consumes that readiness, so the caller must
    /// read until `WouldBlock` or come back without waiting.
    fn poll_readable(&self, cx: &mut Context<'_>) -> bool {
        match self.0.poll_read_ready(cx) {
            Poll::Ready(Ok(mut guard)) => {
                guard.clear_ready();
                true
            }
            // The read surfaces the error.
            Poll::Ready(Err(_)) => true,
            Poll::Pending => false,
        }
    }

    fn try_recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.0.get_ref().recv_from(buf)
    }

    fn try_recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.get_ref().recv(buf)
    }

    fn try_send(&self, buf: &[u8]) -> io::Result<usize> {
        self.0.get_ref().send(buf)
    }

    fn try_send_to(&self, buf: &[u8], to: SocketAddr) -> io::Result<usize> {
        self.0.get_ref().send_to(buf, to)
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.0.get_ref().local_addr()
    }
}

/// Elsewhere, tokio's socket (whose first sends may report `WouldBlock`, see above).
#[cfg(not(unix))]
struct Sock(tokio::net::UdpSocket);

#[cfg(not(unix))]
impl Sock {
    fn new(sock: std::net::UdpSocket) -> io::Result<Self> {
        sock.set_nonblocking(true)?;
        Ok(Self(tokio::net::UdpSocket::from_std(sock)?))
    }

    /// Whether the socket may be readable (tokio keeps the readiness until `WouldBlock`).
    fn poll_readable(&self, cx: &mut Context<'_>) -> bool {
        self.0.poll_recv_ready(cx).is_ready()
    }

    fn try_recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.0.try_recv_from(buf)
    }

    fn try_recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.try_recv(buf)
    }

    fn try_send(&self, buf: &[u8]) -> io::Result<usize> {
        self.0.try_send(buf)
    }

    fn try_send_to(&self, buf: &[u8], to: SocketAddr) -> io::Result<usize> {
        self.0.try_send_to(buf, to)
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.0.local_addr()
    }
}

/// A socket with something to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    Listen,
    Upstream(Slot),
}

/// The proxy: the listening socket, one upstream socket per client, and the [`Engine`].
pub struct Proxy {
    engine: Engine,
    listen: Sock,
    forward: SocketAddr,
    /// Upstream sockets by slot, connected to `forward`.
    upstream: Vec<Option<Sock>>,
    /// Sockets to read: found readable, or left readable by the last batch's bound.
    ready: Vec<Source>,
    expired: Vec<(Slot, SocketAddr)>,
    recv_buf: Vec<u8>,
    send_buf: Vec<u8>,
    quiet: bool,
    started: Instant,
}

/// The local address an upstream socket binds: loopback toward a loopback server, the
/// wildcard otherwise, of the server's family.
fn upstream_bind_addr(forward: SocketAddr) -> SocketAddr {
    let ip = match forward.ip() {
        IpAddr::V4(v4) if v4.is_loopback() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        IpAddr::V6(v6) if v6.is_loopback() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    };
    SocketAddr::new(ip, 0)
}

fn open_upstream(forward: SocketAddr) -> io::Result<Sock> {
    let sock = std::net::UdpSocket::bind(upstream_bind_addr(forward))?;
    sock.connect(forward)?;
    Sock::new(sock)
}

/// Adds every socket that became readable to `ready` (which may already hold sockets left
/// readable by the previous batch); ready when there is anything to read.
fn poll_ready(
    cx: &mut Context<'_>,
    listen: &Sock,
    upstream: &[Option<Sock>],
    ready: &mut Vec<Source>,
) -> Poll<()> {
    if listen.poll_readable(cx) && !ready.contains(&Source::Listen) {
        ready.push(Source::Listen);
    }
    for (slot, sock) in upstream.iter().enumerate() {
        if let Some(sock) = sock {
            if sock.poll_readable(cx) && !ready.contains(&Source::Upstream(slot)) {
                ready.push(Source::Upstream(slot));
            }
        }
    }
    if ready.is_empty() {
        Poll::Pending
    } else {
        Poll::Ready(())
    }
}

fn outcome(res: io::Result<usize>) -> SendOutcome {
    match res {
        Ok(_) => SendOutcome::Sent,
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => SendOutcome::WouldBlock,
        Err(_) => SendOutcome::Failed,
    }
}

impl Proxy {
    /// Binds the listening socket (inside a tokio runtime).
    pub fn bind(
        listen: SocketAddr,
        forward: SocketAddr,
        config: EngineConfig,
        quiet: bool,
    ) -> io::Result<Self> {
        let listen = Sock::new(std::net::UdpSocket::bind(listen)?)?;
        Ok(Self {
            engine: Engine::new(config),
            listen,
            forward,
            upstream: Vec::new(),
            ready: Vec::new(),
            expired: Vec::new(),
            recv_buf: vec![0; MAX_DATAGRAM],
            send_buf: Vec::with_capacity(MAX_DATAGRAM),
            quiet,
            started: Instant::now(),
        })
    }

    /// The address clients send to.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listen.local_addr()
    }

    /// All counters so far.
    pub fn report(&self) -> Report {
        self.engine.report()
    }

    /// Forwards until `stop` (if any) or a stop signal (if `signals` is given); SIGUSR1
    /// prints the counters. Cancel-safe: dropping the future leaves the proxy consistent, so
    /// it can be raced against other work and inspected afterwards.
    pub async fn run(
        &mut self,
        stop: Option<Instant>,
        mut signals: Option<&mut Signals>,
    ) -> Stopped {
        let mut sleep = pin!(tokio::time::sleep(Duration::ZERO));
        loop {
            let now = Instant::now();
            self.flush(now);
            if stop.is_some_and(|s| now >= s) {
                return Stopped::Duration;
            }
            let deadline = match (self.engine.poll_timeout(), stop) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            if let Some(d) = deadline {
                sleep.as_mut().reset(tokio::time::Instant::from_std(d));
            }
            let Self {
                listen,
                upstream,
                ready,
                ..
            } = self;
            let mut readable = false;
            let mut signal = None;
            tokio::select! {
                biased;
                ev = next_signal(&mut signals) => signal = Some(ev),
                () = &mut sleep, if deadline.is_some() => {}
                () = poll_fn(|cx| poll_ready(cx, listen, upstream, ready)) => readable = true,
            }
            match signal {
                Some(SignalEvent::Stop(name)) => return Stopped::Signal(name),
                Some(SignalEvent::Report) => {
                    let text = format_report(&self.report(), self.started.elapsed(), None);
                    eprint!("{text}");
                }
                None => {}
            }
            if readable {
                let now = Instant::now();
                let mut sources = std::mem::take(&mut self.ready);
                for source in sources.drain(..) {
                    let drained = match source {
                        Source::Listen => self.read_listen(now),
                        Source::Upstream(slot) => self.read_upstream(now, slot),
                    };
                    if !drained {
                        // Readiness was consumed: come back to it without waiting.
                        self.ready.push(source);
                    }
                }
                self.flush(now);
            }
        }
    }

    /// Reads the listening socket; whether it was drained (`WouldBlock`).
    fn read_listen(&mut self, now: Instant) -> bool {
        for _ in 0..READ_BATCH {
            match self.listen.try_recv_from(&mut self.recv_buf) {
                Ok((n, from)) => self.handle_client_datagram(now, from, n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
                // E.g. a reset reported on some platforms after an ICMP error: keep reading.
                Err(_) => self.engine.record_recv_error(Dir::Up),
            }
        }
        false
    }

    fn handle_client_datagram(&mut self, now: Instant, from: SocketAddr, n: usize) {
        let slot = match self.engine.lookup(from) {
            Some(slot) => slot,
            None => {
                let Some(slot) = self.engine.admit(now, from) else {
                    return;
                };
                match open_upstream(self.forward) {
                    Ok(sock) => {
                        if !self.quiet {
                            let local = sock
                                .local_addr()
                                .map_or_else(|_| "?".to_string(), |a| a.to_string());
                            eprintln!(
                                "netem: client {from} -> upstream {local} (client #{})",
                                self.engine.client_index(slot).unwrap_or_default()
                            );
                        }
                        if self.upstream.len() <= slot {
                            self.upstream.resize_with(slot + 1, || None);
                        }
                        self.upstream[slot] = Some(sock);
                    }
                    Err(e) => {
                        if !self.quiet {
                            eprintln!("netem: cannot open an upstream socket for {from}: {e}");
                        }
                        self.engine.abandon(slot);
                        return;
                    }
                }
                slot
            }
        };
        self.engine
            .handle_input(now, slot, Dir::Up, &self.recv_buf[..n]);
    }

    /// Reads the upstream socket of `slot`; whether it was drained (`WouldBlock`) or is gone.
    fn read_upstream(&mut self, now: Instant, slot: Slot) -> bool {
        for _ in 0..READ_BATCH {
            let Some(Some(sock)) = self.upstream.get(slot) else {
                return true;
            };
            match sock.try_recv(&mut self.recv_buf) {
                Ok(n) => self
                    .engine
                    .handle_input(now, slot, Dir::Down, &self.recv_buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
                // ECONNREFUSED after an ICMP port unreachable from a server not (yet) up.
                Err(_) => self.engine.record_recv_error(Dir::Down),
            }
        }
        false
    }

    /// Sends everything due at `now`, then forgets expired clients.
    fn flush(&mut self, now: Instant) {
        while let Some(t) = self.engine.poll_transmit(now, &mut self.send_buf) {
            let data = &self.send_buf[..t.len];
            let res = match t.dir {
                Dir::Up => match self.upstream.get(t.slot) {
                    Some(Some(sock)) => outcome(sock.try_send(data)),
                    _ => SendOutcome::Failed,
                },
                Dir::Down => match self.engine.addr(t.slot) {
                    Some(to) => outcome(self.listen.try_send_to(data, to)),
                    None => SendOutcome::Failed,
                },
            };
            self.engine.record_send(t.dir, res);
        }
        self.engine.handle_timeout(now, &mut self.expired);
        for (slot, addr) in self.expired.drain(..) {
            if let Some(s) = self.upstream.get_mut(slot) {
                *s = None;
            }
            self.ready.retain(|&r| r != Source::Upstream(slot));
            if !self.quiet {
                eprintln!("netem: client {addr} expired");
            }
        }
    }
}

/// The counters as printed on exit (and on SIGUSR1).
pub fn format_report(r: &Report, elapsed: Duration, why: Option<Stopped>) -> String {
    let mut s = match why {
        Some(Stopped::Duration) => format!("netem: stopped after {elapsed:.1?} (--duration)\n"),
        Some(Stopped::Signal(name)) => format!("netem: stopped by {name} after {elapsed:.1?}\n"),
        None => format!("netem: counters after {elapsed:.1?}\n"),
    };
    for dir in Dir::ALL {
        let d = r.dir(dir);
        let l = d.link;
        s.push_str(&format!(
            "netem: {}: sent={} delivered={} lost={} duplicated={} corrupted={} reordered={} \
             queue_dropped={} send_dropped={} send_errors={} recv_errors={} bytes_in={} bytes_out={}\n",
            dir.describe(),
            l.sent,
            l.delivered,
            l.lost,
            l.duplicated,
            l.corrupted,
            l.reordered,
            l.queue_dropped,
            d.send_dropped,
            d.send_errors,
            d.recv_errors,
            l.bytes_in,
            l.bytes_out,
        ));
    }
    s.push_str(&format!(
        "netem: clients: admitted={} active={} expired={} refused_datagrams={} in_flight={}\n",
        r.clients_admitted, r.clients_active, r.clients_expired, r.refused, r.in_flight
    ));
    s
}

/// Runs `tether netem`; returns the process exit code.
pub fn run(args: &NetemArgs) -> i32 {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("netem: cannot start the runtime: {e}");
            return 1;
        }
    };
    rt.block_on(serve(args))
}

async fn serve(args: &NetemArgs) -> i32 {
    let mut proxy = match Proxy::bind(args.listen, args.forward, args.engine_config(), args.quiet) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("netem: cannot listen on {}: {e}", args.listen);
            return 1;
        }
    };
    let mut signals = match Signals::new() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("netem: cannot install signal handlers: {e}");
            return 1;
        }
    };
    let local = match proxy.local_addr() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("netem: {e}");
            return 1;
        }
    };
    let mut out = io::stdout().lock();
    let ready = writeln!(
        out,
        "netem listening on {local} forwarding to {}",
        args.forward
    )
    .and_then(|()| out.flush());
    drop(out);
    if let Err(e) = ready {
        eprintln!("netem: cannot write the readiness line: {e}");
        return 1;
    }
    let started = Instant::now();
    // A --duration too long for an Instant means no stop.
    let stop = args.duration.and_then(|d| started.checked_add(d));
    let why = proxy.run(stop, Some(&mut signals)).await;
    eprint!(
        "{}",
        format_report(&proxy.report(), started.elapsed(), Some(why))
    );
    0
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;
    use std::future::Future;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;

    use clap::Parser;
    use tokio::net::UdpSocket;
    use tokio::time::timeout;

    /// Bound on any one test's socket traffic.
    const TEST_LIMIT: Duration = Duration::from_secs(30);

    fn config(link: LinkConfig) -> EngineConfig {
        EngineConfig {
            up: link.clone(),
            down: link,
            seed: 1,
            idle_timeout: Duration::from_secs(60),
            max_clients: 16,
        }
    }

    /// A UDP server on loopback answering each datagram with `reply(from, data)`; counts
    /// what it received.
    async fn server(
        reply: fn(SocketAddr, &[u8]) -> Vec<u8>,
    ) -> (SocketAddr, Arc<AtomicU64>, tokio::task::JoinHandle<()>) {
        let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = sock.local_addr().unwrap();
        let count = Arc::new(AtomicU64::new(0));
        let c = count.clone();
        let task = tokio::spawn(async move {
            let mut buf = vec![0; MAX_DATAGRAM];
            loop {
                let Ok((n, from)) = sock.recv_from(&mut buf).await else {
                    continue;
                };
                c.fetch_add(1, Ordering::Relaxed);
                let _ = sock.send_to(&reply(from, &buf[..n]), from).await;
            }
        });
        (addr, count, task)
    }

    async fn echo_server() -> (SocketAddr, Arc<AtomicU64>, tokio::task::JoinHandle<()>) {
        server(|_, data| data.to_vec()).await
    }

    /// Runs `client` against a proxy in front of `server_addr` on the same task, then hands
    /// back the client's result and the proxy's counters.
    async fn through_proxy<T>(
        link: EngineConfig,
        server_addr: SocketAddr,
        client: impl FnOnce(SocketAddr) -> std::pin::Pin<Box<dyn Future<Output = T>>>,
    ) -> (T, Report) {
        let listen = "127.0.0.1:0".parse().unwrap();
        let mut proxy = Proxy::bind(listen, server_addr, link, true).unwrap();
        let addr = proxy.local_addr().unwrap();
        let fut = client(addr);
        let out = tokio::select! {
            why = proxy.run(None, None) => panic!("proxy stopped: {why:?}"),
            out = timeout(TEST_LIMIT, fut) => out.expect("test traffic timed out"),
        };
        (out, proxy.report())
    }

    async fn connected(to: SocketAddr) -> UdpSocket {
        let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        sock.connect(to).await.unwrap();
        sock
    }

    /// Sends `n` numbered datagrams with at most `window` unanswered, so no socket buffer
    /// overflows; returns the distinct numbers answered.
    async fn windowed_echo(sock: &UdpSocket, n: u32, window: u32) -> HashSet<u32> {
        let mut got = HashSet::new();
        let mut next = 0u32;
        let mut buf = [0u8; 64];
        while (got.len() as u32) < n {
            while next < n && next - got.len() as u32 <= window {
                sock.send(&next.to_be_bytes()).await.unwrap();
                next += 1;
            }
            let len = timeout(Duration::from_secs(5), sock.recv(&mut buf))
                .await
                .expect("an echo went missing")
                .unwrap();
            assert_eq!(len, 4);
            got.insert(u32::from_be_bytes(buf[..4].try_into().unwrap()));
        }
        got
    }

    /// Receives until nothing has come for `quiet`; returns how many datagrams came.
    async fn drain_for(sock: &UdpSocket, quiet: Duration) -> u64 {
        let mut buf = vec![0u8; MAX_DATAGRAM];
        let mut n = 0;
        while let Ok(res) = timeout(quiet, sock.recv(&mut buf)).await {
            res.unwrap();
            n += 1;
        }
        n
    }

    #[tokio::test(flavor = "current_thread")]
    async fn lossless_proxy_delivers_every_datagram_both_ways() {
        let (server_addr, served, task) = echo_server().await;
        let (got, r) = through_proxy(config(LinkConfig::perfect()), server_addr, |addr| {
            Box::pin(async move {
                let sock = connected(addr).await;
                windowed_echo(&sock, 1000, 32).await
            })
        })
        .await;
        task.abort();
        assert_eq!(got.len(), 1000);
        assert_eq!(served.load(Ordering::Relaxed), 1000);
        for dir in Dir::ALL {
            let d = r.dir(dir);
            assert_eq!((d.link.sent, d.link.delivered), (1000, 1000), "{dir:?}");
            assert_eq!(d.link.bytes_in, 4000);
            assert_eq!(d.send_dropped + d.send_errors, 0);
        }
        assert_eq!((r.clients_admitted, r.clients_active), (1, 1));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn total_loss_delivers_nothing() {
        let (server_addr, served, task) = echo_server().await;
        let link = LinkConfig::perfect().with_loss(1.0);
        let (got, r) = through_proxy(config(link), server_addr, |addr| {
            Box::pin(async move {
                let sock = connected(addr).await;
                for i in 0..100u32 {
                    sock.send(&i.to_be_bytes()).await.unwrap();
                    if i % 10 == 9 {
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                }
                drain_for(&sock, Duration::from_millis(300)).await
            })
        })
        .await;
        task.abort();
        assert_eq!(got, 0);
        assert_eq!(served.load(Ordering::Relaxed), 0);
        assert_eq!((r.up.link.sent, r.up.link.lost), (100, 100));
        assert_eq!(r.down.link.sent, 0);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn delay_applies_to_each_direction() {
        let (server_addr, _, task) = echo_server().await;
        let link = LinkConfig::perfect().with_delay(Duration::from_millis(50));
        let (rtts, _) = through_proxy(config(link), server_addr, |addr| {
            Box::pin(async move {
                let sock = connected(addr).await;
                let mut rtts = Vec::new();
                let mut buf = [0u8; 16];
                for i in 0..3u8 {
                    let sent = Instant::now();
                    sock.send(&[i]).await.unwrap();
                    let n = timeout(Duration::from_secs(5), sock.recv(&mut buf))
                        .await
                        .expect("echo")
                        .unwrap();
                    assert_eq!(&buf[..n], &[i]);
                    rtts.push(sent.elapsed());
                }
                rtts
            })
        })
        .await;
        task.abort();
        for rtt in rtts {
            assert!(rtt >= Duration::from_millis(100), "{rtt:?}");
            assert!(rtt < Duration::from_secs(2), "{rtt:?}");
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn counters_add_up_under_every_impairment() {
        let (server_addr, served, task) = echo_server().await;
        let link = LinkConfig::perfect()
            .with_loss(0.1)
            .with_duplicate(0.05)
            .with_corrupt(0.02)
            .with_jitter(Duration::from_millis(1))
            .with_delay(Duration::from_millis(2))
            .with_reorder(0.05, Duration::from_millis(5));
        let sent = 500u64;
        let (received, r) = through_proxy(config(link), server_addr, |addr| {
            Box::pin(async move {
                let sock = connected(addr).await;
                let mut received = 0;
                for i in 0..sent {
                    sock.send(&i.to_be_bytes()).await.unwrap();
                    if i % 10 == 9 {
                        // Pace, so neither the kernel nor the proxy drops anything itself.
                        received += drain_for(&sock, Duration::from_millis(2)).await;
                    }
                }
                received + drain_for(&sock, Duration::from_millis(300)).await
            })
        })
        .await;
        task.abort();
        assert_eq!(r.in_flight, 0);
        for dir in Dir::ALL {
            let d = r.dir(dir);
            let l = d.link;
            assert_eq!(
                l.delivered,
                l.sent - l.lost - l.queue_dropped + l.duplicated,
                "{dir:?}: {l:?}"
            );
            assert!(l.lost > 0 && l.duplicated > 0 && l.reordered > 0, "{l:?}");
            assert_eq!(d.send_dropped + d.send_errors, 0);
        }
        assert_eq!(r.up.link.sent, sent);
        assert_eq!(served.load(Ordering::Relaxed), r.up.link.delivered);
        assert_eq!(
            r.down.link.sent, r.up.link.delivered,
            "the server echoes all"
        );
        assert_eq!(received, r.down.link.delivered);
        let text = format_report(&r, Duration::from_secs(1), Some(Stopped::Duration));
        assert!(
            text.contains(&format!("client->server: sent={sent} ")),
            "{text}"
        );
    }

    #[tokio::test(flavor = "current_thread")]
    async fn each_client_gets_its_own_upstream_address() {
        let (server_addr, _, task) = server(|from, _| from.to_string().into_bytes()).await;
        let ((a, b, proxy_addr), r) =
            through_proxy(config(LinkConfig::perfect()), server_addr, |addr| {
                Box::pin(async move {
                    let (x, y) = (connected(addr).await, connected(addr).await);
                    let mut seen = Vec::new();
                    for sock in [&x, &y, &x] {
                        sock.send(b"who am i").await.unwrap();
                        let mut buf = [0u8; 64];
                        let n = timeout(Duration::from_secs(5), sock.recv(&mut buf))
                            .await
                            .expect("answer")
                            .unwrap();
                        seen.push(String::from_utf8(buf[..n].to_vec()).unwrap());
                    }
                    assert_eq!(seen[0], seen[2], "one mapping per client");
                    (seen[0].clone(), seen[1].clone(), addr.to_string())
                })
            })
            .await;
        task.abort();
        assert_ne!(a, b);
        assert_ne!(a, proxy_addr);
        assert!(a.starts_with("127.0.0.1:"), "{a}");
        assert_eq!((r.clients_admitted, r.clients_active), (2, 2));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn idle_mappings_expire_and_the_table_is_bounded() {
        let (server_addr, _, task) = echo_server().await;
        let mut cfg = config(LinkConfig::perfect());
        cfg.idle_timeout = Duration::from_millis(100);
        cfg.max_clients = 1;
        let ((), r) = through_proxy(cfg, server_addr, |addr| {
            Box::pin(async move {
                let (x, y) = (connected(addr).await, connected(addr).await);
                x.send(b"x").await.unwrap();
                let mut buf = [0u8; 8];
                timeout(Duration::from_secs(5), x.recv(&mut buf))
                    .await
                    .expect("x answered")
                    .unwrap();
                // The table is full: y is refused while x's mapping lives...
                y.send(b"y").await.unwrap();
                assert_eq!(drain_for(&y, Duration::from_millis(50)).await, 0);
                // ...and admitted once it has expired.
                tokio::time::sleep(Duration::from_millis(200)).await;
                y.send(b"y").await.unwrap();
                timeout(Duration::from_secs(5), y.recv(&mut buf))
                    .await
                    .expect("y answered")
                    .unwrap();
            })
        })
        .await;
        task.abort();
        assert_eq!(r.clients_admitted, 2);
        assert_eq!(r.clients_expired, 1);
        assert_eq!(r.refused, 1);
        assert_eq!(r.clients_active, 1);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn duration_stops_the_proxy() {
        let listen = "127.0.0.1:0".parse().unwrap();
        let forward = "127.0.0.1:9".parse().unwrap();
        let mut proxy = Proxy::bind(listen, forward, config(LinkConfig::perfect()), true).unwrap();
        let start = Instant::now();
        let why = timeout(
            Duration::from_secs(5),
            proxy.run(Some(start + Duration::from_millis(100)), None),
        )
        .await
        .expect("stopped by itself");
        assert_eq!(why, Stopped::Duration);
        assert!(start.elapsed() >= Duration::from_millis(100));
    }

    #[derive(Debug, Parser)]
    struct Wrap {
        #[command(flatten)]
        args: NetemArgs,
    }

    #[test]
    fn flags_build_the_link() {
        let w = Wrap::parse_from([
            "netem",
            "--listen",
            "127.0.0.1:0",
            "--forward",
            "127.0.0.1:4000",
            "--loss",
            "5%",
            "--delay",
            "20ms",
            "--jitter",
            "5ms",
            "--reorder",
            "1%",
            "--dup",
            "1%",
            "--rate",
            "50mbit",
            "--queue",
            "128KiB",
            "--corrupt",
            "0.1%",
            "--seed",
            "9",
            "--duration",
            "30s",
        ]);
        let l = w.args.link();
        let expected = LinkConfig::perfect()
            .with_loss(0.05)
            .with_delay(Duration::from_millis(20))
            .with_jitter(Duration::from_millis(5))
            .with_reorder(0.01, Duration::from_millis(10))
            .with_duplicate(0.01)
            .with_corrupt(0.001)
            .with_rate(50_000_000, 128 * 1024)
            .with_max_in_flight(8192);
        assert_eq!(l, expected);
        assert_eq!(w.args.seed, 9);
        assert_eq!(w.args.duration, Some(Duration::from_secs(30)));
        assert_eq!(w.args.engine_config().max_clients, 4096);

        let w = Wrap::parse_from([
            "netem",
            "--listen",
            "127.0.0.1:0",
            "--forward",
            "127.0.0.1:4000",
            "--preset",
            "satellite",
            "--burst-loss",
            "5%",
            "--burst-len",
            "4",
        ]);
        let l = w.args.link();
        assert_eq!(l.delay, Duration::from_millis(300), "preset kept");
        assert!(matches!(
            l.loss,
            tether_core::sim::Loss::GilbertElliott { r, .. } if r == 0.25
        ));
        assert!(Wrap::try_parse_from([
            "netem",
            "--listen",
            "127.0.0.1:0",
            "--forward",
            "127.0.0.1:1",
            "--preset",
            "moon"
        ])
        .is_err());
    }
}
