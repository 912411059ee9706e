//! Microsoft.Compute for the VM scale set instances behind AKS nodes: which instance a node
//! is (from its `spec.providerID`, checked against the cluster), run commands (managed, or the
//! `RunShellScript` action where managed ones are not allowed), and restart.
//!
//! A run command keeps only the last 4,096 bytes of each output stream: callers print a
//! compact summary last, and [`RunOutput::truncated`] says when the head was cut off.

use super::lro::LroPolicy;
use super::*;
use std::collections::BTreeMap;

/// `Microsoft.Compute` api-version for scale sets, their VMs and run commands.
pub const COMPUTE_API_VERSION: &str = "2024-11-01";
/// What a run command keeps of each output stream.
pub const OUTPUT_LIMIT: usize = 4096;
/// The RBAC action a managed run command needs.
pub const MANAGED_ACTION: &str = "Microsoft.Compute/virtualMachineScaleSets/virtualMachines/runCommands/write";
/// The RBAC action the `RunShellScript` action needs.
pub const ACTION_ACTION: &str = "Microsoft.Compute/virtualMachineScaleSets/virtualMachines/runCommand/action";
/// The tag AKS puts on a pool's scale set.
pub const POOL_TAG: &str = "aks-managed-poolName";

/// One VM scale set instance (`.../virtualMachineScaleSets/{vmss}/virtualMachines/{id}`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmssInstance {
    pub subscription: String,
    pub resource_group: String,
    pub vmss: String,
    pub instance_id: String,
}

/// Why a node's providerID names no scale set instance.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProviderIdError {
    #[error("the Node has no spec.providerID (the cloud provider has not initialised it)")]
    Missing,
    #[error("spec.providerID `{0}` is not an Azure one (azure:///subscriptions/...)")]
    NotAzure(String),
    #[error("spec.providerID `{0}` names a standalone VM (an availability set or a Flexible scale set), not a Uniform VM scale set instance: run commands through a scale set are not possible")]
    StandaloneVm(String),
    #[error("spec.providerID `{0}` is not in the form azure:///subscriptions/S/resourceGroups/RG/providers/Microsoft.Compute/virtualMachineScaleSets/V/virtualMachines/I")]
    Malformed(String),
}

impl VmssInstance {
    /// From a Node's `spec.providerID` (cloud-provider-azure's format; the resource group
    /// comes lower-cased).
    pub fn from_provider_id(provider_id: &str) -> Result<VmssInstance, ProviderIdError> {
        let pid = provider_id.trim();
        if pid.is_empty() {
            return Err(ProviderIdError::Missing);
        }
        let Some(path) = pid.strip_prefix("azure://") else {
            return Err(ProviderIdError::NotAzure(pid.to_string()));
        };
        let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        let eq = |i: usize, want: &str| segs.get(i).is_some_and(|s| s.eq_ignore_ascii_case(want));
        let base =
            eq(0, "subscriptions") && eq(2, "resourceGroups") && eq(4, "providers") && eq(5, "Microsoft.Compute");
        if base && segs.len() == 8 && eq(6, "virtualMachines") {
            return Err(ProviderIdError::StandaloneVm(pid.to_string()));
        }
        if !(base && segs.len() == 10 && eq(6, "virtualMachineScaleSets") && eq(8, "virtualMachines")) {
            return Err(ProviderIdError::Malformed(pid.to_string()));
        }
        Ok(VmssInstance {
            subscription: segs[1].to_string(),
            resource_group: segs[3].to_string(),
            vmss: segs[7].to_string(),
            instance_id: segs[9].to_string(),
        })
    }

    fn segments(&self) -> Vec<&str> {
        vec![
            "subscriptions",
            &self.subscription,
            "resourceGroups",
            &self.resource_group,
            "providers",
            "Microsoft.Compute",
            "virtualMachineScaleSets",
            &self.vmss,
            "virtualMachines",
            &self.instance_id,
        ]
    }
}

impl fmt::Display for VmssInstance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/virtualMachines/{}", self.vmss, self.instance_id)
    }
}

/// Why an instance is not the node's in this cluster.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InstanceMismatch {
    #[error("its instance {instance} is in subscription {found}, not the cluster's {expected}")]
    Subscription {
        instance: String,
        found: String,
        expected: String,
    },
    #[error("its instance {instance} is in resource group {found}, not the cluster's node resource group {expected} (properties.nodeResourceGroup)")]
    ResourceGroup {
        instance: String,
        found: String,
        expected: String,
    },
    #[error("its scale set {vmss} is tagged {POOL_TAG}={found}, not the node's pool {expected}")]
    Pool {
        vmss: String,
        found: String,
        expected: String,
    },
}

