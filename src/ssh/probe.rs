//! The read-only probe of a node: one shell script that prints marked sections (kernel,
//! OS, boot, pending upgrades, reboot marker), and a pure parser of its output.
//!
//! Without `refresh` the script changes nothing on the node: `apt list --upgradable`
//! reads the package lists as they are. With `refresh` it runs `apt-get update` first.
//!
//! Azure Linux nodes (tdnf) answer other sections: `tdnf -q check-update` for the pending
//! updates and `needs-restarting -r` for the reboot need (exit 1: required), which the daily
//! `check-restart` timer only turns into `/var/run/reboot-required` at 08:00 UTC. tdnf that
//! refuses non-root users ("You have to be root") is asked again through `sudo -n` with `-C`
//! (from its cache only, as apt's lists are read as they are).

use serde::Serialize;
use std::collections::BTreeMap;

const MARK: &str = "@@aks-patch:";

/// The probe script. Each section starts with a line `@@aks-patch:<name>`; the last one
/// is `@@aks-patch:end`, so that a cut-off output is recognised.
pub fn probe_script(refresh: bool, lock_timeout_secs: u64) -> String {
    let mut s = String::from(
        "LC_ALL=C; export LC_ALL\n\
         echo '@@aks-patch:kernel'; uname -r\n\
         echo '@@aks-patch:os-release'; cat /etc/os-release 2>/dev/null || cat /usr/lib/os-release 2>/dev/null\n\
         echo '@@aks-patch:boot-id'; cat /proc/sys/kernel/random/boot_id 2>/dev/null\n\
         echo '@@aks-patch:btime'; grep '^btime ' /proc/stat 2>/dev/null\n\
         echo '@@aks-patch:uptime'; cat /proc/uptime 2>/dev/null\n\
         echo '@@aks-patch:now'; date +%s\n\
         echo '@@aks-patch:package-managers'\n\
         for pm in apt-get tdnf dnf; do command -v $pm >/dev/null 2>&1 && echo $pm; done\n",
    );
    if refresh {
        s.push_str(&format!(
            "echo '@@aks-patch:refresh'\n\
             if command -v apt-get >/dev/null 2>&1; then \
             out=$(sudo DEBIAN_FRONTEND=noninteractive apt-get -q -o DPkg::Lock::Timeout={lock_timeout_secs} update 2>&1 </dev/null); \
             echo \"rc=$?\"; printf '%s\\n' \"$out\" | tail -n 5; \
             elif command -v tdnf >/dev/null 2>&1; then \
             out=$(sudo tdnf -q --refresh makecache 2>&1 </dev/null); \
             echo \"rc=$?\"; printf '%s\\n' \"$out\" | tail -n 5; fi\n"
        ));
    }
    s.push_str(
        "echo '@@aks-patch:upgradable'\n\
         if command -v apt >/dev/null 2>&1; then apt list --upgradable 2>/dev/null; fi\n\
         echo '@@aks-patch:reboot-required'\n\
         if [ -e /var/run/reboot-required ]; then echo yes; else echo no; fi\n\
         echo '@@aks-patch:reboot-required-pkgs'; cat /var/run/reboot-required.pkgs 2>/dev/null\n\
         if command -v tdnf >/dev/null 2>&1; then \
         echo '@@aks-patch:tdnf-check-update'; out=$(tdnf -q check-update 2>&1 </dev/null); rc=$?; \
         case \"$out\" in *'have to be root'*) out=$(sudo -n tdnf -q -C check-update 2>&1 </dev/null); rc=$?;; esac; \
         printf '%s\\n' \"$out\"; echo \"rc=$rc\"; \
         names=$(printf '%s\\n' \"$out\" | awk 'NF == 3 && $1 ~ /[.]/ { sub(/[.][^.]*$/, \"\", $1); print $1 }' | sort -u); \
         if [ -n \"$names\" ] && command -v rpm >/dev/null 2>&1; then \
         echo '@@aks-patch:rpm-installed'; rpm -q --qf '%{NAME} %{VERSION}-%{RELEASE}\\n' $names 2>/dev/null </dev/null; fi; fi\n\
         if command -v needs-restarting >/dev/null 2>&1; then \
         echo '@@aks-patch:needs-restarting'; needs-restarting -r 2>&1 </dev/null; echo \"rc=$?\"; fi\n\
         echo '@@aks-patch:end'\n",
    );
    s
}

