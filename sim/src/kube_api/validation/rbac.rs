//! The RBAC kinds' validation (k8s.io/kubernetes `pkg/apis/rbac/validation`): policy rules,
//! role references and subjects of Roles, ClusterRoles and their bindings, and the
//! immutable `roleRef` of a binding.

use super::{dns1123_subdomain, go_quote, unsupported, ErrorType, FieldError};
use crate::store::{self, Resource, RBAC_GROUP};
use serde_json::Value;

/// `path.IsValidPathSegmentName`: RBAC names may be anything that fits in a URL path segment
/// (`system:controller:x` is a valid ClusterRole name).
pub fn path_segment_name(name: &str) -> Vec<String> {
    for bad in [".", ".."] {
        if name == bad {
            return vec![format!("may not be '{bad}'")];
        }
    }
    ["/", "%"]
        .iter()
        .filter(|c| name.contains(**c))
        .map(|c| format!("may not contain '{c}'"))
        .collect()
}

fn strings(v: &Value) -> Vec<&str> {
    v.as_array().into_iter().flatten().filter_map(Value::as_str).collect()
}

/// A `[]string` as Go's `%#v` prints it.
fn go_string_slice(v: &[&str]) -> String {
    format!(
        "[]string{{{}}}",
        v.iter().map(|s| go_quote(s)).collect::<Vec<_>>().join(", ")
    )
}

/// `ValidatePolicyRule`.
fn policy_rule(rule: &Value, namespaced: bool, path: &str, errs: &mut Vec<FieldError>) {
    if strings(&rule["verbs"]).is_empty() {
        errs.push(FieldError::required(
            &format!("{path}.verbs"),
            "verbs must contain at least one value",
        ));
    }
    let urls = strings(&rule["nonResourceURLs"]);
    if !urls.is_empty() {
        let field = format!("{path}.nonResourceURLs");
        if namespaced {
            errs.push(FieldError::new(
                ErrorType::Invalid,
                &field,
                Some(go_string_slice(&urls)),
                "namespaced rules cannot apply to non-resource URLs",
            ));
        }
        let resourceful = ["apiGroups", "resources", "resourceNames"]
            .iter()
            .any(|k| !strings(&rule[*k]).is_empty());
        if resourceful {
            errs.push(FieldError::new(
                ErrorType::Invalid,
                &field,
                Some(go_string_slice(&urls)),
                "rules cannot apply to both regular resources and non-resource URLs",
            ));
        }
        return;
    }
    if rule["apiGroups"].as_array().is_none_or(Vec::is_empty) {
        errs.push(FieldError::required(
            &format!("{path}.apiGroups"),
            "resource rules must supply at least one api group",
        ));
    }
    if strings(&rule["resources"]).is_empty() {
        errs.push(FieldError::required(
            &format!("{path}.resources"),
            "resource rules must supply at least one resource",
        ));
    }
}

/// `ValidateRoleBindingSubject`.
/// An update is defaulted as a create is (`set_defaults`): an empty `apiGroup` of a User or
/// Group subject, or of a `roleRef`, is the RBAC group.
fn subject(s: &Value, namespaced: bool, path: &str, errs: &mut Vec<FieldError>) {
    let name = s["name"].as_str().unwrap_or("");
    let kind = s["kind"].as_str().unwrap_or("");
    let api_group = match s["apiGroup"].as_str().unwrap_or("") {
        "" if matches!(kind, "User" | "Group") => RBAC_GROUP,
        g => g,
    };
    if name.is_empty() {
        errs.push(FieldError::required(&format!("{path}.name"), ""));
    }
    match kind {
        "ServiceAccount" => {
            if !name.is_empty() {
                for msg in dns1123_subdomain(name) {
                    errs.push(FieldError::invalid(&format!("{path}.name"), name, msg));
                }
            }
            if !api_group.is_empty() {
                errs.push(unsupported(&format!("{path}.apiGroup"), api_group, &[""]));
            }
            if !namespaced && s["namespace"].as_str().unwrap_or("").is_empty() {
                errs.push(FieldError::required(&format!("{path}.namespace"), ""));
            }
        }
        "User" | "Group" => {
            if api_group != RBAC_GROUP {
                errs.push(unsupported(&format!("{path}.apiGroup"), api_group, &[RBAC_GROUP]));
            }
        }
        other => errs.push(unsupported(
            &format!("{path}.kind"),
            other,
            &["ServiceAccount", "User", "Group"],
        )),
    }
}

