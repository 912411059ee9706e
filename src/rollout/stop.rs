//! How a run stops early ([`RunStop`]), why a node's turn failed ([`Halt`]), and where the
//! node was left ([`Release`], [`NodeLeft`]), as typed values. Their words (`Display`) are
//! the run record's and the error line's; which exit code a stop gives is the caller's to say.

use super::gate::GateStop;
use super::journal::{enum_text, UpgradeMode};
use super::node_life::IllegalTransition;
use super::ports::PortError;
use super::proof::NoProof;
use crate::kube::drain::put_back_by_hand;
use crate::node::tdnf::TDNF_NO_SECURITY;
use crate::node::PackageManager;
use std::fmt;
use std::time::Duration;

/// Why the run stopped early.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunStop {
    /// A signal, at a safe point.
    Interrupted,
    /// A node could not be patched (recorded failed), or is not proven patched.
    Failed(Box<Halt>),
    /// What the pre-flight refuses, found at a node's turn (pods with nowhere to go), or held
    /// over from before the run (a resume finishing only the nodes left out of service).
    Refused(String),
    /// kured is rebooting a node (a resume finishing only the nodes left out of service).
    KuredRebooting(String),
    /// The lock could not be proven ours: the node in hand was finished, nothing else started.
    LockLost(String),
    /// The maintenance window closed (or the next node would not end inside it): stopped at
    /// a safe point with nothing out of service; why, and when the next window opens.
    OutsideWindow(String),
    /// A blocker (a blocking pod, a Prometheus alert) held the next cordon past
    /// `--blocker-wait`: stopped at a safe point with nothing out of service.
    Blocked(String),
    /// The run record could not be written: the node in hand was finished, nothing else
    /// started.
    RecordUnwritable(String),
    /// The engine tried a change of a node's state that its life does not allow (a bug): the
    /// record keeps the node as it was.
    Illegal(IllegalTransition),
}

impl RunStop {
    /// Why the node's turn failed, when the run stopped on a failed node.
    pub fn halt(&self) -> Option<&Halt> {
        match self {
            RunStop::Failed(h) => Some(h),
            _ => None,
        }
    }

    /// Why the run stopped, in words (empty for an interruption).
    pub fn message(&self) -> String {
        match self {
            RunStop::Interrupted => String::new(),
            RunStop::Failed(h) => h.to_string(),
            RunStop::Illegal(e) => e.to_string(),
            RunStop::Refused(m)
            | RunStop::KuredRebooting(m)
            | RunStop::LockLost(m)
            | RunStop::OutsideWindow(m)
            | RunStop::Blocked(m)
            | RunStop::RecordUnwritable(m) => m.clone(),
        }
    }
}

impl From<IllegalTransition> for RunStop {
    fn from(e: IllegalTransition) -> RunStop {
        RunStop::Illegal(e)
    }
}

impl From<Halt> for RunStop {
    fn from(h: Halt) -> RunStop {
        RunStop::Failed(Box::new(h))
    }
}

/// What putting a node back did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Release {
    /// Our mark removed, the node uncordoned.
    Uncordoned { node: String },
    /// Our mark removed; it stays cordoned, as it was before aks-patch came.
    StaysCordoned { node: String },
    /// It could not be put back: it stays in the run's hands.
    Failed { node: String, error: PortError },
}

impl Release {
    /// The node is out of the run's hands.
    pub fn put_back(&self) -> bool {
        !matches!(self, Release::Failed { .. })
    }
}

impl fmt::Display for Release {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Release::Uncordoned { node } => write!(f, "node {node} uncordoned"),
            Release::StaysCordoned { node } => {
                write!(f, "node {node} stays cordoned, as it was before aks-patch")
            }
            Release::Failed { node, error } => write!(
                f,
                "COULD NOT UNCORDON node {node} ({error}): run `{}`",
                put_back_by_hand(&[node])
            ),
        }
    }
}

