//! `aks-patch scan`: what needs patching, and where. Changes nothing on the nodes (unless
//! `--refresh`, which runs `apt-get update`, or `tdnf makecache` on Azure Linux).

use super::context::{self, ClusterContext};
use super::summary::scan_summary;
use super::{scans, Outcome};
use crate::cli::{FailOn, ScanArgs};
use crate::kube::NodeInfo;
use crate::node::{self, NodeTarget, Probe};
use crate::output::{Column, Exit, Failure, Reporter, TableSpec};
use crate::rollout::plan::{unpatchable_reason, Candidate};
use crate::rollout::probed::{self, ProbeResult, ProbedNode};
use crate::settings::Settings;
use crate::ssh::{SshFlags, SshOptions};
use crate::transport::{NodeShell, ProbeError, Via};
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::Duration;

/// One node in the scan result (`-o json` field names are stable and documented).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ScanRow {
    pub name: String,
    pub pool: String,
    /// `linux` or `windows`.
    pub os_type: String,
    pub os_sku: Option<String>,
    /// As `kubectl get nodes` shows it.
    pub status: String,
    /// The Node's status.nodeInfo.kernelVersion.
    pub kernel_version: String,
    /// `uname -r` on the node (None when not probed).
    pub running_kernel: Option<String>,
    pub pending_updates: Option<usize>,
    /// Pending security updates; `None` where the OS classifies none reliably (Azure Linux).
    pub security_updates: Option<usize>,
    /// The SECURITY column: the count, or `n/a` on Azure Linux (tdnf has no reliable
    /// security classification); absent when not probed.
    pub security: Option<String>,
    /// `PRETTY_NAME` of the node's /etc/os-release (None when not probed).
    pub os: Option<String>,
    /// `apt` or `tdnf` (None when not probed).
    pub package_manager: Option<node::PackageManager>,
    /// The node's OS is out of support (Azure Linux 2.0): the fact and what to do.
    pub end_of_support: Option<String>,
    pub reboot_required: Option<bool>,
    pub reboot_packages: Vec<String>,
    /// The kernel the pending updates or the reboot would bring, when there is one.
    pub pending_kernel: Option<String>,
    pub uptime: Option<String>,
    pub uptime_seconds: Option<u64>,
    /// /proc/sys/kernel/random/boot_id on the node (the Node's bootID).
    pub boot_id: Option<String>,
    pub node_image_version: Option<String>,
    pub latest_node_image_version: Option<String>,
    /// aks-patch can patch this node in place.
    pub patchable: bool,
    /// Why not, or what else to know.
    pub note: Option<String>,
    /// The probe failed: why.
    pub error: Option<String>,
    /// The pending upgrades.
    pub updates: Vec<node::PendingUpdate>,
}

pub fn table() -> TableSpec {
    TableSpec::new(vec![
        Column::new("NAME", "name"),
        Column::new("POOL", "pool"),
        Column::new("STATUS", "status"),
        Column::new("KERNEL", "runningKernel").placeholder("<unknown>"),
        Column::new("PENDING", "pendingUpdates").placeholder("-"),
        Column::new("SECURITY", "security").placeholder("-"),
        Column::new("REBOOT", "rebootRequired").placeholder("-"),
        Column::new("REBOOT-PACKAGES", "rebootPackages").wide(),
        Column::new("OS-SKU", "osSku").wide(),
        Column::new("OS", "os").wide().placeholder("<unknown>"),
        Column::new("NODE-IMAGE", "nodeImageVersion").wide(),
        Column::new("LATEST-IMAGE", "latestNodeImageVersion").wide(),
        Column::new("UPTIME", "uptime").wide().placeholder("-"),
        // A node that could not be probed is a row with the reason (and exit code 5); before
        // NOTE, whose Windows hints are long, so that it stays in sight.
        Column::new("ERROR", "error").placeholder(""),
        Column::new("NOTE", "note").placeholder(""),
    ])
}

/// How long one push to the Pushgateway may take.
const PUSH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

