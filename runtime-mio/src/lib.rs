//! The runtime base of tether: everything a runtime adapter needs except readiness, one
//! timer and a spawn, written once.
//!
//! * [`udp`]: batched `recvmmsg`/`sendmmsg`, GSO and GRO;
//! * [`driver`]: one endpoint's protocol state and the body of a socket loop, generic over
//!   the datagram endpoint ([`driver::LoopEndpoint`]: the KCP listener, or another
//!   protocol's `tether_core::driver::DatagramEndpoint`, e.g. penet's);
//! * [`hub`]: the application's stream buffers and wakers, keyed by (connection, stream), and
//!   per connection the streams the peer opened;
//! * [`socket_loop`]: the UDP socket loop as one `async fn`, generic over [`runtime::Runtime`]
//!   (readiness of a socket, a sleep-until timer, yield, spawn; as quinn's `Runtime`);
//! * [`handle`]: the listener, connection and stream handles the tokio and smol crates wrap
//!   (a connection handle opens and accepts the streams of a multiplexed stack), binding,
//!   host resolution and `SO_REUSEPORT` socket sets;
//! * [`tcp_conn`]: TCP connections carrying a multiplexer (`Stack<StreamLink, U>`) through
//!   the same hub and [`handle::ConnectionHandle`] as KCP: a dialer and a TCP listener, one
//!   socket loop per connection;
//! * [`blocks`]: a pool of reusable 64 KiB read/write blocks;
//! * [`uninit_read`]: reads from a descriptor into a `BytesMut`'s spare capacity (no zeroing);
//! * [`tcp_loop`]: the single-stream TCP socket loop, generic over the runtime and over a
//!   byte-stream machine (`tether_core::driver::{Machine, ByteStream}`);
//! * `endpoint` and `tcp_endpoint` (feature `mio`, on by default): single-threaded UDP and
//!   TCP endpoints for the application's own `mio::Poll` (the UDP one, `UdpEndpoint`,
//!   generic over the datagram endpoint as the driver is).
//!
//! # Why the base lives in this crate
//!
//! The workspace keeps one crate per runtime and no separate "base" crate: the shared code
//! is this crate's runtime-independent part, and mio is an optional default feature.
//! `tether-runtime-tokio` and `tether-runtime-smol` depend on it with
//! `default-features = false`, so their users compile neither mio nor the mio endpoint;
//! they only implement [`runtime::Runtime`] and their runtime's `AsyncRead`/`AsyncWrite`
//! over [`handle::StreamHandle`].
#![warn(missing_docs)]

/// The body of `impl mio::event::Source` for a type whose registered socket is
/// `self.$field` (the mio endpoints).
#[cfg(feature = "mio")]
macro_rules! delegate_source {
    ($field:ident) => {
        fn register(
            &mut self,
            registry: &mio::Registry,
            token: mio::Token,
            interests: mio::Interest,
        ) -> std::io::Result<()> {
            self.$field.register(registry, token, interests)
        }

        fn reregister(
            &mut self,
            registry: &mio::Registry,
            token: mio::Token,
            interests: mio::Interest,
        ) -> std::io::Result<()> {
            self.$field.reregister(registry, token, interests)
        }

        fn deregister(&mut self, registry: &mio::Registry) -> std::io::Result<()> {
            self.$field.deregister(registry)
        }
    };
}

pub mod blocks;
pub mod config;
pub mod driver;
#[cfg(feature = "mio")]
pub mod endpoint;
pub mod gfni;
pub mod handle;
pub mod hub;
mod pump;
pub mod runtime;
pub mod socket_loop;
pub mod tcp_conn;
#[cfg(feature = "mio")]
pub mod tcp_endpoint;
pub mod tcp_loop;
pub mod udp;
pub mod uninit_read;

pub use tether_core as core;
