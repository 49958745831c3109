//! The bench process's own ends of the tunnel: the TCP target (a sink that counts what
//! arrives) and the load generator (TCP connections to the tunnel client, each writing
//! incompressible bytes). The transfer is one-way, client → target.
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Handle;
use tokio::task::JoinSet;
use tokio_util::compat::TokioAsyncWriteCompatExt;

use crate::bench::smux_payload::Pool;

/// Bytes per read of the sink.
const CHUNK: usize = 256 * 1024;

/// The TCP target: accepts every connection and counts the bytes read; all its tasks end
/// when it is dropped.
pub struct Sink {
    /// Where the tunnel server connects.
    pub addr: SocketAddr,
    /// Bytes received on all connections.
    pub received: Arc<AtomicU64>,
    _tasks: JoinSet<()>,
}

impl Sink {
    /// Binds a loopback port and starts accepting on `rt`.
    pub fn start(rt: &Handle) -> std::io::Result<Sink> {
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        std_listener.set_nonblocking(true)?;
        let addr = std_listener.local_addr()?;
        let received = Arc::new(AtomicU64::new(0));
        let count = Arc::clone(&received);
        let mut tasks = JoinSet::new();
        let accept = async move {
            let Ok(listener) = TcpListener::from_std(std_listener) else {
                return;
            };
            // Owned here, so dropping the sink (aborting this task) ends the readers too.
            let mut readers = JoinSet::new();
            while let Ok((conn, _)) = listener.accept().await {
                readers.spawn(drain(conn, Arc::clone(&count)));
            }
        };
        tasks.spawn_on(accept, rt);
        Ok(Sink {
            addr,
            received,
            _tasks: tasks,
        })
    }

    /// Bytes received so far.
    pub fn received(&self) -> u64 {
        self.received.load(Ordering::Relaxed)
    }
}

/// Reads `conn` to its end, counting.
async fn drain(mut conn: TcpStream, count: Arc<AtomicU64>) {
    let mut buf = vec![0u8; CHUNK];
    while let Ok(n @ 1..) = conn.read(&mut buf).await {
        count.fetch_add(n as u64, Ordering::Relaxed);
    }
}

/// The writers of one measurement; aborted when dropped. A writer that fails records why.
pub struct Load {
    _tasks: JoinSet<()>,
    /// The writers' errors (a connection refused or reset).
    pub errors: Arc<Mutex<Vec<String>>>,
}

impl Load {
    /// `streams` connections to `local`, each writing `per_stream` bytes (then closing) or,
    /// with `None`, until the load is dropped.
    pub fn start(
        rt: &Handle,
        local: SocketAddr,
        streams: usize,
        per_stream: Option<u64>,
        pool: &Pool,
    ) -> Load {
        let errors = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = JoinSet::new();
        for i in 0..streams {
            let (pool, errors) = (pool.clone(), Arc::clone(&errors));
            tasks.spawn_on(
                async move {
                    if let Err(e) = write(local, &pool, i, per_stream).await {
                        let mut errors = errors.lock().unwrap_or_else(|p| p.into_inner());
                        errors.push(format!("connection {i}: {e}"));
                    }
                },
                rt,
            );
        }
        Load {
            _tasks: tasks,
            errors,
        }
    }

    /// The first error of any writer.
    pub fn first_error(&self) -> Option<String> {
        let errors = self.errors.lock().unwrap_or_else(|p| p.into_inner());
        errors.first().cloned()
    }
}

/// Connection `i`: writes the pool from its offset, `limit` bytes or until aborted.
async fn write(
    local: SocketAddr,
    pool: &Pool,
    i: usize,
    limit: Option<u64>,
) -> std::io::Result<()> {
    let conn = TcpStream::connect(local).await?;
    let mut w = conn.compat_write();
    pool.send(&mut w, pool.offset(i), limit.unwrap_or(u64::MAX))
        .await?;
    let mut conn = w.into_inner();
    conn.shutdown().await?;
    // Keep the connection until the tunnel closes it: kcptun closes both directions at the
    // first FIN it carries (kcptun.md §6.3), after the bytes before it.
    let mut rest = [0u8; 1];
    let _ = conn.read(&mut rest).await;
    Ok(())
}
