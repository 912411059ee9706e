//! Object validation as kube-apiserver does it (k8s.io/apimachinery `validation`,
//! `ValidateObjectMeta`, the coordination and core validators): object names, label keys
//! and values, annotation keys and their total size, finalizers, Lease spec, Node taints
//! and the Pod fields a client writes. Refusals are kube-apiserver's `422 Invalid` with
//! one `details.causes` entry per field error and the same aggregated message.

pub mod rbac;

use crate::objects::status::ApiError;
use crate::store::{self, Resource};
use serde_json::{json, Value};

const DNS1123_LABEL_FMT: &str = "[a-z0-9]([-a-z0-9]*[a-z0-9])?";
const DNS1123_LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character";
const DNS1123_SUBDOMAIN_FMT: &str = "[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*";
const DNS1123_SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character";
const DNS1035_LABEL_FMT: &str = "[a-z]([-a-z0-9]*[a-z0-9])?";
const DNS1035_LABEL_MSG: &str = "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character";
const QUALIFIED_NAME_FMT: &str = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]";
const QUALIFIED_NAME_MSG: &str =
    "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";
const LABEL_VALUE_FMT: &str = "(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?";
const LABEL_VALUE_MSG: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";
/// The total size of an object's annotations (keys and values), as kube-apiserver limits it.
pub const TOTAL_ANNOTATION_SIZE: usize = 256 * 1024;

/// The kind of a field error (`field.ErrorType`): its cause reason and its words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorType {
    Invalid,
    Required,
    NotSupported,
    Duplicate,
    TooLong,
    Forbidden,
}

impl ErrorType {
    fn reason(self) -> &'static str {
        match self {
            ErrorType::Invalid => "FieldValueInvalid",
            ErrorType::Required => "FieldValueRequired",
            ErrorType::NotSupported => "FieldValueNotSupported",
            ErrorType::Duplicate => "FieldValueDuplicate",
            ErrorType::TooLong => "FieldValueTooLong",
            ErrorType::Forbidden => "FieldValueForbidden",
        }
    }

    fn words(self) -> &'static str {
        match self {
            ErrorType::Invalid => "Invalid value",
            ErrorType::Required => "Required value",
            ErrorType::NotSupported => "Unsupported value",
            ErrorType::Duplicate => "Duplicate value",
            ErrorType::TooLong => "Too long",
            ErrorType::Forbidden => "Forbidden",
        }
    }
}

/// One field error (`field.Error`): the bad value already printed as Go prints it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub ty: ErrorType,
    pub field: String,
    pub value: Option<String>,
    pub detail: String,
}

impl FieldError {
    fn new(ty: ErrorType, field: &str, value: Option<String>, detail: impl Into<String>) -> FieldError {
        FieldError {
            ty,
            field: field.to_string(),
            value,
            detail: detail.into(),
        }
    }

    pub fn invalid(field: &str, value: &str, detail: impl Into<String>) -> FieldError {
        FieldError::new(ErrorType::Invalid, field, Some(go_quote(value)), detail)
    }

    pub fn required(field: &str, detail: impl Into<String>) -> FieldError {
        FieldError::new(ErrorType::Required, field, None, detail)
    }

    pub fn forbidden(field: &str, detail: impl Into<String>) -> FieldError {
        FieldError::new(ErrorType::Forbidden, field, None, detail)
    }

    /// `ErrorBody()`: the message without the field.
    pub fn body(&self) -> String {
        let mut s = self.ty.words().to_string();
        let shows_value = !matches!(self.ty, ErrorType::Required | ErrorType::Forbidden | ErrorType::TooLong);
        if let (true, Some(v)) = (shows_value, &self.value) {
            s.push_str(": ");
            s.push_str(v);
        }
        if !self.detail.is_empty() {
            s.push_str(": ");
            s.push_str(&self.detail);
        }
        s
    }
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.body())
    }
}

