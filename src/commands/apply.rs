//! `aks-patch apply --one-at-a-time`: a safe rolling patch and reboot.
//!
//! Each node moves through `pending → upgraded → (done) | cordoned → drained → rebooting →
//! back → done`, or into `failed` (or `gone`, when it was deleted meanwhile). Every
//! transition is written to the run record before the next side effect.
//!
//! The promises, and where they are kept:
//! - **Never two nodes out at once**: the health gate ([`crate::rollout::gate`]) runs before
//!   the lock is taken and before every cordon, counting every node of the cluster (NotReady,
//!   unreachable, or marked in progress by any run) and the workloads the last drain evicted.
//! - **Fencing**: before every cordon, eviction attempt and reboot the lock is proven ours by
//!   a renewal; a run that lost it only finishes the node in hand, then stops with exit 7.
//! - **Nothing certain to fail is started**: values, SSH key, journal directory, pods that
//!   will refuse to drain, PDBs that can never allow, kured's lock: all before the lock.
//! - **Honest resume**: a failed node is redone from its upgrade; a node the interrupted run
//!   left cordoned is uncordoned once it is back, or named; a node is `patched` only when
//!   its upgrade succeeded and the probe after it finds nothing pending of the chosen mode.
//! - **Ctrl-C is a safe point**: apt runs detached on the node and is waited for.

use super::context::{self, ClusterContext};
use super::scan::{candidate, scan_nodes, ScanRow};
use super::{scans, Outcome};
use crate::cli::{self, ApplyArgs, OutputFormat};
use crate::kube::drain::{self as kdrain, WorkloadRef};
use crate::kube::{self as k, CancellationToken, DrainOptions, HolderInfo, KubeError, LockGuard, NodeRow};
use crate::output::{self, Column, Exit, Failure, Reporter, TableSpec};
use crate::rollout::gate::{self, Blocker, GateError};
use crate::rollout::journal::{
    self, Journal, NodeRecord, NodeState, RebootPolicy, RunOptions, RunRecord, RunStatus, Step, UpgradeMode,
    UpgradedPackage,
};
use crate::rollout::plan::{self, Filters, PlanEntry};
use crate::settings::Settings;
use crate::ssh::{self, SshError, SshOptions};
use serde_json::json;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// How long the Lease lock lives without renewal.
const LOCK_DURATION: Duration = Duration::from_secs(60);
/// How long apt may wait for the dpkg lock (unattended-upgrades) on a node.
const DPKG_LOCK_TIMEOUT_SECS: u64 = 600;
/// How long one upgrade may run in all.
const UPGRADE_TIMEOUT: Duration = Duration::from_secs(3600);
/// Eviction attempts trust a lock renewal at most this old (cordon and reboot renew anew).
const EVICTION_FENCE_AGE: Duration = Duration::from_secs(2);
/// How often the health gate looks again while something blocks.
const GATE_POLL: Duration = Duration::from_secs(1);

