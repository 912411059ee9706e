//! The cluster read at once, in three lists: every node, every pod that is not finished
//! (all namespaces), every PodDisruptionBudget. Planning a large rollout reads the cluster
//! this way rather than node by node: three paged lists cost the same for 10 nodes as for
//! 5,000 and give one consistent picture to decide on ([`crate::rollout::batches`]).

use super::error::KubeError;
use super::list::list_all;
use ::kube::api::{Api, ListParams};
use ::kube::Client;
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;

/// The node pool label AKS puts on every node.
pub const POOL_LABEL: &str = "kubernetes.azure.com/agentpool";
/// The older, short pool label (still set by AKS); read first, as [`super::NodeInfo`] does.
pub const SHORT_POOL_LABEL: &str = "agentpool";
/// The availability zone label.
pub const ZONE_LABEL: &str = "topology.kubernetes.io/zone";

/// Pods that still run or wait to: the ones that take room on a node and that a drain evicts.
pub const NOT_FINISHED: &str = "status.phase!=Succeeded,status.phase!=Failed";

/// The cluster as three lists returned it.
#[derive(Debug, Clone, Default)]
pub struct ClusterSnapshot {
    pub nodes: Vec<Node>,
    /// Pods of all namespaces, finished ones (Succeeded, Failed) left out.
    pub pods: Vec<Pod>,
    /// PodDisruptionBudgets of all namespaces.
    pub pdbs: Vec<PodDisruptionBudget>,
}

/// Read the cluster: nodes, pods that are not finished and PDBs, the three lists at once,
/// each paged and retried on transient errors ([`list_all`]). Without permission to list
/// PodDisruptionBudgets (HTTP 403) the snapshot has none, as a drain's plan does, and a
/// warning says so.
pub async fn read(client: &Client) -> Result<ClusterSnapshot, KubeError> {
    let nodes: Api<Node> = Api::all(client.clone());
    let pods: Api<Pod> = Api::all(client.clone());
    let pdbs: Api<PodDisruptionBudget> = Api::all(client.clone());
    let all = ListParams::default();
    let running = ListParams::default().fields(NOT_FINISHED);
    let (nodes, pods, pdbs) = futures::join!(
        list_all(&nodes, &all, "listing nodes"),
        list_all(&pods, &running, "listing the pods of all namespaces"),
        list_all(&pdbs, &all, "listing PodDisruptionBudgets"),
    );
    let pdbs = match pdbs {
        Ok(p) => p,
        Err(e) if e.status_code() == Some(403) => {
            tracing::warn!("cannot list PodDisruptionBudgets, the plan does not count them: {e}");
            vec![]
        }
        Err(e) => return Err(e),
    };
    let mut pods = pods?;
    // A server that ignores the field selector must not make finished pods take room.
    pods.retain(|p| !is_finished(p));
    Ok(ClusterSnapshot {
        nodes: nodes?,
        pods,
        pdbs,
    })
}

fn is_finished(pod: &Pod) -> bool {
    matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded") | Some("Failed")
    )
}

impl ClusterSnapshot {
    /// The node called `name`.
    pub fn node(&self, name: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| node_name(n) == name)
    }

    /// The pods bound to node `name`.
    pub fn pods_on<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Pod> + 'a {
        self.pods.iter().filter(move |p| pod_node(p) == Some(name))
    }
}

/// The node's name (empty without one).
pub fn node_name(node: &Node) -> &str {
    node.metadata.name.as_deref().unwrap_or("")
}

/// The node a pod is bound to (`spec.nodeName`); `None` while it is Pending unscheduled.
pub fn pod_node(pod: &Pod) -> Option<&str> {
    pod.spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .filter(|n| !n.is_empty())
}

fn label<'a>(node: &'a Node, key: &str) -> Option<&'a str> {
    node.metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(key))
        .map(String::as_str)
        .filter(|v| !v.is_empty())
}

/// The node's pool: label `agentpool`, else `kubernetes.azure.com/agentpool`.
pub fn pool_of(node: &Node) -> Option<&str> {
    label(node, SHORT_POOL_LABEL).or_else(|| label(node, POOL_LABEL))
}

