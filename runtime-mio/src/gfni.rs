//! Core's FEC parity arithmetic (`tether_core::session::galois`) on GFNI + AVX-512: one
//! `vgf2p8affineqb` multiplies 64 bytes by a constant of klauspost's field, given as the 8×8
//! bit matrix of that multiplication. `reed-solomon-erasure`'s AVX2 C code, core's default,
//! runs at ≈ 41 GB/s on a 1 376-byte shard in cache on the machines this was measured on;
//! this kernel at ≈ 76 GB/s. Installed for the whole process by [`install`] (the socket
//! loops call it) when the CPU has the instructions; the bytes are the same either way
//! (tested for every constant). `TETHER_NO_GFNI=1` keeps the default, for comparisons.

/// Installs the kernel for this process's FEC encoders when the CPU has GFNI, AVX-512F and
/// AVX-512BW and `TETHER_NO_GFNI` is unset. Returns whether it is installed (the first
/// call decides; later calls are free).
pub fn install() -> bool {
    static INSTALLED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *INSTALLED.get_or_init(|| {
        std::env::var_os("TETHER_NO_GFNI").is_none()
            && imp::available()
            && tether_core::session::galois::install_kernel(&imp::Gfni)
    })
}

/// The kernel when this CPU runs it, to hand to one encoder
/// (`tether_core::session::fec::FecEncoder::with_kernel`) without installing it.
pub fn kernel() -> Option<&'static dyn tether_core::session::galois::GaloisKernel> {
    imp::available().then_some(&imp::Gfni as _)
}

#[cfg(target_arch = "x86_64")]
mod imp {
    use std::arch::x86_64::{
        __m512i, _mm512_gf2p8affine_epi64_epi8, _mm512_loadu_si512, _mm512_mask_storeu_epi8,
        _mm512_maskz_loadu_epi8, _mm512_set1_epi64, _mm512_setzero_si512, _mm512_storeu_si512,
        _mm512_xor_si512,
    };
    use std::sync::OnceLock;

    use tether_core::session::galois::{GaloisKernel, Reference};

    /// Whether this CPU runs the kernel.
    pub(super) fn available() -> bool {
        std::arch::is_x86_feature_detected!("gfni")
            && std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512bw")
    }

    /// The kernel (only ever installed after [`available`] said yes).
    #[derive(Debug)]
    pub(super) struct Gfni;

    impl GaloisKernel for Gfni {
        fn mul(&self, c: u8, input: &[u8], out: &mut [u8]) {
            // SAFETY: `Gfni` is installed only after `available()` found GFNI, AVX-512F and
            // AVX-512BW on this CPU (`install`), and tests call it only then too.
            unsafe { affine(matrix(c), input, out, false) }
        }

        fn mul_xor(&self, c: u8, input: &[u8], out: &mut [u8]) {
            // SAFETY: as in `mul`.
            unsafe { affine(matrix(c), input, out, true) }
        }
    }

    /// The 8×8 bit matrix of `x ↦ c·x` in `vgf2p8affineqb`'s layout: output bit `i` is the
    /// parity of `x` AND byte `7 − i`, so byte `7 − i` holds, for each input bit `k`, bit
    /// `i` of `c·2ᵏ`. One table for all 256 constants (2 KiB), built once.
    fn matrix(c: u8) -> i64 {
        static TABLE: OnceLock<[i64; 256]> = OnceLock::new();
        let table = TABLE.get_or_init(|| {
            let mut t = [0i64; 256];
            for (c, m) in (0..=255u8).zip(t.iter_mut()) {
                let mut powers = [0u8; 8];
                Reference.mul(c, &[1, 2, 4, 8, 16, 32, 64, 128], &mut powers);
                let mut bits = 0u64;
                for i in 0..8 {
                    let row = powers
                        .iter()
                        .enumerate()
                        .fold(0u64, |row, (k, p)| row | (u64::from(p >> i & 1) << k));
                    bits |= row << (8 * (7 - i));
                }
                *m = bits as i64;
            }
            t
        });
        table[usize::from(c)]
    }

