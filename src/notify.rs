//! Notifications of a rollout: Slack incoming webhooks (a Block Kit message), Microsoft Teams
//! workflow webhooks (an Adaptive Card) and generic JSON webhooks (the event and the node's
//! part of the run record). Events: run started, node started, node done, node halted, node
//! left cordoned (with the recovery command), run finished; and a fleet run's stage started and
//! finished.
//!
//! Deliveries run in the background: a failed one is retried briefly, then a warning; they
//! never stop or slow the rollout. The end of the run waits for the last ones, no longer than
//! they take and at most a bounded time, and then says how many were not delivered, if any. Webhook URLs are secrets: they are never printed, logged or written to the run
//! record; messages name the service and its host only.

use serde_json::{json, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// What is wrong with a `--notify-url` or `--notify-template` (never quoting a URL).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotifyError {
    #[error("--notify-url #{index} ({shown}) {why}")]
    Url { index: usize, shown: String, why: String },
    #[error("--notify-template: unknown field {{{0}}} (fields: {FIELDS})")]
    Template(String),
}

/// The fields a `--notify-template` may use.
pub const FIELDS: &str =
    "{event} {cluster} {node} {pool} {kernel_before} {kernel_after} {duration} {reason} {run_id} {text}";

/// Which service a webhook URL belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    Slack,
    Teams,
    Webhook,
}

/// One destination. The URL is a secret: [`Target::shown`] is what messages use.
#[derive(Clone)]
pub struct Target {
    pub service: Service,
    url: String,
    shown: String,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Target({})", self.shown)
    }
}

impl Target {
    /// `https://hooks.slack.com/...` (Slack), a Teams workflow URL (`*.logic.azure.com`,
    /// `*.powerplatform.com`, `*.webhook.office.com`), or an explicit `slack+`, `teams+` or
    /// `webhook+` prefix. `index` is the flag's position, for messages.
    pub fn parse(spec: &str, index: usize) -> Result<Target, NotifyError> {
        let (prefixed, rest) = match spec.split_once('+') {
            Some((p @ ("slack" | "teams" | "webhook"), rest)) => (Some(p), rest),
            _ => (None, spec),
        };
        let bad = |shown: String, why: &str| NotifyError::Url {
            index,
            shown,
            why: why.to_string(),
        };
        let url = reqwest::Url::parse(rest).map_err(|_| bad("not shown".into(), "is not a URL"))?;
        let host = url.host_str().unwrap_or_default().to_ascii_lowercase();
        let shown_host = |service: &str| format!("{service} at {}://{host}", url.scheme());
        if !matches!(url.scheme(), "https" | "http") {
            return Err(bad(shown_host("a webhook"), "is not an http(s) URL"));
        }
        let service = match prefixed {
            Some("slack") => Service::Slack,
            Some("teams") => Service::Teams,
            Some(_) => Service::Webhook,
            None if host == "hooks.slack.com" => Service::Slack,
            None if [".logic.azure.com", ".powerplatform.com", ".webhook.office.com"]
                .iter()
                .any(|d| host.ends_with(d)) =>
            {
                Service::Teams
            }
            None => {
                return Err(bad(
                    shown_host("a webhook"),
                    "is neither Slack (hooks.slack.com) nor a Teams workflow: prefix it with slack+, teams+ or webhook+ (a generic JSON webhook)",
                ))
            }
        };
        let name = match service {
            Service::Slack => "Slack",
            Service::Teams => "Teams",
            Service::Webhook => "webhook",
        };
        Ok(Target {
            service,
            url: rest.to_string(),
            shown: shown_host(name),
        })
    }

    /// The service and host, never the URL.
    pub fn shown(&self) -> &str {
        &self.shown
    }
}

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum EventKind {
    RunStarted,
    NodeStarted,
    NodeDone,
    NodeHalted,
    NodeLeftCordoned,
    RunFinished,
    /// A stage of a fleet run started (`cluster`: the fleet run's clusters, `reason`: the stage).
    StageStarted,
    /// A stage of a fleet run ended (`reason`: the stage and how it ended).
    StageFinished,
}

/// One event of a rollout.
#[derive(Debug, Clone, Default)]
pub struct Event {
    pub kind: Option<EventKind>,
    pub cluster: String,
    pub run_id: String,
    pub node: Option<String>,
    pub pool: Option<String>,
    pub kernel_before: Option<String>,
    pub kernel_after: Option<String>,
    pub duration: Option<Duration>,
    /// Why it halted, what to do, or the plan/run summary.
    pub reason: Option<String>,
    /// The node's part of the run record (generic webhooks).
    pub node_record: Option<Value>,
}

