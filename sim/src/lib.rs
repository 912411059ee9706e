//! aks-sim: a local AKS emulator. It serves Azure Resource Manager and the Kubernetes
//! API over HTTPS and real SSH (Debian's sshd) into per-node chroots on loopback
//! addresses, so that aks-patch, kubectl and kube-rs work against it unchanged.
//!
//! Start it in-process with [`Sim::start`], or as `aks-sim up`.

pub mod api_versions;
pub mod arm;
pub mod control;
pub mod controllers;
pub mod cron;
pub mod entra;
pub mod events;
pub mod faults;
pub mod fleet;
pub mod ids;
pub mod kube_api;
pub mod model;
pub mod nodes;
pub mod objects;
pub mod rbac;
pub mod recorder;
pub mod resources;
pub mod scenario;
pub mod server;
pub mod state_dir;
pub mod store;
pub mod time;
pub mod tls;
pub mod tokens;
pub mod webhook;

use anyhow::Context;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use tokio::net::TcpListener;
use tokio::sync::watch;

pub use events::SimEvent;
pub use faults::Fault;
pub use fleet::{Fleet, FleetConfig, FleetScenario};
pub use scenario::Scenario;
pub use state_dir::{env_for, kubeconfig, read_endpoints, Endpoints};
use tokens::Tokens;
pub use tokens::{AKS_CLIENT_APP, AKS_SERVER_APP};

/// Everything the emulator's parts share.
pub struct Shared {
    pub scenario: Scenario,
    pub state_dir: PathBuf,
    pub store: store::Store,
    pub events: events::EventLog,
    /// Aggregation state of the Kubernetes Events the components record.
    pub recorder: recorder::Recorder,
    /// What the pods' containers printed (`pods/log`).
    pub pod_logs: nodes::pod_logs::PodLogs,
    /// The containers that run their command for real (`pods/attach`).
    pub containers: nodes::containers::Containers,
    /// What ARM operations changed (node images) and their long-running operations.
    pub arm_state: arm::ArmState,
    pub faults: faults::Faults,
    /// The tokens ARM, Entra and the API server accept; one set for every cluster of a fleet
    /// (one tenant, one credential).
    pub tokens: Arc<Tokens>,
    pub ca: tls::Ca,
    /// Where the credentials live for clients (the `az` stand-in and its token files,
    /// `sp.json`, the federated token): the state directory, or a fleet's.
    pub credential_dir: PathBuf,
    /// The subscriptions the credential sees (the `az` stand-in's accounts), the emulator's own first.
    pub subscriptions: Vec<String>,
    /// Whether the Kubernetes API server accepts connections (the `api-server-down` fault closes it).
    pub api_server_up: watch::Sender<bool>,
    /// The machines, in scenario order.
    pub nodes: Vec<model::NodeSpec>,
    pub node_prefix: [u8; 3],
    pub endpoints: OnceLock<Endpoints>,
    /// The SSH side of the nodes (chroots, sshd), once started.
    pub node_runtime: OnceLock<nodes::NodeRuntime>,
    pub shutdown: watch::Receiver<bool>,
    pub started: std::time::Instant,
}

impl Shared {
    pub fn node(&self, name: &str) -> Option<&model::NodeSpec> {
        self.nodes.iter().find(|n| n.name == name)
    }

    pub fn endpoints(&self) -> &Endpoints {
        self.endpoints.get().expect("endpoints are set before anything serves")
    }

    /// The bastion's address, `<node prefix>.254` (nodes use `.1` to `.250`), when the
    /// scenario has one and a Linux node to reach through it.
    pub fn bastion_ip(&self) -> Option<Ipv4Addr> {
        (self.scenario.bastion && self.nodes.iter().any(|n| n.is_linux())).then(|| {
            let [a, b, c] = self.node_prefix;
            Ipv4Addr::new(a, b, c, 254)
        })
    }

    /// Apply a fault (from the scenario, `aks-sim fault` or the control endpoint).
    pub fn apply_fault(&self, fault: &Fault) -> Result<(), String> {
        if let Some(node) = fault.node() {
            if self.node(node).is_none() {
                return Err(format!("no node named `{node}`"));
            }
        }
        if let Fault::Clear = fault {
            self.tokens.expire_issued(false);
        }
        if let Fault::ExpiredToken = fault {
            // Every token issued so far is expired; the next one issued is fresh. The `az`
            // stand-in's AKS token counts as issued (the CLI keeps handing out its cached
            // token until it is due for renewal, as the real one does).
            if let Err(e) = state_dir::az::refresh_aks_token(self) {
                tracing::warn!("cannot write the az stand-in's AKS token: {e:#}");
            }
            self.tokens.expire_issued(true);
            self.tokens.arm.lock().unwrap_or_else(|p| p.into_inner()).clear();
            // The `az` stand-in hands out a fresh one, as the real CLI would.
            if let Err(e) = state_dir::az::refresh_arm_token(self) {
                tracing::warn!("cannot refresh the az stand-in's token: {e:#}");
            }
        }
        self.faults.set(fault);
        self.api_server_up.send_if_modified(|up| {
            let now = !self.faults.api_server_down();
            std::mem::replace(up, now) != now
        });
        self.events.record(
            events::kinds::FAULT,
            fault.node(),
            None,
            serde_json::to_string(fault).unwrap_or_default(),
        );
        if let Some(rt) = self.node_runtime.get() {
            rt.fault_changed(self, fault);
        }
        Ok(())
    }
}

