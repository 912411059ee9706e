//! `aks-patch report`: the nodes as `kubectl get nodes` shows them, with patch state.
//! No SSH: ARM, the Kubernetes API, and what aks-patch recorded before (the last scan and
//! the apply journal), so it is fast.

use super::context::{self, PoolInfo};
use super::{scans, Outcome};
use crate::cli::ReportArgs;
use crate::kube::NodeInfo;
use crate::output::nodes::NodeColumns;
use crate::output::{Column, Exit, Reporter, TableSpec};
use crate::rollout::record_store::RunRecords;
use crate::settings::Settings;
use jiff::Timestamp;
use serde::Serialize;

/// One node in the report: kubectl's columns, then what aks-patch knows of its patching
/// (`-o json` field names are stable and documented).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReportRow {
    #[serde(flatten)]
    pub node: NodeColumns,
    pub pool: Option<String>,
    /// `linux`, `windows` (label `kubernetes.io/os`).
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

/// The report's row of `node` (AGE as of `now`): its `pool` as ARM describes it, the last
/// scan of it if that scan saw its current boot, and when aks-patch last patched it.
pub fn row(
    node: &NodeInfo,
    pool: Option<&PoolInfo>,
    last_scan: Option<&scans::NodeScan>,
    last_patched: Option<&str>,
    now: Timestamp,
) -> ReportRow {
    // A scan from before the node's last boot no longer says whether it needs one: compare
    // the bootID the scan saw with the node's (older records: the kernel).
    let same_boot = |s: &&scans::NodeScan| match (&s.boot_id, &node.boot_id) {
        (Some(then), Some(now)) => then == now,
        _ => s.running_kernel.is_empty() || Some(&s.running_kernel) == node.kernel_version.as_ref(),
    };
    let scan = last_scan.filter(|s| !node.is_windows() && same_boot(s));
    ReportRow {
        node: NodeColumns::of(node, now),
        pool: node.pool.clone(),
        os_type: node.os_type.as_ref().map(|t| t.as_str().to_string()),
        node_image_version: node
            .node_image_version
            .clone()
            .or_else(|| pool.and_then(|p| p.node_image_version.clone())),
        latest_node_image_version: pool.and_then(|p| p.latest_node_image_version.clone()),
        reboot_required: scan.map(|s| s.reboot_required),
        reboot_packages: scan.map(|s| s.reboot_packages.clone()).unwrap_or_default(),
        last_scanned: scan.map(|s| s.scanned_at.clone()),
        last_patched: last_patched.map(str::to_string),
        in_progress: node.in_progress.clone(),
    }
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
    let nodes = crate::kube::list_node_infos(&ctx.client, None)
        .await
        .map_err(|e| context::kube_failure("cannot list the cluster's nodes", e))?;
    let dir = settings.state_dir.clone();
    let last_scan = scans::load(&dir, &ctx.cluster.key);
    let place = context::record_place(args.run_record, &args.cluster, settings);
    let journal = context::run_records(place, dir.join("runs"), &ctx);
    let last_patched = match journal.last_patched(&ctx.cluster.key).await {
        Ok(m) => m,
        Err(e) => {
            reporter.warn(&format!("cannot read the run records: {e}"));
            Default::default()
        }
    };
    let now = Timestamp::now();
    let out: Vec<ReportRow> = nodes
        .iter()
        .map(|n| {
            row(
                n,
                ctx.pool(n.pool.as_deref().unwrap_or_default()),
                last_scan.get(&n.name),
                last_patched.get(&n.name).map(String::as_str),
                now,
            )
        })
        .collect();
    let unknown = nodes
        .iter()
        .zip(&out)
        .filter(|(n, r)| r.reboot_required.is_none() && !n.is_windows())
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
            r.node.name,
            r.in_progress.as_deref().unwrap_or_default()
        ));
    }
    if let Some(note) = super::apply::window::aks_note(&ctx, reporter).await {
        notes.push(note);
    }
    if args.global.output == crate::cli::OutputFormat::Prometheus {
        return Ok(prometheus(&ctx, &out, &last_scan, &journal, reporter).await);
    }
    let summary = (!notes.is_empty()).then(|| notes.join("\n"));
    Ok(Outcome {
        value: serde_json::to_value(&out)?,
        table: Some(table()),
        summary,
        exit: Exit::Ok,
    })
}

