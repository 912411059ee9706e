//! The api-versions ARM accepts for each resource type aks-sim serves: the one table.
//!
//! Where the lists come from (Azure/azure-rest-api-specs, checked December 2026):
//! - `Microsoft.ContainerService` (`managedClusters` and everything under it, and the
//!   `locations/operations|operationresults` status endpoints): the folders of
//!   `specification/containerservice/resource-manager/Microsoft.ContainerService/aks/stable/`
//!   and `.../aks/preview/`. ARM has retired the previews older than `2022-01-02-preview`
//!   (its own `NoRegisteredProviderFound` messages list none), so they are not here.
//! - `Microsoft.Compute` (`virtualMachineScaleSets`, their `virtualMachines`, `runCommand`,
//!   `restart`, `instanceView`, and `locations/operations`): the ComputeRP folders of
//!   `specification/compute/resource-manager/Microsoft.Compute/ComputeRP/stable/` (since
//!   2025 `.../Microsoft.Compute/Compute/stable/`). Managed run commands
//!   (`virtualMachines/runCommands`) exist from `2020-06-01`.
//! - ARM's own resources (`/subscriptions`, `/subscriptions/{id}`, resource groups): the list
//!   ARM names in its `InvalidApiVersionParameter` answers (the `Microsoft.Resources` specs
//!   `specification/resources/resource-manager/Microsoft.Resources/stable/`), newest first as
//!   ARM prints it.
//!
//! ARM checks the version against the registered resource type: nested types of AKS
//! (`managedClusters/agentPools`, `.../maintenanceConfigurations`, the credential actions)
//! are checked as `managedClusters`, as ARM's messages name them.

/// `Microsoft.ContainerService/fleets` (AKS Fleet Manager), oldest first: the `Versions` enum
/// of `specification/containerservice/resource-manager/Microsoft.ContainerService/fleet/main.tsp`.
pub const FLEET: &[&str] = &[
    "2022-09-02-preview",
    "2023-03-15-preview",
    "2023-06-15-preview",
    "2023-08-15-preview",
    "2023-10-15",
    "2024-02-02-preview",
    "2024-04-01",
    "2024-05-02-preview",
    "2025-03-01",
    "2025-04-01-preview",
    "2025-08-01-preview",
    "2026-02-01-preview",
    "2026-03-02-preview",
];

/// `fleets/updateStrategies` exist from this version on.
pub const FLEET_UPDATE_STRATEGIES_SINCE: &str = "2023-08-15-preview";

/// `Microsoft.ResourceGraph/resources` (Azure Resource Graph queries), oldest first: the
/// folders of `specification/resourcegraph/resource-manager/Microsoft.ResourceGraph/`.
pub const RESOURCE_GRAPH: &[&str] = &[
    "2018-09-01-preview",
    "2019-04-01",
    "2021-03-01",
    "2022-10-01",
    "2024-04-01",
];

/// `Microsoft.ContainerService/managedClusters`, oldest first (as ARM lists them).
pub const CONTAINER_SERVICE: &[&str] = &[
    "2017-08-31",
    "2018-03-31",
    "2019-02-01",
    "2019-04-01",
    "2019-06-01",
    "2019-08-01",
    "2019-10-01",
    "2019-11-01",
    "2020-01-01",
    "2020-02-01",
    "2020-03-01",
    "2020-04-01",
    "2020-06-01",
    "2020-07-01",
    "2020-09-01",
    "2020-11-01",
    "2020-12-01",
    "2021-02-01",
    "2021-03-01",
    "2021-05-01",
    "2021-07-01",
    "2021-08-01",
    "2021-09-01",
    "2021-10-01",
    "2022-01-01",
    "2022-01-02-preview",
    "2022-02-01",
    "2022-03-01",
    "2022-03-02-preview",
    "2022-04-01",
    "2022-04-02-preview",
    "2022-05-02-preview",
    "2022-06-01",
    "2022-06-02-preview",
    "2022-07-01",
    "2022-07-02-preview",
    "2022-08-01",
    "2022-08-02-preview",
    "2022-08-03-preview",
    "2022-09-01",
    "2022-09-02-preview",
    "2022-10-02-preview",
    "2022-11-01",
    "2022-11-02-preview",
    "2023-01-01",
    "2023-01-02-preview",
    "2023-02-01",
    "2023-02-02-preview",
    "2023-03-01",
    "2023-03-02-preview",
    "2023-04-01",
    "2023-04-02-preview",
    "2023-05-01",
    "2023-05-02-preview",
    "2023-06-01",
    "2023-06-02-preview",
    "2023-07-01",
    "2023-07-02-preview",
    "2023-08-01",
    "2023-08-02-preview",
    "2023-09-01",
    "2023-09-02-preview",
    "2023-10-01",
    "2023-10-02-preview",
    "2023-11-01",
    "2023-11-02-preview",
    "2024-01-01",
    "2024-01-02-preview",
    "2024-02-01",
    "2024-02-02-preview",
    "2024-03-02-preview",
    "2024-04-02-preview",
    "2024-05-01",
    "2024-05-02-preview",
    "2024-06-02-preview",
    "2024-07-01",
    "2024-07-02-preview",
    "2024-08-01",
    "2024-09-01",
    "2024-09-02-preview",
    "2024-10-01",
    "2024-10-02-preview",
    "2025-01-01",
    "2025-01-02-preview",
    "2025-02-01",
    "2025-02-02-preview",
    "2025-03-01",
    "2025-03-02-preview",
    "2025-04-01",
    "2025-04-02-preview",
    "2025-05-01",
    "2025-05-02-preview",
    "2025-06-01",
    "2025-06-02-preview",
    "2025-07-01",
    "2025-07-02-preview",
    "2025-08-01",
    "2025-08-02-preview",
    "2025-09-01",
    "2025-09-02-preview",
    "2025-10-01",
    "2025-10-02-preview",
    "2026-01-01",
    "2026-01-02-preview",
    "2026-02-01",
    "2026-02-02-preview",
    "2026-03-01",
    "2026-03-02-preview",
    "2026-04-01",
    "2026-04-02-preview",
    "2026-05-01",
    "2026-05-02-preview",
    "2026-06-01",
    "2026-06-02-preview",
    "2026-07-01",
    "2026-07-02-preview",
    "2026-08-01",
    "2026-08-02-preview",
    "2026-10-01",
    "2026-10-02-preview",
];

