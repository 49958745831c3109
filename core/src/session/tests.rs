//! Session-layer behaviour in the simulator: every cipher end to end, FEC versus
//! retransmissions, corruption never reaching the application.
use std::time::Duration;

use super::aead::AeadKind;
use super::crypt::CipherKind;
use super::{CryptMode, SessionConfig};
use crate::kcp::KcpConfig;
use crate::sim::test_start;
use crate::sim::transfer::{run_session_transfer, TransferConfig, TransferReport};
use crate::sim::LinkConfig;

fn session(crypt: CryptMode, d: usize, p: usize) -> SessionConfig {
    SessionConfig {
        kcp: KcpConfig::fast()
            .with_windows(256, 256)
            .with_mtu(1350)
            .with_stream(true),
        crypt,
        key: super::key::kcptun_key("it's a secrect"),
        data_shards: d,
        parity_shards: p,
    }
}

fn run(s: &SessionConfig, link: LinkConfig, bytes: u64, seed: u64) -> TransferReport {
    let cfg = TransferConfig {
        bytes,
        kcp: s.kcp,
        link_ab: link.clone(),
        link_ba: link,
        seed,
        time_limit: Duration::from_secs(3600),
    };
    run_session_transfer(&cfg, s, test_start())
}

fn all_modes() -> Vec<CryptMode> {
    let mut v: Vec<CryptMode> = CipherKind::ALL
        .iter()
        .map(|k| CryptMode::Block(*k))
        .collect();
    v.push(CryptMode::Raw);
    v.push(CryptMode::Aead(AeadKind::Aes128Gcm));
    v.push(CryptMode::Aead(AeadKind::ChaCha20Poly1305));
    v
}

#[test]
fn every_cipher_with_and_without_fec_delivers_intact() {
    let link = LinkConfig::perfect()
        .with_delay(Duration::from_millis(10))
        .with_loss(0.05);
    for mode in all_modes() {
        for (d, p) in [(0, 0), (10, 3)] {
            // Twofish from RustCrypto is slow per block: keep its transfer small.
            let bytes = if mode == CryptMode::Block(CipherKind::Twofish) {
                20_000
            } else {
                120_000
            };
            let r = run(&session(mode, d, p), link.clone(), bytes, 11);
            assert!(r.completed, "{mode:?} fec {d}/{p}: incomplete");
            assert_eq!(r.sha256_sent, r.sha256_received, "{mode:?} fec {d}/{p}");
        }
    }
}

/// FEC 10/3 at 10 % random loss repairs most losses without a retransmission.
#[test]
fn fec_reduces_retransmissions() {
    let link = LinkConfig::perfect()
        .with_delay(Duration::from_millis(20))
        .with_loss(0.10);
    let plain = run(
        &session(CryptMode::Block(CipherKind::Aes128), 0, 0),
        link.clone(),
        1 << 20,
        3,
    );
    let fec = run(
        &session(CryptMode::Block(CipherKind::Aes128), 10, 3),
        link,
        1 << 20,
        3,
    );
    println!(
        "1 MiB at 10% loss: without FEC {} retransmissions in {:?}; with FEC 10/3 {} retransmissions in {:?}",
        plain.sender.retrans_segs, plain.elapsed, fec.sender.retrans_segs, fec.elapsed
    );
    assert!(plain.completed && fec.completed);
    assert_eq!(fec.sha256_sent, fec.sha256_received);
    assert!(
        fec.sender.retrans_segs * 2 < plain.sender.retrans_segs,
        "FEC should at least halve retransmissions: {} vs {}",
        fec.sender.retrans_segs,
        plain.sender.retrans_segs
    );
}

/// A flipped bit anywhere is caught by the CRC (or the AEAD tag) or lands in the nonce,
/// which carries no data: the application always reads exactly what was sent.
#[test]
fn corruption_never_reaches_the_application() {
    let link = LinkConfig::perfect()
        .with_delay(Duration::from_millis(5))
        .with_corrupt(0.2);
    for mode in all_modes() {
        if mode == CryptMode::Raw || mode == CryptMode::Block(CipherKind::Twofish) {
            continue; // Raw has no integrity check at all (kcp-go block=nil); twofish is slow
        }
        let r = run(&session(mode, 10, 3), link.clone(), 100_000, 5);
        assert!(r.completed, "{mode:?}");
        assert_eq!(
            r.sha256_sent, r.sha256_received,
            "{mode:?}: corrupted data delivered"
        );
    }
}

/// The same session inputs give the same wire bytes (nonces come from the seeded RNG).
#[test]
fn session_transfer_is_deterministic() {
    let link = LinkConfig::perfect()
        .with_delay(Duration::from_millis(10))
        .with_loss(0.1);
    let s = session(CryptMode::Block(CipherKind::Salsa20), 10, 3);
    let a = run(&s, link.clone(), 200_000, 9);
    let b = run(&s, link, 200_000, 9);
    assert_eq!(a.wire_digest, b.wire_digest);
}

/// "Has output" is explicit on a session too, in every mode (the authenticated client's
/// hello included): pending output is `has_transmit`, never a deadline equal to `now`.
#[test]
fn pending_output_is_has_transmit_not_a_deadline() {
    use crate::driver::Machine;
    let t0 = test_start();
    for mode in all_modes() {
        let cfg = session(mode, 10, 3);
        let rng = Box::new(crate::rng::seeded(1));
        let mut s = super::Session::client(7, &cfg, t0, rng);
        crate::driver::ByteStream::write(&mut s, b"hello").unwrap();
        assert!(s.has_transmit(), "{mode:?}");
        assert!(
            s.poll_timeout().is_none_or(|t| t > t0),
            "{mode:?}: output pending must not be reported as a deadline at now"
        );
        let mut out = Vec::new();
        while s.poll_transmit(t0, &mut out).is_some() {}
        assert!(!out.is_empty(), "{mode:?}");
        assert!(!s.has_transmit(), "{mode:?}: drained");
    }
}

/// A session queues a chunk without copying it ([`Session::write_chunk`]) and still seals
/// the same datagrams as for a copied write of the same bytes (FEC and a cipher on).
#[test]
fn write_chunk_seals_the_same_datagrams_as_write() {
    use crate::driver::{ByteStream, Bytes, Machine};
    use crate::rng::seeded;

    let cfg = session(CryptMode::Block(CipherKind::Aes256), 10, 3);
    let now = test_start();
    let data: Bytes = (0..40_000u32).map(|i| (i % 253) as u8).collect();
    let cuts = [1, 700, 1300, 5000, 64, 9000];
    let mut out = Vec::new();
    for chunked in [false, true] {
        let mut s = super::Session::new(1, &cfg, now, Box::new(seeded(3)));
        let (mut at, mut i) = (0, 0);
        while at < data.len() {
            let end = (at + cuts[i % cuts.len()]).min(data.len());
            let n = if chunked {
                ByteStream::write_chunk(&mut s, data.slice(at..end))
            } else {
                ByteStream::write(&mut s, &data[at..end])
            };
            at += n.expect("window open");
            i += 1;
        }
        let mut wire = Vec::new();
        while s.poll_transmit(now, &mut wire).is_some() {}
        out.push(wire);
    }
    assert!(!out[0].is_empty());
    assert!(out[0] == out[1], "datagrams differ");
}
