//! The pending taint end to end against aks-sim: the nodes a run has still to patch carry
//! `aks-patch.io/pending=<run id>:PreferNoSchedule` while it runs, none does after it
//! (patched, halted or interrupted), a killed run's taints stay until `--resume` removes them;
//! and the summary counts the pods the drains evicted, as the emulator's log saw them.

use crate::common::*;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

const PENDING: &str = "aks-patch.io/pending";

/// Each node that carries the pending taint, with the run id it names.
fn tainted(c: &Cluster) -> BTreeMap<String, String> {
    c.sim
        .shared
        .store
        .list(aks_sim::store::NODES, None)
        .iter()
        .filter_map(|n| {
            let name = n["metadata"]["name"].as_str()?.to_string();
            let t = n["spec"]["taints"].as_array()?.iter().find(|t| t["key"] == PENDING)?;
            assert_eq!(t["effect"], "PreferNoSchedule", "{t}");
            Some((name, t["value"].as_str().unwrap_or_default().to_string()))
        })
        .collect()
}

fn names(v: &[String]) -> BTreeSet<String> {
    v.iter().cloned().collect()
}

/// Keep the second node's turn open once it is back in service: downloading the third
/// node's packages ahead (which ends that turn) waits on the third node's held dpkg lock,
/// until [`Cluster::release_package_lock`].
async fn hold_the_second_nodes_turn(c: &Cluster) {
    c.hold_package_lock(&small_node(2));
    c.wait_for_event("uncordon", Some(&small_node(1)), Duration::from_secs(120))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_nodes_not_yet_done_carry_the_pending_taint_until_ctrl_c_ends_the_run() {
    skip_unless_root!();
    let c = Cluster::start(Some(SMALL)).await;
    let run = c.start_job(&apply_args(&[]));
    hold_the_second_nodes_turn(&c).await;
    let during = tainted(&c);
    assert_eq!(
        during.keys().cloned().collect::<BTreeSet<_>>(),
        names(&[small_node(1), small_node(2)]),
        "the node done has no taint; the node in hand and the one to do have: {}",
        run.stderr()
    );
    let runs: BTreeSet<&String> = during.values().collect();
    assert_eq!(runs.len(), 1, "one run's taint: {during:?}");
    assert!(!runs.iter().next().unwrap().is_empty(), "it names the run");
    run.signal(libc::SIGINT);
    c.release_package_lock(&small_node(2));
    let r = run.finish().await;
    r.assert_code(130);
    assert_eq!(tainted(&c), BTreeMap::new(), "{}", r.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn after_a_run_that_halts_on_a_drain_no_node_has_the_pending_taint() {
    skip_unless_root!();
    let c = Cluster::start(Some(SMALL)).await;
    c.block_web_pdb();
    let r = c.run(&apply_args(&["--drain-timeout", "5", "-o", "json"]), true).await;
    r.assert_code(5);
    let rec = r.json();
    let states: Vec<&str> = rec["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["state"].as_str().unwrap())
        .collect();
    assert!(
        states.contains(&"failed") && states.contains(&"pending"),
        "halted with nodes left to do: {states:?}"
    );
    assert_eq!(tainted(&c), BTreeMap::new(), "{}", r.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_summary_counts_the_pods_the_drains_evicted_and_those_that_moved_again() {
    skip_unless_root!();
    let c = Cluster::start(Some(SMALL)).await;
    // The pods there before the run, once the emulator's controllers have created and started
    // them all (on a busy machine they may still be coming up right after the start).
    let pods = || -> (BTreeSet<String>, bool) {
        let list = c.sim.shared.store.list(aks_sim::store::PODS, None);
        let running = list.iter().all(|p| p["status"]["phase"] == "Running");
        let names = list
            .iter()
            .map(|p| {
                format!(
                    "{}/{}",
                    p["metadata"]["namespace"].as_str().unwrap(),
                    p["metadata"]["name"].as_str().unwrap()
                )
            })
            .collect();
        (names, running)
    };
    let mut before = pods().0;
    for _ in 0..120 {
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        let (now, running) = pods();
        if running && now == before {
            break;
        }
        before = now;
    }
    let r = c.run(&apply_args(&["-o", "json"]), true).await;
    r.assert_code(0);
    // What the emulator saw evicted, in order: a pod moved again is one not there before the
    // run (a replacement), or a name evicted before.
    let evicted: Vec<String> = of_kind(&c.events(), "eviction")
        .iter()
        .map(|e| e.object.clone().expect("the pod"))
        .collect();
    assert!(!evicted.is_empty(), "the drains evicted pods");
    let mut seen = BTreeSet::new();
    let again = evicted
        .iter()
        .filter(|p| !seen.insert(p.to_string()) || !before.contains(*p))
        .count();
    let rec = r.json();
    assert_eq!(rec["evictions"]["evicted"], evicted.len(), "{evicted:?}");
    assert_eq!(rec["evictions"]["movedAgain"], again, "{evicted:?} before {before:?}");
    assert!(
        r.stderr.contains(&format!(
            "{} pod(s) evicted, {again} of them more than once",
            evicted.len()
        )),
        "{}",
        r.stderr
    );
    let recorded: usize = rec["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["evicted"].as_array().map_or(0, Vec::len))
        .sum();
    assert_eq!(recorded, evicted.len(), "the record keeps each evicted pod");
    assert!(
        rec["nodes"][0]["evicted"][0]["created"].is_string(),
        "with its creation time"
    );
    assert_eq!(tainted(&c), BTreeMap::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_killed_runs_pending_taints_stay_until_resume_removes_them() {
    skip_unless_root!();
    let c = Cluster::start(Some(SMALL)).await;
    let mut child = c.spawn_job(&apply_args(&[]));
    hold_the_second_nodes_turn(&c).await;
    child.kill().await.unwrap(); // SIGKILL: nothing is cleaned up
    let _ = child.wait().await;
    let left = tainted(&c);
    assert_eq!(
        left.keys().cloned().collect::<BTreeSet<_>>(),
        names(&[small_node(1), small_node(2)]),
        "the killed run's taints stay"
    );
    let killed = left.values().next().unwrap().clone();
    c.release_package_lock(&small_node(2));
    // A plain run is refused (the dead run's lock), saying whose taints these are and how
    // they go.
    let plain = c.run(&apply_args(&[]), true).await;
    assert_ne!(plain.code, 0, "{}", plain.stderr);
    assert!(
        plain.stderr.contains(&format!(
            "carry the pending taint {PENDING} of aks-patch run {killed}, which is dead"
        )) && plain.stderr.contains("kubectl taint nodes --all aks-patch.io/pending-"),
        "{}",
        plain.stderr
    );
    assert_eq!(tainted(&c), left, "a refused run changes nothing");
    let r = c
        .run(&apply_args(&["--resume", "--force-unlock", "-o", "json"]), true)
        .await;
    r.assert_code(0);
    assert!(
        r.stderr
            .contains(&format!("removed the pending taint {PENDING} left by run {killed}")),
        "{}",
        r.stderr
    );
    assert_eq!(tainted(&c), BTreeMap::new(), "{}", r.stderr);
    // The evictions are counted from the start of the killed run.
    assert!(r.json()["chainStartedAt"].is_string(), "{}", r.stdout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_no_pending_taint_no_node_is_tainted() {
    skip_unless_root!();
    let c = Cluster::start(Some(SMALL)).await;
    let run = c.start_job(&apply_args(&["--no-pending-taint"]));
    hold_the_second_nodes_turn(&c).await;
    assert_eq!(tainted(&c), BTreeMap::new());
    c.release_package_lock(&small_node(2));
    let r = run.finish().await;
    r.assert_code(0);
}
