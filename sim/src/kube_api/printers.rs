//! Server-side printing: the `meta.k8s.io` Table that `kubectl get` asks for, with the
//! columns and cell values the kube-apiserver's printers produce. The column logic
//! (AGE, node STATUS and ROLES, pod READY/STATUS) is pure and unit-tested here.

use crate::model;
use crate::objects::selector::LabelSelector;
use crate::store::Resource;
use crate::time::parse as parse_time;
use jiff::{SignedDuration, Timestamp};
use serde_json::{json, Value};

/// `duration.HumanDuration` from k8s.io/apimachinery, on a signed duration.
pub fn human_duration(d: SignedDuration) -> String {
    // Go's int(d.Seconds()) truncates toward zero, as as_secs does.
    let seconds = d.as_secs();
    if seconds < -1 {
        return "<invalid>".into();
    } else if seconds < 0 {
        return "0s".into();
    } else if seconds < 60 * 2 {
        return format!("{seconds}s");
    }
    let minutes = seconds / 60;
    if minutes < 10 {
        let s = seconds % 60;
        if s == 0 {
            return format!("{minutes}m");
        }
        return format!("{minutes}m{s}s");
    } else if minutes < 60 * 3 {
        return format!("{minutes}m");
    }
    let hours = seconds / 3600;
    if hours < 8 {
        let m = minutes % 60;
        if m == 0 {
            return format!("{hours}h");
        }
        return format!("{hours}h{m}m");
    } else if hours < 48 {
        return format!("{hours}h");
    } else if hours < 24 * 8 {
        let h = hours % 24;
        if h == 0 {
            return format!("{}d", hours / 24);
        }
        return format!("{}d{}h", hours / 24, h);
    } else if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    } else if hours < 24 * 365 * 8 {
        let dy = (hours / 24) % 365;
        if dy == 0 {
            return format!("{}y", hours / 24 / 365);
        }
        return format!("{}y{}d", hours / 24 / 365, dy);
    }
    format!("{}y", hours / 24 / 365)
}

/// `translateTimestampSince`: `<unknown>` for a missing timestamp.
pub fn age_since(ts: Option<&str>, now: Timestamp) -> String {
    match ts.and_then(parse_time) {
        Some(t) => human_duration(now.duration_since(t)),
        None => "<unknown>".into(),
    }
}

/// Node STATUS: from the Ready condition only (`Ready`, `NotReady`, or `Unknown` when
/// there is no Ready condition), plus `SchedulingDisabled` when cordoned.
pub fn node_status(node: &Value) -> String {
    let mut status = vec![];
    if let Some(c) = node["status"]["conditions"]
        .as_array()
        .and_then(|c| c.iter().rev().find(|c| c["type"] == "Ready"))
    {
        if c["status"] == "True" {
            status.push("Ready".to_string());
        } else {
            status.push("NotReady".to_string());
        }
    }
    if status.is_empty() {
        status.push("Unknown".into());
    }
    if node["spec"]["unschedulable"].as_bool().unwrap_or(false) {
        status.push("SchedulingDisabled".into());
    }
    status.join(",")
}

/// Node ROLES: suffixes of `node-role.kubernetes.io/<role>` labels and the value of
/// `kubernetes.io/role`, sorted and deduplicated; `<none>` when there are none.
pub fn node_roles(labels: &Value) -> String {
    let mut roles = std::collections::BTreeSet::new();
    if let Some(m) = labels.as_object() {
        for (k, v) in m {
            if let Some(role) = k.strip_prefix("node-role.kubernetes.io/") {
                if !role.is_empty() {
                    roles.insert(role.to_string());
                }
            } else if k == "kubernetes.io/role" {
                if let Some(v) = v.as_str().filter(|v| !v.is_empty()) {
                    roles.insert(v.to_string());
                }
            }
        }
    }
    if roles.is_empty() {
        "<none>".into()
    } else {
        roles.into_iter().collect::<Vec<_>>().join(",")
    }
}

/// The first address of a type, or `<none>`.
fn or_unknown(v: &Value) -> String {
    v.as_str().filter(|s| !s.is_empty()).unwrap_or("<unknown>").to_string()
}

fn or_none(v: &Value) -> String {
    v.as_str().filter(|s| !s.is_empty()).unwrap_or("<none>").to_string()
}

