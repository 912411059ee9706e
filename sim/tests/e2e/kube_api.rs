//! The emulated Kubernetes API server, driven with real clients: kube-rs (built from the
//! kubeconfig the emulator writes), reqwest for raw shapes, and kubectl.

use crate::common::{api_status, eventually, user_node, Emulator as Env};
use aks_sim::{Fault, Scenario};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::api::policy::v1::{Eviction, PodDisruptionBudget};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use kube::ResourceExt;
use serde_json::{json, Value};
use std::time::Duration;

/// A raw GET of `path` (with `Accept: accept`); (status code, JSON answer).
async fn get_raw(env: &Env, path: &str, accept: Option<&str>) -> (u16, Value) {
    let (http, url, token) = env.raw();
    let mut req = http.get(format!("{url}{path}")).bearer_auth(token);
    if let Some(a) = accept {
        req = req.header("Accept", a);
    }
    let resp = req.send().await.expect("request");
    let code = resp.status().as_u16();
    (code, resp.json().await.unwrap_or(Value::Null))
}

/// A JSON patch (RFC 6902) of a node, through the kube-rs client (its typed
/// `Patch::Json` needs a feature the workspace does not enable).
async fn json_patch(client: &kube::Client, node: &str, patch: &Value) -> Result<Node, kube::Error> {
    let req = axum::http::Request::patch(format!("/api/v1/nodes/{node}"))
        .header("Content-Type", "application/json-patch+json")
        .body(serde_json::to_vec(patch).unwrap())
        .unwrap();
    client.request::<Node>(req).await
}

