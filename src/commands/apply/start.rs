//! `apply`'s start, after the pre-flight and the confirmation: the health gate and the
//! blockers before the lock, `--force-unlock`'s own check, the cluster-wide lock, the run
//! record written before the first change, and the pending taints of earlier runs removed.

use super::blockers;
use super::prepare::Prepared;
use super::Session;
use super::GATE_POLL;
use super::LOCK_DURATION;
use crate::commands::context;
use crate::kube::pending::{CLEAR_PENDING_BY_HAND, PENDING_TAINT};
use crate::kube::{self as k, CancellationToken, HolderInfo, LockGuard, LockOptions, NodeInfo};
use crate::output::{self, Exit, Failure};
use crate::rollout::engine::BlockerPolicy;
use crate::rollout::gate::{wait_gate, GateStop};
use crate::rollout::journal::{self, RunRecord, RunStatus};
use crate::rollout::live::KubeCluster;
use crate::rollout::ports::Cluster;
use crate::rollout::preflight::other_run::{self, OtherRun};
use crate::rollout::resume;
use std::time::Duration;

/// The gate, the blockers and the lock, then the run record: `Err` with nothing changed (the
/// lock, if taken, given back).
pub(super) async fn start(
    s: &Session<'_>,
    prepared: &Prepared,
    cluster: &KubeCluster,
    blocker_policy: Option<&BlockerPolicy>,
    cancel: &CancellationToken,
) -> anyhow::Result<(LockGuard, RunRecord)> {
    let holder = HolderInfo::current(s.settings, &s.run_id);
    let lock_opts = LockOptions::new(LOCK_DURATION);
    check_lock(s, prepared, &holder, &lock_opts).await?;
    // The health gate before the lock: nothing else may be out. A resumed run that has nodes
    // out of service (the interrupted run's) takes the lock whatever the gate says, to put
    // them back: the engine finishes them first and holds every other node at its own gate.
    let left_out = prepared.left_out();
    gate(s, prepared, cluster, &left_out, cancel).await?;
    // Blockers hold disruptions; putting back the nodes left out is none (the engine checks
    // the blockers again before every cordon).
    if let (Some(b), true) = (&blocker_policy, left_out.is_empty()) {
        blockers::before_lock(b, cancel, s.reporter).await?
    }
    if s.args.force_unlock {
        if let Some(r) = other_run::force_unlock(&prepared.rows, &prepared.chain) {
            return Err(r.into());
        }
    }
    let guard = take_lock(s, &holder, &lock_opts).await?;
    let record = RunRecord {
        schema_version: journal::SCHEMA_VERSION,
        run_id: s.run_id.clone(),
        cluster: s.ctx.cluster.clone(),
        status: RunStatus::Running,
        started_at: journal::now(),
        finished_at: None,
        holder: holder.identity(),
        options: prepared.options.clone(),
        nodes: resume::starting_nodes(&prepared.entries, prepared.resumed.as_ref(), &prepared.probes),
        error: None,
        resumed_from: prepared.chain.clone(),
        chain_started_at: prepared
            .resumed
            .as_ref()
            .map(|prev| prev.chain_started_at.unwrap_or(prev.started_at)),
    };
    let saved = match s.journal.save(&record).await {
        Ok(place) => {
            s.reporter.verbose(&format!("run record: {place}"));
            match &prepared.resumed {
                // The old record is superseded by this one.
                Some(prev) => s.journal.save(&resume::superseded(prev, &s.run_id)).await.map(|_| ()),
                None => Ok(()),
            }
        }
        Err(e) => Err(e),
    };
    if let Err(e) = saved {
        // Nothing has changed yet: give the lock back and stop.
        if let Err(r) = guard.release().await {
            s.reporter.error(&format!(
                "could not release the aks-patch lock: {r}; {}",
                k::lock::expiry_text(LOCK_DURATION)
            ));
        }
        return Err(anyhow::Error::new(e).context("cannot write the run record; nothing was changed"));
    }
    clear_stale_pending(s, cluster).await;
    Ok((guard, record))
}

/// The pending taints of other runs (one that died or was killed leaves them; only the
/// holder of the lock runs), removed now that the lock is ours, before this run puts its own
/// on: `--resume` and `--force-unlock` clean up after the run they follow.
async fn clear_stale_pending(s: &Session<'_>, cluster: &KubeCluster) {
    let rows = match k::list_node_infos(&s.ctx.client, None).await {
        Ok(rows) => rows,
        Err(e) => {
            s.reporter.warn(&format!(
                "could not look for pending taints left by earlier runs: {e}; remove any with `{CLEAR_PENDING_BY_HAND}`"
            ));
            return;
        }
    };
    let stale: Vec<&NodeInfo> = rows
        .iter()
        .filter(|r| r.pending_run().is_some_and(|run| run != s.run_id))
        .collect();
    if stale.is_empty() {
        return;
    }
    let mut runs: Vec<&str> = stale.iter().filter_map(|r| r.pending_run()).collect();
    runs.sort_unstable();
    runs.dedup();
    let names: Vec<String> = stale.iter().map(|r| r.name.clone()).collect();
    match cluster.clear_pending(&names).await {
        Ok(()) => s.reporter.info(&format!(
            "removed the pending taint {PENDING_TAINT} left by run {} from {}",
            runs.join(", "),
            names.join(", ")
        )),
        Err(e) => s.reporter.warn(&format!(
            "could not remove the pending taint {PENDING_TAINT} left by run {}: {e}; remove it with `{CLEAR_PENDING_BY_HAND}`",
            runs.join(", ")
        )),
    }
}

