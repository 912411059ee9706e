//! The defaults kube-apiserver fills into objects created through the API (the
//! `SetDefaults_*` functions of k8s.io/kubernetes/pkg/apis/{core,apps}/v1): what a client
//! reads back from a create is what it would read from a real cluster.

use crate::store::Resource;
use serde_json::{json, Value};

/// Fill the defaults of `plural`'s kind into `obj` (fields the client set are kept).
pub fn apply(plural: &str, obj: &mut Value) {
    match plural {
        "deployments" => {
            let spec = &mut obj["spec"];
            fill(spec, "replicas", json!(1));
            fill(&mut spec["strategy"], "type", json!("RollingUpdate"));
            if spec["strategy"]["type"] == "RollingUpdate" {
                let ru = &mut spec["strategy"]["rollingUpdate"];
                fill(ru, "maxUnavailable", json!("25%"));
                fill(ru, "maxSurge", json!("25%"));
            }
            fill(spec, "revisionHistoryLimit", json!(10));
            fill(spec, "progressDeadlineSeconds", json!(600));
            template(spec);
        }
        "replicasets" => {
            fill(&mut obj["spec"], "replicas", json!(1));
            template(&mut obj["spec"]);
        }
        "daemonsets" => {
            let spec = &mut obj["spec"];
            fill(&mut spec["updateStrategy"], "type", json!("RollingUpdate"));
            if spec["updateStrategy"]["type"] == "RollingUpdate" {
                let ru = &mut spec["updateStrategy"]["rollingUpdate"];
                fill(ru, "maxUnavailable", json!(1));
                fill(ru, "maxSurge", json!(0));
            }
            fill(spec, "revisionHistoryLimit", json!(10));
            template(spec);
        }
        "statefulsets" => {
            let spec = &mut obj["spec"];
            fill(
                spec,
                "persistentVolumeClaimRetentionPolicy",
                json!({"whenDeleted": "Retain", "whenScaled": "Retain"}),
            );
            template(spec);
        }
        "jobs" => {
            template(&mut obj["spec"]);
        }
        "cronjobs" => {
            let spec = &mut obj["spec"];
            fill(spec, "concurrencyPolicy", json!("Allow"));
            fill(spec, "suspend", json!(false));
            fill(spec, "successfulJobsHistoryLimit", json!(3));
            fill(spec, "failedJobsHistoryLimit", json!(1));
            template(&mut spec["jobTemplate"]["spec"]);
        }
        "pods" => containers(&mut obj["spec"]),
        "rolebindings" => super::validation::rbac::set_defaults(&crate::store::ROLEBINDINGS, obj),
        "clusterrolebindings" => super::validation::rbac::set_defaults(&crate::store::CLUSTERROLEBINDINGS, obj),
        _ => {}
    }
}

/// Defaults and status resets the API server applies to new objects.
pub fn prepare_for_create(res: &Resource, obj: &mut Value) {
    if let Some(m) = obj["metadata"].as_object_mut() {
        for k in [
            "uid",
            "resourceVersion",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
        ] {
            m.remove(k);
        }
    }
    match res.plural {
        "pods" => {
            let spec = &mut obj["spec"];
            for (k, v) in [
                ("restartPolicy", json!("Always")),
                ("terminationGracePeriodSeconds", json!(30)),
                ("dnsPolicy", json!("ClusterFirst")),
                ("schedulerName", json!("default-scheduler")),
                ("serviceAccountName", json!("default")),
                ("securityContext", json!({})),
                ("enableServiceLinks", json!(true)),
                ("priority", json!(0)),
                ("preemptionPolicy", json!("PreemptLowerPriority")),
            ] {
                if spec.get(k).is_none() {
                    spec[k] = v;
                }
            }
            let mut tol = spec["tolerations"].as_array().cloned().unwrap_or_default();
            for key in ["node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"] {
                if !tol.iter().any(|t| t["key"] == key) {
                    tol.push(
                        json!({"key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}),
                    );
                }
            }
            spec["tolerations"] = json!(tol);
            let qos = crate::objects::pods::qos_class(spec);
            obj["status"] = json!({"phase": "Pending", "qosClass": qos});
        }
        "namespaces" => {
            let name = obj["metadata"]["name"].clone();
            if !obj["metadata"]["labels"].is_object() {
                obj["metadata"]["labels"] = json!({});
            }
            obj["metadata"]["labels"]["kubernetes.io/metadata.name"] = name;
            obj["spec"] = json!({"finalizers": ["kubernetes"]});
            obj["status"] = json!({"phase": "Active"});
        }
        "deployments" | "replicasets" | "daemonsets" | "poddisruptionbudgets" | "cronjobs" => {
            obj["status"] = json!({});
        }
        "statefulsets" => {
            let spec = &mut obj["spec"];
            for (k, v) in [
                ("replicas", json!(1)),
                ("podManagementPolicy", json!("OrderedReady")),
                (
                    "updateStrategy",
                    json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}),
                ),
                ("revisionHistoryLimit", json!(10)),
            ] {
                if spec.get(k).is_none() {
                    spec[k] = v;
                }
            }
            obj["status"] = json!({"replicas": 0, "availableReplicas": 0});
        }
        "jobs" => {
            // The API server selects the Job's pods by its uid, which it assigns now.
            let uid = uuid::Uuid::new_v4().to_string();
            let name = obj["metadata"]["name"].clone();
            obj["metadata"]["uid"] = json!(uid);
            let spec = &mut obj["spec"];
            for (k, v) in [
                ("completions", json!(1)),
                ("parallelism", json!(1)),
                ("backoffLimit", json!(6)),
                ("completionMode", json!("NonIndexed")),
                ("suspend", json!(false)),
            ] {
                if spec.get(k).is_none() {
                    spec[k] = v;
                }
            }
            if spec["selector"].is_null() {
                crate::objects::jobs::select_by_uid(spec, &uid, &name);
            }
            obj["status"] = json!({});
        }
        "secrets" if obj["type"].is_null() => obj["type"] = json!("Opaque"),
        "services" => {
            let spec = &mut obj["spec"];
            if spec["type"].is_null() {
                spec["type"] = json!("ClusterIP");
            }
            if spec["clusterIP"].is_null() {
                let ip = service_ip();
                spec["clusterIP"] = json!(ip);
                spec["clusterIPs"] = json!([ip]);
            }
            for (k, v) in [
                ("sessionAffinity", json!("None")),
                ("ipFamilies", json!(["IPv4"])),
                ("ipFamilyPolicy", json!("SingleStack")),
                ("internalTrafficPolicy", json!("Cluster")),
            ] {
                if spec.get(k).is_none() {
                    spec[k] = v;
                }
            }
            if let Some(ports) = spec["ports"].as_array_mut() {
                for p in ports {
                    if p["protocol"].is_null() {
                        p["protocol"] = json!("TCP");
                    }
                    if p["targetPort"].is_null() {
                        p["targetPort"] = p["port"].clone();
                    }
                }
            }
            obj["status"] = json!({"loadBalancer": {}});
        }
        _ => {}
    }
}

