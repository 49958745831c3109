//! The figures of `tether bench-tunnel`: one sample per measurement, pooled per case and
//! implementation, the ratios tether / kcptun, the markdown table and the JSON object. The
//! binary judges nothing: the targets live in the README.
use serde::Serialize;

use super::args::Link;
use crate::rounded::rounded;

const GIB: f64 = (1u64 << 30) as f64;

/// One measurement: one implementation, one case, one run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Sample {
    /// Bytes the target received.
    pub bytes: u64,
    /// From the first connect to the end of the measurement.
    #[serde(serialize_with = "rounded::<3, _>")]
    pub seconds: f64,
    /// The tunnel client's CPU (user + system) over those seconds.
    #[serde(serialize_with = "rounded::<3, _>")]
    pub client_cpu_seconds: f64,
    /// The tunnel server's CPU over those seconds.
    #[serde(serialize_with = "rounded::<3, _>")]
    pub server_cpu_seconds: f64,
    /// Throughput, MB (1e6) per second.
    #[serde(serialize_with = "rounded::<2, _>")]
    pub mb_per_s: f64,
    /// The longest time no byte reached the target (polled every 5 ms).
    #[serde(serialize_with = "rounded::<3, _>")]
    pub longest_stall_seconds: f64,
    /// When that stall began, seconds from the first connect (0: before the first byte).
    #[serde(serialize_with = "rounded::<3, _>")]
    pub longest_stall_from_seconds: f64,
}

impl Sample {
    /// A sample of `bytes` in `seconds` with the two processes' CPU.
    pub fn new(bytes: u64, seconds: f64, client_cpu_seconds: f64, server_cpu_seconds: f64) -> Self {
        Sample {
            bytes,
            seconds,
            client_cpu_seconds,
            server_cpu_seconds,
            mb_per_s: bytes as f64 / seconds.max(1e-9) / 1e6,
            longest_stall_seconds: 0.0,
            longest_stall_from_seconds: 0.0,
        }
    }

    /// `12.3`, or `0.1 (stalled 3.9 s from 0.0 s)` when no byte arrived for a second or more.
    fn mb_per_s_text(&self) -> String {
        if self.longest_stall_seconds >= 1.0 {
            format!(
                "{:.1} (stalled {:.1} s from {:.1} s)",
                self.mb_per_s, self.longest_stall_seconds, self.longest_stall_from_seconds
            )
        } else {
            format!("{:.1}", self.mb_per_s)
        }
    }
}

/// An implementation's samples of one case, pooled: all bytes over all seconds, all CPU
/// over all GiB.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Figures {
    /// Throughput, MB/s (higher is better).
    #[serde(serialize_with = "rounded::<2, _>")]
    pub mb_per_s: f64,
    /// Tunnel client CPU seconds per GiB delivered (lower is better).
    #[serde(serialize_with = "rounded::<3, _>")]
    pub client_cpu_s_per_gib: f64,
    /// Tunnel server CPU seconds per GiB delivered.
    #[serde(serialize_with = "rounded::<3, _>")]
    pub server_cpu_s_per_gib: f64,
    /// Both ends' CPU seconds per GiB delivered.
    #[serde(serialize_with = "rounded::<3, _>")]
    pub cpu_s_per_gib: f64,
    /// Every run.
    pub runs: Vec<Sample>,
}

impl Figures {
    /// The pooled figures of `runs`.
    pub fn pool(runs: Vec<Sample>) -> Figures {
        let bytes: u64 = runs.iter().map(|s| s.bytes).sum();
        let seconds: f64 = runs.iter().map(|s| s.seconds).sum();
        let client: f64 = runs.iter().map(|s| s.client_cpu_seconds).sum();
        let server: f64 = runs.iter().map(|s| s.server_cpu_seconds).sum();
        // No byte (a stalled kcptun in a short run): no CPU per GiB (JSON null).
        let gib = if bytes == 0 {
            f64::NAN
        } else {
            bytes as f64 / GIB
        };
        Figures {
            mb_per_s: bytes as f64 / seconds.max(1e-9) / 1e6,
            client_cpu_s_per_gib: client / gib,
            server_cpu_s_per_gib: server / gib,
            cpu_s_per_gib: (client + server) / gib,
            runs,
        }
    }
}

/// tether / kcptun of each figure (JSON `null` when kcptun's is 0).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Ratios {
    /// Throughput (higher is better).
    pub mb_per_s: Option<f64>,
    /// Client CPU per GiB (lower is better).
    pub client_cpu_s_per_gib: Option<f64>,
    /// Server CPU per GiB.
    pub server_cpu_s_per_gib: Option<f64>,
    /// Both ends' CPU per GiB.
    pub cpu_s_per_gib: Option<f64>,
}

/// `t / k` to 3 decimals, `None` when `k` is not positive.
fn ratio(t: f64, k: f64) -> Option<f64> {
    (k > 0.0).then(|| crate::rounded::round(t / k, 3))
}

