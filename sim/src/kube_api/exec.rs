//! `pods/exec` over WebSocket, as kube-apiserver and the kubelet serve it together:
//! subprotocols `v5.channel.k8s.io` and `v4.channel.k8s.io`, binary frames whose first byte is
//! the stream (0 stdin, 1 stdout, 2 stderr, 3 error/status, 4 resize; v5: 255 close, `[255, 0]`
//! closes stdin), the exit status as a `metav1.Status` on stream 3.
//!
//! What runs: the pod sits on its node (`spec.nodeName`), so its processes live in that node's
//! root. `nsenter -t 1 ...` in a privileged `hostPID` pod lands in the node's root as root, as it
//! does on a node; in any other pod it fails with `Operation not permitted`. Any other command
//! runs in a small busybox container root on the node. A reboot of the node kills what runs
//! there, which cuts the stream without a status, as a real reboot does.

use super::Query;
use crate::events::kinds;
use crate::nodes::proc;
use crate::objects::pods;
use crate::objects::status::ApiError;
use crate::rbac;
use crate::Shared;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::Method;
use axum::response::{IntoResponse, Response};
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub const V5: &str = "v5.channel.k8s.io";
pub const V4: &str = "v4.channel.k8s.io";

pub(super) const STDIN: u8 = 0;
pub(super) const STDOUT: u8 = 1;
pub(super) const STDERR: u8 = 2;
pub(super) const ERROR: u8 = 3;
pub(super) const RESIZE: u8 = 4;
pub(super) const CLOSE: u8 = 255;

/// What the request asks to run.
struct ExecRequest {
    command: Vec<String>,
    stdin: bool,
    stdout: bool,
    stderr: bool,
    tty: bool,
}

/// Serve one exec request: authorize, check the pod, upgrade, run.
pub async fn handle(s: &Arc<Shared>, id: &rbac::Identity, mut parts: Parts, ns: String, pod: String) -> Response {
    match prepare(s, id, &parts, &ns, &pod) {
        Err(e) => e.into_response(),
        Ok((req, root, privileged)) => {
            let ws = match WebSocketUpgrade::from_request_parts(&mut parts, &()).await {
                Ok(ws) => ws,
                Err(_) => {
                    return ApiError::bad_request(
                        "Upgrade request required: aks-sim serves pods/exec over WebSocket (v5.channel.k8s.io, v4.channel.k8s.io) only",
                    )
                    .into_response()
                }
            };
            let ws = ws.protocols([V5, V4]);
            let v5 = ws.selected_protocol().is_some_and(|p| p.as_bytes() == V5.as_bytes());
            if ws.selected_protocol().is_none() {
                return ApiError::bad_request(format!(
                    "none of the requested WebSocket subprotocols is supported: want {V5} or {V4}"
                ))
                .into_response();
            }
            let node = root.node.clone();
            s.events.record(
                kinds::POD_EXEC,
                Some(&node),
                Some(&format!("{ns}/{pod}")),
                req.command.join(" "),
            );
            let cut = s
                .faults
                .take_exec_cut(&req.command.join(" "))
                .then(|| (s.clone(), format!("{ns}/{pod}")));
            ws.on_upgrade(move |socket| run(socket, req, root, privileged, v5, cut))
        }
    }
}

/// Where the command runs.
struct Place {
    node: String,
    /// The node's root directory.
    root: PathBuf,
    /// The machine's boot when the exec started (a reboot changes it).
    boot_id: Option<String>,
    shared: Arc<Shared>,
}

