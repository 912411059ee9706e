//! SSH sessions to nodes through the system `ssh` (the `openssh` crate, process mux), so
//! that the operator's ssh_config, agent and ProxyJump all work.
//!
//! Host keys: aks-patch keeps its own known_hosts file (in its state directory). By
//! default a new node's key is added to it (`StrictHostKeyChecking=accept-new`); with
//! `strict_host_keys` unknown keys are refused. A key that changed is always refused, with
//! the command that clears it (re-imaged nodes get new keys).

use super::remote::sh_quote;
use crate::settings::Settings;
use openssh::{ControlPersist, KnownHosts, Session, SessionBuilder};
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

/// What went wrong talking to a node.
#[derive(Debug, thiserror::Error)]
pub enum SshError {
    /// The SSH options are wrong (bad `--ssh-jump`, missing key file, …).
    #[error("{0}")]
    Config(String),
    /// No SSH connection: refused, no route, timed out connecting, name not resolved.
    #[error("cannot reach node {node} at {address} over SSH: {reason}")]
    Unreachable {
        node: String,
        address: String,
        reason: String,
        #[source]
        source: Option<openssh::Error>,
    },
    /// The node refused the login (key not authorized, no usable key).
    #[error(
        "node {node} ({address}) refused the SSH login of user {user}: {reason}. Check --ssh-user and --ssh-key (or your ssh agent): the key must be the cluster's linuxProfile key"
    )]
    AuthRefused {
        node: String,
        address: String,
        user: String,
        reason: String,
        #[source]
        source: Option<openssh::Error>,
    },
    /// The node's host key differs from the one recorded.
    #[error(
        "the SSH host key of node {node} ({address}) has changed since it was recorded in {}. If the node was re-imaged, new keys are expected: clear the old one with `{clear_command}` and retry; otherwise someone may be intercepting the connection",
        known_hosts.display()
    )]
    HostKeyChanged {
        node: String,
        address: String,
        known_hosts: PathBuf,
        clear_command: String,
    },
    /// Strict host key checking and the node's key is not known yet.
    #[error(
        "the SSH host key of node {node} ({address}) is not in {} and --ssh-strict-host-keys refuses unknown keys: add the node's verified key to that file, or run once without --ssh-strict-host-keys to record it",
        known_hosts.display()
    )]
    HostKeyUnknown {
        node: String,
        address: String,
        known_hosts: PathBuf,
    },
    /// The operation did not finish in time.
    #[error("{what} on node {node} timed out after {}s", after.as_secs())]
    Timeout {
        node: String,
        what: String,
        after: Duration,
    },
    /// The session dropped (expected while a node reboots).
    #[error("the SSH session to node {node} ({address}) was closed")]
    Disconnected {
        node: String,
        address: String,
        #[source]
        source: Option<openssh::Error>,
    },
    /// The remote command ran and failed.
    #[error("`{command}` failed on node {node} with exit code {exit_code}: {stderr_tail}")]
    Remote {
        node: String,
        command: String,
        exit_code: i32,
        stderr_tail: String,
    },
    /// Anything else (ssh could not be started, the probe output made no sense, …).
    #[error("SSH to node {node}: {message}")]
    Other {
        node: String,
        message: String,
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
    },
}

impl SshError {
    /// A short stable name of the kind of failure, for json output: `config`,
    /// `unreachable`, `auth-refused`, `host-key-changed`, `host-key-unknown`, `timeout`,
    /// `disconnected`, `remote`, `other`.
    pub fn kind(&self) -> &'static str {
        match self {
            SshError::Config(_) => "config",
            SshError::Unreachable { .. } => "unreachable",
            SshError::AuthRefused { .. } => "auth-refused",
            SshError::HostKeyChanged { .. } => "host-key-changed",
            SshError::HostKeyUnknown { .. } => "host-key-unknown",
            SshError::Timeout { .. } => "timeout",
            SshError::Disconnected { .. } => "disconnected",
            SshError::Remote { .. } => "remote",
            SshError::Other { .. } => "other",
        }
    }

    /// The node the error is about (`None` for option errors).
    pub fn node(&self) -> Option<&str> {
        match self {
            SshError::Config(_) => None,
            SshError::Unreachable { node, .. }
            | SshError::AuthRefused { node, .. }
            | SshError::HostKeyChanged { node, .. }
            | SshError::HostKeyUnknown { node, .. }
            | SshError::Timeout { node, .. }
            | SshError::Disconnected { node, .. }
            | SshError::Remote { node, .. }
            | SshError::Other { node, .. } => Some(node),
        }
    }
}

