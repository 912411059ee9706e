//! `apply`'s start, after the pre-flight and the confirmation: the health gate and the
//! blockers before the lock, `--force-unlock`'s own check, the cluster-wide lock, and the run
//! record written before the first change.

use super::blockers;
use super::prepare::Prepared;
use super::GATE_POLL;
use super::LOCK_DURATION;
use crate::cli::ApplyArgs;
use crate::commands::context;
use crate::kube::{self as k, CancellationToken, HolderInfo, LockGuard};
use crate::output::{self, Exit, Failure, Reporter};
use crate::rollout::engine::BlockerPolicy;
use crate::rollout::gate::{wait_gate, GateStop};
use crate::rollout::journal::{self, Journal, NodeRecord, NodeState, RunRecord, RunStatus};
use crate::rollout::live::KubeCluster;
use crate::settings::Settings;
use std::time::Duration;

/// The gate, the blockers and the lock, then the run record: `Err` with nothing changed (the
/// lock, if taken, given back).
#[allow(clippy::too_many_arguments)]
pub(super) async fn start(
    args: &ApplyArgs,
    settings: &Settings,
    ctx: &context::ClusterContext,
    prepared: &Prepared,
    journal: &Journal,
    run_id: &str,
    cluster: &KubeCluster,
    blocker_policy: Option<&BlockerPolicy>,
    cancel: &CancellationToken,
    reporter: &Reporter,
) -> anyhow::Result<(LockGuard, RunRecord)> {
    let Prepared {
        resumed,
        options,
        chain,
        rows,
        entries,
        before_by_name,
        ours_in_cluster,
        ..
    } = prepared;
    // Whether the lock can be had, before anything waits: a live run's lock is refused now
    // (not after the health gate waited for that run's node), and so is a dead one's
    // without --force-unlock, naming it dead and the way to finish its run.
    let holder = HolderInfo::current(settings, run_id);
    let lock_opts = k::LockOptions::new(LOCK_DURATION);
    match k::Lock::check(&ctx.client, &holder, &lock_opts, args.force_unlock).await {
        Ok(Some((state, k::lock::Liveness::DeadHere { pid, .. }))) => {
            // Taking a dead run's lock over for a new run would leave its node out behind
            // the gate: that run's own resume finishes it first.
            let dead_run = state
                .holder_info
                .as_ref()
                .map(|h| h.run_id.clone())
                .filter(|run| !chain.contains(run));
            let left = dead_run
                .as_ref()
                .and_then(|run| rows.iter().find(|r| r.in_progress.as_ref() == Some(run)).map(|r| (r, run)));
            if let Some((node, run)) = left {
                return Err(Failure::new(
                    Exit::LockHeld,
                    format!(
                        "node {} is out of service, left by aks-patch run {run}, which is dead (pid {pid} on this host is gone); nothing was changed",
                        node.name
                    ),
                )
                .hint(format!(
                    "`aks-patch apply --one-at-a-time --resume --force-unlock` finishes that run (node {} first), or `{}` puts the node back by hand",
                    node.name,
                    crate::kube::drain::put_back_by_hand(&[&node.name])
                ))
                .into());
            }
        }
        Ok(Some((state, k::lock::Liveness::Expired { .. }))) => reporter.info(&format!(
            "the lock's lease, held by {}, has expired; it is watched for up to {}s (one of its renewal periods) before it is taken over",
            state.holder.as_deref().unwrap_or("another run"),
            k::lock::watch_period(&state, lock_opts.observe).as_secs()
        )),
        Ok(_) => {}
        Err(e @ (k::LockError::Held { .. } | k::LockError::HeldByLiveProcess { .. })) => {
            return Err(anyhow::Error::new(output::WithExit::wrap(e, Exit::LockHeld)));
        }
        Err(k::LockError::Kube(e)) => {
            return Err(context::kube_failure("cannot read the aks-patch lock", e));
        }
        Err(e) => return Err(anyhow::Error::new(e).context("cannot read the aks-patch lock")),
    }

    // The health gate before the lock: nothing else may be out. A resumed run that has nodes
    // out of service (the interrupted run's) takes the lock whatever the gate says, to put
    // them back: the engine finishes them first and holds every other node at its own gate.
    let left_out = prepared.left_out();
    let gate_wait = if left_out.is_empty() {
        Duration::from_secs(args.health_wait)
    } else {
        Duration::ZERO
    };
    let gate = wait_gate(cluster, ours_in_cluster, &[], gate_wait, GATE_POLL, cancel, reporter).await;
    let gate = match gate {
        Err(GateStop::Blocked { blockers, .. }) if !left_out.is_empty() => {
            reporter.warn(&format!(
                "{}: finishing {} (left out of service by the interrupted run) first; no other node is taken out until the cluster is healthy",
                crate::rollout::gate::blockers_text(&blockers),
                left_out.join(", ")
            ));
            Ok(())
        }
        other => other,
    };
    if let Err(e) = gate {
        return Err(match e {
            GateStop::Cancelled => Failure::new(
                Exit::Interrupted,
                "interrupted before the lock was taken; nothing was changed",
            )
            .into(),
            GateStop::Blocked { .. } => {
                let hint = e.hint().unwrap_or_default();
                Failure::new(Exit::NodesFailed, format!("not starting: {e}; nothing was changed"))
                    .hint(hint)
                    .into()
            }
            GateStop::Failed(ref p) => {
                Failure::new(if p.auth { Exit::Auth } else { Exit::Failure }, e.to_string()).into()
            }
        });
    }
    // Blockers hold disruptions; putting back the nodes left out is none (the engine checks
    // the blockers again before every cordon).
    if let (Some(b), true) = (&blocker_policy, left_out.is_empty()) {
        blockers::before_lock(b, cancel, reporter).await?
    }
    if args.force_unlock {
        if let Some((node, run)) = rows.iter().filter(|r| !r.is_ready()).find_map(|r| {
            r.in_progress
                .clone()
                .filter(|run| !chain.contains(run))
                .map(|run| (r.name.clone(), run))
        }) {
            return Err(Failure::new(
                Exit::LockHeld,
                format!("refusing --force-unlock: node {node} is out of service in run {run} and not Ready, so that run may still be working on it; nothing was changed"),
            )
            .hint(format!("wait for run {run}, or resume it with --resume if it died"))
            .into());
        }
    }

    // The cluster-wide lock, held (and renewed) for the whole run.
    let guard = match k::Lock::acquire_with(&ctx.client, holder.clone(), &lock_opts, args.force_unlock).await {
        Ok(g) => g,
        Err(e @ (k::LockError::Held { .. } | k::LockError::HeldByLiveProcess { .. })) => {
            return Err(anyhow::Error::new(output::WithExit::wrap(e, Exit::LockHeld)));
        }
        Err(k::LockError::Kube(e)) => {
            return Err(context::kube_failure("cannot take the aks-patch lock", e));
        }
        Err(e) => {
            return Err(anyhow::Error::new(e).context("cannot take the aks-patch lock"));
        }
    };
    if let (Some(prev), Some(why)) = (guard.previous_holder(), guard.takeover_reason()) {
        reporter.warn(&format!("took over the lock from {prev}: {why}"));
    }
    reporter.info(&format!("lock taken: Lease {} as {}", guard.lease(), holder.identity()));

    let record = RunRecord {
        schema_version: journal::SCHEMA_VERSION,
        run_id: run_id.to_string(),
        cluster: ctx.cluster.clone(),
        status: RunStatus::Running,
        started_at: journal::now(),
        finished_at: None,
        holder: holder.identity(),
        options: options.clone(),
        nodes: entries
            .iter()
            .map(|e| {
                let mut n = NodeRecord::new(&e.name, &e.pool);
                if let Some(prev) = resumed.as_ref().and_then(|p| p.nodes.iter().find(|n| n.name == e.name)) {
                    n = prev.clone();
                }
                if e.gone {
                    n.state = NodeState::Gone;
                    n.skip_reason = e.reason.clone();
                } else if !e.patch() && n.state == NodeState::Pending {
                    n.state = NodeState::Skipped;
                    n.skip_reason = e.reason.clone();
                }
                n.kernel_before = n
                    .kernel_before
                    .or_else(|| before_by_name.get(&e.name).and_then(|r| r.running_kernel.clone()));
                n
            })
            .collect(),
        error: None,
        resumed_from: chain.clone(),
    };
    let saved = journal.save(&record).and_then(|path| {
        reporter.verbose(&format!("run record: {}", path.display()));
        match &resumed {
            // The old record is superseded by this one.
            Some(prev) => {
                let mut old = prev.clone();
                old.status = RunStatus::Interrupted;
                old.error.get_or_insert_with(|| format!("resumed by run {run_id}"));
                old.finished_at.get_or_insert_with(journal::now);
                journal.save(&old).map(|_| ())
            }
            None => Ok(()),
        }
    });
    if let Err(e) = saved {
        // Nothing has changed yet: give the lock back and stop.
        if let Err(r) = guard.release().await {
            reporter.error(&format!(
                "could not release the aks-patch lock: {r}; {}",
                k::lock::expiry_text(LOCK_DURATION)
            ));
        }
        return Err(anyhow::Error::new(e).context("cannot write the run record; nothing was changed"));
    }
    Ok((guard, record))
}
