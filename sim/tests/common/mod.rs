//! The one harness for tests that drive aks-sim, shared by aks-sim's own tests and by
//! aks-patch's end-to-end tests (whose harness includes this file): start the emulator in a
//! scratch directory, or say once why it cannot start here; reach it with kube-rs, kubectl,
//! raw HTTPS, the official Python client and the system `ssh`; wait for what it does; and
//! prove that a shut down emulator leaves nothing behind.
// Each of the two test binaries uses a part of it.
#![allow(dead_code)]

use aks_sim::{Scenario, Sim, SimConfig, SimEvent};
use serde_json::Value;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Node `i` of the built-in scenario's user pool.
pub fn user_node(i: u32) -> String {
    format!("aks-user-31417037-vmss{i:06}")
}

/// Whether the tests that start aks-sim can run here: its Linux nodes are chroots behind
/// sshd, which needs root. Without root this says so once, on stderr (past the test
/// harness's capture, so that it shows in a passing run), with how to run them.
pub fn running_as_root() -> bool {
    static ROOT: OnceLock<bool> = OnceLock::new();
    *ROOT.get_or_init(|| {
        // SAFETY: geteuid has no preconditions.
        let root = unsafe { libc::geteuid() } == 0;
        if !root {
            let _ = writeln!(
                std::io::stderr(),
                "skipping the tests that start aks-sim: its nodes are chroots behind sshd, which needs root; run them with `sudo scripts/test`"
            );
        }
        root
    })
}

/// The first statement of a test that starts aks-sim: without root the test returns at
/// once (and passes; [`running_as_root`] said why, once for the whole run).
macro_rules! skip_unless_root {
    () => {
        if !crate::common::running_as_root() {
            return;
        }
    };
}

/// A running emulator in a scratch directory (its state directory is `state` in there),
/// with a kube-rs client from the kubeconfig it writes.
pub struct Emulator {
    pub sim: Sim,
    /// kube-rs with its own retries off, so that every status the server sends is seen.
    pub client: kube::Client,
    /// Scratch space of the test: the state directory, kubectl's cache and HOME, known_hosts.
    pub dir: tempfile::TempDir,
}

impl Emulator {
    pub async fn start(scenario: Scenario) -> Emulator {
        let dir = tempfile::tempdir().expect("temp dir");
        let sim = Sim::start(SimConfig::new(dir.path().join("state"), scenario))
            .await
            .expect("aks-sim starts");
        let client = client(sim.state_dir()).await;
        Emulator { sim, client, dir }
    }

    /// Start the scenario `yaml` (a test's own; parse errors name `what`).
    pub async fn start_yaml(yaml: &str, what: &str) -> Emulator {
        Emulator::start(Scenario::parse(yaml, what).expect("the test scenario parses")).await
    }

    /// The built-in scenario (`aks-sim up` without a file).
    pub async fn default() -> Emulator {
        Emulator::start(Scenario::default_scenario()).await
    }

    pub fn state(&self) -> PathBuf {
        self.sim.state_dir().to_path_buf()
    }

    pub fn kubeconfig(&self) -> PathBuf {
        self.sim.state_dir().join("kubeconfig")
    }

    /// The Nodes, through kube-rs.
    pub fn nodes(&self) -> kube::Api<k8s_openapi::api::core::v1::Node> {
        kube::Api::all(self.client.clone())
    }

    /// The Pods of namespace `ns`, through kube-rs.
    pub fn pods(&self, ns: &str) -> kube::Api<k8s_openapi::api::core::v1::Pod> {
        kube::Api::namespaced(self.client.clone(), ns)
    }

    /// `kubectl ARGS` with the emulator's kubeconfig; (exit success, stdout, stderr).
    pub async fn kubectl(&self, args: &[&str]) -> (bool, String, String) {
        self.kubectl_with(&self.kubeconfig(), args).await
    }

    /// `kubectl ARGS` with another kubeconfig (another user); (exit success, stdout, stderr).
    pub async fn kubectl_with(&self, kubeconfig: &Path, args: &[&str]) -> (bool, String, String) {
        let mut cmd = self.kubectl_command(args);
        cmd.arg("--request-timeout=30s")
            .env("KUBECONFIG", kubeconfig)
            .stdin(Stdio::null());
        let out = output_within(cmd, Duration::from_secs(90), "kubectl").await;
        (out.status.success(), stdout(&out), stderr(&out))
    }

    /// `kubectl ARGS` reading `stdin` (exec, attach, apply -f -); (exit code, stdout, stderr).
    pub async fn kubectl_stdin(&self, args: &[&str], stdin: &str) -> (i32, String, String) {
        use tokio::io::AsyncWriteExt;
        let mut child = self.kubectl_command(args).spawn().expect("kubectl runs");
        let mut w = child.stdin.take().expect("piped stdin");
        w.write_all(stdin.as_bytes()).await.expect("kubectl reads its stdin");
        drop(w);
        let out = tokio::time::timeout(Duration::from_secs(90), child.wait_with_output())
            .await
            .expect("kubectl ends within 90 s")
            .expect("kubectl runs");
        (out.status.code().unwrap_or(-1), stdout(&out), stderr(&out))
    }

