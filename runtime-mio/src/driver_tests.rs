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
