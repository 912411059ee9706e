//! Transient Kubernetes API failures during a rollout, end to end against aks-sim: 5xx answers
//! and reset connections while a node drains (and, with `--via kube`, while the probe after the
//! upgrade runs over `pods/exec`) are retried with the same policy as cordon and the Lease, and
//! the node is patched.

mod common;
use aks_sim::Fault;
use common::*;
use std::time::Duration;

/// Start `aks-patch ARGS -g RG -n CLUSTER` in the background.
fn spawn(c: &Cluster, args: &[&str]) -> tokio::process::Child {
    c.command_with_target(args).spawn().expect("aks-patch starts")
}

async fn finish(child: tokio::process::Child) -> Run {
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

/// Patch the node that runs a `web` pod, and inject `kube-error 30 --status STATUS` the moment
/// it is cordoned (its drain is next): the run still patches it, and the emulator saw the
/// eviction.
async fn drain_survives_kube_errors(status: u16) {
    let c = Cluster::start(Some(SMALL)).await;
    let pods = c.sim.shared.store.list(aks_sim::store::PODS, Some("app"));
    let node = pods[0]["spec"]["nodeName"]
        .as_str()
        .expect("web pod is scheduled")
        .to_string();
    let child = spawn(&c, &apply_args(&["--nodes", &node, "-o", "json"]));
    c.wait_for_event("cordon", Some(&node), Duration::from_secs(60)).await;
    c.sim.fault(Fault::KubeError { count: 30, status }).unwrap();
    let r = finish(child).await;
    r.assert_code(0);
    let rec = r.node_record(&node);
    assert_eq!(rec["state"], "done", "{rec}");
    assert_eq!(c.kernel(&node), "5.15.0-1073-azure");
    assert!(!c.unschedulable(&node), "{node} is back in service");
    let ev = c.events();
    assert!(
        ev.iter()
            .any(|e| e.kind == "eviction" && e.object.as_deref().is_some_and(|o| o.starts_with("app/web-"))),
        "the web pod was evicted: {ev:#?}"
    );
    let left = c.sim.shared.faults.describe()["kubeErrorLeft"].as_u64().unwrap();
    assert_eq!(left, 0, "all 30 failures were met by the run");
    assert!(c.lock_free());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn drain_through_thirty_503s_still_patches_the_node() {
    drain_survives_kube_errors(503).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn drain_through_thirty_connection_resets_still_patches_the_node() {
    drain_survives_kube_errors(0).await;
}