pub async fn run(args: ApplyArgs, settings: &Settings, reporter: &Reporter) -> anyhow::Result<Outcome> {
    // Pre-flight, part 1: what needs no server at all.
    let journal = Journal::new(
        args.journal_dir
            .clone()
            .unwrap_or_else(|| settings.state_dir.join("runs")),
    );
    if !args.dry_run {
        check_journal_dir(journal.dir())?;
    }
    if let Some(key) = &args.ssh.ssh_key {
        ssh::check_private_key(key).map_err(|e| Failure::new(Exit::Usage, e).hint("nothing was changed"))?;
    }
    SshOptions::from_args(&args.ssh, "azureuser", &settings.state_dir)
        .map_err(|e| anyhow::Error::new(output::WithExit::wrap(e, Exit::Usage)))?;
    let requested = run_options(&args);

    let ctx = context::resolve(&args.cluster, settings, reporter, false).await?;
    if let Some(w) = ctx.channel_warning() {
        reporter.warn(&w);
    }
    let ssh_opts = SshOptions::from_args(&args.ssh, &ctx.admin_user, &settings.state_dir)
        .map_err(|e| anyhow::Error::new(output::WithExit::wrap(e, Exit::Usage)))?;

    // What to patch, in which order, with which options.
    let resumed = if args.resume {
        let prev = journal.latest_unfinished(&ctx.cluster.key)?.ok_or_else(|| {
            Failure::new(
                Exit::Usage,
                format!("there is no unfinished run of {} to resume", ctx.cluster.name),
            )
            .hint(format!(
                "the run records are in {}; start a new run without --resume",
                journal.dir().display()
            ))
        })?;
        Some(prev)
    } else {
        None
    };
    let options = match &resumed {
        Some(prev) => resume_options(&prev.options, &requested, &prev.run_id)?,
        None => requested,
    };
    let drain_opts = drain_options(&options, args.eviction_retry_interval);
    // This run and the ones it continues: nodes marked by any of them are ours to finish.
    let chain: Vec<String> = resumed
        .as_ref()
        .map(|p| {
            let mut v = p.resumed_from.clone();
            v.push(p.run_id.clone());
            v
        })
        .unwrap_or_default();

    let first = tokio::time::timeout(
        Duration::from_secs(args.request_timeout),
        k::list_node_rows(&ctx.client, args.selector.as_deref()),
    )
    .await
    .map_err(|_| {
        Failure::new(
            Exit::Failure,
            format!(
                "the Kubernetes API server of {} did not answer within {}s (--request-timeout); nothing was changed",
                ctx.cluster.name, args.request_timeout
            ),
        )
        .hint("check that the API server is reachable from here (VPN, authorized IP ranges, private cluster), or raise --request-timeout")
    })?;
    let rows =
        match first {
            Ok(rows) => rows,
            // The API server judges the selector, as it does for kubectl -l.
            Err(e) if e.status_code() == Some(400) && args.selector.is_some() => return Err(Failure::new(
                Exit::Usage,
                format!(
                    "invalid --selector `{}`: the API server says: {}",
                    args.selector.as_deref().unwrap_or_default(),
                    api_message(&e)
                ),
            )
            .hint(
                "use Kubernetes label selector syntax, e.g. `agentpool=user` or `kubernetes.azure.com/mode in (user)`",
            )
            .into()),
            Err(e) => return Err(context::kube_failure("cannot list the cluster's nodes", e)),
        };
    let entries = match &resumed {
        Some(prev) => resume_plan(prev, &rows),
        None => {
            let cands: Vec<_> = rows.iter().map(|r| candidate(&ctx, r)).collect();
            let filters = Filters {
                nodepools: args.nodepool.clone(),
                nodes: args.nodes.clone(),
            };
            plan::plan(&cands, &ctx.pool_order(), &filters, &ctx.az_args)
                .map_err(|e| anyhow::Error::new(output::WithExit::wrap(e, Exit::Usage)))?
        }
    };
    let selected = !args.nodes.is_empty() || !args.nodepool.is_empty() || args.selector.is_some();
    if resumed.is_none() && selected && !entries.iter().any(PlanEntry::patch) {
        return Err(nothing_selected(&entries, args.selector.as_deref()).into());
    }
    if entries.iter().all(|e| !e.patch()) {
        reporter.info("nothing to patch: no Linux node of the selection can be patched in place");
    }

    // Before-table: probe the nodes to patch (read-only).
    let planned_rows: Vec<NodeRow> = rows
        .iter()
        .filter(|r| entries.iter().any(|e| e.name == r.name && e.patch()))
        .cloned()
        .collect();
    let before = scan_nodes(&ctx, &planned_rows, &ssh_opts, 16, false, reporter).await;
    let before_by_name: BTreeMap<String, ScanRow> = before.iter().map(|r| (r.name.clone(), r.clone())).collect();
    let plan_value = plan_value(&entries, &before_by_name, &rows);
    reporter.info(&format!(
        "Plan for {} ({}): one node at a time, pool by pool, nodes by name; upgrade mode {}, reboot {}",
        ctx.cluster.name,
        ctx.cluster.key,
        enum_text(&options.upgrade_mode),
        enum_text(&options.reboot)
    ));
    reporter.info(&output::render(
        &plan_value,
        Some(&plan_table()),
        OutputFormat::Table,
        None,
        false,
    )?);

    // A node an interrupted run left rebooting may still be down: resuming waits for it.
    let rebooting = |name: &str| {
        resumed.as_ref().is_some_and(|p| {
            p.nodes
                .iter()
                .any(|n| n.name == name && (n.in_hand || matches!(n.state, NodeState::Rebooting | NodeState::Back)))
        })
    };
    let unreachable: Vec<&ScanRow> = before
        .iter()
        .filter(|r| r.error.is_some() && !rebooting(&r.name) && entries.iter().any(|e| e.name == r.name && e.patch()))
        .collect();
    if let Some(r) = unreachable.first() {
        return Err(Failure::new(
            Exit::NodesFailed,
            format!(
                "cannot probe node {} before the rollout: {}; nothing was changed",
                r.name,
                r.error.as_deref().unwrap_or("")
            ),
        )
        .hint("fix SSH to that node, or leave it out with --nodes / --nodepool / --selector, then run again")
        .into());
    }

    // Pre-flight, part 2: what will certainly fail, before anything changes.
    let resume_states: BTreeMap<String, NodeState> = resumed
        .as_ref()
        .map(|p| p.nodes.iter().map(|n| (n.name.clone(), n.state)).collect())
        .unwrap_or_default();
    let checks = preflight_drains(
        &ctx,
        &entries,
        &before_by_name,
        &drain_opts,
        options.reboot,
        &resume_states,
    )
    .await?;
    let kured = k::kured_lock_holder(&ctx.client)
        .await
        .map_err(|e| anyhow::Error::new(e).context("cannot read kured's lock"))?;
    let ours_in_cluster = marked_by(&rows, &chain);
    let gate_now = gate::check(&ctx.client, &ours_in_cluster, &[])
        .await
        .map_err(|e| context::kube_failure("cannot check the cluster's health", e))?;

    if args.dry_run {
        return Ok(dry_run_outcome(
            &ctx,
            &args,
            plan_value,
            &checks,
            &gate_now,
            kured.as_deref(),
            reporter,
        ));
    }
    if !entries.iter().any(PlanEntry::patch) {
        return Ok(Outcome {
            value: plan_value,
            table: Some(plan_table()),
            summary: Some("nothing to do".into()),
            exit: Exit::Ok,
        });
    }
    refuse_certain_failures(&checks)?;
    if let Some(h) = &kured {
        return Err(Failure::new(
            Exit::LockHeld,
            format!("kured holds its reboot lock for {h}: it is rebooting that node; nothing was changed"),
        )
        .hint("wait for kured to finish (or pause it), then run again")
        .into());
    }
    confirm(&args, &ctx, entries.iter().filter(|e| e.patch()).count())?;

    // Ctrl-C / SIGTERM from here on stop at a safe point instead of killing the process.
    let cancel = CancellationToken::new();
    let abandon = CancellationToken::new();
    let signals = tokio::spawn(watch_signals(cancel.clone(), abandon.clone(), reporter.clone()));

    // The health gate before the lock: nothing else may be out.
    let gate_wait = Duration::from_secs(args.health_wait);
    if let Err(e) = wait_gate(&ctx, &ours_in_cluster, &[], gate_wait, &cancel, reporter).await {
        signals.abort();
        return Err(match e {
            GateError::Cancelled => Failure::new(
                Exit::Interrupted,
                "interrupted before the lock was taken; nothing was changed",
            )
            .into(),
            GateError::Blocked { .. } => {
                let hint = e.hint().unwrap_or_default();
                Failure::new(Exit::NodesFailed, format!("not starting: {e}; nothing was changed"))
                    .hint(hint)
                    .into()
            }
            GateError::Kube(k) => context::kube_failure("cannot check the cluster's health", k),
        });
    }
    if args.force_unlock {
        if let Some((node, run)) = rows.iter().filter(|r| !r.ready).find_map(|r| {
            r.in_progress
                .clone()
                .filter(|run| !chain.contains(run))
                .map(|run| (r.name.clone(), run))
        }) {
            signals.abort();
            return Err(Failure::new(
                Exit::LockHeld,
                format!("refusing --force-unlock: node {node} is out of service in run {run} and not Ready, so that run may still be working on it; nothing was changed"),
            )
            .hint(format!("wait for run {run}, or resume it with --resume if it died"))
            .into());
        }
    }

    // The cluster-wide lock, held (and renewed) for the whole run.
    let run_id = journal::new_run_id();
    let holder = HolderInfo::current(&run_id);
    let guard = match k::Lock::acquire(&ctx.client, holder.clone(), LOCK_DURATION, args.force_unlock).await {
        Ok(g) => g,
        Err(e @ (k::LockError::Held { .. } | k::LockError::HeldByLiveProcess { .. })) => {
            signals.abort();
            return Err(anyhow::Error::new(output::WithExit::wrap(e, Exit::LockHeld)));
        }
        Err(k::LockError::Kube(e)) => {
            signals.abort();
            return Err(context::kube_failure("cannot take the aks-patch lock", e));
        }
        Err(e) => {
            signals.abort();
            return Err(anyhow::Error::new(e).context("cannot take the aks-patch lock"));
        }
    };
    if let Some(prev) = guard.previous_holder() {
        reporter.warn(&format!("took over the lock from {prev} (--force-unlock)"));
    }
    reporter.info(&format!("lock taken: Lease {} as {}", guard.lease(), holder.identity()));

    let mut record = RunRecord {
        run_id: run_id.clone(),
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
        signals.abort();
        if let Err(r) = guard.release().await {
            reporter.error(&format!(
                "could not release the aks-patch lock: {r}; it expires by itself after {}s",
                LOCK_DURATION.as_secs()
            ));
        }
        return Err(anyhow::Error::new(e).context("cannot write the run record; nothing was changed"));
    }

    let mut engine = Engine {
        ctx: &ctx,
        ssh: &ssh_opts,
        options: &options,
        drain: drain_opts,
        journal: &journal,
        reporter,
        cancel: cancel.clone(),
        abandon: abandon.clone(),
        guard: &guard,
        run_id: run_id.clone(),
        gate_wait,
        lock_lost: None,
    };
    let result = engine.run_all(&mut record).await;
    let lock_lost = engine.lock_lost.clone();
    signals.abort();

    // Whatever happened: release the lock, and say so.
    let release = guard.release().await;
    match &release {
        Ok(()) => reporter.info("lock released"),
        Err(k::LockError::Lost { reason, .. }) => reporter.warn(&format!(
            "the aks-patch lock was not released: {reason}"
        )),
        Err(e) => reporter.error(&format!(
            "could not release the aks-patch lock: {e}; it expires by itself after {}s, or, once you are sure no aks-patch run is working, remove it with `kubectl -n kube-system delete lease aks-patch`",
            LOCK_DURATION.as_secs()
        )),
    }

    record.finished_at = Some(journal::now());
    let (status, exit, err) = match &result {
        Ok(()) => (RunStatus::Succeeded, Exit::Ok, None),
        Err(RunStop::Interrupted) => (
            RunStatus::Interrupted,
            Exit::Interrupted,
            Some("interrupted".to_string()),
        ),
        Err(RunStop::Failed { message, exit }) => (RunStatus::Failed, *exit, Some(message.clone())),
        Err(RunStop::LockLost(msg)) => (
            RunStatus::Failed,
            Exit::LockHeld,
            Some(format!("{msg}; stopped without starting another node")),
        ),
    };
    record.status = status;
    record.error = err.clone();
    journal.save(&record)?;
    remember_scans(settings, &record);

    let now_rows = k::list_node_rows(&ctx.client, None).await.ok();
    let after = after_rows(&record, now_rows.as_deref());
    let left = left_cordoned(&record, now_rows.as_deref());
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
    if !left.is_empty() {
        let names: Vec<&str> = left.iter().map(|(n, _)| n.as_str()).collect();
        let unsure = left.iter().any(|(_, sure)| !sure);
        summary.push_str(&format!(
            "; left cordoned by this run{}: {} (once healthy: `aks-patch apply ... --resume` uncordons it, or by hand `kubectl uncordon {} && kubectl annotate node {} {}-`)",
            if unsure { " (the cluster could not be read to confirm)" } else { "" },
            names.join(", "),
            names.join(" "),
            names.join(" "),
            kdrain::IN_PROGRESS_ANNOTATION
        ));
    }
    if let Some(lost) = &lock_lost {
        summary.push_str(&format!("; the lock was lost ({lost}): no node was started after that"));
    }
    if record.status != RunStatus::Succeeded {
        summary.push_str(&format!(
            "; continue later with `aks-patch apply ... --one-at-a-time --resume` (record: {})",
            journal.path_of(&record).display()
        ));
    }
    let value = if matches!(
        args.global.output,
        OutputFormat::Table | OutputFormat::Wide | OutputFormat::Tsv
    ) && args.global.query.is_none()
    {
        serde_json::Value::Array(after)
    } else {
        serde_json::to_value(&record)?
    };
    if let Some(msg) = err {
        reporter.error(&msg);
    }
    Ok(Outcome {
        value,
        table: Some(after_table()),
        summary: Some(summary),
        exit,
    })
}

/// Why the run stopped early.
#[derive(Debug)]
enum RunStop {
    Interrupted,
    Failed {
        message: String,
        exit: Exit,
    },
    /// The lock could not be proven ours: the node in hand was finished, nothing else started.
    LockLost(String),
}

impl RunStop {
    fn failed(message: impl Into<String>) -> RunStop {
        RunStop::Failed {
            message: message.into(),
            exit: Exit::NodesFailed,
        }
    }

    /// A failure caused by a Kubernetes API error: an authentication failure exits 4.
    fn kube(message: impl Into<String>, e: &KubeError) -> RunStop {
        RunStop::Failed {
            message: message.into(),
            exit: if is_auth(e) { Exit::Auth } else { Exit::NodesFailed },
        }
    }
}

fn is_auth(e: &KubeError) -> bool {
    matches!(e.status_code(), Some(401 | 403))
}

