//! Who a request comes from and what it may do: the identities behind the emulator's
//! credentials, RBAC-style rules (verbs, API groups, resources with subresources such as
//! `pods/eviction` or `pods/exec`, resource names, non-resource URLs, and the namespaces a
//! rule is bound in), the 403 Forbidden the API server answers, and the self-review APIs
//! (`SelfSubjectAccessReview`, `SelfSubjectRulesReview`, `SelfSubjectReview`) behind
//! `kubectl auth can-i` and `kubectl auth whoami`.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// One rule of a ClusterRole (rbac.authorization.k8s.io/v1 PolicyRule), plus where it is
/// bound: everywhere (a ClusterRoleBinding) or only in `namespaces` (RoleBindings there).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Rule {
    #[serde(default)]
    pub verbs: Vec<String>,
    #[serde(default)]
    pub api_groups: Vec<String>,
    /// `nodes`, `pods/eviction`, `*`, `*/scale`, ...
    #[serde(default)]
    pub resources: Vec<String>,
    #[serde(default)]
    pub resource_names: Vec<String>,
    /// `/healthz`, `/version`, `/apis/*`, ... (cluster-wide rules only).
    #[serde(default, rename = "nonResourceURLs")]
    pub non_resource_urls: Vec<String>,
    /// Bound only in these namespaces; absent or empty: bound cluster-wide.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespaces: Vec<String>,
}

/// What a credential authenticates as, and what it is allowed.
#[derive(Debug, Clone, PartialEq)]
pub struct Identity {
    pub username: String,
    pub groups: Vec<String>,
    /// The ClusterRole its rules come from (named in allow reasons).
    pub role: String,
    /// None: `system:masters`, everything allowed.
    pub rules: Option<Vec<Rule>>,
}

impl Identity {
    /// AKS local accounts (`listClusterAdminCredential`, and `listClusterUserCredential` on a
    /// cluster without Entra ID) authenticate as `masterclient` in `system:masters`.
    pub fn master() -> Identity {
        Identity {
            username: "masterclient".into(),
            groups: vec!["system:masters".into(), "system:authenticated".into()],
            role: "cluster-admin".into(),
            rules: None,
        }
    }
}

/// What a request asks to do (the API server's authorizer attributes).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Attributes {
    pub verb: String,
    /// Resource requests: the API group ("" for core), resource, subresource, namespace
    /// ("" at the cluster scope) and name ("" for lists and creates).
    pub resource: Option<ResourceAttrs>,
    /// Non-resource requests: the path.
    pub path: String,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct ResourceAttrs {
    pub group: String,
    pub resource: String,
    pub subresource: String,
    pub namespace: String,
    pub name: String,
}

fn has(list: &[String], want: &str) -> bool {
    list.iter().any(|x| x == "*" || x == want)
}

impl Rule {
    fn allows(&self, a: &Attributes) -> bool {
        if !has(&self.verbs, &a.verb) {
            return false;
        }
        match &a.resource {
            Some(r) => {
                if !self.namespaces.is_empty() && !self.namespaces.contains(&r.namespace) {
                    return false;
                }
                let combined = if r.subresource.is_empty() {
                    r.resource.clone()
                } else {
                    format!("{}/{}", r.resource, r.subresource)
                };
                let resource_ok = self.resources.iter().any(|x| {
                    x == "*" || *x == combined || (!r.subresource.is_empty() && *x == format!("*/{}", r.subresource))
                });
                has(&self.api_groups, &r.group)
                    && resource_ok
                    && (self.resource_names.is_empty() || self.resource_names.contains(&r.name))
            }
            None => {
                self.namespaces.is_empty()
                    && self.non_resource_urls.iter().any(|u| match u.strip_suffix('*') {
                        Some(prefix) => a.path.starts_with(prefix),
                        None => *u == a.path,
                    })
            }
        }
    }
}

