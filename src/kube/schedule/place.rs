//! Placing evicted pods, one by one, as kube-scheduler would: on a node that passes the
//! filters and has room, preferring nodes without a `PreferNoSchedule` taint the pod does not
//! tolerate, then the least allocated one (NodeResourcesFit's default score); each placed pod's
//! requests are subtracted from its node's room. Pods are best placed largest first
//! ([`largest_first`]), the order that packs well.
//!
//! [`Places`] is built once for a cluster and kept up to date while a plan takes nodes out
//! and puts them back, so that a plan for thousands of nodes costs one pass over their pods:
//! the nodes that pass a pod's filters are remembered for every pod alike in what the filters
//! read (the replicas of a workload share their template, the workloads of a pool their
//! selector).

use super::room::{allocatable, pod_requests, Resources};
use super::{disfavoured, explain, passes_filters, Candidate, Nowhere};
use k8s_openapi::api::core::v1::{Node, Pod, PodSpec};
use std::collections::HashMap;

/// Whether a node takes pods in the plan being made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// In service: takes pods that fit.
    Open,
    /// Out of service (down, cordoned by someone else, another run's): takes none.
    Out,
    /// Going out with the pods being placed: takes none, and is not an "other" node.
    Leaving,
}

#[derive(Debug, Clone)]
struct Place<'a> {
    node: &'a Node,
    name: &'a str,
    allocatable: Resources,
    room: Resources,
    coming_back: bool,
    state: State,
    /// To be patched later in the run: carries (or will) the run's `PreferNoSchedule` taint.
    pending: bool,
}

/// The cluster's nodes as places for pods, with the room each has left.
#[derive(Debug, Clone)]
pub struct Places<'a> {
    places: Vec<Place<'a>>,
    index: HashMap<&'a str, usize>,
    /// Per [`filter_key`]: the nodes that pass those pods' filters, and which of them the pods
    /// would rather avoid.
    filtered: HashMap<String, Vec<(usize, bool)>>,
    /// Where the next search for a node starts (see [`nodes_to_score`]).
    next_start: usize,
}

/// Where a pod was put: the node's index, to take it back ([`Places::unplace`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placed {
    pub node: usize,
    pub requests: Resources,
}

/// What the filters read of a pod: its node selector, node affinity and tolerations. Pods
/// alike in these (the replicas of a workload, and most workloads of a pool) pass the same
/// nodes.
fn filter_key(spec: &PodSpec) -> String {
    let affinity = spec.affinity.as_ref().and_then(|a| a.node_affinity.as_ref());
    serde_json::to_string(&(&spec.node_selector, affinity, &spec.tolerations)).unwrap_or_default()
}

fn pod_node(pod: &Pod) -> Option<&str> {
    pod.spec.as_ref().and_then(|s| s.node_name.as_deref())
}

impl<'a> Places<'a> {
    /// Every node of `nodes`, its room less the requests of `pods` bound to it. `coming_back`:
    /// nodes out of service now that are back before a placed pod needs them.
    pub fn new(nodes: &'a [Node], pods: &[Pod], coming_back: &[String]) -> Places<'a> {
        let places: Vec<Place<'a>> = nodes
            .iter()
            .map(|n| {
                let name = n.metadata.name.as_deref().unwrap_or("");
                let allocatable = allocatable(n);
                Place {
                    node: n,
                    name,
                    allocatable,
                    room: allocatable,
                    coming_back: coming_back.iter().any(|c| c == name),
                    state: State::Open,
                    pending: false,
                }
            })
            .collect();
        let index = places.iter().enumerate().map(|(i, p)| (p.name, i)).collect();
        let mut me = Places {
            places,
            index,
            filtered: HashMap::new(),
            next_start: 0,
        };
        for pod in pods {
            if let Some(i) = pod_node(pod).and_then(|n| me.index_of(n)) {
                me.places[i].room = me.places[i].room.minus(pod_requests(pod));
            }
        }
        me
    }

    /// The index of node `name`.
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.index.get(name).copied()
    }

