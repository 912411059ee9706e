//! Blockers: what the operator says must hold the rollout, as kured's users know them.
//! Pods matching a `--blocking-pod-selector` (anywhere in the cluster, or on the node about to
//! be taken out), and active alerts of a Prometheus server (`--prometheus-url`, its HTTP API
//! `/api/v1/alerts`) not filtered out, with kured's semantics: `--alert-filter-regexp` ignores
//! the alerts whose name matches (or, with `--alert-filter-match-only`, all the others), and
//! `--alert-firing-only` ignores pending ones. A Prometheus that cannot be asked blocks (fail
//! safe), and says so. Checked before the lock and before every cordon, waited for up to
//! `--blocker-wait`.

use super::progress::{Event, HoldTracker, Holding, Progress};
use crate::kube::{list_all, KubeError};
use ::kube::api::{Api, ListParams};
use async_trait::async_trait;
use k8s_openapi::api::core::v1::Pod;
use std::fmt;
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Something the operator said must hold the rollout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hold {
    /// A pod matching a blocking selector exists.
    Pod {
        namespace: String,
        name: String,
        node: Option<String>,
        selector: String,
    },
    /// An active alert that is not filtered out.
    Alert { name: String, state: String },
    /// Prometheus could not be asked (unreachable, an error, a body that is not its API's):
    /// that blocks too.
    PrometheusDown { url: String, why: String },
    /// The pods could not be listed: that blocks too.
    PodsUnknown { selector: String, why: String },
}

impl fmt::Display for Hold {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Hold::Pod {
                namespace,
                name,
                node,
                selector,
            } => {
                write!(f, "pod {namespace}/{name} matches --blocking-pod-selector {selector}")?;
                if let Some(n) = node {
                    write!(f, " (on node {n})")?;
                }
                Ok(())
            }
            Hold::Alert { name, state } => write!(f, "alert {name} is {state}"),
            Hold::PrometheusDown { url, why } => {
                write!(
                    f,
                    "Prometheus at {url} cannot be asked ({why}); that blocks, to be safe"
                )
            }
            Hold::PodsUnknown { selector, why } => {
                write!(
                    f,
                    "cannot list the pods matching {selector} ({why}); that blocks, to be safe"
                )
            }
        }
    }
}

pub fn holds_text(holds: &[Hold]) -> String {
    holds.iter().map(|h| h.to_string()).collect::<Vec<_>>().join("; ")
}

/// Where a blocking pod counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PodScope {
    #[default]
    /// Anywhere in the cluster.
    Cluster,
    /// On the node about to be taken out.
    Node,
}

/// kured's alert filter.
#[derive(Debug, Clone)]
pub struct AlertFilter {
    pub regexp: Option<regex::Regex>,
    /// Only alerts matching the regexp block (instead of: matching ones are ignored).
    pub match_only: bool,
    /// Only firing alerts block (not pending ones).
    pub firing_only: bool,
}

impl AlertFilter {
    /// Does this alert block?
    pub fn blocks(&self, name: &str, state: &str) -> bool {
        if self.firing_only && state != "firing" {
            return false;
        }
        match &self.regexp {
            Some(re) => re.is_match(name) == self.match_only,
            None => true,
        }
    }
}

/// The URL without any user:password in it, for messages.
pub fn redact(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut u) => {
            if !u.username().is_empty() || u.password().is_some() {
                let _ = u.set_username("");
                let _ = u.set_password(None);
            }
            u.set_query(None);
            u.to_string().trim_end_matches('/').to_string()
        }
        Err(_) => "<the --prometheus-url>".into(),
    }
}

/// A Prometheus server's active alerts, over its HTTP API.
#[derive(Debug, Clone)]
pub struct Prometheus {
    url: String,
    http: reqwest::Client,
    pub filter: AlertFilter,
}

/// What is wrong with a Prometheus URL (told without its credentials).
#[derive(Debug, thiserror::Error)]
pub enum PrometheusUrlError {
    #[error("`{url}` is not a URL: {source}")]
    NotAUrl {
        url: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },
    #[error("`{0}` is not an http(s) URL")]
    NotHttp(String),
}

