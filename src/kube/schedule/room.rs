//! Room on a node, as kube-scheduler's NodeResourcesFit counts it: what a pod requests
//! ([`pod_requests`]), what a node offers ([`allocatable`]), and what is left once the pods
//! bound to it are counted ([`free_room`]). CPU in millicores, memory in bytes, and the
//! number of pods (allocatable `pods`).

use super::quantity::{cpu_text, memory_text, parse_quantity};
use k8s_openapi::api::core::v1::{Container, Node, Pod};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt;

/// CPU, memory and pod slots: what a pod requests, or what a node has (left).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Resources {
    pub cpu_millis: i64,
    pub memory_bytes: i64,
    pub pods: i64,
}

impl Resources {
    /// Room that is not judged: a node whose kubelet posted no allocatable.
    pub const UNLIMITED: Resources = Resources {
        cpu_millis: i64::MAX,
        memory_bytes: i64::MAX,
        pods: i64::MAX,
    };

    pub fn plus(self, o: Resources) -> Resources {
        Resources {
            cpu_millis: self.cpu_millis.saturating_add(o.cpu_millis),
            memory_bytes: self.memory_bytes.saturating_add(o.memory_bytes),
            pods: self.pods.saturating_add(o.pods),
        }
    }

    /// `self − o`; unlimited room stays unlimited.
    pub fn minus(self, o: Resources) -> Resources {
        let sub = |a: i64, b: i64| if a == i64::MAX { a } else { a.saturating_sub(b) };
        Resources {
            cpu_millis: sub(self.cpu_millis, o.cpu_millis),
            memory_bytes: sub(self.memory_bytes, o.memory_bytes),
            pods: sub(self.pods, o.pods),
        }
    }

    fn max(self, o: Resources) -> Resources {
        Resources {
            cpu_millis: self.cpu_millis.max(o.cpu_millis),
            memory_bytes: self.memory_bytes.max(o.memory_bytes),
            pods: self.pods.max(o.pods),
        }
    }

    /// What this room lacks for `requests`, in the scheduler's order (empty: it fits).
    pub fn shortages(self, requests: Resources) -> Vec<Shortage> {
        let mut out = vec![];
        if requests.pods > self.pods {
            out.push(Shortage::Pods);
        }
        if requests.cpu_millis > self.cpu_millis {
            out.push(Shortage::Cpu);
        }
        if requests.memory_bytes > self.memory_bytes {
            out.push(Shortage::Memory);
        }
        out
    }

    pub fn fits(self, requests: Resources) -> bool {
        self.shortages(requests).is_empty()
    }
}

impl fmt::Display for Resources {
    /// A pod's requests: `cpu 500m, memory 256Mi` (what is zero is left out).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = vec![];
        if self.cpu_millis != 0 {
            parts.push(format!("cpu {}", cpu_text(self.cpu_millis)));
        }
        if self.memory_bytes != 0 {
            parts.push(format!("memory {}", memory_text(self.memory_bytes)));
        }
        if parts.is_empty() {
            write!(f, "no cpu or memory")
        } else {
            write!(f, "{}", parts.join(", "))
        }
    }
}

/// What a node lacks for a pod, in kube-scheduler's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum Shortage {
    Cpu,
    Memory,
    Pods,
}

impl fmt::Display for Shortage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Shortage::Cpu => "Insufficient cpu",
            Shortage::Memory => "Insufficient memory",
            Shortage::Pods => "Too many pods",
        })
    }
}

/// CPU and memory of a `requests`/`allocatable` map. A quantity the API server would not
/// have accepted counts as nothing (and is logged).
fn read_map(map: Option<&BTreeMap<String, Quantity>>, pods: i64) -> Resources {
    let read = |key: &str, millis: bool| {
        map.and_then(|m| m.get(key))
            .map(|q| match parse_quantity(&q.0) {
                Ok(a) if millis => a.millis(),
                Ok(a) => a.units(),
                Err(e) => {
                    tracing::debug!("{key}: {e}");
                    0
                }
            })
            .unwrap_or(0)
    };
    Resources {
        cpu_millis: read("cpu", true),
        memory_bytes: read("memory", false),
        pods,
    }
}

fn container_requests(c: &Container) -> Resources {
    read_map(c.resources.as_ref().and_then(|r| r.requests.as_ref()), 0)
}

/// What `pod` requests, as kube-scheduler counts it (`resourcehelper.PodRequests`): the sum
/// of its containers; sidecars (init containers with `restartPolicy: Always`) run beside
/// them and add to it; every other init container runs alone (beside the sidecars started
/// before it), so the pod needs at least the largest of those; plus the pod's overhead.
/// Pod-level requests (`spec.resources`), where set, stand for the containers'. One pod slot.
pub fn pod_requests(pod: &Pod) -> Resources {
    let Some(spec) = pod.spec.as_ref() else {
        return Resources {
            pods: 1,
            ..Default::default()
        };
    };
    let mut sum = spec
        .containers
        .iter()
        .map(container_requests)
        .fold(Resources::default(), Resources::plus);
    let mut sidecars = Resources::default();
    let mut init = Resources::default();
    for c in spec.init_containers.iter().flatten() {
        let r = container_requests(c);
        if c.restart_policy.as_deref() == Some("Always") {
            sidecars = sidecars.plus(r);
            init = init.max(sidecars);
        } else {
            init = init.max(r.plus(sidecars));
        }
    }
    sum = sum.plus(sidecars).max(init);
    if let Some(pod_level) = spec.resources.as_ref().and_then(|r| r.requests.as_ref()) {
        let p = read_map(Some(pod_level), 0);
        if pod_level.contains_key("cpu") {
            sum.cpu_millis = p.cpu_millis;
        }
        if pod_level.contains_key("memory") {
            sum.memory_bytes = p.memory_bytes;
        }
    }
    let overhead = read_map(spec.overhead.as_ref(), 0);
    Resources {
        pods: 1,
        ..sum.plus(overhead)
    }
}

