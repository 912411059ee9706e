//! The package manager of a node, as one small interface chosen per node from the probe
//! (`/etc/os-release`): apt on Ubuntu ([`super::apt`]), tdnf on Azure Linux
//! ([`super::tdnf`]). Every command is a script for `sh -c` on the node, so that any
//! transport can run it.

use super::upgrade::{UpgradeMode, UpgradedPackage};
use super::{apt, tdnf};
use serde::Serialize;

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

impl PackageManager {
    /// The package manager an AKS `osSKU` (the node label `kubernetes.azure.com/os-sku`)
    /// implies, for choosing a command before the node is probed.
    pub fn from_os_sku(sku: Option<&str>) -> PackageManager {
        match sku {
            Some(s)
                if s.eq_ignore_ascii_case("AzureLinux")
                    || s.eq_ignore_ascii_case("AzureLinux3")
                    || s.eq_ignore_ascii_case("CBLMariner")
                    || s.eq_ignore_ascii_case("Mariner") =>
            {
                PackageManager::Tdnf
            }
            _ => PackageManager::Apt,
        }
    }

    /// The command's name in messages (`apt-get`, `tdnf`).
    pub fn tool(self) -> &'static str {
        match self {
            PackageManager::Tdnf => "tdnf",
            _ => "apt-get",
        }
    }

    /// The upgrade for `mode`, or `None` when there is nothing to do. Apt: see
    /// [`apt::upgrade_command`]. Tdnf: `tdnf -y update --refresh` for `All` and `Dist`
    /// (tdnf's update installs new kernels and handles obsoletes), after waiting up to
    /// `lock_timeout_secs` for a running dnf-automatic to finish (exit 75 with a message if it
    /// does not); `Security` is `None`: the caller refuses it or asks for `All`.
    pub fn upgrade_command(
        self,
        mode: UpgradeMode,
        lock_timeout_secs: u64,
        security_packages: &[String],
    ) -> Option<String> {
        match self {
            PackageManager::Tdnf => match mode {
                UpgradeMode::Security => None,
                UpgradeMode::All | UpgradeMode::Dist => Some(tdnf::tdnf_update(lock_timeout_secs)),
            },
            _ => apt::upgrade_command(mode, lock_timeout_secs, security_packages),
        }
    }

    /// The download-ahead command (nothing installed): apt's [`apt::download_command`];
    /// none for tdnf in this version (its upgrade downloads).
    pub fn download_command(self, mode: UpgradeMode, lock_timeout_secs: u64) -> Option<String> {
        match self {
            PackageManager::Tdnf => None,
            _ => apt::download_command(mode, lock_timeout_secs),
        }
    }

    /// The packages the upgrade's output says it installed.
    pub fn parse_upgrade_output(self, log: &str) -> Vec<UpgradedPackage> {
        match self {
            PackageManager::Tdnf => tdnf::parse_tdnf_update_output(log),
            _ => apt::parse_upgrade_output(log),
        }
    }

    /// The line of a failed upgrade's output that says why (apt's last `E:`, tdnf's last
    /// `Error` line).
    pub fn error_line(self, log: &str) -> Option<String> {
        let found = match self {
            PackageManager::Tdnf => log
                .lines()
                .rfind(|l| l.starts_with("Error") || l.starts_with("aks-patch:")),
            _ => log.lines().rfind(|l| l.starts_with("E:")),
        };
        found.map(str::to_string)
    }
}

#[cfg(test)]
mod tests {
    use super::tdnf::parse_tdnf_update_output;
    use super::*;

    #[test]
    fn chosen_by_os_sku() {
        assert_eq!(PackageManager::from_os_sku(Some("AzureLinux")), PackageManager::Tdnf);
        assert_eq!(PackageManager::from_os_sku(Some("CBLMariner")), PackageManager::Tdnf);
        assert_eq!(PackageManager::from_os_sku(Some("Ubuntu")), PackageManager::Apt);
        assert_eq!(PackageManager::from_os_sku(None), PackageManager::Apt);
    }

    #[test]
    fn apt_commands_are_unchanged() {
        for mode in [UpgradeMode::All, UpgradeMode::Dist, UpgradeMode::Security] {
            let pkgs = vec!["openssl".to_string()];
            assert_eq!(
                PackageManager::Apt.upgrade_command(mode, 300, &pkgs),
                apt::upgrade_command(mode, 300, &pkgs)
            );
            assert_eq!(
                PackageManager::Apt.download_command(mode, 300),
                apt::download_command(mode, 300)
            );
        }
    }

    #[test]
    fn tdnf_update_waits_for_dnf_automatic() {
        let cmd = PackageManager::Tdnf.upgrade_command(UpgradeMode::All, 2, &[]).unwrap();
        assert!(cmd.ends_with("sudo tdnf -y update --refresh"), "{cmd}");
        assert_eq!(
            PackageManager::Tdnf.upgrade_command(UpgradeMode::Security, 2, &[]),
            None
        );
        assert_eq!(PackageManager::Tdnf.download_command(UpgradeMode::All, 2), None);
        // Run it with stand-ins: systemctl says the unit runs, so it waits, then gives up.
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path();
        let put = |name: &str, body: &str| {
            use std::os::unix::fs::PermissionsExt;
            let p = bin.join(name);
            std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        };
        put("systemctl", "echo activating");
        put("sudo", "echo ran: \"$@\"");
        put("sleep", "exit 0");
        let run = |cmd: &str| {
            std::process::Command::new("/bin/sh")
                .arg("-c")
                .arg(cmd)
                .env("PATH", bin)
                .output()
                .unwrap()
        };
        let out = run(&cmd);
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(75), "{text}");
        assert!(
            text.contains("waiting for it to finish") && text.contains("not upgrading"),
            "{text}"
        );
        assert!(!text.contains("ran:"), "{text}");
        // Once it is inactive, tdnf runs.
        put("systemctl", "echo inactive");
        let out = run(&cmd);
        assert!(out.status.success());
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            "ran: tdnf -y update --refresh"
        );
    }

    #[test]
    fn tdnf_output() {
        let log = "\
Refreshing metadata for: 'Azure Linux Official Base 3.0 x86_64'

Upgrading:
curl                           x86_64   8.11.1-2.azl3            azurelinux-official-base     1.02M
kernel                         x86_64   6.6.78.1-1.azl3          azurelinux-official-base     1.02M

Total installed size: 6.40M
Total download size: 2.12M
Testing transaction
Running transaction
Installing/Updating: kernel-6.6.78.1-1.azl3.x86_64

Complete!
";
        assert_eq!(
            parse_tdnf_update_output(log),
            vec![
                UpgradedPackage {
                    name: "curl".into(),
                    version: "8.11.1-2.azl3".into()
                },
                UpgradedPackage {
                    name: "kernel".into(),
                    version: "6.6.78.1-1.azl3".into()
                },
            ]
        );
        assert!(parse_tdnf_update_output("Nothing to do.\n").is_empty());
        assert_eq!(
            PackageManager::Tdnf
                .error_line("x\nError(1622) : Unable to download packages\n")
                .as_deref(),
            Some("Error(1622) : Unable to download packages")
        );
        assert_eq!(
            PackageManager::Apt.error_line("E: one\nx\nE: two\n").as_deref(),
            Some("E: two")
        );
    }
}