    /// The name of the node at `index`.
    pub fn name(&self, index: usize) -> &'a str {
        self.places[index].name
    }

    /// Set what node `name` takes from now on ([`State`]).
    pub fn set_state(&mut self, name: &str, state: State) {
        if let Some(i) = self.index_of(name) {
            self.places[i].state = state;
        }
    }

    pub fn state(&self, name: &str) -> Option<State> {
        self.index_of(name).map(|i| self.places[i].state)
    }

    /// Node `name` carries the run's pending `PreferNoSchedule` taint from now on, or not: pods
    /// go elsewhere when they can.
    pub fn set_pending(&mut self, name: &str, pending: bool) {
        if let Some(i) = self.index_of(name) {
            self.places[i].pending = pending;
        }
    }

    /// Node `name` is coming back (see [`Places::new`]) or not.
    pub fn set_coming_back(&mut self, name: &str, coming_back: bool) {
        if let Some(i) = self.index_of(name) {
            self.places[i].coming_back = coming_back;
            // Its filters changed: forget what was remembered.
            self.filtered.clear();
        }
    }

    /// A pod with these requests left node `name`: its room grows.
    pub fn release(&mut self, name: &str, requests: Resources) {
        if let Some(i) = self.index_of(name) {
            self.places[i].room = self.places[i].room.plus(requests);
        }
    }

    /// Put `pod` on the best node that takes it and subtract its requests; `None` when none
    /// does (ask [`Places::why_not`] why).
    pub fn place(&mut self, pod: &Pod) -> Option<Placed> {
        let requests = pod_requests(pod);
        let empty = PodSpec::default();
        let spec = pod.spec.as_ref().unwrap_or(&empty);
        let key = filter_key(spec);
        if !self.filtered.contains_key(&key) {
            let passing = self.passing(spec);
            self.filtered.insert(key.clone(), passing);
        }
        let best = self.best(&key, requests)?;
        let place = &mut self.places[best];
        place.room = place.room.minus(requests);
        Some(Placed { node: best, requests })
    }

    /// Put a pod where `placed` says, whatever the node's state (a plan applying its moves).
    pub fn reserve(&mut self, placed: Placed) {
        let place = &mut self.places[placed.node];
        place.room = place.room.minus(placed.requests);
    }

    /// Take back a pod [`Places::place`] put.
    pub fn unplace(&mut self, placed: Placed) {
        let place = &mut self.places[placed.node];
        place.room = place.room.plus(placed.requests);
    }

    fn passing(&self, spec: &PodSpec) -> Vec<(usize, bool)> {
        self.places
            .iter()
            .enumerate()
            .filter(|(_, p)| passes_filters(spec, p.node, p.coming_back))
            .map(|(i, p)| (i, disfavoured(spec, p.node)))
            .collect()
    }

    /// The open node of `passing` with room for `requests`: not disfavoured first, then the
    /// least allocated (the mean of its free CPU and memory shares), the first of equals. As
    /// kube-scheduler on a large cluster (`percentageOfNodesToScore`), it scores only the first
    /// [`nodes_to_score`] nodes that fit, from where the last search ended.
    fn best(&mut self, key: &str, requests: Resources) -> Option<usize> {
        let passing = &self.filtered[key];
        if passing.is_empty() {
            return None;
        }
        let enough = nodes_to_score(self.places.len());
        let start = self.next_start % passing.len();
        let mut best: Option<(usize, bool, f64)> = None;
        let mut found = 0;
        let mut looked = 0;
        for &(i, disfavoured) in passing[start..].iter().chain(&passing[..start]) {
            looked += 1;
            let p = &self.places[i];
            if p.state != State::Open || !p.room.fits(requests) {
                continue;
            }
            let disfavoured = disfavoured || p.pending;
            let score = free_share(p.room.minus(requests), p.allocatable);
            let better = match best {
                None => true,
                Some((_, d, s)) => (d && !disfavoured) || (d == disfavoured && score > s),
            };
            if better {
                best = Some((i, disfavoured, score));
            }
            found += 1;
            if found >= enough {
                break;
            }
        }
        self.next_start = (start + looked) % passing.len();
        best.map(|(i, _, _)| i)
    }

    /// Why no node takes `pod` now, in the scheduler's words; `None` when one does.
    pub fn why_not(&self, pod: &Pod) -> Option<Nowhere> {
        let others: Vec<Candidate> = self
            .places
            .iter()
            .filter(|p| p.state != State::Leaving)
            .map(|p| Candidate {
                node: p.node,
                coming_back: p.coming_back,
                out: p.state == State::Out,
                room: Some(p.room),
            })
            .collect();
        explain(pod, &others)
    }
}