/// What ssh said when a login failed, sorted out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginFailure {
    Unreachable,
    AuthRefused,
    HostKeyChanged,
    HostKeyUnknown,
    Other,
}

/// Classify the text ssh printed on stderr when it could not log in.
pub fn classify_ssh_stderr(stderr: &str) -> LoginFailure {
    let s = stderr.to_ascii_lowercase();
    if s.contains("remote host identification has changed") || (s.contains("host key for") && s.contains("has changed"))
    {
        LoginFailure::HostKeyChanged
    } else if s.contains("host key verification failed")
        || s.contains("no matching host key")
        || (s.contains("host key is known") && s.contains("strict checking"))
    {
        LoginFailure::HostKeyUnknown
    } else if s.contains("permission denied (")
        || s.contains("too many authentication failures")
        || s.contains("no more authentication methods")
    {
        LoginFailure::AuthRefused
    } else if s.contains("connection refused")
        || s.contains("no route to host")
        || s.contains("network is unreachable")
        || s.contains("connection timed out")
        || s.contains("operation timed out")
        || s.contains("could not resolve hostname")
        || s.contains("name or service not known")
        || s.contains("connection reset")
        || s.contains("connection closed by")
        || s.contains("kex_exchange_identification")
        || s.contains("banner exchange")
    {
        LoginFailure::Unreachable
    } else {
        LoginFailure::Other
    }
}

/// The lines of ssh's stderr worth showing: no banners, no "Warning: Permanently added".
fn reason_of(stderr: &str) -> String {
    let lines: Vec<&str> = stderr
        .lines()
        .map(|l| l.trim().trim_start_matches("ssh: ").trim())
        .filter(|l| !l.is_empty() && !l.starts_with('@') && !l.starts_with("Warning: Permanently added"))
        .collect();
    let text = lines
        .iter()
        .rev()
        .take(3)
        .rev()
        .cloned()
        .collect::<Vec<_>>()
        .join(" / ");
    let text = text.trim_end_matches('.');
    if text.is_empty() {
        "ssh failed without saying why".to_string()
    } else {
        text.to_string()
    }
}

/// The text behind an openssh error: ssh's stderr is in its io::Error source (the
/// error's own message, e.g. "failed to connect to the remote host", only without one).
fn error_text(e: &openssh::Error) -> String {
    use std::error::Error;
    let mut parts = vec![];
    let mut cur = e.source();
    while let Some(s) = cur {
        parts.push(s.to_string());
        cur = s.source();
    }
    if parts.is_empty() {
        parts.push(e.to_string());
    }
    parts.join("\n")
}

/// What to add to a failed login through a jump host: ssh shows the jump leg's own error
/// nowhere (its stderr is not kept), only that the connection closed, so say where to look.
fn jump_note(opts: &SshOptions, address: &str) -> String {
    let Some(jump) = &opts.jump else {
        return String::new();
    };
    let mut check = String::from("ssh");
    if let Some(c) = &opts.config {
        check.push_str(&format!(" -F {}", sh_quote(&c.display().to_string())));
    }
    if opts.port != 22 {
        check.push_str(&format!(" -p {}", opts.port));
    }
    check.push_str(&format!(" -J {} {}@{address} true", sh_quote(jump), opts.user));
    format!(
        " (through jump host {jump}: it refused the login, or could not connect to the node; the jump host is \
         reached with your ssh_config and agent, not --ssh-key; check with `{check}`)"
    )
}

fn login_error(opts: &SshOptions, node: &str, address: &str, e: openssh::Error) -> SshError {
    let text = error_text(&e);
    let note = jump_note(opts, address);
    let (node, address) = (node.to_string(), address.to_string());
    match classify_ssh_stderr(&text) {
        LoginFailure::HostKeyChanged => SshError::HostKeyChanged {
            clear_command: opts.clear_key_command(&address),
            node,
            address,
            known_hosts: opts.known_hosts.clone(),
        },
        LoginFailure::HostKeyUnknown => SshError::HostKeyUnknown {
            node,
            address,
            known_hosts: opts.known_hosts.clone(),
        },
        LoginFailure::AuthRefused => SshError::AuthRefused {
            node,
            address,
            user: opts.user.clone(),
            reason: reason_of(&text),
            source: Some(e),
        },
        LoginFailure::Unreachable => SshError::Unreachable {
            node,
            address,
            reason: format!("{}{note}", reason_of(&text)),
            source: Some(e),
        },
        LoginFailure::Other => SshError::Other {
            node,
            message: format!("ssh could not log in to {address}: {}{note}", reason_of(&text)),
            source: Some(Box::new(e)),
        },
    }
}