/// How the node installs packages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PackageManager {
    /// Ubuntu (and Debian): apt. Supported.
    Apt,
    /// Azure Linux 3.0 and 2.0 (CBL-Mariner): tdnf.
    Tdnf,
    Unknown,
}

/// One upgrade `apt list --upgradable` shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PendingUpdate {
    pub name: String,
    /// Installed version (empty if apt did not say).
    pub from: String,
    /// Candidate version.
    pub to: String,
    /// Archive pockets the candidate comes from, e.g. `jammy-updates`, `jammy-security`.
    pub pockets: Vec<String>,
    pub arch: String,
    /// Comes from a `-security` pocket.
    pub security: bool,
}

/// What the probe found on a node.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Probe {
    /// `uname -r`.
    pub running_kernel: String,
    /// `ID` of /etc/os-release (`ubuntu`, `azurelinux`, `mariner`, …; empty if absent).
    pub os_id: String,
    /// `VERSION_ID` of /etc/os-release.
    pub os_version: String,
    /// `PRETTY_NAME` of /etc/os-release.
    pub os_pretty_name: Option<String>,
    /// /proc/sys/kernel/random/boot_id (what the Node's `bootID` shows).
    pub boot_id: Option<String>,
    /// Boot time, unix seconds (`btime` of /proc/stat).
    pub booted_at: Option<i64>,
    pub uptime_seconds: Option<u64>,
    pub package_manager: PackageManager,
    pub pending: Vec<PendingUpdate>,
    /// /var/run/reboot-required exists.
    pub reboot_required: bool,
    /// /var/run/reboot-required.pkgs, each once, in order.
    pub reboot_packages: Vec<String>,
    /// `apt-get update` ran first (`--refresh`) and succeeded.
    pub refreshed: bool,
    /// `apt-get update` was asked for and failed: its exit code and last lines.
    pub refresh_error: Option<String>,
    /// Why aks-patch cannot patch this node (an OS without apt-get or tdnf), if it cannot.
    pub unsupported: Option<String>,
    /// The OS is out of support (Azure Linux 2.0): the fact and what to do. Patched only when
    /// asked explicitly (`apply --allow-azure-linux-2`).
    pub end_of_support: Option<String>,
    /// `needs-restarting -r` said a reboot is required (Azure Linux), whether or not the
    /// daily timer has written the marker yet.
    pub needs_restarting: bool,
}

/// The probe output could not be understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot understand the node's probe output: {0}")]
pub struct ProbeParseError(pub String);

