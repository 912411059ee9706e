//! What pods print and how one reaches them: `pods/log` (`kubectl logs`, `-f`, `--previous`
//! after a restart), node debugging pods (`kubectl debug node/N -it --image=busybox -- chroot
//! /host ...`) and `pods/attach`, and `events.k8s.io/v1` Events, proven with kubectl 1.32,
//! the official Python client and kube-rs.

use crate::common::{eventually, Emulator as Env};
use k8s_openapi::api::core::v1::{Event, Pod};
use kube::api::{Api, ListParams, PostParams};
use serde_json::json;
use std::time::Duration;

/// The first Linux node and its kernel.
async fn linux_node(env: &Env) -> (String, String) {
    let node = env.first_linux_node().await;
    let kernel = env.kernel(&node);
    (node, kernel)
}

async fn create_pod(env: &Env, ns: &str, pod: serde_json::Value) {
    let pod: Pod = serde_json::from_value(pod).unwrap();
    Api::<Pod>::namespaced(env.client.clone(), ns)
        .create(&PostParams::default(), &pod)
        .await
        .expect("pod created");
}

async fn wait_pod<T>(env: &Env, ns: &str, name: &str, what: &str, f: impl Fn(&Pod) -> Option<T>) -> T {
    let pods: Api<Pod> = Api::namespaced(env.client.clone(), ns);
    eventually(what, Duration::from_secs(60), || {
        let pods = pods.clone();
        let f = &f;
        async move { pods.get(name).await.ok().and_then(|p| f(&p)) }
    })
    .await
}

fn phase(p: &Pod) -> Option<String> {
    p.status.as_ref()?.phase.clone()
}

fn restarts(p: &Pod) -> i32 {
    p.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|c| c.first())
        .map(|c| c.restart_count)
        .unwrap_or(0)
}

/// `kubectl logs` shows what the container printed (an emulated one: its start line),
/// `--previous` the instance before a restart (400 with the kubelet's message when there is
/// none), `-f` follows until the container ends, `--timestamps` prefixes RFC 3339 times.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_logs_follow_and_previous_after_a_restart() {
    skip_unless_root!();
    let env = Env::default().await;
    let (node, _) = linux_node(&env).await;
    create_pod(
        &env,
        "default",
        json!({"metadata": {"name": "web"}, "spec": {"nodeName": node,
            "containers": [{"name": "web", "image": "nginx:1.27"}]}}),
    )
    .await;
    wait_pod(&env, "default", "web", "web Running", |p| {
        (phase(p).as_deref() == Some("Running")).then_some(())
    })
    .await;
    let (code, out, err) = env.kubectl_stdin(&["logs", "web"], "").await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(&format!("container web started on node {node}")), "{out}");
    assert!(out.contains("restart 0"), "{out}");
    let (code, _, err) = env.kubectl_stdin(&["logs", "web", "--previous"], "").await;
    assert_ne!(code, 0);
    assert!(
        err.contains(r#"previous terminated container "web" in pod "web" not found"#),
        "{err}"
    );
    let (code, out, _) = env.kubectl_stdin(&["logs", "web", "--timestamps"], "").await;
    assert_eq!(code, 0);
    let stamp = out.split(' ').next().unwrap();
    assert!(stamp.parse::<jiff::Timestamp>().is_ok(), "{out}");
    let (code, _, err) = env.kubectl_stdin(&["logs", "nope"], "").await;
    assert_ne!(code, 0);
    assert!(err.contains(r#"pods "nope" not found"#), "{err}");

    // Follow, then the node reboots: the container ends (the stream with it) and restarts.
    let follow = env.kubectl_command(&["logs", "-f", "web"]).spawn().unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    env.request_reboot(&node);
    let out = tokio::time::timeout(Duration::from_secs(60), follow.wait_with_output())
        .await
        .expect("kubectl logs -f ends when the container does")
        .unwrap();
    let followed = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && followed.contains("restart 0"), "{followed}");
    wait_pod(&env, "default", "web", "web restarted", |p| {
        (restarts(p) == 1 && phase(p).as_deref() == Some("Running")).then_some(())
    })
    .await;
    let (code, out, err) = env.kubectl_stdin(&["logs", "web"], "").await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("restart 1") && !out.contains("restart 0"), "{out}");
    let (code, out, err) = env.kubectl_stdin(&["logs", "web", "-p"], "").await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("restart 0"), "the previous instance's log: {out}");
    // tailLines and limitBytes.
    let (_, out, _) = env.kubectl_stdin(&["logs", "web", "--tail=0"], "").await;
    assert_eq!(out, "");
    let (_, out, _) = env.kubectl_stdin(&["logs", "web", "--limit-bytes=7"], "").await;
    assert_eq!(out, "aks-sim");
    env.shutdown().await;
}

