//! The run record end to end against aks-sim: `--resume` keeps the recorded selection and
//! refuses a flag that says otherwise (naming both values), a resume of a run that succeeded
//! changes nothing, and a journal directory that fills up mid-run stops the run at the next
//! safe point (the node in hand finished, the summary printed) with `--resume` going on
//! correctly once space is freed.

use crate::common::*;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// [`SMALL`] with a second pool, `user`, of one node.
fn two_pools() -> String {
    SMALL.replace(
        "workloads:",
        "  - name: user\n    mode: User\n    count: 1\n    kernel: 5.15.0-1068-azure\n    updates:\n      - {name: linux-azure, from: 5.15.0.1068.66, to: 5.15.0.1073.71, pocket: jammy-security, kernel: 5.15.0-1073-azure}\nworkloads:",
    )
}

/// The name of the user pool's node.
fn user_node(c: &Cluster) -> String {
    c.sim
        .shared
        .store
        .list(aks_sim::store::NODES, None)
        .iter()
        .filter_map(|n| n["metadata"]["name"].as_str().map(str::to_string))
        .find(|n| n.starts_with("aks-user-"))
        .expect("the user pool has a node")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_resume_with_another_nodepool_than_the_run_it_continues_is_refused_naming_both() {
    skip_unless_root!();
    let c = Cluster::start(Some(&two_pools())).await;
    let user = user_node(&c);
    // A run over all pools halts on a system node whose apt fails.
    let bad = small_node(2);
    c.sim.fault(aks_sim::Fault::AptFailure { node: bad.clone() }).unwrap();
    let r = c.run(&apply_args(&[]), true).await;
    r.assert_code(5);
    c.sim.fault(aks_sim::Fault::Clear).unwrap();
    let run_id = run_records(&c.state_dir().join("runs")).last().unwrap()["runId"]
        .as_str()
        .unwrap()
        .to_string();
    let before = c.events().len();

    let r = c.run(&apply_args(&["--resume", "--nodepool", "user"]), true).await;
    r.assert_code(2);
    assert!(
        r.stderr
            .contains(&format!("--nodepool user (run {run_id} used all pools)"))
            && r.stderr.contains("nothing was changed")
            && r.stderr.contains("hint:"),
        "{}",
        r.stderr
    );
    // Refused before anything: not even the lock.
    let ev = c.events();
    for e in &ev[before..] {
        assert!(
            !["lease", "cordon", "apt-upgrade", "reboot"].contains(&e.kind.as_str()),
            "{e:?}"
        );
    }
    assert!(c.lock_free());

    // Resumed as recorded, it finishes the run over all pools.
    let r = c.run(&apply_args(&["--resume", "-o", "json"]), true).await;
    r.assert_code(0);
    assert_eq!(r.node_record(&bad)["state"], "done");
    assert_eq!(r.node_record(&user)["state"], "done");
    assert_eq!(r.json()["options"]["selection"]["nodepools"], serde_json::json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_resume_of_a_run_that_succeeded_says_so_and_changes_nothing() {
    skip_unless_root!();
    let c = Cluster::start(Some(&SMALL.replace("count: 3", "count: 2"))).await;
    // An earlier run halted; its resume succeeded. Neither is to be walked again.
    let bad = small_node(1);
    c.sim.fault(aks_sim::Fault::AptFailure { node: bad.clone() }).unwrap();
    c.run(&apply_args(&[]), true).await.assert_code(5);
    c.sim.fault(aks_sim::Fault::Clear).unwrap();
    c.run(&apply_args(&["--resume"]), true).await.assert_code(0);
    let runs = c.state_dir().join("runs");
    let recs = run_records(&runs);
    assert_eq!(recs.len(), 2);
    let done_id = recs[1]["runId"].as_str().unwrap().to_string();
    assert_eq!(recs[1]["status"], "succeeded");
    let before = c.events().len();

    let r = c.run(&apply_args(&["--resume"]), true).await;
    r.assert_code(0);
    assert!(
        r.stderr
            .contains(&format!("run {done_id} of aks-test already succeeded"))
            && r.stderr.contains("nothing to resume")
            && r.stderr.contains("nothing was changed"),
        "{}",
        r.stderr
    );
    let ev = c.events();
    for e in &ev[before..] {
        assert!(
            !["lease", "cordon", "apt-upgrade", "reboot", "uncordon"].contains(&e.kind.as_str()),
            "a finished run is not walked again: {e:?}"
        );
    }
    assert_eq!(run_records(&runs), recs, "no record written or changed");
}

/// A small tmpfs, unmounted however the test ends.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Tmpfs {
        let dir = tempfile::tempdir().unwrap();
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .unwrap()
            .success();
        assert!(ok, "mount a tmpfs (needs root)");
        Tmpfs { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Fill what is left of it; returns the filler file.
    fn fill(&self) -> PathBuf {
        use std::io::Write;
        let path = self.path().join("filler");
        let mut f = std::fs::File::create(&path).unwrap();
        while f.write_all(&[0u8; 512]).is_ok() {}
        let _ = f.sync_all();
        path
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(self.dir.path()).status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_journal_that_fills_up_stops_the_run_after_the_node_in_hand_and_resume_goes_on() {
    skip_unless_root!();
    let c = Cluster::start(Some(SMALL)).await;
    let fs = Tmpfs::mount("64k");
    let journal = fs.path().join("runs");
    let jd = journal.display().to_string();
    let mut cmd = c.command_with_target(&apply_args(&["--journal-dir", &jd]));
    let run = tokio::spawn(async move { cmd.output().await.unwrap() });
    // While node 0 is out of service (rebooting), the journal's file system fills up.
    let n0 = small_node(0);
    c.wait_for_event("reboot", Some(&n0), Duration::from_secs(60)).await;
    let filler = fs.fill();
    let out = tokio::time::timeout(Duration::from_secs(240), run)
        .await
        .expect("apply finished")
        .unwrap();
    let r = Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).to_string(),
        stderr: String::from_utf8_lossy(&out.stderr).to_string(),
    };
    r.assert_code(1);
    let nodes: Vec<String> = (0..3).map(small_node).collect();
    // The summary and the table come from memory.
    assert!(r.stderr.contains("node(s) patched"), "{}", r.stderr);
    for n in &nodes {
        assert!(
            r.stdout.contains(n.as_str()),
            "the after-table names {n}:\n{}",
            r.stdout
        );
    }
    // One clear error: the record, the cause, what to do; no warning per failed write.
    assert!(
        r.stderr.contains(&format!("the run record {jd}/"))
            && r.stderr.contains("cannot be written (No space left on device")
            && r.stderr.contains("free space in")
            && r.stderr.contains("--resume"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.matches("cannot write the run record").count() <= 1,
        "one warning, not one per write:\n{}",
        r.stderr
    );
    // Stopped at a safe point: nothing left cordoned, never two out, the lock released, and
    // not every node done.
    let ev = c.events();
    assert_eq!(max_nodes_out(&ev, &[]), 1);
    for n in &nodes {
        assert!(!c.unschedulable(n), "{n} is not left cordoned");
        assert_eq!(
            of_kind(&ev, "cordon")
                .iter()
                .filter(|e| e.node.as_deref() == Some(n))
                .count(),
            of_kind(&ev, "uncordon")
                .iter()
                .filter(|e| e.node.as_deref() == Some(n))
                .count(),
            "{n}: every cordon has its uncordon"
        );
    }
    // Node 0, in hand, was finished (new kernel, back in service); no other was started.
    assert_eq!(c.kernel(&n0), "5.15.0-1073-azure");
    assert_eq!(nodes_with(&ev, "apt-upgrade"), [n0.clone()].into());
    assert_eq!(nodes_with(&ev, "cordon"), [n0.clone()].into());
    assert!(c.lock_free());

    // Space freed, the resume goes on from the last record written, and redoes nothing.
    std::fs::remove_file(&filler).unwrap();
    let r = c
        .run(&apply_args(&["--journal-dir", &jd, "--resume", "-o", "json"]), true)
        .await;
    r.assert_code(0);
    assert_eq!(r.json()["status"], "succeeded");
    let ev = c.events();
    for n in &nodes {
        assert_eq!(r.node_record(n)["state"], "done", "{n}");
        assert_eq!(c.kernel(n), "5.15.0-1073-azure", "{n}");
        assert!(!c.unschedulable(n));
        let reboots = of_kind(&ev, "reboot")
            .iter()
            .filter(|e| e.node.as_deref() == Some(n))
            .count();
        assert_eq!(reboots, 1, "{n} rebooted once");
    }
    assert_eq!(max_nodes_out(&ev, &[]), 1);
    let recs = run_records(&journal);
    assert_eq!(recs.last().unwrap()["status"], "succeeded");
    assert_eq!(recs.last().unwrap()["schemaVersion"], 2);
    drop(fs);
}
