//! OpenAPI v3 (`/openapi/v3` and one document per group-version) and server-side field
//! validation (`?fieldValidation=Strict|Warn|Ignore`), which is what `kubectl apply`,
//! `create` and `replace` need to validate manifests without `--validate=false`: kubectl
//! finds the `fieldValidation` parameter on the kind's PATCH operation and leaves the
//! checking to the server.
//!
//! The documents describe paths and operations (with `x-kubernetes-group-version-kind` and
//! `x-kubernetes-action`), not object schemas; they do not offer strategic merge patch as a
//! request body, so kubectl computes its patches from its compiled-in types, as it does for
//! built-in kinds. OpenAPI v2 is not served (kubectl only reads it, as protobuf, from
//! servers without server-side field validation).

use crate::store::{self, Resource};
use serde_json::{json, Value};

/// What an OpenAPI path names.
pub enum Doc {
    Index,
    GroupVersion(String, String),
}

pub fn route(path: &str) -> Option<Doc> {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    match segs.as_slice() {
        ["openapi", "v3"] => Some(Doc::Index),
        ["openapi", "v3", "api", v] => Some(Doc::GroupVersion(String::new(), v.to_string())),
        ["openapi", "v3", "apis", g, v] => Some(Doc::GroupVersion(g.to_string(), v.to_string())),
        _ => None,
    }
}

fn group_versions() -> Vec<(&'static str, &'static str)> {
    let mut out: Vec<(&str, &str)> = vec![];
    for r in store::ALL {
        if !out.contains(&(r.group, r.version)) {
            out.push((r.group, r.version));
        }
    }
    out
}

fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

/// `/openapi/v3`: where each group-version's document is, with a hash of its content.
pub fn index(k8s_version: &str) -> Value {
    let mut paths = serde_json::Map::new();
    for (g, v) in group_versions() {
        let p = gv_path(g, v);
        let hash = crate::ids::short_hash(&json!([k8s_version, p]).to_string());
        paths.insert(
            p.clone(),
            json!({"serverRelativeURL": format!("/openapi/v3/{p}?hash={hash}")}),
        );
    }
    json!({"paths": paths})
}

fn param(name: &str, in_: &str, required: bool, description: &str) -> Value {
    json!({"name": name, "in": in_, "required": required, "description": description, "schema": {"type": if name == "force" { "boolean" } else { "string" }, "uniqueItems": true}})
}

fn write_params(patch: bool) -> Vec<Value> {
    let mut p = vec![
        param("dryRun", "query", false, "When present, indicates that modifications should not be persisted. Valid values are: - All: all dry run stages will be processed"),
        param("fieldManager", "query", false, "fieldManager is a name associated with the actor or entity that is making these changes."),
        param("fieldValidation", "query", false, "fieldValidation instructs the server on how to handle objects in the request (POST/PUT/PATCH) containing unknown or duplicate fields. Valid values are: - Ignore - Warn - Strict"),
    ];
    if patch {
        p.push(param(
            "force",
            "query",
            false,
            "Force is going to \"force\" Apply requests.",
        ));
    }
    p
}

fn op(
    r: &Resource,
    action: &str,
    verb_id: &str,
    namespaced_path: bool,
    params: Vec<Value>,
    body: Option<&[&str]>,
) -> Value {
    let group_id: String = if r.group.is_empty() {
        "Core".into()
    } else {
        r.group
            .split('.')
            .next()
            .map(|g| {
                let mut c = g.chars();
                c.next()
                    .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
                    .unwrap_or_default()
            })
            .unwrap_or_default()
    };
    let version_id = {
        let mut c = r.version.chars();
        c.next()
            .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
            .unwrap_or_default()
    };
    let scope = if namespaced_path { "Namespaced" } else { "" };
    let mut o = json!({
        "operationId": format!("{verb_id}{group_id}{version_id}{scope}{}", r.kind),
        "parameters": params,
        "responses": {"200": {"description": "OK"}, "401": {"description": "Unauthorized"}},
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": {"group": r.group, "version": r.version, "kind": r.kind},
    });
    if let Some(types) = body {
        let content: serde_json::Map<String, Value> = types
            .iter()
            .map(|t| (t.to_string(), json!({"schema": {"type": "object"}})))
            .collect();
        o["requestBody"] = json!({"content": content, "required": true});
    }
    o
}

