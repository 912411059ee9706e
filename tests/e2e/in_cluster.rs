//! aks-patch as it runs inside the cluster: `deploy/` applied for real to aks-sim (and
//! passing its server-side dry run), then aks-patch run exactly as the CronJob's pod runs it:
//! the ServiceAccount's token (from the TokenRequest API), the CA and the namespace at the
//! in-cluster paths, in a mount namespace of its own (so that nothing on this machine
//! changes and parallel tests do not meet), `KUBERNETES_SERVICE_HOST/PORT` set, no
//! kubeconfig, no HOME, no Azure. Its run record is kept in ConfigMaps (one per run, written
//! before every side effect), so that a run killed with its pod is resumed by the next pod;
//! `report` reads them. And the RBAC in `deploy/` is enough, and without any one of its rules
//! the pre-flight refuses with exit 4 before any change.

use crate::common::*;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// `deploy/` in this repository.
fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy")
}

/// `apply` as the CronJob in `deploy/` runs it (without its window, which would make the
/// test depend on the time of day), evictions retried every second; then `extra`.
fn cronjob_apply<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec![
        "apply",
        "--max-unavailable",
        "1",
        "--node-shell-namespace",
        "aks-patch",
        "--yes",
        "--eviction-retry-interval",
        "1",
        "--delete-emptydir-data",
        "--force",
    ];
    v.extend_from_slice(extra);
    v
}

/// `kubectl apply -k deploy/`, as the README installs it.
async fn install(c: &Cluster) {
    let (ok, out, err) = c.kubectl(&["apply", "-k", deploy_dir().to_str().unwrap()]).await;
    assert!(ok, "kubectl apply -k deploy/ failed:\n{out}\n{err}");
}

/// A pod of the ServiceAccount aks-patch/aks-patch: what the kubelet mounts at
/// `/var/run/secrets/kubernetes.io/serviceaccount` (a token from the TokenRequest API, the
/// cluster's CA, the namespace) and the pod's own scratch directory.
struct Pod {
    dir: tempfile::TempDir,
}

/// A token of the ServiceAccount aks-patch/aks-patch (`kubectl create token`), bound to the
/// Secret `bound_to` when given (it is refused once that Secret is deleted).
async fn token(c: &Cluster, bound_to: Option<&str>) -> String {
    let mut args = vec!["create", "token", "aks-patch", "-n", "aks-patch", "--duration", "1h"];
    if let Some(secret) = bound_to {
        args.extend(["--bound-object-kind", "Secret", "--bound-object-name", secret]);
    }
    let (ok, token, err) = c.kubectl(&args).await;
    assert!(ok, "kubectl create token: {err}");
    token.trim().to_string()
}

impl Pod {
    /// A new pod, with a new token.
    async fn new(c: &Cluster) -> Pod {
        Pod::with_token(c, &token(c, None).await)
    }

    /// A new pod whose ServiceAccount token is `token`.
    fn with_token(c: &Cluster, token: &str) -> Pod {
        let dir = tempfile::tempdir().unwrap();
        let sa = dir.path().join("serviceaccount");
        std::fs::create_dir(&sa).unwrap();
        std::fs::write(sa.join("token"), token).unwrap();
        std::fs::copy(c.sim.state_dir().join("ca.pem"), sa.join("ca.crt")).unwrap();
        std::fs::write(sa.join("namespace"), "aks-patch").unwrap();
        std::fs::create_dir(dir.path().join("state")).unwrap();
        Pod { dir }
    }

    /// The kubelet's rotation of the pod's token: the file now holds `token`.
    fn rotate(&self, token: &str) {
        let path = self.dir.path().join("serviceaccount/token");
        let tmp = self.dir.path().join("serviceaccount/..token.new");
        std::fs::write(&tmp, token).unwrap();
        std::fs::rename(tmp, path).unwrap();
    }

