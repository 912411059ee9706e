//! ServiceAccounts, the TokenRequest API and the RBAC objects of the emulated API server,
//! driven by kubectl (`create sa`, `create token`, `auth can-i` with the token or `--as`,
//! `create role/rolebinding`, `apply -k --dry-run=server`) and the official Python client:
//! a ServiceAccount's token is authorized from the stored Roles, ClusterRoles and bindings,
//! and refused once expired, for another audience, or when its ServiceAccount is gone.

use crate::common::{eventually, Emulator as Env};
use base64::Engine;
use serde_json::{json, Value};
use std::time::Duration;

/// `kubectl ARGS` as the bearer of `token` (the kubeconfig's server and CA, not its user).
async fn kubectl_as(env: &Env, token: &str, args: &[&str]) -> (bool, String, String) {
    let mut all = vec!["--token", token];
    all.extend_from_slice(args);
    env.kubectl(&all).await
}

/// `kubectl auth can-i VERB RESOURCE [-n NS]` as the bearer of `token`: "yes" or "no".
async fn can_i(env: &Env, token: &str, args: &[&str]) -> String {
    let mut all = vec!["auth", "can-i"];
    all.extend_from_slice(args);
    let (_, out, err) = kubectl_as(env, token, &all).await;
    let err: Vec<&str> = err
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with("Warning:"))
        .collect();
    assert!(err.is_empty() || out.trim() == "no", "{err:?}");
    out.trim().to_string()
}

/// The claims of a JWT.
fn claims(token: &str) -> Value {
    let body = token.split('.').nth(1).expect("a JWT has three parts");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(body)
        .expect("base64url claims");
    serde_json::from_slice(&bytes).expect("JSON claims")
}

async fn ok(env: &Env, args: &[&str]) -> String {
    let (success, out, err) = env.kubectl(args).await;
    assert!(success, "kubectl {args:?}: {err}");
    out
}