    /// `kubectl ARGS` not started yet (to follow a stream), with piped stdio; its cache and
    /// HOME in the scratch directory.
    pub fn kubectl_command(&self, args: &[&str]) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new("kubectl");
        cmd.arg(format!("--cache-dir={}", self.dir.path().join("kube-cache").display()))
            .args(args)
            .env("KUBECONFIG", self.kubeconfig())
            .env("HOME", self.dir.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        cmd
    }

    /// An HTTPS client trusting only the emulator's CA.
    pub fn https(&self) -> reqwest::Client {
        ca_client(self.sim.state_dir())
    }

    /// For raw Kubernetes API requests: an HTTPS client, the API server's URL and the
    /// kubeconfig's token.
    pub fn raw(&self) -> (reqwest::Client, String, String) {
        let kc = std::fs::read_to_string(self.kubeconfig()).expect("kubeconfig");
        let token = kc
            .lines()
            .find_map(|l| l.trim().strip_prefix("token: "))
            .expect("a token in the kubeconfig")
            .to_string();
        (self.https(), self.sim.endpoints().kube_url.clone(), token)
    }

    /// Run a Python script (the official clients) with the kubeconfig as its first argument
    /// and then `args`; the last line it prints, as JSON.
    pub async fn python(&self, script: &str, args: &[&str]) -> Value {
        let mut cmd = tokio::process::Command::new("python3");
        cmd.arg("-c")
            .arg(script)
            .arg(self.kubeconfig())
            .args(args)
            .stdin(Stdio::null())
            .kill_on_drop(true);
        let out = output_within(cmd, Duration::from_secs(120), "python3").await;
        let text = stdout(&out);
        assert!(out.status.success(), "{text}{}", stderr(&out));
        serde_json::from_str(text.trim().lines().last().unwrap_or("")).unwrap_or_else(|e| panic!("{e}: {text}"))
    }

    /// The Node object as the emulator stores it.
    pub fn node(&self, name: &str) -> Value {
        self.sim
            .shared
            .store
            .get(aks_sim::store::NODES, None, name)
            .unwrap_or_else(|| panic!("node {name} exists"))
    }

