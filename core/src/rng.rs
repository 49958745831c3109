//! Seeded randomness. Machines never draw from a global RNG: they hold a [`SimRng`] built
//! from a seed in their config, or take an injected `RngCore` for cryptographic nonces.
pub use rand_chacha::ChaCha8Rng as SimRng;
pub use rand_core::{Error as RngError, RngCore, SeedableRng};

/// A deterministic RNG from a `u64` seed.
pub fn seeded(seed: u64) -> SimRng {
    SimRng::seed_from_u64(seed)
}

/// Derives an independent child seed (e.g. one per link direction) from a parent RNG.
pub fn child_seed(parent: &mut SimRng) -> u64 {
    parent.next_u64()
}
