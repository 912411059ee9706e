//! The planner on hand-built clusters: each rule alone, then together at scale.

use super::*;
use crate::kube::drain::IN_PROGRESS_ANNOTATION;
use crate::kube::snapshot::{POOL_LABEL, ZONE_LABEL};
use k8s_openapi::api::core::v1::{
    Container, NodeCondition, NodeSpec, NodeStatus, PodSpec, PodStatus, ResourceRequirements, Taint,
};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec, PodDisruptionBudgetStatus};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use std::collections::BTreeSet;

fn q(s: &str) -> Quantity {
    Quantity(s.into())
}

/// A Ready node of `pool` in `zone` with `cpu` cores and `gib` GiB allocatable.
fn node(name: &str, pool: &str, zone: Option<&str>, cpu: u32, gib: u32) -> Node {
    let mut labels: BTreeMap<String, String> = [(POOL_LABEL.to_string(), pool.to_string())].into();
    if let Some(z) = zone {
        labels.insert(ZONE_LABEL.into(), z.into());
    }
    Node {
        metadata: ObjectMeta {
            name: Some(name.into()),
            labels: Some(labels),
            ..Default::default()
        },
        spec: Some(NodeSpec::default()),
        status: Some(NodeStatus {
            allocatable: Some(
                [
                    ("cpu".to_string(), q(&cpu.to_string())),
                    ("memory".to_string(), q(&format!("{gib}Gi"))),
                    ("pods".to_string(), q("110")),
                ]
                .into(),
            ),
            conditions: Some(vec![NodeCondition {
                type_: "Ready".into(),
                status: "True".into(),
                ..Default::default()
            }]),
            ..Default::default()
        }),
    }
}

fn not_ready(mut n: Node) -> Node {
    n.status.as_mut().unwrap().conditions.as_mut().unwrap()[0].status = "False".into();
    n
}

fn cordoned(mut n: Node) -> Node {
    let spec = n.spec.get_or_insert_with(Default::default);
    spec.unschedulable = Some(true);
    spec.taints.get_or_insert_with(Vec::new).push(Taint {
        key: "node.kubernetes.io/unschedulable".into(),
        effect: "NoSchedule".into(),
        ..Default::default()
    });
    n
}

fn marked(mut n: Node, run: &str) -> Node {
    n.metadata.annotations = Some([(IN_PROGRESS_ANNOTATION.to_string(), run.to_string())].into());
    n
}

fn tainted(mut n: Node, key: &str, effect: &str) -> Node {
    n.spec
        .get_or_insert_with(Default::default)
        .taints
        .get_or_insert_with(Vec::new)
        .push(Taint {
            key: key.into(),
            effect: effect.into(),
            ..Default::default()
        });
    n
}

/// A pod of app `app` (a ReplicaSet's) on node `on`, requesting `millis` CPU and `mib` MiB.
fn pod(name: &str, app: &str, on: &str, millis: u32, mib: u32) -> Pod {
    Pod {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some("shop".into()),
            uid: Some(format!("uid-{name}")),
            labels: Some([("app".to_string(), app.to_string())].into()),
            owner_references: Some(vec![OwnerReference {
                api_version: "apps/v1".into(),
                kind: "ReplicaSet".into(),
                name: format!("{app}-rs"),
                uid: format!("rs-{app}"),
                controller: Some(true),
                ..Default::default()
            }]),
            ..Default::default()
        },
        spec: Some(PodSpec {
            node_name: Some(on.into()),
            containers: vec![Container {
                name: "main".into(),
                resources: Some(ResourceRequirements {
                    requests: Some(
                        [
                            ("cpu".to_string(), q(&format!("{millis}m"))),
                            ("memory".to_string(), q(&format!("{mib}Mi"))),
                        ]
                        .into(),
                    ),
                    ..Default::default()
                }),
                ..Default::default()
            }],
            ..Default::default()
        }),
        status: Some(PodStatus {
            phase: Some("Running".into()),
            ..Default::default()
        }),
    }
}

fn ready(mut p: Pod) -> Pod {
    p.status.as_mut().unwrap().conditions = Some(vec![k8s_openapi::api::core::v1::PodCondition {
        type_: "Ready".into(),
        status: "True".into(),
        ..Default::default()
    }]);
    p
}

