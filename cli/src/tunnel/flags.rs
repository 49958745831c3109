//! kcptun 20210922's command lines and JSON keys (kcptun.md §5), for `tether client` and
//! `tether server`: the same names, defaults and meanings, so a kcptun command line or
//! `-c config.json` runs unchanged.
use std::path::PathBuf;

use clap::Args;
use serde_json::{Map, Value};

use crate::kcp_flags::KcpFlags;
use crate::smux::XtaciFlags;

/// Flags both ends take (kcptun.md §5).
#[derive(Debug, Clone, Args)]
pub struct CommonFlags {
    /// The KCP session: kcptun's key, crypt, mode, mtu, windows, FEC, DSCP, nodelay
    /// parameters and socket buffers (the client overrides the window defaults).
    #[command(flatten)]
    pub kcp: KcpFlags,
    /// Disable snappy compression (must match on both ends).
    #[arg(long)]
    pub nocomp: bool,
    /// tether only: recover losses on kcp-go's timing (ACKs and fast retransmits wait for
    /// the next --interval tick) instead of acknowledging out-of-order data and
    /// retransmitting at once. Either way the peer may be kcptun; only timing differs.
    #[arg(long)]
    pub noquickrecovery: bool,
    /// smux version, 1 or 2 (must match on both ends).
    #[arg(long, default_value_t = 1)]
    pub smuxver: u8,
    /// smux's buffers and keepalive (--smuxbuf, --streambuf, --keepalive).
    #[command(flatten)]
    pub smux: XtaciFlags,
    /// Append KCP counters as CSV to this file every --snmpperiod seconds (the file name
    /// takes Go time layouts: snmp-20060102.log rotates daily).
    #[arg(long, default_value = "")]
    pub snmplog: String,
    /// Seconds between SNMP rows.
    #[arg(long, default_value_t = 60)]
    pub snmpperiod: u64,
    /// Log to this file (appended) instead of stderr.
    #[arg(long, default_value = "")]
    pub log: String,
    /// Do not log stream open/close lines.
    #[arg(long)]
    pub quiet: bool,
    /// kcptun's fake-TCP transport (raw sockets): not supported by tether.
    #[arg(long)]
    pub tcp: bool,
    /// A kcptun JSON config file: the keys it has override the flags.
    #[arg(short = 'c', default_value = "")]
    pub config: String,
}

/// `tether client`: kcptun-client's flags (kcptun.md §5); its windows default to 128/512.
#[derive(Debug, Clone, Args)]
#[command(
    mut_arg("sndwnd", |a| a.default_value("128")),
    mut_arg("rcvwnd", |a| a.default_value("512")),
    after_help = "Example (a kcptun-server or tether server at 203.0.113.7:29900):\n  \
                  tether client -l 127.0.0.1:12948 -r 203.0.113.7:29900 --key SECRET --mode fast3\n\
                  Long flags also take one dash, as in kcptun (-key SECRET); -c FILE reads \
                  kcptun's JSON keys, which override the flags."
)]
pub struct ClientFlags {
    /// Local TCP address to accept connections on (all interfaces by default, as kcptun).
    #[arg(short = 'l', long = "localaddr", default_value = ":12948")]
    pub localaddr: String,
    /// The tunnel server's UDP address.
    #[arg(short = 'r', long = "remoteaddr", default_value = "vps:29900")]
    pub remoteaddr: String,
    /// KCP sessions to the server, used round-robin by new TCP connections.
    #[arg(long, default_value_t = 1)]
    pub conn: u32,
    /// Seconds after which a session takes no new streams (0: never).
    #[arg(long, default_value_t = 0)]
    pub autoexpire: u64,
    /// Seconds an expired session may still live before it is closed.
    #[arg(long, default_value_t = 600)]
    pub scavengettl: i64,
    #[command(flatten)]
    pub common: CommonFlags,
}

/// `tether server`: kcptun-server's flags (kcptun.md §5).
#[derive(Debug, Clone, Args)]
#[command(
    after_help = "Example (forwarding tunnel streams to a local SSH server):\n  \
                  tether server -l :29900 -t 127.0.0.1:22 --key SECRET --mode fast3\n\
                  Long flags also take one dash, as in kcptun (-key SECRET); -c FILE reads \
                  kcptun's JSON keys, which override the flags."
)]
pub struct ServerFlags {
    /// UDP address to accept tunnel sessions on (all interfaces by default, as kcptun).
    #[arg(short = 'l', long = "listen", default_value = ":29900")]
    pub listen: String,
    /// Where each stream goes: a TCP host:port, or else a unix socket path.
    #[arg(short = 't', long = "target", default_value = "127.0.0.1:12948")]
    pub target: String,
    /// kcptun's Go profiler: accepted for compatibility, tether serves nothing on :6060.
    #[arg(long)]
    pub pprof: bool,
    #[command(flatten)]
    pub common: CommonFlags,
}

