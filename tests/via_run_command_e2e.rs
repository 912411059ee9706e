//! `--via run-command`, end to end against aks-sim: every pool with
//! `sshAccess: Disabled` and no use of the Kubernetes API's exec, scan and apply reach the
//! nodes through ARM alone (VM scale set run commands), proven from the emulator's event log;
//! a 409 waited out, a hanging run command bounded with a per-node error, an output beyond the
//! 4,096-byte tail fetched whole, and node resource group lockdown exiting 4 with its hint.

mod common;
use aks_sim::Fault;
use common::{boot_id, max_nodes_out, of_kind, Cluster};
use std::time::Duration;

/// Three Ubuntu nodes without SSH (one cordoned by hand), a pending kernel, a Deployment with a PDB.
const NO_SSH: &str = r#"
resourceGroup: rg-test
cluster: {name: aks-test}
timing: {shutdownSeconds: 0.2, bootSeconds: 1, readySeconds: 0.3, podStartSeconds: 0.3, terminationSeconds: 0.1, aptSeconds: 0.1, aptUpdateSeconds: 0.1, runCommandSeconds: 0.2}
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

fn run_commands_on(c: &Cluster, n: &str, prefix: &str) -> usize {
    of_kind(&c.events(), "run-command")
        .iter()
        .filter(|e| e.node.as_deref() == Some(n) && e.detail.starts_with(prefix))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn scan_and_apply_via_run_command_when_ssh_is_disabled() {
    let c = Cluster::start(Some(NO_SSH)).await;
    let r = c.run(&["scan", "--via", "run-command", "-o", "json"], true).await;
    r.assert_code(0);
    for row in r.json().as_array().unwrap() {
        assert_eq!(row["runningKernel"], "5.15.0-1068-azure", "{row}");
        assert_eq!(row["pendingUpdates"], 2, "{row}");
        assert!(row["error"].is_null(), "{row}");
    }
    for i in 0..3 {
        assert!(
            run_commands_on(&c, &node(i), "start managed") >= 1,
            "node {i} probed by run command"
        );
        assert_eq!(
            run_commands_on(&c, &node(i), "start managed"),
            run_commands_on(&c, &node(i), "deleted managed"),
            "every run command deleted afterwards"
        );
    }
    assert!(of_kind(&c.events(), "ssh-session").is_empty(), "nothing went over SSH");
    assert!(
        of_kind(&c.events(), "pod-exec").is_empty(),
        "nothing went through pods/exec"
    );

    let boots: Vec<String> = (0..3).map(|i| boot_id(&c, &node(i))).collect();
    let r = c
        .run(
            &[
                "apply",
                "--via",
                "run-command",
                "--one-at-a-time",
                "--yes",
                "--eviction-retry-interval",
                "1",
            ],
            true,
        )
        .await;
    r.assert_code(0);
    for (i, before) in boots.iter().enumerate() {
        let n = node(i as u32);
        assert_eq!(c.kernel(&n), "5.15.0-1073-azure", "{n}");
        assert_ne!(&boot_id(&c, &n), before, "{n} rebooted: a new bootID");
    }
    let events = c.events();
    assert!(!of_kind(&events, "apt-upgrade").is_empty());
    assert!(c.unschedulable(&node(2)), "the node cordoned by hand stays cordoned");
    assert!(!c.unschedulable(&node(0)) && !c.unschedulable(&node(1)));
    assert_eq!(max_nodes_out(&events, &[node(2)]), 1, "never two nodes out");
    assert!(of_kind(&events, "ssh-session").is_empty(), "nothing went over SSH");
    assert!(c.lock_free());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_conflict_is_waited_out_and_a_hang_is_a_per_node_error() {
    let c = Cluster::start(Some(NO_SSH)).await;
    c.sim.fault(Fault::RunCommandConflict { count: 2 }).unwrap();
    c.sim.fault(Fault::RunCommandHang { node: node(1) }).unwrap();
    let r = tokio::time::timeout(
        Duration::from_secs(120),
        c.run(
            &["scan", "--via", "run-command", "--connect-timeout", "1", "-o", "json"],
            true,
        ),
    )
    .await
    .expect("bounded");
    let rows = r.json();
    let row = |n: &str| {
        rows.as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == n)
            .cloned()
            .unwrap()
    };
    assert_eq!(row(&node(0))["pendingUpdates"], 2, "{}", r.stderr);
    assert_eq!(row(&node(2))["pendingUpdates"], 2, "{}", r.stderr);
    let err = row(&node(1))["error"].as_str().unwrap_or("").to_string();
    assert!(
        err.contains(&node(1)) && (err.contains("did not finish") || err.contains("timed out")),
        "{err}"
    );
    let refused = of_kind(&c.events(), "run-command")
        .iter()
        .filter(|e| e.detail.contains("refused 409"))
        .count();
    assert!(refused >= 2, "the conflicts happened and were waited out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_output_beyond_the_tail_is_fetched_whole() {
    let mut updates = String::new();
    for i in 0..150 {
        updates.push_str(&format!(
            "      - {{name: libexample{i}, from: 1.0.{i}-1, to: 1.0.{i}-2ubuntu0.1, pocket: jammy-updates}}\n"
        ));
    }
    let yaml = format!(
        "resourceGroup: rg-test\ncluster: {{name: aks-test}}\ntiming: {{runCommandSeconds: 0.1}}\npools:\n  - name: nodes\n    count: 1\n    sshAccess: Disabled\n    updates:\n{updates}"
    );
    let c = Cluster::start(Some(&yaml)).await;
    let r = c.run(&["scan", "--via", "run-command", "-o", "json"], true).await;
    r.assert_code(0);
    let row = &r.json()[0];
    assert_eq!(row["pendingUpdates"], 150, "{row}");
    assert!(run_commands_on(&c, &node(0), "start managed") > 2, "fetched in pieces");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn node_resource_group_lockdown_exits_4_with_its_hint() {
    let c = Cluster::start(Some(NO_SSH)).await;
    c.sim.fault(Fault::NrgLockdown).unwrap();
    let r = c.run(&["scan", "--via", "run-command"], true).await;
    r.assert_code(4);
    assert!(
        r.stderr
            .contains("Microsoft.Compute/virtualMachineScaleSets/virtualMachines/runCommands/write"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr
            .contains("Microsoft.Compute/virtualMachineScaleSets/virtualMachines/runCommand/action"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("hint:") && r.stderr.contains("--via kube"),
        "{}",
        r.stderr
    );
    assert!(of_kind(&c.events(), "run-command").is_empty(), "nothing ran");
}

/// `apply` that gives up on a hung SSH session after 3 s.
const APPLY_BRIEF_SSH: &[&str] = &[
    "apply",
    "--one-at-a-time",
    "--yes",
    "--eviction-retry-interval",
    "1",
    "--ssh-timeout",
    "3",
];

/// [`NO_SSH`] with SSH allowed and no node cordoned by hand.
fn with_ssh() -> String {
    NO_SSH
        .replace("    sshAccess: Disabled\n", "")
        .replace("nodes:\n  aks-nodes-31415926-vmss000002: {cordoned: true}\n", "")
}

/// Once `node` is upgraded and cordoned (apt is done; its drain and reboot are next), its SSH
/// hangs. (The apt-upgrade event marks apt's start: a hang then would cut the upgrade.)
async fn hang_ssh_once_cordoned(c: &Cluster, node: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while !c.unschedulable(node) {
        assert!(std::time::Instant::now() < deadline, "{node} was never cordoned");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    c.sim.fault(Fault::SshHang { node: node.into() }).unwrap();
}

/// A node whose SSH hangs at the reboot (fault ssh-hang: its sessions die, new connections
/// are never answered) is restarted through ARM instead, and the reboot is proven as always.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_whose_ssh_hangs_is_rebooted_through_an_arm_restart() {
    let c = Cluster::start(Some(&with_ssh())).await;
    let boots: Vec<String> = (0..3).map(|i| boot_id(&c, &node(i))).collect();
    let child = c
        .command_with_target(&[APPLY_BRIEF_SSH, &["--nodes", &node(0)]].concat())
        .spawn()
        .unwrap();
    hang_ssh_once_cordoned(&c, &node(0)).await;
    let out = tokio::time::timeout(Duration::from_secs(240), child.wait_with_output())
        .await
        .expect("apply ends")
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert_ne!(boot_id(&c, &node(0)), boots[0], "node 0 rebooted: a new bootID");
    assert_eq!(c.kernel(&node(0)), "5.15.0-1073-azure");
    let events = c.events();
    assert!(
        of_kind(&events, "ssh-session")
            .iter()
            .any(|e| e.node.as_deref() == Some(node(0).as_str()) && e.detail.contains("hangs")),
        "the SSH session hung"
    );
    assert!(
        of_kind(&events, "reboot")
            .iter()
            .any(|e| e.node.as_deref() == Some(node(0).as_str()) && e.detail.contains("vmss restart")),
        "rebooted through ARM restart"
    );
    assert!(!c.unschedulable(&node(0)), "uncordoned after the proof");
    assert_eq!(boot_id(&c, &node(1)), boots[1], "node 1 untouched");
    assert!(c.lock_free());
}

/// Faults in combination on the ARM restart path: the run is killed (SIGKILL, no clean-up)
/// while ARM restarts a node whose SSH hung, and another node dies meanwhile. The resume
/// finishes the node the dead run left out (proves its reboot, uncordons it) but takes no
/// other node out while one is down; once that node is repaired, a second resume finishes.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn resume_after_a_kill_during_an_arm_restart_finishes_that_node_and_waits_while_another_is_down() {
    let c = Cluster::start(Some(&with_ssh())).await;
    let boots: Vec<String> = (0..3).map(|i| boot_id(&c, &node(i))).collect();
    // Node 0's restart takes a while, so that the kill lands in it.
    c.sim
        .fault(Fault::SlowReboot {
            node: node(0),
            seconds: 4.0,
        })
        .unwrap();
    let args = |extra: &[&'static str]| [APPLY_BRIEF_SSH, &["--health-wait", "2"], extra].concat();
    let mut child = c.command_with_target(&args(&[])).spawn().unwrap();
    hang_ssh_once_cordoned(&c, &node(0)).await;
    // The restart through ARM has begun: kill the run there.
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while !of_kind(&c.events(), "reboot")
        .iter()
        .any(|e| e.node.as_deref() == Some(node(0).as_str()) && e.detail.contains("vmss restart"))
    {
        assert!(
            std::time::Instant::now() < deadline,
            "node 0 was never restarted through ARM"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    child.kill().await.unwrap();
    let _ = child.wait().await;
    assert!(c.unschedulable(&node(0)), "the killed run left node 0 cordoned");
    assert!(!c.lock_free(), "and its lock held");
    // A resume without --force-unlock is refused (the dead run's lease is fresh), and the
    // refusal says which node the dead run left out and how to put it back.
    let r = c.run(&args(&["--resume"]), true).await;
    r.assert_code(7);
    assert!(
        r.stderr.contains(&format!("node {} is out of service", node(0)))
            && r.stderr.contains("--resume --force-unlock")
            && r.stderr.contains(&format!(
                "kubectl uncordon {0} && kubectl annotate node {0} aks-patch.io/in-progress-",
                node(0)
            )),
        "{}",
        r.stderr
    );
    // Meanwhile node 2 dies.
    c.take_down(&node(2)).await;

    let r = c.run(&args(&["--resume", "--force-unlock", "-o", "json"]), true).await;
    r.assert_code(5);
    assert!(
        r.stderr.contains(&format!("node {} is", node(2))),
        "the halt names the node that is down: {}",
        r.stderr
    );
    assert_eq!(r.node_record(&node(0))["state"], "done", "{}", r.stdout);
    assert_ne!(boot_id(&c, &node(0)), boots[0], "node 0 rebooted");
    assert_eq!(c.kernel(&node(0)), "5.15.0-1073-azure");
    assert!(!c.unschedulable(&node(0)), "node 0 put back in service");
    let cordons_of = |n: &str| {
        of_kind(&c.events(), "cordon")
            .iter()
            .filter(|e| e.node.as_deref() == Some(n))
            .count()
    };
    assert_eq!(cordons_of(&node(1)), 0, "node 1 not taken out beside the dead node 2");
    assert_eq!(boot_id(&c, &node(1)), boots[1]);
    assert!(c.lock_free(), "the lock given back");

    // Node 2 is repaired: the next resume patches nodes 1 and 2.
    c.sim.fault(Fault::Clear).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while c.node(&node(2))["status"]["conditions"]
        .as_array()
        .is_some_and(|cs| cs.iter().any(|c| c["type"] == "Ready" && c["status"] != "True"))
    {
        assert!(std::time::Instant::now() < deadline, "node 2 never came back");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mark = c.events().len();
    let r = c.run(&args(&["--resume", "-o", "json"]), true).await;
    r.assert_code(0);
    for i in 0..3 {
        assert_eq!(r.node_record(&node(i))["state"], "done", "{}", r.stdout);
        assert_eq!(c.kernel(&node(i)), "5.15.0-1073-azure", "node {i}");
        assert!(!c.unschedulable(&node(i)), "node {i} in service");
    }
    assert!(max_nodes_out(&c.events()[mark..], &[]) <= 1, "one node out at a time");
    assert!(c.lock_free());
}
