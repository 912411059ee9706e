//! Metrics end to end: a real Pushgateway (Debian's `prometheus-pushgateway`,
//! started here on a loopback port) receives the gauges of `scan --pushgateway-url` and
//! `apply --pushgateway-url`, read back from its `/metrics`; `report -o prometheus` prints
//! the same gauges; a Pushgateway that is down changes no outcome.

use crate::common::*;
use std::time::Duration;

struct Pushgateway {
    _child: tokio::process::Child,
    url: String,
}

impl Pushgateway {
    async fn start() -> Pushgateway {
        let (child, url) = start_prometheus_daemon("prometheus-pushgateway", &[], Duration::from_secs(30)).await;
        Pushgateway { _child: child, url }
    }

    /// The value of the one sample of `name` whose labels include every `labels` pair.
    async fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let text = reqwest::get(format!("{}/metrics", self.url))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        sample(&text, name, labels)
    }
}

/// The value of the sample of `name` in exposition `text` with these labels (among others).
fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} ")))
        .find(|l| labels.iter().all(|(k, v)| l.contains(&format!("{k}=\"{v}\""))))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// Prometheus's own linter (`promtool check metrics`, from Debian's `prometheus`) on an
/// exposition: it parses, and follows the naming conventions (no `_total` on a gauge, ...).
async fn promtool_check(text: &str) {
    use tokio::io::AsyncWriteExt;
    let mut child = tokio::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool runs (scripts/setup installs prometheus)");
    child.stdin.take().unwrap().write_all(text.as_bytes()).await.unwrap();
    let out = child.wait_with_output().await.unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn scan_and_apply_push_their_gauges_to_a_real_pushgateway_and_report_prints_them() {
    skip_unless_root!();
    let gw = Pushgateway::start().await;
    let c = Cluster::start(Some(&small_with(2, 1.0))).await;
    let (n0, n1) = (small_node(0), small_node(1));

    let r = c.run(&["scan", "--pushgateway-url", &gw.url], true).await;
    r.assert_code(0);
    for n in [&n0, &n1] {
        let at = |kind| {
            [
                ("job", "aks-patch-scan"),
                ("cluster", "aks-test"),
                ("node", n.as_str()),
                ("pool", "nodes"),
                ("kind", kind),
            ]
        };
        assert_eq!(
            gw.value("aks_patch_pending_updates", &at("security")).await,
            Some(2.0),
            "{n}"
        );
        assert_eq!(
            gw.value("aks_patch_pending_updates", &at("other")).await,
            Some(0.0),
            "{n}"
        );
        assert_eq!(
            gw.value(
                "aks_patch_reboot_required",
                &[("job", "aks-patch-scan"), ("node", n.as_str())]
            )
            .await,
            Some(0.0)
        );
    }
    // report -o prometheus: the same gauges, from the last scan, labelled with the cluster.
    let rep = c.run(&["report", "-o", "prometheus"], true).await;
    rep.assert_code(0);
    promtool_check(&rep.stdout).await;
    assert!(
        rep.stdout.contains("# TYPE aks_patch_pending_updates gauge\n"),
        "{}",
        rep.stdout
    );
    assert_eq!(
        sample(
            &rep.stdout,
            "aks_patch_pending_updates",
            &[("cluster", "aks-test"), ("node", &n0), ("kind", "security")]
        ),
        Some(2.0),
        "{}",
        rep.stdout
    );

    let r = c.run(&apply_args(&["--pushgateway-url", &gw.url]), true).await;
    r.assert_code(0);
    let job = ("job", "aks-patch-apply");
    assert_eq!(
        gw.value("aks_patch_run_nodes_rebooted", &[job, ("cluster", "aks-test")])
            .await,
        Some(2.0)
    );
    for n in [&n0, &n1] {
        assert_eq!(
            gw.value(
                "aks_patch_node_result",
                &[job, ("node", n.as_str()), ("result", "done")]
            )
            .await,
            Some(1.0)
        );
        assert_eq!(
            gw.value("aks_patch_node_rebooted", &[job, ("node", n.as_str())]).await,
            Some(1.0)
        );
    }
    let when = gw
        .value("aks_patch_last_run_timestamp_seconds", &[job, ("result", "succeeded")])
        .await
        .expect("last run timestamp");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!((now - when).abs() < 120.0, "finished just now: {when} vs {now}");
    let took = gw
        .value("aks_patch_run_duration_seconds", &[job])
        .await
        .expect("duration");
    assert!(took > 0.0 && took < 300.0, "{took}");
    // The scan's group is still there: the apply replaced only its own.
    assert!(gw
        .value("aks_patch_reboot_required", &[("job", "aks-patch-scan")])
        .await
        .is_some());

    let rep = c.run(&["report", "-o", "prometheus"], true).await;
    rep.assert_code(0);
    promtool_check(&rep.stdout).await;
    assert_eq!(
        sample(&rep.stdout, "aks_patch_run_nodes_rebooted", &[("cluster", "aks-test")]),
        Some(2.0),
        "{}",
        rep.stdout
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_pushgateway_that_is_down_changes_no_outcome_and_bad_uses_are_usage_errors() {
    skip_unless_root!();
    let c = Cluster::start(Some(&small_with(2, 1.0))).await;
    let dead = format!("http://metrics:s3cret@127.0.0.1:{}", free_port());
    let r = c.run(&["scan", "--pushgateway-url", &dead], true).await;
    r.assert_code(0);
    assert!(
        r.stderr.contains("did not take the metrics") && r.stderr.contains("the scan's result is not affected"),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains("s3cret"), "{}", r.stderr);
    let r = c.run(&["scan", "--pushgateway-url", "ftp://x"], true).await;
    r.assert_code(2);
    assert!(r.stderr.contains("invalid --pushgateway-url"), "{}", r.stderr);
    let r = c.run(&["scan", "-o", "prometheus"], true).await;
    r.assert_code(2);
    assert!(
        r.stderr.contains("-o prometheus is only for `aks-patch report`"),
        "{}",
        r.stderr
    );
}
