//! Who a request is and what it may do: the bearer token (the kubeconfigs' tokens, Entra
//! ID tokens on a cluster with AKS-managed Entra ID, ServiceAccount tokens), impersonation
//! (`Impersonate-User`, `Impersonate-Group`: `kubectl --as`), the rules bound to the
//! identity, and the authorizer's verdict (403).

use super::*;

/// Who the request is: its bearer token's identity (401 without one), or whom it
/// impersonates (403 when the token's identity may not), with the rules bound to it.
pub(super) fn authenticate(s: &Shared, headers: &HeaderMap) -> Result<rbac::Identity, ApiError> {
    let id = identity(s, headers).ok_or_else(ApiError::unauthorized)?;
    let id = impersonate(s, id, headers)?;
    Ok(with_bound_rules(s, id))
}

/// The identity with the rules the stored bindings grant it (its user name and groups);
/// `system:masters` may do anything, as kube-apiserver's privileged-group authorizer lets it.
pub(super) fn with_bound_rules(s: &Shared, mut id: rbac::Identity) -> rbac::Identity {
    if id.groups.iter().any(|g| g == "system:masters") {
        id.rules = None;
    }
    if let Some(rules) = &mut id.rules {
        rules.extend(rbac::bound_rules(&s.store, &id.username, &id.groups));
    }
    id
}

/// The `Impersonate-*` headers (`kubectl --as USER --as-group GROUP`): the request acts as
/// that user once the authenticated identity may `impersonate` it (users, groups and
/// serviceaccounts in the core group, uids and userextras in authentication.k8s.io).
fn impersonate(s: &Shared, id: rbac::Identity, headers: &HeaderMap) -> Result<rbac::Identity, ApiError> {
    let values = |name: &str| -> Vec<String> {
        headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .map(str::to_string)
            .collect()
    };
    let user = values("impersonate-user").into_iter().next();
    let groups = values("impersonate-group");
    let uid = values("impersonate-uid").into_iter().next();
    let extras: Vec<(String, String)> = headers
        .iter()
        .filter_map(|(k, v)| {
            let key = k.as_str().strip_prefix("impersonate-extra-")?;
            let key = percent_encoding::percent_decode_str(key)
                .decode_utf8_lossy()
                .into_owned();
            Some((key, v.to_str().ok()?.to_string()))
        })
        .collect();
    let Some(user) = user else {
        if !groups.is_empty() || uid.is_some() || !extras.is_empty() {
            return Err(ApiError::new(
                500,
                "InternalError",
                "Internal error occurred: requested impersonation of groups or extra fields without impersonating a user",
            ));
        }
        return Ok(id);
    };
    let may = |group: &str, resource: &str, sub: &str, ns: &str, name: &str| {
        authorize(
            &with_bound_rules(s, id.clone()),
            &rbac::Attributes {
                verb: "impersonate".into(),
                resource: Some(rbac::ResourceAttrs {
                    group: group.into(),
                    resource: resource.into(),
                    subresource: sub.into(),
                    namespace: ns.into(),
                    name: name.into(),
                }),
                path: String::new(),
            },
        )
    };
    let service_account = rbac::parse_service_account_username(&user);
    match service_account {
        Some((ns, name)) => may("", "serviceaccounts", "", ns, name)?,
        None => may("", "users", "", "", &user)?,
    }
    for g in &groups {
        may("", "groups", "", "", g)?;
    }
    if let Some(u) = &uid {
        may("authentication.k8s.io", "uids", "", "", u)?;
    }
    for (k, v) in &extras {
        may("authentication.k8s.io", "userextras", k, "", v)?;
    }
    let mut as_groups = groups.clone();
    if let (Some((ns, _)), true) = (service_account, groups.is_empty()) {
        as_groups = rbac::service_account_groups(ns);
    }
    if user != "system:anonymous"
        && !as_groups
            .iter()
            .any(|g| g == "system:authenticated" || g == "system:unauthenticated")
    {
        as_groups.push("system:authenticated".into());
    }
    // The scenario's user is bound to its rules by name, whoever acts as it.
    let rules = match &s.scenario.access.user {
        Some(u) if u.username == user => tokens::user_identity(u).rules,
        _ => Some(vec![]),
    };
    Ok(rbac::Identity {
        username: user,
        groups: as_groups,
        role: String::new(),
        rules,
    })
}

