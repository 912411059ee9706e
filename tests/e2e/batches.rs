//! `apply --max-unavailable`: batches of nodes at once, proven from aks-sim's event log:
//! never more nodes out than the budget (a node down for another reason counted), every node
//! patched, and a node dying mid-run shrinking the next batch.

use crate::common::*;
use std::time::Duration;

const NEW_KERNEL: &str = "5.15.0-1073-azure";

/// `apply --max-unavailable MAX`, without a prompt, evictions retried every second; then
/// `extra`.
fn batch_args<'a>(max: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec![
        "apply",
        "--max-unavailable",
        max,
        "--yes",
        "--eviction-retry-interval",
        "1",
        "--delete-emptydir-data",
        "--force",
    ];
    v.extend_from_slice(extra);
    v
}

/// The nodes cordoned (by the run) when, with them, more than `max` nodes were out: cordoned,
/// or rebooting until Ready again (a node that never returns stays out).
fn cordons_beyond(events: &[aks_sim::SimEvent], max: usize) -> Vec<String> {
    use std::collections::BTreeSet;
    let (mut cordoned, mut rebooting) = (BTreeSet::new(), BTreeSet::new());
    let mut crowded = vec![];
    for e in events {
        let Some(n) = e.node.clone() else { continue };
        match e.kind.as_str() {
            "cordon" => {
                cordoned.insert(n.clone());
                let out: BTreeSet<&String> = cordoned.iter().chain(rebooting.iter()).collect();
                if out.len() > max {
                    crowded.push(format!("{n} with {out:?}"));
                }
            }
            "uncordon" => {
                cordoned.remove(&n);
            }
            "reboot" => {
                rebooting.insert(n);
            }
            "node-ready" => {
                rebooting.remove(&n);
            }
            _ => {}
        }
    }
    crowded
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn max_unavailable_patches_every_node_in_batches_never_more_out_than_allowed() {
    skip_unless_root!();
    let c = Cluster::start(Some(&small_with(6, 1.0))).await;
    // The dry-run shows the batches and changes nothing.
    let dry = c.run(&batch_args("3", &["--dry-run"]), true).await;
    dry.assert_code(0);
    assert!(
        dry.stderr
            .contains("batches (--max-unavailable 3, one zone at a time): ")
            && dry.stderr.contains("\n  1. "),
        "{}",
        dry.stderr
    );
    assert!(
        c.events().iter().all(|e| e.kind != "cordon"),
        "the dry-run cordoned nothing"
    );
    let r = c.run(&batch_args("3", &[]), true).await;
    r.assert_code(0);
    for i in 0..6 {
        let n = small_node(i);
        assert_eq!(c.kernel(&n), NEW_KERNEL, "{n} patched");
        assert!(!c.unschedulable(&n), "{n} back in service");
    }
    let out = max_nodes_out(&c.events(), &[]);
    assert!(out <= 3, "at most three nodes out at once, saw {out}");
    assert!(out >= 2, "nodes went out together (saw at most {out} at once)");
    assert!(r.stderr.contains("batch 1 of "), "{}", r.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_dying_mid_run_counts_against_the_budget_and_leaves_room_for_one() {
    skip_unless_root!();
    // Boots of 10 s: the node is surely down (NotReady) before the first batch is back.
    let c = Cluster::start(Some(&small_with(6, 10.0))).await;
    // The node that dies holds no pod of `web` and takes no new pods (a pod sent to it would
    // never be Ready, and web's PDB would rightly hold the run until it is replaced).
    let web = web_nodes(&c).await;
    let dying = (0..6).rev().map(small_node).find(|n| !web.contains(n)).unwrap();
    let (ok, _, err) = c.kubectl(&["taint", "nodes", &dying, "test=keep-off:NoSchedule"]).await;
    assert!(ok, "{err}");
    let plan: Vec<String> = (0..6).map(small_node).filter(|n| *n != dying).collect();
    let nodes = plan.join(",");
    let run = c.start_job(&batch_args("2", &["--nodes", &nodes, "--health-wait", "120"]));
    // While the first batch reboots, a node outside the run goes down for good.
    c.wait_for_event("reboot", None, Duration::from_secs(120)).await;
    c.take_down(&dying).await;
    run.wait_for_stderr("the run's summary", |e| e.contains(" node(s) patched"))
        .await;
    let r = run.finish().await;
    r.assert_code(0);
    for n in &plan {
        assert_eq!(c.kernel(n), NEW_KERNEL, "{n} patched");
    }
    // The dead node is out from its reboot on: no node was taken out while two were.
    let crowded = cordons_beyond(&c.events(), 2);
    assert!(crowded.is_empty(), "cordoned while the budget was spent: {crowded:?}");
    // The first batch took two; from the death on, the places its nodes freed were taken
    // one node at a time (the dead node holds the other place).
    assert!(
        r.stderr.contains("batch 1 of ") && r.stderr.contains(": 2 node(s): "),
        "{}",
        r.stderr
    );
    let joins: Vec<&str> = r.stderr.lines().filter(|l| l.contains(" join(s) it ")).collect();
    assert!(!joins.is_empty(), "{}", r.stderr);
    assert!(joins.iter().all(|l| l.contains(": 1 join(s) it ")), "{joins:?}");
}

/// The nodes the two pods of `web` run on.
async fn web_nodes(c: &Cluster) -> Vec<String> {
    let (ok, out, err) = c
        .kubectl(&[
            "get",
            "pods",
            "-n",
            "app",
            "-l",
            "app=web",
            "-o",
            "jsonpath={.items[*].spec.nodeName}",
        ])
        .await;
    assert!(ok, "{err}");
    let web: Vec<String> = out.split_whitespace().map(str::to_string).collect();
    assert_eq!(web.len(), 2, "{out}");
    web
}

/// [`SMALL`] with 6 nodes in three zones (two each), the `web` Deployment (2 replicas, PDB
/// `minAvailable: 1`: one disruption at a time) on them.
fn zoned() -> String {
    small_with(6, 1.0).replace("    count: 6\n", "    count: 6\n    zones: [\"1\", \"2\", \"3\"]\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn batches_keep_to_one_zone_and_never_drain_two_pods_of_a_one_disruption_pdb_together() {
    skip_unless_root!();
    let c = Cluster::start(Some(&zoned())).await;
    let zone_of = |n: &str| {
        c.node(n)["metadata"]["labels"]["topology.kubernetes.io/zone"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    // Where the web pods run before the run: their PDB allows one disruption.
    let (ok, out, err) = c
        .kubectl(&[
            "get",
            "pods",
            "-n",
            "app",
            "-l",
            "app=web",
            "-o",
            "jsonpath={.items[*].spec.nodeName}",
        ])
        .await;
    assert!(ok, "{err}");
    let web: Vec<String> = out.split_whitespace().map(str::to_string).collect();
    assert_eq!(web.len(), 2, "{out}");
    let r = c.run(&batch_args("6", &[]), true).await;
    r.assert_code(0);
    let events = c.events();
    // Walk the log: whenever a node is cordoned, every node out with it is of its zone.
    let mut out: std::collections::BTreeSet<String> = Default::default();
    let mut most = 0;
    for e in &events {
        let Some(n) = e.node.clone() else { continue };
        match e.kind.as_str() {
            "cordon" => {
                for o in &out {
                    assert_eq!(
                        zone_of(o),
                        zone_of(&n),
                        "{n} cordoned while {o} of another zone was out"
                    );
                }
                assert!(
                    !(web.contains(&n) && web.iter().any(|w| out.contains(w))),
                    "both web nodes out at once: {n} with {out:?}"
                );
                out.insert(n);
                most = most.max(out.len());
            }
            "uncordon" => {
                out.remove(&n);
            }
            _ => {}
        }
    }
    assert!(most >= 2, "nodes of a zone went out together");
    for i in 0..6 {
        assert_eq!(c.kernel(&small_node(i)), NEW_KERNEL);
    }
    assert!(r.stderr.contains("(zone "), "{}", r.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pods_too_big_for_the_nodes_that_stay_hold_the_run_naming_them_and_nothing_is_taken_out() {
    skip_unless_root!();
    // Three nodes of 3.86 allocatable cores; each holds one pod asking for 2.5: none of them
    // fits beside another node's.
    let yaml = small_with(3, 1.0).replace(
        "  - {kind: DaemonSet, name: agent, namespace: kube-system}\n",
        "  - {kind: DaemonSet, name: agent, namespace: kube-system}\n  - {kind: Deployment, name: big, namespace: app, replicas: 3, pool: nodes, requests: {cpu: 2500m}}\n",
    );
    let c = Cluster::start(Some(&yaml)).await;
    let r = c.run(&batch_args("2", &["--health-wait", "3"]), true).await;
    assert_ne!(r.code, 0, "{}", r.stderr);
    assert!(r.stderr.contains("app/big-"), "the pods are named: {}", r.stderr);
    assert!(
        r.stderr.contains("Insufficient cpu"),
        "the reason is named: {}",
        r.stderr
    );
    for i in 0..3 {
        assert!(!c.unschedulable(&small_node(i)), "nothing cordoned");
        assert_eq!(c.count("reboot", &small_node(i)), 0, "nothing rebooted");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_batch_run_killed_mid_batch_is_finished_by_resume_without_a_pace_flag_nor_a_second_reboot() {
    skip_unless_root!();
    let c = Cluster::start(Some(&small_with(5, 4.0))).await;
    let mut child = c.command_with_target(&batch_args("2", &[])).spawn().unwrap();
    // Killed hard while the first batch reboots.
    c.wait_for_event("reboot", None, Duration::from_secs(120)).await;
    child.kill().await.unwrap();
    let _ = child.wait().await;
    // The nodes it rebooted come back (a resume that probes a node still booting stops on it,
    // as one at a time does; that is another test's point).
    eventually("the killed run's reboots to end", Duration::from_secs(120), || async {
        let ev = c.events();
        let last = |kind: &str, n: &str| ev.iter().rposition(|e| e.kind == kind && e.node.as_deref() == Some(n));
        let rebooted = nodes_with(&ev, "reboot");
        rebooted
            .iter()
            .all(|n| last("node-ready", n) > last("reboot", n))
            .then_some(())
    })
    .await;
    // --resume keeps the run's pace: no --max-unavailable (nor --one-at-a-time) is needed.
    let resume = [
        "apply",
        "--resume",
        "--force-unlock",
        "--yes",
        "--eviction-retry-interval",
        "1",
        "--delete-emptydir-data",
        "--force",
        "-o",
        "json",
    ];
    let r = c.run(&resume, true).await;
    r.assert_code(0);
    let rec = r.json();
    assert_eq!(rec["status"], "succeeded");
    assert_eq!(
        rec["options"]["maxUnavailable"], "2",
        "the pace kept from the killed run"
    );
    for i in 0..5 {
        let n = small_node(i);
        assert_eq!(c.kernel(&n), NEW_KERNEL, "{n} patched");
        assert!(!c.unschedulable(&n), "{n} back in service");
        assert_eq!(c.count("reboot", &n), 1, "{n} rebooted once");
    }
    let crowded = cordons_beyond(&c.events(), 2);
    assert!(crowded.is_empty(), "cordoned while the budget was spent: {crowded:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_batch_upgrades_its_next_nodes_ahead_in_service_and_a_failure_there_halts_once_the_batch_is_back() {
    skip_unless_root!();
    // No PDB: the first batch is the first two nodes by name, the next ones are upgraded
    // ahead in that order while they reboot (4 s).
    let scenario = small_with(6, 4.0).replace("pdb: {minAvailable: 1}, ", "");
    let c = Cluster::start(Some(&scenario)).await;
    let bad = small_node(3);
    c.sim.fault(aks_sim::Fault::AptFailure { node: bad.clone() }).unwrap();
    let r = c.run(&batch_args("2", &[]), true).await;
    r.assert_code(5);
    let ev = c.events();
    let at = |kind: &str, n: &str| ev.iter().position(|e| e.kind == kind && e.node.as_deref() == Some(n));
    // Nodes 2 and 3 were upgraded while the first batch rebooted, in service: neither was
    // cordoned, and node 3's failure took no other node out; the batch came back first.
    let first_back = at("node-ready", &small_node(0))
        .min(at("node-ready", &small_node(1)))
        .expect("the first batch came back");
    assert!(at("apt-upgrade", &small_node(2)).unwrap() < first_back, "{ev:?}");
    assert!(at("apt-failed", &bad).unwrap() < first_back, "{ev:?}");
    for i in 2..6 {
        assert_eq!(c.count("cordon", &small_node(i)), 0, "node {i} never taken out");
    }
    for i in 0..2 {
        assert_eq!(c.kernel(&small_node(i)), NEW_KERNEL);
        assert!(!c.unschedulable(&small_node(i)));
    }
    assert!(
        r.stderr.contains(&bad)
            && r.stderr.contains(&format!(
                "upgraded but not rebooted yet (in service, the reboot pending): {}",
                small_node(2)
            )),
        "{}",
        r.stderr
    );
    // apt fixed, --resume finishes: node 2 is rebooted without being upgraded again.
    c.sim.fault(aks_sim::Fault::Clear).unwrap();
    let resume = [
        "apply",
        "--resume",
        "--yes",
        "--eviction-retry-interval",
        "1",
        "--delete-emptydir-data",
        "--force",
    ];
    let r = c.run(&resume, true).await;
    r.assert_code(0);
    for i in 0..6 {
        let n = small_node(i);
        assert_eq!(c.kernel(&n), NEW_KERNEL, "{n} patched");
        assert!(!c.unschedulable(&n), "{n} back in service");
    }
    assert_eq!(c.count("apt-upgrade", &small_node(2)), 1, "upgraded once");
    let crowded = cordons_beyond(&c.events(), 2);
    assert!(crowded.is_empty(), "cordoned while the budget was spent: {crowded:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_batch_run_killed_during_an_upgrade_ahead_is_finished_by_resume_each_node_rebooted_once() {
    skip_unless_root!();
    let scenario = small_with(5, 4.0).replace("pdb: {minAvailable: 1}, ", "");
    let c = Cluster::start(Some(&scenario)).await;
    let mut child = c.command_with_target(&batch_args("2", &[])).spawn().unwrap();
    // Killed hard as node 2 is upgraded ahead, in service, beside the first batch's reboots.
    c.wait_for_event("apt-upgrade", Some(&small_node(2)), Duration::from_secs(120))
        .await;
    child.kill().await.unwrap();
    let _ = child.wait().await;
    assert_eq!(c.count("cordon", &small_node(2)), 0, "node 2 was only upgraded");
    eventually("the killed run's reboots to end", Duration::from_secs(120), || async {
        let ev = c.events();
        let last = |kind: &str, n: &str| ev.iter().rposition(|e| e.kind == kind && e.node.as_deref() == Some(n));
        nodes_with(&ev, "reboot")
            .iter()
            .all(|n| last("node-ready", n) > last("reboot", n))
            .then_some(())
    })
    .await;
    let resume = [
        "apply",
        "--resume",
        "--force-unlock",
        "--yes",
        "--eviction-retry-interval",
        "1",
        "--delete-emptydir-data",
        "--force",
    ];
    let r = c.run(&resume, true).await;
    r.assert_code(0);
    for i in 0..5 {
        let n = small_node(i);
        assert_eq!(c.kernel(&n), NEW_KERNEL, "{n} patched");
        assert!(!c.unschedulable(&n), "{n} back in service");
        assert_eq!(c.count("reboot", &n), 1, "{n} rebooted once");
    }
    let crowded = cordons_beyond(&c.events(), 2);
    assert!(crowded.is_empty(), "cordoned while the budget was spent: {crowded:?}");
}
