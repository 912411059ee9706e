//! The `aks-sim` binary as an operator uses it: `up`, `env`, `status`, `fault`, `check`,
//! and clear errors for bad scenario files.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn sim() -> Command {
    Command::new(env!("CARGO_BIN_EXE_aks-sim"))
}

fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).to_string()
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

#[test]
fn bad_scenario_files_name_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("cluster: {name: c}\npools:\n  - name: a\n    count: 1\n    osType: Plan9\n", "pools[0].osType"),
        ("cluster: {name: c}\npools:\n  - name: a\n    count: 1\n    kernal: x\n", "kernal"),
        ("cluster: {name: c}\npools: []\n", "pools"),
        ("cluster: {name: c}\npools:\n  - name: a\n    count: 1\nworkloads:\n  - {kind: Deployment, name: w, pool: nope}\n", "workloads[0].pool"),
        ("cluster: {name: c}\npools:\n  - name: a\n    count: 1\nfaults:\n  - {fault: ssh-down, node: ghost}\n", "faults[0].node"),
    ];
    for (i, (text, field)) in cases.iter().enumerate() {
        let p = dir.path().join(format!("s{i}.yaml"));
        std::fs::write(&p, text).unwrap();
        for args in [
            vec!["check".to_string(), p.display().to_string()],
            vec![
                "up".into(),
                "--state-dir".into(),
                dir.path().join("st").display().to_string(),
                "--scenario".into(),
                p.display().to_string(),
            ],
        ] {
            let out = sim().args(&args).stdin(Stdio::null()).output().unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(!out.status.success(), "{args:?} must fail");
            assert!(
                stderr.contains("error:") && stderr.contains(field),
                "{args:?}: the error names `{field}`: {stderr}"
            );
        }
    }
    let missing = sim().args(["check", "/nonexistent/scenario.yaml"]).output().unwrap();
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("/nonexistent/scenario.yaml"));
}

