//! SSH sessions to nodes through the system `ssh` (the `openssh` crate, process mux), so
//! that the operator's ssh_config, agent and ProxyJump all work. A session runs scripts with
//! `sh -c` and reports their exit code from a marker line, so that exit codes 127 and 255 are
//! never mistaken for ssh's own failures.

use super::error::SshError;
use super::login::login_error;
use super::options::{parse_jump, SshOptions};
use crate::node::{sh_quote, CommandOutput};
use openssh::{ControlPersist, KnownHosts, Session, SessionBuilder};
use std::path::Path;
use std::time::Duration;

/// An open SSH session to one node (an ssh control master).
#[derive(Debug)]
pub struct NodeSession {
    node: String,
    address: String,
    session: Session,
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
    fn exit_marker() {
        assert_eq!(split_exit("hello\n\n@@aks-patch-exit=0\n"), Some(("hello\n", 0)));
        assert_eq!(split_exit("\n@@aks-patch-exit=127\n"), Some(("", 127)));
        assert_eq!(split_exit("partial output"), None);
    }

    #[test]
    fn first_words_names_scripts() {
        assert_eq!(first_words("uname -r"), "uname -r");
        assert_eq!(first_words("\n  a b c d e f g h\nnext"), "a b c d e f …");
    }
}
