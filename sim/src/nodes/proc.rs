//! Starting a pod's process on its node, as the container runtime does for `exec` and for a
//! container's own command: chrooted into a root on the node, with pipes or, with `tty`, a
//! real pseudo-terminal (stdout and stderr merged on it, resizable), and optionally the node's
//! root bind-mounted into the container (a `hostPath` volume of `/`, as `kubectl debug node`
//! mounts it at `/host`). Mounts are made in a private mount namespace of the process, so
//! they vanish with it.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncWrite};

/// What to start, where.
pub struct Spawn<'a> {
    pub root: &'a Path,
    pub argv: &'a [String],
    pub hostname: &'a str,
    pub stdin: bool,
    pub tty: bool,
    /// The node's root and where it appears inside `root` (`/host`).
    pub host: Option<(PathBuf, String)>,
}

pub type Reader = Box<dyn AsyncRead + Unpin + Send>;
pub type Writer = Box<dyn AsyncWrite + Unpin + Send>;

/// A started process and its streams. With a tty, `stdout` carries both stdout and stderr
/// and `stderr` is `None`.
pub struct Running {
    pub child: tokio::process::Child,
    /// Its pid, which is also its process group (and session, with a tty).
    pub pid: i32,
    pub stdin: Option<Writer>,
    pub stdout: Option<Reader>,
    pub stderr: Option<Reader>,
    /// The terminal's master side, to resize it.
    pub pty: Option<Arc<OwnedFd>>,
}

/// Mounts the container needs (devpts for its terminal, the node's root), then the chroot.
const SETUP: &str = r#"r=$1 t=$2 hs=$3 hd=$4; shift 4
if [ "$t" = 1 ]; then mkdir -p "$r/dev/pts" && mount --bind /dev/pts "$r/dev/pts" || exit 126; fi
if [ -n "$hs" ]; then mkdir -p "$r$hd" && mount --bind "$hs" "$r$hd" || exit 126; fi
exec /usr/sbin/chroot "$r" "$@""#;

const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Start the process.
pub fn spawn(sp: Spawn<'_>) -> io::Result<Running> {
    let mut cmd = if sp.tty || sp.host.is_some() {
        let mut c = tokio::process::Command::new("/usr/bin/unshare");
        let (hs, hd) = match &sp.host {
            Some((src, dst)) => (src.as_os_str().to_owned(), dst.clone()),
            None => (Default::default(), String::new()),
        };
        c.args(["-m", "--propagation", "private", "/bin/sh", "-c", SETUP, "sh"])
            .arg(sp.root)
            .arg(if sp.tty { "1" } else { "0" })
            .arg(hs)
            .arg(hd)
            .args(sp.argv);
        c
    } else {
        let mut c = tokio::process::Command::new("/usr/sbin/chroot");
        c.arg(sp.root).args(sp.argv);
        c
    };
    cmd.env_clear()
        .env("PATH", PATH)
        .env("HOME", "/root")
        .env("HOSTNAME", sp.hostname)
        .current_dir("/")
        .kill_on_drop(true);
    if sp.tty {
        cmd.env("TERM", "xterm");
        let (master, slave) = openpty()?;
        cmd.stdin(Stdio::from(slave.try_clone()?))
            .stdout(Stdio::from(slave.try_clone()?))
            .stderr(Stdio::from(slave));
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY as _, 0) < 0 {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn()?;
        drop(cmd); // our copies of the terminal's slave side
        let pid = child.id().unwrap_or(0) as i32;
        let master = Arc::new(master);
        let r = std::fs::File::from(master.try_clone()?);
        let w = std::fs::File::from(master.try_clone()?);
        Ok(Running {
            child,
            pid,
            stdin: sp.stdin.then(|| Box::new(tokio::fs::File::from_std(w)) as Writer),
            stdout: Some(Box::new(tokio::fs::File::from_std(r))),
            stderr: None,
            pty: Some(master),
        })
    } else {
        cmd.stdin(if sp.stdin { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        let mut child = cmd.spawn()?;
        let pid = child.id().unwrap_or(0) as i32;
        Ok(Running {
            pid,
            stdin: child.stdin.take().map(|w| Box::new(w) as Writer),
            stdout: child.stdout.take().map(|r| Box::new(r) as Reader),
            stderr: child.stderr.take().map(|r| Box::new(r) as Reader),
            child,
            pty: None,
        })
    }
}

fn openpty() -> io::Result<(OwnedFd, OwnedFd)> {
    let (mut m, mut s) = (-1, -1);
    // SAFETY: openpty writes two fds into the locals; null name/termios/winsize are allowed.
    let rc = unsafe { libc::openpty(&mut m, &mut s, std::ptr::null_mut(), std::ptr::null(), std::ptr::null()) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both fds were just opened for us and are owned by nobody else.
    let (m, s) = unsafe { (OwnedFd::from_raw_fd(m), OwnedFd::from_raw_fd(s)) };
    // SAFETY: fcntl on an fd we own.
    unsafe { libc::fcntl(m.as_raw_fd(), libc::F_SETFD, libc::FD_CLOEXEC) };
    Ok((m, s))
}

/// Set the terminal's size (the client's resize channel).
pub fn resize(master: &OwnedFd, width: u16, height: u16) {
    let ws = libc::winsize {
        ws_row: height,
        ws_col: width,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads a winsize from the pointer; the fd is a pty master we own.
    unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ as _, &ws) };
}

/// A resize message (`{"Width": 80, "Height": 24}`, the stream's channel 4).
pub fn parse_resize(data: &[u8]) -> Option<(u16, u16)> {
    let v: serde_json::Value = serde_json::from_slice(data).ok()?;
    Some((
        u16::try_from(v["Width"].as_u64()?).ok()?,
        u16::try_from(v["Height"].as_u64()?).ok()?,
    ))
}

/// Some process of the group `pgid` still lives.
pub fn group_alive(pgid: i32) -> bool {
    // SAFETY: signal 0 only checks that the group exists.
    pgid > 0 && unsafe { libc::kill(-pgid, 0) } == 0
}

#[cfg(test)]
mod tests {
    #[test]
    fn resize_messages() {
        assert_eq!(super::parse_resize(br#"{"Width":100,"Height":40}"#), Some((100, 40)));
        assert_eq!(super::parse_resize(b"nope"), None);
    }
}
