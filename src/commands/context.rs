//! Finding the cluster: through ARM (`-g/-n`), from a kubeconfig alone (`--kubeconfig`), or,
//! inside a pod with neither, the pod's own cluster as its ServiceAccount; ending with a
//! Kubernetes client and what ARM says about the pools.

use crate::azure::{self, ArmClient, AzureCredential, AzureError, CloudEndpoints};
use crate::cli::ClusterArgs;
use crate::output::errors::{Exit, Failure};
use crate::output::Reporter;
use crate::rollout::journal::ClusterRef;
use crate::settings::Settings;
use anyhow::Context as _;
use std::sync::Arc;

/// What aks-patch knows about a node pool.
#[derive(Debug, Clone, Default, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PoolInfo {
    pub name: String,
    pub os_type: Option<String>,
    pub os_sku: Option<String>,
    pub mode: Option<String>,
    pub ssh_disabled: bool,
    pub node_image_version: Option<String>,
    pub latest_node_image_version: Option<String>,
}

/// How the cluster authenticates and authorizes its users (from ARM).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthMode {
    /// `aadProfile.managed`: AKS-managed Entra ID.
    pub entra_id: bool,
    /// `aadProfile.enableAzureRBAC`: Azure RBAC for Kubernetes authorization.
    pub azure_rbac: bool,
    /// Whether static local accounts (`--admin`) exist (`disableLocalAccounts` false).
    pub local_accounts: bool,
    /// Whether aks-patch reaches the API server with its own Entra ID token.
    pub entra_token: bool,
}

impl std::fmt::Display for AuthMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut parts = vec![];
        if self.entra_id {
            parts.push(if self.azure_rbac {
                "Entra ID with Azure RBAC"
            } else {
                "Entra ID with Kubernetes RBAC"
            });
        }
        parts.push(if self.local_accounts {
            "local accounts enabled"
        } else {
            "local accounts disabled"
        });
        write!(f, "cluster auth: {}", parts.join(", "))
    }
}

/// The resolved cluster.
pub struct ClusterContext {
    pub cluster: ClusterRef,
    pub client: ::kube::Client,
    /// Pools in ARM's order (empty without ARM).
    pub pools: Vec<PoolInfo>,
    /// linuxProfile.adminUsername, else `azureuser`.
    pub admin_user: String,
    /// autoUpgradeProfile.nodeOSUpgradeChannel, when ARM told us.
    pub node_os_channel: Option<String>,
    /// `-g RG --cluster-name NAME` for the `az aks nodepool` commands in hints.
    pub az_args: String,
    /// How the cluster authenticates (None without ARM).
    pub auth: Option<AuthMode>,
    /// The ARM side, when the cluster was named with -g/-n (`None` with `--kubeconfig`):
    /// later reads (the planned-maintenance schedule of `--window aks`) and
    /// `--via run-command`'s scale set instances.
    pub arm: Option<ArmAccess>,
    /// Inside a pod with no cluster named: the pod's ServiceAccount, its namespace and the
    /// API server (where the run records are kept by default).
    pub in_cluster: Option<crate::kube::client::InClusterIdentity>,
}

/// ARM, for later reads about the cluster and for reaching the nodes' scale set instances.
#[derive(Clone)]
pub struct ArmAccess {
    pub client: Arc<ArmClient>,
    /// The managed cluster's id.
    pub cluster: azure::ClusterId,
    pub subscription: String,
    /// `properties.nodeResourceGroup`.
    pub node_resource_group: Option<String>,
}

impl ClusterContext {
    pub fn pool(&self, name: &str) -> Option<&PoolInfo> {
        self.pools.iter().find(|p| p.name == name)
    }

    pub fn pool_order(&self) -> Vec<String> {
        self.pools.iter().map(|p| p.name.clone()).collect()
    }

