//! The rollout plan: which nodes, in which order, and which are skipped and why.
//! Order: pool by pool as the cluster lists its pools, nodes by name within a pool.

use serde::Serialize;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum PlanError {
    #[error("no node named {0} in the cluster")]
    UnknownNode(String),
    #[error("no node pool named {0} in the cluster (pools: {1})")]
    UnknownPool(String, String),
}

/// What the plan needs to know about a node.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub name: String,
    pub pool: String,
    /// `linux` or `windows` (label kubernetes.io/os).
    pub os_type: String,
    /// Ubuntu, AzureLinux, Windows2022... (label kubernetes.azure.com/os-sku or the pool's osSKU).
    pub os_sku: Option<String>,
    pub ready: bool,
    /// The pool has securityProfile.sshAccess = Disabled.
    pub ssh_disabled: bool,
}

#[derive(Debug, Clone, Default)]
pub struct Filters {
    pub nodepools: Vec<String>,
    pub nodes: Vec<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PlanEntry {
    pub name: String,
    pub pool: String,
    /// `patch` or `skip`.
    pub action: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The node no longer exists (a resumed run's node, deleted since).
    #[serde(skip)]
    pub gone: bool,
}

impl PlanEntry {
    pub fn patch(&self) -> bool {
        self.action == "patch"
    }
}

/// Why a node cannot be patched in place, if it cannot.
pub fn unpatchable_reason(c: &Candidate, cluster_hint: &str) -> Option<String> {
    if c.os_type.eq_ignore_ascii_case("windows") {
        return Some(format!(
            "Windows: not patched in place; use az aks nodepool upgrade {cluster_hint} -n {} --node-image-only",
            c.pool
        ));
    }
    if c.ssh_disabled {
        return Some(format!(
            "SSH is disabled on pool {} (securityProfile.sshAccess=Disabled): reach it through the Kubernetes API with --via kube, or use a node image upgrade",
            c.pool
        ));
    }
    None
}

/// Inside a pod: the node the pod runs on is not patched by this run (its drain would evict
/// the run itself, mid-way); a later run, whose pod runs on another node, patches it.
pub fn leave_own_node(entries: &mut [PlanEntry], node: &str, pod: &str) {
    for e in entries.iter_mut().filter(|e| e.name == node && e.patch()) {
        e.action = "skip".into();
        e.reason = Some(format!(
            "aks-patch runs on this node (pod {pod}): draining it would evict the run itself; a later run, from a pod on another node, patches it"
        ));
    }
}

/// Order and filter the nodes. `pool_order` is the cluster's pool order (ARM's, or first
/// appearance); nodes of unknown pools come last.
pub fn plan(
    candidates: &[Candidate],
    pool_order: &[String],
    filters: &Filters,
    cluster_hint: &str,
) -> Result<Vec<PlanEntry>, PlanError> {
    for n in &filters.nodes {
        if !candidates.iter().any(|c| &c.name == n) {
            return Err(PlanError::UnknownNode(n.clone()));
        }
    }
    let mut pools: Vec<String> = pool_order.to_vec();
    for c in candidates {
        if !pools.contains(&c.pool) {
            pools.push(c.pool.clone());
        }
    }
    for p in &filters.nodepools {
        if !pools.contains(p) {
            return Err(PlanError::UnknownPool(p.clone(), pools.join(", ")));
        }
    }
    let mut chosen: Vec<&Candidate> = candidates
        .iter()
        .filter(|c| filters.nodepools.is_empty() || filters.nodepools.contains(&c.pool))
        .filter(|c| filters.nodes.is_empty() || filters.nodes.contains(&c.name))
        .collect();
    chosen.sort_by_key(|c| {
        (
            pools.iter().position(|p| p == &c.pool).unwrap_or(usize::MAX),
            c.name.clone(),
        )
    });
    Ok(chosen
        .into_iter()
        .map(|c| {
            let reason = unpatchable_reason(c, cluster_hint).or_else(|| {
                (!c.ready).then(|| {
                    "node is not Ready: aks-patch does not take out a node that is already unhealthy; fix it first"
                        .to_string()
                })
            });
            PlanEntry {
                name: c.name.clone(),
                pool: c.pool.clone(),
                action: if reason.is_some() { "skip" } else { "patch" }.to_string(),
                reason,
                gone: false,
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cand(name: &str, pool: &str, os: &str) -> Candidate {
        Candidate {
            name: name.into(),
            pool: pool.into(),
            os_type: os.into(),
            os_sku: None,
            ready: true,
            ssh_disabled: false,
        }
    }

    #[test]
    fn the_pods_own_node_is_left_to_a_later_run_and_an_already_skipped_one_keeps_its_reason() {
        let c = vec![
            cand("a", "user", "linux"),
            cand("b", "user", "linux"),
            cand("w", "win", "windows"),
        ];
        let mut p = plan(&c, &[], &Filters::default(), "").unwrap();
        leave_own_node(&mut p, "b", "aks-patch-123-xyz");
        assert!(p[0].patch());
        assert!(!p[1].patch());
        assert!(p[1].reason.as_deref().unwrap().contains("(pod aks-patch-123-xyz)"));
        let windows = p[2].reason.clone();
        leave_own_node(&mut p, "w", "aks-patch-123-xyz");
        assert_eq!(p[2].reason, windows, "a Windows node keeps its own reason");
    }

    #[test]
    fn pool_order_then_name_and_windows_skipped_with_the_command() {
        let c = vec![
            cand("u-2", "user", "linux"),
            cand("w-1", "win", "windows"),
            cand("s-1", "system", "linux"),
            cand("u-1", "user", "linux"),
        ];
        let p = plan(
            &c,
            &["system".into(), "user".into(), "win".into()],
            &Filters::default(),
            "-g rg --cluster-name c",
        )
        .unwrap();
        let names: Vec<_> = p.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["s-1", "u-1", "u-2", "w-1"]);
        assert!(!p[3].patch());
        assert!(p[3]
            .reason
            .as_ref()
            .unwrap()
            .contains("az aks nodepool upgrade -g rg --cluster-name c -n win --node-image-only"));
    }

    #[test]
    fn azure_linux_nodes_are_patched() {
        let mut a = cand("a-1", "azl", "linux");
        a.os_sku = Some("AzureLinux".into());
        let p = plan(&[a, cand("u-1", "user", "linux")], &[], &Filters::default(), "").unwrap();
        assert!(p.iter().all(PlanEntry::patch), "{p:?}");
    }

    #[test]
    fn filters_and_their_errors() {
        let c = vec![cand("u-1", "user", "linux"), cand("s-1", "system", "linux")];
        let f = Filters {
            nodepools: vec!["user".into()],
            ..Default::default()
        };
        assert_eq!(plan(&c, &[], &f, "").unwrap().len(), 1);
        let f = Filters {
            nodes: vec!["nope".into()],
            ..Default::default()
        };
        assert_eq!(
            plan(&c, &[], &f, "").unwrap_err(),
            PlanError::UnknownNode("nope".into())
        );
        let f = Filters {
            nodepools: vec!["gpu".into()],
            ..Default::default()
        };
        assert!(matches!(plan(&c, &[], &f, "").unwrap_err(), PlanError::UnknownPool(..)));
    }
}
