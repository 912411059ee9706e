//! What a resource path names: the resource, namespace, name and subresource.

use super::*;

/// What a resource path names.
#[derive(Debug)]
pub(super) struct Target {
    pub(super) res: Resource,
    pub(super) ns: Option<String>,
    pub(super) name: Option<String>,
    pub(super) sub: Option<String>,
    /// `/api/v1/watch/...` (deprecated form).
    pub(super) watch_path: bool,
}

pub(super) enum Route {
    Version,
    ApiRoot,
    Apis,
    Group(String),
    GroupVersion(String, String),
    Target(Target),
    NotFound,
}

pub(super) fn route(path: &str) -> Route {
    let segs: Vec<String> = path
        .trim_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|s| percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned())
        .collect();
    let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
    match segs.as_slice() {
        ["version"] => Route::Version,
        ["api"] => Route::ApiRoot,
        ["apis"] => Route::Apis,
        ["api", v] => Route::GroupVersion(String::new(), v.to_string()),
        ["apis", g] => Route::Group(g.to_string()),
        ["apis", g, v] => Route::GroupVersion(g.to_string(), v.to_string()),
        ["api", v, rest @ ..] => target("", v, rest),
        ["apis", g, v, rest @ ..] => target(g, v, rest),
        _ => Route::NotFound,
    }
}

pub(super) fn target(group: &str, version: &str, rest: &[&str]) -> Route {
    let (watch_path, rest) = match rest {
        ["watch", r @ ..] => (true, r),
        r => (false, r),
    };
    let ns_res = match rest {
        ["namespaces", ns, plural, tail @ ..] => Resource::by_plural(group, version, plural)
            .filter(|r| r.namespaced)
            .map(|r| (r, Some(ns.to_string()), tail)),
        _ => None,
    };
    let (res, ns, tail) = match ns_res {
        Some(x) => x,
        None => match rest {
            [plural, tail @ ..] => match Resource::by_plural(group, version, plural) {
                Some(r) => (r, None, tail),
                None => return Route::NotFound,
            },
            _ => return Route::NotFound,
        },
    };
    if tail.len() > 2 || (res.namespaced && ns.is_none() && !tail.is_empty()) {
        return Route::NotFound;
    }
    Route::Target(Target {
        res,
        ns,
        name: tail.first().map(|s| s.to_string()),
        sub: tail.get(1).map(|s| s.to_string()),
        watch_path,
    })
}

pub(super) fn sub_allowed(res: &Resource, sub: &str) -> bool {
    match sub {
        "status" => store::has_status(res),
        "eviction" => *res == store::PODS,
        "token" => *res == store::SERVICEACCOUNTS,
        "scale" => *res == store::DEPLOYMENTS || *res == store::REPLICASETS || *res == store::STATEFULSETS,
        _ => false,
    }
}

/// `(namespace, pod)` when `path` is the pod subresource `sub` (`exec`, `attach`, `log`),
/// which the API server streams instead of reading a body.
pub(super) fn pod_subresource(path: &str, sub: &str) -> Option<(String, String)> {
    match path.trim_matches('/').split('/').collect::<Vec<_>>().as_slice() {
        ["api", "v1", "namespaces", ns, "pods", pod, s] if *s == sub => Some((ns.to_string(), pod.to_string())),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(path: &str) -> Target {
        match route(path) {
            Route::Target(t) => t,
            _ => panic!("{path} is not a resource path"),
        }
    }

    #[test]
    fn routes() {
        let x = t("/api/v1/namespaces/kube-system/pods/p1/eviction");
        assert_eq!(x.res, store::PODS);
        assert_eq!(x.ns.as_deref(), Some("kube-system"));
        assert_eq!(x.name.as_deref(), Some("p1"));
        assert_eq!(x.sub.as_deref(), Some("eviction"));
        let x = t("/api/v1/namespaces/kube-system");
        assert_eq!(x.res, store::NAMESPACES);
        assert_eq!(x.name.as_deref(), Some("kube-system"));
        let x = t("/api/v1/namespaces/kube-system/status");
        assert_eq!(x.res, store::NAMESPACES);
        assert_eq!(x.sub.as_deref(), Some("status"));
        let x = t("/api/v1/pods");
        assert!(x.ns.is_none() && x.name.is_none());
        let x = t("/apis/coordination.k8s.io/v1/namespaces/default/leases/l");
        assert_eq!(x.res, store::LEASES);
        let x = t("/api/v1/nodes/n1/status");
        assert_eq!(x.sub.as_deref(), Some("status"));
        let x = t("/api/v1/namespaces/default/pods/a%3Ab");
        assert_eq!(x.name.as_deref(), Some("a:b"), "path segments are percent-decoded");
        let x = t("/api/v1/namespaces/default/pods/50%");
        assert_eq!(x.name.as_deref(), Some("50%"), "a lone % stays");
        let x = t("/api/v1/watch/nodes");
        assert!(x.watch_path);
        assert!(matches!(route("/api/v1/pods/p1"), Route::NotFound));
        assert!(matches!(route("/api/v1/widgets"), Route::NotFound));
        assert!(matches!(route("/apis/apps/v1"), Route::GroupVersion(..)));
        assert!(matches!(route("/version"), Route::Version));
        assert!(matches!(route("/foo"), Route::NotFound));
    }

    #[test]
    fn streamed_pod_subresources_are_told_apart() {
        let p = "/api/v1/namespaces/kube-system/pods/p/exec";
        assert_eq!(pod_subresource(p, "exec"), Some(("kube-system".into(), "p".into())));
        assert_eq!(pod_subresource(p, "log"), None);
        assert_eq!(
            pod_subresource("/api/v1/namespaces/ns/pods/p/log", "log"),
            Some(("ns".into(), "p".into()))
        );
        assert_eq!(pod_subresource("/api/v1/namespaces/ns/pods/p", "log"), None);
    }
}