/// An open SSH session to one node (an ssh control master).
#[derive(Debug)]
pub struct NodeSession {
    node: String,
    address: String,
    session: Session,
}

/// What a remote command printed, and its exit code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandOutput {
    pub stdout: String,
    pub stderr: String,
    pub exit_code: i32,
}

impl CommandOutput {
    pub fn success(&self) -> bool {
        self.exit_code == 0
    }

    /// The last lines of stderr (else stdout), for error messages.
    pub fn tail(&self, lines: usize) -> String {
        let src = if self.stderr.trim().is_empty() {
            &self.stdout
        } else {
            &self.stderr
        };
        let all: Vec<&str> = src
            .lines()
            .map(str::trim_end)
            .filter(|l| !l.trim().is_empty())
            .collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

/// Marker line the wrapper prints after the script with its exit code.
const EXIT_MARK: &str = "@@aks-patch-exit=";

/// Log in to a node. `node` names it in errors; `address` is what ssh connects to.
pub async fn connect(opts: &SshOptions, node: &str, address: &str) -> Result<NodeSession, SshError> {
    let other = |message: String, source: std::io::Error| SshError::Other {
        node: node.to_string(),
        message,
        source: Some(Box::new(source)),
    };
    if let Some(j) = &opts.jump {
        parse_jump(j)?;
    }
    if address.is_empty() || address.starts_with('-') || address.contains(char::is_whitespace) {
        return Err(SshError::Config(format!(
            "node {node} has no usable address ({address:?})"
        )));
    }
    if let Some(dir) = opts.known_hosts.parent().filter(|d| !d.as_os_str().is_empty()) {
        create_private_dir(dir).map_err(|e| other(format!("cannot create {}", dir.display()), e))?;
    }
    std::fs::create_dir_all(&opts.control_dir).map_err(|e| {
        other(
            format!("cannot create the ssh control directory {}", opts.control_dir.display()),
            e,
        )
    })?;

    let mut b = SessionBuilder::default();
    b.user(opts.user.clone())
        .port(opts.port)
        .known_hosts_check(if opts.strict_host_keys {
            KnownHosts::Strict
        } else {
            KnownHosts::Add
        })
        .user_known_hosts_file(&opts.known_hosts)
        .connect_timeout(opts.connect_timeout)
        .server_alive_interval(Duration::from_secs(10))
        .control_directory(&opts.control_dir)
        // A master left behind (a login abandoned on timeout) goes away by itself.
        .control_persist(ControlPersist::IdleFor(
            std::num::NonZeroUsize::new(900).expect("900 is not zero"),
        ));
    if let Some(k) = &opts.key {
        b.keyfile(k);
    }
    if let Some(c) = &opts.config {
        b.config_file(c);
    }
    if let Some(j) = &opts.jump {
        b.jump_hosts(j.split(','));
    }
    tracing::debug!(node, address, user = %opts.user, port = opts.port, jump = ?opts.jump, "ssh connect");
    let limit = opts.connect_timeout + Duration::from_secs(10);
    match tokio::time::timeout(limit, b.connect(address)).await {
        Err(_) => Err(SshError::Timeout {
            node: node.to_string(),
            what: format!("SSH login to {address}"),
            after: limit,
        }),
        Ok(Err(e)) => Err(login_error(opts, node, address, e)),
        Ok(Ok(session)) => Ok(NodeSession {
            node: node.to_string(),
            address: address.to_string(),
            session,
        }),
    }
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    if dir.is_dir() {
        return Ok(());
    }
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)
}

impl NodeSession {
    pub fn node(&self) -> &str {
        &self.node
    }

    pub fn address(&self) -> &str {
        &self.address
    }

    /// Run a script with `sh -c` on the node (quoted for the login shell), and wait at most
    /// `timeout`. Any exit code is `Ok` (see [`NodeSession::run_checked`]); the session
    /// dropping is [`SshError::Disconnected`].
    pub async fn run(&self, script: &str, timeout: Duration) -> Result<CommandOutput, SshError> {
        // The wrapper prints the script's exit code on a marker line and exits 0 itself, so
        // that exit codes 127 and 255 are not mistaken for ssh's own failures.
        let wrapped = format!(
            "sh -c {} </dev/null; printf '\\n{EXIT_MARK}%s\\n' \"$?\"",
            sh_quote(script)
        );
        let mut cmd = self.session.raw_command(wrapped);
        let what = format!("`{}`", first_words(script));
        let result = match tokio::time::timeout(timeout, cmd.output()).await {
            Err(_) => {
                return Err(SshError::Timeout {
                    node: self.node.clone(),
                    what,
                    after: timeout,
                })
            }
            Ok(r) => r,
        };
        let out = match result {
            Ok(o) => o,
            Err(e @ (openssh::Error::Disconnected | openssh::Error::RemoteProcessTerminated)) => {
                return Err(self.lost(Some(e)).await)
            }
            Err(e) => {
                return Err(SshError::Other {
                    node: self.node.clone(),
                    message: format!("cannot run {what}"),
                    source: Some(Box::new(e)),
                })
            }
        };
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        match split_exit(&stdout) {
            Some((body, code)) => Ok(CommandOutput {
                stdout: body.to_string(),
                stderr,
                exit_code: code,
            }),
            // No marker: the shell died with the connection (reboot), or was killed.
            None => Err(self.lost(None).await),
        }
    }