    /// The warning for clusters whose nodes AKS re-images itself, if this is one.
    pub fn channel_warning(&self) -> Option<String> {
        match self.node_os_channel.as_deref() {
            Some(ch @ ("NodeImage" | "SecurityPatch")) => Some(format!(
                "this cluster's node OS upgrade channel is {ch}: AKS re-images these nodes itself and turns unattended-upgrades off, \
                 so in-place apt patching fights the platform (a re-image undoes it). Prefer `az aks nodepool upgrade {} -n POOL --node-image-only`, \
                 or set the channel to Unmanaged (`az aks update {} --node-os-upgrade-channel Unmanaged`) if you want to patch in place",
                self.az_args,
                self.az_args.replace("--cluster-name", "-n")
            )),
            _ => None,
        }
    }
}

/// Resolve the cluster from the command line.
pub async fn resolve(
    args: &ClusterArgs,
    settings: &Settings,
    reporter: &Reporter,
    with_latest_images: bool,
) -> anyhow::Result<ClusterContext> {
    if let Some(path) = &args.kubeconfig {
        return from_kubeconfig(path, args.context.as_deref()).await;
    }
    let (Some(rg), Some(name)) = (args.resource_group.as_deref(), args.name.as_deref()) else {
        if settings.in_pod() {
            return from_pod().await;
        }
        return Err(Failure::new(Exit::Usage, "the cluster is not named")
            .hint("give -g RESOURCE_GROUP -n CLUSTER, or --kubeconfig FILE (inside a pod, neither: the pod's own cluster is patched)")
            .into());
    };
    let cloud = CloudEndpoints::resolve(args.cloud.into(), settings).map_err(azure_failure)?;
    let credential = Arc::new(AzureCredential::new(args.auth.into(), settings, &cloud).map_err(azure_failure)?);
    let arm = ArmClient::new(&cloud, credential.clone()).map_err(azure_failure)?;
    let subscription = arm
        .resolve_subscription(args.subscription.as_deref(), settings)
        .await
        .map_err(azure_failure)?;
    let cref = azure::ClusterId::new(&subscription, rg, name);
    reporter.verbose(&format!("reading cluster {rg}/{name} in subscription {subscription}"));
    let mc = arm.get_cluster(&cref).await.map_err(azure_failure)?;
    let mut pools: Vec<PoolInfo> = mc
        .agent_pools()
        .iter()
        .map(|p| PoolInfo {
            name: p.name.clone(),
            os_type: p.os_type.clone(),
            os_sku: p.os_sku.clone(),
            mode: p.mode.clone(),
            ssh_disabled: p.ssh_disabled(),
            node_image_version: p.node_image_version.clone(),
            latest_node_image_version: None,
        })
        .collect();
    if with_latest_images {
        let latest =
            futures::future::join_all(pools.iter().map(|p| arm.latest_node_image_version(&cref, &p.name))).await;
        for (p, l) in pools.iter_mut().zip(latest) {
            match l {
                Ok(v) => p.latest_node_image_version = v,
                Err(e) => reporter.warn(&format!("cannot read the newest node image of pool {}: {e}", p.name)),
            }
        }
    }
    let entra = mc.entra_managed();
    if args.admin && mc.local_accounts_disabled() {
        return Err(admin_refused(rg, name).into());
    }
    // On an Entra ID cluster the user kubeconfig's user is kubelogin (exec) or the retired
    // `azure` auth-provider: aks-patch keeps only its server and CA and sends its own token.
    let format = (entra && !args.admin).then_some("exec");
    let kubeconfig = arm
        .get_kubeconfig_in(&cref, args.admin, format)
        .await
        .map_err(|e| match e {
            AzureError::Api {
                status: 400,
                ref message,
                ..
            } if args.admin && message.contains("disable local accounts") => admin_refused(rg, name).into(),
            e => azure_failure(e),
        })?;
    let server_app = entra_server_app(kubeconfig.yaml())
        .or_else(|| entra.then(|| crate::azure::aks::AKS_SERVER_APP.to_string()))
        .filter(|_| !args.admin);
    let entra_token = server_app.is_some();
    let client = if let Some(app) = server_app {
        reporter.verbose(&format!("the cluster uses Entra ID: authenticating to its API server with an Entra ID token for {app} from the Azure credential (no kubelogin)"));
        let source = Arc::new(crate::azure::aks::AksTokenSource::new(credential.clone(), &app));
        crate::kube::bearer::client_with_token_source(kubeconfig.yaml(), source).await
    } else {
        crate::kube::client_from_kubeconfig_yaml(kubeconfig.yaml(), None).await
    }
    .context("cannot use the kubeconfig ARM returned for the cluster")?;
    Ok(ClusterContext {
        cluster: ClusterRef::arm(&subscription, rg, name),
        client,
        pools,
        admin_user: mc.admin_username().unwrap_or("azureuser").to_string(),
        node_os_channel: mc.node_os_upgrade_channel().map(str::to_string),
        az_args: format!("-g {rg} --cluster-name {name}"),
        in_cluster: None,
        auth: Some(AuthMode {
            entra_id: entra,
            azure_rbac: mc.azure_rbac(),
            local_accounts: !mc.local_accounts_disabled(),
            entra_token,
        }),
        arm: Some(ArmAccess {
            node_resource_group: mc.properties.node_resource_group.clone(),
            client: Arc::new(arm),
            cluster: cref,
            subscription,
        }),
    })
}

