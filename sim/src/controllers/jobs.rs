//! The Job controller: pods that run for their run time (`aks-sim.io/run-seconds`) and
//! succeed, and the Job's completion.

use super::*;

/// How long a Job's pod runs before it succeeds (pod annotation; default 1 s).
pub const RUN_SECONDS_ANNOTATION: &str = "aks-sim.io/run-seconds";

pub(super) fn job_complete(job: &Value) -> bool {
    job["status"]["conditions"]
        .as_array()
        .is_some_and(|cs| cs.iter().any(|c| c["type"] == "Complete" && c["status"] == "True"))
}

/// A Job's pod, from its template, not yet scheduled.
pub(super) fn job_pod(job: &Value) -> Value {
    pod_from_template(
        &job["spec"]["template"],
        namespace(job),
        name(job),
        owner_ref("batch/v1", "Job", job),
    )
}

/// The status of a Job that finished at `done`, started at `start`.
pub(super) fn complete_status(start: &str, done: &str, succeeded: i64) -> Value {
    json!({
        "startTime": start, "completionTime": done, "succeeded": succeeded, "active": 0, "ready": 0,
        "terminating": 0, "uncountedTerminatedPods": {},
        "conditions": [
            {"type": "SuccessCriteriaMet", "status": "True", "reason": "CompletionsReached",
             "message": "Reached expected number of succeeded pods", "lastProbeTime": done, "lastTransitionTime": done},
            {"type": "Complete", "status": "True", "reason": "CompletionsReached",
             "message": "Reached expected number of succeeded pods", "lastProbeTime": done, "lastTransitionTime": done},
        ],
    })
}

/// Jobs: up to `parallelism` pods at a time until `completions` have succeeded.
pub(super) fn jobs(shared: &Arc<Shared>, all: &[Value]) -> bool {
    let mut wrote = false;
    for job in shared.store.list(JOBS, None) {
        if job_complete(&job) || job["spec"]["suspend"].as_bool() == Some(true) {
            continue;
        }
        let mine = owned_by(all, uid(&job));
        let succeeded = mine.iter().filter(|p| pods::phase(p) == "Succeeded").count() as i64;
        let running = mine.iter().filter(|p| active(p)).count() as i64;
        let ready = mine.iter().filter(|p| active(p) && pods::is_ready(p)).count() as i64;
        let completions = job["spec"]["completions"].as_i64().unwrap_or(1).max(1);
        let parallelism = job["spec"]["parallelism"].as_i64().unwrap_or(1).max(0);
        let t = now();
        let start = job["status"]["startTime"].as_str().unwrap_or(&t).to_string();
        if succeeded >= completions {
            set_status(shared, JOBS, &job, complete_status(&start, &t, succeeded));
            recorder::record(
                shared,
                &recorder::ObjectRef::of(&job),
                recorder::Source {
                    component: "job-controller",
                    host: None,
                },
                "Normal",
                "Completed",
                "Job completed",
            );
            wrote = true;
            continue;
        }
        let want = (parallelism.min(completions - succeeded) - running).max(0);
        for _ in 0..want {
            if let Some(p) = warn_err("create job pod", shared.store.create(PODS, job_pod(&job))) {
                wrote = true;
                shared.events.record(
                    kinds::POD_CREATED,
                    None,
                    Some(&pods::key(&p)),
                    format!("job {}", name(&job)),
                );
                recorder::record(
                    shared,
                    &recorder::ObjectRef::of(&job),
                    recorder::Source {
                        component: "job-controller",
                        host: None,
                    },
                    "Normal",
                    "SuccessfulCreate",
                    &format!("Created pod: {}", name(&p)),
                );
            }
        }
        let status = json!({"startTime": start, "active": running + want, "ready": ready,
                            "succeeded": succeeded, "terminating": 0, "uncountedTerminatedPods": {}});
        let mut merged = job["status"].clone();
        for (k, v) in status.as_object().into_iter().flatten() {
            merged[k] = v.clone();
        }
        set_status(shared, JOBS, &job, merged);
    }
    wrote
}

/// A pod of a Job that has run long enough: Succeeded, its containers Completed.
pub(super) fn succeeded_status(pod: &Value, now: &str) -> Value {
    let mut st = pod["status"].clone();
    st["phase"] = json!("Succeeded");
    let started = st["startTime"].as_str().unwrap_or(now).to_string();
    let mut conds = vec![];
    for (t, s) in [
        ("PodReadyToStartContainers", "False"),
        ("Initialized", "True"),
        ("Ready", "False"),
        ("ContainersReady", "False"),
        ("PodScheduled", "True"),
    ] {
        let mut c = condition(t, s, now);
        if t != "PodScheduled" {
            c["reason"] = json!("PodCompleted");
        }
        conds.push(c);
    }
    st["conditions"] = json!(conds);
    if let Some(cs) = st["containerStatuses"].as_array_mut() {
        for c in cs.iter_mut() {
            let id = c["containerID"].clone();
            c["ready"] = json!(false);
            c["started"] = json!(false);
            c["state"] = json!({"terminated": {"exitCode": 0, "reason": "Completed", "startedAt": started,
                                               "finishedAt": now, "containerID": id}});
        }
    }
    st
}

/// How long a pod of a Job runs (its annotation, else 1 s); None for other pods.
pub(super) fn job_run_time(pod: &Value) -> Option<Duration> {
    let owner = pods::controller_ref(pod)?;
    if owner["kind"] != "Job" {
        return None;
    }
    let s = pod["metadata"]["annotations"][RUN_SECONDS_ANNOTATION]
        .as_str()
        .and_then(|s| s.parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s >= 0.0)
        .unwrap_or(1.0);
    Some(Duration::from_secs_f64(s))
}
