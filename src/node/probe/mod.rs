//! The read-only probe of a node: one shell script ([`script`]) that prints marked sections,
//! and a pure parser of its output into a [`Probe`]: one parser per section's tool
//! (`os_release`, [`apt`], [`tdnf`], `refresh`), the kernel a package brings (`kernel`),
//! and which nodes aks-patch patches (`support`).
//!
//! Azure Linux nodes (tdnf) answer `needs-restarting -r` for the reboot need (exit 1:
//! required), which the daily `check-restart` timer only turns into
//! `/var/run/reboot-required` at 08:00 UTC.

pub mod apt;
mod kernel;
mod os_release;
mod refresh;
pub mod script;
mod sections;
mod support;
pub mod tdnf;

pub use apt::parse_upgradable;
pub use script::probe_script;
pub use tdnf::{parse_needs_restarting, parse_tdnf_check_update};

use crate::node::PackageManager;
use kernel::{kernel_of_package, version_key};
use os_release::parse_os_release;
use refresh::parse_refresh;
use sections::{first_line, split_sections};
use serde::Serialize;
use support::{end_of_support, judge_support};
use tdnf::fill_installed_versions;

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
        let end_of_support = end_of_support(&os_id, &os_version);

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

#[cfg(test)]
mod tests {
    use super::apt::tests::UPGRADABLE;
    use super::*;

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
}
