//! Writes: create, update and patch (merge, strategic merge, JSON patch, server-side apply),
//! with `managedFields`, field validation and the checks kube-apiserver makes.

use super::*;

pub(super) fn record_lease(s: &Shared, obj: &Value, verb: &str) {
    let holder = obj["spec"]["holderIdentity"].as_str().unwrap_or("");
    s.events.record(
        kinds::LEASE,
        None,
        Some(&pods::key(obj)),
        format!("{verb} holder={holder}"),
    );
}

/// Who writes, for `metadata.managedFields`.
pub(super) fn writer(q: &Query, headers: &HeaderMap, t: &Target) -> managed::Writer {
    let ua = headers.get(header::USER_AGENT).and_then(|v| v.to_str().ok());
    managed::Writer::of(q.get("fieldManager"), ua, &t.res, t.sub.as_deref())
}

/// `ValidatePatchOptions`: apply needs a field manager, `force` is for apply only.
pub(super) fn check_patch_options(pt: patch::PatchType, q: &Query) -> Result<(), ApiError> {
    let mut errs = vec![];
    if pt == patch::PatchType::Apply {
        if q.get("fieldManager").unwrap_or("").is_empty() {
            errs.push(validation::FieldError::required(
                "fieldManager",
                "is required for apply patch",
            ));
        }
    } else if q.get("force").is_some() {
        errs.push(validation::FieldError::forbidden(
            "force",
            "may not be specified for non-apply patch",
        ));
    }
    if errs.is_empty() {
        return Ok(());
    }
    Err(validation::invalid("meta.k8s.io", "PatchOptions", "", &errs))
}

/// The managedFields `cur` had before a write (clients cannot set them directly here).
pub(super) fn keep_managed_fields(old: Option<&Value>, cur: &mut Value) {
    let Some(meta) = cur["metadata"].as_object_mut() else {
        return;
    };
    match old.map(|o| &o["metadata"]["managedFields"]).filter(|m| !m.is_null()) {
        Some(m) => {
            meta.insert("managedFields".into(), m.clone());
        }
        None => {
            meta.remove("managedFields");
        }
    }
}

