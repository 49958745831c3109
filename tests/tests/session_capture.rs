//! Reproduces the real kcp-go 5.6.1 capture of kcp-go-session.md §5: three writes through
//! FEC(3,2) + AES-128, conv 0x11223344, mtu 1350, rcvwnd 512. The first data datagram must
//! match the captured ciphertext byte for byte (given the captured nonce); the parity
//! datagrams must match the captured plaintext after nonce and CRC.
use std::time::{Duration, Instant};

use tether_core::driver::Machine;
use tether_core::kcp::KcpConfig;
use tether_core::rng::RngCore;
use tether_core::session::crypt::{CipherKind, PacketCrypt};
use tether_core::session::key::kcptun_key;
use tether_core::session::{CryptMode, Session, SessionConfig};

/// Yields a scripted prefix, then zeros.
struct Script(Vec<u8>);

impl RngCore for Script {
    fn next_u32(&mut self) -> u32 {
        let mut b = [0; 4];
        self.fill_bytes(&mut b);
        u32::from_le_bytes(b)
    }
    fn next_u64(&mut self) -> u64 {
        let mut b = [0; 8];
        self.fill_bytes(&mut b);
        u64::from_le_bytes(b)
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        for d in dest {
            *d = if self.0.is_empty() {
                0
            } else {
                self.0.remove(0)
            };
        }
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), tether_core::rng::RngError> {
        self.fill_bytes(dest);
        Ok(())
    }
}

fn h(s: &str) -> Vec<u8> {
    hex::decode(s.replace(' ', "")).unwrap()
}

#[test]
fn kcp_go_capture_fec_3_2_aes_128() {
    let cfg = SessionConfig {
        kcp: KcpConfig {
            nocwnd: true,
            ..KcpConfig::default()
        }
        .with_mtu(1350)
        .with_windows(32, 512),
        crypt: CryptMode::Block(CipherKind::Aes128),
        key: kcptun_key("it's a secrect"),
        data_shards: 3,
        parity_shards: 2,
    };
    let nonce = h("bbc91c38e8bb2b96fccbfa6a1354e79b");
    let start = Instant::now();
    let mut s = Session::new(0x1122_3344, &cfg, start, Box::new(Script(nonce)));
    let mut wire = Vec::new();
    for (ms, msg) in [(54, &b"A"[..]), (105, b"hello"), (155, b"kcp!")] {
        let now = start + Duration::from_millis(ms);
        s.write(msg).unwrap();
        let mut buf = Vec::new();
        while s.poll_transmit(now, &mut buf).is_some() {
            wire.push(std::mem::take(&mut buf));
        }
    }
    let lens: Vec<usize> = wire.iter().map(Vec::len).collect();
    assert_eq!(
        lens,
        [53, 57, 56, 57, 57],
        "three data datagrams, then two parity of the longest length"
    );
    assert_eq!(
        hex::encode(&wire[0]),
        "661ffe9c74a58e735334257e357f8a8cf21423d04080325f0fcc4704f6a4bc1f1970dfcf9efcde71ea0d67b6fab98d50660012fb52"
    );
    let crypt = PacketCrypt::new(CipherKind::Aes128, &kcptun_key("it's a secrect"));
    let mut plain: Vec<Vec<u8>> = wire.clone();
    for p in plain.iter_mut() {
        crypt.open(p).expect("CRC verifies");
    }
    assert_eq!(
        plain[1][20..],
        h("01000000 f100 1f00 44332211 51 00 0002 69000000 01000000 00000000 05000000 68656c6c6f")
            [..]
    );
    assert_eq!(
        plain[3][20..],
        h("03000000 f200 1a004433221151000002c400000003000000000000000000000042061c4d6f")[..]
    );
    assert_eq!(
        plain[4][20..],
        h("04000000 f200 250044332211510000023d00000004000000000000003f000000e8587a815f")[..]
    );
}
