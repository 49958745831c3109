//! The proxy's sockets: non-blocking UDP registered for read readiness, and the upstream
//! socket opened per client.
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::task::{Context, Poll};

/// A non-blocking UDP socket registered with the runtime for read readiness only.
///
/// On Unix, sends and receives are plain non-blocking syscalls on the socket, so a send's
/// `WouldBlock` means the kernel buffer really is full. (tokio's `UdpSocket::try_send` also
/// answers `WouldBlock` until the reactor has first seen a socket writable, which would drop
/// the first datagram of every new client.)
#[cfg(unix)]
pub struct Sock(tokio::io::unix::AsyncFd<std::net::UdpSocket>);

#[cfg(unix)]
impl Sock {
    // tokio deprecates the safe constructor because an arbitrary `AsRawFd` may hand out a
    // descriptor it does not own (its replacement is `unsafe`, which this crate forbids); a
    // `std::net::UdpSocket` owns its descriptor for its whole life, which is the contract.
    #[allow(deprecated)]
    pub fn new(sock: std::net::UdpSocket) -> io::Result<Self> {
        sock.set_nonblocking(true)?;
        set_buffers(&sock);
        let fd = tokio::io::unix::AsyncFd::with_interest(sock, tokio::io::Interest::READABLE)?;
        Ok(Self(fd))
    }

    /// Whether the socket has become readable; consumes that readiness, so the caller must
    /// read until `WouldBlock` or come back without waiting.
    pub fn poll_readable(&self, cx: &mut Context<'_>) -> bool {
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

    pub fn try_recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.0.get_ref().recv_from(buf)
    }

    pub fn try_recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.get_ref().recv(buf)
    }

    pub fn try_send(&self, buf: &[u8]) -> io::Result<usize> {
        self.0.get_ref().send(buf)
    }

    pub fn try_send_to(&self, buf: &[u8], to: SocketAddr) -> io::Result<usize> {
        self.0.get_ref().send_to(buf, to)
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.0.get_ref().local_addr()
    }
}

/// Elsewhere, tokio's socket (whose first sends may report `WouldBlock`, see above).
#[cfg(not(unix))]
pub struct Sock(tokio::net::UdpSocket);

#[cfg(not(unix))]
impl Sock {
    pub fn new(sock: std::net::UdpSocket) -> io::Result<Self> {
        sock.set_nonblocking(true)?;
        set_buffers(&sock);
        Ok(Self(tokio::net::UdpSocket::from_std(sock)?))
    }

    /// Whether the socket may be readable (tokio keeps the readiness until `WouldBlock`).
    pub fn poll_readable(&self, cx: &mut Context<'_>) -> bool {
        self.0.poll_recv_ready(cx).is_ready()
    }

    pub fn try_recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.0.try_recv_from(buf)
    }

    pub fn try_recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.try_recv(buf)
    }

    pub fn try_send(&self, buf: &[u8]) -> io::Result<usize> {
        self.0.try_send(buf)
    }

    pub fn try_send_to(&self, buf: &[u8], to: SocketAddr) -> io::Result<usize> {
        self.0.try_send_to(buf, to)
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.0.local_addr()
    }
}

/// Socket buffers of the proxy's sockets: kcptun's `--sockbuf` default. A KCP sender
/// flushes up to a whole window (1024 segments, ~1.4 MB) at once; with the kernel's default
/// ~208 KiB the proxy's own sockets dropped most of such a burst before the engine saw it.
const SOCKBUF: usize = 4 << 20;

/// Sets [`SOCKBUF`], best effort (the kernel caps it at `net.core.rmem_max`/`wmem_max`).
fn set_buffers(sock: &std::net::UdpSocket) {
    tether_runtime_mio::udp::set_buffers(sock, SOCKBUF);
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

pub fn open_upstream(forward: SocketAddr) -> io::Result<Sock> {
    let sock = std::net::UdpSocket::bind(upstream_bind_addr(forward))?;
    sock.connect(forward)?;
    Sock::new(sock)
}
