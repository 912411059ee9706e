//! A node's turn as it should go: one node at a time, rebooted only when needed, put back
//! as it was found, Ubuntu (apt) and Azure Linux (tdnf) alike.

use super::*;

#[tokio::test(start_paused = true)]
async fn every_node_is_patched_and_rebooted_one_at_a_time() {
    let h = Harness::new(3);
    let mut rec = record(3);
    h.run(&mut rec).await.unwrap();
    assert_eq!(states(&rec), [NodeState::Done; 3]);
    for i in 0..3 {
        let n = h.fakes.node(&format!("n{i}"));
        assert_eq!(n.kernel, NEW);
        assert!(!n.unschedulable && n.marked.is_none());
        assert!(rec.nodes[i].rebooted && !rec.nodes[i].in_hand);
        assert_eq!(rec.nodes[i].kernel_before.as_deref(), Some(OLD));
        assert_eq!(rec.nodes[i].kernel_after.as_deref(), Some(NEW));
        assert_eq!(rec.nodes[i].packages_upgraded.len(), 2);
    }
    assert_eq!(h.fakes.w().max_out, 1, "never two nodes out");
    // The next node's packages are downloaded while the previous one reboots.
    let log = h.fakes.log();
    let at = |l: &str| {
        log.iter()
            .position(|x| x == l)
            .unwrap_or_else(|| panic!("{l} in {log:?}"))
    };
    assert!(at("reboot n0") < at("prefetch n1") && at("prefetch n1") < at("cordon n1"));
    assert_eq!(h.fakes.count("prefetch"), 2, "none after the last node");
    let first: Vec<String> = h.fakes.log().into_iter().filter(|l| l.ends_with(" n0")).collect();
    let names: Vec<&str> = first.iter().map(|l| l.split(' ').next().unwrap()).collect();
    let order = [
        "probe", "upgrade", "gate", "cordon", "drain", "reboot", "wait", "release",
    ];
    let mut at = 0;
    for step in names {
        if at < order.len() && step == order[at] {
            at += 1;
        }
    }
    assert_eq!(at, order.len(), "{first:?}");
}

#[tokio::test(start_paused = true)]
async fn the_check_after_a_reboot_runs_while_the_node_gets_ready() {
    let h = Harness::new(2);
    let mut rec = record(2);
    h.run(&mut rec).await.unwrap();
    assert_eq!(states(&rec), [NodeState::Done; 2]);
    // Once each node has its new bootID it is checked, before it is Ready again, and not
    // a second time after: the node is put back the moment it is Ready.
    assert_eq!(h.fakes.w().probed_not_ready, 2);
    assert_eq!(
        h.fakes.count("probe"),
        6,
        "per node: before the upgrade, after it, after the reboot"
    );
    for n in &rec.nodes {
        let verify = n.steps.iter().find(|s| s.name == StepName::Verify).unwrap();
        assert_eq!(verify.outcome, StepOutcome::Ok, "{:?}", verify.detail);
    }
}

#[tokio::test(start_paused = true)]
async fn a_node_that_needs_no_reboot_is_never_cordoned() {
    let h = Harness::new(1);
    h.fakes.edit("n0", |n| n.pending = vec!["openssl"]);
    let mut rec = record(1);
    h.run(&mut rec).await.unwrap();
    assert_eq!(states(&rec), [NodeState::Done]);
    assert_eq!(h.fakes.count("cordon"), 0);
    assert_eq!(h.fakes.count("reboot"), 0);
    assert!(!rec.nodes[0].rebooted);
}

#[tokio::test(start_paused = true)]
async fn a_node_cordoned_by_someone_else_is_patched_and_left_cordoned() {
    let h = Harness::new(1);
    h.fakes.edit("n0", |n| n.unschedulable = true);
    let mut rec = record(1);
    h.run(&mut rec).await.unwrap();
    assert_eq!(states(&rec), [NodeState::Done]);
    assert!(rec.nodes[0].was_cordoned && rec.nodes[0].rebooted);
    let n = h.fakes.node("n0");
    assert!(n.unschedulable && n.marked.is_none(), "unmarked, still cordoned");
    let steps = h.told.steps("n0");
    assert!(
        steps
            .iter()
            .any(|s| matches!(s, NodeStep::Cordoned { cordoned_before: true })),
        "{steps:?}"
    );
    assert!(
        steps
            .iter()
            .any(|s| matches!(s, NodeStep::Released(Release::StaysCordoned { node }) if node == "n0")),
        "{steps:?}"
    );
    assert!(matches!(steps.last(), Some(NodeStep::Done)), "{steps:?}");
}

#[tokio::test(start_paused = true)]
async fn reboot_never_and_always() {
    let mut h = Harness::new(1);
    h.options.reboot = RebootPolicy::Never;
    let mut rec = record(1);
    h.run(&mut rec).await.unwrap();
    assert_eq!(h.fakes.count("reboot"), 0);
    let mut h = Harness::new(1);
    h.options.reboot = RebootPolicy::Always;
    h.fakes.edit("n0", |n| n.pending = vec![]);
    let mut rec = record(1);
    h.run(&mut rec).await.unwrap();
    assert_eq!(
        h.fakes.count("reboot"),
        1,
        "always reboots, even with nothing to install"
    );
}