/// `--admin` on a cluster whose local accounts are disabled.
fn admin_refused(rg: &str, name: &str) -> Failure {
    Failure::new(
        Exit::Usage,
        format!(
            "--admin cannot be used with cluster {rg}/{name}: it has local accounts disabled (properties.disableLocalAccounts: true), so ARM refuses listClusterAdminCredential"
        ),
    )
    .hint("drop --admin: aks-patch then signs in to the cluster with an Entra ID token from your Azure credential (the one --auth picks)")
}

/// When a kubeconfig's user signs in through Entra ID (the `kubelogin` exec plugin, or the
/// legacy `azure` auth-provider that current clients no longer support): the server
/// application its tokens are for (`--server-id`, `apiserver-id`; the AKS one by default).
fn entra_server_app(yaml: &str) -> Option<String> {
    let kc = ::kube::config::Kubeconfig::from_yaml(yaml).ok()?;
    kc.auth_infos.iter().filter_map(|a| a.auth_info.as_ref()).find_map(|a| {
        if let Some(exec) = a.exec.as_ref().filter(|e| {
            e.command.as_deref().is_some_and(|c| {
                std::path::Path::new(c)
                    .file_name()
                    .is_some_and(|f| f == "kubelogin" || f == "kubelogin.exe")
            })
        }) {
            let args = exec.args.clone().unwrap_or_default();
            let server = args
                .iter()
                .position(|a| a == "--server-id")
                .and_then(|i| args.get(i + 1).cloned())
                .or_else(|| {
                    args.iter()
                        .find_map(|a| a.strip_prefix("--server-id=").map(str::to_string))
                });
            return Some(server.unwrap_or_else(|| crate::azure::aks::AKS_SERVER_APP.to_string()));
        }
        let provider = a.auth_provider.as_ref().filter(|p| p.name == "azure")?;
        Some(
            provider
                .config
                .get("apiserver-id")
                .cloned()
                .unwrap_or_else(|| crate::azure::aks::AKS_SERVER_APP.to_string()),
        )
    })
}

async fn from_kubeconfig(path: &std::path::Path, context: Option<&str>) -> anyhow::Result<ClusterContext> {
    // The client first: its errors name the file, the context and the ones available, and
    // never quote the kubeconfig's text (which holds credentials).
    let client = crate::kube::client_from_kubeconfig_file(path, context)
        .await
        .map_err(|e| {
            let exit = match e {
                crate::kube::KubeError::Api { .. } | crate::kube::KubeError::Auth { .. } => Exit::Failure,
                _ => Exit::Usage,
            };
            anyhow::Error::new(crate::output::errors::WithExit::wrap(e, exit))
        })?;
    // Names only, for the run records (the file parsed above, so this reads it again).
    let kc = ::kube::config::Kubeconfig::read_from(path).ok();
    let ctx_name = context
        .map(str::to_string)
        .or_else(|| kc.as_ref().and_then(|k| k.current_context.clone()))
        .unwrap_or_else(|| "default".into());
    let server = kc
        .as_ref()
        .and_then(|kc| {
            let cluster = kc
                .contexts
                .iter()
                .find(|c| c.name == ctx_name)?
                .context
                .as_ref()?
                .cluster
                .clone();
            kc.clusters
                .iter()
                .find(|c| c.name == cluster)?
                .cluster
                .as_ref()?
                .server
                .clone()
        })
        .unwrap_or_default();
    Ok(ClusterContext {
        cluster: ClusterRef::kubeconfig(&ctx_name, &server),
        client,
        pools: vec![],
        admin_user: "azureuser".into(),
        node_os_channel: None,
        az_args: format!("-g RESOURCE_GROUP --cluster-name {ctx_name}"),
        auth: None,
        arm: None,
        in_cluster: None,
    })
}