    /// `aks-patch ARGS` in this pod, not started yet: in a private mount namespace, /run is
    /// a tmpfs with the ServiceAccount's files bound at the in-cluster path (/var/run links
    /// to /run), and the environment is a pod's.
    fn command(&self, c: &Cluster, args: &[&str]) -> tokio::process::Command {
        const SCRIPT: &str =
            "set -e; mount -t tmpfs pod-run /run; mkdir -p /run/secrets/kubernetes.io/serviceaccount; \
            mount --bind \"$1/serviceaccount\" /run/secrets/kubernetes.io/serviceaccount; shift; exec \"$@\"";
        let url = c.sim.endpoints().kube_url.clone();
        let hostport = url.trim_start_matches("https://").trim_end_matches('/');
        let (host, port) = hostport.rsplit_once(':').expect("the API server's URL has a port");
        let mut cmd = tokio::process::Command::new("unshare");
        cmd.args(["--mount", "--propagation", "private", "sh", "-c", SCRIPT, "pod"])
            .arg(self.dir.path())
            .arg(env!("CARGO_BIN_EXE_aks-patch"))
            .args(args)
            .env_clear()
            .env("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
            .env("KUBERNETES_SERVICE_HOST", host)
            .env("KUBERNETES_SERVICE_PORT", port)
            .env("AKS_PATCH_STATE_DIR", self.dir.path().join("state"))
            .env("HOSTNAME", "aks-patch-29000000-x7k2p")
            .env("NO_COLOR", "1")
            .current_dir(self.dir.path())
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true);
        cmd
    }

    /// Run `aks-patch ARGS` in this pod to its end.
    async fn run(&self, c: &Cluster, args: &[&str]) -> Run {
        finish(self.command(c, args).spawn().expect("aks-patch starts in the pod")).await
    }
}

