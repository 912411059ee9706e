//! `--via kube`, end to end against aks-sim: every pool with `sshAccess: Disabled`
//! (so sshd refuses), scan and apply through node-shell pods over `pods/exec`; the pods'
//! lifecycle (none left after a run, a killed run's removed by the next, none after Ctrl-C);
//! image pull failure, exec refused and missing RBAC named in the error.

mod common;
use aks_sim::Fault;
use common::{boot_id, finish, max_nodes_out, of_kind, Cluster};
use std::time::Duration;

/// Three Ubuntu nodes without SSH (one cordoned by hand), a pending kernel, a Deployment with a PDB.
const NO_SSH: &str = r#"
resourceGroup: rg-test
cluster: {name: aks-test}
timing: {shutdownSeconds: 0.2, bootSeconds: 1, readySeconds: 0.3, podStartSeconds: 0.3, terminationSeconds: 0.1, aptSeconds: 0.1, aptUpdateSeconds: 0.1}
pools:
  - name: nodes
    mode: System
    count: 3
    sshAccess: Disabled
    kernel: 5.15.0-1068-azure
    updates:
      - {name: linux-azure, from: 5.15.0.1068.66, to: 5.15.0.1073.71, pocket: jammy-security, kernel: 5.15.0-1073-azure}
      - {name: openssl, from: 3.0.2-0ubuntu1.18, to: 3.0.2-0ubuntu1.19, pocket: jammy-security}
nodes:
  aks-nodes-31415926-vmss000002: {cordoned: true}
workloads:
  - {kind: Deployment, name: web, namespace: app, replicas: 2, pool: nodes, pdb: {minAvailable: 1}, terminationGraceSeconds: 1}
  - {kind: DaemonSet, name: agent, namespace: kube-system}
"#;

fn node(i: u32) -> String {
    format!("aks-nodes-31415926-vmss{i:06}")
}

