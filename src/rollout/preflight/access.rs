//! The permissions a rollout will use, asked before any change: a missing one would stop it
//! half-way.

use super::super::refusal::{Obstacle, Refusal};
use super::drains::NodeCheck;
use crate::kube::access::Need;
use crate::kube::lock::{LEASE_NAME, LEASE_NAMESPACE};
use std::collections::BTreeSet;

/// What a rollout of the nodes in `checks` asks the API server to do beyond the reads the
/// pre-flight has already made: cordon and mark nodes, evict their pods, hold the Lease,
/// check the evicted workloads' owners.
pub fn rollout_needs(checks: &[NodeCheck]) -> Vec<Need> {
    let mut needs = vec![
        Need::cluster("patch", "", "nodes"),
        Need::cluster("watch", "", "nodes"),
        // The plan, the gate and the health checks read the PodDisruptionBudgets: without
        // them a run would go on blind to the budgets it must wait for.
        Need::cluster("list", "policy", "poddisruptionbudgets"),
        Need::namespaced("create", "coordination.k8s.io", "leases", LEASE_NAMESPACE),
        Need::namespaced("update", "coordination.k8s.io", "leases", LEASE_NAMESPACE).named(LEASE_NAME),
        Need::namespaced("delete", "coordination.k8s.io", "leases", LEASE_NAMESPACE).named(LEASE_NAME),
    ];
    let namespaces: BTreeSet<&str> = checks
        .iter()
        .flat_map(|c| c.evict.iter())
        .map(|p| p.namespace.as_str())
        .collect();
    for ns in namespaces {
        needs.push(Need::namespaced("create", "", "pods", ns).subresource("eviction"));
        needs.push(Need::namespaced("get", "apps", "replicasets", ns));
        needs.push(Need::namespaced("get", "apps", "statefulsets", ns));
    }
    needs
}

/// The refusal of a rollout whose identity was `refused` these permissions, naming each
/// and the roles that would grant them.
pub fn permissions(refused: &[(Need, String)]) -> Option<Refusal> {
    if refused.is_empty() {
        return None;
    }
    let list: Vec<String> = refused.iter().map(|(n, _)| n.to_string()).collect();
    Some(
        Refusal::new(
            Obstacle::Permissions,
            format!(
                "the identity aks-patch signs in as may not {} (asked with SelfSubjectAccessReview): the rollout would stop there",
                list.join(", ")
            ),
        )
        .hint("grant the permissions: on an Entra ID cluster with Azure RBAC, the Azure role `Azure Kubernetes Service RBAC Cluster Admin` on the cluster; otherwise bind the identity to the ClusterRole in docs/rbac.yaml (`kubectl apply -f docs/rbac.yaml`, then a ClusterRoleBinding)"),
    )
}
