//! Maintenance windows and the operator's blockers hold the next cordon, never a node
//! already out.

use super::*;

/// Daily 00:00-01:00 UTC, a node budget of 20 minutes, the clock at `at`.
fn window_at(at: &str) -> Option<WindowPolicy> {
    let mut schedule = Schedule::new("UTC").unwrap();
    schedule.add_daily(crate::rollout::window::DailyWindow::parse("00:00-01:00").unwrap());
    Some(WindowPolicy {
        schedule,
        budget: Duration::from_secs(20 * 60),
        clock: Arc::new(PausedClock::at(at)),
    })
}

#[tokio::test(start_paused = true)]
async fn outside_the_window_nothing_is_touched_and_the_next_opening_is_given() {
    let h = Harness {
        window: window_at("2026-12-02T12:00:00Z"),
        ..Harness::new(2)
    };
    let mut rec = record(2);
    let stop = h.run(&mut rec).await.unwrap_err();
    let RunStop::OutsideWindow(msg) = &stop else {
        panic!("{stop:?}")
    };
    assert!(
        msg.contains("not starting node n0") && msg.contains("outside the maintenance window"),
        "{msg}"
    );
    assert!(msg.contains("the next window opens 2026-12-03T00:00:00Z"), "{msg}");
    // Only the pending taint was put on, and it is off again.
    let touched: Vec<String> = h
        .fakes
        .log()
        .into_iter()
        .filter(|l| !l.starts_with("taint ") && !l.starts_with("untaint "))
        .collect();
    assert!(touched.is_empty(), "{touched:?}");
    assert!(h.fakes.tainted().is_empty());
    assert_eq!(states(&rec), [NodeState::Pending; 2]);
}

#[tokio::test(start_paused = true)]
async fn a_window_that_closes_mid_run_stops_between_nodes_and_resume_finishes_in_the_next() {
    let h = Harness {
        window: window_at("2026-12-02T00:39:00Z"),
        ..Harness::new(3)
    };
    // n0 takes over two minutes: n1 would no longer be back by 01:00.
    h.fakes.edit("n0", |n| n.boot_secs = 120);
    let mut rec = record(3);
    let stop = h.run(&mut rec).await.unwrap_err();
    let RunStop::OutsideWindow(msg) = &stop else {
        panic!("{stop:?}")
    };
    assert!(
        msg.contains("not starting node n1") && msg.contains("closes 2026-12-02T01:00:00Z"),
        "{msg}"
    );
    assert_eq!(states(&rec), [NodeState::Done, NodeState::Pending, NodeState::Pending]);
    assert!(!changed(&h.fakes, "n1") && !changed(&h.fakes, "n2"));
    for i in 0..3 {
        let n = h.fakes.node(&format!("n{i}"));
        assert!(!n.unschedulable && n.marked.is_none(), "n{i} left out");
    }
    // The next night: the rest is done, n0 is not touched again.
    let h2 = Harness {
        fakes: h.fakes.clone(),
        window: window_at("2026-12-03T00:00:00Z"),
        ..Harness::new(0)
    };
    h2.run(&mut rec).await.unwrap();
    assert_eq!(states(&rec), [NodeState::Done; 3]);
    assert_eq!(h.fakes.count("upgrade"), 3, "each node upgraded once");
    assert_eq!(h.fakes.w().max_out, 1);
}

#[tokio::test(start_paused = true)]
async fn a_window_too_short_for_the_reboot_stops_before_the_cordon_with_the_packages_upgraded() {
    // Fits at the start (00:39:56 + 20m), not after the 5 s upgrade.
    let h = Harness {
        window: window_at("2026-12-02T00:39:56Z"),
        ..Harness::new(1)
    };
    let mut rec = record(1);
    let stop = h.run(&mut rec).await.unwrap_err();
    let RunStop::OutsideWindow(msg) = &stop else {
        panic!("{stop:?}")
    };
    assert!(
        msg.contains("not taking node n0 out") && msg.contains("before a node taking about 20m"),
        "{msg}"
    );
    assert_eq!(rec.nodes[0].state, NodeState::Upgraded);
    assert_eq!(h.fakes.count("cordon"), 0);
    let h2 = Harness {
        fakes: h.fakes.clone(),
        window: window_at("2026-12-03T00:00:00Z"),
        ..Harness::new(0)
    };
    h2.run(&mut rec).await.unwrap();
    assert_eq!(states(&rec), [NodeState::Done]);
    assert_eq!(h.fakes.count("upgrade"), 1, "not upgraded twice");
    assert_eq!(h.fakes.node("n0").kernel, NEW);
}

/// An alert that fires until `clears_at` (paused time); records the nodes it was asked for.
struct FakeAlert {
    clears_at: Instant,
    asked: Mutex<Vec<Option<String>>>,
}

#[async_trait]
impl BlockerSource for FakeAlert {
    async fn holds(&self, node: Option<&str>) -> Vec<crate::rollout::blockers::Hold> {
        self.asked.lock().unwrap().push(node.map(str::to_string));
        if Instant::now() < self.clears_at {
            vec![crate::rollout::blockers::Hold::Alert {
                name: "BackupRunning".into(),
                state: "firing".into(),
            }]
        } else {
            vec![]
        }
    }
}

fn alert_for(secs: u64, wait: u64) -> (Arc<FakeAlert>, Option<BlockerPolicy>) {
    let a = Arc::new(FakeAlert {
        clears_at: Instant::now() + Duration::from_secs(secs),
        asked: Mutex::new(vec![]),
    });
    let p = BlockerPolicy {
        source: a.clone(),
        wait: Duration::from_secs(wait),
        poll: Duration::from_secs(2),
    };
    (a, Some(p))
}

#[tokio::test(start_paused = true)]
async fn a_firing_alert_holds_the_cordon_and_the_run_goes_on_once_it_clears() {
    let (alert, blockers) = alert_for(60, 600);
    let h = Harness {
        blockers,
        ..Harness::new(2)
    };
    let mut rec = record(2);
    let t0 = Instant::now();
    h.run(&mut rec).await.unwrap();
    assert_eq!(states(&rec), [NodeState::Done; 2]);
    assert!(t0.elapsed() >= Duration::from_secs(60), "it waited for the alert");
    assert!(
        alert.asked.lock().unwrap().contains(&Some("n0".to_string())),
        "asked for the node"
    );
    assert_eq!(h.fakes.w().max_out, 1);
}

#[tokio::test(start_paused = true)]
async fn a_blocker_that_does_not_clear_stops_the_run_as_blocked_before_the_cordon_and_resume_finishes() {
    let (_alert, blockers) = alert_for(3600, 30);
    let h = Harness {
        blockers,
        ..Harness::new(1)
    };
    let mut rec = record(1);
    let stop = h.run(&mut rec).await.unwrap_err();
    let RunStop::Blocked(msg) = &stop else {
        panic!("{stop:?}")
    };
    assert!(
        msg.contains("not taking node n0 out")
            && msg.contains("alert BackupRunning is firing")
            && msg.contains("--blocker-wait"),
        "{msg}"
    );
    assert_eq!(rec.nodes[0].state, NodeState::Upgraded);
    assert_eq!(h.fakes.count("cordon"), 0);
    // Once it has cleared, --resume reboots the node without upgrading it again.
    let h2 = Harness {
        fakes: h.fakes.clone(),
        ..Harness::new(0)
    };
    h2.run(&mut rec).await.unwrap();
    assert_eq!(states(&rec), [NodeState::Done]);
    assert_eq!(h.fakes.count("upgrade"), 1);
}