/// `ValidateRoleBinding` / `ValidateClusterRoleBinding` (without the metadata).
fn binding(obj: &Value, namespaced: bool, errs: &mut Vec<FieldError>) {
    let r = &obj["roleRef"];
    let group = r["apiGroup"].as_str().filter(|g| !g.is_empty()).unwrap_or(RBAC_GROUP);
    if group != RBAC_GROUP {
        errs.push(unsupported("roleRef.apiGroup", group, &[RBAC_GROUP]));
    }
    let kind = r["kind"].as_str().unwrap_or("");
    let kinds: &[&str] = if namespaced {
        &["Role", "ClusterRole"]
    } else {
        &["ClusterRole"]
    };
    if !kinds.contains(&kind) {
        errs.push(unsupported("roleRef.kind", kind, kinds));
    }
    match r["name"].as_str().unwrap_or("") {
        "" => errs.push(FieldError::required("roleRef.name", "")),
        name => {
            for msg in path_segment_name(name) {
                errs.push(FieldError::invalid("roleRef.name", name, msg));
            }
        }
    }
    for (i, s) in obj["subjects"].as_array().into_iter().flatten().enumerate() {
        subject(s, namespaced, &format!("subjects[{i}]"), errs);
    }
}

/// The field errors of an RBAC object (its metadata is checked by the caller).
pub fn validate(res: &Resource, obj: &Value, errs: &mut Vec<FieldError>) {
    match *res {
        store::ROLES | store::CLUSTERROLES => {
            for (i, rule) in obj["rules"].as_array().into_iter().flatten().enumerate() {
                policy_rule(rule, res.namespaced, &format!("rules[{i}]"), errs);
            }
        }
        store::ROLEBINDINGS | store::CLUSTERROLEBINDINGS => binding(obj, res.namespaced, errs),
        _ => {}
    }
}

/// A `RoleRef` as Go's `%#v` prints it.
fn go_role_ref(r: &Value) -> String {
    let f = |k: &str| go_quote(r[k].as_str().unwrap_or(""));
    format!(
        "rbac.RoleRef{{APIGroup:{}, Kind:{}, Name:{}}}",
        f("apiGroup"),
        f("kind"),
        f("name")
    )
}

/// `ValidateRoleBindingUpdate`: a binding's `roleRef` cannot change (delete and re-create it).
pub fn validate_update(res: &Resource, old: &Value, new: &Value, errs: &mut Vec<FieldError>) {
    if *res != store::ROLEBINDINGS && *res != store::CLUSTERROLEBINDINGS {
        return;
    }
    let norm = |r: &Value| {
        let g = r["apiGroup"].as_str().filter(|g| !g.is_empty()).unwrap_or(RBAC_GROUP);
        (g.to_string(), r["kind"].clone(), r["name"].clone())
    };
    if norm(&old["roleRef"]) != norm(&new["roleRef"]) {
        errs.push(FieldError::new(
            ErrorType::Invalid,
            "roleRef",
            Some(go_role_ref(&new["roleRef"])),
            "cannot change roleRef",
        ));
    }
}

