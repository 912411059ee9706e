//! The machines behind the nodes: a chroot per Linux node under `/var/lib/aks-sim`, real SSH
//! into it (Debian's sshd, one config, started per connection on the node's address), shims
//! for apt/uname/sudo/reboot inside, and the reboot lifecycle ([`run`]). The bastion (jump
//! host) is served the same way on `<prefix>.254`, outside the node lifecycle and faults.
//!
//! - [`chroot`]: the node roots and the package state the shims keep there.
//! - [`sshd`]: keys, the one `sshd_config`, config checks.
//! - [`lifecycle`]: the requests the shims leave (reboot, apt events) and the reboot timeline.

pub mod chroot;
pub mod containers;
mod kubelet;
mod lifecycle;
pub mod pod_logs;
pub mod proc;
pub mod sshd;

use crate::events::kinds;
use crate::faults::Fault;
use crate::time::unix_now;
use crate::Shared;
use anyhow::Context;
use serde_json::{json, Value};
use std::collections::{BTreeSet, HashMap};
use std::net::{Ipv4Addr, SocketAddr};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Instant;

pub use lifecycle::run;

/// Where a machine is in its reboot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    Running,
    /// Reboot requested; the kubelet has not been missed yet.
    ShuttingDown,
    /// Off (Node Unknown); boots when its time comes (never, with node-never-returns).
    Down,
    /// Booted, SSH answers, the kubelet is not Ready yet.
    Booting,
}

impl Phase {
    fn as_str(self) -> &'static str {
        match self {
            Phase::Running => "running",
            Phase::ShuttingDown => "shutting-down",
            Phase::Down => "down",
            Phase::Booting => "booting",
        }
    }
}

pub(crate) struct MachineState {
    pub phase: Phase,
    /// Our handle on the listening socket (the accept task has a duplicate).
    listener: Option<std::net::TcpListener>,
    accept_task: Option<tokio::task::JoinHandle<()>>,
    /// Bumped at every open and close, so an accept task knows it is stale.
    listen_gen: u64,
    /// sshd processes serving this node (each leads its own process group).
    sessions: BTreeSet<u32>,
    connections: u64,
    pub boot_id: String,
    pub kernel: String,
    pub requests_offset: u64,
    /// `shutdown -r +N`: when, and the command.
    pub reboot_at: Option<(Instant, String)>,
    /// When the kubelet stops during a shutdown (its Lease is no longer renewed from then).
    pub kubelet_stop_at: Option<Instant>,
    pub boot_at: Option<Instant>,
    pub ready_at: Option<Instant>,
    pub fast: bool,
}

/// One emulated machine.
pub(crate) struct Machine {
    pub name: String,
    pub ip: Ipv4Addr,
    /// Linux and its pool allows SSH.
    pub serves_ssh: bool,
    /// The node's root directory (Linux nodes only).
    pub root: Option<PathBuf>,
    /// The kernel a Windows node reports (it has no root).
    static_kernel: String,
    st: Mutex<MachineState>,
}

