//! No proof, no patched: what is observed after the reboot decides, and a node that cannot
//! be checked is put back unproven and proven first by the next resume.

use super::*;

#[tokio::test(start_paused = true)]
async fn an_ubuntu_node_whose_marker_is_back_after_the_reboot_is_not_reported_patched() {
    let h = Harness::new(2);
    h.fakes.edit("n0", |n| n.reboot_need_stays = true);
    let mut rec = record(2);
    let stop = h.run(&mut rec).await.unwrap_err();
    assert!(
        matches!(
            stop.halt(),
            Some(Halt::NotPatchedAfterReboot {
                no: NoProof::RebootStillRequired { what, .. },
                ..
            }) if what.contains("/var/run/reboot-required")
        ),
        "{stop:?}"
    );
    assert_eq!(states(&rec), [NodeState::Failed, NodeState::Pending]);
    let n = h.fakes.node("n0");
    assert!(!n.unschedulable && n.marked.is_none(), "put back before stopping");
    assert!(!changed(&h.fakes, "n1"));
}

#[tokio::test(start_paused = true)]
async fn an_azure_linux_node_that_still_needs_a_reboot_is_not_reported_patched() {
    let h = Harness::new(2);
    h.fakes.edit("n0", |n| {
        n.tdnf = true;
        n.reboot_need_stays = true
    });
    let mut rec = record(2);
    let stop = h.run(&mut rec).await.unwrap_err();
    assert!(
        matches!(
            stop.halt(),
            Some(Halt::NotPatchedAfterReboot {
                no: NoProof::RebootStillRequired { what, .. },
                ..
            }) if what.contains("needs-restarting -r")
        ),
        "{stop:?}"
    );
    assert_eq!(states(&rec), [NodeState::Failed, NodeState::Pending]);
    let n = h.fakes.node("n0");
    assert!(!n.unschedulable && n.marked.is_none(), "put back before stopping");
    assert!(!changed(&h.fakes, "n1"));
}

#[tokio::test(start_paused = true)]
async fn no_proof_no_patched_a_node_unchecked_after_its_reboot_is_put_back_unproven_and_the_run_stops() {
    let h = Harness::new(2);
    h.fakes.edit("n0", |n| n.down_after_reboot = true);
    let mut rec = record(2);
    let t0 = Instant::now();
    let stop = h.run(&mut rec).await.unwrap_err();
    assert!(
        matches!(
            stop.halt(),
            Some(Halt::Unproven {
                why: Unproven::Unchecked { release: Some(r), .. },
                ..
            }) if r.put_back()
        ),
        "{stop:?}"
    );
    let msg = stop.message();
    assert!(
        msg.contains("node n0 is not proven patched (recorded unproven)")
            && msg.contains("Connection refused")
            && msg.contains("--reboot-timeout (300s)")
            && msg.contains("--resume"),
        "{msg}"
    );
    assert_eq!(states(&rec), [NodeState::Unproven, NodeState::Pending]);
    assert!(rec.nodes[0].proof.is_none(), "no proof recorded");
    assert!(rec.nodes[0].error.as_deref().unwrap().contains("Connection refused"));
    assert_eq!(rec.nodes[0].boot_id_before.as_deref(), Some("boot-1"));
    assert_eq!(rec.nodes[0].boot_id_after.as_deref(), Some("boot-2"));
    let n = h.fakes.node("n0");
    assert!(
        n.ready && !n.unschedulable && n.marked.is_none(),
        "released: capacity is back"
    );
    assert!(!rec.nodes[0].in_hand);
    // Tried again within --reboot-timeout (300 s from the reboot), not once only.
    assert!(count_on(&h.fakes, "probe", "n0") > 5, "{:?}", h.fakes.log());
    let took = t0.elapsed();
    assert!(
        took >= Duration::from_secs(290) && took < Duration::from_secs(400),
        "{took:?}"
    );
    assert!(!changed(&h.fakes, "n1"), "nothing else started");
    // The record on disk says the same.
    let saved = Journal::new(h.dir.path()).runs(&rec.cluster.key).unwrap();
    assert_eq!(saved[0].nodes[0].state, NodeState::Unproven);
    assert_eq!(enum_text(&NodeState::Unproven), "unproven");
}

