//! A step that fails halts the run with the node left as it should be; the health gate,
//! the pods gate and the run record hold the next disruption.

use super::*;

#[tokio::test(start_paused = true)]
async fn a_record_that_cannot_be_written_finishes_the_node_in_hand_and_starts_no_other() {
    let h = Harness::new(3);
    let mut rec = record(3);
    let dir = h.dir.path().join(&rec.cluster.key);
    h.fakes.w().break_journal_at = Some(("drain", "n0", dir.clone()));
    let stop = h.run(&mut rec).await.unwrap_err();
    let RunStop::RecordUnwritable(msg) = &stop else {
        panic!("{stop:?}")
    };
    let path = dir.join("run-1.json");
    assert!(
        msg.contains(&path.display().to_string())
            && msg.contains("free space")
            && msg.contains("--resume")
            && msg.contains("not starting another node"),
        "{msg}"
    );
    // n0, out of service when the writes began to fail, was finished and put back; the
    // others were not touched.
    assert_eq!(states(&rec), [NodeState::Done, NodeState::Pending, NodeState::Pending]);
    let n0 = h.fakes.node("n0");
    assert!(n0.kernel == NEW && !n0.unschedulable && n0.marked.is_none());
    assert!(rec.nodes[0].rebooted && !rec.nodes[0].in_hand);
    assert!(!changed(&h.fakes, "n1") && !changed(&h.fakes, "n2"));
    // The record on disk is the last one written (n0 cordoned, draining).
    let old = dir.with_extension("moved").join("run-1.json");
    let on_disk: RunRecord = serde_json::from_slice(&std::fs::read(old).unwrap()).unwrap();
    assert!(on_disk.nodes[0].in_hand && on_disk.nodes[0].state == NodeState::Cordoned);
}

#[tokio::test(start_paused = true)]
async fn a_record_that_cannot_be_written_before_a_node_is_changed_stops_before_the_change() {
    let h = Harness::new(2);
    let mut rec = record(2);
    let dir = h.dir.path().join(&rec.cluster.key);
    // The write after the probe fails: the upgrade (a change) is not started.
    h.fakes.w().break_journal_at = Some(("probe", "n0", dir.clone()));
    let stop = h.run(&mut rec).await.unwrap_err();
    assert!(
        matches!(&stop, RunStop::RecordUnwritable(m) if m.starts_with("not upgrading node n0")),
        "{stop:?}"
    );
    assert!(!changed(&h.fakes, "n0") && !changed(&h.fakes, "n1"));
    assert_eq!(states(&rec), [NodeState::Pending; 2], "nothing is recorded as failed");
}

#[tokio::test(start_paused = true)]
async fn a_failed_upgrade_halts_before_the_cordon() {
    let h = Harness::new(2);
    h.fakes.w().apt_exit = 100;
    let mut rec = record(2);
    let stop = h.run(&mut rec).await.unwrap_err();
    assert!(
        matches!(
            stop.halt(),
            Some(Halt::UpgradeExited {
                manager: PackageManager::Apt,
                code: 100,
                left: NodeLeft::NotCordoned,
                ..
            })
        ),
        "{stop:?}"
    );
    assert!(stop.message().contains("(apt-get exit 100"), "{}", stop.message());
    assert_eq!(states(&rec), [NodeState::Failed, NodeState::Pending]);
    assert!(rec.nodes[0].upgrade_output.contains("E: Sub-process"));
    assert_eq!(h.fakes.count("cordon"), 0);
}

#[tokio::test(start_paused = true)]
async fn updates_left_pending_after_the_upgrade_are_never_reported_patched() {
    let h = Harness::new(1);
    h.fakes.w().apt_leaves = vec!["openssl"];
    let mut rec = record(1);
    let stop = h.run(&mut rec).await.unwrap_err();
    assert!(
        matches!(stop.halt(), Some(Halt::StillPending { packages, .. }) if packages == &["openssl"]),
        "{stop:?}"
    );
    assert_eq!(states(&rec), [NodeState::Failed]);
    assert_eq!(h.fakes.count("cordon"), 0);
}