impl Event {
    pub fn new(kind: EventKind, cluster: &str, run_id: &str) -> Event {
        Event {
            kind: Some(kind),
            cluster: cluster.to_string(),
            run_id: run_id.to_string(),
            ..Default::default()
        }
    }

    fn kind_text(&self) -> String {
        self.kind
            .map(|k| crate::rollout::journal::enum_text(&k))
            .unwrap_or_default()
    }

    /// The default text of the event.
    pub fn text(&self) -> String {
        let node = self.node.as_deref().unwrap_or("?");
        let reason = self.reason.as_deref().unwrap_or("");
        let kb = self.kernel_before.as_deref().unwrap_or("?");
        let ka = self.kernel_after.as_deref().unwrap_or("?");
        let took = self.duration.map(crate::duration::human).unwrap_or_default();
        match self.kind {
            Some(EventKind::RunStarted) => {
                format!("aks-patch run {} started on {}: {reason}", self.run_id, self.cluster)
            }
            Some(EventKind::NodeStarted) => format!("{}: patching node {node}", self.cluster),
            Some(EventKind::NodeDone) => {
                format!("{}: node {node} patched, kernel {kb} → {ka}, in {took}", self.cluster)
            }
            Some(EventKind::NodeHalted) => format!("{}: the rollout halted on node {node}: {reason}", self.cluster),
            Some(EventKind::NodeLeftCordoned) => format!("{}: node {node} is left cordoned: {reason}", self.cluster),
            Some(EventKind::RunFinished) => {
                format!("aks-patch run {} on {} finished: {reason}", self.run_id, self.cluster)
            }
            Some(EventKind::StageStarted | EventKind::StageFinished) => {
                format!("aks-patch fleet run {}: {reason}", self.run_id)
            }
            None => reason.to_string(),
        }
    }

    /// The text through `template` (`None`: the default text).
    pub fn render(&self, template: Option<&str>) -> String {
        let Some(t) = template else {
            return self.text();
        };
        let fields = [
            ("event", self.kind_text()),
            ("cluster", self.cluster.clone()),
            ("node", self.node.clone().unwrap_or_default()),
            ("pool", self.pool.clone().unwrap_or_default()),
            ("kernel_before", self.kernel_before.clone().unwrap_or_default()),
            ("kernel_after", self.kernel_after.clone().unwrap_or_default()),
            (
                "duration",
                self.duration.map(crate::duration::human).unwrap_or_default(),
            ),
            ("reason", self.reason.clone().unwrap_or_default()),
            ("run_id", self.run_id.clone()),
            ("text", self.text()),
        ];
        let mut out = t.to_string();
        for (k, v) in fields {
            out = out.replace(&format!("{{{k}}}"), &v);
        }
        out
    }
}

/// Check a template's fields up front.
pub fn check_template(t: &str) -> Result<(), NotifyError> {
    let mut rest = t;
    while let Some(start) = rest.find('{') {
        let Some(len) = rest[start..].find('}') else { break };
        let name = &rest[start + 1..start + len];
        if !FIELDS.split(' ').any(|f| f == format!("{{{name}}}")) {
            return Err(NotifyError::Template(name.to_string()));
        }
        rest = &rest[start + len + 1..];
    }
    Ok(())
}

/// The body for `service`.
pub fn payload(service: Service, ev: &Event, text: &str) -> Value {
    let mut facts: Vec<(&str, String)> = vec![("Cluster", ev.cluster.clone()), ("Run", ev.run_id.clone())];
    if let Some(n) = &ev.node {
        facts.push(("Node", n.clone()));
    }
    if let Some(p) = &ev.pool {
        facts.push(("Pool", p.clone()));
    }
    if ev.kernel_before.is_some() || ev.kernel_after.is_some() {
        facts.push((
            "Kernel",
            format!(
                "{} → {}",
                ev.kernel_before.as_deref().unwrap_or("?"),
                ev.kernel_after.as_deref().unwrap_or("?")
            ),
        ));
    }
    match service {
        Service::Slack => json!({
            "text": text,
            "blocks": [
                {"type": "section", "text": {"type": "mrkdwn", "text": text}},
                {"type": "context", "elements": facts.iter().map(|(k, v)| json!({"type": "mrkdwn", "text": format!("*{k}:* {v}")})).collect::<Vec<_>>()},
            ],
        }),
        Service::Teams => json!({
            "type": "message",
            "attachments": [{
                "contentType": "application/vnd.microsoft.card.adaptive",
                "contentUrl": null,
                "content": {
                    "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                    "type": "AdaptiveCard",
                    "version": "1.4",
                    "body": [
                        {"type": "TextBlock", "text": format!("aks-patch: {}", ev.kind_text()), "weight": "Bolder", "wrap": true},
                        {"type": "TextBlock", "text": text, "wrap": true},
                        {"type": "FactSet", "facts": facts.iter().map(|(k, v)| json!({"title": k, "value": v})).collect::<Vec<_>>()},
                    ],
                },
            }],
        }),
        Service::Webhook => json!({
            "event": ev.kind,
            "cluster": ev.cluster,
            "runId": ev.run_id,
            "node": ev.node,
            "pool": ev.pool,
            "kernelBefore": ev.kernel_before,
            "kernelAfter": ev.kernel_after,
            "durationSeconds": ev.duration.map(|d| d.as_secs()),
            "reason": ev.reason,
            "text": text,
            "nodeRecord": ev.node_record,
        }),
    }
}