impl VmssInstance {
    /// The instance must be in the cluster's subscription and node resource group.
    pub fn check_cluster(&self, subscription: &str, node_resource_group: &str) -> Result<(), InstanceMismatch> {
        if !self.subscription.eq_ignore_ascii_case(subscription) {
            return Err(InstanceMismatch::Subscription {
                instance: self.to_string(),
                found: self.subscription.clone(),
                expected: subscription.to_string(),
            });
        }
        if !self.resource_group.eq_ignore_ascii_case(node_resource_group) {
            return Err(InstanceMismatch::ResourceGroup {
                instance: self.to_string(),
                found: self.resource_group.clone(),
                expected: node_resource_group.to_string(),
            });
        }
        Ok(())
    }
}

/// The part of a scale set aks-patch reads.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct VirtualMachineScaleSet {
    pub name: String,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

impl VirtualMachineScaleSet {
    /// The scale set must carry the node's pool in its `aks-managed-poolName` tag.
    pub fn check_pool(&self, pool: &str) -> Result<(), InstanceMismatch> {
        let found = self
            .tags
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(POOL_TAG))
            .map(|(_, v)| v.as_str());
        match found {
            Some(v) if v.eq_ignore_ascii_case(pool) => Ok(()),
            other => Err(InstanceMismatch::Pool {
                vmss: self.name.clone(),
                found: other.unwrap_or("(none)").to_string(),
                expected: pool.to_string(),
            }),
        }
    }
}

/// Which kind of run command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunCommandKind {
    /// `PUT .../runCommands/{name}`: exit code, separate outputs.
    Managed,
    /// `POST .../runCommand` `RunShellScript`: no exit code, one message.
    Action,
}

impl RunCommandKind {
    /// The RBAC action it needs.
    pub fn rbac_action(self) -> &'static str {
        match self {
            RunCommandKind::Managed => MANAGED_ACTION,
            RunCommandKind::Action => ACTION_ACTION,
        }
    }
}

/// A managed run command's `instanceView.executionState`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExecutionState {
    Pending,
    Running,
    Succeeded,
    Failed,
    TimedOut,
    Canceled,
    Other(String),
}

impl ExecutionState {
    fn parse(s: &str) -> ExecutionState {
        match s.to_ascii_lowercase().as_str() {
            "pending" => ExecutionState::Pending,
            "running" => ExecutionState::Running,
            "succeeded" => ExecutionState::Succeeded,
            "failed" => ExecutionState::Failed,
            "timedout" => ExecutionState::TimedOut,
            "canceled" | "cancelled" => ExecutionState::Canceled,
            _ => ExecutionState::Other(s.to_string()),
        }
    }
}

/// What a run command returned: the tails of its outputs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunOutput {
    pub kind: RunCommandKind,
    pub stdout: String,
    pub stderr: String,
    /// Managed run commands only (the action has none: scripts print their own marker).
    pub exit_code: Option<i32>,
    pub state: Option<ExecutionState>,
}

impl RunOutput {
    /// The output reached the limit: its beginning may be lost.
    pub fn truncated(&self) -> bool {
        self.stdout.len() >= OUTPUT_LIMIT || self.stderr.len() >= OUTPUT_LIMIT
    }
}

/// `Enable succeeded: \n[stdout]\nOUT\n[stderr]\nERR\n` → (OUT, ERR).
pub fn parse_action_message(message: &str) -> Option<(String, String)> {
    let (_, rest) = message.split_once("[stdout]\n")?;
    let (out, err) = rest.rsplit_once("\n[stderr]\n")?;
    let err = err.strip_suffix('\n').unwrap_or(err);
    Some((out.to_string(), err.to_string()))
}

/// 409 "Run command extension execution is in progress": another run command holds the VM.
fn is_busy(e: &AzureError) -> bool {
    matches!(e, AzureError::Api { status: 409, message, .. } if message.to_ascii_lowercase().contains("execution is in progress"))
}

impl ArmClient {
    /// `GET .../virtualMachineScaleSets/{vmss}`.
    pub async fn get_vmss(&self, vm: &VmssInstance) -> Result<VirtualMachineScaleSet, AzureError> {
        let segs = &vm.segments()[..8];
        let url = self.url(segs, COMPUTE_API_VERSION)?;
        self.get_json(url).await
    }

