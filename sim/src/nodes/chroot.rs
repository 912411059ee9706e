//! The per-node root directories sshd chroots into, under `/var/lib/aks-sim/<instance>/`.
//!
//! sshd's `ChrootDirectory` wants every component of the path root-owned and not group or
//! world writable, so they cannot live in the state directory (often under `/tmp`). Each
//! emulator instance gets `/var/lib/aks-sim/<pid>-<random>/` with an `owner.pid` marker; the
//! instance removes it at shutdown and a later start removes the leftovers of dead ones.
//!
//! A node root is cloned from a template built once per instance: directories are created,
//! files hard-linked (busybox, dash and its libraries, the shims), symlinks recreated, so a
//! node costs a couple of hundred cheap system calls. Per node are only the small files that
//! differ: `etc/` (passwd, hostname, os-release), the package state in `var/lib/aks-sim/`, the
//! reboot marker in `run/`, the kernels in `boot/`, and `proc/` (plain files standing in for
//! the kernel's: `stat` with `btime`, `sys/kernel/random/boot_id`, `sys/kernel/osrelease`).
//!
//! The login shell is Debian's dash, not busybox's ash: busybox-static is built to prefer its
//! own applets over `PATH`, so under ash `uname` would be busybox's (the host's kernel) whatever
//! the shims. dash looks commands up in `PATH` as Ubuntu's `/bin/sh` (which is dash) does.

use crate::model::NodeSpec;
use crate::scenario::{OsType, PackageUpdate, Timing};
use anyhow::{bail, Context, Result};
use std::cmp::Ordering;
use std::fs;
use std::io::Write;
use std::net::Ipv4Addr;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Where every instance keeps its node roots.
pub const BASE: &str = "/var/lib/aks-sim";

/// The host programs the nodes are made of.
#[derive(Debug, Clone)]
pub struct Tools {
    pub sshd: PathBuf,
    pub ssh_keygen: PathBuf,
    pub busybox: PathBuf,
    pub dash: PathBuf,
    /// The shared libraries dash loads, at the paths it asks for them (also their path in the chroot).
    pub dash_libs: Vec<PathBuf>,
}

fn first_existing(candidates: &[&str]) -> Option<PathBuf> {
    candidates.iter().map(PathBuf::from).find(|p| p.is_file())
}

impl Tools {
    pub fn find() -> Result<Tools> {
        let install = "install them with `apt-get install -y openssh-server busybox-static`";
        let sshd = first_existing(&["/usr/sbin/sshd"])
            .with_context(|| format!("sshd (Debian's openssh-server) is not installed at /usr/sbin/sshd: {install}"))?;
        let ssh_keygen = first_existing(&["/usr/bin/ssh-keygen"])
            .with_context(|| format!("ssh-keygen is not installed at /usr/bin/ssh-keygen: {install}"))?;
        let busybox = first_existing(&["/bin/busybox", "/usr/bin/busybox"])
            .with_context(|| format!("busybox is not installed (/bin/busybox): {install}"))?;
        let dash = first_existing(&["/usr/bin/dash", "/bin/dash"])
            .context("dash (Debian's /bin/sh) is not installed: install it with `apt-get install -y dash`")?;
        let dash_libs = shared_libraries(&dash)?;
        Ok(Tools {
            sshd,
            ssh_keygen,
            busybox,
            dash,
            dash_libs,
        })
    }
}

/// The shared libraries (and the dynamic loader) a program needs, from `ldd`.
fn shared_libraries(program: &Path) -> Result<Vec<PathBuf>> {
    let out = std::process::Command::new("ldd")
        .arg(program)
        .output()
        .with_context(|| {
            format!(
                "cannot run `ldd {}` to find the libraries dash needs",
                program.display()
            )
        })?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        if text.contains("not a dynamic executable") || String::from_utf8_lossy(&out.stderr).contains("not a dynamic") {
            return Ok(vec![]);
        }
        bail!(
            "`ldd {}` failed: {}",
            program.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let mut libs = vec![];
    for line in text.lines() {
        let line = line.trim();
        let path = match line.split_once("=>") {
            Some((_, rest)) => rest.trim().split(" (").next().unwrap_or("").trim(),
            None => line.split(" (").next().unwrap_or("").trim(),
        };
        if path.starts_with('/') {
            libs.push(PathBuf::from(path));
        }
    }
    Ok(libs)
}

/// The login user, as the host's passwd names it (sshd looks it up there before chrooting).
#[derive(Debug, Clone)]
pub struct HostUser {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub group: String,
    pub home: String,
    pub shell: String,
}

static USER_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn lookup_user(name: &str) -> Result<Option<HostUser>> {
    let passwd = fs::read_to_string("/etc/passwd").context("cannot read /etc/passwd")?;
    let Some(fields) = passwd
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.len() >= 7 && f[0] == name)
    else {
        return Ok(None);
    };
    let uid: u32 = fields[2].parse().context("bad uid in /etc/passwd")?;
    let gid: u32 = fields[3].parse().context("bad gid in /etc/passwd")?;
    let group = fs::read_to_string("/etc/group")
        .ok()
        .and_then(|g| {
            g.lines()
                .map(|l| l.split(':').collect::<Vec<_>>())
                .find(|f| f.len() >= 3 && f[2] == gid.to_string())
                .map(|f| f[0].to_string())
        })
        .unwrap_or_else(|| name.to_string());
    Ok(Some(HostUser {
        name: name.to_string(),
        uid,
        gid,
        group,
        home: if fields[5].starts_with('/') {
            fields[5].to_string()
        } else {
            format!("/home/{name}")
        },
        shell: if fields[6].starts_with('/') {
            fields[6].to_string()
        } else {
            "/bin/sh".into()
        },
    }))
}

