//! `tether bench-reuseport`: several bulk clients at once against one listener, aggregate
//! throughput, for tether with one socket task (`--reuseport 1`), tether with one socket
//! task per core (`SO_REUSEPORT`), and kcp-go (whose listener uses every core through
//! goroutines), side by side. Each server is measured with its own implementation's
//! clients, all started together: `tether cat --listen --keep-open --echo` against
//! `tether bench-peer --role bulk`, and `kcppeer --role echo` against `kcppeer --role bulk`.
use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use clap::Args;

use crate::units::parse_size;

/// Flags of `tether bench-reuseport`.
#[derive(Debug, Clone, Args)]
pub struct ReuseportArgs {
    /// Concurrent bulk clients (one process and one UDP socket each).
    #[arg(long, default_value_t = 4)]
    pub clients: usize,
    /// Bytes each client sends through the echo server (and reads back).
    #[arg(long, default_value = "32MiB", value_parser = parse_size)]
    pub bytes: u64,
    /// Sockets of the multi-socket tether listener (default: the number of cores).
    #[arg(long)]
    pub sockets: Option<usize>,
    /// The kcp-go peer (default: <target>/go-bin/kcppeer, built by `tether bench`).
    #[arg(long)]
    pub kcppeer: Option<PathBuf>,
    /// kcptun crypt name for both implementations (none: measure the transport, not AES).
    #[arg(long, default_value = "none")]
    pub crypt: String,
}

/// The KCP flags both implementations get (the `tether bench` ones, FEC off).
fn kcp_flags(crypt: &str) -> Vec<String> {
    [
        "--crypt",
        crypt,
        "--datashard",
        "0",
        "--parityshard",
        "0",
        "--mode",
        "fast",
        "--sndwnd",
        "1024",
        "--rcvwnd",
        "1024",
        "--mtu",
        "1350",
    ]
    .map(String::from)
    .to_vec()
}

/// A child killed and reaped when dropped.
struct Kill(Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One measured server: how to start it and its clients.
struct Server {
    name: String,
    cmd: Command,
    /// The readiness line's prefix; the address follows it.
    ready: &'static str,
    client: Box<dyn Fn(SocketAddr, u64) -> Command>,
}

/// What one server's run gave.
struct Outcome {
    mb_per_s: f64,
    wall: f64,
    slowest: f64,
    /// CPU seconds of the server and its clients together, per GB moved one way.
    cpu_per_gb: f64,
}

/// User+system CPU seconds of this process's reaped children (`/proc/self/stat` cutime and
/// cstime, in 1/100 s): every server and client of a run once they exited.
fn children_cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // Fields after the command name (which may hold spaces) start at field 3.
    let Some(rest) = stat.rfind(')').and_then(|i| stat.get(i + 1..)) else {
        return 0.0;
    };
    let f: Vec<u64> = rest
        .split_whitespace()
        .skip(13)
        .take(2)
        .filter_map(|v| v.parse().ok())
        .collect();
    f.iter().sum::<u64>() as f64 / 100.0
}

/// The first line of `r` starting with `prefix`, as the address after it (within 20 s).
fn await_addr(r: impl Read + Send + 'static, prefix: &'static str) -> Result<SocketAddr, String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(r).lines().map_while(Result::ok) {
            if let Some(rest) = line.strip_prefix(prefix) {
                let addr = rest.split_whitespace().next().unwrap_or("").to_string();
                let _ = tx.send(addr);
            }
        }
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(20))
        .map_err(|_| format!("the server printed no `{prefix}<addr>` line within 20 s"))?;
    addr.parse()
        .map_err(|e| format!("the server's address {addr:?}: {e}"))
}

fn run_server(s: &mut Server, args: &ReuseportArgs) -> Result<Outcome, String> {
    let (out, err) = match s.ready {
        "listening " => (Stdio::piped(), Stdio::null()),
        _ => (Stdio::null(), Stdio::piped()),
    };
    let mut child = s
        .cmd
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .map_err(|e| format!("cannot start the {} server: {e}", s.name))?;
    let pipe: Box<dyn Read + Send> = match (child.stdout.take(), child.stderr.take()) {
        (Some(o), _) => Box::new(o),
        (None, Some(e)) => Box::new(e),
        (None, None) => return Err("no pipe to the server".into()),
    };
    let cpu0 = children_cpu_seconds();
    let server = Kill(child);
    let addr = await_addr(pipe, s.ready)?;
    let start = Instant::now();
    let mut clients = Vec::with_capacity(args.clients);
    for i in 0..args.clients {
        let mut c = (s.client)(addr, i as u64 + 1);
        c.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let child = c
            .spawn()
            .map_err(|e| format!("cannot start a {} client: {e}", s.name))?;
        clients.push(Kill(child));
    }
    let mut slowest = 0f64;
    for mut c in clients {
        let mut out = String::new();
        let mut err = String::new();
        if let Some(mut o) = c.0.stdout.take() {
            let _ = o.read_to_string(&mut out);
        }
        if let Some(mut e) = c.0.stderr.take() {
            let _ = e.read_to_string(&mut err);
        }
        let status = c.0.wait().map_err(|e| e.to_string())?;
        if !status.success() {
            return Err(format!("a {} client failed ({status}): {err}", s.name));
        }
        slowest = slowest.max(client_seconds(&out).ok_or_else(|| {
            format!(
                "a {} client printed no JSON with `seconds`: {out:?}",
                s.name
            )
        })?);
    }
    let wall = start.elapsed().as_secs_f64();
    drop(server);
    let total = (args.bytes * args.clients as u64) as f64;
    Ok(Outcome {
        mb_per_s: total / wall / 1e6,
        wall,
        slowest,
        cpu_per_gb: (children_cpu_seconds() - cpu0) / (total / 1e9),
    })
}