/// Sends events in the background.
/// Where the notifier's warnings go (a failed delivery, the events not delivered at the end):
/// the caller prints them.
pub type Warn = Arc<dyn Fn(String) + Send + Sync>;

pub struct Notifier {
    tx: Option<NotifySender>,
    warn: Warn,
    /// Asks the sender to stop once what is queued is sent.
    flush: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
    counts: Arc<Counts>,
}

/// What happened to the events: queued, handled (delivered to every target, or given up),
/// and not delivered to some target.
#[derive(Debug, Default)]
struct Counts {
    queued: AtomicUsize,
    handled: AtomicUsize,
    failed: AtomicUsize,
}

/// A handle that queues events for the [`Notifier`] (the engine's hook holds one): cheap to
/// clone, never waits.
#[derive(Clone)]
pub struct NotifySender {
    tx: mpsc::UnboundedSender<Event>,
    counts: Arc<Counts>,
}

impl NotifySender {
    /// Queue an event (never waits).
    pub fn send(&self, ev: Event) {
        if self.tx.send(ev).is_ok() {
            self.counts.queued.fetch_add(1, Ordering::SeqCst);
        }
    }
}

impl Notifier {
    /// Start the sender; `http` is the client to use (it trusts the configured CA bundle).
    pub fn start(targets: Vec<Target>, template: Option<String>, http: reqwest::Client, warn: Warn) -> Notifier {
        let (tx, mut rx) = mpsc::unbounded_channel::<Event>();
        let (flush_tx, mut flush_rx) = tokio::sync::oneshot::channel::<()>();
        let counts = Arc::new(Counts::default());
        let c = counts.clone();
        let task_warn = warn.clone();
        let task = tokio::spawn(async move {
            let send_one = |ev: Event| {
                let (http, targets, template, warn, c) = (&http, &targets, &template, &task_warn, &c);
                async move {
                    let text = ev.render(template.as_deref());
                    let mut delivered = true;
                    for t in targets {
                        let body = payload(t.service, &ev, &text);
                        let what = format!("sending the {} notification to {}", ev.kind_text(), t.shown());
                        if let Err(why) = crate::http::send_with_retries(&what, || http.post(&t.url).json(&body)).await
                        {
                            delivered = false;
                            warn(format!(
                                "notification ({}) to {} failed: {why}; the rollout goes on",
                                ev.kind_text(),
                                t.shown()
                            ));
                        }
                    }
                    if !delivered {
                        c.failed.fetch_add(1, Ordering::SeqCst);
                    }
                    c.handled.fetch_add(1, Ordering::SeqCst);
                }
            };
            loop {
                tokio::select! {
                    biased;
                    ev = rx.recv() => match ev {
                        Some(ev) => send_one(ev).await,
                        None => return,
                    },
                    // The run is over: send what is queued, then stop (the engine's hook may
                    // still hold a sender, so the channel does not close by itself).
                    _ = &mut flush_rx => {
                        while let Ok(ev) = rx.try_recv() {
                            send_one(ev).await;
                        }
                        return;
                    }
                }
            }
        });
        Notifier {
            tx: Some(NotifySender {
                tx,
                counts: counts.clone(),
            }),
            warn,
            flush: Some(flush_tx),
            task: Some(task),
            counts,
        }
    }

    /// A handle that queues events (for the engine's hook).
    pub fn sender(&self) -> Option<NotifySender> {
        self.tx.clone()
    }