fn run(cmd: &str, args: &[&str]) -> Result<()> {
    let out = std::process::Command::new(cmd)
        .args(args)
        .output()
        .with_context(|| format!("cannot run `{cmd}`"))?;
    if !out.status.success() {
        bail!(
            "`{cmd} {}` failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// Make sure the admin user exists on the host with a shell and an unlocked account (sshd
/// refuses a `!` password as locked), creating it (`useradd -m -s /bin/sh`) if missing.
pub fn ensure_user(name: &str) -> Result<HostUser> {
    if name.is_empty()
        || name.len() > 32
        || !name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
        || name.starts_with('-')
    {
        bail!("cluster.adminUsername `{name}` is not a valid Linux user name (lowercase letters, digits, '_', '-')");
    }
    if name == "root" {
        bail!("cluster.adminUsername cannot be `root`: sshd is configured with PermitRootLogin no, as on AKS");
    }
    let _guard = USER_LOCK.lock().unwrap_or_else(|p| p.into_inner());
    let mut tries = 0;
    let user = loop {
        if let Some(u) = lookup_user(name)? {
            break u;
        }
        tries += 1;
        // Another process may hold /etc/passwd's lock (useradd exits 10): try again.
        match run("useradd", &["-m", "-s", "/bin/sh", name]) {
            Ok(()) => {}
            Err(e) if tries < 10 => {
                tracing::debug!("useradd {name}: {e:#}; retrying");
                std::thread::sleep(std::time::Duration::from_millis(200));
            }
            Err(e) => {
                return Err(e.context(format!(
                    "cannot create the node login user `{name}` on this host (sshd looks users up in the host's /etc/passwd)"
                )))
            }
        }
    };
    let locked = fs::read_to_string("/etc/shadow")
        .ok()
        .and_then(|s| {
            s.lines()
                .map(|l| l.split(':').map(str::to_string).collect::<Vec<_>>())
                .find(|f| f.len() >= 2 && f[0] == name)
                .map(|f| f[1].starts_with('!'))
        })
        .unwrap_or(false);
    if locked {
        run("usermod", &["-p", "*", name])
            .with_context(|| format!("cannot unlock `{name}` for key login (sshd refuses locked accounts)"))?;
    }
    Ok(user)
}

/// `/var/lib/aks-sim` must be root-owned and not group/world writable, and so must `/var/lib`
/// and `/var` (sshd checks every component of a ChrootDirectory).
pub fn prepare_base() -> Result<PathBuf> {
    let base = PathBuf::from(BASE);
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(&base)
        .with_context(|| format!("cannot create {BASE} (aks-sim must run as root)"))?;
    std::os::unix::fs::chown(&base, Some(0), Some(0)).with_context(|| format!("cannot chown {BASE} to root"))?;
    fs::set_permissions(&base, fs::Permissions::from_mode(0o755))?;
    let mut p = base.as_path();
    while let Some(parent) = p.parent() {
        use std::os::unix::fs::MetadataExt;
        let md = fs::metadata(parent)?;
        if md.uid() != 0 || md.mode() & 0o022 != 0 {
            bail!(
                "{} is not owned by root or is group/world writable (mode {:o}); sshd refuses to chroot below it",
                parent.display(),
                md.mode() & 0o7777
            );
        }
        p = parent;
    }
    Ok(base)
}

fn pid_alive(pid: i32) -> bool {
    // SAFETY: kill with signal 0 only checks that the process exists.
    pid > 0
        && (unsafe { libc::kill(pid, 0) } == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM))
}

/// Remove what emulators that died without cleaning up left in `/var/lib/aks-sim`.
pub fn remove_leftovers(base: &Path) {
    let Ok(entries) = fs::read_dir(base) else { return };
    for e in entries.flatten() {
        let dir = e.path();
        if !dir.is_dir() || dir.is_symlink() {
            continue;
        }
        let owner = fs::read_to_string(dir.join("owner.pid"))
            .ok()
            .and_then(|s| s.trim().parse::<i32>().ok());
        let dead = match owner {
            Some(pid) => !pid_alive(pid),
            // Half-made by an instance that is starting right now, or junk: only old junk goes.
            None => e
                .metadata()
                .and_then(|m| m.modified())
                .map(|t| t.elapsed().map(|d| d.as_secs() > 120).unwrap_or(false))
                .unwrap_or(false),
        };
        if dead {
            let killed = kill_processes_under(&dir);
            tracing::info!(
                "removing {} left by a stopped aks-sim ({killed} processes killed)",
                dir.display()
            );
            if let Err(e) = fs::remove_dir_all(&dir) {
                tracing::warn!("cannot remove {}: {e}", dir.display());
            }
        }
    }
}

/// A new instance directory `<base>/<pid>-<random>` with its `owner.pid` marker.
pub fn create_instance(base: &Path) -> Result<PathBuf> {
    let id = format!(
        "{}-{}",
        std::process::id(),
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    let dir = base.join(id);
    fs::DirBuilder::new()
        .mode(0o755)
        .create(&dir)
        .with_context(|| format!("cannot create {}", dir.display()))?;
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o755))?;
    fs::write(dir.join("owner.pid"), format!("{}\n", std::process::id()))?;
    Ok(dir)
}

/// SIGKILL every process whose root directory is `dir` or below it (the node's processes:
/// the chrooted sshd session, the login shell and whatever it started). Returns how many.
pub fn kill_processes_under(dir: &Path) -> usize {
    let Ok(entries) = fs::read_dir("/proc") else { return 0 };
    let me = std::process::id() as i32;
    let mut n = 0;
    for e in entries.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        if pid == me {
            continue;
        }
        let Ok(root) = fs::read_link(e.path().join("root")) else {
            continue;
        };
        if root.starts_with(dir) {
            // SAFETY: sending a signal to a pid we just read; no memory is involved.
            if unsafe { libc::kill(pid, libc::SIGKILL) } == 0 {
                n += 1;
            }
        }
    }
    n
}