/// Pod READY (`1/2`), STATUS and RESTARTS as the pod printer computes them.
pub fn pod_columns(pod: &Value) -> (String, String, i64) {
    let total = pod["spec"]["containers"].as_array().map(|c| c.len()).unwrap_or(0);
    let mut reason = pod["status"]["phase"].as_str().unwrap_or("").to_string();
    if let Some(r) = pod["status"]["reason"].as_str().filter(|r| !r.is_empty()) {
        reason = r.to_string();
    }
    let mut ready = 0;
    let mut restarts = 0;
    let mut has_running = false;
    if let Some(cs) = pod["status"]["containerStatuses"].as_array() {
        for c in cs.iter().rev() {
            restarts += c["restartCount"].as_i64().unwrap_or(0);
            let state = &c["state"];
            if let Some(r) = state["waiting"]["reason"].as_str().filter(|r| !r.is_empty()) {
                reason = r.to_string();
            } else if let Some(r) = state["terminated"]["reason"].as_str().filter(|r| !r.is_empty()) {
                reason = r.to_string();
            } else if state["terminated"].is_object() {
                reason = match state["terminated"]["signal"].as_i64().filter(|s| *s != 0) {
                    Some(sig) => format!("Signal:{sig}"),
                    None => format!("ExitCode:{}", state["terminated"]["exitCode"].as_i64().unwrap_or(0)),
                };
            } else if c["ready"].as_bool().unwrap_or(false) && state["running"].is_object() {
                has_running = true;
                ready += 1;
            }
        }
    }
    if reason == "Completed" && has_running {
        reason = "Running".into();
    }
    let phase = pod["status"]["phase"].as_str().unwrap_or("");
    if pod["metadata"]["deletionTimestamp"].is_string() {
        if pod["status"]["reason"] == "NodeLost" {
            reason = "Unknown".into();
        } else if phase != "Succeeded" && phase != "Failed" {
            reason = "Terminating".into();
        }
    }
    (format!("{ready}/{total}"), reason, restarts)
}

fn col(name: &str, kind: &str, priority: u8, description: &str) -> Value {
    let mut c = json!({"name": name, "type": kind, "format": "", "description": description, "priority": priority});
    if name == "Name" {
        c["format"] = json!("name");
    }
    c
}

const NAME_DOC: &str = "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names";
const AGE_DOC: &str = "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata";