    /// Queue an event (never waits).
    pub fn send(&self, ev: Event) {
        if let Some(tx) = &self.tx {
            tx.send(ev);
        }
    }

    /// Let the queued events go out: returns as soon as every one is handled, or after
    /// `max`. Warns once, with their number, about the events not delivered (a target that
    /// kept failing, or no time left), and says nothing when all arrived.
    pub async fn finish(mut self, max: Duration) {
        self.tx = None;
        if let Some(flush) = self.flush.take() {
            let _ = flush.send(());
        }
        if let Some(task) = self.task.take() {
            let abort = task.abort_handle();
            if tokio::time::timeout(max, task).await.is_err() {
                abort.abort();
            }
        }
        if let Some(w) = self.counts.undelivered_warning(max) {
            (self.warn)(w);
        }
    }
}

impl Counts {
    /// The end-of-run warning, if any event was not delivered: failed (after its retries) to
    /// some target, or still queued when the `max` after the run ran out.
    fn undelivered_warning(&self, max: Duration) -> Option<String> {
        let queued = self.queued.load(Ordering::SeqCst);
        let failed = self.failed.load(Ordering::SeqCst);
        let dropped = queued.saturating_sub(self.handled.load(Ordering::SeqCst));
        let mut why = vec![];
        if failed > 0 {
            why.push(format!("{failed} failed (see the warnings above)"));
        }
        if dropped > 0 {
            why.push(format!(
                "{dropped} were still being sent when the {}s allowed after the run ran out (they are dropped)",
                max.as_secs()
            ));
        }
        (failed + dropped > 0).then(|| {
            format!(
                "{} of {queued} notification(s) were not delivered: {}",
                failed + dropped,
                why.join("; ")
            )
        })
    }
}