/// Write a file by replacing it (never through a hard link another node shares, never
/// following a symlink a user put there), with mode and owner.
pub fn put(path: &Path, contents: &[u8], mode: u32, owner: Option<(u32, u32)>) -> Result<()> {
    let tmp = path.with_extension(format!("aks-sim-{}", std::process::id()));
    let open = || {
        fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&tmp)
    };
    let mut f = match open() {
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            fs::remove_file(&tmp)?;
            open()
        }
        r => r,
    }
    .with_context(|| format!("cannot write {}", tmp.display()))?;
    f.write_all(contents)?;
    drop(f);
    fs::set_permissions(&tmp, fs::Permissions::from_mode(mode))?;
    if let Some((uid, gid)) = owner {
        std::os::unix::fs::chown(&tmp, Some(uid), Some(gid))?;
    }
    fs::rename(&tmp, path).with_context(|| format!("cannot replace {}", path.display()))?;
    Ok(())
}

fn mkdir(path: &Path, mode: u32, owner: Option<(u32, u32)>) -> Result<()> {
    match fs::DirBuilder::new().mode(mode).create(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e).with_context(|| format!("cannot create {}", path.display())),
    }
    fs::set_permissions(path, fs::Permissions::from_mode(mode))?;
    if let Some((uid, gid)) = owner {
        std::os::unix::fs::chown(path, Some(uid), Some(gid))?;
    }
    Ok(())
}

/// Hard-link `src` to `dst`, or copy it when they are on different filesystems.
fn link_or_copy(src: &Path, dst: &Path, mode: u32) -> Result<()> {
    if fs::hard_link(src, dst).is_ok() {
        return Ok(());
    }
    fs::copy(src, dst).with_context(|| format!("cannot copy {} to {}", src.display(), dst.display()))?;
    fs::set_permissions(dst, fs::Permissions::from_mode(mode))?;
    std::os::unix::fs::chown(dst, Some(0), Some(0))?;
    Ok(())
}

/// The relative symlink target from `link` (a path inside the root) to `target` (absolute inside the root).
fn relative_target(link: &str, target: &str) -> String {
    let depth = link.trim_start_matches('/').split('/').count().saturating_sub(1);
    let mut s = "../".repeat(depth);
    s.push_str(target.trim_start_matches('/'));
    s
}

/// busybox applets linked in every node's `/bin`. Not `sh` (dash), not the ones the shims
/// replace (uname, hostname, uptime, env, nohup, reboot, ...).
const APPLETS: &[&str] = &[
    "awk",
    "base64",
    "basename",
    "cat",
    "chmod",
    "clear",
    "cmp",
    "cp",
    "cut",
    "date",
    "dd",
    "df",
    "diff",
    "dirname",
    "du",
    "echo",
    "egrep",
    "expr",
    "false",
    "fgrep",
    "find",
    "free",
    "grep",
    "groups",
    "gunzip",
    "gzip",
    "head",
    "id",
    "less",
    "ln",
    "ls",
    "md5sum",
    "mkdir",
    "mktemp",
    "more",
    "mv",
    "nproc",
    "od",
    "printf",
    "pwd",
    "readlink",
    "realpath",
    "rm",
    "rmdir",
    "sed",
    "seq",
    "sha1sum",
    "sha256sum",
    "sleep",
    "sort",
    "stat",
    "sync",
    "tac",
    "tail",
    "tar",
    "tee",
    "test",
    "[",
    "timeout",
    "touch",
    "tr",
    "true",
    "uniq",
    "vi",
    "wc",
    "which",
    "whoami",
    "xargs",
    "yes",
    "zcat",
];

