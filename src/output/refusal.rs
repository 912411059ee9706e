//! A refusal of the rollout ([`Refusal`]) in words, and its exit code: as the error that ends
//! the run, as the dry run's verdict, and as the warnings of a run that goes on in part.

use super::errors::{Exit, Failure};
use crate::rollout::refusal::{Obstacle, Refusal};
use crate::rollout::stop::RunStop;

/// The exit code of a run that ends with this refusal.
pub fn exit(r: &Refusal) -> Exit {
    match r.what {
        Obstacle::Options => Exit::Usage,
        Obstacle::Node => Exit::NodesFailed,
        Obstacle::OtherRollout => Exit::LockHeld,
        Obstacle::Permissions => Exit::Auth,
        Obstacle::Record => Exit::Failure,
    }
}

/// The line that ends the run: why, and that nothing was changed; or, for a refusal that
/// takes effect after the nodes an interrupted run left out of service were put back, that no
/// other node is started, and what would let them through.
pub fn message(r: &Refusal) -> String {
    if r.changed {
        format!(
            "not starting another node: {}; {}",
            r.why,
            r.hint.as_deref().unwrap_or_default()
        )
    } else {
        format!("{}; nothing was changed", r.why)
    }
}

/// The dry run's verdict: what would refuse the run.
pub fn would_refuse(r: &Refusal) -> String {
    format!("apply would refuse: {}", r.why)
}

/// The warning of a resumed run that finishes the nodes left out of service (`left_out`)
/// and then stops for `r`.
pub fn finishing_only(r: &Refusal, left_out: &[&str]) -> String {
    format!(
        "{}: finishing only {} (left out of service by the interrupted run)",
        r.why,
        left_out.join(", ")
    )
}

/// The warning of a refusal that `flag` lets through.
pub fn let_through(r: &Refusal, flag: &str, what_happens: &str) -> String {
    format!("{} ({flag}: {what_happens})", r.why)
}

/// The stop of a resumed run that finished the nodes left out of service, for a refusal of
/// the pre-flight's verdict (its options, or kured rebooting a node): the same line and exit
/// code as the refusal.
pub fn stop_after_left_out(r: &Refusal) -> RunStop {
    match r.what {
        Obstacle::OtherRollout => RunStop::KuredRebooting(message(r)),
        _ => RunStop::Refused(message(r)),
    }
}

impl From<Refusal> for Failure {
    fn from(r: Refusal) -> Failure {
        let f = Failure::new(exit(&r), message(&r));
        match r.hint {
            Some(h) if !r.changed => f.hint(h),
            _ => f,
        }
    }
}

impl From<Refusal> for anyhow::Error {
    fn from(r: Refusal) -> anyhow::Error {
        Failure::from(r).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_before_any_change_ends_the_run_saying_nothing_was_changed() {
        let r = Refusal::new(Obstacle::OtherRollout, "kured holds its reboot lock for n1").hint("wait for kured");
        let f = Failure::from(r.clone());
        assert_eq!(f.message, "kured holds its reboot lock for n1; nothing was changed");
        assert_eq!(f.hint.as_deref(), Some("wait for kured"));
        assert_eq!(f.exit, Exit::LockHeld);
        assert_eq!(
            would_refuse(&r),
            "apply would refuse: kured holds its reboot lock for n1"
        );
    }

    #[test]
    fn a_refusal_after_the_left_out_nodes_were_finished_starts_no_other_node() {
        let r = Refusal::new(Obstacle::Options, "these drains would certainly fail: x")
            .hint("rerun with --force")
            .after_changes();
        assert_eq!(
            message(&r),
            "not starting another node: these drains would certainly fail: x; rerun with --force"
        );
        assert!(!message(&r).contains("nothing was changed"));
        assert_eq!(Failure::from(r.clone()).hint, None, "the hint is in the line");
        let stop = stop_after_left_out(&r);
        assert_eq!(stop.message(), message(&r));
        assert_eq!(Exit::from(&stop), Exit::Usage);
        let kured = Refusal::new(Obstacle::OtherRollout, "kured holds its reboot lock for n1").after_changes();
        assert_eq!(Exit::from(&stop_after_left_out(&kured)), exit(&kured));
    }

    #[test]
    fn every_obstacle_has_its_exit_code() {
        let code = |what| exit(&Refusal::new(what, "x")).code();
        assert_eq!(code(Obstacle::Options), 2);
        assert_eq!(code(Obstacle::Node), 5);
        assert_eq!(code(Obstacle::OtherRollout), 7);
        assert_eq!(code(Obstacle::Permissions), 4);
        assert_eq!(code(Obstacle::Record), 1);
    }
}
