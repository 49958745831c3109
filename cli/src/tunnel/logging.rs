//! `--log FILE` (appended) or stderr, through `tracing` at INFO: kcptun's log lines, with a
//! UTC timestamp.
use std::fs::OpenOptions;
use std::sync::Mutex;

/// Installs the subscriber; an empty path means stderr.
pub fn init(path: &str) -> std::io::Result<()> {
    let builder = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::INFO)
        .with_target(false);
    let installed = if path.is_empty() {
        builder.with_writer(std::io::stderr).try_init()
    } else {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        builder
            .with_ansi(false)
            .with_writer(Mutex::new(file))
            .try_init()
    };
    // A subscriber already installed (tests) is fine.
    let _ = installed;
    Ok(())
}
