//! The transfer harness: the wire bytes of KCP and session transfers stay bit-for-bit what
//! they were before the harness moved to the byte-stream interface.
use std::time::Duration;

use super::transfer::{run_session_transfer, run_transfer, TransferConfig, TransferReport};
use super::{test_start, LinkConfig};
use crate::kcp::{KcpConfig, KcpFlavor};
use crate::session::aead::AeadKind;
use crate::session::crypt::CipherKind;
use crate::session::key::kcptun_key;
use crate::session::{CryptMode, SessionConfig};

fn transfer(bytes: u64, kcp: KcpConfig, link: LinkConfig, seed: u64) -> TransferConfig {
    TransferConfig {
        bytes,
        kcp,
        link_ab: link.clone(),
        link_ba: link,
        seed,
        time_limit: Duration::from_secs(3600),
    }
}

fn session(crypt: CryptMode, d: usize, p: usize) -> SessionConfig {
    SessionConfig {
        kcp: KcpConfig::fast()
            .with_windows(256, 256)
            .with_mtu(1350)
            .with_stream(true),
        crypt,
        key: kcptun_key("it's a secrect"),
        data_shards: d,
        parity_shards: p,
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `digest elapsed-ns delivered sender-segments receiver-segments median-latency-ns` of one
/// report, the fingerprint the golden values pin.
fn fingerprint(r: &TransferReport) -> String {
    assert!(r.completed, "{r:?}");
    assert_eq!(r.sha256_sent, r.sha256_received);
    format!(
        "{} {} {} {} {} {}",
        hex(&r.wire_digest),
        r.elapsed.as_nanos(),
        r.delivered,
        r.sender.out_segs,
        r.receiver.out_segs,
        r.latency_quantile(0.5).as_nanos()
    )
}

/// Wire digests recorded before the harness moved from `StreamEndpoint` to the
/// `Streams`/`ByteStream` traits (commit b436c9f). A change here means the harness (or a
/// machine) now puts other bytes on the wire or at other instants: find out why before
/// updating a value.
#[test]
fn kcp_and_session_transfers_keep_their_wire_digests() {
    let ms = Duration::from_millis;
    let mut ikcp = KcpConfig::normal().with_windows(64, 64);
    ikcp.flavor = KcpFlavor::Ikcp;
    let lossy = LinkConfig::perfect()
        .with_delay(ms(20))
        .with_jitter(ms(5))
        .with_loss(0.1)
        .with_reorder(0.05, ms(10))
        .with_duplicate(0.02);
    let got = [
        fingerprint(&run_transfer(
            &transfer(
                200_000,
                KcpConfig::fast(),
                LinkConfig::kcptun_10pct_loss(),
                1,
            ),
            test_start(),
        )),
        fingerprint(&run_transfer(
            &transfer(
                300_000,
                KcpConfig::fast3().with_windows(256, 256),
                LinkConfig::congested(),
                2,
            ),
            test_start(),
        )),
        fingerprint(&run_transfer(
            &transfer(50_000, ikcp, lossy.clone(), 3),
            test_start(),
        )),
        fingerprint(&run_session_transfer(
            &transfer(150_000, KcpConfig::fast(), LinkConfig::wifi_lossy(), 4),
            &session(CryptMode::Block(CipherKind::Aes256), 10, 3),
            test_start(),
        )),
        fingerprint(&run_session_transfer(
            &transfer(100_000, KcpConfig::fast(), lossy, 5),
            &session(CryptMode::Aead(AeadKind::ChaCha20Poly1305), 0, 0),
            test_start(),
        )),
    ];
    let want = GOLDEN;
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert_eq!(g, w, "transfer {i}");
    }
}

const GOLDEN: [&str; 5] = [
    "b5588bb41f640d111f3c0e50291baed31f2fdd94ad66d2816d2ae85273ee15f2 966549383 200000 164 84 173201867",
    "8bf285d11bcd629e1f5df05257e3f35c7c5ac4d0668982bef6f2acb5bdc5edd6 5237249521 300000 1067 125 1159719879",
    "2153a95d7fa6aae8170a743d1415d7ce8fc91f11538e1654151a72152805e733 378024161 50000 40 36 378024161",
    "fa9f38caddc6291ba747c77962d4af6200f9aeb5e7181081b75668bda49c0ef5 94878250 150000 116 2 21340683",
    "2a8132aeff9afc07bbd16a1476b382ae1e425c17b6f4aac12d9e6009e288e65b 585492061 100000 118 61 98621401",
];
