//! What carries a `tether smux` session: a TCP connection (`Stack<StreamLink, Smux>`) or a
//! kcp-go session (`Stack<Session, Smux>`), behind the same connection handle.
use std::io;
use std::net::SocketAddr;

use tether_core::smux::{Smux, SmuxConfig};
use tether_core::stack::{Side, Stack};
use tether_core::stream_link::StreamLink;
use tether_runtime_tokio::{KcpConnection, KcpListener, KcpStream, TcpConnection, TcpMuxListener};

use super::{SessionFlags, TransportArg};

/// One smux session, whatever carries it.
pub struct Conn(KcpConnection);

impl Conn {
    /// Dials `remote` and starts a client session.
    pub async fn connect(remote: &str, flags: &SessionFlags, smux: SmuxConfig) -> io::Result<Conn> {
        Ok(Conn(match flags.transport {
            TransportArg::Tcp => {
                let machine = Stack::new(StreamLink::default(), Smux::new(smux, Side::Client));
                TcpConnection::connect_tcp(remote, machine).await?
            }
            TransportArg::Kcp => {
                let cfg = flags.kcp.config();
                KcpConnection::connect_with(remote, cfg, move |side| Smux::new(smux.clone(), side))
                    .await?
            }
        }))
    }

    /// Opens a stream.
    pub async fn open_stream(&self) -> io::Result<KcpStream> {
        self.0.open_stream().await
    }

    /// Takes the next stream the peer opened.
    pub async fn accept_stream(&self) -> io::Result<KcpStream> {
        self.0.accept_stream().await
    }
}

/// A listener of smux sessions.
pub enum Listener {
    /// Over TCP.
    Tcp(TcpMuxListener),
    /// Over KCP.
    Kcp(KcpListener),
}

impl Listener {
    /// Binds `addr` (TCP or UDP by the transport).
    pub async fn bind(addr: &str, flags: &SessionFlags, smux: SmuxConfig) -> io::Result<Listener> {
        Ok(match flags.transport {
            TransportArg::Tcp => Listener::Tcp(
                TcpMuxListener::bind(addr, move || {
                    Stack::new(StreamLink::default(), Smux::new(smux.clone(), Side::Server))
                })
                .await?,
            ),
            TransportArg::Kcp => {
                let cfg = flags.kcp.config();
                Listener::Kcp(
                    KcpListener::bind_with(addr, cfg, move |side| Smux::new(smux.clone(), side))
                        .await?,
                )
            }
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        match self {
            Listener::Tcp(l) => l.local_addr(),
            Listener::Kcp(l) => l.local_addr(),
        }
    }

    /// Waits for the next session.
    pub async fn accept(&self) -> io::Result<Conn> {
        Ok(Conn(match self {
            Listener::Tcp(l) => l.accept_connection().await?,
            Listener::Kcp(l) => l.accept_connection().await?,
        }))
    }
}
