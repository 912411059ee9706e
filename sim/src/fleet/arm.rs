//! The fleet's one ARM endpoint. A request about one cluster (its managed cluster and
//! everything under it, its node resource group's scale sets and run commands, its
//! long-running operations) goes to that cluster's own ARM handler, unchanged; Entra ID goes
//! to the first cluster's (the tokens are the fleet's). What spans clusters is answered
//! here: the subscriptions, their resource groups, the managed cluster lists (paged with
//! `nextLink`).

use super::scenario::FleetScenario;
use crate::arm::{self as cluster_arm, arm_error, ok, ArmRequest, Quota};
use crate::Shared;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::Response;
use serde_json::{json, Value};
use std::sync::Arc;
use tower::ServiceExt;

pub(crate) struct Front {
    pub(crate) scenario: FleetScenario,
    /// Each cluster's state and its own ARM router, in scenario order.
    pub(crate) clusters: Vec<(Arc<Shared>, axum::Router)>,
    quota: Quota,
    /// Resource Graph's per-user quota: when the current window began, and the queries in it.
    pub(crate) graph_quota: std::sync::Mutex<(std::time::Instant, u32)>,
}

impl Front {
    pub(crate) fn new(scenario: &FleetScenario, clusters: Vec<Arc<Shared>>) -> Arc<Front> {
        Arc::new(Front {
            scenario: scenario.clone(),
            clusters: clusters
                .into_iter()
                .map(|s| {
                    let r = cluster_arm::router(s.clone());
                    (s, r)
                })
                .collect(),
            quota: Quota::default(),
            graph_quota: std::sync::Mutex::new((std::time::Instant::now(), 0)),
        })
    }

    pub(crate) fn lead(&self) -> &Arc<Shared> {
        &self.clusters[0].0
    }

    /// The clusters of subscription `sub`.
    fn in_sub<'a>(&'a self, sub: &'a str) -> impl Iterator<Item = &'a (Arc<Shared>, axum::Router)> + 'a {
        self.clusters
            .iter()
            .filter(move |(s, _)| s.scenario.subscription_id.eq_ignore_ascii_case(sub))
    }

    fn knows_sub(&self, sub: &str) -> bool {
        self.scenario
            .subscriptions()
            .iter()
            .any(|s| s.eq_ignore_ascii_case(sub))
    }

    /// The resource groups of subscription `sub`: the clusters' own, their node resource
    /// groups, the fleets'; by name, deduplicated.
    fn resource_groups(&self, sub: &str, api_version: &str) -> Vec<(String, Value)> {
        let mut out: Vec<(String, Value)> = vec![];
        let mut add = |name: String, v: Value| {
            if !out.iter().any(|(n, _)| n.eq_ignore_ascii_case(&name)) {
                out.push((name, v));
            }
        };
        for (s, _) in self.in_sub(sub) {
            for (name, v) in cluster_arm::resource_groups_json(s, api_version) {
                add(name, v);
            }
        }
        for f in self
            .scenario
            .fleets
            .iter()
            .filter(|f| f.subscription_id.eq_ignore_ascii_case(sub))
        {
            add(
                f.resource_group.clone(),
                json!({
                    "id": format!("/subscriptions/{}/resourceGroups/{}", f.subscription_id, f.resource_group),
                    "name": f.resource_group,
                    "type": "Microsoft.Resources/resourceGroups",
                    "location": f.location,
                    "properties": {"provisioningState": "Succeeded"},
                }),
            );
        }
        out
    }

    /// The cluster a request is about, when it is about one: its index.
    fn owner(&self, l: &[&str]) -> Option<usize> {
        let is = |i: usize, sub: &str, f: &dyn Fn(&Shared) -> bool| {
            let s = &self.clusters[i].0;
            s.scenario.subscription_id.eq_ignore_ascii_case(sub) && f(s)
        };
        let find = |sub: &str, f: &dyn Fn(&Shared) -> bool| (0..self.clusters.len()).find(|i| is(*i, sub, f));
        match l {
            [_, "oauth2", ..] | [_, "v2.0", ".well-known", ..] => Some(0),
            ["subscriptions", sub, "resourcegroups", rg, "providers", "microsoft.containerservice", "managedclusters", name, ..] => {
                find(sub, &|s| {
                    s.scenario.resource_group.eq_ignore_ascii_case(rg)
                        && s.scenario.cluster.name.eq_ignore_ascii_case(name)
                })
            }
            ["subscriptions", sub, "resourcegroups", rg, ..] => find(sub, &|s| {
                crate::model::node_resource_group(&s.scenario).eq_ignore_ascii_case(rg)
            }),
            _ => None,
        }
    }
}

