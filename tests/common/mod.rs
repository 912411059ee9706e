//! Harness for end-to-end tests: start aks-sim in-process, run the real `aks-patch`
//! binary against it (real ARM over HTTPS with the stand-in `az`, real Kubernetes API,
//! real ssh), and read the emulator's event log.
#![allow(dead_code)]

use aks_sim::{Scenario, Sim, SimConfig, SimEvent};
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

/// `aks-patch apply` as the rollout tests run it: one at a time, no prompt, drains that evict
/// emptyDir and bare pods, evictions retried every second; then `extra`.
pub fn apply_args<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec![
        "apply",
        "--one-at-a-time",
        "--yes",
        "--delete-emptydir-data",
        "--force",
        "--eviction-retry-interval",
        "1",
    ];
    v.extend_from_slice(extra);
    v
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

pub fn small_node(i: u32) -> String {
    format!("aks-nodes-31415926-vmss{i:06}")
}

pub struct Cluster {
    pub sim: Sim,
    _dir: tempfile::TempDir,
}

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
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).to_string(),
        stderr: String::from_utf8_lossy(&out.stderr).to_string(),
    }
}

/// The node's current bootID, as the API server shows it.
pub fn boot_id(c: &Cluster, n: &str) -> String {
    c.node(n)["status"]["nodeInfo"]["bootID"].as_str().unwrap().to_string()
}

impl Cluster {
    pub async fn start(yaml: Option<&str>) -> Cluster {
        let dir = tempfile::tempdir().expect("temp dir");
        let scenario = match yaml {
            Some(y) => Scenario::parse(y, "test scenario").expect("scenario parses"),
            None => Scenario::default_scenario(),
        };
        let sim = Sim::start(SimConfig::new(dir.path().join("sim"), scenario))
            .await
            .expect("aks-sim starts");
        Cluster { sim, _dir: dir }
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

    pub fn command(&self, args: &[&str]) -> tokio::process::Command {
        let mut c = tokio::process::Command::new(env!("CARGO_BIN_EXE_aks-patch"));
        c.args(args);
        for (k, v) in self.sim.env() {
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

    /// `aks-patch ARGS -g RG -n CLUSTER`, not started yet.
    pub fn command_with_target(&self, args: &[&str]) -> tokio::process::Command {
        let mut all: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        all.extend(self.target());
        let refs: Vec<&str> = all.iter().map(String::as_str).collect();
        self.command(&refs)
    }

    /// Run `aks-patch ARGS` against this cluster (the target flags are added when `with_target`).
    pub async fn run(&self, args: &[&str], with_target: bool) -> Run {
        let mut all: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        if with_target {
            all.extend(self.target());
        }
        let refs: Vec<&str> = all.iter().map(String::as_str).collect();
        finish(self.command(&refs).spawn().expect("aks-patch starts")).await
    }

    pub fn events(&self) -> Vec<SimEvent> {
        self.sim.events()
    }

    pub fn state_dir(&self) -> PathBuf {
        self.sim.state_dir().join("aks-patch")
    }

    /// The Node object as the emulator stores it.
    pub fn node(&self, name: &str) -> serde_json::Value {
        self.sim
            .shared
            .store
            .get(aks_sim::store::NODES, None, name)
            .expect("node exists")
    }

    pub fn unschedulable(&self, name: &str) -> bool {
        self.node(name)["spec"]["unschedulable"].as_bool().unwrap_or(false)
    }

    pub fn kernel(&self, name: &str) -> String {
        self.node(name)["status"]["nodeInfo"]["kernelVersion"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    pub fn lease(&self) -> Option<serde_json::Value> {
        self.sim
            .shared
            .store
            .get(aks_sim::store::LEASES, Some("kube-system"), "aks-patch")
    }

    /// Take a node down for good, as a broken VM would be: it reboots (asked for in its root,
    /// as its `reboot` shim does, so that no transport is used) and never returns. Returns
    /// once the Node is no longer Ready.
    pub async fn take_down(&self, node: &str) {
        self.sim
            .fault(aks_sim::Fault::NodeNeverReturns { node: node.to_string() })
            .unwrap();
        let root = self
            .sim
            .shared
            .node_runtime
            .get()
            .expect("node runtime")
            .node_root(node)
            .expect("a Linux node")
            .to_path_buf();
        {
            use std::io::Write;
            let mut f = std::fs::OpenOptions::new()
                .append(true)
                .create(true)
                .open(root.join("var/lib/aks-sim/requests"))
                .unwrap();
            f.write_all(b"reboot\tthe test\n").unwrap();
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while self.node(node)["status"]["conditions"]
            .as_array()
            .is_some_and(|cs| cs.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"))
        {
            assert!(
                std::time::Instant::now() < deadline,
                "node {node} still Ready 30 s after it went down"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Wait (up to `timeout`) until the event log has an event of `kind`, on `node` if given.
    pub async fn wait_for_event(&self, kind: &str, node: Option<&str>, timeout: Duration) {
        let deadline = std::time::Instant::now() + timeout;
        while !self
            .events()
            .iter()
            .any(|e| e.kind == kind && (node.is_none() || e.node.as_deref() == node))
        {
            assert!(
                std::time::Instant::now() < deadline,
                "no {kind} event for {node:?} within {timeout:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Reboot a node over SSH outside aks-patch, as kured or an operator would.
    pub async fn reboot_by_hand(&self, node: &str) {
        let ip = self.sim.shared.node(node).expect("node exists").ip.to_string();
        let key = self.sim.state_dir().join("ssh/id_ed25519");
        let out = tokio::process::Command::new("ssh")
            .arg("-F")
            .arg("/dev/null")
            .arg("-i")
            .arg(&key)
            .args(["-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null"])
            .args([
                "-o",
                "BatchMode=yes",
                "-o",
                "IdentitiesOnly=yes",
                "-o",
                "ConnectTimeout=5",
            ])
            .args(["-o", "LogLevel=ERROR", "-p", &self.sim.endpoints().ssh_port.to_string()])
            .arg(format!("azureuser@{ip}"))
            .arg("nohup sh -c 'sleep 1; sudo reboot' >/dev/null 2>&1 &")
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output();
        let out = tokio::time::timeout(Duration::from_secs(30), out)
            .await
            .expect("ssh finished within 30 s")
            .expect("ssh runs");
        assert!(
            out.status.success(),
            "reboot over ssh: {}",
            String::from_utf8_lossy(&out.stderr)
        );
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

    /// The aks-patch Lease is free (absent, or without a holder).
    pub fn lock_free(&self) -> bool {
        match self.lease() {
            None => true,
            Some(l) => l["spec"]["holderIdentity"].as_str().is_none_or(str::is_empty),
        }
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
