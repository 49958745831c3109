//! The driver shape shared by every protocol machine.
//!
//! Call order (quinn's, adopted as-is): after any `handle_*` call or application mutator,
//! drain [`Machine::poll_transmit`], then read [`Machine::poll_timeout`], then drain
//! [`Machine::poll_event`].
//!
//! Contracts every machine honours (and is property-tested for in `core::sim`):
//! - same inputs at the same `now` values give the same transmitted bytes, bit for bit;
//! - after `handle_timeout(t)`, `poll_timeout()` is `None` or strictly later than `t`;
//! - `poll_timeout()` is `None` when the machine is idle: an idle machine costs no CPU;
//! - `handle_timeout` called early, or twice, does nothing harmful;
//! - `handle_input` never panics; an `Err` is a verdict on that one input (it was dropped and
//!   counted), never on its own a reason to tear the machine down.
use std::time::Instant;

/// Metadata of one datagram (or stream chunk) written by [`Machine::poll_transmit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transmit {
    /// Number of bytes appended to the caller's buffer.
    pub len: usize,
}

/// The five calls that let one generic loop (simulator, fuzz harness, runtimes) drive any
/// protocol machine.
pub trait Machine {
    /// Application-visible events.
    type Event;
    /// Per-input verdict of [`Machine::handle_input`].
    type InputError: std::fmt::Debug;

    /// Feeds one datagram (or one chunk of an inbound byte stream).
    fn handle_input(&mut self, now: Instant, data: &[u8]) -> Result<(), Self::InputError>;

    /// Appends one datagram to `buf` and describes it, or returns `None` when nothing is due.
    fn poll_transmit(&mut self, now: Instant, buf: &mut Vec<u8>) -> Option<Transmit>;

    /// The next absolute deadline; `None` means nothing happens until new input or an
    /// application call.
    fn poll_timeout(&self) -> Option<Instant>;

    /// Fires whatever is due at `now`.
    fn handle_timeout(&mut self, now: Instant);

    /// Pops the next application event.
    fn poll_event(&mut self) -> Option<Self::Event>;
}