impl Prometheus {
    /// Prometheus at `url`, asked through `http` (from [`crate::http::client`]).
    pub fn new(url: &str, filter: AlertFilter, http: reqwest::Client) -> Result<Prometheus, PrometheusUrlError> {
        let parsed = reqwest::Url::parse(url).map_err(|e| PrometheusUrlError::NotAUrl {
            url: redact(url),
            source: Box::new(e),
        })?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(PrometheusUrlError::NotHttp(redact(url)));
        }
        Ok(Prometheus {
            url: url.trim_end_matches('/').to_string(),
            http,
            filter,
        })
    }

    /// The alerts that block now, or why Prometheus could not be asked.
    pub async fn holds(&self) -> Vec<Hold> {
        #[derive(serde::Deserialize)]
        struct Body {
            status: String,
            #[serde(default)]
            data: Option<Data>,
        }
        #[derive(serde::Deserialize)]
        struct Data {
            #[serde(default)]
            alerts: Vec<Alert>,
        }
        #[derive(serde::Deserialize)]
        struct Alert {
            #[serde(default)]
            labels: std::collections::BTreeMap<String, String>,
            #[serde(default)]
            state: String,
        }
        let down = |why: String| {
            vec![Hold::PrometheusDown {
                url: redact(&self.url),
                why,
            }]
        };
        let resp = match self.http.get(format!("{}/api/v1/alerts", self.url)).send().await {
            Ok(r) => r,
            Err(e) if e.is_timeout() => return down("no answer in time".into()),
            Err(e) if e.is_connect() => return down("connection refused or unreachable".into()),
            Err(e) => return down(e.without_url().to_string()),
        };
        let status = resp.status();
        if !status.is_success() {
            return down(format!("HTTP {status}"));
        }
        let body: Body = match resp.json().await {
            Ok(b) => b,
            Err(e) => return down(format!("not Prometheus's alerts API: {}", e.without_url())),
        };
        if body.status != "success" {
            return down(format!("status {}", body.status));
        }
        let mut out: Vec<Hold> = body
            .data
            .map(|d| d.alerts)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|a| {
                let name = a.labels.get("alertname").cloned().unwrap_or_default();
                self.filter
                    .blocks(&name, &a.state)
                    .then_some(Hold::Alert { name, state: a.state })
            })
            .collect();
        out.sort_by_key(|h| h.to_string());
        out.dedup();
        out
    }
}

/// What the engine asks: what holds a disruption of `node` now (`None`: before any node,
/// where pods scoped to a node are not asked). Failures to ask are holds (fail safe).
#[async_trait]
pub trait BlockerSource: Send + Sync {
    async fn holds(&self, node: Option<&str>) -> Vec<Hold>;
}

/// The real checks: the Kubernetes API and Prometheus.
pub struct Blockers {
    pub client: ::kube::Client,
    pub selectors: Vec<String>,
    pub scope: PodScope,
    pub prometheus: Option<Prometheus>,
}

impl Blockers {
    async fn pods(&self, selector: &str, node: Option<&str>) -> Result<Vec<Hold>, KubeError> {
        let api: Api<Pod> = Api::all(self.client.clone());
        let mut params = ListParams::default().labels(selector);
        if let Some(n) = node {
            params = params.fields(&format!("spec.nodeName={n}"));
        }
        let pods = list_all(&api, &params, &format!("listing pods matching {selector}")).await?;
        Ok(pods
            .into_iter()
            .filter(|p| {
                // Finished pods hold nothing (as kured).
                let phase = p.status.as_ref().and_then(|s| s.phase.as_deref()).unwrap_or("");
                !matches!(phase, "Succeeded" | "Failed")
            })
            .map(|p| Hold::Pod {
                namespace: p.metadata.namespace.unwrap_or_default(),
                name: p.metadata.name.unwrap_or_default(),
                node: p.spec.and_then(|s| s.node_name),
                selector: selector.to_string(),
            })
            .collect())
    }

    /// The first selector the API server refuses (HTTP 400), with its message: a usage error.
    pub async fn bad_selector(&self) -> Option<(String, String)> {
        for s in &self.selectors {
            if let Err(e) = self.pods(s, Some("aks-patch-selector-check")).await {
                if e.status_code() == Some(400) {
                    return Some((s.clone(), e.to_string()));
                }
            }
        }
        None
    }
}

