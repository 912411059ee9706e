//! StatefulSets (ordinal pods, one at a time), Jobs (pods that run and succeed), CronJobs
//! (Jobs on a schedule), template rollouts (`kubectl rollout restart` of Deployments,
//! DaemonSets and StatefulSets) and the namespace controller's cleanup.

use super::*;
use crate::store::{CRONJOBS, JOBS, STATEFULSETS};

/// The label pods of a StatefulSet or DaemonSet carry: which template they were made from.
pub(super) const REVISION_LABEL: &str = "controller-revision-hash";
/// How long a Job's pod runs before it succeeds (pod annotation; default 1 s).
pub const RUN_SECONDS_ANNOTATION: &str = "aks-sim.io/run-seconds";

/// A stable 10-hex-digit hash of any JSON value (a pod template).
pub(super) fn content_hash(v: &Value) -> String {
    crate::ids::short_hash(&v.to_string())
}

/// The revision a StatefulSet's or DaemonSet's pods should carry.
pub(super) fn revision(obj: &Value) -> String {
    format!("{}-{}", name(obj), content_hash(&obj["spec"]["template"]))
}

pub(super) fn label_revision(pod: &mut Value, rev: &str) {
    if !pod["metadata"]["labels"].is_object() {
        pod["metadata"]["labels"] = json!({});
    }
    pod["metadata"]["labels"][REVISION_LABEL] = json!(rev);
}

fn pod_revision(p: &Value) -> &str {
    p["metadata"]["labels"][REVISION_LABEL].as_str().unwrap_or("")
}

/// Ordinal `i` of a StatefulSet's pod `<set>-<i>`.
fn ordinal(set: &str, pod: &str) -> Option<i64> {
    pod.strip_prefix(set)?.strip_prefix('-')?.parse().ok()
}

/// The pod `<set>-<i>` of a StatefulSet, unscheduled.
pub(super) fn statefulset_pod(sts: &Value, i: i64) -> Value {
    let sname = name(sts);
    let mut pod = pod_from_template(
        &sts["spec"]["template"],
        namespace(sts),
        sname,
        owner_ref("apps/v1", "StatefulSet", sts),
    );
    let pname = format!("{sname}-{i}");
    if let Some(m) = pod["metadata"].as_object_mut() {
        m.remove("generateName");
    }
    pod["metadata"]["name"] = json!(pname);
    label_revision(&mut pod, &revision(sts));
    pod["metadata"]["labels"]["statefulset.kubernetes.io/pod-name"] = json!(pname);
    pod["metadata"]["labels"]["apps.kubernetes.io/pod-index"] = json!(i.to_string());
    pod["spec"]["hostname"] = json!(pname);
    if let Some(svc) = sts["spec"]["serviceName"].as_str().filter(|s| !s.is_empty()) {
        pod["spec"]["subdomain"] = json!(svc);
    }
    pod
}

/// OrderedReady: pods are created in ordinal order, each only once every lower one is
/// Running and Ready; scale-down and rolling updates go from the highest ordinal, one pod
/// at a time, only while all the others are Ready. A deleted or evicted pod comes back
/// under the same name once the old one is gone.
pub(super) fn statefulsets(shared: &Arc<Shared>, all: &[Value]) -> bool {
    let mut wrote = false;
    for sts in shared.store.list(STATEFULSETS, None) {
        let (ns, sname) = (namespace(&sts).to_string(), name(&sts).to_string());
        let desired = sts["spec"]["replicas"].as_i64().unwrap_or(1).max(0);
        let rev = revision(&sts);
        let mut mine: BTreeMap<i64, &Value> = BTreeMap::new();
        for p in owned_by(all, uid(&sts)) {
            if let Some(i) = ordinal(&sname, name(p)) {
                mine.insert(i, p);
            }
        }
        let settled = |p: &Value| !pods::is_terminating(p) && pods::is_ready(p);
        let mut busy = false;
        for i in 0..desired {
            match mine.get(&i) {
                None => {
                    let pod = statefulset_pod(&sts, i);
                    if let Some(p) = warn_err("create statefulset pod", shared.store.create(PODS, pod)) {
                        wrote = true;
                        shared.events.record(
                            kinds::POD_CREATED,
                            None,
                            Some(&pods::key(&p)),
                            format!("statefulset {sname}"),
                        );
                        recorder::record(
                            shared,
                            &recorder::ObjectRef::of(&sts),
                            recorder::Source {
                                component: "statefulset-controller",
                                host: None,
                            },
                            "Normal",
                            "SuccessfulCreate",
                            &format!("create Pod {} in StatefulSet {sname} successful", name(&p)),
                        );
                    }
                    busy = true;
                    break;
                }
                Some(p) if !settled(p) => {
                    busy = true;
                    break;
                }
                Some(_) => {}
            }
        }
        if busy {
            continue;
        }
        // Scale down, highest ordinal first.
        if let Some((_, p)) = mine.iter().rev().find(|(i, _)| **i >= desired) {
            if !pods::is_terminating(p) {
                wrote |= pods::delete_pod(shared, &ns, name(p), &DeleteOpts::default()).is_ok();
            }
            continue;
        }
        // Rolling update (kubectl rollout restart), highest ordinal first.
        if let Some(p) = mine.values().rev().find(|p| pod_revision(p) != rev) {
            wrote |= pods::delete_pod(shared, &ns, name(p), &DeleteOpts::default()).is_ok();
        }
    }
    wrote
}

