//! `--max-unavailable`: the nodes go out in batches. Before each batch the cluster is read
//! once (lists) and [`crate::rollout::batches`] picks the nodes that may go out together (the
//! budget counting every node out for any reason, one zone, room for the evicted pods, the
//! PDBs); the batch's nodes then run their turns at once. Inside the batch each node passes
//! the same gates as one at a time, its health gate counting the batch's nodes already out
//! against its budget ([`InBatch::take_out`] makes the gate and the cordon one step, so two
//! nodes never both see room for one). A node that fails lets the others of its batch
//! finish; the run then stops on it, as one at a time.

use super::take_out::Ahead;
use super::{lock, Count, Engine, LastDrain, RunStop};
use crate::kube::snapshot::{node_name, pool_of, zone_of, ClusterSnapshot};
use crate::rollout::batches::{self, BatchRules, MaxUnavailable};
use crate::rollout::gate::{wait_gate, Budget, GateStop};
use crate::rollout::journal::{NodeState, RunRecord};
use crate::rollout::node_life::finished;
use crate::rollout::progress::{Event, Holding, NodeStep, Warning};
use crate::rollout::stop::Halt;
use futures::stream::{FuturesUnordered, StreamExt};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use tokio::time::Instant;

/// How often a batch with a free place looks for a node to take it, while none of its nodes
/// ends (a node in flight may be past its drain by then, a budget recovered); doubled up to
/// [`REFILL_POLL_MAX`] while the planner finds none.
const REFILL_POLL: std::time::Duration = std::time::Duration::from_secs(2);
const REFILL_POLL_MAX: std::time::Duration = std::time::Duration::from_secs(16);
/// How soon to look again while a node in flight has not finished its drain (a look at the
/// run record only, the cluster is not read).
const SETTLE_POLL: std::time::Duration = std::time::Duration::from_millis(500);

/// Rolling slots: the nodes that may take the places a batch's done nodes free.
struct Refill<'r> {
    /// The batch (1-based).
    index: usize,
    /// At most this many of its nodes in flight: its size as planned.
    slots: usize,
    /// The nodes of its zone still to do and not in it: (record index, name).
    todo: Vec<(usize, String)>,
    rules: &'r BatchRules,
    /// The nodes in flight before their drain (and where each was) when the last plan could
    /// not place them: planned again only once one of them moved on.
    waiting_for: Option<Vec<(usize, NodeState)>>,
}

/// Whether `node` is in `zone` in the cluster as read.
fn zone_is(snapshot: &ClusterSnapshot, node: &str, zone: &Option<String>) -> bool {
    snapshot
        .nodes
        .iter()
        .find(|n| node_name(n) == node)
        .is_some_and(|n| zone_of(n) == zone.as_deref())
}

/// What a node's turn knows of the batch it is in.
pub(super) struct InBatch {
    /// Each node's budget: how many nodes of its scope may be out with it.
    pub(super) budgets: BTreeMap<String, Budget>,
    /// Held from a node's health gate to its cordon (its mark): the next node of the batch
    /// then counts it as out.
    pub(super) take_out: tokio::sync::Mutex<()>,
}

impl InBatch {
    fn new(snapshot: &ClusterSnapshot, nodes: &[String], max: &MaxUnavailable) -> InBatch {
        // The pools as the planner reads them, so the gate's scope is the planner's.
        let mut pools: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
        for n in &snapshot.nodes {
            pools
                .entry(pool_of(n).unwrap_or_default())
                .or_default()
                .insert(node_name(n).to_string());
        }
        let budgets = nodes
            .iter()
            .map(|name| {
                let budget = match max {
                    MaxUnavailable::Nodes(n) => Budget {
                        allowed: *n as usize,
                        scope: None,
                    },
                    MaxUnavailable::Percent(_) => {
                        let pool = pools.values().find(|p| p.contains(name)).cloned().unwrap_or_default();
                        Budget {
                            allowed: max.budget(pool.len()),
                            scope: Some(pool),
                        }
                    }
                };
                (name.clone(), budget)
            })
            .collect();
        InBatch {
            budgets,
            take_out: tokio::sync::Mutex::new(()),
        }
    }
}

