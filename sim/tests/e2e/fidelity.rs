//! Where aks-sim answered differently from a real API server, proven with real
//! clients (kubectl 1.32, kube-rs, raw HTTPS): server-side dry run, unconditional Lease
//! updates, field selectors, node liveness, `--nodes N`.

use crate::common::{api_status, eventually, user_node, Emulator as Env};
use aks_sim::{Fault, Scenario};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::ResourceExt;
use serde_json::{json, Value};
use std::time::Duration;

/// A raw request with a JSON body: (status code, JSON answer).
async fn send(env: &Env, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
    let (http, url, token) = env.raw();
    let mut req = http.request(method, format!("{url}{path}")).bearer_auth(token);
    if let Some(b) = body {
        req = req.header("Content-Type", "application/json").body(b.to_string());
    }
    let resp = req.send().await.expect("request");
    let code = resp.status().as_u16();
    (code, resp.json().await.unwrap_or(Value::Null))
}

fn event_count(env: &Env, kind: &str) -> usize {
    env.events().iter().filter(|e| e.kind == kind).count()
}

/// (name, uid, resourceVersion) of every pod, sorted.
async fn pod_snapshot(client: &kube::Client) -> Vec<(String, String, String)> {
    let all: Api<Pod> = Api::all(client.clone());
    let mut v: Vec<_> = all
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .iter()
        .map(|p| {
            (
                format!("{}/{}", p.namespace().unwrap_or_default(), p.name_any()),
                p.uid().unwrap_or_default(),
                p.resource_version().unwrap_or_default(),
            )
        })
        .collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_side_dry_run_changes_nothing() {
    skip_unless_root!();
    let env = Env::default().await;
    let node = user_node(0);
    let nodes: Api<Node> = Api::all(env.client.clone());
    let shop = env.pods("shop");
    let pdbs: Api<PodDisruptionBudget> = Api::namespaced(env.client.clone(), "shop");
    // Let the controllers settle so that resourceVersions only move if we move them.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let before = pod_snapshot(&env.client).await;
    let pdb_before = pdbs.get("storefront-pdb").await.unwrap().status;

    // kubectl drain --dry-run=server: the cordon patch carries ?dryRun=All, each eviction
    // deleteOptions.dryRun: ["All"] in its body.
    let (ok, out, err) = env
        .kubectl(&[
            "drain",
            &node,
            "--dry-run=server",
            "--ignore-daemonsets",
            "--delete-emptydir-data",
            "--force",
            "--timeout=30s",
        ])
        .await;
    assert!(ok, "drain --dry-run=server failed:\n{out}\n{err}");
    assert!(out.contains("(server dry run)"), "{out}");
    assert!(
        out.contains("evicting pod") && out.contains("shop/storefront-"),
        "{out}\n{err}"
    );
    // kubectl delete --dry-run=server: DeleteOptions with dryRun in the body.
    let (ok, out, err) = env
        .kubectl(&["delete", "pod", "debug-shell", "-n", "default", "--dry-run=server"])
        .await;
    assert!(ok, "{out}\n{err}");
    assert!(out.contains("deleted (server dry run)"), "{out}");
    let (ok, out, err) = env.kubectl(&["delete", "namespace", "shop", "--dry-run=server"]).await;
    assert!(ok, "{out}\n{err}");

    // kube-rs: delete (DeleteParams go in the body), create, replace and patch (query).
    let dp = DeleteParams {
        dry_run: true,
        ..Default::default()
    };
    env.pods("default")
        .delete("debug-shell", &dp)
        .await
        .expect("dry-run delete");
    let pp = PostParams {
        dry_run: true,
        ..Default::default()
    };
    let new_pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "dry-pod"},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]}
    }))
    .unwrap();
    let created = shop.create(&pp, &new_pod).await.expect("dry-run create");
    assert_eq!(created.name_any(), "dry-pod");
    let mut n = nodes.get(&node).await.unwrap();
    n.labels_mut().insert("dry".into(), "run".into());
    nodes.replace(&node, &pp, &n).await.expect("dry-run replace");
    let patch = PatchParams {
        dry_run: true,
        ..Default::default()
    };
    let patched = nodes
        .patch(&node, &patch, &Patch::Merge(json!({"spec": {"unschedulable": true}})))
        .await
        .expect("dry-run patch");
    assert_eq!(
        patched.spec.unwrap().unschedulable,
        Some(true),
        "the answer shows the result"
    );

    // Raw: an eviction with deleteOptions.dryRun in the body, and a DELETE with it.
    let sf = before
        .iter()
        .find(|(k, _, _)| k.starts_with("shop/storefront-"))
        .map(|(k, _, _)| k.trim_start_matches("shop/").to_string())
        .unwrap();
    let eviction = json!({"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": sf, "namespace": "shop"},
                          "deleteOptions": {"dryRun": ["All"]}});
    for _ in 0..3 {
        // The budget allows one disruption: a dry run never spends it.
        let (code, v) = send(
            &env,
            reqwest::Method::POST,
            &format!("/api/v1/namespaces/shop/pods/{sf}/eviction"),
            Some(eviction.clone()),
        )
        .await;
        assert_eq!(code, 201, "{v}");
    }
    let (code, v) = send(
        &env,
        reqwest::Method::DELETE,
        &format!("/api/v1/namespaces/shop/pods/{sf}"),
        Some(json!({"kind": "DeleteOptions", "apiVersion": "v1", "dryRun": ["All"]})),
    )
    .await;
    assert_eq!(code, 200, "{v}");
    let (code, _) = send(
        &env,
        reqwest::Method::DELETE,
        "/api/v1/namespaces/shop/pods",
        Some(json!({"dryRun": ["All"]})),
    )
    .await;
    assert_eq!(code, 200);

    // Nothing changed: no pod gone or touched, the node not cordoned, the budget unspent,
    // and not one eviction, deletion or cordon in the emulator's log.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(pod_snapshot(&env.client).await, before);
    let n = nodes.get(&node).await.unwrap();
    assert_eq!(n.spec.as_ref().unwrap().unschedulable, None);
    assert!(!n.labels().contains_key("dry"));
    assert_eq!(pdbs.get("storefront-pdb").await.unwrap().status, pdb_before);
    for kind in ["eviction", "pod-deleted", "cordon"] {
        assert_eq!(event_count(&env, kind), 0, "{kind} recorded by a dry run");
    }

    // A dry-run eviction still answers as the real one would: 429 when the budget refuses.
    env.sim
        .fault(Fault::PdbNeverAllows {
            namespace: "shop".into(),
            name: "storefront-pdb".into(),
        })
        .unwrap();
    eventually("the budget at 0", Duration::from_secs(5), || async {
        let st = pdbs.get("storefront-pdb").await.ok()?.status?;
        (st.disruptions_allowed == Some(0)).then_some(())
    })
    .await;
    let (code, v) = send(
        &env,
        reqwest::Method::POST,
        &format!("/api/v1/namespaces/shop/pods/{sf}/eviction?dryRun=All"),
        Some(json!({"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": sf}})),
    )
    .await;
    assert_eq!((code, v["reason"].as_str()), (429, Some("TooManyRequests")), "{v}");
    // Only `All` is a dry-run value.
    let (code, v) = send(
        &env,
        reqwest::Method::DELETE,
        &format!("/api/v1/namespaces/shop/pods/{sf}?dryRun=Maybe"),
        None,
    )
    .await;
    assert_eq!(code, 422, "{v}");
    assert!(
        v["message"].as_str().unwrap().contains("supported values: \"All\""),
        "{v}"
    );
    assert!(shop.get_opt(&sf).await.unwrap().is_some());
    env.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unconditional_lease_update_is_refused() {
    skip_unless_root!();
    let env = Env::default().await;
    let leases: Api<Lease> = Api::namespaced(env.client.clone(), "kube-system");
    let lease: Lease = serde_json::from_value(json!({
        "metadata": {"name": "lock"},
        "spec": {"holderIdentity": "runner-a", "leaseDurationSeconds": 60}
    }))
    .unwrap();
    // A PUT may create a Lease (no resourceVersion needed for that).
    leases
        .replace("lock", &PostParams::default(), &lease)
        .await
        .expect("update-as-create");
    // Overwriting it without the resourceVersion read is refused, as kube-apiserver does.
    let mut theirs = lease.clone();
    theirs.spec.as_mut().unwrap().holder_identity = Some("runner-b".into());
    let st = api_status(
        leases
            .replace("lock", &PostParams::default(), &theirs)
            .await
            .unwrap_err(),
    );
    assert_eq!((st.code, st.reason.as_str()), (422, "Invalid"));
    assert_eq!(
        st.message,
        "leases.coordination.k8s.io \"lock\" is invalid: metadata.resourceVersion: Invalid value: 0x0: must be specified for an update"
    );
    let got = leases.get("lock").await.unwrap();
    assert_eq!(got.spec.as_ref().unwrap().holder_identity.as_deref(), Some("runner-a"));
    // With the resourceVersion it was read at: fine.
    let mut ok = got.clone();
    ok.spec.as_mut().unwrap().holder_identity = Some("runner-b".into());
    leases
        .replace("lock", &PostParams::default(), &ok)
        .await
        .expect("conditional update");
    // (kubectl replace is not such a client: without a resourceVersion in the manifest it
    // reads the object and sends the resourceVersion it read, on a real cluster too.)
    // Other kinds keep allowing unconditional updates (Nodes here).
    let nodes: Api<Node> = Api::all(env.client.clone());
    let mut n = nodes.get(&user_node(0)).await.unwrap();
    n.metadata.resource_version = None;
    n.labels_mut().insert("team".into(), "a".into());
    nodes
        .replace(&user_node(0), &PostParams::default(), &n)
        .await
        .expect("unconditional node update");
    env.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn field_selectors_match_and_fail_as_the_api_server() {
    skip_unless_root!();
    let env = Env::default().await;
    // spec.unschedulable=false matches nodes where the field is unset.
    let (ok, out, err) = env
        .kubectl(&[
            "get",
            "nodes",
            "--field-selector",
            "spec.unschedulable=false",
            "-o",
            "name",
        ])
        .await;
    assert!(ok, "{err}");
    let names: Vec<&str> = out.lines().collect();
    assert_eq!(names.len(), 7, "all nodes but the cordoned one: {out}");
    assert!(!out.contains(&user_node(2)), "{out}");
    let (ok, out, _) = env
        .kubectl(&[
            "get",
            "nodes",
            "--field-selector",
            "spec.unschedulable=true",
            "-o",
            "name",
        ])
        .await;
    assert!(ok);
    assert_eq!(out.trim(), format!("node/{}", user_node(2)));
    // A typo is a 400 naming the field, not an empty list.
    let (ok, out, err) = env
        .kubectl(&["get", "pods", "-A", "--field-selector", "spec.NodeName=x"])
        .await;
    assert!(!ok, "{out}");
    assert!(err.contains("field label not supported: spec.NodeName"), "{err}");
    let all: Api<Pod> = Api::all(env.client.clone());
    let st = api_status(
        all.list(&ListParams::default().fields("spec.NodeName=x"))
            .await
            .unwrap_err(),
    );
    assert_eq!((st.code, st.reason.as_str()), (400, "BadRequest"));
    assert_eq!(st.message, "field label not supported: spec.NodeName");
    // Each kind has its own field labels: nodes have no spec.nodeName...
    let nodes: Api<Node> = Api::all(env.client.clone());
    let st = api_status(
        nodes
            .list(&ListParams::default().fields("spec.nodeName=x"))
            .await
            .unwrap_err(),
    );
    assert_eq!(st.message, "field label not supported: spec.nodeName");
    // ...kinds without their own take only metadata.name and metadata.namespace...
    let (code, v) = send(
        &env,
        reqwest::Method::GET,
        "/apis/apps/v1/deployments?fieldSelector=spec.replicas%3D2",
        None,
    )
    .await;
    assert_eq!(code, 400);
    assert_eq!(
        v["message"],
        "\"spec.replicas\" is not a known field selector: only \"metadata.name\", \"metadata.namespace\""
    );
    let (code, v) = send(
        &env,
        reqwest::Method::GET,
        "/apis/apps/v1/deployments?fieldSelector=metadata.name%3Dcheckout",
        None,
    )
    .await;
    assert_eq!(code, 200);
    assert_eq!(v["items"].as_array().unwrap().len(), 1);
    // ...and watches and collection deletes check them too.
    let (code, _) = send(
        &env,
        reqwest::Method::GET,
        "/api/v1/pods?watch=1&fieldSelector=spec.host%3Dx&timeoutSeconds=1",
        None,
    )
    .await;
    assert_eq!(code, 200, "spec.host is the old name of spec.nodeName");
    let (code, _) = send(
        &env,
        reqwest::Method::DELETE,
        "/api/v1/namespaces/shop/pods?fieldSelector=spec.nodename%3Dx",
        None,
    )
    .await;
    assert_eq!(code, 400);
    // The pods of a node, and pods that are not finished, as kubectl drain asks.
    let on_node = all
        .list(&ListParams::default().fields(&format!(
            "spec.nodeName={},status.phase!=Succeeded,status.phase!=Failed",
            user_node(0)
        )))
        .await
        .unwrap();
    assert!(!on_node.items.is_empty());
    env.shutdown().await;
}

const LIVENESS: &str = r#"
cluster: {name: live, ageDays: 30}
timing:
  shutdownSeconds: 0.1
  bootSeconds: 4
  readySeconds: 0.3
  leaseRenewSeconds: 0.4
  nodeMonitorGraceSeconds: 1.2
  nodeStatusSeconds: 1
pools:
  - {name: sys, mode: System, count: 2}
"#;

fn ready_condition(n: &Node) -> k8s_openapi::api::core::v1::NodeCondition {
    n.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
        .cloned()
        .expect("a Ready condition")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubelet_leases_and_heartbeats_tick_and_stop_while_down() {
    skip_unless_root!();
    let env = Env::start(Scenario::parse(LIVENESS, "liveness").unwrap()).await;
    let node = "aks-sys-31415926-vmss000000";
    let other = "aks-sys-31415926-vmss000001";
    let leases: Api<Lease> = Api::namespaced(env.client.clone(), "kube-node-lease");
    let nodes: Api<Node> = Api::all(env.client.clone());
    let renew = |l: &Lease| l.spec.as_ref().and_then(|s| s.renew_time.clone()).map(|t| t.0);
    let heartbeat = |n: &Node| ready_condition(n).last_heartbeat_time.map(|t| t.0);

    // Heartbeats are fresh from the start (not the node's creation 30 days ago) and move.
    let n0 = nodes.get(node).await.unwrap();
    let hb0 = heartbeat(&n0).unwrap();
    assert!(
        jiff::Timestamp::now().as_second() - hb0.as_second() < 10,
        "heartbeat {hb0}"
    );
    let transition = ready_condition(&n0).last_transition_time.unwrap().0;
    assert!(transition.as_second() < hb0.as_second() - 29 * 86_400, "{transition}");
    let r0 = renew(&leases.get(node).await.unwrap()).unwrap();
    eventually(
        "the lease renewed and a heartbeat posted",
        Duration::from_secs(5),
        || async {
            let r = renew(&leases.get(node).await.ok()?)?;
            let hb = heartbeat(&nodes.get(node).await.ok()?)?;
            (r > r0 && hb > hb0).then_some(())
        },
    )
    .await;

    // The machine goes down (a reboot that takes 4 s): the kubelet stops renewing, and once
    // the grace period is over the node lifecycle controller marks the node Unknown.
    env.sim
        .fault(Fault::SlowReboot {
            node: node.into(),
            seconds: 4.0,
        })
        .unwrap();
    let root = env
        .sim
        .shared
        .node_runtime
        .get()
        .unwrap()
        .node_root(node)
        .unwrap()
        .to_path_buf();
    let t0 = std::time::Instant::now();
    std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(root.join("var/lib/aks-sim/requests"))
        .and_then(|mut f| std::io::Write::write_all(&mut f, b"reboot\ttest\n"))
        .unwrap();
    let unknown = eventually("the node Unknown", Duration::from_secs(4), || async {
        let n = nodes.get(node).await.ok()?;
        (ready_condition(&n).status == "Unknown").then_some(n)
    })
    .await;
    // Not before the grace period since the last renewal (which came up to one renew
    // interval before the kubelet stopped).
    let after = t0.elapsed();
    assert!(after >= Duration::from_millis(800), "Unknown too early: {after:?}");
    let last = renew(&leases.get(node).await.unwrap()).unwrap();
    let silent_ms = jiff::Timestamp::now().as_millisecond() - last.as_millisecond();
    assert!(silent_ms >= 1200, "Unknown after {silent_ms} ms without a renewal");
    let c = ready_condition(&unknown);
    assert_eq!(c.reason.as_deref(), Some("NodeStatusUnknown"));
    assert_eq!(c.message.as_deref(), Some("Kubelet stopped posting node status."));
    let taints: Vec<String> = unknown
        .spec
        .as_ref()
        .and_then(|s| s.taints.clone())
        .unwrap_or_default()
        .iter()
        .map(|t| format!("{}:{}", t.key, t.effect))
        .collect();
    assert!(
        taints.contains(&"node.kubernetes.io/unreachable:NoExecute".to_string()),
        "{taints:?}"
    );
    // The lease and the heartbeat stay where the kubelet left them while it is down.
    let stale_lease = renew(&leases.get(node).await.unwrap());
    let stale_hb = heartbeat(&unknown);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(renew(&leases.get(node).await.unwrap()), stale_lease);
    assert_eq!(heartbeat(&nodes.get(node).await.unwrap()), stale_hb);
    // ...while the other node's kubelet keeps renewing.
    let other_before = renew(&leases.get(other).await.unwrap());
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_ne!(renew(&leases.get(other).await.unwrap()), other_before);
    assert_eq!(ready_condition(&nodes.get(other).await.unwrap()).status, "True");

    // Back from the boot: renewing again, Ready.
    eventually("the node Ready again", Duration::from_secs(10), || async {
        let n = nodes.get(node).await.ok()?;
        (ready_condition(&n).status == "True").then_some(())
    })
    .await;
    let back = renew(&leases.get(node).await.unwrap());
    assert!(back > stale_lease, "renewed after the boot");
    // kubectl describe node shows the Lease the kubelet renews.
    let (ok, out, err) = env.kubectl(&["describe", "node", node]).await;
    assert!(ok, "{err}");
    assert!(out.contains(&format!("HolderIdentity:  {node}")), "{out}");
    assert!(out.contains("RenewTime:"), "{out}");
    env.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drains_and_reboots_are_recorded_as_kubernetes_events() {
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
    assert!(ok, "{out}\n{err}");
    let shop = env.pods("shop");
    eventually("shop back to full strength", Duration::from_secs(15), || async {
        let l = shop.list(&ListParams::default()).await.ok()?;
        let ready = l
            .items
            .iter()
            .filter(|p| {
                p.metadata.deletion_timestamp.is_none()
                    && p.status
                        .as_ref()
                        .and_then(|s| s.conditions.as_ref())
                        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
            })
            .count();
        (ready == 6).then_some(())
    })
    .await;
    // Cordon twice more: the kubelet's events aggregate (count 2).
    for args in [["uncordon", node.as_str()], ["cordon", node.as_str()]] {
        let (ok, _, err) = env.kubectl(&args).await;
        assert!(ok, "{err}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    let (ok, out, err) = env.kubectl(&["get", "events", "-A"]).await;
    assert!(ok, "{err}");
    for want in [
        "NodeNotSchedulable",
        "NodeSchedulable",
        "Killing",
        "Evicted",
        "Scheduled",
        "SuccessfulCreate",
    ] {
        assert!(out.contains(want), "`kubectl get events -A` lacks {want}:\n{out}");
    }
    assert!(out.contains(&format!("node/{node}")), "{out}");
    assert!(out.contains("Stopping container storefront"), "{out}");
    let (ok, out, err) = env
        .kubectl(&[
            "get",
            "events",
            "-n",
            "default",
            "--field-selector",
            &format!("involvedObject.name={node},reason=NodeNotSchedulable"),
            "-o",
            "json",
        ])
        .await;
    assert!(ok, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    let items = v["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{v}");
    let e = &items[0];
    assert_eq!(e["count"], 2, "{e}");
    assert_eq!(e["source"]["component"], "kubelet");
    assert_eq!(e["involvedObject"]["kind"], "Node");
    assert_eq!(e["message"], format!("Node {node} status is now: NodeNotSchedulable"));
    assert!(e["firstTimestamp"].is_string() && e["lastTimestamp"].is_string());
    // The evicted pods carry the eviction's condition in their event and status.
    let (_, out, _) = env
        .kubectl(&[
            "get",
            "events",
            "-n",
            "shop",
            "--field-selector",
            "reason=Evicted",
            "-o",
            "json",
        ])
        .await;
    let v: Value = serde_json::from_str(&out).unwrap();
    let msgs: Vec<&str> = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["message"].as_str())
        .collect();
    assert!(
        msgs.iter()
            .any(|m| m.contains("PodDisruptionBudget storefront-pdb allowed the disruption")),
        "{msgs:?}"
    );

    // A reboot: the kubelet says Starting and Rebooted, the node goes NotReady and Ready.
    let other = user_node(1);
    env.request_reboot(&other);
    let nodes: Api<Node> = Api::all(env.client.clone());
    eventually("the node back with a new bootID", Duration::from_secs(15), || async {
        let n = nodes.get(&other).await.ok()?;
        let ready = n
            .status
            .as_ref()?
            .conditions
            .as_ref()?
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True");
        let rebooted = env.sim.events().iter().any(|e| e.kind == "node-booted");
        (ready && rebooted).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (ok, out, err) = env.kubectl(&["describe", "node", &other]).await;
    assert!(ok, "{err}");
    let events = out.split("Events:").nth(1).unwrap_or_default();
    for want in [
        "Rebooted",
        "Starting",
        "NodeNotReady",
        "NodeReady",
        "has been rebooted, boot id:",
    ] {
        assert!(events.contains(want), "`kubectl describe node` lacks {want}:\n{events}");
    }
    env.shutdown().await;
}

/// The kubelet posts a new boot's bootID and its Ready condition in one status update: no
/// watcher sees the new bootID beside the previous boot's `Ready=True` (a client proving a
/// reboot by "new bootID and Ready" would otherwise take a node that is still starting for
/// one that is back).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_boot_id_comes_with_the_kubelets_not_ready() {
    skip_unless_root!();
    use futures::{StreamExt, TryStreamExt};
    use kube::api::{WatchEvent, WatchParams};
    let env = Env::default().await;
    let node = user_node(1);
    let nodes: Api<Node> = Api::all(env.client.clone());
    let before = nodes.get(&node).await.unwrap();
    let boot_id = |n: &Node| {
        n.status
            .as_ref()
            .and_then(|s| s.node_info.as_ref())
            .map(|i| i.boot_id.clone())
    };
    let old = boot_id(&before).unwrap();
    let wp = WatchParams::default()
        .fields(&format!("metadata.name={node}"))
        .timeout(60);
    let mut stream = nodes
        .watch(&wp, &before.resource_version().unwrap())
        .await
        .unwrap()
        .boxed();
    env.request_reboot(&node);
    let first_new = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(ev) = stream.try_next().await.unwrap() {
            if let WatchEvent::Modified(n) = ev {
                if boot_id(&n).is_some_and(|b| b != old) {
                    return n;
                }
            }
        }
        panic!("the watch ended before the node booted");
    })
    .await
    .expect("the node boots within 30 s");
    assert_ne!(
        ready_condition(&first_new).status,
        "True",
        "the first update with the new bootID still says Ready=True"
    );
    eventually("the node Ready on its new boot", Duration::from_secs(15), || async {
        let n = nodes.get(&node).await.ok()?;
        (boot_id(&n)? != old && ready_condition(&n).status == "True").then_some(())
    })
    .await;
    env.shutdown().await;
}

const RESTRICTED: &str = r#"
cluster: {name: rbac}
pools:
  - {name: sys, mode: System, count: 1}
  - {name: apps, count: 1}
workloads:
  - {kind: Deployment, name: web, namespace: shop, replicas: 1, pool: apps}
access:
  user:
    username: ops@contoso.com
    groups: [aks-operators]
    clusterRole: node-viewer
    rules:
      - {verbs: [get, list, watch], apiGroups: [""], resources: [nodes, pods]}
      - {verbs: [create], apiGroups: [""], resources: [pods/eviction], namespaces: [shop]}
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whoami_can_i_and_forbidden_answer_as_rbac_says() {
    skip_unless_root!();
    let env = Env::start(Scenario::parse(RESTRICTED, "rbac").unwrap()).await;
    let node = "aks-apps-31417037-vmss000000";
    let (ok, out, err) = env.kubectl(&["auth", "whoami"]).await;
    assert!(ok, "{err}");
    assert!(out.contains("ops@contoso.com"), "{out}");
    assert!(out.contains("[aks-operators system:authenticated]"), "{out}");
    for (args, yes) in [
        (vec!["list", "nodes"], true),
        (vec!["watch", "pods", "-A"], true),
        (vec!["patch", "nodes"], false),
        (vec!["delete", "pods", "-n", "shop"], false),
        // (`pods/NAME` is a pod's name for can-i: subresources go in --subresource.)
        (vec!["create", "pods", "--subresource=eviction", "-n", "shop"], true),
        (vec!["create", "pods", "--subresource=eviction", "-n", "default"], false),
        (vec!["create", "pods", "--subresource=exec", "-n", "shop"], false),
    ] {
        let mut a = vec!["auth", "can-i"];
        a.extend(args.iter().copied());
        let (ok, out, err) = env.kubectl(&a).await;
        assert_eq!(ok, yes, "kubectl {a:?}: {out}{err}");
        assert_eq!(out.trim(), if yes { "yes" } else { "no" }, "kubectl {a:?}: {err}");
    }
    let (ok, out, err) = env.kubectl(&["auth", "can-i", "--list", "-n", "shop"]).await;
    assert!(ok, "{err}");
    assert!(out.contains("pods/eviction"), "{out}");
    // Allowed reads work; writes outside the role are 403 with the API server's message.
    let (ok, out, err) = env.kubectl(&["get", "nodes"]).await;
    assert!(ok && out.contains(node), "{out}{err}");
    // (kubectl 1.32's cordon prints the error but exits 0.)
    let (_, _, err) = env.kubectl(&["cordon", node]).await;
    assert!(
        err.contains(&format!(
            "nodes \"{node}\" is forbidden: User \"ops@contoso.com\" cannot patch resource \"nodes\" in API group \"\" at the cluster scope"
        )),
        "{err}"
    );
    let deploys: Api<k8s_openapi::api::apps::v1::Deployment> = Api::all(env.client.clone());
    let st = api_status(deploys.list(&ListParams::default()).await.unwrap_err());
    assert_eq!((st.code, st.reason.as_str()), (403, "Forbidden"));
    assert_eq!(
        st.message,
        "deployments.apps is forbidden: User \"ops@contoso.com\" cannot list resource \"deployments\" in API group \"apps\" at the cluster scope"
    );
    let web = env
        .pods("shop")
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .remove(0)
        .name_any();
    let st = api_status(
        env.pods("shop")
            .delete(&web, &DeleteParams::default())
            .await
            .unwrap_err(),
    );
    assert_eq!(
        st.message,
        format!("pods \"{web}\" is forbidden: User \"ops@contoso.com\" cannot delete resource \"pods\" in API group \"\" in the namespace \"shop\"")
    );
    // The eviction the role grants goes through.
    let (ok, out, err) = env.kubectl(&["get", "pods", "-n", "shop", "-o", "name"]).await;
    assert!(ok, "{err}");
    assert!(out.contains(&web));
    let (code, v) = send(
        &env,
        reqwest::Method::POST,
        &format!("/api/v1/namespaces/shop/pods/{web}/eviction"),
        Some(json!({"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": web}})),
    )
    .await;
    assert_eq!(code, 201, "{v}");

    // The admin credential is masterclient in system:masters, allowed everything.
    let admin = env.dir.path().join("admin.kubeconfig");
    std::fs::write(&admin, aks_sim::kubeconfig(&env.sim.shared, true)).unwrap();
    let (ok, out, err) = env.kubectl_with(&admin, &["auth", "whoami"]).await;
    assert!(ok, "{err}");
    assert!(out.contains("masterclient") && out.contains("system:masters"), "{out}");
    let (ok, out, _) = env.kubectl_with(&admin, &["auth", "can-i", "patch", "nodes"]).await;
    assert!(ok && out.trim() == "yes", "{out}");
    let (ok, _, err) = env.kubectl_with(&admin, &["cordon", node]).await;
    assert!(ok, "{err}");
    env.shutdown().await;
}

const KINDS: &str = r#"
cluster: {name: kinds}
timing: {podStartSeconds: 0.3, terminationSeconds: 0.1}
pools:
  - {name: sys, mode: System, count: 1}
  - {name: apps, count: 3}
workloads:
  - {kind: StatefulSet, name: db, namespace: data, replicas: 3, pool: apps, pdb: {maxUnavailable: 1}}
  - {kind: Deployment, name: web, namespace: shop, replicas: 2, pool: apps}
  - {kind: DaemonSet, name: agent}
  - {kind: Job, name: migrate, namespace: shop, pool: apps}
  - {kind: CronJob, name: backup, namespace: data, schedule: "*/5 * * * *", pool: apps, runSeconds: 0.5}
"#;

fn uids(pods: &[Pod]) -> std::collections::BTreeSet<String> {
    pods.iter().filter_map(|p| p.uid()).collect()
}

async fn ready_pods(api: &Api<Pod>, labels: &str) -> Vec<Pod> {
    api.list(&ListParams::default().labels(labels))
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|p| {
            p.metadata.deletion_timestamp.is_none()
                && p.status
                    .as_ref()
                    .and_then(|s| s.conditions.as_ref())
                    .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statefulsets_jobs_and_rollout_restart_behave_as_their_controllers() {
    skip_unless_root!();
    let env = Env::start(Scenario::parse(KINDS, "kinds").unwrap()).await;
    let data = env.pods("data");
    let shop = env.pods("shop");
    // A StatefulSet: ordinal pods, all Ready, a budget that allows one disruption.
    let (ok, out, err) = env.kubectl(&["get", "statefulsets", "-n", "data"]).await;
    assert!(ok, "{err}");
    assert!(out.contains("db") && out.contains("3/3"), "{out}");
    let db = ready_pods(&data, "app=db").await;
    let mut names: Vec<String> = db.iter().map(|p| p.name_any()).collect();
    names.sort();
    assert_eq!(names, ["db-0", "db-1", "db-2"]);
    let pdbs: Api<PodDisruptionBudget> = Api::namespaced(env.client.clone(), "data");
    eventually("the db budget allows one", Duration::from_secs(5), || async {
        let st = pdbs.get("db-pdb").await.ok()?.status?;
        (st.disruptions_allowed == Some(1) && st.expected_pods == Some(3)).then_some(())
    })
    .await;

    // Evicting db-1 spends the budget: db-2 is refused until db-1 is back, under its
    // own name, Ready (the classic drain blocker).
    let evict = |pod: &str| {
        let pod = pod.to_string();
        let env = &env;
        async move {
            send(
                env,
                reqwest::Method::POST,
                &format!("/api/v1/namespaces/data/pods/{pod}/eviction"),
                Some(json!({"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": pod}})),
            )
            .await
        }
    };
    let old_uid = data.get("db-1").await.unwrap().uid().unwrap();
    assert_eq!(evict("db-1").await.0, 201);
    let (code, v) = evict("db-2").await;
    assert_eq!(code, 429, "{v}");
    eventually("db-1 recreated and Ready", Duration::from_secs(15), || async {
        let p = data.get_opt("db-1").await.ok()??;
        let ready = p
            .status
            .as_ref()?
            .conditions
            .as_ref()?
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True");
        (ready && p.uid()? != old_uid && p.metadata.deletion_timestamp.is_none()).then_some(())
    })
    .await;
    eventually("db-2 evictable again", Duration::from_secs(10), || async {
        (evict("db-2").await.0 == 201).then_some(())
    })
    .await;

    // Jobs: the seeded one finished, its pod Succeeded on a node; a Job made from the
    // CronJob runs its pod to Succeeded and completes.
    let (ok, out, err) = env.kubectl(&["get", "jobs", "-A"]).await;
    assert!(ok, "{err}");
    assert!(out.contains("migrate") && out.contains("Complete"), "{out}");
    let migrate = shop
        .list(&ListParams::default().labels("job-name=migrate"))
        .await
        .unwrap();
    assert_eq!(migrate.items.len(), 1);
    let p = &migrate.items[0];
    assert_eq!(p.status.as_ref().unwrap().phase.as_deref(), Some("Succeeded"));
    assert!(p.spec.as_ref().unwrap().node_name.is_some());
    let (ok, out, err) = env.kubectl(&["get", "cronjobs", "-n", "data"]).await;
    assert!(ok && out.contains("*/5 * * * *"), "{out}{err}");
    let (ok, out, err) = env
        .kubectl(&["create", "job", "--from=cronjob/backup", "backup-manual", "-n", "data"])
        .await;
    assert!(ok, "{out}{err}");
    let (ok, out, err) = env
        .kubectl(&[
            "wait",
            "--for=condition=complete",
            "job/backup-manual",
            "-n",
            "data",
            "--timeout=20s",
        ])
        .await;
    assert!(ok, "{out}{err}");
    let pods = data
        .list(&ListParams::default().labels("job-name=backup-manual"))
        .await
        .unwrap();
    assert_eq!(pods.items.len(), 1);
    assert_eq!(
        pods.items[0].status.as_ref().unwrap().phase.as_deref(),
        Some("Succeeded")
    );

    // kubectl rollout restart replaces every pod, and rollout status sees it through.
    let before_web = uids(&ready_pods(&shop, "app=web").await);
    let before_db = uids(&ready_pods(&data, "app=db").await);
    let agents: Api<Pod> = env.pods("default");
    let before_agent = uids(&ready_pods(&agents, "app=agent").await);
    for (ns, what) in [
        ("shop", "deployment/web"),
        ("data", "statefulset/db"),
        ("default", "daemonset/agent"),
    ] {
        let (ok, out, err) = env.kubectl(&["rollout", "restart", what, "-n", ns]).await;
        assert!(ok, "{out}{err}");
        assert!(out.contains("restarted"), "{out}");
        let (ok, out, err) = env
            .kubectl(&["rollout", "status", what, "-n", ns, "--timeout=60s"])
            .await;
        assert!(ok, "rollout status {what}: {out}{err}");
    }
    let after_web = uids(&ready_pods(&shop, "app=web").await);
    assert_eq!(after_web.len(), 2);
    assert!(after_web.is_disjoint(&before_web), "every web pod replaced");
    let after_db = uids(&ready_pods(&data, "app=db").await);
    assert_eq!(after_db.len(), 3);
    assert!(after_db.is_disjoint(&before_db), "every db pod replaced");
    assert!(uids(&ready_pods(&agents, "app=agent").await).is_disjoint(&before_agent));
    let (_, out, _) = env.kubectl(&["get", "rs", "-n", "shop"]).await;
    assert_eq!(out.lines().filter(|l| l.starts_with("web-")).count(), 2, "{out}");
    // The StatefulSet rolled from the highest ordinal down, one at a time.
    let deleted: Vec<String> = env
        .sim
        .events()
        .iter()
        .filter(|e| e.kind == "pod-deleted")
        .filter_map(|e| e.object.clone())
        .filter(|o| o.starts_with("data/db-"))
        .collect();
    let n = deleted.len();
    assert_eq!(
        &deleted[n - 3..],
        ["data/db-2", "data/db-1", "data/db-0"],
        "{deleted:?}"
    );

    // ConfigMaps, Secrets, Services; a namespace created, filled and deleted.
    for args in [
        vec!["create", "namespace", "tmp"],
        vec!["create", "configmap", "cfg", "-n", "tmp", "--from-literal=a=b"],
        vec!["create", "secret", "generic", "pw", "-n", "tmp", "--from-literal=p=q"],
        vec!["create", "service", "clusterip", "web", "-n", "tmp", "--tcp=80:8080"],
    ] {
        let (ok, out, err) = env.kubectl(&args).await;
        assert!(ok, "kubectl {args:?}: {out}{err}");
    }
    let (ok, out, err) = env.kubectl(&["get", "cm,secret,svc", "-n", "tmp"]).await;
    assert!(ok, "{err}");
    for want in [
        "configmap/cfg",
        "secret/pw",
        "Opaque",
        "service/web",
        "ClusterIP",
        "80/TCP",
    ] {
        assert!(out.contains(want), "{want}: {out}");
    }
    let (ok, out, err) = env.kubectl(&["delete", "namespace", "tmp", "--timeout=20s"]).await;
    assert!(ok, "{out}{err}");
    let (ok, _, err) = env.kubectl(&["get", "namespace", "tmp"]).await;
    assert!(!ok && err.contains("not found"), "{err}");
    env.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_apply_validates_against_the_server() {
    skip_unless_root!();
    let env = Env::default().await;
    let good = env.dir.path().join("good.yaml");
    std::fs::write(
        &good,
        r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: api
  namespace: shop
  labels: {app: api}
spec:
  replicas: 2
  selector: {matchLabels: {app: api}}
  template:
    metadata: {labels: {app: api}}
    spec:
      nodeSelector: {agentpool: user}
      containers:
        - name: api
          image: shopacr.azurecr.io/api:1.0.0
          ports: [{containerPort: 8080}]
---
apiVersion: v1
kind: ConfigMap
metadata: {name: api-config, namespace: shop}
data: {LOG_LEVEL: info}
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: api-pdb, namespace: shop}
spec:
  minAvailable: 1
  selector: {matchLabels: {app: api}}
"#,
    )
    .unwrap();
    // Validation on (kubectl's default, --validate=strict): it finds fieldValidation in the
    // OpenAPI v3 document and leaves the checking to the server.
    let (ok, out, err) = env.kubectl(&["apply", "-f", good.to_str().unwrap()]).await;
    assert!(ok, "{out}\n{err}");
    assert!(out.contains("deployment.apps/api created"), "{out}");
    assert!(!err.contains("warning"), "{err}");
    // Applying again (a patch computed by kubectl) and a change.
    let (ok, out, err) = env.kubectl(&["apply", "-f", good.to_str().unwrap()]).await;
    assert!(ok && out.contains("deployment.apps/api unchanged"), "{out}\n{err}");
    let changed = std::fs::read_to_string(&good)
        .unwrap()
        .replace("replicas: 2", "replicas: 3");
    std::fs::write(&good, changed).unwrap();
    let (ok, out, err) = env.kubectl(&["apply", "-f", good.to_str().unwrap()]).await;
    assert!(ok && out.contains("deployment.apps/api configured"), "{out}\n{err}");
    let deploys: Api<k8s_openapi::api::apps::v1::Deployment> = Api::namespaced(env.client.clone(), "shop");
    assert_eq!(deploys.get("api").await.unwrap().spec.replicas, Some(3));

    // A typo is refused, naming the field, and nothing is created.
    let bad = env.dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        r#"apiVersion: apps/v1
kind: Deployment
metadata: {name: typo, namespace: shop}
spec:
  replicass: 2
  selector: {matchLabels: {app: typo}}
  template:
    metadata: {labels: {app: typo}}
    spec:
      containers: [{name: c, image: x, imagee: x}]
"#,
    )
    .unwrap();
    let (ok, out, err) = env.kubectl(&["apply", "-f", bad.to_str().unwrap()]).await;
    assert!(!ok, "{out}");
    assert!(err.contains("strict decoding error"), "{err}");
    assert!(err.contains(r#"unknown field "spec.replicass""#), "{err}");
    assert!(
        err.contains(r#"unknown field "spec.template.spec.containers[0].imagee""#),
        "{err}"
    );
    assert!(deploys.get_opt("typo").await.unwrap().is_none());
    // --validate=warn: created, the unknown fields dropped with a warning.
    let (ok, out, err) = env
        .kubectl(&["apply", "--validate=warn", "-f", bad.to_str().unwrap()])
        .await;
    assert!(ok, "{out}\n{err}");
    assert!(err.contains(r#"unknown field "spec.replicass""#), "{err}");
    let typo = serde_json::to_value(deploys.get("typo").await.unwrap()).unwrap();
    assert!(typo["spec"].get("replicass").is_none());
    // The documents themselves.
    let (code, v) = send(&env, reqwest::Method::GET, "/openapi/v3", None).await;
    assert_eq!(code, 200);
    for gv in [
        "api/v1",
        "apis/apps/v1",
        "apis/batch/v1",
        "apis/policy/v1",
        "apis/coordination.k8s.io/v1",
    ] {
        let url = v["paths"][gv]["serverRelativeURL"]
            .as_str()
            .unwrap_or_else(|| panic!("{gv}: {v}"));
        let (code, doc) = send(&env, reqwest::Method::GET, url, None).await;
        assert_eq!(code, 200, "{url}");
        assert_eq!(doc["openapi"], "3.0.0");
    }
    env.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_image_upgrade_reimages_one_node_at_a_time() {
    skip_unless_root!();
    let env = Env::default().await;
    let ep = env.sim.endpoints().clone();
    let pem = std::fs::read(env.state().join("ca.pem")).unwrap();
    let http = reqwest::Client::builder()
        .tls_certs_only(reqwest::Certificate::from_pem_bundle(&pem).unwrap())
        .build()
        .unwrap();
    let token = env.sim.shared.tokens.current_arm();
    let url = format!(
        "{}/subscriptions/{}/resourceGroups/{}/providers/Microsoft.ContainerService/managedClusters/{}/agentPools/user/upgradeNodeImageVersion?api-version=2025-10-01",
        ep.arm_url, ep.subscription_id, ep.resource_group, ep.cluster_name
    );
    let r = http.post(&url).bearer_auth(&token).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 202);
    let op = r.headers()["azure-asyncoperation"].to_str().unwrap().to_string();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    loop {
        let st: Value = http
            .get(&op)
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if st["status"] == "Succeeded" {
            break;
        }
        assert_eq!(st["status"], "InProgress", "{st}");
        assert!(tokio::time::Instant::now() < deadline, "upgrade did not finish: {st}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    // One node at a time: every start is followed by its own done before the next start.
    let reimages: Vec<(String, String)> = env
        .sim
        .events()
        .into_iter()
        .filter(|e| e.kind == "reimage")
        .map(|e| (e.node.unwrap_or_default(), e.detail))
        .collect();
    assert_eq!(reimages.len(), 6, "{reimages:?}");
    for pair in reimages.chunks(2) {
        assert!(
            pair[0].1.starts_with("start") && pair[1].1.starts_with("done"),
            "{reimages:?}"
        );
        assert_eq!(pair[0].0, pair[1].0);
    }
    let rt = env.sim.shared.node_runtime.get().unwrap();
    for i in 0..3 {
        let m = rt.machine_status(&env.sim.shared, &user_node(i));
        assert_eq!(m["pendingUpdates"], json!([]), "{m}");
        assert_eq!(m["runningKernel"], "5.15.0-1073-azure", "{m}");
        assert_eq!(m["rebootRequired"], false, "{m}");
    }
    // The node cordoned by hand stays cordoned; the others are back in service; the shop
    // workloads are whole again (the drains respected their budgets).
    let nodes: Api<Node> = Api::all(env.client.clone());
    for i in 0..3 {
        let n = nodes.get(&user_node(i)).await.unwrap();
        assert_eq!(n.spec.unwrap().unschedulable, (i == 2).then_some(true), "node {i}");
    }
    assert!(event_count(&env, "eviction") >= 1);
    env.shutdown().await;
}
