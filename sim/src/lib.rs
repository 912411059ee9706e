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
pub mod events;
pub mod faults;
pub mod ids;
pub mod kube_api;
pub mod model;
pub mod nodes;
pub mod rbac;
pub mod recorder;
pub mod reimage;
pub mod runcmd;
pub mod scenario;
pub mod server;
pub mod store;
pub mod time;
pub mod tls;
pub mod webhook;

use anyhow::Context;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use tokio::net::TcpListener;
use tokio::sync::watch;

pub use events::SimEvent;
pub use faults::Fault;
pub use scenario::Scenario;

/// Where the emulator serves, written to `<state-dir>/sim.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Endpoints {
    /// `https://127.0.0.1:PORT`: ARM, and the Entra token endpoint under `/{tenant}/oauth2/v2.0/token`.
    pub arm_url: String,
    /// `https://127.0.0.1:PORT`: the Kubernetes API server.
    pub kube_url: String,
    /// `http://127.0.0.1:PORT`: the emulator's control endpoint (status, faults).
    pub control_url: String,
    /// `https://127.0.0.1:PORT`: the webhook sink (POST `/hooks/ANY/PATH`), with the emulator's CA;
    /// every delivery is recorded in the event log (`webhook`).
    #[serde(default)]
    pub webhook_url: String,
    pub subscription_id: String,
    pub tenant_id: String,
    pub resource_group: String,
    pub cluster_name: String,
    /// The node address prefix, e.g. `127.77.3`.
    pub node_prefix: String,
    pub ssh_port: u16,
    /// The bastion (jump host) as `user@ip:port`, for `ssh -J` and `aks-patch --ssh-jump`;
    /// absent when the scenario turns it off (`bastion: false`) or has no Linux node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bastion: Option<String>,
    pub pid: u32,
}

/// The AKS Entra server application: the audience of the tokens an Entra ID cluster's API
/// server accepts (`kubelogin --server-id`).
pub const AKS_SERVER_APP: &str = "6dae42f8-4368-4678-94ff-3960e28e3630";

/// An Entra access token the emulator issued (never printed: events name it by `seq`).
#[derive(Debug, Clone)]
pub struct EntraToken {
    /// 1, 2, ... in issue order.
    pub seq: u64,
    /// The application the token is for (`aud`), e.g. [`AKS_SERVER_APP`].
    pub audience: String,
    /// Who it was issued to: the Azure CLI's user or the service principal's client id.
    pub principal: String,
    /// Unix seconds.
    pub expires_on: i64,
    /// Whether the API server has seen it yet.
    pub used: bool,
}

/// Why the API server refused an Entra token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntraRefusal {
    Expired,
    WrongAudience,
}

/// Tokens the emulator issues and accepts. Never printed by the emulator's logs.
pub struct Tokens {
    /// Entra tokens for other audiences than ARM (the AKS server application), by value.
    pub entra: Mutex<BTreeMap<String, EntraToken>>,
    /// The Azure CLI stand-in's current token for the AKS server application, and its expiry.
    pub cli_aks: Mutex<Option<(String, i64)>>,
    /// ARM bearer tokens currently valid (the `az` stand-in and the Entra endpoint hand these out).
    pub arm: Mutex<Vec<String>>,
    /// The token in the user kubeconfig.
    pub kube_user: String,
    /// The token in the admin kubeconfig.
    pub kube_admin: String,
    /// The service principal the Entra endpoint accepts (client credentials).
    pub client_id: String,
    pub client_secret: String,
    /// The expired-token fault: the Entra tokens issued so far (numbers up to this one) have
    /// expired, and so have the kubeconfigs' tokens; tokens issued afterwards work.
    expired_through: Mutex<Option<u64>>,
}

impl Tokens {
    fn new() -> Tokens {
        Tokens {
            entra: Mutex::new(BTreeMap::new()),
            cli_aks: Mutex::new(None),
            arm: Mutex::new(vec![format!("sim-arm-{}", uuid::Uuid::new_v4().simple())]),
            kube_user: format!("sim-kube-user-{}", uuid::Uuid::new_v4().simple()),
            kube_admin: format!("sim-kube-admin-{}", uuid::Uuid::new_v4().simple()),
            client_id: "5f0e7b5c-aks5-sim0-0000-c11e47000001"
                .replace("aks5", "a5a5")
                .replace("sim0", "5150"),
            client_secret: format!("sim-secret-{}", uuid::Uuid::new_v4().simple()),
            expired_through: Mutex::new(None),
        }
    }

