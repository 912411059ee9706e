//! `aks-patch fleet apply`: the chosen clusters in stages, each with exactly the rollout of
//! `apply` (its own lock, pre-flight, gate, window, run record, resume), through the fleet
//! scheduler ([`crate::fleet::schedule`]); a fleet run record ties the cluster runs together
//! and `--resume` continues it.

use super::super::Outcome;
use crate::cli::{ApplyArgs, ClusterArgs, FleetApplyTarget};
use crate::commands::apply::Hooks;
use crate::fleet::record::{ClusterState, FleetJournal, FleetResult, FleetRunRecord, FleetRuns, StageState};
use crate::fleet::schedule::{
    self, ClusterOutcome, ClusterResult, ClusterRollout, ClusterStart, FleetPorts, FleetProgress,
};
use crate::fleet::stages::{self, StagePlan};
use crate::fleet::ClusterRef;
use crate::kube::CancellationToken;
use crate::output::{Exit, Failure, Reporter};
use crate::rollout::journal::{self, Journal};
use crate::settings::Settings;
use async_trait::async_trait;
use futures::StreamExt;
use serde::Serialize;

/// Each cluster patched by `apply` itself.
struct Rollout<'a> {
    template: ApplyArgs<FleetApplyTarget>,
    settings: &'a Settings,
    reporter: &'a Reporter,
    journal: Journal,
}

impl Rollout<'_> {
    /// `apply`'s arguments for cluster `c`. A cluster that ran and left an unfinished run
    /// continues it (`apply --resume`); one that stopped before its first record starts afresh.
    fn args_for(&self, c: &ClusterRef, ran_before: bool) -> ApplyArgs {
        let cluster = ClusterArgs::arm(
            &c.subscription,
            &c.resource_group,
            &c.name,
            &self.template.cluster.select,
        );
        let mut args = self.template.clone().for_cluster(cluster);
        args.resume = ran_before && matches!(self.journal.latest_unfinished(&c.record_ref().key), Ok(Some(_)));
        args
    }

    /// The pre-flight of cluster `c`'s run as it would start now (`apply --dry-run`): what it
    /// would patch, or why it would not start. Changes nothing.
    async fn preflight(&self, c: &ClusterRef, ran_before: bool) -> Preflight {
        let mut args = self.args_for(c, ran_before);
        args.dry_run = true;
        // The plan is read from its JSON form, whatever the fleet prints.
        args.global.output = crate::cli::OutputFormat::Json;
        let hooks = Hooks {
            preflight: true,
            ..Hooks::default()
        };
        // Its lines only with --verbose: the run itself says them again.
        let reporter = if self.reporter.verbosity() >= crate::output::Verbosity::Verbose {
            self.reporter.for_cluster(&format!("{c} (pre-flight)"))
        } else {
            Reporter::silent()
        };
        match crate::commands::apply::run_hooked(args, self.settings, &reporter, hooks).await {
            Ok(o) if o.exit == Exit::Ok => Ok(Planned::of(&o.value)),
            Ok(o) => Err((o.exit, o.summary.unwrap_or_default())),
            Err(e) => Err((crate::output::errors::exit_of(&e), super::one_line(&e))),
        }
    }
}

/// A cluster's pre-flight: what its run would do, or its exit code and why it would not start.
type Preflight = Result<Planned, (Exit, String)>;

/// What a cluster's pre-flight found its run would do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Planned {
    /// Nodes it would patch, of its Linux nodes.
    patch: usize,
    of: usize,
    /// Of those, the nodes it will reboot (a reboot marker, a pending kernel), and those
    /// it reboots if their upgrade asks for it.
    reboot: usize,
    maybe: usize,
}

impl Planned {
    /// From `apply --dry-run -o json`'s value.
    fn of(value: &serde_json::Value) -> Planned {
        let plan = value["plan"].as_array().map(Vec::as_slice).unwrap_or_default();
        let patch: Vec<&serde_json::Value> = plan.iter().filter(|p| p["action"] == "patch").collect();
        Planned {
            patch: patch.len(),
            of: plan.len(),
            reboot: patch.iter().filter(|p| p["wouldReboot"] == "yes").count(),
            maybe: patch.iter().filter(|p| p["wouldReboot"] == "maybe").count(),
        }
    }

