//! `aks-patch apply --one-at-a-time`: a safe rolling patch and reboot.
//!
//! Each node moves through `pending → upgraded → (done) | cordoned → drained → rebooting →
//! back → done`, or into `failed`. Every transition is written to the run record before
//! the next side effect. Never two nodes out at once; the first failure stops the run with
//! the cluster left safe and the lock released.

use super::context::{self, ClusterContext};
use super::scan::{candidate, scan_nodes, ScanRow};
use super::{scans, Outcome};
use crate::cli::{ApplyArgs, OutputFormat, RebootPolicy};
use crate::kube::{self as k, CancellationToken, DrainOptions, HolderInfo, LockGuard, NodeRow};
use crate::output::{self, Column, Exit, Failure, Reporter, TableSpec};
use crate::rollout::journal::{self, Journal, NodeRecord, NodeState, RunRecord, RunStatus, Step, UpgradedPackage};
use crate::rollout::plan::{self, Filters, PlanEntry};
use crate::settings::Settings;
use crate::ssh::{self, SshError, SshFlags, SshOptions};
use anyhow::Context as _;
use serde_json::json;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// How long the Lease lock lives without renewal.
const LOCK_DURATION: Duration = Duration::from_secs(60);
/// How long apt may wait for the dpkg lock (unattended-upgrades) on a node.
const DPKG_LOCK_TIMEOUT_SECS: u64 = 600;
/// How long one upgrade may run in all.
const UPGRADE_TIMEOUT: Duration = Duration::from_secs(3600);

