//! The figures of `tether bench-smux` and its markdown table, one per cell.
use super::impls::Impl;

const GIB: f64 = (1u64 << 30) as f64;

/// One implementation's figures in one cell.
#[derive(Debug, Clone, PartialEq)]
pub struct Figures {
    /// Payload MB (1e6) per second, one way.
    pub mb_per_s: f64,
    /// Server + client CPU seconds.
    pub cpu_seconds: f64,
    /// Server + client CPU seconds per GiB of payload (one way).
    pub cpu_per_gib: f64,
}

impl Figures {
    /// From `payload` bytes (one way) moved in `seconds` with `cpu_seconds` of CPU.
    pub fn new(payload: f64, seconds: f64, cpu_seconds: f64) -> Figures {
        Figures {
            mb_per_s: payload / seconds.max(1e-9) / 1e6,
            cpu_seconds,
            cpu_per_gib: cpu_seconds / (payload / GIB).max(1e-12),
        }
    }
}

/// The seconds of one run from the client's line `K streams x N bytes match=true X MB/s`,
/// checked against the `streams` and `bytes` asked for.
pub fn run_seconds(line: &str, streams: usize, bytes: u64) -> Result<f64, String> {
    let bad = || format!("unexpected result line {line:?}");
    let f: Vec<&str> = line.split_whitespace().collect();
    let [k, "streams", "x", n, "bytes", matched, x, "MB/s"] = f[..] else {
        return Err(bad());
    };
    if k != streams.to_string() || n != bytes.to_string() {
        return Err(format!(
            "{line:?} is not the {streams} streams x {bytes} bytes asked for"
        ));
    }
    if matched != "match=true" {
        return Err(format!("the echo did not match: {line:?}"));
    }
    let mbps: f64 = x.parse().map_err(|_| bad())?;
    if mbps <= 0.0 {
        return Err(bad());
    }
    Ok(streams as f64 * bytes as f64 / 1e6 / mbps)
}

/// Every implementation in one cell.
pub struct Cell {
    streams: usize,
    bytes: u64,
    /// In table order; a failed row holds why.
    pub rows: Vec<(Impl, Result<Figures, String>)>,
}

impl Cell {
    pub fn new(streams: usize, bytes: u64) -> Cell {
        Cell {
            streams,
            bytes,
            rows: Vec::new(),
        }
    }

    fn figures(&self, imp: Impl) -> Option<&Figures> {
        self.rows
            .iter()
            .find(|(i, _)| *i == imp)
            .and_then(|(_, r)| r.as_ref().ok())
    }

    /// `tether / other` of throughput and CPU per GiB, `-` when either is missing.
    fn ratios(t: &Figures, other: Option<&Figures>) -> [String; 2] {
        match other {
            Some(o) => [
                format!("{:.2}", t.mb_per_s / o.mb_per_s),
                format!("{:.2}", t.cpu_per_gib / o.cpu_per_gib),
            ],
            None => ["-".into(), "-".into()],
        }
    }

    /// The cell's markdown table, failed rows' reasons below it.
    pub fn markdown(&self) -> String {
        let s = if self.streams == 1 { "" } else { "s" };
        let mut out = format!(
            "## {} stream{s} x {} bytes\n\n\
             | implementation | MB/s | CPU s | CPU s per GiB | CPU s per GiB above the floor | MB/s tether/Go | CPU/GiB tether/Go | MB/s tether/yamux | CPU/GiB tether/yamux |\n\
             |---|---:|---:|---:|---:|---:|---:|---:|---:|\n",
            self.streams, self.bytes
        );
        let mut notes = String::new();
        for (imp, r) in &self.rows {
            let f = match r {
                Ok(f) => f,
                Err(e) => {
                    out.push_str(&format!("| {} | failed | | | | | | | |\n", imp.title()));
                    notes.push_str(&format!("- {}: {}\n", imp.title(), e.trim()));
                    continue;
                }
            };
            let [go_mb, go_cpu, ya_mb, ya_cpu] = if imp.is_tether() {
                let go = imp.go_twin().and_then(|g| self.figures(g));
                let [a, b] = Self::ratios(f, go);
                let [c, d] = Self::ratios(f, self.figures(Impl::Yamux));
                [a, b, c, d]
            } else {
                Default::default()
            };
            // The multiplexer's own CPU: what it costs beyond plain TCP for the same bytes.
            let above = match self.figures(Impl::RawTcp) {
                Some(floor) if *imp != Impl::RawTcp => {
                    format!("{:.2}", f.cpu_per_gib - floor.cpu_per_gib)
                }
                _ => String::new(),
            };
            out.push_str(&format!(
                "| {} | {:.1} | {:.2} | {:.2} | {above} | {go_mb} | {go_cpu} | {ya_mb} | {ya_cpu} |\n",
                imp.title(),
                f.mb_per_s,
                f.cpu_seconds,
                f.cpu_per_gib
            ));
        }
        if !notes.is_empty() {
            out.push_str("\nFailed rows:\n");
            out.push_str(&notes);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_result_line_gives_the_run_seconds() {
        let s = run_seconds(
            "16 streams x 1000000 bytes match=true 8.00 MB/s",
            16,
            1_000_000,
        );
        assert_eq!(s, Ok(2.0));
    }

    #[test]
    fn a_mismatch_or_another_shape_is_an_error() {
        assert!(run_seconds("1 streams x 10 bytes match=false 1.00 MB/s", 1, 10).is_err());
        assert!(run_seconds("2 streams x 10 bytes match=true 1.00 MB/s", 1, 10).is_err());
        assert!(run_seconds("listening 127.0.0.1:1", 1, 10).is_err());
    }

    #[test]
    fn tether_rows_get_ratios_and_failed_rows_their_reason() {
        let mut c = Cell::new(1, 1 << 30);
        c.rows
            .push((Impl::TetherV1, Ok(Figures::new(GIB, 1.0, 2.0))));
        c.rows
            .push((Impl::TetherV2, Err("tether smux not available".into())));
        c.rows.push((Impl::GoV1, Ok(Figures::new(GIB, 2.0, 4.0))));
        c.rows.push((Impl::Yamux, Ok(Figures::new(GIB, 4.0, 1.0))));
        c.rows.push((Impl::RawTcp, Ok(Figures::new(GIB, 0.5, 0.5))));
        let md = c.markdown();
        assert!(
            md.contains(
                "| tether smux v1 | 1073.7 | 2.00 | 2.00 | 1.50 | 2.00 | 0.50 | 4.00 | 2.00 |"
            ),
            "{md}"
        );
        assert!(
            md.contains(
                "| floor: plain TCP, no multiplexer (Rust, tokio) | 2147.5 | 0.50 | 0.50 |  |"
            ),
            "{md}"
        );
        assert!(md.contains("| tether smux v2 | failed |"), "{md}");
        assert!(
            md.contains("- tether smux v2: tether smux not available"),
            "{md}"
        );
    }
}
