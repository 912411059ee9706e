//! What the pre-flight makes of a run once every check has answered: go, refuse, or (a resume
//! whose interrupted run left nodes out of service) finish those and start no other node.

use super::super::refusal::{Obstacle, Refusal};
use super::drains::{certain_failures, pending_pods, NodeCheck};

/// The pre-flight's decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Nothing found that would certainly stop the rollout.
    Go,
    /// The run is refused before anything changes.
    Refuse(Refusal),
    /// A resumed run finishes the nodes the interrupted run left out of service (they are out
    /// already: leaving them so helps no one), then stops with this refusal.
    FinishLeftOut(Refusal),
}

/// The decision, and what it lets through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub decision: Decision,
    /// Pods left with nowhere to go that `--allow-pending-pods` lets through: to be said.
    pub let_through: Option<Refusal>,
}

/// What the checks found, and what decides about it.
pub struct Findings<'a> {
    pub checks: &'a [NodeCheck],
    /// The node kured holds its reboot lock for, if it does.
    pub kured: Option<&'a str>,
    /// The nodes the resumed run left out of service that are still in the cluster.
    pub left_out: &'a [&'a str],
    /// `--allow-pending-pods`.
    pub allow_pending_pods: bool,
}

/// Drains certain to fail refuse the run, then pods with nowhere to go (unless
/// `--allow-pending-pods`), then kured rebooting a node. A resume that has nodes left out of
/// service finishes them first, unless their own drains are the ones certain to fail.
pub fn verdict(f: &Findings) -> Verdict {
    let (own, others): (Vec<NodeCheck>, Vec<NodeCheck>) = f
        .checks
        .iter()
        .cloned()
        .partition(|c| f.left_out.contains(&c.node.as_str()));
    let refusal = |checks: &[NodeCheck]| {
        certain_failures(checks).or_else(|| {
            if f.allow_pending_pods {
                None
            } else {
                pending_pods(checks)
            }
        })
    };
    let let_through = if f.allow_pending_pods {
        pending_pods(f.checks)
    } else {
        None
    };
    let decision = if let Some(r) = refusal(f.checks) {
        if f.left_out.is_empty() || refusal(&own).is_some() {
            Decision::Refuse(r)
        } else {
            Decision::FinishLeftOut(refusal(&others).unwrap_or(r).after_changes())
        }
    } else if let Some(node) = f.kured {
        let r = Refusal::new(
            Obstacle::OtherRollout,
            format!("kured holds its reboot lock for {node}: it is rebooting that node"),
        )
        .hint("wait for kured to finish (or pause it), then run again");
        if f.left_out.is_empty() {
            Decision::Refuse(r)
        } else {
            Decision::FinishLeftOut(r.after_changes())
        }
    } else {
        Decision::Go
    };
    Verdict { decision, let_through }
}

#[cfg(test)]
mod tests {
    use super::super::drains::tests::{check, never_allowing, session_cache};
    use super::super::drains::WouldReboot;
    use super::*;

    fn findings<'a>(checks: &'a [NodeCheck], left_out: &'a [&'a str]) -> Findings<'a> {
        Findings {
            checks,
            kured: None,
            left_out,
            allow_pending_pods: false,
        }
    }

    #[test]
    fn a_drain_certain_to_fail_refuses_the_run_before_any_change() {
        let checks = [never_allowing(check("n1", WouldReboot::Yes, vec![]))];
        let v = verdict(&findings(&checks, &[]));
        let Decision::Refuse(r) = v.decision else {
            panic!("{v:?}")
        };
        assert_eq!((r.what, r.changed), (Obstacle::Options, false));
        assert!(r.why.contains("node n1: PodDisruptionBudget app/web-pdb"), "{}", r.why);
    }

    #[test]
    fn a_resume_finishes_the_nodes_left_out_then_stops_for_the_others_drains() {
        let checks = [
            check("n0", WouldReboot::Yes, vec![]),
            never_allowing(check("n1", WouldReboot::Yes, vec![])),
        ];
        let v = verdict(&findings(&checks, &["n0"]));
        let Decision::FinishLeftOut(r) = v.decision else {
            panic!("{v:?}")
        };
        assert!(r.changed, "it takes effect after n0 is put back");
        assert!(r.why.contains("node n1:"), "{}", r.why);
    }

    #[test]
    fn a_resume_whose_left_out_node_cannot_drain_is_refused() {
        let checks = [never_allowing(check("n0", WouldReboot::Yes, vec![]))];
        let v = verdict(&findings(&checks, &["n0"]));
        assert!(matches!(v.decision, Decision::Refuse(_)), "{v:?}");
    }

    #[test]
    fn kured_rebooting_a_node_refuses_the_run_as_another_rollout() {
        let f = Findings {
            kured: Some("n2"),
            ..findings(&[], &[])
        };
        let Decision::Refuse(r) = verdict(&f).decision else {
            panic!("refused")
        };
        assert_eq!(r.what, Obstacle::OtherRollout);
        assert_eq!(r.why, "kured holds its reboot lock for n2: it is rebooting that node");
        let f = Findings {
            kured: Some("n2"),
            ..findings(&[], &["n0"])
        };
        assert!(matches!(verdict(&f).decision, Decision::FinishLeftOut(r) if r.changed));
    }

    #[test]
    fn allow_pending_pods_lets_pods_with_nowhere_to_go_through_and_says_so() {
        let checks = [check("n1", WouldReboot::Yes, vec![session_cache()])];
        assert!(matches!(verdict(&findings(&checks, &[])).decision, Decision::Refuse(_)));
        let f = Findings {
            allow_pending_pods: true,
            ..findings(&checks, &[])
        };
        let v = verdict(&f);
        assert_eq!(v.decision, Decision::Go);
        assert!(v.let_through.is_some_and(|r| r.why.contains("shop/session-cache-7c9")));
    }

    #[test]
    fn nothing_found_goes_on() {
        let checks = [check("n1", WouldReboot::Maybe, vec![])];
        let v = verdict(&findings(&checks, &[]));
        assert_eq!(v.decision, Decision::Go);
        assert_eq!(v.let_through, None);
    }
}
