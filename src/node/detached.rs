//! The upgrade runs detached from the connection that starts it: its output and exit code
//! are kept in files on the node, so a dropped connection or a signal to aks-patch never cuts
//! apt/dpkg off half-way, and a later connection (or a resumed run) reads how it ended. While
//! it runs, its last line says whether it waits for the dpkg lock.

use super::command::sh_quote;

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