/// The run records (ConfigMaps labelled `aks-patch.io/run-record`) in `ns`, oldest first,
/// each as the JSON record it holds.
fn records_in(c: &Cluster, ns: &str) -> Vec<serde_json::Value> {
    let mut cms: Vec<serde_json::Value> = c
        .sim
        .shared
        .store
        .list(aks_sim::store::CONFIGMAPS, Some(ns))
        .into_iter()
        .filter(|cm| cm["metadata"]["labels"]["aks-patch.io/run-record"].is_string())
        .collect();
    cms.sort_by_key(|cm| cm["metadata"]["name"].as_str().unwrap_or_default().to_string());
    cms.iter()
        .map(|cm| {
            let text = cm["data"]["run.json"].as_str().expect("the record is in data.run.json");
            serde_json::from_str(text).expect("the record is JSON")
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_run_recorded_in_configmaps_is_resumed_from_them_after_a_kill_and_reported() {
    skip_unless_root!();
    let c = Cluster::start(Some(SMALL)).await;
    let kc = c.kubeconfig();
    let kc = kc.to_str().unwrap();
    let args = |extra: &[&str]| -> Vec<String> {
        apply_args(&[&["--kubeconfig", kc, "--run-record", "cluster"], extra].concat())
            .into_iter()
            .map(str::to_string)
            .collect()
    };
    // The first node done, the second's turn held at its upgrade: then the run is killed.
    c.hold_package_lock(&small_node(2));
    let first = args(&[]);
    let first: Vec<&str> = first.iter().map(String::as_str).collect();
    let mut cmd = c.command(&first);
    cmd.process_group(0);
    let mut child = cmd.spawn().expect("aks-patch starts");
    c.wait_for_event("uncordon", Some(&small_node(1)), Duration::from_secs(120))
        .await;
    child.kill().await.unwrap(); // SIGKILL: nothing is cleaned up
    let _ = child.wait().await;

    let killed = records_in(&c, "default");
    assert_eq!(killed.len(), 1, "one ConfigMap for the run: {killed:?}");
    assert_eq!(killed[0]["status"], "running", "{}", killed[0]);
    let done: Vec<&str> = killed[0]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["state"] == "done")
        .map(|n| n["name"].as_str().unwrap())
        .collect();
    assert!(
        !done.is_empty(),
        "the record shows the nodes finished before the kill: {}",
        killed[0]
    );
    assert!(!c.state_dir().join("runs").exists(), "no record file was written");

    c.release_package_lock(&small_node(2));
    let resume = args(&["--resume", "--force-unlock", "-o", "json"]);
    let resume: Vec<&str> = resume.iter().map(String::as_str).collect();
    let r = c.run(&resume, false).await;
    r.assert_code(0);
    let run = r.json();
    assert_eq!(run["status"], "succeeded", "{}", r.stdout);
    assert_eq!(run["resumedFrom"][0], killed[0]["runId"], "{}", r.stdout);
    for i in 0..3 {
        assert_eq!(
            c.count("reboot", &small_node(i)),
            1,
            "node {i} rebooted once: {}",
            r.stderr
        );
    }
    let after = records_in(&c, "default");
    assert_eq!(after.len(), 2, "{after:?}");
    assert_eq!(after[1]["runId"], run["runId"]);
    assert_eq!(after[1]["status"], "succeeded");
    assert_ne!(after[0]["status"], "running", "the killed run's record is superseded");

    // `report` reads the cluster's records: every node was last patched by these runs.
    let rep = c
        .run(
            &["report", "--kubeconfig", kc, "--run-record", "cluster", "-o", "json"],
            false,
        )
        .await;
    rep.assert_code(0);
    let rows = rep.json();
    for row in rows.as_array().unwrap() {
        assert!(row["lastPatched"].is_string(), "{row}");
    }
    // The file store knows nothing of these runs.
    let files = c
        .run(
            &["report", "--kubeconfig", kc, "--run-record", "file", "-o", "json"],
            false,
        )
        .await;
    files.assert_code(0);
    assert!(files
        .json()
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["lastPatched"].is_null()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_base_passes_a_server_side_dry_run_once_its_namespace_exists_and_creates_nothing() {
    skip_unless_root!();
    let c = Cluster::start(Some(SMALL)).await;
    let dir = deploy_dir();
    let dir = dir.to_str().unwrap();
    let (ok, _, err) = c.kubectl(&["create", "namespace", "aks-patch"]).await;
    assert!(ok, "{err}");
    let (ok, out, err) = c.kubectl(&["apply", "-k", dir, "--dry-run=server"]).await;
    assert!(ok, "kubectl apply -k deploy/ --dry-run=server failed:\n{out}\n{err}");
    assert!(
        out.contains("cronjob.batch/aks-patch created (server dry run)"),
        "{out}"
    );
    assert!(
        out.contains("clusterrole.rbac.authorization.k8s.io/aks-patch created (server dry run)"),
        "{out}"
    );
    let (found, _, _) = c
        .kubectl(&["get", "serviceaccount", "aks-patch", "-n", "aks-patch"])
        .await;
    assert!(!found, "a dry run creates nothing");
    // The same dry run refuses a base the API server would refuse.
    let bad = tempfile::tempdir().unwrap();
    for f in std::fs::read_dir(dir).unwrap() {
        let f = f.unwrap().path();
        std::fs::copy(&f, bad.path().join(f.file_name().unwrap())).unwrap();
    }
    let sa = bad.path().join("serviceaccount.yaml");
    let text = std::fs::read_to_string(&sa)
        .unwrap()
        .replace("app.kubernetes.io/name: aks-patch", "app.kubernetes.io/name: aks patch");
    std::fs::write(&sa, text).unwrap();
    let (ok, out, err) = c
        .kubectl(&["apply", "-k", bad.path().to_str().unwrap(), "--dry-run=server"])
        .await;
    assert!(
        !ok && err.contains("metadata.labels"),
        "a label with a space passed:\n{out}\n{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_cronjobs_pod_scans_and_patches_as_its_service_account_and_a_new_pod_resumes_a_killed_run() {
    skip_unless_root!();
    let c = Cluster::start(Some(&no_ssh())).await;
    install(&c).await;
    let pod = Pod::new(&c).await;

    // scan: the pod's own cluster, through node-shell pods (a pod has no SSH path).
    let scan = pod
        .run(&c, &["scan", "--node-shell-namespace", "aks-patch", "-o", "json"])
        .await;
    scan.assert_code(0);
    assert_eq!(scan.json().as_array().unwrap().len(), 3, "{}", scan.stdout);
    assert!(
        of_kind(&c.events(), "pod-exec").len() >= 3,
        "probed through pods/exec: {}",
        scan.stderr
    );

    // apply, killed (SIGKILL, as when the pod is deleted hard) while the third node's turn waits.
    kill_mid_run(&c, &pod, &cronjob_apply(&[])).await;
    drop(pod); // the pod's files die with it
    let killed = records_in(&c, "aks-patch");
    assert_eq!(killed.len(), 1, "{killed:?}");
    assert_eq!(killed[0]["status"], "running");
    assert_eq!(
        killed[0]["cluster"]["serviceAccount"], "aks-patch",
        "{}",
        killed[0]["cluster"]
    );
    assert_eq!(killed[0]["cluster"]["namespace"], "aks-patch");
    assert_eq!(killed[0]["options"]["transport"]["via"], "kube");

    // A second pod, with a new token, resumes from the record in the cluster and finishes.
    c.release_package_lock(&small_node(2));
    let next = Pod::new(&c).await;
    let r = next
        .run(&c, &cronjob_apply(&["--resume", "--force-unlock", "-o", "json"]))
        .await;
    r.assert_code(0);
    let run = r.json();
    assert_eq!(run["status"], "succeeded", "{}", r.stderr);
    assert_eq!(run["resumedFrom"][0], killed[0]["runId"]);
    for i in 0..3 {
        assert_eq!(
            c.count("reboot", &small_node(i)),
            1,
            "node {i} rebooted once: {}",
            r.stderr
        );
        assert!(!c.unschedulable(&small_node(i)));
    }
    assert!(c.lock_free());
    let rep = next.run(&c, &["report", "-o", "json"]).await;
    rep.assert_code(0);
    assert!(
        rep.json()
            .as_array()
            .unwrap()
            .iter()
            .all(|n| n["lastPatched"].is_string()),
        "{}",
        rep.stdout
    );
}

/// The rules of `deploy/rbac.yaml`'s roles: (kind, name, namespace, rule index).
fn deploy_rules() -> Vec<(String, String, Option<String>, usize)> {
    use serde::Deserialize;
    let text = std::fs::read_to_string(deploy_dir().join("rbac.yaml")).unwrap();
    let mut out = vec![];
    for doc in serde_yaml_ng::Deserializer::from_str(&text) {
        let v = serde_json::Value::deserialize(doc).unwrap();
        let kind = v["kind"].as_str().unwrap();
        if kind != "Role" && kind != "ClusterRole" {
            continue;
        }
        for i in 0..v["rules"].as_array().unwrap().len() {
            out.push((
                kind.to_string(),
                v["metadata"]["name"].as_str().unwrap().to_string(),
                v["metadata"]["namespace"].as_str().map(str::to_string),
                i,
            ));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn without_any_one_rule_of_deploys_rbac_the_preflight_refuses_with_exit_4_before_any_change() {
    skip_unless_root!();
    let c = Cluster::start(Some(&no_ssh())).await;
    install(&c).await;
    let pod = Pod::new(&c).await;
    let rules = deploy_rules();
    assert!(rules.len() >= 8, "{rules:?}");
    for (kind, name, ns, i) in rules {
        let mut get = vec!["get", kind.as_str(), name.as_str(), "-o", "json"];
        if let Some(ns) = &ns {
            get.extend(["-n", ns.as_str()]);
        }
        let (ok, whole, err) = c.kubectl(&get).await;
        assert!(ok, "{err}");
        let whole: serde_json::Value = serde_json::from_str(&whole).unwrap();
        let mut less = whole.clone();
        let removed = less["rules"].as_array_mut().unwrap().remove(i);
        for key in ["resourceVersion", "uid", "creationTimestamp", "managedFields"] {
            less["metadata"].as_object_mut().unwrap().remove(key);
        }
        replace(&c, &less).await;
        let before = c.events().len();
        let r = pod.run(&c, &cronjob_apply(&[])).await;
        let after: Vec<String> = c.events()[before..].iter().map(|e| e.kind.clone()).collect();
        assert_eq!(
            r.code, 4,
            "without {kind} {name} rule {removed}: exit {} instead of 4\n{}",
            r.code, r.stderr
        );
        for change in ["cordon", "eviction", "reboot", "upgrade"] {
            assert!(
                !after.iter().any(|k| k == change),
                "without {kind} {name} rule {removed}: a {change} happened\n{}",
                r.stderr
            );
        }
        assert!(c.lock_free(), "without {kind} {name} rule {removed}: the lock is held");
        if removed["resources"][0] == "configmaps" {
            // Nor can a resume read the records it would continue.
            let r = pod.run(&c, &cronjob_apply(&["--resume"])).await;
            assert_eq!(r.code, 4, "a resume that may not read the records: {}", r.stderr);
            assert!(r.stderr.contains("ConfigMaps in namespace aks-patch"), "{}", r.stderr);
        }
        let mut restore = whole.clone();
        for key in ["resourceVersion", "uid", "creationTimestamp", "managedFields"] {
            restore["metadata"].as_object_mut().unwrap().remove(key);
        }
        replace(&c, &restore).await;
    }
    // With every rule, the same run patches the cluster.
    let r = pod.run(&c, &cronjob_apply(&[])).await;
    r.assert_code(0);
}

/// `kubectl replace` of a role with `obj` (as the cluster admin).
async fn replace(c: &Cluster, obj: &serde_json::Value) {
    let (code, out, err) = c.kubectl_stdin(&["replace", "-f", "-"], &obj.to_string()).await;
    assert_eq!(code, 0, "kubectl apply of {}: {out}{err}", obj["metadata"]["name"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_token_rotated_during_a_run_is_read_again_and_the_old_one_revoked_does_not_stop_it() {
    skip_unless_root!();
    let c = Cluster::start(Some(&no_ssh())).await;
    install(&c).await;
    for s in ["first-token", "second-token"] {
        let (ok, _, err) = c.kubectl(&["create", "secret", "generic", s, "-n", "aks-patch"]).await;
        assert!(ok, "{err}");
    }
    let pod = Pod::with_token(&c, &token(&c, Some("first-token")).await);
    // The first node's upgrade waits for the dpkg lock while the token rotates.
    c.hold_package_lock(&small_node(0));
    let mut cmd = pod.command(&c, &cronjob_apply(&[]));
    cmd.process_group(0);
    let child = cmd.spawn().expect("aks-patch starts in the pod");
    c.wait_for_upgrade_output(&small_node(0), "Waiting for cache lock")
        .await;
    pod.rotate(&token(&c, Some("second-token")).await);
    // kube-rs reads the token file again at least once a minute (as client-go does): after
    // that, the first token may go.
    tokio::time::sleep(Duration::from_secs(70)).await;
    let (ok, _, err) = c.kubectl(&["delete", "secret", "first-token", "-n", "aks-patch"]).await;
    assert!(ok, "{err}");
    c.release_package_lock(&small_node(0));
    let r = finish(child).await;
    r.assert_code(0);
    assert!(
        of_kind(&c.events(), "kube-unauthorized").is_empty(),
        "no request went with the revoked token: {:?}\n{}",
        of_kind(&c.events(), "kube-unauthorized"),
        r.stderr
    );
    for i in 0..3 {
        assert_eq!(c.count("reboot", &small_node(i)), 1, "node {i}: {}", r.stderr);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_pod_without_its_service_account_token_is_told_which_file_is_missing() {
    skip_unless_root!();
    let c = Cluster::start(Some(SMALL)).await;
    let pod = Pod::with_token(&c, "unused");
    std::fs::remove_file(pod.dir.path().join("serviceaccount/token")).unwrap();
    let r = pod.run(&c, &["scan"]).await;
    r.assert_code(2);
    assert!(
        r.stderr.contains("/var/run/secrets/kubernetes.io/serviceaccount/token"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("hint:") && r.stderr.contains("automountServiceAccountToken"),
        "{}",
        r.stderr
    );
    assert!(of_kind(&c.events(), "pod-exec").is_empty(), "nothing was reached");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_node_the_pod_runs_on_is_left_to_a_later_run_and_never_drained() {
    skip_unless_root!();
    let c = Cluster::start(Some(&no_ssh())).await;
    install(&c).await;
    // The CronJob's pod, as the API server knows it: on the second node.
    let own = small_node(1);
    put_pod_on(&c, &own).await;
    let pod = Pod::new(&c).await;
    let r = pod.run(&c, &cronjob_apply(&["-o", "json"])).await;
    r.assert_code(0);
    assert_left_as_own_node(&r.json(), &own);
    assert_eq!(c.count("cordon", &own), 0, "its own node is never cordoned");
    assert_eq!(c.count("reboot", &own), 0);
    for i in [0, 2] {
        let n = small_node(i);
        assert_eq!(c.count("reboot", &n), 1, "{n} patched: {}", r.stderr);
    }
}

/// The CronJob's pod (the name [`Pod`] gives as `HOSTNAME`), as the API server knows it:
/// running on `node`.
async fn put_pod_on(c: &Cluster, node: &str) {
    let manifest = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "aks-patch-29000000-x7k2p", "namespace": "aks-patch"},
        "spec": {
            "nodeName": node,
            "serviceAccountName": "aks-patch",
            "containers": [{"name": "aks-patch", "image": "aks-patch:dev"}],
        },
    });
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), manifest.to_string()).unwrap();
    let (ok, _, err) = c.kubectl(&["apply", "-f", file.path().to_str().unwrap()]).await;
    assert!(ok, "{err}");
}

/// `aks-patch ARGS` in `pod`, killed (SIGKILL: nothing is cleaned up) once the second node
/// is done, while the third node's turn waits at its upgrade (its package lock held; the
/// caller releases it with [`Cluster::release_package_lock`]).
async fn kill_mid_run(c: &Cluster, pod: &Pod, args: &[&str]) {
    c.hold_package_lock(&small_node(2));
    let mut cmd = pod.command(c, args);
    cmd.process_group(0);
    let mut child = cmd.spawn().expect("aks-patch starts in the pod");
    c.wait_for_event("uncordon", Some(&small_node(1)), Duration::from_secs(120))
        .await;
    child.kill().await.unwrap();
    let _ = child.wait().await;
}

/// The run record `rec` shows node `own` skipped as the node the run's pod runs on.
fn assert_left_as_own_node(rec: &serde_json::Value, own: &str) {
    let own_rec = rec["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == own)
        .unwrap_or_else(|| panic!("no {own} in {rec}"));
    assert_eq!(own_rec["state"], "skipped", "{own_rec}");
    assert!(
        own_rec["skipReason"]
            .as_str()
            .is_some_and(|r| r.contains("aks-patch runs on this node (pod aks-patch-29000000-x7k2p)")),
        "{own_rec}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_resumed_run_leaves_the_node_its_new_pod_runs_on() {
    skip_unless_root!();
    let c = Cluster::start(Some(&no_ssh())).await;
    install(&c).await;
    // The first pod's run is killed while the third node's turn waits at its upgrade.
    let pod = Pod::new(&c).await;
    kill_mid_run(&c, &pod, &cronjob_apply(&[])).await;
    drop(pod);
    // The next pod runs on that third node.
    let own = small_node(2);
    put_pod_on(&c, &own).await;
    c.release_package_lock(&own);
    let next = Pod::new(&c).await;
    let r = next
        .run(&c, &cronjob_apply(&["--resume", "--force-unlock", "-o", "json"]))
        .await;
    r.assert_code(0);
    assert_left_as_own_node(&r.json(), &own);
    assert_eq!(c.count("cordon", &own), 0, "its own node is never cordoned");
    assert_eq!(c.count("reboot", &own), 0);
    for i in [0, 1] {
        assert_eq!(c.count("reboot", &small_node(i)), 1, "node {i}: {}", r.stderr);
    }
    assert!(c.lock_free());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_cronjobs_next_run_finishes_a_killed_run_by_itself_with_resume_or_start() {
    skip_unless_root!();
    let c = Cluster::start(Some(&no_ssh())).await;
    install(&c).await;
    // The CronJob's arguments (deploy/cronjob.yaml passes --resume-or-start).
    let scheduled = |extra: &[&'static str]| cronjob_apply(&[&["--resume-or-start"], extra].concat());
    let pod = Pod::new(&c).await;
    kill_mid_run(&c, &pod, &scheduled(&[])).await;
    drop(pod);
    let killed = records_in(&c, "aks-patch");
    assert_eq!(killed.len(), 1, "{killed:?}");
    assert_eq!(killed[0]["status"], "running");

    // The next scheduled pod, with the same arguments, continues that run. (Hours later, the
    // killed run's lease has long expired and is taken as it is; here, a minute later and
    // from the same host name, its holder is known dead: --force-unlock takes it now.)
    c.release_package_lock(&small_node(2));
    let next = Pod::new(&c).await;
    let r = next.run(&c, &scheduled(&["--force-unlock", "-o", "json"])).await;
    r.assert_code(0);
    let run = r.json();
    assert_eq!(run["resumedFrom"][0], killed[0]["runId"], "{}", r.stderr);
    assert!(r.stderr.contains("continuing the unfinished run"), "{}", r.stderr);
    for i in 0..3 {
        assert_eq!(c.count("reboot", &small_node(i)), 1, "node {i}: {}", r.stderr);
    }
    // And the one after starts afresh: nothing is left to continue, and no node needs more.
    let after = next.run(&c, &scheduled(&["-o", "json"])).await;
    after.assert_code(0);
    let fresh = after.json();
    assert!(
        fresh["resumedFrom"].as_array().is_none_or(Vec::is_empty),
        "a new run: {fresh}"
    );
    assert_ne!(fresh["runId"], run["runId"]);
    assert!(
        !after.stderr.contains("continuing the unfinished run"),
        "{}",
        after.stderr
    );
    for i in 0..3 {
        assert_eq!(c.count("reboot", &small_node(i)), 1, "node {i} not again");
    }
}