/// A string as Go's `%q` prints it.
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `errors.NewInvalid(qualifiedKind, name, errs)`: 422 Invalid, one cause per error
/// (duplicates by message dropped, as `ToAggregate` does).
pub fn invalid(group: &str, kind: &str, name: &str, errs: &[FieldError]) -> ApiError {
    let mut seen = std::collections::BTreeSet::new();
    let errs: Vec<&FieldError> = errs.iter().filter(|e| seen.insert(e.to_string())).collect();
    let qualified = if group.is_empty() {
        kind.to_string()
    } else {
        format!("{kind}.{group}")
    };
    let aggregate = match errs.as_slice() {
        [] => String::new(),
        [one] => format!(": {one}"),
        many => format!(
            ": [{}]",
            many.iter().map(|e| e.to_string()).collect::<Vec<_>>().join(", ")
        ),
    };
    let causes: Vec<Value> = errs
        .iter()
        .map(|e| json!({"reason": e.ty.reason(), "message": e.body(), "field": e.field}))
        .collect();
    let mut details = json!({"name": name, "kind": kind, "causes": causes});
    if !group.is_empty() {
        details["group"] = json!(group);
    }
    ApiError::new(
        422,
        "Invalid",
        format!("{qualified} {} is invalid{aggregate}", go_quote(name)),
    )
    .with_details(details)
}

/// The 422 for an object of `res`.
pub fn invalid_object(res: &Resource, name: &str, errs: &[FieldError]) -> ApiError {
    invalid(res.group, res.kind, name, errs)
}

fn regex_error(msg: &str, fmt: &str, examples: &[&str]) -> String {
    if examples.is_empty() {
        return format!("{msg} (regex used for validation is '{fmt}')");
    }
    // As Go builds it: "'a', " joined by " or " (two spaces before each "or").
    let ex: String = examples
        .iter()
        .map(|e| format!("'{e}', "))
        .collect::<Vec<_>>()
        .join(" or ");
    format!("{msg} (e.g. {ex}regex used for validation is '{fmt}')")
}

fn max_len_error(n: usize) -> String {
    format!("must be no more than {n} characters")
}

fn alnum_lower(c: u8) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit()
}

fn is_dns1123_label_shape(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty() && alnum_lower(b[0]) && alnum_lower(b[b.len() - 1]) && b.iter().all(|c| alnum_lower(*c) || *c == b'-')
}

fn is_dns1123_subdomain_shape(s: &str) -> bool {
    s.split('.').all(is_dns1123_label_shape)
}

/// `IsDNS1123Label`.
pub fn dns1123_label(s: &str) -> Vec<String> {
    let mut errs = vec![];
    if s.len() > 63 {
        errs.push(max_len_error(63));
    }
    if !is_dns1123_label_shape(s) {
        if is_dns1123_subdomain_shape(s) {
            errs.push("must not contain dots".into());
        } else {
            errs.push(regex_error(
                DNS1123_LABEL_MSG,
                DNS1123_LABEL_FMT,
                &["my-name", "123-abc"],
            ));
        }
    }
    errs
}

/// `IsDNS1123Subdomain`.
pub fn dns1123_subdomain(s: &str) -> Vec<String> {
    let mut errs = vec![];
    if s.len() > 253 {
        errs.push(max_len_error(253));
    }
    if !is_dns1123_subdomain_shape(s) {
        errs.push(regex_error(
            DNS1123_SUBDOMAIN_MSG,
            DNS1123_SUBDOMAIN_FMT,
            &["example.com"],
        ));
    }
    errs
}

/// `IsDNS1035Label`.
pub fn dns1035_label(s: &str) -> Vec<String> {
    let mut errs = vec![];
    if s.len() > 63 {
        errs.push(max_len_error(63));
    }
    let b = s.as_bytes();
    let ok = !b.is_empty()
        && b[0].is_ascii_lowercase()
        && alnum_lower(b[b.len() - 1])
        && b.iter().all(|c| alnum_lower(*c) || *c == b'-');
    if !ok {
        errs.push(regex_error(
            DNS1035_LABEL_MSG,
            DNS1035_LABEL_FMT,
            &["my-name", "abc-123"],
        ));
    }
    errs
}

