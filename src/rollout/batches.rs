//! Which nodes go out together under `apply --max-unavailable N|P%`: pure decisions over a
//! [`ClusterSnapshot`], no I/O.
//!
//! A batch is made greedily in plan order ([`next_batch`]). Its first node fixes its zone
//! (`topology.kubernetes.io/zone`; nodes without the label are a zone of their own) unless
//! the run goes across zones. A node joins while
//! - **the budget holds**: the nodes out of service for any reason ([`out_of_service`]) and
//!   the batch's nodes, in the node's scope (the cluster for a count, the node's pool for a
//!   percentage), are at most the budget ([`MaxUnavailable::budget`]);
//! - **PodDisruptionBudgets allow it**: the batch's drains evict at most each budget's
//!   `disruptionsAllowed` of its pods;
//! - **the evicted pods fit** on the Ready schedulable nodes that stay, by the scheduler's
//!   filters and by room, placed one by one, largest first ([`crate::kube::schedule::place`]).
//!
//! A node left out for PDBs or room is tried again in a later batch; the batch's [`Limit`]s
//! say what made it smaller. When the first node cannot go alone, the plan holds ([`Hold`]).
//! [`plan_batches`] makes the whole plan (`--dry-run`), each batch's nodes going out and
//! coming back with their pods moved where they were placed; [`budget_allows`] is the check
//! before each cordon inside a batch.

use super::gate::node_down_reason;
use crate::kube::drain::plan::drain_evicts;
use crate::kube::drain::{in_progress_run, selector_matches, DrainOptions};
use crate::kube::objects::{ObjectRef, PodRef};
use crate::kube::schedule::place::{Placed, Places, State};
use crate::kube::schedule::room::{pod_requests, Resources};
use crate::kube::schedule::{replaced_elsewhere, Nowhere, Stranded};
use crate::kube::snapshot::{node_name, pod_node, pool_of, zone_of, ClusterSnapshot};
use ::kube::core::{Selector, SelectorExt};
use k8s_openapi::api::core::v1::{Node, Pod};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::str::FromStr;

/// How many nodes may be out of service at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MaxUnavailable {
    /// This many nodes of the cluster.
    Nodes(u32),
    /// This share of each pool's nodes, rounded down, at least one.
    Percent(u32),
}

/// A `--max-unavailable` that is not a count or a percentage of nodes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{given}` is not a number of nodes: give a count of nodes (1 or more, such as 3) or a percentage of each pool's nodes (1% to 100%, such as 10%)")]
pub struct MaxUnavailableError {
    pub given: String,
}

impl FromStr for MaxUnavailable {
    type Err = MaxUnavailableError;

    fn from_str(s: &str) -> Result<MaxUnavailable, MaxUnavailableError> {
        let err = || MaxUnavailableError { given: s.to_string() };
        let t = s.trim();
        let digits = |d: &str| !d.is_empty() && d.bytes().all(|c| c.is_ascii_digit());
        match t.strip_suffix('%') {
            Some(p) if digits(p) => match p.parse::<u32>() {
                Ok(p @ 1..=100) => Ok(MaxUnavailable::Percent(p)),
                _ => Err(err()),
            },
            Some(_) => Err(err()),
            None if digits(t) => match t.parse::<u32>() {
                Ok(n @ 1..) => Ok(MaxUnavailable::Nodes(n)),
                _ => Err(err()),
            },
            None => Err(err()),
        }
    }
}

impl fmt::Display for MaxUnavailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MaxUnavailable::Nodes(n) => write!(f, "{n}"),
            MaxUnavailable::Percent(p) => write!(f, "{p}%"),
        }
    }
}

impl MaxUnavailable {
    /// How many nodes of a scope of `pool_size` nodes may be out: a count whatever the size
    /// (it is the cluster's), a percentage of the pool rounded down, at least 1.
    pub fn budget(self, pool_size: usize) -> usize {
        match self {
            MaxUnavailable::Nodes(n) => n as usize,
            MaxUnavailable::Percent(p) => (pool_size * p as usize / 100).max(1),
        }
    }

