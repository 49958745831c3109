//! Batched, non-blocking UDP I/O shared by the three runtimes: `recvmmsg`/`sendmmsg` on Linux,
//! a `recv_from`/`send_to` loop elsewhere. Each call moves up to [`BATCH`] messages in one
//! system call; on `WouldBlock` the caller waits for readiness (never an unbounded queue).
//!
//! On Linux, UDP GSO and GRO are used where the kernel supports them: consecutive datagrams
//! of equal size to one peer leave as one `UDP_SEGMENT` message (the kernel splits them), and
//! with `UDP_GRO` the kernel hands over coalesced runs that [`RecvBatch::iter`] splits again.
//! A kernel that refuses either is detected once and the plain path is used from then on;
//! `TETHER_NO_GSO=1` turns both off.
use std::io;
use std::net::{SocketAddr, UdpSocket};

/// Datagrams received per system call.
pub const BATCH: usize = 32;
/// Messages asked for per system call while GRO runs arrive: each can hold 64 KiB, and 32
/// of them (2 MiB) pushed what the kernel wrote out of the L2 cache before the CRC check
/// and the copy into KCP's arena read it again. With 8 (512 KiB per call) a `tether cat`
/// receiver spent 3–4 % less CPU per byte and moved 4–6 % more
/// (`scripts/cat-throughput.sh`-style A/B, 9 rounds each; 16: 1 %, 4: as 8).
pub const GRO_BATCH: usize = 8;
/// Datagrams sent per system call (Linux): enough for two full GSO runs of 1 350-byte
/// datagrams (48 each, under the 65 000-byte limit), so a GSO message is not cut at 32
/// datagrams by the batch and a bulk sender makes a quarter of the `sendmmsg` calls.
pub const SEND_BATCH: usize = 128;
/// Receive slot size: a GRO run of coalesced datagrams can fill a whole 64 KiB message.
pub const MAX_DATAGRAM: usize = 65_536;

/// Receive buffers for one batch.
pub struct RecvBatch {
    bufs: Vec<[u8; MAX_DATAGRAM]>,
    lens: [usize; BATCH],
    addrs: [Option<SocketAddr>; BATCH],
    /// GRO segment size of each message (0: one datagram).
    segs: [usize; BATCH],
    count: usize,
    /// The last call received a coalesced GRO run: ask for [`GRO_BATCH`] messages.
    coalesced: bool,
}

impl Default for RecvBatch {
    fn default() -> Self {
        RecvBatch {
            bufs: vec![[0u8; MAX_DATAGRAM]; BATCH],
            lens: [0; BATCH],
            addrs: [None; BATCH],
            segs: [0; BATCH],
            count: 0,
            coalesced: false,
        }
    }
}

impl RecvBatch {
    /// The datagrams of the last successful [`recv_batch`], with their sources (GRO runs
    /// split back into datagrams).
    pub fn iter(&self) -> impl Iterator<Item = (SocketAddr, &[u8])> {
        (0..self.count).flat_map(move |i| {
            let data = &self.bufs[i][..self.lens[i]];
            let seg = if self.segs[i] == 0 {
                data.len().max(1)
            } else {
                self.segs[i]
            };
            let addr = self.addrs[i];
            data.chunks(seg).filter_map(move |d| Some((addr?, d)))
        })
    }

    /// [`RecvBatch::iter`] with mutable datagrams, so the listener can decrypt them where they
    /// are (`handle_datagram_mut`: no copy before opening).
    pub fn iter_mut(&mut self) -> impl Iterator<Item = (SocketAddr, &mut [u8])> {
        let (lens, segs, addrs) = (&self.lens, &self.segs, &self.addrs);
        self.bufs
            .iter_mut()
            .take(self.count)
            .enumerate()
            .flat_map(move |(i, buf)| {
                let data = &mut buf[..lens[i]];
                let seg = if segs[i] == 0 {
                    data.len().max(1)
                } else {
                    segs[i]
                };
                let addr = addrs[i];
                data.chunks_mut(seg).filter_map(move |d| Some((addr?, d)))
            })
    }
}

/// Receives up to [`BATCH`] datagrams; `Err(WouldBlock)` when none is waiting.
pub fn recv_batch(sock: &UdpSocket, batch: &mut RecvBatch) -> io::Result<usize> {
    batch.count = 0;
    let n = sys::recv_batch(sock, batch)?;
    batch.count = n;
    Ok(n)
}

