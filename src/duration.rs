//! Durations as people write and read them (`15m`, `1h30m`, `90s`), parsed and printed by
//! jiff's "friendly" format: the flags' values, the countdowns and the notifications.

use jiff::fmt::friendly::{Designator, Spacing, SpanParser, SpanPrinter};
use jiff::SignedDuration;
use std::time::Duration;

static PARSER: SpanParser = SpanParser::new();
static PRINTER: SpanPrinter = SpanPrinter::new()
    .designator(Designator::Compact)
    .spacing(Spacing::None);

/// What a duration flag takes, for messages.
pub const FORMS: &str = "e.g. 15m, 1h30m, 90s, or seconds alone: 900";

/// Why a text is not a duration a flag takes, in words for the flag's message.
#[derive(Debug, Clone, thiserror::Error)]
pub enum DurationError {
    #[error("`{0}` seconds is too long a duration")]
    TooLong(String),
    #[error("`{text}` is not a duration ({FORMS})")]
    NotADuration {
        text: String,
        #[source]
        source: jiff::Error,
    },
    #[error("`{0}` has a fraction of a second: give whole seconds ({FORMS})")]
    Fraction(String),
    /// Below zero where zero is allowed.
    #[error("a negative duration: give one of zero or more ({FORMS})")]
    Negative,
    /// Below zero where only more than zero is allowed.
    #[error("a negative duration: give one above zero ({FORMS})")]
    NegativeNotPositive,
    #[error("a duration of zero: give one above zero ({FORMS})")]
    Zero,
}

/// `15m`, `1h30m`, `90s`, `2 hours`, `900` (seconds alone): whole seconds, hours the largest
/// unit.
pub fn parse(s: &str) -> Result<Duration, DurationError> {
    let t = s.trim();
    if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) {
        return t
            .parse::<u64>()
            .map(Duration::from_secs)
            .map_err(|_| DurationError::TooLong(s.to_string()));
    }
    let d = PARSER
        .parse_unsigned_duration(t)
        .map_err(|source| DurationError::NotADuration {
            text: s.to_string(),
            source,
        })?;
    if d.subsec_nanos() != 0 {
        return Err(DurationError::Fraction(s.to_string()));
    }
    Ok(d)
}

/// `15m`, `1h30m`, `45s`, `0s`: whole seconds, hours the largest unit.
pub fn human(d: Duration) -> String {
    let whole = SignedDuration::try_from(Duration::from_secs(d.as_secs())).unwrap_or(SignedDuration::MAX);
    PRINTER.duration_to_string(&whole)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_people_write_them() {
        assert_eq!(parse("15m").unwrap(), Duration::from_secs(900));
        assert_eq!(parse("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse(" 90 ").unwrap(), Duration::from_secs(90));
        assert_eq!(parse("2 hours").unwrap(), Duration::from_secs(7200));
        assert_eq!(parse("0s").unwrap(), Duration::ZERO);
    }

    #[test]
    fn what_is_not_a_duration_is_refused_with_the_forms_taken() {
        for bad in ["15x", "m", "", "1m30", "5m ago", "-5m", "1d", "1w"] {
            let e = parse(bad).unwrap_err();
            assert!(matches!(e, DurationError::NotADuration { .. }), "{bad}: {e:?}");
            let e = e.to_string();
            assert!(e.contains(&format!("`{bad}`")) && e.contains("1h30m"), "{bad}: {e}");
        }
        let e = parse("1.5s").unwrap_err();
        assert!(matches!(e, DurationError::Fraction(_)), "{e:?}");
        assert!(e.to_string().contains("fraction of a second"), "{e}");
    }

    #[test]
    fn a_huge_duration_is_refused_without_overflowing() {
        for huge in [
            "99999999999999999999",
            "99999999999999999999h",
            "9999999999999999999h",
            "18446744073709551615h59m",
        ] {
            let e = parse(huge).unwrap_err().to_string();
            assert!(e.contains(huge), "{huge}: {e}");
        }
        // The longest whole-second value a flag can hold still reads.
        assert_eq!(parse("18446744073709551615").unwrap(), Duration::from_secs(u64::MAX));
    }

    #[test]
    fn durations_print_as_people_write_them() {
        assert_eq!(human(Duration::from_secs(5400)), "1h30m");
        assert_eq!(human(Duration::from_secs(45)), "45s");
        assert_eq!(human(Duration::from_secs(900)), "15m");
        assert_eq!(human(Duration::from_millis(61_500)), "1m1s");
        assert_eq!(human(Duration::ZERO), "0s");
        assert_eq!(human(Duration::from_secs(100 * 3600 + 1)), "100h1s");
    }
}
