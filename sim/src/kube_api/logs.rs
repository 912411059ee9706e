//! `pods/log`: what a pod's containers printed ([`crate::nodes::pod_logs`]), as the API server
//! serves it (`GET /api/v1/namespaces/N/pods/P/log` with `container`, `follow`, `previous`,
//! `tailLines`, `sinceSeconds`, `sinceTime`, `timestamps`, `limitBytes`).

use super::Query;
use crate::nodes::pod_logs::Instance;
use crate::objects::pods;
use crate::objects::status::ApiError;
use crate::rbac;
use crate::store::PODS;
use crate::Shared;
use axum::body::Body;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use jiff::{SignedDuration, Timestamp};
use serde_json::{json, Value};
use std::sync::Arc;

/// What the request asks for.
struct LogRequest {
    container: String,
    follow: bool,
    previous: bool,
    timestamps: bool,
    tail: Option<usize>,
    since: Option<Timestamp>,
    limit: Option<usize>,
    /// The pod's node and its boot when the request came (a follow ends with the node).
    node: Option<(String, Option<String>)>,
}

fn positive(q: &Query, k: &str, min: i64) -> Result<Option<i64>, ApiError> {
    match q.get(k) {
        None | Some("") => Ok(None),
        Some(v) => match v.parse::<i64>() {
            Ok(n) if n >= min => Ok(Some(n)),
            Ok(_) => Err(invalid(k, v, &format!("must be greater than {}", min - 1))),
            Err(_) => Err(ApiError::bad_request(format!("{k}: `{v}` is not an integer"))),
        },
    }
}

/// 422 as the API server's PodLogOptions validation words it.
fn invalid(field: &str, value: &str, why: &str) -> ApiError {
    let msg = format!("{field}: Invalid value: {value}: {why}");
    ApiError::new(422, "Invalid", format!("PodLogOptions \"\" is invalid: {msg}"))
        .with_details(json!({"kind": "PodLogOptions", "causes": [{"reason": "FieldValueInvalid", "message": format!("Invalid value: {value}: {why}"), "field": field}]}))
}

/// Serve one log request.
pub async fn handle(
    s: &Arc<Shared>,
    id: &rbac::Identity,
    method: &axum::http::Method,
    uri: &axum::http::Uri,
    ns: String,
    pod: String,
) -> Response {
    match prepare(s, id, method, uri, &ns, &pod) {
        Err(e) => e.into_response(),
        Ok((uid, req)) => serve(s.clone(), uid, req),
    }
}

fn prepare(
    s: &Arc<Shared>,
    id: &rbac::Identity,
    method: &axum::http::Method,
    uri: &axum::http::Uri,
    ns: &str,
    pod: &str,
) -> Result<(String, LogRequest), ApiError> {
    super::authorize_subresource(id, "get", ns, pod, "log")?;
    if method != axum::http::Method::GET {
        return Err(ApiError::method_not_allowed(method.as_str()));
    }
    let q = Query::parse(uri)?;
    let flag = |k: &str| matches!(q.get(k), Some("true") | Some("1"));
    let tail = positive(&q, "tailLines", 0)?.map(|n| n as usize);
    let limit = positive(&q, "limitBytes", 1)?.map(|n| n as usize);
    let since_seconds = positive(&q, "sinceSeconds", 1)?;
    let since_time = match q.get("sinceTime").filter(|t| !t.is_empty()) {
        Some(t) => Some(
            crate::time::parse(t)
                .ok_or_else(|| ApiError::bad_request(format!("sinceTime: `{t}` is not an RFC 3339 time")))?,
        ),
        None => None,
    };
    if since_seconds.is_some() && since_time.is_some() {
        return Err(ApiError::new(
            422,
            "Invalid",
            "PodLogOptions \"\" is invalid: sinceSeconds: Forbidden: at most one of `sinceTime` or `sinceSeconds` may be specified",
        ));
    }
    let since = since_time.or_else(|| since_seconds.map(|n| Timestamp::now() - SignedDuration::from_secs(n)));
    let (obj, container) = pods::with_container(s, ns, pod, q.get("container"))?;
    let previous = flag("previous");
    check_status(&obj, pod, &container, previous)?;
    let uid = obj["metadata"]["uid"].as_str().unwrap_or("").to_string();
    Ok((
        uid,
        LogRequest {
            container,
            follow: flag("follow"),
            previous,
            timestamps: flag("timestamps"),
            tail,
            since,
            limit,
            node: crate::objects::pods::node_name(&obj)
                .map(|n| (n.to_string(), s.node_runtime.get().and_then(|rt| rt.boot_id(n)))),
        },
    ))
}