fn drain_auth_failure(e: &k::DrainError) -> bool {
    match e {
        k::DrainError::Eviction { source, .. } => {
            matches!(source, ::kube::Error::Api(s) if s.code == 401 || s.code == 403)
                || k::client::auth_error(source).is_some()
        }
        _ => false,
    }
}

struct Engine<'a> {
    ctx: &'a ClusterContext,
    ssh: &'a SshOptions,
    options: &'a RunOptions,
    drain: DrainOptions,
    journal: &'a Journal,
    reporter: &'a Reporter,
    /// First Ctrl-C: stop at the next safe point.
    cancel: CancellationToken,
    /// Second Ctrl-C: stop waiting for apt on the node.
    abandon: CancellationToken,
    guard: &'a LockGuard,
    run_id: String,
    gate_wait: Duration,
    /// Set once fencing failed: nothing new is started after.
    lock_lost: Option<String>,
}

impl Engine<'_> {
    async fn run_all(&mut self, rec: &mut RunRecord) -> Result<(), RunStop> {
        // The workloads the last drain evicted: Ready again before the next disruption.
        let mut last_workloads: Vec<WorkloadRef> = vec![];
        for i in 0..rec.nodes.len() {
            if matches!(
                rec.nodes[i].state,
                NodeState::Done | NodeState::Skipped | NodeState::Gone
            ) {
                continue;
            }
            self.checkpoint(rec)?;
            let result = self.patch_node(rec, i, &last_workloads).await;
            let node = rec.nodes[i].name.clone();
            match result {
                Ok(NodeEnd::Done) => {
                    rec.nodes[i].state = NodeState::Done;
                    rec.nodes[i].error = None;
                    rec.nodes[i].finished_at = Some(journal::now());
                    self.save(rec);
                    self.reporter.step(&node, "done");
                    if !rec.nodes[i].workloads.is_empty() {
                        last_workloads = rec.nodes[i].workloads.clone();
                    }
                    // Between nodes: soak, then the evicted workloads' budgets must allow disruptions again.
                    self.between_nodes(rec, i).await?;
                }
                Ok(NodeEnd::Gone) => {
                    rec.nodes[i].state = NodeState::Gone;
                    rec.nodes[i].skip_reason = Some("the node no longer exists (deleted from the cluster)".into());
                    self.save(rec);
                    self.reporter.step(&node, "no longer exists: recorded as gone, skipped");
                }
                Err(stop) => {
                    match &stop {
                        RunStop::Failed { message, .. } => {
                            rec.nodes[i].state = NodeState::Failed;
                            rec.nodes[i].error = Some(message.clone());
                            rec.nodes[i].finished_at = Some(journal::now());
                        }
                        RunStop::LockLost(message) => {
                            rec.nodes[i].error = Some(message.clone());
                        }
                        RunStop::Interrupted => {}
                    }
                    self.save(rec);
                    return Err(stop);
                }
            }
        }
        Ok(())
    }

    fn save(&self, rec: &RunRecord) {
        if let Err(e) = self.journal.save(rec) {
            self.reporter.error(&format!("cannot write the run record: {e}"));
        }
    }

    /// A safe point between nodes: stop here if asked to, or if the lock is not ours.
    fn checkpoint(&mut self, _rec: &RunRecord) -> Result<(), RunStop> {
        if let Some(reason) = self.lock_lost.clone() {
            return Err(RunStop::LockLost(reason));
        }
        if self.cancel.is_cancelled() {
            return Err(RunStop::Interrupted);
        }
        if let Some(reason) = self.guard.lost_reason() {
            return Err(self.lost(format!("the aks-patch lock was lost ({reason})")));
        }
        Ok(())
    }

    /// Record that the lock is gone; returns the stop to give (an authentication failure
    /// when the API server refused our credentials).
    fn lost(&mut self, reason: String) -> RunStop {
        self.lock_lost.get_or_insert(reason.clone());
        if self.guard.auth_failed() {
            return RunStop::Failed {
                message: format!("{reason}: the API server refused the credentials"),
                exit: Exit::Auth,
            };
        }
        RunStop::LockLost(reason)
    }

    /// Fencing before a destructive step: the lock must be proven ours now.
    async fn fence(&mut self, step: &str, max_age: Duration) -> Result<(), RunStop> {
        match self.guard.fence(max_age).await {
            Ok(()) => Ok(()),
            Err(e) => Err(self.lost(format!("not {step}: {e}"))),
        }
    }

    fn begin(&self, rec: &mut RunRecord, i: usize, step: &str) {
        rec.nodes[i].steps.push(Step {
            name: step.into(),
            started_at: journal::now(),
            finished_at: None,
            outcome: "running".into(),
            detail: String::new(),
        });
        self.save(rec);
    }

    fn end(&self, rec: &mut RunRecord, i: usize, outcome: &str, detail: impl Into<String>) {
        if let Some(s) = rec.nodes[i].steps.last_mut() {
            s.finished_at = Some(journal::now());
            s.outcome = outcome.into();
            s.detail = detail.into();
        }
        self.save(rec);
    }

    async fn patch_node(
        &mut self,
        rec: &mut RunRecord,
        i: usize,
        workloads: &[WorkloadRef],
    ) -> Result<NodeEnd, RunStop> {
        let name = rec.nodes[i].name.clone();
        let client = self.ctx.client.clone();
        let t0 = Instant::now();
        let row = match k::get_node_row(&client, &name).await {
            Ok(Some(r)) => r,
            Ok(None) => return Ok(NodeEnd::Gone),
            Err(e) => return Err(RunStop::kube(format!("cannot read node {name}: {e}"), &e)),
        };

        // Resuming a node that was mid-way: pick up where it was, honestly.
        let state = rec.nodes[i].state;
        if matches!(state, NodeState::Rebooting | NodeState::Back) {
            self.reporter
                .step(&name, "resuming: the node was rebooting when the last run stopped");
            return self.finish_reboot(rec, i, &row).await;
        }
        if rec.nodes[i].in_hand {
            let old = rec.nodes[i].boot_id_before.clone();
            if !row.ready {
                self.reporter.step(
                    &name,
                    "resuming: the node was left out of service and is not Ready: waiting for it to come back",
                );
                return self.finish_reboot(rec, i, &row).await;
            }
            if old.is_some() && row.boot_id.is_some() && row.boot_id != old {
                self.reporter.step(
                    &name,
                    "resuming: the node was left cordoned and has rebooted since (new bootID)",
                );
                rec.nodes[i].rebooted = true;
                rec.nodes[i].boot_id_after = row.boot_id.clone();
            } else {
                self.reporter
                    .step(&name, "resuming: the node was left cordoned by the interrupted run");
            }
        }
        if state == NodeState::Failed {
            // Every step of a failed node is done again, its upgrade included.
            self.reporter.step(
                &name,
                "resuming: the node failed in the last run; redoing it from the upgrade",
            );
            rec.nodes[i].state = NodeState::Pending;
            rec.nodes[i].error = None;
            self.save(rec);
        }

        // 1. Upgrade.
        let address = row.internal_ip.clone();
        self.reporter.step(&name, "connecting over SSH");
        self.begin(rec, i, "connect");
        let session = tokio::select! {
            s = ssh::connect(self.ssh, &name, &address) => s,
            _ = self.cancel.cancelled() => { self.end(rec, i, "skipped", "interrupted"); return Err(RunStop::Interrupted) }
        };
        let session = match session {
            Ok(s) => s,
            Err(e) => {
                self.end(rec, i, "failed", e.to_string());
                return Err(RunStop::failed(format!(
                    "cannot reach node {name} over SSH: {e}; the node was not touched"
                )));
            }
        };
        self.end(rec, i, "ok", "");
        let probe = self.probe(&session, &name).await?;
        if let Some(why) = &probe.unsupported {
            return Err(RunStop::failed(format!("node {name}: {why}")));
        }
        rec.nodes[i].kernel_before.get_or_insert(probe.running_kernel.clone());
        let mut session = Some(session);
        let mut after = probe.clone();
        if rec.nodes[i].state == NodeState::Pending {
            let security = probe.security_packages();
            let mode = cli_mode(self.options.upgrade_mode);
            match ssh::upgrade_command(mode, DPKG_LOCK_TIMEOUT_SECS, &security) {
                None => self.reporter.step(&name, "no security updates pending"),
                Some(_) if probe.pending.is_empty() => self.reporter.step(&name, "no updates pending"),
                Some(cmd) => {
                    self.reporter.step(
                        &name,
                        &format!(
                            "upgrading {} package(s) ({} mode; waiting for the dpkg lock if held)",
                            probe.pending_count(),
                            enum_text(&self.options.upgrade_mode)
                        ),
                    );
                    let s = session.take().expect("session is open");
                    let s = self.upgrade(rec, i, s, &address, &cmd).await?;
                    after = self.probe(&s, &name).await?;
                    session = Some(s);
                }
            }
            rec.nodes[i].state = NodeState::Upgraded;
            self.save(rec);
        }
        // Patched means: the upgrade succeeded (in this run or the one resumed) and nothing
        // of the chosen mode is pending any more.
        let left = match self.options.upgrade_mode {
            UpgradeMode::Security => after.security_packages(),
            UpgradeMode::All | UpgradeMode::Dist => after.pending.iter().map(|p| p.name.clone()).collect(),
        };
        if !left.is_empty() {
            let undo = self.release_if_in_hand(rec, i).await;
            return Err(RunStop::failed(format!(
                "node {name} still has {} pending update(s) of {} mode after the upgrade ({}); it is not reported patched{}; see the run record for apt's output",
                left.len(),
                enum_text(&self.options.upgrade_mode),
                left.join(", "),
                if undo.is_empty() { "; the node was not cordoned".to_string() } else { undo }
            )));
        }
        if let Some(s) = session.take() {
            let _ = s.close().await;
        }

        // 2. Reboot needed?
        let needs = after.reboot_required;
        let reboot = match self.options.reboot {
            RebootPolicy::Always => !rec.nodes[i].rebooted || needs,
            RebootPolicy::Never => false,
            RebootPolicy::IfRequired => needs,
        };
        if !reboot {
            self.reporter.step(
                &name,
                if needs {
                    "reboot required, but --reboot never"
                } else {
                    "no reboot required"
                },
            );
            if rec.nodes[i].in_hand {
                // A resumed node that an earlier run had taken out: put it back.
                let undo = self.release(rec, i).await;
                self.reporter.step(&name, &undo);
            }
            rec.nodes[i].kernel_after = Some(after.running_kernel.clone());
            return Ok(NodeEnd::Done);
        }
        if !after.reboot_packages.is_empty() {
            self.reporter.step(
                &name,
                &format!("reboot required by {}", after.reboot_packages.join(", ")),
            );
        }
        if self.cancel.is_cancelled() {
            return self.stop_in_hand(rec, i, "stopping before the cordon").await;
        }

        // 3. Nothing else may be out: the health gate, then the lock (fencing).
        self.begin(rec, i, "health-gate");
        let exempt = vec![name.clone()];
        match wait_gate(
            self.ctx,
            &exempt,
            workloads,
            self.gate_wait,
            &self.cancel,
            self.reporter,
        )
        .await
        {
            Ok(()) => self.end(rec, i, "ok", ""),
            Err(GateError::Cancelled) => {
                self.end(rec, i, "skipped", "interrupted");
                return self.stop_in_hand(rec, i, "stopping before the cordon").await;
            }
            Err(e) => {
                self.end(rec, i, "failed", e.to_string());
                let hint = e.hint().map(|h| format!("; {h}")).unwrap_or_default();
                let undo = self.release_if_in_hand(rec, i).await;
                let exit = match &e {
                    GateError::Kube(k) if is_auth(k) => Exit::Auth,
                    _ => Exit::NodesFailed,
                };
                return Err(RunStop::Failed {
                    message: format!("not taking node {name} out: {e}{hint}{undo}; its packages are upgraded"),
                    exit,
                });
            }
        }

        // kured must not reboot another node beside ours.
        let kured = match k::take_kured_lock(
            &client,
            &name,
            Duration::from_secs(self.options.drain_timeout + self.options.reboot_timeout),
        )
        .await
        {
            Ok(k::KuredLock::NotInstalled) => false,
            Ok(k::KuredLock::Taken { .. }) => {
                self.reporter
                    .step(&name, "took kured's reboot lock so that kured waits");
                true
            }
            Err(e) => {
                let undo = self.release_if_in_hand(rec, i).await;
                return Err(RunStop::failed(format!(
                    "not rebooting node {name}: {e}; its packages are upgraded{undo}"
                )));
            }
        };
        let result = self.cordon_drain_reboot(rec, i, &row, &address).await;
        if kured {
            if let Err(e) = k::release_kured_lock(&client, &name).await {
                self.reporter.warn(&format!("could not release kured's lock: {e}; clear the annotation weave.works/kured-node-lock on DaemonSet kube-system/kured"));
            }
        }
        result?;
        self.reporter
            .step(&name, &format!("patched in {}s", t0.elapsed().as_secs()));
        Ok(NodeEnd::Done)
    }

    async fn probe(&self, session: &ssh::NodeSession, name: &str) -> Result<ssh::Probe, RunStop> {
        session
            .run(&ssh::probe::probe_script(false, 0), Duration::from_secs(120))
            .await
            .map_err(|e| RunStop::failed(format!("probing node {name} failed: {e}; the node was not cordoned")))
            .and_then(|o| ssh::Probe::parse(&o.stdout).map_err(|e| RunStop::failed(format!("node {name}: {e}"))))
    }

    /// Run the upgrade detached on the node and wait for it. A signal never cuts apt off: the
    /// first Ctrl-C waits for it to finish, a second one stops waiting (apt goes on, and the
    /// run says so).
    async fn upgrade(
        &mut self,
        rec: &mut RunRecord,
        i: usize,
        session: ssh::NodeSession,
        address: &str,
        cmd: &str,
    ) -> Result<ssh::NodeSession, RunStop> {
        let name = rec.nodes[i].name.clone();
        let (log_path, _) = ssh::remote::upgrade_files(&self.run_id);
        self.begin(rec, i, "upgrade");
        let started = session
            .run(
                &ssh::remote::start_detached(cmd, &self.run_id),
                Duration::from_secs(120),
            )
            .await;
        match started {
            Ok(o) if o.success() && o.stdout.contains("started") => {}
            Ok(o) => {
                self.end(
                    rec,
                    i,
                    "failed",
                    format!("could not start the upgrade (exit {})", o.exit_code),
                );
                return Err(RunStop::failed(format!(
                    "cannot start the upgrade on node {name} (exit {}: {}); the node was not cordoned",
                    o.exit_code,
                    o.tail(3)
                )));
            }
            Err(e) => {
                self.end(rec, i, "failed", e.to_string());
                return Err(RunStop::failed(format!(
                    "cannot start the upgrade on node {name}: {e}; the node was not cordoned"
                )));
            }
        }
        let deadline = Instant::now() + UPGRADE_TIMEOUT;
        let mut session = Some(session);
        let mut failures = 0u32;
        let mut told = false;
        let outcome = loop {
            if self.abandon.is_cancelled() {
                break Err(format!(
                    "stopped waiting for the upgrade (second interrupt); apt is still running on node {name} (log {log_path}); the node was not cordoned"
                ));
            }
            if self.cancel.is_cancelled() && !told {
                told = true;
                self.reporter.step(
                    &name,
                    "interrupted: waiting for apt to finish on the node (it is never cut off half-way); interrupt again to stop waiting",
                );
            }
            if Instant::now() >= deadline {
                break Err(format!(
                    "the upgrade of node {name} did not finish within {}s (log {log_path} on the node); the node was not cordoned",
                    UPGRADE_TIMEOUT.as_secs()
                ));
            }
            let s = match session.take() {
                Some(s) => s,
                None => {
                    let c = tokio::select! {
                        c = ssh::connect(self.ssh, &name, address) => c,
                        _ = self.abandon.cancelled() => continue,
                    };
                    match c {
                        Ok(s) => s,
                        Err(e) => {
                            failures += 1;
                            if failures > 5 {
                                break Err(format!(
                                    "lost SSH to node {name} during the upgrade ({e}); apt may still be running there (log {log_path}); the node was not cordoned"
                                ));
                            }
                            tokio::time::sleep(Duration::from_secs(1)).await;
                            continue;
                        }
                    }
                }
            };
            let script = ssh::remote::wait_detached(&self.run_id, 20);
            let waited = tokio::select! {
                r = s.run(&script, Duration::from_secs(60)) => Some(r),
                _ = self.abandon.cancelled() => None,
            };
            match waited {
                None => continue,
                Some(Ok(o)) => match ssh::remote::parse_detached(&o.stdout) {
                    Some(done) => break Ok((done, s)),
                    None if o.stdout.contains(ssh::remote::DETACHED_RUNNING_MARK) => {
                        failures = 0;
                        session = Some(s);
                    }
                    None => {
                        break Err(format!(
                        "cannot follow the upgrade on node {name}: unexpected output {:?}; the node was not cordoned",
                        o.tail(3)
                    ))
                    }
                },
                // The SSH client was killed (a signal to our process group) or the link
                // dropped: apt goes on detached; log in again and keep waiting.
                Some(Err(e)) => {
                    tracing::debug!("waiting for the upgrade on {name}: {e}; reconnecting");
                    let _ = s.close().await;
                    failures += 1;
                    if failures > 5 && !self.cancel.is_cancelled() {
                        break Err(format!(
                            "lost SSH to node {name} during the upgrade ({e}); apt may still be running there (log {log_path}); the node was not cordoned"
                        ));
                    }
                    tokio::time::sleep(Duration::from_millis(300)).await;
                }
            }
        };
        let ((log, code), s) = match outcome {
            Ok(v) => v,
            Err(msg) => {
                self.end(rec, i, "failed", msg.clone());
                if self.abandon.is_cancelled() {
                    self.reporter.warn(&msg);
                    return Err(RunStop::Interrupted);
                }
                return Err(RunStop::failed(msg));
            }
        };
        let tail = |n: usize| {
            let lines: Vec<&str> = log.lines().filter(|l| !l.trim().is_empty()).collect();
            lines[lines.len().saturating_sub(n)..].join("\n")
        };
        if code != 0 {
            rec.nodes[i].upgrade_output = tail(40);
            let last = log.lines().rfind(|l| l.starts_with("E:")).unwrap_or("").to_string();
            self.end(rec, i, "failed", format!("apt-get exited with {code}"));
            return Err(RunStop::failed(format!(
                "upgrading node {name} failed (apt-get exit {code}{}); the node was not cordoned; see the run record for apt's output",
                if last.is_empty() { String::new() } else { format!(": {last}") }
            )));
        }
        let pkgs = ssh::parse_upgrade_output(&log);
        rec.nodes[i].packages_upgraded = pkgs
            .iter()
            .map(|p| UpgradedPackage {
                name: p.name.clone(),
                version: p.version.clone(),
            })
            .collect();
        rec.nodes[i].upgrade_output = tail(40);
        self.end(rec, i, "ok", format!("{} package(s) upgraded", pkgs.len()));
        self.reporter
            .step(&name, &format!("{} package(s) upgraded", pkgs.len()));
        Ok(s)
    }

    async fn cordon_drain_reboot(
        &mut self,
        rec: &mut RunRecord,
        i: usize,
        row: &NodeRow,
        address: &str,
    ) -> Result<NodeEnd, RunStop> {
        let name = rec.nodes[i].name.clone();
        let client = self.ctx.client.clone();
        // 4. Cordon (remembering whether somebody else had) and mark the node as ours.
        self.fence("cordoning", Duration::ZERO).await?;
        if !rec.nodes[i].in_hand {
            rec.nodes[i].boot_id_before = row.boot_id.clone();
            rec.nodes[i].was_cordoned = row.unschedulable;
            self.save(rec);
        }
        self.begin(rec, i, "cordon");
        if let Err(e) = kdrain::cordon_marked(&client, &name, &self.run_id).await {
            self.end(rec, i, "failed", e.to_string());
            let undo = self.release_if_in_hand(rec, i).await;
            return Err(RunStop::kube(format!("cannot cordon node {name}: {e}{undo}"), &e));
        }
        rec.nodes[i].in_hand = true;
        rec.nodes[i].state = NodeState::Cordoned;
        let was = rec.nodes[i].was_cordoned;
        self.end(
            rec,
            i,
            "ok",
            if was {
                "already cordoned before aks-patch; it stays cordoned"
            } else {
                ""
            },
        );
        self.reporter.step(
            &name,
            if was {
                "already cordoned (by someone else): it will stay cordoned"
            } else {
                "cordoned"
            },
        );

        // 5. Drain, proving the lock before every eviction.
        self.begin(rec, i, "drain");
        let reporter = self.reporter.clone();
        let node_for_progress = name.clone();
        let fence = lock_fence(self.guard);
        let drained = k::drain::drain_fenced(
            &client,
            &name,
            &self.drain,
            move |ev| match ev {
                k::DrainEvent::Planned { evict, skipped } => reporter.step(
                    &node_for_progress,
                    &format!("draining: {evict} pod(s) to evict, {skipped} skipped (DaemonSet, mirror)"),
                ),
                k::DrainEvent::EvictionRefused { pod, pdb, retry_in, .. } => reporter.step(
                    &node_for_progress,
                    &format!(
                        "eviction of {pod} refused by PodDisruptionBudget {}; retrying in {}s",
                        pdb.unwrap_or_else(|| "?".into()),
                        retry_in.as_secs()
                    ),
                ),
                k::DrainEvent::Evicted { pod } => reporter.verbose(&format!("{node_for_progress}: evicted {pod}")),
                _ => {}
            },
            &self.cancel,
            &fence,
        )
        .await;
        match drained {
            Ok(report) => {
                for (pod, w) in &report.warnings {
                    self.reporter.warn(&format!("{name}: {pod}: {w}"));
                }
                rec.nodes[i].evicted = report.evicted.iter().map(|p| p.to_string()).collect();
                rec.nodes[i].pdbs = report.pdbs.iter().map(|(ns, n)| format!("{ns}/{n}")).collect();
                rec.nodes[i].workloads = report.workloads.clone();
                rec.nodes[i].state = NodeState::Drained;
                self.end(
                    rec,
                    i,
                    "ok",
                    format!(
                        "{} pod(s) evicted in {:.1}s",
                        report.evicted.len(),
                        report.elapsed.as_secs_f64()
                    ),
                );
                self.reporter
                    .step(&name, &format!("drained: {} pod(s) evicted", report.evicted.len()));
            }
            Err(e) => {
                self.end(rec, i, "failed", e.to_string());
                // A drain that did not finish: put the node back in service (unless it was cordoned before us).
                let undo = self.release(rec, i).await;
                return Err(match e {
                    k::DrainError::Cancelled { .. } => {
                        self.reporter.step(&name, &format!("drain interrupted; {undo}"));
                        RunStop::Interrupted
                    }
                    k::DrainError::Fenced { reason, .. } => {
                        self.reporter.step(&name, &format!("drain stopped; {undo}"));
                        self.lost(format!("stopped draining node {name}: {reason}"))
                    }
                    k::DrainError::Kube(k) if is_auth(&k) => RunStop::Failed {
                        message: format!("draining node {name} failed: {k}; {undo}"),
                        exit: Exit::Auth,
                    },
                    e @ k::DrainError::Eviction { .. } if drain_auth_failure(&e) => RunStop::Failed {
                        message: format!("draining node {name} failed: {e}; {undo}"),
                        exit: Exit::Auth,
                    },
                    e => RunStop::failed(format!("draining node {name} failed: {e}; {undo}")),
                });
            }
        }
        if self.cancel.is_cancelled() {
            let undo = self.release(rec, i).await;
            self.reporter
                .step(&name, &format!("stopping before the reboot; {undo}"));
            return Err(RunStop::Interrupted);
        }

        // 6. Reboot, lock proven once more; the session dropping is expected.
        if let Err(stop) = self.fence("rebooting", Duration::ZERO).await {
            let undo = self.release(rec, i).await;
            self.reporter
                .step(&name, &format!("not rebooting: the lock is not ours; {undo}"));
            return Err(stop);
        }
        self.begin(rec, i, "reboot");
        let sent = async {
            let s = ssh::connect(self.ssh, &name, address).await?;
            let r = s.run(&ssh::reboot_command(), Duration::from_secs(60)).await;
            let _ = s.close().await;
            match r {
                Ok(o) if o.success() => Ok(()),
                Ok(o) => Err(SshError::Remote {
                    node: name.clone(),
                    command: "reboot".into(),
                    exit_code: o.exit_code,
                    stderr_tail: o.tail(5),
                }),
                Err(SshError::Disconnected { .. }) => Ok(()),
                Err(e) => Err(e),
            }
        }
        .await;
        if let Err(e) = sent {
            self.end(rec, i, "failed", e.to_string());
            let undo = self.release(rec, i).await;
            return Err(RunStop::failed(format!("cannot reboot node {name}: {e}; {undo}")));
        }
        rec.nodes[i].state = NodeState::Rebooting;
        self.end(rec, i, "ok", "reboot scheduled");
        self.reporter.step(&name, "rebooting");
        let row = k::get_node_row(&client, &name)
            .await
            .ok()
            .flatten()
            .unwrap_or_else(|| row.clone());
        self.finish_reboot(rec, i, &row).await
    }

    /// Wait for the reboot to be proven (new bootID, Ready, taints gone), check the
    /// marker and kernel, put the node back.
    async fn finish_reboot(&mut self, rec: &mut RunRecord, i: usize, row: &NodeRow) -> Result<NodeEnd, RunStop> {
        let name = rec.nodes[i].name.clone();
        let client = self.ctx.client.clone();
        let old_boot = rec.nodes[i]
            .boot_id_before
            .clone()
            .or_else(|| row.boot_id.clone())
            .unwrap_or_default();
        self.begin(rec, i, "wait-ready");
        if self.cancel.is_cancelled() {
            self.reporter.step(
                &name,
                "interrupted while rebooting: waiting for the node to come back before stopping",
            );
        }
        let reporter = self.reporter.clone();
        let n2 = name.clone();
        let back = k::wait_for_reboot(
            &client,
            &name,
            &old_boot,
            Duration::from_secs(self.options.reboot_timeout),
            move |ev| match ev {
                k::RebootEvent::WentNotReady { ready } => reporter.step(&n2, &format!("went down (Ready={ready})")),
                k::RebootEvent::Booted { .. } => reporter.step(&n2, "booted (new bootID)"),
                k::RebootEvent::Back { elapsed } => {
                    reporter.step(&n2, &format!("Ready again after {}s", elapsed.as_secs()))
                }
                k::RebootEvent::ReadFailed { error } => {
                    reporter.verbose(&format!("{n2}: reading the node failed ({error}); still waiting"))
                }
            },
        )
        .await;
        let back = match back {
            Ok(r) => r,
            Err(e) => {
                self.end(rec, i, "failed", e.to_string());
                let exit = match &e {
                    k::RebootError::Kube(k) if is_auth(k) => Exit::Auth,
                    _ => Exit::NodesFailed,
                };
                return Err(RunStop::Failed {
                    message: format!("{e}"),
                    exit,
                });
            }
        };
        rec.nodes[i].rebooted = true;
        rec.nodes[i].boot_id_after = back.boot_id.clone();
        rec.nodes[i].kernel_after = Some(back.kernel_version.clone());
        rec.nodes[i].state = NodeState::Back;
        self.end(rec, i, "ok", format!("new bootID, kernel {}", back.kernel_version));

        // The marker must be gone; the kernel is what the node now runs.
        self.begin(rec, i, "verify");
        let mut left = vec![];
        match ssh::probe_node(self.ssh, &name, &back.internal_ip, false, Duration::from_secs(120)).await {
            Ok(p) => {
                left = match self.options.upgrade_mode {
                    UpgradeMode::Security => p.security_packages(),
                    UpgradeMode::All | UpgradeMode::Dist => p.pending.iter().map(|u| u.name.clone()).collect(),
                };
                rec.nodes[i].kernel_after = Some(p.running_kernel.clone());
                if p.reboot_required {
                    self.reporter.warn(&format!(
                        "{name}: /var/run/reboot-required is still there after the reboot ({})",
                        p.reboot_packages.join(", ")
                    ));
                    self.end(rec, i, "warning", "reboot marker still present");
                } else {
                    self.end(rec, i, "ok", format!("marker gone, running {}", p.running_kernel));
                }
            }
            Err(e) => {
                self.reporter.warn(&format!(
                    "{name}: cannot check the reboot marker over SSH after the reboot: {e}"
                ));
                self.end(rec, i, "warning", e.to_string());
            }
        }
        let undo = self.release(rec, i).await;
        self.reporter.step(&name, &undo);
        if rec.nodes[i].in_hand {
            return Err(RunStop::failed(format!("node {name} is back, but {undo}")));
        }
        if !left.is_empty() {
            // Never patched with updates of its mode still pending: the resume redoes it.
            return Err(RunStop::failed(format!(
                "node {name} is back, but {} update(s) of {} mode are still pending ({}); it is not reported patched",
                left.len(),
                enum_text(&self.options.upgrade_mode),
                left.join(", ")
            )));
        }
        Ok(NodeEnd::Done)
    }

    /// Stop at a safe point with the node in hand put back first.
    async fn stop_in_hand(&mut self, rec: &mut RunRecord, i: usize, what: &str) -> Result<NodeEnd, RunStop> {
        let name = rec.nodes[i].name.clone();
        let undo = self.release_if_in_hand(rec, i).await;
        self.reporter.step(&name, &format!("{what}{undo}"));
        Err(RunStop::Interrupted)
    }

    async fn release_if_in_hand(&self, rec: &mut RunRecord, i: usize) -> String {
        if rec.nodes[i].in_hand {
            format!("; {}", self.release(rec, i).await)
        } else {
            String::new()
        }
    }

    /// Put the node back: remove our mark, and uncordon it unless it was cordoned before
    /// aks-patch came. Returns what was done, for messages.
    async fn release(&self, rec: &mut RunRecord, i: usize) -> String {
        let name = rec.nodes[i].name.clone();
        let uncordon = !rec.nodes[i].was_cordoned;
        match kdrain::release_node(&self.ctx.client, &name, uncordon).await {
            Ok(()) => {
                rec.nodes[i].in_hand = false;
                rec.nodes[i].steps.push(Step {
                    name: if uncordon { "uncordon" } else { "unmark" }.into(),
                    started_at: journal::now(),
                    finished_at: Some(journal::now()),
                    outcome: "ok".into(),
                    detail: String::new(),
                });
                self.save(rec);
                if uncordon {
                    format!("node {name} uncordoned")
                } else {
                    format!("node {name} stays cordoned, as it was before aks-patch")
                }
            }
            Err(e) => {
                self.save(rec);
                format!(
                    "COULD NOT UNCORDON node {name} ({e}): run `kubectl uncordon {name} && kubectl annotate node {name} {}-`",
                    kdrain::IN_PROGRESS_ANNOTATION
                )
            }
        }
    }

    async fn between_nodes(&mut self, rec: &RunRecord, i: usize) -> Result<(), RunStop> {
        let more = rec.nodes[i + 1..]
            .iter()
            .any(|n| !matches!(n.state, NodeState::Done | NodeState::Skipped | NodeState::Gone));
        if !more {
            return Ok(());
        }
        if self.options.soak > 0 {
            self.reporter.step(
                &rec.nodes[i].name,
                &format!("soaking {}s before the next node", self.options.soak),
            );
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(self.options.soak)) => {}
                _ = self.cancel.cancelled() => return Err(RunStop::Interrupted),
            }
        }
        let pdbs: Vec<(String, String)> = rec.nodes[i]
            .pdbs
            .iter()
            .filter_map(|p| p.split_once('/').map(|(a, b)| (a.to_string(), b.to_string())))
            .collect();
        if !pdbs.is_empty() {
            self.reporter.step(
                &rec.nodes[i].name,
                &format!(
                    "waiting for {} PodDisruptionBudget(s) to allow disruptions again",
                    pdbs.len()
                ),
            );
            tokio::select! {
                r = k::wait_pdbs_healthy(&self.ctx.client, &pdbs, Duration::from_secs(self.options.drain_timeout)) => {
                    if let Err(e) = r { return Err(RunStop::failed(e.to_string())); }
                }
                _ = self.cancel.cancelled() => return Err(RunStop::Interrupted),
            }
        }
        Ok(())
    }
}

