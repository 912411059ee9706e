//! `apply --window`: the maintenance windows a run keeps to, how long a node is expected to
//! be out, and the check before anything is done (exit 8 outside a window, or
//! `--wait-for-window`).

use crate::azure::models::MaintenanceConfiguration;
use crate::cli::WindowArgs;
use crate::commands::context::{azure_failure, ClusterContext};
use crate::kube::CancellationToken;
use crate::output::{Exit, Failure, Reporter};
use crate::rollout::engine::WindowPolicy;
use crate::rollout::journal::WindowOptions;
use crate::rollout::record_store::RunRecords;
use crate::rollout::window::{self, AksWindow, DailyWindow, Schedule, SystemClock, Verdict};
use std::sync::Arc;
use std::time::Duration;

/// The AKS maintenance configurations for node OS upgrades, in order of preference.
const AKS_CONFIGS: [&str; 2] = ["aksManagedNodeOSUpgradeSchedule", "default"];

/// `--window` and `--time-zone` as text, checked before anything is contacted: a window that
/// does not parse and an unknown time zone are usage errors, the zone even without a window
/// (where it changes nothing: a script may pass it to every run).
pub fn check(args: &WindowArgs) -> anyhow::Result<()> {
    Schedule::new(&args.time_zone).map_err(usage)?;
    for spec in &args.windows {
        if !spec.trim().eq_ignore_ascii_case("aks") {
            DailyWindow::parse(spec).map_err(usage)?;
        }
    }
    Ok(())
}

fn usage(e: window::WindowError) -> Failure {
    Failure::new(Exit::Usage, format!("{e}; nothing was changed"))
        .hint("e.g. --window 'Sat,Sun 01:00-05:00' --time-zone Europe/Berlin, or --window aks")
}

/// The run's windows (none: it keeps to no window).
pub async fn policy(
    opts: &WindowOptions,
    ctx: &ClusterContext,
    journal: &RunRecords,
    reporter: &Reporter,
) -> anyhow::Result<Option<WindowPolicy>> {
    if opts.windows.is_empty() {
        if opts.wait_for_window {
            return Err(Failure::new(Exit::Usage, "--wait-for-window needs --window")
                .hint("give --window 'DAYS HH:MM-HH:MM' or --window aks")
                .into());
        }
        return Ok(None);
    }
    let mut schedule = Schedule::new(&opts.time_zone).map_err(usage)?;
    for spec in &opts.windows {
        if spec.trim().eq_ignore_ascii_case("aks") {
            schedule.add_aks(aks_window(ctx, reporter).await?);
        } else {
            schedule.add_daily(DailyWindow::parse(spec).map_err(usage)?);
        }
    }
    // How long a node is out: the median of this cluster's past runs, else --node-budget.
    let past = journal.runs(&ctx.cluster.key).await.unwrap_or_default();
    let budget = match window::median_node_time(past.iter().flat_map(|r| &r.nodes)) {
        Some(d) => {
            reporter.verbose(&format!(
                "a node is out for about {} (the median of this cluster's past runs)",
                crate::duration::human(d)
            ));
            d
        }
        None => Duration::from_secs(opts.node_budget),
    };
    reporter.verbose(&format!("maintenance windows: {}", schedule.describe().join("; ")));
    Ok(Some(WindowPolicy {
        schedule,
        budget,
        clock: Arc::new(SystemClock),
    }))
}

/// `--window aks`: the cluster's planned-maintenance window for node OS upgrades, from ARM.
async fn aks_window(ctx: &ClusterContext, reporter: &Reporter) -> anyhow::Result<AksWindow> {
    let Some(crate::commands::context::ArmAccess {
        client: arm,
        cluster: id,
        ..
    }) = &ctx.arm
    else {
        return Err(Failure::new(
            Exit::Usage,
            "--window aks reads the cluster's planned-maintenance schedule from Azure Resource Manager, but the cluster was given with --kubeconfig",
        )
        .hint("name the cluster with -g RESOURCE_GROUP -n CLUSTER, or give --window 'DAYS HH:MM-HH:MM'")
        .into());
    };
    let configs = arm.list_maintenance_configurations(id).await.map_err(azure_failure)?;
    let Some(config) = pick(&configs) else {
        return Err(Failure::new(
            Exit::Usage,
            format!(
                "--window aks: cluster {} has no planned-maintenance configuration for node OS upgrades ({}); nothing was changed",
                ctx.cluster.name,
                AKS_CONFIGS.join(" or ")
            ),
        )
        .hint(format!(
            "create one (az aks maintenanceconfiguration add {} -n aksManagedNodeOSUpgradeSchedule --schedule-type Weekly --day-of-week Sunday --start-time 01:00 --duration 4), or give --window 'DAYS HH:MM-HH:MM'",
            ctx.az_args
        ))
        .into());
    };
    let Some(json) = &config.properties.maintenance_window else {
        return Err(Failure::new(
            Exit::Usage,
            format!(
                "--window aks: the maintenance configuration `{}` has no maintenanceWindow (the older timeInWeek format is not read); nothing was changed",
                config.name
            ),
        )
        .hint("give the window with --window 'DAYS HH:MM-HH:MM', or recreate the configuration with a schedule")
        .into());
    };
    let w = AksWindow::from_json(&config.name, json)
        .map_err(|e| Failure::new(Exit::Failure, format!("{e}; nothing was changed")))?;
    reporter.verbose(&format!(
        "--window aks: using maintenance configuration {}",
        config.name
    ));
    Ok(w)
}

