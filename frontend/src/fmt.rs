//! Plain formatting of dates, durations and sizes, in pure Rust so it reads the same in every
//! browser and is unit tested natively.

/// Months, for `date`.
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// A UTC calendar date like `21 Nov 2026` for milliseconds since the Unix epoch.
pub fn date(ms: i64) -> String {
    let days = ms.div_euclid(86_400_000);
    let (y, m, d) = civil_from_days(days);
    format!("{d} {} {y}", MONTHS[(m - 1) as usize])
}

/// Howard Hinnant's days-to-civil algorithm: (year, month 1..=12, day 1..=31).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// A short duration like `42 s`, `3 min 5 s`, `2 h 10 min`, `3 d 4 h`.
pub fn duration(seconds: f64) -> String {
    let s = seconds.max(0.0) as u64;
    match s {
        0..=59 => format!("{s} s"),
        60..=3_599 => format!("{} min {} s", s / 60, s % 60),
        3_600..=86_399 => format!("{} h {} min", s / 3_600, s % 3_600 / 60),
        _ => format!("{} d {} h", s / 86_400, s % 86_400 / 3_600),
    }
}

/// `x` with exactly `decimals` digits after the point (at most 9), rounded half away from
/// zero. Integer arithmetic instead of `{:.N}`, whose float machinery costs WASM size.
pub fn fixed(x: f64, decimals: u32) -> String {
    let decimals = decimals.min(9);
    let scale = 10u64.pow(decimals);
    let v = (x.abs() * scale as f64).round() as u64;
    let sign = if x < 0.0 && v != 0 { "-" } else { "" };
    let (int, frac) = (v / scale, v % scale);
    if decimals == 0 {
        format!("{sign}{int}")
    } else {
        format!("{sign}{int}.{frac:0width$}", width = decimals as usize)
    }
}

/// Bytes as `512 KB`, `12.3 MB`, `1.20 GB`.
pub fn bytes(n: u64) -> String {
    let n = n as f64;
    if n < 1024.0 * 1024.0 {
        format!("{} KB", fixed(n / 1024.0, 0))
    } else if n < 1024.0 * 1024.0 * 1024.0 {
        format!("{} MB", fixed(n / (1024.0 * 1024.0), 1))
    } else {
        format!("{} GB", fixed(n / (1024.0 * 1024.0 * 1024.0), 2))
    }
}

/// A count with thousands separators: `1,000,000`.
pub fn count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_utc_calendar_days() {
        assert_eq!(date(0), "1 Jan 1970");
        // 2024-02-29T12:00:00Z, a leap day.
        assert_eq!(date(1_709_208_000_000), "29 Feb 2024");
        assert_eq!(date(1_798_675_200_000), "31 Dec 2026");
    }

    #[test]
    fn durations_pick_two_units() {
        assert_eq!(duration(0.4), "0 s");
        assert_eq!(duration(59.9), "59 s");
        assert_eq!(duration(185.0), "3 min 5 s");
        assert_eq!(duration(7_800.0), "2 h 10 min");
        assert_eq!(duration(273_600.0), "3 d 4 h");
    }

    #[test]
    fn fixed_point_without_float_formatting() {
        assert_eq!(fixed(0.0, 2), "0.00");
        assert_eq!(fixed(0.254, 2), "0.25");
        assert_eq!(fixed(0.255, 1), "0.3");
        assert_eq!(fixed(12.0, 0), "12");
        assert_eq!(fixed(1.05, 3), "1.050");
        assert_eq!(fixed(-2.5, 1), "-2.5");
        assert_eq!(fixed(-0.001, 1), "0.0");
    }

    #[test]
    fn sizes_and_counts() {
        assert_eq!(bytes(512 * 1024), "512 KB");
        assert_eq!(bytes(12_897_485), "12.3 MB");
        assert_eq!(count(0), "0");
        assert_eq!(count(999), "999");
        assert_eq!(count(1_000), "1,000");
        assert_eq!(count(1_000_000), "1,000,000");
    }
}