/// `; RELEASE` when the node was in hand and put back, nothing when it was not in hand.
pub struct AndRelease<'a>(pub &'a Option<Release>);

impl fmt::Display for AndRelease<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(r) => write!(f, "; {r}"),
            None => Ok(()),
        }
    }
}

/// Where a node was left when its turn stopped before it was taken out (or while it was out
/// from an earlier run).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeLeft {
    /// Never taken out.
    NotCordoned,
    /// It was out of service from an earlier run: put back (or not, see the release).
    PutBack(Release),
    /// It was out of service from an earlier run and stays in the run's hands.
    InHand,
}

impl NodeLeft {
    /// `; the node was not cordoned`, `; RELEASE`, or nothing while it stays in hand.
    pub fn and(&self) -> AndLeft<'_> {
        AndLeft(self)
    }
}

/// See [`NodeLeft::and`].
pub struct AndLeft<'a>(&'a NodeLeft);

impl fmt::Display for AndLeft<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            NodeLeft::NotCordoned => write!(f, "; the node was not cordoned"),
            NodeLeft::PutBack(r) => write!(f, "; {r}"),
            NodeLeft::InHand => Ok(()),
        }
    }
}

/// What the messages call a package manager (`apt` on Ubuntu).
pub fn tool_name(manager: PackageManager) -> &'static str {
    match manager {
        PackageManager::Tdnf => "tdnf",
        _ => "apt",
    }
}

/// Why waiting for the upgrade ended before it did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpgradeUnfinished {
    /// The second signal.
    Abandoned,
    TimedOut {
        after: Duration,
    },
    ConnectionLost {
        error: PortError,
    },
}

/// An upgrade not known to have finished: the package manager may still run on the node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpgradeStopped {
    pub node: String,
    pub manager: PackageManager,
    /// The upgrade's log on the node.
    pub log: String,
    pub why: UpgradeUnfinished,
    pub left: NodeLeft,
}

impl fmt::Display for UpgradeStopped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (node, log, tool) = (&self.node, &self.log, tool_name(self.manager));
        match &self.why {
            UpgradeUnfinished::Abandoned => write!(
                f,
                "stopped waiting for the upgrade (second interrupt); {tool} is still running on node {node} (log {log})"
            )?,
            UpgradeUnfinished::TimedOut { after } => write!(
                f,
                "the upgrade of node {node} did not finish within {}s (log {log} on the node)",
                after.as_secs()
            )?,
            UpgradeUnfinished::ConnectionLost { error } => write!(
                f,
                "lost the connection to node {node} during the upgrade ({error}); {tool} may still be running there (log {log})"
            )?,
        }
        write!(f, "{}", self.left.and())
    }
}

/// Why a node rebooted (new bootID, Ready) is not proven patched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unproven {
    /// The check after the reboot could not be made within `--reboot-timeout`; the release
    /// that followed, if any.
    Unchecked {
        boot_id: Option<String>,
        timeout: Duration,
        error: PortError,
        release: Option<Release>,
    },
    /// On a resume: it still cannot be reached.
    StillUnchecked { error: PortError },
    /// On a resume: it is not Ready.
    NotReady,
}

impl fmt::Display for Unproven {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Unproven::Unchecked {
                boot_id,
                timeout,
                error,
                release,
            } => write!(
                f,
                "it is back (new bootID {}, Ready), but the check after the reboot (reboot marker, pending updates) could not be made within --reboot-timeout ({}s): {error}{}",
                boot_id.as_deref().unwrap_or("?"),
                timeout.as_secs(),
                AndRelease(release)
            ),
            Unproven::StillUnchecked { error } => write!(
                f,
                "it still cannot be checked (reboot marker, pending updates): {error}"
            ),
            Unproven::NotReady => write!(f, "it is not Ready"),
        }
    }
}