/// `seconds` of a bulk client's JSON line (both peers print one).
fn client_seconds(out: &str) -> Option<f64> {
    let line = out.lines().find(|l| l.starts_with('{'))?;
    let v: serde_json::Value = serde_json::from_str(line).ok()?;
    v.get("seconds")?.as_f64()
}

/// The tether binary running now, and the kcp-go peer.
fn binaries(args: &ReuseportArgs) -> Result<(PathBuf, PathBuf), String> {
    let me = std::env::current_exe().map_err(|e| format!("locating tether itself: {e}"))?;
    let go = match &args.kcppeer {
        Some(p) => p.clone(),
        None => {
            let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(
                || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"),
                PathBuf::from,
            );
            target.join("go-bin/kcppeer")
        }
    };
    if !go.is_file() {
        return Err(format!(
            "no kcp-go peer at {}: run `tether bench` once (it builds it) or pass --kcppeer PATH",
            go.display()
        ));
    }
    Ok((me, go))
}

/// The three servers, in the order they are measured.
fn servers(args: &ReuseportArgs, me: &PathBuf, go: &PathBuf) -> Vec<Server> {
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    let n = args.sockets.unwrap_or(cores);
    let flags = kcp_flags(&args.crypt);
    let bytes = args.bytes;
    let tether = |sockets: usize| {
        let mut cmd = Command::new(me);
        cmd.args([
            "cat",
            "--listen",
            "127.0.0.1:0",
            "--keep-open",
            "--echo",
            "--quiet",
        ])
        .args(["--reuseport", &sockets.to_string()])
        .args(&flags);
        let (me, flags) = (me.clone(), flags.clone());
        Server {
            name: format!("tether, {sockets} socket(s)"),
            cmd,
            ready: "tether cat: listening on ",
            client: Box::new(move |addr, seed| {
                let mut c = Command::new(&me);
                c.args([
                    "bench-peer",
                    "--role",
                    "bulk",
                    "--connect",
                    &addr.to_string(),
                ])
                .args(["--bytes", &bytes.to_string(), "--seed", &seed.to_string()])
                .args(&flags);
                c
            }),
        }
    };
    let mut cmd = Command::new(go);
    cmd.args([
        "--listen",
        "127.0.0.1:0",
        "--role",
        "echo",
        "--quiet",
        "--timeout",
        "0s",
    ])
    .args(&flags);
    let (go2, flags2) = (go.clone(), flags.clone());
    let kcpgo = Server {
        name: "kcp-go (goroutines)".into(),
        cmd,
        ready: "listening ",
        client: Box::new(move |addr, seed| {
            let mut c = Command::new(&go2);
            c.args(["--role", "bulk", "--connect", &addr.to_string()])
                .args(["--bytes", &bytes.to_string(), "--seed", &seed.to_string()])
                .args(&flags2);
            c
        }),
    };
    vec![tether(1), tether(n), kcpgo]
}

fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

/// Runs `tether bench-reuseport`; returns the exit code.
pub fn run(args: &ReuseportArgs) -> i32 {
    let (me, go) = match binaries(args) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("tether bench-reuseport: {e}");
            return 2;
        }
    };
    println!(
        "{} concurrent bulk clients x {:.0} MiB each way, crypt {}, no FEC, --mode fast, windows 1024, mtu 1350; {} cores, load {} at start",
        args.clients,
        args.bytes as f64 / f64::from(1 << 20),
        args.crypt,
        std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get),
        load()
    );
    println!(
        "\n| server | aggregate MB/s (one way) | wall s | slowest client s |\n|---|---:|---:|---:|"
    );
    let mut first = None;
    for mut s in servers(args, &me, &go) {
        match run_server(&mut s, args) {
            Ok(o) => {
                let base = *first.get_or_insert(o.mb_per_s);
                println!(
                    "| {} | {:.1} ({:.2}x) | {:.2} | {:.2} | {:.1} |",
                    s.name,
                    o.mb_per_s,
                    o.mb_per_s / base,
                    o.wall,
                    o.slowest,
                    o.cpu_per_gb
                );
            }
            Err(e) => {
                eprintln!("tether bench-reuseport: {}: {e}", s.name);
                return 1;
            }
        }
    }
    println!("\nload at the end: {}", load());
    0
}
