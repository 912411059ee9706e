//! Which pods a drain evicts, skips or refuses, decided as kubectl decides it.

use super::*;

// ---------------------------------------------------------------------------------------
// Plan

/// The node's pods, all namespaces, through the [pager](super::list).
pub async fn list_node_pods(client: &Client, node: &str) -> Result<Vec<Pod>, KubeError> {
    let api: Api<Pod> = Api::all(client.clone());
    let lp = ListParams::default().fields(&format!("spec.nodeName={node}"));
    let mut pods = list_all(&api, &lp, &format!("listing the pods of node {node}")).await?;
    // A server that ignores the field selector must not make us evict other nodes' pods.
    pods.retain(|p| p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(node));
    Ok(pods)
}

pub(super) async fn list_pdbs(client: &Client) -> Result<Vec<PodDisruptionBudget>, KubeError> {
    let api: Api<PodDisruptionBudget> = Api::all(client.clone());
    list_all(&api, &ListParams::default(), "listing PodDisruptionBudgets").await
}

/// The decision for one pod, as kubectl's filters make it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PodDecision {
    Evict { warning: Option<String> },
    Skip(SkipReason),
    Refuse(RefuseReason),
}

pub(super) fn is_finished(pod: &Pod) -> bool {
    matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded") | Some("Failed")
    )
}

pub(super) fn controller_of(pod: &Pod) -> Option<&k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference> {
    pod.metadata
        .owner_references
        .as_ref()?
        .iter()
        .find(|o| o.controller == Some(true))
}

pub(super) fn has_empty_dir(pod: &Pod) -> bool {
    pod.spec
        .as_ref()
        .and_then(|s| s.volumes.as_ref())
        .map(|v| v.iter().any(|v| v.empty_dir.is_some()))
        .unwrap_or(false)
}

/// kubectl's filters for one pod. `daemonset_exists` answers whether the pod's DaemonSet
/// is still there (asked only for running DaemonSet pods).
pub(crate) fn decide(
    pod: &Pod,
    opts: &DrainOptions,
    now: DateTime<Utc>,
    daemonset_exists: impl FnOnce(&str) -> bool,
) -> PodDecision {
    // aks-patch's own node-shell pod (--via kube) is never evicted: aks-patch deletes it.
    if crate::transport::kube::is_node_shell(pod) {
        return PodDecision::Skip(SkipReason::NodeShell);
    }
    // Already terminating: not evicted again; waited for unless it is stuck.
    if let Some(ts) = &pod.metadata.deletion_timestamp {
        let since = super::super::time::time(ts);
        let waited_for = match (opts.skip_wait_for_delete_timeout, since) {
            (Some(limit), Some(since)) => (now - since).to_std().map(|d| d <= limit).unwrap_or(true),
            _ => true,
        };
        return PodDecision::Skip(SkipReason::Terminating { since, waited_for });
    }
    let finished = is_finished(pod);
    let controller = controller_of(pod);
    let mut warning = None;
    // DaemonSet filter.
    if let Some(c) = controller.filter(|c| c.kind == "DaemonSet") {
        if !finished {
            let ds = format!("{}/{}", pod.metadata.namespace.as_deref().unwrap_or(""), c.name);
            if daemonset_exists(&c.name) {
                return PodDecision::Skip(SkipReason::DaemonSet { daemonset: ds });
            }
            if !opts.force {
                return PodDecision::Refuse(RefuseReason::DaemonSetMissing { daemonset: ds });
            }
            warning = Some(format!("evicting orphaned pod of deleted DaemonSet {ds}"));
        }
    }
    // Mirror pod filter.
    if pod
        .metadata
        .annotations
        .as_ref()
        .is_some_and(|a| a.contains_key(MIRROR_POD_ANNOTATION))
    {
        return PodDecision::Skip(SkipReason::MirrorPod);
    }
    // Local storage filter.
    if has_empty_dir(pod) && !finished {
        if !opts.delete_emptydir_data {
            return PodDecision::Refuse(RefuseReason::EmptyDir);
        }
        warning = Some("deleting its emptyDir data".into());
    }
    // Unreplicated filter.
    if !finished && controller.is_none() {
        if !opts.force {
            return PodDecision::Refuse(RefuseReason::NoController);
        }
        warning = Some("deleting a pod with no controller: it will not be recreated".into());
    }
    PodDecision::Evict { warning }
}