/// The kubelet's checks of the container's state (`validateContainerLogStatus`).
fn check_status(pod_obj: &Value, pod: &str, container: &str, previous: bool) -> Result<(), ApiError> {
    let cs = pod_obj["status"]["containerStatuses"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["name"] == container));
    let Some(cs) = cs else {
        if crate::objects::pods::node_name(pod_obj).is_none() {
            return Err(ApiError::bad_request(format!(
                "container \"{container}\" in pod \"{pod}\" is waiting to start: ContainerCreating"
            )));
        }
        return Err(ApiError::bad_request(format!(
            "container \"{container}\" in pod \"{pod}\" is not available"
        )));
    };
    if previous {
        if cs["lastState"]["terminated"].is_object() {
            return Ok(());
        }
        return Err(ApiError::bad_request(format!(
            "previous terminated container \"{container}\" in pod \"{pod}\" not found"
        )));
    }
    if cs["state"]["running"].is_object() || cs["state"]["terminated"].is_object() {
        return Ok(());
    }
    if cs["state"]["waiting"].is_object() && cs["lastState"]["terminated"].is_object() {
        // A restarting container: the kubelet serves the last one's log.
        return Ok(());
    }
    let reason = cs["state"]["waiting"]["reason"].as_str().unwrap_or("ContainerCreating");
    match reason {
        "ErrImagePull" | "ImagePullBackOff" | "InvalidImageName" | "ErrImageNeverPull" => Err(ApiError::bad_request(
            format!("container \"{container}\" in pod \"{pod}\" is waiting to start: trying and failing to pull image"),
        )),
        _ => Err(ApiError::bad_request(format!(
            "container \"{container}\" in pod \"{pod}\" is waiting to start: {reason}"
        ))),
    }
}

fn render(lines: &[(Timestamp, Vec<u8>)], timestamps: bool) -> Vec<u8> {
    let mut out = Vec::new();
    for (t, l) in lines {
        if timestamps {
            out.extend_from_slice(crate::time::rfc3339_nanos(*t).as_bytes());
            out.push(b' ');
        }
        out.extend_from_slice(l);
    }
    out
}

/// The lines of an instance the request selects (since, tail), from line `from` on.
fn select(inst: &Instance, req: &LogRequest, from: usize, first: bool) -> Vec<(Timestamp, Vec<u8>)> {
    let mut lines: Vec<_> = inst.lines[from.min(inst.lines.len())..]
        .iter()
        .filter(|(t, _)| req.since.is_none_or(|s| *t >= s))
        .cloned()
        .collect();
    if first {
        if let Some(n) = req.tail {
            let skip = lines.len().saturating_sub(n);
            lines.drain(..skip);
        }
    }
    lines
}

/// New output of an instance past the cursor `(line, byte)`, and the cursor after it.
fn since_cursor(inst: &Instance, at: (usize, usize), timestamps: bool) -> (Vec<u8>, (usize, usize)) {
    let mut out = Vec::new();
    let (mut i, mut off) = at;
    while i < inst.lines.len() {
        let (t, l) = &inst.lines[i];
        if off == 0 && timestamps {
            out.extend_from_slice(crate::time::rfc3339_nanos(*t).as_bytes());
            out.push(b' ');
        }
        out.extend_from_slice(&l[off.min(l.len())..]);
        if l.ends_with(b"\n") {
            i += 1;
            off = 0;
        } else {
            off = l.len();
            break;
        }
    }
    (out, (i, off))
}