/// Why a node's turn failed, with where the node was left: the run stops on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Halt {
    ReadNode {
        node: String,
        error: PortError,
    },
    Probe {
        node: String,
        after_upgrade: bool,
        error: PortError,
        left: NodeLeft,
    },
    /// The probe says the node's OS is not supported.
    Unsupported {
        node: String,
        why: String,
    },
    /// Azure Linux 2.0 without `--allow-azure-linux-2`.
    EndOfSupport {
        node: String,
        why: String,
        left: NodeLeft,
    },
    /// `--upgrade-mode security` where no update is classified as security.
    SecurityUnclassified {
        node: String,
        left: NodeLeft,
    },
    StartUpgrade {
        node: String,
        error: PortError,
        left: NodeLeft,
    },
    Upgrade(UpgradeStopped),
    UpgradeExited {
        node: String,
        manager: PackageManager,
        code: i32,
        /// The package manager's error line, if it printed one.
        last: Option<String>,
        left: NodeLeft,
    },
    /// Updates of the run's mode still pending after the upgrade.
    StillPending {
        node: String,
        mode: UpgradeMode,
        packages: Vec<String>,
        left: NodeLeft,
    },
    /// Not rebooted, and not proven patched.
    NotPatched {
        node: String,
        no: NoProof,
    },
    PdbsNotRecovered {
        node: String,
        error: PortError,
        release: Option<Release>,
    },
    Unhealthy {
        node: String,
        gate: GateStop,
        release: Option<Release>,
    },
    PodsUnknown {
        node: String,
        error: PortError,
        release: Option<Release>,
    },
    KuredLock {
        node: String,
        error: PortError,
        release: Option<Release>,
    },
    Cordon {
        node: String,
        error: PortError,
        release: Option<Release>,
    },
    Drain {
        node: String,
        error: PortError,
        release: Release,
    },
    Reboot {
        node: String,
        error: PortError,
        release: Release,
    },
    /// The node did not come back (a new bootID, Ready) in time.
    NotBack {
        error: PortError,
    },
    /// Back from its reboot, but it could not be put back in service (and, if so, why it is
    /// not proven patched either).
    NotPutBack {
        node: String,
        release: Release,
        unproven: Option<Unproven>,
    },
    /// Back from its reboot, put back, but the check after the reboot says it is not patched.
    NotPatchedAfterReboot {
        node: String,
        no: NoProof,
    },
    /// An unproven node checked on a resume: not patched.
    NotPatchedOnResume {
        node: String,
        no: NoProof,
    },
    /// Back and put back in service, but not proven patched (recorded unproven).
    Unproven {
        node: String,
        why: Unproven,
    },
    /// The lock was lost because the API server refused the credentials.
    CredentialsRefused {
        reason: String,
    },
    /// The cluster could not be read to plan the next batch (`--max-unavailable`).
    ReadCluster {
        error: PortError,
    },
    /// The previous batch's evicted workloads were not Ready again, or the cluster's health
    /// could not be read, before the next batch (`--max-unavailable`).
    BatchUnhealthy {
        gate: GateStop,
    },
    /// The previous batch's PodDisruptionBudgets did not allow disruptions again in time.
    BatchPdbsNotRecovered {
        error: PortError,
    },
    /// The next batch could not start within `--health-wait`: why.
    BatchHeld {
        why: Vec<crate::rollout::batches::Hold>,
        waited: std::time::Duration,
    },
}

impl Halt {
    /// The API server (or the node's transport) refused the credentials.
    pub fn credentials_refused(&self) -> bool {
        match self {
            Halt::ReadNode { error, .. }
            | Halt::Probe { error, .. }
            | Halt::StartUpgrade { error, .. }
            | Halt::PodsUnknown { error, .. }
            | Halt::KuredLock { error, .. }
            | Halt::Cordon { error, .. }
            | Halt::Drain { error, .. }
            | Halt::Reboot { error, .. }
            | Halt::NotBack { error }
            | Halt::ReadCluster { error } => error.is_auth(),
            Halt::Unhealthy {
                gate: GateStop::Failed(error),
                ..
            }
            | Halt::BatchUnhealthy {
                gate: GateStop::Failed(error),
            }
            | Halt::BatchPdbsNotRecovered { error } => error.is_auth(),
            Halt::CredentialsRefused { .. } => true,
            _ => false,
        }
    }
}

