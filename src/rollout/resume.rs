//! Resuming an interrupted run: its plan (nodes in its order, from the state they reached;
//! a node deleted since is `gone`, never a halt) and its options (kept; a flag that says
//! otherwise is refused).

use super::engine::enum_text;
use super::journal::{NodeState, RebootPolicy, RunOptions, RunRecord, UpgradeMode};
use super::plan::PlanEntry;
use crate::kube::NodeRow;

/// A flag given to `--resume` contradicts the interrupted run's options.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ResumeClash {
    pub message: String,
}

impl ResumeClash {
    pub fn hint(&self) -> &'static str {
        "drop those flags to resume as recorded, or start a new run (without --resume) with the options you want"
    }
}

/// A resumed run keeps the options of the run it continues; a flag given now that says
/// otherwise is a usage error (a flag left at its default takes the recorded value).
pub fn resume_options(prev: &RunOptions, now: &RunOptions, prev_id: &str) -> Result<RunOptions, ResumeClash> {
    let d = RunOptions {
        upgrade_mode: UpgradeMode::All,
        reboot: RebootPolicy::IfRequired,
        delete_emptydir_data: false,
        force: false,
        grace_period: None,
        drain_timeout: 600,
        reboot_timeout: 900,
        soak: 0,
        azure_linux_security_as_all: false,
        allow_azure_linux_2: false,
    };
    let mut clashes = vec![];
    let mut check = |flag: &str, given: String, default: String, recorded: String| {
        if given != default && given != recorded {
            clashes.push(format!("{flag} {given} (run {prev_id} used {recorded})"));
        }
    };
    check(
        "--upgrade-mode",
        enum_text(&now.upgrade_mode),
        enum_text(&d.upgrade_mode),
        enum_text(&prev.upgrade_mode),
    );
    check(
        "--reboot",
        enum_text(&now.reboot),
        enum_text(&d.reboot),
        enum_text(&prev.reboot),
    );
    check(
        "--delete-emptydir-data",
        now.delete_emptydir_data.to_string(),
        "false".into(),
        prev.delete_emptydir_data.to_string(),
    );
    check("--force", now.force.to_string(), "false".into(), prev.force.to_string());
    check(
        "--grace-period",
        format!("{:?}", now.grace_period),
        "None".into(),
        format!("{:?}", prev.grace_period),
    );
    check(
        "--drain-timeout",
        now.drain_timeout.to_string(),
        "600".into(),
        prev.drain_timeout.to_string(),
    );
    check(
        "--reboot-timeout",
        now.reboot_timeout.to_string(),
        "900".into(),
        prev.reboot_timeout.to_string(),
    );
    check("--soak", now.soak.to_string(), "0".into(), prev.soak.to_string());
    if clashes.is_empty() {
        // Consents given now widen the interrupted run's (they contradict nothing).
        let mut o = prev.clone();
        o.azure_linux_security_as_all |= now.azure_linux_security_as_all;
        o.allow_azure_linux_2 |= now.allow_azure_linux_2;
        return Ok(o);
    }
    Err(ResumeClash {
        message: format!(
            "--resume continues run {prev_id} with its own options, and these contradict them: {}; nothing was changed",
            clashes.join(", ")
        ),
    })
}

/// The plan of a resumed run: its nodes in its order, from the state they reached. A node
/// deleted since is recorded as gone (never a halt).
pub fn resume_plan(prev: &RunRecord, rows: &[NodeRow]) -> Vec<PlanEntry> {
    prev.nodes
        .iter()
        .map(|n| {
            let gone = !rows.iter().any(|r| r.name == n.name);
            let skip = match n.state {
                NodeState::Skipped => n.skip_reason.clone().or_else(|| Some("skipped".into())),
                NodeState::Done => Some("done in an earlier run".into()),
                NodeState::Gone => n
                    .skip_reason
                    .clone()
                    .or_else(|| Some("the node no longer exists".into())),
                _ if gone => Some("the node no longer exists (deleted from the cluster)".into()),
                _ => None,
            };
            PlanEntry {
                name: n.name.clone(),
                pool: n.pool.clone(),
                action: if skip.is_some() { "skip".into() } else { "patch".into() },
                reason: skip,
                gone: gone && n.state != NodeState::Done,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts() -> RunOptions {
        RunOptions {
            upgrade_mode: UpgradeMode::Security,
            reboot: RebootPolicy::IfRequired,
            delete_emptydir_data: true,
            force: false,
            grace_period: None,
            drain_timeout: 120,
            reboot_timeout: 900,
            soak: 0,
            azure_linux_security_as_all: false,
            allow_azure_linux_2: false,
        }
    }

    #[test]
    fn resume_keeps_the_recorded_options_when_flags_are_left_at_defaults() {
        let now = RunOptions {
            upgrade_mode: UpgradeMode::All,
            delete_emptydir_data: false,
            drain_timeout: 600,
            ..opts()
        };
        assert_eq!(resume_options(&opts(), &now, "r1").unwrap(), opts());
    }

    #[test]
    fn resume_refuses_a_flag_that_contradicts_the_record() {
        let now = RunOptions {
            upgrade_mode: UpgradeMode::Dist,
            delete_emptydir_data: false,
            drain_timeout: 600,
            ..opts()
        };
        let e = resume_options(&opts(), &now, "r1").unwrap_err();
        assert!(
            e.to_string().contains("--upgrade-mode dist (run r1 used security)"),
            "{e}"
        );
    }

    #[test]
    fn resume_takes_the_azure_linux_consents_given_now() {
        let now = RunOptions {
            upgrade_mode: UpgradeMode::All,
            delete_emptydir_data: false,
            drain_timeout: 600,
            azure_linux_security_as_all: true,
            allow_azure_linux_2: true,
            ..opts()
        };
        let o = resume_options(&opts(), &now, "r1").unwrap();
        assert!(o.azure_linux_security_as_all && o.allow_azure_linux_2);
        assert_eq!(o.upgrade_mode, UpgradeMode::Security, "the rest as recorded");
        // And a consent recorded is kept when not repeated.
        let prev = RunOptions {
            allow_azure_linux_2: true,
            ..opts()
        };
        assert!(resume_options(&prev, &opts(), "r1").unwrap().allow_azure_linux_2);
    }
}
