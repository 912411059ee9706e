//! `--max-unavailable`: batches of nodes at once, never more out than the budget (nodes out
//! for other reasons counted), one zone at a time, a failure letting the batch finish.

use super::*;
use crate::rollout::batches::{BatchRules, MaxUnavailable};

fn rules(max: MaxUnavailable) -> BatchRules {
    BatchRules {
        max,
        across_zones: false,
        drain: DrainOptions::default(),
        pending_taint: true,
    }
}

fn batched(n: usize, max: MaxUnavailable) -> Harness {
    let mut h = Harness::new(n);
    h.batches = Some(rules(max));
    h
}

/// The batches the engine told, with their nodes: those it started with, then those that
/// joined it in the places its done nodes freed.
fn batches_told(h: &Harness) -> Vec<Vec<String>> {
    let mut out: Vec<Vec<String>> = vec![];
    for e in h.told.0.lock().unwrap().iter() {
        match e {
            Event::BatchStarted { index, nodes, .. } => {
                assert_eq!(*index, out.len() + 1);
                out.push(nodes.clone());
            }
            Event::BatchJoined { index, nodes } => out[index - 1].extend(nodes.iter().cloned()),
            _ => {}
        }
    }
    out
}

/// The nodes that joined a batch, in the order they joined.
fn joined(h: &Harness) -> Vec<String> {
    h.told
        .0
        .lock()
        .unwrap()
        .iter()
        .filter_map(|e| match e {
            Event::BatchJoined { nodes, .. } => Some(nodes.clone()),
            _ => None,
        })
        .flatten()
        .collect()
}

/// Where in the events told `node` joined its batch, and where it was drained.
fn told_at(h: &Harness, node: &str) -> (Option<usize>, Option<usize>) {
    let told = h.told.0.lock().unwrap();
    let joined = told
        .iter()
        .position(|e| matches!(e, Event::BatchJoined { nodes, .. } if nodes.iter().any(|n| n == node)));
    let drained = told
        .iter()
        .position(|e| matches!(e, Event::Step { node: n, step: NodeStep::Drained { .. } } if n == node));
    (joined, drained)
}

#[tokio::test(start_paused = true)]
async fn nodes_go_out_in_batches_and_never_more_than_the_budget_at_once() {
    let h = batched(6, MaxUnavailable::Nodes(2));
    let mut rec = record(6);
    h.run(&mut rec).await.unwrap();
    assert_eq!(states(&rec), [NodeState::Done; 6]);
    for n in &rec.nodes {
        assert!(n.rebooted && !n.in_hand, "{n:?}");
        assert_eq!(n.kernel_after.as_deref(), Some(NEW));
    }
    assert_eq!(h.fakes.w().max_out, 2, "two nodes out at once, never three");
    // One zone: the batch starts with two nodes, and the others take the places the done
    // nodes free (rolling slots).
    let told = batches_told(&h);
    assert_eq!(told.len(), 1, "{told:?}");
    assert_eq!(told[0].len(), 6, "{told:?}");
    assert_eq!(joined(&h).len(), 4, "{told:?}");
    // The record says which batch took each node.
    for n in &rec.nodes {
        assert_eq!(n.batch, Some(1), "{}", n.name);
    }
    // While the first nodes reboot, the nodes the plan expects to take their places are
    // upgraded ahead, one node each (still in service): their turns only take them out.
    let log = h.fakes.log();
    let at = |l: &str| {
        log.iter()
            .position(|x| x == l)
            .unwrap_or_else(|| panic!("no {l}: {log:?}"))
    };
    for n in ["n2", "n3"] {
        assert_eq!(count_on(&h.fakes, "upgrade", n), 1, "{n}: {log:?}");
        assert!(
            at(&format!("upgrade {n}")) < at("release n0").min(at("release n1")),
            "{n}: {log:?}"
        );
    }
    assert_eq!(count_on(&h.fakes, "prefetch", "n0"), 0);
}

