//! The rollout's safety promises under faults, alone and in combination, proven
//! against aks-sim from its event log and the cluster's state: never two nodes out at once
//! (counting nodes that were down before the run), never a node left cordoned without being
//! named, never a node reported patched with updates of its mode pending, exit codes as
//! documented, and resume after every kind of stop.

use crate::common::*;
use aks_sim::Fault;
use std::process::Stdio;
use std::time::Duration;

// ---------------------------------------------------------------------------------------
// 1. Another node already down

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_down_before_the_run_blocks_every_disruption() {
    skip_unless_root!();
    let c = Cluster::start(Some(SMALL)).await;
    let down = small_node(2);
    c.take_down(&down).await;
    let r = c.run(&apply_args(&["--health-wait", "2"]), true).await;
    r.assert_code(5);
    assert!(
        r.stderr.contains(&format!("node {down} is")),
        "names the node that is down: {}",
        r.stderr
    );
    assert!(r.stderr.contains("nothing was changed"), "{}", r.stderr);
    assert!(of_kind(&c.events(), "cordon").is_empty(), "no node taken out");
    assert!(of_kind(&c.events(), "apt-upgrade").is_empty(), "nothing upgraded");
    assert!(c.lock_free());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_going_down_mid_run_stops_the_next_disruption() {
    skip_unless_root!();
    let c = Cluster::start(Some(SMALL)).await;
    let child = c
        .command_with_target(&apply_args(&["--health-wait", "3"]))
        .spawn()
        .unwrap();
    // The second node's apt waits on a held dpkg lock until the third node has died.
    c.hold_package_lock(&small_node(1));
    c.wait_for_event("uncordon", Some(&small_node(0)), Duration::from_secs(60))
        .await;
    c.take_down(&small_node(2)).await;
    c.release_package_lock(&small_node(1));
    let r = finish(child).await;
    r.assert_code(5);
    assert!(
        r.stderr.contains(&format!("node {} is", small_node(2))),
        "the halt names the dead node: {}",
        r.stderr
    );
    assert_eq!(
        c.count("cordon", &small_node(1)),
        0,
        "the second node was not taken out"
    );
    assert!(!c.unschedulable(&small_node(1)));
    assert_eq!(c.count("reboot", &small_node(1)), 0);
    assert!(c.lock_free());
}

// ---------------------------------------------------------------------------------------
// 2. Resume after a failed upgrade: honest

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn resume_after_an_apt_failure_upgrades_the_node_again() {
    skip_unless_root!();
    let c = Cluster::start(Some(SMALL)).await;
    let bad = small_node(2);
    c.sim.fault(Fault::AptFailure { node: bad.clone() }).unwrap();
    let r = c.run(&apply_args(&[]), true).await;
    r.assert_code(5);
    c.sim.fault(Fault::Clear).unwrap();
    let r = c.run(&apply_args(&["--resume", "-o", "json"]), true).await;
    r.assert_code(0);
    let n = r.node_record(&bad);
    assert_eq!(n["state"], "done");
    assert!(
        !n["packagesUpgraded"].as_array().unwrap().is_empty(),
        "the resumed run upgraded the failed node: {n}"
    );
    assert_eq!(
        c.kernel(&bad),
        "5.15.0-1073-azure",
        "and rebooted it into the new kernel"
    );
    // What a user checks: scan finds nothing pending on the node reported patched.
    let scan = c.run(&["scan", "-o", "json"], true).await;
    scan.assert_code(0);
    let row = scan
        .json()
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == bad)
        .unwrap()
        .clone();
    assert_eq!(row["pendingUpdates"], 0, "{row}");
    assert_eq!(max_nodes_out(&c.events(), &[]), 1);
}

// ---------------------------------------------------------------------------------------
// 5. Ctrl-C (and SIGTERM) to the process group during apt

