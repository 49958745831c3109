//! mio adapter for tether-core, and the pieces the tokio and smol adapters share:
//! [`udp`] (batched `recvmmsg`/`sendmmsg`), [`hub`] (application stream buffers and
//! wakers) and [`driver`] (the body of the socket loop).
#![warn(missing_docs)]

pub mod config;
pub mod driver;
pub mod endpoint;
pub mod hub;
pub mod udp;

pub use tether_core as core;
