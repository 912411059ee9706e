//! The defaults kube-apiserver fills into objects created through the API (the
//! `SetDefaults_*` functions of k8s.io/kubernetes/pkg/apis/{core,apps}/v1): what a client
//! reads back from a create is what it would read from a real cluster.

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
        _ => {}
    }
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
