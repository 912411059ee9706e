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
//! This file is glue, in the order a run goes: arguments and policies ([`run`]), the
//! pre-flight against the cluster (`prepare.rs`), `--dry-run` and the confirmation, the gate,
//! the blockers, the lock and the run record (`start.rs`), the engine
//! ([`crate::rollout::engine`]), then the lock released, the record closed and the summary
//! (`finish.rs`).

mod azure_linux;
mod blockers;
mod finish;
mod input;
mod notify;
mod other_run;
mod prepare;
mod start;
mod view;
pub mod window;

use super::context;
use super::Outcome;
use crate::cli::ApplyArgs;
use crate::kube::CancellationToken;
use crate::output::{self, Exit, Failure, Reporter};
use crate::rollout::engine::{Engine, EngineConfig, Ports, Signals};
use crate::rollout::journal::enum_text;
use crate::rollout::journal::{self, Journal, NodeState};
use crate::rollout::live::KubeCluster;
use crate::rollout::plan::PlanEntry;
use crate::rollout::resume::resume_options;
use crate::rollout::shell::ShellTransport;
use crate::settings::Settings;
use crate::ssh::{self, SshFlags, SshOptions};
use crate::transport::Via;
use input::{check_journal_dir, confirm, run_options, use_recorded, watch_signals};
use prepare::Prepared;
use std::time::Duration;
use view::{dry_run_outcome, plan_table, DryVerdict};

/// How long the Lease lock lives without renewal.
const LOCK_DURATION: Duration = Duration::from_secs(60);
/// How often the health gate looks again while something blocks.
const GATE_POLL: Duration = Duration::from_secs(1);

pub async fn run(mut args: ApplyArgs, settings: &Settings, reporter: &Reporter) -> anyhow::Result<Outcome> {
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
        ssh::check_private_key(key)
            .map_err(|e| Failure::new(Exit::Usage, e.to_string()).hint("nothing was changed"))?;
    }
    SshOptions::from_flags(&SshFlags::from(&args.ssh), "azureuser", settings)
        .map_err(|e| anyhow::Error::new(output::WithExit::wrap(e, Exit::Usage)))?;
    window::check(&args.window)?;
    let requested = run_options(&args);

    let ctx = context::resolve(&args.cluster, settings, reporter, false).await?;
    if let Some(w) = ctx.channel_warning() {
        reporter.warn(&w);
    }
    let ssh_opts = SshOptions::from_flags(&SshFlags::from(&args.ssh), &ctx.admin_user, settings)
        .map_err(|e| anyhow::Error::new(output::WithExit::wrap(e, Exit::Usage)))?;
    // `--resume`: the run it continues, and its options (the flags given now must agree).
    // From here on the arguments are the record's.
    let resumed = if args.resume {
        match resumable(&journal, &ctx, &args)? {
            Ok(prev) => Some(prev),
            Err(finished) => return Ok(finished),
        }
    } else {
        None
    };
    let requested = match &resumed {
        Some(prev) => {
            let o = resume_options(
                &prev.options,
                prev.schema_version,
                &requested,
                &args.given,
                &prev.run_id,
            )
            .map_err(|e| Failure::new(Exit::Usage, e.to_string()).hint(e.hint()))?;
            use_recorded(&mut args, &o);
            o
        }
        None => requested,
    };
    // Maintenance windows: outside one, nothing is done (exit 8), or it is waited for.
    let window_policy = window::policy(&args.window, &ctx, &journal, reporter).await?;
    // A resume whose interrupted run left nodes out of service finishes them whatever the time.
    let finishing = resumed
        .as_ref()
        .is_some_and(|p| p.nodes.iter().any(journal::NodeRecord::left_out));
    match (&window_policy, args.dry_run) {
        (Some(w), false) if finishing => window::finishing_left_out(w, reporter),
        (Some(w), false) => {
            let cancel = CancellationToken::new();
            let signals = tokio::spawn(watch_signals(
                cancel.clone(),
                CancellationToken::new(),
                reporter.clone(),
            ));
            let r = window::before_start(w, args.window.wait_for_window, &cancel, reporter).await;
            signals.abort();
            if let Err(e) = r {
                return Err(refused(&ctx, settings, reporter, e).await);
            }
        }
        _ => {}
    }
    let blocker_policy = blockers::policy(&args.blockers, &ctx, settings).await?;
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
        resumed,
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

