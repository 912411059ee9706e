//! Transient Kubernetes API failures during a rollout, end to end against aks-sim: 5xx answers
//! and reset connections while a node drains (and, with `--via kube`, while the probe after the
//! upgrade runs over `pods/exec`) are retried with the same policy as cordon and the Lease, and
//! the node is patched.

use crate::common::*;
use aks_sim::Fault;
use std::time::Duration;

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
    let child = c.spawn(&apply_args(&["--nodes", &node, "-o", "json"]));
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
    skip_unless_root!();
    drain_survives_kube_errors(503).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn drain_through_thirty_connection_resets_still_patches_the_node() {
    skip_unless_root!();
    drain_survives_kube_errors(0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn via_kube_reset_connections_after_the_upgrade_are_retried_not_called_a_refusal() {
    skip_unless_root!();
    let c = Cluster::start(Some(&no_ssh())).await;
    let node = small_node(0);
    let child = c.spawn(&apply_args(&["--via", "kube", "--nodes", &node, "-o", "json"]));
    // The upgrade ran: what comes next (its result, the probe after it, the cordon) goes
    // through an API server that resets the next 30 connections.
    c.wait_for_event("apt-upgrade", Some(&node), Duration::from_secs(60))
        .await;
    c.sim.fault(Fault::KubeError { count: 30, status: 0 }).unwrap();
    let r = finish(child).await;
    r.assert_code(0);
    assert_eq!(r.node_record(&node)["state"], "done");
    assert_eq!(c.kernel(&node), "5.15.0-1073-azure");
    assert!(!r.stderr.contains("refused"), "{}", r.stderr);
    assert_eq!(
        c.sim.shared.faults.describe()["kubeErrorLeft"].as_u64(),
        Some(0),
        "the run met every reset"
    );
    assert!(c.lock_free());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn via_kube_exec_streams_cut_under_read_only_commands_are_retried() {
    skip_unless_root!();
    let c = Cluster::start(Some(&no_ssh())).await;
    let node = small_node(0);
    let child = c.spawn(&apply_args(&["--via", "kube", "--nodes", &node, "-o", "json"]));
    // The upgrade runs: the next two exec streams (waiting for its result, probing the node
    // after it) are cut under their commands.
    c.wait_for_event("apt-upgrade", Some(&node), Duration::from_secs(60))
        .await;
    c.sim
        .fault(Fault::ExecCut {
            count: 2,
            command: None,
        })
        .unwrap();
    let r = finish(child).await;
    r.assert_code(0);
    assert_eq!(r.node_record(&node)["state"], "done");
    assert_eq!(c.kernel(&node), "5.15.0-1073-azure");
    let ev = c.events();
    let cut: Vec<&str> = of_kind(&ev, "pod-exec-cut").iter().map(|e| e.detail.as_str()).collect();
    assert_eq!(cut.len(), 2, "two streams were cut: {cut:?}");
    assert!(!r.stderr.contains("refused"), "{}", r.stderr);
    assert!(c.lock_free());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn via_kube_an_exec_stream_cut_under_the_start_of_the_upgrade_is_named_as_cut() {
    skip_unless_root!();
    let c = Cluster::start(Some(&no_ssh())).await;
    let node = small_node(0);
    // Starting the upgrade changes the node: it is not run twice, and its cut stream is
    // reported as what it is.
    c.sim
        .fault(Fault::ExecCut {
            count: 1,
            command: Some("nohup".into()),
        })
        .unwrap();
    let r = c.run(&apply_args(&["--via", "kube", "--nodes", &node]), true).await;
    assert_ne!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr.contains(&format!("the exec stream to node {node}")) && r.stderr.contains("was cut"),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains("refused"), "{}", r.stderr);
    let ev = c.events();
    assert_eq!(of_kind(&ev, "pod-exec-cut").len(), 1);
    assert_eq!(
        ev.iter()
            .filter(|e| e.kind == "pod-exec" && e.detail.contains("nohup"))
            .count(),
        1,
        "the upgrade was started once"
    );
    assert!(!c.unschedulable(&node), "{node} is in service");
    assert!(c.lock_free());
}