fn prepare(
    s: &Arc<Shared>,
    id: &rbac::Identity,
    parts: &Parts,
    ns: &str,
    pod: &str,
) -> Result<(ExecRequest, Place, bool), ApiError> {
    // WebSocket exec is a GET, and kube-apiserver also checks `create` on it (KEP-4006).
    let mut verbs = vec![if parts.method == Method::GET { "get" } else { "create" }];
    if parts.method == Method::GET {
        verbs.push("create");
    }
    for verb in verbs {
        super::authorize_subresource(id, verb, ns, pod, "exec")?;
    }
    if s.faults.exec_refused() {
        return Err(ApiError::new(
            403,
            "Forbidden",
            format!(
                "pods \"{pod}\" is forbidden: exec into pods is denied by the admission policy deny-exec (aks-sim fault exec-refused)"
            ),
        )
        .with_details(json!({"name": pod, "kind": "pods"})));
    }
    if parts.method != Method::GET && parts.method != Method::POST {
        return Err(ApiError::method_not_allowed(parts.method.as_str()));
    }
    let q = Query::parse(&parts.uri)?;
    let command: Vec<String> =
        q.0.iter()
            .filter(|(k, _)| k == "command")
            .map(|(_, v)| v.clone())
            .collect();
    if command.is_empty() {
        return Err(ApiError::bad_request("you must specify at least 1 command"));
    }
    let flag = |k: &str| matches!(q.get(k), Some("true") | Some("1"));
    let (obj, container) = pods::with_container(s, ns, pod, q.get("container"))?;
    let phase = pods::phase(&obj);
    if matches!(phase, "Succeeded" | "Failed") {
        return Err(ApiError::bad_request(format!(
            "cannot exec into a container in a completed pod; current phase is {phase}"
        )));
    }
    let Some(node) = pods::node_name(&obj) else {
        return Err(ApiError::bad_request(format!(
            "pod {pod} does not have a host assigned"
        )));
    };
    let cstatus = obj["status"]["containerStatuses"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["name"] == container.as_str()).cloned());
    let running = cstatus.as_ref().is_some_and(|c| c["state"]["running"].is_object());
    if !running {
        let reason = cstatus
            .as_ref()
            .and_then(|c| c["state"]["waiting"]["reason"].as_str().map(str::to_string))
            .unwrap_or_else(|| "ContainerCreating".into());
        return Err(ApiError::bad_request(format!(
            "container {container} in pod {pod} is waiting to start: {reason}"
        )));
    }
    let root = s
        .node_runtime
        .get()
        .and_then(|rt| rt.node_root(node))
        .map(Path::to_path_buf)
        .ok_or_else(|| {
            ApiError::new(
                500,
                "InternalError",
                format!(
                    "error dialing backend: node {node} has no kubelet that serves exec in aks-sim (not a Linux node)"
                ),
            )
        })?;
    if !s.node_runtime.get().is_some_and(|rt| rt.machine_up(node)) {
        // The kubelet is down with its machine: the API server cannot reach it.
        let ip = obj["status"]["hostIP"].as_str().unwrap_or("").to_string();
        return Err(ApiError::new(
            500,
            "InternalError",
            format!("error dialing backend: dial tcp {ip}:10250: connect: no route to host"),
        ));
    }
    let spec = &obj["spec"];
    let privileged = spec["hostPID"].as_bool() == Some(true)
        && spec["containers"].as_array().is_some_and(|cs| {
            cs.iter()
                .any(|c| c["name"] == container.as_str() && c["securityContext"]["privileged"].as_bool() == Some(true))
        });
    Ok((
        ExecRequest {
            command,
            stdin: flag("stdin"),
            stdout: flag("stdout"),
            // With a tty, stderr is merged into stdout (the kubelet drops stderr=true).
            stderr: flag("stderr") && !flag("tty"),
            tty: flag("tty"),
        },
        Place {
            node: node.to_string(),
            root,
            boot_id: s.node_runtime.get().and_then(|rt| rt.boot_id(node)),
            shared: s.clone(),
        },
        privileged,
    ))
}

/// What nsenter was asked for: the target pid and the command after the options.
fn parse_nsenter(args: &[String]) -> Result<(String, Vec<String>), String> {
    let mut target = None;
    let mut i = 0;
    while i < args.len() {
        let a = args[i].as_str();
        match a {
            "--" => {
                i += 1;
                break;
            }
            "-t" | "--target" => {
                target = args.get(i + 1).cloned();
                i += 2;
                continue;
            }
            _ if a.starts_with("--target=") => target = Some(a["--target=".len()..].to_string()),
            _ if a.starts_with("-t") && a.len() > 2 && !a.starts_with("--") => target = Some(a[2..].to_string()),
            "-m" | "-u" | "-i" | "-n" | "-p" | "-a" | "-U" | "-C" | "--mount" | "--uts" | "--ipc" | "--net"
            | "--pid" | "--all" | "--user" | "--cgroup" | "-F" | "--no-fork" => {}
            _ if a.starts_with('-') && !a.starts_with("--") && a[1..].chars().all(|c| "muinpaUCF".contains(c)) => {}
            _ if a.starts_with('-') => return Err(format!("nsenter: unrecognized option '{a}'")),
            _ => break,
        }
        i += 1;
    }
    let target = target.ok_or("nsenter: neither filename nor target pid supplied for ns/mnt")?;
    let rest = args[i..].to_vec();
    Ok((target, if rest.is_empty() { vec!["/bin/sh".into()] } else { rest }))
}

/// The command line as the kubelet words it in its exit status.
fn status_for(command: &[String], code: i32) -> Value {
    if code == 0 {
        return json!({"metadata": {}, "status": "Success"});
    }
    json!({
        "metadata": {},
        "status": "Failure",
        "message": format!("command terminated with non-zero exit code: error executing command [{}], exit code {code}", command.join(" ")),
        "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]},
    })
}

