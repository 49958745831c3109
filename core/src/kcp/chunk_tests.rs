//! [`Kcp::write_chunk`]: segments that share the application's chunks put on the wire
//! exactly what copied writes put there, through merging, message mode, a full window
//! and retransmission (issue 15 item 8).
use std::time::Duration;

use proptest::prelude::*;

use super::segment;
use super::*;
use crate::sim::transfer::Tap;
use crate::sim::{test_start, LinkConfig, Pair};

/// How the sender hands its bytes to KCP.
#[derive(Clone, Copy, PartialEq, Eq)]
enum How {
    Copied,
    Chunks,
}

/// One sender → receiver run: `data` written in pieces of `cuts` (cycled), the link driven
/// `step` between attempts; a refused piece is offered again after the next step. Returns
/// digests of the sender's and the receiver's datagrams (every byte and length, in order),
/// what each write returned and what the receiver read.
struct Run {
    sent: [u8; 32],
    acks: [u8; 32],
    results: Vec<Result<usize, WriteError>>,
    received: Vec<u8>,
}

fn run(cfg: KcpConfig, link: LinkConfig, data: &Bytes, cuts: &[usize], how: How) -> Run {
    let start = test_start();
    let (a, b) = (
        Tap::new(Kcp::new(9, cfg, start)),
        Tap::new(Kcp::new(9, cfg, start)),
    );
    let mut p = Pair::new(a, b, start, link.clone(), link, 7);
    let step = Duration::from_millis(3);
    let (mut at, mut i) = (0, 0);
    let mut results = Vec::new();
    let mut received = Vec::new();
    while at < data.len() {
        let end = (at + cuts[i % cuts.len()].max(1)).min(data.len());
        let r = match how {
            How::Copied => p.a.inner.write(&data[at..end]),
            How::Chunks => p.a.inner.write_chunk(data.slice(at..end)),
        };
        if let Ok(n) = r {
            at += n;
            i += 1;
        }
        results.push(r);
        p.drive_for(step);
        read_into(&mut p.b.inner, &mut received, cfg.stream);
    }
    for _ in 0..20_000 {
        if p.a.inner.all_acked() && received.len() == data.len() {
            break;
        }
        p.drive_for(step);
        read_into(&mut p.b.inner, &mut received, cfg.stream);
    }
    Run {
        sent: p.a.digest(),
        acks: p.b.digest(),
        results,
        received,
    }
}

fn read_into(k: &mut Kcp, into: &mut Vec<u8>, stream: bool) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let r = if stream {
            k.recv_stream(&mut buf)
        } else {
            k.recv(&mut buf)
        };
        let Ok(n) = r else { return };
        into.extend_from_slice(&buf[..n]);
    }
}

fn pattern(len: usize) -> Bytes {
    (0..len).map(|i| (i * 7 + i / 251) as u8).collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, .. ProptestConfig::default() })]

    /// For the same bytes, split points and link, `write_chunk` and `write` put the same
    /// datagrams on the wire and get the same answers, in stream and message mode, in
    /// both flavours, over a lossy link (so chunk-backed segments are retransmitted), and
    /// the receiver reads the bytes exactly.
    #[test]
    fn write_chunk_puts_the_same_bytes_on_the_wire_as_write(
        len in 1usize..60_000,
        cuts in proptest::collection::vec(1usize..9_000, 1..8),
        stream in any::<bool>(),
        ikcp in any::<bool>(),
        mtu in 200u32..1500,
        wnd in 4u32..64,
        loss in 0.0f64..0.2,
    ) {
        let mut cfg = KcpConfig::fast3().with_windows(wnd, wnd).with_mtu(mtu).with_stream(stream);
        if ikcp {
            cfg.flavor = KcpFlavor::Ikcp;
        }
        let link = LinkConfig::perfect().with_delay(Duration::from_millis(5)).with_loss(loss);
        let data = pattern(len);
        let copied = run(cfg, link.clone(), &data, &cuts, How::Copied);
        let chunks = run(cfg, link, &data, &cuts, How::Chunks);
        prop_assert_eq!(&copied.results, &chunks.results);
        prop_assert!(copied.sent == chunks.sent, "sender datagrams differ");
        prop_assert!(copied.acks == chunks.acks, "receiver datagrams differ");
        prop_assert!(chunks.received == data[..], "received bytes differ");
    }
}