    fn per_pool(self) -> bool {
        matches!(self, MaxUnavailable::Percent(_))
    }
}

/// What a budget counts against.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scope {
    /// `--max-unavailable N`: the whole cluster.
    Cluster,
    /// `--max-unavailable P%`: one pool (`None`: the nodes without a pool label).
    Pool(Option<String>),
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scope::Cluster => write!(f, "the cluster"),
            Scope::Pool(Some(p)) => write!(f, "pool {p}"),
            Scope::Pool(None) => write!(f, "the nodes without a pool label"),
        }
    }
}

/// Why a node counts as out of service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutReason {
    /// Down by itself: NotReady, Unknown, tainted not-ready/unreachable (the words of
    /// [`node_down_reason`]).
    Down(String),
    /// In the hands of an aks-patch run (its in-progress mark).
    Marked { run_id: String },
    /// Cordoned, and not by this run.
    Cordoned,
    /// Taken out by this batch.
    InBatch,
}

impl fmt::Display for OutReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OutReason::Down(why) => write!(f, "{why}"),
            OutReason::Marked { run_id } => write!(f, "out of service in aks-patch run {run_id}"),
            OutReason::Cordoned => write!(f, "cordoned"),
            OutReason::InBatch => write!(f, "in this batch"),
        }
    }
}

/// A node out of service, its pool and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutNode {
    pub node: String,
    pub pool: Option<String>,
    pub why: OutReason,
}

impl fmt::Display for OutNode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.node, self.why)
    }
}

/// The pod's Ready condition is True (what a PodDisruptionBudget counts as healthy).
fn pod_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

fn cordoned(node: &Node) -> bool {
    node.spec.as_ref().and_then(|s| s.unschedulable).unwrap_or(false)
}

/// Why `node` is out of service, if it is (an aks-patch mark first, then down, then cordoned).
fn out_reason(node: &Node) -> Option<OutReason> {
    if let Some(run_id) = in_progress_run(node) {
        return Some(OutReason::Marked {
            run_id: run_id.to_string(),
        });
    }
    if let Some(why) = node_down_reason(node) {
        return Some(OutReason::Down(why));
    }
    cordoned(node).then_some(OutReason::Cordoned)
}

/// The nodes of the cluster out of service for any reason: down (NotReady, Unknown, tainted
/// not-ready or unreachable), marked by an aks-patch run, or cordoned by someone else;
/// `in_hand`, the nodes this run has taken out, excepted.
pub fn out_of_service(snapshot: &ClusterSnapshot, in_hand: &[String]) -> Vec<OutNode> {
    snapshot
        .nodes
        .iter()
        .filter(|n| !in_hand.iter().any(|h| h == node_name(n)))
        .filter_map(|n| {
            out_reason(n).map(|why| OutNode {
                node: node_name(n).to_string(),
                pool: pool_of(n).map(str::to_string),
                why,
            })
        })
        .collect()
}

/// How batches are made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchRules {
    pub max: MaxUnavailable,
    /// `--across-zones`: a batch may take nodes of several zones.
    pub across_zones: bool,
    /// How the nodes are drained (which pods a drain evicts).
    pub drain: DrainOptions,
    /// The nodes still to do carry the run's pending `PreferNoSchedule` taint: evicted pods
    /// go to nodes already done (or not in the run) when they can. A plan made before the
    /// taints are put on counts them as there.
    pub pending_taint: bool,
}