pub(super) fn frame(channel: u8, data: &[u8]) -> Message {
    let mut v = Vec::with_capacity(data.len() + 1);
    v.push(channel);
    v.extend_from_slice(data);
    Message::Binary(v.into())
}

/// `cut`: the `exec-cut` fault's event log and pod, when this stream is to be cut once the
/// command has started.
async fn run(
    socket: WebSocket,
    req: ExecRequest,
    place: Place,
    privileged: bool,
    v5: bool,
    cut: Option<(Arc<Shared>, String)>,
) {
    let (mut tx, mut rx) = socket.split();
    // What to run, where.
    let mut argv = req.command.clone();
    let root = if argv[0] == "nsenter" || argv[0].ends_with("/nsenter") {
        match parse_nsenter(&argv[1..]) {
            Ok((target, rest)) if privileged && target == "1" => {
                argv = rest;
                Some(place.root.clone())
            }
            Ok((target, _)) if privileged => {
                let msg = format!("nsenter: cannot open /proc/{target}/ns/ipc: No such file or directory\n");
                finish_early(&mut tx, &req, msg, 1).await;
                return;
            }
            Ok(_) => {
                let msg = "nsenter: reassociate to namespace 'ns/ipc' failed: Operation not permitted\n".to_string();
                finish_early(&mut tx, &req, msg, 1).await;
                return;
            }
            Err(msg) => {
                finish_early(&mut tx, &req, format!("{msg}\n"), 1).await;
                return;
            }
        }
    } else {
        None
    };
    let root = match root {
        Some(r) => r,
        None => match crate::nodes::containers::container_root(&place.root) {
            Ok(r) => r,
            Err(e) => {
                let st = json!({"metadata": {}, "status": "Failure", "reason": "InternalError",
                    "message": format!("Internal error occurred: error executing command in container: {e}")});
                let _ = tx.send(frame(ERROR, st.to_string().as_bytes())).await;
                let _ = tx.close().await;
                return;
            }
        },
    };
    let spawned = proc::spawn(proc::Spawn {
        root: &root,
        argv: &argv,
        hostname: &place.node,
        stdin: req.stdin,
        tty: req.tty,
        host: None,
    });
    let mut running = match spawned {
        Ok(c) => c,
        Err(e) => {
            let st = json!({"metadata": {}, "status": "Failure", "reason": "InternalError",
                "message": format!("Internal error occurred: error executing command in container: {e}")});
            let _ = tx.send(frame(ERROR, st.to_string().as_bytes())).await;
            let _ = tx.close().await;
            return;
        }
    };
    let pid = running.pid;
    let (out_tx, mut out_rx) = tokio::sync::mpsc::channel::<(u8, Vec<u8>)>(16);
    let pump = |mut r: proc::Reader, ch: u8, keep: bool| {
        let out_tx = out_tx.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 32 * 1024];
            loop {
                match r.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) if keep => {
                        if out_tx.send((ch, buf[..n].to_vec())).await.is_err() {
                            break;
                        }
                    }
                    Ok(_) => {}
                }
            }
        })
    };
    let out_task = running.stdout.take().map(|o| pump(o, STDOUT, req.stdout));
    let err_task = running.stderr.take().map(|e| pump(e, STDERR, req.stderr));
    drop(out_tx);
    let mut stdin = running.stdin.take();
    let pty = running.pty.clone();
    // The client's frames: stdin, its close, resize; the client going away ends the process.
    // Text frames are taken as binary ones: the first byte is the stream either way (the
    // API server reads both alike; the Python client's `write_stdin(str)` sends text).
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
                    if let Some(w) = stdin.as_mut() {
                        if w.write_all(&data[1..]).await.is_err() || w.flush().await.is_err() {
                            stdin = None;
                        }
                    }
                }
                Some(&RESIZE) => {
                    if let (Some(m), Some((w, h))) = (pty.as_ref(), proc::parse_resize(&data[1..])) {
                        proc::resize(m, w, h);
                    }
                }
                Some(&CLOSE) if v5 && data.get(1) == Some(&STDIN) => {
                    if let Some(mut w) = stdin.take() {
                        if pty.is_some() {
                            // A terminal has no end of input but the EOF character.
                            let _ = w.write_all(&[4]).await;
                            let _ = w.flush().await;
                        }
                    }
                }
                _ => {}
            }
        }
        let _ = gone_tx.send(());
    });
    if let Some((s, pod)) = cut {
        // The stream is cut under the running command: no exit status, no close frame; the
        // command dies with it, as it does when the client goes away.
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        s.events.record(
            kinds::POD_EXEC_CUT,
            Some(&place.node),
            Some(&pod),
            req.command.join(" "),
        );
        // SAFETY: signalling the process group of a child we started.
        unsafe { libc::kill(-pid, libc::SIGKILL) };
        let _ = running.child.wait().await;
        reader.abort();
        let _ = reader.await;
        drop(out_rx);
        drop(tx);
        return;
    }
    let mut client_gone = false;
    loop {
        tokio::select! {
            m = out_rx.recv() => match m {
                Some((ch, data)) => {
                    if tx.send(frame(ch, &data)).await.is_err() {
                        client_gone = true;
                        break;
                    }
                }
                None => break,
            },
            _ = &mut gone_rx, if !client_gone => {
                client_gone = true;
                break;
            }
        }
    }
    if client_gone {
        // SAFETY: signalling the process group of a child we started.
        unsafe { libc::kill(-pid, libc::SIGKILL) };
        let _ = running.child.wait().await;
        reader.abort();
        return;
    }
    for t in [out_task, err_task].into_iter().flatten() {
        let _ = t.await;
    }
    let status = running.child.wait().await;
    // What the command left running in the background (a reboot scheduled with `nohup ... &`)
    // still belongs to the session: a node that goes down meanwhile takes the stream with it.
    let deadline = tokio::time::Instant::now() + LINGER;
    while proc::group_alive(pid) && tokio::time::Instant::now() < deadline && node_unchanged(&place) {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    if !node_unchanged(&place) {
        // The node went down with the session: the connection breaks without an exit status
        // and without a WebSocket close, as when the node's kernel goes down under it.
        reader.abort();
        drop(tx);
        return;
    }
    use std::os::unix::process::ExitStatusExt;
    match status {
        Ok(st) => {
            let code = st.code().unwrap_or_else(|| 128 + st.signal().unwrap_or(9));
            let _ = tx
                .send(frame(ERROR, status_for(&req.command, code).to_string().as_bytes()))
                .await;
            let _ = tx
                .send(Message::Close(Some(CloseFrame {
                    code: 1000,
                    reason: "".into(),
                })))
                .await;
        }
        Err(_) => drop(tx),
    }
    // The closing handshake (RFC 6455 5.5.1), as the API server's websocket library does it:
    // after our Close, the connection stays up until the client's Close (its reader then
    // ends) or a short while passes. Dropping it at once can break the client's reply, and a
    // client then sees an error, not the end of the stream (kube-rs then never ends stdout).
    let abort = reader.abort_handle();
    if tokio::time::timeout(std::time::Duration::from_secs(5), reader)
        .await
        .is_err()
    {
        abort.abort();
    }
}

