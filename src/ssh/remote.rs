//! The commands aks-patch runs on nodes, quoted for a POSIX shell, and the parser of what
//! `apt-get` prints while it upgrades.
//!
//! Every command is a script for `sh -c` (see [`super::NodeSession::run`]); anything that
//! comes from outside (package names, paths) goes through [`sh_quote`].

use serde::{Deserialize, Serialize};

/// Which upgrades to install (`--upgrade-mode`; the run record keeps it, kebab-case).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum UpgradeMode {
    /// Only packages from the -security pocket (what unattended-upgrades installs).
    Security,
    /// All upgrades, installing new packages they need (new kernels).
    All,
    /// `apt-get dist-upgrade`: may also remove packages.
    Dist,
}

/// Quote a string for a POSIX shell: unchanged when it only has safe characters,
/// otherwise in single quotes (a `'` inside becomes `'\''`).
pub fn sh_quote(s: &str) -> String {
    let safe = !s.is_empty()
        && s.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'=' | b'/' | b',' | b'.' | b'+' | b':' | b'@')
        });
    if safe {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

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

/// Where a detached upgrade keeps its output and exit code on the node.
pub const NODE_LOG_DIR: &str = "/var/log/aks-patch";

/// The files of the detached upgrade of run `run_id`: (log, exit code).
pub fn upgrade_files(run_id: &str) -> (String, String) {
    let id: String = run_id
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' })
        .collect();
    (
        format!("{NODE_LOG_DIR}/upgrade-{id}.log"),
        format!("{NODE_LOG_DIR}/upgrade-{id}.exit"),
    )
}

/// Start `command` (an upgrade) on the node detached from the SSH session: in a session of
/// its own (`setsid`, where the node has it) under `nohup`, its output in the log file and its
/// exit code written to the exit file when it ends. A dropped connection or a signal to
/// aks-patch's process group therefore never cuts apt/dpkg off half-way. Prints `started`.
pub fn start_detached(command: &str, run_id: &str) -> String {
    let (log, exit) = upgrade_files(run_id);
    let (log, exit) = (sh_quote(&log), sh_quote(&exit));
    let inner =
        format!("exec >{log} 2>&1 </dev/null\n{command}\nrc=$?\necho $rc >{exit}.tmp && mv {exit}.tmp {exit}\n");
    format!(
        "sudo mkdir -p {dir} || exit 90\n\
         sudo rm -f {exit} {exit}.tmp\n\
         if command -v setsid >/dev/null 2>&1; then S=setsid; else S=; fi\n\
         sudo $S nohup sh -c {inner} </dev/null >/dev/null 2>&1 &\n\
         echo started\n",
        dir = sh_quote(NODE_LOG_DIR),
        inner = sh_quote(&inner),
    )
}

/// Marker lines of [`wait_detached`].
pub const DETACHED_EXIT_MARK: &str = "@@aks-patch-upgrade-exit=";
pub const DETACHED_RUNNING_MARK: &str = "@@aks-patch-upgrade-running";
/// Before the last line the running upgrade printed (see [`parse_lock_wait`]).
pub const DETACHED_LAST_MARK: &str = "@@aks-patch-upgrade-last=";

/// Wait up to `secs` for the detached upgrade of `run_id` to end, then print its log and
/// [`DETACHED_EXIT_MARK`] with its exit code, or [`DETACHED_RUNNING_MARK`] if it still runs,
/// and [`DETACHED_LAST_MARK`] with the last line it printed (apt's `Waiting for cache lock:
/// ... held by process N (name)... Ns` while it waits for the dpkg lock).
pub fn wait_detached(run_id: &str, secs: u64) -> String {
    let (log, exit) = upgrade_files(run_id);
    format!(
        "i=0\n\
         while [ ! -f {exit} ] && [ $i -lt {ticks} ]; do sleep 0.05; i=$((i+1)); done\n\
         if [ -f {exit} ]; then sudo cat {log} 2>/dev/null; echo; echo \"{DETACHED_EXIT_MARK}$(sudo cat {exit})\"; \
         else echo {DETACHED_RUNNING_MARK}; printf '%s' '{DETACHED_LAST_MARK}'; \
         sudo tail -c 4000 {log} 2>/dev/null | tr '\\r' '\\n' | grep -v '^ *$' | tail -n 1; fi\n",
        exit = sh_quote(&exit),
        log = sh_quote(&log),
        ticks = secs * 20,
    )
}

/// A package manager waiting for its lock, as it says so (apt 2.x: `Waiting for cache lock:
/// Could not get lock /var/lib/dpkg/lock-frontend. It is held by process 2345
/// (unattended-upgr)... 12s`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackageLockWait {
    /// The lock file.
    pub lock: String,
    /// The process holding it, as the node names it.
    pub pid: Option<u32>,
    pub process: Option<String>,
    /// How long it has waited so far.
    pub waited: Option<std::time::Duration>,
}

