//! Containers that run their command for real, as the kubelet runs them (`pods/attach`
//! connects to them: `kube_api/attach.rs`).
//!
//! aks-sim pulls no image, so most containers are emulated: they print one line when they
//! start (their log) and run nothing. A container runs its `command` for real, in the busybox
//! root on its node (as `exec` does), when its pod is `restartPolicy: Never` and it is
//! interactive (`stdin: true`) or mounts the node's root (a `hostPath` volume of `/`): what
//! `kubectl debug node/N` and `kubectl run -i --restart=Never` create. A `hostPath` `/` volume
//! is the node's root at its `mountPath` (`/host`), so `chroot /host CMD` runs CMD in the
//! node's root. Its output is the container's log; `attach` connects to its stdin and output
//! (with a real terminal when the container has `tty: true`); when it exits the container is
//! `terminated` with its exit code and the pod `Succeeded` or `Failed`.

use super::proc;
use crate::objects::pods;
use crate::store::PODS;
use crate::Shared;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Which output stream of a container bytes come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// A running container's streams, for `attach`.
#[derive(Clone)]
pub struct Live {
    /// Its stdin, when it has one.
    pub stdin: Option<tokio::sync::mpsc::Sender<Vec<u8>>>,
    /// What it prints, as it prints it.
    pub output: tokio::sync::broadcast::Sender<(Stream, Vec<u8>)>,
    /// Its terminal, when it has one (`tty: true`).
    pub pty: Option<Arc<OwnedFd>>,
    /// Turns true when it has exited.
    pub exited: tokio::sync::watch::Receiver<bool>,
}

/// The containers running for real, by pod UID and container name.
#[derive(Default)]
pub struct Containers {
    live: Mutex<HashMap<(String, String), Live>>,
}

impl Containers {
    /// The running container `c` of the pod with this UID.
    pub fn get(&self, uid: &str, c: &str) -> Option<Live> {
        self.live
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&(uid.to_string(), c.to_string()))
            .cloned()
    }
}

/// The busybox root a pod's own container runs in on this node (made on first use).
pub fn container_root(node_root: &Path) -> std::io::Result<PathBuf> {
    let dir = node_root.join("var/lib/aks-sim/container");
    if dir.join("bin/sh").exists() {
        return Ok(dir);
    }
    for d in ["bin", "tmp", "proc", "etc"] {
        std::fs::create_dir_all(dir.join(d))?;
    }
    let bb = dir.join("bin/busybox");
    if !bb.exists() {
        std::fs::hard_link(node_root.join("bin/busybox"), &bb)
            .or_else(|_| std::fs::copy(node_root.join("bin/busybox"), &bb).map(|_| ()))?;
    }
    let st = std::process::Command::new("/usr/sbin/chroot")
        .arg(&dir)
        .args(["/bin/busybox", "--install", "-s", "/bin"])
        .status()?;
    if !st.success() {
        return Err(std::io::Error::other("busybox --install failed"));
    }
    Ok(dir)
}

/// This container runs its command for real (see the module's documentation).
pub fn runs_for_real(pod: &Value, c: &Value) -> bool {
    let command = c["command"].as_array().is_some_and(|a| !a.is_empty());
    let host_root = host_root_mount(pod, c).is_some();
    pod["spec"]["restartPolicy"] == "Never" && command && (c["stdin"].as_bool() == Some(true) || host_root)
}

/// Where the container mounts a `hostPath` volume of `/`.
fn host_root_mount(pod: &Value, c: &Value) -> Option<String> {
    let vols = pod["spec"]["volumes"].as_array()?;
    c["volumeMounts"].as_array()?.iter().find_map(|m| {
        let v = vols.iter().find(|v| v["name"] == m["name"])?;
        let path = v["hostPath"]["path"].as_str()?;
        (path.trim_end_matches('/').is_empty()).then(|| m["mountPath"].as_str().map(str::to_string))?
    })
}

/// The kubelet starts a container: a real process, or an emulated one's start line.
pub fn start(shared: &Arc<Shared>, pod: &Value, node: &str) {
    let uid = pod["metadata"]["uid"].as_str().unwrap_or("").to_string();
    for c in pod["spec"]["containers"].as_array().into_iter().flatten() {
        let name = c["name"].as_str().unwrap_or("").to_string();
        shared.pod_logs.start(&uid, &name);
        if runs_for_real(pod, c) {
            if let Err(e) = run(shared, pod, c, node) {
                shared.pod_logs.write(
                    &uid,
                    &name,
                    format!("aks-sim: cannot start the container: {e}\n").as_bytes(),
                );
                finish(shared, pod, &name, 128);
            }
        } else {
            emulated(shared, pod, c, node);
        }
    }
}