/// The column definitions of a resource's table.
pub fn columns(res: &Resource) -> Vec<Value> {
    let name = col("Name", "string", 0, NAME_DOC);
    let age = col("Age", "string", 0, AGE_DOC);
    match res.plural {
        "nodes" => vec![
            name,
            col("Status", "string", 0, "The status of the node"),
            col("Roles", "string", 0, "The roles of the node"),
            age,
            col("Version", "string", 0, "Kubelet Version reported by the node."),
            col("Internal-IP", "string", 1, "List of addresses reachable to the node. Queried from cloud provider, if available."),
            col("External-IP", "string", 1, "List of addresses reachable to the node. Queried from cloud provider, if available."),
            col("OS-Image", "string", 1, "OS Image reported by the node from /etc/os-release (e.g. Debian GNU/Linux 7 (wheezy))."),
            col("Kernel-Version", "string", 1, "Kernel Version reported by the node from 'uname -r' (e.g. 3.16.0-0.bpo.4-amd64)."),
            col("Container-Runtime", "string", 1, "ContainerRuntime Version reported by the node through runtime remote API (e.g. containerd://1.4.2)."),
        ],
        "pods" => vec![
            name,
            col("Ready", "string", 0, "The aggregate readiness state of this pod for accepting traffic."),
            col("Status", "string", 0, "The aggregate status of the containers in this pod."),
            col("Restarts", "string", 0, "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted."),
            age,
            col("IP", "string", 1, "IP address allocated to the pod. Routable at least within the cluster. Empty if not yet allocated."),
            col("Node", "string", 1, "NodeName is a request to schedule this pod onto a specific node."),
            col("Nominated Node", "string", 1, "nominatedNodeName is set only when this pod preempts other pods on the node."),
            col("Readiness Gates", "string", 1, "If specified, all readiness gates will be evaluated for pod readiness."),
        ],
        "deployments" => vec![
            name,
            col("Ready", "string", 0, "Number of the pod with ready state"),
            col("Up-to-date", "integer", 0, "Total number of non-terminated pods targeted by this deployment that have the desired template spec."),
            col("Available", "integer", 0, "Total number of available pods (ready for at least minReadySeconds) targeted by this deployment."),
            age,
            col("Containers", "string", 1, "Names of each container in the template."),
            col("Images", "string", 1, "Images referenced by each container in the template."),
            col("Selector", "string", 1, "Label selector for pods. Existing ReplicaSets whose pods are selected by this will be the ones affected by this deployment."),
        ],
        "replicasets" => vec![
            name,
            col("Desired", "integer", 0, "Replicas is the number of desired replicas."),
            col("Current", "integer", 0, "Replicas is the most recently observed number of replicas."),
            col("Ready", "integer", 0, "readyReplicas is the number of pods targeted by this ReplicaSet with a Ready Condition."),
            age,
            col("Containers", "string", 1, "Names of each container in the template."),
            col("Images", "string", 1, "Images referenced by each container in the template."),
            col("Selector", "string", 1, "Selector is a label query over pods that should match the replica count."),
        ],
        "daemonsets" => vec![
            name,
            col("Desired", "integer", 0, "The total number of nodes that should be running the daemon pod."),
            col("Current", "integer", 0, "The number of nodes that are running at least 1 daemon pod and are supposed to run the daemon pod."),
            col("Ready", "integer", 0, "numberReady is the number of nodes that should be running the daemon pod and have one or more of the daemon pod running with a Ready Condition."),
            col("Up-to-date", "integer", 0, "The total number of nodes that are running updated daemon pod"),
            col("Available", "integer", 0, "The number of nodes that should be running the daemon pod and have one or more of the daemon pod running and available."),
            col("Node Selector", "string", 0, "NodeSelector is a selector which must be true for the pod to fit on a node."),
            age,
            col("Containers", "string", 1, "Names of each container in the template."),
            col("Images", "string", 1, "Images referenced by each container in the template."),
            col("Selector", "string", 1, "A label query over pods that are managed by the daemon set."),
        ],
        "poddisruptionbudgets" => vec![
            name,
            col("Min Available", "string", 0, "The minimum number of pods that must be available simultaneously. This can be either an integer or a string specifying a percentage, e.g. \"28%\"."),
            col("Max Unavailable", "string", 0, "The maximum number of pods that may be unavailable simultaneously. This can be either an integer or a string specifying a percentage, e.g. \"28%\"."),
            col("Allowed Disruptions", "integer", 0, "Calculated number of pods that may be disrupted at this time."),
            age,
        ],
        "statefulsets" => vec![
            name,
            col("Ready", "string", 0, "Number of the pod with ready state"),
            age,
            col("Containers", "string", 1, "Names of each container in the template."),
            col("Images", "string", 1, "Images referenced by each container in the template."),
        ],
        "jobs" => vec![
            name,
            col("Status", "string", 0, "Status of the job."),
            col("Completions", "string", 0, "The desired number of successfully finished pods the job should be run with."),
            col("Duration", "string", 0, "Time required to complete the job."),
            age,
            col("Containers", "string", 1, "Names of each container in the template."),
            col("Images", "string", 1, "Images referenced by each container in the template."),
            col("Selector", "string", 1, "A label query over pods that should match the pod count."),
        ],
        "cronjobs" => vec![
            name,
            col("Schedule", "string", 0, "The schedule in Cron format, see https://en.wikipedia.org/wiki/Cron."),
            col("Timezone", "string", 0, "The time zone name for the given schedule, see https://en.wikipedia.org/wiki/List_of_tz_database_time_zones."),
            col("Suspend", "boolean", 0, "This flag tells the controller to suspend subsequent executions."),
            col("Active", "integer", 0, "A list of pointers to currently running jobs."),
            col("Last Schedule", "string", 0, "Information when was the last time the job was successfully scheduled."),
            age,
            col("Containers", "string", 1, "Names of each container in the template."),
            col("Images", "string", 1, "Images referenced by each container in the template."),
            col("Selector", "string", 1, "A label query over pods that should match the pod count."),
        ],
        "configmaps" => vec![
            name,
            col("Data", "string", 0, "Data contains the configuration data."),
            age,
        ],
        "secrets" => vec![
            name,
            col("Type", "string", 0, "The type of the secret"),
            col("Data", "string", 0, "Data contains the secret data."),
            age,
        ],
        "services" => vec![
            name,
            col("Type", "string", 0, "type determines how the Service is exposed."),
            col("Cluster-IP", "string", 0, "clusterIP is the IP address of the service and is usually assigned randomly by the master."),
            col("External-IP", "string", 0, "externalIPs is a list of IP addresses for which nodes in the cluster will also accept traffic for this service."),
            col("Port(s)", "string", 0, "The network ports the service exposes."),
            age,
            col("Selector", "string", 1, "Route service traffic to pods with label keys and values matching this selector."),
        ],
        "serviceaccounts" => vec![
            name,
            col("Secrets", "string", 0, "Secrets is a list of the secrets in the same namespace that pods running using this ServiceAccount are allowed to use."),
            age,
        ],
        "roles" | "clusterroles" => vec![name, col("Created At", "date", 0, AGE_DOC)],
        "rolebindings" | "clusterrolebindings" => vec![
            name,
            col("Role", "string", 0, "RoleRef can reference a Role in the current namespace or a ClusterRole in the global namespace."),
            age,
            col("Users", "string", 1, "Users in the binding"),
            col("Groups", "string", 1, "Groups in the binding"),
            col("ServiceAccounts", "string", 1, "ServiceAccounts in the binding"),
        ],
        "leases" => vec![
            name,
            col("Holder", "string", 0, "holderIdentity contains the identity of the holder of a current lease."),
            age,
        ],
        "namespaces" => vec![
            name,
            col("Status", "string", 0, "The status of the namespace"),
            age,
        ],
        "events" => vec![
            col("Last Seen", "string", 0, "Time when this Event was last observed."),
            col("Type", "string", 0, "Type of this event (Normal, Warning), new types could be added in the future."),
            col("Reason", "string", 0, "This should be a short, machine understandable string that gives the reason for this event being generated."),
            col("Object", "string", 0, "The object that this event is about."),
            col("Message", "string", 0, "A human-readable description of the status of this operation."),
            col("Count", "integer", 1, "The number of times this event has occurred."),
            col("Name", "string", 1, NAME_DOC),
        ],
        _ => vec![name, age],
    }
}

