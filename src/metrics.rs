//! Metrics: the gauges of a scan and of a run, in Prometheus's text exposition format, pushed
//! to a Pushgateway (`--pushgateway-url`) or printed by `report -o prometheus` (for
//! node_exporter's textfile collector).
//!
//! - scan: `aks_patch_reboot_required{node,pool}`, `aks_patch_pending_updates{node,pool,kind}`
//!   (`kind` = `security` | `other`, or `unclassified` where the node's package manager does
//!   not classify security updates reliably, as on Azure Linux);
//! - apply: `aks_patch_node_result{node,pool,result}` (1 for the node's state),
//!   `aks_patch_node_rebooted{node,pool}`, `aks_patch_last_run_timestamp_seconds{result}`,
//!   `aks_patch_run_duration_seconds`, `aks_patch_run_nodes_rebooted`,
//!   `aks_patch_run_pods_evicted`, `aks_patch_run_pods_evicted_again` (in that run).

use crate::rollout::journal::RunRecord;
use base64::Engine as _;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

type Time = crate::rollout::journal::Time;

/// One gauge with its samples.
#[derive(Debug, Clone, PartialEq)]
pub struct Family {
    pub name: &'static str,
    pub help: &'static str,
    pub samples: Vec<(Vec<(String, String)>, f64)>,
}

impl Family {
    fn new(name: &'static str, help: &'static str) -> Family {
        Family {
            name,
            help,
            samples: vec![],
        }
    }

    fn add(&mut self, labels: &[(&str, &str)], value: f64) {
        self.samples.push((
            labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            value,
        ));
    }
}

/// What a scan saw of one node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeScanMetrics {
    pub node: String,
    pub pool: String,
    pub reboot_required: bool,
    pub pending: usize,
    /// `None`: not known (Azure Linux).
    pub security: Option<usize>,
}

/// The scan's gauges.
pub fn scan_families(nodes: &[NodeScanMetrics]) -> Vec<Family> {
    let mut reboot = Family::new(
        "aks_patch_reboot_required",
        "1 when the node's reboot marker (/var/run/reboot-required) is set, at the last scan",
    );
    let mut pending = Family::new(
        "aks_patch_pending_updates",
        "Updates pending on the node at the last scan, by kind (security or other)",
    );
    for n in nodes {
        let base = [("node", n.node.as_str()), ("pool", n.pool.as_str())];
        reboot.add(&base, if n.reboot_required { 1.0 } else { 0.0 });
        match n.security {
            Some(security) => {
                pending.add(&[base[0], base[1], ("kind", "security")], security as f64);
                pending.add(
                    &[base[0], base[1], ("kind", "other")],
                    n.pending.saturating_sub(security) as f64,
                );
            }
            None => pending.add(&[base[0], base[1], ("kind", "unclassified")], n.pending as f64),
        }
    }
    vec![reboot, pending]
}

/// A run's gauges.
pub fn run_families(rec: &RunRecord) -> Vec<Family> {
    let mut result = Family::new(
        "aks_patch_node_result",
        "1 for the state the node was left in by the last aks-patch run (done, failed, pending, skipped, gone, ...)",
    );
    let mut rebooted = Family::new(
        "aks_patch_node_rebooted",
        "1 when the last aks-patch run rebooted the node",
    );
    for n in &rec.nodes {
        let state = crate::rollout::journal::enum_text(&n.state);
        result.add(&[("node", &n.name), ("pool", &n.pool), ("result", &state)], 1.0);
        rebooted.add(
            &[("node", &n.name), ("pool", &n.pool)],
            if n.rebooted { 1.0 } else { 0.0 },
        );
    }
    let finished = rec.finished_at.unwrap_or_else(crate::rollout::journal::now);
    let mut last = Family::new(
        "aks_patch_last_run_timestamp_seconds",
        "When the last aks-patch run finished (Unix time), by its result",
    );
    last.add(
        &[("result", &crate::rollout::journal::enum_text(&rec.status))],
        finished.as_millisecond() as f64 / 1000.0,
    );
    let mut duration = Family::new("aks_patch_run_duration_seconds", "How long the last aks-patch run took");
    duration.add(
        &[],
        finished.duration_since(rec.started_at).as_millis().max(0) as f64 / 1000.0,
    );
    let mut total = Family::new("aks_patch_run_nodes_rebooted", "Nodes the last aks-patch run rebooted");
    total.add(&[], rec.nodes.iter().filter(|n| n.rebooted).count() as f64);
    let evictions = rec.evictions();
    let mut evicted = Family::new(
        "aks_patch_run_pods_evicted",
        "Pods the drains of the last aks-patch run evicted",
    );
    evicted.add(&[], evictions.evicted as f64);
    let mut again = Family::new(
        "aks_patch_run_pods_evicted_again",
        "Of those, evictions of a pod that had moved already in the run (created during it, or a name evicted before)",
    );
    again.add(&[], evictions.moved_again as f64);
    vec![result, rebooted, last, duration, total, evicted, again]
}

