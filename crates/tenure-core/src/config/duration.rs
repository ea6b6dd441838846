//! Flink duration strings (`TimeUtils.parseDuration` in Flink).
//!
//! A duration is a run of ASCII digits, optional whitespace, and an optional unit label:
//! `"60 s"`, `"60s"`, `"15000 ms"`, `"1 min"`, `"2h"`. Without a unit the number is milliseconds
//! (`"500"`), which is also how the ZooKeeper client keys of Flink 1.x (plain `int` milliseconds)
//! are read. Unit labels are case-insensitive, as in Flink:
//!
//! | unit | labels |
//! |---|---|
//! | days | `d`, `day`, `days` |
//! | hours | `h`, `hour`, `hours` |
//! | minutes | `min`, `m`, `minute`, `minutes` |
//! | seconds | `s`, `sec`, `secs`, `second`, `seconds` |
//! | milliseconds | `ms`, `milli`, `millis`, `millisecond`, `milliseconds` |
//! | microseconds | `us`, `µs` (micro sign or Greek mu), `micro`, `micros`, `microsecond`, `microseconds` |
//! | nanoseconds | `ns`, `nano`, `nanos`, `nanosecond`, `nanoseconds` |
//!
//! Signs, fractions and values that overflow [`Duration`] are rejected with an error; no input
//! panics.

use std::time::Duration;

/// Why a duration string was rejected by [`parse_duration`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// The text is empty or only whitespace.
    #[error("empty duration")]
    Empty,
    /// The text does not start with a digit (after leading whitespace).
    #[error("duration does not start with a number")]
    NoNumber,
    /// The unit label is not one of the recognised labels.
    #[error("unknown time unit {0:?}")]
    UnknownUnit(String),
    /// The value does not fit in a [`Duration`].
    #[error("duration out of range")]
    Overflow,
}

/// Parses a Flink duration string; a bare number means milliseconds.
///
/// Never panics; every malformed input gives a [`DurationError`].
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(DurationError::Empty);
    }
    let digits_end = trimmed
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(trimmed.len());
    // `digits_end` is a char boundary: every byte before it is an ASCII digit.
    let (number, rest) = trimmed.split_at(digits_end);
    if number.is_empty() {
        return Err(DurationError::NoNumber);
    }
    let value: u64 = number.parse().map_err(|_| DurationError::Overflow)?;
    let unit = rest.trim().to_lowercase();
    let seconds_per = |factor: u64| {
        value
            .checked_mul(factor)
            .map(Duration::from_secs)
            .ok_or(DurationError::Overflow)
    };
    match unit.as_str() {
        "" | "ms" | "milli" | "millis" | "millisecond" | "milliseconds" => {
            Ok(Duration::from_millis(value))
        }
        "d" | "day" | "days" => seconds_per(86_400),
        "h" | "hour" | "hours" => seconds_per(3_600),
        "min" | "m" | "minute" | "minutes" => seconds_per(60),
        "s" | "sec" | "secs" | "second" | "seconds" => seconds_per(1),
        "us" | "µs" | "μs" | "micro" | "micros" | "microsecond" | "microseconds" => {
            Ok(Duration::from_micros(value))
        }
        "ns" | "nano" | "nanos" | "nanosecond" | "nanoseconds" => Ok(Duration::from_nanos(value)),
        _ => Err(DurationError::UnknownUnit(rest.trim().to_owned())),
    }
}

