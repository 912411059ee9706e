//! Building a Kubernetes client from a kubeconfig, with kube-rs's own retry turned off.
//!
//! A `kube::Client` built from a `Config` wraps every request in a retry layer that retries
//! 429/503/504 up to 15 times by itself (`Config::default_retry`, true by default). That layer
//! hides a refusing server for minutes and retries evictions that a PodDisruptionBudget
//! refuses. Clients made here set `default_retry = false`; callers retry idempotent calls with
//! [`crate::retry::with_retry`] and handle 429 on evictions themselves.
//!
//! Kubeconfigs that authenticate through an exec plugin (`kubelogin` on AAD clusters) keep
//! working: kube-rs runs the plugin when a request needs a token. The kubeconfig's text is
//! never logged and never copied into an error message.
//!
//! Inside a pod, [`client_in_cluster`] uses the pod's ServiceAccount (kube-rs's in-cluster
//! config). The token there is a projected one that the kubelet rotates; kube-rs keeps the
//! file's path, not its text, and reads it again at least once a minute (its `TokenFile`),
//! and the CA bundle likewise, so a long rollout outlives the token it started with.

use super::error::{auth_detail, auth_error, KubeError};
use ::kube::config::{KubeConfigOptions, Kubeconfig, KubeconfigError};
use ::kube::{Client, Config};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where a pod finds its ServiceAccount's token, CA bundle and namespace.
pub const SERVICE_ACCOUNT_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// Who a client made by [`client_in_cluster`] is, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InClusterIdentity {
    /// The API server (`https://KUBERNETES_SERVICE_HOST:PORT`).
    pub server: String,
    /// The pod's namespace (the `namespace` file).
    pub namespace: String,
    /// The ServiceAccount the token authenticates as (`None`: the token does not say).
    pub service_account: Option<String>,
    /// This pod (`HOSTNAME`, which the kubelet sets to the pod's name) and the node it runs
    /// on, once read ([`own_node`]).
    pub pod: Option<String>,
    pub node: OwnNode,
}

/// The node this pod runs on, as far as it could be told: a run must not drain it (it would
/// evict itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OwnNode {
    /// The pod's `spec.nodeName`.
    Known(String),
    /// Not looked up yet, or there is no pod name to look up (`HOSTNAME` unset).
    Unknown,
    /// No pod of that name in the namespace (a pod whose `hostname` is not its name), or
    /// not scheduled.
    NotFound { pod: String },
    /// The pod could not be read.
    Unreadable {
        pod: String,
        error: String,
        status: Option<u16>,
    },
}

/// The node pod `pod` of `namespace` runs on (`spec.nodeName`), if it exists and is scheduled.
pub async fn own_node(client: &Client, namespace: &str, pod: &str) -> Result<Option<String>, KubeError> {
    let api: ::kube::Api<k8s_openapi::api::core::v1::Pod> = ::kube::Api::namespaced(client.clone(), namespace);
    let what = format!("reading this pod {namespace}/{pod}");
    let p = crate::retry::with_retry(&what, || api.get_opt(pod))
        .await
        .map_err(|e| KubeError::api(what, e))?;
    Ok(p.and_then(|p| p.spec).and_then(|s| s.node_name))
}

/// A client for the cluster this process runs in, as its pod's ServiceAccount: the token,
/// `ca.crt` and `namespace` in [`SERVICE_ACCOUNT_DIR`], the API server from
/// `KUBERNETES_SERVICE_HOST` and `KUBERNETES_SERVICE_PORT`. Each file is checked first, so a
/// missing one is named rather than reported as kube-rs's generic failure.
pub async fn client_in_cluster() -> Result<(Client, InClusterIdentity), KubeError> {
    let dir = Path::new(SERVICE_ACCOUNT_DIR);
    let read = |name: &str| {
        let path = dir.join(name);
        std::fs::read_to_string(&path).map_err(|source| KubeError::InClusterFile { path, source })
    };
    let token = read("token")?;
    read("ca.crt")?;
    let namespace = read("namespace")?.trim().to_string();
    let config = Config::incluster_env().map_err(|source| KubeError::InCluster { source })?;
    let identity = InClusterIdentity {
        server: config.cluster_url.to_string().trim_end_matches('/').to_string(),
        service_account: service_account_of(&token)
            .filter(|(ns, _)| *ns == namespace)
            .map(|(_, sa)| sa),
        namespace,
        pod: std::env::var("HOSTNAME").ok().filter(|h| !h.is_empty()),
        node: OwnNode::Unknown,
    };
    let client = client_from_config_for(config, &identity.server)?;
    Ok((client, identity))
}

/// The ServiceAccount a token is for, as `(namespace, name)`: its `sub` claim,
/// `system:serviceaccount:NS:NAME`. The token is not verified (the API server does that);
/// this only names the identity in the run record and in messages.
pub fn service_account_of(token: &str) -> Option<(String, String)> {
    use base64::Engine as _;
    let payload = token.trim().split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    let sub = claims.get("sub")?.as_str()?;
    let rest = sub.strip_prefix("system:serviceaccount:")?;
    let (ns, name) = rest.split_once(':')?;
    Some((ns.to_string(), name.to_string()))
}

