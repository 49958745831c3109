//! Seeds for simulation tests: pick one from the environment, print it on failure, and
//! optionally record every seed used.
//!
//! ```text
//! TETHER_SIM_SEED=0x2a cargo test -p tether-core --features sim   # rerun one seed
//! TETHER_DUMP_SEEDS=/tmp/seeds.txt cargo test ...                 # log every seed used
//! ```
use std::fs::OpenOptions;
use std::io::Write;

/// Environment variable that overrides the seed of every simulation test.
pub const SEED_ENV: &str = "TETHER_SIM_SEED";

/// Environment variable naming a file to which every [`SeedGuard`] appends its seed.
pub const DUMP_ENV: &str = "TETHER_DUMP_SEEDS";

/// The seed in `TETHER_SIM_SEED` (decimal or `0x` hex), or `default` when it is unset or
/// empty.
///
/// # Panics
/// When the variable is set to something that is not a `u64`: silently running the default
/// seed instead of the one asked for would make a failing run look reproduced when it is not.
pub fn seed_from_env(default: u64) -> u64 {
    let Some(raw) = std::env::var_os(SEED_ENV) else {
        return default;
    };
    let text = raw.to_string_lossy();
    if text.trim().is_empty() {
        return default;
    }
    parse_seed(&text).unwrap_or_else(|| {
        panic!("{SEED_ENV}={text:?} is not a seed; use a decimal or 0x-hex u64, e.g. {SEED_ENV}=42")
    })
}

/// Parses a decimal or `0x`-prefixed hexadecimal `u64` (surrounding whitespace and `_`
/// separators allowed).
pub fn parse_seed(text: &str) -> Option<u64> {
    let clean: String = text.trim().chars().filter(|&c| c != '_').collect();
    match clean
        .strip_prefix("0x")
        .or_else(|| clean.strip_prefix("0X"))
    {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => clean.parse().ok(),
    }
}

/// Holds a test's seed; if the test panics while the guard is alive, its drop prints how to
/// rerun that exact simulation. Creating one also appends the seed to the file named by
/// `TETHER_DUMP_SEEDS`, if set.
///
/// ```
/// use tether_core::sim::{seed_from_env, SeedGuard};
/// let guard = SeedGuard::new(seed_from_env(7));
/// let seed = guard.seed(); // build links and machines from it
/// # let _ = seed;
/// ```
#[derive(Debug)]
pub struct SeedGuard {
    seed: u64,
}

impl SeedGuard {
    /// Guards `seed` (and records it when `TETHER_DUMP_SEEDS` is set).
    pub fn new(seed: u64) -> Self {
        if let Some(path) = std::env::var_os(DUMP_ENV) {
            record(&path, seed);
        }
        Self { seed }
    }

    /// The guarded seed.
    pub fn seed(&self) -> u64 {
        self.seed
    }
}

impl Drop for SeedGuard {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "simulation failed with seed {seed}; rerun with {SEED_ENV}={seed}",
                seed = self.seed
            );
        }
    }
}

/// Appends `seed` and the current test's name (the test harness names each test's thread)
/// as one line, written in one call so parallel tests do not interleave within a line.
fn record(path: &std::ffi::OsStr, seed: u64) {
    let name = std::thread::current().name().unwrap_or("?").to_owned();
    let line = format!("{seed} {name}\n");
    let result = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .and_then(|mut f| f.write_all(line.as_bytes()));
    // Recording is a convenience: a bad path must not fail the test it describes.
    if let Err(e) = result {
        eprintln!("{DUMP_ENV}: cannot append to {path:?}: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_decimal_and_hex() {
        assert_eq!(parse_seed("42"), Some(42));
        assert_eq!(parse_seed(" 0x2A \n"), Some(42));
        assert_eq!(parse_seed("0Xff"), Some(255));
        assert_eq!(parse_seed("1_000"), Some(1000));
        assert_eq!(parse_seed("18446744073709551615"), Some(u64::MAX));
        assert_eq!(parse_seed("0x"), None);
        assert_eq!(parse_seed("forty-two"), None);
        assert_eq!(parse_seed("-1"), None);
    }

    #[test]
    fn seed_from_env_uses_the_variable_or_the_default() {
        // Only this test touches the variable, so parallel tests are unaffected; whatever the
        // caller exported is respected rather than overwritten.
        match std::env::var(SEED_ENV) {
            Ok(v) if !v.trim().is_empty() => assert_eq!(Some(seed_from_env(1)), parse_seed(&v)),
            _ => assert_eq!(seed_from_env(1234), 1234),
        }
    }

    #[test]
    fn guard_exposes_its_seed_and_is_quiet_without_a_panic() {
        let guard = SeedGuard::new(99);
        assert_eq!(guard.seed(), 99);
    }

    #[test]
    fn guard_prints_the_seed_when_a_test_panics() {
        // The message goes to stderr; this checks that dropping during unwinding is safe.
        let result = std::panic::catch_unwind(|| {
            let _guard = SeedGuard::new(5);
            panic!("boom");
        });
        assert!(result.is_err());
    }

    #[test]
    fn record_appends_lines() {
        let path = std::env::temp_dir().join(format!("tether-seeds-{}.txt", std::process::id()));
        let _ = std::fs::remove_file(&path);
        record(path.as_os_str(), 1);
        record(path.as_os_str(), 0x10);
        let text = std::fs::read_to_string(&path).unwrap();
        let seeds: Vec<&str> = text.lines().map(|l| l.split(' ').next().unwrap()).collect();
        assert_eq!(seeds, ["1", "16"]);
        std::fs::remove_file(&path).unwrap();
    }
}
