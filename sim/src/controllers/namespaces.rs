//! The namespace controller: a namespace being deleted loses its content (pods
//! gracefully), then goes. And the serviceaccounts controller's part: every namespace has
//! a `default` ServiceAccount.

use super::*;

pub(super) fn namespaces(shared: &Shared) {
    for ns in shared.store.list(NAMESPACES, None) {
        if ns["metadata"]["deletionTimestamp"].is_null()
            && shared
                .store
                .get(store::SERVICEACCOUNTS, Some(name(&ns)), "default")
                .is_none()
        {
            let sa = json!({"metadata": {"name": "default", "namespace": name(&ns),
                "creationTimestamp": ns["metadata"]["creationTimestamp"]}});
            match shared.store.create(store::SERVICEACCOUNTS, sa) {
                Ok(_) | Err(StoreError::AlreadyExists { .. }) => {}
                Err(e) => tracing::warn!("controller: default serviceaccount: {e}"),
            }
        }
        if ns["status"]["phase"].is_string() {
            continue;
        }
        let r = shared.store.update_with(NAMESPACES, None, name(&ns), None, |o| {
            o["status"] = json!({"phase": "Active"});
            if !o["spec"]["finalizers"].is_array() {
                o["spec"]["finalizers"] = json!(["kubernetes"]);
            }
            let n = o["metadata"]["name"].clone();
            if !o["metadata"]["labels"].is_object() {
                o["metadata"]["labels"] = json!({});
            }
            o["metadata"]["labels"]["kubernetes.io/metadata.name"] = n;
            Ok(())
        });
        warn_err("namespace status", r);
    }
}
/// Namespaces being deleted: their content goes (pods gracefully), then the namespace.
pub(super) fn terminating_namespaces(shared: &Arc<Shared>) -> bool {
    let mut wrote = false;
    for ns in shared.store.list(NAMESPACES, None) {
        if ns["metadata"]["deletionTimestamp"].is_null() {
            continue;
        }
        let n = name(&ns).to_string();
        let mut left = 0;
        for r in store::ALL.iter().filter(|r| r.namespaced) {
            for o in shared.store.list(*r, Some(&n)) {
                left += 1;
                if *r == PODS {
                    if !pods::is_terminating(&o) {
                        wrote |= pods::delete_pod(shared, &n, name(&o), &DeleteOpts::default()).is_ok();
                    }
                } else {
                    wrote |= shared.store.remove(*r, Some(&n), name(&o)).is_ok();
                }
            }
        }
        if left == 0 {
            wrote |= shared.store.remove(NAMESPACES, None, &n).is_ok();
        }
    }
    wrote
}