/// How many nodes that fit kube-scheduler scores before it chooses, in a cluster of `nodes`
/// (its adaptive `percentageOfNodesToScore`: 50% less 1% per 125 nodes, at least 5%, and at
/// least 100 nodes).
pub fn nodes_to_score(nodes: usize) -> usize {
    if nodes < 100 {
        return nodes.max(1);
    }
    let percent = 50usize.saturating_sub(nodes / 125).max(5);
    (nodes * percent / 100).max(100)
}

/// The mean share of CPU and memory left free (1 for room that is not judged).
fn free_share(room: Resources, allocatable: Resources) -> f64 {
    let share = |free: i64, all: i64| {
        if all == i64::MAX || all <= 0 {
            1.0
        } else {
            free as f64 / all as f64
        }
    };
    (share(room.cpu_millis, allocatable.cpu_millis) + share(room.memory_bytes, allocatable.memory_bytes)) / 2.0
}

/// Order pods largest first: by CPU, then memory.
pub fn largest_first(pods: &mut [&Pod]) {
    pods.sort_by_cached_key(|p| {
        let r = pod_requests(p);
        std::cmp::Reverse((r.cpu_millis, r.memory_bytes))
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{Container, NodeCondition, NodeStatus, ResourceRequirements, Taint};
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn node(name: &str, cpu: &str) -> Node {
        Node {
            metadata: ObjectMeta {
                name: Some(name.into()),
                ..Default::default()
            },
            spec: Some(Default::default()),
            status: Some(NodeStatus {
                allocatable: Some(
                    [("cpu".to_string(), Quantity(cpu.into()))]
                        .into_iter()
                        .chain([("pods".to_string(), Quantity("10".into()))])
                        .collect(),
                ),
                conditions: Some(vec![NodeCondition {
                    type_: "Ready".into(),
                    status: "True".into(),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
        }
    }

    fn pod(name: &str, cpu: &str) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                ..Default::default()
            },
            spec: Some(PodSpec {
                containers: vec![Container {
                    name: "c".into(),
                    resources: Some(ResourceRequirements {
                        requests: Some([("cpu".to_string(), Quantity(cpu.into()))].into()),
                        ..Default::default()
                    }),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn placed_on<'a>(places: &mut Places<'a>, p: &Pod) -> Option<&'a str> {
        places.place(p).map(|at| places.name(at.node))
    }

    #[test]
    fn a_pod_goes_to_the_least_allocated_node_and_takes_its_room() {
        let nodes = [node("small", "2"), node("big", "8")];
        let mut places = Places::new(&nodes, &[], &[]);
        assert_eq!(placed_on(&mut places, &pod("a", "6")), Some("big"));
        // big has 2 of 8 left (25%), small 2 of 2 (100%).
        assert_eq!(placed_on(&mut places, &pod("b", "1")), Some("small"));
        assert_eq!(placed_on(&mut places, &pod("c", "3")), None, "1 and 2 cores left");
        assert!(places
            .why_not(&pod("c", "3"))
            .unwrap()
            .to_string()
            .contains("Insufficient cpu on 2 nodes"));
    }

    #[test]
    fn nodes_to_be_patched_later_take_pods_only_when_nothing_else_can() {
        let mut pending = node("pending", "8");
        pending.spec.as_mut().unwrap().taints = Some(vec![Taint {
            key: "aks-patch.io/pending".into(),
            effect: "PreferNoSchedule".into(),
            ..Default::default()
        }]);
        let nodes = [pending, node("done", "2")];
        let mut places = Places::new(&nodes, &[], &[]);
        assert_eq!(
            placed_on(&mut places, &pod("a", "2")),
            Some("done"),
            "though emptier, pending is avoided"
        );
        assert_eq!(
            placed_on(&mut places, &pod("b", "2")),
            Some("pending"),
            "a preference, not a filter"
        );
        places.set_pending("done", true);
        places.set_state("pending", State::Leaving);
        assert_eq!(placed_on(&mut places, &pod("c", "1")), None);
    }

    #[test]
    fn largest_first_orders_by_cpu_then_memory() {
        let (a, b, c) = (pod("a", "100m"), pod("b", "2"), pod("c", "500m"));
        let mut order = vec![&a, &b, &c];
        largest_first(&mut order);
        let names: Vec<&str> = order.iter().map(|p| p.metadata.name.as_deref().unwrap()).collect();
        assert_eq!(names, ["b", "c", "a"]);
    }
}
