//! Batched, non-blocking UDP I/O shared by the three runtimes: `recvmmsg`/`sendmmsg` on Linux,
//! a `recv_from`/`send_to` loop elsewhere. Each call moves up to [`BATCH`] datagrams in one
//! system call; on `WouldBlock` the caller waits for readiness (never an unbounded queue).
use std::io;
use std::net::{SocketAddr, UdpSocket};

/// Datagrams moved per system call.
pub const BATCH: usize = 32;
/// Largest datagram received (kcp-go's `mtuLimit` is 1500; leave room for odd peers).
pub const MAX_DATAGRAM: usize = 2048;

/// Receive buffers for one batch.
pub struct RecvBatch {
    bufs: Vec<[u8; MAX_DATAGRAM]>,
    lens: [usize; BATCH],
    addrs: [Option<SocketAddr>; BATCH],
    count: usize,
}

impl Default for RecvBatch {
    fn default() -> Self {
        RecvBatch {
            bufs: vec![[0u8; MAX_DATAGRAM]; BATCH],
            lens: [0; BATCH],
            addrs: [None; BATCH],
            count: 0,
        }
    }
}

impl RecvBatch {
    /// The datagrams of the last successful [`recv_batch`], with their sources.
    pub fn iter(&self) -> impl Iterator<Item = (SocketAddr, &[u8])> {
        (0..self.count).filter_map(move |i| Some((self.addrs[i]?, &self.bufs[i][..self.lens[i]])))
    }
}

/// Receives up to [`BATCH`] datagrams; `Err(WouldBlock)` when none is waiting.
pub fn recv_batch(sock: &UdpSocket, batch: &mut RecvBatch) -> io::Result<usize> {
    batch.count = 0;
    let n = sys::recv_batch(sock, batch)?;
    batch.count = n;
    Ok(n)
}

/// Sends datagrams in order until one would block; returns how many went out. The caller
/// keeps the rest and retries after the socket becomes writable. `Err` only for a failure of
/// the first datagram (other than `WouldBlock`, which is `Ok(0)`).
pub fn send_batch(sock: &UdpSocket, items: &[(SocketAddr, &[u8])]) -> io::Result<usize> {
    let mut sent = 0;
    while sent < items.len() {
        match sys::send_batch(sock, &items[sent..items.len().min(sent + BATCH)]) {
            Ok(0) => break,
            Ok(n) => sent += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            // A datagram the kernel refuses (e.g. unreachable peer) must not wedge the queue.
            Err(e) if sent == 0 && !is_transient(&e) => return Err(e),
            Err(_) => sent += 1,
        }
    }
    Ok(sent)
}

fn is_transient(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused | io::ErrorKind::Interrupted
    )
}

/// Sets the socket's receive and send buffer sizes (kcptun `--sockbuf`), best effort.
pub fn set_buffers(sock: &UdpSocket, bytes: usize) {
    sys::set_buffers(sock, bytes);
}

/// Sets the DSCP bits of outgoing datagrams (kcptun `--dscp`), best effort.
pub fn set_dscp(sock: &UdpSocket, dscp: u8) {
    sys::set_dscp(sock, dscp);
}