/// Shims in `/usr/bin` (name, script), each also reachable as `/bin/<name>`.
const USR_BIN_SHIMS: &[(&str, &str)] = &[
    ("apt-get", include_str!("shims/apt.sh")),
    ("apt", include_str!("shims/apt.sh")),
    ("tdnf", include_str!("shims/tdnf.sh")),
    ("needs-restarting", include_str!("shims/needs-restarting.sh")),
    ("rpm", include_str!("shims/rpm.sh")),
    ("sudo", include_str!("shims/sudo.sh")),
    ("uname", include_str!("shims/uname.sh")),
    ("uptime", include_str!("shims/uptime.sh")),
    ("hostname", include_str!("shims/hostname.sh")),
    ("nohup", include_str!("shims/nohup.sh")),
    ("env", include_str!("shims/env.sh")),
    ("lsb_release", include_str!("shims/lsb_release.sh")),
    ("systemctl", include_str!("shims/power.sh")),
];

/// Shims in `/usr/sbin`, each also reachable as `/sbin/<name>`.
const USR_SBIN_SHIMS: &[(&str, &str)] = &[
    ("reboot", include_str!("shims/power.sh")),
    ("shutdown", include_str!("shims/power.sh")),
    ("poweroff", include_str!("shims/power.sh")),
    ("halt", include_str!("shims/power.sh")),
];

/// Shims only Ubuntu nodes have (Azure Linux uses tdnf).
pub const APT_SHIMS: &[&str] = &["apt-get", "apt"];

/// Shims only Azure Linux nodes have.
pub const TDNF_SHIMS: &[&str] = &["tdnf", "needs-restarting", "rpm"];

/// Build the template every node root is cloned from.
pub fn build_template(instance: &Path, tools: &Tools, user: &HostUser, timing: &Timing) -> Result<PathBuf> {
    let t = instance.join("template");
    let uo = Some((user.uid, user.gid));
    let root = Some((0, 0));
    mkdir(&t, 0o755, root)?;
    for d in [
        "bin",
        "sbin",
        "usr",
        "usr/bin",
        "usr/sbin",
        "etc",
        "etc/aks-sim",
        "dev",
        "proc",
        "proc/sys",
        "proc/sys/kernel",
        "proc/sys/kernel/random",
        "var",
        "var/lib",
        "var/lib/dpkg",
        "home",
    ] {
        mkdir(&t.join(d), 0o755, root)?;
    }
    mkdir(&t.join("tmp"), 0o1777, root)?;
    mkdir(&t.join("var/tmp"), 0o1777, root)?;
    for d in ["run", "run/lock", "boot", "var/lib/aks-sim", "var/log"] {
        mkdir(&t.join(d), 0o755, uo)?;
    }
    // The home directory (sshd chdirs there after chrooting), owned by the user.
    let home = user.home.trim_start_matches('/');
    let mut acc = PathBuf::new();
    let parts: Vec<&str> = home.split('/').filter(|s| !s.is_empty()).collect();
    for (i, part) in parts.iter().enumerate() {
        acc.push(part);
        mkdir(&t.join(&acc), 0o755, if i + 1 == parts.len() { uo } else { root })?;
    }
    std::os::unix::fs::symlink("../run", t.join("var/run"))?;
    std::os::unix::fs::symlink("../run/lock", t.join("var/lock"))?;

    link_or_copy(&tools.busybox, &t.join("bin/busybox"), 0o755)?;
    link_or_copy(&tools.dash, &t.join("bin/dash"), 0o755)?;
    std::os::unix::fs::symlink("dash", t.join("bin/sh"))?;
    for lib in &tools.dash_libs {
        let rel = lib.strip_prefix("/").unwrap_or(lib);
        let dst = t.join(rel);
        if let Some(parent) = dst.parent() {
            fs::DirBuilder::new().recursive(true).mode(0o755).create(parent)?;
        }
        let real = fs::canonicalize(lib).with_context(|| format!("cannot resolve {}", lib.display()))?;
        if !dst.exists() {
            link_or_copy(&real, &dst, 0o755)?;
        }
    }
    for a in APPLETS {
        std::os::unix::fs::symlink("busybox", t.join("bin").join(a))?;
    }
    // The user's login shell as the host's passwd names it must exist inside the root.
    if user.shell != "/bin/sh" && user.shell != "/bin/dash" {
        let rel = user.shell.trim_start_matches('/');
        let dst = t.join(rel);
        if !dst.exists() && !dst.is_symlink() {
            if let Some(parent) = dst.parent() {
                fs::DirBuilder::new().recursive(true).mode(0o755).create(parent)?;
            }
            std::os::unix::fs::symlink(relative_target(&user.shell, "/bin/dash"), &dst)?;
        }
    }
    let mut written: Vec<(&str, PathBuf)> = vec![];
    for (dir, alias, shims) in [("usr/bin", "bin", USR_BIN_SHIMS), ("usr/sbin", "sbin", USR_SBIN_SHIMS)] {
        for (name, script) in shims {
            let dst = t.join(dir).join(name);
            // One inode per script: apt and apt-get, the power commands.
            if let Some((_, first)) = written.iter().find(|(s, _)| std::ptr::eq(*s, *script)) {
                fs::hard_link(first, &dst)?;
            } else {
                put(&dst, script.as_bytes(), 0o755, root)?;
                written.push((script, dst.clone()));
            }
            std::os::unix::fs::symlink(format!("../{dir}/{name}"), t.join(alias).join(name))?;
        }
    }
    put(
        &t.join("etc/aks-sim/timing"),
        format!(
            "# Written by aks-sim from the scenario's timing.\nAPT_SECONDS={}\nAPT_UPDATE_SECONDS={}\nAPT_DOWNLOAD_SECONDS={}\n",
            timing.apt_seconds.max(0.0),
            timing.apt_update_seconds.max(0.0),
            timing.apt_download_seconds.max(0.0)
        )
        .as_bytes(),
        0o644,
        root,
    )?;
    put(
        &t.join("etc/shells"),
        b"/bin/sh\n/bin/dash\n/usr/bin/dash\n",
        0o644,
        root,
    )?;
    put(&t.join("etc/debian_version"), b"bookworm/sid\n", 0o644, root)?;
    Ok(t)
}

