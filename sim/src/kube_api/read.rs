//! Reads: one object in the negotiated rendering, lists (selectors, `limit` and `continue`,
//! `resourceVersion` semantics) and watches.

use super::*;

/// One object in the negotiated form.
pub(super) fn render_one(res: &Resource, obj: &Value, output: Output, code: StatusCode) -> Response {
    match output {
        Output::Json => json_response(code, obj),
        Output::Table { version, include } => {
            let rv = obj["metadata"]["resourceVersion"].clone();
            let t = printers::table(
                res,
                std::slice::from_ref(obj),
                include,
                true,
                version,
                json!({"resourceVersion": rv}),
            );
            typed_response(
                code,
                &format!("application/json;as=Table;v={version};g=meta.k8s.io"),
                &t,
            )
        }
        Output::Meta { version } => typed_response(
            code,
            &format!("application/json;as=PartialObjectMetadata;v={version};g=meta.k8s.io"),
            &printers::partial_metadata(obj, version),
        ),
    }
}

pub(super) fn object_key(obj: &Value) -> (String, String) {
    (
        obj["metadata"]["namespace"].as_str().unwrap_or("").to_string(),
        obj["metadata"]["name"].as_str().unwrap_or("").to_string(),
    )
}

pub(super) fn selectors(q: &Query, res: &Resource) -> Result<(LabelSelector, FieldSelector), ApiError> {
    let labels = LabelSelector::parse(q.get("labelSelector").unwrap_or(""))
        .map_err(|e| ApiError::bad_request(format!("invalid labelSelector: {e}")))?;
    let fields = FieldSelector::parse(q.get("fieldSelector").unwrap_or(""))
        .map_err(|e| ApiError::bad_request(format!("invalid fieldSelector: {e}")))?
        .for_resource(res)
        .map_err(ApiError::bad_request)?;
    Ok((labels, fields))
}

/// A continue token as kube-apiserver's: the list's resourceVersion and the key after which
/// the next page starts. `rv` -1 (given with a 410 for a token that is too old) continues at
/// the latest state.
pub(super) fn encode_continue(rv: i64, last: &(String, String)) -> String {
    let start = format!("{}/{}\u{0}", last.0, last.1);
    let token = json!({"v": "meta.k8s.io/v1", "rv": rv, "start": start});
    base64::engine::general_purpose::STANDARD.encode(token.to_string())
}

pub(super) fn decode_continue(token: &str) -> Result<(i64, (String, String)), ApiError> {
    let bad =
        |why: &str| ApiError::bad_request(format!("invalid continue token: {why}; list again without `continue`"));
    let raw = base64::engine::general_purpose::STANDARD
        .decode(token)
        .map_err(|_| bad("not base64"))?;
    let v: Value = serde_json::from_slice(&raw).map_err(|_| bad("not a continue token"))?;
    let rv = v["rv"]
        .as_i64()
        .filter(|rv| *rv == -1 || *rv > 0)
        .ok_or_else(|| bad("no resourceVersion"))?;
    let start = v["start"].as_str().ok_or_else(|| bad("no start key"))?;
    let start = start.trim_end_matches('\u{0}');
    let (ns, name) = start.split_once('/').ok_or_else(|| bad("malformed start key"))?;
    Ok((rv, (ns.to_string(), name.to_string())))
}

/// Which state a list reads, from `resourceVersion`, `resourceVersionMatch` and `continue`,
/// checked as kube-apiserver checks them (ValidateListOptions: 422 on the ListOptions).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ListRead {
    /// The latest state (no resourceVersion, `0`, or a continue token's -1).
    Latest,
    /// At least this fresh (`resourceVersion=N`, alone or with `NotOlderThan`).
    NotOlderThan(u64),
    /// Exactly this state (`resourceVersionMatch=Exact`, or a continue token's resourceVersion).
    Exact(u64),
}