pub async fn run(args: ScanArgs, settings: &Settings, reporter: &Reporter) -> anyhow::Result<Outcome> {
    // Check the SSH flags (jump host, key and config files) before talking to any server.
    SshOptions::from_flags(&SshFlags::from(&args.ssh), "azureuser", settings)
        .map_err(|e| anyhow::Error::new(crate::output::WithExit::wrap(e, Exit::Usage)))?;
    let ctx = context::resolve(&args.cluster, settings, reporter, true).await?;
    if let Some(w) = ctx.channel_warning() {
        reporter.warn(&w);
    }
    let ssh_opts = SshOptions::from_flags(&SshFlags::from(&args.ssh), &ctx.admin_user, settings)
        .map_err(anyhow::Error::new)
        .map_err(usage)?;
    if let Some(url) = &args.metrics.pushgateway_url {
        crate::metrics::check_url(url)
            .map_err(anyhow::Error::new)
            .map_err(usage)?;
    }
    let rows = crate::kube::list_node_infos(&ctx.client, None)
        .await
        .map_err(|e| context::kube_failure("cannot list the cluster's nodes", e))?;
    let transport = super::via::transport(&args.via, args.parallel);
    let via = transport.via;
    let scan_id = crate::rollout::journal::new_run_id();
    let connect_timeout = Duration::from_secs(args.via.connect_timeout);
    let shell = super::via::open(
        &transport,
        connect_timeout,
        &ssh_opts,
        &ctx,
        settings,
        reporter,
        &scan_id,
    )
    .await?;
    let how = Probing {
        via,
        timeout: node_timeout(via, &ssh_opts, connect_timeout, args.refresh),
        parallel: args.parallel as usize,
        refresh: args.refresh,
    };
    let probing = probe_nodes(&ctx, &rows, &*shell, &how, reporter);
    let probes = match via {
        Via::Ssh | Via::RunCommand => probing.await,
        // Ctrl-C or SIGTERM: the node-shell pods go before the process does.
        Via::Kube => tokio::select! {
            probes = probing => probes,
            _ = super::via::interrupted() => {
                shell.release_all().await;
                return Err(Failure::new(Exit::Interrupted, "interrupted; the node-shell pods were deleted").into());
            }
        },
    };
    shell.release_all().await;
    let rows = scan_rows(&ctx, &rows, &probes, via);

    // Remember the result for `report`.
    let now = crate::rollout::journal::stamp(&crate::rollout::journal::now());
    let record: BTreeMap<String, scans::NodeScan> = rows
        .iter()
        .filter(|r| r.error.is_none() && r.reboot_required.is_some())
        .map(|r| {
            (
                r.name.clone(),
                scans::NodeScan {
                    scanned_at: now.clone(),
                    reboot_required: r.reboot_required.unwrap_or(false),
                    reboot_packages: r.reboot_packages.clone(),
                    pending_updates: r.pending_updates.unwrap_or(0),
                    security_updates: r.security_updates,
                    running_kernel: r.running_kernel.clone().unwrap_or_default(),
                    boot_id: r.boot_id.clone(),
                },
            )
        })
        .collect();
    if let Err(e) = scans::save(&settings.state_dir, &ctx.cluster.key, record) {
        reporter.warn(&format!("cannot record this scan for `aks-patch report`: {e}"));
    }
    if let Some(url) = &args.metrics.pushgateway_url {
        let nodes: Vec<crate::metrics::NodeScanMetrics> = rows
            .iter()
            .filter(|r| r.error.is_none() && r.reboot_required.is_some())
            .map(|r| crate::metrics::NodeScanMetrics {
                node: r.name.clone(),
                pool: r.pool.clone(),
                reboot_required: r.reboot_required.unwrap_or(false),
                pending: r.pending_updates.unwrap_or(0),
                security: r.security_updates,
            })
            .collect();
        let families = crate::metrics::scan_families(&nodes);
        let pushed = crate::metrics::push(
            url,
            "aks-patch-scan",
            &ctx.cluster.name,
            &families,
            settings.ca_bundle.as_ref(),
            PUSH_TIMEOUT,
        );
        match pushed.await {
            Ok(()) => reporter.verbose(&format!("pushed the scan's metrics for {} node(s)", nodes.len())),
            Err(e) => reporter.warn(&format!("{e}; the scan's result is not affected")),
        }
    }

    let linux: Vec<&ScanRow> = rows.iter().filter(|r| r.os_type == "linux").collect();
    let failed: Vec<&ScanRow> = rows.iter().filter(|r| r.error.is_some()).collect();
    let need_reboot = linux.iter().filter(|r| r.reboot_required == Some(true)).count();
    let with_pending = linux.iter().filter(|r| r.pending_updates.unwrap_or(0) > 0).count();
    let mut kernels: Vec<String> = linux.iter().filter_map(|r| r.pending_kernel.clone()).collect();
    kernels.sort();
    kernels.dedup();
    for r in &failed {
        reporter.warn(&format!("{}: {}", r.name, r.error.as_deref().unwrap_or("")));
    }
    if !failed.is_empty() && via == Via::Ssh && settings.in_pod() {
        reporter.info("hint: aks-patch runs in a pod here (KUBERNETES_SERVICE_HOST is set), and pods have no SSH path to the nodes: leave out --via ssh (in a pod the default is --via kube)");
    } else if !failed.is_empty() && via == Via::Ssh {
        reporter.info("hint: nodes with no SSH path from here (private IPs, sshAccess: Disabled) can be reached through the Kubernetes API: --via kube, or through ARM alone: --via run-command");
    }
    let windows = rows.iter().filter(|r| r.os_type == "windows").count();
    let mut summary = scan_summary(linux.len(), need_reboot, with_pending, failed.len(), &kernels);
    if windows > 0 {
        summary.push_str(&format!(
            "; {windows} Windows {} not patched in place (use az aks nodepool upgrade {} -n POOL --node-image-only)",
            if windows == 1 { "node is" } else { "nodes are" },
            ctx.az_args
        ));
    }
    if let Some(auth) = ctx.auth {
        summary.push_str(&format!("; {auth}"));
    }
    if let Some(note) = super::apply::window::aks_note(&ctx, reporter).await {
        summary.push('\n');
        summary.push_str(&note);
    }
    let exit = if !failed.is_empty() {
        Exit::NodesFailed
    } else {
        match args.fail_on {
            Some(FailOn::RebootRequired) if need_reboot > 0 => Exit::FailOn,
            Some(FailOn::Pending) if with_pending > 0 || need_reboot > 0 => Exit::FailOn,
            _ => Exit::Ok,
        }
    };
    Ok(Outcome {
        value: serde_json::to_value(&rows)?,
        table: Some(table()),
        summary: Some(summary),
        exit,
    })
}

