//! The `refresh` section: the exit code and last lines of `apt-get update` or
//! `tdnf makecache`.

use crate::node::PackageManager;

/// Whether the refresh succeeded, and if not, its exit code and last lines.
pub(super) fn parse_refresh(text: &str, pm: PackageManager) -> (bool, Option<String>) {
    let what = match pm {
        PackageManager::Tdnf => "tdnf makecache",
        _ => "apt-get update",
    };
    let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
    let rc = lines
        .next()
        .and_then(|l| l.strip_prefix("rc="))
        .and_then(|v| v.parse::<i32>().ok());
    let tail: Vec<&str> = lines.collect();
    match rc {
        Some(0) => (true, None),
        Some(rc) => (false, Some(format!("{what} failed (exit {rc}): {}", tail.join(" / ")))),
        None => (
            false,
            Some(format!(
                "{what} did not run: {} is not installed",
                what.split(' ').next().unwrap_or(what)
            )),
        ),
    }
}
