//! Panic-free wire codecs: a bounds-checked [`Reader`] and an appending [`Writer`].
//!
//! Parsing untrusted bytes is where a panic becomes a remote crash, so this module never
//! indexes out of bounds: every read returns `Result<_, DecodeError>`.
#![deny(clippy::indexing_slicing, clippy::unwrap_used, clippy::expect_used)]
mod reader;
mod writer;

pub use reader::{DecodeError, Reader};
pub use writer::Writer;
