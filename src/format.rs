//! Numbers, sizes and durations for people to read: one place, so that every command writes the
//! same quantity the same way.

use std::time::Duration;

/// `1h02m`, `3m05s`, `42s`: a clock-like duration (progress displays, ETAs).
pub fn duration(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m{:02}s", s / 60, s % 60),
        _ if s < 48 * 3600 => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
        _ => format!("{:.1} days", s as f64 / 86400.0),
    }
}

/// [`duration`] of `seconds` (negative ones read as 0).
pub fn seconds(seconds: f64) -> String {
    duration(Duration::from_secs_f64(seconds.max(0.0)))
}

/// A rounded duration for estimates, which should not pretend to precision: `45 s`, `2.5 min`,
/// `38 min`, `3.5 h`, `31 h`, `12.9 days`.
pub fn about(seconds: f64) -> String {
    let s = seconds.max(0.0);
    if s < 90.0 {
        format!("{:.0} s", s.max(1.0))
    } else if s < 600.0 {
        format!("{:.1} min", s / 60.0)
    } else if s < 90.0 * 60.0 {
        format!("{:.0} min", s / 60.0)
    } else if s < 10.0 * 3600.0 {
        format!("{:.1} h", s / 3600.0)
    } else if s < 72.0 * 3600.0 {
        format!("{:.0} h", s / 3600.0)
    } else {
        format!("{:.1} days", s / 86400.0)
    }
}

/// `950`, `12.5 k`, `3.9 M`: a count rounded for reading.
pub fn count_rounded(n: f64) -> String {
    if n < 1e3 {
        format!("{n:.0}")
    } else if n < 1e6 {
        format!("{:.1} k", n / 1e3)
    } else if n < 1e9 {
        format!("{:.1} M", n / 1e6)
    } else {
        format!("{:.1} G", n / 1e9)
    }
}

/// `434,162`: a count in full, grouped by thousands.
pub fn count_grouped(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 {
        format!("-{out}")
    } else {
        out
    }
}

/// `1.5 KiB`, `3.0 GiB`: a size in binary units.
pub fn bytes(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_a_clock() {
        assert_eq!(duration(Duration::from_secs(42)), "42s");
        assert_eq!(duration(Duration::from_secs(185)), "3m05s");
        assert_eq!(duration(Duration::from_secs(3720)), "1h02m");
        assert_eq!(duration(Duration::from_secs(3 * 86400)), "3.0 days");
        assert_eq!(seconds(-3.0), "0s");
    }

    #[test]
    fn durations_and_counts_are_rounded_for_reading() {
        assert_eq!(about(42.4), "42 s");
        assert_eq!(about(0.2), "1 s");
        assert_eq!(about(150.0), "2.5 min");
        assert_eq!(about(38.0 * 60.0), "38 min");
        assert_eq!(about(3.46 * 3600.0), "3.5 h");
        assert_eq!(about(31.2 * 3600.0), "31 h");
        assert_eq!(about(12.9 * 86400.0), "12.9 days");
        assert_eq!(count_rounded(950.0), "950");
        assert_eq!(count_rounded(12_500.0), "12.5 k");
        assert_eq!(count_rounded(3_900_000.0), "3.9 M");
    }

    #[test]
    fn full_counts_are_grouped_by_thousands() {
        assert_eq!(count_grouped(434_162), "434,162");
        assert_eq!(count_grouped(999), "999");
        assert_eq!(count_grouped(-1_000), "-1,000");
    }

    #[test]
    fn sizes_are_in_binary_units() {
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(12), "12.0 B");
    }
}
