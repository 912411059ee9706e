//! aks-patch as it runs inside the cluster: its run record kept in ConfigMaps (one per run,
//! written before every side effect), so that a run killed with its pod is resumed from the
//! cluster by the next one, and `report` reads the cluster's records.

use crate::common::*;
use std::time::Duration;

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
