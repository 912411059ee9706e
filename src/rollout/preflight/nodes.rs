//! The nodes a run would patch, judged before any change: a selection that chose none, a
//! node that cannot be probed, Azure Linux nodes the options cannot patch.

use super::super::journal::{RunOptions, RunRecord, Selection, UpgradeMode};
use super::super::plan::PlanEntry;
use super::super::probed::ProbedNode;
use super::super::refusal::{Obstacle, Refusal};
use super::super::resume;
use crate::kube::NodeInfo;
use crate::node::tdnf::TDNF_NO_SECURITY;
use crate::node::PackageManager;
use crate::transport::{ProbeError, Via};

/// `--nodes`/`--nodepool`/`--selector` chose nothing that can be patched: refused, saying
/// why node by node (a resumed run's plan is its record's, and is never refused here).
pub fn nothing_selected(entries: &[PlanEntry], selection: &Selection, resuming: bool) -> Option<Refusal> {
    let selected = !selection.nodes.is_empty() || !selection.nodepools.is_empty() || selection.selector.is_some();
    if resuming || !selected || entries.iter().any(PlanEntry::patch) {
        return None;
    }
    if entries.is_empty() {
        return Some(
            Refusal::new(
                Obstacle::Options,
                format!(
                    "the selection matches no node{}",
                    selection
                        .selector
                        .as_deref()
                        .map(|s| format!(" (selector `{s}`)"))
                        .unwrap_or_default()
                ),
            )
            .hint("check the selection with `kubectl get nodes -l ...` or `aks-patch report`"),
        );
    }
    let why: Vec<String> = entries
        .iter()
        .map(|e| format!("{}: {}", e.name, e.reason.as_deref().unwrap_or("skipped")))
        .collect();
    Some(
        Refusal::new(
            Obstacle::Options,
            format!("nothing in the selection can be patched: {}", why.join("; ")),
        )
        .hint("select Linux nodes that are Ready (see `aks-patch scan`)"),
    )
}

/// The first node to patch whose probe failed, and why. Not one that is down (not Ready:
/// the health gate's verdict to give, as no node is taken out beside it), nor one an
/// interrupted run left rebooting (the resume waits for it).
pub fn unreachable<'a>(
    probes: &'a [ProbedNode],
    entries: &[PlanEntry],
    rows: &[NodeInfo],
    resumed: Option<&RunRecord>,
) -> Option<(&'a str, &'a ProbeError)> {
    let down = |name: &str| rows.iter().any(|r| r.name == name && !r.is_ready());
    let left_out = resume::left_out(resumed);
    probes
        .iter()
        .filter_map(|p| p.error().map(|e| (p.name.as_str(), e)))
        .find(|(name, _)| {
            !left_out.contains(name) && !down(name) && entries.iter().any(|e| e.name == *name && e.patch())
        })
}

/// The refusal of a run with a node it cannot probe (`why`), reached `via`.
pub fn cannot_probe(node: &str, why: &ProbeError, via: Via) -> Refusal {
    Refusal::new(
        Obstacle::Node,
        format!("cannot probe node {node} before the rollout: {why}"),
    )
    .hint(match via {
        Via::Ssh => "fix SSH to that node (or reach it through the Kubernetes API with --via kube), or leave it out with --nodes / --nodepool / --selector, then run again",
        Via::Kube => "check the node-shell pod's namespace, image and the node (kubectl describe pod), or leave the node out with --nodes / --nodepool / --selector, then run again",
        Via::RunCommand => "check the node's VM (az vmss get-instance-view, az vmss run-command list) and that no other run command holds it, or leave the node out with --nodes / --nodepool / --selector, then run again",
    })
}

