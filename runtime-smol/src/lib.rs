//! smol adapter for tether-core (issue 4 builds the socket loop; for now it re-exports the core
//! so downstream code can depend on the final crate name).
#![warn(missing_docs)]
pub use tether_core as core;
