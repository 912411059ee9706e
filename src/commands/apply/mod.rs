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

mod azure_linux;
mod blockers;
mod input;
mod notify;
mod view;
pub mod window;

use super::context;
use super::scan::{candidate_via, node_timeout, scan_nodes, ScanRow};
use super::Outcome;
use crate::cli::{ApplyArgs, OutputFormat};
use crate::kube::drain as kdrain;
use crate::kube::{self as k, CancellationToken, HolderInfo, NodeRow};
use crate::output::{self, Exit, Failure, Reporter};
use crate::rollout::after::{after_rows, left_cordoned};
use crate::rollout::engine::{enum_text, wait_gate, Engine, EngineConfig, GateStop, RunStop};
use crate::rollout::gate;
use crate::rollout::journal::{self, Journal, NodeRecord, NodeState, RunRecord, RunStatus};
use crate::rollout::live::KubeCluster;
use crate::rollout::plan::{self, Filters, PlanEntry};
use crate::rollout::preflight;
use crate::rollout::resume::{resume_options, resume_plan};
use crate::settings::Settings;
use crate::ssh::{self, SshFlags, SshOptions};
use crate::transport::{ShellTransport, Via};
use input::{
    api_message, check_journal_dir, confirm, drain_options, marked_by, nothing_selected, remember_scans, run_options,
    watch_signals,
};
use std::collections::BTreeMap;
use std::time::Duration;
use view::{after_table, dry_run_outcome, plan_table, plan_value};

/// How long the Lease lock lives without renewal.
const LOCK_DURATION: Duration = Duration::from_secs(60);
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
    SshOptions::from_flags(&SshFlags::from(&args.ssh), "azureuser", settings)
        .map_err(|e| anyhow::Error::new(output::WithExit::wrap(e, Exit::Usage)))?;
    let requested = run_options(&args);

    let ctx = context::resolve(&args.cluster, settings, reporter, false).await?;
    if let Some(w) = ctx.channel_warning() {
        reporter.warn(&w);
    }
    let ssh_opts = SshOptions::from_flags(&SshFlags::from(&args.ssh), &ctx.admin_user, settings)
        .map_err(|e| anyhow::Error::new(output::WithExit::wrap(e, Exit::Usage)))?;
    // Maintenance windows: outside one, nothing is done (exit 8), or it is waited for.
    let window_policy = window::policy(&args.window, &ctx, &journal, reporter).await?;
    if let (Some(w), false) = (&window_policy, args.dry_run) {
        let cancel = CancellationToken::new();
        let signals = tokio::spawn(watch_signals(
            cancel.clone(),
            CancellationToken::new(),
            reporter.clone(),
        ));
        let r = window::before_start(w, args.window.wait_for_window, &cancel, reporter).await;
        signals.abort();
        r?;
    }
    let blocker_policy = blockers::policy(&args.blockers, &ctx).await?;
    let notify_cfg = notify::config(&args.notify, settings)?;
    if let Some(url) = &args.metrics.pushgateway_url {
        crate::metrics::check_url(url).map_err(|e| {
            Failure::new(Exit::Usage, e.to_string()).hint("e.g. --pushgateway-url http://pushgateway:9091")
        })?;
    }

    // How the nodes are reached (--via kube: permissions checked, leftover pods removed).
    let via = super::via::via(&args.via);
    let run_id = journal::new_run_id();
    // The rollout's own permissions are asked in the pre-flight, with the drain plan.
    let shell = super::via::open(&args.via, &ssh_opts, &ctx, settings, reporter, &run_id, &[]).await?;
    // Until the rollout's own signal handling starts (before the health gate and the lock),
    // nothing has changed: Ctrl-C or SIGTERM there stops the run, and the pods still go.
    let guarded = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(via == Via::Kube));
    let early_signal = {
        let guarded = guarded.clone();
        async move {
            if !guarded.load(std::sync::atomic::Ordering::SeqCst) {
                std::future::pending::<()>().await;
            }
            super::via::interrupted().await;
            if !guarded.load(std::sync::atomic::Ordering::SeqCst) {
                std::future::pending::<()>().await;
            }
        }
    };
    let unattended = Unattended {
        window_policy,
        blocker_policy,
        notify_cfg,
    };
    let work = run_with(
        args,
        settings,
        reporter,
        ctx,
        ssh_opts,
        journal,
        requested,
        via,
        run_id,
        shell.clone(),
        guarded.clone(),
        unattended,
    );
    let result = tokio::select! {
        r = work => r,
        _ = early_signal => Err(Failure::new(
            Exit::Interrupted,
            "interrupted before the lock was taken; nothing was changed",
        )
        .into()),
    };
    // Every exit path: the node-shell pods (or SSH sessions) go.
    shell.release_all().await;
    result
}