/// `Microsoft.Compute` scale sets and their VMs (ComputeRP), oldest first.
pub const COMPUTE: &[&str] = &[
    "2015-06-15",
    "2016-03-30",
    "2016-04-30-preview",
    "2017-03-30",
    "2017-12-01",
    "2018-04-01",
    "2018-06-01",
    "2018-10-01",
    "2019-03-01",
    "2019-07-01",
    "2019-12-01",
    "2020-06-01",
    "2020-12-01",
    "2021-03-01",
    "2021-04-01",
    "2021-07-01",
    "2021-11-01",
    "2022-03-01",
    "2022-08-01",
    "2022-11-01",
    "2023-03-01",
    "2023-07-01",
    "2023-09-01",
    "2024-03-01",
    "2024-07-01",
    "2024-11-01",
    "2025-04-01",
    "2025-11-01",
    "2026-03-01",
    "2026-04-01",
];

/// The first Compute api-version with managed run commands (`virtualMachines/runCommands`).
pub const COMPUTE_RUN_COMMANDS_SINCE: &str = "2020-06-01";

/// ARM's own (`Microsoft.Resources`: subscriptions, resource groups), newest first as ARM
/// prints them in `InvalidApiVersionParameter`.
pub const RESOURCES: &[&str] = &[
    "2024-08-01",
    "2024-06-01-preview",
    "2024-03-01",
    "2023-07-01",
    "2023-07-01-preview",
    "2023-03-01-preview",
    "2022-12-01",
    "2022-11-01-preview",
    "2022-09-01",
    "2022-06-01",
    "2022-05-01",
    "2022-03-01-preview",
    "2022-01-01",
    "2021-04-01",
    "2021-01-01",
    "2020-10-01",
    "2020-09-01",
    "2020-08-01",
    "2020-07-01",
    "2020-06-01",
    "2020-05-01",
    "2020-01-01",
    "2019-11-01",
    "2019-10-01",
    "2019-09-01",
    "2019-08-01",
    "2019-07-01",
    "2019-06-01",
    "2019-05-10",
    "2019-05-01",
    "2019-03-01",
    "2018-11-01",
    "2018-09-01",
    "2018-08-01",
    "2018-07-01",
    "2018-06-01",
    "2018-05-01",
    "2018-02-01",
    "2018-01-01",
    "2017-12-01",
    "2017-08-01",
    "2017-06-01",
    "2017-05-10",
    "2017-05-01",
    "2017-03-01",
    "2016-09-01",
    "2016-07-01",
    "2016-06-01",
    "2016-02-01",
    "2015-11-01",
    "2015-01-01",
    "2014-04-01-preview",
    "2014-04-01",
    "2014-01-01",
    "2013-03-01",
    "2014-02-26",
    "2014-04",
];

/// What ARM checks a request's api-version against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiType {
    /// ARM's own resources: a miss is `InvalidApiVersionParameter`.
    Resources,
    /// A provider's registered resource type (namespace, type as ARM names it, versions).
    Provider {
        namespace: &'static str,
        rtype: &'static str,
        versions: Versions,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Versions {
    ContainerService,
    Compute,
    ComputeRunCommands,
    Fleet,
    FleetUpdateStrategies,
    ResourceGraph,
}

impl Versions {
    /// The accepted versions, oldest first.
    pub fn list(self) -> Vec<&'static str> {
        match self {
            Versions::ContainerService => CONTAINER_SERVICE.to_vec(),
            Versions::Compute => COMPUTE.to_vec(),
            Versions::ComputeRunCommands => COMPUTE
                .iter()
                .copied()
                .filter(|v| *v >= COMPUTE_RUN_COMMANDS_SINCE)
                .collect(),
            Versions::Fleet => FLEET.to_vec(),
            Versions::FleetUpdateStrategies => FLEET
                .iter()
                .copied()
                .filter(|v| *v >= FLEET_UPDATE_STRATEGIES_SINCE)
                .collect(),
            Versions::ResourceGraph => RESOURCE_GRAPH.to_vec(),
        }
    }
}

