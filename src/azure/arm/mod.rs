//! A typed Azure Resource Manager client for what aks-patch reads: the cluster, its node
//! pools and their newest node image, machines, maintenance windows, and the kubeconfig.
//!
//! - Real HTTPS through reqwest (the CA bundle of [`CloudEndpoints`] is trusted).
//! - 429 and 5xx (and connection failures) are retried, honouring `Retry-After` (seconds
//!   or an HTTP date, and `retry-after-ms`), within [`ARM_RETRY`]'s bounds.
//! - A token refused as expired or invalid (401) is replaced once by a fresh one.
//! - `nextLink` paging is followed, but only to the ARM endpoint's own host.
//! - Requests are logged at debug level (method, URL, status, attempt): never the token,
//!   never a response body.

pub mod compute;
mod lro;
mod transport;

pub use lro::LroPolicy;

pub(in crate::azure) use transport::decode;
#[cfg(test)]
use transport::ArmErrorBody;
pub use transport::{quota_resets_after, retry_after};

use super::credential::CliExecutor;
use super::models::{
    AgentPool, AgentPoolUpgradeProfile, Machine, MaintenanceConfiguration, ManagedCluster, Page, Subscription,
};
use super::{AzureCredential, AzureError, CloudEndpoints};
use crate::retry::RetryPolicy;
use crate::settings::Settings;
use azure_core::credentials::AccessToken;
use base64::Engine;
use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::{Method, StatusCode, Url};
use serde::de::DeserializeOwned;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// `Microsoft.ContainerService` api-version used for every AKS call.
pub const CONTAINER_SERVICE_API_VERSION: &str = "2025-10-01";
/// api-version of `GET /subscriptions`.
pub const SUBSCRIPTIONS_API_VERSION: &str = "2022-12-01";
/// Pages followed at most in one list (a loop guard).
const MAX_PAGES: usize = 1000;
/// A cached token is renewed this long before it expires.
const TOKEN_EARLY_RENEWAL: Duration = Duration::from_secs(120);
/// `az account show` may take this long.
const AZ_SHOW_TIMEOUT: Duration = Duration::from_secs(30);

/// A managed cluster's ARM coordinates (its resource id). Not the run record's
/// [`crate::rollout::journal::ClusterRef`], which also names kubeconfig-only clusters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterId {
    pub subscription: String,
    pub resource_group: String,
    pub name: String,
}

impl ClusterId {
    pub fn new(subscription: impl Into<String>, resource_group: impl Into<String>, name: impl Into<String>) -> Self {
        ClusterId {
            subscription: subscription.into(),
            resource_group: resource_group.into(),
            name: name.into(),
        }
    }

    fn segments(&self) -> Vec<&str> {
        vec![
            "subscriptions",
            &self.subscription,
            "resourceGroups",
            &self.resource_group,
            "providers",
            "Microsoft.ContainerService",
            "managedClusters",
            &self.name,
        ]
    }
}

impl fmt::Display for ClusterId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "cluster {} in resource group {} (subscription {})",
            self.name, self.resource_group, self.subscription
        )
    }
}

/// How hard the ARM client retries throttled (429) and failing (5xx, connection) requests,
/// under the one retry policy of every call ([`crate::retry`]): six sends at most, 1 s
/// doubling to 30 s apart (or what `Retry-After` asks), none started after two minutes.
pub const ARM_RETRY: RetryPolicy = RetryPolicy {
    attempts: 6,
    initial: Duration::from_secs(1),
    max: Duration::from_secs(30),
    patience: Duration::from_secs(120),
};

/// A kubeconfig from `listClusterUserCredential` / `listClusterAdminCredential`. It holds
/// a credential: kept in memory only, never printed by `Debug`, wiped when dropped.
pub struct Kubeconfig {
    name: String,
    yaml: String,
}

impl Kubeconfig {
    /// `clusterUser` or `clusterAdmin`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The kubeconfig YAML.
    pub fn yaml(&self) -> &str {
        &self.yaml
    }
}

impl fmt::Debug for Kubeconfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Kubeconfig")
            .field("name", &self.name)
            .field("yaml", &format_args!("<{} bytes redacted>", self.yaml.len()))
            .finish()
    }
}

impl Drop for Kubeconfig {
    fn drop(&mut self) {
        let mut bytes = std::mem::take(&mut self.yaml).into_bytes();
        bytes.iter_mut().for_each(|b| *b = 0);
        std::hint::black_box(&bytes);
    }
}

