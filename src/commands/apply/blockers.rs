//! `apply`'s blockers: `--blocking-pod-selector` and `--prometheus-url` (kured's), checked
//! before the lock and before every cordon, waited for up to `--blocker-wait`.

use crate::commands::context::ClusterContext;
use crate::kube::CancellationToken;
use crate::output::{Exit, Failure, Reporter};
use crate::rollout::blockers::{holds_text, wait_clear, AlertFilter, BlockStop, Blockers, Prometheus};
use crate::rollout::engine::BlockerPolicy;
use crate::rollout::journal::BlockerOptions;
use crate::settings::Settings;
use std::sync::Arc;
use std::time::Duration;

/// How long one question to Prometheus may take.
const PROMETHEUS_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the blockers are asked again while they hold.
const POLL: Duration = Duration::from_secs(2);

/// The run's blockers (none: `None`), with the Prometheus URL given now (a secret, never
/// recorded). Bad values are usage errors.
pub async fn policy(
    opts: &BlockerOptions,
    prometheus_url: Option<&str>,
    ctx: &ClusterContext,
    settings: &Settings,
) -> anyhow::Result<Option<BlockerPolicy>> {
    let usage = |msg: String, hint: &str| anyhow::Error::from(Failure::new(Exit::Usage, msg).hint(hint.to_string()));
    if prometheus_url.is_none()
        && (opts.alert_filter_regexp.is_some() || opts.alert_filter_match_only || opts.alert_firing_only)
    {
        return Err(usage(
            "--alert-filter-regexp, --alert-filter-match-only and --alert-firing-only need --prometheus-url".into(),
            "give --prometheus-url http://prometheus:9090",
        ));
    }
    if opts.alert_filter_match_only && opts.alert_filter_regexp.is_none() {
        return Err(usage(
            "--alert-filter-match-only needs --alert-filter-regexp".into(),
            "e.g. --alert-filter-regexp '^RebootBlocker' --alert-filter-match-only",
        ));
    }
    let prometheus = match prometheus_url {
        None => None,
        Some(url) => {
            let regexp = opts
                .alert_filter_regexp
                .as_deref()
                .map(regex::Regex::new)
                .transpose()
                .map_err(|e| {
                    usage(
                        format!("invalid --alert-filter-regexp: {e}"),
                        "use Rust regex syntax, e.g. '^(Watchdog|InfoInhibitor)$'",
                    )
                })?;
            let filter = AlertFilter {
                regexp,
                match_only: opts.alert_filter_match_only,
                firing_only: opts.alert_firing_only,
            };
            let http = crate::http::client(settings.ca_bundle.as_ref(), PROMETHEUS_TIMEOUT, PROMETHEUS_TIMEOUT)
                .map_err(|e| {
                    usage(
                        e.to_string(),
                        "give the CA bundle that signed Prometheus's certificate, or none",
                    )
                })?;
            Some(Prometheus::new(url, filter, http).map_err(|e| {
                usage(
                    format!("invalid --prometheus-url: {e}"),
                    "e.g. --prometheus-url http://prometheus.monitoring:9090",
                )
            })?)
        }
    };
    if opts.pod_selectors.is_empty() && prometheus.is_none() {
        return Ok(None);
    }
    let blockers = Blockers {
        client: ctx.client.clone(),
        selectors: opts.pod_selectors.clone(),
        scope: opts.pod_scope,
        prometheus,
    };
    if let Some((selector, why)) = blockers.bad_selector().await {
        return Err(usage(
            format!("invalid --blocking-pod-selector `{selector}`: {why}; nothing was changed"),
            "use Kubernetes label selector syntax, e.g. `app=backup` or `job-name`",
        ));
    }
    Ok(Some(BlockerPolicy {
        source: Arc::new(blockers),
        wait: Duration::from_secs(opts.wait),
        poll: POLL,
    }))
}

/// For `--dry-run`: what holds the rollout now.
pub async fn dry_run_line(b: &BlockerPolicy) -> String {
    let holds = b.source.holds(None).await;
    if holds.is_empty() {
        "blockers: none now".to_string()
    } else {
        format!(
            "blockers now (the run would wait up to {}s, --blocker-wait): {}",
            b.wait.as_secs(),
            holds_text(&holds)
        )
    }
}

/// Before the lock: wait for the blockers to clear, or stop (exit 9) with nothing changed.
pub async fn before_lock(b: &BlockerPolicy, cancel: &CancellationToken, reporter: &Reporter) -> anyhow::Result<()> {
    match wait_clear(b.source.as_ref(), None, b.wait, b.poll, cancel, reporter).await {
        Ok(_) => Ok(()),
        Err(BlockStop::Cancelled) => Err(Failure::new(
            Exit::Interrupted,
            "interrupted before the lock was taken; nothing was changed",
        )
        .into()),
        Err(e) => Err(
            Failure::new(Exit::Blocked, format!("not starting: {e}; nothing was changed"))
                .hint("clear what blocks (or wait for it) and run again; --blocker-wait sets how long to wait")
                .into(),
        ),
    }
}