/// The configuration for node OS upgrades, in order of preference.
fn pick(configs: &[MaintenanceConfiguration]) -> Option<&MaintenanceConfiguration> {
    AKS_CONFIGS
        .iter()
        .find_map(|name| configs.iter().find(|c| c.name.eq_ignore_ascii_case(name)))
}

/// For `scan` and `report`: the cluster's AKS maintenance window for node OS upgrades and
/// whether it is open now or when it opens next (`None` without ARM, or when ARM cannot be
/// read: said with `--verbose`).
pub async fn aks_note(ctx: &ClusterContext, reporter: &Reporter) -> Option<String> {
    let access = ctx.arm.as_ref()?;
    let (arm, id) = (&access.client, &access.cluster);
    let configs = match arm.list_maintenance_configurations(id).await {
        Ok(c) => c,
        Err(e) => {
            reporter.verbose(&format!("cannot read the cluster's maintenance configurations: {e}"));
            return None;
        }
    };
    let Some(config) = pick(&configs) else {
        return Some(format!(
            "maintenance window: none configured in AKS for node OS upgrades ({}); `apply --window aks` would refuse to run",
            AKS_CONFIGS.join(" or ")
        ));
    };
    let window = match config.properties.maintenance_window.as_ref().map(|j| AksWindow::from_json(&config.name, j)) {
        Some(Ok(w)) => w,
        Some(Err(e)) => return Some(format!("maintenance window: {e}")),
        None => {
            return Some(format!(
                "maintenance window: the configuration `{}` has no maintenanceWindow (the older timeInWeek format is not read)",
                config.name
            ))
        }
    };
    let mut schedule = Schedule::new("UTC").ok()?;
    schedule.add_aks(window);
    let now = jiff::Timestamp::now();
    let when = match (schedule.open_at(now), schedule.next_opening(now)) {
        (Some(o), _) => format!("open now, until {}", schedule.show(o.end)),
        (None, Some(o)) => format!("next opens {}", schedule.show(o.start)),
        (None, None) => "no opening within the next two years".to_string(),
    };
    Some(format!(
        "maintenance window ({}): {when} (`apply --window aks` keeps to it)",
        schedule.describe().join("; ")
    ))
}

/// The dry run's verdict: does the plan (`nodes` to take out) fit the window open now?
pub fn dry_run_verdict(w: &WindowPolicy, nodes: usize) -> String {
    let now = w.clock.now();
    let verdict = w.schedule.verdict(now, w.budget);
    let windows = w.schedule.describe().join("; ");
    match verdict {
        Verdict::Fits { closes } => {
            let left = closes.duration_since(now).as_secs().max(0) as u64;
            let fit = (left / w.budget.as_secs().max(1)) as usize;
            if fit >= nodes {
                format!(
                    "maintenance window ({windows}): open until {}; the plan ({nodes} node(s), about {} each) fits",
                    w.schedule.show(closes),
                    crate::duration::human(w.budget)
                )
            } else {
                let next = w
                    .schedule
                    .next_opening(closes)
                    .map(|o| format!("; --resume continues in the next window, {}", w.schedule.show(o.start)))
                    .unwrap_or_default();
                format!(
                    "maintenance window ({windows}): open until {}; about {fit} of {nodes} node(s) fit (about {} each){next}",
                    w.schedule.show(closes),
                    crate::duration::human(w.budget)
                )
            }
        }
        _ => format!(
            "maintenance window ({windows}): {}; the run would exit 8 now",
            verdict.explain(&w.schedule, w.budget)
        ),
    }
}

