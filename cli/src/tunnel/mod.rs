//! `tether client` and `tether server`: a kcptun 20210922-compatible tunnel (issue 17).
//!
//! TCP connections accepted by the client become smux streams on KCP sessions (pbkdf2 key,
//! crypt, FEC, snappy unless `--nocomp`); the server dials the target for each stream. The
//! command lines, defaults and `-c config.json` keys are kcptun's (kcptun.md §5), so either
//! end can face Debian's `kcptun-client`/`kcptun-server`.
//!
//! Files by concern: [`flags`] (command line, JSON, mode presets, validation), [`config`]
//! (the effective KCP/smux settings and startup lines), [`client`], [`server`], [`pool`]
//! (`--conn`, `--autoexpire`, the scavenger), [`pipe`] (the bidirectional copy with
//! half-close), [`snmp_log`] (`--snmplog` CSV), [`health`] (checksum and silence alarms),
//! [`logging`] (`--log`, tracing), [`in_process`] (both ends as tasks of another command).
mod client;
mod config;
pub mod flags;
mod health;
pub mod in_process;
mod logging;
mod pipe;
mod pool;
mod server;
mod snmp_log;

use std::ffi::OsString;
use std::time::Duration;

use tokio_util::task::TaskTracker;

use config::Settings;
pub use flags::{ClientFlags, ServerFlags};

/// How long open streams may take to finish after SIGINT/SIGTERM.
const DRAIN_LIMIT: Duration = Duration::from_secs(5);

/// Runs `tether client`; the exit code.
pub fn run_client(f: &ClientFlags) -> i32 {
    let mut f = f.clone();
    let resolved = f.resolve();
    let common = f.common.clone();
    start("client", &common, resolved, |s| async move {
        client::run(&f, s).await
    })
}

/// Runs `tether server`; the exit code.
pub fn run_server(f: &ServerFlags) -> i32 {
    let mut f = f.clone();
    let resolved = f.resolve();
    let common = f.common.clone();
    start("server", &common, resolved, |s| async move {
        server::run(&f, s).await
    })
}

/// The shared start: settings, logging, the runtime, the exit code.
fn start<F, Fut>(
    what: &str,
    common: &flags::CommonFlags,
    resolved: Result<(), flags::ConfigError>,
    body: F,
) -> i32
where
    F: FnOnce(Settings) -> Fut,
    Fut: std::future::Future<Output = std::io::Result<()>>,
{
    let settings = resolved.and_then(|()| Settings::new(common));
    let settings = match settings {
        Ok(s) => s,
        Err(e) => {
            eprintln!("tether {what}: {e}");
            return 1;
        }
    };
    if let Err(e) = logging::init(&common.log) {
        eprintln!("tether {what}: --log {}: {e}", common.log);
        return 1;
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("tether {what}: cannot start the runtime: {e}");
            return 1;
        }
    };
    let result = rt.block_on(body(settings));
    rt.shutdown_timeout(Duration::from_millis(200));
    match result {
        Ok(()) => 0,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("tether {what}: {e}");
            1
        }
    }
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

/// Waits (bounded by [`DRAIN_LIMIT`], or until `again`: the second signal) for the open
/// streams to finish.
async fn drain(tracker: &TaskTracker, again: impl std::future::Future<Output = ()>) {
    tracker.close();
    let open = tracker.len();
    if open == 0 {
        tracing::info!("shutting down");
        return;
    }
    tracing::info!(
        "shutting down: waiting up to {} s for {open} open streams",
        DRAIN_LIMIT.as_secs()
    );
    tokio::select! {
        _ = tracker.wait() => tracing::info!("all streams finished"),
        _ = tokio::time::sleep(DRAIN_LIMIT) => tracing::warn!(
            "{} streams still open after {} s: closing them",
            tracker.len(),
            DRAIN_LIMIT.as_secs()
        ),
        _ = again => tracing::warn!("second signal: closing {} streams now", tracker.len()),
    }
}