/// `kubectl debug node/N -it --image=busybox -- chroot /host uname -r` prints the node's
/// kernel: the debug pod is scheduled to the node with its root at `/host`, the command runs
/// there, and the pod ends Succeeded (Failed with the exit code when the command fails).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_debug_node_runs_the_command_in_the_nodes_root() {
    skip_unless_root!();
    let env = Env::default().await;
    let (node, kernel) = linux_node(&env).await;
    let target = format!("node/{node}");
    let (code, out, err) = env
        .kubectl_stdin(
            &[
                "debug",
                &target,
                "-it",
                "--image=busybox",
                "--",
                "chroot",
                "/host",
                "uname",
                "-r",
            ],
            "",
        )
        .await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.lines().any(|l| l.trim() == kernel),
        "the node's kernel {kernel}: {out}{err}"
    );
    let pods: Api<Pod> = Api::namespaced(env.client.clone(), "default");
    let list = pods.list(&ListParams::default()).await.unwrap().items;
    let debug = list
        .iter()
        .find(|p| {
            p.metadata
                .name
                .as_deref()
                .is_some_and(|n| n.starts_with(&format!("node-debugger-{node}-")))
        })
        .expect("the debug pod");
    let name = debug.metadata.name.clone().unwrap();
    let spec = debug.spec.clone().unwrap();
    assert_eq!(spec.node_name.as_deref(), Some(node.as_str()));
    assert_eq!(spec.host_pid, Some(true));
    let ph = wait_pod(&env, "default", &name, "the debug pod done", |p| {
        phase(p).filter(|p| p == "Succeeded" || p == "Failed")
    })
    .await;
    assert_eq!(ph, "Succeeded");
    // Its log is the command's output.
    let (_, out, _) = env.kubectl_stdin(&["logs", &name], "").await;
    assert_eq!(out.trim(), kernel);

    // A failing command: the pod is Failed with the command's exit code.
    let (_, _, _) = env
        .kubectl_stdin(
            &[
                "debug",
                &target,
                "-i",
                "--image=busybox",
                "--",
                "chroot",
                "/host",
                "sh",
                "-c",
                "exit 3",
            ],
            "",
        )
        .await;
    let list = pods.list(&ListParams::default()).await.unwrap().items;
    let failed = list
        .iter()
        .filter_map(|p| p.metadata.name.clone())
        .find(|n| n.starts_with("node-debugger-") && *n != name)
        .expect("a second debug pod");
    let code = wait_pod(&env, "default", &failed, "the failing debug pod done", |p| {
        (phase(p).as_deref() == Some("Failed")).then(|| {
            p.status.as_ref()?.container_statuses.as_ref()?[0]
                .state
                .as_ref()?
                .terminated
                .as_ref()
                .map(|t| t.exit_code)
        })?
    })
    .await;
    assert_eq!(code, 3);
    env.shutdown().await;
}

/// `kubectl attach -i` to an interactive container: its stdin reaches the command, its
/// output comes back, and when it exits the pod ends with its exit code.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_attach_reaches_an_interactive_container() {
    skip_unless_root!();
    let env = Env::default().await;
    let (node, _) = linux_node(&env).await;
    create_pod(
        &env,
        "default",
        json!({"metadata": {"name": "box"}, "spec": {"nodeName": node, "restartPolicy": "Never",
            "containers": [{"name": "box", "image": "busybox", "command": ["sh"], "stdin": true}]}}),
    )
    .await;
    wait_pod(&env, "default", "box", "box Running", |p| {
        (phase(p).as_deref() == Some("Running")).then_some(())
    })
    .await;
    let (code, out, err) = env
        .kubectl_stdin(&["attach", "-i", "box"], "echo attached-$((40+2)); exit 4\n")
        .await;
    assert!(out.contains("attached-42"), "{code} {out}{err}");
    let code = wait_pod(&env, "default", "box", "box Failed", |p| {
        (phase(p).as_deref() == Some("Failed")).then(|| {
            p.status.as_ref()?.container_statuses.as_ref()?[0]
                .state
                .as_ref()?
                .terminated
                .as_ref()
                .map(|t| t.exit_code)
        })?
    })
    .await;
    assert_eq!(code, 4);
    let (code, _, err) = env.kubectl_stdin(&["attach", "box"], "").await;
    assert_ne!(code, 0);
    assert!(err.contains("completed pod"), "{err}");
    env.shutdown().await;
}

