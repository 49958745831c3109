//! The scenario suite of `tether_tests::scenarios`, unchanged on all three runtimes: tokio
//! (`KcpListener`/`KcpStream` on one shared multi-thread runtime), smol (the same API over
//! async-io) and mio (`Endpoint`s owned by dedicated event-loop threads, driven by
//! commands from the test thread).
//!
//! Each scenario prints its wall time (`cargo test ... -- --nocapture`).
use tether_tests::scenarios;

macro_rules! suite {
    ($name:ident, $rt:ty) => {
        mod $name {
            #[test]
            fn echo() {
                super::scenarios::echo::<$rt>();
            }
            #[test]
            fn bulk_both_directions() {
                super::scenarios::bulk_both_directions::<$rt>();
            }
            #[test]
            fn thousand_sessions() {
                super::scenarios::thousand_sessions::<$rt>();
            }
            #[test]
            fn close_expiry() {
                super::scenarios::close_expiry::<$rt>();
            }
            #[test]
            fn raw_kcp() {
                super::scenarios::raw_kcp::<$rt>();
            }
            #[test]
            fn peer_vanishes() {
                super::scenarios::peer_vanishes::<$rt>();
            }
            #[test]
            fn peer_only_reads() {
                super::scenarios::peer_only_reads::<$rt>();
            }
            #[test]
            fn reuseport_clients() {
                super::scenarios::reuseport_clients::<$rt>();
            }
            #[test]
            fn dead_link() {
                super::scenarios::dead_link::<$rt>();
            }
            #[test]
            fn dropped_stream_lingers() {
                super::scenarios::dropped_stream_lingers::<$rt>();
            }
            #[test]
            fn mux_echo() {
                super::scenarios::mux_echo::<$rt>();
            }
            #[test]
            fn tcp_mux() {
                super::scenarios::tcp_mux::<$rt>();
            }
            #[test]
            fn mux_ends() {
                super::scenarios::mux_ends::<$rt>();
            }
            #[test]
            fn smux_ends() {
                super::scenarios::smux_ends::<$rt>();
            }
            #[test]
            fn chunk_roundtrip() {
                super::scenarios::chunk_roundtrip::<$rt>();
            }
        }
    };
}

suite!(tokio_rt, crate::tokio_facade::Tokio);
suite!(smol_rt, crate::smol_facade::Smol);
suite!(mio_rt, crate::mio_facade::Mio);

/// tokio: one multi-thread runtime for the process; the test thread enters it with
/// `block_on`, servers and `echo_many` sessions are tasks.
mod tokio_facade {
    use std::io;
    use std::net::SocketAddr;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::{mpsc, Arc, OnceLock};
    use std::time::Duration;

    use tether_runtime_tokio::{Config, KcpConnection, KcpListener, KcpStream};
    use tether_tests::scenarios::{deadline_error, mux_client, toy_mux, EchoServer, Rt};
    use tether_tests::scenarios_tcp_mux;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::runtime::Runtime;
    use tokio::task::JoinSet;

    fn rt() -> &'static Runtime {
        static RT: OnceLock<Runtime> = OnceLock::new();
        RT.get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .expect("tokio runtime")
        })
    }

    /// Runs `f` on the runtime, giving up after `limit`.
    fn within<T>(
        what: &str,
        limit: Duration,
        f: impl std::future::Future<Output = io::Result<T>>,
    ) -> io::Result<T> {
        rt().block_on(async {
            tokio::time::timeout(limit, f)
                .await
                .unwrap_or_else(|_| Err(deadline_error(what, limit)))
        })
    }

    pub struct Tokio;

    pub struct Server {
        addr: SocketAddr,
        ends: mpsc::Receiver<io::Result<usize>>,
        received: Arc<AtomicU64>,
        task: tokio::task::JoinHandle<()>,
    }

    impl Drop for Server {
        fn drop(&mut self) {
            // The accept task owns the listener and the session tasks (a `JoinSet`).
            self.task.abort();
        }
    }

    impl EchoServer for Server {
        fn addr(&self) -> SocketAddr {
            self.addr
        }
        fn next_end(&self, limit: Duration) -> Option<io::Result<usize>> {
            self.ends.recv_timeout(limit).ok()
        }
        fn received(&self) -> u64 {
            self.received.load(Ordering::SeqCst)
        }
    }

    /// Echoes (or, with `echo` false, only reads) until the session ends.
    async fn serve_session(
        mut s: KcpStream,
        echo: bool,
        received: Arc<AtomicU64>,
    ) -> io::Result<usize> {
        let mut buf = vec![0u8; 64 << 10];
        let mut echoed = 0;
        loop {
            let n = s.read(&mut buf).await?;
            if n == 0 {
                return Ok(echoed);
            }
            received.fetch_add(n as u64, Ordering::SeqCst);
            if echo {
                s.write_all(&buf[..n]).await?;
                echoed += n;
            }
        }
    }

    fn server(cfg: &Config, echo: bool) -> io::Result<Server> {
        let listener = rt().block_on(KcpListener::bind("127.0.0.1:0", cfg.clone()))?;
        let addr = listener.local_addr();
        let (tx, ends) = mpsc::channel();
        let received = Arc::new(AtomicU64::new(0));
        let counter = Arc::clone(&received);
        let task = rt().spawn(async move {
            let mut sessions = JoinSet::new();
            while let Ok((s, _)) = listener.accept().await {
                let (tx, counter) = (tx.clone(), Arc::clone(&counter));
                sessions.spawn(async move {
                    let _ = tx.send(serve_session(s, echo, counter).await);
                });
            }
        });
        Ok(Server {
            addr,
            ends,
            received,
            task,
        })
    }

    /// Echoes every stream of every connection of a toy-mux listener.
    async fn mux_server(listener: KcpListener) {
        let mut tasks = JoinSet::new();
        while let Ok(conn) = listener.accept_connection().await {
            tasks.spawn(async move {
                let mut streams = JoinSet::new();
                while let Ok(s) = conn.accept_stream().await {
                    streams.spawn(serve_session(s, true, Arc::new(AtomicU64::new(0))));
                }
                while streams.join_next().await.is_some() {}
            });
        }
    }

    impl Rt for Tokio {
        const NAME: &'static str = "tokio";

        fn mux_echo(cfg: &Config, msgs: &[Vec<u8>], limit: Duration) -> io::Result<Vec<Vec<u8>>> {
            let listener =
                rt().block_on(KcpListener::bind_with("127.0.0.1:0", cfg.clone(), toy_mux))?;
            let addr = listener.local_addr();
            let server = rt().spawn(mux_server(listener));
            let r = within("mux_echo", limit, async {
                let conn = KcpConnection::connect_with(addr, cfg.clone(), toy_mux).await?;
                mux_client(&conn, msgs).await
            });
            server.abort();
            r
        }
        fn tcp_mux(limit: Duration) -> io::Result<()> {
            within("tcp_mux", limit, scenarios_tcp_mux::run::<KcpStream>())
        }
        fn mux_ends(cfg: &Config, limit: Duration) -> io::Result<()> {
            let run = scenarios_tcp_mux::kcp_streams_both_ways::<KcpStream, _>(cfg, toy_mux);
            within("mux_ends", limit, run)
        }
        fn smux_ends(cfg: &Config, limit: Duration) -> io::Result<()> {
            let run = scenarios_tcp_mux::smux_streams_both_ways::<KcpStream>(cfg);
            within("smux_ends", limit, run)
        }
        fn chunk_roundtrip(cfg: &Config, limit: Duration) -> io::Result<()> {
            let run = tether_tests::scenarios_chunks::kcp_chunk_roundtrip::<KcpStream>(cfg);
            within("chunk_roundtrip", limit, run)
        }
        type Server = Server;
        type Conn = KcpStream;

        fn echo_server(cfg: &Config) -> io::Result<Server> {
            server(cfg, true)
        }

        fn sink_server(cfg: &Config) -> io::Result<Server> {
            server(cfg, false)
        }

        fn connect(addr: SocketAddr, cfg: &Config) -> io::Result<KcpStream> {
            rt().block_on(KcpStream::connect(addr, cfg.clone()))
        }

        fn write_all(c: &mut KcpStream, data: &[u8], limit: Duration) -> io::Result<()> {
            within("write_all", limit, c.write_all(data))
        }

        fn read_exact(c: &mut KcpStream, buf: &mut [u8], limit: Duration) -> io::Result<()> {
            within("read_exact", limit, async {
                c.read_exact(buf).await.map(drop)
            })
        }

        fn flush(c: &mut KcpStream, limit: Duration) -> io::Result<()> {
            within("flush", limit, c.flush())
        }

        fn duplex(c: &mut KcpStream, data: &[u8], limit: Duration) -> io::Result<Vec<u8>> {
            within("duplex", limit, async {
                let (mut r, mut w) = tokio::io::split(c);
                let mut got = vec![0u8; data.len()];
                let (wr, rd) = tokio::join!(w.write_all(data), r.read_exact(&mut got));
                wr?;
                rd?;
                Ok(got)
            })
        }

        fn echo_many(
            addr: SocketAddr,
            cfg: &Config,
            msgs: &[Vec<u8>],
            limit: Duration,
        ) -> io::Result<Vec<Vec<u8>>> {
            within("echo_many", limit, async {
                // Dropping the set (also on the deadline) aborts every session task.
                let mut set = JoinSet::new();
                for (i, m) in msgs.iter().enumerate() {
                    let (cfg, m) = (cfg.clone(), m.clone());
                    set.spawn(async move {
                        let mut s = KcpStream::connect(addr, cfg).await?;
                        s.write_all(&m).await?;
                        let mut got = vec![0u8; m.len()];
                        s.read_exact(&mut got).await?;
                        io::Result::Ok((i, got))
                    });
                }
                let mut out = vec![Vec::new(); msgs.len()];
                while let Some(r) = set.join_next().await {
                    let (i, got) = r.map_err(io::Error::other)??;
                    out[i] = got;
                }
                Ok(out)
            })
        }
    }
}

