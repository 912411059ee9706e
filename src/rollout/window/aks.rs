//! An AKS planned-maintenance configuration (`properties.maintenanceWindow`): its JSON, the
//! typed rule, and the days a window starts on.

use super::daily::{clock_time, day_index, FieldError};
use super::{Opening, WindowError};
use jiff::civil::{Date, Time, Weekday};
use jiff::tz::{Offset, TimeZone};
use jiff::SignedDuration;
use serde::Deserialize;

/// AKS `properties.maintenanceWindow` (REFERENCE §11).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
struct AksWindowJson {
    schedule: AksScheduleJson,
    duration_hours: i64,
    #[serde(default)]
    utc_offset: Option<String>,
    #[serde(default)]
    start_date: Option<String>,
    start_time: String,
    #[serde(default)]
    not_allowed_dates: Vec<DateSpanJson>,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
struct AksScheduleJson {
    daily: Option<Daily>,
    weekly: Option<Weekly>,
    absolute_monthly: Option<AbsoluteMonthly>,
    relative_monthly: Option<RelativeMonthly>,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
struct Daily {
    interval_days: i64,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
struct Weekly {
    interval_weeks: i64,
    day_of_week: String,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
struct AbsoluteMonthly {
    interval_months: i64,
    day_of_month: i8,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
struct RelativeMonthly {
    interval_months: i64,
    week_index: String,
    day_of_week: String,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
struct DateSpanJson {
    start: String,
    end: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WeekIndex {
    First,
    Second,
    Third,
    Fourth,
    Last,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum AksRule {
    Daily { every: i64 },
    Weekly { every: i64, day: Weekday },
    AbsoluteMonthly { every: i64, day: i8 },
    RelativeMonthly { every: i64, week: WeekIndex, day: Weekday },
}

/// An AKS planned-maintenance window, typed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AksWindow {
    /// The configuration's name (`aksManagedNodeOSUpgradeSchedule`, `default`).
    pub name: String,
    rule: AksRule,
    duration: SignedDuration,
    offset: Offset,
    start_date: Option<Date>,
    start_time: Time,
    not_allowed: Vec<(Date, Date)>,
    pub(super) text: String,
}

fn weekday(s: &str) -> Result<Weekday, FieldError> {
    Ok(match day_index(s)? {
        0 => Weekday::Monday,
        1 => Weekday::Tuesday,
        2 => Weekday::Wednesday,
        3 => Weekday::Thursday,
        4 => Weekday::Friday,
        5 => Weekday::Saturday,
        _ => Weekday::Sunday,
    })
}

fn offset(s: &str) -> Result<Offset, FieldError> {
    let err = || FieldError::UtcOffset(s.to_string());
    let (sign, rest) = match s.as_bytes().first() {
        Some(b'+') => (1, &s[1..]),
        Some(b'-') => (-1, &s[1..]),
        _ => return Err(err()),
    };
    let (h, m) = rest.split_once(':').ok_or_else(err)?;
    let (h, m): (i32, i32) = (h.parse().map_err(|_| err())?, m.parse().map_err(|_| err())?);
    if !(0..=14).contains(&h) || !(0..60).contains(&m) {
        return Err(err());
    }
    Offset::from_seconds(sign * (h * 3600 + m * 60)).map_err(|_| err())
}

fn date(s: &str, field: &'static str) -> Result<Date, FieldError> {
    s.trim().parse::<Date>().map_err(|_| FieldError::Date {
        field,
        text: s.to_string(),
    })
}

impl AksWindow {
    /// From `properties.maintenanceWindow` of configuration `name`.
    pub fn from_json(name: &str, window: &serde_json::Value) -> Result<AksWindow, WindowError> {
        let bad = |why: String| WindowError::Aks {
            name: name.to_string(),
            why,
        };
        let field = |source: FieldError| WindowError::AksField {
            name: name.to_string(),
            source,
        };
        let w: AksWindowJson = serde_json::from_value(window.clone()).map_err(|e| bad(e.to_string()))?;
        let s = &w.schedule;
        let n = [
            s.daily.is_some(),
            s.weekly.is_some(),
            s.absolute_monthly.is_some(),
            s.relative_monthly.is_some(),
        ]
        .iter()
        .filter(|b| **b)
        .count();
        if n != 1 {
            return Err(bad(format!(
                "its schedule must have exactly one of daily, weekly, absoluteMonthly, relativeMonthly (it has {n})"
            )));
        }
        let positive = |v: i64, field: &str| {
            if v >= 1 {
                Ok(v)
            } else {
                Err(bad(format!("{field} must be at least 1 (it is {v})")))
            }
        };
        let rule = if let Some(d) = &s.daily {
            AksRule::Daily {
                every: positive(d.interval_days, "intervalDays")?,
            }
        } else if let Some(wk) = &s.weekly {
            AksRule::Weekly {
                every: positive(wk.interval_weeks, "intervalWeeks")?,
                day: weekday(&wk.day_of_week).map_err(field)?,
            }
        } else if let Some(m) = &s.absolute_monthly {
            if !(1..=31).contains(&m.day_of_month) {
                return Err(bad(format!("dayOfMonth must be 1 to 31 (it is {})", m.day_of_month)));
            }
            AksRule::AbsoluteMonthly {
                every: positive(m.interval_months, "intervalMonths")?,
                day: m.day_of_month,
            }
        } else {
            let m = s.relative_monthly.as_ref().expect("one schedule");
            let week = match m.week_index.to_ascii_lowercase().as_str() {
                "first" => WeekIndex::First,
                "second" => WeekIndex::Second,
                "third" => WeekIndex::Third,
                "fourth" => WeekIndex::Fourth,
                "last" => WeekIndex::Last,
                other => {
                    return Err(bad(format!(
                        "weekIndex `{other}` is not First, Second, Third, Fourth or Last"
                    )))
                }
            };
            AksRule::RelativeMonthly {
                every: positive(m.interval_months, "intervalMonths")?,
                week,
                day: weekday(&m.day_of_week).map_err(field)?,
            }
        };
        if !(1..=24).contains(&w.duration_hours) {
            return Err(bad(format!(
                "durationHours must be 1 to 24 (it is {})",
                w.duration_hours
            )));
        }
        let not_allowed = w
            .not_allowed_dates
            .iter()
            .map(|d| {
                Ok((
                    date(&d.start, "notAllowedDates.start")?,
                    date(&d.end, "notAllowedDates.end")?,
                ))
            })
            .collect::<Result<Vec<_>, FieldError>>()
            .map_err(field)?;
        let utc_offset = w.utc_offset.as_deref().unwrap_or("+00:00");
        Ok(AksWindow {
            name: name.to_string(),
            duration: SignedDuration::from_hours(w.duration_hours),
            offset: offset(utc_offset).map_err(field)?,
            start_date: w
                .start_date
                .as_deref()
                .map(|d| date(d, "startDate"))
                .transpose()
                .map_err(field)?,
            start_time: clock_time(&w.start_time).map_err(|source| WindowError::AksStartTime {
                name: name.to_string(),
                source,
            })?,
            not_allowed,
            text: describe_aks(&rule, &w.start_time, utc_offset, w.duration_hours),
            rule,
        })
    }