/// A fleet run's stage, as its gauges count it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StageMetrics {
    pub stage: String,
    /// `succeeded`, `failed`, `stopped`, ...
    pub state: String,
    /// Its clusters' states.
    pub clusters: Vec<String>,
}

/// A fleet run's gauges: each stage's state and its clusters by state, the run's result and
/// when it ended.
pub fn fleet_families(stages: &[StageMetrics], result: &str, started: Time, finished: Time) -> Vec<Family> {
    let mut stage = Family::new(
        "aks_patch_fleet_stage_state",
        "1 for the state each stage of the last fleet run was left in",
    );
    let mut clusters = Family::new(
        "aks_patch_fleet_stage_clusters",
        "Clusters of each stage of the last fleet run, by the state they were left in",
    );
    for s in stages {
        stage.add(&[("stage", &s.stage), ("state", &s.state)], 1.0);
        let mut by: std::collections::BTreeMap<&str, usize> = std::collections::BTreeMap::new();
        for c in &s.clusters {
            *by.entry(c.as_str()).or_default() += 1;
        }
        for (state, n) in by {
            clusters.add(&[("stage", &s.stage), ("state", state)], n as f64);
        }
    }
    let mut last = Family::new(
        "aks_patch_fleet_last_run_timestamp_seconds",
        "When the last fleet run finished (Unix time), by its result",
    );
    last.add(&[("result", result)], finished.as_millisecond() as f64 / 1000.0);
    let mut duration = Family::new(
        "aks_patch_fleet_run_duration_seconds",
        "How long the last fleet run took",
    );
    duration.add(&[], finished.duration_since(started).as_millis().max(0) as f64 / 1000.0);
    vec![stage, clusters, last, duration]
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

fn number(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

/// The text exposition format; `extra` labels go first on every sample (e.g. the cluster).
pub fn exposition(families: &[Family], extra: &[(&str, &str)]) -> String {
    let mut out = String::new();
    for f in families {
        let _ = writeln!(out, "# HELP {} {}", f.name, f.help);
        let _ = writeln!(out, "# TYPE {} gauge", f.name);
        for (labels, value) in &f.samples {
            let all: Vec<String> = extra
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .chain(labels.iter().cloned())
                .map(|(k, v)| format!("{k}=\"{}\"", escape(&v)))
                .collect();
            if all.is_empty() {
                let _ = writeln!(out, "{} {}", f.name, number(*value));
            } else {
                let _ = writeln!(out, "{}{{{}}} {}", f.name, all.join(","), number(*value));
            }
        }
    }
    out
}

/// A failed push.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    #[error("invalid --pushgateway-url {0}")]
    Url(String),
    #[error("the Pushgateway at {url} did not take the metrics: {why}")]
    Push { url: String, why: String },
}

/// Check `url` up front (a usage error, before anything is done).
pub fn check_url(url: &str) -> Result<(), PushError> {
    let u = reqwest::Url::parse(url)
        .map_err(|e| PushError::Url(format!("`{}`: {e}", crate::rollout::blockers::redact(url))))?;
    if !matches!(u.scheme(), "http" | "https") {
        return Err(PushError::Url(format!(
            "`{}`: not an http(s) URL",
            crate::rollout::blockers::redact(url)
        )));
    }
    Ok(())
}

/// Replace the metrics of group `job` + `cluster` on the Pushgateway (HTTP PUT), retried
/// briefly, through a client that trusts `ca_bundle` too. The cluster goes in the grouping
/// key base64-encoded (it may contain `/`).
pub async fn push(
    url: &str,
    job: &str,
    cluster: &str,
    families: &[Family],
    ca_bundle: Option<&(PathBuf, &'static str)>,
    timeout: Duration,
) -> Result<(), PushError> {
    let shown = crate::rollout::blockers::redact(url);
    let encoded = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(cluster);
    let target = format!(
        "{}/metrics/job/{job}/cluster@base64/{}",
        url.trim_end_matches('/'),
        if encoded.is_empty() { "=".to_string() } else { encoded }
    );
    let http = crate::http::client(ca_bundle, timeout, timeout).map_err(|e| PushError::Push {
        url: shown.clone(),
        why: e.to_string(),
    })?;
    let body = exposition(families, &[]);
    let what = format!("pushing the metrics to the Pushgateway at {shown}");
    crate::http::send_with_retries(&what, || {
        http.put(&target)
            .header("Content-Type", "text/plain; version=0.0.4")
            .body(body.clone())
    })
    .await
    .map_err(|f| PushError::Push {
        url: shown,
        why: match f {
            crate::http::SendFailure::Status(status, text) => format!("HTTP {status}: {text}"),
            other => other.to_string(),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fleet_run_is_counted_per_stage_by_the_state_its_clusters_were_left_in() {
        let t0 = jiff::Timestamp::from_second(1_700_000_000).unwrap();
        let t1 = jiff::Timestamp::from_second(1_700_000_090).unwrap();
        let stages = [
            StageMetrics {
                stage: "env=dev".into(),
                state: "failed".into(),
                clusters: vec![
                    "succeeded".into(),
                    "failed".into(),
                    "stopped".into(),
                    "succeeded".into(),
                ],
            },
            StageMetrics {
                stage: "env=prod".into(),
                state: "pending".into(),
                clusters: vec!["pending".into()],
            },
        ];
        let text = exposition(&fleet_families(&stages, "failed", t0, t1), &[]);
        assert!(
            text.contains("aks_patch_fleet_stage_clusters{stage=\"env=dev\",state=\"succeeded\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("aks_patch_fleet_stage_state{stage=\"env=prod\",state=\"pending\"} 1\n"),
            "{text}"
        );
        assert!(text.contains("aks_patch_fleet_run_duration_seconds 90\n"), "{text}");
    }

    #[test]
    fn the_exposition_format_escapes_labels_and_prints_integers_plainly() {
        let f = scan_families(&[NodeScanMetrics {
            node: "n\"0".into(),
            pool: "p".into(),
            reboot_required: true,
            pending: 5,
            security: Some(2),
        }]);
        let text = exposition(&f, &[("cluster", "rg/aks")]);
        assert!(text.contains("# TYPE aks_patch_reboot_required gauge\n"), "{text}");
        assert!(
            text.contains("aks_patch_reboot_required{cluster=\"rg/aks\",node=\"n\\\"0\",pool=\"p\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("kind=\"security\"} 2\n") && text.contains("kind=\"other\"} 3\n"),
            "{text}"
        );
        // Azure Linux: no made-up security count.
        let f = scan_families(&[NodeScanMetrics {
            node: "azl".into(),
            pool: "p".into(),
            reboot_required: false,
            pending: 4,
            security: None,
        }]);
        let text = exposition(&f, &[]);
        assert!(text.contains("kind=\"unclassified\"} 4\n"), "{text}");
        assert!(!text.contains("kind=\"security\""), "{text}");
    }
}
