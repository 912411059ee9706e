//! A Kubernetes client that authenticates with a bearer token aks-patch gets itself (an
//! Entra ID access token for the AKS server application), refreshed before it expires.
//!
//! kube-rs has no hook for a caller's token provider, so the client is kube-rs's own stack
//! (TLS, timeouts, base URI) with the kubeconfig's user stripped, wrapped in one more tower
//! layer ([`BearerService`]) that sets `Authorization: Bearer …` on every request: plain
//! calls, watches (each re-established watch is a new request, so it carries the token of
//! the moment), evictions and the Lease renewals alike. The token is cached and fetched again
//! once it is within [`refresh_margin`] of its expiry, so a run longer than a token's
//! lifetime never sends an expired one. A 401 answer to a token becomes a
//! [`BearerError::Refused`] naming where the token came from; the token is dropped from the
//! cache so the next call fetches a new one.
//!
//! Tokens never reach a log line or an error message.

use super::client::{CONNECT_TIMEOUT, READ_TIMEOUT};
use super::error::{BearerError, KubeError, TokenSourceError};
use ::kube::client::{Body, ClientBuilder};
use ::kube::config::{AuthInfo, KubeConfigOptions, Kubeconfig};
use ::kube::{Client, Config};
use futures::future::BoxFuture;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};
use tower::{BoxError, Layer, Service};

/// A token and when it expires.
pub struct BearerToken {
    pub secret: String,
    pub expires_on: SystemTime,
}

impl std::fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BearerToken")
            .field("secret", &"<hidden>")
            .field("expires_on", &self.expires_on)
            .finish()
    }
}

/// Where tokens come from (the Azure credential chain, in aks-patch).
#[async_trait::async_trait]
pub trait TokenSource: Send + Sync + 'static {
    /// A new token. The error says why, without secrets.
    async fn fetch(&self) -> Result<BearerToken, TokenSourceError>;
    /// Where the tokens come from, for messages: "an Entra ID token from the Azure CLI".
    fn describe(&self) -> String;
    /// What to do when the API server refuses the tokens.
    fn refused_hint(&self) -> String;
}

/// How long before its expiry a token is replaced: 5 minutes (as azure_identity's own
/// cache), or half the time it had left when it was fetched if that is shorter (short-lived
/// tokens are used for half their life, never fetched anew on every request).
pub fn refresh_margin(lifetime_when_fetched: Duration) -> Duration {
    (lifetime_when_fetched / 2).min(Duration::from_secs(300))
}

struct Cached {
    secret: String,
    refresh_at: SystemTime,
}

/// The token cache in front of a [`TokenSource`].
pub struct RefreshingToken {
    source: Arc<dyn TokenSource>,
    cached: tokio::sync::Mutex<Option<Cached>>,
}

impl RefreshingToken {
    pub fn new(source: Arc<dyn TokenSource>) -> RefreshingToken {
        RefreshingToken {
            source,
            cached: tokio::sync::Mutex::new(None),
        }
    }

    /// The token to send now: the cached one, or a new one when it is due for refresh.
    pub async fn token(&self) -> Result<String, BearerError> {
        let mut slot = self.cached.lock().await;
        let now = SystemTime::now();
        if let Some(c) = slot.as_ref().filter(|c| now < c.refresh_at) {
            return Ok(c.secret.clone());
        }
        let t = self.source.fetch().await.map_err(|source| BearerError::Fetch {
            what: self.source.describe(),
            source,
        })?;
        let left = t.expires_on.duration_since(now).unwrap_or_default();
        let refresh_at = t.expires_on - refresh_margin(left);
        tracing::debug!(
            "{}: new token, valid for {} s, replaced after {} s",
            self.source.describe(),
            left.as_secs(),
            refresh_at.duration_since(now).unwrap_or_default().as_secs()
        );
        *slot = Some(Cached {
            secret: t.secret.clone(),
            refresh_at,
        });
        Ok(t.secret)
    }

    /// Forget `secret` (the server refused it) so the next call fetches a new token.
    async fn forget(&self, secret: &str) {
        let mut slot = self.cached.lock().await;
        if slot.as_ref().is_some_and(|c| c.secret == secret) {
            *slot = None;
        }
    }
}

/// The tower layer that adds the bearer token.
#[derive(Clone)]
pub struct BearerLayer(Arc<RefreshingToken>);

impl<S> Layer<S> for BearerLayer {
    type Service = BearerService<S>;
    fn layer(&self, inner: S) -> BearerService<S> {
        BearerService {
            inner,
            token: self.0.clone(),
        }
    }
}

