//! A fleet of clusters in one emulator: every cluster a full [`Sim`] (its own Kubernetes
//! API server and port, its own `127.77.X` block of node addresses and sshd, its own event
//! log and faults), behind **one** ARM endpoint (with the one Entra ID token endpoint) that
//! serves them all, as Azure does, plus what spans clusters: the subscriptions and their
//! lists, Azure Resource Graph and AKS Fleet Manager.
//!
//! The state directory of a fleet holds what a client of the whole fleet needs (`ca.pem`,
//! the `az` stand-in, `sp.json`, the SSH key every cluster's nodes accept, a `kubeconfig`
//! with a context per cluster, `sim.json` and `fleet.json`) and, under `clusters/NAME/`, each
//! cluster's own state directory.

mod arm;
mod fleet_manager;
pub mod kql;
mod resource_graph;
pub mod scenario;

pub use scenario::FleetScenario;

use crate::state_dir::Endpoints;
use crate::tokens::Tokens;
use crate::{tls, Sim, SimConfig};
use anyhow::Context;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// What a cluster of a fleet shares with the others (one ARM, one CA, one credential).
#[derive(Clone)]
pub(crate) struct Membership {
    pub(crate) arm_url: String,
    pub(crate) ca: tls::Ca,
    pub(crate) tokens: Arc<Tokens>,
    pub(crate) credential_dir: PathBuf,
    pub(crate) subscriptions: Vec<String>,
}

/// How to start a fleet.
pub struct FleetConfig {
    pub state_dir: PathBuf,
    pub scenario: FleetScenario,
    /// Bind the one ARM endpoint to this port (0 = any free port).
    pub arm_port: u16,
}

impl FleetConfig {
    pub fn new(state_dir: impl Into<PathBuf>, scenario: FleetScenario) -> FleetConfig {
        FleetConfig {
            state_dir: state_dir.into(),
            scenario,
            arm_port: 0,
        }
    }
}

/// One cluster of a running fleet, as `fleet.json` lists it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FleetCluster {
    pub name: String,
    pub subscription_id: String,
    pub resource_group: String,
    /// `/subscriptions/.../managedClusters/NAME`.
    pub id: String,
    /// The cluster's own state directory (`clusters/NAME`).
    pub state_dir: PathBuf,
    pub kube_url: String,
    pub control_url: String,
    pub node_prefix: String,
}

/// A running fleet. Dropping it without [`Fleet::shutdown`] still stops every cluster
/// (best effort), as dropping a [`Sim`] does.
pub struct Fleet {
    /// The clusters, in scenario order.
    pub clusters: Vec<Sim>,
    state_dir: PathBuf,
    endpoints: Endpoints,
    shutdown_tx: watch::Sender<bool>,
    front: Option<tokio::task::JoinHandle<()>>,
}

impl Fleet {
    /// Start every cluster (the first alone, then the others at once) and the fleet's ARM
    /// endpoint, and write the state directory.
    pub async fn start(cfg: FleetConfig) -> anyhow::Result<Fleet> {
        tls::install_crypto_provider();
        std::fs::create_dir_all(&cfg.state_dir)
            .with_context(|| format!("cannot create state directory {}", cfg.state_dir.display()))?;
        let state_dir = std::fs::canonicalize(&cfg.state_dir)?;
        let sc = cfg.scenario;
        let ca = tls::Ca::generate().context("cannot generate the emulator's CA")?;
        let arm_l = TcpListener::bind(("127.0.0.1", cfg.arm_port))
            .await
            .context("cannot bind the ARM endpoint")?;
        let member = Membership {
            arm_url: format!("https://127.0.0.1:{}", arm_l.local_addr()?.port()),
            ca: ca.clone(),
            tokens: Arc::new(Tokens::new()),
            credential_dir: state_dir.clone(),
            subscriptions: sc.subscriptions(),
        };
        let config = |scenario: &crate::Scenario| {
            let mut c = SimConfig::new(
                state_dir.join("clusters").join(&scenario.cluster.name),
                scenario.clone(),
            );
            c.member = Some(member.clone());
            c
        };
        // The first cluster makes the SSH keys every node accepts; the others get copies.
        let first = Sim::start(config(&sc.clusters[0]))
            .await
            .with_context(|| format!("cannot start cluster {}", sc.clusters[0].cluster.name))?;
        let keys = first.state_dir().join("ssh");
        share_ssh_keys(&keys, &state_dir.join("ssh"))?;
        let rest = sc.clusters[1..].iter().map(|s| {
            let cfg = config(s);
            let keys = keys.clone();
            let name = s.cluster.name.clone();
            async move {
                share_ssh_keys(&keys, &cfg.state_dir.join("ssh"))?;
                Sim::start(cfg)
                    .await
                    .with_context(|| format!("cannot start cluster {name}"))
            }
        });
        let mut clusters = vec![first];
        for r in futures::future::join_all(rest).await {
            clusters.push(r?);
        }

        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let front = arm::Front::new(&sc, clusters.iter().map(|c| c.shared.clone()).collect());
        let handle = crate::server::spawn(arm_l, arm::router(front), Some(ca.server_config()?), shutdown_rx);

        let lead = &clusters[0].shared;
        let mut endpoints = lead.endpoints().clone();
        endpoints.pid = std::process::id();
        let fleet = Fleet {
            clusters,
            state_dir,
            endpoints,
            shutdown_tx,
            front: Some(handle),
        };
        fleet
            .write_state_dir()
            .context("cannot write the fleet's state directory")?;
        Ok(fleet)
    }