/// How to start the emulator.
pub struct SimConfig {
    pub state_dir: PathBuf,
    pub scenario: Scenario,
    /// Bind the HTTPS endpoints to these ports (0 = any free port).
    pub arm_port: u16,
    pub kube_port: u16,
    pub control_port: u16,
    /// Set when the cluster is one of a fleet's: it serves no ARM of its own.
    pub(crate) member: Option<fleet::Membership>,
}

impl SimConfig {
    pub fn new(state_dir: impl Into<PathBuf>, scenario: Scenario) -> SimConfig {
        SimConfig {
            state_dir: state_dir.into(),
            scenario,
            arm_port: 0,
            kube_port: 0,
            control_port: 0,
            member: None,
        }
    }
}

/// A running emulator. Dropping it without [`Sim::shutdown`] still stops sshd sessions
/// and tears down the chroots (best effort).
pub struct Sim {
    pub shared: Arc<Shared>,
    shutdown_tx: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    _prefix_lock: std::fs::File,
}

impl Sim {
    /// Start every part of the emulator and write the state directory.
    pub async fn start(cfg: SimConfig) -> anyhow::Result<Sim> {
        // The clients of a test that runs the emulator in-process need one (it is ring).
        tls::install_crypto_provider();
        std::fs::create_dir_all(&cfg.state_dir)
            .with_context(|| format!("cannot create state directory {}", cfg.state_dir.display()))?;
        let state_dir = std::fs::canonicalize(&cfg.state_dir)?;
        let (prefix, prefix_lock) = claim_prefix(cfg.scenario.ssh_port)?;
        let (ca, tokens, credential_dir, subscriptions) = match &cfg.member {
            Some(m) => (
                m.ca.clone(),
                m.tokens.clone(),
                m.credential_dir.clone(),
                m.subscriptions.clone(),
            ),
            None => (
                tls::Ca::generate().context("cannot generate the emulator's CA")?,
                Arc::new(Tokens::new()),
                state_dir.clone(),
                vec![cfg.scenario.subscription_id.clone()],
            ),
        };
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let nodes = model::nodes(&cfg.scenario, prefix);
        let shared = Arc::new(Shared {
            scenario: cfg.scenario.clone(),
            state_dir: state_dir.clone(),
            store: store::Store::new(),
            events: events::EventLog::new(),
            recorder: recorder::Recorder::default(),
            pod_logs: Default::default(),
            containers: Default::default(),
            arm_state: arm::ArmState::default(),
            faults: faults::Faults::default(),
            tokens,
            ca,
            credential_dir,
            subscriptions,
            api_server_up: watch::channel(true).0,
            nodes,
            node_prefix: prefix,
            endpoints: OnceLock::new(),
            node_runtime: OnceLock::new(),
            shutdown: shutdown_rx.clone(),
            started: std::time::Instant::now(),
        });

        // A fleet's cluster is served by the fleet's one ARM endpoint.
        let arm_l = match &cfg.member {
            Some(_) => None,
            None => Some(
                TcpListener::bind(("127.0.0.1", cfg.arm_port))
                    .await
                    .context("cannot bind the ARM endpoint")?,
            ),
        };
        let kube_l = TcpListener::bind(("127.0.0.1", cfg.kube_port))
            .await
            .context("cannot bind the Kubernetes API endpoint")?;
        let ctl_l = TcpListener::bind(("127.0.0.1", cfg.control_port))
            .await
            .context("cannot bind the control endpoint")?;
        let hook_l = TcpListener::bind(("127.0.0.1", 0))
            .await
            .context("cannot bind the webhook sink")?;
        let endpoints = Endpoints {
            arm_url: match (&arm_l, &cfg.member) {
                (Some(l), _) => format!("https://127.0.0.1:{}", l.local_addr()?.port()),
                (None, Some(m)) => m.arm_url.clone(),
                (None, None) => unreachable!("an emulator without a fleet binds its own ARM endpoint"),
            },
            kube_url: format!("https://127.0.0.1:{}", kube_l.local_addr()?.port()),
            control_url: format!("http://127.0.0.1:{}", ctl_l.local_addr()?.port()),
            webhook_url: format!("https://127.0.0.1:{}", hook_l.local_addr()?.port()),
            subscription_id: cfg.scenario.subscription_id.clone(),
            tenant_id: cfg.scenario.tenant_id.clone(),
            resource_group: cfg.scenario.resource_group.clone(),
            cluster_name: cfg.scenario.cluster.name.clone(),
            node_prefix: format!("{}.{}.{}", prefix[0], prefix[1], prefix[2]),
            ssh_port: cfg.scenario.ssh_port,
            bastion: shared
                .bastion_ip()
                .map(|ip| format!("{}@{ip}:{}", cfg.scenario.cluster.admin_username, cfg.scenario.ssh_port)),
            pid: std::process::id(),
        };
        let _ = shared.endpoints.set(endpoints.clone());

        // The cluster's objects, then the controllers that keep them moving.
        controllers::seed(&shared)?;
        let mut tasks = vec![];
        tasks.push(tokio::spawn(controllers::watch_node_changes(shared.clone())));
        tasks.push(tokio::spawn(controllers::run(shared.clone())));
        tasks.push(tokio::spawn(state_dir::az::renew_aks_token(shared.clone())));

        let tls = shared.ca.server_config()?;
        if let Some(arm_l) = arm_l {
            tasks.push(server::spawn(
                arm_l,
                arm::router(shared.clone()),
                Some(tls.clone()),
                shutdown_rx.clone(),
            ));
        }
        tasks.push(server::spawn(
            hook_l,
            webhook::router(shared.clone()),
            Some(tls.clone()),
            shutdown_rx.clone(),
        ));
        tasks.push(server::spawn_closable(
            kube_l,
            kube_api::router(shared.clone()),
            Some(tls),
            shutdown_rx.clone(),
            shared.api_server_up.subscribe(),
        ));
        tasks.push(server::spawn(
            ctl_l,
            control::router(shared.clone()),
            None,
            shutdown_rx.clone(),
        ));

        // The machines: chroots, sshd, the reboot hand-off.
        let rt = nodes::NodeRuntime::start(&shared)
            .await
            .context("cannot start the SSH side of the nodes")?;
        let _ = shared.node_runtime.set(rt);
        tasks.push(tokio::spawn(nodes::run(shared.clone())));

        for f in &cfg.scenario.faults {
            shared.apply_fault(f).map_err(anyhow::Error::msg)?;
        }
        state_dir::write(&shared).context("cannot write the state directory")?;
        Ok(Sim {
            shared,
            shutdown_tx,
            tasks,
            _prefix_lock: prefix_lock,
        })
    }

