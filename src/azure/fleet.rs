//! AKS Fleet Manager (`Microsoft.ContainerService/fleets`): a fleet's member clusters, each
//! with its update group, and its update strategies (stages of groups, a wait after each).
//!
//! Fleet update runs themselves cover Kubernetes versions and node images only; aks-patch
//! reads a fleet to choose clusters and to order its own in-place patching by a strategy.

use super::{ArmClient, AzureError, ClusterId};
use serde::{Deserialize, Serialize};
use std::fmt;

/// api-version of every Fleet Manager call.
pub const FLEET_API_VERSION: &str = "2024-04-01";

/// A fleet's ARM coordinates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FleetId {
    pub subscription: String,
    pub resource_group: String,
    pub name: String,
}

impl FleetId {
    pub fn new(subscription: impl Into<String>, resource_group: impl Into<String>, name: impl Into<String>) -> Self {
        FleetId {
            subscription: subscription.into(),
            resource_group: resource_group.into(),
            name: name.into(),
        }
    }

    fn segments<'a>(&'a self, child: &[&'a str]) -> Vec<&'a str> {
        let mut s = vec![
            "subscriptions",
            &self.subscription,
            "resourceGroups",
            &self.resource_group,
            "providers",
            "Microsoft.ContainerService",
            "fleets",
            &self.name,
        ];
        s.extend_from_slice(child);
        s
    }
}

impl fmt::Display for FleetId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "fleet {} in resource group {} (subscription {})",
            self.name, self.resource_group, self.subscription
        )
    }
}

/// `fleets/{f}/members/{m}`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FleetMember {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub properties: FleetMemberProperties,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FleetMemberProperties {
    #[serde(default)]
    pub cluster_resource_id: String,
    /// The update group the member belongs to (strategies order groups, not clusters).
    pub group: Option<String>,
    pub provisioning_state: Option<String>,
}

impl FleetMember {
    /// The member's cluster, when its `clusterResourceId` is an AKS cluster's id.
    pub fn cluster(&self) -> Option<ClusterId> {
        super::resource_graph::parse_cluster_id(&self.properties.cluster_resource_id)
    }
}

/// `fleets/{f}/updateStrategies/{s}`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpdateStrategy {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub properties: UpdateStrategyProperties,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpdateStrategyProperties {
    #[serde(default)]
    pub strategy: UpdateRunStrategy,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpdateRunStrategy {
    #[serde(default)]
    pub stages: Vec<UpdateStage>,
}

/// One stage: its groups run at once; the next stage starts `afterStageWaitInSeconds` after.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct UpdateStage {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub groups: Vec<UpdateGroup>,
    #[serde(default)]
    pub after_stage_wait_in_seconds: Option<u64>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct UpdateGroup {
    #[serde(default)]
    pub name: String,
}

impl ArmClient {
    /// `GET {fleet}/members` (all pages, `nextLink`).
    pub async fn list_fleet_members(&self, fleet: &FleetId) -> Result<Vec<FleetMember>, AzureError> {
        let url = self.url(&fleet.segments(&["members"]), FLEET_API_VERSION)?;
        self.list(url).await
    }

    /// `GET {fleet}/updateStrategies/{name}`.
    pub async fn get_update_strategy(&self, fleet: &FleetId, name: &str) -> Result<UpdateStrategy, AzureError> {
        let url = self.url(&fleet.segments(&["updateStrategies", name]), FLEET_API_VERSION)?;
        self.get_json(url).await
    }

    /// `GET {fleet}/updateStrategies` (all pages).
    pub async fn list_update_strategies(&self, fleet: &FleetId) -> Result<Vec<UpdateStrategy>, AzureError> {
        let url = self.url(&fleet.segments(&["updateStrategies"]), FLEET_API_VERSION)?;
        self.list(url).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::azure::arm::tests::{client, quick};
    use wiremock::matchers::{method, path, query_param};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    const FLEET: &str = "/subscriptions/s1/resourceGroups/rg-fleet/providers/Microsoft.ContainerService/fleets/f1";

    fn member(name: &str, rg: &str, group: &str) -> serde_json::Value {
        serde_json::json!({
            "name": name,
            "properties": {
                "clusterResourceId": format!("/subscriptions/s2/resourceGroups/{rg}/providers/Microsoft.ContainerService/managedClusters/{name}"),
                "group": group,
                "provisioningState": "Succeeded",
            }
        })
    }

    #[tokio::test]
    async fn members_are_read_across_next_links_with_their_groups() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path(format!("{FLEET}/members")))
            .and(query_param("page", "2"))
            .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
                "value": [member("aks-prod", "rg-b", "prod")]
            })))
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(path(format!("{FLEET}/members")))
            .and(query_param("api-version", FLEET_API_VERSION))
            .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
                "value": [member("aks-dev", "rg-a", "dev")],
                "nextLink": format!("{}{FLEET}/members?api-version={FLEET_API_VERSION}&page=2", server.uri()),
            })))
            .mount(&server)
            .await;
        let arm = client(&server, false, quick());
        let members = arm
            .list_fleet_members(&FleetId::new("s1", "rg-fleet", "f1"))
            .await
            .unwrap();
        let got: Vec<(ClusterId, Option<String>)> = members
            .iter()
            .map(|m| (m.cluster().unwrap(), m.properties.group.clone()))
            .collect();
        assert_eq!(
            got,
            [
                (ClusterId::new("s2", "rg-a", "aks-dev"), Some("dev".into())),
                (ClusterId::new("s2", "rg-b", "aks-prod"), Some("prod".into())),
            ]
        );
    }

    #[tokio::test]
    async fn an_update_strategy_reads_its_stages_groups_and_waits() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path(format!("{FLEET}/updateStrategies/safe")))
            .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
                "name": "safe",
                "properties": {"strategy": {"stages": [
                    {"name": "canary", "groups": [{"name": "dev"}], "afterStageWaitInSeconds": 3600},
                    {"name": "rest", "groups": [{"name": "staging"}, {"name": "prod"}]},
                ]}}
            })))
            .mount(&server)
            .await;
        let arm = client(&server, false, quick());
        let s = arm
            .get_update_strategy(&FleetId::new("s1", "rg-fleet", "f1"), "safe")
            .await
            .unwrap();
        let stages = s.properties.strategy.stages;
        assert_eq!(stages.len(), 2);
        assert_eq!(stages[0].after_stage_wait_in_seconds, Some(3600));
        assert_eq!(stages[1].after_stage_wait_in_seconds, None);
        let groups: Vec<&str> = stages[1].groups.iter().map(|g| g.name.as_str()).collect();
        assert_eq!(groups, ["staging", "prod"]);
    }

    #[tokio::test]
    async fn a_missing_fleet_is_not_found() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(404).set_body_json(serde_json::json!({
                "error": {"code": "ResourceNotFound", "message": "The Resource 'Microsoft.ContainerService/fleets/f1' was not found."}
            })))
            .mount(&server)
            .await;
        let arm = client(&server, false, quick());
        let e = arm
            .list_fleet_members(&FleetId::new("s1", "rg-fleet", "f1"))
            .await
            .unwrap_err();
        assert!(e.is_not_found(), "{e}");
    }
}
