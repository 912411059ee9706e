//! The fleet scenario: several full clusters (each a single-cluster scenario, over
//! `clusterDefaults`), in one or more subscriptions of one tenant, and the Fleet Manager
//! fleets that group them.

use crate::scenario::{self, Scenario, ScenarioError};
use serde::{Deserialize, Serialize};
use serde_yaml_ng::Value;

/// Rows per Resource Graph page unless the scenario says otherwise (`resourceGraphPageSize`):
/// the service's own default (`$top` at most 1000).
pub const RESOURCE_GRAPH_PAGE_SIZE: usize = 1000;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct FleetScenario {
    /// The one tenant of every subscription (one Entra ID, one credential).
    #[serde(default = "scenario::default_tenant")]
    pub tenant_id: String,
    /// Merged under every item of `clusters` (maps key by key, anything else replaced), so
    /// that a cluster names only what differs.
    #[serde(default, skip_serializing)]
    pub cluster_defaults: Option<Value>,
    /// The clusters, each a full single-cluster scenario (its own `subscriptionId`,
    /// `resourceGroup`, `cluster.name` and `cluster.tags`, pools, workloads, faults).
    pub clusters: Vec<Scenario>,
    /// AKS Fleet Manager fleets (`Microsoft.ContainerService/fleets`).
    #[serde(default)]
    pub fleets: Vec<FleetSpec>,
    /// Managed clusters per page of ARM list responses (ARM's own: 100).
    #[serde(default = "scenario::default_arm_page_size")]
    pub arm_page_size: usize,
    /// Rows per Resource Graph page at most (the service's: 1000; a request's `$top` may ask
    /// for fewer). A small number makes clients follow `$skipToken`.
    #[serde(default = "default_rg_page")]
    pub resource_graph_page_size: usize,
    /// Resource Graph's per-user quota: `queries` per window of `windowSeconds` (the service's:
    /// 15 per 5 s); beyond it a query is refused with 429 until the window ends.
    #[serde(default)]
    pub resource_graph_quota: QuotaSpec,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct QuotaSpec {
    pub queries: u32,
    pub window_seconds: f64,
}

impl Default for QuotaSpec {
    fn default() -> QuotaSpec {
        QuotaSpec {
            queries: 15,
            window_seconds: 5.0,
        }
    }
}

fn default_rg_page() -> usize {
    RESOURCE_GRAPH_PAGE_SIZE
}

/// A Fleet Manager fleet (hub-less), its members and update strategies.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct FleetSpec {
    #[serde(default = "scenario::default_subscription")]
    pub subscription_id: String,
    pub resource_group: String,
    pub name: String,
    #[serde(default = "default_location")]
    pub location: String,
    #[serde(default)]
    pub members: Vec<MemberSpec>,
    #[serde(default)]
    pub update_strategies: Vec<StrategySpec>,
}

fn default_location() -> String {
    "westeurope".into()
}

/// `fleets/{f}/members/{name}`: the cluster it joins (by `cluster.name`) and its update group.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct MemberSpec {
    pub name: String,
    pub cluster: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
}

/// `fleets/{f}/updateStrategies/{name}`: stages, run in order, of groups, run at once.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct StrategySpec {
    pub name: String,
    pub stages: Vec<StageSpec>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct StageSpec {
    pub name: String,
    pub groups: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after_stage_wait_in_seconds: Option<u64>,
}

impl FleetScenario {
    /// Whether scenario text is a fleet's (it has a top-level `clusters:`).
    pub fn is_fleet(text: &str) -> bool {
        serde_yaml_ng::from_str::<Value>(text)
            .ok()
            .and_then(|v| v.as_mapping().map(|m| m.contains_key("clusters")))
            .unwrap_or(false)
    }

