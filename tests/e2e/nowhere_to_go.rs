//! Pods with nowhere to go: a drain that would evict pods no other schedulable Ready node would
//! take (their pool's other nodes cordoned, tainted, or down) is refused before any change, or
//! stopped before that node's cordon when the cluster changed mid-run; `--allow-pending-pods`
//! takes the node out anyway, naming the pods. Proven against aks-sim from its event log, its
//! pods and the run record.

use crate::common::*;
use std::time::Duration;

/// `kubectl ARGS` against the emulated cluster; panics unless it succeeds.
async fn kubectl(c: &Cluster, args: &[&str]) {
    let (ok, _, err) = c.kubectl(args).await;
    assert!(ok, "kubectl {args:?}: {err}");
}

/// The pods of `namespace` whose name starts with `prefix`.
fn pods(c: &Cluster, namespace: &str, prefix: &str) -> Vec<serde_json::Value> {
    c.sim
        .shared
        .store
        .list(aks_sim::store::PODS, Some(namespace))
        .into_iter()
        .filter(|p| p["metadata"]["name"].as_str().unwrap_or("").starts_with(prefix))
        .collect()
}

fn node_of(pod: &serde_json::Value) -> Option<String> {
    pod["spec"]["nodeName"].as_str().map(str::to_string)
}

/// The Kubernetes Events of `reason` about pods starting with `prefix`.
fn pod_events(c: &Cluster, reason: &str, prefix: &str) -> Vec<serde_json::Value> {
    c.sim
        .shared
        .store
        .list(aks_sim::store::EVENTS, None)
        .into_iter()
        .filter(|e| e["reason"] == reason)
        .filter(|e| e["involvedObject"]["name"].as_str().unwrap_or("").starts_with(prefix))
        .collect()
}

