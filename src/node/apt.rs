//! The apt commands aks-patch runs on Ubuntu nodes, and the parser of what `apt-get` prints
//! while it upgrades.

use super::command::sh_quote;
use super::upgrade::{UpgradeMode, UpgradedPackage};

/// The `apt-get` invocation every change goes through: non-interactive, restarts services
/// without asking (needrestart), keeps changed config files, and waits up to
/// `lock_timeout_secs` for the dpkg lock (held by unattended-upgrades) instead of failing.
fn apt_get(lock_timeout_secs: u64) -> String {
    format!(
        "sudo DEBIAN_FRONTEND=noninteractive NEEDRESTART_MODE=a apt-get -q -y \
         -o DPkg::Lock::Timeout={lock_timeout_secs} \
         -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold"
    )
}

/// The upgrade for a mode:
/// - `All`: `apt-get upgrade --with-new-pkgs` (new kernel ABI packages included);
/// - `Dist`: `apt-get dist-upgrade` (may also remove packages);
/// - `Security`: `apt-get install --only-upgrade <packages>`, with `security_packages` the
///   packages a fresh probe found in a `-security` pocket ([`super::Probe::security_packages`]).
///
/// `None` when there is nothing to do (`Security` with no packages).
pub fn upgrade_command(mode: UpgradeMode, lock_timeout_secs: u64, security_packages: &[String]) -> Option<String> {
    let apt = apt_get(lock_timeout_secs);
    match mode {
        UpgradeMode::All => Some(format!("{apt} upgrade --with-new-pkgs")),
        UpgradeMode::Dist => Some(format!("{apt} dist-upgrade")),
        UpgradeMode::Security => {
            if security_packages.is_empty() {
                return None;
            }
            let pkgs: Vec<String> = security_packages.iter().map(|p| sh_quote(p)).collect();
            Some(format!("{apt} install --only-upgrade {}", pkgs.join(" ")))
        }
    }
}

/// Download what the upgrade of `mode` will install, without installing anything
/// (`apt-get -d`): the packages stay in apt's cache, so the upgrade itself is install time
/// only. Non-disruptive: aks-patch runs it on the next node while the current one reboots.
/// `None` for `Security` (its package list comes from a fresh probe at upgrade time).
pub fn download_command(mode: UpgradeMode, lock_timeout_secs: u64) -> Option<String> {
    let apt = apt_get(lock_timeout_secs);
    match mode {
        UpgradeMode::All => Some(format!("{apt} -d upgrade --with-new-pkgs")),
        UpgradeMode::Dist => Some(format!("{apt} -d dist-upgrade")),
        UpgradeMode::Security => None,
    }
}

/// `apt-get update`, waiting for the lock like the upgrade does.
pub fn refresh_command(lock_timeout_secs: u64) -> String {
    format!("sudo apt-get -q -o DPkg::Lock::Timeout={lock_timeout_secs} update")
}

/// The packages from the `Setting up <name>[:<arch>] (<version>) ...` lines of apt-get's
/// output, in order, each once.
pub fn parse_upgrade_output(stdout: &str) -> Vec<UpgradedPackage> {
    let mut out: Vec<UpgradedPackage> = Vec::new();
    for line in stdout.lines() {
        let Some(rest) = line.trim().strip_prefix("Setting up ") else {
            continue;
        };
        let Some((name, rest)) = rest.split_once(" (") else {
            continue;
        };
        let Some((version, _)) = rest.split_once(')') else {
            continue;
        };
        let name = name.split(':').next().unwrap_or(name).trim();
        if name.is_empty() || version.is_empty() || name.contains(' ') {
            continue;
        }
        let p = UpgradedPackage {
            name: name.to_string(),
            version: version.to_string(),
        };
        if !out.contains(&p) {
            out.push(p);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upgrade_commands() {
        let all = upgrade_command(UpgradeMode::All, 300, &[]).unwrap();
        assert_eq!(
            all,
            "sudo DEBIAN_FRONTEND=noninteractive NEEDRESTART_MODE=a apt-get -q -y -o DPkg::Lock::Timeout=300 \
             -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold upgrade --with-new-pkgs"
        );
        assert!(upgrade_command(UpgradeMode::Dist, 60, &[])
            .unwrap()
            .ends_with(" dist-upgrade"));
        assert_eq!(upgrade_command(UpgradeMode::Security, 60, &[]), None);
        let sec = upgrade_command(
            UpgradeMode::Security,
            60,
            &["openssl".to_string(), "libssl3".to_string(), "evil;reboot".to_string()],
        )
        .unwrap();
        assert!(
            sec.ends_with(" install --only-upgrade openssl libssl3 'evil;reboot'"),
            "{sec}"
        );
        assert!(sec.contains("DPkg::Lock::Timeout=60"));
    }

    #[test]
    fn upgrade_output() {
        let out = "\
Reading package lists...
Building dependency tree...
The following NEW packages will be installed:
  linux-image-5.15.0-1073-azure linux-modules-5.15.0-1073-azure
The following packages will be upgraded:
  libssl3 linux-azure openssl
Get:1 http://azure.archive.ubuntu.com/ubuntu jammy-security/main amd64 libssl3 amd64 3.0.2-0ubuntu1.19 [1905 kB]
Preparing to unpack .../libssl3_3.0.2-0ubuntu1.19_amd64.deb ...
Unpacking libssl3:amd64 (3.0.2-0ubuntu1.19) over (3.0.2-0ubuntu1.18) ...
Setting up libssl3:amd64 (3.0.2-0ubuntu1.19) ...
Setting up linux-image-5.15.0-1073-azure (5.15.0-1073.82) ...
Setting up openssl (3.0.2-0ubuntu1.19) ...
Setting up linux-azure (5.15.0.1073.71) ...
Processing triggers for man-db (2.10.2-1) ...
Setting up openssl (3.0.2-0ubuntu1.19) ...
Setting up garbage
";
        let p = parse_upgrade_output(out);
        assert_eq!(
            p,
            vec![
                UpgradedPackage {
                    name: "libssl3".into(),
                    version: "3.0.2-0ubuntu1.19".into()
                },
                UpgradedPackage {
                    name: "linux-image-5.15.0-1073-azure".into(),
                    version: "5.15.0-1073.82".into()
                },
                UpgradedPackage {
                    name: "openssl".into(),
                    version: "3.0.2-0ubuntu1.19".into()
                },
                UpgradedPackage {
                    name: "linux-azure".into(),
                    version: "5.15.0.1073.71".into()
                },
            ]
        );
        assert!(parse_upgrade_output("0 upgraded, 0 newly installed, 0 to remove and 0 not upgraded.\n").is_empty());
    }
}