/// The ARM client. Share it behind an `Arc`; it caches one token.
pub struct ArmClient {
    http: reqwest::Client,
    endpoint: Url,
    scope: String,
    credential: Arc<AzureCredential>,
    retry: RetryPolicy,
    token: tokio::sync::Mutex<Option<AccessToken>>,
}

impl fmt::Debug for ArmClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ArmClient")
            .field("endpoint", &self.endpoint.as_str())
            .field("scope", &self.scope)
            .field("credential", &self.credential)
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}

impl ArmClient {
    /// A client for `cloud`'s ARM endpoint, getting tokens for its ARM scope from `credential`.
    pub fn new(cloud: &CloudEndpoints, credential: Arc<AzureCredential>) -> Result<ArmClient, AzureError> {
        Ok(ArmClient {
            http: cloud.http_client()?,
            endpoint: cloud.arm_endpoint.clone(),
            scope: cloud.arm_scope.clone(),
            credential,
            retry: ARM_RETRY,
            token: tokio::sync::Mutex::new(None),
        })
    }

    pub fn with_retry_policy(mut self, retry: RetryPolicy) -> ArmClient {
        self.retry = retry;
        self
    }

    pub fn endpoint(&self) -> &Url {
        &self.endpoint
    }

    pub fn credential(&self) -> &Arc<AzureCredential> {
        &self.credential
    }

    /// `GET {cluster}`.
    pub async fn get_cluster(&self, c: &ClusterId) -> Result<ManagedCluster, AzureError> {
        let url = self.url(&c.segments(), CONTAINER_SERVICE_API_VERSION)?;
        self.get_json(url).await
    }

    /// Managed clusters of a subscription, or of one resource group in it (all pages).
    pub async fn list_clusters(
        &self,
        subscription: &str,
        resource_group: Option<&str>,
    ) -> Result<Vec<ManagedCluster>, AzureError> {
        let mut segs = vec!["subscriptions", subscription];
        if let Some(rg) = resource_group {
            segs.extend(["resourceGroups", rg]);
        }
        segs.extend(["providers", "Microsoft.ContainerService", "managedClusters"]);
        let url = self.url(&segs, CONTAINER_SERVICE_API_VERSION)?;
        self.list(url).await
    }

    /// `GET {cluster}/agentPools` (all pages).
    pub async fn list_agent_pools(&self, c: &ClusterId) -> Result<Vec<AgentPool>, AzureError> {
        let mut segs = c.segments();
        segs.push("agentPools");
        self.list(self.url(&segs, CONTAINER_SERVICE_API_VERSION)?).await
    }

    /// `GET {cluster}/agentPools/{pool}/upgradeProfiles/default`.
    pub async fn get_agent_pool_upgrade_profile(
        &self,
        c: &ClusterId,
        pool: &str,
    ) -> Result<AgentPoolUpgradeProfile, AzureError> {
        let mut segs = c.segments();
        segs.extend(["agentPools", pool, "upgradeProfiles", "default"]);
        self.get_json(self.url(&segs, CONTAINER_SERVICE_API_VERSION)?).await
    }

    /// The newest node image for a pool (`latestNodeImageVersion`).
    pub async fn latest_node_image_version(&self, c: &ClusterId, pool: &str) -> Result<Option<String>, AzureError> {
        Ok(self
            .get_agent_pool_upgrade_profile(c, pool)
            .await?
            .properties
            .latest_node_image_version)
    }

    /// `GET {cluster}/agentPools/{pool}/machines` (all pages): node names, IPs, VMSS instances.
    pub async fn list_machines(&self, c: &ClusterId, pool: &str) -> Result<Vec<Machine>, AzureError> {
        let mut segs = c.segments();
        segs.extend(["agentPools", pool, "machines"]);
        self.list(self.url(&segs, CONTAINER_SERVICE_API_VERSION)?).await
    }

    /// `GET {cluster}/maintenanceConfigurations` (all pages).
    pub async fn list_maintenance_configurations(
        &self,
        c: &ClusterId,
    ) -> Result<Vec<MaintenanceConfiguration>, AzureError> {
        let mut segs = c.segments();
        segs.push("maintenanceConfigurations");
        self.list(self.url(&segs, CONTAINER_SERVICE_API_VERSION)?).await
    }

