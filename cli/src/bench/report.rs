//! What `tether bench` prints: one JSON object (`--json`) or markdown tables, each figure
//! for both implementations with the ratio tether / kcp-go. The binary judges nothing: the
//! targets these ratios are held against live in the README.
use serde::Serialize;

use super::measure::{IdleResult, SettingResult};
use super::settings::{Setting, COMMON};
use crate::rounded::rounded;

/// One figure for each implementation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Sides<T> {
    /// tether ↔ tether.
    pub tether: T,
    /// kcp-go ↔ kcp-go.
    pub kcp_go: T,
}

/// tether / kcp-go of the headline figures of one setting (`null` when kcp-go's is 0).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Ratios {
    /// Bulk throughput ratio (higher is better).
    #[serde(serialize_with = "rounded::<3, _>")]
    pub mb_per_s: f64,
    /// CPU per GiB ratio (lower is better).
    #[serde(serialize_with = "rounded::<3, _>")]
    pub cpu_seconds_per_gib: f64,
}

/// Both implementations in one setting.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SettingReport {
    /// The setting's title.
    pub name: &'static str,
    /// `--crypt`.
    pub crypt: &'static str,
    /// `--datashard`.
    pub datashard: usize,
    /// `--parityshard`.
    pub parityshard: usize,
    /// The figures of both.
    #[serde(flatten)]
    pub sides: Sides<SettingResult>,
    /// tether / kcp-go.
    pub ratios: Ratios,
}

impl SettingReport {
    /// The report of setting `s`.
    pub fn new(s: &Setting, sides: Sides<SettingResult>) -> Self {
        let (t, g) = (&sides.tether, &sides.kcp_go);
        let ratios = Ratios {
            mb_per_s: t.mb_per_s / g.mb_per_s,
            cpu_seconds_per_gib: t.cpu_seconds_per_gib / g.cpu_seconds_per_gib,
        };
        Self {
            name: s.name,
            crypt: s.crypt,
            datashard: s.ds,
            parityshard: s.ps,
            sides,
            ratios,
        }
    }
}

/// Everything one run measured: the `--json` object.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BenchReport {
    /// Bulk bytes each way.
    pub bytes: u64,
    /// RTT echoes.
    pub rtt_count: usize,
    /// Idle sessions held.
    pub idle_sessions: usize,
    /// `--hold`.
    #[serde(serialize_with = "rounded::<3, _>")]
    pub hold_seconds: f64,
    /// CPUs available.
    pub cpus: usize,
    /// `/proc/loadavg` before the first run.
    pub loadavg_before: String,
    /// `/proc/loadavg` after the last run.
    pub loadavg_after: String,
    /// Bulk and RTT, per setting.
    pub settings: Vec<SettingReport>,
    /// Idle sessions.
    pub idle: Sides<IdleResult>,
    /// The setting the idle sessions used.
    #[serde(skip)]
    pub idle_setting: &'static str,
    /// Wall time of the whole bench.
    #[serde(skip)]
    pub wall_seconds: f64,
}

impl BenchReport {
    /// The one-line JSON object.
    pub fn json(&self) -> Result<String, serde_json::Error> {
        serde_json::to_string(self)
    }

    /// The markdown tables.
    pub fn markdown(&self) -> String {
        let mut out = self.intro();
        for s in &self.settings {
            out.push_str(&setting_table(s));
        }
        out.push_str(&self.idle_table());
        out.push_str(&self.ratio_summary());
        out
    }

    fn intro(&self) -> String {
        let Self {
            bytes,
            rtt_count,
            cpus,
            loadavg_before,
            loadavg_after,
            wall_seconds,
            ..
        } = self;
        format!(
            "# tether vs kcp-go 5.6.1 on loopback\n\n\
             Both sides of each pair are the same implementation (tether ↔ tether, kcp-go ↔ kcp-go), \
             separate processes, {COMMON}. Bulk: {bytes} bytes each way, full duplex through an echo server; \
             RTT: {rtt_count} × 64-byte echoes, one at a time. {cpus} CPUs; load average {loadavg_before} before, \
             {loadavg_after} after ({wall_seconds:.0} s). Ratio = tether / kcp-go.\n\n\
             \"none + no FEC\" is kcptun's `--crypt none` with `--datashard 0 --parityshard 0`: no \
             cipher and no FEC, but kcp-go's 16-byte nonce + 4-byte CRC32 header is still sent and \
             checked (kcp-go has no crypt-less mode in kcptun's words).\n\n\
             CPU/GiB = (client CPU + echo server CPU during the run) / GiB sent each way; it includes \
             both peers' payload generation and SHA-256.\n"
        )
    }

