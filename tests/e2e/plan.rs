//! `apply`'s plan (the pre-flight and `--dry-run`) read with lists and probed in parallel:
//! what it shows does not depend on how many nodes are probed at once.

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_dry_run_shows_the_same_plan_whether_it_probes_one_node_or_four_at_once() {
    skip_unless_root!();
    let c = Cluster::start(None).await;
    let dry_run = |parallel: &'static str| {
        let c = &c;
        async move {
            let r = c
                .run(
                    &[
                        "apply",
                        "--one-at-a-time",
                        "--dry-run",
                        "--parallel",
                        parallel,
                        "-o",
                        "json",
                    ],
                    true,
                )
                .await;
            r.assert_code(0);
            r.json()
        }
    };
    let one = dry_run("1").await;
    let four = dry_run("4").await;
    // A plan worth comparing: nodes probed, drains planned with pods of several kinds.
    let plan = one["plan"].as_array().unwrap();
    assert!(plan.iter().filter(|p| p["action"] == "patch").count() >= 4, "{plan:?}");
    assert!(plan.iter().any(|p| p["kernel"].is_string()), "{plan:?}");
    let drains = one["drains"].as_array().unwrap();
    assert!(drains.iter().any(|d| !d["evict"].as_array().unwrap().is_empty()));
    assert!(drains.iter().any(|d| !d["refused"].as_array().unwrap().is_empty()));
    assert!(drains.iter().any(|d| !d["skipped"].as_array().unwrap().is_empty()));
    for key in [
        "plan",
        "drains",
        "healthGate",
        "kuredLockHolder",
        "wouldRefuse",
        "verdict",
    ] {
        assert_eq!(one[key], four[key], "{key} differs between --parallel 1 and 4");
    }
}
