//! Who a request comes from and what it may do: the identities behind the emulator's
//! credentials, the rules bound to them (the scenario's `access.user` and the stored Roles,
//! ClusterRoles and their bindings), RBAC rules (verbs, API groups, resources with subresources such as
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
    /// The binding that grants the rule, as the RBAC authorizer words it (`ClusterRoleBinding
    /// "x" of ClusterRole "y" to ServiceAccount "sa/ns"`); empty for the scenario's rules.
    #[serde(skip)]
    pub granted_by: String,
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
        Some(r) if !r.granted_by.is_empty() => (true, format!("RBAC: allowed by {}", r.granted_by)),
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

/// `system:serviceaccount:NS:NAME`, the user name of a ServiceAccount.
pub fn service_account_username(namespace: &str, name: &str) -> String {
    format!("system:serviceaccount:{namespace}:{name}")
}

/// The groups of a ServiceAccount (`system:authenticated` aside).
pub fn service_account_groups(namespace: &str) -> Vec<String> {
    vec![
        "system:serviceaccounts".to_string(),
        format!("system:serviceaccounts:{namespace}"),
    ]
}

/// `(namespace, name)` of a ServiceAccount user name.
pub fn parse_service_account_username(username: &str) -> Option<(&str, &str)> {
    let rest = username.strip_prefix("system:serviceaccount:")?;
    let (ns, name) = rest.split_once(':')?;
    (!ns.is_empty() && !name.is_empty() && !name.contains(':')).then_some((ns, name))
}

/// What a stored Subject (rbac.authorization.k8s.io/v1) names, as the RBAC authorizer
/// describes it (`describeSubject`), when it is the user `username` in `groups`; a
/// ServiceAccount subject without a namespace is in the binding's (`binding_ns`).
fn subject_matches(subject: &Value, binding_ns: &str, username: &str, groups: &[String]) -> Option<String> {
    let name = subject["name"].as_str().unwrap_or("");
    match subject["kind"].as_str().unwrap_or("") {
        "User" if name == username => Some(format!("User \"{name}\"")),
        "Group" if groups.iter().any(|g| g == name) => Some(format!("Group \"{name}\"")),
        "ServiceAccount" => {
            let ns = subject["namespace"]
                .as_str()
                .filter(|n| !n.is_empty())
                .unwrap_or(binding_ns);
            (!ns.is_empty() && username == service_account_username(ns, name))
                .then(|| format!("ServiceAccount \"{name}/{ns}\""))
        }
        _ => None,
    }
}

/// The RBAC API group.
pub const GROUP: &str = "rbac.authorization.k8s.io";

/// The stored RBAC objects the authorizer reads (the object store has them).
pub trait Objects {
    fn cluster_role_bindings(&self) -> Vec<Value>;
    fn role_bindings(&self) -> Vec<Value>;
    fn cluster_role(&self, name: &str) -> Option<Value>;
    fn role(&self, namespace: &str, name: &str) -> Option<Value>;
}

/// The PolicyRules of a stored Role or ClusterRole (rules that do not parse grant nothing).
fn role_rules(role: &Value) -> Vec<Rule> {
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .into_iter()
            .flatten()
            .filter_map(|x| x.as_str().map(str::to_string))
            .collect()
    };
    role["rules"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| Rule {
            verbs: strings(&r["verbs"]),
            api_groups: strings(&r["apiGroups"]),
            resources: strings(&r["resources"]),
            resource_names: strings(&r["resourceNames"]),
            non_resource_urls: strings(&r["nonResourceURLs"]),
            namespaces: vec![],
            granted_by: String::new(),
        })
        .collect()
}

