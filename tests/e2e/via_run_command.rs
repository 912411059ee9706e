//! `--via run-command`, end to end against aks-sim: every pool with
//! `sshAccess: Disabled` and no use of the Kubernetes API's exec, scan and apply reach the
//! nodes through ARM alone (VM scale set run commands), proven from the emulator's event log;
//! a 409 waited out, a hanging run command bounded with a per-node error, an output beyond the
//! 4,096-byte tail fetched whole, and node resource group lockdown exiting 4 with its hint.

use crate::common::*;
use aks_sim::Fault;
use std::time::Duration;

/// `yaml` with run commands that take 0.2 s.
fn run_command_timing(yaml: &str) -> String {
    yaml.replace(
        "aptUpdateSeconds: 0.1}",
        "aptUpdateSeconds: 0.1, runCommandSeconds: 0.2}",
    )
}

/// [`no_ssh_one_cordoned`]: the nodes are reached through ARM alone.
fn arm_only() -> String {
    run_command_timing(&no_ssh_one_cordoned())
}

fn run_commands_on(c: &Cluster, n: &str, prefix: &str) -> usize {
    of_kind(&c.events(), "run-command")
        .iter()
        .filter(|e| e.node.as_deref() == Some(n) && e.detail.starts_with(prefix))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn scan_and_apply_via_run_command_when_ssh_is_disabled() {
    skip_unless_root!();
    let c = Cluster::start(Some(&arm_only())).await;
    let r = c.run(&["scan", "--via", "run-command", "-o", "json"], true).await;
    r.assert_code(0);
    for row in r.json().as_array().unwrap() {
        assert_eq!(row["runningKernel"], "5.15.0-1068-azure", "{row}");
        assert_eq!(row["pendingUpdates"], 2, "{row}");
        assert!(row["error"].is_null(), "{row}");
    }
    for i in 0..3 {
        assert!(
            run_commands_on(&c, &small_node(i), "start managed") >= 1,
            "node {i} probed by run command"
        );
        assert_eq!(
            run_commands_on(&c, &small_node(i), "start managed"),
            run_commands_on(&c, &small_node(i), "deleted managed"),
            "every run command deleted afterwards"
        );
    }
    assert!(of_kind(&c.events(), "ssh-session").is_empty(), "nothing went over SSH");
    assert!(
        of_kind(&c.events(), "pod-exec").is_empty(),
        "nothing went through pods/exec"
    );

    let boots: Vec<String> = (0..3).map(|i| c.boot_id(&small_node(i))).collect();
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
        let n = small_node(i as u32);
        assert_eq!(c.kernel(&n), "5.15.0-1073-azure", "{n}");
        assert_ne!(&c.boot_id(&n), before, "{n} rebooted: a new bootID");
    }
    let events = c.events();
    assert!(!of_kind(&events, "apt-upgrade").is_empty());
    assert!(
        c.unschedulable(&small_node(2)),
        "the node cordoned by hand stays cordoned"
    );
    assert!(!c.unschedulable(&small_node(0)) && !c.unschedulable(&small_node(1)));
    assert_eq!(max_nodes_out(&events, &[small_node(2)]), 1, "never two nodes out");
    assert!(of_kind(&events, "ssh-session").is_empty(), "nothing went over SSH");
    assert!(c.lock_free());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_conflict_is_waited_out_and_a_hang_is_a_per_node_error() {
    skip_unless_root!();
    let c = Cluster::start(Some(&arm_only())).await;
    c.sim.fault(Fault::RunCommandConflict { count: 2 }).unwrap();
    c.sim.fault(Fault::RunCommandHang { node: small_node(1) }).unwrap();
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
    assert_eq!(row(&small_node(0))["pendingUpdates"], 2, "{}", r.stderr);
    assert_eq!(row(&small_node(2))["pendingUpdates"], 2, "{}", r.stderr);
    let err = row(&small_node(1))["error"].as_str().unwrap_or("").to_string();
    assert!(
        err.contains(&small_node(1)) && (err.contains("did not finish") || err.contains("timed out")),
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
    skip_unless_root!();
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
    assert!(
        run_commands_on(&c, &small_node(0), "start managed") > 2,
        "fetched in pieces"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn node_resource_group_lockdown_exits_4_with_its_hint() {
    skip_unless_root!();
    let c = Cluster::start(Some(&arm_only())).await;
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

/// [`rollout_args`] giving up on a hung SSH session after 3 s; then `extra`.
fn brief_ssh_args<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    let mut v = rollout_args(&["--ssh-timeout", "3"]);
    v.extend_from_slice(extra);
    v
}

/// [`SMALL`] (SSH allowed, no node cordoned by hand) with run commands that take 0.2 s.
fn with_ssh() -> String {
    run_command_timing(SMALL)
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
    skip_unless_root!();
    let c = Cluster::start(Some(&with_ssh())).await;
    let boots: Vec<String> = (0..3).map(|i| c.boot_id(&small_node(i))).collect();
    let child = c.spawn(&brief_ssh_args(&["--nodes", &small_node(0)]));
    hang_ssh_once_cordoned(&c, &small_node(0)).await;
    let out = tokio::time::timeout(Duration::from_secs(240), child.wait_with_output())
        .await
        .expect("apply ends")
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert_ne!(c.boot_id(&small_node(0)), boots[0], "node 0 rebooted: a new bootID");
    assert_eq!(c.kernel(&small_node(0)), "5.15.0-1073-azure");
    let events = c.events();
    assert!(
        of_kind(&events, "ssh-session")
            .iter()
            .any(|e| e.node.as_deref() == Some(small_node(0).as_str()) && e.detail.contains("hangs")),
        "the SSH session hung"
    );
    assert!(
        of_kind(&events, "reboot")
            .iter()
            .any(|e| e.node.as_deref() == Some(small_node(0).as_str()) && e.detail.contains("vmss restart")),
        "rebooted through ARM restart"
    );
    assert!(!c.unschedulable(&small_node(0)), "uncordoned after the proof");
    assert_eq!(c.boot_id(&small_node(1)), boots[1], "node 1 untouched");
    assert!(c.lock_free());
}

/// Faults in combination on the ARM restart path: the run is killed (SIGKILL, no clean-up)
/// while ARM restarts a node whose SSH hung, and another node dies meanwhile. The resume
/// finishes the node the dead run left out (proves its reboot, uncordons it) but takes no
/// other node out while one is down; once that node is repaired, a second resume finishes.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn resume_after_a_kill_during_an_arm_restart_finishes_that_node_and_waits_while_another_is_down() {
    skip_unless_root!();
    let c = Cluster::start(Some(&with_ssh())).await;
    let boots: Vec<String> = (0..3).map(|i| c.boot_id(&small_node(i))).collect();
    // Node 0's restart takes a while, so that the kill lands in it.
    c.sim
        .fault(Fault::SlowReboot {
            node: small_node(0),
            seconds: 4.0,
        })
        .unwrap();
    let args = |extra: &[&'static str]| [brief_ssh_args(&["--health-wait", "2"]), extra.to_vec()].concat();
    let mut child = c.spawn(&args(&[]));
    hang_ssh_once_cordoned(&c, &small_node(0)).await;
    // The restart through ARM has begun: kill the run there.
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while !of_kind(&c.events(), "reboot")
        .iter()
        .any(|e| e.node.as_deref() == Some(small_node(0).as_str()) && e.detail.contains("vmss restart"))
    {
        assert!(
            std::time::Instant::now() < deadline,
            "node 0 was never restarted through ARM"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    child.kill().await.unwrap();
    let _ = child.wait().await;
    assert!(c.unschedulable(&small_node(0)), "the killed run left node 0 cordoned");
    assert!(!c.lock_free(), "and its lock held");
    // A resume without --force-unlock is refused (the dead run's lease is fresh), and the
    // refusal says which node the dead run left out and how to put it back.
    let r = c.run(&args(&["--resume"]), true).await;
    r.assert_code(7);
    assert!(
        r.stderr.contains(&format!("node {} is out of service", small_node(0)))
            && r.stderr.contains("--resume --force-unlock")
            && r.stderr.contains(&format!(
                "kubectl uncordon {0} && kubectl annotate node {0} aks-patch.io/in-progress-",
                small_node(0)
            )),
        "{}",
        r.stderr
    );
    // Meanwhile node 2 dies.
    c.take_down(&small_node(2)).await;

    let r = c.run(&args(&["--resume", "--force-unlock", "-o", "json"]), true).await;
    r.assert_code(5);
    assert!(
        r.stderr.contains(&format!("node {} is", small_node(2))),
        "the halt names the node that is down: {}",
        r.stderr
    );
    assert_eq!(r.node_record(&small_node(0))["state"], "done", "{}", r.stdout);
    assert_ne!(c.boot_id(&small_node(0)), boots[0], "node 0 rebooted");
    assert_eq!(c.kernel(&small_node(0)), "5.15.0-1073-azure");
    assert!(!c.unschedulable(&small_node(0)), "node 0 put back in service");
    let cordons_of = |n: &str| {
        of_kind(&c.events(), "cordon")
            .iter()
            .filter(|e| e.node.as_deref() == Some(n))
            .count()
    };
    assert_eq!(
        cordons_of(&small_node(1)),
        0,
        "node 1 not taken out beside the dead node 2"
    );
    assert_eq!(c.boot_id(&small_node(1)), boots[1]);
    assert!(c.lock_free(), "the lock given back");

    // Node 2 is repaired: the next resume patches nodes 1 and 2.
    c.sim.fault(Fault::Clear).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while c.node(&small_node(2))["status"]["conditions"]
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
        assert_eq!(r.node_record(&small_node(i))["state"], "done", "{}", r.stdout);
        assert_eq!(c.kernel(&small_node(i)), "5.15.0-1073-azure", "node {i}");
        assert!(!c.unschedulable(&small_node(i)), "node {i} in service");
    }
    assert!(max_nodes_out(&c.events()[mark..], &[]) <= 1, "one node out at a time");
    assert!(c.lock_free());
}
