//! Another aks-patch run's node, as the refusals say it: out under a live run (wait for it),
//! left by a dead one (the resume that finishes it), or marked by a run that holds no live
//! lock.

use super::LOCK_DURATION;
use crate::kube::lock::Liveness;
use crate::kube::{self as k, HolderInfo, LeaseState, Lock, LockOptions};
use crate::output::{Exit, Failure};
use crate::settings::Settings;

/// What is known of run `run` from the lock: its holder and the judgement, when the lock is
/// that run's.
pub(super) async fn run_lock(
    client: &::kube::Client,
    settings: &Settings,
    run: &str,
) -> Option<(LeaseState, Liveness)> {
    let me = HolderInfo::current(settings, "");
    Lock::judge_now(client, &me, &LockOptions::new(LOCK_DURATION))
        .await
        .ok()
        .flatten()
        .filter(|(st, _)| st.holder_info.as_ref().is_some_and(|h| h.run_id == run))
}

/// What to say about node `node` that run `run` has out of service, given its lock.
pub(super) enum OtherRun {
    /// The run holds a live lock: wait for it.
    Live { holder: String, renewed_ago: Option<u64> },
    /// The run's process on this host is gone.
    Dead { pid: u32 },
    /// Nothing says whether the run goes on (its lock is gone, expired or another's).
    Unknown,
}

impl OtherRun {
    pub(super) fn of(lock: Option<&(LeaseState, Liveness)>) -> OtherRun {
        match lock {
            Some((st, Liveness::Live { .. } | Liveness::LiveHere { .. })) => OtherRun::Live {
                holder: st.holder.clone().unwrap_or_default(),
                renewed_ago: st.renewed_ago(chrono::Utc::now()).map(|d| d.as_secs()),
            },
            Some((_, Liveness::DeadHere { pid, .. })) => OtherRun::Dead { pid: *pid },
            _ => OtherRun::Unknown,
        }
    }

    /// The refusal of a run that needs node `node`, out of service under run `run`.
    pub(super) fn refusal(&self, node: &str, run: &str) -> Failure {
        let by_hand = k::drain::put_back_by_hand(&[node]);
        match self {
            OtherRun::Live { holder, renewed_ago } => Failure::new(
                Exit::LockHeld,
                format!(
                    "node {node} is out of service under another aks-patch run, {run} (it holds the lock: {holder}{}), so it cannot be probed or patched now; nothing was changed",
                    renewed_ago.map(|s| format!(", last renewed {s}s ago")).unwrap_or_default()
                ),
            )
            .hint(format!("wait for run {run} to finish (it puts node {node} back), then run again")),
            OtherRun::Dead { pid } => Failure::new(
                Exit::LockHeld,
                format!(
                    "node {node} is out of service, left by aks-patch run {run}, which is dead (pid {pid} on this host is gone); nothing was changed"
                ),
            )
            .hint(format!(
                "`aks-patch apply --one-at-a-time --resume --force-unlock` finishes that run (node {node} first), or `{by_hand}` puts the node back by hand"
            )),
            OtherRun::Unknown => Failure::new(
                Exit::NodesFailed,
                format!(
                    "node {node} is out of service, marked by aks-patch run {run}, which holds no live lock (it died elsewhere, or it is finishing that node after losing its lock); nothing was changed"
                ),
            )
            .hint(format!(
                "if run {run} is still going, wait for it; if it died, `aks-patch apply --one-at-a-time --resume --force-unlock` where it ran finishes it, or `{by_hand}` puts the node back by hand"
            )),
        }
    }

    /// The warning beside another refusal, for node `node` (`status`) out under run `run`.
    pub(super) fn warning(&self, node: &str, status: &str, run: &str) -> String {
        let by_hand = k::drain::put_back_by_hand(&[node]);
        match self {
            OtherRun::Live { holder, .. } => format!(
                "node {node} is out of service ({status}) under aks-patch run {run}, which is live (it holds the lock: {holder}); wait for it to finish: it puts the node back"
            ),
            OtherRun::Dead { pid } => format!(
                "node {node} is out of service ({status}), left by aks-patch run {run}, which is dead (pid {pid} on this host is gone); `aks-patch apply --one-at-a-time --resume --force-unlock` finishes it, or `{by_hand}` puts it back by hand"
            ),
            OtherRun::Unknown => format!(
                "node {node} is out of service ({status}), taken out by aks-patch run {run}; if that run is not running any more, `aks-patch apply --one-at-a-time --resume --force-unlock` finishes it, or `{by_hand}` puts it back by hand"
            ),
        }
    }
}
