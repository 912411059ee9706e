//! The Kubernetes side's error type, and what aks-patch makes of a kube-rs error: whether
//! it is an authentication failure, worth retrying, which HTTP status it carries, and how
//! to tell it to a user (without secrets) with a hint.
//!
//! Nothing here talks to a server: [`super::client`] builds clients and [`crate::retry`]
//! retries calls; both depend on this module, and it on neither.

use ::kube::config::KubeconfigError;
use std::path::PathBuf;

/// A failure on the Kubernetes side: reading the kubeconfig, building the client, getting
/// credentials, or an API call (with the action that failed and a hint).
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
    /// A file of the pod's ServiceAccount (token, CA bundle, namespace) cannot be read.
    #[error("cannot read {path}, which a pod's ServiceAccount provides (in-cluster config)")]
    InClusterFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// `KUBERNETES_SERVICE_HOST` / `KUBERNETES_SERVICE_PORT` do not make an API server URL.
    #[error("the in-cluster config cannot be used")]
    InCluster {
        #[source]
        source: ::kube::config::InClusterError,
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
    /// The token aks-patch gets itself (Entra ID clusters) could not be had, or the API
    /// server refused it: `detail` names the credential and what to do.
    #[error("{action} failed: {detail}{}", hint.as_deref().map(|h| format!(" ({h})")).unwrap_or_default())]
    Bearer {
        action: String,
        detail: String,
        hint: Option<String>,
    },
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
        if let Some(b) = bearer_error(&source) {
            return KubeError::Bearer {
                action: action.into(),
                detail: b.to_string(),
                hint: b.hint().map(str::to_string),
            };
        }
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
            KubeError::Api { source, .. } | KubeError::Build { source, .. } => status_code(source),
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

/// Whether the call failed for want of credentials: a failing exec plugin or token file,
/// or a bearer token aks-patch could not get or the server refused (not plain 401/403
/// answers, which callers check by status).
pub fn is_credential_error(e: &::kube::Error) -> bool {
    auth_error(e).is_some() || bearer_error(e).is_some()
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
    if let Some(b) = bearer_error(e) {
        return match b.hint() {
            Some(h) => format!("{b} ({h})"),
            None => b.to_string(),
        };
    }
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
            403 => " (the identity lacks the permission: aks-patch needs to list/patch nodes, list pods, create evictions, read PodDisruptionBudgets and DaemonSets, and manage Leases in kube-system; on an Entra ID cluster with Azure RBAC assign it the Azure role `Azure Kubernetes Service RBAC Cluster Admin` on the cluster, otherwise bind it to the ClusterRole in docs/rbac.yaml)",
            429 | 500 | 502 | 503 | 504 => " (the API server is overloaded or restarting: retry in a minute)",
            _ => "",
        },
        ::kube::Error::Auth(_) => {
            " (getting a token failed: for exec-plugin kubeconfigs check that the plugin, e.g. kubelogin, is installed and logged in)"
        }
        _ if is_transient(e) => " (the API server could not be reached: check the network and retry)",
        _ => "",
    }
}

/// The HTTP status of an API error, if the server answered.
pub fn status_code(e: &::kube::Error) -> Option<u16> {
    match e {
        ::kube::Error::Api(s) => Some(s.code),
        _ => None,
    }
}

/// Whether an error is worth retrying for an idempotent call: 429, 500, 502, 503, 504,
/// connection resets, refused connections and timeouts. TLS and authentication failures,
/// and every other answer from the server, are not.
pub fn is_transient(e: &::kube::Error) -> bool {
    if auth_error(e).is_some() || bearer_error(e).is_some() {
        return false;
    }
    match e {
        ::kube::Error::Api(s) => matches!(s.code, 429 | 500 | 502 | 503 | 504),
        ::kube::Error::HyperError(h) => !h.is_user() && !h.is_parse(),
        ::kube::Error::ReadEvents(_) => true,
        ::kube::Error::Service(_) => chain_is_transient(e),
        _ => false,
    }
}

fn chain_is_transient(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        let text = err.to_string().to_ascii_lowercase();
        if text.contains("certificate") || text.contains("invalid dns name") || text.contains("handshake") {
            return false;
        }
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind::*;
            if !matches!(
                io.kind(),
                ConnectionReset
                    | ConnectionAborted
                    | ConnectionRefused
                    | BrokenPipe
                    | UnexpectedEof
                    | TimedOut
                    | Interrupted
            ) {
                return false;
            }
        }
        cur = err.source();
    }
    // No TLS trouble and no permanent I/O error: a timeout from the client's timeout layer,
    // or a connection that closed before the response. Worth another try.
    true
}

/// Why a call failed, in words: the server's answer (`HTTP 503 ...`), or what happened to
/// the connection, without the client stack's layers (`ServiceError: client error
/// (SendRequest): ...`).
pub fn transient_reason(e: &::kube::Error) -> String {
    if let ::kube::Error::Api(_) = e {
        return describe_kube_error(e);
    }
    let mut innermost = e.to_string();
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind::*;
            let words = match io.kind() {
                ConnectionReset => "the connection was reset",
                ConnectionAborted => "the connection was aborted",
                ConnectionRefused => "the connection was refused",
                BrokenPipe => "the connection was closed while sending",
                UnexpectedEof => "the connection was closed before the answer",
                TimedOut => "no answer in time",
                _ => "",
            };
            if !words.is_empty() {
                return words.to_string();
            }
        }
        innermost = err.to_string();
        cur = err.source();
    }
    innermost
}