pub(super) fn list_read(q: &Query) -> Result<ListRead, ApiError> {
    let rv = q.get("resourceVersion").filter(|v| !v.is_empty());
    let matching = q.get("resourceVersionMatch").filter(|v| !v.is_empty());
    let cont = q.get("continue").filter(|v| !v.is_empty());
    if let Some(m) = matching {
        let mut why: Vec<(&str, String)> = vec![];
        if rv.is_none() {
            why.push((
                "FieldValueForbidden",
                "Forbidden: resourceVersionMatch is forbidden unless resourceVersion is provided".into(),
            ));
        }
        if cont.is_some() {
            why.push((
                "FieldValueForbidden",
                "Forbidden: resourceVersionMatch is forbidden when continue is provided".into(),
            ));
        }
        if m != "Exact" && m != "NotOlderThan" {
            why.push((
                "FieldValueNotSupported",
                format!("Unsupported value: {m:?}: supported values: \"Exact\", \"NotOlderThan\", \"\""),
            ));
        }
        if m == "Exact" && rv == Some("0") {
            why.push((
                "FieldValueForbidden",
                "Forbidden: resourceVersionMatch \"exact\" is forbidden for resourceVersion \"0\"".into(),
            ));
        }
        if !why.is_empty() {
            let errs: Vec<String> = why.iter().map(|(_, m)| format!("resourceVersionMatch: {m}")).collect();
            let joined = if errs.len() == 1 {
                errs[0].clone()
            } else {
                format!("[{}]", errs.join(", "))
            };
            let causes: Vec<Value> = why
                .iter()
                .map(|(reason, m)| json!({"reason": reason, "message": m, "field": "resourceVersionMatch"}))
                .collect();
            return Err(ApiError::new(
                422,
                "Invalid",
                format!("ListOptions.meta.k8s.io \"\" is invalid: {joined}"),
            )
            .with_details(json!({"group": "meta.k8s.io", "kind": "ListOptions", "causes": causes})));
        }
    }
    if let Some(token) = cont {
        if rv.is_some_and(|v| v != "0") {
            return Err(ApiError::bad_request(
                "specifying resource version is not allowed when using continue",
            ));
        }
        let (trv, _) = decode_continue(token)?;
        return Ok(if trv < 0 {
            ListRead::Latest
        } else {
            ListRead::Exact(trv as u64)
        });
    }
    let Some(v) = rv.filter(|v| *v != "0") else {
        return Ok(ListRead::Latest);
    };
    let n = v
        .parse::<u64>()
        .map_err(|_| ApiError::bad_request(format!("resourceVersion: `{v}` is not a valid resourceVersion")))?;
    Ok(match matching {
        Some("Exact") => ListRead::Exact(n),
        _ => ListRead::NotOlderThan(n),
    })
}

/// 410 Expired for a list at a state older than the store keeps (the compaction point): for a
/// continue token, with a token that continues at the latest state (an inconsistent list), as
/// kube-apiserver's `handleCompactedErrorForPaging`.
pub(super) fn list_expired(continue_from: Option<&(String, String)>) -> Response {
    let mut body = ApiError::new(410, "Expired", "The resourceVersion for the provided list is too old.").body();
    if let Some(start) = continue_from {
        body["message"] = json!(CONTINUE_EXPIRED);
        body["metadata"]["continue"] = json!(encode_continue(-1, start));
    }
    json_response(StatusCode::GONE, &body)
}

pub(super) const CONTINUE_EXPIRED: &str = "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.";