/// The defaults of the RBAC v1 API (`SetDefaults_RoleBinding`, `SetDefaults_Subject`):
/// `roleRef.apiGroup` and the User and Group subjects' `apiGroup` are the RBAC group.
pub fn set_defaults(res: &Resource, obj: &mut Value) {
    if *res != store::ROLEBINDINGS && *res != store::CLUSTERROLEBINDINGS {
        return;
    }
    if obj["roleRef"].is_null() {
        obj["roleRef"] = serde_json::json!({});
    }
    if obj["roleRef"].is_object() && obj["roleRef"]["apiGroup"].as_str().unwrap_or("").is_empty() {
        obj["roleRef"]["apiGroup"] = RBAC_GROUP.into();
    }
    for s in obj["subjects"].as_array_mut().into_iter().flatten() {
        let kind = s["kind"].as_str().unwrap_or("");
        if s.is_object() && matches!(kind, "User" | "Group") && s["apiGroup"].as_str().unwrap_or("").is_empty() {
            s["apiGroup"] = RBAC_GROUP.into();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::check;
    use super::*;
    use serde_json::json;

    fn message(res: &Resource, mut obj: Value) -> String {
        set_defaults(res, &mut obj);
        check(res, &obj).map(|_| String::new()).unwrap_or_else(|e| e.message)
    }

    #[test]
    fn a_binding_without_role_ref_names_the_fields() {
        let m = message(
            &store::ROLEBINDINGS,
            json!({"metadata": {"name": "rb", "namespace": "ops"}, "subjects": []}),
        );
        assert_eq!(
            m,
            "RoleBinding.rbac.authorization.k8s.io \"rb\" is invalid: [roleRef.kind: Unsupported value: \"\": supported values: \"Role\", \"ClusterRole\", roleRef.name: Required value]"
        );
    }

    #[test]
    fn subjects_are_checked_as_the_apiserver_checks_them() {
        let crb = |s: Value| json!({"metadata": {"name": "system:x"}, "roleRef": {"kind": "ClusterRole", "name": "view"}, "subjects": [s]});
        assert_eq!(
            message(
                &store::CLUSTERROLEBINDINGS,
                crb(json!({"kind": "ServiceAccount", "name": "aks-patch"}))
            ),
            "ClusterRoleBinding.rbac.authorization.k8s.io \"system:x\" is invalid: subjects[0].namespace: Required value"
        );
        assert_eq!(
            message(&store::CLUSTERROLEBINDINGS, crb(json!({"kind": "Robot", "name": "r2"}))),
            "ClusterRoleBinding.rbac.authorization.k8s.io \"system:x\" is invalid: subjects[0].kind: Unsupported value: \"Robot\": supported values: \"ServiceAccount\", \"User\", \"Group\""
        );
        assert_eq!(
            message(
                &store::CLUSTERROLEBINDINGS,
                crb(json!({"kind": "User", "name": "ops@contoso.com"}))
            ),
            ""
        );
        let rb = json!({"metadata": {"name": "rb", "namespace": "ops"}, "roleRef": {"kind": "Role", "name": "r"},
            "subjects": [{"kind": "ServiceAccount", "name": "aks-patch"}]});
        assert_eq!(
            message(&store::ROLEBINDINGS, rb),
            "",
            "a RoleBinding's subject defaults to its namespace"
        );
        let crb_role = json!({"metadata": {"name": "x"}, "roleRef": {"kind": "Role", "name": "r"}});
        assert!(message(&store::CLUSTERROLEBINDINGS, crb_role)
            .contains("roleRef.kind: Unsupported value: \"Role\": supported values: \"ClusterRole\""));
    }

    #[test]
    fn rules_need_verbs_and_resources_or_urls() {
        assert_eq!(
            message(
                &store::ROLES,
                json!({"metadata": {"name": "r", "namespace": "ops"}, "rules": [{"verbs": ["get"], "nonResourceURLs": ["/healthz"]}]})
            ),
            "Role.rbac.authorization.k8s.io \"r\" is invalid: rules[0].nonResourceURLs: Invalid value: []string{\"/healthz\"}: namespaced rules cannot apply to non-resource URLs"
        );
        assert_eq!(
            message(
                &store::CLUSTERROLES,
                json!({"metadata": {"name": "system:r"}, "rules": [{"apiGroups": [""]}]})
            ),
            "ClusterRole.rbac.authorization.k8s.io \"system:r\" is invalid: [rules[0].verbs: Required value: verbs must contain at least one value, rules[0].resources: Required value: resource rules must supply at least one resource]"
        );
        assert_eq!(
            message(&store::CLUSTERROLES, json!({"metadata": {"name": "a/b"}})),
            "ClusterRole.rbac.authorization.k8s.io \"a/b\" is invalid: metadata.name: Invalid value: \"a/b\": may not contain '/'"
        );
    }

    #[test]
    fn role_ref_cannot_change() {
        let old = json!({"roleRef": {"apiGroup": RBAC_GROUP, "kind": "ClusterRole", "name": "view"}});
        let mut errs = vec![];
        validate_update(
            &store::ROLEBINDINGS,
            &old,
            &json!({"roleRef": {"kind": "ClusterRole", "name": "view"}}),
            &mut errs,
        );
        assert!(errs.is_empty(), "a defaulted apiGroup is no change");
        validate_update(
            &store::ROLEBINDINGS,
            &old,
            &json!({"roleRef": {"apiGroup": RBAC_GROUP, "kind": "ClusterRole", "name": "edit"}}),
            &mut errs,
        );
        assert_eq!(
            errs[0].to_string(),
            "roleRef: Invalid value: rbac.RoleRef{APIGroup:\"rbac.authorization.k8s.io\", Kind:\"ClusterRole\", Name:\"edit\"}: cannot change roleRef"
        );
    }
}