    /// The expired-token fault: every Kubernetes API token issued so far expires (the
    /// kubeconfigs' and the Entra tokens issued until now); `false` clears it.
    pub fn expire_issued(&self, on: bool) {
        let last = self.entra.lock().unwrap_or_else(|p| p.into_inner()).len() as u64;
        *self.expired_through.lock().unwrap_or_else(|p| p.into_inner()) = on.then_some(last);
    }

    /// Whether the expired-token fault has expired `token` (issued before the fault).
    pub fn expired_by_fault(&self, token: &str) -> bool {
        let Some(through) = *self.expired_through.lock().unwrap_or_else(|p| p.into_inner()) else {
            return false;
        };
        if token == self.kube_user || token == self.kube_admin {
            return true;
        }
        self.entra
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(token)
            .is_some_and(|t| t.seq <= through)
    }

    /// The current ARM token (what `az account get-access-token` prints).
    pub fn current_arm(&self) -> String {
        self.arm
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .last()
            .cloned()
            .unwrap_or_default()
    }

    /// Issue a new ARM token and accept it from now on.
    pub fn issue_arm(&self) -> String {
        let t = format!("sim-arm-{}", uuid::Uuid::new_v4().simple());
        self.arm.lock().unwrap_or_else(|p| p.into_inner()).push(t.clone());
        t
    }

    pub fn arm_valid(&self, token: &str) -> bool {
        self.arm
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .any(|t| t == token)
    }

    /// Issue an Entra token for `audience` to `principal`, living `lifetime_seconds`.
    /// Returns the token and its expiry (unix seconds).
    pub fn issue_entra(&self, audience: &str, principal: &str, lifetime_seconds: u64) -> (String, i64) {
        let token = format!("sim-entra-{}", uuid::Uuid::new_v4().simple());
        let expires_on = time::unix_now() + lifetime_seconds as i64;
        let mut map = self.entra.lock().unwrap_or_else(|p| p.into_inner());
        let seq = map.len() as u64 + 1;
        map.insert(
            token.clone(),
            EntraToken {
                seq,
                audience: audience.to_string(),
                principal: principal.to_string(),
                expires_on,
                used: false,
            },
        );
        (token, expires_on)
    }

    /// The Entra token `token` as the API server checks it: `None` when it is not one the
    /// emulator issued; else the token (marked used; `first` says whether this is its first
    /// use) or why it is refused.
    pub fn check_entra(&self, token: &str) -> Option<Result<(EntraToken, bool), (EntraToken, EntraRefusal)>> {
        let mut map = self.entra.lock().unwrap_or_else(|p| p.into_inner());
        let t = map.get_mut(token)?;
        if !t.audience.eq_ignore_ascii_case(AKS_SERVER_APP) {
            return Some(Err((t.clone(), EntraRefusal::WrongAudience)));
        }
        if t.expires_on <= time::unix_now() {
            return Some(Err((t.clone(), EntraRefusal::Expired)));
        }
        let first = !t.used;
        t.used = true;
        Some(Ok((t.clone(), first)))
    }

    pub fn kube_valid(&self, token: &str) -> bool {
        token == self.kube_user || token == self.kube_admin
    }