pub(super) fn list(s: &Arc<Shared>, t: &Target, q: &Query, output: Output) -> Result<Response, ApiError> {
    let (labels, fields) = selectors(q, &t.res)?;
    let limit = q.int("limit")?.filter(|l| *l > 0).map(|l| l as usize);
    let read = list_read(q)?;
    let start = match q.get("continue").filter(|c| !c.is_empty()) {
        Some(token) => Some(decode_continue(token)?.1),
        None => None,
    };
    let (current, current_rv) = s.store.list_at(t.res, t.ns.as_deref());
    let too_large = |n: u64| {
        ApiError::new(
            504,
            "Timeout",
            format!("Too large resource version: {n}, current: {current_rv}"),
        )
        .with_details(json!({"causes": [{"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}], "retryAfterSeconds": 1}))
    };
    let (items, list_rv) = match read {
        ListRead::Latest => (current, current_rv),
        ListRead::NotOlderThan(n) if n > current_rv => return Err(too_large(n)),
        ListRead::NotOlderThan(_) => (current, current_rv),
        ListRead::Exact(n) if n > current_rv => return Err(too_large(n)),
        ListRead::Exact(n) => match s.store.list_exact(t.res, t.ns.as_deref(), n) {
            Some(items) => (items, n),
            None => return Ok(list_expired(start.as_ref())),
        },
    };
    let mut items: Vec<Value> = items
        .into_iter()
        .filter(|o| labels.matches(&o["metadata"]["labels"]) && fields.matches(o))
        .collect();
    if let Some(start) = &start {
        items.retain(|o| object_key(o) > *start);
    }
    let mut meta = json!({"resourceVersion": list_rv.to_string()});
    if let Some(limit) = limit {
        if items.len() > limit {
            let remaining = items.len() - limit;
            items.truncate(limit);
            let last = object_key(items.last().expect("limit > 0"));
            meta["continue"] = json!(encode_continue(list_rv as i64, &last));
            if labels.is_empty() && fields.is_empty() {
                meta["remainingItemCount"] = json!(remaining);
            }
        }
    }
    Ok(match output {
        Output::Json => json_response(
            StatusCode::OK,
            &json!({"kind": format!("{}List", t.res.kind), "apiVersion": t.res.api_version(), "metadata": meta, "items": items}),
        ),
        Output::Table { version, include } => typed_response(
            StatusCode::OK,
            &format!("application/json;as=Table;v={version};g=meta.k8s.io"),
            &printers::table(&t.res, &items, include, true, version, meta),
        ),
        Output::Meta { version } => typed_response(
            StatusCode::OK,
            &format!("application/json;as=PartialObjectMetadataList;v={version};g=meta.k8s.io"),
            &json!({
                "kind": "PartialObjectMetadataList",
                "apiVersion": format!("meta.k8s.io/{version}"),
                "metadata": meta,
                "items": items.iter().map(|o| printers::partial_metadata(o, version)).collect::<Vec<_>>(),
            }),
        ),
    })
}

pub(super) fn start_watch(
    s: &Arc<Shared>,
    t: &Target,
    q: &Query,
    output: Output,
    name: Option<&str>,
) -> Result<Response, ApiError> {
    let (labels, mut fields) = selectors(q, &t.res)?;
    if let Some(name) = name {
        let extra = format!("metadata.name={name}");
        let combined = match q.get("fieldSelector").filter(|f| !f.is_empty()) {
            Some(f) => format!("{f},{extra}"),
            None => extra,
        };
        fields = FieldSelector::parse(&combined)
            .and_then(|f| f.for_resource(&t.res))
            .map_err(ApiError::bad_request)?;
    }
    let since = match q.get("resourceVersion") {
        None | Some("") | Some("0") => None,
        Some(v) => Some(
            v.parse::<u64>()
                .map_err(|_| ApiError::bad_request(format!("resourceVersion: `{v}` is not a valid resourceVersion")))?,
        ),
    };
    let timeout = q
        .int("timeoutSeconds")?
        .filter(|t| *t > 0)
        .map(|t| Duration::from_secs(t as u64))
        .unwrap_or(DEFAULT_WATCH_TIMEOUT);
    let req = watch::WatchRequest {
        res: t.res,
        ns: t.ns.clone(),
        labels,
        fields,
        since,
        timeout,
        bookmarks: q.flag("allowWatchBookmarks"),
        send_initial_events: q.flag("sendInitialEvents"),
        output,
    };
    Ok(watch::serve(s.clone(), req))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continue_tokens_round_trip() {
        let k = ("kube-system".to_string(), "coredns-1".to_string());
        let tok = encode_continue(1234, &k);
        assert_eq!(decode_continue(&tok).unwrap(), (1234, k));
        assert_eq!(decode_continue("!!").unwrap_err().code, 400);
    }
}
