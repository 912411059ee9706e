//! What reaches the nodes over SSH: the `--ssh-*` flags ([`SshFlags`]) checked into
//! [`SshOptions`], jump hosts, and the private key file's permissions.
//!
//! Host keys: aks-patch keeps its own known_hosts file (in its state directory). By
//! default a new node's key is added to it (`StrictHostKeyChecking=accept-new`); with
//! `strict_host_keys` unknown keys are refused. A key that changed is always refused, with
//! the command that clears it (re-imaged nodes get new keys).

use super::error::SshError;
use crate::node::sh_quote;
use crate::settings::Settings;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// What the command line asks of SSH (the `--ssh-*` flags), before it is checked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SshFlags {
    /// `--ssh-user`; `None` = the cluster's admin user.
    pub user: Option<String>,
    /// `--ssh-key`.
    pub key: Option<PathBuf>,
    /// `--ssh-port`.
    pub port: u16,
    /// `--ssh-jump`.
    pub jump: Option<String>,
    /// `--ssh-config`.
    pub config: Option<PathBuf>,
    /// `--ssh-strict-host-keys`.
    pub strict_host_keys: bool,
    /// `--ssh-timeout`, in seconds.
    pub timeout_secs: u64,
}

/// How to reach the nodes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshOptions {
    pub user: String,
    /// Private key file; `None` = the agent and ssh_config decide.
    pub key: Option<PathBuf>,
    pub port: u16,
    /// Jump host(s), `user@host[:port]`, comma-separated for several hops (validated by
    /// [`parse_jump`]). As with `ssh -J`, the jump host itself is reached with your own
    /// ssh setup (ssh_config, agent, `~/.ssh/known_hosts`); `key`, `known_hosts` and the
    /// host key policy apply to the nodes.
    pub jump: Option<String>,
    /// ssh_config file used instead of `~/.ssh/config`.
    pub config: Option<PathBuf>,
    /// Refuse nodes whose key is not in `known_hosts` yet.
    pub strict_host_keys: bool,
    /// The known_hosts file aks-patch owns.
    pub known_hosts: PathBuf,
    /// TCP connect timeout (ssh `ConnectTimeout`); the whole login gets a few seconds more.
    pub connect_timeout: Duration,
    /// Where the ssh control sockets live (keep the path short: sockets are limited to
    /// about 100 bytes).
    pub control_dir: PathBuf,
}

impl SshOptions {
    /// Options with the defaults: port 22, no key, no jump, accept-new host keys into
    /// `known_hosts`, 30 s connect timeout, control sockets in `control_dir`
    /// ([`Settings::ssh_control_dir`]).
    pub fn new(user: impl Into<String>, known_hosts: PathBuf, control_dir: PathBuf) -> SshOptions {
        SshOptions {
            user: user.into(),
            key: None,
            port: 22,
            jump: None,
            config: None,
            strict_host_keys: false,
            known_hosts,
            connect_timeout: Duration::from_secs(30),
            control_dir,
        }
    }

    /// From the command line. `default_user` is the cluster's
    /// `linuxProfile.adminUsername` (else `azureuser`). Checks `--ssh-jump`, and that
    /// `--ssh-key` / `--ssh-config` exist. Host keys go to `<state dir>/known_hosts`, control
    /// sockets to [`Settings::ssh_control_dir`].
    pub fn from_flags(flags: &SshFlags, default_user: &str, settings: &Settings) -> Result<SshOptions, SshError> {
        let mut o = SshOptions::new(
            flags.user.clone().unwrap_or_else(|| default_user.to_string()),
            settings.state_dir.join("known_hosts"),
            settings.ssh_control_dir.clone(),
        );
        if o.user.is_empty() || o.user.starts_with('-') || o.user.contains(char::is_whitespace) {
            return Err(SshError::Config(format!(
                "--ssh-user {:?} is not a valid user name",
                o.user
            )));
        }
        o.port = flags.port;
        if o.port == 0 {
            return Err(SshError::Config("--ssh-port must be between 1 and 65535".into()));
        }
        if let Some(j) = &flags.jump {
            parse_jump(j)?;
            o.jump = Some(j.clone());
        }
        for (flag, p) in [("--ssh-key", &flags.key), ("--ssh-config", &flags.config)] {
            if let Some(p) = p {
                if !p.is_file() {
                    return Err(SshError::Config(format!("{flag} {}: no such file", p.display())));
                }
            }
        }
        o.key = flags.key.clone();
        o.config = flags.config.clone();
        o.strict_host_keys = flags.strict_host_keys;
        o.connect_timeout = Duration::from_secs(flags.timeout_secs.max(1));
        Ok(o)
    }