    fn idle_table(&self) -> String {
        let (t, g) = (&self.idle.tether, &self.idle.kcp_go);
        let mib = |kb: u64| kb as f64 / 1024.0;
        let mut out = format!(
            "\n## {} idle sessions held {:.1} s ({}, each client session on its own UDP socket)\n\n{HEADER}",
            self.idle_sessions, self.hold_seconds, self.idle_setting
        );
        let rows = [
            (
                "setup s (dial + hello on all)",
                t.setup_seconds,
                g.setup_seconds,
                2,
            ),
            (
                "server CPU s during the hold",
                t.server_hold_cpu_seconds,
                g.server_hold_cpu_seconds,
                2,
            ),
            (
                "client CPU s during the hold",
                t.client_hold_cpu_seconds,
                g.client_hold_cpu_seconds,
                2,
            ),
            (
                "idle CPU, % of one core (server+client)",
                t.core_percent,
                g.core_percent,
                2,
            ),
            (
                "server RSS MiB (VmRSS, end of hold)",
                mib(t.server_rss_kb),
                mib(g.server_rss_kb),
                1,
            ),
            (
                "server KiB per idle session (RSS delta / sessions)",
                t.server_kib_per_session,
                g.server_kib_per_session,
                1,
            ),
            (
                "client peak RSS MiB (max_rss_kb)",
                mib(t.client_max_rss_kb),
                mib(g.client_max_rss_kb),
                1,
            ),
        ];
        out.push_str(&table_rows(&rows));
        out
    }

    /// The headline ratios in one table (the README holds them against its targets).
    fn ratio_summary(&self) -> String {
        let mut out = String::from(
            "\n## Ratios (tether / kcp-go)\n\n| setting | throughput (higher is better) | CPU/GiB (lower is better) |\n|---|---:|---:|\n",
        );
        for s in &self.settings {
            let Sides { tether, kcp_go } = &s.sides;
            out.push_str(&format!(
                "| {} | {} | {} |\n",
                s.name,
                ratio(tether.mb_per_s, kcp_go.mb_per_s),
                ratio(tether.cpu_seconds_per_gib, kcp_go.cpu_seconds_per_gib)
            ));
        }
        out.push_str(&format!(
            "\nIdle CPU, % of one core (server+client over the hold): tether {:.2}%, kcp-go {:.2}%\n",
            self.idle.tether.core_percent, self.idle.kcp_go.core_percent
        ));
        out
    }
}

const HEADER: &str = "| metric | tether | kcp-go | ratio |\n|---|---:|---:|---:|\n";

fn setting_table(s: &SettingReport) -> String {
    let (t, g) = (&s.sides.tether, &s.sides.kcp_go);
    let mut out = format!(
        "\n## {} (`--crypt {} --datashard {} --parityshard {}`)\n\n{HEADER}",
        s.name, s.crypt, s.datashard, s.parityshard
    );
    let us = |v: u64| v as f64;
    let rows = [
        (
            "bulk throughput, MB/s each way (higher is better)",
            t.mb_per_s,
            g.mb_per_s,
            1,
        ),
        ("bulk seconds", t.bulk_seconds, g.bulk_seconds, 2),
        (
            "client CPU s",
            t.client_cpu_seconds,
            g.client_cpu_seconds,
            2,
        ),
        (
            "server CPU s",
            t.server_cpu_seconds,
            g.server_cpu_seconds,
            2,
        ),
        (
            "CPU s per GiB (lower is better)",
            t.cpu_seconds_per_gib,
            g.cpu_seconds_per_gib,
            2,
        ),
        ("RTT p50 µs (64 B)", us(t.rtt_p50_us), us(g.rtt_p50_us), 0),
        ("RTT p99 µs (64 B)", us(t.rtt_p99_us), us(g.rtt_p99_us), 0),
        (
            "RTT mean µs (64 B)",
            us(t.rtt_mean_us),
            us(g.rtt_mean_us),
            0,
        ),
    ];
    out.push_str(&table_rows(&rows));
    out
}

/// `t / g` as `1.23×`, or `n/a` when `g` is not positive.
fn ratio(t: f64, g: f64) -> String {
    if g > 0.0 {
        format!("{:.2}×", t / g)
    } else {
        "n/a".into()
    }
}

/// A table row: metric, tether's figure, kcp-go's, decimals shown.
type Row<'a> = (&'a str, f64, f64, usize);