    /// `POST {cluster}/listClusterUserCredential` (or `listClusterAdminCredential` with
    /// `admin`): the first kubeconfig, decoded. It stays in memory.
    pub async fn get_kubeconfig(&self, c: &ClusterId, admin: bool) -> Result<Kubeconfig, AzureError> {
        self.get_kubeconfig_in(c, admin, None).await
    }

    /// As [`ArmClient::get_kubeconfig`], asking for `format` (`exec` or `azure`: the shape of
    /// an Entra ID cluster's user kubeconfig).
    pub async fn get_kubeconfig_in(
        &self,
        c: &ClusterId,
        admin: bool,
        format: Option<&str>,
    ) -> Result<Kubeconfig, AzureError> {
        #[derive(serde::Deserialize)]
        struct Results {
            #[serde(default)]
            kubeconfigs: Vec<Entry>,
        }
        #[derive(serde::Deserialize)]
        struct Entry {
            #[serde(default)]
            name: String,
            #[serde(default)]
            value: String,
        }
        let op = if admin {
            "listClusterAdminCredential"
        } else {
            "listClusterUserCredential"
        };
        let mut segs = c.segments();
        segs.push(op);
        let mut url = self.url(&segs, CONTAINER_SERVICE_API_VERSION)?;
        if let Some(f) = format {
            url.query_pairs_mut().append_pair("format", f);
        }
        let body = self.send(Method::POST, url.clone()).await?;
        let results: Results = decode(&url, &body)?;
        let Some(entry) = results.kubeconfigs.into_iter().next() else {
            return Err(AzureError::Decode {
                url: url.to_string(),
                message: format!("{op} returned no kubeconfig"),
            });
        };
        let compact: String = entry.value.chars().filter(|c| !c.is_ascii_whitespace()).collect();
        let raw = base64::engine::general_purpose::STANDARD
            .decode(compact.as_bytes())
            .map_err(|e| AzureError::Decode {
                url: url.to_string(),
                message: format!("the kubeconfig `{}` is not base64: {e}", entry.name),
            })?;
        let yaml = String::from_utf8(raw).map_err(|_| AzureError::Decode {
            url: url.to_string(),
            message: format!("the kubeconfig `{}` is not UTF-8 text", entry.name),
        })?;
        Ok(Kubeconfig { name: entry.name, yaml })
    }

    /// `GET /subscriptions`: the subscriptions the credential can see.
    pub async fn list_subscriptions(&self) -> Result<Vec<Subscription>, AzureError> {
        self.list(self.url(&["subscriptions"], SUBSCRIPTIONS_API_VERSION)?)
            .await
    }

    /// The subscription id to use: `given` (an id, or a name looked up in ARM), else
    /// [`default_subscription`].
    pub async fn resolve_subscription(&self, given: Option<&str>, settings: &Settings) -> Result<String, AzureError> {
        match given.map(str::trim).filter(|g| !g.is_empty()) {
            Some(g) if is_guid(g) => Ok(g.to_string()),
            Some(name) => {
                let subs = self.list_subscriptions().await?;
                subs.into_iter()
                    .find(|s| s.display_name.eq_ignore_ascii_case(name))
                    .map(|s| s.subscription_id)
                    .ok_or_else(|| AzureError::NotFound {
                        code: "SubscriptionNotFound".into(),
                        message: format!("no subscription named '{name}' is visible to this credential"),
                        request_id: None,
                    })
            }
            None => default_subscription(settings).await,
        }
    }
}

fn is_guid(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() == 5
        && parts.iter().map(|p| p.len()).eq([8, 4, 4, 4, 12])
        && parts.iter().all(|p| p.chars().all(|c| c.is_ascii_hexdigit()))
}