pub(super) fn create(
    s: &Arc<Shared>,
    t: &Target,
    q: &Query,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response, ApiError> {
    check_json_body(headers)?;
    let obj = parse_object(body, &t.res)?;
    create_object(s, t, q, headers, obj, None)
}

/// Create `obj`; `applied`: by server-side apply of this writer (else an `Update`).
pub(super) fn create_object(
    s: &Arc<Shared>,
    t: &Target,
    q: &Query,
    headers: &HeaderMap,
    mut obj: Value,
    applied: Option<&managed::Writer>,
) -> Result<Response, ApiError> {
    set_namespace(&mut obj, t.ns.as_deref(), &t.res)?;
    let name = obj["metadata"]["name"].as_str().unwrap_or("").to_string();
    if t.res.namespaced {
        let ns = t.ns.as_deref().unwrap_or("default");
        match s.store.get(store::NAMESPACES, None, ns) {
            None => return Err(ApiError::not_found(&store::NAMESPACES, ns)),
            Some(n) if n["metadata"]["deletionTimestamp"].is_string() => {
                return Err(ApiError::new(
                    403,
                    "Forbidden",
                    format!(
                        "{} \"{name}\" is forbidden: unable to create new content in namespace {ns} because it is being terminated",
                        status::qualified(&t.res)
                    ),
                )
                .with_details(json!({"name": name, "group": t.res.group, "kind": t.res.plural,
                    "causes": [{"reason": "NamespaceTerminating", "message": format!("namespace {ns} is being terminated"), "field": "metadata.namespace"}]})))
            }
            Some(_) => {}
        }
    }
    validate_shape(&obj).map_err(|e| ApiError::invalid(&t.res, &name, &e))?;
    let warnings = validate_fields(q, &t.res, &mut obj)?;
    keep_managed_fields(None, &mut obj);
    if let Some(w) = applied {
        obj = managed::apply(&t.res, None, &obj, w, false).map_err(|c| managed::conflict_error(&c))?;
    }
    defaults::prepare_for_create(&t.res, &mut obj);
    defaults::apply(t.res.plural, &mut obj);
    if applied.is_none() {
        managed::record_update(&t.res, None, &mut obj, &writer(q, headers, t));
    }
    validation::check(&t.res, &obj)?;
    if q.dry_run() {
        if !name.is_empty() && s.store.get(t.res, t.ns.as_deref(), &name).is_some() {
            return Err(ApiError::already_exists(&t.res, &name));
        }
        obj["apiVersion"] = json!(t.res.api_version());
        obj["kind"] = json!(t.res.kind);
        return Ok(with_warnings(json_response(StatusCode::CREATED, &obj), &warnings));
    }
    let created = s
        .store
        .create(t.res, obj)
        .map_err(|e| ApiError::from_store(&t.res, &name, e))?;
    if t.res == store::LEASES {
        record_lease(s, &created, "created");
    }
    Ok(with_warnings(json_response(StatusCode::CREATED, &created), &warnings))
}

/// Keep what a write to the main resource (or to `/status`) may not change.
pub(super) fn merge_for_subresource(res: &Resource, sub: Option<&str>, old: &Value, new: &mut Value) {
    if sub == Some("status") {
        let st = new.get("status").cloned();
        *new = old.clone();
        match st {
            Some(st) => new["status"] = st,
            None => {
                if let Some(m) = new.as_object_mut() {
                    m.remove("status");
                }
            }
        }
        return;
    }
    if store::has_status(res) {
        match old.get("status") {
            Some(st) => new["status"] = st.clone(),
            None => {
                if let Some(m) = new.as_object_mut() {
                    m.remove("status");
                }
            }
        }
    }
    // Only the API server sets these.
    for k in ["deletionTimestamp", "deletionGracePeriodSeconds", "generation"] {
        match old["metadata"].get(k) {
            Some(v) => new["metadata"][k] = v.clone(),
            None => {
                if let Some(m) = new["metadata"].as_object_mut() {
                    m.remove(k);
                }
            }
        }
    }
}

pub(super) fn update(
    s: &Arc<Shared>,
    t: &Target,
    name: &str,
    q: &Query,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response, ApiError> {
    check_json_body(headers)?;
    let mut obj = parse_object(body, &t.res)?;
    set_namespace(&mut obj, t.ns.as_deref(), &t.res)?;
    match obj["metadata"]["name"].as_str() {
        Some(n) if !n.is_empty() && n != name => {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({n}) does not match the name on the URL ({name})"
            )))
        }
        _ => obj["metadata"]["name"] = json!(name),
    }
    validate_shape(&obj).map_err(|e| ApiError::invalid(&t.res, name, &e))?;
    let warnings = if t.sub.is_none() {
        validate_fields(q, &t.res, &mut obj)?
    } else {
        vec![]
    };
    let expected = obj["metadata"]["resourceVersion"]
        .as_str()
        .filter(|r| !r.is_empty())
        .map(str::to_string);
    let ns = t.ns.as_deref();
    let sub = t.sub.as_deref();
    if s.store.get(t.res, ns, name).is_none() {
        // Leases and events may be created by an update, as the API server allows.
        if (t.res == store::LEASES || t.res == store::EVENTS) && expected.is_none() && sub.is_none() {
            return create(s, t, q, headers, body);
        }
        return Err(ApiError::not_found(&t.res, name));
    }
    if expected.is_none() && !allows_unconditional_update(&t.res) {
        return Err(must_specify_resource_version(&t.res, name));
    }
    let w = writer(q, headers, t);
    if q.dry_run() {
        let cur = s
            .store
            .get(t.res, ns, name)
            .ok_or_else(|| ApiError::not_found(&t.res, name))?;
        if expected
            .as_deref()
            .is_some_and(|e| cur["metadata"]["resourceVersion"].as_str() != Some(e))
        {
            return Err(ApiError::from_store(
                &t.res,
                name,
                store::StoreError::Conflict {
                    plural: String::new(),
                    name: name.into(),
                },
            ));
        }
        merge_for_subresource(&t.res, sub, &cur, &mut obj);
        keep_managed_fields(Some(&cur), &mut obj);
        managed::record_update(&t.res, Some(&cur), &mut obj, &w);
        validation::check_update(&t.res, &cur, &obj)?;
        return Ok(with_warnings(json_response(StatusCode::OK, &obj), &warnings));
    }
    let refused = std::cell::RefCell::new(None);
    let updated = s
        .store
        .update_with(t.res, ns, name, expected.as_deref(), |cur| {
            let old = cur.clone();
            *cur = obj;
            merge_for_subresource(&t.res, sub, &old, cur);
            validate_shape(cur).map_err(store::StoreError::Invalid)?;
            keep_managed_fields(Some(&old), cur);
            managed::record_update(&t.res, Some(&old), cur, &w);
            refuse_invalid(&t.res, &old, cur, &refused)
        })
        .map_err(|e| refused.take().unwrap_or_else(|| ApiError::from_store(&t.res, name, e)))?;
    if t.res == store::LEASES {
        record_lease(s, &updated, "updated");
    }
    Ok(with_warnings(json_response(StatusCode::OK, &updated), &warnings))
}

