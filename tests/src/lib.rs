//! Support code for tether's cross-crate tests: building our Go peers offline against
//! Debian's packages, running the C ikcp peer (PyPI kcp 0.1.6), and reading and replaying
//! golden vector files.
#![warn(missing_docs)]

pub mod cases;
pub mod go;
pub mod ikcp;
pub mod kcp_replay;
pub mod peer;
pub mod scenarios;
pub mod scenarios_chunks;
pub mod scenarios_tcp_mux;
pub mod tether_bin;
pub mod tunnel;
pub mod vectors;