impl ClientFlags {
    /// Applies `-c`'s keys (kcptun.md §5: keys present override flags; unknown keys are
    /// ignored), then kcptun's mode preset (§4).
    pub fn resolve(&mut self) -> Result<(), ConfigError> {
        if let Some(map) = read_json(&self.common.config)? {
            let j = JsonApply::new(&map);
            j.string("localaddr", &mut self.localaddr)?;
            j.string("remoteaddr", &mut self.remoteaddr)?;
            j.uint("conn", &mut self.conn)?;
            j.uint("autoexpire", &mut self.autoexpire)?;
            j.int("scavengettl", &mut self.scavengettl)?;
            j.uint("sndwnd", &mut self.common.kcp.sndwnd)?;
            j.uint("rcvwnd", &mut self.common.kcp.rcvwnd)?;
            self.common.apply_json(&j)?;
        }
        self.common.apply_mode();
        if self.conn == 0 {
            return Err(ConfigError::Invalid {
                flag: "conn",
                value: "0".into(),
                why: "at least one KCP session is needed".into(),
            });
        }
        self.common.validate()
    }
}

impl ServerFlags {
    /// As [`ClientFlags::resolve`], with the server's keys.
    pub fn resolve(&mut self) -> Result<(), ConfigError> {
        if let Some(map) = read_json(&self.common.config)? {
            let j = JsonApply::new(&map);
            j.string("listen", &mut self.listen)?;
            j.string("target", &mut self.target)?;
            j.uint("sndwnd", &mut self.common.kcp.sndwnd)?;
            j.uint("rcvwnd", &mut self.common.kcp.rcvwnd)?;
            j.bool("pprof", &mut self.pprof)?;
            self.common.apply_json(&j)?;
        }
        self.common.apply_mode();
        self.common.validate()
    }
}

/// Why the settings cannot be used: every message names the flag or key to fix.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The `-c` file cannot be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The `-c` file is not a JSON object.
    #[error("config file {path} is not a JSON object: {detail}")]
    NotJson {
        /// The file.
        path: PathBuf,
        /// The parser's complaint.
        detail: String,
    },
    /// A JSON key has a value of the wrong type.
    #[error("config key \"{key}\" must be {want}")]
    JsonType {
        /// The key.
        key: String,
        /// The expected type.
        want: &'static str,
    },
    /// A value out of range.
    #[error("--{flag} {value}: {why}")]
    Invalid {
        /// The flag.
        flag: &'static str,
        /// Its value.
        value: String,
        /// What is allowed.
        why: String,
    },
}

/// Reads `-c`'s JSON object, if any.
pub fn read_json(path: &str) -> Result<Option<Map<String, Value>>, ConfigError> {
    if path.is_empty() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.into(),
        source,
    })?;
    match serde_json::from_str::<Value>(&text) {
        Ok(Value::Object(m)) => Ok(Some(m)),
        Ok(_) => Err(ConfigError::NotJson {
            path: path.into(),
            detail: "the top level must be an object".into(),
        }),
        Err(e) => Err(ConfigError::NotJson {
            path: path.into(),
            detail: e.to_string(),
        }),
    }
}

/// Sets fields from JSON keys that are present; unknown keys are ignored (as kcptun).
pub struct JsonApply<'a> {
    map: &'a Map<String, Value>,
}

impl<'a> JsonApply<'a> {
    /// Over `map`.
    pub fn new(map: &'a Map<String, Value>) -> Self {
        JsonApply { map }
    }

    /// A string key.
    pub fn string(&self, key: &str, field: &mut String) -> Result<(), ConfigError> {
        match self.map.get(key) {
            None => Ok(()),
            Some(Value::String(s)) => {
                s.clone_into(field);
                Ok(())
            }
            Some(_) => Err(type_error(key, "a string")),
        }
    }

    /// A boolean key.
    pub fn bool(&self, key: &str, field: &mut bool) -> Result<(), ConfigError> {
        match self.map.get(key) {
            None => Ok(()),
            Some(Value::Bool(b)) => {
                *field = *b;
                Ok(())
            }
            Some(_) => Err(type_error(key, "true or false")),
        }
    }