/// The OpenAPI v3 document of one group-version.
pub fn group_version(group: &str, version: &str, k8s_version: &str) -> Option<Value> {
    let resources: Vec<&Resource> = store::ALL
        .iter()
        .filter(|r| r.group == group && r.version == version)
        .collect();
    if resources.is_empty() {
        return None;
    }
    let base = format!("/{}", gv_path(group, version));
    let mut paths = serde_json::Map::new();
    const PATCHES: &[&str] = &[
        "application/json-patch+json",
        "application/merge-patch+json",
        "application/apply-patch+yaml",
    ];
    for r in resources {
        let (coll, one) = if r.namespaced {
            (
                format!("{base}/namespaces/{{namespace}}/{}", r.plural),
                format!("{base}/namespaces/{{namespace}}/{}/{{name}}", r.plural),
            )
        } else {
            (format!("{base}/{}", r.plural), format!("{base}/{}/{{name}}", r.plural))
        };
        let ns = r.namespaced;
        let mut common = vec![param(
            "pretty",
            "query",
            false,
            "If 'true', then the output is pretty printed.",
        )];
        if ns {
            common.push(param(
                "namespace",
                "path",
                true,
                "object name and auth scope, such as for teams and projects",
            ));
        }
        let mut one_params = common.clone();
        one_params.insert(0, param("name", "path", true, &format!("name of the {}", r.kind)));
        paths.insert(
            coll,
            json!({
                "get": op(r, "list", "list", ns, vec![param("labelSelector", "query", false, "A selector to restrict the list of returned objects by their labels."), param("fieldSelector", "query", false, "A selector to restrict the list of returned objects by their fields."), param("limit", "query", false, "limit"), param("continue", "query", false, "continue"), param("watch", "query", false, "watch")], None),
                "post": op(r, "post", "create", ns, write_params(false), Some(&["application/json", "application/yaml"])),
                "delete": op(r, "deletecollection", "deleteCollection", ns, vec![param("dryRun", "query", false, "dryRun")], Some(&["application/json"])),
                "parameters": common,
            }),
        );
        paths.insert(
            one,
            json!({
                "get": op(r, "get", "read", ns, vec![], None),
                "put": op(r, "put", "replace", ns, write_params(false), Some(&["application/json", "application/yaml"])),
                "patch": op(r, "patch", "patch", ns, write_params(true), Some(PATCHES)),
                "delete": op(r, "delete", "delete", ns, vec![param("dryRun", "query", false, "dryRun"), param("gracePeriodSeconds", "query", false, "gracePeriodSeconds")], Some(&["application/json"])),
                "parameters": one_params,
            }),
        );
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": format!("v{k8s_version}")},
        "paths": paths,
        "components": {"schemas": {}},
    }))
}

// ---------------------------------------------------------------------------------
// Server-side field validation

const OBJECT_META: &[&str] = &[
    "name",
    "generateName",
    "namespace",
    "selfLink",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "labels",
    "annotations",
    "ownerReferences",
    "finalizers",
    "managedFields",
];
const POD_SPEC: &[&str] = &[
    "volumes",
    "initContainers",
    "containers",
    "ephemeralContainers",
    "restartPolicy",
    "terminationGracePeriodSeconds",
    "activeDeadlineSeconds",
    "dnsPolicy",
    "nodeSelector",
    "serviceAccountName",
    "serviceAccount",
    "automountServiceAccountToken",
    "nodeName",
    "hostNetwork",
    "hostPID",
    "hostIPC",
    "shareProcessNamespace",
    "securityContext",
    "imagePullSecrets",
    "hostname",
    "subdomain",
    "affinity",
    "schedulerName",
    "tolerations",
    "hostAliases",
    "priorityClassName",
    "priority",
    "dnsConfig",
    "readinessGates",
    "runtimeClassName",
    "enableServiceLinks",
    "preemptionPolicy",
    "overhead",
    "topologySpreadConstraints",
    "setHostnameAsFQDN",
    "os",
    "hostUsers",
    "schedulingGates",
    "resourceClaims",
    "resources",
];
const CONTAINER: &[&str] = &[
    "name",
    "image",
    "command",
    "args",
    "workingDir",
    "ports",
    "envFrom",
    "env",
    "resources",
    "resizePolicy",
    "restartPolicy",
    "volumeMounts",
    "volumeDevices",
    "livenessProbe",
    "readinessProbe",
    "startupProbe",
    "lifecycle",
    "terminationMessagePath",
    "terminationMessagePolicy",
    "imagePullPolicy",
    "securityContext",
    "stdin",
    "stdinOnce",
    "tty",
];
const TEMPLATE: &[&str] = &["metadata", "spec"];

