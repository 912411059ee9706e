//! Fleets in words: the tables of `fleet scan`, `fleet apply` and `fleet report`, and the
//! scheduler's progress (one line a stage change, one a cluster started or ended; each
//! cluster's own rollout speaks through a reporter that names it, [`Reporter::for_cluster`]).

use super::table::{Column, TableSpec};
use super::Reporter;
use crate::fleet::record::StageState;
use crate::fleet::schedule::{ClusterOutcome, ClusterResult, ClusterStart, FleetProgress};
use crate::fleet::ClusterRef;
use std::time::Duration;

/// `fleet scan`: one row a cluster.
pub fn scan_table() -> TableSpec {
    TableSpec::new(vec![
        Column::new("CLUSTER", "cluster"),
        Column::new("RESOURCE-GROUP", "resourceGroup"),
        Column::new("SUBSCRIPTION", "subscription"),
        Column::new("LINUX", "linuxNodes").placeholder("-"),
        Column::new("REBOOT", "rebootRequired").placeholder("-"),
        Column::new("PENDING", "pendingUpdates").placeholder("-"),
        Column::new("SECURITY", "securityUpdates").placeholder("-"),
        Column::new("WINDOWS", "windowsNodes").placeholder("-"),
        Column::new("ERROR", "error").placeholder(""),
    ])
}

/// `fleet apply`: one row a cluster, stage by stage.
pub fn apply_table() -> TableSpec {
    TableSpec::new(vec![
        Column::new("STAGE", "stage"),
        Column::new("CLUSTER", "cluster"),
        Column::new("RESOURCE-GROUP", "resourceGroup"),
        Column::new("SUBSCRIPTION", "subscription").wide(),
        Column::new("STATE", "state"),
        Column::new("RUN-ID", "runId").placeholder("-"),
        Column::new("EXIT", "exitCode").placeholder("-"),
        Column::new("ERROR", "error").placeholder(""),
    ])
}

/// `fleet apply --dry-run`: one row a cluster, stage by stage, with what its pre-flight found.
pub fn apply_plan_table() -> TableSpec {
    TableSpec::new(vec![
        Column::new("STAGE", "stage"),
        Column::new("CLUSTER", "cluster"),
        Column::new("RESOURCE-GROUP", "resourceGroup"),
        Column::new("SUBSCRIPTION", "subscription").wide(),
        Column::new("PLAN", "plan").placeholder("-"),
        Column::new("ERROR", "error").placeholder(""),
    ])
}

/// `fleet report`: one row a cluster from its last scan and run.
pub fn report_table() -> TableSpec {
    TableSpec::new(vec![
        Column::new("CLUSTER", "cluster"),
        Column::new("RESOURCE-GROUP", "resourceGroup"),
        Column::new("SUBSCRIPTION", "subscription"),
        Column::new("SCANNED", "nodesScanned").placeholder("-"),
        Column::new("REBOOT", "rebootRequired").placeholder("-"),
        Column::new("PENDING", "pendingUpdates").placeholder("-"),
        Column::new("LAST-SCAN", "lastScan").placeholder("-"),
        Column::new("LAST-RUN", "lastRun").placeholder("-"),
        Column::new("PATCHED", "patched").placeholder("-"),
        Column::new("LAST-PATCHED", "lastPatched").placeholder("-"),
        Column::new("RUN-ID", "lastRunId").wide().placeholder("-"),
    ])
}

fn stage_words(state: StageState) -> &'static str {
    match state {
        StageState::Pending => "not started",
        StageState::Running => "running",
        StageState::Succeeded => "succeeded",
        StageState::Failed => "failed",
        StageState::Stopped => "stopped",
    }
}

impl FleetProgress for Reporter {
    fn stage_started(&self, index: usize, of: usize, name: &str, clusters: &[ClusterRef]) {
        let names: Vec<String> = clusters.iter().map(ToString::to_string).collect();
        self.info(&format!(
            "stage {index} of {of} ({name}): {} cluster(s): {}",
            clusters.len(),
            names.join(", ")
        ));
        self.stage_line_started(index, of, name, &names);
    }

    fn cluster_started(&self, stage: &str, cluster: &ClusterRef, start: &ClusterStart) {
        self.stage_line_cluster(&cluster.to_string(), "running");
        self.info(&format!(
            "{cluster}: {} (stage {stage})",
            if start.resume {
                "resuming its unfinished run"
            } else {
                "starting"
            }
        ));
    }

    fn cluster_finished(&self, _stage: &str, cluster: &ClusterRef, result: &ClusterResult) {
        let run = result
            .run_id
            .as_deref()
            .map(|r| format!(" (run {r})"))
            .unwrap_or_default();
        self.stage_line_cluster(
            &cluster.to_string(),
            match result.outcome {
                ClusterOutcome::Succeeded => "succeeded",
                ClusterOutcome::Stopped => "stopped",
                ClusterOutcome::Failed => "failed",
            },
        );
        match result.outcome {
            ClusterOutcome::Succeeded => self.info(&format!("{cluster}: succeeded{run}")),
            ClusterOutcome::Stopped => self.info(&format!("{cluster}: stopped at a safe point{run}")),
            ClusterOutcome::Failed => self.error(&format!(
                "{cluster}: failed with exit code {}{run}{}",
                result.exit_code,
                result.message.as_deref().map(|m| format!(": {m}")).unwrap_or_default()
            )),
        }
    }

