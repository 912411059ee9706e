//! Who a request is and what it may do: the bearer token (the kubeconfigs' tokens, Entra
//! ID tokens on a cluster with AKS-managed Entra ID) and the authorizer's verdict (403).

use super::*;

/// The identity a request's bearer token authenticates as.
pub(super) fn identity(s: &Shared, headers: &HeaderMap) -> Option<rbac::Identity> {
    let v = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok())?;
    let (scheme, token) = v.trim().split_once(' ')?;
    let token = token.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || s.tokens.expired_by_fault(token) {
        return None;
    }
    if let Some(checked) = s.tokens.check_entra(token) {
        return entra_identity(s, checked);
    }
    if s.tokens.arm_valid(token) {
        s.events.record(
            kinds::KUBE_UNAUTHORIZED,
            None,
            None,
            "an Azure Resource Manager token (audience https://management.azure.com), not one for the AKS server application",
        );
        return None;
    }
    s.tokens.kube_identity(token, &s.scenario.access)
}

/// Who an Entra token authenticates as, on a cluster with AKS-managed Entra ID: the
/// scenario's restricted user when `access.user` is set, else the token's principal with
/// every permission (as with `Azure Kubernetes Service RBAC Cluster Admin`). The first use of
/// each token, and every refusal, goes to the event log (by number, never the token).
pub(super) fn entra_identity(
    s: &Shared,
    checked: Result<(tokens::EntraToken, bool), (tokens::EntraToken, tokens::EntraRefusal)>,
) -> Option<rbac::Identity> {
    let (t, first) = match checked {
        Ok(ok) => ok,
        Err((t, why)) => {
            let reason = match why {
                tokens::EntraRefusal::Expired => format!("entra token #{} of {} has expired", t.seq, t.principal),
                tokens::EntraRefusal::WrongAudience => {
                    format!(
                        "entra token #{} is for audience {}, not the AKS server application",
                        t.seq, t.audience
                    )
                }
            };
            s.events.record(kinds::KUBE_UNAUTHORIZED, None, None, reason);
            return None;
        }
    };
    if !s.scenario.is_entra() {
        s.events.record(
            kinds::KUBE_UNAUTHORIZED,
            None,
            None,
            format!("entra token #{}: this cluster has no Entra ID integration", t.seq),
        );
        return None;
    }
    if first {
        s.events.record(
            kinds::KUBE_TOKEN,
            None,
            None,
            format!(
                "entra token #{} of {} (expires at {})",
                t.seq, t.principal, t.expires_on
            ),
        );
    }
    Some(match &s.scenario.access.user {
        Some(u) => tokens::user_identity(u),
        None => rbac::Identity {
            username: t.principal.clone(),
            groups: vec!["system:authenticated".into()],
            role: if s.scenario.cluster.aad_profile.is_some_and(|a| a.enable_azure_rbac) {
                "Azure Kubernetes Service RBAC Cluster Admin".into()
            } else {
                "cluster-admin".into()
            },
            rules: None,
        },
    })
}

/// The authorizer attributes of a request to a resource path.
pub(super) fn attributes(method: &Method, t: &Target, q: &Query) -> rbac::Attributes {
    let watching = t.watch_path || q.flag("watch");
    let verb = match (method.clone(), t.name.is_some()) {
        (Method::GET, _) if watching => "watch",
        (Method::GET, true) => "get",
        (Method::GET, false) => "list",
        (Method::POST, _) => "create",
        (Method::PUT, _) => "update",
        (Method::PATCH, _) => "patch",
        (Method::DELETE, true) => "delete",
        (Method::DELETE, false) => "deletecollection",
        (m, _) => {
            return rbac::Attributes {
                verb: m.as_str().to_lowercase(),
                ..Default::default()
            }
        }
    };
    // A namespace is its own namespace, for the authorizer.
    let namespace = match (&t.ns, t.res == store::NAMESPACES) {
        (Some(ns), _) => ns.clone(),
        (None, true) => t.name.clone().unwrap_or_default(),
        (None, false) => String::new(),
    };
    rbac::Attributes {
        verb: verb.into(),
        resource: Some(rbac::ResourceAttrs {
            group: t.res.group.into(),
            resource: t.res.plural.into(),
            subresource: t.sub.clone().unwrap_or_default(),
            namespace,
            name: t.name.clone().unwrap_or_default(),
        }),
        path: String::new(),
    }
}

/// 403 Forbidden unless the identity may do this.
pub(super) fn authorize(id: &rbac::Identity, a: &rbac::Attributes) -> Result<(), ApiError> {
    if rbac::authorize(id, a).0 {
        return Ok(());
    }
    Err(ApiError::new(403, "Forbidden", rbac::forbidden_message(id, a)).with_details(rbac::forbidden_details(a)))
}

/// 403 Forbidden unless `id` may `verb` the `subresource` (exec, attach, log) of pod `ns/pod`.
pub fn authorize_subresource(
    id: &crate::rbac::Identity,
    verb: &str,
    ns: &str,
    pod: &str,
    subresource: &str,
) -> Result<(), ApiError> {
    authorize(
        id,
        &crate::rbac::Attributes {
            verb: verb.into(),
            resource: Some(crate::rbac::ResourceAttrs {
                group: String::new(),
                resource: "pods".into(),
                subresource: subresource.into(),
                namespace: ns.to_string(),
                name: pod.to_string(),
            }),
            path: String::new(),
        },
    )
}