/// Whether a PodDisruptionBudget's selector (policy/v1 semantics: a null selector selects
/// nothing, an empty one every pod of the namespace) matches these labels.
/// A selector the API server would reject (an unknown operator, `In` without values)
/// selects nothing.
pub fn selector_matches(selector: Option<&LabelSelector>, labels: &BTreeMap<String, String>) -> bool {
    use ::kube::core::{Selector, SelectorExt};
    selector
        .and_then(|s| Selector::try_from(s.clone()).ok())
        .is_some_and(|s| s.matches(labels))
}

pub(super) fn pdbs_covering<'a>(pdbs: &'a [PodDisruptionBudget], pod: &Pod) -> Vec<&'a PodDisruptionBudget> {
    let empty = BTreeMap::new();
    let labels = pod.metadata.labels.as_ref().unwrap_or(&empty);
    pdbs.iter()
        .filter(|p| p.metadata.namespace == pod.metadata.namespace)
        .filter(|p| selector_matches(p.spec.as_ref().and_then(|s| s.selector.as_ref()), labels))
        .collect()
}

pub(super) fn pdb_name(p: &PodDisruptionBudget) -> String {
    format!(
        "{}/{}",
        p.metadata.namespace.as_deref().unwrap_or(""),
        p.metadata.name.as_deref().unwrap_or("")
    )
}

/// What draining `node` would do now: nothing is changed.
pub async fn plan_drain(client: &Client, node: &str, opts: &DrainOptions) -> Result<DrainPlan, KubeError> {
    let pods = list_node_pods(client, node).await?;
    let now = Utc::now();
    // DaemonSets asked about, by namespace/name.
    let mut ds_cache: BTreeMap<(String, String), bool> = BTreeMap::new();
    for pod in &pods {
        if pod.metadata.deletion_timestamp.is_some() || is_finished(pod) {
            continue;
        }
        if let Some(c) = controller_of(pod).filter(|c| c.kind == "DaemonSet") {
            let ns = pod.metadata.namespace.clone().unwrap_or_default();
            let key = (ns.clone(), c.name.clone());
            if ds_cache.contains_key(&key) {
                continue;
            }
            let api: Api<DaemonSet> = Api::namespaced(client.clone(), &ns);
            let what = format!("reading DaemonSet {ns}/{}", c.name);
            let found = with_retry(&what, || api.get_opt(&c.name))
                .await
                .map_err(|e| KubeError::api(what, e))?
                .is_some();
            ds_cache.insert(key, found);
        }
    }
    let mut plan = DrainPlan {
        node: node.to_string(),
        evict: vec![],
        skipped: vec![],
        refused: vec![],
        warnings: vec![],
        pdbs: vec![],
        evict_pods: vec![],
        wait_pods: vec![],
        all_pdbs: vec![],
    };
    for pod in pods {
        let ns = pod.metadata.namespace.clone().unwrap_or_default();
        let r = PodRef::of(&pod);
        match decide(&pod, opts, now, |ds| {
            ds_cache.get(&(ns.clone(), ds.to_string())).copied().unwrap_or(true)
        }) {
            PodDecision::Evict { warning } => {
                if let Some(w) = warning {
                    plan.warnings.push((r.clone(), w));
                }
                plan.evict.push(r);
                plan.evict_pods.push(pod);
            }
            PodDecision::Skip(reason) => {
                if matches!(reason, SkipReason::Terminating { waited_for: true, .. }) {
                    plan.wait_pods.push(pod);
                }
                plan.skipped.push((r, reason));
            }
            PodDecision::Refuse(reason) => plan.refused.push((r, reason)),
        }
    }
    // PDBs covering the pods to evict. Reading them is not essential to a drain (kubectl
    // does not): without permission the plan just has none.
    if !plan.evict_pods.is_empty() {
        match list_pdbs(client).await {
            Ok(all) => {
                let mut covered: BTreeMap<String, (PodDisruptionBudget, Vec<PodRef>)> = BTreeMap::new();
                for pod in &plan.evict_pods {
                    for p in pdbs_covering(&all, pod) {
                        covered
                            .entry(pdb_name(p))
                            .or_insert_with(|| (p.clone(), vec![]))
                            .1
                            .push(PodRef::of(pod));
                    }
                }
                plan.pdbs = covered
                    .into_values()
                    .map(|(p, pods)| PdbInfo::from_pdb(&p, pods))
                    .collect();
                plan.all_pdbs = all;
            }
            Err(e) => tracing::warn!("cannot read PodDisruptionBudgets, the plan does not show them: {e}"),
        }
    }
    Ok(plan)
}
