//! aks-patch's end-to-end harness: aks-sim started in-process (through the emulator's test
//! harness, shared with aks-sim's own tests), the real `aks-patch` binary run against it
//! (real ARM over HTTPS with the stand-in `az`, real Kubernetes API, real ssh), and the
//! emulator's event log read back.
#![allow(dead_code)]

#[macro_use]
#[path = "../../sim/tests/common/mod.rs"]
mod emulator;
pub use emulator::*;

use aks_sim::SimEvent;
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

/// `aks-patch apply` one node at a time, without a prompt, evictions retried every second;
/// then `extra`.
pub fn rollout_args<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec!["apply", "--one-at-a-time", "--yes", "--eviction-retry-interval", "1"];
    v.extend_from_slice(extra);
    v
}

/// `aks-patch apply` as most rollout tests run it: [`rollout_args`] with drains that evict
/// emptyDir and bare pods; then `extra`.
pub fn apply_args<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    let mut v = rollout_args(&["--delete-emptydir-data", "--force"]);
    v.extend_from_slice(extra);
    v
}

/// A credential that hands out one token (valid for an hour), whatever is asked.
#[derive(Debug)]
pub struct FixedToken(pub String);

#[async_trait::async_trait]
impl azure_core::credentials::TokenCredential for FixedToken {
    async fn get_token(
        &self,
        _: &[&str],
        _: Option<azure_core::credentials::TokenRequestOptions<'_>>,
    ) -> azure_core::Result<azure_core::credentials::AccessToken> {
        Ok(azure_core::credentials::AccessToken::new(
            self.0.clone(),
            azure_core::time::OffsetDateTime::now_utc() + azure_core::time::Duration::hours(1),
        ))
    }
}