/// Recreate `src` at `dst`: directories (mode and owner kept), files hard-linked, symlinks copied.
fn clone_tree(src: &Path, dst: &Path) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let md = fs::symlink_metadata(src)?;
    mkdir(dst, md.mode() & 0o7777, Some((md.uid(), md.gid())))?;
    for e in fs::read_dir(src)? {
        let e = e?;
        let from = e.path();
        let to = dst.join(e.file_name());
        let ft = e.file_type()?;
        if ft.is_dir() {
            clone_tree(&from, &to)?;
        } else if fs::hard_link(&from, &to).is_err() {
            // Linux links a symlink itself (linkat without AT_SYMLINK_FOLLOW), which costs a
            // directory entry where a new symlink costs an inode; recreate it if that fails.
            if ft.is_symlink() {
                std::os::unix::fs::symlink(fs::read_link(&from)?, &to)?;
            } else {
                fs::hard_link(&from, &to).with_context(|| format!("cannot link {}", to.display()))?;
            }
        }
    }
    Ok(())
}

/// The facts of a node a root is built from.
pub struct NodeFacts<'a> {
    pub spec: &'a NodeSpec,
    pub user: &'a HostUser,
    pub boot_id: &'a str,
    pub btime: i64,
}

fn is_azure_linux(spec: &NodeSpec) -> bool {
    spec.os_sku.eq_ignore_ascii_case("AzureLinux") || is_mariner(spec)
}

/// Azure Linux 2.0 (CBL-Mariner), out of support since 30 Nov 2025.
fn is_mariner(spec: &NodeSpec) -> bool {
    spec.os_sku.eq_ignore_ascii_case("CBLMariner")
}

fn os_release(spec: &NodeSpec) -> String {
    if is_mariner(spec) {
        "NAME=\"Common Base Linux Mariner\"\nVERSION=\"2.0.20250304\"\nID=mariner\nVERSION_ID=\"2.0\"\nPRETTY_NAME=\"CBL-Mariner/Linux\"\nANSI_COLOR=\"1;34\"\nHOME_URL=\"https://aka.ms/cbl-mariner\"\nBUG_REPORT_URL=\"https://aka.ms/cbl-mariner\"\nSUPPORT_URL=\"https://aka.ms/cbl-mariner\"\n".into()
    } else if is_azure_linux(spec) {
        "NAME=\"Microsoft Azure Linux\"\nVERSION=\"3.0.20250206\"\nID=azurelinux\nVERSION_ID=\"3.0\"\nPRETTY_NAME=\"Microsoft Azure Linux 3.0\"\nANSI_COLOR=\"1;34\"\nHOME_URL=\"https://aka.ms/azurelinux\"\nBUG_REPORT_URL=\"https://aka.ms/azurelinux\"\nSUPPORT_URL=\"https://aka.ms/azurelinux\"\n".into()
    } else {
        "PRETTY_NAME=\"Ubuntu 22.04.5 LTS\"\nNAME=\"Ubuntu\"\nVERSION_ID=\"22.04\"\nVERSION=\"22.04.5 LTS (Jammy Jellyfish)\"\nVERSION_CODENAME=jammy\nID=ubuntu\nID_LIKE=debian\nHOME_URL=\"https://www.ubuntu.com/\"\nSUPPORT_URL=\"https://help.ubuntu.com/\"\nBUG_REPORT_URL=\"https://bugs.launchpad.net/ubuntu/\"\nPRIVACY_POLICY_URL=\"https://www.ubuntu.com/legal/terms-and-policies/privacy-policy\"\nUBUNTU_CODENAME=jammy\n".into()
    }
}