/// The built-in scenario with the user pool's other schedulable node cordoned by hand: the
/// node that runs `session-cache` (pinned to the pool) is the pool's last schedulable one.
async fn last_schedulable_node_of_its_pool() -> (Cluster, String) {
    let c = Cluster::start(None).await;
    let cache = pods(&c, "shop", "session-cache-");
    assert_eq!(cache.len(), 1);
    let target = node_of(&cache[0]).expect("session-cache is scheduled");
    // vmss000002 is cordoned by the scenario; the other one is cordoned by hand now.
    let other = [user_node(0), user_node(1)]
        .into_iter()
        .find(|n| *n != target)
        .expect("another user node");
    assert!(c.unschedulable(&user_node(2)), "the scenario cordons vmss000002");
    kubectl(&c, &["cordon", &other]).await;
    assert!(c.unschedulable(&other));
    (c, target)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_drain_whose_pinned_pods_have_nowhere_to_go_is_refused_before_any_change() {
    skip_unless_root!();
    let (c, target) = last_schedulable_node_of_its_pool().await;
    let before = c.events().len();
    let r = c.run(&apply_args(&["--nodes", &target]), true).await;
    r.assert_code(2);
    assert!(
        r.stderr.contains(&format!("draining node {target} would leave")),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("shop/session-cache-")
            && r.stderr
                .contains("(no other schedulable Ready node matches nodeSelector agentpool=user"),
        "the pinned pod is named with why: {}",
        r.stderr
    );
    assert!(r.stderr.contains("nothing was changed"), "{}", r.stderr);
    assert!(
        r.stderr.contains("--allow-pending-pods"),
        "the hint names the flag: {}",
        r.stderr
    );
    // Nothing changed: no upgrade, no cordon, no eviction, no reboot, no lock.
    let ev = c.events()[before..].to_vec();
    for kind in ["apt-upgrade", "cordon", "eviction", "reboot"] {
        assert!(of_kind(&ev, kind).is_empty(), "no {kind}: {ev:?}");
    }
    assert!(c.lease().is_none(), "the lock was never taken");
    assert!(!c.unschedulable(&target));
    let cache = pods(&c, "shop", "session-cache-");
    assert_eq!(
        node_of(&cache[0]).as_deref(),
        Some(target.as_str()),
        "the pod stays where it runs"
    );

    // --dry-run names it on that node's row.
    let d = c
        .run(
            &[
                "apply",
                "--one-at-a-time",
                "--dry-run",
                "--delete-emptydir-data",
                "--force",
                "--nodes",
                &target,
            ],
            true,
        )
        .await;
    d.assert_code(0);
    assert!(d.stdout.contains("NOWHERE-TO-GO"), "{}", d.stdout);
    assert!(
        d.stdout
            .lines()
            .any(|l| l.starts_with(&target) && l.contains("shop/session-cache-")),
        "{}",
        d.stdout
    );
    assert!(d.stderr.contains("apply would refuse: draining node"), "{}", d.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn allow_pending_pods_takes_the_node_out_anyway_naming_the_pods() {
    skip_unless_root!();
    let (c, target) = last_schedulable_node_of_its_pool().await;
    let r = c
        .run(
            &apply_args(&["--nodes", &target, "--allow-pending-pods", "-o", "json"]),
            true,
        )
        .await;
    r.assert_code(0);
    assert!(
        r.stderr
            .lines()
            .any(|l| l.contains("warning") && l.contains("shop/session-cache-") && l.contains("--allow-pending-pods")),
        "a warning names the pod: {}",
        r.stderr
    );
    let ev = c.events();
    assert_eq!(nodes_with(&ev, "reboot"), [target.clone()].into());
    assert_eq!(r.node_record(&target)["state"], "done");
    assert_eq!(r.json()["options"]["allowPendingPods"], true, "kept in the run record");
    // The evicted pod really had nowhere to go while the node was out.
    assert!(
        !pod_events(&c, "FailedScheduling", "session-cache-").is_empty(),
        "aks-sim's scheduler left it Pending"
    );
    // Back in service, the node takes it again.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let cache = pods(&c, "shop", "session-cache-");
        if cache.iter().any(|p| p["status"]["phase"] == "Running") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "session-cache Running again: {cache:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Two system nodes and two user nodes; `session-cache` pinned to the user pool.
const TWO_POOLS: &str = r#"
resourceGroup: rg-test
cluster: {name: aks-test}
timing: {shutdownSeconds: 0.2, bootSeconds: 3, readySeconds: 0.3, podStartSeconds: 0.3, terminationSeconds: 0.1, aptSeconds: 0.1, aptUpdateSeconds: 0.1}
pools:
  - name: system
    mode: System
    count: 2
    kernel: 5.15.0-1068-azure
    updates: &updates
      - {name: linux-azure, from: 5.15.0.1068.66, to: 5.15.0.1073.71, pocket: jammy-security, kernel: 5.15.0-1073-azure}
  - name: user
    mode: User
    count: 2
    kernel: 5.15.0-1068-azure
    updates: *updates
workloads:
  - {kind: Deployment, name: dns, namespace: kube-system, replicas: 1, pool: system}
  - {kind: Deployment, name: session-cache, namespace: shop, replicas: 1, pool: user}
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_cordoned_by_hand_mid_run_stops_the_run_before_the_next_nodes_cordon() {
    skip_unless_root!();
    let c = Cluster::start(Some(TWO_POOLS)).await;
    let node = |pool: &str, i: u32| {
        c.sim
            .shared
            .nodes
            .iter()
            .find(|n| n.pool == pool && n.instance == i)
            .expect("node")
            .name
            .clone()
    };
    let (sys0, target) = (
        node("system", 0),
        node_of(&pods(&c, "shop", "session-cache-")[0]).expect("scheduled"),
    );
    let other = [node("user", 0), node("user", 1)]
        .into_iter()
        .find(|n| *n != target)
        .unwrap();
    // The pre-flight finds a place for session-cache (the other user node); while the first
    // node reboots, somebody cordons that other node.
    let run = c
        .command_with_target(&apply_args(&["--nodes", &format!("{sys0},{target}")]))
        .spawn()
        .unwrap();
    c.wait_for_event("reboot", Some(&sys0), Duration::from_secs(120)).await;
    kubectl(&c, &["cordon", &other]).await;
    let out = tokio::time::timeout(Duration::from_secs(300), run.wait_with_output())
        .await
        .expect("aks-patch finished within 300 s")
        .unwrap();
    let r = Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).to_string(),
        stderr: String::from_utf8_lossy(&out.stderr).to_string(),
    };
    r.assert_code(2);
    assert!(
        r.stderr.contains(&format!(
            "not taking node {target} out: draining node {target} would leave"
        )) && r.stderr.contains("shop/session-cache-")
            && r.stderr.contains("--allow-pending-pods"),
        "{}",
        r.stderr
    );
    let ev = c.events();
    assert_eq!(
        nodes_with(&ev, "reboot"),
        [sys0.clone()].into(),
        "only the first node rebooted"
    );
    assert!(
        !of_kind(&ev, "cordon")
            .iter()
            .any(|e| e.node.as_deref() == Some(&target)),
        "the next node was never cordoned"
    );
    assert!(!c.unschedulable(&target));
    assert_eq!(
        node_of(&pods(&c, "shop", "session-cache-")[0]).as_deref(),
        Some(target.as_str()),
        "session-cache still runs where it did"
    );
    assert!(c.lock_free(), "the lock was released");
    // The record says why, and a resume that allows it finishes the node.
    let again = c.run(&apply_args(&["--resume", "--allow-pending-pods"]), true).await;
    again.assert_code(0);
    assert!(
        of_kind(&c.events(), "reboot")
            .iter()
            .any(|e| e.node.as_deref() == Some(&target)),
        "{}",
        again.stderr
    );
}

/// One system node; two small user nodes (2 cores), each running one `reports` pod that asks
/// for 1.2 cores: by the filters the other user node takes an evicted one, by room it cannot.
const FULL_POOL: &str = r#"
resourceGroup: rg-test
cluster: {name: aks-test}
timing: {shutdownSeconds: 0.2, bootSeconds: 3, readySeconds: 0.3, podStartSeconds: 0.3, terminationSeconds: 0.1, aptSeconds: 0.1, aptUpdateSeconds: 0.1}
pools:
  - name: system
    mode: System
    count: 1
    kernel: 5.15.0-1068-azure
    updates: &updates
      - {name: linux-azure, from: 5.15.0.1068.66, to: 5.15.0.1073.71, pocket: jammy-security, kernel: 5.15.0-1073-azure}
  - name: user
    mode: User
    count: 2
    vmSize: Standard_D2s_v5
    kernel: 5.15.0-1068-azure
    updates: *updates
workloads:
  - {kind: Deployment, name: reports, namespace: shop, replicas: 2, pool: user, requests: {cpu: 1200m, memory: 256Mi}}
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pods_that_no_other_node_has_room_for_are_refused_with_the_resource_they_lack() {
    skip_unless_root!();
    let c = Cluster::start(Some(FULL_POOL)).await;
    let reports = pods(&c, "shop", "reports-");
    assert_eq!(reports.len(), 2);
    let on: Vec<String> = reports.iter().filter_map(node_of).collect();
    assert_eq!(on.len(), 2, "both scheduled: {reports:?}");
    assert_ne!(on[0], on[1], "one a node: two do not fit on one");
    let target = on[0].clone();
    let before = c.events().len();
    let r = c.run(&apply_args(&["--nodes", &target]), true).await;
    r.assert_code(2);
    assert!(
        r.stderr.contains("shop/reports-")
            && r.stderr
                .contains("has room for its requests of cpu 1200m, memory 256Mi (Insufficient cpu on 1 node)"),
        "the pod is named with the resource it lacks: {}",
        r.stderr
    );
    assert!(r.stderr.contains("nothing was changed"), "{}", r.stderr);
    let ev = c.events()[before..].to_vec();
    for kind in ["apt-upgrade", "cordon", "eviction", "reboot"] {
        assert!(of_kind(&ev, kind).is_empty(), "no {kind}: {ev:?}");
    }
    assert!(!c.unschedulable(&target));
}