impl Probe {
    /// Parse the output of [`probe_script`].
    pub fn parse(output: &str) -> Result<Probe, ProbeParseError> {
        let sections = split_sections(output);
        if !sections.contains_key("end") {
            return Err(ProbeParseError(
                "it stops before its end marker (the connection dropped, or the login shell is not a POSIX sh)".into(),
            ));
        }
        let get = |name: &str| sections.get(name).map(String::as_str).unwrap_or("");
        let running_kernel = get("kernel")
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty())
            .unwrap_or("");
        if running_kernel.is_empty() {
            return Err(ProbeParseError("`uname -r` printed nothing".into()));
        }
        let os = parse_os_release(get("os-release"));
        let os_id = os.get("ID").cloned().unwrap_or_default().to_lowercase();
        let os_version = os.get("VERSION_ID").cloned().unwrap_or_default();
        let boot_id = first_line(get("boot-id"));
        let booted_at = get("btime")
            .lines()
            .find_map(|l| l.trim().strip_prefix("btime "))
            .and_then(|v| v.trim().parse::<i64>().ok());
        let now = first_line(get("now")).and_then(|v| v.parse::<i64>().ok());
        let uptime_seconds = match (booted_at, now) {
            (Some(b), Some(n)) if n >= b => Some((n - b) as u64),
            _ => first_line(get("uptime"))
                .and_then(|l| l.split_whitespace().next().map(str::to_string))
                .and_then(|v| v.parse::<f64>().ok())
                .filter(|v| v.is_finite() && *v >= 0.0)
                .map(|v| v as u64),
        };
        let managers: Vec<&str> = get("package-managers").lines().map(str::trim).collect();
        let (package_manager, unsupported) = judge_support(&os_id, &os_version, &managers);
        let end_of_support = (os_id == "mariner").then(|| {
            format!(
                "Azure Linux 2.0 (CBL-Mariner {os_version}) is out of support since 30 Nov 2025 and gets no more updates: \
                 migrate the pool to Azure Linux 3 (osSku AzureLinux3)"
            )
        });

        let (refreshed, refresh_error) = match sections.get("refresh") {
            None => (false, None),
            Some(text) => parse_refresh(text, package_manager),
        };

        let mut pending = parse_upgradable(get("upgradable"));
        if package_manager == PackageManager::Tdnf {
            match sections.get("tdnf-check-update") {
                Some(text) => {
                    pending = parse_tdnf_check_update(text)?;
                    fill_installed_versions(&mut pending, get("rpm-installed"));
                }
                None => {
                    return Err(ProbeParseError(
                        "the node is Azure Linux but has no tdnf to list its pending updates".into(),
                    ))
                }
            }
        }
        let mut reboot_required = first_line(get("reboot-required")).as_deref() == Some("yes");
        let mut reboot_packages: Vec<String> = Vec::new();
        for l in get("reboot-required-pkgs")
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
        {
            if !reboot_packages.iter().any(|p| p == l) {
                reboot_packages.push(l.to_string());
            }
        }
        let mut needs_restarting = false;
        if let Some(text) = sections.get("needs-restarting") {
            let (required, pkgs) = parse_needs_restarting(text)?;
            needs_restarting = required;
            reboot_required |= required;
            for p in pkgs {
                if !reboot_packages.contains(&p) {
                    reboot_packages.push(p);
                }
            }
        }
        Ok(Probe {
            running_kernel: running_kernel.to_string(),
            os_id,
            os_version,
            os_pretty_name: os.get("PRETTY_NAME").cloned(),
            boot_id,
            booted_at,
            uptime_seconds,
            package_manager,
            pending,
            reboot_required,
            reboot_packages,
            refreshed,
            refresh_error,
            unsupported,
            end_of_support,
            needs_restarting,
        })
    }

    /// The OS classifies updates as security or not (Ubuntu's pockets). Azure Linux does not
    /// reliably (Microsoft's own patch extension installs everything for security requests).
    pub fn classifies_security(&self) -> bool {
        self.package_manager != PackageManager::Tdnf
    }

    pub fn pending_count(&self) -> usize {
        self.pending.len()
    }

    pub fn security_count(&self) -> usize {
        self.pending.iter().filter(|p| p.security).count()
    }

    /// Names of the pending upgrades from a `-security` pocket (for `--upgrade-mode security`).
    pub fn security_packages(&self) -> Vec<String> {
        self.pending
            .iter()
            .filter(|p| p.security)
            .map(|p| p.name.clone())
            .collect()
    }

    pub fn is_supported(&self) -> bool {
        self.unsupported.is_none()
    }

    /// The newest kernel that is not running yet: from a pending `linux-image-<version>`
    /// or kernel meta package (`linux-azure 5.15.0.1073.71` → `5.15.0-1073-azure`), or a
    /// `linux-image-<version>` installed and named in the reboot marker.
    pub fn pending_kernel(&self) -> Option<String> {
        let mut kernels: Vec<String> = Vec::new();
        for p in &self.pending {
            if self.package_manager == PackageManager::Tdnf {
                // Azure Linux: the `kernel` package's version-release is the kernel release.
                if p.name == "kernel" {
                    kernels.push(p.to.clone());
                }
            } else if let Some(k) = kernel_of_package(&p.name, &p.to) {
                kernels.push(k);
            }
        }
        for name in &self.reboot_packages {
            if let Some(k) = name
                .strip_prefix("linux-image-")
                .filter(|k| k.starts_with(|c: char| c.is_ascii_digit()))
            {
                kernels.push(k.to_string());
            }
        }
        kernels.retain(|k| *k != self.running_kernel);
        kernels.into_iter().max_by(|a, b| version_key(a).cmp(&version_key(b)))
    }
}