/// The lengths and kinds (`S`hared, `O`wned) of the queued segments.
fn queued(k: &Kcp) -> Vec<(usize, char)> {
    k.snd_queue
        .iter()
        .map(|s| {
            let kind = match s.data {
                Payload::Owned(_) => 'O',
                Payload::Shared(_) => 'S',
            };
            (s.data.len(), kind)
        })
        .collect()
}

/// Stream mode: full pieces share the chunk, a short tail is copied, and the next write
/// tops up a short last segment (copying a shared one first) before sharing its own rest.
#[test]
fn stream_mode_shares_full_pieces_and_merges_into_a_short_last_segment() {
    let now = test_start();
    let cfg = KcpConfig::fast3()
        .with_windows(64, 64)
        .with_mtu(1024)
        .with_stream(true);
    let mut k = Kcp::new(1, cfg, now);
    let mss = k.mss();
    let data = pattern(10 * mss);
    let mut at = 0;
    let mut write = |k: &mut Kcp, n: usize| {
        assert_eq!(k.write_chunk(data.slice(at..at + n)), Ok(n));
        at += n;
    };
    write(&mut k, 100);
    assert_eq!(queued(&k), [(100, 'O')]);
    write(&mut k, 2 * mss + 600);
    assert_eq!(
        queued(&k),
        [(mss, 'O'), (mss, 'S'), (700, 'S')],
        "100 + (mss - 100) merged, one full shared piece, a 700-byte shared tail"
    );
    write(&mut k, 50);
    assert_eq!(
        queued(&k)[2],
        (750, 'O'),
        "the shared tail became a pooled copy"
    );
    let all: Vec<u8> = k.snd_queue.iter().flat_map(|s| s.data.to_vec()).collect();
    assert_eq!(all, data[..at]);
    assert_eq!(k.stats().bytes_sent, at as u64);
}

/// Message mode cuts a chunk into `mss`-sized messages of one fragment each, as `write`.
#[test]
fn message_mode_cuts_a_chunk_into_whole_segments() {
    let now = test_start();
    let cfg = KcpConfig::fast3().with_windows(64, 64).with_stream(false);
    let mut k = Kcp::new(1, cfg, now);
    let mss = k.mss();
    let data = pattern(2 * mss + 10);
    assert_eq!(k.write_chunk(data.slice(..100)), Ok(100));
    assert_eq!(k.write_chunk(data.slice(100..)), Ok(2 * mss - 90));
    assert_eq!(
        queued(&k),
        [(100, 'O'), (mss, 'S'), (mss - 90, 'S')],
        "no merging in message mode"
    );
    assert!(k.snd_queue.iter().all(|s| s.frg == 0));
    let mut buf = Vec::new();
    let mut frgs = Vec::new();
    while let Some(t) = k.poll_transmit(now, &mut buf) {
        let d = &buf[buf.len() - t.len..];
        frgs.extend(segment::segments(d).map(|r| r.expect("segment").0.frg));
    }
    assert_eq!(frgs, [0, 0, 0]);
}