/// What made a batch smaller than the plan's next nodes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Limit {
    /// The scope's budget is reached (`out`: nodes out of service there besides the batch).
    Budget { scope: Scope, budget: usize, out: usize },
    /// Nodes of other zones wait for a batch of their own.
    Zone { zone: Option<String>, waiting: usize },
    /// This node waits: its pods would not fit beside the batch's.
    Capacity { node: String, pods: Vec<Stranded> },
    /// This node waits: with it the batch would evict more of this budget's pods than it
    /// allows now.
    Pdb {
        node: String,
        pdb: ObjectRef,
        allowed: i32,
        evicted: i32,
    },
}

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Limit::Budget { scope, budget, out } => {
                write!(f, "{scope} allows {budget} node(s) out at once")?;
                if *out > 0 {
                    write!(f, " and has {out} out of service already")?;
                }
                Ok(())
            }
            Limit::Zone { zone, waiting } => write!(
                f,
                "one zone at a time ({}): {waiting} node(s) of other zones wait",
                zone_text(zone.as_deref())
            ),
            Limit::Capacity { node, pods } => write!(
                f,
                "{node} waits: its pods would not fit beside the batch's: {}",
                stranded_text(pods)
            ),
            Limit::Pdb {
                node,
                pdb,
                allowed,
                evicted,
            } => write!(
                f,
                "{node} waits: PodDisruptionBudget {pdb} allows {allowed} disruption(s) and the batch would evict {evicted} of its pods"
            ),
        }
    }
}

fn zone_text(zone: Option<&str>) -> String {
    match zone {
        Some(z) => format!("zone {z}"),
        None => "nodes without a zone".into(),
    }
}

fn stranded_text(pods: &[Stranded]) -> String {
    pods.iter().map(Stranded::to_string).collect::<Vec<_>>().join("; ")
}

/// Why the next node cannot go out, even alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hold {
    /// Its scope already has its budget's worth of nodes out.
    Budget {
        node: String,
        scope: Scope,
        budget: usize,
        out: Vec<OutNode>,
    },
    /// Some of the pods its drain evicts would fit nowhere.
    NoRoom { node: String, pods: Vec<Stranded> },
    /// A PodDisruptionBudget covering its pods allows no disruption now; `not_ready`: the
    /// budget's pods that are not Ready (what it waits for), with their nodes.
    Pdb {
        node: String,
        pdb: ObjectRef,
        pods: Vec<PodRef>,
        not_ready: Vec<(PodRef, Option<String>)>,
    },
}

impl fmt::Display for Hold {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Hold::Budget {
                node,
                scope,
                budget,
                out,
            } => write!(
                f,
                "{node} waits: {scope} allows {budget} node(s) out at once and has {} out: {}",
                out.len(),
                out.iter().map(OutNode::to_string).collect::<Vec<_>>().join(", ")
            ),
            Hold::NoRoom { node, pods } => {
                write!(
                    f,
                    "{node} waits: pods it evicts would fit nowhere: {}",
                    stranded_text(pods)
                )
            }
            Hold::Pdb {
                node,
                pdb,
                pods,
                not_ready,
            } => {
                write!(
                    f,
                    "{node} waits: PodDisruptionBudget {pdb} allows no disruption now (it covers {})",
                    pods.iter().map(PodRef::to_string).collect::<Vec<_>>().join(", ")
                )?;
                if !not_ready.is_empty() {
                    let waiting: Vec<String> = not_ready
                        .iter()
                        .map(|(p, n)| match n {
                            Some(n) => format!("{p} on {n}"),
                            None => format!("{p} (not scheduled)"),
                        })
                        .collect();
                    write!(f, "; not Ready: {}", waiting.join(", "))?;
                }
                Ok(())
            }
        }
    }
}

/// Nodes to take out together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    /// In plan order.
    pub nodes: Vec<String>,
    /// The batch's zone (`None`: nodes without a zone, or a batch across zones).
    pub zone: Option<String>,
    /// What made it smaller.
    pub limits: Vec<Limit>,
}

/// The next step of a rollout in batches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchPlan {
    /// Take these nodes out now (an empty batch: nothing is left to do).
    Batch(Batch),
    /// The next node cannot go out now, for these reasons.
    Hold(Vec<Hold>),
}

