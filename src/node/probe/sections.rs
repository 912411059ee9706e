//! The probe output cut into its marked sections, and the small readers every section uses.

use super::script::MARK;
use std::collections::BTreeMap;

/// The first non-empty line, trimmed.
pub(super) fn first_line(s: &str) -> Option<String> {
    s.lines().map(str::trim).find(|l| !l.is_empty()).map(str::to_string)
}

/// Section name → its text (lines after its marker, up to the next marker).
pub(super) fn split_sections(output: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut current: Option<String> = None;
    let mut buf = String::new();
    for line in output.lines() {
        let l = line.trim_end_matches('\r');
        if let Some(name) = l.trim().strip_prefix(MARK) {
            if let Some(c) = current.take() {
                out.insert(c, std::mem::take(&mut buf));
            }
            current = Some(name.trim().to_string());
            buf.clear();
        } else if current.is_some() {
            buf.push_str(l);
            buf.push('\n');
        }
    }
    if let Some(c) = current {
        out.insert(c, buf);
    }
    out
}

/// The text of a section that ends with the command's `rc=N` line: (text, exit code).
pub(super) fn split_rc(text: &str) -> (Vec<&str>, Option<i32>) {
    let mut lines: Vec<&str> = text.lines().map(str::trim_end).collect();
    while lines.last().is_some_and(|l| l.trim().is_empty()) {
        lines.pop();
    }
    let rc = lines
        .last()
        .and_then(|l| l.trim().strip_prefix("rc="))
        .and_then(|v| v.parse::<i32>().ok());
    if rc.is_some() {
        lines.pop();
    }
    (lines, rc)
}