/// What the node offers pods (`status.allocatable`). A node that posted no allocatable at
/// all is not judged ([`Resources::UNLIMITED`]); a resource missing from it is none, as the
/// scheduler has it.
pub fn allocatable(node: &Node) -> Resources {
    match node.status.as_ref().and_then(|s| s.allocatable.as_ref()) {
        None => Resources::UNLIMITED,
        Some(a) => {
            let pods = a
                .get("pods")
                .and_then(|q| parse_quantity(&q.0).ok())
                .map_or(0, |q| q.units());
            read_map(Some(a), pods)
        }
    }
}

/// The node's room: allocatable less the requests of `pods` (those bound to it, not finished).
pub fn free_room<'a>(node: &Node, pods: impl IntoIterator<Item = &'a Pod>) -> Resources {
    pods.into_iter()
        .fold(allocatable(node), |room, p| room.minus(pod_requests(p)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{NodeStatus, PodSpec, ResourceRequirements};

    fn container(cpu: &str, memory: &str) -> Container {
        let mut requests = BTreeMap::new();
        if !cpu.is_empty() {
            requests.insert("cpu".to_string(), Quantity(cpu.into()));
        }
        if !memory.is_empty() {
            requests.insert("memory".to_string(), Quantity(memory.into()));
        }
        Container {
            name: "c".into(),
            resources: Some(ResourceRequirements {
                requests: Some(requests),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn sidecar(cpu: &str, memory: &str) -> Container {
        Container {
            restart_policy: Some("Always".into()),
            ..container(cpu, memory)
        }
    }

    fn pod(containers: Vec<Container>, init: Vec<Container>) -> Pod {
        Pod {
            spec: Some(PodSpec {
                containers,
                init_containers: Some(init),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn res(cpu_millis: i64, memory_mib: i64) -> Resources {
        Resources {
            cpu_millis,
            memory_bytes: memory_mib << 20,
            pods: 1,
        }
    }

    #[test]
    fn a_pod_requests_the_sum_of_its_containers() {
        let p = pod(vec![container("250m", "64Mi"), container("0.5", "128Mi")], vec![]);
        assert_eq!(pod_requests(&p), res(750, 192));
        assert_eq!(
            pod_requests(&Pod::default()),
            res(0, 0),
            "one pod slot and nothing else"
        );
    }

    #[test]
    fn an_init_container_larger_than_the_containers_sets_the_request() {
        let p = pod(vec![container("100m", "64Mi")], vec![container("1", "32Mi")]);
        assert_eq!(pod_requests(&p), res(1000, 64), "max per resource");
    }

    #[test]
    fn sidecars_add_to_the_containers_and_to_later_init_containers() {
        // Sidecar 200m runs beside everything; the init container after it needs 900m + 200m.
        let p = pod(
            vec![container("300m", "100Mi")],
            vec![sidecar("200m", "50Mi"), container("900m", "10Mi")],
        );
        assert_eq!(pod_requests(&p), res(1100, 150));
    }

    #[test]
    fn overhead_and_pod_level_requests_count() {
        let mut p = pod(vec![container("100m", "64Mi")], vec![]);
        let spec = p.spec.as_mut().unwrap();
        spec.overhead = Some([("cpu".to_string(), Quantity("50m".into()))].into());
        spec.resources = Some(ResourceRequirements {
            requests: Some([("memory".to_string(), Quantity("1Gi".into()))].into()),
            ..Default::default()
        });
        assert_eq!(pod_requests(&p), res(150, 1024));
    }

    #[test]
    fn free_room_is_allocatable_less_the_pods_requests() {
        let node = Node {
            status: Some(NodeStatus {
                allocatable: Some(
                    [("cpu", "3860m"), ("memory", "12880208Ki"), ("pods", "110")]
                        .into_iter()
                        .map(|(k, v)| (k.to_string(), Quantity(v.into())))
                        .collect(),
                ),
                ..Default::default()
            }),
            ..Default::default()
        };
        let pods = [
            pod(vec![container("1", "1Gi")], vec![]),
            pod(vec![container("860m", "")], vec![]),
        ];
        assert_eq!(
            free_room(&node, &pods),
            Resources {
                cpu_millis: 2000,
                memory_bytes: 12_880_208 * 1024 - (1 << 30),
                pods: 108
            }
        );
        assert_eq!(
            free_room(&Node::default(), &pods),
            Resources::UNLIMITED,
            "no allocatable: not judged"
        );
    }

    #[test]
    fn shortages_use_the_schedulers_words() {
        let room = res(500, 100);
        assert!(room.fits(res(500, 100)));
        let short = room.shortages(res(501, 101));
        let words: Vec<String> = short.iter().map(|s| s.to_string()).collect();
        assert_eq!(words, ["Insufficient cpu", "Insufficient memory"]);
        let full = Resources { pods: 0, ..room };
        assert_eq!(full.shortages(res(1, 1)), [Shortage::Pods]);
        assert_eq!(res(1500, 256).to_string(), "cpu 1500m, memory 256Mi");
    }
}