/// The batches of a whole rollout, as a dry run shows them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BatchesPlan {
    pub batches: Vec<Batch>,
    /// Where the plan stops, if it does: the nodes left and why the first cannot go.
    pub held: Option<Held>,
    /// The moves of pods the plan makes (evictions whose pods a controller replaces
    /// elsewhere; a pod moved twice counts twice).
    pub moves: usize,
    /// The pods it moves.
    pub pods_moved: usize,
    /// The pods it moves more than once (evicted again from a node it put them on).
    pub moved_again: usize,
}

/// The nodes a plan could not put in a batch, and why the first of them cannot go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held {
    pub left: Vec<String>,
    pub why: Vec<Hold>,
}

/// The next batch of the rollout: `todo` is the run's remaining nodes, in plan order.
pub fn next_batch(snapshot: &ClusterSnapshot, todo: &[String], rules: &BatchRules) -> BatchPlan {
    let mut planner = Planner::new(snapshot, rules, &[]);
    planner.pending(todo);
    planner.next(todo).0
}

/// The whole plan: batch after batch until every node of `todo` has one, each batch's nodes
/// going out and coming back, their evicted pods moved where they were placed. Nodes out of
/// service now stay out throughout.
pub fn plan_batches(snapshot: &ClusterSnapshot, todo: &[String], rules: &BatchRules) -> BatchesPlan {
    let mut planner = Planner::new(snapshot, rules, &[]);
    planner.pending(todo);
    let mut left: Vec<String> = todo.to_vec();
    let mut plan = BatchesPlan::default();
    let mut moved: HashMap<usize, usize> = HashMap::new();
    while !left.is_empty() {
        match planner.next(&left) {
            (BatchPlan::Batch(b), moves) => {
                for (pod, _) in &moves {
                    *moved.entry(*pod).or_default() += 1;
                }
                planner.done(&b.nodes, &moves);
                left.retain(|n| !b.nodes.contains(n));
                plan.batches.push(b);
            }
            (BatchPlan::Hold(why), _) => {
                plan.held = Some(Held { left, why });
                break;
            }
        }
    }
    plan.moves = moved.values().sum();
    plan.pods_moved = moved.len();
    plan.moved_again = moved.values().filter(|&&n| n > 1).count();
    plan
}

/// Whether `node` may be taken out now beside `batch` (this batch's nodes out or being taken
/// out): the check before each cordon inside a batch. A node that went down meanwhile
/// counts. `Err`: the nodes out in the node's scope, the batch's among them.
pub fn budget_allows(
    snapshot: &ClusterSnapshot,
    batch: &[String],
    node: &str,
    rules: &BatchRules,
) -> Result<(), Vec<OutNode>> {
    let pool = |name: &str| snapshot.node(name).and_then(pool_of).map(str::to_string);
    let scope = scope_of(rules.max, pool(node));
    let in_scope = |p: &Option<String>| match &scope {
        Scope::Cluster => true,
        Scope::Pool(s) => s == p,
    };
    let mut out: Vec<OutNode> = out_of_service(snapshot, batch)
        .into_iter()
        .filter(|o| in_scope(&o.pool))
        .collect();
    for b in batch {
        let p = pool(b);
        if in_scope(&p) {
            out.push(OutNode {
                node: b.clone(),
                pool: p,
                why: OutReason::InBatch,
            });
        }
    }
    let counted = out.len() + usize::from(!out.iter().any(|o| o.node == node));
    if counted <= rules.max.budget(scope_size(snapshot, &scope)) {
        Ok(())
    } else {
        Err(out)
    }
}

fn scope_of(max: MaxUnavailable, pool: Option<String>) -> Scope {
    if max.per_pool() {
        Scope::Pool(pool)
    } else {
        Scope::Cluster
    }
}