/// Validate an object inside a store update: the refusal is kept in `refused` (the
/// store's error only says that the closure failed).
pub(super) fn refuse_invalid(
    res: &Resource,
    old: &Value,
    obj: &Value,
    refused: &std::cell::RefCell<Option<ApiError>>,
) -> Result<(), store::StoreError> {
    validation::check_update(res, old, obj).map_err(|e| {
        let msg = e.message.clone();
        *refused.borrow_mut() = Some(e);
        store::StoreError::Invalid(msg)
    })
}

/// Server-side field validation (`?fieldValidation=`, default `Warn`): unknown fields are
/// dropped from `obj`; with `Strict` they are a 400, with `Warn` warnings (returned, for
/// `Warning` headers). Strategic-merge directives (`$patch`, `$setElementOrder/...`) are
/// not fields.
pub(super) fn validate_fields(q: &Query, res: &Resource, obj: &mut Value) -> Result<Vec<String>, ApiError> {
    let mode = q.get("fieldValidation").unwrap_or("Warn");
    if !matches!(mode, "Ignore" | "Warn" | "Strict") {
        return Err(ApiError::bad_request(format!(
            "fieldValidation: Unsupported value: \"{mode}\": supported values: \"Ignore\", \"Strict\", \"Warn\""
        )));
    }
    let unknown: Vec<String> = openapi::unknown_fields(res, obj)
        .into_iter()
        .filter(|f| !f.rsplit('.').next().unwrap_or("").starts_with('$'))
        .collect();
    if unknown.is_empty() || mode == "Ignore" {
        for f in &unknown {
            prune(obj, f);
        }
        return Ok(vec![]);
    }
    if mode == "Strict" {
        let list = unknown
            .iter()
            .map(|f| format!("unknown field \"{f}\""))
            .collect::<Vec<_>>()
            .join(", ");
        return Err(ApiError::bad_request(format!(
            "{kind} in version \"{v}\" cannot be handled as a {kind}: strict decoding error: {list}",
            kind = res.kind,
            v = res.version
        )));
    }
    for f in &unknown {
        prune(obj, f);
    }
    Ok(unknown.iter().map(|f| format!("unknown field \"{f}\"")).collect())
}

/// Remove `a.b[0].c` from an object.
pub(super) fn prune(obj: &mut Value, field: &str) {
    let mut pointer = String::new();
    for part in field.split('.') {
        match part.split_once('[') {
            Some((k, idx)) => {
                pointer.push('/');
                pointer.push_str(k);
                pointer.push('/');
                pointer.push_str(idx.trim_end_matches(']'));
            }
            None => {
                pointer.push('/');
                pointer.push_str(part);
            }
        }
    }
    let Some((parent, key)) = pointer.rsplit_once('/') else {
        return;
    };
    if let Some(m) = obj.pointer_mut(parent).and_then(Value::as_object_mut) {
        m.remove(key);
    }
}

/// Add `Warning: 299 - "..."` headers, as the API server does.
pub(super) fn with_warnings(mut resp: Response, warnings: &[String]) -> Response {
    for w in warnings {
        let v = format!("299 - {}", serde_json::Value::String(w.clone()));
        if let Ok(h) = axum::http::HeaderValue::from_str(&v) {
            resp.headers_mut().append("Warning", h);
        }
    }
    resp
}

/// Kinds whose update strategy refuses a PUT without `metadata.resourceVersion`
/// (`AllowUnconditionalUpdate() == false` in kube-apiserver): Leases, so that two lock
/// holders can never silently overwrite each other.
pub(super) fn allows_unconditional_update(res: &Resource) -> bool {
    *res != store::LEASES
}

