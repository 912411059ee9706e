//! `pods/exec` over WebSocket (v5 and v4), node-shell pods pinned with `nodeName`,
//! nsenter into the node's root, reboots cutting the stream, and the faults around it, proven
//! with kubectl 1.32 (WebSocket v5), kube-rs (`ws`) and the official Python client's `stream()`.

use crate::common::{api_status, eventually, Emulator as Env};
use aks_sim::Fault;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, AttachParams, PostParams};
use serde_json::json;
use std::time::Duration;
use tokio::io::AsyncReadExt;

const NS: &str = "kube-system";

/// The first Linux node and its bootID.
async fn linux_node(env: &Env) -> (String, String) {
    let node = env.first_linux_node().await;
    let boot = env.boot_id(&node);
    (node, boot)
}

/// Create a pod on `node` and wait until it is Running (or, with `running: false`, only create it).
async fn shell_pod(env: &Env, name: &str, node: &str, privileged: bool, image: &str, running: bool) {
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"app.kubernetes.io/managed-by": "aks-patch"}},
        "spec": {
            "nodeName": node,
            "hostPID": privileged, "hostNetwork": privileged, "hostIPC": privileged,
            "restartPolicy": "Never",
            "tolerations": [{"operator": "Exists"}],
            "containers": [{"name": "shell", "image": image, "command": ["sleep", "infinity"],
                            "securityContext": {"privileged": privileged}}],
        }
    }))
    .unwrap();
    env.pods(NS)
        .create(&PostParams::default(), &pod)
        .await
        .expect("pod created");
    if running {
        let pods = env.pods(NS);
        eventually("the pod Running", Duration::from_secs(20), || {
            let pods = pods.clone();
            async move {
                let p = pods.get(name).await.ok()?;
                (p.status?.phase.as_deref() == Some("Running")).then_some(())
            }
        })
        .await;
    }
}

