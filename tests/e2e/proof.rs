//! No success without proof, end to end against aks-sim: a node is reported patched only
//! once it was checked after its reboot (new bootID, Ready, the reboot marker gone, nothing
//! pending). When the check cannot be made (the transport down after the reboot), the node is
//! put back in service but recorded `unproven`, the run stops with exit 5 naming it, and
//! `--resume` proves it first, without cordoning or rebooting it again. And when the reboot
//! command cannot be given through the node-shell pod (exec refused), the VM is restarted
//! through ARM. Proven from the event log, the run record (`--journal-dir`) and the cluster.

use crate::common::*;
use aks_sim::Fault;
use std::path::Path;
use std::time::Duration;

/// Three nodes without SSH (reached with `--via kube`), a pending kernel, a Deployment with a PDB.
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
workloads:
  - {kind: Deployment, name: web, namespace: app, replicas: 2, pool: nodes, pdb: {minAvailable: 1}, terminationGraceSeconds: 1}
  - {kind: DaemonSet, name: agent, namespace: kube-system}
"#;

fn node_in<'a>(rec: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    rec["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == name)
        .unwrap_or_else(|| panic!("no {name} in {rec}"))
}

/// The first run stopped on `node`, unproven: exit 5 naming it and what to do, never
/// "patched" or "succeeded", the node back in service with a new bootID, and the record
/// (printed and on disk) saying `unproven` without a proof.
fn assert_unproven(c: &Cluster, r: &Run, node: &str, boot_before: &str, journal: &Path) {
    r.assert_code(5);
    assert!(
        r.stderr
            .contains(&format!("node {node} is not proven patched (recorded unproven)"))
            && r.stderr.contains("--resume"),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains("patched in"), "{}", r.stderr);
    assert!(!r.stderr.contains("run succeeded"), "{}", r.stderr);
    assert!(!r.stderr.contains("Status {"), "{}", r.stderr);
    let printed = r.node_record(node);
    assert_eq!(printed["state"], "unproven", "{printed}");
    assert!(printed.get("proof").is_none(), "{printed}");
    assert_eq!(r.json()["status"], "failed");
    let saved = run_records(journal);
    assert_eq!(saved.len(), 1);
    assert_eq!(node_in(&saved[0], node)["state"], "unproven");
    assert_eq!(node_in(&saved[0], node)["bootIdBefore"], boot_before);
    assert_ne!(c.boot_id(node), boot_before, "it rebooted");
    assert_eq!(node_in(&saved[0], node)["bootIdAfter"], c.boot_id(node).as_str());
    assert!(!c.unschedulable(node), "put back in service: capacity is back");
    assert_eq!(c.count("uncordon", node), 1);
    assert!(c.lock_free());
}

