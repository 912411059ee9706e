//! Which pods a drain evicts, skips or refuses, decided as kubectl decides it.

use super::super::error::KubeError;
use super::super::list::list_all;
use super::super::snapshot::{pod_node, ClusterSnapshot};
use super::pdb::PdbInfo;
use super::types::{DrainOptions, PodRef, RefuseReason, SkipReason, MIRROR_POD_ANNOTATION};
use crate::retry::with_retry;
use ::kube::api::{Api, ListParams};
use ::kube::Client;
use jiff::Timestamp;
use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use serde::Serialize;
use std::collections::BTreeMap;

/// What draining a node would do, decided as kubectl decides it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DrainPlan {
    pub node: String,
    /// Pods to evict.
    pub evict: Vec<PodRef>,
    /// Pods left alone, and why.
    pub skipped: Vec<(PodRef, SkipReason)>,
    /// Pods that need consent (`delete_emptydir_data`, `force`); the drain refuses while any.
    pub refused: Vec<(PodRef, RefuseReason)>,
    /// Pods evicted with a warning (emptyDir data deleted, unmanaged pod deleted, ...).
    pub warnings: Vec<(PodRef, String)>,
    /// PodDisruptionBudgets covering the pods to evict, as they are now.
    pub pdbs: Vec<PdbInfo>,
    #[serde(skip)]
    pub(super) evict_pods: Vec<Pod>,
    #[serde(skip)]
    pub(super) wait_pods: Vec<Pod>,
    #[serde(skip)]
    pub(super) all_pdbs: Vec<PodDisruptionBudget>,
}

impl DrainPlan {
    /// The PDBs that would refuse an eviction right now.
    pub fn blocking_pdbs(&self) -> Vec<&PdbInfo> {
        self.pdbs.iter().filter(|p| p.disruptions_allowed <= 0).collect()
    }

    /// The PDBs that, as configured, can never allow the drain to finish.
    pub fn never_allowing_pdbs(&self) -> Vec<&PdbInfo> {
        self.pdbs.iter().filter(|p| p.never_allows.is_some()).collect()
    }

    /// The pods this drain evicts whose replacements no other node of the cluster would take,
    /// by the scheduler's filters and by room ([`super::super::schedule::stranded_in`]);
    /// `coming_back`: cordoned nodes that will be uncordoned first.
    pub fn stranded(&self, cluster: &ClusterSnapshot, coming_back: &[String]) -> Vec<super::super::schedule::Stranded> {
        super::super::schedule::stranded_in(cluster, &self.evict_pods, std::slice::from_ref(&self.node), coming_back)
    }
}

