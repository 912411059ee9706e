//! Watches: a chunked stream of newline-delimited `{"type": ..., "object": ...}` events,
//! filtered by namespace and selectors, from a resourceVersion (or, with none or "0",
//! starting with ADDED events for what exists), ending at `timeoutSeconds` or shutdown.
//! A resourceVersion older than the store's history gets a 410 Expired ERROR event.

use super::printers;
use super::{object_key, Output};
use crate::objects::selector::{FieldSelector, LabelSelector};
use crate::objects::status;
use crate::store::{Change, Resource, WatchKind};
use crate::Shared;
use axum::body::{Body, Bytes};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use futures::SinkExt;
use serde_json::{json, Value};
use std::collections::HashSet;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;

pub struct WatchRequest {
    pub res: Resource,
    pub ns: Option<String>,
    pub labels: LabelSelector,
    pub fields: FieldSelector,
    /// None: start with the current state.
    pub since: Option<u64>,
    pub timeout: Duration,
    pub bookmarks: bool,
    pub send_initial_events: bool,
    pub output: Output,
}

/// How often a watch that allows bookmarks gets one.
const BOOKMARK_EVERY: Duration = Duration::from_secs(30);

pub fn serve(shared: Arc<Shared>, w: WatchRequest) -> Response {
    let (tx, rx) = futures::channel::mpsc::channel::<Result<Bytes, Infallible>>(256);
    let ct = match w.output {
        Output::Table { version, .. } => format!("application/json;as=Table;v={version};g=meta.k8s.io"),
        _ => status::JSON.to_string(),
    };
    tokio::spawn(run(shared, w, tx));
    let mut resp = (StatusCode::OK, Body::from_stream(rx)).into_response();
    if let Ok(v) = HeaderValue::from_str(&ct) {
        resp.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    resp
}

type Tx = futures::channel::mpsc::Sender<Result<Bytes, Infallible>>;

struct Emitter {
    tx: Tx,
    res: Resource,
    output: Output,
    headers_sent: bool,
}

impl Emitter {
    async fn send(&mut self, kind: &str, object: Value) -> bool {
        let mut line = serde_json::to_vec(&json!({"type": kind, "object": object})).unwrap_or_default();
        line.push(b'\n');
        self.tx.send(Ok(Bytes::from(line))).await.is_ok()
    }

    async fn event(&mut self, kind: &str, obj: &Value) -> bool {
        let object = match self.output {
            Output::Json => obj.clone(),
            Output::Meta { version } => printers::partial_metadata(obj, version),
            Output::Table { version, include } => {
                let headers = !self.headers_sent;
                self.headers_sent = true;
                let rv = obj["metadata"]["resourceVersion"].clone();
                printers::table(
                    &self.res,
                    std::slice::from_ref(obj),
                    include,
                    headers,
                    version,
                    json!({"resourceVersion": rv}),
                )
            }
        };
        self.send(kind, object).await
    }

    async fn bookmark(&mut self, rv: u64, initial_end: bool) -> bool {
        let (api_version, kind) = match self.output {
            Output::Meta { version } => (format!("meta.k8s.io/{version}"), "PartialObjectMetadata".to_string()),
            _ => (self.res.api_version(), self.res.kind.to_string()),
        };
        let mut meta = json!({"resourceVersion": rv.to_string()});
        if initial_end {
            meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        self.send(
            "BOOKMARK",
            json!({"kind": kind, "apiVersion": api_version, "metadata": meta}),
        )
        .await
    }
}

async fn run(shared: Arc<Shared>, w: WatchRequest, tx: Tx) {
    let mut em = Emitter {
        tx,
        res: w.res,
        output: w.output,
        headers_sent: false,
    };
    let in_ns = |obj: &Value| match &w.ns {
        Some(ns) if w.res.namespaced => obj["metadata"]["namespace"].as_str() == Some(ns.as_str()),
        _ => true,
    };
    let matches = |obj: &Value| in_ns(obj) && w.labels.matches(&obj["metadata"]["labels"]) && w.fields.matches(obj);
    let mut known: HashSet<(String, String)> = HashSet::new();
    let (items, now_rv) = shared.store.list_at(w.res, w.ns.as_deref());
    let since = match w.since {
        Some(rv) if !w.send_initial_events => {
            known.extend(items.iter().filter(|o| matches(o)).map(object_key));
            rv
        }
        _ => {
            for o in items.iter().filter(|o| matches(o)) {
                known.insert(object_key(o));
                if !em.event("ADDED", o).await {
                    return;
                }
            }
            now_rv
        }
    };
    let (replay, mut rx) = shared.store.watch_from(since);
    let Some(replay) = replay else {
        let gone = status::ApiError::new(
            410,
            "Expired",
            format!(
                "too old resource version: {since} ({})",
                shared.store.resource_version()
            ),
        );
        em.send("ERROR", gone.body()).await;
        return;
    };
    let mut last_rv = since;
    if w.send_initial_events && w.bookmarks && !em.bookmark(since, true).await {
        return;
    }
    let unfiltered = w.labels.is_empty() && w.fields.is_empty();
    let handle = |c: &Change, known: &mut HashSet<(String, String)>| -> Option<&'static str> {
        if c.resource != w.res || !in_ns(&c.object) {
            return None;
        }
        if unfiltered {
            return Some(match c.kind {
                WatchKind::Added => "ADDED",
                WatchKind::Modified => "MODIFIED",
                WatchKind::Deleted => "DELETED",
            });
        }
        // With selectors, an object that starts or stops matching is ADDED or DELETED,
        // as the API server's watch cache reports it.
        let k = object_key(&c.object);
        let m = matches(&c.object);
        match c.kind {
            WatchKind::Added if m => {
                known.insert(k);
                Some("ADDED")
            }
            WatchKind::Added => None,
            WatchKind::Modified if m => Some(if known.insert(k) { "ADDED" } else { "MODIFIED" }),
            WatchKind::Modified => known.remove(&k).then_some("DELETED"),
            WatchKind::Deleted => (known.remove(&k) || m).then_some("DELETED"),
        }
    };
    for c in &replay {
        last_rv = last_rv.max(c.rv);
        if let Some(kind) = handle(c, &mut known) {
            if !em.event(kind, &c.object).await {
                return;
            }
        }
    }
    let deadline = tokio::time::Instant::now() + w.timeout;
    let mut shutdown = shared.shutdown.clone();
    let mut next_bookmark = tokio::time::Instant::now() + BOOKMARK_EVERY;
    let bookmarks = w.bookmarks && !matches!(w.output, Output::Table { .. });
    loop {
        let wake = if bookmarks {
            next_bookmark.min(deadline)
        } else {
            deadline
        };
        tokio::select! {
            r = rx.recv() => match r {
                Ok(c) => {
                    last_rv = last_rv.max(c.rv);
                    if let Some(kind) = handle(&c, &mut known) {
                        if !em.event(kind, &c.object).await {
                            return;
                        }
                    }
                }
                // Fell behind: end the watch; the client re-lists or re-watches.
                Err(RecvError::Lagged(_)) | Err(RecvError::Closed) => return,
            },
            _ = tokio::time::sleep_until(wake) => {
                if tokio::time::Instant::now() >= deadline {
                    return;
                }
                next_bookmark = tokio::time::Instant::now() + BOOKMARK_EVERY;
                if !em.bookmark(last_rv, false).await {
                    return;
                }
            }
            _ = shutdown.changed() => return,
        }
    }
}
