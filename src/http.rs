//! The HTTPS clients aks-patch makes for ARM, Entra ID, webhooks, Prometheus and the
//! Pushgateway: the system roots plus the configured CA bundle (`AKS_PATCH_CA_BUNDLE` /
//! `REQUESTS_CA_BUNDLE`), a user agent, and no redirects (a bearer token or a webhook's secret
//! URL must not travel to another host). Deliveries that must not hold anything up are
//! retried briefly ([`send_with_retries`]) under the one retry policy ([`crate::retry`]).
//!
//! TLS is rustls with one crypto provider, ring, for every client (these and kube-rs's):
//! reqwest is built without a provider of its own (its `rustls` feature would bring aws-lc-rs),
//! so [`install_crypto_provider`] makes ring the process default before any client exists.

use crate::retry::{with_retry_policy, RetryPolicy, Retryable};
use std::path::PathBuf;
use std::time::Duration;

/// Make ring rustls's process-wide crypto provider, the one every HTTPS client of the
/// process uses (reqwest has none of its own). Called first thing in `main`; idempotent, and
/// called again by every client builder so that library callers (tests) need not.
pub fn install_crypto_provider() {
    // `Err` means one is installed already: ring, as it is the only one compiled in.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Why an HTTPS client could not be set up: what is wrong with the CA bundle (its path and the
/// variable that named it), or the TLS setup.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot read the CA bundle {} (from {var}): {source}", path.display())]
    ReadBundle {
        path: PathBuf,
        var: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("the CA bundle {} (from {var}) is not a PEM certificate bundle: {source}", path.display())]
    NotPem {
        path: PathBuf,
        var: &'static str,
        #[source]
        source: reqwest::Error,
    },
    #[error("the CA bundle {} (from {var}) holds no PEM certificate", path.display())]
    NoCertificate { path: PathBuf, var: &'static str },
    #[error("cannot set up the HTTPS client: {0}")]
    Build(#[source] reqwest::Error),
}

/// A client with these timeouts that also trusts `ca_bundle` (its path and the variable that
/// named it, for messages).
pub fn client(
    ca_bundle: Option<&(PathBuf, &'static str)>,
    connect_timeout: Duration,
    timeout: Duration,
) -> Result<reqwest::Client, ClientError> {
    install_crypto_provider();
    let mut b = reqwest::Client::builder()
        .user_agent(concat!("aks-patch/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(connect_timeout)
        .timeout(timeout)
        .redirect(reqwest::redirect::Policy::none());
    if let Some((path, var)) = ca_bundle {
        b = b.tls_certs_merge(roots(path, var)?);
    }
    b.build().map_err(ClientError::Build)
}

/// The PEM certificates of the CA bundle at `path` (named by `var`).
fn roots(path: &std::path::Path, var: &'static str) -> Result<Vec<reqwest::Certificate>, ClientError> {
    let pem = std::fs::read(path).map_err(|source| ClientError::ReadBundle {
        path: path.to_path_buf(),
        var,
        source,
    })?;
    let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|source| ClientError::NotPem {
        path: path.to_path_buf(),
        var,
        source,
    })?;
    if certs.is_empty() {
        return Err(ClientError::NoCertificate {
            path: path.to_path_buf(),
            var,
        });
    }
    Ok(certs)
}

/// The instant an HTTP date header names (`Date`, `Retry-After`: RFC 9110's
/// `Sun, 06 Nov 1994 08:49:37 GMT`, and RFC 2822's other forms).
pub fn http_date(value: &str) -> Option<jiff::Timestamp> {
    jiff::fmt::rfc2822::parse(value.trim()).ok().map(|z| z.timestamp())
}

/// Why a request sent with [`send_with_retries`] failed, without its URL (webhook and
/// Pushgateway URLs can hold secrets).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendFailure {
    /// The last answer: its status and body.
    Status(reqwest::StatusCode, String),
    /// No answer: the connection failed or timed out.
    Transport(String),
}

impl std::fmt::Display for SendFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SendFailure::Status(s, _) => write!(f, "HTTP {s}"),
            SendFailure::Transport(why) => f.write_str(why),
        }
    }
}

impl Retryable for SendFailure {
    /// An answer of 4xx (but 408 and 429) is final: the same request would get it again.
    fn is_transient(&self) -> bool {
        match self {
            SendFailure::Status(status, _) => {
                !status.is_client_error()
                    || matches!(
                        *status,
                        reqwest::StatusCode::REQUEST_TIMEOUT | reqwest::StatusCode::TOO_MANY_REQUESTS
                    )
            }
            SendFailure::Transport(_) => true,
        }
    }

    fn retry_reason(&self) -> String {
        self.to_string()
    }
}

/// How a notification or a push is retried: three tries in all, about 0.5 s and 1 s apart.
pub const SEND_POLICY: RetryPolicy = RetryPolicy {
    attempts: 3,
    initial: Duration::from_millis(500),
    max: Duration::from_secs(1),
    patience: Duration::from_secs(60),
};

/// Send the request `build` makes until it is answered with success, retried as
/// [`SEND_POLICY`] says (`what` names it in the retry lines, never with its URL). For
/// deliveries that must not hold anything up: notifications, Pushgateway pushes.
pub async fn send_with_retries(what: &str, build: impl Fn() -> reqwest::RequestBuilder) -> Result<(), SendFailure> {
    with_retry_policy(SEND_POLICY, what, || send_once(build())).await
}