/// smol: servers run an `Executor` on their own thread; the test thread uses
/// `smol::block_on`. (Every endpoint also has the adapter's own `tether-kcp` thread.)
mod smol_facade {
    use std::future::Future;
    use std::io;
    use std::net::SocketAddr;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::{mpsc, Arc};
    use std::thread::JoinHandle;
    use std::time::Duration;

    use futures_lite::{future, AsyncReadExt, AsyncWriteExt};
    use smol::{Executor, LocalExecutor, Timer};
    use tether_runtime_smol::{Config, KcpConnection, KcpListener, KcpStream};
    use tether_tests::scenarios::{deadline_error, mux_client, toy_mux, EchoServer, Rt};
    use tether_tests::scenarios_tcp_mux;

    /// Runs `f` on the calling thread, giving up after `limit`.
    fn within<T>(
        what: &str,
        limit: Duration,
        f: impl Future<Output = io::Result<T>>,
    ) -> io::Result<T> {
        smol::block_on(future::or(f, async {
            Timer::after(limit).await;
            Err(deadline_error(what, limit))
        }))
    }

    pub struct Smol;

    pub struct Server {
        addr: SocketAddr,
        ends: mpsc::Receiver<io::Result<usize>>,
        received: Arc<AtomicU64>,
        stop: Option<smol::channel::Sender<()>>,
        thread: Option<JoinHandle<()>>,
    }

    impl Drop for Server {
        fn drop(&mut self) {
            // Closing the channel ends the executor's run; dropping it drops every session.
            self.stop.take();
            if let Some(t) = self.thread.take() {
                let _ = t.join();
            }
        }
    }

    impl EchoServer for Server {
        fn addr(&self) -> SocketAddr {
            self.addr
        }
        fn next_end(&self, limit: Duration) -> Option<io::Result<usize>> {
            self.ends.recv_timeout(limit).ok()
        }
        fn received(&self) -> u64 {
            self.received.load(Ordering::SeqCst)
        }
    }

    /// Echoes (or, with `echo` false, only reads) until the session ends.
    async fn serve_session(
        mut s: KcpStream,
        echo: bool,
        received: Arc<AtomicU64>,
    ) -> io::Result<usize> {
        let mut buf = vec![0u8; 64 << 10];
        let mut echoed = 0;
        loop {
            let n = s.read(&mut buf).await?;
            if n == 0 {
                return Ok(echoed);
            }
            received.fetch_add(n as u64, Ordering::SeqCst);
            if echo {
                s.write_all(&buf[..n]).await?;
                echoed += n;
            }
        }
    }