/// The path of one of the in-cluster files (for messages).
pub fn service_account_file(name: &str) -> PathBuf {
    Path::new(SERVICE_ACCOUNT_DIR).join(name)
}

/// How long one response may take before the request fails (and, for reads, is retried).
/// No call made by this module streams: a watch would need a longer one.
pub const READ_TIMEOUT: Duration = Duration::from_secs(60);

/// Connecting to the API server.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);

/// A client from kubeconfig text (as ARM's `listClusterUserCredential` returns it, decoded).
/// `context` picks a context; the kubeconfig's current-context otherwise.
pub async fn client_from_kubeconfig_yaml(yaml: &str, context: Option<&str>) -> Result<Client, KubeError> {
    let origin = "(from the cluster's credentials)".to_string();
    let kc = Kubeconfig::from_yaml(yaml).map_err(|e| kubeconfig_error(&origin, e))?;
    client_from_kubeconfig(kc, context, origin).await
}

/// A client from a kubeconfig file. Relative paths inside it (certificates, exec plugins)
/// are taken relative to the file, as kubectl does.
pub async fn client_from_kubeconfig_file(path: &Path, context: Option<&str>) -> Result<Client, KubeError> {
    let origin = path.display().to_string();
    let kc = Kubeconfig::read_from(path).map_err(|e| match e {
        KubeconfigError::ReadConfig(source, path) => KubeError::ReadKubeconfig { path, source },
        other => kubeconfig_error(&origin, other),
    })?;
    client_from_kubeconfig(kc, context, origin).await
}

async fn client_from_kubeconfig(kc: Kubeconfig, context: Option<&str>, origin: String) -> Result<Client, KubeError> {
    let contexts: Vec<String> = kc.contexts.iter().map(|c| c.name.clone()).collect();
    let available = if contexts.is_empty() {
        String::new()
    } else {
        format!(" (it has: {})", contexts.join(", "))
    };
    if let Some(ctx) = context {
        if !contexts.iter().any(|c| c == ctx) {
            return Err(KubeError::NoSuchContext {
                origin,
                context: ctx.to_string(),
                available,
            });
        }
    } else if kc.current_context.as_deref().unwrap_or("").is_empty() {
        return Err(KubeError::NoCurrentContext { origin, available });
    }
    let options = KubeConfigOptions {
        context: context.map(str::to_string),
        cluster: None,
        user: None,
    };
    let config = Config::from_custom_kubeconfig(kc, &options)
        .await
        .map_err(|e| kubeconfig_error(&origin, e))?;
    client_from_config_for(config, &origin)
}

/// A client from a ready `Config`, with kube-rs's retry layer off and our timeouts set.
pub fn client_from_config(config: Config) -> Result<Client, KubeError> {
    let origin = config.cluster_url.to_string();
    client_from_config_for(config, &origin)
}

fn client_from_config_for(mut config: Config, origin: &str) -> Result<Client, KubeError> {
    crate::http::install_crypto_provider();
    config.default_retry = false;
    config.connect_timeout = Some(CONNECT_TIMEOUT);
    config.read_timeout = Some(READ_TIMEOUT);
    config.reset_reader_on_write = true;
    Client::try_from(config).map_err(|source| match auth_error(&source) {
        Some(a) => KubeError::Auth {
            action: format!("setting up the Kubernetes client for the kubeconfig {origin}"),
            detail: auth_detail(a),
        },
        None => KubeError::Build {
            origin: origin.to_string(),
            source,
        },
    })
}