/// Wait for the namespace's `default` ServiceAccount, which the cluster creates with it.
async fn default_service_account(env: &Env, ns: &str) {
    eventually("the default serviceaccount", Duration::from_secs(30), || async {
        env.kubectl(&["get", "sa", "default", "-n", ns]).await.0.then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_account_token_is_authorized_by_the_stored_roles_and_bindings() {
    skip_unless_root!();
    let env = Env::default().await;
    ok(&env, &["create", "namespace", "ops"]).await;
    default_service_account(&env, "ops").await;
    ok(&env, &["create", "serviceaccount", "patcher", "-n", "ops"]).await;
    let token = ok(&env, &["create", "token", "patcher", "-n", "ops", "--duration", "20m"]).await;
    let token = token.trim();
    let c = claims(token);
    assert_eq!(c["sub"], "system:serviceaccount:ops:patcher");
    assert_eq!(c["kubernetes.io"]["namespace"], "ops");
    assert_eq!(c["kubernetes.io"]["serviceaccount"]["name"], "patcher");
    assert_eq!(c["exp"].as_i64().unwrap() - c["iat"].as_i64().unwrap(), 1200);

    let (_, who, err) = kubectl_as(&env, token, &["auth", "whoami", "-o", "json"]).await;
    let who: Value = serde_json::from_str(&who).unwrap_or_else(|e| panic!("{e}: {who}{err}"));
    assert_eq!(
        who["status"]["userInfo"]["username"],
        "system:serviceaccount:ops:patcher"
    );
    assert_eq!(
        who["status"]["userInfo"]["groups"],
        json!([
            "system:serviceaccounts",
            "system:serviceaccounts:ops",
            "system:authenticated"
        ])
    );

    // Nothing bound: the real server's 403.
    assert_eq!(can_i(&env, token, &["patch", "nodes"]).await, "no");
    let (success, _, err) = kubectl_as(&env, token, &["get", "nodes"]).await;
    assert!(!success);
    assert!(
        err.contains("nodes is forbidden: User \"system:serviceaccount:ops:patcher\" cannot list resource \"nodes\" in API group \"\" at the cluster scope"),
        "{err}"
    );

    // A ClusterRole bound by a ClusterRoleBinding: everywhere.
    ok(
        &env,
        &[
            "create",
            "clusterrole",
            "node-patcher",
            "--verb=get,list,patch",
            "--resource=nodes",
        ],
    )
    .await;
    ok(
        &env,
        &[
            "create",
            "clusterrolebinding",
            "patcher",
            "--clusterrole=node-patcher",
            "--serviceaccount=ops:patcher",
        ],
    )
    .await;
    assert_eq!(can_i(&env, token, &["patch", "nodes"]).await, "yes");
    assert_eq!(can_i(&env, token, &["delete", "nodes"]).await, "no");
    let nodes = ok(&env, &["--token", token, "get", "nodes", "-o", "name"]).await;
    assert!(nodes.lines().count() >= 2, "{nodes}");
    // Impersonation answers the same (the admin may impersonate anyone).
    let (_, out, _) = env
        .kubectl(&[
            "auth",
            "can-i",
            "patch",
            "nodes",
            "--as",
            "system:serviceaccount:ops:patcher",
        ])
        .await;
    assert_eq!(out.trim(), "yes");

    // A Role bound in its namespace, for one named object.
    ok(
        &env,
        &[
            "create",
            "role",
            "runs",
            "-n",
            "ops",
            "--verb=get,update",
            "--resource=configmaps",
            "--resource-name=runs",
        ],
    )
    .await;
    ok(
        &env,
        &[
            "create",
            "rolebinding",
            "runs",
            "-n",
            "ops",
            "--role=runs",
            "--serviceaccount=ops:patcher",
        ],
    )
    .await;
    assert_eq!(
        can_i(&env, token, &["update", "configmaps/runs", "-n", "ops"]).await,
        "yes"
    );
    assert_eq!(
        can_i(&env, token, &["update", "configmaps/other", "-n", "ops"]).await,
        "no"
    );
    assert_eq!(
        can_i(&env, token, &["update", "configmaps/runs", "-n", "default"]).await,
        "no"
    );
    let (_, list, _) = kubectl_as(&env, token, &["auth", "can-i", "--list", "-n", "ops"]).await;
    assert!(list.contains("configmaps") && list.contains("[runs]"), "{list}");

    // A rule removed from the ClusterRole no longer grants anything.
    ok(
        &env,
        &[
            "patch",
            "clusterrole",
            "node-patcher",
            "--type=json",
            "-p",
            r#"[{"op":"replace","path":"/rules/0/verbs","value":["get","list"]}]"#,
        ],
    )
    .await;
    assert_eq!(can_i(&env, token, &["patch", "nodes"]).await, "no");
    let (success, _, err) = kubectl_as(
        &env,
        token,
        &[
            "label",
            "node",
            nodes.lines().next().unwrap().trim_start_matches("node/"),
            "x=y",
        ],
    )
    .await;
    assert!(!success);
    assert!(
        err.contains("cannot patch resource \"nodes\" in API group \"\" at the cluster scope"),
        "{err}"
    );

    // The ServiceAccount deleted, then re-created under the same name: the token is refused.
    ok(&env, &["delete", "serviceaccount", "patcher", "-n", "ops"]).await;
    let (success, _, err) = kubectl_as(&env, token, &["get", "nodes"]).await;
    assert!(!success);
    assert!(
        err.contains("Unauthorized") || err.contains("must be logged in"),
        "{err}"
    );
    ok(&env, &["create", "serviceaccount", "patcher", "-n", "ops"]).await;
    let (success, _, err) = kubectl_as(&env, token, &["get", "nodes"]).await;
    assert!(!success, "a token of the ServiceAccount before it was re-created");
    assert!(
        err.contains("Unauthorized") || err.contains("must be logged in"),
        "{err}"
    );
    let fresh = ok(&env, &["create", "token", "patcher", "-n", "ops"]).await;
    assert_eq!(can_i(&env, fresh.trim(), &["get", "nodes"]).await, "yes");

    // Tokens are never in the event log; their use and refusals are, by ServiceAccount.
    let events = env.events();
    assert!(events
        .iter()
        .all(|e| !e.detail.contains(token) && !e.detail.contains(fresh.trim())));
    assert!(events
        .iter()
        .any(|e| e.kind == "kube-unauthorized" && e.detail.contains("serviceaccount ops/patcher has been deleted")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_requests_are_checked_and_their_tokens_refused_when_expired_or_for_another_audience() {
    skip_unless_root!();
    let env = Env::default().await;
    default_service_account(&env, "default").await;
    ok(&env, &["create", "serviceaccount", "patcher"]).await;
    ok(
        &env,
        &[
            "create",
            "clusterrolebinding",
            "patcher-admin",
            "--clusterrole=cluster-admin",
            "--serviceaccount=default:patcher",
        ],
    )
    .await;

    let (success, _, err) = env.kubectl(&["create", "token", "patcher", "--duration", "5m"]).await;
    assert!(!success);
    assert!(
        err.contains("spec.expirationSeconds: Invalid value: 300: may not specify a duration less than 10 minutes"),
        "{err}"
    );
    let (success, _, err) = env.kubectl(&["create", "token", "nobody"]).await;
    assert!(!success);
    assert!(err.contains("serviceaccounts \"nobody\" not found"), "{err}");

    // The default lifetime is an hour, for the API server's audiences.
    let token = ok(&env, &["create", "token", "patcher"]).await;
    let c = claims(token.trim());
    assert_eq!(c["exp"].as_i64().unwrap() - c["iat"].as_i64().unwrap(), 3600);
    assert!(c["aud"]
        .as_array()
        .unwrap()
        .contains(&json!("https://kubernetes.default.svc.cluster.local")));
    assert_eq!(can_i(&env, token.trim(), &["delete", "nodes"]).await, "yes");

    // A token for another audience (workload identity's) is no API server token.
    let federated = ok(
        &env,
        &["create", "token", "patcher", "--audience", "api://AzureADTokenExchange"],
    )
    .await;
    assert_eq!(claims(federated.trim())["aud"], json!(["api://AzureADTokenExchange"]));
    let (success, _, err) = kubectl_as(&env, federated.trim(), &["get", "nodes"]).await;
    assert!(!success);
    assert!(
        err.contains("Unauthorized") || err.contains("must be logged in"),
        "{err}"
    );

    // A token whose time is up (signed by the emulator an hour and more ago) is refused.
    let sa = env
        .sim
        .shared
        .store
        .get(aks_sim::store::SERVICEACCOUNTS, Some("default"), "patcher")
        .unwrap();
    let now = aks_sim::time::unix_now();
    let kube_url = env.sim.endpoints().kube_url.clone();
    let expired = env.sim.shared.tokens.sign_service_account_token(
        &aks_sim::tokens::service_account_issuer(&kube_url),
        &aks_sim::tokens::ServiceAccountClaims {
            namespace: "default".into(),
            name: "patcher".into(),
            uid: sa["metadata"]["uid"].as_str().unwrap().into(),
            audiences: aks_sim::tokens::api_audiences(&kube_url),
            issued_at: now - 4000,
            expires_at: now - 400,
            jti: "expired-1".into(),
            bound: None,
        },
    );
    let (success, _, err) = kubectl_as(&env, &expired, &["get", "nodes"]).await;
    assert!(!success);
    assert!(
        err.contains("Unauthorized") || err.contains("must be logged in"),
        "{err}"
    );
    assert!(env
        .events()
        .iter()
        .any(|e| e.kind == "kube-unauthorized" && e.detail.contains("expired-1") && e.detail.contains("has expired")));

    // A token bound to a pod lives as long as the pod.
    let pods = env.sim.shared.store.list(aks_sim::store::PODS, None);
    let pod = pods
        .iter()
        .find(|p| p["metadata"]["namespace"] != "kube-system")
        .or(pods.first())
        .expect("the default scenario runs pods");
    let ns = pod["metadata"]["namespace"].as_str().unwrap();
    let pod_name = pod["metadata"]["name"].as_str().unwrap();
    if ns != "default" {
        ok(&env, &["create", "serviceaccount", "patcher", "-n", ns]).await;
    }
    let bound = ok(
        &env,
        &[
            "create",
            "token",
            "patcher",
            "-n",
            ns,
            "--bound-object-kind",
            "Pod",
            "--bound-object-name",
            pod_name,
        ],
    )
    .await;
    assert_eq!(claims(bound.trim())["kubernetes.io"]["pod"]["name"], pod_name);
    let (success, _, err) = kubectl_as(&env, bound.trim(), &["auth", "whoami"]).await;
    assert!(success, "{err}");
    ok(
        &env,
        &["delete", "pod", pod_name, "-n", ns, "--grace-period=0", "--force"],
    )
    .await;
    eventually("the pod gone", Duration::from_secs(30), || async {
        env.sim
            .shared
            .store
            .get(aks_sim::store::PODS, Some(ns), pod_name)
            .is_none()
            .then_some(())
    })
    .await;
    let (success, _, err) = kubectl_as(&env, bound.trim(), &["auth", "whoami"]).await;
    assert!(!success, "a token bound to a deleted pod");
    assert!(
        err.contains("Unauthorized") || err.contains("must be logged in"),
        "{err}"
    );
}

/// The RBAC kinds are validated as kube-apiserver validates them, and a kustomize base with
/// a Namespace, ServiceAccount, RBAC, ConfigMap, Secret and CronJob dry-runs as on a real
/// server: before its Namespace exists, the namespaced objects are NotFound.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kustomize_base_with_rbac_dry_runs_and_applies_as_on_a_real_server() {
    skip_unless_root!();
    let env = Env::default().await;
    let base = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/in-cluster-base");

    let (success, out, err) = env.kubectl(&["apply", "-k", base, "--dry-run=server"]).await;
    assert!(!success, "the namespace does not exist yet: {out}");
    assert!(out.contains("namespace/node-patcher created (server dry run)"), "{out}");
    assert!(
        out.contains("clusterrole.rbac.authorization.k8s.io/node-patcher created (server dry run)"),
        "{out}"
    );
    assert!(err.contains("namespaces \"node-patcher\" not found"), "{err}");
    assert!(
        !env.kubectl(&["get", "namespace", "node-patcher"]).await.0,
        "a dry run creates nothing"
    );

    ok(&env, &["create", "namespace", "node-patcher"]).await;
    let out = ok(&env, &["apply", "-k", base, "--dry-run=server"]).await;
    for o in [
        "serviceaccount/node-patcher",
        "role.rbac.authorization.k8s.io/node-patcher-runs",
        "rolebinding.rbac.authorization.k8s.io/node-patcher-runs",
        "clusterrolebinding.rbac.authorization.k8s.io/node-patcher",
        "configmap/node-patcher-settings",
        "secret/node-patcher-notify",
        "cronjob.batch/node-patcher",
    ] {
        assert!(out.contains(&format!("{o} created (server dry run)")), "{o}: {out}");
    }
    assert!(
        !env.kubectl(&["get", "sa", "node-patcher", "-n", "node-patcher"])
            .await
            .0
    );

    let out = ok(&env, &["apply", "-k", base]).await;
    assert!(
        out.contains("rolebinding.rbac.authorization.k8s.io/node-patcher-runs created"),
        "{out}"
    );
    let token = ok(&env, &["create", "token", "node-patcher", "-n", "node-patcher"]).await;
    assert_eq!(
        can_i(
            &env,
            token.trim(),
            &["create", "pods", "--subresource=eviction", "-n", "kube-system"]
        )
        .await,
        "yes"
    );
    assert_eq!(
        can_i(&env, token.trim(), &["create", "configmaps", "-n", "node-patcher"]).await,
        "yes"
    );
    assert_eq!(
        can_i(&env, token.trim(), &["create", "configmaps", "-n", "default"]).await,
        "no"
    );
    let (_, out, _) = env.kubectl(&["get", "rolebinding", "-n", "node-patcher"]).await;
    assert!(out.contains("Role/node-patcher-runs"), "{out}");

    // roleRef is immutable; subjects are checked.
    let changed = r#"{"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": "node-patcher-runs", "namespace": "node-patcher"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
        "subjects": [{"kind": "ServiceAccount", "name": "node-patcher"}]}"#;
    let (code, _, err) = env
        .kubectl_stdin(&["apply", "--server-side", "--force-conflicts", "-f", "-"], changed)
        .await;
    assert_ne!(code, 0);
    assert!(
        err.contains("roleRef: Invalid value: rbac.RoleRef{APIGroup:\"rbac.authorization.k8s.io\", Kind:\"ClusterRole\", Name:\"cluster-admin\"}: cannot change roleRef"),
        "{err}"
    );
    let robot = r#"{"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
        "metadata": {"name": "robots"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
        "subjects": [{"kind": "Robot", "name": "r2"}, {"kind": "ServiceAccount", "name": "d2"}]}"#;
    let (code, _, err) = env.kubectl_stdin(&["create", "-f", "-"], robot).await;
    assert_ne!(code, 0);
    assert!(err.contains("The ClusterRoleBinding \"robots\" is invalid"), "{err}");
    assert!(
        err.contains(
            "subjects[0].kind: Unsupported value: \"Robot\": supported values: \"ServiceAccount\", \"User\", \"Group\""
        ),
        "{err}"
    );
    assert!(err.contains("subjects[1].namespace: Required value"), "{err}");
    let no_ref = r#"{"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": "no-ref", "namespace": "node-patcher"}, "subjects": []}"#;
    let (code, _, err) = env.kubectl_stdin(&["create", "-f", "-"], no_ref).await;
    assert_ne!(code, 0);
    assert!(err.contains("roleRef.kind: Unsupported value: \"\""), "{err}");
}

/// The official Python client asks for a token (TokenRequest) and reviews its own access
/// with it (SelfSubjectAccessReview), unchanged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_client_requests_a_token_and_reviews_its_access() {
    skip_unless_root!();
    let env = Env::default().await;
    ok(&env, &["create", "serviceaccount", "reader", "-n", "kube-system"]).await;
    ok(
        &env,
        &[
            "create",
            "clusterrole",
            "pod-reader",
            "--verb=get,list",
            "--resource=pods",
        ],
    )
    .await;
    ok(
        &env,
        &[
            "create",
            "rolebinding",
            "reader",
            "-n",
            "kube-system",
            "--clusterrole=pod-reader",
            "--serviceaccount=kube-system:reader",
        ],
    )
    .await;
    let script = r#"
import sys, json
from kubernetes import client, config
config.load_kube_config(config_file=sys.argv[1])
core = client.CoreV1Api()
tr = core.create_namespaced_service_account_token("reader", "kube-system",
    client.AuthenticationV1TokenRequest(spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=900)))
cfg = client.Configuration.get_default_copy()
cfg.api_key = {"authorization": "Bearer " + tr.status.token}
cfg.refresh_api_key_hook = None  # it would put the kubeconfig's token back
api = client.ApiClient(cfg)
def review(verb, resource, ns):
    r = client.AuthorizationV1Api(api).create_self_subject_access_review(client.V1SelfSubjectAccessReview(
        spec=client.V1SelfSubjectAccessReviewSpec(resource_attributes=client.V1ResourceAttributes(
            verb=verb, resource=resource, namespace=ns))))
    return {"allowed": r.status.allowed, "reason": r.status.reason}
pods = [p.metadata.name for p in client.CoreV1Api(api).list_namespaced_pod("kube-system").items]
try:
    client.CoreV1Api(api).list_namespaced_pod("default")
    other = None
except client.rest.ApiException as e:
    other = {"status": e.status, "message": json.loads(e.body)["message"]}
print(json.dumps({
    "expires": tr.status.expiration_timestamp.isoformat(),
    "seconds": tr.spec.expiration_seconds,
    "list_here": review("list", "pods", "kube-system"),
    "list_there": review("list", "pods", "default"),
    "pods": len(pods),
    "other": other,
}))
"#;
    let v = env.python(script, &[]).await;
    assert_eq!(v["seconds"], 900, "{v}");
    assert_eq!(v["list_here"]["allowed"], true, "{v}");
    assert_eq!(
        v["list_here"]["reason"],
        "RBAC: allowed by RoleBinding \"reader/kube-system\" of ClusterRole \"pod-reader\" to ServiceAccount \"reader/kube-system\"",
        "{v}"
    );
    assert_eq!(v["list_there"]["allowed"], false, "{v}");
    assert_eq!(v["other"]["status"], 403);
    assert_eq!(
        v["other"]["message"],
        "pods is forbidden: User \"system:serviceaccount:kube-system:reader\" cannot list resource \"pods\" in API group \"\" in the namespace \"default\""
    );
}

/// The Entra token endpoint takes a ServiceAccount token for `api://AzureADTokenExchange` as a
/// workload identity's `client_assertion` when its subject is a federated credential's (by
/// default deploy/'s `aks-patch/aks-patch`), as an in-cluster aks-patch reaches ARM.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_federated_service_account_token_gets_an_entra_token_for_arm() {
    skip_unless_root!();
    let env = Env::default().await;
    ok(&env, &["create", "namespace", "aks-patch"]).await;
    ok(&env, &["create", "serviceaccount", "aks-patch", "-n", "aks-patch"]).await;
    ok(&env, &["create", "serviceaccount", "intruder", "-n", "aks-patch"]).await;
    let token = |sa: &'static str, audience: Option<&'static str>| {
        let env = &env;
        async move {
            let mut args = vec!["create", "token", sa, "-n", "aks-patch"];
            if let Some(a) = audience {
                args.extend(["--audience", a]);
            }
            ok(env, &args).await.trim().to_string()
        }
    };
    let ep = env.sim.endpoints();
    let client_id = env.sim.shared.tokens.client_id.clone();
    let exchange = |assertion: String| {
        let (http, url, tenant, client_id) = (env.https(), ep.arm_url.clone(), ep.tenant_id.clone(), client_id.clone());
        async move {
            let form = [
                ("grant_type", "client_credentials".to_string()),
                ("client_id", client_id),
                ("scope", "https://management.azure.com/.default".to_string()),
                (
                    "client_assertion_type",
                    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer".to_string(),
                ),
                ("client_assertion", assertion),
            ];
            let body: String = form
                .iter()
                .map(|(k, v)| format!("{k}={}", v.replace(':', "%3A").replace('/', "%2F")))
                .collect::<Vec<_>>()
                .join("&");
            let r = http
                .post(format!("{url}/{tenant}/oauth2/v2.0/token"))
                .header("content-type", "application/x-www-form-urlencoded")
                .body(body)
                .send()
                .await
                .expect("the token endpoint answers");
            (r.status().as_u16(), r.json::<Value>().await.unwrap_or(Value::Null))
        }
    };

    let (code, v) = exchange(token("aks-patch", Some("api://AzureADTokenExchange")).await).await;
    assert_eq!(code, 200, "{v}");
    let arm = v["access_token"].as_str().unwrap();
    assert!(env.sim.shared.tokens.arm_valid(arm), "an ARM token");

    let (code, v) = exchange(token("intruder", Some("api://AzureADTokenExchange")).await).await;
    assert_eq!(code, 401);
    assert!(
        v["error_description"].as_str().unwrap().starts_with(
            "AADSTS700213: No matching federated identity record found for presented assertion subject 'system:serviceaccount:aks-patch:intruder'"
        ),
        "{v}"
    );

    let (code, v) = exchange(token("aks-patch", None).await).await;
    assert_eq!(code, 401);
    assert!(
        v["error_description"]
            .as_str()
            .unwrap()
            .starts_with("AADSTS700212: No matching federated identity record found for presented assertion audience"),
        "{v}"
    );
}