    /// The host as written in known_hosts: `10.0.0.4`, or `[10.0.0.4]:2222` off port 22.
    pub fn known_hosts_name(&self, address: &str) -> String {
        if self.port == 22 {
            address.to_string()
        } else {
            format!("[{address}]:{}", self.port)
        }
    }

    /// The command that removes a node's recorded key.
    pub fn clear_key_command(&self, address: &str) -> String {
        format!(
            "ssh-keygen -R {} -f {}",
            sh_quote(&self.known_hosts_name(address)),
            sh_quote(&self.known_hosts.display().to_string())
        )
    }
}

/// One jump host of `--ssh-jump`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JumpHost {
    pub user: Option<String>,
    pub host: String,
    pub port: Option<u16>,
}

/// Check `--ssh-jump`: `[user@]host[:port]`, several hops separated by commas; IPv6
/// addresses in brackets (`[fd00::1]:22`).
pub fn parse_jump(spec: &str) -> Result<Vec<JumpHost>, SshError> {
    let bad = |why: &str| {
        SshError::Config(format!(
            "--ssh-jump {spec:?} is not valid: {why}; expected user@host[:port], e.g. azureuser@bastion.example.com:22"
        ))
    };
    if spec.trim().is_empty() {
        return Err(bad("it is empty"));
    }
    let mut hops = Vec::new();
    for hop in spec.split(',') {
        let (user, rest) = match hop.rsplit_once('@') {
            Some((u, r)) => (Some(u), r),
            None => (None, hop),
        };
        if let Some(u) = user {
            if u.is_empty()
                || u.starts_with('-')
                || !u
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '$'))
            {
                return Err(bad(&format!("user {u:?} has characters a user name cannot have")));
            }
        }
        let (host, port) = if let Some(r) = rest.strip_prefix('[') {
            let (h, after) = r
                .split_once(']')
                .ok_or_else(|| bad("an IPv6 address needs a closing `]`"))?;
            if h.parse::<std::net::Ipv6Addr>().is_err() {
                return Err(bad(&format!("{h:?} is not an IPv6 address")));
            }
            let port = match after {
                "" => None,
                p => Some(p.strip_prefix(':').ok_or_else(|| bad("expected `:port` after `]`"))?),
            };
            (h, port)
        } else {
            match rest.split_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (rest, None),
            }
        };
        let port = match port {
            None => None,
            Some(p) => match p.parse::<u16>() {
                Ok(n) if n > 0 => Some(n),
                _ => return Err(bad(&format!("port {p:?} is not a number from 1 to 65535"))),
            },
        };
        let is_v6 = rest.starts_with('[');
        if !is_v6
            && (host.is_empty()
                || host.starts_with(['-', '.'])
                || !host
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')))
        {
            return Err(bad(&format!("host {host:?} is not a host name or address")));
        }
        hops.push(JumpHost {
            user: user.map(str::to_string),
            host: host.to_string(),
            port,
        });
    }
    Ok(hops)
}

/// Why ssh would not use a private key file.
#[derive(Debug, thiserror::Error)]
pub enum PrivateKeyError {
    #[error("cannot read the SSH key {}: {source}", path.display())]
    Unreadable {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the SSH key {} is not a file", path.display())]
    NotAFile { path: PathBuf },
    #[error(
        "the SSH key {} has permissions {mode:04o}: ssh refuses a private key that others can read; run `chmod 600 {}`",
        path.display(),
        path.display()
    )]
    ReadableByOthers { path: PathBuf, mode: u32 },
}