fn usage(e: anyhow::Error) -> anyhow::Error {
    anyhow::Error::new(crate::output::WithExit::wrap(e, Exit::Usage))
}

/// The candidate (for the plan's skip rules) of a node row.
pub fn candidate(ctx: &ClusterContext, r: &NodeInfo) -> Candidate {
    let pool = r.pool.clone().unwrap_or_default();
    let info = ctx.pool(&pool);
    Candidate {
        name: r.name.clone(),
        pool: pool.clone(),
        os_type: r
            .os_type
            .as_ref()
            .map(|t| t.as_str().to_string())
            .or_else(|| info.and_then(|p| p.os_type.clone()).map(|t| t.to_lowercase()))
            .unwrap_or_else(|| "linux".into()),
        os_sku: r.os_sku.clone().or_else(|| info.and_then(|p| p.os_sku.clone())),
        ready: r.is_ready(),
        ssh_disabled: info.is_some_and(|p| p.ssh_disabled),
    }
}

/// How long one node's probe may take: connecting (SSH) or starting the pod or run command
/// (`connect_timeout`), then the probe.
pub fn node_timeout(via: Via, ssh_opts: &SshOptions, connect_timeout: Duration, refresh: bool) -> Duration {
    let connect = match via {
        Via::Ssh => ssh_opts.connect_timeout,
        Via::Kube | Via::RunCommand => connect_timeout,
    };
    connect + Duration::from_secs(if refresh { 300 } else { 60 })
}

/// How the nodes are probed: through which transport, how long each may take, how many at
/// once, and whether the package lists are refreshed first.
pub struct Probing {
    pub via: Via,
    pub timeout: Duration,
    pub parallel: usize,
    pub refresh: bool,
}

/// Probe every node of `rows` that can be patched in place through `shell` (also used by
/// apply's pre-flight).
pub async fn probe_nodes(
    ctx: &ClusterContext,
    rows: &[NodeInfo],
    shell: &dyn NodeShell,
    probing: &Probing,
    reporter: &Reporter,
) -> Vec<ProbedNode> {
    let targets: Vec<NodeTarget> = rows
        .iter()
        .filter(|r| not_patched_why(ctx, r, probing.via).is_none())
        .map(|r| NodeTarget {
            name: r.name.clone(),
            address: r.internal_ip().unwrap_or_default().to_string(),
        })
        .collect();
    reporter.start_progress(
        targets.len() as u64,
        if probing.refresh {
            "refreshing and probing nodes"
        } else {
            "probing nodes"
        },
    );
    let probed = |node: &NodeTarget, r: &Result<Probe, ProbeError>| {
        match r {
            Ok(p) => reporter.verbose(&format!(
                "{}: kernel {}, {} pending ({} security){}",
                node.name,
                p.running_kernel,
                p.pending_count(),
                if p.classifies_security() {
                    p.security_count().to_string()
                } else {
                    "n/a".to_string()
                },
                if p.reboot_required { ", reboot required" } else { "" }
            )),
            Err(e) => reporter.verbose(&format!("{}: {e}", node.name)),
        }
        reporter.inc(1);
    };
    let results = crate::transport::probe_all(
        shell,
        targets,
        probing.parallel,
        probing.refresh,
        probing.timeout,
        &probed,
    )
    .await;
    reporter.finish_and_clear();
    let mut by_name: BTreeMap<String, Result<Probe, ProbeError>> = results.into_iter().collect();
    rows.iter()
        .map(|r| ProbedNode {
            name: r.name.clone(),
            result: match by_name.remove(&r.name) {
                Some(Ok(p)) => ProbeResult::Probed(Box::new(p)),
                Some(Err(e)) => ProbeResult::Failed(e),
                None => ProbeResult::NotProbed,
            },
        })
        .collect()
}