/// Requests every authenticated user may make (the `system:basic-user`,
/// `system:discovery` and `system:public-info-viewer` ClusterRoles).
fn always_allowed(a: &Attributes) -> bool {
    match &a.resource {
        Some(r) => {
            a.verb == "create"
                && matches!(
                    (r.group.as_str(), r.resource.as_str()),
                    ("authorization.k8s.io", "selfsubjectaccessreviews")
                        | ("authorization.k8s.io", "selfsubjectrulesreviews")
                        | ("authentication.k8s.io", "selfsubjectreviews")
                )
        }
        None => {
            a.verb == "get"
                && (matches!(
                    a.path.as_str(),
                    "/api" | "/apis" | "/version" | "/healthz" | "/livez" | "/readyz" | "/openapi/v2"
                ) || ["/api/", "/apis/", "/openapi/v3"].iter().any(|p| a.path.starts_with(p)))
        }
    }
}

/// Allowed, and why (as RBAC words it).
pub fn authorize(id: &Identity, a: &Attributes) -> (bool, String) {
    let Some(rules) = &id.rules else {
        return (true, String::new());
    };
    if always_allowed(a) {
        return (true, String::new());
    }
    match rules.iter().find(|r| r.allows(a)) {
        Some(r) if r.namespaces.is_empty() => (
            true,
            format!(
                "RBAC: allowed by ClusterRoleBinding \"{}\" of ClusterRole \"{}\" to User \"{}\"",
                id.role, id.role, id.username
            ),
        ),
        Some(_) => {
            let ns = a.resource.as_ref().map(|r| r.namespace.as_str()).unwrap_or("");
            (
                true,
                format!(
                    "RBAC: allowed by RoleBinding \"{}/{ns}\" of ClusterRole \"{}\" to User \"{}\"",
                    id.role, id.role, id.username
                ),
            )
        }
        None => (false, String::new()),
    }
}

/// The API server's 403 message for a denied request.
pub fn forbidden_message(id: &Identity, a: &Attributes) -> String {
    let user = &id.username;
    let verb = &a.verb;
    let Some(r) = &a.resource else {
        return format!("forbidden: User \"{user}\" cannot {verb} path \"{}\"", a.path);
    };
    let mut resource = r.resource.clone();
    if !r.subresource.is_empty() {
        resource = format!("{resource}/{}", r.subresource);
    }
    let why = if r.namespace.is_empty() {
        format!(
            "User \"{user}\" cannot {verb} resource \"{resource}\" in API group \"{}\" at the cluster scope",
            r.group
        )
    } else {
        format!(
            "User \"{user}\" cannot {verb} resource \"{resource}\" in API group \"{}\" in the namespace \"{}\"",
            r.group, r.namespace
        )
    };
    let qualified = if r.group.is_empty() {
        r.resource.clone()
    } else {
        format!("{}.{}", r.resource, r.group)
    };
    if r.name.is_empty() {
        format!("{qualified} is forbidden: {why}")
    } else {
        format!("{qualified} \"{}\" is forbidden: {why}", r.name)
    }
}

/// The `Status` details of that 403.
pub fn forbidden_details(a: &Attributes) -> Value {
    match &a.resource {
        Some(r) => {
            let mut d = json!({"kind": r.resource});
            if !r.name.is_empty() {
                d["name"] = json!(r.name);
            }
            if !r.group.is_empty() {
                d["group"] = json!(r.group);
            }
            d
        }
        None => json!({}),
    }
}