fn spec_fields(kind: &str) -> Option<&'static [&'static str]> {
    Some(match kind {
        "Pod" => POD_SPEC,
        "Deployment" => &[
            "replicas",
            "selector",
            "template",
            "strategy",
            "minReadySeconds",
            "revisionHistoryLimit",
            "paused",
            "progressDeadlineSeconds",
        ],
        "StatefulSet" => &[
            "replicas",
            "selector",
            "template",
            "volumeClaimTemplates",
            "serviceName",
            "podManagementPolicy",
            "updateStrategy",
            "revisionHistoryLimit",
            "minReadySeconds",
            "persistentVolumeClaimRetentionPolicy",
            "ordinals",
        ],
        "DaemonSet" => &[
            "selector",
            "template",
            "updateStrategy",
            "minReadySeconds",
            "revisionHistoryLimit",
        ],
        "ReplicaSet" => &["replicas", "minReadySeconds", "selector", "template"],
        "Job" => &[
            "parallelism",
            "completions",
            "activeDeadlineSeconds",
            "podFailurePolicy",
            "successPolicy",
            "backoffLimit",
            "backoffLimitPerIndex",
            "maxFailedIndexes",
            "selector",
            "manualSelector",
            "template",
            "ttlSecondsAfterFinished",
            "completionMode",
            "suspend",
            "podReplacementPolicy",
            "managedBy",
        ],
        "CronJob" => &[
            "schedule",
            "timeZone",
            "startingDeadlineSeconds",
            "concurrencyPolicy",
            "suspend",
            "jobTemplate",
            "successfulJobsHistoryLimit",
            "failedJobsHistoryLimit",
        ],
        "Service" => &[
            "ports",
            "selector",
            "clusterIP",
            "clusterIPs",
            "type",
            "externalIPs",
            "sessionAffinity",
            "loadBalancerIP",
            "loadBalancerSourceRanges",
            "externalName",
            "externalTrafficPolicy",
            "healthCheckNodePort",
            "publishNotReadyAddresses",
            "sessionAffinityConfig",
            "ipFamilies",
            "ipFamilyPolicy",
            "allocateLoadBalancerNodePorts",
            "loadBalancerClass",
            "internalTrafficPolicy",
            "trafficDistribution",
        ],
        "PodDisruptionBudget" => &[
            "minAvailable",
            "selector",
            "maxUnavailable",
            "unhealthyPodEvictionPolicy",
        ],
        "Lease" => &[
            "acquireTime",
            "holderIdentity",
            "leaseDurationSeconds",
            "leaseTransitions",
            "renewTime",
            "preferredHolder",
            "strategy",
        ],
        "Namespace" => &["finalizers"],
        "Node" => &[
            "podCIDR",
            "podCIDRs",
            "providerID",
            "unschedulable",
            "taints",
            "configSource",
            "externalID",
        ],
        _ => return None,
    })
}

fn top_fields(kind: &str) -> &'static [&'static str] {
    match kind {
        "ConfigMap" => &["apiVersion", "kind", "metadata", "data", "binaryData", "immutable"],
        "Secret" => &[
            "apiVersion",
            "kind",
            "metadata",
            "data",
            "stringData",
            "type",
            "immutable",
        ],
        "Event" => &[
            "apiVersion",
            "kind",
            "metadata",
            "involvedObject",
            "reason",
            "message",
            "source",
            "firstTimestamp",
            "lastTimestamp",
            "count",
            "type",
            "eventTime",
            "series",
            "action",
            "related",
            "reportingComponent",
            "reportingInstance",
        ],
        "ServiceAccount" => &[
            "apiVersion",
            "kind",
            "metadata",
            "secrets",
            "imagePullSecrets",
            "automountServiceAccountToken",
        ],
        "Role" => &["apiVersion", "kind", "metadata", "rules"],
        "ClusterRole" => &["apiVersion", "kind", "metadata", "rules", "aggregationRule"],
        "RoleBinding" | "ClusterRoleBinding" => &["apiVersion", "kind", "metadata", "subjects", "roleRef"],
        _ => &["apiVersion", "kind", "metadata", "spec", "status"],
    }
}