fn daemonset_pod(name: &str, on: &str) -> Pod {
    let mut p = pod(name, "agent", on, 100, 64);
    let owner = &mut p.metadata.owner_references.as_mut().unwrap()[0];
    owner.kind = "DaemonSet".into();
    owner.name = "agent".into();
    p
}

fn pdb(app: &str, allowed: i32) -> PodDisruptionBudget {
    PodDisruptionBudget {
        metadata: ObjectMeta {
            name: Some(format!("{app}-pdb")),
            namespace: Some("shop".into()),
            ..Default::default()
        },
        spec: Some(PodDisruptionBudgetSpec {
            selector: Some(LabelSelector {
                match_labels: Some([("app".to_string(), app.to_string())].into()),
                ..Default::default()
            }),
            ..Default::default()
        }),
        status: Some(PodDisruptionBudgetStatus {
            disruptions_allowed: Some(allowed),
            ..Default::default()
        }),
    }
}

fn snapshot(nodes: Vec<Node>, pods: Vec<Pod>, pdbs: Vec<PodDisruptionBudget>) -> ClusterSnapshot {
    ClusterSnapshot { nodes, pods, pdbs }
}

fn rules(max: &str) -> BatchRules {
    BatchRules {
        max: max.parse().unwrap(),
        across_zones: false,
        drain: DrainOptions::default(),
        pending_taint: true,
    }
}

fn across(max: &str) -> BatchRules {
    BatchRules {
        across_zones: true,
        ..rules(max)
    }
}