#[tokio::test(start_paused = true)]
async fn each_failing_step_halts_with_the_node_left_as_it_should_be() {
    // (step, node stays out of service afterwards, the port error the halt carries)
    let probe = |h: &Halt| match h {
        Halt::Probe { error, .. } => Some(error.clone()),
        _ => None,
    };
    let upgrade = |h: &Halt| match h {
        Halt::StartUpgrade { error, .. } => Some(error.clone()),
        _ => None,
    };
    let gate = |h: &Halt| match h {
        Halt::Unhealthy {
            gate: GateStop::Failed(error),
            ..
        } => Some(error.clone()),
        _ => None,
    };
    let kured = |h: &Halt| match h {
        Halt::KuredLock { error, .. } => Some(error.clone()),
        _ => None,
    };
    let cordon = |h: &Halt| match h {
        Halt::Cordon { error, .. } => Some(error.clone()),
        _ => None,
    };
    let drain = |h: &Halt| match h {
        Halt::Drain { error, release, .. } if release.put_back() => Some(error.clone()),
        _ => None,
    };
    let reboot = |h: &Halt| match h {
        Halt::Reboot { error, release, .. } if release.put_back() => Some(error.clone()),
        _ => None,
    };
    let wait = |h: &Halt| match h {
        Halt::NotBack { error } => Some(error.clone()),
        _ => None,
    };
    type Cause = fn(&Halt) -> Option<PortError>;
    let steps: [(&str, bool, Cause); 8] = [
        ("probe", false, probe),
        ("upgrade", false, upgrade),
        ("gate", false, gate),
        ("kured", false, kured),
        ("cordon", false, cordon),
        ("drain", false, drain),
        ("reboot", false, reboot),
        ("wait", true, wait),
    ];
    for (step, stays_out, cause) in steps {
        let h = Harness::new(2);
        h.fail(step, PortError::new(format!("{step} broke")));
        let mut rec = record(2);
        let stop = h.run(&mut rec).await.unwrap_err();
        let Some(halt) = stop.halt() else {
            panic!("{step}: {stop:?}")
        };
        assert_eq!(
            cause(halt),
            Some(PortError::new(format!("{step} broke"))),
            "{step}: {halt:?}"
        );
        assert!(!halt.credentials_refused(), "{step}");
        assert_eq!(rec.nodes[0].state, NodeState::Failed, "{step}");
        assert_eq!(
            rec.nodes[1].state,
            NodeState::Pending,
            "{step}: the next node is not started"
        );
        let n0 = h.fakes.node("n0");
        assert_eq!(n0.unschedulable, stays_out, "{step}");
        assert_eq!(rec.nodes[0].in_hand, stays_out, "{step}");
        assert!(!changed(&h.fakes, "n1"), "{step}: nothing happened to the next node");
    }
}

#[tokio::test(start_paused = true)]
async fn refused_credentials_stop_the_run_as_refused_credentials() {
    let h = Harness::new(1);
    h.fail("cordon", PortError::auth("HTTP 401 Unauthorized"));
    let mut rec = record(1);
    let stop = h.run(&mut rec).await.unwrap_err();
    assert!(
        matches!(stop.halt(), Some(h @ Halt::Cordon { .. }) if h.credentials_refused()),
        "{stop:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn another_node_down_holds_the_cordon_then_halts_naming_it() {
    let h = Harness::new(3);
    h.fakes.edit("n2", |n| n.ready = false);
    let mut rec = record(2);
    let stop = h.run(&mut rec).await.unwrap_err();
    assert_eq!(held_by(&stop), [n2_not_ready()], "{stop:?}");
    assert_eq!(h.fakes.count("cordon"), 0);
    assert_eq!(rec.nodes[0].state, NodeState::Failed);
    assert_eq!(h.fakes.w().max_out, 1, "only the node that was down");
}

#[tokio::test(start_paused = true)]
async fn the_gate_opens_when_the_other_node_comes_back() {
    let h = Harness::new(3);
    h.fakes.edit("n2", |n| n.ready = false);
    let f = h.fakes.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(12)).await;
        f.edit("n2", |n| n.ready = true);
    });
    let mut rec = record(2);
    h.run(&mut rec).await.unwrap();
    assert_eq!(states(&rec), [NodeState::Done; 2]);
}

