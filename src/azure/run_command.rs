//! Reaching nodes through ARM alone (`--via run-command`): each node's VM scale set instance
//! from its `spec.providerID` (checked against the cluster's node resource group and the scale
//! set's `aks-managed-poolName` tag), scripts run as root by managed run commands, or by the
//! `RunShellScript` action where managed ones are refused, and reboots by `restart`.
//!
//! A run command returns only the last 4,096 bytes of its output, and the action no exit code.
//! So every script is framed ([`frame`]): it runs with its output kept on the node under
//! `/var/log/aks-patch/`, and what comes back is the output (only when it fits) followed by
//! one summary line (exit code and byte counts) printed last. [`unframe`] refuses an output
//! whose beginning was cut off or whose size does not match: it is never parsed as if whole.

use super::arm::compute::{InstanceMismatch, ProviderIdError, RunCommandKind, RunOutput, VmssInstance};
use super::arm::ArmClient;
use super::AzureError;
use crate::node::CommandOutput;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The most output returned whole: the 4,096-byte tail less the summary and markers.
pub const MAX_INLINE_OUTPUT: usize = 3000;
/// Longer outputs are not fetched (in pieces of [`MAX_INLINE_OUTPUT`], one run command each).
pub const MAX_FETCHED_OUTPUT: usize = 96 * 1024;
/// Where framed scripts keep their outputs on the node.
pub const LOG_DIR: &str = "/var/log/aks-patch";
const BEGIN: &str = "@@aks-patch-run-command:begin";
const SUMMARY: &str = "@@aks-patch-run-command:summary";
const STDERR_TAIL: usize = 800;

/// Why a script could not be run on a node through ARM.
#[derive(Debug, thiserror::Error)]
pub enum RunCommandError {
    #[error("node {node} cannot be reached by run command: {reason}")]
    NotMapped {
        node: String,
        #[source]
        reason: NotMapped,
    },
    #[error("ARM refused the run command on node {node} ({instance}): the identity may not perform {}", actions.join(" nor "))]
    Forbidden {
        node: String,
        instance: String,
        actions: Vec<&'static str>,
        #[source]
        source: Box<AzureError>,
    },
    #[error("the output of the run command on node {node} is {bytes} bytes, more than run commands return (a 4,096-byte tail each; aks-patch fetches up to {MAX_FETCHED_OUTPUT} bytes in pieces): it is kept on the node in {path}")]
    Truncated { node: String, bytes: usize, path: String },
    #[error("the output of the run command on node {node} was cut off (no complete summary line in the 4,096-byte tail ARM returns)")]
    Garbled { node: String },
    #[error("the run command on node {node} ({instance}) failed: {source}")]
    Azure {
        node: String,
        instance: String,
        #[source]
        source: Box<AzureError>,
    },
}

