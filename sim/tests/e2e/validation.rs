//! aks-sim refuses what kube-apiserver refuses, with its words: object names, label keys
//! and values, annotation keys, Lease spec, Node taints (422 Invalid); and server-side
//! apply keeps kube-apiserver's field ownership (managedFields, 409 conflicts, `force`,
//! dropped fields, a required `fieldManager`). Proven with kubectl and the official Python
//! client.

use crate::common::Emulator as Env;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Node};
use kube::api::Api;
use serde_json::{json, Value};

/// kubectl reading a manifest from a file.
async fn kubectl_file(env: &Env, name: &str, manifest: &str, args: &[&str]) -> (bool, String, String) {
    let path = env.dir.path().join(name);
    std::fs::write(&path, manifest).expect("manifest written");
    let mut all: Vec<&str> = args.to_vec();
    let p = path.to_str().expect("utf-8 path").to_string();
    all.extend(["-f", &p]);
    env.kubectl(&all).await
}

async fn first_linux_node(env: &Env) -> String {
    let list = env.nodes().list(&Default::default()).await.expect("nodes");
    list.items
        .iter()
        .filter_map(|n| n.metadata.name.clone())
        .find(|n| n.starts_with("aks-"))
        .expect("a Linux node")
}

const SUBDOMAIN: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const LABEL_VALUE: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";
const NAME_PART: &str = "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_gets_the_apiservers_422_for_bad_names_labels_annotations_leases_and_taints() {
    skip_unless_root!();
    let env = Env::default().await;
    let node = first_linux_node(&env).await;
    let nodes: Api<Node> = Api::all(env.client.clone());
    let before = nodes.get(&node).await.unwrap();

    let (ok, _, err) = env.kubectl(&["create", "configmap", "Bad_Name", "-n", "default"]).await;
    assert!(!ok);
    assert!(
        err.contains(&format!(
            r#"ConfigMap "Bad_Name" is invalid: metadata.name: Invalid value: "Bad_Name": {SUBDOMAIN}"#
        )),
        "{err}"
    );
    let (ok, _, err) = env.kubectl(&["create", "namespace", "team.a"]).await;
    assert!(!ok);
    assert!(
        err.contains(r#"Namespace "team.a" is invalid: metadata.name: Invalid value: "team.a": must not contain dots"#),
        "{err}"
    );

    // Label values: a timestamp with colons, a space, 70 characters (kubectl label checks
    // values itself, so these go through kubectl patch as a tool would write them).
    for (value, why) in [
        ("2025-03-01T02:00:00Z", LABEL_VALUE.to_string()),
        ("a b", LABEL_VALUE.to_string()),
        (&"x".repeat(70), "must be no more than 63 characters".to_string()),
    ] {
        let p = json!({"metadata": {"labels": {"aks-patch/when": value}}}).to_string();
        let (ok, _, err) = env.kubectl(&["patch", "node", &node, "-p", &p]).await;
        assert!(!ok, "{value}");
        assert!(
            err.contains(&format!(
                r#"The Node "{node}" is invalid: metadata.labels: Invalid value: "{value}": {why}"#
            )),
            "{err}"
        );
    }
    let (ok, _, err) = env.kubectl(&["label", "node", &node, "a/b/c=v"]).await;
    assert!(!ok);
    assert!(
        err.contains(
            r#"metadata.labels: Invalid value: "a/b/c": a qualified name must consist of alphanumeric characters"#
        ) && err.contains("with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"),
        "{err}"
    );
    let (ok, _, err) = env.kubectl(&["annotate", "node", &node, "Bad Key=1"]).await;
    assert!(!ok);
    assert!(
        err.contains(&format!(
            r#"The Node "{node}" is invalid: metadata.annotations: Invalid value: "Bad Key": {NAME_PART}"#
        )),
        "{err}"
    );

    // Taints (kubectl taint checks effects itself: a patch, as a tool writes them).
    let p = json!({"spec": {"taints": [{"key": "aks-patch/draining", "effect": "Sometimes"}]}}).to_string();
    let (ok, _, err) = env.kubectl(&["patch", "node", &node, "-p", &p]).await;
    assert!(!ok);
    assert!(
        err.contains(r#"spec.taints[0].effect: Unsupported value: "Sometimes": supported values: "NoSchedule", "PreferNoSchedule", "NoExecute""#),
        "{err}"
    );
    let p = json!({"spec": {"taints": [
        {"key": "aks-patch/draining", "effect": "NoSchedule"},
        {"key": "aks-patch/draining", "value": "x", "effect": "NoSchedule"}]}})
    .to_string();
    let (ok, _, err) = env.kubectl(&["patch", "node", &node, "-p", &p]).await;
    assert!(!ok);
    assert!(
        err.contains("spec.taints[1]: Duplicate value: ")
            && err.contains("taints must be unique by key and effect pair"),
        "{err}"
    );

    // A Lease with a negative duration, created with kubectl apply.
    let lease = "apiVersion: coordination.k8s.io/v1\nkind: Lease\nmetadata: {name: aks-patch-lock, namespace: kube-system}\nspec: {holderIdentity: me, leaseDurationSeconds: -5}\n";
    let (ok, _, err) = kubectl_file(&env, "lease.yaml", lease, &["apply"]).await;
    assert!(!ok);
    assert!(
        err.contains(r#"The Lease "aks-patch-lock" is invalid: spec.leaseDurationSeconds: Invalid value: -5: must be greater than 0"#),
        "{err}"
    );
    let leases: Api<Lease> = Api::namespaced(env.client.clone(), "kube-system");
    assert!(leases.get_opt("aks-patch-lock").await.unwrap().is_none());

    // Nothing changed on the node.
    let after = nodes.get(&node).await.unwrap();
    assert_eq!(after.metadata.labels, before.metadata.labels);
    assert_eq!(after.metadata.annotations, before.metadata.annotations);
    assert_eq!(
        after.spec.as_ref().and_then(|s| s.taints.clone()),
        before.spec.and_then(|s| s.taints)
    );

    // Valid objects are still taken.
    let (ok, _, err) = env
        .kubectl(&["label", "node", &node, "aks-patch/patched-at=2025-03-01T02-00-00Z"])
        .await;
    assert!(ok, "{err}");
    let (ok, _, err) = env
        .kubectl(&["annotate", "node", &node, "aks-patch/at=2025-03-01T02:00:00Z"])
        .await;
    assert!(ok, "{err}");
    let (ok, _, err) = env
        .kubectl(&["taint", "node", &node, "aks-patch/draining=true:NoSchedule"])
        .await;
    assert!(ok, "{err}");
    let (ok, _, err) = kubectl_file(&env, "lease.yaml", &lease.replace("-5", "60"), &["apply"]).await;
    assert!(ok, "{err}");
    let (ok, _, err) = env
        .kubectl(&["create", "configmap", "good.name", "-n", "default"])
        .await;
    assert!(ok, "{err}");
    env.shutdown().await;
}

const PY_BAD_OBJECTS: &str = r#"
import json, sys
from kubernetes import client, config
from kubernetes.client.rest import ApiException
config.load_kube_config(config_file=sys.argv[1])
core, coord = client.CoreV1Api(), client.CoordinationV1Api()
node = sys.argv[2]
out = {}
def attempt(name, f):
    try:
        f()
        out[name] = {"status": 200}
    except ApiException as e:
        b = json.loads(e.body)
        out[name] = {"status": e.status, "reason": b.get("reason"), "message": b.get("message"),
                     "causes": b.get("details", {}).get("causes")}
attempt("configmap", lambda: core.create_namespaced_config_map("default", {"metadata": {"name": "Bad_Name"}}))
attempt("label_value", lambda: core.patch_node(node, {"metadata": {"labels": {"when": "2025-03-01T02:00:00Z"}}}))
attempt("label_key", lambda: core.patch_node(node, {"metadata": {"labels": {"a/b/c": "v"}}}))
attempt("annotation_key", lambda: core.patch_node(node, {"metadata": {"annotations": {"Bad Key": "1"}}}))
attempt("annotations_size", lambda: core.patch_node(node, {"metadata": {"annotations": {"big": "x" * 262144}}}))
attempt("lease", lambda: coord.create_namespaced_lease("kube-system", {"metadata": {"name": "lock"},
        "spec": {"holderIdentity": "me", "leaseDurationSeconds": -5, "leaseTransitions": -1}}))
attempt("taint", lambda: core.patch_node(node, {"spec": {"taints": [{"key": "k", "effect": "NoWay"}]}}))
attempt("good_label", lambda: core.patch_node(node, {"metadata": {"labels": {"kured": "2025-03-01T02-00-00Z"}}}))
attempt("good_lease", lambda: coord.create_namespaced_lease("kube-system", {"metadata": {"name": "lock"},
        "spec": {"holderIdentity": "me", "leaseDurationSeconds": 60}}))
print(json.dumps(out))
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_client_gets_the_apiservers_422_with_causes() {
    skip_unless_root!();
    let env = Env::default().await;
    let node = first_linux_node(&env).await;
    let out = env.python(PY_BAD_OBJECTS, &[&node]).await;
    let check = |name: &str, message: &str, field: &str, reason: &str| {
        let r = &out[name];
        assert_eq!(r["status"], 422, "{name}: {r}");
        assert_eq!(r["reason"], "Invalid", "{name}: {r}");
        assert_eq!(r["message"], message, "{name}");
        assert_eq!(r["causes"][0]["field"], field, "{name}: {r}");
        assert_eq!(r["causes"][0]["reason"], reason, "{name}: {r}");
    };
    check(
        "configmap",
        &format!(r#"ConfigMap "Bad_Name" is invalid: metadata.name: Invalid value: "Bad_Name": {SUBDOMAIN}"#),
        "metadata.name",
        "FieldValueInvalid",
    );
    check(
        "label_value",
        &format!(r#"Node "{node}" is invalid: metadata.labels: Invalid value: "2025-03-01T02:00:00Z": {LABEL_VALUE}"#),
        "metadata.labels",
        "FieldValueInvalid",
    );
    assert!(out["label_key"]["message"]
        .as_str()
        .unwrap()
        .contains(r#"metadata.labels: Invalid value: "a/b/c": a qualified name must consist"#));
    check(
        "annotation_key",
        &format!(r#"Node "{node}" is invalid: metadata.annotations: Invalid value: "Bad Key": {NAME_PART}"#),
        "metadata.annotations",
        "FieldValueInvalid",
    );
    check(
        "annotations_size",
        &format!(r#"Node "{node}" is invalid: metadata.annotations: Too long: must have at most 262144 bytes"#),
        "metadata.annotations",
        "FieldValueTooLong",
    );
    check(
        "lease",
        r#"Lease.coordination.k8s.io "lock" is invalid: [spec.leaseDurationSeconds: Invalid value: -5: must be greater than 0, spec.leaseTransitions: Invalid value: -1: must be greater than or equal to 0]"#,
        "spec.leaseDurationSeconds",
        "FieldValueInvalid",
    );
    assert_eq!(out["lease"]["causes"][1]["field"], "spec.leaseTransitions");
    check(
        "taint",
        &format!(
            r#"Node "{node}" is invalid: spec.taints[0].effect: Unsupported value: "NoWay": supported values: "NoSchedule", "PreferNoSchedule", "NoExecute""#
        ),
        "spec.taints[0].effect",
        "FieldValueNotSupported",
    );
    assert_eq!(out["good_label"]["status"], 200, "{out}");
    assert_eq!(out["good_lease"]["status"], 200, "{out}");
    let cms: Api<ConfigMap> = Api::namespaced(env.client.clone(), "default");
    assert!(cms.get_opt("Bad_Name").await.unwrap().is_none());
    env.shutdown().await;
}

const DEPLOYMENT: &str = r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: default
  labels:
    app: web
    tier: front
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
        - name: web
          image: nginx:1.27
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_side_apply_owns_fields_conflicts_and_forces_like_the_apiserver() {
    skip_unless_root!();
    let env = Env::default().await;
    let deploys: Api<k8s_openapi::api::apps::v1::Deployment> = Api::namespaced(env.client.clone(), "default");
    let (ok, out, err) = kubectl_file(&env, "d.yaml", DEPLOYMENT, &["apply", "--server-side"]).await;
    assert!(ok, "{out}{err}");
    assert!(out.contains("deployment.apps/web serverside-applied"), "{out}");

    // The record, as kubectl shows it.
    let (ok, out, err) = env
        .kubectl(&[
            "get",
            "deployment",
            "web",
            "-n",
            "default",
            "-o",
            "json",
            "--show-managed-fields",
        ])
        .await;
    assert!(ok, "{err}");
    let d: Value = serde_json::from_str(&out).unwrap();
    let mf = &d["metadata"]["managedFields"];
    assert_eq!(mf.as_array().map(Vec::len), Some(1), "{mf}");
    assert_eq!(mf[0]["manager"], "kubectl");
    assert_eq!(mf[0]["operation"], "Apply");
    assert_eq!(mf[0]["apiVersion"], "apps/v1");
    assert_eq!(mf[0]["fieldsType"], "FieldsV1");
    assert!(mf[0]["time"].as_str().is_some_and(|t| t.ends_with('Z')), "{mf}");
    assert_eq!(mf[0]["fieldsV1"]["f:spec"]["f:replicas"], json!({}));
    assert_eq!(
        mf[0]["fieldsV1"]["f:spec"]["f:template"]["f:spec"]["f:containers"]["k:{\"name\":\"web\"}"],
        json!({".": {}, "f:image": {}, "f:name": {}})
    );
    let (ok, out, _) = env
        .kubectl(&["get", "deployment", "web", "-n", "default", "-o", "yaml"])
        .await;
    assert!(
        ok && !out.contains("managedFields"),
        "kubectl hides them by default: {out}"
    );

    // kubectl scale takes .spec.replicas (through the scale subresource): applying the old
    // count conflicts, with the API server's message.
    let (ok, _, err) = env
        .kubectl(&["scale", "deployment", "web", "-n", "default", "--replicas=4"])
        .await;
    assert!(ok, "{err}");
    let (ok, _, err) = kubectl_file(&env, "d.yaml", DEPLOYMENT, &["apply", "--server-side"]).await;
    assert!(!ok);
    assert!(
        err.contains(r#"Apply failed with 1 conflict: conflict with "kubectl" with subresource "scale" using apps/v1: .spec.replicas"#),
        "{err}"
    );
    assert_eq!(deploys.get("web").await.unwrap().spec.replicas, Some(4));
    // --force-conflicts wins, and takes the field.
    let (ok, _, err) = kubectl_file(
        &env,
        "d.yaml",
        DEPLOYMENT,
        &["apply", "--server-side", "--force-conflicts"],
    )
    .await;
    assert!(ok, "{err}");
    let d = deploys.get("web").await.unwrap();
    assert_eq!(d.spec.replicas, Some(2));
    let managers: Vec<(String, String)> = d
        .metadata
        .managed_fields
        .unwrap_or_default()
        .into_iter()
        .map(|e| (e.manager.unwrap_or_default(), e.subresource.unwrap_or_default()))
        .collect();
    assert_eq!(
        managers,
        vec![("kubectl".to_string(), String::new())],
        "the scaler lost its only field"
    );

    // A second field manager changing the image conflicts with the first.
    let other = DEPLOYMENT.replace("nginx:1.27", "nginx:1.28");
    let (ok, _, err) = kubectl_file(
        &env,
        "other.yaml",
        &other,
        &["apply", "--server-side", "--field-manager=deployer"],
    )
    .await;
    assert!(!ok);
    assert!(
        err.contains(
            r#"Apply failed with 1 conflict: conflict with "kubectl": .spec.template.spec.containers[name="web"].image"#
        ),
        "{err}"
    );
    // The same values are shared, without conflict.
    let (ok, _, err) = kubectl_file(
        &env,
        "same.yaml",
        DEPLOYMENT,
        &["apply", "--server-side", "--field-manager=deployer"],
    )
    .await;
    assert!(ok, "{err}");

    // A label dropped by kubectl's configuration but still applied by `deployer` stays; once
    // both drop it, it is removed.
    let no_tier = DEPLOYMENT.replace("    tier: front\n", "");
    let (ok, _, err) = kubectl_file(&env, "d.yaml", &no_tier, &["apply", "--server-side"]).await;
    assert!(ok, "{err}");
    let labels = deploys.get("web").await.unwrap().metadata.labels.unwrap();
    assert_eq!(labels.get("tier").map(String::as_str), Some("front"));
    let (ok, _, err) = kubectl_file(
        &env,
        "same.yaml",
        &no_tier,
        &["apply", "--server-side", "--field-manager=deployer"],
    )
    .await;
    assert!(ok, "{err}");
    let labels = deploys.get("web").await.unwrap().metadata.labels.unwrap();
    assert!(!labels.contains_key("tier"), "{labels:?}");
    assert_eq!(labels.get("app").map(String::as_str), Some("web"));

    // A dropped container field goes too; the container stays.
    let with_args = DEPLOYMENT.replace(
        "image: nginx:1.27",
        "image: nginx:1.27\n          args: [\"-g\", \"daemon off;\"]",
    );
    let (ok, _, err) = kubectl_file(&env, "d.yaml", &with_args, &["apply", "--server-side"]).await;
    assert!(ok, "{err}");
    let c = |d: k8s_openapi::api::apps::v1::Deployment| d.spec.template.spec.unwrap().containers[0].clone();
    assert!(c(deploys.get("web").await.unwrap()).args.is_some());
    let (ok, _, err) = kubectl_file(&env, "d.yaml", DEPLOYMENT, &["apply", "--server-side"]).await;
    assert!(ok, "{err}");
    let web = c(deploys.get("web").await.unwrap());
    assert!(web.args.is_none(), "{web:?}");
    assert_eq!(web.image.as_deref(), Some("nginx:1.27"));
    env.shutdown().await;
}

const PY_APPLY: &str = r#"
import json, sys
from kubernetes import client, config
from kubernetes.client.rest import ApiException
config.load_kube_config(config_file=sys.argv[1])
core = client.CoreV1Api()
out = {}
cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings", "namespace": "default"}, "data": {"mode": "a"}}
def attempt(name, f):
    try:
        r = f()
        out[name] = {"status": 200, "managers": [[m.manager, m.operation] for m in (r.metadata.managed_fields or [])]}
    except ApiException as e:
        b = json.loads(e.body)
        out[name] = {"status": e.status, "reason": b.get("reason"), "message": b.get("message"),
                     "causes": b.get("details", {}).get("causes")}
ct = "application/apply-patch+yaml"
attempt("no_manager", lambda: core.patch_namespaced_config_map("settings", "default", cm, _content_type=ct))
attempt("first", lambda: core.patch_namespaced_config_map("settings", "default", cm, field_manager="tool-a", _content_type=ct))
cm["data"]["mode"] = "b"
attempt("second", lambda: core.patch_namespaced_config_map("settings", "default", cm, field_manager="tool-b", _content_type=ct))
attempt("forced", lambda: core.patch_namespaced_config_map("settings", "default", cm, field_manager="tool-b", force=True, _content_type=ct))
attempt("update", lambda: core.patch_namespaced_config_map("settings", "default", {"data": {"extra": "1"}}))
attempt("force_on_merge", lambda: core.patch_namespaced_config_map("settings", "default", {"data": {"x": "1"}}, force=True))
print(json.dumps(out))
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_apply_needs_a_field_manager_and_conflicts_between_managers() {
    skip_unless_root!();
    let env = Env::default().await;
    let out = env.python(PY_APPLY, &[]).await;
    assert_eq!(out["no_manager"]["status"], 422, "{out}");
    assert_eq!(
        out["no_manager"]["message"],
        r#"PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: is required for apply patch"#
    );
    assert_eq!(out["no_manager"]["causes"][0]["field"], "fieldManager");
    assert_eq!(out["no_manager"]["causes"][0]["reason"], "FieldValueRequired");
    assert_eq!(out["first"]["managers"], json!([["tool-a", "Apply"]]), "{out}");
    assert_eq!(out["second"]["status"], 409, "{out}");
    assert_eq!(out["second"]["reason"], "Conflict");
    assert_eq!(
        out["second"]["message"],
        r#"Apply failed with 1 conflict: conflict with "tool-a": .data.mode"#
    );
    assert_eq!(
        out["second"]["causes"],
        json!([{"reason": "FieldManagerConflict", "message": "conflict with \"tool-a\"", "field": ".data.mode"}])
    );
    assert_eq!(out["forced"]["managers"], json!([["tool-b", "Apply"]]), "{out}");
    // A plain patch is an Update by the client's User-Agent prefix.
    assert_eq!(
        out["update"]["managers"],
        json!([["tool-b", "Apply"], ["OpenAPI-Generator", "Update"]]),
        "{out}"
    );
    assert_eq!(out["force_on_merge"]["status"], 422, "{out}");
    assert_eq!(
        out["force_on_merge"]["message"],
        r#"PatchOptions.meta.k8s.io "" is invalid: force: Forbidden: may not be specified for non-apply patch"#
    );
    env.shutdown().await;
}