impl Engine<'_> {
    /// The nodes of `todo` still to do, batch after batch.
    pub(super) async fn run_batches(
        &self,
        shared: &Mutex<RunRecord>,
        todo: &[usize],
        rules: &BatchRules,
        count: &mut Count,
        last: &mut LastDrain,
    ) -> Result<(), RunStop> {
        let mut index = 0;
        loop {
            let remaining: Vec<(usize, String)> = {
                let rec = lock(shared);
                todo.iter()
                    .filter(|i| !finished(rec.nodes[**i].state))
                    .map(|i| (*i, rec.nodes[*i].name.clone()))
                    .collect()
            };
            if remaining.is_empty() {
                return Ok(());
            }
            self.checkpoint()?;
            if let Some(stop) = lock(&self.hold_others).take() {
                return Err(stop);
            }
            let names: Vec<String> = remaining.iter().map(|(_, n)| n.clone()).collect();
            self.recovered(last).await?;
            self.window_check(&format!("not starting another batch ({} node(s) to go)", names.len()))?;
            let (batch, expected, snapshot) = self.plan_batch(&names, rules).await?;
            let left = expected.len();
            index += 1;
            // Budgets for every node still to do: a node of the zone may join the batch.
            let ctx = InBatch::new(&snapshot, &names, &rules.max);
            self.tell(Event::BatchStarted {
                index,
                of: index + left,
                zone: batch.zone.clone(),
                nodes: batch.nodes.clone(),
                limits: batch.limits.clone(),
            });
            let members: Vec<usize> = batch
                .nodes
                .iter()
                .filter_map(|name| remaining.iter().find(|(_, n)| n == name).map(|(i, _)| *i))
                .collect();
            for i in &members {
                lock(shared).nodes[*i].batch = Some(index);
            }
            let soak = self.cfg.options.soak;
            // Rolling slots: as a node of the batch is done, another node of its zone may take
            // its place (not with --soak: the batch is watched before anything else goes out).
            let refill = (soak == 0).then(|| Refill {
                index,
                slots: members.len(),
                todo: remaining
                    .iter()
                    .filter(|(i, n)| {
                        !members.contains(i) && (batch.zone.is_none() || zone_is(&snapshot, n, &batch.zone))
                    })
                    .cloned()
                    .collect(),
                rules,
                waiting_for: None,
            });
            // While its nodes reboot, the nodes expected next are worked on ahead, one a node
            // that reboots: those of the zone that may take a place in this batch first, in
            // plan order, upgraded (they stay in service; their turn then only takes them
            // out; with a percentage by a node of their pool); then the next batch's, only
            // downloaded (it is planned again once this one is done: the cluster will have
            // changed). Rolling through a zone, the next batch is the first expected in
            // another zone.
            let mut ahead: Vec<Ahead> = match &refill {
                Some(r) => {
                    let rec = lock(shared);
                    let mut next: Vec<Ahead> = r
                        .todo
                        .iter()
                        .map(|(i, n)| Ahead::Upgrade {
                            index: *i,
                            name: n.clone(),
                            pool: rec.nodes[*i].pool.clone(),
                        })
                        .collect();
                    drop(rec);
                    if let Some(b) = expected.iter().find(|b| b.zone != batch.zone || batch.zone.is_none()) {
                        let downloads: Vec<Ahead> = b
                            .nodes
                            .iter()
                            .filter(|n| !next.iter().any(|a| a.node() == n.as_str()))
                            .map(|n| Ahead::Download(n.clone()))
                            .collect();
                        next.extend(downloads);
                    }
                    next
                }
                None => expected
                    .first()
                    .map(|b| b.nodes.iter().map(|n| Ahead::Download(n.clone())).collect())
                    .unwrap_or_default(),
            };
            // Taken from the end.
            ahead.reverse();
            *lock(&self.ahead) = ahead;
            let ended = self
                .run_members(shared, &members, &batch.nodes, &ctx, count, last, refill)
                .await;
            self.tell(Event::BatchDone { index });
            ended?;
            if soak > 0 && remaining.len() > batch.nodes.len() {
                self.tell(Event::BatchSoaking { index, secs: soak });
                tokio::select! {
                    _ = tokio::time::sleep(std::time::Duration::from_secs(soak)) => {}
                    _ = self.cancel.cancelled() => return Err(RunStop::Interrupted),
                }
            }
        }
    }

    /// The nodes an interrupted batch run left out of service, finished together before any
    /// other is planned: each counts the others against its budget, as in their batch.
    pub(super) async fn finish_left_out(
        &self,
        shared: &Mutex<RunRecord>,
        left: &[usize],
        rules: &BatchRules,
        count: &mut Count,
        last: &mut LastDrain,
    ) -> Result<(), RunStop> {
        let (members, names): (Vec<usize>, Vec<String>) = {
            let rec = lock(shared);
            left.iter()
                .filter(|i| !finished(rec.nodes[**i].state))
                .map(|i| (*i, rec.nodes[*i].name.clone()))
                .unzip()
        };
        if members.is_empty() {
            return Ok(());
        }
        self.checkpoint()?;
        let snapshot = self
            .cluster
            .snapshot()
            .await
            .map_err(|error| RunStop::from(Halt::ReadCluster { error }))?;
        let ctx = InBatch::new(&snapshot, &names, &rules.max);
        self.run_members(shared, &members, &names, &ctx, count, last, None)
            .await
    }

    /// The turns of a batch's nodes at once, under kured's lock for the batch, with nodes of
    /// its zone taking the places its done nodes free (`refill`); `Err` with the stop to tell
    /// once all of them ended, if any stopped the run.
    #[allow(clippy::too_many_arguments)]
    async fn run_members(
        &self,
        shared: &Mutex<RunRecord>,
        members: &[usize],
        names: &[String],
        ctx: &InBatch,
        count: &mut Count,
        last: &mut LastDrain,
        mut refill: Option<Refill<'_>>,
    ) -> Result<(), RunStop> {
        // kured must not reboot a node beside the batch: its lock is held for the whole
        // batch, in the name of its first node.
        let kured = self.take_kured_for_batch(names).await?;
        // The last batch's drains recovered before this batch was planned
        // ([`Engine::recovered`]): its nodes wait only for room in their budget, never for
        // each other's evicted pods to be back.
        let recovered = LastDrain::default();
        let mut running = FuturesUnordered::new();
        let mut in_flight: Vec<usize> = vec![];
        for &i in members {
            count.started += 1;
            in_flight.push(i);
            running.push(self.indexed_turn(shared, i, *count, &recovered, ctx));
        }
        let mut ended = vec![];
        // When the next look for joiners is due without a node ending: soon while the nodes in
        // flight are not past their drains, then less and less often while the planner finds
        // no node (each look lists the cluster); at once when a node ends.
        let mut backoff = REFILL_POLL;
        let mut next_look = Instant::now();
        loop {
            let room = ended.iter().all(|(_, e): &(usize, Result<_, _>)| e.is_ok())
                && refill
                    .as_ref()
                    .is_some_and(|r| !r.todo.is_empty() && in_flight.len() < r.slots);
            let woke = if room {
                tokio::select! {
                    e = running.next() => e,
                    _ = tokio::time::sleep_until(next_look) => None,
                }
            } else {
                match running.next().await {
                    Some(e) => Some(e),
                    None => break,
                }
            };
            if let Some((i, e)) = woke {
                in_flight.retain(|j| *j != i);
                ended.push((i, e));
            }
            let Some(r) = refill.as_mut() else { continue };
            if !ended.iter().all(|(_, e)| e.is_ok()) || in_flight.len() >= r.slots || r.todo.is_empty() {
                continue;
            }
            let joiners = match self.joiners(shared, r, &in_flight).await {
                None => {
                    next_look = Instant::now() + SETTLE_POLL;
                    vec![]
                }
                Some(j) if j.is_empty() => {
                    next_look = Instant::now() + backoff;
                    backoff = (backoff * 2).min(REFILL_POLL_MAX);
                    j
                }
                Some(j) => {
                    backoff = REFILL_POLL;
                    next_look = Instant::now() + REFILL_POLL;
                    j
                }
            };
            for i in joiners {
                count.started += 1;
                in_flight.push(i);
                running.push(self.indexed_turn(shared, i, *count, &recovered, ctx));
            }
            if in_flight.is_empty() {
                break;
            }
        }
        let ended: Vec<_> = ended.into_iter().map(|(_, e)| e).collect();
        if let Some(holder) = kured {
            if let Err(e) = self.cluster.release_kured_lock(&holder).await {
                self.tell(Event::Warning(Warning::KuredLockNotReleased { error: e.to_string() }));
            }
        }
        let mut drained = LastDrain::default();
        let mut stops = vec![];
        for e in ended {
            match e {
                Ok(t) => {
                    if let Some(d) = t.drained {
                        drained.add(d);
                    }
                }
                Err(stop) => stops.push(stop),
            }
        }
        if !drained.is_empty() {
            *last = drained;
        }
        match first_to_tell(stops) {
            Some(stop) => Err(stop),
            None => Ok(()),
        }
    }

    /// A node's turn in a batch, with the node it is for.
    async fn indexed_turn(
        &self,
        shared: &Mutex<RunRecord>,
        i: usize,
        count: Count,
        recovered: &LastDrain,
        ctx: &InBatch,
    ) -> (usize, Result<super::TurnEnded, RunStop>) {
        (i, self.node_turn(shared, i, count, recovered, Some(ctx)).await)
    }

    /// The nodes of the batch's zone that take the places its done nodes freed: planned as a
    /// batch against the cluster as it is now (the budget counting every node out, room for
    /// the pods, the PDBs), never more in flight than the batch's size. The nodes in flight
    /// not yet past their drain are planned first, as the batch's own: what they will still
    /// evict is counted (room, PDB disruptions) before any joiner's. `None` (look again soon)
    /// when such a node would not fit in that plan now (a PDB its drain has used up): it is
    /// waited for. `Some(vec![])` at a safe point's stop, outside the window, or when the
    /// cluster cannot be read.
    async fn joiners(&self, shared: &Mutex<RunRecord>, r: &mut Refill<'_>, in_flight: &[usize]) -> Option<Vec<usize>> {
        if !self.takes_more_nodes() {
            return Some(vec![]);
        }
        let (unsettled, states): (Vec<String>, Vec<(usize, NodeState)>) = {
            let rec = lock(shared);
            in_flight
                .iter()
                .filter(|i| {
                    let state = rec.nodes[**i].state;
                    !(finished(state) || matches!(state, NodeState::Drained | NodeState::Rebooting | NodeState::Back))
                })
                .map(|i| (rec.nodes[*i].name.clone(), (*i, rec.nodes[*i].state)))
                .unzip()
        };
        // Nothing moved since they could not be placed: no need to read the cluster again.
        if !unsettled.is_empty() && r.waiting_for.as_ref() == Some(&states) {
            return None;
        }
        r.waiting_for = None;
        let Ok(snapshot) = self.cluster.snapshot().await else {
            return Some(vec![]);
        };
        let todo: Vec<String> = unsettled
            .iter()
            .cloned()
            .chain(r.todo.iter().map(|(_, n)| n.clone()))
            .collect();
        let batch = match batches::next_batch(&snapshot, &todo, r.rules) {
            batches::BatchPlan::Batch(b) if unsettled.iter().all(|n| b.nodes.contains(n)) => b,
            _ if !unsettled.is_empty() => {
                r.waiting_for = Some(states);
                return None;
            }
            _ => return Some(vec![]),
        };
        let free = r.slots.saturating_sub(in_flight.len());
        let names: Vec<String> = batch
            .nodes
            .into_iter()
            .filter(|n| !unsettled.contains(n))
            .take(free)
            .collect();
        let joiners: Vec<usize> = names
            .iter()
            .filter_map(|name| r.todo.iter().find(|(_, n)| n == name).map(|(i, _)| *i))
            .collect();
        if joiners.is_empty() {
            return Some(joiners);
        }
        r.todo.retain(|(i, _)| !joiners.contains(i));
        // A node taken now upgrades itself (or ends the upgrade ahead under way): nothing
        // more ahead on it.
        lock(&self.ahead).retain(|a| !names.iter().any(|n| n == a.node()));
        {
            let mut rec = lock(shared);
            for i in &joiners {
                rec.nodes[*i].batch = Some(r.index);
            }
        }
        self.tell(Event::BatchJoined {
            index: r.index,
            nodes: names,
        });
        Some(joiners)
    }

    /// Whether a node may still join the batch in flight, or be upgraded ahead for it: not at
    /// a safe point's stop, once the others are held (a failure ahead, a refused resume) or
    /// outside the window.
    pub(super) fn takes_more_nodes(&self) -> bool {
        self.checkpoint().is_ok() && lock(&self.hold_others).is_none() && self.window_check("").is_ok()
    }

    /// Before the next batch is planned: what the last batch evicted is back (its workloads
    /// Ready, its PodDisruptionBudgets allowing disruptions again), waited for once for the
    /// whole batch, up to `--health-wait` and `--drain-timeout` as one at a time waits
    /// before each node. Planning earlier would shrink the batch for budgets that are only
    /// recovering.
    async fn recovered(&self, last: &LastDrain) -> Result<(), RunStop> {
        if last.is_empty() {
            return Ok(());
        }
        let nodes_never_block = Budget {
            allowed: usize::MAX,
            scope: None,
        };
        let gate = wait_gate(
            self.cluster,
            &[],
            &last.workloads,
            &nodes_never_block,
            self.cfg.gate_wait,
            self.cfg.gate_poll,
            &self.cancel,
            self.progress,
        )
        .await;
        match gate {
            Ok(()) => {}
            Err(GateStop::Cancelled) => return Err(RunStop::Interrupted),
            Err(gate) => return Err(Halt::BatchUnhealthy { gate }.into()),
        }
        if last.pdbs.is_empty() {
            return Ok(());
        }
        let timeout = std::time::Duration::from_secs(self.cfg.options.drain_timeout);
        tokio::select! {
            r = self.cluster.wait_pdbs(&last.pdbs, timeout) => {
                r.map_err(|error| RunStop::from(Halt::BatchPdbsNotRecovered { error }))
            }
            _ = self.cancel.cancelled() => Err(RunStop::Interrupted),
        }
    }

    /// kured's lock for a batch, if kured is installed: the node it is held in the name of.
    async fn take_kured_for_batch(&self, nodes: &[String]) -> Result<Option<String>, RunStop> {
        let Some(first) = nodes.first() else { return Ok(None) };
        let o = &self.cfg.options;
        let ttl = std::time::Duration::from_secs(o.drain_timeout + o.reboot_timeout);
        match self.cluster.take_kured_lock(first, ttl).await {
            Ok(true) => {
                self.step(first, NodeStep::KuredLockTaken);
                Ok(Some(first.clone()))
            }
            Ok(false) => Ok(None),
            Err(error) => Err(Halt::KuredLock {
                node: first.clone(),
                error,
                release: None,
            }
            .into()),
        }
    }

    /// The next batch, waiting while the planner holds (the budget spent, no room for a
    /// node's pods, a PDB allowing no disruption) up to `--health-wait`: the batch, the
    /// batches expected after it, and the cluster as read for it.
    async fn plan_batch(
        &self,
        todo: &[String],
        rules: &BatchRules,
    ) -> Result<(batches::Batch, Vec<batches::Batch>, ClusterSnapshot), RunStop> {
        let start = Instant::now();
        let mut holds = crate::rollout::progress::HoldTracker::default();
        loop {
            let snapshot = self
                .cluster
                .snapshot()
                .await
                .map_err(|error| RunStop::from(Halt::ReadCluster { error }))?;
            // The whole plan from here: its first batch is the next one (the planner's first
            // step, as `next_batch` takes it), the others how many are expected after it.
            let mut plan = batches::plan_batches(&snapshot, todo, rules);
            if !plan.batches.is_empty() {
                let batch = plan.batches.remove(0);
                return Ok((batch, plan.batches, snapshot));
            }
            let why = plan.held.map(|h| h.why).unwrap_or_default();
            let waited = start.elapsed();
            if waited >= self.cfg.gate_wait {
                return Err(Halt::BatchHeld { why, waited }.into());
            }
            holds.show(
                self.progress,
                todo.first().map(String::as_str),
                Holding::Batch(why),
                waited,
                self.cfg.gate_wait,
            );
            tokio::select! {
                _ = tokio::time::sleep(self.cfg.gate_poll.min(self.cfg.gate_wait - waited)) => {}
                _ = self.cancel.cancelled() => return Err(RunStop::Interrupted),
            }
        }
    }
}

impl LastDrain {
    fn add(&mut self, other: LastDrain) {
        for w in other.workloads {
            if !self.workloads.contains(&w) {
                self.workloads.push(w);
            }
        }
        for p in other.pdbs {
            if !self.pdbs.contains(&p) {
                self.pdbs.push(p);
            }
        }
    }

    fn is_empty(&self) -> bool {
        self.workloads.is_empty() && self.pdbs.is_empty()
    }
}

/// Of the stops of a batch's nodes, the one the run ends with: a failure or a lost lock
/// before a signal, a window or a blocker (which every node of the batch may have met).
fn first_to_tell(stops: Vec<RunStop>) -> Option<RunStop> {
    let quiet = |s: &RunStop| {
        matches!(
            s,
            RunStop::Interrupted | RunStop::OutsideWindow(_) | RunStop::Blocked(_)
        )
    };
    let loud = stops.iter().position(|s| !quiet(s));
    let mut stops = stops;
    match loud {
        Some(i) => Some(stops.swap_remove(i)),
        None => stops.into_iter().next(),
    }
}