#[tokio::test(start_paused = true)]
async fn a_check_after_the_reboot_that_succeeds_within_the_timeout_proves_the_node() {
    let h = Harness::new(2);
    h.fakes.edit("n0", |n| n.down_after_reboot = true);
    let f = h.fakes.clone();
    tokio::spawn(async move {
        // The transport comes back a minute after the reboot.
        while count_on(&f, "reboot", "n0") == 0 {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        tokio::time::sleep(Duration::from_secs(60)).await;
        f.edit("n0", |n| {
            n.probe_down = false;
            n.down_after_reboot = false;
        });
    });
    let mut rec = record(2);
    h.run(&mut rec).await.unwrap();
    assert_eq!(states(&rec), [NodeState::Done; 2]);
    let proof = rec.nodes[0].proof.as_ref().expect("the proof is recorded");
    assert!(proof.rebooted);
    assert_eq!(proof.boot_id_before.as_deref(), Some("boot-1"));
    assert_eq!(proof.boot_id_after.as_deref(), Some("boot-2"));
    assert_eq!(proof.kernel, NEW);
    assert!(count_on(&h.fakes, "probe", "n0") > 3, "retried: {:?}", h.fakes.log());
    assert_eq!(h.fakes.w().max_out, 1);
}

#[tokio::test(start_paused = true)]
async fn resume_proves_an_unproven_node_first_without_cordon_or_reboot_then_goes_on() {
    let h = Harness::new(2);
    h.fakes.edit("n0", |n| n.down_after_reboot = true);
    let mut rec = record(2);
    h.run(&mut rec).await.unwrap_err();
    assert_eq!(rec.nodes[0].state, NodeState::Unproven);
    let cordons = count_on(&h.fakes, "cordon", "n0");

    // Still unreachable: it stays unproven, nothing else is started.
    let stop = h.run(&mut rec).await.unwrap_err();
    assert!(
        matches!(
            stop.halt(),
            Some(Halt::Unproven {
                why: Unproven::StillUnchecked { .. },
                ..
            })
        ),
        "{stop:?}"
    );
    assert!(
        stop.message().contains("node n0 is not proven patched"),
        "{}",
        stop.message()
    );
    assert_eq!(states(&rec), [NodeState::Unproven, NodeState::Pending]);
    assert!(!changed(&h.fakes, "n1"));

    // The transport is fixed: the resume proves n0 first, then patches n1.
    h.fakes.edit("n0", |n| {
        n.probe_down = false;
        n.down_after_reboot = false;
    });
    let before = h.fakes.log().len();
    h.run(&mut rec).await.unwrap();
    assert_eq!(states(&rec), [NodeState::Done; 2]);
    assert_eq!(count_on(&h.fakes, "cordon", "n0"), cordons, "n0 not cordoned again");
    assert_eq!(count_on(&h.fakes, "reboot", "n0"), 1, "n0 not rebooted again");
    assert_eq!(count_on(&h.fakes, "upgrade", "n0"), 1, "n0 not upgraded again");
    let proof = rec.nodes[0].proof.as_ref().expect("proven");
    assert_eq!(proof.boot_id_after.as_deref(), Some("boot-2"));
    let log = h.fakes.log()[before..].to_vec();
    let at = |l: &str| {
        log.iter()
            .position(|x| x == l)
            .unwrap_or_else(|| panic!("{l} in {log:?}"))
    };
    assert!(at("probe n0") < at("probe n1"), "n0 proven first: {log:?}");
    assert!(h.fakes.node("n1").boot > 1, "n1 rebooted");
    assert_eq!(h.fakes.w().max_out, 1);
}

#[tokio::test(start_paused = true)]
async fn resume_of_an_unproven_node_whose_marker_is_back_fails_it_without_a_reboot() {
    let h = Harness::new(1);
    h.fakes.edit("n0", |n| n.down_after_reboot = true);
    let mut rec = record(1);
    h.run(&mut rec).await.unwrap_err();
    h.fakes.edit("n0", |n| {
        n.probe_down = false;
        n.reboot_required = true;
    });
    let stop = h.run(&mut rec).await.unwrap_err();
    assert!(
        stop.message().contains("/var/run/reboot-required is still there"),
        "{}",
        stop.message()
    );
    assert_eq!(states(&rec), [NodeState::Failed]);
    assert_eq!(h.fakes.count("reboot"), 1, "not rebooted by the check");
    assert!(!h.fakes.node("n0").unschedulable);
}