/// How a node's turn ended, when it did not stop the run.
enum NodeEnd {
    Done,
    Gone,
}

/// The drain's fence: the lock proven ours before every eviction attempt.
fn lock_fence<'a>(guard: &'a LockGuard) -> impl Fn() -> futures::future::BoxFuture<'a, Result<(), String>> + Sync + 'a {
    move || Box::pin(async move { guard.fence(EVICTION_FENCE_AGE).await.map_err(|e| e.to_string()) })
}

/// The journal directory must take a record before the lock is touched.
fn check_journal_dir(dir: &std::path::Path) -> anyhow::Result<()> {
    let probe = dir.join(format!(".write-test-{}", std::process::id()));
    let r = std::fs::create_dir_all(dir)
        .and_then(|_| std::fs::write(&probe, b""))
        .and_then(|_| std::fs::remove_file(&probe));
    r.map_err(|e| {
        Failure::new(
            Exit::Usage,
            format!(
                "cannot write run records to {}: {e}; nothing was changed",
                dir.display()
            ),
        )
        .hint("give a writable directory with --journal-dir (or AKS_PATCH_STATE_DIR)")
        .into()
    })
}

/// The options given on the command line, typed for the run record.
fn run_options(a: &ApplyArgs) -> RunOptions {
    RunOptions {
        upgrade_mode: match a.upgrade_mode {
            cli::UpgradeMode::Security => UpgradeMode::Security,
            cli::UpgradeMode::All => UpgradeMode::All,
            cli::UpgradeMode::Dist => UpgradeMode::Dist,
        },
        reboot: match a.reboot {
            cli::RebootPolicy::IfRequired => RebootPolicy::IfRequired,
            cli::RebootPolicy::Always => RebootPolicy::Always,
            cli::RebootPolicy::Never => RebootPolicy::Never,
        },
        delete_emptydir_data: a.delete_emptydir_data,
        force: a.force,
        // kubectl drain's -1: each pod's own grace period.
        grace_period: a.grace_period.filter(|g| *g >= 0),
        drain_timeout: a.drain_timeout,
        reboot_timeout: a.reboot_timeout,
        soak: a.soak,
    }
}