    /// Send a run command's first request, waiting out 409 "in progress" (another run
    /// command on the VM) until the deadline.
    async fn start_run_command(
        &self,
        method: Method,
        url: Url,
        body: &serde_json::Value,
        deadline: Instant,
        what: &str,
        timeout: Duration,
    ) -> Result<transport::Reply, AzureError> {
        let mut wait = Duration::from_secs(2);
        loop {
            match self.send_full(method.clone(), url.clone(), Some(body)).await {
                Err(e) if is_busy(&e) => {
                    if Instant::now() + wait >= deadline {
                        return Err(AzureError::OperationTimedOut {
                            what: format!("{what} (another run command kept the VM busy: {e})"),
                            after: timeout,
                        });
                    }
                    tracing::info!(
                        "{what}: another run command is in progress; retrying in {} s",
                        wait.as_secs()
                    );
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(Duration::from_secs(15));
                }
                other => return other,
            }
        }
    }

    /// Run `script` as root on the instance and wait for it within `timeout`.
    pub async fn run_command(
        &self,
        vm: &VmssInstance,
        kind: RunCommandKind,
        name: &str,
        script: &str,
        timeout: Duration,
    ) -> Result<RunOutput, AzureError> {
        match kind {
            RunCommandKind::Managed => self.run_managed(vm, name, script, timeout).await,
            RunCommandKind::Action => self.run_action(vm, script, timeout).await,
        }
    }

    async fn run_action(&self, vm: &VmssInstance, script: &str, timeout: Duration) -> Result<RunOutput, AzureError> {
        let started = Instant::now();
        let mut segs = vm.segments();
        segs.push("runCommand");
        let url = self.url(&segs, COMPUTE_API_VERSION)?;
        let what = format!("run command on {vm}");
        let body = serde_json::json!({"commandId": "RunShellScript", "script": script.lines().collect::<Vec<_>>()});
        let first = self
            .start_run_command(Method::POST, url.clone(), &body, started + timeout, &what, timeout)
            .await?;
        let policy = LroPolicy {
            timeout,
            ..LroPolicy::default()
        };
        let result = self.follow(Method::POST, &url, first, started, &policy, &what).await?;
        let v: serde_json::Value = decode(&url, &result)?;
        let message = v["value"]
            .as_array()
            .and_then(|a| a.iter().find_map(|s| s["message"].as_str()))
            .unwrap_or("");
        let (stdout, stderr) = parse_action_message(message).ok_or_else(|| AzureError::Decode {
            url: url.to_string(),
            message: "the run command's message has no [stdout]/[stderr] sections".into(),
        })?;
        Ok(RunOutput {
            kind: RunCommandKind::Action,
            stdout,
            stderr,
            exit_code: None,
            state: None,
        })
    }

    async fn run_managed(
        &self,
        vm: &VmssInstance,
        name: &str,
        script: &str,
        timeout: Duration,
    ) -> Result<RunOutput, AzureError> {
        let started = Instant::now();
        let mut segs = vm.segments();
        segs.extend(["runCommands", name]);
        let url = self.url(&segs, COMPUTE_API_VERSION)?;
        let what = format!("run command {name} on {vm}");
        // The location is required; ARM takes the VM's (any region name we give is checked).
        let body = serde_json::json!({
            "location": self.vm_location(vm).await?,
            "properties": {
                "source": {"script": script},
                "asyncExecution": false,
                "timeoutInSeconds": timeout.as_secs().max(1),
            }
        });
        let first = self
            .start_run_command(Method::PUT, url.clone(), &body, started + timeout, &what, timeout)
            .await?;
        let policy = LroPolicy {
            // The agent's own timeout, plus a margin for ARM to report it.
            timeout: timeout + (timeout / 10).clamp(Duration::from_secs(1), Duration::from_secs(60)),
            ..LroPolicy::default()
        };
        let waited = self.follow(Method::PUT, &url, first, started, &policy, &what).await;
        let got = match waited {
            Ok(_) => {
                let mut get = url.clone();
                get.query_pairs_mut().append_pair("$expand", "instanceView");
                self.get_json::<serde_json::Value>(get).await
            }
            Err(e) => Err(e),
        };
        // Always remove it: it stops a script still running and frees the VM.
        let del_policy = LroPolicy {
            timeout: Duration::from_secs(30),
            ..LroPolicy::default()
        };
        if let Err(e) = self
            .operation(
                Method::DELETE,
                url.clone(),
                None,
                &del_policy,
                &format!("deleting {what}"),
            )
            .await
        {
            tracing::warn!("could not delete run command {name} on {vm}: {e}");
        }
        let v = got?;
        let iv = &v["properties"]["instanceView"];
        let state = ExecutionState::parse(iv["executionState"].as_str().unwrap_or(""));
        Ok(RunOutput {
            kind: RunCommandKind::Managed,
            stdout: iv["output"].as_str().unwrap_or("").to_string(),
            stderr: iv["error"].as_str().unwrap_or("").to_string(),
            exit_code: iv["exitCode"].as_i64().map(|c| c as i32),
            state: Some(state),
        })
    }