    /// Who a Kubernetes API bearer token authenticates as (None: not a token of ours).
    pub fn kube_identity(&self, token: &str, access: &scenario::Access) -> Option<rbac::Identity> {
        if token == self.kube_admin {
            return Some(rbac::Identity::master());
        }
        if token != self.kube_user {
            return None;
        }
        Some(match &access.user {
            None => rbac::Identity::master(),
            Some(u) => {
                let mut groups = u.groups.clone();
                groups.push("system:authenticated".into());
                rbac::Identity {
                    username: u.username.clone(),
                    groups,
                    role: u.cluster_role.clone(),
                    rules: Some(u.rules.clone()),
                }
            }
        })
    }
}

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
    pub tokens: Tokens,
    pub ca: tls::Ca,
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
            if let Err(e) = arm::refresh_az_aks_token(self) {
                tracing::warn!("cannot write the az stand-in's AKS token: {e:#}");
            }
            self.tokens.expire_issued(true);
            self.tokens.arm.lock().unwrap_or_else(|p| p.into_inner()).clear();
            // The `az` stand-in hands out a fresh one, as the real CLI would.
            if let Err(e) = arm::refresh_az_token(self) {
                tracing::warn!("cannot refresh the az stand-in's token: {e:#}");
            }
        }
        self.faults.set(fault);
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
}

impl SimConfig {
    pub fn new(state_dir: impl Into<PathBuf>, scenario: Scenario) -> SimConfig {
        SimConfig {
            state_dir: state_dir.into(),
            scenario,
            arm_port: 0,
            kube_port: 0,
            control_port: 0,
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
        let ca = tls::Ca::generate().context("cannot generate the emulator's CA")?;
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
            tokens: Tokens::new(),
            ca,
            nodes,
            node_prefix: prefix,
            endpoints: OnceLock::new(),
            node_runtime: OnceLock::new(),
            shutdown: shutdown_rx.clone(),
            started: std::time::Instant::now(),
        });

        let arm_l = TcpListener::bind(("127.0.0.1", cfg.arm_port))
            .await
            .context("cannot bind the ARM endpoint")?;
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
            arm_url: format!("https://127.0.0.1:{}", arm_l.local_addr()?.port()),
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
        seed_nodes(&shared)?;
        controllers::seed(&shared)?;
        let mut tasks = vec![];
        tasks.push(tokio::spawn(watch_node_changes(shared.clone())));
        tasks.push(tokio::spawn(controllers::run(shared.clone())));
        tasks.push(tokio::spawn(arm::run_az_aks_token(shared.clone())));

