//! A failed login, sorted out: what ssh printed on stderr classified into an [`SshError`]
//! that says what to do (clear a changed host key, check the key, look at the jump host).

use super::error::SshError;
use super::options::SshOptions;
use crate::node::sh_quote;

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

pub(super) fn login_error(opts: &SshOptions, node: &str, address: &str, e: openssh::Error) -> SshError {
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

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
}