pub(crate) fn router(front: Arc<Front>) -> axum::Router {
    axum::Router::new().fallback(handle).with_state(front)
}

async fn handle(
    State(front): State<Arc<Front>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let req = ArmRequest::parse(method.clone(), &uri, headers.clone(), body.clone());
    let l = req.lower_refs();
    let forward = |i: usize| {
        let mut r = axum::http::Request::builder().method(method.clone()).uri(uri.clone());
        if let Some(h) = r.headers_mut() {
            *h = headers.clone();
        }
        let r = r
            .body(axum::body::Body::from(body.clone()))
            .expect("a request rebuilt from a valid one");
        front.clusters[i].1.clone().oneshot(r)
    };
    if let Some(i) = front.owner(&l) {
        return forward(i).await.unwrap_or_else(|e| match e {});
    }
    // A long-running operation: the cluster of the subscription that knows it.
    if let ["subscriptions", sub, "providers", _, "locations", _, "operations" | "operationresults", _] = l.as_slice() {
        let mine: Vec<usize> = (0..front.clusters.len())
            .filter(|i| front.clusters[*i].0.scenario.subscription_id.eq_ignore_ascii_case(sub))
            .collect();
        let mut last = None;
        for i in mine {
            let r = forward(i).await.unwrap_or_else(|e| match e {});
            if r.status() != StatusCode::NOT_FOUND {
                return r;
            }
            last = Some(r);
        }
        if let Some(r) = last {
            return r;
        }
    }
    let resp = local(&front, &req);
    cluster_arm::finish(resp, &req, &front.lead().scenario.cluster.location, Some(&front.quota))
}

/// What the fleet's ARM answers itself: checks as every ARM call (token, api-version),
/// then the lists that span clusters and the misses.
fn local(front: &Front, req: &ArmRequest) -> Response {
    let lead = front.lead();
    if let Some(r) = cluster_arm::check_token(lead, &req.headers) {
        return r;
    }
    let Some(api_version) = req.api_version() else {
        return cluster_arm::missing_api_version();
    };
    let l = req.lower_refs();
    if let Some(r) = cluster_arm::check_api_version(lead, &l, api_version) {
        return r;
    }
    let get = |f: &dyn Fn() -> Response| {
        if req.method == Method::GET {
            f()
        } else {
            arm_error(
                StatusCode::METHOD_NOT_ALLOWED,
                "MethodNotAllowed",
                format!(
                    "The method '{}' is not supported by aks-sim on '/{}' (it emulates GET only).",
                    req.method,
                    req.segs.join("/")
                ),
            )
        }
    };
    match l.as_slice() {
        ["providers", "microsoft.resourcegraph", "resources"] => super::resource_graph::resources(front, req),
        ["subscriptions"] => get(&|| {
            let subs = front.scenario.subscriptions();
            let value: Vec<Value> = subs.iter().map(|s| subscription_json(front, s)).collect();
            ok(json!({"value": value, "count": {"type": "Total", "value": subs.len()}}))
        }),
        ["subscriptions", sub, rest @ ..] => {
            if !front.knows_sub(sub) {
                return arm_error(
                    StatusCode::NOT_FOUND,
                    "SubscriptionNotFound",
                    format!("The subscription '{}' could not be found.", req.segs[1]),
                );
            }
            in_subscription(front, req, sub, rest, api_version, &get)
        }
        _ => arm_error(
            StatusCode::NOT_FOUND,
            "NoRegisteredProviderFound",
            format!(
                "No registered resource provider found for path '/{}'.",
                req.segs.join("/")
            ),
        ),
    }
}