/// Inside a pod, with no cluster named: the pod's own cluster, as its ServiceAccount.
async fn from_pod() -> anyhow::Result<ClusterContext> {
    let (client, me) = crate::kube::client::client_in_cluster().await.map_err(|e| {
        let hint = match &e {
            crate::kube::KubeError::InClusterFile { .. } => format!(
                "KUBERNETES_SERVICE_HOST is set, so aks-patch takes this for a pod and uses its ServiceAccount: mount its token (automountServiceAccountToken: true, or a projected volume at {}); outside a pod, name the cluster with -g/-n or --kubeconfig",
                crate::kube::client::SERVICE_ACCOUNT_DIR
            ),
            _ => "KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT must name the API server (the kubelet sets them in every pod); outside a pod, name the cluster with -g/-n or --kubeconfig".to_string(),
        };
        Failure::new(Exit::Usage, "cannot talk to this pod's cluster (in-cluster config)")
            .caused_by(e)
            .hint(hint)
    })?;
    // The node this pod runs on: a run must not drain it (it would evict itself).
    let mut me = me;
    if let Some(pod) = me.pod.clone() {
        use crate::kube::client::OwnNode;
        me.node = match crate::kube::client::own_node(&client, &me.namespace, &pod).await {
            Ok(Some(node)) => OwnNode::Known(node),
            Ok(None) => OwnNode::NotFound { pod },
            Err(e) => OwnNode::Unreadable {
                pod,
                status: e.status_code(),
                error: e.to_string(),
            },
        };
    }
    Ok(ClusterContext {
        cluster: ClusterRef::in_cluster(&me.server, &me.namespace, me.service_account.as_deref()),
        client,
        pools: vec![],
        admin_user: "azureuser".into(),
        node_os_channel: None,
        az_args: "-g RESOURCE_GROUP --cluster-name CLUSTER".into(),
        auth: None,
        arm: None,
        in_cluster: Some(me),
    })
}

/// Attach the exit code and hint an Azure error calls for.
pub fn azure_failure(e: AzureError) -> anyhow::Error {
    let exit = if e.is_not_found() {
        Exit::NotFound
    } else if e.is_auth() || matches!(e, AzureError::NoSubscription(_)) {
        // No subscription given and `az account show` failed: nobody is signed in to the
        // Azure CLI (or it is not installed), which is a credential problem.
        Exit::Auth
    } else if matches!(e, AzureError::Config(_)) {
        Exit::Usage
    } else {
        Exit::Failure
    };
    let hint = e.hint();
    let err = anyhow::Error::new(e);
    let err = match hint {
        Some(h) => anyhow::Error::new(crate::output::errors::Hinted::wrap(err, h)),
        None => err,
    };
    anyhow::Error::new(crate::output::errors::WithExit::wrap(err, exit))
}

/// A failed Kubernetes API call as the user should see it: `action`, then the call's own
/// message (status, server message, what to do). Refused credentials (401, 403, or a
/// failing exec plugin) are exit 4. kube-rs's debug dump of the status is left out.
pub fn kube_failure(action: &str, e: crate::kube::KubeError) -> anyhow::Error {
    // A refused Entra ID token: what to do on its own `hint:` line.
    if let crate::kube::KubeError::Bearer {
        action: what,
        detail,
        hint: Some(hint),
    } = &e
    {
        return Failure::new(Exit::Auth, format!("{action}: {what} failed: {detail}"))
            .hint(hint.clone())
            .into();
    }
    let exit = match &e {
        crate::kube::KubeError::Auth { .. } | crate::kube::KubeError::Bearer { .. } => Exit::Auth,
        _ if matches!(e.status_code(), Some(401 | 403)) => Exit::Auth,
        _ => Exit::Failure,
    };
    Failure::new(exit, format!("{action}: {e}")).into()
}