/// Azure Linux nodes among `planned` that these options cannot patch: Azure Linux 2.0 (out
/// of support) without `--allow-azure-linux-2`, or `--upgrade-mode security`, which tdnf
/// cannot do, without `--azure-linux-security-as-all`.
pub fn azure_linux(planned: &[&ProbedNode], options: &RunOptions) -> Option<Refusal> {
    let names = |f: &dyn Fn(&ProbedNode) -> bool| -> Vec<&str> {
        planned.iter().filter(|p| f(p)).map(|p| p.name.as_str()).collect()
    };
    let out_of_support = names(&|p| p.probe().is_some_and(|p| p.end_of_support.is_some()));
    if !out_of_support.is_empty() && !options.allow_azure_linux_2 {
        return Some(
            Refusal::new(
                Obstacle::Options,
                format!(
                    "Azure Linux 2.0 (CBL-Mariner) is out of support since 30 Nov 2025 and gets no more updates; these nodes run it: {}",
                    out_of_support.join(", ")
                ),
            )
            .hint("migrate their pools to Azure Linux 3 (osSku AzureLinux3); to patch them in place meanwhile, add --allow-azure-linux-2, or leave them out with --nodepool / --nodes"),
        );
    }
    let tdnf = names(&|p| p.probe().is_some_and(|p| p.package_manager == PackageManager::Tdnf));
    if !tdnf.is_empty() && options.upgrade_mode == UpgradeMode::Security && !options.azure_linux_security_as_all {
        return Some(
            Refusal::new(
                Obstacle::Options,
                format!(
                    "--upgrade-mode security cannot be applied to the Azure Linux nodes {}: {TDNF_NO_SECURITY}",
                    tdnf.join(", ")
                ),
            )
            .hint("use --upgrade-mode all; or add --azure-linux-security-as-all to install all updates on those nodes (security only on Ubuntu); or leave them out with --nodepool / --nodes"),
        );
    }
    None
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{node, probe, probed, record};
    use super::*;
    use crate::node::Probe;
    use crate::rollout::journal::NodeState;
    use crate::rollout::probed::ProbeResult;
    use std::time::Duration;

    fn entry(name: &str, reason: Option<&str>) -> PlanEntry {
        PlanEntry {
            name: name.into(),
            pool: "user".into(),
            action: if reason.is_some() { "skip" } else { "patch" }.into(),
            reason: reason.map(str::to_string),
            gone: false,
        }
    }

    fn by_nodes(nodes: &[&str]) -> Selection {
        Selection {
            nodes: nodes.iter().map(|n| n.to_string()).collect(),
            ..Selection::default()
        }
    }

    #[test]
    fn a_selection_of_nodes_that_cannot_be_patched_is_refused_naming_why() {
        let entries = [entry("win-1", Some("Windows: not patched in place"))];
        let r = nothing_selected(&entries, &by_nodes(&["win-1"]), false).expect("refused");
        assert_eq!(r.what, Obstacle::Options);
        assert_eq!(
            r.why,
            "nothing in the selection can be patched: win-1: Windows: not patched in place"
        );
        let r = nothing_selected(
            &[],
            &Selection {
                selector: Some("a=b".into()),
                ..Selection::default()
            },
            false,
        )
        .expect("refused");
        assert_eq!(r.why, "the selection matches no node (selector `a=b`)");
    }

    #[test]
    fn no_selection_a_resume_or_a_node_to_patch_is_not_refused() {
        let skipped = [entry("win-1", Some("Windows"))];
        assert_eq!(nothing_selected(&skipped, &Selection::default(), false), None);
        assert_eq!(nothing_selected(&skipped, &by_nodes(&["win-1"]), true), None);
        let some = [entry("n1", None), entry("win-1", Some("Windows"))];
        assert_eq!(nothing_selected(&some, &by_nodes(&["n1", "win-1"]), false), None);
    }

    #[test]
    fn a_node_that_cannot_be_probed_is_refused_unless_it_is_down_or_left_rebooting() {
        let entries = [entry("n1", None), entry("n2", None), entry("n3", None)];
        let failed = |n: &str| {
            probed(
                n,
                ProbeResult::Failed(ProbeError::Timeout {
                    node: n.into(),
                    after: Duration::from_secs(60),
                }),
            )
        };
        let probes = [failed("n1"), failed("n2"), failed("n3")];
        let rows = [node("n1", false, None), node("n2", true, None), node("n3", true, None)];
        let prev = record("r0", &[("n2", NodeState::Rebooting), ("n3", NodeState::Pending)]);
        let (name, why) = unreachable(&probes, &entries, &rows, Some(&prev)).expect("n3");
        assert_eq!(name, "n3", "n1 is down (the gate's to say), n2 left rebooting");
        let r = cannot_probe(name, why, Via::Kube);
        assert_eq!(r.what, Obstacle::Node);
        assert_eq!(
            r.why,
            "cannot probe node n3 before the rollout: the probe on node n3 timed out after 60s"
        );
        assert!(r.hint.unwrap().contains("node-shell pod"));
        let probed_ok = [probed("n3", ProbeResult::Probed(Box::new(probe())))];
        assert!(unreachable(&probed_ok, &entries, &rows, None).is_none());
    }

    #[test]
    fn azure_linux_nodes_the_options_cannot_patch_are_refused_naming_the_consent() {
        let options = record("r0", &[]).options;
        let tdnf = Probe {
            package_manager: PackageManager::Tdnf,
            ..probe()
        };
        let azl3 = probed("azl-1", ProbeResult::Probed(Box::new(tdnf.clone())));
        let security = RunOptions {
            upgrade_mode: UpgradeMode::Security,
            ..options.clone()
        };
        let r = azure_linux(&[&azl3], &security).expect("refused");
        assert!(
            r.why
                .starts_with("--upgrade-mode security cannot be applied to the Azure Linux nodes azl-1: "),
            "{}",
            r.why
        );
        let consented = RunOptions {
            azure_linux_security_as_all: true,
            ..security
        };
        assert_eq!(azure_linux(&[&azl3], &consented), None);
        assert_eq!(azure_linux(&[&azl3], &options), None, "--upgrade-mode all");

        let azl2 = probed(
            "azl-2",
            ProbeResult::Probed(Box::new(Probe {
                end_of_support: Some("Azure Linux 2.0 is out of support".into()),
                ..tdnf
            })),
        );
        let r = azure_linux(&[&azl2, &azl3], &options).expect("refused");
        assert!(r.why.ends_with("these nodes run it: azl-2"), "{}", r.why);
        let allowed = RunOptions {
            allow_azure_linux_2: true,
            ..options
        };
        assert_eq!(azure_linux(&[&azl2], &allowed), None);
    }
}
