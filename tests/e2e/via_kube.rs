//! `--via kube`, end to end against aks-sim: every pool with `sshAccess: Disabled`
//! (so sshd refuses), scan and apply through node-shell pods over `pods/exec`; the pods'
//! lifecycle (none left after a run, a killed run's removed by the next, none after Ctrl-C);
//! image pull failure, exec refused and missing RBAC named in the error.

use crate::common::*;
use aks_sim::Fault;
use std::time::Duration;

/// [`rollout_args`] through node-shell pods; then `extra`.
fn via_kube_args<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    let mut v = rollout_args(&["--via", "kube"]);
    v.extend_from_slice(extra);
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn scan_and_apply_via_kube_when_ssh_is_disabled() {
    skip_unless_root!();
    let c = Cluster::start(Some(&no_ssh_one_cordoned())).await;
    // Over SSH the nodes are out of reach, and the note says what to do.
    let r = c.run(&["scan", "-o", "json"], true).await;
    assert!(r.stdout.contains("--via kube"), "{}{}", r.stdout, r.stderr);

    let r = c.run(&["scan", "--via", "kube", "-o", "json"], true).await;
    r.assert_code(0);
    let rows = r.json();
    for row in rows.as_array().unwrap() {
        assert_eq!(row["runningKernel"], "5.15.0-1068-azure", "{row}");
        assert_eq!(row["pendingUpdates"], 2, "{row}");
        assert_eq!(row["rebootRequired"], false, "{row}");
        assert!(row["error"].is_null(), "{row}");
    }
    assert!(!of_kind(&c.events(), "pod-exec").is_empty());
    assert!(of_kind(&c.events(), "ssh-session").is_empty(), "nothing went over SSH");
    assert!(
        c.shell_pods().is_empty(),
        "scan leaves no node-shell pod: {:?}",
        c.shell_pods()
    );

    let boots: Vec<String> = (0..3).map(|i| c.boot_id(&small_node(i))).collect();
    let r = c.run(&via_kube_args(&[]), true).await;
    r.assert_code(0);
    assert!(r.stdout.contains("KERNEL-AFTER"), "the after-table: {}", r.stdout);
    assert!(r.stderr.contains("KERNEL"), "the before-table: {}", r.stderr);
    for (i, before) in boots.iter().enumerate() {
        let n = small_node(i as u32);
        assert_eq!(c.kernel(&n), "5.15.0-1073-azure", "{n}");
        assert_ne!(&c.boot_id(&n), before, "{n} rebooted: a new bootID");
    }
    assert!(
        c.unschedulable(&small_node(2)),
        "the node cordoned by hand stays cordoned"
    );
    assert!(!c.unschedulable(&small_node(0)) && !c.unschedulable(&small_node(1)));
    assert_eq!(max_nodes_out(&c.events(), &[small_node(2)]), 1, "never two nodes out");
    assert!(of_kind(&c.events(), "ssh-session").is_empty(), "nothing went over SSH");
    assert!(
        c.shell_pods().is_empty(),
        "no node-shell pod left: {:?}",
        c.shell_pods()
    );
    // The drain never evicted aks-patch's own pods.
    assert!(
        of_kind(&c.events(), "eviction")
            .iter()
            .all(|e| !e.object.as_deref().unwrap_or("").contains("aks-patch-shell")),
        "node-shell pods are not evicted"
    );
    assert!(c.lock_free());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn image_pull_failure_and_exec_refused_are_named() {
    skip_unless_root!();
    let c = Cluster::start(Some(&no_ssh_one_cordoned())).await;
    c.sim
        .fault(Fault::ImagePullFailure {
            image: "mcr.microsoft.com/azurelinux/busybox:1.36".into(),
        })
        .unwrap();
    let r = tokio::time::timeout(
        Duration::from_secs(60),
        c.run(&["scan", "--via", "kube", "--connect-timeout", "20"], true),
    )
    .await
    .expect("no hang");
    r.assert_code(5);
    assert!(
        r.stderr.contains("ErrImagePull") || r.stderr.contains("ImagePullBackOff"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("--node-shell-image"), "{}", r.stderr);
    assert!(c.shell_pods().is_empty(), "{:?}", c.shell_pods());

    c.sim.fault(Fault::Clear).unwrap();
    c.sim.fault(Fault::ExecRefused).unwrap();
    let r = c.run(&["scan", "--via", "kube"], true).await;
    r.assert_code(5);
    assert!(r.stderr.contains("exec into the node-shell pod"), "{}", r.stderr);
    assert!(r.stderr.contains("forbidden"), "{}", r.stderr);
    assert!(c.shell_pods().is_empty(), "{:?}", c.shell_pods());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn missing_rbac_exits_4_naming_the_permission() {
    skip_unless_root!();
    let yaml = format!(
        "{}access:\n  user:\n    username: ops@contoso.com\n    clusterRole: patcher\n    rules:\n      - {{verbs: [get, list, watch], apiGroups: [\"\"], resources: [nodes, pods]}}\n      - {{verbs: [create, delete], apiGroups: [\"\"], resources: [pods]}}\n      - {{verbs: [get], apiGroups: [\"\"], resources: [pods/exec]}}\n",
        no_ssh_one_cordoned()
    );
    let c = Cluster::start(Some(&yaml)).await;
    let r = c.run(&["scan", "--via", "kube"], true).await;
    r.assert_code(4);
    assert!(
        r.stderr.contains("create pods/exec in namespace kube-system"),
        "names the verb, resource and namespace: {}",
        r.stderr
    );
    assert!(r.stderr.contains("rbac-via-kube.yaml"), "{}", r.stderr);
    assert!(of_kind(&c.events(), "pod-created").is_empty() || c.shell_pods().is_empty());
    assert!(of_kind(&c.events(), "pod-exec").is_empty(), "nothing ran");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ctrl_c_during_the_upgrade_leaves_no_pod_and_nothing_cordoned() {
    skip_unless_root!();
    let c = Cluster::start(Some(&no_ssh_one_cordoned())).await;
    // The first node's upgrade waits for the dpkg lock until the test lets it go.
    c.hold_package_lock(&small_node(0));
    let run = c.start_job(&via_kube_args(&[]));
    c.wait_for_upgrade_output(&small_node(0), "Waiting for cache lock")
        .await;
    run.signal(libc::SIGINT);
    run.wait_for_stderr("that it waits for apt", |e| e.contains("waiting for apt to finish"))
        .await;
    c.release_package_lock(&small_node(0));
    let r = run.finish().await;
    r.assert_code(130);
    assert!(
        c.shell_pods().is_empty(),
        "no node-shell pod left: {:?}",
        c.shell_pods()
    );
    assert!(
        of_kind(&c.events(), "cordon").is_empty(),
        "nothing cordoned: {}",
        r.stderr
    );
    for i in 0..2 {
        assert!(!c.unschedulable(&small_node(i)));
    }
    assert!(c.lock_free());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_killed_runs_pod_is_removed_by_the_next_run() {
    skip_unless_root!();
    let c = Cluster::start(Some(&no_ssh_one_cordoned())).await;
    c.hold_package_lock(&small_node(0));
    let mut child = c.spawn_job(&via_kube_args(&[]));
    c.wait_for_upgrade_output(&small_node(0), "Waiting for cache lock")
        .await;
    child.kill().await.unwrap(); // SIGKILL: nothing is cleaned up
    let left = c.shell_pods();
    assert!(!left.is_empty(), "the killed run left its pod");
    c.sim.fault(Fault::Clear).unwrap();
    let r = c.run(&["scan", "--via", "kube"], true).await;
    r.assert_code(0);
    assert!(
        r.stderr
            .contains("removed 1 node-shell pod(s) an earlier aks-patch run left"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains(&left[0]), "names the pod: {}", r.stderr);
    assert!(c.shell_pods().is_empty(), "{:?}", c.shell_pods());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_during_a_scan_deletes_the_node_shell_pods() {
    skip_unless_root!();
    let c = Cluster::start(Some(&no_ssh_one_cordoned())).await;
    // A node that went down for good: its node-shell pod stays Pending, so the scan waits
    // (up to --connect-timeout) when the signal comes.
    let down = small_node(1);
    c.take_down(&down).await;
    let child = c.spawn_job(&["scan", "--via", "kube", "--connect-timeout", "120"]);
    wait_until("a node-shell pod", || !c.shell_pods().is_empty()).await;
    wait_until("the other nodes probed", || of_kind(&c.events(), "pod-exec").len() >= 2).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!c.shell_pods().is_empty(), "the down node's pod waits");
    signal_group(&child, libc::SIGTERM);
    let r = finish(child).await;
    r.assert_code(130);
    assert!(r.stderr.contains("interrupted"), "{}", r.stderr);
    assert!(
        c.shell_pods().is_empty(),
        "no node-shell pod left: {:?}",
        c.shell_pods()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_pod_that_cannot_start_is_a_node_error_within_connect_timeout() {
    skip_unless_root!();
    let c = Cluster::start(Some(&no_ssh_one_cordoned())).await;
    let down = small_node(1);
    c.take_down(&down).await;
    let r = c
        .run(&["scan", "--via", "kube", "--connect-timeout", "3", "-o", "json"], true)
        .await;
    r.assert_code(5);
    assert!(
        r.stderr
            .contains(&format!("did not start on node {down} within 3s (--connect-timeout)")),
        "{}",
        r.stderr
    );
    let rows = r.json();
    let ok: Vec<&serde_json::Value> = rows
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["error"].is_null())
        .collect();
    assert_eq!(ok.len(), 2, "the other nodes are scanned: {rows}");
    assert!(c.shell_pods().is_empty(), "{:?}", c.shell_pods());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ctrl_c_before_the_lock_deletes_the_pods_and_changes_nothing() {
    skip_unless_root!();
    // Pods never start in time: the signal comes while the before-table waits for them.
    let yaml = no_ssh_one_cordoned().replace("podStartSeconds: 0.3", "podStartSeconds: 600");
    let c = Cluster::start(Some(&yaml)).await;
    let child = c.spawn_job(&via_kube_args(&["--connect-timeout", "60"]));
    wait_until("the node-shell pods", || c.shell_pods().len() >= 2).await;
    signal_group(&child, libc::SIGINT);
    let r = finish(child).await;
    r.assert_code(130);
    assert!(r.stderr.contains("nothing was changed"), "{}", r.stderr);
    assert!(
        c.shell_pods().is_empty(),
        "no node-shell pod left: {:?}",
        c.shell_pods()
    );
    assert!(of_kind(&c.events(), "pod-exec").is_empty(), "nothing ran on the nodes");
    assert!(c.lock_free());
}