/// A ClusterIP from AKS's default service CIDR (10.0.0.0/16; 10.0.0.10 is kube-dns).
fn service_ip() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = 20 + NEXT.fetch_add(1, Ordering::Relaxed) % 65000;
    format!("10.0.{}.{}", n / 250, 1 + n % 250)
}

fn fill(v: &mut Value, key: &str, default: Value) {
    if !v.is_object() {
        *v = json!({});
    }
    if v.get(key).is_none_or(Value::is_null) {
        v[key] = default;
    }
}

/// A workload's pod template (`spec.template`): the pod spec's defaults and its containers'.
fn template(spec: &mut Value) {
    if !spec["template"].is_object() {
        return;
    }
    let pod = &mut spec["template"]["spec"];
    fill(pod, "restartPolicy", json!("Always"));
    fill(pod, "terminationGracePeriodSeconds", json!(30));
    fill(pod, "dnsPolicy", json!("ClusterFirst"));
    fill(pod, "securityContext", json!({}));
    fill(pod, "schedulerName", json!("default-scheduler"));
    containers(pod);
    if spec["template"]["metadata"].get("creationTimestamp").is_none() {
        spec["template"]["metadata"]["creationTimestamp"] = Value::Null;
    }
}

/// Each container's (and init container's) defaults: the termination message, the resources,
/// and the pull policy from the image's tag (`Always` for `:latest` or no tag, else
/// `IfNotPresent`).
fn containers(pod: &mut Value) {
    for list in ["initContainers", "containers"] {
        let Some(cs) = pod[list].as_array_mut() else {
            continue;
        };
        for c in cs {
            if !c.is_object() {
                continue;
            }
            fill(c, "terminationMessagePath", json!("/dev/termination-log"));
            fill(c, "terminationMessagePolicy", json!("File"));
            fill(c, "resources", json!({}));
            let policy = pull_policy(c["image"].as_str().unwrap_or(""));
            fill(c, "imagePullPolicy", json!(policy));
        }
    }
}

/// kube-apiserver's default pull policy for an image reference.
pub fn pull_policy(image: &str) -> &'static str {
    if image.contains('@') {
        return "IfNotPresent";
    }
    // The tag is after the last ':' that comes after the last '/' (a registry port is not one).
    let last = image.rsplit('/').next().unwrap_or(image);
    match last.rsplit_once(':') {
        Some((_, tag)) if tag != "latest" => "IfNotPresent",
        _ => "Always",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pull_policy_follows_the_tag() {
        assert_eq!(pull_policy("busybox"), "Always");
        assert_eq!(pull_policy("busybox:latest"), "Always");
        assert_eq!(pull_policy("busybox:1.36"), "IfNotPresent");
        assert_eq!(pull_policy("registry:5000/app"), "Always");
        assert_eq!(pull_policy("registry:5000/app:v1"), "IfNotPresent");
        assert_eq!(pull_policy("app@sha256:abc"), "IfNotPresent");
    }

    #[test]
    fn a_bare_deployment_gets_the_servers_defaults() {
        let mut d = json!({"spec": {"selector": {}, "template": {"metadata": {"labels": {"a": "b"}},
            "spec": {"containers": [{"name": "c", "image": "nginx:1.27"}]}}}});
        apply("deployments", &mut d);
        let s = &d["spec"];
        assert_eq!(s["replicas"], 1);
        assert_eq!(s["strategy"]["rollingUpdate"]["maxSurge"], "25%");
        assert_eq!(s["revisionHistoryLimit"], 10);
        assert_eq!(s["progressDeadlineSeconds"], 600);
        let p = &s["template"]["spec"];
        assert_eq!(p["restartPolicy"], "Always");
        assert_eq!(p["containers"][0]["imagePullPolicy"], "IfNotPresent");
        assert_eq!(p["containers"][0]["terminationMessagePath"], "/dev/termination-log");
    }
}