impl Machine {
    pub(crate) fn lock(&self) -> MutexGuard<'_, MachineState> {
        self.st.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// How sshd is started for a connection.
struct SshCtx {
    sshd: PathBuf,
    config: PathBuf,
    log: PathBuf,
}

/// The SSH side of the nodes: their roots, listeners and sessions.
pub struct NodeRuntime {
    instance: PathBuf,
    machines: Vec<Arc<Machine>>,
    /// The jump host, when the scenario has one (not a node: no reboots, no faults).
    bastion: Option<Arc<Machine>>,
    by_name: HashMap<String, usize>,
    ssh: Arc<SshCtx>,
    port: u16,
    handle: tokio::runtime::Handle,
    shared: Weak<Shared>,
    stopped: AtomicBool,
    /// Every sshd we started, to reap at shutdown.
    started_pids: Arc<Mutex<BTreeSet<u32>>>,
}

/// Removes a half-built instance directory if start fails.
struct InstanceGuard(Option<PathBuf>);

impl Drop for InstanceGuard {
    fn drop(&mut self) {
        if let Some(dir) = self.0.take() {
            chroot::kill_processes_under(&dir);
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
}

impl NodeRuntime {
    /// Build every Linux node's root, the SSH keys and config, and listen on every node
    /// address whose pool allows SSH. Needs root (chroots, mknod, the login user).
    pub async fn start(shared: &Arc<Shared>) -> anyhow::Result<NodeRuntime> {
        let t0 = Instant::now();
        let linux_nodes = shared.nodes.iter().filter(|n| n.is_linux()).count();
        let mut machines = vec![];
        let handle = tokio::runtime::Handle::current();
        let age = shared.scenario.cluster.age_days as i64 * 86_400;
        let btime = unix_now() - age.max(600);
        let mut guard = InstanceGuard(None);
        let mut ssh_ctx = SshCtx {
            sshd: PathBuf::from("/usr/sbin/sshd"),
            config: shared.state_dir.join("ssh/sshd_config"),
            log: shared.state_dir.join("ssh/sshd.log"),
        };
        let mut instance = PathBuf::new();
        let mut bastion = None;
        if linux_nodes > 0 {
            // SAFETY: geteuid has no preconditions.
            if unsafe { libc::geteuid() } != 0 {
                anyhow::bail!(
                    "aks-sim must run as root to build the SSH-able nodes: sshd's ChrootDirectory needs \
                     root-owned directories under /var/lib/aks-sim, and the login user `{}` must exist \
                     on this host. Run it with sudo.",
                    shared.scenario.cluster.admin_username
                );
            }
            let shared2 = shared.clone();
            let built = tokio::task::spawn_blocking(move || build_all(&shared2, btime))
                .await
                .context("building the node roots panicked")??;
            guard.0 = Some(built.instance.clone());
            instance = built.instance;
            ssh_ctx.sshd = built.sshd;
            ssh_ctx.config = built.files.config;
            ssh_ctx.log = built.files.log;
            bastion = built.bastion.map(|(ip, root)| new_bastion_machine(ip, root));
            let mut roots = built.roots.into_iter();
            for n in &shared.nodes {
                let root = if n.is_linux() { roots.next() } else { None };
                machines.push(new_machine(shared, n, root));
            }
        } else {
            for n in &shared.nodes {
                machines.push(new_machine(shared, n, None));
            }
        }
        let rt = NodeRuntime {
            by_name: machines.iter().enumerate().map(|(i, m)| (m.name.clone(), i)).collect(),
            machines,
            bastion,
            instance,
            ssh: Arc::new(ssh_ctx),
            port: shared.scenario.ssh_port,
            handle,
            shared: Arc::downgrade(shared),
            stopped: AtomicBool::new(false),
            started_pids: Arc::new(Mutex::new(BTreeSet::new())),
        };
        for m in rt.machines.iter().chain(&rt.bastion) {
            if !m.serves_ssh {
                continue;
            }
            let mut st = m.lock();
            if let Err(e) = rt.open_ssh(m, &mut st) {
                let hint = if e.kind() == std::io::ErrorKind::AddrInUse {
                    format!(
                        ": something already listens on port {} there (the host's own sshd on 0.0.0.0:{}?); \
                         stop it or set `sshPort` in the scenario to a free port",
                        rt.port, rt.port
                    )
                } else {
                    String::new()
                };
                let what = if rt.bastion.as_ref().is_some_and(|b| Arc::ptr_eq(b, m)) {
                    "the bastion; `bastion: false` in the scenario turns it off".to_string()
                } else {
                    format!("node {}", m.name)
                };
                return Err(anyhow::Error::new(e)
                    .context(format!("cannot listen for SSH on {}:{} ({what}){hint}", m.ip, rt.port)));
            }
        }
        guard.0 = None;
        tracing::info!(
            "{} node roots under {} and SSH on {} addresses ready in {:.2}s{}",
            linux_nodes,
            rt.instance.display(),
            rt.machines.iter().filter(|m| m.serves_ssh).count(),
            t0.elapsed().as_secs_f64(),
            match &rt.bastion {
                Some(b) => format!("; bastion on {}:{}", b.ip, rt.port),
                None => String::new(),
            }
        );
        Ok(rt)
    }

    pub(crate) fn machines(&self) -> &[Arc<Machine>] {
        &self.machines
    }

    fn machine(&self, name: &str) -> Option<&Arc<Machine>> {
        self.by_name.get(name).map(|i| &self.machines[*i])
    }

    /// The directory under `/var/lib/aks-sim` this emulator's node roots live in.
    pub fn instance_dir(&self) -> &Path {
        &self.instance
    }

    /// A node's root directory (Linux nodes).
    pub fn node_root(&self, node: &str) -> Option<&Path> {
        self.machine(node).and_then(|m| m.root.as_deref())
    }

    /// The machine is on (its kubelet can serve exec): running or booting.
    /// The machine's current boot ID (a reboot changes it).
    pub fn boot_id(&self, node: &str) -> Option<String> {
        self.machine(node).map(|m| m.lock().boot_id.clone())
    }

    pub fn machine_up(&self, node: &str) -> bool {
        self.machine(node)
            .is_some_and(|m| matches!(m.lock().phase, Phase::Running | Phase::Booting))
    }

    /// The bastion as `aks-sim status` shows it (null without one).
    pub fn bastion_status(&self) -> Value {
        let Some(m) = &self.bastion else {
            return Value::Null;
        };
        let st = m.lock();
        json!({
            "name": m.name,
            "ip": m.ip.to_string(),
            "port": self.port,
            "sshUp": st.listener.is_some(),
            "sessions": st.sessions.len(),
            "connections": st.connections,
            "root": m.root.as_ref().map(|r| r.display().to_string()),
        })
    }

    /// A fault was set: act on the machine now (SSH) or on the node's files (dpkg lock, apt).
    pub fn fault_changed(&self, shared: &Shared, fault: &Fault) {
        let write_fault_file = |m: &Machine, file: &str, contents: Option<String>| {
            let Some(root) = &m.root else { return };
            let path = root.join("etc/aks-sim").join(file);
            let res = match contents {
                Some(c) => chroot::put(&path, c.as_bytes(), 0o644, Some((0, 0))),
                None => match std::fs::remove_file(&path) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
                    _ => Ok(()),
                },
            };
            if let Err(e) = res {
                tracing::warn!("node {}: cannot update {}: {e:#}", m.name, path.display());
            }
        };
        match fault {
            Fault::SshDown { node } => {
                if let Some(m) = self.machine(node) {
                    let mut st = m.lock();
                    if self.close_ssh(&mut st) {
                        shared
                            .events
                            .record(kinds::SSH_DOWN, Some(node), None, "fault ssh-down");
                    }
                    kill_sessions(&st);
                }
            }
            Fault::SshHang { node } => {
                // The live sessions die; new connections hang (see `serve`).
                if let Some(m) = self.machine(node) {
                    kill_sessions(&m.lock());
                }
            }
            Fault::SshUp { node } => {
                if let Some(m) = self.machine(node) {
                    let mut st = m.lock();
                    self.reopen_after_fault(shared, m, &mut st);
                }
            }
            Fault::DpkgLock { node, seconds } => {
                if let Some(m) = self.machine(node) {
                    let until = unix_now() + seconds.max(0.0).ceil() as i64;
                    write_fault_file(m, "dpkg-lock-until", Some(format!("{until}\n")));
                }
            }
            Fault::AptFailure { node } => {
                if let Some(m) = self.machine(node) {
                    write_fault_file(m, "apt-failure", Some("503 Service Unavailable\n".into()));
                }
            }
            Fault::Clear => {
                for m in &self.machines {
                    write_fault_file(m, "dpkg-lock-until", None);
                    write_fault_file(m, "apt-failure", None);
                    let mut st = m.lock();
                    self.reopen_after_fault(shared, m, &mut st);
                }
            }
            // Read when the node reboots.
            Fault::NodeNeverReturns { .. } | Fault::SlowReboot { .. } => {}
            _ => {}
        }
    }

    fn reopen_after_fault(&self, shared: &Shared, m: &Arc<Machine>, st: &mut MachineState) {
        if !m.serves_ssh || st.listener.is_some() || shared.faults.ssh_down(&m.name) {
            return;
        }
        if !matches!(st.phase, Phase::Running | Phase::Booting) {
            return; // comes back with the boot
        }
        match self.open_ssh(m, st) {
            Ok(true) => shared
                .events
                .record(kinds::SSH_UP, Some(&m.name), None, "fault cleared"),
            Ok(false) => {}
            Err(e) => tracing::warn!("node {}: cannot listen for SSH again: {e:#}", m.name),
        }
    }

    /// What the machine looks like from inside: SSH, kernels, reboot marker, pending updates.
    pub fn machine_status(&self, _shared: &Shared, node: &str) -> Value {
        let Some(m) = self.machine(node) else {
            return Value::Null;
        };
        let st = m.lock();
        let Some(root) = &m.root else {
            return json!({
                "sshUp": false,
                "sessions": 0,
                "connections": 0,
                "runningKernel": m.static_kernel,
                "installedKernels": [],
                "rebootRequired": false,
                "rebootPackages": [],
                "pendingUpdates": [],
                "phase": st.phase.as_str(),
            });
        };
        let pending: Vec<Value> = std::fs::read_to_string(root.join("var/lib/aks-sim/pending"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                (f.len() >= 6).then(|| {
                    json!({
                        "name": f[0], "from": f[1], "to": f[2], "pocket": f[3],
                        "kernel": (f[4] != "-").then_some(f[4]),
                        "rebootRequired": f[5] == "1",
                    })
                })
            })
            .collect();
        let reboot_pkgs: Vec<String> = std::fs::read_to_string(root.join("run/reboot-required.pkgs"))
            .unwrap_or_default()
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(str::to_string)
            .collect();
        json!({
            "sshUp": st.listener.is_some(),
            "sessions": st.sessions.len(),
            "connections": st.connections,
            "runningKernel": st.kernel,
            "installedKernels": chroot::installed_kernels(root),
            "rebootRequired": root.join("run/reboot-required").exists(),
            "rebootPackages": reboot_pkgs,
            "pendingUpdates": pending,
            "phase": st.phase.as_str(),
            "bootId": st.boot_id,
            "root": root.display().to_string(),
        })
    }

    /// Stop listening, kill every node process and sshd, remove the node roots.
    pub fn shutdown(&self) {
        if self.stopped.swap(true, Ordering::SeqCst) {
            return;
        }
        for m in self.machines.iter().chain(&self.bastion) {
            let mut st = m.lock();
            self.close_ssh(&mut st);
            power_off(m, &st);
        }
        if self.instance.as_os_str().is_empty() {
            return;
        }
        chroot::kill_processes_under(&self.instance);
        // Reap the sshd processes we started (their wait tasks may be gone with the runtime).
        let pids: Vec<u32> = self
            .started_pids
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .copied()
            .collect();
        let deadline = Instant::now() + std::time::Duration::from_secs(2);
        for pid in pids {
            loop {
                let mut status = 0;
                // SAFETY: waitpid on a child pid we started, with a valid status pointer.
                let r = unsafe { libc::waitpid(pid as i32, &mut status, libc::WNOHANG) };
                if r != 0 || Instant::now() >= deadline {
                    break; // reaped, or not ours to reap any more (ECHILD)
                }
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
        }
        // Thousands of node roots: remove them a few at a time in parallel first.
        if let Ok(rd) = std::fs::read_dir(&self.instance) {
            let roots: Vec<PathBuf> = rd.flatten().map(|e| e.path()).collect();
            let chunk = roots.len().div_ceil(4).max(1);
            std::thread::scope(|scope| {
                for part in roots.chunks(chunk) {
                    scope.spawn(move || {
                        for r in part {
                            let _ = std::fs::remove_dir_all(r);
                        }
                    });
                }
            });
        }
        for attempt in 0..3 {
            match std::fs::remove_dir_all(&self.instance) {
                Ok(()) => break,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => break,
                Err(e) if attempt == 2 => {
                    tracing::warn!("cannot remove {}: {e}", self.instance.display())
                }
                Err(_) => {
                    chroot::kill_processes_under(&self.instance);
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
            }
        }
    }

    /// Listen on the node's address again. Ok(true) when it was closed and is now open.
    pub(crate) fn open_ssh(&self, m: &Arc<Machine>, st: &mut MachineState) -> std::io::Result<bool> {
        if !m.serves_ssh || st.listener.is_some() || self.stopped.load(Ordering::SeqCst) {
            return Ok(false);
        }
        // std sets SO_REUSEADDR on listeners, so a reboot's close and reopen never collide.
        let l = std::net::TcpListener::bind(SocketAddr::from((m.ip, self.port)))?;
        l.set_nonblocking(true)?;
        let dup = l.try_clone()?;
        st.listen_gen += 1;
        st.listener = Some(l);
        let task = self.handle.spawn(accept_loop(
            dup,
            m.clone(),
            self.ssh.clone(),
            self.shared.clone(),
            self.started_pids.clone(),
            st.listen_gen,
        ));
        st.accept_task = Some(task);
        Ok(true)
    }

    /// Stop listening: connections are refused from now on. true when it was open.
    pub(crate) fn close_ssh(&self, st: &mut MachineState) -> bool {
        let Some(l) = st.listener.take() else {
            return false;
        };
        // shutdown() on a listening socket stops it at once for every descriptor of it
        // (the accept task's duplicate included), resetting queued connections.
        // SAFETY: shutdown on a descriptor we own.
        unsafe { libc::shutdown(l.as_raw_fd(), libc::SHUT_RDWR) };
        drop(l);
        st.listen_gen += 1;
        if let Some(t) = st.accept_task.take() {
            t.abort();
        }
        true
    }
}

impl Drop for NodeRuntime {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Everything `start` builds off the async runtime.
struct Built {
    instance: PathBuf,
    sshd: PathBuf,
    files: sshd::SshFiles,
    /// The root of every Linux node, in scenario order.
    roots: Vec<PathBuf>,
    /// The bastion's address and root.
    bastion: Option<(Ipv4Addr, PathBuf)>,
}

fn build_all(shared: &Shared, btime: i64) -> anyhow::Result<Built> {
    let tools = chroot::Tools::find()?;
    let base = chroot::prepare_base()?;
    chroot::remove_leftovers(&base);
    let instance = chroot::create_instance(&base)?;
    let mut guard = InstanceGuard(Some(instance.clone()));
    let user = chroot::ensure_user(&shared.scenario.cluster.admin_username)?;
    let files = sshd::prepare(&tools, &shared.state_dir, &instance)?;
    let template = chroot::build_template(&instance, &tools, &user, &shared.scenario.timing)?;
    let empty = instance.join("no-such-node");
    std::fs::create_dir(&empty)?;
    let linux: Vec<&crate::model::NodeSpec> = shared.nodes.iter().filter(|n| n.is_linux()).collect();
    let roots: Vec<PathBuf> = linux.iter().map(|n| instance.join(&n.name)).collect();
    // A few builders at once: creating directory entries mostly waits on the filesystem.
    let workers = std::thread::available_parallelism()
        .map(|n| n.get() * 2)
        .unwrap_or(2)
        .clamp(1, 8)
        .min(linux.len().max(1));
    let chunk = linux.len().div_ceil(workers).max(1);
    std::thread::scope(|scope| {
        let handles: Vec<_> = linux
            .chunks(chunk)
            .zip(roots.chunks(chunk))
            .map(|(nodes, roots)| {
                let (template, user) = (&template, &user);
                scope.spawn(move || -> anyhow::Result<()> {
                    for (n, root) in nodes.iter().zip(roots) {
                        let boot_id = current_boot_id(shared, &n.name);
                        let facts = chroot::NodeFacts {
                            spec: n,
                            user,
                            boot_id: &boot_id,
                            btime,
                        };
                        chroot::build_node(template, root, &facts)?;
                    }
                    Ok(())
                })
            })
            .collect();
        handles.into_iter().try_for_each(|h| {
            h.join()
                .unwrap_or_else(|_| Err(anyhow::anyhow!("a node root builder panicked")))
        })
    })?;
    let served: Vec<(Ipv4Addr, PathBuf)> = linux
        .iter()
        .zip(&roots)
        .filter(|(n, _)| n.ssh_access)
        .map(|(n, root)| (n.ip, root.clone()))
        .collect();
    let bastion = match shared.bastion_ip() {
        Some(ip) => {
            let root = instance.join(chroot::BASTION);
            chroot::build_bastion(&template, &root, &user, ip, &crate::model::new_boot_id(), btime)?;
            Some(sshd::BastionBlock {
                ip,
                root,
                port: shared.scenario.ssh_port,
                // Every node address, as a bastion in the cluster's VNet reaches them: a node
                // without SSH refuses the connection itself.
                targets: shared.nodes.iter().map(|n| n.ip).collect(),
            })
        }
        None => None,
    };
    std::fs::remove_dir_all(&template)?;
    sshd::write_config(&files, &user, &empty, &served, bastion.as_ref())?;
    sshd::check_config(&tools, &files)?;
    guard.0 = None;
    Ok(Built {
        instance,
        sshd: tools.sshd,
        files,
        roots,
        bastion: bastion.map(|b| (b.ip, b.root)),
    })
}

fn current_boot_id(shared: &Shared, node: &str) -> String {
    shared
        .store
        .get(crate::store::NODES, None, node)
        .and_then(|o| o["status"]["nodeInfo"]["bootID"].as_str().map(str::to_string))
        .unwrap_or_else(crate::model::new_boot_id)
}

fn new_machine(shared: &Shared, n: &crate::model::NodeSpec, root: Option<PathBuf>) -> Arc<Machine> {
    Arc::new(Machine {
        name: n.name.clone(),
        ip: n.ip,
        serves_ssh: n.is_linux() && n.ssh_access && root.is_some(),
        static_kernel: n.kernel.clone(),
        st: Mutex::new(MachineState {
            phase: Phase::Running,
            listener: None,
            accept_task: None,
            listen_gen: 0,
            sessions: BTreeSet::new(),
            connections: 0,
            boot_id: current_boot_id(shared, &n.name),
            kernel: n.kernel.clone(),
            requests_offset: 0,
            reboot_at: None,
            kubelet_stop_at: None,
            boot_at: None,
            ready_at: None,
            fast: false,
        }),
        root,
    })
}

/// The bastion: a machine that only serves SSH (its sessions are logged as node `bastion`).
fn new_bastion_machine(ip: Ipv4Addr, root: PathBuf) -> Arc<Machine> {
    Arc::new(Machine {
        name: chroot::BASTION.to_string(),
        ip,
        serves_ssh: true,
        static_kernel: chroot::BASTION_KERNEL.to_string(),
        st: Mutex::new(MachineState {
            phase: Phase::Running,
            listener: None,
            accept_task: None,
            listen_gen: 0,
            sessions: BTreeSet::new(),
            connections: 0,
            boot_id: String::new(),
            kernel: chroot::BASTION_KERNEL.to_string(),
            requests_offset: 0,
            reboot_at: None,
            kubelet_stop_at: None,
            boot_at: None,
            ready_at: None,
            fast: false,
        }),
        root: Some(root),
    })
}

/// Kill the node's sshd processes (each leads its process group, with its privilege-separated
/// children): every SSH session of the node drops. What the users started keeps running.
pub(crate) fn kill_sessions(st: &MachineState) {
    for pid in &st.sessions {
        // SAFETY: signalling the process group of an sshd we started.
        unsafe { libc::kill(-(*pid as i32), libc::SIGKILL) };
    }
}

/// The machine goes off: its sessions drop and everything running inside its root dies.
pub(crate) fn power_off(m: &Machine, st: &MachineState) {
    kill_sessions(st);
    if let Some(root) = &m.root {
        chroot::kill_processes_under(root);
    }
}

async fn accept_loop(
    listener: std::net::TcpListener,
    m: Arc<Machine>,
    ctx: Arc<SshCtx>,
    shared: Weak<Shared>,
    started: Arc<Mutex<BTreeSet<u32>>>,
    gen: u64,
) {
    let listener = match tokio::net::TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!("node {}: cannot serve SSH: {e}", m.name);
            return;
        }
    };
    loop {
        let accepted = listener.accept().await;
        if m.lock().listen_gen != gen {
            return; // closed (SSH down, reboot, shutdown)
        }
        match accepted {
            Ok((stream, peer)) => {
                if let Err(e) = serve(stream, peer, &m, &ctx, &shared, &started, gen) {
                    tracing::warn!("node {}: cannot start sshd for {peer}: {e:#}", m.name);
                }
            }
            Err(e) => {
                tracing::warn!("node {}: accept failed: {e}", m.name);
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }
}

/// Hand one connection to `sshd -i`.
fn serve(
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    m: &Arc<Machine>,
    ctx: &SshCtx,
    shared: &Weak<Shared>,
    started: &Arc<Mutex<BTreeSet<u32>>>,
    gen: u64,
) -> anyhow::Result<()> {
    let stream = stream.into_std()?;
    stream.set_nonblocking(false)?;
    let out: OwnedFd = stream.into();
    let inp = out.try_clone()?;
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&ctx.log)
        .with_context(|| format!("cannot open {}", ctx.log.display()))?;
    let mut st = m.lock();
    if st.listen_gen != gen {
        return Ok(()); // went down meanwhile: the connection is dropped
    }
    if let Some(s) = shared.upgrade().filter(|s| s.faults.ssh_hangs(&m.name)) {
        // Fault ssh-hang: the connection is held open and never answered, until the fault
        // is cleared or the machine goes down (a restart through ARM ends it).
        s.events.record(
            kinds::SSH_SESSION,
            Some(&m.name),
            None,
            format!("connection from {peer} hangs (fault ssh-hang)"),
        );
        drop(st);
        let (m, shared) = (m.clone(), shared.clone());
        tokio::spawn(async move {
            let _held = out;
            let _inp = inp;
            loop {
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                let hangs = shared.upgrade().is_some_and(|s| s.faults.ssh_hangs(&m.name));
                if !hangs || m.lock().listen_gen != gen {
                    return;
                }
            }
        });
        return Ok(());
    }
    let mut cmd = tokio::process::Command::new(&ctx.sshd);
    cmd.arg("-i")
        .arg("-e")
        .arg("-f")
        .arg(&ctx.config)
        .stdin(Stdio::from(inp))
        .stdout(Stdio::from(out))
        .stderr(Stdio::from(log))
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .process_group(0)
        .kill_on_drop(true);
    let mut child = cmd
        .spawn()
        .with_context(|| format!("cannot run {}", ctx.sshd.display()))?;
    let pid = child.id().unwrap_or(0);
    st.sessions.insert(pid);
    st.connections += 1;
    drop(st);
    started.lock().unwrap_or_else(|p| p.into_inner()).insert(pid);
    if let Some(s) = shared.upgrade() {
        s.events.record(
            kinds::SSH_SESSION,
            Some(&m.name),
            None,
            format!("connection from {peer}"),
        );
    }
    let m = m.clone();
    let started = started.clone();
    tokio::spawn(async move {
        let _ = child.wait().await;
        m.lock().sessions.remove(&pid);
        started.lock().unwrap_or_else(|p| p.into_inner()).remove(&pid);
    });
    Ok(())
}