    fn text(self) -> String {
        if self.patch == 0 {
            return format!("nothing to patch ({} node(s))", self.of);
        }
        let mut text = format!("patch {} of {} node(s): {} to reboot", self.patch, self.of, self.reboot);
        if self.maybe > 0 {
            text.push_str(&format!(", {} if their upgrade asks", self.maybe));
        }
        text
    }
}

/// The pre-flight of every cluster the run has still to do, `max_clusters` at once, before
/// the first stage starts: whatever will certainly fail is found before the first change.
async fn preflight_all(
    rollout: &Rollout<'_>,
    record: &FleetRunRecord,
    reporter: &Reporter,
) -> Vec<(ClusterRef, Preflight)> {
    let todo: Vec<(ClusterRef, bool)> = record
        .clusters()
        .filter(|c| c.state != ClusterState::Succeeded)
        .map(|c| (c.cluster.clone(), c.state != ClusterState::Pending))
        .collect();
    reporter.info(&format!(
        "pre-flight of {} cluster(s), {} at once",
        todo.len(),
        record.max_clusters.max(1)
    ));
    futures::stream::iter(todo)
        .map(|(c, ran_before)| async move {
            let r = rollout.preflight(&c, ran_before).await;
            (c, r)
        })
        .buffered(record.max_clusters.max(1))
        .collect()
        .await
}

/// The clusters whose pre-flight failed, each said as an error; the exit code the fleet run
/// stops with (theirs when they agree).
fn preflight_failures(checked: &[(ClusterRef, Preflight)], reporter: &Reporter) -> Option<(usize, Exit)> {
    let mut exits: Vec<Exit> = vec![];
    for (c, r) in checked {
        if let Err((exit, why)) = r {
            reporter.error(&format!("{c}: pre-flight: {why}"));
            exits.push(*exit);
        }
    }
    (!exits.is_empty()).then(|| (exits.len(), agreed(&exits, Exit::Failure)))
}

/// The clusters' exit code when they all agree, else `otherwise`.
fn agreed(exits: &[Exit], otherwise: Exit) -> Exit {
    match exits.split_first() {
        Some((first, rest)) if rest.iter().all(|e| e == first) => *first,
        _ => otherwise,
    }
}

#[async_trait]
impl ClusterRollout for Rollout<'_> {
    async fn run(&self, c: &ClusterRef, start: ClusterStart, stop: CancellationToken) -> ClusterResult {
        let args = self.args_for(c, start.resume);
        let key = c.record_ref().key;
        let run_id = journal::new_run_id();
        let hooks = Hooks {
            run_id: Some(run_id.clone()),
            stop,
            preflight: false,
        };
        let reporter = self.reporter.for_cluster(&c.to_string());
        let (exit, message) = match crate::commands::apply::run_hooked(args, self.settings, &reporter, hooks).await {
            Ok(o) => {
                if let Some(s) = &o.summary {
                    reporter.info(s);
                }
                (o.exit, (o.exit != Exit::Ok).then(|| o.summary.unwrap_or_default()))
            }
            Err(e) => (crate::output::errors::exit_of(&e), Some(super::one_line(&e))),
        };
        // The run is named when it got as far as its record.
        let recorded = self
            .journal
            .latest(&key)
            .ok()
            .flatten()
            .is_some_and(|r| r.run_id == run_id || r.resumed_from.contains(&run_id));
        ClusterResult {
            outcome: match exit {
                Exit::Ok => ClusterOutcome::Succeeded,
                Exit::Interrupted => ClusterOutcome::Stopped,
                _ => ClusterOutcome::Failed,
            },
            run_id: recorded.then_some(run_id),
            exit_code: exit.code(),
            message,
        }
    }
}

/// The scheduler's progress in words (the reporter), and each stage's start and end sent to
/// `--notify-url` (each cluster's own `apply` sends its run's and nodes' events).
struct Told<'a> {
    reporter: &'a Reporter,
    notify: Option<crate::notify::NotifySender>,
    fleet_run_id: String,
    clusters: String,
}

