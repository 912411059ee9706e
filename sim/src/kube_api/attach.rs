//! `pods/attach`: a WebSocket (the channel protocols of `exec`) to a container that runs its
//! command for real ([`crate::nodes::containers`]); to an emulated one, a stream that lasts
//! while it runs and shows nothing.

use super::exec::{self, frame, CLOSE, ERROR, RESIZE, STDERR, STDIN, STDOUT};
use super::Query;
use crate::nodes::containers::Stream;
use crate::nodes::proc;
use crate::objects::pods;
use crate::objects::status::ApiError;
use crate::rbac;
use crate::store::PODS;
use crate::Shared;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::Method;
use axum::response::{IntoResponse, Response};
use futures::{SinkExt, StreamExt};
use serde_json::json;
use std::sync::Arc;

/// The channel a container's output stream goes out on.
fn channel(s: Stream) -> u8 {
    match s {
        Stream::Stdout => STDOUT,
        Stream::Stderr => STDERR,
    }
}

struct AttachRequest {
    uid: String,
    container: String,
    stdin: bool,
    stdout: bool,
    stderr: bool,
}

/// Serve one attach request over WebSocket (the channel protocols of `exec`).
pub async fn handle(s: &Arc<Shared>, id: &rbac::Identity, mut parts: Parts, ns: String, pod: String) -> Response {
    let req = match prepare(s, id, &parts, &ns, &pod) {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    let ws = match WebSocketUpgrade::from_request_parts(&mut parts, &()).await {
        Ok(ws) => ws.protocols([exec::V5, exec::V4]),
        Err(_) => {
            return ApiError::bad_request(
                "Upgrade request required: aks-sim serves pods/attach over WebSocket (v5.channel.k8s.io, v4.channel.k8s.io) only",
            )
            .into_response()
        }
    };
    let Some(v5) = ws.selected_protocol().map(|p| p.as_bytes() == exec::V5.as_bytes()) else {
        return ApiError::bad_request(format!(
            "none of the requested WebSocket subprotocols is supported: want {} or {}",
            exec::V5,
            exec::V4
        ))
        .into_response();
    };
    let s = s.clone();
    ws.on_upgrade(move |socket| attach(s, socket, req, ns, pod, v5))
}

fn prepare(
    s: &Arc<Shared>,
    id: &rbac::Identity,
    parts: &Parts,
    ns: &str,
    pod: &str,
) -> Result<AttachRequest, ApiError> {
    for verb in ["get", "create"] {
        super::authorize_subresource(id, verb, ns, pod, "attach")?;
    }
    if parts.method != Method::GET && parts.method != Method::POST {
        return Err(ApiError::method_not_allowed(parts.method.as_str()));
    }
    let q = Query::parse(&parts.uri)?;
    let flag = |k: &str| matches!(q.get(k), Some("true") | Some("1"));
    let (obj, container) = pods::with_container(s, ns, pod, q.get("container"))?;
    let phase = pods::phase(&obj);
    if matches!(phase, "Succeeded" | "Failed") {
        return Err(ApiError::bad_request(format!(
            "cannot attach to a container in a completed pod; current phase is {phase}"
        )));
    }
    let cs = obj["status"]["containerStatuses"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["name"] == container.as_str()));
    if !cs.is_some_and(|c| c["state"]["running"].is_object()) {
        let reason = cs
            .and_then(|c| c["state"]["waiting"]["reason"].as_str())
            .unwrap_or("ContainerCreating");
        return Err(ApiError::bad_request(format!(
            "container {container} in pod {pod} is waiting to start: {reason}"
        )));
    }
    let tty = flag("tty");
    Ok(AttachRequest {
        uid: obj["metadata"]["uid"].as_str().unwrap_or("").to_string(),
        container,
        stdin: flag("stdin"),
        stdout: flag("stdout"),
        stderr: flag("stderr") && !tty,
    })
}