/// A private key file ssh will accept: readable, and not readable by group or others (ssh
/// refuses such keys with "UNPROTECTED PRIVATE KEY FILE"). `Err` says what is wrong and how
/// to fix it.
pub fn check_private_key(path: &Path) -> Result<(), PrivateKeyError> {
    use std::os::unix::fs::PermissionsExt;
    let unreadable = |source| PrivateKeyError::Unreadable {
        path: path.to_path_buf(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(unreadable)?;
    if !meta.is_file() {
        return Err(PrivateKeyError::NotAFile {
            path: path.to_path_buf(),
        });
    }
    std::fs::File::open(path).map_err(unreadable)?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(PrivateKeyError::ReadableByOthers {
            path: path.to_path_buf(),
            mode,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_ssh_would_refuse_is_refused_saying_why() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("id_rsa");
        std::fs::write(&key, "key").unwrap();
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(check_private_key(&key).is_ok());
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = check_private_key(&key).unwrap_err();
        assert!(
            matches!(e, PrivateKeyError::ReadableByOthers { mode: 0o644, .. }),
            "{e:?}"
        );
        assert!(
            e.to_string().contains("has permissions 0644") && e.to_string().contains("chmod 600"),
            "{e}"
        );
        assert!(matches!(
            check_private_key(dir.path()),
            Err(PrivateKeyError::NotAFile { .. })
        ));
        let missing = check_private_key(&dir.path().join("nope")).unwrap_err();
        match &missing {
            PrivateKeyError::Unreadable { source, .. } => assert_eq!(source.kind(), std::io::ErrorKind::NotFound),
            other => panic!("{other:?}"),
        }
        assert!(missing.to_string().starts_with("cannot read the SSH key "), "{missing}");
    }

    #[test]
    fn jump_hosts() {
        assert_eq!(
            parse_jump("azureuser@bastion.example.com:2222").unwrap(),
            vec![JumpHost {
                user: Some("azureuser".into()),
                host: "bastion.example.com".into(),
                port: Some(2222)
            }]
        );
        assert_eq!(
            parse_jump("10.0.0.4").unwrap(),
            vec![JumpHost {
                user: None,
                host: "10.0.0.4".into(),
                port: None
            }]
        );
        assert_eq!(parse_jump("a@h1,b@[fd00::1]:22").unwrap().len(), 2);
        assert_eq!(parse_jump("b@[fd00::1]:22").unwrap()[0].host, "fd00::1");
        for bad in [
            "",
            "user@",
            "@host",
            "-oProxyCommand=x",
            "u@host:0",
            "u@host:99999",
            "u@host:ssh",
            "u ser@host",
            "u@ho st",
            "u@[::1",
            "u@[nope]:22",
            "u@host;reboot",
        ] {
            let e = parse_jump(bad).unwrap_err();
            let msg = e.to_string();
            assert!(
                msg.contains("--ssh-jump") && msg.contains("user@host[:port]"),
                "{bad}: {msg}"
            );
        }
    }

    #[test]
    fn options_from_flags() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("id");
        std::fs::write(&key, "k").unwrap();
        let mut flags = SshFlags {
            user: None,
            key: Some(key.clone()),
            port: 22,
            jump: Some("ops@bastion:2222".into()),
            config: None,
            strict_host_keys: true,
            timeout_secs: 12,
        };
        let settings = Settings {
            state_dir: dir.path().join("state"),
            ssh_control_dir: dir.path().join("run"),
            ..Settings::default()
        };
        let o = SshOptions::from_flags(&flags, "azureuser", &settings).unwrap();
        assert_eq!(o.user, "azureuser");
        assert_eq!(o.known_hosts, dir.path().join("state/known_hosts"));
        assert_eq!(o.control_dir, dir.path().join("run"));
        assert_eq!(o.key.as_deref(), Some(key.as_path()));
        assert!(o.strict_host_keys);
        assert_eq!(o.connect_timeout, Duration::from_secs(12));
        flags.jump = Some("bad jump".into());
        assert!(matches!(
            SshOptions::from_flags(&flags, "azureuser", &settings),
            Err(SshError::Config(_))
        ));
        flags.jump = None;
        flags.key = Some(dir.path().join("missing"));
        let e = SshOptions::from_flags(&flags, "azureuser", &settings).unwrap_err();
        assert!(
            e.to_string().contains("--ssh-key") && e.to_string().contains("missing"),
            "{e}"
        );
    }
}