/// One line of the pending list the apt shim reads: `name from to pocket kernel reboot`.
pub fn pending_line(u: &PackageUpdate) -> String {
    format!(
        "{} {} {} {} {} {}\n",
        u.name,
        u.from,
        u.to,
        u.pocket,
        u.kernel.as_deref().unwrap_or("-"),
        if u.reboot_required { 1 } else { 0 }
    )
}

/// The Debian version of a kernel's `linux-image-<kernel>` package (`5.15.0-1068-azure` ->
/// `5.15.0-1068.77`); the upload number is made up but stable.
pub fn kernel_package_version(kernel: &str) -> String {
    let base = match kernel.rsplit_once('-') {
        Some((b, flavour)) if flavour.chars().next().is_some_and(|c| c.is_ascii_alphabetic()) => b,
        _ => kernel,
    };
    let upload = kernel
        .bytes()
        .fold(7u32, |h, b| h.wrapping_mul(31).wrapping_add(b as u32))
        % 90
        + 10;
    format!("{base}.{upload}")
}

/// Build one node's root from the template.
pub fn build_node(template: &Path, root: &Path, f: &NodeFacts) -> Result<()> {
    let spec = f.spec;
    let user = f.user;
    let uo = Some((user.uid, user.gid));
    let ro = Some((0, 0));
    clone_tree(template, root).with_context(|| format!("cannot build the root of node {}", spec.name))?;
    let other_shims = if is_azure_linux(spec) { APT_SHIMS } else { TDNF_SHIMS };
    for s in other_shims {
        let _ = fs::remove_file(root.join("usr/bin").join(s));
        let _ = fs::remove_file(root.join("bin").join(s));
    }
    let null = std::ffi::CString::new(root.join("dev/null").as_os_str().as_encoded_bytes())?;
    // SAFETY: mknod on a NUL-terminated path we own; no memory is shared.
    if unsafe { libc::mknod(null.as_ptr(), libc::S_IFCHR | 0o666, libc::makedev(1, 3)) } != 0 {
        return Err(std::io::Error::last_os_error())
            .context("cannot create dev/null in a node root (mknod needs root)");
    }
    fs::set_permissions(root.join("dev/null"), fs::Permissions::from_mode(0o666))?;

    let etc = root.join("etc");
    put(
        &etc.join("passwd"),
        format!(
            "root:x:0:0:root:/root:/bin/sh\n{}:x:{}:{}::{}:{}\n",
            user.name, user.uid, user.gid, user.home, user.shell
        )
        .as_bytes(),
        0o644,
        ro,
    )?;
    put(
        &etc.join("group"),
        format!("root:x:0:\nsudo:x:27:{}\n{}:x:{}:\n", user.name, user.group, user.gid).as_bytes(),
        0o644,
        ro,
    )?;
    put(&etc.join("hostname"), format!("{}\n", spec.name).as_bytes(), 0o644, ro)?;
    put(
        &etc.join("hosts"),
        format!("127.0.0.1 localhost\n{} {}\n", spec.ip, spec.name).as_bytes(),
        0o644,
        ro,
    )?;
    put(&etc.join("os-release"), os_release(spec).as_bytes(), 0o644, ro)?;
    put(&etc.join("aks-sim/ip"), format!("{}\n", spec.ip).as_bytes(), 0o644, ro)?;
    put(
        &etc.join("aks-sim/node"),
        format!("{}\n", spec.name).as_bytes(),
        0o644,
        ro,
    )?;

    // Package state, owned by the user the apt shim runs as.
    let state = root.join("var/lib/aks-sim");
    let pending: String = spec.updates.iter().map(pending_line).collect();
    put(&state.join("pending"), pending.as_bytes(), 0o644, uo)?;
    let mut installed: String = spec
        .updates
        .iter()
        .map(|u| format!("{} {}\n", u.name, u.from))
        .collect();
    let mut kernels = vec![spec.kernel.clone()];
    // Ubuntu names the kernel's package `linux-image-<release>`; Azure Linux `kernel`.
    let kernel_prefix = if is_azure_linux(spec) {
        "kernel-"
    } else {
        "linux-image-"
    };
    for p in &spec.reboot_required {
        if let Some(k) = p.strip_prefix(kernel_prefix) {
            kernels.push(k.to_string());
        }
    }
    for k in &kernels {
        if is_azure_linux(spec) {
            installed.push_str(&format!("kernel {k}\n"));
        } else {
            installed.push_str(&format!("linux-image-{k} {}\n", kernel_package_version(k)));
        }
        put(
            &root.join("boot").join(format!("vmlinuz-{k}")),
            format!("aks-sim kernel image {k}\n").as_bytes(),
            0o644,
            uo,
        )?;
    }
    put(&state.join("installed"), installed.as_bytes(), 0o644, uo)?;
    put(&state.join("requests"), b"", 0o644, uo)?;
    if is_azure_linux(spec) {
        // Updated since boot by dnf-automatic, and the daily check-restart timer has not run
        // yet: no marker, only what `needs-restarting -r` sees (a newer kernel in /boot, and
        // these packages).
        let restart: String = spec
            .reboot_required
            .iter()
            .filter(|p| !p.starts_with(kernel_prefix))
            .map(|p| format!("{p}\n"))
            .collect();
        if !restart.is_empty() {
            put(&root.join("run/aks-sim-restart"), restart.as_bytes(), 0o644, uo)?;
        }
    } else if !spec.reboot_required.is_empty() {
        put(
            &root.join("run/reboot-required"),
            b"*** System restart required ***\n",
            0o644,
            uo,
        )?;
        let pkgs: String = spec.reboot_required.iter().map(|p| format!("{p}\n")).collect();
        put(&root.join("run/reboot-required.pkgs"), pkgs.as_bytes(), 0o644, uo)?;
    }
    write_boot_files(root, spec, &spec.kernel, f.boot_id, f.btime)?;
    Ok(())
}