#[derive(Clone)]
pub struct BearerService<S> {
    inner: S,
    token: Arc<RefreshingToken>,
}

impl<S, B> Service<http::Request<Body>> for BearerService<S>
where
    S: Service<http::Request<Body>, Response = http::Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: Send + 'static,
{
    type Response = http::Response<B>;
    type Error = BoxError;
    type Future = BoxFuture<'static, Result<http::Response<B>, BoxError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, mut req: http::Request<Body>) -> Self::Future {
        // The instance polled ready goes with this request; a clone stays for the next.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let token = self.token.clone();
        Box::pin(async move {
            let secret = token.token().await?;
            let mut value =
                http::HeaderValue::from_str(&format!("Bearer {secret}")).map_err(|_| BearerError::NotAHeader {
                    what: token.source.describe(),
                })?;
            value.set_sensitive(true);
            req.headers_mut().insert(http::header::AUTHORIZATION, value);
            let resp = inner.call(req).await.map_err(Into::into)?;
            if resp.status() == http::StatusCode::UNAUTHORIZED {
                token.forget(&secret).await;
                return Err(Box::new(BearerError::Refused {
                    what: token.source.describe(),
                    hint: token.source.refused_hint(),
                }) as BoxError);
            }
            Ok(resp)
        })
    }
}

/// A client for the cluster of `kubeconfig_yaml` (its server and CA) that authenticates
/// with tokens from `source` instead of the kubeconfig's user (a kubelogin exec user, or the
/// legacy `azure` auth-provider that kube-rs does not support).
pub async fn client_with_token_source(
    kubeconfig_yaml: &str,
    source: Arc<dyn TokenSource>,
) -> Result<Client, KubeError> {
    let origin = "(from the cluster's credentials)".to_string();
    let mut kc = Kubeconfig::from_yaml(kubeconfig_yaml).map_err(|e| super::client::kubeconfig_error(&origin, e))?;
    for user in &mut kc.auth_infos {
        user.auth_info = Some(AuthInfo::default());
    }
    let config = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .map_err(|e| super::client::kubeconfig_error(&origin, e))?;
    client_from_config_with_token(config, source)
}