/// Read an exec's stdout while its connection lasts: what it printed, its status (if one
/// came) and how the connection ended (`Err` when it broke without a close). kube-rs ends a
/// broken stream with an error from `join()` and its readers never see EOF, so the reading
/// stops when the connection does.
async fn cut_stream(
    mut p: kube::api::AttachedProcess,
) -> (
    String,
    Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Status>,
    Result<(), String>,
) {
    let status = p.take_status().unwrap();
    let mut stdout = p.stdout().unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Vec<u8>>();
    let reading = tokio::spawn(async move {
        let mut buf = [0u8; 4096];
        while let Ok(n) = stdout.read(&mut buf).await {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let ended = tokio::time::timeout(Duration::from_secs(30), p.join())
        .await
        .expect("the stream ends with the reboot")
        .map_err(|e| e.to_string());
    tokio::time::sleep(Duration::from_millis(200)).await;
    reading.abort();
    let mut out = Vec::new();
    while let Ok(b) = rx.try_recv() {
        out.extend(b);
    }
    let status = tokio::time::timeout(Duration::from_secs(1), status)
        .await
        .ok()
        .flatten();
    (String::from_utf8_lossy(&out).into_owned(), status, ended)
}

const IMAGE: &str = "mcr.microsoft.com/azurelinux/busybox:1.36";
const NSENTER: &[&str] = &["nsenter", "-t", "1", "-m", "-u", "-i", "-n", "-p", "--"];

fn argv(script: &str) -> Vec<String> {
    let mut v: Vec<String> = NSENTER.iter().map(|s| s.to_string()).collect();
    v.extend(["sh".into(), "-c".into(), script.to_string()]);
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_exec_nsenter_lands_in_the_node_as_root() {
    skip_unless_root!();
    let env = Env::default().await;
    let (node, boot) = linux_node(&env).await;
    shell_pod(&env, "node-shell", &node, true, IMAGE, true).await;
    // kubectl 1.32 speaks WebSocket v5: stdout, the exit code, stdin and its close.
    let mut args = vec!["exec", "-n", NS, "node-shell", "--"];
    args.extend_from_slice(NSENTER);
    args.extend([
        "sh",
        "-c",
        "id -u; hostname; cat /proc/sys/kernel/random/boot_id; echo oops >&2",
    ]);
    let (code, out, err) = env.kubectl_stdin(&args, "").await;
    assert_eq!(code, 0, "{out}{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines, ["0", node.as_str(), boot.as_str()], "{out}");
    assert!(err.contains("oops"), "stderr is its own stream: {err}");
    let mut args = vec!["exec", "-n", NS, "node-shell", "--"];
    args.extend_from_slice(NSENTER);
    args.extend(["sh", "-c", "exit 7"]);
    let (code, _, err) = env.kubectl_stdin(&args, "").await;
    assert_eq!(code, 7, "the exit code comes back through the status channel: {err}");
    let mut args = vec!["exec", "-i", "-n", NS, "node-shell", "--"];
    args.extend_from_slice(NSENTER);
    args.extend(["sh", "-c", "tr a-z A-Z"]);
    let (code, out, err) = env.kubectl_stdin(&args, "hello node\n").await;
    assert_eq!((code, out.as_str()), (0, "HELLO NODE\n"), "{err}");
    // Files written there are the node's: SSH sees the same root.
    let root = env
        .sim
        .shared
        .node_runtime
        .get()
        .unwrap()
        .node_root(&node)
        .unwrap()
        .to_path_buf();
    let mut args = vec!["exec", "-n", NS, "node-shell", "--"];
    args.extend_from_slice(NSENTER);
    args.extend(["sh", "-c", "echo from-exec > /tmp/exec-proof"]);
    assert_eq!(env.kubectl_stdin(&args, "").await.0, 0);
    assert_eq!(
        std::fs::read_to_string(root.join("tmp/exec-proof")).unwrap(),
        "from-exec\n"
    );
    // A plain command runs in the pod's own container, not on the node.
    let (code, out, err) = env
        .kubectl_stdin(
            &[
                "exec",
                "-n",
                NS,
                "node-shell",
                "--",
                "sh",
                "-c",
                "test -e /etc/hostname || echo container",
            ],
            "",
        )
        .await;
    assert_eq!((code, out.trim()), (0, "container"), "{err}");
    assert!(env
        .sim
        .events()
        .iter()
        .any(|e| e.kind == "pod-exec" && e.node.as_deref() == Some(node.as_str())));

    // In an unprivileged pod nsenter is refused, as on a node.
    shell_pod(&env, "plain", &node, false, IMAGE, true).await;
    let mut args = vec!["exec", "-n", NS, "plain", "--"];
    args.extend_from_slice(NSENTER);
    args.extend(["sh", "-c", "id -u"]);
    let (code, out, err) = env.kubectl_stdin(&args, "").await;
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("Operation not permitted"), "{err}");
    env.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kube_rs_exec_exit_code_and_a_reboot_cuts_the_stream() {
    skip_unless_root!();
    let env = Env::default().await;
    let (node, boot) = linux_node(&env).await;
    shell_pod(&env, "node-shell", &node, true, IMAGE, true).await;
    // kube-rs offers v5 then v4 (the Python client below offers v4 only).
    let mut p = env
        .pods(NS)
        .exec(
            "node-shell",
            argv("uname -r; exit 3"),
            &AttachParams::default().stderr(true),
        )
        .await
        .expect("exec starts");
    let mut out = String::new();
    p.stdout().unwrap().read_to_string(&mut out).await.unwrap();
    let status = p.take_status().unwrap().await.expect("a status");
    assert_eq!(status.reason.as_deref(), Some("NonZeroExitCode"));
    let code = status.details.unwrap().causes.unwrap()[0].message.clone();
    assert_eq!(code.as_deref(), Some("3"));
    let kernel = Api::<Node>::all(env.client.clone())
        .get(&node)
        .await
        .unwrap()
        .status
        .and_then(|s| s.node_info)
        .map(|i| i.kernel_version)
        .unwrap_or_default();
    assert_eq!(
        out.trim(),
        kernel,
        "uname -r in the node's root is the Node's kernelVersion"
    );

    // A reboot through the pod cuts the stream: no status; the node comes back with a new
    // bootID and the restartPolicy: Never pod is left Failed.
    let p = env
        .pods(NS)
        .exec(
            "node-shell",
            argv("echo going; reboot"),
            &AttachParams::default().stderr(true),
        )
        .await
        .expect("exec starts");
    let (out, status, ended) = cut_stream(p).await;
    assert_eq!(out, "going\n");
    assert!(status.is_none(), "a reboot ends the stream without an exit status");
    assert!(ended.is_err(), "the connection breaks without a WebSocket close");
    let pods = env.pods(NS);
    eventually(
        "the node-shell pod Failed after the reboot",
        Duration::from_secs(60),
        || {
            let pods = pods.clone();
            async move {
                let p = pods.get("node-shell").await.ok()?;
                (p.status?.phase.as_deref() == Some("Failed")).then_some(())
            }
        },
    )
    .await;
    assert_ne!(env.boot_id(&node), boot);
    let st = api_status(
        env.pods(NS)
            .exec("node-shell", argv("true"), &AttachParams::default())
            .await
            .err()
            .expect("exec into a Failed pod is refused"),
    );
    assert!(st.message.contains("completed pod"), "{st:?}");
    env.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn image_pull_failure_and_exec_refused_faults_fail_as_on_aks() {
    skip_unless_root!();
    let env = Env::default().await;
    let (node, _) = linux_node(&env).await;
    env.sim
        .fault(Fault::ImagePullFailure {
            image: "registry.invalid/nope:1".into(),
        })
        .unwrap();
    shell_pod(&env, "no-image", &node, true, "registry.invalid/nope:1", false).await;
    let pods = env.pods(NS);
    let reason = eventually("ImagePullBackOff", Duration::from_secs(20), || {
        let pods = pods.clone();
        async move {
            let p = pods.get("no-image").await.ok()?;
            let st = p.status?;
            let r = st.container_statuses?[0].state.clone()?.waiting?.reason?;
            (r == "ImagePullBackOff").then_some((st.phase, r))
        }
    })
    .await;
    assert_eq!(reason.0.as_deref(), Some("Pending"));
    let (code, _, err) = env
        .kubectl_stdin(&["exec", "-n", NS, "no-image", "--", "true"], "")
        .await;
    assert_ne!(code, 0);
    assert!(err.contains("is waiting to start: ImagePullBackOff"), "{err}");

    shell_pod(&env, "node-shell", &node, true, IMAGE, true).await;
    env.sim.fault(Fault::ExecRefused).unwrap();
    let mut args = vec!["exec", "-n", NS, "node-shell", "--"];
    args.extend_from_slice(NSENTER);
    args.extend(["true"]);
    let (code, _, err) = env.kubectl_stdin(&args, "").await;
    assert_ne!(code, 0);
    assert!(err.contains("Forbidden") || err.contains("forbidden"), "{err}");
    env.sim.fault(Fault::Clear).unwrap();
    assert_eq!(env.kubectl_stdin(&args, "").await.0, 0);
    env.shutdown().await;
}

/// The official Python client's `stream()` (WebSocket v4) against aks-sim, unchanged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_client_stream_exec_works_unchanged() {
    skip_unless_root!();
    let env = Env::default().await;
    let (node, boot) = linux_node(&env).await;
    shell_pod(&env, "node-shell", &node, true, IMAGE, true).await;
    let script = r#"
import sys, json
from kubernetes import client, config
from kubernetes.stream import stream
config.load_kube_config(config_file=sys.argv[1])
api = client.CoreV1Api()
cmd = ["nsenter", "-t", "1", "-m", "-u", "-i", "-n", "-p", "--", "sh", "-c",
       "cat /proc/sys/kernel/random/boot_id; echo err >&2; exit 4"]
r = stream(api.connect_get_namespaced_pod_exec, "node-shell", "kube-system", command=cmd,
           stderr=True, stdin=False, stdout=True, tty=False, _preload_content=False)
r.run_forever(timeout=20)
print(json.dumps({"out": r.read_stdout(), "err": r.read_stderr(), "code": r.returncode}))
"#;
    let v = env.python(script, &[]).await;
    assert_eq!(v["out"].as_str().unwrap().trim(), boot);
    assert_eq!(v["err"].as_str().unwrap().trim(), "err");
    assert_eq!(v["code"], 4);
    env.shutdown().await;
}

/// aks-patch's way to reboot (`nohup ... &`, `exit 0` at once): the status waits for what
/// the command left in the background, and the node going down breaks the stream without a
/// status or a close, as a node's kernel going down does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reboot_scheduled_in_the_background_breaks_the_exec_stream_without_a_status() {
    skip_unless_root!();
    let env = Env::default().await;
    let (node, boot) = linux_node(&env).await;
    shell_pod(&env, "node-shell", &node, true, IMAGE, true).await;
    let p = env
        .pods(NS)
        .exec(
            "node-shell",
            argv("nohup sh -c 'sleep 0.2; systemctl reboot' </dev/null >/dev/null 2>&1 & echo scheduled"),
            &AttachParams::default().stderr(true),
        )
        .await
        .expect("exec starts");
    let (out, status, ended) = cut_stream(p).await;
    assert_eq!(out, "scheduled\n");
    assert!(
        status.is_none(),
        "no exit status from a node that went down: {status:?}"
    );
    assert!(ended.is_err(), "the connection breaks without a WebSocket close");
    let nodes: Api<Node> = Api::all(env.client.clone());
    eventually("the node back with a new bootID", Duration::from_secs(60), || {
        let (nodes, boot, node) = (nodes.clone(), boot.clone(), node.clone());
        async move {
            let n = nodes.get(&node).await.ok()?;
            (n.status?.node_info?.boot_id != boot).then_some(())
        }
    })
    .await;
    // A command that leaves something harmless behind still gets its status.
    shell_pod(&env, "node-shell-2", &node, true, IMAGE, true).await;
    let mut p = env
        .pods(NS)
        .exec(
            "node-shell-2",
            argv("nohup sleep 0.3 </dev/null >/dev/null 2>&1 & exit 5"),
            &AttachParams::default().stderr(true),
        )
        .await
        .expect("exec starts");
    let status = p.take_status().unwrap().await.expect("a status");
    assert_eq!(status.details.unwrap().causes.unwrap()[0].message.as_deref(), Some("5"));
    env.shutdown().await;
}

/// The Python client's own example writes stdin as a str, which goes out as WebSocket text
/// frames: the command gets it like binary frames' stdin.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_write_stdin_with_a_str_reaches_the_command() {
    skip_unless_root!();
    let env = Env::default().await;
    let (node, _) = linux_node(&env).await;
    shell_pod(&env, "node-shell", &node, true, IMAGE, true).await;
    let script = r#"
import sys, json
from kubernetes import client, config
from kubernetes.stream import stream
config.load_kube_config(config_file=sys.argv[1])
api = client.CoreV1Api()
r = stream(api.connect_get_namespaced_pod_exec, "node-shell", "kube-system",
           command=["sh", "-c", "read a; read b; echo \"got $a+$b\"; exit 2"],
           stderr=True, stdin=True, stdout=True, tty=False, _preload_content=False)
r.write_stdin("first\n")
r.write_stdin(b"second\n".decode())
r.run_forever(timeout=20)
print(json.dumps({"out": r.read_stdout(), "code": r.returncode, "open": r.is_open()}))
"#;
    let v = env.python(script, &[]).await;
    assert_eq!(v["out"], "got first+second\n", "{v}");
    assert_eq!(v["code"], 2, "{v}");
    assert_eq!(v["open"], false, "{v}");
    env.shutdown().await;
}

/// `tty: true` gives the command a terminal: `tty` names its device, the client's resize
/// (channel 4) sets its size, stderr comes merged into stdout, the exit code comes back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_with_a_tty_gets_a_real_terminal() {
    skip_unless_root!();
    let env = Env::default().await;
    let (node, _) = linux_node(&env).await;
    shell_pod(&env, "node-shell", &node, true, IMAGE, true).await;
    let script = r#"
import sys, json, time
from kubernetes import client, config
from kubernetes.stream import stream
config.load_kube_config(config_file=sys.argv[1])
api = client.CoreV1Api()
r = stream(api.connect_get_namespaced_pod_exec, "node-shell", "kube-system", command=["sh"],
           stderr=True, stdin=True, stdout=True, tty=True, _preload_content=False)
r.write_channel(4, json.dumps({"Width": 100, "Height": 40}))
time.sleep(0.3)
r.write_stdin("tty; stty size; echo to-stderr >&2; exit 3\n")
r.run_forever(timeout=20)
print(json.dumps({"out": r.read_stdout(), "err": r.read_stderr(), "code": r.returncode}))
"#;
    let v = env.python(script, &[]).await;
    let out = v["out"].as_str().unwrap();
    assert!(out.contains("/dev/pts/"), "tty names a terminal: {out:?}");
    assert!(out.contains("40 100"), "stty size reads the resized terminal: {out:?}");
    assert!(out.contains("to-stderr"), "stderr is merged into the terminal: {out:?}");
    assert_eq!(v["err"], "", "{v}");
    assert_eq!(v["code"], 3, "{v}");
    // Without a tty there is none.
    let (code, out, _) = env
        .kubectl_stdin(&["exec", "-n", NS, "node-shell", "--", "sh", "-c", "tty; true"], "")
        .await;
    assert_eq!((code, out.trim()), (0, "not a tty"));
    env.shutdown().await;
}