    /// As [`NodeSession::run`], but a non-zero exit code is [`SshError::Remote`].
    pub async fn run_checked(&self, script: &str, timeout: Duration) -> Result<CommandOutput, SshError> {
        let out = self.run(script, timeout).await?;
        if out.success() {
            Ok(out)
        } else {
            Err(SshError::Remote {
                node: self.node.clone(),
                command: first_words(script),
                exit_code: out.exit_code,
                stderr_tail: out.tail(5),
            })
        }
    }

    async fn lost(&self, source: Option<openssh::Error>) -> SshError {
        match self.session.check().await {
            Err(e) => SshError::Disconnected {
                node: self.node.clone(),
                address: self.address.clone(),
                source: source.or(Some(e)),
            },
            Ok(()) => match source {
                // The master is alive: the remote shell itself was killed.
                Some(e) => SshError::Other {
                    node: self.node.clone(),
                    message: "the remote command was terminated before it finished".into(),
                    source: Some(Box::new(e)),
                },
                None => SshError::Other {
                    node: self.node.clone(),
                    message: "the remote command was terminated before it finished".into(),
                    source: None,
                },
            },
        }
    }

    /// Whether the session is still up.
    pub async fn is_alive(&self) -> bool {
        self.session.check().await.is_ok()
    }