const POLICY_RULE: &[&str] = &["verbs", "apiGroups", "resources", "resourceNames", "nonResourceURLs"];
const SUBJECT: &[&str] = &["kind", "apiGroup", "name", "namespace"];
const ROLE_REF: &[&str] = &["apiGroup", "kind", "name"];

/// The RBAC kinds' nested fields: rules, subjects, roleRef.
fn check_rbac(obj: &Value, out: &mut Vec<String>) {
    for (i, r) in obj["rules"].as_array().into_iter().flatten().enumerate() {
        check_keys(r, POLICY_RULE, &format!("rules[{i}]"), out);
    }
    for (i, r) in obj["subjects"].as_array().into_iter().flatten().enumerate() {
        check_keys(r, SUBJECT, &format!("subjects[{i}]"), out);
    }
    check_keys(&obj["roleRef"], ROLE_REF, "roleRef", out);
}

fn check_keys(v: &Value, allowed: &[&str], path: &str, out: &mut Vec<String>) {
    if let Some(m) = v.as_object() {
        for k in m.keys() {
            if !allowed.contains(&k.as_str()) {
                out.push(if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                });
            }
        }
    }
}

fn check_pod_spec(spec: &Value, path: &str, out: &mut Vec<String>) {
    check_keys(spec, POD_SPEC, path, out);
    for list in ["containers", "initContainers"] {
        for (i, c) in spec[list].as_array().into_iter().flatten().enumerate() {
            check_keys(c, CONTAINER, &format!("{path}.{list}[{i}]"), out);
        }
    }
}

fn check_template(t: &Value, path: &str, out: &mut Vec<String>) {
    check_keys(t, TEMPLATE, path, out);
    check_keys(&t["metadata"], OBJECT_META, &format!("{path}.metadata"), out);
    check_pod_spec(&t["spec"], &format!("{path}.spec"), out);
}

/// The fields of an object (as sent in a create or update) that its kind does not have,
/// as `spec.template.spec.containers[0].imagee`.
pub fn unknown_fields(res: &Resource, obj: &Value) -> Vec<String> {
    let mut out = vec![];
    check_keys(obj, top_fields(res.kind), "", &mut out);
    check_keys(&obj["metadata"], OBJECT_META, "metadata", &mut out);
    if res.group == store::RBAC_GROUP {
        check_rbac(obj, &mut out);
    }
    if let Some(fields) = spec_fields(res.kind) {
        let spec = &obj["spec"];
        if res.kind == "Pod" {
            check_pod_spec(spec, "spec", &mut out);
        } else {
            check_keys(spec, fields, "spec", &mut out);
        }
        if spec["template"].is_object() {
            check_template(&spec["template"], "spec.template", &mut out);
        }
        let jt = &spec["jobTemplate"];
        if jt.is_object() {
            check_keys(jt, TEMPLATE, "spec.jobTemplate", &mut out);
            if let Some(job) = spec_fields("Job") {
                check_keys(&jt["spec"], job, "spec.jobTemplate.spec", &mut out);
            }
            if jt["spec"]["template"].is_object() {
                check_template(&jt["spec"]["template"], "spec.jobTemplate.spec.template", &mut out);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_fields_are_named_by_path() {
        let d = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x", "lables": {}},
            "spec": {"replicass": 2, "template": {"metadata": {}, "spec": {"containers": [{"name": "c", "imagee": "i"}]}}}});
        assert_eq!(
            unknown_fields(&store::DEPLOYMENTS, &d),
            [
                "metadata.lables",
                "spec.replicass",
                "spec.template.spec.containers[0].imagee"
            ]
        );
        let ok = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "b"}});
        assert!(unknown_fields(&store::CONFIGMAPS, &ok).is_empty());
    }

    #[test]
    fn patch_operations_carry_field_validation() {
        let doc = group_version("apps", "v1", "1.31.5").unwrap();
        let p = &doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"];
        assert_eq!(p["x-kubernetes-group-version-kind"]["kind"], "Deployment");
        assert!(p["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["name"] == "fieldValidation"));
        assert!(index("1.31.5")["paths"]["apis/apps/v1"]["serverRelativeURL"]
            .as_str()
            .unwrap()
            .starts_with("/openapi/v3/apis/apps/v1?hash="));
    }
}
