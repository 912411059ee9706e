//! `apply`'s pre-flight against the cluster, before anything changes: the plan (or the one
//! a resumed run left), the read-only probe of the nodes to patch (the before-table), and
//! the checks of [`crate::rollout::preflight`], whose verdict the run follows.

use super::input::{api_message, drain_options};
use super::view::{plan_table, plan_value};
use super::{other_run, Reach, Session};
use crate::commands::context;
use crate::commands::scan::{candidate_via, node_timeout, probe_nodes, scan_rows, Probing};
use crate::kube::{self as k, DrainOptions, NodeInfo};
use crate::output::refusal::{message, would_refuse};
use crate::output::{self, Exit, Failure};
use crate::rollout::gate::{self, Blocker};
use crate::rollout::journal::enum_text;
use crate::rollout::journal::{RunOptions, RunRecord};
use crate::rollout::plan::{self, Filters, PlanEntry};
use crate::rollout::preflight::{self, access, nodes, Findings, NodeCheck, Verdict};
use crate::rollout::probed::ProbedNode;
use crate::rollout::resume;
use std::time::Duration;

/// What the pre-flight found: the plan, and what the rollout starts from.
pub(super) struct Prepared {
    /// The unfinished run this one continues (`--resume`).
    pub resumed: Option<RunRecord>,
    pub options: RunOptions,
    pub drain_opts: DrainOptions,
    /// The runs this one continues: nodes marked by any of them are ours to finish.
    pub chain: Vec<String>,
    /// The cluster's nodes as listed at the start (with `--selector`).
    pub rows: Vec<NodeInfo>,
    pub entries: Vec<PlanEntry>,
    /// The probe of every node to patch, before any change.
    pub probes: Vec<ProbedNode>,
    pub plan_value: serde_json::Value,
    pub checks: Vec<NodeCheck>,
    /// The node kured holds its lock for, if it does.
    pub kured: Option<String>,
    /// Nodes marked in progress by this run's chain (not counted as out by the gate).
    pub ours_in_cluster: Vec<String>,
    /// What the health gate finds now.
    pub gate_now: Vec<Blocker>,
    /// What the pre-flight makes of the run.
    pub verdict: Verdict,
}

impl Prepared {
    /// How many nodes may be out when the run starts (the gate before the lock): one at a
    /// time, none; a count, that many; a percentage of each pool: the batches' planner
    /// decides per pool.
    pub fn start_budget(&self) -> crate::rollout::gate::Budget {
        use crate::rollout::batches::MaxUnavailable;
        let allowed = match self.options.max_unavailable {
            None => 1,
            Some(MaxUnavailable::Nodes(n)) => n as usize,
            Some(MaxUnavailable::Percent(_)) => usize::MAX,
        };
        crate::rollout::gate::Budget { allowed, scope: None }
    }

    /// The nodes the resumed run left out of service that are still in the cluster: this run
    /// finishes them first, whatever holds the others.
    pub fn left_out(&self) -> Vec<&str> {
        resume::left_out_in_cluster(self.resumed.as_ref(), &self.rows)
    }
}

pub(super) async fn prepare(
    s: &Session<'_>,
    reach: &Reach,
    resumed: Option<RunRecord>,
    options: RunOptions,
) -> anyhow::Result<Prepared> {
    // What to patch, in which order, with which options (a resume's: the record's, merged
    // and checked before).
    let drain_opts = drain_options(&options, s.args.eviction_retry_interval);
    let chain = resume::chain(resumed.as_ref());
    let rows = list_nodes(s, options.selection.selector.as_deref()).await?;
    let entries = plan_entries(s, reach, &options, resumed.as_ref(), &rows)?;
    if let Some(r) = nodes::nothing_selected(&entries, &options.selection, resumed.is_some()) {
        return Err(r.into());
    }
    if entries.iter().all(|e| !e.patch()) {
        s.reporter
            .info("nothing to patch: no Linux node of the selection can be patched in place");
    }
    let (probes, plan_value) = before_table(s, reach, &options, &rows, &entries).await?;

    // Pre-flight, part 2: what will certainly fail, before anything changes.
    check_nodes(s, reach, &probes, &entries, &rows, resumed.as_ref(), &options).await?;
    let checks = preflight::drains(
        &s.ctx.client,
        &entries,
        &probes,
        &drain_opts,
        options.reboot,
        resumed.as_ref(),
    )
    .await
    .map_err(|(what, e)| context::kube_failure(&what, e))?;
    let kured = k::kured_lock_holder(&s.ctx.client)
        .await
        .map_err(|e| anyhow::Error::new(e).context("cannot read kured's lock"))?;
    let ours_in_cluster = resume::ours_in_cluster(&rows, &chain);
    let gate_now = gate::check(&s.ctx.client, &ours_in_cluster, &[])
        .await
        .map_err(|e| context::kube_failure("cannot check the cluster's health", e))?;
    check_permissions(s, &entries, &checks).await?;
    let left_out = resume::left_out_in_cluster(resumed.as_ref(), &rows);
    let verdict = preflight::verdict(&Findings {
        checks: &checks,
        kured: kured.as_deref(),
        left_out: &left_out,
        allow_pending_pods: options.allow_pending_pods,
    });
    Ok(Prepared {
        resumed,
        options,
        drain_opts,
        chain,
        rows,
        entries,
        probes,
        plan_value,
        checks,
        kured,
        ours_in_cluster,
        gate_now,
        verdict,
    })
}

