//! Field management as kube-apiserver does it: `metadata.managedFields` recorded for every
//! write (`Update` entries for create/update/patch, per manager, API version and
//! subresource; `Apply` entries for server-side apply), and server-side apply's rules:
//! applying a field another manager owns with a different value is a 409 conflict unless
//! forced (then ownership moves), fields dropped from a manager's applied configuration
//! are removed when nobody else owns them.
//!
//! Field sets are computed over JSON: maps by key (`f:`), lists of maps merged by the
//! well-known keys Kubernetes declares (containers by name, ...; `k:`), `finalizers` as a
//! set (`v:`), every other list atomic.

use super::patch::merge_key;
use crate::objects::status::ApiError;
use crate::store::{self, Resource};
use serde_json::{json, Map, Value};
use std::collections::BTreeSet;

/// A path in FieldsV1 notation, one element per step (`f:spec`, `k:{"name":"c"}`, ...).
type Path = Vec<String>;
type FieldSet = BTreeSet<Path>;

/// Who writes: the field manager, the API version it writes and the subresource.
#[derive(Debug, Clone)]
pub struct Writer {
    pub manager: String,
    pub api_version: String,
    pub subresource: Option<String>,
}

impl Writer {
    /// The manager of a request: `?fieldManager=`, else the User-Agent up to its first '/'
    /// (kube-apiserver's default), at most 128 characters.
    pub fn of(field_manager: Option<&str>, user_agent: Option<&str>, res: &Resource, sub: Option<&str>) -> Writer {
        let manager = match field_manager.filter(|m| !m.is_empty()) {
            Some(m) => m.to_string(),
            None => user_agent.unwrap_or("").split('/').next().unwrap_or("").to_string(),
        };
        Writer {
            manager: manager.chars().take(128).collect(),
            api_version: res.api_version(),
            subresource: sub.map(str::to_string),
        }
    }
}

/// Lists of scalars that are sets (`+listType=set`).
fn is_set_list(field: &str) -> bool {
    field == "finalizers"
}

/// Fields the server owns, never in a manager's set.
const SERVER_METADATA: &[&str] = &[
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "managedFields",
    "selfLink",
];

fn key_element(key: &str, item: &Value) -> Option<String> {
    let v = item.get(key)?;
    let mut m = Map::new();
    m.insert(key.to_string(), v.clone());
    Some(format!("k:{}", Value::Object(m)))
}

fn collect(v: &Value, path: &mut Path, field: &str, set: &mut FieldSet) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            for (k, c) in m {
                path.push(format!("f:{k}"));
                collect(c, path, k, set);
                path.pop();
            }
        }
        Value::Array(a) if !a.is_empty() => {
            if let Some(key) = merge_key(field).filter(|k| a.iter().all(|i| i.get(*k).is_some())) {
                for item in a {
                    let el = key_element(key, item).expect("checked above");
                    path.push(el);
                    set.insert(path.clone());
                    if let Some(m) = item.as_object() {
                        for (k, c) in m {
                            path.push(format!("f:{k}"));
                            collect(c, path, k, set);
                            path.pop();
                        }
                    }
                    path.pop();
                }
            } else if is_set_list(field) {
                for item in a {
                    path.push(format!("v:{item}"));
                    set.insert(path.clone());
                    path.pop();
                }
            } else {
                set.insert(path.clone());
            }
        }
        Value::Null => {}
        _ => {
            set.insert(path.clone());
        }
    }
}

/// The fields an object (or an applied configuration) sets, for a write to `sub`.
fn field_set(res: &Resource, sub: Option<&str>, obj: &Value) -> FieldSet {
    let mut set = FieldSet::new();
    let Some(m) = obj.as_object() else { return set };
    for (k, v) in m {
        let keep = match k.as_str() {
            "apiVersion" | "kind" => false,
            "status" => sub == Some("status") || !store::has_status(res),
            _ => sub != Some("status"),
        };
        if !keep {
            continue;
        }
        let mut path = vec![format!("f:{k}")];
        if k == "metadata" {
            if let Some(meta) = v.as_object() {
                for (mk, mv) in meta {
                    if SERVER_METADATA.contains(&mk.as_str()) {
                        continue;
                    }
                    path.push(format!("f:{mk}"));
                    collect(mv, &mut path, mk, &mut set);
                    path.pop();
                }
            }
            continue;
        }
        collect(v, &mut path, k, &mut set);
    }
    set
}

fn item_matches(item: &Value, key: &Map<String, Value>) -> bool {
    key.iter().all(|(k, v)| item.get(k) == Some(v))
}

