//! A resumed run picks up every state an interrupted run can leave, nodes left out of
//! service first.

use super::*;

#[tokio::test(start_paused = true)]
async fn resume_redoes_a_failed_node_from_its_upgrade() {
    let h = Harness::new(1);
    h.fakes.w().apt_exit = 100;
    let mut rec = record(1);
    h.run(&mut rec).await.unwrap_err();
    h.fakes.w().apt_exit = 0;
    h.run(&mut rec).await.unwrap();
    assert_eq!(states(&rec), [NodeState::Done]);
    assert_eq!(h.fakes.count("upgrade"), 2, "upgraded again");
    assert!(h.fakes.node("n0").pending.is_empty());
    assert_eq!(h.fakes.node("n0").kernel, NEW);
}

#[tokio::test(start_paused = true)]
async fn resume_of_an_upgraded_node_reboots_it_without_upgrading_again() {
    let h = Harness::new(1);
    h.fakes.w().cancel_at = Some(("await", h.cancel.clone()));
    let mut rec = record(1);
    h.run(&mut rec).await.unwrap_err();
    let h2 = Harness {
        fakes: h.fakes.clone(),
        ..Harness::new(0)
    };
    h2.fakes.w().cancel_at = None;
    h2.run(&mut rec).await.unwrap();
    assert_eq!(h.fakes.count("upgrade"), 1);
    assert_eq!(h.fakes.count("reboot"), 1);
    assert_eq!(states(&rec), [NodeState::Done]);
}

#[tokio::test(start_paused = true)]
async fn resume_of_a_node_left_cordoned_that_rebooted_since_uncordons_it() {
    let h = Harness::new(2);
    h.fakes.edit("n0", |n| n.boot_secs = 400);
    let mut rec = record(2);
    h.run(&mut rec).await.unwrap_err(); // reboot timeout (300 s)
    assert!(rec.nodes[0].in_hand);
    tokio::time::sleep(Duration::from_secs(200)).await; // it comes back meanwhile
    assert!(h.fakes.node("n0").ready);
    h.run(&mut rec).await.unwrap();
    assert_eq!(states(&rec), [NodeState::Done; 2]);
    let proof = rec.nodes[0].proof.as_ref().unwrap();
    assert!(proof.rebooted, "proven as rebooted: {proof:?}");
    assert_eq!(proof.boot_id_after.as_deref(), Some("boot-2"));
    assert_eq!(h.fakes.count("reboot"), 2, "n0 once, n1 once");
    assert!(!h.fakes.node("n0").unschedulable);
    assert_eq!(h.fakes.w().max_out, 1);
}

#[tokio::test(start_paused = true)]
async fn resume_of_a_node_left_cordoned_and_still_down_waits_for_it() {
    let h = Harness::new(1);
    h.fakes.edit("n0", |n| n.boot_secs = 400);
    let mut rec = record(1);
    h.run(&mut rec).await.unwrap_err();
    h.run(&mut rec).await.unwrap();
    assert_eq!(states(&rec), [NodeState::Done]);
    assert_eq!(h.fakes.count("reboot"), 1, "not rebooted twice");
    assert!(!h.fakes.node("n0").unschedulable);
}

#[tokio::test(start_paused = true)]
async fn resume_of_a_cordoned_or_drained_node_finishes_it() {
    for state in [NodeState::Cordoned, NodeState::Drained] {
        let h = Harness::new(1);
        let mut rec = record(1);
        // As a killed run left it: upgraded, cordoned and marked.
        h.fakes.edit("n0", |n| {
            n.pending = vec![];
            n.reboot_required = true;
            n.unschedulable = true;
            n.marked = Some("run-0".into());
        });
        rec.nodes[0].state = state;
        rec.nodes[0].in_hand = true;
        rec.nodes[0].boot_id_before = Some("boot-1".into());
        h.run(&mut rec).await.unwrap();
        assert_eq!(states(&rec), [NodeState::Done], "{state:?}");
        assert_eq!(h.fakes.count("upgrade"), 0, "{state:?}");
        assert_eq!(h.fakes.count("reboot"), 1, "{state:?}");
        assert!(h.fakes.node("n0").marked.is_none());
    }
}