    async fn vm_location(&self, vm: &VmssInstance) -> Result<String, AzureError> {
        let url = self.url(&vm.segments(), COMPUTE_API_VERSION)?;
        let v: serde_json::Value = self.get_json(url).await?;
        Ok(v["location"].as_str().unwrap_or_default().to_string())
    }

    /// `POST .../restart`, waited for within `timeout` (it ends when the VM runs again).
    pub async fn restart_instance(&self, vm: &VmssInstance, timeout: Duration) -> Result<(), AzureError> {
        let mut segs = vm.segments();
        segs.push("restart");
        let url = self.url(&segs, COMPUTE_API_VERSION)?;
        let policy = LroPolicy {
            timeout,
            ..LroPolicy::default()
        };
        self.operation(Method::POST, url, None, &policy, &format!("restart of {vm}"))
            .await
            .map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PID: &str = "azure:///subscriptions/11111111-2222-3333-4444-555555555555/resourceGroups/mc_rg_aks_westeurope/providers/Microsoft.Compute/virtualMachineScaleSets/aks-nodepool1-31415926-vmss/virtualMachines/10";

    #[test]
    fn provider_id_of_a_scale_set_instance() {
        let vm = VmssInstance::from_provider_id(PID).unwrap();
        assert_eq!(vm.subscription, "11111111-2222-3333-4444-555555555555");
        assert_eq!(vm.resource_group, "mc_rg_aks_westeurope");
        assert_eq!(vm.vmss, "aks-nodepool1-31415926-vmss");
        assert_eq!(vm.instance_id, "10");
        vm.check_cluster("11111111-2222-3333-4444-555555555555", "MC_rg_aks_westeurope")
            .expect("the node resource group matches case-insensitively");
        let e = vm
            .check_cluster("11111111-2222-3333-4444-555555555555", "MC_other_aks_westeurope")
            .unwrap_err();
        assert!(
            e.to_string()
                .contains("not the cluster's node resource group MC_other_aks_westeurope"),
            "{e}"
        );
    }

    #[test]
    fn provider_ids_that_are_not_scale_set_instances() {
        assert_eq!(VmssInstance::from_provider_id(""), Err(ProviderIdError::Missing));
        assert!(matches!(
            VmssInstance::from_provider_id("kind://docker/kind/kind-worker"),
            Err(ProviderIdError::NotAzure(_))
        ));
        let vmas =
            "azure:///subscriptions/s/resourceGroups/mc_rg/providers/Microsoft.Compute/virtualMachines/aks-pool-1234-0";
        let e = VmssInstance::from_provider_id(vmas).unwrap_err();
        assert!(matches!(e, ProviderIdError::StandaloneVm(_)));
        assert!(e.to_string().contains("not a Uniform VM scale set instance"));
        assert!(matches!(
            VmssInstance::from_provider_id("azure:///subscriptions/s/resourceGroups/rg"),
            Err(ProviderIdError::Malformed(_))
        ));
    }

    #[test]
    fn pool_tag_check() {
        let v = VirtualMachineScaleSet {
            name: "aks-nodepool1-1-vmss".into(),
            tags: [(POOL_TAG.to_string(), "nodepool1".to_string())].into(),
        };
        v.check_pool("nodepool1").unwrap();
        let e = v.check_pool("user").unwrap_err();
        assert!(e
            .to_string()
            .contains("tagged aks-managed-poolName=nodepool1, not the node's pool user"));
        let untagged = VirtualMachineScaleSet {
            name: "x".into(),
            tags: BTreeMap::new(),
        };
        assert!(untagged.check_pool("user").unwrap_err().to_string().contains("=(none)"));
    }

    #[test]
    fn action_message_sections() {
        let (o, e) = parse_action_message("Enable succeeded: \n[stdout]\nline1\nline2\n\n[stderr]\nwarn\n\n").unwrap();
        assert_eq!(o, "line1\nline2\n");
        assert_eq!(e, "warn\n");
        assert_eq!(parse_action_message("Enable succeeded: nothing"), None);
    }
}