/// What `apply` checks and tells at its safe points when it runs unattended: maintenance
/// windows, blockers, notifications.
struct Unattended {
    window_policy: Option<crate::rollout::engine::WindowPolicy>,
    blocker_policy: Option<crate::rollout::engine::BlockerPolicy>,
    notify_cfg: Option<notify::Config>,
}

#[allow(clippy::too_many_arguments)]
async fn run_with(
    args: ApplyArgs,
    settings: &Settings,
    reporter: &Reporter,
    ctx: context::ClusterContext,
    ssh_opts: SshOptions,
    journal: Journal,
    requested: journal::RunOptions,
    via: Via,
    run_id: String,
    shell: std::sync::Arc<dyn crate::transport::NodeShell>,
    early_signals: std::sync::Arc<std::sync::atomic::AtomicBool>,
    unattended: Unattended,
) -> anyhow::Result<Outcome> {
    let Unattended {
        window_policy,
        blocker_policy,
        notify_cfg,
    } = unattended;
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
        Some(prev) => resume_options(&prev.options, &requested, &prev.run_id)
            .map_err(|e| Failure::new(Exit::Usage, e.message.clone()).hint(e.hint()))?,
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
            let cands: Vec<_> = rows.iter().map(|r| candidate_via(&ctx, r, via)).collect();
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
    let timeout = node_timeout(via, &ssh_opts, &args.via, false);
    let before = scan_nodes(&ctx, &planned_rows, &*shell, via, timeout, 16, false, reporter).await;
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
        .hint(match via {
            Via::Ssh => "fix SSH to that node (or reach it through the Kubernetes API with --via kube), or leave it out with --nodes / --nodepool / --selector, then run again",
            Via::Kube => "check the node-shell pod's namespace, image and the node (kubectl describe pod), or leave the node out with --nodes / --nodepool / --selector, then run again",
            Via::RunCommand => "check the node's VM (az vmss get-instance-view, az vmss run-command list) and that no other run command holds it, or leave the node out with --nodes / --nodepool / --selector, then run again",
        })
        .into());
    }

    // Azure Linux nodes the options cannot patch: refused before anything changes.
    let planned: Vec<&ScanRow> = before
        .iter()
        .filter(|r| entries.iter().any(|e| e.name == r.name && e.patch()))
        .collect();
    if let Some(refusal) = azure_linux::refusal(&planned, &options) {
        if !args.dry_run {
            return Err(refusal.into());
        }
        // --dry-run shows everything that would refuse the run, and changes nothing anyway.
        let message = refusal.message.replace("; nothing was changed", "");
        reporter.warn(&format!(
            "apply would refuse: {message}{}",
            refusal.hint.map(|h| format!(" ({h})")).unwrap_or_default()
        ));
    }

    // Pre-flight, part 2: what will certainly fail, before anything changes.
    let resume_states: BTreeMap<String, NodeState> = resumed
        .as_ref()
        .map(|p| p.nodes.iter().map(|n| (n.name.clone(), n.state)).collect())
        .unwrap_or_default();
    let checks = preflight::drains(
        &ctx.client,
        &entries,
        &before_by_name,
        &drain_opts,
        options.reboot,
        &resume_states,
    )
    .await
    .map_err(|(what, e)| context::kube_failure(&what, e))?;
    let kured = k::kured_lock_holder(&ctx.client)
        .await
        .map_err(|e| anyhow::Error::new(e).context("cannot read kured's lock"))?;
    let ours_in_cluster = marked_by(&rows, &chain);
    let gate_now = gate::check(&ctx.client, &ours_in_cluster, &[])
        .await
        .map_err(|e| context::kube_failure("cannot check the cluster's health", e))?;

    // Permissions the rollout will use, asked now (a missing one would stop it half-way).
    let refused = if entries.iter().any(PlanEntry::patch) {
        k::access::denied(&ctx.client, &rollout_needs(&checks))
            .await
            .map_err(|e| context::kube_failure("cannot check this identity's permissions", e))?
    } else {
        vec![]
    };
    if let Some(f) = permissions_failure(&refused) {
        if !args.dry_run {
            return Err(f.into());
        }
        reporter.warn(&format!("{f}; {}", f.hint.as_deref().unwrap_or_default()));
    }
    if args.dry_run {
        if let Some(w) = &window_policy {
            reporter.info(&window::dry_run_verdict(
                w,
                entries.iter().filter(|e| e.patch()).count(),
            ));
        }
        if let Some(b) = &blocker_policy {
            reporter.info(&blockers::dry_run_line(b).await);
        }
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
    if let Some(r) = preflight::certain_failures(&checks) {
        return Err(Failure::new(Exit::Usage, r.message).hint(r.hint).into());
    }
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
    early_signals.store(false, std::sync::atomic::Ordering::SeqCst);

    // The health gate before the lock: nothing else may be out.
    let gate_wait = Duration::from_secs(args.health_wait);
    let cluster = KubeCluster {
        client: ctx.client.clone(),
    };
    if let Err(e) = wait_gate(&cluster, &ours_in_cluster, &[], gate_wait, GATE_POLL, &cancel, reporter).await {
        signals.abort();
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
    if let Some(b) = &blocker_policy {
        if let Err(e) = blockers::before_lock(b, &cancel, reporter).await {
            signals.abort();
            return Err(e);
        }
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
    let holder = HolderInfo::current(settings, &run_id);
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

    let mut transport = ShellTransport::new(shell.clone());
    if via != Via::RunCommand {
        if let Some(arm) = super::via_run_command::restart_fallback(&ctx, reporter).await {
            transport = transport.with_arm_restart(arm);
        }
    }
    let cfg = EngineConfig::new(options.clone(), drain_opts, run_id.clone(), gate_wait);
    let mut engine = Engine::new(
        &cluster,
        &transport,
        &guard,
        cfg,
        &journal,
        reporter,
        cancel.clone(),
        abandon.clone(),
    );
    if let Some(w) = window_policy {
        engine = engine.with_window(w);
    }
    if let Some(b) = blocker_policy {
        engine = engine.with_blockers(b);
    }
    let notifier = notify_cfg.map(|c| notify::start(c, reporter));
    if let Some(n) = &notifier {
        if let Some(h) = notify::hook(n, &ctx.cluster.name, &run_id) {
            engine = engine.with_node_hook(h);
        }
        let todo: Vec<&str> = record
            .nodes
            .iter()
            .filter(|n| !matches!(n.state, NodeState::Done | NodeState::Skipped | NodeState::Gone))
            .map(|n| n.name.as_str())
            .collect();
        n.send(notify::event(
            crate::notify::EventKind::RunStarted,
            &ctx.cluster.name,
            &run_id,
            format!(
                "{} node(s) to patch one at a time ({}); upgrade mode {}, reboot {}{}",
                todo.len(),
                todo.join(", "),
                enum_text(&options.upgrade_mode),
                enum_text(&options.reboot),
                if chain.is_empty() {
                    String::new()
                } else {
                    format!("; resuming run {}", chain.join(", "))
                }
            ),
        ));
    }
    let result = engine.run(&mut record).await;
    let lock_lost = engine.lock_lost().map(str::to_string);
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
    let (status, err) = match &result {
        Ok(()) => (RunStatus::Succeeded, None),
        Err(RunStop::Interrupted) => (RunStatus::Interrupted, Some("interrupted".to_string())),
        Err(RunStop::OutsideWindow(msg)) => (RunStatus::Interrupted, Some(msg.clone())),
        Err(RunStop::Blocked(msg)) => (RunStatus::Failed, Some(msg.clone())),
        Err(RunStop::Failed { message, .. }) => (RunStatus::Failed, Some(message.clone())),
        Err(RunStop::LockLost(msg)) => (
            RunStatus::Failed,
            Some(format!("{msg}; stopped without starting another node")),
        ),
    };
    let exit = result.as_ref().err().map(RunStop::exit).unwrap_or(Exit::Ok);
    record.status = status;
    record.error = err.clone();
    journal.save(&record)?;
    if let Some(url) = &args.metrics.pushgateway_url {
        let families = crate::metrics::run_families(&record);
        match crate::metrics::push(
            url,
            "aks-patch-apply",
            &ctx.cluster.name,
            &families,
            Duration::from_secs(10),
        )
        .await
        {
            Ok(()) => reporter.verbose("pushed the run's metrics"),
            Err(e) => reporter.warn(&format!("{e}; the run's result is not affected")),
        }
    }
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
    if let Some(n) = notifier {
        for (name, _) in &left {
            if let Some(node) = record.nodes.iter().find(|r| &r.name == name) {
                n.send(crate::notify::node_event(
                    crate::notify::EventKind::NodeLeftCordoned,
                    &ctx.cluster.name,
                    &run_id,
                    node,
                    Some(&format!(
                        "once it is healthy, `aks-patch apply ... --one-at-a-time --resume` uncordons it, or by hand `kubectl uncordon {name} && kubectl annotate node {name} {}-`",
                        kdrain::IN_PROGRESS_ANNOTATION
                    )),
                ));
            }
        }
        n.send(notify::event(
            crate::notify::EventKind::RunFinished,
            &ctx.cluster.name,
            &run_id,
            summary.clone(),
        ));
        n.finish(Duration::from_secs(20), reporter).await;
    }
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

/// What a rollout of the nodes in `checks` asks the API server to do beyond the reads the
/// pre-flight has already made: cordon and mark nodes, evict their pods, hold the Lease,
/// check the evicted workloads' owners.
fn rollout_needs(checks: &[preflight::NodeCheck]) -> Vec<k::access::Need> {
    use k::access::Need;
    let mut needs = vec![
        Need::cluster("patch", "", "nodes"),
        Need::cluster("watch", "", "nodes"),
        Need::namespaced("create", "coordination.k8s.io", "leases", k::lock::LEASE_NAMESPACE),
        Need::namespaced("update", "coordination.k8s.io", "leases", k::lock::LEASE_NAMESPACE)
            .named(k::lock::LEASE_NAME),
        Need::namespaced("delete", "coordination.k8s.io", "leases", k::lock::LEASE_NAMESPACE)
            .named(k::lock::LEASE_NAME),
    ];
    let namespaces: std::collections::BTreeSet<&str> = checks
        .iter()
        .flat_map(|c| c.evict.iter())
        .filter_map(|p| p.split_once('/').map(|(ns, _)| ns))
        .collect();
    for ns in namespaces {
        needs.push(Need::namespaced("create", "", "pods", ns).subresource("eviction"));
        needs.push(Need::namespaced("get", "apps", "replicasets", ns));
        needs.push(Need::namespaced("get", "apps", "statefulsets", ns));
    }
    needs
}

/// The refusal of a rollout whose identity lacks `refused`, naming each permission and the
/// roles that would grant them.
fn permissions_failure(refused: &[(k::access::Need, String)]) -> Option<Failure> {
    if refused.is_empty() {
        return None;
    }
    let list: Vec<String> = refused.iter().map(|(n, _)| n.to_string()).collect();
    Some(
        Failure::new(
            Exit::Auth,
            format!(
                "the identity aks-patch signs in as may not {} (asked with SelfSubjectAccessReview): the rollout would stop there; nothing was changed",
                list.join(", ")
            ),
        )
        .hint("grant the permissions: on an Entra ID cluster with Azure RBAC, the Azure role `Azure Kubernetes Service RBAC Cluster Admin` on the cluster; otherwise bind the identity to the ClusterRole in docs/rbac.yaml (`kubectl apply -f docs/rbac.yaml`, then a ClusterRoleBinding)"),
    )
}