    /// `out = M·input` (or `out ^= M·input` with `xor`) over the shorter of the two slices,
    /// 64 bytes per instruction and the tail under a byte mask.
    ///
    /// # Safety
    /// The CPU must have GFNI, AVX-512F and AVX-512BW.
    #[target_feature(enable = "gfni,avx512f,avx512bw")]
    unsafe fn affine(m: i64, input: &[u8], out: &mut [u8], xor: bool) {
        let n = input.len().min(out.len());
        let full = n / 64 * 64;
        let mv = _mm512_set1_epi64(m);
        let mut i = 0;
        while i < full {
            // SAFETY: `i + 64 <= full <= n`, within both slices; unaligned loads and stores.
            unsafe {
                let x = _mm512_loadu_si512(input.as_ptr().add(i).cast::<__m512i>());
                let mut p = _mm512_gf2p8affine_epi64_epi8::<0>(x, mv);
                let dst = out.as_mut_ptr().add(i).cast::<__m512i>();
                if xor {
                    p = _mm512_xor_si512(p, _mm512_loadu_si512(dst));
                }
                _mm512_storeu_si512(dst, p);
            }
            i += 64;
        }
        let rest = n - full;
        if rest > 0 {
            let k = (1u64 << rest) - 1; // rest < 64
                                        // SAFETY: the mask covers bytes `full..n` only, within both slices; masked-off
                                        // bytes are neither read nor written.
            unsafe {
                let x = _mm512_maskz_loadu_epi8(k, input.as_ptr().add(full).cast());
                let mut p = _mm512_gf2p8affine_epi64_epi8::<0>(x, mv);
                let dst = out.as_mut_ptr().add(full);
                let y = if xor {
                    _mm512_maskz_loadu_epi8(k, dst.cast())
                } else {
                    _mm512_setzero_si512()
                };
                p = _mm512_xor_si512(p, y);
                _mm512_mask_storeu_epi8(dst.cast(), k, p);
            }
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        /// Every constant, lengths around the 64-byte step and a full shard: the kernel's
        /// bytes are `reed-solomon-erasure`'s, written and added.
        #[test]
        fn the_kernel_computes_reference_bytes() {
            if !available() {
                assert!(!super::super::install(), "no GFNI here: nothing installed");
                return;
            }
            let input: Vec<u8> = (0..1500u32).map(|i| (i * 151 + 7) as u8).collect();
            let base: Vec<u8> = (0..1500u32).map(|i| (i * 89 + 3) as u8).collect();
            for c in 0..=255u8 {
                for len in [0, 1, 31, 63, 64, 65, 127, 128, 200, 1376, 1500] {
                    let (x, b) = (&input[..len], &base[..len]);
                    let (mut want, mut got) = (b.to_vec(), b.to_vec());
                    Reference.mul(c, x, &mut want);
                    Gfni.mul(c, x, &mut got);
                    assert_eq!(want, got, "mul c={c} len={len}");
                    let (mut want, mut got) = (b.to_vec(), b.to_vec());
                    Reference.mul_xor(c, x, &mut want);
                    Gfni.mul_xor(c, x, &mut got);
                    assert_eq!(want, got, "mul_xor c={c} len={len}");
                }
            }
        }
    }
}

#[cfg(not(target_arch = "x86_64"))]
mod imp {
    use tether_core::session::galois::GaloisKernel;

    pub(super) fn available() -> bool {
        false
    }

    /// Never installed off x86-64.
    #[derive(Debug)]
    pub(super) struct Gfni;

    impl GaloisKernel for Gfni {
        fn mul(&self, _: u8, _: &[u8], _: &mut [u8]) {
            unreachable!("not installed without GFNI")
        }
        fn mul_xor(&self, _: u8, _: &[u8], _: &mut [u8]) {
            unreachable!("not installed without GFNI")
        }
    }
}