    /// Log out (stop the control master). A session that already dropped closes fine.
    pub async fn close(self) -> Result<(), SshError> {
        match self.session.close().await {
            Ok(()) => Ok(()),
            // Gone already (rebooted): nothing to close.
            Err(openssh::Error::Disconnected) | Err(openssh::Error::Master(_)) | Err(openssh::Error::Ssh(_)) => Ok(()),
            Err(e) => Err(SshError::Other {
                node: self.node,
                message: "cannot close the SSH session".into(),
                source: Some(Box::new(e)),
            }),
        }
    }
}

/// The script's own output and exit code, from the wrapper's marker line.
fn split_exit(stdout: &str) -> Option<(&str, i32)> {
    let idx = stdout.rfind(EXIT_MARK)?;
    let code = stdout[idx + EXIT_MARK.len()..].trim().parse::<i32>().ok()?;
    let body = &stdout[..idx];
    // The wrapper printed a newline before the marker.
    let body = body.strip_suffix('\n').unwrap_or(body);
    Some((body, code))
}

/// The first few words of a script, to name it in messages.
fn first_words(script: &str) -> String {
    let line = script.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or("");
    let words: Vec<&str> = line.split_whitespace().take(6).collect();
    let mut s = words.join(" ");
    if line.split_whitespace().count() > 6 || script.trim().lines().count() > 1 {
        s.push_str(" …");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn classify_real_ssh_messages() {
        use LoginFailure::*;
        let cases = [
            ("ssh: connect to host 127.77.3.4 port 22: Connection refused", Unreachable),
            ("ssh: connect to host 10.224.0.9 port 22: Connection timed out", Unreachable),
            ("ssh: connect to host 10.224.0.9 port 22: No route to host", Unreachable),
            ("ssh: Could not resolve hostname nope: Name or service not known", Unreachable),
            ("kex_exchange_identification: read: Connection reset by peer\r\nConnection reset by 127.77.3.4 port 22", Unreachable),
            ("azureuser@127.77.3.4: Permission denied (publickey).", AuthRefused),
            (
                "@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@\r\n\
                 @    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @\r\n\
                 @@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@\r\n\
                 IT IS POSSIBLE THAT SOMEONE IS DOING SOMETHING NASTY!\r\n\
                 Host key for 127.77.3.4 has changed and you have requested strict checking.\r\n\
                 Host key verification failed.",
                HostKeyChanged,
            ),
            (
                "No ED25519 host key is known for 127.77.3.4 and you have requested strict checking.\r\nHost key verification failed.",
                HostKeyUnknown,
            ),
            ("something odd happened", Other),
        ];
        for (text, want) in cases {
            assert_eq!(classify_ssh_stderr(text), want, "{text}");
        }
    }

    #[test]
    fn reasons_drop_banners() {
        assert_eq!(
            reason_of("ssh: Warning: Permanently added '127.77.3.4' (ED25519) to the list of known hosts.\nazureuser@127.77.3.4: Permission denied (publickey)."),
            "azureuser@127.77.3.4: Permission denied (publickey)"
        );
        assert_eq!(reason_of(""), "ssh failed without saying why");
    }

    #[test]
    fn host_key_changed_names_node_and_clear_command() {
        let mut o = SshOptions::new(
            "azureuser",
            PathBuf::from("/nonexistent/known_hosts"),
            PathBuf::from("/tmp"),
        );
        o.known_hosts = PathBuf::from("/var/lib/aks patch/known_hosts");
        let e = login_error(
            &o,
            "aks-user-1-vmss000001",
            "10.224.0.5",
            openssh::Error::Connect(std::io::Error::other(
                "@ WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED! @\nHost key verification failed.",
            )),
        );
        assert_eq!(e.kind(), "host-key-changed");
        let m = e.to_string();
        assert!(m.contains("aks-user-1-vmss000001"), "{m}");
        assert!(
            m.contains("ssh-keygen -R 10.224.0.5 -f '/var/lib/aks patch/known_hosts'"),
            "{m}"
        );
        o.port = 2222;
        assert_eq!(
            o.clear_key_command("10.0.0.1"),
            "ssh-keygen -R '[10.0.0.1]:2222' -f '/var/lib/aks patch/known_hosts'"
        );
    }

    #[test]
    fn unreachable_keeps_cause() {
        use std::error::Error;
        let o = SshOptions::new(
            "azureuser",
            PathBuf::from("/nonexistent/known_hosts"),
            PathBuf::from("/tmp"),
        );
        let e = login_error(
            &o,
            "n1",
            "127.77.3.4",
            openssh::Error::Connect(std::io::Error::new(
                std::io::ErrorKind::ConnectionRefused,
                "ssh: connect to host 127.77.3.4 port 22: Connection refused",
            )),
        );
        assert_eq!(e.kind(), "unreachable");
        assert!(e.to_string().contains("Connection refused"));
        assert!(e.source().is_some());
    }

    #[test]
    fn a_failed_jump_says_where_to_look() {
        let mut o = SshOptions::new(
            "azureuser",
            PathBuf::from("/nonexistent/known_hosts"),
            PathBuf::from("/tmp"),
        );
        let closed = || {
            openssh::Error::Connect(std::io::Error::other(
                "kex_exchange_identification: Connection closed by remote host\nConnection closed by UNKNOWN port 65535",
            ))
        };
        let direct = login_error(&o, "n1", "10.224.0.4", closed()).to_string();
        assert!(!direct.contains("jump"), "{direct}");
        o.jump = Some("ops@bastion.example.com:2222".into());
        o.config = Some(PathBuf::from("/home/ops/my ssh/config"));
        let e = login_error(&o, "n1", "10.224.0.4", closed());
        assert_eq!(e.kind(), "unreachable");
        let m = e.to_string();
        assert!(m.contains("n1") && m.contains("Connection closed"), "{m}");
        assert!(
            m.contains("through jump host ops@bastion.example.com:2222")
                && m.contains("not --ssh-key")
                && m.contains(
                    "`ssh -F '/home/ops/my ssh/config' -J ops@bastion.example.com:2222 azureuser@10.224.0.4 true`"
                ),
            "{m}"
        );
    }

    #[test]
    fn exit_marker() {
        assert_eq!(split_exit("hello\n\n@@aks-patch-exit=0\n"), Some(("hello\n", 0)));
        assert_eq!(split_exit("\n@@aks-patch-exit=127\n"), Some(("", 127)));
        assert_eq!(split_exit("partial output"), None);
    }

    #[test]
    fn command_output_tail() {
        let o = CommandOutput {
            stdout: "a\nb\n".into(),
            stderr: "E: one\n\nE: two\nE: three\n".into(),
            exit_code: 100,
        };
        assert_eq!(o.tail(2), "E: two\nE: three");
        let o = CommandOutput {
            stdout: "a\nb\n".into(),
            stderr: " \n".into(),
            exit_code: 1,
        };
        assert_eq!(o.tail(5), "a\nb");
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

    #[test]
    fn first_words_names_scripts() {
        assert_eq!(first_words("uname -r"), "uname -r");
        assert_eq!(first_words("\n  a b c d e f g h\nnext"), "a b c d e f …");
    }
}
