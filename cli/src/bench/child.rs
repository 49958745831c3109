//! A peer process of the bench: spawned with piped stdio, its output read line by line on
//! background threads, killed and reaped when dropped.
use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;

use super::procfs::{proc_cpu_seconds, proc_state};

/// `within` from now, or a century when that is not representable (a `--hold` or
/// timeout of `Duration::MAX` means "no bound", not a panic).
pub fn deadline_in(within: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(within)
        .unwrap_or_else(|| now + Duration::from_secs(100 * 365 * 24 * 3600))
}

/// A child process, killed and reaped when dropped; its stdout lines arrive on `out`, its
/// stderr lines on `err` (the last ones are also kept for error messages).
pub struct Proc {
    /// What the process is, for messages (`the tether echo server`).
    pub name: String,
    child: Child,
    _stdin: Option<ChildStdin>,
    out: Receiver<String>,
    err: Receiver<String>,
    err_tail: Arc<Mutex<VecDeque<String>>>,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn line_pump(
    r: impl Read + Send + 'static,
    tail: Option<Arc<Mutex<VecDeque<String>>>>,
) -> Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(r).lines() {
            let Ok(line) = line else { break };
            if let Some(t) = &tail {
                let mut t = t.lock().unwrap_or_else(|e| e.into_inner());
                if t.len() == 20 {
                    t.pop_front();
                }
                t.push_back(line.clone());
            }
            let _ = tx.send(line);
        }
    });
    rx
}

