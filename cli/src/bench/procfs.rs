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
