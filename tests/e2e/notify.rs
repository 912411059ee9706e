//! Notifications end to end: `apply --notify-url` to aks-sim's webhook sink
//! (HTTPS with the emulator's CA, every delivery in its event log) as Slack (Block Kit),
//! Teams (Adaptive Card) and a generic JSON webhook, for every event of a rollout including
//! a halt and a node left cordoned; a failing webhook changes nothing of the outcome; webhook
//! URLs appear nowhere.

use crate::common::*;
use serde_json::Value;

/// The bodies the sink received on paths starting with `prefix`, in order.
fn received(c: &Cluster, prefix: &str) -> Vec<Value> {
    c.events()
        .iter()
        .filter(|e| e.kind == "webhook" && e.object.as_deref().is_some_and(|o| o.starts_with(prefix)))
        .filter(|e| !e.detail.starts_with("refused"))
        .map(|e| serde_json::from_str(&e.detail).unwrap_or_else(|err| panic!("{err}: {}", e.detail)))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn slack_teams_and_webhook_payloads_arrive_for_every_event_including_a_halt() {
    skip_unless_root!();
    let c = Cluster::start(Some(&small_with(2, 1.0))).await;
    let (n0, n1) = (small_node(0), small_node(1));
    c.sim
        .fault(aks_sim::Fault::NodeNeverReturns { node: n1.clone() })
        .unwrap();
    let sink = c.sim.endpoints().webhook_url.clone();
    let slack = format!("slack+{sink}/hooks/slack/T000/B000/s3cretslack");
    let teams = format!("teams+{sink}/hooks/teams/workflows/s3cretteams");
    let hook = format!("webhook+{sink}/hooks/generic/s3cretgeneric");
    let r = c
        .run(
            &apply_args(&[
                "--reboot-timeout",
                "5",
                "--notify-url",
                &slack,
                "--notify-url",
                &teams,
                "--notify-url",
                &hook,
                "-o",
                "json",
            ]),
            true,
        )
        .await;
    r.assert_code(5);

    // The generic webhook: every event, with the node's part of the run record.
    let generic = received(&c, "generic/");
    let kinds: Vec<&str> = generic.iter().map(|b| b["event"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        [
            "run-started",
            "node-started",
            "node-done",
            "node-started",
            "node-halted",
            "node-left-cordoned",
            "run-finished"
        ],
        "{generic:#?}"
    );
    let done = &generic[2];
    assert_eq!(done["node"], n0.as_str());
    assert_eq!(done["pool"], "nodes");
    assert_eq!(done["kernelBefore"], "5.15.0-1068-azure");
    assert_eq!(done["kernelAfter"], "5.15.0-1073-azure");
    assert_eq!(done["nodeRecord"]["name"], n0.as_str());
    assert_eq!(done["nodeRecord"]["state"], "done");
    assert!(
        generic[0]["reason"].as_str().unwrap().contains("2 node(s) to patch"),
        "{}",
        generic[0]
    );
    let halted = &generic[4];
    assert_eq!(halted["node"], n1.as_str());
    assert!(
        halted["reason"].as_str().unwrap().contains("did not come back"),
        "{halted}"
    );
    let left = &generic[5];
    assert!(
        left["reason"]
            .as_str()
            .unwrap()
            .contains(&format!("kubectl uncordon {n1}")),
        "the recovery command: {left}"
    );
    assert!(
        generic[6]["text"].as_str().unwrap().contains("halted"),
        "{}",
        generic[6]
    );

    // Slack: a Block Kit message per event, the text with kernels before and after.
    let slack_bodies = received(&c, "slack/");
    assert_eq!(slack_bodies.len(), kinds.len());
    for b in &slack_bodies {
        assert_eq!(b["blocks"][0]["type"], "section", "{b}");
        assert_eq!(b["blocks"][0]["text"]["text"], b["text"]);
    }
    assert!(
        slack_bodies[2]["text"].as_str().unwrap().contains(&format!(
            "node {n0} patched, kernel 5.15.0-1068-azure → 5.15.0-1073-azure"
        )),
        "{}",
        slack_bodies[2]
    );
    // Teams: an Adaptive Card per event.
    let teams_bodies = received(&c, "teams/");
    assert_eq!(teams_bodies.len(), kinds.len());
    for b in &teams_bodies {
        let card = &b["attachments"][0];
        assert_eq!(card["contentType"], "application/vnd.microsoft.card.adaptive");
        assert_eq!(card["content"]["type"], "AdaptiveCard");
    }
    assert!(teams_bodies[4]["attachments"][0]["content"]["body"][1]["text"]
        .as_str()
        .unwrap()
        .contains("halted on node"));

    // The URLs are secrets: not in the output, the logs, or the run record.
    let records = std::fs::read_dir(c.state_dir().join("runs"))
        .unwrap()
        .flat_map(|d| std::fs::read_dir(d.unwrap().path()).unwrap())
        .map(|f| std::fs::read_to_string(f.unwrap().path()).unwrap())
        .collect::<String>();
    for text in [&r.stdout, &r.stderr, &records] {
        assert!(!text.contains("s3cret") && !text.contains("/hooks/"), "{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failing_webhook_does_not_change_the_outcome_and_templates_have_more_fields() {
    skip_unless_root!();
    let c = Cluster::start(Some(&small_with(2, 1.0))).await;
    // The first event's three attempts are refused; the rest arrive.
    c.sim
        .fault(aks_sim::Fault::WebhookError { count: 3, status: 500 })
        .unwrap();
    let sink = c.sim.endpoints().webhook_url.clone();
    let hook = format!("webhook+{sink}/hooks/ops/s3cret");
    let r = c
        .run(
            &apply_args(&[
                "--notify-url",
                &hook,
                "--notify-template",
                "{event} {cluster}/{pool}/{node}: {kernel_before} -> {kernel_after} (run {run_id})",
                "-o",
                "json",
            ]),
            true,
        )
        .await;
    r.assert_code(0);
    assert_eq!(r.json()["status"], "succeeded");
    assert!(
        r.stderr
            .contains("notification (run-started) to webhook at https://127.0.0.1 failed: HTTP 500")
            && r.stderr.contains("the rollout goes on"),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains("s3cret"), "{}", r.stderr);
    let refused = c
        .events()
        .iter()
        .filter(|e| e.kind == "webhook" && e.detail.starts_with("refused"))
        .count();
    assert_eq!(refused, 3, "tried three times");
    let bodies = received(&c, "ops/");
    let run_id = r.json()["runId"].as_str().unwrap().to_string();
    let n0 = small_node(0);
    let done = bodies
        .iter()
        .find(|b| b["event"] == "node-done" && b["node"] == n0.as_str())
        .expect("node-done of node 0");
    assert_eq!(
        done["text"],
        format!("node-done aks-test/nodes/{n0}: 5.15.0-1068-azure -> 5.15.0-1073-azure (run {run_id})")
    );
    for i in 0..2 {
        assert_eq!(c.kernel(&small_node(i)), "5.15.0-1073-azure");
    }

    // Bad values are usage errors that never quote the URL.
    let bad = c
        .run(
            &apply_args(&["--notify-url", "https://example.org/hook/s3cret", "--dry-run"]),
            true,
        )
        .await;
    bad.assert_code(2);
    assert!(
        bad.stderr.contains("--notify-url #1") && bad.stderr.contains("webhook+"),
        "{}",
        bad.stderr
    );
    assert!(!bad.stderr.contains("s3cret"), "{}", bad.stderr);
    let bad = c
        .run(
            &apply_args(&["--notify-url", &hook, "--notify-template", "{nodename}", "--dry-run"]),
            true,
        )
        .await;
    bad.assert_code(2);
    assert!(bad.stderr.contains("unknown field {nodename}"), "{}", bad.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_webhook_that_never_answers_does_not_slow_the_rollout() {
    skip_unless_root!();
    let c = Cluster::start(Some(&small_with(2, 1.0))).await;
    // Every delivery waits 60 s: longer than aks-patch's 10 s per attempt.
    c.sim.fault(aks_sim::Fault::WebhookSlow { seconds: 60.0 }).unwrap();
    let sink = c.sim.endpoints().webhook_url.clone();
    let hook = format!("webhook+{sink}/hooks/slow/s3cret");
    let t0 = std::time::Instant::now();
    let r = c.run(&apply_args(&["--notify-url", &hook, "-o", "json"]), true).await;
    let took = t0.elapsed();
    r.assert_code(0);
    assert_eq!(r.json()["status"], "succeeded");
    // Seven events of three 10 s attempts each would be 3.5 minutes if the rollout waited
    // for them; it waits only at its end, at most 20 s.
    assert!(
        took < std::time::Duration::from_secs(90),
        "took {took:?}:\n{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("notification(s) were not delivered")
            && r.stderr
                .contains("still being sent when the 20s allowed after the run ran out"),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains("s3cret"), "{}", r.stderr);
    for i in 0..2 {
        assert_eq!(c.kernel(&small_node(i)), "5.15.0-1073-azure");
    }
}

/// The kinds of the events the generic webhook sink received on `prefix`.
fn kinds(c: &Cluster, prefix: &str) -> Vec<String> {
    received(c, prefix)
        .iter()
        .map(|b| b["event"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_healthy_webhook_gets_every_event_and_the_run_ends_without_a_warning() {
    skip_unless_root!();
    let c = Cluster::start(Some(&small_with(2, 1.0))).await;
    let sink = c.sim.endpoints().webhook_url.clone();
    let hook = format!("webhook+{sink}/hooks/healthy/s3cret");
    let r = c.run(&apply_args(&["--notify-url", &hook, "-o", "json"]), true).await;
    r.assert_code(0);
    assert_eq!(
        kinds(&c, "healthy/"),
        [
            "run-started",
            "node-started",
            "node-done",
            "node-started",
            "node-done",
            "run-finished"
        ],
        "every event arrived, the last one included"
    );
    assert!(
        !r.stderr.contains("not delivered") && !r.stderr.contains("warning: notification"),
        "no warning when every notification arrived:\n{}",
        r.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_webhook_that_refuses_everything_is_counted_in_one_warning_at_the_end() {
    skip_unless_root!();
    let c = Cluster::start(Some(&small_with(2, 1.0))).await;
    c.sim
        .fault(aks_sim::Fault::WebhookError { count: 0, status: 503 })
        .unwrap();
    let sink = c.sim.endpoints().webhook_url.clone();
    let hook = format!("webhook+{sink}/hooks/down/s3cret");
    let r = c.run(&apply_args(&["--notify-url", &hook, "-o", "json"]), true).await;
    r.assert_code(0);
    assert_eq!(r.json()["status"], "succeeded", "a failing webhook changes nothing");
    assert!(
        r.stderr.contains("6 of 6 notification(s) were not delivered: 6 failed"),
        "{}",
        r.stderr
    );
    let refused = c
        .events()
        .iter()
        .filter(|e| e.kind == "webhook" && e.detail.starts_with("refused"))
        .count();
    assert_eq!(refused, 18, "each of the 6 events was tried three times");
    assert!(!r.stderr.contains("s3cret"), "{}", r.stderr);
}
