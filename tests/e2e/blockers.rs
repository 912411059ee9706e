//! Blockers end to end: a real Prometheus server (Debian's `prometheus`, started
//! here on a loopback port with a rule file, scraping a metric the test sets) whose firing
//! alert holds the rollout until the metric drops; a pod matching `--blocking-pod-selector`
//! that holds it until it is deleted; blockers that do not clear stop the run with exit 9
//! and nothing changed; an unreachable Prometheus blocks.

use crate::common::*;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A metrics endpoint serving `aks_patch_test_backup_running VALUE`.
async fn metric_server(value: Arc<AtomicU64>) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            let v = value.load(Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf).await;
                let body = format!("# TYPE aks_patch_test_backup_running gauge\naks_patch_test_backup_running {v}\n");
                let resp = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = s.write_all(resp.as_bytes()).await;
            });
        }
    });
    port
}

/// Debian's Prometheus on loopback, scraping the metric every second, with an alert
/// `BackupRunning` while it is above 0. Stopped on drop.
struct Prometheus {
    _child: tokio::process::Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    async fn start(metric_port: u16) -> Prometheus {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("rules.yml"),
            "groups:\n- name: aks-patch-test\n  rules:\n  - alert: BackupRunning\n    expr: aks_patch_test_backup_running > 0\n  - alert: Watchdog\n    expr: vector(1)\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("prometheus.yml"),
            format!(
                "global: {{scrape_interval: 1s, evaluation_interval: 1s}}\nrule_files: [{}]\nscrape_configs:\n- job_name: test\n  static_configs: [{{targets: ['127.0.0.1:{metric_port}']}}]\n",
                dir.path().join("rules.yml").display()
            ),
        )
        .unwrap();
        let (child, url) = start_prometheus_daemon(
            "prometheus",
            &[
                format!("--config.file={}", dir.path().join("prometheus.yml").display()),
                format!("--storage.tsdb.path={}", dir.path().join("data").display()),
            ],
            Duration::from_secs(60),
        )
        .await;
        Prometheus {
            _child: child,
            url,
            _dir: dir,
        }
    }

    /// The names and states of the active alerts.
    async fn alerts(&self) -> Vec<(String, String)> {
        let v: serde_json::Value = reqwest::get(format!("{}/api/v1/alerts", self.url))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        v["data"]["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| {
                (
                    a["labels"]["alertname"].as_str().unwrap_or_default().to_string(),
                    a["state"].as_str().unwrap_or_default().to_string(),
                )
            })
            .collect()
    }

    async fn wait_alert(&self, firing: bool) {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            let on = self
                .alerts()
                .await
                .iter()
                .any(|(n, s)| n == "BackupRunning" && s == "firing");
            if on == firing {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "BackupRunning firing={firing} within 60 s"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_firing_alert_holds_the_rollout_before_the_lock_and_before_a_cordon_until_it_clears() {
    skip_unless_root!();
    let value = Arc::new(AtomicU64::new(1));
    let prom = Prometheus::start(metric_server(value.clone()).await).await;
    prom.wait_alert(true).await;
    // Reboots take 8 s, so that the alert fired again while node 0 reboots is seen
    // before node 1's cordon.
    let c = Cluster::start(Some(&small_with(2, 8.0))).await;
    let url = prom.url.clone();
    let mut cmd = c.command_with_target(&apply_args(&[
        "--prometheus-url",
        &url,
        "--alert-filter-regexp",
        "^Watchdog$",
        "--blocker-wait",
        "180s",
        "-o",
        "json",
    ]));
    let run = tokio::spawn(async move { cmd.output().await.unwrap() });
    // Held before the lock: nothing happens while the alert fires.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let ev = c.events();
    for kind in ["lease", "cordon", "apt-upgrade"] {
        assert!(of_kind(&ev, kind).is_empty(), "{kind} while the alert fires");
    }
    value.store(0, Ordering::SeqCst);
    prom.wait_alert(false).await;
    // The rollout starts; while node 0 reboots the alert fires again: node 1 is not cordoned.
    let (n0, n1) = (small_node(0), small_node(1));
    c.wait_for_event("reboot", Some(&n0), Duration::from_secs(60)).await;
    value.store(1, Ordering::SeqCst);
    prom.wait_alert(true).await;
    c.wait_for_event("node-ready", Some(&n0), Duration::from_secs(60)).await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(
        !nodes_with(&c.events(), "cordon").contains(&n1),
        "node 1 was cordoned while the alert fired"
    );
    assert!(!c.unschedulable(&n0), "node 0 is back in service");
    value.store(0, Ordering::SeqCst);
    let out = tokio::time::timeout(Duration::from_secs(180), run)
        .await
        .expect("apply finished")
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("alert BackupRunning is firing"), "{stderr}");
    assert!(
        !stderr.contains("Watchdog"),
        "the filtered alert does not block:\n{stderr}"
    );
    assert!(stderr.contains("the blockers cleared"), "{stderr}");
    assert_eq!(c.kernel(&n1), "5.15.0-1073-azure");
    assert_eq!(max_nodes_out(&c.events(), &[]), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn blockers_that_do_not_clear_stop_with_exit_9_and_nothing_changed() {
    skip_unless_root!();
    let value = Arc::new(AtomicU64::new(1));
    let prom = Prometheus::start(metric_server(value.clone()).await).await;
    prom.wait_alert(true).await;
    // Two nodes: on a one-node cluster the drain's pods would have nowhere to go, which the
    // pre-flight refuses before any blocker is asked.
    let c = Cluster::start(Some(&small_with(2, 1.0))).await;
    // Only alerts matching the regexp block, and only firing ones: Watchdog does not.
    let r = c
        .run(
            &apply_args(&[
                "--prometheus-url",
                &prom.url,
                "--alert-filter-regexp",
                "^Backup",
                "--alert-filter-match-only",
                "--alert-firing-only",
                "--blocker-wait",
                "3s",
            ]),
            true,
        )
        .await;
    r.assert_code(9);
    assert!(
        r.stderr.contains(
            "not starting: blocked: alert BackupRunning is firing (waited 3s, --blocker-wait); nothing was changed"
        ),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains("Watchdog"), "{}", r.stderr);
    // An unreachable Prometheus blocks too, and says so; its credentials are not shown.
    let dead = format!("http://watcher:s3cret@127.0.0.1:{}", free_port());
    let r = c
        .run(&apply_args(&["--prometheus-url", &dead, "--blocker-wait", "2s"]), true)
        .await;
    r.assert_code(9);
    assert!(
        r.stderr.contains("cannot be asked") && r.stderr.contains("that blocks"),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains("s3cret"), "{}", r.stderr);
    // The dry run shows what blocks now.
    let d = c
        .run(&apply_args(&["--dry-run", "--prometheus-url", &prom.url]), true)
        .await;
    d.assert_code(0);
    assert!(
        d.stderr.contains("blockers now") && d.stderr.contains("alert BackupRunning is firing"),
        "{}",
        d.stderr
    );
    let ev = c.events();
    for kind in ["lease", "cordon", "apt-upgrade"] {
        assert!(of_kind(&ev, kind).is_empty(), "{kind}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_blocking_pod_holds_the_rollout_until_it_is_gone() {
    skip_unless_root!();
    let c = Cluster::start(Some(&small_with(2, 1.0))).await;
    let (n0, n1) = (small_node(0), small_node(1));
    let pod = serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "backup-0", "namespace": "app", "labels": {"app": "backup"}},
        "spec": {"nodeName": n1, "containers": [{"name": "backup", "image": "busybox"}]},
        "status": {"phase": "Running"},
    });
    c.sim.shared.store.create(aks_sim::store::PODS, pod).unwrap();
    // Bad selectors are the API server's usage errors.
    let bad = c
        .run(&apply_args(&["--blocking-pod-selector", "app in (", "--dry-run"]), true)
        .await;
    bad.assert_code(2);
    assert!(bad.stderr.contains("invalid --blocking-pod-selector"), "{}", bad.stderr);
    // Scoped to the node: node 0 goes ahead, node 1 (where the pod runs) waits for it.
    let mut cmd = c.command_with_target(&apply_args(&[
        "--blocking-pod-selector",
        "app=backup",
        "--blocking-pod-scope",
        "node",
        "--blocker-wait",
        "120s",
    ]));
    let run = tokio::spawn(async move { cmd.output().await.unwrap() });
    c.wait_for_event("uncordon", Some(&n0), Duration::from_secs(60)).await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(
        !nodes_with(&c.events(), "cordon").contains(&n1),
        "node 1 held by the pod"
    );
    c.sim
        .shared
        .store
        .remove(aks_sim::store::PODS, Some("app"), "backup-0")
        .unwrap();
    let out = tokio::time::timeout(Duration::from_secs(120), run)
        .await
        .expect("apply finished")
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("pod app/backup-0 matches --blocking-pod-selector app=backup (on node"),
        "{stderr}"
    );
    assert_eq!(c.kernel(&n1), "5.15.0-1073-azure");

    // Cluster-wide (the default): a matching pod anywhere holds the run before the lock.
    let pod = serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "backup-1", "namespace": "app", "labels": {"app": "backup"}},
        "spec": {"nodeName": n0, "containers": [{"name": "backup", "image": "busybox"}]},
        "status": {"phase": "Running"},
    });
    c.sim.shared.store.create(aks_sim::store::PODS, pod).unwrap();
    let before = c.events().len();
    let r = c
        .run(
            &apply_args(&["--blocking-pod-selector", "app=backup", "--blocker-wait", "2s"]),
            true,
        )
        .await;
    r.assert_code(9);
    assert!(r.stderr.contains("pod app/backup-1 matches"), "{}", r.stderr);
    let ev = c.events();
    assert!(ev[before..].iter().all(|e| e.kind != "lease" && e.kind != "cordon"));
}