/// The start line of an emulated container (aks-sim runs no image: this is all it prints).
fn emulated(shared: &Shared, pod: &Value, c: &Value, node: &str) {
    let uid = pod["metadata"]["uid"].as_str().unwrap_or("");
    let name = c["name"].as_str().unwrap_or("");
    let restarts = pod["status"]["containerStatuses"]
        .as_array()
        .and_then(|cs| cs.iter().find(|s| s["name"] == name))
        .and_then(|s| s["restartCount"].as_i64())
        .unwrap_or(0);
    let line = format!(
        "aks-sim: container {name} started on node {node} (image {}, restart {restarts}); aks-sim runs no image, so this is all it prints\n",
        c["image"].as_str().unwrap_or("")
    );
    shared.pod_logs.write(uid, name, line.as_bytes());
}

/// Pods created already running (the scenario's workloads): their containers' start lines.
pub fn start_emulated(shared: &Shared, pod: &Value, node: &str) {
    let uid = pod["metadata"]["uid"].as_str().unwrap_or("");
    for c in pod["spec"]["containers"].as_array().into_iter().flatten() {
        shared.pod_logs.start(uid, c["name"].as_str().unwrap_or(""));
        emulated(shared, pod, c, node);
    }
}

fn run(shared: &Arc<Shared>, pod: &Value, c: &Value, node: &str) -> std::io::Result<()> {
    let rt = shared
        .node_runtime
        .get()
        .ok_or_else(|| std::io::Error::other("no node runtime"))?;
    let node_root = rt
        .node_root(node)
        .ok_or_else(|| std::io::Error::other(format!("node {node} has no root in aks-sim (not a Linux node)")))?
        .to_path_buf();
    let root = container_root(&node_root)?;
    let mut argv: Vec<String> = c["command"]
        .as_array()
        .into_iter()
        .flatten()
        .chain(c["args"].as_array().into_iter().flatten())
        .filter_map(|a| a.as_str().map(str::to_string))
        .collect();
    if argv.is_empty() {
        argv.push("sh".into());
    }
    let tty = c["tty"].as_bool() == Some(true);
    let stdin = c["stdin"].as_bool() == Some(true);
    let mut running = proc::spawn(proc::Spawn {
        root: &root,
        argv: &argv,
        hostname: node,
        stdin,
        tty,
        host: host_root_mount(pod, c).map(|m| (node_root.clone(), m)),
    })?;
    let uid = pod["metadata"]["uid"].as_str().unwrap_or("").to_string();
    let name = c["name"].as_str().unwrap_or("").to_string();
    let (output, _) = tokio::sync::broadcast::channel(256);
    let (exited_tx, exited) = tokio::sync::watch::channel(false);
    let stdin_tx = running.stdin.take().map(|mut w| {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<u8>>(64);
        tokio::spawn(async move {
            while let Some(b) = rx.recv().await {
                if w.write_all(&b).await.is_err() || w.flush().await.is_err() {
                    break;
                }
            }
        });
        tx
    });
    let live = Live {
        stdin: stdin_tx,
        output: output.clone(),
        pty: running.pty.clone(),
        exited,
    };
    shared
        .containers
        .live
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert((uid.clone(), name.clone()), live);
    let pumps: Vec<_> = [
        (running.stdout.take(), Stream::Stdout),
        (running.stderr.take(), Stream::Stderr),
    ]
    .into_iter()
    .filter_map(|(r, ch)| r.map(|r| (r, ch)))
    .map(|(mut r, ch)| {
        let (s, uid, name, output) = (shared.clone(), uid.clone(), name.clone(), output.clone());
        tokio::spawn(async move {
            let mut buf = vec![0u8; 32 * 1024];
            while let Ok(n) = r.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                s.pod_logs.write(&uid, &name, &buf[..n]);
                let _ = output.send((ch, buf[..n].to_vec()));
            }
        })
    })
    .collect();
    let (s, pod) = (shared.clone(), pod.clone());
    let pid = running.pid;
    tokio::spawn(async move {
        let mut child = running.child;
        let wait = async {
            let st = child.wait().await;
            for p in pumps {
                let _ = p.await;
            }
            st
        };
        tokio::pin!(wait);
        let status = loop {
            tokio::select! {
                st = &mut wait => break st,
                _ = tokio::time::sleep(std::time::Duration::from_millis(500)) => {
                    // The pod is being deleted (or gone): the kubelet kills its containers.
                    let cur = s.store.get(PODS, pod["metadata"]["namespace"].as_str(), pod["metadata"]["name"].as_str().unwrap_or(""));
                    if !cur.is_some_and(|p| p["metadata"]["uid"] == pod["metadata"]["uid"] && !pods::is_terminating(&p)) {
                        // SAFETY: signalling the process group of a child we started.
                        unsafe { libc::kill(-pid, libc::SIGKILL) };
                    }
                }
            }
        };
        use std::os::unix::process::ExitStatusExt;
        let code = match status {
            Ok(st) => st.code().unwrap_or_else(|| 128 + st.signal().unwrap_or(9)),
            Err(_) => 128,
        };
        s.pod_logs.end(&uid, &name);
        s.containers
            .live
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&(uid.clone(), name.clone()));
        finish(&s, &pod, &name, code);
        let _ = exited_tx.send(true);
    });
    Ok(())
}