/// Both implementations in one case.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Case {
    /// Loopback or netem.
    pub link: Link,
    /// Concurrent TCP connections.
    pub streams: usize,
    /// tether client ↔ tether server.
    pub tether: Figures,
    /// kcptun-client ↔ kcptun-server.
    pub kcptun: Figures,
    /// tether / kcptun.
    pub ratios: Ratios,
}

impl Case {
    /// The case with its ratios.
    pub fn new(link: Link, streams: usize, tether: Figures, kcptun: Figures) -> Case {
        let ratios = Ratios {
            mb_per_s: ratio(tether.mb_per_s, kcptun.mb_per_s),
            client_cpu_s_per_gib: ratio(tether.client_cpu_s_per_gib, kcptun.client_cpu_s_per_gib),
            server_cpu_s_per_gib: ratio(tether.server_cpu_s_per_gib, kcptun.server_cpu_s_per_gib),
            cpu_s_per_gib: ratio(tether.cpu_s_per_gib, kcptun.cpu_s_per_gib),
        };
        Case {
            link,
            streams,
            tether,
            kcptun,
            ratios,
        }
    }

    fn title(&self) -> String {
        let s = if self.streams == 1 { "" } else { "s" };
        format!("{}, {} stream{s}", self.link.name(), self.streams)
    }
}

/// Everything one run of `tether bench-tunnel` measured: the `--json` object.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// The exact command line.
    pub command: String,
    /// `--seconds` per measurement (when not `--bytes`).
    #[serde(serialize_with = "rounded::<3, _>")]
    pub seconds: f64,
    /// `--bytes` per measurement, if given.
    pub bytes: Option<u64>,
    /// `--runs`.
    pub runs: usize,
    /// Netem loss each way, in %.
    #[serde(serialize_with = "rounded::<3, _>")]
    pub netem_loss_percent: f64,
    /// Netem round-trip time added, ms.
    #[serde(serialize_with = "rounded::<3, _>")]
    pub netem_rtt_ms: f64,
    /// `--args` given to all four ends.
    pub args: String,
    /// CPUs available.
    pub cpus: usize,
    /// `/proc/loadavg` before the first measurement.
    pub loadavg_before: String,
    /// `/proc/loadavg` after the last.
    pub loadavg_after: String,
    /// Wall time of the whole bench.
    #[serde(serialize_with = "rounded::<1, _>")]
    pub wall_seconds: f64,
    /// Per link and stream count.
    pub cases: Vec<Case>,
}

impl Report {
    /// The JSON object, pretty-printed.
    pub fn json(&self) -> Result<String, serde_json::Error> {
        serde_json::to_string_pretty(self)
    }

    /// The intro and the table.
    pub fn markdown(&self) -> String {
        let mut out = self.intro();
        out.push_str(
            "\n| case | implementation | MB/s | MB/s per run | client CPU s/GiB | server CPU s/GiB | CPU s/GiB (both) | MB/s tether/kcptun | client CPU/GiB tether/kcptun | server CPU/GiB tether/kcptun | CPU/GiB (both) tether/kcptun |\n\
             |---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|\n",
        );
        for c in &self.cases {
            let r = &c.ratios;
            let ratios = [
                r.mb_per_s,
                r.client_cpu_s_per_gib,
                r.server_cpu_s_per_gib,
                r.cpu_s_per_gib,
            ]
            .map(|v| v.map_or_else(|| "n/a".to_string(), |v| format!("{v:.2}×")))
            .join(" | ");
            out.push_str(&row(&c.title(), "tether", &c.tether, &ratios));
            out.push_str(&row(&c.title(), "kcptun", &c.kcptun, " |  |  | "));
        }
        out
    }

    fn intro(&self) -> String {
        let load = match self.bytes {
            Some(b) => format!("{b} bytes per measurement, timed until the target has them all"),
            None => format!("{:.1} s per measurement", self.seconds),
        };
        let args = if self.args.is_empty() {
            String::new()
        } else {
            format!(" plus `{}`", self.args)
        };
        format!(
            "# tether client/server vs Debian's kcptun 20210922\n\n\
             `{}`\n\n\
             Each implementation against itself (tether client ↔ tether server, kcptun-client ↔ \
             kcptun-server), separate processes with the same flags: kcptun's defaults (aes, \
             mode fast, FEC 10/3, snappy, smux v1), the same `--key`{args}. The bench process \
             is the TCP target (a sink) and the load: N TCP connections upload incompressible \
             bytes, one way, to the target through the tunnel; MB/s = bytes the target received \
             / seconds from the first connect ({load}). Links: loopback, and `tether netem` \
             between client and server ({:.1} % loss each way, {:.0} ms RTT). CPU = user + \
             system of each tunnel process from /proc over the same seconds, per GiB received. \
             {} runs; the implementations take turns, alternating who goes first. {} CPUs; load \
             average {} before, {} after ({:.0} s). Ratios: tether / kcptun. \
             \"(stalled X s from T s)\" after a run's MB/s: no byte reached the target for \
             X seconds in a row (at least 1 s), starting T seconds after the first connect.\n",
            self.command,
            self.netem_loss_percent,
            self.netem_rtt_ms,
            self.runs,
            self.cpus,
            self.loadavg_before,
            self.loadavg_after,
            self.wall_seconds
        )
    }
}