pub async fn run(args: ApplyArgs, settings: &Settings, reporter: &Reporter) -> anyhow::Result<Outcome> {
    // Check the SSH flags (jump host, key and config files) before talking to any server.
    SshOptions::from_flags(&SshFlags::from(&args.ssh), "azureuser", settings)
        .map_err(|e| anyhow::Error::new(crate::output::WithExit::wrap(e, Exit::Usage)))?;
    let ctx = context::resolve(&args.cluster, settings, reporter, false).await?;
    if let Some(w) = ctx.channel_warning() {
        reporter.warn(&w);
    }
    let ssh_opts = SshOptions::from_flags(&SshFlags::from(&args.ssh), &ctx.admin_user, settings)
        .map_err(|e| anyhow::Error::new(output::WithExit::wrap(e, Exit::Usage)))?;
    let journal = Journal::new(
        args.journal_dir
            .clone()
            .unwrap_or_else(|| settings.state_dir.join("runs")),
    );

    // What to patch, in which order.
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
    let rows =
        match k::list_node_rows(&ctx.client, args.selector.as_deref()).await {
            Ok(rows) => rows,
            // The API server judges the selector, as it does for kubectl -l.
            Err(e) if e.status_code() == Some(400) && args.selector.is_some() => return Err(Failure::new(
                Exit::Usage,
                format!("invalid --selector `{}`", args.selector.as_deref().unwrap_or_default()),
            )
            .caused_by(e)
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
    if entries.iter().all(|e| !e.patch()) {
        reporter.info("nothing to patch: no Linux node of the selection can be patched in place");
    }

    // Before-table: probe the nodes to patch (read-only).
    let planned_rows: Vec<NodeRow> = rows
        .iter()
        .filter(|r| entries.iter().any(|e| e.name == r.name))
        .cloned()
        .collect();
    let before = scan_nodes(&ctx, &planned_rows, &ssh_opts, 16, false, reporter).await;
    let before_by_name: BTreeMap<String, ScanRow> = before.iter().map(|r| (r.name.clone(), r.clone())).collect();
    let plan_value = plan_value(&entries, &before_by_name);
    reporter.info(&format!(
        "Plan for {} ({}): one node at a time, pool by pool, nodes by name; upgrade mode {:?}, reboot {:?}",
        ctx.cluster.name, ctx.cluster.key, args.upgrade_mode, args.reboot
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
                .any(|n| n.name == name && matches!(n.state, NodeState::Rebooting | NodeState::Back))
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

    let drain_opts = DrainOptions::from_apply_args(&args);
    if args.dry_run {
        return dry_run(&ctx, &entries, &before_by_name, &drain_opts, plan_value, reporter).await;
    }
    if !entries.iter().any(PlanEntry::patch) {
        return Ok(Outcome {
            value: plan_value,
            table: Some(plan_table()),
            summary: Some("nothing to do".into()),
            exit: Exit::Ok,
        });
    }
    confirm(&args, &ctx, entries.iter().filter(|e| e.patch()).count())?;

    // Ctrl-C / SIGTERM from here on stop at a safe point instead of killing the process.
    let cancel = CancellationToken::new();
    let signals = tokio::spawn(watch_signals(cancel.clone(), reporter.clone()));

    // The cluster-wide lock, held (and renewed) for the whole run.
    let run_id = journal::new_run_id();
    let holder = HolderInfo::current(settings, &run_id);
    let guard = match k::Lock::acquire(&ctx.client, holder.clone(), LOCK_DURATION, args.force_unlock).await {
        Ok(g) => g,
        Err(e @ k::LockError::Held { .. }) => {
            return Err(anyhow::Error::new(output::WithExit::wrap(e, Exit::LockHeld)))
        }
        Err(e) => return Err(anyhow::Error::new(e).context("cannot take the aks-patch lock")),
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
        options: json!({
            "upgradeMode": format!("{:?}", args.upgrade_mode).to_lowercase(),
            "reboot": format!("{:?}", args.reboot).to_lowercase(),
            "deleteEmptydirData": args.delete_emptydir_data,
            "force": args.force,
            "gracePeriod": args.grace_period,
            "drainTimeout": args.drain_timeout,
            "rebootTimeout": args.reboot_timeout,
            "soak": args.soak,
        }),
        nodes: entries
            .iter()
            .map(|e| {
                let mut n = NodeRecord::new(&e.name, &e.pool);
                if let Some(prev) = resumed.as_ref().and_then(|p| p.nodes.iter().find(|n| n.name == e.name)) {
                    n = prev.clone();
                }
                if !e.patch() && n.state == NodeState::Pending {
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
        resumed_from: resumed
            .as_ref()
            .map(|p| {
                let mut v = p.resumed_from.clone();
                v.push(p.run_id.clone());
                v
            })
            .unwrap_or_default(),
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
        args: &args,
        drain: drain_opts,
        journal: &journal,
        reporter,
        cancel: cancel.clone(),
        guard: &guard,
    };
    let result = engine.run_all(&mut record).await;
    signals.abort();

    // Whatever happened: release the lock, and say so.
    let release = guard.release().await;
    match &release {
        Ok(()) => reporter.info("lock released"),
        Err(e) => reporter.error(&format!(
            "could not release the aks-patch lock: {e}; it expires by itself after {}s, or remove it with `kubectl -n kube-system delete lease aks-patch`",
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
        Err(RunStop::Failed(msg)) => (RunStatus::Failed, Exit::NodesFailed, Some(msg.clone())),
    };
    record.status = status;
    record.error = err.clone();
    journal.save(&record)?;
    remember_scans(settings, &record);

    let after = after_rows(&ctx, &record).await;
    // Nodes this run cordoned and did not put back in service (a node that never came back).
    let out_of_service: Vec<String> = record
        .nodes
        .iter()
        .filter(|n| !n.was_cordoned && n.state != NodeState::Done && n.steps.iter().any(|s| s.name == "cordon"))
        .filter(|n| {
            after
                .iter()
                .any(|r| r["name"].as_str() == Some(n.name.as_str()) && r["unschedulable"].as_bool() == Some(true))
        })
        .map(|n| n.name.clone())
        .collect();
    let done = record.nodes.iter().filter(|n| n.state == NodeState::Done).count();
    let rebooted = record.nodes.iter().filter(|n| n.rebooted).count();
    let mut summary = format!(
        "{done} of {} node(s) patched, {rebooted} rebooted; run {} {}",
        record.nodes.iter().filter(|n| n.state != NodeState::Skipped).count(),
        record.run_id,
        match record.status {
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "halted",
            RunStatus::Interrupted => "interrupted",
            RunStatus::Running => "running",
        }
    );
    if !out_of_service.is_empty() {
        summary.push_str(&format!(
            "; left cordoned by this run: {} (uncordon with `kubectl uncordon {}` once healthy)",
            out_of_service.join(", "),
            out_of_service.join(" ")
        ));
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
    Failed(String),
}

struct Engine<'a> {
    ctx: &'a ClusterContext,
    ssh: &'a SshOptions,
    args: &'a ApplyArgs,
    drain: DrainOptions,
    journal: &'a Journal,
    reporter: &'a Reporter,
    cancel: CancellationToken,
    guard: &'a LockGuard,
}

impl Engine<'_> {
    async fn run_all(&mut self, rec: &mut RunRecord) -> Result<(), RunStop> {
        for i in 0..rec.nodes.len() {
            if matches!(rec.nodes[i].state, NodeState::Done | NodeState::Skipped) {
                continue;
            }
            self.checkpoint(rec)?;
            let result = self.patch_node(rec, i).await;
            let node = rec.nodes[i].name.clone();
            match result {
                Ok(()) => {
                    rec.nodes[i].state = NodeState::Done;
                    rec.nodes[i].finished_at = Some(journal::now());
                    self.save(rec);
                    self.reporter.step(&node, "done");
                    // Between nodes: soak, then the evicted workloads' budgets must allow disruptions again.
                    self.between_nodes(rec, i).await?;
                }
                Err(stop) => {
                    if let RunStop::Failed(msg) = &stop {
                        rec.nodes[i].state = NodeState::Failed;
                        rec.nodes[i].error = Some(msg.clone());
                        rec.nodes[i].finished_at = Some(journal::now());
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

    /// A safe point: stop here if asked to, or if the lock is gone.
    fn checkpoint(&self, _rec: &RunRecord) -> Result<(), RunStop> {
        if self.cancel.is_cancelled() {
            return Err(RunStop::Interrupted);
        }
        if let Some(reason) = self.guard.lost_reason() {
            return Err(RunStop::Failed(format!(
                "the aks-patch lock was lost ({reason}); stopping: another run may be changing the cluster"
            )));
        }
        Ok(())
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

    async fn patch_node(&mut self, rec: &mut RunRecord, i: usize) -> Result<(), RunStop> {
        let name = rec.nodes[i].name.clone();
        let client = self.ctx.client.clone();
        let t0 = Instant::now();
        let row = k::get_node_row(&client, &name)
            .await
            .map_err(|e| RunStop::Failed(format!("cannot read node {name}: {e}")))?
            .ok_or_else(|| RunStop::Failed(format!("node {name} no longer exists")))?;
        let address = row.internal_ip.clone();

        // Resuming a node that was mid-way: pick up where it was.
        let resume_state = rec.nodes[i].state;
        if matches!(resume_state, NodeState::Rebooting | NodeState::Back) {
            self.reporter
                .step(&name, "resuming: the node was rebooting when the last run stopped");
            return self.finish_reboot(rec, i, &row).await;
        }
        if matches!(resume_state, NodeState::Cordoned | NodeState::Drained) {
            self.reporter
                .step(&name, "resuming: the node was being drained when the last run stopped");
        }

        // 1. Upgrade.
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
                return Err(RunStop::Failed(format!(
                    "cannot reach node {name} over SSH: {e}; the node was not touched"
                )));
            }
        };
        self.end(rec, i, "ok", "");
        let probe = session
            .run(&ssh::probe::probe_script(false, 0), Duration::from_secs(120))
            .await
            .map_err(|e| RunStop::Failed(format!("probing node {name} failed: {e}; the node was not touched")))
            .and_then(|o| ssh::Probe::parse(&o.stdout).map_err(|e| RunStop::Failed(format!("node {name}: {e}"))))?;
        if let Some(why) = &probe.unsupported {
            return Err(RunStop::Failed(format!("node {name}: {why}")));
        }
        rec.nodes[i].kernel_before.get_or_insert(probe.running_kernel.clone());
        if rec.nodes[i].state == NodeState::Pending {
            let security = probe.security_packages();
            match ssh::upgrade_command(self.args.upgrade_mode.into(), DPKG_LOCK_TIMEOUT_SECS, &security) {
                None => self.reporter.step(&name, "no security updates pending"),
                Some(_) if probe.pending.is_empty() => self.reporter.step(&name, "no updates pending"),
                Some(cmd) => {
                    self.reporter.step(
                        &name,
                        &format!(
                            "upgrading {} package(s) ({:?} mode; waiting for the dpkg lock if held)",
                            probe.pending_count(),
                            self.args.upgrade_mode
                        ),
                    );
                    self.begin(rec, i, "upgrade");
                    let out = session.run(&cmd, UPGRADE_TIMEOUT).await;
                    match out {
                        Ok(o) if o.success() => {
                            let pkgs = ssh::parse_upgrade_output(&o.stdout);
                            rec.nodes[i].packages_upgraded = pkgs
                                .iter()
                                .map(|p| UpgradedPackage {
                                    name: p.name.clone(),
                                    version: p.version.clone(),
                                })
                                .collect();
                            rec.nodes[i].upgrade_output = o.tail(40);
                            self.end(rec, i, "ok", format!("{} package(s) upgraded", pkgs.len()));
                            self.reporter
                                .step(&name, &format!("{} package(s) upgraded", pkgs.len()));
                        }
                        Ok(o) => {
                            rec.nodes[i].upgrade_output = format!(
                                "{}\n{}",
                                o.tail(20),
                                o.stderr
                                    .lines()
                                    .rev()
                                    .take(20)
                                    .collect::<Vec<_>>()
                                    .into_iter()
                                    .rev()
                                    .collect::<Vec<_>>()
                                    .join("\n")
                            );
                            let last = o
                                .stderr
                                .lines()
                                .rfind(|l| l.starts_with("E:"))
                                .unwrap_or("")
                                .to_string();
                            self.end(rec, i, "failed", format!("apt-get exited with {}", o.exit_code));
                            return Err(RunStop::Failed(format!(
                                "upgrading node {name} failed (apt-get exit {}{}); the node was not cordoned; see the run record for apt's output",
                                o.exit_code,
                                if last.is_empty() { String::new() } else { format!(": {last}") }
                            )));
                        }
                        Err(e) => {
                            self.end(rec, i, "failed", e.to_string());
                            return Err(RunStop::Failed(format!(
                                "upgrading node {name} failed: {e}; the node was not cordoned"
                            )));
                        }
                    }
                }
            }
            rec.nodes[i].state = NodeState::Upgraded;
            self.save(rec);
        }

        // 2. Reboot needed?
        let marker = session
            .run(&ssh::probe::probe_script(false, 0), Duration::from_secs(120))
            .await
            .ok()
            .and_then(|o| ssh::Probe::parse(&o.stdout).ok());
        let _ = session.close().await;
        let needs = marker
            .as_ref()
            .map(|p| p.reboot_required)
            .unwrap_or(probe.reboot_required);
        let reboot = match self.args.reboot {
            RebootPolicy::Always => true,
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
            if matches!(rec.nodes[i].state, NodeState::Cordoned | NodeState::Drained) {
                // A resumed node that an earlier run had cordoned: put it back.
                let undo = self.uncordon_if_ours(rec, i).await;
                self.reporter.step(&name, &undo);
            }
            rec.nodes[i].kernel_after = marker.map(|p| p.running_kernel);
            return Ok(());
        }
        if let Some(p) = &marker {
            if !p.reboot_packages.is_empty() {
                self.reporter
                    .step(&name, &format!("reboot required by {}", p.reboot_packages.join(", ")));
            }
        }
        if self.cancel.is_cancelled() {
            return Err(RunStop::Interrupted);
        }

        // kured must not reboot another node beside ours.
        match k::take_kured_lock(
            &client,
            &name,
            Duration::from_secs(self.args.drain_timeout + self.args.reboot_timeout),
        )
        .await
        {
            Ok(k::KuredLock::NotInstalled) => {}
            Ok(k::KuredLock::Taken { .. }) => self
                .reporter
                .step(&name, "took kured's reboot lock so that kured waits"),
            Err(e) => {
                return Err(RunStop::Failed(format!(
                    "not rebooting node {name}: {e}; its packages are upgraded, it was not cordoned"
                )))
            }
        }
        let result = self.cordon_drain_reboot(rec, i, &row, &address).await;
        if let Err(e) = k::release_kured_lock(&client, &name).await {
            self.reporter.warn(&format!("could not release kured's lock: {e}; clear the annotation weave.works/kured-node-lock on kube-system/kured"));
        }
        result?;
        self.reporter
            .step(&name, &format!("patched in {}s", t0.elapsed().as_secs()));
        Ok(())
    }

    async fn cordon_drain_reboot(
        &mut self,
        rec: &mut RunRecord,
        i: usize,
        row: &NodeRow,
        address: &str,
    ) -> Result<(), RunStop> {
        let name = rec.nodes[i].name.clone();
        let client = self.ctx.client.clone();
        // 3. Cordon (remembering whether somebody else had), drain.
        if rec.nodes[i].state == NodeState::Upgraded {
            rec.nodes[i].boot_id_before = row.boot_id.clone();
            rec.nodes[i].was_cordoned = row.unschedulable;
            self.save(rec);
        }
        self.begin(rec, i, "cordon");
        match k::cordon(&client, &name).await {
            Ok(_) => {}
            Err(e) => {
                self.end(rec, i, "failed", e.to_string());
                return Err(RunStop::Failed(format!("cannot cordon node {name}: {e}")));
            }
        }
        rec.nodes[i].state = NodeState::Cordoned;
        self.end(
            rec,
            i,
            "ok",
            if rec.nodes[i].was_cordoned {
                "already cordoned before aks-patch; it stays cordoned"
            } else {
                ""
            },
        );
        self.reporter.step(
            &name,
            if rec.nodes[i].was_cordoned {
                "already cordoned (by someone else): it will stay cordoned"
            } else {
                "cordoned"
            },
        );

        self.begin(rec, i, "drain");
        let reporter = self.reporter.clone();
        let node_for_progress = name.clone();
        let drained = k::drain(
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
        )
        .await;
        match drained {
            Ok(report) => {
                rec.nodes[i].evicted = report
                    .evicted
                    .iter()
                    .map(|p| format!("{}/{}", p.namespace, p.name))
                    .collect();
                rec.nodes[i].pdbs = report.pdbs.iter().map(|(ns, n)| format!("{ns}/{n}")).collect();
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
                let interrupted = matches!(e, k::DrainError::Cancelled { .. });
                self.end(rec, i, "failed", e.to_string());
                // A drain that did not finish: put the node back in service (unless it was cordoned before us).
                let undo = self.uncordon_if_ours(rec, i).await;
                return Err(if interrupted {
                    self.reporter.step(&name, &format!("drain interrupted; {undo}"));
                    RunStop::Interrupted
                } else {
                    RunStop::Failed(format!("draining node {name} failed: {e}; {undo}"))
                });
            }
        }
        if self.cancel.is_cancelled() {
            let undo = self.uncordon_if_ours(rec, i).await;
            self.reporter
                .step(&name, &format!("stopping before the reboot; {undo}"));
            return Err(RunStop::Interrupted);
        }

        // 4. Reboot, so that the session dropping is expected.
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
            let undo = self.uncordon_if_ours(rec, i).await;
            return Err(RunStop::Failed(format!("cannot reboot node {name}: {e}; {undo}")));
        }
        rec.nodes[i].state = NodeState::Rebooting;
        self.end(rec, i, "ok", "reboot command sent");
        self.reporter.step(&name, "rebooting");
        let row = k::get_node_row(&client, &name)
            .await
            .ok()
            .flatten()
            .unwrap_or_else(|| row.clone());
        self.finish_reboot(rec, i, &row).await
    }

    /// Wait for the reboot to be proven (new bootID, Ready, taints gone), check the
    /// marker and kernel, uncordon.
    async fn finish_reboot(&mut self, rec: &mut RunRecord, i: usize, row: &NodeRow) -> Result<(), RunStop> {
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
            Duration::from_secs(self.args.reboot_timeout),
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
                return Err(RunStop::Failed(format!("{e}")));
            }
        };
        rec.nodes[i].rebooted = true;
        rec.nodes[i].boot_id_after = back.boot_id.clone();
        rec.nodes[i].kernel_after = Some(back.kernel_version.clone());
        rec.nodes[i].state = NodeState::Back;
        self.end(rec, i, "ok", format!("new bootID, kernel {}", back.kernel_version));

        // The marker must be gone; the kernel is what the node now runs.
        self.begin(rec, i, "verify");
        match ssh::probe_node(self.ssh, &name, &back.internal_ip, false, Duration::from_secs(120)).await {
            Ok(p) => {
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
        let undo = self.uncordon_if_ours(rec, i).await;
        self.reporter.step(&name, &undo);
        Ok(())
    }

    /// Uncordon the node unless it was cordoned before aks-patch came. Returns what was done, for messages.
    async fn uncordon_if_ours(&self, rec: &mut RunRecord, i: usize) -> String {
        let name = rec.nodes[i].name.clone();
        if rec.nodes[i].was_cordoned {
            return format!("node {name} stays cordoned, as it was before aks-patch");
        }
        match k::uncordon(&self.ctx.client, &name).await {
            Ok(_) => {
                rec.nodes[i].steps.push(Step {
                    name: "uncordon".into(),
                    started_at: journal::now(),
                    finished_at: Some(journal::now()),
                    outcome: "ok".into(),
                    detail: String::new(),
                });
                self.save(rec);
                format!("node {name} uncordoned")
            }
            Err(e) => format!("COULD NOT UNCORDON node {name} ({e}): run `kubectl uncordon {name}`"),
        }
    }

    async fn between_nodes(&mut self, rec: &RunRecord, i: usize) -> Result<(), RunStop> {
        let more = rec.nodes[i + 1..]
            .iter()
            .any(|n| !matches!(n.state, NodeState::Done | NodeState::Skipped));
        if !more {
            return Ok(());
        }
        if self.args.soak > 0 {
            self.reporter.step(
                &rec.nodes[i].name,
                &format!("soaking {}s before the next node", self.args.soak),
            );
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(self.args.soak)) => {}
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
                r = k::wait_pdbs_healthy(&self.ctx.client, &pdbs, Duration::from_secs(self.args.drain_timeout)) => {
                    if let Err(e) = r { return Err(RunStop::Failed(e.to_string())); }
                }
                _ = self.cancel.cancelled() => return Err(RunStop::Interrupted),
            }
        }
        Ok(())
    }
}

/// Ctrl-C / SIGTERM: stop at the next safe point.
async fn watch_signals(cancel: CancellationToken, reporter: Reporter) {
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
            reporter.warn("interrupted: stopping at the next safe point (a draining node is uncordoned, a rebooting node is waited for); the lock will be released");
        } else {
            reporter.warn("still stopping safely; the cluster is being left in a known state");
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

/// The plan of a resumed run: its nodes in its order, from the state they reached.
fn resume_plan(prev: &RunRecord, rows: &[NodeRow]) -> Vec<PlanEntry> {
    prev.nodes
        .iter()
        .map(|n| {
            let gone = !rows.iter().any(|r| r.name == n.name);
            let skip = match n.state {
                NodeState::Skipped => n.skip_reason.clone().or_else(|| Some("skipped".into())),
                NodeState::Done => Some("done in an earlier run".into()),
                _ if gone => Some("the node no longer exists".into()),
                _ => None,
            };
            PlanEntry {
                name: n.name.clone(),
                pool: n.pool.clone(),
                action: if skip.is_some() { "skip".into() } else { "patch".into() },
                reason: skip,
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

fn plan_value(entries: &[PlanEntry], before: &BTreeMap<String, ScanRow>) -> serde_json::Value {
    serde_json::Value::Array(
        entries
            .iter()
            .map(|e| {
                let b = before.get(&e.name);
                json!({
                    "name": e.name,
                    "pool": e.pool,
                    "status": b.map(|b| b.status.clone()),
                    "kernel": b.and_then(|b| b.running_kernel.clone().or_else(|| Some(b.kernel_version.clone()))),
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

async fn dry_run(
    ctx: &ClusterContext,
    entries: &[PlanEntry],
    before: &BTreeMap<String, ScanRow>,
    opts: &DrainOptions,
    plan_value: serde_json::Value,
    reporter: &Reporter,
) -> anyhow::Result<Outcome> {
    let mut drains = vec![];
    for e in entries.iter().filter(|e| e.patch()) {
        let b = before.get(&e.name);
        let would_reboot =
            b.and_then(|b| b.reboot_required).unwrap_or(false) || b.and_then(|b| b.pending_kernel.clone()).is_some();
        let plan = k::plan_drain(&ctx.client, &e.name, opts)
            .await
            .with_context(|| format!("cannot plan the drain of {}", e.name))?;
        let blocking: Vec<String> = plan.blocking_pdbs().iter().map(|p| p.to_string()).collect();
        reporter.info(&format!(
            "{}: {}; drain would evict {} pod(s){}{}",
            e.name,
            if would_reboot {
                "upgrade, then reboot"
            } else {
                "upgrade; reboot only if a package asks for it"
            },
            plan.evict.len(),
            if plan.refused.is_empty() {
                String::new()
            } else {
                format!(", refuses {} (need --delete-emptydir-data/--force)", plan.refused.len())
            },
            if blocking.is_empty() {
                String::new()
            } else {
                format!("; blocked now by {}", blocking.join(", "))
            }
        ));
        drains.push(json!({
            "node": e.name,
            "wouldReboot": would_reboot,
            "evict": plan.evict.iter().map(|p| format!("{}/{}", p.namespace, p.name)).collect::<Vec<_>>(),
            "refused": plan.refused.iter().map(|(p, r)| json!({"pod": format!("{}/{}", p.namespace, p.name), "reason": r.to_string(), "flag": r.flag()})).collect::<Vec<_>>(),
            "skipped": plan.skipped.iter().map(|(p, r)| json!({"pod": format!("{}/{}", p.namespace, p.name), "reason": r.to_string()})).collect::<Vec<_>>(),
            "blockingPdbs": blocking,
        }));
    }
    let value = json!({"dryRun": true, "cluster": ctx.cluster, "plan": plan_value, "drains": drains});
    Ok(Outcome {
        value,
        table: None,
        summary: Some("dry run: nothing was changed".into()),
        exit: Exit::Ok,
    })
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

async fn after_rows(ctx: &ClusterContext, rec: &RunRecord) -> Vec<serde_json::Value> {
    let now_rows = k::list_node_rows(&ctx.client, None).await.unwrap_or_default();
    rec.nodes
        .iter()
        .map(|n| {
            let r = now_rows.iter().find(|r| r.name == n.name);
            let kernel_after = n.kernel_after.clone().or_else(|| r.map(|r| r.kernel_version.clone()));
            json!({
                "name": n.name,
                "status": r.map(|r| r.status.clone()).unwrap_or_else(|| "<gone>".into()),
                "unschedulable": r.map(|r| r.unschedulable),
                "kernelBefore": n.kernel_before,
                "kernelAfter": if n.state == NodeState::Skipped { None } else { kernel_after },
                "packagesUpgraded": n.packages_upgraded.len(),
                "rebooted": n.rebooted,
                "result": match n.state {
                    NodeState::Done => "patched",
                    NodeState::Skipped => "skipped",
                    NodeState::Failed => "FAILED",
                    NodeState::Pending => "not started",
                    _ => "stopped mid-way",
                },
                "detail": n.error.clone().or_else(|| n.skip_reason.clone()),
            })
        })
        .collect()
}

/// Tell `report` what the nodes look like now, so that REBOOT-REQUIRED stays true.
fn remember_scans(settings: &Settings, rec: &RunRecord) {
    let now = journal::now();
    let nodes: BTreeMap<String, scans::NodeScan> = rec
        .nodes
        .iter()
        .filter(|n| n.rebooted)
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
