//! The tdnf commands aks-patch runs on Azure Linux nodes, and the parser of what
//! `tdnf update` prints.

use super::upgrade::UpgradedPackage;

/// The systemd unit dnf-automatic installs updates from on Azure Linux nodes of the
/// `Unmanaged` channel (about 06:00 UTC); while it runs it holds the rpm transaction lock.
pub const DNF_AUTOMATIC_UNIT: &str = "dnf-automatic-install.service";

/// Why `--upgrade-mode security` cannot be honoured on Azure Linux.
pub const TDNF_NO_SECURITY: &str = "Azure Linux (tdnf) has no reliable security classification of updates \
     (Microsoft's own update tooling installs all updates when asked for security ones)";

/// Wait for dnf-automatic, then `tdnf -y update --refresh`.
pub(super) fn tdnf_update(lock_timeout_secs: u64) -> String {
    format!(
        "i=0\n\
         while s=$(systemctl show -p ActiveState --value {DNF_AUTOMATIC_UNIT} 2>/dev/null) && \
         {{ [ \"$s\" = activating ] || [ \"$s\" = active ] || [ \"$s\" = deactivating ]; }}; do\n\
         [ $i -eq 0 ] && echo 'aks-patch: {DNF_AUTOMATIC_UNIT} is installing updates: waiting for it to finish (up to {lock_timeout_secs}s)'\n\
         if [ $i -ge {lock_timeout_secs} ]; then echo 'aks-patch: {DNF_AUTOMATIC_UNIT} still runs after {lock_timeout_secs}s: not upgrading'; exit 75; fi\n\
         sleep 1; i=$((i+1))\n\
         done\n\
         sudo tdnf -y update --refresh"
    )
}

/// The packages of tdnf's `Upgrading:` / `Installing:` tables (`name arch version repo size`),
/// each once, in order, when the transaction completed.
pub fn parse_tdnf_update_output(log: &str) -> Vec<UpgradedPackage> {
    let mut out: Vec<UpgradedPackage> = Vec::new();
    let mut in_table = false;
    for line in log.lines() {
        let t = line.trim();
        if matches!(t, "Upgrading:" | "Installing:" | "Reinstalling:") {
            in_table = true;
            continue;
        }
        if t.is_empty() || t.ends_with(':') {
            in_table = false;
            continue;
        }
        if !in_table {
            continue;
        }
        let f: Vec<&str> = t.split_whitespace().collect();
        if f.len() < 4 || !matches!(f[1], "x86_64" | "aarch64" | "noarch" | "i686") {
            continue;
        }
        let p = UpgradedPackage {
            name: f[0].to_string(),
            version: f[2].to_string(),
        };
        if !out.contains(&p) {
            out.push(p);
        }
    }
    out
}