/// Whether the lock can be had, before anything waits: a live run's lock is refused now
/// (not after the health gate waited for that run's node), and so is a dead one's without
/// `--force-unlock`, naming it dead and the way to finish its run.
async fn check_lock(
    s: &Session<'_>,
    prepared: &Prepared,
    holder: &HolderInfo,
    lock_opts: &LockOptions,
) -> anyhow::Result<()> {
    match k::Lock::check(&s.ctx.client, holder, lock_opts, s.args.force_unlock).await {
        Ok(Some((state, k::lock::Liveness::DeadHere { pid, .. }))) => {
            // Taking a dead run's lock over for a new run would leave its node out behind
            // the gate: that run's own resume finishes it first.
            let dead_run = state.holder_info.as_ref().map(|h| h.run_id.as_str());
            let left =
                dead_run.and_then(|run| other_run::node_of(&prepared.rows, run, &prepared.chain).map(|n| (n, run)));
            match left {
                Some((node, run)) => Err(OtherRun::Dead { pid }.refusal(&node.name, run).into()),
                None => Ok(()),
            }
        }
        Ok(Some((state, k::lock::Liveness::Expired { .. }))) => {
            s.reporter.info(&format!(
                "the lock's lease, held by {}, has expired; it is watched for up to {}s (one of its renewal periods) before it is taken over",
                state.holder.as_deref().unwrap_or("another run"),
                k::lock::watch_period(&state, lock_opts.observe).as_secs()
            ));
            Ok(())
        }
        Ok(_) => Ok(()),
        Err(e) => Err(lock_failure("cannot read the aks-patch lock", e)),
    }
}

/// The health gate before the lock; with nodes left out by the interrupted run, it is said
/// and passed.
async fn gate(
    s: &Session<'_>,
    prepared: &Prepared,
    cluster: &KubeCluster,
    left_out: &[&str],
    cancel: &CancellationToken,
) -> anyhow::Result<()> {
    let gate_wait = if left_out.is_empty() {
        Duration::from_secs(prepared.options.health_wait)
    } else {
        Duration::ZERO
    };
    let gate = wait_gate(
        cluster,
        &prepared.ours_in_cluster,
        &[],
        &prepared.start_budget(),
        gate_wait,
        GATE_POLL,
        cancel,
        s.reporter,
    )
    .await;
    match gate {
        Ok(()) => Ok(()),
        Err(GateStop::Blocked { blockers, .. }) if !left_out.is_empty() => {
            s.reporter.warn(&format!(
                "{}: finishing {} (left out of service by the interrupted run) first; no other node is taken out until the cluster is healthy",
                crate::rollout::gate::blockers_text(&blockers),
                left_out.join(", ")
            ));
            Ok(())
        }
        Err(GateStop::Cancelled) => Err(Failure::new(
            Exit::Interrupted,
            "interrupted before the lock was taken; nothing was changed",
        )
        .into()),
        Err(e @ GateStop::Blocked { .. }) => {
            let hint = e.hint().unwrap_or_default();
            Err(
                Failure::new(Exit::NodesFailed, format!("not starting: {e}; nothing was changed"))
                    .hint(hint)
                    .into(),
            )
        }
        Err(ref e @ GateStop::Failed(ref p)) => {
            Err(Failure::new(if p.is_auth() { Exit::Auth } else { Exit::Failure }, e.to_string()).into())
        }
    }
}

/// The cluster-wide lock, held (and renewed) for the whole run.
async fn take_lock(s: &Session<'_>, holder: &HolderInfo, lock_opts: &LockOptions) -> anyhow::Result<LockGuard> {
    let guard = k::Lock::acquire_with(&s.ctx.client, holder.clone(), lock_opts, s.args.force_unlock)
        .await
        .map_err(|e| lock_failure("cannot take the aks-patch lock", e))?;
    if let (Some(prev), Some(why)) = (guard.previous_holder(), guard.takeover_reason()) {
        s.reporter.warn(&format!("took over the lock from {prev}: {why}"));
    }
    s.reporter
        .info(&format!("lock taken: Lease {} as {}", guard.lease(), holder.identity()));
    Ok(guard)
}

/// A lock that is held by another run exits 7; one that cannot be read or written says what
/// was being done.
fn lock_failure(doing: &str, e: k::LockError) -> anyhow::Error {
    match e {
        e @ (k::LockError::Held { .. } | k::LockError::HeldByLiveProcess { .. }) => {
            anyhow::Error::new(output::WithExit::wrap(e, Exit::LockHeld))
        }
        k::LockError::Kube(e) => context::kube_failure(doing, e),
        e => anyhow::Error::new(e).context(doing.to_string()),
    }
}
