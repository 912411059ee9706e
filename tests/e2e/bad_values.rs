//! Bad values on the command line, end to end: each is a usage error (exit 2) that names the
//! value and the fix, before any server is contacted. The proof of "no contact": every ARM and
//! Kubernetes API request would meet an injected failure, and none of them was spent.

use crate::common::*;
use aks_sim::Fault;

const TRIPWIRE: u32 = 1000;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_values_are_usage_errors_naming_the_value_before_any_server_is_contacted() {
    skip_unless_root!();
    let c = Cluster::start(Some(SMALL)).await;
    c.sim
        .fault(Fault::KubeError {
            count: TRIPWIRE,
            status: 503,
        })
        .unwrap();
    c.sim
        .fault(Fault::ArmError {
            count: TRIPWIRE,
            status: 503,
        })
        .unwrap();
    let cases: &[(&[&str], &[&str])] = &[
        (
            &["--node-budget", "0", "--window", "01:00-05:00"],
            &["'0'", "--node-budget", "above zero"],
        ),
        (
            &["--node-budget", "-5m", "--window", "01:00-05:00"],
            &["'-5m'", "--node-budget", "negative", "above zero"],
        ),
        (&["--blocker-wait", "-5s"], &["'-5s'", "--blocker-wait", "negative"]),
        (
            &["--time-zone", "Mars/Olympus"],
            &["`Mars/Olympus`", "unknown time zone", "Europe/Berlin"],
        ),
        (
            &["--time-zone", "Mars/Olympus", "--window", "01:00-05:00"],
            &["`Mars/Olympus`", "unknown time zone", "Europe/Berlin"],
        ),
        (&["--window", "25:00-26:00"], &["`25:00-26:00`", "HH:MM"]),
        (
            &["--via", "kube", "--node-shell-image", ""],
            &["''", "--node-shell-image", "an empty value"],
        ),
        (&["--nodes", ""], &["''", "--nodes", "an empty value"]),
        (&["--nodes", "a,,b"], &["--nodes", "an empty value", "a,,b"]),
        (&["--nodepool", "nodes,"], &["--nodepool", "an empty value"]),
        (&["--notify-url", ""], &["--notify-url", "an empty value"]),
        (&["--ssh-timeout", "0"], &["'0'", "--ssh-timeout"]),
        (
            &["--resume", "--resume-or-start"],
            &["--resume-or-start", "cannot be used with", "--resume"],
        ),
    ];
    for (extra, want) in cases {
        let r = c.run(&apply_args(extra), true).await;
        assert_eq!(r.code, 2, "{extra:?}: exit code\n{}", r.stderr);
        for w in *want {
            assert!(r.stderr.contains(w), "{extra:?}: says {w}:\n{}", r.stderr);
        }
        assert!(r.stdout.is_empty(), "{extra:?}: {}", r.stdout);
    }
    let faults = c.sim.shared.faults.describe();
    assert_eq!(faults["kubeErrorLeft"], TRIPWIRE, "no Kubernetes API request was made");
    assert_eq!(faults["armErrorLeft"], TRIPWIRE, "no ARM request was made");
    assert!(c.events().iter().all(|e| e.kind != "ssh-session"), "no SSH session");
    assert!(c.lock_free());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_valid_time_zone_without_a_window_is_accepted() {
    skip_unless_root!();
    // Checked, then harmless: a script may pass the same --time-zone to every run.
    let c = Cluster::start(Some(SMALL)).await;
    let r = c
        .run(&apply_args(&["--time-zone", "Europe/Berlin", "--dry-run"]), true)
        .await;
    r.assert_code(0);
}
