//! The reboot command.

/// Reboot the node in the background and return at once (exit 0), so that the command
/// finishes before the SSH session drops. `sudo` is checked first, so a node where sudo
/// needs a password fails here (exit 3) instead of silently never rebooting.
///
/// Expect either success or the connection dropping (the node went down) from running it.
pub fn reboot_command() -> String {
    "sudo true </dev/null || { echo 'aks-patch: sudo does not work for this user: cannot reboot' >&2; exit 3; }\n\
     nohup sudo sh -c 'sleep 0.2; systemctl reboot || reboot' </dev/null >/dev/null 2>&1 &\n\
     echo 'reboot scheduled'\n"
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
