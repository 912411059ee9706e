//! List reads, response headers and server defaults of the emulated Kubernetes API, as the
//! official Python client and kubectl see them: continue tokens that outlive the kept
//! history (410 Expired), `resourceVersionMatch`, `Audit-Id`, and the defaults the API
//! server fills into workloads.

use crate::common::Emulator as Env;
use serde_json::{json, Value};

/// Run a Python script with the official client configured from the kubeconfig (`api` is
/// a CoreV1Api, `args` its arguments); its stdout's last line as JSON.
async fn python(env: &Env, body: &str, args: &[&str]) -> Value {
    let script = format!(
        "import sys, json\nfrom kubernetes import client, config\nfrom kubernetes.client.rest import ApiException\nconfig.load_kube_config(config_file=sys.argv[1])\napi = client.CoreV1Api()\nargs = sys.argv[2:]\n{body}"
    );
    env.python(&script, args).await
}

/// Other writers' churn: `n` changes to one ConfigMap, enough to push older states out
/// of the history the emulator keeps (its compaction).
fn churn(env: &Env, n: usize) {
    let store = &env.sim.shared.store;
    let cm = aks_sim::store::CONFIGMAPS;
    store
        .create(
            cm,
            json!({"metadata": {"name": "churn", "namespace": "kube-system"}, "data": {"n": "0"}}),
        )
        .expect("churn configmap");
    for i in 1..=n {
        store
            .update_with(cm, Some("kube-system"), "churn", None, |o| {
                o["data"]["n"] = json!(i.to_string());
                Ok(())
            })
            .expect("churn");
    }
}

const MAKE_FIVE: &str = r#"
for i in range(5):
    api.create_namespaced_config_map("default", client.V1ConfigMap(metadata=client.V1ObjectMeta(name=f"cm-{i}"), data={"i": str(i)}))
page = api.list_namespaced_config_map("default", limit=2)
print(json.dumps({"names": [c.metadata.name for c in page.items], "continue": page.metadata._continue, "rv": page.metadata.resource_version}))
"#;

const NEXT_PAGE: &str = r#"
try:
    page = api.list_namespaced_config_map("default", limit=10, _continue=args[0])
    print(json.dumps({"names": [c.metadata.name for c in page.items], "rv": page.metadata.resource_version}))
except ApiException as e:
    print(json.dumps({"status": e.status, "body": json.loads(e.body)}))
"#;

/// A continue token reads the list as it was when the first page was served; once that state
/// is older than the history the server keeps, the token is too old: 410 Expired with
/// kube-apiserver's message and a token that continues at the latest state.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_continue_token_older_than_the_kept_history_is_410_expired() {
    skip_unless_root!();
    let env = Env::default().await;
    let first = python(&env, MAKE_FIVE, &[]).await;
    assert_eq!(first["names"], json!(["cm-0", "cm-1"]));
    let token = first["continue"].as_str().expect("a continue token").to_string();

    // Within the history: a consistent list, a deletion after the first page is not seen.
    let (ok, _, err) = env.kubectl(&["delete", "configmap", "cm-3"]).await;
    assert!(ok, "{err}");
    let next = python(&env, NEXT_PAGE, &[&token]).await;
    assert_eq!(next["names"], json!(["cm-2", "cm-3", "cm-4"]), "{next}");
    assert_eq!(next["rv"], first["rv"]);

    // Past the kept history: 410 Expired.
    churn(&env, 5000);
    let gone = python(&env, NEXT_PAGE, &[&token]).await;
    assert_eq!(gone["status"], 410, "{gone}");
    let body = &gone["body"];
    assert_eq!(body["reason"], "Expired");
    assert_eq!(
        body["message"],
        "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list."
    );
    // The token in the answer continues at today's state (cm-3 is gone now).
    let again = body["metadata"]["continue"]
        .as_str()
        .expect("a token to continue")
        .to_string();
    let rest = python(&env, NEXT_PAGE, &[&again]).await;
    assert_eq!(rest["names"], json!(["cm-2", "cm-4"]), "{rest}");

    // A token that is not one: 400, not 410.
    let bad = python(&env, NEXT_PAGE, &["bm90LWEtdG9rZW4="]).await;
    assert_eq!(bad["status"], 400, "{bad}");
    env.shutdown().await;
}

