//! Cron schedules as the CronJob controller reads them (robfig/cron's standard parser):
//! five fields (minute, hour, day of month, month, day of week) of `*`, numbers, ranges
//! `a-b`, steps `*/n` and `a-b/n`, lists, month and day names, and the descriptors
//! `@yearly`, `@annually`, `@monthly`, `@weekly`, `@daily`, `@midnight`, `@hourly`. Times
//! are UTC (`spec.timeZone` is not modelled).

use jiff::tz::Offset;
use jiff::{SignedDuration, Timestamp};

#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    minutes: Vec<bool>,
    hours: Vec<bool>,
    days: Vec<bool>,
    months: Vec<bool>,
    weekdays: Vec<bool>,
    /// Both day fields restricted: either matches (cron's rule).
    day_or: bool,
}

const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];
const DAYS: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

fn field(text: &str, min: u32, max: u32, names: &[&str], name_base: u32) -> Result<(Vec<bool>, bool), String> {
    let mut set = vec![false; (max + 1) as usize];
    let value = |s: &str| -> Result<u32, String> {
        if let Some(i) = names.iter().position(|n| n.eq_ignore_ascii_case(s)) {
            return Ok(i as u32 + name_base);
        }
        s.parse::<u32>().map_err(|_| format!("invalid value `{s}`"))
    };
    let mut star = false;
    for part in text.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => (r, s.parse::<u32>().map_err(|_| format!("invalid step `{s}`"))?),
            None => (part, 1),
        };
        if step == 0 {
            return Err(format!("step of `{part}` must be positive"));
        }
        let (lo, hi) = if range == "*" || range == "?" {
            star = step == 1;
            (min, max)
        } else if let Some((a, b)) = range.split_once('-') {
            (value(a)?, value(b)?)
        } else {
            let v = value(range)?;
            (v, if step > 1 { max } else { v })
        };
        if lo < min || hi > max || lo > hi {
            return Err(format!("`{part}` is out of range {min}-{max}"));
        }
        let mut v = lo;
        while v <= hi {
            set[v as usize] = true;
            v += step;
        }
    }
    Ok((set, star))
}

impl Schedule {
    pub fn parse(spec: &str) -> Result<Schedule, String> {
        let expanded = match spec.trim() {
            "@yearly" | "@annually" => "0 0 1 1 *",
            "@monthly" => "0 0 1 * *",
            "@weekly" => "0 0 * * 0",
            "@daily" | "@midnight" => "0 0 * * *",
            "@hourly" => "0 * * * *",
            s => s,
        };
        let f: Vec<&str> = expanded.split_whitespace().collect();
        if f.len() != 5 {
            return Err(format!("expected exactly 5 fields, found {}: {spec}", f.len()));
        }
        let (minutes, _) = field(f[0], 0, 59, &[], 0)?;
        let (hours, _) = field(f[1], 0, 23, &[], 0)?;
        let (days, dom_star) = field(f[2], 1, 31, &[], 0)?;
        let (months, _) = field(f[3], 1, 12, &MONTHS, 1)?;
        let (mut weekdays, dow_star) = field(f[4], 0, 7, &DAYS, 0)?;
        if weekdays[7] {
            weekdays[0] = true;
        }
        Ok(Schedule {
            minutes,
            hours,
            days,
            months,
            weekdays,
            day_or: !dom_star && !dow_star,
        })
    }

    /// Does the schedule fire in this minute?
    pub fn matches(&self, t: Timestamp) -> bool {
        let t = Offset::UTC.to_datetime(t);
        let dom = self.days[t.day() as usize];
        let dow = self.weekdays[t.weekday().to_sunday_zero_offset() as usize];
        let day = if self.day_or { dom || dow } else { dom && dow };
        self.minutes[t.minute() as usize] && self.hours[t.hour() as usize] && self.months[t.month() as usize] && day
    }

    /// The latest minute in `(after, until]` the schedule fires, looking back at most a day.
    pub fn last_between(&self, after: Timestamp, until: Timestamp) -> Option<Timestamp> {
        let mut t = Timestamp::from_second(until.as_second().div_euclid(60) * 60).ok()?;
        for _ in 0..1440 {
            if t <= after {
                return None;
            }
            if self.matches(t) {
                return Some(t);
            }
            t -= SignedDuration::from_mins(1);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(y: i16, mo: i8, d: i8, h: i8, mi: i8) -> Timestamp {
        Offset::UTC
            .to_timestamp(jiff::civil::datetime(y, mo, d, h, mi, 0, 0))
            .unwrap()
    }

    #[test]
    fn standard_fields() {
        let s = Schedule::parse("*/15 2-4 * * mon-fri").unwrap();
        assert!(s.matches(at(2026, 12, 1, 3, 45))); // a Tuesday
        assert!(!s.matches(at(2026, 12, 1, 3, 44)));
        assert!(!s.matches(at(2026, 12, 6, 3, 45))); // a Sunday
        let s = Schedule::parse("0 3 1,15 * *").unwrap();
        assert!(s.matches(at(2026, 12, 15, 3, 0)));
        assert!(!s.matches(at(2026, 12, 16, 3, 0)));
        // Both day fields restricted: either one.
        let s = Schedule::parse("0 0 13 * 5").unwrap();
        assert!(s.matches(at(2026, 12, 13, 0, 0)));
        assert!(s.matches(at(2026, 12, 4, 0, 0))); // a Friday
        assert!(Schedule::parse("@daily").unwrap().matches(at(2026, 1, 2, 0, 0)));
        assert!(Schedule::parse("0 0 * * 7").unwrap().matches(at(2026, 12, 6, 0, 0)));
        for bad in ["* * * *", "60 * * * *", "*/0 * * * *", "a * * * *", "5-1 * * * *"] {
            assert!(Schedule::parse(bad).is_err(), "{bad}");
        }
        let s = Schedule::parse("30 * * * *").unwrap();
        assert_eq!(
            s.last_between(at(2026, 12, 1, 0, 0), at(2026, 12, 1, 2, 10)),
            Some(at(2026, 12, 1, 1, 30))
        );
        assert_eq!(s.last_between(at(2026, 12, 1, 1, 30), at(2026, 12, 1, 2, 10)), None);
    }
}