fn scope_size(snapshot: &ClusterSnapshot, scope: &Scope) -> usize {
    match scope {
        Scope::Cluster => snapshot.nodes.len(),
        Scope::Pool(p) => snapshot.nodes.iter().filter(|n| pool_of(n) == p.as_deref()).count(),
    }
}

/// A pod on the move in a plan: which pod (index in the snapshot) went where.
type Move = (usize, Placed);

/// The state of a plan being made: where each pod is, the room each node has left, which
/// nodes are out. Nodes are known by their index in the snapshot (and in [`Places`]).
struct Planner<'a> {
    snapshot: &'a ClusterSnapshot,
    rules: &'a BatchRules,
    places: Places<'a>,
    out: Vec<OutNode>,
    out_names: HashSet<String>,
    index: HashMap<&'a str, usize>,
    pools: Vec<Option<&'a str>>,
    zones: Vec<Option<&'a str>>,
    pool_sizes: HashMap<Option<&'a str>, usize>,
    /// Per node: the pods (indices into the snapshot) that a drain of it evicts now.
    evicts: Vec<Vec<usize>>,
    /// Per pod: the node it is on.
    at: Vec<Option<usize>>,
    /// Per pod: the PDBs (indices into the snapshot) that cover it (for evicted pods only).
    covered_by: Vec<Vec<usize>>,
}