/// kcptun's flag parser (Go's urfave/cli) also takes long flags with one dash
/// (`-key x`, `-mode=fast3`): for `tether client`/`server` such arguments are rewritten to
/// the two-dash form clap expects. Short flags (`-l`, `-r`, `-t`, `-c`) are left alone.
pub fn go_style_args(args: impl IntoIterator<Item = OsString>) -> Vec<OsString> {
    let mut out: Vec<OsString> = args.into_iter().collect();
    let tunnel = out
        .get(1)
        .and_then(|a| a.to_str())
        .is_some_and(|a| a == "client" || a == "server");
    if !tunnel {
        return out;
    }
    for a in out.iter_mut().skip(2) {
        let Some(s) = a.to_str() else { continue };
        let name = s.strip_prefix('-').filter(|r| !r.starts_with('-'));
        let Some(name) = name else { continue };
        let word = name.split('=').next().unwrap_or("");
        if word.len() > 1 && word.chars().all(|c| c.is_ascii_alphabetic()) {
            *a = OsString::from(format!("-{s}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Client {
        #[command(flatten)]
        f: ClientFlags,
    }

    #[derive(Parser)]
    struct Server {
        #[command(flatten)]
        f: ServerFlags,
    }

    fn client(args: &[&str]) -> ClientFlags {
        Client::try_parse_from(std::iter::once("client").chain(args.iter().copied()))
            .expect("flags parse")
            .f
    }

    fn json_file(text: &str) -> String {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static N: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "tether-tunnel-{}-{}.json",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::write(&path, text).unwrap();
        path.to_string_lossy().into_owned()
    }

    #[test]
    fn kcptun_defaults() {
        let mut f = client(&[]);
        f.resolve().unwrap();
        assert_eq!(
            (f.localaddr.as_str(), f.remoteaddr.as_str()),
            (":12948", "vps:29900")
        );
        assert_eq!(
            (f.common.kcp.sndwnd, f.common.kcp.rcvwnd, f.conn),
            (128, 512, 1)
        );
        let c = &f.common.kcp;
        assert_eq!(
            (c.crypt.as_str(), c.mode.as_str(), c.mtu),
            ("aes", "fast", 1350)
        );
        assert_eq!((c.datashard, c.parityshard, f.common.smuxver), (10, 3, 1));
        // fast's preset, applied after the flags.
        assert_eq!((c.nodelay, c.interval, c.resend, c.nc), (0, 30, 2, 1));
        let mut s = Server::try_parse_from(["server"]).unwrap().f;
        s.resolve().unwrap();
        assert_eq!(
            (s.listen.as_str(), s.target.as_str()),
            (":29900", "127.0.0.1:12948")
        );
        assert_eq!((s.common.kcp.sndwnd, s.common.kcp.rcvwnd), (1024, 1024));
    }

    #[test]
    fn json_keys_present_override_flags_and_unknown_keys_are_ignored() {
        let path = json_file(
            r#"{"remoteaddr": "10.0.0.1:4000", "crypt": "salsa20", "conn": 4,
                "nocomp": true, "smuxver": 2, "no_such_key": [1, 2]}"#,
        );
        let mut f = client(&[
            "-r",
            "1.2.3.4:5",
            "--crypt",
            "none",
            "--mtu",
            "1200",
            "-c",
            &path,
        ]);
        f.resolve().unwrap();
        assert_eq!(f.remoteaddr, "10.0.0.1:4000", "JSON beats the flag");
        assert_eq!(f.common.kcp.crypt, "salsa20");
        assert_eq!(
            f.common.kcp.mtu, 1200,
            "a key absent from JSON keeps the flag"
        );
        assert!(f.common.nocomp);
        assert_eq!((f.conn, f.common.smuxver), (4, 2));
    }

    #[test]
    fn mode_presets_apply_after_json() {
        let path = json_file(r#"{"mode": "fast3", "interval": 77, "nodelay": 0}"#);
        let mut f = client(&["--mode", "normal", "-c", &path]);
        f.resolve().unwrap();
        let c = &f.common.kcp;
        assert_eq!((c.nodelay, c.interval, c.resend, c.nc), (1, 10, 2, 1));
        // Manual mode keeps what JSON said.
        let path = json_file(r#"{"mode": "manual", "interval": 77, "nodelay": 1}"#);
        let mut f = client(&["-c", &path]);
        f.resolve().unwrap();
        assert_eq!((f.common.kcp.nodelay, f.common.kcp.interval), (1, 77));
    }

    #[test]
    fn invalid_values_name_the_flag() {
        for (args, flag) in [
            (&["--smuxver", "3"][..], "--smuxver"),
            (&["--keepalive", "31"][..], "--keepalive"),
            (&["--mtu", "9000"][..], "--mtu"),
            (&["--tcp"][..], "--tcp"),
            (&["--conn", "0"][..], "--conn"),
        ] {
            let mut f = client(args);
            let e = f.resolve().expect_err("invalid").to_string();
            assert!(e.contains(flag), "{args:?}: {e}");
        }
        let mut f = client(&["--datashard", "10", "--parityshard", "0"]);
        f.resolve().unwrap();
        let e = Settings::new(&f.common).expect_err("half FEC");
        assert!(e.to_string().contains("datashard"), "{e}");
        let path = json_file(r#"{"conn": "four"}"#);
        let e = client(&["-c", &path])
            .resolve()
            .expect_err("bad type")
            .to_string();
        assert!(e.contains("\"conn\""), "{e}");
        let path = json_file("not json");
        let e = client(&["-c", &path])
            .resolve()
            .expect_err("bad file")
            .to_string();
        assert!(e.contains("not a JSON object"), "{e}");
    }

    #[test]
    fn go_style_single_dash_long_flags() {
        let args = [
            "tether",
            "client",
            "-l",
            "127.0.0.1:1",
            "-key",
            "k",
            "-mode=fast3",
            "-5",
        ];
        let out = go_style_args(args.iter().map(OsString::from));
        let out: Vec<_> = out.iter().map(|a| a.to_str().unwrap()).collect();
        assert_eq!(
            out,
            [
                "tether",
                "client",
                "-l",
                "127.0.0.1:1",
                "--key",
                "k",
                "--mode=fast3",
                "-5"
            ]
        );
        let other = ["tether", "cat", "-key"].map(OsString::from);
        assert_eq!(go_style_args(other.clone()), other.to_vec());
    }
}
