//! Entry points for `fuzz/` targets and for the stable corpus-replay test
//! (`tests/tests/fuzz_corpus.rs`). Each target is one call into here, so the fuzzers and CI
//! exercise exactly the same code. Inputs are scripts: any byte string is a
//! valid one (`script.rs`), so the fuzzer spends its time in the state machines, not in input parsing.
mod fec;
mod kcp;
mod listener;
mod script;
mod session;
mod setup;
mod smux;
pub(crate) mod snappy;

pub use fec::fec_decoder;
pub use kcp::{kcp_machine, kcp_segment_decode};
pub use listener::listener;
pub use session::{session_packet, session_sequence};
pub use smux::{smux_frame_decode, smux_session};
pub use snappy::snappy_stream;

#[cfg(test)]
mod tests;