impl Proc {
    pub fn spawn(name: String, mut cmd: Command) -> Result<Proc, String> {
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("cannot start {name} ({cmd:?}): {e}"))?;
        let err_tail = Arc::new(Mutex::new(VecDeque::new()));
        let out = line_pump(child.stdout.take().expect("piped"), None);
        let err = line_pump(
            child.stderr.take().expect("piped"),
            Some(Arc::clone(&err_tail)),
        );
        Ok(Proc {
            name,
            _stdin: child.stdin.take(),
            child,
            out,
            err,
            err_tail,
        })
    }

    pub fn pid(&self) -> String {
        self.child.id().to_string()
    }

    fn stderr_tail(&self) -> String {
        let t = self.err_tail.lock().unwrap_or_else(|e| e.into_inner());
        t.iter().cloned().collect::<Vec<_>>().join("\n    ")
    }

    /// `what` happened to this process, with the last lines of its stderr.
    pub fn failed(&self, what: &str) -> String {
        format!(
            "{} {what}; its stderr:\n    {}",
            self.name,
            self.stderr_tail()
        )
    }

    /// The next line on its stdout, waiting at most `within`.
    pub fn stdout_line(&mut self, within: Duration) -> Result<String, String> {
        self.out
            .recv_timeout(within)
            .map_err(|_| self.failed(&format!("printed no line within {within:?}")))
    }

    /// A server's `listening <addr>` line.
    pub fn listening(&mut self, within: Duration) -> Result<SocketAddr, String> {
        let line = self.stdout_line(within)?;
        line.strip_prefix("listening ")
            .and_then(|a| a.trim().parse().ok())
            .ok_or_else(|| self.failed(&format!("printed {line:?}, not `listening <addr>`")))
    }

    /// Whether the process has exited (reaped or not).
    pub fn exited(&self) -> bool {
        matches!(proc_state(&self.pid()), Some('Z') | None)
    }

    /// Polls `ready` (every 10 ms, at most `within`) until it holds; an error with the
    /// process's stderr when it exits first or `ready` never holds.
    pub fn await_ready(
        &mut self,
        what: &str,
        within: Duration,
        mut ready: impl FnMut() -> bool,
    ) -> Result<(), String> {
        let deadline = deadline_in(within);
        loop {
            if ready() {
                return Ok(());
            }
            if self.exited() {
                std::thread::sleep(Duration::from_millis(50)); // let the stderr pump catch up
                return Err(self.failed(&format!("exited before {what}")));
            }
            if Instant::now() >= deadline {
                return Err(self.failed(&format!("not {what} within {within:?}")));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits for a stderr line starting with `prefix`.
    pub fn await_stderr(&mut self, prefix: &str, within: Duration) -> Result<(), String> {
        let deadline = deadline_in(within);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.err.recv_timeout(left) {
                Ok(l) if l.starts_with(prefix) => return Ok(()),
                Ok(_) => {}
                Err(RecvTimeoutError::Timeout) => {
                    return Err(self.failed(&format!("printed no `{prefix}` within {within:?}")))
                }
                Err(RecvTimeoutError::Disconnected) => {
                    std::thread::sleep(Duration::from_millis(50));
                    return Err(self.failed(&format!("exited before printing `{prefix}`")));
                }
            }
        }
    }

    /// Waits (bounded) for the client to exit 0 and returns its (last) JSON line, parsed.
    pub fn finish<T: DeserializeOwned>(&mut self, within: Duration) -> Result<T, String> {
        let (lines, _) = self.finish_lines(within)?;
        let line = lines
            .into_iter()
            .rfind(|l| l.starts_with('{'))
            .ok_or_else(|| self.failed("printed no JSON line"))?;
        serde_json::from_str(&line)
            .map_err(|e| format!("{}: unexpected JSON line {line:?}: {e}", self.name))
    }

    /// Waits (bounded) for the process to exit 0; returns its stdout lines and the CPU
    /// seconds (user+system) it used in all, read from `/proc` after it exited and before
    /// it is reaped.
    pub fn finish_lines(&mut self, within: Duration) -> Result<(Vec<String>, f64), String> {
        let (status, cpu) = self.wait_exit(within)?;
        let mut lines = Vec::new();
        while let Ok(line) = self.out.recv_timeout(Duration::from_secs(2)) {
            lines.push(line);
        }
        std::thread::sleep(Duration::from_millis(20)); // let the stderr pump catch up
        if !status.success() {
            return Err(self.failed(&format!("failed ({status})")));
        }
        Ok((lines, cpu))
    }

    /// Waits (bounded, killing it after `within`) for the process to exit: its status and
    /// its final CPU seconds (0 when `/proc` could not tell).
    fn wait_exit(&mut self, within: Duration) -> Result<(ExitStatus, f64), String> {
        let deadline = deadline_in(within);
        let pid = self.pid();
        loop {
            // A zombie's CPU times are final; `wait` reaps it, and its `/proc` entry with it.
            if self.exited() {
                let cpu = proc_cpu_seconds(&pid);
                let status = self
                    .child
                    .wait()
                    .map_err(|e| format!("waiting for {}: {e}", self.name))?;
                return Ok((status, cpu));
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                return Err(self.failed(&format!("did not finish within {within:?} (killed)")));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_finished_process_reports_its_lines_and_cpu() {
        let mut c = Command::new("sh");
        c.args([
            "-c",
            "i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done; echo one; echo two",
        ]);
        let mut p = Proc::spawn("a busy shell".into(), c).expect("spawn sh");
        let (lines, cpu) = p.finish_lines(Duration::from_secs(60)).expect("sh exits 0");
        assert_eq!(lines, ["one", "two"]);
        assert!(
            cpu > 0.0,
            "the busy loop's CPU is read before reaping: {cpu}"
        );
    }

    #[test]
    fn a_failing_process_is_an_error_with_its_stderr() {
        let mut c = Command::new("sh");
        c.args(["-c", "echo broken >&2; exit 3"]);
        let mut p = Proc::spawn("a failing shell".into(), c).expect("spawn sh");
        let e = p
            .finish_lines(Duration::from_secs(60))
            .expect_err("exit 3 fails");
        assert!(e.contains("broken") && e.contains('3'), "{e}");
    }
}
