//! Interop matrices: every case in its own thread (each is mostly waiting on sockets and a
//! peer process), one line per case, and one failure listing all failed cases.
use std::fmt::Debug;
use std::time::Instant;

/// Runs `run` on every case concurrently and panics with every failure listed.
pub fn run_parallel<C, F>(cases: Vec<C>, run: F)
where
    C: Debug + Copy + Send + 'static,
    F: Fn(C) -> Result<(), String> + Copy + Send + 'static,
{
    let handles: Vec<_> = cases
        .into_iter()
        .map(|case| {
            std::thread::spawn(move || {
                let t = Instant::now();
                let r = run(case);
                println!("{case:?}: {r:?} in {:?}", t.elapsed());
                r.map_err(|e| format!("{case:?}: {e}"))
            })
        })
        .collect();
    let failures: Vec<String> = handles
        .into_iter()
        .filter_map(|h| h.join().expect("case thread").err())
        .collect();
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