fn first_line(s: &str) -> Option<String> {
    s.lines().map(str::trim).find(|l| !l.is_empty()).map(str::to_string)
}

/// Section name → its text (lines after its marker, up to the next marker).
fn split_sections(output: &str) -> BTreeMap<String, String> {
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

fn parse_os_release(text: &str) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    for l in text.lines() {
        let l = l.trim();
        if l.starts_with('#') {
            continue;
        }
        if let Some((k, v)) = l.split_once('=') {
            let v = v.trim();
            let v = v
                .strip_prefix('"')
                .and_then(|x| x.strip_suffix('"'))
                .or_else(|| v.strip_prefix('\'').and_then(|x| x.strip_suffix('\'')))
                .unwrap_or(v);
            m.insert(k.trim().to_string(), v.to_string());
        }
    }
    m
}

fn judge_support(os_id: &str, os_version: &str, managers: &[&str]) -> (PackageManager, Option<String>) {
    let has = |m: &str| managers.contains(&m);
    match os_id {
        "azurelinux" | "mariner" if has("tdnf") => (PackageManager::Tdnf, None),
        "azurelinux" | "mariner" => (
            PackageManager::Tdnf,
            Some(format!(
                "the node is Azure Linux ({os_id} {os_version}) but has no tdnf: aks-patch cannot patch it"
            )),
        ),
        _ if has("apt-get") => (PackageManager::Apt, None),
        _ if has("tdnf") || has("dnf") => (
            PackageManager::Tdnf,
            Some(format!(
                "the node ({}) has no apt-get but tdnf/dnf; aks-patch patches Ubuntu (apt) and Azure Linux (tdnf) nodes only",
                if os_id.is_empty() { "unknown OS" } else { os_id }
            )),
        ),
        _ => (
            PackageManager::Unknown,
            Some(format!(
                "the node ({}) has no apt-get: aks-patch cannot patch it",
                if os_id.is_empty() { "unknown OS" } else { os_id }
            )),
        ),
    }
}

fn parse_refresh(text: &str, pm: PackageManager) -> (bool, Option<String>) {
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

/// Lines of `apt list --upgradable`, e.g.
/// `openssl/jammy-updates,jammy-security 3.0.2-0ubuntu1.19 amd64 [upgradable from: 3.0.2-0ubuntu1.18]`.
pub fn parse_upgradable(text: &str) -> Vec<PendingUpdate> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        let mut parts = line.split_whitespace();
        let (Some(head), Some(to)) = (parts.next(), parts.next()) else {
            continue;
        };
        let Some((name, pockets)) = head.split_once('/') else {
            continue;
        };
        if name.is_empty() || !name.starts_with(|c: char| c.is_ascii_alphanumeric()) {
            continue;
        }
        let arch = parts.next().unwrap_or("").to_string();
        let from = line
            .split_once("[upgradable from: ")
            .and_then(|(_, r)| r.split_once(']'))
            .map(|(v, _)| v.trim().to_string())
            .unwrap_or_default();
        let pockets: Vec<String> = pockets
            .split(',')
            .filter(|p| !p.is_empty())
            .map(str::to_string)
            .collect();
        let security = pockets.iter().any(|p| p.ends_with("-security"));
        out.push(PendingUpdate {
            name: name.to_string(),
            from,
            to: to.to_string(),
            pockets,
            arch,
            security,
        });
    }
    out
}