/// StatefulSet status.
pub(super) fn statefulset_status(shared: &Shared, owners: &HashMap<&str, Vec<&Value>>) {
    let none: Vec<&Value> = vec![];
    for sts in shared.store.list(STATEFULSETS, None) {
        let act = owners.get(uid(&sts)).unwrap_or(&none);
        let rev = revision(&sts);
        let ready = act.iter().filter(|p| pods::is_ready(p)).count() as i64;
        let updated = act.iter().filter(|p| pod_revision(p) == rev).count() as i64;
        let current_rev = if updated == act.len() as i64 {
            rev.clone()
        } else {
            act.iter()
                .map(|p| pod_revision(p))
                .find(|r| *r != rev)
                .unwrap_or(&rev)
                .to_string()
        };
        let status = json!({
            "observedGeneration": sts["metadata"]["generation"].as_i64().unwrap_or(1),
            "replicas": act.len(), "readyReplicas": ready, "currentReplicas": updated,
            "updatedReplicas": updated, "availableReplicas": ready,
            "currentRevision": current_rev, "updateRevision": rev, "collisionCount": 0,
        });
        set_status(shared, STATEFULSETS, &sts, status);
    }
}

/// DaemonSet rolling update: one outdated pod at a time, while every other one is Ready.
pub(super) fn daemonset_rollout(shared: &Arc<Shared>, all: &[Value]) -> bool {
    let mut wrote = false;
    for ds in shared.store.list(DAEMONSETS, None) {
        let rev = revision(&ds);
        let mine = owned_by(all, uid(&ds));
        if mine.iter().any(|p| pods::is_terminating(p) || !pods::is_ready(p)) {
            continue;
        }
        if let Some(p) = mine.iter().find(|p| pod_revision(p) != rev) {
            wrote |= pods::delete_pod(shared, namespace(p), name(p), &DeleteOpts::default()).is_ok();
        }
    }
    wrote
}

