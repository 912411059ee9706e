//! Maintenance windows: when a node may be disrupted.
//!
//! Two sources, one [`Schedule`]: `--window 'Sat,Sun 01:00-05:00'` (days and a daily time range
//! that may wrap midnight, in `--time-zone`), and an AKS planned-maintenance configuration
//! (`maintenanceConfigurations/aksManagedNodeOSUpgradeSchedule`, else `default`) with its
//! `daily`, `weekly`, `absoluteMonthly` and `relativeMonthly` schedules, `durationHours`,
//! `startTime`, `utcOffset`, `startDate` and `notAllowedDates`.
//!
//! A schedule answers two questions for an instant: the window open now (its end, with
//! overlapping or touching occurrences merged), and when the next one opens. The engine asks
//! them at its safe points through a [`Clock`], so its unit tests run on paused time.

use jiff::civil::{Date, Time, Weekday};
use jiff::tz::{Offset, TimeZone};
use jiff::{SignedDuration, Timestamp, Zoned};
use serde::Deserialize;
use std::fmt;
use std::time::Duration;

/// How far ahead the next opening is looked for (AKS allows monthly intervals up to 6).
const HORIZON_DAYS: i64 = 800;

/// The wall clock, as the engine sees it.
pub trait Clock: Send + Sync {
    fn now(&self) -> Timestamp;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}

/// For tests: wall-clock time that starts at a given instant and moves with (paused) tokio
/// time.
#[cfg(test)]
pub struct PausedClock {
    base: Timestamp,
    t0: tokio::time::Instant,
}

#[cfg(test)]
impl PausedClock {
    /// The clock at `at` (RFC 3339) now.
    pub fn at(at: &str) -> PausedClock {
        PausedClock {
            base: at.parse().expect("an RFC 3339 time"),
            t0: tokio::time::Instant::now(),
        }
    }
}

#[cfg(test)]
impl Clock for PausedClock {
    fn now(&self) -> Timestamp {
        self.base + jiff::SignedDuration::try_from(self.t0.elapsed()).unwrap()
    }
}

/// A bad window: what is wrong, in the words of the flag or field that said it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WindowError {
    #[error("invalid --window `{spec}`: {why}")]
    Spec { spec: String, why: String },
    #[error("unknown time zone `{0}` (--time-zone takes IANA names such as Europe/Berlin or UTC)")]
    TimeZone(String),
    #[error("the AKS maintenance configuration `{name}` cannot be read: {why}")]
    Aks { name: String, why: String },
}

/// One opening: from `start` (inclusive) to `end` (exclusive).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Opening {
    pub start: Timestamp,
    pub end: Timestamp,
}

/// `--window DAYS HH:MM-HH:MM`: the days it starts on, and its daily range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DailyWindow {
    /// Monday first.
    days: [bool; 7],
    start: Time,
    /// The end's time of day; `end_next_day` when the range wraps midnight (or ends at 24:00).
    end: Time,
    end_next_day: bool,
    text: String,
}

