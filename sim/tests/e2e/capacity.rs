//! Node capacity as a user sees it with kubectl: allocatable CPU and memory that follow the
//! pool's VM size, a scheduler that fits pods' requests into it (pods too big stay Pending
//! with kube-scheduler's `FailedScheduling` message) and prefers nodes without a
//! `PreferNoSchedule` taint, and zone labels.

use crate::common::{eventually, Emulator};
use serde_json::Value;
use std::time::Duration;

const SMALL: &str = "aks-small-10000001-vmss000000";
const BIG: &str = "aks-big-10000002-vmss000000";

/// Two Linux pools of different sizes, a zonal and a non-zonal one, and a Windows pool.
const SIZES: &str = r#"
cluster: {name: aks-capacity, location: westeurope}
pools:
  - {name: small, mode: System, count: 1, vmSize: Standard_D2s_v5, vmssId: "10000001"}
  - {name: big, count: 4, vmSize: Standard_E8s_v5, vmssId: "10000002", zones: ["1", "2", "3"]}
  - {name: win, osType: Windows, count: 1, vmSize: Standard_D4s_v5}
"#;

/// `kubectl get -o json ARGS`, parsed.
async fn get_json(env: &Emulator, args: &[&str]) -> Value {
    let mut all = vec!["get", "-o", "json"];
    all.extend_from_slice(args);
    let (ok, out, err) = env.kubectl(&all).await;
    assert!(ok, "kubectl {all:?}: {err}");
    serde_json::from_str(&out).expect("kubectl prints JSON")
}

