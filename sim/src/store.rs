//! The object store behind the emulated Kubernetes API: JSON objects by resource,
//! namespace and name, one global resourceVersion counter, and a watch fan-out.
//! Everything that changes an object goes through here, so watches and
//! resourceVersions stay consistent.

use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::Mutex;
use tokio::sync::broadcast;

/// A served resource type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Resource {
    /// "" for the core group.
    pub group: &'static str,
    pub version: &'static str,
    pub plural: &'static str,
    pub kind: &'static str,
    pub namespaced: bool,
    pub short_names: &'static [&'static str],
    pub verbs: &'static [&'static str],
}

const RW: &[&str] = &["create", "delete", "get", "list", "patch", "update", "watch"];

pub const NODES: Resource = Resource {
    group: "",
    version: "v1",
    plural: "nodes",
    kind: "Node",
    namespaced: false,
    short_names: &["no"],
    verbs: RW,
};
pub const PODS: Resource = Resource {
    group: "",
    version: "v1",
    plural: "pods",
    kind: "Pod",
    namespaced: true,
    short_names: &["po"],
    verbs: RW,
};
pub const NAMESPACES: Resource = Resource {
    group: "",
    version: "v1",
    plural: "namespaces",
    kind: "Namespace",
    namespaced: false,
    short_names: &["ns"],
    verbs: RW,
};
pub const EVENTS: Resource = Resource {
    group: "",
    version: "v1",
    plural: "events",
    kind: "Event",
    namespaced: true,
    short_names: &["ev"],
    verbs: RW,
};
/// The same Events in the `events.k8s.io` group (stored as core/v1 ones; see
/// `kube_api::events_v1`).
pub const EVENTS_V1: Resource = Resource {
    group: "events.k8s.io",
    version: "v1",
    plural: "events",
    kind: "Event",
    namespaced: true,
    short_names: &["ev"],
    verbs: RW,
};
pub const DAEMONSETS: Resource = Resource {
    group: "apps",
    version: "v1",
    plural: "daemonsets",
    kind: "DaemonSet",
    namespaced: true,
    short_names: &["ds"],
    verbs: RW,
};
pub const REPLICASETS: Resource = Resource {
    group: "apps",
    version: "v1",
    plural: "replicasets",
    kind: "ReplicaSet",
    namespaced: true,
    short_names: &["rs"],
    verbs: RW,
};
pub const DEPLOYMENTS: Resource = Resource {
    group: "apps",
    version: "v1",
    plural: "deployments",
    kind: "Deployment",
    namespaced: true,
    short_names: &["deploy"],
    verbs: RW,
};
pub const PDBS: Resource = Resource {
    group: "policy",
    version: "v1",
    plural: "poddisruptionbudgets",
    kind: "PodDisruptionBudget",
    namespaced: true,
    short_names: &["pdb"],
    verbs: RW,
};
pub const LEASES: Resource = Resource {
    group: "coordination.k8s.io",
    version: "v1",
    plural: "leases",
    kind: "Lease",
    namespaced: true,
    short_names: &[],
    verbs: RW,
};

pub const CONFIGMAPS: Resource = Resource {
    group: "",
    version: "v1",
    plural: "configmaps",
    kind: "ConfigMap",
    namespaced: true,
    short_names: &["cm"],
    verbs: RW,
};
pub const SECRETS: Resource = Resource {
    group: "",
    version: "v1",
    plural: "secrets",
    kind: "Secret",
    namespaced: true,
    short_names: &[],
    verbs: RW,
};
pub const SERVICES: Resource = Resource {
    group: "",
    version: "v1",
    plural: "services",
    kind: "Service",
    namespaced: true,
    short_names: &["svc"],
    verbs: RW,
};
pub const STATEFULSETS: Resource = Resource {
    group: "apps",
    version: "v1",
    plural: "statefulsets",
    kind: "StatefulSet",
    namespaced: true,
    short_names: &["sts"],
    verbs: RW,
};
pub const JOBS: Resource = Resource {
    group: "batch",
    version: "v1",
    plural: "jobs",
    kind: "Job",
    namespaced: true,
    short_names: &[],
    verbs: RW,
};
pub const CRONJOBS: Resource = Resource {
    group: "batch",
    version: "v1",
    plural: "cronjobs",
    kind: "CronJob",
    namespaced: true,
    short_names: &["cj"],
    verbs: RW,
};

