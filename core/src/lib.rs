//! # tether-core
//!
//! Pure, deterministic protocol state machines. Nothing in this crate reads a clock, sleeps,
//! touches a socket or draws from a global RNG: time (`now`) and randomness (a seed or an
//! injected RNG) are arguments.
//!
//! Every machine has the same driver shape (see [`driver::Machine`]):
//!
//! ```
//! use std::time::{Duration, Instant};
//! use tether_core::driver::Machine;
//! use tether_core::kcp::{Kcp, KcpConfig};
//!
//! let start = Instant::now(); // the caller owns the clock
//! let mut a = Kcp::new(0x1234, KcpConfig::fast(), start);
//! let mut b = Kcp::new(0x1234, KcpConfig::fast(), start);
//! a.write(b"hello").unwrap(); // queued; the next poll_transmit flushes it
//! let mut now = start;
//! let mut buf = Vec::new();
//! let mut got = Vec::new();
//! for _ in 0..100 {
//!     // 1. drain datagrams and hand them to the socket (here: straight to the peer)
//!     while let Some(t) = a.poll_transmit(now, &mut buf) {
//!         b.handle_input(now, &buf[..t.len]).ok();
//!         buf.clear();
//!     }
//!     while let Some(t) = b.poll_transmit(now, &mut buf) {
//!         a.handle_input(now, &buf[..t.len]).ok();
//!         buf.clear();
//!     }
//!     // 2. read application data
//!     let mut chunk = [0u8; 64];
//!     while let Ok(n) = b.recv(&mut chunk) {
//!         got.extend_from_slice(&chunk[..n]);
//!     }
//!     // 3. sleep until the earliest deadline (None = idle: no timer at all)
//!     match [a.poll_timeout(), b.poll_timeout()].into_iter().flatten().min() {
//!         Some(t) => {
//!             now = now.max(t);
//!             a.handle_timeout(now);
//!             b.handle_timeout(now);
//!         }
//!         None => break,
//!     }
//! }
//! assert_eq!(got, b"hello");
//! assert_eq!(a.poll_timeout(), None, "idle sessions arm no timer");
//! ```
//!
//! Modules: [`wire`] (panic-free codecs), [`time`] (wire clocks), [`rng`], [`kcp`] (the ARQ),
//! and, behind the `sim` feature, [`sim`] (the seeded in-memory link simulator).
//!
//! ## Decoders never panic
//!
//! Every byte a peer sends reaches a decoder, so a panic there is a remote crash. Decoders are
//! panic-free by construction. Their modules build under
//! `#![deny(clippy::indexing_slicing, clippy::unwrap_used, clippy::expect_used)]`
//! ([`wire`], `kcp::segment`, `kcp::input`, `session::crypt`, `session::aead`,
//! `session::handshake`, `session::fec`, `session::autotune`); where a module mixes decoding
//! with other work, its decode functions carry the same `#[deny(...)]` (the datagram path of
//! `session::Session`, `Kcp::handle_packet`). Fields are read with [`wire::Reader`] (its
//! `array::<N>()` yields fixed-size fields such as nonces and tags), `get`,
//! `split_first_chunk`, `split_at_checked` or iterators, so a short or malformed input is an
//! error value, never an index out of bounds. A few key-setup and send-path functions in those
//! modules keep an `expect` behind a reasoned `#[expect(clippy::..., reason = "...")]`; they
//! never see received bytes. New protocol decoders (smux frames, penet, goscon, the listener
//! demux) follow the same rule. Unit tests may index and unwrap (`core/clippy.toml`).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod chunks;
pub mod driver;
pub mod kcp;
pub mod reclaim;
pub mod rng;
pub mod session;
pub mod smux;
pub mod snappy;
pub mod stack;
pub mod stream_link;
pub mod time;
pub mod wire;

#[cfg(any(test, feature = "sim"))]
pub mod sim;

#[cfg(any(test, feature = "fuzzing"))]
pub mod fuzzing;