/// The value at a path.
fn get_at<'a>(v: &'a Value, path: &[String]) -> Option<&'a Value> {
    let mut cur = v;
    for el in path {
        cur = if let Some(f) = el.strip_prefix("f:") {
            cur.as_object()?.get(f)?
        } else if let Some(k) = el.strip_prefix("k:") {
            let key: Map<String, Value> = serde_json::from_str(k).ok()?;
            cur.as_array()?.iter().find(|i| item_matches(i, &key))?
        } else if let Some(x) = el.strip_prefix("v:") {
            let x: Value = serde_json::from_str(x).ok()?;
            cur.as_array()?.iter().find(|i| **i == x)?
        } else {
            return None;
        };
    }
    (!cur.is_null()).then_some(cur)
}

/// Remove the value at a path (a map key, a keyed item, a set member).
fn remove_at(v: &mut Value, path: &[String]) {
    let Some((last, parent)) = path.split_last() else {
        return;
    };
    let mut cur = v;
    for el in parent {
        let next = if let Some(f) = el.strip_prefix("f:") {
            cur.as_object_mut().and_then(|m| m.get_mut(f))
        } else if let Some(k) = el.strip_prefix("k:") {
            let Ok(key) = serde_json::from_str::<Map<String, Value>>(k) else {
                return;
            };
            cur.as_array_mut()
                .and_then(|a| a.iter_mut().find(|i| item_matches(i, &key)))
        } else {
            None
        };
        match next {
            Some(n) => cur = n,
            None => return,
        }
    }
    if let Some(f) = last.strip_prefix("f:") {
        if let Some(m) = cur.as_object_mut() {
            m.remove(f);
        }
    } else if let Some(k) = last.strip_prefix("k:") {
        if let (Ok(key), Some(a)) = (serde_json::from_str::<Map<String, Value>>(k), cur.as_array_mut()) {
            a.retain(|i| !item_matches(i, &key));
        }
    } else if let Some(x) = last.strip_prefix("v:") {
        if let (Ok(x), Some(a)) = (serde_json::from_str::<Value>(x), cur.as_array_mut()) {
            a.retain(|i| *i != x);
        }
    }
}

/// A FieldsV1 tree from a set: a path that has descendants in the set gets a `.` child.
fn to_fields_v1(set: &FieldSet) -> Value {
    let mut root = Map::new();
    for p in set {
        let mut node = &mut root;
        for el in p {
            node = node
                .entry(el.clone())
                .or_insert_with(|| json!({}))
                .as_object_mut()
                .expect("fields nodes are objects");
        }
        if !node.is_empty() {
            node.insert(".".into(), json!({}));
        }
    }
    // Parents inserted before their children: mark them now.
    fn mark(node: &mut Map<String, Value>, prefix: &mut Path, set: &FieldSet) {
        for (k, v) in node.iter_mut() {
            if k == "." {
                continue;
            }
            prefix.push(k.clone());
            if let Some(m) = v.as_object_mut() {
                if !m.is_empty() && set.contains(prefix) {
                    m.insert(".".into(), json!({}));
                }
                mark(m, prefix, set);
            }
            prefix.pop();
        }
    }
    mark(&mut root, &mut vec![], set);
    Value::Object(root)
}

fn from_fields_v1(v: &Value) -> FieldSet {
    fn walk(v: &Value, path: &mut Path, set: &mut FieldSet) {
        let Some(m) = v.as_object() else { return };
        if m.is_empty() {
            if !path.is_empty() {
                set.insert(path.clone());
            }
            return;
        }
        for (k, c) in m {
            if k == "." {
                set.insert(path.clone());
                continue;
            }
            path.push(k.clone());
            walk(c, path, set);
            path.pop();
        }
    }
    let mut set = FieldSet::new();
    walk(v, &mut vec![], &mut set);
    set
}

#[derive(Debug, Clone)]
struct Entry {
    manager: String,
    operation: String,
    api_version: String,
    time: String,
    subresource: Option<String>,
    set: FieldSet,
}

impl Entry {
    /// The manager identity (`BuildManagerIdentifier`): appliers are one manager across
    /// API versions.
    fn same_manager(&self, w: &Writer, operation: &str) -> bool {
        self.manager == w.manager
            && self.operation == operation
            && self.subresource == w.subresource
            && (operation == "Apply" || self.api_version == w.api_version)
    }

    /// `printManager`.
    fn printed(&self) -> String {
        let mut s = format!("{:?}", self.manager);
        if let Some(sub) = &self.subresource {
            s.push_str(&format!(" with subresource {sub:?}"));
        }
        if self.operation == "Update" {
            s.push_str(&format!(" using {}", self.api_version));
        }
        s
    }

