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
//!
//! This module is glue, in the order a run goes: the flags turned into the run's typed
//! options, a resume's checked against its record ([`crate::rollout::resume`]), the windows,
//! blockers and notifications ([`run`]); the pre-flight against the cluster (`prepare.rs`),
//! whose decisions are [`crate::rollout::preflight`]'s; `--dry-run` and the confirmation; the
//! gate, the blockers, the lock and the run record (`start.rs`); the engine
//! ([`crate::rollout::engine`]); then the lock released, the record closed and the summary
//! (`finish.rs`). A refusal is a [`crate::rollout::refusal::Refusal`], worded by
//! [`crate::output::refusal`].

mod blockers;
mod finish;
mod input;
pub(crate) mod notify;
mod prepare;
mod start;
mod view;
pub mod window;

use super::context::{self, ClusterContext};
use super::Outcome;
use crate::cli::ApplyArgs;
use crate::kube::lock::Liveness;
use crate::kube::{CancellationToken, HolderInfo, LeaseState, Lock, LockOptions};
use crate::output::refusal::{finishing_only, let_through, message, would_refuse};
use crate::output::{self, Exit, Failure, Reporter};
use crate::rollout::batches::BatchRules;
use crate::rollout::engine::{BlockerPolicy, Engine, EngineConfig, Ports, Signals, WindowPolicy};
use crate::rollout::journal::{self, enum_text, NodeState, RunOptions, RunRecord};
use crate::rollout::live::KubeCluster;
use crate::rollout::plan::PlanEntry;
use crate::rollout::preflight::other_run::OtherRun;
use crate::rollout::preflight::Decision;
use crate::rollout::record_store::{RecordPlace, RunRecords};
use crate::rollout::refusal::{Obstacle, Refusal};
use crate::rollout::resume::{self, resume_options, Resumable};
use crate::rollout::shell::ShellTransport;
use crate::settings::Settings;
use crate::ssh::{self, SshFlags, SshOptions};
use crate::transport::{NodeShell, Via};
use input::{check_journal_dir, confirm, run_options, watch_signals};
use prepare::Prepared;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use view::{dry_run_outcome, plan_table, DryVerdict};

/// How long the Lease lock lives without renewal.
const LOCK_DURATION: Duration = Duration::from_secs(60);
/// How often the health gate looks again while something blocks.
const GATE_POLL: Duration = Duration::from_secs(1);

/// What every stage of one `apply` works with.
struct Session<'a> {
    /// The command line; what shapes the rollout is in the run's options (a resumed run's
    /// are its record's), only the secret URLs and the flags not recorded are read here.
    args: ApplyArgs,
    settings: &'a Settings,
    reporter: &'a Reporter,
    ctx: ClusterContext,
    journal: RunRecords,
    run_id: String,
    /// Asked to stop from outside (a fleet): as a first Ctrl-C.
    stop: CancellationToken,
    /// See [`Hooks::preflight`].
    preflight: bool,
}

/// How the nodes are reached.
struct Reach {
    via: Via,
    ssh_opts: SshOptions,
    /// How long a node-shell pod or run command may take to start (`--connect-timeout`).
    connect_timeout: Duration,
    shell: Arc<dyn NodeShell>,
}

/// What the run starts from, once the flags are checked and the nodes can be reached.
struct Setup {
    reach: Reach,
    /// The options given (a resumed run's: its record's).
    options: RunOptions,
    /// The unfinished run this one continues (`--resume`).
    resumed: Option<RunRecord>,
    unattended: Unattended,
    /// Set while a signal stops the run before its own signal handling starts.
    early_signals: Arc<AtomicBool>,
}

/// What `apply` checks and tells at its safe points when it runs unattended: maintenance
/// windows, blockers, notifications.
struct Unattended {
    window_policy: Option<WindowPolicy>,
    blocker_policy: Option<BlockerPolicy>,
    notify_cfg: Option<notify::Config>,
}

