//! Label selectors (the `labelSelector` query string and `LabelSelector` objects) and
//! field selectors, as the API server evaluates them.

use crate::store::Resource;
use serde_json::Value;

#[derive(Debug, Clone, PartialEq)]
enum Req {
    Eq(String, String),
    NotEq(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    NotExists(String),
}

/// A parsed `labelSelector` (empty: matches everything).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LabelSelector(Vec<Req>);

fn valid_key(k: &str) -> bool {
    !k.is_empty() && k.len() <= 317 && k.chars().all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c))
}

fn valid_value(v: &str) -> bool {
    v.len() <= 63 && v.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
}

/// Split on commas that are not inside parentheses.
fn split_terms(s: &str) -> Vec<String> {
    let mut out = vec![];
    let mut depth = 0i32;
    let mut cur = String::new();
    for c in s.chars() {
        match c {
            '(' => {
                depth += 1;
                cur.push(c)
            }
            ')' => {
                depth -= 1;
                cur.push(c)
            }
            ',' if depth <= 0 => out.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    out.push(cur);
    out
}

impl LabelSelector {
    pub fn parse(s: &str) -> Result<LabelSelector, String> {
        let mut reqs = vec![];
        if s.trim().is_empty() {
            return Ok(LabelSelector(reqs));
        }
        for term in split_terms(s) {
            let t = term.trim();
            if t.is_empty() {
                return Err(format!("unable to parse requirement: empty term in `{s}`"));
            }
            let bad_key = |k: &str| format!("unable to parse requirement: invalid label key \"{k}\"");
            let bad_value = |v: &str| format!("unable to parse requirement: invalid label value: \"{v}\"");
            if let Some(open) = t.find('(') {
                let close = t
                    .rfind(')')
                    .filter(|c| *c == t.len() - 1)
                    .ok_or_else(|| format!("unable to parse requirement: `{t}`: expected `)` at the end"))?;
                let head: Vec<&str> = t[..open].split_whitespace().collect();
                let values: Vec<String> = t[open + 1..close]
                    .split(',')
                    .map(|v| v.trim().to_string())
                    .filter(|v| !v.is_empty())
                    .collect();
                if head.len() != 2 {
                    return Err(format!("unable to parse requirement: `{t}`: expected `key in (v1,v2)`"));
                }
                let key = head[0].to_string();
                if !valid_key(&key) {
                    return Err(bad_key(&key));
                }
                if let Some(v) = values.iter().find(|v| !valid_value(v)) {
                    return Err(bad_value(v));
                }
                match head[1] {
                    "in" => reqs.push(Req::In(key, values)),
                    "notin" => reqs.push(Req::NotIn(key, values)),
                    op => return Err(format!("unable to parse requirement: unknown operator `{op}` in `{t}`")),
                }
            } else if let Some(k) = t.strip_prefix('!') {
                let k = k.trim();
                if !valid_key(k) {
                    return Err(bad_key(k));
                }
                reqs.push(Req::NotExists(k.to_string()));
            } else if let Some((k, v)) = t.split_once("!=") {
                let (k, v) = (k.trim(), v.trim());
                if !valid_key(k) {
                    return Err(bad_key(k));
                }
                if !valid_value(v) {
                    return Err(bad_value(v));
                }
                reqs.push(Req::NotEq(k.to_string(), v.to_string()));
            } else if let Some((k, v)) = t.split_once("==").or_else(|| t.split_once('=')) {
                let (k, v) = (k.trim(), v.trim());
                if !valid_key(k) {
                    return Err(bad_key(k));
                }
                if !valid_value(v) {
                    return Err(bad_value(v));
                }
                reqs.push(Req::Eq(k.to_string(), v.to_string()));
            } else {
                if !valid_key(t) {
                    return Err(bad_key(t));
                }
                reqs.push(Req::Exists(t.to_string()));
            }
        }
        Ok(LabelSelector(reqs))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Does an object with these labels (a JSON object, or null) match?
    pub fn matches(&self, labels: &Value) -> bool {
        let get = |k: &str| labels.get(k).and_then(Value::as_str);
        self.0.iter().all(|r| match r {
            Req::Eq(k, v) => get(k) == Some(v.as_str()),
            Req::NotEq(k, v) => get(k) != Some(v.as_str()),
            Req::In(k, vs) => get(k).is_some_and(|x| vs.iter().any(|v| v == x)),
            Req::NotIn(k, vs) => !get(k).is_some_and(|x| vs.iter().any(|v| v == x)),
            Req::Exists(k) => get(k).is_some(),
            Req::NotExists(k) => get(k).is_none(),
        })
    }

    /// Build from a `LabelSelector` object (`matchLabels`, `matchExpressions`).
    pub fn from_object(sel: &Value) -> Result<LabelSelector, String> {
        let mut reqs = vec![];
        if let Some(m) = sel.get("matchLabels").and_then(Value::as_object) {
            for (k, v) in m {
                reqs.push(Req::Eq(k.clone(), v.as_str().unwrap_or_default().to_string()));
            }
        }
        if let Some(exprs) = sel.get("matchExpressions").and_then(Value::as_array) {
            for e in exprs {
                let key = e["key"].as_str().unwrap_or_default().to_string();
                let values: Vec<String> = e["values"]
                    .as_array()
                    .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect())
                    .unwrap_or_default();
                match e["operator"].as_str().unwrap_or_default() {
                    "In" => reqs.push(Req::In(key, values)),
                    "NotIn" => reqs.push(Req::NotIn(key, values)),
                    "Exists" => reqs.push(Req::Exists(key)),
                    "DoesNotExist" => reqs.push(Req::NotExists(key)),
                    op => return Err(format!("\"{op}\" is not a valid label selector operator")),
                }
            }
        }
        Ok(LabelSelector(reqs))
    }

    /// The selector as `kubectl` prints it (`app=web,tier in (a,b)`).
    pub fn to_string_form(&self) -> String {
        self.0
            .iter()
            .map(|r| match r {
                Req::Eq(k, v) => format!("{k}={v}"),
                Req::NotEq(k, v) => format!("{k}!={v}"),
                Req::In(k, vs) => format!("{k} in ({})", vs.join(",")),
                Req::NotIn(k, vs) => format!("{k} notin ({})", vs.join(",")),
                Req::Exists(k) => k.clone(),
                Req::NotExists(k) => format!("!{k}"),
            })
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// Does a `LabelSelector` object select these labels? A null/missing selector selects
/// nothing (policy/v1 PodDisruptionBudget semantics); `{}` selects everything.
pub fn object_selects(sel: &Value, labels: &Value) -> bool {
    if sel.is_null() {
        return false;
    }
    LabelSelector::from_object(sel).is_ok_and(|s| s.matches(labels))
}

#[derive(Debug, Clone, PartialEq)]
struct FieldReq {
    path: String,
    value: String,
    equal: bool,
}

/// A parsed `fieldSelector` (`spec.nodeName=n1,status.phase!=Succeeded`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FieldSelector(Vec<FieldReq>);

impl FieldSelector {
    pub fn parse(s: &str) -> Result<FieldSelector, String> {
        let mut reqs = vec![];
        if s.trim().is_empty() {
            return Ok(FieldSelector(reqs));
        }
        for term in s.split(',') {
            let t = term.trim();
            let (path, value, equal) = if let Some((p, v)) = t.split_once("!=") {
                (p, v, false)
            } else if let Some((p, v)) = t.split_once("==").or_else(|| t.split_once('=')) {
                (p, v, true)
            } else {
                return Err(format!("invalid selector: '{s}'; can't understand '{t}'"));
            };
            let path = path.trim();
            if path.is_empty() || !path.chars().all(|c| c.is_ascii_alphanumeric() || c == '.') {
                return Err(format!(
                    "\"{path}\" is not a known field selector: only field paths like \"spec.nodeName\" are supported"
                ));
            }
            reqs.push(FieldReq {
                path: path.to_string(),
                value: value.trim().replace("\\,", ",").replace("\\=", "="),
                equal,
            });
        }
        Ok(FieldSelector(reqs))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Check the field labels against what the API server supports for this kind, and
    /// translate the aliases it accepts (`spec.host`, `source`), as its field label
    /// conversion functions do. Unknown labels are errors (400), never an empty list.
    pub fn for_resource(mut self, res: &Resource) -> Result<FieldSelector, String> {
        let own: &[&str] = match (res.group, res.plural) {
            ("", "pods") => &[
                "spec.nodeName",
                "spec.restartPolicy",
                "spec.schedulerName",
                "spec.serviceAccountName",
                "spec.hostNetwork",
                "status.phase",
                "status.podIP",
                "status.podIPs",
                "status.nominatedNodeName",
            ],
            ("", "nodes") => &["spec.unschedulable"],
            ("", "namespaces") => &["status.phase"],
            ("", "secrets") => &["type"],
            ("", "events") => &[
                "involvedObject.kind",
                "involvedObject.namespace",
                "involvedObject.name",
                "involvedObject.uid",
                "involvedObject.apiVersion",
                "involvedObject.resourceVersion",
                "involvedObject.fieldPath",
                "reason",
                "reportingComponent",
                "source",
                "type",
            ],
            ("apps", "replicasets") => &["status.replicas"],
            ("apps", "statefulsets") | ("batch", "jobs") => &["status.successful"],
            _ => &[],
        };
        // Kinds with a conversion function of their own say "field label not supported";
        // the others fall back to the default, which only knows the metadata fields.
        let custom = !own.is_empty();
        for r in &mut self.0 {
            match (res.plural, r.path.as_str()) {
                ("pods", "spec.host") => r.path = "spec.nodeName".into(),
                ("events", "source") => r.path = "source.component".into(),
                (_, "metadata.name") => {}
                // Cluster-scoped kinds with their own conversion know only metadata.name.
                (_, "metadata.namespace") if res.namespaced || !custom => {}
                (_, p) if own.contains(&p) => {}
                (_, p) if custom => return Err(format!("field label not supported: {p}")),
                (_, p) => {
                    return Err(format!(
                        "\"{p}\" is not a known field selector: only \"metadata.name\", \"metadata.namespace\""
                    ))
                }
            }
        }
        Ok(self)
    }

    pub fn matches(&self, obj: &Value) -> bool {
        self.0.iter().all(|r| (field_value(obj, &r.path) == r.value) == r.equal)
    }

    /// `metadata.name=X` when the selector pins the name (watching one object).
    pub fn pinned_name(&self) -> Option<&str> {
        self.0
            .iter()
            .find(|r| r.equal && r.path == "metadata.name")
            .map(|r| r.value.as_str())
    }
}

/// Boolean fields a field selector sees as `false` when unset (the API server builds the
/// field set from the typed object, where an unset bool is false).
const BOOL_FIELDS: &[&str] = &["spec.unschedulable", "spec.hostNetwork"];
/// Integer fields seen as `0` when unset.
const INT_FIELDS: &[&str] = &["status.replicas", "status.successful"];

/// The value of a field path as a field selector compares it: strings as they are,
/// booleans and numbers in their text form, missing fields as "" (`false` and `0` for
/// boolean and integer fields, as on a real server).
pub fn field_value(obj: &Value, path: &str) -> String {
    let mut v = obj;
    for part in path.split('.') {
        match v.get(part) {
            Some(x) => v = x,
            None => {
                return if BOOL_FIELDS.contains(&path) {
                    "false".into()
                } else if INT_FIELDS.contains(&path) {
                    "0".into()
                } else {
                    String::new()
                }
            }
        }
    }
    if v.is_null() && BOOL_FIELDS.contains(&path) {
        return "false".into();
    }
    if path == "status.podIPs" {
        // The pod's IPs, comma-separated, as the API server's field set has them.
        if let Some(a) = v.as_array() {
            return a.iter().filter_map(|i| i["ip"].as_str()).collect::<Vec<_>>().join(",");
        }
    }
    match v {
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn label_selector_forms() {
        let labels = json!({"app": "web", "tier": "front", "env": "prod"});
        let m = |s: &str| LabelSelector::parse(s).unwrap().matches(&labels);
        assert!(m(""));
        assert!(m("app=web"));
        assert!(m("app==web"));
        assert!(!m("app=db"));
        assert!(m("app!=db"));
        assert!(m("missing!=x"));
        assert!(m("tier in (front, back)"));
        assert!(!m("tier notin (front,back)"));
        assert!(m("missing notin (a)"));
        assert!(m("app"));
        assert!(!m("!app"));
        assert!(m("!missing"));
        assert!(m("app=web,tier in (front,back),!missing"));
        assert!(!m("app=web,env=dev"));
        assert!(LabelSelector::parse("app in front").is_err());
        assert!(LabelSelector::parse("a b=c").is_err());
        assert!(LabelSelector::parse("app=,").is_err());
        assert!(m("app=web,env in (prod)"));
    }

    #[test]
    fn selector_objects() {
        let labels = json!({"app": "web"});
        assert!(!object_selects(&Value::Null, &labels));
        assert!(object_selects(&json!({}), &labels));
        assert!(object_selects(&json!({"matchLabels": {"app": "web"}}), &labels));
        assert!(!object_selects(
            &json!({"matchExpressions": [{"key": "app", "operator": "NotIn", "values": ["web"]}]}),
            &labels
        ));
        let s =
            LabelSelector::from_object(&json!({"matchLabels": {"app": "web", "pod-template-hash": "abc"}})).unwrap();
        assert_eq!(s.to_string_form(), "app=web,pod-template-hash=abc");
    }

    #[test]
    fn field_selector_forms() {
        let pod = json!({"metadata": {"name": "p", "namespace": "ns"}, "spec": {"nodeName": "n1", "unschedulable": true}, "status": {"phase": "Running"}});
        let m = |s: &str| FieldSelector::parse(s).unwrap().matches(&pod);
        assert!(m("spec.nodeName=n1"));
        assert!(m("spec.nodeName==n1"));
        assert!(!m("spec.nodeName=n2"));
        assert!(m("status.phase!=Succeeded,status.phase!=Failed"));
        assert!(m("metadata.name=p,metadata.namespace=ns"));
        assert!(m("spec.unschedulable=true"));
        assert!(m("spec.missing="));
        let node = json!({"metadata": {"name": "n"}, "spec": {}});
        let n = |s: &str| FieldSelector::parse(s).unwrap().matches(&node);
        assert!(n("spec.unschedulable=false"), "an unset bool is false");
        assert!(!n("spec.unschedulable=true"));
        assert!(n("spec.unschedulable!=true"));
        assert!(FieldSelector::parse("spec.nodeName").is_err());
        assert_eq!(
            FieldSelector::parse("metadata.name=x").unwrap().pinned_name(),
            Some("x")
        );
    }

    #[test]
    fn field_labels_per_kind() {
        use crate::store;
        let check = |res: &Resource, s: &str| FieldSelector::parse(s).unwrap().for_resource(res);
        assert!(check(
            &store::PODS,
            "spec.nodeName=n,status.phase!=Failed,metadata.namespace=x"
        )
        .is_ok());
        assert_eq!(
            check(&store::PODS, "spec.NodeName=x").unwrap_err(),
            "field label not supported: spec.NodeName"
        );
        let host = check(&store::PODS, "spec.host=n1").unwrap();
        assert_eq!(host.0[0].path, "spec.nodeName");
        assert!(check(&store::NODES, "spec.unschedulable=false,metadata.name=n").is_ok());
        assert_eq!(
            check(&store::NODES, "metadata.namespace=x").unwrap_err(),
            "field label not supported: metadata.namespace"
        );
        assert!(check(&store::DEPLOYMENTS, "metadata.name=a,metadata.namespace=b").is_ok());
        assert_eq!(
            check(&store::DEPLOYMENTS, "spec.replicas=1").unwrap_err(),
            "\"spec.replicas\" is not a known field selector: only \"metadata.name\", \"metadata.namespace\""
        );
    }
}
