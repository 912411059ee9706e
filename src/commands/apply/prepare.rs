//! `apply`'s pre-flight against the cluster, before anything changes: the plan (or the one
//! a resumed run left), the read-only probe of the nodes to patch (the before-table), and
//! what would certainly stop the rollout half-way: unreachable nodes, Azure Linux nodes the
//! options cannot patch, drains that cannot succeed, kured's lock, the cluster's health and
//! the identity's permissions.

use super::azure_linux;
use super::input::{api_message, drain_options, marked_by, nothing_selected};
use super::view::{plan_table, plan_value};
use crate::cli::ApplyArgs;
use crate::commands::context;
use crate::commands::scan::{candidate_via, node_timeout, scan_nodes, ScanRow};
use crate::kube::{self as k, DrainOptions, NodeInfo};
use crate::output::{self, Exit, Failure, Reporter};
use crate::rollout::gate::{self, Blocker};
use crate::rollout::journal::enum_text;
use crate::rollout::journal::{self, NodeState, RunRecord};
use crate::rollout::plan::{self, Filters, PlanEntry};
use crate::rollout::preflight;
use crate::rollout::resume::resume_plan;
use crate::rollout::stop::RunStop;
use crate::ssh::SshOptions;
use crate::transport::{NodeShell, Via};
use std::collections::BTreeMap;
use std::time::Duration;

/// What the pre-flight found: the plan, and what the rollout starts from.
pub(super) struct Prepared {
    /// The unfinished run this one continues (`--resume`).
    pub resumed: Option<RunRecord>,
    pub options: journal::RunOptions,
    pub drain_opts: DrainOptions,
    /// The runs this one continues: nodes marked by any of them are ours to finish.
    pub chain: Vec<String>,
    /// The cluster's nodes as listed at the start (with `--selector`).
    pub rows: Vec<NodeInfo>,
    pub entries: Vec<PlanEntry>,
    /// The probe of every node to patch, before any change.
    pub before_by_name: BTreeMap<String, ScanRow>,
    pub plan_value: serde_json::Value,
    pub checks: Vec<preflight::NodeCheck>,
    /// The node kured holds its lock for, if it does.
    pub kured: Option<String>,
    /// Nodes marked in progress by this run's chain (not counted as out by the gate).
    pub ours_in_cluster: Vec<String>,
    /// What the health gate finds now.
    pub gate_now: Vec<Blocker>,
}

impl Prepared {
    /// The nodes the resumed run left out of service that are still in the cluster: this run
    /// finishes them first, whatever holds the others.
    pub fn left_out(&self) -> Vec<&str> {
        self.resumed
            .iter()
            .flat_map(|p| p.nodes.iter())
            .filter(|n| n.left_out() && self.rows.iter().any(|r| r.name == n.name))
            .map(|n| n.name.as_str())
            .collect()
    }

    /// What the pre-flight refuses (a drain certain to fail, kured rebooting a node): `Err`
    /// with nothing changed; or, for a resume with nodes left out of service, `Ok(Some)`: the
    /// stop with which the run ends once it has finished those (it starts no other node).
    pub fn refusal(&self, reporter: &Reporter) -> Result<Option<RunStop>, Failure> {
        let left_out = self.left_out();
        let (own, others): (Vec<_>, Vec<_>) = self
            .checks
            .iter()
            .cloned()
            .partition(|c| left_out.contains(&c.node.as_str()));
        let hold = |message: String, hint: &str, stop: fn(String) -> RunStop| {
            reporter.warn(&format!(
                "{message}: finishing only {} (left out of service by the interrupted run)",
                left_out.join(", ")
            ));
            stop(format!("not starting another node: {message}; {hint}"))
        };
        // Drains certain to fail; then pods with nowhere to go, unless --allow-pending-pods.
        let allow_pending = self.options.allow_pending_pods;
        let verdict = |checks: &[preflight::NodeCheck]| {
            preflight::certain_failures(checks).or_else(|| {
                if allow_pending {
                    None
                } else {
                    preflight::pending_pods(checks)
                }
            })
        };
        if allow_pending {
            if let Some(r) = preflight::pending_pods(&self.checks) {
                reporter.warn(&format!(
                    "{} (--allow-pending-pods: the node is taken out anyway)",
                    r.message.replace("; nothing was changed", "")
                ));
            }
        }
        if let Some(r) = verdict(&self.checks) {
            if left_out.is_empty() || verdict(&own).is_some() {
                return Err(Failure::new(Exit::Usage, r.message).hint(r.hint));
            }
            let r = verdict(&others).unwrap_or(r);
            let message = r.message.replace("; nothing was changed", "");
            return Ok(Some(hold(message, &r.hint, RunStop::Refused)));
        }
        if let Some(h) = &self.kured {
            let message = format!("kured holds its reboot lock for {h}: it is rebooting that node");
            let hint = "wait for kured to finish (or pause it), then run again";
            if left_out.is_empty() {
                return Err(Failure::new(Exit::LockHeld, format!("{message}; nothing was changed")).hint(hint));
            }
            return Ok(Some(hold(message, hint, RunStop::KuredRebooting)));
        }
        Ok(None)
    }
}