/// A run stopped with exit 9 by a firing alert, resumed without `--prometheus-url`: a usage
/// error asking for it (the URL is secret and not recorded), nothing changed. Given again,
/// the recorded blockers still hold while the alert fires, and the run finishes once it clears.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_run_stopped_by_an_alert_is_not_resumed_without_its_prometheus_url() {
    skip_unless_root!();
    let value = Arc::new(AtomicU64::new(0));
    let prom = Prometheus::start(metric_server(value.clone()).await).await;
    prom.wait_alert(false).await;
    // Reboots take 8 s: the alert fired while node 0 reboots holds node 1's cordon.
    let c = Cluster::start(Some(&small_with(2, 8.0))).await;
    let (n0, n1) = (small_node(0), small_node(1));
    let url = prom.url.clone();
    let mut cmd = c.command_with_target(&apply_args(&[
        "--prometheus-url",
        &url,
        "--alert-filter-regexp",
        "^Watchdog$",
        "--blocker-wait",
        "5s",
    ]));
    let run = tokio::spawn(async move { cmd.output().await.unwrap() });
    c.wait_for_event("reboot", Some(&n0), Duration::from_secs(60)).await;
    value.store(1, Ordering::SeqCst);
    prom.wait_alert(true).await;
    let out = tokio::time::timeout(Duration::from_secs(180), run)
        .await
        .expect("apply finished")
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(9), "{stderr}");
    assert_eq!(c.kernel(&n0), "5.15.0-1073-azure");
    assert!(!nodes_with(&c.events(), "cordon").contains(&n1));

    // Without --prometheus-url: refused before anything, asking for it.
    let before = c.events().len();
    let r = c.run(&apply_args(&["--resume"]), true).await;
    r.assert_code(2);
    assert!(
        r.stderr.contains("--prometheus-url")
            && r.stderr.contains("secret and was not recorded")
            && r.stderr.contains("nothing was changed")
            && r.stderr.contains("hint: add --prometheus-url URL"),
        "{}",
        r.stderr
    );
    assert_eq!(c.events().len(), before, "nothing was done");
    assert!(c.lock_free());

    // With it, the recorded filter and wait hold while the alert fires: exit 9 again.
    let r = c.run(&apply_args(&["--resume", "--prometheus-url", &url]), true).await;
    r.assert_code(9);
    assert!(
        r.stderr.contains("alert BackupRunning is firing") && !r.stderr.contains("Watchdog"),
        "{}",
        r.stderr
    );
    assert!(!nodes_with(&c.events(), "cordon").contains(&n1));
    assert_eq!(c.kernel(&n1), "5.15.0-1068-azure");

    value.store(0, Ordering::SeqCst);
    prom.wait_alert(false).await;
    let r = c
        .run(&apply_args(&["--resume", "--prometheus-url", &url, "-o", "json"]), true)
        .await;
    r.assert_code(0);
    assert_eq!(c.kernel(&n1), "5.15.0-1073-azure");
    assert_eq!(r.json()["options"]["blockers"]["prometheus"], true);
    assert_eq!(r.json()["options"]["blockers"]["alertFilterRegexp"], "^Watchdog$");
    assert!(!r.stdout.contains(&url), "the URL is never recorded");
    assert_eq!(max_nodes_out(&c.events(), &[]), 1);
}
