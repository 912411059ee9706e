//! Reaching nodes over SSH: sessions ([`session`]), the read-only probe ([`probe`]), the
//! commands that change a node ([`remote`]) and probing many nodes at once ([`fanout`]).

pub mod fanout;
pub mod pkg;
pub mod probe;
pub mod remote;
pub mod session;

pub use fanout::{probe_all, probe_node};
pub use probe::{PackageManager, PendingUpdate, Probe, ProbeParseError};
pub use remote::{
    parse_upgrade_output, reboot_command, refresh_command, sh_quote, upgrade_command, UpgradeMode, UpgradedPackage,
};
pub use session::{connect, parse_jump, CommandOutput, JumpHost, NodeSession, SshError, SshFlags, SshOptions};

/// A private key file ssh will accept: readable, and not readable by group or others (ssh
/// refuses such keys with "UNPROTECTED PRIVATE KEY FILE"). `Err` says what is wrong and how
/// to fix it.
pub fn check_private_key(path: &std::path::Path) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).map_err(|e| format!("cannot read the SSH key {}: {e}", path.display()))?;
    if !meta.is_file() {
        return Err(format!("the SSH key {} is not a file", path.display()));
    }
    std::fs::File::open(path).map_err(|e| format!("cannot read the SSH key {}: {e}", path.display()))?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(format!(
            "the SSH key {} has permissions {mode:04o}: ssh refuses a private key that others can read; run `chmod 600 {}`",
            path.display(),
            path.display()
        ));
    }
    Ok(())
}