    fn to_json(&self) -> Value {
        let mut e = json!({
            "manager": self.manager,
            "operation": self.operation,
            "apiVersion": self.api_version,
            "time": self.time,
            "fieldsType": "FieldsV1",
            "fieldsV1": to_fields_v1(&self.set),
        });
        if let Some(s) = &self.subresource {
            e["subresource"] = json!(s);
        }
        e
    }
}

fn entries(obj: Option<&Value>) -> Vec<Entry> {
    let Some(list) = obj.and_then(|o| o["metadata"]["managedFields"].as_array()) else {
        return vec![];
    };
    list.iter()
        .map(|e| Entry {
            manager: e["manager"].as_str().unwrap_or("").to_string(),
            operation: e["operation"].as_str().unwrap_or("Update").to_string(),
            api_version: e["apiVersion"].as_str().unwrap_or("").to_string(),
            time: e["time"].as_str().unwrap_or("").to_string(),
            subresource: e["subresource"].as_str().filter(|s| !s.is_empty()).map(str::to_string),
            set: from_fields_v1(&e["fieldsV1"]),
        })
        .collect()
}

fn store_entries(obj: &mut Value, list: Vec<Entry>) {
    let list: Vec<Value> = list.iter().filter(|e| !e.set.is_empty()).map(Entry::to_json).collect();
    if !obj["metadata"].is_object() {
        obj["metadata"] = json!({});
    }
    let meta = obj["metadata"].as_object_mut().expect("made an object above");
    if list.is_empty() {
        meta.remove("managedFields");
    } else {
        meta.insert("managedFields".into(), Value::Array(list));
    }
}

fn without_managed_fields(v: &Value) -> Value {
    let mut v = v.clone();
    if let Some(m) = v["metadata"].as_object_mut() {
        m.remove("managedFields");
    }
    v
}

fn is_member(el: &str) -> bool {
    el.starts_with("k:") || el.starts_with("v:")
}

/// Record a create, update or patch by `w` (operation `Update`): `w` takes the fields it
/// changed from every other manager; fields that are gone leave every set. A write that
/// changes nothing keeps the old record (and so the resourceVersion).
pub fn record_update(res: &Resource, old: Option<&Value>, new: &mut Value, w: &Writer) {
    let mut list = entries(old);
    if let Some(o) = old {
        if without_managed_fields(o) == without_managed_fields(new) {
            new["metadata"]["managedFields"] = o["metadata"]["managedFields"].clone();
            if new["metadata"]["managedFields"].is_null() {
                if let Some(m) = new["metadata"].as_object_mut() {
                    m.remove("managedFields");
                }
            }
            return;
        }
    }
    let empty = json!({});
    let old_v = old.unwrap_or(&empty);
    let sub = w.subresource.as_deref().filter(|s| *s == "status");
    let changed: FieldSet = field_set(res, sub, new)
        .into_iter()
        .filter(|p| {
            if p.last().is_some_and(|l| is_member(l)) {
                get_at(old_v, p).is_none()
            } else {
                get_at(old_v, p) != get_at(new, p)
            }
        })
        .collect();
    for e in &mut list {
        e.set.retain(|p| get_at(new, p).is_some());
        if !e.same_manager(w, "Update") {
            e.set.retain(|p| !changed.contains(p));
        }
    }
    let now = crate::time::now_rfc3339();
    match list.iter_mut().find(|e| e.same_manager(w, "Update")) {
        Some(e) => {
            e.set.extend(changed);
            e.time = now;
        }
        None => list.push(Entry {
            manager: w.manager.clone(),
            operation: "Update".into(),
            api_version: w.api_version.clone(),
            time: now,
            subresource: w.subresource.clone(),
            set: changed,
        }),
    }
    store_entries(new, list);
}

/// One apply conflict: the manager that owns the field, and the field.
#[derive(Debug, Clone)]
pub struct Conflict {
    manager: String,
    path: String,
}

/// A path as structured-merge-diff prints it: `.spec.containers[name="c"].image`.
fn print_path(p: &Path) -> String {
    let mut s = String::new();
    for el in p {
        if let Some(f) = el.strip_prefix("f:") {
            s.push('.');
            s.push_str(f);
        } else if let Some(k) = el.strip_prefix("k:") {
            let key: Map<String, Value> = serde_json::from_str(k).unwrap_or_default();
            let parts: Vec<String> = key.iter().map(|(k, v)| format!("{k}={v}")).collect();
            s.push_str(&format!("[{}]", parts.join(",")));
        } else if let Some(v) = el.strip_prefix("v:") {
            s.push_str(&format!("[={v}]"));
        }
    }
    s
}

