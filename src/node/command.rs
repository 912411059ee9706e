//! Scripts on a node: every command aks-patch runs is a script for `sh -c`, whatever
//! transport runs it; anything that comes from outside (package names, paths) goes through
//! [`sh_quote`]. [`CommandOutput`] is what a script printed and its exit code.

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

/// What a script printed, and its exit code.
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
}