impl ApiType {
    /// The resource type a request path (lower-cased segments) is checked as; `None` for
    /// paths aks-sim does not route (they get their own 404 later).
    pub fn of(path: &[&str]) -> Option<ApiType> {
        let provider = |namespace, rtype, versions| {
            Some(ApiType::Provider {
                namespace,
                rtype,
                versions,
            })
        };
        let providers = path.iter().position(|s| *s == "providers");
        let Some(p) = providers else {
            // /subscriptions, /subscriptions/{id}, /subscriptions/{id}/resourceGroups[/{rg}]
            return match path.first() {
                Some(&"subscriptions") => Some(ApiType::Resources),
                _ => None,
            };
        };
        let rest = &path[p + 1..];
        match rest {
            ["microsoft.containerservice", "locations", _, "operations", ..] => provider(
                "Microsoft.ContainerService",
                "locations/operations",
                Versions::ContainerService,
            ),
            ["microsoft.containerservice", "locations", _, "operationresults", ..] => provider(
                "Microsoft.ContainerService",
                "locations/operationresults",
                Versions::ContainerService,
            ),
            ["microsoft.containerservice", "fleets", _, "updatestrategies", ..] => provider(
                "Microsoft.ContainerService",
                "fleets/updateStrategies",
                Versions::FleetUpdateStrategies,
            ),
            ["microsoft.containerservice", "fleets", _, "members", ..] => {
                provider("Microsoft.ContainerService", "fleets/members", Versions::Fleet)
            }
            ["microsoft.containerservice", "fleets", ..] => {
                provider("Microsoft.ContainerService", "fleets", Versions::Fleet)
            }
            ["microsoft.resourcegraph", "resources"] => {
                provider("Microsoft.ResourceGraph", "resources", Versions::ResourceGraph)
            }
            ["microsoft.containerservice", "managedclusters", ..] => provider(
                "Microsoft.ContainerService",
                "managedClusters",
                Versions::ContainerService,
            ),
            ["microsoft.compute", "locations", _, "operations", ..] => {
                provider("Microsoft.Compute", "locations/operations", Versions::Compute)
            }
            ["microsoft.compute", "virtualmachinescalesets", _, "virtualmachines", _, "runcommands", ..] => provider(
                "Microsoft.Compute",
                "virtualMachineScaleSets/virtualMachines/runCommands",
                Versions::ComputeRunCommands,
            ),
            ["microsoft.compute", "virtualmachinescalesets", _, "virtualmachines", ..] => provider(
                "Microsoft.Compute",
                "virtualMachineScaleSets/virtualMachines",
                Versions::Compute,
            ),
            ["microsoft.compute", "virtualmachinescalesets", ..] => {
                provider("Microsoft.Compute", "virtualMachineScaleSets", Versions::Compute)
            }
            _ => None,
        }
    }

    /// Whether ARM accepts `version` for this type (ARM compares case-insensitively).
    pub fn accepts(self, version: &str) -> bool {
        let list = match self {
            ApiType::Resources => RESOURCES.to_vec(),
            ApiType::Provider { versions, .. } => versions.list(),
        };
        list.iter().any(|v| v.eq_ignore_ascii_case(version))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_are_sorted_and_unique() {
        for list in [CONTAINER_SERVICE, COMPUTE, FLEET, RESOURCE_GRAPH] {
            let mut sorted = list.to_vec();
            sorted.sort();
            sorted.dedup();
            assert_eq!(sorted, list.to_vec());
        }
    }

    #[test]
    fn nested_aks_types_are_checked_as_managed_clusters() {
        let t = ApiType::of(&[
            "subscriptions",
            "s",
            "resourcegroups",
            "rg",
            "providers",
            "microsoft.containerservice",
            "managedclusters",
            "c",
            "agentpools",
            "p",
        ]);
        assert!(
            matches!(
                t,
                Some(ApiType::Provider {
                    rtype: "managedClusters",
                    ..
                })
            ),
            "{t:?}"
        );
        let t = t.unwrap();
        assert!(t.accepts("2025-10-01"));
        assert!(t.accepts("2025-10-02-PREVIEW"));
        assert!(!t.accepts("2024-11-01"), "a Compute version, not an AKS one");
        assert!(!t.accepts("2021-11-01-preview"), "retired preview");
    }

    #[test]
    fn managed_run_commands_start_in_2020() {
        let t = ApiType::of(&[
            "subscriptions",
            "s",
            "resourcegroups",
            "rg",
            "providers",
            "microsoft.compute",
            "virtualmachinescalesets",
            "v",
            "virtualmachines",
            "0",
            "runcommands",
        ])
        .unwrap();
        assert!(t.accepts("2024-11-01"));
        assert!(!t.accepts("2019-12-01"));
        assert_eq!(ApiType::of(&["subscriptions"]), Some(ApiType::Resources));
        assert!(ApiType::Resources.accepts("2022-12-01"));
    }
}
