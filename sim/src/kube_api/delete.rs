//! Deletes: one object (pods gracefully, namespaces through Terminating) or a collection,
//! with DeleteOptions' preconditions and `dryRun`.

use super::*;

pub(super) fn delete_opts(q: &Query, body: &[u8]) -> Result<DeleteOpts, ApiError> {
    let mut opts = DeleteOpts {
        grace: q.int("gracePeriodSeconds")?,
        ..Default::default()
    };
    if !body.iter().all(u8::is_ascii_whitespace) {
        let v: Value = serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("the DeleteOptions body is not valid JSON: {e}")))?;
        if let Some(g) = v["gracePeriodSeconds"].as_i64() {
            opts.grace = Some(g);
        }
        opts.uid = v["preconditions"]["uid"].as_str().map(str::to_string);
        opts.resource_version = v["preconditions"]["resourceVersion"].as_str().map(str::to_string);
        opts.dry_run = body_dry_run(&v)?;
    }
    opts.dry_run |= q.dry_run();
    Ok(opts)
}

pub(super) fn delete_one(
    s: &Arc<Shared>,
    res: &Resource,
    ns: Option<&str>,
    name: &str,
    opts: &DeleteOpts,
) -> Result<Value, ApiError> {
    if *res == store::PODS {
        return pods::delete_pod(s, ns.unwrap_or("default"), name, opts);
    }
    let cur = s
        .store
        .get(*res, ns, name)
        .ok_or_else(|| ApiError::not_found(res, name))?;
    pods::check_preconditions(res, &cur, opts)?;
    if *res == store::NAMESPACES {
        // Terminating until the namespace controller has emptied it (controllers/namespaces.rs).
        return s
            .store
            .update_with(*res, None, name, None, |o| {
                if o["metadata"]["deletionTimestamp"].is_null() {
                    o["metadata"]["deletionTimestamp"] = json!(crate::time::now_rfc3339());
                    o["metadata"]["deletionGracePeriodSeconds"] = json!(0);
                }
                o["status"]["phase"] = json!("Terminating");
                Ok(())
            })
            .map_err(|e| ApiError::from_store(res, name, e));
    }
    let removed = s
        .store
        .remove(*res, ns, name)
        .map_err(|e| ApiError::from_store(res, name, e))?;
    if *res == store::LEASES {
        record_lease(s, &removed, "deleted");
    }
    Ok(removed)
}

pub(super) fn delete(s: &Arc<Shared>, t: &Target, name: &str, q: &Query, body: &[u8]) -> Result<Response, ApiError> {
    let opts = delete_opts(q, body)?;
    let ns = t.ns.as_deref();
    if opts.dry_run {
        let cur = s
            .store
            .get(t.res, ns, name)
            .ok_or_else(|| ApiError::not_found(&t.res, name))?;
        pods::check_preconditions(&t.res, &cur, &opts)?;
        return Ok(json_response(StatusCode::OK, &cur));
    }
    let obj = delete_one(s, &t.res, ns, name, &opts)?;
    Ok(json_response(StatusCode::OK, &obj))
}

pub(super) fn delete_collection(s: &Arc<Shared>, t: &Target, q: &Query, body: &[u8]) -> Result<Response, ApiError> {
    let opts = delete_opts(q, body)?;
    let (labels, fields) = selectors(q, &t.res)?;
    let items: Vec<Value> = s
        .store
        .list(t.res, t.ns.as_deref())
        .into_iter()
        .filter(|o| labels.matches(&o["metadata"]["labels"]) && fields.matches(o))
        .collect();
    let mut deleted = vec![];
    for o in &items {
        let (ns, name) = object_key(o);
        let ns = if t.res.namespaced { Some(ns.as_str()) } else { None };
        if opts.dry_run {
            deleted.push(o.clone());
            continue;
        }
        match delete_one(s, &t.res, ns, &name, &opts) {
            Ok(v) => deleted.push(v),
            Err(e) if e.code == 404 => {}
            Err(e) => return Err(e),
        }
    }
    Ok(json_response(
        StatusCode::OK,
        &json!({"kind": format!("{}List", t.res.kind), "apiVersion": t.res.api_version(),
                "metadata": {"resourceVersion": s.store.resource_version().to_string()}, "items": deleted}),
    ))
}