/// The rules the stored ClusterRoleBindings and RoleBindings grant the user `username` in
/// `groups`, as the RBAC authorizer finds them: ClusterRoleBindings first (everywhere), then
/// RoleBindings (only in their namespace, whether they reference a Role there or a
/// ClusterRole). A binding whose role does not exist grants nothing.
pub fn bound_rules(objects: &impl Objects, username: &str, groups: &[String]) -> Vec<Rule> {
    let mut out = vec![];
    for b in objects.cluster_role_bindings() {
        let role_ref = &b["roleRef"];
        if role_ref["kind"] != "ClusterRole" {
            continue;
        }
        let Some(subject) = b["subjects"]
            .as_array()
            .into_iter()
            .flatten()
            .find_map(|s| subject_matches(s, "", username, groups))
        else {
            continue;
        };
        let role = role_ref["name"].as_str().unwrap_or("");
        let Some(r) = objects.cluster_role(role) else {
            continue;
        };
        let by = format!(
            "ClusterRoleBinding \"{}\" of ClusterRole \"{role}\" to {subject}",
            b["metadata"]["name"].as_str().unwrap_or("")
        );
        out.extend(role_rules(&r).into_iter().map(|rule| Rule {
            granted_by: by.clone(),
            ..rule
        }));
    }
    for b in objects.role_bindings() {
        let ns = b["metadata"]["namespace"].as_str().unwrap_or("default").to_string();
        let Some(subject) = b["subjects"]
            .as_array()
            .into_iter()
            .flatten()
            .find_map(|s| subject_matches(s, &ns, username, groups))
        else {
            continue;
        };
        let role_ref = &b["roleRef"];
        let role = role_ref["name"].as_str().unwrap_or("");
        let (kind, found) = match role_ref["kind"].as_str() {
            Some("ClusterRole") => ("ClusterRole", objects.cluster_role(role)),
            Some("Role") => ("Role", objects.role(&ns, role)),
            _ => continue,
        };
        let Some(r) = found else { continue };
        let by = format!(
            "RoleBinding \"{}/{ns}\" of {kind} \"{role}\" to {subject}",
            b["metadata"]["name"].as_str().unwrap_or("")
        );
        out.extend(role_rules(&r).into_iter().map(|rule| Rule {
            namespaces: vec![ns.clone()],
            granted_by: by.clone(),
            ..rule
        }));
    }
    out
}