/// What the generic registry answers to such an update.
pub(super) fn must_specify_resource_version(res: &Resource, name: &str) -> ApiError {
    let why = "Invalid value: 0x0: must be specified for an update";
    let qualified = status::qualified(res);
    ApiError::new(
        422,
        "Invalid",
        format!("{qualified} \"{name}\" is invalid: metadata.resourceVersion: {why}"),
    )
    .with_details(json!({
        "name": name, "group": res.group, "kind": res.plural,
        "causes": [{"reason": "FieldValueInvalid", "message": why, "field": "metadata.resourceVersion"}],
    }))
}

pub(super) fn patch(
    s: &Arc<Shared>,
    t: &Target,
    name: &str,
    q: &Query,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response, ApiError> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let pt = patch::PatchType::from_content_type(ct).ok_or_else(|| ApiError::unsupported_media_type(ct))?;
    check_patch_options(pt, q)?;
    let mut p = patch::decode(pt, body).map_err(ApiError::bad_request)?;
    let warnings = if pt != patch::PatchType::Json && t.sub.is_none() && p.is_object() {
        validate_fields(q, &t.res, &mut p)?
    } else {
        vec![]
    };
    let ns = t.ns.as_deref();
    let sub = t.sub.as_deref();
    let w = writer(q, headers, t);
    let apply = pt == patch::PatchType::Apply;
    let force = q.flag("force");
    let expected = if pt == patch::PatchType::Json {
        None
    } else {
        p["metadata"]["resourceVersion"]
            .as_str()
            .filter(|r| !r.is_empty())
            .map(str::to_string)
    };
    if s.store.get(t.res, ns, name).is_none() {
        if apply && sub.is_none() {
            let mut obj = p.clone();
            if !obj.is_object() || !(obj["metadata"].is_object() || obj["metadata"].is_null()) {
                return Err(ApiError::bad_request(
                    "an applied configuration must be an object with object metadata",
                ));
            }
            obj["metadata"]["name"] = json!(name);
            return create_object(s, t, q, headers, obj, Some(&w));
        }
        return Err(ApiError::not_found(&t.res, name));
    }
    if apply && !p.is_object() {
        return Err(ApiError::bad_request("an applied configuration must be an object"));
    }
    let refused = std::cell::RefCell::new(None);
    let compute = |cur: &mut Value| -> Result<(), store::StoreError> {
        let old = cur.clone();
        if apply {
            match managed::apply(&t.res, Some(&old), &p, &w, force) {
                Ok(v) => *cur = v,
                Err(c) => {
                    let e = managed::conflict_error(&c);
                    let msg = e.message.clone();
                    *refused.borrow_mut() = Some(e);
                    return Err(store::StoreError::Invalid(msg));
                }
            }
        } else {
            patch::apply(pt, cur, &p).map_err(store::StoreError::Invalid)?;
        }
        validate_shape(cur).map_err(store::StoreError::Invalid)?;
        let recorded = cur["metadata"]["managedFields"].clone();
        merge_for_subresource(&t.res, sub, &old, cur);
        validate_shape(cur).map_err(store::StoreError::Invalid)?;
        if apply {
            cur["metadata"]["managedFields"] = recorded;
        } else {
            keep_managed_fields(Some(&old), cur);
            managed::record_update(&t.res, Some(&old), cur, &w);
        }
        refuse_invalid(&t.res, &old, cur, &refused)
    };
    let fail = |e| refused.take().unwrap_or_else(|| ApiError::from_store(&t.res, name, e));
    if q.dry_run() {
        let mut cur = s
            .store
            .get(t.res, ns, name)
            .ok_or_else(|| ApiError::not_found(&t.res, name))?;
        compute(&mut cur).map_err(fail)?;
        return Ok(with_warnings(json_response(StatusCode::OK, &cur), &warnings));
    }
    let updated = s
        .store
        .update_with(t.res, ns, name, expected.as_deref(), compute)
        .map_err(fail)?;
    if t.res == store::LEASES {
        record_lease(s, &updated, "patched");
    }
    Ok(with_warnings(json_response(StatusCode::OK, &updated), &warnings))
}
