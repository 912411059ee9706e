//! `apply --max-unavailable`: batches of nodes at once, proven from aks-sim's event log:
//! never more nodes out than the budget (a node down for another reason counted), every node
//! patched, and a node dying mid-run shrinking the next batch.

use crate::common::*;
use std::time::Duration;

const NEW_KERNEL: &str = "5.15.0-1073-azure";

/// `apply --max-unavailable MAX`, without a prompt, evictions retried every second; then
/// `extra`.
fn batch_args<'a>(max: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec![
        "apply",
        "--max-unavailable",
        max,
        "--yes",
        "--eviction-retry-interval",
        "1",
        "--delete-emptydir-data",
        "--force",
    ];
    v.extend_from_slice(extra);
    v
}

/// The nodes cordoned (by the run) when, with them, more than `max` nodes were out: cordoned,
/// or rebooting until Ready again (a node that never returns stays out).
fn cordons_beyond(events: &[aks_sim::SimEvent], max: usize) -> Vec<String> {
    use std::collections::BTreeSet;
    let (mut cordoned, mut rebooting) = (BTreeSet::new(), BTreeSet::new());
    let mut crowded = vec![];
    for e in events {
        let Some(n) = e.node.clone() else { continue };
        match e.kind.as_str() {
            "cordon" => {
                cordoned.insert(n.clone());
                let out: BTreeSet<&String> = cordoned.iter().chain(rebooting.iter()).collect();
                if out.len() > max {
                    crowded.push(format!("{n} with {out:?}"));
                }
            }
            "uncordon" => {
                cordoned.remove(&n);
            }
            "reboot" => {
                rebooting.insert(n);
            }
            "node-ready" => {
                rebooting.remove(&n);
            }
            _ => {}
        }
    }
    crowded
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn max_unavailable_patches_every_node_in_batches_never_more_out_than_allowed() {
    skip_unless_root!();
    let c = Cluster::start(Some(&small_with(6, 1.0))).await;
    let r = c.run(&batch_args("3", &[]), true).await;
    r.assert_code(0);
    for i in 0..6 {
        let n = small_node(i);
        assert_eq!(c.kernel(&n), NEW_KERNEL, "{n} patched");
        assert!(!c.unschedulable(&n), "{n} back in service");
    }
    let out = max_nodes_out(&c.events(), &[]);
    assert!(out <= 3, "at most three nodes out at once, saw {out}");
    assert!(out >= 2, "nodes went out together (saw at most {out} at once)");
    assert!(r.stderr.contains("batch 1 of "), "{}", r.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_dying_mid_run_counts_against_the_budget_and_shrinks_the_next_batch() {
    skip_unless_root!();
    let c = Cluster::start(Some(&small_with(6, 3.0))).await;
    let dying = small_node(5);
    let plan: Vec<String> = (0..5).map(small_node).collect();
    let nodes = plan.join(",");
    let run = c.start_job(&batch_args("2", &["--nodes", &nodes]));
    // While the first batch reboots, a node outside the run goes down for good.
    c.wait_for_event("reboot", None, Duration::from_secs(120)).await;
    c.take_down(&dying).await;
    let r = run.finish().await;
    r.assert_code(0);
    for n in &plan {
        assert_eq!(c.kernel(n), NEW_KERNEL, "{n} patched");
    }
    // The dead node is out from its reboot on: no node was taken out while two were.
    let crowded = cordons_beyond(&c.events(), 2);
    assert!(crowded.is_empty(), "cordoned while the budget was spent: {crowded:?}");
    // Without the dead node the batches would be 2, 2, 1: the next one after it has one node.
    let second = r
        .stderr
        .lines()
        .find(|l| l.starts_with("batch 2 of "))
        .unwrap_or_else(|| panic!("a second batch: {}", r.stderr));
    assert!(second.contains(": 1 node(s): "), "{second}\n{}", r.stderr);
}