/// How long an exec's status waits for what its command left running in the background.
const LINGER: std::time::Duration = std::time::Duration::from_secs(2);

/// The node is up and has not rebooted since the exec started.
fn node_unchanged(place: &Place) -> bool {
    let Some(rt) = place.shared.node_runtime.get() else {
        return true;
    };
    rt.machine_up(&place.node) && rt.boot_id(&place.node) == place.boot_id
}

/// The command fails before it starts (nsenter refused): its message on stderr, then the status.
async fn finish_early<S>(tx: &mut S, req: &ExecRequest, stderr: String, code: i32)
where
    S: futures::Sink<Message> + Unpin,
{
    if req.stderr {
        let _ = tx.send(frame(STDERR, stderr.as_bytes())).await;
    }
    let _ = tx
        .send(frame(ERROR, status_for(&req.command, code).to_string().as_bytes()))
        .await;
    let _ = tx
        .send(Message::Close(Some(CloseFrame {
            code: 1000,
            reason: "".into(),
        })))
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn nsenter_options_then_the_command() {
        let (t, rest) = parse_nsenter(&v(&["-t", "1", "-m", "-u", "-i", "-n", "-p", "--", "sh", "-c", "id"])).unwrap();
        assert_eq!((t.as_str(), rest), ("1", v(&["sh", "-c", "id"])));
        let (t, rest) = parse_nsenter(&v(&["--target=1", "--mount", "--pid", "uname", "-r"])).unwrap();
        assert_eq!((t.as_str(), rest), ("1", v(&["uname", "-r"])));
        let (_, rest) = parse_nsenter(&v(&["-t1", "-mu"])).unwrap();
        assert_eq!(rest, v(&["/bin/sh"]));
        assert!(parse_nsenter(&v(&["-m", "--", "sh"])).is_err());
        assert!(parse_nsenter(&v(&["--bogus", "sh"])).is_err());
    }

    #[test]
    fn exit_status_as_the_kubelet_sends_it() {
        assert_eq!(status_for(&v(&["true"]), 0)["status"], "Success");
        let st = status_for(&v(&["sh", "-c", "exit 3"]), 3);
        assert_eq!(st["reason"], "NonZeroExitCode");
        assert_eq!(st["details"]["causes"][0]["message"], "3");
    }
}