/// Start a rollout whose first upgrade waits on a held dpkg lock, send `sig` to its process
/// group while apt runs, and check the safe point: apt ran to its end on the node, nothing
/// was taken out, the lock is free, exit 130.
async fn interrupt_during_apt(sig: i32) -> (Cluster, Run) {
    let c = Cluster::start(Some(SMALL)).await;
    let first = small_node(0);
    // apt runs (waiting for the dpkg lock) until the test lets the lock go.
    c.hold_package_lock(&first);
    let run = c.start_job(&apply_args(&[]));
    c.wait_for_upgrade_output(&first, "Waiting for cache lock").await;
    run.signal(sig);
    run.wait_for_stderr("that it waits for apt", |e| e.contains("waiting for apt to finish"))
        .await;
    c.release_package_lock(&first);
    let r = run.finish().await;
    r.assert_code(130);
    assert_eq!(c.count("apt-upgrade", &first), 1, "apt ran to its end: {}", r.stderr);
    assert_eq!(c.count("apt-failed", &first), 0);
    assert!(of_kind(&c.events(), "cordon").is_empty(), "nothing taken out");
    assert!(c.lock_free());
    (c, r)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ctrl_c_during_apt_waits_for_it_then_resume_finishes() {
    skip_unless_root!();
    let (c, r) = interrupt_during_apt(libc::SIGINT).await;
    assert!(r.stderr.contains("waiting for apt to finish"), "{}", r.stderr);
    let r = c.run(&apply_args(&["--resume", "-o", "json"]), true).await;
    r.assert_code(0);
    assert_eq!(r.json()["status"], "succeeded");
    for i in 0..3 {
        assert_eq!(c.kernel(&small_node(i)), "5.15.0-1073-azure");
        assert!(!c.unschedulable(&small_node(i)));
    }
    assert_eq!(c.count("apt-upgrade", &small_node(0)), 1, "not upgraded twice");
    assert_eq!(max_nodes_out(&c.events(), &[]), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_to_the_group_during_apt_is_a_safe_point_too() {
    skip_unless_root!();
    let (c, _) = interrupt_during_apt(libc::SIGTERM).await;
    // The node was recorded as upgraded, not patched: the resume reboots it without
    // upgrading it again.
    let r = c.run(&apply_args(&["--resume", "-o", "json"]), true).await;
    r.assert_code(0);
    let n0 = r.node_record(&small_node(0));
    assert_eq!(n0["state"], "done", "{n0}");
    assert_eq!(n0["rebooted"], true, "{n0}");
    assert_eq!(c.count("apt-upgrade", &small_node(0)), 1, "not upgraded twice");
    assert_eq!(c.kernel(&small_node(0)), "5.15.0-1073-azure");
}

// ---------------------------------------------------------------------------------------
// 3. Resume after a reboot that outlasted --reboot-timeout

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn resume_uncordons_the_node_the_halted_run_left_cordoned() {
    skip_unless_root!();
    let c = Cluster::start(Some(SMALL)).await;
    let slow = small_node(0);
    c.sim
        .fault(Fault::SlowReboot {
            node: slow.clone(),
            seconds: 12.0,
        })
        .unwrap();
    // The others take about 4 s to reboot; the slow one takes longer than the timeout.
    let r = c.run(&apply_args(&["--reboot-timeout", "7"]), true).await;
    r.assert_code(5);
    assert!(
        r.stderr.contains(&format!("left cordoned by this run: {slow}")),
        "the halted run names the node it left cordoned: {}",
        r.stderr
    );
    assert!(c.unschedulable(&slow));
    c.wait_for_event("node-ready", Some(&slow), Duration::from_secs(60))
        .await;
    let r = c.run(&apply_args(&["--resume", "-o", "json"]), true).await;
    r.assert_code(0);
    assert!(!r.stderr.contains("left cordoned by this run"), "{}", r.stderr);
    assert!(r.stderr.contains("uncordoned"), "{}", r.stderr);
    for i in 0..3 {
        assert!(!c.unschedulable(&small_node(i)), "node {i} is back in service");
        assert_eq!(c.kernel(&small_node(i)), "5.15.0-1073-azure");
    }
    assert!(
        c.node(&slow)["metadata"]["annotations"]
            .get("aks-patch.io/in-progress")
            .is_none(),
        "the in-progress mark is gone"
    );
    assert_eq!(c.count("reboot", &slow), 1, "not rebooted twice");
    assert_eq!(max_nodes_out(&c.events(), &[]), 1, "never two nodes out");
}

// ---------------------------------------------------------------------------------------
// 4. Fencing

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_run_whose_lease_is_deleted_mid_drain_stops_and_the_next_run_waits() {
    skip_unless_root!();
    let c = Cluster::start(Some(SMALL)).await;
    let node = c.block_web_pdb();
    let first = c
        .command_with_target(&apply_args(&["--nodes", &node, "--drain-timeout", "120"]))
        .spawn()
        .unwrap();
    c.wait_for_event("eviction-refused", Some(&node), Duration::from_secs(60))
        .await;
    // Someone deletes the lock, and a second run starts.
    c.sim
        .shared
        .store
        .remove(aks_sim::store::LEASES, Some("kube-system"), "aks-patch")
        .unwrap();
    let second = c
        .command_with_target(&apply_args(&["--health-wait", "60", "-o", "json"]))
        .spawn()
        .unwrap();
    let r1 = finish(first).await;
    r1.assert_code(7);
    assert!(r1.stderr.contains("lock"), "{}", r1.stderr);
    assert_eq!(c.count("reboot", &node), 0, "the first run rebooted nothing");
    // Let the second run drain.
    c.sim.fault(Fault::Clear).unwrap();
    let r2 = finish(second).await;
    r2.assert_code(0);
    assert_eq!(max_nodes_out(&c.events(), &[]), 1, "never two nodes out");
    for i in 0..3 {
        assert!(!c.unschedulable(&small_node(i)));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn force_unlock_never_takes_a_live_runs_lock() {
    skip_unless_root!();
    let c = Cluster::start(Some(SMALL)).await;
    // The first run stays in its first upgrade until the second one has been refused.
    c.hold_package_lock(&small_node(0));
    let first = c.spawn(&apply_args(&[]));
    c.wait_for_lock().await;
    let r = c.run(&apply_args(&["--force-unlock"]), true).await;
    r.assert_code(7);
    assert!(r.stderr.contains("that run is alive (pid"), "{}", r.stderr);
    assert!(
        !r.stderr.contains("delete lease"),
        "never advises deleting a live run's lock: {}",
        r.stderr
    );
    c.release_package_lock(&small_node(0));
    let r1 = finish(first).await;
    r1.assert_code(0);
    assert_eq!(max_nodes_out(&c.events(), &[]), 1);
}

// ---------------------------------------------------------------------------------------
// 6. Pre-flight: what will certainly fail is found before the first change

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pods_that_will_refuse_to_drain_stop_the_run_before_any_change() {
    skip_unless_root!();
    let c = Cluster::start(None).await;
    let r = c
        .run(&["apply", "--one-at-a-time", "--yes", "--delete-emptydir-data"], true)
        .await;
    r.assert_code(2);
    assert!(r.stderr.contains("default/debug-shell"), "{}", r.stderr);
    assert!(r.stderr.contains("--force"), "{}", r.stderr);
    assert!(r.stderr.contains("nothing was changed"), "{}", r.stderr);
    let ev = c.events();
    assert!(of_kind(&ev, "apt-upgrade").is_empty(), "nothing upgraded");
    assert!(of_kind(&ev, "cordon").is_empty(), "nothing cordoned");
    assert!(c.lease().is_none(), "the lock was never taken");
    // --dry-run shows the same in its table, per node.
    let d = c.run(&["apply", "--one-at-a-time", "--dry-run"], true).await;
    d.assert_code(0);
    assert!(d.stdout.contains("REFUSED"), "{}", d.stdout);
    assert!(d.stdout.contains("default/debug-shell (--force)"), "{}", d.stdout);
    assert!(
        d.stdout
            .lines()
            .any(|l| l.contains("session-cache") && l.contains("--delete-emptydir-data")),
        "{}",
        d.stdout
    );
    assert!(
        !d.stdout.contains("DryRun"),
        "a real table, not a key/value dump: {}",
        d.stdout
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_pdb_that_can_never_allow_and_kureds_lock_are_refused_up_front() {
    skip_unless_root!();
    let yaml = SMALL.replace("pdb: {minAvailable: 1}", "pdb: {maxUnavailable: 0}");
    let c = Cluster::start(Some(&yaml)).await;
    let r = c.run(&apply_args(&[]), true).await;
    r.assert_code(2);
    assert!(r.stderr.contains("app/web-pdb (maxUnavailable is 0)"), "{}", r.stderr);
    assert!(r.stderr.contains("can never allow"), "{}", r.stderr);
    assert!(of_kind(&c.events(), "apt-upgrade").is_empty());
    assert!(of_kind(&c.events(), "cordon").is_empty());
    let d = c.run(&["apply", "--one-at-a-time", "--dry-run"], true).await;
    d.assert_code(0);
    assert!(d.stdout.contains("never: app/web-pdb"), "{}", d.stdout);

    let yaml = format!("{SMALL}kured: {{lockHolder: {}}}\n", small_node(1));
    let c = Cluster::start(Some(&yaml)).await;
    let d = c.run(&["apply", "--one-at-a-time", "--dry-run"], true).await;
    d.assert_code(0);
    assert!(d.stderr.contains("kured holds its reboot lock"), "{}", d.stderr);
}

// ---------------------------------------------------------------------------------------
// 7. Bad values

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_values_are_usage_errors_that_touch_nothing() {
    skip_unless_root!();
    let c = Cluster::start(Some(SMALL)).await;
    for bad in [
        vec!["--grace-period=-5"],
        vec!["--drain-timeout", "0"],
        vec!["--reboot-timeout", "0"],
        vec!["--health-wait", "0"],
        vec!["--request-timeout", "0"],
    ] {
        let r = c.run(&apply_args(&bad), true).await;
        r.assert_code(2);
        assert!(
            r.stderr.contains(bad[0].split('=').next().unwrap()),
            "{bad:?}: {}",
            r.stderr
        );
    }
    // An SSH key others can read: ssh would refuse it, so it is refused up front.
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("id");
    std::fs::copy(c.sim.state_dir().join("ssh/id_ed25519"), &key).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let r = c.run(&apply_args(&["--ssh-key", key.to_str().unwrap()]), true).await;
    r.assert_code(2);
    assert!(r.stderr.contains("chmod 600"), "{}", r.stderr);
    // A journal directory that cannot be written: found before the lock.
    let file = dir.path().join("a-file");
    std::fs::write(&file, "").unwrap();
    let jd = file.join("runs");
    let r = c.run(&apply_args(&["--journal-dir", jd.to_str().unwrap()]), true).await;
    r.assert_code(2);
    assert!(r.stderr.contains("cannot write run records"), "{}", r.stderr);
    let ev = c.events();
    assert!(of_kind(&ev, "lease").is_empty(), "the lock was never touched");
    assert!(of_kind(&ev, "apt-upgrade").is_empty());
    assert!(of_kind(&ev, "ssh-session").is_empty(), "no node was even contacted");
    // -1 is kubectl's "each pod's own grace period", and fine.
    let r = c.run(&apply_args(&["--grace-period=-1", "--dry-run"]), true).await;
    r.assert_code(0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_server_that_never_answers_fails_within_the_request_timeout() {
    // Accepts TCP, never says a word.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let _hold = std::thread::spawn(move || {
        let mut conns = vec![];
        for s in listener.incoming().take(16) {
            conns.push(s);
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let kc = dir.path().join("kubeconfig");
    std::fs::write(
        &kc,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {{server: 'https://127.0.0.1:{port}', insecure-skip-tls-verify: true}}\nusers:\n- name: u\n  user: {{token: abc}}\ncontexts:\n- name: x\n  context: {{cluster: c, user: u}}\ncurrent-context: x\n"
        ),
    )
    .unwrap();
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_aks-patch"));
    cmd.args([
        "apply",
        "--one-at-a-time",
        "--dry-run",
        "--request-timeout",
        "2",
        "--kubeconfig",
    ])
    .arg(&kc)
    .env("AKS_PATCH_STATE_DIR", dir.path().join("state"))
    .env("NO_COLOR", "1")
    .stdin(Stdio::null());
    // The bound only keeps a hang from stalling the suite: the message says which timeout ended it.
    let out = output_within(cmd, Duration::from_secs(120), "aks-patch").await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("did not answer within 2s"), "{stderr}");
}

// ---------------------------------------------------------------------------------------
// 8. Resume after a node was deleted; selections with nothing to patch; auth failure

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn resume_skips_a_node_deleted_since_the_run_was_killed() {
    skip_unless_root!();
    let c = Cluster::start(Some(SMALL)).await;
    c.sim
        .fault(Fault::SlowReboot {
            node: small_node(0),
            seconds: 3.0,
        })
        .unwrap();
    let mut child = c.command_with_target(&apply_args(&[])).spawn().unwrap();
    c.wait_for_event("reboot", Some(&small_node(0)), Duration::from_secs(60))
        .await;
    child.kill().await.unwrap();
    let _ = child.wait().await;
    // The cluster is scaled in meanwhile.
    let gone = small_node(1);
    c.sim.shared.store.remove(aks_sim::store::NODES, None, &gone).unwrap();
    let r = c
        .run(&apply_args(&["--resume", "--force-unlock", "-o", "json"]), true)
        .await;
    r.assert_code(0);
    let rec = r.json();
    let states: Vec<(String, String)> = rec["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            (
                n["name"].as_str().unwrap().to_string(),
                n["state"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert!(states.contains(&(gone.clone(), "gone".into())), "{states:?}");
    assert!(states.contains(&(small_node(0), "done".into())), "{states:?}");
    assert!(states.contains(&(small_node(2), "done".into())), "{states:?}");
    assert_eq!(c.kernel(&small_node(2)), "5.15.0-1073-azure");
}

/// Killed while a node reboots; meanwhile a PodDisruptionBudget is changed so that the next
/// drains would certainly fail. The resume does not refuse outright (that would leave the node
/// cordoned): it finishes the node left out, starts no other, and exits 2 with the pre-flight's
/// reason; once the budget is relaxed, the next resume finishes the run.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn resume_finishes_the_node_left_out_when_the_next_drains_would_certainly_fail() {
    skip_unless_root!();
    let c = Cluster::start(Some(SMALL)).await;
    let n0 = small_node(0);
    c.sim
        .fault(Fault::SlowReboot {
            node: n0.clone(),
            seconds: 3.0,
        })
        .unwrap();
    let mut child = c.command_with_target(&apply_args(&[])).spawn().unwrap();
    c.wait_for_event("reboot", Some(&n0), Duration::from_secs(60)).await;
    child.kill().await.unwrap();
    let _ = child.wait().await;
    let set_pdb = |spec: serde_json::Value| {
        c.sim
            .shared
            .store
            .update_with(aks_sim::store::PDBS, Some("app"), "web-pdb", None, |o| {
                o["spec"] = spec.clone();
                Ok(())
            })
            .unwrap();
    };
    set_pdb(serde_json::json!({"maxUnavailable": 0, "selector": {"matchLabels": {"app": "web"}}}));

    // The dry run says what the resume will do.
    let d = c
        .run(&["apply", "--one-at-a-time", "--resume", "--dry-run"], true)
        .await;
    d.assert_code(0);
    assert!(
        d.stderr.contains(&format!(
            "apply would finish {n0} (left out of service by the interrupted run) first, then stop:"
        )) && d.stderr.contains("can never allow"),
        "{}",
        d.stderr
    );
    assert!(c.unschedulable(&n0), "the dry run changed nothing");

    let r = c
        .run(&apply_args(&["--resume", "--force-unlock", "-o", "json"]), true)
        .await;
    r.assert_code(2);
    assert!(
        r.stderr.contains("can never allow") && r.stderr.contains(&format!("finishing only {n0}")),
        "{}",
        r.stderr
    );
    assert_eq!(r.node_record(&n0)["state"], "done");
    assert!(!c.unschedulable(&n0), "n0 put back in service");
    assert_eq!(c.kernel(&n0), "5.15.0-1073-azure");
    for n in [small_node(1), small_node(2)] {
        assert_eq!(c.count("cordon", &n), 0, "{n} not taken out");
        assert_eq!(c.count("apt-upgrade", &n), 0, "{n} not even upgraded");
    }
    assert!(c.lock_free());

    set_pdb(serde_json::json!({"minAvailable": 1, "selector": {"matchLabels": {"app": "web"}}}));
    let r = c.run(&apply_args(&["--resume", "-o", "json"]), true).await;
    r.assert_code(0);
    for i in 0..3 {
        assert_eq!(c.kernel(&small_node(i)), "5.15.0-1073-azure");
        assert!(!c.unschedulable(&small_node(i)));
    }
    assert!(max_nodes_out(&c.events(), &[]) <= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_selection_of_only_unpatchable_nodes_says_why() {
    skip_unless_root!();
    let c = Cluster::start(None).await;
    let r = c.run(&apply_args(&["--nodes", "akswin000000"]), true).await;
    r.assert_code(2);
    assert!(r.stderr.contains("akswin000000: Windows"), "{}", r.stderr);
    let down = "aks-system-31415926-vmss000001";
    c.take_down(down).await;
    let r = c.run(&apply_args(&["--nodes", down]), true).await;
    r.assert_code(2);
    assert!(r.stderr.contains("not Ready"), "{}", r.stderr);
    assert!(of_kind(&c.events(), "apt-upgrade").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn credentials_refused_mid_drain_exit_4_and_name_the_cordoned_node() {
    skip_unless_root!();
    let c = Cluster::start(Some(SMALL)).await;
    let node = c.block_web_pdb();
    let child = c
        .command_with_target(&apply_args(&["--nodes", &node, "--drain-timeout", "120"]))
        .spawn()
        .unwrap();
    c.wait_for_event("eviction-refused", Some(&node), Duration::from_secs(60))
        .await;
    c.sim.fault(Fault::ExpiredToken).unwrap();
    let r = finish(child).await;
    r.assert_code(4);
    assert!(r.stderr.contains("left cordoned by this run"), "{}", r.stderr);
    assert!(r.stderr.contains(&node), "{}", r.stderr);
    assert!(
        !r.stderr.contains("kured"),
        "no kured noise in a cluster without kured: {}",
        r.stderr
    );
    assert!(r.stdout.contains("<unknown>"), "{}", r.stdout);
    assert!(!r.stdout.contains("<gone>"), "{}", r.stdout);
    assert_eq!(c.count("reboot", &node), 0);
}
