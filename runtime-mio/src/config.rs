//! Endpoint configuration with every kcp-go knob, in kcptun's words and defaults, shared by
//! the three runtimes.
use std::time::Duration;

use rand_chacha::ChaCha20Rng;
use rand_core::{OsRng, RngCore, SeedableRng};
use tether_core::kcp::{KcpConfig, KcpFlavor};
use tether_core::session::{CryptMode, Listener, ListenerConfig, SessionConfig};
use tether_core::stack::{Plain, Side, StreamLayer};

/// A KCP endpoint's settings. [`Config::default`] is kcptun's client default
/// (`--crypt aes --key "it's a secrect" --mode fast --mtu 1350 --sndwnd 128 --rcvwnd 512
/// --datashard 10 --parityshard 3`).
#[derive(Debug, Clone)]
pub struct Config {
    /// Session settings (KCP knobs, crypto, FEC).
    pub session: SessionConfig,
    /// Socket buffer size in bytes (kcptun `--sockbuf`, default 4 MiB).
    pub sockbuf: usize,
    /// DSCP bits for outgoing datagrams (kcptun `--dscp`, default 0).
    pub dscp: u8,
    /// Close sessions that received nothing for this long (default: never, as kcp-go).
    pub idle_timeout: Option<Duration>,
    /// Sessions waiting for `accept` (kcp-go: 128).
    pub backlog: usize,
    /// The conv of client sessions (`None`: random, as kcp-go's `Dial`).
    pub conv: Option<u32>,
    /// Sessions alive at once (default 65 536). Datagrams from further addresses are dropped
    /// before any of their bytes is acknowledged (`1`: a one-session server).
    pub max_sessions: usize,
    /// A session the application has not accepted within this long is dropped (default 30 s).
    pub accept_timeout: Duration,
    /// Sockets (each with its own socket loop, sessions and driver) a tokio/smol listener
    /// binds on its one port with `SO_REUSEPORT` (default 1; see [`Config::reuseport`]).
    pub reuseport: usize,
}

impl Default for Config {
    fn default() -> Self {
        let kcp = KcpConfig::fast()
            .with_windows(128, 512)
            .with_mtu(1350)
            .with_stream(true);
        Config {
            session: SessionConfig::kcptun(kcp, "aes", "it's a secrect", 10, 3),
            sockbuf: 4 << 20,
            dscp: 0,
            idle_timeout: None,
            backlog: 128,
            conv: None,
            max_sessions: 65_536,
            accept_timeout: Duration::from_secs(30),
            reuseport: 1,
        }
    }
}

impl Config {
    /// `--crypt NAME --key KEY` as kcptun maps them (unknown names mean AES-256; also
    /// `aes-128-gcm` and `chacha20-poly1305`, tether-only authenticated modes).
    pub fn crypt(mut self, name: &str, key: &str) -> Self {
        let fresh = SessionConfig::kcptun(self.session.kcp, name, key, 0, 0);
        self.session.crypt = fresh.crypt;
        self.session.key = fresh.key;
        self
    }
    /// No crypto header at all (kcp-go `block = nil`).
    pub fn raw(mut self) -> Self {
        self.session.crypt = CryptMode::Raw;
        self
    }
    /// Raw KCP as skywind3000's ikcp and its ports (C#, Java, game engines) speak it: the
    /// 24-byte segments straight in UDP datagrams, no crypto header, no FEC (kcp-go with a
    /// nil `BlockCrypt` and no FEC sends exactly this). Other knobs stay as they are.
    pub fn raw_kcp(self) -> Self {
        self.raw().fec(0, 0)
    }
    /// The conv of sessions this endpoint dials (`None`: random, as kcp-go's `Dial`; a
    /// raw-KCP server that creates its `ikcpcb` with a fixed conv needs that value here).
    /// Listeners take each session's conv from its first datagram.
    pub fn conv(mut self, conv: Option<u32>) -> Self {
        self.conv = conv;
        self
    }
    /// kcp-go's KCP (default) or ikcp's where a C peer can see the difference
    /// ([`KcpFlavor::Ikcp`]: receive window at least 128, every ACK written).
    pub fn flavor(mut self, flavor: KcpFlavor) -> Self {
        self.session.kcp.flavor = flavor;
        self
    }
    /// Message mode: each write becomes one KCP message, delivered whole to a message-mode
    /// peer (ikcp's default); writes of more than 127 segments are cut into 127-segment
    /// messages (ikcp's limit). The tokio/smol streams still read a byte stream (message
    /// boundaries are not kept on receive); the mio `endpoint::Endpoint`
    /// has `write_message`/`recv_message` for both directions. Off (stream mode) by default,
    /// as kcptun.
    pub fn message_mode(mut self, on: bool) -> Self {
        self.session.kcp.stream = !on;
        self
    }
    /// `--datashard D --parityshard P` (0/0 turns FEC off; one 0 alone fails [`Config::validate`]).
    pub fn fec(mut self, data: usize, parity: usize) -> Self {
        self.session.data_shards = data;
        self.session.parity_shards = parity;
        self
    }
    /// `--mode normal|fast|fast2|fast3`; other names keep the current knobs.
    pub fn mode(mut self, name: &str) -> Self {
        if let Some(p) = KcpConfig::mode(name) {
            let k = &mut self.session.kcp;
            k.nodelay = p.nodelay;
            k.interval = p.interval;
            k.resend = p.resend;
            k.nocwnd = p.nocwnd;
        }
        self
    }
    /// `--nodelay --interval --resend --nc` (kcptun's `manual` mode).
    pub fn nodelay(mut self, nodelay: bool, interval: u32, resend: u32, nc: bool) -> Self {
        let k = &mut self.session.kcp;
        k.nodelay = nodelay;
        k.interval = interval;
        k.resend = resend;
        k.nocwnd = nc;
        self
    }
    /// `--sndwnd --rcvwnd`.
    pub fn windows(mut self, snd: u32, rcv: u32) -> Self {
        self.session.kcp = self.session.kcp.with_windows(snd, rcv);
        self
    }
    /// `--mtu`.
    pub fn mtu(mut self, mtu: u32) -> Self {
        self.session.kcp.mtu = mtu;
        self
    }
    /// Stream mode (kcptun always uses it; default on).
    pub fn stream_mode(mut self, on: bool) -> Self {
        self.session.kcp.stream = on;
        self
    }
    /// `--acknodelay`.
    pub fn ack_nodelay(mut self, on: bool) -> Self {
        self.session.kcp.ack_nodelay = on;
        self
    }
    /// Loss recovery without waiting for the next flush interval
    /// ([`KcpConfig::quick_recovery`]; wire-compatible, off by default).
    pub fn quick_recovery(mut self, on: bool) -> Self {
        self.session.kcp.quick_recovery = on;
        self
    }
    /// `--dscp`.
    pub fn dscp(mut self, dscp: u8) -> Self {
        self.dscp = dscp;
        self
    }
    /// `--sockbuf`.
    pub fn sockbuf(mut self, bytes: usize) -> Self {
        self.sockbuf = bytes;
        self
    }
    /// Idle timeout of sessions.
    pub fn idle_timeout(mut self, d: Option<Duration>) -> Self {
        self.idle_timeout = d;
        self
    }