fn pod_ready(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

fn eviction(ns: &str, name: &str) -> Eviction {
    Eviction {
        metadata: kube::api::ObjectMeta {
            name: Some(name.into()),
            namespace: Some(ns.into()),
            ..Default::default()
        },
        delete_options: None,
    }
}

async fn evict(pods: &Api<Pod>, ns: &str, name: &str) -> Result<kube::core::Status, kube::Error> {
    pods.create_subresource::<Eviction, kube::core::Status>(
        "eviction",
        name,
        &PostParams::default(),
        &eviction(ns, name),
    )
    .await
}

const STOREFRONT_PDB: &str = "storefront-pdb";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_auth_and_error_statuses() {
    skip_unless_root!();
    let env = Env::default().await;
    let (code, v) = get_raw(&env, "/version", None).await;
    assert_eq!(code, 200);
    assert_eq!(v["gitVersion"], "v1.31.5");
    assert_eq!(v["platform"], "linux/amd64");
    let info = env.client.apiserver_version().await.expect("kube-rs reads /version");
    assert_eq!(info.minor, "31");

    let aggregated = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json";
    let (code, v) = get_raw(&env, "/api", Some(aggregated)).await;
    assert_eq!(code, 200);
    assert_eq!(v["kind"], "APIVersions");
    assert_eq!(v["versions"], json!(["v1"]));
    let (_, v) = get_raw(&env, "/apis", Some(aggregated)).await;
    assert_eq!(v["kind"], "APIGroupList");
    let groups: Vec<&str> = v["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["name"].as_str().unwrap())
        .collect();
    for g in ["apps", "policy", "coordination.k8s.io"] {
        assert!(groups.contains(&g), "{g} missing from {groups:?}");
    }
    let (_, v) = get_raw(&env, "/api/v1", None).await;
    let ev = v["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "pods/eviction")
        .expect("pods/eviction");
    assert_eq!(
        (ev["group"].as_str(), ev["version"].as_str(), ev["kind"].as_str()),
        (Some("policy"), Some("v1"), Some("Eviction"))
    );
    for gv in ["/apis/apps/v1", "/apis/policy/v1", "/apis/coordination.k8s.io/v1"] {
        let (code, v) = get_raw(&env, gv, None).await;
        assert_eq!(code, 200, "{gv}");
        assert_eq!(v["kind"], "APIResourceList");
    }
    let (code, v) = get_raw(&env, "/api/v1/widgets", None).await;
    assert_eq!(code, 404);
    assert_eq!(
        (v["kind"].as_str(), v["reason"].as_str()),
        (Some("Status"), Some("NotFound"))
    );
    let (code, v) = get_raw(&env, "/api/v1/nodes/no-such-node", None).await;
    assert_eq!(code, 404);
    assert_eq!(v["message"], "nodes \"no-such-node\" not found");

    // 401 without a token, and with a wrong one, in the apiserver's shape.
    let (http, url, _) = env.raw();
    let expected = json!({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"Unauthorized","reason":"Unauthorized","code":401});
    let r = http.get(format!("{url}/api/v1/nodes")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 401);
    assert_eq!(r.json::<Value>().await.unwrap(), expected);
    let r = http
        .get(format!("{url}/api/v1/nodes"))
        .bearer_auth("not-a-token")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);

    // Bad JSON: 400 BadRequest; creating twice: 409 AlreadyExists.
    let (http, url, token) = env.raw();
    let r = http
        .post(format!("{url}/apis/coordination.k8s.io/v1/namespaces/default/leases"))
        .bearer_auth(&token)
        .header("Content-Type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["reason"], "BadRequest");
    // A patch that would break the object's shape: 422 Invalid, nothing changed.
    let pod_url = format!("{url}/api/v1/namespaces/default/pods/debug-shell");
    let r = http
        .patch(&pod_url)
        .bearer_auth(&token)
        .header("Content-Type", "application/merge-patch+json")
        .body(r#"{"spec": "oops"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 422);
    assert_eq!(r.json::<Value>().await.unwrap()["reason"], "Invalid");
    // A PATCH in a media type that is not a patch: 415.
    let r = http
        .patch(&pod_url)
        .bearer_auth(&token)
        .header("Content-Type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 415);
    assert!(env.pods("default").get("debug-shell").await.unwrap().spec.is_some());
    let ns: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(env.client.clone());
    let e = ns
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "shop"}})).unwrap(),
        )
        .await
        .unwrap_err();
    let st = api_status(e);
    assert_eq!((st.code, st.reason.as_str()), (409, "AlreadyExists"));
    env.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_page_get_watch_and_patch() {
    skip_unless_root!();
    let env = Env::default().await;
    let nodes = env.nodes();
    // Paging: limit 2 and continue until the end.
    let mut names = vec![];
    let mut token: Option<String> = None;
    let mut pages = 0;
    let mut rv = None;
    loop {
        let mut lp = ListParams::default().limit(2);
        if let Some(t) = &token {
            lp = lp.continue_token(t);
        }
        let page = nodes.list(&lp).await.expect("list nodes");
        assert!(page.items.len() <= 2);
        pages += 1;
        rv.get_or_insert(page.metadata.resource_version.clone().expect("list resourceVersion"));
        names.extend(page.items.iter().map(|n| n.name_any()));
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(c) => token = Some(c),
            None => break,
        }
    }
    let expected: Vec<String> = env.sim.shared.nodes.iter().map(|n| n.name.clone()).collect();
    assert_eq!(names.len(), expected.len());
    assert_eq!(pages, expected.len().div_ceil(2));
    for n in &expected {
        assert!(names.contains(n), "{n} not listed");
    }

    let name = user_node(0);
    let node = nodes.get(&name).await.expect("get node");
    assert_eq!(node.labels()["agentpool"], "user");
    assert_eq!(node.labels()["kubernetes.io/role"], "agent");
    let info = node.status.as_ref().unwrap().node_info.as_ref().unwrap();
    assert_eq!(info.kernel_version, "5.15.0-1068-azure");

    // Watch the node while cordoning it with a strategic-merge patch.
    let wp = WatchParams::default()
        .fields(&format!("metadata.name={name}"))
        .timeout(20);
    let from = node.resource_version().unwrap();
    let mut stream = nodes.watch(&wp, &from).await.expect("watch starts").boxed();
    let patched = nodes
        .patch(
            &name,
            &PatchParams::default(),
            &Patch::Strategic(json!({"spec": {"unschedulable": true}})),
        )
        .await
        .expect("cordon");
    assert_eq!(patched.spec.as_ref().unwrap().unschedulable, Some(true));
    let seen = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(ev) = stream.try_next().await.expect("watch stream") {
            match ev {
                WatchEvent::Modified(n) if n.spec.as_ref().and_then(|s| s.unschedulable) == Some(true) => return n,
                WatchEvent::Error(e) => panic!("watch error {e:?}"),
                _ => {}
            }
        }
        panic!("watch ended without the cordon")
    })
    .await
    .expect("cordon seen by the watch");
    assert_eq!(seen.name_any(), name);
    // The node lifecycle controller adds the unschedulable taint.
    eventually("unschedulable taint", Duration::from_secs(5), || async {
        let n = nodes.get(&name).await.ok()?;
        n.spec?
            .taints?
            .iter()
            .any(|t| t.key == "node.kubernetes.io/unschedulable")
            .then_some(())
    })
    .await;

    // JSON patch and merge patch.
    let p = json!([{"op": "add", "path": "/metadata/labels/aks-sim~1test", "value": "json-patch"}]);
    let n: Node = json_patch(&env.client, &name, &p).await.expect("json patch");
    assert_eq!(n.labels()["aks-sim/test"], "json-patch");
    let n = nodes
        .patch(
            &name,
            &PatchParams::default(),
            &Patch::Merge(
                json!({"metadata": {"annotations": {"aks-sim/note": "merged"}}, "spec": {"unschedulable": null}}),
            ),
        )
        .await
        .expect("merge patch");
    assert_eq!(n.annotations()["aks-sim/note"], "merged");
    assert_eq!(n.labels()["aks-sim/test"], "json-patch");
    assert_eq!(n.spec.as_ref().unwrap().unschedulable, None);
    // A JSON patch whose test fails is refused and changes nothing.
    let bad = json!([{"op": "test", "path": "/metadata/labels/agentpool", "value": "system"}, {"op": "remove", "path": "/metadata/labels/agentpool"}]);
    let e = json_patch(&env.client, &name, &bad).await.unwrap_err();
    assert_eq!(api_status(e).code, 422);
    assert_eq!(nodes.get(&name).await.unwrap().labels()["agentpool"], "user");
    eventually(
        "cordon and uncordon in the event log",
        Duration::from_secs(5),
        || async {
            let ev = env.sim.events();
            let c = ev
                .iter()
                .position(|e| e.kind == "cordon" && e.node.as_deref() == Some(name.as_str()))?;
            ev[c..]
                .iter()
                .any(|e| e.kind == "uncordon" && e.node.as_deref() == Some(name.as_str()))
                .then_some(())
        },
    )
    .await;

    // A watch from a resourceVersion older than the history gets 410 Expired.
    let mut stream = nodes
        .watch(&WatchParams::default().timeout(5), "1")
        .await
        .expect("watch")
        .boxed();
    match stream.try_next().await.expect("an event") {
        Some(WatchEvent::Error(e)) => assert_eq!((e.code, e.reason.as_str()), (410, "Expired")),
        other => panic!("expected 410 Expired, got {other:?}"),
    }
    // A watch from "0" starts with the current state.
    let mut stream = nodes
        .watch(&WatchParams::default().timeout(5), "0")
        .await
        .expect("watch")
        .boxed();
    let mut added = 0;
    while let Ok(Some(Ok(WatchEvent::Added(_)))) = tokio::time::timeout(Duration::from_secs(2), stream.next()).await {
        added += 1;
        if added == expected.len() {
            break;
        }
    }
    assert_eq!(added, expected.len());
    // Streaming lists: the current state, then a bookmark marking its end.
    let mut stream = nodes
        .watch(&WatchParams::streaming_lists().timeout(5), "")
        .await
        .expect("watch")
        .boxed();
    let mut added = 0;
    loop {
        match tokio::time::timeout(Duration::from_secs(2), stream.next()).await {
            Ok(Some(Ok(WatchEvent::Added(_)))) => added += 1,
            Ok(Some(Ok(WatchEvent::Bookmark(b)))) => {
                assert_eq!(
                    b.metadata
                        .annotations
                        .get("k8s.io/initial-events-end")
                        .map(String::as_str),
                    Some("true")
                );
                assert!(!b.metadata.resource_version.is_empty());
                break;
            }
            other => panic!("expected ADDED events and a bookmark, got {other:?}"),
        }
    }
    assert_eq!(added, expected.len());
    env.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_by_node_and_labels() {
    skip_unless_root!();
    let env = Env::default().await;
    let all: Api<Pod> = Api::all(env.client.clone());
    let node = user_node(0);
    let on_node = all
        .list(&ListParams::default().fields(&format!("spec.nodeName={node}")))
        .await
        .expect("pods on node");
    assert!(!on_node.items.is_empty());
    assert!(on_node
        .items
        .iter()
        .all(|p| p.spec.as_ref().unwrap().node_name.as_deref() == Some(node.as_str())));
    let names: Vec<String> = on_node.items.iter().map(|p| p.name_any()).collect();
    assert!(names.contains(&"debug-shell".to_string()), "{names:?}");
    assert!(names.contains(&format!("node-problem-detector-{node}")), "{names:?}");
    for ds in ["kube-proxy", "cloud-node-manager", "azure-cns"] {
        assert!(
            names.iter().any(|n| n.starts_with(&format!("{ds}-"))),
            "{ds} pod missing: {names:?}"
        );
    }
    let every: usize = all.list(&ListParams::default()).await.unwrap().items.len();
    assert!(every > on_node.items.len());

    let shop = env.pods("shop");
    let sf = shop
        .list(&ListParams::default().labels("app=storefront"))
        .await
        .unwrap();
    assert_eq!(sf.items.len(), 3);
    assert!(sf.items.iter().all(pod_ready));
    let both = shop
        .list(&ListParams::default().labels("app in (storefront,checkout)"))
        .await
        .unwrap();
    assert_eq!(both.items.len(), 5);
    let not_sf = shop
        .list(&ListParams::default().labels("app!=storefront,app"))
        .await
        .unwrap();
    assert_eq!(not_sf.items.len(), 3, "checkout x2 and session-cache");
    let running = all
        .list(&ListParams::default().fields(&format!(
            "spec.nodeName={node},status.phase!=Succeeded,status.phase!=Failed"
        )))
        .await
        .unwrap();
    assert_eq!(running.items.len(), on_node.items.len());
    // Pods carry what drain and tools look at.
    let dbg = env.pods("default").get("debug-shell").await.unwrap();
    assert!(dbg.metadata.owner_references.is_none());
    let cache = shop
        .list(&ListParams::default().labels("app=session-cache"))
        .await
        .unwrap();
    let vols = cache.items[0]
        .spec
        .as_ref()
        .unwrap()
        .volumes
        .clone()
        .unwrap_or_default();
    assert!(vols.iter().any(|v| v.empty_dir.is_some()));
    let mirror = env
        .pods("kube-system")
        .get(&format!("node-problem-detector-{node}"))
        .await
        .unwrap();
    assert!(mirror.annotations().contains_key("kubernetes.io/config.mirror"));
    // A watch with a label selector sees a pod leave and re-enter the selection.
    let target = sf.items[0].name_any();
    let from = shop
        .list(&ListParams::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    let mut stream = shop
        .watch(&WatchParams::default().labels("app=storefront").timeout(10), &from)
        .await
        .expect("watch")
        .boxed();
    for app in ["relabelled", "storefront"] {
        shop.patch(
            &target,
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"app": app}}})),
        )
        .await
        .unwrap();
    }
    let mut seen = vec![];
    while seen.len() < 2 {
        match tokio::time::timeout(Duration::from_secs(5), stream.try_next()).await {
            Ok(Ok(Some(WatchEvent::Deleted(p)))) if p.name_any() == target => seen.push("DELETED"),
            Ok(Ok(Some(WatchEvent::Added(p)))) if p.name_any() == target => seen.push("ADDED"),
            Ok(Ok(Some(_))) => {}
            other => panic!("watch ended early: {other:?}"),
        }
    }
    assert_eq!(seen, ["DELETED", "ADDED"]);
    // Paging over a label selector.
    let page = all
        .list(&ListParams::default().labels("app=kube-proxy").limit(2))
        .await
        .unwrap();
    assert_eq!(page.items.len(), 2);
    assert!(page.metadata.continue_.is_some());
    env.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eviction_respects_budgets() {
    skip_unless_root!();
    // Replacements take 2 s to turn Ready, so the budget is visibly spent meanwhile.
    let mut scenario = Scenario::default_scenario();
    scenario.timing.pod_start_seconds = 2.0;
    let env = Env::start(scenario).await;
    let shop = env.pods("shop");
    let pdbs: Api<PodDisruptionBudget> = Api::namespaced(env.client.clone(), "shop");
    let pdb = pdbs.get(STOREFRONT_PDB).await.unwrap();
    let st = pdb.status.clone().unwrap();
    assert_eq!(
        (
            st.current_healthy,
            st.desired_healthy,
            st.disruptions_allowed,
            st.expected_pods
        ),
        (Some(3), Some(2), Some(1), Some(3))
    );

    // A pod with no budget: 201, terminating, then gone and not recreated.
    let dpods = env.pods("default");
    let s = evict(&dpods, "default", "debug-shell").await.expect("evict bare pod");
    assert_eq!(s.code, 201);
    eventually("debug-shell gone", Duration::from_secs(5), || async {
        dpods.get_opt("debug-shell").await.ok()?.is_none().then_some(())
    })
    .await;

    // The storefront budget allows one: cordon its node so the replacement goes elsewhere.
    let sf = shop
        .list(&ListParams::default().labels("app=storefront"))
        .await
        .unwrap();
    let victim = sf.items[0].clone();
    let victim_node = victim.spec.as_ref().unwrap().node_name.clone().unwrap();
    env.nodes()
        .patch(
            &victim_node,
            &PatchParams::default(),
            &Patch::Strategic(json!({"spec": {"unschedulable": true}})),
        )
        .await
        .unwrap();
    let s = evict(&shop, "shop", &victim.name_any())
        .await
        .expect("first eviction allowed");
    assert_eq!(s.code, 201);
    let gone = shop.get(&victim.name_any()).await;
    if let Ok(p) = gone {
        assert!(p.metadata.deletion_timestamp.is_some(), "evicted pod is terminating");
    }
    // Once the disruption controller has counted the terminating pod out, a second
    // eviction would leave fewer than 2 healthy: 429 with the budget named.
    eventually("budget spent", Duration::from_secs(5), || async {
        let s = pdbs.get(STOREFRONT_PDB).await.ok()?.status?;
        (s.current_healthy == Some(2) && s.disruptions_allowed == Some(0)).then_some(())
    })
    .await;
    let other = sf.items[1].name_any();
    let e = evict(&shop, "shop", &other).await.unwrap_err();
    let st = api_status(e);
    assert_eq!((st.code, st.reason.as_str()), (429, "TooManyRequests"));
    assert_eq!(
        st.message,
        "Cannot evict pod as it would violate the pod's disruption budget."
    );
    let cause = &st.details.expect("details").causes[0];
    assert_eq!(cause.reason, "DisruptionBudget");
    assert_eq!(
        cause.message,
        "The disruption budget storefront-pdb needs 2 healthy pods and has 2 currently"
    );
    // The Deployment replaces the pod on another node, and it turns Ready.
    let replacement = eventually("replacement Ready", Duration::from_secs(10), || async {
        let l = shop.list(&ListParams::default().labels("app=storefront")).await.ok()?;
        let fresh: Vec<Pod> = l
            .items
            .into_iter()
            .filter(|p| !sf.items.iter().any(|o| o.uid() == p.uid()) && pod_ready(p))
            .collect();
        fresh.into_iter().next()
    })
    .await;
    let new_node = replacement.spec.as_ref().unwrap().node_name.clone().unwrap();
    assert_ne!(new_node, victim_node);
    assert!(replacement
        .status
        .as_ref()
        .unwrap()
        .pod_ip
        .as_deref()
        .unwrap_or("")
        .starts_with("10.244."));
    // The budget follows: one disruption allowed again, and the second eviction passes.
    eventually("budget allows again", Duration::from_secs(5), || async {
        let p = pdbs.get(STOREFRONT_PDB).await.ok()?;
        (p.status?.disruptions_allowed == Some(1)).then_some(())
    })
    .await;
    evict(&shop, "shop", &other)
        .await
        .expect("second eviction after recovery");
    let kinds: Vec<String> = env.sim.events().iter().map(|e| e.kind.clone()).collect();
    assert!(kinds.contains(&"eviction".to_string()) && kinds.contains(&"eviction-refused".to_string()));
    assert!(kinds.contains(&"pod-created".to_string()) && kinds.contains(&"pod-ready".to_string()));

    // A budget that never allows: 429 whatever the pods.
    env.sim
        .fault(Fault::PdbNeverAllows {
            namespace: "shop".into(),
            name: "checkout-pdb".into(),
        })
        .unwrap();
    let co = shop.list(&ListParams::default().labels("app=checkout")).await.unwrap();
    let e = evict(&shop, "shop", &co.items[0].name_any()).await.unwrap_err();
    assert_eq!(api_status(e).code, 429);
    eventually("checkout-pdb shows 0 allowed", Duration::from_secs(5), || async {
        let p = pdbs.get("checkout-pdb").await.ok()?;
        (p.status?.disruptions_allowed == Some(0)).then_some(())
    })
    .await;
    env.sim.fault(Fault::Clear).unwrap();

    // Two budgets on one pod: HTTP 500, permanent.
    let second: PodDisruptionBudget = serde_json::from_value(json!({
        "metadata": {"name": "checkout-extra", "namespace": "shop"},
        "spec": {"minAvailable": 0, "selector": {"matchExpressions": [{"key": "app", "operator": "In", "values": ["checkout"]}]}}
    }))
    .unwrap();
    pdbs.create(&PostParams::default(), &second).await.expect("second pdb");
    let e = evict(&shop, "shop", &co.items[0].name_any()).await.unwrap_err();
    let st = api_status(e);
    assert_eq!(st.code, 500);
    assert_eq!(
        st.message,
        "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support."
    );
    // A missing pod: 404.
    let e = evict(&shop, "shop", "no-such-pod").await.unwrap_err();
    let st = api_status(e);
    assert_eq!((st.code, st.reason.as_str()), (404, "NotFound"));
    env.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pod_delete_with_grace_period() {
    skip_unless_root!();
    let env = Env::default().await;
    let shop = env.pods("shop");
    let cache = shop
        .list(&ListParams::default().labels("app=session-cache"))
        .await
        .unwrap()
        .items[0]
        .clone();
    let dp = DeleteParams {
        grace_period_seconds: Some(5),
        ..Default::default()
    };
    let r = shop.delete(&cache.name_any(), &dp).await.expect("delete");
    let p = r.left().expect("the terminating pod");
    assert!(p.metadata.deletion_timestamp.is_some());
    assert_eq!(p.metadata.deletion_grace_period_seconds, Some(5));
    eventually(
        "pod removed after terminationSeconds",
        Duration::from_secs(5),
        || async { shop.get_opt(&cache.name_any()).await.ok()?.is_none().then_some(()) },
    )
    .await;
    // Grace 0 removes at once.
    let d = env.pods("default");
    d.delete(
        "debug-shell",
        &DeleteParams {
            grace_period_seconds: Some(0),
            ..Default::default()
        },
    )
    .await
    .expect("delete now");
    assert!(d.get_opt("debug-shell").await.unwrap().is_none());
    assert!(env
        .sim
        .events()
        .iter()
        .any(|e| e.kind == "pod-deleted" && e.object.as_deref() == Some("default/debug-shell")));
    env.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leases_and_conflicts() {
    skip_unless_root!();
    let env = Env::default().await;
    let leases: Api<Lease> = Api::namespaced(env.client.clone(), "kube-system");
    let lease: Lease = serde_json::from_value(json!({
        "metadata": {"name": "aks-patch-lock"},
        "spec": {"holderIdentity": "runner-a", "leaseDurationSeconds": 60, "leaseTransitions": 0}
    }))
    .unwrap();
    let created = leases
        .create(&PostParams::default(), &lease)
        .await
        .expect("create lease");
    let rv = created.resource_version().unwrap();
    let got = leases.get("aks-patch-lock").await.unwrap();
    assert_eq!(got.spec.as_ref().unwrap().holder_identity.as_deref(), Some("runner-a"));
    let e = leases.create(&PostParams::default(), &lease).await.unwrap_err();
    assert_eq!(api_status(e).reason, "AlreadyExists");

    let mut mine = got.clone();
    mine.spec.as_mut().unwrap().holder_identity = Some("runner-b".into());
    let updated = leases
        .replace("aks-patch-lock", &PostParams::default(), &mine)
        .await
        .expect("update with current rv");
    assert_ne!(updated.resource_version().unwrap(), rv);
    // The same update again carries a stale resourceVersion: 409 Conflict.
    let e = leases
        .replace("aks-patch-lock", &PostParams::default(), &mine)
        .await
        .unwrap_err();
    let st = api_status(e);
    assert_eq!((st.code, st.reason.as_str()), (409, "Conflict"));
    assert!(st.message.contains("the object has been modified"), "{}", st.message);
    assert_eq!(
        leases
            .get("aks-patch-lock")
            .await
            .unwrap()
            .spec
            .unwrap()
            .holder_identity
            .as_deref(),
        Some("runner-b")
    );
    leases
        .delete("aks-patch-lock", &DeleteParams::default())
        .await
        .expect("delete lease");
    assert!(leases.get_opt("aks-patch-lock").await.unwrap().is_none());
    let lease_events = env.sim.events().into_iter().filter(|e| e.kind == "lease").count();
    assert_eq!(lease_events, 3);
    env.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kube_faults_and_expired_token() {
    skip_unless_root!();
    let env = Env::default().await;
    let nodes = env.nodes();
    for status in [503u16, 500, 504] {
        env.sim.fault(Fault::KubeError { count: 2, status }).unwrap();
        for _ in 0..2 {
            let e = nodes.list(&ListParams::default()).await.unwrap_err();
            assert_eq!(api_status(e).code, status);
        }
        nodes.list(&ListParams::default()).await.expect("fault used up");
    }
    // 503 carries Retry-After.
    env.sim.fault(Fault::KubeError { count: 1, status: 503 }).unwrap();
    let (http, url, token) = env.raw();
    let r = http
        .get(format!("{url}/api/v1/nodes"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 503);
    assert_eq!(r.headers()["retry-after"], "1");
    assert_eq!(r.json::<Value>().await.unwrap()["reason"], "ServiceUnavailable");
    // Connection reset.
    env.sim.fault(Fault::KubeError { count: 1, status: 0 }).unwrap();
    let e = nodes.list(&ListParams::default()).await.unwrap_err();
    assert!(!matches!(e, kube::Error::Api(_)), "a reset is not an API answer: {e:?}");
    nodes.list(&ListParams::default()).await.expect("after the reset");
    // Expired token: 401 until cleared.
    env.sim.fault(Fault::ExpiredToken).unwrap();
    let e = nodes.list(&ListParams::default()).await.unwrap_err();
    let st = api_status(e);
    assert_eq!((st.code, st.reason.as_str()), (401, "Unauthorized"));
    env.sim.fault(Fault::Clear).unwrap();
    nodes.list(&ListParams::default()).await.expect("after clearing");
    env.shutdown().await;
}

/// Split a kubectl table into rows of cells, using the header's column offsets (cells
/// such as OS-IMAGE contain spaces).
fn table(out: &str) -> (Vec<String>, Vec<Vec<String>>) {
    let mut lines = out.lines();
    let header = lines.next().expect("a header line");
    let b = header.as_bytes();
    // A column starts at a word after two or more spaces ("NOMINATED NODE" is one column).
    let starts: Vec<usize> = (0..b.len())
        .filter(|&i| b[i] != b' ' && (i == 0 || (i >= 2 && b[i - 1] == b' ' && b[i - 2] == b' ')))
        .collect();
    let mut names = vec![];
    for (k, s) in starts.iter().enumerate() {
        let end = starts.get(k + 1).copied().unwrap_or(header.len());
        names.push(header[*s..end].trim().to_string());
    }
    let rows = lines
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            starts
                .iter()
                .enumerate()
                .map(|(k, s)| {
                    let end = starts.get(k + 1).copied().unwrap_or(l.len()).min(l.len());
                    l.get(*s..end).unwrap_or("").trim().to_string()
                })
                .collect()
        })
        .collect();
    (names, rows)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_get_nodes_and_pods_wide() {
    skip_unless_root!();
    let env = Env::default().await;
    let (ok, out, err) = env.kubectl(&["get", "nodes", "-o", "wide"]).await;
    assert!(ok, "kubectl get nodes failed: {err}");
    let (cols, rows) = table(&out);
    assert_eq!(
        cols,
        [
            "NAME",
            "STATUS",
            "ROLES",
            "AGE",
            "VERSION",
            "INTERNAL-IP",
            "EXTERNAL-IP",
            "OS-IMAGE",
            "KERNEL-VERSION",
            "CONTAINER-RUNTIME"
        ]
    );
    assert_eq!(rows.len(), env.sim.shared.nodes.len(), "{out}");
    for spec in &env.sim.shared.nodes {
        let row = rows
            .iter()
            .find(|r| r[0] == spec.name)
            .unwrap_or_else(|| panic!("{} missing:\n{out}", spec.name));
        let status = if spec.cordoned {
            "Ready,SchedulingDisabled"
        } else {
            "Ready"
        };
        assert_eq!(row[1], status, "{out}");
        assert_eq!(row[2], "agent");
        assert_eq!(row[3], "42d");
        assert_eq!(row[4], "v1.31.5");
        assert_eq!(row[5], spec.ip.to_string());
        assert_eq!(row[6], "<none>");
        assert_eq!(row[7], spec.os_image);
        assert_eq!(row[8], spec.kernel);
        let runtime = if spec.is_linux() {
            "containerd://1.7.25-1"
        } else {
            "containerd://1.7.20+azure"
        };
        assert_eq!(row[9], runtime);
    }
    assert!(rows.iter().any(|r| r[7] == "Windows Server 2022 Datacenter"));

    let (ok, out, err) = env.kubectl(&["get", "pods", "-A", "-o", "wide"]).await;
    assert!(ok, "kubectl get pods failed: {err}");
    let (cols, rows) = table(&out);
    assert_eq!(
        cols,
        [
            "NAMESPACE",
            "NAME",
            "READY",
            "STATUS",
            "RESTARTS",
            "AGE",
            "IP",
            "NODE",
            "NOMINATED NODE",
            "READINESS GATES"
        ]
    );
    let dbg = rows.iter().find(|r| r[1] == "debug-shell").expect("debug-shell row");
    assert_eq!(dbg[0], "default");
    assert_eq!(&dbg[2..6], ["1/1", "Running", "0", "42d"]);
    assert!(dbg[6].starts_with("10.244."));
    assert_eq!(dbg[7], user_node(0));
    assert_eq!(&dbg[8..], ["<none>", "<none>"]);
    assert_eq!(rows.iter().filter(|r| r[0] == "shop").count(), 6);

    // A single object, other kinds, and a label column through the table's object metadata.
    let (ok, out, _) = env.kubectl(&["get", "pdb", "-n", "shop"]).await;
    assert!(ok);
    let (cols, rows) = table(&out);
    assert_eq!(
        cols,
        ["NAME", "MIN AVAILABLE", "MAX UNAVAILABLE", "ALLOWED DISRUPTIONS", "AGE"]
    );
    let sf = rows
        .iter()
        .find(|r| r[0] == STOREFRONT_PDB)
        .expect("storefront-pdb row");
    assert_eq!(&sf[1..4], ["2", "N/A", "1"]);
    let (ok, out, _) = env.kubectl(&["get", "deploy", "-n", "shop", "storefront"]).await;
    assert!(ok);
    let (_, rows) = table(&out);
    assert_eq!(&rows[0][..4], ["storefront", "3/3", "3", "3"]);
    let (ok, out, _) = env.kubectl(&["get", "nodes", "-L", "agentpool", &user_node(1)]).await;
    assert!(ok);
    let (cols, rows) = table(&out);
    assert_eq!(cols.last().map(String::as_str), Some("AGENTPOOL"));
    assert_eq!(rows[0].last().map(String::as_str), Some("user"));
    let (ok, out, _) = env
        .kubectl(&["get", "ds", "-n", "kube-system", "kube-proxy", "-o", "json"])
        .await;
    assert!(ok);
    let ds: Value = serde_json::from_str(&out).unwrap();
    // On every Linux node: 5 Ubuntu and 1 Azure Linux.
    assert_eq!(ds["status"]["desiredNumberScheduled"], 6);
    assert_eq!(ds["status"]["numberReady"], 6);
    env.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_watch_cordon_uncordon() {
    skip_unless_root!();
    let env = Env::default().await;
    let node = user_node(1);
    let mut child = tokio::process::Command::new("kubectl")
        .args(["get", "nodes", &node, "-w", "--no-headers"])
        .arg(format!("--cache-dir={}", env.dir.path().join("kube-cache").display()))
        .env("KUBECONFIG", env.state().join("kubeconfig"))
        .env("HOME", env.dir.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("kubectl get -w starts");
    let stdout = child.stdout.take().unwrap();
    let mut lines = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(stdout));
    let first = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
        .await
        .expect("first line")
        .unwrap()
        .unwrap();
    assert!(first.starts_with(&node) && first.contains(" Ready "), "{first}");

    let (ok, out, err) = env.kubectl(&["cordon", &node]).await;
    assert!(ok, "cordon failed: {err}");
    assert_eq!(out.trim(), format!("node/{node} cordoned"));
    let seen = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let l = lines.next_line().await.unwrap().expect("watch output");
            if l.contains("Ready,SchedulingDisabled") {
                return l;
            }
        }
    })
    .await
    .expect("the watch shows the cordon");
    assert!(seen.starts_with(&node));
    let _ = child.kill().await;
    let n = env.nodes().get(&node).await.unwrap();
    assert_eq!(n.spec.unwrap().unschedulable, Some(true));
    let (ok, out, err) = env.kubectl(&["uncordon", &node]).await;
    assert!(ok, "uncordon failed: {err}");
    assert_eq!(out.trim(), format!("node/{node} uncordoned"));
    let n = env.nodes().get(&node).await.unwrap();
    assert_ne!(n.spec.unwrap().unschedulable, Some(true));
    env.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_drain_user_node() {
    skip_unless_root!();
    let env = Env::default().await;
    let node = user_node(0);
    let (ok, out, err) = env
        .kubectl(&[
            "drain",
            &node,
            "--ignore-daemonsets",
            "--delete-emptydir-data",
            "--force",
            "--timeout=60s",
        ])
        .await;
    assert!(ok, "drain failed:\n{out}\n{err}");
    assert!(out.contains(&format!("node/{node} drained")), "{out}\n{err}");
    assert!(out.contains("evicting pod shop/storefront-"), "{out}");
    let all: Api<Pod> = Api::all(env.client.clone());
    let left = all
        .list(&ListParams::default().fields(&format!("spec.nodeName={node}")))
        .await
        .unwrap();
    for p in &left.items {
        let mirror = p.annotations().contains_key("kubernetes.io/config.mirror");
        let ds = p
            .owner_references()
            .iter()
            .any(|o| o.kind == "DaemonSet" && o.controller == Some(true));
        assert!(mirror || ds, "{} is still on the drained node", p.name_any());
    }
    assert!(left.items.len() >= 4, "DaemonSet and mirror pods stay");
    // Everything evicted from a Deployment runs Ready elsewhere.
    let shop = env.pods("shop");
    eventually(
        "shop workloads back to full strength",
        Duration::from_secs(15),
        || async {
            let l = shop.list(&ListParams::default()).await.ok()?;
            let ready = l
                .items
                .iter()
                .filter(|p| pod_ready(p) && p.metadata.deletion_timestamp.is_none())
                .count();
            (ready == 6).then_some(())
        },
    )
    .await;
    let ev = env.sim.events();
    let cordon = ev
        .iter()
        .position(|e| e.kind == "cordon" && e.node.as_deref() == Some(node.as_str()))
        .expect("cordon recorded");
    let first_eviction = ev
        .iter()
        .position(|e| e.kind == "eviction")
        .expect("evictions recorded");
    assert!(cordon < first_eviction);
    env.shutdown().await;
}

const SMALL: &str = r#"
cluster: {name: small, ageDays: 3}
timing: {podStartSeconds: 0.3, terminationSeconds: 0.1}
pools:
  - {name: sys, mode: System, count: 2}
  - {name: apps, count: 1}
workloads:
  - {kind: Deployment, name: web, namespace: team, replicas: 2, pool: apps, pdb: {minAvailable: 1}}
  - {kind: DaemonSet, name: agent}
kured: {lockHolder: aks-sys-31415926-vmss000001}
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn controllers_follow_nodes_scale_and_kured() {
    skip_unless_root!();
    use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet};
    let env = Env::start(Scenario::parse(SMALL, "small").unwrap()).await;
    let apps_node = "aks-apps-31417037-vmss000000".to_string();
    let team = env.pods("team");
    let pdbs: Api<PodDisruptionBudget> = Api::namespaced(env.client.clone(), "team");
    let ds: Api<DaemonSet> = Api::namespaced(env.client.clone(), "kube-system");

    // kured's DaemonSet holds its lock in kured's own format, and runs everywhere.
    let kured = ds.get("kured").await.unwrap();
    let lock: Value = serde_json::from_str(&kured.annotations()["weave.works/kured-node-lock"]).unwrap();
    assert_eq!(lock["nodeID"], "aks-sys-31415926-vmss000001");
    assert_eq!(lock["metadata"], json!({"unschedulable": false}));
    assert_eq!(lock["TTL"], 0);
    assert!(lock["created"].as_str().is_some_and(|c| c.ends_with('Z')));
    assert_eq!(kured.status.unwrap().number_ready, 3);

    let web = team.list(&ListParams::default().labels("app=web")).await.unwrap();
    assert_eq!(web.items.len(), 2);
    assert!(web
        .items
        .iter()
        .all(|p| p.spec.as_ref().unwrap().node_name.as_deref() == Some(apps_node.as_str())));
    let rs = &web.items[0].owner_references()[0];
    assert_eq!(rs.kind, "ReplicaSet");
    let rsets: Api<ReplicaSet> = Api::namespaced(env.client.clone(), "team");
    let rs_obj = rsets.get(&rs.name).await.unwrap();
    let hash = &rs_obj.labels()["pod-template-hash"];
    assert_eq!(rs.name, format!("web-{hash}"));
    assert_eq!(hash.len(), 10);

    // No schedulable node: a replacement stays Pending, Unschedulable, until the node is back.
    env.nodes()
        .patch(
            &apps_node,
            &PatchParams::default(),
            &Patch::Strategic(json!({"spec": {"unschedulable": true}})),
        )
        .await
        .unwrap();
    let gone = web.items[0].name_any();
    team.delete(
        &gone,
        &DeleteParams {
            grace_period_seconds: Some(0),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let pending = eventually("an unschedulable replacement", Duration::from_secs(5), || async {
        let l = team.list(&ListParams::default().labels("app=web")).await.ok()?;
        l.items.into_iter().find(|p| {
            p.status.as_ref().and_then(|s| s.conditions.as_ref()).is_some_and(|c| {
                c.iter()
                    .any(|c| c.type_ == "PodScheduled" && c.reason.as_deref() == Some("Unschedulable"))
            })
        })
    })
    .await;
    assert_eq!(pending.status.as_ref().unwrap().phase.as_deref(), Some("Pending"));
    env.nodes()
        .patch(
            &apps_node,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"unschedulable": null}})),
        )
        .await
        .unwrap();
    eventually("replacement Ready", Duration::from_secs(5), || async {
        let p = team.get(&pending.name_any()).await.ok()?;
        pod_ready(&p).then_some(())
    })
    .await;

    // The node goes away (kubelet stops posting): its pods turn NotReady, the budget and
    // the DaemonSet follow; back with a new bootID, the same pods are Ready again, restarted.
    let before: Vec<String> = team
        .list(&ListParams::default().labels("app=web"))
        .await
        .unwrap()
        .items
        .iter()
        .map(|p| p.uid().unwrap())
        .collect();
    aks_sim::model::set_readiness(&env.sim.shared.store, &apps_node, aks_sim::model::Readiness::Unknown).unwrap();
    eventually("pods NotReady and the budget at 0", Duration::from_secs(5), || async {
        let l = team.list(&ListParams::default().labels("app=web")).await.ok()?;
        let s = pdbs.get("web-pdb").await.ok()?.status?;
        (l.items.iter().all(|p| !pod_ready(p)) && s.current_healthy == Some(0) && s.disruptions_allowed == Some(0))
            .then_some(())
    })
    .await;
    let agent: Api<DaemonSet> = Api::namespaced(env.client.clone(), "default");
    let agent = agent.get("agent").await.unwrap().status.unwrap();
    assert_eq!((agent.desired_number_scheduled, agent.number_ready), (3, 2));
    aks_sim::model::set_boot(
        &env.sim.shared.store,
        &apps_node,
        &aks_sim::model::new_boot_id(),
        "5.15.0-1073-azure",
        Some(aks_sim::model::Readiness::Ready),
    )
    .unwrap();
    let after = eventually("pods Ready again", Duration::from_secs(5), || async {
        let l = team.list(&ListParams::default().labels("app=web")).await.ok()?;
        l.items.iter().all(pod_ready).then_some(l.items)
    })
    .await;
    let after_uids: Vec<String> = after.iter().map(|p| p.uid().unwrap()).collect();
    assert_eq!(before.len(), after_uids.len());
    assert!(
        before.iter().all(|u| after_uids.contains(u)),
        "pods were kept, not recreated"
    );
    for p in &after {
        let cs = &p.status.as_ref().unwrap().container_statuses.as_ref().unwrap()[0];
        assert_eq!(cs.restart_count, 1, "{} restarted once", p.name_any());
    }

    // Scaling the Deployment, then deleting it: its ReplicaSet and pods go too.
    let deploys: Api<Deployment> = Api::namespaced(env.client.clone(), "team");
    deploys
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 3}})),
        )
        .await
        .unwrap();
    eventually("3 ready replicas", Duration::from_secs(5), || async {
        let d = deploys.get("web").await.ok()?;
        (d.status?.ready_replicas == Some(3)).then_some(())
    })
    .await;
    deploys.delete("web", &DeleteParams::default()).await.unwrap();
    eventually("ReplicaSet and pods collected", Duration::from_secs(5), || async {
        let rs = rsets.list(&ListParams::default()).await.ok()?;
        let pods = team.list(&ListParams::default()).await.ok()?;
        (rs.items.is_empty() && pods.items.is_empty()).then_some(())
    })
    .await;

    // Releasing kured's lock is recorded in the event log.
    ds.patch(
        "kured",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"annotations": {"weave.works/kured-node-lock": null}}})),
    )
    .await
    .unwrap();
    eventually("kured-lock event", Duration::from_secs(7), || async {
        env.sim
            .events()
            .into_iter()
            .find(|e| e.kind == "kured-lock" && e.detail.starts_with("released"))
    })
    .await;
    env.shutdown().await;
}
