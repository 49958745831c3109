//! The kcptun tunnel, live over loopback: `tether client`/`tether server` against Debian's
//! `kcptun-client`/`kcptun-server` (kcptun 20210922), both directions, and tether against
//! itself. Every row pushes 8 concurrent TCP connections of 2 MiB each through the tunnel to a
//! TCP echo target and compares sha256 digests. Rows (the same flags on both ends, as kcptun
//! requires): the defaults (aes, fast, FEC 10/3, snappy, smux v1); crypt none + nocomp + no
//! FEC + smux v2; salsa20 + fast3 + FEC 5/5; the defaults again through `tether netem` at 5 %
//! loss; and a key mismatch, where no byte may arrive and tether must say why ("packets fail
//! checksum: peer key or crypt differs?" on a server, "no answer from the server" on a
//! client, which cannot tell a wrong key from a dead server).
//!
//! Each case has its own ports; the harness runs them in parallel. In CI (`CI=true`) a
//! missing kcptun fails these tests; it never skips.
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tether_tests::tether_bin::Netem;
use tether_tests::tunnel::{
    echo_target, echo_through, free_port, require_kcptun, start_end, End, Impl,
};

const CONNS: usize = 8;
const BYTES: usize = 2 << 20;
/// Bound on one connection's echo.
const CONN_LIMIT: Duration = Duration::from_secs(60);

const DEFAULTS: &[&str] = &[];
const PLAIN: &[&str] = &[
    "--crypt",
    "none",
    "--nocomp",
    "--datashard",
    "0",
    "--parityshard",
    "0",
    "--smuxver",
    "2",
];
const SALSA: &[&str] = &[
    "--crypt",
    "salsa20",
    "--mode",
    "fast3",
    "--datashard",
    "5",
    "--parityshard",
    "5",
];