#[async_trait]
impl BlockerSource for Blockers {
    async fn holds(&self, node: Option<&str>) -> Vec<Hold> {
        let mut out = vec![];
        let pod_node = match (self.scope, node) {
            (PodScope::Cluster, _) => Some(None),
            (PodScope::Node, Some(n)) => Some(Some(n)),
            (PodScope::Node, None) => None,
        };
        if let Some(on) = pod_node {
            for s in &self.selectors {
                match self.pods(s, on).await {
                    Ok(h) => out.extend(h),
                    Err(e) => out.push(Hold::PodsUnknown {
                        selector: s.clone(),
                        why: e.to_string(),
                    }),
                }
            }
        }
        if let Some(p) = &self.prometheus {
            out.extend(p.holds().await);
        }
        out
    }
}

/// Why the blockers did not clear.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlockStop {
    Held { holds: Vec<Hold>, waited: Duration },
    Cancelled,
}

impl fmt::Display for BlockStop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BlockStop::Held { holds, waited } => write!(
                f,
                "blocked: {} (waited {}s, --blocker-wait)",
                holds_text(holds),
                waited.as_secs()
            ),
            BlockStop::Cancelled => write!(f, "interrupted while waiting for the blockers to clear"),
        }
    }
}

/// Wait (at most `max_wait`) until nothing holds a disruption of `node`, telling what holds
/// while it does. `Ok(true)`: something held, and time went by.
pub async fn wait_clear(
    source: &dyn BlockerSource,
    node: Option<&str>,
    max_wait: Duration,
    poll: Duration,
    cancel: &CancellationToken,
    progress: &dyn Progress,
) -> Result<bool, BlockStop> {
    let start = Instant::now();
    let mut tracker = HoldTracker::default();
    loop {
        let holds = source.holds(node).await;
        if holds.is_empty() {
            if tracker.held() {
                progress.tell(Event::BlockersCleared {
                    node: node.map(str::to_string),
                });
            }
            return Ok(tracker.held());
        }
        let waited = start.elapsed();
        if waited >= max_wait {
            if let (Some(n), true) = (node, tracker.held()) {
                progress.tell(Event::WaitDone { node: n.to_string() });
            }
            return Err(BlockStop::Held { holds, waited });
        }
        tracker.show(progress, node, Holding::Blockers(holds), waited, max_wait);
        tokio::select! {
            _ = tokio::time::sleep(poll.min(max_wait - waited)) => {}
            _ = cancel.cancelled() => return Err(BlockStop::Cancelled),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kured_alert_filter_semantics() {
        let all = AlertFilter {
            regexp: None,
            match_only: false,
            firing_only: false,
        };
        assert!(all.blocks("Anything", "pending") && all.blocks("Anything", "firing"));
        let ignore_watchdog = AlertFilter {
            regexp: Some(regex::Regex::new("^(Watchdog|InfoInhibitor)$").unwrap()),
            ..all.clone()
        };
        assert!(!ignore_watchdog.blocks("Watchdog", "firing"));
        assert!(ignore_watchdog.blocks("NodeDiskFull", "firing"));
        let only_reboot = AlertFilter {
            regexp: Some(regex::Regex::new("^RebootBlocker").unwrap()),
            match_only: true,
            firing_only: true,
        };
        assert!(only_reboot.blocks("RebootBlockerBackup", "firing"));
        assert!(!only_reboot.blocks("RebootBlockerBackup", "pending"));
        assert!(!only_reboot.blocks("NodeDiskFull", "firing"));
    }

    #[test]
    fn credentials_in_the_url_are_never_shown() {
        assert_eq!(
            redact("https://user:s3cret@prom.example:9090/?token=abc"),
            "https://prom.example:9090"
        );
        assert!(!redact("not a url s3cret").contains("s3cret"));
    }

    #[tokio::test]
    async fn an_unreachable_prometheus_blocks_and_says_so() {
        // A port nobody listens on (bound, then closed).
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let p = Prometheus::new(
            &format!("http://u:pw@127.0.0.1:{port}"),
            AlertFilter {
                regexp: None,
                match_only: false,
                firing_only: false,
            },
            crate::http::client(None, Duration::from_secs(2), Duration::from_secs(2)).unwrap(),
        )
        .unwrap();
        let h = p.holds().await;
        assert_eq!(h.len(), 1, "{h:?}");
        let text = h[0].to_string();
        assert!(
            text.contains(&format!("127.0.0.1:{port}")) && text.contains("blocks"),
            "{text}"
        );
        assert!(!text.contains("pw"), "{text}");
    }
}
