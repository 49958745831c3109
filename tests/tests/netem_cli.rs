//! `tether netem` as a user runs it: the built binary, spawned with `--listen 127.0.0.1:0`,
//! its readiness line parsed, real datagrams pushed through it to a local echo socket.
//!
//! The binary is found next to this test's own executable (`target/<profile>/tether`) and
//! built with `cargo build -p tether-cli` first (a no-op when it is fresh); set
//! `TETHER_BIN=/path/to/tether` to use another one.
use std::collections::HashSet;
use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, ChildStderr, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Bound on building the binary (a fresh workspace build of the CLI included).
const BUILD_LIMIT: Duration = Duration::from_secs(600);
/// Bound on waiting for the readiness line or for the process to exit.
const PROCESS_LIMIT: Duration = Duration::from_secs(20);

/// The `tether` binary, built once per test process.
fn tether_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(path) = std::env::var_os("TETHER_BIN") {
            return PathBuf::from(path);
        }
        // <target>/<profile>/deps/netem_cli-<hash>
        let exe = std::env::current_exe().expect("current_exe");
        let profile_dir = exe
            .parent()
            .and_then(|deps| deps.parent())
            .expect("test executable lives in <target>/<profile>/deps");
        let target_dir = profile_dir.parent().expect("<target>");
        let profile = profile_dir
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("debug")
            .to_string();
        let bin = profile_dir.join(format!("tether{}", std::env::consts::EXE_SUFFIX));
        build(&profile, target_dir, &bin);
        assert!(bin.exists(), "{} was not built", bin.display());
        bin
    })
    .clone()
}

/// `cargo build -p tether-cli` into the same target directory and profile, bounded.
fn build(profile: &str, target_dir: &std::path::Path, bin: &std::path::Path) {
    let cargo = std::env::var_os("CARGO")
        .or_else(|| option_env!("CARGO").map(Into::into))
        .unwrap_or_else(|| "cargo".into());
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml");
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "--quiet", "-p", "tether-cli", "--bin", "tether"])
        .arg("--manifest-path")
        .arg(&manifest)
        .env("CARGO_TARGET_DIR", target_dir)
        .stdin(Stdio::null());
    if profile != "debug" {
        cmd.args(["--profile", profile]);
    }
    let mut child = cmd.spawn().expect("spawn cargo build");
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("wait for cargo build") {
            assert!(
                status.success() || bin.exists(),
                "cargo build -p tether-cli failed: {status}"
            );
            return;
        }
        if start.elapsed() > BUILD_LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            assert!(bin.exists(), "cargo build -p tether-cli timed out");
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A running `tether netem`, killed on drop.
struct Netem {
    child: Child,
    listen: SocketAddr,
}

impl Netem {
    /// Spawns `tether netem --listen 127.0.0.1:0 --forward <forward> <extra...>` and waits
    /// for its readiness line.
    fn spawn(forward: SocketAddr, extra: &[&str]) -> Self {
        let mut child = Command::new(tether_bin())
            .args(["netem", "--listen", "127.0.0.1:0", "--forward"])
            .arg(forward.to_string())
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn tether netem");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        // Kill the child if the line never comes (the guard's drop does it).
        let mut netem = Netem {
            child,
            listen: "0.0.0.0:0".parse().unwrap(),
        };
        let line = rx
            .recv_timeout(PROCESS_LIMIT)
            .expect("no readiness line from tether netem");
        let rest = line
            .trim_end()
            .strip_prefix("netem listening on ")
            .unwrap_or_else(|| panic!("unexpected readiness line {line:?}"));
        let (listen, fwd) = rest
            .split_once(" forwarding to ")
            .unwrap_or_else(|| panic!("unexpected readiness line {line:?}"));
        netem.listen = listen.parse().expect("listen address");
        assert_ne!(netem.listen.port(), 0, "the actual port is printed");
        assert_eq!(fwd.parse::<SocketAddr>().unwrap(), forward);
        netem
    }