    /// Parse YAML or JSON text. `origin` names the file in errors, which name the field
    /// (`clusters[1].pools[0].count: ...`).
    pub fn parse(text: &str, origin: &str) -> Result<FleetScenario, ScenarioError> {
        let invalid = |field: String, message: String| ScenarioError::Invalid {
            origin: origin.to_string(),
            field,
            message,
        };
        let mut doc: Value = serde_yaml_ng::from_str(text).map_err(|e| invalid("(top level)".into(), e.to_string()))?;
        // Merge clusterDefaults under every cluster, and the one tenant into each.
        if let Some(top) = doc.as_mapping_mut() {
            let defaults = top.get("clusterDefaults").cloned();
            let tenant = top.get("tenantId").cloned();
            if let Some(Value::Sequence(items)) = top.get_mut("clusters") {
                for (i, item) in items.iter_mut().enumerate() {
                    if let (Some(t), Some(m)) = (&tenant, item.as_mapping()) {
                        if let Some(own) = m.get("tenantId").filter(|own| *own != t) {
                            return Err(invalid(
                                format!("clusters[{i}].tenantId"),
                                format!("{own:?}: every cluster of a fleet is in the fleet's tenant ({t:?})"),
                            ));
                        }
                    }
                    if let Some(d) = &defaults {
                        let mut merged = d.clone();
                        merge(&mut merged, std::mem::take(item));
                        *item = merged;
                    }
                    if let (Some(t), Some(m)) = (&tenant, item.as_mapping_mut()) {
                        m.insert("tenantId".into(), t.clone());
                    }
                }
            }
        }
        let fleet: FleetScenario = serde_path_to_error::deserialize(doc).map_err(|e| {
            let field = e.path().to_string();
            invalid(
                if field == "." { "(top level)".into() } else { field },
                e.into_inner().to_string(),
            )
        })?;
        fleet.validate(origin)?;
        Ok(fleet)
    }

    pub fn load(path: &std::path::Path) -> Result<FleetScenario, ScenarioError> {
        let text = std::fs::read_to_string(path).map_err(|source| ScenarioError::Read {
            path: path.display().to_string(),
            source,
        })?;
        FleetScenario::parse(&text, &path.display().to_string())
    }

