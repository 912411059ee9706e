//! Building a Kubernetes client from a kubeconfig, with kube-rs's own retry turned off.
//!
//! A `kube::Client` built from a `Config` wraps every request in a retry layer that retries
//! 429/503/504 up to 15 times by itself (`Config::default_retry`, true by default). That layer
//! hides a refusing server for minutes and retries evictions that a PodDisruptionBudget
//! refuses. Clients made here set `default_retry = false`; callers retry idempotent calls with
//! [`super::retry::with_retry`] and handle 429 on evictions themselves.
//!
//! Kubeconfigs that authenticate through an exec plugin (`kubelogin` on AAD clusters) keep
//! working: kube-rs runs the plugin when a request needs a token. The kubeconfig's text is
//! never logged and never copied into an error message.

use ::kube::config::{KubeConfigOptions, Kubeconfig, KubeconfigError};
use ::kube::{Client, Config};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How long one response may take before the request fails (and, for reads, is retried).
/// No call made by this module streams: a watch would need a longer one.
pub const READ_TIMEOUT: Duration = Duration::from_secs(60);

/// Connecting to the API server.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);

#[derive(Debug, thiserror::Error)]
pub enum KubeError {
    #[error("cannot read the kubeconfig {path}: check the path and its permissions")]
    ReadKubeconfig {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The YAML could not be parsed. The parser's own message is withheld: it quotes the
    /// text, and a kubeconfig holds credentials.
    #[error("the kubeconfig {origin} is not valid kubeconfig YAML{location} (its text is not shown: it holds credentials); fetch it again (az aks get-credentials) or check the file")]
    KubeconfigSyntax { origin: String, location: String },
    #[error("the kubeconfig {origin} has no context named `{context}`{available}: pick one with --context")]
    NoSuchContext {
        origin: String,
        context: String,
        available: String,
    },
    #[error("the kubeconfig {origin} sets no current-context and none was given: pass --context{available}")]
    NoCurrentContext { origin: String, available: String },
    #[error("the kubeconfig {origin} cannot be used: {what}")]
    Kubeconfig {
        origin: String,
        what: String,
        #[source]
        source: KubeconfigError,
    },
    #[error("cannot set up the Kubernetes client for {origin} (TLS or authentication settings)")]
    Build {
        origin: String,
        #[source]
        source: ::kube::Error,
    },
    /// Getting credentials failed (exec plugin, token file). The underlying error is not
    /// kept: kube-rs's includes the plugin's command line (with its environment, which can
    /// hold a client secret) and its output (which can hold a token).
    #[error("{action} failed: getting credentials failed: {detail}; for exec-plugin kubeconfigs (kubelogin on AAD clusters) check that the plugin is installed, on PATH and logged in")]
    Auth { action: String, detail: String },
    /// A Kubernetes API call failed: `action` says which, `hint` what to do.
    #[error("{action} failed: {}{hint}", describe_kube_error(.source))]
    Api {
        action: String,
        hint: String,
        #[source]
        source: ::kube::Error,
    },
}

impl KubeError {
    /// An API error with a hint chosen from its status (401, 403, transient, ...).
    pub fn api(action: impl Into<String>, source: ::kube::Error) -> KubeError {
        if let Some(a) = auth_error(&source) {
            return KubeError::Auth {
                action: action.into(),
                detail: auth_detail(a),
            };
        }
        let hint = hint_for(&source).to_string();
        KubeError::Api {
            action: action.into(),
            hint,
            source,
        }
    }

