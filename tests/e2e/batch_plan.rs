//! The batch planner on aks-sim's 60-node, three-zone scenario (`sim/scenarios/batches.yaml`):
//! the cluster read in three lists as the engine reads it, then planned at 10% per pool. What
//! the emulator serves (allocatable from the VM size, workloads' requests, PDBs' allowances,
//! zone labels) is what the planner decides on.

use crate::common::*;
use aks_patch::kube::snapshot::{self, zone_of};
use aks_patch::kube::{client_from_kubeconfig_file, DrainOptions};
use aks_patch::rollout::batches::{plan_batches, BatchRules, MaxUnavailable};
use std::collections::{BTreeMap, BTreeSet};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixty_nodes_in_three_zones_are_planned_zone_by_zone_within_ten_percent_of_each_pool() {
    skip_unless_root!();
    let c = Cluster::start(Some(include_str!("../../sim/scenarios/batches.yaml"))).await;
    let client = client_from_kubeconfig_file(&c.kubeconfig(), None)
        .await
        .expect("client from the emulator's kubeconfig");
    let cluster = snapshot::read(&client).await.expect("the cluster reads");
    assert_eq!(cluster.nodes.len(), 60);
    assert!(cluster.pdbs.len() >= 4, "the shop's PDBs: {}", cluster.pdbs.len());
    let todo: Vec<String> = cluster
        .nodes
        .iter()
        .map(|n| snapshot::node_name(n).to_string())
        .collect();
    let pool: BTreeMap<String, String> = cluster
        .nodes
        .iter()
        .map(|n| {
            let p = snapshot::pool_of(n).expect("a pool label").to_string();
            (snapshot::node_name(n).to_string(), p)
        })
        .collect();
    let rules = BatchRules {
        max: MaxUnavailable::Percent(10),
        across_zones: false,
        drain: DrainOptions {
            delete_emptydir_data: true,
            ..Default::default()
        },
        pending_taint: true,
    };
    let plan = plan_batches(&cluster, &todo, &rules);
    assert_eq!(plan.held, None, "{plan:?}");
    let mut seen = BTreeSet::new();
    for b in &plan.batches {
        let zone = b.zone.as_deref().expect("every node has a zone");
        let mut per_pool: BTreeMap<&str, usize> = BTreeMap::new();
        for n in &b.nodes {
            assert_eq!(cluster.node(n).and_then(zone_of), Some(zone), "{b:?}");
            *per_pool.entry(pool[n].as_str()).or_default() += 1;
            assert!(seen.insert(n.clone()), "{n} twice");
        }
        // 10% of 57 user nodes is 5; of 3 system nodes, 1.
        assert!(per_pool.get("user").copied().unwrap_or(0) <= 5, "{b:?}");
        assert!(per_pool.get("system").copied().unwrap_or(0) <= 1, "{b:?}");
    }
    assert_eq!(seen.len(), 60, "every node has a batch");
    // Far fewer steps than one node at a time: the figure the benchmark turns into time.
    assert!(plan.batches.len() <= 20, "{} batches", plan.batches.len());
    // With the pending taint most evicted pods go to nodes already done: few move twice.
    let per_pod = plan.moves as f64 / plan.pods_moved as f64;
    assert!(per_pod <= 1.2, "{} moves of {} pods", plan.moves, plan.pods_moved);
}