/// Where this run's records are kept: as `--run-record` says, else in the cluster when
/// aks-patch runs in a pod with no cluster named (its file system dies with it), else in files.
pub fn record_place(
    choice: Option<crate::cli::RunRecordPlace>,
    cluster: &ClusterArgs,
    settings: &Settings,
) -> crate::rollout::record_store::RecordPlace {
    use crate::rollout::record_store::RecordPlace;
    match choice {
        Some(c) => c.into(),
        None if settings.in_pod() && cluster.kubeconfig.is_none() && cluster.resource_group.is_none() => {
            RecordPlace::Cluster
        }
        None => RecordPlace::File,
    }
}

/// The run records of `place`: files in `dir`, or ConfigMaps in the pod's namespace (outside
/// a pod: the namespace of the client's context).
pub fn run_records(
    place: crate::rollout::record_store::RecordPlace,
    dir: std::path::PathBuf,
    ctx: &ClusterContext,
) -> crate::rollout::record_store::RunRecords {
    use crate::rollout::record_store::{ClusterJournal, RecordPlace, RunRecords};
    match place {
        RecordPlace::File => RunRecords::Files(crate::rollout::journal::Journal::new(dir)),
        RecordPlace::Cluster => {
            let ns = ctx
                .in_cluster
                .as_ref()
                .map(|me| me.namespace.clone())
                .unwrap_or_else(|| ctx.client.default_namespace().to_string());
            RunRecords::Cluster(Box::new(ClusterJournal::new(ctx.client.clone(), &ns)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kubeconfig(user: &str) -> String {
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://127.0.0.1:6443\ncontexts:\n- name: c\n  context: {{cluster: c, user: u}}\ncurrent-context: c\nusers:\n- name: u\n  user:\n{user}"
        )
    }

    #[test]
    fn entra_kubeconfigs_are_recognised() {
        let aks = Some(crate::azure::aks::AKS_SERVER_APP.to_string());
        let exec = "    exec:\n      apiVersion: client.authentication.k8s.io/v1beta1\n      command: /usr/local/bin/kubelogin\n      args: [get-token, --login, devicecode]\n";
        assert_eq!(entra_server_app(&kubeconfig(exec)), aks);
        let exec = "    exec:\n      apiVersion: client.authentication.k8s.io/v1beta1\n      command: kubelogin\n      args: [get-token, --server-id, 11111111-2222-3333-4444-555555555555]\n";
        assert_eq!(
            entra_server_app(&kubeconfig(exec)).as_deref(),
            Some("11111111-2222-3333-4444-555555555555")
        );
        let provider = "    auth-provider:\n      name: azure\n      config: {apiserver-id: 6dae42f8-4368-4678-94ff-3960e28e3630}\n";
        assert_eq!(entra_server_app(&kubeconfig(provider)), aks);
        let other_exec = "    exec:\n      apiVersion: client.authentication.k8s.io/v1beta1\n      command: aws\n      args: [eks, get-token]\n";
        assert_eq!(entra_server_app(&kubeconfig(other_exec)), None);
        assert_eq!(entra_server_app(&kubeconfig("    token: abc\n")), None);
        assert_eq!(entra_server_app("not: [valid"), None);
    }

    #[test]
    fn auth_mode_in_words() {
        let m = |entra_id, azure_rbac, local_accounts| {
            AuthMode {
                entra_id,
                azure_rbac,
                local_accounts,
                entra_token: entra_id,
            }
            .to_string()
        };
        assert_eq!(m(false, false, true), "cluster auth: local accounts enabled");
        assert_eq!(
            m(true, false, true),
            "cluster auth: Entra ID with Kubernetes RBAC, local accounts enabled"
        );
        assert_eq!(
            m(true, true, false),
            "cluster auth: Entra ID with Azure RBAC, local accounts disabled"
        );
    }
}