/// The bootstrap ClusterRoles every cluster has (created at start, `created` their
/// creationTimestamp): `cluster-admin`, and its ClusterRoleBindings: to `system:masters`.
pub fn bootstrap_objects(created: &str) -> (Vec<Value>, Vec<Value>) {
    let meta = |name: &str| {
        json!({"name": name, "creationTimestamp": created,
            "labels": {"kubernetes.io/bootstrapping": "rbac-defaults"},
            "annotations": {"rbac.authorization.kubernetes.io/autoupdate": "true"}})
    };
    let roles = vec![json!({"metadata": meta("cluster-admin"), "rules": [
        {"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]},
        {"verbs": ["*"], "nonResourceURLs": ["*"]},
    ]})];
    let bindings = vec![json!({"metadata": meta("cluster-admin"),
        "roleRef": {"apiGroup": GROUP, "kind": "ClusterRole", "name": "cluster-admin"},
        "subjects": [{"apiGroup": GROUP, "kind": "Group", "name": "system:masters"}]})];
    (roles, bindings)
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

    fn sa(ns: &str, name: &str) -> Identity {
        let mut groups = service_account_groups(ns);
        groups.push("system:authenticated".into());
        Identity {
            username: service_account_username(ns, name),
            groups,
            role: String::new(),
            rules: Some(vec![]),
        }
    }

    /// RBAC objects as the store would hold them.
    #[derive(Default)]
    struct Stored {
        cluster_role_bindings: Vec<Value>,
        role_bindings: Vec<Value>,
        cluster_roles: Vec<Value>,
        roles: Vec<Value>,
    }

    fn named<'a>(list: &'a [Value], ns: Option<&str>, name: &str) -> Option<&'a Value> {
        list.iter()
            .find(|o| o["metadata"]["name"] == name && ns.is_none_or(|ns| o["metadata"]["namespace"] == ns))
    }

    impl Objects for Stored {
        fn cluster_role_bindings(&self) -> Vec<Value> {
            self.cluster_role_bindings.clone()
        }
        fn role_bindings(&self) -> Vec<Value> {
            self.role_bindings.clone()
        }
        fn cluster_role(&self, name: &str) -> Option<Value> {
            named(&self.cluster_roles, None, name).cloned()
        }
        fn role(&self, namespace: &str, name: &str) -> Option<Value> {
            named(&self.roles, Some(namespace), name).cloned()
        }
    }

    fn bound(store: &Stored, mut id: Identity) -> Identity {
        id.rules = Some(bound_rules(store, &id.username, &id.groups));
        id
    }

    #[test]
    fn stored_bindings_grant_their_roles_where_they_are_bound() {
        let mut store = Stored::default();
        store
            .cluster_roles
            .push(json!({"metadata": {"name": "node-patcher"}, "rules": [
                {"verbs": ["get", "list", "patch"], "apiGroups": [""], "resources": ["nodes"]},
                {"verbs": ["create"], "apiGroups": [""], "resources": ["pods/eviction"]},
                {"verbs": ["get"], "nonResourceURLs": ["/metrics"]}]}));
        store.cluster_role_bindings.push(
            json!({"metadata": {"name": "aks-patch"}, "roleRef": {"kind": "ClusterRole", "name": "node-patcher"},
                "subjects": [{"kind": "ServiceAccount", "name": "aks-patch", "namespace": "aks-patch"}]}),
        );
        store.roles.push(
            json!({"metadata": {"name": "journal", "namespace": "aks-patch"}, "rules": [
                {"verbs": ["get", "update"], "apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["runs"]}]}),
        );
        store.role_bindings.push(
            json!({"metadata": {"name": "journal", "namespace": "aks-patch"}, "roleRef": {"kind": "Role", "name": "journal"},
                "subjects": [{"kind": "ServiceAccount", "name": "aks-patch"}]}),
        );
        store
            .role_bindings
            .push(json!({"metadata": {"name": "evict-shop", "namespace": "shop"},
                "roleRef": {"kind": "ClusterRole", "name": "node-patcher"},
                "subjects": [{"kind": "Group", "name": "shop-ops"}]}));
        let id = bound(&store, sa("aks-patch", "aks-patch"));
        let ok = |id: &Identity, a: &Attributes| authorize(id, a).0;
        assert!(ok(&id, &res("patch", "", "nodes", "", "", "n1")));
        let (_, why) = authorize(&id, &res("patch", "", "nodes", "", "", "n1"));
        assert_eq!(
            why,
            "RBAC: allowed by ClusterRoleBinding \"aks-patch\" of ClusterRole \"node-patcher\" to ServiceAccount \"aks-patch/aks-patch\""
        );
        assert!(ok(&id, &res("create", "", "pods", "eviction", "shop", "p")));
        assert!(!ok(&id, &res("delete", "", "nodes", "", "", "n1")));
        assert!(ok(&id, &res("update", "", "configmaps", "", "aks-patch", "runs")));
        let (_, why) = authorize(&id, &res("update", "", "configmaps", "", "aks-patch", "runs"));
        assert_eq!(
            why,
            "RBAC: allowed by RoleBinding \"journal/aks-patch\" of Role \"journal\" to ServiceAccount \"aks-patch/aks-patch\""
        );
        assert!(!ok(&id, &res("update", "", "configmaps", "", "aks-patch", "other")));
        assert!(!ok(&id, &res("update", "", "configmaps", "", "default", "runs")));
        assert!(!ok(&id, &res("list", "", "configmaps", "", "", "")));
        let path = Attributes {
            verb: "get".into(),
            resource: None,
            path: "/metrics".into(),
        };
        assert!(ok(&id, &path));
        let other = bound(&store, sa("default", "aks-patch"));
        assert!(
            !ok(&other, &res("patch", "", "nodes", "", "", "n1")),
            "same name, other namespace"
        );

        // A RoleBinding of a ClusterRole grants it only in its namespace, and no URL.
        let user = bound(
            &store,
            Identity {
                username: "ann@contoso.com".into(),
                groups: vec!["shop-ops".into(), "system:authenticated".into()],
                role: String::new(),
                rules: Some(vec![]),
            },
        );
        assert!(ok(&user, &res("create", "", "pods", "eviction", "shop", "p")));
        assert!(!ok(&user, &res("create", "", "pods", "eviction", "default", "p")));
        assert!(!ok(&user, &res("patch", "", "nodes", "", "", "n1")));
        assert!(!ok(&user, &path));

        // A removed rule grants nothing any more; a binding of a missing role grants nothing.
        store.cluster_roles[0]["rules"].as_array_mut().unwrap().remove(0);
        let id = bound(&store, sa("aks-patch", "aks-patch"));
        assert!(!ok(&id, &res("patch", "", "nodes", "", "", "n1")));
        store.roles.clear();
        let id = bound(&store, sa("aks-patch", "aks-patch"));
        assert!(!ok(&id, &res("update", "", "configmaps", "", "aks-patch", "runs")));
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

    #[test]
    fn service_account_user_names_parse() {
        assert_eq!(
            parse_service_account_username("system:serviceaccount:ops:patcher"),
            Some(("ops", "patcher"))
        );
        assert_eq!(parse_service_account_username("system:serviceaccount:ops"), None);
        assert_eq!(parse_service_account_username("ops@contoso.com"), None);
    }
}
