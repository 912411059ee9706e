//! Azure Resource Graph: the AKS clusters of many subscriptions in one query.
//!
//! `POST {arm}/providers/Microsoft.ResourceGraph/resources?api-version=2021-03-01` with
//! `{"subscriptions": [...], "query": "...", "options": {"$top": N, "$skipToken": "..."}}`;
//! the answer's `$skipToken` names the next page until it is absent. Throttling: a 429 is
//! retried by the ARM client (its `Retry-After`, else `x-ms-user-quota-resets-after`); a page
//! that says the quota is spent (`x-ms-user-quota-remaining: 0`) makes the next page wait
//! until the quota resets.
//!
//! Queries are built from typed filters ([`ClusterQuery`]), every value quoted as a KQL string
//! literal ([`kql_string`]): a tag value cannot end the literal and add an operator. Only the
//! shape `resources | where type =~ '...' | where ... | project ...` is sent.

use super::arm::decode;
use super::{ArmClient, AzureError};
use reqwest::Method;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

/// api-version of the Resource Graph `resources` call.
pub const RESOURCE_GRAPH_API_VERSION: &str = "2021-03-01";
/// Rows asked for per page (Resource Graph's maximum is 1000).
pub const PAGE_SIZE: u32 = 1000;
/// Pages followed at most (a loop guard).
const MAX_PAGES: usize = 1000;
/// The longest wait for a spent quota that is honoured (longer: waited this long).
const MAX_QUOTA_WAIT: Duration = Duration::from_secs(60);

/// The resource type of an AKS cluster, as Resource Graph compares it (`=~`: any case).
pub const MANAGED_CLUSTER_TYPE: &str = "microsoft.containerservice/managedclusters";

/// Which clusters a query selects. Every field narrows the selection; empty ones do not.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClusterQuery {
    /// `tags[KEY] == VALUE`, all of them.
    pub tags: Vec<(String, String)>,
    /// The cluster is in one of these resource groups (any case).
    pub resource_groups: Vec<String>,
    /// The cluster has one of these names (any case).
    pub names: Vec<String>,
    /// A Resource Graph `where` clause of the user's own, appended as `| where (CLAUSE)`.
    pub clause: Option<String>,
}

/// A string as a KQL string literal: single quotes, with `\` and `'` escaped, and control
/// characters written as escapes, so that nothing in it can end the literal.
pub fn kql_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

fn one_of(field: &str, values: &[String]) -> String {
    let alternatives: Vec<String> = values.iter().map(|v| format!("{field} =~ {}", kql_string(v))).collect();
    if alternatives.len() == 1 {
        alternatives.into_iter().next().unwrap_or_default()
    } else {
        format!("({})", alternatives.join(" or "))
    }
}

impl ClusterQuery {
    /// The KQL text sent to Resource Graph.
    pub fn kql(&self) -> String {
        let mut q = format!("resources | where type =~ {}", kql_string(MANAGED_CLUSTER_TYPE));
        for (k, v) in &self.tags {
            q.push_str(&format!(" | where tags[{}] == {}", kql_string(k), kql_string(v)));
        }
        if !self.resource_groups.is_empty() {
            q.push_str(&format!(" | where {}", one_of("resourceGroup", &self.resource_groups)));
        }
        if !self.names.is_empty() {
            q.push_str(&format!(" | where {}", one_of("name", &self.names)));
        }
        if let Some(c) = self.clause.as_deref().map(str::trim).filter(|c| !c.is_empty()) {
            q.push_str(&format!(" | where ({c})"));
        }
        q.push_str(" | project id, name, resourceGroup, subscriptionId, location, tags");
        q
    }
}

/// One row of the cluster query.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterRow {
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub resource_group: String,
    #[serde(default)]
    pub subscription_id: String,
    #[serde(default)]
    pub location: Option<String>,
    /// `null` in Resource Graph when a resource has no tags.
    #[serde(default, deserialize_with = "tags_or_null")]
    pub tags: BTreeMap<String, String>,
}