#[tokio::test(start_paused = true)]
async fn a_batch_is_faster_than_one_at_a_time() {
    let one = Harness::new(4);
    let mut rec = record(4);
    let t0 = Instant::now();
    one.run(&mut rec).await.unwrap();
    let sequential = t0.elapsed();
    let h = batched(4, MaxUnavailable::Nodes(4));
    let mut rec = record(4);
    let t0 = Instant::now();
    h.run(&mut rec).await.unwrap();
    let batch = t0.elapsed();
    assert_eq!(states(&rec), [NodeState::Done; 4]);
    assert_eq!(h.fakes.w().max_out, 4);
    // On paused time the reboots of one batch overlap: about one node's turn, not four.
    assert!(batch * 2 < sequential, "batch {batch:?}, one at a time {sequential:?}");
}

#[tokio::test(start_paused = true)]
async fn a_node_down_for_another_reason_counts_against_the_budget() {
    let h = batched(4, MaxUnavailable::Nodes(2));
    // A node outside the run, NotReady all along.
    h.fakes.w().nodes.insert(
        "x".into(),
        FakeNode {
            ready: false,
            ..FakeNode::new()
        },
    );
    h.fakes.w().max_out = 1;
    let mut rec = record(4);
    h.run(&mut rec).await.unwrap();
    assert_eq!(states(&rec), [NodeState::Done; 4]);
    assert_eq!(h.fakes.w().max_out, 2, "x and one of ours, never two of ours beside x");
}

#[tokio::test(start_paused = true)]
async fn a_percentage_is_of_each_pool_rounded_down_at_least_one() {
    let h = batched(6, MaxUnavailable::Percent(50));
    for i in 0..6 {
        h.fakes
            .edit(&format!("n{i}"), |n| n.pool = if i < 4 { "a" } else { "b" }.into());
    }
    let mut rec = record(6);
    h.run(&mut rec).await.unwrap();
    assert_eq!(states(&rec), [NodeState::Done; 6]);
    // Half of pool a's four nodes, and of pool b's two one: at most two and one out at once.
    let max = h.fakes.w().max_out_of_pool.clone();
    assert_eq!(max.get("a"), Some(&2), "{max:?}");
    assert_eq!(max.get("b"), Some(&1), "{max:?}");
    let first = &batches_told(&h)[0];
    assert_eq!(first[..3], ["n0", "n1", "n4"], "two of a and one of b to begin with");
}

#[tokio::test(start_paused = true)]
async fn a_node_failing_in_a_batch_lets_the_others_finish_then_the_run_halts() {
    let h = batched(6, MaxUnavailable::Nodes(3));
    h.fail("reboot", PortError::new("the node's reboot command failed"));
    let mut rec = record(6);
    let stop = h.run(&mut rec).await.unwrap_err();
    assert!(matches!(stop, RunStop::Failed(_)), "{stop:?}");
    let first: Vec<NodeState> = rec.nodes[..3].iter().map(|n| n.state).collect();
    assert_eq!(
        first.iter().filter(|s| **s == NodeState::Failed).count(),
        1,
        "{first:?}"
    );
    assert_eq!(first.iter().filter(|s| **s == NodeState::Done).count(), 2, "{first:?}");
    // No other node was taken out (those upgraded ahead while the batch rebooted stay
    // upgraded, in service); nothing is left out of service.
    for n in &rec.nodes[3..] {
        assert!(matches!(n.state, NodeState::Pending | NodeState::Upgraded), "{n:?}");
        assert!(n.batch.is_none() && !n.rebooted, "{n:?}");
        assert_eq!(count_on(&h.fakes, "cordon", &n.name), 0, "{}", n.name);
    }
    for i in 0..6 {
        let n = h.fakes.node(&format!("n{i}"));
        assert!(n.marked.is_none() && !n.unschedulable, "n{i} put back");
    }
}

#[tokio::test(start_paused = true)]
async fn ctrl_c_in_a_batch_stops_every_node_at_its_safe_point_and_resume_finishes() {
    let h = batched(4, MaxUnavailable::Nodes(2));
    h.fakes.w().cancel_at = Some(("drain", h.cancel.clone()));
    let mut rec = record(4);
    let stop = h.run(&mut rec).await.unwrap_err();
    assert!(matches!(stop, RunStop::Interrupted), "{stop:?}");
    for i in 0..4 {
        let n = h.fakes.node(&format!("n{i}"));
        assert!(n.marked.is_none() && !n.unschedulable, "n{i} put back: {n:?}");
    }
    assert!(rec.nodes.iter().all(|n| n.state != NodeState::Done || n.rebooted));
    // Resumed: everything is finished, still never more than two out.
    let h2 = Harness {
        fakes: h.fakes.clone(),
        ..batched(0, MaxUnavailable::Nodes(2))
    };
    h2.run(&mut rec).await.unwrap();
    assert_eq!(states(&rec), [NodeState::Done; 4]);
    assert!(h.fakes.w().max_out <= 2);
}