/// Why a node has no scale set instance to run commands on.
#[derive(Debug, Clone, thiserror::Error)]
pub enum NotMapped {
    #[error("it runs {os}: aks-patch runs shell scripts on Linux nodes only")]
    NotLinux { os: String },
    #[error(transparent)]
    ProviderId(#[from] ProviderIdError),
    #[error(transparent)]
    Mismatch(#[from] InstanceMismatch),
    #[error("cannot read its scale set {vmss}: {source}")]
    ScaleSetUnreadable {
        vmss: String,
        #[source]
        source: Arc<AzureError>,
    },
    #[error("it was not in the cluster when aks-patch started")]
    NotInCluster,
}

impl RunCommandError {
    /// Missing rights (exit code 4).
    pub fn auth(&self) -> bool {
        matches!(self, RunCommandError::Forbidden { .. })
            || matches!(self, RunCommandError::Azure { source, .. } if source.is_auth())
    }

    /// What to do about it.
    pub fn hint(&self) -> Option<String> {
        match self {
            RunCommandError::Forbidden { actions, .. } => Some(format!(
                "grant the identity {} on the node resource group (with node resource group lockdown, run commands are denied: use --via kube or --via ssh instead)",
                actions.join(" or ")
            )),
            RunCommandError::Truncated { path, .. } => {
                Some(format!("read {path} on the node, or use --via ssh / --via kube, which return whole outputs"))
            }
            _ => None,
        }
    }
}

/// Wrap `script` so that its output stays on the node and what comes back is complete or
/// recognisably not. `token` names the files (unique per call).
pub fn frame(script: &str, token: &str) -> String {
    let body = script.replace('\r', "");
    format!(
        "d={LOG_DIR}; mkdir -p \"$d\" && chmod 0750 \"$d\"\n\
         f=\"$d/run-command-{token}\"\n\
         cat >\"$f.sh\" <<'@@AKS_PATCH_SCRIPT_END@@'\n\
         {body}\n\
         @@AKS_PATCH_SCRIPT_END@@\n\
         sh \"$f.sh\" </dev/null >\"$f.out\" 2>\"$f.err\"; rc=$?\n\
         n=$(wc -c <\"$f.out\"); m=$(wc -c <\"$f.err\")\n\
         if [ \"$n\" -le {MAX_INLINE_OUTPUT} ]; then echo '{BEGIN}'; cat \"$f.out\"; echo; fi\n\
         tail -c {STDERR_TAIL} \"$f.err\" >&2\n\
         echo \"{SUMMARY} exit=$rc stdout=$n stderr=$m\"\n\
         if [ \"$n\" -le {MAX_INLINE_OUTPUT} ]; then rm -f \"$f.sh\" \"$f.out\" \"$f.err\"; fi\n"
    )
}

/// The exit code in a framed output's summary line.
fn summary_exit(stdout: &str) -> Option<i32> {
    let line = stdout.trim_end_matches('\n').rsplit('\n').next()?;
    line.strip_prefix(SUMMARY)?
        .split_whitespace()
        .find_map(|f| f.strip_prefix("exit="))
        .and_then(|v| v.parse().ok())
}

/// The script's own output and exit code out of a framed run command's output.
pub fn unframe(node: &str, token: &str, out: &RunOutput) -> Result<CommandOutput, RunCommandError> {
    let garbled = || RunCommandError::Garbled { node: node.to_string() };
    let text = out.stdout.trim_end_matches('\n');
    let (before, summary) = match text.rsplit_once('\n') {
        Some((b, s)) => (b, s),
        None => ("", text),
    };
    let fields = summary.strip_prefix(SUMMARY).ok_or_else(garbled)?;
    let mut exit = None;
    let mut bytes = None;
    for f in fields.split_whitespace() {
        match f.split_once('=') {
            Some(("exit", v)) => exit = v.parse::<i32>().ok(),
            Some(("stdout", v)) => bytes = v.parse::<usize>().ok(),
            _ => {}
        }
    }
    let (exit, bytes) = (exit.ok_or_else(garbled)?, bytes.ok_or_else(garbled)?);
    if bytes > MAX_INLINE_OUTPUT {
        return Err(RunCommandError::Truncated {
            node: node.to_string(),
            bytes,
            path: format!("{LOG_DIR}/run-command-{token}.out"),
        });
    }
    // `BEGIN\n` + output (the `echo` newline after it went with the summary's line); the
    // beginning must be there, and all of it.
    let (_, stdout) = before.split_once(&format!("{BEGIN}\n")).ok_or_else(garbled)?;
    if stdout.len() != bytes {
        return Err(garbled());
    }
    Ok(CommandOutput {
        stdout: stdout.to_string(),
        stderr: out.stderr.clone(),
        exit_code: exit,
    })
}

/// The nodes' instances, and the ARM client that runs commands on them.
pub struct RunCommandNodes {
    arm: Arc<ArmClient>,
    instances: HashMap<String, Result<VmssInstance, NotMapped>>,
    /// Managed run commands were refused (403): use the action from now on.
    action_only: AtomicBool,
    counter: std::sync::atomic::AtomicU64,
}

/// What the mapping needs to know of a Node.
#[derive(Debug, Clone)]
pub struct NodeInstanceRef {
    pub name: String,
    pub provider_id: Option<String>,
    /// `kubernetes.azure.com/agentpool` (or `agentpool`).
    pub pool: Option<String>,
    /// `status.nodeInfo.operatingSystem`.
    pub os: Option<String>,
}

impl NodeInstanceRef {
    /// What the mapping reads of a Node.
    pub fn of(node: &k8s_openapi::api::core::v1::Node) -> NodeInstanceRef {
        let labels = node.metadata.labels.as_ref();
        let label = |k: &str| labels.and_then(|l| l.get(k)).cloned();
        NodeInstanceRef {
            name: node.metadata.name.clone().unwrap_or_default(),
            provider_id: node.spec.as_ref().and_then(|s| s.provider_id.clone()),
            pool: label("kubernetes.azure.com/agentpool").or_else(|| label("agentpool")),
            os: node
                .status
                .as_ref()
                .and_then(|s| s.node_info.as_ref())
                .map(|i| i.operating_system.clone())
                .or_else(|| label("kubernetes.io/os")),
        }
    }
}

impl RunCommandNodes {
    /// Map every node to its scale set instance: from its providerID, in the cluster's
    /// subscription and node resource group, on a scale set tagged with its pool. A node
    /// that cannot be mapped keeps its reason (a per-node error later).
    pub async fn map(
        arm: Arc<ArmClient>,
        subscription: &str,
        node_resource_group: &str,
        nodes: &[NodeInstanceRef],
    ) -> Result<RunCommandNodes, AzureError> {
        let mut tags: HashMap<String, Result<super::arm::compute::VirtualMachineScaleSet, NotMapped>> = HashMap::new();
        let mut instances = HashMap::new();
        for n in nodes {
            let mapped = match Self::map_one(n, subscription, node_resource_group) {
                Err(reason) => Err(reason),
                Ok(vm) => {
                    let key = vm.vmss.to_ascii_lowercase();
                    if !tags.contains_key(&key) {
                        let got = match arm.get_vmss(&vm).await {
                            Ok(v) => Ok(v),
                            Err(e) if e.is_auth() => return Err(e),
                            Err(e) => Err(NotMapped::ScaleSetUnreadable {
                                vmss: vm.vmss.clone(),
                                source: Arc::new(e),
                            }),
                        };
                        tags.insert(key.clone(), got);
                    }
                    match (&tags[&key], &n.pool) {
                        (Err(e), _) => Err(e.clone()),
                        (Ok(vmss), Some(pool)) => vmss.check_pool(pool).map(|_| vm).map_err(NotMapped::from),
                        (Ok(_), None) => Ok(vm),
                    }
                }
            };
            instances.insert(n.name.clone(), mapped);
        }
        Ok(RunCommandNodes {
            arm,
            instances,
            action_only: AtomicBool::new(false),
            counter: Default::default(),
        })
    }

    fn map_one(n: &NodeInstanceRef, subscription: &str, node_rg: &str) -> Result<VmssInstance, NotMapped> {
        if let Some(os) = n.os.as_deref().filter(|o| !o.eq_ignore_ascii_case("linux")) {
            return Err(NotMapped::NotLinux { os: os.to_string() });
        }
        let vm = VmssInstance::from_provider_id(n.provider_id.as_deref().unwrap_or(""))?;
        vm.check_cluster(subscription, node_rg)?;
        Ok(vm)
    }

    /// The node's instance, or why it has none.
    pub fn instance(&self, node: &str) -> Result<&VmssInstance, RunCommandError> {
        match self.instances.get(node) {
            Some(Ok(vm)) => Ok(vm),
            Some(Err(reason)) => Err(RunCommandError::NotMapped {
                node: node.to_string(),
                reason: reason.clone(),
            }),
            None => Err(RunCommandError::NotMapped {
                node: node.to_string(),
                reason: NotMapped::NotInCluster,
            }),
        }
    }

    /// Which kind of run command the next call uses.
    pub fn kind(&self) -> RunCommandKind {
        if self.action_only.load(Ordering::Relaxed) {
            RunCommandKind::Action
        } else {
            RunCommandKind::Managed
        }
    }

    /// Run `script` as root on the node within `timeout`; its whole output and exit code.
    pub async fn run(&self, node: &str, script: &str, timeout: Duration) -> Result<CommandOutput, RunCommandError> {
        let vm = self.instance(node)?;
        let token = format!(
            "{}-{}",
            std::process::id(),
            self.counter.fetch_add(1, Ordering::Relaxed)
        );
        let framed = frame(script, &token);
        let name = format!("aks-patch-{token}");
        let mut kind = self.kind();
        loop {
            match self.arm.run_command(vm, kind, &name, &framed, timeout).await {
                Ok(out) => {
                    return match unframe(node, &token, &out) {
                        Err(RunCommandError::Truncated { bytes, path, .. }) if bytes <= MAX_FETCHED_OUTPUT => {
                            let stderr = out.stderr.clone();
                            let exit = summary_exit(&out.stdout);
                            let stdout = self.fetch_kept(node, &path, bytes, timeout).await?;
                            Ok(CommandOutput {
                                stdout,
                                stderr,
                                exit_code: exit.unwrap_or(-1),
                            })
                        }
                        other => other,
                    };
                }
                Err(e) if e.is_auth() && kind == RunCommandKind::Managed => {
                    tracing::info!(
                        "node {node}: managed run commands refused ({e}); falling back to the RunShellScript action"
                    );
                    self.action_only.store(true, Ordering::Relaxed);
                    kind = RunCommandKind::Action;
                }
                Err(e) if e.is_auth() => {
                    // Managed run commands were refused first (here or on an earlier call).
                    return Err(RunCommandError::Forbidden {
                        node: node.to_string(),
                        instance: vm.to_string(),
                        actions: vec![
                            RunCommandKind::Managed.rbac_action(),
                            RunCommandKind::Action.rbac_action(),
                        ],
                        source: Box::new(e),
                    });
                }
                Err(e) => {
                    return Err(RunCommandError::Azure {
                        node: node.to_string(),
                        instance: vm.to_string(),
                        source: Box::new(e),
                    })
                }
            }
        }
    }

    /// An output too long for one run command, kept on the node at `path` (`bytes` long):
    /// fetched in pieces that each fit, checked to add up, then removed from the node.
    async fn fetch_kept(
        &self,
        node: &str,
        path: &str,
        bytes: usize,
        timeout: Duration,
    ) -> Result<String, RunCommandError> {
        tracing::info!(
            "node {node}: the output is {bytes} bytes; fetching it in {} pieces",
            bytes.div_ceil(MAX_INLINE_OUTPUT)
        );
        let quoted = crate::node::sh_quote(path);
        let mut whole = String::with_capacity(bytes);
        let mut offset = 0;
        while offset < bytes {
            let piece = Box::pin(self.run(
                node,
                &format!("tail -c +{} {quoted} | head -c {MAX_INLINE_OUTPUT}", offset + 1),
                timeout,
            ))
            .await?;
            if piece.exit_code != 0 || piece.stdout.is_empty() {
                return Err(RunCommandError::Truncated {
                    node: node.to_string(),
                    bytes,
                    path: path.to_string(),
                });
            }
            offset += piece.stdout.len();
            whole.push_str(&piece.stdout);
        }
        if whole.len() != bytes {
            return Err(RunCommandError::Garbled { node: node.to_string() });
        }
        let stem = path.strip_suffix(".out").unwrap_or(path);
        let _ = Box::pin(self.run(
            node,
            &format!(
                "rm -f {} {} {}",
                crate::node::sh_quote(&format!("{stem}.sh")),
                quoted,
                crate::node::sh_quote(&format!("{stem}.err"))
            ),
            timeout,
        ))
        .await;
        Ok(whole)
    }

    /// Restart the node's VM through ARM and wait for the operation (the VM runs again).
    pub async fn restart(&self, node: &str, timeout: Duration) -> Result<(), RunCommandError> {
        let vm = self.instance(node)?;
        self.arm
            .restart_instance(vm, timeout)
            .await
            .map_err(|e| RunCommandError::Azure {
                node: node.to_string(),
                instance: vm.to_string(),
                source: Box::new(e),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn out(stdout: &str) -> RunOutput {
        RunOutput {
            kind: RunCommandKind::Action,
            stdout: stdout.into(),
            stderr: String::new(),
            exit_code: None,
            state: None,
        }
    }

    #[test]
    fn a_whole_output_is_unframed_with_its_exit_code() {
        let o = unframe(
            "n1",
            "t",
            &out(&format!(
                "{BEGIN}\nhello\nworld\n\n{SUMMARY} exit=3 stdout=12 stderr=0\n"
            )),
        )
        .unwrap();
        assert_eq!(o.stdout, "hello\nworld\n");
        assert_eq!(o.exit_code, 3);
        let empty = unframe(
            "n1",
            "t",
            &out(&format!("{BEGIN}\n\n{SUMMARY} exit=0 stdout=0 stderr=0\n")),
        )
        .unwrap();
        assert_eq!(empty.stdout, "");
    }

    #[test]
    fn a_cut_or_oversized_output_is_refused() {
        let e = unframe("n1", "t", &out(&format!("{SUMMARY} exit=0 stdout=9000 stderr=0\n"))).unwrap_err();
        assert!(matches!(e, RunCommandError::Truncated { bytes: 9000, .. }), "{e}");
        assert!(e.to_string().contains("/var/log/aks-patch/run-command-t.out"));
        // The head was lost: no begin marker.
        let e = unframe("n1", "t", &out(&format!("ld\n\n{SUMMARY} exit=0 stdout=12 stderr=0\n"))).unwrap_err();
        assert!(matches!(e, RunCommandError::Garbled { .. }));
        // Sizes disagree.
        let e = unframe(
            "n1",
            "t",
            &out(&format!("{BEGIN}\nhello\n\n{SUMMARY} exit=0 stdout=12 stderr=0\n")),
        )
        .unwrap_err();
        assert!(matches!(e, RunCommandError::Garbled { .. }));
        // No summary at all.
        assert!(matches!(
            unframe("n1", "t", &out("hello\n")),
            Err(RunCommandError::Garbled { .. })
        ));
    }

    #[test]
    fn the_frame_runs_the_script_through_a_quoted_here_document() {
        let f = frame("echo \"$HOME\" 'x'\nexit 4", "7");
        assert!(f.contains("<<'@@AKS_PATCH_SCRIPT_END@@'\necho \"$HOME\" 'x'\nexit 4\n@@AKS_PATCH_SCRIPT_END@@\n"));
        assert!(f.contains("/var/log/aks-patch"));
    }
}