/// Formats a duration in the largest unit that represents it exactly, Flink style
/// (`"60 s"`, `"1 min"`, `"15000 ms"` is rendered `"15 s"`, `"0 ms"`).
///
/// The result parses back to the same duration with [`parse_duration`] as long as the duration
/// has whole nanoseconds below `u64::MAX` (always true for durations produced by the parser).
pub fn format_duration(duration: Duration) -> String {
    let nanos = duration.as_nanos();
    if nanos == 0 {
        return "0 ms".to_owned();
    }
    const UNITS: [(u128, &str); 7] = [
        (86_400_000_000_000, "d"),
        (3_600_000_000_000, "h"),
        (60_000_000_000, "min"),
        (1_000_000_000, "s"),
        (1_000_000, "ms"),
        (1_000, "us"),
        (1, "ns"),
    ];
    for (size, label) in UNITS {
        if nanos.is_multiple_of(size) {
            return format!("{} {label}", nanos / size);
        }
    }
    format!("{nanos} ns")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_flink_examples() {
        assert_eq!(parse_duration("60 s").unwrap(), Duration::from_secs(60));
        assert_eq!(parse_duration("60s").unwrap(), Duration::from_secs(60));
        assert_eq!(parse_duration("15000 ms").unwrap(), Duration::from_secs(15));
        assert_eq!(parse_duration("1 min").unwrap(), Duration::from_secs(60));
        assert_eq!(parse_duration("2h").unwrap(), Duration::from_secs(7200));
        assert_eq!(parse_duration("500").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("60000").unwrap(), Duration::from_secs(60));
        assert_eq!(
            parse_duration("  3 d ").unwrap(),
            Duration::from_secs(3 * 86_400)
        );
        assert_eq!(parse_duration("0").unwrap(), Duration::ZERO);
    }

    #[test]
    fn all_unit_labels() {
        let cases: [(&[&str], Duration); 7] = [
            (&["d", "day", "days"], Duration::from_secs(86_400)),
            (&["h", "hour", "hours"], Duration::from_secs(3_600)),
            (&["min", "m", "minute", "minutes"], Duration::from_secs(60)),
            (
                &["s", "sec", "secs", "second", "seconds"],
                Duration::from_secs(1),
            ),
            (
                &["ms", "milli", "millis", "millisecond", "milliseconds"],
                Duration::from_millis(1),
            ),
            (
                &["us", "µs", "micro", "micros", "microsecond", "microseconds"],
                Duration::from_micros(1),
            ),
            (
                &["ns", "nano", "nanos", "nanosecond", "nanoseconds"],
                Duration::from_nanos(1),
            ),
        ];
        for (labels, unit) in cases {
            for label in labels {
                assert_eq!(parse_duration(&format!("2 {label}")).unwrap(), unit * 2);
                let upper = label.to_uppercase();
                assert_eq!(parse_duration(&format!("2{upper}")).unwrap(), unit * 2);
            }
        }
    }

    #[test]
    fn rejects_malformed() {
        assert_eq!(parse_duration(""), Err(DurationError::Empty));
        assert_eq!(parse_duration("   "), Err(DurationError::Empty));
        assert_eq!(parse_duration("abc"), Err(DurationError::NoNumber));
        assert_eq!(parse_duration("-5 s"), Err(DurationError::NoNumber));
        assert_eq!(parse_duration("s"), Err(DurationError::NoNumber));
        assert_eq!(
            parse_duration("1.5 s"),
            Err(DurationError::UnknownUnit(".5 s".into()))
        );
        assert_eq!(
            parse_duration("5 fortnights"),
            Err(DurationError::UnknownUnit("fortnights".into()))
        );
        assert_eq!(
            parse_duration("99999999999999999999999"),
            Err(DurationError::Overflow)
        );
        assert_eq!(
            parse_duration("18446744073709551615 d"),
            Err(DurationError::Overflow)
        );
    }

    #[test]
    fn formats_in_largest_exact_unit() {
        assert_eq!(format_duration(Duration::ZERO), "0 ms");
        assert_eq!(format_duration(Duration::from_secs(60)), "1 min");
        assert_eq!(format_duration(Duration::from_millis(15_000)), "15 s");
        assert_eq!(format_duration(Duration::from_millis(1_500)), "1500 ms");
        assert_eq!(format_duration(Duration::from_secs(7_200)), "2 h");
    }

    proptest! {
        #[test]
        fn never_panics(text in ".*") {
            let _ = parse_duration(&text);
        }

        #[test]
        fn number_and_unit_round_trip(n in 0u64..1_000_000, unit in "(ns|us|ms|s|min|h|d)") {
            let parsed = parse_duration(&format!("{n} {unit}")).unwrap();
            prop_assert_eq!(parse_duration(&format_duration(parsed)).unwrap(), parsed);
        }
    }
}
