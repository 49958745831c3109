//! The counters as `tether netem` prints them.
use std::time::Duration;

use tether_core::sim::netem::{Dir, Report};

use super::proxy::Stopped;

/// The counters as printed on exit (and on SIGUSR1).
pub fn format_report(r: &Report, elapsed: Duration, why: Option<Stopped>) -> String {
    let mut s = match why {
        Some(Stopped::Duration) => format!("netem: stopped after {elapsed:.1?} (--duration)\n"),
        Some(Stopped::Signal(name)) => format!("netem: stopped by {name} after {elapsed:.1?}\n"),
        None => format!("netem: counters after {elapsed:.1?}\n"),
    };
    for dir in Dir::ALL {
        let d = r.dir(dir);
        let l = d.link;
        s.push_str(&format!(
            "netem: {}: sent={} delivered={} lost={} duplicated={} corrupted={} reordered={} \
             queue_dropped={} send_dropped={} send_errors={} recv_errors={} bytes_in={} bytes_out={}\n",
            dir.describe(),
            l.sent,
            l.delivered,
            l.lost,
            l.duplicated,
            l.corrupted,
            l.reordered,
            l.queue_dropped,
            d.send_dropped,
            d.send_errors,
            d.recv_errors,
            l.bytes_in,
            l.bytes_out,
        ));
    }
    s.push_str(&format!(
        "netem: clients: admitted={} active={} expired={} refused_datagrams={} in_flight={}\n",
        r.clients_admitted, r.clients_active, r.clients_expired, r.refused, r.in_flight
    ));
    s
}