/// What one [`send_batch`] did with the datagrams it was given: the first
/// [`SendReport::consumed`] of them are done with (sent or refused), the rest wait for the
/// socket to become writable.
#[derive(Debug, Default)]
pub struct SendReport {
    /// Datagrams the kernel accepted.
    pub sent: usize,
    /// Datagrams the kernel refused, wherever they were in the batch (dropped, so that one
    /// bad destination cannot wedge the queue; KCP retransmits what mattered).
    pub errors: usize,
    /// The first refusal, for the log.
    pub first_error: Option<io::Error>,
}

impl SendReport {
    /// Datagrams done with, from the front of the batch.
    pub fn consumed(&self) -> usize {
        self.sent + self.errors
    }
}

/// Sends datagrams in order until one would block. A datagram the kernel refuses (an
/// invalid or unreachable destination, a wrong address family) is dropped and counted, and
/// sending goes on with the next one.
pub fn send_batch(sock: &UdpSocket, items: &[(SocketAddr, &[u8])]) -> SendReport {
    let mut r = SendReport::default();
    while r.consumed() < items.len() {
        let from = r.consumed();
        match sys::send_batch(sock, &items[from..items.len().min(from + SEND_BATCH)]) {
            Ok(0) => break,
            Ok(n) => r.sent += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            // sendmmsg reports the failure of the first message it could not send: that one
            // is dropped, the ones after it are tried again.
            Err(e) => {
                r.errors += 1;
                r.first_error.get_or_insert(e);
            }
        }
    }
    r
}

/// Coalescing done by the calling thread's sends and receives: proof that GSO and GRO are
/// in use, not silently replaced by the plain path.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Coalescing {
    /// `UDP_SEGMENT` messages sent (each carried two or more datagrams).
    pub gso_messages: u64,
    /// Datagrams inside those messages.
    pub gso_datagrams: u64,
    /// Received messages the kernel had coalesced (`UDP_GRO`, two or more datagrams).
    pub gro_messages: u64,
    /// Datagrams inside those messages.
    pub gro_datagrams: u64,
}

thread_local! {
    static COALESCING: std::cell::Cell<Coalescing> = const {
        std::cell::Cell::new(Coalescing {
            gso_messages: 0,
            gso_datagrams: 0,
            gro_messages: 0,
            gro_datagrams: 0,
        })
    };
}

/// What this thread's [`send_batch`] and [`recv_batch`] calls coalesced so far.
pub fn coalescing() -> Coalescing {
    COALESCING.with(|c| c.get())
}

fn count_coalescing(f: impl FnOnce(&mut Coalescing)) {
    COALESCING.with(|c| {
        let mut v = c.get();
        f(&mut v);
        c.set(v);
    });
}

/// Whether the kernel offers UDP GSO and GRO (Linux ≥ 5.0) and `TETHER_NO_GSO` is unset.
pub fn coalescing_available() -> bool {
    sys::coalescing_available()
}