#[tokio::test(start_paused = true)]
async fn resume_of_a_rebooting_node_waits_for_it() {
    for state in [NodeState::Rebooting, NodeState::Back] {
        let h = Harness::new(1);
        let mut rec = record(1);
        h.fakes.edit("n0", |n| {
            n.ready = false;
            n.unschedulable = true;
            n.marked = Some("run-0".into());
            n.pending = vec![];
        });
        let f = h.fakes.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(10)).await;
            f.edit("n0", |n| {
                n.ready = true;
                n.boot = 2;
                n.kernel = NEW.into();
            });
        });
        rec.nodes[0].state = state;
        rec.nodes[0].in_hand = true;
        rec.nodes[0].boot_id_before = Some("boot-1".into());
        h.run(&mut rec).await.unwrap();
        assert_eq!(states(&rec), [NodeState::Done], "{state:?}");
        assert_eq!(h.fakes.count("reboot"), 0, "{state:?}");
        assert!(!h.fakes.node("n0").unschedulable);
    }
}

#[tokio::test(start_paused = true)]
async fn resume_finishes_the_node_left_out_first_even_when_another_node_is_down() {
    let h = Harness::new(3);
    let mut rec = record(2);
    // The killed run had n1 rebooting (n0 was left for later); n2 is down meanwhile.
    h.fakes.edit("n1", |n| {
        n.ready = false;
        n.unschedulable = true;
        n.marked = Some("run-0".into());
        n.pending = vec![];
    });
    h.fakes.edit("n2", |n| n.ready = false);
    let f = h.fakes.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(10)).await;
        f.edit("n1", |n| {
            n.ready = true;
            n.boot = 2;
            n.kernel = NEW.into();
        });
    });
    rec.nodes[1].state = NodeState::Rebooting;
    rec.nodes[1].in_hand = true;
    rec.nodes[1].boot_id_before = Some("boot-1".into());
    let stop = h.run(&mut rec).await.unwrap_err();
    assert_eq!(held_by(&stop), [n2_not_ready()], "{stop:?}");
    assert_eq!(rec.nodes[1].state, NodeState::Done, "n1 finished first");
    let n1 = h.fakes.node("n1");
    assert!(!n1.unschedulable && n1.marked.is_none(), "n1 back in service");
    assert_eq!(h.fakes.count("cordon"), 0, "n0 not taken out beside the dead n2");
    assert!(!h.fakes.node("n0").unschedulable);
}

#[tokio::test(start_paused = true)]
async fn a_held_resume_finishes_only_the_node_left_out() {
    let mut h = Harness::new(2);
    h.hold = Some("a drain would certainly fail");
    let mut rec = record(2);
    // The killed run left n1 cordoned and upgraded (n0 was pending).
    h.fakes.edit("n1", |n| {
        n.pending = vec![];
        n.reboot_required = true;
        n.unschedulable = true;
        n.marked = Some("run-0".into());
    });
    rec.nodes[1].state = NodeState::Cordoned;
    rec.nodes[1].in_hand = true;
    rec.nodes[1].boot_id_before = Some("boot-1".into());
    let stop = h.run(&mut rec).await.unwrap_err();
    assert_eq!(stop, RunStop::Refused("a drain would certainly fail".into()));
    assert_eq!(states(&rec), [NodeState::Pending, NodeState::Done]);
    assert!(!h.fakes.node("n1").unschedulable);
    assert_eq!(h.fakes.node("n1").kernel, NEW, "n1 rebooted into its new kernel");
    assert!(!changed(&h.fakes, "n0"), "n0 not even upgraded");
}