/// `SelfSubjectRulesReview` status for a namespace.
pub fn rules_review(id: &Identity, namespace: &str) -> Value {
    let mut resource_rules = vec![json!({"verbs": ["create"], "apiGroups": ["authorization.k8s.io"],
        "resources": ["selfsubjectaccessreviews", "selfsubjectrulesreviews"]})];
    resource_rules.push(
        json!({"verbs": ["create"], "apiGroups": ["authentication.k8s.io"], "resources": ["selfsubjectreviews"]}),
    );
    let mut non_resource = vec![
        json!({"verbs": ["get"], "nonResourceURLs": ["/api", "/api/*", "/apis", "/apis/*", "/healthz", "/livez", "/openapi", "/openapi/*", "/readyz", "/version", "/version/"]}),
    ];
    match &id.rules {
        None => {
            resource_rules.insert(0, json!({"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}));
            non_resource.insert(0, json!({"verbs": ["*"], "nonResourceURLs": ["*"]}));
        }
        Some(rules) => {
            for r in rules {
                if !r.namespaces.is_empty() && !r.namespaces.iter().any(|n| n == namespace) {
                    continue;
                }
                if !r.resources.is_empty() {
                    let mut o = json!({"verbs": r.verbs, "apiGroups": r.api_groups, "resources": r.resources});
                    if !r.resource_names.is_empty() {
                        o["resourceNames"] = json!(r.resource_names);
                    }
                    resource_rules.push(o);
                }
                if !r.non_resource_urls.is_empty() && r.namespaces.is_empty() {
                    non_resource.push(json!({"verbs": r.verbs, "nonResourceURLs": r.non_resource_urls}));
                }
            }
        }
    }
    json!({"resourceRules": resource_rules, "nonResourceRules": non_resource, "incomplete": false})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(verb: &str, group: &str, resource: &str, sub: &str, ns: &str, name: &str) -> Attributes {
        Attributes {
            verb: verb.into(),
            resource: Some(ResourceAttrs {
                group: group.into(),
                resource: resource.into(),
                subresource: sub.into(),
                namespace: ns.into(),
                name: name.into(),
            }),
            path: String::new(),
        }
    }

    fn reader() -> Identity {
        let rules: Vec<Rule> = serde_yaml_ng::from_str(
            r#"
- {verbs: [get, list, watch], apiGroups: [""], resources: [nodes, pods]}
- {verbs: [create], apiGroups: [""], resources: [pods/eviction], namespaces: [shop]}
- {verbs: [get], apiGroups: [apps], resources: ["*/scale"]}
- {verbs: [get], apiGroups: [coordination.k8s.io], resources: [leases], resourceNames: [aks-patch]}
- {verbs: [get], nonResourceURLs: ["/metrics"]}
"#,
        )
        .unwrap();
        Identity {
            username: "ops@contoso.com".into(),
            groups: vec!["system:authenticated".into()],
            role: "node-reader".into(),
            rules: Some(rules),
        }
    }

    #[test]
    fn rules_match_as_rbac() {
        let id = reader();
        let ok = |a: &Attributes| authorize(&id, a).0;
        assert!(ok(&res("list", "", "nodes", "", "", "")));
        assert!(!ok(&res("patch", "", "nodes", "", "", "n1")));
        assert!(ok(&res("create", "", "pods", "eviction", "shop", "p")));
        assert!(!ok(&res("create", "", "pods", "eviction", "default", "p")));
        assert!(!ok(&res("create", "", "pods", "exec", "shop", "p")));
        assert!(ok(&res("get", "apps", "deployments", "scale", "shop", "d")));
        assert!(ok(&res(
            "get",
            "coordination.k8s.io",
            "leases",
            "",
            "kube-system",
            "aks-patch"
        )));
        assert!(!ok(&res(
            "get",
            "coordination.k8s.io",
            "leases",
            "",
            "kube-system",
            "other"
        )));
        assert!(ok(&res(
            "create",
            "authorization.k8s.io",
            "selfsubjectaccessreviews",
            "",
            "",
            ""
        )));
        let path = |p: &str| Attributes {
            verb: "get".into(),
            resource: None,
            path: p.into(),
        };
        assert!(ok(&path("/metrics")));
        assert!(ok(&path("/apis/apps/v1")));
        assert!(!ok(&path("/logs")));
        assert!(authorize(&Identity::master(), &res("delete", "", "nodes", "", "", "n")).0);
    }

    #[test]
    fn forbidden_messages_are_the_apiservers() {
        let id = reader();
        assert_eq!(
            forbidden_message(&id, &res("patch", "", "nodes", "", "", "x")),
            "nodes \"x\" is forbidden: User \"ops@contoso.com\" cannot patch resource \"nodes\" in API group \"\" at the cluster scope"
        );
        assert_eq!(
            forbidden_message(&id, &res("create", "", "pods", "eviction", "default", "p")),
            "pods \"p\" is forbidden: User \"ops@contoso.com\" cannot create resource \"pods/eviction\" in API group \"\" in the namespace \"default\""
        );
        assert_eq!(
            forbidden_message(&id, &res("list", "apps", "deployments", "", "", "")),
            "deployments.apps is forbidden: User \"ops@contoso.com\" cannot list resource \"deployments\" in API group \"apps\" at the cluster scope"
        );
    }
}
