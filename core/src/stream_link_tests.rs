//! StreamLink: bounded buffers, swap-out transmits, end of stream, close, overrun, and a
//! ToyMux stack over simulated TCP pipes.
use std::time::Duration;

use super::*;
use crate::sim::toy_mux::{two_streams_over, ToyMux};
use crate::sim::{test_start, Pair, PipeConfig};
use crate::stack::Stack;
use bytes::{Bytes, BytesMut};

fn small() -> StreamLinkConfig {
    StreamLinkConfig {
        recv_buffer: 8,
        send_buffer: 4,
    }
}

#[test]
fn write_blocks_at_the_send_bound_then_writable_after_transmit() {
    let now = test_start();
    let mut l = StreamLink::new(small());
    assert_eq!(l.write(b"abcdef"), Ok(4));
    assert_eq!(l.write(b"x"), Err(StreamError::Blocked));
    let mut buf = Vec::new();
    assert_eq!(l.poll_transmit(now, &mut buf), Some(Transmit { len: 4 }));
    assert_eq!(buf, b"abcd");
    assert!(!l.has_transmit());
    assert_eq!(l.poll_event(), Some(StreamEvent::Writable(StreamId::SOLE)));
    assert_eq!(
        l.poll_event(),
        Some(StreamEvent::Acknowledged(StreamId::SOLE))
    );
    assert!(l.all_acked());
    // A non-empty caller buffer is appended to, not replaced.
    l.write(b"ef").unwrap();
    l.poll_transmit(now, &mut buf).unwrap();
    assert_eq!(buf, b"abcdef");
}

#[test]
fn input_stops_being_wanted_at_the_bound_and_overrun_closes() {
    let now = test_start();
    let mut l = StreamLink::new(small());
    l.handle_input(now, b"12345678").unwrap();
    assert!(!l.wants_input());
    assert_eq!(l.poll_event(), Some(StreamEvent::Readable(StreamId::SOLE)));
    let mut got = [0u8; 3];
    assert_eq!(l.read(&mut got), Ok(3));
    assert!(l.wants_input());
    assert_eq!(l.handle_input(now, &[0; 12]), Err(LinkInputError::Overrun));
    assert_eq!(
        l.poll_event(),
        Some(StreamEvent::Closed(LinkCloseReason::Overrun))
    );
    assert_eq!(l.handle_input(now, b"x"), Err(LinkInputError::Closed));
}

#[test]
fn eof_reads_out_then_finishes_and_finish_asks_for_shutdown() {
    let now = test_start();
    let mut l = StreamLink::default();
    l.handle_input(now, b"ab").unwrap();
    l.handle_eof(now);
    assert!(!l.wants_input());
    let mut got = [0u8; 1];
    assert_eq!(l.read(&mut got), Ok(1));
    assert_eq!(l.read(&mut got), Ok(1));
    assert_eq!(l.read(&mut got), Err(StreamError::Finished));
    l.write(b"bye").unwrap();
    l.finish().unwrap();
    assert!(!l.wants_shutdown(), "bytes still to hand out");
    assert_eq!(l.write(b"more"), Err(StreamError::Closed));
    l.poll_transmit(now, &mut Vec::new()).unwrap();
    assert!(l.wants_shutdown());
}

#[test]
fn disconnect_and_local_close_report_closed_once() {
    let now = test_start();
    let mut l = StreamLink::default();
    l.write(b"lost").unwrap();
    l.handle_disconnect(now);
    l.close_connection(false);
    let evs: Vec<_> = std::iter::from_fn(|| l.poll_event()).collect();
    assert_eq!(
        evs,
        vec![StreamEvent::Closed(LinkCloseReason::Disconnected)]
    );
    assert!(!l.has_transmit(), "a broken connection sends nothing");
}

/// Two ToyMux streams over simulated TCP pipes with small receive buffers and a slow
/// reader: back-pressure through `wants_input`, every byte delivered in order.
#[test]
fn toy_mux_over_pipes_delivers_under_backpressure() {
    let start = test_start();
    let link = StreamLinkConfig {
        recv_buffer: 4096,
        send_buffer: 4096,
    };
    let a = Stack::new(StreamLink::new(link), ToyMux::client());
    let b = Stack::new(StreamLink::new(link), ToyMux::server());
    let pipe = PipeConfig::perfect()
        .with_delay(Duration::from_millis(5))
        .with_buffer(16 * 1024)
        .with_max_chunk(1500);
    let mut pair = Pair::over_pipe(a, b, start, pipe.clone(), pipe, 7);
    let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let (got, accepted) = two_streams_over(&mut pair, &data, 512);
    assert_eq!(accepted, 2);
    for g in &got {
        assert!(
            g == &data,
            "stream delivered {} of {} bytes",
            g.len(),
            data.len()
        );
    }
}

/// Owned input is kept: a long enough read is a slice of the chunk handed in (no copy), a
/// short one a copy (a held slice pins its whole chunk); a frame written as header + owned
/// payload goes out with the payload itself among the pieces.
#[test]
fn owned_chunks_pass_through_without_copies() {
    let now = test_start();
    let mut l = StreamLink::default();
    let input = Bytes::from(vec![5u8; 3 * SLICE_MIN]);
    l.handle_input_bytes(now, input.clone()).unwrap();
    let big = l.read_chunk(2 * SLICE_MIN, &mut BytesMut::new()).unwrap();
    assert_eq!(big.as_ptr(), input.as_ptr(), "a slice of the input");
    let small = l.read_chunk(10, &mut BytesMut::new()).unwrap();
    assert_ne!(
        small.as_ptr(),
        input[2 * SLICE_MIN..].as_ptr(),
        "short: copied"
    );
    assert_eq!(l.unread(), SLICE_MIN - 10);

    let body = Bytes::from(vec![9u8; 4096]);
    assert_eq!(
        l.write_frame_bytes(b"head", std::slice::from_ref(&body)),
        Ok(4100)
    );
    let mut pieces = Vec::new();
    assert_eq!(
        l.poll_transmit_bytes(now, &mut pieces),
        Some(Transmit { len: 4100 })
    );
    assert_eq!(&pieces[0][..], b"head");
    assert_eq!(pieces[1].as_ptr(), body.as_ptr(), "the payload itself");
    assert_eq!(l.poll_event(), Some(StreamEvent::Readable(StreamId::SOLE)));
    assert_eq!(
        l.poll_event(),
        Some(StreamEvent::Acknowledged(StreamId::SOLE))
    );
}