fn tags_or_null<'de, D: serde::Deserializer<'de>>(d: D) -> Result<BTreeMap<String, String>, D::Error> {
    let v: Option<BTreeMap<String, serde_json::Value>> = Option::deserialize(d)?;
    Ok(v.unwrap_or_default()
        .into_iter()
        .map(|(k, v)| {
            let text = match v {
                serde_json::Value::String(s) => s,
                other => other.to_string(),
            };
            (k, text)
        })
        .collect())
}

/// One page of a Resource Graph answer.
#[derive(Debug, Deserialize)]
struct QueryPage<T> {
    #[serde(default = "Vec::new")]
    data: Vec<T>,
    #[serde(rename = "$skipToken", default)]
    skip_token: Option<String>,
}

impl ArmClient {
    /// Every AKS cluster `query` selects in `subscriptions` (all pages).
    pub async fn query_clusters(
        &self,
        subscriptions: &[String],
        query: &ClusterQuery,
    ) -> Result<Vec<ClusterRow>, AzureError> {
        self.resource_graph(subscriptions, &query.kql()).await
    }

    /// Run a Resource Graph query over `subscriptions`, following `$skipToken` to the end.
    pub async fn resource_graph<T: serde::de::DeserializeOwned>(
        &self,
        subscriptions: &[String],
        kql: &str,
    ) -> Result<Vec<T>, AzureError> {
        if subscriptions.is_empty() {
            return Err(AzureError::NoSubscription(
                "the credential can list no subscription to query".into(),
            ));
        }
        let url = self.url(
            &["providers", "Microsoft.ResourceGraph", "resources"],
            RESOURCE_GRAPH_API_VERSION,
        )?;
        let mut out = vec![];
        let mut skip_token: Option<String> = None;
        for page_no in 0..MAX_PAGES {
            let mut options = serde_json::json!({ "$top": PAGE_SIZE, "resultFormat": "objectArray" });
            if let Some(t) = &skip_token {
                options["$skipToken"] = serde_json::Value::String(t.clone());
            }
            let body = serde_json::json!({
                "subscriptions": subscriptions,
                "query": kql,
                "options": options,
            });
            let reply = self.send_full(Method::POST, url.clone(), Some(&body)).await?;
            let page: QueryPage<T> = decode(&url, &reply.body)?;
            tracing::debug!(page = page_no + 1, rows = page.data.len(), "Resource Graph page");
            out.extend(page.data);
            match page.skip_token.filter(|t| !t.is_empty()) {
                None => return Ok(out),
                Some(t) => skip_token = Some(t),
            }
            if let Some(wait) = quota_wait(&reply.headers) {
                tracing::debug!(wait_ms = wait.as_millis() as u64, "Resource Graph quota spent: waiting");
                tokio::time::sleep(wait).await;
            }
        }
        Err(AzureError::Decode {
            url: url.to_string(),
            message: format!("more than {MAX_PAGES} pages: the $skipToken chain does not end"),
        })
    }
}

/// How long to wait before the next request: only when the answer says the quota is spent.
fn quota_wait(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let remaining: u64 = headers
        .get("x-ms-user-quota-remaining")?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    if remaining > 0 {
        return None;
    }
    Some(
        super::arm::quota_resets_after(headers)
            .unwrap_or(Duration::from_secs(1))
            .min(MAX_QUOTA_WAIT),
    )
}