/// aks-patch's node-shell pods in the emulator now.
fn shell_pods(c: &Cluster) -> Vec<String> {
    c.sim
        .shared
        .store
        .list(aks_sim::store::PODS, None)
        .into_iter()
        .filter(|p| p["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "aks-patch")
        .map(|p| p["metadata"]["name"].as_str().unwrap_or("").to_string())
        .collect()
}

fn apply_args<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec![
        "apply",
        "--via",
        "kube",
        "--one-at-a-time",
        "--yes",
        "--eviction-retry-interval",
        "1",
    ];
    v.extend_from_slice(extra);
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn scan_and_apply_via_kube_when_ssh_is_disabled() {
    let c = Cluster::start(Some(NO_SSH)).await;
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
        shell_pods(&c).is_empty(),
        "scan leaves no node-shell pod: {:?}",
        shell_pods(&c)
    );

    let boots: Vec<String> = (0..3).map(|i| boot_id(&c, &node(i))).collect();
    let r = c.run(&apply_args(&[]), true).await;
    r.assert_code(0);
    assert!(r.stdout.contains("KERNEL-AFTER"), "the after-table: {}", r.stdout);
    assert!(r.stderr.contains("KERNEL"), "the before-table: {}", r.stderr);
    for (i, before) in boots.iter().enumerate() {
        let n = node(i as u32);
        assert_eq!(c.kernel(&n), "5.15.0-1073-azure", "{n}");
        assert_ne!(&boot_id(&c, &n), before, "{n} rebooted: a new bootID");
    }
    assert!(c.unschedulable(&node(2)), "the node cordoned by hand stays cordoned");
    assert!(!c.unschedulable(&node(0)) && !c.unschedulable(&node(1)));
    assert_eq!(max_nodes_out(&c.events(), &[node(2)]), 1, "never two nodes out");
    assert!(of_kind(&c.events(), "ssh-session").is_empty(), "nothing went over SSH");
    assert!(
        shell_pods(&c).is_empty(),
        "no node-shell pod left: {:?}",
        shell_pods(&c)
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
    let c = Cluster::start(Some(NO_SSH)).await;
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
    assert!(shell_pods(&c).is_empty(), "{:?}", shell_pods(&c));

    c.sim.fault(Fault::Clear).unwrap();
    c.sim.fault(Fault::ExecRefused).unwrap();
    let r = c.run(&["scan", "--via", "kube"], true).await;
    r.assert_code(5);
    assert!(r.stderr.contains("exec into the node-shell pod"), "{}", r.stderr);
    assert!(r.stderr.contains("forbidden"), "{}", r.stderr);
    assert!(shell_pods(&c).is_empty(), "{:?}", shell_pods(&c));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn missing_rbac_exits_4_naming_the_permission() {
    let yaml = format!(
        "{NO_SSH}access:\n  user:\n    username: ops@contoso.com\n    clusterRole: patcher\n    rules:\n      - {{verbs: [get, list, watch], apiGroups: [\"\"], resources: [nodes, pods]}}\n      - {{verbs: [create, delete], apiGroups: [\"\"], resources: [pods]}}\n      - {{verbs: [get], apiGroups: [\"\"], resources: [pods/exec]}}\n"
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
    assert!(of_kind(&c.events(), "pod-created").is_empty() || shell_pods(&c).is_empty());
    assert!(of_kind(&c.events(), "pod-exec").is_empty(), "nothing ran");
}

/// Start `aks-patch ARGS` in its own process group (as a shell job), to signal it.
fn spawn_job(c: &Cluster, args: &[&str]) -> tokio::process::Child {
    let mut cmd = c.command_with_target(args);
    cmd.process_group(0);
    cmd.spawn().expect("aks-patch starts")
}

async fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !f() {
        assert!(std::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ctrl_c_during_the_upgrade_leaves_no_pod_and_nothing_cordoned() {
    let c = Cluster::start(Some(NO_SSH)).await;
    c.sim
        .fault(Fault::DpkgLock {
            node: node(0),
            seconds: 4.0,
        })
        .unwrap();
    let child = spawn_job(&c, &apply_args(&[]));
    wait_until("the upgrade to start", || {
        of_kind(&c.events(), "pod-exec")
            .iter()
            .any(|e| e.detail.contains("nohup") || e.detail.contains("setsid"))
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    // SAFETY: signalling the process group of our own child.
    unsafe { libc::kill(-(child.id().unwrap() as i32), libc::SIGINT) };
    let r = finish(child).await;
    r.assert_code(130);
    assert!(
        shell_pods(&c).is_empty(),
        "no node-shell pod left: {:?}",
        shell_pods(&c)
    );
    assert!(
        of_kind(&c.events(), "cordon").is_empty(),
        "nothing cordoned: {}",
        r.stderr
    );
    for i in 0..2 {
        assert!(!c.unschedulable(&node(i)));
    }
    assert!(c.lock_free());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_killed_runs_pod_is_removed_by_the_next_run() {
    let c = Cluster::start(Some(NO_SSH)).await;
    c.sim
        .fault(Fault::DpkgLock {
            node: node(0),
            seconds: 30.0,
        })
        .unwrap();
    let mut child = spawn_job(&c, &apply_args(&[]));
    wait_until("a node-shell pod", || !shell_pods(&c).is_empty()).await;
    wait_until("the upgrade to start", || {
        of_kind(&c.events(), "pod-exec")
            .iter()
            .any(|e| e.detail.contains("nohup") || e.detail.contains("setsid"))
    })
    .await;
    child.kill().await.unwrap(); // SIGKILL: nothing is cleaned up
    let left = shell_pods(&c);
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
    assert!(shell_pods(&c).is_empty(), "{:?}", shell_pods(&c));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_during_a_scan_deletes_the_node_shell_pods() {
    let c = Cluster::start(Some(NO_SSH)).await;
    // A node that went down for good: its node-shell pod stays Pending, so the scan waits
    // (up to --connect-timeout) when the signal comes.
    let down = node(1);
    c.take_down(&down).await;
    let child = spawn_job(&c, &["scan", "--via", "kube", "--connect-timeout", "120"]);
    wait_until("a node-shell pod", || !shell_pods(&c).is_empty()).await;
    wait_until("the other nodes probed", || of_kind(&c.events(), "pod-exec").len() >= 2).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!shell_pods(&c).is_empty(), "the down node's pod waits");
    // SAFETY: signalling the process group of our own child.
    unsafe { libc::kill(-(child.id().unwrap() as i32), libc::SIGTERM) };
    let r = finish(child).await;
    r.assert_code(130);
    assert!(r.stderr.contains("interrupted"), "{}", r.stderr);
    assert!(
        shell_pods(&c).is_empty(),
        "no node-shell pod left: {:?}",
        shell_pods(&c)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_pod_that_cannot_start_is_a_node_error_within_connect_timeout() {
    let c = Cluster::start(Some(NO_SSH)).await;
    let down = node(1);
    c.take_down(&down).await;
    let t0 = std::time::Instant::now();
    let r = c
        .run(&["scan", "--via", "kube", "--connect-timeout", "3", "-o", "json"], true)
        .await;
    r.assert_code(5);
    assert!(t0.elapsed() < Duration::from_secs(40), "no hang: {:?}", t0.elapsed());
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
    assert!(shell_pods(&c).is_empty(), "{:?}", shell_pods(&c));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ctrl_c_before_the_lock_deletes_the_pods_and_changes_nothing() {
    // Pods take 5 s to start: the signal comes while the before-table waits for them.
    let yaml = NO_SSH.replace("podStartSeconds: 0.3", "podStartSeconds: 5");
    let c = Cluster::start(Some(&yaml)).await;
    let child = spawn_job(&c, &apply_args(&["--connect-timeout", "60"]));
    wait_until("the node-shell pods", || shell_pods(&c).len() >= 2).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    // SAFETY: signalling the process group of our own child.
    unsafe { libc::kill(-(child.id().unwrap() as i32), libc::SIGINT) };
    let r = finish(child).await;
    r.assert_code(130);
    assert!(r.stderr.contains("nothing was changed"), "{}", r.stderr);
    assert!(
        shell_pods(&c).is_empty(),
        "no node-shell pod left: {:?}",
        shell_pods(&c)
    );
    assert!(of_kind(&c.events(), "pod-exec").is_empty(), "nothing ran on the nodes");
    assert!(c.lock_free());
}