fn template_columns(obj: &Value) -> (String, String) {
    let containers = obj["spec"]["template"]["spec"]["containers"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let names: Vec<&str> = containers.iter().filter_map(|c| c["name"].as_str()).collect();
    let images: Vec<&str> = containers.iter().filter_map(|c| c["image"].as_str()).collect();
    (names.join(","), images.join(","))
}

fn selector_column(sel: &Value) -> String {
    match LabelSelector::from_object(sel) {
        Ok(s) if !s.is_empty() => s.to_string_form(),
        _ => "<none>".into(),
    }
}

fn int_or_string(v: &Value) -> String {
    match v {
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        _ => "N/A".into(),
    }
}

fn i(v: &Value) -> i64 {
    v.as_i64().unwrap_or(0)
}

/// The cells of one object's row.
pub fn cells(res: &Resource, obj: &Value, now: Timestamp) -> Vec<Value> {
    let name = json!(obj["metadata"]["name"].as_str().unwrap_or(""));
    let age = json!(age_since(obj["metadata"]["creationTimestamp"].as_str(), now));
    let st = &obj["status"];
    match res.plural {
        "nodes" => {
            let info = &st["nodeInfo"];
            vec![
                name,
                json!(node_status(obj)),
                json!(node_roles(&obj["metadata"]["labels"])),
                age,
                json!(info["kubeletVersion"].as_str().unwrap_or("")),
                json!(model::node_address(obj, "InternalIP")),
                json!(model::node_address(obj, "ExternalIP")),
                json!(or_unknown(&info["osImage"])),
                json!(or_unknown(&info["kernelVersion"])),
                json!(or_unknown(&info["containerRuntimeVersion"])),
            ]
        }
        "pods" => {
            let (ready, status, restarts) = pod_columns(obj);
            let gates = obj["spec"]["readinessGates"].as_array().cloned().unwrap_or_default();
            let gates = if gates.is_empty() {
                "<none>".to_string()
            } else {
                let conds = st["conditions"].as_array().cloned().unwrap_or_default();
                let ok = gates
                    .iter()
                    .filter(|g| {
                        conds
                            .iter()
                            .any(|c| c["type"] == g["conditionType"] && c["status"] == "True")
                    })
                    .count();
                format!("{ok}/{}", gates.len())
            };
            vec![
                name,
                json!(ready),
                json!(status),
                json!(restarts.to_string()),
                age,
                json!(or_none(&st["podIP"])),
                json!(or_none(&obj["spec"]["nodeName"])),
                json!(or_none(&st["nominatedNodeName"])),
                json!(gates),
            ]
        }
        "deployments" => {
            let (c, im) = template_columns(obj);
            vec![
                name,
                json!(format!("{}/{}", i(&st["readyReplicas"]), i(&obj["spec"]["replicas"]))),
                json!(i(&st["updatedReplicas"])),
                json!(i(&st["availableReplicas"])),
                age,
                json!(c),
                json!(im),
                json!(selector_column(&obj["spec"]["selector"])),
            ]
        }
        "replicasets" => {
            let (c, im) = template_columns(obj);
            vec![
                name,
                json!(i(&obj["spec"]["replicas"])),
                json!(i(&st["replicas"])),
                json!(i(&st["readyReplicas"])),
                age,
                json!(c),
                json!(im),
                json!(selector_column(&obj["spec"]["selector"])),
            ]
        }
        "daemonsets" => {
            let (c, im) = template_columns(obj);
            let ns = obj["spec"]["template"]["spec"]["nodeSelector"]
                .as_object()
                .filter(|m| !m.is_empty())
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                        .collect::<Vec<_>>()
                        .join(",")
                })
                .unwrap_or_else(|| "<none>".into());
            vec![
                name,
                json!(i(&st["desiredNumberScheduled"])),
                json!(i(&st["currentNumberScheduled"])),
                json!(i(&st["numberReady"])),
                json!(i(&st["updatedNumberScheduled"])),
                json!(i(&st["numberAvailable"])),
                json!(ns),
                age,
                json!(c),
                json!(im),
                json!(selector_column(&obj["spec"]["selector"])),
            ]
        }
        "poddisruptionbudgets" => vec![
            name,
            json!(int_or_string(&obj["spec"]["minAvailable"])),
            json!(int_or_string(&obj["spec"]["maxUnavailable"])),
            json!(i(&st["disruptionsAllowed"])),
            age,
        ],
        "statefulsets" => {
            let (c, im) = template_columns(obj);
            vec![
                name,
                json!(format!("{}/{}", i(&st["readyReplicas"]), i(&obj["spec"]["replicas"]))),
                age,
                json!(c),
                json!(im),
            ]
        }
        "jobs" => {
            let (c, im) = template_columns(obj);
            let completions = obj["spec"]["completions"].as_i64().unwrap_or(1);
            let done = |t: &str| {
                st["conditions"]
                    .as_array()
                    .is_some_and(|cs| cs.iter().any(|c| c["type"] == t && c["status"] == "True"))
            };
            let status = if done("Complete") {
                "Complete"
            } else if done("Failed") {
                "Failed"
            } else {
                "Running"
            };
            let start = st["startTime"].as_str().and_then(parse_time);
            let end = st["completionTime"].as_str().and_then(parse_time).unwrap_or(now);
            let duration = start.map(|s| human_duration(end.duration_since(s))).unwrap_or_default();
            vec![
                name,
                json!(status),
                json!(format!("{}/{completions}", i(&st["succeeded"]))),
                json!(duration),
                age,
                json!(c),
                json!(im),
                json!(selector_column(&obj["spec"]["selector"])),
            ]
        }
        "cronjobs" => {
            let tpl = &obj["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"];
            let list = |k: &str| {
                tpl.as_array()
                    .map(|a| a.iter().filter_map(|c| c[k].as_str()).collect::<Vec<_>>().join(","))
                    .unwrap_or_default()
            };
            vec![
                name,
                json!(obj["spec"]["schedule"].as_str().unwrap_or("")),
                json!(obj["spec"]["timeZone"].as_str().unwrap_or("<none>")),
                json!(obj["spec"]["suspend"].as_bool().unwrap_or(false)),
                json!(st["active"].as_array().map(Vec::len).unwrap_or(0)),
                json!(st["lastScheduleTime"]
                    .as_str()
                    .map(|t| age_since(Some(t), now))
                    .unwrap_or_else(|| "<none>".into())),
                age,
                json!(list("name")),
                json!(list("image")),
                json!("<none>"),
            ]
        }
        "configmaps" => {
            let n = obj["data"].as_object().map(|m| m.len()).unwrap_or(0)
                + obj["binaryData"].as_object().map(|m| m.len()).unwrap_or(0);
            vec![name, json!(n.to_string()), age]
        }
        "secrets" => {
            let n = obj["data"].as_object().map(|m| m.len()).unwrap_or(0);
            vec![
                name,
                json!(obj["type"].as_str().unwrap_or("Opaque")),
                json!(n.to_string()),
                age,
            ]
        }
        "services" => {
            let spec = &obj["spec"];
            let ports = spec["ports"]
                .as_array()
                .filter(|a| !a.is_empty())
                .map(|a| {
                    a.iter()
                        .map(|p| {
                            let proto = p["protocol"].as_str().unwrap_or("TCP");
                            match p["nodePort"].as_i64() {
                                Some(np) => format!("{}:{np}/{proto}", i(&p["port"])),
                                None => format!("{}/{proto}", i(&p["port"])),
                            }
                        })
                        .collect::<Vec<_>>()
                        .join(",")
                })
                .unwrap_or_else(|| "<none>".into());
            let sel = spec["selector"]
                .as_object()
                .filter(|m| !m.is_empty())
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                        .collect::<Vec<_>>()
                        .join(",")
                })
                .unwrap_or_else(|| "<none>".into());
            let external = match spec["type"].as_str() {
                Some("LoadBalancer") => st["loadBalancer"]["ingress"]
                    .as_array()
                    .and_then(|a| a.first())
                    .and_then(|x| x["ip"].as_str())
                    .unwrap_or("<pending>")
                    .to_string(),
                _ => "<none>".into(),
            };
            vec![
                name,
                json!(spec["type"].as_str().unwrap_or("ClusterIP")),
                json!(spec["clusterIP"].as_str().unwrap_or("<none>")),
                json!(external),
                json!(ports),
                age,
                json!(sel),
            ]
        }
        "serviceaccounts" => {
            let n = obj["secrets"].as_array().map(Vec::len).unwrap_or(0);
            vec![name, json!(n.to_string()), age]
        }
        "roles" | "clusterroles" => vec![name, obj["metadata"]["creationTimestamp"].clone()],
        "rolebindings" | "clusterrolebindings" => {
            let r = &obj["roleRef"];
            let role = format!(
                "{}/{}",
                r["kind"].as_str().unwrap_or(""),
                r["name"].as_str().unwrap_or("")
            );
            let (mut users, mut groups, mut sas) = (vec![], vec![], vec![]);
            for s in obj["subjects"].as_array().into_iter().flatten() {
                let n = s["name"].as_str().unwrap_or("").to_string();
                match s["kind"].as_str() {
                    Some("User") => users.push(n),
                    Some("Group") => groups.push(n),
                    Some("ServiceAccount") => sas.push(match s["namespace"].as_str().filter(|x| !x.is_empty()) {
                        Some(ns) => format!("{ns}/{n}"),
                        None => n,
                    }),
                    _ => {}
                }
            }
            vec![
                name,
                json!(role),
                age,
                json!(users.join(", ")),
                json!(groups.join(", ")),
                json!(sas.join(", ")),
            ]
        }
        "leases" => vec![name, json!(or_none(&obj["spec"]["holderIdentity"])), age],
        "namespaces" => vec![name, json!(st["phase"].as_str().unwrap_or("Active")), age],
        "events" => {
            let last = obj["lastTimestamp"]
                .as_str()
                .or(obj["eventTime"].as_str())
                .or(obj["metadata"]["creationTimestamp"].as_str());
            let io = &obj["involvedObject"];
            vec![
                json!(age_since(last, now)),
                json!(obj["type"].as_str().unwrap_or("")),
                json!(obj["reason"].as_str().unwrap_or("")),
                json!(format!(
                    "{}/{}",
                    io["kind"].as_str().unwrap_or("").to_lowercase(),
                    io["name"].as_str().unwrap_or("")
                )),
                json!(obj["message"].as_str().unwrap_or("")),
                json!(obj["count"].as_i64().unwrap_or(1)),
                name,
            ]
        }
        _ => vec![name, age],
    }
}