/// The node's pods, all namespaces, through the [pager](super::super::list).
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
    now: Timestamp,
    daemonset_exists: impl FnOnce(&str) -> bool,
) -> PodDecision {
    // Pods the drain was told to leave alone (aks-patch's own node-shell pods): their makers
    // delete them.
    if let Some(l) = opts.leave_alone.iter().find(|l| l.matches(pod)) {
        return PodDecision::Skip(SkipReason::LeftAlone { why: l.why.clone() });
    }
    // Already terminating: not evicted again; waited for unless it is stuck.
    if let Some(ts) = &pod.metadata.deletion_timestamp {
        let since = Some(ts.0);
        let waited_for = match (opts.skip_wait_for_delete_timeout, since) {
            (Some(limit), Some(since)) => {
                std::time::Duration::try_from(now.duration_since(since)).map_or(true, |d| d <= limit)
            }
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

/// Whether a drain with `opts` evicts `pod`, decided as [`plan_drain`] decides
/// (DaemonSet and mirror pods stay, pods already terminating are not evicted again, pods
/// the drain would refuse without consent are not evicted), for a plan made from lists
/// (`kube::snapshot`): DaemonSets are not read, a DaemonSet pod's DaemonSet is taken to exist.
pub fn drain_evicts(pod: &Pod, opts: &DrainOptions) -> bool {
    // The time only decides whether a terminating pod is waited for; it is not evicted either way.
    matches!(
        decide(pod, opts, Timestamp::UNIX_EPOCH, |_| true),
        PodDecision::Evict { .. }
    )
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

/// Whether each DaemonSet that runs pods to drain still exists, by `(namespace, name)`:
/// asked once per DaemonSet, however many nodes' pods it runs.
#[derive(Debug, Clone, Default)]
pub struct DaemonSets(BTreeMap<(String, String), bool>);

impl DaemonSets {
    /// Ask the API server about each DaemonSet that controls a running pod of `pods` and
    /// that was not asked about before.
    pub async fn learn<'a>(
        &mut self,
        client: &Client,
        pods: impl IntoIterator<Item = &'a Pod>,
    ) -> Result<(), KubeError> {
        for pod in pods {
            if pod.metadata.deletion_timestamp.is_some() || is_finished(pod) {
                continue;
            }
            if let Some(c) = controller_of(pod).filter(|c| c.kind == "DaemonSet") {
                let ns = pod.metadata.namespace.clone().unwrap_or_default();
                let key = (ns.clone(), c.name.clone());
                if self.0.contains_key(&key) {
                    continue;
                }
                let api: Api<DaemonSet> = Api::namespaced(client.clone(), &ns);
                let what = format!("reading DaemonSet {ns}/{}", c.name);
                let found = with_retry(&what, || api.get_opt(&c.name))
                    .await
                    .map_err(|e| KubeError::api(what, e))?
                    .is_some();
                self.0.insert(key, found);
            }
        }
        Ok(())
    }

    /// Whether DaemonSet `namespace/name` exists; one never asked about is taken to.
    pub fn exists(&self, namespace: &str, name: &str) -> bool {
        self.0
            .get(&(namespace.to_string(), name.to_string()))
            .copied()
            .unwrap_or(true)
    }
}

/// What draining `node` would do, decided over what was read: `pods`, the node's pods;
/// `daemonsets`, whether their DaemonSets exist; `pdbs`, the cluster's PodDisruptionBudgets
/// (`None`: they could not be read, and the plan shows none). Pure: nothing is read or changed.
pub fn plan_of(
    node: &str,
    pods: Vec<Pod>,
    opts: &DrainOptions,
    now: Timestamp,
    daemonsets: &DaemonSets,
    pdbs: Option<&[PodDisruptionBudget]>,
) -> DrainPlan {
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
        match decide(&pod, opts, now, |ds| daemonsets.exists(&ns, ds)) {
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
    if let Some(all) = pdbs {
        plan.cover(all);
    }
    plan
}

impl DrainPlan {
    /// Name the PDBs of `all` that cover the pods to evict (none when there are none to evict).
    fn cover(&mut self, all: &[PodDisruptionBudget]) {
        if self.evict_pods.is_empty() {
            return;
        }
        let mut covered: BTreeMap<String, (&PodDisruptionBudget, Vec<PodRef>)> = BTreeMap::new();
        for pod in &self.evict_pods {
            for p in pdbs_covering(all, pod) {
                covered
                    .entry(pdb_name(p))
                    .or_insert_with(|| (p, vec![]))
                    .1
                    .push(PodRef::of(pod));
            }
        }
        self.pdbs = covered
            .into_values()
            .map(|(p, pods)| PdbInfo::from_pdb(p, pods))
            .collect();
        self.all_pdbs = all.to_vec();
    }
}

/// The cluster's PodDisruptionBudgets, or `None` when they cannot be read. Reading them is
/// not essential to a drain (kubectl does not): without permission a plan just has none.
async fn pdbs_if_readable(client: &Client) -> Option<Vec<PodDisruptionBudget>> {
    match list_pdbs(client).await {
        Ok(all) => Some(all),
        Err(e) => {
            tracing::warn!("cannot read PodDisruptionBudgets, the plan does not show them: {e}");
            None
        }
    }
}

/// What draining `node` would do now: nothing is changed.
pub async fn plan_drain(client: &Client, node: &str, opts: &DrainOptions) -> Result<DrainPlan, KubeError> {
    let pods = list_node_pods(client, node).await?;
    let now = Timestamp::now();
    let mut daemonsets = DaemonSets::default();
    daemonsets.learn(client, &pods).await?;
    let mut plan = plan_of(node, pods, opts, now, &daemonsets, None);
    if !plan.evict_pods.is_empty() {
        if let Some(all) = pdbs_if_readable(client).await {
            plan.cover(&all);
        }
    }
    Ok(plan)
}

/// Where the API server lists a pod: by namespace, then name.
fn listing_order(p: &Pod) -> (Option<&str>, Option<&str>) {
    (p.metadata.namespace.as_deref(), p.metadata.name.as_deref())
}

/// Pods that are finished (Succeeded or Failed): the ones [`ClusterSnapshot`] leaves out.
pub const FINISHED: &str = "status.phase!=Pending,status.phase!=Running,status.phase!=Unknown";

/// The cluster's finished pods, all namespaces, through the [pager](super::super::list).
pub async fn list_finished_pods(client: &Client) -> Result<Vec<Pod>, KubeError> {
    let api: Api<Pod> = Api::all(client.clone());
    let lp = ListParams::default().fields(FINISHED);
    let mut pods = list_all(&api, &lp, "listing the finished pods of all namespaces").await?;
    // A server that ignores the field selector must not make running pods count twice.
    pods.retain(is_finished);
    Ok(pods)
}

/// What draining each of `nodes` would do now, decided over `snapshot` (the cluster's
/// nodes, running pods and PodDisruptionBudgets, read once) rather than node by node: the
/// only other reads are one list of the finished pods (a drain evicts those too) and one
/// read per DaemonSet that runs pods on the nodes. The plans are those [`plan_drain`] makes
/// node by node, in the order of `nodes`. Nothing is changed.
pub async fn plan_drains(
    client: &Client,
    snapshot: &ClusterSnapshot,
    nodes: &[String],
    opts: &DrainOptions,
) -> Result<Vec<DrainPlan>, KubeError> {
    if nodes.is_empty() {
        return Ok(vec![]);
    }
    let finished = list_finished_pods(client).await?;
    let mut by_node: BTreeMap<&str, Vec<Pod>> = nodes.iter().map(|n| (n.as_str(), vec![])).collect();
    for pod in snapshot.pods.iter().chain(&finished) {
        if let Some(pods) = pod_node(pod).and_then(|n| by_node.get_mut(n)) {
            pods.push(pod.clone());
        }
    }
    // In the order the API server lists a node's pods: by namespace, then name.
    by_node
        .values_mut()
        .for_each(|pods| pods.sort_by(|a, b| listing_order(a).cmp(&listing_order(b))));
    let mut daemonsets = DaemonSets::default();
    daemonsets.learn(client, by_node.values().flatten()).await?;
    let now = Timestamp::now();
    Ok(nodes
        .iter()
        .map(|node| {
            let pods = by_node.remove(node.as_str()).unwrap_or_default();
            plan_of(node, pods, opts, now, &daemonsets, Some(&snapshot.pdbs))
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::super::types::LeaveAlone;
    use super::*;
    use k8s_openapi::api::core::v1::{EmptyDirVolumeSource, PodSpec, PodStatus, Volume};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelectorRequirement, ObjectMeta, OwnerReference, Time};
    use std::time::Duration;

    fn pod(name: &str) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("ns".into()),
                uid: Some(format!("uid-{name}")),
                ..Default::default()
            },
            spec: Some(PodSpec {
                node_name: Some("n1".into()),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn owned(mut p: Pod, kind: &str, name: &str) -> Pod {
        p.metadata.owner_references = Some(vec![OwnerReference {
            api_version: "apps/v1".into(),
            kind: kind.into(),
            name: name.into(),
            uid: "x".into(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        }]);
        p
    }

    fn with_empty_dir(mut p: Pod) -> Pod {
        p.spec.as_mut().unwrap().volumes = Some(vec![Volume {
            name: "scratch".into(),
            empty_dir: Some(EmptyDirVolumeSource::default()),
            ..Default::default()
        }]);
        p
    }

    fn phase(mut p: Pod, ph: &str) -> Pod {
        p.status = Some(PodStatus {
            phase: Some(ph.into()),
            ..Default::default()
        });
        p
    }

    fn opts(empty_dir: bool, force: bool) -> DrainOptions {
        DrainOptions {
            delete_emptydir_data: empty_dir,
            force,
            ..Default::default()
        }
    }

    fn d(p: &Pod, o: &DrainOptions, ds_exists: bool) -> PodDecision {
        decide(p, o, Timestamp::now(), |_| ds_exists)
    }

    /// kubectl pkg/drain `TestDeletePods`/`TestDrain` filter cases, reduced to decisions.
    #[test]
    fn replicated_pods_are_evicted() {
        let p = owned(pod("rs"), "ReplicaSet", "rs-1");
        assert_eq!(d(&p, &opts(false, false), true), PodDecision::Evict { warning: None });
    }

    #[test]
    fn pods_the_drain_is_told_to_leave_alone_are_skipped_with_the_reason_given() {
        // A bare pod: refused without --force, unless it carries every label to leave alone.
        let mut o = opts(false, false);
        o.leave_alone = vec![LeaveAlone {
            labels: vec![
                ("app.kubernetes.io/managed-by".into(), Some("aks-patch".into())),
                ("aks-patch.io/run".into(), None),
            ],
            why: "aks-patch's own node-shell pod (deleted by aks-patch)".into(),
        }];
        let mut p = pod("aks-patch-shell-x1y2z");
        assert!(matches!(d(&p, &o, true), PodDecision::Refuse(_)));
        p.metadata.labels = Some(
            [
                ("app.kubernetes.io/managed-by".to_string(), "aks-patch".to_string()),
                ("aks-patch.io/run".to_string(), "20261202T010000Z-00ff".to_string()),
            ]
            .into(),
        );
        let skipped = d(&p, &o, true);
        assert_eq!(
            skipped,
            PodDecision::Skip(SkipReason::LeftAlone {
                why: "aks-patch's own node-shell pod (deleted by aks-patch)".into()
            })
        );
        // Told nothing, the drain treats it as any bare pod.
        assert!(matches!(d(&p, &opts(false, false), true), PodDecision::Refuse(_)));
        // One label of the set alone is not enough.
        p.metadata.labels.as_mut().unwrap().remove("aks-patch.io/run");
        assert!(matches!(d(&p, &o, true), PodDecision::Refuse(_)));
        // A label with another value is not enough either.
        p.metadata
            .labels
            .as_mut()
            .unwrap()
            .insert("aks-patch.io/run".into(), "x".into());
        p.metadata
            .labels
            .as_mut()
            .unwrap()
            .insert("app.kubernetes.io/managed-by".into(), "helm".into());
        assert!(matches!(d(&p, &o, true), PodDecision::Refuse(_)));
    }

    #[test]
    fn daemonset_pods_are_skipped_and_orphans_need_force() {
        let p = owned(pod("ds"), "DaemonSet", "kube-proxy");
        assert_eq!(
            d(&p, &opts(false, false), true),
            PodDecision::Skip(SkipReason::DaemonSet {
                daemonset: "ns/kube-proxy".into()
            })
        );
        assert_eq!(
            d(&p, &opts(false, false), false),
            PodDecision::Refuse(RefuseReason::DaemonSetMissing {
                daemonset: "ns/kube-proxy".into()
            })
        );
        assert!(matches!(
            d(&p, &opts(false, true), false),
            PodDecision::Evict { warning: Some(_) }
        ));
        // A finished DaemonSet pod is evicted without asking about its DaemonSet.
        let done = phase(p, "Succeeded");
        assert_eq!(
            decide(&done, &opts(false, false), Timestamp::now(), |_| panic!("asked")),
            PodDecision::Evict { warning: None }
        );
    }

    #[test]
    fn mirror_pods_are_skipped_even_when_finished_or_bare() {
        let mut p = pod("kube-apiserver-n1");
        p.metadata.annotations = Some([(MIRROR_POD_ANNOTATION.to_string(), "abc".to_string())].into());
        assert_eq!(
            d(&p, &opts(false, false), true),
            PodDecision::Skip(SkipReason::MirrorPod)
        );
        let p = phase(p, "Failed");
        assert_eq!(
            d(&p, &opts(false, false), true),
            PodDecision::Skip(SkipReason::MirrorPod)
        );
    }

    #[test]
    fn empty_dir_needs_consent_unless_finished() {
        let p = with_empty_dir(owned(pod("cache"), "ReplicaSet", "cache-1"));
        assert_eq!(
            d(&p, &opts(false, false), true),
            PodDecision::Refuse(RefuseReason::EmptyDir)
        );
        assert!(matches!(
            d(&p, &opts(true, false), true),
            PodDecision::Evict { warning: Some(_) }
        ));
        let done = phase(p, "Succeeded");
        assert_eq!(
            d(&done, &opts(false, false), true),
            PodDecision::Evict { warning: None }
        );
    }

    #[test]
    fn bare_pods_need_force_unless_finished() {
        let p = pod("debug");
        assert_eq!(
            d(&p, &opts(false, false), true),
            PodDecision::Refuse(RefuseReason::NoController)
        );
        assert!(matches!(
            d(&p, &opts(false, true), true),
            PodDecision::Evict { warning: Some(_) }
        ));
        let done = phase(p, "Failed");
        assert_eq!(
            d(&done, &opts(false, false), true),
            PodDecision::Evict { warning: None }
        );
    }

    #[test]
    fn filters_run_in_kubectl_order() {
        // A bare pod with emptyDir: the emptyDir filter speaks first.
        let p = with_empty_dir(pod("both"));
        assert_eq!(
            d(&p, &opts(false, false), true),
            PodDecision::Refuse(RefuseReason::EmptyDir)
        );
        assert_eq!(
            d(&p, &opts(true, false), true),
            PodDecision::Refuse(RefuseReason::NoController)
        );
        assert!(matches!(d(&p, &opts(true, true), true), PodDecision::Evict { .. }));
        // An owner reference that is not the controller does not count.
        let mut p = pod("not-controlled");
        p.metadata.owner_references = Some(vec![OwnerReference {
            kind: "ReplicaSet".into(),
            name: "x".into(),
            controller: Some(false),
            ..Default::default()
        }]);
        assert_eq!(
            d(&p, &opts(false, false), true),
            PodDecision::Refuse(RefuseReason::NoController)
        );
    }

    #[test]
    fn terminating_pods_are_waited_for_not_evicted() {
        let mut p = pod("going");
        let since = Timestamp::now() - jiff::SignedDuration::from_secs(90);
        p.metadata.deletion_timestamp = Some(Time(since));
        assert!(matches!(
            d(&p, &opts(false, false), true),
            PodDecision::Skip(SkipReason::Terminating { waited_for: true, .. })
        ));
        let o = DrainOptions {
            skip_wait_for_delete_timeout: Some(Duration::from_secs(60)),
            ..Default::default()
        };
        assert!(matches!(
            d(&p, &o, true),
            PodDecision::Skip(SkipReason::Terminating { waited_for: false, .. })
        ));
    }

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn label_selectors() {
        let l = labels(&[("app", "storefront"), ("tier", "web")]);
        assert!(!selector_matches(None, &l), "a null selector selects nothing");
        assert!(
            selector_matches(Some(&LabelSelector::default()), &l),
            "empty selects all"
        );
        let ml = |pairs: &[(&str, &str)]| LabelSelector {
            match_labels: Some(labels(pairs)),
            match_expressions: None,
        };
        assert!(selector_matches(Some(&ml(&[("app", "storefront")])), &l));
        assert!(!selector_matches(Some(&ml(&[("app", "checkout")])), &l));
        let expr = |key: &str, op: &str, values: &[&str]| LabelSelector {
            match_labels: None,
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: key.into(),
                operator: op.into(),
                values: Some(values.iter().map(|s| s.to_string()).collect()),
            }]),
        };
        assert!(selector_matches(Some(&expr("tier", "In", &["web", "api"])), &l));
        assert!(!selector_matches(Some(&expr("tier", "In", &["db"])), &l));
        assert!(selector_matches(Some(&expr("tier", "NotIn", &["db"])), &l));
        assert!(selector_matches(Some(&expr("zone", "NotIn", &["a"])), &l));
        assert!(selector_matches(Some(&expr("app", "Exists", &[])), &l));
        assert!(!selector_matches(Some(&expr("app", "DoesNotExist", &[])), &l));
        assert!(!selector_matches(Some(&expr("app", "Bogus", &[])), &l));
        let no_values = LabelSelector {
            match_labels: None,
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "tier".into(),
                operator: "In".into(),
                values: None,
            }]),
        };
        assert!(!selector_matches(Some(&no_values), &l), "invalid: selects nothing");
        let both = LabelSelector {
            match_labels: Some(labels(&[("app", "storefront")])),
            ..expr("tier", "NotIn", &["web"])
        };
        assert!(
            !selector_matches(Some(&both), &l),
            "labels and expressions must all match"
        );
    }

    /// A pod of `node` as the API server lists it, controlled by `owner` (`kind/name`) if any.
    fn listed(ns: &str, name: &str, node: &str, owner: Option<(&str, &str)>, app: &str) -> serde_json::Value {
        let owners: Vec<serde_json::Value> = owner
            .map(|(kind, n)| serde_json::json!({"apiVersion": "apps/v1", "kind": kind, "name": n, "uid": "o", "controller": true}))
            .into_iter()
            .collect();
        serde_json::json!({
            "metadata": {"name": name, "namespace": ns, "uid": format!("uid-{name}"),
                         "labels": {"app": app}, "ownerReferences": owners},
            "spec": {"nodeName": node, "containers": [{"name": "c", "image": "i"}]},
            "status": {"phase": "Running"},
        })
    }

    fn list_of(kind: &str, items: Vec<serde_json::Value>) -> serde_json::Value {
        serde_json::json!({"kind": kind, "apiVersion": "v1", "metadata": {"resourceVersion": "1"}, "items": items})
    }

    /// An API server (wiremock) with four nodes, their pods of several kinds, one PDB and one
    /// DaemonSet still there (`kube-proxy`) and one gone (`old-agent`).
    async fn cluster() -> (wiremock::MockServer, Client) {
        use super::super::super::snapshot::NOT_FINISHED;
        use wiremock::matchers::{method, path, query_param};
        use wiremock::{Mock, MockServer, ResponseTemplate};
        let mut cache = listed("shop", "cache-1", "n2", Some(("ReplicaSet", "cache-7f")), "cache");
        cache["spec"]["volumes"] = serde_json::json!([{"name": "scratch", "emptyDir": {}}]);
        let mut finished = listed("batch", "report-1", "n1", None, "report");
        finished["status"]["phase"] = serde_json::json!("Succeeded");
        let mut going = listed("shop", "web-0", "n3", Some(("ReplicaSet", "web-5d")), "web");
        going["metadata"]["deletionTimestamp"] = serde_json::json!("2026-01-01T00:00:00Z");
        let pods = vec![
            listed("shop", "web-1", "n1", Some(("ReplicaSet", "web-5d")), "web"),
            listed(
                "kube-system",
                "kube-proxy-a",
                "n1",
                Some(("DaemonSet", "kube-proxy")),
                "kube-proxy",
            ),
            listed("default", "debug", "n1", None, "debug"),
            finished,
            listed("shop", "web-2", "n2", Some(("ReplicaSet", "web-5d")), "web"),
            cache,
            listed(
                "kube-system",
                "old-agent-b",
                "n2",
                Some(("DaemonSet", "old-agent")),
                "old-agent",
            ),
            listed(
                "kube-system",
                "kube-proxy-c",
                "n3",
                Some(("DaemonSet", "kube-proxy")),
                "kube-proxy",
            ),
            going,
            listed("shop", "web-3", "n4", Some(("ReplicaSet", "web-5d")), "web"),
            listed("db", "pg-0", "n4", Some(("StatefulSet", "pg")), "pg"),
        ];
        // As the API server lists them (etcd's key order): by namespace, then name.
        let mut pods = pods;
        pods.sort_by_key(|p| {
            (
                p["metadata"]["namespace"].to_string(),
                p["metadata"]["name"].to_string(),
            )
        });
        let server = MockServer::start().await;
        for node in ["n1", "n2", "n3", "n4"] {
            let of_node: Vec<_> = pods.iter().filter(|p| p["spec"]["nodeName"] == node).cloned().collect();
            Mock::given(method("GET"))
                .and(path("/api/v1/pods"))
                .and(query_param("fieldSelector", format!("spec.nodeName={node}")))
                .respond_with(ResponseTemplate::new(200).set_body_json(list_of("PodList", of_node)))
                .mount(&server)
                .await;
        }
        let (finished, running): (Vec<_>, Vec<_>) = pods.into_iter().partition(|p| p["status"]["phase"] == "Succeeded");
        for (selector, pods) in [(NOT_FINISHED, running), (FINISHED, finished)] {
            Mock::given(method("GET"))
                .and(path("/api/v1/pods"))
                .and(query_param("fieldSelector", selector))
                .respond_with(ResponseTemplate::new(200).set_body_json(list_of("PodList", pods)))
                .mount(&server)
                .await;
        }
        let nodes: Vec<_> = ["n1", "n2", "n3", "n4"]
            .iter()
            .map(|n| serde_json::json!({"metadata": {"name": n}}))
            .collect();
        Mock::given(method("GET"))
            .and(path("/api/v1/nodes"))
            .respond_with(ResponseTemplate::new(200).set_body_json(list_of("NodeList", nodes)))
            .mount(&server)
            .await;
        let pdb = serde_json::json!({
            "metadata": {"name": "web-pdb", "namespace": "shop"},
            "spec": {"maxUnavailable": 1, "selector": {"matchLabels": {"app": "web"}}},
            "status": {"disruptionsAllowed": 1, "currentHealthy": 3, "desiredHealthy": 2, "expectedPods": 3, "observedGeneration": 1},
        });
        Mock::given(method("GET"))
            .and(path("/apis/policy/v1/poddisruptionbudgets"))
            .respond_with(ResponseTemplate::new(200).set_body_json(list_of("PodDisruptionBudgetList", vec![pdb])))
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(path("/apis/apps/v1/namespaces/kube-system/daemonsets/kube-proxy"))
            .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
                "apiVersion": "apps/v1", "kind": "DaemonSet",
                "metadata": {"name": "kube-proxy", "namespace": "kube-system"},
            })))
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(path("/apis/apps/v1/namespaces/kube-system/daemonsets/old-agent"))
            .respond_with(ResponseTemplate::new(404).set_body_json(serde_json::json!({
                "kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404,
                "message": "daemonsets.apps \"old-agent\" not found",
            })))
            .mount(&server)
            .await;
        let config = ::kube::Config::new(server.uri().parse().unwrap());
        let client = super::super::super::client::client_from_config(config).unwrap();
        (server, client)
    }

    /// What a plan says, its unserialized parts too.
    fn seen(p: &DrainPlan) -> serde_json::Value {
        let names = |pods: &[Pod]| -> Vec<String> { pods.iter().map(|p| PodRef::of(p).to_string()).collect() };
        serde_json::json!({
            "plan": p,
            "evictPods": names(&p.evict_pods),
            "waitPods": names(&p.wait_pods),
            "allPdbs": p.all_pdbs.iter().map(pdb_name).collect::<Vec<_>>(),
        })
    }

    #[tokio::test]
    async fn drains_planned_from_the_cluster_lists_are_the_drains_planned_node_by_node() {
        let (server, client) = cluster().await;
        let nodes: Vec<String> = ["n1", "n2", "n3"].map(String::from).to_vec();
        let o = opts(false, false);
        let snapshot = super::super::super::snapshot::read(&client).await.unwrap();
        let from_lists = plan_drains(&client, &snapshot, &nodes, &o).await.unwrap();
        let requests = server.received_requests().await.unwrap();
        let pod_lists = requests.iter().filter(|r| r.url.path() == "/api/v1/pods").count();
        let ds_reads = requests
            .iter()
            .filter(|r| r.url.path().contains("/daemonsets/"))
            .count();
        assert_eq!(
            (pod_lists, ds_reads),
            (2, 2),
            "the running and the finished pods listed once, each DaemonSet asked about once"
        );

        let mut by_node = vec![];
        for n in &nodes {
            by_node.push(plan_drain(&client, n, &o).await.unwrap());
        }
        assert_eq!(
            from_lists.iter().map(seen).collect::<Vec<_>>(),
            by_node.iter().map(seen).collect::<Vec<_>>()
        );
        // And what they say is the drain kubectl would do.
        let [n1, n2, n3] = &from_lists[..] else {
            panic!("{from_lists:?}")
        };
        let texts = |v: &[PodRef]| v.iter().map(PodRef::to_string).collect::<Vec<_>>();
        assert_eq!(texts(&n1.evict), ["batch/report-1", "shop/web-1"]);
        assert_eq!(
            n1.refused,
            [(
                PodRef::of(&serde_json::from_value(listed("default", "debug", "n1", None, "debug")).unwrap()),
                RefuseReason::NoController
            )]
        );
        assert_eq!(
            n1.pdbs
                .iter()
                .map(|p| (p.name.as_str(), texts(&p.pods)))
                .collect::<Vec<_>>(),
            [("web-pdb", vec!["shop/web-1".to_string()])]
        );
        assert_eq!(texts(&n2.evict), ["shop/web-2"]);
        let refused: Vec<_> = n2.refused.iter().map(|(p, r)| (p.to_string(), r.flag())).collect();
        assert_eq!(
            refused,
            [
                ("kube-system/old-agent-b".to_string(), "--force"),
                ("shop/cache-1".to_string(), "--delete-emptydir-data")
            ]
        );
        assert!(n3.evict.is_empty() && n3.pdbs.is_empty() && n3.all_pdbs.is_empty());
        assert_eq!(
            texts(&n3.wait_pods.iter().map(PodRef::of).collect::<Vec<_>>()),
            ["shop/web-0"]
        );
    }
}
