//! `apply`'s end, whatever happened: the lock released (and said so), the run record
//! closed, metrics pushed, the after-table, the summary with what is left cordoned and how to
//! recover, and the last notifications.

use super::input::remember_scans;
use super::notify;
use super::view::{after_rows, after_table};
use super::Session;
use super::LOCK_DURATION;
use crate::commands::Outcome;
use crate::kube::drain as kdrain;
use crate::kube::{self as k, LockGuard};
use crate::output::Exit;
use crate::rollout::after::left_cordoned;
use crate::rollout::journal::{self, NodeState, RunRecord, RunStatus};
use crate::rollout::stop::RunStop;
use std::time::Duration;

/// How the engine ended, and what it leaves to say.
pub(super) struct Ended {
    pub result: Result<(), RunStop>,
    /// Why the lock was lost, if it was.
    pub lock_lost: Option<String>,
}

pub(super) async fn finish(
    s: &Session<'_>,
    guard: LockGuard,
    mut record: RunRecord,
    ended: Ended,
    notifier: Option<crate::notify::Notifier>,
) -> anyhow::Result<Outcome> {
    let Ended { result, lock_lost } = ended;
    // Whatever happened: release the lock, and say so.
    release(s, guard).await;
    let (exit, err) = close(s, &mut record, &result).await;
    push_metrics(s, &record).await;
    remember_scans(s.settings, &record);

    let now_rows = k::list_node_infos(&s.ctx.client, None).await.ok();
    let after = after_rows(&record, now_rows.as_deref());
    let left = left_cordoned(&record, now_rows.as_deref());
    let summary = summary(s, &record, &left, lock_lost.as_deref());
    let value = if crate::commands::shows_table(&s.args.global) {
        serde_json::Value::Array(after)
    } else {
        // The record, with what its drains evicted counted as the summary says it.
        let mut value = serde_json::to_value(&record)?;
        value["evictions"] = serde_json::to_value(record.evictions())?;
        value
    };
    if let Some(n) = notifier {
        notify_end(s, n, &record, &left, &summary).await;
    }
    if let Some(msg) = err {
        s.reporter.error(&msg);
    }
    Ok(Outcome {
        value,
        table: Some(after_table()),
        summary: Some(summary),
        exit,
    })
}

/// Give the lock back; if that fails, say what becomes of it.
async fn release(s: &Session<'_>, guard: LockGuard) {
    match guard.release().await {
        Ok(()) => s.reporter.info("lock released"),
        Err(k::LockError::Lost { reason, .. }) => s.reporter.warn(&format!(
            "the aks-patch lock was not released: {reason}"
        )),
        Err(e) => s.reporter.error(&format!(
            "could not release the aks-patch lock: {e}; {}, or, once you are sure no aks-patch run is working, remove it with `kubectl -n kube-system delete lease aks-patch`",
            k::lock::expiry_text(LOCK_DURATION)
        )),
    }
}

/// Close the run record with how the run ended: the exit code, and the error to say. The
/// summary comes from memory whatever the disk says; a record that cannot be closed is said
/// (once), and is no success.
async fn close(s: &Session<'_>, record: &mut RunRecord, result: &Result<(), RunStop>) -> (Exit, Option<String>) {
    record.finished_at = Some(journal::now());
    let (status, err) = match result {
        Ok(()) => (RunStatus::Succeeded, None),
        Err(RunStop::Interrupted) => (RunStatus::Interrupted, Some("interrupted".to_string())),
        Err(RunStop::OutsideWindow(msg)) => (RunStatus::Interrupted, Some(msg.clone())),
        Err(RunStop::LockLost(msg)) => (
            RunStatus::Failed,
            Some(format!("{msg}; stopped without starting another node")),
        ),
        Err(stop) => (RunStatus::Failed, Some(stop.message())),
    };
    let mut exit = result.as_ref().err().map(Exit::from).unwrap_or(Exit::Ok);
    record.status = status;
    record.error = err.clone();
    let mut err = err;
    if let Err(e) = s.journal.save(record).await {
        if !matches!(result, Err(RunStop::RecordUnwritable(_))) {
            let msg = format!(
                "the run record {} cannot be written ({}): it does not show how this run ended; {}, then `aks-patch apply ... --resume` checks each node again",
                e.location(),
                e.cause(),
                e.remedy()
            );
            err = Some(match err {
                Some(m) => format!("{m}; {msg}"),
                None => msg,
            });
            if exit == Exit::Ok {
                exit = Exit::Failure;
            }
        }
    }
    (exit, err)
}

