//! A fleet of clusters in one emulator: one ARM endpoint over two subscriptions, each
//! cluster its own API server and nodes, driven with raw HTTPS (as the Azure SDKs call ARM)
//! and kube-rs / kubectl on each cluster.

use crate::common::*;
use serde_json::Value;

pub const SUB_A: &str = "00000000-1111-2222-3333-444444444444";
pub const SUB_B: &str = "55555555-6666-7777-8888-999999999999";

/// Three clusters of one node each: two in subscription A (resource groups rg-dev and
/// rg-staging), one in B (rg-prod), tagged by environment; and a fleet of all three.
pub const FLEET: &str = r#"
clusterDefaults:
  subscriptionId: 00000000-1111-2222-3333-444444444444
  cluster: {name: x, tags: {team: shop}}
  timing: {bootSeconds: 1, shutdownSeconds: 0.1, readySeconds: 0.2, podStartSeconds: 0.1}
  pools:
    - {name: nodes, mode: System, osType: Linux, count: 1}
  bastion: false
clusters:
  - resourceGroup: rg-dev
    cluster: {name: aks-dev-1, tags: {env: dev}}
  - resourceGroup: rg-staging
    cluster: {name: aks-staging-1, tags: {env: staging}}
  - subscriptionId: 55555555-6666-7777-8888-999999999999
    resourceGroup: rg-prod
    cluster: {name: aks-prod-1, tags: {env: prod}}
armPageSize: 1
resourceGraphPageSize: 2
fleets:
  - resourceGroup: rg-fleet
    name: shop-fleet
    members:
      - {name: dev-1, cluster: aks-dev-1, group: dev}
      - {name: staging-1, cluster: aks-staging-1, group: staging}
      - {name: prod-1, cluster: aks-prod-1, group: prod}
    updateStrategies:
      - name: dev-then-prod
        stages:
          - {name: early, groups: [dev, staging], afterStageWaitInSeconds: 60}
          - {name: late, groups: [prod]}
"#;

const MC_API: &str = "api-version=2025-10-01";

fn mc_path(sub: &str, rg: &str, name: &str) -> String {
    format!("/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.ContainerService/managedClusters/{name}")
}

/// Every item of a paged ARM list, following `nextLink`; and how many pages it took.
async fn all_pages(fleet: &FleetEmulator, first: &str) -> (Vec<Value>, usize) {
    let mut items = vec![];
    let mut pages = 0;
    let mut next = Some(first.to_string());
    while let Some(url) = next {
        let (status, page) = fleet.arm_get(&url).await;
        assert_eq!(status, 200, "GET {url}: {page}");
        pages += 1;
        items.extend(page["value"].as_array().cloned().unwrap_or_default());
        next = page["nextLink"].as_str().map(str::to_string);
        assert!(pages < 20, "paging does not end");
    }
    (items, pages)
}