#[tokio::test(start_paused = true)]
async fn a_signal_during_a_held_resume_finishes_the_node_left_out_and_the_next_resume_goes_on() {
    let mut h = Harness::new(2);
    h.hold = Some("a drain would certainly fail");
    h.fakes.w().cancel_at = Some(("reboot", h.cancel.clone()));
    let mut rec = record(2);
    h.fakes.edit("n1", |n| {
        n.pending = vec![];
        n.reboot_required = true;
        n.unschedulable = true;
        n.marked = Some("run-0".into());
    });
    rec.nodes[1].state = NodeState::Cordoned;
    rec.nodes[1].in_hand = true;
    rec.nodes[1].boot_id_before = Some("boot-1".into());
    // Ctrl-C while n1 reboots: n1 is waited for and put back, then the run stops there.
    assert_eq!(h.run(&mut rec).await.unwrap_err(), RunStop::Interrupted);
    assert_eq!(states(&rec), [NodeState::Pending, NodeState::Done]);
    assert!(!h.fakes.node("n1").unschedulable);
    assert!(!changed(&h.fakes, "n0"));
    // Resumed while the pre-flight still holds the others: nothing left out, nothing done.
    let h2 = Harness {
        fakes: h.fakes.clone(),
        hold: Some("a drain would certainly fail"),
        ..Harness::new(0)
    };
    h2.fakes.w().cancel_at = None;
    assert!(matches!(h2.run(&mut rec).await.unwrap_err(), RunStop::Refused(_)));
    assert!(!changed(&h.fakes, "n0"));
    // Once it no longer does, the resume patches n0.
    let h3 = Harness {
        fakes: h.fakes.clone(),
        ..Harness::new(0)
    };
    h3.run(&mut rec).await.unwrap();
    assert_eq!(states(&rec), [NodeState::Done; 2]);
    assert_eq!(h.fakes.w().max_out, 1);
}

#[tokio::test(start_paused = true)]
async fn resume_records_a_deleted_node_as_gone_and_goes_on() {
    let h = Harness::new(2);
    h.fakes.w().nodes.remove("n0");
    let mut rec = record(2);
    h.run(&mut rec).await.unwrap();
    assert_eq!(states(&rec), [NodeState::Gone, NodeState::Done]);
}

#[tokio::test(start_paused = true)]
async fn resume_of_a_node_stopped_as_its_reboot_was_sent_waits_for_that_reboot() {
    let h = Harness::new(1);
    let mut rec = record(1);
    // As a run killed right after the reboot command left it: drained, its reboot begun in
    // the record, the node still Ready in the API with its old bootID but unreachable.
    h.fakes.edit("n0", |n| {
        n.pending = vec![];
        n.reboot_required = true;
        n.unschedulable = true;
        n.marked = Some("run-0".into());
        n.probe_down = true;
    });
    rec.nodes[0].state = NodeState::Drained;
    rec.nodes[0].in_hand = true;
    rec.nodes[0].boot_id_before = Some("boot-1".into());
    rec.nodes[0].steps.push(crate::rollout::journal::Step {
        name: StepName::Reboot,
        started_at: "2026-12-01T08:00:00Z".parse().unwrap(),
        finished_at: None,
        outcome: StepOutcome::Running,
        detail: String::new(),
    });
    let f = h.fakes.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(5)).await;
        f.edit("n0", |n| n.ready = false);
        tokio::time::sleep(Duration::from_secs(20)).await;
        f.edit("n0", |n| {
            n.ready = true;
            n.boot = 2;
            n.kernel = NEW.into();
            n.reboot_required = false;
            n.probe_down = false;
        });
    });
    h.run(&mut rec).await.unwrap();
    assert_eq!(states(&rec), [NodeState::Done]);
    assert_eq!(h.fakes.count("reboot"), 0, "the reboot it was sent is the one proven");
    let proof = rec.nodes[0].proof.as_ref().unwrap();
    assert!(proof.rebooted, "{proof:?}");
    assert_eq!(proof.boot_id_after.as_deref(), Some("boot-2"));
    assert!(!h.fakes.node("n0").unschedulable);
    assert!(h.fakes.node("n0").marked.is_none());
}