/// The default subscription, as the Azure CLI picks it: `AZURE_SUBSCRIPTION_ID`, else the
/// CLI's current account (`az account show`).
pub async fn default_subscription(settings: &Settings) -> Result<String, AzureError> {
    if let Some(s) = &settings.subscription_id {
        return Ok(s.clone());
    }
    let az = CliExecutor {
        path: settings.path.clone(),
        timeout: AZ_SHOW_TIMEOUT,
    };
    let out = az.az("account show -o json").await.map_err(|e| {
        AzureError::NoSubscription(format!(
            "AZURE_SUBSCRIPTION_ID is not set and `az account show` failed: {e}"
        ))
    })?;
    let v: serde_json::Value = serde_json::from_str(&out).map_err(|e| {
        AzureError::NoSubscription(format!(
            "`az account show -o json` printed something that is not JSON: {e}"
        ))
    })?;
    v["id"]
        .as_str()
        .filter(|id| !id.is_empty())
        .map(str::to_string)
        .ok_or_else(|| AzureError::NoSubscription("`az account show` printed no subscription id".into()))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn retry_after_forms() {
        let mut h = HeaderMap::new();
        assert_eq!(retry_after(&h), None);
        h.insert(RETRY_AFTER, HeaderValue::from_static("7"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(7)));
        let when = (jiff::Timestamp::now() + jiff::SignedDuration::from_secs(30))
            .strftime("%a, %d %b %Y %H:%M:%S GMT")
            .to_string();
        h.insert(RETRY_AFTER, HeaderValue::from_str(&when).unwrap());
        let d = retry_after(&h).unwrap();
        assert!(d > Duration::from_secs(25) && d <= Duration::from_secs(30), "{d:?}");
        h.insert(RETRY_AFTER, HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"));
        assert_eq!(retry_after(&h), Some(Duration::ZERO), "a date in the past means now");
        for nonsense in ["1e30", "-5", "inf"] {
            h.insert(RETRY_AFTER, HeaderValue::from_static(nonsense));
            assert_eq!(retry_after(&h), None, "{nonsense}");
        }
        h.insert("retry-after-ms", HeaderValue::from_static("1500"));
        assert_eq!(retry_after(&h), Some(Duration::from_millis(1500)));
    }

    #[test]
    fn error_bodies() {
        let e = ArmErrorBody::parse(
            StatusCode::NOT_FOUND,
            br#"{"error":{"code":"ResourceGroupNotFound","message":"Resource group 'x' could not be found."}}"#,
        )
        .into_error(StatusCode::NOT_FOUND, &HeaderMap::new(), 1);
        assert!(e.is_not_found());
        assert_eq!(e.code(), Some("ResourceGroupNotFound"));
        assert_eq!(
            e.to_string(),
            "Resource group 'x' could not be found. (ResourceGroupNotFound)"
        );
        let e = ArmErrorBody::parse(StatusCode::BAD_GATEWAY, b"<html>bad gateway</html>").into_error(
            StatusCode::BAD_GATEWAY,
            &HeaderMap::new(),
            3,
        );
        assert_eq!(e.code(), Some("BadGateway"));
        assert!(
            e.to_string().contains("<html>bad gateway</html>") && e.to_string().contains("3 attempts"),
            "{e}"
        );
        let e = ArmErrorBody::parse(
            StatusCode::FORBIDDEN,
            br#"{"code":"AuthorizationFailed","message":"no"}"#,
        )
        .into_error(StatusCode::FORBIDDEN, &HeaderMap::new(), 1);
        assert!(e.is_auth());
        assert!(e.hint().unwrap().contains("Cluster User Role"));
    }

    #[test]
    fn guids() {
        assert!(is_guid("00000000-1111-2222-3333-444444444444"));
        assert!(!is_guid("my subscription"));
        assert!(!is_guid("00000000-1111-2222-3333-44444444444"));
    }

    #[test]
    fn kubeconfig_debug_is_redacted() {
        let k = Kubeconfig {
            name: "clusterUser".into(),
            yaml: "users:\n- user:\n    token: very-secret\n".into(),
        };
        let d = format!("{k:?}");
        assert!(!d.contains("very-secret") && d.contains("redacted"), "{d}");
    }

    // ----- against a local HTTP server (wiremock) -----

    use crate::azure::CloudName;
    use azure_core::credentials::{Secret, TokenCredential, TokenRequestOptions};
    use std::sync::atomic::{AtomicU32, Ordering};
    use wiremock::matchers::{header, method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    /// Hands out `tok-1`, `tok-2`, ... (or always `tok-1` when `stale`).
    #[derive(Debug)]
    struct Counting {
        n: AtomicU32,
        stale: bool,
    }

    #[async_trait::async_trait]
    impl TokenCredential for Counting {
        async fn get_token(&self, _: &[&str], _: Option<TokenRequestOptions<'_>>) -> azure_core::Result<AccessToken> {
            let n = self.n.fetch_add(1, Ordering::SeqCst) + 1;
            let n = if self.stale { 1 } else { n };
            Ok(AccessToken::new(
                Secret::new(format!("tok-{n}")),
                azure_core::time::OffsetDateTime::now_utc() + azure_core::time::Duration::hours(1),
            ))
        }
    }

    pub(crate) fn client(server: &MockServer, stale: bool, retry: RetryPolicy) -> ArmClient {
        let mut cloud = CloudEndpoints::builtin(CloudName::AzureCloud);
        cloud.arm_endpoint = Url::parse(&server.uri()).unwrap();
        let cred = AzureCredential::from_token_credential(Arc::new(Counting {
            n: AtomicU32::new(0),
            stale,
        }));
        ArmClient::new(&cloud, Arc::new(cred)).unwrap().with_retry_policy(retry)
    }

    pub(crate) fn quick() -> RetryPolicy {
        RetryPolicy {
            attempts: 4,
            patience: Duration::from_secs(20),
            initial: Duration::from_millis(20),
            max: Duration::from_millis(100),
        }
    }

    const MC: &str = "/subscriptions/s1/resourceGroups/rg1/providers/Microsoft.ContainerService/managedClusters/c1";

    fn c1() -> ClusterId {
        ClusterId::new("s1", "rg1", "c1")
    }

    fn arm_error(code: &str) -> serde_json::Value {
        serde_json::json!({"error": {"code": code, "message": format!("{code} happened")}})
    }

    #[tokio::test]
    async fn throttled_requests_wait_for_retry_after_then_succeed() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path(MC))
            .respond_with(
                ResponseTemplate::new(429)
                    .insert_header("Retry-After", "1")
                    .set_body_json(arm_error("TooManyRequests")),
            )
            .up_to_n_times(2)
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(path(MC))
            .and(header("authorization", "Bearer tok-1"))
            .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({"name": "c1"})))
            .mount(&server)
            .await;
        let t = Instant::now();
        let c = client(&server, false, quick()).get_cluster(&c1()).await.unwrap();
        assert_eq!(c.name, "c1");
        assert!(
            t.elapsed() >= Duration::from_secs(2),
            "Retry-After: 1 twice, waited {:?}",
            t.elapsed()
        );
        let reqs = server.received_requests().await.unwrap();
        assert_eq!(reqs.len(), 3);
        assert!(reqs.iter().all(|r| r.url.query() == Some("api-version=2025-10-01")));
    }

    #[tokio::test]
    async fn server_errors_back_off_and_give_up_after_max_attempts() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(503).set_body_json(arm_error("ServiceUnavailable")))
            .mount(&server)
            .await;
        let e = client(&server, false, quick()).get_cluster(&c1()).await.unwrap_err();
        match &e {
            AzureError::Api {
                status: 503,
                code,
                attempts: 4,
                ..
            } => assert_eq!(code, "ServiceUnavailable"),
            other => panic!("{other:?}"),
        }
        assert_eq!(server.received_requests().await.unwrap().len(), 4);
        assert!(e.hint().is_some());
    }

    #[tokio::test]
    async fn retry_after_beyond_the_budget_is_not_waited_for() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .respond_with(
                ResponseTemplate::new(429)
                    .insert_header("Retry-After", "3600")
                    .set_body_json(arm_error("TooManyRequests")),
            )
            .mount(&server)
            .await;
        let t = Instant::now();
        let e = client(&server, false, quick()).get_cluster(&c1()).await.unwrap_err();
        assert!(t.elapsed() < Duration::from_secs(5));
        assert!(
            matches!(
                e,
                AzureError::Api {
                    status: 429,
                    attempts: 1,
                    ..
                }
            ),
            "{e:?}"
        );
    }

    #[tokio::test]
    async fn http_date_retry_after_is_honoured() {
        let server = MockServer::start().await;
        let when = (jiff::Timestamp::now() + jiff::SignedDuration::from_secs(2))
            .strftime("%a, %d %b %Y %H:%M:%S GMT")
            .to_string();
        Mock::given(method("GET"))
            .respond_with(
                ResponseTemplate::new(503)
                    .insert_header("Retry-After", when.as_str())
                    .set_body_json(arm_error("ServiceUnavailable")),
            )
            .up_to_n_times(1)
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({"name": "c1"})))
            .mount(&server)
            .await;
        let t = Instant::now();
        client(&server, false, quick()).get_cluster(&c1()).await.unwrap();
        // The date has a one-second resolution.
        assert!(t.elapsed() >= Duration::from_millis(900), "{:?}", t.elapsed());
    }

    #[tokio::test]
    async fn not_found_and_bad_request_are_not_retried() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path(MC))
            .respond_with(ResponseTemplate::new(404).set_body_json(arm_error("ResourceNotFound")))
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(path(format!("{MC}/agentPools")))
            .respond_with(ResponseTemplate::new(400).set_body_json(arm_error("InvalidApiVersionParameter")))
            .mount(&server)
            .await;
        let arm = client(&server, false, quick());
        let e = arm.get_cluster(&c1()).await.unwrap_err();
        assert!(e.is_not_found() && e.code() == Some("ResourceNotFound"), "{e:?}");
        let e = arm.list_agent_pools(&c1()).await.unwrap_err();
        assert!(
            matches!(&e, AzureError::Api { status: 400, attempts: 1, code, .. } if code == "InvalidApiVersionParameter")
        );
        assert_eq!(server.received_requests().await.unwrap().len(), 2);
    }

    #[tokio::test]
    async fn a_refused_token_is_replaced_once() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(header("authorization", "Bearer tok-1"))
            .respond_with(ResponseTemplate::new(401).set_body_json(arm_error("ExpiredAuthenticationToken")))
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(header("authorization", "Bearer tok-2"))
            .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({"name": "c1"})))
            .mount(&server)
            .await;
        assert_eq!(
            client(&server, false, quick()).get_cluster(&c1()).await.unwrap().name,
            "c1"
        );

        // A credential that only has the refused token: an Auth error, and the refused
        // token is not sent again.
        let server2 = MockServer::start().await;
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(401).set_body_json(arm_error("ExpiredAuthenticationToken")))
            .mount(&server2)
            .await;
        let e = client(&server2, true, quick()).get_cluster(&c1()).await.unwrap_err();
        assert!(matches!(&e, AzureError::Auth { status: 401, code, .. } if code == "ExpiredAuthenticationToken"));
        assert!(e.hint().unwrap().contains("az login"));
        assert_eq!(server2.received_requests().await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn paging_follows_next_link_on_the_same_host_only() {
        let server = MockServer::start().await;
        let list = "/subscriptions/s1/providers/Microsoft.ContainerService/managedClusters";
        Mock::given(method("GET"))
            .and(path(list))
            .and(wiremock::matchers::query_param("$skipToken", "p2"))
            .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({"value": [{"name": "b"}]})))
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(path(list))
            .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
                "value": [{"name": "a"}],
                "nextLink": format!("{}{list}?api-version=2025-10-01&$skipToken=p2", server.uri()),
            })))
            .up_to_n_times(1)
            .mount(&server)
            .await;
        let arm = client(&server, false, quick());
        let names: Vec<String> = arm
            .list_clusters("s1", None)
            .await
            .unwrap()
            .into_iter()
            .map(|c| c.name)
            .collect();
        assert_eq!(names, ["a", "b"]);

        Mock::given(method("GET"))
            .and(path(list))
            .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
                "value": [{"name": "a"}],
                "nextLink": "https://evil.example/steal?api-version=1",
            })))
            .with_priority(1)
            .mount(&server)
            .await;
        let e = arm.list_clusters("s1", None).await.unwrap_err();
        assert!(e.to_string().contains("refusing to send the token"), "{e}");
    }

    #[tokio::test]
    async fn kubeconfig_is_decoded_from_base64() {
        let server = MockServer::start().await;
        let yaml = "apiVersion: v1\nkind: Config\n";
        Mock::given(method("POST"))
            .and(path(format!("{MC}/listClusterAdminCredential")))
            .and(header("content-length", "0"))
            .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
                "kubeconfigs": [{"name": "clusterAdmin", "value": base64::engine::general_purpose::STANDARD.encode(yaml)}]
            })))
            .mount(&server)
            .await;
        Mock::given(method("POST"))
            .and(path(format!("{MC}/listClusterUserCredential")))
            .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
                "kubeconfigs": [{"name": "clusterUser", "value": "%%% not base64 secret-ish %%%"}]
            })))
            .mount(&server)
            .await;
        let arm = client(&server, false, quick());
        let k = arm.get_kubeconfig(&c1(), true).await.unwrap();
        assert_eq!((k.name(), k.yaml()), ("clusterAdmin", yaml));
        let e = arm.get_kubeconfig(&c1(), false).await.unwrap_err().to_string();
        assert!(e.contains("not base64") && !e.contains("secret-ish"), "{e}");
    }
}