    pub(super) fn starts_on(&self, day: Date) -> Option<Opening> {
        let anchor = self.start_date.unwrap_or(Date::constant(2000, 1, 3));
        if day < anchor {
            return None;
        }
        let months = |d: Date| d.year() as i64 * 12 + d.month() as i64;
        let ok = match &self.rule {
            AksRule::Daily { every } => days_between(anchor, day) % every == 0,
            AksRule::Weekly { every, day: wd } => day.weekday() == *wd && (days_between(anchor, day) / 7) % every == 0,
            AksRule::AbsoluteMonthly { every, day: dom } => {
                day.day() == *dom && (months(day) - months(anchor)) % every == 0
            }
            AksRule::RelativeMonthly { every, week, day: wd } => {
                let nth = (day.day() - 1) / 7;
                let in_week = match week {
                    WeekIndex::First => nth == 0,
                    WeekIndex::Second => nth == 1,
                    WeekIndex::Third => nth == 2,
                    WeekIndex::Fourth => nth == 3,
                    WeekIndex::Last => day.day() + 7 > day.days_in_month(),
                };
                day.weekday() == *wd && in_week && (months(day) - months(anchor)) % every == 0
            }
        };
        if !ok {
            return None;
        }
        let tz = TimeZone::fixed(self.offset);
        let start = tz.to_timestamp(day.to_datetime(self.start_time)).ok()?;
        let end = start.checked_add(self.duration).ok()?;
        // No part of the window may fall on a date that is not allowed (dates in utcOffset).
        let last_day = end.checked_sub(SignedDuration::from_secs(1)).ok()?.to_zoned(tz).date();
        let blocked = self.not_allowed.iter().any(|(a, b)| day <= *b && last_day >= *a);
        (!blocked).then_some(Opening { start, end })
    }
}

fn days_between(a: Date, b: Date) -> i64 {
    a.until(b).map(|s| s.get_days() as i64).unwrap_or(0)
}

fn describe_aks(rule: &AksRule, start_time: &str, offset: &str, hours: i64) -> String {
    let what = match rule {
        AksRule::Daily { every: 1 } => "daily".to_string(),
        AksRule::Daily { every } => format!("every {every} days"),
        AksRule::Weekly { every: 1, day } => format!("weekly on {day:?}"),
        AksRule::Weekly { every, day } => format!("every {every} weeks on {day:?}"),
        AksRule::AbsoluteMonthly { every, day } => format!("day {day} of every {every} month(s)"),
        AksRule::RelativeMonthly { every, week, day } => {
            format!("{week:?} {day:?} of every {every} month(s)")
        }
    };
    format!("{what} at {start_time} UTC{offset} for {hours}h")
}

#[cfg(test)]
mod tests {
    use super::super::Schedule;
    use super::*;
    use jiff::Timestamp;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn aks(json: serde_json::Value) -> Schedule {
        let mut s = Schedule::new("UTC").unwrap();
        s.add_aks(AksWindow::from_json("aksManagedNodeOSUpgradeSchedule", &json).unwrap());
        s
    }

