//! A fresh network namespace for the plain-TCP leg, so its TUN device, addresses, routes and
//! `/proc/net/snmp` counters are its own (and nothing leaves the machine).
//!
//! Must be called while the process is still single-threaded (`unshare(CLONE_NEWUSER)`
//! refuses a multi-threaded caller), i.e. before any runtime starts.
use nix::sched::{unshare, CloneFlags};
use nix::unistd::{getegid, geteuid};

/// Why the namespace or its TUN device is not available; the messages say how to get it.
#[derive(Debug, thiserror::Error)]
pub enum NamespaceError {
    /// `unshare` was refused.
    #[error(
        "cannot create a network namespace ({0}): run `tether demo` as root, or allow \
         unprivileged user namespaces (`sysctl kernel.unprivileged_userns_clone=1`; on \
         Ubuntu `sysctl kernel.apparmor_restrict_unprivileged_userns=0`)"
    )]
    Unshare(nix::Error),
    /// The uid/gid maps of the new user namespace cannot be written.
    #[error("cannot map the user into the new user namespace ({0}): run `tether demo` as root")]
    Map(std::io::Error),
    /// The TUN device cannot be created or configured.
    #[error(
        "cannot create a TUN device in the namespace ({0}): it needs /dev/net/tun and \
         CAP_NET_ADMIN (run `tether demo` as root; on Ubuntu, unprivileged user namespaces \
         get no capabilities unless `sysctl kernel.apparmor_restrict_unprivileged_userns=0`)"
    )]
    Tun(std::io::Error),
    /// The congestion control cannot be chosen.
    #[error(
        "cannot use TCP congestion control `{name}` ({source}); this user may choose: {offered}"
    )]
    Congestion {
        /// What was asked for.
        name: String,
        /// Why it was refused.
        source: std::io::Error,
        /// `net.ipv4.tcp_allowed_congestion_control`.
        offered: String,
    },
}

/// Moves this process into a new network namespace: `CLONE_NEWNET` alone when root, else
/// (or when that is refused) inside a new user namespace mapping the caller to root, as
/// `unshare -rn` does.
pub fn enter() -> Result<(), NamespaceError> {
    let (uid, gid) = (geteuid(), getegid());
    if uid.is_root() && unshare(CloneFlags::CLONE_NEWNET).is_ok() {
        return Ok(());
    }
    unshare(CloneFlags::CLONE_NEWUSER | CloneFlags::CLONE_NEWNET)
        .map_err(NamespaceError::Unshare)?;
    // setgroups must be denied before an unprivileged process may write gid_map.
    let write = |path: &str, text: String| std::fs::write(path, text);
    write("/proc/self/setgroups", "deny".into())
        .or_else(|e| {
            // Absent on old kernels; nothing to deny there.
            if e.kind() == std::io::ErrorKind::NotFound {
                Ok(())
            } else {
                Err(e)
            }
        })
        .and_then(|()| write("/proc/self/uid_map", format!("0 {uid} 1")))
        .and_then(|()| write("/proc/self/gid_map", format!("0 {gid} 1")))
        .map_err(NamespaceError::Map)
}

/// Sets `tcp`'s congestion control (`TCP_CONGESTION`); the one now in effect.
pub fn set_tcp_congestion(
    tcp: &tokio::net::TcpStream,
    name: &str,
) -> Result<String, NamespaceError> {
    use nix::sys::socket::{getsockopt, setsockopt, sockopt::TcpCongestion};
    let set = setsockopt(tcp, TcpCongestion, &std::ffi::OsString::from(name))
        .and_then(|()| getsockopt(tcp, TcpCongestion));
    set.map(|now| now.to_string_lossy().trim_end_matches('\0').to_string())
        .map_err(|e| NamespaceError::Congestion {
            name: name.into(),
            source: e.into(),
            offered: std::fs::read_to_string("/proc/sys/net/ipv4/tcp_allowed_congestion_control")
                .unwrap_or_default()
                .trim()
                .to_string(),
        })
}

/// The namespace's kernel TCP retransmissions (`Tcp: RetransSegs` of `/proc/net/snmp`).
pub fn tcp_retrans_segs() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/net/snmp").ok()?;
    snmp_value(&text, "Tcp:", "RetransSegs")
}

/// One counter of `/proc/net/snmp`'s text: a header line and a value line per protocol.
fn snmp_value(text: &str, proto: &str, name: &str) -> Option<u64> {
    let mut lines = text.lines().filter(|l| l.starts_with(proto));
    let names = lines.next()?.split_whitespace();
    let values = lines.next()?.split_whitespace();
    names
        .zip(values)
        .find(|(n, _)| *n == name)
        .and_then(|(_, v)| v.parse().ok())
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_tcp_retrans_segs() {
        let text = "Ip: Forwarding DefaultTTL\nIp: 1 64\n\
                    Tcp: RtoAlgorithm RtoMin ActiveOpens RetransSegs InErrs\n\
                    Tcp: 1 200 5 42 0\nUdp: InDatagrams\nUdp: 7\n";
        assert_eq!(super::snmp_value(text, "Tcp:", "RetransSegs"), Some(42));
        assert_eq!(super::snmp_value(text, "Tcp:", "Nope"), None);
    }
}
