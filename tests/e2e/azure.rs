//! aks-patch's Azure side against aks-sim over real HTTPS: the credential chain (the
//! Azure CLI through the emulator's `az` stand-in, a service principal and workload
//! identity through its Entra endpoint), the ARM client, its retries and its errors.
//!
//! Configuration goes in through `Settings` built from the emulator's environment, never
//! through this process's environment (which every test shares).

use crate::common::{Emulator, FixedToken};
use aks_patch::azure::models::ManagedCluster;
use aks_patch::azure::{
    arm::default_subscription, ArmClient, AzureCredential, AzureError, CloudEndpoints, ClusterId, CredentialKind,
};
use aks_patch::azure::{AuthMethod, CloudName};
use aks_patch::retry::RetryPolicy;
use aks_patch::settings::{env, Settings};
use aks_sim::Fault;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

const SCENARIO: &str = r#"
subscriptionId: 22222222-3333-4444-5555-666666666666
resourceGroup: rg-patch-e2e
extraClusters: 3
armPageSize: 2
cluster:
  name: aks-patch-e2e
  location: westeurope
  nodeOSUpgradeChannel: Unmanaged
pools:
  - name: system
    mode: System
    count: 1
    zones: ["1"]
    nodeImageVersion: AKSUbuntu-2204gen2containerd-202501.12.0
    latestNodeImageVersion: AKSUbuntu-2204gen2containerd-202503.05.0
  - name: user
    count: 2
    sshAccess: Disabled
    nodeImageVersion: AKSUbuntu-2204gen2containerd-202501.12.0
  - name: win
    osType: Windows
    count: 1
    nodeImageVersion: AKSWindows-2022-containerd-20348.3207.250214
    latestNodeImageVersion: AKSWindows-2022-containerd-20348.3328.250314
"#;

/// The emulator, and its environment (`aks-sim env`) as aks-patch's settings would read it.
struct Env {
    emu: Emulator,
    vars: HashMap<String, String>,
}

impl std::ops::Deref for Env {
    type Target = Emulator;
    fn deref(&self) -> &Emulator {
        &self.emu
    }
}

impl Env {
    async fn start() -> Env {
        let emu = Emulator::start_yaml(SCENARIO, "azure e2e").await;
        let vars = emu.sim.env().into_iter().collect();
        Env { emu, vars }
    }

    /// The emulator's environment (`aks-sim env`), changed by `set` (an empty value unsets).
    fn settings(&self, set: &[(&str, &str)]) -> Settings {
        let mut vars = self.vars.clone();
        for (k, v) in set {
            vars.insert(k.to_string(), v.to_string());
        }
        Settings::from_lookup(|k| vars.get(k).cloned())
    }

    /// The service principal the emulator's Entra endpoint accepts.
    fn sp(&self) -> serde_json::Value {
        let text = std::fs::read_to_string(self.sim.state_dir().join("sp.json")).expect("sp.json");
        serde_json::from_str(&text).unwrap()
    }

    fn cluster(&self) -> ClusterId {
        let ep = self.sim.endpoints();
        ClusterId::new(&ep.subscription_id, &ep.resource_group, &ep.cluster_name)
    }
}

fn client(settings: &Settings, auth: AuthMethod) -> Result<ArmClient, AzureError> {
    let cloud = CloudEndpoints::resolve(CloudName::AzureCloud, settings)?;
    let cred = AzureCredential::new(auth, settings, &cloud)?;
    ArmClient::new(&cloud, Arc::new(cred))
}