/// `report -o prometheus`: the gauges of the last scan (of the node's current boot) and of the
/// last run, labelled with the cluster, for node_exporter's textfile collector.
async fn prometheus(
    ctx: &context::ClusterContext,
    rows: &[ReportRow],
    last_scan: &std::collections::BTreeMap<String, scans::NodeScan>,
    journal: &RunRecords,
    reporter: &Reporter,
) -> Outcome {
    let nodes: Vec<crate::metrics::NodeScanMetrics> = rows
        .iter()
        .filter(|r| r.reboot_required.is_some())
        .filter_map(|r| {
            let s = last_scan.get(&r.node.name)?;
            Some(crate::metrics::NodeScanMetrics {
                node: r.node.name.clone(),
                pool: r.pool.clone().unwrap_or_default(),
                reboot_required: s.reboot_required,
                pending: s.pending_updates,
                security: s.security_updates,
            })
        })
        .collect();
    let mut families = crate::metrics::scan_families(&nodes);
    match journal.runs(&ctx.cluster.key).await {
        Ok(runs) => {
            if let Some(last) = runs
                .iter()
                .filter(|r| r.finished_at.is_some())
                .max_by_key(|r| r.started_at)
            {
                families.extend(crate::metrics::run_families(last));
            }
        }
        Err(e) => reporter.warn(&format!("cannot read the run records: {e}")),
    }
    let text = crate::metrics::exposition(&families, &[("cluster", ctx.cluster.name.as_str())]);
    Outcome {
        value: serde_json::Value::String(text),
        table: None,
        summary: None,
        exit: Exit::Ok,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kube::nodes::{AddressKind, NodeAddress, OsType, Readiness};

    fn node(name: &str, boot_id: &str) -> NodeInfo {
        NodeInfo {
            name: name.into(),
            readiness: Readiness::Ready,
            unschedulable: false,
            taints: vec![],
            roles: vec!["agent".into()],
            created: Some("2025-03-01T12:00:00Z".parse().unwrap()),
            kubelet_version: Some("v1.31.5".into()),
            kernel_version: Some("5.15.0-1068-azure".into()),
            os_image: Some("Ubuntu 22.04.5 LTS".into()),
            container_runtime: Some("containerd://1.7.25-1".into()),
            addresses: vec![NodeAddress {
                kind: AddressKind::InternalIp,
                address: "10.224.0.5".into(),
            }],
            pool: Some("user".into()),
            zone: None,
            os_type: Some(OsType::Linux),
            os_sku: Some("Ubuntu".into()),
            node_image_version: None,
            boot_id: Some(boot_id.into()),
            in_progress: None,
        }
    }

    fn scan(boot_id: Option<&str>, kernel: &str) -> scans::NodeScan {
        scans::NodeScan {
            scanned_at: "2025-03-20T10:00:00Z".into(),
            reboot_required: true,
            reboot_packages: vec!["linux-image-azure".into()],
            pending_updates: 3,
            security_updates: Some(1),
            running_kernel: kernel.into(),
            boot_id: boot_id.map(String::from),
        }
    }

    fn now() -> Timestamp {
        "2025-03-20T12:00:00Z".parse().unwrap()
    }

    #[test]
    fn a_row_is_kubectls_columns_then_the_patch_state_in_stable_field_order() {
        let pool = PoolInfo {
            name: "user".into(),
            node_image_version: Some("AKSUbuntu-2204gen2containerd-202501.12.0".into()),
            latest_node_image_version: Some("AKSUbuntu-2204gen2containerd-202503.01.0".into()),
            ..Default::default()
        };
        let r = row(
            &node("n1", "b1"),
            Some(&pool),
            Some(&scan(Some("b1"), "5.15.0-1068-azure")),
            Some("2025-03-10T08:00:00Z"),
            now(),
        );
        let json = serde_json::to_value(&r).unwrap();
        let keys: Vec<&str> = json.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "name",
                "status",
                "roles",
                "age",
                "version",
                "internalIp",
                "externalIp",
                "osImage",
                "kernelVersion",
                "containerRuntime",
                "pool",
                "osType",
                "nodeImageVersion",
                "latestNodeImageVersion",
                "rebootRequired",
                "rebootPackages",
                "lastScanned",
                "lastPatched",
                "inProgress"
            ]
        );
        assert_eq!(json["status"], "Ready");
        assert_eq!(json["age"], "19d");
        assert_eq!(json["osType"], "linux");
        // The node carries no image label: the pool's image stands in.
        assert_eq!(json["nodeImageVersion"], "AKSUbuntu-2204gen2containerd-202501.12.0");
        assert_eq!(json["rebootRequired"], true);
        assert_eq!(json["rebootPackages"], serde_json::json!(["linux-image-azure"]));
        assert_eq!(json["lastPatched"], "2025-03-10T08:00:00Z");
    }

    #[test]
    fn a_scan_of_an_earlier_boot_says_nothing_about_the_reboot_now() {
        let n = node("n1", "b2");
        let r = row(&n, None, Some(&scan(Some("b1"), "5.15.0-1068-azure")), None, now());
        assert_eq!((r.reboot_required, r.last_scanned), (None, None));
        assert!(r.reboot_packages.is_empty());
        // Older scans recorded no bootID: the kernel tells instead.
        let r = row(&n, None, Some(&scan(None, "5.15.0-1068-azure")), None, now());
        assert_eq!(r.reboot_required, Some(true));
        let r = row(&n, None, Some(&scan(None, "5.15.0-1067-azure")), None, now());
        assert_eq!(r.reboot_required, None);
    }

    #[test]
    fn a_windows_node_has_no_reboot_state_and_a_cordoned_one_says_so() {
        let mut n = node("akswin000000", "b1");
        n.os_type = Some(OsType::Windows);
        n.unschedulable = true;
        let r = row(&n, None, Some(&scan(Some("b1"), "")), None, now());
        assert_eq!(r.reboot_required, None);
        assert_eq!(r.os_type.as_deref(), Some("windows"));
        assert_eq!(r.node.status, "Ready,SchedulingDisabled");
    }
}