    fn validate(&self, origin: &str) -> Result<(), ScenarioError> {
        let invalid = |field: String, message: String| ScenarioError::Invalid {
            origin: origin.to_string(),
            field,
            message,
        };
        if self.clusters.is_empty() {
            return Err(invalid("clusters".into(), "a fleet needs at least one cluster".into()));
        }
        for (i, c) in self.clusters.iter().enumerate() {
            c.validate(&format!("{origin} (clusters[{i}])"))?;
            if c.extra_clusters != 0 {
                return Err(invalid(
                    format!("clusters[{i}].extraClusters"),
                    "is for a single-cluster scenario: a fleet's lists page over its own clusters (set armPageSize)"
                        .into(),
                ));
            }
            if c.tenant_id != self.tenant_id {
                return Err(invalid(
                    format!("clusters[{i}].tenantId"),
                    format!(
                        "`{}`: every cluster of a fleet is in the fleet's tenant (`tenantId`)",
                        c.tenant_id
                    ),
                ));
            }
            if let Some(j) = self.clusters[..i]
                .iter()
                .position(|o| o.cluster.name.eq_ignore_ascii_case(&c.cluster.name))
            {
                return Err(invalid(
                    format!("clusters[{i}].cluster.name"),
                    format!(
                        "`{}` is also clusters[{j}]'s name: aks-sim names a fleet's clusters uniquely (their state directories, `aks-sim fault --cluster`)",
                        c.cluster.name
                    ),
                ));
            }
        }
        let q = self.resource_graph_quota;
        if q.queries == 0 || !q.window_seconds.is_finite() || q.window_seconds < 0.1 {
            return Err(invalid(
                "resourceGraphQuota".into(),
                "at least 1 query per window of at least 0.1 s".into(),
            ));
        }
        if self.resource_graph_page_size == 0 || self.arm_page_size == 0 {
            return Err(invalid(
                "resourceGraphPageSize".into(),
                "page sizes must be at least 1".into(),
            ));
        }
        for (f, fleet) in self.fleets.iter().enumerate() {
            if !scenario::valid_name(&fleet.name) || !scenario::valid_name(&fleet.resource_group) {
                return Err(invalid(
                    format!("fleets[{f}].name"),
                    format!(
                        "`{}/{}` is not a valid resource group and name",
                        fleet.resource_group, fleet.name
                    ),
                ));
            }
            for (m, member) in fleet.members.iter().enumerate() {
                if self.cluster(&member.cluster).is_none() {
                    return Err(invalid(
                        format!("fleets[{f}].members[{m}].cluster"),
                        format!("no cluster named `{}` in `clusters`", member.cluster),
                    ));
                }
            }
            for (s, strategy) in fleet.update_strategies.iter().enumerate() {
                for (g, stage) in strategy.stages.iter().enumerate() {
                    for group in &stage.groups {
                        if !fleet.members.iter().any(|m| m.group.as_deref() == Some(group.as_str())) {
                            return Err(invalid(
                                format!("fleets[{f}].updateStrategies[{s}].stages[{g}].groups"),
                                format!("no member of fleet `{}` is in group `{group}`", fleet.name),
                            ));
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// The cluster named `name` (case-insensitively, as ARM names match).
    pub fn cluster(&self, name: &str) -> Option<&Scenario> {
        self.clusters.iter().find(|c| c.cluster.name.eq_ignore_ascii_case(name))
    }

    /// The subscriptions, in the order they first appear (clusters, then fleets).
    pub fn subscriptions(&self) -> Vec<String> {
        let mut subs: Vec<String> = vec![];
        let all = self
            .clusters
            .iter()
            .map(|c| &c.subscription_id)
            .chain(self.fleets.iter().map(|f| &f.subscription_id));
        for s in all {
            if !subs.iter().any(|x| x.eq_ignore_ascii_case(s)) {
                subs.push(s.clone());
            }
        }
        subs
    }
}

/// Merge `over` into `base`: maps key by key (recursively), anything else replaced.
fn merge(base: &mut Value, over: Value) {
    match (base, over) {
        (Value::Mapping(b), Value::Mapping(o)) => {
            for (k, v) in o {
                match b.get_mut(&k) {
                    Some(slot) => merge(slot, v),
                    None => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (b, o) => *b = o,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TWO: &str = r#"
tenantId: 72f988bf-86f1-41af-91ab-2d7cd011db47
clusterDefaults:
  resourceGroup: rg-dev
  cluster: {name: x, tags: {env: dev}}
  pools: [{name: nodes, mode: System, osType: Linux, count: 2}]
clusters:
  - cluster: {name: aks-dev-1}
  - subscriptionId: 55555555-6666-7777-8888-999999999999
    resourceGroup: rg-prod
    cluster: {name: aks-prod-1, tags: {env: prod, team: web}}
    pools: [{name: nodes, mode: System, osType: Linux, count: 3}]
fleets:
  - {resourceGroup: rg-fleet, name: fleet-1, members: [{name: dev1, cluster: aks-dev-1, group: dev}]}
"#;

    #[test]
    fn cluster_defaults_are_merged_under_every_cluster() {
        let f = FleetScenario::parse(TWO, "test").expect("parses");
        assert_eq!(f.clusters[0].resource_group, "rg-dev");
        assert_eq!(f.clusters[0].cluster.tags["env"], "dev");
        assert_eq!(f.clusters[0].pools[0].count, 2);
        assert_eq!(f.clusters[1].resource_group, "rg-prod");
        assert_eq!(f.clusters[1].cluster.tags["team"], "web");
        assert_eq!(f.clusters[1].cluster.tags["env"], "prod");
        assert_eq!(f.clusters[1].pools[0].count, 3);
        assert!(f.clusters.iter().all(|c| c.tenant_id == f.tenant_id));
        assert_eq!(f.subscriptions().len(), 2);
    }

    #[test]
    fn errors_name_the_cluster_and_field() {
        let bad = TWO.replace("count: 3", "count: many");
        let e = FleetScenario::parse(&bad, "test").unwrap_err().to_string();
        assert!(e.contains("clusters[1].pools[0].count"), "{e}");
    }

    #[test]
    fn a_member_of_no_cluster_is_refused() {
        let bad = TWO.replace("cluster: aks-dev-1, group", "cluster: aks-nowhere, group");
        let e = FleetScenario::parse(&bad, "test").unwrap_err().to_string();
        assert!(
            e.contains("fleets[0].members[0].cluster") && e.contains("aks-nowhere"),
            "{e}"
        );
    }

    #[test]
    fn extra_clusters_are_for_one_cluster_only() {
        let bad = TWO.replace(
            "cluster: {name: aks-dev-1}",
            "cluster: {name: aks-dev-1}\n    extraClusters: 3",
        );
        let e = FleetScenario::parse(&bad, "test").unwrap_err().to_string();
        assert!(e.contains("clusters[0].extraClusters"), "{e}");
    }

    #[test]
    fn two_clusters_of_one_name_are_refused() {
        let bad = TWO.replace("name: aks-prod-1", "name: aks-dev-1");
        let e = FleetScenario::parse(&bad, "test").unwrap_err().to_string();
        assert!(e.contains("clusters[1].cluster.name"), "{e}");
    }

    #[test]
    fn the_fleet_scenario_in_the_repository_has_12_clusters_of_5_nodes() {
        let f = FleetScenario::parse(include_str!("../../scenarios/fleet.yaml"), "sim/scenarios/fleet.yaml")
            .expect("it parses");
        assert_eq!(f.clusters.len(), 12);
        assert!(f.clusters.iter().all(|c| c.pools[0].count == 5));
        assert_eq!(f.subscriptions().len(), 2);
        assert_eq!(f.fleets[0].members.len(), 12);
    }

    #[test]
    fn a_single_cluster_scenario_is_not_a_fleet() {
        assert!(FleetScenario::is_fleet(TWO));
        assert!(!FleetScenario::is_fleet(crate::scenario::DEFAULT_SCENARIO));
    }
}