        let tls = shared.ca.server_config()?;
        tasks.push(server::spawn(
            arm_l,
            arm::router(shared.clone()),
            Some(tls.clone()),
            shutdown_rx.clone(),
        ));
        tasks.push(server::spawn(
            hook_l,
            webhook::router(shared.clone()),
            Some(tls.clone()),
            shutdown_rx.clone(),
        ));
        tasks.push(server::spawn(
            kube_l,
            kube_api::router(shared.clone()),
            Some(tls),
            shutdown_rx.clone(),
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
        write_state_dir(&shared).context("cannot write the state directory")?;
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

/// The shell environment for a state dir (what `aks-sim env` prints).
pub fn env_for(state_dir: &Path, ep: &Endpoints) -> Vec<(String, String)> {
    let d = state_dir.display();
    let path = std::env::var("PATH").unwrap_or_else(|_| "/usr/local/bin:/usr/bin:/bin".into());
    let bin = format!("{d}/bin");
    let path = if path.split(':').any(|p| p == bin) {
        path
    } else {
        format!("{bin}:{path}")
    };
    let mut env: Vec<(String, String)> = vec![
        ("AKS_PATCH_ARM_ENDPOINT".into(), ep.arm_url.clone()),
        ("AKS_PATCH_CA_BUNDLE".into(), format!("{d}/ca.pem")),
        // The Azure SDK for Python (requests) trusts the emulator's CA through this.
        ("REQUESTS_CA_BUNDLE".into(), format!("{d}/ca.pem")),
        ("AZURE_AUTHORITY_HOST".into(), ep.arm_url.clone()),
        ("AZURE_SUBSCRIPTION_ID".into(), ep.subscription_id.clone()),
        ("AZURE_TENANT_ID".into(), ep.tenant_id.clone()),
        ("AKS_PATCH_SSH_KEY".into(), format!("{d}/ssh/id_ed25519")),
        ("AKS_PATCH_STATE_DIR".into(), format!("{d}/aks-patch")),
        ("KUBECONFIG".into(), format!("{d}/kubeconfig")),
        ("AKS_SIM_RESOURCE_GROUP".into(), ep.resource_group.clone()),
        ("AKS_SIM_CLUSTER".into(), ep.cluster_name.clone()),
        ("AKS_SIM_STATE_DIR".into(), state_dir.display().to_string()),
    ];
    if let Some(b) = &ep.bastion {
        env.push(("AKS_SIM_BASTION".into(), b.clone()));
    }
    env.push(("PATH".into(), path));
    env
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

fn seed_nodes(shared: &Arc<Shared>) -> anyhow::Result<()> {
    let created = time::rfc3339(time::days_ago(shared.scenario.cluster.age_days));
    for n in &shared.nodes {
        let obj = model::node_object(&shared.scenario, n, &model::new_boot_id(), &created);
        shared.store.create(store::NODES, obj)?;
    }
    for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        shared.store.create(
            store::NAMESPACES,
            serde_json::json!({"metadata": {"name": ns, "creationTimestamp": created}}),
        )?;
    }
    Ok(())
}

/// Record cordon/uncordon and Ready transitions of nodes in the event log, whoever made them.
async fn watch_node_changes(shared: Arc<Shared>) {
    let mut rx = shared.store.subscribe();
    let mut last: BTreeMap<String, (bool, String)> = shared
        .store
        .list(store::NODES, None)
        .iter()
        .map(|n| {
            (
                n["metadata"]["name"].as_str().unwrap_or_default().to_string(),
                (
                    n["spec"]["unschedulable"].as_bool().unwrap_or(false),
                    model::ready_status(n).to_string(),
                ),
            )
        })
        .collect();
    let mut shutdown = shared.shutdown.clone();
    loop {
        let change = tokio::select! {
            c = rx.recv() => c,
            _ = shutdown.changed() => return,
        };
        let change = match change {
            Ok(c) => c,
            Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                tracing::warn!("node watcher lagged by {n} changes");
                continue;
            }
            Err(_) => return,
        };
        if change.resource != store::NODES {
            continue;
        }
        let name = change.object["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let now = (
            change.object["spec"]["unschedulable"].as_bool().unwrap_or(false),
            model::ready_status(&change.object).to_string(),
        );
        let before = last.insert(name.clone(), now.clone());
        let Some(before) = before else { continue };
        if before.0 != now.0 {
            let kind = if now.0 {
                events::kinds::CORDON
            } else {
                events::kinds::UNCORDON
            };
            shared.events.record(kind, Some(&name), None, "");
            // The kubelet reports what it sees of its node's schedulability.
            let reason = if now.0 { "NodeNotSchedulable" } else { "NodeSchedulable" };
            recorder::record(
                &shared,
                &recorder::ObjectRef::kubelet_node(&name),
                recorder::kubelet(&name),
                "Normal",
                reason,
                &format!("Node {name} status is now: {reason}"),
            );
        }
        if before.1 != now.1 {
            let kind = if now.1 == "True" {
                events::kinds::NODE_READY
            } else {
                events::kinds::NODE_NOT_READY
            };
            shared
                .events
                .record(kind, Some(&name), None, format!("Ready={}", now.1));
            if now.1 == "True" {
                recorder::record(
                    &shared,
                    &recorder::ObjectRef::kubelet_node(&name),
                    recorder::kubelet(&name),
                    "Normal",
                    "NodeReady",
                    &format!("Node {name} status is now: NodeReady"),
                );
            } else if before.1 == "True" {
                // Unknown is the node lifecycle controller's verdict; NotReady the kubelet's.
                let (what, source) = if now.1 == "Unknown" {
                    (recorder::ObjectRef::of(&change.object), recorder::NODE_CONTROLLER)
                } else {
                    (recorder::ObjectRef::kubelet_node(&name), recorder::kubelet(&name))
                };
                recorder::record(
                    &shared,
                    &what,
                    source,
                    "Normal",
                    "NodeNotReady",
                    &format!("Node {name} status is now: NodeNotReady"),
                );
            }
        }
    }
}

fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(contents.as_bytes())
}

/// A kubeconfig for the emulated API server, as `listClusterUserCredential` returns it.
pub fn kubeconfig(shared: &Shared, admin: bool) -> String {
    use base64::Engine;
    let ep = shared.endpoints();
    let b64 = base64::engine::general_purpose::STANDARD.encode(&shared.ca.ca_pem);
    let cluster = &shared.scenario.cluster.name;
    let (user, token) = if admin {
        (
            format!("clusterAdmin_{}_{}", shared.scenario.resource_group, cluster),
            &shared.tokens.kube_admin,
        )
    } else {
        (
            format!("clusterUser_{}_{}", shared.scenario.resource_group, cluster),
            &shared.tokens.kube_user,
        )
    };
    format!(
        "apiVersion: v1\nclusters:\n- cluster:\n    certificate-authority-data: {b64}\n    server: {server}\n  name: {cluster}\ncontexts:\n- context:\n    cluster: {cluster}\n    user: {user}\n  name: {cluster}\ncurrent-context: {cluster}\nkind: Config\npreferences: {{}}\nusers:\n- name: {user}\n  user:\n    token: {token}\n",
        server = ep.kube_url
    )
}

/// The AKS-managed Entra ID public client (`kubelogin --client-id`, the `azure`
/// auth-provider's `client-id`).
pub const AKS_CLIENT_APP: &str = "80faf920-1908-4b52-b5ef-a8e7bedfc67a";

/// The user kubeconfig `listClusterUserCredential` returns on an Entra ID cluster: with
/// `exec`, a `kubelogin get-token` exec user (device code login by default); otherwise the
/// legacy `azure` auth-provider (`format=azure`), which current clients no longer support.
pub fn entra_kubeconfig(shared: &Shared, exec: bool) -> String {
    use base64::Engine;
    let ep = shared.endpoints();
    let b64 = base64::engine::general_purpose::STANDARD.encode(&shared.ca.ca_pem);
    let cluster = &shared.scenario.cluster.name;
    let user = format!("clusterUser_{}_{}", shared.scenario.resource_group, cluster);
    let tenant = &shared.scenario.tenant_id;
    let user_body = if exec {
        format!(
            "    exec:\n      apiVersion: client.authentication.k8s.io/v1beta1\n      args:\n      - get-token\n      - --environment\n      - AzurePublicCloud\n      - --server-id\n      - {AKS_SERVER_APP}\n      - --client-id\n      - {AKS_CLIENT_APP}\n      - --tenant-id\n      - {tenant}\n      - --login\n      - devicecode\n      command: kubelogin\n      env: null\n      installHint: |2\n\n        kubelogin is not installed which is required to connect to AAD enabled cluster.\n\n        To learn more, please go to https://aka.ms/aks/kubelogin\n      provideClusterInfo: false\n"
        )
    } else {
        format!(
            "    auth-provider:\n      config:\n        apiserver-id: {AKS_SERVER_APP}\n        client-id: {AKS_CLIENT_APP}\n        config-mode: '1'\n        environment: AzurePublicCloud\n        tenant-id: {tenant}\n      name: azure\n"
        )
    };
    format!(
        "apiVersion: v1\nclusters:\n- cluster:\n    certificate-authority-data: {b64}\n    server: {server}\n  name: {cluster}\ncontexts:\n- context:\n    cluster: {cluster}\n    user: {user}\n  name: {cluster}\ncurrent-context: {cluster}\nkind: Config\npreferences: {{}}\nusers:\n- name: {user}\n  user:\n{user_body}",
        server = ep.kube_url
    )
}

fn write_state_dir(shared: &Shared) -> anyhow::Result<()> {
    let d = &shared.state_dir;
    std::fs::write(d.join("ca.pem"), &shared.ca.ca_pem)?;
    write_private(&d.join("kubeconfig"), &kubeconfig(shared, false))?;
    arm::write_az_standin(shared)?;
    std::fs::write(d.join("sim.json"), serde_json::to_string_pretty(shared.endpoints())?)?;
    Ok(())
}

/// Read `<state-dir>/sim.json` written by a running emulator.
pub fn read_endpoints(state_dir: &Path) -> anyhow::Result<Endpoints> {
    let p = state_dir.join("sim.json");
    let text = std::fs::read_to_string(&p).with_context(|| {
        format!(
            "cannot read {}: is `aks-sim up --state-dir {}` running?",
            p.display(),
            state_dir.display()
        )
    })?;
    Ok(serde_json::from_str(&text)?)
}
