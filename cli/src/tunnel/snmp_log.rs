//! kcptun's `--snmplog`/`--snmpperiod` (kcptun.md §10): every period, one CSV row of kcp-go's
//! 24 counters, appended to a file whose name goes through Go's time layout first (so
//! `snmp-20060102.log` rotates daily); an empty file gets the header first.
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tether_core::session::snmp::Snmp;

/// A civil UTC time, enough for Go's numeric layout elements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Civil {
    /// Year, e.g. 2026.
    pub year: i64,
    /// 1..=12.
    pub month: u32,
    /// 1..=31.
    pub day: u32,
    /// 0..=23.
    pub hour: u32,
    /// 0..=59.
    pub minute: u32,
    /// 0..=59.
    pub second: u32,
}

impl Civil {
    /// The UTC time `unix` seconds after the epoch (days-from-civil, inverted).
    pub fn from_unix(unix: i64) -> Civil {
        let days = unix.div_euclid(86_400);
        let secs = unix.rem_euclid(86_400) as u32;
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
        let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
        let year = yoe + era * 400 + i64::from(month <= 2);
        Civil {
            year,
            month,
            day,
            hour: secs / 3600,
            minute: secs / 60 % 60,
            second: secs % 60,
        }
    }
}

/// Go's `time.Format` for the numeric layout elements a file name uses: `2006` `06` `01`
/// `1` `02` `2` `15` `03` `3` `04` `4` `05` `5` (reference time Mon Jan 2 15:04:05 2006);
/// everything else is copied. Times are UTC (kcptun uses the local zone; tether reads no
/// zone database).
pub fn go_time_format(layout: &str, t: Civil) -> String {
    let hour12 = match t.hour % 12 {
        0 => 12,
        h => h,
    };
    // Longest first, as Go's scanner matches them.
    let elements: [(&str, String); 13] = [
        ("2006", format!("{:04}", t.year)),
        ("15", format!("{:02}", t.hour)),
        ("01", format!("{:02}", t.month)),
        ("02", format!("{:02}", t.day)),
        ("03", format!("{hour12:02}")),
        ("04", format!("{:02}", t.minute)),
        ("05", format!("{:02}", t.second)),
        ("06", format!("{:02}", t.year.rem_euclid(100))),
        ("1", t.month.to_string()),
        ("2", t.day.to_string()),
        ("3", hour12.to_string()),
        ("4", t.minute.to_string()),
        ("5", t.second.to_string()),
    ];
    let mut out = String::with_capacity(layout.len() + 8);
    let mut rest = layout;
    'scan: while let Some(c) = rest.chars().next() {
        for (pat, value) in &elements {
            if let Some(after) = rest.strip_prefix(pat) {
                out.push_str(value);
                rest = after;
                continue 'scan;
            }
        }
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    out
}

/// The file a row goes to at `t`: the directory is kept, the file name is formatted.
pub fn file_for(path: &str, t: Civil) -> PathBuf {
    let p = Path::new(path);
    let name = p
        .file_name()
        .map(|n| go_time_format(&n.to_string_lossy(), t))
        .unwrap_or_default();
    match p.parent() {
        Some(dir) => dir.join(name),
        None => PathBuf::from(name),
    }
}

/// Appends one row (after the header if the file is empty) to the file `path` names at
/// `unix`.
pub fn append_row(path: &str, unix: u64, snmp: &Snmp) -> std::io::Result<PathBuf> {
    let file = file_for(path, Civil::from_unix(unix as i64));
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&file)?;
    let mut text = String::new();
    if f.metadata()?.len() == 0 {
        text.push_str(&Snmp::csv_header());
        text.push('\n');
    }
    text.push_str(&snmp.csv_row(unix));
    text.push('\n');
    f.write_all(text.as_bytes())?;
    Ok(file)
}

/// Seconds since the epoch, now.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Writes a row every `period` with the counters `snapshot` gives, forever (kcptun.md §10:
/// only when the path is set and the period positive; the caller checks).
pub async fn run(path: String, period: Duration, snapshot: impl Fn() -> Snmp) {
    let mut tick = tokio::time::interval(period);
    tick.tick().await;
    loop {
        tick.tick().await;
        if let Err(e) = append_row(&path, unix_now(), &snapshot()) {
            tracing::warn!("snmplog {path}: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_time_of_known_instants() {
        let t = Civil::from_unix(1_136_214_245); // Go's reference time, in UTC
        assert_eq!(
            t,
            Civil {
                year: 2006,
                month: 1,
                day: 2,
                hour: 15,
                minute: 4,
                second: 5
            }
        );
        assert_eq!(Civil::from_unix(0).year, 1970);
        let leap = Civil::from_unix(1_709_164_800); // 2024-02-29 00:00:00
        assert_eq!((leap.year, leap.month, leap.day), (2024, 2, 29));
    }

    #[test]
    fn go_layouts_in_file_names() {
        let t = Civil::from_unix(1_796_000_000); // 2026-11-30 00:53:20 UTC
        assert_eq!(go_time_format("snmp-20060102.log", t), "snmp-20261130.log");
        assert_eq!(
            go_time_format("snmp-2006010215.csv", t),
            "snmp-2026113000.csv"
        );
        assert_eq!(go_time_format("s-15h04m05s.log", t), "s-00h53m20s.log");
        // The reference time maps to itself.
        let r = Civil::from_unix(1_136_214_245);
        assert_eq!(
            go_time_format("2006-01-02 15:04:05", r),
            "2006-01-02 15:04:05"
        );
        assert_eq!(go_time_format("plain.csv", r), "plain.csv");
        // Only the file name is formatted, not the directory.
        assert_eq!(
            file_for("/var/log/20060102/snmp-20060102.log", t),
            PathBuf::from("/var/log/20060102/snmp-20261130.log")
        );
    }

    #[test]
    fn an_empty_file_gets_the_kcptun_header_once() {
        let dir = std::env::temp_dir().join(format!("tether-snmp-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("snmp-20060102.csv");
        let path = path.to_str().unwrap();
        let snmp = Snmp {
            in_csum_errors: 7,
            ..Snmp::default()
        };
        let f = append_row(path, 1_136_214_245, &snmp).unwrap();
        append_row(path, 1_136_214_246, &snmp).unwrap();
        assert_eq!(f, dir.join("snmp-20060102.csv"));
        let text = std::fs::read_to_string(&f).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert!(lines[0].starts_with("Unix,BytesSent,BytesReceived,MaxConn,"));
        assert_eq!(lines[0].split(',').count(), 25);
        assert!(
            lines[1].starts_with("1136214245,0,0,0,0,0,0,0,7,"),
            "{}",
            lines[1]
        );
        let _ = std::fs::remove_dir_all(dir);
    }
}