/// What a caller running `apply` as part of something larger gives it: a fleet names the run
/// (its fleet run record points at it) and may ask it to stop at its next safe point, as
/// Ctrl-C does.
#[derive(Debug, Clone, Default)]
pub struct Hooks {
    /// The run's id (default: a new one).
    pub run_id: Option<String>,
    /// Cancelled: stop at the next safe point (before the lock: do not start).
    pub stop: CancellationToken,
    /// With `--dry-run`: the pre-flight of a run about to start (a fleet's, before its first
    /// stage): what the run would refuse is the error it would stop with, not a verdict in
    /// the plan.
    pub preflight: bool,
}

pub async fn run(args: ApplyArgs, settings: &Settings, reporter: &Reporter) -> anyhow::Result<Outcome> {
    run_hooked(args, settings, reporter, Hooks::default()).await
}

/// [`run`], named and stoppable from outside.
pub async fn run_hooked(
    args: ApplyArgs,
    settings: &Settings,
    reporter: &Reporter,
    hooks: Hooks,
) -> anyhow::Result<Outcome> {
    // Pre-flight, part 1: what needs no server at all.
    let journal_dir = args
        .journal_dir
        .clone()
        .unwrap_or_else(|| settings.state_dir.join("runs"));
    let place = context::record_place(args.run_record, &args.cluster, settings);
    check_flags(&args, settings, place, &journal_dir)?;
    let requested = run_options(&args);

    let ctx = context::resolve(&args.cluster, settings, reporter, false).await?;
    let journal = context::run_records(place, journal_dir, &ctx);
    if let Some(w) = ctx.channel_warning() {
        reporter.warn(&w);
    }
    let ssh_opts = SshOptions::from_flags(&SshFlags::from(&args.ssh), &ctx.admin_user, settings)
        .map_err(|e| anyhow::Error::new(output::WithExit::wrap(e, Exit::Usage)))?;
    // `--resume`: the run it continues, and its options (the flags given now must agree).
    // From here on the options are the record's.
    let resumed = if args.resume {
        match resumable(&journal, &ctx, &args).await? {
            Ok(prev) => Some(prev),
            Err(finished) => return Ok(finished),
        }
    } else if args.resume_or_start {
        let unfinished = unfinished(&journal, &ctx).await?;
        if let Some(prev) = &unfinished {
            reporter.info(&format!(
                "continuing the unfinished run {} of {} (--resume-or-start): its options are its record's",
                prev.run_id, ctx.cluster.name
            ));
        }
        unfinished
    } else {
        None
    };
    let options = match &resumed {
        Some(prev) => resume_options(
            &prev.options,
            prev.schema_version,
            &requested,
            &args.given,
            &prev.run_id,
        )
        .map_err(Refusal::from)?,
        None => requested,
    };
    let unattended = unattended(
        &args,
        &options,
        settings,
        &ctx,
        &journal,
        resumed.as_ref(),
        reporter,
        &hooks.stop,
    )
    .await?;

    // How the nodes are reached (--via kube: permissions checked, leftover pods removed).
    let via = options.transport.via;
    let connect_timeout = Duration::from_secs(args.via.connect_timeout);
    let run_id = hooks.run_id.clone().unwrap_or_else(journal::new_run_id);
    // The rollout's own permissions are asked in the pre-flight, with the drain plan.
    let shell = super::via::open(
        &options.transport,
        connect_timeout,
        &ssh_opts,
        &ctx,
        settings,
        reporter,
        &run_id,
    )
    .await?;
    // Until the rollout's own signal handling starts (before the health gate and the lock),
    // nothing has changed: Ctrl-C or SIGTERM there stops the run, and the pods still go.
    let guarded = Arc::new(AtomicBool::new(via == Via::Kube));
    let early_signal = {
        let guarded = guarded.clone();
        async move {
            if !guarded.load(Ordering::SeqCst) {
                std::future::pending::<()>().await;
            }
            super::via::interrupted().await;
            if !guarded.load(Ordering::SeqCst) {
                std::future::pending::<()>().await;
            }
        }
    };
    let session = Session {
        args,
        settings,
        reporter,
        ctx,
        journal,
        run_id,
        stop: hooks.stop.clone(),
        preflight: hooks.preflight,
    };
    let setup = Setup {
        reach: Reach {
            via,
            ssh_opts,
            connect_timeout,
            shell: shell.clone(),
        },
        options,
        resumed,
        unattended,
        early_signals: guarded,
    };
    let result = tokio::select! {
        r = run_with(&session, setup) => r,
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

/// What can be checked before any server is asked: the journal directory takes a record,
/// the SSH key and flags, the windows and time zone.
fn check_flags(args: &ApplyArgs, settings: &Settings, place: RecordPlace, dir: &std::path::Path) -> anyhow::Result<()> {
    if !args.dry_run && place == RecordPlace::File {
        check_journal_dir(dir)?;
    }
    if let Some(key) = &args.ssh.ssh_key {
        ssh::check_private_key(key)
            .map_err(|e| Failure::new(Exit::Usage, e.to_string()).hint("nothing was changed"))?;
    }
    SshOptions::from_flags(&SshFlags::from(&args.ssh), "azureuser", settings)
        .map_err(|e| anyhow::Error::new(output::WithExit::wrap(e, Exit::Usage)))?;
    window::check(&args.window)
}

/// The run's maintenance windows (outside one, nothing is done: exit 8, or it is waited
/// for), blockers and notifications, and the Pushgateway, checked; the secret URLs are the
/// ones given now. `stop` ends a wait for the window as Ctrl-C does.
#[allow(clippy::too_many_arguments)]
async fn unattended(
    args: &ApplyArgs,
    options: &RunOptions,
    settings: &Settings,
    ctx: &ClusterContext,
    journal: &RunRecords,
    resumed: Option<&RunRecord>,
    reporter: &Reporter,
    stop: &CancellationToken,
) -> anyhow::Result<Unattended> {
    let window_policy = window::policy(&options.window, ctx, journal, reporter).await?;
    // A resume whose interrupted run left nodes out of service finishes them whatever the time.
    let finishing = !resume::left_out(resumed).is_empty();
    match (&window_policy, args.dry_run) {
        (Some(w), false) if finishing => window::finishing_left_out(w, reporter),
        (Some(w), false) => {
            let cancel = CancellationToken::new();
            let signals = tokio::spawn(watch_signals(
                cancel.clone(),
                CancellationToken::new(),
                reporter.clone(),
                stop.clone(),
            ));
            let r = window::before_start(w, options.window.wait_for_window, &cancel, reporter).await;
            signals.abort();
            if let Err(e) = r {
                return Err(refused(ctx, settings, reporter, e).await);
            }
        }
        _ => {}
    }
    let blocker_policy = blockers::policy(
        &options.blockers,
        args.blockers.prometheus_url.as_deref(),
        ctx,
        settings,
    )
    .await?;
    let notify_cfg = notify::config(&args.notify.notify_url, options.notify.template.as_deref(), settings)?;
    if let Some(url) = &args.metrics.pushgateway_url {
        crate::metrics::check_url(url).map_err(|e| {
            Failure::new(Exit::Usage, e.to_string()).hint("e.g. --pushgateway-url http://pushgateway:9091")
        })?;
    }
    Ok(Unattended {
        window_policy,
        blocker_policy,
        notify_cfg,
    })
}

/// The newest run of the cluster, read as a resume reads it.
async fn latest_run(journal: &RunRecords, ctx: &ClusterContext) -> anyhow::Result<Option<RunRecord>> {
    let latest = journal.latest(&ctx.cluster.key).await.map_err(|e| {
        let text = match e {
            journal::JournalError::Newer { .. } => e.to_string(),
            _ => format!("{e}: {}", e.cause()),
        };
        // The records in the cluster that this identity may not read: a permission.
        if e.refused_access() {
            return Refusal::new(Obstacle::Permissions, text).hint(e.remedy());
        }
        Refusal::new(Obstacle::Record, text)
            .hint("a record of a newer aks-patch needs that version; a damaged one can be moved out of the journal directory (or its ConfigMap deleted) to start a new run without --resume")
    })?;
    Ok(latest)
}

/// `--resume-or-start`: the newest run of the cluster if it is unfinished.
async fn unfinished(journal: &RunRecords, ctx: &ClusterContext) -> anyhow::Result<Option<RunRecord>> {
    Ok(match resume::resumable(latest_run(journal, ctx).await?) {
        Resumable::Continue(prev) => Some(prev),
        Resumable::Succeeded(_) | Resumable::Nothing => None,
    })
}

/// The run `--resume` continues: the newest of the cluster, if it is unfinished. `Ok(Err)`:
/// the newest run succeeded, and there is nothing to do (said so; nothing is touched).
async fn resumable(
    journal: &RunRecords,
    ctx: &ClusterContext,
    args: &ApplyArgs,
) -> anyhow::Result<Result<RunRecord, Outcome>> {
    let latest = latest_run(journal, ctx).await?;
    match resume::resumable(latest) {
        Resumable::Continue(prev) => Ok(Ok(prev)),
        Resumable::Succeeded(prev) => Ok(Err(Outcome {
            value: if super::shows_table(&args.global) {
                serde_json::Value::Null
            } else {
                serde_json::to_value(&prev)?
            },
            table: None,
            summary: Some(format!(
                "run {} of {} already succeeded{}: there is nothing to resume; nothing was changed (start a new run without --resume to patch again)",
                prev.run_id,
                ctx.cluster.name,
                prev.finished_at
                    .map(|t| format!(" at {}", journal::stamp(&t)))
                    .unwrap_or_default()
            )),
            exit: Exit::Ok,
        })),
        Resumable::Nothing => Err(Failure::new(
            Exit::Usage,
            format!("there is no unfinished run of {} to resume", ctx.cluster.name),
        )
        .hint(format!(
            "the run records are in {}{}; start a new run without --resume",
            journal.describe(),
            match journal.place() {
                RecordPlace::File => " (--run-record file)",
                RecordPlace::Cluster => " (--run-record cluster)",
            }
        ))
        .into()),
    }
}

/// From the pre-flight to the summary: the dry run's verdict, or the confirmation, the start
/// (gate, blockers, lock, run record), the rollout and the finish.
async fn run_with(s: &Session<'_>, setup: Setup) -> anyhow::Result<Outcome> {
    let Setup {
        reach,
        options,
        resumed,
        unattended,
        early_signals,
    } = setup;
    let prepared = match prepare::prepare(s, &reach, resumed, options).await {
        Ok(p) => p,
        Err(e) => return Err(refused(&s.ctx, s.settings, s.reporter, e).await),
    };
    if s.args.dry_run {
        if let (true, Decision::Refuse(r)) = (s.preflight, &prepared.verdict.decision) {
            return Err(refused(&s.ctx, s.settings, s.reporter, r.clone().into()).await);
        }
        return Ok(dry_run(s, &prepared, &unattended).await);
    }
    if !prepared.entries.iter().any(PlanEntry::patch) {
        return Ok(Outcome {
            value: prepared.plan_value.clone(),
            table: Some(plan_table()),
            summary: Some("nothing to do".into()),
            exit: Exit::Ok,
        });
    }
    if let Some(r) = &prepared.verdict.let_through {
        s.reporter
            .warn(&let_through(r, "--allow-pending-pods", "the node is taken out anyway"));
    }
    let hold_others = match &prepared.verdict.decision {
        Decision::Go => None,
        Decision::Refuse(r) => return Err(refused(&s.ctx, s.settings, s.reporter, r.clone().into()).await),
        Decision::FinishLeftOut(r) => {
            s.reporter.warn(&finishing_only(r, &prepared.left_out()));
            Some(r)
        }
    };
    let patching = prepared.entries.iter().filter(|e| e.patch()).count();
    if let Err(e) = confirm(&s.args, &s.ctx, patching) {
        return Err(refused(&s.ctx, s.settings, s.reporter, e).await);
    }
    if s.stop.is_cancelled() {
        return Err(Failure::new(
            Exit::Interrupted,
            "asked to stop before the lock was taken; nothing was changed",
        )
        .into());
    }

    // Ctrl-C / SIGTERM from here on stop at a safe point instead of killing the process.
    let cancel = CancellationToken::new();
    let abandon = CancellationToken::new();
    let signals = tokio::spawn(watch_signals(
        cancel.clone(),
        abandon.clone(),
        s.reporter.clone(),
        s.stop.clone(),
    ));
    early_signals.store(false, Ordering::SeqCst);

    // The health gate, the blockers and the lock; then the run record.
    let cluster = KubeCluster {
        client: s.ctx.client.clone(),
    };
    let started = start::start(s, &prepared, &cluster, unattended.blocker_policy.as_ref(), &cancel).await;
    let (guard, mut record) = match started {
        Ok(x) => x,
        Err(e) => {
            signals.abort();
            return Err(refused(&s.ctx, s.settings, s.reporter, e).await);
        }
    };

    // Whatever the transport, a reboot command that cannot be given (refused, hung, a pod
    // or run command that never starts) is replaced by a restart through ARM when it can be.
    let mut transport = ShellTransport::new(reach.shell.clone());
    if let Some(arm) = super::via_run_command::restart_fallback(&s.ctx, s.reporter).await {
        transport = transport.with_arm_restart(arm);
    }
    let mut cfg = EngineConfig::new(
        prepared.options.clone(),
        prepared.drain_opts.clone(),
        s.run_id.clone(),
        Duration::from_secs(prepared.options.health_wait),
    );
    cfg.batches = batch_rules(&prepared);
    let ports = Ports {
        cluster: &cluster,
        transport: &transport,
        fence: &guard,
        journal: &s.journal,
        progress: s.reporter,
        clock: &crate::rollout::window::SystemClock,
    };
    let obey = Signals {
        cancel: cancel.clone(),
        abandon: abandon.clone(),
    };
    let mut engine = Engine::new(ports, cfg, obey);
    let Unattended {
        window_policy,
        blocker_policy,
        notify_cfg,
    } = unattended;
    if let Some(w) = window_policy {
        engine = engine.with_window(w);
    }
    if let Some(b) = blocker_policy {
        engine = engine.with_blockers(b);
    }
    if let Some(r) = hold_others {
        engine = engine.with_hold_others(output::refusal::stop_after_left_out(r));
    }
    let notifier = notify_cfg.map(|c| notify::start(c, s.reporter));
    if let Some(n) = &notifier {
        if let Some(h) = notify::hook(n, &s.ctx.cluster.name, &s.run_id) {
            engine = engine.with_node_hook(h);
        }
        n.send(run_started(s, &prepared, &record));
    }
    let result = engine.run(&mut record).await;
    let lock_lost = engine.lock_lost();
    signals.abort();

    let ended = finish::Ended { result, lock_lost };
    finish::finish(s, guard, record, ended, notifier).await
}

/// `--max-unavailable`: the rules the batches are planned by (`None`: one at a time).
fn batch_rules(prepared: &Prepared) -> Option<BatchRules> {
    prepared.options.max_unavailable.map(|max| BatchRules {
        max,
        across_zones: prepared.options.across_zones,
        drain: prepared.drain_opts.clone(),
        pending_taint: !prepared.options.no_pending_taint,
    })
}

/// `--dry-run` with `--max-unavailable`: the batches as the cluster is now (each planned as
/// if the ones before had gone and come back).
async fn dry_run_batches(s: &Session<'_>, prepared: &Prepared) {
    let Some(rules) = batch_rules(prepared) else { return };
    let todo: Vec<String> = prepared
        .entries
        .iter()
        .filter(|e| e.patch())
        .map(|e| e.name.clone())
        .collect();
    match crate::kube::snapshot::read(&s.ctx.client).await {
        Ok(snapshot) => {
            let planned = crate::rollout::batches::plan_batches(&snapshot, &todo, &rules);
            s.reporter.info(&output::batches::plan_text(&planned, &rules));
        }
        Err(e) => s.reporter.warn(&format!("cannot plan the batches: {e}")),
    }
}

/// `--dry-run`: what the run would do, and what would stop it, with nothing changed.
async fn dry_run(s: &Session<'_>, prepared: &Prepared, unattended: &Unattended) -> Outcome {
    dry_run_batches(s, prepared).await;
    if let Some(w) = &unattended.window_policy {
        s.reporter.info(&window::dry_run_verdict(
            w,
            prepared.entries.iter().filter(|e| e.patch()).count(),
        ));
    }
    if let Some(b) = &unattended.blocker_policy {
        s.reporter.info(&blockers::dry_run_line(b).await);
    }
    // What the run would make of the pre-flight: refuse, or (a resume with nodes left out
    // of service) finish those and stop.
    let verdict = match &prepared.verdict.decision {
        Decision::Go => None,
        Decision::FinishLeftOut(r) => Some(DryVerdict {
            line: format!(
                "apply would finish {} (left out of service by the interrupted run) first, then stop: {}",
                prepared.left_out().join(", "),
                message(r)
            ),
            summary: "; apply would stop after the nodes left out (see above)",
        }),
        Decision::Refuse(r) => Some(DryVerdict {
            line: would_refuse(r),
            summary: "; apply would refuse (see above)",
        }),
    };
    dry_run_outcome(&s.ctx, &s.args, prepared, verdict, s.reporter)
}

/// The notification that the run starts: its nodes, options, and the runs it continues.
fn run_started(s: &Session<'_>, prepared: &Prepared, record: &RunRecord) -> crate::notify::Event {
    let todo: Vec<&str> = record
        .nodes
        .iter()
        .filter(|n| !matches!(n.state, NodeState::Done | NodeState::Skipped | NodeState::Gone))
        .map(|n| n.name.as_str())
        .collect();
    notify::event(
        crate::notify::EventKind::RunStarted,
        &s.ctx.cluster.name,
        &s.run_id,
        format!(
            "{} node(s) to patch {} ({}); upgrade mode {}, reboot {}{}",
            todo.len(),
            match prepared.options.max_unavailable {
                Some(m) => format!("in batches (--max-unavailable {m})"),
                None => "one at a time".to_string(),
            },
            todo.join(", "),
            enum_text(&prepared.options.upgrade_mode),
            enum_text(&prepared.options.reboot),
            if prepared.chain.is_empty() {
                String::new()
            } else {
                format!("; resuming run {}", prepared.chain.join(", "))
            }
        ),
    )
}

/// What is known of run `run` from the cluster's lock: whether it is live, dead, or unknown.
async fn other_run(ctx: &ClusterContext, settings: &Settings, run: &str) -> OtherRun {
    let me = HolderInfo::current(settings, "");
    let lock: Option<(LeaseState, Liveness)> = Lock::judge_now(&ctx.client, &me, &LockOptions::new(LOCK_DURATION))
        .await
        .ok()
        .flatten()
        .filter(|(st, _)| st.holder_info.as_ref().is_some_and(|h| h.run_id == run));
    OtherRun::of(lock.as_ref())
}

/// A run that stops before its lock changes nothing, but an earlier run may have left nodes
/// out of service: say which, and how to put them back, beside the refusal.
async fn refused(ctx: &ClusterContext, settings: &Settings, reporter: &Reporter, e: anyhow::Error) -> anyhow::Error {
    let rows = tokio::time::timeout(Duration::from_secs(10), crate::kube::list_node_infos(&ctx.client, None)).await;
    if let Ok(Ok(rows)) = rows {
        for r in &rows {
            if let Some(run) = &r.in_progress {
                reporter.warn(
                    &other_run(ctx, settings, run)
                        .await
                        .warning(&r.name, &output::nodes::status(r), run),
                );
            }
        }
        // Pending taints a run that is not live left (harmless: a preference), and how they go.
        let mut pending: std::collections::BTreeMap<&str, Vec<&str>> = Default::default();
        for r in &rows {
            if let Some(run) = r.pending_run() {
                pending.entry(run).or_default().push(&r.name);
            }
        }
        for (run, nodes) in pending {
            if let Some(note) = other_run(ctx, settings, run).await.pending_note(&nodes, run) {
                reporter.info(&note);
            }
        }
    }
    e
}
