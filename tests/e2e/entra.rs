//! Entra ID clusters end to end: AKS-managed Entra ID with local accounts
//! disabled, no kubelogin anywhere on PATH. aks-patch reaches the API server with an Entra ID
//! token for the AKS server application from its own credential chain (the Azure CLI
//! stand-in, or a service principal), refreshes it before it expires, refuses `--admin`
//! clearly, and explains a 403. Assertions are on exit codes, output, the cluster's state and
//! the emulator's event log (`kube-token`: the first use of each Entra token by the API
//! server; `kube-unauthorized`: a token it refused).

use crate::common::*;
use std::collections::BTreeSet;

/// SMALL on an Entra ID cluster with Azure RBAC and local accounts disabled.
fn entra_scenario(extra_timing: &str, tail: &str) -> String {
    let timing = format!(
        "timing: {{shutdownSeconds: 0.2, bootSeconds: 1, readySeconds: 0.3, podStartSeconds: 0.3, terminationSeconds: 0.1, aptSeconds: 0.1, aptUpdateSeconds: 0.1{extra_timing}}}"
    );
    let base = SMALL
        .replace(
            "cluster: {name: aks-test}",
            "cluster: {name: aks-test, aadProfile: {managed: true, enableAzureRBAC: true}, disableLocalAccounts: true}",
        )
        .lines()
        .map(|l| {
            if l.starts_with("timing:") {
                timing.clone()
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    format!("{base}\n{tail}")
}

/// The principals of the Entra tokens the API server accepted, and how many distinct tokens.
fn tokens_used(events: &[aks_sim::SimEvent]) -> (BTreeSet<String>, usize) {
    let used = of_kind(events, "kube-token");
    let principals = used
        .iter()
        .filter_map(|e| e.detail.split(" of ").nth(1))
        .filter_map(|rest| rest.split(' ').next())
        .map(str::to_string)
        .collect();
    (principals, used.len())
}

fn assert_no_kubelogin(c: &Cluster) {
    let path = c
        .sim
        .env()
        .into_iter()
        .find(|(k, _)| k == "PATH")
        .map(|(_, v)| v)
        .unwrap();
    for dir in path.split(':') {
        assert!(
            !std::path::Path::new(dir).join("kubelogin").exists(),
            "kubelogin found in {dir}: this test must run without it"
        );
    }
}

fn assert_no_secret(c: &Cluster, r: &Run) {
    for text in [&r.stdout, &r.stderr] {
        assert!(!text.contains("sim-entra-"), "a token reached the output: {text}");
    }
    // Nor the run records.
    let runs = c.state_dir().join("runs");
    if let Ok(dir) = std::fs::read_dir(&runs) {
        for f in dir.flatten() {
            let text = std::fs::read_to_string(f.path()).unwrap_or_default();
            assert!(!text.contains("sim-entra-"), "a token reached {}", f.path().display());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scan_and_apply_with_the_azure_cli_and_no_kubelogin() {
    skip_unless_root!();
    let c = Cluster::start(Some(&entra_scenario("", ""))).await;
    assert_no_kubelogin(&c);

    let r = c.run(&["scan", "--auth", "cli"], true).await;
    r.assert_code(0);
    assert!(
        r.stderr
            .contains("cluster auth: Entra ID with Azure RBAC, local accounts disabled"),
        "{}",
        r.stderr
    );
    let rows: serde_json::Value = c.run(&["scan", "--auth", "cli", "-o", "json"], true).await.json();
    assert_eq!(rows.as_array().unwrap().len(), 3, "{rows}");

    let r = c
        .run(&["apply", "--one-at-a-time", "--yes", "--auth", "cli"], true)
        .await;
    r.assert_code(0);
    for i in 0..3 {
        assert_eq!(c.kernel(&small_node(i)), "5.15.0-1073-azure");
        assert!(!c.unschedulable(&small_node(i)));
    }
    assert!(c.lock_free());
    let events = c.events();
    let (principals, n) = tokens_used(&events);
    assert!(n >= 1);
    assert_eq!(
        principals,
        BTreeSet::from(["operator@aks-sim.example".to_string()]),
        "the Azure CLI's user signs in"
    );
    assert!(of_kind(&events, "kube-unauthorized").is_empty(), "{events:#?}");
    assert_no_secret(&c, &r);

    // `report` shows the auth mode too.
    let r = c.run(&["report"], true).await;
    r.assert_code(0);
    assert!(
        r.stderr.contains("cluster auth: Entra ID with Azure RBAC"),
        "{}",
        r.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scan_and_apply_with_a_service_principal() {
    skip_unless_root!();
    let c = Cluster::start(Some(&entra_scenario("", ""))).await;
    assert_no_kubelogin(&c);
    let sp: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(c.sim.state_dir().join("sp.json")).unwrap()).unwrap();
    let id = sp["clientId"].as_str().unwrap().to_string();
    let secret = sp["clientSecret"].as_str().unwrap().to_string();
    let run = |args: &'static [&'static str]| {
        let mut cmd = c.command_with_target(args);
        cmd.env("AZURE_CLIENT_ID", &id).env("AZURE_CLIENT_SECRET", &secret);
        async move {
            let out = cmd.output().await.unwrap();
            Run {
                code: out.status.code().unwrap_or(-1),
                stdout: String::from_utf8_lossy(&out.stdout).into(),
                stderr: String::from_utf8_lossy(&out.stderr).into(),
            }
        }
    };
    let r = run(&["scan", "--auth", "env"]).await;
    r.assert_code(0);
    let r = run(&["apply", "--one-at-a-time", "--yes", "--auth", "env"]).await;
    r.assert_code(0);
    for i in 0..3 {
        assert_eq!(c.kernel(&small_node(i)), "5.15.0-1073-azure");
    }
    let events = c.events();
    let (principals, _) = tokens_used(&events);
    assert_eq!(
        principals,
        BTreeSet::from([id.clone()]),
        "the service principal signs in"
    );
    assert!(of_kind(&events, "kube-unauthorized").is_empty(), "{events:#?}");
    assert!(!r.stderr.contains(&secret));
    assert_no_secret(&c, &r);
}

/// Tokens living 60 s, a rollout of several minutes (three reboots of 50 s): the tokens are
/// replaced as the run goes (the API server sees several), and none is ever refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_refreshed_during_a_long_rollout() {
    skip_unless_root!();
    let yaml = entra_scenario(", tokenLifetimeSeconds: 60", "").replace("bootSeconds: 1,", "bootSeconds: 50,");
    let c = Cluster::start(Some(&yaml)).await;
    assert_no_kubelogin(&c);
    let start = std::time::Instant::now();
    let r = c
        .run(&["apply", "--one-at-a-time", "--yes", "--auth", "cli"], true)
        .await;
    let took = start.elapsed();
    r.assert_code(0);
    assert!(
        took.as_secs() > 150,
        "the rollout must outlast two token lifetimes: {took:?}"
    );
    for i in 0..3 {
        assert_eq!(c.kernel(&small_node(i)), "5.15.0-1073-azure");
        assert!(!c.unschedulable(&small_node(i)));
    }
    assert!(c.lock_free());
    let events = c.events();
    let (_, distinct) = tokens_used(&events);
    assert!(
        distinct >= 3,
        "a {took:?} run with 60 s tokens used {distinct} token(s): {:#?}",
        of_kind(&events, "kube-token")
    );
    assert!(
        of_kind(&events, "kube-unauthorized").is_empty(),
        "{:#?}",
        of_kind(&events, "kube-unauthorized")
    );
    // The lock was renewed all along (the Lease renewer uses the same refreshed tokens).
    assert!(!of_kind(&events, "lease").is_empty());
    assert_no_secret(&c, &r);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_on_a_cluster_without_local_accounts_is_a_usage_error() {
    skip_unless_root!();
    let c = Cluster::start(Some(&entra_scenario("", ""))).await;
    let r = c.run(&["scan", "--admin"], true).await;
    r.assert_code(2);
    assert!(r.stderr.contains("local accounts disabled"), "{}", r.stderr);
    assert!(r.stderr.contains("disableLocalAccounts: true"), "{}", r.stderr);
    assert!(r.stderr.contains("hint: drop --admin"), "{}", r.stderr);
    assert!(r.stdout.is_empty());
}

/// A credential bound to a role that may read nodes and pods only: `scan` works; `apply`
/// stops at the first refused call, before any change, naming the verb, the resource and
/// the role that would allow it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restricted_role_gets_the_403_explained() {
    skip_unless_root!();
    let tail = r#"access:
  user:
    username: operator@aks-sim.example
    clusterRole: node-viewer
    rules:
      - {verbs: [get, list, watch], apiGroups: [""], resources: [nodes, pods]}
"#;
    let c = Cluster::start(Some(&entra_scenario("", tail))).await;
    let r = c.run(&["scan"], true).await;
    r.assert_code(0);
    let r = c.run(&["apply", "--one-at-a-time", "--yes"], true).await;
    r.assert_code(4);
    assert!(
        r.stderr
            .contains("is forbidden: User \"operator@aks-sim.example\" cannot "),
        "{}",
        r.stderr
    );
    // The verb and the resource refused, as the API server names them.
    assert!(
        r.stderr.contains(" resource \"") && r.stderr.contains("\" in API group \""),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("HTTP 403"), "{}", r.stderr);
    assert!(
        r.stderr.contains("Azure Kubernetes Service RBAC Cluster Admin") && r.stderr.contains("docs/rbac.yaml"),
        "{}",
        r.stderr
    );
    for i in 0..3 {
        assert!(!c.unschedulable(&small_node(i)));
        assert_eq!(c.kernel(&small_node(i)), "5.15.0-1068-azure");
    }
    assert!(of_kind(&c.events(), "apt-upgrade").is_empty());
}

/// The API server refuses every token (the emulator's expired-token fault): an auth failure
/// (exit 4) naming the credential the token came from, and what to do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_token_is_an_auth_failure_naming_the_credential() {
    skip_unless_root!();
    let c = Cluster::start(Some(&entra_scenario("", "faults: [{fault: expired-token}]"))).await;
    let r = c.run(&["scan", "--auth", "cli"], true).await;
    r.assert_code(4);
    assert!(
        r.stderr.contains("the API server refused the Entra ID token"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("from the Azure CLI credential"), "{}", r.stderr);
    assert!(
        r.stderr
            .contains("hint: check that the Azure CLI credential is still signed in")
            && r.stderr.contains("az login"),
        "{}",
        r.stderr
    );
    assert_no_secret(&c, &r);
}

/// `access.user` with `rules` (JSON, valid YAML).
fn restricted(rules: &serde_json::Value) -> String {
    format!(
        "access:\n  user:\n    username: operator@aks-sim.example\n    clusterRole: aks-patch\n    rules: {rules}\n"
    )
}

/// The ClusterRole in docs/rbac.yaml, as the README tells users to apply it, is enough for a
/// whole rollout: nothing more, nothing refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_documented_cluster_role_is_enough_for_a_rollout() {
    skip_unless_root!();
    let doc: serde_json::Value = serde_yaml_ng::from_str(
        &std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/rbac.yaml")).unwrap(),
    )
    .unwrap();
    assert_eq!(doc["kind"], "ClusterRole");
    let c = Cluster::start(Some(&entra_scenario("", &restricted(&doc["rules"])))).await;
    let r = c.run(&["apply", "--one-at-a-time", "--yes"], true).await;
    r.assert_code(0);
    for i in 0..3 {
        assert_eq!(c.kernel(&small_node(i)), "5.15.0-1073-azure");
        assert!(!c.unschedulable(&small_node(i)));
    }
    assert!(c.lock_free());
}

/// A role that may read everything and hold the lock but not evict: the rollout would stop at
/// the first drain, so it is refused up front (exit 4), naming the permission and the roles,
/// before any upgrade, cordon or lock; `--dry-run` shows it as a warning.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_permission_is_found_before_any_change() {
    skip_unless_root!();
    let rules = serde_json::json!([
        {"verbs": ["get", "list", "watch", "patch"], "apiGroups": [""], "resources": ["nodes"]},
        {"verbs": ["get", "list", "watch"], "apiGroups": [""], "resources": ["pods"]},
        {"verbs": ["get", "list", "watch"], "apiGroups": ["policy"], "resources": ["poddisruptionbudgets"]},
        {"verbs": ["get", "list", "watch"], "apiGroups": ["apps"], "resources": ["daemonsets", "replicasets", "statefulsets"]},
        {"verbs": ["get", "list", "watch", "create", "update", "delete"], "apiGroups": ["coordination.k8s.io"], "resources": ["leases"]},
    ]);
    let c = Cluster::start(Some(&entra_scenario("", &restricted(&rules)))).await;
    let r = c.run(&["apply", "--one-at-a-time", "--dry-run"], true).await;
    r.assert_code(0);
    assert!(
        r.stderr.contains("may not create pods/eviction in namespace app"),
        "{}",
        r.stderr
    );
    let r = c.run(&["apply", "--one-at-a-time", "--yes"], true).await;
    r.assert_code(4);
    assert!(
        r.stderr.contains("may not create pods/eviction in namespace app"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("nothing was changed"), "{}", r.stderr);
    assert!(
        r.stderr.contains("hint:") && r.stderr.contains("Azure Kubernetes Service RBAC Cluster Admin"),
        "{}",
        r.stderr
    );
    let events = c.events();
    assert!(of_kind(&events, "apt-upgrade").is_empty());
    assert!(of_kind(&events, "cordon").is_empty());
    assert!(of_kind(&events, "lease").is_empty(), "the lock was not taken");
    assert!(c.lease().is_none());
}