/// The container exited with `code`: `terminated`, and the pod done once all of them are.
fn finish(shared: &Shared, pod: &Value, container: &str, code: i32) {
    let ns = pod["metadata"]["namespace"].as_str().unwrap_or("");
    let name = pod["metadata"]["name"].as_str().unwrap_or("");
    let uid = pod["metadata"]["uid"].clone();
    let now = crate::time::now_rfc3339();
    let r = shared.store.update_with(PODS, Some(ns), name, None, |o| {
        if o["metadata"]["uid"] != uid || matches!(pods::phase(o), "Succeeded" | "Failed") {
            return Ok(());
        }
        let st = &mut o["status"];
        for cs in st["containerStatuses"].as_array_mut().into_iter().flatten() {
            if cs["name"] == container {
                let started = cs["state"]["running"]["startedAt"].clone();
                cs["state"] = json!({"terminated": {
                    "exitCode": code, "reason": if code == 0 { "Completed" } else { "Error" },
                    "startedAt": started, "finishedAt": now, "containerID": cs["containerID"].clone(),
                }});
                cs["ready"] = json!(false);
                cs["started"] = json!(false);
            }
        }
        let all: Vec<i64> = st["containerStatuses"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c["state"]["terminated"]["exitCode"].as_i64())
            .collect();
        let total = st["containerStatuses"].as_array().map_or(0, Vec::len);
        let done = all.len() == total;
        for cond in st["conditions"].as_array_mut().into_iter().flatten() {
            if matches!(cond["type"].as_str(), Some("Ready" | "ContainersReady")) {
                cond["status"] = json!("False");
                cond["reason"] = json!(if done { "PodCompleted" } else { "ContainersNotReady" });
                cond["lastTransitionTime"] = json!(now);
            }
        }
        if done {
            st["phase"] = json!(if all.iter().all(|c| *c == 0) {
                "Succeeded"
            } else {
                "Failed"
            });
        }
        Ok(())
    });
    if let Err(e) = r {
        tracing::debug!("container {container} of {ns}/{name} ended, pod gone: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_pods_run_for_real_workloads_do_not() {
        let debug = json!({"spec": {"restartPolicy": "Never",
            "volumes": [{"name": "host-root", "hostPath": {"path": "/"}}],
            "containers": [{"name": "debugger", "command": ["chroot", "/host", "uname", "-r"],
                            "volumeMounts": [{"name": "host-root", "mountPath": "/host"}]}]}});
        let c = &debug["spec"]["containers"][0];
        assert!(runs_for_real(&debug, c));
        assert_eq!(host_root_mount(&debug, c).as_deref(), Some("/host"));
        let shell = json!({"spec": {"restartPolicy": "Never",
            "containers": [{"name": "shell", "command": ["sleep", "86400"]}]}});
        assert!(!runs_for_real(&shell, &shell["spec"]["containers"][0]));
        let web = json!({"spec": {"containers": [{"name": "web", "stdin": true, "command": ["sh"]}]}});
        assert!(
            !runs_for_real(&web, &web["spec"]["containers"][0]),
            "restartPolicy Always is emulated"
        );
    }
}