/// What a table row carries as `object`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IncludeObject {
    None,
    Metadata,
    Object,
}

impl IncludeObject {
    pub fn parse(s: Option<&str>) -> IncludeObject {
        match s {
            Some("None") => IncludeObject::None,
            Some("Object") => IncludeObject::Object,
            _ => IncludeObject::Metadata,
        }
    }
}

/// An object as `PartialObjectMetadata` (its metadata only).
pub fn partial_metadata(obj: &Value, version: &str) -> Value {
    let mut meta = obj["metadata"].clone();
    if let Some(m) = meta.as_object_mut() {
        m.remove("managedFields");
    }
    json!({"kind": "PartialObjectMetadata", "apiVersion": format!("meta.k8s.io/{version}"), "metadata": meta})
}

/// A Table of these objects. `list_meta` is the list's metadata (resourceVersion, continue).
pub fn table(
    res: &Resource,
    objects: &[Value],
    include: IncludeObject,
    headers: bool,
    version: &str,
    list_meta: Value,
) -> Value {
    let now = Timestamp::now();
    let rows: Vec<Value> = objects
        .iter()
        .map(|o| {
            let mut row = json!({"cells": cells(res, o, now)});
            match include {
                IncludeObject::None => {}
                IncludeObject::Metadata => row["object"] = partial_metadata(o, version),
                IncludeObject::Object => row["object"] = o.clone(),
            }
            row
        })
        .collect();
    let mut t = json!({"kind": "Table", "apiVersion": format!("meta.k8s.io/{version}"), "metadata": list_meta});
    if headers {
        t["columnDefinitions"] = json!(columns(res));
    }
    t["rows"] = json!(rows);
    t
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store;

    fn d(secs: i64) -> String {
        human_duration(SignedDuration::from_secs(secs))
    }

    #[test]
    fn human_duration_matches_apimachinery() {
        assert_eq!(d(-5), "<invalid>");
        assert_eq!(human_duration(SignedDuration::from_millis(-1500)), "0s");
        assert_eq!(d(0), "0s");
        assert_eq!(d(45), "45s");
        assert_eq!(d(119), "119s");
        assert_eq!(d(120), "2m");
        assert_eq!(d(330), "5m30s");
        assert_eq!(d(599), "9m59s");
        assert_eq!(d(600), "10m");
        assert_eq!(d(45 * 60), "45m");
        assert_eq!(d(3 * 3600 - 1), "179m");
        assert_eq!(d(3 * 3600), "3h");
        assert_eq!(d(3 * 3600 + 5 * 60), "3h5m");
        assert_eq!(d(8 * 3600), "8h");
        assert_eq!(d(47 * 3600 + 59 * 60), "47h");
        assert_eq!(d(48 * 3600), "2d");
        assert_eq!(d(5 * 86400 + 3 * 3600), "5d3h");
        assert_eq!(d(8 * 86400), "8d");
        assert_eq!(d(42 * 86400), "42d");
        assert_eq!(d(729 * 86400), "729d");
        assert_eq!(d(730 * 86400), "2y");
        assert_eq!(d(3 * 365 * 86400 + 12 * 86400), "3y12d");
        assert_eq!(d(9 * 365 * 86400), "9y");
    }

    #[test]
    fn age_of_missing_timestamp_is_unknown() {
        assert_eq!(age_since(None, Timestamp::now()), "<unknown>");
        let now = Timestamp::now();
        let ts = (now - SignedDuration::from_secs(90)).to_string();
        assert_eq!(age_since(Some(&ts), now), "90s");
    }

    #[test]
    fn node_status_from_ready_only() {
        let mut n = json!({"status": {"conditions": [
            {"type": "MemoryPressure", "status": "True"},
            {"type": "Ready", "status": "True"}]}, "spec": {}});
        assert_eq!(node_status(&n), "Ready");
        n["spec"]["unschedulable"] = json!(true);
        assert_eq!(node_status(&n), "Ready,SchedulingDisabled");
        n["status"]["conditions"][1]["status"] = json!("Unknown");
        assert_eq!(node_status(&n), "NotReady,SchedulingDisabled");
        n["status"]["conditions"][1]["status"] = json!("False");
        n["spec"]["unschedulable"] = json!(false);
        assert_eq!(node_status(&n), "NotReady");
        let none = json!({"status": {"conditions": []}});
        assert_eq!(node_status(&none), "Unknown");
    }

    #[test]
    fn node_roles_sorted_with_kubernetes_io_role() {
        assert_eq!(
            node_roles(&json!({"kubernetes.io/role": "agent", "agentpool": "x"})),
            "agent"
        );
        assert_eq!(
            node_roles(
                &json!({"node-role.kubernetes.io/worker": "", "node-role.kubernetes.io/control-plane": "", "kubernetes.io/role": "agent"})
            ),
            "agent,control-plane,worker"
        );
        assert_eq!(
            node_roles(&json!({"node-role.kubernetes.io/": "x", "kubernetes.io/role": ""})),
            "<none>"
        );
        assert_eq!(node_roles(&Value::Null), "<none>");
    }

    #[test]
    fn node_row_placeholders() {
        let n = json!({"metadata": {"name": "n"}, "status": {"addresses": [{"type": "InternalIP", "address": "10.0.0.4"}], "nodeInfo": {"kubeletVersion": "v1.31.5"}}});
        let c = cells(&store::NODES, &n, Timestamp::now());
        assert_eq!(c[0], "n");
        assert_eq!(c[2], "<none>");
        assert_eq!(c[3], "<unknown>");
        assert_eq!(c[4], "v1.31.5");
        assert_eq!(c[5], "10.0.0.4");
        assert_eq!(c[6], "<none>");
        assert_eq!(c[7], "<unknown>");
        assert_eq!(c[8], "<unknown>");
        assert_eq!(c[9], "<unknown>");
    }

    #[test]
    fn pod_columns_follow_the_printer() {
        let running = json!({"spec": {"containers": [{"name": "a"}, {"name": "b"}]}, "status": {"phase": "Running", "containerStatuses": [
            {"name": "a", "ready": true, "restartCount": 1, "state": {"running": {}}},
            {"name": "b", "ready": false, "restartCount": 2, "state": {"running": {}}}]}});
        assert_eq!(pod_columns(&running), ("1/2".into(), "Running".into(), 3));
        let creating = json!({"spec": {"containers": [{"name": "a"}]}, "status": {"phase": "Pending", "containerStatuses": [
            {"name": "a", "ready": false, "restartCount": 0, "state": {"waiting": {"reason": "ContainerCreating"}}}]}});
        assert_eq!(pod_columns(&creating).1, "ContainerCreating");
        let mut term = running.clone();
        term["metadata"]["deletionTimestamp"] = json!("2025-01-01T00:00:00Z");
        assert_eq!(pod_columns(&term).1, "Terminating");
        let pending = json!({"spec": {"containers": [{"name": "a"}]}, "status": {"phase": "Pending"}});
        assert_eq!(pod_columns(&pending), ("0/1".into(), "Pending".into(), 0));
    }

    #[test]
    fn table_rows_carry_partial_metadata() {
        let pods = vec![
            json!({"metadata": {"name": "p", "namespace": "ns", "managedFields": []}, "spec": {"containers": []}, "status": {}}),
        ];
        let t = table(
            &store::PODS,
            &pods,
            IncludeObject::Metadata,
            true,
            "v1",
            json!({"resourceVersion": "5"}),
        );
        assert_eq!(t["kind"], "Table");
        assert_eq!(t["columnDefinitions"].as_array().unwrap().len(), 9);
        assert_eq!(t["rows"][0]["object"]["kind"], "PartialObjectMetadata");
        assert_eq!(t["rows"][0]["object"]["metadata"]["namespace"], "ns");
        assert!(t["rows"][0]["object"]["metadata"].get("managedFields").is_none());
        let t = table(&store::PODS, &pods, IncludeObject::None, false, "v1", json!({}));
        assert!(t.get("columnDefinitions").is_none());
        assert!(t["rows"][0].get("object").is_none());
    }
}