/// A resume with nodes out of service: they are finished whatever the time (the engine
/// starts no other node outside the window); say so when the window is not open.
pub fn finishing_left_out(w: &WindowPolicy, reporter: &Reporter) {
    let verdict = w.schedule.verdict(w.clock.now(), w.budget);
    if !verdict.fits() {
        reporter.warn(&format!(
            "{}: finishing only the node(s) the interrupted run left out of service; no other node is started outside the window",
            verdict.explain(&w.schedule, w.budget)
        ));
    }
}

/// Before anything is done: inside a window (with time for a node), or wait for one with
/// `--wait-for-window`, or stop with exit 8 and the next opening.
pub async fn before_start(
    w: &WindowPolicy,
    wait: bool,
    cancel: &CancellationToken,
    reporter: &Reporter,
) -> anyhow::Result<()> {
    loop {
        let now = w.clock.now();
        let verdict = w.schedule.verdict(now, w.budget);
        if let Verdict::Fits { closes } = verdict {
            reporter.info(&format!(
                "inside the maintenance window until {}",
                w.schedule.show(closes)
            ));
            return Ok(());
        }
        let why = verdict.explain(&w.schedule, w.budget);
        let Some(next) = verdict.next().filter(|_| wait) else {
            return Err(Failure::new(Exit::OutsideWindow, format!("not starting: {why}; nothing was changed"))
                .hint("run again then (from cron or a pipeline schedule), or add --wait-for-window to wait for it; --window and --node-budget set the window and the time a node needs")
                .into());
        };
        reporter.info(&format!(
            "waiting for the maintenance window (--wait-for-window): opens {}",
            w.schedule.show(next.start)
        ));
        loop {
            let left = next.start.duration_since(w.clock.now());
            if left.is_zero() || left.is_negative() {
                break;
            }
            let secs = left.as_secs() as u64;
            reporter.set_message(format!(
                "waiting for the maintenance window: opens in {}",
                crate::duration::human(Duration::from_secs(secs + 1))
            ));
            let step = Duration::from_secs(1).min(Duration::from_millis(left.as_millis().max(1) as u64));
            tokio::select! {
                _ = tokio::time::sleep(step) => {}
                _ = cancel.cancelled() => {
                    return Err(Failure::new(
                        Exit::Interrupted,
                        "interrupted while waiting for the maintenance window; nothing was changed",
                    )
                    .into())
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rollout::window::PausedClock;
    use tokio::time::Instant;

    fn policy(at: &str) -> WindowPolicy {
        let mut schedule = Schedule::new("UTC").unwrap();
        schedule.add_daily(DailyWindow::parse("Sat,Sun 01:00-05:00").unwrap());
        WindowPolicy {
            schedule,
            budget: Duration::from_secs(15 * 60),
            clock: Arc::new(PausedClock::at(at)),
        }
    }

    fn exit_of(e: &anyhow::Error) -> Option<Exit> {
        e.downcast_ref::<Failure>().map(|f| f.exit)
    }

    #[tokio::test(start_paused = true)]
    async fn outside_the_window_it_is_exit_8_with_the_next_opening() {
        let w = policy("2026-12-02T12:00:00Z");
        let e = before_start(&w, false, &CancellationToken::new(), &Reporter::silent())
            .await
            .unwrap_err();
        assert_eq!(exit_of(&e), Some(Exit::OutsideWindow));
        let text = format!("{e:#}");
        assert!(
            text.contains("next window opens 2026-12-05T01:00:00Z") && text.contains("nothing was changed"),
            "{text}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn wait_for_window_waits_until_it_opens_then_goes_on() {
        let w = policy("2026-12-04T23:00:00Z");
        let t0 = Instant::now();
        before_start(&w, true, &CancellationToken::new(), &Reporter::silent())
            .await
            .unwrap();
        // Two hours of (paused) time: from Friday 23:00 to Saturday 01:00.
        assert_eq!(t0.elapsed().as_secs(), 2 * 3600);
        assert!(w.schedule.open_at(w.clock.now()).is_some());
    }

    #[tokio::test(start_paused = true)]
    async fn a_signal_while_waiting_for_the_window_stops_with_130() {
        let w = policy("2026-12-04T23:00:00Z");
        let cancel = CancellationToken::new();
        let c = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(60)).await;
            c.cancel();
        });
        let e = before_start(&w, true, &cancel, &Reporter::silent()).await.unwrap_err();
        assert_eq!(exit_of(&e), Some(Exit::Interrupted));
    }
}