/// The FailedScheduling events of pod `ns/name`, their messages.
async fn failed_scheduling(env: &Emulator, ns: &str, name: &str) -> Vec<String> {
    let events = get_json(env, &["events", "-n", ns]).await;
    events["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["involvedObject"]["name"] == name && e["reason"] == "FailedScheduling")
        .map(|e| e["message"].as_str().unwrap_or("").to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_allocatable_follows_its_vm_size() {
    skip_unless_root!();
    let env = Emulator::start_yaml(SIZES, "capacity.rs").await;
    let (ok, out, err) = env
        .kubectl(&[
            "get",
            "nodes",
            "-o",
            "custom-columns=NAME:.metadata.name,TYPE:.metadata.labels.node\\.kubernetes\\.io/instance-type,CPU:.status.capacity.cpu,ACPU:.status.allocatable.cpu,MEM:.status.capacity.memory,AMEM:.status.allocatable.memory,PODS:.status.allocatable.pods",
            "--no-headers",
        ])
        .await;
    assert!(ok, "{err}");
    let rows: Vec<Vec<&str>> = out.lines().map(|l| l.split_whitespace().collect()).collect();
    let row = |name: &str| {
        rows.iter()
            .find(|r| r[0] == name)
            .unwrap_or_else(|| panic!("no node {name} in\n{out}"))
            .clone()
    };
    // 2 vCPUs, 8 GiB: 100m reserved; min(20 Mi × 110 + 50 Mi, 2 GiB) = 2 GiB, 100 Mi eviction.
    assert_eq!(
        row(SMALL),
        [SMALL, "Standard_D2s_v5", "2", "1900m", "8388608Ki", "6189056Ki", "110"]
    );
    // 8 vCPUs, 64 GiB: 180m reserved; 2,250 Mi kube-reserved, 100 Mi eviction.
    let big = row(BIG);
    assert_eq!(
        big,
        [BIG, "Standard_E8s_v5", "8", "7820m", "67108864Ki", "64702464Ki", "110"]
    );
    // Windows: 30 pods, so 650 Mi kube-reserved, and 2 GiB more for the system.
    let win = row("akswin000000");
    assert_eq!(&win[1..4], ["Standard_D4s_v5", "4", "3860m"]);
    assert_eq!(win[5], format!("{}Ki", (16 * 1024 - 650 - 100 - 2048) * 1024));
    assert_eq!(win[6], "30");
    env.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_of_a_zonal_pool_carry_their_zone() {
    skip_unless_root!();
    let env = Emulator::start_yaml(SIZES, "capacity.rs").await;
    let (ok, out, err) = env
        .kubectl(&["get", "nodes", "-L", "topology.kubernetes.io/zone", "--no-headers"])
        .await;
    assert!(ok, "{err}");
    let zone_of = |name: &str| {
        out.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().last())
            .unwrap_or_else(|| panic!("no node {name} in\n{out}"))
            .to_string()
    };
    // AKS spreads a zonal pool's nodes over its zones in turn; other nodes are in zone 0.
    for (i, zone) in ["westeurope-1", "westeurope-2", "westeurope-3", "westeurope-1"]
        .iter()
        .enumerate()
    {
        assert_eq!(zone_of(&format!("aks-big-10000002-vmss{i:06}")), *zone, "\n{out}");
    }
    assert_eq!(zone_of(SMALL), "0", "\n{out}");
    // ARM shows the same zones on the agent pool and on each scale set instance.
    let ep = env.sim.endpoints();
    let pool = format!(
        "{}/subscriptions/{}/resourceGroups/{}/providers/Microsoft.ContainerService/managedClusters/{}/agentPools/big?api-version=2026-08-01",
        ep.arm_url, ep.subscription_id, ep.resource_group, ep.cluster_name
    );
    let body: Value = env
        .https()
        .get(&pool)
        .bearer_auth(env.sim.shared.tokens.current_arm())
        .send()
        .await
        .expect("ARM answers")
        .json()
        .await
        .expect("JSON");
    assert_eq!(
        body["properties"]["availabilityZones"],
        serde_json::json!(["1", "2", "3"])
    );
    env.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_too_big_for_any_node_stays_pending_and_says_insufficient_cpu() {
    skip_unless_root!();
    let yaml = format!(
        "{SIZES}workloads:\n  - {{kind: Deployment, name: huge, replicas: 1, requests: {{cpu: \"16\", memory: 1Gi}}}}\n"
    );
    let env = Emulator::start_yaml(&yaml, "capacity.rs").await;
    let pods = get_json(&env, &["pods", "-n", "default", "-l", "app=huge"]).await;
    let pod = &pods["items"][0];
    let name = pod["metadata"]["name"].as_str().unwrap().to_string();
    assert_eq!(pod["spec"]["containers"][0]["resources"]["requests"]["cpu"], "16");
    assert_eq!(pod["status"]["qosClass"], "Burstable");
    let messages = eventually("a FailedScheduling event", Duration::from_secs(30), || async {
        Some(failed_scheduling(&env, "default", &name).await).filter(|m| !m.is_empty())
    })
    .await;
    // Five Linux nodes lack the CPU; the Windows node is no place for a Linux pod.
    assert_eq!(
        messages,
        ["0/6 nodes are available: 1 node(s) didn't match Pod's node affinity/selector, 5 Insufficient cpu. preemption: 0/6 nodes are available: 1 Preemption is not helpful for scheduling, 5 No preemption victims found for incoming pod."]
    );
    let pod = get_json(&env, &["pod", "-n", "default", &name]).await;
    assert_eq!(pod["status"]["phase"], "Pending");
    assert!(pod["spec"]["nodeName"].is_null(), "{pod}");
    let scheduled = &pod["status"]["conditions"][0];
    assert_eq!(scheduled["reason"], "Unschedulable");
    assert!(scheduled["message"].as_str().unwrap().contains("5 Insufficient cpu"));
    env.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pending_pod_is_scheduled_once_a_node_has_room_again() {
    skip_unless_root!();
    let yaml = r#"
cluster: {name: aks-capacity}
pools:
  - {name: small, mode: System, count: 1, vmSize: Standard_D2s_v5, vmssId: "10000001"}
workloads:
  - {kind: Deployment, name: hog, replicas: 1, requests: {cpu: 1500m}}
"#;
    let env = Emulator::start_yaml(yaml, "capacity.rs").await;
    let manifest = r#"{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "late", "namespace": "default"},
        "spec": {"containers": [{"name": "app", "image": "nginx", "resources": {"requests": {"cpu": "500m", "memory": "128Mi"}}}]}}"#;
    let (code, _, err) = env.kubectl_stdin(&["apply", "-f", "-"], manifest).await;
    assert_eq!(code, 0, "{err}");
    // 1.5 of the node's 1.9 cores are taken.
    let messages = eventually("a FailedScheduling event", Duration::from_secs(30), || async {
        Some(failed_scheduling(&env, "default", "late").await).filter(|m| !m.is_empty())
    })
    .await;
    assert!(
        messages[0].starts_with("0/1 nodes are available: 1 Insufficient cpu."),
        "{messages:?}"
    );
    let (ok, _, err) = env.kubectl(&["scale", "deployment", "hog", "--replicas=0"]).await;
    assert!(ok, "{err}");
    let node = eventually("the pod to be scheduled", Duration::from_secs(60), || async {
        let pod = get_json(&env, &["pod", "-n", "default", "late"]).await;
        pod["spec"]["nodeName"].as_str().map(str::to_string)
    })
    .await;
    assert_eq!(node, SMALL);
    env.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_lands_on_a_node_without_a_prefer_no_schedule_taint_while_one_has_room() {
    skip_unless_root!();
    let yaml = r#"
cluster: {name: aks-capacity}
pools:
  - {name: user, mode: System, count: 3, vmSize: Standard_D4s_v5, vmssId: "10000003"}
"#;
    let env = Emulator::start_yaml(yaml, "capacity.rs").await;
    let node = |i: u32| format!("aks-user-10000003-vmss{i:06}");
    for i in [0, 1] {
        let (ok, _, err) = env
            .kubectl(&["taint", "nodes", &node(i), "aks-patch.io/pending=:PreferNoSchedule"])
            .await;
        assert!(ok, "{err}");
    }
    // Three replicas of 1 core fit on node 2 (3.86 cores); the fourth does not, and goes to a
    // tainted node rather than nowhere.
    let deployment = r#"{"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "default"},
        "spec": {"replicas": 4, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [{"name": "web", "image": "nginx", "resources": {"requests": {"cpu": "1"}}}]}}}}"#;
    let (code, _, err) = env.kubectl_stdin(&["apply", "-f", "-"], deployment).await;
    assert_eq!(code, 0, "{err}");
    let placed = eventually("four scheduled pods", Duration::from_secs(60), || async {
        let pods = get_json(&env, &["pods", "-n", "default", "-l", "app=web"]).await;
        let nodes: Vec<String> = pods["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|p| p["spec"]["nodeName"].as_str().map(str::to_string))
            .collect();
        (nodes.len() == 4).then_some(nodes)
    })
    .await;
    let on = |n: String| placed.iter().filter(|p| **p == n).count();
    assert_eq!(on(node(2)), 3, "{placed:?}");
    assert_eq!(on(node(0)) + on(node(1)), 1, "{placed:?}");
    env.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_batches_scenario_places_every_pod_within_allocatable() {
    skip_unless_root!();
    let env = Emulator::start_yaml(
        include_str!("../../scenarios/batches.yaml"),
        "sim/scenarios/batches.yaml",
    )
    .await;
    let nodes = get_json(&env, &["nodes"]).await;
    let nodes = nodes["items"].as_array().unwrap();
    assert_eq!(nodes.len(), 60);
    let pods = get_json(&env, &["pods", "-A"]).await;
    let pods = pods["items"].as_array().unwrap();
    let unplaced: Vec<&str> = pods
        .iter()
        .filter(|p| p["spec"]["nodeName"].is_null())
        .map(|p| p["metadata"]["name"].as_str().unwrap_or(""))
        .collect();
    assert!(unplaced.is_empty(), "pods with no node: {unplaced:?}");
    // No node is asked for more than it has; the shop's pods use every zone.
    let cpu = |q: &str| match q.strip_suffix('m') {
        Some(m) => m.parse::<i64>().unwrap(),
        None => q.parse::<i64>().unwrap() * 1000,
    };
    let mut zones = std::collections::BTreeMap::new();
    for n in nodes {
        let name = n["metadata"]["name"].as_str().unwrap();
        let requested: i64 = pods
            .iter()
            .filter(|p| p["spec"]["nodeName"] == name)
            .flat_map(|p| p["spec"]["containers"].as_array().unwrap().iter())
            .filter_map(|c| c["resources"]["requests"]["cpu"].as_str())
            .map(cpu)
            .sum();
        let allocatable = cpu(n["status"]["allocatable"]["cpu"].as_str().unwrap());
        assert!(
            requested <= allocatable,
            "{name}: {requested}m of {allocatable}m requested"
        );
        let shop = pods
            .iter()
            .filter(|p| p["spec"]["nodeName"] == name && p["metadata"]["namespace"] == "shop")
            .count();
        *zones
            .entry(
                n["metadata"]["labels"]["topology.kubernetes.io/zone"]
                    .as_str()
                    .unwrap()
                    .to_string(),
            )
            .or_insert(0) += shop;
    }
    assert_eq!(
        zones.keys().collect::<Vec<_>>(),
        ["westeurope-1", "westeurope-2", "westeurope-3"]
    );
    assert!(zones.values().all(|k| *k >= 40), "shop pods per zone: {zones:?}");
    env.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_that_are_no_quantity_or_exceed_their_limit_are_refused() {
    skip_unless_root!();
    let yaml =
        "cluster: {name: aks-capacity}\npools:\n  - {name: small, mode: System, count: 1, vmSize: Standard_D2s_v5}\n";
    let env = Emulator::start_yaml(yaml, "capacity.rs").await;
    let pod = |resources: &str| {
        format!(
            r#"{{"apiVersion": "v1", "kind": "Pod", "metadata": {{"name": "p", "namespace": "default"}},
                "spec": {{"containers": [{{"name": "app", "image": "nginx", "resources": {resources}}}]}}}}"#
        )
    };
    let (code, _, err) = env
        .kubectl_stdin(&["apply", "-f", "-"], &pod(r#"{"requests": {"cpu": "lots"}}"#))
        .await;
    assert_ne!(code, 0);
    assert!(
        err.contains("Error from server (BadRequest)") && err.contains("quantities must match the regular expression"),
        "{err}"
    );
    let (code, _, err) = env
        .kubectl_stdin(
            &["apply", "-f", "-"],
            &pod(r#"{"requests": {"cpu": "2"}, "limits": {"cpu": "1"}}"#),
        )
        .await;
    assert_ne!(code, 0);
    assert!(
        err.contains(
            "spec.containers[0].resources.requests: Invalid value: \"2\": must be less than or equal to cpu limit of 1"
        ),
        "{err}"
    );
    let (ok, _, _) = env.kubectl(&["get", "pod", "p"]).await;
    assert!(!ok, "no pod was stored");
    env.shutdown().await;
}