const PACKAGES_UPGRADED: &str = "; its packages are upgraded";

impl fmt::Display for Halt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Halt::ReadNode { node, error } => write!(f, "cannot read node {node}: {error}"),
            Halt::ReadCluster { error } => write!(f, "cannot read the cluster to plan the next batch: {error}"),
            Halt::BatchUnhealthy { gate } => {
                write!(f, "not starting the next batch: {gate}")?;
                if let Some(h) = gate.hint() {
                    write!(f, "; {h}")?;
                }
                write!(f, "; the nodes done so far stay patched, the others untouched")
            }
            Halt::BatchPdbsNotRecovered { error } => write!(
                f,
                "not starting the next batch: the last batch's PodDisruptionBudgets do not allow disruptions again: {error}; the nodes done so far stay patched, the others untouched"
            ),
            Halt::BatchHeld { why, waited } => {
                let why: Vec<String> = why.iter().map(|h| h.to_string()).collect();
                write!(
                    f,
                    "not starting the next batch: {} (waited {}s, --health-wait); the nodes done so far stay patched, the others untouched",
                    why.join("; "),
                    waited.as_secs()
                )
            }
            Halt::Probe {
                node,
                after_upgrade,
                error,
                left,
            } => write!(
                f,
                "probing node {node}{} failed: {error}{}",
                if *after_upgrade { " after its upgrade" } else { "" },
                left.and()
            ),
            Halt::Unsupported { node, why } => write!(f, "node {node}: {why}"),
            Halt::EndOfSupport { node, why, left } => write!(
                f,
                "node {node}: {why}; it is patched only with --allow-azure-linux-2{}",
                left.and()
            ),
            Halt::SecurityUnclassified { node, left } => write!(
                f,
                "node {node}: --upgrade-mode security cannot be applied: {TDNF_NO_SECURITY}; use --upgrade-mode all, or --azure-linux-security-as-all to install all updates there{}",
                left.and()
            ),
            Halt::StartUpgrade { node, error, left } => {
                write!(f, "cannot start the upgrade on node {node}: {error}{}", left.and())
            }
            Halt::Upgrade(u) => write!(f, "{u}"),
            Halt::UpgradeExited {
                node,
                manager,
                code,
                last,
                left,
            } => {
                write!(f, "upgrading node {node} failed ({} exit {code}", manager.tool())?;
                if let Some(l) = last {
                    write!(f, ": {l}")?;
                }
                write!(
                    f,
                    "){}; see the run record for {}'s output",
                    left.and(),
                    tool_name(*manager)
                )
            }
            Halt::StillPending {
                node,
                mode,
                packages,
                left,
            } => write!(
                f,
                "node {node} still has {} pending update(s) of {} mode after the upgrade ({}); it is not reported patched{}; see the run record for apt's output",
                packages.len(),
                enum_text(mode),
                packages.join(", "),
                left.and()
            ),
            Halt::NotPatched { node, no } => write!(f, "node {node} is not reported patched: {no}"),
            Halt::PdbsNotRecovered { node, error, release } => write!(
                f,
                "not taking node {node} out: {error}{}{PACKAGES_UPGRADED}",
                AndRelease(release)
            ),
            Halt::Unhealthy { node, gate, release } => {
                write!(f, "not taking node {node} out: {gate}")?;
                if let Some(h) = gate.hint() {
                    write!(f, "; {h}")?;
                }
                write!(f, "{}{PACKAGES_UPGRADED}", AndRelease(release))
            }
            Halt::PodsUnknown { node, error, release } => write!(
                f,
                "not taking node {node} out: cannot tell where its pods would go: {error}{}{PACKAGES_UPGRADED}",
                AndRelease(release)
            ),
            Halt::KuredLock { node, error, release } => write!(
                f,
                "not rebooting node {node}: {error}{PACKAGES_UPGRADED}{}",
                AndRelease(release)
            ),
            Halt::Cordon { node, error, release } => {
                write!(f, "cannot cordon node {node}: {error}{}", AndRelease(release))
            }
            Halt::Drain { node, error, release } => write!(f, "draining node {node} failed: {error}; {release}"),
            Halt::Reboot { node, error, release } => write!(f, "cannot reboot node {node}: {error}; {release}"),
            Halt::NotBack { error } => write!(f, "{error}"),
            Halt::NotPutBack {
                node,
                release,
                unproven,
            } => {
                write!(f, "node {node} is back, but {release}")?;
                if let Some(why) = unproven {
                    write!(f, "; {why}")?;
                }
                Ok(())
            }
            Halt::NotPatchedAfterReboot { node, no } => {
                write!(f, "node {node} is back, but {no}; it is not reported patched")
            }
            Halt::NotPatchedOnResume { node, no } => write!(
                f,
                "node {node} is not patched: {no}; it is recorded failed and the next --resume redoes it from the upgrade"
            ),
            Halt::Unproven { node, why } => write!(
                f,
                "node {node} is not proven patched (recorded unproven): {why}; fix the connection to the node, then `aks-patch apply ... --resume` proves it first"
            ),
            Halt::CredentialsRefused { reason } => write!(f, "{reason}: the API server refused the credentials"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn release(node: &str) -> Release {
        Release::Uncordoned { node: node.into() }
    }

    #[test]
    fn a_node_never_taken_out_is_said_not_cordoned_and_one_put_back_says_how() {
        let e = PortError::new("ssh: connection refused");
        let never = Halt::Probe {
            node: "n0".into(),
            after_upgrade: false,
            error: e.clone(),
            left: NodeLeft::NotCordoned,
        };
        assert_eq!(
            never.to_string(),
            "probing node n0 failed: ssh: connection refused; the node was not cordoned"
        );
        let back = Halt::Probe {
            node: "n0".into(),
            after_upgrade: true,
            error: e.clone(),
            left: NodeLeft::PutBack(release("n0")),
        };
        assert_eq!(
            back.to_string(),
            "probing node n0 after its upgrade failed: ssh: connection refused; node n0 uncordoned"
        );
        let in_hand = Halt::Probe {
            node: "n0".into(),
            after_upgrade: false,
            error: e,
            left: NodeLeft::InHand,
        };
        assert_eq!(in_hand.to_string(), "probing node n0 failed: ssh: connection refused");
    }

    #[test]
    fn a_failed_put_back_names_the_command_that_does_it_by_hand() {
        let r = Release::Failed {
            node: "n1".into(),
            error: PortError::new("HTTP 500"),
        };
        assert!(!r.put_back());
        let text = r.to_string();
        assert!(
            text.starts_with("COULD NOT UNCORDON node n1 (HTTP 500): run `"),
            "{text}"
        );
        assert!(text.contains("kubectl uncordon n1"), "{text}");
        let kept = Release::StaysCordoned { node: "n1".into() };
        assert!(kept.put_back());
        assert_eq!(kept.to_string(), "node n1 stays cordoned, as it was before aks-patch");
    }

    #[test]
    fn only_refused_credentials_count_as_such() {
        let auth = PortError::auth("HTTP 401 Unauthorized");
        let cordon = |error: PortError| Halt::Cordon {
            node: "n0".into(),
            error,
            release: None,
        };
        assert!(cordon(auth.clone()).credentials_refused());
        assert!(!cordon(PortError::new("HTTP 500")).credentials_refused());
        assert!(Halt::Unhealthy {
            node: "n0".into(),
            gate: GateStop::Failed(auth),
            release: None
        }
        .credentials_refused());
        assert!(Halt::CredentialsRefused { reason: "lost".into() }.credentials_refused());
        assert!(!Halt::NotPatched {
            node: "n0".into(),
            no: NoProof::NotReady
        }
        .credentials_refused());
    }
}
