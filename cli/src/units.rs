//! Parsers for the human units `tether` flags take: sizes (`8MiB`), percentages (`10%`),
//! durations (`80ms`) and rates (`20mbit`).
use std::time::Duration;

fn split_num(s: &str) -> Result<(f64, String), String> {
    let s = s.trim();
    let idx = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(idx);
    let v: f64 = num
        .parse()
        .map_err(|_| format!("`{s}` does not start with a number"))?;
    Ok((v, unit.trim().to_ascii_lowercase()))
}

/// `8MiB`, `512k`, `1GB`, `1000` (bytes).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let (v, unit) = split_num(s)?;
    let mult: f64 = match unit.as_str() {
        "" | "b" => 1.0,
        "k" | "kb" => 1e3,
        "kib" => 1024.0,
        "m" | "mb" => 1e6,
        "mib" => 1024.0 * 1024.0,
        "g" | "gb" => 1e9,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        _ => {
            return Err(format!(
                "unknown size unit in `{s}`: use B, KiB, MiB, GiB, KB, MB or GB"
            ))
        }
    };
    Ok((v * mult).round() as u64)
}

/// `10%` or `0.1` as a probability.
pub fn parse_prob(s: &str) -> Result<f64, String> {
    let (v, unit) = split_num(s)?;
    let p = match unit.as_str() {
        "%" => v / 100.0,
        "" => v,
        _ => {
            return Err(format!(
                "`{s}`: write a percentage like 5% or a fraction like 0.05"
            ))
        }
    };
    if !(0.0..=1.0).contains(&p) {
        return Err(format!("`{s}` is not between 0% and 100%"));
    }
    Ok(p)
}

/// `80ms`, `1.5s`, `250us`; a bare number is milliseconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let (v, unit) = split_num(s)?;
    let secs = match unit.as_str() {
        "" | "ms" => v / 1e3,
        "s" => v,
        "us" | "µs" => v / 1e6,
        "m" | "min" => v * 60.0,
        "h" => v * 3600.0,
        _ => {
            return Err(format!(
                "unknown time unit in `{s}`: use us, ms, s, min or h"
            ))
        }
    };
    Duration::try_from_secs_f64(secs).map_err(|_| format!("`{s}` is too long a time"))
}

/// `20mbit`, `100kbit`, `1gbit`, `5MB/s` as bits per second; `0` means unlimited.
pub fn parse_rate(s: &str) -> Result<u64, String> {
    let (v, unit) = split_num(s)?;
    let bps = match unit.trim_end_matches("/s").trim_end_matches("ps") {
        "" | "bit" | "b" => v,
        "k" | "kbit" => v * 1e3,
        "m" | "mbit" => v * 1e6,
        "g" | "gbit" => v * 1e9,
        "kb" => v * 8e3,
        "mb" => v * 8e6,
        "gb" => v * 8e9,
        _ => {
            return Err(format!(
                "unknown rate unit in `{s}`: use kbit, mbit, gbit or KB/s, MB/s"
            ))
        }
    };
    Ok(bps.round() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units() {
        assert_eq!(parse_size("8MiB"), Ok(8 << 20));
        assert_eq!(parse_size("1.5k"), Ok(1500));
        assert_eq!(parse_prob("10%"), Ok(0.1));
        assert!(parse_prob("150%").is_err());
        assert_eq!(parse_duration("80ms"), Ok(Duration::from_millis(80)));
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
        // Too long for a Duration: an error, not a panic.
        assert!(parse_duration("99999999999999999999999h").is_err());
        assert_eq!(parse_rate("20mbit"), Ok(20_000_000));
        assert_eq!(parse_rate("5MB/s"), Ok(40_000_000));
        assert!(parse_size("3 parsecs").is_err());
    }
}
