//! kcptun's KCP flags, names and defaults (kcptun.md §4, §5), shared by the commands that
//! open KCP sessions.
use clap::Args;
use tether_runtime_tokio::Config;

/// The kcptun words for one KCP endpoint.
#[derive(Debug, Clone, Args)]
pub struct KcpFlags {
    /// Pre-shared secret (kcptun `--key`; also read from KCPTUN_KEY).
    #[arg(
        long,
        env = "KCPTUN_KEY",
        default_value = "it's a secrect",
        hide_env_values = true
    )]
    pub key: String,
    /// aes, aes-128, aes-192, salsa20, blowfish, twofish, cast5, 3des, tea, xtea, xor, sm4,
    /// none (kcp-go compatible; unknown names mean aes, as kcptun), or the tether-only
    /// authenticated aes-128-gcm / chacha20-poly1305.
    #[arg(long, default_value = "aes")]
    pub crypt: String,
    /// Profiles: fast3, fast2, fast, normal, manual.
    #[arg(long, default_value = "fast")]
    pub mode: String,
    /// Maximum datagram size, headers included.
    #[arg(long, default_value_t = 1350)]
    pub mtu: u32,
    /// Send window (segments).
    #[arg(long, default_value_t = 1024)]
    pub sndwnd: u32,
    /// Receive window (segments).
    #[arg(long, default_value_t = 1024)]
    pub rcvwnd: u32,
    /// Reed-Solomon data shards (0 with --parityshard 0 disables FEC).
    #[arg(long, visible_alias = "ds", default_value_t = 10)]
    pub datashard: usize,
    /// Reed-Solomon parity shards.
    #[arg(long, visible_alias = "ps", default_value_t = 3)]
    pub parityshard: usize,
    /// DSCP bits for outgoing datagrams.
    #[arg(long, default_value_t = 0)]
    pub dscp: u8,
    /// Flush ACKs immediately.
    #[arg(long)]
    pub acknodelay: bool,
    /// manual mode: nodelay.
    #[arg(long, default_value_t = 0, hide = true)]
    pub nodelay: u32,
    /// manual mode: flush interval (ms).
    #[arg(long, default_value_t = 50, hide = true)]
    pub interval: u32,
    /// manual mode: fast-resend threshold.
    #[arg(long, default_value_t = 0, hide = true)]
    pub resend: u32,
    /// manual mode: disable congestion control.
    #[arg(long, default_value_t = 0, hide = true)]
    pub nc: u32,
    /// Socket send and receive buffer size.
    #[arg(long, default_value_t = 4194304)]
    pub sockbuf: usize,
    /// Drop a session the application has not accepted within this long (tests use it).
    #[arg(long, default_value = "30s", value_parser = crate::units::parse_duration, hide = true)]
    pub accept_timeout: std::time::Duration,
}

impl KcpFlags {
    /// The endpoint configuration these flags describe, as kcptun builds it.
    pub fn config(&self) -> Config {
        let mut cfg = Config::default()
            .crypt(&self.crypt, &self.key)
            .fec(self.datashard, self.parityshard)
            .windows(self.sndwnd, self.rcvwnd)
            .mtu(self.mtu)
            .ack_nodelay(self.acknodelay)
            .dscp(self.dscp)
            .sockbuf(self.sockbuf)
            .accept_timeout(self.accept_timeout);
        cfg = match self.mode.as_str() {
            "normal" | "fast" | "fast2" | "fast3" => cfg.mode(&self.mode),
            // kcptun.md §4: any other name is manual.
            _ => cfg.nodelay(self.nodelay != 0, self.interval, self.resend, self.nc != 0),
        };
        cfg
    }

    /// kcptun's startup log of the effective settings.
    pub fn describe(&self) -> String {
        let known = tether_core::session::CryptMode::from_kcptun_name(&self.crypt).1;
        let crypt = if known {
            self.crypt.as_str()
        } else {
            "aes (unknown name; kcptun falls back to aes)"
        };
        format!(
            "encryption: {crypt}, mode: {}, mtu: {}, sndwnd: {}, rcvwnd: {}, datashard: {}, parityshard: {}, acknodelay: {}, dscp: {}, sockbuf: {}",
            self.mode, self.mtu, self.sndwnd, self.rcvwnd, self.datashard, self.parityshard, self.acknodelay, self.dscp, self.sockbuf
        )
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::KcpFlags;

    #[derive(Parser)]
    struct Cmd {
        #[command(flatten)]
        kcp: KcpFlags,
    }

    fn validate(args: &[&str]) -> std::io::Result<()> {
        let cmd = Cmd::try_parse_from(std::iter::once("tether").chain(args.iter().copied()))
            .expect("flags parse");
        cmd.kcp.config().validate()
    }

    #[test]
    fn kcptun_fec_combinations_still_work() {
        validate(&[]).expect("kcptun default 10/3");
        validate(&["--datashard", "0", "--parityshard", "0"]).expect("kcptun's FEC off");
        validate(&["--ds", "1", "--ps", "1"]).expect("smallest code");
        validate(&["--ds", "128", "--ps", "128"]).expect("largest code, 256 shards");
    }

    #[test]
    fn half_off_or_oversized_fec_is_an_error_that_says_what_to_do() {
        for args in [
            ["--datashard", "10", "--parityshard", "0"],
            ["--datashard", "0", "--parityshard", "3"],
        ] {
            let e = validate(&args).expect_err("kcp-go would silently run without FEC");
            assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
            assert!(
                e.to_string().contains("--datashard 0 --parityshard 0"),
                "{e}"
            );
        }
        let e = validate(&["--ds", "200", "--ps", "57"]).expect_err("257 shards");
        assert!(e.to_string().contains("256"), "{e}");
    }
}