fn end_cursor(inst: &Instance) -> (usize, usize) {
    match inst.lines.last() {
        Some((_, l)) if !l.ends_with(b"\n") => (inst.lines.len() - 1, l.len()),
        _ => (inst.lines.len(), 0),
    }
}

type FollowState = (
    Arc<Shared>,
    String,
    LogRequest,
    tokio::sync::watch::Receiver<u64>,
    (usize, usize),
    usize,
);

/// The pod's node went down (or rebooted) since the request: the kubelet's stream is gone.
fn node_went_down(s: &Shared, req: &LogRequest) -> bool {
    let (Some((node, boot)), Some(rt)) = (&req.node, s.node_runtime.get()) else {
        return false;
    };
    !rt.machine_up(node) || rt.boot_id(node) != *boot
}

fn serve(s: Arc<Shared>, uid: String, req: LogRequest) -> Response {
    let text = [(header::CONTENT_TYPE, "text/plain")];
    let inst = s
        .pod_logs
        .instance(&uid, &req.container, req.previous)
        .unwrap_or_default();
    let mut first = render(&select(&inst, &req, 0, true), req.timestamps);
    if let Some(l) = req.limit {
        first.truncate(l);
    }
    if !req.follow || req.previous || inst.ended {
        return (StatusCode::OK, text, first).into_response();
    }
    // Follow: what is there, then what comes, until the container ends or the pod goes.
    let changed = s.pod_logs.changed.subscribe();
    let id = inst.id;
    let sent = first.len();
    let state: FollowState = (s, uid, req, changed, end_cursor(&inst), sent);
    let rest = futures::stream::unfold(state, move |(s, uid, req, mut changed, at, sent)| async move {
        loop {
            if req.limit.is_some_and(|l| sent >= l) {
                return None;
            }
            let inst = s.pod_logs.instance_by_id(&uid, &req.container, id)?;
            let (mut chunk, next) = since_cursor(&inst, at, req.timestamps);
            if !chunk.is_empty() {
                if let Some(l) = req.limit {
                    chunk.truncate(l - sent);
                }
                let sent = sent + chunk.len();
                return Some((Ok::<_, std::io::Error>(chunk), (s, uid, req, changed, next, sent)));
            }
            if inst.ended || node_went_down(&s, &req) {
                return None;
            }
            tokio::select! {
                r = changed.changed() => if r.is_err() { return None },
                _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => {
                    // The pod was deleted: its log ends.
                    s.store.list(PODS, None).iter().find(|p| p["metadata"]["uid"] == uid.as_str())?;
                }
            }
        }
    });
    let stream = futures::StreamExt::chain(futures::stream::once(async move { Ok(first) }), rest);
    (StatusCode::OK, text, Body::from_stream(stream)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nodes::pod_logs::PodLogs;

    #[test]
    fn previous_is_the_instance_before_the_current_one() {
        let l = PodLogs::default();
        assert!(l.instance("u", "c", false).is_none());
        l.start("u", "c");
        l.write("u", "c", b"one\ntw");
        l.write("u", "c", b"o\n");
        assert_eq!(
            render(&l.instance("u", "c", false).unwrap().lines, false),
            b"one\ntwo\n"
        );
        assert!(l.instance("u", "c", true).is_none());
        l.start("u", "c");
        l.write("u", "c", b"three\n");
        assert_eq!(render(&l.instance("u", "c", true).unwrap().lines, false), b"one\ntwo\n");
        assert!(l.instance("u", "c", true).unwrap().ended);
        assert_eq!(render(&l.instance("u", "c", false).unwrap().lines, false), b"three\n");
    }
}
