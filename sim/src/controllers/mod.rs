//! The cluster's control loops, as far as the emulation needs them: the ReplicaSet,
//! Deployment, DaemonSet and disruption (PDB) controllers, the scheduler, a kubelet
//! that starts pods after `timing.podStartSeconds` and marks them NotReady while their
//! node is, the garbage collector, the node lifecycle controller's unschedulable taint,
//! and the scenario's initial workloads (`seed`). Pods on a node that reboots are kept
//! (not recreated): they turn NotReady with the node and Ready again after it is back,
//! with their restart count bumped.

use crate::events::kinds;
use crate::objects::pods::{self, DeleteOpts};
use crate::objects::selector;
use crate::recorder;
use crate::scenario::{Workload, WorkloadKind};
use crate::store::{
    self, StoreError, CRONJOBS, DAEMONSETS, DEPLOYMENTS, JOBS, NAMESPACES, NODES, PDBS, PODS, REPLICASETS, STATEFULSETS,
};
use crate::Shared;
use anyhow::Context;
use jiff::{SignedDuration, Timestamp};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

mod builders;
mod cronjobs;
mod daemonsets;
mod deployments;
mod disruption;
mod garbage_collector;
mod jobs;
mod kubelet;
mod kured;
mod namespaces;
mod node_events;
mod node_lifecycle;
mod replicasets;
mod scheduler;
mod seed;
mod statefulsets;
mod workload_status;

use builders::*;
use cronjobs::*;
use daemonsets::*;
use deployments::*;
use disruption::*;
use garbage_collector::*;
use jobs::*;
use kubelet::*;
use kured::*;
use namespaces::*;
use node_lifecycle::*;
use replicasets::*;
use scheduler::*;
use seed::*;
use statefulsets::*;
use workload_status::*;

pub use jobs::RUN_SECONDS_ANNOTATION;
pub use kured::KURED_LOCK_ANNOTATION;
pub use node_events::watch_node_changes;
pub use seed::seed;

const UNSCHEDULABLE_TAINT: &str = "node.kubernetes.io/unschedulable";

#[derive(Default)]
struct State {
    /// When the kubelet began starting a pod (by uid).
    starting: HashMap<String, Instant>,
    /// The node's bootID when the pod last turned Ready (by uid).
    boot_seen: HashMap<String, String>,
    /// The kured lock annotation last seen (None before the first look).
    kured_lock: Option<Option<String>>,
    /// When each running pod of a Job turned Ready (by uid): it succeeds after its run time.
    job_running: HashMap<String, Instant>,
    /// The minute each CronJob's schedule was last checked in (by uid).
    cron_checked: HashMap<String, i64>,
}

/// Run the controllers until shutdown: after every change to the store (coalesced) and
/// at least every 5 seconds, or every 50 ms while pods are starting.
pub async fn run(shared: Arc<Shared>) {
    let mut rx = shared.store.subscribe();
    let mut shutdown = shared.shutdown.clone();
    let mut state = State::default();
    // Faults do not change the store: a `pdb-never-allows` must still show in the
    // budget's status at once.
    let pdb_faults = |s: &Shared| s.faults.describe()["pdbNeverAllows"].to_string();
    let mut faults_seen = pdb_faults(&shared);
    // What the controllers read of each node, as last seen.
    let mut node_seen: HashMap<String, Value> = HashMap::new();
    loop {
        if *shutdown.borrow() {
            return;
        }
        let t0 = Instant::now();
        reconcile(&shared, &mut state);
        let cost = t0.elapsed();
        tracing::debug!(elapsed_ms = cost.as_millis() as u64, "controllers reconciled");
        // On a big cluster a round is expensive: let changes gather for twice as long as a
        // round takes, so that the controllers never use more than a third of a core.
        let settle = (cost * 2).clamp(Duration::from_millis(20), Duration::from_secs(2));
        let deadline = tokio::time::Instant::now()
            + if !state.starting.is_empty() {
                Duration::from_millis(50)
            } else if !state.job_running.is_empty() {
                Duration::from_millis(100)
            } else {
                // Idle: a round every 5 s, or every ten rounds' worth of time on a cluster
                // where a round is expensive (thousands of nodes).
                (cost * 10).max(Duration::from_secs(5))
            };
        loop {
            tokio::select! {
                r = rx.recv() => {
                    match r {
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                        // Lease renewals and events are no business of these controllers:
                        // reconciling on every kubelet heartbeat would only burn CPU.
                        Ok(c) if c.resource == store::LEASES || c.resource == store::EVENTS => continue,
                        // Nor is a node status post that changes nothing they read.
                        Ok(c) if c.resource == NODES && c.kind == store::WatchKind::Modified => {
                            let name = c.object["metadata"]["name"].as_str().unwrap_or("").to_string();
                            let seen = node_facts(&c.object);
                            if node_seen.insert(name, seen.clone()).as_ref() == Some(&seen) {
                                continue;
                            }
                        }
                        _ => {}
                    }
                    // Let a burst of changes settle, then take them all at once.
                    tokio::time::sleep(settle).await;
                    while rx.try_recv().is_ok() {}
                    break;
                }
                _ = tokio::time::sleep_until(deadline.min(tokio::time::Instant::now() + Duration::from_millis(250))) => {
                    let f = pdb_faults(&shared);
                    if f != faults_seen {
                        faults_seen = f;
                        break;
                    }
                    if tokio::time::Instant::now() >= deadline {
                        break;
                    }
                }
                _ = shutdown.changed() => return,
            }
        }
    }
}