    #[test]
    fn aks_daily_with_interval_offset_and_start_date() {
        // Every 2 days from 2026-12-01 at 13:30 -07:00 (20:30 UTC) for 4 hours.
        let s = aks(
            serde_json::json!({"schedule": {"daily": {"intervalDays": 2}}, "durationHours": 4,
            "startDate": "2026-12-01", "startTime": "13:30", "utcOffset": "-07:00"}),
        );
        assert_eq!(
            s.open_at(ts("2026-12-01T21:00:00Z")).unwrap().end,
            ts("2026-12-02T00:30:00Z")
        );
        assert_eq!(s.open_at(ts("2026-12-02T21:00:00Z")), None);
        assert_eq!(
            s.next_opening(ts("2026-12-02T00:00:00Z")).unwrap().start,
            ts("2026-12-03T20:30:00Z")
        );
        // Nothing before the start date.
        assert_eq!(
            s.next_opening(ts("2026-01-01T00:00:00Z")).unwrap().start,
            ts("2026-12-01T20:30:00Z")
        );
    }

    #[test]
    fn aks_weekly_every_two_weeks() {
        let s = aks(
            serde_json::json!({"schedule": {"weekly": {"intervalWeeks": 2, "dayOfWeek": "Sunday"}},
            "durationHours": 6, "startDate": "2026-11-29", "startTime": "02:00"}),
        );
        let next = s.next_opening(ts("2026-11-30T00:00:00Z")).unwrap();
        assert_eq!(next.start, ts("2026-12-13T02:00:00Z"));
        assert_eq!(next.end, ts("2026-12-13T08:00:00Z"));
    }