impl std::fmt::Display for PackageLockWait {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the dpkg lock ({}) is held by ", self.lock)?;
        match (&self.process, self.pid) {
            (Some(name), Some(pid)) => write!(f, "{name} (pid {pid})")?,
            (None, Some(pid)) => write!(f, "pid {pid}")?,
            (Some(name), None) => write!(f, "{name}")?,
            (None, None) => write!(f, "another process")?,
        }
        if let Some(w) = self.waited {
            write!(f, "; apt has waited {}s for it", w.as_secs())?;
        }
        Ok(())
    }
}

/// What a running upgrade waits for, from what [`wait_detached`] printed: `Some` while its
/// last line says it waits for the dpkg lock.
pub fn parse_lock_wait(stdout: &str) -> Option<PackageLockWait> {
    let idx = stdout.rfind(DETACHED_LAST_MARK)?;
    let line = stdout[idx + DETACHED_LAST_MARK.len()..].lines().next()?.trim();
    let rest = line.strip_prefix("Waiting for cache lock:")?.trim();
    let lock = rest
        .split_once("Could not get lock ")
        .map(|(_, r)| r.split(". ").next().unwrap_or(r).trim_end_matches('.').to_string())
        .unwrap_or_else(|| "/var/lib/dpkg/lock-frontend".into());
    let held = rest.split_once("held by process ").map(|(_, r)| r);
    let pid = held.and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok());
    let process = held
        .and_then(|r| r.split_once('(')?.1.split_once(')').map(|(n, _)| n.trim().to_string()))
        .filter(|n| !n.is_empty());
    let waited = rest
        .rsplit_once("...")
        .and_then(|(_, t)| t.trim().strip_suffix('s')?.trim().parse::<u64>().ok())
        .map(std::time::Duration::from_secs);
    Some(PackageLockWait {
        lock,
        pid,
        process,
        waited,
    })
}