fn job_complete(job: &Value) -> bool {
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

/// CronJobs: a Job at each scheduled minute (UTC), at most one per round; the last three
/// successful Jobs kept (`successfulJobsHistoryLimit`).
pub(super) fn cronjobs(shared: &Arc<Shared>, st: &mut State) -> bool {
    let mut wrote = false;
    let now_t = jiff::Timestamp::now();
    let minute = now_t.as_second() / 60;
    let all_jobs = shared.store.list(JOBS, None);
    for cj in shared.store.list(CRONJOBS, None) {
        let u = uid(&cj).to_string();
        let mine: Vec<&Value> = all_jobs
            .iter()
            .filter(|j| pods::controller_ref(j).is_some_and(|o| o["uid"] == u.as_str()))
            .collect();
        let active: Vec<Value> = mine
            .iter()
            .filter(|j| !job_complete(j))
            .map(|j| json!({"kind": "Job", "namespace": namespace(j), "name": name(j), "uid": uid(j), "apiVersion": "batch/v1"}))
            .collect();
        let last_success = mine
            .iter()
            .filter(|j| job_complete(j))
            .filter_map(|j| j["status"]["completionTime"].as_str())
            .max()
            .map(str::to_string);
        let mut status = cj["status"].clone();
        if !status.is_object() {
            status = json!({});
        }
        status["active"] = if active.is_empty() { Value::Null } else { json!(active) };
        if let Some(t) = &last_success {
            status["lastSuccessfulTime"] = json!(t);
        }
        if status["active"].is_null() {
            if let Some(m) = status.as_object_mut() {
                m.remove("active");
            }
        }
        // History: the oldest finished Jobs beyond the limit go.
        let limit = cj["spec"]["successfulJobsHistoryLimit"].as_i64().unwrap_or(3).max(0) as usize;
        let mut done: Vec<&&Value> = mine.iter().filter(|j| job_complete(j)).collect();
        done.sort_by_key(|j| j["status"]["completionTime"].as_str().unwrap_or("").to_string());
        if done.len() > limit {
            for j in &done[..done.len() - limit] {
                wrote |= shared.store.remove(JOBS, Some(namespace(j)), name(j)).is_ok();
            }
        }
        let due = st.cron_checked.get(&u) != Some(&minute) && cj["spec"]["suspend"].as_bool() != Some(true);
        if due {
            st.cron_checked.insert(u.clone(), minute);
            let after = status["lastScheduleTime"]
                .as_str()
                .or(cj["metadata"]["creationTimestamp"].as_str())
                .and_then(crate::time::parse)
                .unwrap_or(now_t);
            let sched = crate::cron::Schedule::parse(cj["spec"]["schedule"].as_str().unwrap_or(""));
            if let Some(t) = sched.ok().and_then(|s| s.last_between(after, now_t)) {
                let job = job_for(&cj, t);
                if let Some(j) = warn_err("create cronjob job", shared.store.create(JOBS, job)) {
                    wrote = true;
                    status["lastScheduleTime"] = json!(crate::time::rfc3339(t));
                    recorder::record(
                        shared,
                        &recorder::ObjectRef::of(&cj),
                        recorder::Source {
                            component: "cronjob-controller",
                            host: None,
                        },
                        "Normal",
                        "SuccessfulCreate",
                        &format!("Created job {}", name(&j)),
                    );
                }
            }
        }
        set_status(shared, CRONJOBS, &cj, status);
    }
    wrote
}

/// The Job a CronJob creates for the run scheduled at `t` (named by its minute, as the
/// controller names them), with the selector and labels the API server would add.
pub(super) fn job_for(cj: &Value, t: jiff::Timestamp) -> Value {
    let jname = format!("{}-{}", name(cj), t.as_second() / 60);
    let juid = uuid::Uuid::new_v4().to_string();
    let mut spec = cj["spec"]["jobTemplate"]["spec"].clone();
    for (k, v) in [
        ("completions", json!(1)),
        ("parallelism", json!(1)),
        ("backoffLimit", json!(6)),
    ] {
        if spec.get(k).is_none() {
            spec[k] = v;
        }
    }
    spec["selector"] = json!({"matchLabels": {"batch.kubernetes.io/controller-uid": juid}});
    if !spec["template"]["metadata"]["labels"].is_object() {
        spec["template"]["metadata"]["labels"] = json!({});
    }
    let labels = &mut spec["template"]["metadata"]["labels"];
    labels["batch.kubernetes.io/controller-uid"] = json!(juid);
    labels["controller-uid"] = json!(juid);
    labels["batch.kubernetes.io/job-name"] = json!(jname);
    labels["job-name"] = json!(jname);
    let mut meta = json!({
        "name": jname, "namespace": namespace(cj), "uid": juid,
        "labels": cj["spec"]["jobTemplate"]["metadata"]["labels"].clone(),
        "annotations": {"batch.kubernetes.io/cronjob-scheduled-timestamp": crate::time::rfc3339(t)},
        "ownerReferences": [owner_ref("batch/v1", "CronJob", cj)],
    });
    if meta["labels"].is_null() {
        meta["labels"] = json!({});
    }
    json!({"metadata": meta, "spec": spec, "status": {}})
}

/// Namespaces being deleted: their content goes (pods gracefully), then the namespace.
pub(super) fn terminating_namespaces(shared: &Arc<Shared>) -> bool {
    let mut wrote = false;
    for ns in shared.store.list(NAMESPACES, None) {
        if ns["metadata"]["deletionTimestamp"].is_null() {
            continue;
        }
        let n = name(&ns).to_string();
        let mut left = 0;
        for r in store::ALL.iter().filter(|r| r.namespaced) {
            for o in shared.store.list(*r, Some(&n)) {
                left += 1;
                if *r == PODS {
                    if !pods::is_terminating(&o) {
                        wrote |= pods::delete_pod(shared, &n, name(&o), &DeleteOpts::default()).is_ok();
                    }
                } else {
                    wrote |= shared.store.remove(*r, Some(&n), name(&o)).is_ok();
                }
            }
        }
        if left == 0 {
            wrote |= shared.store.remove(NAMESPACES, None, &n).is_ok();
        }
    }
    wrote
}
