//! Every window of a run, merged: the window open at an instant, the next opening, and
//! whether a disruption of a given length may start now.

use super::{AksWindow, DailyWindow, WindowError};
use crate::duration::human;
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp, Zoned};
use std::fmt;
use std::time::Duration;

/// How far ahead the next opening is looked for (AKS allows monthly intervals up to 6).
const HORIZON_DAYS: i64 = 800;

/// One opening: from `start` (inclusive) to `end` (exclusive).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Opening {
    pub start: Timestamp,
    pub end: Timestamp,
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
    fn an_unknown_time_zone_is_refused_by_name() {
        assert_eq!(
            Schedule::new("Mars/Olympus").unwrap_err(),
            WindowError::TimeZone("Mars/Olympus".into())
        );
    }
}
