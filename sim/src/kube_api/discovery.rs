//! API discovery: `/version`, `/api`, `/apis`, `/apis/{group}` and the group versions'
//! APIResourceLists. Always plain JSON: a client asking for aggregated discovery
//! (`as=APIGroupDiscoveryList`) falls back to these, as kubectl does.

use crate::store::{self, Resource};
use crate::Shared;
use serde_json::{json, Value};

pub fn version(s: &Shared) -> Value {
    let v = &s.scenario.cluster.kubernetes_version;
    let mut parts = v.split('.');
    let major = parts.next().unwrap_or("1").to_string();
    let minor = parts.next().unwrap_or("0").to_string();
    json!({
        "major": major,
        "minor": minor,
        "gitVersion": format!("v{v}"),
        "gitCommit": "9b1f6e8b0dbb6b4a5c0a1d5bfa2b0c6a3f2d1e0c",
        "gitTreeState": "clean",
        "buildDate": "2025-01-15T14:32:12Z",
        "goVersion": "go1.22.10",
        "compiler": "gc",
        "platform": "linux/amd64",
    })
}

pub fn api_versions(s: &Shared) -> Value {
    let addr = s
        .endpoints
        .get()
        .map(|e| e.kube_url.trim_start_matches("https://").to_string())
        .unwrap_or_default();
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": addr}],
    })
}

/// Resources served without being stored: the self reviews (group, version, plural, kind).
const REVIEWS: &[(&str, &str, &str, &str)] = &[
    ("authentication.k8s.io", "v1", "selfsubjectreviews", "SelfSubjectReview"),
    (
        "authorization.k8s.io",
        "v1",
        "selfsubjectaccessreviews",
        "SelfSubjectAccessReview",
    ),
    (
        "authorization.k8s.io",
        "v1",
        "selfsubjectrulesreviews",
        "SelfSubjectRulesReview",
    ),
];

/// The named groups (everything but the core group), in discovery order.
fn groups() -> Vec<(&'static str, &'static str)> {
    let mut out: Vec<(&str, &str)> = vec![];
    for r in store::ALL {
        if !r.group.is_empty() && !out.contains(&(r.group, r.version)) {
            out.push((r.group, r.version));
        }
    }
    for (g, v, _, _) in REVIEWS {
        if !out.contains(&(*g, *v)) {
            out.push((g, v));
        }
    }
    out
}

fn group_object(group: &str, version: &str) -> Value {
    let gv = json!({"groupVersion": format!("{group}/{version}"), "version": version});
    json!({"name": group, "versions": [gv.clone()], "preferredVersion": gv})
}

pub fn api_group_list() -> Value {
    let groups: Vec<Value> = groups().into_iter().map(|(g, v)| group_object(g, v)).collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// `/apis/{group}`.
pub fn api_group(group: &str) -> Option<Value> {
    let (g, v) = groups().into_iter().find(|(g, _)| *g == group)?;
    let mut o = group_object(g, v);
    o["kind"] = json!("APIGroup");
    o["apiVersion"] = json!("v1");
    Some(o)
}

fn categories(r: &Resource) -> Option<Value> {
    match r.plural {
        "pods" | "deployments" | "replicasets" | "daemonsets" | "statefulsets" | "services" | "jobs" | "cronjobs" => {
            Some(json!(["all"]))
        }
        _ => None,
    }
}

/// `/api/v1` or `/apis/{group}/{version}`.
pub fn resource_list(group: &str, version: &str) -> Option<Value> {
    let mut resources = vec![];
    for r in store::ALL.iter().filter(|r| r.group == group && r.version == version) {
        let mut verbs: Vec<&str> = r.verbs.to_vec();
        if !verbs.contains(&"deletecollection") {
            verbs.push("deletecollection");
            verbs.sort();
        }
        let mut o = json!({
            "name": r.plural,
            "singularName": r.kind.to_lowercase(),
            "namespaced": r.namespaced,
            "kind": r.kind,
            "verbs": verbs,
        });
        if !r.short_names.is_empty() {
            o["shortNames"] = json!(r.short_names);
        }
        if let Some(c) = categories(r) {
            o["categories"] = c;
        }
        resources.push(o);
        if store::has_status(r) {
            resources.push(json!({
                "name": format!("{}/status", r.plural),
                "singularName": "",
                "namespaced": r.namespaced,
                "kind": r.kind,
                "verbs": ["get", "patch", "update"],
            }));
        }
        if *r == store::PODS {
            resources.push(json!({
                "name": "pods/eviction",
                "singularName": "",
                "namespaced": true,
                "group": "policy",
                "version": "v1",
                "kind": "Eviction",
                "verbs": ["create"],
            }));
        }
        if *r == store::SERVICEACCOUNTS {
            resources.push(json!({
                "name": "serviceaccounts/token",
                "singularName": "",
                "namespaced": true,
                "group": "authentication.k8s.io",
                "version": "v1",
                "kind": "TokenRequest",
                "verbs": ["create"],
            }));
        }
        if *r == store::DEPLOYMENTS || *r == store::REPLICASETS || *r == store::STATEFULSETS {
            resources.push(json!({
                "name": format!("{}/scale", r.plural),
                "singularName": "",
                "namespaced": true,
                "group": "autoscaling",
                "version": "v1",
                "kind": "Scale",
                "verbs": ["get", "patch", "update"],
            }));
        }
    }
    for (_, _, plural, kind) in REVIEWS.iter().filter(|(g, v, _, _)| *g == group && *v == version) {
        resources.push(json!({
            "name": plural,
            "singularName": kind.to_lowercase(),
            "namespaced": false,
            "kind": kind,
            "verbs": ["create"],
        }));
    }
    if resources.is_empty() {
        return None;
    }
    let gv = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    Some(json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn core_list_has_eviction_and_status_subresources() {
        let l = resource_list("", "v1").unwrap();
        let names: Vec<&str> = l["resources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap())
            .collect();
        for n in [
            "nodes",
            "nodes/status",
            "pods",
            "pods/status",
            "pods/eviction",
            "namespaces",
            "events",
            "serviceaccounts",
            "serviceaccounts/token",
        ] {
            assert!(names.contains(&n), "{n} missing from {names:?}");
        }
        let ev = l["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == "pods/eviction")
            .unwrap();
        assert_eq!(ev["group"], "policy");
        assert_eq!(ev["version"], "v1");
        assert_eq!(ev["kind"], "Eviction");
        assert_eq!(ev["verbs"], json!(["create"]));
    }

    #[test]
    fn groups_are_listed() {
        let g = api_group_list();
        let names: Vec<&str> = g["groups"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| g["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            vec![
                "apps",
                "batch",
                "policy",
                "coordination.k8s.io",
                "events.k8s.io",
                "rbac.authorization.k8s.io",
                "authentication.k8s.io",
                "authorization.k8s.io"
            ]
        );
        assert!(resource_list("apps", "v1").is_some());
        assert!(resource_list("apps", "v2").is_none());
        assert!(api_group("policy").is_some());
        assert!(resource_list("events.k8s.io", "v1").unwrap()["resources"][0]["name"] == "events");
    }
}
