//! Multiplying byte slices by a constant of GF(2⁸), the arithmetic of the FEC encoder's
//! parity (klauspost's field, generating polynomial 0x11D; kcp-go-session.md §4.2).
//!
//! Core computes it with `reed-solomon-erasure` ([`Reference`]). A runtime may install a
//! faster implementation of the same arithmetic once per process ([`install_kernel`]):
//! `unsafe` SIMD belongs outside core, and core calls it through [`GaloisKernel`]. Every
//! kernel computes the same bytes (runtime-mio's GFNI kernel is tested against
//! [`Reference`] for every constant), so which one runs never changes the wire; like the
//! codec cache in `fec.rs`, this is process-wide arithmetic, not session state.
use std::sync::OnceLock;

use reed_solomon_erasure::galois_8;

/// `out = c · input` and `out ^= c · input`, byte by byte in GF(2⁸) (polynomial 0x11D).
/// Callers pass slices of equal length.
pub trait GaloisKernel: Send + Sync {
    /// `out[i] = c · input[i]`.
    fn mul(&self, c: u8, input: &[u8], out: &mut [u8]);
    /// `out[i] ^= c · input[i]`.
    fn mul_xor(&self, c: u8, input: &[u8], out: &mut [u8]);
}

/// `reed-solomon-erasure`'s own slice arithmetic (its `simd-accel` C code where built).
#[derive(Debug, Clone, Copy, Default)]
pub struct Reference;

// `galois_8`'s SIMD path indexes its first byte: empty slices are skipped here.
impl GaloisKernel for Reference {
    fn mul(&self, c: u8, input: &[u8], out: &mut [u8]) {
        if !input.is_empty() {
            galois_8::mul_slice(c, input, out);
        }
    }

    fn mul_xor(&self, c: u8, input: &[u8], out: &mut [u8]) {
        if !input.is_empty() {
            galois_8::mul_slice_xor(c, input, out);
        }
    }
}

static KERNEL: OnceLock<&'static dyn GaloisKernel> = OnceLock::new();

/// Makes `kernel` compute every FEC encoder's parity in this process from now on. Only the
/// first call takes effect (returns `true`): a kernel cannot be swapped while encoders use
/// it.
pub fn install_kernel(kernel: &'static dyn GaloisKernel) -> bool {
    KERNEL.set(kernel).is_ok()
}

/// The installed kernel, if any.
pub(crate) fn installed() -> Option<&'static dyn GaloisKernel> {
    KERNEL.get().copied()
}