    pub fn endpoints(&self) -> &Endpoints {
        self.shared.endpoints()
    }

    pub fn state_dir(&self) -> &Path {
        &self.shared.state_dir
    }

    /// The emulator's event log so far.
    pub fn events(&self) -> Vec<SimEvent> {
        self.shared.events.all()
    }

    pub fn fault(&self, fault: Fault) -> Result<(), String> {
        self.shared.apply_fault(&fault)
    }

    /// The environment that points aks-patch and kubectl at this emulator.
    pub fn env(&self) -> Vec<(String, String)> {
        env_for(&self.shared.state_dir, self.endpoints())
    }

    /// `aks-sim status -o json`.
    pub fn status(&self) -> serde_json::Value {
        control::status(&self.shared)
    }

    /// Stop serving, end SSH sessions, remove the chroots.
    pub async fn shutdown(mut self) {
        self.stop();
        for t in self.tasks.drain(..) {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(2), t).await;
        }
    }

    fn stop(&mut self) {
        let _ = self.shutdown_tx.send(true);
        if let Some(rt) = self.shared.node_runtime.get() {
            rt.shutdown();
        }
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        self.stop();
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Find a free `127.77.X` prefix for the node addresses and hold a lock on it for the
/// life of the process, so that emulators started side by side (tests) never collide.
fn claim_prefix(port: u16) -> anyhow::Result<([u8; 3], std::fs::File)> {
    use std::os::fd::AsRawFd;
    let dir = Path::new("/run/aks-sim");
    std::fs::create_dir_all(dir)
        .or_else(|_| std::fs::create_dir_all("/tmp/aks-sim-locks"))
        .ok();
    let dir = if dir.is_dir() {
        dir.to_path_buf()
    } else {
        PathBuf::from("/tmp/aks-sim-locks")
    };
    let start = (std::process::id() % 200) as u8;
    for i in 0..=255u16 {
        let x = ((start as u16 + i) % 256) as u8;
        let prefix = [127, 77, x];
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join(format!("127.77.{x}.lock")))?;
        // SAFETY: flock on a file descriptor we own; no memory is touched.
        let rc = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc != 0 {
            continue;
        }
        if std::net::TcpListener::bind((Ipv4Addr::new(127, 77, x, 1), port)).is_err() {
            continue;
        }
        return Ok((prefix, f));
    }
    // Every range failed. If even 127.0.0.1 has the port taken, something listens on the
    // wildcard address (the host's own sshd on 0.0.0.0:22, typically).
    if std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_err() {
        anyhow::bail!(
            "port {port} is taken on every loopback address: something listens on 0.0.0.0:{port} \
             (the host's own sshd?); stop it (`systemctl stop ssh.socket ssh`) or set `sshPort` in the scenario"
        )
    }
    anyhow::bail!("no free 127.77.X.0/24 address range for the nodes: stop other aks-sim instances")
}