/// The 409 kube-apiserver answers an apply with conflicts (`NewApplyConflict`).
pub fn conflict_error(conflicts: &[Conflict]) -> ApiError {
    let message = match conflicts {
        [one] => format!(
            "Apply failed with 1 conflict: conflict with {}: {}",
            one.manager, one.path
        ),
        many => {
            let mut managers: Vec<&str> = many.iter().map(|c| c.manager.as_str()).collect();
            managers.sort();
            managers.dedup();
            let mut lines = vec![];
            for m in managers {
                lines.push(format!("conflicts with {m}:"));
                for c in many.iter().filter(|c| c.manager == m) {
                    lines.push(format!("- {}", c.path));
                }
            }
            format!("Apply failed with {} conflicts: {}", many.len(), lines.join("\n"))
        }
    };
    let causes: Vec<Value> = conflicts
        .iter()
        .map(|c| json!({"reason": "FieldManagerConflict", "message": format!("conflict with {}", c.manager), "field": c.path}))
        .collect();
    ApiError::new(409, "Conflict", message).with_details(json!({"causes": causes}))
}

/// Merge an applied configuration into an object: maps by key, keyed lists by item,
/// everything else replaced.
fn merge_applied(target: &mut Value, applied: &Value, field: &str) {
    match (target, applied) {
        (Value::Object(t), Value::Object(a)) => {
            for (k, v) in a {
                if v.is_null() {
                    t.remove(k);
                    continue;
                }
                match t.get_mut(k) {
                    Some(cur) => merge_applied(cur, v, k),
                    None => {
                        t.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (Value::Array(t), Value::Array(a))
            if merge_key(field).is_some_and(|k| a.iter().chain(t.iter()).all(|i| i.get(k).is_some())) =>
        {
            let key = merge_key(field).expect("checked");
            for item in a {
                match t.iter_mut().find(|c| c.get(key) == item.get(key)) {
                    Some(cur) => merge_applied(cur, item, field),
                    None => t.push(item.clone()),
                }
            }
        }
        (Value::Array(t), Value::Array(a)) if is_set_list(field) => {
            for item in a {
                if !t.contains(item) {
                    t.push(item.clone());
                }
            }
        }
        (t, a) => *t = a.clone(),
    }
}

/// Server-side apply of `applied` by `w` onto `live` (None: the object is created).
/// Returns the new object with its managedFields, or the conflicts.
pub fn apply(
    res: &Resource,
    live: Option<&Value>,
    applied: &Value,
    w: &Writer,
    force: bool,
) -> Result<Value, Vec<Conflict>> {
    let sub = w.subresource.as_deref().filter(|s| *s == "status");
    let mut list = entries(live);
    let empty = json!({});
    let live_v = live.unwrap_or(&empty);
    let mine = field_set(res, sub, applied);
    let mut conflicts = vec![];
    let mut lost: Vec<(usize, Path)> = vec![];
    for p in &mine {
        if p.last().is_some_and(|l| is_member(l)) {
            continue;
        }
        if get_at(applied, p) == get_at(live_v, p) {
            continue;
        }
        for (i, e) in list.iter().enumerate() {
            if e.same_manager(w, "Apply") || !e.set.contains(p) {
                continue;
            }
            conflicts.push(Conflict {
                manager: e.printed(),
                path: print_path(p),
            });
            lost.push((i, p.clone()));
        }
    }
    if !conflicts.is_empty() && !force {
        conflicts.sort_by(|a, b| (&a.manager, &a.path).cmp(&(&b.manager, &b.path)));
        return Err(conflicts);
    }
    for (i, p) in lost {
        list[i].set.remove(&p);
    }
    let mut new = live_v.clone();
    // Fields this manager applied before and no longer does, that nobody else owns, go.
    let before: FieldSet = list
        .iter()
        .find(|e| e.same_manager(w, "Apply"))
        .map(|e| e.set.clone())
        .unwrap_or_default();
    let others: FieldSet = list
        .iter()
        .filter(|e| !e.same_manager(w, "Apply"))
        .flat_map(|e| e.set.iter().cloned())
        .collect();
    let mut dropped: Vec<&Path> = before
        .iter()
        .filter(|p| !mine.contains(*p))
        .filter(|p| !others.iter().chain(mine.iter()).any(|o| o.starts_with(p)))
        .collect();
    dropped.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for p in dropped {
        remove_at(&mut new, p);
    }
    merge_applied(&mut new, applied, "");
    for e in &mut list {
        if !e.same_manager(w, "Apply") {
            e.set.retain(|p| get_at(&new, p).is_some());
        }
    }
    let api_version = applied["apiVersion"]
        .as_str()
        .filter(|v| !v.is_empty())
        .unwrap_or(&w.api_version)
        .to_string();
    let now = crate::time::now_rfc3339();
    match list.iter_mut().find(|e| e.same_manager(w, "Apply")) {
        Some(e) => {
            if e.set != mine || without_managed_fields(live_v) != without_managed_fields(&new) {
                e.time = now;
            }
            e.set = mine;
            e.api_version = api_version;
        }
        None => list.push(Entry {
            manager: w.manager.clone(),
            operation: "Apply".into(),
            api_version,
            time: now,
            subresource: w.subresource.clone(),
            set: mine,
        }),
    }
    store_entries(&mut new, list);
    Ok(new)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn writer(m: &str) -> Writer {
        Writer {
            manager: m.into(),
            api_version: "apps/v1".into(),
            subresource: None,
        }
    }

    fn deploy(replicas: i64, image: &str) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "labels": {"app": "web"}},
               "spec": {"replicas": replicas, "template": {"spec": {"containers": [{"name": "c", "image": image}]}}}})
    }

    #[test]
    fn fields_v1_round_trips_with_item_markers() {
        let set = field_set(&store::DEPLOYMENTS, None, &deploy(2, "x:1"));
        let v = to_fields_v1(&set);
        assert_eq!(
            v,
            json!({"f:metadata": {"f:labels": {"f:app": {}}},
                   "f:spec": {"f:replicas": {}, "f:template": {"f:spec": {"f:containers": {
                       "k:{\"name\":\"c\"}": {".": {}, "f:image": {}, "f:name": {}}}}}}})
        );
        assert_eq!(from_fields_v1(&v), set);
    }

    #[test]
    fn another_managers_field_conflicts_unless_forced() {
        let live = apply(&store::DEPLOYMENTS, None, &deploy(2, "x:1"), &writer("kubectl"), false).unwrap();
        let mut scaled = live.clone();
        scaled["spec"]["replicas"] = json!(5);
        let scaler = Writer {
            subresource: Some("scale".into()),
            ..writer("kubectl")
        };
        record_update(&store::DEPLOYMENTS, Some(&live), &mut scaled, &scaler);
        let e = apply(
            &store::DEPLOYMENTS,
            Some(&scaled),
            &deploy(2, "x:1"),
            &writer("kubectl"),
            false,
        )
        .unwrap_err();
        assert_eq!(
            conflict_error(&e).message,
            "Apply failed with 1 conflict: conflict with \"kubectl\" with subresource \"scale\" using apps/v1: .spec.replicas"
        );
        // Same value: shared, no conflict.
        assert!(apply(
            &store::DEPLOYMENTS,
            Some(&scaled),
            &deploy(5, "x:1"),
            &writer("kubectl"),
            false
        )
        .is_ok());
        let forced = apply(
            &store::DEPLOYMENTS,
            Some(&scaled),
            &deploy(3, "x:1"),
            &writer("kubectl"),
            true,
        )
        .unwrap();
        assert_eq!(forced["spec"]["replicas"], 3);
        let managers: Vec<&str> = forced["metadata"]["managedFields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["manager"].as_str().unwrap())
            .collect();
        assert_eq!(managers, vec!["kubectl"], "the scaler lost its only field");
    }

    #[test]
    fn dropped_fields_go_unless_someone_else_owns_them() {
        let mut first = deploy(2, "x:1");
        first["metadata"]["labels"]["tier"] = json!("web");
        let live = apply(&store::DEPLOYMENTS, None, &first, &writer("a"), false).unwrap();
        let live = apply(&store::DEPLOYMENTS, Some(&live), &deploy(2, "x:1"), &writer("a"), false).unwrap();
        assert!(live["metadata"]["labels"].get("tier").is_none(), "{live}");
        // Owned by another applier too: stays.
        let live = apply(&store::DEPLOYMENTS, Some(&live), &first, &writer("a"), false).unwrap();
        let live = apply(&store::DEPLOYMENTS, Some(&live), &first, &writer("b"), false).unwrap();
        let live = apply(&store::DEPLOYMENTS, Some(&live), &deploy(2, "x:1"), &writer("a"), false).unwrap();
        assert_eq!(live["metadata"]["labels"]["tier"], "web");
        assert_eq!(
            print_path(&vec!["f:spec".into(), "k:{\"name\":\"c\"}".into(), "f:image".into()]),
            ".spec[name=\"c\"].image"
        );
    }
}