fn fast_retries() -> RetryPolicy {
    RetryPolicy {
        attempts: 4,
        patience: Duration::from_secs(30),
        initial: Duration::from_millis(50),
        max: Duration::from_millis(200),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_credential_reads_cluster_pools_machines_and_kubeconfig() {
    skip_unless_root!();
    let env = Env::start().await;
    let settings = env.settings(&[]);
    assert!(
        settings.client_secret.is_none(),
        "the emulator's env has no service principal"
    );
    let arm = client(&settings, AuthMethod::Auto).unwrap();
    assert_eq!(arm.credential().kinds(), [CredentialKind::AzureCli]);

    let sub = arm.resolve_subscription(None, &settings).await.unwrap();
    assert_eq!(sub, env.sim.endpoints().subscription_id);
    let c = arm.get_cluster(&env.cluster()).await.unwrap();
    assert_eq!(arm.credential().chosen(), Some(CredentialKind::AzureCli));
    assert_eq!(c.name, "aks-patch-e2e");
    assert_eq!(c.location, "westeurope");
    assert_eq!(c.properties.provisioning_state.as_deref(), Some("Succeeded"));
    assert_eq!(c.properties.kubernetes_version.as_deref(), Some("1.31.5"));
    assert_eq!(
        c.properties.node_resource_group.as_deref(),
        Some("MC_rg-patch-e2e_aks-patch-e2e_westeurope")
    );
    assert!(c.properties.fqdn.as_deref().unwrap().ends_with(".azmk8s.io"));
    assert_eq!(c.admin_username(), Some("azureuser"));
    assert_eq!(c.node_os_upgrade_channel(), Some("Unmanaged"));
    assert!(!c.reimaged_by_aks());
    let pools = c.agent_pools();
    assert_eq!(pools.len(), 3);
    assert_eq!(pools[0].name, "system");
    assert_eq!(pools[0].mode.as_deref(), Some("System"));
    assert_eq!(pools[0].os_sku.as_deref(), Some("Ubuntu"));
    assert_eq!(pools[0].count, Some(1));
    assert!(pools[0].is_linux() && !pools[0].ssh_disabled());
    assert!(pools[1].ssh_disabled());
    assert!(pools[2].is_windows());
    assert_eq!(
        pools[2].node_image_version.as_deref(),
        Some("AKSWindows-2022-containerd-20348.3207.250214")
    );

    let listed: Vec<String> = arm
        .list_agent_pools(&env.cluster())
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.into_profile().name)
        .collect();
    assert_eq!(listed, ["system", "user", "win"]);
    let latest = arm.latest_node_image_version(&env.cluster(), "system").await.unwrap();
    assert_eq!(latest.as_deref(), Some("AKSUbuntu-2204gen2containerd-202503.05.0"));
    let latest = arm.latest_node_image_version(&env.cluster(), "user").await.unwrap();
    assert_eq!(latest.as_deref(), Some("AKSUbuntu-2204gen2containerd-202501.12.0"));

    let machines = arm.list_machines(&env.cluster(), "user").await.unwrap();
    let expected: Vec<_> = env.sim.shared.nodes.iter().filter(|n| n.pool == "user").collect();
    assert_eq!(machines.len(), expected.len());
    for (m, n) in machines.iter().zip(expected) {
        assert_eq!(m.name, n.name);
        assert_eq!(m.ipv4(), Some(n.ip.to_string().as_str()));
        assert!(m
            .properties
            .resource_id
            .as_deref()
            .unwrap()
            .contains("/virtualMachineScaleSets/"));
    }
    let windows = arm.list_machines(&env.cluster(), "win").await.unwrap();
    assert_eq!(windows.len(), 1);

    let mc = arm.list_maintenance_configurations(&env.cluster()).await.unwrap();
    assert_eq!(mc[0].name, "aksManagedNodeOSUpgradeSchedule");
    assert!(mc[0].properties.maintenance_window.is_some());

    let user = arm.get_kubeconfig(&env.cluster(), false).await.unwrap();
    assert_eq!(user.name(), "clusterUser");
    assert_eq!(user.yaml(), aks_sim::kubeconfig(&env.sim.shared, false));
    let admin = arm.get_kubeconfig(&env.cluster(), true).await.unwrap();
    assert_eq!(admin.yaml(), aks_sim::kubeconfig(&env.sim.shared, true));
    assert!(!format!("{admin:?}").contains(&env.sim.shared.tokens.kube_admin));

    // Clusters of the subscription and of the group: nextLink paging (armPageSize 2).
    let all: Vec<String> = arm
        .list_clusters(&sub, None)
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.name)
        .collect();
    assert_eq!(all, ["aks-patch-e2e", "aks-extra-01", "aks-extra-02", "aks-extra-03"]);
    let in_rg: Vec<ManagedCluster> = arm.list_clusters(&sub, Some("rg-patch-e2e")).await.unwrap();
    assert_eq!(in_rg.len(), 4);
    env.emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscription_defaults_like_the_azure_cli() {
    skip_unless_root!();
    let env = Env::start().await;
    let sub = env.sim.endpoints().subscription_id.clone();
    // Without AZURE_SUBSCRIPTION_ID: the CLI's current account (`az account show`).
    let settings = env.settings(&[(env::SUBSCRIPTION_ID, "")]);
    assert!(settings.subscription_id.is_none());
    assert_eq!(default_subscription(&settings).await.unwrap(), sub);
    let arm = client(&settings, AuthMethod::Cli).unwrap();
    assert_eq!(arm.resolve_subscription(None, &settings).await.unwrap(), sub);
    // By name, through ARM's subscription list.
    assert_eq!(arm.resolve_subscription(Some("AKS-SIM"), &settings).await.unwrap(), sub);
    let e = arm.resolve_subscription(Some("nobody's"), &settings).await.unwrap_err();
    assert!(e.is_not_found(), "{e:?}");
    // Neither the variable nor an az to ask.
    let bare = env.settings(&[(env::SUBSCRIPTION_ID, ""), (env::PATH, "/nonexistent")]);
    let e = default_subscription(&bare).await.unwrap_err();
    assert!(matches!(e, AzureError::NoSubscription(_)), "{e:?}");
    assert!(e.to_string().contains("az not found"), "{e}");
    assert!(e.hint().unwrap().contains("--subscription"));
    env.emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_principal_and_workload_identity_through_the_entra_endpoint() {
    skip_unless_root!();
    let env = Env::start().await;
    let sp = env.sp();
    let id = sp["clientId"].as_str().unwrap();
    let secret = sp["clientSecret"].as_str().unwrap();
    let fed = sp["federatedTokenFile"].as_str().unwrap();

    let with_secret = env.settings(&[(env::CLIENT_ID, id), (env::CLIENT_SECRET, secret)]);
    let arm = client(&with_secret, AuthMethod::Auto).unwrap();
    assert_eq!(arm.credential().kinds()[0], CredentialKind::EnvironmentServicePrincipal);
    assert_eq!(arm.get_cluster(&env.cluster()).await.unwrap().name, "aks-patch-e2e");
    assert_eq!(
        arm.credential().chosen(),
        Some(CredentialKind::EnvironmentServicePrincipal)
    );

    let wi = env.settings(&[(env::CLIENT_ID, id), (env::FEDERATED_TOKEN_FILE, fed)]);
    let arm = client(&wi, AuthMethod::WorkloadIdentity).unwrap();
    assert_eq!(arm.get_cluster(&env.cluster()).await.unwrap().name, "aks-patch-e2e");
    assert_eq!(arm.credential().chosen(), Some(CredentialKind::WorkloadIdentity));

    // A wrong secret with --auth env: Entra's reason, and no fallback to the CLI.
    let wrong = env.settings(&[(env::CLIENT_ID, id), (env::CLIENT_SECRET, "not-the-secret")]);
    let arm = client(&wrong, AuthMethod::Env).unwrap();
    let e = arm.get_cluster(&env.cluster()).await.unwrap_err();
    let text = e.to_string();
    assert!(matches!(e, AzureError::NoCredential { .. }), "{e:?}");
    assert!(
        text.contains("AADSTS7000215") && text.contains("environment service principal"),
        "{text}"
    );
    assert!(!text.contains("not-the-secret"), "{text}");
    // In auto mode the chain goes on to the Azure CLI.
    let arm = client(&wrong, AuthMethod::Auto).unwrap();
    assert_eq!(arm.get_cluster(&env.cluster()).await.unwrap().name, "aks-patch-e2e");
    assert_eq!(arm.credential().chosen(), Some(CredentialKind::AzureCli));
    env.emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_group_cluster_and_subscription_are_not_found() {
    skip_unless_root!();
    let env = Env::start().await;
    let arm = client(&env.settings(&[]), AuthMethod::Cli).unwrap();
    let ep = env.sim.endpoints();

    let e = arm
        .get_cluster(&ClusterId::new(&ep.subscription_id, "rg-nope", &ep.cluster_name))
        .await
        .unwrap_err();
    assert!(e.is_not_found(), "{e:?}");
    assert_eq!(e.code(), Some("ResourceGroupNotFound"));
    assert_eq!(
        e.to_string(),
        "Resource group 'rg-nope' could not be found. (ResourceGroupNotFound)"
    );
    assert!(e.hint().unwrap().contains("-g"));

    let e = arm
        .get_cluster(&ClusterId::new(&ep.subscription_id, &ep.resource_group, "aks-nope"))
        .await
        .unwrap_err();
    assert!(e.is_not_found());
    assert_eq!(e.code(), Some("ResourceNotFound"));
    assert!(
        e.to_string()
            .contains("Microsoft.ContainerService/managedClusters/aks-nope"),
        "{e}"
    );
    assert!(e.hint().unwrap().contains("-n"));

    let e = arm
        .get_cluster(&ClusterId::new(
            "00000000-0000-0000-0000-000000000000",
            &ep.resource_group,
            &ep.cluster_name,
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("SubscriptionNotFound"));

    let e = arm
        .latest_node_image_version(&env.cluster(), "nopool")
        .await
        .unwrap_err();
    assert!(e.is_not_found(), "{e:?}");
    env.emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_and_server_errors_are_retried() {
    skip_unless_root!();
    let env = Env::start().await;
    let arm = client(&env.settings(&[]), AuthMethod::Cli)
        .unwrap()
        .with_retry_policy(fast_retries());
    // Warm the token so that the faults hit cluster reads.
    arm.get_cluster(&env.cluster()).await.unwrap();

    env.sim
        .fault(Fault::ArmThrottle {
            count: 2,
            retry_after: 1,
        })
        .unwrap();
    let t = Instant::now();
    assert_eq!(arm.get_cluster(&env.cluster()).await.unwrap().name, "aks-patch-e2e");
    assert!(
        t.elapsed() >= Duration::from_secs(2),
        "two 429s with Retry-After: 1 must be waited out, took {:?}",
        t.elapsed()
    );
    assert_eq!(env.sim.status()["faults"]["armThrottleLeft"], 0);

    env.sim.fault(Fault::ArmError { count: 2, status: 503 }).unwrap();
    assert_eq!(arm.list_agent_pools(&env.cluster()).await.unwrap().len(), 3);

    // More throttling than the policy allows: the 429 with its code, after 4 sends.
    env.sim
        .fault(Fault::ArmThrottle {
            count: 10,
            retry_after: 0,
        })
        .unwrap();
    let e = arm.get_cluster(&env.cluster()).await.unwrap_err();
    assert!(
        matches!(&e, AzureError::Api { status: 429, code, attempts: 4, .. } if code == "TooManyRequests"),
        "{e:?}"
    );
    assert_eq!(env.sim.status()["faults"]["armThrottleLeft"], 6);
    env.sim.fault(Fault::Clear).unwrap();
    env.emu.shutdown().await;
}

/// Hands out one fixed token, as a credential whose token was revoked would.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_token_is_replaced_or_reported() {
    skip_unless_root!();
    let env = Env::start().await;
    let settings = env.settings(&[]);
    let cli = client(&settings, AuthMethod::Cli).unwrap();
    cli.get_cluster(&env.cluster()).await.unwrap();
    let sp = env.sp();
    let with_secret = env.settings(&[
        (env::CLIENT_ID, sp["clientId"].as_str().unwrap()),
        (env::CLIENT_SECRET, sp["clientSecret"].as_str().unwrap()),
    ]);
    let spn = client(&with_secret, AuthMethod::Env).unwrap();
    spn.get_cluster(&env.cluster()).await.unwrap();
    let before = env.sim.shared.tokens.current_arm();
    let cloud = CloudEndpoints::resolve(CloudName::AzureCloud, &settings).unwrap();
    let stale = ArmClient::new(
        &cloud,
        Arc::new(AzureCredential::from_token_credential(Arc::new(FixedToken(before)))),
    )
    .unwrap();
    stale.get_cluster(&env.cluster()).await.unwrap();

    env.sim.fault(Fault::ExpiredToken).unwrap();
    // Both cached tokens are now refused; each client gets a fresh one and carries on.
    assert_eq!(cli.get_cluster(&env.cluster()).await.unwrap().name, "aks-patch-e2e");
    assert_eq!(spn.get_cluster(&env.cluster()).await.unwrap().name, "aks-patch-e2e");
    // A credential that can only offer the expired token: ARM's 401, typed, with a hint.
    let e = stale.get_cluster(&env.cluster()).await.unwrap_err();
    assert!(e.is_auth(), "{e:?}");
    assert_eq!(e.code(), Some("ExpiredAuthenticationToken"));
    assert!(e.to_string().contains("is earlier than current UTC time"), "{e}");
    assert!(e.hint().unwrap().contains("az login"));
    env.emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_credential_available_lists_every_reason() {
    skip_unless_root!();
    let env = Env::start().await;
    let bare = env.settings(&[(env::PATH, "/nonexistent")]);
    let arm = client(&bare, AuthMethod::Auto).unwrap();
    let e = arm.get_cluster(&env.cluster()).await.unwrap_err();
    let AzureError::NoCredential { attempts } = &e else {
        panic!("{e:?}")
    };
    let kinds: Vec<CredentialKind> = attempts.iter().map(|a| a.kind).collect();
    assert_eq!(
        kinds,
        [
            CredentialKind::EnvironmentServicePrincipal,
            CredentialKind::WorkloadIdentity,
            CredentialKind::ManagedIdentity,
            CredentialKind::AzureCli
        ]
    );
    assert!(attempts[0].reason.contains("AZURE_CLIENT_ID") && attempts[0].reason.contains("AZURE_CLIENT_SECRET"));
    assert!(attempts[1].reason.contains("AZURE_FEDERATED_TOKEN_FILE"));
    assert!(
        attempts[2].reason.contains("not tried"),
        "IMDS is never probed on a guess"
    );
    assert!(
        attempts[3].reason.contains("az not found on PATH"),
        "{}",
        attempts[3].reason
    );
    assert!(e.is_auth());
    assert!(e.hint().unwrap().contains("az login") && e.hint().unwrap().contains("AZURE_CLIENT_ID"));

    // --auth env without its variables fails before anything is sent.
    let e = client(&bare, AuthMethod::Env).unwrap_err();
    assert!(
        matches!(&e, AzureError::NoCredential { attempts } if attempts.len() == 1),
        "{e:?}"
    );
    env.emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_emulator_ca_is_needed_and_a_bad_bundle_is_named() {
    skip_unless_root!();
    let env = Env::start().await;
    // Without the CA bundle the emulator's certificate is not trusted: a TLS error, no retries.
    // (`aks-sim env` exports both variables, for aks-patch and for the Azure SDK for Python.)
    let untrusted = env.settings(&[(env::CA_BUNDLE, ""), (env::REQUESTS_CA_BUNDLE, "")]);
    let arm = client(&untrusted, AuthMethod::Cli).unwrap();
    let t = Instant::now();
    let e = arm.get_cluster(&env.cluster()).await.unwrap_err();
    assert!(matches!(e, AzureError::Transport { .. }), "{e:?}");
    assert!(e.to_string().to_lowercase().contains("certificate"), "{e}");
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "TLS failures are not retried: {e}"
    );
    // REQUESTS_CA_BUNDLE is the fallback.
    let ca = env.vars[env::CA_BUNDLE].clone();
    let fallback = env.settings(&[(env::CA_BUNDLE, ""), (env::REQUESTS_CA_BUNDLE, &ca)]);
    let arm = client(&fallback, AuthMethod::Cli).unwrap();
    assert_eq!(arm.get_cluster(&env.cluster()).await.unwrap().name, "aks-patch-e2e");

    let bad = env.settings(&[(env::CA_BUNDLE, "/nonexistent/ca.pem")]);
    let e = client(&bad, AuthMethod::Cli).unwrap_err();
    assert!(
        e.to_string().contains("/nonexistent/ca.pem") && e.to_string().contains(env::CA_BUNDLE),
        "{e}"
    );
    env.emu.shutdown().await;
}

/// A `tracing` writer into a shared buffer.
#[derive(Clone, Default)]
struct Captured(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Whether [`capture_logs`] records now.
static CAPTURING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Records while it lives.
struct Capturing;

impl Drop for Capturing {
    fn drop(&mut self) {
        CAPTURING.store(false, std::sync::atomic::Ordering::SeqCst);
    }
}

/// The test binary's log at trace level, from now on while the returned guard lives. A
/// global subscriber (a thread-local one misses events whose callsites other tests' threads
/// registered first), which records nothing outside a capture, so that the other tests of
/// the binary run unobserved.
fn capture_logs() -> (Captured, Capturing) {
    use tracing_subscriber::prelude::*;
    static LOGS: std::sync::OnceLock<Captured> = std::sync::OnceLock::new();
    let logs = LOGS
        .get_or_init(|| {
            let logs = Captured::default();
            let writer = logs.clone();
            let subscriber = tracing_subscriber::registry()
                .with(tracing_subscriber::filter::filter_fn(|_| {
                    CAPTURING.load(std::sync::atomic::Ordering::SeqCst)
                }))
                .with(tracing_subscriber::EnvFilter::new(
                    "trace,hyper=info,hyper_util=info,h2=info,rustls=info,tokio=info,tower=info",
                ))
                .with(
                    tracing_subscriber::fmt::layer()
                        .with_writer(move || writer.clone())
                        .with_ansi(false),
                );
            tracing::subscriber::set_global_default(subscriber)
                .expect("no other global subscriber in this test binary");
            logs
        })
        .clone();
    logs.0.lock().unwrap().clear();
    CAPTURING.store(true, std::sync::atomic::Ordering::SeqCst);
    (logs, Capturing)
}

/// Everything at trace level (ours, azure_identity's, azure_core's, the emulator's) while
/// tokens, secrets and kubeconfigs go by: none of them may show up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn debug_logs_hold_no_secrets() {
    skip_unless_root!();
    let (logs, capturing) = capture_logs();
    let env = Env::start().await;
    let mut secrets = vec![
        env.sim.shared.tokens.kube_user.clone(),
        env.sim.shared.tokens.kube_admin.clone(),
        env.sim.shared.tokens.client_secret.clone(),
    ];
    let arm = client(&env.settings(&[]), AuthMethod::Cli).unwrap();
    arm.get_cluster(&env.cluster()).await.unwrap();
    secrets.push(env.sim.shared.tokens.current_arm());
    let kubeconfig = arm.get_kubeconfig(&env.cluster(), true).await.unwrap();
    tracing::debug!("got {kubeconfig:?}");
    env.sim.fault(Fault::ExpiredToken).unwrap();
    arm.get_cluster(&env.cluster()).await.unwrap();
    secrets.push(env.sim.shared.tokens.current_arm());

    let sp = env.sp();
    let id = sp["clientId"].as_str().unwrap();
    let spn = client(
        &env.settings(&[
            (env::CLIENT_ID, id),
            (env::CLIENT_SECRET, sp["clientSecret"].as_str().unwrap()),
        ]),
        AuthMethod::Env,
    )
    .unwrap();
    spn.get_cluster(&env.cluster()).await.unwrap();
    secrets.push(env.sim.shared.tokens.current_arm());
    let wrong = client(
        &env.settings(&[(env::CLIENT_ID, id), (env::CLIENT_SECRET, "wrong-secret-value")]),
        AuthMethod::Env,
    )
    .unwrap();
    let e = wrong.get_cluster(&env.cluster()).await.unwrap_err();
    tracing::debug!("{e} / {e:?} / {arm:?} / {spn:?}");
    secrets.push("wrong-secret-value".into());
    let arm_url = env.sim.endpoints().arm_url.clone();
    env.emu.shutdown().await;

    drop(capturing);
    let text = String::from_utf8_lossy(&logs.0.lock().unwrap()).into_owned();
    assert!(
        text.lines()
            .any(|l| l.contains("ARM request") && l.contains(&arm_url) && l.contains("listClusterAdminCredential")),
        "this test's requests were not captured"
    );
    for s in &secrets {
        assert!(!s.is_empty());
        assert!(!text.contains(s.as_str()), "a secret reached the logs");
    }
    assert!(
        !text.contains("certificate-authority-data"),
        "a kubeconfig reached the logs"
    );
}