impl Told<'_> {
    fn send(&self, kind: crate::notify::EventKind, reason: String) {
        if let Some(tx) = &self.notify {
            let mut ev = crate::notify::Event::new(kind, &self.clusters, &self.fleet_run_id);
            ev.reason = Some(reason);
            tx.send(ev);
        }
    }
}

impl FleetProgress for Told<'_> {
    fn stage_started(&self, index: usize, of: usize, name: &str, clusters: &[ClusterRef]) {
        self.reporter.stage_started(index, of, name, clusters);
        let names: Vec<String> = clusters.iter().map(ToString::to_string).collect();
        self.send(
            crate::notify::EventKind::StageStarted,
            format!("stage {index} of {of} ({name}) started: {}", names.join(", ")),
        );
    }
    fn cluster_started(&self, stage: &str, cluster: &ClusterRef, start: &ClusterStart) {
        self.reporter.cluster_started(stage, cluster, start);
    }
    fn cluster_finished(&self, stage: &str, cluster: &ClusterRef, result: &ClusterResult) {
        self.reporter.cluster_finished(stage, cluster, result);
    }
    fn stage_stopping(&self, stage: &str, failed: &ClusterRef) {
        self.reporter.stage_stopping(stage, failed);
    }
    fn stage_finished(&self, index: usize, of: usize, name: &str, state: StageState) {
        self.reporter.stage_finished(index, of, name, state);
        self.send(
            crate::notify::EventKind::StageFinished,
            format!("stage {index} of {of} ({name}) {}", journal::enum_text(&state)),
        );
    }
    fn soaking(&self, after: &str, wait: std::time::Duration) {
        self.reporter.soaking(after, wait);
    }
}

/// One row of the fleet apply table.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Row {
    stage: String,
    cluster: String,
    resource_group: String,
    subscription: String,
    state: String,
    run_id: Option<String>,
    exit_code: Option<i32>,
    error: Option<String>,
}

/// One row of `fleet apply --dry-run`: a cluster, its stage and what its pre-flight found.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PlanRow {
    stage: String,
    cluster: String,
    resource_group: String,
    subscription: String,
    plan: Option<String>,
    patch: Option<usize>,
    linux_nodes: Option<usize>,
    reboot: Option<usize>,
    exit_code: Option<i32>,
    error: Option<String>,
}

fn plan_rows(rec: &FleetRunRecord, checked: &[(ClusterRef, Preflight)]) -> Vec<PlanRow> {
    rec.stages
        .iter()
        .flat_map(|s| {
            s.clusters.iter().map(|c| {
                let found = checked.iter().find(|(k, _)| *k == c.cluster).map(|(_, r)| r);
                let (planned, failed) = match found {
                    Some(Ok(p)) => (Some(*p), None),
                    Some(Err((exit, why))) => (None, Some((exit.code(), why.clone()))),
                    None => (None, None),
                };
                PlanRow {
                    stage: s.name.clone(),
                    cluster: c.cluster.name.clone(),
                    resource_group: c.cluster.resource_group.clone(),
                    subscription: c.cluster.subscription.clone(),
                    plan: match (planned, &failed) {
                        (Some(p), _) => Some(p.text()),
                        (None, Some(_)) => Some("would not start".into()),
                        (None, None) => Some(journal::enum_text(&c.state)),
                    },
                    patch: planned.map(|p| p.patch),
                    linux_nodes: planned.map(|p| p.of),
                    reboot: planned.map(|p| p.reboot),
                    exit_code: failed.as_ref().map(|f| f.0),
                    error: failed.map(|f| f.1),
                }
            })
        })
        .collect()
}

fn rows(rec: &FleetRunRecord) -> Vec<Row> {
    rec.stages
        .iter()
        .flat_map(|s| {
            s.clusters.iter().map(|c| Row {
                stage: s.name.clone(),
                cluster: c.cluster.name.clone(),
                resource_group: c.cluster.resource_group.clone(),
                subscription: c.cluster.subscription.clone(),
                state: journal::enum_text(&c.state),
                run_id: c.run_ids.last().cloned(),
                exit_code: c.exit_code,
                error: c.error.clone(),
            })
        })
        .collect()
}