fn cli_mode(m: UpgradeMode) -> cli::UpgradeMode {
    match m {
        UpgradeMode::Security => cli::UpgradeMode::Security,
        UpgradeMode::All => cli::UpgradeMode::All,
        UpgradeMode::Dist => cli::UpgradeMode::Dist,
    }
}

/// A resumed run keeps the options of the run it continues; a flag given now that says
/// otherwise is a usage error (a flag left at its default takes the recorded value).
fn resume_options(prev: &RunOptions, now: &RunOptions, prev_id: &str) -> anyhow::Result<RunOptions> {
    let d = RunOptions {
        upgrade_mode: UpgradeMode::All,
        reboot: RebootPolicy::IfRequired,
        delete_emptydir_data: false,
        force: false,
        grace_period: None,
        drain_timeout: 600,
        reboot_timeout: 900,
        soak: 0,
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
        return Ok(prev.clone());
    }
    Err(Failure::new(
        Exit::Usage,
        format!(
            "--resume continues run {prev_id} with its own options, and these contradict them: {}; nothing was changed",
            clashes.join(", ")
        ),
    )
    .hint("drop those flags to resume as recorded, or start a new run (without --resume) with the options you want")
    .into())
}

fn drain_options(o: &RunOptions, retry_interval: u64) -> DrainOptions {
    DrainOptions {
        delete_emptydir_data: o.delete_emptydir_data,
        force: o.force,
        grace_period: o.grace_period,
        timeout: Duration::from_secs(o.drain_timeout),
        retry_interval: Duration::from_secs(retry_interval.max(1)),
        ..DrainOptions::default()
    }
}

