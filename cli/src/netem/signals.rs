//! The signals `tether netem` answers: Ctrl-C / SIGTERM stop it, SIGUSR1 prints the counters.
use std::io;

/// What a signal asks for.
pub enum SignalEvent {
    /// Stop, naming the signal.
    Stop(&'static str),
    /// Print the counters and go on.
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

pub async fn next_signal(signals: &mut Option<&mut Signals>) -> SignalEvent {
    match signals {
        Some(s) => s.next().await,
        None => std::future::pending().await,
    }
}