/// A full window refuses a chunk (`Blocked`, nothing queued) and promises `Writable`;
/// once the peer acknowledges, the chunk goes and arrives intact.
#[test]
fn full_window_blocks_a_chunk_then_reports_writable() {
    let start = test_start();
    let cfg = KcpConfig::fast3().with_windows(4, 4).with_stream(true);
    let link = LinkConfig::perfect().with_delay(Duration::from_millis(10));
    let mut p = Pair::new(
        Kcp::new(3, cfg, start),
        Kcp::new(3, cfg, start),
        start,
        link.clone(),
        link,
        1,
    );
    let mss = p.a.mss();
    let data = pattern(12 * mss);
    let mut at = 0;
    while at < data.len() {
        match p.a.write_chunk(data.slice(at..at + 2 * mss)) {
            Ok(n) => at += n,
            Err(e) => {
                assert_eq!(e, WriteError::Blocked);
                break;
            }
        }
    }
    assert!(at < data.len(), "the window never filled");
    assert_eq!(
        p.a.stats().bytes_sent,
        at as u64,
        "a refused chunk counts nothing"
    );
    assert_eq!(
        ByteStream::write_chunk(&mut p.a, data.slice(at..)),
        Err(StreamError::Blocked)
    );
    p.events_a.clear();
    let mut got = Vec::new();
    for _ in 0..200 {
        p.drive_for(Duration::from_millis(10));
        read_into(&mut p.b, &mut got, true);
        if p.events_a.contains(&KcpEvent::Writable) {
            break;
        }
    }
    assert!(p.events_a.contains(&KcpEvent::Writable), "no Writable");
    assert_eq!(
        ByteStream::write_chunk(&mut p.a, data.slice(at..)),
        Ok(data.len() - at)
    );
    assert_eq!(ByteStream::write_chunk(&mut p.a, Bytes::new()), Ok(0));
    for _ in 0..200 {
        p.drive_for(Duration::from_millis(10));
        read_into(&mut p.b, &mut got, true);
    }
    assert!(got == data[..], "bytes differ");
    assert!(p.a.all_acked());
}

/// A closed machine refuses chunks as it refuses copied writes.
#[test]
fn closed_machine_refuses_chunks() {
    let mut k = Kcp::new(1, KcpConfig::fast3(), test_start());
    k.close();
    assert_eq!(k.write_chunk(pattern(10)), Err(WriteError::Closed));
    assert_eq!(
        ByteStream::write_chunk(&mut k, pattern(10)),
        Err(StreamError::Closed)
    );
    assert_eq!(k.write_chunk(Bytes::new()), Err(WriteError::Closed));
}

/// A PUSH that is next in order, copied once by the layer below (the FEC decoder's stored
/// shard), reaches the reader as a slice of that copy; anything else is refused.
#[test]
fn a_stored_next_in_order_push_reaches_the_reader_without_a_copy() {
    let now = test_start();
    let cfg = KcpConfig::fast3().with_stream(true);
    let (mut a, mut b) = (Kcp::new(1, cfg, now), Kcp::new(1, cfg, now));
    let data: Vec<u8> = (0..1000u32).map(|i| (i % 251) as u8).collect();
    a.write(&data).unwrap();
    let mut dgram = Vec::new();
    a.poll_transmit(now, &mut dgram).unwrap();
    // What the FEC layer keeps: a 2-byte size field, then the KCP bytes.
    let mut shard = vec![0xaa, 0xbb];
    shard.extend_from_slice(&dgram);
    let mut other = shard.clone();
    other[2] ^= 1; // another conversation
    assert!(b.copy_if_next_in_order(&other, 2).is_none());
    let stored = b.copy_if_next_in_order(&shard, 2).expect("next in order");
    assert_eq!(stored[..], shard[..]);
    b.handle_shared(now, &stored, 2, true).unwrap();
    let chunk = b.read_chunk(usize::MAX).unwrap();
    assert_eq!(chunk[..], data[..]);
    let inside = stored.as_ptr() as usize..stored.as_ptr() as usize + stored.len();
    assert!(
        inside.contains(&(chunk.as_ptr() as usize)),
        "the payload was copied"
    );
    assert!(
        b.copy_if_next_in_order(&shard, 2).is_none(),
        "no longer next in order"
    );
}