const READ_AT: &str = r#"
kw = json.loads(args[0])
try:
    page = api.list_namespaced_config_map("default", **kw)
    print(json.dumps({"names": [c.metadata.name for c in page.items], "rv": page.metadata.resource_version}))
except ApiException as e:
    print(json.dumps({"status": e.status, "body": json.loads(e.body)}))
"#;

/// `resourceVersionMatch`: `Exact` reads the state at that resourceVersion, `NotOlderThan` at
/// least that fresh; invalid combinations are kube-apiserver's 422 on the ListOptions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resource_version_match_reads_and_refuses_as_kube_apiserver() {
    skip_unless_root!();
    let env = Env::default().await;
    let first = python(&env, MAKE_FIVE, &[]).await;
    let rv = first["rv"].as_str().unwrap().to_string();
    let (ok, _, err) = env.kubectl(&["create", "configmap", "cm-later"]).await;
    assert!(ok, "{err}");
    let read = |kw: Value| {
        let env = &env;
        async move { python(env, READ_AT, &[&kw.to_string()]).await }
    };

    let exact = read(json!({"resource_version": rv, "resource_version_match": "Exact"})).await;
    assert_eq!(exact["rv"], rv.as_str());
    let names = exact["names"].as_array().unwrap();
    assert!(
        !names.contains(&json!("cm-later")) && names.contains(&json!("cm-4")),
        "{exact}"
    );
    let newer = read(json!({"resource_version": rv, "resource_version_match": "NotOlderThan"})).await;
    assert!(
        newer["names"].as_array().unwrap().contains(&json!("cm-later")),
        "{newer}"
    );

    for (kw, message) in [
        (
            json!({"resource_version_match": "Exact"}),
            "ListOptions.meta.k8s.io \"\" is invalid: resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden unless resourceVersion is provided",
        ),
        (
            json!({"resource_version": "0", "resource_version_match": "Exact"}),
            "ListOptions.meta.k8s.io \"\" is invalid: resourceVersionMatch: Forbidden: resourceVersionMatch \"exact\" is forbidden for resourceVersion \"0\"",
        ),
        (
            json!({"resource_version": rv, "resource_version_match": "Newest"}),
            "ListOptions.meta.k8s.io \"\" is invalid: resourceVersionMatch: Unsupported value: \"Newest\": supported values: \"Exact\", \"NotOlderThan\", \"\"",
        ),
    ] {
        let r = read(kw.clone()).await;
        assert_eq!(r["status"], 422, "{kw}: {r}");
        assert_eq!(r["body"]["reason"], "Invalid");
        assert_eq!(r["body"]["message"], message);
        assert_eq!(r["body"]["details"]["kind"], "ListOptions");
    }
    let r = read(json!({"resource_version_match": "Exact", "_continue": first["continue"]})).await;
    assert_eq!(r["status"], 422, "{r}");
    assert!(r["body"]["message"].as_str().unwrap().contains(
        "[resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden unless resourceVersion is provided, resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden when continue is provided]"
    ), "{r}");
    let r = read(json!({"resource_version": rv, "_continue": first["continue"]})).await;
    assert_eq!(r["status"], 400, "{r}");
    assert_eq!(
        r["body"]["message"],
        "specifying resource version is not allowed when using continue"
    );

    // From the future: kube-apiserver's 504 "Too large resource version".
    let far = (rv.parse::<u64>().unwrap() + 1_000_000).to_string();
    let r = read(json!({"resource_version": far, "resource_version_match": "NotOlderThan"})).await;
    assert_eq!(r["status"], 504, "{r}");
    assert!(r["body"]["message"]
        .as_str()
        .unwrap()
        .starts_with(&format!("Too large resource version: {far}, current: ")));
    // Older than the kept history: 410 Expired.
    churn(&env, 5000);
    let r = read(json!({"resource_version": rv, "resource_version_match": "Exact"})).await;
    assert_eq!(r["status"], 410, "{r}");
    assert_eq!(
        r["body"]["message"],
        "The resourceVersion for the provided list is too old."
    );
    env.shutdown().await;
}

