//! The seed's VRM "is this smux?" probe, issued sans-IO (smux-seed.md §7): the caller writes
//! [`Probe::request`] on a fresh connection, reads 7 bytes with its own timeout, and asks
//! [`Probe::check`]. A timeout or an I/O error is the caller's "false".
#![deny(clippy::indexing_slicing, clippy::unwrap_used, clippy::expect_used)]

use super::frame::{verify_code, Cmd, SeedHeader};

/// One probe: the challenge the caller drew.
///
/// ```
/// use tether_core::smux::probe::Probe;
///
/// let p = Probe::new(0x1234, 0xAABB_CCDD);
/// assert_eq!(p.request(), [0x04, 0x34, 0x12, 0xDD, 0xCC, 0xBB, 0xAA]);
/// assert_eq!(p.check(&[0x04, 0x20]), None, "7 bytes are needed");
/// assert_eq!(p.check(&[0x04, 0x20, 0x34, 0xCC, 0xBB, 0xDD, 0xAA]), Some(true));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Probe {
    v1: u16,
    v2: u32,
}

impl Probe {
    /// A probe with the caller's random challenge (upstream draws `v1` in 0..65535).
    pub fn new(v1: u16, v2: u32) -> Probe {
        Probe { v1, v2 }
    }

    /// The 7-byte VRM frame to send.
    pub fn request(&self) -> [u8; 7] {
        SeedHeader {
            cmd: Cmd::Vrm,
            id: self.v1,
            length: self.v2,
        }
        .to_bytes()
    }

    /// `None` until 7 bytes are in; then whether they are the `verify_code` answer.
    pub fn check(&self, answer: &[u8]) -> Option<bool> {
        let head = answer.get(..SeedHeader::SIZE)?;
        let (e1, e2) = verify_code(self.v1, self.v2);
        Some(match SeedHeader::decode(head) {
            Ok(h) => h.cmd == Cmd::Vrm && h.id == e1 && h.length == e2,
            Err(_) => false,
        })
    }
}
