//! Where an ARM request inside the emulated subscription goes: resource groups, managed
//! clusters and their agent pools, scale sets and their instances, operations; every miss
//! with ARM's own error.

use super::clusters::subscription_json;
use super::{arm_error, ok, resource_not_found};
use crate::ids::stable_uuid;
use crate::model::NodeSpec;
use crate::Shared;
use axum::http::{Method, StatusCode};
use axum::response::Response;
use serde_json::{json, Value};
use std::sync::Arc;

/// A request inside the emulated subscription.
pub(super) struct Ctx<'a> {
    pub(super) shared: &'a Arc<Shared>,
    pub(super) method: &'a Method,
    pub(super) segs: &'a [String],
    pub(super) query: &'a [(String, String)],
    pub(super) api_version: &'a str,
    pub(super) body: &'a [u8],
}

/// One of the clusters the emulator lists: the scenario's, or an empty (stopped) extra one.
#[derive(Clone, Copy)]
pub(super) enum Cluster {
    Main,
    Extra(u32),
}

impl<'a> Ctx<'a> {
    pub(super) fn get(&self, f: impl FnOnce() -> Response) -> Response {
        self.only(Method::GET, f)
    }

    pub(super) fn only(&self, m: Method, f: impl FnOnce() -> Response) -> Response {
        if *self.method == m {
            f()
        } else {
            arm_error(
                StatusCode::METHOD_NOT_ALLOWED,
                "MethodNotAllowed",
                format!(
                    "The method '{}' is not supported by aks-sim on '/{}' (it emulates {m} only).",
                    self.method,
                    self.segs.join("/")
                ),
            )
        }
    }

    pub(super) fn sub(&self) -> &str {
        &self.shared.scenario.subscription_id
    }

    /// Everything under `/subscriptions/{sub}`; `rest` is lower-cased.
    pub(super) fn in_subscription(&self, rest: &[&str]) -> Response {
        let s = self.shared;
        match rest {
            [] => self.get(|| ok(subscription_json(s))),
            ["resourcegroups"] => self.get(|| {
                let value: Vec<Value> = self.resource_groups().iter().map(|rg| self.rg_json(rg)).collect();
                ok(json!({"value": value}))
            }),
            ["providers", "microsoft.containerservice", "managedclusters"] => {
                self.get(|| self.list_clusters(self.clusters()))
            }
            // Fleet Manager: one cluster has no fleet (a fleet scenario serves them).
            ["providers", "microsoft.containerservice", "fleets"] => self.get(|| ok(json!({"value": []}))),
            ["providers", "microsoft.containerservice", "locations", _, kind @ ("operations" | "operationresults"), _] =>
            {
                let id = &self.segs[7];
                let results = *kind == "operationresults";
                self.get(|| self.operation(id, results))
            }
            ["providers", "microsoft.compute", "locations", _, "operations", _] => {
                let id = &self.segs[7];
                let monitor = self
                    .query
                    .iter()
                    .any(|(k, v)| k.eq_ignore_ascii_case("monitor") && v.eq_ignore_ascii_case("true"));
                self.get(|| self.shared.arm_state.run_commands.operation(id, monitor))
            }
            ["providers", ns, t, ..] => self.unknown_type(ns, t),
            ["resourcegroups", _, rest @ ..] => {
                let rg_name = &self.segs[3];
                let Some(rg) = self
                    .resource_groups()
                    .into_iter()
                    .find(|r| r.eq_ignore_ascii_case(rg_name))
                else {
                    return arm_error(
                        StatusCode::NOT_FOUND,
                        "ResourceGroupNotFound",
                        format!("Resource group '{rg_name}' could not be found."),
                    );
                };
                self.in_resource_group(&rg, rest)
            }
            _ => self.no_route(),
        }
    }