/// One table row; `ratios` fills the last four columns.
fn row(case: &str, imp: &str, f: &Figures, ratios: &str) -> String {
    let per_run = f
        .runs
        .iter()
        .map(Sample::mb_per_s_text)
        .collect::<Vec<_>>()
        .join(", ");
    let [client, server, both] = [
        f.client_cpu_s_per_gib,
        f.server_cpu_s_per_gib,
        f.cpu_s_per_gib,
    ]
    .map(|v| {
        if v.is_finite() {
            format!("{v:.2}")
        } else {
            "n/a".into() // no byte arrived
        }
    });
    format!(
        "| {case} | {imp} | {:.1} | {per_run} | {client} | {server} | {both} | {ratios} |\n",
        f.mb_per_s
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> Report {
        // tether: 2 GiB in 10 s, 1 + 0.5 CPU s; kcptun: 1 GiB in 10 s, 2 + 2 CPU s.
        let t = Figures::pool(vec![
            Sample::new(1 << 30, 5.0, 0.5, 0.25),
            Sample::new(1 << 30, 5.0, 0.5, 0.25),
        ]);
        let mut stalled = Sample::new(1 << 30, 10.0, 2.0, 2.0);
        stalled.longest_stall_seconds = 3.94;
        stalled.longest_stall_from_seconds = 0.51;
        let k = Figures::pool(vec![stalled]);
        Report {
            command: "tether bench-tunnel".into(),
            seconds: 10.0,
            bytes: None,
            runs: 2,
            netem_loss_percent: 1.0,
            netem_rtt_ms: 40.0,
            args: String::new(),
            cpus: 2,
            loadavg_before: "0.5 0.5 0.5".into(),
            loadavg_after: "1.0 1.0 1.0".into(),
            wall_seconds: 180.0,
            cases: vec![Case::new(Link::Netem, 16, t, k)],
        }
    }

    #[test]
    fn samples_pool_into_figures_and_ratios() {
        let c = &report().cases[0];
        assert!((c.tether.mb_per_s - 214.748_364_8).abs() < 1e-6);
        assert_eq!(c.tether.client_cpu_s_per_gib, 0.5);
        assert_eq!(c.tether.cpu_s_per_gib, 0.75);
        assert_eq!(c.kcptun.cpu_s_per_gib, 4.0);
        assert_eq!(c.ratios.mb_per_s, Some(2.0));
        assert_eq!(c.ratios.server_cpu_s_per_gib, Some(0.125));
        assert_eq!(c.ratios.cpu_s_per_gib, Some(0.188));
    }

    #[test]
    fn a_zero_kcptun_figure_has_no_ratio() {
        let z = Figures::pool(vec![Sample::new(0, 1.0, 0.1, 0.1)]);
        let t = Figures::pool(vec![Sample::new(1 << 30, 1.0, 1.0, 1.0)]);
        let c = Case::new(Link::Loopback, 1, t, z);
        assert_eq!(c.ratios.mb_per_s, None);
        let json = serde_json::to_value(&c).unwrap();
        assert!(json["ratios"]["mb_per_s"].is_null());
        assert!(json["ratios"]["cpu_s_per_gib"].is_null());
        assert!(
            json["kcptun"]["cpu_s_per_gib"].is_null(),
            "no GiB, no CPU per GiB"
        );
        assert_eq!(json["kcptun"]["mb_per_s"], 0.0);
        let md = row("loopback, 1 stream", "kcptun", &c.kcptun, " |  |  | ");
        assert!(
            md.contains("| kcptun | 0.0 | 0.0 | n/a | n/a | n/a |"),
            "{md}"
        );
    }

    #[test]
    fn markdown_has_a_row_per_case_and_implementation_and_no_verdict() {
        let md = report().markdown();
        assert!(
            md.starts_with("# tether client/server vs Debian's kcptun"),
            "{md}"
        );
        assert!(
            md.contains("| netem, 16 streams | tether | 214.7 | 214.7, 214.7 | 0.50 | 0.25 | 0.75 | 2.00× | 0.25× | 0.12× | 0.19× |"),
            "{md}"
        );
        assert!(
            md.contains("| netem, 16 streams | kcptun | 107.4 | 107.4 (stalled 3.9 s from 0.5 s) | 2.00 | 2.00 | 4.00 |  |  |  |  |"),
            "{md}"
        );
        assert!(!md.contains("PASS") && !md.contains("FAIL"), "{md}");
    }

    #[test]
    fn json_names_the_cases_and_both_implementations() {
        let v: serde_json::Value = serde_json::from_str(&report().json().unwrap()).unwrap();
        let c = &v["cases"][0];
        assert_eq!(c["link"], "netem");
        assert_eq!(c["streams"], 16);
        assert_eq!(c["tether"]["runs"][0]["bytes"], 1u64 << 30);
        assert_eq!(c["kcptun"]["cpu_s_per_gib"], 4.0);
        assert_eq!(c["ratios"]["mb_per_s"], 2.0);
        assert_eq!(v["netem_rtt_ms"], 40.0);
    }
}
