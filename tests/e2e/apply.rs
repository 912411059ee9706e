//! `aks-patch apply --one-at-a-time` end to end against aks-sim: the real
//! binary, real ARM/Kubernetes API over HTTPS, real ssh into the emulated nodes. Each test
//! proves its point from the emulator's event log and the cluster's state afterwards.

use crate::common::*;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn apply_patches_every_linux_node_one_at_a_time_and_skips_windows() {
    skip_unless_root!();
    let c = Cluster::start(None).await;
    let linux: Vec<String> = c
        .sim
        .shared
        .nodes
        .iter()
        .filter(|n| n.is_linux())
        .map(|n| n.name.clone())
        .collect();
    let cordoned_before: Vec<String> = linux.iter().filter(|n| c.unschedulable(n)).cloned().collect();
    assert_eq!(
        cordoned_before.len(),
        1,
        "the default scenario has one node cordoned by hand"
    );
    let before: Vec<String> = linux.iter().map(|n| c.kernel(n)).collect();

    let r = c.run(&apply_args(&["-o", "json"]), true).await;
    r.assert_code(0);
    let record = r.json();
    assert_eq!(record["status"], "succeeded");

    // Every Linux node runs the new kernel (Ubuntu's and Azure Linux's); Windows nodes were
    // skipped with the hint.
    let kernels = |node: &str| {
        if node.starts_with("aks-azl-") {
            ("6.6.64.2-9.azl3", "6.6.78.1-1.azl3")
        } else {
            ("5.15.0-1068-azure", "5.15.0-1073-azure")
        }
    };
    assert!(
        linux.iter().any(|n| n.starts_with("aks-azl-")),
        "the default scenario has an Azure Linux pool"
    );
    for (n, k) in linux.iter().zip(&before) {
        assert_eq!(k, kernels(n).0);
        assert_eq!(c.kernel(n), kernels(n).1, "{n} runs the new kernel");
    }
    let nodes = record["nodes"].as_array().unwrap();
    for n in nodes {
        let name = n["name"].as_str().unwrap();
        if name.starts_with("akswin") {
            assert_eq!(n["state"], "skipped");
            assert!(n["skipReason"].as_str().unwrap().contains("--node-image-only"));
        } else {
            assert_eq!(n["state"], "done", "{n}");
            assert_eq!(n["kernelBefore"], kernels(name).0);
            assert_eq!(n["kernelAfter"], kernels(name).1);
            assert_eq!(n["rebooted"], true);
        }
    }

    let ev = c.events();
    // Never two nodes out at once, from the emulator's own log.
    assert_eq!(
        max_nodes_out(&ev, &cordoned_before),
        1,
        "never more than one node out at a time"
    );
    // Reboots happen one after the other: each reboot's node is Ready before the next reboot.
    let reboots: Vec<_> = of_kind(&ev, "reboot");
    assert_eq!(reboots.len(), linux.len());
    for pair in reboots.windows(2) {
        let first = pair[0].node.as_deref().unwrap();
        let ready_between = ev.iter().any(|e| {
            e.kind == "node-ready" && e.node.as_deref() == Some(first) && e.seq > pair[0].seq && e.seq < pair[1].seq
        });
        assert!(ready_between, "{first} was Ready again before the next reboot");
    }
    // The node cordoned by hand stays cordoned; every other node is schedulable again.
    for n in &linux {
        assert_eq!(c.unschedulable(n), cordoned_before.contains(n), "{n} cordon state");
    }
    assert!(c.lock_free(), "the lock is released");

    // report shows when each node was last patched.
    let rep = c.run(&["report", "-o", "json"], true).await;
    rep.assert_code(0);
    for row in rep.json().as_array().unwrap() {
        let name = row["name"].as_str().unwrap();
        if linux.iter().any(|n| n == name) {
            assert!(row["lastPatched"].is_string(), "{name} has lastPatched");
            assert_eq!(row["rebootRequired"], false);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn apply_prints_the_plan_before_any_change_and_the_kernels_before_and_after() {
    skip_unless_root!();
    let c = Cluster::start(Some(SMALL)).await;
    let r = c.run(&apply_args(&["--nodes", &small_node(0)]), true).await;
    r.assert_code(0);
    // The plan and before-table go to stderr before anything changes; the after-table to stdout.
    assert!(r.stderr.contains("KERNEL-VERSION"), "{}", r.stderr);
    let plan_at = r.stderr.find("KERNEL-VERSION").unwrap();
    let lock_at = r.stderr.find("lock taken").expect("lock line");
    assert!(plan_at < lock_at, "the plan is printed before anything changes");
    let line = r
        .stdout
        .lines()
        .find(|l| l.starts_with(&small_node(0)))
        .expect("row for the node");
    assert!(
        line.contains("5.15.0-1068-azure") && line.contains("5.15.0-1073-azure") && line.contains("patched"),
        "{line}"
    );
    // Only the chosen node was touched.
    assert_eq!(nodes_with(&c.events(), "reboot"), [small_node(0)].into_iter().collect());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_pdb_that_never_allows_times_out_the_drain_uncordons_and_halts() {
    skip_unless_root!();
    let c = Cluster::start(Some(SMALL)).await;
    // A node that runs a web pod, whose drain the PDB blocks.
    let node = c.block_web_pdb();
    let r = c
        .run(&apply_args(&["--nodes", &node, "--drain-timeout", "3"]), true)
        .await;
    r.assert_code(5);
    assert!(r.stderr.contains("web-pdb"), "names the PDB: {}", r.stderr);
    assert!(r.stderr.contains("timed out"), "{}", r.stderr);
    let ev = c.events();
    assert!(nodes_with(&ev, "cordon").contains(&node));
    assert!(nodes_with(&ev, "uncordon").contains(&node), "the node was uncordoned");
    assert!(of_kind(&ev, "reboot").is_empty(), "no reboot");
    assert!(!c.unschedulable(&node));
    assert!(c.lock_free());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_that_never_returns_is_left_cordoned_named_and_the_run_halts() {
    skip_unless_root!();
    let c = Cluster::start(Some(SMALL)).await;
    c.sim
        .fault(aks_sim::Fault::NodeNeverReturns { node: small_node(0) })
        .unwrap();
    let r = c.run(&apply_args(&["--reboot-timeout", "5"]), true).await;
    r.assert_code(5);
    assert!(
        r.stderr.contains(&small_node(0)) && r.stderr.contains("did not come back"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr
            .contains(&format!("left cordoned by this run: {}", small_node(0)))
            && r.stderr.contains("kubectl uncordon"),
        "says the node is left cordoned and how to recover: {}",
        r.stderr
    );
    assert!(c.unschedulable(&small_node(0)), "the node stays cordoned");
    let ev = c.events();
    assert_eq!(
        nodes_with(&ev, "reboot"),
        [small_node(0)].into_iter().collect(),
        "no other node was started"
    );
    assert!(nodes_with(&ev, "cordon").len() == 1);
    assert!(c.lock_free(), "the lock is released");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_lock_held_by_a_live_run_refuses_apply_naming_the_holder() {
    skip_unless_root!();
    let c = Cluster::start(Some(SMALL)).await;
    let now = jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%S%.6fZ").to_string();
    c.sim
        .shared
        .store
        .create(
            aks_sim::store::LEASES,
            serde_json::json!({"metadata": {"name": "aks-patch", "namespace": "kube-system"},
                "spec": {"holderIdentity": "alice@jumpbox pid 4242 run x", "leaseDurationSeconds": 600, "acquireTime": now, "renewTime": now}}),
        )
        .unwrap();
    let r = c.run(&apply_args(&[]), true).await;
    r.assert_code(7);
    assert!(r.stderr.contains("alice@jumpbox"), "shows the holder: {}", r.stderr);
    let ev = c.events();
    assert!(
        of_kind(&ev, "cordon").is_empty() && of_kind(&ev, "apt-upgrade").is_empty(),
        "nothing changed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn of_two_concurrent_applies_one_is_refused_and_never_two_nodes_are_out() {
    skip_unless_root!();
    let c = Cluster::start(Some(SMALL)).await;
    let args = apply_args(&[]);
    let a = c.command_with_target(&args).output();
    let b = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        c.command_with_target(&args).output().await
    };
    let (a, b) = tokio::join!(a, b);
    let mut codes = [a.unwrap().status.code().unwrap(), b.unwrap().status.code().unwrap()];
    codes.sort();
    assert_eq!(
        codes,
        [0, 7],
        "one run succeeds, the other is refused because the lock is held"
    );
    assert_eq!(max_nodes_out(&c.events(), &[]), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_held_kured_lock_refuses_apply_before_any_upgrade() {
    skip_unless_root!();
    let yaml = format!("{SMALL}kured: {{lockHolder: {}}}\n", small_node(2));
    let c = Cluster::start(Some(&yaml)).await;
    let r = c.run(&apply_args(&[]), true).await;
    // Refused in pre-flight, before any upgrade: exit 7, as for our own lock.
    r.assert_code(7);
    assert!(r.stderr.contains("kured holds its reboot lock"), "{}", r.stderr);
    assert!(r.stderr.contains("nothing was changed"), "{}", r.stderr);
    let ev = c.events();
    assert!(
        of_kind(&ev, "apt-upgrade").is_empty(),
        "nothing upgraded while kured reboots"
    );
    assert!(of_kind(&ev, "reboot").is_empty(), "no reboot beside kured");
    assert!(of_kind(&ev, "cordon").is_empty(), "nothing cordoned");
    assert!(c.lock_free());
}

/// unattended-upgrades holds the dpkg lock when the upgrade starts: apt waits for it (the run
/// names the holder meanwhile) and upgrades only once the holder lets go; the node is patched.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn apt_waits_for_a_held_dpkg_lock_and_upgrades_once_it_is_released() {
    skip_unless_root!();
    let c = Cluster::start(Some(SMALL)).await;
    let node = small_node(0);
    c.hold_package_lock(&node);
    let run = c.start_job(&apply_args(&["--nodes", &node, "-o", "json"]));
    run.wait_for_stderr("the lock's holder", |e| e.contains("is held by unattended-upgr"))
        .await;
    assert_eq!(
        c.count("apt-upgrade", &node),
        0,
        "nothing upgraded while the lock is held"
    );
    assert!(!c.unschedulable(&node), "the node stays in service while apt waits");
    c.release_package_lock(&node);
    let r = run.finish().await;
    r.assert_code(0);
    assert_eq!(r.node_record(&node)["state"], "done");
    assert_eq!(c.kernel(&node), "5.15.0-1073-azure");
    // apt's own account on the node: it waited for the lock, then unpacked.
    let log = c.upgrade_log(&node);
    let waited = log.rfind("Waiting for cache lock").expect("apt waited for the lock");
    let unpacked = log.find("Unpacking").expect("apt upgraded");
    assert!(waited < unpacked, "apt unpacked only after its wait:\n{log}");
    // The emulator saw the upgrade only after the holder let go.
    let ev = c.events();
    let released = ev
        .iter()
        .rfind(|e| e.kind == "fault" && e.node.as_deref() == Some(node.as_str()))
        .expect("the lock's release");
    let upgraded = ev
        .iter()
        .find(|e| e.kind == "apt-upgrade" && e.node.as_deref() == Some(node.as_str()))
        .expect("the upgrade");
    assert!(
        released.seq < upgraded.seq,
        "upgraded before the lock was released: {ev:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_without_ssh_halts_the_run_before_it_is_touched() {
    skip_unless_root!();
    let c = Cluster::start(Some(SMALL)).await;
    c.sim.fault(aks_sim::Fault::SshDown { node: small_node(1) }).unwrap();
    let r = c.run(&apply_args(&[]), true).await;
    r.assert_code(5);
    assert!(r.stderr.contains(&small_node(1)), "{}", r.stderr);
    assert!(
        r.stderr.contains("nothing was changed") || r.stderr.contains("not touched"),
        "{}",
        r.stderr
    );
    let ev = c.events();
    assert!(!nodes_with(&ev, "cordon").contains(&small_node(1)));
    assert!(!nodes_with(&ev, "reboot").contains(&small_node(1)));
    assert!(c.lock_free());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigint_mid_drain_uncordons_the_node_and_releases_the_lock() {
    skip_unless_root!();
    let c = Cluster::start(Some(SMALL)).await;
    // A node that runs a web pod, whose drain the PDB blocks.
    let node = c.block_web_pdb();
    let args = apply_args(&["--nodes", &node, "--drain-timeout", "120"]);
    let child = c.command_with_target(&args).spawn().unwrap();
    // Wait until the drain is refused at least once.
    c.wait_for_event("eviction-refused", None, Duration::from_secs(60))
        .await;
    let pid = child.id().unwrap() as i32;
    // SAFETY: sending a signal to our own child process.
    unsafe { libc::kill(pid, libc::SIGINT) };
    let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(!c.unschedulable(&node), "the half-drained node was uncordoned");
    assert!(c.lock_free(), "the lock is released");
    assert!(of_kind(&c.events(), "reboot").is_empty());
    assert!(stderr.contains("interrupted"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn resume_after_a_kill_finishes_the_rollout_without_rebooting_a_node_twice() {
    skip_unless_root!();
    let c = Cluster::start(Some(SMALL)).await;
    let args = apply_args(&[]);
    let mut child = c.command_with_target(&args).spawn().unwrap();
    // Kill it hard once the first node is back.
    c.wait_for_event("node-ready", Some(&small_node(0)), Duration::from_secs(120))
        .await;
    child.kill().await.unwrap();
    let _ = child.wait().await;
    // The dead run's lock is still there: resume takes it over explicitly.
    assert!(!c.lock_free(), "a killed run leaves its lock behind");
    let r = c
        .run(&apply_args(&["--resume", "--force-unlock", "-o", "json"]), true)
        .await;
    r.assert_code(0);
    let rec = r.json();
    assert_eq!(rec["status"], "succeeded");
    assert!(!rec["resumedFrom"].as_array().unwrap().is_empty());
    for i in 0..3 {
        assert_eq!(c.kernel(&small_node(i)), "5.15.0-1073-azure");
        assert!(!c.unschedulable(&small_node(i)));
    }
    // The first node was not rebooted twice.
    let reboots = of_kind(&c.events(), "reboot")
        .iter()
        .filter(|e| e.node.as_deref() == Some(&small_node(0)))
        .count();
    assert_eq!(reboots, 1);
    assert!(c.lock_free());
    assert_eq!(max_nodes_out(&c.events(), &[]), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dry_run_shows_the_refused_pods_and_changes_nothing() {
    skip_unless_root!();
    let c = Cluster::start(None).await;
    let before = c.events().len();
    let r = c
        .run(&["apply", "--one-at-a-time", "--dry-run", "-o", "json"], true)
        .await;
    r.assert_code(0);
    let v = r.json();
    assert_eq!(v["dryRun"], true);
    let drains = v["drains"].as_array().unwrap();
    assert!(!drains.is_empty());
    // Without --force / --delete-emptydir-data the bare pod and the emptyDir pod are refused.
    let refused: Vec<String> = drains
        .iter()
        .flat_map(|d| {
            d["refused"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["pod"].as_str().unwrap().to_string())
        })
        .collect();
    assert!(
        refused.iter().any(|p| p.starts_with("default/debug-shell")),
        "{refused:?}"
    );
    assert!(
        refused.iter().any(|p| p.starts_with("shop/session-cache")),
        "{refused:?}"
    );
    // Give the emulator time to notice anything a node did (it polls every 100 ms).
    tokio::time::sleep(Duration::from_millis(500)).await;
    let ev = c.events();
    let changes: Vec<_> = ev[before..]
        .iter()
        .filter(|e| {
            [
                "cordon",
                "uncordon",
                "eviction",
                "reboot",
                "apt-upgrade",
                "apt-update",
                "pod-deleted",
            ]
            .contains(&e.kind.as_str())
        })
        .collect();
    assert!(changes.is_empty(), "dry run changed something: {changes:?}");
    assert!(c.lease().is_none(), "dry run takes no lock");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn apply_without_yes_and_without_a_terminal_is_a_usage_error() {
    skip_unless_root!();
    let c = Cluster::start(Some(SMALL)).await;
    let r = c.run(&["apply", "--one-at-a-time"], true).await;
    r.assert_code(2);
    assert!(r.stderr.contains("--yes"), "{}", r.stderr);
    assert!(of_kind(&c.events(), "cordon").is_empty());
    assert!(c.lease().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn selector_and_nodepool_choose_nodes_and_bad_ones_are_usage_errors() {
    skip_unless_root!();
    let c = Cluster::start(Some(SMALL)).await;
    let bad = c
        .run(
            &[
                "apply",
                "--one-at-a-time",
                "--dry-run",
                "--selector",
                "agentpool in (nodes",
            ],
            true,
        )
        .await;
    bad.assert_code(2);
    assert!(bad.stderr.contains("--selector"), "{}", bad.stderr);
    // The API server's words, not a debug structure.
    assert!(bad.stderr.contains("the API server says:"), "{}", bad.stderr);
    assert!(
        !bad.stderr.contains("Status {") && !bad.stderr.contains("code:"),
        "{}",
        bad.stderr
    );
    let none = c
        .run(
            &[
                "apply",
                "--one-at-a-time",
                "--dry-run",
                "-o",
                "json",
                "-l",
                "agentpool=gpu",
            ],
            true,
        )
        .await;
    // A selection with nothing to patch is a usage error that says so.
    none.assert_code(2);
    assert!(none.stderr.contains("matches no node"), "{}", none.stderr);
    let some = c
        .run(
            &[
                "apply",
                "--one-at-a-time",
                "--dry-run",
                "-o",
                "json",
                "-l",
                "agentpool=nodes",
            ],
            true,
        )
        .await;
    some.assert_code(0);
    assert_eq!(some.json()["plan"].as_array().unwrap().len(), 3);
    let unknown = c
        .run(&["apply", "--one-at-a-time", "--dry-run", "--nodepool", "gpu"], true)
        .await;
    unknown.assert_code(2);
    assert!(
        unknown.stderr.contains("gpu") && unknown.stderr.contains("nodes"),
        "names the pools: {}",
        unknown.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn security_mode_with_reboot_never_upgrades_only_security_updates_without_a_reboot() {
    skip_unless_root!();
    let c = Cluster::start(None).await;
    let node = "aks-user-31417037-vmss000000";
    let r = c
        .run(
            &apply_args(&[
                "--nodes",
                node,
                "--upgrade-mode",
                "security",
                "--reboot",
                "never",
                "-o",
                "json",
            ]),
            true,
        )
        .await;
    r.assert_code(0);
    let n = r.node_record(node);
    assert_eq!(n["state"], "done");
    assert_eq!(n["rebooted"], false);
    let upgraded: Vec<&str> = n["packagesUpgraded"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert!(
        upgraded.contains(&"openssl") && upgraded.contains(&"linux-azure"),
        "{upgraded:?}"
    );
    assert!(
        !upgraded.contains(&"curl") && !upgraded.contains(&"tzdata"),
        "only security updates: {upgraded:?}"
    );
    let ev = c.events();
    assert!(
        of_kind(&ev, "reboot").is_empty() && of_kind(&ev, "cordon").is_empty(),
        "no cordon, no reboot"
    );
    // The node now waits for a reboot, which scan reports; the non-security updates remain.
    let scan = c.run(&["scan", "-o", "json"], true).await;
    let row = scan
        .json()
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == node)
        .unwrap()
        .clone();
    assert_eq!(row["rebootRequired"], true);
    assert_eq!(row["pendingUpdates"], 2, "curl and tzdata are still pending: {row}");
    assert_eq!(row["securityUpdates"], 0);
}

/// `--soak`: the next node is taken out only once the soak has passed since the previous
/// one was back in service (from the emulator's clock). The soak is several times what the
/// rest of the step between the two nodes takes, so that the gap cannot come from that alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn soak_waits_between_a_node_back_in_service_and_the_next_cordon() {
    skip_unless_root!();
    let c = Cluster::start(Some(SMALL)).await;
    let r = c
        .run(
            &apply_args(&[
                "--nodes",
                &format!("{},{}", small_node(0), small_node(1)),
                "--soak",
                "10",
            ]),
            true,
        )
        .await;
    r.assert_code(0);
    assert!(r.stderr.contains("soaking 10s before the next node"), "{}", r.stderr);
    let ev = c.events();
    let back0 = ev
        .iter()
        .find(|e| e.kind == "uncordon" && e.node.as_deref() == Some(small_node(0).as_str()))
        .expect("the first node was put back");
    let cordon1 = ev
        .iter()
        .find(|e| e.kind == "cordon" && e.node.as_deref() == Some(small_node(1).as_str()))
        .expect("the second node was taken out");
    assert!(
        cordon1.elapsed_ms >= back0.elapsed_ms + 10_000,
        "the second node was cordoned {} ms after the first was back",
        cordon1.elapsed_ms - back0.elapsed_ms
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn resume_after_a_kill_mid_reboot_waits_for_the_node_instead_of_rebooting_it_again() {
    skip_unless_root!();
    // A slow boot, so that the node is still down when the run is resumed.
    let c = Cluster::start(Some(SMALL)).await;
    c.sim
        .fault(aks_sim::Fault::SlowReboot {
            node: small_node(0),
            seconds: 4.0,
        })
        .unwrap();
    let mut child = c.command_with_target(&apply_args(&[])).spawn().unwrap();
    c.wait_for_event("reboot", Some(&small_node(0)), Duration::from_secs(120))
        .await;
    child.kill().await.unwrap();
    let _ = child.wait().await;
    assert!(
        c.unschedulable(&small_node(0)),
        "killed mid-reboot: the node is still cordoned"
    );
    let r = c
        .run(&apply_args(&["--resume", "--force-unlock", "-o", "json"]), true)
        .await;
    r.assert_code(0);
    let n0 = r.node_record(&small_node(0));
    assert_eq!(n0["state"], "done");
    assert_eq!(n0["rebooted"], true);
    for i in 0..3 {
        assert_eq!(c.kernel(&small_node(i)), "5.15.0-1073-azure");
        assert!(!c.unschedulable(&small_node(i)), "node {i} is back in service");
    }
    let reboots = of_kind(&c.events(), "reboot")
        .iter()
        .filter(|e| e.node.as_deref() == Some(small_node(0).as_str()))
        .count();
    assert_eq!(reboots, 1, "the node was not rebooted twice");
    assert!(c.lock_free());
}

/// The lock's holder is the user and this machine's name as aks-patch's settings resolve
/// them (no libc calls), and the state directory follows `XDG_STATE_HOME`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_lock_holder_names_user_and_host_and_run_records_follow_xdg_state_home() {
    skip_unless_root!();
    let c = Cluster::start(Some(SMALL)).await;
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .expect("the kernel's host name")
        .trim()
        .to_string();
    let xdg = tempfile::tempdir().expect("temp dir");
    let run = |user: Option<&'static str>| {
        let mut cmd = c.command_with_target(&apply_args(&["--nodes", &small_node(0), "--reboot", "never"]));
        cmd.env_remove("AKS_PATCH_STATE_DIR")
            .env_remove("USER")
            .env_remove("LOGNAME")
            .env("XDG_STATE_HOME", xdg.path());
        if let Some(u) = user {
            cmd.env("USER", u);
        }
        cmd.output()
    };

    let out = run(Some("alice-ops")).await.expect("aks-patch runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let lock_line = stderr.lines().find(|l| l.contains("lock taken")).expect("lock line");
    assert!(
        lock_line.contains(&format!("as alice-ops@{host} pid ")),
        "$USER and the kernel's host name: {lock_line}"
    );
    let runs: Vec<_> = std::fs::read_dir(xdg.path().join("aks-patch/runs"))
        .expect("the run record is under $XDG_STATE_HOME/aks-patch/runs")
        .collect();
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert!(!c.state_dir().join("runs").exists(), "nothing under the old default");

    // Without USER or LOGNAME: the uid.
    let out = run(None).await.expect("aks-patch runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let lock_line = stderr.lines().find(|l| l.contains("lock taken")).expect("lock line");
    let uid = std::os::unix::fs::MetadataExt::uid(&std::fs::metadata("/proc/self").expect("/proc"));
    assert!(lock_line.contains(&format!("as uid {uid}@{host} pid ")), "{lock_line}");
}
