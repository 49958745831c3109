//! The effective settings of one tunnel end, built from the resolved kcptun flags: the KCP
//! endpoint configuration, the smux configuration, the stack each session carries
//! (`Snappy<Smux>`, kcptun.md §1) and kcptun's startup lines.

use tether_core::smux::{Smux, SmuxConfig};
use tether_core::snappy::Snappy;
use tether_core::stack::Side;
use tether_runtime_tokio::Config;

use super::flags::{CommonFlags, ConfigError};
use crate::kcp_flags::KcpFlags;

/// What one end runs with.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The KCP endpoint (crypt, FEC, windows, nodelay, mtu, DSCP, socket buffers).
    pub kcp: Config,
    /// The smux session (kcptun.md §6.1 step 3).
    pub smux: SmuxConfig,
    /// `--nocomp`: no snappy framing.
    pub nocomp: bool,
}

impl Settings {
    /// Builds the settings of flags already resolved (JSON applied, mode preset applied,
    /// validated).
    pub fn new(c: &CommonFlags) -> Result<Settings, ConfigError> {
        // The mode preset is already in nodelay/interval/resend/nc (CommonFlags::apply_mode):
        // the KCP flags run as manual with those values.
        let kcp = KcpFlags {
            mode: "manual".into(),
            ..c.kcp.clone()
        }
        .config()
        .quick_recovery(!c.noquickrecovery);
        kcp.validate().map_err(|e| ConfigError::Invalid {
            flag: kcp_flag_of(&e.to_string()),
            value: String::new(),
            why: e.to_string(),
        })?;
        let mut smux = SmuxConfig::xtaci(c.smuxver);
        c.smux.apply(&mut smux);
        smux.validate().map_err(|e| ConfigError::Invalid {
            flag: match e.field {
                "max_receive_buffer" => "smuxbuf",
                "max_stream_buffer" => "streambuf",
                "keepalive_interval" | "keepalive_timeout" => "keepalive",
                _ => "smuxver",
            },
            value: String::new(),
            why: e.to_string(),
        })?;
        Ok(Settings {
            kcp,
            smux,
            nocomp: c.nocomp,
        })
    }

    /// The stack factory for the runtime: snappy framing (or its passthrough) around smux.
    pub fn stack(&self) -> impl Fn(Side) -> Snappy<Smux> + Send + Sync + 'static {
        let smux = self.smux.clone();
        let nocomp = self.nocomp;
        move |side| {
            let mux = Smux::new(smux.clone(), side);
            if nocomp {
                Snappy::passthrough(mux)
            } else {
                Snappy::new(mux)
            }
        }
    }
}

/// The flag a KCP configuration complaint is about (its message names it).
fn kcp_flag_of(msg: &str) -> &'static str {
    for flag in [
        "datashard",
        "parityshard",
        "mtu",
        "sndwnd",
        "rcvwnd",
        "interval",
        "crypt",
    ] {
        if msg.contains(flag) {
            return flag;
        }
    }
    "mode"
}

/// kcptun's startup lines of the effective settings both ends print (kcptun.md §5 names).
pub fn startup_lines(c: &CommonFlags) -> Vec<String> {
    let k = &c.kcp;
    let known = tether_core::session::CryptMode::from_kcptun_name(&k.crypt).1;
    let crypt = if known {
        k.crypt.clone()
    } else {
        format!("{} (unknown name: aes, as kcptun)", k.crypt)
    };
    vec![
        format!("version: tether {}", env!("CARGO_PKG_VERSION")),
        format!("smux version: {}", c.smuxver),
        format!("encryption: {crypt}"),
        format!(
            "nodelay parameters: {} {} {} {}",
            k.nodelay, k.interval, k.resend, k.nc
        ),
        format!("sndwnd: {} rcvwnd: {}", k.sndwnd, k.rcvwnd),
        format!("compression: {}", !c.nocomp),
        format!("mtu: {}", k.mtu),
        format!("datashard: {} parityshard: {}", k.datashard, k.parityshard),
        format!("acknodelay: {}", k.acknodelay),
        format!("quickrecovery: {}", !c.noquickrecovery),
        format!("dscp: {}", k.dscp),
        format!("sockbuf: {}", k.sockbuf),
        format!("smuxbuf: {}", c.smux.smuxbuf),
        format!("streambuf: {}", c.smux.streambuf),
        format!("keepalive: {}", c.smux.keepalive),
        format!("snmplog: {}", c.snmplog),
        format!("snmpperiod: {}", c.snmpperiod),
        format!("quiet: {}", c.quiet),
    ]
}

/// A kcptun address for binding: an empty host (`:12948`) means every interface.
pub fn bind_addr(addr: &str) -> String {
    match addr.strip_prefix(':') {
        Some(port) => format!("0.0.0.0:{port}"),
        None => addr.to_owned(),
    }
}