/// The run `--resume` continues: the newest of the cluster, if it is unfinished. `Ok(Err)`:
/// the newest run succeeded, and there is nothing to do (said so; nothing is touched).
fn resumable(
    journal: &Journal,
    ctx: &context::ClusterContext,
    args: &ApplyArgs,
) -> anyhow::Result<Result<journal::RunRecord, Outcome>> {
    let latest = journal.latest(&ctx.cluster.key).map_err(|e| {
        let text = match e {
            journal::JournalError::Newer { .. } => e.to_string(),
            _ => format!("{e}: {}", e.cause()),
        };
        Failure::new(Exit::Failure, format!("{text}; nothing was changed"))
            .hint("a record of a newer aks-patch needs that version; a damaged one can be moved out of the journal directory to start a new run without --resume")
    })?;
    match latest {
        Some(prev) if prev.status == journal::RunStatus::Succeeded => {
            let value = if matches!(
                args.global.output,
                crate::cli::OutputFormat::Table | crate::cli::OutputFormat::Wide | crate::cli::OutputFormat::Tsv
            ) && args.global.query.is_none()
            {
                serde_json::Value::Null
            } else {
                serde_json::to_value(&prev)?
            };
            Ok(Err(Outcome {
                value,
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
            }))
        }
        Some(prev) if prev.unfinished() => Ok(Ok(prev)),
        _ => Err(Failure::new(
            Exit::Usage,
            format!("there is no unfinished run of {} to resume", ctx.cluster.name),
        )
        .hint(format!(
            "the run records are in {}; start a new run without --resume",
            journal.dir().display()
        ))
        .into()),
    }
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
    resumed: Option<journal::RunRecord>,
) -> anyhow::Result<Outcome> {
    let Unattended {
        window_policy,
        blocker_policy,
        notify_cfg,
    } = unattended;
    let prepared = match prepare::prepare(
        &args, settings, &ctx, resumed, requested, via, &ssh_opts, &*shell, reporter,
    )
    .await
    {
        Ok(p) => p,
        Err(e) => return Err(refused(&ctx, settings, reporter, e).await),
    };
    let Prepared {
        ref options,
        ref entries,
        ref chain,
        ..
    } = prepared;
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
        // What the run would make of the pre-flight: refuse, or (a resume with nodes left out
        // of service) finish those and stop.
        let verdict = match prepared.refusal(&Reporter::silent()) {
            Ok(None) => None,
            Ok(Some(stop)) => Some(DryVerdict {
                line: format!(
                    "apply would finish {} (left out of service by the interrupted run) first, then stop: {}",
                    prepared.left_out().join(", "),
                    stop.message()
                ),
                summary: "; apply would stop after the nodes left out (see above)",
            }),
            Err(f) => Some(DryVerdict {
                line: format!("apply would refuse: {}", f.message.replace("; nothing was changed", "")),
                summary: "; apply would refuse (see above)",
            }),
        };
        return Ok(dry_run_outcome(&ctx, &args, &prepared, verdict, reporter));
    }
    if !entries.iter().any(PlanEntry::patch) {
        return Ok(Outcome {
            value: prepared.plan_value.clone(),
            table: Some(plan_table()),
            summary: Some("nothing to do".into()),
            exit: Exit::Ok,
        });
    }
    let hold_others = match prepared.refusal(reporter) {
        Ok(hold) => hold,
        Err(e) => return Err(refused(&ctx, settings, reporter, e.into()).await),
    };
    if let Err(e) = confirm(&args, &ctx, entries.iter().filter(|e| e.patch()).count()) {
        return Err(refused(&ctx, settings, reporter, e).await);
    }

    // Ctrl-C / SIGTERM from here on stop at a safe point instead of killing the process.
    let cancel = CancellationToken::new();
    let abandon = CancellationToken::new();
    let signals = tokio::spawn(watch_signals(cancel.clone(), abandon.clone(), reporter.clone()));
    early_signals.store(false, std::sync::atomic::Ordering::SeqCst);

    // The health gate, the blockers and the lock; then the run record.
    let gate_wait = Duration::from_secs(args.health_wait);
    let cluster = KubeCluster {
        client: ctx.client.clone(),
    };
    let (guard, mut record) = match start::start(
        &args,
        settings,
        &ctx,
        &prepared,
        &journal,
        &run_id,
        &cluster,
        blocker_policy.as_ref(),
        &cancel,
        reporter,
    )
    .await
    {
        Ok(x) => x,
        Err(e) => {
            signals.abort();
            return Err(refused(&ctx, settings, reporter, e).await);
        }
    };

    // Whatever the transport, a reboot command that cannot be given (refused, hung, a pod
    // or run command that never starts) is replaced by a restart through ARM when it can be.
    let mut transport = ShellTransport::new(shell.clone());
    if let Some(arm) = super::via_run_command::restart_fallback(&ctx, reporter).await {
        transport = transport.with_arm_restart(arm);
    }
    let cfg = EngineConfig::new(options.clone(), prepared.drain_opts.clone(), run_id.clone(), gate_wait);
    let ports = Ports {
        cluster: &cluster,
        transport: &transport,
        fence: &guard,
        journal: &journal,
        progress: reporter,
        clock: &crate::rollout::window::SystemClock,
    };
    let obey = Signals {
        cancel: cancel.clone(),
        abandon: abandon.clone(),
    };
    let mut engine = Engine::new(ports, cfg, obey);
    if let Some(w) = window_policy {
        engine = engine.with_window(w);
    }
    if let Some(b) = blocker_policy {
        engine = engine.with_blockers(b);
    }
    if let Some(stop) = hold_others {
        engine = engine.with_hold_others(stop);
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

    let ended = finish::Ended { result, lock_lost };
    finish::finish(
        &args, settings, &ctx, &journal, guard, record, ended, notifier, &run_id, reporter,
    )
    .await
}

/// A run that stops before its lock changes nothing, but an earlier run may have left nodes
/// out of service: say which, and how to put them back, beside the refusal.
async fn refused(
    ctx: &context::ClusterContext,
    settings: &Settings,
    reporter: &Reporter,
    e: anyhow::Error,
) -> anyhow::Error {
    let rows = tokio::time::timeout(Duration::from_secs(10), crate::kube::list_node_infos(&ctx.client, None)).await;
    if let Ok(Ok(rows)) = rows {
        for r in &rows {
            if let Some(run) = &r.in_progress {
                let lock = other_run::run_lock(&ctx.client, settings, run).await;
                let other = other_run::OtherRun::of(lock.as_ref());
                reporter.warn(&other.warning(&r.name, &output::nodes::status(r), run));
            }
        }
    }
    e
}
