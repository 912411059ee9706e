//! Signals and a lost lock stop at safe points: apt is never cut off, a node out of service
//! is finished or put back, nothing else is started.

use super::*;

#[tokio::test(start_paused = true)]
async fn a_lock_lost_before_the_cordon_takes_nothing_out() {
    let h = Harness::new(2);
    h.fakes.w().fence_fails_at = Some("kured");
    let mut rec = record(2);
    let stop = h.run(&mut rec).await.unwrap_err();
    assert!(matches!(stop, RunStop::LockLost(_)), "{stop:?}");
    assert_eq!(h.fakes.count("cordon"), 0);
    assert_eq!(rec.nodes[1].state, NodeState::Pending);
}

#[tokio::test(start_paused = true)]
async fn a_lock_lost_mid_drain_puts_the_node_back_and_stops() {
    let h = Harness::new(2);
    h.fakes.w().fence_fails_at = Some("drain");
    let mut rec = record(2);
    let stop = h.run(&mut rec).await.unwrap_err();
    assert!(
        matches!(stop, RunStop::LockLost(ref m) if m.contains("stopped draining node n0")),
        "{stop:?}"
    );
    let n0 = h.fakes.node("n0");
    assert!(!n0.unschedulable && n0.marked.is_none(), "put back");
    assert_eq!(h.fakes.count("reboot"), 0);
    assert!(!rec.nodes[0].in_hand);
}

#[tokio::test(start_paused = true)]
async fn a_lock_lost_while_rebooting_finishes_the_node_and_starts_no_other() {
    let h = Harness::new(2);
    h.fakes.w().fence_fails_at = Some("wait");
    let mut rec = record(2);
    let stop = h.run(&mut rec).await.unwrap_err();
    assert!(matches!(stop, RunStop::LockLost(_)), "{stop:?}");
    assert_eq!(rec.nodes[0].state, NodeState::Done, "the node in hand was finished");
    assert!(!h.fakes.node("n0").unschedulable);
    assert_eq!(rec.nodes[1].state, NodeState::Pending, "no other node was started");
    assert!(!changed(&h.fakes, "n1"), "only its packages were downloaded ahead");
}

#[tokio::test(start_paused = true)]
async fn a_signal_during_the_upgrade_waits_for_apt_and_stops_before_the_cordon() {
    let h = Harness::new(2);
    h.fakes.w().cancel_at = Some(("await", h.cancel.clone()));
    let mut rec = record(2);
    let stop = h.run(&mut rec).await.unwrap_err();
    assert_eq!(stop, RunStop::Interrupted);
    assert_eq!(rec.nodes[0].state, NodeState::Upgraded, "apt ran to its end");
    assert!(h.fakes.node("n0").pending.is_empty());
    assert_eq!(h.fakes.count("cordon"), 0);
}

#[tokio::test(start_paused = true)]
async fn a_second_signal_stops_waiting_for_apt() {
    let h = Harness::new(1);
    h.fakes.edit("n0", |n| n.pending = vec!["linux-azure"]);
    h.cancel.cancel();
    h.abandon.cancel();
    let mut rec = record(1);
    // Signals before the first node: the run does not even start it.
    assert_eq!(h.run(&mut rec).await.unwrap_err(), RunStop::Interrupted);
    assert_eq!(h.fakes.count("upgrade"), 0);

    let h = Harness::new(1);
    h.fakes.w().cancel_at = Some(("upgrade", h.abandon.clone()));
    let mut rec = record(1);
    assert_eq!(h.run(&mut rec).await.unwrap_err(), RunStop::Interrupted);
    assert_eq!(
        rec.nodes[0].state,
        NodeState::Pending,
        "the upgrade is not known to have finished"
    );
    let step = rec.nodes[0].steps.last().unwrap();
    assert!(step.detail.contains("apt is still running on node n0"), "{step:?}");
}

#[tokio::test(start_paused = true)]
async fn a_signal_mid_drain_uncordons() {
    let h = Harness::new(2);
    h.fakes.w().cancel_at = Some(("drain", h.cancel.clone()));
    let mut rec = record(2);
    assert_eq!(h.run(&mut rec).await.unwrap_err(), RunStop::Interrupted);
    let n0 = h.fakes.node("n0");
    assert!(!n0.unschedulable && n0.marked.is_none());
    assert_eq!(h.fakes.count("reboot"), 0);
}

#[tokio::test(start_paused = true)]
async fn a_signal_during_the_reboot_waits_for_the_node_then_stops() {
    let h = Harness::new(2);
    h.fakes.w().cancel_at = Some(("reboot", h.cancel.clone()));
    let mut rec = record(2);
    assert_eq!(h.run(&mut rec).await.unwrap_err(), RunStop::Interrupted);
    assert_eq!(rec.nodes[0].state, NodeState::Done);
    assert!(!h.fakes.node("n0").unschedulable);
    assert_eq!(rec.nodes[1].state, NodeState::Pending);
}

#[tokio::test(start_paused = true)]
async fn a_signal_at_the_health_gate_takes_nothing_out_and_resume_finishes() {
    let h = Harness::new(2);
    h.fakes.w().cancel_at = Some(("gate", h.cancel.clone()));
    h.fakes.edit("n1", |n| n.ready = false); // the gate waits, so the signal lands there
    let mut rec = record(1);
    assert_eq!(h.run(&mut rec).await.unwrap_err(), RunStop::Interrupted);
    assert_eq!(rec.nodes[0].state, NodeState::Upgraded);
    assert_eq!(h.fakes.count("cordon"), 0);
    h.fakes.edit("n1", |n| n.ready = true);
    let h2 = Harness {
        fakes: h.fakes.clone(),
        ..Harness::new(0)
    };
    h2.fakes.w().cancel_at = None;
    h2.run(&mut rec).await.unwrap();
    assert_eq!(states(&rec), [NodeState::Done]);
    assert_eq!(h.fakes.count("upgrade"), 1, "not upgraded twice");
}

#[tokio::test(start_paused = true)]
async fn a_signal_while_downloading_ahead_finishes_the_node_in_hand_then_resume_goes_on() {
    let h = Harness::new(2);
    h.fakes.w().cancel_at = Some(("prefetch", h.cancel.clone()));
    let mut rec = record(2);
    assert_eq!(h.run(&mut rec).await.unwrap_err(), RunStop::Interrupted);
    assert_eq!(states(&rec), [NodeState::Done, NodeState::Pending]);
    assert!(!h.fakes.node("n0").unschedulable);
    assert!(!changed(&h.fakes, "n1"), "only downloaded ahead");
    let h2 = Harness {
        fakes: h.fakes.clone(),
        ..Harness::new(0)
    };
    h2.fakes.w().cancel_at = None;
    h2.run(&mut rec).await.unwrap();
    assert_eq!(states(&rec), [NodeState::Done; 2]);
    assert_eq!(h.fakes.w().max_out, 1);
}