    /// Waits (bounded) for the process to exit by itself and returns its stderr.
    fn wait_for_exit(mut self) -> String {
        let mut stderr: ChildStderr = self.child.stderr.take().expect("stderr");
        let reader = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text);
            text
        });
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                assert!(status.success(), "tether netem exited with {status}");
                break;
            }
            assert!(
                start.elapsed() < PROCESS_LIMIT,
                "tether netem did not stop after --duration"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        reader.join().expect("stderr reader")
    }
}

impl Drop for Netem {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A UDP echo server on loopback, running on its own thread until dropped.
struct Echo {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    served: Arc<AtomicU64>,
    thread: Option<JoinHandle<()>>,
}

impl Echo {
    fn start() -> Self {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(20)))
            .unwrap();
        let addr = sock.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let served = Arc::new(AtomicU64::new(0));
        let (s, n) = (stop.clone(), served.clone());
        let thread = std::thread::spawn(move || {
            let mut buf = vec![0u8; 65_535];
            while !s.load(Ordering::Relaxed) {
                if let Ok((len, from)) = sock.recv_from(&mut buf) {
                    n.fetch_add(1, Ordering::Relaxed);
                    let _ = sock.send_to(&buf[..len], from);
                }
            }
        });
        Echo {
            addr,
            stop,
            served,
            thread: Some(thread),
        }
    }
}

impl Drop for Echo {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Sends `n` numbered datagrams through `to` with at most `window` unanswered and returns
/// the distinct numbers echoed back; panics if an echo does not come within 5 s.
fn windowed_echo(to: SocketAddr, n: u32, window: u32) -> HashSet<u32> {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.connect(to).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut got = HashSet::new();
    let mut next = 0u32;
    let mut buf = [0u8; 64];
    while (got.len() as u32) < n {
        while next < n && next - got.len() as u32 <= window {
            sock.send(&next.to_be_bytes()).unwrap();
            next += 1;
        }
        let len = sock
            .recv(&mut buf)
            .unwrap_or_else(|e| panic!("echo {} of {n} missing: {e}", got.len()));
        assert_eq!(len, 4);
        got.insert(u32::from_be_bytes(buf[..4].try_into().unwrap()));
    }
    got
}

#[test]
fn lossless_netem_passes_every_datagram_to_the_server_and_back() {
    let echo = Echo::start();
    let netem = Netem::spawn(echo.addr, &["--loss", "0%", "--seed", "1", "--quiet"]);
    let got = windowed_echo(netem.listen, 500, 32);
    assert_eq!(got, (0..500).collect::<HashSet<u32>>());
    assert_eq!(echo.served.load(Ordering::Relaxed), 500);
    drop(netem);
}

#[test]
fn delay_shows_in_the_round_trip_and_counters_print_on_exit() {
    let echo = Echo::start();
    let netem = Netem::spawn(echo.addr, &["--delay", "30ms", "--duration", "3s"]);
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.connect(netem.listen).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = [0u8; 16];
    for i in 0..10u8 {
        let sent = Instant::now();
        sock.send(&[i]).unwrap();
        let n = sock.recv(&mut buf).expect("echo through netem");
        assert_eq!(&buf[..n], &[i]);
        let rtt = sent.elapsed();
        assert!(rtt >= Duration::from_millis(60), "rtt {rtt:?}");
    }
    let stderr = netem.wait_for_exit();
    assert!(stderr.contains("stopped after"), "{stderr}");
    assert!(
        stderr.contains("client->server: sent=10 delivered=10 lost=0"),
        "{stderr}"
    );
    assert!(
        stderr.contains("server->client: sent=10 delivered=10 lost=0"),
        "{stderr}"
    );
    assert!(
        stderr.contains("netem: client 127.0.0.1:"),
        "not --quiet: clients are logged\n{stderr}"
    );
}