/// Why a bearer token source gave no token: its own error (the Azure credential chain's, in
/// aks-patch), kept as the cause.
pub type TokenSourceError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why a request could not be authenticated.
#[derive(Debug, thiserror::Error)]
pub enum BearerError {
    #[error("cannot get {what}: {source}")]
    Fetch {
        what: String,
        #[source]
        source: TokenSourceError,
    },
    #[error("cannot get {what}: the token is not a valid HTTP header value")]
    NotAHeader { what: String },
    #[error("the API server refused {what} (HTTP 401 Unauthorized)")]
    Refused { what: String, hint: String },
}

impl BearerError {
    /// What to do about it.
    pub fn hint(&self) -> Option<&str> {
        match self {
            BearerError::Fetch { .. } | BearerError::NotAHeader { .. } => None,
            BearerError::Refused { hint, .. } => Some(hint),
        }
    }
}

/// The bearer error inside a kube error, if that is what it is.
pub fn bearer_error(e: &::kube::Error) -> Option<&BearerError> {
    match e {
        ::kube::Error::Service(b) => b.downcast_ref::<BearerError>(),
        _ => None,
    }
}

/// Kubernetes API calls go through the one retry policy ([`crate::retry`]) with this
/// judgment: [`is_transient`], told by [`transient_reason`].
impl crate::retry::Retryable for ::kube::Error {
    fn is_transient(&self) -> bool {
        is_transient(self)
    }
    fn retry_reason(&self) -> String {
        transient_reason(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(code: u16) -> ::kube::Error {
        ::kube::Error::Api(::kube::core::Status::failure("boom", "Boom").with_code(code).boxed())
    }

    #[test]
    fn classification() {
        for code in [429, 500, 502, 503, 504] {
            assert!(is_transient(&api(code)), "{code}");
        }
        for code in [400, 401, 403, 404, 409, 410, 422] {
            assert!(!is_transient(&api(code)), "{code}");
        }
        let reset = ::kube::Error::Service(Box::new(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "connection reset by peer",
        )));
        assert!(is_transient(&reset));
        let perm = ::kube::Error::Service(Box::new(std::io::Error::new(
            std::io::ErrorKind::PermissionDenied,
            "nope",
        )));
        assert!(!is_transient(&perm));
        let tls = ::kube::Error::Service(Box::new(std::io::Error::other(
            "invalid peer certificate: UnknownIssuer",
        )));
        assert!(!is_transient(&tls));
    }

    #[test]
    fn reasons_in_words() {
        assert_eq!(transient_reason(&api(503)), "HTTP 503 boom");
        let io = |kind, text: &str| ::kube::Error::Service(Box::new(std::io::Error::new(kind, text.to_string())));
        assert_eq!(
            transient_reason(&io(std::io::ErrorKind::ConnectionReset, "connection reset by peer")),
            "the connection was reset"
        );
        assert_eq!(
            transient_reason(&io(
                std::io::ErrorKind::UnexpectedEof,
                "peer closed connection without sending TLS close_notify"
            )),
            "the connection was closed before the answer"
        );
        assert_eq!(
            transient_reason(&io(std::io::ErrorKind::Other, "something odd")),
            "something odd"
        );
    }

    #[tokio::test]
    async fn an_api_call_is_retried_while_the_server_is_busy_and_not_when_it_refuses() {
        use crate::retry::{with_retry_policy, RetryPolicy};
        use std::sync::atomic::{AtomicU32, Ordering};
        use std::time::Duration;
        let fast = RetryPolicy {
            attempts: 4,
            initial: Duration::from_millis(1),
            max: Duration::from_millis(2),
            patience: Duration::from_secs(60),
        };
        let cases = [
            (429, 4),
            (500, 4),
            (503, 4),
            (504, 4),
            (400, 1),
            (403, 1),
            (404, 1),
            (409, 1),
            (422, 1),
        ];
        for (code, calls_made) in cases {
            let calls = AtomicU32::new(0);
            let r: Result<(), _> = with_retry_policy(fast, "testing", || async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err(api(code))
            })
            .await;
            assert_eq!(status_code(&r.unwrap_err()), Some(code), "the last answer is returned");
            assert_eq!(calls.load(Ordering::SeqCst), calls_made, "HTTP {code}");
        }
        let calls = AtomicU32::new(0);
        let r = with_retry_policy(fast, "testing", || async {
            if calls.fetch_add(1, Ordering::SeqCst) == 0 {
                Err(::kube::Error::Service(Box::new(std::io::Error::new(
                    std::io::ErrorKind::ConnectionReset,
                    "connection reset by peer",
                ))))
            } else {
                Ok(7)
            }
        })
        .await;
        assert_eq!(r.unwrap(), 7, "a reset connection is tried again");
    }
}
