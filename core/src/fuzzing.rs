//! Entry points for `fuzz/` targets and for the stable corpus-replay test
//! (`tests/tests/fuzz_corpus.rs`). Each target is one call into here, so the fuzzers and CI
//! exercise exactly the same code.
use std::time::{Duration, Instant};

use crate::driver::Machine;
use crate::kcp::{segment, Kcp, KcpConfig};

/// Decodes every segment header of an arbitrary datagram.
pub fn kcp_segment_decode(data: &[u8]) {
    for (h, payload) in segment::segments(data).flatten() {
        assert_eq!(h.len as usize, payload.len());
    }
}

/// Drives a KCP machine with an arbitrary sequence of operations decoded from `data`:
/// each step is an op byte followed by its argument bytes. Checks the driver invariants and
/// that no buffer grows past its bound. `start` is the origin of virtual time (any instant:
/// behaviour depends only on differences).
pub fn kcp_machine(start: Instant, data: &[u8]) {
    let cfg = KcpConfig {
        rcv_wnd: 16,
        snd_wnd: 16,
        mtu: 200,
        ..KcpConfig::fast()
    };
    let mut k = Kcp::new(1, cfg, start);
    let mut now = start;
    let mut out = Vec::new();
    let mut rest = data;
    while let Some((&op, tail)) = rest.split_first() {
        rest = tail;
        match op % 6 {
            0 | 1 => {
                // A datagram of the given length, with conv forced to ours half of the time so
                // the state machine sees deep input.
                let len = rest.first().copied().unwrap_or(0) as usize;
                let take = len.min(rest.len().saturating_sub(1));
                let mut dgram = rest.get(1..1 + take).unwrap_or(&[]).to_vec();
                rest = rest.get(1 + take..).unwrap_or(&[]);
                if op % 6 == 0 && dgram.len() >= 4 {
                    dgram[..4].copy_from_slice(&1u32.to_le_bytes());
                }
                let _ = k.handle_input(now, &dgram);
            }
            2 => {
                let n = rest.first().copied().unwrap_or(1) as usize * 7 + 1;
                rest = rest.get(1..).unwrap_or(&[]);
                let _ = k.write(&vec![0xAB; n]);
            }
            3 => {
                let mut buf = [0u8; 512];
                while k.recv_stream(&mut buf).is_ok() {}
            }
            4 => {
                let ms = rest.first().copied().unwrap_or(0) as u64 * 20;
                rest = rest.get(1..).unwrap_or(&[]);
                now += Duration::from_millis(ms);
            }
            _ => {
                if let Some(t) = k.poll_timeout() {
                    now = now.max(t);
                    k.handle_timeout(now);
                    if let Some(next) = k.poll_timeout() {
                        assert!(next > now, "deadline not after handle_timeout");
                    }
                }
            }
        }
        out.clear();
        while k.poll_transmit(now, &mut out).is_some() {
            assert!(out.len() <= 200);
            out.clear();
        }
        while k.poll_event().is_some() {}
        assert!(k.debug_bounds_ok(), "a KCP buffer grew past its bound");
    }
}

/// Decodes one arbitrary datagram with every kind of packet protection, with and without
/// FEC, on a fresh session each: no panic, no growth past bounds.
pub fn session_packet(start: Instant, data: &[u8]) {
    use crate::session::aead::AeadKind;
    use crate::session::crypt::CipherKind;
    use crate::session::{CryptMode, Session, SessionConfig};
    let modes = [
        CryptMode::Raw,
        CryptMode::Block(CipherKind::None),
        CryptMode::Block(CipherKind::Aes128),
        CryptMode::Block(CipherKind::Salsa20),
        CryptMode::Block(CipherKind::Tea),
        CryptMode::Aead(AeadKind::ChaCha20Poly1305),
    ];
    for crypt in modes {
        for (d, p) in [(0, 0), (10, 3)] {
            let cfg = SessionConfig {
                kcp: KcpConfig::fast(),
                crypt,
                key: [3; 32],
                data_shards: d,
                parity_shards: p,
            };
            let mut s = Session::new(1, &cfg, start, Box::new(crate::rng::seeded(1)));
            let _ = s.handle_input(start, data);
            let mut out = Vec::new();
            while s.poll_transmit(start, &mut out).is_some() {
                out.clear();
            }
            assert!(s.kcp().debug_bounds_ok());
        }
    }
}

/// Feeds arbitrary shards to an FEC decoder: the first byte picks the shard counts, then
/// each shard is a length byte followed by that many bytes.
pub fn fec_decoder(data: &[u8]) {
    use crate::session::fec::FecDecoder;
    let Some((&sel, mut rest)) = data.split_first() else {
        return;
    };
    let (d, p) = [(10, 3), (1, 1), (3, 2), (20, 5)][sel as usize % 4];
    let Ok(mut dec) = FecDecoder::new(d, p) else {
        return;
    };
    let mut now = 0u32;
    while let Some((&len, tail)) = rest.split_first() {
        let n = (len as usize).min(tail.len());
        let (shard, tail) = tail.split_at(n);
        rest = tail;
        now = now.wrapping_add(len as u32 * 100);
        if let Ok(rec) = dec.decode(now, shard) {
            for r in rec.iter() {
                let _ = crate::session::fec::recovered_payload(r);
            }
        }
        assert!(dec.pending_len() <= 3 * 256 + 1);
    }
}

/// Feeds arbitrary `(address, datagram)` pairs to a listener (raw and `none` crypto so the
/// fuzzer reaches the demux): no panic, sessions bounded by the backlog.
pub fn listener(start: Instant, data: &[u8]) {
    use crate::session::crypt::CipherKind;
    use crate::session::{CryptMode, Listener, ListenerConfig, SessionConfig};
    use std::net::SocketAddr;
    for crypt in [CryptMode::Raw, CryptMode::Block(CipherKind::None)] {
        let cfg = SessionConfig {
            kcp: KcpConfig::fast(),
            crypt,
            key: [3; 32],
            data_shards: 10,
            parity_shards: 3,
        };
        let mut lc = ListenerConfig::new(cfg);
        lc.backlog = 8;
        let mut l = Listener::new(lc, Box::new(crate::rng::seeded(1)));
        let mut rest = data;
        let mut now = start;
        while let Some((&a, tail)) = rest.split_first() {
            let Some((&len, tail)) = tail.split_first() else {
                break;
            };
            let n = (len as usize).min(tail.len());
            let (dgram, tail) = tail.split_at(n);
            rest = tail;
            let from = SocketAddr::from(([127, 0, 0, a % 16], 1000 + a as u16));
            let _ = l.handle_datagram(now, from, dgram);
            let mut out = Vec::new();
            while l.poll_transmit(now, &mut out).is_some() {
                out.clear();
            }
            if a & 0x80 != 0 {
                now += Duration::from_millis(a as u64 * 50);
                l.handle_timeout(now);
            }
            assert!(l.len() <= 8 + 16);
        }
    }
}