/// A client from a `Config` without credentials, authenticating with tokens from `source`.
pub fn client_from_config_with_token(mut config: Config, source: Arc<dyn TokenSource>) -> Result<Client, KubeError> {
    crate::http::install_crypto_provider();
    let origin = config.cluster_url.to_string();
    config.default_retry = false;
    config.connect_timeout = Some(CONNECT_TIMEOUT);
    config.read_timeout = Some(READ_TIMEOUT);
    config.reset_reader_on_write = true;
    let builder = ClientBuilder::try_from(config).map_err(|source| KubeError::Build {
        origin: origin.clone(),
        source,
    })?;
    // kube-rs's stack is not Clone; a buffer in front of it is, which the bearer layer needs
    // to wait for a token before handing the request on.
    let layer = BearerLayer(Arc::new(RefreshingToken::new(source)));
    Ok(builder
        .with_layer(&tower::buffer::BufferLayer::new(1024))
        .with_layer(&layer)
        .build())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[test]
    fn margin_is_five_minutes_or_half_the_life() {
        assert_eq!(refresh_margin(Duration::from_secs(3599)), Duration::from_secs(300));
        assert_eq!(refresh_margin(Duration::from_secs(60)), Duration::from_secs(30));
        assert_eq!(refresh_margin(Duration::ZERO), Duration::ZERO);
    }

    struct Counting {
        fetched: AtomicU32,
        life: Duration,
    }

    #[async_trait::async_trait]
    impl TokenSource for Counting {
        async fn fetch(&self) -> Result<BearerToken, TokenSourceError> {
            let n = self.fetched.fetch_add(1, Ordering::SeqCst) + 1;
            Ok(BearerToken {
                secret: format!("token-{n}"),
                expires_on: SystemTime::now() + self.life,
            })
        }
        fn describe(&self) -> String {
            "a test token".into()
        }
        fn refused_hint(&self) -> String {
            "fix it".into()
        }
    }

    #[tokio::test]
    async fn cached_until_due_then_fetched_again() {
        let source = Arc::new(Counting {
            fetched: AtomicU32::new(0),
            life: Duration::from_secs(3600),
        });
        let t = RefreshingToken::new(source.clone());
        assert_eq!(t.token().await.unwrap(), "token-1");
        assert_eq!(t.token().await.unwrap(), "token-1");
        assert_eq!(source.fetched.load(Ordering::SeqCst), 1);
        t.forget("token-1").await;
        assert_eq!(t.token().await.unwrap(), "token-2");

        // A token with 1 s left is due for refresh after half of it.
        let short = Arc::new(Counting {
            fetched: AtomicU32::new(0),
            life: Duration::from_secs(1),
        });
        let t = RefreshingToken::new(short.clone());
        assert_eq!(t.token().await.unwrap(), "token-1");
        assert_eq!(t.token().await.unwrap(), "token-1");
        tokio::time::sleep(Duration::from_millis(600)).await;
        assert_eq!(t.token().await.unwrap(), "token-2");
    }

    /// A plain-HTTP API server that records each request's Authorization header and answers
    /// an empty NodeList, or 401 while `refuse` is set.
    async fn recording_server() -> (
        String,
        Arc<std::sync::Mutex<Vec<String>>>,
        Arc<std::sync::atomic::AtomicBool>,
    ) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", l.local_addr().unwrap());
        let seen = Arc::new(std::sync::Mutex::new(vec![]));
        let refuse = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (s2, r2) = (seen.clone(), refuse.clone());
        tokio::spawn(async move {
            loop {
                let Ok((mut sock, _)) = l.accept().await else { return };
                let (seen, refuse) = (s2.clone(), r2.clone());
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 8192];
                    let mut acc = Vec::new();
                    loop {
                        let n = match sock.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => n,
                        };
                        acc.extend_from_slice(&buf[..n]);
                        while let Some(end) = acc.windows(4).position(|w| w == b"\r\n\r\n") {
                            let head = String::from_utf8_lossy(&acc[..end]).to_string();
                            acc.drain(..end + 4);
                            let auth = head
                                .lines()
                                .find_map(|l| {
                                    l.strip_prefix("authorization: ")
                                        .or_else(|| l.strip_prefix("Authorization: "))
                                })
                                .unwrap_or("")
                                .to_string();
                            seen.lock().unwrap().push(auth);
                            let (status, body) = if refuse.load(Ordering::SeqCst) {
                                (
                                    "401 Unauthorized",
                                    r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"Unauthorized","reason":"Unauthorized","code":401}"#,
                                )
                            } else {
                                (
                                    "200 OK",
                                    r#"{"kind":"NodeList","apiVersion":"v1","metadata":{},"items":[]}"#,
                                )
                            };
                            let resp = format!(
                                "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                                body.len()
                            );
                            if sock.write_all(resp.as_bytes()).await.is_err() {
                                return;
                            }
                        }
                    }
                });
            }
        });
        (url, seen, refuse)
    }

    #[tokio::test]
    async fn every_request_carries_the_current_token_and_a_401_names_the_source() {
        use k8s_openapi::api::core::v1::Node;
        let (url, seen, refuse) = recording_server().await;
        let source = Arc::new(Counting {
            fetched: AtomicU32::new(0),
            life: Duration::from_secs(1),
        });
        let client = client_from_config_with_token(Config::new(url.parse().unwrap()), source.clone()).unwrap();
        let nodes: ::kube::Api<Node> = ::kube::Api::all(client);
        let lp = Default::default();
        nodes.list(&lp).await.unwrap();
        nodes.list(&lp).await.unwrap();
        tokio::time::sleep(Duration::from_millis(600)).await;
        nodes.list(&lp).await.unwrap();
        assert_eq!(
            *seen.lock().unwrap(),
            ["Bearer token-1", "Bearer token-1", "Bearer token-2"],
            "the token is sent on every request and replaced after half its life"
        );

        refuse.store(true, Ordering::SeqCst);
        let e = nodes.list(&lp).await.unwrap_err();
        assert!(!super::super::error::is_transient(&e), "a refused token is not retried");
        let e = KubeError::api("listing nodes", e);
        let text = e.to_string();
        assert!(matches!(e, KubeError::Bearer { .. }), "{e:?}");
        assert!(
            text.contains("the API server refused a test token (HTTP 401 Unauthorized)"),
            "{text}"
        );
        assert!(text.contains("fix it"), "{text}");
        assert!(!text.contains("token-2"), "{text}");
        // The refused token is dropped: the next request fetches a new one.
        refuse.store(false, Ordering::SeqCst);
        nodes.list(&lp).await.unwrap();
        assert_eq!(seen.lock().unwrap().last().unwrap(), "Bearer token-3");
    }

    #[test]
    fn debug_hides_the_secret() {
        let t = BearerToken {
            secret: "s3cr3t".into(),
            expires_on: SystemTime::now(),
        };
        assert!(!format!("{t:?}").contains("s3cr3t"));
    }
}
