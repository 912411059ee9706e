//! Jobs select their pods by the Job's uid, as the API server sets them up on create.

use serde_json::{json, Value};

/// Select the Job's pods by its uid (`spec.selector`) and label its pod template with the
/// uid and the Job's `name`, as the API server does for a Job created without a selector
/// (and the CronJob controller for each Job it creates).
pub fn select_by_uid(spec: &mut Value, uid: &str, name: &Value) {
    spec["selector"] = json!({"matchLabels": {"batch.kubernetes.io/controller-uid": uid}});
    if !spec["template"]["metadata"]["labels"].is_object() {
        spec["template"]["metadata"]["labels"] = json!({});
    }
    let labels = &mut spec["template"]["metadata"]["labels"];
    labels["batch.kubernetes.io/controller-uid"] = json!(uid);
    labels["controller-uid"] = json!(uid);
    labels["batch.kubernetes.io/job-name"] = name.clone();
    labels["job-name"] = name.clone();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_selector_matches_the_labels_of_the_template() {
        let mut spec = json!({"template": {"spec": {}}});
        select_by_uid(&mut spec, "u-1", &json!("nightly"));
        let labels = &spec["template"]["metadata"]["labels"];
        for (k, v) in spec["selector"]["matchLabels"].as_object().unwrap() {
            assert_eq!(&labels[k], v, "{k}");
        }
        assert_eq!(labels["job-name"], "nightly");
        assert_eq!(labels["batch.kubernetes.io/job-name"], "nightly");
    }
}
