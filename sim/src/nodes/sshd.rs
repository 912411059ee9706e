//! One sshd configuration for every node, run per connection as Debian's ssh.socket does.
//!
//! The emulator listens on `<node ip>:<ssh port>` itself and, for each accepted connection,
//! starts `sshd -i -e -f <state-dir>/ssh/sshd_config` with the TCP socket as its stdin and
//! stdout. sshd sees the real local address, so `Match LocalAddress <ip>` picks the node's
//! `ChrootDirectory`. Closing the listener is "SSH down" (connection refused); killing the
//! node's sshd processes drops its sessions.
//!
//! The bastion is one more address served the same way, with its own block: it alone may
//! forward TCP (`ssh -J`), and only to the nodes' SSH port (`PermitOpen`).

use super::chroot::{HostUser, Tools};
use anyhow::{bail, Context, Result};
use std::fmt::Write as _;
use std::fs;
use std::net::Ipv4Addr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// The SSH files of an emulator: keys and config in `<state-dir>/ssh/`, `authorized_keys` in
/// the instance directory under `/var/lib/aks-sim` (sshd opens it as the login user and checks
/// every directory above it, which a state directory under `/tmp` would fail).
#[derive(Debug, Clone)]
pub struct SshFiles {
    pub dir: PathBuf,
    pub host_key: PathBuf,
    pub client_key: PathBuf,
    pub config: PathBuf,
    pub log: PathBuf,
    pub authorized_keys: PathBuf,
}

fn keygen(tools: &Tools, path: &Path, comment: &str) -> Result<()> {
    let out = std::process::Command::new(&tools.ssh_keygen)
        .args(["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f"])
        .arg(path)
        .output()
        .with_context(|| format!("cannot run {}", tools.ssh_keygen.display()))?;
    if !out.status.success() {
        bail!(
            "ssh-keygen could not write {}: {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// The host key and the user's key pair in `<state-dir>/ssh/` (kept across restarts, so that
/// known_hosts entries and `AKS_PATCH_SSH_KEY` stay valid), and the authorized_keys sshd reads.
pub fn prepare(tools: &Tools, state_dir: &Path, instance: &Path) -> Result<SshFiles> {
    let dir = state_dir.join("ssh");
    fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o700))?;
    let host_key = dir.join("ssh_host_ed25519_key");
    let client_key = dir.join("id_ed25519");
    // One host key for every node: sshd's HostKey cannot vary per Match block.
    for (key, comment) in [(&host_key, "aks-sim host key"), (&client_key, "azureuser@aks-sim")] {
        let public = key.with_extension("pub");
        if !(key.is_file() && public.is_file()) {
            let _ = fs::remove_file(key);
            let _ = fs::remove_file(&public);
            keygen(tools, key, comment)?;
        }
        fs::set_permissions(key, fs::Permissions::from_mode(0o600))?;
    }
    let public = fs::read_to_string(client_key.with_extension("pub"))
        .with_context(|| format!("cannot read {}.pub", client_key.display()))?;
    let authorized_keys = instance.join("authorized_keys");
    super::chroot::put(&authorized_keys, public.as_bytes(), 0o644, Some((0, 0)))?;
    // sshd's privilege separation directory.
    fs::create_dir_all("/run/sshd").context("cannot create /run/sshd")?;
    fs::set_permissions("/run/sshd", fs::Permissions::from_mode(0o755))?;
    Ok(SshFiles {
        config: dir.join("sshd_config"),
        log: dir.join("sshd.log"),
        dir,
        host_key,
        client_key,
        authorized_keys,
    })
}

/// The bastion's block of the config.
#[derive(Debug, Clone)]
pub struct BastionBlock {
    pub ip: Ipv4Addr,
    pub root: PathBuf,
    /// The nodes' SSH port, the only one it forwards to.
    pub port: u16,
    /// The node addresses it forwards to.
    pub targets: Vec<Ipv4Addr>,
}

/// Write the one sshd_config: global settings, then a `Match LocalAddress` block per node
/// and one for the bastion. Connections that match neither are chrooted into an empty
/// directory (no shell: refused).
pub fn write_config(
    files: &SshFiles,
    user: &HostUser,
    empty_root: &Path,
    nodes: &[(Ipv4Addr, PathBuf)],
    bastion: Option<&BastionBlock>,
) -> Result<()> {
    let mut c = String::new();
    let _ = writeln!(
        c,
        "# Written by aks-sim: one sshd for every emulated node, started per connection\n\
         # (`sshd -i`) by the emulator, which listens on each node's address.\n\
         # authorized_keys lives under /var/lib/aks-sim because sshd opens it as {user} and\n\
         # checks every directory above it (StrictModes).\n\
         HostKey {host_key}\n\
         AuthorizedKeysFile {authorized_keys}\n\
         StrictModes yes\n\
         UsePAM no\n\
         PasswordAuthentication no\n\
         KbdInteractiveAuthentication no\n\
         PubkeyAuthentication yes\n\
         PermitRootLogin no\n\
         AllowUsers {user}\n\
         X11Forwarding no\n\
         AllowTcpForwarding no\n\
         AllowAgentForwarding no\n\
         PermitTunnel no\n\
         PermitTTY yes\n\
         PrintMotd no\n\
         PrintLastLog no\n\
         UseDNS no\n\
         LoginGraceTime 30\n\
         LogLevel INFO\n\
         SetEnv PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:/usr/games:/usr/local/games:/snap/bin\n\
         Subsystem sftp internal-sftp\n\
         ChrootDirectory {empty}\n",
        user = user.name,
        host_key = files.host_key.display(),
        authorized_keys = files.authorized_keys.display(),
        empty = empty_root.display(),
    );
    for (ip, root) in nodes {
        let _ = writeln!(c, "\nMatch LocalAddress {ip}\n    ChrootDirectory {}", root.display());
    }
    if let Some(b) = bastion {
        // `local`: what `ssh -J` and `ssh -W` need (direct-tcpip), never a listener on this
        // host (`ssh -R`). PermitOpen compares the requested host as written: addresses.
        let permit = if b.targets.is_empty() {
            "none".to_string()
        } else {
            b.targets
                .iter()
                .map(|ip| format!("{ip}:{}", b.port))
                .collect::<Vec<_>>()
                .join(" ")
        };
        let _ = writeln!(
            c,
            "\n# The bastion: a jump host to the nodes' SSH port, nothing else.\n\
             Match LocalAddress {ip}\n    ChrootDirectory {root}\n    AllowTcpForwarding local\n    PermitOpen {permit}",
            ip = b.ip,
            root = b.root.display(),
        );
    }
    super::chroot::put(&files.config, c.as_bytes(), 0o644, None)?;
    Ok(())
}

/// `sshd -t`: a config sshd would refuse is an error at start, not at the first login.
pub fn check_config(tools: &Tools, files: &SshFiles) -> Result<()> {
    let out = std::process::Command::new(&tools.sshd)
        .arg("-t")
        .arg("-f")
        .arg(&files.config)
        .output()
        .with_context(|| format!("cannot run {}", tools.sshd.display()))?;
    if !out.status.success() {
        bail!(
            "sshd refuses the generated {}: {}",
            files.config.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}