/// The identity a request's bearer token authenticates as.
fn identity(s: &Shared, headers: &HeaderMap) -> Option<rbac::Identity> {
    let v = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok())?;
    let (scheme, token) = v.trim().split_once(' ')?;
    let token = token.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || s.tokens.expired_by_fault(token) {
        return None;
    }
    if let Some(claims) = s.tokens.verify_service_account_token(token) {
        return service_account_identity(s, &claims);
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

/// Why the API server refuses a ServiceAccount token it signed, if it does: expired, for
/// another audience, its ServiceAccount (or the object it is bound to) deleted or re-created.
pub(super) fn service_account_refusal(s: &Shared, c: &tokens::ServiceAccountClaims) -> Option<String> {
    let now = crate::time::unix_now();
    if c.expires_at <= now {
        return Some(format!("has expired (at {})", c.expires_at));
    }
    let kube_url = &s.endpoints().kube_url;
    let audiences = tokens::api_audiences(kube_url);
    if !c.audiences.iter().any(|a| audiences.contains(a)) {
        return Some(format!("is for audiences {:?}, not the API server's", c.audiences));
    }
    let alive = |o: &Value, uid: &str| o["metadata"]["uid"] == uid && o["metadata"]["deletionTimestamp"].is_null();
    match s.store.get(store::SERVICEACCOUNTS, Some(&c.namespace), &c.name) {
        None => return Some(format!("serviceaccount {}/{} not found", c.namespace, c.name)),
        Some(sa) if !alive(&sa, &c.uid) => {
            return Some(format!(
                "serviceaccount {}/{} has been deleted (its uid is no longer {})",
                c.namespace, c.name, c.uid
            ))
        }
        Some(_) => {}
    }
    if let Some(b) = &c.bound {
        let res = if b.kind == "Pod" { store::PODS } else { store::SECRETS };
        // A pod whose deletion's grace period is over counts as gone, as kube-apiserver's
        // validator has it, even while the kubelet has not removed it yet.
        let past = |t: &Value| {
            t.as_str()
                .and_then(crate::time::parse)
                .is_some_and(|t| t < jiff::Timestamp::now())
        };
        let gone = s
            .store
            .get(res, Some(&c.namespace), &b.name)
            .is_none_or(|o| o["metadata"]["uid"] != b.uid.as_str() || past(&o["metadata"]["deletionTimestamp"]));
        if gone {
            return Some(format!(
                "the {} {}/{} it is bound to has been deleted",
                b.kind.to_lowercase(),
                c.namespace,
                b.name
            ));
        }
    }
    None
}

/// Who a ServiceAccount token authenticates as (`system:serviceaccount:NS:NAME` in
/// `system:serviceaccounts`, `system:serviceaccounts:NS` and `system:authenticated`), unless
/// it is refused. The first use of each token, and every refusal, goes to the event log (by
/// ServiceAccount and `jti`, never the token).
fn service_account_identity(s: &Shared, c: &tokens::ServiceAccountClaims) -> Option<rbac::Identity> {
    let who = format!("serviceaccount token {} of {}/{}", c.jti, c.namespace, c.name);
    if let Some(why) = service_account_refusal(s, c) {
        s.events
            .record(kinds::KUBE_UNAUTHORIZED, None, None, format!("{who} {why}"));
        return None;
    }
    if s.tokens.first_use_of_service_account_token(&c.jti) {
        s.events.record(
            kinds::KUBE_TOKEN,
            None,
            None,
            format!("{who} (expires at {})", c.expires_at),
        );
    }
    let mut groups = rbac::service_account_groups(&c.namespace);
    groups.push("system:authenticated".into());
    Some(rbac::Identity {
        username: c.username(),
        groups,
        role: String::new(),
        rules: Some(vec![]),
    })
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