fn in_subscription(
    front: &Front,
    req: &ArmRequest,
    sub: &str,
    rest: &[&str],
    api_version: &str,
    get: &dyn Fn(&dyn Fn() -> Response) -> Response,
) -> Response {
    let sub_name = &req.segs[1];
    let clusters_where = |f: &dyn Fn(&Shared) -> bool| -> Vec<Value> {
        front
            .in_sub(sub)
            .filter(|(s, _)| f(s))
            .map(|(s, _)| cluster_arm::managed_cluster_json(s, api_version))
            .collect()
    };
    match rest {
        [] => get(&|| ok(subscription_json(front, sub_name))),
        ["resourcegroups"] => get(&|| {
            let value: Vec<Value> = front
                .resource_groups(sub, api_version)
                .into_iter()
                .map(|(_, v)| v)
                .collect();
            ok(json!({"value": value}))
        }),
        ["providers", "microsoft.containerservice", "managedclusters"] => {
            get(&|| page(front, req, clusters_where(&|_| true)))
        }
        ["providers", "microsoft.containerservice", "fleets"] => {
            get(&|| super::fleet_manager::list_fleets(front, req, sub, None))
        }
        ["providers", ns, t, ..] => unknown_type(ns, t, api_version),
        ["resourcegroups", rg, rest @ ..] => {
            let Some((_, rg_json)) = front
                .resource_groups(sub, api_version)
                .into_iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(rg))
            else {
                return arm_error(
                    StatusCode::NOT_FOUND,
                    "ResourceGroupNotFound",
                    format!("Resource group '{}' could not be found.", req.segs[3]),
                );
            };
            match rest {
                [] => get(&|| ok(rg_json.clone())),
                ["providers", "microsoft.containerservice", "managedclusters"] => get(&|| {
                    page(
                        front,
                        req,
                        clusters_where(&|s| s.scenario.resource_group.eq_ignore_ascii_case(rg)),
                    )
                }),
                ["providers", "microsoft.containerservice", "fleets"] => {
                    get(&|| super::fleet_manager::list_fleets(front, req, sub, Some(rg)))
                }
                ["providers", "microsoft.containerservice", "fleets", _, rest @ ..] => {
                    get(&|| super::fleet_manager::in_fleet(front, req, sub, rg, rest))
                }
                ["providers", "microsoft.containerservice", "managedclusters", _, ..] => {
                    cluster_arm::resource_not_found(
                        "Microsoft.ContainerService/managedClusters",
                        &req.segs[7],
                        &req.segs[3],
                    )
                }
                ["providers", ns, t, ..] => unknown_type(ns, t, api_version),
                _ => no_route(req),
            }
        }
        _ => no_route(req),
    }
}

/// One page of `all` (ARM's `{value, nextLink}`), from the request's `$skipToken`.
pub(super) fn page(front: &Front, req: &ArmRequest, all: Vec<Value>) -> Response {
    cluster_arm::list_page(
        &req.query,
        all,
        front.scenario.arm_page_size,
        &front.lead().endpoints().arm_url,
        &req.segs,
        req.api_version().unwrap_or_default(),
    )
}

/// `/subscriptions/{id}`; the first subscription is `aks-sim`, the next `aks-sim-2`, ...
fn subscription_json(front: &Front, id: &str) -> Value {
    let subs = front.scenario.subscriptions();
    let n = subs.iter().position(|s| s.eq_ignore_ascii_case(id)).unwrap_or(0);
    let name = match n {
        0 => crate::scenario::SUBSCRIPTION_NAME.to_string(),
        n => format!("{}-{}", crate::scenario::SUBSCRIPTION_NAME, n + 1),
    };
    let id = subs.get(n).map(String::as_str).unwrap_or(id);
    json!({
        "id": format!("/subscriptions/{id}"),
        "authorizationSource": "RoleBased",
        "managedByTenants": [],
        "subscriptionId": id,
        "tenantId": front.scenario.tenant_id,
        "displayName": name,
        "state": "Enabled",
        "subscriptionPolicies": {"locationPlacementId": "Public_2014-09-01", "quotaId": "PayAsYouGo_2014-09-01", "spendingLimit": "Off"},
    })
}

fn unknown_type(ns: &str, t: &str, api_version: &str) -> Response {
    match ns {
        "microsoft.containerservice" | "microsoft.compute" => arm_error(
            StatusCode::NOT_FOUND,
            "InvalidResourceType",
            format!("The resource type '{t}' could not be found in the namespace '{ns}' for api version '{api_version}'."),
        ),
        _ => arm_error(
            StatusCode::NOT_FOUND,
            "NoRegisteredProviderFound",
            format!("No registered resource provider found for namespace '{ns}' (aks-sim emulates Microsoft.ContainerService, Microsoft.Compute and Microsoft.ResourceGraph)."),
        ),
    }
}

pub(super) fn no_route(req: &ArmRequest) -> Response {
    arm_error(
        StatusCode::NOT_FOUND,
        "NotFound",
        format!("aks-sim does not emulate '/{}'.", req.segs.join("/")),
    )
}