    /// An integer key (negative allowed).
    pub fn int(&self, key: &str, field: &mut i64) -> Result<(), ConfigError> {
        match self.map.get(key) {
            None => Ok(()),
            Some(v) => {
                *field = v.as_i64().ok_or_else(|| type_error(key, "an integer"))?;
                Ok(())
            }
        }
    }

    /// A non-negative integer key that fits `T`.
    pub fn uint<T: TryFrom<u64>>(&self, key: &str, field: &mut T) -> Result<(), ConfigError> {
        match self.map.get(key) {
            None => Ok(()),
            Some(v) => {
                let n = v
                    .as_u64()
                    .ok_or_else(|| type_error(key, "a non-negative integer"))?;
                *field = T::try_from(n).map_err(|_| type_error(key, "a smaller integer"))?;
                Ok(())
            }
        }
    }
}

fn type_error(key: &str, want: &'static str) -> ConfigError {
    ConfigError::JsonType {
        key: key.to_owned(),
        want,
    }
}

impl CommonFlags {
    /// Applies the JSON keys both ends share (kcptun.md §5's JSON column).
    pub fn apply_json(&mut self, j: &JsonApply<'_>) -> Result<(), ConfigError> {
        j.string("key", &mut self.kcp.key)?;
        j.string("crypt", &mut self.kcp.crypt)?;
        j.string("mode", &mut self.kcp.mode)?;
        j.uint("mtu", &mut self.kcp.mtu)?;
        j.uint("datashard", &mut self.kcp.datashard)?;
        j.uint("parityshard", &mut self.kcp.parityshard)?;
        j.uint("dscp", &mut self.kcp.dscp)?;
        j.bool("nocomp", &mut self.nocomp)?;
        j.bool("acknodelay", &mut self.kcp.acknodelay)?;
        j.bool("noquickrecovery", &mut self.noquickrecovery)?;
        j.uint("nodelay", &mut self.kcp.nodelay)?;
        j.uint("interval", &mut self.kcp.interval)?;
        j.uint("resend", &mut self.kcp.resend)?;
        j.uint("nc", &mut self.kcp.nc)?;
        j.uint("sockbuf", &mut self.kcp.sockbuf)?;
        j.uint("smuxver", &mut self.smuxver)?;
        j.uint("smuxbuf", &mut self.smux.smuxbuf)?;
        j.uint("streambuf", &mut self.smux.streambuf)?;
        j.uint("keepalive", &mut self.smux.keepalive)?;
        j.string("snmplog", &mut self.snmplog)?;
        j.uint("snmpperiod", &mut self.snmpperiod)?;
        j.string("log", &mut self.log)?;
        j.bool("quiet", &mut self.quiet)?;
        j.bool("tcp", &mut self.tcp)
    }

    /// kcptun's mode presets (kcptun.md §4), applied after flags and JSON as kcptun does:
    /// a known mode overwrites nodelay, interval, resend and nc; any other name is manual.
    pub fn apply_mode(&mut self) {
        let preset = match self.kcp.mode.as_str() {
            "normal" => (0, 40, 2, 1),
            "fast" => (0, 30, 2, 1),
            "fast2" => (1, 20, 2, 1),
            "fast3" => (1, 10, 2, 1),
            _ => return,
        };
        let k = &mut self.kcp;
        (k.nodelay, k.interval, k.resend, k.nc) = preset;
    }

    /// kcptun's own checks, with tether's wording.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |flag, value: String, why: &str| ConfigError::Invalid {
            flag,
            value,
            why: why.to_owned(),
        };
        if !(1..=2).contains(&self.smuxver) {
            return Err(invalid(
                "smuxver",
                self.smuxver.to_string(),
                "smux versions are 1 and 2",
            ));
        }
        if self.smux.keepalive == 0 || self.smux.keepalive > 30 {
            return Err(invalid(
                "keepalive",
                self.smux.keepalive.to_string(),
                "the keepalive interval must be 1..=30 s (smux's timeout is 30 s)",
            ));
        }
        if self.kcp.mtu > 1500 {
            return Err(invalid(
                "mtu",
                self.kcp.mtu.to_string(),
                "kcp-go peers read datagrams into 1500-byte buffers: use at most 1500",
            ));
        }
        if self.smux.streambuf > self.smux.smuxbuf {
            return Err(invalid(
                "streambuf",
                self.smux.streambuf.to_string(),
                "must not exceed --smuxbuf",
            ));
        }
        if self.tcp {
            return Err(invalid(
                "tcp",
                "true".into(),
                "kcptun's fake-TCP (raw sockets) transport is not supported by tether: run without --tcp on both ends",
            ));
        }
        Ok(())
    }
}