pub(crate) fn kubeconfig_error(origin: &str, e: KubeconfigError) -> KubeError {
    match e {
        KubeconfigError::Parse(p) => KubeError::KubeconfigSyntax {
            origin: origin.to_string(),
            location: p
                .location()
                .map(|l| format!(" (at line {}, column {})", l.line(), l.column()))
                .unwrap_or_default(),
        },
        KubeconfigError::LoadContext(context) => KubeError::NoSuchContext {
            origin: origin.to_string(),
            context,
            available: String::new(),
        },
        KubeconfigError::CurrentContextNotSet => KubeError::NoCurrentContext {
            origin: origin.to_string(),
            available: String::new(),
        },
        other => {
            let what = match &other {
                KubeconfigError::LoadClusterOfContext(c) => format!("the context's cluster `{c}` is not defined"),
                KubeconfigError::MissingClusterUrl => "the cluster has no server URL".into(),
                KubeconfigError::ParseClusterUrl(_) => "the cluster's server URL is not a valid URL".into(),
                KubeconfigError::LoadCertificateAuthority(_) => "its certificate-authority cannot be loaded".into(),
                KubeconfigError::LoadClientCertificate(_) => "its client certificate cannot be loaded".into(),
                KubeconfigError::LoadClientKey(_) => "its client key cannot be loaded".into(),
                KubeconfigError::ParseCertificates(_) => "its certificates are not valid PEM".into(),
                _ => "it is inconsistent".into(),
            };
            KubeError::Kubeconfig {
                origin: origin.to_string(),
                what,
                source: other,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "sekret-token-0123456789";

    fn kubeconfig(token: &str) -> String {
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://127.0.0.1:6443\n    insecure-skip-tls-verify: true\ncontexts:\n- name: ctx\n  context: {{cluster: c, user: u}}\n- name: other\n  context: {{cluster: c, user: u}}\ncurrent-context: ctx\nusers:\n- name: u\n  user:\n    token: {token}\n"
        )
    }

    #[test]
    fn a_service_account_token_names_its_namespace_and_account() {
        use base64::Engine as _;
        let enc = |v: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v);
        let token = format!(
            "{}.{}.sig",
            enc(r#"{"alg":"RS256"}"#),
            enc(r#"{"sub":"system:serviceaccount:aks-patch:aks-patch","aud":["https://kubernetes.default.svc"]}"#)
        );
        assert_eq!(
            service_account_of(&format!("{token}\n")),
            Some(("aks-patch".into(), "aks-patch".into()))
        );
        let user = format!("{}.{}.sig", enc("{}"), enc(r#"{"sub":"alice@example.com"}"#));
        assert_eq!(service_account_of(&user), None);
        assert_eq!(service_account_of("not-a-jwt"), None);
    }

    #[tokio::test]
    async fn builds_a_client_and_picks_the_context() {
        let c = client_from_kubeconfig_yaml(&kubeconfig(SECRET), None).await.unwrap();
        assert_eq!(c.default_namespace(), "default");
        client_from_kubeconfig_yaml(&kubeconfig(SECRET), Some("other"))
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn unknown_context_names_the_ones_there() {
        let e = client_from_kubeconfig_yaml(&kubeconfig(SECRET), Some("nope"))
            .await
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("`nope`"), "{e}");
        assert!(e.contains("ctx, other"), "{e}");
    }

    #[tokio::test]
    async fn syntax_errors_never_quote_the_text() {
        let bad = format!("{}\n  - : [: {SECRET}\n", kubeconfig(SECRET));
        let e = client_from_kubeconfig_yaml(&bad, None).await.err().unwrap();
        let text = format!("{e} {e:?}");
        assert!(!text.contains(SECRET), "{text}");
        assert!(text.contains("not valid kubeconfig YAML"), "{text}");
        let bad = format!("apiVersion: v1\nusers: {SECRET}\n");
        let e = client_from_kubeconfig_yaml(&bad, None).await.err().unwrap();
        let text = format!("{e} {e:?}");
        assert!(!text.contains(SECRET), "{text}");
    }

    #[tokio::test]
    async fn missing_file_names_the_path() {
        let e = client_from_kubeconfig_file(Path::new("/nonexistent/kubeconfig"), None)
            .await
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("/nonexistent/kubeconfig"), "{e}");
    }

    /// A plain-HTTP server answering every request with 503, counting requests.
    async fn refusing_server() -> (String, std::sync::Arc<std::sync::atomic::AtomicU32>) {
        use std::sync::atomic::{AtomicU32, Ordering};
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", l.local_addr().unwrap());
        let count = std::sync::Arc::new(AtomicU32::new(0));
        let c = count.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut s, _)) = l.accept().await else { return };
                let c = c.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 8192];
                    let mut seen = Vec::new();
                    loop {
                        let n = match s.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => n,
                        };
                        seen.extend_from_slice(&buf[..n]);
                        while let Some(end) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
                            seen.drain(..end + 4);
                            c.fetch_add(1, Ordering::SeqCst);
                            let body = r#"{"kind":"Status","apiVersion":"v1","status":"Failure","message":"overloaded","reason":"ServiceUnavailable","code":503}"#;
                            let resp = format!(
                                "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: 0\r\nContent-Length: {}\r\n\r\n{}",
                                body.len(),
                                body
                            );
                            if s.write_all(resp.as_bytes()).await.is_err() {
                                return;
                            }
                        }
                    }
                });
            }
        });
        (url, count)
    }

    #[tokio::test]
    async fn kube_rs_retry_is_off() {
        use k8s_openapi::api::core::v1::Node;
        use std::sync::atomic::Ordering;
        let (url, count) = refusing_server().await;
        let config = Config::new(url.parse().unwrap());
        assert!(
            config.default_retry,
            "kube-rs default changed: re-check the retry layer"
        );
        let client = client_from_config(config).unwrap();
        let nodes: ::kube::Api<Node> = ::kube::Api::all(client);
        let e = nodes.list(&Default::default()).await.unwrap_err();
        assert_eq!(super::super::error::status_code(&e), Some(503));
        assert_eq!(count.load(Ordering::SeqCst), 1, "kube-rs retried by itself");
        // Our helper retries, a bounded number of times.
        let lp = Default::default();
        let policy = crate::retry::RetryPolicy {
            attempts: 3,
            initial: Duration::from_millis(1),
            max: Duration::from_millis(1),
            patience: Duration::from_secs(60),
        };
        let e = crate::retry::with_retry_policy(policy, "listing nodes", || nodes.list(&lp))
            .await
            .unwrap_err();
        assert_eq!(super::super::error::status_code(&e), Some(503));
        assert_eq!(count.load(Ordering::SeqCst), 4);
    }
}
