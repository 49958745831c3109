//! The seeded, in-memory link simulator (DESIGN §5).
//!
//! Compiled for core's own unit tests and, behind the `sim` feature, for integration tests,
//! benches and fuzz targets. It is itself sans-IO:
//!
//! - [`Link`] is one direction of an impaired path (loss, Gilbert–Elliott bursts, delay,
//!   jitter, reordering, duplication, corruption, a rate-limited drop-tail queue), configured
//!   by [`LinkConfig`] and its presets ([`LinkConfig::preset`], [`PRESET_NAMES`]). The same
//!   type can sit between two real UDP sockets as a userspace impairment proxy: [`netem`]
//!   is that proxy's sans-IO engine (client table, a seeded link per client and direction,
//!   counters), which `tether netem` drives with its sockets and clock.
//! - [`Pipe`] is one direction of a byte-stream connection (TCP as the application sees it):
//!   ordered and lossless, but re-chunked at random, delayed, rate-limited behind a bounded
//!   buffer that pushes back on the writer, and breakable: a disconnect loses every byte in
//!   transit until a reconnect brings a fresh connection ([`PipeConfig`], [`Connection`]).
//! - [`Pair`] joins two [`Machine`](crate::driver::Machine)s with a [`Medium`] each way (a
//!   link by default, a pipe with [`Pair::over_pipe`]) and drives them in virtual time:
//!   whenever nothing can happen at `now`, the clock jumps to the earliest deadline, so an
//!   hour of traffic runs in a fraction of a second. Over a pipe it breaks and restores the
//!   connection on call or by script and tells both machines through
//!   [`Transport`](crate::driver::Transport).
//! - [`transfer`] runs bulk transfers through the byte-stream interface
//!   ([`Streams`](crate::driver::Streams), by stream id) over either medium: a KCP session
//!   and a multiplexer's streams go through the same harness.
//! - [`seed_from_env`] and [`SeedGuard`] make every failure reproducible from one number:
//!   the seed is printed on panic and `TETHER_SIM_SEED=N` reruns it; `TETHER_DUMP_SEEDS=path`
//!   records the seeds of every run.
//!
//! Everything random derives from a `u64` seed, so one seed and one schedule of application
//! calls always produce the same bytes at the same virtual instants.
//!
//! ```
//! use std::time::{Duration, Instant};
//! use tether_core::driver::{Machine, Transmit};
//! use tether_core::sim::{seed_from_env, LinkConfig, Pair, SeedGuard};
//!
//! /// Sends one "ping" at start; answers any "ping" with a "pong".
//! struct Toy { out: Vec<&'static [u8]>, got: Vec<Vec<u8>>, due: Option<Instant> }
//!
//! impl Machine for Toy {
//!     type Event = Vec<u8>;
//!     type InputError = ();
//!     fn handle_input(&mut self, _now: Instant, data: &[u8]) -> Result<(), ()> {
//!         if data == b"ping" {
//!             self.out.push(b"pong");
//!         }
//!         self.got.push(data.to_vec());
//!         Ok(())
//!     }
//!     fn poll_transmit(&mut self, _now: Instant, buf: &mut Vec<u8>) -> Option<Transmit> {
//!         let d = self.out.pop()?;
//!         buf.extend_from_slice(d);
//!         Some(Transmit { len: d.len() })
//!     }
//!     fn has_transmit(&self) -> bool { !self.out.is_empty() }
//!     fn poll_timeout(&self) -> Option<Instant> { self.due }
//!     fn handle_timeout(&mut self, _now: Instant) {
//!         if self.due.take().is_some() {
//!             self.out.push(b"ping");
//!         }
//!     }
//!     fn poll_event(&mut self) -> Option<Vec<u8>> { self.got.pop() }
//! }
//!
//! let guard = SeedGuard::new(seed_from_env(1));
//! let start = Instant::now(); // tests read the clock once; the simulation never does
//! let a = Toy { out: vec![], got: vec![], due: Some(start) };
//! let b = Toy { out: vec![], got: vec![], due: None };
//! let link = LinkConfig::satellite().with_loss(0.0);
//! let mut pair = Pair::new(a, b, start, link.clone(), link, guard.seed());
//! pair.drive(); // until both machines and both links are idle
//! assert_eq!(pair.events_a, vec![b"pong".to_vec()]);
//! assert!(pair.elapsed() >= Duration::from_millis(600), "one satellite round trip");
//! ```
//!
//! A pipe on its own: what goes in comes out in order, cut into chunks of its choosing, and
//! a broken connection loses what was in transit.
//!
//! ```
//! use std::time::{Duration, Instant};
//! use tether_core::sim::{Connection, Medium, Pipe, PipeConfig};
//!
//! let start = Instant::now(); // the origin of virtual time; the pipe never reads a clock
//! let config = PipeConfig::perfect()
//!     .with_delay(Duration::from_millis(10))
//!     .with_buffer(8)
//!     .with_max_chunk(3);
//! let mut pipe = Pipe::new(config, 7);
//! assert_eq!(pipe.send(start, b"hello, world"), 8, "the 8-byte buffer pushes back");
//! let due = pipe.poll_timeout().unwrap();
//! let mut got = Vec::new();
//! while pipe.poll_deliver(due, &mut got).is_some() {}
//! assert_eq!(got, b"hello, w");
//! pipe.send(due, b"lost");
//! pipe.disconnect(due);
//! assert_eq!(pipe.poll_timeout(), None, "nothing survives in transit");
//! pipe.reconnect(due);
//! assert_eq!(pipe.send(due, b"again"), 5);
//! ```
mod link;
mod medium;
pub mod netem;
mod pair;
mod peer;
mod pipe;
#[cfg(test)]
mod pipe_tests;
mod seed;
pub mod toy_datagram;
pub mod toy_mux;
pub mod transfer;
#[cfg(test)]
mod transfer_tests;

pub use link::{Link, LinkConfig, LinkStats, Loss, DEFAULT_MAX_IN_FLIGHT, PRESET_NAMES};
pub use medium::{Connection, Medium};
pub use pair::{Pair, PairStats, DEFAULT_MAX_STEPS, DEFAULT_MAX_STEPS_PER_INSTANT};
pub use pipe::{Pipe, PipeConfig, PipeStats, DEFAULT_PIPE_BUFFER, SEGMENT_BYTES};
pub use seed::{parse_seed, seed_from_env, SeedGuard, DUMP_ENV, SEED_ENV};

/// The one real instant a unit test reads; everything after it is virtual time.
#[cfg(test)]
#[allow(clippy::disallowed_methods)] // #[cfg(test)]: the origin of virtual time
pub(crate) fn test_start() -> std::time::Instant {
    std::time::Instant::now() // #[cfg(test)] only: the origin of virtual time in unit tests
}