fn names(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn batch(plan: BatchPlan) -> Batch {
    match plan {
        BatchPlan::Batch(b) => b,
        BatchPlan::Hold(why) => panic!("held: {why:?}"),
    }
}

fn hold(plan: BatchPlan) -> Vec<Hold> {
    match plan {
        BatchPlan::Hold(why) => why,
        BatchPlan::Batch(b) => panic!("a batch: {b:?}"),
    }
}

/// `n` empty nodes of pool `user` without zones, `n0`...
fn plain_nodes(n: usize) -> Vec<Node> {
    (0..n).map(|i| node(&format!("n{i}"), "user", None, 4, 16)).collect()
}

#[test]
fn max_unavailable_is_a_count_or_a_percentage() {
    assert_eq!("3".parse(), Ok(MaxUnavailable::Nodes(3)));
    assert_eq!("10%".parse(), Ok(MaxUnavailable::Percent(10)));
    assert_eq!("100%".parse(), Ok(MaxUnavailable::Percent(100)));
    assert_eq!(MaxUnavailable::Percent(10).to_string(), "10%");
    for junk in [
        "0",
        "0%",
        "101%",
        "-1",
        "1.5",
        "10 %",
        "%",
        "",
        "three",
        "5%%",
        "99999999999",
    ] {
        let err = junk.parse::<MaxUnavailable>().expect_err(junk);
        let text = err.to_string();
        assert!(text.contains("such as 3") && text.contains("such as 10%"), "{text}");
    }
}

#[test]
fn a_percentage_of_a_pool_is_rounded_down_and_at_least_one() {
    let ten = MaxUnavailable::Percent(10);
    assert_eq!(ten.budget(60), 6);
    assert_eq!(ten.budget(19), 1);
    assert_eq!(ten.budget(3), 1);
    assert_eq!(MaxUnavailable::Percent(100).budget(7), 7);
    assert_eq!(MaxUnavailable::Nodes(3).budget(100), 3, "a count ignores the size");
}

#[test]
fn out_of_service_counts_every_reason_but_the_nodes_in_hand() {
    let snap = snapshot(
        vec![
            node("ok", "user", None, 4, 16),
            not_ready(node("down", "user", None, 4, 16)),
            cordoned(node("theirs", "user", None, 4, 16)),
            marked(node("other-run", "system", None, 4, 16), "run-2"),
            tainted(
                node("unreachable", "user", None, 4, 16),
                "node.kubernetes.io/unreachable",
                "NoExecute",
            ),
            tainted(
                node("pending", "user", None, 4, 16),
                "aks-patch.io/pending",
                "PreferNoSchedule",
            ),
            cordoned(node("mine", "user", None, 4, 16)),
        ],
        vec![],
        vec![],
    );
    let out = out_of_service(&snap, &names(&["mine"]));
    let text: Vec<String> = out.iter().map(OutNode::to_string).collect();
    assert_eq!(
        text,
        [
            "down (NotReady)",
            "theirs (cordoned)",
            "other-run (out of service in aks-patch run run-2)",
            "unreachable (tainted node.kubernetes.io/unreachable:NoExecute)",
        ]
    );
    assert_eq!(out[2].pool.as_deref(), Some("system"));
}

#[test]
fn never_more_than_n_out_counting_nodes_down_for_other_reasons() {
    let mut nodes = plain_nodes(6);
    nodes[4] = not_ready(nodes[4].clone());
    nodes[5] = cordoned(nodes[5].clone());
    let snap = snapshot(nodes, vec![], vec![]);
    let b = batch(next_batch(&snap, &names(&["n0", "n1", "n2", "n3"]), &rules("3")));
    assert_eq!(b.nodes, ["n0"], "two of three are out already");
    assert_eq!(
        b.limits,
        [Limit::Budget {
            scope: Scope::Cluster,
            budget: 3,
            out: 2
        }]
    );
    let b = batch(next_batch(&snap, &names(&["n0", "n1", "n2", "n3"]), &rules("4")));
    assert_eq!(b.nodes, ["n0", "n1"]);
}

#[test]
fn a_spent_budget_holds_and_names_the_nodes_out() {
    let mut nodes = plain_nodes(4);
    nodes[2] = not_ready(nodes[2].clone());
    nodes[3] = marked(nodes[3].clone(), "run-9");
    let snap = snapshot(nodes, vec![], vec![]);
    let why = hold(next_batch(&snap, &names(&["n0", "n1"]), &rules("2")));
    assert_eq!(why.len(), 1, "{why:?}");
    assert_eq!(
        why[0].to_string(),
        "n0 waits: the cluster allows 2 node(s) out at once and has 2 out: n2 (NotReady), n3 (out of service in aks-patch run run-9)"
    );
}

#[test]
fn a_node_of_the_plan_already_out_is_not_counted_twice() {
    let mut nodes = plain_nodes(3);
    nodes[0] = cordoned(nodes[0].clone());
    let snap = snapshot(nodes, vec![], vec![]);
    let b = batch(next_batch(&snap, &names(&["n0", "n1", "n2"]), &rules("2")));
    assert_eq!(b.nodes, ["n0", "n1"]);
}

#[test]
fn a_percentage_budget_counts_each_pool_apart() {
    // Pool a: 10 nodes, one down; pool b: 10 nodes. 20% = 2 per pool.
    let mut nodes: Vec<Node> = (0..10).map(|i| node(&format!("a{i}"), "a", None, 4, 16)).collect();
    nodes.extend((0..10).map(|i| node(&format!("b{i}"), "b", None, 4, 16)));
    nodes[9] = not_ready(nodes[9].clone());
    let snap = snapshot(nodes, vec![], vec![]);
    let todo = names(&["a0", "b0", "a1", "b1", "a2", "b2"]);
    let b = batch(next_batch(&snap, &todo, &rules("20%")));
    assert_eq!(b.nodes, ["a0", "b0", "b1"], "one of pool a's two is down");
    assert_eq!(
        b.limits,
        [
            Limit::Budget {
                scope: Scope::Pool(Some("a".into())),
                budget: 2,
                out: 1
            },
            Limit::Budget {
                scope: Scope::Pool(Some("b".into())),
                budget: 2,
                out: 0
            }
        ]
    );
}

#[test]
fn a_batch_never_spans_zones_unless_told_to() {
    let nodes = vec![
        node("z1-a", "user", Some("westeurope-1"), 4, 16),
        node("z2-a", "user", Some("westeurope-2"), 4, 16),
        node("z1-b", "user", Some("westeurope-1"), 4, 16),
        node("none-a", "user", None, 4, 16),
        node("z1-c", "user", Some("westeurope-1"), 4, 16),
        node("none-b", "user", None, 4, 16),
    ];
    let todo: Vec<String> = nodes.iter().map(|n| node_name(n).to_string()).collect();
    let snap = snapshot(nodes, vec![], vec![]);
    let b = batch(next_batch(&snap, &todo, &rules("10")));
    assert_eq!(b.nodes, ["z1-a", "z1-b", "z1-c"]);
    assert_eq!(b.zone.as_deref(), Some("westeurope-1"));
    assert_eq!(
        b.limits,
        [Limit::Zone {
            zone: Some("westeurope-1".into()),
            waiting: 3
        }]
    );
    let b = batch(next_batch(&snap, &todo[3..], &rules("10")));
    assert_eq!(b.nodes, ["none-a", "none-b"], "nodes without a zone go together");
    assert_eq!(b.zone, None);
    let b = batch(next_batch(&snap, &todo, &across("10")));
    assert_eq!(b.nodes.len(), 6);
    assert!(b.limits.is_empty(), "{:?}", b.limits);
}

/// Four nodes of 4 cores; n0 and n1 run 3 cores of pods each, n2 and n3 are empty.
fn busy_cluster() -> ClusterSnapshot {
    let mut pods = vec![];
    for n in ["n0", "n1"] {
        for i in 0..3 {
            pods.push(pod(&format!("{n}-web-{i}"), "web", n, 1000, 256));
        }
    }
    snapshot(plain_nodes(4), pods, vec![])
}

#[test]
fn capacity_shrinks_a_batch_and_says_which_node_waits() {
    // n0's and n1's 6 cores fit on n2 and n3 (8 free); with n2 out too, all 6 would have to
    // go to n3 (4 cores): n2 waits, though it runs nothing itself.
    let snap = busy_cluster();
    let b = batch(next_batch(&snap, &names(&["n0", "n1", "n2"]), &rules("3")));
    assert_eq!(b.nodes, ["n0", "n1"]);
    let [Limit::Capacity { node: waits, pods }] = b.limits.as_slice() else {
        panic!("{:?}", b.limits);
    };
    assert_eq!(waits, "n2");
    assert_eq!(pods.len(), 2, "{pods:?}");
    assert!(
        pods[0].to_string().contains("Insufficient cpu on 1 node"),
        "{}",
        pods[0]
    );
    // A larger node: the three go together.
    let mut snap = busy_cluster();
    snap.nodes[3] = node("n3", "user", None, 8, 16);
    let b = batch(next_batch(&snap, &names(&["n0", "n1", "n2"]), &rules("3")));
    assert_eq!(b.nodes, ["n0", "n1", "n2"]);
}

#[test]
fn a_node_whose_pods_fit_nowhere_holds_the_run_naming_them() {
    let mut nodes = plain_nodes(2);
    nodes[1] = node("n1", "user", None, 1, 16);
    let snap = snapshot(
        nodes,
        vec![
            pod("big-0", "big", "n0", 2000, 512),
            pod("small-0", "small", "n0", 100, 64),
        ],
        vec![],
    );
    let why = hold(next_batch(&snap, &names(&["n0"]), &rules("1")));
    assert_eq!(
        why,
        [Hold::NoRoom {
            node: "n0".into(),
            pods: vec![Stranded {
                pod: PodRef {
                    namespace: "shop".into(),
                    name: "big-0".into(),
                    uid: "uid-big-0".into()
                },
                why: Nowhere::NoneMatches(vec![crate::kube::schedule::Constraint::Room {
                    requests: Resources {
                        cpu_millis: 2000,
                        memory_bytes: 512 << 20,
                        pods: 1
                    },
                    short: vec![(crate::kube::schedule::room::Shortage::Cpu, 1)]
                }])
            }]
        }]
    );
    assert_eq!(
        why[0].to_string(),
        "n0 waits: pods it evicts would fit nowhere: shop/big-0 (no other schedulable Ready node has room for its requests of cpu 2, memory 512Mi (Insufficient cpu on 1 node))"
    );
}

#[test]
fn daemonset_pods_stay_and_need_no_room() {
    let mut nodes = plain_nodes(2);
    nodes[1] = node("n1", "user", None, 1, 16);
    let snap = snapshot(
        nodes,
        vec![daemonset_pod("agent-0", "n0"), daemonset_pod("agent-1", "n1")],
        vec![],
    );
    // n1 has 900m free; n0's DaemonSet pod does not move.
    let b = batch(next_batch(&snap, &names(&["n0"]), &rules("1")));
    assert_eq!(b.nodes, ["n0"]);
}

#[test]
fn two_nodes_whose_pods_share_a_tight_pdb_go_in_different_batches() {
    let snap = snapshot(
        plain_nodes(5),
        vec![
            pod("db-0", "db", "n0", 100, 64),
            pod("db-1", "db", "n1", 100, 64),
            pod("db-2", "db", "n2", 100, 64),
            pod("web-0", "web", "n3", 100, 64),
        ],
        vec![pdb("db", 2)],
    );
    let b = batch(next_batch(&snap, &names(&["n0", "n1", "n2", "n3"]), &rules("4")));
    assert_eq!(b.nodes, ["n0", "n1", "n3"]);
    assert_eq!(
        b.limits,
        [Limit::Pdb {
            node: "n2".into(),
            pdb: ObjectRef::new("shop", "db-pdb"),
            allowed: 2,
            evicted: 3
        }]
    );
    assert!(b.limits[0].to_string().contains("allows 2 disruption(s)"));
}

#[test]
fn a_pdb_that_allows_no_disruption_holds_the_next_node() {
    let snap = snapshot(
        plain_nodes(3),
        vec![ready(pod("db-0", "db", "n0", 100, 64))],
        vec![pdb("db", 0)],
    );
    let why = hold(next_batch(&snap, &names(&["n0", "n1"]), &rules("2")));
    assert_eq!(
        why,
        [Hold::Pdb {
            node: "n0".into(),
            pdb: ObjectRef::new("shop", "db-pdb"),
            pods: vec![PodRef {
                namespace: "shop".into(),
                name: "db-0".into(),
                uid: "uid-db-0".into()
            }],
            not_ready: vec![],
        }]
    );
    // What it waits for: a pod of the budget on a node that went down.
    let mut down = pod("db-1", "db", "n2", 100, 64);
    down.status.as_mut().unwrap().conditions = Some(vec![k8s_openapi::api::core::v1::PodCondition {
        type_: "Ready".into(),
        status: "False".into(),
        ..Default::default()
    }]);
    let mut nodes = plain_nodes(3);
    nodes[2] = not_ready(nodes[2].clone());
    let snap = snapshot(
        nodes,
        vec![ready(pod("db-0", "db", "n0", 100, 64)), down],
        vec![pdb("db", 0)],
    );
    let why = hold(next_batch(&snap, &names(&["n0", "n1"]), &rules("2")));
    assert_eq!(
        why[0].to_string(),
        "n0 waits: PodDisruptionBudget shop/db-pdb allows no disruption now (it covers shop/db-0); not Ready: shop/db-1 on n2"
    );
    // One disruption allowed: the node goes alone even with two of its pods (the drain
    // evicts them one after the other).
    let snap = snapshot(
        plain_nodes(3),
        vec![pod("db-0", "db", "n0", 100, 64), pod("db-1", "db", "n0", 100, 64)],
        vec![pdb("db", 1)],
    );
    assert_eq!(batch(next_batch(&snap, &names(&["n0"]), &rules("2"))).nodes, ["n0"]);
}

#[test]
fn a_prefer_no_schedule_taint_does_not_keep_pods_off() {
    let pending = |n: Node| tainted(n, "aks-patch.io/pending", "PreferNoSchedule");
    let nodes = vec![
        node("n0", "user", None, 4, 16),
        pending(node("n1", "user", None, 4, 16)),
    ];
    let snap = snapshot(nodes, vec![pod("web-0", "web", "n0", 1000, 256)], vec![]);
    assert_eq!(batch(next_batch(&snap, &names(&["n0"]), &rules("1"))).nodes, ["n0"]);
    let hard = |n: Node| tainted(n, "dedicated", "NoSchedule");
    let nodes = vec![node("n0", "user", None, 4, 16), hard(node("n1", "user", None, 4, 16))];
    let snap = snapshot(nodes, vec![pod("web-0", "web", "n0", 1000, 256)], vec![]);
    let why = hold(next_batch(&snap, &names(&["n0"]), &rules("1")));
    assert!(
        why[0]
            .to_string()
            .contains("tolerates the taints (n1: dedicated:NoSchedule)"),
        "{}",
        why[0]
    );
}

#[test]
fn the_check_before_each_cordon_counts_the_batch_and_nodes_gone_down_meanwhile() {
    let mut nodes = plain_nodes(5);
    let snap = snapshot(nodes.clone(), vec![], vec![]);
    let batch_so_far = names(&["n0", "n1"]);
    assert_eq!(budget_allows(&snap, &batch_so_far, "n2", &rules("3")), Ok(()));
    assert_eq!(
        budget_allows(&snap, &batch_so_far, "n1", &rules("2")),
        Ok(()),
        "n1 is in it"
    );
    nodes[4] = not_ready(nodes[4].clone());
    let snap = snapshot(nodes, vec![], vec![]);
    let out = budget_allows(&snap, &batch_so_far, "n2", &rules("3")).unwrap_err();
    let text: Vec<String> = out.iter().map(OutNode::to_string).collect();
    assert_eq!(text, ["n4 (NotReady)", "n0 (in this batch)", "n1 (in this batch)"]);
}

#[test]
fn the_plan_of_sixty_nodes_in_three_zones_at_ten_percent() {
    // 60 nodes of 4 cores and 16 GiB, zones interleaved in plan order, each half full with
    // pods of 4 apps; each app has a PDB allowing 8 disruptions.
    let zones = ["westeurope-1", "westeurope-2", "westeurope-3"];
    let mut nodes = vec![];
    let mut pods = vec![];
    for i in 0..60 {
        let name = format!("aks-user-{i:02}");
        nodes.push(node(&name, "user", Some(zones[i % 3]), 4, 16));
        for (k, app) in ["web", "api", "cache", "worker"].iter().enumerate() {
            pods.push(pod(&format!("{app}-{i:02}-{k}"), app, &name, 500, 2048));
        }
    }
    let pdbs = ["web", "api", "cache", "worker"].iter().map(|a| pdb(a, 8)).collect();
    let todo: Vec<String> = nodes.iter().map(|n| node_name(n).to_string()).collect();
    let snap = snapshot(nodes, pods, pdbs);
    let plan = plan_batches(&snap, &todo, &rules("10%"));
    assert_eq!(plan.held, None);
    let mut seen = BTreeSet::new();
    for b in &plan.batches {
        assert!(!b.nodes.is_empty() && b.nodes.len() <= 6, "{b:?}");
        let zone = b.zone.as_deref().expect("a zone");
        for n in &b.nodes {
            assert_eq!(snap.node(n).and_then(zone_of), Some(zone), "{b:?}");
            assert!(seen.insert(n.clone()), "{n} twice");
        }
    }
    assert_eq!(seen.len(), 60);
    // 20 nodes a zone make at least 4 batches a zone; the first batch's pods land on nodes
    // still to do (there is nowhere else yet) and may make a later batch smaller for a PDB.
    let full = plan.batches.iter().filter(|b| b.nodes.len() == 6).count();
    assert!(plan.batches.len() <= 13 && full >= 8, "{:?}", plan.batches);
}

#[test]
fn a_plan_moves_the_pods_of_each_batch_where_they_were_placed() {
    // Two batches of one: n0's pods land on n2 (the emptiest), so n2's drain later moves
    // them again, and they must still fit.
    let nodes = vec![
        node("n0", "user", None, 4, 16),
        node("n1", "user", None, 4, 16),
        node("n2", "user", None, 4, 16),
    ];
    let pods = vec![pod("a-0", "a", "n0", 3000, 256), pod("b-0", "b", "n1", 1000, 256)];
    let snap = snapshot(nodes, pods, vec![]);
    let plan = plan_batches(&snap, &names(&["n0", "n2", "n1"]), &rules("1"));
    assert_eq!(plan.held, None);
    let order: Vec<&[String]> = plan.batches.iter().map(|b| b.nodes.as_slice()).collect();
    assert_eq!(order, [names(&["n0"]), names(&["n2"]), names(&["n1"])]);
    // Both 3-core pods together would fit nowhere: n1's 1 core moves to n0 or n2, and the
    // plan only holds if it lost track of where a-0 went.
    let plan = plan_batches(&snap, &names(&["n0", "n1", "n2"]), &rules("2"));
    assert_eq!(plan.held, None, "{plan:?}");
}

#[test]
fn with_the_pending_taint_the_plan_moves_each_pod_once() {
    // n0's pod goes, with the taint, to `done` (not in the run) rather than to the emptier
    // n1, which would evict it again; without the taint it lands on n1 and moves twice.
    let nodes = vec![
        node("n0", "user", None, 4, 16),
        node("n1", "user", None, 8, 16),
        node("done", "user", None, 2, 16),
    ];
    let snap = snapshot(nodes, vec![pod("a-0", "a", "n0", 1000, 256)], vec![]);
    let todo = names(&["n0", "n1"]);
    let plan = plan_batches(&snap, &todo, &rules("1"));
    assert_eq!((plan.moves, plan.moved_again), (1, 0), "{plan:?}");
    let without = BatchRules {
        pending_taint: false,
        ..rules("1")
    };
    let plan = plan_batches(&snap, &todo, &without);
    assert_eq!((plan.moves, plan.moved_again), (2, 1), "{plan:?}");
}
