//! `tether server` (kcptun-server): accepts KCP sessions on `-l`, and for every smux stream
//! dials `-t` (TCP `host:port`, else a unix socket path) and pipes the two; a failed dial
//! closes the stream (its FIN reaches the client, kcptun.md §6.2).
use std::io;
use std::sync::Arc;
use std::time::Duration;

use tether_runtime_tokio::{KcpConnection, KcpListener, KcpStream};
use tokio::net::{TcpStream, UnixStream};
use tokio_util::task::TaskTracker;

use super::config::{bind_addr, startup_lines, Settings};
use super::flags::ServerFlags;
use super::{drain, health, pipe, shutdown_signal, snmp_log};

/// Bound on dialling the target.
const DIAL_LIMIT: Duration = Duration::from_secs(10);

/// Where streams go.
#[derive(Debug, Clone)]
pub enum Target {
    /// A TCP `host:port`.
    Tcp(String),
    /// A unix socket path (anything that is not `host:port`, as kcptun).
    Unix(String),
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Tcp(a) => f.write_str(a),
            Target::Unix(p) => write!(f, "unix:{p}"),
        }
    }
}

impl Target {
    /// kcptun's rule: a value with a numeric port after the last `:` is TCP.
    pub fn parse(s: &str) -> Target {
        match s.rsplit_once(':') {
            Some((_, port)) if port.parse::<u16>().is_ok() => Target::Tcp(s.to_owned()),
            _ => Target::Unix(s.to_owned()),
        }
    }
}

/// Runs the server until SIGINT/SIGTERM; `Err` when it cannot start.
pub async fn run(f: &ServerFlags, settings: Settings) -> io::Result<()> {
    let server = bind(f, settings).await?;
    server.serve(shutdown_signal(), shutdown_signal()).await
}

/// A server listening on `-l`, its background tasks started.
pub struct Server {
    listener: Arc<KcpListener>,
    target: Target,
    /// The health watcher and the SNMP log: aborted when the server is dropped.
    _background: tokio::task::JoinSet<()>,
    quiet: bool,
}

/// Binds `-l`, logs kcptun's startup lines and starts the background tasks.
pub async fn bind(f: &ServerFlags, settings: Settings) -> io::Result<Server> {
    let c = &f.common;
    if f.pprof {
        tracing::warn!("--pprof: Go's profiler does not exist in tether; ignored");
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let kcp = settings.kcp.clone().reuseport(cores);
    let listener = KcpListener::bind_with(bind_addr(&f.listen), kcp, settings.stack())
        .await
        .map_err(|e| io::Error::new(e.kind(), format!("-l {}: {e}", f.listen)))?;
    let listener = Arc::new(listener);
    tracing::info!("listening on: {}", listener.local_addr());
    tracing::info!("target: {}", f.target);
    for line in startup_lines(c) {
        tracing::info!("{line}");
    }
    let mut background = tokio::task::JoinSet::new();
    let l = Arc::clone(&listener);
    background.spawn(health::run(move || l.snmp(), false));
    if !c.snmplog.is_empty() && c.snmpperiod > 0 {
        let l = Arc::clone(&listener);
        let period = Duration::from_secs(c.snmpperiod);
        background.spawn(snmp_log::run(c.snmplog.clone(), period, move || l.snmp()));
    }
    Ok(Server {
        listener,
        target: Target::parse(&f.target),
        _background: background,
        quiet: c.quiet,
    })
}

impl Server {
    /// The listener (its UDP address, its counters).
    pub fn listener(&self) -> &Arc<KcpListener> {
        &self.listener
    }

    /// Accepts sessions and serves their streams until `stop` resolves, then drains the
    /// open streams (bounded by 5 s, or until `again` resolves).
    pub async fn serve(
        self,
        stop: impl std::future::Future<Output = ()>,
        again: impl std::future::Future<Output = ()>,
    ) -> io::Result<()> {
        let tracker = TaskTracker::new();
        tokio::pin!(stop);
        loop {
            let conn = tokio::select! {
                r = self.listener.accept_connection() => r?,
                _ = &mut stop => break,
            };
            tracing::info!("remote address: {}", conn.peer_addr());
            // Sessions are not drained (they live as long as the peer wants); their streams
            // are.
            tokio::spawn(serve(
                conn,
                self.target.clone(),
                self.quiet,
                tracker.clone(),
            ));
        }
        drain(&tracker, again).await;
        Ok(())
    }
}

/// Every stream of one session, until the session ends.
async fn serve(conn: KcpConnection, target: Target, quiet: bool, tracker: TaskTracker) {
    let peer = conn.peer_addr();
    loop {
        match conn.accept_stream().await {
            Ok(stream) => {
                tracker.spawn(handle(stream, target.clone(), quiet));
            }
            Err(e) => {
                tracing::info!("session from {peer} ended: {e}");
                return;
            }
        }
    }
}

/// One stream: dial the target, pipe both ways.
async fn handle(stream: KcpStream, target: Target, quiet: bool) {
    let from = format!("{}({})", stream.peer_addr(), stream.stream_id());
    let result = match &target {
        Target::Tcp(addr) => match dial(TcpStream::connect(addr.as_str())).await {
            Ok(tcp) => {
                let _ = tcp.set_nodelay(true);
                opened(&from, addr, quiet);
                pipe::pipe(tcp, stream).await
            }
            Err(e) => return refused(&from, addr, e),
        },
        Target::Unix(path) => match dial(UnixStream::connect(path.as_str())).await {
            Ok(unix) => {
                opened(&from, path, quiet);
                pipe::pipe(unix, stream).await
            }
            Err(e) => return refused(&from, path, e),
        },
    };
    pipe::log_end(&from, &target.to_string(), &result, quiet);
}

/// A bounded dial.
async fn dial<S>(connect: impl std::future::Future<Output = io::Result<S>>) -> io::Result<S> {
    tokio::time::timeout(DIAL_LIMIT, connect)
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "no answer within 10 s"))?
}

fn opened(from: &str, to: &str, quiet: bool) {
    if !quiet {
        tracing::info!("stream opened in: {from} out: {to}");
    }
}

/// The target refused: the stream is dropped here, so its FIN tells the client.
fn refused(from: &str, to: &str, e: io::Error) {
    tracing::warn!("in: {from}: cannot reach the target -t {to}: {e}; closing the stream");
}

#[cfg(test)]
mod tests {
    use super::Target;

    #[test]
    fn targets_are_tcp_only_with_a_port() {
        assert!(matches!(Target::parse("127.0.0.1:80"), Target::Tcp(_)));
        assert!(matches!(Target::parse("[::1]:8080"), Target::Tcp(_)));
        assert!(matches!(Target::parse("example.com:22"), Target::Tcp(_)));
        assert!(matches!(Target::parse("/run/app.sock"), Target::Unix(_)));
        assert!(matches!(Target::parse("./a:b.sock"), Target::Unix(_)));
    }
}
