//! `tether client` (kcptun-client): accepts TCP on `-l`, opens one smux stream per
//! connection on a pooled KCP session to `-r`, and pipes the two.
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio_util::task::TaskTracker;

use super::config::{bind_addr, startup_lines, Settings};
use super::flags::ClientFlags;
use super::pool::{Pool, Session};
use super::{drain, health, pipe, shutdown_signal, snmp_log};

/// Runs the client until SIGINT/SIGTERM; `Err` when it cannot start.
pub async fn run(f: &ClientFlags, settings: Settings) -> io::Result<()> {
    let client = bind(f, settings).await?;
    client.serve(shutdown_signal(), shutdown_signal()).await
}

/// A client listening on `-l`, its session pool and background tasks started.
pub struct Client {
    listener: TcpListener,
    pool: Pool,
    /// The scavenger, the health watcher, the SNMP log: aborted when the client is dropped.
    _background: tokio::task::JoinSet<()>,
    quiet: bool,
}

/// Binds `-l`, logs kcptun's startup lines and starts the background tasks.
pub async fn bind(f: &ClientFlags, settings: Settings) -> io::Result<Client> {
    let c = &f.common;
    let listener = TcpListener::bind(bind_addr(&f.localaddr))
        .await
        .map_err(|e| io::Error::new(e.kind(), format!("-l {}: {e}", f.localaddr)))?;
    tracing::info!("listening on: {}", listener.local_addr()?);
    tracing::info!("remote address: {}", f.remoteaddr);
    for line in startup_lines(c) {
        tracing::info!("{line}");
    }
    tracing::info!("conn: {}", f.conn);
    tracing::info!("autoexpire: {}", f.autoexpire);
    tracing::info!("scavengettl: {}", f.scavengettl);
    let pool = Pool::new(&f.remoteaddr, settings, f.conn, f.autoexpire, f.scavengettl);
    let mut background = tokio::task::JoinSet::new();
    if pool.expires() {
        background.spawn(pool.clone().scavenger());
    }
    let p = pool.clone();
    background.spawn(health::run(move || p.snmp(), true));
    if !c.snmplog.is_empty() && c.snmpperiod > 0 {
        let p = pool.clone();
        let period = Duration::from_secs(c.snmpperiod);
        background.spawn(snmp_log::run(c.snmplog.clone(), period, move || p.snmp()));
    }
    Ok(Client {
        listener,
        pool,
        _background: background,
        quiet: c.quiet,
    })
}

impl Client {
    /// The TCP address connections are accepted on.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The pool (for its counters).
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// Accepts and pipes connections until `stop` resolves, then drains the open streams
    /// (bounded by 5 s, or until `again` resolves) and closes the sessions.
    pub async fn serve(
        self,
        stop: impl std::future::Future<Output = ()>,
        again: impl std::future::Future<Output = ()>,
    ) -> io::Result<()> {
        let Client {
            listener,
            pool,
            _background,
            quiet,
        } = self;
        let tracker = TaskTracker::new();
        tokio::pin!(stop);
        loop {
            let (tcp, from) = tokio::select! {
                r = listener.accept() => match r {
                    Ok(x) => x,
                    Err(e) => {
                        // EMFILE and friends: back off instead of spinning.
                        tracing::warn!("accept: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
                _ = &mut stop => break,
            };
            let Some(conn) = session(&pool, &mut stop).await else {
                break;
            };
            tracker.spawn(handle(conn, tcp, from, quiet));
        }
        drop(listener);
        drain(&tracker, again).await;
        pool.close_all();
        Ok(())
    }
}

/// The pool's next session, retried every second while it cannot be created (kcptun.md
/// §8); `None` when the shutdown signal comes first.
async fn session(
    pool: &Pool,
    stop: &mut std::pin::Pin<&mut impl std::future::Future<Output = ()>>,
) -> Option<Arc<Session>> {
    loop {
        match pool.pick().await {
            Ok(conn) => return Some(conn),
            Err(e) => tracing::warn!("re-connecting: cannot open a session to the server: {e}"),
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = stop.as_mut() => return None,
        }
    }
}

/// One TCP connection: a new stream on `conn`, piped both ways.
async fn handle(conn: Arc<Session>, tcp: TcpStream, from: SocketAddr, quiet: bool) {
    let stream = match conn.open_stream().await {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!("in: {from}: cannot open a stream: {e}");
            return;
        }
    };
    drop(conn);
    let out = format!("{}({})", stream.peer_addr(), stream.stream_id());
    if !quiet {
        tracing::info!("stream opened in: {from} out: {out}");
    }
    let _ = tcp.set_nodelay(true);
    let result = pipe::pipe(tcp, stream).await;
    pipe::log_end(&from.to_string(), &out, &result, quiet);
}