/// `--pushgateway-url`: the run's metrics, whatever its result (a failed push changes none).
async fn push_metrics(s: &Session<'_>, record: &RunRecord) {
    let Some(url) = &s.args.metrics.pushgateway_url else {
        return;
    };
    let families = crate::metrics::run_families(record);
    match crate::metrics::push(
        url,
        "aks-patch-apply",
        &s.ctx.cluster.name,
        &families,
        s.settings.ca_bundle.as_ref(),
        Duration::from_secs(10),
    )
    .await
    {
        Ok(()) => s.reporter.verbose("pushed the run's metrics"),
        Err(e) => s.reporter.warn(&format!("{e}; the run's result is not affected")),
    }
}

/// The closing line: what was patched and rebooted, how the run ended, what it left
/// cordoned (`left`: names, and whether the cluster confirmed it) or unproven, and how to go on.
fn summary(s: &Session<'_>, record: &RunRecord, left: &[(String, bool)], lock_lost: Option<&str>) -> String {
    let done = record.nodes.iter().filter(|n| n.state == NodeState::Done).count();
    let rebooted = record.nodes.iter().filter(|n| n.rebooted).count();
    let mut summary = format!(
        "{done} of {} node(s) patched, {rebooted} rebooted; run {} {}",
        record
            .nodes
            .iter()
            .filter(|n| !matches!(n.state, NodeState::Skipped | NodeState::Gone))
            .count(),
        record.run_id,
        match record.status {
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "halted",
            RunStatus::Interrupted => "interrupted",
            RunStatus::Running => "running",
        }
    );
    let evictions = record.evictions();
    if evictions.evicted > 0 {
        summary.push_str(&format!(
            "; {} pod(s) evicted, {} of them more than once (pods created during this run, or a name evicted twice)",
            evictions.evicted, evictions.moved_again
        ));
    }
    if !left.is_empty() {
        let names: Vec<&str> = left.iter().map(|(n, _)| n.as_str()).collect();
        let unsure = left.iter().any(|(_, sure)| !sure);
        summary.push_str(&format!(
            "; left cordoned by this run{}: {} (once healthy: `aks-patch apply ... --resume` uncordons it, or by hand `{}`)",
            if unsure { " (the cluster could not be read to confirm)" } else { "" },
            names.join(", "),
            kdrain::put_back_by_hand(&names)
        ));
    }
    let in_state = |state: NodeState| -> Vec<&str> {
        record
            .nodes
            .iter()
            .filter(|n| n.state == state)
            .map(|n| n.name.as_str())
            .collect()
    };
    let unproven = in_state(NodeState::Unproven);
    if !unproven.is_empty() {
        summary.push_str(&format!(
            "; rebooted and put back but not proven patched (unproven): {} (fix the connection to it, then `aks-patch apply ... --resume` proves it)",
            unproven.join(", ")
        ));
    }
    // Upgraded at their turn or ahead of it (a batch's next nodes), never taken out: in
    // service with their reboot pending, as unattended upgrades leave a node.
    let upgraded = in_state(NodeState::Upgraded);
    if !upgraded.is_empty() {
        summary.push_str(&format!(
            "; upgraded but not rebooted yet (in service, the reboot pending): {} (`aks-patch apply ... --resume` reboots them without upgrading again)",
            upgraded.join(", ")
        ));
    }
    if let Some(lost) = lock_lost {
        summary.push_str(&format!("; the lock was lost ({lost}): no node was started after that"));
    }
    if record.status != RunStatus::Succeeded {
        summary.push_str(&format!(
            "; continue later with `aks-patch apply ... {} --resume` (record: {})",
            match record.options.max_unavailable {
                Some(m) => format!("--max-unavailable {m}"),
                None => "--one-at-a-time".to_string(),
            },
            s.journal.location_of(record)
        ));
    }
    summary
}

/// The last notifications: each node left cordoned, then the run's end; sent before exiting.
async fn notify_end(
    s: &Session<'_>,
    n: crate::notify::Notifier,
    record: &RunRecord,
    left: &[(String, bool)],
    summary: &str,
) {
    for (name, _) in left {
        if let Some(node) = record.nodes.iter().find(|r| &r.name == name) {
            n.send(crate::notify::node_event(
                crate::notify::EventKind::NodeLeftCordoned,
                &s.ctx.cluster.name,
                &s.run_id,
                node,
                Some(&format!(
                    "once it is healthy, `aks-patch apply ... --resume` uncordons it, or by hand `{}`",
                    kdrain::put_back_by_hand(&[name])
                )),
            ));
        }
    }
    n.send(notify::event(
        crate::notify::EventKind::RunFinished,
        &s.ctx.cluster.name,
        &s.run_id,
        summary.to_string(),
    ));
    n.finish(Duration::from_secs(20)).await;
}
