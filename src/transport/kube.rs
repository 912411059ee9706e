//! The Kubernetes transport (`--via kube`): a short-lived node-shell pod pinned to each node
//! (`nodeName`, host PID/network/IPC namespaces, a privileged container, every taint
//! tolerated), commands run as `nsenter -t 1 -m -u -i -n -p -- sh -c SCRIPT` through
//! `pods/exec` over WebSocket (kube-rs `ws`: `v5.channel.k8s.io`, else `v4`), the exit code
//! read from the status channel. Pods carry `app.kubernetes.io/managed-by=aks-patch` and the
//! run id, are deleted after use, and those a killed run left are found and removed by the
//! next one ([`KubeShell::remove_leftovers`]).

use super::{NodeShell, ShellError};
use crate::kube::access::Need;
use crate::kube::drain::LeaveAlone;
use crate::kube::error::{describe_kube_error, is_transient};
use crate::node::{CommandOutput, NodeTarget};
use crate::retry::with_retry;
use async_trait::async_trait;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, AttachParams, DeleteParams, ListParams, PostParams};
use serde_json::json;
use std::collections::HashMap;
use std::time::Duration;
use tokio::io::AsyncReadExt;

/// The label every aks-patch pod carries.
pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
pub const MANAGED_BY_VALUE: &str = "aks-patch";
/// The label naming the node-shell pods (value: the run id).
pub const RUN_LABEL: &str = "aks-patch.io/run";
/// The annotation naming the process that created the pod (`host/pid`).
pub const OWNER_ANNOTATION: &str = "aks-patch.io/owner";
/// An image AKS nodes can always pull (mcr.microsoft.com), with `nsenter` and `sh`.
pub const DEFAULT_IMAGE: &str = "mcr.microsoft.com/azurelinux/busybox:1.36";
pub const DEFAULT_NAMESPACE: &str = "kube-system";

/// The label selector of aks-patch's node-shell pods.
pub fn selector() -> String {
    format!("{MANAGED_BY}={MANAGED_BY_VALUE},{RUN_LABEL}")
}