/// The scan's rows of `rows`, with what their probes found.
pub fn scan_rows(ctx: &ClusterContext, rows: &[NodeInfo], probes: &[ProbedNode], via: Via) -> Vec<ScanRow> {
    rows.iter()
        .map(|r| {
            let mut row = base_row(ctx, r, via);
            match probed::of(probes, &r.name).map(|p| &p.result) {
                Some(ProbeResult::Probed(p)) => fill(&mut row, p),
                Some(ProbeResult::Failed(e)) => row.error = Some(e.to_string()),
                Some(ProbeResult::NotProbed) | None => {}
            }
            row
        })
        .collect()
}

/// The candidate of a node row for this transport: SSH-disabled pools are reachable through
/// the Kubernetes API.
pub fn candidate_via(ctx: &ClusterContext, r: &NodeInfo, via: Via) -> Candidate {
    let mut c = candidate(ctx, r);
    if via != Via::Ssh {
        c.ssh_disabled = false;
    }
    c
}

/// Why node `r` is not patched in place (and not probed) through this transport, if it is not.
fn not_patched_why(ctx: &ClusterContext, r: &NodeInfo, via: Via) -> Option<String> {
    if via == Via::Ssh && r.internal_ip().is_none_or(str::is_empty) {
        Some("the node has no InternalIP to reach over SSH".to_string())
    } else {
        unpatchable_reason(&candidate_via(ctx, r, via), &ctx.az_args)
    }
}

fn base_row(ctx: &ClusterContext, r: &NodeInfo, via: Via) -> ScanRow {
    let c = candidate_via(ctx, r, via);
    let info = ctx.pool(&c.pool);
    let reason = not_patched_why(ctx, r, via);
    ScanRow {
        name: r.name.clone(),
        pool: c.pool.clone(),
        os_type: c.os_type.clone(),
        os_sku: c.os_sku.clone(),
        status: crate::output::nodes::status(r),
        kernel_version: r.kernel_version.clone().unwrap_or_else(|| "<unknown>".into()),
        running_kernel: None,
        pending_updates: None,
        security_updates: None,
        security: None,
        os: None,
        package_manager: None,
        end_of_support: None,
        reboot_required: None,
        reboot_packages: vec![],
        pending_kernel: None,
        uptime: None,
        boot_id: None,
        uptime_seconds: None,
        node_image_version: r
            .node_image_version
            .clone()
            .or_else(|| info.and_then(|p| p.node_image_version.clone())),
        latest_node_image_version: info.and_then(|p| p.latest_node_image_version.clone()),
        patchable: reason.is_none(),
        note: reason,
        error: None,
        updates: vec![],
    }
}

fn fill(row: &mut ScanRow, p: &Probe) {
    row.running_kernel = Some(p.running_kernel.clone());
    row.boot_id = p.boot_id.clone();
    row.os = p.os_pretty_name.clone();
    row.package_manager = Some(p.package_manager);
    row.end_of_support = p.end_of_support.clone();
    if let Some(eos) = &p.end_of_support {
        row.note = Some(eos.clone());
    }
    if let Some(why) = &p.unsupported {
        row.patchable = false;
        row.note = Some(why.clone());
    }
    row.pending_updates = Some(p.pending_count());
    if p.classifies_security() {
        row.security_updates = Some(p.security_count());
        row.security = Some(p.security_count().to_string());
    } else {
        row.security = Some("n/a".into());
    }
    row.reboot_required = Some(p.reboot_required);
    row.reboot_packages = p.reboot_packages.clone();
    row.pending_kernel = p.pending_kernel();
    row.uptime_seconds = p.uptime_seconds;
    row.uptime = p
        .uptime_seconds
        .map(|s| crate::output::nodes::human_duration(jiff::SignedDuration::from_secs(s as i64)));
    if let Some(e) = &p.refresh_error {
        row.note = Some(match p.package_manager {
            node::PackageManager::Tdnf => e.clone(),
            _ => format!("apt-get update failed: {e}"),
        });
    }
    row.updates = p.pending.clone();
}
