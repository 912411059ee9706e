//! `--window DAYS HH:MM-HH:MM`: its grammar, and its openings in a time zone.

use super::{Opening, WindowError};
use jiff::civil::{Date, Time};
use jiff::tz::TimeZone;

/// `--window DAYS HH:MM-HH:MM`: the days it starts on, and its daily range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DailyWindow {
    /// Monday first.
    days: [bool; 7],
    start: Time,
    /// The end's time of day; `end_next_day` when the range wraps midnight (or ends at 24:00).
    end: Time,
    end_next_day: bool,
    pub(super) text: String,
}

impl DailyWindow {
    /// `Sat,Sun 01:00-05:00`, `Mon-Fri 22:00-02:00` (wraps midnight), `01:00-05:00` (every day),
    /// `Sun 00:00-24:00`.
    pub fn parse(spec: &str) -> Result<DailyWindow, WindowError> {
        let bad = |why: &str| WindowError::Spec {
            spec: spec.to_string(),
            why: why.to_string(),
        };
        let field = |source: FieldError| WindowError::SpecField {
            spec: spec.to_string(),
            source,
        };
        let parts: Vec<&str> = spec.split_whitespace().collect();
        let (days_text, range) = match parts.as_slice() {
            [range] => (None, *range),
            [days, range] => (Some(*days), *range),
            _ => {
                return Err(bad(
                    "expected `DAYS HH:MM-HH:MM`, e.g. `Sat,Sun 01:00-05:00` or `Mon-Fri 22:00-02:00`",
                ))
            }
        };
        let mut days = [days_text.is_none(); 7];
        if let Some(text) = days_text {
            for item in text.split(',') {
                match item.split_once('-') {
                    Some((a, b)) => {
                        let (a, b) = (day_index(a).map_err(field)?, day_index(b).map_err(field)?);
                        let mut d = a;
                        loop {
                            days[d] = true;
                            if d == b {
                                break;
                            }
                            d = (d + 1) % 7;
                        }
                    }
                    None => days[day_index(item).map_err(field)?] = true,
                }
            }
        }
        let (a, b) = range
            .split_once('-')
            .ok_or_else(|| bad("the time range must be `HH:MM-HH:MM`"))?;
        let start = clock_time(a).map_err(field)?;
        let (end, end_24) = if b.trim() == "24:00" {
            (Time::midnight(), true)
        } else {
            (clock_time(b).map_err(field)?, false)
        };
        if start == end && !end_24 {
            return Err(bad("the range is empty; for a whole day use 00:00-24:00"));
        }
        Ok(DailyWindow {
            days,
            start,
            end,
            end_next_day: end_24 || end < start,
            text: spec.trim().to_string(),
        })
    }

    pub(super) fn starts_on(&self, date: Date, tz: &TimeZone) -> Option<Opening> {
        if !self.days[date.weekday().to_monday_zero_offset() as usize] {
            return None;
        }
        let end_date = if self.end_next_day { date.tomorrow().ok()? } else { date };
        let start = tz.to_ambiguous_zoned(date.to_datetime(self.start)).compatible().ok()?;
        let end = tz
            .to_ambiguous_zoned(end_date.to_datetime(self.end))
            .compatible()
            .ok()?;
        Some(Opening {
            start: start.timestamp(),
            end: end.timestamp(),
        })
    }
}

/// What is wrong with one field of a window: a day, a time of day, a UTC offset, a date.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FieldError {
    #[error("`{0}` is not a day (use Mon, Tue, Wed, Thu, Fri, Sat, Sun, lists `Sat,Sun` or ranges `Mon-Fri`)")]
    Day(String),
    #[error("`{0}` is not a time of day (HH:MM, 00:00 to 23:59)")]
    TimeOfDay(String),
    #[error("utcOffset `{0}` is not `+HH:MM` or `-HH:MM`")]
    UtcOffset(String),
    #[error("{field} `{text}` is not a date (YYYY-MM-DD)")]
    Date { field: &'static str, text: String },
}

/// Monday 0 to Sunday 6, from a day's name or its first three letters or more.
pub(super) fn day_index(s: &str) -> Result<usize, FieldError> {
    let s = s.trim().to_ascii_lowercase();
    const NAMES: [&str; 7] = [
        "monday",
        "tuesday",
        "wednesday",
        "thursday",
        "friday",
        "saturday",
        "sunday",
    ];
    NAMES
        .iter()
        .position(|n| s.len() >= 3 && n.starts_with(&s))
        .ok_or(FieldError::Day(s))
}

/// `HH:MM` (also `H:MM`).
pub(super) fn clock_time(s: &str) -> Result<Time, FieldError> {
    let s = s.trim();
    let err = || FieldError::TimeOfDay(s.to_string());
    let (h, m) = s.split_once(':').ok_or_else(err)?;
    if m.len() != 2 || h.is_empty() || h.len() > 2 {
        return Err(err());
    }
    let (h, m): (i8, i8) = (h.parse().map_err(|_| err())?, m.parse().map_err(|_| err())?);
    if !(0..24).contains(&h) || !(0..60).contains(&m) {
        return Err(err());
    }
    Time::new(h, m, 0, 0).map_err(|_| err())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_windows_say_what_is_wrong() {
        for (spec, want) in [
            ("Sat,Sun", "HH:MM-HH:MM"),
            ("Fun 01:00-02:00", "`fun` is not a day"),
            ("Sat 25:00-02:00", "`25:00` is not a time of day"),
            ("Sat 01:00-01:00", "the range is empty"),
            ("Sat 01:00 02:00 x", "expected `DAYS HH:MM-HH:MM`"),
        ] {
            let e = DailyWindow::parse(spec).unwrap_err().to_string();
            assert!(e.contains(want) && e.contains(spec), "{spec}: {e}");
        }
    }

    #[test]
    fn a_bad_day_or_time_is_told_as_what_it_is() {
        let field = |spec: &str| match DailyWindow::parse(spec) {
            Err(WindowError::SpecField { source, .. }) => source,
            other => panic!("{spec}: {other:?}"),
        };
        assert_eq!(field("Fun 01:00-02:00"), FieldError::Day("fun".into()));
        assert_eq!(field("Mon-Sum 01:00-02:00"), FieldError::Day("sum".into()));
        assert_eq!(field("Sat 25:00-02:00"), FieldError::TimeOfDay("25:00".into()));
        assert_eq!(field("Sat 01:00-1:5"), FieldError::TimeOfDay("1:5".into()));
    }
}