/// A loopback port nothing listens on now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A daemon of the Prometheus family (Debian's `prometheus`, `prometheus-pushgateway`) with
/// `args`, listening on a free loopback port and killed when the child is dropped. Returns
/// once its `/-/ready` answers (within `ready_within`), with its URL.
pub async fn start_prometheus_daemon(
    program: &str,
    args: &[String],
    ready_within: Duration,
) -> (tokio::process::Child, String) {
    // reqwest below needs the process's crypto provider (aks-patch's own clients install it).
    aks_patch::http::install_crypto_provider();
    let port = free_port();
    let child = tokio::process::Command::new(program)
        .args(args)
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--log.level=warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("{program} runs (scripts/setup installs it): {e}"));
    let url = format!("http://127.0.0.1:{port}");
    let deadline = std::time::Instant::now() + ready_within;
    loop {
        if let Ok(r) = reqwest::get(format!("{url}/-/ready")).await {
            if r.status().is_success() {
                return (child, url);
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{program} ready within {ready_within:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A small cluster: 3 Ubuntu nodes with a pending kernel, a Deployment with a PDB, a DaemonSet.
pub const SMALL: &str = r#"
resourceGroup: rg-test
cluster: {name: aks-test}
timing: {shutdownSeconds: 0.2, bootSeconds: 1, readySeconds: 0.3, podStartSeconds: 0.3, terminationSeconds: 0.1, aptSeconds: 0.1, aptUpdateSeconds: 0.1}
pools:
  - name: nodes
    mode: System
    count: 3
    kernel: 5.15.0-1068-azure
    updates:
      - {name: linux-azure, from: 5.15.0.1068.66, to: 5.15.0.1073.71, pocket: jammy-security, kernel: 5.15.0-1073-azure}
      - {name: openssl, from: 3.0.2-0ubuntu1.18, to: 3.0.2-0ubuntu1.19, pocket: jammy-security}
workloads:
  - {kind: Deployment, name: web, namespace: app, replicas: 2, pool: nodes, pdb: {minAvailable: 1}, terminationGraceSeconds: 1}
  - {kind: DaemonSet, name: agent, namespace: kube-system}
"#;

/// [`SMALL`] with `nodes` nodes whose boot takes `boot_seconds`.
pub fn small_with(nodes: u32, boot_seconds: f64) -> String {
    SMALL
        .replace("bootSeconds: 1,", &format!("bootSeconds: {boot_seconds},"))
        .replace("count: 3", &format!("count: {nodes}"))
}

/// [`SMALL`] with SSH disabled on its pool: the nodes are reached with `--via kube` or
/// `--via run-command`.
pub fn no_ssh() -> String {
    SMALL.replace("    mode: System\n", "    mode: System\n    sshAccess: Disabled\n")
}

/// [`no_ssh`] with node 2 cordoned by hand.
pub fn no_ssh_one_cordoned() -> String {
    format!("{}nodes:\n  {}: {{cordoned: true}}\n", no_ssh(), small_node(2))
}

pub fn small_node(i: u32) -> String {
    format!("aks-nodes-31415926-vmss{i:06}")
}

/// A running aks-sim for aks-patch to work on (the emulator's harness, plus running
/// aks-patch against it).
pub struct Cluster {
    emu: Emulator,
}

impl std::ops::Deref for Cluster {
    type Target = Emulator;
    fn deref(&self) -> &Emulator {
        &self.emu
    }
}

/// What a finished aks-patch run left: its exit code and output.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Wait (at most 300 s) for an aks-patch started with `Cluster::command(...).spawn()`.
pub async fn finish(child: tokio::process::Child) -> Run {
    let out = tokio::time::timeout(Duration::from_secs(300), child.wait_with_output())
        .await
        .expect("aks-patch finished within 300 s")
        .expect("aks-patch runs");
    Run::from(out)
}

impl From<std::process::Output> for Run {
    fn from(out: std::process::Output) -> Run {
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: stdout(&out),
            stderr: stderr(&out),
        }
    }
}

/// An aks-patch run going on in its own process group (as a shell job), whose stderr the
/// test reads as it comes, as a user watching it would.
pub struct Running {
    child: tokio::process::Child,
    stderr: std::sync::Arc<std::sync::Mutex<String>>,
    reader: tokio::task::JoinHandle<()>,
}

impl Running {
    /// Follow `child`'s stderr as it comes.
    fn read(mut child: tokio::process::Child) -> Running {
        use tokio::io::AsyncReadExt;
        let mut pipe = child.stderr.take().expect("piped stderr");
        let stderr = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let seen = stderr.clone();
        let reader = tokio::spawn(async move {
            let mut buf = [0u8; 4096];
            while let Ok(n) = pipe.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                seen.lock().unwrap().push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        Running { child, stderr, reader }
    }

    /// What the run printed on stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Wait (at most 120 s) until what the run printed on stderr satisfies `f`.
    pub async fn wait_for_stderr(&self, what: &str, f: impl Fn(&str) -> bool) {
        let deadline = std::time::Instant::now() + Duration::from_secs(120);
        while !f(&self.stderr()) {
            assert!(
                std::time::Instant::now() < deadline,
                "aks-patch did not print {what} within 120 s:\n{}",
                self.stderr()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Send `sig` to the run's process group, as Ctrl-C on a terminal does.
    pub fn signal(&self, sig: i32) {
        signal_group(&self.child, sig);
    }

    /// Wait (at most 300 s) for the run to end.
    pub async fn finish(self) -> Run {
        let Running { child, stderr, reader } = self;
        let mut run = finish(child).await;
        reader.await.expect("stderr is read to its end");
        run.stderr = stderr.lock().unwrap().clone();
        run
    }
}

/// Send `sig` to the process group of a child started with [`Cluster::spawn_job`], as
/// Ctrl-C on a terminal does (aks-patch and its ssh children get it).
pub fn signal_group(child: &tokio::process::Child, sig: i32) {
    let pid = child.id().expect("running") as i32;
    // SAFETY: sending a signal to the process group of our own child.
    unsafe { libc::kill(-pid, sig) };
}

impl Cluster {
    /// Start the scenario `yaml`, or the built-in one.
    pub async fn start(yaml: Option<&str>) -> Cluster {
        let emu = match yaml {
            Some(y) => Emulator::start_yaml(y, "test scenario").await,
            None => Emulator::default().await,
        };
        Cluster { emu }
    }

    /// `-g RG -n CLUSTER`.
    pub fn target(&self) -> Vec<String> {
        let ep = self.sim.endpoints();
        vec![
            "-g".into(),
            ep.resource_group.clone(),
            "-n".into(),
            ep.cluster_name.clone(),
        ]
    }

    /// `aks-patch ARGS` with the emulator's environment, not started yet.
    pub fn command(&self, args: &[&str]) -> tokio::process::Command {
        aks_patch_command(self.sim.env(), args)
    }

    /// `aks-patch ARGS -g RG -n CLUSTER`, not started yet.
    pub fn command_with_target(&self, args: &[&str]) -> tokio::process::Command {
        let mut all: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        all.extend(self.target());
        let refs: Vec<&str> = all.iter().map(String::as_str).collect();
        self.command(&refs)
    }

    /// `aks-patch ARGS -g RG -n CLUSTER` started in the background.
    pub fn spawn(&self, args: &[&str]) -> tokio::process::Child {
        self.command_with_target(args).spawn().expect("aks-patch starts")
    }

    /// `aks-patch ARGS -g RG -n CLUSTER` started in a process group of its own, as a shell
    /// job is, for [`signal_group`].
    pub fn spawn_job(&self, args: &[&str]) -> tokio::process::Child {
        let mut cmd = self.command_with_target(args);
        cmd.process_group(0);
        cmd.spawn().expect("aks-patch starts")
    }

    /// `aks-patch ARGS -g RG -n CLUSTER` started as a shell job, its stderr read as it comes.
    pub fn start_job(&self, args: &[&str]) -> Running {
        Running::read(self.spawn_job(args))
    }

    /// Hold `node`'s package lock, as a running unattended-upgrades (the dpkg lock) or
    /// dnf-automatic (Azure Linux) does, until [`Cluster::release_package_lock`].
    pub fn hold_package_lock(&self, node: &str) {
        self.sim
            .fault(aks_sim::Fault::DpkgLock {
                node: node.to_string(),
                seconds: 3600.0,
            })
            .expect("the fault applies");
    }

    /// The holder of `node`'s package lock is done.
    pub fn release_package_lock(&self, node: &str) {
        self.sim
            .fault(aks_sim::Fault::DpkgLock {
                node: node.to_string(),
                seconds: 0.0,
            })
            .expect("the fault applies");
    }

    /// Wait (at most 120 s) until the upgrade aks-patch started on `node` has printed `says`
    /// (apt's `Waiting for cache lock`, say).
    pub async fn wait_for_upgrade_output(&self, node: &str, says: &str) {
        let deadline = std::time::Instant::now() + Duration::from_secs(120);
        while !self.upgrade_log(node).contains(says) {
            assert!(
                std::time::Instant::now() < deadline,
                "the upgrade on {node} did not print `{says}` within 120 s:\n{}",
                self.upgrade_log(node)
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Run `aks-patch ARGS` against this cluster (the target flags are added when `with_target`).
    pub async fn run(&self, args: &[&str], with_target: bool) -> Run {
        self.run_with(args, with_target, |_| {}).await
    }

    /// [`Cluster::run`] with the command changed by `tweak` first (its environment, say).
    pub async fn run_with(
        &self,
        args: &[&str],
        with_target: bool,
        tweak: impl FnOnce(&mut tokio::process::Command),
    ) -> Run {
        let mut all: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        if with_target {
            all.extend(self.target());
        }
        let refs: Vec<&str> = all.iter().map(String::as_str).collect();
        let mut cmd = self.command(&refs);
        tweak(&mut cmd);
        finish(cmd.spawn().expect("aks-patch starts")).await
    }

    /// aks-patch's state directory (`AKS_PATCH_STATE_DIR` of the emulator's environment).
    pub fn state_dir(&self) -> PathBuf {
        self.sim.state_dir().join("aks-patch")
    }

    pub fn lease(&self) -> Option<serde_json::Value> {
        self.sim
            .shared
            .store
            .get(aks_sim::store::LEASES, Some("kube-system"), "aks-patch")
    }

    /// The aks-patch Lease is free (absent, or without a holder).
    pub fn lock_free(&self) -> bool {
        match self.lease() {
            None => true,
            Some(l) => l["spec"]["holderIdentity"].as_str().is_none_or(str::is_empty),
        }
    }

    /// Wait (at most 60 s) until the aks-patch Lease is held.
    pub async fn wait_for_lock(&self) {
        wait_until("the aks-patch lock to be taken", || !self.lock_free()).await;
    }

    /// Make the `web` PodDisruptionBudget of [`SMALL`] refuse every eviction; returns a node
    /// that runs a `web` pod (whose drain will therefore block).
    pub fn block_web_pdb(&self) -> String {
        self.sim
            .fault(aks_sim::Fault::PdbNeverAllows {
                namespace: "app".into(),
                name: "web-pdb".into(),
            })
            .expect("fault applies");
        let pods = self.sim.shared.store.list(aks_sim::store::PODS, Some("app"));
        pods[0]["spec"]["nodeName"]
            .as_str()
            .expect("web pod is scheduled")
            .to_string()
    }

    /// Events of `kind` on `node` in the emulator's log so far.
    pub fn count(&self, kind: &str, node: &str) -> usize {
        self.events()
            .iter()
            .filter(|e| e.kind == kind && e.node.as_deref() == Some(node))
            .count()
    }

    /// aks-patch's node-shell pods (`--via kube`) in the emulator now.
    pub fn shell_pods(&self) -> Vec<String> {
        self.sim
            .shared
            .store
            .list(aks_sim::store::PODS, None)
            .into_iter()
            .filter(|p| p["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "aks-patch")
            .map(|p| p["metadata"]["name"].as_str().unwrap_or("").to_string())
            .collect()
    }

    /// What the upgrades aks-patch started on `node` printed so far (their logs under
    /// `/var/log/aks-patch` in the node's root, whatever the transport).
    pub fn upgrade_log(&self, node: &str) -> String {
        let dir = self.node_root(node).join("var/log/aks-patch");
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return String::new();
        };
        let mut logs: Vec<PathBuf> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "log"))
            .collect();
        logs.sort();
        logs.iter()
            .map(|p| std::fs::read_to_string(p).unwrap_or_default())
            .collect()
    }
}

/// `aks-patch ARGS` with environment `env`, not started yet.
pub fn aks_patch_command(env: Vec<(String, String)>, args: &[&str]) -> tokio::process::Command {
    let mut c = tokio::process::Command::new(env!("CARGO_BIN_EXE_aks-patch"));
    c.args(args);
    for (k, v) in env {
        c.env(k, v);
    }
    c.env("NO_COLOR", "1")
        .env_remove("AKS_PATCH_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    c
}

/// A running fleet of emulated clusters for `aks-patch fleet ...`: one ARM endpoint (and
/// one credential, CA and SSH key) for all, and a [`Cluster`] per cluster, in scenario
/// order, with its own API server, nodes and event log.
pub struct Fleet {
    pub fleet: aks_sim::Fleet,
    pub clusters: Vec<Cluster>,
    pub dir: tempfile::TempDir,
}

impl Fleet {
    /// Start the fleet scenario `yaml` (see docs/scenario.md, "Fleets").
    pub async fn start(yaml: &str) -> Fleet {
        let FleetEmulator { fleet, clusters, dir } = FleetEmulator::start_yaml(yaml, "test fleet scenario").await;
        Fleet {
            fleet,
            clusters: clusters.into_iter().map(|emu| Cluster { emu }).collect(),
            dir,
        }
    }

    /// The cluster named `name`.
    pub fn cluster(&self, name: &str) -> &Cluster {
        self.clusters
            .iter()
            .find(|c| c.sim.endpoints().cluster_name == name)
            .unwrap_or_else(|| panic!("the fleet has a cluster named {name}"))
    }

    /// `aks-patch ARGS` with the fleet's environment (its ARM endpoint, credential, CA, SSH
    /// key, and `AKS_PATCH_STATE_DIR` in the fleet's state directory), not started yet.
    pub fn command(&self, args: &[&str]) -> tokio::process::Command {
        aks_patch_command(self.fleet.env(), args)
    }

    /// `aks-patch ARGS` run to its end.
    pub async fn run(&self, args: &[&str]) -> Run {
        finish(self.command(args).spawn().expect("aks-patch starts")).await
    }

    /// `aks-patch ARGS` started as a shell job (its own process group), its stderr read as
    /// it comes, for Ctrl-C tests.
    pub fn start_job(&self, args: &[&str]) -> Running {
        let mut cmd = self.command(args);
        cmd.process_group(0);
        Running::read(cmd.spawn().expect("aks-patch starts"))
    }

    /// aks-patch's state directory for fleet runs.
    pub fn state_dir(&self) -> PathBuf {
        self.fleet.state_dir().join("aks-patch")
    }

    /// Stop every cluster and the ARM endpoint.
    pub async fn shutdown(self) {
        for c in self.clusters {
            c.emu.shutdown().await;
        }
        self.fleet.shutdown().await;
    }
}

impl Run {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}\nstderr:\n{}", self.stdout, self.stderr))
    }

    /// The record of node `name` in the run record that `apply -o json` printed.
    pub fn node_record(&self, name: &str) -> serde_json::Value {
        let rec = self.json();
        rec["nodes"]
            .as_array()
            .and_then(|nodes| nodes.iter().find(|n| n["name"] == name))
            .unwrap_or_else(|| panic!("no record of node {name} in:\n{}", self.stdout))
            .clone()
    }

    pub fn assert_code(&self, code: i32) {
        assert_eq!(
            self.code, code,
            "exit code\nstdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
    }
}

/// The run records under a journal directory (`<dir>/<cluster>/<run>.json`), oldest first.
pub fn run_records(journal: &std::path::Path) -> Vec<serde_json::Value> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(journal)
        .expect("the journal directory")
        .flat_map(|cluster| std::fs::read_dir(cluster.expect("a cluster's directory").path()).expect("its runs"))
        .map(|e| e.expect("a run record").path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    paths.sort();
    paths
        .iter()
        .map(|p| serde_json::from_slice(&std::fs::read(p).expect("a readable record")).expect("a JSON record"))
        .collect()
}

pub fn of_kind<'a>(events: &'a [SimEvent], kind: &str) -> Vec<&'a SimEvent> {
    events.iter().filter(|e| e.kind == kind).collect()
}

pub fn nodes_with(events: &[SimEvent], kind: &str) -> BTreeSet<String> {
    events
        .iter()
        .filter(|e| e.kind == kind)
        .filter_map(|e| e.node.clone())
        .collect()
}

/// Walk the event log and return the largest number of nodes that were out of service
/// at once because of the tool: cordoned by it (not before it), or rebooting (from the
/// reboot until Ready again).
pub fn max_nodes_out(events: &[SimEvent], cordoned_before: &[String]) -> usize {
    let mut cordoned: BTreeSet<String> = BTreeSet::new();
    let mut rebooting: BTreeSet<String> = BTreeSet::new();
    let mut max = 0;
    for e in events {
        let Some(n) = e.node.clone() else { continue };
        match e.kind.as_str() {
            "cordon" if !cordoned_before.contains(&n) => {
                cordoned.insert(n);
            }
            "uncordon" => {
                cordoned.remove(&n);
            }
            "reboot" => {
                rebooting.insert(n);
            }
            "node-ready" => {
                rebooting.remove(&n);
            }
            _ => {}
        }
        let out: BTreeSet<&String> = cordoned.iter().chain(rebooting.iter()).collect();
        max = max.max(out.len());
    }
    max
}
