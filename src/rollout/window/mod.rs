//! Maintenance windows: when a node may be disrupted.
//!
//! Two sources, one [`Schedule`]: `--window 'Sat,Sun 01:00-05:00'` (days and a daily time range
//! that may wrap midnight, in `--time-zone`; [`DailyWindow`], `daily.rs`), and an AKS planned-maintenance
//! configuration (`maintenanceConfigurations/aksManagedNodeOSUpgradeSchedule`, else `default`)
//! with its `daily`, `weekly`, `absoluteMonthly` and `relativeMonthly` schedules,
//! `durationHours`, `startTime`, `utcOffset`, `startDate` and `notAllowedDates` ([`AksWindow`], `aks.rs`).
//!
//! A schedule answers two questions for an instant: the window open now (its end, with
//! overlapping or touching occurrences merged), and when the next one opens ([`Schedule`], `schedule.rs`).
//! The engine asks them at its safe points through a [`Clock`], so its unit tests run on
//! paused time. How long a node is out comes from past runs' records ([`median_node_time`], `stats.rs`).

mod aks;
mod clock;
mod daily;
mod schedule;
mod stats;

pub use aks::AksWindow;
#[cfg(test)]
pub use clock::PausedClock;
pub use clock::{Clock, SystemClock};
pub use daily::{DailyWindow, FieldError};
pub use schedule::{Opening, Schedule, Verdict};
pub use stats::median_node_time;

/// A bad window: what is wrong, in the words of the flag or field that said it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WindowError {
    #[error("invalid --window `{spec}`: {why}")]
    Spec { spec: String, why: String },
    #[error("invalid --window `{spec}`: {source}")]
    SpecField {
        spec: String,
        #[source]
        source: FieldError,
    },
    #[error("unknown time zone `{0}` (--time-zone takes IANA names such as Europe/Berlin or UTC)")]
    TimeZone(String),
    #[error("the AKS maintenance configuration `{name}` cannot be read: {why}")]
    Aks { name: String, why: String },
    #[error("the AKS maintenance configuration `{name}` cannot be read: {source}")]
    AksField {
        name: String,
        #[source]
        source: FieldError,
    },
    #[error("the AKS maintenance configuration `{name}` cannot be read: startTime: {source}")]
    AksStartTime {
        name: String,
        #[source]
        source: FieldError,
    },
}
