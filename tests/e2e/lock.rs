//! The lock against another run, and the hints that name the situation: aks-patch end to
//! end against aks-sim. A live lease is never taken over, even with `--force-unlock`,
//! wherever its holder runs; an expired one is taken by a plain run, as the messages say; a
//! dead holder on this host is named dead, with the resume that finishes its run at once;
//! a node out under another run, a budget that can never allow an eviction and a held dpkg
//! lock are each named for what they are.

use crate::common::*;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{Api, Patch, PatchParams, PostParams};
use std::time::{Duration, Instant};

fn micro(t: jiff::Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

/// Write the aks-patch Lease as a run on host `host` holds it: renewed `renewed_ago` ago,
/// for `duration_secs`.
async fn write_lease(c: &Cluster, host: &str, renewed_ago: Duration, duration_secs: i32) -> Lease {
    let renewed = jiff::Timestamp::now() - renewed_ago;
    let lease: Lease = serde_json::from_value(serde_json::json!({
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {
            "name": "aks-patch",
            "namespace": "kube-system",
            "annotations": {
                "aks-patch.io/user": "alice",
                "aks-patch.io/host": host,
                "aks-patch.io/pid": "4242",
                "aks-patch.io/run-id": "run-elsewhere",
            },
        },
        "spec": {
            "holderIdentity": format!("alice@{host} pid 4242 run run-elsewhere"),
            "leaseDurationSeconds": duration_secs,
            "acquireTime": micro(renewed - jiff::SignedDuration::from_secs(30)),
            "renewTime": micro(renewed),
            "leaseTransitions": 0,
        },
    }))
    .unwrap();
    Api::<Lease>::namespaced(c.client.clone(), "kube-system")
        .create(&PostParams::default(), &lease)
        .await
        .expect("the Lease is written")
}

fn holder(c: &Cluster) -> String {
    c.lease()
        .and_then(|l| l["spec"]["holderIdentity"].as_str().map(str::to_string))
        .unwrap_or_default()
}

fn untouched(c: &Cluster) {
    let ev = c.events();
    assert!(of_kind(&ev, "apt-upgrade").is_empty(), "nothing upgraded");
    assert!(of_kind(&ev, "cordon").is_empty(), "nothing cordoned");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn force_unlock_is_refused_while_a_run_on_another_host_renews_its_lease() {
    skip_unless_root!();
    let c = Cluster::start(Some(SMALL)).await;
    write_lease(&c, "otherhost", Duration::from_secs(3), 60).await;
    let t0 = Instant::now();
    let r = c.run(&apply_args(&["--force-unlock"]), true).await;
    r.assert_code(7);
    for want in [
        "alice@otherhost pid 4242 run run-elsewhere",
        "it is live",
        "not taken over, even with --force-unlock",
        "would count as dead only if not renewed for another",
        "wait for that run to finish",
    ] {
        assert!(r.stderr.contains(want), "{want:?} in:\n{}", r.stderr);
    }
    assert!(!r.stderr.contains("took over"), "{}", r.stderr);
    // Refused before the health gate or anything else waited.
    assert!(t0.elapsed() < Duration::from_secs(60), "took {:?}", t0.elapsed());
    // The Lease is the other run's, as it was.
    let l = c.lease().expect("the Lease is still there");
    assert_eq!(holder(&c), "alice@otherhost pid 4242 run run-elsewhere");
    assert_eq!(l["spec"]["leaseTransitions"], 0, "{l}");
    untouched(&c);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_expired_lease_of_a_run_on_another_host_is_taken_by_a_plain_run() {
    skip_unless_root!();
    let c = Cluster::start(Some(SMALL)).await;
    // A 10 s lease last renewed 40 s ago: its run is gone, the lease has expired.
    write_lease(&c, "otherhost", Duration::from_secs(40), 10).await;
    let r = c
        .run(&apply_args(&["--nodes", &small_node(0), "-o", "json"]), true)
        .await;
    r.assert_code(0);
    assert!(
        r.stderr
            .contains("took over the lock from alice@otherhost pid 4242 run run-elsewhere: its lease expired"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("not renewed while watched"), "{}", r.stderr);
    assert_eq!(r.node_record(&small_node(0))["state"], "done");
    assert_eq!(c.kernel(&small_node(0)), "5.15.0-1073-azure");
    assert!(c.lock_free(), "released at the end");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_dead_run_on_this_host_is_named_dead_and_resume_force_unlock_finishes_it_at_once() {
    skip_unless_root!();
    let c = Cluster::start(Some(SMALL)).await;
    c.sim
        .fault(aks_sim::Fault::SlowReboot {
            node: small_node(0),
            seconds: 3.0,
        })
        .unwrap();
    let mut child = c.command_with_target(&apply_args(&[])).spawn().unwrap();
    c.wait_for_event("reboot", Some(&small_node(0)), Duration::from_secs(60))
        .await;
    child.kill().await.unwrap();
    let _ = child.wait().await;
    assert!(c.unschedulable(&small_node(0)), "the killed run left node 0 cordoned");
    let dead = holder(&c);
    assert!(!dead.is_empty(), "and its lock held");

    // A plain run: told at once that the holder is dead, and how to finish its run; not
    // "live; wait", and not after the health gate's 600 s.
    let t0 = Instant::now();
    let r = c.run(&apply_args(&[]), true).await;
    r.assert_code(7);
    assert!(t0.elapsed() < Duration::from_secs(60), "took {:?}", t0.elapsed());
    assert!(
        r.stderr.contains("which is dead") || r.stderr.contains("that run is dead"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("--resume --force-unlock"), "{}", r.stderr);
    assert!(!r.stderr.contains("it is live"), "{}", r.stderr);
    assert_eq!(holder(&c), dead, "the refusal took nothing");

    // The resume takes the dead run's lock over at once and finishes node 0 first.
    let t0 = Instant::now();
    let r = c
        .run(&apply_args(&["--resume", "--force-unlock", "-o", "json"]), true)
        .await;
    r.assert_code(0);
    assert!(
        r.stderr
            .contains(&format!("took over the lock from {dead}: its run is dead")),
        "{}",
        r.stderr
    );
    assert!(t0.elapsed() < Duration::from_secs(120), "took {:?}", t0.elapsed());
    for i in 0..3 {
        assert_eq!(r.node_record(&small_node(i))["state"], "done");
        assert!(!c.unschedulable(&small_node(i)));
    }
    assert!(c.lock_free());
    assert_eq!(max_nodes_out(&c.events(), &[]), 1, "never two nodes out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_out_under_another_live_run_is_named_with_that_run_not_as_an_ssh_problem() {
    skip_unless_root!();
    let c = Cluster::start(Some(SMALL)).await;
    c.sim
        .fault(aks_sim::Fault::SlowReboot {
            node: small_node(0),
            seconds: 15.0,
        })
        .unwrap();
    let first = c
        .command_with_target(&apply_args(&["--nodes", &small_node(0)]))
        .spawn()
        .unwrap();
    c.wait_for_event("reboot", Some(&small_node(0)), Duration::from_secs(60))
        .await;
    let run_a = c.lease().expect("run A's lease")["metadata"]["annotations"]["aks-patch.io/run-id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = c.run(&apply_args(&[]), true).await;
    r.assert_code(7);
    assert!(
        r.stderr.contains(&format!("node {} is out of service", small_node(0))),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains(&run_a), "names run A: {}", r.stderr);
    assert!(r.stderr.contains("wait for"), "{}", r.stderr);
    assert!(!r.stderr.contains("fix SSH"), "{}", r.stderr);
    assert!(!r.stderr.contains("which is dead"), "{}", r.stderr);
    let out = tokio::time::timeout(Duration::from_secs(120), first.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    // Only run A touched the cluster.
    assert_eq!(nodes_with(&c.events(), "cordon").len(), 1);
    assert_eq!(max_nodes_out(&c.events(), &[]), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_budget_changed_to_never_allow_is_named_at_the_drain_with_the_fix() {
    skip_unless_root!();
    let c = Cluster::start(Some(SMALL)).await;
    let pods = c.sim.shared.store.list(aks_sim::store::PODS, Some("app"));
    let node = pods[0]["spec"]["nodeName"].as_str().unwrap().to_string();
    // apt waits for the dpkg lock: the budget changes meanwhile, after the pre-flight
    // found it allowing.
    c.hold_package_lock(&node);
    let run = c.spawn(&apply_args(&["--nodes", &node, "--drain-timeout", "5"]));
    c.wait_for_upgrade_output(&node, "Waiting for cache lock").await;
    let pdbs: Api<PodDisruptionBudget> = Api::namespaced(c.client.clone(), "app");
    pdbs.patch(
        "web-pdb",
        &PatchParams::default(),
        &Patch::Merge(serde_json::json!({"spec": {"minAvailable": null, "maxUnavailable": 0}})),
    )
    .await
    .expect("the budget is changed");
    c.release_package_lock(&node);
    let out = tokio::time::timeout(Duration::from_secs(120), run.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(5), "{stderr}");
    assert!(
        stderr.contains("PodDisruptionBudget app/web-pdb (maxUnavailable is 0) can never allow an eviction"),
        "{stderr}"
    );
    assert!(
        stderr.contains("change the budget") && stderr.contains("scale the workload up"),
        "{stderr}"
    );
    assert!(!stderr.contains("raise --drain-timeout"), "{stderr}");
    assert!(!c.unschedulable(&node), "the node was put back");
    assert!(of_kind(&c.events(), "reboot").is_empty());
    assert!(c.lock_free());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn while_apt_waits_for_the_dpkg_lock_its_holder_and_the_wait_are_shown() {
    skip_unless_root!();
    let c = Cluster::start(Some(SMALL)).await;
    // The lock is held until aks-patch has looked at the waiting apt twice.
    c.hold_package_lock(&small_node(0));
    let run = c.start_job(&apply_args(&["--nodes", &small_node(0), "-o", "json"]));
    run.wait_for_stderr("two looks at the waiting apt", |e| {
        e.matches("apt has waited ").count() >= 2
    })
    .await;
    c.release_package_lock(&small_node(0));
    let r = run.finish().await;
    r.assert_code(0);
    let line = r
        .stderr
        .lines()
        .find(|l| l.contains("is held by unattended-upgr (pid 2345)"))
        .unwrap_or_else(|| panic!("the holder is named:\n{}", r.stderr));
    assert!(line.contains(&small_node(0)), "{line}");
    assert!(line.contains("the dpkg lock (/var/lib/dpkg/lock-frontend)"), "{line}");
    // Updated: the time waited grows from one look to the next.
    let waited: Vec<u64> = r
        .stderr
        .lines()
        .filter_map(|l| l.split("apt has waited ").nth(1)?.split('s').next()?.parse().ok())
        .collect();
    assert!(
        waited.len() >= 2 && waited.windows(2).all(|w| w[0] < w[1]),
        "{waited:?}\n{}",
        r.stderr
    );
    assert_eq!(r.node_record(&small_node(0))["state"], "done");
}
