//! What `apply` checks and turns into typed values before it contacts anything, and the
//! small pieces of its flow: confirmation, signals, the scans it leaves for `report`.

use crate::cli::{self, ApplyArgs};
use crate::commands::context::ClusterContext;
use crate::commands::scans;
use crate::kube::{CancellationToken, DrainOptions, KubeError};
use crate::output::{Exit, Failure, Reporter};
use crate::rollout::blockers::PodScope;
use crate::rollout::journal::{self, NodeState, RebootPolicy, RunOptions, RunRecord, UpgradeMode};
use crate::settings::Settings;
use std::collections::BTreeMap;
use std::time::Duration;

/// The journal directory must take a record before the lock is touched.
pub(super) fn check_journal_dir(dir: &std::path::Path) -> anyhow::Result<()> {
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
pub(super) fn run_options(a: &ApplyArgs) -> RunOptions {
    RunOptions {
        max_unavailable: a.max_unavailable,
        across_zones: a.across_zones,
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
        azure_linux_security_as_all: a.azure_linux_security_as_all,
        allow_azure_linux_2: a.allow_azure_linux_2,
        allow_pending_pods: a.allow_pending_pods,
        no_pending_taint: a.no_pending_taint,
        health_wait: a.health_wait,
        selection: journal::Selection {
            nodepools: a.nodepool.clone(),
            nodes: a.nodes.clone(),
            selector: a.selector.clone(),
        },
        window: journal::WindowOptions {
            windows: a.window.windows.clone(),
            time_zone: a.window.time_zone.clone(),
            node_budget: a.window.node_budget.as_secs(),
            wait_for_window: a.window.wait_for_window,
        },
        blockers: journal::BlockerOptions {
            pod_selectors: a.blockers.blocking_pod_selector.clone(),
            pod_scope: match a.blockers.blocking_pod_scope {
                cli::BlockingPodScope::Cluster => PodScope::Cluster,
                cli::BlockingPodScope::Node => PodScope::Node,
            },
            prometheus: a.blockers.prometheus_url.is_some(),
            alert_filter_regexp: a.blockers.alert_filter_regexp.clone(),
            alert_filter_match_only: a.blockers.alert_filter_match_only,
            alert_firing_only: a.blockers.alert_firing_only,
            wait: a.blockers.blocker_wait.as_secs(),
        },
        transport: crate::commands::via::transport(&a.via, a.parallel),
        notify: journal::NotifyOptions {
            webhooks: !a.notify.notify_url.is_empty(),
            template: a.notify.notify_template.clone(),
            pushgateway: a.metrics.pushgateway_url.is_some(),
        },
    }
}

pub(super) fn drain_options(o: &RunOptions, retry_interval: u64) -> DrainOptions {
    DrainOptions {
        delete_emptydir_data: o.delete_emptydir_data,
        force: o.force,
        grace_period: o.grace_period,
        timeout: Duration::from_secs(o.drain_timeout),
        retry_interval: Duration::from_secs(retry_interval.max(1)),
        // aks-patch's own node-shell pods (`--via kube`): aks-patch deletes them itself.
        leave_alone: vec![crate::transport::kube::node_shell_pods()],
        ..DrainOptions::default()
    }
}

/// The API server's own words from an error.
pub(super) fn api_message(e: &KubeError) -> String {
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

/// Ctrl-C / SIGTERM: the first stops at the next safe point, a second one stops waiting
/// for apt on a node (apt itself is never cut off).
pub(super) async fn watch_signals(
    cancel: CancellationToken,
    abandon: CancellationToken,
    reporter: Reporter,
    stop: CancellationToken,
) {
    let Ok(mut term) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) else {
        return;
    };
    let mut count = 0;
    let mut asked = false;
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
            // Asked from outside (a fleet whose other cluster failed): as a first signal.
            _ = stop.cancelled(), if !asked => {
                asked = true;
                if count == 0 {
                    cancel.cancel();
                    reporter.warn("asked to stop: stopping at the next safe point (a running apt is waited for, a draining node is uncordoned, a rebooting node is waited for); the lock will be released");
                }
                continue;
            }
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

pub(super) fn confirm(args: &ApplyArgs, ctx: &ClusterContext, n: usize) -> anyhow::Result<()> {
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
    let pace = match args.max_unavailable {
        Some(m) => format!("in batches of at most {m} out at once"),
        None => "one at a time".to_string(),
    };
    eprint!(
        "Patch {n} node(s) of {} {pace} (cordon, drain, reboot as needed)? [y/N] ",
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

/// Tell `report` what the nodes look like now, so that REBOOT-REQUIRED stays true.
pub(super) fn remember_scans(settings: &Settings, rec: &RunRecord) {
    let now = journal::stamp(&journal::now());
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
                    security_updates: Some(0),
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
    use crate::cli::{Cli, Command};
    use crate::transport::Via;

    fn apply(extra: &[&str]) -> ApplyArgs {
        let base = ["aks-patch", "apply", "--kubeconfig", "kc", "--one-at-a-time"];
        let cli = Cli::try_parse_with_sources_from(base.iter().chain(extra)).unwrap();
        let Command::Apply(a) = cli.command else {
            panic!("apply")
        };
        *a
    }

    #[test]
    fn the_run_record_keeps_every_option_that_shapes_the_rollout_but_no_url() {
        let a = apply(&[
            "--upgrade-mode=dist",
            "--reboot=always",
            "--delete-emptydir-data",
            "--force",
            "--grace-period=5",
            "--drain-timeout=7",
            "--reboot-timeout=8",
            "--health-wait=9",
            "--soak=3",
            "--nodepool=user",
            "--nodes=n1,n2",
            "--selector=a=b",
            "--window=Sat 01:00-05:00",
            "--time-zone=Europe/Berlin",
            "--node-budget=5m",
            "--wait-for-window",
            "--blocking-pod-selector=app=backup",
            "--blocking-pod-scope=node",
            "--prometheus-url=http://user:secret@prometheus:9090",
            "--alert-filter-regexp=^Watchdog$",
            "--alert-firing-only",
            "--blocker-wait=90s",
            "--via=kube",
            "--node-shell-image=registry.example/shell:1",
            "--node-shell-namespace=ops",
            "--notify-url=https://hooks.slack.com/services/T/B/secret",
            "--notify-template={event} {node}",
            "--pushgateway-url=http://gw:9091",
            "--azure-linux-security-as-all",
            "--allow-azure-linux-2",
            "--allow-pending-pods",
            "--no-pending-taint",
        ]);
        let recorded = run_options(&a);
        let text = serde_json::to_string(&recorded).unwrap();
        assert!(
            !text.contains("secret") && !text.contains("gw:9091"),
            "no URL recorded: {text}"
        );
        let read: RunOptions = serde_json::from_str(&text).unwrap();
        assert_eq!(read, recorded, "a resume reads back every option");
        assert_eq!(
            (read.upgrade_mode, read.reboot, read.grace_period, read.health_wait),
            (UpgradeMode::Dist, RebootPolicy::Always, Some(5), 9)
        );
        assert_eq!(read.selection.selector.as_deref(), Some("a=b"));
        assert_eq!((read.window.node_budget, read.blockers.wait), (300, 90));
        assert_eq!(read.blockers.pod_scope, PodScope::Node);
        assert!(read.blockers.prometheus && read.notify.webhooks && read.notify.pushgateway);
        assert_eq!(read.transport.via, Via::Kube);
        assert_eq!(read.transport.node_shell_namespace, "ops");
        assert!(read.azure_linux_security_as_all && read.allow_azure_linux_2 && read.allow_pending_pods);
        assert!(read.no_pending_taint);
        assert_ne!(run_options(&apply(&[])), recorded);
    }
}