/// The plan: a resumed run's (its record's nodes, in its order), or the selection's.
fn plan_entries(
    s: &Session<'_>,
    reach: &Reach,
    options: &RunOptions,
    resumed: Option<&RunRecord>,
    rows: &[NodeInfo],
) -> anyhow::Result<Vec<PlanEntry>> {
    let mut entries = match resumed {
        Some(prev) => resume::resume_plan(prev, rows),
        None => {
            let cands: Vec<_> = rows.iter().map(|r| candidate_via(&s.ctx, r, reach.via)).collect();
            let filters = Filters {
                nodepools: options.selection.nodepools.clone(),
                nodes: options.selection.nodes.clone(),
            };
            plan::plan(&cands, &s.ctx.pool_order(), &filters, &s.ctx.az_args)
                .map_err(|e| anyhow::Error::new(output::WithExit::wrap(e, Exit::Usage)))?
        }
    };
    // In a pod: the node it runs on is left to a later run, whose pod runs elsewhere (a
    // resumed run's pod may run on a node the interrupted one left to do).
    if let Some(me) = &s.ctx.in_cluster {
        leave_own_node(s, me, resumed, &mut entries)?;
    }
    Ok(entries)
}

/// The pod's own node left out of the plan; a pod that cannot read itself does not start
/// (its drain could evict the run itself); one whose `HOSTNAME` names no pod is warned.
fn leave_own_node(
    s: &Session<'_>,
    me: &crate::kube::client::InClusterIdentity,
    resumed: Option<&RunRecord>,
    entries: &mut [PlanEntry],
) -> anyhow::Result<()> {
    use crate::kube::client::OwnNode;
    match &me.node {
        // Out of service in the interrupted run's hands (the pod scheduled there before its
        // cordon): the resumed run must put it back, and says what that drain risks.
        OwnNode::Known(node)
            if resumed.is_some_and(|prev| prev.nodes.iter().any(|n| n.name == *node && n.in_hand)) =>
        {
            s.reporter.warn(&format!(
                "this pod runs on {node}, which the interrupted run left out of service: the run finishes it, and its drain evicts the run itself (a later `--resume`, from a pod on another node, finishes it then)"
            ));
        }
        OwnNode::Known(node) => {
            plan::leave_own_node(entries, node, me.pod.as_deref().unwrap_or_default());
        }
        OwnNode::Unknown => {}
        OwnNode::NotFound { pod } => s.reporter.warn(&format!(
            "there is no pod {}/{pod} (HOSTNAME) on a node: the node this run's pod runs on is not known, and if it is patched its drain evicts the run itself (a pod whose hostname is not its name); nothing is left out for it",
            me.namespace
        )),
        OwnNode::Unreadable { pod, error, status } => {
            let why = format!(
                "cannot read this pod {}/{pod} to tell which node it runs on, which the run must not drain (it would evict itself): {error}; nothing was changed",
                me.namespace
            );
            if matches!(status, Some(401 | 403)) {
                return Err(crate::rollout::refusal::Refusal::new(crate::rollout::refusal::Obstacle::Permissions, why)
                    .hint(format!(
                        "grant the ServiceAccount `get` on pods in namespace {} (deploy/'s ClusterRole does)",
                        me.namespace
                    ))
                    .into());
            }
            return Err(Failure::new(Exit::Failure, why)
                .hint("run it again once the API server answers")
                .into());
        }
    }
    Ok(())
}

/// The before-table: the read-only probe of the nodes to patch, and the plan shown with it.
async fn before_table(
    s: &Session<'_>,
    reach: &Reach,
    options: &RunOptions,
    rows: &[NodeInfo],
    entries: &[PlanEntry],
) -> anyhow::Result<(Vec<ProbedNode>, serde_json::Value)> {
    let ctx = &s.ctx;
    let planned_rows: Vec<NodeInfo> = rows
        .iter()
        .filter(|r| entries.iter().any(|e| e.name == r.name && e.patch()))
        .cloned()
        .collect();
    let how = Probing {
        via: reach.via,
        timeout: node_timeout(reach.via, &reach.ssh_opts, reach.connect_timeout, false),
        parallel: options.transport.parallel as usize,
        refresh: false,
    };
    let probes = probe_nodes(ctx, &planned_rows, &*reach.shell, &how, s.reporter).await;
    let plan_value = plan_value(entries, &scan_rows(ctx, &planned_rows, &probes, reach.via), rows);
    s.reporter.info(&format!(
        "Plan for {} ({}): {}, pool by pool, nodes by name; upgrade mode {}, reboot {}",
        ctx.cluster.name,
        ctx.cluster.key,
        match options.max_unavailable {
            Some(m) => format!("in batches of at most {m} out at once"),
            None => "one node at a time".to_string(),
        },
        enum_text(&options.upgrade_mode),
        enum_text(&options.reboot)
    ));
    s.reporter.info(&output::render(
        &plan_value,
        Some(&plan_table()),
        output::OutputFormat::Table,
        None,
        false,
    )?);
    Ok((probes, plan_value))
}