/// Turns on UDP GRO for `sock` where the kernel supports it (best effort; [`recv_batch`]
/// handles coalesced runs either way).
pub fn enable_gro(sock: &UdpSocket) {
    sys::enable_gro(sock);
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
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::{RecvBatch, BATCH, GRO_BATCH, SEND_BATCH};

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

    /// `SOL_UDP` options (not in every libc crate target).
    const SOL_UDP: i32 = 17;
    const UDP_SEGMENT: i32 = 103;
    const UDP_GRO: i32 = 104;
    /// GSO limits: segments per message, and bytes per message.
    const GSO_MAX_SEGMENTS: usize = 64;
    const GSO_MAX_BYTES: usize = 65_000;

    /// Set once the kernel refused GSO (or `TETHER_NO_GSO` is set): plain sends from then on.
    static GSO_OFF: AtomicBool = AtomicBool::new(false);
    static GSO_CHECKED: std::sync::Once = std::sync::Once::new();

    fn gso_off() -> bool {
        GSO_CHECKED.call_once(|| {
            if std::env::var_os("TETHER_NO_GSO").is_some_and(|v| v != "0") {
                GSO_OFF.store(true, Ordering::Relaxed);
            }
        });
        GSO_OFF.load(Ordering::Relaxed)
    }

    /// Whether sends may use GSO (tests).
    #[cfg(test)]
    pub(super) fn gso_enabled() -> bool {
        !gso_off()
    }

    /// Control-message space for one `int`/`u16` option, 8-byte aligned.
    type Cmsg = [u64; 4];

    pub(super) fn enable_gro(sock: &UdpSocket) {
        if !gso_off() {
            setsockopt_int(sock, SOL_UDP, UDP_GRO, 1);
        }
    }

    /// The `UDP_GRO` segment size in a received message's control data, if any.
    fn gro_segment(hdr: &libc::msghdr) -> usize {
        // SAFETY: `hdr` was filled by recvmmsg; CMSG_FIRSTHDR/NXTHDR walk only within
        // msg_control[..msg_controllen], and each cmsg's data is read as the int it holds.
        unsafe {
            let mut c = libc::CMSG_FIRSTHDR(hdr);
            while !c.is_null() {
                if (*c).cmsg_level == SOL_UDP && (*c).cmsg_type == UDP_GRO {
                    let mut v: i32 = 0;
                    std::ptr::copy_nonoverlapping(
                        libc::CMSG_DATA(c),
                        (&mut v as *mut i32).cast(),
                        size_of::<i32>(),
                    );
                    return v.max(0) as usize;
                }
                c = libc::CMSG_NXTHDR(hdr, c);
            }
        }
        0
    }

    pub(super) fn recv_batch(sock: &UdpSocket, batch: &mut RecvBatch) -> io::Result<usize> {
        // SAFETY: all-zero is a valid value for these plain C structs.
        let mut names: [libc::sockaddr_storage; BATCH] = unsafe { zeroed() };
        // SAFETY: as above.
        let mut iovs: [libc::iovec; BATCH] = unsafe { zeroed() };
        // SAFETY: as above.
        let mut msgs: [libc::mmsghdr; BATCH] = unsafe { zeroed() };
        let mut ctrl: [Cmsg; BATCH] = [[0; 4]; BATCH];
        for i in 0..BATCH {
            iovs[i].iov_base = batch.bufs[i].as_mut_ptr().cast();
            iovs[i].iov_len = batch.bufs[i].len();
            msgs[i].msg_hdr.msg_name = (&mut names[i] as *mut libc::sockaddr_storage).cast();
            msgs[i].msg_hdr.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            msgs[i].msg_hdr.msg_iov = &mut iovs[i];
            msgs[i].msg_hdr.msg_iovlen = 1;
            msgs[i].msg_hdr.msg_control = ctrl[i].as_mut_ptr().cast();
            msgs[i].msg_hdr.msg_controllen = size_of::<Cmsg>() as _;
        }
        // SAFETY: every mmsghdr points at a live iovec, sockaddr_storage and control buffer
        // owned by this stack frame (or at `batch.bufs`, borrowed mutably for the call);
        // lengths are the buffers' real sizes; MSG_DONTWAIT keeps the call non-blocking.
        let n = unsafe {
            libc::recvmmsg(
                sock.as_raw_fd(),
                msgs.as_mut_ptr(),
                if batch.coalesced { GRO_BATCH } else { BATCH } as u32,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let n = n as usize;
        batch.coalesced = false;
        for i in 0..n {
            batch.lens[i] = msgs[i].msg_len as usize;
            batch.addrs[i] = to_addr(&names[i]);
            batch.segs[i] = gro_segment(&msgs[i].msg_hdr);
            let (len, seg) = (batch.lens[i], batch.segs[i]);
            if seg > 0 && len > seg {
                batch.coalesced = true;
                super::count_coalescing(|c| {
                    c.gro_messages += 1;
                    c.gro_datagrams += len.div_ceil(seg) as u64;
                });
            }
        }
        Ok(n)
    }

    /// Groups consecutive items into GSO runs: same peer, same size (the last may be
    /// shorter), within the kernel's limits. Returns the item count of each run.
    fn gso_runs(items: &[(SocketAddr, &[u8])], runs: &mut Vec<usize>) {
        runs.clear();
        let mut i = 0;
        while i < items.len() {
            let (addr, first) = items[i];
            let size = first.len();
            let mut n = 1;
            let mut bytes = size;
            while i + n < items.len() && n < GSO_MAX_SEGMENTS && size > 0 {
                let (a, d) = items[i + n];
                if a != addr || d.len() > size || bytes + d.len() > GSO_MAX_BYTES {
                    break;
                }
                n += 1;
                bytes += d.len();
                if d.len() < size {
                    break; // a shorter datagram can only end a run
                }
            }
            runs.push(n);
            i += n;
        }
    }

    pub(super) fn send_batch(sock: &UdpSocket, items: &[(SocketAddr, &[u8])]) -> io::Result<usize> {
        let items = &items[..items.len().min(SEND_BATCH)];
        if gso_off() {
            return send_messages(sock, items, false);
        }
        match send_messages(sock, items, true) {
            Err(e) if may_mean_no_gso(&e) && first_run_is_gso(items) => {
                // Either the kernel or device refuses UDP_SEGMENT, or this destination is
                // invalid (port 0 also gives EINVAL): the same datagrams sent plainly tell
                // which. Only when they go out is GSO off, for good.
                let plain = send_messages(sock, items, false);
                if matches!(plain, Ok(n) if n > 0) {
                    tracing::debug!("UDP GSO unavailable ({e}); using plain sendmmsg");
                    GSO_OFF.store(true, Ordering::Relaxed);
                }
                plain
            }
            r => r,
        }
    }

    /// Errors a kernel or device without UDP GSO gives for a `UDP_SEGMENT` message.
    fn may_mean_no_gso(e: &io::Error) -> bool {
        matches!(
            e.raw_os_error(),
            Some(libc::EIO) | Some(libc::EINVAL) | Some(libc::ENOPROTOOPT) | Some(libc::EOPNOTSUPP)
        )
    }

    /// Whether the first message of `items` would carry `UDP_SEGMENT` (the one an error of
    /// `sendmmsg` is about); a plain first message's error says nothing about GSO.
    fn first_run_is_gso(items: &[(SocketAddr, &[u8])]) -> bool {
        let mut runs = Vec::with_capacity(BATCH);
        gso_runs(items, &mut runs);
        runs.first().is_some_and(|&n| n > 1)
    }

    /// One `sendmmsg` of `items`, as GSO runs when `gso`; returns how many items went out.
    fn send_messages(
        sock: &UdpSocket,
        items: &[(SocketAddr, &[u8])],
        gso: bool,
    ) -> io::Result<usize> {
        let mut runs = Vec::with_capacity(SEND_BATCH);
        if gso {
            gso_runs(items, &mut runs);
        } else {
            runs.extend(std::iter::repeat_n(1, items.len()));
        }
        // SAFETY: all-zero is a valid value for these plain C structs.
        let mut names: [libc::sockaddr_storage; SEND_BATCH] = unsafe { zeroed() };
        // SAFETY: as above.
        let mut iovs: [libc::iovec; SEND_BATCH] = unsafe { zeroed() };
        // SAFETY: as above.
        let mut msgs: [libc::mmsghdr; SEND_BATCH] = unsafe { zeroed() };
        let mut ctrl: [Cmsg; SEND_BATCH] = [[0; 4]; SEND_BATCH];
        for (i, (_, data)) in items.iter().enumerate() {
            iovs[i].iov_base = data.as_ptr() as *mut libc::c_void;
            iovs[i].iov_len = data.len();
        }
        let mut start = 0;
        for (m, &count) in runs.iter().enumerate() {
            let (addr, first) = items[start];
            let h = &mut msgs[m].msg_hdr;
            h.msg_namelen = from_addr(&addr, &mut names[m]);
            h.msg_name = (&mut names[m] as *mut libc::sockaddr_storage).cast();
            h.msg_iov = &mut iovs[start];
            h.msg_iovlen = count as _;
            if count > 1 {
                h.msg_control = ctrl[m].as_mut_ptr().cast();
                // SAFETY: CMSG_SPACE/LEN are pure arithmetic.
                h.msg_controllen = unsafe { libc::CMSG_SPACE(size_of::<u16>() as u32) } as _;
                // SAFETY: the control buffer is 32 bytes, enough for one u16 cmsg
                // (CMSG_SPACE(2) = 24), 8-byte aligned; CMSG_FIRSTHDR points into it.
                unsafe {
                    let c = libc::CMSG_FIRSTHDR(h);
                    (*c).cmsg_level = SOL_UDP;
                    (*c).cmsg_type = UDP_SEGMENT;
                    (*c).cmsg_len = libc::CMSG_LEN(size_of::<u16>() as u32) as _;
                    let seg = first.len() as u16;
                    std::ptr::copy_nonoverlapping(
                        (&seg as *const u16).cast(),
                        libc::CMSG_DATA(c),
                        size_of::<u16>(),
                    );
                }
            }
            start += count;
        }
        // SAFETY: the first `runs.len()` headers point at live addresses, control buffers and
        // iovecs over the callers' data slices, all of which outlive the call; the kernel only
        // reads through them for a send.
        let r = unsafe {
            libc::sendmmsg(
                sock.as_raw_fd(),
                msgs.as_mut_ptr(),
                runs.len() as u32,
                libc::MSG_DONTWAIT,
            )
        };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        let done = &runs[..r as usize];
        super::count_coalescing(|c| {
            for &n in done.iter().filter(|&&n| n > 1) {
                c.gso_messages += 1;
                c.gso_datagrams += n as u64;
            }
        });
        Ok(done.iter().sum())
    }

    /// Probes `UDP_SEGMENT` and `UDP_GRO` on a throwaway socket.
    pub(super) fn coalescing_available() -> bool {
        if gso_off() {
            return false;
        }
        let Ok(sock) = UdpSocket::bind("127.0.0.1:0") else {
            return false;
        };
        [UDP_SEGMENT, UDP_GRO].iter().all(|&opt| {
            let mut v: i32 = 0;
            let mut len = size_of::<i32>() as libc::socklen_t;
            // SAFETY: getsockopt writes at most `len` bytes into the live i32 `v`.
            let r = unsafe {
                libc::getsockopt(
                    sock.as_raw_fd(),
                    SOL_UDP,
                    opt,
                    (&mut v as *mut i32).cast(),
                    &mut len,
                )
            };
            r == 0
        })
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

    pub(super) fn enable_gro(_sock: &UdpSocket) {}
    pub(super) fn coalescing_available() -> bool {
        false
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
        assert_eq!(send_batch(&a, &items).sent, 50);
        let mut got = Vec::new();
        let mut batch = RecvBatch::default();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while got.len() < 50 && std::time::Instant::now() < deadline {
            match recv_batch(&b, &mut batch) {
                Ok(_) => {
                    let seen: Vec<_> = batch.iter().map(|(f, d)| (f, d.to_vec())).collect();
                    let seen_mut: Vec<_> = batch.iter_mut().map(|(f, d)| (f, d.to_vec())).collect();
                    assert_eq!(seen, seen_mut, "iter_mut yields what iter does");
                    got.extend(seen);
                }
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

#[cfg(test)]
mod gso_tests {
    use super::*;

    /// An `EINVAL` for one destination (port 0) is that destination's problem: GSO stays on
    /// for everyone else, and the good datagrams of the batch still go out.
    #[cfg(target_os = "linux")]
    #[test]
    fn an_invalid_destination_does_not_turn_gso_off() {
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").unwrap();
        a.set_nonblocking(true).unwrap();
        let to = b.local_addr().unwrap();
        let bad: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let p = vec![7u8; 1000];
        // A GSO-able run to the bad destination first, then good datagrams.
        let items: Vec<(SocketAddr, &[u8])> = [bad, bad, bad, to, to, to]
            .iter()
            .map(|&d| (d, p.as_slice()))
            .collect();
        let before = sys::gso_enabled();
        let r = send_batch(&a, &items);
        assert_eq!((r.sent, r.errors), (3, 3), "{:?}", r.first_error);
        assert_eq!(
            sys::gso_enabled(),
            before,
            "one invalid destination switched GSO off for the whole process"
        );
    }

    /// Equal-size runs (GSO on send, GRO on receive where the kernel has them) come out as
    /// exactly the datagrams that went in, in order.
    #[test]
    fn gso_and_gro_preserve_datagram_boundaries() {
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").unwrap();
        a.set_nonblocking(true).unwrap();
        b.set_nonblocking(true).unwrap();
        enable_gro(&b);
        let to = b.local_addr().unwrap();
        // 20 full datagrams, a short one (ends the run), 10 more full, then odd sizes.
        let mut payloads: Vec<Vec<u8>> = (0..20u8).map(|i| vec![i; 1350]).collect();
        payloads.push(vec![0xAA; 100]);
        payloads.extend((0..10u8).map(|i| vec![100 + i; 1350]));
        payloads.extend([vec![1; 7], vec![2; 900], vec![3; 1350]]);
        let items: Vec<(SocketAddr, &[u8])> = payloads.iter().map(|p| (to, p.as_slice())).collect();
        let mut sent = 0;
        while sent < items.len() {
            let r = send_batch(&a, &items[sent..]);
            assert_eq!(r.errors, 0, "{:?}", r.first_error);
            sent += r.sent;
        }
        let mut got: Vec<Vec<u8>> = Vec::new();
        let mut batch = RecvBatch::default();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while got.len() < payloads.len() && std::time::Instant::now() < deadline {
            match recv_batch(&b, &mut batch) {
                Ok(_) => got.extend(batch.iter().map(|(_, d)| d.to_vec())),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => std::thread::yield_now(),
                Err(e) => panic!("{e}"),
            }
        }
        assert_eq!(got, payloads);
        // The runs really were coalesced where the kernel can, and only there.
        let c = coalescing();
        if coalescing_available() {
            assert!(
                c.gso_messages > 0 && c.gso_datagrams > c.gso_messages,
                "GSO is available but nothing was sent coalesced: {c:?}"
            );
            assert!(
                c.gro_messages > 0 && c.gro_datagrams > c.gro_messages,
                "GRO is available but no coalesced run was received: {c:?}"
            );
        } else {
            assert_eq!(
                c,
                Coalescing::default(),
                "no GSO/GRO here (or TETHER_NO_GSO set)"
            );
        }
    }
}