fn now() -> String {
    crate::time::now_rfc3339()
}

/// The parts of a Node the controllers act on (not its heartbeat times).
fn node_facts(n: &Value) -> Value {
    json!([
        n["metadata"]["labels"],
        n["spec"]["unschedulable"],
        n["spec"]["taints"],
        n["status"]["allocatable"],
        crate::model::ready_status(n),
        n["status"]["nodeInfo"]["bootID"],
    ])
}

fn uid(o: &Value) -> &str {
    o["metadata"]["uid"].as_str().unwrap_or("")
}

fn name(o: &Value) -> &str {
    o["metadata"]["name"].as_str().unwrap_or("")
}

fn namespace(o: &Value) -> &str {
    o["metadata"]["namespace"].as_str().unwrap_or("default")
}

fn owned_by<'a>(pods: &'a [Value], owner_uid: &str) -> Vec<&'a Value> {
    pods.iter()
        .filter(|p| pods::controller_ref(p).is_some_and(|r| r["uid"] == owner_uid))
        .collect()
}

/// Active pods by the uid of their controller.
fn by_owner(pods: &[Value]) -> HashMap<&str, Vec<&Value>> {
    let mut m: HashMap<&str, Vec<&Value>> = HashMap::new();
    for p in pods.iter().filter(|p| active(p)) {
        if let Some(u) = pods::controller_ref(p).and_then(|r| r["uid"].as_str()) {
            m.entry(u).or_default().push(p);
        }
    }
    m
}

fn active(p: &Value) -> bool {
    !pods::is_terminating(p) && !matches!(pods::phase(p), "Succeeded" | "Failed")
}

fn warn_err<T>(what: &str, r: Result<T, StoreError>) -> Option<T> {
    match r {
        Ok(v) => Some(v),
        // Somebody else changed or removed it meanwhile: the next round sees the new state.
        Err(StoreError::Conflict { .. }) | Err(StoreError::NotFound { .. }) => None,
        Err(e) => {
            tracing::warn!("controller: {what}: {e}");
            None
        }
    }
}

/// One round of every controller. The pod list is read once and read again only after
/// a step changed pods; what a step misses is seen by the next round, which the change
/// itself triggers.
fn reconcile(shared: &Arc<Shared>, st: &mut State) {
    let nodes = node_infos(shared);
    node_lifecycle(shared);
    namespaces(shared);
    terminating_namespaces(shared);
    deployments(shared);
    cronjobs(shared, st);
    // Budgets are read before any pod list their status is computed from: see pdb_status.
    let budgets = shared.store.list(PDBS, None);
    let mut all = shared.store.list(PODS, None);
    let mut wrote = garbage_collect(shared, &all);
    wrote |= replicasets(shared, &all);
    wrote |= daemonsets(shared, &nodes, &all);
    wrote |= daemonset_rollout(shared, &all);
    wrote |= statefulsets(shared, &all);
    wrote |= jobs(shared, &all);
    wrote |= static_pods(shared, &nodes);
    if wrote {
        all = shared.store.list(PODS, None);
    }
    if schedule(shared, &nodes, &all) {
        all = shared.store.list(PODS, None);
    }
    if kubelet(shared, &nodes, st, &all) {
        all = shared.store.list(PODS, None);
    }
    let owners = by_owner(&all);
    workload_status(shared, &nodes, &owners);
    statefulset_status(shared, &owners);
    pdb_status(shared, budgets, &all);
    kured_lock(shared, st);
}

fn set_status(shared: &Shared, res: store::Resource, obj: &Value, status: Value) {
    if obj["status"] == status {
        return;
    }
    let r = shared
        .store
        .update_with(res, Some(namespace(obj)), name(obj), None, |o| {
            o["status"] = status;
            Ok(())
        });
    warn_err("status", r);
}

/// Keep a condition's transition time while its status stays the same.
fn keep_times(old: &Value, mut c: Value) -> Value {
    if let Some(prev) = old["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|p| p["type"] == c["type"]))
    {
        if prev["status"] == c["status"] && prev["reason"] == c["reason"] {
            for k in ["lastTransitionTime", "lastUpdateTime"] {
                if prev.get(k).is_some() {
                    c[k] = prev[k].clone();
                }
            }
        }
    }
    c
}