/// The nodes to patch as probed: one that cannot be probed refuses the run (naming the run
/// that has it out, if one does), and so do Azure Linux nodes the options cannot patch
/// (`--dry-run` says so and goes on).
async fn check_nodes(
    s: &Session<'_>,
    reach: &Reach,
    probes: &[ProbedNode],
    entries: &[PlanEntry],
    rows: &[NodeInfo],
    resumed: Option<&RunRecord>,
    options: &RunOptions,
) -> anyhow::Result<()> {
    if let Some((name, why)) = nodes::unreachable(probes, entries, rows, resumed) {
        // A node another run has out (rebooting, say) cannot be reached: say whose it is.
        let marked = rows
            .iter()
            .find(|x| x.name == name)
            .and_then(|x| x.in_progress.clone())
            .filter(|run| !resume::chain(resumed).contains(run));
        return Err(match marked {
            Some(run) => other_run(&s.ctx, s.settings, &run).await.refusal(name, &run),
            None if reach.via == crate::transport::Via::Ssh && s.settings.in_pod() => {
                nodes::cannot_probe(name, why, reach.via).hint(IN_POD_NO_SSH)
            }
            None => nodes::cannot_probe(name, why, reach.via),
        }
        .into());
    }
    let planned: Vec<&ProbedNode> = probes
        .iter()
        .filter(|p| entries.iter().any(|e| e.name == p.name && e.patch()))
        .collect();
    if let Some(r) = nodes::azure_linux(&planned, options) {
        if !s.args.dry_run {
            return Err(r.into());
        }
        // --dry-run shows everything that would refuse the run, and changes nothing anyway.
        s.reporter.warn(&format!(
            "{}{}",
            would_refuse(&r),
            r.hint.as_ref().map(|h| format!(" ({h})")).unwrap_or_default()
        ));
    }
    Ok(())
}

/// The permissions the rollout will use, asked now (a missing one would stop it half-way):
/// refused, or said by `--dry-run`.
async fn check_permissions(s: &Session<'_>, entries: &[PlanEntry], checks: &[NodeCheck]) -> anyhow::Result<()> {
    if !entries.iter().any(PlanEntry::patch) {
        return Ok(());
    }
    let mut needs = access::rollout_needs(checks);
    needs.extend(s.journal.needs());
    let denied = k::access::denied(&s.ctx.client, &needs)
        .await
        .map_err(|e| context::kube_failure("cannot check this identity's permissions", e))?;
    if let Some(mut r) = access::permissions(&denied) {
        if let Some(me) = &s.ctx.in_cluster {
            r = r.hint(format!(
                "this pod runs as ServiceAccount {}/{}: grant what deploy/ grants it (kubectl apply -k deploy/), or bind it to the ClusterRole in docs/rbac.yaml",
                me.namespace,
                me.service_account.as_deref().unwrap_or("default")
            ));
        }
        if !s.args.dry_run {
            return Err(r.into());
        }
        s.reporter
            .warn(&format!("{}; {}", message(&r), r.hint.as_deref().unwrap_or_default()));
    }
    Ok(())
}

/// The cluster's nodes (those of `selector`, the run's `--selector`), within
/// `--request-timeout`.
async fn list_nodes(s: &Session<'_>, selector: Option<&str>) -> anyhow::Result<Vec<NodeInfo>> {
    let (args, ctx) = (&s.args, &s.ctx);
    let listed = tokio::time::timeout(
        Duration::from_secs(args.request_timeout),
        k::list_node_infos(&ctx.client, selector),
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
    match listed {
        Ok(rows) => Ok(rows),
        // The API server judges the selector, as it does for kubectl -l.
        Err(e) if e.status_code() == Some(400) && selector.is_some() => Err(Failure::new(
            Exit::Usage,
            format!(
                "invalid --selector `{}`: the API server says: {}",
                selector.unwrap_or_default(),
                api_message(&e)
            ),
        )
        .hint("use Kubernetes label selector syntax, e.g. `agentpool=user` or `kubernetes.azure.com/mode in (user)`")
        .into()),
        Err(e) => Err(context::kube_failure("cannot list the cluster's nodes", e)),
    }
}

/// The hint for a node SSH cannot reach from inside a pod.
pub(super) const IN_POD_NO_SSH: &str = "aks-patch runs in a pod here (KUBERNETES_SERVICE_HOST is set), and pods have no SSH path to the nodes: leave out --via ssh (in a pod the default is --via kube, through node-shell pods), or run it from a machine that can reach the nodes";
