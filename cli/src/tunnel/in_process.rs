//! The tunnel's client and server started as tasks of the caller's tokio runtime (`tether
//! demo`, benches): the same code as `tether client`/`tether server`, with the flags given
//! by the caller, stopped by [`Running::stop`] instead of a signal. No logging subscriber
//! is installed: the caller decides where `tracing` goes.
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use clap::Parser;
use tether_core::session::snmp::Snmp;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::config::Settings;
use super::flags::{ClientFlags, ConfigError, ServerFlags};
use super::{client, server};

/// Why an in-process tunnel end did not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The command line does not parse (clap's message names the flag).
    #[error("{0}")]
    Args(#[from] clap::Error),
    /// The flags or the `-c` file are invalid (the message names the flag).
    #[error("{0}")]
    Config(#[from] ConfigError),
    /// The listening socket cannot be bound.
    #[error("{0}")]
    Io(#[from] io::Error),
}

/// A tunnel end running in this process.
pub struct Running {
    local_addr: SocketAddr,
    snmp: Arc<dyn Fn() -> Snmp + Send + Sync>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<io::Result<()>>,
}

impl std::fmt::Debug for Running {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Running")
            .field("local_addr", &self.local_addr)
            .finish_non_exhaustive()
    }
}

impl Running {
    /// Where it listens: the client's TCP address, the server's UDP address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// kcp-go's counters of every session so far (the client's pool, the server's listener).
    pub fn snmp(&self) -> Snmp {
        (self.snmp)()
    }

    /// Stops accepting, waits (at most 5 s) for the open streams, and returns how the run
    /// ended.
    pub async fn stop(mut self) -> io::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        (&mut self.task).await.map_err(io::Error::other)?
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// `tether client` flags from an argument list (without the program and subcommand
/// names), e.g. `["-l", "127.0.0.1:0", "-r", "127.0.0.1:29900", "--quiet"]`.
pub fn client_flags(args: &[&str]) -> Result<ClientFlags, clap::Error> {
    #[derive(Parser)]
    struct Wrap {
        #[command(flatten)]
        f: ClientFlags,
    }
    Ok(Wrap::try_parse_from(std::iter::once("client").chain(args.iter().copied()))?.f)
}

/// `tether server` flags from an argument list, like [`client_flags`].
pub fn server_flags(args: &[&str]) -> Result<ServerFlags, clap::Error> {
    #[derive(Parser)]
    struct Wrap {
        #[command(flatten)]
        f: ServerFlags,
    }
    Ok(Wrap::try_parse_from(std::iter::once("server").chain(args.iter().copied()))?.f)
}

/// Starts `tether client` with `f` (resolved here: `-c`, mode presets, validation) on the
/// current tokio runtime; returns once it listens.
pub async fn spawn_client(f: &ClientFlags) -> Result<Running, StartError> {
    let mut f = f.clone();
    f.resolve()?;
    let settings = Settings::new(&f.common)?;
    let client = client::bind(&f, settings).await?;
    let local_addr = client.local_addr()?;
    let pool = client.pool().clone();
    let snmp = Arc::new(move || pool.snmp());
    Ok(launch(local_addr, snmp, |stop| {
        client.serve(stop, std::future::pending())
    }))
}

/// Starts `tether server` with `f` on the current tokio runtime, like [`spawn_client`].
pub async fn spawn_server(f: &ServerFlags) -> Result<Running, StartError> {
    let mut f = f.clone();
    f.resolve()?;
    let settings = Settings::new(&f.common)?;
    let server = server::bind(&f, settings).await?;
    let listener = Arc::clone(server.listener());
    let local_addr = listener.local_addr();
    let snmp = Arc::new(move || listener.snmp());
    Ok(launch(local_addr, snmp, |stop| {
        server.serve(stop, std::future::pending())
    }))
}

/// The stop signal [`Running::stop`] sends.
type Stop = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

/// Spawns `serve` with a stop future that [`Running::stop`] resolves.
fn launch<Fut>(
    local_addr: SocketAddr,
    snmp: Arc<dyn Fn() -> Snmp + Send + Sync>,
    serve: impl FnOnce(Stop) -> Fut,
) -> Running
where
    Fut: std::future::Future<Output = io::Result<()>> + Send + 'static,
{
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(serve(Box::pin(async move {
        let _ = stopped.await;
    })));
    Running {
        local_addr,
        snmp,
        stop: Some(stop),
        task,
    }
}
