//! The scheduler against a fake rollout on paused time: each fake cluster takes a set time,
//! ends as scripted, and when told to stop finishes its "node in hand" (a further second)
//! first, as `apply` does.

use super::*;
use crate::azure::ClusterId;
use crate::fleet::record::FleetRunRecord;
use crate::fleet::select::TagSet;
use crate::fleet::stages;
use std::collections::BTreeMap;
use std::sync::Arc;
use tokio::time::Instant;

#[derive(Clone, Copy)]
struct Script {
    takes: Duration,
    outcome: ClusterOutcome,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Ev {
    Start(String, bool),
    End(String, ClusterOutcome),
}

struct FakeRollout {
    scripts: BTreeMap<String, Script>,
    t0: Instant,
    events: Mutex<Vec<(u64, Ev)>>,
    running: Mutex<usize>,
    peak: Mutex<usize>,
    /// The record as last written, as each cluster saw it when it started.
    journal: Arc<MemJournal>,
    seen_running_in_record: Mutex<Vec<String>>,
}

impl FakeRollout {
    fn new(scripts: &[(&str, u64, ClusterOutcome)], journal: Arc<MemJournal>) -> FakeRollout {
        FakeRollout {
            scripts: scripts
                .iter()
                .map(|(n, s, o)| {
                    (
                        n.to_string(),
                        Script {
                            takes: Duration::from_secs(*s),
                            outcome: *o,
                        },
                    )
                })
                .collect(),
            t0: Instant::now(),
            events: Mutex::new(vec![]),
            running: Mutex::new(0),
            peak: Mutex::new(0),
            journal,
            seen_running_in_record: Mutex::new(vec![]),
        }
    }

    fn at(&self) -> u64 {
        self.t0.elapsed().as_secs()
    }

    fn events(&self) -> Vec<(u64, Ev)> {
        self.events.lock().unwrap().clone()
    }

    fn started(&self) -> Vec<String> {
        self.events()
            .into_iter()
            .filter_map(|(_, e)| match e {
                Ev::Start(n, _) => Some(n),
                _ => None,
            })
            .collect()
    }

