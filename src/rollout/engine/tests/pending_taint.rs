//! The pending taint: on every node still to do from the start of the run, off each node when
//! its turn ends, and off all of them however the run ends; none at all with
//! `--no-pending-taint`.

use super::*;

/// No node carries the pending taint.
fn untainted(h: &Harness) {
    assert_eq!(h.fakes.tainted(), Vec::<String>::new(), "{:?}", h.fakes.log());
}

#[tokio::test(start_paused = true)]
async fn the_nodes_still_to_do_carry_the_pending_taint_until_their_turn_ends() {
    let h = Harness::new(4);
    let mut rec = record(4);
    rec.run_id = "run-7".into();
    rec.nodes[3].state = NodeState::Skipped;
    h.run(&mut rec).await.unwrap();
    assert_eq!(states(&rec)[..3], [NodeState::Done; 3]);
    let at_cordon = h.fakes.w().tainted_at_cordon.clone();
    let names = |v: &[&str]| v.iter().map(|s| format!("{s}=run-7")).collect::<Vec<_>>();
    assert_eq!(
        at_cordon,
        vec![
            ("n0".to_string(), names(&["n0", "n1", "n2"])),
            ("n1".to_string(), names(&["n1", "n2"])),
            ("n2".to_string(), names(&["n2"])),
        ],
        "the taint names the run; a node done is a node without it; the skipped node never gets it"
    );
    assert_eq!(count_on(&h.fakes, "taint", "n3"), 0);
    untainted(&h);
    // Each node's taint went at the end of its own turn, before the next node started.
    let log = h.fakes.log();
    let at = |l: &str| {
        log.iter()
            .position(|x| x == l)
            .unwrap_or_else(|| panic!("{l} in {log:?}"))
    };
    assert!(at("untaint n0") < at("cordon n1"), "{log:?}");
}

#[tokio::test(start_paused = true)]
async fn no_node_keeps_the_pending_taint_whatever_ends_the_run() {
    type Setup = fn(&Harness, &mut RunRecord);
    let paths: [(&str, Setup); 7] = [
        ("a failed upgrade", |h, _| h.fakes.w().apt_exit = 100),
        ("a failed drain", |h, _| {
            h.fail("drain", PortError::new("eviction refused"))
        }),
        ("Ctrl-C mid drain", |h, _| {
            h.fakes.w().cancel_at = Some(("drain", h.cancel.clone()))
        }),
        ("the lock lost mid drain", |h, _| {
            h.fakes.w().fence_fails_at = Some("drain")
        }),
        ("a node unproven after its reboot", |h, _| {
            h.fakes.edit("n0", |n| n.down_after_reboot = true)
        }),
        ("the run record unwritable", |h, rec| {
            let dir = h.dir.path().join(&rec.cluster.key);
            h.fakes.w().break_journal_at = Some(("drain", "n0", dir));
        }),
        ("the health gate held by a node down", |h, _| {
            h.fakes.w().nodes.insert(
                "x9".into(),
                FakeNode {
                    ready: false,
                    ..FakeNode::new()
                },
            );
        }),
    ];
    for (what, setup) in paths {
        let h = Harness::new(3);
        let mut rec = record(3);
        setup(&h, &mut rec);
        let stop = h.run(&mut rec).await.expect_err(what);
        assert_eq!(h.fakes.count("taint"), 3, "{what}: every node to do was tainted");
        assert!(
            rec.nodes.iter().any(|n| n.state == NodeState::Pending),
            "{what}: nodes were left to do ({stop:?})"
        );
        untainted(&h);
    }
}

#[tokio::test(start_paused = true)]
async fn a_node_gone_and_a_taint_that_could_not_be_removed_at_its_turn_are_cleared_at_the_end() {
    let h = Harness::new(3);
    h.fakes.w().nodes.remove("n1");
    // n0's own removal fails: the end of the run removes it.
    h.fail("untaint", PortError::new("the API server is unreachable"));
    let mut rec = record(3);
    h.run(&mut rec).await.unwrap();
    assert_eq!(states(&rec), [NodeState::Done, NodeState::Gone, NodeState::Done]);
    assert_eq!(count_on(&h.fakes, "untaint", "n0"), 2);
    untainted(&h);
}

#[tokio::test(start_paused = true)]
async fn a_taint_that_cannot_be_put_on_is_a_warning_and_the_run_goes_on() {
    let h = Harness::new(2);
    h.fail("taint", PortError::new("nodes is forbidden"));
    let mut rec = record(2);
    h.run(&mut rec).await.unwrap();
    assert_eq!(states(&rec), [NodeState::Done; 2]);
    let told = h.told.0.lock().unwrap().clone();
    assert!(
        told.iter().any(|e| matches!(
            e,
            Event::Warning(crate::rollout::progress::Warning::PendingNotMarked { error }) if error.contains("forbidden")
        )),
        "{told:?}"
    );
    untainted(&h);
}

#[tokio::test(start_paused = true)]
async fn with_no_pending_taint_no_node_is_tainted_or_untainted() {
    let mut h = Harness::new(2);
    h.options.no_pending_taint = true;
    let mut rec = record(2);
    h.run(&mut rec).await.unwrap();
    assert_eq!(states(&rec), [NodeState::Done; 2]);
    assert_eq!(h.fakes.count("taint") + h.fakes.count("untaint"), 0);
    assert!(h.fakes.w().tainted_at_cordon.iter().all(|(_, t)| t.is_empty()));
}

#[tokio::test(start_paused = true)]
async fn in_batches_each_node_loses_the_taint_at_its_turns_end_and_a_halted_batch_leaves_none() {
    use crate::rollout::batches::{BatchRules, MaxUnavailable};
    let batched = || {
        let mut h = Harness::new(4);
        h.batches = Some(BatchRules {
            max: MaxUnavailable::Nodes(2),
            across_zones: false,
            drain: DrainOptions::default(),
            pending_taint: true,
        });
        h
    };
    let h = batched();
    let mut rec = record(4);
    h.run(&mut rec).await.unwrap();
    assert_eq!(states(&rec), [NodeState::Done; 4]);
    let at_cordon = h.fakes.w().tainted_at_cordon.clone();
    assert!(at_cordon.iter().any(|(n, _)| n == "n3"), "{at_cordon:?}");
    for (node, tainted) in &at_cordon {
        if node == "n2" || node == "n3" {
            assert!(
                tainted.iter().all(|t| t.starts_with("n2=") || t.starts_with("n3=")),
                "the first batch's nodes are done and untainted at {node}'s cordon: {tainted:?}"
            );
        }
    }
    untainted(&h);

    let h = batched();
    h.fail("reboot", PortError::new("the node's reboot command failed"));
    let mut rec = record(4);
    h.run(&mut rec).await.unwrap_err();
    assert!(rec.nodes.iter().any(|n| n.state == NodeState::Pending));
    untainted(&h);
}