/// Every answer carries an `Audit-Id` (a UUID, or the one the client sent), errors included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_answer_has_an_audit_id() {
    skip_unless_root!();
    let env = Env::default().await;
    let v = python(
        &env,
        r#"
_, status, headers = api.list_namespace_with_http_info()
ids = [headers.get("Audit-Id")]
_, _, headers = api.list_namespace_with_http_info()
ids.append(headers.get("Audit-Id"))
try:
    api.read_namespace("no-such-namespace")
except ApiException as e:
    missing = (e.status, e.headers.get("Audit-Id"))
_, _, headers = api.list_namespace_with_http_info(_headers={"Audit-Id": "my-correlation-1"})
print(json.dumps({"status": status, "ids": ids, "missing": missing, "echo": headers.get("Audit-Id")}))
"#,
        &[],
    )
    .await;
    assert_eq!(v["status"], 200);
    let ids: Vec<&str> = v["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i.as_str().unwrap())
        .collect();
    for id in &ids {
        uuid::Uuid::parse_str(id).unwrap_or_else(|e| panic!("{id}: {e}"));
    }
    assert_ne!(ids[0], ids[1], "one per request");
    assert_eq!(v["missing"][0], 404);
    uuid::Uuid::parse_str(v["missing"][1].as_str().unwrap()).expect("a UUID on errors too");
    assert_eq!(v["echo"], "my-correlation-1");
    env.shutdown().await;
}

/// A Deployment created through the API reads back with kube-apiserver's defaults, as
/// `kubectl get -o yaml` shows them on a real cluster.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workloads_created_through_the_api_get_the_servers_defaults() {
    skip_unless_root!();
    let env = Env::default().await;
    let (ok, _, err) = env
        .kubectl(&["create", "deployment", "web", "--image=nginx:1.27"])
        .await;
    assert!(ok, "{err}");
    let (ok, out, err) = env.kubectl(&["get", "deployment", "web", "-o", "json"]).await;
    assert!(ok, "{err}");
    let d: Value = serde_json::from_str(&out).unwrap();
    let spec = &d["spec"];
    assert_eq!(spec["replicas"], 1);
    assert_eq!(
        spec["strategy"],
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}})
    );
    assert_eq!(spec["revisionHistoryLimit"], 10);
    assert_eq!(spec["progressDeadlineSeconds"], 600);
    let pod = &spec["template"]["spec"];
    assert_eq!(pod["restartPolicy"], "Always");
    assert_eq!(pod["dnsPolicy"], "ClusterFirst");
    assert_eq!(pod["terminationGracePeriodSeconds"], 30);
    assert_eq!(pod["schedulerName"], "default-scheduler");
    assert_eq!(pod["securityContext"], json!({}));
    let c = &pod["containers"][0];
    assert_eq!(c["terminationMessagePath"], "/dev/termination-log");
    assert_eq!(c["terminationMessagePolicy"], "File");
    assert_eq!(c["imagePullPolicy"], "IfNotPresent");

    // What the client set is kept; an untagged image is pulled Always.
    let manifest = r#"{"apiVersion": "apps/v1", "kind": "Deployment",
      "metadata": {"name": "tools"},
      "spec": {"selector": {"matchLabels": {"app": "tools"}}, "revisionHistoryLimit": 2,
        "strategy": {"type": "Recreate"},
        "template": {"metadata": {"labels": {"app": "tools"}},
          "spec": {"containers": [{"name": "t", "image": "busybox"}]}}}}"#;
    let (code, _, err) = env.kubectl_stdin(&["create", "-f", "-"], manifest).await;
    assert_eq!(code, 0, "{err}");
    let (ok, out, err) = env.kubectl(&["get", "deployment", "tools", "-o", "json"]).await;
    assert!(ok, "{err}");
    let d: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(d["spec"]["revisionHistoryLimit"], 2);
    assert_eq!(d["spec"]["strategy"], json!({"type": "Recreate"}));
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"],
        "Always"
    );
    env.shutdown().await;
}