    fn time_of(&self, ev: &Ev) -> u64 {
        self.events()
            .into_iter()
            .find(|(_, e)| e == ev)
            .map(|(t, _)| t)
            .unwrap_or_else(|| panic!("{ev:?} did not happen: {:?}", self.events()))
    }
}

#[async_trait]
impl ClusterRollout for FakeRollout {
    async fn run(&self, cluster: &ClusterRef, start: ClusterStart, stop: CancellationToken) -> ClusterResult {
        if let Some(rec) = self.journal.last() {
            if rec
                .clusters()
                .any(|c| c.cluster.same(cluster) && c.state == ClusterState::Running)
            {
                self.seen_running_in_record.lock().unwrap().push(cluster.name.clone());
            }
        }
        self.events
            .lock()
            .unwrap()
            .push((self.at(), Ev::Start(cluster.name.clone(), start.resume)));
        {
            let mut r = self.running.lock().unwrap();
            *r += 1;
            let mut p = self.peak.lock().unwrap();
            *p = (*p).max(*r);
        }
        let script = self.scripts[&cluster.name];
        let outcome = tokio::select! {
            _ = tokio::time::sleep(script.takes) => script.outcome,
            _ = stop.cancelled() => {
                // The node in hand is finished first.
                tokio::time::sleep(Duration::from_secs(1)).await;
                ClusterOutcome::Stopped
            }
        };
        *self.running.lock().unwrap() -= 1;
        self.events
            .lock()
            .unwrap()
            .push((self.at(), Ev::End(cluster.name.clone(), outcome)));
        ClusterResult {
            outcome,
            run_id: Some(format!("run-{}-{}", cluster.name, self.at())),
            exit_code: match outcome {
                ClusterOutcome::Succeeded => 0,
                ClusterOutcome::Failed => 5,
                ClusterOutcome::Stopped => 130,
            },
            message: (outcome == ClusterOutcome::Failed).then(|| "node n1 failed".to_string()),
        }
    }
}

#[derive(Default)]
struct MemJournal {
    saved: Mutex<Vec<FleetRunRecord>>,
    /// Writes after this many fail.
    fail_after: Option<usize>,
}

impl MemJournal {
    fn last(&self) -> Option<FleetRunRecord> {
        self.saved.lock().unwrap().last().cloned()
    }
}

impl FleetJournal for MemJournal {
    fn save(&self, record: &FleetRunRecord) -> Result<(), FleetRecordError> {
        let mut saved = self.saved.lock().unwrap();
        if self.fail_after.is_some_and(|n| saved.len() >= n) {
            return Err(FleetRecordError::Write {
                path: "fleet-runs/x.json".into(),
                source: std::io::Error::other("disk full"),
            });
        }
        saved.push(record.clone());
        Ok(())
    }
}

#[derive(Default)]
struct Quiet(Mutex<Vec<String>>);

impl FleetProgress for Quiet {
    fn stage_started(&self, index: usize, _: usize, name: &str, _: &[ClusterRef]) {
        self.0.lock().unwrap().push(format!("stage {index} {name}"));
    }
    fn cluster_started(&self, _: &str, _: &ClusterRef, _: &ClusterStart) {}
    fn cluster_finished(&self, _: &str, _: &ClusterRef, _: &ClusterResult) {}
    fn stage_stopping(&self, stage: &str, failed: &ClusterRef) {
        self.0
            .lock()
            .unwrap()
            .push(format!("stopping {stage} for {}", failed.name));
    }
    fn stage_finished(&self, index: usize, _: usize, _: &str, state: StageState) {
        self.0.lock().unwrap().push(format!("stage {index} {state:?}"));
    }
    fn soaking(&self, after: &str, wait: Duration) {
        self.0
            .lock()
            .unwrap()
            .push(format!("soak after {after} {}s", wait.as_secs()));
    }
}

fn cluster(name: &str, env: &str) -> ClusterRef {
    let mut c = ClusterRef::new(ClusterId::new("s1", "rg", name));
    c.tags.insert("env".into(), env.into());
    c
}

/// Stages by tag, from `(name, env)` pairs and the stage order.
fn record(clusters: &[(&str, &str)], order: &[&str], max: usize, continue_stage: bool, wait: u64) -> FleetRunRecord {
    let sel: Vec<TagSet> = order.iter().map(|e| format!("env={e}").parse().unwrap()).collect();
    let plan = stages::by_tags(clusters.iter().map(|(n, e)| cluster(n, e)).collect(), &sel);
    FleetRunRecord::new(&plan, max, continue_stage, Duration::from_secs(wait))
}

use ClusterOutcome::{Failed, Stopped, Succeeded};

async fn go(
    rec: FleetRunRecord,
    fake: &FakeRollout,
    journal: &MemJournal,
    progress: &Quiet,
    interrupt: CancellationToken,
) -> Result<FleetRunRecord, (FleetRunRecord, FleetRecordError)> {
    let ports = FleetPorts {
        rollout: fake,
        journal,
        progress,
    };
    run(rec, &ports, interrupt).await
}

fn state_of(rec: &FleetRunRecord, name: &str) -> ClusterState {
    rec.clusters().find(|c| c.cluster.name == name).unwrap().state
}

#[tokio::test(start_paused = true)]
async fn stages_run_in_order_each_after_the_slowest_cluster_of_the_last_and_the_soak() {
    let journal = Arc::new(MemJournal::default());
    let fake = FakeRollout::new(
        &[
            ("d1", 10, Succeeded),
            ("d2", 30, Succeeded),
            ("s1", 20, Succeeded),
            ("p1", 5, Succeeded),
            ("p2", 5, Succeeded),
        ],
        journal.clone(),
    );
    let rec = record(
        &[
            ("p1", "prod"),
            ("d1", "dev"),
            ("s1", "staging"),
            ("d2", "dev"),
            ("p2", "prod"),
        ],
        &["dev", "staging", "prod"],
        8,
        false,
        60,
    );
    let progress = Quiet::default();
    let done = go(rec, &fake, &journal, &progress, CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(done.result, Some(FleetResult::Succeeded));
    assert_eq!(fake.time_of(&Ev::Start("d1".into(), false)), 0);
    assert_eq!(
        fake.time_of(&Ev::Start("d2".into(), false)),
        0,
        "a stage's clusters run at once"
    );
    assert_eq!(
        fake.time_of(&Ev::Start("s1".into(), false)),
        30 + 60,
        "stage 2 starts after the slowest cluster of stage 1 and the soak"
    );
    assert_eq!(fake.time_of(&Ev::Start("p1".into(), false)), 90 + 20 + 60);
    assert_eq!(
        fake.time_of(&Ev::End("p2".into(), Succeeded)),
        175,
        "no soak after the last stage"
    );
    assert!(done
        .clusters()
        .all(|c| c.state == ClusterState::Succeeded && c.run_ids.len() == 1));
    assert_eq!(
        progress
            .0
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.starts_with("soak"))
            .count(),
        2
    );
}

#[tokio::test(start_paused = true)]
async fn no_more_clusters_than_max_clusters_run_at_once() {
    let journal = Arc::new(MemJournal::default());
    let names = ["a", "b", "c", "d", "e"];
    let scripts: Vec<(&str, u64, ClusterOutcome)> = names.iter().map(|n| (*n, 10, Succeeded)).collect();
    let fake = FakeRollout::new(&scripts, journal.clone());
    let clusters: Vec<(&str, &str)> = names.iter().map(|n| (*n, "prod")).collect();
    let rec = record(&clusters, &["prod"], 2, false, 0);
    let done = go(rec, &fake, &journal, &Quiet::default(), CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(done.result, Some(FleetResult::Succeeded));
    assert_eq!(*fake.peak.lock().unwrap(), 2);
    assert_eq!(
        fake.time_of(&Ev::End("e".into(), Succeeded)),
        30,
        "5 clusters, 2 at a time"
    );
}

#[tokio::test(start_paused = true)]
async fn a_failed_cluster_stops_the_others_of_its_stage_and_every_later_stage() {
    let journal = Arc::new(MemJournal::default());
    let fake = FakeRollout::new(
        &[
            ("d1", 5, Failed),
            ("d2", 100, Succeeded),
            ("d3", 10, Succeeded),
            ("p1", 10, Succeeded),
        ],
        journal.clone(),
    );
    let rec = record(
        &[("d1", "dev"), ("d2", "dev"), ("d3", "dev"), ("p1", "prod")],
        &["dev", "prod"],
        2,
        false,
        0,
    );
    let progress = Quiet::default();
    let done = go(rec, &fake, &journal, &progress, CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(done.result, Some(FleetResult::Failed));
    assert_eq!(state_of(&done, "d1"), ClusterState::Failed);
    assert_eq!(
        state_of(&done, "d2"),
        ClusterState::Stopped,
        "stopped at its safe point"
    );
    assert_eq!(
        fake.time_of(&Ev::End("d2".into(), Stopped)),
        6,
        "after the node in hand"
    );
    assert_eq!(state_of(&done, "d3"), ClusterState::Pending, "never started");
    assert_eq!(
        state_of(&done, "p1"),
        ClusterState::Pending,
        "the later stage is untouched"
    );
    assert_eq!(fake.started(), ["d1", "d2"]);
    assert_eq!(done.stages[0].state, StageState::Failed);
    assert_eq!(done.stages[1].state, StageState::Pending);
    let d1 = done.clusters().find(|c| c.cluster.name == "d1").unwrap();
    assert_eq!((d1.exit_code, d1.error.as_deref()), (Some(5), Some("node n1 failed")));
    assert!(progress
        .0
        .lock()
        .unwrap()
        .contains(&"stopping env=dev for d1".to_string()));
}

#[tokio::test(start_paused = true)]
async fn continue_stage_lets_the_others_of_the_stage_finish_but_no_later_stage_starts() {
    let journal = Arc::new(MemJournal::default());
    let fake = FakeRollout::new(
        &[
            ("d1", 5, Failed),
            ("d2", 100, Succeeded),
            ("d3", 10, Succeeded),
            ("p1", 10, Succeeded),
        ],
        journal.clone(),
    );
    let rec = record(
        &[("d1", "dev"), ("d2", "dev"), ("d3", "dev"), ("p1", "prod")],
        &["dev", "prod"],
        2,
        true,
        0,
    );
    let done = go(rec, &fake, &journal, &Quiet::default(), CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(done.result, Some(FleetResult::Failed));
    assert_eq!(state_of(&done, "d2"), ClusterState::Succeeded);
    assert_eq!(state_of(&done, "d3"), ClusterState::Succeeded, "started in d1's place");
    assert_eq!(state_of(&done, "p1"), ClusterState::Pending);
}

#[tokio::test(start_paused = true)]
async fn ctrl_c_stops_every_cluster_at_its_safe_point_and_resume_continues_the_run() {
    let journal = Arc::new(MemJournal::default());
    let fake = FakeRollout::new(
        &[
            ("d1", 10, Succeeded),
            ("d2", 50, Succeeded),
            ("d3", 50, Succeeded),
            ("p1", 10, Succeeded),
        ],
        journal.clone(),
    );
    let rec = record(
        &[("d1", "dev"), ("d2", "dev"), ("d3", "dev"), ("p1", "prod")],
        &["dev", "prod"],
        2,
        false,
        0,
    );
    let interrupt = CancellationToken::new();
    let ctrl_c = {
        let i = interrupt.clone();
        async move {
            tokio::time::sleep(Duration::from_secs(20)).await;
            i.cancel();
        }
    };
    let quiet = Quiet::default();
    let (done, ()) = tokio::join!(go(rec, &fake, &journal, &quiet, interrupt), ctrl_c);
    let done = done.unwrap();
    assert_eq!(done.result, Some(FleetResult::Interrupted));
    assert_eq!(state_of(&done, "d1"), ClusterState::Succeeded);
    // d3 started when d1 ended (at 10), both d2 and d3 stopped at 20 + the node in hand.
    assert_eq!(state_of(&done, "d2"), ClusterState::Stopped);
    assert_eq!(state_of(&done, "d3"), ClusterState::Stopped);
    assert_eq!(fake.time_of(&Ev::End("d3".into(), Stopped)), 21);
    assert_eq!(state_of(&done, "p1"), ClusterState::Pending);
    assert_eq!(journal.last().unwrap(), done, "the record on disk is the one returned");

    // --resume: the same record again.
    let journal2 = Arc::new(MemJournal::default());
    let fake2 = FakeRollout::new(
        &[
            ("d1", 10, Succeeded),
            ("d2", 5, Succeeded),
            ("d3", 5, Succeeded),
            ("p1", 10, Succeeded),
        ],
        journal2.clone(),
    );
    let resumed = go(done, &fake2, &journal2, &Quiet::default(), CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(resumed.result, Some(FleetResult::Succeeded));
    let starts: Vec<Ev> = fake2
        .events()
        .into_iter()
        .map(|(_, e)| e)
        .filter(|e| matches!(e, Ev::Start(..)))
        .collect();
    assert_eq!(
        starts,
        [
            Ev::Start("d2".into(), true),
            Ev::Start("d3".into(), true),
            Ev::Start("p1".into(), false),
        ],
        "the finished cluster is skipped, the stopped ones resumed, the later stage run"
    );
    let d2 = resumed.clusters().find(|c| c.cluster.name == "d2").unwrap();
    assert_eq!(d2.run_ids.len(), 2, "both of its runs are named: {:?}", d2.run_ids);
}

#[tokio::test(start_paused = true)]
async fn the_record_says_a_cluster_runs_before_it_starts() {
    let journal = Arc::new(MemJournal::default());
    let fake = FakeRollout::new(&[("a", 1, Succeeded), ("b", 1, Succeeded)], journal.clone());
    let rec = record(&[("a", "dev"), ("b", "prod")], &["dev", "prod"], 1, false, 0);
    go(rec, &fake, &journal, &Quiet::default(), CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(*fake.seen_running_in_record.lock().unwrap(), ["a", "b"]);
}

#[tokio::test(start_paused = true)]
async fn a_record_that_cannot_be_written_starts_no_further_cluster() {
    // Writes: stage 1 running, a running, a done, b running (fails).
    let journal = Arc::new(MemJournal {
        fail_after: Some(3),
        ..MemJournal::default()
    });
    let fake = FakeRollout::new(
        &[("a", 1, Succeeded), ("b", 1, Succeeded), ("c", 1, Succeeded)],
        journal.clone(),
    );
    let rec = record(
        &[("a", "dev"), ("b", "dev"), ("c", "prod")],
        &["dev", "prod"],
        1,
        false,
        0,
    );
    let (done, e) = go(rec, &fake, &journal, &Quiet::default(), CancellationToken::new())
        .await
        .unwrap_err();
    assert!(e.to_string().contains("cannot write the fleet run record"), "{e}");
    assert_eq!(fake.started(), ["a"]);
    assert_eq!(done.result, Some(FleetResult::RecordFailed));
    assert_eq!(state_of(&done, "b"), ClusterState::Pending);
}

#[tokio::test(start_paused = true)]
async fn a_stage_wait_of_its_own_wins_and_ctrl_c_ends_the_soak() {
    let journal = Arc::new(MemJournal::default());
    let fake = FakeRollout::new(&[("a", 1, Succeeded), ("b", 1, Succeeded)], journal.clone());
    let mut rec = record(&[("a", "dev"), ("b", "prod")], &["dev", "prod"], 1, false, 5);
    rec.stages[0].wait_after_seconds = Some(3600);
    let interrupt = CancellationToken::new();
    let ctrl_c = {
        let i = interrupt.clone();
        async move {
            tokio::time::sleep(Duration::from_secs(600)).await;
            i.cancel();
        }
    };
    let progress = Quiet::default();
    let (done, ()) = tokio::join!(go(rec, &fake, &journal, &progress, interrupt), ctrl_c);
    let done = done.unwrap();
    assert!(progress
        .0
        .lock()
        .unwrap()
        .contains(&"soak after env=dev 3600s".to_string()));
    assert_eq!(done.result, Some(FleetResult::Interrupted));
    assert_eq!(done.stages[0].state, StageState::Succeeded);
    assert_eq!(state_of(&done, "b"), ClusterState::Pending);
    assert_eq!(fake.started(), ["a"]);
}
