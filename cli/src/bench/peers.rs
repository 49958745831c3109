//! The two implementations under test and how their peer processes are started with one
//! setting's flags.
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use super::child::Proc;
use super::settings::{Impl, Setting};

/// Where the two peers come from.
pub struct Peers {
    /// The kcp-go peer (tests/go/kcppeer).
    pub go: PathBuf,
    /// This binary (`tether bench-peer`).
    pub rust: PathBuf,
    /// tokio worker threads of tether's peers.
    pub threads: usize,
}

impl Peers {
    /// `imp`'s peer with setting `s`'s flags, kcptun's bench flags and `extra`.
    fn command(&self, imp: Impl, s: &Setting, extra: &[String]) -> Command {
        let mut c = match imp {
            Impl::KcpGo => Command::new(&self.go),
            Impl::Tether => {
                let mut c = Command::new(&self.rust);
                c.arg("bench-peer")
                    .args(["--threads", &self.threads.to_string()]);
                c
            }
        };
        // Go's flag package accepts `--name value` as well as `-name value`.
        c.args(["--crypt", s.crypt, "--key", "it's a secrect"])
            .args([
                "--datashard",
                &s.ds.to_string(),
                "--parityshard",
                &s.ps.to_string(),
            ])
            .args([
                "--mode", "fast", "--sndwnd", "1024", "--rcvwnd", "1024", "--mtu", "1350",
            ])
            .args(extra);
        c
    }

    /// Starts `imp`'s echo server with setting `s`; it and the address it listens on.
    pub fn server(&self, imp: Impl, s: &Setting) -> Result<(Proc, SocketAddr), String> {
        self.server_with(imp, s, &[])
    }

    /// [`Peers::server`] with `more` flags for the server.
    pub fn server_with(
        &self,
        imp: Impl,
        s: &Setting,
        more: &[String],
    ) -> Result<(Proc, SocketAddr), String> {
        let mut extra: Vec<String> = [
            "--listen",
            "127.0.0.1:0",
            "--role",
            "echo",
            "--quiet",
            "--parentwatch",
            "--timeout",
            "0s",
        ]
        .map(String::from)
        .to_vec();
        extra.extend_from_slice(more);
        let mut p = Proc::spawn(
            format!("the {} echo server", imp.name()),
            self.command(imp, s, &extra),
        )?;
        let addr = p.listening(Duration::from_secs(20))?;
        Ok((p, addr))
    }

    /// Starts `imp`'s `role` client against `addr`, bounded by `timeout`.
    pub fn client(
        &self,
        imp: Impl,
        s: &Setting,
        addr: SocketAddr,
        role: &str,
        extra: &[String],
        timeout: Duration,
    ) -> Result<Proc, String> {
        let mut args = vec![
            "--connect".to_string(),
            addr.to_string(),
            "--role".into(),
            role.into(),
            "--timeout".into(),
            format!("{}ms", timeout.as_millis()),
        ];
        args.extend_from_slice(extra);
        Proc::spawn(
            format!("the {} {role} client", imp.name()),
            self.command(imp, s, &args),
        )
    }
}
