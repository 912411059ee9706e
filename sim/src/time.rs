//! Time as the emulated services write it: RFC 3339 timestamps in UTC (`Z`), at the
//! precision each wire format uses, on jiff.

use jiff::{SignedDuration, Timestamp};

/// `2025-01-12T08:30:00Z`: Kubernetes `Time` (metadata timestamps, conditions).
pub fn rfc3339(t: Timestamp) -> String {
    format!("{t:.0}")
}

/// `2025-01-12T08:30:00.123Z`: ARM's timestamps and the event log's.
pub fn rfc3339_millis(t: Timestamp) -> String {
    format!("{t:.3}")
}

/// `2025-01-12T08:30:00.123456Z`: Kubernetes `MicroTime` (leases, events.k8s.io).
pub fn rfc3339_micros(t: Timestamp) -> String {
    format!("{t:.6}")
}

/// `2025-01-12T08:30:00.123456789Z`: the kubelet's log line timestamps.
pub fn rfc3339_nanos(t: Timestamp) -> String {
    format!("{t:.9}")
}

/// Fractional seconds in groups of three digits, as many as the value needs (none, 3, 6
/// or 9), as Go's `time.RFC3339Nano` would print them padded to a group.
pub fn rfc3339_auto(t: Timestamp) -> String {
    let nanos = t.subsec_nanosecond();
    let digits = if nanos == 0 {
        0
    } else if nanos % 1_000_000 == 0 {
        3
    } else if nanos % 1_000 == 0 {
        6
    } else {
        9
    };
    format!("{t:.digits$}")
}

pub fn now_rfc3339() -> String {
    rfc3339(Timestamp::now())
}

pub fn now_rfc3339_micros() -> String {
    rfc3339_micros(Timestamp::now())
}

pub fn now_rfc3339_millis() -> String {
    rfc3339_millis(Timestamp::now())
}

/// A scenario's or a fault's seconds as a `Duration`: negative, NaN and infinite are 0.
pub fn secs(s: f64) -> std::time::Duration {
    std::time::Duration::from_secs_f64(if s.is_finite() { s.max(0.0) } else { 0.0 })
}

/// An RFC 3339 timestamp with any offset.
pub fn parse(ts: &str) -> Option<Timestamp> {
    ts.parse().ok()
}

/// `n` whole days before now (the scenario's cluster age).
pub fn days_ago(n: u32) -> Timestamp {
    Timestamp::now() - SignedDuration::from_hours(24 * i64::from(n))
}

/// Now, in whole seconds since the epoch (token expiries).
pub fn unix_now() -> i64 {
    Timestamp::now().as_second()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_wire_format_keeps_its_precision() {
        let t = Timestamp::new(1_736_670_600, 120_000_000).unwrap();
        assert_eq!(rfc3339(t), "2025-01-12T08:30:00Z");
        assert_eq!(rfc3339_millis(t), "2025-01-12T08:30:00.120Z");
        assert_eq!(rfc3339_micros(t), "2025-01-12T08:30:00.120000Z");
        assert_eq!(rfc3339_auto(t), "2025-01-12T08:30:00.120Z");
        let whole = Timestamp::from_second(1_736_670_600).unwrap();
        assert_eq!(rfc3339_millis(whole), "2025-01-12T08:30:00.000Z");
        assert_eq!(rfc3339_auto(whole), "2025-01-12T08:30:00Z");
        let fine = Timestamp::new(1_736_670_600, 123_456_789).unwrap();
        assert_eq!(rfc3339(fine), "2025-01-12T08:30:00Z", "truncated, never rounded up");
        assert_eq!(rfc3339_auto(fine), "2025-01-12T08:30:00.123456789Z");
    }

    #[test]
    fn timestamps_with_an_offset_parse() {
        let t = parse("2025-01-12T09:30:00+01:00").unwrap();
        assert_eq!(rfc3339(t), "2025-01-12T08:30:00Z");
        assert!(parse("yesterday").is_none());
    }
}
