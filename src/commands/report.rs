//! `aks-patch report`: the nodes as `kubectl get nodes` shows them, with patch state.
//! No SSH: ARM, the Kubernetes API, and what aks-patch recorded before (the last scan and
//! the apply journal), so it is fast.

use super::context;
use super::{scans, Outcome};
use crate::cli::ReportArgs;
use crate::output::{Column, Exit, Reporter, TableSpec};
use crate::rollout::journal::Journal;
use crate::settings::Settings;
use serde::Serialize;

/// One node in the report (`-o json` field names are stable and documented).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReportRow {
    pub name: String,
    pub status: String,
    pub roles: String,
    pub age: String,
    pub version: String,
    pub internal_ip: String,
    pub external_ip: String,
    pub os_image: String,
    pub kernel_version: String,
    pub container_runtime: String,
    pub pool: Option<String>,
    pub os_type: Option<String>,
    pub node_image_version: Option<String>,
    pub latest_node_image_version: Option<String>,
    /// From the last `aks-patch scan` or `apply` (None: never scanned, or the node has booted
    /// since that scan; Windows nodes: None).
    pub reboot_required: Option<bool>,
    pub reboot_packages: Vec<String>,
    /// When the last scan saw the node.
    pub last_scanned: Option<String>,
    /// When aks-patch last patched the node successfully.
    pub last_patched: Option<String>,
    /// The aks-patch run that has the node out of service now (annotation
    /// `aks-patch.io/in-progress`), if any.
    pub in_progress: Option<String>,
}

pub fn table() -> TableSpec {
    TableSpec::new(vec![
        Column::new("NAME", "name"),
        Column::new("STATUS", "status"),
        Column::new("ROLES", "roles"),
        Column::new("AGE", "age"),
        Column::new("VERSION", "version"),
        Column::new("INTERNAL-IP", "internalIp").wide(),
        Column::new("EXTERNAL-IP", "externalIp").wide(),
        Column::new("OS-IMAGE", "osImage").wide().placeholder("<unknown>"),
        Column::new("KERNEL-VERSION", "kernelVersion")
            .wide()
            .placeholder("<unknown>"),
        Column::new("CONTAINER-RUNTIME", "containerRuntime")
            .wide()
            .placeholder("<unknown>"),
        Column::new("NODE-IMAGE", "nodeImageVersion").placeholder("<unknown>"),
        Column::new("REBOOT-REQUIRED", "rebootRequired").placeholder("<unknown>"),
        Column::new("LAST-PATCHED", "lastPatched").placeholder("<never>"),
        Column::new("IN-PROGRESS", "inProgress").wide().placeholder(""),
    ])
}

pub async fn run(args: ReportArgs, settings: &Settings, reporter: &Reporter) -> anyhow::Result<Outcome> {
    let ctx = context::resolve(&args.cluster, settings, reporter, true).await?;
    if let Some(w) = ctx.channel_warning() {
        reporter.warn(&w);
    }
    let rows = crate::kube::list_node_rows(&ctx.client, None)
        .await
        .map_err(|e| context::kube_failure("cannot list the cluster's nodes", e))?;
    let dir = settings.state_dir.clone();
    let last_scan = scans::load(&dir, &ctx.cluster.key);
    let journal = Journal::new(dir.join("runs"));
    let last_patched = match journal.last_patched(&ctx.cluster.key) {
        Ok(m) => m,
        Err(e) => {
            reporter.warn(&format!("cannot read the run records: {e}"));
            Default::default()
        }
    };
    let out: Vec<ReportRow> = rows
        .into_iter()
        .map(|r| {
            let pool = r.pool.clone().unwrap_or_default();
            let info = ctx.pool(&pool);
            let scan = last_scan.get(&r.name);
            let windows = r.os_type.as_deref() == Some("windows");
            // A scan from before the node's last boot no longer says whether it needs one:
            // compare the bootID the scan saw with the node's (older records: the kernel).
            let same_boot = |s: &&scans::NodeScan| match (&s.boot_id, &r.boot_id) {
                (Some(then), Some(now)) => then == now,
                _ => s.running_kernel.is_empty() || s.running_kernel == r.kernel_version,
            };
            let scan = scan.filter(|s| !windows && same_boot(s));
            ReportRow {
                reboot_required: scan.map(|s| s.reboot_required),
                reboot_packages: scan.map(|s| s.reboot_packages.clone()).unwrap_or_default(),
                last_scanned: scan.map(|s| s.scanned_at.clone()),
                last_patched: last_patched.get(&r.name).cloned(),
                in_progress: r.in_progress.clone(),
                node_image_version: r
                    .node_image_version
                    .clone()
                    .or_else(|| info.and_then(|p| p.node_image_version.clone())),
                latest_node_image_version: info.and_then(|p| p.latest_node_image_version.clone()),
                pool: r.pool,
                os_type: r.os_type,
                name: r.name,
                status: r.status,
                roles: r.roles,
                age: r.age,
                version: r.version,
                internal_ip: r.internal_ip,
                external_ip: r.external_ip,
                os_image: r.os_image,
                kernel_version: r.kernel_version,
                container_runtime: r.container_runtime,
            }
        })
        .collect();
    let unknown = out
        .iter()
        .filter(|r| r.reboot_required.is_none() && r.os_type.as_deref() != Some("windows"))
        .count();
    let mut notes: Vec<String> = ctx.auth.iter().map(ToString::to_string).collect();
    if unknown > 0 {
        notes.push(format!(
            "{unknown} Linux node(s) never scanned, or rebooted since the last scan: run `aks-patch scan` to fill in REBOOT-REQUIRED"
        ));
    }
    for r in out.iter().filter(|r| r.in_progress.is_some()) {
        notes.push(format!(
            "node {} is out of service in aks-patch run {} (IN-PROGRESS): if that run died, resume it with `aks-patch apply ... --resume`",
            r.name,
            r.in_progress.as_deref().unwrap_or_default()
        ));
    }
    let summary = (!notes.is_empty()).then(|| notes.join("\n"));
    Ok(Outcome {
        value: serde_json::to_value(&out)?,
        table: Some(table()),
        summary,
        exit: Exit::Ok,
    })
}