    /// The node's current bootID, as the API server shows it.
    pub fn boot_id(&self, node: &str) -> String {
        self.node(node)["status"]["nodeInfo"]["bootID"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    pub fn unschedulable(&self, node: &str) -> bool {
        self.node(node)["spec"]["unschedulable"].as_bool().unwrap_or(false)
    }

    pub fn kernel(&self, node: &str) -> String {
        self.node(node)["status"]["nodeInfo"]["kernelVersion"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    fn ready(&self, node: &str) -> bool {
        self.node(node)["status"]["conditions"]
            .as_array()
            .is_some_and(|cs| cs.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"))
    }

    /// The emulator's event log so far.
    pub fn events(&self) -> Vec<SimEvent> {
        self.sim.events()
    }

    /// Wait (up to `timeout`) until the event log has an event of `kind`, on `node` if given.
    pub async fn wait_for_event(&self, kind: &str, node: Option<&str>, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while !self
            .events()
            .iter()
            .any(|e| e.kind == kind && (node.is_none() || e.node.as_deref() == node))
        {
            assert!(
                Instant::now() < deadline,
                "no {kind} event for {node:?} within {timeout:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Take a node down for good, as a broken VM would be: it reboots (asked for in its root,
    /// as its `reboot` shim does, so that no transport is used) and never returns. Returns
    /// once the Node is no longer Ready.
    pub async fn take_down(&self, node: &str) {
        self.sim
            .fault(aks_sim::Fault::NodeNeverReturns { node: node.to_string() })
            .expect("the fault applies");
        self.request_reboot(node);
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.ready(node) {
            assert!(
                Instant::now() < deadline,
                "node {node} still Ready 30 s after it went down"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Reboot a node from inside, without any transport: the request its `reboot` shim
    /// writes into its root.
    pub fn request_reboot(&self, node: &str) {
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(self.node_root(node).join("var/lib/aks-sim/requests"))
            .expect("the node's request file");
        f.write_all(b"reboot\tthe test\n").expect("the reboot is asked for");
    }

    /// The first Linux node, as the API server lists them.
    pub async fn first_linux_node(&self) -> String {
        let nodes = self
            .nodes()
            .list(&Default::default())
            .await
            .expect("the nodes are listed");
        nodes
            .items
            .into_iter()
            .find(|n| {
                n.metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get("kubernetes.io/os"))
                    .map(String::as_str)
                    == Some("linux")
            })
            .and_then(|n| n.metadata.name)
            .expect("a Linux node")
    }

    /// Reboot a node over SSH from outside, as kured or an operator would.
    pub async fn reboot_by_hand(&self, node: &str) {
        let out = self
            .ssh(node, "nohup sh -c 'sleep 1; sudo reboot' >/dev/null 2>&1 &")
            .await;
        assert!(out.status.success(), "reboot over ssh: {}", stderr(&out));
    }

    /// The root directory of a Linux node's machine (its chroot).
    pub fn node_root(&self, node: &str) -> PathBuf {
        self.sim
            .shared
            .node_runtime
            .get()
            .expect("the node runtime")
            .node_root(node)
            .unwrap_or_else(|| panic!("{node} is a Linux node"))
            .to_path_buf()
    }

    /// `ssh azureuser@NODE COMMAND` with the emulator's key (host keys learnt into the
    /// scratch directory), not started yet.
    pub fn ssh_command(&self, node: &str, command: &str) -> tokio::process::Command {
        let ip = self.sim.shared.node(node).expect("node exists").ip.to_string();
        let mut c = tokio::process::Command::new("ssh");
        c.arg("-F")
            .arg("/dev/null")
            .arg("-i")
            .arg(self.sim.state_dir().join("ssh/id_ed25519"))
            .arg("-o")
            .arg(format!(
                "UserKnownHostsFile={}",
                self.dir.path().join("known_hosts").display()
            ))
            .args(["-o", "StrictHostKeyChecking=accept-new", "-o", "BatchMode=yes"])
            .args([
                "-o",
                "IdentitiesOnly=yes",
                "-o",
                "ConnectTimeout=5",
                "-o",
                "LogLevel=ERROR",
            ])
            .arg("-p")
            .arg(self.sim.endpoints().ssh_port.to_string())
            .arg(format!("azureuser@{ip}"))
            .arg(command)
            .stdin(Stdio::null())
            .kill_on_drop(true);
        c
    }

    /// Run a command on a node over SSH (at most 60 s).
    pub async fn ssh(&self, node: &str, command: &str) -> Output {
        output_within(self.ssh_command(node, command), Duration::from_secs(60), "ssh").await
    }

    /// Stop serving, end SSH sessions, remove the chroots.
    pub async fn shutdown(self) {
        self.sim.shutdown().await;
    }

    /// Shut down and prove nothing is left: no machine roots (nodes and bastion), no sshd
    /// for this config, no process chrooted into the instance.
    pub async fn shutdown_leaves_nothing(self) {
        let rt = self.sim.shared.node_runtime.get().expect("node runtime");
        let instance = rt.instance_dir().to_path_buf();
        let config = self.sim.state_dir().join("ssh/sshd_config");
        assert!(instance.starts_with("/var/lib/aks-sim"), "{}", instance.display());
        assert!(instance.is_dir());
        self.sim.shutdown().await;
        assert!(!instance.exists(), "{} is left behind", instance.display());
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let left = processes_using(&config, &instance);
            if left.is_empty() {
                break;
            }
            assert!(Instant::now() < deadline, "processes left behind: {left:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// A running fleet of emulated clusters (one ARM endpoint, a Kubernetes API server, nodes
/// and event log per cluster) in a scratch directory: the fleet, and an [`Emulator`] per
/// cluster, in scenario order, with everything a single-cluster test uses.
pub struct FleetEmulator {
    pub fleet: aks_sim::Fleet,
    pub clusters: Vec<Emulator>,
    pub dir: tempfile::TempDir,
}

impl FleetEmulator {
    pub async fn start(scenario: aks_sim::FleetScenario) -> FleetEmulator {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut fleet = aks_sim::Fleet::start(aks_sim::FleetConfig::new(dir.path().join("state"), scenario))
            .await
            .expect("the aks-sim fleet starts");
        let mut clusters = vec![];
        for sim in std::mem::take(&mut fleet.clusters) {
            let client = client(sim.state_dir()).await;
            let dir = tempfile::tempdir().expect("temp dir");
            clusters.push(Emulator { sim, client, dir });
        }
        FleetEmulator { fleet, clusters, dir }
    }

    /// Start the fleet scenario `yaml` (a test's own; parse errors name `what`).
    pub async fn start_yaml(yaml: &str, what: &str) -> FleetEmulator {
        FleetEmulator::start(aks_sim::FleetScenario::parse(yaml, what).expect("the fleet scenario parses")).await
    }

    /// The cluster named `name`.
    pub fn cluster(&self, name: &str) -> &Emulator {
        self.clusters
            .iter()
            .find(|c| c.sim.endpoints().cluster_name == name)
            .unwrap_or_else(|| panic!("the fleet has a cluster named {name}"))
    }

    /// The fleet's state directory (its `ca.pem`, `az` stand-in, SSH key, kubeconfig with a
    /// context per cluster).
    pub fn state(&self) -> PathBuf {
        self.fleet.state_dir().to_path_buf()
    }

    /// The environment that points aks-patch and kubectl at the whole fleet.
    pub fn env(&self) -> Vec<(String, String)> {
        self.fleet.env()
    }

    /// An HTTPS client trusting only the fleet's CA.
    pub fn https(&self) -> reqwest::Client {
        ca_client(self.fleet.state_dir())
    }

    /// The one ARM endpoint's URL.
    pub fn arm_url(&self) -> String {
        self.fleet.endpoints().arm_url.clone()
    }

    /// A valid ARM token (what the `az` stand-in hands out).
    pub fn arm_token(&self) -> String {
        std::fs::read_to_string(self.state().join("az/access-token")).expect("the az stand-in's token")
    }

    /// `method` on ARM at `path_and_query` (or an absolute `nextLink`), with `body` as JSON
    /// when given; (status, body as JSON or null).
    pub async fn arm(&self, method: reqwest::Method, path_and_query: &str, body: Option<&Value>) -> (u16, Value) {
        let url = if path_and_query.starts_with("https://") {
            path_and_query.to_string()
        } else {
            format!("{}{path_and_query}", self.arm_url())
        };
        let mut req = self.https().request(method, url).bearer_auth(self.arm_token());
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().await.expect("the request reaches aks-sim's ARM");
        let status = resp.status().as_u16();
        let bytes = resp.bytes().await.expect("body");
        (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
    }

    /// GET on ARM; (status, body).
    pub async fn arm_get(&self, path_and_query: &str) -> (u16, Value) {
        self.arm(reqwest::Method::GET, path_and_query, None).await
    }

    /// Stop every cluster and the ARM endpoint.
    pub async fn shutdown(self) {
        for c in self.clusters {
            c.shutdown().await;
        }
        self.fleet.shutdown().await;
    }
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Run `cmd` to its end, at most `limit` (then the test fails naming `what`).
pub async fn output_within(mut cmd: tokio::process::Command, limit: Duration, what: &str) -> Output {
    cmd.kill_on_drop(true);
    tokio::time::timeout(limit, cmd.output())
        .await
        .unwrap_or_else(|_| panic!("{what} did not finish within {limit:?}"))
        .unwrap_or_else(|e| panic!("{what} runs: {e}"))
}

/// Live (not zombie) processes whose command line names `config` or whose root is under `instance`.
fn processes_using(config: &Path, instance: &Path) -> Vec<String> {
    let needle = config.display().to_string();
    let mut out = vec![];
    for e in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let p = e.path();
        if !e.file_name().to_string_lossy().chars().all(|c| c.is_ascii_digit()) {
            continue;
        }
        let stat = std::fs::read_to_string(p.join("stat")).unwrap_or_default();
        if stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
        {
            continue;
        }
        let cmdline = std::fs::read(p.join("cmdline"))
            .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
            .unwrap_or_default();
        let root = std::fs::read_link(p.join("root")).unwrap_or_default();
        if cmdline.contains(&needle) || root.starts_with(instance) {
            out.push(format!("{}: {cmdline}", e.file_name().to_string_lossy()));
        }
    }
    out
}

/// An HTTPS client trusting only the CA of the emulator whose state directory is `state`.
pub fn ca_client(state: &Path) -> reqwest::Client {
    aks_sim::tls::install_crypto_provider();
    let pem = std::fs::read(state.join("ca.pem")).expect("ca.pem");
    let certs = reqwest::Certificate::from_pem_bundle(&pem).expect("the CA parses");
    reqwest::Client::builder()
        .tls_certs_only(certs)
        .build()
        .expect("an HTTPS client")
}

/// A kube-rs client from the emulator's kubeconfig, with kube-rs's own retries off so
/// that every status the server sends is seen.
pub async fn client(state: &Path) -> kube::Client {
    aks_sim::tls::install_crypto_provider();
    let kc = kube::config::Kubeconfig::read_from(state.join("kubeconfig")).expect("kubeconfig parses");
    let mut cfg = kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
        .await
        .expect("config from kubeconfig");
    cfg.default_retry = false;
    kube::Client::try_from(cfg).expect("client")
}

/// Poll `f` every 100 ms until it gives a value, at most `timeout`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Check `f` every 50 ms until it holds, at most 60 s.
pub async fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The API server's Status from a kube-rs error (panics on any other error).
pub fn api_status(e: kube::Error) -> kube::core::Status {
    match e {
        kube::Error::Api(s) => *s,
        other => panic!("expected an API error Status, got {other:?}"),
    }
}