/// A cluster's resource id, read: `/subscriptions/S/resourceGroups/RG/providers/
/// Microsoft.ContainerService/managedClusters/NAME` (any case).
pub fn parse_cluster_id(id: &str) -> Option<super::ClusterId> {
    let parts: Vec<&str> = id.trim().trim_matches('/').split('/').collect();
    match parts.as_slice() {
        [s, sub, r, rg, p, ns, t, name]
            if s.eq_ignore_ascii_case("subscriptions")
                && r.eq_ignore_ascii_case("resourceGroups")
                && p.eq_ignore_ascii_case("providers")
                && ns.eq_ignore_ascii_case("Microsoft.ContainerService")
                && t.eq_ignore_ascii_case("managedClusters")
                && ![sub, rg, name].iter().any(|x| x.is_empty()) =>
        {
            Some(super::ClusterId::new(*sub, *rg, *name))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::azure::arm::tests::{client, quick};
    use wiremock::matchers::{body_partial_json, method, path, query_param};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    #[test]
    fn a_tag_value_cannot_end_its_string_literal() {
        let q = ClusterQuery {
            tags: vec![("env".into(), "prod' or 1==1 | project secrets //".into())],
            ..ClusterQuery::default()
        };
        let kql = q.kql();
        assert_eq!(
            kql,
            "resources | where type =~ 'microsoft.containerservice/managedclusters' | where tags['env'] == 'prod\\' or 1==1 | project secrets //' | project id, name, resourceGroup, subscriptionId, location, tags"
        );
        assert_eq!(kql_string("a\\'b\nc"), "'a\\\\\\'b\\nc'");
        assert_eq!(kql_string("\u{1}"), "'\\u0001'");
    }

    #[test]
    fn every_filter_narrows_the_query_in_order() {
        let q = ClusterQuery {
            tags: vec![("env".into(), "prod".into()), ("team".into(), "shop".into())],
            resource_groups: vec!["rg-a".into()],
            names: vec!["aks-1".into(), "aks-2".into()],
            clause: Some("location =~ 'westeurope'".into()),
        };
        assert_eq!(
            q.kql(),
            "resources | where type =~ 'microsoft.containerservice/managedclusters' \
             | where tags['env'] == 'prod' | where tags['team'] == 'shop' \
             | where resourceGroup =~ 'rg-a' | where (name =~ 'aks-1' or name =~ 'aks-2') \
             | where (location =~ 'westeurope') \
             | project id, name, resourceGroup, subscriptionId, location, tags"
        );
    }

    #[test]
    fn cluster_ids_are_read_in_any_case() {
        let id = parse_cluster_id(
            "/subscriptions/s1/resourcegroups/rg1/providers/microsoft.containerservice/managedClusters/c1",
        )
        .unwrap();
        assert_eq!(id, crate::azure::ClusterId::new("s1", "rg1", "c1"));
        assert!(parse_cluster_id("/subscriptions/s1/resourceGroups/rg1").is_none());
        assert!(parse_cluster_id(
            "/subscriptions/s1/resourceGroups/rg1/providers/Microsoft.Compute/virtualMachines/vm"
        )
        .is_none());
    }

    #[test]
    fn quota_headers_make_the_next_page_wait_only_when_spent() {
        use reqwest::header::{HeaderMap, HeaderValue};
        let mut h = HeaderMap::new();
        h.insert("x-ms-user-quota-remaining", HeaderValue::from_static("3"));
        h.insert("x-ms-user-quota-resets-after", HeaderValue::from_static("00:00:04"));
        assert_eq!(quota_wait(&h), None);
        h.insert("x-ms-user-quota-remaining", HeaderValue::from_static("0"));
        assert_eq!(quota_wait(&h), Some(Duration::from_secs(4)));
        h.insert("x-ms-user-quota-resets-after", HeaderValue::from_static("01:00:00"));
        assert_eq!(quota_wait(&h), Some(MAX_QUOTA_WAIT));
    }

    fn row(name: &str) -> serde_json::Value {
        serde_json::json!({
            "id": format!("/subscriptions/s1/resourceGroups/rg1/providers/Microsoft.ContainerService/managedClusters/{name}"),
            "name": name, "resourceGroup": "rg1", "subscriptionId": "s1", "location": "westeurope",
            "tags": if name == "c2" { serde_json::Value::Null } else { serde_json::json!({"env": "prod", "tier": 1}) },
        })
    }

    #[tokio::test]
    async fn pages_are_followed_by_skip_token_and_a_throttled_page_is_retried() {
        let server = MockServer::start().await;
        let url = "/providers/Microsoft.ResourceGraph/resources";
        Mock::given(method("POST"))
            .and(path(url))
            .and(query_param("api-version", RESOURCE_GRAPH_API_VERSION))
            .and(body_partial_json(serde_json::json!({"options": {"$skipToken": "p2"}})))
            .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
                "totalRecords": 3, "count": 1, "resultTruncated": "false", "data": [row("c3")]
            })))
            .mount(&server)
            .await;
        // The first page: throttled once, then answered with a token for the next.
        Mock::given(method("POST"))
            .and(path(url))
            .respond_with(
                ResponseTemplate::new(429)
                    .insert_header("x-ms-user-quota-remaining", "0")
                    .insert_header("x-ms-user-quota-resets-after", "00:00:00.05")
                    .set_body_json(serde_json::json!({"error": {"code": "RateLimiting", "message": "slow down"}})),
            )
            .up_to_n_times(1)
            .mount(&server)
            .await;
        Mock::given(method("POST"))
            .and(path(url))
            .and(body_partial_json(serde_json::json!({
                "subscriptions": ["s1", "s2"],
                "options": {"$top": PAGE_SIZE},
            })))
            .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
                "totalRecords": 3, "count": 2, "resultTruncated": "false", "$skipToken": "p2",
                "data": [row("c1"), row("c2")]
            })))
            .mount(&server)
            .await;
        let arm = client(&server, false, quick());
        let rows = arm
            .query_clusters(&["s1".into(), "s2".into()], &ClusterQuery::default())
            .await
            .unwrap();
        let names: Vec<&str> = rows.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["c1", "c2", "c3"]);
        assert_eq!(rows[0].tags["env"], "prod");
        assert_eq!(rows[0].tags["tier"], "1", "a number-valued tag is read as its text");
        assert!(rows[1].tags.is_empty(), "tags: null is no tags");
        let requests = server.received_requests().await.unwrap();
        assert_eq!(requests.len(), 3, "one throttled request, then two pages");
        let sent: serde_json::Value = serde_json::from_slice(&requests[2].body).unwrap();
        assert!(
            sent["query"].as_str().unwrap().starts_with("resources | where type =~"),
            "{sent}"
        );
    }

    #[tokio::test]
    async fn a_refused_query_names_the_reason_the_details_give() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(400).set_body_json(serde_json::json!({"error": {
                "code": "BadRequest",
                "message": "Please provide below info when asking for support: timestamp = ..., correlationId = ....",
                "details": [
                    {"code": "InvalidQuery", "message": "Query is invalid. Please refer to the documentation for the Azure Resource Graph service and fix the error before retrying."},
                    {"code": "ParserFailure", "message": "ParserFailure", "line": 1, "characterPositionInLine": 91, "token": "summarize"},
                ],
            }})))
            .mount(&server)
            .await;
        let arm = client(&server, false, quick());
        let q = ClusterQuery {
            clause: Some("x | summarize count()".into()),
            ..ClusterQuery::default()
        };
        let e = arm.query_clusters(&["s1".into()], &q).await.unwrap_err();
        let text = e.to_string();
        assert!(text.contains("Query is invalid"), "{text}");
        assert!(text.contains("ParserFailure (line 1, position 91)"), "{text}");
    }

    #[tokio::test]
    async fn no_subscription_is_an_error_before_any_request() {
        let server = MockServer::start().await;
        let arm = client(&server, false, quick());
        let e = arm.query_clusters(&[], &ClusterQuery::default()).await.unwrap_err();
        assert!(matches!(e, AzureError::NoSubscription(_)), "{e}");
        assert!(server.received_requests().await.unwrap().is_empty());
    }
}