fn args(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// A tunnel: server end forwarding to an echo target, client end on a TCP port; `netem`
/// flags put `tether netem` between them.
struct Tunnel {
    client: End,
    server: End,
    local: SocketAddr,
    _netem: Option<Netem>,
}

fn tunnel(
    client: Impl,
    server: Impl,
    flags: &[&str],
    keys: (&str, &str),
    netem: Option<&[&str]>,
) -> Tunnel {
    tunnel_with(client, server, flags, &[], keys, netem)
}

fn tunnel_with(
    client: Impl,
    server: Impl,
    flags: &[&str],
    client_only: &[&str],
    keys: (&str, &str),
    netem: Option<&[&str]>,
) -> Tunnel {
    let target = echo_target();
    let udp: SocketAddr = format!("127.0.0.1:{}", free_port(true)).parse().unwrap();
    let mut s = args(&[
        "-l",
        &udp.to_string(),
        "-t",
        &target.to_string(),
        "--key",
        keys.1,
    ]);
    s.extend(args(flags));
    let server = start_end(server, "server", &s);
    let netem = netem.map(|n| Netem::spawn(udp, n));
    let remote = netem.as_ref().map_or(udp, |n| n.listen);
    let local: SocketAddr = format!("127.0.0.1:{}", free_port(false)).parse().unwrap();
    let mut c = args(&[
        "-l",
        &local.to_string(),
        "-r",
        &remote.to_string(),
        "--key",
        keys.0,
    ]);
    c.extend(args(flags));
    c.extend(args(client_only));
    let client = start_end(client, "client", &c);
    Tunnel {
        client,
        server,
        local,
        _netem: netem,
    }
}

/// 8 × 2 MiB echoed through, all at once; panics with both logs on any failure.
fn transfer(t: &Tunnel, half_close: bool) {
    let handles: Vec<_> = (0..CONNS)
        .map(|i| {
            let local = t.local;
            std::thread::spawn(move || {
                echo_through(local, i as u64 + 1, BYTES, half_close, CONN_LIMIT)
            })
        })
        .collect();
    let failures: Vec<String> = handles
        .into_iter()
        .enumerate()
        .filter_map(|(i, h)| match h.join() {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(format!("connection {i}: {e}")),
            Err(_) => Some(format!("connection {i}: panicked")),
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{failures:#?}\n--- client log:\n{}\n--- server log:\n{}",
        t.client.log_text(),
        t.server.log_text()
    );
}

fn row(client: Impl, server: Impl, flags: &[&str]) {
    if (client == Impl::Kcptun || server == Impl::Kcptun) && !require_kcptun() {
        return;
    }
    let t = tunnel(client, server, flags, ("interop key", "interop key"), None);
    // kcptun closes both directions at the first FIN: only tether↔tether half-closes.
    transfer(&t, client == Impl::Tether && server == Impl::Tether);
}

#[test]
fn tether_client_to_kcptun_server_defaults() {
    row(Impl::Tether, Impl::Kcptun, DEFAULTS);
}

#[test]
fn kcptun_client_to_tether_server_defaults() {
    row(Impl::Kcptun, Impl::Tether, DEFAULTS);
}

#[test]
fn tether_client_to_kcptun_server_plain_smux_v2() {
    row(Impl::Tether, Impl::Kcptun, PLAIN);
}

#[test]
fn kcptun_client_to_tether_server_plain_smux_v2() {
    row(Impl::Kcptun, Impl::Tether, PLAIN);
}

#[test]
fn tether_client_to_kcptun_server_salsa20_fast3_fec_5_5() {
    row(Impl::Tether, Impl::Kcptun, SALSA);
}

#[test]
fn kcptun_client_to_tether_server_salsa20_fast3_fec_5_5() {
    row(Impl::Kcptun, Impl::Tether, SALSA);
}

#[test]
fn tether_to_tether_every_row_with_half_close() {
    for flags in [DEFAULTS, PLAIN, SALSA] {
        row(Impl::Tether, Impl::Tether, flags);
    }
}

const NETEM: &[&str] = &["--loss", "5%", "--seed", "7", "--quiet"];

#[test]
fn defaults_through_netem_at_5_percent_loss_both_directions() {
    if !require_kcptun() {
        return;
    }
    for (c, s) in [(Impl::Tether, Impl::Kcptun), (Impl::Kcptun, Impl::Tether)] {
        let t = tunnel(c, s, DEFAULTS, ("interop key", "interop key"), Some(NETEM));
        transfer(&t, false);
    }
}

/// A key mismatch: no byte comes back, and tether's log says why.
fn mismatch(client: Impl, server: Impl, needle: &str) {
    if !require_kcptun() {
        return;
    }
    let t = tunnel(client, server, DEFAULTS, ("client key", "server key"), None);
    let r = echo_through(t.local, 1, 64 << 10, false, Duration::from_secs(7));
    assert!(r.is_err(), "data crossed a tunnel whose keys differ");
    assert!(
        r.as_ref().unwrap_err().contains("0 of"),
        "some bytes arrived: {r:?}"
    );
    let tether = if client == Impl::Tether {
        &t.client
    } else {
        &t.server
    };
    assert!(
        tether.wait_for(needle, Duration::from_secs(10)),
        "tether did not log {needle:?}:\n{}",
        tether.log_text()
    );
}

#[test]
fn key_mismatch_kcptun_client_to_tether_server_logs_checksum_failures() {
    mismatch(
        Impl::Kcptun,
        Impl::Tether,
        "packets fail checksum: peer key or crypt differs?",
    );
}

#[test]
fn key_mismatch_tether_client_to_kcptun_server_logs_no_answer() {
    mismatch(Impl::Tether, Impl::Kcptun, "no answer from the server");
}

#[test]
fn invalid_config_is_an_error_naming_the_flag() {
    for (args, flag) in [
        (&["client", "--smuxver", "3"][..], "--smuxver"),
        (&["server", "--tcp"][..], "not supported"),
        (&["client", "--keepalive", "0"][..], "--keepalive"),
        (
            &["server", "-c", "/nonexistent/tether.json"][..],
            "cannot read config file",
        ),
    ] {
        let out = std::process::Command::new(tether_tests::tether_bin::tether_bin())
            .args(args)
            .output()
            .expect("run tether");
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(flag), "{args:?}: {err}");
    }
}

#[test]
fn snmp_csv_rows_and_a_graceful_sigterm_that_drains_open_streams() {
    let dir = tether_tests::go::target_dir()
        .join("interop-kcptun")
        .join(format!("snmp-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let layout = dir.join("snmp-20060102.csv");
    let snmp = ["--snmplog", layout.to_str().unwrap(), "--snmpperiod", "1"];
    let t = tunnel(Impl::Tether, Impl::Tether, &snmp, ("k", "k"), None);
    // A connection that stays open across the signal.
    let mut open = std::net::TcpStream::connect(t.local).unwrap();
    open.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    use std::io::{Read, Write};
    open.write_all(b"before").unwrap();
    let mut buf = [0u8; 6];
    open.read_exact(&mut buf).unwrap();
    // Both ends write rows into the same dated file (one header per empty file, 25
    // columns): wait until it holds the header and a row from each end.
    let deadline = Instant::now() + Duration::from_secs(10);
    let files: Vec<_> = loop {
        let files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .collect();
        let rows = files
            .first()
            .and_then(|f| std::fs::read_to_string(f).ok())
            .map_or(0, |t| t.lines().count());
        if rows >= 3 || Instant::now() > deadline {
            break files;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(files.len(), 1, "{files:?}");
    let name = files[0].file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        name.starts_with("snmp-20") && name.len() == "snmp-20261203.csv".len(),
        "{name}"
    );
    let text = std::fs::read_to_string(&files[0]).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].starts_with("Unix,BytesSent,BytesReceived,MaxConn,"),
        "{text}"
    );
    assert_eq!(
        lines.iter().filter(|l| l.starts_with("Unix")).count(),
        1,
        "{text}"
    );
    assert!(
        lines.len() >= 3 && lines.iter().all(|l| l.split(',').count() == 25),
        "{text}"
    );

    let pid = t.client.pid().to_string();
    let kill = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(kill.success());
    assert!(
        t.client.wait_for("shutting down", Duration::from_secs(5)),
        "{}",
        t.client.log_text()
    );
    // Draining: the open stream still carries data, then closes normally.
    open.write_all(b"during").unwrap();
    open.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"during");
    open.shutdown(std::net::Shutdown::Write).unwrap();
    assert_eq!(open.read(&mut buf).unwrap(), 0);
    let mut client = t.client;
    let status = client.wait_exit(Duration::from_secs(8));
    assert_eq!(status.code(), Some(0), "{}", client.log_text());
    assert!(
        client.log_text().contains("all streams finished"),
        "{}",
        client.log_text()
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// `--conn 3 --autoexpire 1 --scavengettl 1`: sessions rotate, expired ones are scavenged,
/// and every connection still gets through.
#[test]
fn pool_rotation_autoexpire_and_scavenger() {
    let pool = ["--conn", "3", "--autoexpire", "1", "--scavengettl", "1"];
    let t = tunnel_with(Impl::Tether, Impl::Tether, &[], &pool, ("k", "k"), None);
    for i in 0..12 {
        echo_through(t.local, i, 32 << 10, true, Duration::from_secs(20))
            .unwrap_or_else(|e| panic!("connection {i}: {e}\n{}", t.client.log_text()));
        std::thread::sleep(Duration::from_millis(300));
    }
    assert!(
        t.client
            .wait_for("scavenger: session", Duration::from_secs(5)),
        "{}",
        t.client.log_text()
    );
    let sessions = t.client.log_text().matches("on connection:").count();
    assert!(
        sessions >= 4,
        "expected rotated sessions, saw {sessions}:\n{}",
        t.client.log_text()
    );
}

/// A target that is not `host:port` is a unix socket path; a target that refuses closes the
/// stream, so the local connection ends at once instead of hanging.
#[test]
fn unix_socket_target_and_a_refusing_target() {
    let dir = tether_tests::go::target_dir().join("interop-kcptun");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("echo-{}.sock", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let l = std::os::unix::net::UnixListener::bind(&path).unwrap();
    std::thread::spawn(move || {
        for c in l.incoming().flatten() {
            std::thread::spawn(move || {
                let mut r = c.try_clone().unwrap();
                let mut w = c;
                let _ = std::io::copy(&mut r, &mut w);
                let _ = w.shutdown(std::net::Shutdown::Write);
            });
        }
    });
    let udp = format!("127.0.0.1:{}", free_port(true));
    let s = args(&["-l", &udp, "-t", path.to_str().unwrap(), "--key", "k"]);
    let _server = start_end(Impl::Tether, "server", &s);
    let local = format!("127.0.0.1:{}", free_port(false));
    let c = args(&["-l", &local, "-r", &udp, "--key", "k"]);
    let client = start_end(Impl::Tether, "client", &c);
    let local: SocketAddr = local.parse().unwrap();
    echo_through(local, 9, 256 << 10, true, Duration::from_secs(20))
        .unwrap_or_else(|e| panic!("{e}\n{}", client.log_text()));
    let _ = std::fs::remove_file(&path);

    // Nothing listens on the target port: the stream is closed, the TCP connection ends.
    let dead = format!("127.0.0.1:{}", free_port(false));
    let udp = format!("127.0.0.1:{}", free_port(true));
    let server = start_end(
        Impl::Tether,
        "server",
        &args(&["-l", &udp, "-t", &dead, "--key", "k"]),
    );
    let local = format!("127.0.0.1:{}", free_port(false));
    let _client = start_end(
        Impl::Tether,
        "client",
        &args(&["-l", &local, "-r", &udp, "--key", "k"]),
    );
    let local: SocketAddr = local.parse().unwrap();
    let start = Instant::now();
    let r = echo_through(local, 1, 1024, false, Duration::from_secs(10));
    assert!(
        r.as_ref().is_err_and(|e| e.contains("end of stream")),
        "{r:?}"
    );
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "took {:?}",
        start.elapsed()
    );
    assert!(
        server.wait_for("cannot reach the target", Duration::from_secs(5)),
        "{}",
        server.log_text()
    );
}

/// The same `-c config.json` (kcptun's keys) read by kcptun-server and by tether client;
/// flags not in the file (addresses) still apply.
#[test]
fn one_json_config_for_kcptun_server_and_tether_client() {
    if !require_kcptun() {
        return;
    }
    let dir = tether_tests::go::target_dir().join("interop-kcptun");
    std::fs::create_dir_all(&dir).unwrap();
    let json = dir.join(format!("shared-{}.json", std::process::id()));
    std::fs::write(
        &json,
        r#"{"key": "from json", "crypt": "aes-128", "mode": "fast2", "nocomp": true,
            "smuxver": 2, "datashard": 4, "parityshard": 2, "unknown_key": 1}"#,
    )
    .unwrap();
    let c = ["-c", json.to_str().unwrap()];
    let t = tunnel(
        Impl::Tether,
        Impl::Kcptun,
        &c,
        ("not this", "nor this"),
        None,
    );
    let log = t.client.log_text();
    assert!(
        log.contains("encryption: aes-128") && log.contains("nodelay parameters: 1 20 2 1"),
        "{log}"
    );
    transfer(&t, false);
    let _ = std::fs::remove_file(&json);
}

/// Nothing listens at `-r`: the client says so within seconds instead of hanging silently.
#[test]
fn an_unreachable_server_is_reported() {
    let udp = format!("127.0.0.1:{}", free_port(true));
    let local = format!("127.0.0.1:{}", free_port(false));
    let client = start_end(Impl::Tether, "client", &args(&["-l", &local, "-r", &udp]));
    let mut s = std::net::TcpStream::connect(&local).unwrap();
    use std::io::Write;
    s.write_all(b"hello?").unwrap();
    assert!(
        client.wait_for("no answer from the server", Duration::from_secs(12)),
        "{}",
        client.log_text()
    );
}

/// SIGTERM to the server: no new sessions are taken, the open stream finishes, exit 0.
#[test]
fn server_sigterm_drains_then_exits() {
    use std::io::{Read, Write};
    let t = tunnel(Impl::Tether, Impl::Tether, &[], ("k", "k"), None);
    let mut open = std::net::TcpStream::connect(t.local).unwrap();
    open.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut buf = [0u8; 5];
    open.write_all(b"first").unwrap();
    open.read_exact(&mut buf).unwrap();
    let pid = t.server.pid().to_string();
    assert!(std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    assert!(
        t.server.wait_for("shutting down", Duration::from_secs(5)),
        "{}",
        t.server.log_text()
    );
    open.write_all(b"again").unwrap();
    open.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"again");
    open.shutdown(std::net::Shutdown::Write).unwrap();
    assert_eq!(open.read(&mut buf).unwrap(), 0);
    let mut server = t.server;
    let status = server.wait_exit(Duration::from_secs(8));
    assert_eq!(status.code(), Some(0), "{}", server.log_text());
}