    fn server(cfg: &Config, echo: bool) -> io::Result<Server> {
        let listener = smol::block_on(KcpListener::bind("127.0.0.1:0", cfg.clone()))?;
        let addr = listener.local_addr();
        let (tx, ends) = mpsc::channel();
        let (stop, stopped) = smol::channel::bounded::<()>(1);
        let received = Arc::new(AtomicU64::new(0));
        let counter = Arc::clone(&received);
        let thread = std::thread::spawn(move || {
            let ex = Executor::new();
            let serve = async {
                while let Ok((s, _)) = listener.accept().await {
                    let (tx, counter) = (tx.clone(), Arc::clone(&counter));
                    ex.spawn(async move {
                        let _ = tx.send(serve_session(s, echo, counter).await);
                    })
                    .detach();
                }
            };
            let stop = async {
                let _ = stopped.recv().await;
            };
            smol::block_on(ex.run(future::or(serve, stop)));
        });
        Ok(Server {
            addr,
            ends,
            received,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// Echoes every stream of every connection of a toy-mux listener. Every task it starts
    /// is held here, so cancelling it ends them all.
    async fn mux_server(listener: KcpListener) {
        let mut tasks = Vec::new();
        while let Ok(conn) = listener.accept_connection().await {
            tasks.push(smol::spawn(async move {
                let mut streams = Vec::new();
                while let Ok(s) = conn.accept_stream().await {
                    let counter = Arc::new(AtomicU64::new(0));
                    streams.push(smol::spawn(serve_session(s, true, counter)));
                }
                drop(streams);
            }));
        }
    }

    impl Rt for Smol {
        const NAME: &'static str = "smol";

        fn mux_echo(cfg: &Config, msgs: &[Vec<u8>], limit: Duration) -> io::Result<Vec<Vec<u8>>> {
            within("mux_echo", limit, async {
                let listener = KcpListener::bind_with("127.0.0.1:0", cfg.clone(), toy_mux).await?;
                let addr = listener.local_addr();
                let _server = smol::spawn(mux_server(listener));
                let conn = KcpConnection::connect_with(addr, cfg.clone(), toy_mux).await?;
                mux_client(&conn, msgs).await
            })
        }

        fn tcp_mux(limit: Duration) -> io::Result<()> {
            within("tcp_mux", limit, scenarios_tcp_mux::run::<KcpStream>())
        }
        fn mux_ends(cfg: &Config, limit: Duration) -> io::Result<()> {
            let run = scenarios_tcp_mux::kcp_streams_both_ways::<KcpStream, _>(cfg, toy_mux);
            within("mux_ends", limit, run)
        }
        fn smux_ends(cfg: &Config, limit: Duration) -> io::Result<()> {
            let run = scenarios_tcp_mux::smux_streams_both_ways::<KcpStream>(cfg);
            within("smux_ends", limit, run)
        }
        fn chunk_roundtrip(cfg: &Config, limit: Duration) -> io::Result<()> {
            let run = tether_tests::scenarios_chunks::kcp_chunk_roundtrip::<KcpStream>(cfg);
            within("chunk_roundtrip", limit, run)
        }

        type Server = Server;
        type Conn = KcpStream;

        fn echo_server(cfg: &Config) -> io::Result<Server> {
            server(cfg, true)
        }

        fn sink_server(cfg: &Config) -> io::Result<Server> {
            server(cfg, false)
        }

        fn connect(addr: SocketAddr, cfg: &Config) -> io::Result<KcpStream> {
            smol::block_on(KcpStream::connect(addr, cfg.clone()))
        }

        fn write_all(c: &mut KcpStream, data: &[u8], limit: Duration) -> io::Result<()> {
            within("write_all", limit, c.write_all(data))
        }

        fn read_exact(c: &mut KcpStream, buf: &mut [u8], limit: Duration) -> io::Result<()> {
            within("read_exact", limit, c.read_exact(buf))
        }

        fn flush(c: &mut KcpStream, limit: Duration) -> io::Result<()> {
            within("flush", limit, c.flush())
        }

        fn duplex(c: &mut KcpStream, data: &[u8], limit: Duration) -> io::Result<Vec<u8>> {
            within("duplex", limit, async {
                let (mut r, mut w) = futures_lite::io::split(c);
                let mut got = vec![0u8; data.len()];
                let (wr, rd) = future::zip(w.write_all(data), r.read_exact(&mut got)).await;
                wr?;
                rd?;
                Ok(got)
            })
        }

        fn echo_many(
            addr: SocketAddr,
            cfg: &Config,
            msgs: &[Vec<u8>],
            limit: Duration,
        ) -> io::Result<Vec<Vec<u8>>> {
            within("echo_many", limit, async {
                // Dropped with this future (also on the deadline), taking every task along.
                let ex = LocalExecutor::new();
                ex.run(async {
                    let tasks: Vec<_> = msgs
                        .iter()
                        .map(|m| {
                            let (cfg, m) = (cfg.clone(), m.clone());
                            ex.spawn(async move {
                                let mut s = KcpStream::connect(addr, cfg).await?;
                                s.write_all(&m).await?;
                                let mut got = vec![0u8; m.len()];
                                s.read_exact(&mut got).await?;
                                io::Result::Ok(got)
                            })
                        })
                        .collect();
                    let mut out = Vec::with_capacity(tasks.len());
                    for t in tasks {
                        out.push(t.await?);
                    }
                    Ok(out)
                })
                .await
            })
        }
    }
}

/// mio: a server thread owns one server `Endpoint` and echoes; a client thread owns one
/// `Endpoint` per session (one for `connect`, 1000 for `echo_many`) and serves commands
/// from the test thread over a channel plus a `mio::Waker`.
mod mio_facade {
    use std::collections::{HashMap, VecDeque};
    use std::io;
    use std::net::SocketAddr;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::{mpsc, Arc};
    use std::thread::JoinHandle;
    use std::time::{Duration, Instant};

    use mio::{Events, Poll, Token, Waker};
    use tether_runtime_mio::config::Config;
    use tether_runtime_mio::core::driver::{StreamEvent, StreamId};
    use tether_runtime_mio::core::kcp::{RecvError, WriteError};
    use tether_runtime_mio::core::session::{CloseReason, ListenerEvent, Session, SessionId};
    use tether_runtime_mio::core::stack::{Side, StreamLayer};
    use tether_runtime_mio::endpoint::{Endpoint, SessionError};
    use tether_runtime_mio::tcp_conn::TcpMachine;
    use tether_runtime_mio::tcp_endpoint::TcpEndpoint;
    use tether_tests::scenarios::{deadline_error, EchoServer, Rt};
    use tether_tests::scenarios_tcp_mux::StreamsApp;

    const WAKE: Token = Token(usize::MAX);
    const CHUNK: usize = 16 << 10;
    /// Echo bytes a server session holds before it stops reading (KCP's window pushes back).
    const ECHO_BUFFER: usize = 256 << 10;

    fn localhost() -> SocketAddr {
        "127.0.0.1:0".parse().expect("literal")
    }

    /// Why a session ended, as the hub of the tokio and smol adapters words it.
    #[derive(Debug, Clone, Copy)]
    enum End {
        Closed(CloseReason),
    }

    impl End {
        fn error(self) -> io::Error {
            match self {
                End::Closed(CloseReason::DeadLink) => io::Error::new(
                    io::ErrorKind::TimedOut,
                    "peer stopped acknowledging (dead link)",
                ),
                End::Closed(CloseReason::IdleTimeout) => {
                    io::Error::new(io::ErrorKind::TimedOut, "session idle timeout")
                }
                End::Closed(r) => io::Error::new(
                    io::ErrorKind::ConnectionReset,
                    format!("session closed: {r:?}"),
                ),
            }
        }
    }

    fn loop_gone() -> io::Error {
        io::Error::new(io::ErrorKind::BrokenPipe, "the mio loop thread has stopped")
    }

    pub struct Mio;

    // ---- server -------------------------------------------------------------------------

    pub struct Server {
        addr: SocketAddr,
        ends: mpsc::Receiver<io::Result<usize>>,
        received: Arc<AtomicU64>,
        stop: Arc<AtomicBool>,
        waker: Arc<Waker>,
        thread: Option<JoinHandle<io::Result<()>>>,
    }

    impl Drop for Server {
        fn drop(&mut self) {
            self.stop.store(true, Ordering::SeqCst);
            let _ = self.waker.wake();
            if let Some(t) = self.thread.take() {
                match t.join() {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => eprintln!("mio server loop failed: {e}"),
                    Err(_) => eprintln!("mio server loop panicked"),
                }
            }
        }
    }

    impl EchoServer for Server {
        fn addr(&self) -> SocketAddr {
            self.addr
        }
        fn next_end(&self, limit: Duration) -> Option<io::Result<usize>> {
            self.ends.recv_timeout(limit).ok()
        }
        fn received(&self) -> u64 {
            self.received.load(Ordering::SeqCst)
        }
    }

    /// What the server loop does with the bytes it reads.
    struct Serving {
        /// Echo them back (else only count them).
        echo: bool,
        received: Arc<AtomicU64>,
    }

    /// One echo session; `readable`/`writable` follow the endpoint's events, so calls are
    /// only made when they can progress (the `Endpoint` contract).
    struct Echo {
        buf: VecDeque<u8>,
        echoed: usize,
        readable: bool,
        writable: bool,
    }

    impl Default for Echo {
        fn default() -> Self {
            Echo {
                buf: VecDeque::new(),
                echoed: 0,
                readable: true,
                writable: true,
            }
        }
    }

    fn serve(
        mut poll: Poll,
        mut ep: Endpoint,
        stop: Arc<AtomicBool>,
        ends: mpsc::Sender<io::Result<usize>>,
        how: Serving,
    ) -> io::Result<()> {
        let mut events = Events::with_capacity(256);
        let mut sessions: HashMap<SessionId, Echo> = HashMap::new();
        let mut buf = vec![0u8; 64 << 10];
        while !stop.load(Ordering::SeqCst) {
            let timeout = ep
                .next_deadline()
                .map(|d| d.saturating_duration_since(Instant::now()));
            poll.poll(&mut events, timeout)?;
            ep.process(Instant::now())?;
            while let Some(ev) = ep.poll_event() {
                match ev {
                    ListenerEvent::Incoming(_) => {
                        while let Some(id) = ep.accept() {
                            sessions.insert(id, Echo::default());
                        }
                    }
                    ListenerEvent::Conn(id, StreamEvent::Readable(StreamId::SOLE)) => {
                        if let Some(e) = sessions.get_mut(&id) {
                            e.readable = true;
                        }
                    }
                    ListenerEvent::Conn(id, StreamEvent::Writable(StreamId::SOLE)) => {
                        if let Some(e) = sessions.get_mut(&id) {
                            e.writable = true;
                        }
                    }
                    // The core closes dead links itself: `Closed(CloseReason::DeadLink)`.
                    ListenerEvent::Conn(id, StreamEvent::Closed(r)) => {
                        if sessions.remove(&id).is_some() {
                            let _ = ends.send(Err(End::Closed(r).error()));
                        }
                    }
                    ListenerEvent::Conn(_, _) => {}
                }
            }
            for (&id, e) in sessions.iter_mut() {
                echo(&mut ep, id, e, &mut buf, &how);
            }
        }
        Ok(())
    }

    /// Writes back while KCP takes bytes, reads while the echo buffer has room (a sink only
    /// reads and counts).
    fn echo(ep: &mut Endpoint, id: SessionId, e: &mut Echo, buf: &mut [u8], how: &Serving) {
        loop {
            let mut progressed = false;
            if e.writable && !e.buf.is_empty() {
                let (front, _) = e.buf.as_slices();
                let n = front.len().min(CHUNK);
                match ep.write(id, &front[..n]) {
                    Ok(n) => {
                        e.buf.drain(..n);
                        e.echoed += n;
                        progressed = true;
                    }
                    Err(SessionError::Kcp(WriteError::Blocked)) => e.writable = false,
                    Err(_) => return,
                }
            }
            if e.readable && e.buf.len() < ECHO_BUFFER {
                match ep.read(id, buf) {
                    Ok(n) => {
                        how.received.fetch_add(n as u64, Ordering::SeqCst);
                        if how.echo {
                            e.buf.extend(&buf[..n]);
                        }
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

    // ---- clients ------------------------------------------------------------------------

    enum Cmd {
        Write(usize, Vec<u8>, mpsc::Sender<io::Result<()>>),
        Read(usize, usize, mpsc::Sender<io::Result<Vec<u8>>>),
        Flush(usize, mpsc::Sender<io::Result<()>>),
        Close(usize),
    }

    /// The client loop thread; stops (closing its sessions) when the last handle drops.
    struct Clients {
        tx: Option<mpsc::Sender<Cmd>>,
        waker: Arc<Waker>,
        thread: Option<JoinHandle<io::Result<()>>>,
    }

    impl Clients {
        /// `n` client endpoints, each with one session to `addr`.
        fn spawn(addr: SocketAddr, cfg: &Config, n: usize) -> io::Result<Arc<Clients>> {
            let poll = Poll::new()?;
            let waker = Arc::new(Waker::new(poll.registry(), WAKE)?);
            let now = Instant::now();
            let mut clients = Vec::with_capacity(n);
            for i in 0..n {
                let mut ep = Endpoint::bind(localhost(), cfg, false)?;
                poll.registry()
                    .register(&mut ep, Token(i), Endpoint::INTEREST)?;
                let id = ep.connect(now, addr);
                clients.push(Client {
                    ep,
                    id,
                    send: VecDeque::new(),
                    recv: VecDeque::new(),
                    write: None,
                    read: None,
                    flush: None,
                    end: None,
                    dropped: false,
                    closed: false,
                    readable: false,
                    writable: true,
                });
            }
            let (tx, rx) = mpsc::channel();
            let thread = std::thread::spawn(move || run_clients(poll, clients, rx));
            Ok(Arc::new(Clients {
                tx: Some(tx),
                waker,
                thread: Some(thread),
            }))
        }

        fn send(&self, cmd: Cmd) {
            if let Some(tx) = &self.tx {
                let _ = tx.send(cmd);
            }
            let _ = self.waker.wake();
        }

        /// Sends a command and returns where its answer arrives.
        fn submit<T>(
            &self,
            make: impl FnOnce(mpsc::Sender<io::Result<T>>) -> Cmd,
        ) -> mpsc::Receiver<io::Result<T>> {
            let (tx, rx) = mpsc::channel();
            self.send(make(tx));
            rx
        }
    }

    /// Waits for a command's answer until `give_up`.
    fn answer<T>(
        rx: &mpsc::Receiver<io::Result<T>>,
        what: &str,
        give_up: Instant,
        limit: Duration,
    ) -> io::Result<T> {
        match rx.recv_timeout(give_up.saturating_duration_since(Instant::now())) {
            Ok(r) => r,
            Err(mpsc::RecvTimeoutError::Timeout) => Err(deadline_error(what, limit)),
            Err(mpsc::RecvTimeoutError::Disconnected) => Err(loop_gone()),
        }
    }

    impl Drop for Clients {
        fn drop(&mut self) {
            self.tx.take();
            let _ = self.waker.wake();
            if let Some(t) = self.thread.take() {
                match t.join() {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => eprintln!("mio client loop failed: {e}"),
                    Err(_) => eprintln!("mio client loop panicked"),
                }
            }
        }
    }

    struct Client {
        ep: Endpoint,
        id: SessionId,
        /// Bytes written by the test, not yet taken by KCP.
        send: VecDeque<u8>,
        /// Bytes read from KCP, not yet asked for.
        recv: VecDeque<u8>,
        write: Option<mpsc::Sender<io::Result<()>>>,
        read: Option<(usize, mpsc::Sender<io::Result<Vec<u8>>>)>,
        flush: Option<mpsc::Sender<io::Result<()>>>,
        end: Option<End>,
        /// The test dropped its handle: hand the rest to KCP, then close once acknowledged
        /// (the core's linger, as the tokio and smol runtimes do).
        dropped: bool,
        /// The session was handed to the core's linger (or closed): nothing more to pump.
        closed: bool,
        /// Readable since the last `WouldBlock` (the endpoint's `Readable` event).
        readable: bool,
        /// Not `Blocked` since the last `Writable` event.
        writable: bool,
    }

    impl Client {
        fn apply(&mut self, cmd: Cmd) {
            match cmd {
                Cmd::Write(_, data, tx) => {
                    self.send.extend(data);
                    self.write = Some(tx);
                }
                Cmd::Read(_, n, tx) => self.read = Some((n, tx)),
                Cmd::Flush(_, tx) => self.flush = Some(tx),
                Cmd::Close(_) => self.dropped = true,
            }
        }

        /// Moves bytes between the buffers and KCP, then answers what can be answered.
        fn pump(&mut self, buf: &mut [u8]) {
            if self.dropped && self.end.is_some() {
                self.closed = true; // the session is gone already: nothing lingers
            }
            if self.closed {
                return;
            }
            if self.end.is_none() {
                while self.writable && !self.send.is_empty() {
                    let (a, _) = self.send.as_slices();
                    let n = a.len().min(CHUNK);
                    match self.ep.write(self.id, &a[..n]) {
                        Ok(n) => drop(self.send.drain(..n)),
                        Err(SessionError::Kcp(WriteError::Blocked)) => self.writable = false,
                        Err(e) => panic!("client write: {e}"),
                    }
                }
                if self.dropped && self.send.is_empty() {
                    self.closed = true;
                    self.ep.close_when_acked(Instant::now(), self.id);
                    return;
                }
                while self.readable {
                    match self.ep.read(self.id, buf) {
                        Ok(n) => self.recv.extend(&buf[..n]),
                        Err(SessionError::Kcp(RecvError::WouldBlock)) => self.readable = false,
                        Err(e) => panic!("client read: {e}"),
                    }
                }
            }
            if let Some((n, _)) = &self.read {
                if self.recv.len() >= *n {
                    let (n, tx) = self.read.take().expect("checked");
                    let _ = tx.send(Ok(self.recv.drain(..n).collect()));
                }
            }
            if let Some(end) = self.end {
                if let Some(tx) = self.write.take() {
                    let _ = tx.send(Err(end.error()));
                }
                if let Some((_, tx)) = self.read.take() {
                    let _ = tx.send(Err(end.error()));
                }
                if let Some(tx) = self.flush.take() {
                    let _ = tx.send(Err(end.error()));
                }
                return;
            }
            if self.send.is_empty() {
                if let Some(tx) = self.write.take() {
                    let _ = tx.send(Ok(()));
                }
                if self.ep.all_acked(self.id) {
                    if let Some(tx) = self.flush.take() {
                        let _ = tx.send(Ok(()));
                    }
                }
            }
        }
    }

    fn run_clients(
        mut poll: Poll,
        mut clients: Vec<Client>,
        rx: mpsc::Receiver<Cmd>,
    ) -> io::Result<()> {
        let mut events = Events::with_capacity(1024);
        let mut touched = vec![false; clients.len()];
        let mut buf = vec![0u8; 64 << 10];
        let mut disconnected = false;
        loop {
            let timeout = clients
                .iter()
                .filter_map(|c| c.ep.next_deadline())
                .min()
                .map(|d| d.saturating_duration_since(Instant::now()));
            poll.poll(&mut events, timeout)?;
            touched.fill(false);
            for ev in events.iter() {
                if ev.token() != WAKE {
                    touched[ev.token().0] = true;
                }
            }
            while !disconnected {
                match rx.try_recv() {
                    Ok(cmd) => {
                        let i = match &cmd {
                            Cmd::Write(i, ..) | Cmd::Read(i, ..) | Cmd::Flush(i, _) => *i,
                            Cmd::Close(i) => *i,
                        };
                        touched[i] = true;
                        clients[i].apply(cmd);
                    }
                    Err(mpsc::TryRecvError::Empty) => break,
                    Err(mpsc::TryRecvError::Disconnected) => {
                        // Last handle gone: every session lingers until acknowledged (the
                        // core bounds it), then the loop ends.
                        disconnected = true;
                        for c in clients.iter_mut() {
                            c.dropped = true;
                        }
                        touched.fill(true);
                    }
                }
            }
            let now = Instant::now();
            for (c, &t) in clients.iter_mut().zip(&touched) {
                if !t && c.ep.next_deadline().is_none_or(|d| d > now) {
                    continue;
                }
                c.ep.process(now)?;
                while let Some(ev) = c.ep.poll_event() {
                    match ev {
                        ListenerEvent::Conn(_, StreamEvent::Readable(StreamId::SOLE)) => {
                            c.readable = true
                        }
                        ListenerEvent::Conn(_, StreamEvent::Writable(StreamId::SOLE)) => {
                            c.writable = true
                        }
                        ListenerEvent::Conn(_, StreamEvent::Closed(r)) => {
                            c.end.get_or_insert(End::Closed(r));
                        }
                        ListenerEvent::Conn(_, _) | ListenerEvent::Incoming(_) => {}
                    }
                }
                c.pump(&mut buf);
            }
            if disconnected
                && clients
                    .iter()
                    .all(|c| c.closed && c.ep.listener().is_empty())
            {
                // The final datagrams go out, then the endpoints go.
                let now = Instant::now();
                for c in clients.iter_mut() {
                    let _ = c.ep.process(now);
                }
                return Ok(());
            }
        }
    }

    pub struct Conn {
        clients: Arc<Clients>,
        idx: usize,
    }

    impl Drop for Conn {
        fn drop(&mut self) {
            self.clients.send(Cmd::Close(self.idx));
        }
    }

    impl Conn {
        fn call<T>(
            &self,
            what: &str,
            limit: Duration,
            make: impl FnOnce(mpsc::Sender<io::Result<T>>) -> Cmd,
        ) -> io::Result<T> {
            let rx = self.clients.submit(make);
            answer(&rx, what, Instant::now() + limit, limit)
        }
    }

    fn server(cfg: &Config, echo: bool) -> io::Result<Server> {
        let poll = Poll::new()?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKE)?);
        let mut ep = Endpoint::bind(localhost(), cfg, true)?;
        poll.registry()
            .register(&mut ep, Token(0), Endpoint::INTEREST)?;
        let addr = ep.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, ends) = mpsc::channel();
        let s2 = stop.clone();
        let received = Arc::new(AtomicU64::new(0));
        let how = Serving {
            echo,
            received: Arc::clone(&received),
        };
        let thread = std::thread::spawn(move || serve(poll, ep, s2, tx, how));
        Ok(Server {
            addr,
            ends,
            received,
            stop,
            waker,
            thread: Some(thread),
        })
    }

    /// One turn of a mio toy-mux endpoint pair: drains both endpoints' events, processes
    /// them, and sleeps until the earlier deadline (at most 10 ms).
    fn mux_turn<U: StreamLayer>(
        poll: &mut Poll,
        events: &mut Events,
        eps: [&mut Endpoint<U>; 2],
        now: Instant,
    ) -> io::Result<()> {
        let mut wake = Duration::from_millis(10);
        for ep in eps {
            while ep.poll_event().is_some() {}
            ep.process(now)?;
            if let Some(d) = ep.next_deadline() {
                wake = wake.min(d.saturating_duration_since(now));
            }
        }
        poll.poll(events, Some(wake))
    }

    /// [`Rt::mux_echo`] on mio: a server and a client `Endpoint<ToyMux>` on one `mio::Poll`
    /// in the calling thread; the application side is core's `Streams` through `conn_mut`.
    fn mux_echo_loop(cfg: &Config, msgs: &[Vec<u8>], limit: Duration) -> io::Result<Vec<Vec<u8>>> {
        use tether_runtime_mio::core::driver::Streams;
        use tether_tests::scenarios::toy_mux;

        let any: SocketAddr = "127.0.0.1:0".parse().expect("address");
        let mut server = Endpoint::bind_with(any, cfg, true, toy_mux)?;
        let mut client = Endpoint::bind_with(any, cfg, false, toy_mux)?;
        let mut poll = Poll::new()?;
        poll.registry()
            .register(&mut server, Token(0), Endpoint::INTEREST)?;
        poll.registry()
            .register(&mut client, Token(1), Endpoint::INTEREST)?;
        let refused = |e| io::Error::other(format!("toy mux: {e:?}"));
        let gone = || io::Error::new(io::ErrorKind::ConnectionReset, "the toy mux session closed");
        let conn = client.connect(Instant::now(), server.local_addr()?);
        let c = client.conn_mut(conn).ok_or_else(gone)?;
        let ids = msgs
            .iter()
            .map(|_| c.open_stream())
            .collect::<Result<Vec<StreamId>, _>>()
            .map_err(refused)?;
        let (mut sent, mut got) = (vec![0usize; msgs.len()], vec![Vec::new(); msgs.len()]);
        let mut echo: Vec<(SessionId, StreamId, VecDeque<u8>)> = Vec::new();
        let mut conns = Vec::new();
        let mut buf = vec![0u8; 64 << 10];
        let mut events = Events::with_capacity(16);
        let end = Instant::now() + limit;
        while got.iter().zip(msgs).any(|(g, m)| g.len() < m.len()) {
            let now = Instant::now();
            if now >= end {
                return Err(deadline_error("mux_echo", limit));
            }
            let c = client.conn_mut(conn).ok_or_else(gone)?;
            for (i, id) in ids.iter().enumerate() {
                while sent[i] < msgs[i].len() {
                    match c.write(*id, &msgs[i][sent[i]..]) {
                        Ok(n) if n > 0 => sent[i] += n,
                        _ => break,
                    }
                }
                while let Ok(n @ 1..) = c.read(*id, &mut buf) {
                    got[i].extend_from_slice(&buf[..n]);
                }
            }
            while let Some(id) = server.accept() {
                conns.push(id);
            }
            for &id in &conns {
                if let Some(s) = server.conn_mut(id) {
                    while let Some(sid) = s.accept_stream() {
                        echo.push((id, sid, VecDeque::new()));
                    }
                }
            }
            for (id, sid, q) in &mut echo {
                let Some(s) = server.conn_mut(*id) else {
                    continue;
                };
                while let Ok(n @ 1..) = s.read(*sid, &mut buf) {
                    q.extend(&buf[..n]);
                }
                while !q.is_empty() {
                    match s.write(*sid, q.make_contiguous()) {
                        Ok(n) if n > 0 => drop(q.drain(..n)),
                        _ => break,
                    }
                }
            }
            mux_turn(&mut poll, &mut events, [&mut server, &mut client], now)?;
        }
        Ok(got)
    }

    /// [`Rt::mux_ends`] on mio (`what` names it in errors): a server and a client
    /// `Endpoint<U>` (sessions carrying the multiplexer `upper` makes) on one `mio::Poll` in
    /// the calling thread, the application on each side a `StreamsSide` over the session's
    /// `Streams` (`conn_mut`).
    fn mux_ends_loop<U: StreamLayer>(
        cfg: &Config,
        limit: Duration,
        what: &str,
        upper: impl Fn(Side) -> U + Clone + Send + Sync + 'static,
    ) -> io::Result<()> {
        use tether_tests::scenarios_tcp_mux::{StreamsSide, KCP_PLAN};
        let open = |server| move |c: &mut _| StreamsSide::open(c, server, KCP_PLAN.bytes);
        streams_app_loop(cfg, limit, what, upper, open(false), open(true))
    }

    /// An application on each side of one KCP session carrying the multiplexer `upper`
    /// makes: a server and a client `Endpoint<U>` on one `mio::Poll` in the calling thread,
    /// each side's application (`client`, and `server` once the session is accepted) stepped
    /// over the session's `Streams` (`conn_mut`) until both are done.
    fn streams_app_loop<U: StreamLayer, A: StreamsApp, B: StreamsApp>(
        cfg: &Config,
        limit: Duration,
        what: &str,
        upper: impl Fn(Side) -> U + Clone + Send + Sync + 'static,
        client_app: impl FnOnce(&mut MuxStack<U>) -> io::Result<A>,
        server_app: impl FnOnce(&mut MuxStack<U>) -> io::Result<B>,
    ) -> io::Result<()> {
        let mut server = Endpoint::bind_with(localhost(), cfg, true, upper.clone())?;
        let mut client = Endpoint::bind_with(localhost(), cfg, false, upper)?;
        let mut poll = Poll::new()?;
        poll.registry()
            .register(&mut server, Token(0), Endpoint::INTEREST)?;
        poll.registry()
            .register(&mut client, Token(1), Endpoint::INTEREST)?;
        let gone = || io::Error::new(io::ErrorKind::ConnectionReset, "the mux session closed");
        let conn = client.connect(Instant::now(), server.local_addr()?);
        let mut mine = client_app(client.conn_mut(conn).ok_or_else(gone)?)?;
        let mut server_app = Some(server_app);
        let mut theirs: Option<(SessionId, B)> = None;
        let mut events = Events::with_capacity(16);
        let end = Instant::now() + limit;
        while !(mine.done() && theirs.as_ref().is_some_and(|(_, s)| s.done())) {
            let now = Instant::now();
            if now >= end {
                return Err(deadline_error(what, limit));
            }
            mine.step(client.conn_mut(conn).ok_or_else(gone)?);
            if let (None, Some(id)) = (&theirs, server.accept()) {
                let c = server.conn_mut(id).ok_or_else(gone)?;
                let open = server_app.take().ok_or_else(gone)?;
                theirs = Some((id, open(c)?));
            }
            if let Some((id, side)) = theirs.as_mut() {
                side.step(server.conn_mut(*id).ok_or_else(gone)?);
            }
            mux_turn(&mut poll, &mut events, [&mut server, &mut client], now)?;
        }
        mine.check()?;
        theirs.map_or(Ok(()), |(_, s)| s.check())
    }

    /// A KCP session carrying the multiplexer `U`, as a mio `Endpoint` holds it.
    type MuxStack<U> = tether_runtime_mio::core::stack::Stack<Session, U>;

    /// [`Rt::chunk_roundtrip`] on mio: `scenarios_chunks` over an `Endpoint<Smux>` pair, the
    /// application on each side the session's own `Streams::read_chunk`/`write_chunk` (mio's
    /// owned-chunk API).
    fn chunk_roundtrip_loop(cfg: &Config, limit: Duration) -> io::Result<()> {
        use tether_tests::scenarios_chunks::{ChunkClient, ChunkEcho};
        use tether_tests::scenarios_tcp_mux::smux_upper;
        let client = |c: &mut _| ChunkClient::open(c);
        let server = |_: &mut _| Ok(ChunkEcho::default());
        streams_app_loop(cfg, limit, "chunk_roundtrip", smux_upper(), client, server)
    }

    type MuxMachine = tether_runtime_mio::core::stack::Stack<
        tether_runtime_mio::core::stream_link::StreamLink,
        tether_runtime_mio::core::sim::toy_mux::ToyMux,
    >;

    /// A loopback TCP connection pair on one `mio::Poll` (`what` names it in errors): a
    /// `mio::net::TcpListener`, the client's `TcpEndpoint` and, once accepted, the server's,
    /// carrying machines `M`; each machine's `Closed` reason is kept.
    struct TcpMux<M> {
        what: &'static str,
        poll: Poll,
        events: Events,
        listener: mio::net::TcpListener,
        client: TcpEndpoint<M>,
        /// The server's machine until its connection is accepted.
        server_machine: Option<M>,
        server: Option<TcpEndpoint<M>>,
        closed: [Option<String>; 2],
        end: Instant,
        limit: Duration,
    }

    impl<M: TcpMachine> TcpMux<M> {
        /// Binds the listener and dials it from a `TcpEndpoint` carrying `client`; the
        /// accepted connection will carry `server`.
        fn new(what: &'static str, limit: Duration, client: M, server: M) -> io::Result<Self> {
            let poll = Poll::new()?;
            let mut listener = mio::net::TcpListener::bind(localhost())?;
            poll.registry()
                .register(&mut listener, Token(0), mio::Interest::READABLE)?;
            let sock = std::net::TcpStream::connect(listener.local_addr()?)?;
            let mut client = TcpEndpoint::new(sock, client)?;
            poll.registry()
                .register(&mut client, Token(1), TcpEndpoint::<M>::INTEREST)?;
            Ok(TcpMux {
                what,
                poll,
                events: Events::with_capacity(16),
                listener,
                client,
                server_machine: Some(server),
                server: None,
                closed: [None, None],
                end: Instant::now() + limit,
                limit,
            })
        }

        /// Waits (at most 10 ms, or until a deadline), accepts the server's connection,
        /// processes both endpoints and drains their events.
        fn turn(&mut self) -> io::Result<()> {
            let now = Instant::now();
            if now >= self.end {
                return Err(deadline_error(self.what, self.limit));
            }
            let next = [
                self.client.next_deadline(),
                self.server.as_ref().and_then(|s| s.next_deadline()),
            ]
            .into_iter()
            .flatten()
            .min();
            let wait = next.map_or(Duration::from_millis(10), |d| {
                d.saturating_duration_since(now)
            });
            self.poll
                .poll(&mut self.events, Some(wait.min(Duration::from_millis(10))))?;
            if self.server.is_none() {
                match self.listener.accept() {
                    Ok((sock, _)) => {
                        let machine = self.server_machine.take().ok_or_else(|| {
                            io::Error::other(format!("{}: a second connection", self.what))
                        })?;
                        let mut ep = TcpEndpoint::from_mio(sock, machine)?;
                        self.poll.registry().register(
                            &mut ep,
                            Token(2),
                            TcpEndpoint::<M>::INTEREST,
                        )?;
                        self.server = Some(ep);
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) => return Err(e),
                }
            }
            let now = Instant::now();
            let eps = [Some(&mut self.client), self.server.as_mut()];
            for (ep, closed) in eps.into_iter().zip(&mut self.closed) {
                let Some(ep) = ep else { continue };
                ep.process(now)?;
                while let Some(ev) = ep.machine().poll_event() {
                    if let StreamEvent::Closed(why) = ev {
                        *closed = Some(format!("{why:?}"));
                    }
                }
            }
            Ok(())
        }

        /// Step 1 of `scenarios_tcp_mux`: two streams each way, 1 MiB each, to their ends;
        /// the application side is the machines' `Streams` (`StreamsSide`).
        fn streams_both_ways(&mut self) -> io::Result<()> {
            use tether_tests::scenarios_tcp_mux::{StreamsSide, STREAM_BYTES};

            let mut mine = StreamsSide::open(self.client.machine(), false, STREAM_BYTES)?;
            let mut theirs: Option<StreamsSide> = None;
            while !(mine.done() && theirs.as_ref().is_some_and(StreamsSide::done)) {
                self.turn()?;
                if self.closed.iter().any(Option::is_some) {
                    return Err(io::Error::other(format!(
                        "{} on mio: a connection closed: {:?}",
                        self.what, self.closed
                    )));
                }
                mine.step(self.client.machine());
                if let Some(server) = self.server.as_mut() {
                    let side = match theirs.as_mut() {
                        Some(side) => side,
                        None => {
                            theirs.insert(StreamsSide::open(server.machine(), true, STREAM_BYTES)?)
                        }
                    };
                    side.step(server.machine());
                }
            }
            mine.check()?;
            theirs.as_ref().map_or(Ok(()), StreamsSide::check)
        }
    }

    /// [`Rt::tcp_mux`] on mio: the client and server `TcpEndpoint`s carrying
    /// `Stack<StreamLink, ToyMux>` on one `mio::Poll` in the calling thread; the application
    /// side is the machines' `Streams` (`StreamsSide` for the streams both ways).
    fn tcp_mux_loop(limit: Duration) -> io::Result<()> {
        use tether_runtime_mio::core::driver::{StreamError, Streams};
        use tether_tests::scenarios_tcp_mux::{client_machine, server_machine};

        let mut t: TcpMux<MuxMachine> =
            TcpMux::new("tcp_mux", limit, client_machine(), server_machine())?;
        let fail = |what: &str| io::Error::other(format!("tcp_mux on mio: {what}"));
        // 1. two streams each way, 1 MiB each, to their ends
        t.streams_both_ways()?;
        // 2. the last stream the toy allows, then a refusal
        let c = t.client.machine();
        let last = c.open_stream().map_err(|e| fail(&e.to_string()))?;
        if c.open_stream() != Err(StreamError::Closed) {
            return Err(fail("an open beyond the toy's limit was not refused"));
        }
        c.write(last, b"ping").map_err(|e| fail(&e.to_string()))?;
        let mut got = Vec::new();
        let mut accepted = None;
        while got.len() < 4 {
            t.turn()?;
            let Some(server) = t.server.as_mut() else {
                return Err(fail("the server connection went away"));
            };
            let s = server.machine();
            accepted = accepted.or_else(|| s.accept_stream());
            let mut buf = [0u8; 16];
            while let Some(Ok(n @ 1..)) = accepted.map(|id| s.read(id, &mut buf)) {
                got.extend_from_slice(&buf[..n]);
            }
        }
        if got != b"ping" {
            return Err(fail("the last stream carried the wrong bytes"));
        }
        // 3. the server closes the connection: the client's machine closes, its streams end
        if let Some(server) = t.server.as_mut() {
            server.machine().close();
            server.shutdown_when_flushed();
        }
        while t.closed[0].is_none() {
            t.turn()?;
        }
        let why = t.closed[0].clone().unwrap_or_default();
        if !why.contains("LowerEnded") {
            return Err(fail(&format!(
                "the client closed for {why}, not the peer's end"
            )));
        }
        let c = t.client.machine();
        if c.open_stream() != Err(StreamError::Closed) || c.write(last, b"x").is_ok() {
            return Err(fail("the client's connection still takes streams or bytes"));
        }
        Ok(())
    }

    /// [`Rt::smux_ends`] on mio: step 1 with the real smux over a `TcpEndpoint` pair
    /// (`Stack<StreamLink, Smux>`), then over an `Endpoint<Smux>` pair (one KCP session).
    fn smux_ends_loop(cfg: &Config, limit: Duration) -> io::Result<()> {
        use tether_tests::scenarios_tcp_mux::{smux_upper, tcp_machine};

        let upper = smux_upper();
        let client = tcp_machine(&upper, Side::Client);
        let server = tcp_machine(&upper, Side::Server);
        TcpMux::new("smux_ends over TCP", limit, client, server)?.streams_both_ways()?;
        mux_ends_loop(cfg, limit, "smux_ends over KCP", upper)
    }

    impl Rt for Mio {
        const NAME: &'static str = "mio";

        fn mux_echo(cfg: &Config, msgs: &[Vec<u8>], limit: Duration) -> io::Result<Vec<Vec<u8>>> {
            mux_echo_loop(cfg, msgs, limit)
        }
        fn tcp_mux(limit: Duration) -> io::Result<()> {
            tcp_mux_loop(limit)
        }
        fn mux_ends(cfg: &Config, limit: Duration) -> io::Result<()> {
            mux_ends_loop(cfg, limit, "mux_ends", tether_tests::scenarios::toy_mux)
        }
        fn smux_ends(cfg: &Config, limit: Duration) -> io::Result<()> {
            smux_ends_loop(cfg, limit)
        }
        fn chunk_roundtrip(cfg: &Config, limit: Duration) -> io::Result<()> {
            chunk_roundtrip_loop(cfg, limit)
        }
        type Server = Server;
        type Conn = Conn;

        fn echo_server(cfg: &Config) -> io::Result<Server> {
            server(cfg, true)
        }

        fn sink_server(cfg: &Config) -> io::Result<Server> {
            server(cfg, false)
        }

        fn connect(addr: SocketAddr, cfg: &Config) -> io::Result<Conn> {
            Ok(Conn {
                clients: Clients::spawn(addr, cfg, 1)?,
                idx: 0,
            })
        }

        fn write_all(c: &mut Conn, data: &[u8], limit: Duration) -> io::Result<()> {
            let (idx, data) = (c.idx, data.to_vec());
            c.call("write_all", limit, |tx| Cmd::Write(idx, data, tx))
        }

        fn read_exact(c: &mut Conn, buf: &mut [u8], limit: Duration) -> io::Result<()> {
            let (idx, n) = (c.idx, buf.len());
            let got = c.call("read_exact", limit, |tx| Cmd::Read(idx, n, tx))?;
            buf.copy_from_slice(&got);
            Ok(())
        }

        fn flush(c: &mut Conn, limit: Duration) -> io::Result<()> {
            let idx = c.idx;
            c.call("flush", limit, |tx| Cmd::Flush(idx, tx))
        }

        fn duplex(c: &mut Conn, data: &[u8], limit: Duration) -> io::Result<Vec<u8>> {
            let give_up = Instant::now() + limit;
            let (idx, n) = (c.idx, data.len());
            let data = data.to_vec();
            let w = c.clients.submit(|tx| Cmd::Write(idx, data, tx));
            let r = c.clients.submit(|tx| Cmd::Read(idx, n, tx));
            answer(&w, "duplex write", give_up, limit)?;
            answer(&r, "duplex read", give_up, limit)
        }

        fn echo_many(
            addr: SocketAddr,
            cfg: &Config,
            msgs: &[Vec<u8>],
            limit: Duration,
        ) -> io::Result<Vec<Vec<u8>>> {
            let give_up = Instant::now() + limit;
            let clients = Clients::spawn(addr, cfg, msgs.len())?;
            let pending: Vec<_> = msgs
                .iter()
                .enumerate()
                .map(|(i, m)| {
                    let w = clients.submit(|tx| Cmd::Write(i, m.clone(), tx));
                    let r = clients.submit(|tx| Cmd::Read(i, m.len(), tx));
                    (w, r)
                })
                .collect();
            pending
                .iter()
                .map(|(w, r)| {
                    answer(w, "echo_many write", give_up, limit)?;
                    answer(r, "echo_many read", give_up, limit)
                })
                .collect()
        }
    }
}