/// `([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]`
fn is_qualified_name_part(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

/// `IsQualifiedName`: label keys, annotation keys (lowercased), finalizers, taint keys.
pub fn qualified_name(s: &str) -> Vec<String> {
    let mut errs = vec![];
    let parts: Vec<&str> = s.split('/').collect();
    let name = match parts.as_slice() {
        [name] => *name,
        [prefix, name] => {
            if prefix.is_empty() {
                errs.push("prefix part must be non-empty".to_string());
            } else {
                errs.extend(
                    dns1123_subdomain(prefix)
                        .into_iter()
                        .map(|m| format!("prefix part {m}")),
                );
            }
            *name
        }
        _ => {
            errs.push(format!(
                "a qualified name {} with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')",
                regex_error(
                    QUALIFIED_NAME_MSG,
                    QUALIFIED_NAME_FMT,
                    &["MyName", "my.name", "123-abc"]
                )
            ));
            return errs;
        }
    };
    if name.is_empty() {
        errs.push("name part must be non-empty".into());
    } else if name.len() > 63 {
        errs.push(format!("name part {}", max_len_error(63)));
    }
    if !is_qualified_name_part(name) {
        errs.push(format!(
            "name part {}",
            regex_error(
                QUALIFIED_NAME_MSG,
                QUALIFIED_NAME_FMT,
                &["MyName", "my.name", "123-abc"]
            )
        ));
    }
    errs
}

/// `IsValidLabelValue`.
pub fn label_value(s: &str) -> Vec<String> {
    let mut errs = vec![];
    if s.len() > 63 {
        errs.push(max_len_error(63));
    }
    if !s.is_empty() && !is_qualified_name_part(s) {
        errs.push(regex_error(
            LABEL_VALUE_MSG,
            LABEL_VALUE_FMT,
            &["MyValue", "my_value", "12345"],
        ));
    }
    errs
}

/// The name rule of a kind (`ValidateNameFunc`).
fn name_rule(res: &Resource) -> fn(&str) -> Vec<String> {
    if res.group == store::RBAC_GROUP {
        return rbac::path_segment_name;
    }
    match res.plural {
        "namespaces" => dns1123_label,
        "services" => dns1035_label,
        _ => dns1123_subdomain,
    }
}

/// A generateName may end in '-' (`maskTrailingDash`).
fn mask_trailing_dash(s: &str) -> String {
    match s.strip_suffix('-') {
        Some(rest) if rest.len() > 1 => format!("{rest}a"),
        _ => s.to_string(),
    }
}

/// `ValidateLabels` at `path`.
pub fn validate_labels(labels: &Value, path: &str, errs: &mut Vec<FieldError>) {
    let Some(m) = labels.as_object() else { return };
    for (k, v) in m {
        for msg in qualified_name(k) {
            errs.push(FieldError::invalid(path, k, msg));
        }
        let v = v.as_str().unwrap_or("");
        for msg in label_value(v) {
            errs.push(FieldError::invalid(path, v, msg));
        }
    }
}

/// `ValidateAnnotations` at `path`.
fn validate_annotations(annotations: &Value, path: &str, errs: &mut Vec<FieldError>) {
    let Some(m) = annotations.as_object() else { return };
    let mut total = 0usize;
    for (k, v) in m {
        for msg in qualified_name(&k.to_lowercase()) {
            errs.push(FieldError::invalid(path, k, msg));
        }
        total += k.len() + v.as_str().map_or(0, str::len);
    }
    if total > TOTAL_ANNOTATION_SIZE {
        errs.push(FieldError::new(
            ErrorType::TooLong,
            path,
            None,
            format!("must have at most {TOTAL_ANNOTATION_SIZE} bytes"),
        ));
    }
}

/// `ValidateObjectMeta` (names, labels, annotations, finalizers).
fn validate_meta(res: &Resource, meta: &Value, errs: &mut Vec<FieldError>) {
    let rule = name_rule(res);
    if let Some(g) = meta["generateName"].as_str().filter(|g| !g.is_empty()) {
        for msg in rule(&mask_trailing_dash(g)) {
            errs.push(FieldError::invalid("metadata.generateName", g, msg));
        }
    }
    let generated = meta["generateName"].as_str().is_some_and(|g| !g.is_empty());
    match meta["name"].as_str().unwrap_or("") {
        // The name is generated before validation, from a prefix checked above.
        "" if generated => {}
        "" => errs.push(FieldError::required(
            "metadata.name",
            "name or generateName is required",
        )),
        name => {
            for msg in rule(name) {
                errs.push(FieldError::invalid("metadata.name", name, msg));
            }
        }
    }
    if res.namespaced {
        if let Some(ns) = meta["namespace"].as_str().filter(|n| !n.is_empty()) {
            for msg in dns1123_label(ns) {
                errs.push(FieldError::invalid("metadata.namespace", ns, msg));
            }
        }
    }
    validate_labels(&meta["labels"], "metadata.labels", errs);
    validate_annotations(&meta["annotations"], "metadata.annotations", errs);
    if let Some(f) = meta["finalizers"].as_array() {
        for s in f.iter().filter_map(Value::as_str) {
            for msg in qualified_name(s) {
                errs.push(FieldError::invalid("metadata.finalizers", s, msg));
            }
        }
    }
}

/// An integer field's value as Go prints it (the pointer dereferenced).
fn int_value(v: &Value) -> Option<i64> {
    v.as_i64()
}

fn validate_lease(spec: &Value, errs: &mut Vec<FieldError>) {
    if let Some(d) = int_value(&spec["leaseDurationSeconds"]).filter(|d| *d <= 0) {
        errs.push(FieldError::new(
            ErrorType::Invalid,
            "spec.leaseDurationSeconds",
            Some(d.to_string()),
            "must be greater than 0",
        ));
    }
    if let Some(t) = int_value(&spec["leaseTransitions"]).filter(|t| *t < 0) {
        errs.push(FieldError::new(
            ErrorType::Invalid,
            "spec.leaseTransitions",
            Some(t.to_string()),
            "must be greater than or equal to 0",
        ));
    }
    if spec["preferredHolder"].as_str().is_some_and(|p| !p.is_empty())
        && spec["strategy"].as_str().unwrap_or("").is_empty()
    {
        errs.push(FieldError::forbidden(
            "spec.preferredHolder",
            "may only be specified if `strategy` is defined",
        ));
    }
}

const TAINT_EFFECTS: [&str; 3] = ["NoSchedule", "PreferNoSchedule", "NoExecute"];

fn unsupported(field: &str, value: &str, supported: &[&str]) -> FieldError {
    let list = supported.iter().map(|s| go_quote(s)).collect::<Vec<_>>().join(", ");
    FieldError::new(
        ErrorType::NotSupported,
        field,
        Some(go_quote(value)),
        format!("supported values: {list}"),
    )
}

/// `validateNodeTaints`.
fn validate_taints(taints: &Value, path: &str, errs: &mut Vec<FieldError>) {
    let Some(list) = taints.as_array() else { return };
    let mut seen: Vec<(String, String)> = vec![];
    for (i, t) in list.iter().enumerate() {
        let at = format!("{path}[{i}]");
        let key = t["key"].as_str().unwrap_or("");
        let value = t["value"].as_str().unwrap_or("");
        let effect = t["effect"].as_str().unwrap_or("");
        for msg in qualified_name(key) {
            errs.push(FieldError::invalid(&format!("{at}.key"), key, msg));
        }
        let v_errs = label_value(value);
        if !v_errs.is_empty() {
            errs.push(FieldError::invalid(&format!("{at}.value"), value, v_errs.join(";")));
        }
        if effect.is_empty() {
            errs.push(FieldError::required(&format!("{at}.effect"), ""));
        } else if !TAINT_EFFECTS.contains(&effect) {
            errs.push(unsupported(&format!("{at}.effect"), effect, &TAINT_EFFECTS));
        }
        if seen.iter().any(|(k, e)| k == key && e == effect) {
            let time_added = match t["timeAdded"].as_str() {
                Some(ts) => format!("time.Date({ts})"),
                None => "(*v1.Time)(nil)".into(),
            };
            errs.push(FieldError::new(
                ErrorType::Duplicate,
                &at,
                Some(format!(
                    "core.Taint{{Key:{}, Value:{}, Effect:{}, TimeAdded:{time_added}}}",
                    go_quote(key),
                    go_quote(value),
                    go_quote(effect)
                )),
                "taints must be unique by key and effect pair",
            ));
            continue;
        }
        seen.push((key.to_string(), effect.to_string()));
    }
}

const TOLERATION_OPERATORS: [&str; 2] = ["Equal", "Exists"];

/// `ValidateTolerations` (the parts a client gets wrong).
fn validate_tolerations(tolerations: &Value, path: &str, errs: &mut Vec<FieldError>) {
    let Some(list) = tolerations.as_array() else { return };
    for (i, t) in list.iter().enumerate() {
        let at = format!("{path}[{i}]");
        let key = t["key"].as_str().unwrap_or("");
        if !key.is_empty() {
            for msg in qualified_name(key) {
                errs.push(FieldError::invalid(&format!("{at}.key"), key, msg));
            }
        }
        let op = t["operator"].as_str().unwrap_or("");
        if key.is_empty() && op != "Exists" {
            errs.push(FieldError::invalid(
                &format!("{at}.operator"),
                op,
                "operator must be Exists when `key` is empty, which means \"match all values and all keys\"",
            ));
        }
        if !op.is_empty() && !TOLERATION_OPERATORS.contains(&op) {
            errs.push(unsupported(&format!("{at}.operator"), op, &TOLERATION_OPERATORS));
        }
        if let Some(effect) = t["effect"].as_str().filter(|e| !e.is_empty()) {
            if !TAINT_EFFECTS.contains(&effect) {
                errs.push(unsupported(&format!("{at}.effect"), effect, &TAINT_EFFECTS));
            }
        }
    }
}

/// The pod spec fields a client writes (a node-shell or debug pod): containers with a
/// DNS-1123 label name and an image, the node selector's labels, tolerations.
fn validate_pod_spec(spec: &Value, path: &str, errs: &mut Vec<FieldError>) {
    match spec["containers"].as_array() {
        None => errs.push(FieldError::required(&format!("{path}.containers"), "")),
        Some(c) if c.is_empty() => errs.push(FieldError::required(&format!("{path}.containers"), "")),
        Some(c) => {
            for (i, ctr) in c.iter().enumerate() {
                let at = format!("{path}.containers[{i}]");
                match ctr["name"].as_str().unwrap_or("") {
                    "" => errs.push(FieldError::required(&format!("{at}.name"), "")),
                    n => {
                        for msg in dns1123_label(n) {
                            errs.push(FieldError::invalid(&format!("{at}.name"), n, msg));
                        }
                    }
                }
                if ctr["image"].as_str().unwrap_or("").is_empty() {
                    errs.push(FieldError::required(&format!("{at}.image"), ""));
                }
            }
        }
    }
    for key in ["initContainers", "containers"] {
        for (i, ctr) in spec[key].as_array().into_iter().flatten().enumerate() {
            validate_resources(&ctr["resources"], &format!("{path}.{key}[{i}].resources"), errs);
        }
    }
    validate_labels(&spec["nodeSelector"], &format!("{path}.nodeSelector"), errs);
    validate_tolerations(&spec["tolerations"], &format!("{path}.tolerations"), errs);
}

/// A container's requests and limits (`ValidateResourceRequirements`): no quantity is negative,
/// and no request is more than its limit.
fn validate_resources(resources: &Value, path: &str, errs: &mut Vec<FieldError>) {
    let quantities = |kind: &str| -> Vec<(String, String, i128)> {
        resources[kind]
            .as_object()
            .into_iter()
            .flatten()
            .filter_map(|(k, v)| {
                let text = quantity_text(v)?;
                let milli = crate::resources::parse_quantity(&text).ok()?;
                Some((k.clone(), text, milli))
            })
            .collect()
    };
    let (limits, requests) = (quantities("limits"), quantities("requests"));
    for (kind, list) in [("limits", &limits), ("requests", &requests)] {
        for (k, text, milli) in list {
            if *milli < 0 {
                errs.push(FieldError::invalid(
                    &format!("{path}.{kind}[{k}]"),
                    text,
                    "must be greater than or equal to 0",
                ));
            }
        }
    }
    for (k, text, milli) in &requests {
        if let Some((_, limit, lim)) = limits.iter().find(|(l, _, _)| l == k) {
            if milli > lim {
                errs.push(FieldError::invalid(
                    &format!("{path}.requests"),
                    text,
                    format!("must be less than or equal to {k} limit of {limit}"),
                ));
            }
        }
    }
}

/// A quantity as JSON carries it: a string, or a number.
fn quantity_text(v: &Value) -> Option<String> {
    v.as_str()
        .map(str::to_string)
        .or_else(|| v.as_number().map(|n| n.to_string()))
}

/// The pod spec of an object: a pod's own, a workload's template.
fn pod_spec_of<'a>(res: &Resource, obj: &'a Value) -> Option<&'a Value> {
    match *res {
        store::PODS => Some(&obj["spec"]),
        store::DEPLOYMENTS | store::REPLICASETS | store::DAEMONSETS | store::STATEFULSETS | store::JOBS => {
            Some(&obj["spec"]["template"]["spec"])
        }
        store::CRONJOBS => Some(&obj["spec"]["jobTemplate"]["spec"]["template"]["spec"]),
        _ => None,
    }
}