#[tokio::test(start_paused = true)]
async fn a_batch_never_spans_availability_zones() {
    let h = batched(6, MaxUnavailable::Nodes(4));
    for i in 0..6 {
        h.fakes
            .edit(&format!("n{i}"), |n| n.zone = Some(format!("westeurope-{}", i % 3 + 1)));
    }
    let mut rec = record(6);
    h.run(&mut rec).await.unwrap();
    assert_eq!(states(&rec), [NodeState::Done; 6]);
    let zone = |n: &str| h.fakes.node(n).zone.unwrap();
    let told = batches_told(&h);
    assert_eq!(told.len(), 3, "one batch per zone: {told:?}");
    for b in &told {
        assert!(b.iter().all(|n| zone(n) == zone(&b[0])), "{b:?} spans zones");
    }
}

#[tokio::test(start_paused = true)]
async fn across_zones_lets_a_batch_take_nodes_of_several_zones() {
    let mut h = batched(6, MaxUnavailable::Nodes(3));
    if let Some(r) = h.batches.as_mut() {
        r.across_zones = true;
    }
    for i in 0..6 {
        h.fakes
            .edit(&format!("n{i}"), |n| n.zone = Some(format!("westeurope-{}", i % 3 + 1)));
    }
    let mut rec = record(6);
    h.run(&mut rec).await.unwrap();
    assert_eq!(states(&rec), [NodeState::Done; 6]);
    let told = batches_told(&h);
    assert_eq!(told.len(), 1, "{told:?}");
    assert_eq!(told[0][..3], ["n0", "n1", "n2"], "three zones in one batch");
    assert_eq!(h.fakes.w().max_out, 3);
}

#[tokio::test(start_paused = true)]
async fn a_place_freed_in_a_batch_is_taken_while_its_slowest_node_still_reboots() {
    let h = batched(4, MaxUnavailable::Nodes(2));
    h.fakes.edit("n0", |n| n.boot_secs = 200);
    let mut rec = record(4);
    h.run(&mut rec).await.unwrap();
    assert_eq!(states(&rec), [NodeState::Done; 4]);
    assert_eq!(h.fakes.w().max_out, 2, "never more than the budget");
    assert_eq!(joined(&h), ["n2", "n3"]);
    // n2 and n3 went through n1's place one after the other while n0 rebooted.
    let finished = |i: usize| rec.nodes[i].finished_at.unwrap();
    assert!(finished(3) < finished(0), "{rec:?}");
    assert!(rec.nodes.iter().all(|n| n.rebooted && n.batch == Some(1)));
}