#[cfg(target_os = "linux")]
mod sys {
    use std::io;
    use std::mem::{size_of, zeroed};
    use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6, UdpSocket};
    use std::os::fd::AsRawFd;

    use super::{RecvBatch, BATCH};

    fn to_addr(ss: &libc::sockaddr_storage) -> Option<SocketAddr> {
        match ss.ss_family as i32 {
            libc::AF_INET => {
                // SAFETY: the kernel wrote a sockaddr_in for AF_INET; sockaddr_storage is large
                // enough and suitably aligned for every sockaddr type.
                let a = unsafe { &*(ss as *const _ as *const libc::sockaddr_in) };
                let ip = Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr));
                Some(SocketAddr::V4(SocketAddrV4::new(
                    ip,
                    u16::from_be(a.sin_port),
                )))
            }
            libc::AF_INET6 => {
                // SAFETY: as above, for AF_INET6 and sockaddr_in6.
                let a = unsafe { &*(ss as *const _ as *const libc::sockaddr_in6) };
                let ip = Ipv6Addr::from(a.sin6_addr.s6_addr);
                Some(SocketAddr::V6(SocketAddrV6::new(
                    ip,
                    u16::from_be(a.sin6_port),
                    a.sin6_flowinfo,
                    a.sin6_scope_id,
                )))
            }
            _ => None,
        }
    }

    fn from_addr(addr: &SocketAddr, ss: &mut libc::sockaddr_storage) -> libc::socklen_t {
        match addr {
            SocketAddr::V4(a) => {
                // SAFETY: sockaddr_storage is large enough and aligned for sockaddr_in.
                let s = unsafe { &mut *(ss as *mut _ as *mut libc::sockaddr_in) };
                s.sin_family = libc::AF_INET as libc::sa_family_t;
                s.sin_port = a.port().to_be();
                s.sin_addr.s_addr = u32::from(*a.ip()).to_be();
                size_of::<libc::sockaddr_in>() as libc::socklen_t
            }
            SocketAddr::V6(a) => {
                // SAFETY: sockaddr_storage is large enough and aligned for sockaddr_in6.
                let s = unsafe { &mut *(ss as *mut _ as *mut libc::sockaddr_in6) };
                s.sin6_family = libc::AF_INET6 as libc::sa_family_t;
                s.sin6_port = a.port().to_be();
                s.sin6_addr.s6_addr = a.ip().octets();
                s.sin6_flowinfo = a.flowinfo();
                s.sin6_scope_id = a.scope_id();
                size_of::<libc::sockaddr_in6>() as libc::socklen_t
            }
        }
    }

    pub(super) fn recv_batch(sock: &UdpSocket, batch: &mut RecvBatch) -> io::Result<usize> {
        // SAFETY: all-zero is a valid value for these plain C structs.
        let mut names: [libc::sockaddr_storage; BATCH] = unsafe { zeroed() };
        // SAFETY: as above.
        let mut iovs: [libc::iovec; BATCH] = unsafe { zeroed() };
        // SAFETY: as above.
        let mut msgs: [libc::mmsghdr; BATCH] = unsafe { zeroed() };
        for i in 0..BATCH {
            iovs[i].iov_base = batch.bufs[i].as_mut_ptr().cast();
            iovs[i].iov_len = batch.bufs[i].len();
            msgs[i].msg_hdr.msg_name = (&mut names[i] as *mut libc::sockaddr_storage).cast();
            msgs[i].msg_hdr.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            msgs[i].msg_hdr.msg_iov = &mut iovs[i];
            msgs[i].msg_hdr.msg_iovlen = 1;
        }
        // SAFETY: every mmsghdr points at a live iovec and sockaddr_storage owned by this stack
        // frame (or at `batch.bufs`, borrowed mutably for the call); lengths are the buffers'
        // real sizes; MSG_DONTWAIT keeps the call non-blocking.
        let n = unsafe {
            libc::recvmmsg(
                sock.as_raw_fd(),
                msgs.as_mut_ptr(),
                BATCH as u32,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let n = n as usize;
        for i in 0..n {
            batch.lens[i] = msgs[i].msg_len as usize;
            batch.addrs[i] = to_addr(&names[i]);
        }
        Ok(n)
    }

    pub(super) fn send_batch(sock: &UdpSocket, items: &[(SocketAddr, &[u8])]) -> io::Result<usize> {
        let n = items.len().min(BATCH);
        // SAFETY: all-zero is a valid value for these plain C structs.
        let mut names: [libc::sockaddr_storage; BATCH] = unsafe { zeroed() };
        // SAFETY: as above.
        let mut iovs: [libc::iovec; BATCH] = unsafe { zeroed() };
        // SAFETY: as above.
        let mut msgs: [libc::mmsghdr; BATCH] = unsafe { zeroed() };
        for i in 0..n {
            let (addr, data) = &items[i];
            let len = from_addr(addr, &mut names[i]);
            iovs[i].iov_base = data.as_ptr() as *mut libc::c_void;
            iovs[i].iov_len = data.len();
            msgs[i].msg_hdr.msg_name = (&mut names[i] as *mut libc::sockaddr_storage).cast();
            msgs[i].msg_hdr.msg_namelen = len;
            msgs[i].msg_hdr.msg_iov = &mut iovs[i];
            msgs[i].msg_hdr.msg_iovlen = 1;
        }
        // SAFETY: the first `n` headers point at live addresses and at the callers' data
        // slices, which outlive the call; the kernel only reads through iov_base for sends.
        let r = unsafe {
            libc::sendmmsg(
                sock.as_raw_fd(),
                msgs.as_mut_ptr(),
                n as u32,
                libc::MSG_DONTWAIT,
            )
        };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(r as usize)
    }

    fn setsockopt_int(sock: &UdpSocket, level: i32, name: i32, value: i32) {
        // SAFETY: passes a pointer to a live i32 with its exact size; failure is ignored
        // (best-effort tuning).
        unsafe {
            libc::setsockopt(
                sock.as_raw_fd(),
                level,
                name,
                (&value as *const i32).cast(),
                size_of::<i32>() as libc::socklen_t,
            );
        }
    }

    pub(super) fn set_buffers(sock: &UdpSocket, bytes: usize) {
        let v = bytes.min(i32::MAX as usize) as i32;
        setsockopt_int(sock, libc::SOL_SOCKET, libc::SO_RCVBUF, v);
        setsockopt_int(sock, libc::SOL_SOCKET, libc::SO_SNDBUF, v);
    }

    pub(super) fn set_dscp(sock: &UdpSocket, dscp: u8) {
        let tos = i32::from(dscp) << 2;
        setsockopt_int(sock, libc::IPPROTO_IP, libc::IP_TOS, tos);
        setsockopt_int(sock, libc::IPPROTO_IPV6, libc::IPV6_TCLASS, tos);
    }
}

#[cfg(not(target_os = "linux"))]
mod sys {
    use std::io;
    use std::net::{SocketAddr, UdpSocket};

    use super::{RecvBatch, BATCH};

    pub(super) fn recv_batch(sock: &UdpSocket, batch: &mut RecvBatch) -> io::Result<usize> {
        let mut n = 0;
        while n < BATCH {
            match sock.recv_from(&mut batch.bufs[n]) {
                Ok((len, from)) => {
                    batch.lens[n] = len;
                    batch.addrs[n] = Some(from);
                    n += 1;
                }
                Err(e) if n > 0 && e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(e),
            }
        }
        Ok(n)
    }

    pub(super) fn send_batch(sock: &UdpSocket, items: &[(SocketAddr, &[u8])]) -> io::Result<usize> {
        let (addr, data) = items[0];
        sock.send_to(data, addr).map(|_| 1)
    }

    pub(super) fn set_buffers(_sock: &UdpSocket, _bytes: usize) {}
    pub(super) fn set_dscp(_sock: &UdpSocket, _dscp: u8) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_round_trip_on_loopback() {
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").unwrap();
        a.set_nonblocking(true).unwrap();
        b.set_nonblocking(true).unwrap();
        let to = b.local_addr().unwrap();
        let payloads: Vec<Vec<u8>> = (0..50u8).map(|i| vec![i; 100 + i as usize]).collect();
        let items: Vec<(SocketAddr, &[u8])> = payloads.iter().map(|p| (to, p.as_slice())).collect();
        assert_eq!(send_batch(&a, &items).unwrap(), 50);
        let mut got = Vec::new();
        let mut batch = RecvBatch::default();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while got.len() < 50 && std::time::Instant::now() < deadline {
            match recv_batch(&b, &mut batch) {
                Ok(_) => got.extend(batch.iter().map(|(from, d)| (from, d.to_vec()))),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => std::thread::yield_now(),
                Err(e) => panic!("{e}"),
            }
        }
        assert_eq!(got.len(), 50);
        assert!(got.iter().all(|(from, _)| *from == a.local_addr().unwrap()));
        assert_eq!(
            got.iter().map(|(_, d)| d.clone()).collect::<Vec<_>>(),
            payloads
        );
    }
}