/// What [`wait_detached`] printed: `Some((log, exit code))` when the upgrade ended.
pub fn parse_detached(stdout: &str) -> Option<(String, i32)> {
    let idx = stdout.rfind(DETACHED_EXIT_MARK)?;
    let code = stdout[idx + DETACHED_EXIT_MARK.len()..].trim().parse::<i32>().ok()?;
    Some((stdout[..idx].trim_end().to_string(), code))
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

/// Reboot the node in the background and return at once (exit 0), so that the command
/// finishes before the SSH session drops. `sudo` is checked first, so a node where sudo
/// needs a password fails here (exit 3) instead of silently never rebooting.
///
/// Expect either success or [`super::SshError::Disconnected`] from running it.
pub fn reboot_command() -> String {
    "sudo true </dev/null || { echo 'aks-patch: sudo does not work for this user: cannot reboot' >&2; exit 3; }\n\
     nohup sudo sh -c 'sleep 0.2; systemctl reboot || reboot' </dev/null >/dev/null 2>&1 &\n\
     echo 'reboot scheduled'\n"
        .to_string()
}

/// A package that `apt-get` set up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UpgradedPackage {
    pub name: String,
    pub version: String,
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
    fn quoting() {
        assert_eq!(sh_quote("openssl"), "openssl");
        assert_eq!(sh_quote("libstdc++6"), "libstdc++6");
        assert_eq!(
            sh_quote("linux-image-5.15.0-1073-azure"),
            "linux-image-5.15.0-1073-azure"
        );
        assert_eq!(sh_quote(""), "''");
        assert_eq!(sh_quote("a b"), "'a b'");
        assert_eq!(sh_quote("x'; rm -rf /; echo '"), r"'x'\''; rm -rf /; echo '\'''");
        assert_eq!(sh_quote("$(reboot)"), "'$(reboot)'");
        assert_eq!(sh_quote("a\nb"), "'a\nb'");
    }

    #[test]
    fn quoting_round_trips_through_sh() {
        for s in [
            "plain",
            "two words",
            "it's",
            "$HOME `id` \"q\" \\ ; | & *",
            "",
            "'",
            "a\nb",
            "!x",
        ] {
            let out = std::process::Command::new("sh")
                .arg("-c")
                .arg(format!("printf %s {}", sh_quote(s)))
                .output()
                .expect("sh runs");
            assert_eq!(String::from_utf8_lossy(&out.stdout), s, "{s:?}");
        }
    }

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
    fn a_running_upgrade_waiting_for_the_dpkg_lock_names_its_holder() {
        let out = format!(
            "{DETACHED_RUNNING_MARK}\n{DETACHED_LAST_MARK}Waiting for cache lock: Could not get lock /var/lib/dpkg/lock-frontend. It is held by process 2345 (unattended-upgr)... 37s\n"
        );
        let w = parse_lock_wait(&out).expect("a lock wait");
        assert_eq!(
            w,
            PackageLockWait {
                lock: "/var/lib/dpkg/lock-frontend".into(),
                pid: Some(2345),
                process: Some("unattended-upgr".into()),
                waited: Some(std::time::Duration::from_secs(37)),
            }
        );
        assert_eq!(
            w.to_string(),
            "the dpkg lock (/var/lib/dpkg/lock-frontend) is held by unattended-upgr (pid 2345); apt has waited 37s for it"
        );
        // Past the lock, apt prints other lines: no wait.
        assert_eq!(
            parse_lock_wait(&format!(
                "{DETACHED_RUNNING_MARK}\n{DETACHED_LAST_MARK}Unpacking openssl (3.0.2) ...\n"
            )),
            None
        );
        assert_eq!(
            parse_lock_wait(&format!("{DETACHED_RUNNING_MARK}\n{DETACHED_LAST_MARK}\n")),
            None
        );
    }

    #[test]
    fn the_wait_script_prints_the_last_line_of_the_log_while_running() {
        // Run the script in sh against a log in a scratch directory, with `sudo` a no-op.
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("bin");
        std::fs::create_dir(&bin).unwrap();
        std::fs::write(bin.join("sudo"), "#!/bin/sh\nexec \"$@\"\n").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(bin.join("sudo"), std::fs::Permissions::from_mode(0o755)).unwrap();
        let log = dir.path().join("u.log");
        std::fs::write(
            &log,
            "Reading package lists...\r\nWaiting for cache lock: Could not get lock /var/lib/dpkg/lock-frontend. It is held by process 7 (apt-get)... 3s\r\n\n",
        )
        .unwrap();
        let script = wait_detached("r1", 1)
            .replace(&sh_quote(&upgrade_files("r1").0), &sh_quote(log.to_str().unwrap()))
            .replace(
                &sh_quote(&upgrade_files("r1").1),
                &sh_quote(dir.path().join("u.exit").to_str().unwrap()),
            );
        let out = std::process::Command::new("/bin/sh")
            .arg("-c")
            .arg(&script)
            .env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
            .output()
            .expect("sh runs");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(stdout.contains(DETACHED_RUNNING_MARK), "{stdout}");
        let w = parse_lock_wait(&stdout).expect("the lock wait");
        assert_eq!((w.pid, w.process.as_deref()), (Some(7), Some("apt-get")), "{stdout}");
    }

    #[test]
    fn reboot_returns_at_once_in_sh() {
        // The command must be valid sh; with `sudo` and `reboot` absent it fails fast at
        // the sudo check (exit 3) rather than hanging.
        let dir = tempfile::tempdir().unwrap();
        let out = std::process::Command::new("/bin/sh")
            .arg("-c")
            .arg(reboot_command())
            .env("PATH", dir.path())
            .output()
            .expect("sh runs");
        assert_eq!(out.status.code(), Some(3), "{out:?}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("sudo does not work"));
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
