//! `apply --notify-url`: the rollout's events to Slack, Teams and generic webhooks, in the
//! background (never stopping or slowing the rollout).

use crate::notify::{self, Event, EventKind, Notifier, Target};
use crate::output::{Exit, Failure, Reporter};
use crate::rollout::engine::{NodeHook, NodePhase};
use crate::settings::Settings;
use std::sync::Arc;
use std::time::Duration;

/// How long a webhook may take to connect, and to answer.
const WEBHOOK_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(10);

/// The checked targets and template (`None`: no `--notify-url`). Bad ones are usage errors
/// that never quote a URL.
pub struct Config {
    targets: Vec<Target>,
    template: Option<String>,
    http: reqwest::Client,
}

/// `urls`: `--notify-url` as given now (secrets, never recorded); `template`: the run's.
pub fn config(urls: &[String], template: Option<&str>, settings: &Settings) -> anyhow::Result<Option<Config>> {
    let usage = |e: String| -> anyhow::Error {
        Failure::new(Exit::Usage, format!("{e}; nothing was changed"))
            .hint("e.g. --notify-url https://hooks.slack.com/services/... or --notify-url webhook+https://ops.example/hook")
            .into()
    };
    if let Some(t) = template {
        notify::check_template(t).map_err(|e| usage(e.to_string()))?;
        if urls.is_empty() {
            return Err(usage("--notify-template needs --notify-url".into()));
        }
    }
    if urls.is_empty() {
        return Ok(None);
    }
    let targets = urls
        .iter()
        .enumerate()
        .map(|(i, u)| Target::parse(u, i + 1))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| usage(e.to_string()))?;
    let http = crate::http::client(settings.ca_bundle.as_ref(), WEBHOOK_CONNECT_TIMEOUT, WEBHOOK_TIMEOUT)
        .map_err(|e| usage(e.to_string()))?;
    Ok(Some(Config {
        targets,
        template: template.map(str::to_string),
        http,
    }))
}

pub fn start(cfg: Config, reporter: &Reporter) -> Notifier {
    let reporter = reporter.clone();
    Notifier::start(
        cfg.targets,
        cfg.template,
        cfg.http,
        Arc::new(move |w: String| reporter.warn(&w)),
    )
}

/// The engine's hook: node started, done, halted.
pub fn hook(n: &Notifier, cluster: &str, run_id: &str) -> Option<NodeHook> {
    let tx = n.sender()?;
    let (cluster, run_id) = (cluster.to_string(), run_id.to_string());
    Some(Arc::new(move |phase, node, reason| {
        let kind = match phase {
            NodePhase::Started => EventKind::NodeStarted,
            NodePhase::Done => EventKind::NodeDone,
            NodePhase::Halted => EventKind::NodeHalted,
        };
        tx.send(notify::node_event(kind, &cluster, &run_id, node, reason));
    }))
}

pub fn event(kind: EventKind, cluster: &str, run_id: &str, reason: String) -> Event {
    let mut e = Event::new(kind, cluster, run_id);
    e.reason = Some(reason);
    e
}