impl<'a> Planner<'a> {
    fn new(snapshot: &'a ClusterSnapshot, rules: &'a BatchRules, in_hand: &[String]) -> Planner<'a> {
        let mut places = Places::new(&snapshot.nodes, &snapshot.pods, &[]);
        let out = out_of_service(snapshot, in_hand);
        for o in &out {
            places.set_state(&o.node, State::Out);
        }
        let index: HashMap<&str, usize> = snapshot
            .nodes
            .iter()
            .enumerate()
            .map(|(i, n)| (node_name(n), i))
            .collect();
        let pools: Vec<Option<&str>> = snapshot.nodes.iter().map(pool_of).collect();
        let zones = snapshot.nodes.iter().map(zone_of).collect();
        let mut pool_sizes = HashMap::new();
        for p in &pools {
            *pool_sizes.entry(*p).or_default() += 1;
        }
        // Each PDB's selector parsed once, by namespace (policy/v1: a null selector selects
        // nothing; one the API server would reject, nothing either).
        let mut selectors: HashMap<&str, Vec<(usize, Selector)>> = HashMap::new();
        for (b, pdb) in snapshot.pdbs.iter().enumerate() {
            let parsed = pdb
                .spec
                .as_ref()
                .and_then(|s| s.selector.clone())
                .and_then(|s| Selector::try_from(s).ok());
            if let Some(sel) = parsed {
                let ns = pdb.metadata.namespace.as_deref().unwrap_or("");
                selectors.entry(ns).or_default().push((b, sel));
            }
        }
        let mut evicts = vec![vec![]; snapshot.nodes.len()];
        let mut at = vec![None; snapshot.pods.len()];
        let mut covered_by = vec![vec![]; snapshot.pods.len()];
        for (i, p) in snapshot.pods.iter().enumerate() {
            let Some(n) = pod_node(p).and_then(|n| index.get(n).copied()) else {
                continue;
            };
            at[i] = Some(n);
            if !drain_evicts(p, &rules.drain) {
                continue;
            }
            evicts[n].push(i);
            let empty = BTreeMap::new();
            let labels = p.metadata.labels.as_ref().unwrap_or(&empty);
            let ns = p.metadata.namespace.as_deref().unwrap_or("");
            covered_by[i] = selectors
                .get(ns)
                .into_iter()
                .flatten()
                .filter(|(_, sel)| sel.matches(labels))
                .map(|(b, _)| *b)
                .collect();
        }
        let out_names = out.iter().map(|o| o.node.clone()).collect();
        Planner {
            snapshot,
            rules,
            places,
            out,
            out_names,
            index,
            pools,
            zones,
            pool_sizes,
            evicts,
            at,
            covered_by,
        }
    }

    /// The pods of PDB `b` that are not Ready, and their nodes.
    fn not_ready_of(&self, b: usize) -> Vec<(PodRef, Option<String>)> {
        let pdb = &self.snapshot.pdbs[b];
        let selector = pdb.spec.as_ref().and_then(|s| s.selector.as_ref());
        let empty = BTreeMap::new();
        self.snapshot
            .pods
            .iter()
            .filter(|p| p.metadata.namespace == pdb.metadata.namespace)
            .filter(|p| selector_matches(selector, p.metadata.labels.as_ref().unwrap_or(&empty)))
            .filter(|p| !pod_ready(p))
            .map(|p| (PodRef::of(p), pod_node(p).map(str::to_string)))
            .collect()
    }

    /// `todo` carries the pending taint, if the run puts it on.
    fn pending(&mut self, todo: &[String]) {
        if self.rules.pending_taint {
            for n in todo {
                self.places.set_pending(n, true);
            }
        }
    }

    fn pod(&self, i: usize) -> &'a Pod {
        &self.snapshot.pods[i]
    }

    fn zone(&self, name: &str) -> Option<&'a str> {
        self.index.get(name).and_then(|&i| self.zones[i])
    }

    fn pool(&self, name: &str) -> Option<&'a str> {
        self.index.get(name).and_then(|&i| self.pools[i])
    }

    /// The pods a drain of `node` evicts, where they are now.
    fn evicts(&self, node: &str) -> &[usize] {
        self.index.get(node).map_or(&[], |&i| self.evicts[i].as_slice())
    }

    fn pdb_ref(&self, i: usize) -> ObjectRef {
        let m = &self.snapshot.pdbs[i].metadata;
        ObjectRef::new(
            m.namespace.clone().unwrap_or_default(),
            m.name.clone().unwrap_or_default(),
        )
    }

    fn allowed(&self, i: usize) -> i32 {
        self.snapshot.pdbs[i]
            .status
            .as_ref()
            .and_then(|s| s.disruptions_allowed)
            .unwrap_or(0)
    }

    fn is_out(&self, node: &str) -> bool {
        self.out_names.contains(node)
    }

    /// Nodes out per pool: those out of service now (see [`Planner::taken`]).
    fn out_per_pool(&self) -> HashMap<Option<&'a str>, usize> {
        let mut taken = HashMap::new();
        for o in &self.out {
            *taken.entry(self.pool(&o.node)).or_default() += 1;
        }
        taken
    }

    /// `Err` when the scope of `node` would have more than its budget out with it; `taken`:
    /// the nodes out per pool, the batch's included.
    fn budget(&self, taken: &HashMap<Option<&'a str>, usize>, node: &str) -> Result<(), Hold> {
        let pool = self.pool(node);
        let per_pool = self.rules.max.per_pool();
        let (count, size) = if per_pool {
            (
                taken.get(&pool).copied().unwrap_or(0),
                self.pool_sizes.get(&pool).copied().unwrap_or(0),
            )
        } else {
            (taken.values().sum(), self.snapshot.nodes.len())
        };
        let count = count + usize::from(!self.is_out(node));
        let budget = self.rules.max.budget(size);
        if count <= budget {
            return Ok(());
        }
        let out = self
            .out
            .iter()
            .filter(|o| !per_pool || o.pool.as_deref() == pool)
            .cloned()
            .collect();
        Err(Hold::Budget {
            node: node.to_string(),
            scope: scope_of(self.rules.max, pool.map(str::to_string)),
            budget,
            out,
        })
    }

    /// The PDBs whose allowance `node`'s evictions would overrun beside `used` (the batch's
    /// evictions per PDB so far), with how many the batch would evict and `node`'s pods they
    /// cover. The first node of a batch only needs each to allow one: its drain evicts one
    /// pod after another as the budget allows.
    fn pdb_overruns(&self, used: &BTreeMap<usize, i32>, first: bool, node: &str) -> Vec<(usize, i32, Vec<PodRef>)> {
        let mut need: BTreeMap<usize, Vec<PodRef>> = BTreeMap::new();
        for &i in self.evicts(node) {
            for &b in &self.covered_by[i] {
                need.entry(b).or_default().push(PodRef::of(self.pod(i)));
            }
        }
        need.into_iter()
            .filter_map(|(b, pods)| {
                let evicted = if first {
                    1
                } else {
                    used.get(&b).copied().unwrap_or(0) + pods.len() as i32
                };
                (evicted > self.allowed(b)).then_some((b, evicted, pods))
            })
            .collect()
    }

    /// Place the pods of `node` (leaving with the batch), and those the batch had put on it,
    /// beside `moves`, largest first. `Err`: the pods that fit nowhere, and nothing changed.
    fn try_place(&mut self, moves: &mut Vec<Move>, node: &str) -> Result<(), Vec<Stranded>> {
        let Some(idx) = self.places.index_of(node) else {
            return Ok(());
        };
        let before = self.places.state(node);
        self.places.set_state(node, State::Leaving);
        let (displaced, kept): (Vec<Move>, Vec<Move>) = moves.iter().partition(|(_, p)| p.node == idx);
        let mut pods: Vec<(usize, Resources)> = self
            .evicts(node)
            .iter()
            .copied()
            .filter(|&i| replaced_elsewhere(self.pod(i)))
            .map(|i| (i, pod_requests(self.pod(i))))
            .collect();
        pods.extend(displaced.iter().map(|(i, p)| (*i, p.requests)));
        pods.sort_by_key(|(_, r)| std::cmp::Reverse((r.cpu_millis, r.memory_bytes)));
        let mut placed: Vec<Move> = vec![];
        let mut nowhere: Vec<(usize, Nowhere)> = vec![];
        for (i, _) in pods {
            let pod = self.pod(i);
            match self.places.place(pod) {
                Some(p) => placed.push((i, p)),
                None => nowhere.push((i, self.places.why_not(pod).unwrap_or(Nowhere::NoOtherNode))),
            }
        }
        if nowhere.is_empty() {
            for (_, p) in &displaced {
                self.places.unplace(*p);
            }
            *moves = kept;
            moves.extend(placed);
            return Ok(());
        }
        for (_, p) in placed {
            self.places.unplace(p);
        }
        if let Some(s) = before {
            self.places.set_state(node, s);
        }
        Err(nowhere
            .into_iter()
            .map(|(i, why)| Stranded {
                pod: PodRef::of(self.pod(i)),
                why,
            })
            .collect())
    }

    /// Put node `name` back in the state it had before a batch was tried with it.
    fn restore(&mut self, name: &str) {
        let state = if self.is_out(name) { State::Out } else { State::Open };
        self.places.set_state(name, state);
    }

    /// The next batch for `todo`, and where its evicted pods go. Leaves the planner as it was.
    fn next(&mut self, todo: &[String]) -> (BatchPlan, Vec<Move>) {
        let Some(first) = todo.first() else {
            let empty = Batch {
                nodes: vec![],
                zone: None,
                limits: vec![],
            };
            return (BatchPlan::Batch(empty), vec![]);
        };
        let zone = self.zone(first);
        let mut batch: Vec<String> = vec![];
        let mut moves: Vec<Move> = vec![];
        let mut used: BTreeMap<usize, i32> = BTreeMap::new();
        let mut taken = self.out_per_pool();
        let mut limits: Vec<Limit> = vec![];
        let mut other_zones = 0;
        for name in todo {
            let is_first = batch.is_empty();
            if !self.rules.across_zones && self.zone(name) != zone {
                other_zones += 1;
                continue;
            }
            if let Err(hold) = self.budget(&taken, name) {
                if is_first {
                    let mut why = vec![hold];
                    why.extend(self.first_alone(name));
                    return (BatchPlan::Hold(why), vec![]);
                }
                let Hold::Budget { scope, budget, out, .. } = hold else {
                    continue;
                };
                let whole_cluster = scope == Scope::Cluster;
                if !limits
                    .iter()
                    .any(|l| matches!(l, Limit::Budget { scope: s, .. } if *s == scope))
                {
                    limits.push(Limit::Budget {
                        scope,
                        budget,
                        out: out.len(),
                    });
                }
                if whole_cluster {
                    break;
                }
                continue;
            }
            let overruns = self.pdb_overruns(&used, is_first, name);
            if let Some((b, evicted, _)) = overruns.first() {
                if is_first {
                    let why = self.first_alone(name);
                    return (BatchPlan::Hold(why), vec![]);
                }
                limits.push(Limit::Pdb {
                    node: name.clone(),
                    pdb: self.pdb_ref(*b),
                    allowed: self.allowed(*b),
                    evicted: *evicted,
                });
                continue;
            }
            if let Err(pods) = self.try_place(&mut moves, name) {
                if is_first {
                    let why = self.first_alone(name);
                    return (BatchPlan::Hold(why), vec![]);
                }
                limits.push(Limit::Capacity {
                    node: name.clone(),
                    pods,
                });
                continue;
            }
            for &i in self.evicts(name) {
                for &b in &self.covered_by[i] {
                    *used.entry(b).or_default() += 1;
                }
            }
            if !self.is_out(name) {
                *taken.entry(self.pool(name)).or_default() += 1;
            }
            batch.push(name.clone());
        }
        if other_zones > 0 {
            limits.push(Limit::Zone {
                zone: zone.map(str::to_string),
                waiting: other_zones,
            });
        }
        for b in &batch {
            self.restore(b);
        }
        for (_, p) in &moves {
            self.places.unplace(*p);
        }
        let zone = if self.rules.across_zones {
            None
        } else {
            zone.map(str::to_string)
        };
        let batch = Batch {
            nodes: batch,
            zone,
            limits,
        };
        (BatchPlan::Batch(batch), moves)
    }

    /// Why `node` cannot go even alone, PDBs and room judged (the budget is judged by the caller).
    fn first_alone(&mut self, node: &str) -> Vec<Hold> {
        let mut why: Vec<Hold> = self
            .pdb_overruns(&BTreeMap::new(), true, node)
            .into_iter()
            .map(|(b, _, pods)| Hold::Pdb {
                node: node.to_string(),
                pdb: self.pdb_ref(b),
                pods,
                not_ready: self.not_ready_of(b),
            })
            .collect();
        let mut moves = vec![];
        match self.try_place(&mut moves, node) {
            Ok(()) => {
                for (_, p) in moves {
                    self.places.unplace(p);
                }
                self.restore(node);
            }
            Err(pods) => why.push(Hold::NoRoom {
                node: node.to_string(),
                pods,
            }),
        }
        why
    }

    /// The batch `nodes` went out and came back: their evicted pods are where `moves` put
    /// them, and they are in service again.
    fn done(&mut self, nodes: &[String], moves: &[Move]) {
        for &(i, placed) in moves {
            if let Some(from) = self.at[i] {
                self.places.release(self.places.name(from), placed.requests);
                self.evicts[from].retain(|&j| j != i);
            }
            self.places.reserve(placed);
            self.at[i] = Some(placed.node);
            self.evicts[placed.node].push(i);
        }
        for n in nodes {
            self.out.retain(|o| &o.node != n);
            self.out_names.remove(n);
            self.places.set_state(n, State::Open);
            self.places.set_pending(n, false);
        }
    }
}

#[cfg(test)]
mod tests;