/// A serde enum as its kebab-case name.
fn enum_text<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// The API server's own words from an error.
fn api_message(e: &KubeError) -> String {
    let text = e.to_string();
    let mut msg = text.clone();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        if let Some(::kube::Error::Api(st)) = s.downcast_ref::<::kube::Error>() {
            msg = if st.message.is_empty() {
                st.reason.clone()
            } else {
                st.message.clone()
            };
            break;
        }
        src = s.source();
    }
    msg
}

/// `--nodes`/`--nodepool`/`-l` chose nothing that can be patched: say why, node by node.
fn nothing_selected(entries: &[PlanEntry], selector: Option<&str>) -> Failure {
    if entries.is_empty() {
        return Failure::new(
            Exit::Usage,
            format!(
                "the selection matches no node{}; nothing was changed",
                selector.map(|s| format!(" (selector `{s}`)")).unwrap_or_default()
            ),
        )
        .hint("check the selection with `kubectl get nodes -l ...` or `aks-patch report`");
    }
    let why: Vec<String> = entries
        .iter()
        .map(|e| format!("{}: {}", e.name, e.reason.as_deref().unwrap_or("skipped")))
        .collect();
    Failure::new(
        Exit::Usage,
        format!(
            "nothing in the selection can be patched: {}; nothing was changed",
            why.join("; ")
        ),
    )
    .hint("select Linux nodes that are Ready (see `aks-patch scan`)")
}

