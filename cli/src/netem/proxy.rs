//! The proxy loop: one task waits for readable sockets or the engine's next deadline, reads
//! every readable socket with one `now` per batch, and sends what the engine says is due.
use std::future::poll_fn;
use std::io;
use std::net::SocketAddr;
use std::pin::pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tether_core::sim::netem::{Dir, Engine, EngineConfig, Report, SendOutcome, Slot};

use super::report::format_report;
use super::signals::{next_signal, SignalEvent, Signals};
use super::socket::{open_upstream, Sock};

/// Largest UDP payload.
const MAX_DATAGRAM: usize = 65_535;

/// Datagrams read from one socket per batch before the others get a turn (the socket stays
/// readable, so the next batch continues with it).
const READ_BATCH: usize = 256;

/// Why [`Proxy::run`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    /// `--duration` elapsed.
    Duration,
    /// A signal asked to stop.
    Signal(&'static str),
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

/// What a non-blocking send's result means to the engine.
pub fn send_outcome(res: io::Result<usize>) -> SendOutcome {
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
            let deadline = self.deadline(stop);
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
                self.read_ready(now);
                self.flush(now);
            }
        }
    }

    /// The engine's next deadline or `stop`, whichever comes first.
    fn deadline(&self, stop: Option<Instant>) -> Option<Instant> {
        match (self.engine.poll_timeout(), stop) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Reads one batch from every socket found readable, all at `now`.
    fn read_ready(&mut self, now: Instant) {
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

    /// A datagram of `n` bytes from client `from` (admitted first if new): into its link.
    fn handle_client_datagram(&mut self, now: Instant, from: SocketAddr, n: usize) {
        let slot = match self.engine.lookup(from) {
            Some(slot) => slot,
            None => match self.admit(now, from) {
                Some(slot) => slot,
                None => return,
            },
        };
        self.engine
            .handle_input(now, slot, Dir::Up, &self.recv_buf[..n]);
    }

    /// Admits client `from` and opens its upstream socket; `None` (counted by the engine) when
    /// the table is full or the socket cannot be opened.
    fn admit(&mut self, now: Instant, from: SocketAddr) -> Option<Slot> {
        let slot = self.engine.admit(now, from)?;
        let sock = match open_upstream(self.forward) {
            Ok(sock) => sock,
            Err(e) => {
                if !self.quiet {
                    eprintln!("netem: cannot open an upstream socket for {from}: {e}");
                }
                self.engine.abandon(slot);
                return None;
            }
        };
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
        Some(slot)
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
                    Some(Some(sock)) => send_outcome(sock.try_send(data)),
                    _ => SendOutcome::Failed,
                },
                Dir::Down => match self.engine.addr(t.slot) {
                    Some(to) => send_outcome(self.listen.try_send_to(data, to)),
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;
    use std::future::Future;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;

    use tether_core::sim::LinkConfig;
    use tokio::net::UdpSocket;
    use tokio::time::timeout;

    /// Bound on any one test's socket traffic.
    const TEST_LIMIT: Duration = Duration::from_secs(30);

    fn config(link: LinkConfig) -> EngineConfig {
        EngineConfig {
            max_clients: 16,
            ..EngineConfig::symmetric(link)
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
}