#[tokio::test(start_paused = true)]
async fn the_zones_next_nodes_are_upgraded_ahead_and_the_next_zones_only_downloaded() {
    // Two zones, their nodes alternating by name: the plan's next batch (in the other zone)
    // is not what runs next while places in this zone free.
    let h = batched(6, MaxUnavailable::Nodes(2));
    for i in 0..6 {
        h.fakes
            .edit(&format!("n{i}"), |n| n.zone = Some(format!("westeurope-{}", i % 2 + 1)));
    }
    let mut rec = record(6);
    h.run(&mut rec).await.unwrap();
    assert_eq!(states(&rec), [NodeState::Done; 6]);
    assert_eq!(batches_told(&h), [vec!["n0", "n2", "n4"], vec!["n1", "n3", "n5"]]);
    let log = h.fakes.log();
    let at = |l: &str| {
        log.iter()
            .position(|x| x == l)
            .unwrap_or_else(|| panic!("no {l}: {log:?}"))
    };
    // n4 joins zone 1's batch: it is upgraded ahead while n0 and n2 reboot, once; the next
    // zone's first nodes only get their packages downloaded, and are upgraded at their turn,
    // after zone 1 is done.
    assert_eq!(count_on(&h.fakes, "upgrade", "n4"), 1, "{log:?}");
    assert!(at("upgrade n4") < at("release n0").min(at("release n2")), "{log:?}");
    assert!(at("upgrade n4") < at("prefetch n1"), "{log:?}");
    for n in ["n1", "n3"] {
        assert_eq!(count_on(&h.fakes, "prefetch", n), 1, "{n}: {log:?}");
        assert!(at(&format!("upgrade {n}")) > at("release n4"), "{n}: {log:?}");
    }
    // Never on a node that was already taking its own turn.
    for n in ["n0", "n2"] {
        assert_eq!(count_on(&h.fakes, "prefetch", n), 0, "{n}: {log:?}");
        assert_eq!(count_on(&h.fakes, "upgrade", n), 1, "{n}: {log:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_place_freed_while_a_node_in_flight_has_not_drained_is_taken_beside_it() {
    // n0 and n1 go first; n2 takes n0's place, and n1 is done while n2 still upgrades.
    let h = batched(4, MaxUnavailable::Nodes(2));
    h.fakes.edit("n0", |n| n.boot_secs = 10);
    h.fakes.edit("n1", |n| n.boot_secs = 12);
    let mut rec = record(4);
    h.run(&mut rec).await.unwrap();
    assert_eq!(states(&rec), [NodeState::Done; 4]);
    assert_eq!(joined(&h), ["n2", "n3"]);
    assert_eq!(h.fakes.w().max_out, 2, "never more than the budget");
    // n3 is planned with n2's drain counted as the batch's own, and goes in at once rather
    // than after n2's drain.
    let (n3_joined, _) = told_at(&h, "n3");
    let (_, n2_drained) = told_at(&h, "n2");
    assert!(n3_joined.unwrap() < n2_drained.unwrap(), "{:?}", h.fakes.log());
}

#[tokio::test(start_paused = true)]
async fn a_node_sharing_a_pdb_with_a_node_in_flight_before_its_drain_waits_for_that_drain() {
    // A PDB allowing one disruption covers the pods of n2 and n3. n2 takes n0's place; when
    // n1 frees its place n2 still upgrades: n3 is not taken beside it, but after its drain.
    let h = batched(4, MaxUnavailable::Nodes(2));
    h.fakes.edit("n0", |n| n.boot_secs = 10);
    h.fakes.edit("n1", |n| n.boot_secs = 12);
    {
        let mut w = h.fakes.w();
        w.pods = vec![web_pod("n2", "100m"), web_pod("n3", "100m")];
        w.pdbs = vec![serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web", "namespace": "app"},
            "spec": {"selector": {"matchLabels": {"app": "web"}}, "minAvailable": 1},
            "status": {"disruptionsAllowed": 1, "currentHealthy": 2, "desiredHealthy": 1, "expectedPods": 2}
        }))
        .unwrap()];
    }
    let mut rec = record(4);
    h.run(&mut rec).await.unwrap();
    assert_eq!(states(&rec), [NodeState::Done; 4]);
    assert_eq!(joined(&h), ["n2", "n3"]);
    let (n3_joined, _) = told_at(&h, "n3");
    let (_, n2_drained) = told_at(&h, "n2");
    assert!(n2_drained.unwrap() < n3_joined.unwrap(), "{:?}", h.fakes.log());
}

/// A pod of ReplicaSet `web-rs` (label `app=web`) on `node`, requesting `cpu`.
fn web_pod(node: &str, cpu: &str) -> k8s_openapi::api::core::v1::Pod {
    serde_json::from_value(serde_json::json!({
        "metadata": {
            "name": format!("web-{node}"),
            "namespace": "app",
            "labels": {"app": "web"},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-rs",
                                 "uid": "u1", "controller": true}]
        },
        "spec": {"nodeName": node, "containers": [{"name": "c", "image": "i",
                 "resources": {"requests": {"cpu": cpu}}}]},
        "status": {"phase": "Running"}
    }))
    .unwrap()
}

/// The batches the engine told, with what kept each smaller.
fn limits_told(h: &Harness) -> Vec<Vec<crate::rollout::batches::Limit>> {
    h.told
        .0
        .lock()
        .unwrap()
        .iter()
        .filter_map(|e| match e {
            Event::BatchStarted { limits, .. } => Some(limits.clone()),
            _ => None,
        })
        .collect()
}