    /// At most `n` sessions at once: a datagram from another address while `n` are alive
    /// is dropped (and counted) before any of its bytes is acknowledged.
    pub fn max_sessions(mut self, n: usize) -> Self {
        self.max_sessions = n;
        self
    }
    /// Sessions waiting for `accept` before new ones are dropped.
    pub fn backlog(mut self, n: usize) -> Self {
        self.backlog = n;
        self
    }
    /// How long a session may wait for `accept` before it is dropped.
    pub fn accept_timeout(mut self, d: Duration) -> Self {
        self.accept_timeout = d;
        self
    }

    /// A listener runs `n` sockets on its port, each with `SO_REUSEPORT` and its own socket
    /// loop (its own sessions, driver and timer: no lock shared on the data path), so a
    /// server can use `n` cores as kcp-go does with its goroutines. The kernel spreads
    /// peers over the sockets by their address (4-tuple hash), so a peer stays with one
    /// loop; `accept` takes sessions from all of them. Each socket has its own core listener,
    /// so `max_sessions` and `backlog` bound each socket (`n` times them in all). Default 1
    /// (a plain socket, no `SO_REUSEPORT`). Clients and the mio `endpoint::Endpoint` (one
    /// socket on the application's own poll) always use one socket.
    pub fn reuseport(mut self, n: usize) -> Self {
        self.reuseport = n;
        self
    }

    /// Applies the socket-level settings (buffers, GRO, DSCP) to a freshly bound socket.
    pub fn configure_socket(&self, sock: &std::net::UdpSocket) {
        crate::udp::set_buffers(sock, self.sockbuf);
        crate::udp::enable_gro(sock);
        if self.dscp != 0 {
            crate::udp::set_dscp(sock, self.dscp);
        }
    }

    /// Checks values kcp-go would reject, with a message saying what to change.
    pub fn validate(&self) -> std::io::Result<()> {
        let k = self.session.effective_kcp();
        if self.session.kcp.mtu > 1500 {
            return Err(invalid(
                "mtu above 1500 is refused by kcp-go: use --mtu 1500 or less",
            ));
        }
        if self.reuseport == 0 {
            return Err(invalid(
                "reuseport 0 would listen on no socket: use 1 or more",
            ));
        }
        self.session
            .validate()
            .map_err(|e| invalid(&e.to_string()))?;
        k.validate().map_err(|e| invalid(&e.to_string()))
    }

    /// The core listener for this config. `server` decides whether unknown addresses may open
    /// sessions. Nonces and convs come from a ChaCha20 CSPRNG seeded by the OS.
    pub fn listener(&self, server: bool) -> Listener {
        self.listener_with(server, |_| Plain::default())
    }

    /// A core listener whose sessions each carry the upper layer `upper` makes (a
    /// multiplexer: many streams per session), set up as [`Config::listener`].
    pub fn listener_with<U: StreamLayer>(
        &self,
        server: bool,
        upper: impl Fn(Side) -> U + Send + Sync + 'static,
    ) -> Listener<U> {
        let mut lc = ListenerConfig::new(self.session.clone());
        lc.idle_timeout = self.idle_timeout;
        lc.backlog = self.backlog;
        lc.max_sessions = self.max_sessions;
        lc.accept_timeout = self.accept_timeout;
        lc.accept_incoming = server;
        lc.client_conv = self.conv;
        let mut seed = [0u8; 32];
        OsRng.fill_bytes(&mut seed);
        Listener::with_upper(lc, Box::new(ChaCha20Rng::from_seed(seed)), upper)
    }
}

fn invalid(msg: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidInput, msg.to_string())
}