/// The text of a section that ends with the command's `rc=N` line: (text, exit code).
fn split_rc(text: &str) -> (Vec<&str>, Option<i32>) {
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
fn fill_installed_versions(pending: &mut [PendingUpdate], rpm: &str) {
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

/// The kernel a package brings: `linux-image-5.15.0-1073-azure` → itself; a meta package
/// `linux-<flavour>` / `linux-image-<flavour>` at version `A.B.C.ABI.N` → `A.B.C-ABI-<flavour>`.
fn kernel_of_package(name: &str, version: &str) -> Option<String> {
    if let Some(k) = name.strip_prefix("linux-image-") {
        if k.starts_with(|c: char| c.is_ascii_digit()) {
            return Some(k.to_string());
        }
    }
    let flavour = name
        .strip_prefix("linux-image-")
        .or_else(|| name.strip_prefix("linux-"))?
        .split('-')
        .next()?;
    if !matches!(
        flavour,
        "azure" | "generic" | "aws" | "gcp" | "oracle" | "kvm" | "lowlatency"
    ) {
        return None;
    }
    let nums: Vec<&str> = version.split(['.', '~', '+']).collect();
    if nums.len() < 4
        || !nums[..4]
            .iter()
            .all(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    {
        return None;
    }
    Some(format!("{}.{}.{}-{}-{flavour}", nums[0], nums[1], nums[2], nums[3]))
}

/// Numbers of a version string, for ordering kernels.
fn version_key(v: &str) -> Vec<u64> {
    v.split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().unwrap_or(0))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const UPGRADABLE: &str = "\
Listing... Done
curl/jammy-updates 7.81.0-1ubuntu1.20 amd64 [upgradable from: 7.81.0-1ubuntu1.18]
libssl3/jammy-updates,jammy-security 3.0.2-0ubuntu1.19 amd64 [upgradable from: 3.0.2-0ubuntu1.18]
linux-azure/jammy-updates,jammy-security 5.15.0.1073.71 amd64 [upgradable from: 5.15.0.1068.66]
linux-tools-common/jammy-updates,jammy-security 5.15.0-1073.82 all [upgradable from: 5.15.0-1068.77]
openssl/jammy-updates,jammy-security 3.0.2-0ubuntu1.19 amd64 [upgradable from: 3.0.2-0ubuntu1.18]
tzdata/jammy-updates 2025a-0ubuntu0.22.04 all [upgradable from: 2024b-0ubuntu0.22.04.1]
N: There is 1 additional version. Please use the '-a' switch to see it
";

    fn output(refresh: Option<&str>, upgradable: &str, reboot: bool, pkgs: &str) -> String {
        let mut s = String::from(
            "@@aks-patch:kernel\n5.15.0-1068-azure\n\
             @@aks-patch:os-release\nPRETTY_NAME=\"Ubuntu 22.04.5 LTS\"\nNAME=\"Ubuntu\"\nVERSION_ID=\"22.04\"\nID=ubuntu\nID_LIKE=debian\n\
             @@aks-patch:boot-id\n3f2a9c1e-7d4b-4e8a-9b1c-0a2b3c4d5e6f\n\
             @@aks-patch:btime\nbtime 1735689600\n\
             @@aks-patch:uptime\n86400.52 170000.10\n\
             @@aks-patch:now\n1735776000\n\
             @@aks-patch:package-managers\napt-get\n",
        );
        if let Some(r) = refresh {
            s.push_str("@@aks-patch:refresh\n");
            s.push_str(r);
        }
        s.push_str("@@aks-patch:upgradable\n");
        s.push_str(upgradable);
        s.push_str(&format!(
            "@@aks-patch:reboot-required\n{}\n@@aks-patch:reboot-required-pkgs\n{pkgs}@@aks-patch:end\n",
            if reboot { "yes" } else { "no" }
        ));
        s
    }

    #[test]
    fn upgradable_lines() {
        let p = parse_upgradable(UPGRADABLE);
        assert_eq!(p.len(), 6);
        assert_eq!(
            p[4],
            PendingUpdate {
                name: "openssl".into(),
                from: "3.0.2-0ubuntu1.18".into(),
                to: "3.0.2-0ubuntu1.19".into(),
                pockets: vec!["jammy-updates".into(), "jammy-security".into()],
                arch: "amd64".into(),
                security: true,
            }
        );
        assert!(!p[0].security);
        assert_eq!(p[0].pockets, vec!["jammy-updates"]);
        assert!(!p[5].security);
        assert_eq!(p.iter().filter(|x| x.security).count(), 4);
    }

    #[test]
    fn full_probe() {
        let p = Probe::parse(&output(None, UPGRADABLE, false, "")).unwrap();
        assert_eq!(p.running_kernel, "5.15.0-1068-azure");
        assert_eq!(p.os_id, "ubuntu");
        assert_eq!(p.os_version, "22.04");
        assert_eq!(p.os_pretty_name.as_deref(), Some("Ubuntu 22.04.5 LTS"));
        assert_eq!(p.boot_id.as_deref(), Some("3f2a9c1e-7d4b-4e8a-9b1c-0a2b3c4d5e6f"));
        assert_eq!(p.booted_at, Some(1735689600));
        assert_eq!(p.uptime_seconds, Some(86400));
        assert_eq!(p.package_manager, PackageManager::Apt);
        assert!(p.is_supported());
        assert_eq!(p.pending_count(), 6);
        assert_eq!(p.security_count(), 4);
        assert_eq!(
            p.security_packages(),
            vec!["libssl3", "linux-azure", "linux-tools-common", "openssl"]
        );
        assert!(!p.reboot_required);
        assert!(p.reboot_packages.is_empty());
        assert!(!p.refreshed);
        assert_eq!(p.refresh_error, None);
        assert_eq!(p.pending_kernel().as_deref(), Some("5.15.0-1073-azure"));
    }

    #[test]
    fn reboot_marker_and_packages() {
        let p = Probe::parse(&output(
            None,
            "Listing... Done\n",
            true,
            "linux-image-5.15.0-1073-azure\nlibc6\nlibc6\n",
        ))
        .unwrap();
        assert!(p.reboot_required);
        assert_eq!(p.reboot_packages, vec!["linux-image-5.15.0-1073-azure", "libc6"]);
        assert_eq!(p.pending_count(), 0);
        assert_eq!(p.pending_kernel().as_deref(), Some("5.15.0-1073-azure"));
    }

    #[test]
    fn refresh_results() {
        let p = Probe::parse(&output(Some("rc=0\nReading package lists...\n"), "", false, "")).unwrap();
        assert!(p.refreshed);
        assert_eq!(p.refresh_error, None);
        let p = Probe::parse(&output(
            Some("rc=100\nE: Could not get lock /var/lib/apt/lists/lock. It is held by process 1234 (apt-get)\n"),
            "",
            false,
            "",
        ))
        .unwrap();
        assert!(!p.refreshed);
        let e = p.refresh_error.unwrap();
        assert!(e.contains("exit 100") && e.contains("Could not get lock"), "{e}");
    }

    const AZL3: &str = "@@aks-patch:kernel\n6.6.64.2-9.azl3\n@@aks-patch:os-release\nNAME=\"Microsoft Azure Linux\"\nVERSION_ID=\"3.0\"\nID=azurelinux\nPRETTY_NAME=\"Microsoft Azure Linux 3.0\"\n\
                   @@aks-patch:package-managers\ntdnf\ndnf\n@@aks-patch:upgradable\n@@aks-patch:reboot-required\nno\n@@aks-patch:reboot-required-pkgs\n\
                   @@aks-patch:tdnf-check-update\n\
                   curl.x86_64                              8.11.1-2.azl3                  azurelinux-official-base\n\
                   kernel.x86_64                            6.6.78.1-1.azl3                azurelinux-official-base\n\
                   rc=0\n\
                   @@aks-patch:rpm-installed\n\
                   curl 8.8.0-4.azl3\n\
                   kernel 6.6.57.1-2.azl3\n\
                   kernel 6.6.64.2-9.azl3\n\
                   package glibc is not installed\n\
                   @@aks-patch:needs-restarting\n\
                   Core libraries or services have been updated since boot-up:\n  * kernel\n  * glibc\n\n\
                   Reboot is required to fully utilize these updates.\nrc=1\n@@aks-patch:end\n";

    #[test]
    fn azure_linux_3_pending_updates_and_reboot_from_needs_restarting() {
        let p = Probe::parse(AZL3).unwrap();
        assert_eq!(p.package_manager, PackageManager::Tdnf);
        assert!(p.is_supported());
        assert_eq!(p.end_of_support, None);
        assert_eq!(p.os_pretty_name.as_deref(), Some("Microsoft Azure Linux 3.0"));
        assert_eq!(p.pending_count(), 2);
        assert_eq!(p.pending[1].name, "kernel");
        assert_eq!(p.pending[1].to, "6.6.78.1-1.azl3");
        // From rpm: the newest installed kernel.
        assert_eq!(p.pending[1].from, "6.6.64.2-9.azl3");
        assert_eq!(p.pending[0].from, "8.8.0-4.azl3");
        assert_eq!(p.pending[1].pockets, vec!["azurelinux-official-base"]);
        assert_eq!(p.pending[1].arch, "x86_64");
        // No security classification on Azure Linux: nothing counts as security.
        assert!(!p.classifies_security());
        assert_eq!(p.security_count(), 0);
        // No marker yet (the daily timer has not run), but needs-restarting says so.
        assert!(p.reboot_required);
        assert!(p.needs_restarting);
        assert_eq!(p.reboot_packages, vec!["kernel", "glibc"]);
        assert_eq!(p.pending_kernel().as_deref(), Some("6.6.78.1-1.azl3"));
        // Nothing pending, no reboot needed.
        let quiet = AZL3
            .replace(
                "curl.x86_64                              8.11.1-2.azl3                  azurelinux-official-base\n",
                "",
            )
            .replace(
                "kernel.x86_64                            6.6.78.1-1.azl3                azurelinux-official-base\n",
                "",
            )
            .replace(
                "Core libraries or services have been updated since boot-up:\n  * kernel\n  * glibc\n\nReboot is required to fully utilize these updates.\nrc=1",
                "No core libraries or services have been updated since boot-up.\nReboot should not be necessary.\nrc=0",
            );
        let p = Probe::parse(&quiet).unwrap();
        assert_eq!(p.pending_count(), 0);
        assert!(!p.reboot_required && !p.needs_restarting);
        assert!(p.reboot_packages.is_empty());
    }

    #[test]
    fn azure_linux_failures_are_errors_not_nothing_pending() {
        let broken = AZL3.replace(
            "rc=0\n",
            "Error(1200) : Curl error (7): Couldn't connect to server\nrc=1\n",
        );
        let e = Probe::parse(&broken).unwrap_err();
        assert!(
            e.0.contains("tdnf check-update") && e.0.contains("exit 1") && e.0.contains("Curl error"),
            "{e}"
        );
        let broken = AZL3.replace("rc=1\n@@aks-patch:end", "rc=2\n@@aks-patch:end");
        assert!(Probe::parse(&broken).unwrap_err().0.contains("needs-restarting"));
        // Azure Linux without tdnf cannot be patched.
        let no_tdnf = AZL3.replace("tdnf\ndnf\n", "");
        assert!(Probe::parse(&no_tdnf).unwrap().unsupported.unwrap().contains("no tdnf"));
    }

    #[test]
    fn azure_linux_2_is_out_of_support() {
        let out = "@@aks-patch:kernel\n5.15.173.1-1.cm2\n@@aks-patch:os-release\nNAME=\"Common Base Linux Mariner\"\nVERSION_ID=\"2.0\"\nID=mariner\n\
                   @@aks-patch:package-managers\ntdnf\ndnf\n@@aks-patch:upgradable\n@@aks-patch:reboot-required\nno\n@@aks-patch:reboot-required-pkgs\n\
                   @@aks-patch:tdnf-check-update\nrc=0\n@@aks-patch:end\n";
        let p = Probe::parse(out).unwrap();
        assert_eq!(p.package_manager, PackageManager::Tdnf);
        assert!(p.is_supported());
        let eos = p.end_of_support.unwrap();
        assert!(
            eos.contains("30 Nov 2025") && eos.contains("osSku AzureLinux3"),
            "{eos}"
        );
        assert_eq!(p.uptime_seconds, None);
        assert_eq!(p.boot_id, None);
    }

    #[test]
    fn cut_off_output_is_an_error() {
        let full = output(None, UPGRADABLE, false, "");
        let cut = &full[..full.len() / 2];
        assert!(Probe::parse(cut).unwrap_err().0.contains("end marker"));
        assert!(Probe::parse("").is_err());
        assert!(Probe::parse("@@aks-patch:kernel\n\n@@aks-patch:end\n")
            .unwrap_err()
            .0
            .contains("uname"));
    }

    #[test]
    fn kernels_of_packages() {
        assert_eq!(
            kernel_of_package("linux-azure", "5.15.0.1073.71").as_deref(),
            Some("5.15.0-1073-azure")
        );
        assert_eq!(
            kernel_of_package("linux-image-azure", "6.8.0.1021.23~22.04.1").as_deref(),
            Some("6.8.0-1021-azure")
        );
        assert_eq!(
            kernel_of_package("linux-image-5.15.0-1073-azure", "5.15.0-1073.82").as_deref(),
            Some("5.15.0-1073-azure")
        );
        assert_eq!(kernel_of_package("linux-tools-common", "5.15.0-1073.82"), None);
        assert_eq!(kernel_of_package("linux-azure", "garbage"), None);
        assert_eq!(kernel_of_package("openssl", "3.0.2"), None);
    }

    #[test]
    fn script_is_valid_sh_and_read_only_without_refresh() {
        for refresh in [false, true] {
            let s = probe_script(refresh, 60);
            let out = std::process::Command::new("/bin/sh")
                .arg("-n")
                .arg("-c")
                .arg(&s)
                .output()
                .unwrap();
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            assert_eq!(s.contains("apt-get -q"), refresh);
            // Only tdnf's read from its cache (`-C`, as root where tdnf insists) without refresh.
            assert_eq!(
                s.replace("sudo -n tdnf -q -C check-update", "").contains("sudo"),
                refresh
            );
        }
    }

    #[test]
    fn script_runs_here_and_parses() {
        // This machine is Linux: the script runs read-only and its output parses.
        let out = std::process::Command::new("/bin/sh")
            .arg("-c")
            .arg(probe_script(false, 60))
            .output()
            .unwrap();
        let p = Probe::parse(&String::from_utf8_lossy(&out.stdout)).unwrap();
        assert!(!p.running_kernel.is_empty());
        assert!(p.boot_id.is_some());
        assert!(p.uptime_seconds.is_some());
    }
}