/// The bastion's host name, and the node name its SSH sessions are logged under.
pub const BASTION: &str = "bastion";

/// The kernel the bastion reports: an Ubuntu 22.04 jump box on the HWE Azure kernel, unlike
/// any node's, so that a test can tell who answered.
pub const BASTION_KERNEL: &str = "6.5.0-1025-azure";

/// A node's shims the bastion has none of: no package updates to apply, and nothing there
/// would act on a reboot request (the power shim would wait forever).
const NOT_ON_BASTION: &[&str] = &[
    "apt-get",
    "apt",
    "tdnf",
    "needs-restarting",
    "rpm",
    "systemctl",
    "reboot",
    "shutdown",
    "poweroff",
    "halt",
];

/// Build the bastion's root from the template: the same shell, busybox applets, `sudo`,
/// `uname`, `hostname` and `uptime` as a node, without the package and power shims or the
/// package state.
pub fn build_bastion(
    template: &Path,
    root: &Path,
    user: &HostUser,
    ip: Ipv4Addr,
    boot_id: &str,
    btime: i64,
) -> Result<()> {
    let spec = NodeSpec {
        name: BASTION.into(),
        pool: String::new(),
        pool_index: 0,
        instance: 0,
        os_type: OsType::Linux,
        os_sku: "Ubuntu".into(),
        ip,
        index: 0,
        kernel: BASTION_KERNEL.into(),
        os_image: "Ubuntu 22.04.5 LTS".into(),
        node_image_version: String::new(),
        vm_size: "Standard_B1s".into(),
        zone: None,
        ssh_access: true,
        mode: String::new(),
        updates: vec![],
        reboot_required: vec![],
        cordoned: false,
    };
    let facts = NodeFacts {
        spec: &spec,
        user,
        boot_id,
        btime,
    };
    build_node(template, root, &facts).context("cannot build the root of the bastion")?;
    for dir in ["usr/bin", "bin", "usr/sbin", "sbin"] {
        for name in NOT_ON_BASTION {
            match fs::remove_file(root.join(dir).join(name)) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(e).with_context(|| format!("cannot remove {dir}/{name} from the bastion's root"))
                }
                _ => {}
            }
        }
    }
    fs::remove_dir_all(root.join("var/lib/aks-sim"))
        .context("cannot remove the package state from the bastion's root")?;
    Ok(())
}

/// The `/proc` stand-ins the emulator rewrites at every boot.
pub fn write_boot_files(root: &Path, spec: &NodeSpec, kernel: &str, boot_id: &str, btime: i64) -> Result<()> {
    let ro = Some((0, 0));
    let proc_ = root.join("proc");
    put(
        &proc_.join("stat"),
        format!(
            "cpu  0 0 0 0 0 0 0 0 0 0\nintr 0\nctxt 0\nbtime {btime}\nprocesses 1\nprocs_running 1\nprocs_blocked 0\nsoftirq 0\n"
        )
        .as_bytes(),
        0o444,
        ro,
    )?;
    put(
        &proc_.join("sys/kernel/random/boot_id"),
        format!("{boot_id}\n").as_bytes(),
        0o444,
        ro,
    )?;
    put(
        &proc_.join("sys/kernel/osrelease"),
        format!("{kernel}\n").as_bytes(),
        0o444,
        ro,
    )?;
    put(
        &proc_.join("sys/kernel/hostname"),
        format!("{}\n", spec.name).as_bytes(),
        0o444,
        ro,
    )?;
    let build = kernel_package_version(kernel)
        .rsplit('.')
        .next()
        .unwrap_or("1")
        .to_string();
    let version = if is_azure_linux(spec) {
        "#1 SMP PREEMPT_DYNAMIC Sat Jan 11 03:41:10 UTC 2025".to_string()
    } else {
        format!("#{build}-Ubuntu SMP Tue Jan 14 17:42:13 UTC 2025")
    };
    put(
        &proc_.join("sys/kernel/version"),
        format!("{version}\n").as_bytes(),
        0o444,
        ro,
    )?;
    put(
        &proc_.join("version"),
        format!(
            "Linux version {kernel} (buildd@lcy02-amd64-089) (x86_64-linux-gnu-gcc-11 (Ubuntu 11.4.0-1ubuntu1~22.04) 11.4.0, GNU ld (GNU Binutils for Ubuntu) 2.38) {version}\n"
        )
        .as_bytes(),
        0o444,
        ro,
    )?;
    Ok(())
}

