//! The CronJob controller: a Job at each scheduled minute (UTC), with the history limit.

use super::*;

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
    crate::objects::jobs::select_by_uid(&mut spec, &juid, &json!(jname));
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