impl DailyWindow {
    /// `Sat,Sun 01:00-05:00`, `Mon-Fri 22:00-02:00` (wraps midnight), `01:00-05:00` (every day),
    /// `Sun 00:00-24:00`.
    pub fn parse(spec: &str) -> Result<DailyWindow, WindowError> {
        let bad = |why: &str| WindowError::Spec {
            spec: spec.to_string(),
            why: why.to_string(),
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
                        let (a, b) = (day_index(a).map_err(|w| bad(&w))?, day_index(b).map_err(|w| bad(&w))?);
                        let mut d = a;
                        loop {
                            days[d] = true;
                            if d == b {
                                break;
                            }
                            d = (d + 1) % 7;
                        }
                    }
                    None => days[day_index(item).map_err(|w| bad(&w))?] = true,
                }
            }
        }
        let (a, b) = range
            .split_once('-')
            .ok_or_else(|| bad("the time range must be `HH:MM-HH:MM`"))?;
        let start = clock_time(a).map_err(|w| bad(&w))?;
        let (end, end_24) = if b.trim() == "24:00" {
            (Time::midnight(), true)
        } else {
            (clock_time(b).map_err(|w| bad(&w))?, false)
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

    fn starts_on(&self, date: Date, tz: &TimeZone) -> Option<Opening> {
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

fn day_index(s: &str) -> Result<usize, String> {
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
        .ok_or_else(|| {
            format!("`{s}` is not a day (use Mon, Tue, Wed, Thu, Fri, Sat, Sun, lists `Sat,Sun` or ranges `Mon-Fri`)")
        })
}

/// `HH:MM` (also `H:MM`).
fn clock_time(s: &str) -> Result<Time, String> {
    let s = s.trim();
    let err = || format!("`{s}` is not a time of day (HH:MM, 00:00 to 23:59)");
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
    text: String,
}

fn weekday(s: &str) -> Result<Weekday, String> {
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

fn offset(s: &str) -> Result<Offset, String> {
    let err = || format!("utcOffset `{s}` is not `+HH:MM` or `-HH:MM`");
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

fn date(s: &str, field: &str) -> Result<Date, String> {
    s.trim()
        .parse::<Date>()
        .map_err(|_| format!("{field} `{s}` is not a date (YYYY-MM-DD)"))
}

impl AksWindow {
    /// From `properties.maintenanceWindow` of configuration `name`.
    pub fn from_json(name: &str, window: &serde_json::Value) -> Result<AksWindow, WindowError> {
        let bad = |why: String| WindowError::Aks {
            name: name.to_string(),
            why,
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
                day: weekday(&wk.day_of_week).map_err(bad)?,
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
                day: weekday(&m.day_of_week).map_err(bad)?,
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
            .collect::<Result<Vec<_>, String>>()
            .map_err(bad)?;
        let utc_offset = w.utc_offset.as_deref().unwrap_or("+00:00");
        Ok(AksWindow {
            name: name.to_string(),
            duration: SignedDuration::from_hours(w.duration_hours),
            offset: offset(utc_offset).map_err(bad)?,
            start_date: w
                .start_date
                .as_deref()
                .map(|d| date(d, "startDate"))
                .transpose()
                .map_err(bad)?,
            start_time: clock_time(&w.start_time).map_err(|e| bad(format!("startTime: {e}")))?,
            not_allowed,
            text: describe_aks(&rule, &w.start_time, utc_offset, w.duration_hours),
            rule,
        })
    }

    fn starts_on(&self, day: Date) -> Option<Opening> {
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

/// Where a window came from, for messages.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Source {
    Daily(DailyWindow),
    Aks(AksWindow),
}

/// Every window a run may disrupt nodes in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    zone: TimeZone,
    zone_name: String,
    sources: Vec<Source>,
}

impl Schedule {
    /// `--time-zone NAME` (IANA; `UTC` by default).
    pub fn new(time_zone: &str) -> Result<Schedule, WindowError> {
        let zone = TimeZone::get(time_zone).map_err(|_| WindowError::TimeZone(time_zone.to_string()))?;
        Ok(Schedule {
            zone,
            zone_name: time_zone.to_string(),
            sources: vec![],
        })
    }

    pub fn add_daily(&mut self, w: DailyWindow) {
        self.sources.push(Source::Daily(w));
    }

    pub fn add_aks(&mut self, w: AksWindow) {
        self.sources.push(Source::Aks(w));
    }

    pub fn is_empty(&self) -> bool {
        self.sources.is_empty()
    }

    /// The windows, as the user would write them.
    pub fn describe(&self) -> Vec<String> {
        self.sources
            .iter()
            .map(|s| match s {
                Source::Daily(d) => format!("{} ({})", d.text, self.zone_name),
                Source::Aks(a) => format!("AKS {}: {}", a.name, a.text),
            })
            .collect()
    }

    /// Every opening that starts on a local date from `from` to `to`, merged where they
    /// overlap or touch, in order.
    fn openings(&self, from: Timestamp, days: i64) -> Vec<Opening> {
        let first = from.to_zoned(self.zone.clone()).date();
        let mut all: Vec<Opening> = vec![];
        // AKS dates are in their own offset; a day either side covers every offset.
        let mut day = first.checked_sub(jiff::Span::new().days(2)).unwrap_or(first);
        for _ in 0..(days + 3) {
            for s in &self.sources {
                let o = match s {
                    Source::Daily(d) => d.starts_on(day, &self.zone),
                    Source::Aks(a) => a.starts_on(day),
                };
                all.extend(o.filter(|o| o.end > o.start));
            }
            day = match day.tomorrow() {
                Ok(d) => d,
                Err(_) => break,
            };
        }
        all.sort_by_key(|o| o.start);
        let mut merged: Vec<Opening> = vec![];
        for o in all {
            match merged.last_mut() {
                Some(last) if o.start <= last.end => last.end = last.end.max(o.end),
                _ => merged.push(o),
            }
        }
        merged
    }

    /// The window open at `now`, if one is.
    pub fn open_at(&self, now: Timestamp) -> Option<Opening> {
        self.openings(now, 2)
            .into_iter()
            .find(|o| o.start <= now && now < o.end)
    }

    /// The first window that opens after `now` (`None`: none within about two years).
    pub fn next_opening(&self, now: Timestamp) -> Option<Opening> {
        self.openings(now, HORIZON_DAYS).into_iter().find(|o| o.start > now)
    }

    /// May a disruption of `budget` start at `now`? (It must end inside the open window.)
    pub fn verdict(&self, now: Timestamp, budget: Duration) -> Verdict {
        let need = SignedDuration::try_from(budget).unwrap_or(SignedDuration::MAX);
        match self.open_at(now) {
            Some(o) if now.checked_add(need).is_ok_and(|end| end <= o.end) => Verdict::Fits { closes: o.end },
            Some(o) => Verdict::TooLate {
                closes: o.end,
                next: self.next_opening(now),
            },
            None => Verdict::Closed {
                next: self.next_opening(now),
            },
        }
    }

    /// `2026-12-05 01:00 CET (2026-12-05T00:00:00Z)`.
    pub fn show(&self, t: Timestamp) -> String {
        let z: Zoned = t.to_zoned(self.zone.clone());
        let utc = t.strftime("%Y-%m-%dT%H:%M:%SZ");
        if self.zone_name.eq_ignore_ascii_case("UTC") {
            utc.to_string()
        } else {
            format!("{} ({utc})", z.strftime("%Y-%m-%d %H:%M %Z"))
        }
    }
}

/// Whether a disruption may start now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// A window is open and the disruption is expected to end before it closes.
    Fits { closes: Timestamp },
    /// A window is open, but closes before the disruption would end.
    TooLate { closes: Timestamp, next: Option<Opening> },
    /// No window is open.
    Closed { next: Option<Opening> },
}

impl Verdict {
    pub fn fits(&self) -> bool {
        matches!(self, Verdict::Fits { .. })
    }

    /// The next opening, when the disruption may not start now.
    pub fn next(&self) -> Option<Opening> {
        match self {
            Verdict::Fits { .. } => None,
            Verdict::TooLate { next, .. } | Verdict::Closed { next } => *next,
        }
    }

    /// Why not, in words (`schedule` formats the times).
    pub fn explain(&self, schedule: &Schedule, budget: Duration) -> String {
        let next = match self.next() {
            Some(o) => format!("the next window opens {}", schedule.show(o.start)),
            None => "no window opens within the next two years".to_string(),
        };
        match self {
            Verdict::Fits { closes } => format!(
                "inside the maintenance window (closes {}); a node takes about {} (--node-budget or past runs)",
                schedule.show(*closes),
                human(budget)
            ),
            Verdict::TooLate { closes, .. } => format!(
                "the maintenance window closes {}, before a node taking about {} would be back; {next}",
                schedule.show(*closes),
                human(budget)
            ),
            Verdict::Closed { .. } => format!("outside the maintenance window; {next}"),
        }
    }
}

impl fmt::Display for Opening {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} to {}", self.start, self.end)
    }
}

/// `15m`, `1h30m`, `45s`.
pub fn human(d: Duration) -> String {
    let s = d.as_secs();
    let (h, m, sec) = (s / 3600, (s % 3600) / 60, s % 60);
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if m > 0 {
        out.push_str(&format!("{m}m"));
    }
    if sec > 0 || out.is_empty() {
        out.push_str(&format!("{sec}s"));
    }
    out
}

/// `15m`, `1h30m`, `90s`, `900` (seconds).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let err = || format!("`{s}` is not a duration (e.g. 15m, 1h30m, 90s)");
    if let Ok(n) = t.parse::<u64>() {
        return Ok(Duration::from_secs(n));
    }
    let mut total = 0u64;
    let mut num = String::new();
    for c in t.chars() {
        if c.is_ascii_digit() {
            num.push(c);
            continue;
        }
        let n: u64 = num.parse().map_err(|_| err())?;
        num.clear();
        total += n * match c {
            'h' => 3600,
            'm' => 60,
            's' => 1,
            _ => return Err(err()),
        };
    }
    if !num.is_empty() || t.is_empty() {
        return Err(err());
    }
    Ok(Duration::from_secs(total))
}

/// The median time a node was out (cordon to uncordon) in past runs' records, if any.
pub fn median_node_time(records: &[super::journal::RunRecord]) -> Option<Duration> {
    use super::journal::StepName;
    let mut times: Vec<i64> = records
        .iter()
        .flat_map(|r| r.nodes.iter())
        .filter(|n| n.rebooted)
        .filter_map(|n| {
            let start = n.steps.iter().find(|s| s.name == StepName::Cordon)?.started_at;
            let end = n
                .steps
                .iter()
                .rev()
                .find(|s| s.name == StepName::Uncordon)?
                .finished_at?;
            Some((end - start).num_seconds()).filter(|s| *s > 0)
        })
        .collect();
    if times.is_empty() {
        return None;
    }
    times.sort_unstable();
    Some(Duration::from_secs(times[times.len() / 2] as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn daily(tz: &str, specs: &[&str]) -> Schedule {
        let mut s = Schedule::new(tz).unwrap();
        for spec in specs {
            s.add_daily(DailyWindow::parse(spec).unwrap());
        }
        s
    }

    fn aks(json: serde_json::Value) -> Schedule {
        let mut s = Schedule::new("UTC").unwrap();
        s.add_aks(AksWindow::from_json("aksManagedNodeOSUpgradeSchedule", &json).unwrap());
        s
    }

    #[test]
    fn a_weekend_window_in_berlin_opens_and_closes_in_local_time() {
        let s = daily("Europe/Berlin", &["Sat,Sun 01:00-05:00"]);
        // Wed 2 Dec 2026, 12:00 UTC: closed; next is Sat 5 Dec 01:00 CET = 00:00 UTC.
        let now = ts("2026-12-02T12:00:00Z");
        assert_eq!(s.open_at(now), None);
        assert_eq!(s.next_opening(now).unwrap().start, ts("2026-12-05T00:00:00Z"));
        let inside = ts("2026-12-05T03:00:00Z");
        assert_eq!(s.open_at(inside).unwrap().end, ts("2026-12-05T04:00:00Z"));
        // Summer time: 01:00 CEST = 23:00 UTC the day before.
        assert_eq!(
            s.next_opening(ts("2026-07-01T00:00:00Z")).unwrap().start,
            ts("2026-07-03T23:00:00Z")
        );
        assert!(s.show(now).contains("CET"), "{}", s.show(now));
    }

    #[test]
    fn a_range_that_wraps_midnight_ends_the_next_day_and_ranges_of_days_work() {
        let s = daily("UTC", &["Mon-Fri 22:00-02:00"]);
        // Friday 23:00 is inside, and the window runs into Saturday 02:00.
        let fri = ts("2026-12-04T23:00:00Z");
        assert_eq!(s.open_at(fri).unwrap().end, ts("2026-12-05T02:00:00Z"));
        // Saturday 23:00 is not (Saturday is not a start day); next is Monday 22:00.
        let sat = ts("2026-12-05T23:00:00Z");
        assert_eq!(s.open_at(sat), None);
        assert_eq!(s.next_opening(sat).unwrap().start, ts("2026-12-07T22:00:00Z"));
    }

    #[test]
    fn touching_windows_merge_into_one_opening() {
        let s = daily("UTC", &["Sat 20:00-24:00", "Sun 00:00-03:00"]);
        let o = s.open_at(ts("2026-12-05T21:00:00Z")).unwrap();
        assert_eq!(o.end, ts("2026-12-06T03:00:00Z"));
    }

    #[test]
    fn the_verdict_needs_the_whole_node_inside_the_window() {
        let s = daily("UTC", &["01:00-05:00"]);
        let budget = Duration::from_secs(15 * 60);
        assert!(s.verdict(ts("2026-12-02T04:40:00Z"), budget).fits());
        let late = s.verdict(ts("2026-12-02T04:50:00Z"), budget);
        assert!(matches!(late, Verdict::TooLate { .. }));
        assert_eq!(late.next().unwrap().start, ts("2026-12-03T01:00:00Z"));
        let text = late.explain(&s, budget);
        assert!(
            text.contains("closes 2026-12-02T05:00:00Z") && text.contains("2026-12-03T01:00:00Z"),
            "{text}"
        );
        assert!(matches!(
            s.verdict(ts("2026-12-02T06:00:00Z"), budget),
            Verdict::Closed { .. }
        ));
    }

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
        assert_eq!(
            Schedule::new("Mars/Olympus").unwrap_err(),
            WindowError::TimeZone("Mars/Olympus".into())
        );
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
    }

    #[test]
    fn durations_read_as_people_write_them() {
        assert_eq!(parse_duration("15m").unwrap(), Duration::from_secs(900));
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("90").unwrap(), Duration::from_secs(90));
        assert!(parse_duration("15x").is_err() && parse_duration("m").is_err() && parse_duration("").is_err());
        assert_eq!(human(Duration::from_secs(5400)), "1h30m");
    }
}