/// Compare version strings the way people read them: digit runs as numbers, the rest as text
/// (`5.15.0-1073-azure` > `5.15.0-999-azure`).
pub fn version_cmp(a: &str, b: &str) -> Ordering {
    fn chunks(s: &str) -> Vec<(bool, &str)> {
        let mut out = vec![];
        let mut start = 0;
        let bytes = s.as_bytes();
        for i in 1..=bytes.len() {
            if i == bytes.len() || bytes[i].is_ascii_digit() != bytes[start].is_ascii_digit() {
                out.push((bytes[start].is_ascii_digit(), &s[start..i]));
                start = i;
            }
        }
        out
    }
    let (ca, cb) = (chunks(a), chunks(b));
    for (x, y) in ca.iter().zip(cb.iter()) {
        let ord = match (x, y) {
            ((true, x), (true, y)) => {
                let (x, y) = (x.trim_start_matches('0'), y.trim_start_matches('0'));
                x.len().cmp(&y.len()).then_with(|| x.cmp(y))
            }
            ((_, x), (_, y)) => x.cmp(y),
        };
        if ord != Ordering::Equal {
            return ord;
        }
    }
    ca.len().cmp(&cb.len())
}

/// Reimage a node root to a newer node image that has the pending updates in it: nothing
/// pending, every update installed at its new version, new kernels in `boot/` (the next boot
/// runs the newest).
pub fn reimage(root: &Path, updates: &[PackageUpdate]) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let state = root.join("var/lib/aks-sim");
    let md = fs::metadata(state.join("pending"))?;
    let uo = Some((md.uid(), md.gid()));
    let mut installed: Vec<(String, String)> = fs::read_to_string(state.join("installed"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_once(' ').map(|(a, b)| (a.to_string(), b.to_string())))
        .collect();
    let mut set = |name: String, version: String| match installed.iter_mut().find(|(n, _)| *n == name) {
        Some(e) => e.1 = version,
        None => installed.push((name, version)),
    };
    for u in updates {
        set(u.name.clone(), u.to.clone());
        if let Some(k) = &u.kernel {
            set(format!("linux-image-{k}"), kernel_package_version(k));
            put(
                &root.join("boot").join(format!("vmlinuz-{k}")),
                format!("aks-sim kernel image {k}\n").as_bytes(),
                0o644,
                uo,
            )?;
        }
    }
    let text: String = installed.iter().map(|(n, v)| format!("{n} {v}\n")).collect();
    put(&state.join("installed"), text.as_bytes(), 0o644, uo)?;
    put(&state.join("pending"), b"", 0o644, uo)?;
    Ok(())
}

/// The kernels installed in a node root (`boot/vmlinuz-*`), oldest first.
pub fn installed_kernels(root: &Path) -> Vec<String> {
    let mut ks: Vec<String> = fs::read_dir(root.join("boot"))
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| {
                    e.file_name()
                        .to_str()
                        .and_then(|n| n.strip_prefix("vmlinuz-"))
                        .filter(|k| !k.is_empty())
                        .map(str::to_string)
                })
                .collect()
        })
        .unwrap_or_default();
    ks.sort_by(|a, b| version_cmp(a, b));
    ks
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_compare_numerically() {
        assert_eq!(version_cmp("5.15.0-1073-azure", "5.15.0-1068-azure"), Ordering::Greater);
        assert_eq!(version_cmp("5.15.0-999-azure", "5.15.0-1068-azure"), Ordering::Less);
        assert_eq!(version_cmp("6.8.0-1020-azure", "5.15.0-1073-azure"), Ordering::Greater);
        assert_eq!(version_cmp("5.15.0-1073-azure", "5.15.0-1073-azure"), Ordering::Equal);
    }

    #[test]
    fn kernel_package_versions_drop_the_flavour() {
        assert!(kernel_package_version("5.15.0-1073-azure").starts_with("5.15.0-1073."));
        assert!(kernel_package_version("6.6.64.2-9.azl3").starts_with("6.6.64.2-9.azl3."));
    }

    #[test]
    fn relative_links_climb_to_the_root() {
        assert_eq!(relative_target("/bin/bash", "/bin/dash"), "../bin/dash");
        assert_eq!(relative_target("/usr/bin/zsh", "/bin/dash"), "../../bin/dash");
    }
}