/// Nodes marked in progress by one of `runs`.
fn marked_by(rows: &[NodeRow], runs: &[String]) -> Vec<String> {
    rows.iter()
        .filter(|r| r.in_progress.as_ref().is_some_and(|run| runs.contains(run)))
        .map(|r| r.name.clone())
        .collect()
}

/// The health gate, waited for with what blocks on the progress line.
async fn wait_gate(
    ctx: &ClusterContext,
    exempt: &[String],
    workloads: &[WorkloadRef],
    max_wait: Duration,
    cancel: &CancellationToken,
    reporter: &Reporter,
) -> Result<(), GateError> {
    let last = std::sync::Mutex::new(String::new());
    gate::wait_healthy(
        &ctx.client,
        exempt,
        workloads,
        max_wait,
        GATE_POLL,
        cancel,
        |blockers, waited| {
            let text = gate::blockers_text(blockers);
            let mut last = last.lock().expect("not poisoned");
            if *last != text {
                reporter.warn(&format!(
                    "waiting (up to {}s, --health-wait) before taking another node out: {text}",
                    max_wait.as_secs()
                ));
                *last = text;
            } else {
                reporter.set_message(format!(
                    "health gate: waiting {}s / {}s: {text}",
                    waited.as_secs(),
                    max_wait.as_secs()
                ));
            }
        },
    )
    .await
}

/// What pre-flight found for one node that may be drained.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct NodeCheck {
    node: String,
    /// `yes` (reboot marker, pending kernel, --reboot always), `maybe`, `no`.
    reboot: &'static str,
    evict: Vec<String>,
    /// Pods that will certainly refuse to drain, with the flag that would allow them.
    refused: Vec<serde_json::Value>,
    skipped: Vec<serde_json::Value>,
    /// PDBs that, as configured, can never allow a disruption.
    never_allowing_pdbs: Vec<String>,
    /// PDBs that allow no disruption right now.
    blocking_pdbs: Vec<String>,
}

async fn preflight_drains(
    ctx: &ClusterContext,
    entries: &[PlanEntry],
    before: &BTreeMap<String, ScanRow>,
    opts: &DrainOptions,
    policy: RebootPolicy,
    resume_states: &BTreeMap<String, NodeState>,
) -> anyhow::Result<Vec<NodeCheck>> {
    let mut out = vec![];
    for e in entries.iter().filter(|e| e.patch()) {
        if matches!(
            resume_states.get(&e.name),
            Some(NodeState::Rebooting | NodeState::Back | NodeState::Drained)
        ) {
            continue;
        }
        let b = before.get(&e.name);
        let certain =
            b.and_then(|b| b.reboot_required).unwrap_or(false) || b.and_then(|b| b.pending_kernel.clone()).is_some();
        let reboot = match policy {
            RebootPolicy::Never => "no",
            RebootPolicy::Always => "yes",
            RebootPolicy::IfRequired if certain => "yes",
            RebootPolicy::IfRequired => "maybe",
        };
        if reboot == "no" {
            continue;
        }
        let plan = k::plan_drain(&ctx.client, &e.name, opts)
            .await
            .map_err(|err| context::kube_failure(&format!("cannot plan the drain of {}", e.name), err))?;
        out.push(NodeCheck {
            node: e.name.clone(),
            reboot,
            evict: plan.evict.iter().map(|p| p.to_string()).collect(),
            refused: plan
                .refused
                .iter()
                .map(|(p, r)| json!({"pod": p.to_string(), "reason": r.to_string(), "flag": r.flag()}))
                .collect(),
            skipped: plan
                .skipped
                .iter()
                .map(|(p, r)| json!({"pod": p.to_string(), "reason": r.to_string()}))
                .collect(),
            never_allowing_pdbs: plan
                .never_allowing_pdbs()
                .iter()
                .map(|p| {
                    format!(
                        "{}/{} ({})",
                        p.namespace,
                        p.name,
                        p.never_allows.clone().unwrap_or_default()
                    )
                })
                .collect(),
            blocking_pdbs: plan
                .blocking_pdbs()
                .iter()
                .map(|p| format!("{}/{}", p.namespace, p.name))
                .collect(),
        });
    }
    Ok(out)
}

/// Pods that will refuse to drain and PDBs that can never allow: refuse the run now.
fn refuse_certain_failures(checks: &[NodeCheck]) -> anyhow::Result<()> {
    let mut problems = vec![];
    let mut flags: Vec<&str> = vec![];
    for c in checks.iter().filter(|c| c.reboot == "yes") {
        for r in &c.refused {
            problems.push(format!(
                "node {}: pod {} {} (needs {})",
                c.node,
                r["pod"].as_str().unwrap_or(""),
                r["reason"].as_str().unwrap_or(""),
                r["flag"].as_str().unwrap_or("")
            ));
            if let Some(f) = r["flag"].as_str() {
                if !flags.contains(&f) {
                    flags.push(f);
                }
            }
        }
        for p in &c.never_allowing_pdbs {
            problems.push(format!(
                "node {}: PodDisruptionBudget {p} can never allow the drain",
                c.node
            ));
        }
    }
    if problems.is_empty() {
        return Ok(());
    }
    let mut hint = vec![];
    if !flags.is_empty() {
        flags.sort();
        hint.push(format!("rerun with {} to evict those pods anyway", flags.join(" and ")));
    }
    if checks.iter().any(|c| !c.never_allowing_pdbs.is_empty()) {
        hint.push("relax those PodDisruptionBudgets (or scale their workloads up)".into());
    }
    hint.push("or leave the nodes out with --nodes / --nodepool / --selector; --dry-run shows every drain".into());
    Err(Failure::new(
        Exit::Usage,
        format!(
            "these drains would certainly fail: {}; nothing was changed",
            problems.join("; ")
        ),
    )
    .hint(hint.join("; "))
    .into())
}