fn names(items: &[Value]) -> Vec<String> {
    let mut v: Vec<String> = items
        .iter()
        .map(|c| c["name"].as_str().unwrap_or("").to_string())
        .collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_arm_lists_two_subscriptions_and_their_clusters_with_tags() {
    skip_unless_root!();
    let fleet = FleetEmulator::start_yaml(FLEET, "fleet test").await;

    let (status, subs) = fleet.arm_get("/subscriptions?api-version=2022-12-01").await;
    assert_eq!(status, 200, "{subs}");
    let mut ids: Vec<&str> = subs["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["subscriptionId"].as_str().unwrap())
        .collect();
    ids.sort();
    assert_eq!(ids, [SUB_A, SUB_B]);

    // Per subscription, one cluster a page (armPageSize: 1), each with its tags.
    let (in_a, pages) = all_pages(
        &fleet,
        &format!("/subscriptions/{SUB_A}/providers/Microsoft.ContainerService/managedClusters?{MC_API}"),
    )
    .await;
    assert_eq!(names(&in_a), ["aks-dev-1", "aks-staging-1"]);
    assert_eq!(pages, 2);
    let dev = in_a.iter().find(|c| c["name"] == "aks-dev-1").unwrap();
    assert_eq!(dev["tags"]["env"], "dev");
    assert_eq!(dev["tags"]["team"], "shop", "clusterDefaults' tags are merged: {dev}");
    assert_eq!(dev["id"], mc_path(SUB_A, "rg-dev", "aks-dev-1"));
    let (in_b, _) = all_pages(
        &fleet,
        &format!("/subscriptions/{SUB_B}/providers/Microsoft.ContainerService/managedClusters?{MC_API}"),
    )
    .await;
    assert_eq!(names(&in_b), ["aks-prod-1"]);
    assert_eq!(in_b[0]["tags"]["env"], "prod");

    // Per resource group.
    let (in_rg, _) = all_pages(
        &fleet,
        &format!(
            "/subscriptions/{SUB_A}/resourceGroups/rg-staging/providers/Microsoft.ContainerService/managedClusters?{MC_API}"
        ),
    )
    .await;
    assert_eq!(names(&in_rg), ["aks-staging-1"]);

    // A cluster in the other subscription is not found in this one.
    let (status, body) = fleet
        .arm_get(&format!("{}?{MC_API}", mc_path(SUB_A, "rg-prod", "aks-prod-1")))
        .await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"]["code"], "ResourceGroupNotFound");
    fleet.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_cluster_has_its_own_api_server_and_nodes_behind_the_one_arm() {
    skip_unless_root!();
    let fleet = FleetEmulator::start_yaml(FLEET, "fleet test").await;
    let mut servers = std::collections::BTreeSet::new();
    for (sub, rg, name) in [
        (SUB_A, "rg-dev", "aks-dev-1"),
        (SUB_A, "rg-staging", "aks-staging-1"),
        (SUB_B, "rg-prod", "aks-prod-1"),
    ] {
        // The credential ARM hands out reaches that cluster's API server, no other.
        let (status, creds) = fleet
            .arm(
                reqwest::Method::POST,
                &format!("{}/listClusterUserCredential?{MC_API}", mc_path(sub, rg, name)),
                None,
            )
            .await;
        assert_eq!(status, 200, "{creds}");
        use base64::Engine;
        let kc = base64::engine::general_purpose::STANDARD
            .decode(creds["kubeconfigs"][0]["value"].as_str().unwrap())
            .unwrap();
        let kc = String::from_utf8(kc).unwrap();
        let server = kc
            .lines()
            .find_map(|l| l.trim().strip_prefix("server: "))
            .unwrap()
            .to_string();
        assert_eq!(server, fleet.cluster(name).sim.endpoints().kube_url);
        servers.insert(server);

        // Its nodes, through kube-rs and through ARM's machines.
        let nodes = fleet.cluster(name).nodes().list(&Default::default()).await.unwrap();
        assert_eq!(nodes.items.len(), 1);
        let node = nodes.items[0].metadata.name.clone().unwrap();
        let (status, machines) = fleet
            .arm_get(&format!(
                "{}/agentPools/nodes/machines?{MC_API}",
                mc_path(sub, rg, name)
            ))
            .await;
        assert_eq!(status, 200, "{machines}");
        assert_eq!(machines["value"][0]["name"], node.as_str());
        // ssh with the fleet's one key reaches it.
        let out = fleet.cluster(name).ssh(&node, "hostname").await;
        assert!(out.status.success(), "{}", stderr(&out));
        assert_eq!(stdout(&out).trim(), node);
    }
    assert_eq!(servers.len(), 3, "three API servers");
    // The fleet's kubeconfig has a context per cluster.
    let kc = std::fs::read_to_string(fleet.state().join("kubeconfig")).unwrap();
    for name in ["aks-dev-1", "aks-staging-1", "aks-prod-1"] {
        assert!(kc.contains(&format!("name: {name}")), "{kc}");
    }
    fleet.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_clusters_api_server_or_arm_down_leaves_the_others_reachable() {
    skip_unless_root!();
    let fleet = FleetEmulator::start_yaml(FLEET, "fleet test").await;
    fleet
        .cluster("aks-staging-1")
        .sim
        .fault(aks_sim::Fault::ApiServerDown)
        .expect("the fault applies");
    let down = fleet.cluster("aks-staging-1").nodes().list(&Default::default()).await;
    let err = format!("{:?}", down.expect_err("the API server is down"));
    assert!(err.to_lowercase().contains("refused"), "{err}");
    for name in ["aks-dev-1", "aks-prod-1"] {
        let nodes = fleet.cluster(name).nodes().list(&Default::default()).await;
        assert!(nodes.is_ok(), "{name}: {nodes:?}");
    }
    // ARM still answers for it.
    let (status, body) = fleet
        .arm_get(&format!("{}?{MC_API}", mc_path(SUB_A, "rg-staging", "aks-staging-1")))
        .await;
    assert_eq!(status, 200, "{body}");
    // ARM failing for one cluster (its requests) leaves the others' and the lists answering.
    fleet
        .cluster("aks-dev-1")
        .sim
        .fault(aks_sim::Fault::ArmError {
            count: 1000,
            status: 500,
        })
        .expect("the fault applies");
    let (status, body) = fleet
        .arm_get(&format!("{}?{MC_API}", mc_path(SUB_A, "rg-dev", "aks-dev-1")))
        .await;
    assert_eq!(status, 500, "{body}");
    assert_eq!(body["error"]["code"], "InternalServerError");
    let (status, body) = fleet
        .arm_get(&format!("{}?{MC_API}", mc_path(SUB_B, "rg-prod", "aks-prod-1")))
        .await;
    assert_eq!(status, 200, "{body}");
    let (all, _) = all_pages(
        &fleet,
        &format!("/subscriptions/{SUB_A}/providers/Microsoft.ContainerService/managedClusters?{MC_API}"),
    )
    .await;
    assert_eq!(names(&all), ["aks-dev-1", "aks-staging-1"]);
    // And it comes back.
    fleet
        .cluster("aks-staging-1")
        .sim
        .fault(aks_sim::Fault::ApiServerUp)
        .expect("the fault applies");
    eventually(
        "the API server to come back",
        std::time::Duration::from_secs(10),
        || async {
            fleet
                .cluster("aks-staging-1")
                .nodes()
                .list(&Default::default())
                .await
                .ok()
        },
    )
    .await;
    // Back for good: every new connection is served, none cut by the earlier fault.
    for _ in 0..5 {
        let nodes = fleet.cluster("aks-staging-1").nodes().list(&Default::default()).await;
        assert!(nodes.is_ok(), "{nodes:?}");
    }
    fleet.shutdown().await;
}

const ARG: &str = "/providers/Microsoft.ResourceGraph/resources?api-version=2021-03-01";
const CLUSTERS_KQL: &str = "resources | where type =~ 'microsoft.containerservice/managedclusters'";

/// Every row of a Resource Graph query, following `$skipToken`; and how many pages it took.
async fn graph_rows(fleet: &FleetEmulator, subscriptions: &[&str], query: &str) -> (Vec<Value>, usize) {
    let mut rows = vec![];
    let mut token: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut options = serde_json::json!({"resultFormat": "objectArray"});
        if let Some(t) = &token {
            options["$skipToken"] = Value::String(t.clone());
        }
        let body = serde_json::json!({"subscriptions": subscriptions, "query": query, "options": options});
        let (status, page) = fleet.arm(reqwest::Method::POST, ARG, Some(&body)).await;
        assert_eq!(status, 200, "{page}");
        pages += 1;
        assert_eq!(
            page["count"].as_u64().unwrap() as usize,
            page["data"].as_array().unwrap().len()
        );
        rows.extend(page["data"].as_array().cloned().unwrap_or_default());
        match page["$skipToken"].as_str() {
            Some(t) => token = Some(t.to_string()),
            None => {
                assert_eq!(page["totalRecords"].as_u64().unwrap() as usize, rows.len(), "{page}");
                break;
            }
        }
        assert!(pages < 20, "paging does not end");
    }
    (rows, pages)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resource_graph_pages_with_skip_tokens_and_filters_by_tag() {
    skip_unless_root!();
    let fleet = FleetEmulator::start_yaml(FLEET, "fleet test").await;
    let query = format!("{CLUSTERS_KQL} | project id, name, resourceGroup, subscriptionId, location, tags");

    // Three clusters in two subscriptions, two rows a page (resourceGraphPageSize: 2).
    let (rows, pages) = graph_rows(&fleet, &[SUB_A, SUB_B], &query).await;
    assert_eq!(names(&rows), ["aks-dev-1", "aks-prod-1", "aks-staging-1"]);
    assert_eq!(pages, 2);
    let prod = rows.iter().find(|r| r["name"] == "aks-prod-1").unwrap();
    assert_eq!(prod["subscriptionId"], SUB_B);
    assert_eq!(prod["resourceGroup"], "rg-prod");
    assert_eq!(prod["id"], mc_path(SUB_B, "rg-prod", "aks-prod-1"));
    assert_eq!(prod["tags"]["env"], "prod");

    // A tag filter, and one subscription only.
    let (rows, _) = graph_rows(
        &fleet,
        &[SUB_A, SUB_B],
        &format!("{CLUSTERS_KQL} | where tags['env'] == 'prod'"),
    )
    .await;
    assert_eq!(names(&rows), ["aks-prod-1"]);
    let (rows, _) = graph_rows(&fleet, &[SUB_A], &query).await;
    assert_eq!(names(&rows), ["aks-dev-1", "aks-staging-1"]);
    // A subscription the credential cannot see is left out, not an error.
    let (rows, _) = graph_rows(&fleet, &["99999999-0000-0000-0000-000000000000", SUB_B], &query).await;
    assert_eq!(names(&rows), ["aks-prod-1"]);
    // Without `id` the result cannot be paged: truncated, as the service does.
    let body = serde_json::json!({"subscriptions": [SUB_A, SUB_B], "query": format!("{CLUSTERS_KQL} | project name")});
    let (status, page) = fleet.arm(reqwest::Method::POST, ARG, Some(&body)).await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(
        (page["count"].as_u64(), page["totalRecords"].as_u64()),
        (Some(2), Some(3))
    );
    assert_eq!(page["resultTruncated"], "true");
    assert!(page.get("$skipToken").is_none(), "{page}");
    fleet.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_outside_the_emulated_subset_is_refused_with_its_position() {
    skip_unless_root!();
    let fleet = FleetEmulator::start_yaml(FLEET, "fleet test").await;
    for (query, token, position) in [
        ("resources | summarize count() by type", "summarize", 12),
        ("resources | where name endswith 'aks'", "endswith", 23),
        ("resources | where name == 'aks", "'aks", 26),
    ] {
        let body = serde_json::json!({"subscriptions": [SUB_A], "query": query});
        let (status, answer) = fleet.arm(reqwest::Method::POST, ARG, Some(&body)).await;
        assert_eq!(status, 400, "{query}: {answer}");
        assert_eq!(answer["error"]["code"], "BadRequest", "{answer}");
        let details = answer["error"]["details"].as_array().unwrap();
        assert_eq!(details[0]["code"], "InvalidQuery");
        assert_eq!(details[1]["line"], 1, "{answer}");
        assert_eq!(details[1]["characterPositionInLine"], position, "{query}: {answer}");
        assert_eq!(details[1]["token"], token, "{answer}");
    }
    // An api-version Resource Graph does not publish.
    let body = serde_json::json!({"subscriptions": [SUB_A], "query": "resources"});
    let (status, answer) = fleet
        .arm(
            reqwest::Method::POST,
            "/providers/Microsoft.ResourceGraph/resources?api-version=2020-01-01",
            Some(&body),
        )
        .await;
    assert_eq!(status, 400, "{answer}");
    assert_eq!(answer["error"]["code"], "NoRegisteredProviderFound");
    fleet.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fleet_manager_lists_members_with_groups_and_update_strategies() {
    skip_unless_root!();
    let fleet = FleetEmulator::start_yaml(FLEET, "fleet test").await;
    let f = format!(
        "/subscriptions/{SUB_A}/resourceGroups/rg-fleet/providers/Microsoft.ContainerService/fleets/shop-fleet"
    );
    let api = "api-version=2024-04-01";
    let (status, body) = fleet.arm_get(&format!("{f}?{api}")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["name"], "shop-fleet");

    // Members, one a page (armPageSize: 1), each naming its cluster and group.
    let (members, pages) = all_pages(&fleet, &format!("{f}/members?{api}")).await;
    assert_eq!(pages, 3);
    let by_name = |n: &str| members.iter().find(|m| m["name"] == n).unwrap().clone();
    assert_eq!(
        by_name("prod-1")["properties"]["clusterResourceId"],
        mc_path(SUB_B, "rg-prod", "aks-prod-1")
    );
    assert_eq!(by_name("prod-1")["properties"]["group"], "prod");
    assert_eq!(by_name("dev-1")["properties"]["group"], "dev");
    let (status, one) = fleet.arm_get(&format!("{f}/members/staging-1?{api}")).await;
    assert_eq!(status, 200, "{one}");
    assert_eq!(
        one["properties"]["clusterResourceId"],
        mc_path(SUB_A, "rg-staging", "aks-staging-1")
    );
    let (status, missing) = fleet.arm_get(&format!("{f}/members/nobody?{api}")).await;
    assert_eq!(status, 404, "{missing}");
    assert_eq!(missing["error"]["code"], "ResourceNotFound");

    // The update strategy: stages of groups, with the wait after each.
    let (status, s) = fleet
        .arm_get(&format!("{f}/updateStrategies/dev-then-prod?{api}"))
        .await;
    assert_eq!(status, 200, "{s}");
    let stages = &s["properties"]["strategy"]["stages"];
    assert_eq!(stages[0]["name"], "early");
    assert_eq!(
        stages[0]["groups"],
        serde_json::json!([{"name": "dev"}, {"name": "staging"}])
    );
    assert_eq!(stages[0]["afterStageWaitInSeconds"], 60);
    assert_eq!(stages[1]["groups"], serde_json::json!([{"name": "prod"}]));
    assert!(stages[1].get("afterStageWaitInSeconds").is_none(), "{s}");
    let (list, _) = all_pages(&fleet, &format!("{f}/updateStrategies?{api}")).await;
    assert_eq!(names(&list), ["dev-then-prod"]);

    // A version Fleet Manager does not publish, and one before update strategies existed.
    let (status, body) = fleet.arm_get(&format!("{f}/members?api-version=2021-01-01")).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "NoRegisteredProviderFound");
    let (status, body) = fleet
        .arm_get(&format!("{f}/updateStrategies?api-version=2023-06-15-preview"))
        .await;
    assert_eq!(status, 400, "{body}");
    fleet.shutdown().await;
}

/// `aks-sim up` with a fleet scenario, stopped (SIGTERM) when dropped.
struct UpFleet(std::process::Child, tempfile::TempDir);

impl Drop for UpFleet {
    fn drop(&mut self) {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.0.id() as i32, libc::SIGTERM) };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while std::time::Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn aks_sim(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_aks-sim"))
        .args(args)
        .output()
        .expect("aks-sim runs")
}

#[test]
fn aks_sim_up_serves_a_fleet_and_faults_go_to_the_cluster_named() {
    skip_unless_root!();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("fleet.yaml");
    std::fs::write(&file, FLEET).unwrap();
    let state = dir.path().join("state");
    let st = state.to_str().unwrap();
    let checked = aks_sim(&["check", file.to_str().unwrap()]);
    assert!(checked.status.success(), "{}", stderr(&checked));
    assert!(stdout(&checked).contains("aks-prod-1"));
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_aks-sim"))
        .args(["up", "--state-dir", st, "--scenario", file.to_str().unwrap()])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let up = UpFleet(child, dir);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !state.join("fleet.json").exists() || !state.join("sim.json").exists() {
        assert!(std::time::Instant::now() < deadline, "aks-sim up wrote fleet.json");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }

    let env = stdout(&aks_sim(&["env", "--state-dir", st]));
    assert!(
        env.contains("export AKS_PATCH_ARM_ENDPOINT=https://127.0.0.1:"),
        "{env}"
    );
    let kubectl = |context: &str| {
        std::process::Command::new("kubectl")
            .args([
                "--context",
                context,
                "--request-timeout=10s",
                "get",
                "nodes",
                "--no-headers",
            ])
            .env("KUBECONFIG", state.join("kubeconfig"))
            .env("HOME", up.1.path())
            .output()
            .unwrap()
    };
    for c in ["aks-dev-1", "aks-staging-1", "aks-prod-1"] {
        let out = kubectl(c);
        assert!(out.status.success(), "{c}: {}", stderr(&out));
        assert_eq!(stdout(&out).lines().count(), 1);
    }

    // In a fleet's state directory a fault names its cluster.
    let refused = aks_sim(&["fault", "--state-dir", st, "api-server-down"]);
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains("--cluster") && stderr(&refused).contains("aks-dev-1"),
        "{}",
        stderr(&refused)
    );
    let f = aks_sim(&["fault", "--state-dir", st, "--cluster", "aks-dev-1", "api-server-down"]);
    assert!(f.status.success(), "{}", stderr(&f));
    assert!(!kubectl("aks-dev-1").status.success(), "aks-dev-1's API server is down");
    assert!(kubectl("aks-prod-1").status.success(), "aks-prod-1's is not");
    let status = aks_sim(&["status", "--state-dir", st, "--cluster", "aks-dev-1", "-o", "json"]);
    let v: Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(v["faults"]["apiServerDown"], true, "{v}");
    let status = aks_sim(&["status", "--state-dir", st, "--cluster", "aks-prod-1", "-o", "json"]);
    let v: Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(v["faults"]["apiServerDown"], false, "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resource_graph_counts_its_quota_and_throttles_beyond_it() {
    skip_unless_root!();
    let yaml = FLEET.replace(
        "resourceGraphPageSize: 2\n",
        "resourceGraphPageSize: 2\nresourceGraphQuota: {queries: 2, windowSeconds: 3600}\n",
    );
    let fleet = FleetEmulator::start_yaml(&yaml, "fleet test").await;
    let body = serde_json::json!({"subscriptions": [SUB_A, SUB_B], "query": CLUSTERS_KQL});
    let mut seen = vec![];
    for _ in 0..3 {
        let resp = fleet
            .https()
            .post(format!("{}{ARG}", fleet.arm_url()))
            .bearer_auth(fleet.arm_token())
            .json(&body)
            .send()
            .await
            .unwrap();
        let header = |h: &str| {
            resp.headers()
                .get(h)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string()
        };
        let (remaining, resets) = (
            header("x-ms-user-quota-remaining"),
            header("x-ms-user-quota-resets-after"),
        );
        assert!(
            resets == "01:00:00" || resets.starts_with("00:59:"),
            "hh:mm:ss within the hour's window: {resets}"
        );
        let status = resp.status().as_u16();
        let answer: Value = resp.json().await.unwrap();
        seen.push((
            status,
            remaining,
            answer["error"]["code"].as_str().unwrap_or("").to_string(),
        ));
    }
    assert_eq!(
        seen,
        [
            (200, "1".to_string(), String::new()),
            (200, "0".to_string(), String::new()),
            (429, "0".to_string(), "RateLimiting".to_string()),
        ]
    );
    fleet.shutdown().await;
}
