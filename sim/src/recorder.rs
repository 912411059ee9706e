//! Kubernetes Events (core/v1 `Event` objects), as the cluster's components record them:
//! the scheduler (`Scheduled`, `FailedScheduling`), the kubelet (`Killing`, `Starting`,
//! `Rebooted`, `NodeReady`, `NodeNotSchedulable`, `NodeSchedulable`), the node lifecycle
//! controller (`NodeNotReady`), the ReplicaSet controller (`SuccessfulCreate`) and the
//! eviction subresource (`Evicted`). Repeats of the same event are aggregated as client-go's
//! recorder does: `count` goes up and `lastTimestamp` moves. `kubectl get events` and
//! `kubectl describe` read them like any other object.

use crate::store::{self, EVENTS};
use crate::Shared;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Mutex;

/// The object an event is about (`involvedObject`).
#[derive(Debug, Clone)]
pub struct ObjectRef {
    pub kind: String,
    pub api_version: String,
    pub name: String,
    pub namespace: String,
    pub uid: String,
    pub field_path: Option<String>,
}

impl ObjectRef {
    /// A reference to a stored object.
    pub fn of(obj: &Value) -> ObjectRef {
        let m = &obj["metadata"];
        ObjectRef {
            kind: obj["kind"].as_str().unwrap_or("").to_string(),
            api_version: obj["apiVersion"].as_str().unwrap_or("v1").to_string(),
            name: m["name"].as_str().unwrap_or("").to_string(),
            namespace: m["namespace"].as_str().unwrap_or("").to_string(),
            uid: m["uid"].as_str().unwrap_or("").to_string(),
            field_path: None,
        }
    }

    /// The node as the kubelet refers to it: its UID is the node's name.
    pub fn kubelet_node(name: &str) -> ObjectRef {
        ObjectRef {
            kind: "Node".into(),
            api_version: "v1".into(),
            name: name.into(),
            namespace: String::new(),
            uid: name.into(),
            field_path: None,
        }
    }

    pub fn with_field_path(mut self, p: impl Into<String>) -> ObjectRef {
        self.field_path = Some(p.into());
        self
    }
}

/// Who records an event (`source` and `reportingComponent`/`reportingInstance`).
#[derive(Debug, Clone, Copy)]
pub struct Source<'a> {
    pub component: &'a str,
    pub host: Option<&'a str>,
}

pub const SCHEDULER: Source<'static> = Source {
    component: "default-scheduler",
    host: None,
};
pub const NODE_CONTROLLER: Source<'static> = Source {
    component: "node-controller",
    host: None,
};
pub const REPLICASET_CONTROLLER: Source<'static> = Source {
    component: "replicaset-controller",
    host: None,
};

pub fn kubelet(node: &str) -> Source<'_> {
    Source {
        component: "kubelet",
        host: Some(node),
    }
}

/// The events recorded so far, by what makes two of them the same, for aggregation.
#[derive(Default)]
pub struct Recorder {
    seen: Mutex<HashMap<String, (String, String)>>,
}

/// Record an event (`type_` is `Normal` or `Warning`).
pub fn record(shared: &Shared, what: &ObjectRef, source: Source<'_>, type_: &str, reason: &str, message: &str) {
    let ns = if what.namespace.is_empty() {
        "default".to_string()
    } else {
        what.namespace.clone()
    };
    if shared.store.get(store::NAMESPACES, None, &ns).is_none() {
        return;
    }
    let key = format!(
        "{}\u{0}{}\u{0}{}\u{0}{}\u{0}{}\u{0}{}\u{0}{}\u{0}{}\u{0}{}",
        what.kind,
        what.namespace,
        what.name,
        what.uid,
        what.field_path.as_deref().unwrap_or(""),
        source.component,
        source.host.unwrap_or(""),
        reason,
        message
    );
    let now = crate::time::now_rfc3339();
    let mut seen = shared.recorder.seen.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((ens, ename)) = seen.get(&key).cloned() {
        let r = shared.store.update_with(EVENTS, Some(&ens), &ename, None, |e| {
            e["count"] = json!(e["count"].as_i64().unwrap_or(1) + 1);
            e["lastTimestamp"] = json!(now);
            Ok(())
        });
        if r.is_ok() {
            return;
        }
        seen.remove(&key); // deleted meanwhile: record it anew
    }
    let nanos = jiff::Timestamp::now().as_nanosecond();
    let mut involved = json!({
        "kind": what.kind, "namespace": what.namespace, "name": what.name,
        "uid": what.uid, "apiVersion": what.api_version,
    });
    if what.namespace.is_empty() {
        if let Some(o) = involved.as_object_mut() {
            o.remove("namespace");
        }
    }
    if let Some(p) = &what.field_path {
        involved["fieldPath"] = json!(p);
    }
    let mut src = json!({"component": source.component});
    if let Some(h) = source.host {
        src["host"] = json!(h);
    }
    let event = json!({
        "metadata": {"name": format!("{}.{:x}", what.name, nanos), "namespace": ns},
        "involvedObject": involved,
        "reason": reason,
        "message": message,
        "source": src,
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
        "type": type_,
        "eventTime": null,
        "reportingComponent": source.component,
        "reportingInstance": source.host.unwrap_or(""),
    });
    match shared.store.create(EVENTS, event) {
        Ok(e) => {
            let name = e["metadata"]["name"].as_str().unwrap_or("").to_string();
            seen.insert(key, (ns, name));
        }
        Err(e) => tracing::debug!("cannot record event {reason}: {e}"),
    }
}