fn dry_run_outcome(
    ctx: &ClusterContext,
    args: &ApplyArgs,
    plan_value: serde_json::Value,
    checks: &[NodeCheck],
    gate_now: &[Blocker],
    kured: Option<&str>,
    reporter: &Reporter,
) -> Outcome {
    let gate_text = if gate_now.is_empty() {
        "open: no other node is out".to_string()
    } else {
        format!("closed: {}", gate::blockers_text(gate_now))
    };
    let refusals = refuse_certain_failures(checks).err().map(|e| e.to_string());
    let rows: Vec<serde_json::Value> = plan_value
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .map(|mut p| {
            let name = p["name"].as_str().unwrap_or("").to_string();
            let c = checks.iter().find(|c| c.node == name);
            p["wouldReboot"] = json!(c
                .map(|c| c.reboot)
                .unwrap_or(if p["action"] == "patch" { "no" } else { "-" }));
            p["evict"] = json!(c.map(|c| c.evict.len()));
            p["refused"] = json!(c
                .map(|c| c
                    .refused
                    .iter()
                    .map(|r| format!(
                        "{} ({})",
                        r["pod"].as_str().unwrap_or(""),
                        r["flag"].as_str().unwrap_or("")
                    ))
                    .collect::<Vec<_>>()
                    .join(", "))
                .filter(|s| !s.is_empty()));
            p["pdbs"] = json!(c
                .map(|c| {
                    let mut v: Vec<String> = c.never_allowing_pdbs.iter().map(|p| format!("never: {p}")).collect();
                    v.extend(c.blocking_pdbs.iter().map(|p| format!("blocks now: {p}")));
                    v.join(", ")
                })
                .filter(|s| !s.is_empty()));
            p
        })
        .collect();
    reporter.info(&format!("health gate: {gate_text}"));
    if let Some(h) = kured {
        reporter.warn(&format!("kured holds its reboot lock for {h}: apply would refuse now"));
    }
    if let Some(r) = &refusals {
        reporter.warn(&format!("apply would refuse: {r}"));
    }
    let value = if matches!(
        args.global.output,
        OutputFormat::Table | OutputFormat::Wide | OutputFormat::Tsv
    ) && args.global.query.is_none()
    {
        serde_json::Value::Array(rows)
    } else {
        json!({
            "dryRun": true,
            "cluster": ctx.cluster,
            "plan": rows,
            "drains": checks,
            "healthGate": {"open": gate_now.is_empty(), "blockers": gate_now},
            "kuredLockHolder": kured,
            "wouldRefuse": refusals,
        })
    };
    Outcome {
        value,
        table: Some(TableSpec::new(vec![
            Column::new("NAME", "name"),
            Column::new("POOL", "pool"),
            Column::new("KERNEL-VERSION", "kernel").placeholder("<unknown>"),
            Column::new("PENDING", "pendingUpdates").placeholder("-"),
            Column::new("ACTION", "action"),
            Column::new("REBOOT", "wouldReboot"),
            Column::new("EVICT", "evict").placeholder("-"),
            Column::new("REFUSED", "refused").placeholder(""),
            Column::new("PDBS", "pdbs").placeholder(""),
            Column::new("REASON", "reason").placeholder(""),
        ])),
        summary: Some(format!(
            "dry run: nothing was changed; health gate {gate_text}{}",
            if refusals.is_some() || kured.is_some() {
                "; apply would refuse (see above)"
            } else {
                ""
            }
        )),
        exit: Exit::Ok,
    }
}

/// Ctrl-C / SIGTERM: the first stops at the next safe point, a second one stops waiting
/// for apt on a node (apt itself is never cut off).
async fn watch_signals(cancel: CancellationToken, abandon: CancellationToken, reporter: Reporter) {
    let Ok(mut term) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) else {
        return;
    };
    let mut count = 0;
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        count += 1;
        cancel.cancel();
        if count == 1 {
            reporter.warn("interrupted: stopping at the next safe point (a running apt is waited for, a draining node is uncordoned, a rebooting node is waited for); the lock will be released");
        } else {
            abandon.cancel();
            reporter.warn("interrupted again: not waiting for apt any longer (it goes on on the node); still leaving the cluster in a known state");
        }
    }
}

fn confirm(args: &ApplyArgs, ctx: &ClusterContext, n: usize) -> anyhow::Result<()> {
    use std::io::{BufRead, IsTerminal, Write};
    if args.yes {
        return Ok(());
    }
    if !std::io::stdin().is_terminal() || !std::io::stderr().is_terminal() {
        return Err(Failure::new(
            Exit::Usage,
            "refusing to patch without confirmation: there is no terminal to ask on; nothing was changed",
        )
        .hint("review the plan (add --dry-run), then run again with --yes")
        .into());
    }
    eprint!(
        "Patch {n} node(s) of {} one at a time (cordon, drain, reboot as needed)? [y/N] ",
        ctx.cluster.name
    );
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    if matches!(line.trim().to_lowercase().as_str(), "y" | "yes") {
        Ok(())
    } else {
        Err(Failure::new(Exit::Usage, "not confirmed; nothing was changed").into())
    }
}

/// The plan of a resumed run: its nodes in its order, from the state they reached. A node
/// deleted since is recorded as gone (never a halt).
fn resume_plan(prev: &RunRecord, rows: &[NodeRow]) -> Vec<PlanEntry> {
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

fn plan_table() -> TableSpec {
    TableSpec::new(vec![
        Column::new("NAME", "name"),
        Column::new("POOL", "pool"),
        Column::new("STATUS", "status"),
        Column::new("KERNEL-VERSION", "kernel").placeholder("<unknown>"),
        Column::new("PENDING", "pendingUpdates").placeholder("-"),
        Column::new("SECURITY", "securityUpdates").placeholder("-"),
        Column::new("REBOOT-NEEDED", "rebootRequired").placeholder("-"),
        Column::new("ACTION", "action"),
        Column::new("REASON", "reason").placeholder(""),
    ])
}

fn plan_value(entries: &[PlanEntry], before: &BTreeMap<String, ScanRow>, rows: &[NodeRow]) -> serde_json::Value {
    serde_json::Value::Array(
        entries
            .iter()
            .map(|e| {
                let b = before.get(&e.name);
                let r = rows.iter().find(|r| r.name == e.name);
                json!({
                    "name": e.name,
                    "pool": e.pool,
                    "status": b.map(|b| b.status.clone()).or_else(|| r.map(|r| r.status.clone())),
                    "kernel": b.and_then(|b| b.running_kernel.clone().or_else(|| Some(b.kernel_version.clone()))).or_else(|| r.map(|r| r.kernel_version.clone())),
                    "pendingUpdates": b.and_then(|b| b.pending_updates),
                    "securityUpdates": b.and_then(|b| b.security_updates),
                    "rebootRequired": b.and_then(|b| b.reboot_required),
                    "action": e.action,
                    "reason": e.reason.clone().or_else(|| b.and_then(|b| b.error.clone())),
                })
            })
            .collect(),
    )
}

fn after_table() -> TableSpec {
    TableSpec::new(vec![
        Column::new("NAME", "name"),
        Column::new("STATUS", "status"),
        Column::new("KERNEL-BEFORE", "kernelBefore").placeholder("<unknown>"),
        Column::new("KERNEL-AFTER", "kernelAfter").placeholder("<unknown>"),
        Column::new("PACKAGES", "packagesUpgraded").placeholder("0"),
        Column::new("REBOOTED", "rebooted"),
        Column::new("RESULT", "result"),
        Column::new("DETAIL", "detail").placeholder(""),
    ])
}

/// The after-table. `now`: the nodes as listed after the run (`None`: the list failed, so
/// every status is `<unknown>`, never `<gone>`).
fn after_rows(rec: &RunRecord, now: Option<&[NodeRow]>) -> Vec<serde_json::Value> {
    rec.nodes
        .iter()
        .map(|n| {
            let r = now.and_then(|rows| rows.iter().find(|r| r.name == n.name));
            let status = match (now, r) {
                (None, _) => "<unknown>".to_string(),
                (Some(_), Some(r)) => r.status.clone(),
                (Some(_), None) => "<gone>".to_string(),
            };
            let kernel_after = n.kernel_after.clone().or_else(|| r.map(|r| r.kernel_version.clone()));
            json!({
                "name": n.name,
                "status": status,
                "unschedulable": r.map(|r| r.unschedulable),
                "kernelBefore": n.kernel_before,
                "kernelAfter": if matches!(n.state, NodeState::Skipped | NodeState::Gone) { None } else { kernel_after },
                "packagesUpgraded": n.packages_upgraded.len(),
                "rebooted": n.rebooted,
                "result": match n.state {
                    NodeState::Done => "patched",
                    NodeState::Skipped => "skipped",
                    NodeState::Gone => "gone",
                    NodeState::Failed => "FAILED",
                    NodeState::Pending => "not started",
                    _ => "stopped mid-way",
                },
                "detail": n.error.clone().or_else(|| n.skip_reason.clone()),
            })
        })
        .collect()
}

/// Nodes this run (or the one it resumed) took out and did not put back: `(name, sure)`,
/// `sure` false when the cluster could not be read to confirm.
fn left_cordoned(rec: &RunRecord, now: Option<&[NodeRow]>) -> Vec<(String, bool)> {
    rec.nodes
        .iter()
        .filter(|n| n.in_hand && !n.was_cordoned)
        .filter_map(|n| match now {
            None => Some((n.name.clone(), false)),
            Some(rows) => rows
                .iter()
                .find(|r| r.name == n.name)
                .filter(|r| r.unschedulable)
                .map(|_| (n.name.clone(), true)),
        })
        .collect()
}

/// Tell `report` what the nodes look like now, so that REBOOT-REQUIRED stays true.
fn remember_scans(settings: &Settings, rec: &RunRecord) {
    let now = journal::now();
    let nodes: BTreeMap<String, scans::NodeScan> = rec
        .nodes
        .iter()
        .filter(|n| n.rebooted && n.state == NodeState::Done)
        .map(|n| {
            (
                n.name.clone(),
                scans::NodeScan {
                    scanned_at: now.clone(),
                    reboot_required: false,
                    reboot_packages: vec![],
                    pending_updates: 0,
                    security_updates: 0,
                    running_kernel: n.kernel_after.clone().unwrap_or_default(),
                    boot_id: n.boot_id_after.clone(),
                },
            )
        })
        .collect();
    let _ = scans::save(&settings.state_dir, &rec.cluster.key, nodes);
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
        assert_eq!(output::errors::exit_of(&e), Exit::Usage);
        assert!(
            e.to_string().contains("--upgrade-mode dist (run r1 used security)"),
            "{e}"
        );
    }
}