pub const SERVICEACCOUNTS: Resource = Resource {
    group: "",
    version: "v1",
    plural: "serviceaccounts",
    kind: "ServiceAccount",
    namespaced: true,
    short_names: &["sa"],
    verbs: RW,
};
/// The RBAC API group.
pub const RBAC_GROUP: &str = crate::rbac::GROUP;
pub const ROLES: Resource = Resource {
    group: RBAC_GROUP,
    version: "v1",
    plural: "roles",
    kind: "Role",
    namespaced: true,
    short_names: &[],
    verbs: RW,
};
pub const ROLEBINDINGS: Resource = Resource {
    group: RBAC_GROUP,
    version: "v1",
    plural: "rolebindings",
    kind: "RoleBinding",
    namespaced: true,
    short_names: &[],
    verbs: RW,
};
pub const CLUSTERROLES: Resource = Resource {
    group: RBAC_GROUP,
    version: "v1",
    plural: "clusterroles",
    kind: "ClusterRole",
    namespaced: false,
    short_names: &[],
    verbs: RW,
};
pub const CLUSTERROLEBINDINGS: Resource = Resource {
    group: RBAC_GROUP,
    version: "v1",
    plural: "clusterrolebindings",
    kind: "ClusterRoleBinding",
    namespaced: false,
    short_names: &[],
    verbs: RW,
};

/// Every resource the emulator serves, in discovery order.
pub const ALL: &[Resource] = &[
    NODES,
    PODS,
    NAMESPACES,
    EVENTS,
    CONFIGMAPS,
    SECRETS,
    SERVICEACCOUNTS,
    SERVICES,
    DAEMONSETS,
    REPLICASETS,
    DEPLOYMENTS,
    STATEFULSETS,
    JOBS,
    CRONJOBS,
    PDBS,
    LEASES,
    EVENTS_V1,
    CLUSTERROLEBINDINGS,
    CLUSTERROLES,
    ROLEBINDINGS,
    ROLES,
];

/// Kinds without a `status` (and so without a `/status` subresource).
pub fn has_status(res: &Resource) -> bool {
    !matches!(
        res.plural,
        "events" | "leases" | "configmaps" | "secrets" | "serviceaccounts"
    ) && res.group != RBAC_GROUP
}

/// Kinds whose objects carry `metadata.generation` (those with a spec the API server tracks).
fn has_generation(res: &Resource) -> bool {
    has_status(res) && *res != PODS && *res != NODES && *res != NAMESPACES && *res != SERVICES
}

impl Resource {
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    pub fn by_plural(group: &str, version: &str, plural: &str) -> Option<Resource> {
        ALL.iter()
            .copied()
            .find(|r| r.group == group && r.version == version && r.plural == plural)
    }
}

