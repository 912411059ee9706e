//! Conversions between k8s-openapi's jiff timestamps and chrono.

use chrono::{DateTime, Utc};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, Time};
use k8s_openapi::jiff::Timestamp;

pub(crate) fn from_jiff(ts: &Timestamp) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(ts.as_second(), ts.subsec_nanosecond().max(0) as u32)
}

pub(crate) fn to_jiff(t: DateTime<Utc>) -> Timestamp {
    Timestamp::new(t.timestamp(), t.timestamp_subsec_nanos() as i32).unwrap_or(Timestamp::UNIX_EPOCH)
}

pub(crate) fn time(t: &Time) -> Option<DateTime<Utc>> {
    from_jiff(&t.0)
}

pub(crate) fn micro_time(t: &MicroTime) -> Option<DateTime<Utc>> {
    from_jiff(&t.0)
}

pub(crate) fn now_micro() -> MicroTime {
    // MicroTime carries microseconds on the wire: drop the rest so that what we write is
    // what we read back.
    let now = Utc::now();
    let micros = now.timestamp_subsec_micros();
    let t = DateTime::from_timestamp(now.timestamp(), micros * 1000).unwrap_or(now);
    MicroTime(to_jiff(t))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let t = DateTime::parse_from_rfc3339("2025-03-05T10:11:12.123456Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(from_jiff(&to_jiff(t)), Some(t));
    }
}