    #[test]
    fn aks_absolute_monthly_skips_not_allowed_dates() {
        let s = aks(
            serde_json::json!({"schedule": {"absoluteMonthly": {"intervalMonths": 1, "dayOfMonth": 15}},
            "durationHours": 5, "startDate": "2026-01-01", "startTime": "08:30", "utcOffset": "+00:00",
            "notAllowedDates": [{"start": "2026-12-10", "end": "2027-01-05"}]}),
        );
        assert_eq!(
            s.next_opening(ts("2026-12-02T00:00:00Z")).unwrap().start,
            ts("2027-01-15T08:30:00Z")
        );
        assert_eq!(
            s.next_opening(ts("2026-11-02T00:00:00Z")).unwrap().start,
            ts("2026-11-15T08:30:00Z")
        );
    }

    #[test]
    fn aks_relative_monthly_first_and_last_weekday() {
        let first = aks(
            serde_json::json!({"schedule": {"relativeMonthly": {"intervalMonths": 1, "weekIndex": "First", "dayOfWeek": "Monday"}},
            "durationHours": 4, "startTime": "00:00", "utcOffset": "+01:00"}),
        );
        // First Monday of December 2026 is the 7th; 00:00 +01:00 = 6 Dec 23:00 UTC.
        assert_eq!(
            first.next_opening(ts("2026-12-02T00:00:00Z")).unwrap().start,
            ts("2026-12-06T23:00:00Z")
        );
        let last = aks(
            serde_json::json!({"schedule": {"relativeMonthly": {"intervalMonths": 1, "weekIndex": "Last", "dayOfWeek": "Thursday"}},
            "durationHours": 4, "startTime": "10:00"}),
        );
        assert_eq!(
            last.next_opening(ts("2026-12-02T00:00:00Z")).unwrap().start,
            ts("2026-12-31T10:00:00Z")
        );
    }

    #[test]
    fn a_bad_aks_window_names_the_field() {
        let e = AksWindow::from_json(
            "default",
            &serde_json::json!({"schedule": {"daily": {"intervalDays": 1}, "weekly": {"intervalWeeks": 1, "dayOfWeek": "Monday"}},
                "durationHours": 4, "startTime": "01:00"}),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("exactly one of") && e.contains("`default`"), "{e}");
        let e = AksWindow::from_json(
            "default",
            &serde_json::json!({"schedule": {"daily": {"intervalDays": 1}}, "durationHours": 4, "startTime": "01:00", "utcOffset": "7"}),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("utcOffset `7`"), "{e}");
        let field = |window: serde_json::Value| match AksWindow::from_json("default", &window) {
            Err(WindowError::AksField { source, .. } | WindowError::AksStartTime { source, .. }) => source,
            other => panic!("{other:?}"),
        };
        let daily = serde_json::json!({"daily": {"intervalDays": 1}});
        assert_eq!(
            field(serde_json::json!({"schedule": daily, "durationHours": 4, "startTime": "1:00pm"})),
            FieldError::TimeOfDay("1:00pm".into())
        );
        assert_eq!(
            field(
                serde_json::json!({"schedule": {"weekly": {"intervalWeeks": 1, "dayOfWeek": "Caturday"}},
                "durationHours": 4, "startTime": "01:00"})
            ),
            FieldError::Day("caturday".into())
        );
        assert_eq!(
            field(
                serde_json::json!({"schedule": daily, "durationHours": 4, "startTime": "01:00",
                "notAllowedDates": [{"start": "2025-12-24", "end": "soon"}]})
            ),
            FieldError::Date {
                field: "notAllowedDates.end",
                text: "soon".into()
            }
        );
        let e = AksWindow::from_json(
            "default",
            &serde_json::json!({"schedule": daily, "durationHours": 4, "startTime": "25:00"}),
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .ends_with("cannot be read: startTime: `25:00` is not a time of day (HH:MM, 00:00 to 23:59)"),
            "{e}"
        );
    }
}
