//! VM scale set run commands and restarts against the emulated ARM, over real TLS: the
//! scripts really run as root in the node's root, and the result shapes are Compute's.
//! The last test drives the same calls with the official Azure SDK for Python
//! (azure-mgmt-compute), unchanged, when it is installed (scripts/setup installs it).

use crate::common::Emulator;
use aks_sim::Fault;
use serde_json::{json, Value};
use std::path::Path;
use std::time::{Duration, Instant};

const API: &str = "api-version=2024-11-01";

const SCENARIO: &str = r#"
subscriptionId: 11111111-2222-3333-4444-555555555555
tenantId: 99999999-8888-7777-6666-555555555555
resourceGroup: rg-runcmd
cluster:
  name: aks-runcmd
  location: westeurope
timing:
  runCommandSeconds: 0.3
pools:
  - name: nodepool1
    count: 2
    sshAccess: Disabled
"#;

/// The emulator, and an HTTPS client for its ARM.
struct Env {
    emu: Emulator,
    http: reqwest::Client,
}

impl std::ops::Deref for Env {
    type Target = Emulator;
    fn deref(&self) -> &Emulator {
        &self.emu
    }
}

impl Env {
    async fn start() -> Env {
        Env::start_yaml(SCENARIO, "runcmd test").await
    }

    async fn start_yaml(yaml: &str, what: &str) -> Env {
        let emu = Emulator::start_yaml(yaml, what).await;
        let http = emu.https();
        Env { emu, http }
    }