#[tokio::test(start_paused = true)]
async fn a_failed_download_ahead_changes_nothing_but_the_next_upgrade_downloads() {
    let h = Harness::new(2);
    h.fail("prefetch", PortError::new("mirror unreachable"));
    let mut rec = record(2);
    h.run(&mut rec).await.unwrap();
    assert_eq!(states(&rec), [NodeState::Done; 2]);
    assert_eq!(h.fakes.count("upgrade"), 2);
    assert_eq!(h.fakes.w().max_out, 1);
}

#[tokio::test(start_paused = true)]
async fn done_skipped_and_gone_nodes_are_not_touched_again() {
    let h = Harness::new(3);
    let mut rec = record(3);
    rec.nodes[0].state = NodeState::Done;
    rec.nodes[1].state = NodeState::Skipped;
    h.run(&mut rec).await.unwrap();
    assert!(!h.fakes.log().iter().any(|l| l.ends_with(" n0") || l.ends_with(" n1")));
    assert_eq!(rec.nodes[2].state, NodeState::Done);
}

#[tokio::test(start_paused = true)]
async fn azure_linux_nodes_are_upgraded_with_tdnf_between_ubuntu_nodes() {
    let h = Harness::new(3);
    h.fakes.edit("n1", |n| n.tdnf = true);
    let mut rec = record(3);
    h.run(&mut rec).await.unwrap();
    assert_eq!(states(&rec), [NodeState::Done; 3]);
    assert_eq!(h.fakes.w().max_out, 1, "never two nodes out");
    let cmds = h.fakes.w().commands.clone();
    assert_eq!(cmds.len(), 3);
    assert!(cmds[0].1.contains("apt-get") && !cmds[0].1.contains("tdnf"), "{cmds:?}");
    assert!(
        cmds[1].1.contains("dnf-automatic-install.service") && cmds[1].1.ends_with("sudo tdnf -y update --refresh"),
        "{cmds:?}"
    );
    assert!(cmds[2].1.contains("apt-get"), "{cmds:?}");
    // tdnf's output is parsed as tdnf's.
    let names: Vec<&str> = rec.nodes[1].packages_upgraded.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["kernel", "openssl"]);
    assert!(rec.nodes[1].upgrade_output.contains("Complete!"));
    // No download ahead for the Azure Linux node; the Ubuntu node after it has one.
    assert!(
        !h.fakes.log().contains(&"prefetch n1".to_string()),
        "{:?}",
        h.fakes.log()
    );
    assert!(h.fakes.log().contains(&"prefetch n2".to_string()));
}

#[tokio::test(start_paused = true)]
async fn a_failed_tdnf_names_its_error_and_cordons_nothing() {
    let h = Harness::new(1);
    h.fakes.edit("n0", |n| n.tdnf = true);
    h.fakes.w().apt_exit = 1;
    let mut rec = record(1);
    let e = h.run(&mut rec).await.unwrap_err();
    assert!(
        matches!(
            e.halt(),
            Some(Halt::UpgradeExited {
                manager: PackageManager::Tdnf,
                code: 1,
                last: Some(last),
                left: NodeLeft::NotCordoned,
                ..
            }) if last == "Error(1622) : Unable to download packages"
        ),
        "{e:?}"
    );
    let msg = e.message();
    assert!(
        msg.contains("(tdnf exit 1: Error(1622) : Unable to download packages)") && msg.contains("not cordoned"),
        "{msg}"
    );
    assert_eq!(h.fakes.count("cordon"), 0);
    assert_eq!(rec.nodes[0].state, NodeState::Failed);
}

#[tokio::test(start_paused = true)]
async fn security_mode_on_azure_linux_needs_consent_to_install_all() {
    let mut h = Harness::new(1);
    h.fakes.edit("n0", |n| n.tdnf = true);
    h.options.upgrade_mode = UpgradeMode::Security;
    let mut rec = record(1);
    let e = h.run(&mut rec).await.unwrap_err();
    assert!(
        matches!(
            e.halt(),
            Some(Halt::SecurityUnclassified {
                left: NodeLeft::NotCordoned,
                ..
            })
        ),
        "{e:?}"
    );
    assert!(!changed(&h.fakes, "n0"), "{:?}", h.fakes.log());

    h.options.azure_linux_security_as_all = true;
    let mut rec = record(1);
    h.run(&mut rec).await.unwrap();
    assert_eq!(states(&rec), [NodeState::Done]);
    let n = h.fakes.node("n0");
    assert_eq!(n.kernel, NEW);
    assert!(n.pending.is_empty(), "all updates, not none");
    assert!(h.fakes.w().commands[0].1.contains("tdnf -y update"));
}

#[tokio::test(start_paused = true)]
async fn azure_linux_2_is_patched_only_with_consent() {
    let mut h = Harness::new(1);
    h.fakes.edit("n0", |n| {
        n.tdnf = true;
        n.mariner = true
    });
    let mut rec = record(1);
    let e = h.run(&mut rec).await.unwrap_err();
    assert!(
        matches!(
            e.halt(),
            Some(Halt::EndOfSupport {
                left: NodeLeft::NotCordoned,
                ..
            })
        ),
        "{e:?}"
    );
    assert!(!changed(&h.fakes, "n0"));
    h.options.allow_azure_linux_2 = true;
    let mut rec = record(1);
    h.run(&mut rec).await.unwrap();
    assert_eq!(states(&rec), [NodeState::Done]);
}