/// aks-patch's node-shell pods, for drains to leave alone: aks-patch deletes them itself.
pub fn node_shell_pods() -> LeaveAlone {
    LeaveAlone {
        labels: vec![
            (MANAGED_BY.to_string(), Some(MANAGED_BY_VALUE.to_string())),
            (RUN_LABEL.to_string(), None),
        ],
        why: "aks-patch's own node-shell pod (deleted by aks-patch)".into(),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum NodeShellError {
    #[error("cannot create the node-shell pod for node {node} in namespace {namespace}: {}", crate::kube::error::describe_kube_error(.source))]
    Create {
        node: String,
        namespace: String,
        #[source]
        source: kube::Error,
    },
    #[error("the node-shell pod {pod} on node {node} cannot start: {reason}")]
    CannotStart { node: String, pod: String, reason: String },
    #[error("the node-shell pod {pod} did not start on node {node} within {}s (--connect-timeout): {state}", after.as_secs())]
    StartTimeout {
        node: String,
        pod: String,
        state: String,
        after: Duration,
    },
    #[error("exec into the node-shell pod {pod} on node {node} was refused: {}", crate::kube::error::describe_kube_error(.source))]
    ExecRefused {
        node: String,
        pod: String,
        #[source]
        source: kube::Error,
    },
    #[error("the exec stream to node {node} (pod {pod}) was cut")]
    Disconnected { node: String, pod: String },
    #[error("the command on node {node} (pod {pod}) timed out after {}s", after.as_secs())]
    Timeout { node: String, pod: String, after: Duration },
    #[error("the command on node {node} (pod {pod}) failed: {message}")]
    Failed { node: String, pod: String, message: String },
    /// Starting the command failed for as long as the retry policy allows, for a reason
    /// worth retrying (5xx, reset connections, timeouts): the API server was unreachable,
    /// not refusing.
    #[error("cannot start a command in the node-shell pod {pod} on node {node}: the API server did not answer ({}) (check the API server's health and retry)", describe_kube_error(.source))]
    ExecUnreachable {
        node: String,
        pod: String,
        #[source]
        source: kube::Error,
    },
}

fn status_code(e: &kube::Error) -> Option<u16> {
    match e {
        kube::Error::Api(s) => Some(s.code),
        _ => None,
    }
}

impl NodeShellError {
    pub fn disconnected(&self) -> bool {
        matches!(self, NodeShellError::Disconnected { .. })
    }

    pub fn auth(&self) -> bool {
        match self {
            NodeShellError::Create { source, .. } | NodeShellError::ExecRefused { source, .. } => {
                matches!(status_code(source), Some(401 | 403))
            }
            _ => false,
        }
    }
}

/// How the node-shell pods are made.
#[derive(Debug, Clone)]
pub struct KubeShellOptions {
    pub namespace: String,
    pub image: String,
    /// How long a pod may take to start (`--connect-timeout`).
    pub start_timeout: Duration,
    pub run_id: String,
    /// `host/pid` of this process, so that the next run knows whether the creator is alive.
    pub owner: String,
}

pub struct KubeShell {
    client: kube::Client,
    opts: KubeShellOptions,
    /// The pod of each node.
    pods: tokio::sync::Mutex<HashMap<String, String>>,
}

impl KubeShell {
    pub fn new(client: kube::Client, opts: KubeShellOptions) -> KubeShell {
        KubeShell {
            client,
            opts,
            pods: tokio::sync::Mutex::new(HashMap::new()),
        }
    }

    fn api(&self) -> Api<Pod> {
        Api::namespaced(self.client.clone(), &self.opts.namespace)
    }

    /// Delete the node-shell pods a killed run left behind: those whose creator (`host/pid`)
    /// is this host and no longer alive, and finished ones. Returns the names deleted and
    /// those left to a live run.
    pub async fn remove_leftovers(&self, this_host: &str) -> Result<(Vec<String>, Vec<String>), kube::Error> {
        let lp = ListParams::default().labels(&selector());
        let api = self.api();
        let pods = with_retry("listing node-shell pods", || api.list(&lp)).await?;
        let (mut removed, mut kept) = (vec![], vec![]);
        for p in pods.items {
            let name = p.metadata.name.clone().unwrap_or_default();
            let owner = p
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(OWNER_ANNOTATION).cloned())
                .unwrap_or_default();
            let finished = p
                .status
                .as_ref()
                .and_then(|s| s.phase.as_deref())
                .is_some_and(|ph| matches!(ph, "Failed" | "Succeeded"));
            let dead = match owner.rsplit_once('/') {
                Some((host, pid)) if host == this_host => {
                    !std::path::Path::new("/proc").join(pid).exists() || pid == std::process::id().to_string()
                }
                // No owner, or another machine's: only a finished pod is surely abandoned.
                _ => owner.is_empty(),
            };
            if dead || finished {
                let dp = DeleteParams::default().grace_period(0);
                let what = format!("deleting the node-shell pod {name}");
                match with_retry(&what, || api.delete(&name, &dp)).await {
                    Ok(_) => removed.push(name),
                    Err(kube::Error::Api(s)) if s.code == 404 => removed.push(name),
                    Err(e) => return Err(e),
                }
            } else {
                kept.push(name);
            }
        }
        Ok((removed, kept))
    }

    fn pod_manifest(&self, name: &str, node: &str) -> Pod {
        pod_manifest(&self.opts, name, node)
    }

    /// The node's pod, created and Running.
    async fn pod_for(&self, node: &str) -> Result<String, NodeShellError> {
        if let Some(p) = self.pods.lock().await.get(node) {
            return Ok(p.clone());
        }
        let suffix: String = {
            use rand::Rng;
            let mut r = rand::rng();
            (0..5)
                .map(|_| {
                    let c = r.random_range(0..36u8);
                    (if c < 10 { b'0' + c } else { b'a' + c - 10 }) as char
                })
                .collect()
        };
        let name = format!("aks-patch-shell-{suffix}");
        let manifest = self.pod_manifest(&name, node);
        let pp = PostParams::default();
        // A create retried after a lost answer finds the pod made by the first attempt (its
        // name is this run's random one): that is success.
        let attempts = std::sync::atomic::AtomicU32::new(0);
        let what = format!("creating the node-shell pod {name} for node {node}");
        let api = self.api();
        let created = with_retry(&what, || {
            attempts.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            api.create(&pp, &manifest)
        })
        .await;
        match created {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 409 && attempts.into_inner() > 1 => {}
            Err(source) => {
                return Err(NodeShellError::Create {
                    node: node.to_string(),
                    namespace: self.opts.namespace.clone(),
                    source,
                })
            }
        }
        self.pods.lock().await.insert(node.to_string(), name.clone());
        match self.wait_running(node, &name).await {
            Ok(()) => Ok(name),
            Err(e) => {
                self.release_named(node).await;
                Err(e)
            }
        }
    }

    async fn wait_running(&self, node: &str, name: &str) -> Result<(), NodeShellError> {
        let deadline = tokio::time::Instant::now() + self.opts.start_timeout;
        let mut state = "Pending".to_string();
        loop {
            if let Ok(p) = self.api().get(name).await {
                let st = p.status.unwrap_or_default();
                let phase = st.phase.clone().unwrap_or_else(|| "Pending".into());
                if phase == "Running" {
                    return Ok(());
                }
                let waiting = st
                    .container_statuses
                    .unwrap_or_default()
                    .into_iter()
                    .find_map(|c| c.state.and_then(|s| s.waiting));
                if let Some(w) = &waiting {
                    let reason = w.reason.clone().unwrap_or_default();
                    if matches!(
                        reason.as_str(),
                        "ErrImagePull"
                            | "ImagePullBackOff"
                            | "InvalidImageName"
                            | "CreateContainerConfigError"
                            | "CreateContainerError"
                    ) {
                        return Err(NodeShellError::CannotStart {
                            node: node.to_string(),
                            pod: name.to_string(),
                            reason: format!(
                                "{reason}: {} (image {}; choose another with --node-shell-image)",
                                w.message.clone().unwrap_or_default(),
                                self.opts.image
                            ),
                        });
                    }
                    state = format!("{phase}, {reason}");
                } else if matches!(phase.as_str(), "Failed" | "Succeeded") {
                    return Err(NodeShellError::CannotStart {
                        node: node.to_string(),
                        pod: name.to_string(),
                        reason: format!("it is {phase}: {}", st.message.unwrap_or_default()),
                    });
                } else {
                    state = phase;
                }
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(NodeShellError::StartTimeout {
                    node: node.to_string(),
                    pod: name.to_string(),
                    state: format!("still {state} (is the node Ready?)"),
                    after: self.opts.start_timeout,
                });
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn release_named(&self, node: &str) {
        let name = self.pods.lock().await.remove(node);
        if let Some(name) = name {
            if let Err(e) = self.api().delete(&name, &DeleteParams::default().grace_period(0)).await {
                if status_code(&e) != Some(404) {
                    tracing::warn!(
                        "cannot delete the node-shell pod {name}: {}",
                        crate::kube::error::describe_kube_error(&e)
                    );
                }
            }
        }
    }

    async fn exec(
        &self,
        node: &str,
        pod: &str,
        script: &str,
        timeout: Duration,
    ) -> Result<CommandOutput, NodeShellError> {
        let argv = [
            "nsenter", "-t", "1", "-m", "-u", "-i", "-n", "-p", "--", "sh", "-c", script,
        ];
        // Starting the command is retried as every API call (it has not run yet); a refusal
        // (403, a pod not running) is not.
        let ap = AttachParams::default().stdin(false).stdout(true).stderr(true);
        let what = format!("starting a command in the node-shell pod {pod} on node {node}");
        let api = self.api();
        let mut p = with_retry(&what, || api.exec(pod, argv, &ap)).await.map_err(|source| {
            let (node, pod) = (node.to_string(), pod.to_string());
            if is_transient(&source) {
                NodeShellError::ExecUnreachable { node, pod, source }
            } else {
                NodeShellError::ExecRefused { node, pod, source }
            }
        })?;
        let status = p.take_status();
        let (mut out, mut err) = (p.stdout(), p.stderr());
        let read = async {
            let (mut o, mut e) = (Vec::new(), Vec::new());
            let ro = async {
                if let Some(r) = out.as_mut() {
                    let _ = r.read_to_end(&mut o).await;
                }
            };
            let re = async {
                if let Some(r) = err.as_mut() {
                    let _ = r.read_to_end(&mut e).await;
                }
            };
            tokio::join!(ro, re);
            let st = match status {
                Some(s) => s.await,
                None => None,
            };
            (o, e, st)
        };
        // The stream's task: when the connection breaks (a reboot may drop it without a
        // WebSocket close), kube-rs ends it with an error and the readers never see EOF.
        let join = p.join();
        let both = async {
            tokio::pin!(read, join);
            tokio::select! {
                r = &mut read => Some(r),
                j = &mut join => match j {
                    Ok(()) => Some(read.await),
                    Err(e) => {
                        tracing::debug!("the exec stream to {node} ended: {e}");
                        None
                    }
                },
            }
        };
        let (o, e, st) = match tokio::time::timeout(timeout, both).await {
            Ok(Some(x)) => x,
            Ok(None) => {
                return Err(NodeShellError::Disconnected {
                    node: node.to_string(),
                    pod: pod.to_string(),
                })
            }
            Err(_) => {
                return Err(NodeShellError::Timeout {
                    node: node.to_string(),
                    pod: pod.to_string(),
                    after: timeout,
                });
            }
        };
        let stdout = String::from_utf8_lossy(&o).into_owned();
        let stderr = String::from_utf8_lossy(&e).into_owned();
        let Some(st) = st else {
            return Err(NodeShellError::Disconnected {
                node: node.to_string(),
                pod: pod.to_string(),
            });
        };
        let exit_code = match st.status.as_deref() {
            Some("Success") => 0,
            _ if st.reason.as_deref() == Some("NonZeroExitCode") => st
                .details
                .as_ref()
                .and_then(|d| d.causes.as_ref())
                .and_then(|c| c.iter().find(|c| c.reason.as_deref() == Some("ExitCode")))
                .and_then(|c| c.message.as_deref())
                .and_then(|m| m.parse().ok())
                .unwrap_or(1),
            _ => {
                return Err(NodeShellError::Failed {
                    node: node.to_string(),
                    pod: pod.to_string(),
                    message: st.message.unwrap_or_else(|| "no message".into()),
                })
            }
        };
        Ok(CommandOutput {
            stdout,
            stderr,
            exit_code,
        })
    }
}

#[async_trait]
impl NodeShell for KubeShell {
    async fn run(&self, node: &NodeTarget, script: &str, timeout: Duration) -> Result<CommandOutput, ShellError> {
        let pod = self.pod_for(&node.name).await?;
        let r = self.exec(&node.name, &pod, script, timeout).await;
        if r.is_err() {
            // A pod whose stream broke (a reboot, a refusal) is not reused.
            self.release_named(&node.name).await;
        }
        Ok(r?)
    }

    async fn release(&self, node: &NodeTarget) {
        self.release_named(&node.name).await;
    }

    async fn release_all(&self) {
        let nodes: Vec<String> = self.pods.lock().await.keys().cloned().collect();
        for n in nodes {
            self.release_named(&n).await;
        }
    }
}

/// The node-shell pod for `node`.
fn pod_manifest(opts: &KubeShellOptions, name: &str, node: &str) -> Pod {
    serde_json::from_value(json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": name,
                "namespace": opts.namespace,
                "labels": {MANAGED_BY: MANAGED_BY_VALUE, RUN_LABEL: opts.run_id, "app.kubernetes.io/name": "aks-patch-node-shell"},
                "annotations": {OWNER_ANNOTATION: opts.owner, "aks-patch.io/node": node},
            },
            "spec": {
                "nodeName": node,
                "hostPID": true,
                "hostNetwork": true,
                "hostIPC": true,
                "restartPolicy": "Never",
                "terminationGracePeriodSeconds": 0,
                "automountServiceAccountToken": false,
                "tolerations": [{"operator": "Exists"}],
                "containers": [{
                    "name": "shell",
                    "image": opts.image,
                    "command": ["sleep", "86400"],
                    "securityContext": {"privileged": true},
                    "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}, "limits": {"memory": "256Mi"}},
                }],
            }
        }))
    .expect("the node-shell pod manifest is a Pod")
}

/// What `--via kube` needs in the node-shell namespace: its pods and `pods/exec` (WebSocket
/// exec is a GET that the API server also checks for `create`).
pub fn shell_needs(namespace: &str) -> Vec<Need> {
    vec![
        Need::namespaced("create", "", "pods", namespace),
        Need::namespaced("get", "", "pods", namespace),
        Need::namespaced("list", "", "pods", namespace),
        Need::namespaced("delete", "", "pods", namespace),
        Need::namespaced("get", "", "pods", namespace).subresource("exec"),
        Need::namespaced("create", "", "pods", namespace).subresource("exec"),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_exec_is_told_by_the_api_servers_message() {
        let e = NodeShellError::ExecRefused {
            node: "n0".into(),
            pod: "aks-patch-shell-n0".into(),
            source: kube::Error::Api(
                kube::core::Status::failure(
                    "pods \"aks-patch-shell-n0\" is forbidden: exec into pods is denied",
                    "Forbidden",
                )
                .with_code(403)
                .boxed(),
            ),
        };
        let text = e.to_string();
        assert!(!text.contains("Status {"), "{text}");
        assert!(
            text.ends_with("was refused: HTTP 403 pods \"aks-patch-shell-n0\" is forbidden: exec into pods is denied"),
            "{text}"
        );
        assert!(e.auth());
    }

    #[test]
    fn permissions_are_named_as_a_user_would_grant_them() {
        let shell: Vec<String> = shell_needs("kube-system").iter().map(Need::to_string).collect();
        assert!(shell.contains(&"get pods/exec in namespace kube-system".to_string()));
        assert!(shell.contains(&"create pods/exec in namespace kube-system".to_string()));
        assert!(shell.contains(&"delete pods in namespace kube-system".to_string()));
    }

    #[test]
    fn the_node_shell_pod_is_pinned_privileged_and_tolerates_everything() {
        let client_free = KubeShellOptions {
            namespace: "kube-system".into(),
            image: DEFAULT_IMAGE.into(),
            start_timeout: Duration::from_secs(5),
            run_id: "20261202T010000Z-00ff".into(),
            owner: "host/1".into(),
        };
        let v = serde_json::to_value(pod_manifest(&client_free, "p", "node-1")).unwrap();
        assert_eq!(v["spec"]["nodeName"], "node-1");
        for k in ["hostPID", "hostNetwork", "hostIPC"] {
            assert_eq!(v["spec"][k], true, "{k}");
        }
        assert_eq!(v["spec"]["restartPolicy"], "Never");
        assert_eq!(v["spec"]["tolerations"], json!([{"operator": "Exists"}]));
        assert_eq!(v["spec"]["containers"][0]["securityContext"]["privileged"], true);
        assert_eq!(v["metadata"]["labels"][MANAGED_BY], MANAGED_BY_VALUE);
        assert_eq!(v["metadata"]["labels"][RUN_LABEL], "20261202T010000Z-00ff");
        let pod: Pod = serde_json::from_value(v).unwrap();
        assert!(node_shell_pods().matches(&pod));
    }
}