/// `| metric | tether | kcp-go | ratio |` lines.
fn table_rows(rows: &[Row]) -> String {
    rows.iter()
        .map(|&(metric, t, g, prec)| {
            format!("| {metric} | {t:.prec$} | {g:.prec$} | {} |\n", ratio(t, g))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::settings::SETTINGS;

    fn result(mb_per_s: f64, cpu_seconds_per_gib: f64) -> SettingResult {
        SettingResult {
            mb_per_s,
            bulk_seconds: 0.123_456_789,
            client_cpu_seconds: 1.004,
            server_cpu_seconds: 0.5,
            cpu_seconds_per_gib,
            rtt_p50_us: 63,
            rtt_p99_us: 135,
            rtt_mean_us: 70,
        }
    }

    fn idle(core_percent: f64) -> IdleResult {
        IdleResult {
            setup_seconds: 1.3449,
            hold_seconds: 5.0,
            server_hold_cpu_seconds: 0.0,
            client_hold_cpu_seconds: 0.001,
            core_percent,
            server_rss_kb: 34_406,
            server_rss_base_kb: 4_000,
            server_kib_per_session: 6.08,
            client_max_rss_kb: 85_700,
        }
    }

    fn report() -> BenchReport {
        BenchReport {
            bytes: 1 << 20,
            rtt_count: 10,
            idle_sessions: 5000,
            hold_seconds: 5.0,
            cpus: 2,
            loadavg_before: "0.78 1.88 2.09".into(),
            loadavg_after: "1.48 1.95 2.11".into(),
            settings: SETTINGS
                .iter()
                .map(|s| {
                    SettingReport::new(
                        s,
                        Sides {
                            tether: result(288.2, 5.6),
                            kcp_go: result(63.1, 30.14),
                        },
                    )
                })
                .collect(),
            idle: Sides {
                tether: idle(0.0),
                kcp_go: idle(63.89),
            },
            idle_setting: SETTINGS[1].name,
            wall_seconds: 39.0,
        }
    }

    #[test]
    fn json_keeps_the_field_names_and_precision_and_adds_ratios() {
        let v: serde_json::Value = serde_json::from_str(&report().json().unwrap()).unwrap();
        assert_eq!(v["bytes"], 1 << 20);
        assert_eq!(v["hold_seconds"], 5.0);
        assert_eq!(v["loadavg_before"], "0.78 1.88 2.09");
        let s = &v["settings"][1];
        assert_eq!(s["name"], "aes + FEC 10/3");
        assert_eq!(
            (&s["crypt"], &s["datashard"], &s["parityshard"]),
            (&"aes".into(), &10.into(), &3.into())
        );
        let t = &s["tether"];
        assert_eq!(t["mb_per_s"], 288.2);
        assert_eq!(t["bulk_seconds"], 0.123457, "6 decimals");
        assert_eq!(t["client_cpu_seconds"], 1.0, "2 decimals");
        assert_eq!(t["cpu_seconds_per_gib"], 5.6);
        assert_eq!(t["rtt_p50_us"], 63);
        assert_eq!(s["kcp_go"]["mb_per_s"], 63.1);
        assert_eq!(s["ratios"]["mb_per_s"], 4.567);
        assert_eq!(s["ratios"]["cpu_seconds_per_gib"], 0.186);
        let i = &v["idle"]["tether"];
        assert_eq!(i["setup_seconds"], 1.345);
        assert_eq!(i["server_rss_kb"], 34_406);
        assert_eq!(i["server_kib_per_session"], 6.08);
        assert_eq!(v["idle"]["kcp_go"]["core_percent"], 63.89);
        assert!(v.get("verdicts").is_none() && v.get("pass").is_none());
        assert!(v.get("wall_seconds").is_none() && v.get("idle_setting").is_none());
    }

    #[test]
    fn markdown_has_figures_and_ratios_and_no_verdict() {
        let md = report().markdown();
        assert!(
            md.starts_with("# tether vs kcp-go 5.6.1 on loopback\n"),
            "{md}"
        );
        assert!(
            md.contains(
                "| bulk throughput, MB/s each way (higher is better) | 288.2 | 63.1 | 4.57× |"
            ),
            "{md}"
        );
        assert!(
            md.contains("| RTT p50 µs (64 B) | 63 | 63 | 1.00× |"),
            "{md}"
        );
        assert!(
            md.contains("\n## 5000 idle sessions held 5.0 s (aes + FEC 10/3, each client"),
            "{md}"
        );
        assert!(
            md.contains("| server RSS MiB (VmRSS, end of hold) | 33.6 | 33.6 | 1.00× |"),
            "{md}"
        );
        assert!(md.contains("| none + no FEC | 4.57× | 0.19× |"), "{md}");
        assert!(
            !md.contains("PASS") && !md.contains("FAIL") && !md.contains("Verdict"),
            "{md}"
        );
    }
}