/// kube-apiserver cannot decode a resource quantity that is not one: the whole object is a
/// 400, before any field is validated.
fn undecodable_quantity(res: &Resource, obj: &Value) -> Option<ApiError> {
    let spec = pod_spec_of(res, obj)?;
    let bad = ["initContainers", "containers"]
        .iter()
        .flat_map(|k| spec[*k].as_array().into_iter().flatten())
        .flat_map(|c| ["requests", "limits"].map(|kind| &c["resources"][kind]))
        .flat_map(|m| m.as_object().into_iter().flatten())
        .any(|(_, v)| quantity_text(v).is_none_or(|t| crate::resources::parse_quantity(&t).is_err()));
    bad.then(|| {
        ApiError::bad_request(format!(
            "{kind} in version \"{v}\" cannot be handled as a {kind}: quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'",
            kind = res.kind,
            v = res.version
        ))
    })
}

/// Every field error of `obj`, a `res` object about to be stored.
pub fn validate(res: &Resource, obj: &Value) -> Vec<FieldError> {
    let mut errs = vec![];
    validate_meta(res, &obj["metadata"], &mut errs);
    let spec = &obj["spec"];
    match *res {
        store::LEASES => validate_lease(spec, &mut errs),
        store::NODES => validate_taints(&spec["taints"], "spec.taints", &mut errs),
        store::PODS => validate_pod_spec(spec, "spec", &mut errs),
        store::DEPLOYMENTS | store::REPLICASETS | store::DAEMONSETS | store::STATEFULSETS | store::JOBS => {
            let tmpl = &spec["template"];
            validate_labels(&tmpl["metadata"]["labels"], "spec.template.metadata.labels", &mut errs);
            if tmpl["spec"].is_object() {
                validate_pod_spec(&tmpl["spec"], "spec.template.spec", &mut errs);
            }
        }
        _ => rbac::validate(res, obj, &mut errs),
    }
    errs
}