    pub(super) fn in_resource_group(&self, rg: &str, rest: &[&str]) -> Response {
        if *self.method != Method::GET
            && self.shared.faults.nrg_lockdown()
            && self
                .clusters()
                .into_iter()
                .any(|c| self.node_rg(c).eq_ignore_ascii_case(rg))
        {
            return self.denied_by_lockdown(rg, rest);
        }
        match rest {
            [] => self.get(|| ok(self.rg_json(rg))),
            ["providers", "microsoft.containerservice", "managedclusters"] => self.get(|| {
                let here: Vec<Cluster> = self
                    .clusters()
                    .into_iter()
                    .filter(|c| self.cluster_rg(*c).eq_ignore_ascii_case(rg))
                    .collect();
                self.list_clusters(here)
            }),
            ["providers", "microsoft.containerservice", "managedclusters", _, rest @ ..] => {
                let name = &self.segs[7];
                let found = self.clusters().into_iter().find(|c| {
                    self.cluster_rg(*c).eq_ignore_ascii_case(rg) && self.cluster_name(*c).eq_ignore_ascii_case(name)
                });
                match found {
                    Some(c) => self.in_cluster(c, rest),
                    None => resource_not_found("Microsoft.ContainerService/managedClusters", name, rg),
                }
            }
            ["providers", "microsoft.containerservice", "fleets"] => self.get(|| ok(json!({"value": []}))),
            ["providers", "microsoft.containerservice", "fleets", _, ..] => {
                resource_not_found("Microsoft.ContainerService/fleets", &self.segs[7], rg)
            }
            ["providers", "microsoft.compute", "virtualmachinescalesets"] => self.get(|| {
                let value: Vec<Value> = self
                    .vmss_in(rg)
                    .iter()
                    .map(|(vmss, nodes)| self.vmss_json(rg, vmss, nodes))
                    .collect();
                ok(json!({"value": value}))
            }),
            ["providers", "microsoft.compute", "virtualmachinescalesets", _, rest @ ..] => {
                let name = &self.segs[7];
                let Some((vmss, nodes)) = self.vmss_in(rg).into_iter().find(|(v, _)| v.eq_ignore_ascii_case(name))
                else {
                    return resource_not_found("Microsoft.Compute/virtualMachineScaleSets", name, rg);
                };
                match rest {
                    [] => self.get(|| ok(self.vmss_json(rg, &vmss, &nodes))),
                    ["virtualmachines"] => self.get(|| {
                        let value: Vec<Value> = nodes.iter().map(|n| self.vmss_vm_json(rg, &vmss, n)).collect();
                        ok(json!({"value": value}))
                    }),
                    ["virtualmachines", _, rest @ ..] => {
                        let id = &self.segs[9];
                        match nodes.iter().find(|n| n.instance.to_string() == *id) {
                            Some(n) => self.in_instance(rg, &vmss, n, rest),
                            None => arm_error(
                                StatusCode::NOT_FOUND,
                                "NotFound",
                                format!(
                                    "The entity was not found in this Azure location. VM instance '{id}' of '{vmss}'."
                                ),
                            ),
                        }
                    }
                    _ => self.no_route(),
                }
            }
            ["providers", ns, t, ..] => self.unknown_type(ns, t),
            _ => self.no_route(),
        }
    }

    pub(super) fn in_cluster(&self, c: Cluster, rest: &[&str]) -> Response {
        let s = self.shared;
        let pools = self.pools(c);
        let find_pool = |name: &str| {
            pools
                .iter()
                .position(|p| s.scenario.pools[*p].name.eq_ignore_ascii_case(name))
        };
        let pool_missing = |name: &str| {
            arm_error(
                StatusCode::NOT_FOUND,
                "NotFound",
                format!(
                    "Could not find agent pool '{name}' in managed cluster '{}'. Get the list with `az aks nodepool list`.",
                    self.cluster_name(c)
                ),
            )
        };
        match rest {
            [] => self.get(|| ok(self.cluster_json(c))),
            ["upgradeprofiles", "default"] => self.get(|| ok(self.cluster_upgrade_profile(c))),
            ["upgradeprofiles"] => self.get(|| ok(json!({"value": [self.cluster_upgrade_profile(c)]}))),
            ["availableagentpoolversions"] => self.get(|| ok(self.available_versions(c))),
            ["agentpools"] => self.get(|| {
                let value: Vec<Value> = pools.iter().map(|p| self.agent_pool_json(c, *p)).collect();
                ok(json!({"value": value}))
            }),
            ["agentpools", _, rest @ ..] => {
                let name = &self.segs[9];
                let Some(p) = find_pool(name).map(|i| pools[i]) else {
                    return pool_missing(name);
                };
                match rest {
                    [] => self.get(|| ok(self.agent_pool_json(c, p))),
                    ["upgradenodeimageversion"] => self.only(Method::POST, || self.upgrade_node_image(c, p)),
                    ["upgradeprofiles", "default"] => self.get(|| ok(self.upgrade_profile_json(c, p))),
                    ["upgradeprofiles"] => self.get(|| ok(json!({"value": [self.upgrade_profile_json(c, p)]}))),
                    ["machines"] => self.get(|| {
                        let value: Vec<Value> = self.pool_nodes(c, p).iter().map(|n| self.machine_json(c, n)).collect();
                        ok(json!({"value": value}))
                    }),
                    ["machines", _] => {
                        let m = &self.segs[11];
                        match self
                            .pool_nodes(c, p)
                            .into_iter()
                            .find(|n| n.name.eq_ignore_ascii_case(m))
                        {
                            Some(n) => self.get(|| ok(self.machine_json(c, n))),
                            None => arm_error(
                                StatusCode::NOT_FOUND,
                                "NotFound",
                                format!("Could not find machine '{m}' in agent pool '{name}'."),
                            ),
                        }
                    }
                    _ => self.no_route(),
                }
            }
            ["maintenanceconfigurations"] => self.get(|| {
                let value: Vec<Value> = self.maintenance_configs(c);
                ok(json!({"value": value}))
            }),
            ["maintenanceconfigurations", _] => {
                let name = &self.segs[9];
                match self
                    .maintenance_configs(c)
                    .into_iter()
                    .find(|m| m["name"].as_str().is_some_and(|n| n.eq_ignore_ascii_case(name)))
                {
                    Some(m) => self.get(|| ok(m)),
                    None => arm_error(
                        StatusCode::NOT_FOUND,
                        "NotFound",
                        format!(
                            "Maintenance configuration '{name}' was not found in managed cluster '{}'.",
                            self.cluster_name(c)
                        ),
                    ),
                }
            }
            [op @ ("listclusterusercredential" | "listclusteradmincredential")] => {
                let admin = *op == "listclusteradmincredential";
                self.only(Method::POST, || self.credentials(c, admin))
            }
            _ => self.no_route(),
        }
    }

