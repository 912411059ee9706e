//! Node liveness, on the emulator's clock ([`crate::scenario::Scenario::liveness`]): each running
//! kubelet renews its Lease in `kube-node-lease` every `leaseRenewSeconds` and posts its node
//! status (the conditions' `lastHeartbeatTime`) every `nodeStatusSeconds`; a machine that is down does neither. The
//! node lifecycle controller watches the Leases: one not renewed for
//! `nodeMonitorGraceSeconds` turns its node Unknown ("Kubelet stopped posting node status.",
//! unreachable taints), keeping the kubelet's last heartbeat.

use super::{Machine, MachineState, NodeRuntime, Phase};
use crate::model::{self, Readiness};
use crate::store::{self, LEASES, NODES};
use crate::time::secs;
use crate::Shared;
use serde_json::json;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub(crate) const NODE_LEASE_NAMESPACE: &str = "kube-node-lease";

#[derive(Default)]
pub(crate) struct Liveness {
    last_tick: Option<Instant>,
    /// When each running kubelet last renewed its Lease.
    renewed: HashMap<String, Instant>,
    /// When each running kubelet last posted its status.
    posted: HashMap<String, Instant>,
    /// The node lifecycle controller: each Lease's renewTime as last seen, and when it was
    /// first seen with that value (it judges by its own clock, not the kubelet's).
    observed: HashMap<String, (String, Instant)>,
}

/// The kubelet runs from boot until the machine goes down (through a fast reboot).
fn kubelet_running(st: &MachineState) -> bool {
    match st.phase {
        Phase::Running | Phase::Booting | Phase::ShuttingDown => true,
        Phase::Down => st.fast,
    }
}

/// One round, at most every quarter of the renew interval (and at least every second).
pub(crate) fn tick(shared: &Shared, rt: &NodeRuntime, lv: &mut Liveness, now: Instant) {
    let (renew, grace, status) = shared.scenario.liveness();
    let period = secs(renew / 4.0).clamp(Duration::from_millis(50), Duration::from_secs(1));
    if lv.last_tick.is_some_and(|at| now.duration_since(at) < period) {
        return;
    }
    lv.last_tick = Some(now);
    let renew_every = secs(renew);
    let post_every = secs(status);
    let grace = secs(grace);
    for m in rt.machines() {
        let (running, phase) = {
            let st = m.lock();
            (kubelet_running(&st), st.phase)
        };
        if running {
            kubelet(shared, m, lv, now, phase, renew_every, post_every);
        } else {
            // Back from a boot, the kubelet renews and posts at once.
            lv.renewed.remove(&m.name);
            lv.posted.remove(&m.name);
        }
        node_lifecycle(shared, &m.name, lv, now, grace);
    }
}

fn kubelet(
    shared: &Shared,
    m: &Arc<Machine>,
    lv: &mut Liveness,
    now: Instant,
    phase: Phase,
    renew_every: Duration,
    post_every: Duration,
) {
    if lv
        .renewed
        .get(&m.name)
        .is_none_or(|at| now.duration_since(*at) >= renew_every)
    {
        renew_lease(shared, &m.name);
        lv.renewed.insert(m.name.clone(), now);
    }
    if lv
        .posted
        .get(&m.name)
        .is_none_or(|at| now.duration_since(*at) >= post_every)
    {
        lv.posted.insert(m.name.clone(), now);
        let node = shared.store.get(NODES, None, &m.name);
        let unknown = node.as_ref().is_some_and(|n| model::ready_status(n) == "Unknown");
        let r = if unknown {
            // The node lifecycle controller gave up on it meanwhile: the kubelet's own view.
            let ready = if phase == Phase::Running {
                Readiness::Ready
            } else {
                Readiness::NotReady
            };
            model::set_readiness(&shared.store, &m.name, ready)
        } else {
            model::heartbeat(&shared.store, &m.name)
        };
        if let Err(e) = r {
            tracing::debug!("kubelet {}: cannot post node status: {e}", m.name);
        }
    }
}

/// Renew (or recreate) the node's Lease, as the kubelet's lease controller does.
fn renew_lease(shared: &Shared, node: &str) {
    let now = crate::time::now_rfc3339_micros();
    let r = shared
        .store
        .update_with(LEASES, Some(NODE_LEASE_NAMESPACE), node, None, |l| {
            l["spec"]["renewTime"] = json!(now);
            l["spec"]["holderIdentity"] = json!(node);
            Ok(())
        });
    match r {
        Ok(_) => {}
        Err(store::StoreError::NotFound { .. }) => {
            if shared
                .store
                .get(store::NAMESPACES, None, NODE_LEASE_NAMESPACE)
                .is_none()
            {
                return;
            }
            let uid = shared
                .store
                .get(NODES, None, node)
                .and_then(|n| n["metadata"]["uid"].as_str().map(str::to_string))
                .unwrap_or_default();
            let _ = shared.store.create(
                LEASES,
                json!({
                    "metadata": {"name": node, "namespace": NODE_LEASE_NAMESPACE,
                                 "ownerReferences": [{"apiVersion": "v1", "kind": "Node", "name": node, "uid": uid}]},
                    "spec": {"holderIdentity": node, "leaseDurationSeconds": 40, "renewTime": now},
                }),
            );
        }
        Err(e) => tracing::debug!("kubelet {node}: cannot renew its lease: {e}"),
    }
}

fn node_lifecycle(shared: &Shared, node: &str, lv: &mut Liveness, now: Instant, grace: Duration) {
    let renew_time = shared
        .store
        .get(LEASES, Some(NODE_LEASE_NAMESPACE), node)
        .and_then(|l| l["spec"]["renewTime"].as_str().map(str::to_string))
        .unwrap_or_default();
    let seen = lv
        .observed
        .entry(node.to_string())
        .or_insert_with(|| (renew_time.clone(), now));
    if seen.0 != renew_time {
        *seen = (renew_time, now);
        return;
    }
    if now.duration_since(seen.1) < grace {
        return;
    }
    let Some(obj) = shared.store.get(NODES, None, node) else {
        return;
    };
    if model::ready_status(&obj) == "Unknown" {
        return;
    }
    if let Err(e) = model::set_readiness(&shared.store, node, Readiness::Unknown) {
        tracing::warn!("node {node}: cannot mark the Node Unknown: {e}");
    }
}