/// Where fleet run records are kept: beside the cluster runs.
fn fleet_runs(args: &ApplyArgs<FleetApplyTarget>, settings: &Settings) -> FleetRuns {
    FleetRuns::new(match &args.journal_dir {
        Some(d) => d.join("fleet"),
        None => settings.state_dir.join("fleet-runs"),
    })
}

async fn plan(
    args: &ApplyArgs<FleetApplyTarget>,
    settings: &Settings,
    reporter: &Reporter,
) -> anyhow::Result<StagePlan> {
    let t = &args.cluster;
    let arm = super::arm_client(&t.select, settings)?;
    let clusters = super::choose(&t.select, &arm, settings, reporter).await?;
    let plan = match (&t.update_strategy, &t.select.fleet) {
        (Some(name), Some((rg, fleet))) => {
            let sub = arm
                .resolve_subscription(t.select.subscriptions.first().map(String::as_str), settings)
                .await
                .map_err(crate::commands::context::azure_failure)?;
            let id = crate::azure::fleet::FleetId::new(sub, rg, fleet);
            let strategy = arm
                .get_update_strategy(&id, name)
                .await
                .map_err(crate::commands::context::azure_failure)?;
            stages::by_strategy(clusters, &strategy.properties.strategy.stages)
                .map_err(|e| Failure::new(Exit::Usage, format!("update strategy {name} of {id}: {e}")))?
        }
        _ if !t.stages.is_empty() => stages::by_tags(clusters, &t.stages),
        _ => stages::single(clusters),
    };
    if !plan.unstaged.is_empty() {
        reporter.warn(&format!(
            "{} chosen cluster(s) are in no stage and are left alone: {}",
            plan.unstaged.len(),
            plan.unstaged
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    if plan.stages.iter().all(|s| s.clusters.is_empty()) {
        return Err(Failure::new(Exit::Usage, "no chosen cluster is in any stage; nothing was done")
            .hint("each --stage KEY=VALUE takes the clusters whose tags match; `aks-patch fleet scan -o json` shows the chosen clusters")
            .into());
    }
    Ok(plan)
}

pub async fn run(
    args: ApplyArgs<FleetApplyTarget>,
    settings: &Settings,
    reporter: &Reporter,
) -> anyhow::Result<Outcome> {
    if args.resume_or_start {
        return Err(Failure::new(
            Exit::Usage,
            "--resume-or-start is for `apply` on one cluster; nothing was changed",
        )
        .hint("`aks-patch fleet apply --resume` continues the newest unfinished fleet run, each cluster's run with it")
        .into());
    }
    let runs = fleet_runs(&args, settings);
    let record = if args.resume {
        match runs.latest().map_err(|e| Failure::new(Exit::Usage, e.to_string()))? {
            Some(r) if r.unfinished() => {
                reporter.info(&format!("resuming fleet run {}", r.fleet_run_id));
                r
            }
            Some(r) => {
                return Ok(Outcome {
                    value: serde_json::to_value(&r)?,
                    table: None,
                    summary: Some(format!(
                        "fleet run {} already succeeded: there is nothing to resume; nothing was changed",
                        r.fleet_run_id
                    )),
                    exit: Exit::Ok,
                })
            }
            None => {
                return Err(Failure::new(Exit::Usage, "there is no fleet run to resume")
                    .hint(format!(
                        "the fleet run records are in {}; start a new run without --resume",
                        runs.dir().display()
                    ))
                    .into())
            }
        }
    } else {
        let plan = plan(&args, settings, reporter).await?;
        let t = &args.cluster;
        FleetRunRecord::new(&plan, t.max_clusters as usize, t.continue_stage, t.stage_wait)
    };
    let rollout = Rollout {
        journal: Journal::new(
            args.journal_dir
                .clone()
                .unwrap_or_else(|| settings.state_dir.join("runs")),
        ),
        template: args.clone(),
        settings,
        reporter,
    };
    if args.dry_run {
        let checked = preflight_all(&rollout, &record, reporter).await;
        let failed = preflight_failures(&checked, reporter);
        let patch: usize = checked
            .iter()
            .filter_map(|(_, r)| r.as_ref().ok())
            .map(|p| p.patch)
            .sum();
        return Ok(Outcome {
            value: serde_json::to_value(plan_rows(&record, &checked))?,
            table: Some(crate::output::fleet::apply_plan_table()),
            summary: Some(format!(
                "dry run: {} stage(s), {} cluster(s), {patch} node(s) to patch{}; nothing was changed (`aks-patch apply --dry-run -g RG -n NAME` shows a cluster's plan)",
                record.stages.len(),
                record.clusters().count(),
                match failed {
                    Some((n, _)) => format!("; the pre-flight failed on {n} cluster(s): the run would not start"),
                    None => String::new(),
                }
            )),
            exit: failed.map_or(Exit::Ok, |(_, e)| e),
        });
    }
    let notify_cfg = crate::commands::apply::notify::config(
        &args.notify.notify_url,
        args.notify.notify_template.as_deref(),
        settings,
    )?;
    if let Some(url) = &args.metrics.pushgateway_url {
        crate::metrics::check_url(url).map_err(|e| {
            Failure::new(Exit::Usage, e.to_string()).hint("e.g. --pushgateway-url http://pushgateway:9091")
        })?;
    }
    if !args.yes {
        return Err(Failure::new(
            Exit::Usage,
            "refusing to patch a fleet without --yes: its clusters run unattended; nothing was changed",
        )
        .hint("review the stages with --dry-run, then run again with --yes")
        .into());
    }
    // The pre-flight of every cluster still to do, before the first change anywhere.
    let checked = preflight_all(&rollout, &record, reporter).await;
    if let Some((n, exit)) = preflight_failures(&checked, reporter) {
        return Err(Failure::new(
            exit,
            format!(
                "the pre-flight failed on {n} of {} cluster(s) (see above): no stage started; nothing was changed",
                checked.len()
            ),
        )
        .hint("fix what is said above, or leave those clusters out (--tag, --where, --resource-group, --stage), then run again; `aks-patch apply --dry-run -g RG -n NAME` shows one cluster's pre-flight")
        .into());
    }
    runs.save(&record).map_err(|e| {
        Failure::new(Exit::Failure, e.to_string()).hint("nothing was changed; check the state directory")
    })?;
    reporter.info(&format!(
        "fleet run {}: {} stage(s), {} cluster(s), {} at once",
        record.fleet_run_id,
        record.stages.len(),
        record.clusters().count(),
        record.max_clusters
    ));
    let notifier = notify_cfg.map(|cfg| crate::commands::apply::notify::start(cfg, reporter));
    let told = Told {
        reporter,
        notify: notifier.as_ref().and_then(|n| n.sender()),
        fleet_run_id: record.fleet_run_id.clone(),
        clusters: format!("{} cluster(s)", record.clusters().count()),
    };
    let interrupt = CancellationToken::new();
    let signals = tokio::spawn(watch(interrupt.clone()));
    let table = crate::commands::shows_table(&args.global);
    let pushgateway = args.metrics.pushgateway_url.clone();
    let ports = FleetPorts {
        rollout: &rollout,
        journal: &runs,
        progress: &told,
    };
    let ended = schedule::run(record, &ports, interrupt).await;
    signals.abort();
    drop(told);
    if let Some(n) = notifier {
        n.finish(std::time::Duration::from_secs(10)).await;
    }
    let (record, write_error) = match ended {
        Ok(r) => (r, None),
        Err((r, e)) => (r, Some(e)),
    };
    if let Some(e) = write_error {
        reporter.error(&format!(
            "{e}: the fleet stopped before its next cluster (every cluster's own run record is intact)"
        ));
    }
    if let Some(url) = &pushgateway {
        push_metrics(url, &record, settings, reporter).await;
    }
    let summary = summary(&record);
    let exit = exit(&record);
    Ok(Outcome {
        value: if table {
            serde_json::to_value(rows(&record))?
        } else {
            serde_json::to_value(&record)?
        },
        table: Some(crate::output::fleet::apply_table()),
        summary: Some(summary),
        exit,
    })
}

/// The fleet run's gauges, per stage, to the Pushgateway (job `aks-patch-fleet`); each
/// cluster's `apply` has pushed its own run's already.
async fn push_metrics(url: &str, rec: &FleetRunRecord, settings: &Settings, reporter: &Reporter) {
    let stages: Vec<crate::metrics::StageMetrics> = rec
        .stages
        .iter()
        .map(|s| crate::metrics::StageMetrics {
            stage: s.name.clone(),
            state: journal::enum_text(&s.state),
            clusters: s.clusters.iter().map(|c| journal::enum_text(&c.state)).collect(),
        })
        .collect();
    let result = rec.result.map(|r| journal::enum_text(&r)).unwrap_or_default();
    let families = crate::metrics::fleet_families(
        &stages,
        &result,
        rec.started_at,
        rec.finished_at.unwrap_or_else(journal::now),
    );
    let pushed = crate::metrics::push(
        url,
        "aks-patch-fleet",
        "fleet",
        &families,
        settings.ca_bundle.as_ref(),
        std::time::Duration::from_secs(10),
    );
    match pushed.await {
        Ok(()) => reporter.verbose("pushed the fleet run's metrics"),
        Err(e) => reporter.warn(&format!("{e}; the fleet run's result is not affected")),
    }
}

/// Ctrl-C or SIGTERM: no new cluster starts (each running `apply` hears the signal itself
/// and stops at its safe point).
async fn watch(interrupt: CancellationToken) {
    let Ok(mut term) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) else {
        return;
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    interrupt.cancel();
}

fn count(rec: &FleetRunRecord, state: ClusterState) -> usize {
    rec.clusters().filter(|c| c.state == state).count()
}

fn summary(rec: &FleetRunRecord) -> String {
    let total = rec.clusters().count();
    let done = count(rec, ClusterState::Succeeded);
    let head = format!("fleet run {}: {done} of {total} cluster(s) patched", rec.fleet_run_id);
    match rec.result {
        Some(FleetResult::Succeeded) => format!("{head}, every stage succeeded"),
        Some(FleetResult::Failed) => {
            let failed: Vec<String> = rec
                .clusters()
                .filter(|c| c.state == ClusterState::Failed)
                .map(|c| c.cluster.to_string())
                .collect();
            let stage = rec
                .stages
                .iter()
                .find(|s| s.state == crate::fleet::record::StageState::Failed)
                .map(|s| s.name.clone())
                .unwrap_or_default();
            format!(
                "{head}; stage {stage} failed ({}): the later stages did not start; fix it, then `aks-patch fleet apply --resume --yes` continues",
                failed.join(", ")
            )
        }
        Some(FleetResult::Interrupted) => format!(
            "{head}; interrupted: every cluster stopped at its safe point; `aks-patch fleet apply --resume --yes` continues"
        ),
        Some(FleetResult::RecordFailed) | None => {
            format!("{head}; stopped: the fleet run record could not be written")
        }
    }
}

fn exit(rec: &FleetRunRecord) -> Exit {
    match rec.result {
        Some(FleetResult::Succeeded) => Exit::Ok,
        Some(FleetResult::Interrupted) => Exit::Interrupted,
        Some(FleetResult::Failed) => {
            // The failed clusters' own exit code when they agree, else "a rollout halted".
            let exits: Vec<Exit> = rec
                .clusters()
                .filter(|c| c.state == ClusterState::Failed)
                .filter_map(|c| c.exit_code)
                .map(exit_of_code)
                .collect();
            agreed(&exits, Exit::NodesFailed)
        }
        Some(FleetResult::RecordFailed) | None => Exit::Failure,
    }
}

fn exit_of_code(code: i32) -> Exit {
    [
        Exit::Failure,
        Exit::Usage,
        Exit::NotFound,
        Exit::Auth,
        Exit::NodesFailed,
        Exit::FailOn,
        Exit::LockHeld,
        Exit::Interrupted,
        Exit::OutsideWindow,
        Exit::Blocked,
    ]
    .into_iter()
    .find(|e| e.code() == code)
    .unwrap_or(Exit::NodesFailed)
}