async fn attach(s: Arc<Shared>, socket: WebSocket, req: AttachRequest, ns: String, pod: String, v5: bool) {
    let (mut tx, mut rx) = socket.split();
    let live = s.containers.get(&req.uid, &req.container);
    let mut output = live.as_ref().map(|l| l.output.subscribe());
    let mut exited = live.as_ref().map(|l| l.exited.clone());
    let (stdin, pty) = match &live {
        Some(l) if req.stdin => (l.stdin.clone(), l.pty.clone()),
        Some(l) => (None, l.pty.clone()),
        None => (None, None),
    };
    let (gone_tx, mut gone_rx) = tokio::sync::oneshot::channel::<()>();
    let reader = tokio::spawn(async move {
        while let Some(Ok(msg)) = rx.next().await {
            let data: Vec<u8> = match msg {
                Message::Binary(b) => b.to_vec(),
                Message::Text(t) => t.as_bytes().to_vec(),
                Message::Close(_) => break,
                _ => continue,
            };
            match data.first() {
                Some(&STDIN) => {
                    if let Some(w) = &stdin {
                        let _ = w.send(data[1..].to_vec()).await;
                    }
                }
                Some(&RESIZE) => {
                    if let (Some(m), Some((w, h))) = (pty.as_ref(), proc::parse_resize(&data[1..])) {
                        proc::resize(m, w, h);
                    }
                }
                Some(&CLOSE) if v5 => {}
                _ => {}
            }
        }
        let _ = gone_tx.send(());
    });
    loop {
        tokio::select! {
            biased;
            m = async { match output.as_mut() { Some(o) => o.recv().await.ok(), None => std::future::pending().await } } => {
                if let Some((st, data)) = m {
                    let ch = channel(st);
                    let keep = (ch == STDOUT && req.stdout) || (ch == STDERR && req.stderr);
                    if keep && tx.send(frame(ch, &data)).await.is_err() {
                        break;
                    }
                }
            }
            _ = async { match exited.as_mut() { Some(e) => { let _ = e.wait_for(|x| *x).await; } None => std::future::pending().await } } => {
                // The container ended: what it printed last, then the attach ends with
                // success, as the kubelet's does.
                while let Some(Ok((st, data))) = output.as_mut().map(|o| o.try_recv()) {
                    let ch = channel(st);
                    let keep = (ch == STDOUT && req.stdout) || (ch == STDERR && req.stderr);
                    if keep && tx.send(frame(ch, &data)).await.is_err() {
                        break;
                    }
                }
                let _ = tx.send(frame(ERROR, json!({"metadata": {}, "status": "Success"}).to_string().as_bytes())).await;
                let _ = tx.send(Message::Close(Some(CloseFrame { code: 1000, reason: "".into() }))).await;
                break;
            }
            _ = &mut gone_rx => break,
            _ = tokio::time::sleep(std::time::Duration::from_millis(200)), if live.is_none() => {
                // An emulated container prints nothing: the attach lasts while it runs (a real
                // one that ended just before the attach ends it at once).
                let cur = s.store.get(PODS, Some(&ns), &pod);
                let running = cur.is_some_and(|p| {
                    p["metadata"]["uid"] == req.uid.as_str()
                        && !pods::is_terminating(&p)
                        && p["status"]["containerStatuses"].as_array().is_some_and(|cs| {
                            cs.iter().any(|c| c["name"] == req.container.as_str() && c["state"]["running"].is_object())
                        })
                });
                if !running {
                    let _ = tx.send(frame(ERROR, json!({"metadata": {}, "status": "Success"}).to_string().as_bytes())).await;
                    let _ = tx.send(Message::Close(Some(CloseFrame { code: 1000, reason: "".into() }))).await;
                    break;
                }
            }
        }
    }
    let abort = reader.abort_handle();
    if tokio::time::timeout(std::time::Duration::from_secs(5), reader)
        .await
        .is_err()
    {
        abort.abort();
    }
}