/// events.k8s.io/v1 is the same store as core/v1 events: created through the new group
/// (as the new recorders do), read through the old one and `kubectl get
/// events.v1.events.k8s.io`, series patched, and refused without what that group requires.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_k8s_io_v1_shares_the_core_events_store() {
    skip_unless_root!();
    let env = Env::default().await;
    let (node, _) = linux_node(&env).await;
    let script = format!(
        r#"
import sys, json, datetime
from kubernetes import client, config
from kubernetes.client.rest import ApiException
config.load_kube_config(config_file=sys.argv[1])
ev = client.EventsV1Api()
now = datetime.datetime.now(datetime.timezone.utc)
body = {{"metadata": {{"name": "patched.1"}}, "eventTime": now.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "reportingController": "example.com/patcher", "reportingInstance": "patcher-1",
        "action": "Patching", "reason": "NodePatched", "type": "Normal", "note": "kernel updated",
        "regarding": {{"kind": "Node", "name": "{node}", "apiVersion": "v1"}}}}
made = ev.create_namespaced_event("default", body)
core = client.CoreV1Api().read_namespaced_event("patched.1", "default")
series = {{"series": {{"count": 2, "lastObservedTime": now.strftime("%Y-%m-%dT%H:%M:%S.%fZ")}}}}
patched = ev.patch_namespaced_event("patched.1", "default", series)
listed = [e.reason for e in ev.list_namespaced_event("default").items]
try:
    ev.create_namespaced_event("default", {{"metadata": {{"name": "bad"}}, "reason": "R", "type": "Normal",
        "eventTime": now.strftime("%Y-%m-%dT%H:%M:%S.%fZ")}})
    bad = None
except ApiException as e:
    bad = {{"status": e.status, "message": json.loads(e.body)["message"]}}
print(json.dumps({{"made": made.note, "core_message": core.message, "core_kind": core.involved_object.kind,
    "core_component": core.reporting_component, "series": patched.series.count,
    "listed": "NodePatched" in listed, "bad": bad}}))
"#
    );
    let v = env.python(&script, &[]).await;
    assert_eq!(v["made"], "kernel updated", "{v}");
    assert_eq!(
        v["core_message"], "kernel updated",
        "the same object through core/v1: {v}"
    );
    assert_eq!(v["core_kind"], "Node", "{v}");
    assert_eq!(v["core_component"], "example.com/patcher", "{v}");
    assert_eq!(v["series"], 2, "{v}");
    assert_eq!(v["listed"], true, "{v}");
    assert_eq!(v["bad"]["status"], 422, "{v}");
    let msg = v["bad"]["message"].as_str().unwrap();
    assert!(msg.starts_with(r#"Event.events.k8s.io "bad" is invalid: "#), "{msg}");
    assert!(
        msg.contains("[reportingController: Required value") && msg.contains("action: Required value"),
        "{msg}"
    );
    // A core event recorded by aks-sim's components shows in the new group too.
    let core: Api<Event> = Api::namespaced(env.client.clone(), "default");
    assert!(core.get("patched.1").await.is_ok());
    let (code, out, err) = env
        .kubectl_stdin(&["get", "events.v1.events.k8s.io", "-n", "default"], "")
        .await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("NodePatched") && out.contains("kernel updated"), "{out}");
    let (code, out, err) = env
        .kubectl_stdin(
            &[
                "get",
                "events.v1.events.k8s.io",
                "-n",
                "default",
                "patched.1",
                "-o",
                "json",
            ],
            "",
        )
        .await;
    assert_eq!(code, 0, "{err}");
    let e: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(e["apiVersion"], "events.k8s.io/v1");
    assert_eq!(e["regarding"]["name"], node.as_str());
    let (code, _, err) = env
        .kubectl_stdin(&["get", "events.v1.events.k8s.io", "-n", "default", "nope"], "")
        .await;
    assert_ne!(code, 0);
    assert!(err.contains(r#"events.events.k8s.io "nope" not found"#), "{err}");
    // Watch through the new group sees a core event as a new-group one.
    let v1: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(env.client.clone(), "default");
    let rv = v1
        .list(&ListParams::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    let mut stream = Box::pin(
        v1.watch(&kube::api::WatchParams::default().timeout(10), &rv)
            .await
            .unwrap(),
    );
    let e: Event = serde_json::from_value(
        json!({"metadata": {"name": "core.1"}, "reason": "Old", "message": "from core",
        "involvedObject": {"kind": "Node", "name": node}, "type": "Normal"}),
    )
    .unwrap();
    core.create(&PostParams::default(), &e).await.unwrap();
    use futures::TryStreamExt;
    let seen = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(ev) = stream.try_next().await.unwrap() {
            if let kube::api::WatchEvent::Added(e) = ev {
                if e.metadata.name.as_deref() == Some("core.1") {
                    return e;
                }
            }
        }
        panic!("the watch ended");
    })
    .await
    .expect("the watch sees the core event");
    assert_eq!(seen.note.as_deref(), Some("from core"));
    env.shutdown().await;
}
