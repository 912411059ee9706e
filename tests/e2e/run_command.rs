//! Nodes reached through ARM alone, against aks-sim: each node mapped to its scale set
//! instance from its providerID, scripts run by managed run commands (or the action where
//! those are refused), a 409 waited out, a hanging run command timed out, a truncated output
//! refused, node resource group lockdown refused with its actions named, and a restart proven
//! by a new bootID. Real HTTPS, the emulator's CA, its token.

use crate::common::{Emulator, FixedToken};
use aks_patch::azure::arm::compute::{RunCommandKind, VmssInstance};
use aks_patch::azure::run_command::{NodeInstanceRef, RunCommandError, RunCommandNodes};
use aks_patch::azure::{ArmClient, AzureCredential, CloudEndpoints, CloudName};
use aks_sim::Fault;
use std::sync::Arc;
use std::time::{Duration, Instant};

const SCENARIO: &str = r#"
subscriptionId: 11111111-2222-3333-4444-555555555555
resourceGroup: rg-rc
cluster:
  name: aks-rc
  location: westeurope
timing:
  runCommandSeconds: 0.3
pools:
  - name: nodes
    count: 2
    sshAccess: Disabled
    kernel: 5.15.0-1068-azure
    updates:
      - {name: openssl, from: 3.0.2-0ubuntu1.18, to: 3.0.2-0ubuntu1.19, pocket: jammy-security}
  - name: win
    osType: Windows
    count: 1
"#;

/// The emulator, and its nodes mapped to their scale set instances.
struct Env {
    emu: Emulator,
    nodes: RunCommandNodes,
}

impl std::ops::Deref for Env {
    type Target = Emulator;
    fn deref(&self) -> &Emulator {
        &self.emu
    }
}

impl Env {
    async fn start() -> Env {
        let emu = Emulator::start_yaml(SCENARIO, "run command test").await;
        let sim = &emu.sim;
        let mut cloud = CloudEndpoints::builtin(CloudName::AzureCloud);
        cloud.arm_endpoint = sim.endpoints().arm_url.parse().unwrap();
        cloud.ca_bundle = Some((sim.state_dir().join("ca.pem"), "AKS_PATCH_CA_BUNDLE"));
        let cred = AzureCredential::from_token_credential(Arc::new(FixedToken(sim.shared.tokens.current_arm())));
        let arm = Arc::new(ArmClient::new(&cloud, Arc::new(cred)).unwrap());
        let refs: Vec<NodeInstanceRef> = sim
            .shared
            .store
            .list(aks_sim::store::NODES, None)
            .into_iter()
            .map(|n| NodeInstanceRef {
                name: n["metadata"]["name"].as_str().unwrap().to_string(),
                provider_id: n["spec"]["providerID"].as_str().map(str::to_string),
                pool: n["metadata"]["labels"]["kubernetes.azure.com/agentpool"]
                    .as_str()
                    .map(str::to_string),
                os: n["status"]["nodeInfo"]["operatingSystem"].as_str().map(str::to_string),
            })
            .collect();
        let ep = sim.endpoints();
        let node_rg = format!("MC_{}_{}_westeurope", ep.resource_group, ep.cluster_name);
        let nodes = RunCommandNodes::map(arm, &ep.subscription_id, &node_rg, &refs)
            .await
            .unwrap();
        Env { emu, nodes }
    }

    fn linux(&self) -> Vec<String> {
        self.sim
            .shared
            .nodes
            .iter()
            .filter(|n| n.is_linux())
            .map(|n| n.name.clone())
            .collect()
    }