#[tokio::test(start_paused = true)]
async fn a_pdb_allowing_one_disruption_keeps_its_pods_nodes_in_separate_batches() {
    let h = batched(4, MaxUnavailable::Nodes(4));
    {
        let mut w = h.fakes.w();
        w.pods = (0..4).map(|i| web_pod(&format!("n{i}"), "100m")).collect();
        w.pdbs = vec![serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web", "namespace": "app"},
            "spec": {"selector": {"matchLabels": {"app": "web"}}, "minAvailable": 3},
            "status": {"disruptionsAllowed": 1, "currentHealthy": 4, "desiredHealthy": 3, "expectedPods": 4}
        }))
        .unwrap()];
    }
    let mut rec = record(4);
    h.run(&mut rec).await.unwrap();
    assert_eq!(states(&rec), [NodeState::Done; 4]);
    let told = batches_told(&h);
    assert_eq!(told[0][0], "n0", "{told:?}");
    assert_eq!(joined(&h).len(), 3, "each took the place of the one before: {told:?}");
    assert_eq!(h.fakes.w().max_out, 1, "never two of the PDB's nodes out at once");
    let first = &limits_told(&h)[0];
    assert!(
        first
            .iter()
            .any(|l| matches!(l, crate::rollout::batches::Limit::Pdb { allowed: 1, .. })),
        "the first batch says the PDB shrank it: {first:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_batch_shrinks_until_its_evicted_pods_fit_on_the_nodes_that_stay() {
    let h = batched(3, MaxUnavailable::Nodes(3));
    // Four cores each, 1.5 requested on each: one node's pod fits beside another's, two
    // nodes' pods do not fit on the third.
    h.fakes.w().pods = (0..3).map(|i| web_pod(&format!("n{i}"), "1500m")).collect();
    let mut rec = record(3);
    h.run(&mut rec).await.unwrap();
    assert_eq!(states(&rec), [NodeState::Done; 3]);
    assert_eq!(h.fakes.w().max_out, 1, "never two nodes' pods to place at once");
    let first = &limits_told(&h)[0];
    assert!(
        first
            .iter()
            .any(|l| matches!(l, crate::rollout::batches::Limit::Capacity { .. })),
        "the first batch says the room shrank it: {first:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_batch_waits_once_for_the_last_batch_to_recover_and_its_nodes_never_wait_for_each_other() {
    let h = batched(6, MaxUnavailable::Nodes(3));
    // Two zones: two batches.
    for i in 0..6 {
        h.fakes
            .edit(&format!("n{i}"), |n| n.zone = Some(format!("westeurope-{}", i / 3 + 1)));
    }
    let mut rec = record(6);
    h.run(&mut rec).await.unwrap();
    assert_eq!(states(&rec), [NodeState::Done; 6]);
    let told = batches_told(&h);
    assert_eq!(told.len(), 2, "{told:?}");
    // The budgets of the first batch's drains are waited for once, before the second batch
    // is planned: not by each of its nodes after the others of the batch drained.
    assert_eq!(h.fakes.count("pdbs"), 1, "{:?}", h.fakes.log());
    let log = h.fakes.log();
    let at = |entry: &str| {
        log.iter()
            .position(|l| l == entry)
            .unwrap_or_else(|| panic!("{entry} not in {log:?}"))
    };
    let pdbs = at("pdbs ");
    for n in &told[0] {
        assert!(at(&format!("release {n}")) < pdbs, "{log:?}");
    }
    for n in &told[1] {
        assert!(pdbs < at(&format!("cordon {n}")), "{log:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn budgets_of_the_last_batch_not_recovering_stop_the_run_before_the_next_batch() {
    let h = batched(4, MaxUnavailable::Nodes(2));
    // Two zones: two batches.
    for i in 0..4 {
        h.fakes
            .edit(&format!("n{i}"), |n| n.zone = Some(format!("westeurope-{}", i / 2 + 1)));
    }
    h.fail(
        "pdbs",
        PortError::new("PodDisruptionBudget app/web-pdb: 2 of 3 pods healthy"),
    );
    let mut rec = record(4);
    let stop = h.run(&mut rec).await.unwrap_err();
    assert!(
        matches!(stop.halt(), Some(Halt::BatchPdbsNotRecovered { .. })),
        "{stop:?}"
    );
    let text = stop.halt().unwrap().to_string();
    assert!(text.starts_with("not starting the next batch"), "{text}");
    // The first batch is done; nothing of the second was touched.
    let told = batches_told(&h);
    assert_eq!(told.len(), 1, "{told:?}");
    assert_eq!(
        states(&rec),
        [NodeState::Done, NodeState::Done, NodeState::Pending, NodeState::Pending]
    );
    for n in ["n2", "n3"] {
        assert_eq!(count_on(&h.fakes, "cordon", n), 0, "{n}");
    }
    assert!(rec.nodes.iter().all(|n| !n.in_hand));
}

#[tokio::test(start_paused = true)]
async fn a_node_upgraded_ahead_waits_for_a_place_and_its_turn_only_takes_it_out() {
    let h = batched(4, MaxUnavailable::Nodes(2));
    let mut rec = record(4);
    h.run(&mut rec).await.unwrap();
    assert_eq!(states(&rec), [NodeState::Done; 4]);
    assert_eq!(h.fakes.w().max_out, 2, "an upgrade ahead takes no place");
    for n in ["n2", "n3"] {
        // Upgraded once, ahead, before it was taken out; its turn proved it patched as any.
        assert_eq!(count_on(&h.fakes, "upgrade", n), 1, "{n}: {:?}", h.fakes.log());
        let r = rec.nodes.iter().find(|r| r.name == n).unwrap();
        assert!(r.rebooted && r.kernel_after.as_deref() == Some(NEW), "{r:?}");
        assert!(!r.packages_upgraded.is_empty(), "{r:?}");
        let steps: Vec<StepName> = r.steps.iter().map(|s| s.name).collect();
        let upgrade = steps.iter().position(|s| *s == StepName::Upgrade).unwrap();
        let cordon = steps.iter().position(|s| *s == StepName::Cordon).unwrap();
        assert!(upgrade < cordon, "{steps:?}");
    }
    let told = h.told.0.lock().unwrap();
    let ahead = told
        .iter()
        .filter(|e| {
            matches!(
                e,
                Event::Step {
                    step: NodeStep::UpgradingAhead { .. },
                    ..
                }
            )
        })
        .count();
    assert_eq!(ahead, 2, "n2 and n3, each beside a node that reboots");
}

#[tokio::test(start_paused = true)]
async fn a_failed_upgrade_ahead_takes_no_more_nodes_and_halts_on_that_node_once_the_batch_is_done() {
    let h = batched(6, MaxUnavailable::Nodes(2));
    h.fakes.edit("n3", |n| n.apt_exit = Some(100));
    let mut rec = record(6);
    let stop = h.run(&mut rec).await.unwrap_err();
    assert!(matches!(stop, RunStop::Failed(_)), "{stop:?}");
    assert!(stop.message().contains("n3"), "{}", stop.message());
    // n0 and n1 went first and finished; n3 failed ahead of its turn, never taken out; n2,
    // upgraded ahead beside it, took no place after the failure.
    let state = |n: &str| rec.nodes.iter().find(|r| r.name == n).unwrap().state;
    assert_eq!(state("n0"), NodeState::Done);
    assert_eq!(state("n1"), NodeState::Done);
    assert_eq!(state("n3"), NodeState::Failed);
    assert_eq!(state("n2"), NodeState::Upgraded);
    for n in ["n2", "n3", "n4", "n5"] {
        assert_eq!(count_on(&h.fakes, "cordon", n), 0, "{n}: {:?}", h.fakes.log());
    }
    for i in 0..6 {
        let n = h.fakes.node(&format!("n{i}"));
        assert!(n.marked.is_none() && !n.unschedulable, "n{i} in service");
    }
    // Fixed, a resume finishes: n3 upgraded again, n2 not.
    h.fakes.edit("n3", |n| n.apt_exit = None);
    h.run(&mut rec).await.unwrap();
    assert_eq!(states(&rec), [NodeState::Done; 6]);
    assert_eq!(count_on(&h.fakes, "upgrade", "n3"), 2);
    assert_eq!(count_on(&h.fakes, "upgrade", "n2"), 1);
}

#[tokio::test(start_paused = true)]
async fn with_a_percentage_a_rebooting_node_upgrades_ahead_a_node_of_its_own_pool() {
    // Pool a: n0 to n3, two places; pool b: n4 and n5, one place. The place n4 frees is pool
    // b's: n5 is upgraded beside it, never a node of pool a, though n4 reboots first (n0 and
    // n1 upgrade longer) and pool a's nodes come first in the plan.
    let h = batched(6, MaxUnavailable::Percent(50));
    let pool = |i: usize| if i < 4 { "a" } else { "b" };
    for i in 0..6 {
        h.fakes.edit(&format!("n{i}"), |n| {
            n.pool = pool(i).into();
            n.upgrade_secs = if i < 2 { 10 } else { 5 };
        });
    }
    let mut rec = record(6);
    for (i, n) in rec.nodes.iter_mut().enumerate() {
        n.pool = pool(i).into();
    }
    h.run(&mut rec).await.unwrap();
    assert_eq!(states(&rec), [NodeState::Done; 6]);
    let pool_of = |n: &str| pool(n[1..].parse().unwrap());
    let ahead: Vec<(String, String)> = h
        .told
        .0
        .lock()
        .unwrap()
        .iter()
        .filter_map(|e| match e {
            Event::Step {
                node,
                step: NodeStep::UpgradingAhead { beside },
            } => Some((node.clone(), beside.clone())),
            _ => None,
        })
        .collect();
    assert!(ahead.iter().any(|(n, _)| n == "n5"), "{ahead:?}");
    for (node, beside) in &ahead {
        assert_eq!(
            pool_of(node),
            pool_of(beside),
            "{node} upgraded beside {beside}: {ahead:?}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn ctrl_c_during_an_upgrade_ahead_lets_apt_finish_takes_no_more_nodes_and_resume_reboots_it_once() {
    let h = batched(4, MaxUnavailable::Nodes(2));
    // Ctrl-C while n2's upgrade ahead (beside n0's reboot) waits for apt.
    h.fakes.w().cancel_on = Some(("await n2".into(), h.cancel.clone()));
    let mut rec = record(4);
    let stop = h.run(&mut rec).await.unwrap_err();
    assert!(matches!(stop, RunStop::Interrupted), "{stop:?}");
    let state = |rec: &RunRecord, n: &str| rec.nodes.iter().find(|r| r.name == n).unwrap().state;
    // Each node out stopped at its safe point: n0, rebooting, finished; n1, draining, was put
    // back before its reboot. apt was not cut off on n2: it stays upgraded and in service. No
    // node was taken out after the signal.
    assert_eq!(state(&rec, "n0"), NodeState::Done);
    assert!(!rec.nodes[1].in_hand && !rec.nodes[1].rebooted, "{:?}", rec.nodes[1]);
    assert_eq!(state(&rec, "n2"), NodeState::Upgraded);
    assert_eq!(state(&rec, "n3"), NodeState::Pending);
    let log = h.fakes.log();
    let last = |l: &str| log.iter().rposition(|x| x == l);
    assert!(
        last("probe n2") > last("await n2"),
        "n2 probed after apt finished: {log:?}"
    );
    for n in ["n2", "n3"] {
        assert_eq!(count_on(&h.fakes, "cordon", n), 0, "{n}: {:?}", h.fakes.log());
    }
    for i in 0..4 {
        let n = h.fakes.node(&format!("n{i}"));
        assert!(n.marked.is_none() && !n.unschedulable, "n{i} in service");
    }
    // Resumed: n2 is rebooted without a second upgrade; every node patched.
    let h2 = Harness {
        fakes: h.fakes.clone(),
        batches: h.batches.clone(),
        ..Harness::new(0)
    };
    h2.fakes.w().cancel_on = None;
    h2.run(&mut rec).await.unwrap();
    assert_eq!(states(&rec), [NodeState::Done; 4]);
    assert_eq!(count_on(&h.fakes, "upgrade", "n2"), 1);
    assert_eq!(count_on(&h.fakes, "reboot", "n2"), 1);
    assert!(h.fakes.w().max_out <= 2);
}