#[allow(clippy::too_many_arguments)]
pub(super) async fn prepare(
    args: &ApplyArgs,
    settings: &crate::settings::Settings,
    ctx: &context::ClusterContext,
    resumed: Option<RunRecord>,
    options: journal::RunOptions,
    via: Via,
    ssh_opts: &SshOptions,
    shell: &dyn NodeShell,
    reporter: &Reporter,
) -> anyhow::Result<Prepared> {
    // What to patch, in which order, with which options (a resume's: the record's, merged
    // and checked before).
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
        k::list_node_infos(&ctx.client, args.selector.as_deref()),
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
            let cands: Vec<_> = rows.iter().map(|r| candidate_via(ctx, r, via)).collect();
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
    let planned_rows: Vec<NodeInfo> = rows
        .iter()
        .filter(|r| entries.iter().any(|e| e.name == r.name && e.patch()))
        .cloned()
        .collect();
    let timeout = node_timeout(via, ssh_opts, &args.via, false);
    let before = scan_nodes(ctx, &planned_rows, shell, via, timeout, 16, false, reporter).await;
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
        output::OutputFormat::Table,
        None,
        false,
    )?);

    // A node an interrupted run left rebooting may still be down: resuming waits for it.
    let rebooting = |name: &str| {
        resumed
            .as_ref()
            .is_some_and(|p| p.nodes.iter().any(|n| n.name == name && n.left_out()))
    };
    // A node that is down (not Ready) cannot be reached either: that is the health gate's
    // verdict to give (no node is taken out beside it), not a pre-flight failure.
    let down = |name: &str| rows.iter().any(|r| r.name == name && !r.is_ready());
    let unreachable: Vec<&ScanRow> = before
        .iter()
        .filter(|r| {
            r.error.is_some()
                && !rebooting(&r.name)
                && !down(&r.name)
                && entries.iter().any(|e| e.name == r.name && e.patch())
        })
        .collect();
    if let Some(r) = unreachable.first() {
        // A node another run has out (rebooting, say) cannot be reached: say whose it is.
        let marked = rows
            .iter()
            .find(|x| x.name == r.name)
            .and_then(|x| x.in_progress.clone())
            .filter(|run| !chain.contains(run));
        if let Some(run) = marked {
            let lock = super::other_run::run_lock(&ctx.client, settings, &run).await;
            return Err(super::other_run::OtherRun::of(lock.as_ref())
                .refusal(&r.name, &run)
                .into());
        }
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
    // Nodes the interrupted run left cordoned, which this run uncordons before any other is
    // taken out: a place for the pods of the nodes after them.
    let coming_back: Vec<String> = resumed
        .iter()
        .flat_map(|p| p.nodes.iter())
        .filter(|n| n.left_out() && !n.was_cordoned)
        .map(|n| n.name.clone())
        .collect();
    let checks = preflight::drains(
        &ctx.client,
        &entries,
        &before_by_name,
        &drain_opts,
        options.reboot,
        &resume_states,
        &coming_back,
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
    Ok(Prepared {
        resumed,
        options,
        drain_opts,
        chain,
        rows,
        entries,
        before_by_name,
        plan_value,
        checks,
        kured,
        ours_in_cluster,
        gate_now,
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
