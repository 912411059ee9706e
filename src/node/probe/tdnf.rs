//! Azure Linux's sections: `tdnf -q check-update` (the pending updates), `rpm -q` (their
//! installed versions) and `needs-restarting -r` (whether a reboot is needed).

use super::kernel::version_key;
use super::sections::split_rc;
use super::{PendingUpdate, ProbeParseError};
use std::collections::BTreeMap;

/// `tdnf -q check-update`: one line per update, `name.arch  version-release  repo`. Exit 0
/// (or 100 with `dnf_check_update_compat`) is success; anything else (no network, a broken
/// repository, the lock) is an error, never "nothing pending".
pub fn parse_tdnf_check_update(text: &str) -> Result<Vec<PendingUpdate>, ProbeParseError> {
    let (lines, rc) = split_rc(text);
    match rc {
        Some(0 | 100) => {}
        other => {
            let tail: Vec<&str> = lines.iter().rev().take(3).rev().copied().collect();
            return Err(ProbeParseError(format!(
                "`tdnf check-update` failed ({}): {}",
                other.map_or("no exit code".to_string(), |c| format!("exit {c}")),
                tail.join(" / ")
            )));
        }
    }
    let mut out = Vec::new();
    for line in lines {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() != 3 {
            continue;
        }
        let Some((name, arch)) = f[0].rsplit_once('.') else {
            continue;
        };
        if name.is_empty() || !matches!(arch, "x86_64" | "aarch64" | "noarch" | "i686") {
            continue;
        }
        out.push(PendingUpdate {
            name: name.to_string(),
            from: String::new(),
            to: f[1].to_string(),
            pockets: vec![f[2].to_string()],
            arch: arch.to_string(),
            security: false,
        });
    }
    Ok(out)
}

/// The installed versions (`rpm -q --qf '%{NAME} %{VERSION}-%{RELEASE}\n'`) as the updates'
/// `from`: the newest installed one where several are (kernels).
pub(super) fn fill_installed_versions(pending: &mut [PendingUpdate], rpm: &str) {
    let mut newest: BTreeMap<&str, &str> = BTreeMap::new();
    for line in rpm.lines() {
        let mut f = line.split_whitespace();
        let (Some(name), Some(version), None) = (f.next(), f.next(), f.next()) else {
            continue;
        };
        let e = newest.entry(name).or_insert(version);
        if version_key(version) > version_key(e) {
            *e = version;
        }
    }
    for p in pending.iter_mut() {
        if let Some(v) = newest.get(p.name.as_str()) {
            p.from = v.to_string();
        }
    }
}

/// `needs-restarting -r`: exit 1 = a reboot is required, 0 = not; the `  * name` lines name
/// what was updated since boot (kernel, glibc, systemd...).
pub fn parse_needs_restarting(text: &str) -> Result<(bool, Vec<String>), ProbeParseError> {
    let (lines, rc) = split_rc(text);
    let required = match rc {
        Some(0) => false,
        Some(1) => true,
        other => {
            return Err(ProbeParseError(format!(
                "`needs-restarting -r` failed ({}): {}",
                other.map_or("no exit code".to_string(), |c| format!("exit {c}")),
                lines.join(" / ")
            )))
        }
    };
    let pkgs = lines
        .iter()
        .filter_map(|l| l.trim().strip_prefix("* "))
        .map(|p| p.trim().to_string())
        .filter(|p| !p.is_empty())
        .collect();
    Ok((required, pkgs))
}
