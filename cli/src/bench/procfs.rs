//! What `/proc` says about a process: its CPU time and memory, and the machine's load.

/// Linux `USER_HZ`: /proc/<pid>/stat counts CPU time in 1/100 s.
const TICKS_PER_SEC: f64 = 100.0;

/// The fields of `/proc/<pid>/stat` from field 3 (the state) on.
fn stat_fields(pid: &str) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may contain spaces: fields after the last ')' start at 3.
    let rest = &stat[stat.rfind(')')? + 1..];
    Some(rest.split_whitespace().map(String::from).collect())
}

/// utime+stime of `/proc/<pid>/stat` in ticks (`pid` may be `self`).
fn proc_cpu_ticks(pid: &str) -> Option<u64> {
    let f = stat_fields(pid)?;
    let utime: u64 = f.get(11)?.parse().ok()?;
    let stime: u64 = f.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// The state letter of `/proc/<pid>/stat` (`Z`: exited, not yet reaped, its CPU times final);
/// `None` when the process is gone.
pub fn proc_state(pid: &str) -> Option<char> {
    stat_fields(pid)?.first()?.chars().next()
}

pub fn proc_cpu_seconds(pid: &str) -> f64 {
    proc_cpu_ticks(pid).unwrap_or(0) as f64 / TICKS_PER_SEC
}

/// A `kB` line of `/proc/<pid>/status` (`VmRSS`, `VmHWM`).
pub fn proc_status_kb(pid: &str, key: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|l| {
        let v = l.strip_prefix(key)?.strip_prefix(':')?;
        v.split_whitespace().next()?.parse().ok()
    })
}

/// The first three fields of `/proc/loadavg` (`?` when unreadable).
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

/// Whether some socket of this host is bound to local `port` in `/proc/net/<table>`
/// (`udp`, or `tcp` in the LISTEN state): a readiness probe that neither connects nor binds,
/// so it cannot race the process it waits for.
pub fn port_bound(table: &str, port: u16) -> bool {
    let Ok(text) = std::fs::read_to_string(format!("/proc/net/{table}")) else {
        return false;
    };
    bound_in(&text, table == "tcp", port)
}

/// [`port_bound`] over the text of a `/proc/net` table.
fn bound_in(text: &str, listening_only: bool, port: u16) -> bool {
    text.lines().skip(1).any(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        let (Some(local), Some(state)) = (f.get(1), f.get(3)) else {
            return false;
        };
        let p = local
            .rsplit_once(':')
            .and_then(|(_, p)| u16::from_str_radix(p, 16).ok());
        // TCP state 0A is LISTEN.
        p == Some(port) && (!listening_only || *state == "0A")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const TCP: &str = "  sl  local_address rem_address   st tx_queue rx_queue\n   \
        0: 0100007F:1F90 00000000:0000 0A 00000000:00000000\n   \
        1: 0100007F:0050 0100007F:9C40 01 00000000:00000000\n";

    #[test]
    fn a_listening_tcp_port_is_bound_a_connected_one_is_not() {
        assert!(bound_in(TCP, true, 0x1F90));
        assert!(!bound_in(TCP, true, 0x50));
        assert!(bound_in(TCP, false, 0x50), "any state counts for UDP");
        assert!(!bound_in(TCP, true, 1));
    }

    #[test]
    fn our_own_udp_socket_shows_in_proc_net_udp() {
        let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = s.local_addr().unwrap().port();
        assert!(port_bound("udp", port));
        drop(s);
        assert!(!port_bound("udp", port));
    }
}