fn stranded_cache() -> crate::kube::schedule::Stranded {
    use crate::kube::schedule::{Constraint, Nowhere, Stranded};
    Stranded {
        pod: PodRef {
            namespace: "shop".into(),
            name: "session-cache-7c9".into(),
            uid: "u".into(),
        },
        why: Nowhere::NoneMatches(vec![Constraint::NodeSelector(
            [("agentpool".to_string(), "user".to_string())].into(),
        )]),
    }
}

#[tokio::test(start_paused = true)]
async fn pods_with_nowhere_to_go_stop_the_run_before_that_nodes_cordon() {
    let h = Harness::new(3);
    h.fakes.w().stranded.insert("n1".into(), vec![stranded_cache()]);
    let mut rec = record(3);
    let stop = h.run(&mut rec).await.unwrap_err();
    let RunStop::Refused(msg) = &stop else {
        panic!("{stop:?}")
    };
    assert!(
        msg.contains("not taking node n1 out: draining node n1 would leave 1 pod(s) with nowhere to go")
            && msg.contains(
                "shop/session-cache-7c9 (no other schedulable Ready node matches nodeSelector agentpool=user)"
            )
            && msg.contains("--allow-pending-pods"),
        "{msg}"
    );
    assert_eq!(states(&rec), [NodeState::Done, NodeState::Failed, NodeState::Pending]);
    assert!(!h.fakes.log().contains(&"cordon n1".to_string()), "n1 never taken out");
    assert!(!h.fakes.node("n1").unschedulable && h.fakes.node("n1").marked.is_none());
    assert!(!changed(&h.fakes, "n2"), "no node after it is started");
}

#[tokio::test(start_paused = true)]
async fn allow_pending_pods_takes_the_node_out_anyway() {
    let mut h = Harness::new(2);
    h.options.allow_pending_pods = true;
    h.fakes.w().stranded.insert("n1".into(), vec![stranded_cache()]);
    let mut rec = record(2);
    h.run(&mut rec).await.unwrap();
    assert_eq!(states(&rec), [NodeState::Done; 2]);
    assert_eq!(h.fakes.count("cordon"), 2);
}

#[tokio::test(start_paused = true)]
async fn a_node_that_never_returns_is_left_cordoned_in_hand_and_named() {
    let h = Harness::new(2);
    h.fakes.edit("n0", |n| n.never_returns = true);
    let mut rec = record(2);
    let stop = h.run(&mut rec).await.unwrap_err();
    assert!(
        matches!(stop.halt(), Some(Halt::NotBack { error }) if error.message.contains("did not come back")),
        "{stop:?}"
    );
    assert!(rec.nodes[0].in_hand);
    assert!(h.fakes.node("n0").marked.is_some());
    assert_eq!(rec.nodes[1].state, NodeState::Pending);
}

#[tokio::test(start_paused = true)]
async fn a_node_that_dies_while_the_previous_one_reboots_holds_the_next_cordon() {
    let h = Harness::new(3);
    // n2 dies while n0 reboots (its packages for n1 are downloading meanwhile).
    let f = h.fakes.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(12)).await;
        f.edit("n2", |n| n.ready = false);
    });
    let mut rec = record(2);
    let stop = h.run(&mut rec).await.unwrap_err();
    assert_eq!(held_by(&stop), [n2_not_ready()], "{stop:?}");
    assert_eq!(states(&rec), [NodeState::Done, NodeState::Failed]);
    assert_eq!(h.fakes.count("cordon"), 1, "only n0 was ever cordoned");
    assert!(!h.fakes.node("n1").unschedulable);
    // Once n2 is back, the resume finishes n1, redoing it from its upgrade.
    h.fakes.edit("n2", |n| n.ready = true);
    h.run(&mut rec).await.unwrap();
    assert_eq!(states(&rec), [NodeState::Done; 2]);
}
