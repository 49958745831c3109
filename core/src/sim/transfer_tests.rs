//! The transfer harness: the wire bytes of KCP and session transfers stay bit-for-bit what
//! they were before the harness moved to the byte-stream interface, and a multiplexer's
//! streams run through the same harness by id.
use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use super::transfer::{
    run_session_transfer, run_streams, run_transfer, Sole, StreamPeer, StreamPlan, Tap,
    TransferConfig, TransferReport,
};
use super::{test_start, LinkConfig, Pair, PipeConfig, SeedGuard};
use crate::driver::{Machine, StreamError, StreamEvent, StreamId, Streams, Transmit};
use crate::kcp::{Kcp, KcpConfig, KcpFlavor};
use crate::session::SessionConfig;

/// A kcptun session config: fast mode, windows 256, MTU 1350, stream mode.
fn session(crypt: &str, data_shards: usize, parity_shards: usize) -> SessionConfig {
    let kcp = KcpConfig::fast()
        .with_windows(256, 256)
        .with_mtu(1350)
        .with_stream(true);
    SessionConfig::kcptun(kcp, crypt, "it's a secrect", data_shards, parity_shards)
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
            &TransferConfig::symmetric(
                200_000,
                KcpConfig::fast(),
                LinkConfig::kcptun_10pct_loss(),
                1,
            ),
            test_start(),
        )),
        fingerprint(&run_transfer(
            &TransferConfig::symmetric(
                300_000,
                KcpConfig::fast3().with_windows(256, 256),
                LinkConfig::congested(),
                2,
            ),
            test_start(),
        )),
        fingerprint(&run_transfer(
            &TransferConfig::symmetric(50_000, ikcp, lossy.clone(), 3),
            test_start(),
        )),
        fingerprint(&run_session_transfer(
            &TransferConfig::symmetric(150_000, KcpConfig::fast(), LinkConfig::wifi_lossy(), 4),
            &session("aes", 10, 3),
            test_start(),
        )),
        fingerprint(&run_session_transfer(
            &TransferConfig::symmetric(100_000, KcpConfig::fast(), lossy, 5),
            &session("chacha20-poly1305", 0, 0),
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
    "1000b2d24f233b8039d3523b63e7becf0a4f84c7a0201b63f76377b1a5554e87 94878250 150000 116 3 21340683",
    "2a8132aeff9afc07bbd16a1476b382ae1e425c17b6f4aac12d9e6009e288e65b 585492061 100000 118 61 98621401",
];

#[test]
fn sole_carries_one_stream() {
    let start = test_start();
    let mut s = Sole::new(Kcp::new(1, KcpConfig::fast(), start));
    assert_eq!(
        s.accept_stream(),
        Some(StreamId::SOLE),
        "the peer's one stream"
    );
    assert_eq!(s.accept_stream(), None, "accepted once");
    assert_eq!(
        s.open_stream(),
        Ok(StreamId::SOLE),
        "opening names the same stream"
    );
    let other = StreamId(3);
    assert_eq!(s.write(other, b"x"), Err(StreamError::Unknown(other)));
    assert_eq!(s.read(other, &mut [0; 4]), Err(StreamError::Unknown(other)));
    assert_eq!(
        s.read(StreamId::SOLE, &mut [0; 4]),
        Err(StreamError::Blocked)
    );
    assert_eq!(s.write(StreamId::SOLE, b"hello"), Ok(5));
    assert!(!s.all_acked(StreamId::SOLE));
    assert_eq!(s.finish(StreamId::SOLE), Err(StreamError::Unsupported));
    assert_eq!(s.kcp_stats(), Some(s.inner.stats()));
}

/// Frame header of the toy multiplexer: stream id (u32) and payload length (u16), big endian.
const HEADER: usize = 6;

/// A minimal multiplexer over a lossless byte stream: frames `[id][len][payload]`, a frame
/// with a new id opens that stream, a bounded send buffer is the only flow control. The
/// dialer numbers its streams 1, 3, 5, … (smux's client side).
struct Mux {
    next_id: u32,
    out: VecDeque<u8>,
    out_limit: usize,
    inbuf: Vec<u8>,
    received: BTreeMap<StreamId, VecDeque<u8>>,
    backlog: VecDeque<StreamId>,
    events: VecDeque<StreamEvent<()>>,
}

impl Mux {
    fn new() -> Self {
        Mux {
            next_id: 1,
            out: VecDeque::new(),
            out_limit: 16 * 1024,
            inbuf: Vec::new(),
            received: BTreeMap::new(),
            backlog: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    fn frame(&mut self, id: StreamId, payload: &[u8]) {
        let len = u16::try_from(payload.len()).expect("callers cap frames at u16::MAX");
        self.out.extend(id.0.to_be_bytes());
        self.out.extend(len.to_be_bytes());
        self.out.extend(payload);
    }

    /// Takes every whole frame off the front of `inbuf`.
    fn parse(&mut self) {
        let mut at = 0;
        while let Some(h) = self.inbuf.get(at..at + HEADER) {
            let id = StreamId(u32::from_be_bytes([h[0], h[1], h[2], h[3]]));
            let len = usize::from(u16::from_be_bytes([h[4], h[5]]));
            let Some(payload) = self.inbuf.get(at + HEADER..at + HEADER + len) else {
                break;
            };
            let stream = self.received.entry(id).or_insert_with(|| {
                self.backlog.push_back(id);
                self.events.push_back(StreamEvent::Opened(id));
                VecDeque::new()
            });
            stream.extend(payload);
            at += HEADER + len;
        }
        self.inbuf.drain(..at);
    }
}

impl Machine for Mux {
    type Event = StreamEvent<()>;
    type InputError = ();
    fn handle_input(&mut self, _now: Instant, data: &[u8]) -> Result<(), ()> {
        self.inbuf.extend_from_slice(data);
        self.parse();
        Ok(())
    }
    fn poll_transmit(&mut self, _now: Instant, buf: &mut Vec<u8>) -> Option<Transmit> {
        let n = self.out.len().min(4096);
        buf.extend(self.out.drain(..n));
        (n > 0).then_some(Transmit { len: n })
    }
    fn has_transmit(&self) -> bool {
        !self.out.is_empty()
    }
    fn poll_timeout(&self) -> Option<Instant> {
        None
    }
    fn handle_timeout(&mut self, _now: Instant) {}
    fn poll_event(&mut self) -> Option<StreamEvent<()>> {
        self.events.pop_front()
    }
}

impl Streams for Mux {
    fn open_stream(&mut self) -> Result<StreamId, StreamError> {
        let id = StreamId(self.next_id);
        self.next_id += 2;
        self.received.insert(id, VecDeque::new());
        self.frame(id, &[]);
        Ok(id)
    }
    fn accept_stream(&mut self) -> Option<StreamId> {
        self.backlog.pop_front()
    }
    fn write(&mut self, id: StreamId, data: &[u8]) -> Result<usize, StreamError> {
        if !self.received.contains_key(&id) {
            return Err(StreamError::Unknown(id));
        }
        let room = self.out_limit.saturating_sub(self.out.len() + HEADER);
        let n = data.len().min(room).min(usize::from(u16::MAX));
        if n == 0 {
            return Err(StreamError::Blocked);
        }
        self.frame(id, &data[..n]);
        Ok(n)
    }
    fn read(&mut self, id: StreamId, buf: &mut [u8]) -> Result<usize, StreamError> {
        let stream = self.received.get_mut(&id).ok_or(StreamError::Unknown(id))?;
        let n = stream.len().min(buf.len());
        if n == 0 {
            return Err(StreamError::Blocked);
        }
        for (dst, src) in buf.iter_mut().zip(stream.drain(..n)) {
            *dst = src;
        }
        Ok(n)
    }
    fn finish(&mut self, _id: StreamId) -> Result<(), StreamError> {
        Err(StreamError::Unsupported)
    }
    fn close_stream(&mut self, _id: StreamId) {}
    fn all_acked(&self, _id: StreamId) -> bool {
        self.out.is_empty()
    }
}

impl StreamPeer for Mux {}

/// The report, and the sender's pipe counters.
fn two_streams(seed: u64) -> (TransferReport, crate::sim::PipeStats) {
    let start = test_start();
    let pipe = PipeConfig::perfect()
        .with_delay(Duration::from_millis(15))
        .with_rate(10_000_000)
        .with_buffer(32 * 1024)
        .with_max_chunk(700);
    let mut pair = Pair::over_pipe(
        Tap::new(Mux::new()),
        Tap::new(Mux::new()),
        start,
        pipe.clone(),
        pipe,
        seed,
    );
    let plan = StreamPlan {
        streams: 2,
        bytes: 300_000,
        chunk: 1000,
        seed,
        time_limit: Duration::from_secs(60),
    };
    let report = run_streams(&mut pair, &plan);
    (report, pair.a_to_b.stats())
}

#[test]
fn two_streams_of_a_multiplexer_run_through_the_harness() {
    let guard = SeedGuard::new(crate::sim::seed_from_env(17));
    let (r, pipe) = two_streams(guard.seed());
    assert!(r.completed, "{r:?}");
    assert!(
        pipe.refused > 0,
        "the pipe pushed back on the mux: {pipe:?}"
    );
    assert_eq!(r.delivered, 600_000);
    let ids: Vec<StreamId> = r.streams.iter().map(|t| t.id).collect();
    assert_eq!(ids, [StreamId(1), StreamId(3)]);
    for t in &r.streams {
        assert_eq!(t.delivered, 300_000, "{t:?}");
        assert_eq!(t.sha256_sent, t.sha256_received, "{t:?}");
    }
    assert_ne!(
        r.streams[0].sha256_sent, r.streams[1].sha256_sent,
        "each stream carries its own payload"
    );
    assert_eq!(r.sha256_sent, r.sha256_received);
    assert_eq!(r.latencies.len(), 600, "one latency per 1000-byte chunk");
    assert_eq!(r.sender, Default::default(), "no KCP counters without KCP");
    // 600 kB at 10 Mbit/s: at least 480 ms on the wire, plus the delay.
    assert!(r.elapsed >= Duration::from_millis(495), "{:?}", r.elapsed);
    let (again, _) = two_streams(guard.seed());
    assert_eq!(again.wire_digest, r.wire_digest);
    assert_eq!(again.elapsed, r.elapsed);
}
