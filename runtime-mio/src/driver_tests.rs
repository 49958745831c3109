//! The driver's stream bookkeeping.
use std::sync::Arc;
use std::time::Instant;

use tether_core::driver::StreamId;

use super::Driver;
use crate::config::Config;
use crate::hub::Hub;

/// A stream whose session closed while the application still held it is forgotten once
/// the application drops it (its entry would otherwise stay in the hub for good: one per
/// session an idle timeout or dead link ended under a live handle).
#[test]
fn a_stream_dropped_after_its_session_closed_is_forgotten() {
    let hub = Arc::new(Hub::default());
    let mut driver = Driver::new(Config::default().listener(false), Arc::clone(&hub), false);
    let id = driver.connect(Instant::now(), "127.0.0.1:9".parse().unwrap());
    driver.listener.close(id);
    driver.sync(Instant::now());
    assert!(
        hub.lock()
            .streams
            .get(&(id, StreamId::SOLE))
            .is_some_and(|s| s.gone.is_some()),
        "the held stream learns its session is gone"
    );
    hub.drop_stream((id, StreamId::SOLE));
    driver.sync(Instant::now());
    assert!(
        hub.lock().streams.is_empty(),
        "the dropped stream is forgotten"
    );
}

/// A connection handle's stream comes from the driver, and once the handle and its stream
/// are dropped the driver closes the session and forgets the connection (nothing unsent,
/// so no linger).
#[test]
fn a_dropped_connection_closes_once_its_streams_are_dropped() {
    let hub = Arc::new(Hub::default());
    hub.lock().multiplexed = true;
    let mut driver = Driver::new(Config::default().listener(false), Arc::clone(&hub), false);
    let now = Instant::now();
    let id = driver.connect_conn(now, "127.0.0.1:9".parse().unwrap());
    hub.request_open(id);
    driver.sync(now);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    let sid = match hub.poll_opened(id, &mut cx) {
        std::task::Poll::Ready(Ok(sid)) => sid,
        other => panic!("open_stream: {other:?}"),
    };
    assert!(hub.lock().streams.contains_key(&(id, sid)));
    hub.drop_connection(id);
    driver.sync(now);
    assert!(
        driver.listener.remote(id).is_some(),
        "a held stream keeps its connection"
    );
    hub.drop_stream((id, sid));
    driver.sync(now);
    assert!(driver.listener.remote(id).is_none(), "the session closed");
    let st = hub.lock();
    assert!(
        st.streams.is_empty() && st.conns.is_empty(),
        "nothing left in the hub"
    );
}

/// A connection that ends wakes its handle: `accept_stream` answers with the reason.
#[test]
fn a_closed_connection_ends_accept_stream() {
    let hub = Arc::new(Hub::default());
    hub.lock().multiplexed = true;
    let mut driver = Driver::new(Config::default().listener(false), Arc::clone(&hub), false);
    let id = driver.connect_conn(Instant::now(), "127.0.0.1:9".parse().unwrap());
    driver.listener.close(id);
    driver.sync(Instant::now());
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    assert!(matches!(
        hub.poll_accept_stream(id, &mut cx),
        std::task::Poll::Ready(Err(_))
    ));
}

/// kcptun's `--snmplog` reads the hub's counters, refreshed at most every `SNMP_REFRESH`: a
/// burst inside one period must still reach them. A pass that skips the refresh leaves one
/// due at the end of the period; after it the idle driver has no deadline again.
#[test]
fn counters_catch_up_after_a_burst_shorter_than_the_refresh_period() {
    let hub = Arc::new(Hub::default());
    let mut driver = Driver::new(Config::default().listener(false), Arc::clone(&hub), false);
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let peer = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let t0 = Instant::now();
    let id = driver.connect(t0, peer.local_addr().unwrap());
    driver.process(&sock, t0).unwrap();
    assert_eq!(hub.lock().snmp.out_pkts, 0);
    let session = driver.listener.session_mut(id).unwrap();
    session.write(b"a burst").unwrap();
    let t1 = t0 + super::SNMP_REFRESH / 10;
    driver.process(&sock, t1).unwrap();
    assert_eq!(
        hub.lock().snmp.out_pkts,
        0,
        "refreshed at most every period"
    );
    let due = t0 + super::SNMP_REFRESH;
    assert!(
        driver.deadline().is_some_and(|d| d <= due),
        "a refresh is due"
    );
    driver.process(&sock, due).unwrap();
    assert!(hub.lock().snmp.out_pkts > 0, "the burst is counted");
    driver.listener.close(id);
    driver.process(&sock, due).unwrap();
    driver.process(&sock, due + super::SNMP_REFRESH).unwrap();
    assert_eq!(driver.deadline(), None, "idle: no timer");
}