async fn send_once(request: reqwest::RequestBuilder) -> Result<(), SendFailure> {
    match request.send().await {
        Ok(r) if r.status().is_success() => Ok(()),
        Ok(r) => {
            let status = r.status();
            let body = r.text().await.unwrap_or_default().trim().to_string();
            Err(SendFailure::Status(status, body))
        }
        Err(e) if e.is_timeout() => Err(SendFailure::Transport("no answer in time".into())),
        Err(e) => Err(SendFailure::Transport(e.without_url().to_string())),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn ring_is_the_only_tls_crypto_provider_in_the_build() {
        // Cargo.lock lists every package any target or feature of the workspace can build:
        // aws-lc-rs there means a dependency's feature brought a second provider back (as
        // reqwest's `rustls` and azure_core's default features do).
        let lock = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.lock")).expect("Cargo.lock");
        let packages: Vec<&str> = lock
            .lines()
            .filter_map(|l| l.strip_prefix("name = \""))
            .map(|l| l.trim_end_matches('"'))
            .collect();
        assert!(packages.contains(&"ring"), "ring is in the build");
        assert!(
            !packages.contains(&"aws-lc-rs") && !packages.contains(&"aws-lc-sys"),
            "aws-lc-rs is in Cargo.lock: `cargo tree --workspace -e all -i aws-lc-rs` shows what brings it"
        );
    }

    #[test]
    fn a_ca_bundle_that_cannot_be_used_is_told_by_what_is_wrong_with_it() {
        let dir = tempfile::tempdir().unwrap();
        let t = std::time::Duration::from_secs(1);
        let missing = (dir.path().join("nope.pem"), "AKS_PATCH_CA_BUNDLE");
        let e = super::client(Some(&missing), t, t).unwrap_err();
        assert!(
            matches!(&e, super::ClientError::ReadBundle { source, .. } if source.kind() == std::io::ErrorKind::NotFound),
            "{e:?}"
        );
        assert!(e.to_string().contains("(from AKS_PATCH_CA_BUNDLE)"), "{e}");
        let empty = (dir.path().join("empty.pem"), "REQUESTS_CA_BUNDLE");
        std::fs::write(&empty.0, "no certificate here\n").unwrap();
        let e = super::client(Some(&empty), t, t).unwrap_err();
        assert!(matches!(e, super::ClientError::NoCertificate { .. }), "{e:?}");
        assert!(e.to_string().ends_with("holds no PEM certificate"), "{e}");
    }

    #[test]
    fn a_client_can_be_built_without_any_setup() {
        // reqwest has no crypto provider of its own: building a client must install ring.
        super::client(
            None,
            std::time::Duration::from_secs(1),
            std::time::Duration::from_secs(1),
        )
        .unwrap();
        assert!(rustls::crypto::CryptoProvider::get_default().is_some());
    }

    use super::*;
    use wiremock::matchers::method;
    use wiremock::{Mock, MockServer, ResponseTemplate};

    async fn answering(status: u16) -> (MockServer, reqwest::Client) {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(status).set_body_string("nope"))
            .mount(&server)
            .await;
        let http = client(None, Duration::from_secs(5), Duration::from_secs(5)).unwrap();
        (server, http)
    }

    #[tokio::test]
    async fn a_delivery_is_tried_three_times_while_the_server_fails() {
        let (server, http) = answering(503).await;
        let url = server.uri();
        let r = send_with_retries("sending", || http.post(&url)).await;
        assert_eq!(
            r,
            Err(SendFailure::Status(
                reqwest::StatusCode::SERVICE_UNAVAILABLE,
                "nope".into()
            ))
        );
        assert_eq!(server.received_requests().await.unwrap().len(), 3);
    }

    #[tokio::test]
    async fn a_refused_delivery_is_not_tried_again_but_a_throttled_one_is() {
        let (server, http) = answering(404).await;
        let url = server.uri();
        let r = send_with_retries("sending", || http.post(&url)).await;
        assert!(matches!(r, Err(SendFailure::Status(s, _)) if s == 404), "{r:?}");
        assert_eq!(server.received_requests().await.unwrap().len(), 1);
        let (server, http) = answering(429).await;
        let url = server.uri();
        assert!(send_with_retries("sending", || http.post(&url)).await.is_err());
        assert_eq!(server.received_requests().await.unwrap().len(), 3);
    }

    #[tokio::test]
    async fn redirects_are_not_followed() {
        // A webhook's secret path or a token must not travel to another host.
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(307).insert_header("Location", "http://127.0.0.1:9/elsewhere"))
            .mount(&server)
            .await;
        let http = client(None, Duration::from_secs(5), Duration::from_secs(5)).unwrap();
        let url = server.uri();
        let r = send_with_retries("sending", || http.post(&url)).await;
        assert!(matches!(r, Err(SendFailure::Status(s, _)) if s == 307), "{r:?}");
    }

    #[test]
    fn http_dates_read_as_servers_write_them() {
        let t: jiff::Timestamp = "1994-11-06T08:49:37Z".parse().unwrap();
        assert_eq!(http_date("Sun, 06 Nov 1994 08:49:37 GMT"), Some(t));
        assert_eq!(http_date(" Sun, 06 Nov 1994 09:49:37 +0100 "), Some(t));
        assert_eq!(http_date("7"), None);
    }
}
