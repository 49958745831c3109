//! The hub's per-stream ends through [`super`]'s pump, against a TCP-carried toy mux
//! (`Stack<StreamLink, ToyMux>`) moved by hand: half-close, end of stream, a stream the
//! protocol closed, refused opens.
use std::io;
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use tether_core::driver::{Machine, Streams};
use tether_core::sim::toy_mux::ToyMux;
use tether_core::stack::Stack;
use tether_core::stream_link::StreamLink;

use super::*;
use crate::hub::{Hub, StreamBuf};
use crate::tcp_conn::conn_tag;

type Conn = Stack<StreamLink, ToyMux>;

/// Hands `from`'s bytes to `to`, as a TCP loop would.
fn deliver(from: &mut Conn, to: &mut Conn) {
    let now = Instant::now();
    let mut buf = Vec::new();
    while from.has_transmit() {
        if from.poll_transmit(now, &mut buf).is_none() {
            break;
        }
    }
    to.handle_input(now, &buf).unwrap();
}

/// One pump of stream `key` of `hub` over `conn` (what a socket loop does on an event).
fn pump_once(hub: &Hub, conn: &mut Conn, key: StreamKey) {
    let mut st = hub.lock();
    let s = st.streams.get_mut(&key).unwrap();
    let moved = exchange(s, conn, key.1);
    let acked = conn.all_acked(key.1);
    settle(&mut st, key, moved, acked);
}

fn cx() -> Context<'static> {
    Context::from_waker(Waker::noop())
}

/// `poll_shutdown` finishes the stream once its bytes are in the stack and is ready once
/// the FIN is taken; writes fail after it; the peer reads the bytes, then `Ok(0)`.
#[test]
fn shutdown_sends_a_fin_and_the_peer_reads_to_the_end() {
    let (mut a, mut b) = (
        Stack::new(StreamLink::default(), ToyMux::client()),
        Stack::new(StreamLink::default(), ToyMux::server()),
    );
    let (ha, hb) = (Hub::default(), Hub::default());
    let sid = a.open_stream().unwrap();
    let key = (conn_tag(), sid);
    ha.lock().streams.insert(key, StreamBuf::default());
    assert!(matches!(
        ha.poll_write(key, &mut cx(), b"hello"),
        Poll::Ready(Ok(5))
    ));
    assert!(
        ha.poll_shutdown(key, &mut cx()).is_pending(),
        "the bytes are not in yet"
    );
    pump_once(&ha, &mut a, key);
    assert_eq!(ha.lock().streams[&key].shutdown, Shutdown::Done);
    assert!(matches!(
        ha.poll_shutdown(key, &mut cx()),
        Poll::Ready(Ok(()))
    ));
    match ha.poll_write(key, &mut cx(), b"more") {
        Poll::Ready(Err(e)) => assert_eq!(e.kind(), io::ErrorKind::BrokenPipe),
        other => panic!("a write after shutdown: {other:?}"),
    }
    deliver(&mut a, &mut b);
    assert_eq!(b.accept_stream(), Some(sid));
    hb.lock().streams.insert(key, StreamBuf::default());
    pump_once(&hb, &mut b, key);
    let mut buf = [0u8; 16];
    assert!(matches!(
        hb.poll_read(key, &mut cx(), &mut buf),
        Poll::Ready(Ok(5))
    ));
    assert_eq!(&buf[..5], b"hello");
    assert!(matches!(
        hb.poll_read(key, &mut cx(), &mut buf),
        Poll::Ready(Ok(0))
    ));
    // The half-closed stream still carries bytes the other way.
    assert!(matches!(
        hb.poll_write(key, &mut cx(), b"back"),
        Poll::Ready(Ok(4))
    ));
    pump_once(&hb, &mut b, key);
    deliver(&mut b, &mut a);
    pump_once(&ha, &mut a, key);
    assert!(matches!(
        ha.poll_read(key, &mut cx(), &mut buf),
        Poll::Ready(Ok(4))
    ));
}

/// A stream the protocol closed (`StreamClosed`) gives what arrived, then
/// `ConnectionReset`; writes fail at once; a dropped one is forgotten.
#[test]
fn a_closed_stream_drains_then_fails() {
    let hub = Hub::default();
    let (one, two) = ((conn_tag(), StreamId(1)), (conn_tag(), StreamId(3)));
    {
        let mut st = hub.lock();
        let mut s = StreamBuf::default();
        s.recv.extend_from_slice(b"ab");
        st.streams.insert(one, s);
        let mut s = StreamBuf::default();
        s.dropped = true;
        st.streams.insert(two, s);
        st.stream_closed(one);
        st.stream_closed(two);
        assert!(
            !st.streams.contains_key(&two),
            "a dropped stream is forgotten"
        );
    }
    let mut buf = [0u8; 8];
    assert!(matches!(
        hub.poll_read(one, &mut cx(), &mut buf),
        Poll::Ready(Ok(2))
    ));
    for r in [
        hub.poll_read(one, &mut cx(), &mut buf),
        hub.poll_write(one, &mut cx(), b"x"),
    ] {
        match r {
            Poll::Ready(Err(e)) => assert_eq!(e.kind(), io::ErrorKind::ConnectionReset),
            other => panic!("after StreamClosed: {other:?}"),
        }
    }
}

/// A refused `open_stream` answers the call with `ConnectionRefused` and the stack's
/// reason; on a connection already gone, too.
#[test]
fn a_refused_open_is_an_error() {
    let mut conn = Stack::new(StreamLink::default(), ToyMux::client().with_stream_limit(0));
    let hub = Hub::default();
    let id = conn_tag();
    hub.lock().conns.entry(id).or_default().held = true;
    for gone in [false, true] {
        hub.request_open(id);
        let c = (!gone).then_some(&mut conn);
        assert_eq!(serve_conn(&mut hub.lock(), id, None, c), ConnVerdict::Keep);
        match hub.poll_opened(id, &mut cx()) {
            Poll::Ready(Err(e)) => {
                assert_eq!(e.kind(), io::ErrorKind::ConnectionRefused);
                assert!(e.to_string().contains("closed on this side"), "{e}");
            }
            other => panic!("a refused open: {other:?}"),
        }
    }
}

/// On a plain KCP session (no FIN, stream or message mode) a shutdown settles as
/// `Unsupported`: it then waits for the acknowledgements, as before half-closes existed.
#[test]
fn a_shutdown_without_a_fin_settles_as_unsupported() {
    use tether_core::rng::seeded;
    use tether_core::session::Session;
    use tether_core::stack::Plain;

    let cfg = crate::tcp_conn::raw_session();
    let session = Session::client(1, &cfg, Instant::now(), Box::new(seeded(1)));
    let mut conn = Stack::new(session, Plain::default());
    let mut s = StreamBuf::default();
    s.shutdown = Shutdown::Requested;
    assert!(finish_if_asked(&mut s, &mut conn, StreamId::SOLE));
    assert_eq!(s.shutdown, Shutdown::Unsupported);
}