    fn events(&self, kind: &str, node: &str) -> Vec<String> {
        self.sim
            .events()
            .into_iter()
            .filter(|e| e.kind == kind && e.node.as_deref() == Some(node))
            .map(|e| e.detail)
            .collect()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scripts_run_as_root_with_exit_code_and_whole_output() {
    skip_unless_root!();
    let env = Env::start().await;
    let node = &env.linux()[0];
    let vm = env.nodes.instance(node).unwrap();
    assert_eq!(vm.instance_id, "0");
    // The probe's own reads, as root, in the node.
    let o = env
        .nodes
        .run(
            node,
            "id -u\ncat /var/lib/aks-sim/pending | cut -d' ' -f1\necho oops >&2\nexit 5",
            Duration::from_secs(60),
        )
        .await
        .unwrap();
    assert_eq!(o.exit_code, 5);
    assert_eq!(o.stdout, "0\nopenssl\n");
    assert!(o.stderr.contains("oops"), "{:?}", o.stderr);
    assert_eq!(env.nodes.kind(), RunCommandKind::Managed);
    let ev = env.events("run-command", node);
    assert!(
        ev.iter().any(|e| e.starts_with("start managed name=aks-patch-")),
        "{ev:?}"
    );
    assert!(
        ev.iter().any(|e| e.starts_with("deleted managed name=aks-patch-")),
        "deleted afterwards: {ev:?}"
    );
    // The Windows node has a reason.
    let win = env
        .sim
        .shared
        .nodes
        .iter()
        .find(|n| !n.is_linux())
        .unwrap()
        .name
        .clone();
    let e = env.nodes.run(&win, "true", Duration::from_secs(10)).await.unwrap_err();
    assert!(e.to_string().contains("Linux nodes only"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conflict_is_waited_out() {
    skip_unless_root!();
    let env = Env::start().await;
    let node = &env.linux()[1];
    env.sim.fault(Fault::RunCommandConflict { count: 2 }).unwrap();
    let o = env
        .nodes
        .run(node, "echo through", Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(o.stdout, "through\n");
    let ev = env.events("run-command", node);
    assert_eq!(ev.iter().filter(|e| e.contains("refused 409")).count(), 2, "{ev:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_run_command_times_out_with_a_clear_error() {
    skip_unless_root!();
    let env = Env::start().await;
    let node = env.linux()[0].clone();
    env.sim.fault(Fault::RunCommandHang { node: node.clone() }).unwrap();
    let t = Instant::now();
    let e = env.nodes.run(&node, "true", Duration::from_secs(2)).await.unwrap_err();
    let text = format!(
        "{e}: {}",
        std::error::Error::source(&e).map(|s| s.to_string()).unwrap_or_default()
    );
    assert!(matches!(e, RunCommandError::Azure { .. }), "{text}");
    assert!(text.contains(&node) && text.contains("did not finish within"), "{text}");
    assert!(t.elapsed() < Duration::from_secs(60), "bounded: {:?}", t.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_output_beyond_the_4096_byte_tail_is_detected_and_fetched_in_pieces() {
    skip_unless_root!();
    let env = Env::start().await;
    let node = &env.linux()[0];
    let script = "i=0; while [ $i -lt 900 ]; do echo pkg-$i; i=$((i+1)); done; exit 2";
    let o = env.nodes.run(node, script, Duration::from_secs(60)).await.unwrap();
    let expected: String = (0..900).map(|i| format!("pkg-{i}\n")).collect();
    assert!(expected.len() > 4096);
    assert_eq!(o.stdout, expected, "whole, not the tail");
    assert_eq!(o.exit_code, 2);
    let runs = env
        .events("run-command", node)
        .iter()
        .filter(|e| e.starts_with("start managed"))
        .count();
    assert!(
        runs > expected.len().div_ceil(3000),
        "fetched in pieces: {runs} run commands"
    );
    // Nothing left behind on the node.
    let root = env
        .sim
        .shared
        .node_runtime
        .get()
        .unwrap()
        .node_root(node)
        .unwrap()
        .to_path_buf();
    let left: Vec<_> = std::fs::read_dir(root.join("var/log/aks-patch"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_truncated_output_too_long_to_fetch_is_refused_not_parsed() {
    skip_unless_root!();
    let env = Env::start().await;
    let node = &env.linux()[1];
    let e = env
        .nodes
        .run(
            node,
            "i=0; while [ $i -lt 12000 ]; do echo package-$i; i=$((i+1)); done",
            Duration::from_secs(120),
        )
        .await
        .unwrap_err();
    match &e {
        RunCommandError::Truncated { bytes, path, .. } => {
            assert!(*bytes > 96 * 1024, "{bytes}");
            // Kept on the node for the user.
            let root = env
                .sim
                .shared
                .node_runtime
                .get()
                .unwrap()
                .node_root(node)
                .unwrap()
                .to_path_buf();
            let kept = std::fs::read_to_string(root.join(path.trim_start_matches('/'))).unwrap();
            assert!(kept.starts_with("package-0\n") && kept.ends_with("package-11999\n"));
        }
        other => panic!("expected Truncated, got {other}"),
    }
    assert!(e.to_string().contains("4,096-byte tail"), "{e}");
    assert!(e.hint().unwrap().contains("--via ssh"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_resource_group_lockdown_names_the_actions() {
    skip_unless_root!();
    let env = Env::start().await;
    let node = &env.linux()[0];
    env.sim.fault(Fault::NrgLockdown).unwrap();
    let e = env.nodes.run(node, "true", Duration::from_secs(30)).await.unwrap_err();
    assert!(e.auth(), "exit 4: {e}");
    let text = e.to_string();
    assert!(
        text.contains("Microsoft.Compute/virtualMachineScaleSets/virtualMachines/runCommands/write")
            && text.contains("Microsoft.Compute/virtualMachineScaleSets/virtualMachines/runCommand/action"),
        "{text}"
    );
    assert!(e.hint().unwrap().contains("--via kube"));
    // The managed one was refused, then the action: nothing ran.
    assert_eq!(env.nodes.kind(), RunCommandKind::Action);
    assert!(env.events("run-command", node).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_through_arm_gives_a_new_boot() {
    skip_unless_root!();
    let env = Env::start().await;
    let node = env.linux()[1].clone();
    let before = env.boot_id(&node);
    env.nodes.restart(&node, Duration::from_secs(60)).await.unwrap();
    assert_ne!(env.boot_id(&node), before);
    assert!(env.events("reboot", &node).iter().any(|e| e.contains("vmss restart")));
    assert!(env.events("vm-restart", &node).iter().any(|e| e.starts_with("done")));
}

#[test]
fn provider_id_of_the_emulator_is_the_real_format() {
    let pid = "azure:///subscriptions/s/resourceGroups/mc_rg_c_westeurope/providers/Microsoft.Compute/virtualMachineScaleSets/aks-nodes-1-vmss/virtualMachines/3";
    assert_eq!(VmssInstance::from_provider_id(pid).unwrap().instance_id, "3");
}