    /// The HTTP status of the failed call, if the server answered.
    pub fn status_code(&self) -> Option<u16> {
        match self {
            KubeError::Api { source, .. } | KubeError::Build { source, .. } => super::retry::status_code(source),
            _ => None,
        }
    }
}

/// The credential error inside a kube error, if that is what it is.
pub fn auth_error(e: &::kube::Error) -> Option<&::kube::client::AuthError> {
    match e {
        ::kube::Error::Auth(a) => Some(a),
        ::kube::Error::Service(b) => b.downcast_ref::<::kube::client::AuthError>(),
        _ => None,
    }
}

/// A credential error told without secrets: no command line, no plugin stdout.
pub fn auth_detail(a: &::kube::client::AuthError) -> String {
    use ::kube::client::AuthError as A;
    match a {
        A::AuthExecRun { out, .. } => {
            let stderr = String::from_utf8_lossy(&out.stderr);
            let stderr: String = stderr
                .trim()
                .chars()
                .rev()
                .take(400)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            if stderr.is_empty() {
                format!(
                    "the exec plugin (users[].user.exec.command in the kubeconfig) failed with {}",
                    out.status
                )
            } else {
                format!(
                    "the exec plugin (users[].user.exec.command in the kubeconfig) failed with {}: {stderr}",
                    out.status
                )
            }
        }
        A::AuthExecStart(io) => format!("the exec plugin could not be started: {io}"),
        A::AuthExecParse(_) => "the exec plugin's output is not an ExecCredential".into(),
        A::AuthExec(_) => "running the exec plugin failed".into(),
        A::ParseTokenKey(_) => "the token in the credentials cannot be read".into(),
        A::InvalidBearerToken(_) => "the token is not a valid HTTP header value".into(),
        A::InvalidBasicAuth(_) => "the user name or password is not a valid HTTP header value".into(),
        other => other.to_string(),
    }
}

/// A short description of a kube error for messages: the server's status and message, or
/// the transport failure. Credential errors are told without secrets.
pub fn describe_kube_error(e: &::kube::Error) -> String {
    if let Some(a) = auth_error(e) {
        return format!("getting credentials failed: {}", auth_detail(a));
    }
    match e {
        ::kube::Error::Api(s) => {
            let msg = if s.message.is_empty() { &s.reason } else { &s.message };
            format!("HTTP {} {}", s.code, msg)
        }
        other => {
            let mut out = other.to_string();
            let mut cur = std::error::Error::source(other);
            while let Some(c) = cur {
                let t = c.to_string();
                if !out.contains(&t) {
                    out.push_str(": ");
                    out.push_str(&t);
                }
                cur = c.source();
            }
            out
        }
    }
}

/// What to do about a failed call, by its kind.
pub fn hint_for(e: &::kube::Error) -> &'static str {
    match e {
        ::kube::Error::Api(s) => match s.code {
            401 => " (the credentials were refused: fetch the kubeconfig again, or log in again for exec-plugin kubeconfigs)",
            403 => " (the identity lacks the permission: aks-patch needs to list/patch nodes, list pods, create evictions, read PodDisruptionBudgets and DaemonSets, and manage Leases in kube-system)",
            429 | 500 | 502 | 503 | 504 => " (the API server is overloaded or restarting: retry in a minute)",
            _ => "",
        },
        ::kube::Error::Auth(_) => {
            " (getting a token failed: for exec-plugin kubeconfigs check that the plugin, e.g. kubelogin, is installed and logged in)"
        }
        _ if super::retry::is_transient(e) => " (the API server could not be reached: check the network and retry)",
        _ => "",
    }
}

/// Install rustls's process-wide crypto provider if nobody has (two providers are compiled
/// in, so rustls cannot pick one by itself).
pub(crate) fn ensure_crypto_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}

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
    ensure_crypto_provider();
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

fn kubeconfig_error(origin: &str, e: KubeconfigError) -> KubeError {
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
        assert_eq!(super::super::retry::status_code(&e), Some(503));
        assert_eq!(count.load(Ordering::SeqCst), 1, "kube-rs retried by itself");
        // Our helper retries, a bounded number of times.
        let lp = Default::default();
        let policy = super::super::retry::RetryPolicy {
            attempts: 3,
            initial: Duration::from_millis(1),
            max: Duration::from_millis(1),
        };
        let e = super::super::retry::with_retry_policy(policy, "listing nodes", || nodes.list(&lp))
            .await
            .unwrap_err();
        assert_eq!(super::super::retry::status_code(&e), Some(503));
        assert_eq!(count.load(Ordering::SeqCst), 4);
    }
}