/// The node's availability zone (label `topology.kubernetes.io/zone`).
pub fn zone_of(node: &Node) -> Option<&str> {
    label(node, ZONE_LABEL)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{PodSpec, PodStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    use wiremock::{Mock, MockServer, ResponseTemplate};

    fn node(name: &str, labels: &[(&str, &str)]) -> Node {
        Node {
            metadata: ObjectMeta {
                name: Some(name.into()),
                labels: Some(labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    fn pod(name: &str, on: Option<&str>) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("ns".into()),
                ..Default::default()
            },
            spec: Some(PodSpec {
                node_name: on.map(str::to_string),
                ..Default::default()
            }),
            status: Some(PodStatus::default()),
        }
    }

    #[test]
    fn pool_and_zone_are_read_from_the_aks_labels() {
        let n = node("a", &[(POOL_LABEL, "user"), (ZONE_LABEL, "westeurope-2")]);
        assert_eq!(pool_of(&n), Some("user"));
        assert_eq!(zone_of(&n), Some("westeurope-2"));
        let short = node("b", &[(SHORT_POOL_LABEL, "system"), (POOL_LABEL, "other")]);
        assert_eq!(
            pool_of(&short),
            Some("system"),
            "the short label wins, as in the node table"
        );
        let bare = node("c", &[(ZONE_LABEL, "")]);
        assert_eq!((pool_of(&bare), zone_of(&bare)), (None, None));
    }

    #[test]
    fn pods_on_a_node_are_those_bound_to_it() {
        let snap = ClusterSnapshot {
            nodes: vec![node("a", &[]), node("b", &[])],
            pods: vec![
                pod("p1", Some("a")),
                pod("p2", Some("b")),
                pod("p3", None),
                pod("p4", Some("a")),
            ],
            pdbs: vec![],
        };
        let on_a: Vec<&str> = snap.pods_on("a").map(|p| p.metadata.name.as_deref().unwrap()).collect();
        assert_eq!(on_a, ["p1", "p4"]);
        assert_eq!(snap.node("b").map(node_name), Some("b"));
        assert!(snap.node("z").is_none());
    }

    async fn api_server(pdbs: ResponseTemplate) -> (MockServer, Client) {
        use wiremock::matchers::{method, path, query_param};
        crate::http::install_crypto_provider();
        let server = MockServer::start().await;
        let list = |kind: &str, items: serde_json::Value| {
            ResponseTemplate::new(200).set_body_json(serde_json::json!({
                "apiVersion": "v1", "kind": kind, "metadata": {}, "items": items
            }))
        };
        Mock::given(method("GET"))
            .and(path("/api/v1/nodes"))
            .respond_with(list("NodeList", serde_json::json!([{"metadata": {"name": "n1"}}])))
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(path("/api/v1/pods"))
            .and(query_param("fieldSelector", NOT_FINISHED))
            .respond_with(list(
                "PodList",
                serde_json::json!([
                    {"metadata": {"name": "web", "namespace": "shop"}, "spec": {"nodeName": "n1", "containers": []}, "status": {"phase": "Running"}},
                    {"metadata": {"name": "job", "namespace": "shop"}, "spec": {"nodeName": "n1", "containers": []}, "status": {"phase": "Succeeded"}}
                ]),
            ))
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(path("/apis/policy/v1/poddisruptionbudgets"))
            .respond_with(pdbs)
            .mount(&server)
            .await;
        let config = ::kube::Config::new(server.uri().parse().unwrap());
        let client = Client::try_from(config).unwrap();
        (server, client)
    }

    #[tokio::test]
    async fn the_snapshot_lists_nodes_running_pods_and_pdbs_of_all_namespaces() {
        let pdbs = ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "apiVersion": "policy/v1", "kind": "PodDisruptionBudgetList", "metadata": {},
            "items": [{"metadata": {"name": "web", "namespace": "shop"}}]
        }));
        let (_server, client) = api_server(pdbs).await;
        let snap = read(&client).await.unwrap();
        assert_eq!(snap.nodes.len(), 1);
        let pods: Vec<&str> = snap
            .pods_on("n1")
            .map(|p| p.metadata.name.as_deref().unwrap())
            .collect();
        assert_eq!(
            pods,
            ["web"],
            "a finished pod takes no room even if the server sends it"
        );
        assert_eq!(snap.pdbs.len(), 1);
    }

    #[tokio::test]
    async fn without_permission_to_list_pdbs_the_snapshot_has_none() {
        let forbidden = ResponseTemplate::new(403).set_body_json(serde_json::json!({
            "apiVersion": "v1", "kind": "Status", "status": "Failure", "reason": "Forbidden",
            "message": "poddisruptionbudgets.policy is forbidden", "code": 403
        }));
        let (_server, client) = api_server(forbidden).await;
        let snap = read(&client).await.unwrap();
        assert_eq!((snap.nodes.len(), snap.pods.len(), snap.pdbs.len()), (1, 1, 0));
    }
}