/// `validate` of an update from `old` to `new`, with the checks of what may not change,
/// as the API server's answer.
pub fn check_update(res: &Resource, old: &Value, new: &Value) -> Result<(), ApiError> {
    check(res, new)?;
    let mut errs = vec![];
    rbac::validate_update(res, old, new, &mut errs);
    if errs.is_empty() {
        return Ok(());
    }
    let name = new["metadata"]["name"].as_str().unwrap_or("");
    Err(invalid_object(res, name, &errs))
}

/// `validate`, as the API server's answer.
pub fn check(res: &Resource, obj: &Value) -> Result<(), ApiError> {
    if let Some(e) = undecodable_quantity(res, obj) {
        return Err(e);
    }
    let errs = validate(res, obj);
    if errs.is_empty() {
        return Ok(());
    }
    let name = obj["metadata"]["name"].as_str().unwrap_or("");
    Err(invalid_object(res, name, &errs))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(res: &Resource, obj: Value) -> String {
        check(res, &obj).unwrap_err().message
    }

    #[test]
    fn a_configmap_name_with_an_underscore_is_the_apiserver_message() {
        let e = check(&store::CONFIGMAPS, &json!({"metadata": {"name": "Bad_Name"}})).unwrap_err();
        assert_eq!(e.code, 422);
        assert_eq!(
            e.message,
            r#"ConfigMap "Bad_Name" is invalid: metadata.name: Invalid value: "Bad_Name": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"#
        );
        let b = e.body();
        assert_eq!(b["reason"], "Invalid");
        assert_eq!(b["details"]["kind"], "ConfigMap");
        assert_eq!(b["details"]["causes"][0]["field"], "metadata.name");
        assert_eq!(b["details"]["causes"][0]["reason"], "FieldValueInvalid");
    }

    #[test]
    fn label_values_and_keys() {
        assert!(label_value("").is_empty());
        assert!(label_value("a.b_c-1").is_empty());
        assert_eq!(label_value("2025-03-01T02:00:00Z").len(), 1);
        assert_eq!(label_value(&"a".repeat(64)), vec!["must be no more than 63 characters"]);
        assert!(qualified_name("kubernetes.io/os").is_empty());
        assert!(qualified_name("a/b/c")[0].starts_with("a qualified name must consist of"));
        assert_eq!(qualified_name("/x"), vec!["prefix part must be non-empty"]);
        assert!(!qualified_name("Bad Key").is_empty());
        let m = message(
            &store::NODES,
            json!({"metadata": {"name": "n", "labels": {"when": "a b"}}}),
        );
        assert!(
            m.starts_with(
                r#"Node "n" is invalid: metadata.labels: Invalid value: "a b": a valid label must be an empty string"#
            ),
            "{m}"
        );
    }

    #[test]
    fn container_requests_and_limits_are_quantities_within_bounds() {
        let pod = |resources: Value| json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "a", "image": "i", "resources": resources}]}});
        assert!(check(
            &store::PODS,
            &pod(json!({"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"cpu": 1}}))
        )
        .is_ok());
        assert_eq!(
            message(
                &store::PODS,
                pod(json!({"requests": {"cpu": "2"}, "limits": {"cpu": "1"}}))
            ),
            r#"Pod "p" is invalid: spec.containers[0].resources.requests: Invalid value: "2": must be less than or equal to cpu limit of 1"#
        );
        assert_eq!(
            message(&store::PODS, pod(json!({"requests": {"memory": "-1Mi"}}))),
            r#"Pod "p" is invalid: spec.containers[0].resources.requests[memory]: Invalid value: "-1Mi": must be greater than or equal to 0"#
        );
        let e = check(&store::PODS, &pod(json!({"requests": {"cpu": "lots"}}))).unwrap_err();
        assert_eq!(e.code, 400);
        assert!(
            e.message
                .starts_with(r#"Pod in version "v1" cannot be handled as a Pod: quantities must match"#),
            "{}",
            e.message
        );
        let deploy = json!({"metadata": {"name": "d"}, "spec": {"template": {"spec": {"containers": [
            {"name": "a", "image": "i", "resources": {"limits": {"memory": "1GB"}}}]}}}});
        assert_eq!(check(&store::DEPLOYMENTS, &deploy).unwrap_err().code, 400);
    }

    #[test]
    fn several_errors_are_a_bracketed_list() {
        let m = message(
            &store::LEASES,
            json!({"metadata": {"name": "l"}, "spec": {"leaseDurationSeconds": -5, "leaseTransitions": -1}}),
        );
        assert_eq!(
            m,
            r#"Lease.coordination.k8s.io "l" is invalid: [spec.leaseDurationSeconds: Invalid value: -5: must be greater than 0, spec.leaseTransitions: Invalid value: -1: must be greater than or equal to 0]"#
        );
    }

    #[test]
    fn taints() {
        let m = message(
            &store::NODES,
            json!({"metadata": {"name": "n"}, "spec": {"taints": [{"key": "k", "effect": "Sometimes"}]}}),
        );
        assert_eq!(
            m,
            r#"Node "n" is invalid: spec.taints[0].effect: Unsupported value: "Sometimes": supported values: "NoSchedule", "PreferNoSchedule", "NoExecute""#
        );
        let m = message(
            &store::NODES,
            json!({"metadata": {"name": "n"}, "spec": {"taints": [{"key": "k", "effect": "NoSchedule"}, {"key": "k", "value": "v", "effect": "NoSchedule"}]}}),
        );
        assert!(m.contains("spec.taints[1]: Duplicate value: core.Taint{Key:\"k\", Value:\"v\", Effect:\"NoSchedule\", TimeAdded:(*v1.Time)(nil)}: taints must be unique by key and effect pair"), "{m}");
        let m = message(
            &store::NODES,
            json!({"metadata": {"name": "n"}, "spec": {"taints": [{"key": "k"}]}}),
        );
        assert_eq!(m, r#"Node "n" is invalid: spec.taints[0].effect: Required value"#);
    }

    #[test]
    fn names_by_kind_and_annotations() {
        let m = message(&store::NAMESPACES, json!({"metadata": {"name": "a.b"}}));
        assert_eq!(
            m,
            r#"Namespace "a.b" is invalid: metadata.name: Invalid value: "a.b": must not contain dots"#
        );
        assert!(check(&store::CONFIGMAPS, &json!({"metadata": {"name": "a.b"}})).is_ok());
        assert!(check(
            &store::CONFIGMAPS,
            &json!({"metadata": {"generateName": "web-"}, "data": {}})
        )
        .is_ok());
        assert!(check(&store::CONFIGMAPS, &json!({"metadata": {"generateName": "Web-"}})).is_err());
        assert!(check(&store::CONFIGMAPS, &json!({"metadata": {}})).is_err());
        assert!(check(
            &store::CONFIGMAPS,
            &json!({"metadata": {"name": "x", "generateName": "web-"}})
        )
        .is_ok());
        let big = "x".repeat(TOTAL_ANNOTATION_SIZE);
        let m = message(
            &store::CONFIGMAPS,
            json!({"metadata": {"name": "c", "annotations": {"a": big}}}),
        );
        assert_eq!(
            m,
            r#"ConfigMap "c" is invalid: metadata.annotations: Too long: must have at most 262144 bytes"#
        );
        let m = message(
            &store::CONFIGMAPS,
            json!({"metadata": {"name": "c", "annotations": {"Bad Key": "1"}}}),
        );
        assert!(
            m.starts_with(
                r#"ConfigMap "c" is invalid: metadata.annotations: Invalid value: "Bad Key": name part must consist of"#
            ),
            "{m}"
        );
        // Annotation keys are checked case-insensitively.
        assert!(check(
            &store::CONFIGMAPS,
            &json!({"metadata": {"name": "c", "annotations": {"Example.COM/Key": "1"}}})
        )
        .is_ok());
    }
}