/// What the RBAC authorizer reads: the stored Roles, ClusterRoles and their bindings.
impl crate::rbac::Objects for Store {
    fn cluster_role_bindings(&self) -> Vec<Value> {
        self.list(CLUSTERROLEBINDINGS, None)
    }
    fn role_bindings(&self) -> Vec<Value> {
        self.list(ROLEBINDINGS, None)
    }
    fn cluster_role(&self, name: &str) -> Option<Value> {
        self.get(CLUSTERROLES, None, name)
    }
    fn role(&self, namespace: &str, name: &str) -> Option<Value> {
        self.get(ROLES, Some(namespace), name)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum WatchKind {
    #[serde(rename = "ADDED")]
    Added,
    #[serde(rename = "MODIFIED")]
    Modified,
    #[serde(rename = "DELETED")]
    Deleted,
}

/// One change, as a watch sends it.
#[derive(Debug, Clone)]
pub struct Change {
    pub resource: Resource,
    pub kind: WatchKind,
    pub object: Value,
    pub rv: u64,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum StoreError {
    #[error("{kind} \"{name}\" not found")]
    NotFound { kind: String, name: String },
    #[error("{kind} \"{name}\" already exists")]
    AlreadyExists { kind: String, name: String },
    #[error("Operation cannot be fulfilled on {plural} \"{name}\": the object has been modified; please apply your changes to the latest version and try again")]
    Conflict { plural: String, name: String },
    #[error("{0}")]
    Invalid(String),
}

type Key = (Resource, String, String);

struct Inner {
    objects: BTreeMap<Key, Value>,
    rv: u64,
    /// Recent changes, so that a watch from an older resourceVersion can replay them.
    history: std::collections::VecDeque<Change>,
}

impl Inner {
    /// The objects of one resource: a range of the map (keys sort by resource first), not a
    /// scan of every object (the authorizer lists bindings on each restricted request).
    fn of(&self, res: Resource) -> impl Iterator<Item = (&Key, &Value)> {
        self.objects
            .range((res, String::new(), String::new())..)
            .take_while(move |((r, _, _), _)| *r == res)
    }
}

pub struct Store {
    inner: Mutex<Inner>,
    tx: broadcast::Sender<Change>,
}

const HISTORY: usize = 4096;

impl Default for Store {
    fn default() -> Self {
        Self::new()
    }
}

impl Store {
    pub fn new() -> Self {
        let (tx, _) = broadcast::channel(8192);
        Store {
            inner: Mutex::new(Inner {
                objects: BTreeMap::new(),
                rv: 1000,
                history: Default::default(),
            }),
            tx,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn key(res: Resource, ns: Option<&str>, name: &str) -> Key {
        (
            res,
            if res.namespaced {
                ns.unwrap_or("default").to_string()
            } else {
                String::new()
            },
            name.to_string(),
        )
    }

    /// The current global resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.lock().rv
    }

    fn commit(&self, inner: &mut Inner, res: Resource, kind: WatchKind, object: Value, rv: u64) {
        let change = Change {
            resource: res,
            kind,
            object,
            rv,
        };
        inner.history.push_back(change.clone());
        if inner.history.len() > HISTORY {
            inner.history.pop_front();
        }
        let _ = self.tx.send(change);
    }

    /// Create an object. Fills in apiVersion, kind, uid, creationTimestamp, resourceVersion
    /// (and generateName) as the API server does.
    pub fn create(&self, res: Resource, mut obj: Value) -> Result<Value, StoreError> {
        let mut inner = self.lock();
        let meta = obj
            .as_object_mut()
            .ok_or_else(|| StoreError::Invalid("object must be a JSON object".into()))?
            .entry("metadata")
            .or_insert_with(|| json!({}));
        if !meta.is_object() {
            return Err(StoreError::Invalid("metadata must be an object".into()));
        }
        let mut name = meta.get("name").and_then(Value::as_str).unwrap_or("").to_string();
        let ns_of = |meta: &serde_json::Map<String, Value>| {
            res.namespaced.then(|| {
                meta.get("namespace")
                    .and_then(Value::as_str)
                    .unwrap_or("default")
                    .to_string()
            })
        };
        if name.is_empty() {
            if let Some(prefix) = meta.get("generateName").and_then(Value::as_str) {
                // A generated name that is taken is generated again (RetryGenerateName).
                let ns = meta.as_object().and_then(ns_of);
                for _ in 0..8 {
                    name = format!("{prefix}{}", random_suffix());
                    if !inner.objects.contains_key(&Self::key(res, ns.as_deref(), &name)) {
                        break;
                    }
                }
            } else {
                return Err(StoreError::Invalid(
                    "metadata.name: Required value: name or generateName is required".into(),
                ));
            }
        }
        let ns = if res.namespaced {
            Some(
                meta.get("namespace")
                    .and_then(Value::as_str)
                    .unwrap_or("default")
                    .to_string(),
            )
        } else {
            None
        };
        let key = Self::key(res, ns.as_deref(), &name);
        if inner.objects.contains_key(&key) {
            return Err(StoreError::AlreadyExists {
                kind: res.plural.to_string(),
                name,
            });
        }
        inner.rv += 1;
        let rv = inner.rv;
        let m = meta.as_object_mut().expect("checked above");
        m.insert("name".into(), json!(name));
        if let Some(ns) = &ns {
            m.insert("namespace".into(), json!(ns));
        }
        m.entry("uid")
            .or_insert_with(|| json!(uuid::Uuid::new_v4().to_string()));
        m.entry("creationTimestamp")
            .or_insert_with(|| json!(crate::time::now_rfc3339()));
        m.insert("resourceVersion".into(), json!(rv.to_string()));
        if !m.contains_key("generation") && has_generation(&res) {
            m.insert("generation".into(), json!(1));
        }
        let o = obj.as_object_mut().expect("checked above");
        o.insert("apiVersion".into(), json!(res.api_version()));
        o.insert("kind".into(), json!(res.kind));
        inner.objects.insert(key, obj.clone());
        self.commit(&mut inner, res, WatchKind::Added, obj.clone(), rv);
        Ok(obj)
    }

    pub fn get(&self, res: Resource, ns: Option<&str>, name: &str) -> Option<Value> {
        self.lock().objects.get(&Self::key(res, ns, name)).cloned()
    }

    /// All objects of a resource, in one namespace or (None) all, sorted by namespace and name.
    pub fn list(&self, res: Resource, ns: Option<&str>) -> Vec<Value> {
        let inner = self.lock();
        inner
            .of(res)
            .filter(|((_, n, _), _)| ns.is_none() || !res.namespaced || Some(n.as_str()) == ns)
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// A list and the resourceVersion it was read at, atomically.
    pub fn list_at(&self, res: Resource, ns: Option<&str>) -> (Vec<Value>, u64) {
        let inner = self.lock();
        let items = inner
            .of(res)
            .filter(|((_, n, _), _)| ns.is_none() || !res.namespaced || Some(n.as_str()) == ns)
            .map(|(_, v)| v.clone())
            .collect();
        (items, inner.rv)
    }

    /// The oldest resourceVersion a list can still be served at: the compaction point. aks-sim
    /// keeps the last [`HISTORY`] changes (its etcd history); a list at, or a continue token
    /// from, an older resourceVersion is "too old" (410 Expired), as after etcd's compaction.
    pub fn compacted_rv(&self) -> u64 {
        let inner = self.lock();
        inner.history.front().map(|c| c.rv - 1).unwrap_or(inner.rv)
    }

    /// The objects of a resource (one namespace, or all) as they were at resourceVersion `rv`,
    /// rebuilt from the current ones by undoing the kept changes after `rv`. `None` when that
    /// state is no longer known: `rv` is older than the compaction point, or an object changed
    /// after `rv` whose earlier state is older than the kept history. `rv` at or after the
    /// current resourceVersion gives the current objects.
    pub fn list_exact(&self, res: Resource, ns: Option<&str>, rv: u64) -> Option<Vec<Value>> {
        let inner = self.lock();
        let in_scope = |n: &str| ns.is_none() || !res.namespaced || Some(n) == ns;
        let mut objs: BTreeMap<(String, String), Value> = inner
            .of(res)
            .filter(|((_, n, _), _)| in_scope(n))
            .map(|((_, n, name), v)| ((n.clone(), name.clone()), v.clone()))
            .collect();
        if rv >= inner.rv {
            return Some(objs.into_values().collect());
        }
        let oldest = inner.history.front().map(|c| c.rv)?;
        if rv + 1 < oldest {
            return None;
        }
        let key_of = |o: &Value| {
            let ns = if res.namespaced {
                o["metadata"]["namespace"].as_str().unwrap_or("default")
            } else {
                ""
            };
            (ns.to_string(), o["metadata"]["name"].as_str().unwrap_or("").to_string())
        };
        for (i, c) in inner.history.iter().enumerate().rev() {
            if c.rv <= rv {
                break;
            }
            if c.resource != res {
                continue;
            }
            let key = key_of(&c.object);
            if !in_scope(&key.0) {
                continue;
            }
            let before = inner
                .history
                .iter()
                .take(i)
                .rev()
                .find(|p| p.resource == res && key_of(&p.object) == key);
            match (c.kind, before) {
                (WatchKind::Added, _) => {
                    objs.remove(&key);
                }
                (_, Some(p)) if p.kind != WatchKind::Deleted => {
                    objs.insert(key, p.object.clone());
                }
                (_, Some(_)) => {
                    objs.remove(&key);
                }
                (_, None) => return None,
            }
        }
        Some(objs.into_values().collect())
    }

    /// Change an object in place. `expected_rv`, when given, must match the stored
    /// resourceVersion (409 Conflict otherwise). The closure may fail with StoreError.
    /// Returns the new object, or the old one unchanged if the closure changed nothing.
    pub fn update_with<F>(
        &self,
        res: Resource,
        ns: Option<&str>,
        name: &str,
        expected_rv: Option<&str>,
        f: F,
    ) -> Result<Value, StoreError>
    where
        F: FnOnce(&mut Value) -> Result<(), StoreError>,
    {
        let mut inner = self.lock();
        let key = Self::key(res, ns, name);
        let current = inner.objects.get(&key).cloned().ok_or_else(|| StoreError::NotFound {
            kind: res.plural.to_string(),
            name: name.to_string(),
        })?;
        if let Some(exp) = expected_rv {
            if !exp.is_empty() && current["metadata"]["resourceVersion"].as_str() != Some(exp) {
                return Err(StoreError::Conflict {
                    plural: format!("{}{}", res.plural, group_suffix(res)),
                    name: name.to_string(),
                });
            }
        }
        let mut next = current.clone();
        f(&mut next)?;
        // Identity fields cannot change.
        next["metadata"]["name"] = current["metadata"]["name"].clone();
        next["metadata"]["uid"] = current["metadata"]["uid"].clone();
        next["metadata"]["creationTimestamp"] = current["metadata"]["creationTimestamp"].clone();
        if res.namespaced {
            next["metadata"]["namespace"] = current["metadata"]["namespace"].clone();
        }
        next["apiVersion"] = json!(res.api_version());
        next["kind"] = json!(res.kind);
        next["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"].clone();
        if next == current {
            return Ok(current);
        }
        if current.get("spec") != next.get("spec") {
            if let Some(g) = current["metadata"]["generation"].as_i64() {
                next["metadata"]["generation"] = json!(g + 1);
            }
        }
        inner.rv += 1;
        let rv = inner.rv;
        next["metadata"]["resourceVersion"] = json!(rv.to_string());
        inner.objects.insert(key, next.clone());
        self.commit(&mut inner, res, WatchKind::Modified, next.clone(), rv);
        Ok(next)
    }

    /// Remove an object now (no grace period: that is the API layer's job).
    pub fn remove(&self, res: Resource, ns: Option<&str>, name: &str) -> Result<Value, StoreError> {
        let mut inner = self.lock();
        let key = Self::key(res, ns, name);
        let mut obj = inner.objects.remove(&key).ok_or_else(|| StoreError::NotFound {
            kind: res.plural.to_string(),
            name: name.to_string(),
        })?;
        inner.rv += 1;
        let rv = inner.rv;
        obj["metadata"]["resourceVersion"] = json!(rv.to_string());
        self.commit(&mut inner, res, WatchKind::Deleted, obj.clone(), rv);
        Ok(obj)
    }

    /// Subscribe to changes, and get the changes after `since_rv` that are still in the
    /// history (None when `since_rv` is older than the history: the watcher must relist,
    /// 410 Gone).
    pub fn watch_from(&self, since_rv: u64) -> (Option<Vec<Change>>, broadcast::Receiver<Change>) {
        let inner = self.lock();
        let rx = self.tx.subscribe();
        let oldest = inner.history.front().map(|c| c.rv).unwrap_or(inner.rv + 1);
        if since_rv + 1 < oldest && since_rv < inner.rv {
            return (None, rx);
        }
        let replay = inner.history.iter().filter(|c| c.rv > since_rv).cloned().collect();
        (Some(replay), rx)
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.tx.subscribe()
    }
}

fn group_suffix(res: Resource) -> String {
    if res.group.is_empty() {
        String::new()
    } else {
        format!(".{}", res.group)
    }
}

/// Five lowercase alphanumerics, as the API server's generateName uses.
pub fn random_suffix() -> String {
    use rand::Rng;
    const CHARS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut rng = rand::rng();
    (0..5)
        .map(|_| CHARS[rng.random_range(0..CHARS.len())] as char)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_update_conflict_and_watch_replay() {
        let s = Store::new();
        let obj = s
            .create(
                LEASES,
                json!({"metadata": {"name": "l", "namespace": "kube-system"}, "spec": {}}),
            )
            .unwrap();
        let rv = obj["metadata"]["resourceVersion"].as_str().unwrap().to_string();
        let (_, _rx) = s.watch_from(rv.parse().unwrap());
        let updated = s
            .update_with(LEASES, Some("kube-system"), "l", Some(&rv), |o| {
                o["spec"]["holderIdentity"] = json!("me");
                Ok(())
            })
            .unwrap();
        assert_ne!(
            updated["metadata"]["resourceVersion"],
            obj["metadata"]["resourceVersion"]
        );
        let stale = s.update_with(LEASES, Some("kube-system"), "l", Some(&rv), |_| Ok(()));
        assert!(matches!(stale, Err(StoreError::Conflict { .. })));
        let (replay, _) = s.watch_from(rv.parse().unwrap());
        assert_eq!(replay.unwrap().len(), 1);
        assert!(matches!(s.create(LEASES, obj), Err(StoreError::AlreadyExists { .. })));
    }

    #[test]
    fn a_list_holds_its_resource_only_and_its_namespace_when_asked() {
        let s = Store::new();
        for (res, ns, name) in [
            (ROLES, "ops", "b"),
            (ROLES, "dev", "a"),
            (ROLEBINDINGS, "ops", "a"),
            (CONFIGMAPS, "ops", "a"),
            (ROLES, "ops", "a"),
        ] {
            s.create(res, json!({"metadata": {"name": name, "namespace": ns}}))
                .unwrap();
        }
        s.create(CLUSTERROLES, json!({"metadata": {"name": "a"}})).unwrap();
        let names = |v: Vec<Value>| -> Vec<String> {
            v.iter()
                .map(|o| {
                    format!(
                        "{}/{}",
                        o["metadata"]["namespace"].as_str().unwrap_or(""),
                        o["metadata"]["name"].as_str().unwrap()
                    )
                })
                .collect()
        };
        assert_eq!(names(s.list(ROLES, None)), ["dev/a", "ops/a", "ops/b"]);
        assert_eq!(names(s.list(ROLES, Some("ops"))), ["ops/a", "ops/b"]);
        assert_eq!(names(s.list(CLUSTERROLES, Some("ops"))), ["/a"]);
        assert_eq!(names(s.list(ROLEBINDINGS, None)), ["ops/a"]);
        assert_eq!(names(s.list_at(CONFIGMAPS, None).0), ["ops/a"]);
        assert!(s.list(SECRETS, None).is_empty());
        let rv = s.resource_version();
        assert_eq!(names(s.list_exact(ROLES, Some("ops"), rv).unwrap()), ["ops/a", "ops/b"]);
    }
}