/// The resume proved `node` first: done with its proof, no new cordon or reboot of it.
fn assert_proven_by_resume(c: &Cluster, r: &Run, node: &str, cordons: usize, reboots: usize) {
    r.assert_code(0);
    assert!(r.stderr.contains("proving it first"), "{}", r.stderr);
    let rec = r.node_record(node);
    assert_eq!(rec["state"], "done", "{rec}");
    assert_eq!(rec["proof"]["rebooted"], true, "{rec}");
    assert_eq!(rec["proof"]["bootIdAfter"], c.boot_id(node).as_str(), "{rec}");
    assert_eq!(c.count("cordon", node), cordons, "not cordoned again");
    assert_eq!(c.count("reboot", node), reboots, "not rebooted again");
    assert_eq!(c.kernel(node), "5.15.0-1073-azure");
    assert!(!c.unschedulable(node));
    assert!(c.lock_free());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ssh_down_after_the_reboot_is_never_patched_and_resume_proves_the_node_first() {
    skip_unless_root!();
    let c = Cluster::start(Some(SMALL)).await;
    let n0 = small_node(0);
    let before = c.boot_id(&n0);
    let other_boot = c.boot_id(&small_node(1));
    let jd = tempfile::tempdir().unwrap();
    let journal = jd.path().to_str().unwrap();
    let child = c
        .command_with_target(&apply_args(&[
            "--reboot",
            "always",
            "--nodes",
            &n0,
            "--reboot-timeout",
            "15",
            "--journal-dir",
            journal,
            "-o",
            "json",
        ]))
        .spawn()
        .unwrap();
    // When it reboots, its sshd stops answering.
    c.wait_for_event("reboot", Some(&n0), Duration::from_secs(120)).await;
    c.sim.fault(Fault::SshDown { node: n0.clone() }).unwrap();
    let r = finish(child).await;
    assert_unproven(&c, &r, &n0, &before, jd.path());
    assert!(r.stderr.contains("Connection refused"), "says why: {}", r.stderr);
    assert!(r.stderr.contains("--reboot-timeout (15s)"), "{}", r.stderr);
    assert_eq!(max_nodes_out(&c.events(), &[]), 1);

    // A resume while SSH is still down proves nothing and changes nothing.
    let (cordons, reboots) = (c.count("cordon", &n0), c.count("reboot", &n0));
    let r = c
        .run(&apply_args(&["--resume", "--journal-dir", journal, "-o", "json"]), true)
        .await;
    r.assert_code(5);
    assert!(
        r.stderr.contains(&n0) && r.stderr.contains("Connection refused"),
        "{}",
        r.stderr
    );
    let last = run_records(jd.path()).pop().unwrap();
    assert_eq!(node_in(&last, &n0)["state"], "unproven", "still unproven");
    assert_eq!((c.count("cordon", &n0), c.count("reboot", &n0)), (cordons, reboots));

    // SSH back: the resume proves it (probe: marker gone, nothing pending) and exits 0.
    c.sim.fault(Fault::SshUp { node: n0.clone() }).unwrap();
    let r = c
        .run(&apply_args(&["--resume", "--journal-dir", journal, "-o", "json"]), true)
        .await;
    assert_proven_by_resume(&c, &r, &n0, cordons, reboots);
    assert_eq!(r.json()["status"], "succeeded");
    assert_eq!(c.boot_id(&small_node(1)), other_boot, "only the selected node rebooted");
    assert_eq!(c.count("cordon", &small_node(1)), 0, "only the selected node");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn via_kube_exec_refused_after_the_cordon_restarts_the_node_through_arm() {
    skip_unless_root!();
    let c = Cluster::start(Some(NO_SSH)).await;
    let n0 = small_node(0);
    let before = c.boot_id(&n0);
    let jd = tempfile::tempdir().unwrap();
    let journal = jd.path().to_str().unwrap();
    let child = c
        .command_with_target(&apply_args(&[
            "--via",
            "kube",
            "--nodes",
            &n0,
            "--reboot-timeout",
            "15",
            "--journal-dir",
            journal,
            "-o",
            "json",
        ]))
        .spawn()
        .unwrap();
    // Once cordoned (apt is done), exec is refused by an admission policy.
    wait_until("the cordon", || c.unschedulable(&n0)).await;
    c.sim.fault(Fault::ExecRefused).unwrap();
    let r = finish(child).await;
    // The reboot command could not be given: ARM restarted the VM.
    assert!(c.count("vm-restart", &n0) >= 1, "restarted through ARM: {}", r.stderr);
    assert!(
        of_kind(&c.events(), "reboot")
            .iter()
            .any(|e| e.node.as_deref() == Some(n0.as_str()) && e.detail.contains("vmss restart")),
        "rebooted by the restart"
    );
    // Exec still refused after the reboot: not checked, so unproven, never patched.
    assert_unproven(&c, &r, &n0, &before, jd.path());
    assert!(
        r.stderr.contains("forbidden: exec into pods is denied"),
        "the API server's message: {}",
        r.stderr
    );

    // Exec allowed again: the resume proves it without cordon or reboot.
    let (cordons, reboots) = (c.count("cordon", &n0), c.count("reboot", &n0));
    c.sim.fault(Fault::Clear).unwrap();
    let r = c
        .run(
            &apply_args(&["--resume", "--via", "kube", "--journal-dir", journal, "-o", "json"]),
            true,
        )
        .await;
    assert_proven_by_resume(&c, &r, &n0, cordons, reboots);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn via_kube_node_shell_image_unpullable_after_the_drain_is_never_patched() {
    skip_unless_root!();
    let c = Cluster::start(Some(NO_SSH)).await;
    let n0 = small_node(0);
    let before = c.boot_id(&n0);
    let jd = tempfile::tempdir().unwrap();
    let journal = jd.path().to_str().unwrap();
    let child = c
        .command_with_target(&apply_args(&[
            "--via",
            "kube",
            "--nodes",
            &n0,
            "--reboot-timeout",
            "15",
            "--connect-timeout",
            "5",
            "--journal-dir",
            journal,
            "-o",
            "json",
        ]))
        .spawn()
        .unwrap();
    // Once the drain evicted its pods, the node-shell image cannot be pulled any more.
    c.wait_for_event("eviction", Some(&n0), Duration::from_secs(120)).await;
    c.sim
        .fault(Fault::ImagePullFailure {
            image: "mcr.microsoft.com/azurelinux/busybox:1.36".into(),
        })
        .unwrap();
    let r = finish(child).await;
    assert_unproven(&c, &r, &n0, &before, jd.path());

    let (cordons, reboots) = (c.count("cordon", &n0), c.count("reboot", &n0));
    c.sim.fault(Fault::Clear).unwrap();
    let r = c
        .run(
            &apply_args(&["--resume", "--via", "kube", "--journal-dir", journal, "-o", "json"]),
            true,
        )
        .await;
    assert_proven_by_resume(&c, &r, &n0, cordons, reboots);
}

/// [`NO_SSH`] for `--via run-command` (run commands take 0.2 s).
fn run_command_cluster() -> String {
    NO_SSH.replace(
        "aptUpdateSeconds: 0.1}",
        "aptUpdateSeconds: 0.1, runCommandSeconds: 0.2}",
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn via_run_command_hung_after_the_drain_restarts_through_arm_and_is_never_patched_unchecked() {
    skip_unless_root!();
    let c = Cluster::start(Some(&run_command_cluster())).await;
    let n0 = small_node(0);
    let before = c.boot_id(&n0);
    let jd = tempfile::tempdir().unwrap();
    let journal = jd.path().to_str().unwrap();
    let child = c
        .command_with_target(&apply_args(&[
            "--via",
            "run-command",
            "--nodes",
            &n0,
            "--reboot-timeout",
            "15",
            "--journal-dir",
            journal,
            "-o",
            "json",
        ]))
        .spawn()
        .unwrap();
    // Once the drain evicted its pods, run commands on the node never finish.
    c.wait_for_event("eviction", Some(&n0), Duration::from_secs(120)).await;
    c.sim.fault(Fault::RunCommandHang { node: n0.clone() }).unwrap();
    let out = tokio::time::timeout(Duration::from_secs(420), child.wait_with_output())
        .await
        .expect("aks-patch finished within 420 s")
        .expect("aks-patch runs");
    let r = Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).to_string(),
        stderr: String::from_utf8_lossy(&out.stderr).to_string(),
    };
    // The reboot command hung: ARM restarted the VM.
    assert!(c.count("vm-restart", &n0) >= 1, "restarted through ARM: {}", r.stderr);
    // Run commands still hang after the reboot: not checked, so unproven, never patched.
    assert_unproven(&c, &r, &n0, &before, jd.path());

    let (cordons, reboots) = (c.count("cordon", &n0), c.count("reboot", &n0));
    c.sim.fault(Fault::Clear).unwrap();
    let r = c
        .run(
            &apply_args(&[
                "--resume",
                "--via",
                "run-command",
                "--journal-dir",
                journal,
                "-o",
                "json",
            ]),
            true,
        )
        .await;
    assert_proven_by_resume(&c, &r, &n0, cordons, reboots);
}