    /// A write under `.../virtualMachines/{i}`: run commands, restart, instance view.
    pub(super) fn in_instance(&self, rg: &str, vmss: &str, n: &NodeSpec, rest: &[&str]) -> Response {
        let rc = &self.shared.arm_state.run_commands;
        let target = super::run_command::Target {
            node: &n.name,
            linux: n.is_linux(),
            vm_id: format!(
                "/subscriptions/{}/resourceGroups/{rg}/providers/Microsoft.Compute/virtualMachineScaleSets/{vmss}/virtualMachines/{}",
                self.sub(),
                n.instance
            ),
        };
        let urls = super::run_command::Urls {
            base: self.shared.endpoints().arm_url.clone(),
            sub: self.sub().to_string(),
            location: self.shared.scenario.cluster.location.clone(),
            api_version: self.api_version.to_string(),
        };
        let expand = self
            .query
            .iter()
            .any(|(k, val)| k.eq_ignore_ascii_case("$expand") && val.eq_ignore_ascii_case("instanceView"));
        match rest {
            [] => self.get(|| ok(self.vmss_vm_json(rg, vmss, n))),
            ["instanceview"] => self.get(|| ok(super::run_command::instance_view(self.shared, &n.name, &n.os_image))),
            ["runcommand"] => self.only(Method::POST, || rc.action(self.shared, &target, self.body, &urls)),
            ["restart"] => self.only(Method::POST, || rc.restart(self.shared, &target, &urls)),
            ["runcommands"] => self.get(|| rc.list_managed(&target, expand)),
            ["runcommands", _] => {
                let name = &self.segs[11];
                match *self.method {
                    Method::PUT => rc.put_managed(self.shared, &target, name, self.body, &urls),
                    Method::GET => rc.get_managed(&target, name, expand),
                    Method::DELETE => rc.delete_managed(self.shared, &target, name),
                    _ => self.only(Method::GET, || self.no_route()),
                }
            }
            _ => self.no_route(),
        }
    }

    /// 403 from the deny assignment of a node resource group lockdown, naming the action.
    pub(super) fn denied_by_lockdown(&self, rg: &str, rest: &[&str]) -> Response {
        let m = self.method.as_str();
        let action = match rest.last().copied() {
            Some("runcommand") => {
                "Microsoft.Compute/virtualMachineScaleSets/virtualMachines/runCommand/action".to_string()
            }
            Some("restart") => "Microsoft.Compute/virtualMachineScaleSets/virtualMachines/restart/action".to_string(),
            _ if rest.contains(&"runcommands") => format!(
                "Microsoft.Compute/virtualMachineScaleSets/virtualMachines/runCommands/{}",
                if m == "DELETE" { "delete" } else { "write" }
            ),
            _ => format!(
                "Microsoft.Resources/resourceGroups/{}",
                if m == "DELETE" { "delete" } else { "write" }
            ),
        };
        let scope = format!(
            "/subscriptions/{}/resourceGroups/{rg}/{}",
            self.sub(),
            self.segs[4..].join("/")
        );
        arm_error(
            StatusCode::FORBIDDEN,
            "AuthorizationFailed",
            format!(
                "The client '{}' with object id '{}' has permission to perform action '{action}' on scope '{scope}'; however, the access is denied because of the deny assignment with name 'AKS Node Resource Group Deny Assignment' and Id '{}' at scope '/subscriptions/{}/resourceGroups/{rg}'.",
                crate::state_dir::az::CLI_USER,
                stable_uuid("operator"),
                stable_uuid(&format!("{rg}/deny")),
                self.sub()
            ),
        )
    }

    pub(super) fn unknown_type(&self, ns: &str, t: &str) -> Response {
        match ns {
            "microsoft.containerservice" | "microsoft.compute" => arm_error(
                StatusCode::NOT_FOUND,
                "InvalidResourceType",
                format!(
                    "The resource type '{t}' could not be found in the namespace '{ns}' for api version '{}'.",
                    self.api_version
                ),
            ),
            _ => arm_error(
                StatusCode::NOT_FOUND,
                "NoRegisteredProviderFound",
                format!("No registered resource provider found for namespace '{ns}' (aks-sim emulates Microsoft.ContainerService and Microsoft.Compute)."),
            ),
        }
    }

    pub(super) fn no_route(&self) -> Response {
        arm_error(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("aks-sim does not emulate '/{}'.", self.segs.join("/")),
        )
    }
}