    /// The VM path of a node, from its Node's providerID (as a user would find it).
    async fn vm_of(&self, node: &str) -> String {
        let n = self
            .sim
            .shared
            .store
            .get(aks_sim::store::NODES, None, node)
            .expect("node");
        let pid = n["spec"]["providerID"].as_str().expect("providerID").to_string();
        let path = pid.strip_prefix("azure://").expect("azure:// providerID").to_string();
        assert!(path.contains("/virtualMachineScaleSets/"), "{pid}");
        path
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, reqwest::header::HeaderMap, Value) {
        let url = if path.starts_with("https://") {
            path.to_string()
        } else {
            let sep = if path.contains('?') { '&' } else { '?' };
            format!("{}{path}{sep}{API}", self.sim.endpoints().arm_url)
        };
        let mut req = self
            .http
            .request(method, url)
            .bearer_auth(self.sim.shared.tokens.current_arm());
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("request reaches aks-sim");
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let bytes = resp.bytes().await.expect("body");
        (status, headers, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
    }

    /// Follow an LRO's `Location` until it is no longer 202.
    async fn wait_location(&self, headers: &reqwest::header::HeaderMap) -> (u16, Value) {
        let loc = headers["location"].to_str().unwrap().to_string();
        assert!(loc.contains("monitor=true"), "{loc}");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let (s, h, b) = self.call(reqwest::Method::GET, &loc, None).await;
            if s != 202 {
                return (s, b);
            }
            assert!(h.contains_key("retry-after"));
            assert!(Instant::now() < deadline, "operation never ended");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn status_of(&self, headers: &reqwest::header::HeaderMap) -> Value {
        let url = headers["azure-asyncoperation"].to_str().unwrap().to_string();
        self.call(reqwest::Method::GET, &url, None).await.2
    }

    fn node_names(&self) -> Vec<String> {
        self.sim.shared.nodes.iter().map(|n| n.name.clone()).collect()
    }

    fn events(&self, kind: &str) -> Vec<String> {
        self.sim
            .events()
            .into_iter()
            .filter(|e| e.kind == kind)
            .map(|e| format!("{} {}", e.node.unwrap_or_default(), e.detail))
            .collect()
    }
}

fn run_shell(lines: &[&str]) -> Value {
    json!({"commandId": "RunShellScript", "script": lines})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn action_run_command_runs_as_root_in_the_node_and_answers_with_compute_shapes() {
    skip_unless_root!();
    let env = Env::start().await;
    let node = env.node_names()[0].clone();
    let vm = env.vm_of(&node).await;
    let started = Instant::now();
    let (s, h, _) = env
        .call(
            reqwest::Method::POST,
            &format!("{vm}/runCommand"),
            Some(run_shell(&[
                "id -u",
                "echo to-stderr >&2",
                "touch /tmp/ran-by-run-command",
                "exit 3",
            ])),
        )
        .await;
    assert_eq!(s, 202);
    assert!(h.contains_key("azure-asyncoperation") && h.contains_key("location"));
    // A second one on the same instance while the first runs: 409.
    let (s2, _, b2) = env
        .call(
            reqwest::Method::POST,
            &format!("{vm}/runCommand"),
            Some(run_shell(&["true"])),
        )
        .await;
    assert_eq!(s2, 409, "{b2}");
    assert!(b2["error"]["message"]
        .as_str()
        .unwrap()
        .contains("Run command extension execution is in progress"));
    assert_eq!(env.status_of(&h).await["status"], "InProgress");
    let (s, result) = env.wait_location(&h).await;
    assert_eq!(s, 200, "{result}");
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "lasts timing.runCommandSeconds"
    );
    let v = &result["value"][0];
    assert_eq!(v["code"], "ProvisioningState/succeeded");
    // No exit code in the action's result: `exit 3` still "succeeded".
    assert_eq!(
        v["message"],
        "Enable succeeded: \n[stdout]\n0\n\n[stderr]\nto-stderr\n\n"
    );
    let status = env.status_of(&h).await;
    assert_eq!(status["status"], "Succeeded");
    assert!(status["endTime"].is_string());
    let root = env
        .sim
        .shared
        .node_runtime
        .get()
        .unwrap()
        .node_root(&node)
        .unwrap()
        .to_path_buf();
    assert!(
        root.join("tmp/ran-by-run-command").exists(),
        "ran inside the node's root"
    );
    assert!(!Path::new("/tmp/ran-by-run-command").exists(), "not on the host");
    let ev = env.events("run-command");
    assert!(
        ev.iter().any(|e| e.starts_with(&format!("{node} start action"))),
        "{ev:?}"
    );
    assert!(ev.iter().any(|e| e.contains("refused 409")), "{ev:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_keeps_only_the_last_4096_bytes() {
    skip_unless_root!();
    let env = Env::start().await;
    let vm = env.vm_of(&env.node_names()[1]).await;
    let (_, h, _) = env
        .call(
            reqwest::Method::POST,
            &format!("{vm}/runCommand"),
            Some(run_shell(&[
                "i=0; while [ $i -lt 1000 ]; do echo line-$i; i=$((i+1)); done",
                "echo END",
            ])),
        )
        .await;
    let (_, result) = env.wait_location(&h).await;
    let msg = result["value"][0]["message"].as_str().unwrap();
    let stdout = msg
        .strip_prefix("Enable succeeded: \n[stdout]\n")
        .and_then(|m| m.split("\n[stderr]\n").next())
        .unwrap();
    assert_eq!(stdout.len(), 4096, "tail of the output");
    assert!(stdout.ends_with("line-999\nEND\n"));
    assert!(!stdout.contains("line-0\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn managed_run_command_has_exit_code_output_and_is_deleted() {
    skip_unless_root!();
    let env = Env::start().await;
    let vm = env.vm_of(&env.node_names()[0]).await;
    let rc = format!("{vm}/runCommands/aks-patch-probe");
    let (s, h, b) = env
        .call(
            reqwest::Method::PUT,
            &rc,
            Some(json!({"location": "westeurope", "properties": {"source": {"script": "echo out; echo err >&2; exit 7"}, "asyncExecution": false, "timeoutInSeconds": 60}})),
        )
        .await;
    assert_eq!(s, 201, "{b}");
    assert_eq!(b["properties"]["provisioningState"], "Creating");
    let url = h["azure-asyncoperation"].to_str().unwrap().to_string();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, _, st) = env.call(reqwest::Method::GET, &url, None).await;
        if st["status"] != "InProgress" {
            assert_eq!(st["status"], "Succeeded");
            break;
        }
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (s, _, got) = env
        .call(reqwest::Method::GET, &format!("{rc}?$expand=instanceView"), None)
        .await;
    assert_eq!(s, 200);
    let iv = &got["properties"]["instanceView"];
    assert_eq!(iv["executionState"], "Failed");
    assert_eq!(iv["exitCode"], 7);
    assert_eq!(iv["output"], "out\n");
    assert_eq!(iv["error"], "err\n");
    let (s, _, _) = env.call(reqwest::Method::DELETE, &rc, None).await;
    assert_eq!(s, 200);
    let (s, _, _) = env.call(reqwest::Method::GET, &rc, None).await;
    assert_eq!(s, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_conflict_hang_and_lockdown() {
    skip_unless_root!();
    let env = Env::start().await;
    let nodes = env.node_names();
    let vm = env.vm_of(&nodes[0]).await;
    env.sim.fault(Fault::RunCommandConflict { count: 2 }).unwrap();
    for _ in 0..2 {
        let (s, _, _) = env
            .call(
                reqwest::Method::POST,
                &format!("{vm}/runCommand"),
                Some(run_shell(&["true"])),
            )
            .await;
        assert_eq!(s, 409);
    }
    let (s, h, _) = env
        .call(
            reqwest::Method::POST,
            &format!("{vm}/runCommand"),
            Some(run_shell(&["true"])),
        )
        .await;
    assert_eq!(s, 202, "the third goes through");
    env.wait_location(&h).await;

    env.sim.fault(Fault::RunCommandHang { node: nodes[0].clone() }).unwrap();
    let (_, h, _) = env
        .call(
            reqwest::Method::POST,
            &format!("{vm}/runCommand"),
            Some(run_shell(&["true"])),
        )
        .await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(env.status_of(&h).await["status"], "InProgress", "hangs");

    env.sim.fault(Fault::NrgLockdown).unwrap();
    let vm1 = env.vm_of(&nodes[1]).await;
    let (s, _, b) = env
        .call(
            reqwest::Method::POST,
            &format!("{vm1}/runCommand"),
            Some(run_shell(&["true"])),
        )
        .await;
    assert_eq!(s, 403, "{b}");
    assert_eq!(b["error"]["code"], "AuthorizationFailed");
    let msg = b["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("Microsoft.Compute/virtualMachineScaleSets/virtualMachines/runCommand/action"),
        "{msg}"
    );
    assert!(msg.contains("deny assignment"), "{msg}");
    let (s, _, b) = env
        .call(
            reqwest::Method::PUT,
            &format!("{vm1}/runCommands/x"),
            Some(json!({"properties": {"source": {"script": "true"}}})),
        )
        .await;
    assert_eq!(s, 403);
    assert!(b["error"]["message"]
        .as_str()
        .unwrap()
        .contains("virtualMachines/runCommands/write"));
    // Reads still work.
    let (s, _, _) = env
        .call(reqwest::Method::GET, &format!("{vm1}/instanceView"), None)
        .await;
    assert_eq!(s, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_reboots_the_machine_and_ends_when_it_is_back() {
    skip_unless_root!();
    let env = Env::start().await;
    let node = env.node_names()[0].clone();
    let vm = env.vm_of(&node).await;
    let boot = |env: &Env| {
        env.sim.shared.store.get(aks_sim::store::NODES, None, &node).unwrap()["status"]["nodeInfo"]["bootID"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let before = boot(&env);
    let (s, _, iv) = env
        .call(reqwest::Method::GET, &format!("{vm}/instanceView"), None)
        .await;
    assert_eq!(s, 200);
    assert_eq!(iv["statuses"][1]["code"], "PowerState/running");
    let (s, h, _) = env.call(reqwest::Method::POST, &format!("{vm}/restart"), None).await;
    assert_eq!(s, 202);
    let (s, _) = env.wait_location(&h).await;
    assert_eq!(s, 200);
    assert_eq!(env.status_of(&h).await["status"], "Succeeded");
    assert_ne!(boot(&env), before, "a new bootID");
    let reboots = env.events("reboot");
    assert!(
        reboots
            .iter()
            .any(|e| e.starts_with(&node) && e.contains("vmss restart")),
        "{reboots:?}"
    );
}

/// The official Python SDK, unchanged, against the emulator.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azure_mgmt_compute_drives_run_commands_and_restart() {
    skip_unless_root!();
    let have = std::process::Command::new("python3")
        .args(["-c", "import azure.mgmt.compute, azure.identity"])
        .status()
        .is_ok_and(|s| s.success());
    if !have {
        panic!("azure-mgmt-compute is not installed: run scripts/setup");
    }
    let env = Env::start().await;
    let node = env.node_names()[1].clone();
    let n = env.sim.shared.store.get(aks_sim::store::NODES, None, &node).unwrap();
    let pid = n["spec"]["providerID"].as_str().unwrap().to_string();
    let parts: Vec<&str> = pid.split('/').collect();
    // azure:///subscriptions/S/resourceGroups/RG/providers/Microsoft.Compute/virtualMachineScaleSets/V/virtualMachines/I
    let (rg, vmss, inst) = (parts[6], parts[10], parts[12]);
    let ep = env.sim.endpoints();
    let script = format!(
        r#"
import sys
from azure.core.credentials import AccessToken
from azure.mgmt.compute import ComputeManagementClient
from azure.mgmt.compute.models import RunCommandInput, VirtualMachineRunCommand, VirtualMachineRunCommandScriptSource
class Tok:
    def get_token(self, *scopes, **kw):
        return AccessToken({token:?}, 4102444800)
c = ComputeManagementClient(Tok(), {sub:?}, base_url={base:?}, connection_verify={ca:?}, polling_interval=0.2)
r = c.virtual_machine_scale_set_vms.begin_run_command({rg:?}, {vmss:?}, {inst:?}, RunCommandInput(command_id="RunShellScript", script=["echo py-$((40+2))"])).result()
print("ACTION", r.value[0].code, repr(r.value[0].message))
m = c.virtual_machine_scale_set_vm_run_commands.begin_create_or_update({rg:?}, {vmss:?}, {inst:?}, "pyrc",
    VirtualMachineRunCommand(location="westeurope", source=VirtualMachineRunCommandScriptSource(script="echo managed; exit 4"), async_execution=False, timeout_in_seconds=60)).result()
print("MANAGED", m.provisioning_state)
g = c.virtual_machine_scale_set_vm_run_commands.get({rg:?}, {vmss:?}, {inst:?}, "pyrc", expand="instanceView")
print("IV", getattr(g.instance_view.execution_state, "value", g.instance_view.execution_state), g.instance_view.exit_code, repr(g.instance_view.output))
c.virtual_machine_scale_set_vm_run_commands.begin_delete({rg:?}, {vmss:?}, {inst:?}, "pyrc").result()
c.virtual_machine_scale_set_vms.begin_restart({rg:?}, {vmss:?}, {inst:?}).result()
print("RESTARTED")
"#,
        token = env.sim.shared.tokens.current_arm(),
        sub = ep.subscription_id,
        base = ep.arm_url,
        ca = env.sim.state_dir().join("ca.pem").display().to_string(),
    );
    let out = tokio::process::Command::new("python3")
        .arg("-c")
        .arg(&script)
        .output()
        .await
        .expect("python3 runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout
            .contains("ACTION ProvisioningState/succeeded 'Enable succeeded: \\n[stdout]\\npy-42\\n\\n[stderr]\\n\\n'"),
        "{stdout}"
    );
    assert!(stdout.contains("MANAGED Succeeded"), "{stdout}");
    assert!(stdout.contains("IV Failed 4 'managed\\n'"), "{stdout}");
    assert!(stdout.contains("RESTARTED"), "{stdout}");
    let reboots = env.events("reboot");
    assert!(
        reboots
            .iter()
            .any(|e| e.starts_with(&node) && e.contains("vmss restart")),
        "{reboots:?}"
    );
}

/// Fault ssh-hang: the connection is accepted and never answered; a restart through ARM
/// ends it, and the rebooted machine answers SSH again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_ssh_session_ends_with_a_restart_through_arm() {
    skip_unless_root!();
    use tokio::io::AsyncReadExt;
    let env = Env::start_yaml(&SCENARIO.replace("    sshAccess: Disabled\n", ""), "ssh hang").await;
    let n = env.sim.shared.nodes[0].clone();
    let addr = std::net::SocketAddr::from((n.ip, env.sim.endpoints().ssh_port));
    env.sim.fault(Fault::SshHang { node: n.name.clone() }).unwrap();
    let mut hung = tokio::net::TcpStream::connect(addr).await.expect("accepted");
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(Duration::from_millis(1500), hung.read(&mut buf)).await;
    assert!(read.is_err(), "no banner: the session hangs");
    let vm = env.vm_of(&n.name).await;
    let (s, h, _) = env.call(reqwest::Method::POST, &format!("{vm}/restart"), None).await;
    assert_eq!(s, 202);
    // The hung connection drops with the machine.
    let closed = tokio::time::timeout(Duration::from_secs(10), hung.read(&mut buf)).await;
    assert!(matches!(closed, Ok(Ok(0)) | Ok(Err(_))), "{closed:?}");
    env.wait_location(&h).await;
    let mut fresh = tokio::net::TcpStream::connect(addr).await.expect("SSH answers again");
    let k = tokio::time::timeout(Duration::from_secs(10), fresh.read(&mut buf))
        .await
        .expect("a banner")
        .unwrap();
    assert!(
        buf[..k].starts_with(b"SSH-2.0-"),
        "{:?}",
        String::from_utf8_lossy(&buf[..k])
    );
}