/// An event about one node, from its record.
pub fn node_event(
    kind: EventKind,
    cluster: &str,
    run_id: &str,
    n: &crate::rollout::journal::NodeRecord,
    reason: Option<&str>,
) -> Event {
    let started = n.steps.first();
    let duration = match (started, n.finished_at) {
        (Some(s), Some(end)) => Duration::try_from(end.duration_since(s.started_at)).ok(),
        _ => None,
    };
    Event {
        kind: Some(kind),
        cluster: cluster.to_string(),
        run_id: run_id.to_string(),
        node: Some(n.name.clone()),
        pool: Some(n.pool.clone()),
        kernel_before: n.kernel_before.clone(),
        kernel_after: n.kernel_after.clone(),
        duration,
        reason: reason.map(str::to_string),
        node_record: serde_json::to_value(n).ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fleet_stage_event_names_the_fleet_run_and_the_stage() {
        let mut ev = Event::new(EventKind::StageFinished, "3 cluster(s)", "20261207T050000Z-abcd");
        ev.reason = Some("stage 1 of 3 (env=dev) failed".into());
        assert_eq!(
            ev.text(),
            "aks-patch fleet run 20261207T050000Z-abcd: stage 1 of 3 (env=dev) failed"
        );
        assert_eq!(payload(Service::Webhook, &ev, &ev.text())["event"], "stage-finished");
    }

    #[test]
    fn services_are_told_by_host_or_prefix_and_urls_are_never_shown() {
        let s = Target::parse("https://hooks.slack.com/services/T0/B0/s3cret", 1).unwrap();
        assert_eq!(s.service, Service::Slack);
        assert_eq!(s.shown(), "Slack at https://hooks.slack.com");
        assert!(!format!("{s:?}").contains("s3cret"));
        let t = Target::parse(
            "https://prod-01.westeurope.logic.azure.com:443/workflows/abc/triggers/manual/paths/invoke?sig=s3cret",
            2,
        )
        .unwrap();
        assert_eq!(t.service, Service::Teams);
        assert_eq!(
            Target::parse("webhook+https://example.org/x", 3).unwrap().service,
            Service::Webhook
        );
        assert_eq!(
            Target::parse("slack+https://127.0.0.1:1/x", 3).unwrap().service,
            Service::Slack
        );
        let e = Target::parse("https://example.org/hook/s3cret", 4)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("#4") && e.contains("example.org") && e.contains("webhook+") && !e.contains("s3cret"),
            "{e}"
        );
        let e = Target::parse("s3cret", 5).unwrap_err().to_string();
        assert!(!e.contains("s3cret"), "{e}");
    }

    #[test]
    fn templates_know_more_than_the_node_name() {
        let mut ev = Event::new(EventKind::NodeDone, "aks-shop", "run-1");
        ev.node = Some("n0".into());
        ev.pool = Some("user".into());
        ev.kernel_before = Some("5.15.0-1068-azure".into());
        ev.kernel_after = Some("5.15.0-1073-azure".into());
        let t = "{event} {cluster}/{pool}/{node}: {kernel_before} -> {kernel_after} ({run_id})";
        check_template(t).unwrap();
        assert_eq!(
            ev.render(Some(t)),
            "node-done aks-shop/user/n0: 5.15.0-1068-azure -> 5.15.0-1073-azure (run-1)"
        );
        assert_eq!(
            check_template("{nodename}"),
            Err(NotifyError::Template("nodename".into()))
        );
    }

    #[test]
    fn payload_shapes() {
        let ev = Event::new(EventKind::RunStarted, "c", "r");
        let s = payload(Service::Slack, &ev, "hello");
        assert_eq!(s["blocks"][0]["text"]["text"], "hello");
        let t = payload(Service::Teams, &ev, "hello");
        assert_eq!(t["attachments"][0]["content"]["type"], "AdaptiveCard");
        let w = payload(Service::Webhook, &ev, "hello");
        assert_eq!(w["event"], "run-started");
    }

    use std::sync::Mutex;
    use wiremock::matchers::method;
    use wiremock::{Mock, MockServer, ResponseTemplate};

    /// A warning sink that keeps what it is told.
    fn warnings() -> (Warn, Arc<Mutex<Vec<String>>>) {
        let said = Arc::new(Mutex::new(vec![]));
        let keep = said.clone();
        (Arc::new(move |w| keep.lock().unwrap().push(w)), said)
    }

    fn client(timeout: Duration) -> reqwest::Client {
        crate::http::client(None, Duration::from_secs(5), timeout).unwrap()
    }

    async fn sink(status: u16, delay: Duration) -> (MockServer, Target) {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(status).set_delay(delay))
            .mount(&server)
            .await;
        let t = Target::parse(&format!("webhook+{}/hook", server.uri()), 1).unwrap();
        (server, t)
    }

    /// Two events through a handle that the caller keeps past the flush (as the engine's
    /// hook is kept), one directly.
    fn queue_three(n: &Notifier) -> NotifySender {
        let hook = n.sender().unwrap();
        hook.send(Event::new(EventKind::NodeStarted, "c", "r"));
        hook.send(Event::new(EventKind::NodeDone, "c", "r"));
        n.send(Event::new(EventKind::RunFinished, "c", "r"));
        hook
    }

    #[tokio::test]
    async fn the_flush_returns_once_every_event_is_delivered_and_says_nothing() {
        let (server, target) = sink(200, Duration::ZERO).await;
        let (warn, said) = warnings();
        let n = Notifier::start(vec![target], None, client(Duration::from_secs(10)), warn);
        let _hook = queue_three(&n);
        let t0 = std::time::Instant::now();
        n.finish(Duration::from_secs(20)).await;
        assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
        assert_eq!(server.received_requests().await.unwrap().len(), 3);
        assert!(said.lock().unwrap().is_empty(), "no warning when everything arrived");
    }

    #[tokio::test]
    async fn events_not_delivered_are_counted_in_one_warning() {
        let (server, target) = sink(500, Duration::ZERO).await;
        let (warn, said) = warnings();
        let n = Notifier::start(vec![target], None, client(Duration::from_secs(10)), warn);
        let _hook = queue_three(&n);
        n.finish(Duration::from_secs(20)).await;
        assert_eq!(server.received_requests().await.unwrap().len(), 9, "three tries each");
        let text = said.lock().unwrap().join("\n");
        assert!(
            text.contains("3 of 3 notification(s) were not delivered: 3 failed"),
            "{text}"
        );
        assert!(!text.contains("/hook"), "the URL is never shown: {text}");
    }

    #[tokio::test]
    async fn events_still_queued_when_the_flush_time_runs_out_are_counted() {
        let (_server, target) = sink(200, Duration::from_secs(30)).await;
        let (warn, said) = warnings();
        let n = Notifier::start(vec![target], None, client(Duration::from_secs(60)), warn);
        let _hook = queue_three(&n);
        let t0 = std::time::Instant::now();
        n.finish(Duration::from_millis(300)).await;
        assert!(t0.elapsed() < Duration::from_secs(5));
        let text = said.lock().unwrap().join("\n");
        assert!(
            text.contains("3 of 3 notification(s) were not delivered: 3 were still being sent when the 0s"),
            "{text}"
        );
    }
}