    fn write_state_dir(&self) -> anyhow::Result<()> {
        let d = &self.state_dir;
        let lead = &self.clusters[0].shared;
        std::fs::write(d.join("ca.pem"), &lead.ca.ca_pem)?;
        crate::state_dir::az::write_standin(lead)?;
        crate::state_dir::write_private(&d.join("kubeconfig"), &self.kubeconfig()?)?;
        std::fs::write(d.join("fleet.json"), serde_json::to_string_pretty(&self.members())?)?;
        std::fs::write(d.join("sim.json"), serde_json::to_string_pretty(&self.endpoints)?)?;
        Ok(())
    }

    /// One kubeconfig with a context per cluster (named as the cluster), the first current.
    fn kubeconfig(&self) -> anyhow::Result<String> {
        use serde_yaml_ng::{Mapping, Value};
        let mut all = Mapping::new();
        for key in ["clusters", "contexts", "users"] {
            all.insert(key.into(), Value::Sequence(vec![]));
        }
        for sim in &self.clusters {
            let one: Value = serde_yaml_ng::from_str(&crate::state_dir::kubeconfig(&sim.shared, false))?;
            for key in ["clusters", "contexts", "users"] {
                if let (Some(Value::Sequence(to)), Some(Value::Sequence(from))) = (all.get_mut(key), one.get(key)) {
                    to.extend(from.iter().cloned());
                }
            }
        }
        all.insert("apiVersion".into(), "v1".into());
        all.insert("kind".into(), "Config".into());
        all.insert("preferences".into(), Value::Mapping(Mapping::new()));
        all.insert(
            "current-context".into(),
            self.clusters[0].shared.scenario.cluster.name.clone().into(),
        );
        Ok(serde_yaml_ng::to_string(&all)?)
    }

    /// The clusters as `fleet.json` lists them.
    pub fn members(&self) -> Vec<FleetCluster> {
        self.clusters
            .iter()
            .map(|sim| {
                let s = &sim.shared.scenario;
                let ep = sim.endpoints();
                FleetCluster {
                    name: s.cluster.name.clone(),
                    subscription_id: s.subscription_id.clone(),
                    resource_group: s.resource_group.clone(),
                    id: cluster_id(s),
                    state_dir: sim.state_dir().to_path_buf(),
                    kube_url: ep.kube_url.clone(),
                    control_url: ep.control_url.clone(),
                    node_prefix: ep.node_prefix.clone(),
                }
            })
            .collect()
    }

    /// The cluster named `name` (case-insensitively).
    pub fn cluster(&self, name: &str) -> Option<&Sim> {
        self.clusters
            .iter()
            .find(|c| c.shared.scenario.cluster.name.eq_ignore_ascii_case(name))
    }

    /// The fleet's endpoints: its one ARM URL; the Kubernetes fields are the first cluster's.
    pub fn endpoints(&self) -> &Endpoints {
        &self.endpoints
    }

    pub fn state_dir(&self) -> &Path {
        &self.state_dir
    }

    /// The environment that points aks-patch (and kubectl, with a context per cluster) at
    /// the fleet: one ARM endpoint, one credential, one CA, one SSH key.
    pub fn env(&self) -> Vec<(String, String)> {
        crate::env_for(&self.state_dir, &self.endpoints)
    }

    /// Stop every cluster and the ARM endpoint.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown_tx.send(true);
        let clusters = std::mem::take(&mut self.clusters);
        futures::future::join_all(clusters.into_iter().map(Sim::shutdown)).await;
        if let Some(h) = self.front.take() {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(2), h).await;
        }
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        let _ = self.shutdown_tx.send(true);
        if let Some(h) = &self.front {
            h.abort();
        }
    }
}

/// Read `<state-dir>/fleet.json` written by a running fleet (`None`: not a fleet's).
pub fn read_members(state_dir: &Path) -> Option<Vec<FleetCluster>> {
    let text = std::fs::read_to_string(state_dir.join("fleet.json")).ok()?;
    serde_json::from_str(&text).ok()
}

pub(crate) fn cluster_id(s: &crate::Scenario) -> String {
    format!(
        "/subscriptions/{}/resourceGroups/{}/providers/Microsoft.ContainerService/managedClusters/{}",
        s.subscription_id, s.resource_group, s.cluster.name
    )
}

/// Copy the SSH host key and the user's key pair from `from` into `to` (a cluster's
/// `ssh/`, which keeps keys it finds), so that one key reaches every cluster's nodes.
fn share_ssh_keys(from: &Path, to: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(to).with_context(|| format!("cannot create {}", to.display()))?;
    std::fs::set_permissions(to, std::fs::Permissions::from_mode(0o700))?;
    for name in [
        "id_ed25519",
        "id_ed25519.pub",
        "ssh_host_ed25519_key",
        "ssh_host_ed25519_key.pub",
    ] {
        let dst = to.join(name);
        std::fs::copy(from.join(name), &dst)
            .with_context(|| format!("cannot copy {} to {}", from.join(name).display(), dst.display()))?;
        let mode = if name.ends_with(".pub") { 0o644 } else { 0o600 };
        std::fs::set_permissions(&dst, std::fs::Permissions::from_mode(mode))?;
    }
    Ok(())
}