    fn stage_stopping(&self, stage: &str, failed: &ClusterRef) {
        self.stage_line_stopping();
        self.warn(&format!(
            "{failed} failed: the other clusters of stage {stage} stop at their safe point and no later stage starts (--continue-stage lets the stage finish)"
        ));
    }

    fn stage_finished(&self, index: usize, of: usize, name: &str, state: StageState) {
        self.info(&format!("stage {index} of {of} ({name}): {}", stage_words(state)));
    }

    fn soaking(&self, after: &str, wait: Duration) {
        self.stage_line_soaking(wait);
        self.info(&format!(
            "stage {after} done: soaking {} before the next stage",
            crate::duration::human(wait)
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::azure::ClusterId;
    use crate::output::Verbosity;

    #[test]
    fn the_scheduler_is_told_in_lines_that_name_the_stage_and_the_cluster() {
        let (r, c) = Reporter::capture(Verbosity::Normal);
        let a = ClusterRef::new(ClusterId::new("s1", "rg-a", "aks-1"));
        r.stage_started(1, 2, "env=dev", std::slice::from_ref(&a));
        r.cluster_started("env=dev", &a, &ClusterStart { resume: false });
        r.cluster_finished(
            "env=dev",
            &a,
            &ClusterResult {
                outcome: ClusterOutcome::Failed,
                run_id: Some("r1".into()),
                exit_code: 5,
                message: Some("node n1 failed".into()),
            },
        );
        r.stage_stopping("env=dev", &a);
        r.stage_finished(1, 2, "env=dev", StageState::Failed);
        let text = c.text();
        assert!(
            text.starts_with("stage 1 of 2 (env=dev): 1 cluster(s): rg-a/aks-1\n"),
            "{text}"
        );
        assert!(text.contains("rg-a/aks-1: starting (stage env=dev)\n"), "{text}");
        assert!(
            text.contains("error: rg-a/aks-1: failed with exit code 5 (run r1): node n1 failed\n"),
            "{text}"
        );
        assert!(text.contains("no later stage starts"), "{text}");
        assert!(text.ends_with("stage 1 of 2 (env=dev): failed\n"), "{text}");
    }

    #[test]
    fn the_stage_has_a_status_line_counting_its_clusters_and_the_soak() {
        let (r, _) = Reporter::capture_with_status(Verbosity::Normal);
        let [a, b, c] = ["aks-1", "aks-2", "aks-3"].map(|n| ClusterRef::new(ClusterId::new("s1", "rg-a", n)));
        let result = |outcome| ClusterResult {
            outcome,
            run_id: None,
            exit_code: 0,
            message: None,
        };
        r.stage_started(1, 3, "env=dev", &[a.clone(), b.clone(), c.clone()]);
        assert_eq!(r.status_text().as_deref(), Some("stage 1 of 3 (env=dev): 3 waiting"));
        r.cluster_started("env=dev", &a, &ClusterStart { resume: false });
        r.cluster_started("env=dev", &b, &ClusterStart { resume: true });
        assert_eq!(
            r.status_text().as_deref(),
            Some("stage 1 of 3 (env=dev): 2 running, 1 waiting")
        );
        r.cluster_finished("env=dev", &a, &result(ClusterOutcome::Succeeded));
        r.cluster_started("env=dev", &c, &ClusterStart { resume: false });
        assert_eq!(
            r.status_text().as_deref(),
            Some("stage 1 of 3 (env=dev): 2 running, 1 succeeded")
        );
        r.cluster_finished("env=dev", &b, &result(ClusterOutcome::Succeeded));
        r.cluster_finished("env=dev", &c, &result(ClusterOutcome::Succeeded));
        r.stage_finished(1, 3, "env=dev", StageState::Succeeded);
        assert_eq!(r.status_text().as_deref(), Some("stage 1 of 3 (env=dev): 3 succeeded"));
        r.soaking("env=dev", Duration::from_secs(600));
        assert_eq!(
            r.status_text().as_deref(),
            Some("stage 1 of 3 (env=dev) done: soaking 0:00 / 10:00 before the next stage")
        );
        r.stage_started(2, 3, "env=prod", &[a.clone(), b.clone()]);
        r.cluster_started("env=prod", &a, &ClusterStart { resume: false });
        r.cluster_started("env=prod", &b, &ClusterStart { resume: false });
        r.cluster_finished("env=prod", &a, &result(ClusterOutcome::Failed));
        r.stage_stopping("env=prod", &a);
        assert_eq!(
            r.status_text().as_deref(),
            Some("stage 2 of 3 (env=prod): 1 stopping, 1 failed")
        );
        r.stage_started(3, 3, "env=qa", &[]);
        assert_eq!(r.status_text().as_deref(), Some("stage 3 of 3 (env=qa): no cluster"));
        r.finish_and_clear();
        assert_eq!(r.status_text(), None);
    }
}
