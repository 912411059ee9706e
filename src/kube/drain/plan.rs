//! Which pods a drain evicts, skips or refuses, decided as kubectl decides it.

use super::super::error::KubeError;
use super::super::list::list_all;
use super::pdb::PdbInfo;
use super::types::{DrainOptions, PodRef, RefuseReason, SkipReason, MIRROR_POD_ANNOTATION};
use crate::retry::with_retry;
use ::kube::api::{Api, ListParams};
use ::kube::Client;
use jiff::Timestamp;
use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{Node, Pod};
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

    /// The pods this drain evicts whose replacements no other node of `nodes` would take
    /// ([`super::super::schedule`]); `coming_back`: cordoned nodes that will be uncordoned first.
    pub fn stranded(&self, nodes: &[Node], coming_back: &[String]) -> Vec<super::super::schedule::Stranded> {
        super::super::schedule::stranded(&self.evict_pods, nodes, &self.node, coming_back)
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

/// What draining `node` would do now: nothing is changed.
pub async fn plan_drain(client: &Client, node: &str, opts: &DrainOptions) -> Result<DrainPlan, KubeError> {
    let pods = list_node_pods(client, node).await?;
    let now = Timestamp::now();
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
}