#[test]
fn check_prints_the_default_filled_in() {
    let out = sim()
        .args(["check", concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios/default.yaml")])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("nodeOSUpgradeChannel: Unmanaged"), "{text}");
    assert!(text.contains("shutdownSeconds"), "defaults are filled in: {text}");
}

struct Up(std::process::Child, tempfile::TempDir);

impl Drop for Up {
    fn drop(&mut self) {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.0.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn up() -> Up {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let child = sim()
        .args(["up", "--state-dir", state.to_str().unwrap()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !state.join("sim.json").exists() {
        assert!(Instant::now() < deadline, "aks-sim up wrote sim.json");
        std::thread::sleep(Duration::from_millis(50));
    }
    Up(child, dir)
}

#[test]
fn up_env_status_and_fault_work_as_separate_processes() {
    skip_unless_root!();
    let u = up();
    let state = u.1.path().join("state");
    let st = state.to_str().unwrap();

    let env = sim().args(["env", "--state-dir", st]).output().unwrap();
    assert!(env.status.success());
    let env = String::from_utf8_lossy(&env.stdout).to_string();
    for var in [
        "AKS_PATCH_ARM_ENDPOINT=",
        "AKS_PATCH_CA_BUNDLE=",
        "KUBECONFIG=",
        "AZURE_SUBSCRIPTION_ID=",
        "AKS_PATCH_SSH_KEY=",
        "AKS_SIM_BASTION=azureuser@127.77.",
        "PATH=",
    ] {
        assert!(env.contains(&format!("export {var}")), "env exports {var}: {env}");
    }
    // What `eval "$(aks-sim env)"` gives kubectl works unchanged.
    let kubeconfig = state.join("kubeconfig");
    let kc = Command::new("kubectl")
        .args(["get", "nodes", "--no-headers"])
        .env("KUBECONFIG", &kubeconfig)
        .output()
        .unwrap();
    assert!(kc.status.success(), "{}", String::from_utf8_lossy(&kc.stderr));
    assert_eq!(
        String::from_utf8_lossy(&kc.stdout).lines().count(),
        8,
        "the default scenario has 8 nodes"
    );

    let node = "aks-user-31417037-vmss000000";
    let f = sim()
        .args(["fault", "--state-dir", st, "ssh-down", node])
        .output()
        .unwrap();
    assert!(f.status.success(), "{}", String::from_utf8_lossy(&f.stderr));
    let bad = sim()
        .args(["fault", "--state-dir", st, "ssh-down", "no-such-node"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("no-such-node"));

    let status = sim()
        .args(["status", "--state-dir", st, "-o", "json"])
        .output()
        .unwrap();
    assert!(status.status.success());
    let v: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(v["nodes"].as_array().unwrap().len(), 8);
    assert!(v["faults"]["sshDown"].as_array().unwrap().iter().any(|n| n == node));
    let faults: Vec<_> = v["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "fault")
        .collect();
    assert_eq!(faults.len(), 1, "the fault is in the event log");
    assert!(faults[0]["time"].is_string() && faults[0]["seq"].is_u64());

    let table = sim().args(["status", "--state-dir", st]).output().unwrap();
    assert!(String::from_utf8_lossy(&table.stdout).contains(node));
}

#[test]
fn up_with_200_nodes_starts_them_all() {
    skip_unless_root!();
    // Not a timed assertion: the startup time is printed; scripts/bench reports the ratio.
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let t0 = Instant::now();
    let child = sim()
        .args(["up", "--state-dir", state.to_str().unwrap(), "--nodes", "200"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let u = Up(child, dir);
    let deadline = Instant::now() + Duration::from_secs(120);
    while !state.join("sim.json").exists() {
        assert!(Instant::now() < deadline, "aks-sim up --nodes 200 started");
        std::thread::sleep(Duration::from_millis(50));
    }
    eprintln!("aks-sim up --nodes 200: ready in {:.2}s", t0.elapsed().as_secs_f64());
    let v: serde_json::Value = serde_json::from_slice(
        &sim()
            .args(["status", "--state-dir", state.to_str().unwrap(), "-o", "json"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let linux = v["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["osType"] == "Linux")
        .count();
    assert_eq!(linux, 200);
    drop(u);
}

#[test]
fn up_with_any_node_count_on_the_default_scenario() {
    skip_unless_root!();
    for n in [1u32, 2, 3, 4] {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let log = dir.path().join("up.log");
        let child = sim()
            .args(["up", "--state-dir", state.to_str().unwrap(), "--nodes", &n.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let u = Up(child, dir);
        let deadline = Instant::now() + Duration::from_secs(60);
        while !state.join("sim.json").exists() {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            assert!(
                Instant::now() < deadline,
                "aks-sim up --nodes {n} did not start: {text}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let kc = Command::new("kubectl")
            .args(["get", "nodes", "--no-headers", "-l", "kubernetes.io/os=linux"])
            .env("KUBECONFIG", state.join("kubeconfig"))
            .output()
            .unwrap();
        assert!(kc.status.success(), "{}", String::from_utf8_lossy(&kc.stderr));
        assert_eq!(String::from_utf8_lossy(&kc.stdout).lines().count(), n as usize);
        // The default scenario's overrides name user nodes 1 and 2: dropped with a note.
        let text = std::fs::read_to_string(&log).unwrap();
        if n <= 4 {
            assert!(
                text.contains("note: --nodes") && text.contains("dropped the overrides for node aks-user-"),
                "--nodes {n}: {text}"
            );
        }
        drop(u);
    }
}

#[test]
fn up_beyond_250_nodes_spills_into_the_next_loopback_block() {
    skip_unless_root!();
    // 300 nodes: the first 250 on 127.77.X.*, the next on 127.78.X.*, all reachable by SSH.
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let child = sim()
        .args(["up", "--state-dir", state.to_str().unwrap(), "--nodes", "300"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let u = Up(child, dir);
    let deadline = Instant::now() + Duration::from_secs(120);
    while !state.join("sim.json").exists() {
        assert!(Instant::now() < deadline, "aks-sim up --nodes 300 started");
        std::thread::sleep(Duration::from_millis(50));
    }
    let kc = |args: &[&str]| {
        let o = Command::new("kubectl")
            .args(args)
            .env("KUBECONFIG", state.join("kubeconfig"))
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let nodes = kc(&["get", "nodes", "--no-headers", "-l", "kubernetes.io/os=linux"]);
    assert_eq!(nodes.lines().count(), 300);
    let node = "aks-user-31417037-vmss000290";
    let ip = kc(&["get", "node", node, "-o", "jsonpath={.status.addresses[0].address}"]);
    assert!(ip.starts_with("127.78."), "{ip}");
    let out = Command::new("ssh")
        .args([
            "-i",
            state.join("ssh/id_ed25519").to_str().unwrap(),
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "BatchMode=yes",
            "-o",
            "ConnectTimeout=10",
            &format!("azureuser@{ip}"),
            "hostname",
        ])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        node,
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    drop(u);
}

const AZURE_SDK_SCRIPT: &str = r#"
import os, json
from azure.identity import AzureCliCredential
from azure.mgmt.compute import ComputeManagementClient
from azure.core.rest import HttpRequest
sub = os.environ["AZURE_SUBSCRIPTION_ID"]
c = ComputeManagementClient(AzureCliCredential(), sub, base_url=os.environ["AKS_PATCH_ARM_ENDPOINT"])
mc = c._client.send_request(HttpRequest("GET", os.environ["AKS_PATCH_ARM_ENDPOINT"] + "/subscriptions/%s/resourceGroups/%s/providers/Microsoft.ContainerService/managedClusters/%s?api-version=2025-10-01" % (sub, os.environ["AKS_SIM_RESOURCE_GROUP"], os.environ["AKS_SIM_CLUSTER"])))
mc.raise_for_status()
nrg = mc.json()["properties"]["nodeResourceGroup"]
sets = {}
for v in c.virtual_machine_scale_sets.list(nrg):
    prefix = v.virtual_machine_profile.os_profile.computer_name_prefix
    sets[v.name] = {"prefix": prefix, "vms": [m.os_profile.computer_name for m in c.virtual_machine_scale_set_vms.list(nrg, v.name)]}
print(json.dumps(sets))
"#;

/// Run `AZURE_SDK_SCRIPT` in a shell that only did `eval "$(aks-sim env)"` (then `then`):
/// nothing of the test's own environment that could point the SDK at the emulator.
fn sdk_after_eval(state: &std::path::Path, then: &str) -> std::process::Output {
    let mut cmd = Command::new("bash");
    cmd.arg("-c")
        .arg(format!(
            "eval \"$(\"$0\" env --state-dir \"$1\")\" && {then} python3 -c \"$2\""
        ))
        .arg(env!("CARGO_BIN_EXE_aks-sim"))
        .arg(state)
        .arg(AZURE_SDK_SCRIPT)
        .env_clear()
        .env("HOME", state)
        .env("PATH", std::env::var("PATH").unwrap_or_default());
    cmd.output().unwrap()
}

/// The Azure SDK for Python works against aks-sim with nothing but `eval "$(aks-sim env)"`:
/// the `az` stand-in signs it in, and `REQUESTS_CA_BUNDLE` makes it trust the emulator's CA.
/// The scale sets it lists carry their model, whose computerNamePrefix starts every VM's name.
#[test]
fn azure_sdk_for_python_works_after_eval_aks_sim_env() {
    skip_unless_root!();
    let u = up();
    let state = u.1.path().join("state");
    let out = sdk_after_eval(&state, "");
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let sets: serde_json::Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    let sets = sets.as_object().unwrap();
    assert!(!sets.is_empty());
    for (name, s) in sets {
        let prefix = s["prefix"]
            .as_str()
            .unwrap_or_else(|| panic!("{name}: no computerNamePrefix"));
        let vms = s["vms"].as_array().unwrap();
        assert!(!vms.is_empty(), "{name}");
        for vm in vms {
            assert!(vm.as_str().unwrap().starts_with(prefix), "{name}: {vm} / {prefix}");
        }
    }
    // Without the CA bundle the SDK refuses the emulator's certificate: the export matters.
    let out = sdk_after_eval(&state, "unset REQUESTS_CA_BUNDLE &&");
    assert!(!out.status.success());
    assert!(stderr(&out).contains("CERTIFICATE_VERIFY_FAILED"), "{}", stderr(&out));
}
